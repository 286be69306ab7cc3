"""What a released table tells an attacker: each interior cell's range of true counts given
its rounding and suppression, and the sums its margins pin (a table as a grid of cells)."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from disclosure.differencing.errors import DifferencingError, Unjudgeable
from disclosure.policy import SDCProfile
from disclosure.suppression import TOTAL


@dataclass(frozen=True)
class ReleasedTable:
    """A released table as an attacker sees it: its published cells and how they were protected.

    ``margins`` is the label of its margins (``"Total"``) when it has them; ``rounding`` is as
    ``disclosure.publication.round_table`` records it (``"none"``, ``"base 5"``,
    ``"controlled, base 5"``, ``"midpoint6"``); suppressed cells are NaN.

    >>> ReleasedTable(table, margins="Total", rounding="base 5")  # doctest: +SKIP
    """

    table: pd.DataFrame | pd.Series
    margins: str | None = None
    rounding: str = "none"
    statistic: str = "count"


def _as_frame(table: pd.DataFrame | pd.Series) -> pd.DataFrame:
    return table.to_frame("value") if isinstance(table, pd.Series) else table


_BASE = re.compile(r"base\s+(\d+)")


def _rounding_rule(description: str | None) -> tuple[str, int]:
    text = (description or "none").strip().lower()
    if text == "none":
        return "none", 1
    if text.startswith("midpoint6"):
        return "midpoint6", 6
    match = _BASE.search(text)
    if match is None or int(match.group(1)) < 1:
        # Base 0 stands for no count at all (every interval empty): every hypothesis would be
        # contradicted and the pair pass unjudged, so it is refused like an unknown rounding.
        raise Unjudgeable(
            f"its rounding {description!r} is not one the check knows ('none', 'base N', "
            "'controlled, base N', 'midpoint6', N a whole number of at least 1)"
        )
    return ("controlled" if text.startswith("controlled") else "base"), int(match.group(1))


def _true_range(value: float, rule: str, base: int) -> tuple[float, float]:
    """Every whole count that is published as ``value`` under the rounding rule."""
    if rule == "none":
        return value, value
    if rule == "midpoint6":
        return (0.0, 0.0) if value == 0 else (value - 2, value + 3)
    if rule == "controlled":
        return max(0.0, value - base + 1), value + base - 1
    # Nearest multiple, halves up (disclosure.protection.round_to_base).
    return max(0.0, math.ceil(value - base / 2)), math.ceil(value + base / 2) - 1.0


@dataclass
class Dimension:
    name: Any  # the level's name; None when unnamed
    axis: str  # "rows" or "columns" of its table
    labels: list[Any]  # categories, margins excluded, as published
    classes: list[Any]  # the same after the new table's mapping (identity for earlier tables)

    def describe(self) -> str:
        return f"'{self.name}'" if self.name is not None else f"unnamed {self.axis}"


@dataclass
class Grid:
    """One table's interior cells and what its publication says about them."""

    name: str
    dims: list[Dimension]
    codes: np.ndarray  # (cells, dims): label index of each interior cell in each dimension
    measured: list[tuple[np.ndarray, float, float]]  # cells summed, true range
    cell_low: np.ndarray  # per cell, the least its true count can be from its own value
    cell_high: np.ndarray
    known: np.ndarray  # per cell: published as a value
    margin: str
    value_column: Any  # the label of a one-column table's column, which is not a dimension


def grid_of(
    name: str,
    released: ReleasedTable,
    profile: SDCProfile,
    mappings: Sequence[Mapping[Any, Any] | None] = (None, None),
) -> Grid:
    frame = _as_frame(released.table)
    margin = released.margins
    rule, base = _rounding_rule(released.rounding)

    def is_margin(label: Any) -> bool:
        return margin is not None and isinstance(label, str) and label == margin

    def parts(label: Any, nlevels: int) -> tuple:
        return tuple(label) if nlevels > 1 else (label,)

    column_labels = [c for c in frame.columns if not any(is_margin(p) for p in parts(c, 1))]
    drop_columns = (
        frame.columns.nlevels == 1 and frame.columns.name is None and len(column_labels) == 1
    )
    dims: list[Dimension] = []
    for axis, index, mapping in (
        ("rows", frame.index, mappings[0]),
        ("columns", frame.columns, mappings[1]),
    ):
        if axis == "columns" and drop_columns:
            continue
        for level in range(index.nlevels):
            labels = [v for v in dict.fromkeys(index.get_level_values(level)) if not is_margin(v)]
            classes = [mapping.get(v, v) if mapping else v for v in labels]
            dims.append(Dimension(index.names[level], axis, labels, classes))
    sizes = [len(d.labels) for d in dims]
    if any(size == 0 for size in sizes):
        raise Unjudgeable("it has a dimension with no categories")
    positions = [{label: i for i, label in enumerate(d.labels)} for d in dims]
    codes = np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=int)
    codes = codes.reshape(-1, len(dims))
    cells = len(codes)
    strides = np.array([int(np.prod(sizes[i + 1 :])) for i in range(len(dims))], dtype=int)
    seen = np.zeros(cells, dtype=bool)
    known = np.zeros(cells, dtype=bool)
    cell_low = np.zeros(cells)
    cell_high = np.zeros(cells)  # a combination a table leaves out is empty
    measured: list[tuple[np.ndarray, float, float]] = []
    values = frame.to_numpy(dtype=object)
    has_margins = False
    for r, row in enumerate(frame.index):
        for c, column in enumerate(frame.columns):
            key = parts(row, frame.index.nlevels)
            if not drop_columns:
                key += parts(column, frame.columns.nlevels)
            free = [is_margin(p) for p in key]
            has_margins = has_margins or any(free)
            if drop_columns and is_margin(column):
                has_margins = True
            value = values[r, c]
            missing = value is None or pd.isna(value)
            if not missing:
                try:
                    value = float(value)
                except (TypeError, ValueError) as error:
                    raise Unjudgeable(f"cell {key} holds {value!r}, not a count") from error
                if not math.isfinite(value):
                    raise DifferencingError(
                        f"{name}: cell {key} is {value:g}, not a count; a count table holds "
                        "finite counts, with NaN for a suppressed cell"
                    )
                if value < 0:
                    raise Unjudgeable(f"cell {key} is negative ({value:g}), not a count")
            if not any(free):
                position = int(sum(positions[d][p] * strides[d] for d, p in enumerate(key)))
                seen[position] = True
                if missing:
                    continue
                low, high = _true_range(value, rule, base)
                known[position] = True
                cell_low[position], cell_high[position] = low, high
                measured.append((np.array([position]), low, high))
            elif not missing:
                mask = np.ones(cells, dtype=bool)
                for d, p in enumerate(key):
                    if not free[d]:
                        mask &= codes[:, d] == positions[d][p]
                low, high = _true_range(value, rule, base)
                measured.append((np.flatnonzero(mask), low, high))
    hidden = seen & ~known
    # Without margins nothing needs complementary suppression, so every hidden cell is a
    # primary one: under the minimum count. With margins a hidden cell may be a large
    # complement, bounded only by what the margins allow.
    cell_high[hidden] = profile.minimum_cell_count - 1 if not has_margins else np.inf
    for position in np.flatnonzero(~seen):
        measured.append((np.array([position]), 0.0, 0.0))
    value_column = column_labels[0] if drop_columns else None
    return Grid(
        name, dims, codes, measured, cell_low, cell_high, known, margin or TOTAL, value_column
    )

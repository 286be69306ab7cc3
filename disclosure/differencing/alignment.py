"""Aligning the tables of one comparison on the dimensions they share, each at its common
refinement (bands recoded two ways, categories one table lacks), and recoding a table's
categories to another classification (:func:`recode`)."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from disclosure.differencing.errors import Unjudgeable
from disclosure.differencing.published import Grid


def recode(
    table: pd.DataFrame,
    rows: Mapping[Any, Any] | None = None,
    columns: Mapping[Any, Any] | None = None,
) -> pd.DataFrame:
    """Aggregate a table's categories to another classification (unmapped keep their label).

    A sum with a suppressed (NaN) part is unknown, so it stays NaN.

    >>> recode(divisions, rows={"0201": "02", "0202": "02"})  # doctest: +SKIP
    """

    def total(part: pd.DataFrame) -> pd.Series:
        return part.sum(min_count=len(part))

    out = table
    if rows:
        out = out.groupby(lambda label: rows.get(label, label)).apply(total)
    if columns:
        out = out.T.groupby(lambda label: columns.get(label, label)).apply(total).T
    return out


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-|–|to)\s*(\d+)\s*$")
_OPEN_TOP = re.compile(r"^\s*(\d+)\s*(?:\+|and over|or over|and above|or more)\s*$", re.I)
_OPEN_BOTTOM = re.compile(r"^\s*(?:under|less than|<)\s*(\d+)\s*$", re.I)
_INTERVAL = re.compile(r"^\s*([\(\[])\s*(-?\d+)(?:\.0)?\s*,\s*(-?\d+)(?:\.0)?\s*([\)\]])\s*$")


def _band(label: Any) -> tuple[float, float] | None:
    """A band label as the half-open range of whole values it covers, or None."""
    if isinstance(label, pd.Interval):
        label = str(label)
    if not isinstance(label, str):
        return None
    if match := _RANGE.match(label):
        low, high = int(match.group(1)), int(match.group(2))
        return (low, high + 1) if low <= high else None
    if match := _OPEN_TOP.match(label):
        return int(match.group(1)), math.inf
    if match := _OPEN_BOTTOM.match(label):
        return -math.inf, int(match.group(1))
    if match := _INTERVAL.match(label):
        opening, low, high, closing = match.groups()
        low_value = int(low) + (1 if opening == "(" else 0)
        high_value = int(high) + (1 if closing == "]" else 0)
        return (low_value, high_value) if low_value < high_value else None
    return None


def _bands(labels: Sequence[Any]) -> list[tuple[float, float]] | None:
    """Labels that are all non-overlapping bands, as ranges; None otherwise."""
    ranges = [_band(label) for label in labels]
    if not ranges or any(r is None for r in ranges):
        return None
    ordered = sorted(ranges)
    if any(a[1] > b[0] for a, b in itertools.pairwise(ordered)):
        return None
    return ranges


def _band_label(low: float, high: float) -> str:
    if math.isinf(high):
        return f"{int(low)}+"
    if math.isinf(low):
        return f"under {int(high)}"
    return f"{int(low)}-{int(high) - 1}" if high - low > 1 else f"{int(low)}"


@dataclass
class Axis:
    """One dimension common to every table of a comparison, at its common refinement."""

    name: str
    atoms: list[Any]
    dims: list[int]  # per table, its dimension on this axis
    members: list[dict[Any, tuple[int, ...]]]  # per table: class -> atoms it covers
    empty: list[set[int]]  # per table: atoms it publishes as empty categories


def shown_labels(labels: Sequence[Any]) -> str:
    shown = ", ".join(str(label) for label in list(labels)[:4])
    return shown + (", ..." if len(labels) > 4 else "")


def _common_axis(name: str, classes: list[list[Any]]) -> Axis | None:
    sets = [list(dict.fromkeys(c)) for c in classes]
    first = set(sets[0])
    ranges = None if all(set(s) == first for s in sets) else [_bands(s) for s in sets]
    if ranges is not None and all(r is not None for r in ranges):
        points = sorted({p for table in ranges for band in table for p in band})
        atoms = [
            (low, high)
            for low, high in itertools.pairwise(points)
            if any(b[0] <= low and high <= b[1] for table in ranges for b in table)
        ]
        members = [
            {
                label: tuple(i for i, a in enumerate(atoms) if b[0] <= a[0] and a[1] <= b[1])
                for label, b in zip(s, table, strict=True)
            }
            for s, table in zip(sets, ranges, strict=True)
        ]
        return Axis(
            name,
            [_band_label(*a) for a in atoms],
            [],
            members,
            [set() for _ in sets],
        )
    if any(not (first & set(s)) for s in sets[1:]):
        return None
    atoms = list(dict.fromkeys(label for s in sets for label in s))
    index = {label: i for i, label in enumerate(atoms)}
    members = [{label: (index[label],) for label in s} for s in sets]
    empty = [set(range(len(atoms))) - {index[label] for label in s} for s in sets]
    return Axis(name, atoms, [], members, empty)


def _match(reference: Grid, other: Grid) -> dict[int, int]:
    """Reference dimension -> the other table's dimension for the same variable."""
    scored = []
    for i, d in enumerate(reference.dims):
        for j, e in enumerate(other.dims):
            same_name = d.name is not None and d.name == e.name
            overlap = bool(set(d.classes) & set(e.classes))
            names_allow = d.name is None or e.name is None or same_name
            bands = names_allow and _bands(d.classes) is not None and _bands(e.classes) is not None
            if same_name or overlap or bands:
                scored.append(((same_name, overlap), i, j))
    matched: dict[int, int] = {}
    for _, i, j in sorted(scored, key=lambda s: s[0], reverse=True):
        if i not in matched and j not in matched.values():
            matched[i] = j
    return matched


def align(grids: list[Grid]) -> list[Axis]:
    """The dimensions all tables share, each at its common refinement; raises Unjudgeable."""
    reference = grids[0]
    matches = [_match(reference, g) for g in grids[1:]]
    axes = []
    for i, dimension in enumerate(reference.dims):
        if not all(i in m for m in matches):
            continue
        dims = [i] + [m[i] for m in matches]
        classes = [g.dims[d].classes for g, d in zip(grids, dims, strict=True)]
        axis = _common_axis(dimension.describe(), classes)
        if axis is None:
            others = [g.dims[d] for g, d in zip(grids[1:], dims[1:], strict=True)]
            raise Unjudgeable(
                f"the {dimension.describe()} categories of the new table ({shown_labels(classes[0])}) "
                f"and of {others[0].describe()} in the earlier one ({shown_labels(others[0].classes)}) "
                "share no label and are not bands; give a mapping between them"
            )
        axis.dims = dims
        axes.append(axis)
    used = [{axis.dims[k] for axis in axes} for k in range(len(grids))]
    extra = [[d for j, d in enumerate(g.dims) if j not in used[k]] for k, g in enumerate(grids)]
    holders = [k for k, e in enumerate(extra) if e]
    if len(holders) > 1:
        unnamed = [d for k in holders for d in extra[k] if d.name is None]
        # Bands under two names may be one variable recoded (age_band, age_band_2).
        banded = [k for k in holders if any(_bands(d.classes) is not None for d in extra[k])]
        if unnamed or len(banded) > 1:
            shown = "; ".join(
                f"{grids[k].name}: "
                + ", ".join(f"{d.describe()} ({shown_labels(d.labels)})" for d in extra[k])
                for k in holders
            )
            raise Unjudgeable(
                f"cannot tell whether these dimensions are the same variable ({shown}); give "
                "one variable one name in both tables, or give a mapping"
            )
    return axes

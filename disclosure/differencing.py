"""Differencing: a new table that, set against tables already released, exposes small counts.

The check is an attacker with linear programming (SciPy's HiGHS). Every released cell is a
linear measurement of unknown true counts: a published count pins its cell (within the
rounding, below), a margin pins a sum of cells, a suppressed cell is only known to lie in
``[0, minimum count - 1]`` when its table has no margins (then every hidden cell is a primary
suppression) and in ``[0, whatever the margins allow]`` when it has them. Counts are never
negative. The tables of one comparison are aligned on their common dimensions (below), and
the attacker then tries the hypotheses that link their populations:

* **nested**: one population contains the other (a filter that removes a few units, a
  sub-group, a later date); the units in between are a table ``r >= 0`` of their own;
* **sum of two**: one population contains two others that do not overlap (all journeys
  against magistrates' and Crown Court journeys); the rest ``r = whole - part - part >= 0``;
* **same population**: two tables of the same units grouped differently (age bands recoded
  two ways, or different cells suppressed); the cells of their common refinement.

A hypothesis the published figures contradict is dropped (two unrelated tables are safe),
except that two tables sharing only some categories of a variable, with every hypothesis
contradicted, are reported for review: a category renamed or spelt differently ("F" and
"Female") is read as empty in the table without it, which contradicts every hypothesis just as
unrelated populations do and would hide any difference.
Under each one left, the attacker's interval of every exposed cell of ``r`` (and of its
margins), or of every cell of the refinement that neither table publishes, is the tightest
a linear program gets. **Rule**: a cell is disclosive when that interval, rounded inwards to
whole units, lies inside ``[1, minimum count - 1]`` and is narrower than the profile's
protection level (``max(secondary_protection_minimum, secondary_protection_percent% of its
upper end)``, the width suppression itself must leave). A margin of ``r`` is reported only
when none of its cells is. **Rounding**: a count published rounded stands for every count
that rounds to it (``base b``: within ``-b/2 .. +b/2``; controlled: within ``b - 1``;
midpoint-6: its bucket), so a difference that rounding leaves between 0 and the minimum
count is not reported, and one that it still pins inside that range is. A cell whose
interval the check cannot bound (the solver fails, or it is at least 1 with no upper end) is
*unjudged*: the pair is reported for review, never passed.

Covered cases (each against every earlier release of the project, and the sum-of-two case
against every pair of earlier releases):

1. **Nested populations**, cell by cell and through every margin, with suppressed and
   rounded cells on either side.
2. **Recoded categories**: with a mapping from the new table's categories to the earlier
   one's (e.g. ICCS divisions to sections, or one category split out of "other").
3. **Margins**: a one-way table against the margin of an earlier two-way table (and the
   reverse); dimensions are matched by name or shared labels, unmatched named ones summed.
4. **Bands recoded two ways**: age released as 18-24/25-34 in one table and 18-20/21-29/30-34
   in another; their common refinement (18-20, 21-24, 25-29, 30-34) is checked.
5. **A table against the sum or difference of two earlier ones**: ``A = B + C`` exposes
   nothing; ``A - B - C`` small is disclosive, whichever of the three is the new table.

Not covered, and reported as ``review`` ("not checked: needs a checker") rather than passed:
tables whose dimensions cannot be aligned (disjoint categories of one variable with no
mapping, unnamed dimensions or differently named bands that may or may not be the same
variable), a pair sharing only some categories that nothing relates (above), magnitude
tables (differencing of sums needs the per-unit contributions), rounding the check does not
know (or a base under 1). A non-finite cell is a ``DifferencingError``. Not attempted at all: combinations of four or more tables, linear
combinations other than a whole against one or two parts, and populations that overlap
without one containing the other (no hypothesis fits them). Two parts that nest (cumulative
months) can pass for parts that do not overlap, so a sum-of-two finding says "if they do not
overlap" for the checker to confirm.

Cost: one comparison per earlier table and one per pair of earlier tables that a cheap
interval screen cannot rule out, so ``n`` releases cost ``O(n^2)`` screens: 0.5 to 3 seconds
for 50 released tables of 6 to 80 cells with suppression, margins and rounding, on a shared
2-core machine (``tests/disclosure/test_differencing.py``).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linprog
from scipy.sparse import csr_matrix

from disclosure.errors import DisclosureError
from disclosure.evidence import FAIL, REVIEW
from disclosure.policy import SDCProfile
from disclosure.suppression import TOTAL, protection_levels

NOT_CHECKED = "not checked: needs a checker"
_TOLERANCE = 1e-6


class DifferencingError(DisclosureError, ValueError):
    """A differencing request that cannot be checked as posed."""


class _Unjudgeable(Exception):
    """A comparison the check cannot model; its message says why, for the checker."""


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


@dataclass(frozen=True)
class DifferencingFinding:
    """One disclosive difference between the new table and earlier releases, or one comparison
    the check could not judge (``status`` review)."""

    earlier: str
    row: Any
    column: Any
    difference: float
    message: str
    status: str = FAIL
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        def finite(value: float | None) -> float | None:
            return value if value is not None and math.isfinite(value) else None

        return {
            "earlier": self.earlier,
            "row": str(self.row),
            "column": str(self.column),
            "difference": finite(self.difference),
            "interval": [finite(self.low), finite(self.high)],
            "message": self.message,
            "status": self.status,
        }


def _as_frame(table: pd.DataFrame | pd.Series) -> pd.DataFrame:
    return table.to_frame("value") if isinstance(table, pd.Series) else table


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


# ------------------------------------------------------------------ published values
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
        raise _Unjudgeable(
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
class _Dimension:
    name: Any  # the level's name; None when unnamed
    axis: str  # "rows" or "columns" of its table
    labels: list[Any]  # categories, margins excluded, as published
    classes: list[Any]  # the same after the new table's mapping (identity for earlier tables)

    def describe(self) -> str:
        return f"'{self.name}'" if self.name is not None else f"unnamed {self.axis}"


@dataclass
class _Grid:
    """One table's interior cells and what its publication says about them."""

    name: str
    dims: list[_Dimension]
    codes: np.ndarray  # (cells, dims): label index of each interior cell in each dimension
    measured: list[tuple[np.ndarray, float, float]]  # cells summed, true range
    cell_low: np.ndarray  # per cell, the least its true count can be from its own value
    cell_high: np.ndarray
    known: np.ndarray  # per cell: published as a value
    margin: str
    value_column: Any  # the label of a one-column table's column, which is not a dimension


def _grid(
    name: str,
    released: ReleasedTable,
    profile: SDCProfile,
    mappings: Sequence[Mapping[Any, Any] | None] = (None, None),
) -> _Grid:
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
    dims: list[_Dimension] = []
    for axis, index, mapping in (
        ("rows", frame.index, mappings[0]),
        ("columns", frame.columns, mappings[1]),
    ):
        if axis == "columns" and drop_columns:
            continue
        for level in range(index.nlevels):
            labels = [v for v in dict.fromkeys(index.get_level_values(level)) if not is_margin(v)]
            classes = [mapping.get(v, v) if mapping else v for v in labels]
            dims.append(_Dimension(index.names[level], axis, labels, classes))
    sizes = [len(d.labels) for d in dims]
    if any(size == 0 for size in sizes):
        raise _Unjudgeable("it has a dimension with no categories")
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
                    raise _Unjudgeable(f"cell {key} holds {value!r}, not a count") from error
                if not math.isfinite(value):
                    raise DifferencingError(
                        f"{name}: cell {key} is {value:g}, not a count; a count table holds "
                        "finite counts, with NaN for a suppressed cell"
                    )
                if value < 0:
                    raise _Unjudgeable(f"cell {key} is negative ({value:g}), not a count")
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
    return _Grid(
        name, dims, codes, measured, cell_low, cell_high, known, margin or TOTAL, value_column
    )


# ------------------------------------------------------------------ alignment
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
class _Axis:
    """One dimension common to every table of a comparison, at its common refinement."""

    name: str
    atoms: list[Any]
    dims: list[int]  # per table, its dimension on this axis
    members: list[dict[Any, tuple[int, ...]]]  # per table: class -> atoms it covers
    empty: list[set[int]]  # per table: atoms it publishes as empty categories


def _shown(labels: Sequence[Any]) -> str:
    shown = ", ".join(str(label) for label in list(labels)[:4])
    return shown + (", ..." if len(labels) > 4 else "")


def _common_axis(name: str, classes: list[list[Any]]) -> _Axis | None:
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
        return _Axis(
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
    return _Axis(name, atoms, [], members, empty)


def _match(reference: _Grid, other: _Grid) -> dict[int, int]:
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


def _align(grids: list[_Grid]) -> list[_Axis]:
    """The dimensions all tables share, each at its common refinement; raises _Unjudgeable."""
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
            raise _Unjudgeable(
                f"the {dimension.describe()} categories of the new table ({_shown(classes[0])}) "
                f"and of {others[0].describe()} in the earlier one ({_shown(others[0].classes)}) "
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
                + ", ".join(f"{d.describe()} ({_shown(d.labels)})" for d in extra[k])
                for k in holders
            )
            raise _Unjudgeable(
                f"cannot tell whether these dimensions are the same variable ({shown}); give "
                "one variable one name in both tables, or give a mapping"
            )
    return axes


# ------------------------------------------------------------------ the attacker's programme
@dataclass
class _Quantity:
    """A linear function of the unknowns the attacker may pin: a cell of the rest ``r`` (or a
    margin of it), or a cell of the common refinement."""

    atoms: tuple[int, ...]  # atom indices (flat over the atom grid) it sums
    coefficients: dict[int, float]
    location: tuple[Any, Any]
    outer: tuple[float, float] = (-math.inf, math.inf)


@dataclass
class _Hypothesis:
    """How the populations of a comparison relate, for the attacker."""

    whole: int | None  # index of the containing table; None for "same population"
    parts: tuple[int, ...]
    description: str


@dataclass
class _Programme:
    grids: list[_Grid]
    axes: list[_Axis]
    profile: SDCProfile
    offsets: list[int] = field(default_factory=list)  # each table's cells in the variables
    atom_offsets: list[int] = field(default_factory=list)  # each table's atoms
    size: int = 0
    atom_count: int = 1
    eq_rows: list[dict[int, float]] = field(default_factory=list)
    eq_rhs: list[float] = field(default_factory=list)
    ub_rows: list[dict[int, float]] = field(default_factory=list)
    ub_rhs: list[float] = field(default_factory=list)
    bounds: list[tuple[float, float | None]] = field(default_factory=list)
    coarse: list[dict[tuple, np.ndarray]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shape = [len(axis.atoms) for axis in self.axes]
        self.atom_count = int(np.prod(self.shape)) if self.shape else 1
        self.atom_codes = np.array(
            list(itertools.product(*[range(s) for s in self.shape])), dtype=int
        ).reshape(self.atom_count, len(self.shape))
        self._atoms: dict[tuple, np.ndarray] = {}
        position = 0
        for grid in self.grids:
            self.offsets.append(position)
            position += len(grid.codes)
        for _ in self.grids:
            self.atom_offsets.append(position)
            position += self.atom_count
        self.size = position
        for k, grid in enumerate(self.grids):
            groups: dict[tuple, list[int]] = {}
            for cell, codes in enumerate(grid.codes):
                key = tuple(
                    axis.members[k][grid.dims[axis.dims[k]].classes[codes[axis.dims[k]]]]
                    for axis in self.axes
                )
                groups.setdefault(key, []).append(cell)
            self.coarse.append({key: np.array(cells) for key, cells in groups.items()})
        self._built = False

    def _build(self) -> None:
        """The constraints every hypothesis shares: published values and the tables' links."""
        if self._built:
            return
        self.bounds = [(0.0, None)] * self.size
        for k, grid in enumerate(self.grids):
            self._measure(k, grid)
            self._link(k)
        self._built = True

    def _measure(self, k: int, grid: _Grid) -> None:
        offset = self.offsets[k]
        for cell, high in enumerate(grid.cell_high):
            self.bounds[offset + cell] = (0.0, None if math.isinf(high) else float(high))
        for cells, low, high in grid.measured:
            row = {offset + int(c): 1.0 for c in cells}
            if low == high:
                self.eq_rows.append(row)
                self.eq_rhs.append(low)
            else:
                self.ub_rows.append(row)
                self.ub_rhs.append(high)
                self.ub_rows.append({v: -1.0 for v in row})
                self.ub_rhs.append(-low)

    def _link(self, k: int) -> None:
        """The table's cells, summed over its other dimensions, equal its atoms' counts."""
        covered = np.zeros(self.atom_count, dtype=bool)
        for key, cells in self.coarse[k].items():
            atoms = self.atoms_of(key)
            covered[atoms] = True
            row = {self.offsets[k] + int(c): 1.0 for c in cells}
            for atom in atoms:
                row[self.atom_offsets[k] + int(atom)] = -1.0
            self.eq_rows.append(row)
            self.eq_rhs.append(0.0)
        for atom in np.flatnonzero(~covered & self._uncovered_empty(k)):
            self.bounds[self.atom_offsets[k] + int(atom)] = (0.0, 0.0)

    def atoms_of(self, key: tuple) -> np.ndarray:
        """Flat indices of the atoms a coarse cell (atoms per axis) covers."""
        atoms = self._atoms.get(key)
        if atoms is None:
            if not key:
                atoms = np.zeros(1, dtype=int)
            else:
                grid = np.array(list(itertools.product(*key)), dtype=int).reshape(-1, len(key))
                atoms = np.ravel_multi_index(grid.T, self.shape)
            self._atoms[key] = atoms
        return atoms

    def atom_range(self, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Per atom, the range of table k's count from its own cells alone; None when a cell
        of the table spans several atoms (a band the refinement splits)."""
        low = np.zeros(self.atom_count)
        high = np.where(self._uncovered_empty(k), 0.0, np.inf)
        grid = self.grids[k]
        for key, cells in self.coarse[k].items():
            if any(len(members) != 1 for members in key):
                return None
            atom = self.atoms_of(key)[0]
            low[atom] = grid.cell_low[cells].sum()
            high[atom] = grid.cell_high[cells].sum()
        return low, high

    def _uncovered_empty(self, k: int) -> np.ndarray:
        """Per atom: it lies in a category table k lists elsewhere but not here, so is empty."""
        empty = np.zeros(self.atom_count, dtype=bool)
        for a, axis in enumerate(self.axes):
            empty |= np.isin(self.atom_codes[:, a], list(axis.empty[k]))
        return empty

    def published_atoms(self) -> set[int]:
        """Atoms some table publishes as a value (all its cells in them known)."""
        published: set[int] = set()
        for k, grid in enumerate(self.grids):
            for key, cells in self.coarse[k].items():
                atoms = self.atoms_of(key)
                if len(atoms) == 1 and grid.known[cells].all():
                    published.add(int(atoms[0]))
        return published

    def matrices(
        self,
        hypothesis: _Hypothesis,
        extra: Sequence[tuple[dict[int, float], float]] = (),
        size: int | None = None,
    ):
        """The programme's constraints under a hypothesis, with ``extra`` rows ``row <= rhs``
        over ``size`` variables (more than the programme's own for auxiliary ones)."""
        self._build()
        size = size or self.size
        eq_rows, eq_rhs = list(self.eq_rows), list(self.eq_rhs)
        ub_rows, ub_rhs = list(self.ub_rows), list(self.ub_rhs)
        for atom in range(self.atom_count):
            if hypothesis.whole is None:
                a, b = hypothesis.parts
                eq_rows.append(
                    {self.atom_offsets[a] + atom: 1.0, self.atom_offsets[b] + atom: -1.0}
                )
                eq_rhs.append(0.0)
            else:
                ub_rows.append(self.rest({atom}, hypothesis, sign=-1.0))
                ub_rhs.append(0.0)
        for row, rhs in extra:
            ub_rows.append(row)
            ub_rhs.append(rhs)
        return _sparse(eq_rows, size), np.array(eq_rhs), _sparse(ub_rows, size), np.array(ub_rhs)

    def rest(self, atoms: Sequence[int] | set[int], hypothesis: _Hypothesis, sign: float = 1.0):
        row: dict[int, float] = {}
        for atom in atoms:
            row[self.atom_offsets[hypothesis.whole] + atom] = sign
            for part in hypothesis.parts:
                row[self.atom_offsets[part] + atom] = -sign
        return row

    def location(self, atoms: tuple[int, ...], summed: set[int]) -> tuple[Any, Any]:
        """Where a quantity sits in the new table: (row, column) labels, margins as Total."""
        grid = self.grids[0]
        by_dim: dict[int, Any] = {}
        for a, axis in enumerate(self.axes):
            code = self.atom_codes[atoms[0], a]
            by_dim[axis.dims[0]] = grid.margin if a in summed else axis.atoms[code]
        labels = {"rows": [], "columns": []}
        for d, dimension in enumerate(grid.dims):
            labels[dimension.axis].append(by_dim.get(d, grid.margin))
        row = labels["rows"][0] if len(labels["rows"]) == 1 else tuple(labels["rows"])
        if grid.value_column is not None:
            column = grid.value_column
        elif not labels["columns"]:
            column = ""
        else:
            column = (
                labels["columns"][0] if len(labels["columns"]) == 1 else tuple(labels["columns"])
            )
        return row, column


def _sparse(rows: list[dict[int, float]], size: int) -> csr_matrix | None:
    if not rows:
        return None
    data, indices, pointers = [], [], [0]
    for row in rows:
        indices.extend(row.keys())
        data.extend(row.values())
        pointers.append(len(indices))
    return csr_matrix((data, indices, pointers), shape=(len(rows), size))


class _SolverFailure(Exception):
    pass


def _solve(objective: np.ndarray, system, bounds) -> tuple[str, Any]:
    a_eq, b_eq, a_ub, b_ub = system
    result = linprog(
        objective,
        A_ub=a_ub,
        b_ub=b_ub if a_ub is not None else None,
        A_eq=a_eq,
        b_eq=b_eq if a_eq is not None else None,
        bounds=bounds,
        method="highs",
    )
    if result.status == 0:
        return "optimal", result
    if result.status == 2:
        return "infeasible", result
    if result.status == 3:
        return "unbounded", result
    raise _SolverFailure(result.message)


def _quantities(programme: _Programme, hypothesis: _Hypothesis) -> list[_Quantity]:
    """What the attacker tries to pin under a hypothesis, finest first."""
    quantities = []
    if hypothesis.whole is None:
        published = programme.published_atoms()
        for atom in range(programme.atom_count):
            if atom not in published:
                variable = programme.atom_offsets[hypothesis.parts[0]] + atom
                quantities.append(
                    _Quantity((atom,), {variable: 1.0}, programme.location((atom,), set()))
                )
        return quantities
    axes = range(len(programme.axes))
    for summed_count in range(len(programme.axes) + 1):
        for summed in itertools.combinations(axes, summed_count):
            kept = [a for a in axes if a not in summed]
            groups: dict[tuple, list[int]] = {}
            for atom, codes in enumerate(programme.atom_codes):
                groups.setdefault(tuple(codes[kept]), []).append(atom)
            for atoms in groups.values():
                if summed and len(atoms) == 1:
                    continue  # the same as the cell itself
                quantities.append(
                    _Quantity(
                        tuple(atoms),
                        programme.rest(atoms, hypothesis),
                        programme.location(tuple(atoms), set(summed)),
                    )
                )
    return quantities


def _outer_ranges(
    programme: _Programme, hypothesis: _Hypothesis, quantities: list[_Quantity]
) -> None:
    """Interval arithmetic on each table's own cells: wider than the attacker's, never narrower,
    so a quantity it keeps out of [1, minimum count - 1] needs no linear programme."""
    if hypothesis.whole is None:
        return
    ranges = [programme.atom_range(k) for k in range(len(programme.grids))]
    if any(r is None for r in ranges):
        return
    whole_low, whole_high = ranges[hypothesis.whole]
    low = whole_low - sum(ranges[p][1] for p in hypothesis.parts)
    high = whole_high - sum(ranges[p][0] for p in hypothesis.parts)
    for quantity in quantities:
        atoms = list(quantity.atoms)
        quantity.outer = (max(0.0, float(low[atoms].clip(min=0).sum())), float(high[atoms].sum()))


@dataclass
class _Verdict:
    quantity: _Quantity
    low: float
    high: float
    status: str  # FAIL or REVIEW


def _judge(programme: _Programme, hypothesis: _Hypothesis) -> Iterator[_Verdict]:
    """The quantities the attacker pins inside (0, minimum count) under the hypothesis."""
    profile = programme.profile
    smallest, largest = 1.0, profile.minimum_cell_count - 1.0
    quantities = _quantities(programme, hypothesis)
    _outer_ranges(programme, hypothesis, quantities)
    candidates = [
        q for q in quantities if q.outer[1] >= smallest - _TOLERANCE and q.outer[0] <= largest
    ]
    if not candidates:
        return
    system = programme.matrices(hypothesis)
    bounds = programme.bounds
    objective = np.zeros(programme.size)
    for quantity in candidates:
        for variable, coefficient in quantity.coefficients.items():
            objective[variable] += coefficient
    outcome, low_point = _solve(objective, system, bounds)
    if outcome != "optimal":
        return  # the published figures contradict this hypothesis
    candidates = [q for q in candidates if _value(q, low_point.x) > _TOLERANCE]
    if len(candidates) > 1:
        high_point = _capped_maximum(programme, hypothesis, candidates, largest + 1)
        if high_point is not None:
            candidates = [q for q in candidates if _value(q, high_point) < largest + 1 - _TOLERANCE]
    flagged: set[int] = set()
    for quantity in candidates:
        if flagged & set(quantity.atoms):
            continue  # a margin around a cell already reported
        low, high = quantity.outer
        if not (low >= smallest and high <= largest):
            low, high = _interval(programme, quantity, system, bounds)
        low = math.ceil(low - _TOLERANCE)
        high = math.floor(high + _TOLERANCE) if math.isfinite(high) else high
        if low < smallest or high > largest and math.isfinite(high):
            continue
        if math.isinf(high):
            flagged.update(quantity.atoms)
            yield _Verdict(quantity, low, high, REVIEW)
            continue
        if high - low < protection_levels(np.array([high]), profile)[0]:
            flagged.update(quantity.atoms)
            yield _Verdict(quantity, low, high, FAIL)


def _value(quantity: _Quantity, point: np.ndarray) -> float:
    return float(sum(point[v] * c for v, c in quantity.coefficients.items()))


def _capped_maximum(
    programme: _Programme, hypothesis: _Hypothesis, quantities: list[_Quantity], cap: float
) -> np.ndarray | None:
    """A feasible point pushing each quantity up to ``cap``: those it reaches are not small."""
    base = programme.size
    extra_variables = len(quantities)
    rows = []
    for j, quantity in enumerate(quantities):
        row = {v: -c for v, c in quantity.coefficients.items()}
        row[base + j] = 1.0
        rows.append((row, 0.0))  # s_j <= q_j
    size = base + extra_variables
    system = programme.matrices(hypothesis, rows, size)
    objective = np.zeros(size)
    objective[base:] = -1.0
    bounds = list(programme.bounds) + [(0.0, cap)] * extra_variables
    outcome, result = _solve(objective, system, bounds)
    return result.x[:base] if outcome == "optimal" else None


def _interval(programme: _Programme, quantity: _Quantity, system, bounds) -> tuple[float, float]:
    objective = np.zeros(programme.size)
    for variable, coefficient in quantity.coefficients.items():
        objective[variable] = coefficient
    found = []
    for sign in (1.0, -1.0):
        outcome, result = _solve(sign * objective, system, bounds)
        if outcome == "unbounded":
            found.append(math.inf)
        elif outcome == "infeasible":
            raise _SolverFailure("a feasible programme became infeasible")
        else:
            found.append(sign * result.fun)
    return found[0], found[1]


# ------------------------------------------------------------------ comparisons
def _hypotheses(names: list[str], count: int) -> list[_Hypothesis]:
    if count == 2:
        return [
            _Hypothesis(1, (0,), f"the new table's population within {names[1]}'s"),
            _Hypothesis(0, (1,), f"{names[1]}'s population within the new table's"),
            _Hypothesis(None, (0, 1), f"the new table and {names[1]} on the same population"),
        ]
    # The data cannot show that two parts do not overlap (magistrates' and Crown Court
    # journeys) rather than nest (two cumulative months); the finding says so for the checker.
    hypotheses = []
    for whole in range(3):
        first, second = (names[p] for p in range(3) if p != whole)
        hypotheses.append(
            _Hypothesis(
                whole,
                tuple(p for p in range(3) if p != whole),
                f"if {first} and {second} do not overlap, {names[whole]} = {first} + {second} "
                "+ the rest",
            )
        )
    return hypotheses


def _finding(
    earlier: str, hypothesis: _Hypothesis, verdict: _Verdict, minimum: int
) -> DifferencingFinding:
    row, column = verdict.quantity.location
    low, high = verdict.low, verdict.high
    amount = f"{low:g}" if low == high else f"between {low:g} and {high:g}"
    if verdict.status == REVIEW:
        message = (
            f"{NOT_CHECKED} (set against {earlier}, {hypothesis.description}, cell ({row}, "
            f"{column}) is at least {low:g} with no upper bound the check can find)"
        )
    elif hypothesis.whole is None:
        message = (
            f"set against {earlier} ({hypothesis.description}), cell ({row}, {column}) of their "
            f"common refinement can be worked out as {amount} < {minimum}: it is exposed"
        )
    elif len(hypothesis.parts) == 1:
        message = (
            f"set against {earlier} ({hypothesis.description}), cell ({row}, {column}) differs "
            f"by {amount} < {minimum}: the units in between are exposed"
        )
    else:
        message = (
            f"set against {earlier} ({hypothesis.description}), cell ({row}, {column}) leaves "
            f"a rest of {amount} < {minimum}: the units in neither part are exposed"
        )
    return DifferencingFinding(
        earlier,
        row,
        column,
        float(low if low == high else high),
        message,
        verdict.status,
        float(low),
        float(high),
    )


def _not_checked(earlier: str, reason: str) -> DifferencingFinding:
    return DifferencingFinding(
        earlier,
        "",
        "",
        math.nan,
        f"{NOT_CHECKED} (not compared with {earlier}: {reason})",
        REVIEW,
    )


def _consistent(programme: _Programme, hypothesis: _Hypothesis) -> bool:
    """Whether the published figures allow the hypothesis (its programme has a solution)."""
    if hypothesis.whole is not None:
        ranges = [programme.atom_range(k) for k in range(len(programme.grids))]
        if all(r is not None for r in ranges):
            most = ranges[hypothesis.whole][1] - sum(ranges[p][0] for p in hypothesis.parts)
            if (most < -_TOLERANCE).any():
                return False  # the parts outnumber the whole somewhere
    system = programme.matrices(hypothesis)
    outcome, _ = _solve(np.zeros(programme.size), system, programme.bounds)
    return outcome == "optimal"


def _require_related(programme: _Programme, hypotheses: list[_Hypothesis]) -> None:
    """Raise _Unjudgeable when two tables share only some categories of a variable and the
    published figures contradict every hypothesis: a category renamed or spelt differently
    ("F" and "Female", "F "), read as empty in the table without it, contradicts them all
    just as two unrelated populations do, and would hide any difference."""
    only: list[str] = []
    for axis in programme.axes:
        for k, where in ((0, "the new table"), (1, programme.grids[1].name)):
            # Categories the other table lists and this one does not.
            labels = [axis.atoms[i] for i in sorted(axis.empty[1 - k])]
            if labels:
                only.append(f"{axis.name}: {_shown([repr(label) for label in labels])} in {where}")
    if not only or any(_consistent(programme, h) for h in hypotheses):
        return
    raise _Unjudgeable(
        f"categories in only one table: {'; '.join(only)}; the published figures contradict "
        "every way the check relates the two populations, as they would if a category were "
        "renamed; if they are the same category under other names, give a mapping"
    )


def _compare(grids: list[_Grid], earlier: str, profile: SDCProfile) -> list[DifferencingFinding]:
    """Findings of one comparison; raises _Unjudgeable when the tables cannot be aligned, or
    are aligned only in part and nothing relates them."""
    axes = _align(grids)
    programme = _Programme(grids, axes, profile)
    names = ["the new table"] + [g.name for g in grids[1:]]
    hypotheses = _hypotheses(names, len(grids))
    findings: dict[tuple, DifferencingFinding] = {}
    try:
        for hypothesis in hypotheses:
            for verdict in list(_judge(programme, hypothesis)):
                finding = _finding(earlier, hypothesis, verdict, profile.minimum_cell_count)
                findings.setdefault((finding.row, finding.column, finding.status), finding)
        # A finding comes only from a hypothesis the figures allow. Three tables are most
        # often unrelated (no sum of two fits), and each pair among them is judged on its own.
        if not findings and len(grids) == 2:
            _require_related(programme, hypotheses)
    except _SolverFailure as error:
        raise _Unjudgeable(f"the attacker's linear programme failed ({error})") from error
    return list(findings.values())


def _may_expose(grids: list[_Grid], profile: SDCProfile) -> bool:
    """A cheap screen for a comparison of three: can any role of whole and parts leave a rest
    between 1 and the minimum count in some cell? Only tables that share every dimension's
    categories are screened; others are compared in full."""
    try:
        axes = _align(grids)
    except _Unjudgeable:
        return False
    programme = _Programme(grids, axes, profile)
    ranges = [programme.atom_range(k) for k in range(3)]
    if any(r is None for r in ranges):
        return True
    largest = profile.minimum_cell_count - 1
    for whole in range(3):
        parts = [p for p in range(3) if p != whole]
        low = ranges[whole][0] - sum(ranges[p][1] for p in parts)
        high = ranges[whole][1] - sum(ranges[p][0] for p in parts)
        if (high < -_TOLERANCE).any():
            continue  # the parts are larger than the whole somewhere: not this role
        if ((high >= 1) & (low <= largest)).any():
            return True
    return False


def _released(table: Any, name: str) -> ReleasedTable:
    released = table if isinstance(table, ReleasedTable) else ReleasedTable(table)
    if not isinstance(released.table, pd.DataFrame | pd.Series):
        raise DifferencingError(
            f"{name} is a {type(released.table).__name__}; differencing compares tables: pass a "
            "pandas DataFrame or Series, or a ReleasedTable holding one"
        )
    return released


def check_differencing(
    new: pd.DataFrame | pd.Series | ReleasedTable,
    released: Mapping[str, pd.DataFrame | pd.Series | ReleasedTable],
    profile: SDCProfile,
    row_mapping: Mapping[Any, Any] | None = None,
    column_mapping: Mapping[Any, Any] | None = None,
) -> list[DifferencingFinding]:
    """Every cell where ``new``, set against earlier count tables, exposes a small count, and
    every earlier table it could not be judged against (status review).

    Plain frames are taken as published exactly, without margins; pass a ``ReleasedTable`` to
    say how a table was protected (margins, rounding). ``row_mapping``/``column_mapping``
    recode the new table's categories to the earlier tables' classification first.

    >>> findings = check_differencing(
    ...     ReleasedTable(later, margins="Total", rounding="base 5"),
    ...     {"output #3": ReleasedTable(earlier, margins="Total", rounding="base 5")},
    ...     profile,
    ... )  # doctest: +SKIP
    >>> [(f.row, f.column, f.status) for f in findings]  # doctest: +SKIP
    [('F', 'crown', 'fail')]
    """
    new_release = _released(new, "the new table")
    earlier_releases = {name: _released(t, name) for name, t in released.items()}
    everything = f"{len(earlier_releases)} table(s) it is set against"
    if not earlier_releases:
        return []
    if new_release.statistic != "count":
        reason = (
            f"the new table is a {new_release.statistic} table, not counts; differencing of "
            "magnitude tables needs the per-unit contributions"
        )
        return [_not_checked(everything, reason)]
    try:
        new_grid = _grid("the new table", new_release, profile, (row_mapping, column_mapping))
    except _Unjudgeable as error:
        return [_not_checked(everything, f"the new table: {error}")]
    findings: list[DifferencingFinding] = []
    comparable: dict[str, _Grid] = {}
    for name, earlier in earlier_releases.items():
        if earlier.statistic != "count":
            continue  # a magnitude table says nothing about counts the check can use
        try:
            grid = _grid(name, earlier, profile)
            findings.extend(_compare([new_grid, grid], name, profile))
        except _Unjudgeable as error:
            findings.append(_not_checked(name, str(error)))
            continue
        comparable[name] = grid
    for (first, first_grid), (second, second_grid) in itertools.combinations(comparable.items(), 2):
        grids = [new_grid, first_grid, second_grid]
        if not _may_expose(grids, profile):
            continue
        try:
            findings.extend(_compare(grids, f"{first} and {second}", profile))
        except _Unjudgeable as error:
            findings.append(_not_checked(f"{first} and {second}", str(error)))
    return sorted(findings, key=lambda f: f.status != FAIL)

"""Secondary suppression, and the attacker that proves it safe.

A table with its margins (1 to 3 dimensions, each optionally hierarchical, such as ICCS
section > division > group) is a vector of cells ``x`` with additivity constraints
``A x = 0``: every total equals the sum of its parts. Suppressing only the cells that fail
the primary rules is not enough: the margins may let anyone recompute them. Here:

* The attacker knows every published cell, the additivity constraints and the sign of every
  cell (counts, and sums of non-negative contributions, are >= 0; a cell whose value is
  negative is known to be <= 0). Assuming the sign known is the strongest reasonable attacker,
  and for tables without negative cells it is the usual ``x >= 0``.
* ``feasible_intervals`` is that attacker: for each suppressed cell it solves the two linear
  programs min/max x_cell (SciPy's HiGHS), which is the tightest an attacker can get.
* A cell is protected when its interval is at least its *sliding protection level*,
  ``max(minimum, percent * |value|)`` wide (tau-ARGUS's sliding protection range).
* ``secondary_suppression`` adds complementary suppressions until every primary cell is
  protected. For each under-protected cell it finds the cheapest perturbation ``y`` with
  ``A y = 0``, ``|y_cell| = protection`` and ``x + y`` of the same signs as ``x`` (cells
  already suppressed cost nothing, others their value), and suppresses its support. Plain
  two-way tables of non-negative cells use a vectorised rectangle search (the classic
  hypercube idea in two dimensions) instead of one linear program per cell.
* Every primary cell ends with a *certificate*: two tables the attacker cannot tell from the
  true one (they differ from it only in suppressed cells, add up, and keep every sign), whose
  values of that cell are at least its protection level apart. The attacker's interval holds
  both, so it is at least that wide. ``secondary_suppression`` checks every certificate
  against the constraints before returning (cheap: sparse products, no linear programs);
  ``feasible_intervals`` gives the exact intervals when they are wanted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, csc_matrix, csr_matrix, hstack, vstack

from disclosure.errors import DisclosureError, UnusableValuesError
from disclosure.evidence import FAIL, TableCheck
from disclosure.policy import SDCProfile

TOTAL = "Total"


class SuppressionError(DisclosureError, ValueError):
    """A suppression problem that cannot be solved as posed (bad hierarchy, infeasible)."""


@dataclass
class LinearTable:
    """Cells of a table with margins, their values, and the additivity constraints A x = 0."""

    dimensions: list[list[Any]]  # per dimension: the labels, parents and TOTAL included
    values: np.ndarray  # flat, one per cell (C order over the dimensions)
    constraints: csr_matrix
    interior: np.ndarray  # flat mask: cells that are not totals of any dimension
    hierarchies: list[dict[Any, list[Any]]] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(d) for d in self.dimensions)

    def label(self, cell: int) -> tuple:
        """The labels (one per dimension) of flat cell ``cell``."""
        position = np.unravel_index(cell, self.shape)
        return tuple(self.dimensions[d][p] for d, p in enumerate(position))

    def index_of(self, labels: Sequence[Any]) -> int:
        """The flat cell of a tuple of labels, one per dimension."""
        if len(labels) != len(self.shape):
            raise SuppressionError(
                f"{tuple(labels)!r} has {len(labels)} label(s) but the table has "
                f"{len(self.shape)} dimensions; give one label per dimension"
            )
        position = []
        for d, label in enumerate(labels):
            if label not in self.dimensions[d]:
                raise SuppressionError(
                    f"{label!r} is not a category of dimension {d} of the table; it has "
                    f"{self.dimensions[d][:10]}"
                )
            position.append(self.dimensions[d].index(label))
        return int(np.ravel_multi_index(tuple(position), self.shape))

    def as_frame(self, values: np.ndarray | None = None) -> pd.DataFrame:
        """The table with margins as a DataFrame (two-way tables; others as a long frame)."""
        data = (self.values if values is None else values).reshape(self.shape)
        if len(self.shape) == 2:
            return pd.DataFrame(data, index=self.dimensions[0], columns=self.dimensions[1])
        index = pd.MultiIndex.from_product(self.dimensions)
        return pd.DataFrame({"value": data.ravel()}, index=index)


def _extended(
    labels: list[Any], hierarchy: Mapping[Any, list[Any]] | None
) -> tuple[list[Any], dict[Any, list[Any]]]:
    """A dimension's labels with its parents and TOTAL, and parent -> children (TOTAL on top)."""
    hierarchy = dict(hierarchy or {})
    children_of = {parent: list(children) for parent, children in hierarchy.items()}
    has_parent = {child for children in children_of.values() for child in children}
    leaves = [label for label in labels if label not in children_of]
    unknown = [
        label
        for children in children_of.values()
        for label in children
        if label not in labels and label not in children_of
    ]
    if unknown:
        raise SuppressionError(
            f"hierarchy names categories that are not in the table: {unknown[:5]}"
        )
    missing = [
        label
        for label in labels
        if label not in has_parent and label not in children_of and hierarchy
    ]
    roots = [p for p in children_of if p not in has_parent] + missing if hierarchy else list(labels)
    if TOTAL in labels:
        raise SuppressionError(f"{TOTAL!r} is reserved for the grand total")
    children_of[TOTAL] = roots
    ordered = [*leaves, *[p for p in children_of if p != TOTAL], TOTAL]
    return ordered, children_of


def _axis_codes(index: pd.Index) -> tuple[list[list[Any]], list[np.ndarray]]:
    """The dimensions of a (Multi)Index: each level's labels and each entry's code in it."""
    if isinstance(index, pd.MultiIndex):
        index = index.remove_unused_levels()
        return [list(level) for level in index.levels], [np.asarray(c) for c in index.codes]
    codes, uniques = pd.factorize(index)
    return [list(uniques)], [np.asarray(codes)]


def linear_table(
    table: pd.Series | pd.DataFrame,
    hierarchies: Sequence[Mapping[Any, list[Any]] | None] | None = None,
) -> LinearTable:
    """Build the cells and constraints of a table of leaf values, adding every margin.

    ``table`` is a Series (one dimension, or several through a MultiIndex) or a DataFrame of
    leaf cells whose row and column (Multi)Indexes are the dimensions, rows first.
    ``hierarchies[d]`` maps a parent category of dimension ``d`` to its children (e.g. ICCS
    section -> divisions); parents get their own cells and rows. Missing values count as 0.
    """
    return _linear_table_at(table, hierarchies)[0]


def _linear_table_at(
    table: pd.Series | pd.DataFrame,
    hierarchies: Sequence[Mapping[Any, list[Any]] | None] | None = None,
) -> tuple[LinearTable, np.ndarray]:
    """``linear_table``, and the flat cell of each entry of ``table`` (C order for a frame)."""
    if isinstance(table, pd.DataFrame):
        row_labels, row_codes = _axis_codes(table.index)
        column_labels, column_codes = _axis_codes(table.columns)
        columns = len(table.columns)
        level_labels = row_labels + column_labels
        codes = [np.repeat(c, columns) for c in row_codes] + [
            np.tile(c, len(table.index)) for c in column_codes
        ]
        leaf_values = table.to_numpy(dtype=float, na_value=np.nan).ravel()
    else:
        level_labels, codes = _axis_codes(table.index)
        leaf_values = table.to_numpy(dtype=float, na_value=np.nan)
    dims = len(level_labels)
    if dims > 3:
        raise SuppressionError("tables of more than 3 dimensions are not supported")
    hierarchies = list(hierarchies or [None] * dims)
    if len(hierarchies) != dims:
        raise SuppressionError(
            f"{len(hierarchies)} hierarchies given for a table of {dims} dimensions; give one "
            "per dimension (None where there is none)"
        )
    extended, children = zip(
        *(_extended(labels, hierarchies[d]) for d, labels in enumerate(level_labels)), strict=True
    )
    extended = [list(e) for e in extended]
    shape = tuple(len(e) for e in extended)
    values = np.zeros(shape)
    positions = tuple(
        np.asarray([extended[d].index(label) for label in level_labels[d]], dtype=np.int64)[
            codes[d]
        ]
        for d in range(dims)
    )
    # Missing leaves count as 0; an infinite one stays infinite, for protection to refuse.
    np.add.at(values, positions, np.where(np.isnan(leaf_values), 0.0, leaf_values))
    flat_positions = np.ravel_multi_index(positions, shape)
    # Totals bottom-up, dimension by dimension: each parent is the sum of its children.
    for d in range(dims):
        order = [p for p in extended[d] if p in children[d]]
        for parent in _topological(children[d], order):
            take = [extended[d].index(c) for c in children[d][parent]]
            index = [slice(None)] * dims
            index[d] = extended[d].index(parent)
            values[tuple(index)] = np.take(values, take, axis=d).sum(axis=d)
    cell_ids = np.arange(values.size).reshape(shape)
    blocks, constraint = [], 0
    for d in range(dims):
        moved = np.moveaxis(cell_ids, d, 0).reshape(shape[d], -1)  # dimension d by the others
        for parent, kids in children[d].items():
            parent_cells = moved[extended[d].index(parent)]
            kid_cells = moved[[extended[d].index(k) for k in kids]]
            count = parent_cells.size
            rows = constraint + np.arange(count)
            blocks.append((rows, parent_cells, np.ones(count)))
            blocks.append((np.tile(rows, len(kids)), kid_cells.ravel(), -np.ones(kid_cells.size)))
            constraint += count
    rows, cols, data = (np.concatenate(part) for part in zip(*blocks, strict=True))
    matrix = coo_matrix((data, (rows, cols)), shape=(constraint, values.size)).tocsr()
    interior = np.ones(shape, dtype=bool)
    for d in range(dims):
        index = [slice(None)] * dims
        index[d] = [extended[d].index(p) for p in children[d]]
        interior[tuple(index)] = False
    table = LinearTable(
        extended, values.ravel(), matrix, interior.ravel(), [dict(c) for c in children]
    )
    return table, flat_positions


def _topological(children: Mapping[Any, list[Any]], parents: list[Any]) -> list[Any]:
    """Parents ordered so that every parent comes after its own parent children."""
    done: list[Any] = []
    seen: set[Any] = set()

    def visit(node: Any, path: tuple = ()) -> None:
        if node in path:
            raise SuppressionError(f"the hierarchy has a cycle through {node!r}")
        if node in seen or node not in children:
            return
        for child in children[node]:
            visit(child, (*path, node))
        seen.add(node)
        done.append(node)

    for parent in parents:
        visit(parent)
    return done


def protection_levels(values: np.ndarray, profile: SDCProfile) -> np.ndarray:
    """Sliding protection level of each cell: max(minimum, percent of its absolute value)."""
    return np.maximum(
        profile.secondary_protection_minimum,
        np.abs(values) * profile.secondary_protection_percent / 100,
    )


def sign_bounds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the attacker knows of each cell besides the published ones: its sign. A cell of
    value >= 0 lies in [0, inf), a negative one in (-inf, 0]."""
    negative = np.asarray(values) < 0
    return np.where(negative, -np.inf, 0.0), np.where(negative, 0.0, np.inf)


def _attacker_system(table: LinearTable, suppressed: np.ndarray):
    hidden = np.flatnonzero(suppressed)
    known = ~suppressed
    matrix = table.constraints
    a_hidden = matrix[:, hidden]
    rhs = -(matrix[:, np.flatnonzero(known)] @ table.values[known])
    used = np.asarray(abs(a_hidden).sum(axis=1)).ravel() > 0
    return hidden, a_hidden[used], rhs[used]


def _extreme(a_hidden, rhs, bounds, position: int, sign: float) -> tuple[int, np.ndarray | None]:
    """Push hidden variable ``position`` as low (sign 1) or high (sign -1) as it goes within
    ``bounds``: the LP's status and its solution."""
    objective = np.zeros(len(bounds))
    objective[position] = sign
    result = linprog(objective, A_eq=a_hidden, b_eq=rhs, bounds=bounds, method="highs")
    if result.status not in (0, 3):  # 3: unbounded
        raise SuppressionError(f"the attacker's linear program failed: {result.message}")
    return result.status, result.x


def feasible_intervals(
    table: LinearTable, suppressed: np.ndarray, cells: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The attacker: for each suppressed cell (or just ``cells``), the smallest and largest
    value it can take given every published cell, the additivity constraints and every cell's
    sign (infinite if unbounded). Other cells get NaN."""
    suppressed = np.asarray(suppressed, dtype=bool)
    lower, upper = np.full(table.values.size, np.nan), np.full(table.values.size, np.nan)
    hidden, a_hidden, rhs = _attacker_system(table, suppressed)
    low, high = sign_bounds(table.values[hidden])
    bounds = list(zip(low, np.where(np.isinf(high), None, high), strict=True))
    bounds = [(None if np.isinf(lo) else lo, hi) for lo, hi in bounds]
    position_of = {cell: position for position, cell in enumerate(hidden)}
    for cell in hidden if cells is None else cells:
        position = position_of[cell]
        found = []
        for sign in (1.0, -1.0):
            status, x = _extreme(a_hidden, rhs, bounds, position, sign)
            found.append(-sign * np.inf if status == 3 else x[position])
        lower[cell], upper[cell] = found
    return lower, upper


@dataclass
class _Certificates:
    """Per protected cell, two tables the attacker cannot tell from the true one, as sparse
    perturbations ``high`` and ``low`` of it (cells, amounts): see the module's docstring."""

    cell: list[int] = field(default_factory=list)
    support: list[np.ndarray] = field(default_factory=list)
    high: list[np.ndarray] = field(default_factory=list)
    low: list[np.ndarray] = field(default_factory=list)

    def add(self, cell: int, support: np.ndarray, high: np.ndarray, low: np.ndarray) -> None:
        self.cell.append(int(cell))
        self.support.append(np.asarray(support, dtype=np.int64))
        self.high.append(np.asarray(high, dtype=float))
        self.low.append(np.asarray(low, dtype=float))

    def matrices(self, cells: int) -> tuple[csc_matrix, csc_matrix]:
        """The perturbations as columns of two sparse matrices, one column per certificate."""
        lengths = [len(s) for s in self.support]
        rows = np.concatenate(self.support) if lengths else np.zeros(0, dtype=np.int64)
        columns = np.repeat(np.arange(len(lengths)), lengths)
        shape = (cells, len(lengths))

        def build(amounts: list[np.ndarray]) -> csc_matrix:
            data = np.concatenate(amounts) if lengths else np.zeros(0)
            return csc_matrix((data, (rows, columns)), shape=shape)

        return build(self.high), build(self.low)


def _verify(
    table: LinearTable,
    suppressed: np.ndarray,
    primary: np.ndarray,
    levels: np.ndarray,
    certificates: _Certificates,
) -> tuple[np.ndarray, np.ndarray]:
    """Check every primary cell's certificate: both perturbed tables add up, change only
    suppressed cells, keep every cell's sign, and the cell's two values are at least its
    protection level apart. Returns those two values per primary cell (NaN elsewhere); the
    attacker's exact interval contains them. A certificate that fails (numerical noise from a
    linear program) is replaced by the attacker's exact interval; a cell still narrower than
    its level is an error."""
    n = table.values.size
    x = table.values
    tolerance = 1e-6 * max(1.0, float(np.abs(x).max(initial=0.0)))
    low_bound, high_bound = sign_bounds(x)
    high, low = certificates.matrices(n)
    cells = np.asarray(certificates.cell, dtype=np.int64)
    valid = np.ones(len(cells), dtype=bool)
    for perturbation in (high, low):
        residual = abs(table.constraints @ perturbation)
        valid &= np.asarray(residual.max(axis=0).todense()).ravel() <= tolerance
        coo = perturbation.tocoo()
        moved = x[coo.row] + coo.data
        wrong = (
            ~suppressed[coo.row]
            | (moved < low_bound[coo.row] - tolerance)
            | (moved > high_bound[coo.row] + tolerance)
        ) & (coo.data != 0)
        valid[np.unique(coo.col[wrong])] = False
    lower, upper = np.full(n, np.nan), np.full(n, np.nan)
    at = np.arange(len(cells))
    rise = np.asarray(high[cells, at]).ravel() if len(cells) else np.zeros(0)
    fall = np.asarray(low[cells, at]).ravel() if len(cells) else np.zeros(0)
    lower[cells] = x[cells] + np.minimum(rise, fall)
    upper[cells] = x[cells] + np.maximum(rise, fall)
    valid &= upper[cells] - lower[cells] >= levels[cells] - tolerance
    lower[cells[~valid]] = upper[cells[~valid]] = np.nan
    unchecked = np.flatnonzero(primary & np.isnan(upper))
    if unchecked.size:
        exact_lower, exact_upper = feasible_intervals(table, suppressed, cells=unchecked)
        lower[unchecked], upper[unchecked] = exact_lower[unchecked], exact_upper[unchecked]
    narrow = primary & ~(upper - lower >= levels - tolerance)
    if narrow.any():
        cell = int(np.flatnonzero(narrow)[0])
        raise SuppressionError(
            f"cell {table.label(cell)} can still be narrowed to [{lower[cell]:g}, "
            f"{upper[cell]:g}], less than its protection level {levels[cell]:g}; this is a "
            "fault in the suppression, please report it with the table"
        )
    return lower, upper


def _capped_extremes(
    table: LinearTable, suppressed: np.ndarray, cell: int, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """If the current suppression already protects ``cell``: its certificate (the hidden
    cells, and two attacker-feasible perturbations at least ``level`` apart in ``cell``);
    else None. The cell's own bounds are capped at ``level`` either side, so the linear
    programs are bounded and their solutions are the certificate."""
    hidden, a_hidden, rhs = _attacker_system(table, suppressed)
    x = table.values[hidden]
    low, high = sign_bounds(x)
    position = int(np.searchsorted(hidden, cell))
    low[position] = max(low[position], x[position] - level)
    high[position] = min(high[position], x[position] + level)
    bounds = [
        (None if np.isinf(lo) else lo, None if np.isinf(hi) else hi)
        for lo, hi in zip(low, high, strict=True)
    ]
    points = []
    for sign in (1.0, -1.0):
        status, point = _extreme(a_hidden, rhs, bounds, position, sign)
        if status != 0:
            return None
        points.append(point)
    smallest, largest = points
    if largest[position] - smallest[position] < level - 1e-9 * max(1.0, abs(x[position])):
        return None
    return hidden, largest - x, smallest - x


def _cheapest_perturbation(
    table: LinearTable, cell: int, amount: float, suppressed: np.ndarray, costs: np.ndarray
) -> np.ndarray:
    """The cheapest change ``y`` of the table that moves ``cell`` by ``amount`` away from zero
    (up if it is >= 0, down if negative) while all totals still add up and every cell keeps
    its sign; cells already suppressed cost nothing. Suppressing its support protects the cell."""
    n = table.values.size
    x = table.values
    # y = up - down with up, down >= 0; x + y keeps x's sign: a cell >= 0 falls at most x, a
    # negative cell rises at most -x.
    cost = np.where(suppressed, 0.0, costs)
    cost = np.concatenate([cost, cost])
    matrix = table.constraints
    pin = coo_matrix(([1.0, -1.0], ([0, 0], [cell, n + cell])), shape=(1, 2 * n))
    a_eq = vstack([hstack([matrix, -matrix]), pin]).tocsr()
    direction = 1.0 if x[cell] >= 0 else -1.0
    b_eq = np.concatenate([np.zeros(matrix.shape[0]), [direction * amount]])
    rise = [(0, None) if v >= 0 else (0, -v) for v in x]
    fall = [(0, v) if v >= 0 else (0, None) for v in x]
    result = linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=rise + fall, method="highs")
    if result.status != 0:
        raise SuppressionError(
            f"no complementary suppression protects {table.label(cell)}: {result.message}"
        )
    y = result.x[:n] - result.x[n:]
    y[np.abs(y) <= 1e-9] = 0.0
    return y


def _rectangles_2d(
    table: LinearTable,
    primary: np.ndarray,
    suppressed: np.ndarray,
    levels: np.ndarray,
    costs: np.ndarray,
    certificates: _Certificates,
) -> np.ndarray:
    """Two-way tables of non-negative cells: protect each interior primary cell (i, j) with
    the cheapest rectangle (i, j), (i, l), (k, j), (k, l) of interior cells whose moves give
    it room: rising by t needs (i, l) and (k, j) to fall by t, falling needs (i, j) and
    (k, l) to. Each rectangle is the cell's certificate."""
    rows, cols = table.shape
    x = table.values.reshape(rows, cols)
    inner = table.interior.reshape(rows, cols)
    r_in, c_in = np.flatnonzero(inner.any(axis=1)), np.flatnonzero(inner.any(axis=0))
    sub = x[np.ix_(r_in, c_in)]
    price_of = costs.reshape(rows, cols)[np.ix_(r_in, c_in)]
    hidden = suppressed.reshape(rows, cols).copy()
    inner_hidden = hidden[np.ix_(r_in, c_in)]
    row_at = {r: k for k, r in enumerate(r_in)}
    column_at = {c: k for k, c in enumerate(c_in)}
    for cell in np.flatnonzero(primary & table.interior):
        i, j = np.unravel_index(cell, (rows, cols))
        ii, jj = row_at[i], column_at[j]
        free_cost = np.where(inner_hidden, 0.0, price_of)
        room = np.minimum(sub[ii, :][None, :], sub[:, jj][:, None]) + np.minimum(x[i, j], sub)
        price = free_cost + free_cost[ii, :][None, :] + free_cost[:, jj][:, None]
        price[room < levels[cell]] = np.inf
        price[ii, :] = np.inf
        price[:, jj] = np.inf
        k, col = np.unravel_index(np.argmin(price), price.shape)
        if not np.isfinite(price[k, col]):
            continue  # left for the general method
        inner_hidden[ii, jj] = inner_hidden[ii, col] = inner_hidden[k, jj] = True
        inner_hidden[k, col] = True
        corners = np.ravel_multi_index(
            ([i, i, r_in[k], r_in[k]], [j, c_in[col], j, c_in[col]]), (rows, cols)
        )
        pattern = np.array([1.0, -1.0, -1.0, 1.0])
        up = min(sub[ii, col], sub[k, jj])
        down = min(x[i, j], sub[k, col])
        certificates.add(cell, corners, up * pattern, -down * pattern)
    hidden[np.ix_(r_in, c_in)] |= inner_hidden
    return hidden.ravel()


@dataclass
class SuppressionResult:
    """Which cells are hidden, why, and the intervals that prove it safe.

    ``lower`` and ``upper`` hold, for each primary cell, two values the attacker cannot rule
    out (from its certificate), at least its protection level apart: the attacker's exact
    interval (``feasible_intervals``) contains them. Other cells, and all cells when built
    without verification, hold NaN.
    """

    table: LinearTable
    primary: np.ndarray
    suppressed: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    levels: np.ndarray

    @property
    def secondary(self) -> np.ndarray:
        return self.suppressed & ~self.primary

    def published(self) -> pd.DataFrame:
        """The table with margins, suppressed cells as NaN."""
        return self.table.as_frame(np.where(self.suppressed, np.nan, self.table.values))

    def under_protected(self) -> list[tuple]:
        """Labels of primary cells whose interval is narrower than their protection level."""
        width = self.upper - self.lower
        bad = self.primary & ~(width >= self.levels - 1e-6)
        return [self.table.label(c) for c in np.flatnonzero(bad)]


def secondary_suppression(
    table: LinearTable,
    primary: np.ndarray,
    profile: SDCProfile,
    *,
    verify: bool = True,
    cost: str = "value",
) -> SuppressionResult:
    """Add complementary suppressions until no primary cell can be recomputed too closely.

    ``primary`` marks the cells that failed primary checks (flat, one per cell of ``table``).
    ``cost`` is ``value`` (hide as little of the total as possible) or ``cells`` (hide as few
    cells as possible). Cells may be negative (sums of values that can be): the attacker is
    assumed to know every cell's sign, and a negative cell is protected by moving it further
    from zero. With ``verify``, every primary cell's certificate is checked and its certified
    interval returned (see ``SuppressionResult``).
    """
    primary = np.asarray(primary, dtype=bool)
    if primary.shape != table.values.shape:
        raise SuppressionError(
            f"primary marks {primary.size} cells but the table has {table.values.size}"
        )
    if cost not in ("value", "cells"):
        raise SuppressionError("cost is 'value' or 'cells'")
    if not np.isfinite(table.values).all():
        cell = int(np.flatnonzero(~np.isfinite(table.values))[0])
        raise UnusableValuesError(
            f"cell {table.label(cell)} is {table.values[cell]}: a table with infinite cells "
            "cannot be protected; check the values it was built from"
        )
    costs = np.abs(table.values) + 1e-3 if cost == "value" else np.ones(table.values.size)
    levels = np.where(primary, protection_levels(table.values, profile), 0.0)
    suppressed = primary.copy()
    certificates = _Certificates()
    plain_two_way = len(table.shape) == 2 and not any(len(h) > 1 for h in table.hierarchies)
    if plain_two_way and (table.values >= 0).all():
        suppressed = _rectangles_2d(table, primary, suppressed, levels, costs, certificates)
    done = np.zeros(table.values.size, dtype=bool)
    done[certificates.cell] = True
    for cell in np.flatnonzero(primary & ~done):
        found = _capped_extremes(table, suppressed, cell, levels[cell])
        if found is None:
            y = _cheapest_perturbation(table, cell, levels[cell], suppressed, costs)
            support = np.flatnonzero(y)
            suppressed[support] = True
            certificates.add(cell, support, y[support], np.zeros(support.size))
        else:
            hidden, high, low = found
            moved = (high != 0) | (low != 0)
            certificates.add(cell, hidden[moved], high[moved], low[moved])
    if verify:
        lower, upper = _verify(table, suppressed, primary, levels, certificates)
    else:
        lower = upper = np.full(table.values.size, np.nan)
    return SuppressionResult(table, primary, suppressed, lower, upper, levels)


def protect_table(
    check: TableCheck,
    profile: SDCProfile,
    hierarchies: Sequence[Mapping[Any, list[Any]] | None] | None = None,
) -> SuppressionResult:
    """From a checked count or sum table to a publishable one: its margins added, failing cells
    suppressed, and complementary cells suppressed so none can be recomputed.

    The table's dimensions are its row keys then its column keys (1 to 3 in all), so a check
    of ``index=["a", "b"], columns="c"`` is a three-way table; ``hierarchies`` has one entry
    per dimension. Cells with no records count as 0. A count table with a negative cell is
    refused; a sum table's negative cells are protected as ``secondary_suppression`` says.

    >>> result = protect_table(check_table(journeys, index="iccs_section",
    ...                                    columns="sentence_type", profile=profile), profile)  # doctest: +SKIP
    >>> result.published()                                                                        # doctest: +SKIP
    """
    if check.statistic not in ("count", "sum"):
        raise SuppressionError(
            f"a {check.statistic} table has no additive margins; secondary suppression needs counts or sums"
        )
    columns = check.table.columns
    one_way = columns.nlevels == 1 and list(columns) == ["value"]
    if one_way:
        leaves = check.table["value"]
        failing = (check.status["value"] == FAIL).to_numpy()
    else:
        leaves = check.table
        failing = (check.status == FAIL).to_numpy().ravel()
    if check.statistic == "count":
        counts = leaves.to_numpy(dtype=float, na_value=np.nan).ravel()
        if (counts < 0).any():
            at = int(np.flatnonzero(counts < 0)[0])
            if one_way:
                labels = leaves.index[at]
            else:
                row, column = divmod(at, len(columns))
                labels = (leaves.index[row], columns[column])
            raise UnusableValuesError(
                f"count table cell {labels!r} is {counts[at]:g}: counts cannot be negative; "
                "check how the table was built (a count table comes from check_table)"
            )
    table, positions = _linear_table_at(leaves, hierarchies)
    primary = np.zeros(table.values.size, dtype=bool)
    primary[positions[failing]] = True
    return secondary_suppression(table, primary, profile)

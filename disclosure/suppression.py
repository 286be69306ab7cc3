"""Secondary suppression, and the attacker that proves it safe.

A table with its margins (1 to 3 dimensions, each optionally hierarchical, such as ICCS
section > division > group) is a vector of cells ``x`` with additivity constraints
``A x = 0``: every total equals the sum of its parts. Suppressing only the cells that fail
the primary rules is not enough: the margins may let anyone recompute them. Here:

* ``feasible_intervals`` is the attacker: for each suppressed cell it solves the two linear
  programs min/max x_cell subject to the published cells, the additivity constraints and
  x >= 0 (SciPy's HiGHS), which is the tightest an attacker can get.
* A cell is protected when its interval is at least its *sliding protection level*,
  ``max(minimum, percent * value)`` wide (tau-ARGUS's sliding protection range).
* ``secondary_suppression`` adds complementary suppressions until every primary cell is
  protected. For each under-protected cell it finds the cheapest perturbation ``y`` with
  ``A y = 0``, ``y_cell = +protection`` and ``x + y >= 0`` (cells already suppressed cost
  nothing, others their value), and suppresses its support. That perturbation remains
  feasible for the attacker, so protection holds by construction, and suppressing more
  cells only widens intervals. Plain two-way tables use a vectorised rectangle search
  (the classic hypercube idea in two dimensions) instead of one linear program per cell.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, csr_matrix, hstack, vstack

from disclosure.errors import DisclosureError
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
        """The flat cell of a tuple of labels."""
        return int(
            np.ravel_multi_index(
                tuple(self.dimensions[d].index(label) for d, label in enumerate(labels)), self.shape
            )
        )

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


def linear_table(
    table: pd.Series | pd.DataFrame,
    hierarchies: Sequence[Mapping[Any, list[Any]] | None] | None = None,
) -> LinearTable:
    """Build the cells and constraints of a table of leaf values, adding every margin.

    ``table`` is a Series (one dimension, or several through a MultiIndex) or a two-way
    DataFrame of leaf cells. ``hierarchies[d]`` maps a parent category of dimension ``d`` to
    its children (e.g. ICCS section -> divisions); parents get their own cells and rows.
    """
    series = table.stack(future_stack=True) if isinstance(table, pd.DataFrame) else table
    if isinstance(series.index, pd.MultiIndex):
        level_labels = [list(level) for level in series.index.levels]
        codes = series.index.codes
    else:
        level_labels = [list(series.index.unique())]
        codes = [pd.Index(level_labels[0]).get_indexer(series.index)]
    dims = len(level_labels)
    if dims > 3:
        raise SuppressionError("tables of more than 3 dimensions are not supported")
    hierarchies = list(hierarchies or [None] * dims)
    extended, children = zip(
        *(_extended(labels, hierarchies[d]) for d, labels in enumerate(level_labels)), strict=True
    )
    extended = [list(e) for e in extended]
    shape = tuple(len(e) for e in extended)
    values = np.zeros(shape)
    positions = tuple(
        np.asarray([extended[d].index(level_labels[d][c]) for c in codes[d]]) for d in range(dims)
    )
    np.add.at(values, positions, np.nan_to_num(series.to_numpy(dtype=float)))
    # Totals bottom-up, dimension by dimension: each parent is the sum of its children.
    for d in range(dims):
        order = [p for p in extended[d] if p in children[d]]
        for parent in _topological(children[d], order):
            take = [extended[d].index(c) for c in children[d][parent]]
            index = [slice(None)] * dims
            index[d] = extended[d].index(parent)
            values[tuple(index)] = np.take(values, take, axis=d).sum(axis=d)
    rows, cols, data = [], [], []
    constraint = 0
    cell_ids = np.arange(values.size).reshape(shape)
    for d in range(dims):
        other_axes = [range(shape[o]) for o in range(dims) if o != d]
        for parent, kids in children[d].items():
            p = extended[d].index(parent)
            ks = [extended[d].index(k) for k in kids]
            for other in itertools.product(*other_axes):

                def at(position: int, other=other, axis=d) -> int:
                    full = list(other)
                    full.insert(axis, position)
                    return int(cell_ids[tuple(full)])

                rows.append(constraint)
                cols.append(at(p))
                data.append(1.0)
                for k in ks:
                    rows.append(constraint)
                    cols.append(at(k))
                    data.append(-1.0)
                constraint += 1
    matrix = coo_matrix((data, (rows, cols)), shape=(constraint, values.size)).tocsr()
    interior = np.ones(shape, dtype=bool)
    for d in range(dims):
        index = [slice(None)] * dims
        index[d] = [extended[d].index(p) for p in children[d]]
        interior[tuple(index)] = False
    return LinearTable(
        extended, values.ravel(), matrix, interior.ravel(), [dict(c) for c in children]
    )


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
    """Sliding protection level of each cell: max(minimum, percent of its value)."""
    return np.maximum(
        profile.secondary_protection_minimum,
        np.abs(values) * profile.secondary_protection_percent / 100,
    )


def _attacker_system(table: LinearTable, suppressed: np.ndarray):
    hidden = np.flatnonzero(suppressed)
    known = ~suppressed
    matrix = table.constraints
    a_hidden = matrix[:, hidden]
    rhs = -(matrix[:, np.flatnonzero(known)] @ table.values[known])
    used = np.asarray(abs(a_hidden).sum(axis=1)).ravel() > 0
    return hidden, a_hidden[used], rhs[used]


def _solve_interval(a_hidden, rhs, position: int, size: int) -> tuple[float, float]:
    found = []
    objective = np.zeros(size)
    for sign in (1.0, -1.0):
        objective[position] = sign
        result = linprog(objective, A_eq=a_hidden, b_eq=rhs, bounds=(0, None), method="highs")
        if result.status == 3:  # unbounded
            found.append(-np.inf if sign > 0 else np.inf)
        elif result.status == 0:
            found.append(sign * result.fun)
        else:
            raise SuppressionError(f"the attacker's linear program failed: {result.message}")
    return found[0], found[1]


def feasible_intervals(
    table: LinearTable, suppressed: np.ndarray, cells: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The attacker: for each suppressed cell (or just ``cells``), the smallest and largest
    value it can take given every published cell, the additivity constraints and
    non-negativity (infinite if unbounded). Other cells get NaN."""
    suppressed = np.asarray(suppressed, dtype=bool)
    lower, upper = np.full(table.values.size, np.nan), np.full(table.values.size, np.nan)
    hidden, a_hidden, rhs = _attacker_system(table, suppressed)
    position_of = {cell: position for position, cell in enumerate(hidden)}
    for cell in hidden if cells is None else cells:
        lower[cell], upper[cell] = _solve_interval(a_hidden, rhs, position_of[cell], hidden.size)
    return lower, upper


def _cheapest_perturbation(
    table: LinearTable, cell: int, amount: float, suppressed: np.ndarray, costs: np.ndarray
) -> np.ndarray:
    """Cells to suppress so that ``cell`` can rise by ``amount`` while all totals still add up."""
    n = table.values.size
    # y = up - down, up, down >= 0; down <= x (cells stay non-negative); y_cell = +amount.
    cost = np.where(suppressed, 0.0, costs)
    cost = np.concatenate([cost, cost])
    matrix = table.constraints

    pin = coo_matrix(([1.0, -1.0], ([0, 0], [cell, n + cell])), shape=(1, 2 * n))
    a_eq = vstack([hstack([matrix, -matrix]), pin]).tocsr()
    b_eq = np.concatenate([np.zeros(matrix.shape[0]), [amount]])
    bounds = [(0, None)] * n + [(0, max(v, 0.0)) for v in table.values]
    result = linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if result.status != 0:
        raise SuppressionError(
            f"no complementary suppression protects {table.label(cell)}: {result.message}"
        )
    moved = np.abs(result.x[:n] - result.x[n:]) > 1e-9
    return moved


def _rectangles_2d(
    table: LinearTable,
    primary: np.ndarray,
    suppressed: np.ndarray,
    levels: np.ndarray,
    costs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-way tables: protect each interior primary cell (i, j) with the cheapest rectangle
    (i, j), (i, l), (k, j), (k, l) of interior cells whose complementary moves give it room."""
    rows, cols = table.shape
    x = table.values.reshape(rows, cols)
    inner = table.interior.reshape(rows, cols)
    r_in, c_in = np.flatnonzero(inner.any(axis=1)), np.flatnonzero(inner.any(axis=0))
    hidden = suppressed.reshape(rows, cols).copy()
    protected = np.zeros(table.values.size, dtype=bool)
    cost = costs.reshape(rows, cols)
    for cell in np.flatnonzero(primary & table.interior):
        i, j = np.unravel_index(cell, (rows, cols))
        sub = x[np.ix_(r_in, c_in)]
        row_i, col_j = x[i, c_in], x[r_in, j]
        # Rising by t at (i, j) needs (i, l) and (k, j) to fall and (k, l) to rise; falling needs the reverse.
        room = np.minimum(row_i[None, :], col_j[:, None]) + np.minimum(x[i, j], sub)
        free = ~hidden[np.ix_(r_in, c_in)]
        price = (
            np.where(free, cost[np.ix_(r_in, c_in)], 0)
            + np.where(~hidden[i, c_in], cost[i, c_in], 0)[None, :]
            + np.where(~hidden[r_in, j], cost[r_in, j], 0)[:, None]
        )
        valid = room >= levels[cell]
        valid[r_in == i, :] = False
        valid[:, c_in == j] = False
        if not valid.any():
            continue  # left for the general method
        k, col = np.unravel_index(np.argmin(np.where(valid, price, np.inf)), valid.shape)
        for a, b in ((i, c_in[col]), (r_in[k], j), (r_in[k], c_in[col])):
            hidden[a, b] = True
        protected[cell] = True  # the rectangle's moves give it at least its protection level
    return hidden.ravel(), protected


@dataclass
class SuppressionResult:
    """Which cells are hidden, why, and the attacker's intervals that prove it safe."""

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
    cells as possible). With ``verify``, the attacker's intervals are computed and returned.
    """
    primary = np.asarray(primary, dtype=bool)
    if primary.shape != table.values.shape:
        raise SuppressionError(
            f"primary marks {primary.size} cells but the table has {table.values.size}"
        )
    if cost not in ("value", "cells"):
        raise SuppressionError("cost is 'value' or 'cells'")
    costs = np.abs(table.values) + 1e-3 if cost == "value" else np.ones(table.values.size)
    levels = np.where(primary, protection_levels(table.values, profile), 0.0)
    suppressed = primary.copy()
    protected = np.zeros(table.values.size, dtype=bool)
    if len(table.shape) == 2 and not any(len(h) > 1 for h in table.hierarchies):
        suppressed, protected = _rectangles_2d(table, primary, suppressed, levels, costs)
    for cell in np.flatnonzero(primary & ~protected):
        lower, upper = feasible_intervals(table, suppressed, cells=[cell])
        if upper[cell] - lower[cell] >= levels[cell] - 1e-6:
            continue
        suppressed |= _cheapest_perturbation(table, cell, levels[cell], suppressed, costs)
    if verify:
        lower, upper = feasible_intervals(table, suppressed)
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

    >>> result = protect_table(check_table(journeys, index="iccs_section",
    ...                                    columns="sentence_type", profile=profile), profile)  # doctest: +SKIP
    >>> result.published()                                                                        # doctest: +SKIP
    """
    if check.statistic not in ("count", "sum"):
        raise SuppressionError(
            f"a {check.statistic} table has no additive margins; secondary suppression needs counts or sums"
        )
    interior = check.table.fillna(0)
    one_way = list(check.table.columns) == ["value"]
    table = linear_table(interior["value"] if one_way else interior, hierarchies)
    primary = np.zeros(table.values.size, dtype=bool)
    failing = check.status == FAIL
    for row in check.table.index:
        for column in check.table.columns:
            if failing.loc[row, column]:
                labels = (row if isinstance(row, tuple) else (row,)) if one_way else (row, column)
                primary[table.index_of(labels)] = True
    return secondary_suppression(table, primary, profile)

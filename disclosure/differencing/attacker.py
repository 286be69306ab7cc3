"""The attacker's linear programme: every published value as a constraint on the unknown true
counts of a comparison's tables, under one hypothesis of how their populations relate, and the
cells whose interval it pins inside ``[1, minimum count - 1]`` (SciPy's HiGHS)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_matrix

from disclosure.differencing.alignment import Axis
from disclosure.differencing.published import Grid
from disclosure.evidence import FAIL, REVIEW
from disclosure.policy import SDCProfile
from disclosure.suppression import protection_levels

# Slack for the floating point of the solver's answers, in counts.
TOLERANCE = 1e-6


@dataclass
class Quantity:
    """A linear function of the unknowns the attacker may pin: a cell of the rest ``r`` (or a
    margin of it), or a cell of the common refinement."""

    atoms: tuple[int, ...]  # atom indices (flat over the atom grid) it sums
    coefficients: dict[int, float]
    location: tuple[Any, Any]
    outer: tuple[float, float] = (-math.inf, math.inf)


@dataclass
class Hypothesis:
    """How the populations of a comparison relate, for the attacker."""

    whole: int | None  # index of the containing table; None for "same population"
    parts: tuple[int, ...]
    description: str


@dataclass
class Programme:
    grids: list[Grid]
    axes: list[Axis]
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

    def _measure(self, k: int, grid: Grid) -> None:
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
        hypothesis: Hypothesis,
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

    def rest(self, atoms: Sequence[int] | set[int], hypothesis: Hypothesis, sign: float = 1.0):
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


class SolverFailure(Exception):
    pass


def solve(objective: np.ndarray, system, bounds) -> tuple[str, Any]:
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
    raise SolverFailure(result.message)


def _quantities(programme: Programme, hypothesis: Hypothesis) -> list[Quantity]:
    """What the attacker tries to pin under a hypothesis, finest first."""
    quantities = []
    if hypothesis.whole is None:
        published = programme.published_atoms()
        for atom in range(programme.atom_count):
            if atom not in published:
                variable = programme.atom_offsets[hypothesis.parts[0]] + atom
                quantities.append(
                    Quantity((atom,), {variable: 1.0}, programme.location((atom,), set()))
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
                    Quantity(
                        tuple(atoms),
                        programme.rest(atoms, hypothesis),
                        programme.location(tuple(atoms), set(summed)),
                    )
                )
    return quantities


def _outer_ranges(programme: Programme, hypothesis: Hypothesis, quantities: list[Quantity]) -> None:
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
class Verdict:
    quantity: Quantity
    low: float
    high: float
    status: str  # FAIL or REVIEW


def judge(programme: Programme, hypothesis: Hypothesis) -> Iterator[Verdict]:
    """The quantities the attacker pins inside (0, minimum count) under the hypothesis."""
    profile = programme.profile
    smallest, largest = 1.0, profile.minimum_cell_count - 1.0
    quantities = _quantities(programme, hypothesis)
    _outer_ranges(programme, hypothesis, quantities)
    candidates = [
        q for q in quantities if q.outer[1] >= smallest - TOLERANCE and q.outer[0] <= largest
    ]
    if not candidates:
        return
    system = programme.matrices(hypothesis)
    bounds = programme.bounds
    objective = np.zeros(programme.size)
    for quantity in candidates:
        for variable, coefficient in quantity.coefficients.items():
            objective[variable] += coefficient
    outcome, low_point = solve(objective, system, bounds)
    if outcome != "optimal":
        return  # the published figures contradict this hypothesis
    candidates = [q for q in candidates if _value(q, low_point.x) > TOLERANCE]
    if len(candidates) > 1:
        high_point = _capped_maximum(programme, hypothesis, candidates, largest + 1)
        if high_point is not None:
            candidates = [q for q in candidates if _value(q, high_point) < largest + 1 - TOLERANCE]
    flagged: set[int] = set()
    for quantity in candidates:
        if flagged & set(quantity.atoms):
            continue  # a margin around a cell already reported
        low, high = quantity.outer
        if not (low >= smallest and high <= largest):
            low, high = _interval(programme, quantity, system, bounds)
        low = math.ceil(low - TOLERANCE)
        high = math.floor(high + TOLERANCE) if math.isfinite(high) else high
        if low < smallest or high > largest and math.isfinite(high):
            continue
        if math.isinf(high):
            flagged.update(quantity.atoms)
            yield Verdict(quantity, low, high, REVIEW)
            continue
        if high - low < protection_levels(np.array([high]), profile)[0]:
            flagged.update(quantity.atoms)
            yield Verdict(quantity, low, high, FAIL)


def _value(quantity: Quantity, point: np.ndarray) -> float:
    return float(sum(point[v] * c for v, c in quantity.coefficients.items()))


def _capped_maximum(
    programme: Programme, hypothesis: Hypothesis, quantities: list[Quantity], cap: float
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
    outcome, result = solve(objective, system, bounds)
    return result.x[:base] if outcome == "optimal" else None


def _interval(programme: Programme, quantity: Quantity, system, bounds) -> tuple[float, float]:
    objective = np.zeros(programme.size)
    for variable, coefficient in quantity.coefficients.items():
        objective[variable] = coefficient
    found = []
    for sign in (1.0, -1.0):
        outcome, result = solve(sign * objective, system, bounds)
        if outcome == "unbounded":
            found.append(math.inf)
        elif outcome == "infeasible":
            raise SolverFailure("a feasible programme became infeasible")
        else:
            found.append(sign * result.fun)
    return found[0], found[1]

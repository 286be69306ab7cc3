"""The differencing check: the new table against every earlier release and every pair of
them, under each hypothesis that relates their populations; findings, or a review where a
comparison cannot be judged (:func:`check_differencing`)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from disclosure.differencing.alignment import align, shown_labels
from disclosure.differencing.attacker import (
    TOLERANCE,
    Hypothesis,
    Programme,
    SolverFailure,
    Verdict,
    judge,
    solve,
)
from disclosure.differencing.errors import DifferencingError, Unjudgeable
from disclosure.differencing.published import Grid, ReleasedTable, grid_of
from disclosure.evidence import FAIL, REVIEW
from disclosure.policy import SDCProfile

NOT_CHECKED = "not checked: needs a checker"


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


def _hypotheses(names: list[str], count: int) -> list[Hypothesis]:
    if count == 2:
        return [
            Hypothesis(1, (0,), f"the new table's population within {names[1]}'s"),
            Hypothesis(0, (1,), f"{names[1]}'s population within the new table's"),
            Hypothesis(None, (0, 1), f"the new table and {names[1]} on the same population"),
        ]
    # The data cannot show that two parts do not overlap (magistrates' and Crown Court
    # journeys) rather than nest (two cumulative months); the finding says so for the checker.
    hypotheses = []
    for whole in range(3):
        first, second = (names[p] for p in range(3) if p != whole)
        hypotheses.append(
            Hypothesis(
                whole,
                tuple(p for p in range(3) if p != whole),
                f"if {first} and {second} do not overlap, {names[whole]} = {first} + {second} "
                "+ the rest",
            )
        )
    return hypotheses


def _finding(
    earlier: str, hypothesis: Hypothesis, verdict: Verdict, minimum: int
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


def _consistent(programme: Programme, hypothesis: Hypothesis) -> bool:
    """Whether the published figures allow the hypothesis (its programme has a solution)."""
    if hypothesis.whole is not None:
        ranges = [programme.atom_range(k) for k in range(len(programme.grids))]
        if all(r is not None for r in ranges):
            most = ranges[hypothesis.whole][1] - sum(ranges[p][0] for p in hypothesis.parts)
            if (most < -TOLERANCE).any():
                return False  # the parts outnumber the whole somewhere
    system = programme.matrices(hypothesis)
    outcome, _ = solve(np.zeros(programme.size), system, programme.bounds)
    return outcome == "optimal"


def _require_related(programme: Programme, hypotheses: list[Hypothesis]) -> None:
    """Raise Unjudgeable when two tables share only some categories of a variable and the
    published figures contradict every hypothesis: a category renamed or spelt differently
    ("F" and "Female", "F "), read as empty in the table without it, contradicts them all
    just as two unrelated populations do, and would hide any difference."""
    only: list[str] = []
    for axis in programme.axes:
        for k, where in ((0, "the new table"), (1, programme.grids[1].name)):
            # Categories the other table lists and this one does not.
            labels = [axis.atoms[i] for i in sorted(axis.empty[1 - k])]
            if labels:
                only.append(
                    f"{axis.name}: {shown_labels([repr(label) for label in labels])} in {where}"
                )
    if not only or any(_consistent(programme, h) for h in hypotheses):
        return
    raise Unjudgeable(
        f"categories in only one table: {'; '.join(only)}; the published figures contradict "
        "every way the check relates the two populations, as they would if a category were "
        "renamed; if they are the same category under other names, give a mapping"
    )


def _compare(grids: list[Grid], earlier: str, profile: SDCProfile) -> list[DifferencingFinding]:
    """Findings of one comparison; raises Unjudgeable when the tables cannot be aligned, or
    are aligned only in part and nothing relates them."""
    axes = align(grids)
    programme = Programme(grids, axes, profile)
    names = ["the new table"] + [g.name for g in grids[1:]]
    hypotheses = _hypotheses(names, len(grids))
    findings: dict[tuple, DifferencingFinding] = {}
    try:
        for hypothesis in hypotheses:
            for verdict in list(judge(programme, hypothesis)):
                finding = _finding(earlier, hypothesis, verdict, profile.minimum_cell_count)
                findings.setdefault((finding.row, finding.column, finding.status), finding)
        # A finding comes only from a hypothesis the figures allow. Three tables are most
        # often unrelated (no sum of two fits), and each pair among them is judged on its own.
        if not findings and len(grids) == 2:
            _require_related(programme, hypotheses)
    except SolverFailure as error:
        raise Unjudgeable(f"the attacker's linear programme failed ({error})") from error
    return list(findings.values())


def _may_expose(grids: list[Grid], profile: SDCProfile) -> bool:
    """A cheap screen for a comparison of three: can any role of whole and parts leave a rest
    between 1 and the minimum count in some cell? Only tables that share every dimension's
    categories are screened; others are compared in full."""
    try:
        axes = align(grids)
    except Unjudgeable:
        return False
    programme = Programme(grids, axes, profile)
    ranges = [programme.atom_range(k) for k in range(3)]
    if any(r is None for r in ranges):
        return True
    largest = profile.minimum_cell_count - 1
    for whole in range(3):
        parts = [p for p in range(3) if p != whole]
        low = ranges[whole][0] - sum(ranges[p][1] for p in parts)
        high = ranges[whole][1] - sum(ranges[p][0] for p in parts)
        if (high < -TOLERANCE).any():
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
        new_grid = grid_of("the new table", new_release, profile, (row_mapping, column_mapping))
    except Unjudgeable as error:
        return [_not_checked(everything, f"the new table: {error}")]
    findings: list[DifferencingFinding] = []
    comparable: dict[str, Grid] = {}
    for name, earlier in earlier_releases.items():
        if earlier.statistic != "count":
            continue  # a magnitude table says nothing about counts the check can use
        try:
            grid = grid_of(name, earlier, profile)
            findings.extend(_compare([new_grid, grid], name, profile))
        except Unjudgeable as error:
            findings.append(_not_checked(name, str(error)))
            continue
        comparable[name] = grid
    for (first, first_grid), (second, second_grid) in itertools.combinations(comparable.items(), 2):
        grids = [new_grid, first_grid, second_grid]
        if not _may_expose(grids, profile):
            continue
        try:
            findings.extend(_compare(grids, f"{first} and {second}", profile))
        except Unjudgeable as error:
            findings.append(_not_checked(f"{first} and {second}", str(error)))
    return sorted(findings, key=lambda f: f.status != FAIL)

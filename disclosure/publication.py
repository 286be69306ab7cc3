"""From record-level data to a publishable table: every cell and every margin checked, failing
ones hidden with complements so none can be recomputed, counts rounded as the profile asks.

``publishable_table`` is what a researcher's ``crosstab`` or ``pivot_table`` releases. Count and
sum tables get their margins (``Total``); each margin is checked on the records it adds up (a
total over a few small cells can fail the threshold or dominance rule even when no single cell
can be narrowed down), then primary and secondary suppression run over cells and margins
together, then rounding. Other statistics (mean, median, ...) have no additive margins: failing
cells are hidden. Pure computation: data frame and profile in, table and evidence out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from disclosure.evidence import FAIL, TableCheck, json_safe
from disclosure.policy import Rounding, SDCProfile
from disclosure.protection import controlled_round, round_midpoint6, round_to_base, suppress_primary
from disclosure.suppression import TOTAL, protect_table, secondary_suppression
from disclosure.tables import check_table, key_list

# A constant key, to check the grand total like any other cell.
GRAND_TOTAL = "(all records)"
ADDITIVE = ("count", "sum")


@dataclass
class PublishableTable:
    """A protected table and how it was protected.

    ``check`` is the unprotected cell-by-cell check (what a checker needs to see);
    ``suppressed`` lists the [row, column] labels of every hidden cell, ``secondary`` those
    hidden only to protect others, ``margin_findings`` the failures of margins on their own.
    """

    table: pd.DataFrame
    check: TableCheck
    statistic: str
    rounding: str
    margins: str | None
    suppressed: list[list[Any]] = field(default_factory=list)
    secondary: list[list[Any]] = field(default_factory=list)
    margin_findings: list[dict[str, Any]] = field(default_factory=list)


def _integers(frame: pd.DataFrame) -> pd.DataFrame:
    """Whole-number tables as nullable integers, so files read ``15`` and hidden cells are blank."""
    values = frame.to_numpy(dtype=float, na_value=np.nan)
    shown = values[~np.isnan(values)]
    if np.all(shown == np.round(shown)):
        return frame.astype("Int64")
    return frame


def round_table(
    frame: pd.DataFrame, statistic: str, profile: SDCProfile
) -> tuple[pd.DataFrame, str]:
    """Round a protected count or sum table as the profile asks; returns it and how."""
    base = profile.rounding_base
    if profile.rounding == Rounding.none:
        return frame, "none"
    if profile.rounding == Rounding.midpoint6 and statistic == "count":
        return round_midpoint6(frame), "midpoint6"
    note = ""
    if profile.rounding == Rounding.controlled and statistic == "count":
        complete = (
            frame.index.nlevels == frame.columns.nlevels == 1
            and TOTAL in frame.index
            and TOTAL in frame.columns
            and not frame.isna().to_numpy().any()
        )
        if complete:
            cells, row_totals, column_totals, grand = controlled_round(
                frame.drop(index=TOTAL, columns=TOTAL), base
            )
            cells[TOTAL] = row_totals
            cells.loc[TOTAL] = [*column_totals, grand]
            return cells, f"controlled, base {base}"
        note = " (controlled rounding needs a complete two-way table)"
    return round_to_base(frame, base), f"base {base}{note}"


def _stacked(check: TableCheck, column_keys: list[str]) -> TableCheck:
    """The check with its column keys moved into the rows: ``protect_table``'s one-way form,
    which takes 1 to 3 keys."""
    if not column_keys:
        return check
    levels = list(range(check.table.columns.nlevels))

    def stack(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.stack(levels, future_stack=True).to_frame("value")

    return TableCheck(
        check.statistic,
        stack(check.table),
        stack(check.counts),
        stack(check.status),
        check.findings,
        check.profile,
        check.description,
    )


def _labels(dimensions: list[list[Any]], names: list[str]) -> pd.Index:
    if len(dimensions) == 1:
        return pd.Index(dimensions[0], name=names[0])
    return pd.MultiIndex.from_product(dimensions, names=names)


def _with_margins_suppressed(
    check: TableCheck,
    row_keys: list[str],
    column_keys: list[str],
    label: str,
    profile: SDCProfile,
    check_margin: Callable[[list[str]], TableCheck],
) -> tuple[pd.DataFrame, list[list[Any]], list[list[Any]], list[dict[str, Any]]]:
    """A count or sum table with its margins, failing cells and their complements hidden, laid
    out as asked; with the [row, column] labels of every hidden cell and of the complements,
    and the findings on margins that fail by themselves.

    A margin is checked on the records it adds up (``check_margin`` builds the table of the
    keys it keeps): a total over a few small cells can fail the threshold or dominance rule
    even when an attacker cannot narrow down any one of them.
    """
    result = protect_table(_stacked(check, column_keys), profile)
    cells, keys = result.table, [*row_keys, *column_keys]
    failing_margins = np.zeros(cells.values.size, dtype=bool)
    margin_findings: list[dict[str, Any]] = []
    checks: dict[tuple[str, ...], TableCheck] = {}
    for cell in np.flatnonzero(~cells.interior):
        labels = cells.label(cell)
        kept = tuple(key for key, value in zip(keys, labels, strict=True) if value != TOTAL)
        if kept not in checks:
            checks[kept] = check_margin(list(kept))
        values = tuple(value for value in labels if value != TOTAL) or (TOTAL,)
        row = values[0] if len(values) == 1 else values
        if checks[kept].status.loc[row, "value"] == FAIL:
            failing_margins[cell] = True
            margin_findings += [
                {**finding.to_dict(), "row": json_safe(labels), "column": "margin"}
                for finding in checks[kept].findings_for(row, "value")
                if finding.status == FAIL
            ]
    if failing_margins.any():
        result = secondary_suppression(cells, result.primary | failing_margins, profile)
    rows = len(row_keys)
    row_index = _labels(cells.dimensions[:rows], row_keys)
    column_index = (
        _labels(cells.dimensions[rows:], column_keys) if column_keys else pd.Index([label])
    )
    shown = np.where(result.suppressed, np.nan, cells.values)
    frame = pd.DataFrame(
        shown.reshape(len(row_index), len(column_index)), index=row_index, columns=column_index
    )

    def where(cell: int) -> list[Any]:
        labels = cells.label(cell)
        row, column = labels[:rows], labels[rows:]
        return [
            json_safe(row[0] if rows == 1 else tuple(row)),
            json_safe((column[0] if len(column) == 1 else tuple(column)) if column else label),
        ]

    complements = result.suppressed & ~result.primary & ~failing_margins
    return (
        frame,
        [where(c) for c in np.flatnonzero(result.suppressed)],
        [where(c) for c in np.flatnonzero(complements)],
        margin_findings,
    )


def publishable_table(
    data: pd.DataFrame,
    *,
    index: str | Sequence[str],
    columns: str | Sequence[str] | None = None,
    values: str | None = None,
    statistic: str = "count",
    unit: str | None = None,
    profile: SDCProfile,
    profile_name: str = "",
) -> PublishableTable:
    """Check a table from ``data`` cell by cell (and margin by margin) and protect it.

    >>> published = publishable_table(journeys, index="sex", columns="court",
    ...                               unit="person_key", profile=profile)  # doctest: +SKIP
    >>> published.table                                                     # doctest: +SKIP
    court  crown  magistrates  Total
    sex
    F       <NA>          115    ...
    """
    row_keys, column_keys = key_list(index), key_list(columns)
    check = check_table(
        data,
        index=row_keys,
        columns=column_keys or None,
        values=values,
        statistic=statistic,
        profile=profile,
        profile_name=profile_name,
        unit=unit,
    )
    label = values or statistic
    if statistic not in ADDITIVE:
        frame = suppress_primary(check)
        if not column_keys:
            frame.columns = pd.Index([label])
        suppressed = [
            [json_safe(r), json_safe(c if column_keys else label)] for r, c in check.failing_cells()
        ]
        return PublishableTable(frame, check, statistic, "none", None, suppressed)
    # Margins add up the records whose keys are all present, as the cells do.
    records = data.dropna(subset=[*row_keys, *column_keys])

    def check_margin(keys: list[str]) -> TableCheck:
        frame = records if keys else records.assign(**{GRAND_TOTAL: TOTAL})
        return check_table(
            frame,
            index=keys or [GRAND_TOTAL],
            values=values,
            statistic=statistic,
            profile=profile,
            unit=unit,
        )

    frame, suppressed, secondary, margin_findings = _with_margins_suppressed(
        check, row_keys, column_keys, label, profile, check_margin
    )
    frame, rounding = round_table(frame, statistic, profile)
    return PublishableTable(
        _integers(frame), check, statistic, rounding, TOTAL, suppressed, secondary, margin_findings
    )

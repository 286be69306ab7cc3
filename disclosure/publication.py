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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from disclosure.evidence import FAIL, TableCheck, json_safe
from disclosure.policy import Rounding, SDCProfile
from disclosure.protection import controlled_round, round_midpoint6, round_to_base, suppress_primary
from disclosure.suppression import TOTAL, protect_table, secondary_suppression
from disclosure.tables import check_table, check_table_with_margins, key_list

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


def _labels(dimensions: list[list[Any]], names: list[str]) -> pd.Index:
    if len(dimensions) == 1:
        return pd.Index(dimensions[0], name=names[0])
    return pd.MultiIndex.from_product(dimensions, names=names)


def _with_margins_suppressed(
    check: TableCheck,
    margin_checks: dict[tuple[str, ...], TableCheck],
    row_keys: list[str],
    column_keys: list[str],
    label: str,
    profile: SDCProfile,
) -> tuple[pd.DataFrame, list[list[Any]], list[list[Any]], list[dict[str, Any]]]:
    """A count or sum table with its margins, failing cells and their complements hidden, laid
    out as asked; with the [row, column] labels of every hidden cell and of the complements,
    and the findings on margins that fail by themselves.

    A margin is checked on the records it adds up (``margin_checks``, by the keys it keeps): a
    total over a few small cells can fail the threshold or dominance rule even when an attacker
    cannot narrow down any one of them.
    """
    result = protect_table(check, profile)
    cells, keys = result.table, [*row_keys, *column_keys]
    failing_margins = np.zeros(cells.values.size, dtype=bool)
    margin_findings: list[dict[str, Any]] = []
    failing_in = {
        kept: {
            (row if isinstance(row, tuple) else (row,))
            for row in margin.status.index[(margin.status["value"] == FAIL).to_numpy()]
        }
        for kept, margin in margin_checks.items()
    }
    for cell in np.flatnonzero(~cells.interior):
        labels = cells.label(cell)
        kept = tuple(key for key, value in zip(keys, labels, strict=True) if value != TOTAL)
        values = tuple(value for value in labels if value != TOTAL) or (TOTAL,)
        if values in failing_in[kept]:
            row = values[0] if len(values) == 1 else values
            failing_margins[cell] = True
            margin_findings += [
                {**finding.to_dict(), "row": json_safe(labels), "column": "margin"}
                for finding in margin_checks[kept].findings_for(row, "value")
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

    Refused as ``check_table`` refuses them: data with no complete record (``EmptyTableError``)
    and unusable values or keys (``UnusableValuesError``: values that are not real numbers,
    infinite, or whole numbers past 2**53; keys such as ``1`` and ``"1"`` that would head two
    rows or columns alike). True/False values count as 1/0. Missing values are left out.
    Tables may have 1 to 3 keys, split between rows and columns as asked.

    >>> published = publishable_table(journeys, index="sex", columns="court",
    ...                               unit="person_key", profile=profile)  # doctest: +SKIP
    >>> published.table                                                     # doctest: +SKIP
    court  crown  magistrates  Total
    sex
    F       <NA>          115    ...
    """
    row_keys, column_keys = key_list(index), key_list(columns)
    label = values or statistic
    if statistic not in ADDITIVE:
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
        frame = suppress_primary(check)
        if not column_keys:
            frame.columns = pd.Index([label])
        suppressed = [
            [json_safe(r), json_safe(c if column_keys else label)] for r, c in check.failing_cells()
        ]
        return PublishableTable(frame, check, statistic, "none", None, suppressed)
    # Margins add up the records whose keys are all present, as the cells do.
    check, margin_checks = check_table_with_margins(
        data,
        index=row_keys,
        columns=column_keys or None,
        values=values,
        statistic=statistic,
        profile=profile,
        profile_name=profile_name,
        unit=unit,
        total_label=TOTAL,
    )
    frame, suppressed, secondary, margin_findings = _with_margins_suppressed(
        check, margin_checks, row_keys, column_keys, label, profile
    )
    frame, rounding = round_table(frame, statistic, profile)
    return PublishableTable(
        _integers(frame), check, statistic, rounding, TOTAL, suppressed, secondary, margin_findings
    )

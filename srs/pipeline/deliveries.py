"""Deliveries: apply an agency's monthly delivery (adds, corrections, withdrawals) to the table
held so far, and measure it against the agreement's quality standards.

Pure functions over frames: ``apply_delivery`` makes the next full table of a source and counts
what changed; ``delivery_quality`` makes the quality report that goes back to the agency, which
holds counts, rates and the kinds of reasons rows were rejected, never a value from a record.

Example::

    table, changes = apply_delivery(previous, result.accepted, dictionary, period="2024-11")
    report = delivery_quality(result, previous_rows, changes, standards, "2024-11", received)
    write_quality_report(report, Path("police.quality.json"), Path("police.quality.md"))
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from srs.errors import SRSError
from srs.governance.agreements import BASE_PERIOD, AgreementError, period_bounds
from srs.pipeline.ingest import DELIVERY_ACTION, DataDictionary, IngestResult

# The date that places each source's record in a delivery period: the event the record is of.
EVENT_DATE = {
    "police_arrests": "arrest_date",
    "cps_charging": "decision_date",
    "magistrates_cases": "first_hearing_date",
    "crown_court_cases": "committal_date",
    "prison_spells": "reception_date",
    "probation_episodes": "start_date",
    "victims": "contact_date",
}


class DeliveryError(SRSError):
    """A delivery cannot be applied to the table held so far."""


@dataclass(frozen=True)
class DeliveryChanges:
    """What a delivery did to a source's table: rows added, corrected and withdrawn, and how
    many of the added rows were late (their event before the delivery's period)."""

    added: int
    corrected: int
    withdrawn: int
    late: int
    period: str

    def as_dict(self) -> dict[str, object]:
        """The counts as stored with the dataset version and the delivery record."""
        return asdict(self)


def period_start_end(period: str, periodicity: str = "monthly") -> tuple[date, date]:
    """The first and last day of a delivery's ``period`` in the agreement's ``periodicity``.

    >>> period_start_end("2024-02")
    (datetime.date(2024, 2, 1), datetime.date(2024, 2, 29))
    """
    try:
        return period_bounds(period, periodicity)
    except AgreementError as exc:
        raise DeliveryError(str(exc)) from None


def event_date_column(dictionary: DataDictionary) -> str | None:
    """The column that dates a source's records (``EVENT_DATE``), if its dictionary has it."""
    column = EVENT_DATE.get(dictionary.source)
    names = {c.name for c in dictionary.columns}
    return column if column in names else None


def apply_delivery(
    previous: pd.DataFrame,
    accepted: pd.DataFrame,
    dictionary: DataDictionary,
    period: str = BASE_PERIOD,
    periodicity: str = "monthly",
) -> tuple[pd.DataFrame, DeliveryChanges]:
    """The source's next full table: ``previous`` with the delivery's accepted rows applied.

    Added rows are appended, corrected rows replace the row of the same record id where it
    stands, withdrawn rows are removed. ``accepted`` carries ``delivery_action`` (ingest in
    delivery mode has already rejected an add of a held id, a correction or withdrawal of an
    id not held, and a repeated id); a delivery that breaks those rules raises
    ``DeliveryError`` rather than being half applied.
    """
    record_id = dictionary.record_id
    columns = [c.name for c in dictionary.columns]
    if DELIVERY_ACTION not in accepted.columns:
        raise DeliveryError(
            f"the delivery has no {DELIVERY_ACTION} column; ingest it in delivery mode"
        )
    action = accepted[DELIVERY_ACTION].astype(str)
    held = pd.Index(previous[record_id].astype(str))
    ids = accepted[record_id].astype(str)
    problems = []
    if ids.duplicated().any():
        problems.append(f"repeated {record_id}")
    if (ids[action == "add"].isin(held)).any():
        problems.append(f"an add of a {record_id} already held")
    if (~ids[action.isin(["correct", "withdraw"])].isin(held)).any():
        problems.append(f"a correction or withdrawal of a {record_id} not held")
    unknown = sorted(set(action) - {"add", "correct", "withdraw"})
    if unknown:
        problems.append(f"unknown {DELIVERY_ACTION} value(s) {', '.join(unknown)}")
    if problems:
        raise DeliveryError(
            f"the delivery for {dictionary.source} cannot be applied: {'; '.join(problems)}; "
            "validate it with ingest in delivery mode first"
        )
    rows = accepted[columns].reset_index(drop=True)
    corrections = rows[(action == "correct").to_numpy()].set_index(ids[action == "correct"])
    table = previous[columns].reset_index(drop=True)
    table_ids = table[record_id].astype(str)
    keep = ~table_ids.isin(ids[action == "withdraw"])
    table = table[keep.to_numpy()].reset_index(drop=True)
    table_ids = table_ids[keep].reset_index(drop=True)
    replaced = table_ids.isin(corrections.index)
    if replaced.any():
        new_values = corrections.loc[table_ids[replaced]].reset_index(drop=True)
        for column in columns:
            table.loc[replaced.to_numpy(), column] = new_values[column].to_numpy()
    adds = rows[(action == "add").to_numpy()]
    if len(adds):
        table = pd.concat([table, adds.astype(table.dtypes.to_dict())], ignore_index=True)
    late = 0
    column = event_date_column(dictionary)
    if period != BASE_PERIOD and column is not None:
        start, _ = period_start_end(period, periodicity)
        dated = pd.to_datetime(rows[column], errors="coerce")
        late = int(((dated < pd.Timestamp(start)) & (action == "add")).sum())
    changes = DeliveryChanges(
        added=int((action == "add").sum()),
        corrected=int((action == "correct").sum()),
        withdrawn=int((action == "withdraw").sum()),
        late=late,
        period=period,
    )
    return table, changes


# ---------------------------------------------------------------- quality
@dataclass(frozen=True)
class QualityCheck:
    """One quality standard: the figure measured, the standard, and whether it was met."""

    name: str
    value: float | None
    standard: float | None
    passed: bool
    explanation: str


@dataclass(frozen=True)
class QualityReport:
    """A delivery's quality against the agreement's standards, fit to send to the agency: only
    counts, rates and the kinds of reasons rows were rejected (no value from any record)."""

    source: str
    period: str
    received: str
    rows_in: int
    rows_accepted: int
    rows_rejected: int
    changes: dict[str, object]
    checks: list[QualityCheck]
    reject_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every standard was met."""
        return all(check.passed for check in self.checks)

    def as_dict(self) -> dict[str, object]:
        """The report as JSON-ready data (what the delivery record stores)."""
        return {**asdict(self), "passed": self.passed}


def delivery_quality(
    result: IngestResult,
    previous_rows: int | None,
    changes: DeliveryChanges,
    standards: Mapping[str, float],
    period: str,
    received: date,
    periodicity: str = "monthly",
) -> QualityReport:
    """Measure a validated delivery against the agreement's ``standards``.

    ``standards`` holds ``min_completeness``, ``min_validity``, ``max_reject_rate``,
    ``max_days_late`` and ``max_row_change``. Completeness is the share of required values
    filled over the rows that had to carry them (withdrawals need only their id); validity the
    share of rows accepted; the reject rate its complement; timeliness the days from the end
    of the period to ``received``; consistency the change in rows against ``previous_rows``,
    the rows of the previous delivery (not applicable to a base extract or a first delivery).
    """
    missing = [
        name
        for name in (
            "min_completeness",
            "min_validity",
            "max_reject_rate",
            "max_days_late",
            "max_row_change",
        )
        if name not in standards
    ]
    if missing:
        raise DeliveryError(
            f"the agreement's quality standards lack {', '.join(missing)}; amend the agreement"
        )
    rows_in = result.rows_in
    completeness = (
        result.required_filled / result.required_values if result.required_values else 1.0
    )
    validity = result.rows_accepted / rows_in if rows_in else 1.0
    reject_rate = result.rows_rejected / rows_in if rows_in else 0.0
    checks = [
        QualityCheck(
            "completeness",
            round(completeness, 4),
            float(standards["min_completeness"]),
            completeness >= float(standards["min_completeness"]),
            f"{result.required_filled:,} of {result.required_values:,} required values filled",
        ),
        QualityCheck(
            "validity",
            round(validity, 4),
            float(standards["min_validity"]),
            validity >= float(standards["min_validity"]),
            f"{result.rows_accepted:,} of {rows_in:,} rows passed the data dictionary",
        ),
        QualityCheck(
            "reject_rate",
            round(reject_rate, 4),
            float(standards["max_reject_rate"]),
            reject_rate <= float(standards["max_reject_rate"]),
            f"{result.rows_rejected:,} of {rows_in:,} rows rejected",
        ),
    ]
    if period == BASE_PERIOD:
        checks.append(
            QualityCheck(
                "timeliness",
                None,
                float(standards["max_days_late"]),
                True,
                "not applicable to a base extract",
            )
        )
    else:
        _, end = period_start_end(period, periodicity)
        days = (received - end).days
        checks.append(
            QualityCheck(
                "timeliness",
                float(days),
                float(standards["max_days_late"]),
                days <= float(standards["max_days_late"]),
                f"received {received.isoformat()}, {days} day(s) after the period ended {end}",
            )
        )
    if period == BASE_PERIOD or not previous_rows:
        checks.append(
            QualityCheck(
                "consistency",
                None,
                float(standards["max_row_change"]),
                True,
                "not applicable: no earlier delivery to compare with",
            )
        )
    else:
        change = abs(rows_in - previous_rows) / previous_rows
        checks.append(
            QualityCheck(
                "consistency",
                round(change, 4),
                float(standards["max_row_change"]),
                change <= float(standards["max_row_change"]),
                f"{rows_in:,} rows against {previous_rows:,} in the previous delivery",
            )
        )
    return QualityReport(
        source=result.source,
        period=period,
        received=received.isoformat(),
        rows_in=rows_in,
        rows_accepted=result.rows_accepted,
        rows_rejected=result.rows_rejected,
        changes=changes.as_dict(),
        checks=checks,
        reject_reasons=dict(result.reason_kinds),
    )


def write_quality_report(report: QualityReport, path_json: Path, path_md: Path) -> None:
    """Write the report as JSON and as Markdown, to send back to the agency."""
    path_json.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    lines = [
        f"# Delivery quality report: {report.source}, {report.period}",
        "",
        f"Received {report.received}. Rows in: {report.rows_in:,}; accepted "
        f"{report.rows_accepted:,}; rejected {report.rows_rejected:,}.",
        "",
        "Changes: "
        + ", ".join(f"{name} {value}" for name, value in report.changes.items() if name != "period")
        + ".",
        "",
        "| standard | measured | required | result | detail |",
        "|---|---|---|---|---|",
    ]
    for check in report.checks:
        value = "n/a" if check.value is None else f"{check.value:g}"
        lines.append(
            f"| {check.name} | {value} | {check.standard:g} | "
            f"{'pass' if check.passed else 'FAIL'} | {check.explanation} |"
        )
    lines += ["", f"Overall: {'all standards met' if report.passed else 'standards not met'}."]
    if report.reject_reasons:
        lines += ["", "## Why rows were rejected", "", "| reason | rows |", "|---|---|"]
        lines += [f"| {kind} | {count:,} |" for kind, count in report.reject_reasons.items()]
    path_md.write_text("\n".join(lines) + "\n", encoding="utf-8")


__all__ = [
    "BASE_PERIOD",
    "EVENT_DATE",
    "DeliveryChanges",
    "DeliveryError",
    "QualityCheck",
    "QualityReport",
    "apply_delivery",
    "delivery_quality",
    "event_date_column",
    "period_start_end",
    "write_quality_report",
]

"""Release readiness of a custom output: what a checker would send back, found before submission.

A custom output is a file the session did not make, so no table check ran on it. Its CSV is
read for what checkers most often return: counts not on the profile's rounding, counts below
the minimum cell count, negative counts, percentages or rates (named so, or written with a %
sign) whose denominators are small or not given, column names used twice, no context or controls
text, and, for a file sent again after changes were asked for, what changed since the earlier
version. Every finding is for review (status ``review``) and says what to do.
Which columns are counts, percentages or denominators is judged from their names and values
(heuristics, stated below); thresholds come from the SDC profile. Pure computation: a
``CSVSummary`` (``output_checking.summaries``), text and bytes in, findings out.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from disclosure.policy import SDCProfile
from output_checking.summaries import NUMERIC, ColumnSummary, CSVSummary

CHECK = "readiness"
REVIEW, OK = "review", "ok"
# Rules whose findings come from the output's words, not its file: refreshed whenever shown,
# since the researcher may describe the output after recording it.
DESCRIPTION_RULES = ("context", "controls")
# Column names (split into words at anything but letters, digits and %) that mark a share.
PERCENT_WORDS = ("pct", "percent", "percentage", "perc", "rate", "share", "proportion", "prop")
# ... that mark the count a share is out of.
DENOMINATOR_WORDS = ("denominator", "denom", "total", "n", "population", "pop", "base", "size")
# ... that mark a whole-number column as a label (a year, an age, a code), not a count.
LABEL_WORDS = ("year", "month", "quarter", "week", "day", "date", "age", "code", "id", "period")
# What each rule's finding is about, as the check's one-line message lists them.
RULE_NAMES = {
    "csv": "an unreadable CSV",
    "unrounded": "unrounded counts",
    "small_count": "small counts",
    "negative": "negative counts",
    "duplicate_columns": "repeated column names",
    "denominator": "shares without denominators",
    "small_denominator": "shares of small denominators",
    "context": "no context",
    "controls": "no controls",
    "changes": "changes since an earlier version",
}
# The environment's own tag at the head of a context (e.g. "[computed on SYNTHETIC data ...]")
# is not the researcher's description.
ENVIRONMENT_TAG = re.compile(r"^\s*\[[^\]]*\]\s*")


@dataclass(frozen=True)
class ReadinessFinding:
    """One thing a checker would ask about, with what to do; ``column`` when it is one column's."""

    rule: str
    message: str
    column: str | None = None
    status: str = REVIEW

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "status": self.status, "message": self.message} | (
            {"column": self.column} if self.column is not None else {}
        )

    @classmethod
    def from_dict(cls, finding: Mapping[str, Any]) -> ReadinessFinding:
        return cls(
            str(finding.get("rule", "")),
            str(finding.get("message", "")),
            finding.get("column"),
            str(finding.get("status", REVIEW)),
        )


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9%]+", name.lower()) if w]


def _named(name: str, words: Iterable[str]) -> bool:
    """True when a word of ``name`` is one of ``words``, or starts or ends with one (``pctF``)."""
    words = tuple(words)
    return any(w in words or w.startswith(words) or w.endswith(words) for w in _words(name))


def is_percentage(column: ColumnSummary) -> bool:
    """A numeric column named as a share (pct, percent, rate, share, proportion, or with %), or
    with values written with a % sign ("12.5%")."""
    return column.kind == NUMERIC and (
        "%" in column.name or _named(column.name, PERCENT_WORDS) or bool(column.percent_signs)
    )


def is_count(column: ColumnSummary) -> bool:
    """A numeric column of whole numbers, not a share and not a label (year, age, code...): how
    counts look. A negative value does not make it something else: it is a finding of its own
    (``count_findings``), and the column's other values are still judged as counts."""
    return (
        column.kind == NUMERIC
        and bool(column.whole)
        and column.minimum is not None
        and not is_percentage(column)
        and not _named(column.name, LABEL_WORDS)
    )


def is_denominator(column: ColumnSummary) -> bool:
    """A count column named as what a share is out of: total, n, denominator, population..."""
    return is_count(column) and any(
        w in DENOMINATOR_WORDS or w.startswith(("denom", "total")) for w in _words(column.name)
    )


def _counted(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _share_kind(column: ColumnSummary) -> str:
    if column.percent_signs:
        return "percentages"
    low, high = column.minimum, column.maximum
    if low is not None and high is not None and low >= 0 and high <= 1:
        return "proportions"
    if low is not None and high is not None and low >= 0 and high <= 100:
        return "percentages"
    return "rates"


def count_findings(summary: CSVSummary, profile: SDCProfile) -> list[ReadinessFinding]:
    """Count columns with values off the profile's rounding, below its minimum cell count, or
    negative (no count is; a difference of counts can disclose a small one as surely)."""
    findings = []
    minimum = profile.minimum_cell_count
    for column in summary.columns:
        if not is_count(column):
            continue
        if column.negative:
            findings.append(
                ReadinessFinding(
                    "negative",
                    f"column {column.name!r}: {_counted(column.negative, 'value is', 'values are')} "
                    f"negative (smallest {column.minimum}), which no count can be: correct them, "
                    "or, if the column is a difference or change, say so in the context and show "
                    "the counts it is made from are safe",
                    column.name,
                )
            )
        if column.rounding is not None and column.unrounded:
            findings.append(
                ReadinessFinding(
                    "unrounded",
                    f"column {column.name!r}: {column.unrounded} of {column.values} counts are "
                    f"not {column.rounding} as the profile asks of released counts: round them, "
                    "or say in the controls why they need not be",
                    column.name,
                )
            )
        if column.below_minimum:
            findings.append(
                ReadinessFinding(
                    "small_count",
                    f"column {column.name!r}: {_counted(column.below_minimum, 'count is', 'counts are')} "
                    f"below the minimum cell count of {minimum} (smallest {column.minimum_nonzero}): "
                    "suppress them or combine categories",
                    column.name,
                )
            )
    return findings


def percentage_findings(summary: CSVSummary, profile: SDCProfile) -> list[ReadinessFinding]:
    """Percentages, proportions or rates with no denominator column beside them, or whose
    denominators fall below the minimum cell count (a share of a handful of people discloses
    as much as the handful does)."""
    shares = [c for c in summary.columns if is_percentage(c)]
    if not shares:
        return []
    minimum = profile.minimum_cell_count
    denominators = [c for c in summary.columns if is_denominator(c)]
    findings = []
    for share in shares:
        kind = _share_kind(share)
        if not denominators:
            findings.append(
                ReadinessFinding(
                    "denominator",
                    f"column {share.name!r} holds {kind} but the file has no denominator column "
                    "(such as 'total' or 'n'): add the counts they are out of, so a checker can "
                    f"see that none is below {minimum}",
                    share.name,
                )
            )
            continue
        for denominator in denominators:
            if denominator.below_minimum:
                findings.append(
                    ReadinessFinding(
                        "small_denominator",
                        f"the {kind} in {share.name!r} rest on denominators below the minimum "
                        f"cell count of {minimum}: {denominator.name!r} has "
                        f"{_counted(denominator.below_minimum, 'such value', 'such values')} (smallest "
                        f"{denominator.minimum_nonzero}); suppress those rows or combine them",
                        share.name,
                    )
                )
    return findings


def column_name_findings(summary: CSVSummary) -> list[ReadinessFinding]:
    """Column names used more than once: a checker (and the comparison with an earlier version)
    cannot tell those columns apart by name."""
    names = [column.name for column in summary.columns]
    repeated = {name: names.count(name) for name in dict.fromkeys(names) if names.count(name) > 1}
    return [
        ReadinessFinding(
            "duplicate_columns",
            f"column name {name!r} is used {times} times: give each column its own name, so a "
            "checker can tell which figures are which",
            name,
        )
        for name, times in repeated.items()
    ]


def description_findings(context: str, controls: str) -> list[ReadinessFinding]:
    """No context (what the output shows, from which data) or no controls text (which
    disclosure controls were applied): checkers ask for both."""
    findings = []
    if not ENVIRONMENT_TAG.sub("", context or "").strip():
        findings.append(
            ReadinessFinding(
                "context",
                "no context: say what the output shows, from which data and period "
                "(s.describe(output, context=...))",
            )
        )
    if not (controls or "").strip():
        findings.append(
            ReadinessFinding(
                "controls",
                "no controls: say which disclosure controls you applied, such as suppression "
                "below the minimum cell count or rounding (s.describe(output, controls=...))",
            )
        )
    return findings


def _table(data: bytes) -> tuple[list[str], list[list[str]]] | None:
    try:
        rows = [row for row in csv.reader(io.StringIO(data.decode("utf-8-sig"))) if row]
    except (UnicodeDecodeError, csv.Error):
        return None
    return (rows[0], rows[1:]) if rows else None


def _keyed(header: list[str], body: list[list[str]]) -> dict[str, list[str]] | None:
    """Rows by their first cell, when that cell names each row once (a table's row labels)."""
    keys = [row[0] if row else "" for row in body]
    if not header or len(set(keys)) != len(keys):
        return None
    return dict(zip(keys, body, strict=True))


def _column_names(header: list[str]) -> list[str]:
    """Each column's name, a repeated name numbered by its place among its namesakes
    ("count", "count (2nd)"), so that every column is matched with its own earlier version."""
    seen: dict[str, int] = {}
    names = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        times = seen[name]
        teens = 10 <= times % 100 <= 20
        suffix = "th" if teens else {1: "st", 2: "nd", 3: "rd"}.get(times % 10, "th")
        names.append(name if times == 1 else f"{name} ({times}{suffix})")
    return names


def changes_since(earlier: bytes, current: bytes, earlier_label: str) -> ReadinessFinding:
    """What changed in a file since its earlier version: rows and columns added or removed and
    cells changed (rows matched by their first cell when it names each row once, else by
    position; a repeated column name matched by its place among its namesakes), so a checker
    reviews only the difference.

    >>> changes_since(b"area,n\\nA,10\\nB,20\\n", b"area,n\\nA,15\\nB,20\\n", "output #3").message
    'changed since output #3: 1 cell changed (column n)'
    """
    if earlier == current:
        return ReadinessFinding(
            "changes", f"unchanged since {earlier_label}: the file is byte for byte the same"
        )
    before, after = _table(earlier), _table(current)
    if before is None or after is None:
        return ReadinessFinding(
            "changes", f"the file differs from {earlier_label} (not CSV, so not compared by cell)"
        )
    (old_header, old_body), (new_header, new_body) = before, after
    old_header, new_header = _column_names(old_header), _column_names(new_header)
    old_rows, new_rows = _keyed(old_header, old_body), _keyed(new_header, new_body)
    if old_rows is None or new_rows is None:
        old_rows = {str(i): row for i, row in enumerate(old_body)}
        new_rows = {str(i): row for i, row in enumerate(new_body)}
    added_columns = [c for c in new_header if c not in old_header]
    removed_columns = [c for c in old_header if c not in new_header]
    added_rows = [k for k in new_rows if k not in old_rows]
    removed_rows = [k for k in old_rows if k not in new_rows]
    changed: dict[str, int] = {}
    for key in new_rows.keys() & old_rows.keys():
        old, new = old_rows[key], new_rows[key]
        for column in (c for c in new_header if c in old_header):
            i, j = old_header.index(column), new_header.index(column)
            if (old[i] if i < len(old) else "") != (new[j] if j < len(new) else ""):
                changed[column] = changed.get(column, 0) + 1
    parts = []
    if added_rows or removed_rows:
        parts.append(
            f"rows {len(old_body)} -> {len(new_body)} ({len(added_rows)} added, "
            f"{len(removed_rows)} removed)"
        )
    if added_columns:
        parts.append("columns added: " + ", ".join(added_columns))
    if removed_columns:
        parts.append("columns removed: " + ", ".join(removed_columns))
    if changed:
        cells = sum(changed.values())
        where = ", ".join(c for c in new_header if c in changed)
        columns = "column" if len(changed) == 1 else "columns"
        parts.append(f"{_counted(cells, 'cell', 'cells')} changed ({columns} {where})")
    if not parts:
        parts.append("the same cells, written differently (spacing, quoting or line endings)")
    return ReadinessFinding("changes", f"changed since {earlier_label}: " + "; ".join(parts))


def file_findings(summary: CSVSummary, profile: SDCProfile) -> list[ReadinessFinding]:
    """Every finding on a CSV's contents: counts (rounding, small, negative), shares
    (denominators) and column names used twice."""
    return (
        column_name_findings(summary)
        + count_findings(summary, profile)
        + percentage_findings(summary, profile)
    )


def readiness_check(findings: Iterable[ReadinessFinding]) -> dict[str, Any]:
    """The findings as an output's check record (``review`` when any needs a look, else ``ok``)."""
    findings = list(findings)
    needing = [f for f in findings if f.status != OK]
    if needing:
        message = (
            f"{len(needing)} thing{'s' if len(needing) != 1 else ''} a checker will ask about "
            "before release: "
            + "; ".join(dict.fromkeys(RULE_NAMES.get(f.rule, f.rule) for f in needing))
        )
    else:
        message = "nothing a checker usually sends back was found"
    return {
        "check": CHECK,
        "status": REVIEW if needing else OK,
        "message": message,
        "findings": [f.to_dict() for f in findings],
    }


def refreshed(checks: Iterable[Mapping[str, Any]], context: str, controls: str) -> list[dict]:
    """An output's checks with its readiness check's context and controls findings made again
    from the output's present text (the researcher may have described it since)."""
    result = []
    for check in checks:
        if check.get("check") != CHECK:
            result.append(dict(check))
            continue
        kept = [
            ReadinessFinding.from_dict(f)
            for f in check.get("findings") or []
            if f.get("rule") not in DESCRIPTION_RULES
        ]
        result.append(readiness_check(kept + description_findings(context, controls)))
    return result


def readiness_findings(checks: Iterable[Mapping[str, Any]]) -> list[ReadinessFinding]:
    """The findings of an output's readiness check(s) that need a look."""
    return [
        ReadinessFinding.from_dict(f)
        for check in checks
        if check.get("check") == CHECK
        for f in check.get("findings") or []
        if f.get("status", REVIEW) != OK
    ]

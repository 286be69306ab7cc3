"""Evidence of disclosure checks: per-cell findings with the figures that decided them.

A ``TableCheck`` holds the table, its contributor counts, each cell's status (ok, review,
fail) and every finding ("count 6 < 10", "top 2 contribute 93% >= 90%"). It renders as HTML
in a notebook (failing cells red, cells for review amber), serialises to JSON for the
output-checking workflow, and to ACRO's ``results.json`` record layout so checkers' existing
tools (SACRO-Viewer) can read it.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

OK, REVIEW, FAIL = "ok", "review", "fail"
# The ACRO results.json version our records follow (ACRO's loader insists on an exact match).
ACRO_RESULTS_VERSION = "1.0.2"
STATUS_RANK = {OK: 0, REVIEW: 1, FAIL: 2}
ACRO_RULE_NAMES = {
    "threshold": "threshold",
    "redaction": "threshold",
    "dominance": "nk-rule",
    "p_percent": "p-ratio",
    "zero": "zeros",
    "class_disclosure": "class-disclosure",
    "negative": "negative",
    "missing": "missing",
    "max_min_median": "max-min-median",
}


@dataclass(frozen=True)
class CellFinding:
    """One rule's verdict on one cell."""

    row: Any
    column: Any
    rule: str
    status: str
    message: str
    figures: dict[str, float | int | str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": json_safe(self.row),
            "column": json_safe(self.column),
            "rule": self.rule,
            "status": self.status,
            "message": self.message,
            "figures": {k: json_safe(v) for k, v in self.figures.items()},
        }


def json_safe(value: Any) -> Any:
    """A table label or value as JSON: tuples become lists, numpy scalars Python ones,
    timestamps ISO text, and NaN or infinity None."""
    if isinstance(value, tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass
class TableCheck:
    """The result of checking one table: values, counts, per-cell status and findings."""

    statistic: str
    table: pd.DataFrame
    counts: pd.DataFrame
    status: pd.DataFrame
    findings: list[CellFinding]
    profile: str
    description: str = ""

    @classmethod
    def from_dict(cls, evidence: dict[str, Any]) -> TableCheck:
        """The check back from ``to_dict``'s JSON (labels that were tuples come back as tuples)."""

        def label(value: Any) -> Any:
            return tuple(value) if isinstance(value, list) else value

        rows = [label(r) for r in evidence["rows"]]
        columns = [label(c) for c in evidence["columns"]]

        def grid(values: list[list[Any]]) -> pd.DataFrame:
            return pd.DataFrame(values, index=rows, columns=columns)

        findings = [
            CellFinding(
                label(f["row"]),
                label(f["column"]),
                f["rule"],
                f["status"],
                f["message"],
                f.get("figures") or {},
            )
            for f in evidence.get("findings", [])
        ]
        return cls(
            evidence.get("statistic", "count"),
            grid(evidence["values"]),
            grid(evidence["counts"]),
            grid(evidence["status"]),
            findings,
            evidence.get("profile", ""),
            evidence.get("description", ""),
        )

    @property
    def overall(self) -> str:
        """``fail`` if any cell fails, else ``review`` if any needs review, else ``ok``."""
        worst = max((STATUS_RANK[s] for s in self.status.to_numpy().ravel()), default=0)
        return {0: OK, 1: REVIEW, 2: FAIL}[worst]

    def failing_cells(self) -> list[tuple[Any, Any]]:
        """(row, column) of every cell whose status is ``fail``."""
        return [
            (r, c)
            for r, c in zip(*np.nonzero(self.status.to_numpy() == FAIL), strict=False)
            for r, c in [(self.status.index[r], self.status.columns[c])]
        ]

    def findings_for(self, row: Any, column: Any) -> list[CellFinding]:
        """Every finding on one cell."""
        return [f for f in self.findings if f.row == row and f.column == column]

    def summary(self) -> str:
        """One line a checker can read: how many cells fail or need review, and why."""
        cells = self.status.size
        failing = int((self.status == FAIL).to_numpy().sum())
        review = int((self.status == REVIEW).to_numpy().sum())
        rules = sorted({f.rule for f in self.findings})
        text = f"{self.overall}: {failing} of {cells} cells fail, {review} need review"
        return text + (f" ({', '.join(rules)})" if rules else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe evidence for the output-checking workflow."""
        return {
            "kind": "table",
            "statistic": self.statistic,
            "profile": self.profile,
            "description": self.description,
            "overall": self.overall,
            "summary": self.summary(),
            "rows": [json_safe(r) for r in self.table.index],
            "columns": [json_safe(c) for c in self.table.columns],
            "values": [[json_safe(v) for v in row] for row in self.table.to_numpy().tolist()],
            "counts": self.counts.to_numpy().tolist(),
            "status": self.status.to_numpy().tolist(),
            "findings": [f.to_dict() for f in self.findings],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str)

    def acro_outcome(self) -> pd.DataFrame:
        """ACRO's outcome table: per cell, 'ok' or the failed rules joined by '; '."""
        outcome = pd.DataFrame(
            "ok", index=self.table.index, columns=self.table.columns, dtype=object
        )
        names: dict[tuple, list[str]] = {}
        for f in self.findings:
            names.setdefault((f.row, f.column), []).append(ACRO_RULE_NAMES.get(f.rule, f.rule))
        for (row, column), rules in names.items():
            outcome.loc[row, column] = "; ".join(dict.fromkeys(rules)) + ";"
        return outcome

    def to_acro_record(
        self, uid: str, command: str = "", files: list[str] | None = None
    ) -> dict[str, Any]:
        """One record in ACRO's ``results.json`` layout."""
        status = {OK: "pass", REVIEW: "review", FAIL: "fail"}[self.overall]
        outcome = self.acro_outcome()
        outcome.index = [str(i) for i in outcome.index]
        outcome.columns = [str(c) for c in outcome.columns]
        return {
            "uid": uid,
            "status": status,
            "type": "table",
            "properties": {"method": self.statistic},
            "files": [{"name": name, "sdc": self.acro_sdc()} for name in (files or [])],
            "outcome": json.loads(outcome.to_json()),
            "command": command,
            "summary": self.summary(),
            "timestamp": datetime.now(UTC).isoformat(),
            "comments": [],
            "exception": "",
            "fair": {},
        }

    def acro_sdc(self) -> dict[str, Any]:
        """ACRO's per-file ``sdc`` summary: cells failing each kind of check."""
        counts: dict[str, int] = {}
        for f in self.findings:
            name = ACRO_RULE_NAMES.get(f.rule, f.rule)
            counts[name] = counts.get(name, 0) + 1
        return {
            "summary": {
                "suppressed": False,
                "negative": counts.get("negative", 0),
                "missing": counts.get("missing", 0),
                "threshold": counts.get("threshold", 0),
                "p-ratio": counts.get("p-ratio", 0),
                "nk-rule": counts.get("nk-rule", 0),
            },
            "cells": {name: [] for name in counts},
        }

    def _repr_html_(self) -> str:
        colours = {FAIL: "#f8d0d0", REVIEW: "#fbe7b5", OK: ""}
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.table.columns)
        rows = []
        for r, row_key in enumerate(self.table.index):
            cells = []
            for c, column_key in enumerate(self.table.columns):
                status = self.status.iat[r, c]
                value = self.table.iat[r, c]
                text = (
                    ""
                    if pd.isna(value)
                    else (
                        f"{value:,.2f}"
                        if isinstance(value, float) and not float(value).is_integer()
                        else f"{value:,.0f}"
                        if isinstance(value, (int, float, np.number))
                        else str(value)
                    )
                )
                reasons = "; ".join(f.message for f in self.findings_for(row_key, column_key))
                style = f' style="background:{colours[status]}"' if colours[status] else ""
                title = f' title="{html.escape(reasons)}"' if reasons else ""
                cells.append(f"<td{style}{title}>{html.escape(text)}</td>")
            rows.append(f"<tr><th>{html.escape(str(row_key))}</th>{''.join(cells)}</tr>")
        items = "".join(
            f"<li><b>{html.escape(str(f.row))} / {html.escape(str(f.column))}</b>: {html.escape(f.message)}</li>"
            for f in self.findings[:50]
        )
        more = f"<li>... and {len(self.findings) - 50} more</li>" if len(self.findings) > 50 else ""
        return (
            f"<div class='srs-table-check'><p><b>{html.escape(self.summary())}</b> "
            f"(profile {html.escape(self.profile)}, statistic {html.escape(self.statistic)})</p>"
            f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<ul>{items}{more}</ul></div>"
        )


def acro_results_document(
    records: list[dict[str, Any]], tool: str = "srs-toolkit"
) -> dict[str, Any]:
    """A whole ``results.json`` in ACRO's layout from records made by ``to_acro_record``."""
    return {
        "version": ACRO_RESULTS_VERSION,
        "tool": {"name": tool},
        "results": {record["uid"]: record for record in records},
    }

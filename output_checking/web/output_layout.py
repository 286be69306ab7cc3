"""One output laid out for the request page: its tables with each cell's worst evidence status
(and why a hidden cell is hidden), record-style results, CSV summaries, images, notes and the
content as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from output_checking.hidden_cells import PRIMARY, hidden_cells
from output_checking.outputs import content_table
from output_checking.readiness import refreshed
from output_checking.summaries import CSVSummary, CSVSummaryError, summarise_csv
from output_checking.workflow import OutputView
from srs.governance.policy import PolicySet
from srs.governance.registry.models import OutputFile

# A checker reads these inline; anything else is only downloaded (never rendered by the browser).
INLINE_TYPES = {".png": "image/png"}
MAX_CONTENT_CHARS = 20_000


@dataclass
class Cell:
    """One rendered table cell: its text, its worst evidence status and why, and for a hidden
    cell whether it failed a rule itself (``primary``) or protects another (``secondary``)."""

    text: str
    status: str = "ok"
    reasons: list[str] = field(default_factory=list)
    suppression: str | None = None


@dataclass
class RenderedTable:
    """A table output laid out for HTML, with each cell's status from the evidence."""

    corner: str
    columns: list[str]
    rows: list[tuple[str, list[Cell]]]

    @property
    def failing(self) -> int:
        """How many cells fail a rule."""
        return sum(cell.status == "fail" for _, cells in self.rows for cell in cells)

    @property
    def flagged(self) -> int:
        """How many cells fail a rule or need a checker's look."""
        return sum(cell.status != "ok" for _, cells in self.rows for cell in cells)

    def hidden(self, suppression: str) -> int:
        """How many cells are hidden as ``primary`` or ``secondary``."""
        return sum(cell.suppression == suppression for _, cells in self.rows for cell in cells)


@dataclass
class OutputPage:
    """One output of a request as the request page shows it."""

    view: OutputView
    tables: list[tuple[str, RenderedTable]]
    records: tuple[list[str], list[list[str]]] | None
    checks: list[dict[str, Any]]
    csv_summaries: list[tuple[OutputFile, CSVSummary | None, str]]
    images: list[OutputFile]
    content_json: str
    notes: list[str]
    justification: str = ""


STATUS_RANK = {"ok": 0, "review": 1, "fail": 2}


def _label(value: Any) -> str:
    """One form for a row or column label, whether it came from pandas or from JSON evidence."""
    if isinstance(value, list | tuple):
        return str(tuple(value) if len(value) > 1 else value[0])
    return str(value)


def _shown_label(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " / ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.6g}"
    return str(value)


def cell_evidence(checks: Iterable[dict[str, Any]]) -> dict[tuple[str, str], Cell]:
    """The worst status of each cell over every check carrying per-cell evidence.

    A check carries it as ``evidence`` in ``TableCheck.to_dict()``'s layout (``rows``,
    ``columns``, a ``status`` grid and ``findings``); the differencing check's ``findings`` name
    their cell by ``row`` and ``column``. Cells are keyed by their labels, so the evidence of the
    checked table marks the same cells in the released one.
    """
    cells: dict[tuple[str, str], Cell] = {}

    def mark(row: Any, column: Any, status: str, reason: str | None) -> None:
        cell = cells.setdefault((_label(row), _label(column)), Cell(""))
        if STATUS_RANK.get(status, 0) > STATUS_RANK.get(cell.status, 0):
            cell.status = status
        if reason:
            cell.reasons.append(reason)

    for check in checks:
        evidence = check.get("evidence")
        if isinstance(evidence, dict) and isinstance(evidence.get("status"), list):
            for r, row in enumerate(evidence.get("rows", [])):
                for c, column in enumerate(evidence.get("columns", [])):
                    try:
                        mark(row, column, evidence["status"][r][c], None)
                    except (IndexError, TypeError):
                        continue
            for finding in evidence.get("findings", []):
                mark(finding.get("row"), finding.get("column"), "ok", finding.get("message"))
        if check.get("check") == "differencing":
            for finding in check.get("findings", []):
                # A comparison the check could not judge names no cell: it is listed with the
                # check, not pinned on an empty row and column.
                if finding.get("row") in (None, "") and finding.get("column") in (None, ""):
                    continue
                status = finding.get("status", "fail")
                mark(finding.get("row"), finding.get("column"), status, finding.get("message"))
    return cells


def render_table(split: dict[str, Any], checks: Iterable[dict[str, Any]]) -> RenderedTable:
    """Lay out a table output (``table_content``'s form) with each cell's evidence status; a
    hidden cell says why it is hidden (``output_checking.hidden_cells``)."""
    checks = list(checks)
    frame = content_table(split)
    evidence = cell_evidence(checks)
    hidden = hidden_cells(checks)
    rows = []
    for row_label, values in zip(frame.index, frame.itertuples(index=False), strict=True):
        cells = []
        for column_label, value in zip(frame.columns, values, strict=True):
            found = evidence.get((_label(row_label), _label(column_label)))
            blank = value is None or value != value  # NaN: a suppressed cell
            note = hidden.find(row_label, column_label) if blank else None
            status = found.status if found else "ok"
            if note and note.suppression == PRIMARY:
                status = "fail"  # it failed a rule, even a margin the cell grid does not hold
            cells.append(
                Cell(
                    note.note if note else _cell_text(None if blank else value),
                    status,
                    list(dict.fromkeys(found.reasons)) if found else [],
                    note.suppression if note else None,
                )
            )
        rows.append((_shown_label(row_label), cells))
    names = [n for n in (split.get("index_names") or []) if n]
    return RenderedTable(
        corner=" / ".join(names), columns=[_shown_label(c) for c in frame.columns], rows=rows
    )


def _is_split_table(value: Any) -> bool:
    """True for a table in ``table_content``'s form (a table output's ``table``, a model's
    ``estimates``, a histogram's ``counts``)."""
    return isinstance(value, dict) and {"data", "index", "columns"} <= value.keys()


def _records(content: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """A DP result's (or any record-style) table: its columns and rows as text."""
    columns, rows = content.get("columns"), content.get("rows")
    if not isinstance(columns, list) or not isinstance(rows, list):
        return None
    if not all(isinstance(row, dict) for row in rows):
        return None
    return [str(c) for c in columns], [[_cell_text(row.get(c)) for c in columns] for row in rows]


def output_page(view: OutputView, policies: PolicySet) -> OutputPage:
    """Everything the request page shows of one output."""
    output = view.output
    content = output.content or {}
    # The readiness check's context and controls findings as the output reads now.
    checks = refreshed(output.checks or [], output.context, output.controls)
    tables = [
        (key.replace("_", " ").capitalize(), render_table(value, checks))
        for key, value in content.items()
        if _is_split_table(value)
    ]
    summaries: list[tuple[OutputFile, CSVSummary | None, str]] = []
    for stored in output.files:
        if stored.name.lower().endswith(".csv"):
            try:
                summaries.append((stored, summarise_csv(stored.content, policies.sdc.active), ""))
            except CSVSummaryError as exc:
                summaries.append((stored, None, str(exc)))
    text = json.dumps(content, indent=2, sort_keys=True, default=str)
    if len(text) > MAX_CONTENT_CHARS:
        text = text[:MAX_CONTENT_CHARS] + f"\n... ({len(text) - MAX_CONTENT_CHARS} more characters)"
    notes = content.get("notes")
    return OutputPage(
        view=view,
        tables=tables,
        records=None if tables else _records(content),
        checks=checks,
        csv_summaries=summaries,
        images=[f for f in output.files if Path(f.name).suffix.lower() in INLINE_TYPES],
        content_json=text,
        notes=[str(n) for n in notes] if isinstance(notes, list) else [],
        justification=str(content.get("justification") or "") if output.kind == "custom" else "",
    )

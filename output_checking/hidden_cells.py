"""Why each hidden cell of a protected table is hidden, in words a checker and a researcher read.

A protected table's check (``sdc_table``, ``histogram``) lists every cell it hid
(``suppressed``), those hidden only so that no other hidden cell can be worked out from the
totals (``secondary``, the complements), the findings of margins that failed on their own
(``margin_findings``) and, in its ``evidence``, every cell's findings. ``hidden_cells`` turns
that into one note per hidden cell: primary ones say which rule they failed ("suppressed: fewer
than 10"), secondary ones "suppressed to protect another cell". Pure computation: the check's
JSON in, notes out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

PRIMARY = "primary"
SECONDARY = "secondary"
SECONDARY_NOTE = "suppressed to protect another cell"
# A failed rule as the reason a cell is hidden. The exact figures stay in the checker's evidence:
# these words travel with the table, so they say no more than the published rule does.
REASONS = {
    "threshold": lambda f: f"fewer than {f['threshold']}" if "threshold" in f else "too few",
    "redaction": lambda f: (
        f"{f['redact_at_or_below']} or fewer" if "redact_at_or_below" in f else "too few"
    ),
    "zero": lambda f: "a zero that would disclose",
    "class_disclosure": lambda f: "everyone in its row or column falls in this cell",
    "dominance": lambda f: (
        f"dominated by its {f['n']} largest contributors"
        if "n" in f
        else "dominated by its largest contributors"
    ),
    "p_percent": lambda f: "its largest contributor could be estimated too closely (p% rule)",
    "max_min_median": lambda f: "the value of a single unit",
}
FAIL = "fail"


def _flat(label: Any) -> tuple[Any, ...]:
    """A row or column label as a flat tuple, whether it came as a scalar, list or tuple."""
    if isinstance(label, list | tuple):
        return tuple(v for part in label for v in _flat(part))
    return (label,)


def _key(*labels: Any) -> tuple[str, ...]:
    # Labels are compared as text: JSON turns 1 into 1 but a tuple into a list, and a
    # rendered table's labels may be either.
    return tuple(str(v) for label in labels for v in _flat(label))


def reason_for(finding: Mapping[str, Any]) -> str:
    """Why a failing finding hides its cell, without its exact figures ("fewer than 10").

    >>> reason_for({"rule": "threshold", "figures": {"count": 3, "threshold": 10}})
    'fewer than 10'
    """
    phrase = REASONS.get(str(finding.get("rule", "")))
    figures = finding.get("figures") or {}
    if phrase is None:
        return str(finding.get("message") or finding.get("rule") or "fails a disclosure rule")
    return phrase(figures)


@dataclass(frozen=True)
class HiddenCell:
    """One hidden cell: where it is, whether it failed a rule itself (primary) or protects
    another (secondary), and why."""

    row: Any
    column: Any
    suppression: str
    reasons: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        """What the cell says in place of its value."""
        if self.suppression == SECONDARY:
            return SECONDARY_NOTE
        return "suppressed: " + ("; ".join(self.reasons) or "fails a disclosure rule")

    @property
    def where(self) -> str:
        """The cell's labels as a reader names it: ``F / youth``."""
        return " / ".join(str(v) for v in (*_flat(self.row), *_flat(self.column)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "suppression": self.suppression,
            "note": self.note,
        }


class HiddenCells:
    """The hidden cells of a table's checks, found by their labels."""

    def __init__(self, cells: Iterable[HiddenCell], single_column: bool = False) -> None:
        self.cells = list(cells)
        self._by_key = {_key(c.row, c.column): c for c in self.cells}
        # A one-way table's evidence names its only column "value"; the released table names it
        # after the statistic, so such cells are found by their row alone.
        self._by_row = {_key(c.row): c for c in self.cells} if single_column else {}

    def find(self, row: Any, column: Any) -> HiddenCell | None:
        """The hidden cell at (row, column), or None if that cell was not hidden."""
        return self._by_key.get(_key(row, column)) or self._by_row.get(_key(row))

    def __len__(self) -> int:
        return len(self.cells)

    def __iter__(self) -> Iterator[HiddenCell]:
        return iter(self.cells)


def hidden_cells(checks: Iterable[Mapping[str, Any]]) -> HiddenCells:
    """Every cell the checks hid, primary (with the rules it failed) or secondary.

    >>> check = {"check": "sdc_table", "suppressed": [["F", "youth"], ["F", "crown"]],
    ...          "secondary": [["F", "crown"]], "evidence": {"columns": ["crown", "youth"],
    ...          "findings": [{"row": "F", "column": "youth", "rule": "threshold",
    ...                        "status": "fail", "figures": {"threshold": 10}}]}}
    >>> [cell.note for cell in hidden_cells([check])]
    ['suppressed: fewer than 10', 'suppressed to protect another cell']
    """
    cells: list[HiddenCell] = []
    single_column = False
    for check in checks:
        suppressed = check.get("suppressed")
        if not isinstance(suppressed, list) or not suppressed:
            continue
        evidence = check.get("evidence") if isinstance(check.get("evidence"), Mapping) else {}
        columns = evidence.get("columns") or []
        single_column = single_column or len(columns) == 1
        reasons: dict[tuple[str, ...], list[str]] = {}
        for finding in evidence.get("findings") or []:
            if finding.get("status") == FAIL:
                keys = [_key(finding.get("row"), finding.get("column"))]
                if len(columns) == 1:
                    keys.append(_key(finding.get("row")))
                for key in keys:
                    reasons.setdefault(key, []).append(reason_for(finding))
        for finding in check.get("margin_findings") or []:
            # A margin's finding names the margin by all its labels, row and column together.
            if finding.get("status", FAIL) == FAIL:
                reasons.setdefault(_key(finding.get("row")), []).append(reason_for(finding))
        secondary = {_key(*cell) for cell in check.get("secondary") or []}
        for cell in suppressed:
            if not isinstance(cell, list | tuple) or len(cell) != 2:
                continue
            row, column = cell
            if _key(row, column) in secondary:
                cells.append(HiddenCell(row, column, SECONDARY))
                continue
            found = reasons.get(_key(row, column)) or reasons.get(_key(row)) or []
            cells.append(HiddenCell(row, column, PRIMARY, tuple(dict.fromkeys(found))))
    return HiddenCells(cells, single_column)

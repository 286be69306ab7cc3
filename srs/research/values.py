"""What a researcher's session gives back and raises, on either side of the hub's API.

``OutputSummary`` and ``RequestStatus`` are returned by the local ``ResearchSession`` and, rebuilt
from the wire (``srs.hub.wire`` names them by this module), by the hub's ``RemoteSession``;
``SessionError`` is raised by both. They live here, below both sessions, so neither has to import
the other to name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from disclosure.evidence import OK, STATUS_RANK
from output_checking.hidden_cells import hidden_cells
from output_checking.readiness import readiness_findings, refreshed
from srs.errors import SRSError
from srs.governance.registry.models import Output


class SessionError(SRSError):
    """The session cannot do what was asked: no user or project, unknown output, bad input."""


@dataclass(frozen=True)
class OutputSummary:
    """One output as its author sees it: id, name, kind, status, its checks' verdict and
    ``notes``: why each hidden cell is hidden ("F / youth: suppressed: fewer than 10") and, for
    a custom output, what a checker will ask about before release; ``datasets_used``, the
    dataset versions (``name@version``) its session had read when it was made."""

    id: int
    name: str
    kind: str
    status: str
    checks: str
    files: tuple[str, ...] = ()
    request_id: int | None = None
    exception_requested: bool = False
    notes: tuple[str, ...] = ()
    datasets_used: tuple[str, ...] = ()

    @classmethod
    def of(cls, output: Output) -> OutputSummary:
        """The summary of a registry output (read inside its database session)."""
        checks = refreshed(output.checks or [], output.context, output.controls)
        notes = [f"{cell.where}: {cell.note}" for cell in hidden_cells(checks)]
        notes += [finding.message for finding in readiness_findings(checks)]
        return cls(
            id=output.id,
            name=output.name,
            kind=output.kind,
            status=output.status,
            checks=overall_status(checks),
            files=tuple(f.name for f in output.files),
            request_id=output.request_id,
            exception_requested=output.exception_justification is not None,
            notes=tuple(notes),
            datasets_used=tuple(
                f"{use['name']}@{use['version']}" for use in output.datasets_used or []
            ),
        )

    def __str__(self) -> str:
        line = f"output #{self.id} {self.name!r} ({self.kind}, {self.status}, checks {self.checks})"
        return "\n".join([line, *(f"    - {note}" for note in self.notes)])


@dataclass(frozen=True)
class RequestStatus:
    """Where a release request stands, as its author may see it."""

    request_id: int
    title: str
    status: str
    review_round: int
    outputs: tuple[OutputSummary, ...]
    comments: tuple[tuple[str, int | None, str], ...]  # (author, output id or None, text)
    history: tuple[str, ...]

    def __str__(self) -> str:
        lines = [f"request #{self.request_id} {self.title!r}: {self.status}"]
        lines += [f"  {output}" for output in self.outputs]
        lines += [f"  {author} on #{o}: {text}" for author, o, text in self.comments]
        return "\n".join(lines)


def overall_status(checks: list[dict[str, Any]]) -> str:
    """The worst status of an output's checks (``ok`` when it has none)."""
    return max(
        (c.get("status", OK) for c in checks), key=lambda s: STATUS_RANK.get(s, 0), default=OK
    )

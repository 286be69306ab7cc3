"""The states of a release request and the steps every part of the workflow takes with them.

A request moves ``draft -> submitted -> partially_reviewed -> reviewed -> approved |
changes_requested | rejected -> released`` (or ``withdrawn`` by its author before a decision).
Every transition (``transition``) and every refusal (``refuse``) is audited with the request as
target, so the audit log is its history.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from output_checking.outputs import REMOVED
from srs.errors import SRSError
from srs.governance.audit import record_event
from srs.governance.registry.models import Output, ReleaseRequest, utc_now

DRAFT = "draft"
SUBMITTED = "submitted"
PARTIALLY_REVIEWED = "partially_reviewed"
REVIEWED = "reviewed"
APPROVED = "approved"
CHANGES_REQUESTED = "changes_requested"
REJECTED = "rejected"
RELEASED = "released"
WITHDRAWN = "withdrawn"
REQUEST_STATES = (
    DRAFT,
    SUBMITTED,
    PARTIALLY_REVIEWED,
    REVIEWED,
    APPROVED,
    CHANGES_REQUESTED,
    REJECTED,
    RELEASED,
    WITHDRAWN,
)
UNDER_REVIEW = (SUBMITTED, PARTIALLY_REVIEWED, REVIEWED)
DECISIONS = ("approve", "reject", "request_changes")
# What an agreed vote makes of the output.
OUTPUT_STATUS_FOR = {
    "approve": "approved",
    "reject": "rejected",
    "request_changes": "changes_requested",
}


class WorkflowError(SRSError):
    """A workflow step that is not allowed now (wrong state, wrong person, incomplete review)."""


def refuse(
    session: Session, *, actor: str, action: str, target: str, reason: str, **details: Any
) -> WorkflowError:
    """Audit a refused step (committed, so it survives the caller's rollback) and return the error."""
    session.rollback()
    record_event(
        session,
        actor=actor,
        action=action,
        target=target,
        outcome="deny",
        reason=reason,
        details=details or None,
    )
    session.commit()
    return WorkflowError(reason)


def request_target(request: ReleaseRequest | int) -> str:
    """The audit target naming a request: ``request/<id>``."""
    return f"request/{request if isinstance(request, int) else request.id}"


def get_request(session: Session, request_id: int) -> ReleaseRequest:
    """The release request with this id, or ``WorkflowError``."""
    request = session.get(ReleaseRequest, request_id)
    if request is None:
        raise WorkflowError(f"no release request #{request_id}; see `srs outputs queue`")
    return request


def request_outputs(session: Session, request: ReleaseRequest) -> list[Output]:
    """The outputs of a request that are still in it (removed ones excluded), oldest first."""
    return list(
        session.execute(
            select(Output)
            # The content (a whole table) loads only when read: votes need ids and statuses.
            .options(defer(Output.content))
            .where(Output.request_id == request.id, Output.status != REMOVED)
            .order_by(Output.id)
        ).scalars()
    )


def transition(
    session: Session, request: ReleaseRequest, new_status: str, actor: str, **details: Any
) -> None:
    """Move ``request`` to ``new_status``, audited as ``request.<new_status>`` with the states
    it moved between and ``details``."""
    old = request.status
    request.status = new_status
    request.updated_at = utc_now()
    record_event(
        session,
        actor=actor,
        action=f"request.{new_status}",
        target=request_target(request),
        outcome="ok",
        details={"from": old, "to": new_status, "project": request.project.code, **details},
    )

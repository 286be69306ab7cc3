"""The checkers' side of a release request: blinded independent reviews under the two-person rule.

Each checker votes on every output of the request: ``approve``, ``reject`` or
``request_changes``. A checker's review is complete once they have voted on every output. The
policy's ``independent_reviews`` (two by default) complete reviews make the request
``reviewed``; if the reviewers agree on every output the request is decided at once, and where
they disagree either reviewer may change their vote. ``authorise_checker`` holds the two-person
rule: ``srs.governance.access`` keeps a checker off their own projects' requests, and the author
of a request never reviews or releases it. An approve vote re-runs differencing and fixes a
digest of what the checker reviewed (``output_checking.workflow.reviewed``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from output_checking.outputs import REMOVED, add_comment, get_output
from output_checking.workflow.differencing import (
    differencing_summary,
    released_tables,
    run_differencing,
    together_tables,
)
from output_checking.workflow.provenance import outputs_refusal
from output_checking.workflow.reviewed import field_digests, output_record, reviewed_digest
from output_checking.workflow.states import (
    APPROVED,
    CHANGES_REQUESTED,
    DECISIONS,
    OUTPUT_STATUS_FOR,
    PARTIALLY_REVIEWED,
    REJECTED,
    REVIEWED,
    SUBMITTED,
    UNDER_REVIEW,
    WorkflowError,
    get_request,
    refuse,
    request_outputs,
    request_target,
    transition,
)
from srs.governance.access import authorise
from srs.governance.audit import canonical_details, field_bound, record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.models import (
    Output,
    OutputComment,
    ReleaseRequest,
    ReviewVote,
    utc_now,
)


def authorise_checker(
    session: Session, actor: str, request: ReleaseRequest, policies: PolicySet, action: str
) -> None:
    """The two-person rule: ``actor`` must hold ``action`` for the request's project
    (``srs.governance.access`` refuses a member of it) and must not be its author; a refusal
    is audited (``WorkflowError`` or ``AccessDenied``)."""
    authorise(
        session,
        username=actor,
        action=action,
        policies=policies,
        project_code=request.project.code,
    )
    if request.author == actor:
        raise refuse(
            session,
            actor=actor,
            action=action,
            target=request_target(request),
            reason=f"{actor} wrote request #{request.id} and may not review or release it",
        )


def round_votes(session: Session, request: ReleaseRequest) -> list[ReviewVote]:
    """Every vote of the request's current review round."""
    return list(
        session.execute(
            select(ReviewVote)
            .where(
                ReviewVote.request_id == request.id,
                ReviewVote.review_round == request.review_round,
            )
            .order_by(ReviewVote.id)
        ).scalars()
    )


def complete_reviewers(votes: list[ReviewVote], outputs: list[Output]) -> list[str]:
    """Checkers who have voted on every output, in the order their reviews were completed."""
    wanted = {o.id for o in outputs}
    seen: dict[str, set[int]] = {}
    completed: list[str] = []
    for vote in sorted(votes, key=lambda v: v.id):
        seen.setdefault(vote.reviewer, set()).add(vote.output_id)
        if vote.reviewer not in completed and wanted <= seen[vote.reviewer]:
            completed.append(vote.reviewer)
    return completed


def conflicts(votes: list[ReviewVote], reviewers: list[str]) -> dict[int, dict[str, str]]:
    """Outputs on which the complete reviewers disagree: output id -> reviewer -> decision."""
    by_output: dict[int, dict[str, str]] = {}
    for vote in votes:
        if vote.reviewer in reviewers:
            by_output.setdefault(vote.output_id, {})[vote.reviewer] = vote.decision
    return {o: d for o, d in by_output.items() if len(set(d.values())) > 1}


def vote(
    session: Session,
    *,
    output_id: int,
    checker: str,
    policies: PolicySet,
    decision: str,
    comment: str = "",
    comment_visibility: str = "checkers",
    override_reason: str | None = None,
) -> ReviewVote:
    """Record (or change) ``checker``'s decision on one output of a request under review.

    ``comment`` goes with the vote; with ``comment_visibility="researcher"`` the author sees
    it once the request is decided. An approve vote on a table re-runs the differencing check
    against the released tables and the request's other tables; if it finds a disclosive
    difference the vote is refused unless ``override_reason`` says why it is safe; an approval
    of an output made from data destroyed or under an agreement no longer in force is refused
    (``output_checking.workflow.provenance``). Its audit
    event records the digest of what the checker approved (``reviewed_fields``), and each
    field's own short digest when they fit the audit field bound.
    """
    if decision not in DECISIONS:
        raise WorkflowError(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}")
    output = get_output(session, output_id)
    if output.request_id is None:
        raise refuse(
            session,
            actor=checker,
            action=f"output.{decision}",
            target=f"output/{output_id}",
            reason=f"output #{output_id} has not been submitted; only submitted outputs are reviewed",
        )
    request = get_request(session, output.request_id)
    authorise_checker(session, checker, request, policies, "output.review")
    target = request_target(request)
    if request.status not in UNDER_REVIEW or output.status == REMOVED:
        raise refuse(
            session,
            actor=checker,
            action=f"output.{decision}",
            target=target,
            reason=f"request #{request.id} is {request.status}; votes are taken only while it is "
            "under review",
            output_id=output_id,
        )
    outputs = request_outputs(session, request)
    votes = round_votes(session, request)
    reviewers = complete_reviewers(votes, outputs)
    needed = policies.release.independent_reviews
    voters = list(dict.fromkeys(v.reviewer for v in votes))
    if checker not in voters and len(voters) >= needed:
        raise refuse(
            session,
            actor=checker,
            action=f"output.{decision}",
            target=target,
            reason=f"request #{request.id} already has its {needed} reviewer(s): "
            f"{', '.join(voters)}",
            output_id=output_id,
        )
    if request.status == REVIEWED and checker not in reviewers:
        raise refuse(
            session,
            actor=checker,
            action=f"output.{decision}",
            target=target,
            reason=f"request #{request.id} is reviewed; only its reviewers may change votes",
        )
    reviewed: dict[str, Any] = {}
    if decision == "approve" and (refusal := outputs_refusal(session, [output])):
        raise refuse(
            session,
            actor=checker,
            action="output.approve",
            target=target,
            reason=f"{refusal}; reject it instead",
            output_id=output.id,
        )
    if decision == "approve":
        findings = run_differencing(
            output,
            released_tables(session, request.project_id, policies),
            policies,
            together_tables(output, outputs),
        )
        if findings and not (override_reason and override_reason.strip()):
            session.commit()  # keep the fresh differencing evidence on the output
            raise refuse(
                session,
                actor=checker,
                action="output.approve",
                target=target,
                reason=f"output #{output.id}: differencing against released tables and the "
                f"request's other tables finds {differencing_summary(findings)}; give an "
                "override reason if it is safe",
                output_id=output.id,
            )
        fields = output_record(output)
        # A release requires its rows still to give this digest (release_evidence).
        reviewed = {"reviewed_sha256": reviewed_digest(fields), "reviewed": field_digests(fields)}
    existing = next((v for v in votes if v.output_id == output.id and v.reviewer == checker), None)
    changed = existing is not None
    note = comment.strip()
    if override_reason and override_reason.strip():
        note = (note + "\n" if note else "") + f"differencing override: {override_reason.strip()}"
    if existing is None:
        existing = ReviewVote(
            request_id=request.id,
            output_id=output.id,
            reviewer=checker,
            review_round=request.review_round,
            decision=decision,
            comment=note,
        )
        session.add(existing)
    else:
        existing.decision = decision
        existing.comment = note
        existing.updated_at = utc_now()
    if note:
        add_comment(session, actor=checker, text=note, visibility=comment_visibility, output=output)
    session.flush()
    details = {
        "output_id": output.id,
        "round": request.review_round,
        "changed": changed,
        # A release reads the override from here, not from the editable votes table.
        "differencing_override": bool(override_reason and override_reason.strip()),
        **reviewed,
    }
    if "reviewed" in details and len(canonical_details(details)) > field_bound(session):
        del details["reviewed"]  # the per-field digests only name what changed; the digest stays
    record_event(
        session,
        actor=checker,
        action=f"output.{decision}",
        target=target,
        outcome="ok",
        details=details,
    )
    _advance(session, request, policies, checker)
    session.commit()
    return existing


def _advance(session: Session, request: ReleaseRequest, policies: PolicySet, actor: str) -> None:
    """Move the request on after a vote: partial, reviewed, then decided when reviewers agree."""
    outputs = request_outputs(session, request)
    votes = round_votes(session, request)
    reviewers = complete_reviewers(votes, outputs)
    needed = policies.release.independent_reviews
    if len(reviewers) < needed:
        target = PARTIALLY_REVIEWED if reviewers else SUBMITTED
        if request.status != target:
            transition(session, request, target, actor, reviewers=reviewers)
        return
    if request.status != REVIEWED:
        transition(session, request, REVIEWED, actor, reviewers=reviewers[:needed])
    reviewers = reviewers[:needed]
    disagreements = conflicts(votes, reviewers)
    if disagreements:
        return
    agreed = {v.output_id: v.decision for v in votes if v.reviewer in reviewers}
    for output in outputs:
        output.status = OUTPUT_STATUS_FOR[agreed[output.id]]
    decisions = set(agreed.values())
    if "request_changes" in decisions:
        outcome = CHANGES_REQUESTED
        for output in outputs:
            # Everything goes back to the author, to be revised and resubmitted together.
            output.status = CHANGES_REQUESTED
    elif "approve" in decisions:
        outcome = APPROVED
    else:
        outcome = REJECTED
    transition(
        session,
        request,
        outcome,
        actor,
        decisions={str(k): v for k, v in agreed.items()},
        reviewers=reviewers,
    )


def comment_on_request(
    session: Session,
    *,
    request_id: int,
    actor: str,
    policies: PolicySet,
    text: str,
    visibility: str = "checkers",
    output_id: int | None = None,
) -> OutputComment:
    """A checker's comment on a request (or one of its outputs): private to checkers, or
    visible to the researcher."""
    request = get_request(session, request_id)
    authorise_checker(session, actor, request, policies, "output.review")
    output = get_output(session, output_id) if output_id is not None else None
    if output is not None and output.request_id != request.id:
        raise WorkflowError(f"output #{output_id} is not in request #{request_id}")
    comment = add_comment(
        session, actor=actor, text=text, visibility=visibility, output=output, request_id=request.id
    )
    record_event(
        session,
        actor=actor,
        action="request.comment",
        target=request_target(request),
        outcome="ok",
        details={"comment_id": comment.id, "visibility": visibility},
    )
    session.commit()
    return comment

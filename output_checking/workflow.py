"""The release workflow: a researcher's request, blinded independent reviews, and the outcome.

A release request moves ``draft -> submitted -> partially_reviewed -> reviewed -> approved |
changes_requested | rejected -> released`` (or ``withdrawn`` by its author before a decision);
every transition is audited with the request as target, so the audit log is its history.

Each checker votes on every output of the request: ``approve``, ``reject`` or
``request_changes``. A checker's review is complete once they have voted on every output. The
policy's ``independent_reviews`` (two by default, as in the OpenSAFELY airlock and the ONS SRS)
complete reviews make the request ``reviewed``; while ``blind_reviews`` holds, no checker sees
another's votes until then. If the reviewers agree on every output the request is decided at
once: any output needing changes sends the request back to its author
(``changes_requested``), otherwise it is ``approved`` when at least one output is approved
(rejected outputs stay behind) and ``rejected`` when none is. Where they disagree the conflict
is shown and either reviewer may change their vote. The two-person rule is enforced by
``srs.governance.access``: a checker never reviews a request of a project they belong to.

Before an approve vote counts on a table (or a histogram's counts), the differencing check runs
against the tables the project has already released and the other tables of the same request,
which would be released with it; a disclosive difference refuses the vote unless the checker
records why it is safe. The approve vote's audit event fixes a digest of exactly what the
checker reviewed (``reviewed_fields``), which a release requires to be unchanged. Every refusal
is audited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from disclosure.differencing import ReleasedTable, check_differencing
from output_checking.outputs import (
    EDITABLE,
    REMOVED,
    OutputError,
    add_comment,
    content_checksum,
    content_table,
    files_digest,
    get_output,
)
from srs.errors import SRSError
from srs.governance.access import authorise
from srs.governance.audit import canonical_details, field_bound, record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.models import (
    AuditEvent,
    Output,
    OutputComment,
    Project,
    ProjectMember,
    Release,
    ReleaseRequest,
    Researcher,
    ReviewVote,
    utc_now,
)
from srs.governance.registry.projects import get_project

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


def _refuse(
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


def _transition(
    session: Session, request: ReleaseRequest, new_status: str, actor: str, **details: Any
) -> None:
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


# ------------------------------------------------------------------ the researcher's side
def create_request(
    session: Session,
    *,
    project_code: str,
    author: str,
    policies: PolicySet,
    title: str,
    output_ids: Iterable[int] | None = None,
) -> ReleaseRequest:
    """A draft request holding ``output_ids`` (default: every draft output of ``author`` in the
    project that is in no request yet)."""
    authorise(
        session,
        username=author,
        action="output.create",
        policies=policies,
        project_code=project_code,
    )
    if not title or not title.strip():
        raise WorkflowError("give the request a title that says what the outputs are for")
    project = get_project(session, project_code)
    if output_ids is None:
        outputs = list(
            session.execute(
                select(Output)
                .where(
                    Output.project_id == project.id,
                    Output.author == author,
                    Output.status == DRAFT,
                    Output.request_id.is_(None),
                )
                .order_by(Output.id)
            ).scalars()
        )
    else:
        outputs = [get_output(session, i) for i in output_ids]
    for output in outputs:
        problem = None
        if output.project_id != project.id:
            problem = f"output #{output.id} belongs to another project"
        elif output.author != author:
            problem = f"output #{output.id} is {output.author}'s, not yours"
        elif output.status != DRAFT or output.request_id is not None:
            problem = f"output #{output.id} is {output.status} and already in a request"
        if problem:
            raise _refuse(
                session, actor=author, action="request.create", target=project_code, reason=problem
            )
    if not outputs:
        raise _refuse(
            session,
            actor=author,
            action="request.create",
            target=project_code,
            reason=f"{author} has no draft outputs in {project_code} to submit",
        )
    request = ReleaseRequest(
        project_id=project.id, author=author, title=title.strip(), status=DRAFT, review_round=1
    )
    session.add(request)
    session.flush()
    for output in outputs:
        output.request_id = request.id
    record_event(
        session,
        actor=author,
        action="request.draft",
        target=request_target(request),
        outcome="ok",
        details={
            "project": project_code,
            "title": request.title,
            "outputs": [o.id for o in outputs],
        },
    )
    session.commit()
    return request


def submit_request(
    session: Session, *, request_id: int, actor: str, policies: PolicySet
) -> ReleaseRequest:
    """Send a draft (or a request returned for changes) to the checkers' queue.

    The differencing check runs now against the project's releases, so checkers see its
    evidence; a resubmission starts a new round of reviews.
    """
    request = get_request(session, request_id)
    code = request.project.code
    authorise(session, username=actor, action="output.create", policies=policies, project_code=code)
    if request.author != actor:
        raise _refuse(
            session,
            actor=actor,
            action="request.submit",
            target=request_target(request),
            reason=f"request #{request.id} is {request.author}'s; only its author may submit it",
        )
    if request.status not in (DRAFT, CHANGES_REQUESTED):
        raise _refuse(
            session,
            actor=actor,
            action="request.submit",
            target=request_target(request),
            reason=f"request #{request.id} is {request.status}; only a draft or a request returned "
            "for changes can be submitted",
        )
    outputs = request_outputs(session, request)
    if not outputs:
        raise _refuse(
            session,
            actor=actor,
            action="request.submit",
            target=request_target(request),
            reason=f"request #{request.id} has no outputs left to submit",
        )
    resubmission = request.status == CHANGES_REQUESTED
    if resubmission:
        request.review_round += 1
    released = released_tables(session, request.project_id, policies)
    for output in outputs:
        output.status = SUBMITTED
        run_differencing(output, released, policies, together_tables(output, outputs))
    _transition(
        session,
        request,
        SUBMITTED,
        actor,
        round=request.review_round,
        outputs=[o.id for o in outputs],
    )
    session.commit()
    return request


def withdraw_request(
    session: Session, *, request_id: int, actor: str, policies: PolicySet
) -> ReleaseRequest:
    """The author takes a request back before it is decided; its outputs can never be released."""
    request = get_request(session, request_id)
    authorise(
        session,
        username=actor,
        action="output.create",
        policies=policies,
        project_code=request.project.code,
    )
    if request.author != actor or request.status not in (DRAFT, *UNDER_REVIEW, CHANGES_REQUESTED):
        raise _refuse(
            session,
            actor=actor,
            action="request.withdraw",
            target=request_target(request),
            reason=f"request #{request.id} ({request.status}) cannot be withdrawn by {actor}: "
            "only its author may, before a final decision",
        )
    for output in request_outputs(session, request):
        output.status = WITHDRAWN
    _transition(session, request, WITHDRAWN, actor)
    session.commit()
    return request


# ------------------------------------------------------------------ differencing
# The kinds whose content may hold a count table differencing reads.
COUNTED_KINDS = ("table", "figure")


def released_tables(session: Session, project_id: int, policies: PolicySet) -> dict[str, Any]:
    """Every table the project has released (a histogram's counts too), by a name a checker
    recognises, as the attacker sees it (``ReleasedTable``: cells, margins, rounding,
    statistic)."""
    tables: dict[str, Any] = {}
    outputs = session.execute(
        select(Output)
        .where(
            Output.project_id == project_id,
            Output.status == RELEASED,
            Output.kind.in_(COUNTED_KINDS),
        )
        .order_by(Output.id)
    ).scalars()
    for output in outputs:
        table = published_table(output)
        if table is not None:
            tables[f"output #{output.id} ({output.name})"] = table
    return tables


def together_tables(output: Output, others: Iterable[Output]) -> dict[str, Any]:
    """The tables of ``others`` (outputs released with ``output``, itself left out) as the
    attacker sees them, each named as "output #N in this request"."""
    tables: dict[str, Any] = {}
    for other in others:
        if other.id == output.id:
            continue
        table = published_table(other)
        if table is not None:
            tables[f"output #{other.id} in this request ({other.name})"] = table
    return tables


def published_table(output: Output) -> ReleasedTable | None:
    """The count table an output publishes, as the attacker sees it: a table output with its
    margins kept as the attacker's equations (summing them into the cells would double them and
    hide a small difference), or a histogram's bin counts (its CSV), the bins named after the
    variable binned. None for an output that publishes no table."""
    content = output.content or {}
    if output.kind == "table" and "table" in content:
        return ReleasedTable(
            content_table(content["table"]),
            margins=content.get("margins") or None,
            rounding=content.get("rounding") or "none",
            statistic=content.get("statistic", "count"),
        )
    if output.kind == "figure" and "counts" in content:
        counts = content_table(content["counts"])
        if "count" not in counts.columns:
            return None
        bins = counts[["count"]].rename_axis(content.get("column") or counts.index.name)
        return ReleasedTable(bins, rounding=content.get("rounding") or "none")
    return None


def run_differencing(
    output: Output,
    released: dict[str, Any],
    policies: PolicySet,
    together: dict[str, Any] | None = None,
) -> list[dict]:
    """Check a table output against the project's released tables and the tables to be
    released with it (``together``, from ``together_tables``); store and return findings.

    The check is ``fail`` when a cell is exposed, ``review`` when some table could not be
    judged against it (its findings say "not checked: needs a checker"), and ``ok`` only when
    every one was judged safe. Disclosive findings come first; every finding, of either status,
    needs a checker's override to approve or release the output.
    """
    table = published_table(output)
    if table is None:
        return []
    together = together or {}
    compared = {**released, **together}
    findings = [f.to_dict() for f in check_differencing(table, compared, policies.sdc.active)]
    failing = sum(f["status"] == "fail" for f in findings)
    unjudged = len(findings) - failing
    against = f"{len(released)} released table(s)"
    if together:
        against += f" and {len(together)} other table(s) of this request"
    if failing:
        status = "fail"
        message = f"{failing} cell(s) differ by a small count from {against}"
        if unjudged:
            message += f"; {unjudged} comparison(s) not checked: needs a checker"
    elif unjudged:
        status = "review"
        message = f"{unjudged} comparison(s) with {against} not checked: needs a checker"
    else:
        status = "ok"
        message = f"no disclosive difference against {against}"
    check = {
        "check": "differencing",
        "status": status,
        "message": message,
        "findings": findings,
        "checked_at": utc_now().isoformat(timespec="seconds"),
    }
    output.checks = [c for c in (output.checks or []) if c.get("check") != "differencing"] + [check]
    return findings


# ------------------------------------------------------------------ what a checker reviewed
# What a checker reviews of an output and a release carries: an approve vote's audit event
# fixes their digest, and a release refuses an output whose rows no longer give it.
_ROW_FIELDS = (
    "kind",
    "name",
    "author",
    "context",
    "controls",
    "exception_justification",
    "differentially_private",
    "budget_spend_id",
)
REVIEWED_FIELDS = (*_ROW_FIELDS, "content_sha256", "files_sha256", "checks")


def reviewed_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The reviewed fields of an output record (``output_record``, or a manifest's record with
    its ``files_sha256``). Of the checks, each one's check, status and message, except the
    differencing check's, which re-runs as the project releases more."""
    fields = {name: record.get(name) for name in REVIEWED_FIELDS}
    fields["checks"] = [
        {key: check.get(key) for key in ("check", "status", "message")}
        for check in record.get("checks") or []
        if check.get("check") != "differencing"
    ]
    return fields


def registry_files(output: Output) -> dict[str, str]:
    """An output's files as the registry holds them: name -> SHA-256 of the stored bytes (not
    of the editable ``sha256`` column)."""
    return {f.name: hashlib.sha256(f.content).hexdigest() for f in output.files}


def output_record(output: Output) -> dict[str, Any]:
    """An output's reviewed fields as its registry rows give them now."""
    return reviewed_fields(
        {
            **{name: getattr(output, name) for name in _ROW_FIELDS},
            "content_sha256": content_checksum(output.content),
            "files_sha256": files_digest(registry_files(output)),
            "checks": output.checks,
        }
    )


def reviewed_digest(fields: Mapping[str, Any]) -> str:
    """SHA-256 of the reviewed fields' canonical JSON: what an approve vote's event records."""
    return content_checksum(dict(fields))


def field_digests(fields: Mapping[str, Any]) -> dict[str, str]:
    """Each reviewed field's own short digest, so a refusal can say which of them changed."""
    return {name: content_checksum({"value": value})[:16] for name, value in fields.items()}


def changed_fields(fields: Mapping[str, Any], recorded: Any) -> list[str]:
    """The reviewed fields whose digest differs from ``recorded`` (a vote event's
    ``reviewed``); empty when the event recorded none."""
    if not isinstance(recorded, dict):
        return []
    now = field_digests(fields)
    return [name for name in REVIEWED_FIELDS if recorded.get(name) != now.get(name)]


def differencing_summary(findings: list[dict]) -> str:
    """What a refusal says of differencing findings: disclosive differences and comparisons the
    check could not judge are named as what they are, the first of them quoted."""
    failing = sum(f.get("status") == "fail" for f in findings)
    unjudged = len(findings) - failing
    parts = []
    if failing:
        parts.append(f"{failing} disclosive difference(s)")
    if unjudged:
        parts.append(f"{unjudged} comparison(s) it could not judge (a checker must)")
    return f"{' and '.join(parts)}: {findings[0]['message']}"


# ------------------------------------------------------------------ the checkers' side
def _authorise_checker(
    session: Session, actor: str, request: ReleaseRequest, policies: PolicySet, action: str
) -> None:
    authorise(
        session,
        username=actor,
        action=action,
        policies=policies,
        project_code=request.project.code,
    )
    if request.author == actor:
        raise _refuse(
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
    difference the vote is refused unless ``override_reason`` says why it is safe. Its audit
    event records the digest of what the checker approved (``reviewed_fields``), and each
    field's own short digest when they fit the audit field bound.
    """
    if decision not in DECISIONS:
        raise WorkflowError(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}")
    output = get_output(session, output_id)
    if output.request_id is None:
        raise _refuse(
            session,
            actor=checker,
            action=f"output.{decision}",
            target=f"output/{output_id}",
            reason=f"output #{output_id} has not been submitted; only submitted outputs are reviewed",
        )
    request = get_request(session, output.request_id)
    _authorise_checker(session, checker, request, policies, "output.review")
    target = request_target(request)
    if request.status not in UNDER_REVIEW or output.status == REMOVED:
        raise _refuse(
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
        raise _refuse(
            session,
            actor=checker,
            action=f"output.{decision}",
            target=target,
            reason=f"request #{request.id} already has its {needed} reviewer(s): "
            f"{', '.join(voters)}",
            output_id=output_id,
        )
    if request.status == REVIEWED and checker not in reviewers:
        raise _refuse(
            session,
            actor=checker,
            action=f"output.{decision}",
            target=target,
            reason=f"request #{request.id} is reviewed; only its reviewers may change votes",
        )
    reviewed: dict[str, Any] = {}
    if decision == "approve":
        findings = run_differencing(
            output,
            released_tables(session, request.project_id, policies),
            policies,
            together_tables(output, outputs),
        )
        if findings and not (override_reason and override_reason.strip()):
            session.commit()  # keep the fresh differencing evidence on the output
            raise _refuse(
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
            _transition(session, request, target, actor, reviewers=reviewers)
        return
    if request.status != REVIEWED:
        _transition(session, request, REVIEWED, actor, reviewers=reviewers[:needed])
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
    _transition(
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
    _authorise_checker(session, actor, request, policies, "output.review")
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


# ------------------------------------------------------------------ what people see
@dataclass
class QueueEntry:
    """One request in a checker's queue."""

    request_id: int
    project: str
    author: str
    title: str
    status: str
    outputs: int
    reviewers: list[str]
    your_review_complete: bool
    updated_at: datetime


def _member_project_ids(session: Session, username: str) -> set[int]:
    return set(
        session.execute(
            select(ProjectMember.project_id)
            .join(Researcher, Researcher.id == ProjectMember.researcher_id)
            .where(Researcher.username == username)
        ).scalars()
    )


def checker_queue(
    session: Session, *, checker: str, policies: PolicySet, include_decided: bool = False
) -> list[QueueEntry]:
    """Requests awaiting review that ``checker`` may review (never their own projects')."""
    authorise(session, username=checker, action="output.review", policies=policies)
    own = _member_project_ids(session, checker)
    states = REQUEST_STATES if include_decided else (*UNDER_REVIEW, APPROVED)
    requests = session.execute(
        select(ReleaseRequest)
        .where(ReleaseRequest.status.in_(states), ReleaseRequest.status != DRAFT)
        .order_by(ReleaseRequest.updated_at, ReleaseRequest.id)
    ).scalars()
    entries = []
    for request in requests:
        if request.project_id in own or request.author == checker:
            continue
        outputs = request_outputs(session, request)
        reviewers = complete_reviewers(round_votes(session, request), outputs)
        entries.append(
            QueueEntry(
                request_id=request.id,
                project=request.project.code,
                author=request.author,
                title=request.title,
                status=request.status,
                outputs=len(outputs),
                reviewers=reviewers,
                your_review_complete=checker in reviewers,
                updated_at=request.updated_at,
            )
        )
    return entries


@dataclass
class OutputView:
    """One output as a checker (or its author) may see it."""

    output: Output
    your_vote: ReviewVote | None
    votes: list[ReviewVote]  # others' votes; empty while the reviews are blind
    conflict: bool
    comments: list[OutputComment]
    differencing: dict | None


@dataclass
class RequestView:
    """A request with everything its viewer may see: outputs, evidence, votes, comments, history."""

    request: ReleaseRequest
    viewer: str
    is_checker: bool
    outputs: list[OutputView]
    reviewers: list[str]
    reviews_needed: int
    blinded: bool
    conflicts: dict[int, dict[str, str]]
    comments: list[OutputComment]
    history: list[AuditEvent] = field(default_factory=list)
    release: Release | None = None


def request_view(
    session: Session, *, request_id: int, viewer: str, policies: PolicySet
) -> RequestView:
    """What ``viewer`` may see of a request: a checker sees evidence, the votes once reviews are
    unblinded, every comment and the history; the author sees comments meant for them and, once
    decided, the decisions. Anyone else (another member of the project) is refused, audited."""
    request = get_request(session, request_id)
    code = request.project.code
    is_checker = viewer != request.author and any(
        policies.access.allows(role, "output.review") for role in _roles(session, viewer)
    )
    if is_checker:
        _authorise_checker(session, viewer, request, policies, "output.review")
    else:
        authorise(
            session, username=viewer, action="output.create", policies=policies, project_code=code
        )
        if viewer != request.author:
            raise _refuse(
                session,
                actor=viewer,
                action="request.view",
                target=request_target(request),
                reason=f"request #{request.id} is not yours: only its author and the checkers "
                "may see it",
            )
    outputs = request_outputs(session, request)
    votes = round_votes(session, request)
    reviewers = complete_reviewers(votes, outputs)
    needed = policies.release.independent_reviews
    decided = request.status not in (DRAFT, *UNDER_REVIEW)
    blinded = policies.release.blind_reviews and len(reviewers) < needed and not decided
    if is_checker:
        blinded = blinded or viewer not in reviewers and not decided
    disagreements = {} if blinded else conflicts(votes, reviewers[:needed])
    all_comments = list(
        session.execute(
            select(OutputComment)
            .where(OutputComment.request_id == request.id)
            .order_by(OutputComment.id)
        ).scalars()
    )
    visible = [
        c
        for c in all_comments
        if is_checker or c.visibility == "researcher" and (decided or c.author == viewer)
    ]
    if is_checker and blinded:
        # Blind reviews: another checker's vote comments stay hidden until the reviews are in.
        others = {v.reviewer for v in votes if v.reviewer != viewer}
        visible = [c for c in visible if c.author not in others]
    views = []
    for output in outputs:
        mine = next((v for v in votes if v.output_id == output.id and v.reviewer == viewer), None)
        others = (
            []
            if (blinded or not (is_checker or decided))
            else [v for v in votes if v.output_id == output.id and v.reviewer != viewer]
        )
        views.append(
            OutputView(
                output=output,
                your_vote=mine,
                votes=others,
                conflict=output.id in disagreements,
                comments=[c for c in visible if c.output_id == output.id],
                differencing=next(
                    (c for c in output.checks or [] if c.get("check") == "differencing"), None
                ),
            )
        )
    history = list(
        session.execute(
            select(AuditEvent)
            .where(AuditEvent.target == request_target(request))
            .order_by(AuditEvent.seq)
        ).scalars()
    )
    if not is_checker:
        history = [e for e in history if e.outcome == "ok" and e.action.startswith("request.")]
    elif blinded:
        # Blind reviews: another checker's votes stay out of the history until the reviews are in.
        votes_actions = {f"output.{d}" for d in DECISIONS}
        history = [e for e in history if e.action not in votes_actions or e.actor == viewer]
    release = session.execute(
        select(Release).where(Release.request_id == request.id)
    ).scalar_one_or_none()
    return RequestView(
        request=request,
        viewer=viewer,
        is_checker=is_checker,
        outputs=views,
        reviewers=reviewers,
        reviews_needed=needed,
        blinded=blinded,
        conflicts=disagreements,
        comments=[c for c in visible if c.output_id is None],
        history=history,
        release=release,
    )


def _roles(session: Session, username: str) -> list[str]:
    person = session.execute(
        select(Researcher).where(Researcher.username == username)
    ).scalar_one_or_none()
    return list(person.roles) if person else []


def project_requests(session: Session, project_code: str) -> list[ReleaseRequest]:
    """Every request of a project, oldest first."""
    project = session.execute(
        select(Project).where(Project.code == project_code)
    ).scalar_one_or_none()
    if project is None:
        raise OutputError(f"no project {project_code!r}")
    return list(
        session.execute(
            select(ReleaseRequest)
            .where(ReleaseRequest.project_id == project.id)
            .order_by(ReleaseRequest.id)
        ).scalars()
    )


__all__ = [
    "EDITABLE",
    "REQUEST_STATES",
    "QueueEntry",
    "RequestView",
    "WorkflowError",
    "checker_queue",
    "comment_on_request",
    "create_request",
    "get_request",
    "output_record",
    "project_requests",
    "request_outputs",
    "request_view",
    "reviewed_digest",
    "reviewed_fields",
    "submit_request",
    "vote",
    "withdraw_request",
]

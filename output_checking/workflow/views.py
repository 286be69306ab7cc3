"""What people see of release requests: a checker's queue, one request as its viewer may see it
(blind reviews hide other checkers' votes until the reviews are in), a project's requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from output_checking.outputs import OutputError
from output_checking.workflow.reviews import (
    authorise_checker,
    complete_reviewers,
    conflicts,
    round_votes,
)
from output_checking.workflow.states import (
    APPROVED,
    DECISIONS,
    DRAFT,
    REQUEST_STATES,
    UNDER_REVIEW,
    get_request,
    refuse,
    request_outputs,
    request_target,
)
from srs.governance.access import authorise
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
)


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
        authorise_checker(session, viewer, request, policies, "output.review")
    else:
        authorise(
            session, username=viewer, action="output.create", policies=policies, project_code=code
        )
        if viewer != request.author:
            raise refuse(
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

"""The researcher's side of a release request: draft it from their outputs, submit it to the
checkers (running the differencing check, so checkers see its evidence), or withdraw it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from output_checking.outputs import get_output
from output_checking.workflow.differencing import (
    released_tables,
    run_differencing,
    together_tables,
)
from output_checking.workflow.provenance import outputs_refusal
from output_checking.workflow.states import (
    CHANGES_REQUESTED,
    DRAFT,
    SUBMITTED,
    UNDER_REVIEW,
    WITHDRAWN,
    WorkflowError,
    get_request,
    refuse,
    request_outputs,
    request_target,
    transition,
)
from srs.governance.access import authorise
from srs.governance.audit import record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.models import Output, ReleaseRequest
from srs.governance.registry.projects import get_project


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
            raise refuse(
                session, actor=author, action="request.create", target=project_code, reason=problem
            )
    if not outputs:
        raise refuse(
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
    evidence; a resubmission starts a new round of reviews. Refused (audited) when an output
    was made from a dataset version destroyed or under an agreement no longer in force
    (``output_checking.workflow.provenance``).
    """
    request = get_request(session, request_id)
    code = request.project.code
    authorise(session, username=actor, action="output.create", policies=policies, project_code=code)
    if request.author != actor:
        raise refuse(
            session,
            actor=actor,
            action="request.submit",
            target=request_target(request),
            reason=f"request #{request.id} is {request.author}'s; only its author may submit it",
        )
    if request.status not in (DRAFT, CHANGES_REQUESTED):
        raise refuse(
            session,
            actor=actor,
            action="request.submit",
            target=request_target(request),
            reason=f"request #{request.id} is {request.status}; only a draft or a request returned "
            "for changes can be submitted",
        )
    outputs = request_outputs(session, request)
    if not outputs:
        raise refuse(
            session,
            actor=actor,
            action="request.submit",
            target=request_target(request),
            reason=f"request #{request.id} has no outputs left to submit",
        )
    refusal = outputs_refusal(session, outputs)
    if refusal:
        raise refuse(
            session,
            actor=actor,
            action="request.submit",
            target=request_target(request),
            reason=f"request #{request.id} cannot be submitted: {refusal}",
        )
    resubmission = request.status == CHANGES_REQUESTED
    if resubmission:
        request.review_round += 1
    released = released_tables(session, request.project_id, policies)
    for output in outputs:
        output.status = SUBMITTED
        run_differencing(output, released, policies, together_tables(output, outputs))
    transition(
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
        raise refuse(
            session,
            actor=actor,
            action="request.withdraw",
            target=request_target(request),
            reason=f"request #{request.id} ({request.status}) cannot be withdrawn by {actor}: "
            "only its author may, before a final decision",
        )
    for output in request_outputs(session, request):
        output.status = WITHDRAWN
    transition(session, request, WITHDRAWN, actor)
    session.commit()
    return request

"""Session scope: a researcher session acts only in its own project and only on its
researcher's own outputs and requests. ana works in P001 and P002; olga joins P001 too, so a
colleague in the same project is tried as well as ana's own work in another project."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from session_fixtures import OTHER_PROJECT, small_deployment
from sqlalchemy import func, select

import srs
from registry_fixtures import PROJECT
from srs.governance.access import AccessDenied
from srs.governance.deployment import Deployment
from srs.governance.registry import Registry, projects
from srs.governance.registry.models import AuditEvent, Output, OutputComment, ReleaseRequest
from srs.research.session import ResearchSession

SECRET = "Secret victims table"  # names from P002 that a P001 session must never echo
SECRET_REQUEST = "Secret victims request"
JUSTIFICATION = "The counts are published by the MoJ each quarter anyway."


@dataclass
class Work:
    """What each researcher made: outputs (drafts unless said) and requests, by id."""

    ana_p002_draft: int
    ana_p002_submitted: int
    ana_p002_request: int
    ana_p001_draft: int
    ana_p001_request: int
    olga_p001_request: int


@pytest.fixture
def lab(tmp_path, policies) -> tuple[Deployment, Registry]:
    """The small deployment, with ana a member of P002 as well and olga of P001 as well."""
    deployment, registry = small_deployment(tmp_path / "home", policies)
    with registry.sessions() as db:
        projects.add_member(
            db, actor="admin", policies=policies, code=OTHER_PROJECT, username="ana"
        )
        projects.add_member(db, actor="admin", policies=policies, code=PROJECT, username="olga")
    yield deployment, registry
    registry.dispose()


def open_session(lab, policies, user: str, project: str) -> ResearchSession:
    deployment, _ = lab
    return srs.session(user=user, project=project, deployment=deployment, policies=policies)


@pytest.fixture
def work(lab, policies) -> Work:
    with open_session(lab, policies, "ana", OTHER_PROJECT) as p002:
        victims = p002.dataset("linked/victims")
        submitted = p002.crosstab(victims, "sex", name=SECRET + " (sent)").attrs["srs_output_id"]
        p002_request = p002.submit(SECRET_REQUEST, [submitted])
        p002_draft = p002.crosstab(victims, "court", name=SECRET).attrs["srs_output_id"]
    with open_session(lab, policies, "olga", PROJECT) as olga:
        olga.crosstab("linked/journeys", "sex", name="olga's table")
        olga_request = olga.submit("olga's tables")
    with open_session(lab, policies, "ana", PROJECT) as p001:
        journeys = p001.dataset("linked/journeys")
        p001.crosstab(journeys, "court", name="ana's sent table")
        p001_request = p001.submit("ana's P001 tables")
        p001_draft = p001.crosstab(journeys, "sex", name="ana's draft").attrs["srs_output_id"]
    return Work(p002_draft, submitted, p002_request, p001_draft, p001_request, olga_request)


def snapshot(registry: Registry, output_id: int) -> tuple:
    """Everything a refused change could have touched on an output."""
    with registry.sessions() as db:
        output = db.get(Output, output_id)
        comments = db.execute(
            select(func.count()).where(OutputComment.output_id == output_id)
        ).scalar_one()
        return (
            output.name,
            output.context,
            output.controls,
            output.status,
            output.exception_justification,
            output.request_id,
            comments,
        )


def request_state(registry: Registry, request_id: int) -> tuple:
    with registry.sessions() as db:
        request = db.get(ReleaseRequest, request_id)
        return request.status, request.review_round


def denials(registry: Registry, actor: str) -> list[AuditEvent]:
    with registry.sessions() as db:
        return list(
            db.execute(
                select(AuditEvent)
                .where(AuditEvent.actor == actor, AuditEvent.outcome == "deny")
                .order_by(AuditEvent.seq)
            ).scalars()
        )


def output_calls(output_id: int) -> dict[str, Callable[[ResearchSession], object]]:
    """Every session method that acts on one output, by the audit action of its refusal."""
    return {
        "output.rename": lambda s: s.rename(output_id, "renamed from elsewhere"),
        "output.describe": lambda s: s.describe(output_id, context="changed", controls="none"),
        "output.comment": lambda s: s.comment(output_id, "commented from elsewhere"),
        "output.remove": lambda s: s.remove(output_id),
        "output.request_exception": lambda s: s.request_exception(output_id, JUSTIFICATION),
        "request.create": lambda s: s.submit("from elsewhere", [output_id]),
        "output.lookup": lambda s: s.output_id(output_id),
    }


def assert_refused(
    registry: Registry, s: ResearchSession, call, action: str, detail: str, record_id: int
) -> None:
    """The call is refused without naming what the id is, and the refusal is audited."""
    before = len(denials(registry, s.user))
    with pytest.raises(AccessDenied) as refusal:
        call(s)
    message = str(refusal.value)
    assert f"no {'output' if detail == 'output_id' else 'release request'} #{record_id}" in message
    assert f"your project {s.project}" in message
    assert "Secret" not in message and OTHER_PROJECT not in message
    new = denials(registry, s.user)[before:]
    assert len(new) == 1, [(e.action, e.reason) for e in new]
    (event,) = new
    # An output's refusal is the session's project's event, a request's is in its history.
    target = s.project if detail == "output_id" else f"request/{record_id}"
    assert (event.action, event.target, event.outcome) == (action, target, "deny")
    details = json.loads(event.details)
    assert details["project"] == s.project
    # The id asked for (one beyond 64 bits is kept as text, in hex).
    assert details[detail] in (record_id, hex(record_id))
    assert "Secret" not in event.details


# ------------------------------------------------------------------ ana's own P002 work
def test_a_p001_session_cannot_see_her_own_p002_request(lab, policies, work) -> None:
    _, registry = lab
    with open_session(lab, policies, "ana", PROJECT) as s:
        assert_refused(
            registry,
            s,
            lambda s: s.request_status(work.ana_p002_request),
            "request.view",
            "request_id",
            work.ana_p002_request,
        )


def test_a_p001_session_cannot_change_or_submit_her_own_p002_outputs(lab, policies, work) -> None:
    _, registry = lab
    before = snapshot(registry, work.ana_p002_draft)
    with open_session(lab, policies, "ana", PROJECT) as s:
        for action, call in output_calls(work.ana_p002_draft).items():
            assert_refused(registry, s, call, action, "output_id", work.ana_p002_draft)
    assert snapshot(registry, work.ana_p002_draft) == before


def test_a_p001_session_cannot_resubmit_her_own_p002_request(lab, policies, work) -> None:
    _, registry = lab
    before = request_state(registry, work.ana_p002_request)
    with open_session(lab, policies, "ana", PROJECT) as s:
        assert_refused(
            registry,
            s,
            lambda s: s.resubmit(work.ana_p002_request),
            "request.submit",
            "request_id",
            work.ana_p002_request,
        )
    assert request_state(registry, work.ana_p002_request) == before


# ------------------------------------------------------------------ a colleague's work in P001
def test_ana_cannot_see_a_colleagues_request_in_her_project(lab, policies, work) -> None:
    _, registry = lab
    with open_session(lab, policies, "ana", PROJECT) as s:
        for call, action in (
            (lambda s: s.request_status(work.olga_p001_request), "request.view"),
            (lambda s: s.resubmit(work.olga_p001_request), "request.submit"),
        ):
            assert_refused(registry, s, call, action, "request_id", work.olga_p001_request)


def test_a_colleague_cannot_touch_anas_drafts_or_see_her_request(lab, policies, work) -> None:
    _, registry = lab
    before = snapshot(registry, work.ana_p001_draft)
    state = request_state(registry, work.ana_p001_request)
    with open_session(lab, policies, "olga", PROJECT) as olga:
        for action, call in output_calls(work.ana_p001_draft).items():
            assert_refused(registry, olga, call, action, "output_id", work.ana_p001_draft)
        for call, action in (
            (lambda s: s.request_status(work.ana_p001_request), "request.view"),
            (lambda s: s.resubmit(work.ana_p001_request), "request.submit"),
        ):
            assert_refused(registry, olga, call, action, "request_id", work.ana_p001_request)
        assert list(olga.outputs()["name"]) == ["olga's table"]
    assert snapshot(registry, work.ana_p001_draft) == before
    assert request_state(registry, work.ana_p001_request) == state


def test_an_id_that_names_nothing_is_refused_the_same_way(lab, policies, work) -> None:
    _, registry = lab
    with open_session(lab, policies, "ana", PROJECT) as s:
        for record_id in (999_999, 0, -1, 10**30):
            rename = lambda s, record_id=record_id: s.rename(record_id, "x")  # noqa: E731
            assert_refused(registry, s, rename, "output.rename", "output_id", record_id)
        assert_refused(
            registry, s, lambda s: s.request_status(10**30), "request.view", "request_id", 10**30
        )


# ------------------------------------------------------------------ her own P001 work still works
def test_her_own_p001_outputs_and_requests_still_work(lab, policies, work) -> None:
    _, registry = lab
    with open_session(lab, policies, "ana", PROJECT) as s:
        status = s.request_status(work.ana_p001_request)
        assert status.title == "ana's P001 tables" and status.status == "submitted"
        assert s.output_id(work.ana_p001_draft) == work.ana_p001_draft
        assert s.rename(work.ana_p001_draft, "People by sex").name == "People by sex"
        s.describe("People by sex", context="People arrested, 2020-24", controls="rounding")
        s.comment(work.ana_p001_draft, "Counts of people, not cases.")
        assert s.request_exception(work.ana_p001_draft, JUSTIFICATION).exception_requested
        assert s.remove(work.ana_p001_draft).status == "removed"
        again = s.crosstab("linked/journeys", "sex", name="People by sex, again")
        request_id = s.submit("Again", [again])
        assert s.request_status(request_id).outputs[0].name == "People by sex, again"
    assert not denials(registry, "ana")

"""The release workflow: states, blinded independent reviews, the two-person rule, conflicts,
differencing before approval, and an audit event for every step and every refusal."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select, update
from workflow_fixtures import SECOND_CHECKER, add_checker, submitted_request, table_output

from output_checking.outputs import (
    OutputError,
    comment_on_own_output,
    remove_output,
    rename_output,
    request_exception,
)
from output_checking.workflow import (
    WorkflowError,
    checker_queue,
    comment_on_request,
    create_request,
    get_request,
    released_tables,
    request_view,
    submit_request,
    vote,
    withdraw_request,
)
from registry_fixtures import PROJECT, populate
from srs.governance.access import AccessDenied
from srs.governance.registry import projects
from srs.governance.registry.models import AuditEvent, Output


@pytest.fixture
def people(registry, policies):
    people = populate(registry, policies)
    add_checker(registry, policies)
    return people


def events(registry, action_prefix: str = "") -> list[AuditEvent]:
    with registry.sessions() as s:
        return [
            e
            for e in s.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars()
            if e.action.startswith(action_prefix)
        ]


def status(registry, request_id: int) -> str:
    with registry.sessions() as s:
        return get_request(s, request_id).status


def output_statuses(registry, ids: list[int]) -> list[str]:
    with registry.sessions() as s:
        return [s.get(Output, i).status for i in ids]


def cast(registry, policies, checker: str, output_id: int, decision: str, **options):
    with registry.sessions() as s:
        return vote(
            s, output_id=output_id, checker=checker, policies=policies, decision=decision, **options
        )


def test_request_moves_through_every_state_and_each_transition_is_audited(
    registry, policies, people
):
    sub = submitted_request(registry, policies)
    assert status(registry, sub.request_id) == "submitted"
    assert output_statuses(registry, sub.outputs) == ["submitted"] * 3
    decisions = ["approve", "approve", "reject"]
    for output_id, decision in zip(sub.outputs, decisions, strict=True):
        cast(registry, policies, "cho", output_id, decision)
    assert status(registry, sub.request_id) == "partially_reviewed"
    for output_id, decision in zip(sub.outputs, decisions, strict=True):
        cast(registry, policies, SECOND_CHECKER, output_id, decision)
    assert status(registry, sub.request_id) == "approved"
    assert output_statuses(registry, sub.outputs) == ["approved", "approved", "rejected"]
    transitions = [
        e.action for e in events(registry, "request.") if e.target == f"request/{sub.request_id}"
    ]
    assert transitions == [
        "request.draft",
        "request.submitted",
        "request.partially_reviewed",
        "request.reviewed",
        "request.approved",
    ]
    votes = [
        e for e in events(registry, "output.") if e.action in ("output.approve", "output.reject")
    ]
    assert len(votes) == 6 and {e.actor for e in votes} == {"cho", SECOND_CHECKER}


def test_reviews_are_blind_until_both_are_in(registry, policies, people):
    sub = submitted_request(registry, policies)
    cast(registry, policies, "cho", sub.outputs[0], "reject", comment="cell F is too small")
    with registry.sessions() as s:
        view = request_view(s, request_id=sub.request_id, viewer=SECOND_CHECKER, policies=policies)
        assert view.blinded
        assert all(o.votes == [] and o.your_vote is None for o in view.outputs)
        assert all(c.author != "cho" for o in view.outputs for c in o.comments)
        assert not [e for e in view.history if e.actor == "cho"]  # not even in the history
    for output_id in sub.outputs[1:]:
        cast(registry, policies, "cho", output_id, "approve")
    for output_id in sub.outputs:
        cast(registry, policies, SECOND_CHECKER, output_id, "approve")
    with registry.sessions() as s:
        view = request_view(s, request_id=sub.request_id, viewer=SECOND_CHECKER, policies=policies)
        assert not view.blinded
        first = view.outputs[0]
        assert [v.reviewer for v in first.votes] == ["cho"] and first.conflict
        assert any(c.text == "cell F is too small" for c in first.comments)


def test_conflicts_hold_the_request_until_reviewers_agree(registry, policies, people):
    sub = submitted_request(registry, policies)
    for output_id in sub.outputs:
        cast(registry, policies, "cho", output_id, "approve")
        cast(registry, policies, SECOND_CHECKER, output_id, "approve")
        if output_id == sub.outputs[0]:
            cast(registry, policies, SECOND_CHECKER, output_id, "reject")
    assert status(registry, sub.request_id) == "reviewed"
    with registry.sessions() as s:
        view = request_view(s, request_id=sub.request_id, viewer="cho", policies=policies)
        assert set(view.conflicts) == {sub.outputs[0]}
    # A third checker cannot break the tie: the request already has its two reviewers.
    add_checker(registry, policies, "dee")
    with pytest.raises(WorkflowError, match="already has its 2 reviewer"):
        cast(registry, policies, "dee", sub.outputs[0], "approve")
    cast(registry, policies, "cho", sub.outputs[0], "reject")
    assert status(registry, sub.request_id) == "approved"
    assert output_statuses(registry, sub.outputs) == ["rejected", "approved", "approved"]


def test_request_changes_returns_everything_and_resubmission_starts_a_new_round(
    registry, policies, people
):
    sub = submitted_request(registry, policies)
    for checker in ("cho", SECOND_CHECKER):
        for output_id in sub.outputs:
            decision = "request_changes" if output_id == sub.outputs[1] else "approve"
            cast(
                registry,
                policies,
                checker,
                output_id,
                decision,
                comment="round the counts",
                comment_visibility="researcher",
            )
    assert status(registry, sub.request_id) == "changes_requested"
    with registry.sessions() as s:
        view = request_view(s, request_id=sub.request_id, viewer="ana", policies=policies)
        assert not view.is_checker
        assert any(c.text == "round the counts" for o in view.outputs for c in o.comments)
        rename_output(s, output_id=sub.outputs[1], actor="ana", policies=policies, name="rounded")
        submit_request(s, request_id=sub.request_id, actor="ana", policies=policies)
        request = get_request(s, sub.request_id)
        assert request.status == "submitted" and request.review_round == 2
    cast(registry, policies, "cho", sub.outputs[0], "approve")
    assert status(registry, sub.request_id) == "submitted"  # old round's votes do not count


def test_all_rejected_rejects_the_request(registry, policies, people):
    sub = submitted_request(registry, policies, {"one": {"F": 50, "M": 60}})
    for checker in ("cho", SECOND_CHECKER):
        cast(registry, policies, checker, sub.outputs[0], "reject")
    assert status(registry, sub.request_id) == "rejected"


def test_researcher_cannot_review_own_outputs_and_it_is_audited(registry, policies, people):
    sub = submitted_request(registry, policies)
    with pytest.raises(AccessDenied, match="may not output.review"):
        cast(registry, policies, "ana", sub.outputs[0], "approve")
    denied = [e for e in events(registry, "access.output.review") if e.outcome == "deny"]
    assert denied and denied[-1].actor == "ana"


def test_a_checker_in_the_project_may_not_review_it(registry, policies, people):
    sub = submitted_request(registry, policies)
    with registry.sessions() as s:
        projects.add_member(s, actor="admin", policies=policies, code=PROJECT, username="cho")
    with pytest.raises(AccessDenied, match="two-person rule"):
        cast(registry, policies, "cho", sub.outputs[0], "approve")
    with registry.sessions() as s:
        assert checker_queue(s, checker="cho", policies=policies) == []
        assert [
            e.request_id for e in checker_queue(s, checker=SECOND_CHECKER, policies=policies)
        ] == [sub.request_id]
    assert events(registry, "access.output.review")[-1].outcome == "deny"


def test_unsubmitted_outputs_cannot_be_voted_on(registry, policies, people):
    draft = table_output(registry, policies, "draft table", {"F": 30, "M": 40})
    with pytest.raises(WorkflowError, match="has not been submitted"):
        cast(registry, policies, "cho", draft, "approve")
    assert events(registry, "output.approve")[-1].outcome == "deny"


def test_votes_after_a_decision_are_refused(registry, policies, people):
    sub = submitted_request(registry, policies, {"one": {"F": 50, "M": 60}})
    for checker in ("cho", SECOND_CHECKER):
        cast(registry, policies, checker, sub.outputs[0], "approve")
    with pytest.raises(WorkflowError, match="approved; votes are taken only"):
        cast(registry, policies, "cho", sub.outputs[0], "reject")


def test_bad_decision_is_explained(registry, policies, people):
    sub = submitted_request(registry, policies)
    with pytest.raises(WorkflowError, match="one of approve, reject, request_changes"):
        cast(registry, policies, "cho", sub.outputs[0], "maybe")


def add_olga(registry, policies) -> None:
    with registry.sessions() as s:
        projects.add_member(s, actor="admin", policies=policies, code=PROJECT, username="olga")


def test_researcher_edits_only_their_own_drafts(registry, policies, people):
    add_olga(registry, policies)
    first = table_output(registry, policies, "draft one", {"F": 30, "M": 40})
    second = table_output(registry, policies, "draft two", {"F": 30, "M": 40})
    with registry.sessions() as s:
        rename_output(s, output_id=first, actor="ana", policies=policies, name="Arrests by sex")
        comment_on_own_output(s, output_id=first, actor="ana", policies=policies, text="see note")
        with pytest.raises(OutputError, match="at least 20 characters"):
            request_exception(
                s, output_id=first, actor="ana", policies=policies, justification="pls"
            )
        request_exception(
            s,
            output_id=first,
            actor="ana",
            policies=policies,
            justification="the small cell is a published national total from MoJ tables",
        )
        remove_output(s, output_id=second, actor="ana", policies=policies)
        with pytest.raises(OutputError, match="only its author"):
            rename_output(s, output_id=first, actor="olga", policies=policies, name="x")
    with registry.sessions() as s:
        request = create_request(
            s, project_code=PROJECT, author="ana", policies=policies, title="Only what is left"
        )
        outputs = s.execute(select(Output).where(Output.request_id == request.id)).scalars().all()
        assert [o.id for o in outputs] == [first]
        assert outputs[0].name == "Arrests by sex"
        assert outputs[0].exception_justification.startswith("the small cell")
        submit_request(s, request_id=request.id, actor="ana", policies=policies)
        with pytest.raises(OutputError, match="submitted; it can only be changed"):
            rename_output(s, output_id=first, actor="ana", policies=policies, name="late")
    assert any(e.action == "output.rename" and e.outcome == "deny" for e in events(registry))


def test_only_the_author_submits_and_an_empty_request_is_refused(registry, policies, people):
    add_olga(registry, policies)
    with registry.sessions() as s, pytest.raises(WorkflowError, match="no draft outputs"):
        create_request(s, project_code=PROJECT, author="ana", policies=policies, title="Nothing")
    table_output(registry, policies, "t", {"F": 30, "M": 40})
    with registry.sessions() as s:
        request = create_request(
            s, project_code=PROJECT, author="ana", policies=policies, title="T"
        )
        with pytest.raises(WorkflowError, match="only its author"):
            submit_request(s, request_id=request.id, actor="olga", policies=policies)
        withdraw_request(s, request_id=request.id, actor="ana", policies=policies)
        assert get_request(s, request.id).status == "withdrawn"
        with pytest.raises(WorkflowError, match="only a draft"):
            submit_request(s, request_id=request.id, actor="ana", policies=policies)


def test_outsider_and_lapsed_researcher_cannot_create_requests(registry, policies, people):
    with registry.sessions() as s, pytest.raises(AccessDenied, match="not a member"):
        create_request(s, project_code=PROJECT, author="olga", policies=policies, title="Mine")
    with registry.sessions() as s, pytest.raises(AccessDenied, match="expired"):
        create_request(s, project_code=PROJECT, author="ben", policies=policies, title="Mine")


def test_differencing_against_released_tables_refuses_an_approve_vote_without_override(
    registry, policies, people
):
    earlier = submitted_request(registry, policies, {"all arrests": {"F": 120, "M": 340}})
    for checker in ("cho", SECOND_CHECKER):
        cast(registry, policies, checker, earlier.outputs[0], "approve")
    with registry.sessions() as s:  # as if released (release tests cover the real path)
        s.execute(update(Output).where(Output.id == earlier.outputs[0]).values(status="released"))
        s.commit()
    # The same table less three people: the difference exposes them.
    later = submitted_request(
        registry, policies, {"arrests excluding one court": {"F": 118, "M": 339}}
    )
    with registry.sessions() as s:
        check = next(
            c for c in s.get(Output, later.outputs[0]).checks if c["check"] == "differencing"
        )
        assert check["status"] == "fail" and len(check["findings"]) == 2
    with pytest.raises(WorkflowError, match="differencing"):
        cast(registry, policies, "cho", later.outputs[0], "approve")
    cast(
        registry,
        policies,
        "cho",
        later.outputs[0],
        "approve",
        override_reason="the earlier table was national; this one is not nested in practice",
    )
    assert status(registry, later.request_id) == "partially_reviewed"


def test_checker_comment_visibility(registry, policies, people):
    sub = submitted_request(registry, policies)
    with registry.sessions() as s:
        comment_on_request(
            s, request_id=sub.request_id, actor="cho", policies=policies, text="private note"
        )
        comment_on_request(
            s,
            request_id=sub.request_id,
            actor="cho",
            policies=policies,
            text="please add context",
            visibility="researcher",
        )
        with pytest.raises(OutputError, match="visibility"):
            comment_on_request(
                s,
                request_id=sub.request_id,
                actor="cho",
                policies=policies,
                text="x",
                visibility="everyone",
            )
    for checker in ("cho", SECOND_CHECKER):
        for output_id in sub.outputs:
            cast(registry, policies, checker, output_id, "approve")
    with registry.sessions() as s:
        author_view = request_view(s, request_id=sub.request_id, viewer="ana", policies=policies)
        assert [c.text for c in author_view.comments] == ["please add context"]
        checker_view = request_view(
            s, request_id=sub.request_id, viewer=SECOND_CHECKER, policies=policies
        )
        assert {c.text for c in checker_view.comments} == {"private note", "please add context"}
        assert [e.action for e in checker_view.history][-1] == "request.approved"


def test_only_its_author_and_the_checkers_see_a_request(registry, policies, people):
    sub = submitted_request(registry, policies)
    with registry.sessions() as s:  # a colleague of the author's, in the same project
        projects.add_member(s, actor="admin", policies=policies, code=PROJECT, username="olga")
    with registry.sessions() as s, pytest.raises(WorkflowError, match="is not yours"):
        request_view(s, request_id=sub.request_id, viewer="olga", policies=policies)
    (refusal,) = events(registry, "request.view")
    assert (refusal.actor, refusal.outcome) == ("olga", "deny")
    assert refusal.target == f"request/{sub.request_id}"
    with registry.sessions() as s:
        author = request_view(s, request_id=sub.request_id, viewer="ana", policies=policies)
        checker = request_view(s, request_id=sub.request_id, viewer="cho", policies=policies)
        assert not author.is_checker and checker.is_checker


def test_queue_lists_reviewable_requests_with_progress(registry, policies, people):
    sub = submitted_request(registry, policies)
    for output_id in sub.outputs:
        cast(registry, policies, "cho", output_id, "approve")
    with registry.sessions() as s:
        [entry] = checker_queue(s, checker=SECOND_CHECKER, policies=policies)
        assert (entry.request_id, entry.status, entry.reviewers, entry.outputs) == (
            sub.request_id,
            "partially_reviewed",
            ["cho"],
            3,
        )
        with pytest.raises(AccessDenied):
            checker_queue(s, checker="ana", policies=policies)


def test_differencing_ignores_margins_so_a_small_difference_is_still_found(
    registry, policies, people
):
    """A released two-way table with margins, then a one-way table of three fewer people: the
    margins must not be summed into the cells (that doubles them and hides the difference)."""
    from output_checking.outputs import record_output, table_content
    from output_checking.workflow import run_differencing

    earlier = pd.DataFrame(
        {"crown": [60, 150, 210], "magistrates": [40, 100, 140], "Total": [100, 250, 350]},
        index=pd.Index(["F", "M", "Total"], name="sex"),
    )
    later = pd.DataFrame({"count": [97, 250, 347]}, index=pd.Index(["F", "M", "Total"], name="sex"))
    with registry.sessions() as s:
        outputs = []
        for name, table in (("earlier", earlier), ("later", later)):
            outputs.append(
                record_output(
                    s,
                    project_code=PROJECT,
                    author="ana",
                    kind="table",
                    name=name,
                    content={
                        "kind": "table",
                        "statistic": "count",
                        "table": table_content(table),
                        "margins": "Total",
                    },
                )
            )
        outputs[0].status = "released"
        s.flush()
        released = released_tables(s, outputs[0].project_id, policies)
        findings = run_differencing(outputs[1], released, policies)
    assert [(f["row"], f["difference"]) for f in findings] == [("F", 3.0)]


def test_differencing_that_cannot_judge_a_released_table_is_review_not_ok(
    registry, policies, people
):
    """Offence codes released, then offence names: the check cannot tell which name is which
    code, so the comparison is not ok but marked for a checker, whose approve needs a reason."""
    earlier = submitted_request(registry, policies, {"by code": {"0201": 120, "0202": 340}})
    for checker in ("cho", SECOND_CHECKER):
        cast(registry, policies, checker, earlier.outputs[0], "approve")
    with registry.sessions() as s:  # as if released (release tests cover the real path)
        s.execute(update(Output).where(Output.id == earlier.outputs[0]).values(status="released"))
        s.commit()
    later = submitted_request(registry, policies, {"by name": {"assault": 118, "robbery": 339}})
    with registry.sessions() as s:
        check = next(
            c for c in s.get(Output, later.outputs[0]).checks if c["check"] == "differencing"
        )
    assert check["status"] == "review"
    [finding] = check["findings"]
    assert finding["status"] == "review"
    assert finding["message"].startswith("not checked: needs a checker")
    with pytest.raises(WorkflowError, match="not checked: needs a checker"):
        cast(registry, policies, "cho", later.outputs[0], "approve")
    cast(
        registry,
        policies,
        "cho",
        later.outputs[0],
        "approve",
        override_reason="codes 0201/0202 are not the offences named here",
    )


def test_differencing_sees_through_suppressed_cells_in_released_tables(registry, policies, people):
    """Issue 15: released tables always hold suppressed cells (null in the stored table). Two
    with hidden cells in different places still expose the 2 women filtered out; a table on an
    unrelated population is judged ok."""
    from output_checking.outputs import record_output, table_content
    from output_checking.workflow import run_differencing

    courts = pd.Index(["crown", "magistrates", "youth"], name="court")
    sex = pd.Index(["F", "M"], name="sex")
    tables = {
        "all courts": pd.DataFrame([[40, None, 12], [30, 25, 7]], index=sex, columns=courts),
        "one filter": pd.DataFrame([[38, 6, 12], [30, 25, None]], index=sex, columns=courts),
        "elsewhere": pd.DataFrame([[90, 60, None], [20, 45, 33]], index=sex, columns=courts),
    }
    with registry.sessions() as s:
        outputs = [
            record_output(
                s,
                project_code=PROJECT,
                author="ana",
                kind="table",
                name=name,
                content={"kind": "table", "statistic": "count", "table": table_content(table)},
            )
            for name, table in tables.items()
        ]
        outputs[0].status = "released"
        s.flush()
        released = released_tables(s, outputs[0].project_id, policies)
        findings = run_differencing(outputs[1], released, policies)
        assert [(f["row"], f["column"], f["difference"]) for f in findings] == [("F", "crown", 2.0)]
        assert run_differencing(outputs[2], released, policies) == []
        [check] = [c for c in outputs[2].checks if c["check"] == "differencing"]
        assert check["status"] == "ok"


# ------------------------------------------------------------------ review 15: one request
def test_two_tables_of_one_request_are_differenced_against_each_other(registry, policies, people):
    """Two tables in one request, 3 women apart: each was compared only with released tables,
    so both were approved (and released together) with differencing ok. Each is now compared
    with the other, named as in this request, and an approve vote needs an override."""
    sub = submitted_request(
        registry,
        policies,
        {"arrests by sex": {"F": 120, "M": 340}, "arrests excl one court": {"F": 117, "M": 340}},
    )
    first, second = sub.outputs
    with registry.sessions() as s:
        for output_id, other in ((first, second), (second, first)):
            [check] = [c for c in s.get(Output, output_id).checks if c["check"] == "differencing"]
            assert (
                check["status"] == "fail" and "other table(s) of this request" in check["message"]
            )
            assert {f["earlier"] for f in check["findings"]} == {
                f"output #{other} in this request ({s.get(Output, other).name})"
            }
    with pytest.raises(WorkflowError, match=f"output #{second} in this request"):
        cast(registry, policies, "cho", first, "approve")
    [refused] = [e for e in events(registry, "output.approve") if e.outcome == "deny"]
    assert f"output #{second} in this request" in refused.reason
    cast(registry, policies, "cho", first, "approve", override_reason="agreed with the data owner")
    assert status(registry, sub.request_id) == "submitted"  # cho has not voted on both yet


def histogram_content(policies, ages: list[int]) -> dict:
    """A histogram figure's content as the session records it (age bins 18-24 and 25-34)."""
    from srs.research.drafts import histogram_draft

    data = pd.DataFrame({"age": ages})
    _, _, draft = histogram_draft(data, "age", [18, 25, 35], policies.sdc.active, "ons-srs")
    return draft.content


@pytest.mark.parametrize(
    "histogram_first", [True, False], ids=["histogram-released", "table-released"]
)
def test_a_histograms_counts_are_differenced_both_ways(registry, policies, people, histogram_first):
    """A histogram publishes its bin counts (its CSV): a table of the same bands 5 people short
    of a released histogram exposes them, and so does a histogram against a released table."""
    from output_checking.outputs import record_output, table_content
    from output_checking.workflow import published_table, run_differencing

    histogram = histogram_content(policies, [20] * 120 + [30] * 340)
    table = pd.DataFrame({"count": [115, 340]}, index=pd.Index(["18-24", "25-34"], name="age"))
    with registry.sessions() as s:
        figure = record_output(
            s, project_code=PROJECT, author="ana", kind="figure", name="ages", content=histogram
        )
        counts = record_output(
            s,
            project_code=PROJECT,
            author="ana",
            kind="table",
            name="ages excl one court",
            content={"kind": "table", "statistic": "count", "table": table_content(table)},
        )
        assert published_table(figure) is not None
        earlier, later = (figure, counts) if histogram_first else (counts, figure)
        earlier.status = "released"
        s.flush()
        released = released_tables(s, earlier.project_id, policies)
        assert list(released) == [f"output #{earlier.id} ({earlier.name})"]
        findings = run_differencing(later, released, policies)
    assert [(f["status"], f["row"]) for f in findings] == [("fail", "18-24")]

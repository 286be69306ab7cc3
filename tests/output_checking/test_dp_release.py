"""DP results as outputs: planned, paid for, released and recorded in that order; refusals
release and spend nothing; concurrent releases never overspend and every result names its spend."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from disclosure import dp
from output_checking.dp_release import preview_dp, release_dp
from output_checking.outputs import OutputError, project_outputs, record_output
from registry_fixtures import PROJECT, populate
from srs.access import AccessDenied
from srs.budget import BudgetExhausted, budget_state, spends
from srs.policy import load_policies
from srs.registry import Registry, open_registry
from srs.registry.models import AuditEvent, Output, Project

DICTIONARY = [
    {"name": "person_key", "type": "string"},
    {"name": "sex", "type": "string", "values": ["F", "M"]},
    {"name": "area", "type": "string"},
]


def journeys(rows: int = 400, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "person_key": [f"p{i}" for i in rng.integers(0, rows // 2, rows)],
            "sex": rng.choice(["F", "M"], rows),
            "area": rng.choice(["LS", "M", "B"], rows),
            "sentence_months": rng.uniform(0, 120, rows),
        }
    )


def set_budget(registry: Registry, rho: float) -> None:
    with registry.sessions() as s:
        s.execute(update(Project).values(privacy_budget_rho=rho))
        s.commit()


@pytest.fixture
def people(registry, policies):
    return populate(registry, policies)


def release(registry, policies, query, rho=0.01, who="ana", data=None, **options):
    with registry.sessions() as s:
        return release_dp(
            s,
            project_code=PROJECT,
            researcher=who,
            query=query,
            data=journeys() if data is None else data,
            policies=policies,
            rho=rho,
            dictionary=DICTIONARY,
            **options,
        )


def test_a_dp_result_is_paid_for_then_recorded_as_an_output(registry, policies, people) -> None:
    out = release(registry, policies, dp.count(by=["sex"]), name="Journeys by sex")
    assert list(out.result.table["sex"]) == ["F", "M"]  # keys from the data dictionary
    assert out.receipt.delta == 0  # public keys: no threshold, no delta
    with registry.sessions() as s:
        (output,) = project_outputs(s, PROJECT)
        (spend,) = spends(s, PROJECT)
        events = s.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
    assert output.id == out.output_id and output.budget_spend_id == spend.id == out.receipt.spend_id
    assert output.kind == "dp_result" and output.differentially_private and output.status == "draft"
    assert output.content["rho"] == pytest.approx(0.01) and len(output.content["rows"]) == 2
    assert "no cell suppression needed" in output.checks[0]["message"]
    actions = [e.action for e in events if e.actor == "ana"]
    assert actions.index("budget.spend") < actions.index("output.create")


def test_exhausted_budget_releases_and_records_nothing(registry, policies, people) -> None:
    set_budget(registry, 0.015)
    release(registry, policies, dp.count(), rho=0.01)
    with pytest.raises(BudgetExhausted, match=r"has rho 0.005 left .* needs 0.01"):
        release(registry, policies, dp.mean("sentence_months"), rho=0.01)
    with registry.sessions() as s:
        assert len(project_outputs(s, PROJECT)) == 1
        assert budget_state(s, PROJECT, policies).spent_rho == pytest.approx(0.01)


def test_bad_queries_and_refused_people_spend_nothing(registry, policies, people) -> None:
    with pytest.raises(dp.DPQueryError, match="columns not in the data"):
        release(registry, policies, dp.mean("no_such_column", bounds=(0, 1)))
    with pytest.raises(dp.DPQueryError, match="no clipping bounds"):
        release(registry, policies, dp.mean("area_code"))
    with pytest.raises(AccessDenied, match="not a member"):
        release(registry, policies, dp.count(), who=people.outsider)
    with pytest.raises(AccessDenied):
        release(registry, policies, dp.count(), who=people.checker)
    with registry.sessions() as s:
        assert budget_state(s, PROJECT, policies).spends == 0
        assert project_outputs(s, PROJECT) == []


def test_private_keys_spend_a_delta_up_to_the_project_cap(registry, policies, people) -> None:
    budget = policies.privacy_budget
    out = release(registry, policies, dp.count(by=["area"]))  # areas are not in the dictionary
    assert out.receipt.delta == pytest.approx(budget.key_release_delta)
    assert out.result.preview.noise[0].threshold is not None
    capped = policies.model_copy(
        update={
            "privacy_budget": budget.model_copy(
                update={"max_key_release_delta": budget.key_release_delta}
            )
        }
    )
    with pytest.raises(BudgetExhausted, match="key-release delta"):
        release(registry, capped, dp.count(by=["area"]))
    with registry.sessions() as s:
        state = budget_state(s, PROJECT, policies)
    assert state.key_release_delta_spent == pytest.approx(budget.key_release_delta)
    assert state.spends == 1


def test_an_accuracy_target_sets_the_spend(registry, policies, people) -> None:
    out = release(registry, policies, dp.count(by=["sex"]), rho=None, accuracy=60.0)
    assert out.result.preview.half_widths()["count"] <= 60
    with pytest.raises(dp.DPQueryError, match="need public group keys"):
        preview_dp(dp.count(by=["sex"]), journeys(), policies, accuracy=60.0)
    assert out.receipt.rho == pytest.approx(out.result.rho)
    preview = preview_dp(
        dp.count(by=["sex"]), journeys(), policies, accuracy=60.0, dictionary=DICTIONARY
    )
    assert preview.rho == pytest.approx(out.receipt.rho)
    with registry.sessions() as s:
        assert budget_state(s, PROJECT, policies).spent_rho == pytest.approx(out.receipt.rho)


def test_a_crash_after_the_debit_loses_budget_never_privacy(
    registry, policies, people, monkeypatch
) -> None:
    def crash(self, spend):
        raise RuntimeError("killed while drawing noise")

    monkeypatch.setattr(dp.DPPlan, "release", crash)
    with pytest.raises(RuntimeError, match="killed"):
        release(registry, policies, dp.count())
    with registry.sessions() as s:
        assert budget_state(s, PROJECT, policies).spends == 1  # the spend stands
        assert project_outputs(s, PROJECT) == []  # and no result exists without it


def test_outputs_refuse_a_dp_result_without_its_spend(registry, policies, people) -> None:
    with registry.sessions() as s:
        with pytest.raises(OutputError, match="must name the budget spend"):
            record_output(
                s, project_code=PROJECT, author="ana", kind="dp_result", name="x", content={}
            )
        with pytest.raises(OutputError, match="kind 'chart'"):
            record_output(s, project_code=PROJECT, author="ana", kind="chart", name="x", content={})
        # The database holds the same rule, for any code that bypasses record_output.
        project = s.execute(select(Project)).scalars().first()
        s.add(
            Output(
                project_id=project.id,
                author="ana",
                kind="dp_result",
                name="forged",
                status="draft",
                differentially_private=True,
                content={},
                checks=[],
                context="",
                controls="",
                checksum="0" * 64,
            )
        )
        with pytest.raises(IntegrityError):
            s.commit()


def _release_in_a_process(url: str) -> tuple[int, int, float] | None:
    registry = open_registry(url)
    try:
        with registry.sessions() as s:
            out = release_dp(
                s,
                project_code=PROJECT,
                researcher="ana",
                query=dp.count(by=["sex"]),
                data=journeys(rows=200),
                policies=load_policies(),
                rho=0.01,
                dictionary=DICTIONARY,
            )
            return out.output_id, out.receipt.spend_id, out.result.rho
    except BudgetExhausted:
        return None
    finally:
        registry.dispose()


def test_64_concurrent_dp_releases_never_overspend_and_all_are_accounted_for(
    registry, policies, people, database_url
) -> None:
    set_budget(registry, 0.5)  # room for exactly 50 releases at rho 0.01
    registry.dispose()
    # Spawned, not forked: polars and OpenDP run thread pools that a fork would deadlock.
    with ProcessPoolExecutor(
        max_workers=8, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        results = list(pool.map(_release_in_a_process, [database_url] * 64))
    released = [r for r in results if r is not None]
    assert len(released) == 50
    with registry.sessions() as s:
        state = budget_state(s, PROJECT, policies)
        ledger = {spend.id: spend.nano_rho for spend in spends(s, PROJECT)}
        outputs = {o.id: o for o in project_outputs(s, PROJECT)}
    assert state.spent_rho == pytest.approx(0.5) and state.remaining_rho >= 0
    # Every released result is an output naming a distinct spend that covers it, and back.
    assert sorted(o for o, _, _ in released) == sorted(outputs)
    assert sorted(s for _, s, _ in released) == sorted(ledger)
    for output_id, spend_id, rho in released:
        assert outputs[output_id].budget_spend_id == spend_id
        assert ledger[spend_id] == round(rho * 1e9)

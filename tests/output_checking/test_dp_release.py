"""DP results as outputs: read from a dataset the environment holds (granted to the project,
its rows chosen by a declarative selection), planned, paid for, confirmed by the ledger,
released and recorded in that order, naming the dataset, version and query; refusals release
and spend nothing; concurrent releases never overspend and every result names its spend."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from disclosure import dp
from output_checking.dp_release import preview_dp, release_dp, release_dp_replica
from output_checking.outputs import OutputError, project_outputs, record_output
from registry_fixtures import PROJECT, TODAY, populate
from srs import budget
from srs.access import AccessDenied
from srs.budget import BudgetExhausted, SpendNotConfirmed, SpendRefused, budget_state, spends
from srs.deployment import Deployment
from srs.policy import load_policies
from srs.registry import Registry, open_registry, projects
from srs.registry.models import AuditEvent, Output, Project
from srs.vault import Vault
from srs.vault_crypto import generate_master_key, write_key_file

DATASET = "linked/journeys"
OTHER_PROJECT = "P002"
OTHER_DATASET = "linked/victims"
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
            "age_at_offence": rng.integers(12, 80, rows),
        }
    )


def set_budget(registry: Registry, rho: float) -> None:
    with registry.sessions() as s:
        s.execute(update(Project).values(privacy_budget_rho=rho))
        s.commit()


def hold(registry, deployment, policies, people) -> Vault:
    """linked/journeys granted to P001; linked/victims only to P002 (olga's), with a budget."""
    write_key_file(deployment.key_file, generate_master_key())
    vault = Vault(deployment, policies)
    with registry.sessions() as s:
        vault.store(s, DATASET, journeys(), actor=people.steward, data_dictionary=DICTIONARY)
        vault.store(s, OTHER_DATASET, journeys(seed=9), actor=people.steward)
        projects.grant_dataset(
            s, actor=people.steward, policies=policies, code=PROJECT, dataset_name=DATASET
        )
        projects.create_project(
            s,
            actor=people.admin,
            policies=policies,
            code=OTHER_PROJECT,
            title="Victims",
            purpose="Victim journeys",
            legal_basis="DEA 2017 s.64",
            start_date=TODAY - timedelta(days=30),
            end_date=TODAY + timedelta(days=300),
            approved_classification="confidential",
        )
        for member in (people.outsider, people.researcher):
            projects.add_member(
                s, actor=people.admin, policies=policies, code=OTHER_PROJECT, username=member
            )
        projects.grant_dataset(
            s,
            actor=people.steward,
            policies=policies,
            code=OTHER_PROJECT,
            dataset_name=OTHER_DATASET,
        )
    return vault


@pytest.fixture
def people(registry, policies):
    return populate(registry, policies)


@pytest.fixture
def vault(registry, deployment, policies, people) -> Vault:
    return hold(registry, deployment, policies, people)


def release(registry, vault, policies, query, rho=0.01, who="ana", dataset=DATASET, **options):
    options.setdefault("project_code", PROJECT)
    with registry.sessions() as s:
        return release_dp(
            s,
            vault,
            researcher=who,
            query=query,
            dataset=dataset,
            policies=policies,
            rho=rho,
            **options,
        )


def preview(registry, vault, policies, query, **options):
    with registry.sessions() as s:
        return preview_dp(
            s,
            vault,
            project_code=PROJECT,
            researcher="ana",
            query=query,
            dataset=DATASET,
            policies=policies,
            **options,
        )


def test_a_dp_result_is_paid_for_then_recorded_as_an_output(registry, vault, policies) -> None:
    out = release(registry, vault, policies, dp.count(by=["sex"]), name="Journeys by sex")
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
    # The dataset and version read, the rows chosen and the query are recorded with it.
    read = {"dataset": DATASET, "version": 1, "source": "vault", "where": [], "derive": {}}
    assert output.content["data"] == read and output.checks[0]["data"] == read
    assert output.checks[0]["query"]["statistic"] == "count"
    assert output.checks[0]["query"]["by"] == ["sex"]
    assert "on linked/journeys version 1" in output.checks[0]["message"]
    actions = [e.action for e in events if e.actor == "ana"]
    assert actions.index("vault.read") < actions.index("budget.spend")
    assert actions.index("budget.spend") < actions.index("output.create")


def test_exhausted_budget_releases_and_records_nothing(registry, vault, policies, people) -> None:
    set_budget(registry, 0.015)
    release(registry, vault, policies, dp.count(), rho=0.01)
    with pytest.raises(BudgetExhausted, match=r"has rho 0.005 left .* needs 0.01"):
        release(registry, vault, policies, dp.mean("sentence_months"), rho=0.01)
    with registry.sessions() as s:
        assert len(project_outputs(s, PROJECT)) == 1
        assert budget_state(s, PROJECT, policies).spent_rho == pytest.approx(0.01)


def test_bad_queries_and_refused_people_spend_nothing(registry, vault, policies, people) -> None:
    with pytest.raises(dp.DPQueryError, match="columns not in the data"):
        release(registry, vault, policies, dp.mean("no_such_column", bounds=(0, 1)))
    with pytest.raises(dp.DPQueryError, match="no clipping bounds"):
        release(registry, vault, policies, dp.mean("area_code"))
    with pytest.raises(AccessDenied, match="not a member"):
        release(registry, vault, policies, dp.count(), who=people.outsider)
    with pytest.raises(AccessDenied):
        release(registry, vault, policies, dp.count(), who=people.checker)
    with registry.sessions() as s:
        assert budget_state(s, PROJECT, policies).spends == 0
        assert project_outputs(s, PROJECT) == []


def test_private_keys_spend_a_delta_up_to_the_project_cap(
    registry, vault, policies, people
) -> None:
    budget = policies.privacy_budget
    out = release(
        registry, vault, policies, dp.count(by=["area"])
    )  # areas are not in the dictionary
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
        release(registry, vault, capped, dp.count(by=["area"]))
    with registry.sessions() as s:
        state = budget_state(s, PROJECT, policies)
    assert state.key_release_delta_spent == pytest.approx(budget.key_release_delta)
    assert state.spends == 1


def test_an_accuracy_target_sets_the_spend(registry, vault, policies, people) -> None:
    out = release(registry, vault, policies, dp.count(by=["sex"]), rho=None, accuracy=60.0)
    assert out.result.preview.half_widths()["count"] <= 60
    with pytest.raises(dp.DPQueryError, match="need public group keys"):
        preview(registry, vault, policies, dp.count(by=["area"]), accuracy=60.0)
    assert out.receipt.rho == pytest.approx(out.result.rho)
    previewed = preview(registry, vault, policies, dp.count(by=["sex"]), accuracy=60.0)
    assert previewed.rho == pytest.approx(out.receipt.rho)
    with registry.sessions() as s:
        assert budget_state(s, PROJECT, policies).spent_rho == pytest.approx(out.receipt.rho)


def test_a_crash_after_the_debit_loses_budget_never_privacy(
    registry, vault, policies, monkeypatch
) -> None:
    def crash(self, spend):
        raise RuntimeError("killed while drawing noise")

    monkeypatch.setattr(dp.DPPlan, "release", crash)
    with pytest.raises(RuntimeError, match="killed"):
        release(registry, vault, policies, dp.count())
    with registry.sessions() as s:
        assert budget_state(s, PROJECT, policies).spends == 1  # the spend stands
        assert project_outputs(s, PROJECT) == []  # and no result exists without it


def test_outputs_refuse_a_dp_result_without_its_spend(registry, vault, policies, people) -> None:
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


def _release_in_a_process(url: str, home: str) -> tuple[int, int, float] | None:
    registry = open_registry(url)
    policies = load_policies()
    try:
        with registry.sessions() as s:
            out = release_dp(
                s,
                Vault(Deployment.at(home, database_url=url), policies),
                project_code=PROJECT,
                researcher="ana",
                query=dp.count(by=["sex"]),
                dataset=DATASET,
                policies=policies,
                rho=0.01,
            )
            return out.output_id, out.receipt.spend_id, out.result.rho
    except BudgetExhausted:
        return None
    finally:
        registry.dispose()


def test_64_concurrent_dp_releases_never_overspend_and_all_are_accounted_for(
    registry, vault, policies, database_url, deployment
) -> None:
    set_budget(registry, 0.5)  # room for exactly 50 releases at rho 0.01
    registry.dispose()
    # Spawned, not forked: polars and OpenDP run thread pools that a fork would deadlock.
    with ProcessPoolExecutor(
        max_workers=8, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        home = str(deployment.home)
        results = list(pool.map(_release_in_a_process, [database_url] * 64, [home] * 64))
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


# ------------------------------------------------------------------ only data the environment holds
def nothing_spent(registry, policies, project=PROJECT) -> bool:
    with registry.sessions() as s:
        return budget_state(s, project, policies).spends == 0 and not project_outputs(s, project)


def test_a_frame_of_one_persons_row_repeated_is_never_released(registry, vault, policies) -> None:
    # Attack: one real person's row copied under fresh person keys would be released as a
    # person-level DP result (the value leaks within the noise), naming no dataset or version.
    with registry.sessions() as s:
        real = vault.read(s, DATASET, actor="ana", project=PROJECT).iloc[[0]]
    forged = pd.concat([real] * 300, ignore_index=True)
    forged["person_key"] = [f"fresh{i}" for i in range(300)]
    for data in (forged, forged.to_dict("list"), None, ""):
        with pytest.raises(dp.DPQueryError, match="never on a frame"):
            release(registry, vault, policies, dp.mean("age_at_offence"), dataset=data)
    with registry.sessions() as s, pytest.raises(dp.DPQueryError, match="never on a frame"):
        release_dp_replica(
            s,
            vault,
            project_code=PROJECT,
            researcher="ana",
            dataset=forged,
            columns=["sex"],
            rows=10,
            rho=0.01,
            policies=policies,
        )
    assert nothing_spent(registry, policies)


def test_a_dataset_of_another_project_is_not_released_on_this_ones_budget(
    registry, vault, policies
) -> None:
    # Attack: data of project P002 released as a result of P001, paid from P001's budget.
    with pytest.raises(AccessDenied, match="no grant for linked/victims"):
        release(registry, vault, policies, dp.count(), dataset=OTHER_DATASET)
    # ... nor P001's dataset on P002's budget, though ana is a member of both.
    with pytest.raises(AccessDenied, match="no grant for linked/journeys"):
        release(registry, vault, policies, dp.count(), project_code=OTHER_PROJECT)
    with pytest.raises(AccessDenied):
        release(registry, vault, policies, dp.count(), dataset="linked/nothing_here")
    assert nothing_spent(registry, policies) and nothing_spent(registry, policies, OTHER_PROJECT)
    # Released in its own project, the spend is that project's and nothing else's.
    out = release(
        registry, vault, policies, dp.count(), dataset=OTHER_DATASET, project_code=OTHER_PROJECT
    )
    with registry.sessions() as s:
        (spend,) = spends(s, OTHER_PROJECT)
        assert spend.id == out.receipt.spend_id and spends(s, PROJECT) == []


def test_the_query_chooses_its_rows_and_derives_its_columns_inside_the_environment(
    registry, vault, policies
) -> None:
    generous = policies.model_copy(
        update={
            "privacy_budget": policies.privacy_budget.model_copy(
                update={"max_rho_per_query": 100.0}
            )
        }
    )
    set_budget(registry, 1000)
    where = [("sex", "==", "F"), ("age_band", "in", ["[18, 40)", ">= 40"]), ("area", "!=", "B")]
    derive = {"age_band": ("band", "age_at_offence", [18, 40])}
    out = release(
        registry, vault, generous, dp.count(by=["age_band"]), rho=100.0, where=where, derive=derive
    )
    data = journeys()
    data["age_band"] = pd.cut(data["age_at_offence"], [-np.inf, 18, 40, np.inf], right=False)
    data["age_band"] = data["age_band"].cat.rename_categories(["< 18", "[18, 40)", ">= 40"])
    chosen = data[(data["sex"] == "F") & (data["age_at_offence"] >= 18) & (data["area"] != "B")]
    cap = generous.privacy_budget.max_rows_per_person
    truth = (
        chosen.groupby(["age_band", "person_key"], observed=True)
        .size()
        .clip(upper=cap)
        .groupby("age_band", observed=True)
        .sum()
    )
    table = out.result.table.set_index("age_band")
    # The band's labels are public keys: every band is a cell, and no delta is spent.
    assert list(table.index) == ["< 18", "[18, 40)", ">= 40"] and out.receipt.delta == 0
    assert table.loc["< 18", "estimate"] == pytest.approx(0, abs=3)
    for band in ("[18, 40)", ">= 40"):
        assert table.loc[band, "estimate"] == pytest.approx(truth[band], abs=3)
    with registry.sessions() as s:
        (output,) = project_outputs(s, PROJECT)
        recorded = json.loads(next(f for f in output.files if f.name.endswith(".json")).content)
    assert output.content["data"]["where"] == [list(c) for c in where]
    assert output.content["data"]["derive"] == {
        "age_band": ["band", "age_at_offence", [18.0, 40.0]]
    }
    assert recorded["data"] == output.content["data"]


@pytest.mark.parametrize(
    ("where", "derive", "message"),
    [
        ([("sex", "=", "F")], None, "operator '=' is not one of"),
        ([("nope", "==", 1)], None, "the dataset has no column 'nope'"),
        ([("person_key", "==", "p1")], None, "privacy unit"),
        ([("age_at_offence", ">=", "18")], None, "compare it with a number"),
        ([("sex", "in", [])], None, "non-empty list"),
        ([("sex", "==", None)], None, "'is null'"),
        ([("sex", "==", {"__srs__": "frame"})], None, "not a dict"),
        ("sex == 'F'", None, "must be a list of conditions"),
        ([("sex", "==", "F")] * 21, None, "max_where_conditions"),
        ([("sex", "in", ["F"] * 201)], None, "max_where_values"),
        ([("sex", "==", "F" * 201)], None, "max_where_text_chars"),
        (None, {"age_band": ("band", "age_at_offence", [40, 18])}, "increase strictly"),
        (None, {"sex": ("year", "age_at_offence")}, "already has a column"),
        (None, {"Band!": ("band", "age_at_offence", [1])}, "lower-case word"),
        (None, {"b": ("udf", "age_at_offence")}, "give \\('band'"),
        (None, {"y": ("year", "sex")}, "not a date"),
    ],
)
def test_a_malformed_selection_is_refused_before_anything_is_spent(
    registry, vault, policies, where, derive, message
) -> None:
    with pytest.raises(dp.SelectionError, match=message):
        release(registry, vault, policies, dp.count(), where=where, derive=derive)
    assert nothing_spent(registry, policies)


def test_a_selection_carries_no_code() -> None:
    import polars as pl

    policy = load_policies().privacy_budget
    for value in (lambda row: True, pl.col("sex") == "F", object()):
        with pytest.raises(dp.SelectionError, match="not code"):
            dp.select_rows([("sex", "==", value)], policy=policy)
        with pytest.raises(dp.SelectionError):
            dp.select_rows([value], policy=policy)


@pytest.mark.parametrize("rho", ["0.01", True, float("nan"), -1, 0.06])
def test_a_malformed_rho_is_refused_clearly_before_the_dataset_is_read(
    registry, vault, policies, rho
) -> None:
    with pytest.raises(SpendRefused, match="positive, finite rho given as a number|at most rho"):
        release(registry, vault, policies, dp.count(), rho=rho)
    with pytest.raises(dp.DPQueryError, match="accuracy must be a positive, finite number"):
        release(registry, vault, policies, dp.count(), rho=None, accuracy="20")
    with registry.sessions() as s:
        reads = s.execute(select(AuditEvent).where(AuditEvent.action == "vault.read")).all()
    assert reads == [] and nothing_spent(registry, policies)


def test_the_version_read_is_the_version_recorded(registry, vault, policies, people) -> None:
    with registry.sessions() as s:
        vault.store(s, DATASET, journeys(seed=4), actor=people.steward, data_dictionary=DICTIONARY)
    newest = release(registry, vault, policies, dp.count())
    first = release(registry, vault, policies, dp.count(), version=1)
    with registry.sessions() as s:
        recorded = {o.id: o.content["data"]["version"] for o in project_outputs(s, PROJECT)}
    assert (recorded[newest.output_id], recorded[first.output_id]) == (2, 1)
    with pytest.raises(dp.DPQueryError, match="version must be a whole number"):
        release(registry, vault, policies, dp.count(), version="1")


def test_the_release_waits_for_the_ledger_to_confirm_its_own_spend(
    registry, vault, policies, monkeypatch
) -> None:
    paid = release(registry, vault, policies, dp.count())
    # A receipt that names a spend which already paid for an output (or anyone else's) is
    # refused by the ledger just before the noise is drawn: nothing is released or recorded.
    monkeypatch.setattr("output_checking.dp_release.debit", lambda *a, **k: paid.receipt)

    def must_not_release(self, spend):
        raise AssertionError("noise drawn against an unconfirmed spend")

    monkeypatch.setattr(dp.DPPlan, "release", must_not_release)
    with pytest.raises(SpendNotConfirmed, match="already paid for output"):
        release(registry, vault, policies, dp.count())
    with registry.sessions() as s:
        assert len(project_outputs(s, PROJECT)) == 1


def test_the_ledger_confirms_every_release(registry, vault, policies, monkeypatch) -> None:
    confirmed = []
    original = budget.confirm_spend

    def watched(session, **arguments):
        confirmed.append(arguments)
        return original(session, **arguments)

    monkeypatch.setattr("output_checking.dp_release.confirm_spend", watched)
    out = release(registry, vault, policies, dp.count(by=["area"]))
    assert confirmed == [
        {
            "spend_id": out.receipt.spend_id,
            "project_code": PROJECT,
            "researcher": "ana",
            "rho": out.result.rho,
            "delta": policies.privacy_budget.key_release_delta,
        }
    ]


def test_a_dp_replica_reads_the_dataset_and_records_what_it_read(registry, vault, policies) -> None:
    with registry.sessions() as s:
        out = release_dp_replica(
            s,
            vault,
            project_code=PROJECT,
            researcher="ana",
            dataset=DATASET,
            where=[("area", "==", "LS")],
            derive={"age_band": ("band", "age_at_offence", [18, 40])},
            columns=["sex", "age_band"],
            rows=50,
            rho=0.01,
            policies=policies,
        )
        (output,) = project_outputs(s, PROJECT)
    assert set(out.data["age_band"].dropna()) <= {"< 18", "[18, 40)", ">= 40"}
    assert output.content["data"]["where"] == [["area", "==", "LS"]]
    assert output.content["data"]["version"] == 1 and output.checks[0]["data"]["dataset"] == DATASET


def test_the_querys_own_privacy_unit_cannot_be_filtered_on(registry, vault, policies) -> None:
    victims_unit = dp.count(identifier="area")
    with pytest.raises(dp.SelectionError, match="'area' is the privacy unit"):
        release(registry, vault, policies, victims_unit, where=[("area", "==", "LS")])
    assert nothing_spent(registry, policies)

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
from agreement_fixtures import (
    PERMITTED_BASIS,
    RESEARCH_LINEAGE,
    admit_to_agreements,
    register_standard_agreements,
)
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from disclosure import dp
from output_checking.dp_release import preview_dp, release_dp, release_dp_replica
from output_checking.outputs import OutputError, project_outputs, record_output
from registry_fixtures import PROJECT, TODAY, populate
from srs.governance import budget
from srs.governance.access import AccessDenied
from srs.governance.budget import (
    BudgetExhausted,
    SpendNotConfirmed,
    SpendRefused,
    budget_state,
    spends,
)
from srs.governance.deployment import Deployment
from srs.governance.policy import load_policies
from srs.governance.registry import Registry, open_registry, projects
from srs.governance.registry.models import AuditEvent, Output, Project
from srs.vault.crypto import generate_master_key, write_key_file
from srs.vault.store import Vault

DATASET = "linked/journeys"
OTHER_PROJECT = "P002"
OTHER_DATASET = "linked/victims"
DICTIONARY = [
    {"name": "person_key", "type": "string"},
    {"name": "sex", "type": "string", "values": ["F", "M"]},
    {"name": "area", "type": "string"},
]


def victims(rows: int = 400, seed: int = 9) -> pd.DataFrame:
    """linked/victims' shape: its persons are named by victim_person_key (policy privacy_units)."""
    return journeys(rows, seed).rename(columns={"person_key": "victim_person_key"})


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
        vault.store(
            s,
            DATASET,
            journeys(),
            actor=people.steward,
            data_dictionary=DICTIONARY,
            lineage=RESEARCH_LINEAGE,
        )
        vault.store(s, OTHER_DATASET, victims(), actor=people.steward, lineage=RESEARCH_LINEAGE)
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
            legal_basis=PERMITTED_BASIS,
            start_date=TODAY - timedelta(days=30),
            end_date=TODAY + timedelta(days=300),
            approved_classification="confidential",
            agreements=["DSA-POLICE"],
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
    population = populate(registry, policies)
    with registry.sessions() as s:
        register_standard_agreements(s, policies, population.admin)
        admit_to_agreements(s, policies, admin=population.admin, code=PROJECT)
    return population


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


def preview(registry, vault, policies, query, dataset=DATASET, **options):
    with registry.sessions() as s:
        return preview_dp(
            s,
            vault,
            project_code=PROJECT,
            researcher="ana",
            query=query,
            dataset=dataset,
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
    read = {
        "dataset": DATASET,
        "version": 1,
        "source": "vault",
        "privacy_unit": "person_key",
        "where": [],
        "derive": {},
    }
    assert output.content["data"] == read and output.checks[0]["data"] == read
    assert output.checks[0]["query"]["statistic"] == "count"
    # ... under the policy's privacy unit and row cap, never the query's own.
    assert output.checks[0]["query"]["privacy_unit"] == "person_key"
    assert output.checks[0]["query"]["max_rows_per_person"] == 5
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


@pytest.mark.parametrize("rho", [np.float64(0.01), np.float32(0.01)], ids=repr)
def test_a_numpy_rho_is_a_real_number(registry, vault, policies, rho) -> None:
    out = release(registry, vault, policies, dp.count(), rho=rho)
    assert out.receipt.rho == pytest.approx(0.01, abs=1e-9)
    assert preview(registry, vault, policies, dp.count(), rho=rho).rho == out.receipt.rho


def test_a_huge_rho_is_refused_by_the_ceiling_not_overflowed(registry, vault, policies) -> None:
    for rho in (1e300, 10**400):
        with pytest.raises(SpendRefused, match="at most rho 0.05"):
            release(registry, vault, policies, dp.count(), rho=rho)
        with pytest.raises(SpendRefused, match="at most rho 0.05"):
            preview(registry, vault, policies, dp.count(), rho=rho)
    assert nothing_spent(registry, policies)


def test_the_version_read_is_the_version_recorded(registry, vault, policies, people) -> None:
    with registry.sessions() as s:
        vault.store(
            s,
            DATASET,
            journeys(seed=4),
            actor=people.steward,
            data_dictionary=DICTIONARY,
            lineage=RESEARCH_LINEAGE,
        )
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


# ------------------------------------------------------------------ the privacy unit is the policy's
def store_a_heavy_person(registry, vault, people) -> None:
    """One person ('target', area 'ZZ') with 200 cases, each with its own sentence length: a
    per-row column a query could try to make its privacy unit."""
    heavy = journeys()
    extra = heavy.iloc[[0] * 200].copy()
    extra["person_key"] = "target"
    extra["area"] = "ZZ"
    extra["sentence_months"] = [float(i) + 0.5 for i in range(200)]
    with registry.sessions() as s:
        vault.store(
            s,
            DATASET,
            pd.concat([heavy, extra], ignore_index=True),
            actor=people.steward,
            data_dictionary=DICTIONARY,
            lineage=RESEARCH_LINEAGE,
        )


UNIT_OPTIONS = [
    {"identifier": "sentence_months"},
    {"privacy_unit": "sentence_months"},
    {"max_rows_per_person": 1000},
    {"contributions": 200},
]


@pytest.mark.parametrize("option", UNIT_OPTIONS, ids=lambda o: next(iter(o)))
def test_a_query_cannot_choose_its_privacy_unit_or_row_cap(option) -> None:
    # Review of issue 15: dp.count(identifier="sentence_months") made each row its own
    # "person", so one person's 200 records were released as 188 [156, 220].
    for build in (
        lambda: dp.count(**option),
        lambda: dp.crosstab("sex", **option),
        lambda: dp.mean("sentence_months", **option),
        lambda: dp.median("sentence_months", **option),
        lambda: dp.histogram("age_at_offence", [18, 25], **option),
        lambda: dp.DPQuery("count", **option),
    ):
        with pytest.raises(dp.PrivacyUnitFixed, match="policy fixes"):
            build()


def test_a_query_object_carrying_its_own_unit_runs_under_the_policys(
    registry, vault, policies, people
) -> None:
    # A researcher can build a query in the kernel and set what they like on it; the release
    # rebuilds it and runs it under the policy's unit (person_key) and row cap (5), so the
    # heavy person counts at most 5 times, not 200.
    store_a_heavy_person(registry, vault, people)
    tampered = dp.count()
    object.__setattr__(tampered, "identifier", "sentence_months")
    object.__setattr__(tampered, "max_rows_per_person", 1000)

    class OwnUnit(dp.DPQuery):
        identifier = "sentence_months"

    for query in (tampered, OwnUnit("count")):
        out = release(registry, vault, policies, query, rho=0.05, where=[("area", "==", "ZZ")])
        row = out.result.table.iloc[0]
        # sd of the noise at rho 0.05 with 5 rows per person is ~16: 200 is 12 sd away.
        assert row["estimate"] < 100, out.result.table
        with registry.sessions() as s:
            recorded = s.get(Output, out.output_id)
        assert recorded.checks[0]["query"]["privacy_unit"] == "person_key"
        assert recorded.checks[0]["query"]["max_rows_per_person"] == 5
        assert recorded.content["query"]["privacy_unit"] == "person_key"
    honest = preview(registry, vault, policies, dp.count(), rho=0.05)
    assert str(preview(registry, vault, policies, tampered, rho=0.05)) == str(honest)


def test_the_privacy_unit_can_be_neither_filtered_on_grouped_by_nor_summarised(
    registry, vault, policies, people
) -> None:
    store_a_heavy_person(registry, vault, people)
    for where, derive in (
        ([("person_key", "==", "target")], None),
        ([("person_key", "in", ["target"])], None),
        ([("person_key", "is not null")], None),
        (None, {"k": ("band", "person_key", [1])}),
    ):
        with pytest.raises(dp.SelectionError, match="'person_key' is the privacy unit"):
            release(registry, vault, policies, dp.count(), where=where, derive=derive)
    # Grouped by or summarised, by a built query or one whose fields were changed after it was
    # built (the frozen dataclass can be got round in the kernel).
    grouped = dp.count(by=["sex"])
    object.__setattr__(grouped, "by", ("person_key",))
    for query in (dp.count(by=["person_key"]), grouped, dp.histogram("person_key", [1, 2])):
        with pytest.raises(dp.DPQueryError, match="'person_key' is the privacy unit"):
            release(registry, vault, policies, query)
    assert nothing_spent(registry, policies)


def test_a_datasets_privacy_unit_is_the_one_its_policy_names(registry, vault, policies) -> None:
    # linked/victims names its persons by victim_person_key (policy privacy_units): that is its
    # unit, and it cannot be filtered on; person_key, there a column like any other, is absent.
    out = release(
        registry, vault, policies, dp.count(), dataset=OTHER_DATASET, project_code=OTHER_PROJECT
    )
    assert out.result.preview.privacy_unit == "victim_person_key"
    with pytest.raises(dp.SelectionError, match="'victim_person_key' is the privacy unit"):
        release(
            registry,
            vault,
            policies,
            dp.count(),
            dataset=OTHER_DATASET,
            project_code=OTHER_PROJECT,
            where=[("victim_person_key", "==", "p1")],
        )


def test_a_dataset_without_its_privacy_unit_is_refused(registry, vault, policies, people) -> None:
    with registry.sessions() as s:
        vault.store(
            s,
            DATASET,
            journeys().drop(columns="person_key"),
            actor=people.steward,
            lineage=RESEARCH_LINEAGE,
        )
    with pytest.raises(dp.DPQueryError, match="has no column 'person_key', the privacy unit"):
        release(registry, vault, policies, dp.count())
    assert nothing_spent(registry, policies)


def test_a_preview_is_the_same_for_an_empty_and_a_full_selection(registry, vault, policies) -> None:
    # What a preview says depends on the query and the policy alone, never on the rows chosen.
    empty = preview(registry, vault, policies, dp.count(), rho=0.01, where=[("sex", "==", "Z")])
    assert str(empty) == str(preview(registry, vault, policies, dp.count(), rho=0.01))


# ------------------------------------------------------------------ classification per version
def test_an_older_version_above_the_projects_classification_is_not_read(
    registry, deployment, policies, people
) -> None:
    # Review of issue 15: access was judged on the newest version's classification, so
    # version=1, stored highly_confidential, was read by a project approved for confidential.
    write_key_file(deployment.key_file, generate_master_key())
    vault = Vault(deployment, policies)
    with registry.sessions() as s:
        vault.store(
            s,
            "linked/extra",
            journeys(),
            actor=people.steward,
            classification="highly_confidential",
            data_dictionary=DICTIONARY,
            lineage=RESEARCH_LINEAGE,
        )
        vault.store(
            s,
            "linked/extra",
            journeys(seed=5),
            actor=people.steward,
            classification="confidential",
            data_dictionary=DICTIONARY,
            lineage=RESEARCH_LINEAGE,
        )
        projects.grant_dataset(
            s, actor=people.steward, policies=policies, code=PROJECT, dataset_name="linked/extra"
        )
    for run in (release, preview):
        with pytest.raises(AccessDenied, match="classified highly_confidential"):
            run(registry, vault, policies, dp.count(), dataset="linked/extra", version=1)
    with registry.sessions() as s:
        replica = dict(
            project_code=PROJECT, researcher="ana", dataset="linked/extra", columns=["sex"]
        )
        with pytest.raises(AccessDenied, match="classified highly_confidential"):
            release_dp_replica(s, vault, **replica, rows=10, rho=0.01, policies=policies, version=1)
        denials = s.execute(
            select(AuditEvent).where(
                AuditEvent.action == "access.dataset.read", AuditEvent.outcome == "deny"
            )
        ).scalars()
        assert {json.loads(e.details).get("version") for e in denials} == {1}
    assert nothing_spent(registry, policies)
    # The version the project is approved for is read as before.
    out = release(registry, vault, policies, dp.count(), dataset="linked/extra")
    assert out.result.table.shape[0] == 1


# ------------------------------------------------------------------ odd values and band labels
@pytest.mark.parametrize(
    ("where", "derive"),
    [
        ([("age_at_offence", "==", 2**70)], None),
        ([("age_at_offence", "in", [1, 2**70])], None),
        ([("age_at_offence", "in", [1, 2.5])], None),
        ([("age_at_offence", ">=", np.int64(18))], None),
        ([("sentence_months", "in", [1, 2.5, np.float32(3)])], None),
        (None, {"b": ("band", "age_at_offence", [1234567, 1234568, 1234569])}),
        (None, {"b": ("band", "age_at_offence", [1e-300, 2e-300])}),
    ],
)
def test_odd_numbers_in_a_selection_are_compared_as_the_numbers_they_are(
    registry, vault, policies, where, derive
) -> None:
    # Review of issue 15: these raised polars' TypeError (mixed int and float in a list, an
    # integer beyond 64 bits) or gave bands whose labels repeated.
    out = release(
        registry, vault, policies, dp.count(by=["b"] if derive else []), where=where, derive=derive
    )
    labels = list(out.result.table["b"]) if derive else []
    assert len(labels) == len(set(labels))


@pytest.mark.parametrize(
    ("where", "derive", "message"),
    [
        ([("age_at_offence", "in", [1, 10**400])], None, "too large to compare"),
        ([("age_at_offence", "==", -(10**400))], None, "too large to compare"),
        ([("sex", "in", ["F", 1])], None, "holds texts: compare it with text"),
        (None, {"b": ("band", "age_at_offence", [1, 10**400])}, "within about 1e308"),
    ],
)
def test_numbers_beyond_any_column_are_refused_clearly(
    registry, vault, policies, where, derive, message
) -> None:
    with pytest.raises(dp.SelectionError, match=message):
        release(registry, vault, policies, dp.count(), where=where, derive=derive)
    assert nothing_spent(registry, policies)


def test_bands_whose_edges_differ_in_the_fifth_decimal_keep_their_own_labels(
    registry, vault, policies
) -> None:
    # Review of issue 15: labels were written with {:g}, so 20.00001, 20.00002 and 20.00003
    # all read "20", two bands shared the key "[20, 20)" and one silently dropped out.
    generous = policies.model_copy(
        update={
            "privacy_budget": policies.privacy_budget.model_copy(update={"max_rho_per_query": 0.5})
        }
    )
    derive = {"b": ("band", "age_at_offence", [20.00001, 20.00002, 20.00003, 50])}
    out = release(registry, vault, generous, dp.count(by=["b"]), rho=0.5, derive=derive)
    table = out.result.table.set_index("b")["estimate"]
    assert list(table.index) == [
        "< 20.00001",
        "[20.00001, 20.00002)",
        "[20.00002, 20.00003)",
        "[20.00003, 50)",
        ">= 50",
    ]
    data = journeys()
    truth = int(((data.age_at_offence >= 20) & (data.age_at_offence < 50)).sum())
    # sd of the noise at rho 0.5 with 5 rows per person is 5: within 30 of the truth.
    assert table["[20.00003, 50)"] == pytest.approx(truth, abs=30)

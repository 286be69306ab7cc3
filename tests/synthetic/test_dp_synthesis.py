"""DP synthetic replicas: paid for from the project ledger once and before any noise, refused
without budget or a second time, only public categories out, person-level bounds, and marginals
whose error follows rho."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from registry_fixtures import PROJECT, populate
from srs.governance.budget import (
    BudgetExhausted,
    SpendReceipt,
    budget_state,
    confirm_spend,
    debit,
    spends,
)
from srs.governance.policy import PolicySet
from srs.governance.registry import Registry
from srs.governance.registry.models import Project
from synthetic.dp_synthesis import (
    DPReplicaError,
    DPReplicaPlan,
    DPReplicaRefused,
    dp_replica,
    plan_dp_replica,
    synthesize_dp,
)

DICTIONARY = [
    {"name": "person_key", "type": "string"},
    {"name": "sex", "type": "string", "values": ["F", "M"]},
    {"name": "court", "type": "string", "values": ["crown", "magistrates"]},
    {"name": "remanded", "type": "flag", "values": ["false", "true"]},
    {"name": "sentence_months", "type": "integer"},  # bounds [0, 240] from the shipped policy
    {"name": "area", "type": "string"},  # no public values
    {"name": "score", "type": "number"},  # no public bounds
]
PUBLIC = {"sex": {"F", "M"}, "court": {"crown", "magistrates"}}


def journeys(persons: int = 300, rows_per_person: int = 2, seed: int = 5) -> pd.DataFrame:
    """Each person has ``rows_per_person`` rows (under the policy's cap of 5); court depends on
    sex, so the pair's joint distribution is not the product of its margins."""
    rng = np.random.default_rng(seed)
    rows = persons * rows_per_person
    sex = rng.choice(["F", "M"], rows, p=[0.3, 0.7])
    crown = np.where(sex == "F", 0.2, 0.6)
    return pd.DataFrame(
        {
            "person_key": [f"p{i // rows_per_person}" for i in range(rows)],
            "sex": sex,
            "court": np.where(rng.random(rows) < crown, "crown", "magistrates"),
            "remanded": rng.random(rows) < 0.25,
            "sentence_months": rng.integers(0, 120, rows),
            "area": rng.choice(["LS", "M"], rows),
            "score": rng.normal(size=rows),
        }
    )


def generous(policies: PolicySet, rho: float = 100.0) -> PolicySet:
    """The shipped policies with a per-query limit high enough to test accuracy at large rho."""
    budget = policies.privacy_budget.model_copy(
        update={"max_rho_per_query": rho, "default_project_rho": rho}
    )
    return policies.model_copy(update={"privacy_budget": budget})


def set_budget(registry: Registry, rho: float) -> None:
    with registry.sessions() as s:
        s.execute(update(Project).values(privacy_budget_rho=rho))
        s.commit()


@pytest.fixture
def people(registry, policies):
    return populate(registry, policies)


def replica(
    registry,
    policies,
    *,
    table=None,
    columns=("sex", "court"),
    rho=0.05,
    rows=500,
    algorithm="mst",
):
    with registry.sessions() as s:
        return dp_replica(
            s,
            project_code=PROJECT,
            researcher="ana",
            table=journeys() if table is None else table,
            columns=list(columns),
            rho=rho,
            policies=policies,
            dictionary=DICTIONARY,
            rows=rows,
            seed=1,
            dataset="linked/journeys",
            algorithm=algorithm,
        )


def spent(registry, policies) -> tuple[int, float]:
    with registry.sessions() as s:
        state = budget_state(s, PROJECT, policies)
    return state.spends, state.spent_rho


def test_a_replica_is_paid_for_once_before_the_noise_is_drawn(
    registry, policies, people, monkeypatch
) -> None:
    seen_at_release = []
    release = DPReplicaPlan._release

    def watched(self, spend):
        # Read from a fresh session: the spend must already be committed, not merely flushed.
        seen_at_release.append(spent(registry, policies))
        return release(self, spend)

    monkeypatch.setattr(DPReplicaPlan, "_release", watched)
    table = journeys()
    table.loc[:9, "sex"] = "X"  # not a public category: counted as missing, never released
    out = replica(
        registry, policies, table=table, columns=["remanded", "sex", "court", "sentence_months"]
    )
    assert seen_at_release == [(1, pytest.approx(0.05))]
    with registry.sessions() as s:
        (spend,) = spends(s, PROJECT)
    assert spend.purpose == "DP synthetic replica of linked/journeys"
    assert out.receipt.spend_id == spend.id and out.receipt.delta == 0
    assert out.data.attrs["spend_id"] == spend.id and out.data.attrs["rho"] == pytest.approx(0.05)
    assert list(out.data.columns) == ["remanded", "sex", "court", "sentence_months"]
    assert len(out.data) == 500
    for column, allowed in PUBLIC.items():
        assert set(out.data[column].dropna()) <= allowed
    assert str(out.data["remanded"].dtype) == "boolean"
    months = out.data["sentence_months"].dropna()
    assert months.between(0, 240).all() and str(out.data["sentence_months"].dtype) == "Int64"
    columns = ["remanded", "sex", "court", "sentence_months"]
    one_way = {clique for clique in out.marginals if len(clique) == 1}
    two_way = {frozenset(clique) for clique in out.marginals if len(clique) == 2}
    assert one_way == {(c,) for c in columns}
    # MST: a spanning tree over the four columns, three pairs joining them all.
    assert len(two_way) == 3 and set().union(*two_way) == set(columns)
    assert set(out.marginals[("sex",)]["sex"]) == {"F", "M", "(missing)"}  # never "X"
    assert out.data.attrs["algorithm"] == "mst"
    assert "rho 0.05" in out.description and "at most 5 rows per person" in out.description
    assert "MST" in out.description


def test_an_exhausted_budget_gives_no_data_and_spends_nothing(
    registry, policies, people, monkeypatch
) -> None:
    set_budget(registry, 0.01)

    def must_not_release(self, spend):
        raise AssertionError("noise drawn without a committed spend")

    monkeypatch.setattr(DPReplicaPlan, "_release", must_not_release)
    with pytest.raises(BudgetExhausted, match=r"has rho 0.01 left .* needs 0.05"):
        replica(registry, policies)
    assert spent(registry, policies) == (0, 0)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["sex", "no_such_column"], "columns not in the table"),
        (["person_key", "sex"], "privacy unit's identifier"),
        (["area"], "no public values in the data dictionary"),
        (["score"], "no public bounds for the numeric column 'score'"),
        ([], "name the columns"),
        (["sex", "sex"], "repeated"),
    ],
)
def test_bad_columns_are_refused_before_anything_is_spent(
    registry, policies, people, columns, message
) -> None:
    with pytest.raises(DPReplicaError, match=message):
        replica(registry, policies, columns=columns)
    assert spent(registry, policies) == (0, 0)


def test_bad_rows_and_rho_are_refused_before_anything_is_spent(registry, policies, people) -> None:
    with pytest.raises(DPReplicaError, match="rows must be a positive whole number"):
        replica(registry, policies, rows=0)
    with pytest.raises(DPReplicaError, match="at most rho 0.05"):
        replica(registry, policies, rho=0.5)
    with pytest.raises(DPReplicaError, match="positive, finite rho"):
        replica(registry, policies, rho=0.0)
    assert spent(registry, policies) == (0, 0)


def test_a_spend_pays_for_one_synthesis_only(registry, policies, people) -> None:
    plan = plan_dp_replica(
        journeys(), columns=["sex", "court"], rho=0.02, policies=policies, dictionary=DICTIONARY
    )
    assert spent(registry, policies) == (0, 0)  # planning states the cost, spends nothing
    with registry.sessions() as s:
        small = debit(
            s,
            project_code=PROJECT,
            researcher="ana",
            rho=0.01,
            purpose="too small",
            policies=policies,
        )
        small = confirm_spend(
            s, spend_id=small.spend_id, project_code=PROJECT, researcher="ana", rho=0.01
        )
        with pytest.raises(DPReplicaRefused, match="needs rho 0.02"):
            synthesize_dp(plan, small, 100, 1)
        with pytest.raises(DPReplicaRefused, match="no committed spend"):
            synthesize_dp(plan, None, 100, 1)
        with pytest.raises(DPReplicaRefused, match="no committed spend"):
            synthesize_dp(plan, small_receipt_look_alike(plan), 100, 1)
        receipt = debit(
            s,
            project_code=PROJECT,
            researcher="ana",
            rho=plan.rho,
            purpose="replica",
            policies=policies,
        )
        confirmed = confirm_spend(
            s, spend_id=receipt.spend_id, project_code=PROJECT, researcher="ana", rho=plan.rho
        )
    assert len(synthesize_dp(plan, confirmed, 100, 1)) == 100  # refusals did not use the plan up
    with pytest.raises(DPReplicaRefused, match="already synthesised"):
        synthesize_dp(plan, confirmed, 100, 2)


def small_receipt_look_alike(plan):
    """A receipt as ``debit`` hands it back, never confirmed by the ledger."""
    return SpendReceipt(
        spend_id=1,
        project=PROJECT,
        researcher="ana",
        rho=plan.rho,
        remaining_rho=1.0,
        epsilon=1.0,
        epsilon_delta=1e-7,
    )


def pair(out, first: str, second: str) -> pd.Series:
    """The released two-way marginal of ``first`` and ``second`` as counts by (first, second)."""
    (frame,) = [m for c, m in out.marginals.items() if set(c) == {first, second}]
    return frame.set_index([first, second])["count"]


def _joint(frame: pd.DataFrame) -> pd.Series:
    shares = frame.groupby(["sex", "court"]).size() / len(frame)
    index = pd.MultiIndex.from_product([sorted(PUBLIC["sex"]), sorted(PUBLIC["court"])])
    return shares.reindex(index, fill_value=0.0)


# Statistics of OpenDP's release, not of the ledger: one database backend is enough.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_marginals_are_close_at_a_generous_rho_and_far_noisier_at_a_tiny_one(
    registry, policies, people
) -> None:
    loose = generous(policies)
    set_budget(registry, 100)
    table = journeys(persons=10_000)  # 20,000 rows
    truth = _joint(table)
    errors = {}
    for rho in (10.0, 1e-5):
        out = replica(registry, loose, table=table, rho=rho, rows=len(table))
        released = pair(out, "sex", "court")
        cells = released.reindex(truth.index).to_numpy()
        errors[rho] = (
            np.abs(_joint(out.data) - truth).sum() / 2,  # total variation of the replica
            np.abs(cells - truth.to_numpy() * len(table)).max(),  # worst released cell
        )
    (tv_loose, cell_loose), (tv_tight, cell_tight) = errors[10.0], errors[1e-5]
    # MST at rho 10: half to the one-way marginals, then 90% of the rest (4.5) measures the
    # sex x court pair, noise sd 5 / sqrt(9) ~ 1.7 per cell; the replica's error is then the
    # sampling error of 20,000 rows. At rho 1e-5 the pair's noise sd is ~ 1,700 per cell.
    assert cell_loose < 10 and tv_loose < 0.02
    assert cell_tight > 100 and tv_tight > 3 * tv_loose


# Statistics of OpenDP's release, not of the ledger: one database backend is enough.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_one_person_with_many_rows_moves_a_marginal_by_at_most_the_row_cap(
    registry, policies, people
) -> None:
    loose = generous(policies)
    set_budget(registry, 200)
    base = journeys(persons=500, rows_per_person=1)
    heavy = pd.DataFrame(
        {"person_key": "prolific", "sex": "F", "court": "crown", "remanded": False},
        index=range(400),
    )
    cell = {}
    for name, table in (("without", base), ("with", pd.concat([base, heavy], ignore_index=True))):
        out = replica(registry, loose, table=table, rho=100.0, rows=10)
        released = pair(out, "sex", "court")
        cell[name] = released[("F", "crown")]
    # MST at rho 100 measures the pair at rho 45: noise sd 5 / sqrt(90) ~ 0.53; the person's
    # 400 rows count as 5.
    cap = policies.privacy_budget.max_rows_per_person
    assert abs((cell["with"] - cell["without"]) - cap) <= 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_aim_is_selectable_and_an_unknown_algorithm_spends_nothing(
    registry, policies, people
) -> None:
    with pytest.raises(DPReplicaError, match="algorithm must be one of mst, aim"):
        replica(registry, policies, algorithm="private-gan")
    assert spent(registry, policies) == (0, 0)
    out = replica(registry, policies, algorithm="aim", rows=200)
    assert out.data.attrs["algorithm"] == "aim" and "AIM" in out.description
    assert len(out.data) == 200 and set(out.data["sex"].dropna()) <= PUBLIC["sex"]
    assert spent(registry, policies) == (1, pytest.approx(0.05))

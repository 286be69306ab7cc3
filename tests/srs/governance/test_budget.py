"""The privacy-budget ledger: exact arithmetic, clear refusals, and no overspend under
concurrent spends from many processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from disclosure.dp import ConfirmedSpend
from output_checking.outputs import record_output
from registry_fixtures import PROJECT, populate
from srs.governance.access import AccessDenied
from srs.governance.budget import (
    NANO,
    BudgetExhausted,
    SpendNotConfirmed,
    SpendRefused,
    budget_state,
    check_query_rho,
    confirm_spend,
    debit,
    spends,
    to_nano,
)
from srs.governance.policy import load_policies
from srs.governance.registry import Registry, open_registry
from srs.governance.registry.models import AuditEvent, Project


def set_budget(registry: Registry, rho: float) -> None:
    with registry.sessions() as s:
        s.execute(update(Project).values(privacy_budget_rho=rho))
        s.commit()


def spend(registry, policies, rho, who="ana", purpose="count by sentence"):
    with registry.sessions() as s:
        return debit(
            s, project_code=PROJECT, researcher=who, rho=rho, purpose=purpose, policies=policies
        )


@pytest.fixture
def people(registry, policies):
    return populate(registry, policies)


def test_spends_until_exhausted_then_refuses_clearly(registry, policies, people) -> None:
    set_budget(registry, 0.1)
    receipts = [spend(registry, policies, 0.04), spend(registry, policies, 0.04)]
    assert receipts[-1].remaining_rho == pytest.approx(0.02)
    assert receipts[0].epsilon == pytest.approx(policies.privacy_budget.epsilon_at(0.04))
    with pytest.raises(BudgetExhausted, match=r"has rho 0.02 left .* this query needs 0.03"):
        spend(registry, policies, 0.03)
    with registry.sessions() as s:
        assert budget_state(s, PROJECT, policies).spent_rho == pytest.approx(0.08)
        assert len(spends(s, PROJECT)) == 2
        last = s.execute(select(AuditEvent).order_by(AuditEvent.seq.desc())).scalars().first()
    assert (last.action, last.outcome) == ("budget.spend", "deny")


def test_a_spend_exactly_meeting_the_remainder_is_allowed(registry, policies, people) -> None:
    set_budget(registry, 0.5)
    for _ in range(10):
        spend(registry, policies, 0.05)  # 0.05 * 10 in floating point is 0.5000000000000001
    with registry.sessions() as s:
        assert budget_state(s, PROJECT, policies).remaining_rho == 0
    with pytest.raises(BudgetExhausted):
        spend(registry, policies, 1e-9)


def test_refusals_before_any_spend(registry, policies, people) -> None:
    for rho in (0, -0.1, float("nan"), float("inf")):
        with pytest.raises(SpendRefused, match="positive"):
            spend(registry, policies, rho)
    with pytest.raises(SpendRefused, match="at most rho 0.05"):
        spend(registry, policies, 0.06)
    with pytest.raises(AccessDenied, match="expired"):
        spend(registry, policies, 0.01, who=people.expired)
    with pytest.raises(AccessDenied, match="not a member"):
        spend(registry, policies, 0.01, who=people.outsider)
    with registry.sessions() as s:
        assert budget_state(s, PROJECT, policies).spends == 0


def test_per_researcher_cap(registry, policies, people) -> None:
    capped = policies.model_copy(
        update={
            "privacy_budget": policies.privacy_budget.model_copy(
                update={"per_researcher_rho_cap": 0.05}
            )
        }
    )
    spend(registry, capped, 0.05)
    with pytest.raises(BudgetExhausted, match="per-researcher cap"):
        spend(registry, capped, 0.01)


def _spend_in_a_process(url: str) -> int | None:
    registry = open_registry(url)
    try:
        with registry.sessions() as s:
            return debit(
                s,
                project_code=PROJECT,
                researcher="ana",
                rho=0.01,
                purpose="concurrent",
                policies=load_policies(),
            ).spend_id
    except BudgetExhausted:
        return None
    finally:
        registry.dispose()


def test_64_concurrent_spends_from_separate_processes_never_overspend(
    registry, policies, people, database_url
) -> None:
    set_budget(registry, 0.5)  # room for exactly 50 spends of 0.01
    registry.dispose()
    with ProcessPoolExecutor(
        max_workers=64, mp_context=multiprocessing.get_context("fork")
    ) as pool:
        results = list(pool.map(_spend_in_a_process, [database_url] * 64))
    granted = [r for r in results if r is not None]
    assert len(granted) == 50
    with registry.sessions() as s:
        state = budget_state(s, PROJECT, policies)
        rows = spends(s, PROJECT)
    assert state.spent_rho <= 0.5 and sum(r.nano_rho for r in rows) == 50 * NANO // 100
    assert sorted(granted) == sorted(r.id for r in rows)  # every released result is accounted for


def test_key_release_deltas_are_exact_and_capped(registry, policies, people) -> None:
    budget = policies.privacy_budget
    with registry.sessions() as s:
        receipt = debit(
            s,
            project_code=PROJECT,
            researcher="ana",
            rho=0.01,
            delta=budget.key_release_delta,
            purpose="count by area (keys not public)",
            policies=policies,
        )
    assert receipt.delta == budget.key_release_delta
    assert receipt.epsilon_delta == pytest.approx(budget.delta + budget.key_release_delta)
    capped = policies.model_copy(
        update={
            "privacy_budget": budget.model_copy(
                update={"max_key_release_delta": 1.5 * budget.key_release_delta}
            )
        }
    )
    with registry.sessions() as s, pytest.raises(BudgetExhausted, match="key-release delta"):
        debit(
            s,
            project_code=PROJECT,
            researcher="ana",
            rho=0.01,
            delta=budget.key_release_delta,
            purpose="another",
            policies=capped,
        )
    with registry.sessions() as s:
        state = budget_state(s, PROJECT, policies)
        (row,) = spends(s, PROJECT)
    assert state.key_release_delta_spent == budget.key_release_delta
    assert row.femto_delta == round(budget.key_release_delta * 1e15)
    for bad in (-1e-9, float("nan"), float("inf")):
        with registry.sessions() as s, pytest.raises(SpendRefused, match="delta"):
            debit(
                s,
                project_code=PROJECT,
                researcher="ana",
                rho=0.01,
                delta=bad,
                purpose="x",
                policies=policies,
            )
    with registry.sessions() as s, pytest.raises(SpendRefused, match="purpose"):
        debit(s, project_code=PROJECT, researcher="ana", rho=0.01, purpose=" ", policies=policies)


def test_cli_budget_show(tmp_path, monkeypatch) -> None:
    from datetime import date, timedelta

    from typer.testing import CliRunner

    from srs.cli import app
    from srs.governance.registry import accounts, projects

    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("SRS_DATABASE_URL", raising=False)
    monkeypatch.delenv("SRS_MASTER_KEY", raising=False)
    home = str(tmp_path / "home")
    runner = CliRunner()
    assert runner.invoke(app, ["--home", home, "init"]).exit_code == 0
    registry = open_registry(f"sqlite:///{tmp_path / 'home' / 'srs.db'}")
    policies = load_policies()
    with registry.sessions() as s:
        for username in ("ana", "olga"):
            accounts.add_researcher(
                s,
                actor="admin",
                policies=policies,
                username=username,
                full_name=username.title(),
                roles=["researcher"],
                accreditation_number=f"AR-{username}",
                training_date=date.today(),
            )
        projects.create_project(
            s,
            actor="admin",
            policies=policies,
            code=PROJECT,
            title="T",
            purpose="P",
            legal_basis="L",
            start_date=date.today() - timedelta(days=1),
            end_date=date.today() + timedelta(days=9),
            approved_classification="confidential",
        )
        projects.add_member(s, actor="admin", policies=policies, code=PROJECT, username="ana")
        debit(
            s,
            project_code=PROJECT,
            researcher="ana",
            rho=0.02,
            purpose="count by area",
            policies=policies,
        )
    registry.dispose()
    for who in ("admin", "ana"):  # an auditor, and a member of the project
        result = runner.invoke(app, ["--home", home, "--as", who, "budget", "show", PROJECT])
        assert result.exit_code == 0, result.output
        assert "spent 0.02 (epsilon" in result.output and "in 1 query" in result.output
        assert "remaining 0.48" in result.output and "count by area" in result.output
        assert "ana: rho 0.02" in result.output
    refused = runner.invoke(app, ["--home", home, "--as", "olga", "budget", "show", PROJECT])
    assert refused.exit_code == 2 and "not a member" in refused.output
    unknown = runner.invoke(app, ["--home", home, "--as", "admin", "budget", "show", "NOPE"])
    assert unknown.exit_code == 2 and "no project 'NOPE'" in unknown.output


# ------------------------------------------------------------------ confirming a spend
def confirm(registry, receipt_or_id, rho=0.01, delta=0.0, who="ana", project=PROJECT):
    spend_id = getattr(receipt_or_id, "spend_id", receipt_or_id)
    with registry.sessions() as s:
        return confirm_spend(
            s, spend_id=spend_id, project_code=project, researcher=who, rho=rho, delta=delta
        )


def test_the_ledger_confirms_only_its_own_unused_covering_spend(registry, policies, people) -> None:
    receipt = spend(registry, policies, 0.01)
    confirmed = confirm(registry, receipt)
    assert isinstance(confirmed, ConfirmedSpend)
    assert (confirmed.spend_id, confirmed.project, confirmed.researcher) == (
        receipt.spend_id,
        PROJECT,
        "ana",
    )
    assert confirmed.rho == pytest.approx(0.01) and confirmed.delta == 0
    refusals = [
        (dict(receipt_or_id=receipt.spend_id + 100), "is not a spend of ana in P001"),
        (dict(receipt_or_id=receipt, who="ben"), "is not a spend of ben in P001"),
        (dict(receipt_or_id=receipt, project="P002"), "is not a spend of ana in P002"),
        (dict(receipt_or_id=receipt, rho=0.02), "covers rho 0.01, delta 0; this release needs"),
        (dict(receipt_or_id=receipt, delta=1e-9), "this release needs rho 0.01, delta 1e-09"),
    ]
    for arguments, message in refusals:
        with pytest.raises(SpendNotConfirmed, match=message):
            confirm(registry, **arguments)
    with registry.sessions() as s:
        record_output(
            s,
            project_code=PROJECT,
            author="ana",
            kind="dp_result",
            name="paid",
            content={},
            budget_spend_id=receipt.spend_id,
        )
        s.commit()
    with pytest.raises(SpendNotConfirmed, match=r"already paid for output #\d+"):
        confirm(registry, receipt)
    with registry.sessions() as s:
        denied = s.execute(
            select(AuditEvent).where(
                AuditEvent.action == "budget.confirm", AuditEvent.outcome == "deny"
            )
        ).scalars()
        assert len(list(denied)) == len(refusals) + 1


def test_only_the_ledger_issues_confirmations() -> None:
    # Every shipped caller of the engine's issuer: the ledger alone (tests stand in for it).
    root = Path(__file__).resolve().parents[3]
    callers = sorted(
        str(path.relative_to(root))
        for package in ("srs", "output_checking", "synthetic", "disclosure")
        for path in (root / package).rglob("*.py")
        if "issue_confirmation(" in path.read_text(encoding="utf-8")
    )
    assert callers == ["disclosure/dp/spend.py", "srs/governance/budget.py"]


@pytest.mark.parametrize(
    "rho", ["0.01", True, np.bool_(True), None, [0.01], float("inf"), float("nan"), 0, -1e300]
)
def test_a_query_rho_must_be_a_positive_finite_number(rho, policies) -> None:
    with pytest.raises(SpendRefused, match="positive, finite rho given as a number"):
        check_query_rho(rho, policies)


def test_a_query_rho_is_at_most_the_policy_ceiling(policies) -> None:
    ceiling = policies.privacy_budget.max_rho_per_query
    assert check_query_rho(ceiling, policies) == round(ceiling * NANO)
    with pytest.raises(SpendRefused, match=f"at most rho {ceiling:g}"):
        check_query_rho(ceiling * 1.01, policies)


@pytest.mark.parametrize(
    "rho", [1e300, 10**400, 2**1100, 1e7], ids=["1e300", "1e400", "2^1100", "1e7"]
)
def test_a_huge_rho_is_refused_by_the_ceiling_before_it_is_converted(rho, policies) -> None:
    # Review of issue 15: rho=1e300 overflowed to_nano (OverflowError) instead of a refusal.
    with pytest.raises(SpendRefused, match="one query may spend at most rho 0.05"):
        check_query_rho(rho, policies)
    with pytest.raises(SpendRefused, match="beyond any privacy budget"):
        to_nano(rho)


@pytest.mark.parametrize("rho", [np.float64(0.01), np.float32(0.01), np.int64(0) + 0.01])
def test_numpy_numbers_are_real_rhos(registry, policies, people, rho) -> None:
    # Review of issue 15: np.float32 was refused as "not a number"; a rho is any real number
    # (numbers.Real), a flag never. float32's 0.01 is a hair under 0.01: rounded up, never down.
    assert check_query_rho(rho, policies) == 10_000_000
    receipt = spend(registry, policies, rho)
    assert receipt.rho == pytest.approx(0.01) and isinstance(receipt.rho, float)
    with registry.sessions() as s:
        (event,) = s.execute(
            select(AuditEvent).where(AuditEvent.action == "budget.spend")
        ).scalars()
    assert json.loads(event.details)["rho"] == 0.01

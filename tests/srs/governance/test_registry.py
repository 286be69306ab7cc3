"""The registry: migrations, accounts and projects, with clear refusals for bad input."""

from __future__ import annotations

import math
from datetime import date, timedelta
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, select

from registry_fixtures import PROJECT, TODAY, populate
from srs.governance.access import AccessDenied
from srs.governance.budget import to_nano
from srs.governance.registry import DatabaseError, Registry, accounts, open_registry, projects
from srs.governance.registry.database import create_registry_engine, upgrade_schema
from srs.governance.registry.models import AuditEvent


def test_migrations_create_every_table_and_are_idempotent(registry: Registry) -> None:
    upgrade_schema(registry.engine)  # a second run changes nothing
    tables = set(inspect(registry.engine).get_table_names())
    assert {
        "researchers",
        "projects",
        "project_members",
        "datasets",
        "grants",
        "audit_events",
        "audit_head",
        "checker_sessions",
        "alembic_version",
    } <= tables


def test_opening_an_empty_database_says_to_run_init(tmp_path) -> None:
    with pytest.raises(DatabaseError, match="srs init"):
        open_registry(f"sqlite:///{tmp_path / 'empty.db'}")


def test_bad_database_url_is_explained() -> None:
    with pytest.raises(DatabaseError, match="not valid"):
        create_registry_engine("not a url")


def test_unreachable_postgres_is_explained() -> None:
    with pytest.raises(DatabaseError, match="cannot reach"):
        open_registry("postgresql://nobody@127.0.0.1:1/none")


def test_population_and_audit_trail(registry: Registry, policies) -> None:
    people = populate(registry, policies)
    with registry.sessions() as s:
        everyone = {p.username: p for p in accounts.list_researchers(s)}
        assert everyone[people.researcher].roles == ["researcher"]
        assert everyone[people.researcher].accreditation_number == "AR-ana"
        project = projects.get_project(s, PROJECT)
        assert sorted(m.researcher.username for m in project.members) == ["ana", "ben"]
        actions = [e.action for e in s.execute(select(AuditEvent)).scalars()]
    assert actions.count("researcher.add") == 6
    assert "project.create" in actions and actions.count("project.add_member") == 2


def test_accreditation_expiry_defaults_to_policy_validity(registry, policies) -> None:
    with registry.sessions() as s:
        accounts.bootstrap_admin(s, username="admin", full_name="Admin")
        person = accounts.add_researcher(
            s,
            actor="admin",
            policies=policies,
            username="dee",
            full_name="Dee",
            roles=["researcher"],
            accreditation_number="AR-9",
            today=TODAY,
        )
    assert person.accreditation_expiry == TODAY + timedelta(
        days=policies.access.accreditation_validity_days
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": "Bad Name"}, "username 'Bad Name' is not valid"),
        ({"roles": ["wizard"]}, "unknown role"),
        ({"roles": []}, "at least one role"),
        ({"username": "ana"}, "already in use"),
        ({"accreditation_number": "AR-ana"}, "already in use"),
    ],
)
def test_bad_accounts_are_refused(registry, policies, kwargs, message) -> None:
    populate(registry, policies)
    args = {
        "username": "newbie",
        "full_name": "New",
        "roles": ["researcher"],
        "accreditation_number": "AR-new",
    } | kwargs
    with registry.sessions() as s, pytest.raises(accounts.RegistryError, match=message):
        accounts.add_researcher(s, actor="admin", policies=policies, **args)


def test_only_admins_manage_accounts(registry, policies) -> None:
    people = populate(registry, policies)
    with registry.sessions() as s, pytest.raises(AccessDenied, match="may not researcher.manage"):
        accounts.add_researcher(
            s,
            actor=people.researcher,
            policies=policies,
            username="eve",
            full_name="Eve",
            roles=["admin"],
        )


def test_second_bootstrap_is_refused(registry, policies) -> None:
    populate(registry, policies)
    with registry.sessions() as s, pytest.raises(accounts.RegistryError, match="already has"):
        accounts.bootstrap_admin(s, username="root", full_name="Root")


def test_unlock_clears_failed_logins(registry, policies) -> None:
    people = populate(registry, policies)
    with registry.sessions() as s:
        person = accounts.get_researcher(s, people.researcher)
        person.failed_login_count = 4
        s.commit()
        accounts.set_locked(s, actor="admin", policies=policies, username="ana", locked=True)
        assert accounts.get_researcher(s, "ana").locked
        accounts.set_locked(s, actor="admin", policies=policies, username="ana", locked=False)
        person = accounts.get_researcher(s, "ana")
    assert not person.locked and person.failed_login_count == 0 and person.locked_reason is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"code": "P001"}, "already exists"),
        ({"code": "bad code!"}, "not valid"),
        ({"end_date": date(2020, 1, 1)}, "before its start"),
        ({"approved_classification": "secret"}, "not one of public, confidential"),
        ({"purpose": "  "}, "needs a purpose"),
        ({"privacy_budget_rho": 0.0}, "must be a zCDP rho from"),
    ],
)
def test_bad_projects_are_refused(registry, policies, kwargs, message) -> None:
    populate(registry, policies)
    args = {
        "code": "P002",
        "title": "T",
        "purpose": "P",
        "legal_basis": "L",
        "start_date": date(2026, 1, 1),
        "end_date": date(2027, 1, 1),
        "approved_classification": "confidential",
    } | kwargs
    with registry.sessions() as s, pytest.raises(accounts.RegistryError, match=message):
        projects.create_project(s, actor="admin", policies=policies, **args)


PROJECT_ARGS = {
    "code": "P002",
    "title": "T",
    "purpose": "P",
    "legal_basis": "L",
    "start_date": date(2026, 1, 1),
    "end_date": date(2027, 1, 1),
    "approved_classification": "confidential",
}


@pytest.mark.parametrize(
    "rho",
    [
        float("inf"),
        float("-inf"),
        float("nan"),
        1e308,  # finite, but every sum over it overflows
        0,
        -0.5,
        5e-324,  # positive, but nothing once the ledger counts it in nano-rho
        1e-10,
        True,  # a bool is an int to Python, never a budget
        "0.5",
        b"0.5",
        [0.5],
        None.__class__,  # not a number at all
    ],
    ids=repr,
)
def test_a_project_budget_must_be_a_finite_rho_within_the_policy_ceiling(
    registry, policies, rho
) -> None:
    populate(registry, policies)
    ceiling = policies.privacy_budget.max_project_rho
    with registry.sessions() as s:
        with pytest.raises(projects.ProjectBudgetError) as refused:
            projects.create_project(
                s, actor="admin", policies=policies, privacy_budget_rho=rho, **PROJECT_ARGS
            )
        floor = policies.privacy_budget.min_project_rho
        assert f"a zCDP rho from {floor:g} to {ceiling:g} (min_project_rho" in str(refused.value)
        assert "already exists" not in str(refused.value)
        assert projects.list_projects(s)[-1].code == PROJECT  # nothing was created


def test_a_project_budget_may_be_anything_from_the_floor_to_the_ceiling(registry, policies) -> None:
    populate(registry, policies)
    ceiling = policies.privacy_budget.max_project_rho
    floor = policies.privacy_budget.min_project_rho
    with registry.sessions() as s:
        at_ceiling = projects.create_project(
            s, actor="admin", policies=policies, privacy_budget_rho=ceiling, **PROJECT_ARGS
        )
        at_floor = projects.create_project(
            s,
            actor="admin",
            policies=policies,
            privacy_budget_rho=floor,
            **PROJECT_ARGS | {"code": "P5"},
        )
        with pytest.raises(projects.ProjectBudgetError, match=f"from {floor:g} to"):
            projects.create_project(
                s,
                actor="admin",
                policies=policies,
                privacy_budget_rho=floor * (1 - 1e-9),
                **PROJECT_ARGS | {"code": "P6"},
            )
        whole = projects.create_project(
            s,
            actor="admin",
            policies=policies,
            privacy_budget_rho=1,
            **PROJECT_ARGS | {"code": "P3"},
        )
        with pytest.raises(projects.ProjectBudgetError, match=f"to {ceiling:g} "):
            projects.create_project(
                s,
                actor="admin",
                policies=policies,
                privacy_budget_rho=ceiling * (1 + 1e-9),
                **PROJECT_ARGS | {"code": "P4"},
            )
    assert at_ceiling.privacy_budget_rho == ceiling and at_floor.privacy_budget_rho == floor
    assert whole.privacy_budget_rho == 1.0 and isinstance(whole.privacy_budget_rho, float)


def test_only_a_real_duplicate_is_called_already_exists(registry, policies, monkeypatch) -> None:
    """Any other refusal by the database is reported as what it is, not as a duplicate."""
    populate(registry, policies)
    with registry.sessions() as s:
        with pytest.raises(accounts.RegistryError, match="a project 'P001' already exists"):
            projects.create_project(
                s, actor="admin", policies=policies, **PROJECT_ARGS | {"code": PROJECT}
            )
        # A value the checks let through but the database refuses (the budget column is NOT
        # NULL): the registry's own message, not "already exists".
        monkeypatch.setattr(projects, "validate_project_budget", lambda rho, budget: None)
        with pytest.raises(accounts.RegistryError) as refused:
            projects.create_project(s, actor="admin", policies=policies, **PROJECT_ARGS)
        message = str(refused.value)
        assert "already exists" not in message
        assert "the registry refused project 'P002'" in message and "null" in message.lower()
        assert [p.code for p in projects.list_projects(s)] == [PROJECT]


def test_project_budget_defaults_to_policy(registry, policies) -> None:
    populate(registry, policies)
    with registry.sessions() as s:
        project = projects.get_project(s, PROJECT)
    assert project.privacy_budget_rho == policies.privacy_budget.default_project_rho


def test_membership_and_grant_errors(registry, policies, deployment) -> None:
    import pandas as pd
    from agreement_fixtures import (
        RESEARCH_LINEAGE,
        admit_to_agreements,
        register_standard_agreements,
    )

    from srs.vault.crypto import generate_master_key, write_key_file
    from srs.vault.store import Vault

    people = populate(registry, policies)
    write_key_file(deployment.key_file, generate_master_key())
    with registry.sessions() as s:
        register_standard_agreements(s, policies, people.admin)
        admit_to_agreements(s, policies, admin=people.admin, code=PROJECT)
        Vault(deployment, policies).store(
            s,
            "linked/journeys",
            pd.DataFrame({"person_key": ["p1"]}),
            actor=people.steward,
            lineage=RESEARCH_LINEAGE,
        )
        with pytest.raises(accounts.RegistryError, match="already a member"):
            projects.add_member(s, actor="admin", policies=policies, code=PROJECT, username="ana")
        with pytest.raises(accounts.RegistryError, match="member role"):
            projects.add_member(
                s, actor="admin", policies=policies, code=PROJECT, username="olga", role="boss"
            )
        with pytest.raises(accounts.RegistryError, match="no project 'P404'"):
            projects.grant_dataset(
                s,
                actor=people.steward,
                policies=policies,
                code="P404",
                dataset_name="linked/journeys",
            )
        projects.grant_dataset(
            s, actor=people.steward, policies=policies, code=PROJECT, dataset_name="linked/journeys"
        )
        with pytest.raises(accounts.RegistryError, match="already has a grant"):
            projects.grant_dataset(
                s,
                actor=people.steward,
                policies=policies,
                code=PROJECT,
                dataset_name="linked/journeys",
            )
        with pytest.raises(AccessDenied, match="may not project.grant"):
            projects.grant_dataset(
                s,
                actor=people.researcher,
                policies=policies,
                code=PROJECT,
                dataset_name="linked/persons",
            )


@given(rho=st.floats(allow_nan=True, allow_infinity=True) | st.integers())
@settings(max_examples=300, deadline=None)
def test_every_budget_accepted_is_a_finite_rho_the_ledger_can_hold(policies, rho) -> None:
    floor, ceiling = (
        policies.privacy_budget.min_project_rho,
        policies.privacy_budget.max_project_rho,
    )
    if math.isfinite(rho) and floor <= rho <= ceiling:
        accepted = projects.validate_project_budget(rho, policies.privacy_budget)
        assert accepted == rho and 0 < to_nano(accepted) <= to_nano(ceiling)
    else:
        with pytest.raises(projects.ProjectBudgetError, match=f"from {floor:g} to {ceiling:g}"):
            projects.validate_project_budget(rho, policies.privacy_budget)


@pytest.mark.parametrize("rho", [10**400, -(10**400), 2**1100], ids=["1e400", "-1e400", "2^1100"])
def test_a_budget_beyond_any_float_is_refused_not_overflowed(policies, rho) -> None:
    # Review of issue 15: validate_project_budget(10**400) raised OverflowError.
    floor, ceiling = (
        policies.privacy_budget.min_project_rho,
        policies.privacy_budget.max_project_rho,
    )
    with pytest.raises(projects.ProjectBudgetError, match=f"from {floor:g} to {ceiling:g}"):
        projects.validate_project_budget(rho, policies.privacy_budget)


@pytest.mark.parametrize(
    "rho", [np.float64(0.5), np.float32(0.5), np.int64(1), Fraction(1, 2)], ids=repr
)
def test_any_real_number_is_a_budget_a_flag_never(policies, rho) -> None:
    accepted = projects.validate_project_budget(rho, policies.privacy_budget)
    assert accepted == float(rho) and type(accepted) is float
    with pytest.raises(projects.ProjectBudgetError, match="given as a number, not bool"):
        projects.validate_project_budget(np.bool_(True), policies.privacy_budget)

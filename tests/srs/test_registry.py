"""The registry: migrations, accounts and projects, with clear refusals for bad input."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import inspect, select

from registry_fixtures import PROJECT, TODAY, populate
from srs.access import AccessDenied
from srs.registry import DatabaseError, Registry, accounts, open_registry, projects
from srs.registry.database import create_registry_engine, upgrade_schema
from srs.registry.models import AuditEvent


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
        ({"privacy_budget_rho": 0.0}, "positive zCDP rho"),
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


def test_project_budget_defaults_to_policy(registry, policies) -> None:
    populate(registry, policies)
    with registry.sessions() as s:
        project = projects.get_project(s, PROJECT)
    assert project.privacy_budget_rho == policies.privacy_budget.default_project_rho


def test_membership_and_grant_errors(registry, policies) -> None:
    people = populate(registry, policies)
    with registry.sessions() as s:
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

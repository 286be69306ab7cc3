"""Small, explicit registry fixtures shared by the srs tests: people, a project, a dataset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from srs.governance.policy import PolicySet
from srs.governance.registry import Registry, accounts, projects

TODAY = date(2026, 11, 22)
PROJECT = "P001"


@dataclass(frozen=True)
class Population:
    """Who the standard fixture registered (usernames)."""

    admin: str = "admin"
    steward: str = "steward"
    researcher: str = "ana"
    expired: str = "ben"
    outsider: str = "olga"
    checker: str = "cho"
    student: str = "stu"


def populate(registry: Registry, policies: PolicySet) -> Population:
    """An admin, a steward, an accredited researcher, one with lapsed accreditation, one in no
    project, a checker and a student; project P001 (confidential, live) with ana and ben."""
    people = Population()
    with registry.sessions() as s:
        accounts.bootstrap_admin(s, username=people.admin, full_name="Admin")
        add = lambda username, roles, expiry=TODAY + timedelta(days=365), number=None: (  # noqa: E731
            accounts.add_researcher(
                s,
                actor=people.admin,
                policies=policies,
                username=username,
                full_name=username.title(),
                roles=roles,
                accreditation_number=number or f"AR-{username}",
                accreditation_expiry=expiry,
                training_date=TODAY - timedelta(days=30),
                today=TODAY,
            )
        )
        add(people.steward, ["steward"])
        add(people.researcher, ["researcher"])
        add(people.expired, ["researcher"], TODAY - timedelta(days=1))
        add(people.outsider, ["researcher"])
        add(people.checker, ["checker"])
        add(people.student, ["student"])
        projects.create_project(
            s,
            actor=people.admin,
            policies=policies,
            code=PROJECT,
            title="Attrition",
            purpose="Study victim attrition",
            legal_basis="DEA 2017 s.64",
            start_date=TODAY - timedelta(days=30),
            end_date=TODAY + timedelta(days=300),
            approved_classification="confidential",
        )
        for member in (people.researcher, people.expired):
            projects.add_member(
                s, actor=people.admin, policies=policies, code=PROJECT, username=member
            )
    return people

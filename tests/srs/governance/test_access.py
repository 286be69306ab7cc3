"""Access decisions: least privilege, every refusal has a reason, every decision is audited."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from agreement_fixtures import RESEARCH_LINEAGE, admit_to_agreements, register_standard_agreements
from sqlalchemy import select, update

from registry_fixtures import PROJECT, TODAY, populate
from srs.governance.access import AccessDenied, authorise
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry import Registry, projects
from srs.governance.registry.models import AuditEvent, Project
from srs.vault.crypto import generate_master_key, write_key_file
from srs.vault.store import Vault


@pytest.fixture
def people(registry: Registry, policies: PolicySet, deployment: Deployment):
    """The standard people; linked/journeys stored under DSA-POLICE, which P001 names."""
    population = populate(registry, policies)
    write_key_file(deployment.key_file, generate_master_key())
    with registry.sessions() as s:
        register_standard_agreements(s, policies, population.admin)
        admit_to_agreements(s, policies, admin=population.admin, code=PROJECT)
        Vault(deployment, policies).store(
            s,
            "linked/journeys",
            pd.DataFrame({"person_key": ["p1"]}),
            actor=population.steward,
            lineage=RESEARCH_LINEAGE,
        )
    return population


def read(registry, policies, username, dataset="linked/journeys", project=PROJECT, today=TODAY):
    with registry.sessions() as s:
        decision = authorise(
            s,
            username=username,
            action="dataset.read",
            policies=policies,
            project_code=project,
            dataset_name=dataset,
            today=today,
        )
        s.commit()
        return decision


def grant(registry, policies, people, dataset="linked/journeys"):
    with registry.sessions() as s:
        projects.grant_dataset(
            s, actor=people.steward, policies=policies, code=PROJECT, dataset_name=dataset
        )


def last_event(registry) -> AuditEvent:
    with registry.sessions() as s:
        return s.execute(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one()


def assert_denied(registry, policies, username, match, **kwargs):
    with pytest.raises(AccessDenied, match=match) as caught:
        read(registry, policies, username, **kwargs)
    event = last_event(registry)
    assert event.outcome == "deny"
    assert event.actor == username
    assert event.reason == caught.value.reason
    return event


def test_granted_member_may_read_and_the_allow_is_audited(registry, policies, people):
    grant(registry, policies, people)
    decision = read(registry, policies, people.researcher)
    assert decision.allowed
    event = last_event(registry)
    assert (event.action, event.outcome, event.target) == (
        "access.dataset.read",
        "allow",
        "linked/journeys",
    )


def test_missing_grant_is_denied_and_audited(registry, policies, people):
    event = assert_denied(registry, policies, people.researcher, "has no grant for linked/journeys")
    assert event.target == "linked/journeys"


def test_expired_accreditation_is_denied_and_audited(registry, policies, people):
    grant(registry, policies, people)
    assert_denied(registry, policies, people.expired, "accreditation .*expired on 2026-11-21")


def test_ended_project_is_denied_and_audited(registry, policies, people):
    grant(registry, policies, people)
    with registry.sessions() as s:
        s.execute(update(Project).values(end_date=TODAY - timedelta(days=1)))
        s.commit()
    assert_denied(registry, policies, people.researcher, "project P001 ended on 2026-11-21")


def test_project_not_yet_started_is_denied(registry, policies, people):
    grant(registry, policies, people)
    assert_denied(
        registry, policies, people.researcher, "starts on", today=TODAY - timedelta(days=31)
    )


def test_wrong_classification_is_denied_and_audited(registry, policies, people):
    # The grant itself is refused for a dataset above the project's approval...
    with registry.sessions() as s, pytest.raises(AccessDenied, match="highly_confidential"):
        projects.grant_dataset(
            s,
            actor=people.steward,
            policies=policies,
            code=PROJECT,
            dataset_name="identifiable/victims",
        )
    # ...and a read is refused on classification even before looking for a grant.
    assert_denied(
        registry,
        policies,
        people.researcher,
        "classified highly_confidential; project P001 is approved for data up to confidential",
        dataset="identifiable/victims",
    )


def test_non_member_is_denied(registry, policies, people):
    grant(registry, policies, people)
    assert_denied(registry, policies, people.outsider, "not a member of project P001")


def test_unknown_account_and_unknown_project_are_denied(registry, policies, people):
    assert_denied(registry, policies, "nobody", "no account named 'nobody'")
    assert_denied(registry, policies, people.researcher, "no project 'P999'", project="P999")


def test_locked_account_is_denied(registry, policies, people):
    grant(registry, policies, people)
    from srs.governance.registry import accounts

    with registry.sessions() as s:
        accounts.set_locked(
            s,
            actor=people.admin,
            policies=policies,
            username=people.researcher,
            locked=True,
            reason="left the organisation",
        )
    assert_denied(registry, policies, people.researcher, "locked .*left the organisation")


def test_role_without_the_action_is_denied(registry, policies, people):
    grant(registry, policies, people)
    assert_denied(registry, policies, people.checker, r"cho \(checker\) may not dataset.read")
    assert_denied(registry, policies, people.steward, "may not dataset.read")


def test_lapsed_training_is_denied(registry, policies, people):
    grant(registry, policies, people)
    later = TODAY + timedelta(days=policies.access.training_validity_days)
    with registry.sessions() as s:
        from srs.governance.registry.models import Researcher

        s.execute(update(Researcher).values(accreditation_expiry=later + timedelta(days=10)))
        s.execute(update(Project).values(end_date=later + timedelta(days=10)))
        s.commit()
    assert_denied(registry, policies, people.researcher, "training .* lapsed", today=later)


def test_revoked_grant_is_denied(registry, policies, people):
    grant(registry, policies, people)
    from srs.governance.registry.models import Grant, utc_now

    with registry.sessions() as s:
        s.execute(update(Grant).values(revoked_at=utc_now()))
        s.commit()
    assert_denied(registry, policies, people.researcher, "has no grant")


def test_student_reads_only_public_data(registry, policies: PolicySet, people):
    with registry.sessions() as s:
        assert authorise(
            s,
            username=people.student,
            action="synthetic.read",
            policies=policies,
            dataset_name="synthetic/journeys",
        ).allowed
        s.commit()
    public_names = [p for p, level in policies.classification.datasets.items() if level == "public"]
    assert public_names, "the shipped classification policy should mark synthetic data public"
    with registry.sessions() as s, pytest.raises(AccessDenied, match="not public"):
        authorise(
            s,
            username=people.student,
            action="synthetic.read",
            policies=policies,
            dataset_name="linked/journeys",
        )
    with registry.sessions() as s, pytest.raises(AccessDenied, match="may not dataset.read"):
        authorise(
            s,
            username=people.student,
            action="dataset.read",
            policies=policies,
            project_code=PROJECT,
            dataset_name="synthetic/journeys",
        )

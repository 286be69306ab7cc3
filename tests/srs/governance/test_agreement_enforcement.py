"""Agreements enforced on use: a grant or a read of a dataset delivered under agreements is
refused, and audited with its reason, unless every agreement behind it is in force, permits the
project's purpose and legal basis, and is named by the project."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from agreement_fixtures import register_standard_agreements
from sqlalchemy import select

from registry_fixtures import PROJECT, TODAY, populate
from srs.governance.access import AccessDenied, decide
from srs.governance.agreements import (
    amend_agreement,
    current_version,
    get_agreement,
    parse_terms,
)
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry import Registry, projects
from srs.governance.registry.accounts import RegistryError
from srs.governance.registry.models import AuditEvent, Dataset, Grant, Project, Researcher
from srs.pipeline.ingest import known_sources
from srs.vault.crypto import generate_master_key, write_key_file
from srs.vault.store import Vault

STUDY = "P-ARREST"
DATASET = "linked/arrest_charges"
LEGAL_BASIS = "Digital Economy Act 2017 s.64 (research)"
LINEAGE = {
    "sources": ["police_arrests", "cps_charging"],
    "agreements": {"police_arrests": "DSA-POLICE", "cps_charging": "DSA-CPS"},
    "deliveries": [],
}


@pytest.fixture
def lab(registry: Registry, policies: PolicySet, deployment: Deployment):
    """The standard people and agreements; project P-ARREST (research, under the DEA, naming
    DSA-POLICE and DSA-CPS, ana a member); a dataset delivered under both agreements."""
    people = populate(registry, policies)
    write_key_file(deployment.key_file, generate_master_key())
    vault = Vault(deployment, policies)
    with registry.sessions() as s:
        register_standard_agreements(s, policies, people.steward)
        projects.create_project(
            s,
            actor=people.admin,
            policies=policies,
            code=STUDY,
            title="Arrest to charge",
            purpose="How arrests become charges",
            legal_basis=LEGAL_BASIS,
            start_date=TODAY.replace(year=2026, month=1, day=1),
            end_date=TODAY.replace(year=2027),
            approved_classification="confidential",
            agreements=["DSA-POLICE", "DSA-CPS"],
        )
        projects.add_member(
            s, actor=people.admin, policies=policies, code=STUDY, username=people.researcher
        )
        vault.store(s, DATASET, frame(), actor=people.steward, lineage=LINEAGE)
    return people, vault


def frame() -> pd.DataFrame:
    return pd.DataFrame({"person_key": ["p1", "p2"], "charged": [True, False]})


def grant(registry, policies, people, code=STUDY, dataset=DATASET):
    with registry.sessions() as s:
        return projects.grant_dataset(
            s, actor=people.steward, policies=policies, code=code, dataset_name=dataset
        )


def read(registry, vault, people, today=TODAY):
    with registry.sessions() as s:
        return vault.read(s, DATASET, actor=people.researcher, project=STUDY, today=today)


def amend(registry, policies, people, reference, change, note="Amended"):
    path = policies.source_dir / "agreements" / f"{reference.lower()}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    with registry.sessions() as s:
        amend_agreement(
            s,
            actor=people.steward,
            policies=policies,
            reference=reference,
            terms=parse_terms(data),
            change_note=note,
            known_sources=known_sources(policies.source_dir),
        )


def last_deny(registry) -> AuditEvent:
    with registry.sessions() as s:
        return s.execute(
            select(AuditEvent)
            .where(AuditEvent.outcome == "deny")
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        ).scalar_one()


def refused_grant(registry, policies, people, match, code=STUDY, dataset=DATASET):
    with pytest.raises(AccessDenied, match=match) as caught:
        grant(registry, policies, people, code=code, dataset=dataset)
    event = last_deny(registry)
    assert (event.action, event.actor, event.target) == (
        "access.project.grant",
        people.steward,
        dataset,
    )
    assert event.reason == caught.value.reason
    with registry.sessions() as s:
        project = projects.get_project(s, code)
        assert [g.dataset_name for g in project.grants if g.revoked_at is None] == []
    return event


def test_a_grant_is_allowed_when_every_agreement_permits_the_use(registry, policies, lab):
    people, vault = lab
    grant(registry, policies, people)
    pd.testing.assert_frame_equal(read(registry, vault, people), frame())


def test_a_grant_is_refused_when_one_of_two_agreements_does_not_permit_the_purpose(
    registry, policies, lab
):
    people, _ = lab
    amend(
        registry,
        policies,
        people,
        "DSA-CPS",
        lambda d: d["use_of_information"].update(permitted_purposes=["official_statistics"]),
    )
    event = refused_grant(registry, policies, people, "purpose category 'research' is not a use")
    assert "agreement DSA-CPS (version 2)" in event.reason
    assert "cps_charging" in event.reason


def test_a_grant_is_refused_when_one_agreement_does_not_permit_the_legal_basis(
    registry, policies, lab
):
    people, _ = lab
    amend(
        registry,
        policies,
        people,
        "DSA-POLICE",
        lambda d: d["use_of_information"].update(
            permitted_legal_bases=["Statistics and Registration Service Act 2007 s.45"]
        ),
    )
    event = refused_grant(registry, policies, people, "legal basis .* is not one")
    assert "DSA-POLICE" in event.reason and "police_arrests" in event.reason


def test_a_project_of_another_purpose_is_refused(registry, policies, lab):
    people, _ = lab
    with registry.sessions() as s:
        project = projects.get_project(s, STUDY)
        project.purpose_category = "evaluation"
        s.commit()
    refused_grant(registry, policies, people, "'evaluation' is not a use agreement DSA-POLICE")


def test_a_grant_is_refused_when_the_project_does_not_name_an_agreement_behind_it(
    registry, policies, lab
):
    people, _ = lab
    with registry.sessions() as s:
        projects.create_project(
            s,
            actor=people.admin,
            policies=policies,
            code="P-POLICE",
            title="Arrests only",
            purpose="Arrests",
            legal_basis=LEGAL_BASIS,
            start_date=TODAY.replace(month=1, day=1),
            end_date=TODAY.replace(year=2027),
            approved_classification="confidential",
            agreements=["DSA-POLICE"],
        )
    event = refused_grant(
        registry, policies, people, "does not name agreement DSA-CPS", code="P-POLICE"
    )
    assert "srs project agreement add P-POLICE DSA-CPS" in event.reason
    with registry.sessions() as s:
        projects.name_agreement(
            s, actor=people.admin, policies=policies, code="P-POLICE", reference="DSA-CPS"
        )
    grant(registry, policies, people, code="P-POLICE")


def test_a_read_is_refused_once_an_agreement_behind_it_has_ended(registry, policies, lab):
    people, vault = lab
    grant(registry, policies, people)
    with registry.sessions() as s:
        agreement = get_agreement(s, "DSA-CPS")
        agreement.status = "ended"
        agreement.ended_by = people.steward
        agreement.end_reason = "the provider withdrew consent"
        s.commit()
    with pytest.raises(AccessDenied, match="DSA-CPS .* is not in force: ended") as caught:
        read(registry, vault, people)
    event = last_deny(registry)
    assert (event.action, event.actor, event.reason) == (
        "access.dataset.read",
        people.researcher,
        caught.value.reason,
    )
    assert "the provider withdrew consent" in event.reason
    assert "may no longer be used" in event.reason


def test_a_read_is_refused_once_an_agreement_behind_it_has_expired(registry, policies, lab):
    people, vault = lab
    grant(registry, policies, people)
    read(registry, vault, people)
    amend(
        registry,
        policies,
        people,
        "DSA-POLICE",
        lambda d: d["duration"].update(end=TODAY.replace(month=10, day=31)),
        note="Ended early by both parties",
    )
    with pytest.raises(AccessDenied, match="DSA-POLICE .* expired on 2026-10-31"):
        read(registry, vault, people)


def test_a_lineage_naming_no_recorded_agreement_is_refused(registry, policies, lab):
    people, vault = lab
    with registry.sessions() as s:
        vault.store(
            s,
            "linked/victim_support",
            frame(),
            actor=people.steward,
            lineage={"sources": ["victims"], "agreements": {"victims": "DSA-FORGED"}},
        )
    refused_grant(
        registry,
        policies,
        people,
        "no data-sharing agreement is recorded for source victims",
        dataset="linked/victim_support",
    )


def test_decide_judges_the_agreements_it_is_given_without_a_database(registry, policies, lab):
    people, _ = lab
    with registry.sessions() as s:
        person = s.execute(select(Researcher).where(Researcher.username == people.researcher))
        person = person.scalar_one()
        project = projects.get_project(s, STUDY)
        project.grants.append(Grant(dataset_name=DATASET, granted_by=people.steward))
        police = get_agreement(s, "DSA-POLICE")
        facts = {
            "person": person,
            "username": people.researcher,
            "action": "dataset.read",
            "policies": policies,
            "today": TODAY,
            "project": project,
            "project_code": STUDY,
            "dataset_name": DATASET,
            "stored_lineage": LINEAGE,
        }
        assert decide(**facts).allowed
        behind = [("police_arrests", current_version(police), police)]
        assert decide(**facts, agreements_behind=behind).allowed
        unsourced = decide(**{**facts, "stored_lineage": {"derived_from": []}})
        assert not unsourced.allowed and "stored without lineage" in unsourced.reason
        nothing = decide(
            **{
                **facts,
                "person": steward_of(s, people),
                "action": "project.grant",
                "stored_lineage": None,
            }
        )
        assert not nothing.allowed and "nothing stored yet" in nothing.reason
        police.status, police.end_reason = "ended", "withdrawn"
        ended = decide(**facts, agreements_behind=behind)
        assert not ended.allowed and "because withdrawn" in ended.reason
        synthesis = decide(
            **{**facts, "person": steward_of(s, people), "action": "synthetic.build"},
            agreements_behind=behind,
        )
        assert not synthesis.allowed and "may not be synthesised" in synthesis.reason
        s.rollback()


def steward_of(s, people) -> Researcher:
    return s.execute(select(Researcher).where(Researcher.username == people.steward)).scalar_one()


def strip_lineage(registry, name=DATASET, lineage=None) -> None:
    """A careless steward's (or an attacker's) edit of the registry row: the lineage emptied."""
    with registry.sessions() as s:
        row = s.execute(select(Dataset).where(Dataset.name == name)).scalars().all()[-1]
        row.lineage = {} if lineage is None else lineage
        s.commit()


@pytest.mark.parametrize(
    "lineage", [{}, {"sources": []}, {"derived_from": ["linked/arrest_charges@1"]}]
)
def test_a_version_whose_lineage_was_emptied_is_never_granted_nor_read(
    registry, policies, lab, lineage
):
    # Review of issue 18 (H1): a linked/ version with no sources was judged without any
    # agreement, so a project naming none, of a basis none permits, was granted it and read it.
    people, vault = lab
    strip_lineage(registry, lineage=lineage)
    event = refused_grant(registry, policies, people, "stored without lineage: linked/arrest")
    assert "srs linked build" in event.reason
    with registry.sessions() as s:
        project = projects.get_project(s, STUDY)
        project.grants.append(Grant(dataset_name=DATASET, granted_by=people.steward))
        s.commit()
    with pytest.raises(AccessDenied, match="stored without lineage"):
        read(registry, vault, people)
    assert last_deny(registry).action == "access.dataset.read"
    with registry.sessions() as s, pytest.raises(AccessDenied, match="stored without lineage"):
        vault.read_for_synthesis(s, DATASET, actor=people.steward)


def test_a_grant_of_a_data_area_name_with_nothing_stored_is_refused(registry, policies, lab):
    # Review of issue 18 (L5): with nothing stored there were no agreements to judge.
    people, _ = lab
    refused_grant(
        registry,
        policies,
        people,
        "linked/not_built: nothing stored yet; grant once `srs linked build` has stored it",
        dataset="linked/not_built",
    )


def test_a_dataset_outside_the_data_areas_is_judged_without_agreements(registry, policies, lab):
    people, vault = lab
    with registry.sessions() as s:
        vault.store(
            s, "reference/court_codes", frame(), actor=people.steward, classification="confidential"
        )
    # P001 names no agreement and its legal basis is none an agreement permits.
    grant(registry, policies, people, code=PROJECT, dataset="reference/court_codes")


def test_the_agreements_of_the_versions_a_dataset_was_derived_from_are_judged(
    registry, policies, lab
):
    # Review of issue 18 (M1): linked/key_changes named only the register it came from, so no
    # agreement behind the register was checked.
    people, vault = lab
    with registry.sessions() as s:
        victims = vault.store(
            s,
            "linked/victim_support",
            frame(),
            actor=people.steward,
            lineage={"sources": ["victims"], "agreements": {"victims": "DSA-VICTIMS"}},
        )
        vault.store(
            s,
            "linked/derived",
            frame(),
            actor=people.steward,
            lineage={**LINEAGE, "derived_from": [f"linked/victim_support@{victims.version}"]},
        )
    # P-ARREST names DSA-POLICE and DSA-CPS, not DSA-VICTIMS behind the version it derives from.
    refused_grant(
        registry, policies, people, "does not name agreement DSA-VICTIMS", dataset="linked/derived"
    )
    with registry.sessions() as s:
        projects.name_agreement(
            s, actor=people.admin, policies=policies, code=STUDY, reference="DSA-VICTIMS"
        )
    grant(registry, policies, people, dataset="linked/derived")


@pytest.mark.parametrize(
    ("derived_from", "match"),
    [
        (["linked/arrest_charges@1", "linked/arrest_charges@1"], None),
        (["linked/arrest_charges@2"], None),  # itself: a hand-edited cycle
        (["linked/nothing@1"], "no data-sharing agreement is recorded for source .unknown version"),
        (["not a reference"], "unknown version"),
    ],
)
def test_derived_from_is_followed_once_and_an_unknown_parent_fails_closed(
    registry, policies, lab, derived_from, match
):
    people, vault = lab
    with registry.sessions() as s:
        vault.store(
            s,
            DATASET,
            frame(),
            actor=people.steward,
            lineage={**LINEAGE, "derived_from": derived_from},
        )
    if match is None:
        grant(registry, policies, people)
    else:
        refused_grant(registry, policies, people, match)


def test_a_replica_is_built_only_from_data_under_agreements_in_force(registry, policies, lab):
    # Review of issue 18 (H3): synthetic.build did not look at agreements, so replicas were
    # built from the data of an expired agreement.
    people, vault = lab
    with registry.sessions() as s:
        assert len(vault.read_for_synthesis(s, DATASET, actor=people.steward)) == 2
    amend(
        registry,
        policies,
        people,
        "DSA-CPS",
        lambda d: d["duration"].update(end=TODAY.replace(month=10, day=31)),
        note="Ended early by both parties",
    )
    with registry.sessions() as s, pytest.raises(AccessDenied, match="may not be synthesised"):
        vault.read_for_synthesis(s, DATASET, actor=people.steward)
    event = last_deny(registry)
    assert (event.action, event.target) == ("access.synthetic.build", DATASET)
    assert "DSA-CPS" in event.reason and "expired on 2026-10-31" in event.reason


def test_projects_name_agreements_and_the_naming_is_audited(registry, policies, lab):
    people, _ = lab
    with registry.sessions() as s:
        project = projects.get_project(s, STUDY)
        assert sorted(a.agreement.reference for a in project.agreements) == [
            "DSA-CPS",
            "DSA-POLICE",
        ]
        assert project.purpose_category == "research"
        created = s.execute(
            select(AuditEvent).where(
                AuditEvent.action == "project.create", AuditEvent.target == STUDY
            )
        ).scalar_one()
        assert json.loads(created.details)["agreements"] == ["DSA-POLICE", "DSA-CPS"]
        projects.name_agreement(
            s, actor=people.admin, policies=policies, code=PROJECT, reference="DSA-VICTIMS"
        )
        named = s.execute(
            select(AuditEvent).where(AuditEvent.action == "project.name_agreement")
        ).scalar_one()
        assert (named.actor, named.target) == (people.admin, PROJECT)


@pytest.mark.parametrize(
    ("reference", "match"),
    [("DSA-NONE", "no data-sharing agreement 'DSA-NONE'"), ("DSA-POLICE", "already names")],
)
def test_naming_an_unknown_or_named_agreement_is_refused(registry, policies, lab, reference, match):
    people, _ = lab
    with registry.sessions() as s, pytest.raises(RegistryError, match=match):
        projects.name_agreement(
            s, actor=people.admin, policies=policies, code=STUDY, reference=reference
        )


def test_only_an_administrator_names_agreements(registry, policies, lab):
    people, _ = lab
    with registry.sessions() as s, pytest.raises(AccessDenied, match="may not project.manage"):
        projects.name_agreement(
            s, actor=people.researcher, policies=policies, code=STUDY, reference="DSA-VICTIMS"
        )


def test_an_ended_agreement_cannot_be_named(registry, policies, lab):
    people, _ = lab
    with registry.sessions() as s:
        get_agreement(s, "DSA-VICTIMS").status = "ended"
        s.commit()
        with pytest.raises(RegistryError, match="has ended"):
            projects.name_agreement(
                s, actor=people.admin, policies=policies, code=PROJECT, reference="DSA-VICTIMS"
            )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"agreements": ["DSA-NONE"]}, "no data-sharing agreement 'DSA-NONE'"),
        ({"purpose_category": "Research!"}, "purpose category 'Research!' is not valid"),
        ({"purpose_category": "research\n"}, "is not valid"),
    ],
)
def test_create_project_refuses_unknown_agreements_and_bad_categories(
    registry, policies, lab, kwargs, match
):
    people, _ = lab
    with registry.sessions() as s:
        with pytest.raises(RegistryError, match=match):
            projects.create_project(
                s,
                actor=people.admin,
                policies=policies,
                code="P-BAD",
                title="Bad",
                purpose="Bad",
                legal_basis=LEGAL_BASIS,
                start_date=TODAY,
                end_date=TODAY,
                approved_classification="confidential",
                **kwargs,
            )
        assert s.execute(select(Project).where(Project.code == "P-BAD")).first() is None

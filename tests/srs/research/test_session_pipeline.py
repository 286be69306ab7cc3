"""The researcher session on the linked datasets the pipeline builds: a project's grants, its
tables and DP queries on real linked/journeys, and no reach into another project's data."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from agreement_fixtures import PERMITTED_BASIS
from sqlalchemy import select

import srs
from srs.governance.access import AccessDenied
from srs.governance.agreement_terms import standard_agreements
from srs.governance.registry import accounts, projects
from srs.governance.registry.models import AuditEvent, Output, Project

PROJECT = "PSESSION"
OTHER = "PSESSION-VICTIMS"


@pytest.fixture(scope="module")
def projects_on_the_pipeline(pipeline, policies):
    """ana's project holds linked/journeys and linked/persons; linked/victims is another's."""
    today = date.today()
    with pipeline.registry.sessions() as s:
        accounts.add_researcher(
            s,
            actor="admin",
            policies=policies,
            username="vic",
            full_name="Vic",
            roles=["researcher"],
            accreditation_number="AR-vic",
            training_date=today - timedelta(days=1),
        )
        for code, member, granted in (
            (PROJECT, "ana", ("linked/journeys", "linked/persons")),
            (OTHER, "vic", ("linked/victims",)),
        ):
            projects.create_project(
                s,
                actor="admin",
                policies=policies,
                code=code,
                title=code,
                purpose="Session tests",
                legal_basis=PERMITTED_BASIS,
                start_date=today - timedelta(days=1),
                end_date=today + timedelta(days=30),
                approved_classification="confidential",
                agreements=sorted(standard_agreements(policies.source_dir)),
            )
            projects.add_member(s, actor="admin", policies=policies, code=code, username=member)
            for name in granted:
                projects.grant_dataset(
                    s, actor="steward", policies=policies, code=code, dataset_name=name
                )
    return pipeline


@pytest.fixture
def s(projects_on_the_pipeline, monkeypatch):
    monkeypatch.delenv("SRS_DATABASE_URL", raising=False)
    monkeypatch.delenv("SRS_MASTER_KEY", raising=False)
    home = projects_on_the_pipeline.deployment.home
    with srs.session(user="ana", project=PROJECT, home=home) as session:
        yield session


def test_a_researcher_works_on_the_linked_journeys(s, pipeline) -> None:
    assert s.datasets() == ["linked/journeys", "linked/persons"]
    journeys = s.dataset("linked/journeys")
    assert len(journeys) == len(pipeline.linked.tables["linked/journeys"])
    table = s.crosstab(journeys, "sentence_type", "sex", name="Sentences by sex")
    assert list(table.columns) == ["F", "M", "Total"]
    assert set(journeys["sentence_type"].dropna()) <= set(table.index)
    # Sentences of the DP query are the dictionary's public keys: all five, and no delta spent.
    dp_table = s.dp.count("linked/journeys", by=["sentence_type"], rho=0.01, name="DP sentences")
    assert list(dp_table["sentence_type"]) == [
        "community",
        "custody",
        "discharge",
        "fine",
        "suspended",
    ]
    assert s.dp.budget().key_release_delta_spent == 0
    with pipeline.registry.sessions() as db:
        files = [
            f
            for o in db.execute(
                select(Output)
                .join(Project, Project.id == Output.project_id)
                .where(Output.author == "ana", Project.code == PROJECT)
            ).scalars()
            for f in o.files
            if f.name.endswith(".csv")
        ]
        assert len(files) == 2
        for f in files:
            header = f.content.decode().splitlines()[0]
            assert "person_key" not in header and "case_key" not in header


def test_another_projects_dataset_is_out_of_reach(s, pipeline) -> None:
    with pytest.raises(AccessDenied, match=f"project {PROJECT} has no grant for linked/victims"):
        s.dataset("linked/victims")
    with pytest.raises(AccessDenied, match=f"ana is not a member of project {OTHER}"):
        srs.session(user="ana", project=OTHER, home=pipeline.deployment.home)
    with pipeline.registry.sessions() as db:
        refused = db.execute(
            select(AuditEvent.action, AuditEvent.target).where(
                AuditEvent.actor == "ana", AuditEvent.outcome == "deny"
            )
        ).all()
    assert ("access.dataset.read", "linked/victims") in refused
    assert ("access.output.create", OTHER) in refused

"""A small deployment for the researcher-session tests, local (``tests/srs/research/test_session.py``) and
through the environment API (``tests/hub``): the standard people, ``linked/journeys`` granted to
P001 and ``linked/victims`` only to P002 (olga's project), both in the vault."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from agreement_fixtures import (
    PERMITTED_BASIS,
    admit_to_agreements,
    register_standard_agreements,
    research_lineage,
)
from sqlalchemy import select
from sqlalchemy.orm import selectinload

import srs
from registry_fixtures import PROJECT, Population, populate
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry import Registry, open_registry, projects
from srs.governance.registry.models import Output
from srs.research.session import ResearchSession
from srs.vault.crypto import generate_master_key, write_key_file
from srs.vault.store import Vault

OTHER_PROJECT = "P002"
DICTIONARY = [
    {"name": "person_key", "type": "string"},
    {"name": "sex", "type": "string", "values": ["F", "M"]},
    {"name": "court", "type": "string", "values": ["crown", "magistrates", "youth"]},
]


def journeys(rows: int = 600, seed: int = 5) -> pd.DataFrame:
    """Cases of 300 people; four cases in a youth court (too few to show) by people aged 15-17."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "person_key": [f"p{i:03d}" for i in rng.integers(0, 300, rows)],
            "sex": rng.choice(["F", "M"], rows),
            "court": rng.choice(["crown", "magistrates"], rows),
            "age": rng.integers(18, 70, rows),
            "sentence_months": rng.uniform(0, 60, rows).round(1),
            "days": rng.integers(1, 365, rows),
            "reoffended": rng.random(rows) < 0.3,
        }
    )
    frame.loc[:3, "court"] = "youth"
    frame.loc[:3, "age"] = [15, 16, 17, 16]
    return frame


def prepare(registry: Registry, deployment: Deployment, policies: PolicySet) -> Population:
    """The standard people; linked/journeys granted to P001, linked/victims only to P002 (olga's)."""
    people = populate(registry, policies)
    write_key_file(deployment.key_file, generate_master_key())
    vault = Vault(deployment, policies)
    today = datetime.now(UTC).date()
    with registry.sessions() as s:
        # The shipped agreements, named by both projects (with the basis they permit).
        agreements = register_standard_agreements(s, policies, people.admin)
        admit_to_agreements(s, policies, admin=people.admin, code=PROJECT)
        vault.store(
            s,
            "linked/journeys",
            journeys(),
            actor=people.steward,
            data_dictionary=DICTIONARY,
            lineage=research_lineage(policies, ("police_arrests", "magistrates_cases")),
        )
        vault.store(
            s,
            "linked/victims",
            journeys(seed=9),
            actor=people.steward,
            lineage=research_lineage(policies, ("victims",)),
        )
        projects.grant_dataset(
            s, actor=people.steward, policies=policies, code=PROJECT, dataset_name="linked/journeys"
        )
        projects.create_project(
            s,
            actor=people.admin,
            policies=policies,
            code=OTHER_PROJECT,
            title="Victims",
            purpose="Victim journeys",
            legal_basis=PERMITTED_BASIS,
            start_date=today.replace(year=today.year - 1),
            end_date=today.replace(year=today.year + 1),
            approved_classification="confidential",
            agreements=sorted(agreements),
        )
        projects.add_member(
            s, actor=people.admin, policies=policies, code=OTHER_PROJECT, username=people.outsider
        )
        projects.grant_dataset(
            s,
            actor=people.steward,
            policies=policies,
            code=OTHER_PROJECT,
            dataset_name="linked/victims",
        )
    return people


def small_deployment(home: Path, policies: PolicySet) -> tuple[Deployment, Registry]:
    """A SQLite deployment in ``home`` prepared as above; dispose of the registry when done."""
    (home / "vault").mkdir(parents=True, mode=0o700)
    deployment = Deployment.at(home, database_url=f"sqlite:///{home / 'srs.db'}")
    registry = open_registry(deployment.database_url, migrate=True)
    prepare(registry, deployment, policies)
    return deployment, registry


@pytest.fixture
def lab(tmp_path, policies) -> Iterator[tuple[Deployment, Registry]]:
    """A small SQLite deployment with the standard people and two datasets."""
    deployment, registry = small_deployment(tmp_path / "home", policies)
    yield deployment, registry
    registry.dispose()


@pytest.fixture
def s(lab, policies) -> Iterator[ResearchSession]:
    """ana's session in P001 on ``lab``."""
    deployment, _ = lab
    with srs.session(user="ana", project=PROJECT, deployment=deployment, policies=policies) as ana:
        yield ana


def stored_output(registry: Registry, output_id: int) -> Output:
    """The output row ``output_id`` with its files, as the registry holds it."""
    with registry.sessions() as db:
        return db.execute(
            select(Output).options(selectinload(Output.files)).where(Output.id == output_id)
        ).scalar_one()

"""A real deployment on simulated data, shared by the srs and synthetic tests: one simulated
population ingested, linked and built into linked datasets in an encrypted vault (``pipeline``,
made once per test session in each folder that imports it), and a project that may read them.

Import the fixtures where they are used (``from pipeline_fixtures import pipeline, ...``), as
``tests/srs/conftest.py`` does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from agreement_fixtures import register_standard_agreements
from sqlalchemy.orm import Session

from srs.governance.agreements import create_agreement, standard_agreements
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet, load_policies
from srs.governance.registry import Registry, accounts, open_registry, projects
from srs.pipeline.ingest import known_sources
from srs.pipeline.linkage import LinkageResult, load_linkage_settings
from srs.pipeline.linked_datasets import LinkedDatasets
from srs.pipeline.offences import OffenceList, load_offences
from srs.pipeline.person_linkage import link_in_vault
from srs.pipeline.simulation import SOURCES, Simulation, simulate, write_simulation
from srs.pipeline.stewardship import PSEUDONYM_KEY, ingest_into_vault, publish_linked_datasets
from srs.vault.crypto import generate_master_key, write_key_file
from srs.vault.store import Vault

# A legal basis every shipped agreement permits (policies/agreements/*.yaml).
PERMITTED_LEGAL_BASIS = "Digital Economy Act 2017 s.64 (research)"
PIPELINE_PERSONS = 1500
PIPELINE_SEED = 11
# Who the pipeline registered: an admin, a steward and an accredited researcher.
ADMIN, STEWARD, RESEARCHER = "admin", "steward", "ana"


PIPELINE_PSEUDONYM_KEY = hashlib.sha256(b"srs-toolkit pipeline fixture").digest()


@dataclass
class Pipeline:
    """A deployment after simulate -> ingest -> link -> build."""

    simulation: Simulation
    paths: dict[str, Path]
    deployment: Deployment
    registry: Registry
    vault: Vault
    linkage: LinkageResult
    linked: LinkedDatasets


@pytest.fixture(scope="session")
def offences() -> OffenceList:
    return load_offences()


@pytest.fixture(scope="session")
def simulated(tmp_path_factory) -> tuple[Simulation, dict[str, Path]]:
    result = simulate(PIPELINE_PERSONS, PIPELINE_SEED)
    paths = write_simulation(result, tmp_path_factory.mktemp("simulation"))
    return result, paths


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, simulated, offences, policies: PolicySet) -> Pipeline:
    simulation, paths = simulated
    home = tmp_path_factory.mktemp("deployment")
    (home / "vault").mkdir(mode=0o700)
    deployment = Deployment.at(home, database_url=f"sqlite:///{home / 'srs.db'}")
    write_key_file(deployment.key_file, generate_master_key())
    registry = open_registry(deployment.database_url, migrate=True)
    vault = Vault(deployment, policies)
    with registry.sessions() as s:
        accounts.bootstrap_admin(s, username=ADMIN, full_name="Admin")
        accounts.add_researcher(
            s,
            actor=ADMIN,
            policies=policies,
            username=STEWARD,
            full_name="Steward",
            roles=["steward"],
        )
        accounts.add_researcher(
            s,
            actor=ADMIN,
            policies=policies,
            username=RESEARCHER,
            full_name="Ana",
            roles=["researcher"],
            accreditation_number="AR-1",
            training_date=date.today() - timedelta(days=1),
        )
        # A fixed pseudonymisation key, stored where the steward's first run would create a
        # random one: person keys, their order and all drawn from them (holdout splits,
        # replicas, gate figures) are then the same in every run, so no test passes or fails
        # by the luck of a key.
        vault.store(
            s,
            PSEUDONYM_KEY,
            pd.DataFrame({"key_hex": [PIPELINE_PSEUDONYM_KEY.hex()]}),
            actor=STEWARD,
        )
        register_standard_agreements(s, policies, STEWARD)
        for source in SOURCES:
            ingest_into_vault(
                s, vault, actor=STEWARD, source=source, path=paths[source], offences=offences
            )
        linkage = link_in_vault(
            s,
            vault,
            actor=STEWARD,
            settings=load_linkage_settings(),
            clerical_path=home / "steward" / "review.csv",
        )
        linked = publish_linked_datasets(s, vault, actor=STEWARD, offences=offences)
    return Pipeline(simulation, paths, deployment, registry, vault, linkage, linked)


def register_agreements(
    session: Session, policies: PolicySet, actor: str, start: date | None = None
) -> None:
    """Record the shipped data-sharing agreements as ``actor`` (a steward); with ``start``,
    each in force from that day instead (the simulated deliveries are of 2024's months)."""
    if start is None:
        register_standard_agreements(session, policies, actor)
        return
    sources = known_sources(policies.source_dir)
    for reference, terms in standard_agreements(policies.source_dir).items():
        duration = terms.duration.model_copy(update={"start": start})
        create_agreement(
            session,
            actor=actor,
            policies=policies,
            reference=reference,
            terms=terms.model_copy(update={"duration": duration}),
            known_sources=sources,
        )


def register_agreements_at(home: str | Path, actor: str, start: date | None = None) -> None:
    """Record the shipped data-sharing agreements in the deployment at ``home`` as ``actor``
    (a steward), as `srs agreement create` would: every ingest comes under one."""
    registry = open_registry(Deployment.from_env(Path(home)).database_url)
    try:
        with registry.sessions() as session:
            register_agreements(session, load_policies(), actor, start)
    finally:
        registry.dispose()


def open_project(
    pipeline: Pipeline,
    policies: PolicySet,
    *,
    code: str,
    datasets: Sequence[str],
    student: str,
    title: str = "Remand",
) -> Pipeline:
    """Make the pipeline's deployment ready for the CLI (its marker file) and add a student
    and a live project ``code``, with the researcher as a member and ``datasets`` granted."""
    pipeline.deployment.marker_file.write_text("srs-toolkit test deployment\n")
    today = date.today()
    with pipeline.registry.sessions() as s:
        accounts.add_researcher(
            s,
            actor=ADMIN,
            policies=policies,
            username=student,
            full_name=f"{student.title()} Student",
            roles=["student"],
        )
        projects.create_project(
            s,
            actor=ADMIN,
            policies=policies,
            code=code,
            title=title,
            purpose="p",
            legal_basis=PERMITTED_LEGAL_BASIS,
            start_date=today - timedelta(days=1),
            end_date=today + timedelta(days=30),
            approved_classification="confidential",
            # The linked datasets carry the agreements of their sources: the project names
            # every one, as a grant requires.
            agreements=sorted(standard_agreements(policies.source_dir)),
        )
        projects.add_member(s, actor=ADMIN, policies=policies, code=code, username=RESEARCHER)
        for dataset in datasets:
            projects.grant_dataset(
                s, actor=STEWARD, policies=policies, code=code, dataset_name=dataset
            )
    return pipeline

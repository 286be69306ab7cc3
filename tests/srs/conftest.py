"""Fixtures for the data-pipeline tests: one simulated population, and one deployment where it
has been ingested, linked and built into linked datasets (made once per test session)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from srs.deployment import Deployment
from srs.linkage import LinkageResult, load_linkage_settings
from srs.linked_datasets import LinkedDatasets
from srs.offences import OffenceList, load_offences
from srs.policy import PolicySet
from srs.registry import Registry, accounts, open_registry
from srs.simulation import SOURCES, Simulation, simulate, write_simulation
from srs.stewardship import ingest_into_vault, link_in_vault, publish_linked_datasets
from srs.vault import Vault
from srs.vault_crypto import generate_master_key, write_key_file

PIPELINE_PERSONS = 1500
PIPELINE_SEED = 11


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
        accounts.bootstrap_admin(s, username="admin", full_name="Admin")
        accounts.add_researcher(
            s,
            actor="admin",
            policies=policies,
            username="steward",
            full_name="Steward",
            roles=["steward"],
        )
        accounts.add_researcher(
            s,
            actor="admin",
            policies=policies,
            username="ana",
            full_name="Ana",
            roles=["researcher"],
            accreditation_number="AR-1",
            training_date=date.today() - timedelta(days=1),
        )
        for source in SOURCES:
            ingest_into_vault(
                s, vault, actor="steward", source=source, path=paths[source], offences=offences
            )
        linkage = link_in_vault(
            s,
            vault,
            actor="steward",
            settings=load_linkage_settings(),
            clerical_path=home / "steward" / "review.csv",
        )
        linked = publish_linked_datasets(s, vault, actor="steward", offences=offences)
    return Pipeline(simulation, paths, deployment, registry, vault, linkage, linked)

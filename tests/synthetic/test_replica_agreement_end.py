"""Synthetic replicas and the end of an agreement: each stored replica table records the linked
versions it was built from and their sources and agreements, so ending an agreement behind
them destroys the replica (nobody, a student included, reads it again) and the destruction
certificate lists it, says open-data exports already written cannot be recalled and names the
export folders the audit log records."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from agreement_fixtures import register_standard_agreements
from sqlalchemy import select

from registry_fixtures import populate
from srs.governance.agreements import standard_agreements
from srs.governance.registry.models import AuditEvent, Dataset
from srs.pipeline.agreement_end import EXPORTS_NOTE, end_agreement
from srs.pipeline.deid import Pseudonymiser
from srs.pipeline.ingest import ingest_file, load_dictionary
from srs.pipeline.offences import load_offences
from srs.pipeline.simulation import SOURCES, simulate, write_simulation
from srs.pipeline.stewardship import PERSON_LOOKUP, PSEUDONYM_KEY, publish_linked_datasets
from srs.vault.crypto import generate_master_key, write_key_file
from srs.vault.store import Vault, VaultShredded
from synthetic.vault_replicas import (
    LINKED_SET,
    build_replica_in_vault,
    export_open_data,
    read_replica,
    synthetic_name,
)

KEY = hashlib.sha256(b"replica agreement end tests").digest()
ENDED = "DSA-VICTIMS"


@pytest.fixture(scope="module")
def extracts(tmp_path_factory):
    simulation = simulate(300, 5)
    paths = write_simulation(simulation, tmp_path_factory.mktemp("replica-extracts"))
    offences = load_offences()
    tables = {
        source: ingest_file(paths[source], load_dictionary(source), offences).accepted
        for source in SOURCES
    }
    return tables, simulation.ground_truth


@pytest.fixture
def built(registry, policies, deployment, extracts):
    """A deployment holding the sources, a lookup and linked datasets, each with its lineage,
    and a replica of the linked set built by the steward."""
    tables, truth = extracts
    people = populate(registry, policies)
    write_key_file(deployment.key_file, generate_master_key())
    vault = Vault(deployment, policies)
    agreement_of = {
        data.source: reference
        for reference, terms in standard_agreements(policies.source_dir).items()
        for data in terms.data
    }
    with registry.sessions() as s:
        register_standard_agreements(s, policies, people.steward)
        vault.store(s, PSEUDONYM_KEY, pd.DataFrame({"key_hex": [KEY.hex()]}), actor=people.steward)
        for source in SOURCES:
            vault.store(
                s,
                f"source/{source}",
                tables[source],
                actor=people.steward,
                lineage={"sources": [source], "agreements": {source: agreement_of[source]}},
            )
        lookup = truth.astype({"record_id": str})
        lookup = lookup.assign(cluster_id=lookup["person_id"].astype(str)).drop(columns="person_id")
        lookup["person_key"] = Pseudonymiser(KEY).series(lookup["cluster_id"], "person")
        vault.store(
            s,
            PERSON_LOOKUP,
            lookup,
            actor=people.steward,
            lineage={
                "sources": list(SOURCES),
                "agreements": {source: agreement_of[source] for source in SOURCES},
                "derived_from": [f"source/{source}@1" for source in SOURCES],
            },
        )
        publish_linked_datasets(s, vault, actor=people.steward, offences=load_offences())
        replica = build_replica_in_vault(
            s, vault, deployment, policies, actor=people.steward, persons=150, seed=3
        )
    return people, vault, replica


def test_a_replica_records_what_it_was_built_from(registry, built):
    _, vault, replica = built
    assert sorted(replica.stored) == sorted(synthetic_name(name) for name in LINKED_SET)
    with registry.sessions() as s:
        linked = {name: vault.get(s, name) for name in LINKED_SET}
        for name in replica.stored:
            lineage = vault.get(s, name).lineage
            assert lineage["derived_from"] == [f"{n}@{d.version}" for n, d in linked.items()]
            assert lineage["agreements"]["victims"] == ENDED
            assert "victims" in lineage["sources"]
            assert set(lineage["agreements"]) == set(lineage["sources"])


def test_ending_an_agreement_destroys_the_replica_and_lists_it(
    registry, deployment, built, tmp_path
):
    people, vault, _ = built
    out = tmp_path / "open-data"
    with registry.sessions() as s:
        export_open_data(s, vault, deployment, actor=people.student, out=out)
        certificate = end_agreement(
            s,
            vault,
            actor=people.steward,
            reference=ENDED,
            reason="the agency withdrew",
            certificate_dir=tmp_path / "certificates",
            offences=load_offences(),
        )
    destroyed = {(d.name, d.version) for d in certificate.destroyed}
    replicas = {(synthetic_name(name), 1) for name in LINKED_SET}
    assert replicas <= destroyed
    assert {name for name, _ in replicas} <= set(certificate.not_rebuilt)
    with registry.sessions() as s:
        for name, _ in replicas:
            assert vault.get(s, name, 1).shredded_at is not None
        # A student reads a replica no more.
        with pytest.raises(VaultShredded):
            read_replica(s, vault, "linked/victims", actor=people.student)
        exported = s.execute(
            select(AuditEvent.target).where(AuditEvent.action == "open_data.export")
        ).scalar_one()
    assert certificate.exports == [exported] and Path(exported) == out.resolve()
    text = Path(certificate.files[1]).read_text()
    assert EXPORTS_NOTE in text and f"- {exported}" in text
    assert "`srs synth build`" in text


def test_a_replica_with_no_lineage_is_destroyed_by_any_end(registry, built, tmp_path):
    # A replica stored before lineage was recorded (its lineage wiped here) may hold any
    # agreement's data: ending any agreement destroys it.
    people, vault, _ = built
    with registry.sessions() as s:
        for row in s.execute(select(Dataset).where(Dataset.name.like("synthetic/%"))).scalars():
            row.lineage = {}
        s.commit()
        certificate = end_agreement(
            s,
            vault,
            actor=people.steward,
            reference="DSA-PRISONS",
            reason="the prison service withdrew",
            certificate_dir=tmp_path / "certificates",
            offences=load_offences(),
        )
    destroyed = {d.name for d in certificate.destroyed}
    assert {synthetic_name(name) for name in LINKED_SET} <= destroyed

"""Crypto-shredding: a shredded version's data key is gone, so no one can decrypt it again,
while other versions stay readable; only stewards shred, each shred is audited, and a key
rotation leaves shredded versions as they are."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from agreement_fixtures import admit_to_agreements, register_standard_agreements, research_lineage
from sqlalchemy import select

from registry_fixtures import PROJECT, TODAY, populate
from srs.governance.access import AccessDenied
from srs.governance.audit import verify_chain
from srs.governance.deployment import Deployment
from srs.governance.registry import Registry, projects
from srs.governance.registry.models import AuditEvent, Dataset
from srs.vault.crypto import generate_master_key, read_key_file, unwrap_data_key, write_key_file
from srs.vault.store import Vault, VaultError, VaultIntegrityError, VaultShredded

NAME = "linked/journeys"
LINEAGE = {"sources": ["police_arrests"], "agreements": {"police_arrests": "DSA-POLICE"}}
PERMITTED_BASIS = "Digital Economy Act 2017 s.64 (research)"


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"person_key": ["p1", "p2", "p3"], "sentence_months": [6.0, None, 24.0]})


@pytest.fixture
def setup(registry: Registry, policies, deployment: Deployment, frame):
    """Two versions of one dataset, granted to the project: version 1 of three rows, 2 of one."""
    people = populate(registry, policies)
    write_key_file(deployment.key_file, generate_master_key())
    vault = Vault(deployment, policies)
    with registry.sessions() as s:
        register_standard_agreements(s, policies, people.admin)
        admit_to_agreements(s, policies, admin=people.admin, code=PROJECT)
        for rows in (frame, frame.head(1)):
            vault.store(
                s,
                NAME,
                rows,
                actor=people.steward,
                classification="confidential",
                lineage=research_lineage(policies),
            )
        projects.grant_dataset(
            s, actor=people.steward, policies=policies, code=PROJECT, dataset_name=NAME
        )
    return people, vault


def shred(registry, vault, actor, version=1, reason="agreement DSA-TEST ended"):
    with registry.sessions() as s:
        return vault.shred(s, vault.get(s, NAME, version), actor=actor, reason=reason)


def read(registry, vault, people, version=None):
    with registry.sessions() as s:
        return vault.read(
            s, NAME, actor=people.researcher, project=PROJECT, today=TODAY, version=version
        )


def test_shredded_version_cannot_be_read_and_the_others_can(
    registry, policies, setup, frame, deployment
):
    people, vault = setup
    with registry.sessions() as s:
        file_path = vault.get(s, NAME, 1).file_path
    destroyed = shred(registry, vault, people.steward)
    assert destroyed["name"] == NAME and destroyed["version"] == 1 and destroyed["rows"] == 3
    assert destroyed["file"] == file_path and destroyed["file_removed"] is True
    assert not (deployment.vault_dir / file_path).exists()
    with pytest.raises(VaultShredded, match="destroyed on .*agreement DSA-TEST ended"):
        read(registry, vault, people, version=1)
    with registry.sessions() as s, pytest.raises(VaultShredded):
        vault.read_for_synthesis(s, NAME, actor=people.steward, version=1)
    pd.testing.assert_frame_equal(read(registry, vault, people, version=2), frame.head(1))
    with registry.sessions() as s:
        record = vault.get(s, NAME, 1)
        assert record.wrapped_key == b"" and record.shredded_at is not None
        assert record.shredded_reason == "agreement DSA-TEST ended"
        # Even with the master key in hand, there is no data key left to unwrap.
        with pytest.raises(VaultIntegrityError):
            unwrap_data_key(
                read_key_file(deployment.key_file), record.wrapped_key, dataset=NAME, version=1
            )


def test_each_shred_is_audited_and_the_chain_holds(registry, setup):
    people, vault = setup
    destroyed = shred(registry, vault, people.steward)
    with registry.sessions() as s:
        events = list(
            s.execute(select(AuditEvent).where(AuditEvent.action == "vault.shred")).scalars()
        )
        assert [(e.actor, e.target, e.outcome) for e in events] == [
            (people.steward, f"{NAME}@1", "ok")
        ]
        details = json.loads(events[0].details)
        assert details["content_hash"] == destroyed["content_hash"]
        assert details["file"] == destroyed["file"]
        assert events[0].reason == "agreement DSA-TEST ended"
        assert verify_chain(s).intact


@pytest.mark.parametrize("who", ["researcher", "checker", "admin"])
def test_only_stewards_shred(registry, setup, frame, who):
    people, vault = setup
    with pytest.raises(AccessDenied, match="may not dataset.destroy"):
        shred(registry, vault, getattr(people, who))
    pd.testing.assert_frame_equal(read(registry, vault, people, version=1), frame)
    with registry.sessions() as s:
        assert s.execute(
            select(AuditEvent).where(
                AuditEvent.action == "access.dataset.destroy", AuditEvent.outcome == "deny"
            )
        ).scalar_one()


def test_shredding_twice_or_without_a_reason_is_refused(registry, setup, frame):
    people, vault = setup
    with pytest.raises(VaultError, match="say why"):
        shred(registry, vault, people.steward, reason="   ")
    pd.testing.assert_frame_equal(read(registry, vault, people, version=1), frame)
    shred(registry, vault, people.steward)
    with pytest.raises(VaultShredded, match="already destroyed"):
        shred(registry, vault, people.steward)


def test_a_missing_file_does_not_stop_the_key_being_deleted(registry, setup, deployment):
    people, vault = setup
    with registry.sessions() as s:
        (deployment.vault_dir / vault.get(s, NAME, 1).file_path).unlink()
    assert shred(registry, vault, people.steward)["file_removed"] is True
    with registry.sessions() as s:
        assert vault.get(s, NAME, 1).wrapped_key == b""


def test_a_file_that_cannot_be_removed_is_said_and_audited(registry, setup, deployment):
    # A read-only disk or a busy file, stood in for by a directory where the file was: the
    # key still goes, and the result and the audit log say the ciphertext file stayed.
    people, vault = setup
    with registry.sessions() as s:
        path = deployment.vault_dir / vault.get(s, NAME, 1).file_path
    path.unlink()
    path.mkdir()
    (path / "busy").write_text("x")
    destroyed = shred(registry, vault, people.steward)
    assert destroyed["file_removed"] is False and destroyed["file_error"]
    with registry.sessions() as s:
        assert vault.get(s, NAME, 1).wrapped_key == b""
        failed = s.execute(
            select(AuditEvent).where(
                AuditEvent.action == "vault.shred", AuditEvent.outcome == "error"
            )
        ).scalar_one()
        assert failed.target == f"{NAME}@1" and "could not be removed" in failed.reason
        assert verify_chain(s).intact


def test_a_hand_edited_registry_cannot_bring_a_shredded_version_back(registry, setup, deployment):
    # A careless (or hostile) administrator clears the shredded mark in the database and puts
    # back a copy of the file: the data key is still gone, so nothing decrypts.
    people, vault = setup
    with registry.sessions() as s:
        file_path = vault.get(s, NAME, 1).file_path
    copy = (deployment.vault_dir / file_path).read_bytes()
    shred(registry, vault, people.steward)
    (deployment.vault_dir / file_path).write_bytes(copy)
    with registry.sessions() as s:
        record = vault.get(s, NAME, 1)
        record.shredded_at = None
        record.shredded_reason = None
        s.commit()
    with pytest.raises(VaultIntegrityError, match="cannot be unwrapped"):
        read(registry, vault, people, version=1)


def test_key_rotation_skips_shredded_versions(registry, policies, setup, frame, deployment):
    people, vault = setup
    shred(registry, vault, people.steward)
    new_key = generate_master_key()
    with registry.sessions() as s:
        assert vault.rotate_master_key(s, actor=people.steward, new_key=new_key) == 1
        shredded = vault.get(s, NAME, 1)
        assert shredded.wrapped_key == b"" and shredded.master_key_id != new_key.key_id
    assert read_key_file(deployment.key_file).key_id == new_key.key_id
    pd.testing.assert_frame_equal(read(registry, vault, people, version=2), frame.head(1))
    with pytest.raises(VaultShredded):
        read(registry, vault, people, version=1)
    # A second rotation (which first finishes any interrupted one) is not confused by the
    # shredded version still naming the first key.
    with registry.sessions() as s:
        assert vault.rotate_master_key(s, actor=people.steward, new_key=generate_master_key()) == 1
    pd.testing.assert_frame_equal(
        read(registry, Vault(deployment, policies), people, version=2), frame.head(1)
    )


def test_an_interrupted_rotation_is_finished_despite_shredded_versions(
    registry, policies, setup, frame, deployment, monkeypatch
):
    people, vault = setup
    shred(registry, vault, people.steward)

    def crash(*_args):
        raise KeyboardInterrupt("power cut before the key file was replaced")

    monkeypatch.setattr(vault, "_promote_next_key", crash)
    with registry.sessions() as s, pytest.raises(KeyboardInterrupt):
        vault.rotate_master_key(s, actor=people.steward, new_key=generate_master_key())
    monkeypatch.undo()
    pending = read_key_file(deployment.next_key_file)
    fresh = Vault(deployment, policies)
    with registry.sessions() as s:
        fresh.rotate_master_key(s, actor=people.steward, new_key=generate_master_key())
        # The pending key wrapped every live data key, so it was promoted before re-wrapping.
        keys = set(
            s.execute(select(Dataset.master_key_id).where(Dataset.shredded_at.is_(None))).scalars()
        )
    assert pending.key_id not in keys and len(keys) == 1
    pd.testing.assert_frame_equal(read(registry, fresh, people, version=2), frame.head(1))

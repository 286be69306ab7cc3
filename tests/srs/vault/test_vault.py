"""The vault service: encrypted storage, reads only through the access check, tamper detection,
and master-key rotation that keeps data readable while the old key stops working."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from agreement_fixtures import admit_to_agreements, register_standard_agreements, research_lineage
from sqlalchemy import select

from registry_fixtures import PROJECT, TODAY, populate
from srs.governance.access import AccessDenied
from srs.governance.deployment import Deployment
from srs.governance.registry import Registry, projects
from srs.governance.registry.models import AuditEvent
from srs.vault.crypto import generate_master_key, read_key_file, write_key_file
from srs.vault.store import Vault, VaultError, VaultIntegrityError, VaultKeyError

SECRET = "DISTINCTIVE-PLAINTEXT-7f3a"


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_key": ["p1", "p2", "p3"],
            "note": [SECRET, "b", "c"],
            "sentence_months": [6.0, None, 24.0],
            "offence_date": pd.to_datetime(["2024-01-02", "2024-03-04", "2025-06-07"]),
        }
    )


@pytest.fixture
def setup(registry: Registry, policies, deployment: Deployment):
    people = populate(registry, policies)
    write_key_file(deployment.key_file, generate_master_key())
    with registry.sessions() as s:
        register_standard_agreements(s, policies, people.admin)
        admit_to_agreements(s, policies, admin=people.admin, code=PROJECT)
    return people, Vault(deployment, policies)


def store_and_grant(registry, policies, vault, people, frame, name="linked/journeys"):
    with registry.sessions() as s:
        stored = vault.store(
            s,
            name,
            frame,
            actor=people.steward,
            classification="confidential",
            lineage=research_lineage(policies),
        )
        projects.grant_dataset(
            s, actor=people.steward, policies=policies, code=PROJECT, dataset_name=name
        )
    return stored


def read(registry, vault, people, name="linked/journeys", **kwargs):
    with registry.sessions() as s:
        return vault.read(s, name, actor=people.researcher, project=PROJECT, today=TODAY, **kwargs)


def test_round_trip_through_the_access_check(registry, policies, setup, frame, deployment):
    people, vault = setup
    stored = store_and_grant(registry, policies, vault, people, frame)
    assert stored.version == 1 and stored.row_count == 3
    pd.testing.assert_frame_equal(read(registry, vault, people), frame)
    files = list(deployment.vault_dir.rglob("*"))
    on_disk = b"".join(f.read_bytes() for f in files if f.is_file())
    assert SECRET.encode() not in on_disk
    assert b"person_key" not in on_disk


def test_versions_increase_and_old_versions_stay_readable(registry, policies, setup, frame):
    people, vault = setup
    store_and_grant(registry, policies, vault, people, frame)
    with registry.sessions() as s:
        second = vault.store(
            s,
            "linked/journeys",
            frame.head(1),
            actor=people.steward,
            classification="confidential",
            lineage=research_lineage(policies),
        )
    assert second.version == 2
    assert len(read(registry, vault, people)) == 1
    assert len(read(registry, vault, people, version=1)) == 3
    with pytest.raises(VaultError, match="no version 9"):
        read(registry, vault, people, version=9)


def test_each_version_is_read_only_as_far_as_its_own_classification_allows(
    registry, policies, setup, frame
):
    # Review of issue 15: access was judged on the newest version's classification, so an
    # older version stored highly_confidential was read by a project approved for confidential.
    people, vault = setup
    with registry.sessions() as s:
        for level in ("highly_confidential", "confidential"):
            vault.store(
                s,
                "linked/journeys",
                frame,
                actor=people.steward,
                classification=level,
                lineage=research_lineage(policies),
            )
        # Granting judges the newest version, confidential here; the grant covers every version.
        projects.grant_dataset(
            s, actor=people.steward, policies=policies, code=PROJECT, dataset_name="linked/journeys"
        )
        vault.store(
            s,
            "linked/journeys",
            frame,
            actor=people.steward,
            classification="highly_confidential",
            lineage=research_lineage(policies),
        )
    for version in (1, 3, None):
        with pytest.raises(AccessDenied, match="classified highly_confidential"):
            read(registry, vault, people, version=version)
    assert len(read(registry, vault, people, version=2)) == 3
    with registry.sessions() as s:
        denials = (
            s.execute(
                select(AuditEvent).where(
                    AuditEvent.action == "access.dataset.read", AuditEvent.outcome == "deny"
                )
            )
            .scalars()
            .all()
        )
        reads = s.execute(select(AuditEvent).where(AuditEvent.action == "vault.read")).scalars()
        assert [e.target for e in reads] == ["linked/journeys@2"]
    assert [json.loads(e.details)["version"] for e in denials] == [1, 3, 3]


def test_a_synthetic_version_above_public_is_not_read_as_synthetic(
    registry, policies, setup, frame
):
    people, vault = setup
    with registry.sessions() as s:
        vault.store(
            s, "synthetic/journeys", frame, actor=people.steward, classification="confidential"
        )
        vault.store(s, "synthetic/journeys", frame, actor=people.steward)  # public, by policy
    with registry.sessions() as s:
        assert len(vault.read_synthetic(s, "synthetic/journeys", actor=people.researcher)) == 3
        with pytest.raises(AccessDenied, match="classified confidential, not public"):
            vault.read_synthetic(s, "synthetic/journeys", actor=people.researcher, version=1)


def test_denied_read_never_opens_the_file(registry, policies, setup, frame, deployment):
    people, vault = setup
    with registry.sessions() as s:
        vault.store(
            s, "linked/journeys", frame, actor=people.steward, lineage=research_lineage(policies)
        )
    for path in deployment.vault_dir.rglob("*.enc"):
        path.write_bytes(b"garbage")  # would raise an integrity error if it were read
    with pytest.raises(AccessDenied, match="no grant"):
        read(registry, vault, people)


def test_only_stewards_store(registry, policies, setup, frame):
    people, vault = setup
    with registry.sessions() as s, pytest.raises(AccessDenied, match="may not dataset.store"):
        vault.store(s, "linked/journeys", frame, actor=people.researcher)


@pytest.mark.parametrize(
    "lineage",
    [
        None,
        {},
        {"sources": []},
        {"derived_from": ["steward/person_lookup@1"]},
        {"sources": ["police_arrests"]},
        {"sources": ["police_arrests"], "agreements": {}},
        {"sources": ["police_arrests", "victims"], "agreements": {"police_arrests": "DSA-POLICE"}},
        {"sources": "police_arrests", "agreements": {"police_arrests": "DSA-POLICE"}},
        {"sources": [["police_arrests"]], "agreements": {"police_arrests": "DSA-POLICE"}},
        {"sources": ["police_arrests"], "agreements": {"police_arrests": 7}},
    ],
)
@pytest.mark.parametrize("name", ["linked/journeys", "source/police_arrests"])
def test_data_areas_are_not_stored_without_sources_and_agreements(
    registry, policies, setup, frame, name, lineage
):
    # Review of issue 18 (H1/H2): a version stored by hand in linked/ or source/ carried no
    # agreement, so every agreement check passed it and the end of an agreement kept it.
    people, vault = setup
    with registry.sessions() as s, pytest.raises(VaultError, match="not stored by hand") as no:
        vault.store(s, name, frame, actor=people.steward, lineage=lineage)
    assert "`srs ingest` under an agreement" in str(no.value)
    assert "`srs linked build`" in str(no.value)
    with registry.sessions() as s:
        assert vault.exists(s, name) is False
        refused = s.execute(
            select(AuditEvent).where(AuditEvent.action == "vault.store")
        ).scalar_one()
        assert (refused.target, refused.outcome) == (name, "deny")
        assert "srs linked build" in refused.reason
    assert not list(deployment_files(vault))


def deployment_files(vault):
    return [p for p in vault.deployment.vault_dir.rglob("*.enc")]


def test_data_areas_are_stored_with_a_lineage_and_other_areas_without(
    registry, policies, setup, frame
):
    people, vault = setup
    with registry.sessions() as s:
        linked = vault.store(
            s, "linked/journeys", frame, actor=people.steward, lineage=research_lineage(policies)
        )
        assert linked.lineage["agreements"] == {"police_arrests": "DSA-POLICE"}
        # Areas outside lineage_required (reference tables, replicas) need no lineage.
        assert vault.store(s, "reference/court_codes", frame, actor=people.steward).version == 1


def test_the_data_areas_are_a_validated_policy(policies):
    from pydantic import ValidationError

    from srs.governance.policy import AccessPolicy

    assert policies.access.lineage_required == ["source/*", "linked/*"]
    assert policies.access.requires_lineage("linked/x")
    assert not policies.access.requires_lineage("steward/person_lookup")
    assert not policies.access.requires_lineage("linkedx/y")
    fields = policies.access.model_dump()
    for bad in (["linked"], ["linked/x"], ["*"], ["Linked/*"], "linked/*"):
        with pytest.raises(ValidationError, match="lineage_required"):
            AccessPolicy(**{**fields, "lineage_required": bad})
    without = dict(fields)
    del without["lineage_required"]
    with pytest.raises(ValidationError, match="lineage_required"):
        AccessPolicy(**without)


@pytest.mark.parametrize("name", ["", "Linked/x", "linked//x", "../etc", "linked/x y", "_x/y"])
def test_bad_dataset_names_are_refused(registry, policies, setup, frame, name):
    people, vault = setup
    with registry.sessions() as s, pytest.raises(VaultError, match="not valid"):
        vault.store(s, name, frame, actor=people.steward)


def test_flipped_byte_is_refused_and_audited(registry, policies, setup, frame, deployment):
    people, vault = setup
    stored = store_and_grant(registry, policies, vault, people, frame)
    path = deployment.vault_dir / stored.file_path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(VaultIntegrityError, match="linked/journeys"):
        read(registry, vault, people)
    with registry.sessions() as s:
        event = s.execute(select(AuditEvent).order_by(AuditEvent.seq.desc())).scalars().first()
    assert (event.action, event.outcome) == ("vault.read", "error")


def test_truncated_file_is_refused(registry, policies, setup, frame, deployment):
    people, vault = setup
    stored = store_and_grant(registry, policies, vault, people, frame)
    path = deployment.vault_dir / stored.file_path
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(VaultIntegrityError):
        read(registry, vault, people)


def test_missing_file_gives_a_clear_error(registry, policies, setup, frame, deployment):
    people, vault = setup
    stored = store_and_grant(registry, policies, vault, people, frame)
    (deployment.vault_dir / stored.file_path).unlink()
    with pytest.raises(VaultError, match="cannot read the vault file"):
        read(registry, vault, people)


def test_key_rotation_keeps_data_readable_and_retires_the_old_key(
    registry, policies, setup, frame, deployment
):
    people, vault = setup
    store_and_grant(registry, policies, vault, people, frame)
    old_key = read_key_file(deployment.key_file)
    cipher_before = {p: p.read_bytes() for p in deployment.vault_dir.rglob("*.enc")}
    new_key = generate_master_key()
    with registry.sessions() as s:
        assert vault.rotate_master_key(s, actor=people.steward, new_key=new_key) == 1
    assert read_key_file(deployment.key_file).key_id == new_key.key_id
    assert not deployment.next_key_file.exists()
    # Data files were not re-encrypted, only their keys re-wrapped.
    assert {p: p.read_bytes() for p in deployment.vault_dir.rglob("*.enc")} == cipher_before
    pd.testing.assert_frame_equal(read(registry, vault, people), frame)
    stale = Vault(deployment, policies, master_key=old_key)
    with pytest.raises(VaultKeyError, match="wrapped by master key"):
        read(registry, stale, people)
    # Even forced past the key-id check, the old key cannot unwrap the re-wrapped data key.
    from srs.vault.crypto import unwrap_data_key

    with registry.sessions() as s:
        record = vault.get(s, "linked/journeys")
    with pytest.raises(VaultIntegrityError):
        unwrap_data_key(old_key, record.wrapped_key, dataset=record.name, version=record.version)


def test_rotation_refused_for_non_stewards(registry, policies, setup, frame, deployment):
    people, vault = setup
    store_and_grant(registry, policies, vault, people, frame)
    before = deployment.key_file.read_bytes()
    with registry.sessions() as s, pytest.raises(AccessDenied):
        vault.rotate_master_key(s, actor=people.researcher, new_key=generate_master_key())
    assert deployment.key_file.read_bytes() == before


def test_crash_after_registry_commit_leaves_data_readable(
    registry, policies, setup, frame, deployment, monkeypatch
):
    people, vault = setup
    store_and_grant(registry, policies, vault, people, frame)

    def crash(*_args):
        raise KeyboardInterrupt("power cut before the key file was replaced")

    monkeypatch.setattr(vault, "_promote_next_key", crash)
    with registry.sessions() as s, pytest.raises(KeyboardInterrupt):
        vault.rotate_master_key(s, actor=people.steward, new_key=generate_master_key())
    monkeypatch.undo()
    # The registry already holds keys wrapped by the new key, which waits in master.key.next.
    assert deployment.next_key_file.exists()
    pd.testing.assert_frame_equal(read(registry, Vault(deployment, policies), people), frame)


def test_failed_rotation_discards_the_new_key(registry, policies, setup, frame, deployment):
    people, vault = setup
    store_and_grant(registry, policies, vault, people, frame)
    before = deployment.key_file.read_bytes()

    def fail(*_args, **_kwargs):
        raise RuntimeError("disk full")

    with registry.sessions() as s:
        original = s.commit
        s.commit = fail  # the registry transaction fails
        with pytest.raises(RuntimeError, match="disk full"):
            vault.rotate_master_key(s, actor=people.steward, new_key=generate_master_key())
        s.commit = original
    assert not deployment.next_key_file.exists()
    assert deployment.key_file.read_bytes() == before
    pd.testing.assert_frame_equal(read(registry, vault, people), frame)


def test_next_rotation_finishes_an_interrupted_one(
    registry, policies, setup, frame, deployment, monkeypatch
):
    people, vault = setup
    store_and_grant(registry, policies, vault, people, frame)
    interrupted = generate_master_key()
    with monkeypatch.context() as patch:
        patch.setattr(vault, "_promote_next_key", lambda: None)  # crash before promotion
        with registry.sessions() as s:
            vault.rotate_master_key(s, actor=people.steward, new_key=interrupted)
    assert deployment.next_key_file.exists()
    final = generate_master_key()
    with registry.sessions() as s:
        vault.rotate_master_key(s, actor=people.steward, new_key=final)
    assert read_key_file(deployment.key_file).key_id == final.key_id
    assert not deployment.next_key_file.exists()
    pd.testing.assert_frame_equal(read(registry, vault, people), frame)

"""Ending an agreement: its data are crypto-shredded (its own source versions and every version
that mixed them), the mixed datasets are rebuilt without them first, the others' data stay
readable, the audit log shows it all, and the provider gets a certificate of exactly what was
destroyed. Only stewards end agreements, an ended one cannot be ended again, and a run stopped
midway is finished by running it again."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from agreement_fixtures import register_standard_agreements
from sqlalchemy import select

from registry_fixtures import Population, populate
from srs.governance.access import AccessDenied
from srs.governance.agreements import AgreementError, get_agreement, standard_agreements
from srs.governance.audit import verify_chain
from srs.governance.deployment import Deployment
from srs.governance.registry import Registry, open_registry, projects
from srs.governance.registry.models import AuditEvent, Dataset
from srs.pipeline.agreement_end import (
    FILES_REMOVED,
    METHOD,
    AgreementEndError,
    destruction_certificate,
    end_agreement,
    write_destruction_certificate,
)
from srs.pipeline.deid import Pseudonymiser
from srs.pipeline.ingest import ingest_file, load_dictionary
from srs.pipeline.linkage import load_linkage_settings
from srs.pipeline.linked_datasets import JUSTICE_SOURCES
from srs.pipeline.offences import OffenceList
from srs.pipeline.person_linkage import link_in_vault
from srs.pipeline.simulation import SOURCES, simulate, write_simulation
from srs.pipeline.stewardship import (
    PERSON_LOOKUP,
    PSEUDONYM_KEY,
    PipelineError,
    ingest_into_vault,
    publish_linked_datasets,
)
from srs.vault.crypto import generate_master_key, read_key_file, unwrap_data_key, write_key_file
from srs.vault.store import Vault, VaultIntegrityError, VaultShredded

ENDED = "DSA-VICTIMS"
KEY = hashlib.sha256(b"agreement end tests").digest()
LINKED = ("linked/persons", "linked/journeys", "linked/victims", "linked/reoffending")


@dataclass
class Extracts:
    """A small simulated population, validated: typed source tables and the true persons."""

    tables: dict[str, pd.DataFrame]
    truth: pd.DataFrame


@dataclass
class Held:
    """A deployment holding seven sources under six agreements, a lookup and linked datasets."""

    people: Population
    vault: Vault
    registry: Registry
    deployment: Deployment
    agreement_of: dict[str, str]


@pytest.fixture(scope="module")
def extracts(tmp_path_factory, offences: OffenceList) -> Extracts:
    simulation = simulate(80, 7)
    paths = write_simulation(simulation, tmp_path_factory.mktemp("extracts"))
    tables = {
        source: ingest_file(paths[source], load_dictionary(source), offences).accepted
        for source in SOURCES
    }
    return Extracts(tables, simulation.ground_truth)


def source_lineage(source: str, reference: str, derived_from: list[str]) -> dict:
    return {
        "sources": [source],
        "agreements": {source: reference},
        "deliveries": [],
        "derived_from": derived_from,
    }


@pytest.fixture
def held(registry, policies, deployment, extracts, offences) -> Held:
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
        derived = []
        for source in SOURCES:
            stored = vault.store(
                s,
                f"source/{source}",
                extracts.tables[source],
                actor=people.steward,
                lineage=source_lineage(source, agreement_of[source], []),
            )
            derived.append(f"source/{source}@{stored.version}")
        # A later delivery of victims: version 2, built on version 1.
        vault.store(
            s,
            "source/victims",
            extracts.tables["victims"].iloc[:-3],
            actor=people.steward,
            lineage=source_lineage("victims", ENDED, ["source/victims@1"]),
        )
        derived[SOURCES.index("victims")] = "source/victims@2"
        truth = extracts.truth.astype({"record_id": str})
        lookup = truth.assign(cluster_id=truth["person_id"].astype(str)).drop(columns="person_id")
        lookup["person_key"] = Pseudonymiser(KEY).series(lookup["cluster_id"], "person")
        vault.store(
            s,
            PERSON_LOOKUP,
            lookup,
            actor=people.steward,
            lineage={
                "sources": list(SOURCES),
                "agreements": {source: agreement_of[source] for source in SOURCES},
                "derived_from": derived,
            },
        )
        publish_linked_datasets(s, vault, actor=people.steward, offences=offences)
    return Held(people, vault, registry, deployment, agreement_of)


def end(held: Held, offences, tmp_path: Path, **kwargs):
    with held.registry.sessions() as s:
        return end_agreement(
            s,
            held.vault,
            actor=kwargs.pop("actor", held.people.steward),
            reference=kwargs.pop("reference", ENDED),
            reason=kwargs.pop("reason", "the agency withdrew from the programme"),
            certificate_dir=tmp_path / "certificates",
            offences=offences,
            **kwargs,
        )


def versions(held: Held) -> dict[tuple[str, int], Dataset]:
    with held.registry.sessions() as s:
        rows = s.execute(select(Dataset)).scalars().all()
        s.expunge_all()
    return {(d.name, d.version): d for d in rows}


def steward_read(held: Held, name: str, version: int | None = None) -> pd.DataFrame:
    with held.registry.sessions() as s:
        return held.vault.read_steward_zone(s, name, actor=held.people.steward, version=version)


def research_read(held: Held, name: str, version: int | None = None) -> pd.DataFrame:
    with held.registry.sessions() as s:
        return held.vault.read_for_synthesis(s, name, actor=held.people.steward, version=version)


# What ending DSA-VICTIMS must destroy: both victims extracts, the mixed lookup and the four
# mixed linked datasets (each at version 1), and nothing else.
EXPECTED_DESTROYED = {
    ("source/victims", 1),
    ("source/victims", 2),
    (PERSON_LOOKUP, 1),
    *((name, 1) for name in LINKED),
}


def test_ending_destroys_its_data_and_rebuilds_what_mixed_it(held, offences, tmp_path):
    before_lookup = steward_read(held, PERSON_LOOKUP)
    before_persons = research_read(held, "linked/persons")
    certificate = end(held, offences, tmp_path)

    stored = versions(held)
    shredded = {key for key, d in stored.items() if d.shredded_at is not None}
    assert shredded == EXPECTED_DESTROYED
    for name, version in EXPECTED_DESTROYED:
        dataset = stored[(name, version)]
        assert dataset.wrapped_key == b""
        assert not (held.deployment.vault_dir / dataset.file_path).exists()
        # A project's (or a synthesis's) read is refused by the agreement's end before the
        # vault is asked; the steward's read finds the key gone.
        with pytest.raises(AccessDenied if name.startswith("linked/") else VaultShredded):
            if name.startswith("linked/"):
                research_read(held, name, version)
            else:
                steward_read(held, name, version)
        # The master key cannot help: the data key's bytes are gone.
        with pytest.raises(VaultIntegrityError):
            unwrap_data_key(
                read_key_file(held.deployment.key_file),
                dataset.wrapped_key,
                dataset=name,
                version=version,
            )

    # The other agreements' extracts are untouched.
    for source in set(SOURCES) - {"victims"}:
        pd.testing.assert_frame_equal(
            steward_read(held, f"source/{source}"),
            steward_read(held, f"source/{source}", 1),
        )
        assert stored[(f"source/{source}", 1)].shredded_at is None

    # The lookup is rebuilt without the victims' records; every other record keeps its key.
    lookup = steward_read(held, PERSON_LOOKUP)
    assert stored[(PERSON_LOOKUP, 2)].shredded_at is None
    assert "victims" not in set(lookup["source"])
    kept = before_lookup[before_lookup["source"] != "victims"].reset_index(drop=True)
    pd.testing.assert_frame_equal(lookup, kept)
    assert stored[(PERSON_LOOKUP, 2)].lineage["left_out"] == {"victims": f"agreement {ENDED} ended"}
    assert ENDED not in stored[(PERSON_LOOKUP, 2)].lineage["agreements"].values()

    # The linked datasets are rebuilt (version 2) with nothing of the victims' source.
    assert research_read(held, "linked/victims").empty
    persons = research_read(held, "linked/persons")
    assert not persons["is_victim"].any()
    offenders = before_persons[before_persons["is_offender"]]
    assert set(persons["person_key"]) == set(offenders["person_key"])
    for name in LINKED:
        lineage = stored[(name, 2)].lineage
        assert stored[(name, 2)].shredded_at is None
        assert lineage["left_out"] == {"victims": f"agreement {ENDED} ended"}
        assert "victims" not in lineage["sources"]
        assert ENDED not in lineage["agreements"].values()
        assert f"{PERSON_LOOKUP}@2" in lineage["derived_from"]

    with held.registry.sessions() as s:
        agreement = get_agreement(s, ENDED)
        assert agreement.status == "ended" and agreement.ended_by == held.people.steward
        assert agreement.end_reason == "the agency withdrew from the programme"
        assert get_agreement(s, "DSA-POLICE").status == "in_force"
    assert certificate.reference == ENDED


def test_the_audit_log_shows_each_destruction_and_the_end(held, offences, tmp_path):
    certificate = end(held, offences, tmp_path)
    with held.registry.sessions() as s:
        shreds = s.execute(
            select(AuditEvent).where(AuditEvent.action == "vault.shred").order_by(AuditEvent.seq)
        ).scalars()
        targets = {e.target for e in shreds}
        end_event = s.execute(
            select(AuditEvent).where(AuditEvent.action == "agreement.end")
        ).scalar_one()
        report = verify_chain(s)
    assert targets == {f"{name}@{version}" for name, version in EXPECTED_DESTROYED}
    assert end_event.target == ENDED and end_event.outcome == "ok"
    assert end_event.seq == certificate.audit_seq
    assert end_event.event_hash == certificate.audit_hash
    # Ended last: every destruction is on record before the end.
    assert report.intact and report.events_checked >= end_event.seq
    details = json.loads(end_event.details)
    assert set(details["destroyed"]) == targets
    assert details["sources_left_out"] == ["victims"]


def test_the_certificate_lists_exactly_what_was_destroyed(held, offences, tmp_path):
    stored_before = versions(held)
    certificate = end(held, offences, tmp_path)
    json_path, markdown_path = map(Path, certificate.files)
    assert json_path.parent == tmp_path / "certificates"
    on_file = json.loads(json_path.read_text())
    assert on_file == json.loads(json.dumps(certificate.as_dict()))
    assert on_file["reference"] == ENDED and on_file["agreement_version"] == 1
    assert on_file["providers"] == ["Victim Services Agency"]
    assert on_file["reason"] == "the agency withdrew from the programme"
    assert on_file["method"] == METHOD + FILES_REMOVED and "AES-256-GCM" in METHOD
    assert all(d["file_removed"] for d in on_file["destroyed"])
    destroyed = {(d["name"], d["version"]): d for d in on_file["destroyed"]}
    assert set(destroyed) == EXPECTED_DESTROYED
    for key, entry in destroyed.items():
        assert entry["rows"] == stored_before[key].row_count
        assert entry["content_hash"] == stored_before[key].content_hash
        assert entry["file"] == stored_before[key].file_path
    assert {(r["name"], r["version"]) for r in on_file["rebuilt"]} == {
        (PERSON_LOOKUP, 2),
        *((name, 2) for name in LINKED),
    }
    assert on_file["not_rebuilt"] == []
    text = markdown_path.read_text()
    assert ENDED in text and "Victim Services Agency" in text and str(certificate.audit_seq) in text
    for name, version in EXPECTED_DESTROYED:
        assert f"| {name} | {version} |" in text
    # Issued again from the registry, it says the same.
    with held.registry.sessions() as s:
        again = write_destruction_certificate(destruction_certificate(s, ENDED), tmp_path / "again")
    assert {k: v for k, v in again.as_dict().items() if k != "files"} == {
        k: v for k, v in on_file.items() if k != "files"
    }


def test_the_default_certificate_folder_is_in_the_steward_zone_of_home(held, offences):
    with held.registry.sessions() as s:
        certificate = end_agreement(
            s,
            held.vault,
            actor=held.people.steward,
            reference=ENDED,
            reason="ended",
            offences=offences,
        )
    folder = held.deployment.home / "steward" / "destruction"
    assert [Path(f).parent for f in certificate.files] == [folder, folder]
    assert all(Path(f).is_file() for f in certificate.files)


def test_ending_an_agreement_that_mixed_nothing_destroys_only_its_own(held, offences, tmp_path):
    # An agreement behind no mixed dataset: a source stored but never linked.
    with held.registry.sessions() as s:
        held.vault.store(
            s,
            "source/extra_table",
            pd.DataFrame({"record_id": ["x1", "x2"]}),
            actor=held.people.steward,
            lineage=source_lineage("extra_table", "DSA-PRISONS", []),
        )
    end(held, offences, tmp_path, reference="DSA-PRISONS")
    stored = versions(held)
    assert stored[("source/extra_table", 1)].shredded_at is not None
    assert stored[("source/prison_spells", 1)].shredded_at is not None
    assert stored[("source/victims", 2)].shredded_at is None
    assert steward_read(held, "source/victims").shape[0] > 0
    assert set(steward_read(held, PERSON_LOOKUP)["source"]) == set(SOURCES) - {"prison_spells"}


@pytest.mark.parametrize("who", ["researcher", "checker", "admin"])
def test_only_a_steward_ends_an_agreement(held, offences, tmp_path, who):
    with pytest.raises(AccessDenied, match="may not dataset.destroy"):
        end(held, offences, tmp_path, actor=getattr(held.people, who))
    stored = versions(held)
    assert not any(d.shredded_at for d in stored.values())
    assert len(steward_read(held, "source/victims")) > 0
    with held.registry.sessions() as s:
        assert get_agreement(s, ENDED).status == "in_force"
    assert not (tmp_path / "certificates").exists()


def test_ending_twice_is_refused(held, offences, tmp_path):
    end(held, offences, tmp_path)
    count = len(versions(held))
    with pytest.raises(AgreementEndError, match=f"{ENDED} was already ended on .* by steward"):
        end(held, offences, tmp_path, reason="again")
    assert len(versions(held)) == count
    with held.registry.sessions() as s:
        refused = s.execute(
            select(AuditEvent).where(
                AuditEvent.action == "agreement.end", AuditEvent.outcome == "deny"
            )
        ).scalar_one()
        assert "already ended" in refused.reason
        assert verify_chain(s).intact


def test_bad_requests_are_refused_before_anything_is_destroyed(held, offences, tmp_path):
    with pytest.raises(AgreementEndError, match="say why"):
        end(held, offences, tmp_path, reason="  ")
    with pytest.raises(AgreementError, match="no agreement"):
        end(held, offences, tmp_path, reference="DSA-NOBODY")
    assert not any(d.shredded_at for d in versions(held).values())


@pytest.mark.parametrize("stop_at", [1, 2, 4])
def test_a_run_stopped_midway_is_finished_by_running_it_again(held, offences, tmp_path, stop_at):
    # stop_at 1: after the lookup was rebuilt; 2: after the linked datasets were; 4: after two
    # versions were destroyed.
    steps: list[str] = []

    def power_cut(step: str) -> None:
        steps.append(step)
        if len(steps) == stop_at:
            raise KeyboardInterrupt(f"power cut after: {step}")

    with pytest.raises(KeyboardInterrupt):
        end(held, offences, tmp_path, progress=power_cut)
    with held.registry.sessions() as s:
        # Not marked ended until every destruction is done.
        assert get_agreement(s, ENDED).status == "in_force"
    certificate = end(held, offences, tmp_path)
    stored = versions(held)
    assert {key for key, d in stored.items() if d.shredded_at is not None} == EXPECTED_DESTROYED
    assert {(d.name, d.version) for d in certificate.destroyed} == EXPECTED_DESTROYED
    # Each mixed dataset was rebuilt once: the re-run carried on, it did not start again.
    assert max(v for n, v in stored if n == PERSON_LOOKUP) == 2
    assert {(r.name, r.version) for r in certificate.rebuilt} == {
        (PERSON_LOOKUP, 2),
        *((name, 2) for name in LINKED),
    }
    assert research_read(held, "linked/victims").empty
    with held.registry.sessions() as s:
        assert verify_chain(s).intact
        assert get_agreement(s, ENDED).status == "ended"


def test_a_hand_edited_lineage_cycle_does_not_hang_the_end(held, offences, tmp_path):
    # A careless edit makes a version its own ancestor; the lineage walk still ends.
    with held.registry.sessions() as s:
        version = s.execute(
            select(Dataset).where(Dataset.name == "source/victims", Dataset.version == 2)
        ).scalar_one()
        version.lineage = {**version.lineage, "derived_from": ["source/victims@2", "junk"]}
        s.commit()
    certificate = end(held, offences, tmp_path)
    assert ("source/victims", 2) in {(d.name, d.version) for d in certificate.destroyed}


def test_publishing_later_leaves_a_destroyed_source_out(held, offences, tmp_path):
    end(held, offences, tmp_path)
    with held.registry.sessions() as s:
        publish_linked_datasets(s, held.vault, actor=held.people.steward, offences=offences)
        newest = held.vault.get(s, "linked/victims")
    assert newest.version == 3
    assert newest.lineage["left_out"]["victims"].startswith("destroyed: agreement DSA-VICTIMS")
    assert research_read(held, "linked/victims").empty
    assert set(JUSTICE_SOURCES) - {"victims"} == set(newest.lineage["sources"])


def test_a_project_reads_the_rebuilt_data_and_never_the_destroyed(
    held, policies, offences, tmp_path
):
    # The researcher's view: a project under every agreement, granted linked/persons.
    today = date.today()
    with held.registry.sessions() as s:
        projects.create_project(
            s,
            actor=held.people.admin,
            policies=policies,
            code="P777",
            title="Journeys",
            purpose="Study journeys through the justice system",
            legal_basis="Digital Economy Act 2017 s.64 (research)",
            start_date=today - timedelta(days=1),
            end_date=today + timedelta(days=90),
            approved_classification="confidential",
            agreements=sorted(set(held.agreement_of.values())),
        )
        projects.add_member(
            s, actor=held.people.admin, policies=policies, code="P777", username="ana"
        )
        projects.grant_dataset(
            s,
            actor=held.people.steward,
            policies=policies,
            code="P777",
            dataset_name="linked/persons",
        )

    def project_read(version=None):
        with held.registry.sessions() as s:
            return held.vault.read(
                s, "linked/persons", actor="ana", project="P777", version=version, today=today
            )

    assert project_read()["is_victim"].any()
    end(held, offences, tmp_path)
    rebuilt = project_read()
    assert len(rebuilt) > 0 and not rebuilt["is_victim"].any()
    # The old version names the ended agreement: refused by the access check, before the vault
    # would find its key gone.
    with pytest.raises(AccessDenied, match=f"{ENDED}.*ended"):
        project_read(version=1)


def test_a_hand_edited_lineage_of_the_wrong_shape_counts_as_empty(held, offences, tmp_path):
    # Lineage parts of another shape (a list of agreements, a text for derived_from) name
    # nothing: the end goes on for everything else and the publish still works.
    with held.registry.sessions() as s:
        police = held.vault.get(s, "source/police_arrests")
        police.lineage = {"agreements": ["DSA-POLICE"], "derived_from": "source/victims@1"}
        cps = held.vault.get(s, "source/cps_charging")
        cps.lineage = ["not", "a", "mapping"]
        s.commit()
    # The rebuild would carry police and charging data with no agreement behind them: it is
    # refused, nothing is destroyed and the agreement stays in force (a re-run, once the
    # extracts are ingested again, finishes the end).
    with pytest.raises(PipelineError, match="no agreement is recorded in the lineage of"):
        end(held, offences, tmp_path)
    stored = versions(held)
    assert not any(d.shredded_at for d in stored.values())
    assert ("linked/persons", 2) not in stored
    with held.registry.sessions() as s:
        assert get_agreement(s, ENDED).status == "in_force"


def test_published_linked_datasets_record_their_lineage(held):
    stored = versions(held)
    lineage = stored[("linked/journeys", 1)].lineage
    assert lineage["sources"] == sorted(SOURCES)
    assert lineage["agreements"] == {source: held.agreement_of[source] for source in SOURCES}
    assert set(lineage["derived_from"]) == {
        *(f"source/{source}@1" for source in SOURCES if source != "victims"),
        "source/victims@2",
        f"{PERSON_LOOKUP}@1",
    }
    assert "left_out" not in lineage


def test_on_a_real_pipeline_run(tmp_path, policies, offences):
    # Ingest, Splink linkage and the linked build as the steward runs them, with the lineage
    # deliveries and incremental linkage record stamped on the sources and the lookup.
    home = tmp_path / "home"
    (home / "vault").mkdir(parents=True, mode=0o700)
    deployment = Deployment.at(home, database_url=f"sqlite:///{home / 'srs.db'}")
    write_key_file(deployment.key_file, generate_master_key())
    registry = open_registry(deployment.database_url, migrate=True)
    people = populate(registry, policies)
    vault = Vault(deployment, policies)
    paths = write_simulation(simulate(120, 3), tmp_path / "extracts")
    agreement_of = {
        data.source: reference
        for reference, terms in standard_agreements(policies.source_dir).items()
        for data in terms.data
    }
    with registry.sessions() as s:
        register_standard_agreements(s, policies, people.steward)
        for source in SOURCES:
            ingest_into_vault(
                s, vault, actor=people.steward, source=source, path=paths[source], offences=offences
            )
            stored = vault.get(s, f"source/{source}")
            stored.lineage = source_lineage(source, agreement_of[source], [])
        s.commit()
        link_in_vault(s, vault, actor=people.steward, settings=load_linkage_settings())
        lookup = vault.get(s, PERSON_LOOKUP)
        lookup.lineage = {"derived_from": [f"source/{source}@1" for source in SOURCES]}
        s.commit()
        publish_linked_datasets(s, vault, actor=people.steward, offences=offences)
    held = Held(people, vault, registry, deployment, agreement_of)
    before = steward_read(held, PERSON_LOOKUP)
    certificate = end(held, offences, tmp_path, reference="DSA-PRISONS")
    destroyed = {(d.name, d.version) for d in certificate.destroyed}
    assert destroyed == {k for k, d in versions(held).items() if d.shredded_at is not None}
    assert destroyed >= {
        ("source/prison_spells", 1),
        (PERSON_LOOKUP, 1),
        *((name, 1) for name in LINKED),
    }
    # Whatever else linkage stored from the sources (a trained model, key changes) is destroyed
    # too, and named on the certificate as not rebuilt.
    rebuilt = {r.name for r in certificate.rebuilt}
    assert rebuilt == {PERSON_LOOKUP, *LINKED}
    assert {name for name, _ in destroyed} - rebuilt - {"source/prison_spells"} == set(
        certificate.not_rebuilt
    )
    after = steward_read(held, PERSON_LOOKUP)
    pd.testing.assert_frame_equal(
        after, before[before["source"] != "prison_spells"].reset_index(drop=True)
    )
    journeys = research_read(held, "linked/journeys")
    assert len(journeys) > 0 and journeys["custody_start"].isna().all()
    assert journeys["remand_days"].isna().all()
    with registry.sessions() as s:
        assert verify_chain(s).intact
    registry.dispose()


def test_a_researcher_learns_nothing_of_an_agreement_by_trying_to_end_it(held, offences, tmp_path):
    for reference in (ENDED, "DSA-NOBODY"):
        with pytest.raises(AccessDenied) as refused:
            end(held, offences, tmp_path, actor=held.people.researcher, reference=reference)
        assert reference not in str(refused.value)


def test_a_mixed_dataset_with_no_rebuild_is_destroyed_and_named(held, offences, tmp_path):
    # Something else built from several agreements' data (here, like a trained linkage model):
    # it holds the ended data, so it goes, and the certificate says it was not rebuilt.
    with held.registry.sessions() as s:
        held.vault.store(
            s,
            "steward/linkage_model",
            pd.DataFrame({"model_json": ["{}"]}),
            actor=held.people.steward,
            lineage={"derived_from": ["source/victims@2", "source/police_arrests@1"]},
        )
    certificate = end(held, offences, tmp_path)
    assert ("steward/linkage_model", 1) in {(d.name, d.version) for d in certificate.destroyed}
    assert certificate.not_rebuilt == ["steward/linkage_model"]
    text = Path(certificate.files[1]).read_text()
    assert "not rebuilt" in text and "- steward/linkage_model" in text
    assert "1 not rebuilt" in str(certificate)
    with pytest.raises(VaultShredded):
        steward_read(held, "steward/linkage_model")


def store_by_hand(held: Held, name: str, frame: pd.DataFrame, lineage: dict) -> int:
    """A version stored as `srs dataset store` did before lineage was required, or whose
    lineage was hand-edited afterwards: stored, then its registry row's lineage replaced."""
    with held.registry.sessions() as s:
        stored = held.vault.store(
            s, name, frame, actor=held.people.steward, lineage=source_lineage("x", "y", [])
        )
        stored.lineage = lineage
        s.commit()
        return stored.version


def set_lineage(held: Held, name: str, version: int, lineage: dict) -> None:
    with held.registry.sessions() as s:
        row = s.execute(
            select(Dataset).where(Dataset.name == name, Dataset.version == version)
        ).scalar_one()
        row.lineage = lineage
        s.commit()


def test_a_hand_stored_extract_with_no_lineage_is_destroyed_and_left_out(
    held, extracts, offences, tmp_path
):
    # The steward "fixes a typo" in the victims extract by hand: its newest version names no
    # agreement. It is still victims data under DSA-VICTIMS: destroyed, and victims are left
    # out of every rebuild.
    version = store_by_hand(held, "source/victims", extracts.tables["victims"], {})
    certificate = end(held, offences, tmp_path)
    destroyed = {(d.name, d.version) for d in certificate.destroyed}
    assert ("source/victims", version) in destroyed and destroyed >= EXPECTED_DESTROYED
    assert versions(held)[("source/victims", version)].shredded_at is not None
    with pytest.raises(VaultShredded):
        steward_read(held, "source/victims")
    assert "victims" not in set(steward_read(held, PERSON_LOOKUP)["source"])
    assert research_read(held, "linked/victims").empty
    assert not research_read(held, "linked/persons")["is_victim"].any()
    assert certificate.rebuilt and all(r.left_out == ["victims"] for r in certificate.rebuilt)


def test_an_extract_still_held_under_another_agreement_stops_the_end(
    held, extracts, offences, tmp_path
):
    # A hand-edited lineage files victims data under DSA-CPS: the end would leave it held, so
    # it is refused (audited) before anything is destroyed, and nothing is certified.
    version = store_by_hand(
        held,
        "source/victims",
        extracts.tables["victims"],
        source_lineage("victims", "DSA-CPS", []),
    )
    with pytest.raises(AgreementEndError, match=rf"source/victims@{version}.*DSA-CPS"):
        end(held, offences, tmp_path)
    assert not any(d.shredded_at for d in versions(held).values())
    assert not (tmp_path / "certificates").exists()
    with held.registry.sessions() as s:
        assert get_agreement(s, ENDED).status == "in_force"
        refused = s.execute(
            select(AuditEvent).where(
                AuditEvent.action == "agreement.end", AuditEvent.outcome == "deny"
            )
        ).scalar_one()
        assert f"source/victims@{version}" in refused.reason
        assert verify_chain(s).intact


def test_lineage_less_linked_and_steward_versions_hold_every_agreement(held, offences, tmp_path):
    # A linked version whose lineage was wiped, and a steward file stored with none: both may
    # hold anything, so both go; the pseudonymisation key (no source's records) stays.
    set_lineage(held, "linked/victims", 1, {})
    notes = store_by_hand(held, "steward/notes", pd.DataFrame({"note": ["victims seen"]}), {})
    certificate = end(held, offences, tmp_path)
    destroyed = {(d.name, d.version) for d in certificate.destroyed}
    assert {("linked/victims", 1), ("steward/notes", notes)} <= destroyed
    assert "steward/notes" in certificate.not_rebuilt
    stored = versions(held)
    assert stored[("steward/notes", notes)].shredded_at is not None
    assert stored[(PSEUDONYM_KEY, 1)].shredded_at is None


def test_refused_ends_are_audited(held, offences, tmp_path):
    with pytest.raises(AgreementEndError, match="say why"):
        end(held, offences, tmp_path, reason="")
    with pytest.raises(AgreementError, match="no agreement"):
        end(held, offences, tmp_path, reference="DSA-NOBODY")
    with held.registry.sessions() as s:
        refused = (
            s.execute(
                select(AuditEvent)
                .where(AuditEvent.action == "agreement.end", AuditEvent.outcome == "deny")
                .order_by(AuditEvent.seq)
            )
            .scalars()
            .all()
        )
        assert [e.target for e in refused] == [ENDED, "DSA-NOBODY"]
        assert "say why" in refused[0].reason and "no agreement" in refused[1].reason
        assert verify_chain(s).intact


def test_the_certificate_says_which_files_could_not_be_removed(held, offences, tmp_path):
    # The victims extract's file cannot be unlinked (a directory stands for a read-only disk):
    # the key still goes, and the certificate says that file stayed instead of claiming all.
    with held.registry.sessions() as s:
        path = held.deployment.vault_dir / held.vault.get(s, "source/victims", 1).file_path
    path.unlink()
    path.mkdir()
    (path / "busy").write_text("x")
    certificate = end(held, offences, tmp_path)
    removed = {(d.name, d.version): d.file_removed for d in certificate.destroyed}
    assert removed.pop(("source/victims", 1)) is False and all(removed.values())
    assert not certificate.method.endswith(FILES_REMOVED) and "except 1" in certificate.method
    on_file = json.loads(Path(certificate.files[0]).read_text())
    assert [d["file_removed"] for d in on_file["destroyed"]].count(False) == 1
    text = Path(certificate.files[1]).read_text()
    assert "| File removed |" in text and text.count("| no |") == 1
    assert "(1 ciphertext files could not be removed)" in str(certificate)

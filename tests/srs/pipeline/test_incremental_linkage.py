"""`srs link refresh` in the vault: a simulated population linked, then a delivery of new,
corrected and withdrawn records refreshed; person keys stay, a merge keeps the older key."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from agreement_fixtures import PERMITTED_BASIS, agreement_for
from pipeline_fixtures import register_agreements
from sqlalchemy import select

from srs.governance.access import AccessDenied
from srs.governance.agreement_terms import standard_agreements
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry import Registry, accounts, open_registry, projects
from srs.governance.registry.models import AuditEvent
from srs.pipeline.linkage import evaluate, load_linkage_settings
from srs.pipeline.offences import load_offences
from srs.pipeline.person_linkage import (
    KEY_ALIASES,
    KEY_CHANGES,
    LINKAGE_MODEL,
    LINKAGE_RECORDS,
    link_in_vault,
    refresh_in_vault,
)
from srs.pipeline.simulation import SOURCES, simulate, write_simulation
from srs.pipeline.stewardship import (
    PERSON_LOOKUP,
    PipelineError,
    ingest_into_vault,
    publish_linked_datasets,
)
from srs.vault.crypto import generate_master_key, write_key_file
from srs.vault.store import Vault

STEWARD = "steward"
RECORD_COLUMNS = {
    s: c
    for s, c in zip(
        SOURCES,
        ["arrest_id", "cps_urn", "mc_case_no", "cc_case_no", "spell_id", "episode_id", "victim_id"],
        strict=True,
    )
}
# A made-up identity no simulated person has: the planted record links to no one.
STRANGER = {
    "defendant_forename": "Zebedee",
    "defendant_surname": "Quasimodo",
    "defendant_dob": "03/02/1931",
    "defendant_postcode": "ZE1 0AA",
}


def deployment(home: Path, policies: PolicySet) -> tuple[Registry, Vault]:
    (home / "vault").mkdir(mode=0o700, parents=True)
    place = Deployment.at(home, database_url=f"sqlite:///{home / 'srs.db'}")
    write_key_file(place.key_file, generate_master_key())
    registry = open_registry(place.database_url, migrate=True)
    with registry.sessions() as s:
        accounts.bootstrap_admin(s, username="admin", full_name="Admin")
        accounts.add_researcher(
            s,
            actor="admin",
            policies=policies,
            username=STEWARD,
            full_name="Steward",
            roles=["steward"],
        )
        register_agreements(s, policies, STEWARD)
    return registry, Vault(place, policies)


def ingest(
    session,
    vault: Vault,
    tables: dict[str, pd.DataFrame],
    folder: Path,
    held: dict[str, pd.DataFrame] | None = None,
) -> None:
    """Ingest ``tables`` as the base extracts, or, given the tables ``held`` so far, as the
    delivery (adds, corrections, withdrawals) that turns ``held`` into ``tables``."""
    folder.mkdir(parents=True, exist_ok=True)
    for source, table in tables.items():
        path = folder / f"{source}.csv"
        if held is None:
            table.to_csv(path, index=False)
        else:
            delivery_frame(held[source], table, RECORD_COLUMNS[source]).to_csv(path, index=False)
        ingest_into_vault(
            session,
            vault,
            actor=STEWARD,
            source=source,
            path=path,
            offences=load_offences(),
            delivery=held is not None,
            period=DELIVERY_PERIOD if held is not None else None,
        )


# The simulation's events end in 2024: the delivery is of its last month.
DELIVERY_PERIOD = "2024-12"


def delivery_frame(held: pd.DataFrame, new: pd.DataFrame, record_id: str) -> pd.DataFrame:
    """The delivery file an agency would send to turn ``held`` into ``new``."""
    before = held.set_index(record_id)
    after = new.set_index(record_id)
    added = after.loc[~after.index.isin(before.index)].assign(delivery_action="add")
    common = after.index.intersection(before.index)
    differs = (after.loc[common] != before.loc[common, after.columns]).any(axis=1)
    corrected = after.loc[common[differs.to_numpy()]].assign(delivery_action="correct")
    gone = before.index.difference(after.index)
    withdrawn = pd.DataFrame({"delivery_action": "withdraw"}, index=gone).reindex(
        columns=[*after.columns, "delivery_action"], fill_value=""
    )
    withdrawn["delivery_action"] = "withdraw"
    frame = pd.concat([added, corrected, withdrawn])
    return frame.rename_axis(record_id).reset_index()[[*new.columns, "delivery_action"]]


def read_extracts(folder: Path) -> dict[str, pd.DataFrame]:
    return {s: pd.read_csv(folder / f"{s}.csv", dtype=str, keep_default_na=False) for s in SOURCES}


@dataclass
class Refreshed:
    registry: Registry
    vault: Vault
    truth: pd.DataFrame
    before: pd.DataFrame
    after: pd.DataFrame
    relinked: pd.DataFrame
    result: object
    planted: tuple[str, str]
    added: set[tuple[str, str]]
    corrected: set[tuple[str, str]]
    withdrawn: set[tuple[str, str]]
    report: Path
    f1_refresh: float
    f1_full: float


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory, policies: PolicySet) -> Refreshed:
    folder = tmp_path_factory.mktemp("incremental")
    simulation = simulate(700, 5)
    write_simulation(simulation, folder / "all")
    every = read_extracts(folder / "all" / "extracts")
    truth = simulation.ground_truth.astype({"record_id": str})
    records_of = truth.groupby("person_id").size()
    rng = np.random.default_rng(3)
    # The planted merge: a charging record of a person with other records, first delivered
    # with a stranger's identity (a person of its own), then corrected.
    cps = every["cps_charging"]
    person = truth[truth["source"] == "cps_charging"].set_index("record_id")["person_id"]
    candidates = cps[(cps["pnc_id"] == "") & cps["cps_urn"].map(person).map(records_of).ge(3)][
        "cps_urn"
    ]
    planted = ("cps_charging", candidates.iloc[0])
    touched_people = {person[planted[1]]}
    added, withdrawn = set(), set()
    first, delivery = {}, {}
    for source in SOURCES:
        table = every[source]
        ids = table[RECORD_COLUMNS[source]]
        draw = rng.random(len(table))
        back = (draw < 0.03) & (ids != planted[1])
        gone = (draw > 0.995) & (ids != planted[1])
        added |= {(source, i) for i in ids[back]}
        withdrawn |= {(source, i) for i in ids[gone]}
        first[source] = table[~back].copy()
        delivery[source] = table[~gone].copy()
    at = first["cps_charging"]["cps_urn"] == planted[1]
    for column, value in STRANGER.items():
        first["cps_charging"].loc[at, column] = value
    corrected = {planted}
    for key in added | withdrawn:
        touched_people.add(truth.set_index(["source", "record_id"]).loc[key, "person_id"])
    registry, vault = deployment(folder / "home", policies)
    settings = load_linkage_settings()
    with registry.sessions() as s:
        ingest(s, vault, first, folder / "first")
        link_in_vault(s, vault, actor=STEWARD, settings=settings)
        before = vault.read_steward_zone(s, PERSON_LOOKUP, actor=STEWARD)
        ingest(s, vault, delivery, folder / "delivery", held=first)
        report = folder / "home" / "steward" / "changes.csv"
        result = refresh_in_vault(s, vault, actor=STEWARD, settings=settings, report_path=report)
        after = vault.read_steward_zone(s, PERSON_LOOKUP, actor=STEWARD)
        present = truth.merge(after[["source", "record_id"]], on=["source", "record_id"])
        f1_refresh = evaluate(after, present).f1
        link_in_vault(s, vault, actor=STEWARD, settings=settings)
        relinked = vault.read_steward_zone(s, PERSON_LOOKUP, actor=STEWARD)
        f1_full = evaluate(relinked, present).f1
    return Refreshed(
        registry,
        vault,
        truth[~truth["person_id"].isin(touched_people)],
        before,
        after,
        relinked,
        result,
        planted,
        added,
        corrected,
        withdrawn,
        report,
        f1_refresh,
        f1_full,
    )


def keys_by_record(register: pd.DataFrame) -> pd.Series:
    return register.set_index(["source", "record_id"])["person_key"]


def test_unchanged_persons_keep_their_keys(refreshed: Refreshed) -> None:
    unchanged = refreshed.truth.set_index(["source", "record_id"]).index
    before = keys_by_record(refreshed.before).reindex(unchanged)
    after = keys_by_record(refreshed.after).reindex(unchanged)
    assert before.notna().all() and len(before) > 1000
    assert (before == after).all()


def test_a_full_relink_after_a_refresh_keeps_unchanged_persons_keys(refreshed: Refreshed) -> None:
    unchanged = refreshed.truth.set_index(["source", "record_id"]).index
    before = keys_by_record(refreshed.before).reindex(unchanged)
    relinked = keys_by_record(refreshed.relinked).reindex(unchanged)
    # A full relink may split a wrongly merged person; every other unchanged key stays.
    assert (before == relinked).mean() > 0.999


def test_the_delivery_is_counted(refreshed: Refreshed) -> None:
    result = refreshed.result
    assert result.records_added == len(refreshed.added)
    assert result.records_removed == len(refreshed.withdrawn)
    assert result.records_changed == len(refreshed.corrected)
    withdrawn = set(zip(refreshed.after["source"], refreshed.after["record_id"], strict=True))
    assert not withdrawn & refreshed.withdrawn


def test_a_planted_merge_keeps_the_older_key_and_records_an_alias(refreshed: Refreshed) -> None:
    before = keys_by_record(refreshed.before)
    serial = refreshed.before.drop_duplicates("person_key").set_index("person_key")["key_serial"]
    # Under the stranger's identity the planted record was a person of its own.
    stranger_key = before[refreshed.planted]
    assert (refreshed.before["person_key"] == stranger_key).sum() == 1
    # Corrected, it joined its person's records, which had another key.
    own_key = keys_by_record(refreshed.after)[refreshed.planted]
    siblings = refreshed.after[refreshed.after["person_key"] == own_key]
    held = before.reindex(list(zip(siblings["source"], siblings["record_id"], strict=True)))
    person_keys = set(held.dropna())
    assert len(person_keys) == 2 and stranger_key in person_keys
    older = min(person_keys, key=lambda k: serial[k])
    younger = max(person_keys, key=lambda k: serial[k])
    assert own_key == older
    assert younger not in set(refreshed.after["person_key"])
    with refreshed.registry.sessions() as s:
        aliases = refreshed.vault.read_steward_zone(s, KEY_ALIASES, actor=STEWARD)
        # Researchers may be granted it: pseudonymous, classified as the linked datasets are.
        grant_key_changes(s, refreshed.vault.policies)
        changes = refreshed.vault.read(s, KEY_CHANGES, actor="ana", project="P-KEYS")
        published = refreshed.vault.get(s, KEY_CHANGES)
    alias = aliases[aliases["retired_key"] == younger].iloc[0]
    assert (alias["surviving_key"], alias["change"]) == (older, "merged")
    row = changes[changes["retired_person_key"] == younger].iloc[0]
    assert (row["surviving_person_key"], row["change"]) == (older, "merged")
    assert row["lookup_version"] == refreshed.result.lookup_version
    assert published.classification == "confidential"
    assert set(changes.columns) == {
        "retired_person_key",
        "surviving_person_key",
        "change",
        "lookup_version",
        "changed_on",
    }
    kinds = {e["name"]: e["classification"] for e in published.data_dictionary}
    assert kinds["retired_person_key"] == kinds["surviving_person_key"] == "pseudonym"


def grant_key_changes(session, policies: PolicySet) -> None:
    """ana in P-KEYS (naming every agreement, of the basis they permit), granted key changes;
    a project naming none (P-NONE) is refused the grant."""
    accounts.add_researcher(
        session,
        actor="admin",
        policies=policies,
        username="ana",
        full_name="Ana",
        roles=["researcher"],
        accreditation_number="AR-1",
        training_date=date.today() - timedelta(days=1),
    )
    projects.create_project(
        session,
        actor="admin",
        policies=policies,
        code="P-KEYS",
        title="Reoffending over deliveries",
        purpose="p",
        legal_basis=PERMITTED_BASIS,
        start_date=date.today() - timedelta(days=1),
        end_date=date.today() + timedelta(days=30),
        approved_classification="confidential",
        agreements=sorted(standard_agreements(policies.source_dir)),
    )
    projects.add_member(session, actor="admin", policies=policies, code="P-KEYS", username="ana")
    projects.grant_dataset(
        session, actor=STEWARD, policies=policies, code="P-KEYS", dataset_name=KEY_CHANGES
    )


def test_key_changes_and_aliases_carry_the_registers_sources_and_agreements(
    refreshed: Refreshed, policies: PolicySet
) -> None:
    # Review of issue 18 (M1, L3): key changes named only the register, aliases nothing, so no
    # agreement was checked on a grant and none of their ends destroyed them.
    with refreshed.registry.sessions() as s:
        register = refreshed.vault.get(s, PERSON_LOOKUP)
        expected = {source: agreement_for(policies, source) for source in SOURCES}
        assert register.lineage["sources"] == sorted(SOURCES)
        assert register.lineage["agreements"] == expected
        for name in (KEY_CHANGES, KEY_ALIASES):
            lineage = refreshed.vault.get(s, name).lineage
            assert lineage["sources"] == sorted(SOURCES)
            assert lineage["agreements"] == expected
            assert lineage["derived_from"][0].startswith(f"{PERSON_LOOKUP}@")
        projects.create_project(
            s,
            actor="admin",
            policies=policies,
            code="P-NONE",
            title="No agreement",
            purpose="p",
            legal_basis="not a permitted basis",
            start_date=date.today() - timedelta(days=1),
            end_date=date.today() + timedelta(days=30),
            approved_classification="confidential",
        )
        with pytest.raises(AccessDenied, match="legal basis 'not a permitted basis' is not one"):
            projects.grant_dataset(
                s, actor=STEWARD, policies=policies, code="P-NONE", dataset_name=KEY_CHANGES
            )


def test_refresh_f1_is_close_to_a_full_relinks(refreshed: Refreshed) -> None:
    assert refreshed.f1_refresh > 0.97
    assert abs(refreshed.f1_full - refreshed.f1_refresh) <= 0.01


def test_the_change_report_and_audit(refreshed: Refreshed) -> None:
    report = pd.read_csv(refreshed.report)
    assert "merged" in set(report["change"])
    assert stat.S_IMODE(refreshed.report.stat().st_mode) == 0o600
    summary = refreshed.report.with_name("changes.summary.txt").read_text()
    for figure in ("kept", "new", "merged", "split", "retired", "records_added", "seconds"):
        assert f"{figure}: " in summary
    with refreshed.registry.sessions() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "linkage.refresh")).all()
        lookup = refreshed.vault.get(s, PERSON_LOOKUP, refreshed.result.lookup_version)
    assert len(events) == 1
    assert json.loads(events[0].details)["records_added"] == len(refreshed.added)
    assert sorted(lookup.lineage["derived_from"]) == sorted(f"source/{s}@2" for s in SOURCES)


def test_linked_datasets_carry_the_registers_keys(refreshed: Refreshed) -> None:
    with refreshed.registry.sessions() as s:
        linked = publish_linked_datasets(
            s, refreshed.vault, actor=STEWARD, offences=load_offences()
        )
        register = refreshed.vault.read_steward_zone(s, PERSON_LOOKUP, actor=STEWARD)
    assert set(linked.tables["linked/persons"]["person_key"]) == set(register["person_key"])


def test_a_refresh_with_nothing_new_stores_nothing(refreshed: Refreshed) -> None:
    settings = load_linkage_settings()
    with refreshed.registry.sessions() as s:
        version = refreshed.vault.get(s, PERSON_LOOKUP).version
        same_versions = refresh_in_vault(s, refreshed.vault, actor=STEWARD, settings=settings)
        # An empty delivery for the next month: a new version, and no record in it differs.
        delivered = refreshed.report.parents[2] / "delivery" / "victims.csv"
        empty = delivered.with_name("victims-empty.csv")
        empty.write_text(delivered.read_text().splitlines()[0] + "\n")
        ingest_into_vault(
            s,
            refreshed.vault,
            actor=STEWARD,
            source="victims",
            path=empty,
            offences=load_offences(),
            delivery=True,
            period="2025-01",
        )
        same_records = refresh_in_vault(s, refreshed.vault, actor=STEWARD, settings=settings)
        assert refreshed.vault.get(s, PERSON_LOOKUP).version == version
    for again in (same_versions, same_records):
        assert again.lookup_version is None and again.records_added == 0
    assert "no source has a version newer" in same_versions.notes[0]
    assert "no record was added, corrected or withdrawn" in same_records.notes[-1]


def test_refresh_before_any_link_is_refused(tmp_path: Path, policies: PolicySet) -> None:
    simulation = simulate(60, 2)
    write_simulation(simulation, tmp_path / "sim")
    registry, vault = deployment(tmp_path / "home", policies)
    with registry.sessions() as s:
        ingest(s, vault, read_extracts(tmp_path / "sim" / "extracts"), tmp_path / "in")
        with pytest.raises(PipelineError, match=r"run `srs link run` first"):
            refresh_in_vault(s, vault, actor=STEWARD, settings=load_linkage_settings())


def test_a_hand_edited_model_is_refused(tmp_path: Path, policies: PolicySet) -> None:
    simulation = simulate(60, 2)
    write_simulation(simulation, tmp_path / "sim")
    registry, vault = deployment(tmp_path / "home", policies)
    with registry.sessions() as s:
        ingest(s, vault, read_extracts(tmp_path / "sim" / "extracts"), tmp_path / "in")
        link_in_vault(s, vault, actor=STEWARD, settings=load_linkage_settings())
        vault.store(s, LINKAGE_MODEL, pd.DataFrame({"model_json": ["{not json"]}), actor=STEWARD)
        with pytest.raises(PipelineError, match="no readable model"):
            refresh_in_vault(s, vault, actor=STEWARD, settings=load_linkage_settings())


def test_a_researcher_cannot_refresh(tmp_path: Path, policies: PolicySet) -> None:
    simulation = simulate(60, 2)
    write_simulation(simulation, tmp_path / "sim")
    registry, vault = deployment(tmp_path / "home", policies)
    with registry.sessions() as s:
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
        ingest(s, vault, read_extracts(tmp_path / "sim" / "extracts"), tmp_path / "in")
        link_in_vault(s, vault, actor=STEWARD, settings=load_linkage_settings())
        with pytest.raises(AccessDenied):
            refresh_in_vault(s, vault, actor="ana", settings=load_linkage_settings())


def test_a_person_whose_new_record_now_names_the_cluster_keeps_the_key(
    refreshed: Refreshed,
) -> None:
    # The key is not the HMAC of the cluster's name: a person joined by a delivered record that
    # sorts first (and so names the cluster now) keeps the key issued before.
    both = refreshed.before.merge(
        refreshed.after, on=["source", "record_id"], suffixes=("_before", "_after")
    )
    renamed = both[both["cluster_id_before"] != both["cluster_id_after"]]
    renamed = renamed[
        renamed["person_key_before"] != keys_by_record(refreshed.before)[refreshed.planted]
    ]
    assert len(renamed) > 0
    moved = renamed["person_key_before"] != renamed["person_key_after"]
    # Only the planted merge changes a key here.
    assert set(renamed.loc[moved, "person_key_after"]) <= {
        keys_by_record(refreshed.after)[refreshed.planted]
    }


def test_a_register_from_before_refreshes_keeps_its_keys(
    tmp_path: Path, policies: PolicySet
) -> None:
    simulation = simulate(80, 6)
    write_simulation(simulation, tmp_path / "sim")
    registry, vault = deployment(tmp_path / "home", policies)
    settings = load_linkage_settings()
    with registry.sessions() as s:
        ingest(s, vault, read_extracts(tmp_path / "sim" / "extracts"), tmp_path / "in")
        link_in_vault(s, vault, actor=STEWARD, settings=settings)
        # What `srs link run` stored before this release: the HMAC of the cluster's name.
        old = vault.read_steward_zone(s, PERSON_LOOKUP, actor=STEWARD)[
            ["source", "record_id", "cluster_id", "person_key"]
        ]
        vault.store(s, PERSON_LOOKUP, old, actor=STEWARD)
        with pytest.raises(PipelineError, match="run `srs link run` once"):
            refresh_in_vault(s, vault, actor=STEWARD, settings=settings)
        link_in_vault(s, vault, actor=STEWARD, settings=settings)
        new = vault.read_steward_zone(s, PERSON_LOOKUP, actor=STEWARD)
    assert keys_by_record(new).equals(keys_by_record(old).reindex(keys_by_record(new).index))
    assert {"key_serial", "identifier_hash"} <= set(new.columns)


def test_refresh_clusters_refuses_records_and_clusters_of_different_links() -> None:
    from srs.pipeline.linkage import LinkageError, refresh_clusters

    held = pd.DataFrame(
        {"unique_id": ["a:1", "a:2"], "source_dataset": "a", "record_id": ["1", "2"]}
    )
    clusters = pd.DataFrame({"unique_id": ["a:1"], "cluster_id": ["a:1"]})
    none = held.iloc[:0]
    with pytest.raises(LinkageError, match="no cluster"):
        refresh_clusters(held, clusters, {}, none, [], load_linkage_settings())
    twice = pd.concat([held.iloc[:1], held.iloc[:1]])
    with pytest.raises(LinkageError, match="twice"):
        refresh_clusters(held, clusters, {}, twice, [], load_linkage_settings())
    with pytest.raises(LinkageError, match="lack column"):
        refresh_clusters(held, clusters, {}, held[["unique_id"]], [], load_linkage_settings())
    # Nothing new and one record withdrawn: the rest keep their clusters.
    both = pd.DataFrame({"unique_id": ["a:1", "a:2"], "cluster_id": ["a:1", "a:1"]})
    kept = refresh_clusters(held, both, {}, none, ["a:1"], load_linkage_settings())
    assert kept[["unique_id", "cluster_id"]].values.tolist() == [["a:2", "a:2"]]


def counting_standardise(monkeypatch) -> list[str]:
    """Record the unique_id of every record the refresh standardises (the real standardise
    runs): a refresh should standardise the delivery's records, not every record."""
    from srs.pipeline import person_linkage
    from srs.pipeline.linkage import incremental, standardisation

    seen: list[str] = []

    def standardise(tables, *args, **kwargs):
        records = standardisation.standardise(tables, *args, **kwargs)
        seen.extend(records["unique_id"])
        return records

    monkeypatch.setattr(incremental, "standardise", standardise)
    monkeypatch.setattr(person_linkage, "standardise", standardise)
    return seen


def deliver(session, vault: Vault, source: str, table: pd.DataFrame, path: Path, period: str):
    """Ingest ``table`` (rows with delivery_action) as ``source``'s delivery for ``period``."""
    table.to_csv(path, index=False)
    ingest_into_vault(
        session,
        vault,
        actor=STEWARD,
        source=source,
        path=path,
        offences=load_offences(),
        delivery=True,
        period=period,
    )


def test_a_refresh_standardises_only_the_delivery_and_sees_a_corrected_field(
    tmp_path: Path, policies: PolicySet, monkeypatch
) -> None:
    simulation = simulate(120, 4)
    write_simulation(simulation, tmp_path / "sim")
    every = read_extracts(tmp_path / "sim" / "extracts")
    cps = every["cps_charging"]
    first = dict(every, cps_charging=cps.iloc[3:].copy())
    registry, vault = deployment(tmp_path / "home", policies)
    settings = load_linkage_settings()
    with registry.sessions() as s:
        ingest(s, vault, first, tmp_path / "in")
        link_in_vault(s, vault, actor=STEWARD, settings=settings)
        # Three records held back arrive; one record's date of birth is corrected (a raw
        # field: the refresh finds it by hash without standardising the others).
        fixed = first["cps_charging"].iloc[[0]].copy()
        day, month, year = fixed["defendant_dob"].iloc[0].split("/")
        fixed["defendant_dob"] = f"{day}/{month}/{int(year) - 1}"
        rows = pd.concat(
            [
                cps.iloc[:3].assign(delivery_action="add"),
                fixed.assign(delivery_action="correct"),
            ]
        )
        deliver(s, vault, "cps_charging", rows, tmp_path / "d1.csv", DELIVERY_PERIOD)
        seen = counting_standardise(monkeypatch)
        result = refresh_in_vault(s, vault, actor=STEWARD, settings=settings)
        register = vault.read_steward_zone(s, PERSON_LOOKUP, actor=STEWARD)
        stored = vault.get(s, LINKAGE_RECORDS)
        lineage = stored.lineage["derived_from"]
        sources = [f"source/{x}@{vault.get(s, f'source/{x}').version}" for x in SOURCES]
        kept = vault.read_steward_zone(s, LINKAGE_RECORDS, actor=STEWARD)
    expected = {f"cps_charging:{i}" for i in rows["cps_urn"]}
    assert sorted(seen) == sorted(expected)
    assert (result.records_added, result.records_changed) == (3, 1)
    assert not any("every record was standardised" in n for n in result.notes)
    # The next refresh reads the records this one stored: their lineage names the register
    # version and the sources (an ended agreement's data are found in them).
    assert sorted(lineage) == sorted([*sources, f"{PERSON_LOOKUP}@{result.lookup_version}"])
    assert set(kept["unique_id"]) == set(
        register["source"].astype(str) + ":" + register["record_id"].astype(str)
    )
    corrected = kept.set_index("unique_id").loc[f"cps_charging:{fixed['cps_urn'].iloc[0]}"]
    assert corrected["birth_year"] == str(int(year) - 1)


def test_a_register_of_an_older_link_refreshes_by_standardising_every_record(
    tmp_path: Path, policies: PolicySet, monkeypatch
) -> None:
    simulation = simulate(80, 6)
    write_simulation(simulation, tmp_path / "sim")
    every = read_extracts(tmp_path / "sim" / "extracts")
    cps = every["cps_charging"]
    first = dict(every, cps_charging=cps.iloc[2:].copy())
    total = sum(len(t) for t in every.values())
    registry, vault = deployment(tmp_path / "home", policies)
    settings = load_linkage_settings()
    with registry.sessions() as s:
        ingest(s, vault, first, tmp_path / "in")
        link_in_vault(s, vault, actor=STEWARD, settings=settings)
        rows = cps.iloc[:2].assign(delivery_action="add")
        deliver(s, vault, "cps_charging", rows, tmp_path / "d1.csv", DELIVERY_PERIOD)
        # A hand-edited steward/linkage_records (no raw hashes) is refused, not trusted.
        linked = vault.read_steward_zone(s, LINKAGE_RECORDS, actor=STEWARD)
        lineage = vault.get(s, LINKAGE_RECORDS).lineage
        vault.store(
            s, LINKAGE_RECORDS, linked.drop(columns="raw_hash"), actor=STEWARD, lineage=lineage
        )
        with pytest.raises(PipelineError, match="lacks the records' ids or raw hashes"):
            refresh_in_vault(s, vault, actor=STEWARD, settings=settings)
        # A register stored by a link from before linkage records were kept: none names it.
        register = vault.read_steward_zone(s, PERSON_LOOKUP, actor=STEWARD)
        vault.store(
            s, PERSON_LOOKUP, register, actor=STEWARD, lineage=vault.get(s, PERSON_LOOKUP).lineage
        )
        seen = counting_standardise(monkeypatch)
        result = refresh_in_vault(s, vault, actor=STEWARD, settings=settings)
        assert len(seen) == total  # the old way: every record standardised
        assert any("every record was standardised" in n for n in result.notes)
        assert result.records_added == 2
        assert (
            f"{PERSON_LOOKUP}@{result.lookup_version}"
            in (vault.get(s, LINKAGE_RECORDS).lineage["derived_from"])
        )
        # The next refresh reads them: only the delivery's record is standardised.
        seen.clear()
        more = cps.iloc[[5]].assign(defendant_surname="Quasimodo", delivery_action="correct")
        deliver(s, vault, "cps_charging", more, tmp_path / "d2.csv", "2025-01")
        again = refresh_in_vault(s, vault, actor=STEWARD, settings=settings)
        assert seen == [f"cps_charging:{cps['cps_urn'].iloc[5]}"]
        assert (again.records_added, again.records_changed) == (0, 1)
        # Kept records destroyed (an agreement ended): the next refresh does it the old way.
        vault.shred(s, vault.get(s, LINKAGE_RECORDS), actor=STEWARD, reason="test")
        seen.clear()
        last = cps.iloc[[6]].assign(defendant_surname="Zebedee", delivery_action="correct")
        deliver(s, vault, "cps_charging", last, tmp_path / "d3.csv", "2025-02")
        third = refresh_in_vault(s, vault, actor=STEWARD, settings=settings)
    assert len(seen) == total and third.records_changed == 1
    assert any("every record was standardised" in n for n in third.notes)


def test_find_delivery_compares_raw_fields_by_hash() -> None:
    from srs.pipeline.ingest import load_dictionary
    from srs.pipeline.linkage import LinkageError, mapping_from_dictionary
    from srs.pipeline.linkage.incremental import find_delivery, raw_hashes

    simulation = simulate(40, 1)
    table = simulation.extracts["cps_charging"].astype(str).reset_index(drop=True)
    mappings = {"cps_charging": mapping_from_dictionary(load_dictionary("cps_charging"))}
    linked = raw_hashes({"cps_charging": table}, mappings)
    # The same values under another column type, or headers written with spaces, hash alike.
    assert raw_hashes({"cps_charging": table.astype("string")}, mappings).equals(linked)
    spaced = table.rename(columns=lambda c: f" {c}")
    assert raw_hashes({"cps_charging": spaced}, mappings).equals(linked)
    now = table.iloc[1:].copy()  # the first record withdrawn
    now.loc[now.index[0], "defendant_postcode"] = "ZE1 0AA"  # one corrected
    now = pd.concat([now, table.iloc[[0]].assign(cps_urn="NEW-1")])  # one added
    found = find_delivery({"cps_charging": now}, mappings, linked)
    assert (found.added, found.changed) == (1, 1)
    assert found.removed == [f"cps_charging:{table['cps_urn'].iloc[0]}"]
    assert sorted(found.tables["cps_charging"]["cps_urn"]) == sorted(
        ["NEW-1", table["cps_urn"].iloc[1]]
    )
    assert find_delivery({"cps_charging": table}, mappings, linked).empty
    with pytest.raises(LinkageError, match="lack column"):
        find_delivery({"cps_charging": table}, mappings, linked[["unique_id"]])
    with pytest.raises(LinkageError, match="appears twice"):
        find_delivery({"cps_charging": pd.concat([table, table.iloc[:1]])}, mappings, linked)
    with pytest.raises(LinkageError, match="no column"):
        raw_hashes({"cps_charging": table.drop(columns="defendant_dob")}, mappings)


def test_key_changes_destroyed_are_stored_again_by_the_next_link(refreshed: Refreshed) -> None:
    # Review of issue 18 (M2): a destroyed newest version counted as present, so key changes
    # stayed destroyed for good and projects could no longer read them. Runs last: it shreds.
    vault = refreshed.vault
    with refreshed.registry.sessions() as s:
        if not any(p.code == "P-KEYS" for p in projects.list_projects(s)):
            grant_key_changes(s, vault.policies)
        newest = vault.get(s, KEY_CHANGES)
        log = vault.read_steward_zone(s, KEY_ALIASES, actor=STEWARD)
        vault.shred(s, newest, actor=STEWARD, reason="agreement DSA-VICTIMS ended")
        s.commit()
        link_in_vault(s, vault, actor=STEWARD, settings=load_linkage_settings())
        again = vault.get(s, KEY_CHANGES)
        assert again.version == newest.version + 1 and again.shredded_at is None
        changes = vault.read(s, KEY_CHANGES, actor="ana", project="P-KEYS")
    # Rebuilt whole from the steward's log, which still holds every change.
    assert set(changes["retired_person_key"]) >= set(log["retired_key"])

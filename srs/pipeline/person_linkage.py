"""Linking persons in the vault: the full link (``srs link run``) and the refresh after a
delivery (``srs link refresh``), with person keys that stay stable.

The steward zone keeps the person register (``steward/person_lookup``: every record's person
and the key issued to it), the trained model (``steward/linkage_model``), the standardised
records the register was linked from with a hash of each one's raw linkage fields
(``steward/linkage_records``: a refresh finds the delivery by hash and standardises only its
records) and every key change (``steward/key_aliases``); ``linked/key_changes`` is its
pseudonymous copy that a project may be granted. The key policy itself is ``srs.pipeline.linkage.person_keys``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from srs.governance.audit import record_event
from srs.pipeline.ingest import (
    known_sources,
    load_dictionary,
)
from srs.pipeline.linkage import (
    LinkageResult,
    LinkageSettings,
    clerical_sample,
    identifier_comparisons,
    link_tables,
    mapping_from_dictionary,
    standardise,
)
from srs.pipeline.linkage.incremental import raw_hashes, refresh_clusters, standardised_delivery
from srs.pipeline.linkage.person_keys import (
    CHANGE_KINDS,
    KeyReconciliation,
    reconcile_person_keys,
)
from srs.pipeline.stewardship import (
    PERSON_LOOKUP,
    PipelineError,
    newest_sources,
    pseudonymiser,
    source_dataset_name,
)
from srs.vault.store import Vault

LINKAGE_MODEL = "steward/linkage_model"
KEY_ALIASES = "steward/key_aliases"
KEY_CHANGES = "linked/key_changes"
LINKAGE_RECORDS = "steward/linkage_records"


def link_in_vault(
    session: Session,
    vault: Vault,
    *,
    actor: str,
    settings: LinkageSettings,
    clerical_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> LinkageResult:
    """Link every stored source in full, store the person register (steward zone), the
    trained model and the key changes, write the review sample.

    Every record is linked again (so a split is found here, never by a refresh), then the keys
    are reconciled with the register before (``reconcile_person_keys``): a person's key does
    not change while their records still link.
    """
    tables, derived_from = newest_sources(session, vault, actor=actor)
    mappings = {
        s: mapping_from_dictionary(load_dictionary(s, vault.policies.source_dir)) for s in tables
    }
    result = link_tables(tables, mappings, settings, progress)
    reconciliation = reconcile_person_keys(
        _previous_register(session, vault, actor=actor),
        result.lookup,
        pseudonymiser(session, vault, actor=actor),
        retired=_retired_keys(session, vault, actor=actor),
    )
    version = _store_register(
        session,
        vault,
        actor=actor,
        reconciliation=reconciliation,
        records=result.records,
        model=result.model,
        derived_from=derived_from,
    )
    _store_linkage_records(
        session,
        vault,
        actor=actor,
        records=result.records,
        hashes=raw_hashes(tables, mappings),
        version=version,
        derived_from=derived_from,
    )
    if clerical_path is not None:
        clerical_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        clerical_sample(result, settings).to_csv(clerical_path, index=False)
        clerical_path.chmod(0o600)
    record_event(
        session,
        actor=actor,
        action="linkage.run",
        target=f"{PERSON_LOOKUP}@{version}",
        outcome="ok",
        details={
            "records": len(result.records),
            "clusters": int(result.lookup["cluster_id"].nunique()),
            "sources": sorted(tables),
            "derived_from": derived_from,
            "keys": reconciliation.report,
            "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
        },
    )
    session.commit()
    return result


@dataclass(frozen=True)
class RefreshResult:
    """What ``srs link refresh`` did: the register after it, the key changes and the figures."""

    lookup: pd.DataFrame  # the register stored: source, record_id, cluster_id, person_key, ...
    changes: pd.DataFrame  # retired_key, surviving_key, change, detail
    keys: dict[str, int]  # kept, new, merged, split, withdrawn, retired
    records_added: int
    records_changed: int
    records_removed: int
    seconds: float
    lookup_version: int | None  # None when nothing had changed (nothing stored)
    report_path: Path | None
    notes: list[str]


def refresh_in_vault(
    session: Session,
    vault: Vault,
    *,
    actor: str,
    settings: LinkageSettings,
    report_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> RefreshResult:
    """Link the records the newest source versions add or correct into the persons of the
    register, with the model the last full link trained; withdrawn records leave.

    The records the register was built from are not linked again: a refresh can join persons
    (a merge keeps the older key; the other becomes an alias in ``steward/key_aliases``) but
    never split one; ``srs link run`` relinks everything. Refused until a full link has
    stored a register and a model. Writes the steward's change report (CSV, and a summary
    beside it) to ``report_path``.
    """
    import time

    start = time.perf_counter()
    say = progress or (lambda _m: None)
    for name in (PERSON_LOOKUP, LINKAGE_MODEL):
        if not vault.exists(session, name):
            raise PipelineError(
                f"no {name} yet: a refresh adds to a full link that stored a register and a "
                "trained model (a link with no two records sure to match trains none); run "
                "`srs link run` first"
            )
        if vault.get(session, name).shredded_at is not None:
            raise PipelineError(
                f"the newest {name} was destroyed when an agreement ended; run `srs link run` "
                "to link the records still held and store a new one"
            )
    previous = _previous_register(session, vault, actor=actor)
    if previous is None or "identifier_hash" not in previous.columns:
        raise PipelineError(
            f"{PERSON_LOOKUP} was stored before refreshes existed and lacks the records' "
            "identifier hashes; run `srs link run` once, then refresh"
        )
    stored_model = vault.read_steward_zone(session, LINKAGE_MODEL, actor=actor)
    try:
        model = json.loads(stored_model["model_json"].iloc[0])
    except (KeyError, IndexError, TypeError, ValueError):
        raise PipelineError(
            f"{LINKAGE_MODEL} holds no readable model (a hand-edited dataset?); run "
            "`srs link run` to train and store one"
        ) from None
    notes: list[str] = []
    built_from = (vault.get(session, PERSON_LOOKUP).lineage or {}).get("derived_from")
    if built_from is not None and sorted(built_from) == sorted(_newest_versions(session, vault)):
        notes.append("no source has a version newer than those the register was built from")
        return _nothing_refreshed(previous, time.perf_counter() - start, notes)
    tables, derived_from = newest_sources(session, vault, actor=actor)
    mappings = {
        s: mapping_from_dictionary(load_dictionary(s, vault.policies.source_dir)) for s in tables
    }
    before = previous.assign(
        unique_id=previous["source"].astype(str) + ":" + previous["record_id"].astype(str)
    ).set_index("unique_id")
    linked = _linked_records(session, vault, actor=actor)
    if linked is not None:
        say("finding the delivery's records")
        found = standardised_delivery(tables, mappings, linked, settings, notes)
        if found is None:
            notes.append("no record was added, corrected or withdrawn since the last link")
            return _nothing_refreshed(previous, time.perf_counter() - start, notes)
        previous_records, new_records, records = found.held, found.new, found.records
        removed, added_count, changed_count = found.removed, found.added, found.changed
        hashes = found.hashes
    else:
        say(f"standardising every record (no {LINKAGE_RECORDS} for this register)")
        notes.append(
            f"no {LINKAGE_RECORDS} is held for this register (a link from before they were "
            "kept, or they were destroyed when an agreement ended): every record was "
            "standardised to find the delivery; this refresh keeps them, so the next one "
            "standardises the delivery's records only"
        )
        records = standardise(tables, mappings, settings, notes)
        hashes = _identifier_hashes(records)
        known = records["unique_id"].isin(before.index)
        was = before["identifier_hash"].reindex(records["unique_id"]).to_numpy()
        changed = known.to_numpy() & (was != hashes.to_numpy())
        fresh = ~known.to_numpy() | changed
        removed = sorted(set(before.index) - set(records["unique_id"]))
        added_count, changed_count = int((~known).sum()), int(changed.sum())
        if not fresh.any() and not removed:
            notes.append("no record was added, corrected or withdrawn since the last link")
            return _nothing_refreshed(previous, time.perf_counter() - start, notes)
        previous_records, new_records = records[~fresh], records[fresh]
        hashes = raw_hashes(tables, mappings)
    settings = identifier_comparisons(settings, mappings, records)
    clusters = refresh_clusters(
        previous_records,
        before.reset_index()[["unique_id", "cluster_id"]],
        model,
        new_records,
        removed,
        settings,
        notes=notes,
        progress=say,
    )
    lookup = clusters[["source_dataset", "record_id", "cluster_id"]].rename(
        columns={"source_dataset": "source"}
    )
    reconciliation = reconcile_person_keys(
        previous,
        lookup,
        pseudonymiser(session, vault, actor=actor),
        retired=_retired_keys(session, vault, actor=actor),
    )
    version = _store_register(
        session,
        vault,
        actor=actor,
        reconciliation=reconciliation,
        records=records,
        model=None,
        derived_from=derived_from,
    )
    _store_linkage_records(
        session,
        vault,
        actor=actor,
        records=records,
        hashes=hashes,
        version=version,
        derived_from=derived_from,
    )
    seconds = time.perf_counter() - start
    figures = {
        **reconciliation.report,
        "records_added": added_count,
        "records_changed": changed_count,
        "records_removed": len(removed),
        "seconds": round(seconds, 2),
    }
    if report_path is not None:
        _write_change_report(report_path, reconciliation.changes, figures, version)
    record_event(
        session,
        actor=actor,
        action="linkage.refresh",
        target=f"{PERSON_LOOKUP}@{version}",
        outcome="ok",
        details={**figures, "derived_from": derived_from},
    )
    session.commit()
    register = vault.read_steward_zone(session, PERSON_LOOKUP, actor=actor, version=version)
    return RefreshResult(
        lookup=register,
        changes=reconciliation.changes,
        keys=reconciliation.report,
        records_added=added_count,
        records_changed=changed_count,
        records_removed=len(removed),
        seconds=seconds,
        lookup_version=version,
        report_path=report_path,
        notes=notes,
    )


def _linked_records(session: Session, vault: Vault, *, actor: str) -> pd.DataFrame | None:
    """The standardised records (with their raw hashes) of the stored register, or None when
    none were stored with its newest version (a link from before they were kept, or they were
    destroyed): the refresh then standardises every record to find the delivery."""
    if not vault.exists(session, LINKAGE_RECORDS):
        return None
    stored = vault.get(session, LINKAGE_RECORDS)
    register = f"{PERSON_LOOKUP}@{vault.get(session, PERSON_LOOKUP).version}"
    if stored.shredded_at is not None or register not in (stored.lineage or {}).get(
        "derived_from", []
    ):
        return None
    linked = vault.read_steward_zone(session, LINKAGE_RECORDS, actor=actor)
    if not {"unique_id", "source_dataset", "record_id", "raw_hash"} <= set(linked.columns):
        raise PipelineError(
            f"{LINKAGE_RECORDS} lacks the records' ids or raw hashes (a hand-edited dataset?); "
            "run `srs link run` to link every record again and store them"
        )
    return linked


def _store_linkage_records(
    session: Session,
    vault: Vault,
    *,
    actor: str,
    records: pd.DataFrame,
    hashes: pd.DataFrame,
    version: int,
    derived_from: list[str],
) -> None:
    """Keep the standardised records the register version was linked from, each with the hash
    of its raw linkage fields (steward zone): the next refresh reads them instead of
    standardising every record again."""
    of_record = hashes.set_index("unique_id")["raw_hash"].reindex(records["unique_id"])
    kept = records.assign(raw_hash=of_record.to_numpy())
    vault.store(
        session,
        LINKAGE_RECORDS,
        kept.reset_index(drop=True),
        actor=actor,
        lineage={"derived_from": [*derived_from, f"{PERSON_LOOKUP}@{version}"]},
    )


def _nothing_refreshed(register: pd.DataFrame, seconds: float, notes: list[str]) -> RefreshResult:
    """A refresh that found nothing to link: the register as it is, nothing stored."""
    return RefreshResult(
        lookup=register,
        changes=pd.DataFrame(columns=["retired_key", "surviving_key", "change", "detail"]),
        keys={"kept": int(register["person_key"].nunique())},
        records_added=0,
        records_changed=0,
        records_removed=0,
        seconds=seconds,
        lookup_version=None,
        report_path=None,
        notes=notes,
    )


def _newest_versions(session: Session, vault: Vault) -> list[str]:
    """ "source/X@v" for the newest version of every stored source."""
    newest = []
    for name in map(source_dataset_name, known_sources(vault.policies.source_dir)):
        if vault.exists(session, name) and vault.get(session, name).shredded_at is None:
            newest.append(f"{name}@{vault.get(session, name).version}")
    return newest


def _previous_register(session: Session, vault: Vault, *, actor: str) -> pd.DataFrame | None:
    """The stored register, or None before the first link. A lookup from before key serials
    (source, record_id, cluster_id, person_key) gets serials in the order of its clusters."""
    if not vault.exists(session, PERSON_LOOKUP):
        return None
    register = vault.read_steward_zone(session, PERSON_LOOKUP, actor=actor)
    if "key_serial" not in register.columns and "person_key" in register.columns:
        order = register.sort_values("cluster_id", kind="stable")["person_key"].drop_duplicates()
        serial = pd.Series(range(1, len(order) + 1), index=order.to_numpy())
        register["key_serial"] = register["person_key"].map(serial)
    return register


def _alias_log(session: Session, vault: Vault, *, actor: str) -> pd.DataFrame | None:
    """The newest held version of the steward's alias log, or None when none is held (none
    stored yet, or its newest version destroyed when an agreement behind it ended)."""
    if not vault.exists(session, KEY_ALIASES):
        return None
    newest = vault.get(session, KEY_ALIASES)
    if newest.shredded_at is not None:
        return None
    return vault.read_steward_zone(session, KEY_ALIASES, actor=actor, version=newest.version)


def _retired_keys(session: Session, vault: Vault, *, actor: str) -> dict[str, int]:
    """Every key retired so far (merged or withdrawn), with its serial: never issued again."""
    log = _alias_log(session, vault, actor=actor)
    if log is None:
        return {}
    aliases = log[log["change"] != "split"]
    return dict(zip(aliases["retired_key"], aliases["key_serial"].astype(int), strict=True))


def _identifier_hashes(records: pd.DataFrame) -> pd.Series:
    """A hash of each standardised record's identifiers: a record whose hash differs from the
    register's was corrected and is linked again."""
    columns = sorted(c for c in records.columns if c not in ("unique_id", "source_dataset"))
    values = records[columns].astype("string").fillna("\x00")
    hashed = pd.util.hash_pandas_object(values, index=False).to_numpy()
    return pd.Series([f"{h:016x}" for h in hashed], index=records.index, dtype="string")


_KEY_CHANGES_DICTIONARY = [
    {
        "name": "retired_person_key",
        "type": "string",
        "description": "The person_key that changed: retired (merged, withdrawn) or, for a "
        "split, the key part of its records had",
        "classification": "pseudonym",
    },
    {
        "name": "surviving_person_key",
        "type": "string",
        "description": "The person_key those records have now (missing when withdrawn)",
        "classification": "pseudonym",
    },
    {
        "name": "change",
        "type": "string",
        "description": "merged (two persons found to be one: the older key survives), split "
        "(records of one person found to be another) or withdrawn (no records left)",
        "classification": "research",
        "values": list(CHANGE_KINDS),
    },
    {
        "name": "lookup_version",
        "type": "integer",
        "description": "The version of the person register (and of the linked datasets built "
        "on it) from which the change holds",
        "classification": "research",
    },
    {
        "name": "changed_on",
        "type": "date",
        "description": "The date of the link or refresh that made the change",
        "classification": "research",
    },
]


def _register_lineage(session: Session, vault: Vault, derived_from: list[str]) -> dict[str, object]:
    """The register's lineage: the sources of the extract versions it was linked from, the
    agreement each was delivered under (from the extract's own lineage) and those versions."""
    sources: list[str] = []
    agreements: dict[str, str] = {}
    for entry in derived_from:
        name, _, number = entry.rpartition("@")
        extract = vault.get(session, name, int(number))
        lineage = extract.lineage if isinstance(extract.lineage, dict) else {}
        named = lineage.get("agreements") if isinstance(lineage.get("agreements"), dict) else {}
        for source in lineage.get("sources") or [name.removeprefix("source/")]:
            if isinstance(source, str) and source not in sources:
                sources.append(source)
            if isinstance(source, str) and isinstance(named.get(source), str):
                agreements[source] = named[source]
    return {"sources": sorted(sources), "agreements": agreements, "derived_from": derived_from}


def _store_register(
    session: Session,
    vault: Vault,
    *,
    actor: str,
    reconciliation: KeyReconciliation,
    records: pd.DataFrame,
    model: dict | None,
    derived_from: list[str],
) -> int:
    """Store the register (with each record's identifier hash), the model when one was
    trained, and the key changes: aliases in the steward zone, pseudonyms in linked/.

    The register carries the lineage of the extracts it was linked from (their sources and
    agreements); the alias log and ``linked/key_changes`` carry the same sources and agreements,
    derived from the register's version, so the access check and the end of an agreement
    judge them as the register. ``linked/key_changes`` is stored again when its newest
    version was destroyed (an agreement ended), even with no key change."""
    lineage = _register_lineage(session, vault, derived_from)
    hashes = pd.Series(
        _identifier_hashes(records).to_numpy(),
        index=pd.MultiIndex.from_arrays([records["source_dataset"], records["record_id"]]),
    )
    register = reconciliation.register.copy()
    register["identifier_hash"] = hashes.reindex(
        pd.MultiIndex.from_arrays([register["source"], register["record_id"]])
    ).to_numpy()
    stored = vault.store(
        session,
        PERSON_LOOKUP,
        register,
        actor=actor,
        lineage=lineage,
        change_summary=dict(reconciliation.report),
    )
    if model is not None:
        vault.store(
            session,
            LINKAGE_MODEL,
            pd.DataFrame({"model_json": [json.dumps(model)], "lookup_version": [stored.version]}),
            actor=actor,
            lineage=lineage,
        )
    behind = {
        "sources": lineage["sources"],
        "agreements": lineage["agreements"],
        "derived_from": [f"{PERSON_LOOKUP}@{stored.version}"],
    }
    changes = reconciliation.changes
    now = pd.Timestamp.now(tz="UTC")
    history = None
    if len(changes):
        # The steward zone's log of every key change: merged and withdrawn rows are the
        # aliases (retired key -> surviving key); split rows retire nothing.
        serials = changes["retired_key"].map(reconciliation.retired_serials).astype("Int64")
        history = changes.assign(
            key_serial=serials, changed_at=now.isoformat(), lookup_version=stored.version
        )
        log = _alias_log(session, vault, actor=actor)
        if log is not None:
            history = pd.concat([log, history], ignore_index=True)
        vault.store(session, KEY_ALIASES, history, actor=actor, lineage=behind)
    published_before = (
        vault.get(session, KEY_CHANGES) if vault.exists(session, KEY_CHANGES) else None
    )
    if history is not None or published_before is None or published_before.shredded_at:
        # Researchers' copy: the pseudonyms and when, rebuilt whole from the steward's log
        # (a steward may not read linked/ datasets outside a project).
        if history is None:
            # No change now: the log held so far, or none (the first link, or a log destroyed).
            history = _alias_log(session, vault, actor=actor)
        if history is None:
            history = changes.assign(
                changed_at=pd.Series(dtype="string"), lookup_version=pd.Series(dtype="Int64")
            )
        published = pd.DataFrame(
            {
                "retired_person_key": history["retired_key"].astype("string"),
                "surviving_person_key": history["surviving_key"].astype("string"),
                "change": history["change"].astype("string"),
                "lookup_version": history["lookup_version"].astype("Int64"),
                "changed_on": pd.to_datetime(history["changed_at"], utc=True)
                .dt.tz_localize(None)
                .dt.normalize()
                .astype("datetime64[ns]"),
            }
        )
        vault.store(
            session,
            KEY_CHANGES,
            published,
            actor=actor,
            data_dictionary=_KEY_CHANGES_DICTIONARY,
            lineage=behind,
        )
    return stored.version


def _write_change_report(
    path: Path, changes: pd.DataFrame, figures: dict[str, float], version: int
) -> None:
    """The steward's change report: every key change (CSV) and a summary beside it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    changes.to_csv(path, index=False)
    path.chmod(0o600)
    summary = path.with_name(path.stem + ".summary.txt")
    lines = [f"{PERSON_LOOKUP} version {version}"]
    lines += [f"{name}: {value}" for name, value in figures.items()]
    summary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary.chmod(0o600)

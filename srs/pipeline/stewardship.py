"""The steward's pipeline over a deployment: ingest extracts into the vault, link persons,
build the linked research datasets.

Everything identifiable stays in the steward zone of the vault (``source/*``: validated
extracts; ``steward/*``: the person lookup and the pseudonymisation key). Only the
de-identified ``linked/*`` datasets can ever be granted to projects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NoReturn

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.errors import SRSError
from srs.governance.access import authorise, stored_dataset
from srs.governance.agreements import BASE_PERIOD, check_delivery, terms_of
from srs.governance.audit import record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.models import Dataset, Delivery
from srs.pipeline.deid import Pseudonymiser, generate_pseudonym_key
from srs.pipeline.deliveries import (
    DeliveryChanges,
    apply_delivery,
    delivery_quality,
    event_date_column,
    period_start_end,
    write_quality_report,
)
from srs.pipeline.ingest import (
    IngestResult,
    SchemaError,
    ingest_file,
    known_sources,
    load_dictionary,
    write_rejects,
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
from srs.pipeline.linkage.incremental import refresh_clusters
from srs.pipeline.linkage.person_keys import (
    CHANGE_KINDS,
    KeyReconciliation,
    reconcile_person_keys,
)
from srs.pipeline.linked_datasets import (
    JUSTICE_SOURCES,
    LinkedDatasets,
    build_linked_datasets,
    empty_source,
)
from srs.pipeline.offences import OffenceList
from srs.vault.store import Vault

PERSON_LOOKUP = "steward/person_lookup"
PSEUDONYM_KEY = "steward/pseudonymisation_key"
LINKAGE_MODEL = "steward/linkage_model"
KEY_ALIASES = "steward/key_aliases"
KEY_CHANGES = "linked/key_changes"


class PipelineError(SRSError):
    """A pipeline step is missing its inputs (e.g. linking before anything was ingested)."""


def source_dataset_name(source: str) -> str:
    """The vault name of a source's validated extract."""
    return f"source/{source}"


def ingest_into_vault(
    session: Session,
    vault: Vault,
    *,
    actor: str,
    source: str,
    path: Path,
    offences: OffenceList,
    rejects_path: Path | None = None,
    delivery: bool = False,
    period: str | None = None,
    today: date | None = None,
    report_dir: Path | None = None,
) -> tuple[IngestResult, Dataset]:
    """Take an extract of ``source`` into the vault under the agreement that covers it.

    Without ``delivery`` the file is the source's base extract (period ``base``); with it, the
    delivery for ``period`` (``2024-11``), whose rows are added, corrected or withdrawn
    (``delivery_action``) against the table held, stored as the next version with its lineage.
    Before the file is read, the actor must be allowed to store ``source/SOURCE`` (stewards)
    and ``check_delivery`` refuses (audited) an extract with no agreement in force for the
    source, outside its duration, in another format or periodicity, or for a period already
    delivered; a file already ingested under the agreement is refused too. The rejects go to
    ``rejects_path`` (default FILE.rejects.csv), the quality report for the agency to
    ``report_dir`` (default beside the file: FILE.quality.json and FILE.quality.md), and a
    ``Delivery`` record holds the counts, changes and quality.
    """
    path = Path(path)
    today = today or datetime.now(UTC).date()
    name = source_dataset_name(source)
    if delivery and not period:
        raise PipelineError(
            f"a delivery of {source} needs the period it covers (--period YYYY-MM, e.g. 2024-11)"
        )
    if not delivery and period not in (None, BASE_PERIOD):
        raise PipelineError(
            f"period {period!r} was given for a base extract; ingest a periodic delivery with "
            "--delivery --period"
        )
    period = period if delivery else BASE_PERIOD
    file_format = path.suffix.lower().lstrip(".") or "(no suffix)"
    # Only a steward takes extracts in: anyone else is refused before the agreement is looked up.
    authorise(
        session, username=actor, action="dataset.store", policies=vault.policies, dataset_name=name
    )
    version = check_delivery(
        session,
        actor=actor,
        policies=vault.policies,
        source=source,
        file_format=file_format,
        period=period,
        today=today,
    )
    terms = terms_of(version)
    if not path.is_file():
        missing = SchemaError(f"{path}: no such file")
        _refuse(session, actor, source, period, str(missing), vault.policies, missing)
    file_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    again = session.scalars(
        # An empty delivery (no rows this period) may well repeat an earlier one byte for byte.
        select(Delivery).where(
            Delivery.source == source,
            Delivery.agreement_id == version.agreement_id,
            Delivery.file_sha256 == file_sha256,
            Delivery.rows_in > 0,
        )
    ).first()
    if again is not None:
        _refuse(
            session,
            actor,
            source,
            period,
            f"{path.name} has the same content as {again.file_name}, already ingested as "
            f"delivery {again.id} of {source} (period {again.period}, received "
            f"{again.received_at.date().isoformat()}); a correction comes in the next "
            "period's delivery",
            vault.policies,
        )
    dictionary = load_dictionary(source, vault.policies.source_dir)
    previous = None
    if delivery:
        if not vault.exists(session, name):
            _refuse(
                session,
                actor,
                source,
                period,
                f"no base extract of {source} is held; ingest it first (srs ingest {source} FILE)",
                vault.policies,
            )
        previous = vault.read_steward_zone(session, name, actor=actor)
    held = previous[dictionary.record_id] if previous is not None else None
    periodicity = terms.data_for(source).periodicity
    column = event_date_column(dictionary)
    events_until = (
        (column, period_start_end(period, periodicity)[1])
        if previous is not None and column is not None
        else None
    )
    try:
        result = ingest_file(path, dictionary, offences, held_ids=held, events_until=events_until)
    except SchemaError as exc:
        _refuse(session, actor, source, period, str(exc), vault.policies, exc)
    if previous is not None:
        table, changes = apply_delivery(previous, result.accepted, dictionary, period, periodicity)
    else:
        table = result.accepted
        changes = DeliveryChanges(result.rows_accepted, 0, 0, 0, BASE_PERIOD)
    earlier = session.scalars(
        select(Delivery).where(Delivery.source == source).order_by(Delivery.id)
    ).all()
    previous_rows = earlier[-1].rows_in if earlier and earlier[-1].period != BASE_PERIOD else None
    quality = delivery_quality(
        result,
        previous_rows,
        changes,
        terms.quality_standards.model_dump(),
        period,
        today,
        periodicity,
    )
    derived_from = [f"{name}@{vault.get(session, name).version}"] if previous is not None else []
    lineage = {
        "sources": [source],
        "agreements": {source: version.agreement.reference},
        "deliveries": [d.id for d in earlier],
        "derived_from": derived_from,
    }
    stored = vault.store(
        session,
        name,
        table,
        actor=actor,
        data_dictionary=dictionary.as_records(),
        lineage=lineage,
        change_summary=changes.as_dict(),
    )
    received = Delivery(
        source=source,
        agreement_id=version.agreement_id,
        agreement_version=version.version,
        period=period,
        file_name=path.name,
        file_format=file_format,
        file_sha256=file_sha256,
        rows_in=result.rows_in,
        rows_accepted=result.rows_accepted,
        rows_rejected=result.rows_rejected,
        changes=changes.as_dict(),
        quality=quality.as_dict(),
        dataset_name=name,
        dataset_version=stored.version,
        received_by=actor,
    )
    session.add(received)
    session.flush()
    # The version lists every delivery it holds, this one too (its id exists only now).
    stored.lineage = {**lineage, "deliveries": [*lineage["deliveries"], received.id]}
    rejects_path = rejects_path or path.with_name(path.name + ".rejects.csv")
    if result.rows_rejected:
        write_rejects(result, rejects_path)
    json_path, md_path = quality_report_paths(path, report_dir)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_quality_report(quality, json_path, md_path)
    record_event(
        session,
        actor=actor,
        action="ingest.delivery" if delivery else "ingest.file",
        target=name,
        outcome="ok",
        details={
            "file": str(path),
            "sha256": result.file_sha256,
            "period": period,
            "agreement": version.agreement.reference,
            "delivery": received.id,
            "rows_in": result.rows_in,
            "accepted": result.rows_accepted,
            "rejected": result.rows_rejected,
            "changes": changes.as_dict(),
            "quality_passed": quality.passed,
            "version": stored.version,
        },
    )
    session.commit()
    return result, stored


def quality_report_paths(path: Path, report_dir: Path | None = None) -> tuple[Path, Path]:
    """Where the quality report of extract ``path`` goes: FILE.quality.json and .md, beside
    the file or in ``report_dir``."""
    folder = report_dir if report_dir is not None else Path(path).parent
    return (
        folder / f"{Path(path).name}.quality.json",
        folder / f"{Path(path).name}.quality.md",
    )


def _refuse(
    session: Session,
    actor: str,
    source: str,
    period: str,
    reason: str,
    policies: PolicySet,
    error: SRSError | None = None,
) -> NoReturn:
    """Audit (committed) and raise the refusal of an extract the agreement check let through:
    ``error`` when given, else a ``PipelineError`` with the reason."""
    record_event(
        session,
        actor=actor,
        action="ingest.refused",
        target=source_dataset_name(source),
        outcome="deny",
        reason=reason,
        details={"period": period},
        max_field_chars=policies.access.audit_field_max_chars,
    )
    session.commit()
    raise error or PipelineError(reason)


def read_sources(session: Session, vault: Vault, *, actor: str) -> dict[str, pd.DataFrame]:
    """The newest validated extract of every source stored so far."""
    tables = {}
    for source in known_sources(vault.policies.source_dir):
        name = source_dataset_name(source)
        # A source whose newest version was destroyed (its agreement ended) is no longer held.
        if vault.exists(session, name) and vault.get(session, name).shredded_at is None:
            tables[source] = vault.read_steward_zone(session, name, actor=actor)
    if not tables:
        raise PipelineError(
            "no source extracts are in the vault yet; run `srs ingest SOURCE FILE` first"
        )
    return tables


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
    tables, derived_from = _newest_sources(session, vault, actor=actor)
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
    tables, derived_from = _newest_sources(session, vault, actor=actor)
    mappings = {
        s: mapping_from_dictionary(load_dictionary(s, vault.policies.source_dir)) for s in tables
    }
    say("standardising the records")
    records = standardise(tables, mappings, settings, notes)
    settings = identifier_comparisons(settings, mappings, records)
    hashes = _identifier_hashes(records)
    before = previous.assign(
        unique_id=previous["source"].astype(str) + ":" + previous["record_id"].astype(str)
    ).set_index("unique_id")
    known = records["unique_id"].isin(before.index)
    was = before["identifier_hash"].reindex(records["unique_id"]).to_numpy()
    changed = known.to_numpy() & (was != hashes.to_numpy())
    fresh = ~known.to_numpy() | changed
    removed = sorted(set(before.index) - set(records["unique_id"]))
    added_count, changed_count = int((~known).sum()), int(changed.sum())
    if not fresh.any() and not removed:
        notes.append("no record was added, corrected or withdrawn since the last link")
        return _nothing_refreshed(previous, time.perf_counter() - start, notes)
    clusters = refresh_clusters(
        records[~fresh],
        before.reset_index()[["unique_id", "cluster_id"]],
        model,
        records[fresh],
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
    return [
        f"{name}@{vault.get(session, name).version}"
        for name in map(source_dataset_name, known_sources(vault.policies.source_dir))
        if vault.exists(session, name)
    ]


def _newest_sources(
    session: Session, vault: Vault, *, actor: str
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The newest version of every stored source, and their names as lineage ("source/X@v")."""
    tables, derived_from = {}, []
    for source in known_sources(vault.policies.source_dir):
        name = source_dataset_name(source)
        if vault.exists(session, name):
            version = vault.get(session, name).version
            tables[source] = vault.read_steward_zone(session, name, actor=actor, version=version)
            derived_from.append(f"{name}@{version}")
    if not tables:
        raise PipelineError(
            "no source extracts are in the vault yet; run `srs ingest SOURCE FILE` first"
        )
    return tables, derived_from


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


def _retired_keys(session: Session, vault: Vault, *, actor: str) -> dict[str, int]:
    """Every key retired so far (merged or withdrawn), with its serial: never issued again."""
    if not vault.exists(session, KEY_ALIASES):
        return {}
    log = vault.read_steward_zone(session, KEY_ALIASES, actor=actor)
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
    trained, and the key changes: aliases in the steward zone, pseudonyms in linked/."""
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
        lineage={"derived_from": derived_from},
        change_summary=dict(reconciliation.report),
    )
    if model is not None:
        vault.store(
            session,
            LINKAGE_MODEL,
            pd.DataFrame({"model_json": [json.dumps(model)], "lookup_version": [stored.version]}),
            actor=actor,
            lineage={"derived_from": derived_from},
        )
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
        if vault.exists(session, KEY_ALIASES):
            history = pd.concat(
                [vault.read_steward_zone(session, KEY_ALIASES, actor=actor), history],
                ignore_index=True,
            )
        vault.store(session, KEY_ALIASES, history, actor=actor)
    if history is not None or not vault.exists(session, KEY_CHANGES):
        # Researchers' copy: the pseudonyms and when, rebuilt whole from the steward's log
        # (a steward may not read linked/ datasets outside a project).
        history = (
            history
            if history is not None
            else changes.assign(
                changed_at=pd.Series(dtype="string"), lookup_version=pd.Series(dtype="Int64")
            )
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
            lineage={"derived_from": [f"{PERSON_LOOKUP}@{stored.version}"]},
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


def pseudonymiser(session: Session, vault: Vault, *, actor: str) -> Pseudonymiser:
    """The deployment's pseudonymiser; its key is created on first use and kept in the vault."""
    if not vault.exists(session, PSEUDONYM_KEY):
        key = generate_pseudonym_key()
        vault.store(session, PSEUDONYM_KEY, pd.DataFrame({"key_hex": [key.hex()]}), actor=actor)
        return Pseudonymiser(key)
    stored = vault.read_steward_zone(session, PSEUDONYM_KEY, actor=actor)
    return Pseudonymiser(bytes.fromhex(stored["key_hex"].iloc[0]))


def publish_linked_datasets(
    session: Session,
    vault: Vault,
    *,
    actor: str,
    offences: OffenceList,
    without: Mapping[str, str] | None = None,
) -> LinkedDatasets:
    """Build ``linked/*`` from the stored sources and lookup, and store them, classified.

    Each table is stored with its lineage: the sources read, the agreement each came under
    (from that source version's lineage), the versions it was built from, and the sources left
    out. A source is left out when ``without`` names it (``{source: why}``, as the end of an
    agreement does before its data are destroyed) or when its newest version was destroyed;
    it is built as an empty extract (``empty_source``) and its records are dropped from the
    lookup, so the tables hold nothing of it. A source never ingested is still refused.
    """
    left_out = dict(without or {})
    held: dict[str, Dataset] = {}
    for source in known_sources(vault.policies.source_dir):
        if source in left_out:
            continue
        stored = stored_dataset(session, source_dataset_name(source))
        if stored is None:
            continue
        if stored.shredded_at is not None:
            left_out[source] = f"destroyed: {stored.shredded_reason}"
            continue
        held[source] = stored
    if not held:
        raise PipelineError(
            "no source extracts are in the vault yet; run `srs ingest SOURCE FILE` first"
        )
    lookup_version = stored_dataset(session, PERSON_LOOKUP)
    if lookup_version is None:
        raise PipelineError("no person lookup yet; run `srs link run` first")
    if lookup_version.shredded_at is not None:
        raise PipelineError(
            f"the newest person lookup ({PERSON_LOOKUP}@{lookup_version.version}) was destroyed; "
            "run `srs link run` to link the sources still held"
        )
    missing = sorted(set(JUSTICE_SOURCES) - set(held) - set(left_out))
    if missing:
        raise PipelineError(
            f"the linked datasets need every source; not yet ingested: {', '.join(missing)}"
        )
    sources = {
        source: vault.read_steward_zone(
            session, source_dataset_name(source), actor=actor, version=stored.version
        )
        for source, stored in held.items()
    }
    for source in sorted(set(JUSTICE_SOURCES) & set(left_out)):
        sources[source] = empty_source(load_dictionary(source, vault.policies.source_dir))
    lookup = vault.read_steward_zone(
        session, PERSON_LOOKUP, actor=actor, version=lookup_version.version
    )
    lookup = lookup[~lookup["source"].isin(list(left_out))].reset_index(drop=True)
    linked = build_linked_datasets(
        sources, lookup, pseudonymiser(session, vault, actor=actor), offences
    )
    lineage = {
        "sources": sorted(held),
        "agreements": {
            source: named[source]
            for source, stored in sorted(held.items())
            if isinstance(stored.lineage, dict)
            and isinstance(named := stored.lineage.get("agreements"), dict)
            and source in named
        },
        "derived_from": [
            *(f"{stored.name}@{stored.version}" for _, stored in sorted(held.items())),
            f"{PERSON_LOOKUP}@{lookup_version.version}",
        ],
        **({"left_out": dict(sorted(left_out.items()))} if left_out else {}),
    }
    for name, table in linked.tables.items():
        vault.store(
            session,
            name,
            table,
            actor=actor,
            data_dictionary=linked.dictionaries[name],
            lineage=lineage,
        )
    record_event(
        session,
        actor=actor,
        action="linked.build",
        target="linked/*",
        outcome="ok",
        details={**linked.report, **({"left_out": sorted(left_out)} if left_out else {})},
    )
    session.commit()
    return linked


@dataclass(frozen=True)
class SourceFile:
    """One extract to ingest."""

    source: str
    path: Path

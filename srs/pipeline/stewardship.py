"""The steward's pipeline over a deployment: ingest extracts into the vault, link persons,
build the linked research datasets.

Everything identifiable stays in the steward zone of the vault (``source/*``: validated
extracts; ``steward/*``: the person lookup and the pseudonymisation key). Only the
de-identified ``linked/*`` datasets can ever be granted to projects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NoReturn

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.errors import SRSError
from srs.governance.access import authorise, stored_dataset
from srs.governance.agreements import (
    BASE_PERIOD,
    check_delivery,
    delivered_period_bounds,
    terms_of,
)
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
    INGEST_POLICY_FILE,
    IngestResult,
    SchemaError,
    UnsharedVariables,
    ingest_file,
    known_sources,
    load_dictionary,
    load_ingest_policy,
    write_rejects,
)
from srs.pipeline.ingest import file_sha256 as hash_file
from srs.pipeline.linked_datasets import (
    JUSTICE_SOURCES,
    LinkedDatasets,
    build_linked_datasets,
    empty_source,
    extract_date,
)
from srs.pipeline.offences import OffenceList
from srs.vault.store import Vault

PERSON_LOOKUP = "steward/person_lookup"
PSEUDONYM_KEY = "steward/pseudonymisation_key"


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
        _refuse(
            session,
            actor,
            source,
            "",
            f"a delivery of {source} needs the period it covers (--period YYYY-MM, e.g. 2024-11)",
            vault.policies,
        )
    if not delivery and period not in (None, BASE_PERIOD):
        _refuse(
            session,
            actor,
            source,
            str(period),
            f"period {period!r} was given for a base extract; ingest a periodic delivery with "
            "--delivery --period",
            vault.policies,
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
    reference = version.agreement.reference
    level = vault.policies.classification.level_for(name)
    ceiling = terms.confidentiality_security.max_classification
    if not vault.policies.classification.at_most(level, ceiling):
        _refuse(
            session,
            actor,
            source,
            period,
            f"{name} is held {level}, above {ceiling}, the most agreement {reference} (version "
            f"{version.version}) allows; nothing was taken in: amend the agreement or the "
            "classification policy",
            vault.policies,
        )
    if not path.is_file():
        missing = SchemaError(f"{path}: no such file")
        _refuse(session, actor, source, period, str(missing), vault.policies, missing)
    size, limit = path.stat().st_size, load_ingest_policy(vault.policies.source_dir)
    if size > limit.max_extract_bytes:
        _refuse(
            session,
            actor,
            source,
            period,
            f"{path.name} is {size:,} bytes, more than the {limit.max_extract_bytes:,} "
            f"ingest takes (max_extract_bytes in {INGEST_POLICY_FILE}); ask the provider to "
            "split it by period, or raise the limit",
            vault.policies,
        )
    file_sha256 = hash_file(path)
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
    shared = terms.data_for(source).variables
    try:
        result = ingest_file(
            path,
            dictionary,
            offences,
            held_ids=held,
            events_until=events_until,
            variables=None if shared == ["*"] else shared,
            sha256=file_sha256,
        )
    except UnsharedVariables as exc:
        reason = (
            f"{exc} (agreement {reference}, version {version.version}, lists {', '.join(shared)})"
        )
        _refuse(
            session,
            actor,
            source,
            period,
            reason,
            vault.policies,
            UnsharedVariables(reason, variables=exc.variables, rows=exc.rows),
            {"variables": exc.variables, "rows": exc.rows, "agreement": reference},
        )
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
    details: dict[str, object] | None = None,
) -> NoReturn:
    """Audit (committed) and raise the refusal of an extract: ``error`` when given, else a
    ``PipelineError`` with the reason."""
    record_event(
        session,
        actor=actor,
        action="ingest.refused",
        target=source_dataset_name(source),
        outcome="deny",
        reason=reason,
        details={"period": period, **(details or {})},
        max_field_chars=policies.access.audit_field_max_chars,
    )
    session.commit()
    raise error or PipelineError(reason)


def read_sources(session: Session, vault: Vault, *, actor: str) -> dict[str, pd.DataFrame]:
    """The newest validated extract of every source stored so far."""
    return newest_sources(session, vault, actor=actor)[0]


def newest_sources(
    session: Session, vault: Vault, *, actor: str
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The newest version of every stored source, and their names as lineage ("source/X@v").

    A source whose newest version was destroyed (its agreement ended) is no longer held.
    """
    tables, derived_from = {}, []
    for source in known_sources(vault.policies.source_dir):
        name = source_dataset_name(source)
        if not vault.exists(session, name):
            continue
        newest = vault.get(session, name)
        if newest.shredded_at is not None:
            continue
        tables[source] = vault.read_steward_zone(session, name, actor=actor, version=newest.version)
        derived_from.append(f"{name}@{newest.version}")
    if not tables:
        raise PipelineError(
            "no source extracts are in the vault yet; run `srs ingest SOURCE FILE` first"
        )
    return tables, derived_from


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
    unrecorded = sorted(
        f"{stored.name}@{stored.version}"
        for source, stored in held.items()
        if not isinstance(stored.lineage, dict)
        or not isinstance(stored.lineage.get("agreements"), dict)
        or source not in stored.lineage["agreements"]
    )
    if unrecorded:
        # Linked data carry the agreement of every source in them; an extract whose lineage
        # names none (a hand-edited registry row) cannot go in.
        raise PipelineError(
            f"no agreement is recorded in the lineage of {', '.join(unrecorded)}; the linked "
            "datasets carry the agreement of every source in them: ingest the source again "
            "under its agreement (`srs ingest`) or restore the registry from backup"
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
        sources,
        lookup,
        pseudonymiser(session, vault, actor=actor),
        offences,
        extract_end=_data_end(session, sources, list(held)),
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


def _data_end(session: Session, sources: dict[str, pd.DataFrame], held: list[str]) -> pd.Timestamp:
    """The day the data run to: the end of the newest period delivered for the sources held,
    or the latest event date in them if that is later (or no period was delivered)."""
    periods = session.execute(
        select(Delivery.period).where(Delivery.source.in_(held), Delivery.period != BASE_PERIOD)
    ).scalars()
    ends = [extract_date(sources)]
    for period in set(periods):
        bounds = delivered_period_bounds(period)
        if bounds is not None:  # a period written in no periodicity: the event dates stand
            ends.append(pd.Timestamp(bounds[1]))
    return max(ends)


@dataclass(frozen=True)
class SourceFile:
    """One extract to ingest."""

    source: str
    path: Path

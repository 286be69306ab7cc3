"""The steward's pipeline over a deployment: ingest extracts into the vault, link persons,
build the linked research datasets.

Everything identifiable stays in the steward zone of the vault (``source/*``: validated
extracts; ``steward/*``: the person lookup and the pseudonymisation key). Only the
de-identified ``linked/*`` datasets can ever be granted to projects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from srs.errors import SRSError
from srs.governance.access import stored_dataset
from srs.governance.audit import record_event
from srs.governance.registry.models import Dataset
from srs.pipeline.deid import Pseudonymiser, generate_pseudonym_key
from srs.pipeline.ingest import (
    IngestResult,
    ingest_file,
    known_sources,
    load_dictionary,
    write_rejects,
)
from srs.pipeline.linkage import (
    LinkageResult,
    LinkageSettings,
    clerical_sample,
    link_tables,
    mapping_from_dictionary,
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
) -> tuple[IngestResult, Dataset]:
    """Validate ``path`` as ``source``, store the accepted rows, write the rejects file."""
    dictionary = load_dictionary(source, vault.policies.source_dir)
    result = ingest_file(path, dictionary, offences)
    rejects_path = rejects_path or Path(path).with_name(Path(path).name + ".rejects.csv")
    if result.rows_rejected:
        write_rejects(result, rejects_path)
    stored = vault.store(
        session,
        source_dataset_name(source),
        result.accepted,
        actor=actor,
        data_dictionary=dictionary.as_records(),
    )
    record_event(
        session,
        actor=actor,
        action="ingest.file",
        target=source_dataset_name(source),
        outcome="ok",
        details={
            "file": str(path),
            "sha256": result.file_sha256,
            "rows_in": result.rows_in,
            "accepted": result.rows_accepted,
            "rejected": result.rows_rejected,
            "version": stored.version,
        },
    )
    session.commit()
    return result, stored


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
    """Link every stored source, store the person lookup (steward zone), write the review sample."""
    tables = read_sources(session, vault, actor=actor)
    mappings = {
        s: mapping_from_dictionary(load_dictionary(s, vault.policies.source_dir)) for s in tables
    }
    result = link_tables(tables, mappings, settings, progress)
    keys = pseudonymiser(session, vault, actor=actor)
    lookup = result.lookup.assign(
        person_key=keys.series(result.lookup["cluster_id"].astype(str), "person")
    )
    vault.store(session, PERSON_LOOKUP, lookup, actor=actor)
    if clerical_path is not None:
        clerical_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        clerical_sample(result, settings).to_csv(clerical_path, index=False)
        clerical_path.chmod(0o600)
    record_event(
        session,
        actor=actor,
        action="linkage.run",
        target=PERSON_LOOKUP,
        outcome="ok",
        details={
            "records": len(result.records),
            "clusters": int(result.lookup["cluster_id"].nunique()),
            "sources": sorted(tables),
            "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
        },
    )
    session.commit()
    return result


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

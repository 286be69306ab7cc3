"""Ending a data-sharing agreement: its data are destroyed by crypto-shredding, what mixed them
with other agreements' data is rebuilt without them, and a destruction certificate is written
for the data provider.

A dataset version holds an agreement's data when its lineage names the agreement
(``lineage["agreements"]``) or it was derived (``lineage["derived_from"]``, followed to the
end) from a version that does. Versions derived only from the ending agreement are shredded.
Versions that mixed it with other agreements' data are shredded too, after the newest of each
is rebuilt without the ending agreement's sources: the person lookup by dropping their records
(every other record keeps its ``person_key``), the linked datasets by building them again with
those sources left out (``publish_linked_datasets(without=...)``).

A version whose lineage names no agreement (stored by hand, or before lineage was recorded)
is judged by where it is: under ``source/X`` it holds every agreement covering ``X`` in any
version of its terms; under ``linked/``, ``steward/`` or ``synthetic/`` it holds every
agreement (so it is rebuilt or destroyed), but for the steward's own lineage-free records
(``LINEAGE_FREE``: the pseudonymisation key and the key-alias log, which hold no source's
records). Before an agreement is marked ended no version under ``source/X`` for a source it
covers may still be held; if one is, the end is refused (audited) and nothing is certified.

The work is resumable: every step is decided from the registry as it stands (what still names
the agreement, what is not yet shredded), and the agreement is marked ended last, so a run
stopped midway is finished by running it again. Ending an ended agreement is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.governance.access import authorise
from srs.governance.agreements import AgreementError, current_version, get_agreement
from srs.governance.audit import record_event
from srs.governance.registry.models import Agreement, AuditEvent, Dataset, utc_now
from srs.pipeline.linked_datasets import DESCRIPTIONS
from srs.pipeline.offences import OffenceList
from srs.pipeline.person_linkage import KEY_ALIASES
from srs.pipeline.stewardship import (
    PERSON_LOOKUP,
    PSEUDONYM_KEY,
    publish_linked_datasets,
    source_dataset_name,
)
from srs.vault.store import Vault

METHOD = (
    "crypto-shredding: the AES-256-GCM data key of every dataset version listed was deleted "
    "from the registry, so its ciphertext can no longer be decrypted by anyone, including "
    "holders of the master key or of a backup of the files"
)
FILES_REMOVED = "; the ciphertext files were removed from the vault"
FILES_LEFT = (
    "; the ciphertext files were removed from the vault except {count} that could not be "
    "(marked 'no' in the list): without their key they cannot be decrypted"
)
EXPORTS_NOTE = (
    "Open-data exports of synthetic replicas already written or published cannot be recalled "
    "by this environment; the replicas themselves are destroyed above."
)
# Steward records that hold no source's records, so a missing lineage does not make them
# hold an agreement: the pseudonymisation key and the log of retired person keys.
LINEAGE_FREE = frozenset({PSEUDONYM_KEY, KEY_ALIASES})
# Areas where a version with no lineage is taken to hold every agreement.
MIXED_AREAS = ("linked/", "steward/", "synthetic/")
LINKED_TABLES = tuple(DESCRIPTIONS)
CERTIFICATE_FOLDER = Path("steward") / "destruction"


class AgreementEndError(AgreementError):
    """An agreement cannot be ended: already ended, or no reason given."""


@dataclass(frozen=True)
class DestroyedVersion:
    """One dataset version destroyed because it held the agreement's data."""

    name: str
    version: int
    rows: int
    content_hash: str
    file: str
    shredded_at: str
    file_removed: bool = True


@dataclass(frozen=True)
class RebuiltDataset:
    """A dataset that mixed the agreement's data with others', stored again without it."""

    name: str
    version: int
    left_out: list[str]


@dataclass
class DestructionCertificate:
    """What was destroyed when an agreement ended, for its data provider.

    ``audit_seq`` and ``audit_hash`` identify the ``agreement.end`` event in the audit log,
    so the provider can ask for the chain to be verified up to it (``srs audit verify``).
    """

    reference: str
    agreement_version: int
    title: str
    providers: list[str]
    ended_at: str
    ended_by: str
    reason: str
    destroyed: list[DestroyedVersion]
    rebuilt: list[RebuiltDataset]
    not_rebuilt: list[str]
    method: str
    audit_seq: int
    audit_hash: str
    exports: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = f"; certificate: {self.files[0]}" if self.files else ""
        left = f", {len(self.not_rebuilt)} not rebuilt" if self.not_rebuilt else ""
        kept = sum(not d.file_removed for d in self.destroyed)
        files = f" ({kept} ciphertext files could not be removed)" if kept else ""
        return (
            f"{len(self.destroyed)} dataset versions destroyed{files}, "
            f"{len(self.rebuilt)} rebuilt{left}{where}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The certificate as plain JSON-ready data."""
        return asdict(self)

    def as_markdown(self) -> str:
        """The certificate as a text a person reads (the JSON is the record)."""
        lines = [
            f"# Destruction certificate: agreement {self.reference}",
            "",
            f"- Agreement: {self.reference} ({self.title}), terms version {self.agreement_version}",
            f"- Data provider(s): {', '.join(self.providers) or 'none recorded'}",
            f"- Ended: {self.ended_at} by {self.ended_by}",
            f"- Reason: {self.reason}",
            f"- Method: {self.method}",
            f"- Audit event: agreement.end, sequence number {self.audit_seq}, "
            f"SHA-256 chain hash {self.audit_hash}; ask the environment to run "
            "`srs audit verify` to confirm the log is intact up to and past it.",
            "",
            f"## Dataset versions destroyed ({len(self.destroyed)})",
            "",
        ]
        if self.destroyed:
            lines += [
                "| Dataset | Version | Rows | Content SHA-256 | File | File removed "
                "| Destroyed at |",
                "|---|---|---|---|---|---|---|",
                *(
                    f"| {d.name} | {d.version} | {d.rows} | {d.content_hash} | {d.file} "
                    f"| {'yes' if d.file_removed else 'no'} | {d.shredded_at} |"
                    for d in self.destroyed
                ),
            ]
        else:
            lines.append("No dataset version held data received under this agreement.")
        lines += [
            "",
            f"## Datasets rebuilt without this agreement's data ({len(self.rebuilt)})",
            "",
        ]
        lines += [
            f"- {r.name}, new version {r.version} (sources left out: {', '.join(r.left_out)})"
            for r in self.rebuilt
        ] or ["None."]
        if self.not_rebuilt:
            lines += [
                "",
                "## Datasets destroyed and not rebuilt",
                "",
                "They mixed this agreement's data with others' and have no rebuild here; the "
                "steward builds them again from the data still held (the linkage model and "
                "linked/key_changes by a full `srs link run`, synthetic replicas by "
                "`srs synth build`).",
                "",
                *(f"- {name}" for name in self.not_rebuilt),
            ]
        if any(d.name.startswith("synthetic/") for d in self.destroyed):
            lines += ["", "## Open-data exports", "", EXPORTS_NOTE]
            lines += (
                [
                    "",
                    "Exports recorded in the audit log (written before the end):",
                    "",
                    *(f"- {path}" for path in self.exports),
                ]
                if self.exports
                else ["", "The audit log records no open-data export of the replicas."]
            )
        return "\n".join(lines) + "\n"


def lineage_of(dataset: Dataset) -> dict[str, Any]:
    """A version's lineage with each part of the shape it should have (``sources`` and
    ``derived_from`` lists, ``agreements`` and ``left_out`` mappings); a hand-edited part of
    another shape counts as empty."""
    lineage = dataset.lineage if isinstance(dataset.lineage, dict) else {}
    shapes = {"sources": list, "derived_from": list, "agreements": dict, "left_out": dict}
    return {
        **lineage,
        **{
            part: lineage.get(part) if isinstance(lineage.get(part), kind) else kind()
            for part, kind in shapes.items()
        },
    }


def _parse_version_ref(text: str) -> tuple[str, int] | None:
    name, _, version = str(text).rpartition("@")
    return (name, int(version)) if name and version.isdigit() else None


def _coverage(session: Session) -> dict[str, frozenset[str]]:
    """Each source and every agreement covering it in any version of its terms
    (``data[].source``), read from the stored JSON so hand-edited terms still count."""
    covering: dict[str, set[str]] = {}
    for agreement in session.execute(select(Agreement)).scalars():
        for version in agreement.versions:
            data = (version.terms or {}).get("data") if isinstance(version.terms, dict) else None
            for entry in data if isinstance(data, list) else []:
                if isinstance(entry, dict) and isinstance(entry.get("source"), str):
                    covering.setdefault(entry["source"], set()).add(agreement.reference)
    return {source: frozenset(refs) for source, refs in covering.items()}


class _Lineage:
    """The agreements behind each dataset version, followed through ``derived_from``."""

    def __init__(self, session: Session) -> None:
        self.covering = _coverage(session)
        self.every_agreement = frozenset(
            session.execute(select(Agreement.reference)).scalars().all()
        )
        self.versions = {
            (d.name, d.version): d
            for d in session.execute(select(Dataset).order_by(Dataset.name, Dataset.version))
            .scalars()
            .all()
        }
        self._newest: dict[str, Dataset] = {}
        for (name, _), dataset in self.versions.items():  # in version order: the last wins
            self._newest[name] = dataset
        self._behind: dict[tuple[str, int], frozenset[str]] = {}

    def behind(self, dataset: Dataset) -> frozenset[str]:
        """Every agreement whose data this version holds."""
        key = (dataset.name, dataset.version)
        if key in self._behind:
            return self._behind[key]
        self._behind[key] = frozenset()  # a hand-edited cycle ends here, not in a recursion
        lineage = lineage_of(dataset)
        agreements = set(lineage["agreements"].values()) | self._unrecorded(dataset, lineage)
        for entry in lineage["derived_from"]:
            parent = self.versions.get(_parse_version_ref(entry) or ("", 0))
            if parent is not None:
                agreements |= self.behind(parent)
        self._behind[key] = frozenset(str(a) for a in agreements)
        return self._behind[key]

    def _unrecorded(self, dataset: Dataset, lineage: dict[str, Any]) -> set[str]:
        # A version naming no agreement: judged by its area, never as holding none.
        if lineage["agreements"] or dataset.name in LINEAGE_FREE:
            return set()
        if dataset.name.startswith("source/"):
            return set(self.covering.get(dataset.name.removeprefix("source/"), frozenset()))
        if dataset.name.startswith(MIXED_AREAS) and not lineage["derived_from"]:
            return set(self.every_agreement)
        return set()

    def holding(self, reference: str) -> list[Dataset]:
        """Every version that holds ``reference``'s data, by name and version.

        The steward's lineage-free records are never among them, whatever their lineage says:
        the pseudonymisation key holds no data, and the log of retired person keys holds only
        pseudonyms, which must outlive every agreement so no retired key is ever issued again.
        """
        return [
            d
            for d in self.versions.values()
            if d.name not in LINEAGE_FREE and reference in self.behind(d)
        ]

    def newest(self, name: str) -> Dataset | None:
        """The newest version of ``name`` (None when none is stored)."""
        return self._newest.get(name)


def _utc_text(moment: datetime | None) -> str:
    # The registry keeps UTC; SQLite hands it back without its zone.
    if moment is None:
        return ""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _left_out_reason(reference: str) -> str:
    return f"agreement {reference} ended"


def _sources_under(lineage: _Lineage, reference: str) -> list[str]:
    """The sources a rebuild leaves out: every source the agreement covers in any version of
    its terms, those whose newest extract holds its data, and those a version's lineage names
    under it that have no extract stored."""
    sources = {source for source, refs in lineage.covering.items() if reference in refs}
    for (name, _), dataset in lineage.versions.items():
        for source, named in lineage_of(dataset)["agreements"].items():
            extract = lineage.newest(source_dataset_name(str(source)))
            if named == reference and (extract is None or reference in lineage.behind(extract)):
                sources.add(str(source))
        if name.startswith("source/") and reference in lineage.behind(lineage.newest(name)):
            sources.add(name.removeprefix("source/"))
    return sorted(sources)


def _still_held_sources(lineage: _Lineage, reference: str) -> list[Dataset]:
    """Versions under ``source/X``, for a source ``X`` the agreement covers, that are not
    destroyed and will not be (their lineage names another agreement only)."""
    covered = {source for source, refs in lineage.covering.items() if reference in refs}
    return [
        d
        for (name, _), d in lineage.versions.items()
        if name.removeprefix("source/") in covered
        and name.startswith("source/")
        and d.shredded_at is None
        and reference not in lineage.behind(d)
    ]


def _mixed_newest(lineage: _Lineage, name: str, reference: str) -> bool:
    """True when the newest version of ``name`` holds the agreement's data and others'."""
    newest = lineage.newest(name)
    if newest is None:
        return False
    behind = lineage.behind(newest)
    return reference in behind and behind != {reference}


def _rebuild_person_lookup(
    session: Session,
    vault: Vault,
    old: Dataset,
    *,
    actor: str,
    reference: str,
    left_out: list[str],
    lineage: _Lineage,
) -> None:
    """Store the lookup again without the left-out sources' records; every other record keeps
    its cluster and ``person_key``."""
    lookup = vault.read_steward_zone(session, PERSON_LOOKUP, actor=actor, version=old.version)
    kept = lookup[~lookup["source"].isin(left_out)].reset_index(drop=True)
    before = lineage_of(old)
    agreements = {
        source: named
        for source, named in before["agreements"].items()
        if named != reference and source not in left_out
    }
    for source in sorted(set(kept["source"].astype(str)) - set(agreements)):
        # The old lookup's lineage does not say (an older or edited one): the source's
        # newest extract does.
        extract = lineage.newest(f"source/{source}")
        named = lineage_of(extract)["agreements"].get(source) if extract is not None else None
        if named is not None and named != reference:
            agreements[source] = named
    vault.store(
        session,
        PERSON_LOOKUP,
        kept,
        actor=actor,
        data_dictionary=old.data_dictionary,
        lineage={
            "sources": sorted(set(kept["source"].astype(str))),
            "agreements": agreements,
            # Only what it still holds: not the old lookup, nor the left-out sources.
            "derived_from": [
                entry
                for entry in before["derived_from"]
                if (parent := lineage.versions.get(_parse_version_ref(entry) or ("", 0))) is None
                or reference not in lineage.behind(parent)
            ],
            "left_out": {source: _left_out_reason(reference) for source in left_out},
            "rebuilt_from": f"{PERSON_LOOKUP}@{old.version}",
        },
        change_summary={"records_removed": len(lookup) - len(kept), "sources_left_out": left_out},
    )


def _rebuilt(session: Session, reference: str) -> list[RebuiltDataset]:
    """Every version stored without the agreement's sources because it ended."""
    reason = _left_out_reason(reference)
    found = []
    for dataset in session.execute(select(Dataset).order_by(Dataset.id)).scalars():
        named = sorted(s for s, why in lineage_of(dataset)["left_out"].items() if why == reason)
        if named:
            found.append(RebuiltDataset(dataset.name, dataset.version, named))
    return found


def _provider_names(agreement: Agreement) -> tuple[int, list[str]]:
    # Read from the stored JSON, not re-validated: a certificate is still owed for terms that
    # no longer pass today's checks.
    current = current_version(agreement)
    parties = (current.terms or {}).get("parties") or []
    return current.version, [
        str(p.get("name")) for p in parties if isinstance(p, dict) and p.get("role") == "provider"
    ]


def destruction_certificate(session: Session, reference: str) -> DestructionCertificate:
    """The certificate of an ended agreement, from the registry and the audit log as they stand
    (so it can be issued again, identical but for the files, should the first copy be lost)."""
    agreement = get_agreement(session, reference)
    if agreement.status != "ended":
        raise AgreementEndError(
            f"agreement {reference} is {agreement.status}, not ended: there is no destruction "
            "to certify"
        )
    event = session.execute(
        select(AuditEvent)
        .where(AuditEvent.action == "agreement.end", AuditEvent.target == reference)
        .where(AuditEvent.outcome == "ok")
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    ).scalar_one_or_none()
    if event is None:
        raise AgreementEndError(
            f"agreement {reference} is marked ended but the audit log has no agreement.end "
            "event for it; run `srs audit verify` and report it"
        )
    lineage = _Lineage(session)
    holding = lineage.holding(reference)
    version, providers = _provider_names(agreement)
    left_behind = set(
        session.execute(
            select(AuditEvent.target).where(
                AuditEvent.action == "vault.shred", AuditEvent.outcome == "error"
            )
        ).scalars()
    )
    exports = sorted(
        set(
            session.execute(
                select(AuditEvent.target).where(
                    AuditEvent.action == "open_data.export",
                    AuditEvent.outcome == "ok",
                    AuditEvent.seq < event.seq,
                )
            ).scalars()
        )
    )
    rebuilt = _rebuilt(session, reference)
    rebuilt_names = {r.name for r in rebuilt}
    return DestructionCertificate(
        reference=reference,
        agreement_version=version,
        title=agreement.title,
        providers=providers,
        ended_at=_utc_text(agreement.ended_at),
        ended_by=agreement.ended_by or "",
        reason=agreement.end_reason or "",
        destroyed=[
            DestroyedVersion(
                d.name,
                d.version,
                d.row_count,
                d.content_hash,
                d.file_path,
                _utc_text(d.shredded_at),
                file_removed=f"{d.name}@{d.version}" not in left_behind,
            )
            for d in holding
        ],
        rebuilt=rebuilt,
        # Mixed datasets left with no version still held: no rebuild is known for them.
        not_rebuilt=sorted(
            {d.name for d in holding if d.name not in rebuilt_names}
            & {n for n, _ in lineage.versions if _mixed_newest(lineage, n, reference)}
        ),
        method=METHOD
        + (
            FILES_LEFT.format(count=len(kept))
            if (kept := [d for d in holding if f"{d.name}@{d.version}" in left_behind])
            else FILES_REMOVED
        ),
        audit_seq=event.seq,
        audit_hash=event.event_hash,
        exports=exports,
    )


def write_destruction_certificate(
    certificate: DestructionCertificate, folder: Path
) -> DestructionCertificate:
    """Write the certificate as ``REF-destruction.json`` and ``REF-destruction.md`` in
    ``folder`` (created if missing); returns it with the files' paths."""
    if Path(certificate.reference).name != certificate.reference or certificate.reference in (
        ".",
        "..",
    ):
        raise AgreementEndError(
            f"agreement reference {certificate.reference!r} cannot name a file; fix the record"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    json_path = folder / f"{certificate.reference}-destruction.json"
    markdown_path = folder / f"{certificate.reference}-destruction.md"
    certificate.files = [str(json_path), str(markdown_path)]
    json_path.write_text(
        json.dumps(certificate.as_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    markdown_path.write_text(certificate.as_markdown(), encoding="utf-8")
    return certificate


def _refuse(
    session: Session,
    vault: Vault,
    actor: str,
    reference: str,
    message: str,
    *,
    error: type[AgreementError] = AgreementEndError,
) -> NoReturn:
    """Record a refused end (``agreement.end``, outcome deny) and raise it."""
    session.rollback()
    record_event(
        session,
        actor=actor,
        action="agreement.end",
        target=reference,
        outcome="deny",
        reason=message,
        max_field_chars=vault.policies.access.audit_field_max_chars,
    )
    session.commit()
    raise error(message)


def _refuse_if_sources_held(
    session: Session, vault: Vault, actor: str, reference: str, lineage: _Lineage
) -> None:
    """Refuse (audited) to end, and so to certify, while an extract of a source the agreement
    covers would still be held after its data are destroyed."""
    held = _still_held_sources(lineage, reference)
    if held:
        names = ", ".join(
            f"{d.name}@{d.version} (lineage names "
            f"{', '.join(sorted(set(lineage_of(d)['agreements'].values()))) or 'no agreement'})"
            for d in held
        )
        _refuse(
            session,
            vault,
            actor,
            reference,
            f"agreement {reference} covers data still held in {names}, which its end would "
            "not destroy, so its destruction cannot be certified; a steward destroys those "
            "versions (Vault.shred) or corrects their lineage, then ends the agreement again",
        )


def end_agreement(
    session: Session,
    vault: Vault,
    *,
    actor: str,
    reference: str,
    reason: str,
    certificate_dir: Path | None = None,
    offences: OffenceList,
    today: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> DestructionCertificate:
    """End agreement ``reference``: rebuild what mixed its data, destroy every version holding
    them, mark it ended (audited ``agreement.end``) and write the destruction certificate to
    ``certificate_dir`` (default ``HOME/steward/destruction``).

    Needs ``dataset.destroy`` (stewards). ``progress`` is told each step as it is done. Run it
    again after a failure midway: it carries on from where the registry stands.

    Example::

        certificate = end_agreement(session, vault, actor="steward1", reference="DSA-POLICE",
                                    reason="the force withdrew", offences=load_offences())
    """
    reason = (reason or "").strip()
    if not reason:
        _refuse(
            session,
            vault,
            actor,
            reference,
            f"say why agreement {reference} ends (--reason); the reason goes on the certificate",
        )
    # Authorised first: someone who may not destroy data learns nothing of the agreement.
    authorise(
        session, username=actor, action="dataset.destroy", policies=vault.policies, today=today
    )
    try:
        agreement = get_agreement(session, reference)
    except AgreementError as exc:
        _refuse(session, vault, actor, reference, str(exc), error=type(exc))
    if agreement.status == "ended":
        message = (
            f"agreement {reference} was already ended on "
            f"{agreement.ended_at:%Y-%m-%d %H:%M} UTC by {agreement.ended_by} "
            f"({agreement.end_reason}); its data are destroyed, nothing more to do (its "
            "certificate can be written again with write_destruction_certificate)"
        )
        _refuse(session, vault, actor, reference, message)
    tell = progress or (lambda _message: None)
    shred_reason = f"{_left_out_reason(reference)}: {reason}"

    lineage = _Lineage(session)
    _refuse_if_sources_held(session, vault, actor, reference, lineage)
    left_out = _sources_under(lineage, reference)
    if _mixed_newest(lineage, PERSON_LOOKUP, reference):
        _rebuild_person_lookup(
            session,
            vault,
            lineage.newest(PERSON_LOOKUP),
            actor=actor,
            reference=reference,
            left_out=left_out,
            lineage=lineage,
        )
        tell(f"rebuilt {PERSON_LOOKUP} without {', '.join(left_out)}")
        lineage = _Lineage(session)
    if any(_mixed_newest(lineage, name, reference) for name in LINKED_TABLES):
        publish_linked_datasets(
            session,
            vault,
            actor=actor,
            offences=offences,
            without={source: _left_out_reason(reference) for source in left_out},
        )
        tell(f"rebuilt {', '.join(LINKED_TABLES)} without {', '.join(left_out)}")
        lineage = _Lineage(session)

    for dataset in lineage.holding(reference):
        if dataset.shredded_at is None:
            vault.shred(session, dataset, actor=actor, reason=shred_reason)
            tell(f"destroyed {dataset.name}@{dataset.version}")

    # Last: an agreement is marked ended only once all its data are destroyed.
    _refuse_if_sources_held(session, vault, actor, reference, _Lineage(session))
    agreement = get_agreement(session, reference)
    agreement.status = "ended"
    agreement.ended_at = utc_now()
    agreement.ended_by = actor
    agreement.end_reason = reason
    lineage = _Lineage(session)
    destroyed = [f"{d.name}@{d.version}" for d in lineage.holding(reference)]
    record_event(
        session,
        actor=actor,
        action="agreement.end",
        target=reference,
        outcome="ok",
        reason=reason,
        details={
            "destroyed": destroyed,
            "rebuilt": [f"{r.name}@{r.version}" for r in _rebuilt(session, reference)],
            "sources_left_out": left_out,
        },
        max_field_chars=vault.policies.access.audit_field_max_chars,
    )
    session.commit()
    tell(f"agreement {reference} ended")
    certificate = destruction_certificate(session, reference)
    folder = certificate_dir or vault.deployment.home / CERTIFICATE_FOLDER
    return write_destruction_certificate(certificate, folder)


__all__ = [
    "EXPORTS_NOTE",
    "FILES_REMOVED",
    "LINEAGE_FREE",
    "METHOD",
    "AgreementEndError",
    "DestroyedVersion",
    "DestructionCertificate",
    "RebuiltDataset",
    "destruction_certificate",
    "end_agreement",
    "lineage_of",
    "write_destruction_certificate",
]

"""The vault: datasets stored as AES-256-GCM-encrypted Parquet, read only through the access check.

Each dataset version has its own data key, wrapped by the deployment's master key and kept in
the registry with the key's id; the file on disk is ciphertext only and plaintext exists only in
memory. Rotating the master key re-wraps the data keys and leaves the files untouched.
Shredding a version deletes its data key (crypto-shredding): its ciphertext can never be read
again, whoever holds the file or the master key.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.errors import SRSError
from srs.governance.access import authorise, latest_dataset, stored_dataset
from srs.governance.audit import record_event
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry.models import Dataset, utc_now
from srs.vault.crypto import (
    MasterKey,
    VaultIntegrityError,
    VaultKeyError,
    content_hash,
    decrypt_dataset_bytes,
    encrypt_dataset_bytes,
    frame_to_parquet_bytes,
    generate_data_key,
    load_master_key,
    parquet_bytes_to_frame,
    read_key_file,
    rewrap_data_key,
    unwrap_data_key,
    wrap_data_key,
    write_encrypted_file,
    write_key_file,
)

__all__ = ["Vault", "VaultError", "VaultIntegrityError", "VaultKeyError", "VaultShredded"]


class VaultError(SRSError):
    """A vault request that names no stored dataset, or a dataset name that is not allowed."""


class VaultShredded(VaultError):
    """The dataset version was destroyed (its data key deleted when its agreement ended)."""


def validate_dataset_name(name: str) -> str:
    """Dataset names are ``area/table`` paths of lower-case words (e.g. ``linked/journeys``)."""
    parts = name.split("/")
    if not name or any(
        not part or not all(c.islower() or c.isdigit() or c == "_" for c in part) or part[0] == "_"
        for part in parts
    ):
        raise VaultError(
            f"dataset name {name!r} is not valid: use lower-case words, digits and '_' separated "
            "by '/', e.g. linked/journeys"
        )
    return name


def describe_columns(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A minimal data dictionary (name and type of each column) for frames stored without one."""
    return [{"name": str(column), "type": str(dtype)} for column, dtype in frame.dtypes.items()]


class Vault:
    """Store and read encrypted datasets of one deployment.

    Example::

        vault = Vault(deployment, policies)
        with registry.sessions() as session:
            vault.store(session, "linked/persons", frame, actor="steward1")
            frame = vault.read(session, "linked/persons", actor="ana", project="P001")
    """

    def __init__(
        self, deployment: Deployment, policies: PolicySet, master_key: MasterKey | None = None
    ) -> None:
        self.deployment = deployment
        self.policies = policies
        self._master_key = master_key

    def _keys(self) -> dict[str, MasterKey]:
        # The configured key, plus a rotation's new key if a crash left it beside the old one:
        # the key id stored with each dataset says which of the two wraps it.
        primary = self._master_key or load_master_key(self.deployment.key_file)
        keys = {primary.key_id: primary}
        if self._master_key is None and self.deployment.next_key_file.exists():
            pending = read_key_file(self.deployment.next_key_file)
            keys[pending.key_id] = pending
        return keys

    def _key_for(self, dataset: Dataset) -> MasterKey:
        keys = self._keys()
        try:
            return keys[dataset.master_key_id]
        except KeyError:
            raise VaultKeyError(
                f"{dataset.name}@{dataset.version} is wrapped by master key {dataset.master_key_id}, "
                f"but the key loaded has id {', '.join(keys)}; load the deployment's current "
                "master key (SRS_MASTER_KEY or the key file)"
            ) from None

    def store(
        self,
        session: Session,
        name: str,
        frame: pd.DataFrame,
        *,
        actor: str,
        classification: str | None = None,
        data_dictionary: list[dict[str, Any]] | None = None,
        lineage: dict[str, Any] | None = None,
        change_summary: dict[str, Any] | None = None,
    ) -> Dataset:
        """Encrypt ``frame`` as the next version of dataset ``name`` and record it.

        The classification defaults to the classification policy's level for the name.
        ``lineage`` says where the version came from (``{"sources": [...], "agreements":
        {source: reference}, "deliveries": [...], "derived_from": ["name@version"]}``), which
        the access check and the end of an agreement follow; ``change_summary`` what changed
        against the previous version. A name in an area of the access policy's
        ``lineage_required`` (``source/*``, ``linked/*``) is refused, and the refusal audited,
        unless the lineage names its sources and the agreement of every one.
        """
        validate_dataset_name(name)
        authorise(
            session,
            username=actor,
            action="dataset.store",
            policies=self.policies,
            dataset_name=name,
        )
        refusal = self._lineage_refusal(name, lineage)
        if refusal is not None:
            session.rollback()
            record_event(
                session,
                actor=actor,
                action="vault.store",
                target=name,
                outcome="deny",
                reason=refusal,
                details={"lineage": lineage if isinstance(lineage, dict) else None},
                max_field_chars=self.policies.access.audit_field_max_chars,
            )
            session.commit()
            raise VaultError(refusal)
        level = classification or self.policies.classification.level_for(name)
        if level not in self.policies.classification.levels:
            raise VaultError(
                f"classification {level!r} is not one of {', '.join(self.policies.classification.levels)}"
            )
        master = next(iter(self._keys().values()))
        previous = latest_dataset(session, name)
        version = previous.version + 1 if previous else 1
        plaintext = frame_to_parquet_bytes(frame)
        data_key = generate_data_key()
        relative = Path(*name.split("/")) / f"v{version}.parquet.enc"
        write_encrypted_file(
            self.deployment.vault_dir / relative,
            encrypt_dataset_bytes(data_key, plaintext, dataset=name, version=version),
        )
        dataset = Dataset(
            name=name,
            version=version,
            classification=level,
            data_dictionary=data_dictionary or describe_columns(frame),
            content_hash=content_hash(plaintext),
            row_count=len(frame),
            file_path=relative.as_posix(),
            wrapped_key=wrap_data_key(master, data_key, dataset=name, version=version),
            master_key_id=master.key_id,
            created_by=actor,
            lineage=lineage or {},
            change_summary=change_summary or {},
        )
        session.add(dataset)
        record_event(
            session,
            actor=actor,
            action="vault.store",
            target=f"{name}@{version}",
            outcome="ok",
            details={
                "classification": level,
                "rows": len(frame),
                "content_hash": dataset.content_hash,
            },
        )
        session.commit()
        return dataset

    def _lineage_refusal(self, name: str, lineage: dict[str, Any] | None) -> str | None:
        """Why ``name`` may not be stored with ``lineage``, or None: a version of an area whose
        data come from deliveries under agreements names its sources and their agreements."""
        if not self.policies.access.requires_lineage(name):
            return None
        lineage = lineage if isinstance(lineage, dict) else {}
        sources = lineage.get("sources")
        agreements = lineage.get("agreements")
        if (
            isinstance(sources, list)
            and sources
            and isinstance(agreements, dict)
            and all(
                isinstance(source, str) and isinstance(agreements.get(source), str)
                for source in sources
            )
        ):
            return None
        return (
            f"{name} is not stored by hand: its data must come from deliveries under "
            "data-sharing agreements, with a lineage naming its sources and their agreements. "
            "Extracts come in with `srs ingest` under an agreement, linked datasets with "
            "`srs linked build`"
        )

    def get(self, session: Session, name: str, version: int | None = None) -> Dataset:
        """The catalogue record of ``name`` (newest version unless one is given)."""
        dataset = stored_dataset(session, name, version)
        if dataset is None:
            where = f"version {version} of " if version is not None else ""
            raise VaultError(f"the vault holds no {where}dataset {name!r}; see `srs dataset list`")
        return dataset

    def read(
        self,
        session: Session,
        name: str,
        *,
        actor: str,
        project: str,
        version: int | None = None,
        today: date | None = None,
    ) -> pd.DataFrame:
        """Check access to the version read (the newest unless ``version``), judged on that
        version's own classification, then decrypt it in memory and return it as a DataFrame.

        The version is fixed before the check, so the version judged is the version read, even
        should a newer one be stored meanwhile.
        """
        version = self._version_to_read(session, name, version)
        authorise(
            session,
            username=actor,
            action="dataset.read",
            policies=self.policies,
            project_code=project,
            dataset_name=name,
            dataset_version=version,
            today=today,
        )
        return self._decrypt(session, name, version, actor=actor, context={"project": project})

    @staticmethod
    def _version_to_read(session: Session, name: str, version: int | None) -> int | None:
        """``version``, or the newest stored version's number (None when none is stored)."""
        if version is not None:
            return version
        newest = latest_dataset(session, name)
        return newest.version if newest is not None else None

    def read_steward_zone(
        self, session: Session, name: str, *, actor: str, version: int | None = None
    ) -> pd.DataFrame:
        """A steward reads a steward-zone dataset (extracts, lookups, keys), outside any project."""
        return self._read_outside_project(
            session, name, actor, "steward.read", version, {"zone": "steward"}
        )

    def read_for_synthesis(
        self, session: Session, name: str, *, actor: str, version: int | None = None
    ) -> pd.DataFrame:
        """A steward reads a research dataset to build its synthetic replica (``synthetic.build``),
        outside any project; never a steward-zone dataset."""
        return self._read_outside_project(
            session, name, actor, "synthetic.build", version, {"purpose": "synthesis"}
        )

    def read_synthetic(
        self, session: Session, name: str, *, actor: str, version: int | None = None
    ) -> pd.DataFrame:
        """Anyone with ``synthetic.read`` (students, stewards) reads a public synthetic dataset."""
        return self._read_outside_project(
            session, name, actor, "synthetic.read", version, {"open": True}
        )

    def _read_outside_project(
        self,
        session: Session,
        name: str,
        actor: str,
        action: str,
        version: int | None,
        context: dict[str, Any],
    ) -> pd.DataFrame:
        # Authorised (and audited) for ``action`` on the version read alone, then decrypted.
        version = self._version_to_read(session, name, version)
        authorise(
            session,
            username=actor,
            action=action,
            policies=self.policies,
            dataset_name=name,
            dataset_version=version,
        )
        return self._decrypt(session, name, version, actor=actor, context=context)

    def exists(self, session: Session, name: str) -> bool:
        """True when some version of ``name`` is stored."""
        return latest_dataset(session, name) is not None

    def _decrypt(
        self, session: Session, name: str, version: int | None, *, actor: str, context: dict
    ) -> pd.DataFrame:
        try:
            dataset = self.get(session, name, version)
            if dataset.shredded_at is not None:
                raise VaultShredded(
                    f"{name}@{dataset.version} was destroyed on "
                    f"{dataset.shredded_at:%Y-%m-%d} ({dataset.shredded_reason}): its data key "
                    "is deleted and no one can decrypt it; use a version that is still held"
                )
            master = self._key_for(dataset)
            data_key = unwrap_data_key(
                master, dataset.wrapped_key, dataset=name, version=dataset.version
            )
            blob = (self.deployment.vault_dir / dataset.file_path).read_bytes()
            plaintext = decrypt_dataset_bytes(data_key, blob, dataset=name, version=dataset.version)
            if content_hash(plaintext) != dataset.content_hash:
                raise VaultIntegrityError(
                    f"{name}@{dataset.version} decrypted but its content hash differs from the "
                    "catalogue's; restore the file from backup"
                )
            frame = parquet_bytes_to_frame(plaintext)
        except (SRSError, OSError) as exc:
            session.rollback()
            record_event(
                session,
                actor=actor,
                action="vault.read",
                target=name,
                outcome="error",
                reason=str(exc),
                details=context,
            )
            session.commit()
            if isinstance(exc, OSError):
                raise VaultError(f"cannot read the vault file of {name}: {exc}") from exc
            raise
        record_event(
            session,
            actor=actor,
            action="vault.read",
            target=f"{name}@{dataset.version}",
            outcome="ok",
            details={**context, "rows": len(frame)},
        )
        session.commit()
        return frame

    def shred(
        self, session: Session, dataset: Dataset, *, actor: str, reason: str
    ) -> dict[str, Any]:
        """Destroy one dataset version by deleting its data key (crypto-shredding); audited.

        Authorised with ``dataset.destroy`` (stewards). The wrapped key is overwritten with
        nothing and the version marked shredded in one transaction with the ``vault.shred``
        event; only then is the ciphertext file removed, best effort: without its key the file
        is noise, so a file left behind (a read-only disk, a backup) reveals nothing. Returns
        what was destroyed (name, version, rows, content_hash, file, file_removed), as a
        destruction certificate lists it; a file that could not be removed is also recorded as
        a ``vault.shred`` event with outcome ``error`` (``file_removed: false``).

        Example::

            vault.shred(session, vault.get(session, "source/police_arrests", 3),
                        actor="steward1", reason="agreement DSA-POLICE ended")
        """
        reason = reason.strip()
        if not reason:
            raise VaultError(
                f"say why {dataset.name}@{dataset.version} is destroyed (e.g. the agreement that "
                "ended); the reason is kept with the version and in the audit log"
            )
        authorise(
            session,
            username=actor,
            action="dataset.destroy",
            policies=self.policies,
            dataset_name=dataset.name,
            dataset_version=dataset.version,
        )
        if dataset.shredded_at is not None:
            message = (
                f"{dataset.name}@{dataset.version} was already destroyed on "
                f"{dataset.shredded_at:%Y-%m-%d} ({dataset.shredded_reason}); nothing to do"
            )
            session.rollback()
            raise VaultShredded(message)
        destroyed = {
            "name": dataset.name,
            "version": dataset.version,
            "rows": dataset.row_count,
            "content_hash": dataset.content_hash,
            "file": dataset.file_path,
        }
        # The column is NOT NULL: the key's bytes are replaced by none at all.
        dataset.wrapped_key = b""
        dataset.shredded_at = utc_now()
        dataset.shredded_reason = reason
        record_event(
            session,
            actor=actor,
            action="vault.shred",
            target=f"{dataset.name}@{dataset.version}",
            outcome="ok",
            reason=reason,
            details={
                "content_hash": dataset.content_hash,
                "rows": dataset.row_count,
                "file": dataset.file_path,
                "master_key_id": dataset.master_key_id,
            },
            max_field_chars=self.policies.access.audit_field_max_chars,
        )
        session.commit()
        path = self.deployment.vault_dir / dataset.file_path
        try:
            path.unlink(missing_ok=True)
            destroyed["file_removed"] = True
        except OSError as exc:
            # The key is gone already, so the file cannot be read; say it is still there, in
            # the return value and in the audit log (a certificate is written from the log).
            destroyed["file_removed"] = False
            destroyed["file_error"] = str(exc)
            record_event(
                session,
                actor=actor,
                action="vault.shred",
                target=f"{dataset.name}@{dataset.version}",
                outcome="error",
                reason=(
                    f"the data key was deleted but the ciphertext file {dataset.file_path} "
                    f"could not be removed ({exc}); it cannot be decrypted, remove it by hand"
                ),
                details={"file": dataset.file_path, "file_removed": False},
                max_field_chars=self.policies.access.audit_field_max_chars,
            )
            session.commit()
        return destroyed

    def _promote_next_key(self) -> None:
        # The last step of a rotation: until it runs, both key files are on disk and each
        # dataset's key id says which one opens it.
        os.replace(self.deployment.next_key_file, self.deployment.key_file)

    def _finish_interrupted_rotation(self, session: Session) -> None:
        # A rotation re-wraps every data key in one transaction, so after a crash either every
        # dataset uses the pending key (promote it) or none does (it was never committed).
        pending_file = self.deployment.next_key_file
        if not pending_file.exists():
            return
        pending = read_key_file(pending_file)
        key_ids = set(
            session.execute(
                select(Dataset.master_key_id).where(Dataset.shredded_at.is_(None))
            ).scalars()
        )
        if key_ids and key_ids == {pending.key_id}:
            self._promote_next_key()
        else:
            pending_file.unlink()

    def rotate_master_key(self, session: Session, *, actor: str, new_key: MasterKey) -> int:
        """Re-wrap every data key under ``new_key``; returns how many datasets were re-wrapped
        (shredded versions have no key and are left as they are).

        With a key file, the new key is first written beside the old one, the registry is
        updated in one transaction, and only then does the new key replace the old file, so a
        crash at any point leaves every dataset readable with a key on disk. With
        ``SRS_MASTER_KEY`` the caller must store the new key (see ``srs vault rotate-key``).
        """
        authorise(session, username=actor, action="vault.rotate_key", policies=self.policies)
        uses_file = self._master_key is None and not os.environ.get("SRS_MASTER_KEY")
        if uses_file:
            self._finish_interrupted_rotation(session)
        keys = self._keys()
        if uses_file:
            write_key_file(self.deployment.next_key_file, new_key, overwrite=True)
        try:
            # A shredded version has no data key left to re-wrap; it keeps its old key id.
            datasets = list(
                session.execute(select(Dataset).where(Dataset.shredded_at.is_(None))).scalars()
            )
            for dataset in datasets:
                if dataset.master_key_id == new_key.key_id:
                    continue
                old = keys.get(dataset.master_key_id)
                if old is None:
                    raise VaultKeyError(
                        f"{dataset.name}@{dataset.version} is wrapped by unknown master key "
                        f"{dataset.master_key_id}; nothing was rotated"
                    )
                dataset.wrapped_key = rewrap_data_key(
                    old, new_key, dataset.wrapped_key, dataset=dataset.name, version=dataset.version
                )
                dataset.master_key_id = new_key.key_id
            record_event(
                session,
                actor=actor,
                action="vault.rotate_key",
                target="vault",
                outcome="ok",
                details={
                    "datasets": len(datasets),
                    "new_key_id": new_key.key_id,
                    "old_key_ids": sorted(keys),
                },
            )
            session.commit()
        except BaseException:
            # Nothing was committed, so the new key wraps nothing yet: discard it.
            session.rollback()
            if uses_file:
                self.deployment.next_key_file.unlink(missing_ok=True)
            raise
        if uses_file:
            self._promote_next_key()
        self._master_key = new_key if self._master_key is not None else None
        return len(datasets)

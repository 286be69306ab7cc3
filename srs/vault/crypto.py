"""The vault's cryptography, with no database: master and data keys, AES-256-GCM, key files.

A dataset version is Parquet encrypted under its own 256-bit data key; the data key is wrapped
(AES-256-GCM) by the deployment's master key. Both encryptions bind the dataset's name and
version as associated data, so a file or a wrapped key moved to another dataset fails
authentication. Plaintext only ever exists in memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from srs.errors import SRSError

MASTER_KEY_ENV = "SRS_MASTER_KEY"
FILE_MAGIC = b"SRSVAULT1\n"
NONCE_BYTES = 12
KEY_BYTES = 32
TAG_BYTES = 16


class VaultKeyError(SRSError):
    """A master key is missing, malformed, wrong for the data, or kept in an unsafe file."""


class VaultIntegrityError(SRSError):
    """A vault file or wrapped key failed authentication: tampered, truncated or misplaced."""


@dataclass(frozen=True)
class MasterKey:
    """The deployment's 256-bit master key; its ``key_id`` can be stored, its material never."""

    material: bytes

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise VaultKeyError(f"a master key is {KEY_BYTES} bytes, not {len(self.material)}")

    @property
    def key_id(self) -> str:
        """A short public fingerprint saying which master key wraps a dataset."""
        return hashlib.sha256(b"srs-master-key-id:" + self.material).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"


def generate_master_key() -> MasterKey:
    """A new random master key."""
    return MasterKey(AESGCM.generate_key(bit_length=256))


def encode_master_key(key: MasterKey) -> str:
    """The key as URL-safe base64 text, for ``SRS_MASTER_KEY`` or a key file."""
    return base64.urlsafe_b64encode(key.material).decode("ascii")


def decode_master_key(text: str, source: str) -> MasterKey:
    """Parse a base64 master key read from ``source`` (never echoing the text in errors)."""
    cleaned = text.strip()
    try:
        material = base64.urlsafe_b64decode(cleaned.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        material = b""
    if len(material) != KEY_BYTES:
        raise VaultKeyError(
            f"the master key in {source} is not valid: it must be {KEY_BYTES} random bytes in "
            "URL-safe base64 (44 characters), as written by `srs init`"
        )
    return MasterKey(material)


def write_key_file(path: Path, key: MasterKey, *, overwrite: bool = False) -> None:
    """Write ``key`` to ``path`` with mode 0600, atomically; refuse to replace an existing file."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise VaultKeyError(f"{path} already exists; refusing to overwrite a master key")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, (encode_master_key(key) + "\n").encode("ascii"))


def read_key_file(path: Path) -> MasterKey:
    """Read a master key file, refusing one that group or others can access."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise VaultKeyError(
            f"no master key file at {path}; run `srs init` or set {MASTER_KEY_ENV}"
        ) from None
    if mode & 0o077:
        raise VaultKeyError(
            f"{path} is readable by others (mode {stat.filemode(mode)}); run `chmod 600 {path}`"
        )
    return decode_master_key(path.read_text(encoding="ascii", errors="replace"), str(path))


def load_master_key(key_file: Path | None) -> MasterKey:
    """The master key from ``SRS_MASTER_KEY`` if set, else from ``key_file``."""
    from_env = os.environ.get(MASTER_KEY_ENV, "").strip()
    if from_env:
        return decode_master_key(from_env, MASTER_KEY_ENV)
    if key_file is None:
        raise VaultKeyError(
            f"no master key: set {MASTER_KEY_ENV} or give the deployment's key file"
        )
    return read_key_file(key_file)


def generate_data_key() -> bytes:
    """A new random 256-bit data key for one dataset version."""
    return AESGCM.generate_key(bit_length=256)


def _identity(purpose: bytes, dataset: str, version: int) -> bytes:
    return purpose + dataset.encode("utf-8") + b"@" + str(version).encode("ascii")


def wrap_data_key(master: MasterKey, data_key: bytes, *, dataset: str, version: int) -> bytes:
    """Encrypt a data key under the master key, bound to ``dataset``@``version``."""
    nonce = os.urandom(NONCE_BYTES)
    aad = _identity(b"srs-wrap:", dataset, version)
    return nonce + AESGCM(master.material).encrypt(nonce, data_key, aad)


def unwrap_data_key(master: MasterKey, wrapped: bytes, *, dataset: str, version: int) -> bytes:
    """Recover a data key; fails if the master key is wrong or the record was altered."""
    aad = _identity(b"srs-wrap:", dataset, version)
    try:
        return AESGCM(master.material).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise VaultIntegrityError(
            f"the data key of {dataset}@{version} cannot be unwrapped: the master key is wrong "
            "or the key record was altered"
        ) from None


def rewrap_data_key(
    old: MasterKey, new: MasterKey, wrapped: bytes, *, dataset: str, version: int
) -> bytes:
    """Move a wrapped data key from the old master key to the new one (the data is untouched)."""
    data_key = unwrap_data_key(old, wrapped, dataset=dataset, version=version)
    return wrap_data_key(new, data_key, dataset=dataset, version=version)


def encrypt_dataset_bytes(
    data_key: bytes, plaintext: bytes, *, dataset: str, version: int
) -> bytes:
    """The vault file: magic, nonce, then AES-256-GCM ciphertext and tag."""
    nonce = os.urandom(NONCE_BYTES)
    aad = FILE_MAGIC + _identity(b"", dataset, version)
    return FILE_MAGIC + nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)


def decrypt_dataset_bytes(data_key: bytes, blob: bytes, *, dataset: str, version: int) -> bytes:
    """Decrypt a vault file in memory, or raise ``VaultIntegrityError`` saying why not."""
    header = len(FILE_MAGIC) + NONCE_BYTES
    where = f"{dataset}@{version}"
    if len(blob) < header + TAG_BYTES:
        raise VaultIntegrityError(
            f"the vault file of {where} is truncated ({len(blob)} bytes); restore it from backup"
        )
    if not blob.startswith(FILE_MAGIC):
        raise VaultIntegrityError(
            f"the vault file of {where} is not a vault file (bad header); restore it from backup"
        )
    nonce = blob[len(FILE_MAGIC) : header]
    aad = FILE_MAGIC + _identity(b"", dataset, version)
    try:
        return AESGCM(data_key).decrypt(nonce, blob[header:], aad)
    except InvalidTag:
        raise VaultIntegrityError(
            f"the vault file of {where} failed authentication: it was altered, truncated or "
            "belongs to another dataset; restore it from backup"
        ) from None


def _write_atomically(path: Path, data: bytes) -> None:
    # Readers see the old file or the new one, never a half-written one: write a private
    # (0600) temporary file beside it, flush it to disk, rename it over, then sync the folder.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_encrypted_file(path: Path, blob: bytes) -> None:
    """Write ciphertext atomically as a 0600 file (temporary, fsync, rename) in 0700 folders."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_atomically(path, blob)


def frame_to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Serialise a DataFrame to Parquet in memory (its index is not kept)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue()


def parquet_bytes_to_frame(data: bytes) -> pd.DataFrame:
    """Read Parquet bytes held in memory back into a DataFrame."""
    return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


def content_hash(data: bytes) -> str:
    """``sha256:`` and the hex digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()

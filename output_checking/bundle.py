"""Release bundles on disk: a folder of files, a manifest of their SHA-256 and an Ed25519 signature.

A bundle is ``outputs/...`` (the released files, in open formats), ``manifest.json`` (every
file's path, size and SHA-256, and who approved what and when) and ``manifest.sig`` (the
base64 Ed25519 signature of the manifest's exact bytes). ``verify_bundle`` checks the
signature against a trusted public key, every listed file's hash, and that no file was added
or removed, naming each file that is wrong. Signing keys live in the deployment's home
(``release-signing.key``, mode 0600); the public key is safe to hand to anyone who receives
releases.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from srs.errors import SRSError

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
BUNDLE_FORMAT = "srs-release-bundle/1"
SIGNING_KEY_FILE = "release-signing.key"
PUBLIC_KEY_FILE = "release-signing.pub"


class BundleError(SRSError):
    """A bundle cannot be written or read as asked (bad path, existing folder, unreadable key)."""


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ keys
def _publish_atomically(path: Path, data: bytes, mode: int) -> bool:
    """Write ``path`` whole or not at all; False if it already existed (another process won)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    _write_durably(temporary, data, mode)
    try:
        os.link(temporary, path)  # atomic, and refuses to replace an existing key
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)


def signing_key(home: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The deployment's release-signing key, created (0600, with its public key) on first use."""
    path = Path(home) / SIGNING_KEY_FILE
    if not path.exists():
        if not create:
            raise BundleError(f"no release-signing key at {path}")
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _publish_atomically(path, pem, 0o600)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{path} is not a PEM Ed25519 private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    public_file = Path(home) / PUBLIC_KEY_FILE
    if not public_file.exists():
        # Written after the key, so a crash in between is repaired here on the next use.
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _publish_atomically(public_file, public, 0o644)
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A trusted Ed25519 public key from a PEM file (``release-signing.pub``)."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except FileNotFoundError:
        raise BundleError(f"no public key file {path}") from None
    except ValueError as exc:
        raise BundleError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, in hex: how a recipient checks they hold the right key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


# ------------------------------------------------------------------ writing
def _safe_relative(path: str) -> PurePosixPath:
    relative = PurePosixPath(path)
    if (
        relative.is_absolute()
        or not relative.parts
        or any(part in ("", ".", "..") for part in relative.parts)
        or str(relative) in (MANIFEST, SIGNATURE)
    ):
        raise BundleError(f"bundle path {path!r} is not a plain relative file path")
    return relative


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The manifest's canonical bytes (sorted keys, UTF-8): exactly what is signed."""
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def write_bundle(
    directory: Path,
    files: Mapping[str, bytes],
    manifest: Mapping[str, Any],
    key: Ed25519PrivateKey,
) -> str:
    """Write a signed bundle into the new folder ``directory``; return the manifest's SHA-256.

    ``manifest`` gets ``format``, ``signing_key_fingerprint`` and the ``files`` list (path, size,
    SHA-256) added. Every file and folder is flushed to disk before this returns, so a bundle
    that is later renamed into place is complete.
    """
    directory = Path(directory)
    if directory.exists():
        raise BundleError(f"{directory} already exists; a bundle is written into a new folder")
    entries = []
    paths = [_safe_relative(p) for p in files]
    directory.mkdir(parents=True, mode=0o755)
    for relative, data in zip(paths, files.values(), strict=True):
        target = directory.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_durably(target, data)
        entries.append(
            {"path": str(relative), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
    for folder in sorted({directory.joinpath(*p.parts).parent for p in paths}, reverse=True):
        _fsync_directory(folder)
    full = {
        **manifest,
        "format": BUNDLE_FORMAT,
        "signing_key_fingerprint": key_fingerprint(key.public_key()),
        "files": sorted(entries, key=lambda e: e["path"]),
    }
    body = manifest_bytes(full)
    _write_durably(directory / MANIFEST, body)
    _write_durably(directory / SIGNATURE, base64.b64encode(key.sign(body)) + b"\n")
    _fsync_directory(directory)
    return hashlib.sha256(body).hexdigest()


# ------------------------------------------------------------------ verifying
@dataclass
class BundleReport:
    """What verification found; ``valid`` only when the signature and every file check out."""

    bundle: Path
    signature_valid: bool = False
    manifest: dict[str, Any] | None = None
    tampered: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.signature_valid and not (
            self.tampered or self.missing or self.unexpected or self.problems
        )

    def summary(self) -> str:
        """One paragraph a recipient can act on."""
        if self.valid:
            count = len((self.manifest or {}).get("files", []))
            return f"valid: signature checks out and all {count} file(s) match the manifest"
        lines = ["INVALID:"]
        if not self.signature_valid:
            lines.append("  the manifest's signature does not verify with the trusted key")
        lines += [f"  tampered (hash differs): {p}" for p in self.tampered]
        lines += [f"  missing: {p}" for p in self.missing]
        lines += [f"  not in the manifest (added): {p}" for p in self.unexpected]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def verify_bundle(directory: Path, public_key: Ed25519PublicKey) -> BundleReport:
    """Check a bundle's signature with ``public_key``, then every file against the manifest."""
    directory = Path(directory)
    report = BundleReport(bundle=directory)
    if not directory.is_dir():
        report.problems.append(f"{directory} is not a folder")
        return report
    try:
        body = (directory / MANIFEST).read_bytes()
    except FileNotFoundError:
        report.missing.append(MANIFEST)
        return report
    try:
        signature = base64.b64decode((directory / SIGNATURE).read_bytes().strip(), validate=True)
        public_key.verify(signature, body)
        report.signature_valid = True
    except FileNotFoundError:
        report.missing.append(SIGNATURE)
    except (InvalidSignature, ValueError):
        report.tampered.append(f"{MANIFEST} or {SIGNATURE} (signature does not match)")
    try:
        manifest = json.loads(body)
        listed = {entry["path"]: entry for entry in manifest["files"]}
    except (ValueError, KeyError, TypeError):
        report.problems.append(f"{MANIFEST} is not a bundle manifest")
        return report
    report.manifest = manifest
    if manifest.get("format") != BUNDLE_FORMAT:
        report.problems.append(f"unknown bundle format {manifest.get('format')!r}")
    on_disk = {
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() or p.is_symlink()
    } - {MANIFEST, SIGNATURE}
    for path, entry in sorted(listed.items()):
        target = directory / path
        if path not in on_disk:
            report.missing.append(path)
            continue
        if target.is_symlink():
            report.tampered.append(f"{path} (a symbolic link, not a file)")
            continue
        if hashlib.sha256(target.read_bytes()).hexdigest() != entry.get("sha256"):
            report.tampered.append(path)
    report.unexpected = sorted(on_disk - set(listed))
    return report

"""srs.vault: datasets stored encrypted, read only through the access check.

- ``store``: ``Vault``, versioned datasets as AES-256-GCM-encrypted Parquet, each version with
  its own data key wrapped by the deployment's master key.
- ``crypto``: the envelope encryption itself (keys, wrapping, hashes), on ``cryptography``.

This layer imports only the governance core; ``tests/test_layers.py`` holds it to that.
"""

from __future__ import annotations

from srs.vault.crypto import VaultIntegrityError, VaultKeyError
from srs.vault.store import Vault, VaultError, VaultShredded

__all__ = ["Vault", "VaultError", "VaultIntegrityError", "VaultKeyError", "VaultShredded"]

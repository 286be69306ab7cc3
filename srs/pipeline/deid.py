"""De-identification: keyed pseudonyms and the generalisation of quasi-identifiers.

Pseudonyms are HMAC-SHA256 of a namespaced value under the steward's pseudonymisation key:
the same key always gives the same pseudonym (stable across runs), a different key gives
unrelated ones, and without the key they cannot be recomputed or reversed. The key is a
secret of the steward zone, held encrypted in the vault, never in a research dataset.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from srs.errors import SRSError

PSEUDONYM_HEX_CHARS = 20  # 80 bits: collisions stay negligible at hundreds of millions of ids
KEY_BYTES = 32
BLOCK_SIZE = 64  # SHA-256 block size, for the HMAC pads


class PseudonymKeyError(SRSError):
    """The pseudonymisation key is missing or not 32 bytes."""


def generate_pseudonym_key() -> bytes:
    """A new random 256-bit pseudonymisation key."""
    return os.urandom(KEY_BYTES)


class Pseudonymiser:
    """Turns identifiers into keyed pseudonyms, e.g. ``Pseudonymiser(key).pseudonyms(ids, "person")``.

    HMAC-SHA256 (RFC 2104) computed with the inner and outer hash states prepared once, which
    gives exactly ``hmac.new(key, msg, sha256)`` at about twice its speed for short messages.
    """

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
            raise PseudonymKeyError(f"the pseudonymisation key must be {KEY_BYTES} bytes")
        padded = bytes(key).ljust(BLOCK_SIZE, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def pseudonym(self, value: str, namespace: str) -> str:
        """The pseudonym of one value within a namespace (``person``, ``case``...)."""
        return self.pseudonyms([value], namespace)[0]

    def pseudonyms(self, values: Iterable[str], namespace: str) -> list[str]:
        """Pseudonyms of many values; the namespace keeps a person's and a case's apart."""
        inner, outer = self._inner, self._outer
        prefix = namespace.encode("utf-8") + b"\x1f"
        out = []
        append = out.append
        for value in values:
            digest = inner.copy()
            digest.update(prefix + value.encode("utf-8"))
            final = outer.copy()
            final.update(digest.digest())
            append(final.hexdigest()[:PSEUDONYM_HEX_CHARS])
        return out

    def series(self, values: pd.Series, namespace: str) -> pd.Series:
        """Pseudonyms of a Series; missing values stay missing."""
        present = values.notna().to_numpy()
        out = np.full(len(values), None, dtype=object)
        out[present] = self.pseudonyms(values[present].astype(str), namespace)
        return pd.Series(out, index=values.index, dtype="string")


def birth_year(dates: pd.Series) -> pd.Series:
    """Year of birth instead of the exact date."""
    return dates.dt.year.astype("Int64")


def age_at(date_of_birth: pd.Series, event: pd.Series) -> pd.Series:
    """Age in whole years at an event."""
    years = event.dt.year - date_of_birth.dt.year
    before_birthday = (event.dt.month < date_of_birth.dt.month) | (
        (event.dt.month == date_of_birth.dt.month) & (event.dt.day < date_of_birth.dt.day)
    )
    return (years - before_birthday.astype(int)).astype("Int64")


def age_band(age: pd.Series) -> pd.Series:
    """Standard justice-statistics age bands (10-17, 18-20, 21-24, 25-29, 30-39, 40-49, 50+)."""
    bins = [9, 17, 20, 24, 29, 39, 49, 200]
    labels = ["10-17", "18-20", "21-24", "25-29", "30-39", "40-49", "50+"]
    return pd.cut(age.astype("float"), bins=bins, labels=labels)


def postcode_area(postcodes: pd.Series) -> pd.Series:
    """The postcode area (leading letters, e.g. 'LS') instead of the full postcode."""
    return postcodes.astype("string").str.extract(r"^([A-Z]{1,2})", expand=False).astype("string")

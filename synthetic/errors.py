"""Errors raised while building, evaluating or exporting a synthetic replica; each says what was
wrong and what to do."""

from __future__ import annotations

from srs.errors import SRSError


class SyntheticError(SRSError):
    """A replica could not be built from the given tables or settings (unknown synthesiser,
    missing or empty table, unusable column); the message names the table or setting to fix."""

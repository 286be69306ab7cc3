"""The error linkage raises when it cannot run as asked, with what to do instead."""

from __future__ import annotations

from srs.errors import SRSError


class LinkageError(SRSError):
    """Linkage cannot run as asked (bad mapping, too few tables, unknown backend)."""

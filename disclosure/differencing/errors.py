"""What the differencing check raises: a request it cannot take (public), and a comparison it
cannot model (internal, turned into a finding for review)."""

from __future__ import annotations

from disclosure.errors import DisclosureError


class DifferencingError(DisclosureError, ValueError):
    """A differencing request that cannot be checked as posed."""


class Unjudgeable(Exception):
    """A comparison the check cannot model; its message says why, for the checker."""

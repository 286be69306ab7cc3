"""A spend the privacy-budget ledger has confirmed: the one thing a DP plan releases against.

A ``ConfirmedSpend`` cannot be built by calling its class, copied, pickled or subclassed; it is
issued by ``issue_confirmation``, which only the ledger calls (``srs.governance.budget.confirm_spend``,
after reading the spend back from the database), and it is redeemed once: ``redeem`` refuses an
object it did not issue (a look-alike with a ``spend_id``, a copy, an instance forged with
``object.__new__``), one already redeemed, and one that does not cover the release. Pure: no
database here, so the engine stays testable; the ledger does the confirming.

>>> spend = issue_confirmation(spend_id=7, project="P001", researcher="ana", rho=0.01, delta=0.0)
>>> redeem(spend, 0.01, 0.0, DPReleaseRefused)
7
>>> redeem(spend, 0.01, 0.0, DPReleaseRefused)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
disclosure.dp.spend.DPReleaseRefused: spend #7 is not a confirmation the ledger has outstanding ...
"""

from __future__ import annotations

import math
import numbers
import weakref
from typing import Any, NoReturn, final

from disclosure.errors import DisclosureError

NANO = 1_000_000_000


class DPReleaseRefused(DisclosureError, RuntimeError):
    """A release was attempted without a confirmed spend that covers the plan, or twice."""


def is_positive_real(value: Any) -> bool:
    """True for a finite real number above zero (never a bool or text; NumPy's numbers count):
    what a privacy loss (rho) and an accuracy target must be. The ledger's own check
    (``srs.governance.budget``) uses this too. Compared, never converted, so a huge whole number answers
    rather than overflows (callers compare it with their ceiling next).

    >>> [is_positive_real(v) for v in (0.01, 1, "0.01", True, 0, float("nan"), 10**400)]
    [True, True, False, False, False, False, True]
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return 0 < value < math.inf


# The confirmations issued and not yet redeemed; an object not in here releases nothing.
_outstanding: weakref.WeakSet[ConfirmedSpend] = weakref.WeakSet()


@final
class ConfirmedSpend:
    """A committed ledger spend, confirmed by the ledger just now: its id, project, researcher
    and the rho and delta it covers. Issued only by ``issue_confirmation``; read-only."""

    __slots__ = ("spend_id", "project", "researcher", "rho", "delta", "__weakref__")
    spend_id: int
    project: str
    researcher: str
    rho: float
    delta: float

    def __new__(cls, *arguments: Any, **options: Any) -> NoReturn:
        raise DPReleaseRefused(
            "a confirmed spend is issued only by the budget ledger: debit the project's budget "
            "(srs.governance.budget.debit), then confirm the spend (srs.governance.budget.confirm_spend)"
        )

    def __init_subclass__(cls, **options: Any) -> NoReturn:
        raise TypeError("ConfirmedSpend cannot be subclassed")

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("a confirmed spend is read-only")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("a confirmed spend is read-only")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a confirmed spend cannot be copied or pickled; confirm the spend again")

    def __repr__(self) -> str:
        return (
            f"<confirmed spend #{self.spend_id} of {self.researcher} in {self.project}: "
            f"rho {self.rho:g}, delta {self.delta:g}>"
        )


def issue_confirmation(
    *, spend_id: int, project: str, researcher: str, rho: float, delta: float
) -> ConfirmedSpend:
    """A confirmation of a spend the caller has just read back from the ledger. Only the ledger
    (``srs.governance.budget.confirm_spend``) calls this; a test holds every other caller to that."""
    spend = object.__new__(ConfirmedSpend)
    for name, value in (
        ("spend_id", int(spend_id)),
        ("project", str(project)),
        ("researcher", str(researcher)),
        ("rho", float(rho)),
        ("delta", float(delta)),
    ):
        object.__setattr__(spend, name, value)
    _outstanding.add(spend)
    return spend


def redeem(spend: Any, rho: float, delta: float, refusal: type[Exception]) -> int:
    """Use up ``spend`` for a release of ``rho`` and ``delta`` and return its id, or raise
    ``refusal``: for anything but an outstanding confirmation issued here, and for one that
    does not cover ``rho`` and ``delta`` (compared in whole nano-rho, as the ledger counts; such
    a refusal leaves the confirmation outstanding)."""
    if type(spend) is not ConfirmedSpend:
        raise refusal(
            "no committed spend confirmed by the ledger: debit the project budget first "
            "(srs.governance.budget.debit) and confirm it (srs.governance.budget.confirm_spend)"
        )
    if spend not in _outstanding:
        which = getattr(spend, "spend_id", "?")
        raise refusal(
            f"spend #{which} is not a confirmation the ledger has outstanding (used for a release "
            "already, or never issued): debit and confirm a new spend"
        )
    if round(spend.rho * NANO) < round(rho * NANO) or spend.delta < delta:
        raise refusal(
            f"spend {spend.spend_id} covers rho {spend.rho:g}, delta {spend.delta:g}; this "
            f"release needs rho {rho:g}, delta {delta:g}"
        )
    _outstanding.discard(spend)
    return spend.spend_id

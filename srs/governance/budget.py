"""The per-project privacy-budget ledger: no differential-privacy result exists unless its
spend was committed first.

Budgets are zero-concentrated DP rho (additive across queries), kept as whole nano-rho so
sums are exact: a spend that exactly meets the remainder is allowed, one a billionth over is
not. A query whose group keys are not public also spends a delta (its groups are released
above a DP threshold); deltas are kept as whole femto-delta and capped per project by policy.

``debit`` checks and records a spend in one database transaction, with the project row locked
on PostgreSQL (``SELECT ... FOR NO KEY UPDATE``) and every write transaction exclusive on
SQLite, so concurrent queries from many processes can never overspend. Every debit and every
refusal for want of budget is audited; a malformed spend (``SpendRefused``) is turned away
before the database is touched.

``confirm_spend`` reads a spend back from the ledger immediately before its noise is drawn: it
must exist, belong to the project and researcher releasing, cover the plan's rho and delta and
not have paid for any output yet. Only then does the DP engine get the ``ConfirmedSpend`` it
releases against (``disclosure.dp.spend``); nothing else can stand in for one.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from disclosure.dp.spend import ConfirmedSpend, is_positive_real, issue_confirmation
from srs.errors import SRSError
from srs.governance.access import authorise
from srs.governance.audit import record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.models import BudgetSpend, Output, Project
from srs.governance.registry.projects import project_records

NANO = 1_000_000_000
FEMTO = 10**15
# The most rho the ledger converts: far above any policy's ceiling (max_project_rho <= 100), far
# below where nano-rho arithmetic would overflow.
MAX_LEDGER_RHO = 1e6


class BudgetExhausted(SRSError):
    """The spend would take the project (or the researcher) over its privacy budget."""


class SpendRefused(SRSError):
    """The spend is not allowed at all: not a positive rho, a negative delta, above the
    per-query limit, or without a purpose."""


class SpendNotConfirmed(SpendRefused):
    """The ledger does not confirm a spend for this release: no such spend, another project's
    or researcher's, too small for the plan, or already paid for an output. Nothing released."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _refuse_unless_positive_real(rho: Any) -> None:
    if not is_positive_real(rho):
        raise SpendRefused(
            "a privacy spend must be a positive, finite rho given as a number (e.g. rho=0.01), "
            f"not {_shown(rho)}"
        )


def to_nano(rho: float) -> int:
    """rho as whole nano-rho, rounded up so that a spend is never under-counted. Any real
    number (NumPy's too) is read as the float it is; one beyond what any budget could hold is
    ``SpendRefused`` before it is converted."""
    _refuse_unless_positive_real(rho)
    if rho > MAX_LEDGER_RHO:
        raise SpendRefused(
            f"rho {_shown(rho)} is beyond any privacy budget (the ledger keeps at most "
            f"{MAX_LEDGER_RHO:g}): give a rho such as 0.01"
        )
    return math.ceil(round(float(rho) * NANO, 3))


def check_query_rho(rho: float, policies: PolicySet) -> int:
    """``rho`` in nano-rho if one query may spend it (a positive, finite real number, not text
    or a flag, at most the policy's ``max_rho_per_query``), else ``SpendRefused``. The rule
    ``debit`` applies, for callers that check a query before planning it. The ceiling is
    compared before anything is converted, so ``1e300`` or ``10**400`` is refused, not
    overflowed.

    >>> from srs.governance.policy import load_policies
    >>> check_query_rho("0.01", load_policies())
    Traceback (most recent call last):
    ...
    srs.governance.budget.SpendRefused: a privacy spend must be a positive, finite rho given as a number (e.g. rho=0.01), not '0.01'
    """
    budget = policies.privacy_budget
    _refuse_unless_positive_real(rho)
    ceiling = f"one query may spend at most rho {budget.max_rho_per_query:g} (policy)"
    if rho > budget.max_rho_per_query:
        raise SpendRefused(f"{ceiling}; asked for {_shown(rho)}")
    amount = to_nano(rho)
    # Rounded up to whole nano-rho, a rho a hair under the ceiling may still pass it.
    if amount > to_nano(budget.max_rho_per_query):
        raise SpendRefused(f"{ceiling}; asked for {_shown(rho)}")
    return amount


def to_femto(delta: float) -> int:
    """delta as whole femto-delta, rounded up (0 for a query whose keys are public)."""
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0 <= delta <= 1:
        raise SpendRefused(f"a delta spend must be a number from 0 to 1, not {_shown(delta)}")
    return math.ceil(round(float(delta) * FEMTO, 3))


@dataclass(frozen=True)
class SpendReceipt:
    """Proof that a spend was committed: show it to release a DP result."""

    spend_id: int
    project: str
    researcher: str
    rho: float
    remaining_rho: float
    epsilon: float
    epsilon_delta: float
    delta: float = 0.0


@dataclass(frozen=True)
class BudgetState:
    """A project's budget now: total, spent and remaining, in rho and as (epsilon, delta)."""

    project: str
    total_rho: float
    spent_rho: float
    remaining_rho: float
    delta: float
    epsilon_total: float
    epsilon_spent: float
    by_researcher: dict[str, float]
    spends: int
    key_release_delta_spent: float = 0.0
    key_release_delta_total: float = 0.0


def _spent(session: Session, project_id: int, researcher: str | None = None) -> tuple[int, int]:
    """Nano-rho and femto-delta spent by a project (or by one researcher in it)."""
    query = select(
        func.coalesce(func.sum(BudgetSpend.nano_rho), 0),
        func.coalesce(func.sum(BudgetSpend.femto_delta), 0),
    ).where(BudgetSpend.project_id == project_id)
    if researcher is not None:
        query = query.where(BudgetSpend.researcher == researcher)
    rho, delta = session.execute(query).one()
    return int(rho), int(delta)


def debit(
    session: Session,
    *,
    project_code: str,
    researcher: str,
    rho: float,
    purpose: str,
    policies: PolicySet,
    delta: float = 0.0,
) -> SpendReceipt:
    """Check the researcher may query the project, then record a spend of ``rho`` (and of
    ``delta`` for a query releasing non-public keys), or refuse.

    Commits before returning: the receipt means the spend is durable. On refusal nothing is
    spent and the refusal is audited.
    """
    budget = policies.privacy_budget
    amount = check_query_rho(rho, policies)
    delta_amount = to_femto(delta)
    # As plain floats from here: NumPy's numbers are accepted but not stored in the audit log.
    rho, delta = float(rho), float(delta)
    if not purpose or not purpose.strip():
        raise SpendRefused("say what the spend is for (purpose): it is shown in the ledger")
    authorise(
        session,
        username=researcher,
        action="output.create",
        policies=policies,
        project_code=project_code,
    )
    # NO KEY UPDATE: debits of a project queue behind each other, while inserts that merely
    # reference the project (outputs, spends: foreign-key KEY SHARE locks) are not blocked; a
    # plain FOR UPDATE deadlocks against them (they take the audit head after the project).
    project = session.execute(
        select(Project)
        .where(Project.code == project_code)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).scalar_one()
    total = to_nano(project.privacy_budget_rho)
    spent, delta_spent = _spent(session, project.id)
    delta_total = to_femto(budget.max_key_release_delta)
    refusal = None
    if spent + amount > total:
        left = (total - spent) / NANO
        refusal = (
            f"project {project_code} has rho {left:.9g} left (epsilon {budget.epsilon_at(left):.3g} at delta "
            f"{budget.delta:g}) of {project.privacy_budget_rho:g}; this query needs {rho:g}"
        )
    elif delta_spent + delta_amount > delta_total:
        refusal = (
            f"project {project_code} has key-release delta {(delta_total - delta_spent) / FEMTO:.3g} left of "
            f"{budget.max_key_release_delta:g}; this query needs {delta:g}: group by columns with public keys instead"
        )
    elif budget.per_researcher_rho_cap is not None:
        mine, _ = _spent(session, project.id, researcher)
        cap = to_nano(budget.per_researcher_rho_cap)
        if mine + amount > cap:
            refusal = f"{researcher} has rho {(cap - mine) / NANO:.9g} left of the per-researcher cap {budget.per_researcher_rho_cap:g}; this query needs {rho:g}"
    if refusal is not None:
        record_event(
            session,
            actor=researcher,
            action="budget.spend",
            target=project_code,
            outcome="deny",
            reason=refusal,
            details={"rho": rho, "delta": delta, "purpose": purpose},
        )
        session.commit()
        raise BudgetExhausted(refusal)
    spend = BudgetSpend(
        project_id=project.id,
        researcher=researcher,
        nano_rho=amount,
        femto_delta=delta_amount,
        purpose=purpose,
    )
    session.add(spend)
    session.flush()
    remaining = (total - spent - amount) / NANO
    record_event(
        session,
        actor=researcher,
        action="budget.spend",
        target=project_code,
        outcome="ok",
        details={
            "spend_id": spend.id,
            "rho": amount / NANO,
            "delta": delta_amount / FEMTO,
            "remaining_rho": remaining,
            "purpose": purpose,
        },
    )
    session.commit()
    return SpendReceipt(
        spend_id=spend.id,
        project=project_code,
        researcher=researcher,
        rho=amount / NANO,
        remaining_rho=remaining,
        epsilon=budget.epsilon_at(amount / NANO),
        epsilon_delta=budget.delta + delta_amount / FEMTO,
        delta=delta_amount / FEMTO,
    )


def confirm_spend(
    session: Session,
    *,
    spend_id: int,
    project_code: str,
    researcher: str,
    rho: float,
    delta: float = 0.0,
) -> ConfirmedSpend:
    """Read spend ``spend_id`` back from the ledger and confirm it pays for a release of ``rho``
    and ``delta`` by ``researcher`` in ``project_code``: it exists, is theirs, covers both and
    has paid for no output yet. Returns the ``ConfirmedSpend`` the DP engine releases against;
    otherwise raises ``SpendNotConfirmed`` (audited) and nothing may be released.

    Call it immediately before drawing the noise, after ``debit`` committed the spend; it
    ends the session's transaction before returning.
    """
    found = session.execute(
        select(BudgetSpend, Project.code)
        .join(Project, Project.id == BudgetSpend.project_id)
        .where(BudgetSpend.id == spend_id)
        .execution_options(populate_existing=True)
    ).one_or_none()
    refusal = None
    if found is None or found[1] != project_code or found[0].researcher != researcher:
        refusal = f"spend #{spend_id} is not a spend of {researcher} in {project_code}"
    else:
        spend = found[0]
        used = session.execute(
            select(Output.id).where(Output.budget_spend_id == spend_id)
        ).scalar_one_or_none()
        if used is not None:
            refusal = f"spend #{spend_id} already paid for output #{used}"
        elif spend.nano_rho < to_nano(rho) or spend.femto_delta < to_femto(delta):
            refusal = (
                f"spend #{spend_id} covers rho {spend.nano_rho / NANO:g}, delta "
                f"{spend.femto_delta / FEMTO:g}; this release needs rho {rho:g}, delta {delta:g}"
            )
    if refusal is not None:
        record_event(
            session,
            actor=researcher,
            action="budget.confirm",
            target=project_code,
            outcome="deny",
            reason=refusal,
            details={"spend_id": spend_id, "rho": rho, "delta": delta},
        )
        session.commit()
        raise SpendNotConfirmed(f"{refusal}: nothing was released; debit a new spend for it")
    # End the read here: no lock is held while the noise is drawn (SQLite's transactions are
    # exclusive). Should two releases ever race for one spend, the output's unique
    # budget_spend_id still lets only one be recorded.
    covered = spend.nano_rho / NANO, spend.femto_delta / FEMTO
    session.commit()
    return issue_confirmation(
        spend_id=spend_id,
        project=project_code,
        researcher=researcher,
        rho=covered[0],
        delta=covered[1],
    )


def budget_state(session: Session, project_code: str, policies: PolicySet) -> BudgetState:
    """Where a project's budget stands."""
    project = session.execute(
        select(Project).where(Project.code == project_code)
    ).scalar_one_or_none()
    if project is None:
        raise SRSError(f"no project {project_code!r}; see `srs project list`")
    rows = session.execute(
        select(
            BudgetSpend.researcher,
            func.sum(BudgetSpend.nano_rho),
            func.count(),
            func.sum(BudgetSpend.femto_delta),
        )
        .where(BudgetSpend.project_id == project.id)
        .group_by(BudgetSpend.researcher)
    ).all()
    spent = sum(int(total) for _, total, _, _ in rows) / NANO
    budget = policies.privacy_budget
    total = to_nano(project.privacy_budget_rho) / NANO
    return BudgetState(
        project=project_code,
        total_rho=total,
        spent_rho=spent,
        remaining_rho=total - spent,
        delta=budget.delta,
        epsilon_total=budget.epsilon_at(total),
        epsilon_spent=budget.epsilon_at(spent),
        by_researcher={name: int(amount) / NANO for name, amount, _, _ in rows},
        spends=sum(int(count) for _, _, count, _ in rows),
        key_release_delta_spent=sum(int(d or 0) for _, _, _, d in rows) / FEMTO,
        key_release_delta_total=budget.max_key_release_delta,
    )


def spends(session: Session, project_code: str) -> list[BudgetSpend]:
    """Every spend of a project, oldest first."""
    return project_records(session, BudgetSpend, project_code)

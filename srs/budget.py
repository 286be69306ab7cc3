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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from srs.access import authorise
from srs.audit import record_event
from srs.errors import SRSError
from srs.policy import PolicySet
from srs.registry.models import BudgetSpend, Project
from srs.registry.projects import project_records

NANO = 1_000_000_000
FEMTO = 10**15


class BudgetExhausted(SRSError):
    """The spend would take the project (or the researcher) over its privacy budget."""


class SpendRefused(SRSError):
    """The spend is not allowed at all: not a positive rho, a negative delta, above the
    per-query limit, or without a purpose."""


def to_nano(rho: float) -> int:
    """rho as whole nano-rho, rounded up so that a spend is never under-counted."""
    if not isinstance(rho, int | float) or not math.isfinite(rho) or rho <= 0:
        raise SpendRefused(f"a privacy spend must be a positive, finite rho, not {rho!r}")
    return math.ceil(round(rho * NANO, 3))


def to_femto(delta: float) -> int:
    """delta as whole femto-delta, rounded up (0 for a query whose keys are public)."""
    if not isinstance(delta, int | float) or not math.isfinite(delta) or delta < 0:
        raise SpendRefused(f"a delta spend must be a finite number >= 0, not {delta!r}")
    return math.ceil(round(delta * FEMTO, 3))


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
    amount = to_nano(rho)
    delta_amount = to_femto(delta)
    if amount > to_nano(budget.max_rho_per_query):
        raise SpendRefused(
            f"one query may spend at most rho {budget.max_rho_per_query:g} (policy); asked for {rho:g}"
        )
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

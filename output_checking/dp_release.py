"""Running a DP query for a project: plan, debit the budget, release, record the output.

The order is the guarantee: the query is planned (bad queries fail here, costing nothing),
then the spend is committed to the project's ledger, only then is the noise drawn, and the
result is recorded as a ``dp_result`` output naming its spend. A crash after the debit loses
budget, never privacy: no DP result exists without a committed spend.

>>> # with a registry session ``s`` and a table of linked/journeys in ``journeys``:
>>> # out = release_dp(s, project_code="P001", researcher="ana", policies=policies,
>>> #                  query=dp.count(by=["sex"]), data=journeys, rho=0.01)
>>> # out.result.table  ->  sex, estimate, lower, upper
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from disclosure import dp
from output_checking.outputs import record_output
from srs.budget import SpendReceipt, debit
from srs.policy import PolicySet
from srs.registry.models import Output


@dataclass(frozen=True)
class DPOutput:
    """A released DP result, the spend that paid for it and the output that records it."""

    result: dp.DPResult
    receipt: SpendReceipt
    output_id: int


def preview_dp(
    query: dp.DPQuery,
    data: Any,
    policies: PolicySet,
    *,
    rho: float | None = None,
    accuracy: float | None = None,
    dictionary: list[dict[str, Any]] | None = None,
) -> dp.DPPreview:
    """Cost and expected error of a DP query, without spending anything."""
    return _plan(query, data, policies, rho, accuracy, dictionary).preview()


def _plan(query, data, policies: PolicySet, rho, accuracy, dictionary) -> dp.DPPlan:
    """The query planned with public keys from the data dictionary (bad queries fail here)."""
    query = dp.with_dictionary_keys(query, dictionary)
    return dp.plan(query, data, policies.privacy_budget, rho=rho, accuracy=accuracy)


def release_dp(
    session: Session,
    *,
    project_code: str,
    researcher: str,
    query: dp.DPQuery,
    data: Any,
    policies: PolicySet,
    rho: float | None = None,
    accuracy: float | None = None,
    dictionary: list[dict[str, Any]] | None = None,
    name: str | None = None,
    context: str = "",
) -> DPOutput:
    """Spend from ``project_code``'s budget and release ``query`` on ``data`` as an output.

    ``dictionary`` is the dataset's data dictionary: grouping columns whose public values it
    lists need no threshold. Raises ``BudgetExhausted`` (nothing spent, nothing released) when
    the budget cannot cover the query, ``DPQueryError`` for a malformed query (nothing spent).
    """
    plan = _plan(query, data, policies, rho, accuracy, dictionary)
    query = plan.query
    receipt = debit(
        session,
        project_code=project_code,
        researcher=researcher,
        rho=plan.rho,
        delta=plan.delta,
        purpose=name or query.describe(),
        policies=policies,
    )
    result = plan.release(receipt)
    output: Output = record_output(
        session,
        project_code=project_code,
        author=researcher,
        kind="dp_result",
        name=name or f"DP {query.describe()}",
        content=result.to_dict(),
        checks=[
            {
                "check": "differential_privacy",
                "status": "ok",
                "message": (
                    f"released under rho {receipt.rho:g} (epsilon {receipt.epsilon:.3g} at delta "
                    f"{receipt.epsilon_delta:g}), spend #{receipt.spend_id}; no cell suppression needed"
                ),
            }
        ],
        context=context,
        budget_spend_id=receipt.spend_id,
    )
    session.commit()
    return DPOutput(result=result, receipt=receipt, output_id=output.id)

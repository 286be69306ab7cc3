"""Running a DP query for a project: plan, debit the budget, release, record the output.

The order is the guarantee: the query is planned (bad queries fail here, costing nothing),
then the spend is committed to the project's ledger, only then is the noise drawn, and the
result is recorded as a ``dp_result`` output naming its spend, with its files (a CSV of the
released table and the JSON of the whole result, named after the output). A crash after the
debit loses budget, never privacy: no DP result exists without a committed spend. Group columns
the file gate would stop (identifier-like names, more rows than a table may have) are refused
before the debit, so such a query spends nothing.

>>> # with a registry session ``s`` and a table of linked/journeys in ``journeys``:
>>> # out = release_dp(s, project_code="P001", researcher="ana", policies=policies,
>>> #                  query=dp.count(by=["sex"]), data=journeys, rho=0.01)
>>> # out.result.table  ->  sex, estimate, lower, upper
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from disclosure import dp
from disclosure.file_gate import identifier_columns
from output_checking.outputs import OutputError, file_gate_rules, file_stem, record_output
from srs.budget import SpendReceipt, debit
from srs.policy import PolicySet
from srs.registry.models import Output


@dataclass(frozen=True)
class DPOutput:
    """A released DP result, the spend that paid for it and the output that records it."""

    result: dp.DPResult
    receipt: SpendReceipt
    output_id: int


def dp_files(stem: str, result: dp.DPResult) -> dict[str, bytes]:
    """A DP result's files: the released table as CSV and the whole result as JSON."""
    return {
        f"{stem}.csv": result.table.to_csv(index=False).encode("utf-8"),
        f"{stem}.json": result.to_json().encode("utf-8"),
    }


def _refuse_files_the_gate_would_stop(query: dp.DPQuery, policies: PolicySet) -> None:
    """Refuse, before anything is spent, a result whose files could never leave."""
    rules = file_gate_rules(policies)
    flagged = identifier_columns(list(query.groups), rules.identifier_column_patterns)
    if flagged:
        raise OutputError(
            f"grouping by {', '.join(flagged)} would release a column that looks like a "
            "record-level identifier; nothing was spent: group by other columns"
        )
    if query.public_keys:
        rows = math.prod(len(query.keys[column]) for column in query.by)
        if query.statistic == "histogram":
            rows *= len(query.histogram_labels())
        if query.statistic == "quantile":
            rows *= len(query.quantiles)
        if rows > rules.max_csv_rows:
            raise OutputError(
                f"the result would have {rows:,} rows, over the {rules.max_csv_rows:,}-row limit "
                "for tables; nothing was spent: group by fewer or coarser columns"
            )


def _record_dp_output(
    session: Session,
    *,
    project_code: str,
    researcher: str,
    receipt: SpendReceipt,
    name: str,
    content: dict[str, Any],
    what: str,
    context: str,
    files: dict[str, bytes],
    rules: Any,
) -> Output:
    """Record a released DP result as a ``dp_result`` output naming its spend, and commit."""
    output = record_output(
        session,
        project_code=project_code,
        author=researcher,
        kind="dp_result",
        name=name,
        content=content,
        checks=[
            {
                "check": "differential_privacy",
                "status": "ok",
                "message": (
                    f"{what} under rho {receipt.rho:g} (epsilon {receipt.epsilon:.3g} at delta "
                    f"{receipt.epsilon_delta:g}), spend #{receipt.spend_id}; no cell suppression "
                    "needed"
                ),
            }
        ],
        context=context,
        budget_spend_id=receipt.spend_id,
        files=files,
        file_rules=rules,
    )
    session.commit()
    return output


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
    the budget cannot cover the query, ``DPQueryError`` for a malformed query and
    ``OutputError`` for a result the file gate would stop (nothing spent either).
    """
    plan = _plan(query, data, policies, rho, accuracy, dictionary)
    query = plan.query
    _refuse_files_the_gate_would_stop(query, policies)
    output_name = name or f"DP {query.describe()}"
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
    # Private keys can still make more rows than the gate allows; the spend then stands with no
    # result, as after any crash past the debit.
    output = _record_dp_output(
        session,
        project_code=project_code,
        researcher=researcher,
        receipt=receipt,
        name=output_name,
        content=result.to_dict(),
        what="released",
        context=context,
        files=dp_files(file_stem(output_name), result),
        rules=file_gate_rules(policies),
    )
    return DPOutput(result=result, receipt=receipt, output_id=output.id)


# ---------------------------------------------------------------------- DP synthetic replicas
@dataclass(frozen=True)
class DPReplicaOutput:
    """A DP synthetic replica released for a project, its spend and the output recording it."""

    data: Any  # pandas DataFrame of synthetic rows
    description: str
    receipt: SpendReceipt
    output_id: int


def release_dp_replica(
    session: Session,
    *,
    project_code: str,
    researcher: str,
    data: Any,
    columns: list[str],
    rows: int,
    rho: float,
    policies: PolicySet,
    dictionary: list[dict[str, Any]] | None,
    algorithm: str = "mst",
    bins: int | None = None,
    seed: int | None = None,
    dataset: str | None = None,
    name: str | None = None,
    context: str = "",
) -> DPReplicaOutput:
    """Synthesise a DP replica of ``columns`` of ``data`` with OpenDP's MST or AIM, paid from
    ``project_code``'s budget, and record it as a ``dp_result`` output (its rows as CSV, its
    cost and released-marginal noise as JSON) for output checking.

    Everything that can be refused is refused before the debit: bad columns, algorithm or rho
    (``DPReplicaError``), more rows than a table may have leaving the environment or identifier
    columns (``OutputError``), a budget that cannot cover it (``BudgetExhausted``).
    """
    from synthetic.dp_synthesis import DEFAULT_BINS, dp_replica

    rules = file_gate_rules(policies)
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise OutputError(f"rows must be a positive whole number, not {rows!r}")
    if rows > rules.max_csv_rows:
        raise OutputError(
            f"{rows:,} synthetic rows is over the {rules.max_csv_rows:,}-row limit for a file "
            "leaving the environment; nothing was spent: ask for fewer rows"
        )
    flagged = identifier_columns(list(columns), rules.identifier_column_patterns)
    if flagged:
        raise OutputError(
            f"{', '.join(flagged)} looks like a record-level identifier and cannot be "
            "synthesised for release; nothing was spent"
        )
    what = dataset or "data"
    output_name = name or f"DP synthetic replica of {what} ({', '.join(columns)})"
    replica = dp_replica(
        session,
        project_code=project_code,
        researcher=researcher,
        table=data,
        columns=columns,
        rho=rho,
        policies=policies,
        dictionary=dictionary,
        rows=rows,
        seed=seed,
        dataset=what,
        bins=bins or DEFAULT_BINS,
        algorithm=algorithm,
    )
    receipt, frame = replica.receipt, replica.data
    noise = {
        " x ".join(clique): float(marginal["stddev"].iloc[0])
        for clique, marginal in replica.marginals.items()
    }
    content = {
        "statistic": "dp_synthetic_replica",
        "dataset": dataset,
        "algorithm": algorithm,
        "columns": list(columns),
        "rows": rows,
        "rho": receipt.rho,
        "delta": receipt.delta,
        "description": replica.description,
        "marginal_noise_stddev": noise,
        "notes": [
            "Synthetic rows sampled from differentially private marginals (post-processing): "
            "no row is a real person's record, and the guarantee covers every row."
        ],
    }
    stem = file_stem(output_name)
    output = _record_dp_output(
        session,
        project_code=project_code,
        researcher=researcher,
        receipt=receipt,
        name=output_name,
        content=content,
        what=f"DP synthetic replica ({algorithm.upper()})",
        context=context,
        files={
            f"{stem}.csv": frame.to_csv(index=False).encode("utf-8"),
            f"{stem}.json": json.dumps(content, indent=2).encode("utf-8"),
        },
        rules=rules,
    )
    return DPReplicaOutput(
        data=frame, description=replica.description, receipt=receipt, output_id=output.id
    )

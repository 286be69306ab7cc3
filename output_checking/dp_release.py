"""Running a DP query for a project: read the dataset, plan, debit, confirm, release, record.

A DP query names a dataset the environment holds (and optionally its version), never a frame:
the dataset is read here through the vault's access check (granted to the project, audited),
then the query's own declarative ``where`` and ``derive`` (``disclosure.dp.selection``) choose
its rows and derive its columns. The order is the guarantee: the query is planned (bad queries
fail here, costing nothing), the spend is committed to the project's ledger, the ledger confirms
that very spend immediately before the noise is drawn (``srs.governance.budget.confirm_spend``: it exists,
is this researcher's in this project, covers the plan and has paid for no output), and the
result is recorded as a ``dp_result`` output naming its spend, the dataset and version read and
the query, with its files (a CSV of the released table and the JSON of the whole result). A
crash after the debit loses budget, never privacy. Group columns the file gate would stop
(identifier-like names, more rows than a table may have) are refused before the debit.

>>> # with a registry session ``db`` and the deployment's vault:
>>> # out = release_dp(db, vault, project_code="P001", researcher="ana", policies=policies,
>>> #                  query=dp.count(by=["sex"]), dataset="linked/journeys",
>>> #                  where=[("court", "==", "crown")], rho=0.01)
>>> # out.result.table  ->  sex, estimate, lower, upper
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import polars as pl
from sqlalchemy.orm import Session

from disclosure import dp
from disclosure.dp.selection import refuse_frame
from disclosure.file_gate import identifier_columns
from output_checking.outputs import (
    OutputError,
    combined_uses,
    file_gate_rules,
    file_stem,
    record_output,
)
from srs.governance.budget import SpendReceipt, check_query_rho, confirm_spend, debit
from srs.governance.policy import PolicySet
from srs.governance.registry.models import Output
from srs.vault.store import Vault, VaultError


@dataclass(frozen=True)
class HeldData:
    """A dataset the environment read for a DP query, with its rows chosen and columns derived
    by the query's selection: what was read (name, version, vault or its synthetic replica) and
    its privacy unit, the column the policy names for it (``privacy_budget.privacy_unit``)."""

    dataset: str
    version: int
    source: str
    frame: pd.DataFrame
    dictionary: list[dict[str, Any]]
    selection: dp.RowSelection
    unit: str
    # The name the policy knows it by (a replica stands for its linked dataset).
    policy_name: str
    # The content hash of the version read, as the catalogue holds it.
    content_hash: str = ""

    @property
    def use(self) -> dict[str, Any]:
        """The version read, as an output records the dataset versions it was made from."""
        return {"name": self.dataset, "version": self.version, "content_hash": self.content_hash}

    def rows(self, columns: list[str]) -> pl.LazyFrame:
        """The selected rows, with ``columns`` (and those the selection reads) as Polars."""
        # The derived names too: one that is already a column is refused, not shadowed.
        sources = {c.column for c in self.selection.where} | {
            name for d in self.selection.derive for name in (d.column, d.name)
        }
        wanted = [c for c in dict.fromkeys([*columns, *sorted(sources)]) if c in self.frame]
        return self.selection.apply(self.frame[wanted])

    def describe(self) -> dict[str, Any]:
        """What was read, as recorded with the output."""
        return {
            "dataset": self.dataset,
            "version": self.version,
            "source": self.source,
            "privacy_unit": self.unit,
            **self.selection.to_dict(),
        }


def read_held_data(
    session: Session,
    vault: Vault,
    *,
    dataset: Any,
    project_code: str,
    researcher: str,
    policies: PolicySet,
    version: int | None = None,
    where: Any = None,
    derive: Any = None,
    synthetic: bool = False,
) -> HeldData:
    """Validate the selection, then read ``dataset`` (the version given, else the newest) for
    ``researcher`` in ``project_code`` through the access check, judged on the version read: a
    dataset the project holds no grant for, or a version classified above the project's
    approval, raises ``AccessDenied`` (audited). With ``synthetic``, the deployment's stored
    replica of the linked dataset is read in its place (a session on synthetic data). The
    privacy unit is the column the policy names for the dataset, never the query's choice: it
    can be neither filtered on nor derived from, and a dataset without it is refused."""
    name = refuse_frame(dataset)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise dp.DPQueryError(f"version must be a whole number such as 3, not {version!r}")
    budget = policies.privacy_budget
    selection = dp.select_rows(where, derive, policy=budget, dataset=name)
    if synthetic:
        from synthetic.vault_replicas import read_replica, synthetic_name

        stored = synthetic_name(name) if "/" in name else name
        if version is None and vault.exists(session, stored):
            version = vault.get(session, stored).version
        frame, dictionary = read_replica(session, vault, name, actor=researcher, version=version)
        read = vault.get(session, stored, version)
        source = "synthetic"
    else:
        # The version is fixed first, so the one recorded is the one read; a name the vault
        # does not hold is answered by the access check first, as ``s.dataset`` answers it.
        try:
            read = vault.get(session, name, version)
        except VaultError:
            vault.read(session, name, actor=researcher, project=project_code, version=version)
            raise
        frame = vault.read(
            session, name, actor=researcher, project=project_code, version=read.version
        )
        dictionary = list(read.data_dictionary or [])
        source = "vault"
    unit = budget.privacy_unit_of(name)
    if unit not in frame.columns:
        raise dp.DPQueryError(
            f"{read.name} version {read.version} has no column {unit!r}, the privacy unit the "
            "policy names for it (privacy_budget.privacy_unit, privacy_units): a DP query cannot "
            "run on it; ask a data steward"
        )
    return HeldData(
        dataset=read.name,
        version=read.version,
        source=source,
        frame=frame,
        dictionary=[*dictionary, *selection.dictionary_entries()],
        selection=selection,
        unit=unit,
        policy_name=name,
        content_hash=read.content_hash,
    )


@dataclass(frozen=True)
class DPOutput:
    """A released DP result, the spend that paid for it and the output that records it."""

    result: dp.DPResult
    receipt: SpendReceipt
    output_id: int


def dp_files(stem: str, result: dp.DPResult, read: dict[str, Any]) -> dict[str, bytes]:
    """A DP result's files: the released table as CSV and the whole result, with the dataset
    and version it read and the rows it chose, as JSON."""
    whole = {**result.to_dict(), "data": read}
    return {
        f"{stem}.csv": result.table.to_csv(index=False).encode("utf-8"),
        f"{stem}.json": json.dumps(whole, indent=2, sort_keys=True).encode("utf-8"),
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
    read: dict[str, Any],
    query: dict[str, Any],
    context: str,
    files: dict[str, bytes],
    rules: Any,
    datasets_used: list[dict[str, Any]],
) -> Output:
    """Record a released DP result as a ``dp_result`` output naming its spend, the dataset and
    version it read and the query (statistic, columns, groups, selection), and commit."""
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
                    f"{what} on {read['dataset']} version {read['version']} under rho "
                    f"{receipt.rho:g} (epsilon {receipt.epsilon:.3g} at delta "
                    f"{receipt.epsilon_delta:g}), spend #{receipt.spend_id}; no cell suppression "
                    "needed"
                ),
                "data": read,
                "query": query,
            }
        ],
        context=context,
        budget_spend_id=receipt.spend_id,
        files=files,
        file_rules=rules,
        datasets_used=datasets_used,
    )
    session.commit()
    return output


def _query_record(plan: dp.DPPlan) -> dict[str, Any]:
    """The query as recorded with its output: statistic, column, groups and their keys, and
    the privacy unit and row cap it ran under (the policy's)."""
    query = plan.query
    return {
        "statistic": query.statistic,
        "column": query.column,
        "by": list(query.by),
        "keys": {column: list(values) for column, values in query.keys.items()},
        "privacy_unit": plan.unit,
        "max_rows_per_person": plan.policy.max_rows_per_person,
        "description": query.describe(),
    }


def _plan(
    query: dp.DPQuery, held: HeldData, policies: PolicySet, rho: Any, accuracy: Any
) -> dp.DPPlan:
    """The query planned on the selected rows, with public keys from the data dictionary and
    the derived bands (bad queries fail here, costing nothing). ``rho`` is checked by the
    ledger's own rule first (``check_query_rho``). Whatever ``query`` is or carries, it is
    rebuilt as a plain ``DPQuery`` and runs under the policy's privacy unit for the dataset
    and its ``max_rows_per_person`` (``dp.plan``), never a unit or cap of its own."""
    query = dp.with_dictionary_keys(dp.rebuilt(query), held.dictionary)
    columns = [held.unit, *query.by] + ([query.column] if query.column else [])
    return dp.plan(
        query,
        held.rows(columns),
        policies.privacy_budget,
        rho=rho,
        accuracy=accuracy,
        dataset=held.policy_name,
    )


def _check_spend_arguments(rho: Any, accuracy: Any, policies: PolicySet) -> None:
    """Refuse a malformed rho (text, a flag, not finite, not positive, over the per-query
    ceiling: ``SpendRefused``) or accuracy (``DPQueryError``) before anything is read."""
    if rho is not None:
        check_query_rho(rho, policies)
    if accuracy is not None and not dp.is_positive_real(accuracy):
        raise dp.DPQueryError(
            f"accuracy must be a positive, finite number (e.g. accuracy=50), not {accuracy!r}"
        )


def preview_dp(
    session: Session,
    vault: Vault,
    *,
    project_code: str,
    researcher: str,
    query: dp.DPQuery,
    dataset: str,
    policies: PolicySet,
    version: int | None = None,
    where: Any = None,
    derive: Any = None,
    rho: float | None = None,
    accuracy: float | None = None,
    synthetic: bool = False,
) -> dp.DPPreview:
    """Cost and expected error of ``query`` on ``dataset`` (read through the access check, its
    rows chosen by ``where`` and ``derive``), without spending anything."""
    _check_spend_arguments(rho, accuracy, policies)
    held = read_held_data(
        session,
        vault,
        dataset=dataset,
        project_code=project_code,
        researcher=researcher,
        policies=policies,
        version=version,
        where=where,
        derive=derive,
        synthetic=synthetic,
    )
    return _plan(query, held, policies, rho, accuracy).preview()


def release_dp(
    session: Session,
    vault: Vault,
    *,
    project_code: str,
    researcher: str,
    query: dp.DPQuery,
    dataset: str,
    policies: PolicySet,
    version: int | None = None,
    where: Any = None,
    derive: Any = None,
    rho: float | None = None,
    accuracy: float | None = None,
    name: str | None = None,
    context: str = "",
    synthetic: bool = False,
    datasets_used: list[dict[str, Any]] | None = None,
) -> DPOutput:
    """Read ``dataset`` for ``researcher`` in ``project_code`` (granted to that project, newest
    version unless ``version``), choose its rows by ``where`` and ``derive``, spend from the
    project's budget and release ``query`` as an output.

    The data dictionary of the dataset makes grouping columns whose values it lists public (no
    threshold, no delta), as do derived bands. Raises ``AccessDenied`` for a dataset the project
    holds no grant for, ``SpendRefused`` for a malformed rho, ``SelectionError`` for a malformed
    selection, ``DPQueryError`` for a malformed query and ``OutputError`` for a result the file
    gate would stop (nothing spent for any of them), ``BudgetExhausted`` when the budget cannot
    cover the query (nothing spent, nothing released) and ``SpendNotConfirmed`` when the ledger
    does not confirm the spend just before release (nothing released). The output records
    the version read with ``datasets_used`` (the other versions its session had read).
    """
    _check_spend_arguments(rho, accuracy, policies)
    held = read_held_data(
        session,
        vault,
        dataset=dataset,
        project_code=project_code,
        researcher=researcher,
        policies=policies,
        version=version,
        where=where,
        derive=derive,
        synthetic=synthetic,
    )
    plan = _plan(query, held, policies, rho, accuracy)
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
    confirmed = confirm_spend(
        session,
        spend_id=receipt.spend_id,
        project_code=project_code,
        researcher=researcher,
        rho=plan.rho,
        delta=plan.delta,
    )
    result = plan.release(confirmed)
    read = held.describe()
    # Private keys can still make more rows than the gate allows; the spend then stands with no
    # result, as after any crash past the debit.
    output = _record_dp_output(
        session,
        project_code=project_code,
        researcher=researcher,
        receipt=receipt,
        name=output_name,
        content={**result.to_dict(), "data": read},
        what="released",
        read=read,
        query=_query_record(plan),
        context=context,
        files=dp_files(file_stem(output_name), result, read),
        rules=file_gate_rules(policies),
        datasets_used=combined_uses(datasets_used, [held.use]),
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
    vault: Vault,
    *,
    project_code: str,
    researcher: str,
    dataset: str,
    columns: list[str],
    rows: int,
    rho: float,
    policies: PolicySet,
    version: int | None = None,
    where: Any = None,
    derive: Any = None,
    algorithm: str = "mst",
    bins: int | None = None,
    seed: int | None = None,
    name: str | None = None,
    context: str = "",
    synthetic: bool = False,
    datasets_used: list[dict[str, Any]] | None = None,
) -> DPReplicaOutput:
    """Read ``dataset`` as ``release_dp`` does (granted to the project, its rows chosen by
    ``where`` and ``derive``), synthesise a DP replica of ``columns`` with OpenDP's MST or AIM,
    paid from ``project_code``'s budget, and record it as a ``dp_result`` output (its rows as
    CSV, its cost and released-marginal noise as JSON) for output checking.

    Everything that can be refused is refused before the debit: bad columns, algorithm or rho
    (``DPReplicaError``, ``SpendRefused``), more rows than a table may have leaving the
    environment or identifier columns (``OutputError``), a budget that cannot cover it
    (``BudgetExhausted``). The output records the version read as ``release_dp``'s does.
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
    _check_spend_arguments(rho, None, policies)
    held = read_held_data(
        session,
        vault,
        dataset=dataset,
        project_code=project_code,
        researcher=researcher,
        policies=policies,
        version=version,
        where=where,
        derive=derive,
        synthetic=synthetic,
    )
    output_name = name or f"DP synthetic replica of {held.dataset} ({', '.join(columns)})"
    replica = dp_replica(
        session,
        project_code=project_code,
        researcher=researcher,
        table=held.rows([held.unit, *columns]).collect(),
        person_key=held.unit,
        columns=columns,
        rho=rho,
        policies=policies,
        dictionary=held.dictionary,
        rows=rows,
        seed=seed,
        dataset=held.dataset,
        bins=bins or DEFAULT_BINS,
        algorithm=algorithm,
    )
    receipt, frame = replica.receipt, replica.data
    noise = {
        " x ".join(clique): float(marginal["stddev"].iloc[0])
        for clique, marginal in replica.marginals.items()
    }
    read = held.describe()
    content = {
        "statistic": "dp_synthetic_replica",
        "dataset": held.dataset,
        "data": read,
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
        read=read,
        query={"statistic": "dp_synthetic_replica", "columns": list(columns), "rows": rows},
        context=context,
        files={
            f"{stem}.csv": frame.to_csv(index=False).encode("utf-8"),
            f"{stem}.json": json.dumps(content, indent=2).encode("utf-8"),
        },
        rules=rules,
        datasets_used=combined_uses(datasets_used, [held.use]),
    )
    return DPReplicaOutput(
        data=frame, description=replica.description, receipt=receipt, output_id=output.id
    )

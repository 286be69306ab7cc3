"""Differentially private synthetic replicas: OpenDP's marginal-based synthesisers (MST, AIM) at a
person-level unit, paid for from the project's budget ledger, then sampled into new rows.

``plan_dp_replica`` checks the columns and states the cost (nothing is spent); the caller debits
the project's budget (``srs.governance.budget.debit``) and has the ledger confirm it
(``srs.governance.budget.confirm_spend``); ``synthesize_dp`` then draws the noise, once, and only against
that confirmed spend; ``dp_replica`` does it all in that order. The DP guarantee covers the
released marginals, and so every row sampled from them (post-processing).

How it is built: OpenDP 0.16's marginal-based synthesisers, with Private-PGM (``mbi``) behind
them. The plan is ``Context.compositor(...)`` at a person-level privacy unit (the person key
as identifier, each person's rows capped by ``truncate_per_group``), then
``.contingency_table(keys=..., algorithm=dp.mbi.MST() | dp.mbi.AIM())``; releasing it draws
noisy one-way marginals of every column and the two-way marginals the algorithm selects
(privately, inside the same rho), and ``ContingencyTable.synthesize()`` samples rows from the
fitted graphical model. MST (the default) is the faster; AIM adapts its choice of marginals to
where the model is worst and is slower.

Every column's categories are public: a categorical column needs its values listed in the data
dictionary (``values``), a numeric one public bounds (policy ``value_bounds``, else the
dictionary's ``min``/``max``) cut into equal bins. No key is learnt from the data, so no delta is
spent and no real category, minimum or maximum can leak. Missing values, and values the
dictionary does not list, are one more public category, ``(missing)``, and come out as missing.
Columns cross into OpenDP as category codes (this module's own binning, not OpenDP's ``cuts``,
which would put missing numbers in the top bin and sample values past the public bounds);
numbers are drawn back uniformly within their bin, inside the public bounds.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import opendp.prelude as dp
import pandas as pd
import polars as pl
from sqlalchemy.orm import Session

from disclosure.dp import ConfirmedSpend, DPQueryError, DPReleaseRefused, on_nano_grid
from disclosure.dp.engine import IDENTIFIER_HASH_SEED, MAX_CELLS, require_spend
from disclosure.dp.queries import MISSING_KEY, key_text
from srs.governance.budget import SpendReceipt, confirm_spend, debit
from srs.governance.policy import PolicySet
from synthetic.errors import SyntheticError

dp.enable_features("contrib")

DEFAULT_BINS = 10
COUNT = "count"
NUMERIC_TYPES = ("integer", "number")


class DPReplicaError(SyntheticError, DPQueryError):
    """A DP replica cannot be planned as asked (columns, bounds, rows); nothing was spent.

    Both a ``SyntheticError`` (the CLI prints it) and a ``DPQueryError`` (like any bad DP query).
    """


class DPReplicaRefused(DPReleaseRefused):
    """A replica was synthesised without a committed spend covering it, or a second time."""


@dataclass(frozen=True)
class ReplicaColumn:
    """One column of a DP replica and its public categories (bins, for a numeric column)."""

    name: str
    kind: Literal["category", "flag", "integer", "number"]
    labels: tuple[str, ...]
    edges: tuple[float, ...] = ()

    @property
    def size(self) -> int:
        """Number of public categories, the ``(missing)`` category included."""
        return len(self.labels) + 1

    @property
    def missing_code(self) -> int:
        """The code of the ``(missing)`` category (the last)."""
        return len(self.labels)


ALGORITHMS = ("mst", "aim")


class DPReplicaPlan:
    """A DP replica prepared on one table at one privacy loss: read its cost, then synthesise
    from it exactly once against a committed spend (``synthesize_dp``).

    The release is OpenDP's ``contingency_table(...)`` with MST or AIM: every column's one-way
    marginal and the two-way marginals the algorithm selects, all noisy, fitted by Private-PGM
    into a graphical model that ``ContingencyTable.synthesize()`` samples from.
    """

    def __init__(
        self,
        frame: pl.LazyFrame,
        columns: tuple[ReplicaColumn, ...],
        *,
        person_key: str,
        rho: float,
        policies: PolicySet,
        algorithm: str = "mst",
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise DPReplicaError(
                f"algorithm must be one of {', '.join(ALGORITHMS)} (OpenDP's MST or AIM), "
                f"not {algorithm!r}"
            )
        self.columns = columns
        self.person_key = person_key
        self.algorithm = algorithm
        self.rho = on_nano_grid(rho)
        self.delta = 0.0  # every key is public: nothing is learnt about which categories exist
        self.budget = policies.privacy_budget
        self._frame = frame
        with warnings.catch_warnings():
            # OpenDP warns when rho exceeds its usual range; the site's policy sets the range.
            warnings.simplefilter("ignore")
            self._context = dp.Context.compositor(
                data=frame,
                privacy_unit=dp.unit_of(contributions=1, identifier=pl.col(person_key)),
                privacy_loss=dp.loss_of(rho=self.rho),
                split_evenly_over=1,
                # Only a public bound on the table's length: no invariant keys or lengths.
                margins=[dp.polars.Margin(by=[], max_length=self.budget.max_dataset_rows)],
            )
            self._query = (
                self._context.query()
                .truncate_per_group(self.budget.max_rows_per_person)
                .select(*(c.name for c in columns))
                .contingency_table(keys=self._keys(), algorithm=self._algorithm())
            )
        self._released = False
        self.released: dict[tuple[str, ...], pd.DataFrame] = {}

    # ------------------------------------------------------------------ preparation
    def _keys(self) -> dict[str, pl.Series]:
        """Each column's public category codes (OpenDP adds one more, null, never used)."""
        return {c.name: pl.Series(c.name, range(c.size), dtype=pl.UInt32) for c in self.columns}

    def _algorithm(self):
        return dp.mbi.MST() if self.algorithm == "mst" else dp.mbi.AIM()

    def _column(self, name: str) -> ReplicaColumn:
        return next(c for c in self.columns if c.name == name)

    # ------------------------------------------------------------------ the cost
    @property
    def epsilon(self) -> float:
        """The plan's rho as epsilon at the policy's delta."""
        return self.budget.epsilon_at(self.rho)

    def describe(self) -> str:
        """What synthesising would release and what it costs, in words a researcher can check."""
        how = (
            "MST (a maximum spanning tree of two-way marginals, chosen privately)"
            if self.algorithm == "mst"
            else "AIM (two-way marginals chosen adaptively, privately, where the model is worst)"
        )
        return (
            f"DP synthetic replica of {', '.join(c.name for c in self.columns)} by OpenDP's "
            f"{how}: costs rho {self.rho:g} (epsilon {self.epsilon:.3g} at delta "
            f"{self.budget.delta:g}), person-level with at most {self.budget.max_rows_per_person} "
            "rows per person; releases noisy one-way marginals of every column and the selected "
            "two-way marginals, all categories public (nothing learnt from the data's keys)"
        )

    # ------------------------------------------------------------------ release
    def _release(self, spend: ConfirmedSpend):
        """Draw the noise: only once, only against a spend covering this plan."""
        if self._released:
            raise DPReplicaRefused(
                "this replica plan was already synthesised; plan (and pay for) a new one"
            )
        require_spend(spend, self.rho, self.delta, DPReplicaRefused)
        self._released = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = self._query.release()
        for measurement in table.marginals.flatten():
            clique = tuple(measurement.clique)
            self.released[clique] = _labelled(
                np.asarray(measurement.noisy_measurement, dtype=float),
                [self._column(n) for n in clique],
                float(measurement.stddev),
            )
        return table


def _labelled(counts: np.ndarray, columns: list[ReplicaColumn], stddev: float) -> pd.DataFrame:
    """A released marginal (flat, row-major over its columns' codes plus OpenDP's null code)
    with category labels, without the never-used null cells, and its noise standard deviation."""
    sizes = [c.size + 1 for c in columns]
    codes = np.array(list(itertools.product(*(range(n) for n in sizes))))
    frame = pd.DataFrame(
        {c.name: codes[:, i] for i, c in enumerate(columns)} | {COUNT: counts.reshape(-1)}
    )
    for column in columns:
        frame = frame[frame[column.name] < column.size]
        labels = [*column.labels, MISSING_KEY]
        frame[column.name] = [labels[int(code)] for code in frame[column.name]]
    frame["stddev"] = stddev
    return frame.reset_index(drop=True)


# ---------------------------------------------------------------------- planning
def _dictionary_entries(dictionary: Sequence[Mapping[str, Any]] | None) -> dict[str, Mapping]:
    return {str(e["name"]): e for e in (dictionary or []) if "name" in e}


def _bounds(name: str, entry: Mapping[str, Any], policies: PolicySet) -> tuple[float, float]:
    if name in policies.privacy_budget.value_bounds:
        return policies.privacy_budget.value_bounds[name]
    low, high = entry.get("min"), entry.get("max")
    if isinstance(low, int | float) and isinstance(high, int | float) and low < high:
        return float(low), float(high)
    raise DPReplicaError(
        f"no public bounds for the numeric column {name!r}: add it to the privacy-budget policy's "
        "value_bounds, or give min and max in the data dictionary (chosen without looking at "
        "the data); nothing was spent"
    )


def replica_columns(
    columns: Sequence[str],
    table_columns: Sequence[str],
    *,
    person_key: str,
    policies: PolicySet,
    dictionary: Sequence[Mapping[str, Any]] | None,
    bins: int = DEFAULT_BINS,
) -> tuple[ReplicaColumn, ...]:
    """Each requested column with its public categories, or ``DPReplicaError`` saying why not."""
    if isinstance(columns, str) or not columns:
        raise DPReplicaError("name the columns to synthesise as a list, e.g. ['sex', 'court']")
    if len(set(columns)) != len(columns):
        raise DPReplicaError(f"columns are repeated: {list(columns)}")
    if not isinstance(bins, int) or bins < 1:
        raise DPReplicaError(f"bins must be a positive whole number, not {bins!r}")
    missing = [c for c in columns if c not in table_columns]
    if missing:
        raise DPReplicaError(
            f"columns not in the table: {missing}; it has {list(map(str, table_columns))}"
        )
    if person_key not in table_columns:
        raise DPReplicaError(
            f"the table has no person key column {person_key!r}: the privacy unit is the person"
        )
    if person_key in columns:
        raise DPReplicaError(
            f"{person_key!r} is the privacy unit's identifier and cannot be synthesised; the "
            "replica's rows carry no person key"
        )
    entries = _dictionary_entries(dictionary)
    out = []
    for name in columns:
        entry = entries.get(name)
        if entry is None:
            raise DPReplicaError(
                f"{name!r} is not in the data dictionary: its categories or bounds must be public"
            )
        kind = entry.get("type")
        if entry.get("values"):
            labels = tuple(dict.fromkeys(key_text(v) for v in entry["values"]))
            out.append(ReplicaColumn(name, "flag" if kind == "flag" else "category", labels))
        elif kind in NUMERIC_TYPES:
            low, high = _bounds(name, entry, policies)
            edges = tuple(float(e) for e in np.linspace(low, high, bins + 1))
            labels = tuple(
                f"[{a:g}, {b:g}{']' if i == bins - 1 else ')'}"
                for i, (a, b) in enumerate(zip(edges, edges[1:], strict=False))
            )
            out.append(ReplicaColumn(name, kind, labels, edges))
        else:
            raise DPReplicaError(
                f"{name!r} ({kind or 'no type'}) has no public values in the data dictionary and "
                "is not numeric: list its values in the dictionary, or leave it out"
            )
    sizes = sorted((c.size + 1 for c in out), reverse=True)
    largest = sizes[0] * (sizes[1] if len(sizes) > 1 else 1)
    if largest > MAX_CELLS:
        raise DPReplicaError(
            f"a two-way marginal could have {largest:,} cells, more than {MAX_CELLS:,}: use fewer "
            "bins or coarser categories (for offences, an ICCS level rather than the code)"
        )
    return tuple(out)


def _encoded(column: ReplicaColumn) -> pl.Expr:
    """The column as the code of its public category; missing and unlisted values as
    ``(missing)``. Each row alone decides its code, so privacy is unaffected."""
    if column.edges:
        low, high = column.edges[0], column.edges[-1]
        width = (high - low) / len(column.labels)
        value = pl.col(column.name).cast(pl.Float64, strict=False).fill_nan(None)
        code = ((value.clip(low, high) - low) / width).floor().clip(0, len(column.labels) - 1)
        return code.fill_null(column.missing_code).cast(pl.UInt32).alias(column.name)
    return (
        pl.col(column.name)
        .cast(pl.String)
        .replace_strict(
            list(column.labels),
            list(range(len(column.labels))),
            default=column.missing_code,
            return_dtype=pl.UInt32,
        )
        .alias(column.name)
    )


def plan_dp_replica(
    table: pd.DataFrame | pl.DataFrame,
    *,
    columns: Sequence[str],
    person_key: str = "person_key",
    rho: float,
    policies: PolicySet,
    dictionary: Sequence[Mapping[str, Any]] | None,
    bins: int = DEFAULT_BINS,
    algorithm: str = "mst",
) -> DPReplicaPlan:
    """Prepare a DP replica of ``columns`` of ``table`` at a spend of ``rho``; spends nothing.

    Raises ``DPReplicaError`` for columns that are not in the table or not public in the
    dictionary, numeric columns without public bounds, a non-positive rho or one above the
    policy's per-query limit.

    >>> # plan = plan_dp_replica(journeys, columns=["sex", "court", "sentence_months"],
    >>> #                        rho=0.05, policies=policies, dictionary=dictionary)
    >>> # print(plan.describe())   # the cost and each marginal's error; nothing spent
    """
    if isinstance(table, pd.DataFrame):
        names = list(map(str, table.columns))
    elif isinstance(table, pl.DataFrame):
        names = table.columns
    else:
        raise DPReplicaError(f"table must be a pandas or polars data frame, not {type(table)}")
    if not isinstance(rho, int | float) or not math.isfinite(rho) or rho <= 0:
        raise DPReplicaError(f"a DP replica must spend a positive, finite rho, not {rho!r}")
    if rho > policies.privacy_budget.max_rho_per_query:
        raise DPReplicaError(
            f"one spend may be at most rho {policies.privacy_budget.max_rho_per_query:g} "
            f"(policy max_rho_per_query); asked for {rho:g}"
        )
    spec = replica_columns(
        columns, names, person_key=person_key, policies=policies, dictionary=dictionary, bins=bins
    )
    selected = [person_key, *(c.name for c in spec)]
    frame = table[selected] if isinstance(table, pd.DataFrame) else table.select(selected)
    frame = pl.from_pandas(frame) if isinstance(frame, pd.DataFrame) else frame
    # Only fixed-width columns cross into OpenDP: the person key as a 64-bit hash, each column
    # as its category code.
    prepared = (
        frame.lazy()
        .filter(pl.col(person_key).is_not_null())
        .select(
            pl.col(person_key).cast(pl.String).hash(IDENTIFIER_HASH_SEED),
            *(_encoded(c) for c in spec),
        )
        .collect()
        .lazy()
    )
    return DPReplicaPlan(
        prepared, spec, person_key=person_key, rho=rho, policies=policies, algorithm=algorithm
    )


# ---------------------------------------------------------------------- sampling
def _codes(drawn: pl.Series, column: ReplicaColumn) -> np.ndarray:
    """Sampled codes as integers; OpenDP's extra null category is ``(missing)``."""
    return drawn.fill_null(column.missing_code).clip(0, column.missing_code).to_numpy().astype(int)


def _decoded(column: ReplicaColumn, codes: np.ndarray, rng: np.random.Generator) -> pd.Series:
    """Codes back to values: categories as their labels, bins as values drawn within the bin."""
    missing = codes == column.missing_code
    if column.edges:
        edges = np.asarray(column.edges)
        safe = np.where(missing, 0, codes)
        low, high = edges[safe], edges[safe + 1]
        if column.kind == "integer":
            # Whole numbers in [low, high), the last bin closed: never a value past the bounds.
            upper = np.where(safe == len(column.labels) - 1, np.floor(high) + 1, np.ceil(high))
            lower = np.ceil(low)
            values = np.floor(rng.uniform(lower, np.maximum(upper, lower + 1)))
            values = np.clip(values, edges[0], edges[-1])
            series = pd.Series(values, dtype="Float64").astype("Int64")
        else:
            series = pd.Series(rng.uniform(low, high), dtype="Float64")
        series[missing] = pd.NA
        return series
    labels = np.asarray(column.labels + ("",), dtype=object)
    values = pd.Series(labels[codes], dtype="string")
    values[missing] = pd.NA
    if column.kind == "flag":
        return values.map({"true": True, "false": False}, na_action="ignore").astype("boolean")
    return values


def synthesize_dp(
    plan: DPReplicaPlan, spend: ConfirmedSpend, rows: int, seed: int | None
) -> pd.DataFrame:
    """Draw the plan's noisy marginals against ``spend`` and sample ``rows`` synthetic rows.

    Only once per plan, and only with a spend the ledger confirmed (``srs.governance.budget.confirm_spend``)
    that covers the plan's rho and delta (``DPReplicaRefused`` otherwise). ``seed`` fixes the
    sampling from the released marginals, never OpenDP's noise, which is drawn fresh from a
    secure source every time.
    The frame's ``attrs`` name the spend and the cost.
    """
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise DPReplicaError(f"rows must be a positive whole number, not {rows!r}")
    table = plan._release(spend)
    rng = np.random.default_rng(seed)
    # Private-PGM samples with numpy's global generator: seed it for this draw only.
    state = np.random.get_state()
    try:
        np.random.seed(rng.integers(2**32 - 1))
        drawn = table.synthesize(rows, method="sample")
    finally:
        np.random.set_state(state)
    data = pd.DataFrame({c.name: _decoded(c, _codes(drawn[c.name], c), rng) for c in plan.columns})
    data.attrs.update(
        synthetic=True,
        differentially_private=True,
        algorithm=plan.algorithm,
        rho=plan.rho,
        delta=plan.delta,
        spend_id=spend.spend_id,
        marginals=[list(m) for m in plan.released],
    )
    return data


# ---------------------------------------------------------------------- the ledger's edge
@dataclass(frozen=True)
class DPReplica:
    """A DP synthetic replica, the spend that paid for it, the plan's statement of cost and the
    noisy marginals it was sampled from (DP releases themselves, safe to show)."""

    data: pd.DataFrame
    receipt: SpendReceipt
    description: str
    marginals: dict[tuple[str, ...], pd.DataFrame]


def dp_replica(
    session: Session,
    *,
    project_code: str,
    researcher: str,
    table: pd.DataFrame | pl.DataFrame,
    columns: Sequence[str],
    rho: float,
    policies: PolicySet,
    dictionary: Sequence[Mapping[str, Any]] | None,
    rows: int,
    seed: int | None = None,
    person_key: str = "person_key",
    dataset: str | None = None,
    bins: int = DEFAULT_BINS,
    algorithm: str = "mst",
) -> DPReplica:
    """Plan a DP replica, pay for it from ``project_code``'s budget, then synthesise it.

    Bad columns or rows fail before anything is spent (``DPReplicaError``); a budget that cannot
    cover ``rho`` raises ``BudgetExhausted`` with nothing spent and no data. The debit commits
    before any noise is drawn: a crash after it loses budget, never privacy.
    """
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise DPReplicaError(f"rows must be a positive whole number, not {rows!r}")
    plan = plan_dp_replica(
        table,
        columns=columns,
        person_key=person_key,
        rho=rho,
        policies=policies,
        dictionary=dictionary,
        bins=bins,
        algorithm=algorithm,
    )
    what = dataset or ", ".join(c.name for c in plan.columns)
    receipt = debit(
        session,
        project_code=project_code,
        researcher=researcher,
        rho=plan.rho,
        delta=plan.delta,
        purpose=f"DP synthetic replica of {what}",
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
    data = synthesize_dp(plan, confirmed, rows, seed)
    return DPReplica(
        data=data, receipt=receipt, description=plan.describe(), marginals=dict(plan.released)
    )

"""Differentially private synthetic replicas: noisy two-way marginals released with OpenDP at a
person-level unit, paid for from the project's budget ledger, then sampled into new rows.

``plan_dp_replica`` checks the columns and states the cost (nothing is spent); the caller debits
the project's budget (``srs.budget.debit``); ``synthesize_dp`` then draws the noise, once, and
only against that committed spend; ``dp_replica`` does all three in that order. The DP guarantee
covers the released marginals, and so every row sampled from them (post-processing).

How it is built, and why not on OpenDP's own synthesiser: OpenDP 0.16's marginal-based
synthesisers (``Query.contingency_table(...)``, ``dp.mbi.MST``/``AIM``,
``ContingencyTable.synthesize()``) need the optional ``mbi`` package (Private-PGM, on JAX),
which this environment does not install. So this module uses what OpenDP ships in its core
Context/Polars API, the same way ``disclosure.dp`` does: per-person row caps
(``truncate_per_group``), a person-level privacy unit, public keys joined with ``with_keys`` and
integer Gaussian noise under zCDP, with the noise scale solved in closed form. The marginals are
those of MST's tree without MST's private selection step: a chain over the columns in the order
given (a public choice, so it costs nothing), each pair's two-way counts released with an equal
share of rho. Rows are sampled along the chain (the first column from its pair's margin, each
next column given the one before), which is exact for data whose columns depend only on their
neighbours and an approximation otherwise: order the columns so related ones sit side by side.

Every column's categories are public: a categorical column needs its values listed in the data
dictionary (``values``), a numeric one public bounds (policy ``value_bounds``, else the
dictionary's ``min``/``max``) cut into equal bins. No key is learnt from the data, so no delta is
spent and no real category, minimum or maximum can leak. Missing values, and values the
dictionary does not list, are one more public category, ``(missing)``, and come out as missing.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import opendp.prelude as dp
import pandas as pd
import polars as pl
from sqlalchemy.orm import Session

from disclosure.dp import DPQueryError, DPReleaseRefused, Spend, on_nano_grid
from disclosure.dp.engine import IDENTIFIER_HASH_SEED, MAX_CELLS, require_spend
from disclosure.dp.queries import MISSING_KEY, key_text
from srs.budget import SpendReceipt, debit
from srs.policy import PolicySet
from synthetic.errors import SyntheticError

dp.enable_features("contrib")

DEFAULT_BINS = 10
COUNT = "count"
# Each marginal is calibrated to this fraction of its share of rho, so that the float sum of the
# shares can never exceed the whole (OpenDP issue 2789); the loss of accuracy is nil.
SHARE_SLACK = 1 - 1e-9
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


@dataclass(frozen=True)
class MarginalNoise:
    """The noise on one released marginal: integer Gaussian with this scale on every cell."""

    columns: tuple[str, ...]
    cells: int
    rho: float
    scale: float

    def half_width(self, confidence: float) -> float:
        """A cell count's error half-width at ``confidence`` (Gaussian approximation)."""
        return self.scale * NormalDist().inv_cdf((1 + confidence) / 2)


class DPReplicaPlan:
    """A DP replica prepared on one table at one privacy loss: read its cost, then synthesise
    from it exactly once against a committed spend (``synthesize_dp``)."""

    def __init__(
        self,
        frame: pl.LazyFrame,
        columns: tuple[ReplicaColumn, ...],
        *,
        person_key: str,
        rho: float,
        policies: PolicySet,
    ) -> None:
        self.columns = columns
        self.person_key = person_key
        self.rho = on_nano_grid(rho)
        self.delta = 0.0  # every key is public: nothing is learnt about which categories exist
        self.budget = policies.privacy_budget
        self.marginals = chain_marginals([c.name for c in columns])
        self._frame = frame
        with warnings.catch_warnings():
            # OpenDP warns when rho exceeds its usual range; the site's policy sets the range.
            warnings.simplefilter("ignore")
            self._context = self._build_context()
            # Each marginal's equal share of rho (OpenDP's context pops it as each is released).
            self.marginal_rho: float = self._context.d_mids[0]
            self._measurements = [self._measurement(m) for m in self.marginals]
        self._released = False
        self.released: dict[tuple[str, ...], pd.DataFrame] = {}

    # ------------------------------------------------------------------ preparation
    def _build_context(self) -> dp.Context:
        return dp.Context.compositor(
            data=self._frame,
            privacy_unit=dp.unit_of(contributions=1, identifier=pl.col(self.person_key)),
            privacy_loss=dp.loss_of(rho=self.rho),
            split_evenly_over=len(self.marginals),
            # Only a public bound on the table's length: no invariant keys or lengths.
            margins=[dp.polars.Margin(by=[], max_length=self.budget.max_dataset_rows)],
        )

    def _column(self, name: str) -> ReplicaColumn:
        return next(c for c in self.columns if c.name == name)

    def _key_frame(self, names: tuple[str, ...]) -> pl.LazyFrame:
        ranges = [range(self._column(n).size) for n in names]
        rows = list(itertools.product(*ranges))
        return pl.LazyFrame(
            {n: [row[i] for row in rows] for i, n in enumerate(names)},
            schema={n: pl.UInt32 for n in names},
        )

    def _measurement(self, names: tuple[str, ...]):
        """The marginal's measurement at the smallest noise scale within its share of rho.

        Integer Gaussian noise loses rho in proportion to 1 / scale^2, so the loss at scale 1
        gives the scale in closed form; OpenDP's own check confirms it (as in disclosure.dp).
        """
        query = (
            self._context.query()
            .truncate_per_group(self.budget.max_rows_per_person)
            .group_by(*names)
            .agg(dp.len(signed=True).alias(COUNT))
            .with_keys(self._key_frame(names))
        )
        plan = object.__getattribute__(query, "polars_plan")
        accountant = self._context.accountant
        share = self.marginal_rho * SHARE_SLACK

        def at(scale: float):
            return dp.m.make_private_lazyframe(
                input_domain=accountant.input_domain,
                input_metric=accountant.input_metric,
                output_measure=accountant.output_measure,
                lazyframe=plan,
                global_scale=scale,
            )

        d_in = self._context.d_in
        scale = math.sqrt(at(1.0).map(d_in) / share)
        for _ in range(50):
            measurement = at(scale)
            if measurement.check(d_in, share):
                return measurement, scale
            scale *= 1 + 1e-9
        raise DPReplicaError(f"OpenDP could not calibrate the noise for the marginal {names}")

    # ------------------------------------------------------------------ the cost
    @property
    def epsilon(self) -> float:
        """The plan's rho as epsilon at the policy's delta."""
        return self.budget.epsilon_at(self.rho)

    def noise(self) -> list[MarginalNoise]:
        """The noise on each marginal this plan would release."""
        return [
            MarginalNoise(
                columns=names,
                cells=math.prod(self._column(n).size for n in names),
                rho=self.marginal_rho,
                scale=scale,
            )
            for names, (_, scale) in zip(self.marginals, self._measurements, strict=True)
        ]

    def describe(self) -> str:
        """What synthesising would release and what it costs, in words a researcher can check."""
        confidence = self.budget.confidence_level
        parts = ", ".join(
            f"{' x '.join(n.columns)} ({n.cells} cells, +/- {n.half_width(confidence):.3g})"
            for n in self.noise()
        )
        return (
            f"DP synthetic replica of {', '.join(c.name for c in self.columns)}: costs rho "
            f"{self.rho:g} (epsilon {self.epsilon:.3g} at delta {self.budget.delta:g}), person-level "
            f"with at most {self.budget.max_rows_per_person} rows per person; releases the "
            f"marginals {parts} (cell count error at {confidence:.0%})"
        )

    # ------------------------------------------------------------------ release
    def _release(self, spend: Spend) -> list[np.ndarray]:
        """Draw the noise: only once, only against a spend covering this plan."""
        if self._released:
            raise DPReplicaRefused(
                "this replica plan was already synthesised; plan (and pay for) a new one"
            )
        require_spend(spend, self.rho, self.delta, DPReplicaRefused)
        self._released = True
        tables = []
        for names, (measurement, _) in zip(self.marginals, self._measurements, strict=True):
            counts = self._context(measurement).collect()
            shape = tuple(self._column(n).size for n in names)
            table = np.zeros(shape, dtype=float)
            index = tuple(counts[n].to_numpy().astype(int) for n in names)
            table[index] = counts[COUNT].to_numpy().astype(float)
            tables.append(table)
            self.released[names] = _labelled(counts, [self._column(n) for n in names])
        return tables


def chain_marginals(names: Sequence[str]) -> list[tuple[str, ...]]:
    """The marginals a replica releases: each column with the next (one column: itself alone).

    >>> chain_marginals(["sex", "court", "sentence_type"])
    [('sex', 'court'), ('court', 'sentence_type')]
    """
    if len(names) == 1:
        return [(names[0],)]
    return [(a, b) for a, b in zip(names, names[1:], strict=False)]


def _labelled(counts: pl.DataFrame, columns: list[ReplicaColumn]) -> pd.DataFrame:
    """A released marginal with its category labels instead of codes, in key order."""
    frame = counts.sort([c.name for c in columns]).to_pandas()
    for column in columns:
        labels = [*column.labels, MISSING_KEY]
        frame[column.name] = [labels[int(code)] for code in frame[column.name]]
    return frame


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
    cells = [
        math.prod(next(c for c in out if c.name == n).size for n in m)
        for m in chain_marginals([c.name for c in out])
    ]
    if max(cells) > MAX_CELLS:
        raise DPReplicaError(
            f"a marginal would have {max(cells):,} cells, more than {MAX_CELLS:,}: use fewer bins "
            "or coarser categories (for offences, an ICCS level rather than the code)"
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
    return DPReplicaPlan(prepared, spec, person_key=person_key, rho=rho, policies=policies)


# ---------------------------------------------------------------------- sampling
def _distribution(weights: np.ndarray) -> np.ndarray:
    """Noisy counts as probabilities: negatives are zero; all-zero becomes uniform."""
    weights = np.clip(weights, 0, None)
    total = weights.sum()
    return weights / total if total > 0 else np.full(len(weights), 1 / len(weights))


def _sample_codes(tables: list[np.ndarray], rows: int, rng: np.random.Generator) -> np.ndarray:
    """Category codes for ``rows`` rows, sampled along the chain of released marginals."""
    first = tables[0]
    start = first if first.ndim == 1 else first.sum(axis=1)
    codes = [rng.choice(len(start), size=rows, p=_distribution(start))]
    for table in tables if first.ndim == 2 else []:
        fallback = _distribution(table.sum(axis=0))
        parent, child = codes[-1], np.empty(rows, dtype=int)
        for value in np.unique(parent):
            where = np.flatnonzero(parent == value)
            weights = np.clip(table[value], 0, None)
            p = _distribution(weights) if weights.sum() > 0 else fallback
            child[where] = rng.choice(len(p), size=len(where), p=p)
        codes.append(child)
    return np.column_stack(codes)


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


def synthesize_dp(plan: DPReplicaPlan, spend: Spend, rows: int, seed: int | None) -> pd.DataFrame:
    """Draw the plan's noisy marginals against ``spend`` and sample ``rows`` synthetic rows.

    Only once per plan, and only with a spend committed to the ledger that covers the plan's rho
    and delta (``DPReplicaRefused`` otherwise). ``seed`` fixes the sampling from the released
    marginals, never OpenDP's noise, which is drawn fresh from a secure source every time.
    The frame's ``attrs`` name the spend and the cost.
    """
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise DPReplicaError(f"rows must be a positive whole number, not {rows!r}")
    tables = plan._release(spend)
    rng = np.random.default_rng(seed)
    codes = _sample_codes(tables, rows, rng)
    data = pd.DataFrame({c.name: _decoded(c, codes[:, i], rng) for i, c in enumerate(plan.columns)})
    data.attrs.update(
        synthetic=True,
        differentially_private=True,
        rho=plan.rho,
        delta=plan.delta,
        spend_id=spend.spend_id,
        marginals=[list(m) for m in plan.marginals],
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
    data = synthesize_dp(plan, receipt, rows, seed)
    return DPReplica(
        data=data, receipt=receipt, description=plan.describe(), marginals=dict(plan.released)
    )

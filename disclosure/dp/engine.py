"""Differentially private statistics on OpenDP's Context/Polars API, with person-level privacy.

``plan(query, data, policy, rho=...)`` prepares one query: the privacy unit is the person
(``dp.unit_of(contributions=1, identifier=person_key)``) and each person's rows are cut to a
random sample of ``policy.max_rows_per_person`` before any statistic, since one person has many
cases. Both come from the policy alone (the unit's column by dataset,
``policy.privacy_unit_of``), never from the query, so no query can make a row its own "person". A plan can be previewed (expected error per statistic, without spending), and released
exactly once, and only against a spend the ledger confirmed (``disclosure.dp.spend``, issued by
``srs.governance.budget.confirm_spend`` after ``srs.governance.budget.debit``): nothing releases without accounting.

Guards against known OpenDP pitfalls, each with a regression test:
- no margin is declared with ``invariant="keys"`` (OpenDP issue 2945: grouped sums under such a
  margin under-count sensitivity); public keys are joined with ``with_keys`` instead;
- values are clipped, scaled to ``decimals`` and summed as exact integers, so no float domain
  can hold NaN and no float rounding slack inflates the noise;
- rows whose value is missing are left out of a statistic of that column, never imputed to the
  bounds' midpoint as OpenDP would;
- each plan spends its whole loss in one query, so float composition cannot refuse a spend that
  exactly meets the remainder (OpenDP issue 2789); the ledger counts exact nano-rho.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from typing import Any

import numpy as np
import opendp.prelude as dp
import pandas as pd
import polars as pl

from disclosure.dp.queries import MISSING_KEY, DPQuery, DPQueryError, rebuilt, refuse_the_unit
from disclosure.dp.results import DPPreview, DPResult, NoiseLine
from disclosure.dp.spend import NANO, ConfirmedSpend, DPReleaseRefused, is_positive_real, redeem
from disclosure.policy import PrivacyBudgetPolicy

dp.enable_features("contrib")

VALUE = "__value"
CENTRED = "__centred"
SQUARED = "__squared"
MAX_CELLS = 100_000
IDENTIFIER_HASH_SEED = 20261122
I64_MAX = 2**63 - 1
# Far above any policy's per-query ceiling (the ledger refuses by that first); keeps a plan's
# arithmetic finite whatever it is handed.
MAX_RHO = 1e6


def on_nano_grid(rho: float) -> float:
    """``rho`` rounded up to whole nano-rho, the ledger's unit, so plan and spend agree exactly."""
    if not is_positive_real(rho) or rho > MAX_RHO:
        raise DPQueryError(
            f"a DP query must spend a positive, finite rho given as a number (e.g. rho=0.01), "
            f"at most {MAX_RHO:g}, not {_shown(rho)}"
        )
    return math.ceil(round(float(rho) * NANO, 3)) / NANO


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _to_polars(data: Any, columns: list[str]) -> pl.LazyFrame:
    if isinstance(data, pd.DataFrame):
        missing = [c for c in columns if c not in data.columns]
        if missing:
            raise DPQueryError(
                f"columns not in the data: {missing}; it has {list(map(str, data.columns))}"
            )
        frame = data[columns]
        # Nullable pandas dtypes and objects convert cleanly through Arrow.
        return pl.from_pandas(frame).lazy()
    if isinstance(data, pl.DataFrame):
        data = data.lazy()
    if not isinstance(data, pl.LazyFrame):
        raise DPQueryError(f"data must be a pandas or polars data frame, not {type(data).__name__}")
    names = data.collect_schema().names()
    missing = [c for c in columns if c not in names]
    if missing:
        raise DPQueryError(f"columns not in the data: {missing}; it has {names}")
    return data.select(columns)


class DPPlan:
    """One DP query prepared on one table at one privacy loss; preview it, release it once.

    The privacy unit is the column the policy names for ``dataset`` (``person_key`` unless
    ``privacy_units`` says otherwise) and each unit's rows are capped at the policy's
    ``max_rows_per_person``; the query is rebuilt from its fields, so nothing it carries can
    change either.
    """

    def __init__(
        self,
        query: DPQuery,
        data: Any,
        policy: PrivacyBudgetPolicy,
        rho: float,
        *,
        allowance: float | None = None,
        dataset: str | None = None,
    ) -> None:
        query = rebuilt(query)
        self.unit = policy.privacy_unit_of(dataset)
        refuse_the_unit(query, self.unit)
        self.query = query
        self.policy = policy
        self.rho = on_nano_grid(rho)
        # The most this plan's OpenDP context may ever spend (>= rho); see ``retarget``.
        self.allowance = on_nano_grid(max(allowance or self.rho, self.rho))
        self.delta = 0.0 if query.public_keys else policy.key_release_delta
        self.confidence = policy.confidence_level
        self.factor = 10**query.decimals
        self._bounds = (
            query.bounds_under(policy)
            if query.statistic in ("sum", "mean", "variance", "quantile")
            else None
        )
        self._labels = self._public_labels()
        # Collected here, in-process, so that only the prepared fixed-width columns move into
        # OpenDP (a lazy plan would carry the original frame, strings and all, across).
        self._frame = self._prepare(data).collect().lazy()
        self._candidates = self._quantile_candidates()
        self._keys = self._key_frame()
        self._context, self._query_plan = self._build()
        self._measurement = None
        self._released = False

    # ------------------------------------------------------------------ preparation
    def _scaled_bounds(self) -> tuple[int, int]:
        low, high = self._bounds
        return math.floor(low * self.factor), math.ceil(high * self.factor)

    def _centred_bounds(self) -> tuple[int, int, int]:
        """The centre a variance's values are shifted by, and their real range once shifted
        (asymmetric by one unit when the bounds' width is odd)."""
        low, high = self._scaled_bounds()
        centre = (low + high) // 2
        return centre, low - centre, high - centre

    def _prepare(self, data: Any) -> pl.LazyFrame:
        """Row-by-row preparation (each row alone decides its fate, so privacy is unaffected)."""
        q, unit = self.query, self.unit
        columns = [unit, *q.by] + ([q.column] if q.column else [])
        frame = _to_polars(data, list(dict.fromkeys(columns)))
        # Only fixed-width columns cross into OpenDP (moving a million strings costs it ~0.5 s):
        # the person key as a 64-bit hash (a collision could only merge two persons' caps), and
        # grouping columns with public keys as the index of their value in the key list.
        frame = frame.filter(pl.col(unit).is_not_null()).with_columns(
            pl.col(unit).cast(pl.String).hash(IDENTIFIER_HASH_SEED)
        )
        frame = frame.with_columns([self._encoded(pl.col(c), c) for c in q.by])
        if q.column is None:
            return frame.select(unit, *q.by)
        value = pl.col(q.column).cast(pl.Float64, strict=False).fill_nan(None)
        frame = frame.with_columns(value.alias(VALUE)).filter(pl.col(VALUE).is_not_null())
        if q.statistic == "histogram":
            labels = list(q.histogram_labels())
            binned = pl.col(VALUE).cut(list(q.edges), labels=labels, left_closed=True)
            binned = self._encoded(binned, q.histogram_column)
            return frame.select(unit, *q.by, binned.alias(q.histogram_column))
        low, high = self._scaled_bounds()
        scaled = (pl.col(VALUE) * self.factor).round(0).clip(low, high).cast(pl.Int64)
        frame = frame.select(unit, *q.by, scaled.alias(VALUE))
        if q.statistic == "variance":
            centre, _, _ = self._centred_bounds()
            frame = frame.with_columns((pl.col(VALUE) - centre).alias(CENTRED)).with_columns(
                (pl.col(CENTRED) * pl.col(CENTRED)).alias(SQUARED)
            )
        return frame

    def _public_labels(self) -> dict[str, list[str]]:
        """Each grouping column's public values, in release order (none when keys are private)."""
        q = self.query
        if not q.public_keys:
            return {}
        labels = {c: list(q.keys[c]) for c in q.by}
        if q.statistic == "histogram":
            labels[q.histogram_column] = list(q.histogram_labels())
        return labels

    def _encoded(self, column: pl.Expr, name: str) -> pl.Expr:
        text = column.cast(pl.String).fill_null(MISSING_KEY)
        if name not in self._labels:
            return text.alias(name)
        labels = self._labels[name]
        # Values outside the public keys become null: no key matches them, so none is released.
        return text.replace_strict(
            labels, list(range(len(labels))), default=None, return_dtype=pl.UInt32
        ).alias(name)

    def _quantile_candidates(self) -> list[int] | None:
        q = self.query
        if q.statistic != "quantile":
            return None
        low, high = self._scaled_bounds()
        if q.candidates is not None:
            raw = [round(c * self.factor) for c in q.candidates]
            outside = [c for c in q.candidates if not self._bounds[0] <= c <= self._bounds[1]]
            if outside:
                raise DPQueryError(
                    f"quantile candidates outside the bounds {self._bounds}: {outside[:5]}"
                )
        else:
            raw = np.linspace(low, high, self.policy.quantile_candidates).round().astype(int)
        candidates = sorted(set(int(c) for c in raw))
        if len(candidates) < 2:
            raise DPQueryError("quantile candidates collapse to one value at this precision")
        return candidates

    def _key_frame(self) -> pl.LazyFrame | None:
        q = self.query
        if not q.groups or not q.public_keys:
            return None
        values = [range(len(self._labels[c])) for c in q.groups]
        cells = math.prod(len(v) for v in values)
        if cells > MAX_CELLS:
            raise DPQueryError(
                f"{cells:,} cells is more than {MAX_CELLS:,}: group by fewer or coarser keys"
            )
        rows = list(itertools.product(*values))
        return pl.LazyFrame(
            {c: [row[i] for row in rows] for i, c in enumerate(q.groups)},
            schema={c: pl.UInt32 for c in q.groups},
        )

    def _aggregates(self) -> list[pl.Expr]:
        q = self.query
        count = dp.len(signed=True).alias("count")
        if q.statistic in ("count", "histogram", "crosstab"):
            return [count]
        # OpenDP thresholds private keys on a count, so a query without one gets one.
        thresholded = [count] if q.by and not q.public_keys else []
        low, high = self._scaled_bounds()
        if q.statistic == "quantile":
            return thresholded + [
                pl.col(VALUE).dp.quantile(p, self._candidates).alias(_quantile_name(i))
                for i, p in enumerate(q.quantiles)
            ]
        total = pl.col(VALUE).dp.sum((low, high)).alias("sum")
        if q.statistic == "sum":
            return [*thresholded, total]
        if q.statistic == "mean":
            return [count, total]
        _, c_low, c_high = self._centred_bounds()
        square_high = max(c_low**2, c_high**2)
        if square_high > I64_MAX // self.policy.max_dataset_rows:
            raise DPQueryError(
                f"sums of squares could overflow at {q.decimals} decimals with bounds {self._bounds}; "
                "use fewer decimals or narrower bounds"
            )
        return [
            count,
            pl.col(CENTRED).dp.sum((c_low, c_high)).alias("sum"),
            pl.col(SQUARED).dp.sum((0, square_high)).alias("sum_of_squares"),
        ]

    def _build(self):
        q, policy = self.query, self.policy
        rho = self.allowance
        loss = dp.loss_of(rho=rho, delta=self.delta) if self.delta else dp.loss_of(rho=rho)
        with warnings.catch_warnings():
            # OpenDP warns when rho exceeds its usual range; our policy sets the range.
            warnings.simplefilter("ignore")
            context = dp.Context.compositor(
                data=self._frame,
                privacy_unit=dp.unit_of(contributions=1, identifier=pl.col(self.unit)),
                privacy_loss=loss,
                split_evenly_over=1,
                # A public bound on the table's length and nothing else: no invariant keys or
                # lengths, so OpenDP protects both (see the module notes on issue 2945).
                margins=[dp.polars.Margin(by=[], max_length=policy.max_dataset_rows)],
            )
        query = context.query().truncate_per_group(policy.max_rows_per_person)
        aggregates = self._aggregates()
        if q.groups:
            query = query.group_by(*q.groups).agg(*aggregates)
            if self._keys is not None:
                query = query.with_keys(self._keys)
        else:
            query = query.select(*aggregates)
        return context, query

    def _measure_at(self, scale: float):
        accountant = self._context.accountant
        return dp.m.make_private_lazyframe(
            input_domain=accountant.input_domain,
            input_metric=accountant.input_metric,
            output_measure=accountant.output_measure,
            lazyframe=object.__getattribute__(self._query_plan, "polars_plan"),
            global_scale=scale,
        )

    def retarget(self, rho: float) -> None:
        """Spend ``rho`` instead (at most the allowance), before anything is released."""
        rho = on_nano_grid(rho)
        if self._released or rho > self.allowance or self.delta:
            raise DPReleaseRefused(
                "a plan can be retargeted only before release, within its allowance, and "
                "only when its keys are public"
            )
        self.rho, self._measurement = rho, None

    def accuracy_at(self, rho: float, statistic: str) -> float:
        """The error half-width of ``statistic`` were this plan to spend ``rho`` (no spending)."""
        measurement = self._solve_scale(on_nano_grid(rho))
        summary = dp.summarize_polars_measurement(measurement, self.alpha)
        row = summary.filter(pl.col("column") == statistic).row(0, named=True)
        return float(row["accuracy"])

    def _solve_scale(self, rho: float | None = None):
        """The measurement at the smallest noise scale whose loss is within this plan's rho.

        Under zCDP both the Gaussian mechanism and the Gumbel (exponential) mechanism lose
        rho proportional to 1 / scale^2, so one measurement at scale 1 gives the answer; OpenDP's
        own check then confirms it, nudging the scale up where rounding needs it. (OpenDP's
        generic resolve() bisects instead: hundreds of checks, seconds per query.)
        """
        rho = self.rho if rho is None else rho
        d_in = self._context.d_in
        unit_loss = self._measure_at(1.0).map(d_in)
        scale = math.sqrt(unit_loss / rho)
        for _ in range(50):
            measurement = self._measure_at(scale)
            if measurement.check(d_in, rho):
                return measurement
            scale *= 1 + 1e-9
        raise DPQueryError("OpenDP could not calibrate the noise for this query")

    def _resolved(self):
        if self._measurement is None:
            try:
                self._measurement = (
                    self._query_plan.resolve() if self.delta else self._solve_scale()
                )
            except dp.OpenDPException as exc:
                raise DPQueryError(f"OpenDP cannot build this query: {exc.message}") from exc
        return self._measurement

    # ------------------------------------------------------------------ accuracy
    @property
    def components(self) -> int:
        """How many noisy statistics combine into one released figure (shares the error rate)."""
        return {"mean": 2, "variance": 3}.get(self.query.statistic, 1)

    @property
    def alpha(self) -> float:
        """Error rate of each noisy part, so that a figure combining them holds at the
        policy's confidence (union bound)."""
        return (1 - self.confidence) / self.components

    def noise(self, alpha: float | None = None) -> list[NoiseLine]:
        """OpenDP's description of each noisy aggregate, with its accuracy at ``alpha``."""
        alpha = alpha if alpha is not None else self.alpha
        summary = dp.summarize_polars_measurement(self._resolved(), alpha)
        lines = []
        for row in summary.iter_rows(named=True):
            name = row["column"]
            accuracy = row.get("accuracy")
            if name.startswith("quantile_") and self._candidates is not None:
                # Report-noisy-min with Gumbel(scale) picks a candidate whose score exceeds the
                # best by t with probability at most |C| exp(-t / scale); a score is the distance
                # in ranks from the target rank times a factor that depends on the quantile.
                quantile = self.query.quantiles[int(name.removeprefix("quantile_"))]
                accuracy = (
                    row["scale"]
                    * math.log(len(self._candidates) / alpha)
                    / score_per_rank(quantile)
                )
            lines.append(
                NoiseLine(
                    statistic=name,
                    aggregate=row["aggregate"],
                    distribution=row["distribution"],
                    scale=float(row["scale"]),
                    accuracy=None if accuracy is None else float(accuracy),
                    threshold=row.get("threshold"),
                    alpha=alpha,
                )
            )
        return lines

    def preview(self) -> DPPreview:
        """The cost and the expected error of this query, without spending anything."""
        return DPPreview(
            query=self.query,
            rho=self.rho,
            delta=self.delta,
            epsilon=self.policy.epsilon_at(self.rho),
            policy_delta=self.policy.delta,
            confidence=self.confidence,
            rows_per_person=self.policy.max_rows_per_person,
            noise=self.noise(),
            privacy_unit=self.unit,
            value_scale=1 / self.factor,
        )

    # ------------------------------------------------------------------ release
    def release(self, spend: ConfirmedSpend) -> DPResult:
        """Draw the noise and return the result: only once, and only against a spend the ledger
        confirmed (``srs.governance.budget.confirm_spend``) that covers this plan's rho and delta; the
        confirmation is used up."""
        if self._released:
            raise DPReleaseRefused("this plan was already released; prepare a new one")
        spend_id = require_spend(spend, self.rho, self.delta, DPReleaseRefused)
        preview = self.preview()
        self._released = True
        released = self._context(self._resolved()).collect()
        table = _estimates(self, released.to_pandas(), {n.statistic: n for n in preview.noise})
        return DPResult(preview=preview, table=table, spend_id=spend_id)


def require_spend(spend: ConfirmedSpend, rho: float, delta: float, refusal: type[Exception]) -> int:
    """Use up ``spend`` and return its id, or raise ``refusal`` unless it is a confirmation the
    ledger issued and no release has used, covering ``rho`` and ``delta`` (in whole nano-rho,
    as the ledger counts). An object that merely looks like a spend is refused."""
    return redeem(spend, rho, delta, refusal)


@functools.cache
def score_per_rank(quantile: float) -> float:
    """OpenDP's quantile score per row of rank distance (2 for the median, 4 for quartiles...).

    Read off OpenDP's own score on a known vector: candidate 100 over 0..99 has every row below
    it, so its rank distance is (1 - quantile) * 100.
    """
    score = dp.t.make_quantile_score_candidates(
        dp.vector_domain(dp.atom_domain(T=int)), dp.symmetric_distance(), [0, 100], quantile
    )(list(range(100)))[1]
    return score / ((1 - quantile) * 100)


def _quantile_name(index: int) -> str:
    return f"quantile_{index}"


def _estimates(plan: DPPlan, raw: pd.DataFrame, noise: dict[str, NoiseLine]) -> pd.DataFrame:
    """Released figures with their error bounds, in the column's units."""
    q, f = plan.query, plan.factor
    groups = list(q.groups)
    out = raw[groups].copy() if groups else pd.DataFrame(index=raw.index)

    def interval(name: str, scale: float = 1.0) -> tuple[pd.Series, pd.Series, pd.Series]:
        estimate = raw[name].astype(float)
        width = noise[name].accuracy
        return estimate / scale, (estimate - width) / scale, (estimate + width) / scale

    if q.statistic in ("count", "histogram", "crosstab"):
        out["estimate"], out["lower"], out["upper"] = interval("count")
    elif q.statistic == "sum":
        out["estimate"], out["lower"], out["upper"] = interval("sum", f)
    elif q.statistic == "mean":
        out["estimate"], out["lower"], out["upper"] = _mean_interval(plan, raw, noise)
    elif q.statistic == "variance":
        out["estimate"], out["lower"], out["upper"] = _variance_interval(plan, raw, noise)
    else:
        frames = []
        for i, p in enumerate(q.quantiles):
            name = _quantile_name(i)
            part = out.copy()
            part["quantile"] = p
            part["estimate"] = raw[name].astype(float) / f
            part["rank_error"] = noise[name].accuracy
            frames.append(part)
        out = pd.concat(frames, ignore_index=True)
    if (
        not q.public_keys
        and q.by
        and "count" in raw
        and q.statistic not in ("count", "crosstab", "histogram")
    ):
        out["count"] = raw["count"].astype(float)
    if groups:
        # Public keys come back as indexes: sorting on them keeps the keys' own order (bins in
        # numeric order), then they are turned back into their labels.
        out = out.sort_values(groups, kind="stable").reset_index(drop=True)
        for column, labels in plan._labels.items():
            out[column] = [labels[int(code)] for code in out[column]]
    return out


def _mean_interval(plan: DPPlan, raw: pd.DataFrame, noise: dict[str, NoiseLine]):
    low, high = plan._scaled_bounds()
    n, s = raw["count"].astype(float), raw["sum"].astype(float)
    a_n, a_s = noise["count"].accuracy, noise["sum"].accuracy
    estimate = (s / n.where(n > 0)).clip(low, high)
    lower, upper = _ratio_box(s - a_s, s + a_s, n - a_n, n + a_n, low, high)
    return estimate / plan.factor, lower / plan.factor, upper / plan.factor


def _ratio_box(s_low, s_high, n_low, n_high, low, high):
    """Range of s / n over the box, where n > 0; the whole [low, high] where n may be 0."""
    corners = [s_low / n_low, s_low / n_high, s_high / n_low, s_high / n_high]
    stacked = pd.concat(corners, axis=1)
    valid = n_low > 0
    lower = stacked.min(axis=1).where(valid, low).clip(low, high)
    upper = stacked.max(axis=1).where(valid, high).clip(low, high)
    return lower, upper


def _variance_interval(plan: DPPlan, raw: pd.DataFrame, noise: dict[str, NoiseLine]):
    low, high = plan._scaled_bounds()
    ceiling = ((high - low) / 2) ** 2  # the largest variance of values within the bounds
    # The interval arithmetic must use the centred values' real range exactly.
    _, c_low, c_high = plan._centred_bounds()
    n = raw["count"].astype(float)
    s1, s2 = raw["sum"].astype(float), raw["sum_of_squares"].astype(float)
    a_n, a1, a2 = (noise[k].accuracy for k in ("count", "sum", "sum_of_squares"))
    usable = n.where(n > 0)
    estimate = (s2 / usable - (s1 / usable) ** 2).clip(0, ceiling)
    m1_low, m1_high = _ratio_box(s1 - a1, s1 + a1, n - a_n, n + a_n, c_low, c_high)
    square_high = max(c_low**2, c_high**2)
    m2_low, m2_high = _ratio_box((s2 - a2).clip(lower=0), s2 + a2, n - a_n, n + a_n, 0, square_high)
    spans_zero = (m1_low <= 0) & (m1_high >= 0)
    sq_low = pd.concat([m1_low**2, m1_high**2], axis=1).min(axis=1).where(~spans_zero, 0.0)
    sq_high = pd.concat([m1_low**2, m1_high**2], axis=1).max(axis=1)
    lower = (m2_low - sq_high).clip(0, ceiling)
    upper = (m2_high - sq_low).clip(0, ceiling)
    f2 = plan.factor**2
    return estimate / f2, lower / f2, upper / f2


def plan(
    query: DPQuery,
    data: Any,
    policy: PrivacyBudgetPolicy,
    *,
    rho: float | None = None,
    accuracy: float | None = None,
    dataset: str | None = None,
) -> DPPlan:
    """Prepare ``query`` on ``data`` at a spend of ``rho``, or at the smallest spend whose error
    half-width (at the policy's confidence) is at most ``accuracy``. ``dataset`` (the held
    dataset ``data`` was read from) says which column the policy makes the privacy unit.

    >>> from disclosure.dp import count
    >>> from disclosure.policy import PrivacyBudgetPolicy
    >>> policy = PrivacyBudgetPolicy(default_project_rho=1, delta=1e-7, max_rho_per_query=0.5)
    >>> data = pd.DataFrame({"person_key": ["a", "b", "c"], "sex": ["F", "M", "M"]})
    >>> p = plan(count(by=["sex"], keys={"sex": ["F", "M"]}), data, policy, rho=0.01)
    >>> p.preview().noise[0].distribution
    'Integer Gaussian'
    """
    query = rebuilt(query)
    if (rho is None) == (accuracy is None):
        raise DPQueryError("give either rho (the spend) or accuracy (the error you need), not both")
    if rho is not None:
        return DPPlan(query, data, policy, rho, dataset=dataset)
    if not policy.allow_accuracy_targets:
        raise DPQueryError("this site's policy does not allow accuracy targets: give rho")
    _accuracy_target(query, accuracy)
    ceiling = policy.max_rho_per_query
    prepared = DPPlan(query, data, policy, ceiling, allowance=ceiling, dataset=dataset)
    prepared.retarget(_smallest_rho(prepared, accuracy))
    return prepared


ACCURACY_TARGETS = {"count": "count", "histogram": "count", "crosstab": "count", "sum": "sum"}


def _accuracy_target(query: DPQuery, accuracy: float) -> str:
    if query.statistic not in ACCURACY_TARGETS:
        raise DPQueryError(
            f"accuracy targets are offered for {', '.join(sorted(ACCURACY_TARGETS))}; for a "
            f"{query.statistic} give rho and preview its error"
        )
    if query.by and not query.public_keys:
        raise DPQueryError("accuracy targets need public group keys; give rho for this query")
    if not is_positive_real(accuracy):
        raise DPQueryError(
            f"accuracy must be a positive, finite number (e.g. accuracy=50), not {accuracy!r}"
        )
    return ACCURACY_TARGETS[query.statistic]


def _smallest_rho(prepared: DPPlan, accuracy: float) -> float:
    """Bisect log-rho down to about one part in a million: the error only falls as rho grows,
    and each trial builds a measurement alone (no data moves)."""
    name = _accuracy_target(prepared.query, accuracy)
    target = accuracy * (prepared.factor if name == "sum" else 1)
    high = prepared.allowance
    if prepared.accuracy_at(high, name) > target:
        raise DPQueryError(
            f"accuracy {accuracy:g} needs more than the largest spend one query may make "
            f"(rho {high:g}, policy max_rho_per_query); ask for a looser accuracy"
        )
    low = 1 / NANO
    while high / low > 1 + 1e-6:
        middle = on_nano_grid(math.sqrt(low * high))
        if middle >= high:
            break
        if prepared.accuracy_at(middle, name) <= target:
            high = middle
        else:
            low = middle
    return high


def rho_for_accuracy(
    query: DPQuery,
    data: Any,
    policy: PrivacyBudgetPolicy,
    accuracy: float,
    *,
    dataset: str | None = None,
) -> float:
    """The smallest rho (to about one part in a million) whose error half-width is at most
    ``accuracy``, for counts, histograms, crosstabs and sums with public keys."""
    return plan(query, data, policy, accuracy=accuracy, dataset=dataset).rho

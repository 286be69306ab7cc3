"""What a differentially private query asks for: a statistic, its column, its groups and the
public facts it relies on (clipping bounds, group keys, quantile candidates, histogram edges).

A ``DPQuery`` is plain, validated data: it holds no data and spends nothing. Build one with the
constructors below (``count``, ``sum_of``, ``mean``, ``variance``, ``quantiles``, ``median``,
``histogram``, ``crosstab``), then preview and release it with ``disclosure.dp.engine``.

>>> q = mean("sentence_months", by=["sex"], keys={"sex": ["F", "M"]})
>>> q.statistic, q.by
('mean', ('sex',))
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from disclosure.errors import DisclosureError
from disclosure.policy import PrivacyBudgetPolicy

STATISTICS = ("count", "sum", "mean", "variance", "quantile", "histogram", "crosstab")
# Statistics of a numeric column: they need clipping bounds.
VALUE_STATISTICS = ("sum", "mean", "variance", "quantile")
MAX_DIMENSIONS = 3
MAX_DECIMALS = 6
PERSON_KEY = "person_key"
# Options that would choose the privacy unit or the rows each person may contribute: the
# policy fixes both (privacy_budget.privacy_unit(s), max_rows_per_person); no query may.
UNIT_OPTIONS = ("identifier", "privacy_unit", "unit", "max_rows_per_person", "contributions")
# Edge labels are positional between these magnitudes, scientific outside (1e-300, 2e+30).
POSITIONAL_EDGES = (1e-6, 1e21)
MISSING_KEY = "(missing)"
# Quantiles are released at multiples of 1/1024 (see DPQuery.__post_init__).
QUANTILE_GRID = 1024


class DPQueryError(DisclosureError, ValueError):
    """A DP query is malformed: the message says which part and what is allowed."""


class PrivacyUnitFixed(DPQueryError):
    """A query tried to choose its privacy unit or its rows per person; the policy fixes both."""


def refuse_unit_options(options: Mapping[str, Any]) -> None:
    """``PrivacyUnitFixed`` if ``options`` would choose the privacy unit or the per-person row
    cap (``identifier=``, ``max_rows_per_person=``...): the environment's policy fixes both."""
    chosen = sorted(set(options) & set(UNIT_OPTIONS))
    if chosen:
        raise PrivacyUnitFixed(
            f"{', '.join(f'{name}=' for name in chosen)} cannot be given: the privacy unit is the "
            "person, named by the column the environment's policy fixes for each dataset "
            "(privacy_budget.privacy_unit, e.g. person_key), with each person's rows capped at "
            "its max_rows_per_person; remove the option and query as usual"
        )


def edge_labels(edges: Sequence[float]) -> tuple[str, ...]:
    """The labels of the bins between ``edges``, open-ended at both ends (``"< 18"``,
    ``"[18, 25)"``, ``">= 65"``), each edge written as the shortest text that reads back as the
    same number, so distinct edges never share a label; ``DPQueryError`` should two still do.

    >>> edge_labels([18, 20.00001, 1e-300])[:2]
    ('< 18', '[18, 20.00001)')
    """
    text = [_edge_text(edge) for edge in edges]
    labels = (
        f"< {text[0]}",
        *(f"[{a}, {b})" for a, b in zip(text, text[1:], strict=False)),
        f">= {text[-1]}",
    )
    if len(set(labels)) != len(labels):
        raise DPQueryError(
            f"edges {list(edges)} give bins with the same label: use edges that differ visibly"
        )
    return labels


def _edge_text(value: float) -> str:
    low, high = POSITIONAL_EDGES
    if value == 0 or low <= abs(value) < high:
        return np.format_float_positional(value, trim="-")
    return np.format_float_scientific(value, trim="-")


def as_edge(value: Any) -> float | None:
    """``value`` as a finite float edge, or None when it is not a real number (a flag, text)
    or is too large or not finite."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    try:
        edge = float(value)
    except OverflowError:
        return None
    return edge if math.isfinite(edge) else None


@dataclass(frozen=True)
class DPQuery:
    """One DP statistic over a table, grouped by up to three public keys.

    ``keys`` maps each grouping column to its public values (from the data dictionary); a
    grouping column absent from ``keys`` makes its groups private, and they are then released
    only above a DP threshold (which spends a delta). ``bounds`` clip the column's values;
    ``decimals`` is the precision kept (values are summed as exact fixed-point integers).
    """

    statistic: str
    column: str | None = None
    by: tuple[str, ...] = ()
    keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    bounds: tuple[float, float] | None = None
    decimals: int = 0
    quantiles: tuple[float, ...] = ()
    candidates: tuple[float, ...] | None = None
    edges: tuple[float, ...] | None = None

    def __new__(cls, *arguments: Any, **options: Any) -> DPQuery:
        refuse_unit_options(options)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise DPQueryError(
                f"statistic {self.statistic!r} is not one of {', '.join(STATISTICS)}"
            )
        needs_column = self.statistic in (*VALUE_STATISTICS, "histogram")
        if needs_column and not self.column:
            raise DPQueryError(f"a DP {self.statistic} needs the column it is of")
        if len(set(self.by)) != len(self.by):
            raise DPQueryError(f"group columns repeat: {list(self.by)}")
        if len(self.by) > MAX_DIMENSIONS:
            raise DPQueryError(
                f"at most {MAX_DIMENSIONS} group columns (a 1-3 dimensional table); got {len(self.by)}"
            )
        if self.statistic == "crosstab" and not self.by:
            raise DPQueryError("a crosstab needs 1 to 3 columns to cross")
        unknown = set(self.keys) - set(self.by)
        if unknown:
            raise DPQueryError(f"keys given for columns not grouped by: {sorted(unknown)}")
        for column, values in self.keys.items():
            if not values:
                raise DPQueryError(f"keys for {column!r} are empty: give its public values")
        if self.bounds is not None:
            low, high = self.bounds
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise DPQueryError(f"bounds must be finite with lower < upper, got [{low}, {high}]")
        if not 0 <= self.decimals <= MAX_DECIMALS:
            raise DPQueryError(f"decimals must be 0 to {MAX_DECIMALS}, got {self.decimals}")
        if self.statistic == "quantile":
            if not self.quantiles:
                raise DPQueryError("a quantile query needs at least one quantile in (0, 1)")
            for q in self.quantiles:
                if not 0 < q < 1:
                    raise DPQueryError(f"quantiles must lie in (0, 1), got {q}")
            # OpenDP scores a quantile exactly only when it is a dyadic fraction; others are
            # approximated inside OpenDP in a way whose error bound we cannot state. Snapping to
            # 1/1024 moves a quantile by at most 0.0005 and keeps every bound exact.
            snapped = tuple(
                min(max(round(q * QUANTILE_GRID), 1), QUANTILE_GRID - 1) / QUANTILE_GRID
                for q in self.quantiles
            )
            if len(set(snapped)) != len(snapped):
                raise DPQueryError(
                    f"quantiles {list(self.quantiles)} repeat at a 1/{QUANTILE_GRID} grid"
                )
            object.__setattr__(self, "quantiles", snapped)
        if self.candidates is not None and len(self.candidates) < 2:
            raise DPQueryError("give at least two quantile candidates")
        if self.statistic == "histogram":
            edges = tuple(as_edge(e) for e in self.edges or ())
            if (
                len(edges) < 2
                or None in edges
                or any(b <= a for a, b in zip(edges, edges[1:], strict=False))
            ):
                raise DPQueryError(
                    "histogram edges must be at least two strictly increasing finite numbers, "
                    f"not {str(list(self.edges or ()))[:80]}"
                )
            object.__setattr__(self, "edges", edges)
            edge_labels(edges)

    @property
    def groups(self) -> tuple[str, ...]:
        """The columns the released table is keyed by (the histogram's bins come first)."""
        return (self.histogram_column, *self.by) if self.statistic == "histogram" else self.by

    @property
    def histogram_column(self) -> str:
        return f"{self.column}_bin"

    @property
    def public_keys(self) -> bool:
        """True when every group column's values are public (no threshold is needed)."""
        return all(column in self.keys for column in self.by)

    def bounds_under(self, policy: PrivacyBudgetPolicy) -> tuple[float, float]:
        """The clipping bounds: the query's own, else the policy's for this column."""
        if self.bounds is not None:
            return self.bounds
        if self.column in policy.value_bounds:
            return policy.value_bounds[self.column]
        raise DPQueryError(
            f"no clipping bounds for {self.column!r}: pass bounds=(lower, upper) chosen without "
            "looking at the data (policy value_bounds has "
            f"{', '.join(sorted(policy.value_bounds)) or 'none'})"
        )

    def histogram_labels(self) -> tuple[str, ...]:
        """The bins' labels, open-ended at both ends so every value falls in one."""
        return edge_labels(self.edges or ())

    def describe(self) -> str:
        """One line a checker can read: what was asked."""
        what = {
            "count": "count of rows",
            "histogram": f"histogram of {self.column}",
            "crosstab": "table of counts",
        }.get(self.statistic, f"{self.statistic} of {self.column}")
        if self.statistic == "quantile":
            what = f"quantiles {', '.join(f'{q:g}' for q in self.quantiles)} of {self.column}"
        return what + (f" by {', '.join(self.by)}" if self.by else "")


def refuse_the_unit(query: DPQuery, unit: str) -> None:
    """``DPQueryError`` if ``query`` groups by or summarises ``unit``, the privacy unit's column."""
    if unit in query.by or unit == query.column:
        raise DPQueryError(f"{unit!r} is the privacy unit: it may not be grouped by or summarised")


def rebuilt(query: Any) -> DPQuery:
    """``query`` as the environment runs it: a plain ``DPQuery`` built again from its fields, so
    that every check runs again, and a subclass's overrides or attributes set on it afterwards
    (a privacy unit, a row cap) count for nothing. Anything else is ``DPQueryError``."""
    if not isinstance(query, DPQuery):
        raise DPQueryError(
            f"a DP query is built with disclosure.dp (count, mean, crosstab...), not a "
            f"{type(query).__name__}"
        )
    values = {f.name: getattr(query, f.name) for f in fields(DPQuery)}
    values["by"] = tuple(values["by"]) if not isinstance(values["by"], str) else (values["by"],)
    values["keys"] = {column: tuple(keys) for column, keys in dict(values["keys"]).items()}
    return DPQuery(**values)


def key_text(value: object) -> str:
    """A group key as the text it is compared as (flags as polars writes them: true, false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fixed_unit(constructor: Callable[..., DPQuery]) -> Callable[..., DPQuery]:
    """A query constructor that answers a privacy-unit option with ``PrivacyUnitFixed``."""

    @functools.wraps(constructor)
    def build(*arguments: Any, **options: Any) -> DPQuery:
        refuse_unit_options(options)
        return constructor(*arguments, **options)

    return build


def _keys(
    by: Sequence[str], keys: Mapping[str, Iterable] | None
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    if isinstance(by, str):
        by = [by]
    return tuple(by), {
        c: tuple(dict.fromkeys(key_text(v) for v in values)) for c, values in (keys or {}).items()
    }


def with_dictionary_keys(
    query: DPQuery, dictionary: Iterable[Mapping[str, object]] | None
) -> DPQuery:
    """``query`` with public keys taken from a data dictionary's ``values`` where it gives none.

    A grouping column whose values the dictionary does not list stays private (its groups are
    then released above a DP threshold).
    """
    if not dictionary:
        return query
    listed = {
        str(entry["name"]): entry["values"]
        for entry in dictionary
        if entry.get("values") and "name" in entry
    }
    keys = dict(query.keys)
    for column in query.by:
        if column not in keys and column in listed:
            keys[column] = tuple(dict.fromkeys(key_text(v) for v in listed[column]))
    return replace(query, keys=keys) if keys != dict(query.keys) else query


@_fixed_unit
def count(
    *,
    by: Sequence[str] = (),
    keys: Mapping[str, Iterable] | None = None,
) -> DPQuery:
    """Number of rows, overall or by groups.

    >>> count(by=["court"], keys={"court": ["crown", "magistrates"]}).describe()
    'count of rows by court'
    """
    by, keys = _keys(by, keys)
    return DPQuery("count", by=by, keys=keys)


def _of_values(
    statistic: str,
    column: str,
    bounds: tuple[float, float] | None,
    by: Sequence[str],
    keys: Mapping[str, Iterable] | None,
    decimals: int,
) -> DPQuery:
    by, keys = _keys(by, keys)
    return DPQuery(statistic, column, by, keys, bounds, decimals)


@_fixed_unit
def sum_of(
    column: str,
    *,
    bounds: tuple[float, float] | None = None,
    by: Sequence[str] = (),
    keys: Mapping[str, Iterable] | None = None,
    decimals: int = 0,
) -> DPQuery:
    """Sum of a column's recorded values, clipped to ``bounds``."""
    return _of_values("sum", column, bounds, by, keys, decimals)


@_fixed_unit
def mean(
    column: str,
    *,
    bounds: tuple[float, float] | None = None,
    by: Sequence[str] = (),
    keys: Mapping[str, Iterable] | None = None,
    decimals: int = 0,
) -> DPQuery:
    """Mean of a column's recorded values (a DP sum over a DP count of the same rows)."""
    return _of_values("mean", column, bounds, by, keys, decimals)


@_fixed_unit
def variance(
    column: str,
    *,
    bounds: tuple[float, float] | None = None,
    by: Sequence[str] = (),
    keys: Mapping[str, Iterable] | None = None,
    decimals: int = 0,
) -> DPQuery:
    """Population variance of a column's recorded values (from DP count, sum and sum of squares)."""
    return _of_values("variance", column, bounds, by, keys, decimals)


@_fixed_unit
def quantiles(
    column: str,
    qs: Sequence[float],
    *,
    bounds: tuple[float, float] | None = None,
    candidates: Sequence[float] | None = None,
    by: Sequence[str] = (),
    keys: Mapping[str, Iterable] | None = None,
    decimals: int = 0,
) -> DPQuery:
    """Quantiles of a column's recorded values, each chosen among public ``candidates``
    (default: the policy's number of evenly spaced values between the bounds)."""
    by, keys = _keys(by, keys)
    return DPQuery(
        "quantile",
        column,
        by,
        keys,
        bounds,
        decimals,
        tuple(float(q) for q in qs),
        tuple(float(c) for c in candidates) if candidates is not None else None,
    )


@_fixed_unit
def median(column: str, **options) -> DPQuery:
    """The median of a column's recorded values: ``quantiles(column, [0.5], ...)``."""
    return quantiles(column, [0.5], **options)


@_fixed_unit
def histogram(
    column: str,
    edges: Sequence[float],
    *,
    by: Sequence[str] = (),
    keys: Mapping[str, Iterable] | None = None,
) -> DPQuery:
    """Counts of a numeric column in bins between public ``edges`` (plus one open bin at each end)."""
    by, keys = _keys(by, keys)
    return DPQuery(
        "histogram",
        column,
        by,
        keys,
        edges=tuple(edges),
    )


@_fixed_unit
def crosstab(*columns: str, keys: Mapping[str, Iterable] | None = None) -> DPQuery:
    """A 1-3 dimensional contingency table of counts.

    >>> crosstab("sex", "court", keys={"sex": ["F", "M"], "court": ["crown", "magistrates"]}).by
    ('sex', 'court')
    """
    by, keys = _keys(list(columns), keys)
    return DPQuery("crosstab", by=by, keys=keys)

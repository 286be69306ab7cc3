"""Disclosure control of the figures a replica's reports compute on the real data.

The fidelity report sets real figures beside synthetic ones and travels with the open-data
package, so every real-side number in it passes the environment's output rules first, as any
output would (``disclosure.publication.publishable_table`` under the active SDC profile):

* records are counted by category, and each cell and margin is judged on the persons behind it
  (a person counts once per cell, as in ``srs.session``'s ``crosstab``): cells of fewer than
  the profile's minimum, zeros (where the profile says so) and dominated cells fail;
* failing cells, and the complements that would let them be recomputed, are suppressed;
* the remaining counts are rounded as the profile asks;
* rates and shares are derived from those protected counts only.

Which suppressed figure failed and which protects another is not said (both read the same), so
the label cannot narrow a suppressed figure down.

>>> control = RealSideControl.resolve(load_policies().sdc)              # doctest: +SKIP
>>> control.counts(victims, "outcome", unit="victim_person_key")        # doctest: +SKIP
outcome
at_court             15.0
before_charge        85.0
did_not_withdraw    290.0
Total               390.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from disclosure.evidence import OK
from disclosure.policy import SDCPolicy, SDCProfile
from disclosure.publication import publishable_table
from disclosure.suppression import TOTAL
from disclosure.tables import check_table

# The column summed per cell: one per record, so a cell's value is its number of records while
# its threshold is judged on the persons behind them (``unit``).
RECORDS = "records"
PERSON_KEY = "person_key"
# The column naming the person a record is about, per linked dataset (victims are people too).
PERSON_UNITS: dict[str, str] = {
    "linked/persons": PERSON_KEY,
    "linked/journeys": PERSON_KEY,
    "linked/victims": "victim_person_key",
    "linked/reoffending": PERSON_KEY,
}
YES, NO = "yes", "no"


def person_unit(frame: pd.DataFrame, dataset: str | None = None) -> str | None:
    """The column identifying the person behind each record of ``frame`` (the SDC counting
    unit): the dataset's person column, else ``person_key``, else None (records are counted,
    as ``srs.session`` does for data without a person key)."""
    for name in (PERSON_UNITS.get(dataset or ""), PERSON_KEY):
        if name and name in frame.columns:
            return name
    return None


def _rounding(profile: SDCProfile) -> str:
    # What ``disclosure.publication.round_table`` does to the sum tables used here.
    return "none" if profile.rounding.value == "none" else f"base {profile.rounding_base}"


@dataclass(frozen=True)
class RealSideControl:
    """The SDC profile that real-side figures pass, and how a suppressed one reads."""

    profile: SDCProfile
    profile_name: str = ""

    @classmethod
    def resolve(cls, sdc: SDCPolicy | SDCProfile | RealSideControl | None) -> RealSideControl:
        """From a deployment's SDC policy (its active profile), one profile, or None: the
        active profile of the policies in force (``srs.governance.policy.load_policies``)."""
        if isinstance(sdc, RealSideControl):
            return sdc
        if isinstance(sdc, SDCProfile):
            return cls(sdc)
        if sdc is None:
            from srs.governance.policy import load_policies

            sdc = load_policies().sdc
        return cls(sdc.active, sdc.profile)

    @property
    def suppressed_label(self) -> str:
        """What a suppressed real figure reads, whatever suppressed it."""
        return (
            f"suppressed (fewer than {self.profile.minimum_cell_count} persons, "
            "or would reveal such a figure)"
        )

    def describe(self) -> dict[str, Any]:
        """The rules the real-side figures passed, for the report (JSON-safe)."""
        return {
            "profile": self.profile_name,
            "unit": "persons (each person counts once per cell)",
            "minimum_cell_count": self.profile.minimum_cell_count,
            "zeros_are_disclosive": self.profile.zeros_are_disclosive,
            "dominance": f"({self.profile.dominance_n}, {self.profile.dominance_k:g}%)",
            "p_percent": self.profile.p_percent,
            "rounding": _rounding(self.profile),
            "suppressed_label": self.suppressed_label,
            "statement": (
                "Real-side figures passed the environment's output rules (disclosure.publication) "
                "under this profile: counts of records by category, judged on the persons behind "
                "them; failing cells and the complements that would reveal them suppressed, the "
                "rest rounded; rates and shares derived from the protected counts. Verdicts are "
                "judged inside the environment on the unrounded real figures."
            ),
        }

    def counts(
        self,
        data: pd.DataFrame,
        index: str,
        columns: str | None = None,
        *,
        unit: str | None,
    ) -> pd.Series | pd.DataFrame | None:
        """Protected record counts of ``data`` by ``index`` (and ``columns``), with ``Total``
        margins; NaN where suppressed. A Series for one key, a frame for two; None when no
        record has its keys."""
        keys = [index, *([columns] if columns else [])]
        records = data.loc[:, [*keys, *([unit] if unit else [])]].dropna(subset=keys)
        if records.empty:
            return None
        published = publishable_table(
            records.assign(**{RECORDS: 1}),
            index=index,
            columns=columns,
            values=RECORDS,
            statistic="sum",
            unit=unit,
            profile=self.profile,
            profile_name=self.profile_name,
        )
        table = published.table.astype("float64")
        return table if columns else table.iloc[:, 0]

    def passes(self, data: pd.DataFrame, hit: pd.Series, *, unit: str | None) -> bool:
        """True when the records with ``hit`` and those without both pass every rule of the
        profile (``disclosure.tables.check_table``): the numerator and its complement of a rate
        whose numerator is not one cell of its protected table."""
        if data.empty:
            return False
        flags = pd.Categorical(np.where(hit.to_numpy(dtype=bool), YES, NO), categories=[YES, NO])
        records = pd.DataFrame({"hit": flags, RECORDS: 1}, index=data.index)
        if unit:
            records[unit] = data[unit]
        check = check_table(
            records, index="hit", values=RECORDS, statistic="sum", profile=self.profile, unit=unit
        )
        return bool((check.status == OK).to_numpy().all())


@dataclass(frozen=True)
class ProtectedRate:
    """A real-side rate from protected counts: the percentage, its numerator and denominator,
    or none of them and the suppression label."""

    rate: float | None
    numerator: int | None
    denominator: int | None
    status: str

    @property
    def published(self) -> bool:
        return self.rate is not None


PUBLISHED = "published"


def protected_rate(
    numerator: Any, denominator: Any, control: RealSideControl, *, passes: bool = True, also=()
) -> ProtectedRate:
    """The percentage ``numerator / denominator`` of two protected counts, or suppressed when
    either (or any protected count in ``also``, such as the complement) was suppressed, when
    ``passes`` is False, or when the denominator is not positive."""
    figures = [numerator, denominator, *also]
    missing = any(value is None or not np.isfinite(float(value)) for value in figures)
    if not passes or missing or float(denominator) <= 0:
        return ProtectedRate(None, None, None, control.suppressed_label)
    return ProtectedRate(
        round(100.0 * float(numerator) / float(denominator), 1),
        int(round(float(numerator))),
        int(round(float(denominator))),
        PUBLISHED,
    )


def cell(table: pd.Series | pd.DataFrame | None, row: Any, column: Any = None) -> float | None:
    """One value of a protected table (None when the table or the label is missing)."""
    if table is None:
        return None
    try:
        value = table.loc[row] if column is None else table.loc[row, column]
    except KeyError:
        return None
    return float(value)


def _finite(value: float | None) -> bool:
    return value is not None and bool(np.isfinite(value))


def protected_shares(
    counts: pd.Series | None, labels: list[str], *, other: str | None = None
) -> list[float | None]:
    """Shares of the protected ``Total`` for ``labels`` (3 decimals; None where suppressed).

    The ``other`` label, if given, stands for every category of ``counts`` not in ``labels``:
    the sum of their protected counts when all were published, else ``Total`` less the shown
    labels' counts (at least 0, since rounded counts need not add up), 0 when there are none.
    """
    total = cell(counts, TOTAL)
    if counts is None or not _finite(total) or total <= 0:  # type: ignore[operator]
        return [None] * len(labels)
    values = {label: cell(counts, label) for label in labels if label != other}
    if other in labels:
        shown = list(values.values())
        rest = counts.drop(labels=[*values, TOTAL], errors="ignore")
        if rest.empty or rest.notna().all():
            values[other] = float(rest.sum())
        elif all(map(_finite, shown)):
            values[other] = max(total - sum(shown), 0.0)  # type: ignore[operator,arg-type]
        else:
            values[other] = None
    return [
        round(values[label] / total, 3) if _finite(values[label]) else None  # type: ignore
        for label in labels
    ]

"""Disclosure risk of record-level data (synthetic replicas, public extracts).

For declared quasi-identifiers (the variables an intruder could know, such as sex, birth
year and area): k-anonymity (the size of the smallest group of records sharing them),
l-diversity of each sensitive attribute within those groups, sample uniques, and a
per-record re-identification risk (1 / size of the record's group, the usual
"prosecutor" risk). Pure computation on a data frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from disclosure.errors import DisclosureError


class MicrodataSpecError(DisclosureError, ValueError):
    """Quasi-identifiers or sensitive attributes that are not in the data."""


@dataclass
class MicrodataRisk:
    """Risk measures of one record-level table."""

    k_anonymity: int
    l_diversity: dict[str, int]
    sample_uniques: int
    records: int
    record_risk: pd.Series  # per record: 1 / size of its quasi-identifier group
    groups_below_k: int
    k_threshold: int

    @property
    def mean_risk(self) -> float:
        return float(self.record_risk.mean()) if len(self.record_risk) else 0.0

    @property
    def max_risk(self) -> float:
        return float(self.record_risk.max()) if len(self.record_risk) else 0.0

    def passes(self, k_threshold: int | None = None, l_threshold: int = 1) -> bool:
        """True when every group has at least k records and every sensitive attribute l values."""
        k = k_threshold or self.k_threshold
        return self.k_anonymity >= k and all(v >= l_threshold for v in self.l_diversity.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": "microdata",
            "k_anonymity": self.k_anonymity,
            "k_threshold": self.k_threshold,
            "groups_below_k": self.groups_below_k,
            "l_diversity": self.l_diversity,
            "sample_uniques": self.sample_uniques,
            "records": self.records,
            "mean_record_risk": round(self.mean_risk, 6),
            "max_record_risk": round(self.max_risk, 6),
        }


def assess_microdata(
    data: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str] = (),
    k_threshold: int = 10,
) -> MicrodataRisk:
    """Risk measures of ``data`` for the declared quasi-identifiers and sensitive attributes.

    Missing values form their own category (an intruder can know that a value is missing).
    """
    quasi_identifiers, sensitive = list(quasi_identifiers), list(sensitive)
    missing = [c for c in quasi_identifiers + sensitive if c not in data.columns]
    if missing:
        raise MicrodataSpecError(f"no column(s) {', '.join(missing)} in the data")
    if not quasi_identifiers:
        raise MicrodataSpecError("declare at least one quasi-identifier")
    if data.empty:
        return MicrodataRisk(
            0, {s: 0 for s in sensitive}, 0, 0, pd.Series(dtype=float), 0, k_threshold
        )
    keys = data[quasi_identifiers].astype("string").fillna("<missing>")
    group = keys.groupby(quasi_identifiers, dropna=False, sort=False).ngroup()
    sizes = group.map(group.value_counts())
    l_diversity = {
        s: int(data[s].astype("string").fillna("<missing>").groupby(group).nunique().min())
        for s in sensitive
    }
    group_sizes = group.value_counts()
    return MicrodataRisk(
        k_anonymity=int(group_sizes.min()),
        l_diversity=l_diversity,
        sample_uniques=int((sizes == 1).sum()),
        records=len(data),
        record_risk=(1.0 / sizes).rename("risk"),
        groups_below_k=int((group_sizes < k_threshold).sum()),
        k_threshold=k_threshold,
    )

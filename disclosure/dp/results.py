"""What a DP query shows before and after it spends: its cost, its noise and its error bounds.

``DPPreview`` is computed without spending (OpenDP's stated noise scales, the expected error
half-width of each statistic at the policy's confidence). ``DPResult`` is a released table with
an estimate and error bounds per cell, the spend that paid for it and the same evidence; it
serialises to JSON for the output record and renders as HTML in a notebook.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from disclosure.dp.queries import PERSON_KEY, DPQuery
from disclosure.evidence import json_safe

NOTES = {
    "cap": (
        "The privacy unit is the person: each person's rows were cut to a random sample of {k} "
        "before any statistic, so a person with more than {k} rows counts {k} times. Figures "
        "describe that capped table, and the bounds cover the noise only, not the cap."
    ),
    "count": "Counts carry unbiased integer Gaussian noise and may be negative for small groups.",
    "quantile": (
        "A quantile is one of the public candidates; rank_error bounds, at the stated confidence, "
        "how many rows its rank lies from the target rank (beyond the gap between candidates)."
    ),
    "missing": "Rows without a value of the column are left out of its statistic, not imputed.",
    "keys": (
        "Groups are the public keys listed; rows whose value is not among them are in no cell."
    ),
    "threshold": (
        "Group keys were not public: only groups whose noisy count passed OpenDP's threshold "
        "are released, at the cost of the delta shown."
    ),
}


@dataclass(frozen=True)
class NoiseLine:
    """OpenDP's description of one noisy aggregate, with its error half-width at ``alpha``."""

    statistic: str
    aggregate: str
    distribution: str
    scale: float
    accuracy: float | None
    threshold: int | None
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic,
            "aggregate": self.aggregate,
            "distribution": self.distribution,
            "scale": self.scale,
            "accuracy": self.accuracy,
            "threshold": self.threshold,
            "alpha": self.alpha,
        }


@dataclass(frozen=True)
class DPPreview:
    """The cost and expected error of a DP query, known before anything is spent."""

    query: DPQuery
    rho: float
    delta: float
    epsilon: float
    policy_delta: float
    confidence: float
    rows_per_person: int
    noise: list[NoiseLine]
    value_scale: float = 1.0
    privacy_unit: str = PERSON_KEY

    def half_widths(self) -> dict[str, float | None]:
        """Expected error half-width of each noisy statistic, in the column's units."""
        widths: dict[str, float | None] = {}
        for line in self.noise:
            if line.accuracy is None:
                widths[line.statistic] = None
            elif line.statistic in ("sum",):
                widths[line.statistic] = line.accuracy * self.value_scale
            elif line.statistic == "sum_of_squares":
                widths[line.statistic] = line.accuracy * self.value_scale**2
            else:
                widths[line.statistic] = line.accuracy
        return widths

    def notes(self) -> list[str]:
        q = self.query
        notes = [NOTES["cap"].format(k=self.rows_per_person)]
        if q.statistic in ("count", "histogram", "crosstab"):
            notes.append(NOTES["count"])
        if q.statistic == "quantile":
            notes.append(NOTES["quantile"])
        if q.column and q.statistic != "histogram":
            notes.append(NOTES["missing"])
        if q.by and q.public_keys:
            notes.append(NOTES["keys"])
        if not q.public_keys and q.by:
            notes.append(NOTES["threshold"])
        return notes

    def to_dict(self) -> dict[str, Any]:
        q = self.query
        return {
            "query": {
                "statistic": q.statistic,
                "column": q.column,
                "by": list(q.by),
                "public_keys": q.public_keys,
                "bounds": list(q.bounds) if q.bounds else None,
                "decimals": q.decimals,
                "quantiles": list(q.quantiles),
                "edges": list(q.edges) if q.edges else None,
                "privacy_unit": self.privacy_unit,
                "description": q.describe(),
            },
            "rho": self.rho,
            "delta": self.delta,
            "epsilon": self.epsilon,
            "epsilon_delta": self.policy_delta + self.delta,
            "confidence": self.confidence,
            "rows_per_person": self.rows_per_person,
            "noise": [line.to_dict() for line in self.noise],
            "half_widths": self.half_widths(),
            "notes": self.notes(),
        }

    def __str__(self) -> str:
        widths = ", ".join(
            f"{name} +/- {width:.4g}"
            for name, width in self.half_widths().items()
            if width is not None
        )
        return (
            f"{self.query.describe()}: costs rho {self.rho:g} (epsilon {self.epsilon:.3g} at delta "
            f"{self.policy_delta + self.delta:g}); {self.confidence:.0%} error {widths}"
        )


@dataclass
class DPResult:
    """A released DP table: estimates with error bounds, and the spend that paid for them."""

    preview: DPPreview
    table: pd.DataFrame
    spend_id: int
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.notes:
            self.notes = self.preview.notes()

    @property
    def rho(self) -> float:
        return self.preview.rho

    def to_dict(self) -> dict[str, Any]:
        """Our JSON layout for the output record: the table, the spend and the evidence."""
        records = [
            {k: json_safe(v) for k, v in row.items()}
            for row in self.table.to_dict(orient="records")
        ]
        return {
            "kind": "dp_result",
            "differentially_private": True,
            "spend_id": self.spend_id,
            **self.preview.to_dict(),
            "columns": list(map(str, self.table.columns)),
            "rows": records,
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def _repr_html_(self) -> str:
        head = html.escape(
            f"DP {self.preview.query.describe()}: rho {self.rho:g} spent (spend #{self.spend_id}), "
            f"{self.preview.confidence:.0%} bounds"
        )
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return f"<p><b>{head}</b></p>{self.table.to_html(index=False)}<ul>{notes}</ul>"

"""Disclosure checks on model outputs: regressions and survival analyses.

Regression results from statsmodels (OLS, logit, probit, Poisson, or any result with
``df_resid``) are checked for residual degrees of freedom, the number of observations in each
category of a categorical regressor, and, where the profile sets one, DataSHIELD's cap on
parameters per observation. Survival (Kaplan-Meier) tables are checked like frequency tables:
every time point's number at risk must reach the profile's minimum, and a safe version
truncates the curve where it does not and rounds the counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from disclosure.evidence import FAIL, OK, REVIEW
from disclosure.policy import SDCProfile

DUMMY_NAME = re.compile(r"^(?P<factor>.+?)\[T\.(?P<level>.+)\]$")


@dataclass
class ModelCheck:
    """Whether a model's estimates may be released, with every finding."""

    model: str
    status: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    estimates: pd.DataFrame | None = None
    observations: int = 0

    def summary(self) -> str:
        reasons = "; ".join(f["message"] for f in self.findings) or "all checks passed"
        return f"{self.status}: {self.model} ({reasons})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "model",
            "model": self.model,
            "status": self.status,
            "observations": self.observations,
            "findings": self.findings,
            "summary": self.summary(),
        }

    def _repr_html_(self) -> str:
        colour = {FAIL: "#f8d0d0", REVIEW: "#fbe7b5", OK: "#d8f0d8"}[self.status]
        table = (
            self.estimates.to_html(float_format=lambda v: f"{v:.4g}")
            if self.estimates is not None
            else ""
        )
        return f"<div><p style='background:{colour}'><b>{self.summary()}</b></p>{table}</div>"


def category_counts(exog: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Observations per category of each categorical regressor, read off its dummy columns
    (``C(x)[T.b]`` style names): the baseline is every row with none of its dummies set."""
    groups: dict[str, dict[str, int]] = {}
    for column in exog.columns:
        match = DUMMY_NAME.match(str(column))
        values = exog[column]
        if match and set(np.unique(values)) <= {0, 1}:
            groups.setdefault(match["factor"], {})[match["level"]] = int(values.sum())
    for factor, levels in groups.items():
        dummies = [
            c
            for c in exog.columns
            if DUMMY_NAME.match(str(c)) and DUMMY_NAME.match(str(c))["factor"] == factor
        ]
        levels["(baseline)"] = int((exog[dummies].sum(axis=1) == 0).sum())
    return groups


def check_regression(results: Any, profile: SDCProfile) -> ModelCheck:
    """Check a fitted statsmodels regression result against ``profile``."""
    model_name = type(getattr(results, "model", results)).__name__
    findings: list[dict[str, Any]] = []
    nobs = int(getattr(results, "nobs", 0) or 0)
    df_resid = getattr(results, "df_resid", None)
    status_flags = getattr(results.model, "status", None)
    if status_flags is not None:
        # Cox regression: the information is in the events, not the observations.
        events = int(np.asarray(status_flags).sum())
        nobs = nobs or len(np.asarray(status_flags))
        df_resid = events - len(np.asarray(getattr(results, "params", [])))
    if df_resid is None:
        findings.append(
            {
                "rule": "residual_dof",
                "status": REVIEW,
                "message": "the model reports no residual degrees of freedom: check by hand",
            }
        )
    elif df_resid < profile.residual_degrees_of_freedom:
        findings.append(
            {
                "rule": "residual_dof",
                "status": FAIL,
                "message": f"residual degrees of freedom {df_resid:g} < {profile.residual_degrees_of_freedom}",
                "figures": {"df_resid": float(df_resid)},
            }
        )
    exog_names = list(getattr(results.model, "exog_names", []) or [])
    exog = getattr(results.model, "exog", None)
    if exog is not None and exog_names:
        for factor, levels in category_counts(pd.DataFrame(exog, columns=exog_names)).items():
            for level, count in levels.items():
                if count < profile.min_observations_per_category:
                    findings.append(
                        {
                            "rule": "category_observations",
                            "status": FAIL,
                            "message": f"{factor} = {level} has {count} observations < {profile.min_observations_per_category}",
                            "figures": {"factor": factor, "level": level, "count": count},
                        }
                    )
    params = np.asarray(getattr(results, "params", []))
    if (
        profile.max_parameters_fraction is not None
        and nobs
        and len(params) > profile.max_parameters_fraction * nobs
    ):
        findings.append(
            {
                "rule": "parameters",
                "status": FAIL,
                "message": f"{len(params)} parameters > {profile.max_parameters_fraction:g} x {nobs} observations",
            }
        )
    estimates = None
    if len(params):
        names = exog_names or [f"x{i}" for i in range(len(params))]
        estimates = pd.DataFrame(
            {
                "coef": params,
                "std_err": np.asarray(getattr(results, "bse", np.full(len(params), np.nan))),
                "p_value": np.asarray(getattr(results, "pvalues", np.full(len(params), np.nan))),
            },
            index=names,
        )
    status = FAIL if any(f["status"] == FAIL for f in findings) else REVIEW if findings else OK
    return ModelCheck(model_name, status, findings, estimates, nobs)


def survival_table(durations: pd.Series, events: pd.Series) -> pd.DataFrame:
    """Kaplan-Meier table: per distinct time, number at risk, events, censored and survival."""
    frame = pd.DataFrame(
        {"time": durations.to_numpy(dtype=float), "event": events.to_numpy(dtype=bool)}
    ).dropna()
    grouped = frame.groupby("time")["event"].agg(events="sum", leaving="size")
    at_risk = grouped["leaving"][::-1].cumsum()[::-1]
    table = pd.DataFrame(
        {
            "at_risk": at_risk.astype(int),
            "events": grouped["events"].astype(int),
            "censored": (grouped["leaving"] - grouped["events"]).astype(int),
        }
    )
    table["survival"] = (1 - table["events"] / table["at_risk"]).cumprod()
    return table


def check_survival(
    durations: pd.Series, events: pd.Series, profile: SDCProfile
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The Kaplan-Meier table and a finding for every time point with too few at risk."""
    table = survival_table(durations, events)
    minimum = profile.survival_minimum_at_risk
    findings = [
        {
            "rule": "survival_at_risk",
            "status": FAIL,
            "time": float(time),
            "message": f"at time {time:g}, {int(row.at_risk)} at risk < {minimum}",
        }
        for time, row in table[table["at_risk"] < minimum].iterrows()
    ]
    return table, findings


def safe_survival_table(
    durations: pd.Series, events: pd.Series, profile: SDCProfile
) -> pd.DataFrame:
    """A releasable Kaplan-Meier table: cut where fewer than the minimum remain at risk, with
    at-risk, event and censored counts rounded to the profile's base (survival is kept)."""
    table = survival_table(durations, events)
    table = table[table["at_risk"] >= profile.survival_minimum_at_risk].copy()
    base = profile.rounding_base
    for column in ("at_risk", "events", "censored"):
        table[column] = (np.floor(table[column] / base + 0.5) * base).astype(int)
    return table

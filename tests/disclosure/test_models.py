"""Model outputs: residual degrees of freedom, observations per category, DataSHIELD's
parameter cap, and survival tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from disclosure.evidence import FAIL, OK
from disclosure.models import check_regression, check_survival, safe_survival_table, survival_table


def data(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sentence = rng.choice(["custody", "community", "fine"], n, p=[0.4, 0.4, 0.2])
    age = rng.integers(18, 60, n)
    reoffended = (rng.random(n) < 0.3 + 0.1 * (sentence == "custody")).astype(int)
    return pd.DataFrame(
        {
            "sentence": sentence,
            "age": age,
            "reoffended": reoffended,
            "months": rng.gamma(2, 6, n),
            "cases": rng.poisson(2, n),
        }
    )


@pytest.mark.parametrize(
    "fit",
    [
        lambda d: smf.ols("months ~ age + C(sentence)", d).fit(),
        lambda d: smf.logit("reoffended ~ age + C(sentence)", d).fit(disp=0),
        lambda d: smf.probit("reoffended ~ age + C(sentence)", d).fit(disp=0),
        lambda d: smf.poisson("cases ~ age + C(sentence)", d).fit(disp=0),
    ],
)
def test_well_supported_models_pass(policies, fit) -> None:
    check = check_regression(fit(data(500)), policies.sdc.active)
    assert check.status == OK, check.findings
    assert check.estimates is not None and "age" in check.estimates.index
    assert check.to_dict()["observations"] == 500


def test_too_few_residual_degrees_of_freedom(policies) -> None:
    check = check_regression(
        smf.ols("months ~ age + C(sentence)", data(13)).fit(), policies.sdc.active
    )
    assert check.status == FAIL
    assert any("residual degrees of freedom 9 < 10" in f["message"] for f in check.findings)


def test_a_thin_category_fails(policies) -> None:
    frame = data(300)
    frame.loc[:4, "sentence"] = "discharge"
    frame.loc[5:, "sentence"] = frame.loc[5:, "sentence"].replace("discharge", "fine")
    check = check_regression(
        smf.ols("months ~ age + C(sentence)", frame).fit(), policies.sdc.active
    )
    assert check.status == FAIL
    assert any(
        "C(sentence) = discharge has 5 observations < 10" in f["message"] for f in check.findings
    )


def test_datashield_parameter_cap(policies) -> None:
    frame = data(20)
    frame["id"] = np.arange(20) % 8
    check = check_regression(
        smf.ols("months ~ C(id)", frame).fit(), policies.sdc.profiles["datashield"]
    )
    assert any(f["rule"] == "parameters" for f in check.findings)


def test_survival_tables() -> None:
    durations = pd.Series([1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], dtype=float)
    events = pd.Series([1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1])
    table = survival_table(durations, events)
    assert (
        table.loc[1.0, "at_risk"] == 15
        and table.loc[2.0, "events"] == 1
        and table.loc[2.0, "censored"] == 1
    )
    assert table.loc[1.0, "survival"] == pytest.approx(14 / 15)


def test_survival_at_risk_threshold(policies) -> None:
    profile = policies.sdc.active
    durations = pd.Series(np.arange(1, 31, dtype=float))
    events = pd.Series(np.ones(30))
    _, findings = check_survival(durations, events, profile)
    assert len(findings) == 9  # times 22..30 have 9..1 at risk
    assert findings[0]["message"] == "at time 22, 9 at risk < 10"
    safe = safe_survival_table(durations, events, profile)
    assert safe["at_risk"].min() >= 10 and (safe["at_risk"] % 5 == 0).all()


def test_cox_regression_counts_events(policies) -> None:
    rng = np.random.default_rng(2)
    frame = data(200)
    frame["time"] = rng.exponential(10, 200)
    frame["event"] = (rng.random(200) < 0.5).astype(int)
    fitted = smf.phreg("time ~ age + C(sentence)", frame, status=frame["event"]).fit()
    assert check_regression(fitted, policies.sdc.active).status == OK
    few = frame.assign(event=0)
    few.loc[:11, "event"] = 1  # 12 events, 3 parameters: 9 < 10
    thin = check_regression(
        smf.phreg("time ~ age + C(sentence)", few, status=few["event"]).fit(), policies.sdc.active
    )
    assert thin.status == FAIL and any(
        "residual degrees of freedom 9" in f["message"] for f in thin.findings
    )

"""Differentially private queries with person-level privacy, on OpenDP (Context/Polars API).

Build a query (``count``, ``sum_of``, ``mean``, ``variance``, ``quantiles``, ``median``,
``histogram``, ``crosstab``), ``plan`` it on a table at a spend of rho or at an accuracy target,
``preview`` its cost and error without spending, and ``release`` it against a committed spend
from the project's budget ledger (``srs.budget``). Pure computation: no database, no files.

>>> import pandas as pd
>>> from disclosure.policy import PrivacyBudgetPolicy
>>> policy = PrivacyBudgetPolicy(default_project_rho=1, delta=1e-7, max_rho_per_query=0.5)
>>> data = pd.DataFrame({"person_key": list("abcd"), "court": ["crown"] * 4})
>>> print(plan(count(), data, policy, rho=0.01).preview())  # doctest: +ELLIPSIS
count of rows: costs rho 0.01 (epsilon ... at delta 1e-07); 95% error count +/- ...
"""

from disclosure.dp.engine import (
    DPPlan,
    DPReleaseRefused,
    Spend,
    on_nano_grid,
    plan,
    rho_for_accuracy,
)
from disclosure.dp.queries import (
    DPQuery,
    DPQueryError,
    count,
    crosstab,
    histogram,
    mean,
    median,
    quantiles,
    sum_of,
    variance,
    with_dictionary_keys,
)
from disclosure.dp.results import DPPreview, DPResult, NoiseLine

__all__ = [
    "DPPlan",
    "DPPreview",
    "DPQuery",
    "DPQueryError",
    "DPReleaseRefused",
    "DPResult",
    "NoiseLine",
    "Spend",
    "count",
    "crosstab",
    "histogram",
    "mean",
    "median",
    "on_nano_grid",
    "plan",
    "quantiles",
    "rho_for_accuracy",
    "sum_of",
    "variance",
    "with_dictionary_keys",
]

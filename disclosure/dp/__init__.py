"""Differentially private queries with person-level privacy, on OpenDP (Context/Polars API).

Build a query (``count``, ``sum_of``, ``mean``, ``variance``, ``quantiles``, ``median``,
``histogram``, ``crosstab``), ``plan`` it on a table at a spend of rho or at an accuracy target,
``preview`` its cost and error without spending, and ``release`` it against a spend the
project's budget ledger confirmed (``ConfirmedSpend``, issued by ``srs.governance.budget.confirm_spend``).
``where`` and ``derive`` (``disclosure.dp.selection``) say declaratively which rows a query reads
and which columns it derives. The privacy unit (the person's column) and the rows each person
may contribute are the policy's, never a query's (``PrivacyUnitFixed``). Pure computation: no
database, no files.

>>> import pandas as pd
>>> from disclosure.policy import PrivacyBudgetPolicy
>>> policy = PrivacyBudgetPolicy(default_project_rho=1, delta=1e-7, max_rho_per_query=0.5)
>>> data = pd.DataFrame({"person_key": list("abcd"), "court": ["crown"] * 4})
>>> print(plan(count(), data, policy, rho=0.01).preview())  # doctest: +ELLIPSIS
count of rows: costs rho 0.01 (epsilon ... at delta 1e-07); 95% error count +/- ...
"""

from disclosure.dp.engine import (
    DPPlan,
    on_nano_grid,
    plan,
    rho_for_accuracy,
)
from disclosure.dp.queries import (
    DPQuery,
    DPQueryError,
    PrivacyUnitFixed,
    count,
    crosstab,
    histogram,
    mean,
    median,
    quantiles,
    rebuilt,
    sum_of,
    variance,
    with_dictionary_keys,
)
from disclosure.dp.results import DPPreview, DPResult, NoiseLine
from disclosure.dp.selection import RowSelection, SelectionError, select_rows
from disclosure.dp.spend import ConfirmedSpend, DPReleaseRefused, is_positive_real

__all__ = [
    "ConfirmedSpend",
    "DPPlan",
    "DPPreview",
    "DPQuery",
    "DPQueryError",
    "DPReleaseRefused",
    "DPResult",
    "NoiseLine",
    "PrivacyUnitFixed",
    "RowSelection",
    "SelectionError",
    "count",
    "crosstab",
    "histogram",
    "is_positive_real",
    "mean",
    "median",
    "on_nano_grid",
    "plan",
    "quantiles",
    "rebuilt",
    "rho_for_accuracy",
    "select_rows",
    "sum_of",
    "variance",
    "with_dictionary_keys",
]

"""Benchmark: disclosure checks against plain pandas, and secondary suppression speed.

    .venv/bin/python bench/bench_disclosure.py

1. Checking a crosstab with mean on 1,000,000 rows (40 x 60 cells) beside the plain
   ``pandas.crosstab`` of the same table, in one run (target: at most 2x).
2. Secondary suppression of a 100 x 100 table with margins (target: under 2 s), with the
   number of cells hidden compared with hiding every row that holds a failing cell.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd

from disclosure.suppression import feasible_intervals, linear_table, secondary_suppression
from disclosure.tables import check_table
from srs.policy import load_policies


def crosstab_figures(profile) -> None:
    rng = np.random.default_rng(0)
    n = 1_000_000
    data = pd.DataFrame(
        {
            "area": rng.integers(0, 40, n).astype(str),
            "offence": rng.integers(0, 60, n).astype(str),
            "sentence_months": rng.gamma(2.0, 6.0, n),
        }
    )
    plain, ours = [], []
    for _ in range(5):
        start = time.perf_counter()
        pd.crosstab(data["area"], data["offence"], values=data["sentence_months"], aggfunc="mean")
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        check_table(
            data,
            index="area",
            columns="offence",
            values="sentence_months",
            statistic="mean",
            profile=profile,
        )
        ours.append(time.perf_counter() - start)
    p, o = statistics.median(plain), statistics.median(ours)
    print(
        f"crosstab mean, 1,000,000 rows, 40 x 60: pandas {p:.3f} s, checked {o:.3f} s, ratio {o / p:.2f} (target <= 2)"
    )


def suppression_figures(profile) -> None:
    rng = np.random.default_rng(0)
    values = rng.poisson(60, (100, 100)).astype(float)
    small = rng.random((100, 100)) < 0.03
    values[small] = rng.integers(1, 10, small.sum())
    start = time.perf_counter()
    table = linear_table(pd.DataFrame(values))
    primary = np.zeros(table.values.size, dtype=bool)
    for r, c in zip(*np.nonzero(small), strict=True):
        primary[table.index_of((r, c))] = True
    result = secondary_suppression(table, primary, profile, verify=False)
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    lower, upper = feasible_intervals(table, result.suppressed, cells=np.flatnonzero(primary))
    attack = time.perf_counter() - start
    protected = bool(((upper - lower) >= result.levels - 1e-6)[primary].all())
    whole_rows = int(small.any(axis=1).sum()) * 100
    print(
        f"secondary suppression, 100 x 100 with margins: {elapsed:.2f} s (target < 2 s); "
        f"{int(primary.sum())} primary + {int(result.secondary.sum())} secondary cells hidden "
        f"(whole rows would hide {whole_rows}); attacker check {attack:.2f} s, all protected: {protected}"
    )


def main() -> None:
    profile = load_policies().sdc.profiles["ons-srs"]
    crosstab_figures(profile)
    suppression_figures(profile)


if __name__ == "__main__":
    main()

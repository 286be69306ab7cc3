"""Benchmark: DP count and DP mean by 40 groups beside plain polars and pandas groupbys.

    .venv/bin/python bench/bench_dp.py            # 1,000,000 rows
    .venv/bin/python bench/bench_dp.py --rows 100000

Simulates rows with ~0.3 distinct persons per row (person_key; ~3.3 rows each), 40 groups and
a value in 0..100 with ~5% missing. Times, best of 3, the plain groupby count and mean in pandas and
polars, and ``disclosure.dp`` count and mean end to end (plan + preview + release at rho 0.01)
on the polars and on the pandas frame; then splits the DP count into plan, preview and release.
Target (issue): each DP figure within 3x of the plain groupby of the same statistic. Also timed:
the per-person row cap alone in plain polars, the floor any person-level DP query pays (OpenDP
runs the same window); "count vs capped" compares the DP count with that floor.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd
import polars as pl

from disclosure import dp as ddp
from disclosure.dp.spend import issue_confirmation
from srs.governance.policy import load_policies

RHO = 0.01
RUNS = 3
TARGET = 3.0
GROUPS = [f"group_{i:02d}" for i in range(40)]


def FakeSpend(spend_id: int, rho: float, delta: float) -> ddp.ConfirmedSpend:  # noqa: N802
    """Stands in for the ledger's confirmation of a committed debit (the engine alone is
    benchmarked here, without a database)."""
    return issue_confirmation(
        spend_id=spend_id, project="bench", researcher="bench", rho=rho, delta=delta
    )


def simulate(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    persons = max(rows * 3 // 10, 1)
    value = rng.uniform(0, 100, rows)
    value[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "person_key": np.char.add("p", rng.integers(0, persons, rows).astype(str)).astype(
                object
            ),
            "group": np.array(GROUPS, dtype=object)[rng.integers(0, len(GROUPS), rows)],
            "value": value,
        }
    )


def best(fn, runs: int = RUNS) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def dp_end_to_end(query, data, policy):
    def run():
        plan = ddp.plan(query, data, policy, rho=RHO)
        preview = plan.preview()
        result = plan.release(FakeSpend(1, plan.rho, plan.delta))
        return preview, result

    return run


def peak_memory_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    policy = load_policies().privacy_budget
    pdf = simulate(args.rows, args.seed)
    pldf = pl.from_pandas(pdf)
    n, persons = len(pdf), pdf["person_key"].nunique()
    count_q = ddp.count(by=["group"], keys={"group": GROUPS})
    mean_q = ddp.mean("value", bounds=(0, 100), by=["group"], keys={"group": GROUPS})

    t: dict[str, float] = {}
    t["pandas count"], _ = best(lambda: pdf.groupby("group").size())
    t["pandas mean"], _ = best(lambda: pdf.groupby("group")["value"].mean())
    t["polars count"], _ = best(lambda: pldf.group_by("group").agg(pl.len()))
    t["polars mean"], _ = best(lambda: pldf.group_by("group").agg(pl.col("value").mean()))
    # The floor of any person-level DP count: the same per-person cap in plain polars, no DP.
    cap = policy.max_rows_per_person
    t["polars capped count"], _ = best(
        lambda: (
            pldf.filter(pl.int_range(pl.len()).shuffle().over("person_key") < cap)
            .group_by("group")
            .agg(pl.len())
        )
    )
    t["DP count (polars in)"], (count_pv, count_res) = best(dp_end_to_end(count_q, pldf, policy))
    t["DP count (pandas in)"], _ = best(dp_end_to_end(count_q, pdf, policy))
    t["DP mean (polars in)"], (mean_pv, mean_res) = best(dp_end_to_end(mean_q, pldf, policy))
    t["DP mean (pandas in)"], _ = best(dp_end_to_end(mean_q, pdf, policy))

    # Each phase on fresh plans, in the order of the end-to-end run (a plan releases once, and
    # its first preview calibrates the noise, which release then reuses).
    phases: dict[str, list[float]] = {"plan": [], "preview": [], "release": []}
    for _ in range(RUNS):
        start = time.perf_counter()
        plan = ddp.plan(count_q, pldf, policy, rho=RHO)
        phases["plan"].append(time.perf_counter() - start)
        start = time.perf_counter()
        plan.preview()
        phases["preview"].append(time.perf_counter() - start)
        start = time.perf_counter()
        plan.release(FakeSpend(1, plan.rho, plan.delta))
        phases["release"].append(time.perf_counter() - start)
    for phase, times in phases.items():
        t[f"  DP count: {phase}"] = min(times)

    print(f"rows: {n:,}   persons: {persons:,}   groups: {len(GROUPS)}   rho per query: {RHO:g}")
    print(f"  {'step (best of 3)':<26} {'seconds':>9} {'rows/s':>14}")
    for step, seconds in t.items():
        print(f"  {step:<26} {seconds:9.3f} {n / seconds:14,.0f}")

    pairs = [
        ("count vs polars", "DP count (polars in)", "polars count"),
        ("count vs pandas", "DP count (pandas in)", "pandas count"),
        ("mean vs polars", "DP mean (polars in)", "polars mean"),
        ("mean vs pandas", "DP mean (pandas in)", "pandas mean"),
        ("count vs capped", "DP count (polars in)", "polars capped count"),
    ]
    verdicts = []
    for label, ours, plain in pairs:
        ratio = t[ours] / t[plain]
        ok = "OK" if ratio <= TARGET else "MISSED"
        print(f"  ratio {label:<16} {ratio:8.1f}x  ({t[ours]:.3f} s / {t[plain]:.3f} s)")
        verdicts.append(f"{label} {ratio:.1f}x {ok}")

    print(f"preview, rho {RHO:g}, {count_pv.confidence:.0%} half-widths:")
    for name, preview in (("DP count", count_pv), ("DP mean", mean_pv)):
        widths = ", ".join(f"{k} +/- {v:.4g}" for k, v in preview.half_widths().items() if v)
        print(
            f"  {name}: {widths} (epsilon {preview.epsilon:.3g}, {preview.rows_per_person} rows/person)"
        )
    table = mean_res.table
    print(
        f"  DP mean interval width per group: median {(table['upper'] - table['lower']).median():.3g}"
        f" (estimates {table['estimate'].min():.2f}..{table['estimate'].max():.2f});"
        f" DP count median {count_res.table['estimate'].median():,.0f} rows/group"
        " (after cutting each person to its row cap)"
    )
    print(f"peak memory (max RSS): {peak_memory_gb():.2f} GB")
    print(f"target DP <= {TARGET:g}x plain groupby: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()

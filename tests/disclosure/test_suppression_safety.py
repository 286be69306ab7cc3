"""After ``protect_table``, no primary cell can be narrowed below its protection level: checked
on random small tables (counts, and sums with negative cells; two and three dimensions) by an
attacker written here from scratch, which builds the table with its margins itself and solves
the min/max linear programs over the published cells."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from disclosure.suppression import TOTAL, protect_table
from disclosure.tables import check_table


@functools.cache
def ons_profile():
    from srs.governance.policy import load_policies

    return load_policies().sdc.profiles["ons-srs"]


def records(shape: tuple[int, ...], seed: int, small_share: float, negative: bool) -> pd.DataFrame:
    """Records whose cell counts are mostly safe, some small; values may be negative."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(10, 40, shape)
    small = rng.random(shape) < small_share
    counts[small] = rng.integers(1, 10, int(small.sum()))
    rows = []
    for position in itertools.product(*(range(n) for n in shape)):
        for _ in range(counts[position]):
            rows.append([f"k{d}_{p}" for d, p in enumerate(position)])
    frame = pd.DataFrame(rows, columns=[f"key{d}" for d in range(len(shape))])
    low = -30 if negative else 0
    frame["amount"] = rng.integers(low, 60, len(frame)).astype(float)
    return frame


def brute_intervals(full: np.ndarray, hidden: np.ndarray, cells: list[tuple]) -> dict:
    """min/max of each of ``cells`` over every table with the published cells of ``full``,
    the same signs, and each margin (last index of a dimension) the sum of the rest."""
    shape = full.shape
    flat = np.arange(full.size).reshape(shape)
    equations = []
    for d in range(len(shape)):
        for rest in itertools.product(*(range(n) for i, n in enumerate(shape) if i != d)):

            def at(k: int, rest=rest, d=d) -> int:
                position = list(rest)
                position.insert(d, k)
                return int(flat[tuple(position)])

            row = np.zeros(full.size)
            row[at(shape[d] - 1)] = 1.0
            for k in range(shape[d] - 1):
                row[at(k)] -= 1.0
            equations.append(row)
    a_eq = np.array(equations)
    values = full.ravel()
    bounds = []
    for cell, value in enumerate(values):
        if hidden.ravel()[cell]:
            bounds.append((0, None) if value >= 0 else (None, 0))
        else:
            bounds.append((value, value))
    found = {}
    for cell in cells:
        objective = np.zeros(full.size)
        objective[flat[cell]] = 1.0
        low = linprog(objective, A_eq=a_eq, b_eq=np.zeros(len(a_eq)), bounds=bounds)
        high = linprog(-objective, A_eq=a_eq, b_eq=np.zeros(len(a_eq)), bounds=bounds)
        assert low.status in (0, 3) and high.status in (0, 3)
        found[cell] = (
            -np.inf if low.status == 3 else low.fun,
            np.inf if high.status == 3 else -high.fun,
        )
    return found


def full_table(frame: pd.DataFrame, keys: list[str], statistic: str, labels: list[list]):
    """The table with margins, built here (not by the code under test), in ``labels`` order."""
    leaves = [label for label in labels]
    shape = tuple(len(d) for d in leaves)
    full = np.zeros(shape)
    grouped = (
        frame.groupby(keys).size() if statistic == "count" else frame.groupby(keys)["amount"].sum()
    )
    for key, value in grouped.items():
        key = key if isinstance(key, tuple) else (key,)
        for subset in itertools.product(*[(k, TOTAL) for k in key]):
            full[tuple(leaves[d].index(label) for d, label in enumerate(subset))] += value
    return full


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from([(2, 2), (3, 4), (5, 3), (4, 6), (2, 3, 2), (3, 2, 3)]),
    seed=st.integers(0, 100_000),
    small_share=st.floats(0.05, 0.5),
    statistic=st.sampled_from(["count", "sum"]),
    negative=st.booleans(),
    columns_from=st.integers(1, 2),
)
def test_no_primary_cell_can_be_narrowed_below_its_protection_level(
    shape, seed, small_share, statistic, negative, columns_from
) -> None:
    profile = ons_profile()
    frame = records(shape, seed, small_share, negative and statistic == "sum")
    keys = list(frame.columns[:-1])
    split = min(columns_from, len(keys) - 1)
    check = check_table(
        frame,
        index=keys[:split],
        columns=keys[split:],
        values="amount" if statistic == "sum" else None,
        statistic=statistic,
        profile=profile,
    )
    result = protect_table(check, profile)
    labels = result.table.dimensions
    full = full_table(frame, keys, statistic, labels)
    assert np.allclose(full.ravel(), result.table.values)
    hidden = result.suppressed.reshape(full.shape)
    primary = [result.table.label(c) for c in np.flatnonzero(result.primary)]
    for row, column in check.failing_cells():
        cell = tuple(
            label
            for part in (row, column)
            for label in (part if isinstance(part, tuple) else (part,))
        )
        assert cell in primary
    positions = [tuple(labels[d].index(label) for d, label in enumerate(cell)) for cell in primary]
    intervals = brute_intervals(full, hidden, positions)
    for position in positions:
        value = full[position]
        level = max(
            profile.secondary_protection_minimum,
            abs(value) * profile.secondary_protection_percent / 100,
        )
        lower, upper = intervals[position]
        assert lower - 1e-6 <= value <= upper + 1e-6
        assert upper - lower >= level - 1e-6, (position, value, lower, upper, level)

"""Secondary suppression, proven by an attacker that solves the linear programs for every
suppressed cell's feasible interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disclosure.suppression import (
    TOTAL,
    SuppressionError,
    feasible_intervals,
    linear_table,
    protection_levels,
    secondary_suppression,
)


@pytest.fixture(scope="module")
def ons(policies):
    return policies.sdc.profiles["ons-srs"]


def mark(table, labels) -> np.ndarray:
    primary = np.zeros(table.values.size, dtype=bool)
    for label in labels:
        primary[table.index_of(label)] = True
    return primary


def assert_protected(result) -> None:
    """The attacker's own check, independent of how the suppression was chosen."""
    lower, upper = feasible_intervals(result.table, result.suppressed)
    for cell in np.flatnonzero(result.primary):
        assert upper[cell] - lower[cell] >= result.levels[cell] - 1e-6, (
            result.table.label(cell),
            lower[cell],
            upper[cell],
            result.levels[cell],
        )
        assert lower[cell] - 1e-6 <= result.table.values[cell] <= upper[cell] + 1e-6


def test_margins_are_built_and_additive() -> None:
    table = linear_table(pd.DataFrame([[1, 2], [3, 4]], index=["a", "b"], columns=["x", "y"]))
    frame = table.as_frame()
    assert (
        frame.loc[TOTAL, TOTAL] == 10 and frame.loc["a", TOTAL] == 3 and frame.loc[TOTAL, "y"] == 6
    )
    assert np.allclose(table.constraints @ table.values, 0)


def test_suppressing_only_the_primary_cell_is_not_enough(ons) -> None:
    table = linear_table(pd.DataFrame([[20, 3], [30, 40]], index=["a", "b"], columns=["x", "y"]))
    primary = mark(table, [("a", "y")])
    lower, upper = feasible_intervals(table, primary)
    cell = table.index_of(("a", "y"))
    assert lower[cell] == upper[cell] == 3  # recomputed exactly from the margins
    result = secondary_suppression(table, primary, ons)
    assert result.suppressed.sum() == 4  # the only rectangle: all four interior cells
    assert_protected(result)


def test_one_dimension_with_a_total(ons) -> None:
    table = linear_table(pd.Series({"a": 4.0, "b": 50.0, "c": 30.0, "d": 200.0}))
    result = secondary_suppression(table, mark(table, [("a",)]), ons)
    hidden = {table.label(c)[0] for c in np.flatnonzero(result.suppressed)}
    assert hidden == {"a", "c"}  # the cheapest partner that gives enough room
    assert_protected(result)


def test_hierarchical_categories(ons) -> None:
    # ICCS-like: section 02 > divisions 0201, 0202; section 05 > 0501, 0502.
    values = pd.DataFrame(
        [[40, 35, 2], [25, 30, 28], [60, 44, 51], [70, 66, 80]],
        index=["0201", "0202", "0501", "0502"],
        columns=["custody", "community", "fine"],
    )
    hierarchy = {"02": ["0201", "0202"], "05": ["0501", "0502"]}
    table = linear_table(values, hierarchies=[hierarchy, None])
    assert (
        table.as_frame().loc["02", "custody"] == 65 and table.as_frame().loc[TOTAL, "fine"] == 161
    )
    result = secondary_suppression(table, mark(table, [("0201", "fine")]), ons)
    assert_protected(result)
    assert result.suppressed.sum() < table.values.size / 2


def test_three_dimensions(ons) -> None:
    rng = np.random.default_rng(4)
    index = pd.MultiIndex.from_product([["m", "f"], ["a", "b", "c"], ["x", "y"]])
    series = pd.Series(rng.integers(20, 80, len(index)).astype(float), index=index)
    series[("m", "b", "y")] = 3
    table = linear_table(series)
    assert table.shape == (3, 4, 3)
    result = secondary_suppression(table, mark(table, [("m", "b", "y")]), ons)
    assert_protected(result)


def test_a_failing_margin_is_protected_too(ons) -> None:
    table = linear_table(
        pd.DataFrame(
            [[30, 40, 50], [2, 1, 3], [60, 70, 80]], index=list("abc"), columns=list("xyz")
        )
    )
    primary = mark(table, [("b", TOTAL), ("b", "x"), ("b", "y"), ("b", "z")])
    result = secondary_suppression(table, primary, ons)
    assert_protected(result)


def test_cost_by_cells_hides_no_more_cells(ons) -> None:
    rng = np.random.default_rng(9)
    values = pd.DataFrame(rng.integers(15, 90, (6, 6)).astype(float))
    values.iloc[1, 2], values.iloc[4, 4] = 2, 5
    table = linear_table(values)
    primary = mark(table, [(1, 2), (4, 4)])
    by_cells = secondary_suppression(table, primary, ons, cost="cells")
    assert_protected(by_cells)
    with pytest.raises(SuppressionError, match="cost is"):
        secondary_suppression(table, primary, ons, cost="colour")


def test_bad_inputs(ons) -> None:
    with pytest.raises(SuppressionError, match="reserved"):
        linear_table(pd.Series({TOTAL: 1.0, "a": 2.0}))
    with pytest.raises(SuppressionError, match="cycle"):
        linear_table(pd.Series({"a": 1.0, "b": 2.0}), hierarchies=[{"p": ["q"], "q": ["p"]}])
    with pytest.raises(SuppressionError, match="not in the table"):
        linear_table(pd.Series({"a": 1.0}), hierarchies=[{"p": ["zz"]}])
    table = linear_table(pd.Series({"a": 1.0, "b": 2.0}))
    with pytest.raises(SuppressionError, match="primary marks"):
        secondary_suppression(table, np.zeros(2, dtype=bool), ons)


def test_protection_levels_slide_with_the_value(ons) -> None:
    assert protection_levels(np.array([3.0, 500.0]), ons).tolist() == [10.0, 50.0]


@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.tuples(st.integers(2, 6), st.integers(2, 6)),
    seed=st.integers(0, 10_000),
    share=st.floats(0.05, 0.4),
)
def test_hypothesis_two_way_tables_are_protected(shape, seed, share) -> None:
    from srs.policy import load_policies

    profile = load_policies().sdc.profiles["ons-srs"]
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 120, shape).astype(float)
    small = rng.random(shape) < share
    values[small] = rng.integers(1, 10, small.sum())
    table = linear_table(pd.DataFrame(values))
    primary = mark(table, [(r, c) for r, c in zip(*np.nonzero(small), strict=True)])
    result = secondary_suppression(table, primary, profile)
    assert_protected(result)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), depth=st.sampled_from([1, 2]))
def test_hypothesis_hierarchical_and_three_way_tables_are_protected(seed, depth) -> None:
    from srs.policy import load_policies

    profile = load_policies().sdc.profiles["ons-srs"]
    rng = np.random.default_rng(seed)
    if depth == 1:
        leaves = [f"d{i}" for i in range(6)]
        hierarchy = {"s1": leaves[:3], "s2": leaves[3:]}
        values = pd.DataFrame(
            rng.integers(0, 80, (6, 3)).astype(float), index=leaves, columns=["x", "y", "z"]
        )
        values.iloc[rng.integers(0, 6), rng.integers(0, 3)] = rng.integers(1, 9)
        table = linear_table(values, hierarchies=[hierarchy, None])
    else:
        index = pd.MultiIndex.from_product([["p", "q"], ["a", "b", "c"], ["x", "y"]])
        values = pd.Series(rng.integers(0, 80, len(index)).astype(float), index=index)
        values.iloc[rng.integers(0, len(index))] = rng.integers(1, 9)
        table = linear_table(values)
    small = (table.values > 0) & (table.values < 10) & table.interior
    result = secondary_suppression(table, small, profile)
    assert_protected(result)


def test_protect_a_checked_table_end_to_end(ons) -> None:
    from disclosure.suppression import protect_table
    from disclosure.tables import check_table

    rng = np.random.default_rng(12)
    data = pd.DataFrame(
        {
            "section": rng.choice(["01", "02", "05", "06"], 900, p=[0.02, 0.38, 0.4, 0.2]),
            "sentence": rng.choice(["custody", "community", "fine"], 900),
        }
    )
    check = check_table(data, index="section", columns="sentence", profile=ons)
    assert check.overall == FAIL_STATUS
    result = protect_table(check, ons)
    published = result.published()
    for row, column in check.failing_cells():
        assert np.isnan(published.loc[row, column])
    assert published.loc[TOTAL, TOTAL] == 900
    assert result.secondary.any()
    assert_protected(result)
    mean = check_table(
        data.assign(v=1.0), index="section", values="v", statistic="mean", profile=ons
    )
    with pytest.raises(SuppressionError, match="no additive margins"):
        protect_table(mean, ons)


FAIL_STATUS = "fail"

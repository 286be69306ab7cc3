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
    from srs.governance.policy import load_policies

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
    from srs.governance.policy import load_policies

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


@pytest.mark.parametrize(
    ("index", "columns"), [(["a", "b"], "c"), ("a", ["b", "c"]), (["a", "b", "c"], None)]
)
def test_a_three_way_check_is_protected_whatever_its_layout(ons, index, columns) -> None:
    from disclosure.suppression import protect_table
    from disclosure.tables import check_table

    rng = np.random.default_rng(21)
    data = pd.DataFrame(
        {
            "a": rng.choice(["x", "y"], 900),
            "b": rng.choice(["p", "q", "r"], 900),
            "c": rng.choice(["u", "v", "w"], 900),
        }
    )
    small = (data.a == "x") & (data.b == "p") & (data.c == "u")
    data = pd.concat([data[~small], data[small].head(3)])
    check = check_table(data, index=index, columns=columns, profile=ons)
    result = protect_table(check, ons)
    assert result.table.shape == (3, 4, 4)
    assert result.primary[result.table.index_of(("x", "p", "u"))]
    assert int(result.primary.sum()) == len(check.failing_cells())
    assert result.published().loc[(TOTAL, TOTAL, TOTAL), "value"] == len(data)
    assert_protected(result)


def test_negative_cells_keep_their_sign_and_intervals_hold_the_true_value(ons) -> None:
    # A sum table (e.g. net payments) with a -5 cell: the attacker knows it is <= 0, not >= 0.
    values = pd.DataFrame(
        [[-5.0, 30.0, 40.0], [20.0, 35.0, 25.0], [30.0, 15.0, 45.0]],
        index=list("abc"),
        columns=list("xyz"),
    )
    table = linear_table(values)
    primary = mark(table, [("a", "x")])
    cell = table.index_of(("a", "x"))
    hidden = primary | mark(table, [("a", "y"), ("b", "x"), ("b", "y")])
    lower, upper = feasible_intervals(table, hidden)
    assert lower[cell] <= -5 <= upper[cell] == 0  # was [0, 20], without the true value
    result = secondary_suppression(table, primary, ons)
    assert_protected(result)
    assert result.upper[cell] <= 0


def test_a_count_table_with_a_negative_cell_is_refused(ons) -> None:
    from disclosure.errors import UnusableValuesError
    from disclosure.suppression import protect_table
    from disclosure.tables import check_table

    data = pd.DataFrame({"r": list("aabb") * 10, "c": list("xyxy") * 10})
    check = check_table(data, index="r", columns="c", profile=ons)
    check.table.loc["a", "y"] = -5
    with pytest.raises(UnusableValuesError, match=r"cell \('a', 'y'\) is -5: counts cannot"):
        protect_table(check, ons)


def test_an_infinite_cell_is_refused(ons) -> None:
    from disclosure.errors import UnusableValuesError

    table = linear_table(pd.DataFrame([[np.inf, 30.0], [20.0, 40.0]]))
    with pytest.raises(UnusableValuesError, match=r"cell \(0, 0\) is inf"):
        secondary_suppression(table, mark(table, [(0, 1)]), ons)


def test_verification_does_not_take_a_certificate_on_trust(ons, monkeypatch) -> None:
    import disclosure.suppression as suppression

    def lying(table, primary, suppressed, levels, costs, certificates):
        # Claims a wide interval for each primary cell but hides nothing more.
        for cell in np.flatnonzero(primary):
            certificates.add(cell, np.array([cell]), np.array([50.0]), np.array([-1.0]))
        return suppressed

    monkeypatch.setattr(suppression, "_rectangles_2d", lying)
    table = linear_table(pd.DataFrame([[20, 3], [30, 40]], index=["a", "b"], columns=["x", "y"]))
    with pytest.raises(SuppressionError, match=r"\('a', 'y'\) can still be narrowed to \[3, 3\]"):
        secondary_suppression(table, mark(table, [("a", "y")]), ons)


def test_certified_intervals_lie_within_the_attackers(ons) -> None:
    rng = np.random.default_rng(2)
    values = rng.integers(15, 90, (6, 7)).astype(float)
    values[1, 2], values[4, 4], values[0, 6] = 2, 5, 7
    table = linear_table(pd.DataFrame(values))
    result = secondary_suppression(table, mark(table, [(1, 2), (4, 4), (0, 6)]), ons)
    lower, upper = feasible_intervals(table, result.suppressed)
    cells = np.flatnonzero(result.primary)
    assert (lower[cells] <= result.lower[cells] + 1e-6).all()
    assert (result.upper[cells] <= upper[cells] + 1e-6).all()
    assert (result.upper[cells] - result.lower[cells] >= result.levels[cells] - 1e-6).all()

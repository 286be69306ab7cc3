"""Protection: suppression, rounding (base, midpoint-6, controlled) and top/bottom coding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from disclosure.protection import (
    ProtectionError,
    bottom_code,
    controlled_round,
    round_midpoint6,
    round_to_base,
    suppress_primary,
    top_code,
    top_code_quantile,
)
from disclosure.tables import check_table


def test_primary_suppression_hides_exactly_the_failing_cells(policies) -> None:
    data = pd.DataFrame(
        {"r": ["a"] * 3 + ["b"] * 30 + ["a"] * 20, "c": ["x"] * 3 + ["x"] * 30 + ["y"] * 20}
    )
    data = pd.concat([data, pd.DataFrame({"r": ["b"] * 15, "c": ["y"] * 15})])
    check = check_table(data, index="r", columns="c", profile=policies.sdc.active)
    safe = suppress_primary(check)
    assert np.isnan(safe.loc["a", "x"])
    assert safe.loc["b", "x"] == 30 and safe.loc["a", "y"] == 20


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 0), (2, 0), (2.5, 5), (3, 5), (7, 5), (7.5, 10), (12, 10)]
)
def test_round_to_base(value, expected) -> None:
    assert round_to_base(pd.DataFrame([[value]]), 5).iat[0, 0] == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 0), (1, 3), (6, 3), (7, 9), (12, 9), (13, 15), (100, 99)]
)
def test_midpoint6(value, expected) -> None:
    assert round_midpoint6(pd.DataFrame([[value]])).iat[0, 0] == expected


def test_rounding_keeps_missing_and_refuses_bad_input() -> None:
    table = pd.DataFrame([[np.nan, 4.0]])
    assert np.isnan(round_to_base(table, 5).iat[0, 0])
    assert np.isnan(round_midpoint6(table).iat[0, 0])
    for base in (0, -5, 2.5):
        with pytest.raises(ProtectionError, match="rounding base"):
            round_to_base(table, base)
    with pytest.raises(ProtectionError, match="negative"):
        round_midpoint6(pd.DataFrame([[-1]]))
    with pytest.raises(ProtectionError, match="complete table"):
        controlled_round(table, 5)


@settings(max_examples=40, deadline=None)
@given(
    values=arrays(
        np.int64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.integers(0, 200)
    ),
    base=st.sampled_from([3, 5, 10]),
)
def test_controlled_rounding_is_additive_and_close(values, base) -> None:
    table = pd.DataFrame(values)
    cells, rows, cols, grand = controlled_round(table, base)
    assert (cells.to_numpy() % base == 0).all()
    assert np.allclose(cells.sum(axis=1), rows) and np.allclose(cells.sum(axis=0), cols)
    assert rows.sum() == grand
    assert (np.abs(cells.to_numpy() - values) < base).all()
    assert abs(grand - values.sum()) < base
    on_base = values % base == 0
    assert (cells.to_numpy()[on_base] == values[on_base]).all()


def test_top_and_bottom_coding() -> None:
    values = pd.Series([1.0, 5.0, 50.0, 500.0])
    assert top_code(values, 100).tolist() == [1, 5, 50, 100]
    assert bottom_code(values, 5).tolist() == [5, 5, 50, 500]
    coded, bound = top_code_quantile(pd.Series(range(101), dtype=float), 0.9)
    assert bound == 90 and coded.max() == 90
    with pytest.raises(ProtectionError, match="quantile"):
        top_code_quantile(values, 1.5)

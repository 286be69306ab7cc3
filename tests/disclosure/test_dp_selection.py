"""A DP query's row selection: conditions and derived columns as plain data, validated strictly
against the grammar, the policy's bounds and the dataset's columns and types, applied row by
row; never an expression or a function."""

from __future__ import annotations

import json
from datetime import date, datetime

import numpy as np
import pandas as pd
import polars as pl
import pytest

from disclosure.dp import DPQueryError, SelectionError, histogram, select_rows
from disclosure.dp.queries import edge_labels
from disclosure.policy import PrivacyBudgetPolicy

POLICY = PrivacyBudgetPolicy(default_project_rho=1, delta=1e-7, max_rho_per_query=0.5)
CASES = pd.DataFrame(
    {
        "person_key": ["a", "b", "c", "d", "e", "f"],
        "sex": ["F", "M", "F", None, "F", "M"],
        "age": [15, 22, 40, 70, None, 33],
        "remanded": [True, False, True, None, False, True],
        "offence_date": [
            date(2020, 1, 2),
            date(2021, 5, 6),
            None,
            date(2022, 3, 3),
            date(2020, 12, 31),
            date(2023, 7, 1),
        ],
        "hearing_at": pd.to_datetime(
            ["2020-02-01", "2021-06-01", None, "2022-04-01", "2021-01-05", "2023-08-01"]
        ),
    }
)


def kept(where=None, derive=None) -> list[str]:
    chosen = select_rows(where, derive, policy=POLICY).apply(CASES).collect()
    return chosen["person_key"].to_list()


@pytest.mark.parametrize(
    ("where", "persons"),
    [
        ([("sex", "==", "F")], ["a", "c", "e"]),
        ([("sex", "!=", "F")], ["b", "f"]),  # a missing sex passes no comparison
        ([("sex", "is null")], ["d"]),
        ([("sex", "is not null"), ("age", ">=", 18)], ["b", "c", "f"]),
        ([("age", "<", 30.5)], ["a", "b"]),
        ([("sex", "in", ["M"])], ["b", "f"]),
        ([("sex", "not in", ["M"])], ["a", "c", "e"]),
        ([("remanded", "==", True)], ["a", "c", "f"]),
        ([("offence_date", ">=", "2021-01-01")], ["b", "d", "f"]),
        ([("hearing_at", "<", "2021-01-01")], ["a"]),
        ([("sex", ">", "F")], ["b", "f"]),
        ([], ["a", "b", "c", "d", "e", "f"]),
    ],
)
def test_conditions_choose_rows(where, persons) -> None:
    assert kept(where) == persons


def test_derived_bands_and_years_can_be_filtered_and_grouped() -> None:
    derive = {
        "age_band": ("band", "age", [18, 35]),
        "offence_year": ("year", "offence_date"),
        "hearing_year": ("year", "hearing_at"),
    }
    selection = select_rows([("offence_year", "in", [2020, 2021])], derive, policy=POLICY)
    chosen = selection.apply(CASES).collect()
    assert chosen["person_key"].to_list() == ["a", "b", "e"]
    assert chosen["age_band"].to_list() == ["< 18", "[18, 35)", None]
    assert chosen["hearing_year"].to_list() == [2020, 2021, 2021]
    assert selection.public_keys() == {"age_band": ("< 18", "[18, 35)", ">= 35")}
    assert kept([("age_band", "==", ">= 35")], derive) == ["c", "d"]


def test_the_spec_round_trips_through_json() -> None:
    where = [("sex", "in", ["F", "M"]), ("age", "is not null"), ("remanded", "!=", False)]
    derive = {"age_band": ("band", "age", [18, 35.5])}
    selection = select_rows(where, derive, policy=POLICY)
    sent = json.loads(json.dumps(selection.to_dict()))
    assert select_rows(sent["where"], sent["derive"], policy=POLICY) == selection


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ([("age", "==", "22")], "'age' holds numbers: compare it with a number"),
        ([("sex", "==", 1)], "'sex' holds texts: compare it with text"),
        ([("remanded", "==", 1)], "compare it with True or False"),
        ([("remanded", ">", True)], "compared with == or != only"),
        ([("offence_date", ">", "31/01/2020")], "compare with an ISO date"),
        ([("offence_date", ">", 2020)], "compare it with an ISO date text"),
        ([("shoe_size", "==", 1)], "the dataset has no column 'shoe_size'"),
        ([("age", "in", [1, "two"])], "compare it with a number"),
    ],
)
def test_values_must_match_their_column(where, message) -> None:
    with pytest.raises(SelectionError, match=message):
        kept(where)


@pytest.mark.parametrize(
    ("where", "derive", "message"),
    [
        ([("sex",)], None, "write a condition as"),
        ([("sex", "==", "F", "x")], None, "write a condition as"),
        ([("sex", "is null", "F")], None, "takes no value"),
        ([("sex", "==")], None, "needs a value"),
        ([(1, "==", "F")], None, "a column is named by text"),
        ([("sex", "==", float("nan"))], None, "finite number"),
        ([("sex", "==", ["F"])], None, "not a list"),
        ([("sex", "in", "F")], None, "non-empty list"),
        ({"sex": "F"}, None, "must be a list of conditions"),
        (None, [("band", "age", [1])], "derive maps new column names"),
        (None, {"b": ("band", "age")}, "a band is \\('band', column, \\[edges\\]\\)"),
        (None, {"b": ("band", "age", [])}, "needs 1 to 200 edges"),
        (None, {"b": ("band", "age", [1, True])}, "band edges are numbers"),
        (None, {"b": ("band", "age", [1, float("inf")])}, "finite numbers"),
        (None, {"y": ("year", "offence_date", "x")}, "a year is \\('year', column\\)"),
        (None, {"person_key": ("year", "offence_date")}, "is not allowed"),
        (None, {"y": ("year", "person_key")}, "privacy unit"),
        (None, {f"d{i}": ("year", "offence_date") for i in range(6)}, "max_derived_columns"),
    ],
)
def test_a_malformed_spec_is_refused_with_how_to_write_it(where, derive, message) -> None:
    with pytest.raises(SelectionError, match=message):
        select_rows(where, derive, policy=POLICY)


def test_expressions_and_functions_are_never_accepted() -> None:
    for value in (pl.col("age") > 1, lambda row: True, print, object(), {"__srs__": "frame"}):
        with pytest.raises(SelectionError):
            select_rows([("sex", "==", value)], policy=POLICY)
        with pytest.raises(SelectionError):
            select_rows([value], policy=POLICY)
        with pytest.raises(SelectionError):
            select_rows(None, {"x": value}, policy=POLICY)
        with pytest.raises(SelectionError):
            select_rows(value, policy=POLICY)


def test_the_policy_bounds_the_spec() -> None:
    tight = POLICY.model_copy(
        update={"max_where_conditions": 2, "max_where_values": 3, "max_where_text_chars": 4}
    )
    with pytest.raises(SelectionError, match="more than 2"):
        select_rows([("sex", "is null")] * 3, policy=tight)
    with pytest.raises(SelectionError, match="at most 3 values"):
        select_rows([("age", "in", [1, 2, 3, 4])], policy=tight)
    with pytest.raises(SelectionError, match="at most 4 characters"):
        select_rows([("sex", "==", "female")], policy=tight)
    assert select_rows([("age", "in", [1, 2, 3]), ("sex", "==", "F")], policy=tight)


def test_a_datetime_column_is_compared_as_a_date() -> None:
    frame = pl.DataFrame(
        {"person_key": ["a", "b"], "at": [datetime(2021, 1, 1, 23), datetime(2021, 1, 2)]}
    )
    chosen = select_rows([("at", "<=", "2021-01-01")], policy=POLICY).apply(frame).collect()
    assert chosen["person_key"].to_list() == ["a"]


WHOLE_AGES = pl.DataFrame(
    {"person_key": ["a", "b", "c", "d"], "age": pl.Series([1, 2, 3, None], dtype=pl.Int32)}
)


@pytest.mark.parametrize(
    ("where", "persons"),
    [
        ([("age", "in", [1, 2.5])], ["a"]),
        ([("age", "in", [1.0, 2, 3.5])], ["a", "b"]),
        ([("age", "not in", [1, 2.5])], ["b", "c"]),
        ([("age", "in", [1, 2**70])], ["a"]),
        ([("age", "==", 2**70)], []),
        ([("age", "<", 2**70)], ["a", "b", "c"]),
        ([("age", ">", -(2**64))], ["a", "b", "c"]),
        ([("age", "<=", 2.5)], ["a", "b"]),
        ([("age", "in", [np.int64(2), np.float32(3.0)])], ["b", "c"]),
    ],
)
def test_whole_and_fractional_numbers_mix_as_the_numbers_they_are(where, persons) -> None:
    # Review of issue 15: [1, 2.5] or 2**70 against a whole-number column raised polars'
    # TypeError; they compare as numbers (as Float64 when they do not all fit an Int64).
    chosen = select_rows(where, policy=POLICY).apply(WHOLE_AGES).collect()
    assert chosen["person_key"].to_list() == persons


@pytest.mark.parametrize(
    "where",
    [[("age", "in", [1, 10**400])], [("age", "==", 10**400)], [("age", "<", -(10**309))]],
)
def test_a_number_beyond_any_float_is_refused_clearly(where) -> None:
    with pytest.raises(SelectionError, match="too large to compare"):
        select_rows(where, policy=POLICY).apply(WHOLE_AGES).collect()


@pytest.mark.parametrize(
    ("edges", "labels"),
    [
        (
            [20.00001, 20.00002, 20.00003, 50],
            (
                "< 20.00001",
                "[20.00001, 20.00002)",
                "[20.00002, 20.00003)",
                "[20.00003, 50)",
                ">= 50",
            ),
        ),
        (
            [1234567, 1234568],
            ("< 1234567", "[1234567, 1234568)", ">= 1234568"),
        ),
        ([1e-300, 2e-300], ("< 1e-300", "[1e-300, 2e-300)", ">= 2e-300")),
        ([18, 25.5], ("< 18", "[18, 25.5)", ">= 25.5")),
    ],
)
def test_band_labels_are_the_shortest_text_of_each_edge_and_never_repeat(edges, labels) -> None:
    # Review of issue 15: {:g} wrote 20.00001 and 20.00002 both as "20", so two bands shared a
    # label and one dropped out of the released table.
    selection = select_rows(None, {"b": ("band", "age", edges)}, policy=POLICY)
    assert selection.public_keys()["b"] == labels
    assert histogram("age", edges).histogram_labels() == labels


def test_edges_whose_labels_would_repeat_are_refused() -> None:
    with pytest.raises(DPQueryError, match="same label"):
        edge_labels([1.0, 1.0, 1.0])
    with pytest.raises(SelectionError, match="within about 1e308"):
        select_rows(None, {"b": ("band", "age", [1, 10**400])}, policy=POLICY)
    with pytest.raises(DPQueryError, match="strictly increasing finite numbers"):
        histogram("age", [1, 10**400])

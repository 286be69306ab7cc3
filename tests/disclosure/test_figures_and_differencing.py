"""Figures through their counts; differencing across releases; ACRO interoperability."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from disclosure.differencing import check_differencing, recode
from disclosure.evidence import FAIL, REVIEW, acro_results_document
from disclosure.figures import check_bar_chart, check_histogram, figure_without_data
from disclosure.tables import check_table


def test_histogram_is_checked_through_its_bins(policies) -> None:
    values = pd.Series(np.concatenate([np.full(50, 5.0), np.full(40, 15.0), [95.0, 96.0]]))
    check, edges = check_histogram(values, policies.sdc.active, bins=[0, 10, 20, 100])
    assert len(edges) == 4
    assert check.status.loc["[20, 100)", "value"] == FAIL  # 2 values
    free, _ = check_histogram(values, policies.sdc.active, bins=5)
    assert any(f.rule == "extreme_values" for f in free.findings)
    assert free.status.iloc[0, 0] in (REVIEW, FAIL)


def test_bar_chart_and_figure_without_data(policies) -> None:
    data = pd.DataFrame({"sentence": ["custody"] * 30 + ["fine"] * 4})
    check = check_bar_chart(data, "sentence", policies.sdc.active)
    assert check.status.loc["fine", "value"] == FAIL
    assert figure_without_data("plot.png")["status"] == REVIEW


BASE = pd.DataFrame({"x": [40, 30], "y": [25, 50]}, index=["a", "b"])


def test_nested_population_exposes_the_units_in_between(policies) -> None:
    new = BASE.copy()
    new.loc["a", "x"] -= 2  # a filter removed two people
    findings = check_differencing(new, {"output_1": BASE}, policies.sdc.active)
    assert [(f.row, f.column, f.difference) for f in findings] == [("a", "x", 2.0)]
    assert "differs by 2" in findings[0].message


def test_large_or_non_nested_differences_are_not_flagged(policies) -> None:
    bigger = BASE + 20
    assert check_differencing(bigger, {"o": BASE}, policies.sdc.active) == []
    mixed = BASE.copy()
    mixed.loc["a", "x"] += 2
    mixed.loc["b", "y"] -= 2
    assert check_differencing(mixed, {"o": BASE}, policies.sdc.active) == []
    assert check_differencing(BASE, {"o": BASE}, policies.sdc.active) == []


def test_recoded_categories_and_margins(policies) -> None:
    divisions = pd.DataFrame({"x": [38, 2, 30], "y": [25, 0, 50]}, index=["0201", "0202", "0501"])
    sections = pd.DataFrame({"x": [40, 30], "y": [25, 50]}, index=["02", "05"])
    assert recode(divisions, rows={"0201": "02", "0202": "02", "0501": "05"}).equals(sections)
    # Releasing the 0201 division alone, after the section table, exposes 0202.
    only_0201 = divisions.loc[["0201", "0501"]]
    findings = check_differencing(
        only_0201,
        {"sections": sections},
        policies.sdc.active,
        row_mapping={"0201": "02", "0501": "05"},
    )
    assert [(f.row, f.column, f.difference) for f in findings] == [("02", "x", 2.0)]
    margin = pd.Series({"a": 63, "b": 80}, name="x")
    assert [
        (f.row, f.difference)
        for f in check_differencing(margin, {"two_way": BASE}, policies.sdc.active)
    ] == [("a", 2.0)]


def test_acro_can_load_our_results(tmp_path, policies) -> None:
    from acro.record import load_records

    data = pd.DataFrame(
        {
            "r": ["a"] * 3 + ["b"] * 30 + ["a"] * 20 + ["b"] * 15,
            "c": ["x"] * 3 + ["x"] * 30 + ["y"] * 20 + ["y"] * 15,
        }
    )
    check = check_table(
        data, index="r", columns="c", profile=policies.sdc.active, profile_name="ons-srs"
    )
    check.table.to_csv(tmp_path / "output_0.csv")
    document = acro_results_document([check.to_acro_record("output_0", files=["output_0.csv"])])
    (tmp_path / "results.json").write_text(json.dumps(document))
    records = load_records(str(tmp_path))
    record = records.results["output_0"]
    assert record.status == "fail"
    assert record.outcome.loc["a", "x"] == "threshold;"
    assert isinstance(record.output[0], pd.DataFrame)

"""Publishable tables: cells and margins checked, failing ones hidden with their complements,
rounding as the profile asks; other statistics only have failing cells hidden."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from disclosure.publication import publishable_table
from disclosure.suppression import TOTAL


def journeys(rows: int = 600, seed: int = 5) -> pd.DataFrame:
    """Cases of 300 people; four cases in a youth court (too few to show) by people aged 15-17."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "person_key": [f"p{i:03d}" for i in rng.integers(0, 300, rows)],
            "sex": rng.choice(["F", "M"], rows),
            "court": rng.choice(["crown", "magistrates"], rows),
            "sentence_months": rng.uniform(0, 60, rows).round(1),
            "reoffended": rng.random(rows) < 0.3,
        }
    )
    frame.loc[:3, "court"] = "youth"
    return frame


def test_tables_are_rounded_as_the_profile_asks(policies) -> None:
    data = journeys().query("court != 'youth'")
    exact = data.groupby(["sex", "court"])["person_key"].nunique().unstack()

    def table(rounding: str) -> tuple[pd.DataFrame, str]:
        profile = policies.sdc.active.model_copy(update={"rounding": rounding})
        published = publishable_table(
            data, index="sex", columns="court", unit="person_key", profile=profile
        )
        return published.table, published.rounding

    unrounded, how = table("none")
    assert how == "none" and (unrounded.loc[["F", "M"], ["crown", "magistrates"]] == exact).all(
        axis=None
    )
    midpoint, how = table("midpoint6")
    assert how == "midpoint6" and (midpoint % 6 == 3).all(axis=None)
    controlled, how = table("controlled")
    assert how == "controlled, base 5" and (controlled % 5 == 0).all(axis=None)
    # Controlled rounding keeps the margins adding up.
    inner = controlled.loc[["F", "M"], ["crown", "magistrates"]]
    assert (inner.sum(axis=1) == controlled.loc[["F", "M"], TOTAL]).all()
    assert (inner.sum(axis=0) == controlled.loc[TOTAL, ["crown", "magistrates"]]).all()


def test_three_way_sum_tables_keep_the_layout_asked_for(policies) -> None:
    published = publishable_table(
        journeys(),
        index=["sex", "court"],
        columns="reoffended",
        values="sentence_months",
        statistic="sum",
        unit="person_key",
        profile=policies.sdc.active,
    )
    frame = published.table
    assert frame.index.names == ["sex", "court"] and frame.columns.name == "reoffended"
    assert list(frame.columns) == [False, True, TOTAL] and len(frame) == 3 * 4
    # Youth cells are hidden, and so are their totals over sex: four people, and a total of so
    # few fails the threshold however wide an attacker's interval for each cell would be.
    assert frame.xs("youth", level="court").isna().all(axis=None)
    assert [TOTAL, "youth", False] in [f["row"] for f in published.margin_findings]
    assert ["F", "youth"] in [row for row, _ in published.suppressed]
    assert published.margins == TOTAL and published.rounding == "base 5"


def test_a_total_over_a_few_people_is_hidden_even_when_its_cells_are(policies) -> None:
    published = publishable_table(
        journeys(), index="court", columns="sex", unit="person_key", profile=policies.sdc.active
    )
    assert published.table.loc["youth"].isna().all()  # the youth row's total too
    assert published.table.loc[TOTAL, TOTAL] % 5 == 0


def test_a_value_seen_only_beside_a_missing_key_is_left_out_as_in_pandas(policies) -> None:
    # Cases with no further action never reach a court: their court is missing, so, as in
    # pandas.crosstab, "nfa" has no complete record and is no row of the table (nor an error).
    data = journeys().query("court != 'youth'").assign(decision="charged")
    data.loc[data.index[-40:], ["decision", "court"]] = ["nfa", None]
    published = publishable_table(
        data, index="decision", columns="court", unit="person_key", profile=policies.sdc.active
    )
    assert list(published.table.index) == ["charged", TOTAL]
    without = publishable_table(
        data.dropna(subset=["court"]),
        index="decision",
        columns="court",
        unit="person_key",
        profile=policies.sdc.active,
    )
    pd.testing.assert_frame_equal(published.table, without.table)


def test_mean_tables_have_failing_cells_hidden_and_no_margins(policies) -> None:
    published = publishable_table(
        journeys(),
        index="court",
        values="sentence_months",
        statistic="mean",
        unit="person_key",
        profile=policies.sdc.active,
    )
    assert published.margins is None and published.rounding == "none"
    assert np.isnan(published.table.loc["youth", "sentence_months"])
    assert published.suppressed == [["youth", "sentence_months"]]
    assert published.table.loc["crown", "sentence_months"] == pytest.approx(
        journeys().query("court == 'crown'").groupby("person_key")["sentence_months"].sum().mean()
    )


def test_an_empty_frame_is_refused_plainly(policies) -> None:
    from disclosure.errors import EmptyTableError

    empty = journeys().iloc[:0]
    for statistic, values in (("count", None), ("sum", "sentence_months")):
        with pytest.raises(EmptyTableError, match="has no records"):  # was an IndexError
            publishable_table(
                empty,
                index="sex",
                columns="court",
                values=values,
                statistic=statistic,
                profile=policies.sdc.active,
            )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.inf, r"column 'sentence_months' has 1 infinite value\(s\), e.g. inf \(row 7\)"),
        ("1,5", r"column 'sentence_months' has 1 value\(s\) that are not numbers, e.g. '1,5'"),
    ],
)
def test_sums_over_unusable_values_are_refused(policies, bad, message) -> None:
    from disclosure.errors import UnusableValuesError

    data = journeys().astype({"sentence_months": object})
    data.loc[7, "sentence_months"] = bad
    with pytest.raises(UnusableValuesError, match=message):  # was a TypeError, or a wrong sum
        publishable_table(
            data,
            index="sex",
            columns="court",
            values="sentence_months",
            statistic="sum",
            profile=policies.sdc.active,
        )


def test_dates_and_labels_that_read_the_same_are_refused_before_publication(policies) -> None:
    from disclosure.errors import UnusableValuesError

    data = journeys()
    data["sentenced_on"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(
        data["sentence_months"] * 30, unit="D"
    )
    with pytest.raises(UnusableValuesError, match="'sentenced_on' holds dates"):  # was TypeError
        publishable_table(
            data,
            index="sex",
            columns="court",
            values="sentenced_on",
            statistic="sum",
            profile=policies.sdc.active,
        )
    # Court 1 and court "1" were published as two columns headed 1 ('sex,1,1,Total').
    data["court"] = [1, "1"] * (len(data) // 2)
    with pytest.raises(UnusableValuesError, match="key column 'court' .* \\(1 and '1'\\)"):
        publishable_table(data, index="sex", columns="court", profile=policies.sdc.active)


def test_three_way_count_tables_are_protected(policies) -> None:
    published = publishable_table(
        journeys(),
        index=["sex", "court"],
        columns="reoffended",
        unit="person_key",
        profile=policies.sdc.active.model_copy(update={"rounding": "none"}),
    )
    frame = published.table
    assert frame.xs("youth", level="court").isna().all(axis=None)
    shown = frame.loc[("F", "crown")]
    assert shown[TOTAL] == shown[False] + shown[True]

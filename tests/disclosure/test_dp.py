"""DP queries with person-level privacy: bounding each person's rows, honest error bounds and
noise, missing values, quantiles, tables, thresholds on private keys, guards against known
OpenDP pitfalls, accuracy targets, release discipline and the JSON record.

OpenDP's noise cannot be seeded, so statements about noisy figures hold with a tolerance of many
standard deviations (or at a confidence level near 1); the data are drawn from fixed seeds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from disclosure.dp import (
    DPQuery,
    DPQueryError,
    DPReleaseRefused,
    PrivacyUnitFixed,
    count,
    crosstab,
    histogram,
    mean,
    median,
    on_nano_grid,
    plan,
    quantiles,
    sum_of,
    variance,
)
from disclosure.dp.spend import ConfirmedSpend, issue_confirmation
from disclosure.policy import PrivacyBudgetPolicy

ROWS_PER_PERSON = 3
POLICY = PrivacyBudgetPolicy(
    default_project_rho=1, delta=1e-7, max_rho_per_query=1, max_rows_per_person=ROWS_PER_PERSON
)
# The largest rho a policy allows: a count's noise is then below one half (sigma 0.21), so a
# released count is exact up to +/- 1 with overwhelming probability.
HUGE_RHO = 100
NEAR_EXACT = POLICY.model_copy(
    update={"default_project_rho": HUGE_RHO, "max_rho_per_query": HUGE_RHO}
)
# Error bounds at 99.99%: a statement that the true value lies inside is then almost never
# false by chance.
SURE = POLICY.model_copy(update={"confidence_level": 0.9999})


def Spend(spend_id: int, rho: float, delta: float = 0.0) -> ConfirmedSpend:  # noqa: N802
    """A spend as the budget ledger confirms it (``srs.governance.budget.confirm_spend`` in the
    environment; the engine is pure, so its tests stand in for the ledger)."""
    return issue_confirmation(
        spend_id=spend_id, project="P001", researcher="ana", rho=rho, delta=delta
    )


@dataclass(frozen=True)
class LookAlike:
    """Everything a spend shows, without the ledger's confirmation."""

    spend_id: int
    rho: float
    delta: float = 0.0


def persons(n: int, prefix: str = "p") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def release(query: DPQuery, data: pd.DataFrame, policy: PrivacyBudgetPolicy, rho: float):
    """Plan and release ``query`` against a spend that exactly covers it."""
    dp_plan = plan(query, data, policy, rho=rho)
    return dp_plan.release(Spend(spend_id=1, rho=dp_plan.rho, delta=dp_plan.delta))


def released_estimate(query: DPQuery, data: pd.DataFrame) -> float:
    table = release(query, data, NEAR_EXACT, HUGE_RHO).table
    assert len(table) == 1
    return float(table["estimate"].iloc[0])


# ---------------------------------------------------------------------- person-level bounding
def light_and_heavy(heavy_value: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """100 persons with one case each (value 1), and the same plus one person with 50 cases."""
    light = pd.DataFrame({"person_key": persons(100), "v": 1.0})
    heavy = pd.DataFrame({"person_key": ["heavy"] * 50, "v": heavy_value})
    return light, pd.concat([light, heavy], ignore_index=True)


def test_a_person_with_many_rows_adds_at_most_max_rows_per_person_to_a_count() -> None:
    without_heavy, with_heavy = light_and_heavy(heavy_value=1.0)
    noise = 1  # |integer Gaussian noise| >= 2 at sigma 0.21 has probability ~exp(-44)
    total = released_estimate(count(), with_heavy)
    assert abs(total - (100 + ROWS_PER_PERSON)) <= noise  # not 150
    difference = total - released_estimate(count(), without_heavy)
    assert abs(difference) <= ROWS_PER_PERSON + 2 * noise


def test_a_person_with_many_rows_changes_a_sum_by_at_most_max_rows_times_the_upper_bound() -> None:
    upper = 10.0
    # The heavy person's values lie far above the bound: clipping and row bounding together
    # cap their contribution at ROWS_PER_PERSON * upper.
    without_heavy, with_heavy = light_and_heavy(heavy_value=1000.0)
    query = sum_of("v", bounds=(0, upper))
    scale = plan(query, with_heavy, NEAR_EXACT, rho=HUGE_RHO).preview().noise[0].scale
    tolerance = 6 * scale
    total = released_estimate(query, with_heavy)
    assert abs(total - (100 + ROWS_PER_PERSON * upper)) <= tolerance
    difference = total - released_estimate(query, without_heavy)
    assert abs(difference) <= ROWS_PER_PERSON * upper + 2 * tolerance


def test_the_privacy_unit_is_the_policys_whatever_the_query_carries() -> None:
    # Review of issue 15: with a per-row column as the query's own "unit", the heavy person's
    # 50 cases counted 50 times. The unit and the cap are the policy's; a query object with
    # attributes of its own (or a subclass) is rebuilt and runs under them.
    _, with_heavy = light_and_heavy(heavy_value=1.0)
    with_heavy["row"] = range(len(with_heavy))
    tampered = count()
    object.__setattr__(tampered, "identifier", "row")
    object.__setattr__(tampered, "max_rows_per_person", 1000)

    class OwnUnit(DPQuery):
        identifier = "row"

    for query in (tampered, OwnUnit("count")):
        assert abs(released_estimate(query, with_heavy) - (100 + ROWS_PER_PERSON)) <= 1
    with pytest.raises(PrivacyUnitFixed, match="policy fixes"):
        count(identifier="row")
    with pytest.raises(DPQueryError, match="built with disclosure.dp"):
        plan({"statistic": "count"}, with_heavy, POLICY, rho=0.1)


def test_a_dataset_named_in_the_policy_has_its_own_privacy_unit() -> None:
    policy = NEAR_EXACT.model_copy(update={"privacy_units": {"linked/victims": "victim_key"}})
    victims = pd.DataFrame({"victim_key": ["v1"] * 50 + persons(10), "person_key": persons(60)})
    prepared = plan(count(), victims, policy, rho=HUGE_RHO, dataset="linked/victims")
    assert prepared.unit == "victim_key" and prepared.preview().privacy_unit == "victim_key"
    table = prepared.release(Spend(spend_id=1, rho=prepared.rho)).table
    assert abs(float(table["estimate"].iloc[0]) - (10 + ROWS_PER_PERSON)) <= 1
    with pytest.raises(DPQueryError, match="'victim_key' is the privacy unit"):
        plan(count(by=["victim_key"]), victims, policy, rho=0.1, dataset="linked/victims")


# ---------------------------------------------------------------------- honest error and noise
@pytest.fixture(scope="module")
def noisy_group_counts() -> tuple[pd.DataFrame, float]:
    """1,000 released counts at rho 0.01 with their true counts, and OpenDP's stated scale.

    100 releases of a count by 10 public groups, each on freshly drawn data (50 persons with 1
    to 3 cases each, so row bounding changes nothing); each cell's noise is an independent draw.
    """
    rng = np.random.default_rng(20240611)
    keys = [f"g{i}" for i in range(10)]
    query = count(by=["group"], keys={"group": keys})
    cells = []
    for _ in range(100):
        cases = rng.integers(1, ROWS_PER_PERSON + 1, size=50)
        data = pd.DataFrame(
            {
                "person_key": np.repeat(persons(50), cases),
                "group": rng.choice(keys, size=cases.sum()),
            }
        )
        dp_plan = plan(query, data, POLICY, rho=0.01)
        table = dp_plan.release(Spend(spend_id=1, rho=0.01)).table.set_index("group")
        table["truth"] = data.groupby("group").size().reindex(keys, fill_value=0)
        cells.append(table)
    return pd.concat(cells), dp_plan.preview().noise[0].scale


def test_count_intervals_cover_the_true_count_at_the_stated_confidence(noisy_group_counts) -> None:
    cells, _ = noisy_group_counts
    assert len(cells) == 1000
    covered = (cells["lower"] <= cells["truth"]) & (cells["truth"] <= cells["upper"])
    # 95% stated; 1,000 trials have a standard error of 0.007.
    assert 0.93 <= covered.mean() <= 0.99


def test_count_noise_matches_the_scale_opendp_states(noisy_group_counts) -> None:
    cells, scale = noisy_group_counts
    assert scale == pytest.approx(ROWS_PER_PERSON / math.sqrt(2 * 0.01))
    errors = cells["estimate"] - cells["truth"]
    assert math.sqrt((errors**2).mean()) == pytest.approx(scale, rel=0.10)
    assert abs(errors.mean()) <= 4 * scale / math.sqrt(len(errors))  # unbiased


# ---------------------------------------------------------------------- mean and variance
@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    """500 persons, one case each, with a value in [0, 100] recorded to one decimal."""
    values = np.random.default_rng(4).uniform(0, 100, 500).round(1)
    return pd.DataFrame({"person_key": persons(500), "v": values})


@pytest.mark.parametrize(
    ("statistic", "truth", "max_width"),
    [(mean, np.mean, 10.0), (variance, np.var, 400.0)],
    ids=["mean", "variance"],
)
def test_mean_and_variance_intervals_contain_the_true_value(
    scores, statistic, truth, max_width
) -> None:
    table = release(statistic("v", bounds=(0, 100), decimals=1), scores, SURE, rho=1).table
    row = table.iloc[0]
    assert row["lower"] <= truth(scores["v"]) <= row["upper"]
    assert row["lower"] <= row["estimate"] <= row["upper"]
    assert row["upper"] - row["lower"] < max_width  # an interval, not the whole range


@pytest.mark.parametrize(
    ("statistic", "truth", "tolerance"),
    [(mean, np.mean, 0.5), (variance, np.var, 10.0)],  # about 7 standard errors each
    ids=["mean", "variance"],
)
def test_mean_and_variance_are_close_at_a_huge_rho(scores, statistic, truth, tolerance) -> None:
    estimate = released_estimate(statistic("v", bounds=(0, 100), decimals=1), scores)
    assert estimate == pytest.approx(truth(scores["v"]), abs=tolerance)


@pytest.mark.parametrize("missing", [np.nan, None], ids=["nan", "none"])
def test_mean_leaves_out_missing_values_instead_of_imputing_the_midpoint(missing) -> None:
    values = [10.0] * 500 + [missing] * 1500
    data = pd.DataFrame({"person_key": persons(2000), "v": pd.Series(values, dtype=object)})
    if missing is not None:
        data["v"] = data["v"].astype(float)
    # Imputing the bounds' midpoint (50) would give (500 * 10 + 1500 * 50) / 2000 = 40.
    assert released_estimate(mean("v", bounds=(0, 100)), data) == pytest.approx(10, abs=1)


# ---------------------------------------------------------------------- quantiles
@pytest.fixture(scope="module")
def zero_to_999() -> pd.DataFrame:
    return pd.DataFrame({"person_key": persons(1000), "v": np.arange(1000.0)})


def test_median_is_near_the_true_median_at_a_huge_rho(zero_to_999) -> None:
    table = release(median("v", bounds=(0, 1000)), zero_to_999, NEAR_EXACT, HUGE_RHO).table
    spacing = 1000 / (POLICY.quantile_candidates - 1)
    assert abs(table["estimate"].iloc[0] - 500) <= 3 * spacing
    assert 0 < table["rank_error"].iloc[0] < math.inf


def test_quantiles_are_snapped_to_the_1024_grid(zero_to_999) -> None:
    query = quantiles("v", [0.5, 0.9], bounds=(0, 1000))
    assert query.quantiles == (0.5, 922 / 1024)
    table = release(query, zero_to_999, NEAR_EXACT, HUGE_RHO).table
    assert table["quantile"].tolist() == [0.5, 0.900390625]
    assert abs(table["estimate"].iloc[1] - 900) <= 3 * 1000 / (POLICY.quantile_candidates - 1)
    assert ((table["rank_error"] > 0) & np.isfinite(table["rank_error"])).all()


def test_quantiles_that_coincide_after_snapping_are_refused() -> None:
    with pytest.raises(DPQueryError, match="repeat at a 1/1024 grid"):
        quantiles("v", [0.9, 0.9001], bounds=(0, 1000))


# ---------------------------------------------------------------------- histograms and tables
def test_histogram_has_open_end_bins_and_every_bin_even_when_empty() -> None:
    data = pd.DataFrame({"person_key": persons(4), "v": [-5.0, 10.0, 20.0, 30.0]})
    query = histogram("v", [0, 50, 100])
    labels = ("< 0", "[0, 50)", "[50, 100)", ">= 100")
    assert query.histogram_labels() == labels
    table = release(query, data, NEAR_EXACT, HUGE_RHO).table
    assert sorted(table["v_bin"]) == sorted(labels)
    by_bin = table.set_index("v_bin")["estimate"]
    assert by_bin.to_dict() == pytest.approx(
        {"< 0": 1, "[0, 50)": 3, "[50, 100)": 0, ">= 100": 0}, abs=1
    )


def test_three_way_crosstab_has_every_combination_of_public_keys() -> None:
    data = pd.DataFrame(
        {
            "person_key": persons(6),
            "sex": list("FMFMFM"),
            "court": list("ccmmcc"),
            "year": list("123123"),
        }
    )
    keys = {"sex": ["F", "M"], "court": ["c", "m", "y"], "year": ["1", "2", "3", "4"]}
    table = release(crosstab("sex", "court", "year", keys=keys), data, POLICY, rho=0.5).table
    assert len(table) == 2 * 3 * 4
    assert not table.duplicated(["sex", "court", "year"]).any()


def test_four_way_crosstab_is_refused() -> None:
    with pytest.raises(DPQueryError, match="at most 3 group columns"):
        crosstab("sex", "court", "year", "region")


# ---------------------------------------------------------------------- private keys
def test_private_keys_spend_a_delta_and_release_only_groups_above_the_threshold() -> None:
    data = pd.DataFrame(
        {
            "person_key": persons(401),
            "court": ["crown"] * 200 + ["magistrates"] * 200 + ["youth"],
        }
    )
    dp_plan = plan(count(by=["court"]), data, POLICY, rho=0.5)
    assert dp_plan.delta == POLICY.key_release_delta
    preview = dp_plan.preview()
    assert preview.noise[0].threshold is not None
    table = dp_plan.release(Spend(spend_id=1, rho=0.5, delta=POLICY.key_release_delta)).table
    assert sorted(table["court"]) == ["crown", "magistrates"]  # the one-person group is withheld


# ---------------------------------------------------------------------- OpenDP pitfalls
@pytest.mark.parametrize(
    ("query", "sensitivity"),
    [
        (count(by=["g"], keys={"g": ["a", "b"]}), ROWS_PER_PERSON),
        (sum_of("v", bounds=(0, 10), by=["g"], keys={"g": ["a", "b"]}), ROWS_PER_PERSON * 10),
    ],
    ids=["count", "sum"],
)
def test_grouped_noise_is_calibrated_to_a_whole_persons_rows(query, sensitivity) -> None:
    # OpenDP issue 2945: under a margin with invariant="keys", grouped sums under-count their
    # sensitivity. A person's rows can change a cell by sensitivity, so the Gaussian sigma at
    # the whole rho must be at least sensitivity / sqrt(2 rho).
    rho = 0.5
    data = pd.DataFrame({"person_key": persons(30), "v": 5.0, "g": list("ab") * 15})
    line = plan(query, data, POLICY, rho=rho).preview().noise[-1]
    assert line.scale >= sensitivity / math.sqrt(2 * rho) * (1 - 1e-9)


def test_a_spend_exactly_meeting_the_plan_releases() -> None:
    # OpenDP issue 2789: float composition can refuse a loss exactly equal to the remainder.
    data = pd.DataFrame({"person_key": persons(20)})
    dp_plan = plan(count(), data, POLICY, rho=0.1)
    assert len(dp_plan.release(Spend(spend_id=7, rho=0.1)).table) == 1
    assert on_nano_grid(0.05 * 3) == on_nano_grid(0.15)


def test_nan_in_a_float_column_is_left_out_of_a_sum() -> None:
    data = pd.DataFrame({"person_key": persons(150), "v": [1.0] * 100 + [math.nan] * 50})
    query = sum_of("v", bounds=(0, 10))
    scale = plan(query, data, NEAR_EXACT, rho=HUGE_RHO).preview().noise[0].scale
    assert abs(released_estimate(query, data) - 100) <= 6 * scale  # a midpoint would add 250


# ---------------------------------------------------------------------- accuracy targets
def test_accuracy_target_gives_the_smallest_rho_that_meets_it() -> None:
    data = pd.DataFrame({"person_key": persons(50)})
    dp_plan = plan(count(), data, POLICY, accuracy=20.0)
    assert dp_plan.preview().half_widths()["count"] <= 20
    cheaper = plan(count(), data, POLICY, rho=0.9 * dp_plan.rho)
    assert cheaper.preview().half_widths()["count"] > 20


def test_accuracy_targets_are_refused_for_a_mean() -> None:
    data = pd.DataFrame({"person_key": persons(50), "v": 1.0})
    with pytest.raises(DPQueryError, match="accuracy targets are offered for"):
        plan(mean("v", bounds=(0, 10)), data, POLICY, accuracy=1.0)


def test_rho_and_accuracy_together_are_refused() -> None:
    data = pd.DataFrame({"person_key": persons(50)})
    with pytest.raises(DPQueryError, match="either rho .* or accuracy"):
        plan(count(), data, POLICY, rho=0.1, accuracy=20.0)


# ---------------------------------------------------------------------- release discipline
COURTS = pd.DataFrame({"person_key": persons(20), "court": ["crown", "youth"] * 10, "v": 3.0})


def test_release_needs_a_committed_spend_that_covers_the_plan() -> None:
    dp_plan = plan(count(), COURTS, POLICY, rho=0.1)
    with pytest.raises(DPReleaseRefused, match="no committed spend"):
        dp_plan.release(None)
    with pytest.raises(DPReleaseRefused, match="no committed spend"):
        dp_plan.release(LookAlike(spend_id=1, rho=0.1))
    with pytest.raises(DPReleaseRefused, match="covers rho 0.09"):
        dp_plan.release(Spend(spend_id=1, rho=0.09))
    # A refused release spends nothing: the plan still releases once with a proper spend.
    assert len(dp_plan.release(Spend(spend_id=1, rho=0.1)).table) == 1


def test_a_look_alike_copy_or_forgery_of_a_spend_releases_nothing() -> None:
    import copy
    import pickle

    dp_plan = plan(count(), COURTS, POLICY, rho=0.1)

    class Attributes:
        spend_id, rho, delta = 1, 0.1, 0.0

    forged = object.__new__(ConfirmedSpend)  # bypasses the refusing constructor
    for attribute, value in (("spend_id", 1), ("rho", 0.1), ("delta", 0.0)):
        object.__setattr__(forged, attribute, value)
    for fake in (LookAlike(spend_id=1, rho=0.1), Attributes(), forged):
        with pytest.raises(DPReleaseRefused):
            dp_plan.release(fake)
    with pytest.raises(DPReleaseRefused, match="issued only by the budget ledger"):
        ConfirmedSpend(spend_id=1, rho=0.1, delta=0.0)
    with pytest.raises(TypeError, match="cannot be subclassed"):
        type("Mine", (ConfirmedSpend,), {})
    genuine = Spend(spend_id=3, rho=0.1)
    with pytest.raises(TypeError, match="cannot be copied or pickled"):
        copy.copy(genuine)
    with pytest.raises(TypeError, match="cannot be copied or pickled"):
        pickle.dumps(genuine)
    with pytest.raises(AttributeError, match="read-only"):
        genuine.rho = 100  # type: ignore[misc]
    assert dp_plan.release(genuine).spend_id == 3


def test_a_confirmed_spend_pays_for_one_release_only() -> None:
    spend = Spend(spend_id=4, rho=0.1)
    plan(count(), COURTS, POLICY, rho=0.1).release(spend)
    with pytest.raises(DPReleaseRefused, match="not a confirmation the ledger has outstanding"):
        plan(count(), COURTS, POLICY, rho=0.1).release(spend)


@pytest.mark.parametrize("rho", ["0.01", True, None, float("nan"), -0.1, 0, [0.01]])
def test_rho_must_be_a_positive_finite_number(rho) -> None:
    with pytest.raises(DPQueryError, match="positive, finite rho given as a number"):
        plan(count(), COURTS, POLICY, rho=rho) if rho is not None else on_nano_grid(rho)


@pytest.mark.parametrize("accuracy", ["20", True, float("inf"), 0])
def test_accuracy_must_be_a_positive_finite_number(accuracy) -> None:
    with pytest.raises(DPQueryError, match="accuracy must be a positive, finite number"):
        plan(count(), COURTS, POLICY, accuracy=accuracy)


def test_private_keys_need_a_spend_that_covers_their_delta() -> None:
    dp_plan = plan(count(by=["court"]), COURTS, POLICY, rho=0.1)
    with pytest.raises(DPReleaseRefused, match="delta 1e-09"):
        dp_plan.release(Spend(spend_id=1, rho=0.1, delta=0.0))


def test_a_plan_releases_only_once() -> None:
    dp_plan = plan(count(), COURTS, POLICY, rho=0.1)
    dp_plan.release(Spend(spend_id=1, rho=0.1))
    with pytest.raises(DPReleaseRefused, match="already released"):
        dp_plan.release(Spend(spend_id=2, rho=0.1))


@pytest.mark.parametrize(
    ("make_plan", "message"),
    [
        (
            lambda: plan(count(by=["sex"], keys={"sex": ["F"]}), COURTS, POLICY, rho=0.1),
            r"columns not in the data: \['sex'\]",
        ),
        (lambda: sum_of("v", bounds=(5, 5)), r"lower < upper, got \[5, 5\]"),
        (lambda: sum_of("v", bounds=(10, 0)), "lower < upper"),
        (lambda: mean("v", bounds=(math.nan, 10)), r"finite with lower < upper, got \[nan, 10\]"),
        (lambda: count(by=["court"], keys={"court": []}), "keys for 'court' are empty"),
        (
            lambda: count(keys={"court": ["crown"]}),
            r"keys given for columns not grouped by: \['court'\]",
        ),
        (
            lambda: plan(count(by=["person_key"]), COURTS, POLICY, rho=0.1),
            "'person_key' is the privacy unit",
        ),
        (lambda: DPQuery("maximum", "v"), "statistic 'maximum' is not one of"),
        (lambda: quantiles("v", [1.0], bounds=(0, 10)), r"quantiles must lie in \(0, 1\), got 1.0"),
        (lambda: quantiles("v", [0.0], bounds=(0, 10)), r"quantiles must lie in \(0, 1\), got 0.0"),
        (lambda: histogram("v", [10, 5]), "edges must be at least two strictly increasing"),
        (lambda: histogram("v", [10]), "edges must be at least two strictly increasing"),
        (
            lambda: plan(sum_of("v"), COURTS, POLICY, rho=0.1),
            "no clipping bounds for 'v'",
        ),
        (
            lambda: plan(count(), COURTS.to_dict("records"), POLICY, rho=0.1),
            "data must be a pandas or polars data frame, not list",
        ),
    ],
    ids=[
        "missing-column",
        "equal-bounds",
        "reversed-bounds",
        "nan-bounds",
        "empty-keys",
        "keys-not-grouped",
        "group-by-person",
        "unknown-statistic",
        "quantile-one",
        "quantile-zero",
        "edges-decreasing",
        "one-edge",
        "no-bounds",
        "not-a-data-frame",
    ],
)
def test_malformed_queries_and_data_are_refused_with_a_reason(make_plan, message) -> None:
    with pytest.raises(DPQueryError, match=message):
        make_plan()


# ---------------------------------------------------------------------- output record
def test_result_serialises_to_json_with_its_spend_and_evidence() -> None:
    query = mean("v", bounds=(0, 10), by=["court"], keys={"court": ["crown", "youth", "family"]})
    dp_plan = plan(query, COURTS, POLICY, rho=0.2)
    result = dp_plan.release(Spend(spend_id=42, rho=0.2))
    record = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert record["differentially_private"] is True
    assert record["spend_id"] == 42
    assert record["rho"] == 0.2
    assert record["epsilon"] == pytest.approx(POLICY.epsilon_at(0.2))
    # Rows follow the public keys' own order (histogram bins stay in numeric order).
    assert [row["court"] for row in record["rows"]] == ["crown", "youth", "family"]
    assert set(record["rows"][0]) == {"court", "estimate", "lower", "upper"}
    assert record["notes"] == result.notes
    assert any("not imputed" in note for note in record["notes"])
    assert any("not among them are in no cell" in note for note in record["notes"])
    # Every result says its bounds cover the noise, not the per-person cap.
    assert any(
        f"random sample of {ROWS_PER_PERSON}" in note and "not the cap" in note
        for note in record["notes"]
    )


def test_opendp_sampled_group_truncation_still_fails_so_persons_are_bounded_by_total_rows() -> None:
    # Canary for a workaround: OpenDP 0.16's truncate_num_groups(keep="sample") builds a struct
    # whose two fields share a name, and polars refuses it. We therefore bound each person by
    # their total rows. When an OpenDP upgrade makes this pass, revisit the engine's bounding.
    import opendp.prelude as opendp
    import polars as pl

    data = pl.LazyFrame({"person_key": ["a", "a", "b"], "g": ["x", "y", "x"]})
    context = opendp.Context.compositor(
        data=data,
        privacy_unit=opendp.unit_of(contributions=1, identifier=pl.col("person_key")),
        privacy_loss=opendp.loss_of(rho=0.5),
        split_evenly_over=1,
        margins=[opendp.polars.Margin(by=[], max_length=100)],
    )
    query = (
        context.query()
        .truncate_per_group(1, by=["g"])
        .truncate_num_groups(1, by=["g"])
        .group_by("g")
        .agg(opendp.len(signed=True))
        .with_keys(pl.LazyFrame({"g": ["x", "y"]}))
    )
    with pytest.raises(opendp.OpenDPException, match="multiple fields with name"):
        query.release().collect()


def test_variance_bounds_use_the_real_range_of_centred_values() -> None:
    # Bounds 0..99 centre at 49, so centred values run from -49 to +50, not +/-49.5. With exact
    # (noise-free) sums of 10,000 values at 98 and 10,000 at 99 (variance 0.25), interval
    # arithmetic on a clipped range would put the upper bound at 0, below the truth.
    from disclosure.dp.engine import _variance_interval
    from disclosure.dp.results import NoiseLine

    data = pd.DataFrame({"person_key": persons(4), "v": [98.0, 99.0] * 2})
    dp_plan = plan(variance("v", bounds=(0, 99)), data, POLICY, rho=0.1)
    raw = pd.DataFrame(
        {
            "count": [20_000],
            "sum": [10_000 * 49 + 10_000 * 50],
            "sum_of_squares": [10_000 * (49**2 + 50**2)],
        }
    )
    exact = {
        name: NoiseLine(name, "", "", 0.0, 0.0, None, 0.05)
        for name in ("count", "sum", "sum_of_squares")
    }
    estimate, lower, upper = _variance_interval(dp_plan, raw, exact)
    assert estimate.iloc[0] == pytest.approx(0.25)
    assert lower.iloc[0] <= 0.25 <= upper.iloc[0]

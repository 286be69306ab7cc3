"""The fidelity report leaves the environment with real-side figures only as they pass the SDC
rules: small real cells suppressed, counts rounded per profile, rates from the protected counts,
verdicts judged on the true figures, and nothing else real (SDMetrics details, real extremes,
rare real categories) in the exported ``fidelity.json`` or ``report.html``."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from synthetic_fixtures import stand_in_replica

from disclosure.policy import SDCProfile
from srs.governance.policy import load_policies
from synthetic.export import export_replica
from synthetic.fidelity import NOT_CONTROLLED, evaluate_fidelity, publishable_fidelity
from synthetic.real_figures import protected_shares
from synthetic.report import render_report
from synthetic.research_questions import (
    compare_research_questions,
    protected_answers,
    published_research_questions,
)

REOFFENDING = "linked/reoffending"
PASSED_PRIVACY = {"passed": True, "failures": [], "datasets": {}}
TOLERANCE = 5.0


def _reoffending(groups: dict[str, list[tuple[int, int]]], prefix: str, days: int) -> pd.DataFrame:
    """Index convictions by sentence type; each group lists persons as (convictions, of which
    reoffended). ``days`` offsets the days to reoffence, so real and synthetic values differ."""
    rows = []
    for sentence, persons in groups.items():
        for number, (convictions, reoffended) in enumerate(persons):
            for conviction in range(convictions):
                again = conviction < reoffended
                rows.append(
                    {
                        "person_key": f"{prefix}-{sentence}-{number}",
                        "case_key": f"{prefix}-{sentence}-{number}-{conviction}",
                        "index_date": pd.Timestamp("2019-01-01") + pd.Timedelta(days=len(rows)),
                        "sentence_type": sentence,
                        "sentence_months": 6.0 if sentence == "custody" else np.nan,
                        "age_at_index": 20 + len(rows) % 40,
                        "sex": "F" if len(rows) % 3 else "M",
                        "iccs_section": f"0{1 + len(rows) % 8}",
                        "follow_up_complete": True,
                        "reoffended": again,
                        "proven_reoffence": again and conviction % 2 == 0,
                        "days_to_reoffence": days + 7 * len(rows) if again else None,
                    }
                )
    frame = pd.DataFrame(rows)
    frame["days_to_reoffence"] = frame["days_to_reoffence"].astype("Int64")
    return frame


def _persons(count: int, reoffended: int) -> list[tuple[int, int]]:
    return [(1, 1)] * reoffended + [(1, 0)] * (count - reoffended)


# Real: custody 53 persons of whom 22 reoffended (41.5%; rounded to base 5: 20 of 55 = 36.4%);
# discharge 2 persons with 3 index convictions, 2 reoffending (66.7%): below any threshold.
REAL = _reoffending(
    {
        "custody": _persons(53, 22),
        "community": _persons(60, 15),
        "fine": _persons(45, 15),
        "suspended": _persons(40, 12),
        "discharge": [(2, 1), (1, 1)],
    },
    "real",
    days=3,
)
# Synthetic: custody 45.0% (3.5 points from the true 41.5, 8.6 from the rounded 36.4);
# discharge 25% (far from the true 66.7%, so the overall verdict must fail).
SYNTHETIC = _reoffending(
    {
        "custody": _persons(40, 18),
        "community": _persons(60, 15),
        "fine": _persons(45, 15),
        "suspended": _persons(40, 12),
        "discharge": _persons(4, 1),
    },
    "synthetic",
    days=5,
)


@pytest.fixture(scope="module")
def policies():
    return load_policies()


@pytest.fixture(scope="module")
def dictionaries(linked):
    return {REOFFENDING: linked.dictionaries[REOFFENDING]}


@pytest.fixture(scope="module")
def report(policies, dictionaries):
    assert policies.sdc.profile == "ons-srs"
    return evaluate_fidelity(
        {REOFFENDING: REAL},
        {REOFFENDING: SYNTHETIC},
        dictionaries,
        max_absolute_difference_percentage_points=TOLERANCE,
        sdc=policies.sdc,
    )


@pytest.fixture(scope="module")
def package(report, linked, tmp_path_factory):
    out = tmp_path_factory.mktemp("disclosure") / "cross_justice"
    replica = stand_in_replica({REOFFENDING: linked.tables[REOFFENDING]})
    return export_replica(
        replica,
        {REOFFENDING: linked.dictionaries[REOFFENDING]},
        out,
        fidelity=report.to_dict(),
        privacy=PASSED_PRIVACY,
    )


def _rows(fidelity: dict) -> dict[str, dict]:
    return {row["group"]: row for row in fidelity["research_questions"]}


def _html_row(page: str, group: str) -> str:
    match = re.search(rf"<tr><td>{group}</td>(.*?)</tr>", page)
    assert match, f"no row for {group} in the report"
    return match.group(1)


def test_a_real_cell_of_two_persons_is_suppressed_in_the_exported_json_and_report(package):
    fidelity = json.loads((package / "fidelity.json").read_text())
    page = (package / "report.html").read_text()
    discharge = _rows(fidelity)["discharge"]
    assert discharge["real"] is None
    assert discharge["real_numerator"] is None and discharge["real_denominator"] is None
    assert discharge["real_status"].startswith("suppressed (fewer than 10 persons")
    # Nothing computed on the suppressed figure: no difference, no per-row verdict.
    assert discharge["difference"] is None and discharge["within_tolerance"] is None
    assert discharge["synthetic"] == 25.0
    cells = _html_row(page, "discharge")
    assert "suppressed (fewer than 10 persons" in cells and "not shown" in cells
    # The true 66.7% (and its difference, -41.7) appear nowhere.
    for text in (json.dumps(fidelity), page):
        assert "66.7" not in text and "41.7" not in text


def test_published_real_rates_come_from_counts_rounded_per_profile(package):
    fidelity = json.loads((package / "fidelity.json").read_text())
    assert fidelity["disclosure_control"]["profile"] == "ons-srs"
    assert fidelity["disclosure_control"]["rounding"] == "base 5"
    published = [row for row in fidelity["research_questions"] if row["real"] is not None]
    assert {row["group"] for row in published} >= {"custody", "all"}
    for row in published:
        assert row["real_numerator"] % 5 == 0 and row["real_denominator"] % 5 == 0
        assert row["real"] == round(100 * row["real_numerator"] / row["real_denominator"], 1)
        assert row["difference"] == round(row["synthetic"] - row["real"], 1)
    custody = _rows(fidelity)["custody"]
    assert (custody["real_numerator"], custody["real_denominator"]) == (20, 55)
    assert custody["real"] == 36.4  # not the true 41.5, which stays inside
    assert "41.5" not in json.dumps(fidelity)
    assert "20 of 55" in _html_row((package / "report.html").read_text(), "custody")


def test_the_verdict_is_judged_on_the_true_real_figure(report, package):
    inside = report.research_questions.set_index("group")
    # Inside: the true figures and their verdicts.
    assert inside.loc["custody", "real"] == 41.5
    assert inside.loc["custody", "difference"] == 3.5
    assert inside.loc["custody", "within_tolerance"]
    assert not inside.loc["discharge", "within_tolerance"]
    assert not report.research_questions_within_tolerance and not report.passed
    # Exported: 8.6 points from the rounded figure, yet within tolerance (judged on 3.5) ...
    fidelity = json.loads((package / "fidelity.json").read_text())
    custody = _rows(fidelity)["custody"]
    assert custody["difference"] == 8.6 and custody["within_tolerance"] is True
    # ... and the overall verdict counts the suppressed row too.
    assert fidelity["research_questions_within_tolerance"] is False
    assert fidelity["passed"] is False


def test_counts_follow_the_active_profile(policies, dictionaries):
    datashield = policies.sdc.model_copy(update={"profile": "datashield"})
    report = evaluate_fidelity(
        {REOFFENDING: REAL},
        {REOFFENDING: SYNTHETIC},
        dictionaries,
        max_absolute_difference_percentage_points=TOLERANCE,
        sdc=datashield,
    )
    rows = _rows(report.to_dict())
    # No rounding under this profile: the exact counts; 2 persons are still below its 3.
    assert (rows["custody"]["real_numerator"], rows["custody"]["real_denominator"]) == (22, 53)
    assert rows["custody"]["real"] == 41.5
    assert rows["discharge"]["real"] is None
    assert rows["discharge"]["real_status"].startswith("suppressed (fewer than 3 persons")
    assert report.to_dict()["disclosure_control"]["rounding"] == "none"


def test_persons_not_records_are_held_to_the_threshold():
    # 12 reoffending index convictions of 4 persons: enough records, too few persons.
    real = _reoffending(
        {"custody": _persons(40, 15), "fine": [(3, 3)] * 4 + [(1, 0)] * 30}, "r", days=0
    )
    rows = compare_research_questions({REOFFENDING: real}, {REOFFENDING: real}, TOLERANCE)
    fine = rows.set_index("group").loc["fine"]
    assert fine["real"] == round(100 * 12 / 42, 1)  # the true rate, inside
    assert fine["real_published"] is None or np.isnan(fine["real_published"])
    assert fine["real_status"].startswith("suppressed")


def test_exported_distributions_hold_no_rare_real_category_or_real_value(package):
    fidelity = json.loads((package / "fidelity.json").read_text())
    sentence = fidelity["distributions"]["linked/reoffending.sentence_type"]
    assert "discharge" not in sentence["labels"]  # 2 real persons: folded into "other"
    assert sentence["labels"][-1] == "other"
    assert sentence["real"][sentence["labels"].index("custody")] == round(55 / 200, 3)
    days = fidelity["distributions"]["linked/reoffending.days_to_reoffence"]
    # Bin edges from the replica's values: real ones are 3 + 7k, synthetic ones 5 + 7k.
    synthetic_days = SYNTHETIC["days_to_reoffence"].dropna().astype(float)
    low, high = np.percentile(synthetic_days, [5, 95])
    assert days["labels"][0] == f"< {round(low, 1):g}" and days["labels"][-1].endswith(
        f"{round(high, 1):g}"
    )
    real_days = REAL["days_to_reoffence"].dropna().astype(float)
    for value in (real_days.min(), real_days.max(), *np.percentile(real_days, [5, 95])):
        assert not any(f"{round(value, 1):g}" in label.split() for label in days["labels"])
    assert all(share is None or share * 1000 % 1 == 0 for share in days["real"])


def test_exported_fidelity_holds_only_scores_of_sdmetrics_details(package):
    fidelity = json.loads((package / "fidelity.json").read_text())
    assert fidelity["columns"], "column shape scores are reported"
    for column in fidelity["columns"]:
        assert set(column) == {"table", "column", "metric", "score"}
        assert 0 <= column["score"] <= 1
    text = json.dumps(fidelity)
    for detail in ("Real Correlation", "Synthetic Correlation", "Error", "real_minimum"):
        assert detail not in text


def test_a_report_without_disclosure_control_loses_its_real_figures(linked, tmp_path):
    legacy = {
        "overall_score": 0.9,
        "columns": [{"table": "t", "column": "c", "metric": "m", "score": 0.9, "Real": 7}],
        "research_questions": [
            {
                "question": "remand_share",
                "group": "prison_population",
                "real": 31.4,
                "synthetic": 28.0,
                "difference": -3.4,
                "within_tolerance": True,
            }
        ],
        "distributions": {
            "x.y": {"kind": "categorical", "labels": ["a"], "real": [0.7], "synthetic": [0.6]}
        },
        "details": {"real rows": [1, 2, 3]},
    }
    kept = publishable_fidelity(legacy)
    (row,) = kept["research_questions"]
    assert row["real"] is None and row["difference"] is None and row["within_tolerance"] is None
    assert row["real_status"] == NOT_CONTROLLED and row["synthetic"] == 28.0
    assert kept["distributions"]["x.y"]["real"] == [None]
    assert "details" not in kept and kept["columns"] == [
        {"table": "t", "column": "c", "metric": "m", "score": 0.9}
    ]
    page = render_report(legacy, PASSED_PRIVACY)
    assert "31.4" not in page and "-3.4" not in page
    out = export_replica(
        stand_in_replica({REOFFENDING: linked.tables[REOFFENDING]}),
        {REOFFENDING: linked.dictionaries[REOFFENDING]},
        tmp_path / "package",
        fidelity=legacy,
        privacy=PASSED_PRIVACY,
    )
    written = (out / "fidelity.json").read_text()
    assert "31.4" not in written and "real rows" not in written
    assert "31.4" not in (out / "report.html").read_text()


def test_to_dict_is_already_publishable(report):
    exported = report.to_dict()
    assert publishable_fidelity(exported) == exported
    assert published_research_questions(report.research_questions) == exported["research_questions"]


def test_protected_answers_match_the_true_answers_when_nothing_fails(linked):
    # A profile that suppresses only cells of one or two persons and rounds nothing: every
    # published figure is the true one, so the protected tables count what the questions count.
    lenient = SDCProfile(
        minimum_cell_count=1,
        dominance_n=2,
        dominance_k=100,
        p_percent=0.001,
        residual_degrees_of_freedom=0,
        rounding="none",
        rounding_base=1,
        zeros_are_disclosive=False,
        negative_values="allow",
        missing_values="allow",
        max_min_median_release="allow",
        min_observations_per_category=1,
        survival_minimum_at_risk=1,
        secondary_protection_minimum=0,
        secondary_protection_percent=0,
    )
    rows = compare_research_questions(linked.tables, linked.tables, TOLERANCE, sdc=lenient)
    published = rows[rows["real_status"] == "published"]
    assert {"any_stage", "before_charge", "all", "prison_population"} <= set(published["group"])
    assert (published["real_published"] == published["real"]).all()
    answers = protected_answers("remand_share", linked.tables["linked/journeys"], lenient)
    assert (
        answers["prison_population"].rate
        == rows.set_index("group").loc["prison_population", "real"]
    )


def test_other_is_what_the_protected_counts_leave_and_never_negative():
    nan = float("nan")
    everything = pd.Series({"F": 275.0, "M": 730.0, "Total": 1000.0})
    # Every category shown: nothing is "other", whatever the rounding left over.
    assert protected_shares(everything, ["F", "M", "other"], other="other") == [0.275, 0.73, 0.0]
    # Published categories not shown add up; suppressed ones are Total less the shown ...
    rest = pd.Series({"a": 100.0, "b": 5.0, "c": 5.0, "Total": 110.0})
    assert protected_shares(rest, ["a", "other"], other="other") == [0.909, 0.091]
    hidden = pd.Series({"a": 60.0, "b": 55.0, "c": nan, "Total": 110.0})
    # ... and rounded counts that overshoot the rounded Total leave 0, not less.
    assert protected_shares(hidden, ["a", "b", "other"], other="other") == [0.545, 0.5, 0.0]
    assert protected_shares(pd.Series({"a": nan, "Total": nan}), ["a", "other"], other="other") == [
        None,
        None,
    ]


def test_column_scores_leave_rounded_so_they_cannot_give_a_real_share_exactly():
    # For a two-valued column the shape score is 1 - |real share - synthetic share|.
    (column,) = publishable_fidelity(
        {"columns": [{"table": "t", "column": "sex", "metric": "TVComplement", "score": 0.98765}]}
    )["columns"]
    assert column["score"] == 0.99

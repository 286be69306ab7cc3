"""Fidelity: research questions on hand-made tables, SDMetrics scores of a stand-in replica,
and the HTML report."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from synthetic_fixtures import stand_in_replica

from synthetic.fidelity import FidelityError, evaluate_fidelity, sdmetrics_metadata
from synthetic.report import PRIVACY_STATEMENT, render_report
from synthetic.research_questions import (
    ResearchQuestionError,
    compare_research_questions,
    remand_share,
    reoffending_by_sentence_type,
    victim_attrition_by_stage,
)


@pytest.fixture(scope="module")
def stand_in(linked):
    replica = stand_in_replica(linked.tables, seed=3)
    # A column the replica gets badly wrong, so the scores can be seen to fail.
    replica["linked/persons"]["sex"] = pd.array(["F"] * len(replica["linked/persons"]), "string")
    return replica


@pytest.fixture(scope="module")
def fidelity(linked, stand_in):
    return evaluate_fidelity(
        linked.tables,
        stand_in,
        linked.dictionaries,
        max_absolute_difference_percentage_points=5.0,
        min_quality_score=0.85,
    )


def test_victim_attrition_by_stage_on_a_hand_made_table():
    victims = pd.DataFrame(
        {
            "withdrew_support": [True, True, True, False, False, False, False, False, False, False],
            "withdrawal_stage": pd.array(
                ["before_charge", "before_charge", "at_court", *[None] * 7], dtype="string"
            ),
        }
    )
    rates = victim_attrition_by_stage(victims)
    assert rates.to_dict() == {"before_charge": 20.0, "at_court": 10.0, "any_stage": 30.0}


def test_reoffending_counts_only_complete_follow_up_by_default():
    reoffending = pd.DataFrame(
        {
            "sentence_type": ["custody", "custody", "custody", "fine", "fine", "fine"],
            "reoffended": [True, False, False, True, True, True],
            "follow_up_complete": [True, True, True, True, False, False],
        }
    )
    rates = reoffending_by_sentence_type(reoffending)
    assert rates["custody"] == pytest.approx(100 / 3)
    assert rates["fine"] == 100.0
    assert rates["all"] == 50.0
    everyone = reoffending_by_sentence_type(reoffending, complete_follow_up_only=False)
    assert everyone["all"] == pytest.approx(400 / 6)


def _journey(person, remanded=False, days=None, hearing=None, start=None, release=None):
    return {
        "person_key": person,
        "remanded": remanded,
        "remand_days": days,
        "first_hearing_date": pd.Timestamp(hearing) if hearing else pd.NaT,
        "outcome_date": pd.NaT,
        "custody_start": pd.Timestamp(start) if start else pd.NaT,
        "custody_release": pd.Timestamp(release) if release else pd.NaT,
    }


def test_remand_share_counts_people_inside_on_the_census_date():
    journeys = pd.DataFrame(
        [
            _journey("a", remanded=True, days=30, hearing="2020-01-01"),  # on remand
            _journey("b", start="2019-12-01", release="2020-06-01"),  # sentenced
            _journey("c", start="2020-01-10"),  # sentenced, not yet released
            _journey("d", remanded=True, days=10, hearing="2020-03-01"),  # remand later
            _journey("e", start="2019-01-01", release="2019-06-01"),  # released before
            _journey("b", remanded=True, days=60, hearing="2020-01-05"),  # counted once, sentenced
            _journey("f"),  # never in custody
        ]
    )
    share = remand_share(journeys, [pd.Timestamp("2020-01-15")])
    assert share["prison_population"] == pytest.approx(100 / 3)
    # Pooled over two dates: 1 of 3 on the first, 1 (d) of 3 (b, c, d) on the second.
    pooled = remand_share(journeys, [pd.Timestamp("2020-01-15"), pd.Timestamp("2020-03-05")])
    assert pooled["prison_population"] == pytest.approx(100 * 2 / 6)


def test_research_questions_flag_a_difference_beyond_tolerance(linked):
    same = compare_research_questions(linked.tables, linked.tables, 1.0)
    assert set(same["question"]) == {
        "victim_attrition_by_stage",
        "reoffending_by_sentence_type",
        "remand_share",
    }
    assert same["within_tolerance"].all()
    assert (same["difference"] == 0).all()
    victims = linked.tables["linked/victims"].copy()
    victims["withdrew_support"] = False  # nobody withdraws in this "replica"
    changed = compare_research_questions(
        linked.tables, {**linked.tables, "linked/victims": victims}, 1.0
    )
    attrition = changed[changed["question"] == "victim_attrition_by_stage"].set_index("group")
    assert not attrition.loc["any_stage", "within_tolerance"]
    assert attrition.loc["any_stage", "synthetic"] == 0.0
    assert attrition.loc["any_stage", "difference"] == -attrition.loc["any_stage", "real"]


def test_research_question_names_a_missing_column():
    with pytest.raises(ResearchQuestionError, match="withdrawal_stage"):
        victim_attrition_by_stage(pd.DataFrame({"withdrew_support": [True]}))


def test_metadata_has_keys_and_relationships(linked):
    metadata = sdmetrics_metadata(linked.dictionaries)
    assert metadata["tables"]["persons"]["primary_key"] == "person_key"
    assert metadata["tables"]["journeys"]["columns"]["person_key"] == {"sdtype": "id"}
    assert metadata["tables"]["journeys"]["columns"]["offence_date"] == {"sdtype": "datetime"}
    assert metadata["tables"]["victims"]["columns"]["withdrew_support"] == {"sdtype": "boolean"}
    assert {
        "parent_table_name": "persons",
        "parent_primary_key": "person_key",
        "child_table_name": "journeys",
        "child_foreign_key": "person_key",
    } in metadata["relationships"]


def test_fidelity_scores_overall_per_table_and_per_column(fidelity, linked):
    assert 0.6 < fidelity.overall_score < 1.0
    assert {"Column Shapes", "Column Pair Trends"} <= set(fidelity.properties)
    assert set(fidelity.tables) == set(linked.tables)
    for scores in fidelity.tables.values():
        assert 0.5 < scores["column_shapes"] <= 1.0
        assert 0.0 < scores["column_pair_trends"] <= 1.0
    shape = {(c["table"], c["column"]): c["score"] for c in fidelity.columns}
    # Everyone "F" against a real mix: the shape score of sex is the share of real women.
    real_women = (linked.tables["linked/persons"]["sex"] == "F").mean()
    assert shape[("persons", "sex")] == pytest.approx(real_women, abs=0.01)
    assert shape[("persons", "birth_year")] > 0.9


def test_fidelity_report_serialises_and_judges_against_the_policy(fidelity):
    as_dict = json.loads(json.dumps(fidelity.to_dict()))
    assert as_dict["overall_score"] == round(fidelity.overall_score, 4)
    assert as_dict["min_quality_score"] == 0.85
    assert as_dict["quality_passed"] is (fidelity.overall_score >= 0.85)
    assert {r["question"] for r in as_dict["research_questions"]} >= {"remand_share"}
    assert as_dict["passed"] is fidelity.passed
    assert "linked/persons.sex" in as_dict["distributions"]
    sex = as_dict["distributions"]["linked/persons.sex"]
    assert sex["synthetic"][sex["labels"].index("F")] == 1.0


def test_fidelity_refuses_a_replica_with_another_schema(linked):
    replica = {**linked.tables}
    replica["linked/persons"] = linked.tables["linked/persons"].drop(columns="area")
    with pytest.raises(FidelityError, match="area"):
        evaluate_fidelity(
            linked.tables,
            replica,
            linked.dictionaries,
            max_absolute_difference_percentage_points=5.0,
        )


def test_html_report_shows_notice_plots_privacy_and_escapes_text(fidelity):
    privacy = {
        "passed": False,
        "gates": {"<script>alert(1)</script>": {"passed": False, "figure": 0.3}},
        "note": "<b>bold</b>",
    }
    page = render_report(fidelity.to_dict(), privacy)
    assert "SYNTHETIC DATA" in page
    assert PRIVACY_STATEMENT in page
    assert page.count("data:image/png;base64,") >= 3
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "FAILED" in page


def test_fidelity_can_score_the_relationships_between_tables(linked, stand_in):
    names = ("linked/persons", "linked/reoffending")
    real = {name: linked.tables[name] for name in names}
    replica = {name: stand_in[name] for name in names}
    report = evaluate_fidelity(
        real,
        replica,
        linked.dictionaries,
        max_absolute_difference_percentage_points=5.0,
        include_relationships=True,
    )
    assert {"Cardinality", "Intertable Trends"} <= set(report.properties)
    assert report.properties["Cardinality"] == pytest.approx(1.0)  # keys were kept
    assert set(report.tables) == set(names)
    assert set(report.research_questions["question"]) == {"reoffending_by_sentence_type"}

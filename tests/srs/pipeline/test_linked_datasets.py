"""The linked research datasets: no identifier from any source survives, dates are in order,
keys are consistent and stable, and they are stored classified with their dictionaries."""

from __future__ import annotations

import pandas as pd
import pytest

from srs.governance.access import AccessDenied
from srs.governance.registry import projects
from srs.governance.registry.models import Dataset
from srs.pipeline.deid import Pseudonymiser, generate_pseudonym_key
from srs.pipeline.ingest import load_dictionary
from srs.pipeline.linked_datasets import build_linked_datasets
from srs.pipeline.simulation import SOURCES
from srs.pipeline.stewardship import PERSON_LOOKUP, PSEUDONYM_KEY, pseudonymiser, read_sources

LINKED = ("linked/persons", "linked/journeys", "linked/victims", "linked/reoffending")


def identifier_values(extracts: dict[str, pd.DataFrame]) -> set[str]:
    """Every value of every column a source's dictionary classifies as a direct identifier,
    in the forms it could take in a research table (as text, and dates as ISO dates)."""
    values: set[str] = set()
    for source in SOURCES:
        dictionary = load_dictionary(source)
        frame = extracts[source]
        for column in dictionary.columns:
            if column.classification != "direct_identifier":
                continue
            series = frame[column.name].dropna()
            if pd.api.types.is_datetime64_any_dtype(series):
                values |= set(series.dt.strftime("%Y-%m-%d"))
                values |= set(series.dt.strftime("%d/%m/%Y"))
            else:
                values |= {str(v) for v in series} | {str(v).upper() for v in series}
    return values


def cell_values(frame: pd.DataFrame) -> set[str]:
    values: set[str] = set()
    for column in frame.columns:
        series = frame[column].dropna()
        if pd.api.types.is_datetime64_any_dtype(series):
            values |= set(series.dt.strftime("%Y-%m-%d"))
        else:
            values |= {str(v) for v in series}
    return values


def test_no_identifier_value_appears_in_any_research_dataset(pipeline) -> None:
    identifiers = identifier_values(pipeline.simulation.extracts)
    assert len(identifiers) > 10_000  # names, dates of birth, postcodes, PNC numbers, references
    for name in LINKED:
        table = pipeline.linked.tables[name]
        leaked = identifiers & cell_values(table)
        assert not leaked, f"{name} holds identifiers: {sorted(leaked)[:5]}"
        assert not {
            "forename",
            "surname",
            "date_of_birth",
            "postcode",
            "pnc_id",
            "crime_ref",
        } & set(table.columns)


def test_the_scan_would_catch_a_leak(pipeline) -> None:
    identifiers = identifier_values(pipeline.simulation.extracts)
    leaky = pipeline.linked.tables["linked/persons"].assign(
        note=pipeline.simulation.extracts["police_arrests"]["surname"].iloc[0]
    )
    assert identifiers & cell_values(leaky)


def test_stage_dates_are_in_order(pipeline) -> None:
    j = pipeline.linked.tables["linked/journeys"]
    for earlier, later in [
        ("offence_date", "arrest_date"),
        ("arrest_date", "decision_date"),
        ("decision_date", "first_hearing_date"),
        ("first_hearing_date", "outcome_date"),
        ("outcome_date", "custody_start"),
        ("custody_start", "custody_release"),
    ]:
        both = j[earlier].notna() & j[later].notna()
        assert both.any(), (earlier, later)
        assert (j.loc[both, later] >= j.loc[both, earlier]).all(), f"{later} before {earlier}"
    assert (j["sentence_type"].notna() <= (j["court_outcome"] == "convicted").fillna(False)).all()


def test_out_of_order_dates_are_blanked_and_reported(pipeline, offences) -> None:
    with pipeline.registry.sessions() as s:
        sources = read_sources(s, pipeline.vault, actor="steward")
    cps = sources["cps_charging"].copy()
    cps.loc[0, "decision_date"] = pd.Timestamp("2000-01-01")  # before any arrest
    sources["cps_charging"] = cps
    linked = build_linked_datasets(
        sources, pipeline.linkage.lookup, Pseudonymiser(bytes(32)), offences
    )
    assert linked.report["dates_blanked_decision_date_before_arrest_date"] == 1


def test_the_lookup_maps_every_record_to_its_person_key(pipeline) -> None:
    with pipeline.registry.sessions() as s:
        lookup = pipeline.vault.read_steward_zone(s, PERSON_LOOKUP, actor="steward")
    assert len(lookup) == sum(len(f) for f in pipeline.simulation.extracts.values())
    assert lookup["person_key"].notna().all()
    assert set(lookup["person_key"]) == set(pipeline.linked.tables["linked/persons"]["person_key"])


def test_keys_are_consistent_across_datasets(pipeline) -> None:
    t = pipeline.linked.tables
    persons = set(t["linked/persons"]["person_key"])
    assert t["linked/persons"]["person_key"].is_unique
    assert set(t["linked/journeys"]["person_key"]) <= persons
    assert set(t["linked/victims"]["victim_person_key"].dropna()) <= persons
    assert set(t["linked/reoffending"]["case_key"]) <= set(t["linked/journeys"]["case_key"])
    assert t["linked/journeys"]["case_key"].is_unique
    assert (
        len(t["linked/journeys"])
        == pipeline.simulation.extracts["police_arrests"]["crime_ref"].nunique()
    )


def test_pseudonyms_are_stable_for_a_key_and_differ_under_another(pipeline, offences) -> None:
    with pipeline.registry.sessions() as s:
        sources = read_sources(s, pipeline.vault, actor="steward")
        same = pseudonymiser(s, pipeline.vault, actor="steward")
    lookup = pipeline.linkage.lookup
    again = build_linked_datasets(sources, lookup, same, offences).tables["linked/persons"]
    assert set(again["person_key"]) == set(pipeline.linked.tables["linked/persons"]["person_key"])
    other = build_linked_datasets(
        sources, lookup, Pseudonymiser(generate_pseudonym_key()), offences
    )
    assert not set(other.tables["linked/persons"]["person_key"]) & set(again["person_key"])


def test_research_questions_can_be_answered(pipeline) -> None:
    t = pipeline.linked.tables
    victims = t["linked/victims"]
    assert 0.1 < victims["withdrew_support"].mean() < 0.5
    reoffending = t["linked/reoffending"]
    rates = reoffending.groupby("sentence_type")["reoffended"].mean()
    assert set(rates.index) >= {"custody", "community", "fine"}
    assert t["linked/journeys"]["remanded"].any()
    assert t["linked/journeys"]["iccs_division"].str.fullmatch(r"\d{4}").all()


def test_stored_classified_with_generated_dictionaries(pipeline) -> None:
    with pipeline.registry.sessions() as s:
        for name in LINKED:
            record = pipeline.vault.get(s, name)
            assert record.classification == "confidential"
            described = {c["name"] for c in record.data_dictionary if c["description"]}
            assert described == set(pipeline.linked.tables[name].columns)
        for name in (PERSON_LOOKUP, PSEUDONYM_KEY, "source/police_arrests"):
            assert pipeline.vault.get(s, name).classification == "highly_confidential"
        assert s.query(Dataset).filter(Dataset.name.like("source/%")).count() == len(SOURCES)


def test_steward_zone_is_never_granted_or_read_by_projects(pipeline, policies) -> None:
    from datetime import date, timedelta

    with pipeline.registry.sessions() as s:
        projects.create_project(
            s,
            actor="admin",
            policies=policies,
            code="PZONE",
            title="T",
            purpose="P",
            legal_basis="L",
            start_date=date.today() - timedelta(days=1),
            end_date=date.today() + timedelta(days=30),
            approved_classification="highly_confidential",
        )
        projects.add_member(s, actor="admin", policies=policies, code="PZONE", username="ana")
        for name in (PERSON_LOOKUP, "source/victims"):
            with pytest.raises(AccessDenied, match="steward zone"):
                projects.grant_dataset(
                    s, actor="steward", policies=policies, code="PZONE", dataset_name=name
                )
            with pytest.raises(AccessDenied, match="steward zone"):
                pipeline.vault.read(s, name, actor="ana", project="PZONE")
        with pytest.raises(AccessDenied, match="may not steward.read"):
            pipeline.vault.read_steward_zone(s, PERSON_LOOKUP, actor="ana")
        with pytest.raises(AccessDenied, match="not a steward-zone dataset"):
            pipeline.vault.read_steward_zone(s, "linked/persons", actor="steward")


def test_dictionaries_list_public_values_covering_the_data(pipeline) -> None:
    # DP queries group by these without a threshold: a value missing from the list would be
    # dropped from every DP table, so every value present must be listed.
    checked = 0
    for name, dictionary in pipeline.linked.dictionaries.items():
        table = pipeline.linked.tables[name]
        for entry in dictionary:
            if "values" not in entry:
                continue
            present = table[entry["name"]].dropna()
            if entry["type"] == "flag":
                present = present.map(lambda flag: "true" if flag else "false")
            assert set(present.astype(str)) <= set(entry["values"]), (name, entry["name"])
            checked += 1
    journeys = {e["name"]: e for e in pipeline.linked.dictionaries["linked/journeys"]}
    assert journeys["sex"]["values"] == ["F", "M"]
    assert journeys["remanded"]["values"] == ["false", "true"]
    assert "person_key" not in {n for n, e in journeys.items() if "values" in e}
    assert checked >= 20

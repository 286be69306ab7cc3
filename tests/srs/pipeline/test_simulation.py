"""The simulator: deterministic, realistic identifier noise, a complete ground truth."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from srs.pipeline.simulation import SOURCES, SimulationError, simulate, write_simulation


def test_same_seed_same_data_other_seed_other_data() -> None:
    first, again, other = simulate(300, 5), simulate(300, 5), simulate(300, 6)
    for source in SOURCES:
        pd.testing.assert_frame_equal(first.extracts[source], again.extracts[source])
    assert not first.extracts["police_arrests"].equals(other.extracts["police_arrests"])


def test_every_record_has_exactly_one_true_person(simulated) -> None:
    result, _ = simulated
    truth = result.ground_truth
    assert not truth.duplicated(["source", "record_id"]).any()
    for source, frame in result.extracts.items():
        ids = set(frame.iloc[:, 0].astype(str))
        assert ids == set(truth.loc[truth["source"] == source, "record_id"])


def test_sources_have_their_own_columns_and_formats(simulated) -> None:
    _, paths = simulated
    police = pd.read_csv(paths["police_arrests"], dtype=str)
    cps = pd.read_csv(paths["cps_charging"], dtype=str)
    assert "forename" in police.columns and "defendant_forename" in cps.columns
    assert police["date_of_birth"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert cps["defendant_dob"].str.fullmatch(r"\d{2}/\d{2}/\d{4}").all()
    assert "pnc_id" not in pd.read_csv(paths["victims"], dtype=str).columns


def test_identifiers_carry_realistic_errors(simulated) -> None:
    result, _ = simulated
    truth = result.ground_truth
    police = result.extracts["police_arrests"].merge(
        truth[truth["source"] == "police_arrests"], left_on="arrest_id", right_on="record_id"
    )
    spellings = police.groupby("person_id")["surname"].nunique()
    assert (spellings > 1).sum() > 0, "some persons should have variant surnames"
    forenames = set(result.extracts["cps_charging"]["defendant_forename"])
    assert forenames & {"Bill", "Bob", "Mike", "Tom", "Jim", "Dave", "Chris", "Liz", "Kate"}
    pnc_share = result.extracts["police_arrests"]["pnc_id"].notna().mean()
    assert 0.85 < pnc_share < 1.0
    assert result.extracts["victims"]["date_of_birth"].isna().any()
    duplicates = result.extracts["police_arrests"]["arrest_id"].str.endswith("D")
    assert duplicates.any()


def test_names_follow_a_realistic_frequency(simulated) -> None:
    result, _ = simulated
    counts = result.extracts["police_arrests"]["surname"].value_counts()
    assert counts.iloc[0] > 5 * counts.median(), "common surnames should be far more common"


def test_stage_dates_are_in_order(simulated) -> None:
    result, _ = simulated
    police = result.extracts["police_arrests"]
    assert (police["arrest_date"] >= police["offence_date"]).all()
    mc = result.extracts["magistrates_cases"]
    done = mc["outcome_date"].notna()
    assert (
        pd.to_datetime(mc.loc[done, "outcome_date"])
        >= pd.to_datetime(mc.loc[done, "first_hearing_date"])
    ).all()


def test_files_and_manifest(simulated) -> None:
    result, paths = simulated
    assert paths["ground_truth"].parent.name == "ground_truth"
    assert paths["police_arrests"].parent.name == "extracts"
    manifest = json.loads((paths["police_arrests"].parents[1] / "manifest.json").read_text())
    assert manifest["persons"] == result.persons
    assert manifest["records"]["victims"] == len(result.extracts["victims"])
    assert manifest["identifier_quality"]["police_arrests"]["pnc_present"] == 0.95


@pytest.mark.parametrize("persons", [0, 5, 30_000_000])
def test_impossible_sizes_are_refused(persons: int) -> None:
    with pytest.raises(SimulationError, match="persons"):
        simulate(persons, 1)


def test_unknown_format_is_refused(tmp_path) -> None:
    with pytest.raises(SimulationError, match="csv or parquet"):
        write_simulation(simulate(20, 1), tmp_path, "xlsx")

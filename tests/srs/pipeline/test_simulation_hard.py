"""The simulator's hard noise profile: every kind of error it promises, measured against the
true identities; reproducible; and the documented profile's output unchanged byte for byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from srs.cli import app
from srs.pipeline.simulation import SOURCES, SimulationError, simulate, write_simulation

# sha256 of every CSV written for (persons, seed) with the documented profile, computed before
# the hard profile existed: the documented output must never change.
DOCUMENTED_CSV_SHA256 = {
    (300, 3): "8b4b1824783bbada168ed4fa255e8924e914a14427784deb8be4d61a6ffb2e51",
    (2000, 7): "2e53dc7771bdfecbcccfa6b9e12936a34c9a583616037e745215b950a7242b9e",
}
# Each source's column for each identifier role.
ROLES = {
    "police_arrests": ("forename", "surname", "date_of_birth", "postcode", "pnc_id", "sex"),
    "cps_charging": (
        "defendant_forename",
        "defendant_surname",
        "defendant_dob",
        "defendant_postcode",
        "pnc_id",
        None,
    ),
    "magistrates_cases": ("first_name", "last_name", "dob", "address_postcode", "pnc_id", "sex"),
    "victims": ("forename", "surname", "date_of_birth", "postcode", None, "sex"),
}


def _records(result) -> pd.DataFrame:
    """Records of four sources in common columns, beside their person's true identity."""
    truth = result.ground_truth
    frames = []
    for source, columns in ROLES.items():
        frame = result.extracts[source]
        part = pd.DataFrame({"source": source, "record_id": frame.iloc[:, 0].astype(str)})
        for role, column in zip(
            ("forename", "surname", "dob", "postcode", "pnc", "sex"), columns, strict=True
        ):
            part[role] = frame[column].to_numpy() if column else None
        frames.append(part)
    records = pd.concat(frames, ignore_index=True).merge(truth, on=["source", "record_id"])
    true = result.identities.add_prefix("true_").rename(columns={"true_person_id": "person_id"})
    return records.merge(true, on="person_id")


@pytest.fixture(scope="module")
def hard():
    return simulate(3000, 11, noise="hard")


@pytest.fixture(scope="module")
def documented():
    return simulate(3000, 11)


def _share(mask: pd.Series) -> float:
    return float(mask.mean())


def _name_swapped(records: pd.DataFrame) -> pd.Series:
    # Persons named e.g. Thomas Thomas cannot show a swap.
    return (
        (records["forename"] == records["true_surname"])
        & (records["surname"] == records["true_forename"])
        & (records["true_forename"] != records["true_surname"])
    )


def _one_digit_wrong(records: pd.DataFrame) -> pd.Series:
    given = pd.to_datetime(records["dob"]).dt.strftime("%Y%m%d")
    true = pd.to_datetime(records["true_date_of_birth"]).dt.strftime("%Y%m%d")
    differing = [
        sum(a != b for a, b in zip(g, t, strict=True)) if isinstance(g, str) else 0
        for g, t in zip(given, true, strict=True)
    ]
    return pd.Series(differing, index=records.index) == 1


def _padded(values: pd.Series) -> pd.Series:
    text = values.dropna().astype(str)
    return text != text.str.strip()


def test_hard_profile_swaps_forename_and_surname(hard, documented) -> None:
    assert _share(_name_swapped(_records(hard))) > 0.01
    assert _share(_name_swapped(_records(documented))) == 0


def test_hard_profile_has_digit_typos_in_dates_of_birth(hard, documented) -> None:
    # One digit wrong is not a day/month swap (that changes two digits, or none).
    assert _share(_one_digit_wrong(_records(hard))) > 0.02
    assert _share(_one_digit_wrong(_records(documented))) < 0.002


def test_hard_profile_has_non_ascii_and_double_barrelled_names(hard, documented) -> None:
    records = _records(hard)
    accented = records["true_surname"].map(lambda name: not name.isascii())
    kept = records.loc[accented, "surname"].dropna().map(lambda name: not name.isascii())
    assert 0.03 < _share(accented) < 0.10
    # Some systems keep the accents, others drop them.
    assert 0.2 < _share(kept) < 0.8
    barrelled = records["true_surname"].str.contains("-")
    assert 0.03 < _share(barrelled) < 0.10
    recorded = records.loc[barrelled, "surname"].dropna().str.strip()
    assert recorded.str.contains("-").any() and (~recorded.str.contains("[- ]")).any()
    plain = _records(documented)
    assert plain["surname"].dropna().map(str.isascii).all()
    assert not plain["true_surname"].str.contains("-").any()


def test_hard_profile_has_placeholders_padding_and_missing_identifiers(hard, documented) -> None:
    records = _records(hard)
    placeholders = {
        "forename": {"UNKNOWN", "N/K", "Not Known"},
        "postcode": {"NFA", "ZZ99 3VZ", "NO FIXED ABODE"},
        "pnc": {"0", "0000/0000000A"},
        "sex": {"U", "9"},
    }
    for role, values in placeholders.items():
        assert records[role].isin(values).any(), f"no {role} placeholder"
        assert not _records(documented)[role].isin(values).any()
    assert (pd.to_datetime(records["dob"]) == pd.Timestamp("1900-01-01")).any()
    for role in ("forename", "surname", "postcode", "pnc"):
        assert _share(_padded(records[role])) > 0.01, f"no padded {role}"
        assert not _padded(_records(documented)[role]).any()
    police = records[records["source"] == "police_arrests"]
    police_documented = _records(documented).query("source == 'police_arrests'")
    assert police["pnc"].notna().mean() < police_documented["pnc"].notna().mean() - 0.05
    assert police["postcode"].isna().mean() > police_documented["postcode"].isna().mean() + 0.02


def test_hard_profile_puts_several_errors_in_one_record(hard, documented) -> None:
    def errors(records: pd.DataFrame) -> pd.Series:
        return (
            (records["forename"] != records["true_forename"]).astype(int)
            + (records["surname"].str.upper() != records["true_surname"].str.upper())
            + _one_digit_wrong(records)
        )

    assert _share(errors(_records(hard)) >= 2) > 0.02
    assert _share(errors(_records(documented)) >= 2) < _share(errors(_records(hard)) >= 2) / 3


def test_hard_profile_is_reproducible_by_seed(hard) -> None:
    again, other = simulate(3000, 11, noise="hard"), simulate(3000, 12, noise="hard")
    for source in SOURCES:
        pd.testing.assert_frame_equal(hard.extracts[source], again.extracts[source])
    assert not hard.extracts["victims"].equals(other.extracts["victims"])


def test_hard_profile_keeps_population_and_journeys_of_the_seed(hard, documented) -> None:
    pd.testing.assert_frame_equal(hard.ground_truth, documented.ground_truth)
    police, police_documented = (
        hard.extracts["police_arrests"],
        documented.extracts["police_arrests"],
    )
    assert police["offence_code"].equals(police_documented["offence_code"])
    assert not police["surname"].equals(police_documented["surname"])


@pytest.mark.parametrize(("persons", "seed"), list(DOCUMENTED_CSV_SHA256))
def test_documented_profile_output_is_unchanged(tmp_path: Path, persons: int, seed: int) -> None:
    write_simulation(simulate(persons, seed), tmp_path, "csv")
    digest = hashlib.sha256()
    for path in sorted(tmp_path.rglob("*.csv")):
        digest.update(path.relative_to(tmp_path).as_posix().encode())
        digest.update(path.read_bytes())
    assert digest.hexdigest() == DOCUMENTED_CSV_SHA256[(persons, seed)]
    assert "noise" not in json.loads((tmp_path / "manifest.json").read_text())


def test_hard_profile_is_stated_in_the_manifest(tmp_path: Path, hard) -> None:
    write_simulation(hard, tmp_path, "csv")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["noise"]["profile"] == "hard"
    assert manifest["noise"]["added_errors"]["name_swap"] > 0


def test_unknown_noise_profile_is_refused() -> None:
    with pytest.raises(SimulationError, match="unknown noise profile 'loud'.*documented, hard"):
        simulate(100, 1, noise="loud")


def test_cli_simulate_hard_and_bogus(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(
        app,
        [
            "simulate",
            "--persons",
            "50",
            "--seed",
            "1",
            "--out",
            str(tmp_path / "x"),
            "--noise",
            "bogus",
        ],
    )
    assert bad.exit_code == 2
    assert "unknown noise profile 'bogus'; use one of documented, hard" in bad.output
    assert not (tmp_path / "x" / "extracts").exists()
    good = runner.invoke(
        app,
        [
            "simulate",
            "--persons",
            "50",
            "--seed",
            "1",
            "--out",
            str(tmp_path / "y"),
            "--noise",
            "hard",
        ],
    )
    assert good.exit_code == 0, good.output
    manifest = json.loads((tmp_path / "y" / "manifest.json").read_text())
    assert manifest["noise"]["profile"] == "hard"
    help_text = runner.invoke(app, ["simulate", "--help"]).output
    assert "--noise" in help_text and "hard" in help_text

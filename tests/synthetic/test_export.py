"""The open-data export: the package validates against its own schema, a replica that failed its
privacy gates or breaks its schema is refused, and open_data loads what was exported. Attacks on
the validator itself are in test_export_validation.py."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import polars as pl
import pytest
from synthetic_fixtures import stand_in_replica

from srs.vault.crypto import frame_to_parquet_bytes, parquet_bytes_to_frame
from synthetic.export import ExportError, ExportRefused, export_replica, validate_package
from synthetic.open_data import (
    OPEN_DATA_ENV,
    OpenDataError,
    OpenDataNotFound,
    UnknownDataset,
    open_data,
)
from synthetic.report import PRIVACY_STATEMENT

PASSED_PRIVACY = {
    "passed": True,
    "differentially_private": False,
    "failures": [],
    "datasets": {
        "linked/persons": {
            "dataset": "linked/persons",
            "passed": True,
            "gates": [{"gate": "exact_match", "figure": 0.0, "threshold": 0.01, "passed": True}],
        }
    },
}
FIDELITY = {
    "overall_score": 0.91,
    "tables": {"linked/persons": {"column_shapes": 0.95, "column_pair_trends": 0.9}},
    "research_questions": [
        {
            "question": "remand_share",
            "group": "prison_population",
            "real": 30.0,
            "synthetic": 28.0,
            "difference": -2.0,
            "within_tolerance": True,
        }
    ],
}


@pytest.fixture(scope="module")
def replica(linked):
    return stand_in_replica(linked.tables)


@pytest.fixture(scope="module")
def package(linked, replica, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "cross_justice"
    return export_replica(
        replica, linked.dictionaries, out, fidelity=FIDELITY, privacy=PASSED_PRIVACY
    )


def _copy(package, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(package, copy)
    return copy


def test_package_has_every_file_and_validates_against_its_own_schema(package):
    names = {path.name for path in package.iterdir()}
    for table in ("persons", "journeys", "victims", "reoffending"):
        assert {f"{table}.csv", f"{table}.parquet"} <= names
    assert {
        "datapackage.json",
        "README.md",
        "report.html",
        "fidelity.json",
        "privacy.json",
    } <= names
    assert validate_package(package) == []
    readme = (package / "README.md").read_text()
    assert "SYNTHETIC DATA" in readme and "CC-BY-4.0" in readme
    report = (package / "report.html").read_text()
    assert "SYNTHETIC DATA" in report and PRIVACY_STATEMENT in report
    assert json.loads((package / "privacy.json").read_text()) == PASSED_PRIVACY


def test_datapackage_carries_the_data_dictionary_and_keys(package, linked):
    descriptor = json.loads((package / "datapackage.json").read_text())
    assert descriptor["licenses"][0]["name"] == "CC-BY-4.0"
    resources = {resource["name"]: resource for resource in descriptor["resources"]}
    journeys = resources["journeys"]
    assert (journeys["path"], journeys["format"], journeys["mediatype"]) == (
        "journeys.csv",
        "csv",
        "text/csv",
    )
    assert journeys["encoding"] == "utf-8"
    assert journeys["dataset"] == "linked/journeys"
    fields = {field["name"]: field for field in journeys["schema"]["fields"]}
    assert [f["name"] for f in journeys["schema"]["fields"]] == list(
        linked.tables["linked/journeys"].columns
    )
    assert fields["sentence_type"]["constraints"]["enum"] == [
        "community",
        "custody",
        "discharge",
        "fine",
        "suspended",
    ]
    assert fields["offence_date"]["type"] == "date"
    assert fields["remanded"]["type"] == "boolean"
    assert fields["age_at_offence"]["type"] == "integer"
    assert fields["offence_date"]["description"] == "Date of the offence"
    assert "enum" not in fields["area"].get("constraints", {})  # real areas are not public
    assert journeys["schema"]["primaryKey"] == ["case_key"]
    assert {
        "fields": ["person_key"],
        "reference": {"resource": "persons", "fields": ["person_key"]},
    } in journeys["schema"]["foreignKeys"]
    victims = resources["victims"]["schema"]["foreignKeys"]
    assert {
        "fields": ["victim_person_key"],
        "reference": {"resource": "persons", "fields": ["person_key"]},
    } in victims


def test_export_refuses_a_replica_that_failed_privacy_and_leaves_nothing(linked, replica, tmp_path):
    out = tmp_path / "refused"
    failed = {
        "passed": False,
        "failures": ["linked/persons: exact_match: 12% of rows copy a real row"],
        "datasets": {},
    }
    with pytest.raises(ExportRefused, match="exact_match: 12% of rows copy a real row"):
        export_replica(replica, linked.dictionaries, out, fidelity=FIDELITY, privacy=failed)
    generic = {"passed": False, "gates": {"dcr": {"passed": False, "reason": "too close"}}}
    with pytest.raises(ExportRefused, match="dcr: too close"):
        export_replica(replica, linked.dictionaries, out, fidelity=FIDELITY, privacy=generic)
    with pytest.raises(ExportRefused, match="no 'passed' verdict"):
        export_replica(replica, linked.dictionaries, out, fidelity=FIDELITY, privacy={})
    assert list(tmp_path.iterdir()) == []


def test_a_replica_off_its_schema_is_not_exported_and_leaves_nothing(linked, replica, tmp_path):
    broken = dict(replica)
    persons = replica["linked/persons"].copy()
    persons["sex"] = persons["sex"].replace({"F": "female"})
    broken["linked/persons"] = persons
    with pytest.raises(ExportError, match=r"field sex: 'female' is not one of the allowed values"):
        export_replica(
            broken, linked.dictionaries, tmp_path / "out", fidelity=FIDELITY, privacy=PASSED_PRIVACY
        )
    assert list(tmp_path.iterdir()) == []


def test_export_to_a_folder_that_cannot_be_made_says_which_and_what_to_do(
    linked, replica, tmp_path
):
    blocker = tmp_path / "afile"
    blocker.write_text("a file where the package's parent folder should be")
    out = blocker / "out" / "cross_justice"
    with pytest.raises(ExportError) as refused:
        export_replica(replica, linked.dictionaries, out, fidelity=FIDELITY, privacy=PASSED_PRIVACY)
    assert str(refused.value) == (
        f"cannot write the package to {out}: {blocker} is a file, not a folder; nothing was "
        "exported. Choose a folder you can write to, or free some space"
    )
    assert refused.value.__cause__ is None and blocker.read_text().startswith("a file")


def test_an_error_while_writing_leaves_nothing_and_is_an_export_error(
    linked, replica, tmp_path, monkeypatch
):
    def disk_full(self, path, *arguments, **options):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    out = tmp_path / "open" / "cross_justice"
    with pytest.raises(ExportError, match=r"cannot write the package to .*: No space left on dev"):
        export_replica(replica, linked.dictionaries, out, fidelity=FIDELITY, privacy=PASSED_PRIVACY)
    assert list((tmp_path / "open").iterdir()) == []


def test_export_will_not_overwrite_a_folder_unless_asked(linked, replica, package):
    with pytest.raises(ExportError, match="already exists"):
        export_replica(
            replica, linked.dictionaries, package, fidelity=FIDELITY, privacy=PASSED_PRIVACY
        )


def test_open_data_returns_the_tables_with_the_vault_dtypes(package, replica, monkeypatch):
    monkeypatch.setenv(OPEN_DATA_ENV, str(package))
    tables = open_data("cross_justice")
    assert list(tables) == list(replica)
    for name, frame in replica.items():
        # What a researcher session reads from the vault: the frame through its Parquet codec.
        vault_read = parquet_bytes_to_frame(frame_to_parquet_bytes(frame))
        pd.testing.assert_frame_equal(tables[name], vault_read)
        assert tables[name].dtypes.to_dict() == frame.dtypes.to_dict()
        assert tables[name].attrs["srs_dataset"] == name


def test_open_data_types_the_csv_from_the_schema_without_parquet(package, replica, tmp_path):
    copy = _copy(package, tmp_path)
    for parquet in copy.glob("*.parquet"):
        parquet.unlink()
    journeys = open_data(path=copy)["linked/journeys"]
    real = replica["linked/journeys"]
    assert pd.api.types.is_datetime64_any_dtype(journeys["offence_date"])
    assert journeys["remanded"].dtype == bool
    assert str(journeys["age_at_offence"].dtype) == "Int64"
    assert journeys["sentence_months"].dtype == "float64"
    assert (journeys["offence_date"] == real["offence_date"]).all()
    assert (
        journeys["sentence_type"].fillna("-").tolist() == real["sentence_type"].fillna("-").tolist()
    )


def test_open_data_says_how_to_get_the_export_when_missing(tmp_path, monkeypatch):
    monkeypatch.delenv(OPEN_DATA_ENV, raising=False)
    with pytest.raises(OpenDataNotFound, match="srs synth export --out"):
        open_data(path=tmp_path / "nowhere")


def test_open_data_reads_like_a_researcher_session(package, replica):
    """dataset() and datasets() as in srs.session(): sorted names, a fresh frame per read,
    polars on request, and an unknown name answered with the names there are."""
    data = open_data(path=package)
    assert data.datasets() == sorted(replica)
    assert data.datasets()[0] == "linked/journeys" and len(data.datasets()) == 4
    journeys = data.dataset("linked/journeys")
    pd.testing.assert_frame_equal(journeys, data["linked/journeys"])  # still a dict
    assert journeys.attrs["srs_dataset"] == "linked/journeys"
    journeys["remanded"] = False  # a change to what was read ...
    assert data.dataset("linked/journeys")["remanded"].any()  # ... is not in the next read
    persons = data.dataset("linked/persons", engine="polars")
    assert isinstance(persons, pl.DataFrame) and persons.height == len(replica["linked/persons"])
    with pytest.raises(UnknownDataset, match=r"no dataset 'linked/nope'.*it has linked/journeys, "):
        data.dataset("linked/nope")
    with pytest.raises(KeyError):  # what dict-style code catches
        data.dataset("linked/nope")
    with pytest.raises(OpenDataError, match="engine 'spark' is not one of pandas, polars"):
        data.dataset("linked/persons", engine="spark")
    with pytest.raises(OpenDataError, match="one version of each table"):
        data.dataset("linked/persons", version=2)
    assert "SYNTHETIC DATA" in data.notice and "(synthetic)" in repr(data)
    with data as same:  # closes like a session, holding nothing
        assert same is data


def test_exported_privacy_figures_are_rounded_so_they_give_back_no_exact_count(
    linked, replica, tmp_path
):
    # 203 of 649 held-out people: unrounded, the share names the count exactly.
    privacy = {
        "passed": True,
        "datasets": {
            "linked/persons": {
                "passed": True,
                "gates": [
                    {
                        "gate": "exact_matches",
                        "figure": -0.0282,
                        "passed": True,
                        "reason": "within",
                        "details": {"holdout_share": 203 / 649, "synthetic_rows_matching": 554},
                    }
                ],
            }
        },
    }
    out = export_replica(
        replica, linked.dictionaries, tmp_path / "package", fidelity=FIDELITY, privacy=privacy
    )
    written = json.loads((out / "privacy.json").read_text())
    (gate,) = written["datasets"]["linked/persons"]["gates"]
    assert gate["details"] == {"holdout_share": 0.313, "synthetic_rows_matching": 554}
    assert gate["figure"] == -0.028 and written["passed"] is True
    assert str(203 / 649) not in (out / "report.html").read_text()

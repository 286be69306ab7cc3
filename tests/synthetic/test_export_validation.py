"""validate_package under attack: packages broken the ways a download, an edit or a bad export
breaks them, each caught by frictionless (or by our own checks of what our exports promise
beyond the standard) and reported with its file, row and field in plain words."""

from __future__ import annotations

import hashlib
import json
import shutil

import frictionless
import pandas as pd
import pytest
from synthetic_fixtures import stand_in_replica

from synthetic.export import DATAPACKAGE, ExportError, export_replica, validate_package

PRIVACY = {"passed": True, "datasets": {}}
FIDELITY = {"overall_score": 0.9}
CHANGED = (
    "{file} does not match its hash in datapackage.json: the file was changed after export; "
    "restore it or export the replica again"
)


@pytest.fixture(scope="module")
def replica(linked):
    return stand_in_replica(linked.tables)


@pytest.fixture(scope="module")
def package(linked, replica, tmp_path_factory):
    out = tmp_path_factory.mktemp("validation") / "cross_justice"
    return export_replica(replica, linked.dictionaries, out, fidelity=FIDELITY, privacy=PRIVACY)


@pytest.fixture
def copy(package, tmp_path):
    """A copy of the exported package to break."""
    return shutil.copytree(package, tmp_path / "copy")


def _read(folder, table):
    return pd.read_csv(folder / f"{table}.csv", dtype=str, keep_default_na=False)


def _write(folder, table, frame):
    frame.to_csv(folder / f"{table}.csv", index=False, lineterminator="\n")


def _edit_csv(folder, table, column, index, value):
    # The cell of data row ``index``, which is row index + 2 of the file (the header is row 1).
    frame = _read(folder, table)
    frame.loc[index, column] = value
    _write(folder, table, frame)


def _descriptor(folder):
    return json.loads((folder / DATAPACKAGE).read_text())


def _write_descriptor(folder, descriptor):
    (folder / DATAPACKAGE).write_text(json.dumps(descriptor))


def _resource(descriptor, name):
    (resource,) = [r for r in descriptor["resources"] if r["name"] == name]
    return resource


def _field(descriptor, resource, name):
    (field,) = [f for f in _resource(descriptor, resource)["schema"]["fields"] if f["name"] == name]
    return field


def test_frictionless_itself_accepts_what_we_export(package):
    """The descriptor and data pass the reference implementation on its own, with the file
    hashes in the standard's "sha256:<hex>" form and the byte counts of the files."""
    report = frictionless.validate(str(package / DATAPACKAGE))
    assert report.valid, report.flatten(["type", "note"])
    assert [task.name for task in report.tasks] == ["persons", "journeys", "victims", "reoffending"]
    assert frictionless.Package.validate_descriptor(str(package / DATAPACKAGE)).valid
    for resource in _descriptor(package)["resources"]:
        data = (package / resource["path"]).read_bytes()
        assert resource["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert resource["bytes"] == len(data)
    assert validate_package(package) == []


def test_a_changed_cell_breaks_the_hash(copy):
    persons = _read(copy, "persons")
    index = int((persons["sex"] == "M").to_numpy().nonzero()[0][0])
    persons.loc[index, "sex"] = "F"  # still a valid value, and the same number of bytes
    _write(copy, "persons", persons)
    assert validate_package(copy) == [CHANGED.format(file="persons.csv")]


def test_an_appended_blank_line_changes_the_size_and_is_a_blank_row(copy, package):
    with (copy / "reoffending.csv").open("a") as csv:
        csv.write("\n")  # a blank line at the end: no row changes, the file does
    size = (package / "reoffending.csv").stat().st_size
    blank = len((package / "reoffending.csv").read_text().splitlines()) + 1
    assert validate_package(copy) == [
        f"reoffending.csv row {blank} is blank",
        CHANGED.format(file="reoffending.csv"),
        f"reoffending.csv is {size + 1} bytes where datapackage.json says {size}: the file was "
        "changed after export",
    ]


def test_cells_that_are_not_of_their_field_type(copy):
    _edit_csv(copy, "journeys", "age_at_offence", 1, "twenty")
    _edit_csv(copy, "journeys", "offence_date", 2, "31/12/2020")
    _edit_csv(copy, "journeys", "remanded", 2, "maybe")
    _edit_csv(copy, "journeys", "sentence_months", 3, "six")
    problems = validate_package(copy)
    assert problems[:4] == [
        "journeys.csv row 3, field age_at_offence: 'twenty' is not an integer",
        "journeys.csv row 4, field offence_date: '31/12/2020' is not a date (YYYY-MM-DD)",
        "journeys.csv row 4, field remanded: 'maybe' is not a boolean (true or false)",
        "journeys.csv row 5, field sentence_months: 'six' is not a number",
    ]
    assert CHANGED.format(file="journeys.csv") in problems


def test_a_value_outside_the_enum(copy):
    allowed = _field(_descriptor(copy), "persons", "sex")["constraints"]["enum"]
    _edit_csv(copy, "persons", "sex", 3, "X")
    assert validate_package(copy) == [
        f"persons.csv row 5, field sex: 'X' is not one of the allowed values ({', '.join(allowed)})",
        CHANGED.format(file="persons.csv"),
    ]


def test_a_duplicate_primary_key(copy):
    persons = _read(copy, "persons")
    lost, kept = persons.loc[1, "person_key"], persons.loc[0, "person_key"]
    persons.loc[1, "person_key"] = kept
    _write(copy, "persons", persons)
    problems = validate_package(copy)
    assert problems[0] == (
        f"persons.csv row 3: primary key person_key '{kept}' is also in row 2; each row needs a "
        "key of its own"
    )
    # The overwritten key leaves the journeys of that person pointing at no one.
    journeys = _read(copy, "journeys")
    row = int((journeys["person_key"] == lost).to_numpy().nonzero()[0][0]) + 2
    assert (
        f"journeys.csv row {row}, field person_key: '{lost}' matches no person_key in persons.csv"
        in problems
    )


def test_a_dangling_foreign_key(copy):
    _edit_csv(copy, "journeys", "person_key", 0, "nobody-at-all")
    _edit_csv(copy, "victims", "case_key", 2, "no-such-case")
    problems = validate_package(copy)
    assert problems[0] == (
        "journeys.csv row 2, field person_key: 'nobody-at-all' matches no person_key in persons.csv"
    )
    assert (
        "victims.csv row 4, field case_key: 'no-such-case' matches no case_key in journeys.csv"
        in problems
    )


def test_an_empty_foreign_key_refers_to_nothing(copy):
    _edit_csv(copy, "journeys", "person_key", 0, "")
    problems = validate_package(copy)
    assert problems[0] == CHANGED.format(file="journeys.csv")  # checked, and only changed
    assert not [problem for problem in problems if "row 2" in problem]


def test_a_missing_required_value(copy):
    _edit_csv(copy, "persons", "person_key", 4, "")
    problems = validate_package(copy)
    assert problems[:2] == [
        "persons.csv row 6, field person_key: the value is missing, but the field is required",
        "persons.csv row 6: the primary key person_key is empty",
    ]


def test_a_reordered_header(copy):
    victims = _read(copy, "victims")
    first, second = victims.columns[:2]
    victims[[second, first, *victims.columns[2:]]].to_csv(
        copy / "victims.csv", index=False, lineterminator="\n"
    )
    problems = validate_package(copy)
    assert problems[:2] == [
        f"victims.csv header, column 1: '{second}' where the schema has field '{first}' (the "
        "columns must be the schema's fields, in order)",
        f"victims.csv header, column 2: '{first}' where the schema has field '{second}' (the "
        "columns must be the schema's fields, in order)",
    ]


def test_a_renamed_column(copy):
    _read(copy, "victims").rename(columns={"sex": "gender"}).to_csv(
        copy / "victims.csv", index=False, lineterminator="\n"
    )
    problems = validate_package(copy)
    assert problems[0].startswith(
        "victims.csv header, column 3: 'gender' where the schema has field 'sex'"
    )


def test_a_missing_resource_file(copy):
    (copy / "reoffending.csv").unlink()
    assert validate_package(copy) == [
        "reoffending.csv is missing: datapackage.json lists it; restore it or export the "
        "replica again"
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '{"name": "cross-justice", "resources": [',
            "datapackage.json cannot be read as a Data Package: Expecting value: line 1 "
            "column 41 (char 40)",
        ),
        (
            "[1, 2, 3]",
            "datapackage.json cannot be read as a Data Package: its JSON is not an object",
        ),
        (
            '{"name": "cross-justice"}',
            "datapackage.json does not follow the Data Package standard: 'resources' is a "
            "required property",
        ),
        (
            '{"resources": [{"path": "persons.csv"}]}',
            "datapackage.json does not follow the Data Package standard: 'name' is a required "
            "property",
        ),
    ],
    ids=["not-json", "json-array", "no-resources-key", "resource-without-name"],
)
def test_a_malformed_datapackage_json(copy, text, problem):
    (copy / DATAPACKAGE).write_text(text)
    assert validate_package(copy) == [problem]


@pytest.mark.parametrize(
    ("break_descriptor", "problem"),
    [
        (
            lambda d: _field(d, "persons", "sex").update(type="wibble"),
            'field type "wibble" is not supported',
        ),
        (
            lambda d: _resource(d, "journeys").update(name="persons"),
            "names of the resources are not unique",
        ),
        (
            lambda d: _resource(d, "persons")["schema"].update(primaryKey=["nobody"]),
            "primary key \"['nobody']\" does not match the fields",
        ),
        (lambda d: d.update(name="Cross Justice"), "'Cross Justice' does not match"),
    ],
    ids=["unknown-type", "duplicate-names", "primary-key-not-a-field", "name"],
)
def test_a_descriptor_that_breaks_the_standard(copy, break_descriptor, problem):
    descriptor = _descriptor(copy)
    break_descriptor(descriptor)
    _write_descriptor(copy, descriptor)
    (found,) = validate_package(copy)
    assert found.startswith("datapackage.json does not follow the Data Package standard: ")
    assert problem in found


def test_constraints_we_do_not_export_are_still_checked(copy):
    """minimum and unique come from the standard, not from our export: frictionless checks them."""
    descriptor = _descriptor(copy)
    _field(descriptor, "persons", "birth_year")["constraints"] = {"minimum": 3000}
    _field(descriptor, "persons", "sex")["constraints"]["unique"] = True
    _write_descriptor(copy, descriptor)
    persons = _read(copy, "persons")
    second = int((persons["sex"] == persons.loc[0, "sex"]).to_numpy().nonzero()[0][1]) + 2
    problems = validate_package(copy)
    assert problems[0] == (
        f"persons.csv row 2, field birth_year: '{persons.loc[0, 'birth_year']}' is below the "
        "minimum 3000"
    )
    assert (
        f"persons.csv row {second}, field sex: '{persons.loc[0, 'sex']}' is also in row 2; "
        "values must be unique"
    ) in problems


def test_a_package_without_a_descriptor_is_invalid(tmp_path):
    assert validate_package(tmp_path) == [f"{tmp_path} has no datapackage.json"]


def test_our_promises_beyond_the_standard(copy):
    """What frictionless accepts but our exports promise not to do: no hash, a type open_data
    cannot read, no Table Schema (tests/synthetic/test_export_untrusted.py has the rest)."""
    descriptor = _descriptor(copy)
    del _resource(descriptor, "persons")["hash"]
    _field(descriptor, "journeys", "area")["type"] = "year"
    victims = _resource(descriptor, "victims")
    del victims["schema"], victims["profile"]  # the tabular profile requires a schema
    descriptor.pop("profile")  # and so does the tabular package profile
    _write_descriptor(copy, descriptor)
    assert frictionless.Package.validate_descriptor(str(copy / DATAPACKAGE)).valid  # the gap
    problems = validate_package(copy)
    assert problems[:3] == [
        "datapackage.json, resource persons: no sha256 hash of its file, so a change to the file "
        "would go unnoticed; export the replica again",
        "datapackage.json, resource journeys, field area: type 'year' is not one open_data can "
        "read (boolean, integer, number, date, string, datetime)",
        "datapackage.json, resource victims: its Table Schema is not written out in "
        "datapackage.json",
    ]


def test_a_table_at_a_url_is_refused_without_being_downloaded(copy):
    descriptor = _descriptor(copy)
    _resource(descriptor, "reoffending")["path"] = "https://example.invalid/reoffending.csv"
    _write_descriptor(copy, descriptor)
    assert validate_package(copy) == [
        "datapackage.json, resource reoffending: path 'https://example.invalid/reoffending.csv' "
        "is not one file in the package folder; give the name of its CSV beside "
        "datapackage.json, e.g. persons.csv"
    ]


def test_a_package_with_no_resources(copy):
    descriptor = _descriptor(copy)
    descriptor["resources"] = []
    _write_descriptor(copy, descriptor)
    assert frictionless.validate(str(copy / DATAPACKAGE)).valid  # the gap we fill
    assert validate_package(copy) == [
        "datapackage.json lists no resources; export the replica again, a CSV per table"
    ]


def test_dates_with_a_time_export_as_datetimes_frictionless_reads(linked, replica, tmp_path):
    timed = dict(replica)
    journeys = replica["linked/journeys"].copy()
    journeys["offence_date"] = journeys["offence_date"] + pd.Timedelta(hours=9, minutes=30)
    timed["linked/journeys"] = journeys
    out = export_replica(
        timed, linked.dictionaries, tmp_path / "timed", fidelity=FIDELITY, privacy=PRIVACY
    )
    assert _field(_descriptor(out), "journeys", "offence_date")["type"] == "datetime"
    assert frictionless.validate(str(out / DATAPACKAGE)).valid
    _edit_csv(out, "journeys", "offence_date", 0, "2020-13-01T09:30:00")
    assert validate_package(out)[0] == (
        "journeys.csv row 2, field offence_date: '2020-13-01T09:30:00' is not a date and time "
        "(YYYY-MM-DDThh:mm:ss)"
    )


def test_export_refuses_a_replica_off_its_schema_with_the_problems(linked, replica, tmp_path):
    broken = dict(replica)
    persons = replica["linked/persons"].copy()
    persons.loc[persons.index[0], "person_key"] = persons.loc[persons.index[1], "person_key"]
    broken["linked/persons"] = persons
    with pytest.raises(ExportError, match=r"persons.csv row 3: primary key person_key '"):
        export_replica(
            broken, linked.dictionaries, tmp_path / "out", fidelity=FIDELITY, privacy=PRIVACY
        )
    assert list(tmp_path.iterdir()) == []

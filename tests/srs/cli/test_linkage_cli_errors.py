"""`srs link files` on a user's mistakes: a clear message and exit status 2, never a traceback;
and the notes of a run (values made missing, Splink's warnings) printed under the summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from srs.cli import app

HEADER = "ref,given,family,born\n"
ROWS = [
    ("William", "Turner", "19800211"),
    ("Sarah", "Okafor", "19750930"),
    ("James", "Li", "19921201"),
    ("Aisha", "Begum", "19880719"),
    ("Robert", "Nowak", "19690305"),
    ("Emma", "Walsh", "20011123"),
    ("Daniel", "Evans", "19830514"),
    ("Grace", "Murphy", "19790127"),
    ("Omar", "Hussain", "19950808"),
    ("Chloe", "Baker", "19901010"),
]


def write_table(path: Path, rows: list[tuple[str, str, str]], prefix: str) -> Path:
    lines = [f"{prefix}{n},{f},{s},{d}" for n, (f, s, d) in enumerate(rows)]
    path.write_text(HEADER + "".join(line + "\n" for line in lines))
    return path


def write_mapping(tmp_path: Path, date_format: str = "%Y%m%d", roles: str | None = None) -> Path:
    roles = roles or (
        f"forename: given, surname: family, date_of_birth: born, date_format: '{date_format}'"
    )
    path = tmp_path / "mapping.yaml"
    path.write_text(
        f"tables:\n  a: {{record_id: ref, {roles}}}\n  b: {{record_id: ref, {roles}}}\n"
    )
    return path


def link_files(tmp_path: Path, a: Path, b: Path, mapping: Path, *extra: str):
    return CliRunner().invoke(
        app,
        [
            "link",
            "files",
            f"a={a}",
            f"b={b}",
            *extra,
            "--mapping",
            str(mapping),
            "--out",
            str(tmp_path / "lookup.csv"),
        ],
    )


def assert_refused(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in text, result.output


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "a.csv"
    empty.write_bytes(b"")
    b = write_table(tmp_path / "b.csv", ROWS, "B")
    assert_refused(link_files(tmp_path, empty, b, write_mapping(tmp_path)), "empty (0 bytes)")


def test_two_header_only_files_are_refused(tmp_path: Path) -> None:
    a = write_table(tmp_path / "a.csv", [], "A")
    b = write_table(tmp_path / "b.csv", [], "B")
    assert_refused(link_files(tmp_path, a, b, write_mapping(tmp_path)), "hold no records")


def test_a_mapping_with_only_record_id_is_refused(tmp_path: Path) -> None:
    a = write_table(tmp_path / "a.csv", ROWS, "A")
    b = write_table(tmp_path / "b.csv", ROWS, "B")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("tables:\n  a: {record_id: ref}\n  b: {record_id: ref}\n")
    assert_refused(link_files(tmp_path, a, b, mapping), "maps only record_id")


def test_a_table_name_given_twice_is_refused(tmp_path: Path) -> None:
    a = write_table(tmp_path / "a.csv", ROWS, "A")
    b = write_table(tmp_path / "b.csv", ROWS, "B")
    result = CliRunner().invoke(
        app,
        [
            "link",
            "files",
            f"a={a}",
            f"a={b}",
            "--mapping",
            str(write_mapping(tmp_path)),
            "--out",
            str(tmp_path / "lookup.csv"),
        ],
    )
    assert_refused(result, "'a' is given twice")
    assert not (tmp_path / "lookup.csv").exists()


def test_a_wrong_date_format_is_refused(tmp_path: Path) -> None:
    a = write_table(tmp_path / "a.csv", ROWS, "A")
    b = write_table(tmp_path / "b.csv", ROWS, "B")
    result = link_files(tmp_path, a, b, write_mapping(tmp_path, "%d/%m/%Y"))
    assert_refused(result, "10 of 10 values are not dates in the format %d/%m/%Y", "%Y%m%d")


def test_mixed_date_formats_are_refused(tmp_path: Path) -> None:
    a = write_table(tmp_path / "a.csv", ROWS, "A")
    mixed = [
        (f, s, f"{d[6:]}/{d[4:6]}/{d[:4]}" if n < 2 else d) for n, (f, s, d) in enumerate(ROWS)
    ]
    b = write_table(tmp_path / "b.csv", mixed, "B")
    result = link_files(tmp_path, a, b, write_mapping(tmp_path))
    assert_refused(result, "table 'b'", "2 of 10", "%Y%m%d", "%d/%m/%Y")


def test_padded_dates_link_and_notes_are_printed(tmp_path: Path) -> None:
    a = write_table(tmp_path / "a.csv", ROWS, "A")
    padded = [(f, s, f" {d} ") for f, s, d in ROWS[:-1]] + [("Chloe", "Baker", "19901310")]
    b = write_table(tmp_path / "b.csv", padded, "B")
    result = link_files(tmp_path, a, b, write_mapping(tmp_path))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "note" in text and "'19901310' (1)" in text, result.output
    lookup = pd.read_csv(tmp_path / "lookup.csv", dtype=str).set_index(["source", "record_id"])
    clusters = lookup["cluster_id"]
    for n in range(len(ROWS) - 1):
        assert clusters[("a", f"A{n}")] == clusters[("b", f"B{n}")]


@pytest.mark.parametrize("item", ["=x.csv", "a="])
def test_a_table_without_name_or_path_is_refused(tmp_path: Path, item: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            "link",
            "files",
            item,
            "--mapping",
            str(write_mapping(tmp_path)),
            "--out",
            str(tmp_path / "o.csv"),
        ],
    )
    assert_refused(result, "NAME=PATH")


def test_an_identifier_blank_in_every_file_links_on_the_other_fields(tmp_path: Path) -> None:
    paths = []
    for name in ("a", "b"):
        lines = [f"{name.upper()}{n},{f},{s},{d}, \n" for n, (f, s, d) in enumerate(ROWS)]
        path = tmp_path / f"{name}.csv"
        path.write_text("ref,given,family,born,police_number\n" + "".join(lines))
        paths.append(path)
    roles = (
        "forename: given, surname: family, date_of_birth: born, pnc: police_number, "
        "date_format: '%Y%m%d'"
    )
    result = link_files(tmp_path, *paths, write_mapping(tmp_path, roles=roles))
    assert result.exit_code == 0, result.output
    assert "not compared, no record has a value: pnc" in " ".join(result.output.split())
    lookup = pd.read_csv(tmp_path / "lookup.csv")
    assert lookup["cluster_id"].nunique() == len(ROWS)

"""The file gate: types, sizes, CSV rows and identifier columns, from policy."""

from __future__ import annotations

import pytest

from disclosure.file_gate import PNG_SIGNATURE, FileGateRules, check_file, identifier_columns


@pytest.fixture(scope="module")
def rules(policies) -> FileGateRules:
    release = policies.release
    return FileGateRules(
        release.allowed_file_types,
        release.max_file_size_mb,
        release.max_csv_rows,
        release.identifier_column_patterns,
    )


def test_a_small_aggregate_table_passes(rules) -> None:
    verdict = check_file("table.csv", b"offence,count\nassault,40\ntheft,55\n", rules)
    assert verdict.allowed and verdict.rows == 2 and verdict.reasons == []


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("model.pkl", b"\x80\x04", "file type .pkl is not allowed"),
        ("noextension", b"hello", "file type .(none) is not allowed"),
        ("plot.png", b"GIF89a", "is not a PNG image"),
        ("notes.txt", "caf\xe9".encode("latin-1"), "must be UTF-8 text"),
        ("big.txt", b"x" * 11_000_001, "over the 10 MB limit"),
    ],
)
def test_refused_files(rules, name, content, reason) -> None:
    verdict = check_file(name, content, rules)
    assert not verdict.allowed
    assert any(reason in r for r in verdict.reasons), verdict.reasons


def test_record_level_csv_is_refused(rules) -> None:
    rows = "\n".join(f"p{i},{i % 7}" for i in range(5001))
    verdict = check_file("extract.csv", f"person_key,cases\n{rows}\n".encode(), rules)
    assert not verdict.allowed
    assert any("5,001 rows is over the 5,000-row limit" in r for r in verdict.reasons)
    assert any("'person_key' looks like a record-level identifier" in r for r in verdict.reasons)


def test_a_png_passes(rules) -> None:
    assert check_file("figure.png", PNG_SIGNATURE + b"rest", rules).allowed


def test_identifier_patterns(rules) -> None:
    columns = [
        "person_key",
        "case_key",
        "Forename",
        "surname",
        "pnc_id",
        "postcode",
        "date_of_birth",
        "offence",
        "count",
        "area",
        "age_band",
        "sentence_months",
    ]
    assert identifier_columns(columns, rules.identifier_column_patterns) == [
        "person_key",
        "case_key",
        "Forename",
        "surname",
        "pnc_id",
        "postcode",
        "date_of_birth",
    ]

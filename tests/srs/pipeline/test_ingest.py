"""Ingest: every malformed file gives a clear error or a rejects file; counts always add up."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srs.governance.policy import PolicyError
from srs.pipeline.ingest import (
    DEFAULT_MAX_EXTRACT_BYTES,
    HASH_CHUNK_BYTES,
    INGEST_POLICY_FILE,
    SchemaError,
    UnsharedVariables,
    file_sha256,
    ingest_file,
    known_sources,
    load_dictionary,
    load_ingest_policy,
)

HEADER = "arrest_id,crime_ref,pnc_id,forename,surname,sex,date_of_birth,postcode,offence_code,offence_date,arrest_date,force_code"
GOOD = [
    "A000000001,CR000000001,2001/1234567A,John,Smith,M,1990-04-03,LS12 4TX,ASL02,2021-05-01,2021-05-02,F03",
    "A000000002,CR000000002,,Mary,Jones,F,1985-12-30,,THF03,2022-01-10,2022-01-10,F07",
    "A000000003,CR000000003,2010/7654321B,Ali,Khan,M,2001-07-15,B9 1AB,DRG01,2023-03-03,2023-03-04,F01",
]


@pytest.fixture(scope="module")
def police():
    return load_dictionary("police_arrests")


def write(
    tmp_path: Path, lines: list[str], name: str = "police.csv", raw: bytes | None = None
) -> Path:
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ingest(path, police, offences):
    result = ingest_file(path, police, offences)
    assert result.rows_in == result.rows_accepted + result.rows_rejected
    return result


def test_clean_file_is_accepted_and_typed(tmp_path, police, offences) -> None:
    result = ingest(write(tmp_path, [HEADER, *GOOD]), police, offences)
    assert (result.rows_in, result.rows_accepted, result.rows_rejected) == (3, 3, 0)
    frame = result.accepted
    assert str(frame["date_of_birth"].dtype).startswith("datetime64")
    assert frame.loc[0, "date_of_birth"] == pd.Timestamp("1990-04-03")
    assert pd.isna(frame.loc[1, "pnc_id"]) and pd.isna(frame.loc[1, "postcode"])


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (6, "1990-13-03", "date_of_birth '1990-13-03' is not a date in the form YYYY-MM-DD"),
        (
            6,
            "03/04/1990",
            "is not a date in the form YYYY-MM-DD",
        ),  # not coerced from another format
        (6, "1890-01-01", "is before the allowed 1900-01-01"),
        (8, "ZZZ99", "offence_code 'ZZZ99' is not a known offence code"),
        (5, "X", "sex 'X' is not one of M, F"),
        (2, "12345", "does not match the pattern"),
        (3, "", "forename is required but empty"),
        (10, "2021-04-30", "rule arrest_date >= offence_date broken"),
    ],
)
def test_bad_values_are_rejected_with_reasons(
    tmp_path, police, offences, field, value, reason
) -> None:
    bad = GOOD[0].split(",")
    bad[field] = value
    result = ingest(write(tmp_path, [HEADER, GOOD[1], ",".join(bad), GOOD[2]]), police, offences)
    assert result.rows_accepted == 2 and result.rows_rejected == 1
    assert reason in result.rejects.loc[0, "reasons"]
    assert result.rejects.loc[0, "line"] == 2
    assert "A000000001" in result.rejects.loc[0, "record"]


def test_duplicate_record_ids_are_rejected(tmp_path, police, offences) -> None:
    result = ingest(write(tmp_path, [HEADER, GOOD[0], GOOD[0]]), police, offences)
    assert result.rows_rejected == 1
    assert "appears more than once" in result.rejects.loc[0, "reasons"]


def test_wrong_number_of_fields_is_rejected(tmp_path, police, offences) -> None:
    result = ingest(write(tmp_path, [HEADER, GOOD[0], GOOD[1] + ",extra"]), police, offences)
    assert result.rows_rejected == 1
    assert "row has 13 fields, the header has 12" in result.rejects.loc[0, "reasons"]


def test_non_utf8_row_is_rejected_and_the_rest_kept(tmp_path, police, offences) -> None:
    raw = (
        (HEADER + "\n" + GOOD[0] + "\n").encode()
        + GOOD[1].replace("Mary", "M\xe4ry").encode("latin-1")
        + b"\n"
        + GOOD[2].encode()
        + b"\n"
    )
    result = ingest(write(tmp_path, [], raw=raw), police, offences)
    assert (result.rows_in, result.rows_accepted, result.rows_rejected) == (3, 2, 1)
    assert "not UTF-8" in result.rejects.loc[0, "reasons"]


def test_non_utf8_header_refuses_the_file(tmp_path, police, offences) -> None:
    raw = HEADER.replace("forename", "for\xe9name").encode("latin-1") + b"\n"
    with pytest.raises(SchemaError, match="header line is not UTF-8"):
        ingest_file(write(tmp_path, [], raw=raw), police, offences)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (HEADER.replace(",force_code", ""), "missing column(s): force_code"),
        (HEADER.replace("surname", "family_name"), "renamed?"),
        (HEADER + ",notes", "unexpected column(s): notes"),
    ],
)
def test_schema_problems_refuse_the_whole_file(tmp_path, police, offences, header, message) -> None:
    rows = [r if "notes" not in header else r + "," for r in GOOD]
    if "force_code" not in header:
        rows = [r.rsplit(",", 1)[0] for r in GOOD]
    with pytest.raises(
        SchemaError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")
    ):
        ingest_file(write(tmp_path, [header, *rows]), police, offences)


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_wrong_delimiter_is_named(tmp_path, police, offences, delimiter) -> None:
    lines = [line.replace(",", delimiter) for line in [HEADER, *GOOD]]
    with pytest.raises(SchemaError, match="seems to be delimited by"):
        ingest_file(write(tmp_path, lines), police, offences)


def test_empty_file_is_refused(tmp_path, police, offences) -> None:
    with pytest.raises(SchemaError, match="the file is empty"):
        ingest_file(write(tmp_path, [], raw=b""), police, offences)
    with pytest.raises(SchemaError, match="no such file"):
        ingest_file(tmp_path / "absent.csv", police, offences)


def test_header_only_file_has_no_rows(tmp_path, police, offences) -> None:
    result = ingest(write(tmp_path, [HEADER]), police, offences)
    assert (result.rows_in, result.rows_accepted, result.rows_rejected) == (0, 0, 0)


def test_column_of_the_wrong_type_refuses_the_file(tmp_path, police, offences) -> None:
    rows = [",".join(r.split(",")[:9] + ["yesterday"] + r.split(",")[10:]) for r in GOOD]
    with pytest.raises(SchemaError, match="offence_date should hold date values but 3 of 3"):
        ingest_file(write(tmp_path, [HEADER, *rows]), police, offences)


def test_parquet_extract(tmp_path, police, offences) -> None:
    frame = pd.read_csv(write(tmp_path, [HEADER, *GOOD]), dtype=str, keep_default_na=False)
    path = tmp_path / "police.parquet"
    frame.to_parquet(path)
    result = ingest(path, police, offences)
    assert result.rows_accepted == 3
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(SchemaError, match="not a readable Parquet file"):
        ingest_file(tmp_path / "broken.parquet", police, offences)


def test_every_simulated_extract_ingests_cleanly(simulated, offences) -> None:
    _, paths = simulated
    for source in known_sources():
        result = ingest_file(paths[source], load_dictionary(source), offences)
        assert result.rows_rejected == 0, result.rejects.head()
        assert result.rows_accepted == result.rows_in > 0


def test_unknown_source_lists_the_known_ones() -> None:
    with pytest.raises(PolicyError, match="known sources: cps_charging, crown_court_cases"):
        load_dictionary("interpol")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(
        st.lists(st.text(alphabet='AZaz09-/ ,;"', max_size=12), min_size=12, max_size=12),
        max_size=6,
    )
)
def test_counts_always_add_up(tmp_path, police, offences, cells) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER.split(","))
    writer.writerows(cells)
    path = tmp_path / "fuzz.csv"
    path.write_text(buffer.getvalue())
    try:
        result = ingest_file(path, police, offences)
    except SchemaError:
        return  # a whole-file refusal is a clear answer too
    assert result.rows_in == result.rows_accepted + result.rows_rejected


# ---------------------------------------------------------------- size, hashing, variables
def test_the_file_hash_is_streamed_and_matches_the_bytes(tmp_path, police, offences) -> None:
    # Larger than one hashing chunk, so the chunks are joined as one digest.
    path = write(tmp_path, [], raw=b"x" * (HASH_CHUNK_BYTES * 2 + 17))
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    clean = write(tmp_path, [HEADER, *GOOD], name="clean.csv")
    assert ingest(clean, police, offences).file_sha256 == file_sha256(clean)
    # A hash the caller took already is kept, not taken again.
    assert ingest_file(clean, police, offences, sha256="ab" * 32).file_sha256 == "ab" * 32


def test_the_ingest_policy_defaults_and_is_validated(tmp_path) -> None:
    assert load_ingest_policy(tmp_path).max_extract_bytes == DEFAULT_MAX_EXTRACT_BYTES
    assert load_ingest_policy().max_extract_bytes == DEFAULT_MAX_EXTRACT_BYTES
    (tmp_path / INGEST_POLICY_FILE).write_text("max_extract_bytes: 1000\n", encoding="utf-8")
    assert load_ingest_policy(tmp_path).max_extract_bytes == 1000
    for text, key in [
        ("max_extract_bytes: 0\n", "max_extract_bytes"),
        ("max_extract_bytes: true\n", "max_extract_bytes"),
        ("max_extract_bytes: '5GB'\n", "max_extract_bytes"),
        ("max_extract_byte: 10\n", "max_extract_byte"),
        ("max_extract_bytes: [1\n", "not valid YAML"),
    ]:
        (tmp_path / INGEST_POLICY_FILE).write_text(text, encoding="utf-8")
        with pytest.raises(PolicyError, match=key):
            load_ingest_policy(tmp_path)


def test_values_in_variables_not_shared_refuse_the_file(tmp_path, police, offences) -> None:
    shared = [c.name for c in police.columns if c.name not in ("postcode", "pnc_id")]
    path = write(tmp_path, [HEADER, *GOOD])
    with pytest.raises(UnsharedVariables, match="2 row\\(s\\) carry values in pnc_id, postcode"):
        ingest_file(path, police, offences, variables=shared)
    # The same file as Parquet: refused the same way.
    parquet = tmp_path / "police.parquet"
    pd.read_csv(path, dtype=str).to_parquet(parquet)
    with pytest.raises(UnsharedVariables) as caught:
        ingest_file(parquet, police, offences, variables=shared)
    assert caught.value.variables == ["pnc_id", "postcode"] and caught.value.rows == 2
    # Blank in the file: taken in, and a required variable not shared is not required.
    blank = [
        ",".join(v if i not in (2, 3, 7) else "" for i, v in enumerate(line.split(",")))
        for line in GOOD
    ]
    result = ingest_file(
        write(tmp_path, [HEADER, *blank], name="blank.csv"),
        police,
        offences,
        variables=[s for s in shared if s != "forename"],
    )
    assert (result.rows_accepted, result.rows_rejected) == (3, 0)

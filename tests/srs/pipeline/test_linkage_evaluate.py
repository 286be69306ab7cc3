"""`srs link evaluate` and `evaluate` refuse inputs that would give wrong figures without a
word; `link files` reads tab-, semicolon- and bar-separated tables and names a non-UTF-8 file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from srs.cli import app
from srs.pipeline.linkage import LinkageError, evaluate

# Persons 1 = {a:1, b:1}, 2 = {a:2, b:2}, 3 = {a:3, b:3, b:4}; the lookup splits person 3.
TRUTH = pd.DataFrame(
    {
        "source": ["a", "a", "a", "b", "b", "b", "b"],
        "record_id": ["1", "2", "3", "1", "2", "3", "4"],
        "person_id": ["p1", "p2", "p3", "p1", "p2", "p3", "p3"],
    }
)
LOOKUP = pd.DataFrame(
    {
        "source": TRUTH["source"],
        "record_id": TRUTH["record_id"],
        "cluster_id": ["c1", "c2", "c3", "c1", "c2", "c3", "c4"],
    }
)


def run_evaluate(tmp_path: Path, truth: pd.DataFrame | str, lookup: pd.DataFrame | str):
    files = []
    for name, content in (("truth.csv", truth), ("lookup.csv", lookup)):
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content)
        else:
            content.to_csv(path, index=False)
        files.append(str(path))
    return CliRunner().invoke(app, ["link", "evaluate", "--truth", files[0], "--lookup", files[1]])


def assert_refused(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in text, result.output


def measures(output: str) -> dict[str, str]:
    rows = [line.replace("│", "|").split("|") for line in output.splitlines() if "│" in line]
    return {row[1].strip(): row[2].strip() for row in rows if len(row) >= 3}


def test_a_complete_lookup_is_measured(tmp_path: Path) -> None:
    result = run_evaluate(tmp_path, TRUTH, LOOKUP)
    assert result.exit_code == 0, result.output
    shown = measures(result.output)
    # true pairs: 1 + 1 + 3 = 5; predicted 3; all correct
    assert shown["records"] == "7" and shown["true pairs"] == "5", result.output
    assert shown["precision"] == "1.0000" and shown["recall"] == "0.6000", result.output


def test_a_lookup_of_one_table_of_two_is_refused(tmp_path: Path) -> None:
    # Before: precision, recall and F1 1.0 on 0 true pairs.
    result = run_evaluate(tmp_path, TRUTH, LOOKUP[LOOKUP["source"] == "a"])
    assert_refused(
        result,
        "4 of the 7 records of the ground truth are not in the lookup (e.g. b:1)",
        "the lookup holds table(s) a, the ground truth a, b",
    )


def test_a_header_only_lookup_is_refused(tmp_path: Path) -> None:
    # Before: F1 1.0 on 0 records.
    result = run_evaluate(tmp_path, TRUTH, "source,record_id,cluster_id\n")
    assert_refused(result, "the lookup holds no records")


def test_blank_person_ids_are_refused(tmp_path: Path) -> None:
    # Before: each blank dropped its record's pairs and precision fell, without a word.
    truth = TRUTH.assign(person_id=TRUTH["person_id"].where(TRUTH.index != 6, " "))
    truth.loc[5, "person_id"] = None
    result = run_evaluate(tmp_path, truth, LOOKUP)
    assert_refused(result, "the ground truth has 2 of 7 row(s) with no person_id")


def test_blank_cluster_ids_are_refused(tmp_path: Path) -> None:
    lookup = LOOKUP.assign(cluster_id=LOOKUP["cluster_id"].where(LOOKUP.index != 0))
    result = run_evaluate(tmp_path, TRUTH, lookup)
    assert_refused(result, "the lookup has 1 of 7 row(s) with no cluster_id")


@pytest.mark.parametrize("name", ["truth", "lookup"])
def test_a_record_on_two_rows_is_refused(tmp_path: Path, name: str) -> None:
    # Before: a repeated truth row made pairs with itself and inflated the counts.
    truth, lookup = TRUTH, LOOKUP
    if name == "truth":
        truth = pd.concat([TRUTH, TRUTH.iloc[[3]]])
    else:
        lookup = pd.concat([LOOKUP, LOOKUP.iloc[[3]]])
    which = "ground truth" if name == "truth" else "lookup"
    result = run_evaluate(tmp_path, truth, lookup)
    assert_refused(result, f"the {which} has 1 record(s) on more than one row (e.g. b:1, on 2")


def test_lookup_records_missing_from_the_truth_are_refused(tmp_path: Path) -> None:
    extra = pd.DataFrame({"source": ["c"], "record_id": ["9"], "cluster_id": ["c9"]})
    result = run_evaluate(tmp_path, TRUTH, pd.concat([LOOKUP, extra]))
    assert_refused(
        result, "1 of the 8 records of the lookup are not in the ground truth (e.g. c:9)"
    )


@pytest.mark.parametrize("empty", ["truth", "lookup"])
def test_a_zero_byte_file_is_refused(tmp_path: Path, empty: str) -> None:
    # Before: pandas' EmptyDataError traceback.
    truth = "" if empty == "truth" else TRUTH
    lookup = "" if empty == "lookup" else LOOKUP
    assert_refused(run_evaluate(tmp_path, truth, lookup), f"{empty}.csv is empty (0 bytes)")


def test_spaced_headers_and_values_are_read(tmp_path: Path) -> None:
    # FEBRL writes "source, record_id, person_id" with a space after each comma.
    spaced = "source, record_id, person_id\n" + "".join(
        f"{s}, {r}, {p}\n" for s, r, p in TRUTH.itertuples(index=False)
    )
    result = run_evaluate(tmp_path, spaced, LOOKUP)
    assert result.exit_code == 0, result.output
    assert measures(result.output)["recall"] == "0.6000", result.output


def test_missing_columns_are_named_with_those_needed(tmp_path: Path) -> None:
    truth = TRUTH.rename(columns={"person_id": "person"})
    assert_refused(
        run_evaluate(tmp_path, truth, LOOKUP),
        "the ground truth lacks column(s) person_id; it needs the columns source, record_id, "
        "person_id",
    )


def test_a_truth_without_a_true_pair_is_refused(tmp_path: Path) -> None:
    truth = TRUTH.assign(person_id=[f"p{n}" for n in range(len(TRUTH))])
    assert_refused(run_evaluate(tmp_path, truth, LOOKUP), "no true pair to find")


def test_the_python_api_refuses_too() -> None:
    with pytest.raises(LinkageError, match="are not in the lookup"):
        evaluate(LOOKUP.iloc[:3], TRUTH)
    with pytest.raises(LinkageError, match="with no person_id"):
        evaluate(LOOKUP, TRUTH.assign(person_id=None))


def test_truth_records_never_linked_can_be_left_out_and_counted() -> None:
    # The vault's lookup lacks the rows ingest rejected; the truth still holds them.
    quality = evaluate(LOOKUP.iloc[:-1], TRUTH, leave_out_unlinked=True)
    assert quality.truth_records_left_out == 1 and quality.records == 6
    assert (quality.true_pairs, quality.correct_pairs) == (3, 3)
    with pytest.raises(LinkageError, match="not in the ground truth"):
        evaluate(LOOKUP, TRUTH.iloc[:-1], leave_out_unlinked=True)


# ------------------------------------------------------------------ tables for `link files`
HEADER = ["ref", "given", "family", "born"]
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


def write_table(
    path: Path, prefix: str, sep: str = ",", rows=ROWS, encoding: str = "utf-8"
) -> Path:
    lines = [sep.join(HEADER)] + [sep.join((f"{prefix}{n}", *row)) for n, row in enumerate(rows)]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def link_files(tmp_path: Path, a: Path, b: Path):
    mapping = tmp_path / "mapping.yaml"
    roles = "forename: given, surname: family, date_of_birth: born, date_format: '%Y%m%d'"
    mapping.write_text(
        f"tables:\n  a: {{record_id: ref, {roles}}}\n  b: {{record_id: ref, {roles}}}\n"
    )
    return CliRunner().invoke(
        app,
        [
            "link",
            "files",
            f"a={a}",
            f"b={b}",
            "--mapping",
            str(mapping),
            "--out",
            str(tmp_path / "lookup.csv"),
        ],
    )


@pytest.mark.parametrize("sep", ["\t", ";", "|"], ids=["tab", "semicolon", "bar"])
def test_tables_separated_otherwise_than_by_commas_link(tmp_path: Path, sep: str) -> None:
    # Before: "table 'a' has no column(s) ref, given, family, born named in its mapping".
    a = write_table(tmp_path / "a.txt", "A", sep)
    b = write_table(tmp_path / "b.csv", "B")
    result = link_files(tmp_path, a, b)
    assert result.exit_code == 0, result.output
    lookup = pd.read_csv(tmp_path / "lookup.csv", dtype=str).set_index(["source", "record_id"])
    clusters = lookup["cluster_id"]
    assert all(clusters[("a", f"A{n}")] == clusters[("b", f"B{n}")] for n in range(len(ROWS)))


def test_a_latin1_table_is_refused_with_advice(tmp_path: Path) -> None:
    # Before: "'utf-8' codec can't decode byte 0xe9 in position ...".
    accented = [("José", "Núñez", "19800211"), *ROWS[1:]]
    a = write_table(tmp_path / "a.csv", "A", rows=accented, encoding="latin-1")
    b = write_table(tmp_path / "b.csv", "B")
    assert_refused(
        link_files(tmp_path, a, b),
        "a.csv is not UTF-8 text (byte 0xe9 on line 2",
        "save it as UTF-8",
    )


def test_blank_record_ids_are_refused(tmp_path: Path) -> None:
    # Before: "record ids must be unique within a table; a:nan appears twice".
    a = write_table(tmp_path / "a.csv", "A")
    lines = a.read_text().splitlines()
    for n in (1, 4, 7):
        lines[n] = "," + lines[n].split(",", 1)[1]
    a.write_text("\n".join(lines) + "\n")
    b = write_table(tmp_path / "b.csv", "B")
    assert_refused(
        link_files(tmp_path, a, b),
        "table 'a': 3 record(s) have no record id in column 'ref'; every record needs one",
    )


def test_link_analyse_reads_a_truth_with_spaced_headers(tmp_path: Path) -> None:
    # Before: "the ground truth lacks column(s) person_id, record_id".
    a = write_table(tmp_path / "a.csv", "A")
    b = write_table(tmp_path / "b.csv", "B")
    link_files(tmp_path, a, b)  # writes the mapping
    truth = tmp_path / "truth.csv"
    truth.write_text(
        "source, record_id, person_id\n"
        + "".join(f"{s}, {s.upper()}{n}, {n}\n" for s in "ab" for n in range(len(ROWS)))
    )
    result = CliRunner().invoke(
        app,
        [
            "link",
            "analyse",
            f"a={a}",
            f"b={b}",
            "--mapping",
            str(tmp_path / "mapping.yaml"),
            "--truth",
            str(truth),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "of 10 true pairs" in " ".join(result.output.split()), result.output

"""Blocking measured: the keys rules may name, blocking recall against a truth, `srs link
analyse`, and the comparison budget that refuses rules making too many pairs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from srs.cli import app
from srs.pipeline.linkage import (
    LinkageError,
    SourceMapping,
    load_linkage_settings,
    override_settings,
    standardise,
)
from srs.pipeline.linkage.blocking import (
    ComparisonBudgetExceeded,
    analyse_blocking,
    blocking_recall,
    check_comparison_budget,
)

HEADER = "ref,given,family,born,post\n"
# Persons: P0 (A0, A3, B0: one date of birth, postcodes differ), P1 (A1, B1: day and month
# swapped, one postcode), P2 (A2, B2: dates differ, no postcodes, names sound alike), and B3
# alone. A4 and B4 are two persons with one postcode.
TABLE_A = [
    ("A0", "William", "Turner", "19800211", "SW1A 1AA"),
    ("A1", "Sarah", "Okafor", "19750930", "M1 1AE"),
    ("A2", "James", "Li", "19921201", ""),
    ("A3", "Will", "Turner", "19800211", "LS1 4AP"),
    ("A4", "Grace", "Murphy", "19790127", "B1 1BB"),
]
TABLE_B = [
    ("B0", "William", "Turnor", "19800211", "E1 6AN"),
    ("B1", "Sarah", "Okafor", "19750309", "M1 1AE"),
    ("B2", "James", "Lee", "19921212", ""),
    ("B3", "Omar", "Hussain", "19950808", "CF10 1AA"),
    ("B4", "Emma", "Walsh", "20011123", "B1 1BB"),
]
PERSON = {"A0": 0, "A3": 0, "B0": 0, "A1": 1, "B1": 1, "A2": 2, "B2": 2, "B3": 3, "A4": 4}
PERSON["B4"] = 5
MAPPING = SourceMapping(
    record_id="ref",
    columns={"forename": "given", "surname": "family", "date_of_birth": "born", "postcode": "post"},
    date_format="%Y%m%d",
)


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["ref", "given", "family", "born", "post"]).replace("", None)


def truth() -> pd.DataFrame:
    return pd.DataFrame(
        [("a" if ref[0] == "A" else "b", ref, person) for ref, person in PERSON.items()],
        columns=["source", "record_id", "person_id"],
    )


def settings(**overrides):
    return override_settings(load_linkage_settings(), overrides, "test")


@pytest.fixture
def records() -> pd.DataFrame:
    tables = {"a": frame(TABLE_A), "b": frame(TABLE_B)}
    return standardise(tables, {"a": MAPPING, "b": MAPPING}, settings())


def test_blocking_keys_agree_on_names_that_sound_alike_even_transposed() -> None:
    tables = {
        "a": frame([("A0", "Neumann", "Michaela", "19151111", ""), ("A1", "", "Li", "", "")]),
        "b": frame([("B0", "Michaela", "Newman", "19151111", "")]),
    }
    keyed = standardise(tables, {"a": MAPPING, "b": MAPPING}, settings()).set_index("record_id")
    assert keyed.loc["A0", "name_soundex"] == keyed.loc["B0", "name_soundex"] == "M240 N550"
    assert keyed.loc["B0", ["forename_initial", "surname_soundex"]].tolist() == ["M", "N550"]
    assert keyed.loc["B0", "birth_month_day"] == "11-11"
    # A missing forename or date gives missing keys, never a block of its own.
    assert keyed.loc["A1", ["name_soundex", "forename_initial", "birth_month_day"]].isna().all()


def test_blocking_recall_counts_true_pairs_some_rule_compares(records: pd.DataFrame) -> None:
    rules = [["date_of_birth"], ["postcode"], ["name_soundex"]]
    # True pairs: A0-A3, A0-B0, A3-B0 (one date of birth), A1-B1 (one postcode), A2-B2.
    pairs, recall, cumulative, without_truth = blocking_recall(
        records, truth(), rules, "dedupe_only"
    )
    assert pairs == 5
    # Names sound alike for A0-B0 (TURNOR), A1-B1 and A2-B2 (LI, LEE), not for WILL TURNER.
    assert recall == [3 / 5, 1 / 5, 3 / 5]
    assert cumulative == [3 / 5, 4 / 5, 1.0]
    assert without_truth == 0
    # Two blank postcodes (A2, B2) never agree: the postcode rule compares A1-B1 only.
    only_postcode = blocking_recall(records, truth(), [["postcode"]], "dedupe_only")
    assert only_postcode[1] == [1 / 5]


def test_blocking_recall_under_link_only_leaves_out_pairs_within_a_table(
    records: pd.DataFrame,
) -> None:
    pairs, recall, _, _ = blocking_recall(records, truth(), [["date_of_birth"]], "link_only")
    assert pairs == 4  # A0-A3 is within table a
    assert recall == [2 / 4]


def test_analyse_counts_each_rule_alone_and_cumulatively(records: pd.DataFrame) -> None:
    rules = [["date_of_birth"], ["postcode"], ["forename_initial", "surname_initial"]]
    analysis = analyse_blocking(records, settings(blocking_rules=rules), truth())
    counted = {r.rule: r for r in analysis.rules}
    # date_of_birth: A0, A3, B0 share one (3 pairs); postcode: M1 1AE and B1 1BB (2 pairs);
    # initials: W T (A0, A3, B0), S O (A1, B1), J L (A2, B2) make 5 pairs, only A2-B2 new.
    assert [r.comparisons for r in analysis.rules] == [3, 2, 5]
    assert [r.new_comparisons for r in analysis.rules] == [3, 2, 1]
    assert [r.cumulative for r in analysis.rules] == [3, 5, 6]
    assert counted[("date_of_birth",)].largest_block_records == 3
    assert analysis.comparisons == 6 and not analysis.estimated
    assert analysis.true_pairs == 5
    assert [r.cumulative_recall for r in analysis.rules] == [3 / 5, 4 / 5, 1.0]


def test_the_default_rules_compare_every_true_pair_of_the_small_case(
    records: pd.DataFrame,
) -> None:
    analysis = analyse_blocking(records, settings(), truth())
    assert analysis.rules[-1].cumulative_recall == 1.0
    assert analysis.over_budget() is None


# ---------------------------------------------------------------- the budget
def test_a_rule_over_the_budget_alone_is_refused_by_name(records: pd.DataFrame) -> None:
    rules = [["postcode"], ["date_of_birth"]]
    over = settings(blocking_rules=rules, comparison_budget={"max_comparisons": 2})
    with pytest.raises(ComparisonBudgetExceeded) as refused:
        check_comparison_budget(records, over)
    message = str(refused.value)
    assert "blocking rule [date_of_birth] alone makes 3 comparisons" in message
    assert "over the comparison budget of 2" in message
    assert "comparison_budget.max_comparisons 2" in message
    assert "3 records share '1980-02-11'" in message
    assert check_comparison_budget(records, settings(blocking_rules=rules)) is None


def test_rules_over_the_budget_together_name_the_rule_that_passes_it(
    records: pd.DataFrame,
) -> None:
    rules = [["date_of_birth"], ["postcode"], ["forename_initial", "surname_initial"]]
    over = settings(blocking_rules=rules, comparison_budget={"max_comparisons": 5})
    with pytest.raises(ComparisonBudgetExceeded) as refused:
        check_comparison_budget(records, over)
    assert (
        "with the rules before it, blocking rule [forename_initial, surname_initial] makes "
        "6 comparisons, over the comparison budget of 5" in str(refused.value)
    )
    within = settings(blocking_rules=rules, comparison_budget={"max_comparisons": 6})
    assert check_comparison_budget(records, within).comparisons == 6


def test_the_budget_per_record_binds_when_smaller(records: pd.DataFrame) -> None:
    over = settings(
        blocking_rules=[["date_of_birth"]],
        comparison_budget={"max_comparisons": 1000, "max_per_record": 0.2},
    )
    with pytest.raises(ComparisonBudgetExceeded, match=r"max_per_record 0.2 x 10 records"):
        check_comparison_budget(records, over)


def test_a_rule_naming_an_unknown_column_is_refused(records: pd.DataFrame) -> None:
    with pytest.raises(LinkageError, match=r"blocking rule \[surnmae\] names surnmae"):
        check_comparison_budget(records, settings(blocking_rules=[["surnmae"]]))
    training = settings().training.model_dump() | {"em_blocking": [["soundex"]]}
    with pytest.raises(LinkageError, match=r"training.em_blocking rule \[soundex\]"):
        check_comparison_budget(records, settings(training=training))


# ---------------------------------------------------------------- srs link analyse
def write_inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for path, rows in ((a, TABLE_A), (b, TABLE_B)):
        path.write_text(HEADER + "".join(",".join(row) + "\n" for row in rows))
    mapping = tmp_path / "mapping.yaml"
    roles = "forename: given, surname: family, date_of_birth: born, postcode: post"
    mapping.write_text(
        f"tables:\n  a: {{record_id: ref, {roles}, date_format: '%Y%m%d'}}\n"
        f"  b: {{record_id: ref, {roles}, date_format: '%Y%m%d'}}\n"
    )
    truth_file = tmp_path / "truth.csv"
    truth().to_csv(truth_file, index=False)
    return a, b, mapping, truth_file


def analyse(tmp_path: Path, *extra: str, truth_file: Path | None = None):
    a, b, mapping, default_truth = write_inputs(tmp_path)
    return CliRunner().invoke(
        app,
        [
            "link",
            "analyse",
            f"a={a}",
            f"b={b}",
            "--mapping",
            str(mapping),
            "--truth",
            str(truth_file or default_truth),
            *extra,
        ],
    )


def test_link_analyse_prints_comparisons_and_blocking_recall(tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(
        "blocking_rules: [[date_of_birth], [postcode], [forename_initial, surname_initial]]\n"
    )
    result = analyse(tmp_path, "--settings", str(settings_file))
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()]
    assert "[date_of_birth] 3 3 3 1980-02-11 (3) 0.6000 0.6000" in lines
    assert "[postcode] 2 2 5 M1 1AE (2) 0.2000 0.8000" in lines
    assert "[forename_initial, surname_initial] 5 1 6 W / T (3) 1.0000 1.0000" in lines
    text = " ".join(result.output.split())
    assert "10 records (dedupe_only): 6 comparisons, 0.6 per record" in text
    assert "within the comparison budget of 10,000" in text
    assert "blocking recall 1.0000 of 5 true pairs" in text


def test_link_analyse_shows_rules_over_the_budget(tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(
        "blocking_rules: [[date_of_birth], [postcode]]\ncomparison_budget: {max_comparisons: 4}\n"
    )
    result = analyse(tmp_path, "--settings", str(settings_file), "--link-type", "link_only")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "10 records (link_only): 4 comparisons" in text
    assert "within the comparison budget of 4" in text
    result = analyse(tmp_path, "--settings", str(settings_file))
    text = " ".join(result.output.split())
    assert "over the comparison budget of 4 from rule [postcode]" in text


def assert_refused(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    text = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in text, result.output


def test_a_truth_without_person_id_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad_truth.csv"
    truth().drop(columns="person_id").rename(columns={"source": "table"}).to_csv(bad, index=False)
    assert_refused(
        analyse(tmp_path, truth_file=bad),
        "the ground truth lacks column(s) person_id, source",
    )


def test_a_truth_naming_other_tables_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad_truth.csv"
    truth().assign(source=lambda t: t["source"].map({"a": "crm", "b": "b"})).to_csv(
        bad, index=False
    )
    assert_refused(
        analyse(tmp_path, truth_file=bad),
        "the ground truth names table(s) crm, which are not among the tables analysed (a, b)",
    )


def test_a_truth_with_a_record_twice_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad_truth.csv"
    pd.concat([truth(), truth().head(1).assign(person_id=9)]).to_csv(bad, index=False)
    assert_refused(
        analyse(tmp_path, truth_file=bad), "gives record 'A0' of table 'a' more than one person"
    )


def test_a_missing_truth_file_and_tables_without_mapping_are_refused(tmp_path: Path) -> None:
    assert_refused(analyse(tmp_path, truth_file=tmp_path / "nowhere.csv"), "no such file")
    a, b, _, _ = write_inputs(tmp_path)
    result = CliRunner().invoke(app, ["link", "analyse", f"a={a}", f"b={b}"])
    assert_refused(result, "give --mapping with the tables")


def test_records_missing_from_the_truth_are_noted(tmp_path: Path) -> None:
    partial = tmp_path / "partial_truth.csv"
    truth().iloc[:-1].to_csv(partial, index=False)
    result = analyse(tmp_path, truth_file=partial)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "1 record(s) have no row in the ground truth and are left out of the recall" in text


def test_link_analyse_on_the_vaults_sources_for_stewards_only(tmp_path: Path, monkeypatch) -> None:
    from pipeline_fixtures import register_agreements_at

    from srs.pipeline.simulation import SOURCES

    monkeypatch.setenv("COLUMNS", "250")
    for variable in ("SRS_MASTER_KEY", "SRS_DATABASE_URL", "SRS_HOME", "SRS_USER"):
        monkeypatch.delenv(variable, raising=False)
    runner = CliRunner()
    home, out = str(tmp_path / "home"), tmp_path / "sim"
    assert runner.invoke(app, ["simulate", "--persons", "300", "--seed", "5", "--out", str(out)])
    assert runner.invoke(app, ["--home", home, "init"]).exit_code == 0
    for name, role in (("sam", "steward"), ("ana", "researcher")):
        added = runner.invoke(
            app,
            ["--home", home, "--as", "admin", "researcher", "add", name, "--name", name]
            + ["--role", role],
        )
        assert added.exit_code == 0, added.output
    register_agreements_at(home, "sam")
    for source in SOURCES:
        extract = str(out / "extracts" / f"{source}.csv")
        ingested = runner.invoke(app, ["--home", home, "--as", "sam", "ingest", source, extract])
        assert ingested.exit_code == 0, ingested.output
    truth_file = str(out / "ground_truth" / "ground_truth.csv")
    command = ["--home", home, "--as", "sam", "link", "analyse", "--truth", truth_file]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "[name_soundex]" in text and "within the comparison budget" in text
    recall = float(text.split("blocking recall ")[1].split()[0])
    assert recall >= 0.99
    command[3] = "ana"
    assert runner.invoke(app, command).exit_code == 2


def test_link_files_refuses_rules_over_the_budget_before_training(tmp_path: Path) -> None:
    a, b, mapping, _ = write_inputs(tmp_path)
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("comparison_budget: {max_comparisons: 1}\n")
    out = tmp_path / "lookup.csv"
    command = ["link", "files", f"a={a}", f"b={b}", "--mapping", str(mapping), "--out", str(out)]
    result = CliRunner().invoke(app, [*command, "--settings", str(settings_file)])
    assert_refused(result, "over the comparison budget of 1")
    assert not out.exists()

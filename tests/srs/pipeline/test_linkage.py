"""Linkage: the F1 target on a simulated population, any tables via a mapping, exact evaluation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from srs.governance.policy import PolicyError
from srs.pipeline.linkage import (
    LinkageError,
    database_api,
    evaluate,
    link_tables,
    load_linkage_settings,
    read_mapping_file,
    standardise,
)

F1_TARGET = 0.98


def test_simulated_population_reaches_the_f1_target(pipeline) -> None:
    quality = evaluate(pipeline.linkage.lookup, pipeline.simulation.ground_truth)
    assert quality.f1 >= F1_TARGET, quality
    assert quality.precision >= F1_TARGET and quality.recall >= F1_TARGET
    assert quality.records == sum(len(f) for f in pipeline.simulation.extracts.values())


def test_clerical_review_file_is_written_privately(pipeline) -> None:
    path = pipeline.deployment.home / "steward" / "review.csv"
    review = pd.read_csv(path)
    settings = load_linkage_settings()
    assert {"unique_id_l", "unique_id_r", "forename_l", "forename_r", "steward_decision"} <= set(
        review.columns
    )
    assert (
        review["match_probability"]
        .between(settings.clerical_review.low, settings.clerical_review.high)
        .all()
    )
    assert path.stat().st_mode & 0o777 == 0o600


def test_clerical_sample_takes_only_borderline_pairs() -> None:
    from srs.pipeline.linkage import LinkageResult, clerical_sample

    records = pd.DataFrame(
        {"unique_id": [f"t:{n}" for n in range(10)], "forename": list("ABCDEFGHIJ")}
    )
    probabilities = [0.2, 0.49, 0.5, 0.6, 0.8, 0.94, 0.95, 0.99, 0.7, 0.3]
    pairs = pd.DataFrame(
        {
            "unique_id_l": [f"t:{n}" for n in range(10)],
            "unique_id_r": [f"t:{(n + 1) % 10}" for n in range(10)],
            "match_probability": probabilities,
        }
    )
    result = LinkageResult(clusters=pd.DataFrame(), pairs=pairs, records=records, seconds={})
    settings = load_linkage_settings()
    sample = clerical_sample(result, settings)
    assert sorted(sample["match_probability"]) == [0.5, 0.6, 0.7, 0.8, 0.94]
    assert sample["same_cluster"].tolist() == [
        p >= settings.match_threshold for p in sample["match_probability"]
    ]
    small = settings.model_copy(
        update={"clerical_review": settings.clerical_review.model_copy(update={"sample_size": 2})}
    )
    assert len(clerical_sample(result, small)) == 2


def test_evaluation_counts_pairs_exactly() -> None:
    # Truth: persons 1 = {a, b, c}, 2 = {d, e}. Clusters: X = {a, b}, Y = {c, d, e}.
    truth = pd.DataFrame({"source": "s", "record_id": list("abcde"), "person_id": [1, 1, 1, 2, 2]})
    lookup = pd.DataFrame({"source": "s", "record_id": list("abcde"), "cluster_id": list("XXYYY")})
    q = evaluate(lookup, truth)
    # true pairs 3 + 1 = 4; predicted 1 + 3 = 4; correct (a,b) + (d,e) = 2
    assert (q.true_pairs, q.predicted_pairs, q.correct_pairs) == (4, 4, 2)
    assert (
        q.precision == pytest.approx(0.5)
        and q.recall == pytest.approx(0.5)
        and q.f1 == pytest.approx(0.5)
    )
    assert (q.wrongly_merged_clusters, q.wrongly_split_persons) == (1, 1)


def test_evaluation_refuses_mismatched_inputs() -> None:
    truth = pd.DataFrame({"source": "s", "record_id": ["a"], "person_id": [1]})
    with pytest.raises(LinkageError, match="lacks column"):
        evaluate(pd.DataFrame({"source": ["s"], "record_id": ["a"]}), truth)
    lookup = pd.DataFrame({"source": "s", "record_id": ["a", "zz"], "cluster_id": ["X", "Y"]})
    with pytest.raises(LinkageError, match="not in the ground truth"):
        evaluate(lookup, truth)


def people(
    prefix: str, names: list[tuple[str, str, str]], columns: tuple[str, str, str]
) -> pd.DataFrame:
    first, last, born = columns
    return pd.DataFrame(
        {
            "ref": [f"{prefix}{n}" for n in range(len(names))],
            first: [n[0] for n in names],
            last: [n[1] for n in names],
            born: [n[2] for n in names],
        }
    )


GENERIC_PEOPLE = [
    ("William", "Turner", "1980-02-11"),
    ("Sarah", "Okafor", "1975-09-30"),
    ("James", "Li", "1992-12-01"),
    ("Aisha", "Begum", "1988-07-19"),
    ("Robert", "Nowak", "1969-03-05"),
    ("Emma", "Walsh", "2001-11-23"),
    ("Daniel", "Evans", "1983-05-14"),
    ("Grace", "Murphy", "1979-01-27"),
    ("Omar", "Hussain", "1995-08-08"),
    ("Chloe", "Baker", "1990-10-10"),
    ("Peter", "Hughes", "1958-06-21"),
    ("Fatima", "Ali", "1999-04-02"),
]


def generic_tables() -> tuple[dict[str, pd.DataFrame], dict[str, object]]:
    registry = people("R", GENERIC_PEOPLE, ("given", "family", "born"))
    # A second agency: other column names, day-first dates, a nickname, a typo, one extra person.
    other = [
        (("Bill" if f == "William" else f), ("Okafr" if s == "Okafor" else s), d)
        for f, s, d in GENERIC_PEOPLE
    ]
    other = [(f, s, f"{d[8:10]}/{d[5:7]}/{d[0:4]}") for f, s, d in other] + [
        ("Zed", "Nobody", "01/01/1950")
    ]
    clinic = people("C", other, ("fname", "sname", "dob"))
    return {"registry": registry, "clinic": clinic}, {}


def write_mapping(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(
        "tables:\n"
        "  registry: {record_id: ref, forename: given, surname: family, date_of_birth: born, date_format: '%Y-%m-%d'}\n"
        "  clinic: {record_id: ref, forename: fname, surname: sname, date_of_birth: dob, date_format: '%d/%m/%Y'}\n"
    )
    return path


def test_any_tables_link_given_a_mapping(tmp_path: Path) -> None:
    tables, _ = generic_tables()
    result = link_tables(
        tables, read_mapping_file(write_mapping(tmp_path)), load_linkage_settings()
    )
    lookup = result.lookup.set_index(["source", "record_id"])["cluster_id"]
    for n in range(len(GENERIC_PEOPLE)):
        assert lookup[("registry", f"R{n}")] == lookup[("clinic", f"C{n}")], GENERIC_PEOPLE[n]
    assert lookup.nunique() == len(GENERIC_PEOPLE) + 1  # the extra person stands alone


def test_cli_links_files(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from srs.cli import app

    tables, _ = generic_tables()
    args = []
    for name, frame in tables.items():
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        args.append(f"{name}={path}")
    out = tmp_path / "lookup.csv"
    result = CliRunner().invoke(
        app, ["link", "files", *args, "--mapping", str(write_mapping(tmp_path)), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    lookup = pd.read_csv(out)
    assert len(lookup) == 25 and lookup["cluster_id"].nunique() == 13
    bad = CliRunner().invoke(
        app,
        ["link", "files", "registry", "--mapping", str(write_mapping(tmp_path)), "--out", str(out)],
    )
    assert bad.exit_code == 2 and "NAME=PATH" in bad.output


def test_mapping_errors_are_clear(tmp_path: Path) -> None:
    tables, _ = generic_tables()
    mapping = read_mapping_file(write_mapping(tmp_path))
    with pytest.raises(LinkageError, match="no column mapping for table 'extra'"):
        standardise({**tables, "extra": tables["clinic"]}, mapping)
    with pytest.raises(LinkageError, match="has no column"):
        standardise({"registry": tables["registry"].drop(columns="family")}, mapping)
    duplicated = pd.concat([tables["registry"], tables["registry"].head(1)])
    with pytest.raises(LinkageError, match="appears twice"):
        standardise({"registry": duplicated}, mapping)
    bad = tmp_path / "bad.yaml"
    bad.write_text("tables:\n  a: {record_id: id, shoe_size: s}\n")
    with pytest.raises(LinkageError, match="unknown role.*shoe_size"):
        read_mapping_file(bad)
    bad.write_text("- not a mapping\n")
    with pytest.raises(LinkageError, match="tables:"):
        read_mapping_file(bad)


def test_standardisation_cleans_identifiers() -> None:
    frame = pd.DataFrame(
        {
            "id": ["1"],
            "f": [" bill "],
            "s": ["O'Neil-Smith"],
            "d": ["05/03/1990"],
            "p": ["ls12  4tx "],
        }
    )
    from srs.pipeline.linkage import SourceMapping

    mapping = {
        "t": SourceMapping(
            "id",
            {"forename": "f", "surname": "s", "date_of_birth": "d", "postcode": "p"},
            "%d/%m/%Y",
        )
    }
    row = standardise({"t": frame}, mapping).iloc[0]
    assert (row["forename"], row["forename_canonical"], row["surname"]) == (
        "BILL",
        "WILLIAM",
        "ONEILSMITH",
    )
    assert (row["date_of_birth"], row["postcode"], row["unique_id"]) == (
        "1990-03-05",
        "LS12 4TX",
        "t:1",
    )


def test_settings_and_backends_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "linkage.yaml").write_text("backend: duckdb\ncomparisons: []\n")
    with pytest.raises(PolicyError, match="linkage.yaml"):
        load_linkage_settings(tmp_path)
    with pytest.raises(LinkageError, match="unknown linkage backend"):
        database_api("oracle")


def test_training_on_a_sample_still_reaches_the_target(pipeline) -> None:
    settings = load_linkage_settings()
    sampled = settings.model_copy(
        update={"training": settings.training.model_copy(update={"max_records": 1500})}
    )
    assert len(pipeline.linkage.records) > 1500
    from srs.pipeline.linkage import run_splink

    notes: list[str] = []
    result = run_splink(pipeline.linkage.records, sampled, progress=notes.append)
    assert any("random sample of 1,500" in note for note in notes)
    quality = evaluate(result.lookup, pipeline.simulation.ground_truth)
    assert quality.f1 >= F1_TARGET, quality


def test_duckdb_spills_into_a_private_temporary_folder_not_the_working_folder() -> None:
    api = database_api("duckdb")
    folder = Path(api.duckdb_con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
    assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700
    assert Path.cwd() not in (folder, *folder.parents)

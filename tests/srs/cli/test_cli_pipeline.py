"""The data-pipeline commands end to end: simulate, ingest, link run/evaluate, linked build."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pipeline_fixtures import register_agreements_at
from typer.testing import CliRunner

from srs.cli import app
from srs.pipeline.simulation import SOURCES

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("SRS_MASTER_KEY", raising=False)
    monkeypatch.delenv("SRS_DATABASE_URL", raising=False)


def srs(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_steward_pipeline_through_the_cli(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    out = tmp_path / "sim"
    result = srs("simulate", "--persons", "400", "--seed", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Simulated 400 persons" in result.output
    assert srs("--home", home, "init").exit_code == 0
    added = srs(
        "--home",
        home,
        "--as",
        "admin",
        "researcher",
        "add",
        "sam",
        "--name",
        "Sam",
        "--role",
        "steward",
    )
    assert added.exit_code == 0
    register_agreements_at(home, "sam")
    police = out / "extracts" / "police_arrests.csv"
    lines = police.read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split(",")[8], "NOPE1", 1)
    police.write_text("\n".join(lines) + "\n")
    for source in SOURCES:
        result = srs(
            "--home", home, "--as", "sam", "ingest", source, str(out / "extracts" / f"{source}.csv")
        )
        assert result.exit_code == 0, result.output
        assert f"Ingested {source}" in result.output
    rejects = pd.read_csv(out / "extracts" / "police_arrests.csv.rejects.csv")
    assert len(rejects) == 1 and "NOPE1" in rejects.loc[0, "reasons"]
    linked = srs("--home", home, "--as", "sam", "link", "run")
    assert linked.exit_code == 0, linked.output
    assert "Linked" in linked.output and (Path(home) / "steward" / "clerical_review.csv").exists()
    evaluated = srs(
        "--home",
        home,
        "--as",
        "sam",
        "link",
        "evaluate",
        "--truth",
        str(out / "ground_truth" / "ground_truth.csv"),
    )
    assert evaluated.exit_code == 0, evaluated.output
    f1 = float(next(line for line in evaluated.output.splitlines() if " F1 " in line).split()[-2])
    assert f1 >= 0.98
    built = srs("--home", home, "--as", "sam", "linked", "build")
    assert built.exit_code == 0, built.output
    for name in ("linked/persons", "linked/journeys", "linked/victims", "linked/reoffending"):
        assert name in built.output
    shown = srs("--home", home, "dataset", "show", "linked/journeys")
    assert "Pseudonymous case identifier" in shown.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "interpol", "x.csv"], "no data-sharing agreement covers source interpol"),
        (["link", "run"], "no source extracts are in the vault yet"),
        (["linked", "build"], "no source extracts are in the vault yet"),
    ],
)
def test_pipeline_mistakes_exit_2(tmp_path: Path, args, message) -> None:
    home = str(tmp_path / "home")
    srs("--home", home, "init")
    srs(
        "--home",
        home,
        "--as",
        "admin",
        "researcher",
        "add",
        "sam",
        "--name",
        "Sam",
        "--role",
        "steward",
    )
    result = srs("--home", home, "--as", "sam", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_ingest_refuses_a_wrong_schema(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    srs("--home", home, "init")
    srs(
        "--home",
        home,
        "--as",
        "admin",
        "researcher",
        "add",
        "sam",
        "--name",
        "Sam",
        "--role",
        "steward",
    )
    register_agreements_at(home, "sam")
    bad = tmp_path / "police.csv"
    bad.write_text("arrest_id;crime_ref;forename\nA1;CR1;Jo\n")
    result = srs("--home", home, "--as", "sam", "ingest", "police_arrests", str(bad))
    assert result.exit_code == 2 and "delimited by ';'" in result.output


def test_simulate_refuses_nonsense(tmp_path: Path) -> None:
    result = srs("simulate", "--persons", "5", "--seed", "1", "--out", str(tmp_path))
    assert result.exit_code == 2

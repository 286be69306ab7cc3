"""`srs link refresh` through the command line: refused before a full link, then a delivery
refreshed with its figures and the change report's place printed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from srs.cli import app
from srs.pipeline.simulation import SOURCES

runner = CliRunner()
AGREEMENTS = Path(__file__).resolve().parents[3] / "policies" / "agreements"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("SRS_MASTER_KEY", raising=False)
    monkeypatch.delenv("SRS_DATABASE_URL", raising=False)


def srs(home: str, *args: str):
    return runner.invoke(app, ["--home", home, "--as", "sam", *args])


def test_link_refresh_through_the_cli(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    out = tmp_path / "sim"
    assert (
        runner.invoke(
            app, ["simulate", "--persons", "300", "--seed", "4", "--out", str(out)]
        ).exit_code
        == 0
    )
    assert runner.invoke(app, ["--home", home, "init"]).exit_code == 0
    added = runner.invoke(
        app,
        [
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
        ],
    )
    assert added.exit_code == 0, added.output
    for terms in sorted(AGREEMENTS.glob("*.yaml")):
        reference = terms.stem.upper()
        created = srs(home, "agreement", "create", str(terms), "--reference", reference)
        assert created.exit_code == 0, created.output
    extracts = out / "extracts"
    victims = pd.read_csv(extracts / "victims.csv", dtype=str, keep_default_na=False)
    held_back = victims.tail(5)
    first = tmp_path / "first"
    first.mkdir()
    for source in SOURCES:
        table = pd.read_csv(extracts / f"{source}.csv", dtype=str, keep_default_na=False)
        if source == "victims":
            table = table.iloc[:-5]
        table.to_csv(first / f"{source}.csv", index=False)
        assert srs(home, "ingest", source, str(first / f"{source}.csv")).exit_code == 0
    refused = srs(home, "link", "refresh")
    assert refused.exit_code != 0
    assert "run `srs link run` first" in refused.output
    assert "Traceback" not in refused.output
    linked = srs(home, "link", "run")
    assert linked.exit_code == 0, linked.output
    delivery = tmp_path / "victims-2024-12.csv"
    held_back.assign(delivery_action="add").to_csv(delivery, index=False)
    delivered = srs(home, "ingest", "victims", str(delivery), "--delivery", "--period", "2024-12")
    assert delivered.exit_code == 0, delivered.output
    refreshed = srs(home, "link", "refresh")
    assert refreshed.exit_code == 0, refreshed.output
    assert f"{len(held_back)} record(s) added, 0 corrected, 0 withdrawn" in refreshed.output
    assert "person keys:" in refreshed.output and "kept" in refreshed.output
    report = Path(home) / "steward" / "key_changes-v2.csv"
    assert str(report) in refreshed.output.replace("\n", "")
    assert report.exists() and report.with_name("key_changes-v2.summary.txt").exists()
    again = srs(home, "link", "refresh")
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_link_refresh_refuses_a_bad_threshold(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert runner.invoke(app, ["--home", home, "init"]).exit_code == 0
    result = runner.invoke(
        app, ["--home", home, "--as", "admin", "link", "refresh", "--threshold", "1.5"]
    )
    assert result.exit_code != 0
    assert "not a probability" in result.output

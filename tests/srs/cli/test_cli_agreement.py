"""`srs agreement` and the agreements of `srs project`, on a real deployment folder: record,
amend, show and list agreements; projects name them; mistakes exit 2 with a message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from srs.cli import app

runner = CliRunner()
TEMPLATES = Path(__file__).resolve().parents[3] / "policies" / "agreements"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


def srs(home: Path, *args: str, actor: str | None = "admin"):
    prefix = ["--home", str(home)] + (["--as", actor] if actor else [])
    return runner.invoke(app, [*prefix, *args], catch_exceptions=False)


def terms_file(tmp_path: Path, name: str = "police.yaml", change=None) -> Path:
    """The police template with a duration around any day the suite runs on."""
    data = yaml.safe_load((TEMPLATES / "dsa-police.yaml").read_text(encoding="utf-8"))
    data["duration"] = {"start": "2000-01-01", "end": "2099-12-31"}
    if change is not None:
        change(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv("SRS_MASTER_KEY", raising=False)
    monkeypatch.delenv("SRS_DATABASE_URL", raising=False)
    home = tmp_path / "deploy"
    assert srs(home, "init", actor=None).exit_code == 0
    added = srs(home, "researcher", "add", "steward", "--name", "Sam", "--role", "steward")
    assert added.exit_code == 0, added.output
    return home


def record(home: Path, tmp_path: Path, reference: str = "DSA-POLICE"):
    return srs(
        home,
        "agreement",
        "create",
        str(terms_file(tmp_path)),
        "--reference",
        reference,
        actor="steward",
    )


def test_record_amend_show_and_list_an_agreement(home: Path, tmp_path: Path) -> None:
    recorded = record(home, tmp_path)
    assert recorded.exit_code == 0, recorded.output
    assert "Recorded agreement DSA-POLICE version 1" in recorded.output
    listed = srs(home, "agreement", "list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if "DSA-POLICE" in line)
    for shown in ("in force", "2000-01-01 to 2099-12-31", "police_arrests", "Memorandum"):
        assert shown in row
    parquet = terms_file(tmp_path, "v2.yaml", lambda d: d["data"][0].update(format="parquet"))
    amended = srs(
        home, "agreement", "amend", "DSA-POLICE", str(parquet), "--note", "Parquet from 2027"
    )
    assert amended.exit_code == 0, amended.output
    assert "now version 2" in amended.output
    shown = srs(home, "agreement", "show", "DSA-POLICE")
    assert shown.exit_code == 0, shown.output
    for element in (
        "1. Parties",
        "2. Purpose",
        "3. Legal basis",
        "4. Duration",
        "5. Obligations",
        "6. Incentives",
        "7. Focal points",
        "8. Data",
        "9. Quality standards",
        "10. Confidentiality and security",
        "11. Amendments",
        "12. Use of information",
    ):
        assert element in shown.output
    assert "police_arrests: monthly, parquet" in shown.output
    assert "version 2 of" in shown.output and "Parquet from 2027" in shown.output
    assert "Police Service (provider)" in shown.output
    assert "permitted purposes: research, official_statistics" in shown.output
    first = srs(home, "agreement", "show", "DSA-POLICE", "--version", "1")
    assert "police_arrests: monthly, csv" in first.output
    missing = srs(home, "agreement", "show", "DSA-POLICE", "--version", "7")
    assert missing.exit_code == 2 and "versions 1 to 2, not 7" in missing.output


def test_the_shipped_templates_record(home: Path) -> None:
    for template in sorted(TEMPLATES.glob("*.yaml")):
        reference = template.stem.upper()
        result = srs(
            home, "agreement", "create", str(template), "--reference", reference, actor="steward"
        )
        assert result.exit_code == 0, result.output
    listed = srs(home, "agreement", "list").output
    for source in ("cps_charging", "crown_court_cases", "prison_spells", "victims"):
        assert source in listed


def test_agreement_mistakes_exit_2_with_a_message(home: Path, tmp_path: Path) -> None:
    denied = srs(
        home,
        "agreement",
        "create",
        str(terms_file(tmp_path)),
        "--reference",
        "DSA-POLICE",
        actor="steward-not",
    )
    assert denied.exit_code == 2 and "access denied" in denied.output
    bad = terms_file(tmp_path, "bad.yaml", lambda d: d.update(signed_by="nobody"))
    refused = srs(home, "agreement", "create", str(bad), "--reference", "DSA-X", actor="steward")
    assert refused.exit_code == 2
    assert "bad.yaml: signed_by: unknown key" in refused.output
    unknown = srs(home, "agreement", "show", "DSA-NONE")
    assert unknown.exit_code == 2 and "no agreement 'DSA-NONE'" in unknown.output
    assert record(home, tmp_path).exit_code == 0
    again = record(home, tmp_path)
    assert again.exit_code == 2 and "already exists" in again.output
    same = srs(home, "agreement", "amend", "DSA-POLICE", str(terms_file(tmp_path)), "--note", "x")
    assert same.exit_code == 2 and "nothing to amend" in same.output
    for result in (denied, refused, unknown, again, same):
        assert "Traceback" not in result.output
    assert "No agreements" not in srs(home, "agreement", "list").output


def test_an_empty_list_says_how_to_record_one(home: Path) -> None:
    assert "see `srs agreement create`" in srs(home, "agreement", "list").output


def create_project(home: Path, code: str, *extra: str):
    return srs(
        home,
        "project",
        "create",
        code,
        "--title",
        "T",
        "--purpose",
        "P",
        "--legal-basis",
        "Digital Economy Act 2017 s.64 (research)",
        "--start",
        "2026-01-01",
        "--end",
        "2099-12-31",
        *extra,
    )


def test_projects_name_agreements(home: Path, tmp_path: Path) -> None:
    assert record(home, tmp_path).exit_code == 0
    assert record(home, tmp_path, "DSA-POLICE-B").exit_code == 0
    created = create_project(
        home, "P7", "--agreement", "DSA-POLICE", "--purpose-category", "official_statistics"
    )
    assert created.exit_code == 0, created.output
    assert "official_statistics under agreements DSA-POLICE" in created.output
    added = srs(home, "project", "agreement", "add", "P7", "DSA-POLICE-B")
    assert added.exit_code == 0, added.output
    shown = srs(home, "project", "show", "P7")
    assert shown.exit_code == 0, shown.output
    assert "agreements: DSA-POLICE (in force), DSA-POLICE-B (in force)" in shown.output
    assert "purpose category: official_statistics" in shown.output
    twice = srs(home, "project", "agreement", "add", "P7", "DSA-POLICE-B")
    assert twice.exit_code == 2 and "already names agreement DSA-POLICE-B" in twice.output
    by_steward = srs(home, "project", "agreement", "add", "P7", "DSA-POLICE", actor="steward")
    assert by_steward.exit_code == 2 and "may not project.manage" in by_steward.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--agreement", "DSA-NONE"), "no data-sharing agreement 'DSA-NONE' is recorded"),
        (("--purpose-category", "Any Use"), "purpose category 'Any Use' is not valid"),
    ],
)
def test_a_project_naming_an_unknown_agreement_is_refused(home: Path, extra, message) -> None:
    result = create_project(home, "P8", *extra)
    assert result.exit_code == 2 and message in result.output
    assert "P8" not in srs(home, "project", "list").output

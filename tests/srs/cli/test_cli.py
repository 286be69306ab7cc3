"""The `srs` command end to end on a real deployment folder: init, accounts, projects, vault,
audit and policy commands, with clear errors (exit 2, no traceback) for user mistakes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from srs.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch) -> None:
    # Rich wraps tables to the terminal width; a wide one keeps each row on one line.
    monkeypatch.setenv("COLUMNS", "250")


def srs(home: Path, *args: str, actor: str | None = "admin"):
    prefix = ["--home", str(home)] + (["--as", actor] if actor else [])
    return runner.invoke(app, [*prefix, *args], catch_exceptions=False)


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv("SRS_MASTER_KEY", raising=False)
    monkeypatch.delenv("SRS_DATABASE_URL", raising=False)
    home = tmp_path / "deploy"
    result = srs(home, "init", actor=None)
    assert result.exit_code == 0, result.output
    return home


def test_init_creates_a_deployment(home: Path) -> None:
    assert (home / "DEPLOYMENT").exists()
    assert (home / "master.key").stat().st_mode & 0o777 == 0o600
    assert (home / "vault").stat().st_mode & 0o777 == 0o700
    assert home.stat().st_mode & 0o777 == 0o700  # researchers' accounts cannot look inside
    again = srs(home, "init", actor=None)
    assert again.exit_code == 2 and "already a deployment" in again.output


def test_full_steward_journey(home: Path, tmp_path: Path) -> None:
    steps = [
        ("researcher", "add", "steward", "--name", "Sam", "--role", "steward"),
        (
            "researcher",
            "add",
            "ana",
            "--name",
            "Ana",
            "--role",
            "researcher",
            "--accreditation-number",
            "AR-1",
            "--training-date",
            "2026-10-01",
        ),
        (
            "project",
            "create",
            "P001",
            "--title",
            "T",
            "--purpose",
            "P",
            "--legal-basis",
            "L",
            "--start",
            "2026-01-01",
            "--end",
            "2099-12-31",
        ),
        ("project", "add-member", "P001", "ana"),
    ]
    for step in steps:
        result = srs(home, *step)
        assert result.exit_code == 0, result.output
    csv = tmp_path / "journeys.csv"
    pd.DataFrame({"person_key": ["a", "b"], "stage": ["charge", "court"]}).to_csv(csv, index=False)
    # A table of no agreement's data (the data areas are written only by the pipeline).
    name = "reference/court_stages"
    stored = srs(
        home,
        "dataset",
        "store",
        name,
        str(csv),
        "--classification",
        "confidential",
        actor="steward",
    )
    assert stored.exit_code == 0, stored.output
    assert f"{name}@1: 2 rows" in stored.output
    assert srs(home, "project", "grant", "P001", name, actor="steward").exit_code == 0
    listing = srs(home, "project", "list")
    assert "ana (researcher)" in listing.output and name in listing.output
    shown = srs(home, "dataset", "show", name)
    assert "person_key" in shown.output and "confidential" in shown.output
    assert name in srs(home, "dataset", "list").output
    assert "ana" in srs(home, "researcher", "list").output
    assert srs(home, "researcher", "lock", "ana", "--reason", "left").exit_code == 0
    assert srs(home, "researcher", "unlock", "ana").exit_code == 0
    rotated = srs(home, "vault", "rotate-key", actor="steward")
    assert rotated.exit_code == 0 and "1 dataset keys re-wrapped" in rotated.output
    verified = srs(home, "audit", "verify")
    assert verified.exit_code == 0 and "Audit log intact" in verified.output
    tail = srs(home, "audit", "tail", "-n", "3")
    assert tail.exit_code == 0 and "vault.rotate_key" in tail.output
    out = tmp_path / "audit.jsonl"
    assert srs(home, "audit", "export", "--out", str(out)).exit_code == 0
    assert len(out.read_text().splitlines()) >= 10


@pytest.mark.parametrize(
    ("name", "how"),
    [
        ("linked/journeys", "srs linked build"),
        ("linked/made_up", "srs linked build"),
        ("source/victims", "srs ingest"),
        ("steward/person_lookup", "srs link run"),
    ],
)
def test_the_data_areas_are_not_stored_by_hand(home: Path, tmp_path: Path, name, how) -> None:
    # Review of issue 18 (H1/H2): `srs dataset store linked/victims fixed.parquet` put a
    # version with no agreement behind it where research reads, and an agreement's end kept it.
    srs(home, "researcher", "add", "steward", "--name", "Sam", "--role", "steward")
    csv = tmp_path / "fixed.csv"
    pd.DataFrame({"person_key": ["a"], "sex": ["F"]}).to_csv(csv, index=False)
    refused = srs(home, "dataset", "store", name, str(csv), actor="steward")
    assert refused.exit_code == 2, refused.output
    assert "is not stored by hand" in refused.output and how in refused.output
    assert "`srs ingest` under an agreement" in refused.output
    assert "Traceback" not in refused.output
    assert name not in srs(home, "dataset", "list").output
    helped = srs(home, "dataset", "store", "--help", actor="steward")
    assert "linked/journeys" not in helped.output and "reference/" in helped.output


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        (["UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"], "broken at event 2"),
        (["DELETE FROM audit_events WHERE seq = 2"], "broken at event 2"),
        (
            [
                "UPDATE audit_events SET seq = 100 WHERE seq = 2",
                "UPDATE audit_events SET seq = 2 WHERE seq = 3",
                "UPDATE audit_events SET seq = 3 WHERE seq = 100",
            ],
            "broken at event 2",
        ),
        (["DELETE FROM audit_events WHERE seq = 3"], "broken at event 3"),
    ],
    ids=["edit", "delete", "swap", "delete-last"],
)
def test_audit_verify_fails_on_tampering(home: Path, statements, expected) -> None:
    import sqlite3

    srs(home, "researcher", "add", "ana", "--name", "Ana", "--role", "researcher")
    srs(home, "researcher", "lock", "ana")
    assert srs(home, "audit", "verify").exit_code == 0
    connection = sqlite3.connect(home / "srs.db")
    connection.execute("DROP TRIGGER audit_events_no_update")
    connection.execute("DROP TRIGGER audit_events_no_delete")
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()
    result = srs(home, "audit", "verify")
    assert result.exit_code == 1
    assert expected in result.output


@pytest.mark.parametrize(
    ("args", "actor", "message"),
    [
        (("researcher", "add", "x1", "--name", "X", "--role", "researcher"), None, "--as USERNAME"),
        (("researcher", "add", "x1", "--name", "X", "--role", "wizard"), "admin", "unknown role"),
        (
            (
                "project",
                "create",
                "P9",
                "--title",
                "T",
                "--purpose",
                "P",
                "--legal-basis",
                "L",
                "--start",
                "2026-13-01",
                "--end",
                "2027-01-01",
            ),
            "admin",
            "--start must be a date",
        ),
        (("project", "grant", "P404", "linked/x"), "admin", "no project 'P404'"),
        (("dataset", "show", "linked/none"), "admin", "holds no dataset 'linked/none'"),
        (("researcher", "lock", "ghost"), "admin", "no account named 'ghost'"),
        (("audit", "tail"), "ghost", "access denied: no account named 'ghost'"),
    ],
)
def test_user_mistakes_exit_2_with_a_message(home: Path, args, actor, message) -> None:
    result = srs(home, *args, actor=actor)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


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
        "L",
        "--start",
        "2026-01-01",
        "--end",
        "2099-12-31",
        *extra,
    )


@pytest.mark.parametrize("rho", ["inf", "-inf", "nan", "1e308", "0", "-0.5", "5.000001", "1e-12"])
def test_project_budgets_outside_the_policy_range_are_refused(home: Path, rho: str) -> None:
    """`--budget-rho inf` and `1e308` were accepted (every later query then failed or
    overflowed) and `nan` was answered "already exists"."""
    result = create_project(home, "P7", "--budget-rho", rho)
    assert result.exit_code == 2, result.output
    assert "a zCDP rho from 0.0001 to 5 (min_project_rho and max_project_rho" in result.output
    assert "already exists" not in result.output and "Traceback" not in result.output
    listed = srs(home, "project", "list")
    assert "P7" not in listed.output


def test_a_project_budget_within_the_range_is_kept_and_a_duplicate_is_named(home: Path) -> None:
    created = create_project(home, "P7", "--budget-rho", "5")
    assert created.exit_code == 0 and "budget rho=5.0" in created.output, created.output
    again = create_project(home, "P7", "--budget-rho", "1")
    assert again.exit_code == 2 and "a project 'P7' already exists" in again.output


def test_commands_outside_a_deployment_say_to_init(tmp_path: Path) -> None:
    result = srs(tmp_path / "nowhere", "researcher", "list")
    assert result.exit_code == 2 and "srs init" in result.output


def test_policy_check_on_shipped_and_broken_folders(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["policy", "check"])
    assert ok.exit_code == 0 and "Policies valid" in ok.output
    import shutil

    from srs.governance.policy import default_policy_dir

    broken = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), broken)
    sdc = broken / "sdc.yaml"
    sdc.write_text(sdc.read_text().replace("minimum_cell_count: 10", "minimum_cell_count: -1", 1))
    bad = runner.invoke(app, ["policy", "check", str(broken)])
    assert bad.exit_code == 1
    assert "sdc.yaml" in bad.output and "minimum_cell_count" in bad.output


def test_real_entry_point_prints_no_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "SRS_HOME": str(tmp_path / "none")}
    result = subprocess.run(
        [sys.executable, "-m", "srs.cli", "--as", "admin", "project", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "is not an srs deployment" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "srs.cli", "vault", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert helped.returncode == 0 and "rotate-key" in helped.stdout


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--home", str(tmp_path / "demo")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "chain intact = True" in result.output
    assert "expired on" in result.output and "no grant" in result.output
    home = tmp_path / "demo"
    assert "request #7 is approved" in result.output
    bundle = home / "releases" / "P2026-001-request-7"
    assert "valid: signature checks out" in result.output and (bundle / "manifest.sig").exists()
    assert "passed every privacy gate" in result.output
    assert (home / "open-data" / "cross_justice" / "datapackage.json").exists()
    # The notebooks ran on both sources, and the checkers' decisions released the vault runs.
    for source in ("synthetic", "vault"):
        assert len(list((home / "runs" / source).glob("*.ipynb"))) == 3
    assert (home / "runs" / "student_introduction-open.ipynb").exists()
    assert "(6 approved)" in result.output and "3 more signed bundles, 3 verified" in result.output
    assert "hub start" in result.output and home.stat().st_mode & 0o777 == 0o700

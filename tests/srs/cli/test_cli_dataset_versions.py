"""``srs dataset show NAME`` lists every version of a dataset with its lineage and change
summary and marks destroyed ones; ``--version N`` shows one version's record and dictionary;
``srs dataset list`` marks destroyed versions."""

from __future__ import annotations

import pytest
from session_fixtures import small_deployment
from typer.testing import CliRunner
from version_fixtures import shred, store_second_version

from registry_fixtures import PROJECT
from srs import session as srs_session
from srs.cli import app
from srs.governance.deployment import Deployment

runner = CliRunner()


@pytest.fixture
def home(tmp_path, policies, monkeypatch):
    # Rich wraps tables to the terminal width; a wide one keeps each row on one line.
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("SRS_MASTER_KEY", raising=False)
    monkeypatch.delenv("SRS_DATABASE_URL", raising=False)
    lab = small_deployment(tmp_path / "home", policies)
    store_second_version(lab, policies)
    deployment, registry = lab
    deployment.marker_file.write_text("srs deployment\n")  # as `srs init` leaves it
    yield deployment.home, registry
    registry.dispose()


def srs(home, *args: str):
    return runner.invoke(app, ["--home", str(home), "--as", "steward", *args])


def rows_of(output: str, first_cell: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip("│ ").startswith(first_cell)]


def test_show_lists_each_version_with_its_lineage_and_changes(home) -> None:
    folder, _ = home
    shown = srs(folder, "dataset", "show", "linked/journeys")
    assert shown.exit_code == 0, shown.output
    assert "linked/journeys: 2 version(s)" in shown.output
    (first,) = rows_of(shown.output, "1 ")
    (second,) = rows_of(shown.output, "2 ")
    assert "600" in first and "held" in first
    assert "800" in second
    assert "magistrates_cases 2026-11; police_arrests 2026-11; derived from" in second
    assert "added 200, corrected 3, withdrawn 1" in second
    # Then the newest version's record and dictionary, as before.
    assert "linked/journeys version 2" in shown.output and "person_key" in shown.output


def test_a_destroyed_version_is_marked_in_show_and_list(home) -> None:
    folder, registry = home
    shred(registry, "linked/journeys", 1)
    shown = srs(folder, "dataset", "show", "linked/journeys")
    (first,) = rows_of(shown.output, "1 ")
    assert "DESTROYED 2026-12-01" in first
    assert "version 1 destroyed 2026-12-01: agreement DSA-COURTS ended" in shown.output
    listed = srs(folder, "dataset", "list")
    assert listed.exit_code == 0, listed.output
    journeys = [line for line in listed.output.splitlines() if "linked/journeys" in line]
    assert ["destroyed 2026-12-01" in line for line in journeys] == [True, False]
    one = srs(folder, "dataset", "show", "linked/journeys", "--version", "1")
    assert one.exit_code == 0, one.output
    assert "destroyed 2026-12-01 (agreement DSA-COURTS ended)" in one.output


def test_version_shows_that_version_alone(home) -> None:
    folder, _ = home
    one = srs(folder, "dataset", "show", "linked/journeys", "--version", "2")
    assert one.exit_code == 0, one.output
    assert "version(s)" not in one.output
    assert "linked/journeys version 2" in one.output
    lineage = " ".join(one.output.split())
    assert (
        "lineage: magistrates_cases 2026-11; police_arrests 2026-11; derived from "
        "linked/journeys@1" in lineage
    )
    assert "changes: added 200, corrected 3, withdrawn 1" in one.output
    missing = srs(folder, "dataset", "show", "linked/journeys", "--version", "5")
    assert missing.exit_code == 2
    assert "holds no version 5 of dataset 'linked/journeys'" in missing.output


def test_a_checker_sees_the_versions_an_output_used(home, policies) -> None:
    folder, _ = home
    with srs_session(
        user="ana", project=PROJECT, deployment=Deployment.at(folder), policies=policies
    ) as ana:
        ana.crosstab(ana.dataset("linked/journeys", version=1), "sex")
        request_id = ana.submit("People by sex, first delivery")
    shown = runner.invoke(
        app, ["--home", str(folder), "--as", "cho", "outputs", "show", str(request_id)]
    )
    assert shown.exit_code == 0, shown.output
    assert "data used: linked/journeys@1 (sha256:" in shown.output

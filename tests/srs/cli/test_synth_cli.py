"""`srs synth build` and `srs synth export` on the pipeline's linked data: a replica that passes
its gates is stored as public synthetic data and exported as a valid open-data package; one
that fails is neither stored nor exportable; a student's analysis runs unchanged on the export
and, in a researcher session, on the vault data."""

from __future__ import annotations

import pandas as pd
import pytest
from pipeline_fixtures import open_project
from sqlalchemy import select
from typer.testing import CliRunner

import srs
import synthetic.open_replica
from srs.cli import app
from srs.governance.budget import budget_state, spends
from srs.governance.policy import load_policies
from srs.governance.registry.models import AuditEvent, Dataset, Output
from synthetic.export import validate_package

runner = CliRunner()
PROJECT = "PSYNTH"


def cli(home, *args, actor=None):
    prefix = ["--home", str(home)] + (["--as", actor] if actor else [])
    return runner.invoke(app, [*prefix, *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def deployment(pipeline, policies):
    return open_project(
        pipeline, policies, code=PROJECT, datasets=["linked/journeys"], student="sam"
    )


def remand_by_sentence(journeys: pd.DataFrame) -> pd.Series:
    """A student's analysis, written once: the share remanded, by sentence type."""
    convicted = journeys[journeys["court_outcome"] == "convicted"]
    return convicted.groupby("sentence_type")["remanded"].mean().round(3)


def test_a_failing_replica_is_neither_stored_nor_exported(deployment, monkeypatch):
    home = deployment.deployment.home
    real_build = synthetic.open_replica.build_replica

    def copying_build(tables, dictionaries, **options):
        replica = real_build(tables, dictionaries, **options)
        replica.tables = {name: frame.copy() for name, frame in tables.items()}  # real rows
        return replica

    monkeypatch.setattr(synthetic.open_replica, "build_replica", copying_build)
    result = cli(home, "synth", "build", actor="steward")
    assert result.exit_code == 2 and "failed its privacy gates" in result.output
    assert "exact_match" in result.output
    assert (home / "synthetic" / "cross_justice-failed" / "report.html").exists()
    with deployment.registry.sessions() as s:
        stored = s.execute(select(Dataset.name).where(Dataset.name.like("synthetic/%"))).all()
        assert stored == []
        denied = [
            e
            for e in s.execute(select(AuditEvent)).scalars()
            if e.action == "synthetic.build" and e.outcome == "deny"
        ]
        assert denied and "exact_match" in denied[-1].details
    refused = cli(home, "synth", "export", "--out", str(home / "nope"), actor="sam")
    assert refused.exit_code == 2 and "no replica has passed" in refused.output


def test_build_export_and_the_same_code_on_open_and_vault_data(deployment, tmp_path):
    home = deployment.deployment.home
    researcher_only = cli(home, "synth", "build", actor="ana")
    assert researcher_only.exit_code == 2 and "access denied" in researcher_only.output
    partial = cli(home, "synth", "build", "linked/persons", actor="steward")
    assert partial.exit_code == 2 and "related set" in partial.output
    built = cli(home, "synth", "build", "--seed", "3", actor="steward")
    assert built.exit_code == 0, built.output
    assert "passed every privacy gate" in built.output
    with deployment.registry.sessions() as s:
        levels = dict(
            s.execute(
                select(Dataset.name, Dataset.classification).where(Dataset.name.like("synthetic/%"))
            ).all()
        )
    assert levels == {
        "synthetic/persons": "public",
        "synthetic/journeys": "public",
        "synthetic/victims": "public",
        "synthetic/reoffending": "public",
    }
    blocker = tmp_path / "afile"
    blocker.write_text("a file where a folder should be")
    unwritable = cli(home, "synth", "export", "--out", str(blocker / "out"), actor="sam")
    assert unwritable.exit_code == 2, unwritable.output
    assert f"cannot write the package to {blocker / 'out'}: {blocker} is a file" in " ".join(
        unwritable.output.split()
    )
    out = tmp_path / "open" / "cross_justice"
    exported = cli(home, "synth", "export", "--out", str(out), actor="sam")  # a student
    assert exported.exit_code == 0, exported.output
    assert validate_package(out) == []
    assert (out / "datapackage.json").exists() and (out / "report.html").exists()
    assert "synthetic" in (out / "README.md").read_text().lower()

    # The student's code on the open export ...
    open_tables = srs.open_data("cross_justice", path=out)
    on_open = remand_by_sentence(open_tables["linked/journeys"])
    # ... runs unchanged on the vault data in a researcher session (only the source differs).
    with srs.session(user="ana", project=PROJECT, home=home) as s:
        vault_journeys = s.dataset("linked/journeys")
    on_vault = remand_by_sentence(vault_journeys)
    assert list(open_tables["linked/journeys"].columns) == list(vault_journeys.columns)
    assert set(on_open.index) <= set(on_vault.index) | {pd.NA}
    assert on_open.between(0, 1).all() and on_vault.between(0, 1).all()
    no_person_key_leaks = set(open_tables["linked/persons"]["person_key"]) & set(
        deployment.linked.tables["linked/persons"]["person_key"]
    )
    assert no_person_key_leaks == set()


def test_a_researcher_makes_a_dp_replica_paid_from_the_project_budget(deployment):
    home = deployment.deployment.home
    args = ["synth", "dp", "linked/journeys", "--project", PROJECT, "--columns"]
    over = cli(home, *args, "sex,court", "--rows", "200", "--rho", "9", actor="ana")
    assert over.exit_code == 2 and "at most rho" in over.output
    unknown = cli(home, *args, "sex,shoe_size", "--rows", "200", "--rho", "0.02", actor="ana")
    assert unknown.exit_code == 2 and "columns not in the table" in unknown.output
    outsider = cli(home, *args, "sex,court", "--rows", "200", "--rho", "0.02", actor="sam")
    assert outsider.exit_code == 2 and "access denied" in outsider.output
    rows = ["--rows", "200", "--rho", "0.02"]
    not_json = cli(home, *args, "sex,court", *rows, "--where", "sex == 'F'", actor="ana")
    assert not_json.exit_code == 2 and "--where is not JSON" in not_json.output
    bad = cli(home, *args, "sex,court", *rows, "--where", '[["sex", "=", "F"]]', actor="ana")
    assert bad.exit_code == 2 and "operator '=' is not one of" in bad.output
    with deployment.registry.sessions() as s:
        assert budget_state(s, PROJECT, load_policies()).spends == 0  # refusals spent nothing
    made = cli(
        home,
        *args,
        "sex,court,remanded",
        "--rows",
        "400",
        "--rho",
        "0.02",
        "--seed",
        "1",
        "--where",
        '[["court", "is not null"]]',
        actor="ana",
    )
    assert made.exit_code == 0, made.output
    assert "400 rows of sex, court, remanded" in made.output and "rho 0.02" in made.output
    with deployment.registry.sessions() as s:
        (spend,) = spends(s, PROJECT)
        (record,) = s.execute(select(Output).where(Output.budget_spend_id == spend.id)).scalars()
        assert spend.purpose == "DP synthetic replica of linked/journeys"
        assert record.kind == "dp_result" and record.content["algorithm"] == "mst"
        assert record.author == "ana"
        assert record.content["data"]["where"] == [["court", "is not null"]]

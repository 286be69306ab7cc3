"""`srs agreement end` on a real deployment folder: the agreement's data are destroyed, the
other agreement's stay readable, the certificate is written where asked, the log verifies, and
a second end or a non-steward is refused with a message (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from srs.cli import app
from srs.governance.deployment import Deployment
from srs.governance.policy import load_policies
from srs.governance.registry import open_registry
from srs.vault.store import Vault, VaultShredded

runner = CliRunner()
TEMPLATES = Path(__file__).resolve().parents[3] / "policies" / "agreements"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


def srs(home: Path, *args: str, actor: str | None = "steward"):
    prefix = ["--home", str(home)] + (["--as", actor] if actor else [])
    return runner.invoke(app, [*prefix, *args], catch_exceptions=False)


def record(home: Path, tmp_path: Path, template: str, reference: str) -> None:
    """Record a shipped template with a duration around any day the suite runs on."""
    data = yaml.safe_load((TEMPLATES / template).read_text(encoding="utf-8"))
    data["duration"] = {"start": "2000-01-01", "end": "2099-12-31"}
    path = tmp_path / template
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    recorded = srs(home, "agreement", "create", str(path), "--reference", reference)
    assert recorded.exit_code == 0, recorded.output


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    """A deployment with two agreements, each with one source extract stored under it."""
    monkeypatch.delenv("SRS_MASTER_KEY", raising=False)
    monkeypatch.delenv("SRS_DATABASE_URL", raising=False)
    home = tmp_path / "deploy"
    assert srs(home, "init", actor=None).exit_code == 0
    for username, role in (("steward", "steward"), ("rita", "researcher")):
        added = srs(
            home,
            "researcher",
            "add",
            username,
            "--name",
            username.title(),
            "--role",
            role,
            actor="admin",
        )
        assert added.exit_code == 0, added.output
    record(home, tmp_path, "dsa-police.yaml", "DSA-POLICE")
    record(home, tmp_path, "dsa-victims.yaml", "DSA-VICTIMS")
    deployment = Deployment.at(home)
    registry = open_registry(deployment.database_url)
    vault = Vault(deployment, load_policies())
    with registry.sessions() as s:
        for source, reference in (("police_arrests", "DSA-POLICE"), ("victims", "DSA-VICTIMS")):
            vault.store(
                s,
                f"source/{source}",
                pd.DataFrame({"record_id": ["r1", "r2", "r3"]}),
                actor="steward",
                lineage={"sources": [source], "agreements": {source: reference}},
            )
    registry.dispose()
    return home


def steward_read(home: Path, name: str) -> pd.DataFrame:
    deployment = Deployment.at(home)
    registry = open_registry(deployment.database_url)
    try:
        with registry.sessions() as s:
            return Vault(deployment, load_policies()).read_steward_zone(s, name, actor="steward")
    finally:
        registry.dispose()


def test_end_destroys_the_agreements_data_and_writes_the_certificate(home, tmp_path):
    ended = srs(
        home,
        "agreement",
        "end",
        "DSA-POLICE",
        "--reason",
        "the force withdrew",
        "--certificate-dir",
        str(tmp_path / "certificates"),
    )
    assert ended.exit_code == 0, ended.output
    assert "1 dataset versions destroyed" in ended.output
    certificate = json.loads(
        (tmp_path / "certificates" / "DSA-POLICE-destruction.json").read_text()
    )
    assert [(d["name"], d["version"]) for d in certificate["destroyed"]] == [
        ("source/police_arrests", 1)
    ]
    assert (tmp_path / "certificates" / "DSA-POLICE-destruction.md").is_file()
    with pytest.raises(VaultShredded):
        steward_read(home, "source/police_arrests")
    assert len(steward_read(home, "source/victims")) == 3
    listed = srs(home, "agreement", "list")
    row = next(line for line in listed.output.splitlines() if "DSA-POLICE" in line)
    assert "in force" not in row
    verified = srs(home, "audit", "verify", actor="admin")
    assert verified.exit_code == 0, verified.output
    tail = srs(home, "audit", "tail", "-n", "12", actor="admin")
    assert "agreement.end" in tail.output and "vault.shred" in tail.output

    again = srs(home, "agreement", "end", "DSA-POLICE", "--reason", "again")
    assert again.exit_code == 2
    assert "already ended" in again.output


def test_end_is_refused_to_a_researcher_and_for_an_unknown_agreement(home):
    refused = srs(home, "agreement", "end", "DSA-POLICE", "--reason", "x", actor="rita")
    assert refused.exit_code == 2
    assert "may not dataset.destroy" in refused.output
    assert len(steward_read(home, "source/police_arrests")) == 3
    unknown = srs(home, "agreement", "end", "DSA-NOBODY", "--reason", "x")
    assert unknown.exit_code == 2 and "no agreement" in unknown.output
    no_reason = srs(home, "agreement", "end", "DSA-POLICE", "--reason", " ")
    assert no_reason.exit_code == 2 and "say why" in no_reason.output

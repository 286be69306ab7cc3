"""The checkers' commands end to end on a real deployment: `srs outputs queue|show|approve|reject|
request-changes|comment`, `srs release create|verify|list` and `srs researcher set-password`."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner
from workflow_fixtures import add_checker, submitted_request

from srs.cli import app
from srs.governance.deployment import Deployment
from srs.governance.policy import load_policies
from srs.governance.registry import accounts, open_registry, projects
from srs.governance.registry.models import Researcher

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


def srs(home: Path, *args: str, actor: str | None = "admin", stdin: str | None = None):
    prefix = ["--home", str(home)] + (["--as", actor] if actor else [])
    return runner.invoke(app, [*prefix, *args], input=stdin, catch_exceptions=False)


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("SRS_MASTER_KEY", raising=False)
    monkeypatch.delenv("SRS_DATABASE_URL", raising=False)
    home = tmp_path / "deploy"
    assert srs(home, "init", actor=None).exit_code == 0
    policies = load_policies()
    registry = open_registry(Deployment.at(home).database_url)
    today = date.today()
    with registry.sessions() as s:
        accounts.add_researcher(
            s,
            actor="admin",
            policies=policies,
            username="ana",
            full_name="Ana",
            roles=["researcher"],
            accreditation_number="AR-ana",
            accreditation_expiry=today + timedelta(days=300),
            training_date=today,
        )
        projects.create_project(
            s,
            actor="admin",
            policies=policies,
            code="P001",
            title="Attrition",
            purpose="p",
            legal_basis="DEA",
            start_date=today - timedelta(days=1),
            end_date=today + timedelta(days=300),
            approved_classification="confidential",
        )
        projects.add_member(s, actor="admin", policies=policies, code="P001", username="ana")
    add_checker(registry, policies, "cho")
    add_checker(registry, policies, "chen")
    yield home, registry, policies
    registry.dispose()


def test_checkers_review_and_release_from_the_command_line(deployment, tmp_path):
    home, registry, policies = deployment
    sub = submitted_request(registry, policies)
    queue = srs(home, "outputs", "queue", actor="cho")
    assert queue.exit_code == 0 and "Attrition tables" in queue.output and "0/2" in queue.output
    shown = srs(home, "outputs", "show", str(sub.request_id), actor="cho")
    assert shown.exit_code == 0, shown.output
    assert "arrests by sex" in shown.output and "arrests-by-sex.csv" in shown.output
    assert "submitted" in shown.output and "blinded" in shown.output
    assert "count: min 120, min excl. 0 120, max 340, sum 460" in shown.output
    for checker in ("cho", "chen"):
        for output_id in sub.outputs[:2]:
            result = srs(home, "outputs", "approve", str(output_id), actor=checker)
            assert result.exit_code == 0, result.output
        result = srs(
            home,
            "outputs",
            "reject",
            str(sub.outputs[2]),
            "--comment",
            "F cell too small",
            actor=checker,
        )
        assert result.exit_code == 0, result.output
    assert "is now approved" in result.output
    refused = srs(home, "release", "create", str(sub.request_id), actor="ana")
    assert refused.exit_code == 2 and "access denied" in refused.output
    made = srs(home, "release", "create", str(sub.request_id), actor="cho")
    assert made.exit_code == 0, made.output
    bundle = home / "releases" / f"P001-request-{sub.request_id}"
    assert "3 files" in made.output and bundle.is_dir()
    verified = srs(home, "release", "verify", str(bundle), actor=None)
    assert verified.exit_code == 0 and "valid" in verified.output
    listed = srs(home, "release", "list", actor="cho")
    assert listed.exit_code == 0 and f"P001-request-{sub.request_id}" in listed.output
    victim = sorted((bundle / "outputs").iterdir())[0]
    victim.write_bytes(victim.read_bytes().replace(b"120", b"121"))
    tampered = srs(home, "release", "verify", str(bundle), actor=None)
    assert tampered.exit_code == 1 and f"tampered (hash differs): outputs/{victim.name}" in (
        tampered.output
    )
    victim.write_bytes(victim.read_bytes().replace(b"121", b"120"))
    (bundle / "notes.txt").write_text("added later")
    added = srs(home, "release", "verify", str(bundle), actor=None)
    assert added.exit_code == 1 and "not in the manifest (added): notes.txt" in added.output
    public = home / "release-signing.pub"
    elsewhere = srs(
        tmp_path, "release", "verify", str(bundle), "--public-key", str(public), actor=None
    )
    assert elsewhere.exit_code == 1  # still the added file, without any deployment


def test_request_changes_needs_a_comment_and_researchers_cannot_vote(deployment):
    home, registry, policies = deployment
    sub = submitted_request(registry, policies)
    missing = srs(home, "outputs", "request-changes", str(sub.outputs[0]), actor="cho")
    assert missing.exit_code == 2 and "--comment" in missing.output
    denied = srs(home, "outputs", "approve", str(sub.outputs[0]), actor="ana")
    assert denied.exit_code == 2 and "may not output.review" in denied.output
    nothing = srs(home, "outputs", "show", "999", actor="cho")
    assert nothing.exit_code == 2 and "no release request #999" in nothing.output
    unapproved = srs(home, "release", "create", str(sub.request_id), actor="cho")
    assert unapproved.exit_code == 2 and "only an approved request" in unapproved.output
    comment = srs(home, "outputs", "comment", str(sub.request_id), "looks fine", actor="cho")
    assert comment.exit_code == 0


def test_set_password_from_stdin_is_hashed_and_short_ones_refused(deployment):
    home, registry, _ = deployment
    result = srs(home, "researcher", "set-password", "cho", "--password-stdin", stdin="short\n")
    assert result.exit_code == 2 and "at least 12 characters" in result.output
    result = srs(
        home,
        "researcher",
        "set-password",
        "cho",
        "--password-stdin",
        stdin="correct horse battery staple\n",
    )
    assert result.exit_code == 0, result.output
    with registry.sessions() as s:
        stored = s.execute(select(Researcher).where(Researcher.username == "cho")).scalar_one()
        assert stored.password_hash.startswith("$argon2id$")
        assert "correct horse" not in stored.password_hash
    other = srs(
        home,
        "researcher",
        "set-password",
        "cho",
        "--password-stdin",
        stdin="another long password\n",
        actor="ana",
    )
    assert other.exit_code == 2 and "access denied" in other.output


def test_verify_without_a_deployment_needs_a_key(tmp_path):
    result = srs(tmp_path / "none", "release", "verify", str(tmp_path), actor=None)
    assert result.exit_code == 2 and "not an srs deployment" in result.output

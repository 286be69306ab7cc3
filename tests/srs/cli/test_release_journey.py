"""Issue 6's journey end to end, on the linked data the pipeline built: a researcher session
makes a safe table, an unsafe one (suppressed, exception requested), a regression and a DP
count and submits them; one checker reviews from the command line, another in a real headless
Chromium (approving three, rejecting the unsafe table); the release bundle holds exactly the
approved outputs, verifies, and `srs release verify` fails on a flipped byte or an added file.
Every refusal on the way (approving your own outputs, releasing what was not approved, reading
another project's data) is a clear error and an audit event."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from agreement_fixtures import PERMITTED_BASIS
from browser_fixtures import Checker
from selenium.webdriver.common.by import By
from sqlalchemy import select
from typer.testing import CliRunner

import srs
from output_checking.release import releases_dir
from output_checking.web import BackgroundServer, make_app
from output_checking.workflow import WorkflowError, vote
from srs.cli import app
from srs.governance.access import AccessDenied
from srs.governance.agreement_terms import standard_agreements
from srs.governance.audit import verify_chain
from srs.governance.registry import accounts, projects
from srs.governance.registry.models import AuditEvent, Output, ReleaseRequest
from srs.governance.registry.sign_in import set_password

PROJECT = "PJOURNEY"
CHECKERS = {"jcho": "jcho's passphrase 2026", "jchen": "jchen's passphrase 2026"}
JUSTIFICATION = "Division-level counts are needed to compare with the MoJ quarterly tables."
runner = CliRunner()


@pytest.fixture(scope="module")
def journey(pipeline, policies):
    """Project PJOURNEY (ana, granted linked/journeys) and two checkers with passwords."""
    today = date.today()
    with pipeline.registry.sessions() as s:
        for username in CHECKERS:
            accounts.add_researcher(
                s,
                actor="admin",
                policies=policies,
                username=username,
                full_name=username.title(),
                roles=["checker"],
                accreditation_number=f"AR-{username}",
                training_date=today - timedelta(days=1),
            )
            set_password(
                s, actor="admin", policies=policies, username=username, password=CHECKERS[username]
            )
        projects.create_project(
            s,
            actor="admin",
            policies=policies,
            code=PROJECT,
            title="Sentencing journeys",
            purpose="Release journey test",
            legal_basis=PERMITTED_BASIS,
            start_date=today - timedelta(days=1),
            end_date=today + timedelta(days=30),
            approved_classification="confidential",
            agreements=sorted(standard_agreements(policies.source_dir)),
        )
        projects.add_member(s, actor="admin", policies=policies, code=PROJECT, username="ana")
        projects.grant_dataset(
            s, actor="steward", policies=policies, code=PROJECT, dataset_name="linked/journeys"
        )
    # The pipeline made its deployment without `srs init`; mark it so the CLI accepts it.
    pipeline.deployment.marker_file.write_text("srs-toolkit test deployment\n")
    return pipeline


def srs_cli(home, *args, actor=None):
    prefix = ["--home", str(home)] + (["--as", actor] if actor else [])
    return runner.invoke(app, [*prefix, *args], catch_exceptions=False)


def test_session_to_signed_release_with_a_checker_in_chromium(
    journey, policies, browser, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("SRS_DATABASE_URL", raising=False)
    monkeypatch.delenv("SRS_MASTER_KEY", raising=False)
    home = journey.deployment.home
    registry = journey.registry

    # ---- the researcher's session
    with srs.session(user="ana", project=PROJECT, home=home) as s:
        journeys = s.dataset("linked/journeys")
        with pytest.raises(AccessDenied, match="has no grant for linked/victims"):
            s.dataset("linked/victims")
        safe = s.crosstab(journeys, "sex", name="People by sex")
        unsafe = s.crosstab(journeys, "iccs_division", "sex", name="People by ICCS division")
        model = s.ols("age_at_offence ~ C(sex)", journeys)
        model_id = s.last_output.id
        dp_count = s.dp.count(
            "linked/journeys", by=["court"], rho=0.01, name="DP journeys by court"
        )
        outputs = s.outputs()
        ids = {
            "safe": safe.attrs["srs_output_id"],
            "unsafe": unsafe.attrs["srs_output_id"],
            "model": model_id,
            "dp": dp_count.attrs["srs_output_id"],
        }
        assert outputs.loc[ids["safe"], "checks"] == "ok"
        assert outputs.loc[ids["unsafe"], "checks"] == "review"  # suppressed
        assert unsafe.isna().to_numpy().any()  # cells were hidden
        assert outputs.loc[ids["model"], "kind"] == "model" and model.nobs > 100
        s.request_exception(unsafe, JUSTIFICATION)
        request_id = s.submit("Sentencing journeys, first tables")

    # ---- refusals: the author cannot approve; nothing unapproved is released
    with registry.sessions() as db, pytest.raises(AccessDenied, match="may not output.review"):
        vote(db, output_id=ids["safe"], checker="ana", policies=policies, decision="approve")
    early = srs_cli(home, "release", "create", str(request_id), actor="jchen")
    assert early.exit_code == 2 and "only an approved request" in early.output

    # ---- the first checker, from the command line
    for key in ("safe", "model", "dp"):
        assert srs_cli(home, "outputs", "approve", str(ids[key]), actor="jchen").exit_code == 0
    result = srs_cli(
        home,
        "outputs",
        "reject",
        str(ids["unsafe"]),
        "--comment",
        "suppression is right",
        actor="jchen",
    )
    assert result.exit_code == 0 and "partially_reviewed" in result.output

    # ---- the second checker, in Chromium
    with BackgroundServer(make_app(journey.deployment, policies)) as server:
        jcho = Checker(browser, server.url)
        jcho.sign_in("jcho", CHECKERS["jcho"])
        jcho.open_request_from_queue(request_id)
        unsafe_section = jcho.output(ids["unsafe"])
        assert unsafe_section.find_elements(By.CSS_SELECTOR, "td.cell-fail")  # marked cells
        assert JUSTIFICATION in unsafe_section.find_element(By.CLASS_NAME, "exception").text
        assert browser.find_elements(By.CSS_SELECTOR, ".other-vote") == []  # blind to jchen
        jcho.vote(ids["unsafe"], "reject", "Small divisions; keep them suppressed", visible=True)
        jcho.vote(ids["safe"], "approve")
        jcho.vote(ids["model"], "approve")
        jcho.vote(ids["dp"], "approve")
        assert browser.find_element(By.ID, "request-status").text == "approved"

    # ---- the release
    made = srs_cli(home, "release", "create", str(request_id), actor="jcho")
    assert made.exit_code == 0, made.output
    bundle = releases_dir(journey.deployment) / f"{PROJECT}-request-{request_id}"
    with registry.sessions() as db:
        approved = [db.get(Output, ids[k]) for k in ("safe", "model", "dp")]
        expected = sorted(f"outputs/{o.id:05d}-{f.name}" for o in approved for f in o.files)
        assert db.get(ReleaseRequest, request_id).status == "released"
        assert db.get(Output, ids["unsafe"]).status == "rejected"
    on_disk = sorted(
        p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.parent != bundle
    )
    assert on_disk == sorted([*expected, "outputs/results.json"])
    acro = json.loads((bundle / "outputs" / "results.json").read_text())["results"]
    assert sorted(acro) == sorted(f"output_{o.id}" for o in approved)
    unsafe_cells = acro.get(f"output_{ids['unsafe']}")
    assert unsafe_cells is None  # the rejected table is nowhere in the release
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert sorted(o["id"] for o in manifest["outputs"]) == sorted(o.id for o in approved)
    assert ids["unsafe"] not in [o["id"] for o in manifest["outputs"]]
    verified = srs_cli(home, "release", "verify", str(bundle))
    assert verified.exit_code == 0 and "valid" in verified.output

    victim = bundle / expected[0]
    original = victim.read_bytes()
    victim.write_bytes(bytes([original[0] ^ 0x01]) + original[1:])
    flipped = srs_cli(home, "release", "verify", str(bundle))
    assert flipped.exit_code == 1 and expected[0] in flipped.output
    victim.write_bytes(original)
    (bundle / "outputs" / "smuggled.csv").write_text("person_key\nabc\n")
    added = srs_cli(home, "release", "verify", str(bundle))
    assert added.exit_code == 1 and "outputs/smuggled.csv" in added.output

    # ---- the audit log shows it all, and is intact
    with registry.sessions() as db:
        events = list(db.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars())
        on_request = [e.action for e in events if e.target == f"request/{request_id}"]
        assert on_request.count("output.approve") == 6
        assert on_request.count("output.reject") == 2
        assert "release.create" in on_request and on_request[-1] == "release.create"
        assert any(
            e.action == "access.output.review" and e.actor == "ana" and e.outcome == "deny"
            for e in events
        )
        assert any(
            e.action == "release.create" and e.outcome == "deny" and e.actor == "jchen"
            for e in events
        )
        assert any(
            e.action == "access.dataset.read"
            and e.target == "linked/victims"
            and e.outcome == "deny"
            for e in events
        )
        assert verify_chain(db).intact
    with registry.sessions() as db, pytest.raises(WorkflowError):
        vote(db, output_id=ids["safe"], checker="jcho", policies=policies, decision="reject")

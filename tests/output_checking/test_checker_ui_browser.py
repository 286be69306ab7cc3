"""End to end in a real headless Chromium: two checkers sign in through the form, review ana's
submitted request (the table rendered with its failing cell marked), reject one output, approve
the others, blind to each other until both are in, and release it; the registry, the bundle and
the audit log show exactly that.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make browser-binaries`` installs them).
Their absence fails the test (``make test`` installs them first).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from agreement_fixtures import (
    RESEARCH_LINEAGE,
    admit_to_agreements,
    register_standard_agreements,
)
from browser_fixtures import Checker
from selenium.webdriver.common.by import By
from sqlalchemy import select
from workflow_fixtures import add_checker

from disclosure import dp
from disclosure.tables import check_table
from output_checking.dp_release import release_dp
from output_checking.outputs import (
    file_gate_rules,
    record_output,
    request_exception,
    table_content,
)
from output_checking.release import public_key_path, releases_dir, verify_release
from output_checking.web import BackgroundServer, make_app
from output_checking.workflow import create_request, submit_request
from registry_fixtures import PROJECT, populate
from srs.governance.audit import verify_chain
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry import Registry, open_registry
from srs.governance.registry.models import (
    AuditEvent,
    Output,
    OutputComment,
    ReleaseRequest,
    ReviewVote,
)
from srs.governance.registry.projects import grant_dataset
from srs.governance.registry.sign_in import SIGN_IN_REFUSED, set_password
from srs.vault.crypto import generate_master_key, write_key_file
from srs.vault.store import Vault

CHECKERS = {"cho": "cho's passphrase 2026", "chen": "chen's passphrase 2026"}
REJECT_REASON = "Cell LS/F holds 3 arrests: below the minimum of 10. Suppress or combine areas."
REQUEST_NOTE = "Checked against the project's purpose: these outputs fit it."
JUSTIFICATION = "The area breakdown is needed for the attrition paper; the cell is a known pilot."
DICTIONARY = [
    {"name": "person_key", "type": "string"},
    {"name": "sex", "type": "string", "values": ["F", "M"]},
]


# ------------------------------------------------------------------ the registry
@dataclass
class Scenario:
    deployment: Deployment
    registry: Registry
    request_id: int
    table: int  # fails a rule; the checkers reject it
    model: int
    dp_count: int
    figure: int


def _png() -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3, 2))
    figure.add_subplot().bar(["F", "M"], [125, 340])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _record_outputs(
    registry: Registry, policies: PolicySet, deployment: Deployment
) -> dict[str, int]:
    """ana's outputs, recorded directly: an unsafe table (exception asked), a regression, a DP
    count and a figure."""
    rules = file_gate_rules(policies)
    records = pd.DataFrame(
        {
            "area": ["LS"] * 43 + ["M"] * 55,
            "sex": ["F"] * 3 + ["M"] * 40 + ["F"] * 25 + ["M"] * 30,
        }
    )
    check = check_table(records, index="area", columns="sex", profile=policies.sdc.active)
    rng = np.random.default_rng(5)
    journeys = pd.DataFrame(
        {
            "person_key": [f"p{i}" for i in rng.integers(0, 200, 400)],
            "sex": rng.choice(["F", "M"], 400),
        }
    )
    coefficients = pd.DataFrame(
        {"coef": [2.31, 0.42], "std_err": [0.11, 0.05], "p_value": [0.001, 0.02]},
        index=pd.Index(["const", "prior_arrests"], name="term"),
    )
    with registry.sessions() as s:
        table = record_output(
            s,
            project_code=PROJECT,
            author="ana",
            kind="table",
            name="Arrests by area and sex",
            content={"kind": "table", "statistic": "count", "table": table_content(check.table)},
            checks=[
                {
                    "check": "sdc_table",
                    "status": check.overall,
                    "message": check.summary(),
                    "evidence": check.to_dict(),
                }
            ],
            context="Arrests in 2025 by police area and sex.",
            controls="None: I ask for an exception.",
            files={"arrests-by-area-sex.csv": check.table.to_csv().encode()},
            file_rules=rules,
        )
        model = record_output(
            s,
            project_code=PROJECT,
            author="ana",
            kind="model",
            name="OLS of sentence length on prior arrests",
            content={
                "kind": "model",
                "model": "ols",
                "nobs": 412,
                "estimates": table_content(coefficients),
            },
            checks=[
                {
                    "check": "model",
                    "status": "ok",
                    "message": "residual degrees of freedom 410 >= 10",
                }
            ],
            context="Coefficients only; no residuals.",
            controls="Residual dof checked.",
            files={"ols-coefficients.csv": coefficients.to_csv().encode()},
            file_rules=rules,
        )
        figure = record_output(
            s,
            project_code=PROJECT,
            author="ana",
            kind="figure",
            name="Arrests by sex (bar chart)",
            content={"kind": "figure", "bars": {"F": 125, "M": 340}},
            checks=[{"check": "figure", "status": "ok", "message": "bars of at least 10"}],
            files={"arrests-by-sex.png": _png()},
            file_rules=rules,
        )
        s.commit()
        ids = {"table": table.id, "model": model.id, "figure": figure.id}
        request_exception(
            s, output_id=table.id, actor="ana", policies=policies, justification=JUSTIFICATION
        )
        # A DP query reads a dataset the environment holds, granted to the project.
        write_key_file(deployment.key_file, generate_master_key())
        vault = Vault(deployment, policies)
        register_standard_agreements(s, policies, "admin")
        admit_to_agreements(s, policies, admin="admin", code=PROJECT)
        vault.store(
            s,
            "linked/journeys",
            journeys,
            actor="steward",
            data_dictionary=DICTIONARY,
            lineage=RESEARCH_LINEAGE,
        )
        grant_dataset(
            s, actor="steward", policies=policies, code=PROJECT, dataset_name="linked/journeys"
        )
        released = release_dp(
            s,
            vault,
            project_code=PROJECT,
            researcher="ana",
            query=dp.count(by=["sex"]),
            dataset="linked/journeys",
            policies=policies,
            rho=0.01,
            name="DP count of people by sex",
        )
        ids["dp_count"] = released.output_id
    return ids


@pytest.fixture
def scenario(tmp_path: Path, policies: PolicySet) -> Iterator[Scenario]:
    home = tmp_path / "home"
    home.mkdir()
    deployment = Deployment.at(home, database_url=f"sqlite:///{home / 'srs.db'}")
    registry = open_registry(deployment.database_url, migrate=True)
    populate(registry, policies)
    add_checker(registry, policies, "chen")
    with registry.sessions() as s:
        for username, password in CHECKERS.items():
            set_password(s, actor="admin", policies=policies, username=username, password=password)
    (home / "vault").mkdir(mode=0o700)
    ids = _record_outputs(registry, policies, deployment)
    with registry.sessions() as s:
        request = create_request(
            s, project_code=PROJECT, author="ana", policies=policies, title="Attrition outputs"
        )
        submit_request(s, request_id=request.id, actor="ana", policies=policies)
        request_id = request.id
    try:
        yield Scenario(deployment, registry, request_id, **ids)
    finally:
        registry.dispose()


# ------------------------------------------------------------------ the test
def test_two_checkers_review_and_release_a_request_in_chromium(
    browser, scenario: Scenario, policies: PolicySet
) -> None:
    app = make_app(scenario.deployment, policies)
    with BackgroundServer(app) as server:
        cho = Checker(browser, server.url)

        # A wrong password: the form says so, nothing more, and nobody is signed in.
        cho.sign_in("cho", "not cho's passphrase")
        assert cho.flash() == SIGN_IN_REFUSED
        assert browser.find_elements(By.ID, "signed-in-as") == []

        cho.sign_in("cho", CHECKERS["cho"])
        assert browser.find_element(By.ID, "signed-in-as").text == "cho"
        row = browser.find_element(By.CSS_SELECTOR, f'tr[data-request="{scenario.request_id}"]')
        assert "Attrition outputs" in row.text and "P001" in row.text and "ana" in row.text
        assert "0 of 2 complete" in row.text

        cho.open_request_from_queue(scenario.request_id)
        assert browser.find_element(By.ID, "request-title").text == "Attrition outputs"
        assert browser.find_element(By.ID, "request-status").text == "submitted"

        # The table, rendered from its content, with the failing cell marked from the evidence.
        table = cho.output(scenario.table)
        (failing,) = table.find_elements(By.CSS_SELECTOR, "table.evidence-table td.cell-fail")
        assert failing.text == "3" and failing.get_attribute("title") == "count 3 < 10"
        row_label = failing.find_element(By.XPATH, "./preceding-sibling::th").text
        assert row_label == "LS"
        assert len(table.find_elements(By.CSS_SELECTOR, "td.cell-ok")) == 3
        assert JUSTIFICATION in table.find_element(By.CLASS_NAME, "exception").text
        summary = table.find_element(By.CSS_SELECTOR, 'table.csv-summary tr[data-column="F"]')
        assert summary.text.split()[:6] == ["F", "numeric", "3", "3", "25", "28"]
        assert "not rounded to 5" in summary.text
        # The other kinds: the DP result's records, the figure inline, files to download.
        dp_rows = cho.output(scenario.dp_count).find_elements(By.CSS_SELECTOR, "table.records tr")
        assert len(dp_rows) == 3  # header, F, M
        image = cho.output(scenario.figure).find_element(By.CSS_SELECTOR, "img.output-image")
        assert browser.execute_script("return arguments[0].naturalWidth", image) > 0
        model = cho.output(scenario.model)
        terms = model.find_elements(By.CSS_SELECTOR, "table.evidence-table tbody th")
        assert [term.text for term in terms] == ["const", "prior_arrests"]
        links = model.find_elements(By.CSS_SELECTOR, "a.download")
        assert [link.text for link in links] == ["ols-coefficients.csv"]

        # cho's review: reject the unsafe table (telling the researcher why), approve the rest.
        cho.vote(scenario.table, "reject", REJECT_REASON, visible=True)
        for output_id in (scenario.model, scenario.dp_count, scenario.figure):
            cho.vote(output_id, "approve")
        assert browser.find_element(By.ID, "request-status").text == "partially reviewed"
        browser.find_element(By.ID, "request-comment").send_keys(REQUEST_NOTE)
        cho.submit(browser.find_element(By.ID, "add-comment"))
        assert cho.flash() == "Your comment is recorded."
        cho.sign_out()
        assert "signed out" in cho.flash()

        # chen reviews blind: none of cho's votes or comments until both reviews are in.
        chen = Checker(browser, server.url)
        chen.sign_in("chen", CHECKERS["chen"])
        chen.open_request_from_queue(scenario.request_id)
        page = browser.page_source
        assert browser.find_elements(By.ID, "blinded-notice")
        assert browser.find_elements(By.CSS_SELECTOR, ".other-vote") == []
        assert REJECT_REASON not in page and REQUEST_NOTE not in page
        assert browser.find_elements(By.CSS_SELECTOR, 'tr[data-action="output.reject"]') == []
        assert browser.find_elements(By.CSS_SELECTOR, 'tr[data-action="output.approve"]') == []

        chen.vote(scenario.table, "reject", "Agree: below threshold.")
        for output_id in (scenario.model, scenario.dp_count, scenario.figure):
            chen.vote(output_id, "approve")
        assert browser.find_element(By.ID, "request-status").text == "approved"
        assert browser.find_elements(By.ID, "blinded-notice") == []
        cho_votes = browser.find_elements(By.CSS_SELECTOR, '.other-vote[data-reviewer="cho"]')
        assert len(cho_votes) == 4 and REJECT_REASON in cho_votes[0].text
        assert REQUEST_NOTE in browser.find_element(By.ID, "comments").text
        assert browser.find_elements(By.ID, "conflict-notice") == []

        # chen releases it from the releases page.
        chen.open("releases")
        button = browser.find_element(
            By.CSS_SELECTOR, f'button.create-release[data-request="{scenario.request_id}"]'
        )
        chen.submit(button)
        bundle = f"P001-request-{scenario.request_id}"
        assert chen.flash().startswith(f"Released as bundle {bundle}")
        assert browser.find_element(By.CSS_SELECTOR, "td.bundle-name").text == bundle

    # The registry shows what the checkers did ...
    with scenario.registry.sessions() as s:
        request = s.get(ReleaseRequest, scenario.request_id)
        assert request.status == "released"
        status = {o.id: o.status for o in s.execute(select(Output)).scalars()}
        assert status == {
            scenario.table: "rejected",
            scenario.model: "released",
            scenario.dp_count: "released",
            scenario.figure: "released",
        }
        votes = {
            (v.reviewer, v.output_id): v.decision for v in s.execute(select(ReviewVote)).scalars()
        }
        assert votes[("cho", scenario.table)] == votes[("chen", scenario.table)] == "reject"
        assert sum(d == "approve" for d in votes.values()) == 6 and len(votes) == 8
        reason = (
            s.execute(select(OutputComment).where(OutputComment.output_id == scenario.table))
            .scalars()
            .first()
        )
        assert (reason.author, reason.visibility, reason.text) == (
            "cho",
            "researcher",
            REJECT_REASON,
        )
        events = s.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
        assert verify_chain(s).intact

    # ... and so does the audit log, in order.
    target = f"request/{scenario.request_id}"
    on_request = [(e.actor, e.action) for e in events if e.target == target and e.outcome == "ok"]
    assert on_request == [
        ("ana", "request.draft"),
        ("ana", "request.submitted"),
        ("cho", "output.reject"),
        ("cho", "output.approve"),
        ("cho", "output.approve"),
        ("cho", "output.approve"),
        ("cho", "request.partially_reviewed"),
        ("cho", "request.comment"),
        ("chen", "output.reject"),
        ("chen", "output.approve"),
        ("chen", "output.approve"),
        ("chen", "output.approve"),
        ("chen", "request.reviewed"),
        ("chen", "request.approved"),
        ("chen", "request.released"),
        ("chen", "release.create"),
    ]
    sign_ins = [(e.actor, e.outcome, e.reason) for e in events if e.action == "sign_in"]
    assert sign_ins == [
        ("cho", "deny", "wrong password (1 of 5)"),
        ("cho", "allow", ""),
        ("chen", "allow", ""),
    ]
    assert [(e.actor, e.target) for e in events if e.action == "sign_out"] == [
        ("cho", "checker-ui")
    ]

    # The signed bundle holds exactly the approved outputs, and verifies.
    folder = releases_dir(scenario.deployment) / bundle
    report = verify_release(folder, public_key_path(scenario.deployment))
    assert report.valid, report.summary()
    manifest = json.loads((folder / "manifest.json").read_text())
    released_ids = {o["id"] for o in manifest["outputs"]}
    assert released_ids == {scenario.model, scenario.dp_count, scenario.figure}

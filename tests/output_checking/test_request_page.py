"""What a checker reads on the request page: hidden cells that say why, regression estimates at
a readable precision, and a custom output's justification and release readiness in the open."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pandas as pd
import pytest
import statsmodels.formula.api as smf
from sqlalchemy import update
from test_web import COOKIE_SECRET, Client, password_hash
from workflow_fixtures import SECOND_CHECKER, add_checker

from output_checking.outputs import file_gate_rules, record_output
from output_checking.web import BackgroundServer, make_app
from output_checking.workflow import create_request, submit_request
from registry_fixtures import PROJECT, populate
from srs.governance.deployment import Deployment
from srs.governance.registry import open_registry
from srs.governance.registry.models import Researcher
from srs.research.drafts import Draft, custom_draft, model_draft, protected_table

JUSTIFICATION = "Reoffending shares by court for the annual report; every cell is 10 or more"


@dataclass
class Request:
    id: int
    table: int
    model: int
    custom: int


def cases(counts: dict[tuple[str, str], int]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"sex": sex, "court": court} for (sex, court), n in counts.items() for _ in range(n)]
    )


def record(db, policies, draft: Draft, name: str, files: dict[str, bytes], **text) -> int:
    content = dict(draft.content)
    if draft.kind == "custom":
        content["file"] = next(iter(files))
    return record_output(
        db,
        project_code=PROJECT,
        author="ana",
        kind=draft.kind,
        name=name,
        content=content,
        checks=draft.checks,
        files=files,
        file_rules=file_gate_rules(policies),
        **text,
    ).id


def ana_request(deployment: Deployment, policies, tmp_path: Path) -> Request:
    """ana's submitted request: a protected table with hidden cells, an OLS model and a custom
    CSV with things a checker would ask about."""
    profile = policies.sdc.active
    registry = open_registry(deployment.database_url, migrate=True)
    populate(registry, policies)
    add_checker(registry, policies)
    data = cases(
        {
            ("F", "crown"): 25,
            ("F", "magistrates"): 4,
            ("F", "youth"): 3,
            ("M", "crown"): 40,
            ("M", "magistrates"): 30,
        }
    )
    _, table = protected_table(
        data, index="sex", columns="court", profile=profile, profile_name=policies.sdc.profile
    )
    people = pd.DataFrame(
        {"age": range(20, 80), "months": [0.37 * a + (a % 7) for a in range(20, 80)]}
    )
    model = model_draft(smf.ols("months ~ age", data=people).fit(), "months ~ age", profile)
    shares = tmp_path / "reoffending.csv"
    shares.write_text("court,cases,pct_reoffended\ncrown,37,35.2\nyouth,6,50\n")
    custom = custom_draft(shares, JUSTIFICATION, profile=profile)
    try:
        with registry.sessions() as db:
            db.execute(
                update(Researcher)
                .where(Researcher.username.in_(["cho", SECOND_CHECKER]))
                .values(password_hash=password_hash())
            )
            ids = (
                record(
                    db, policies, table, "Cases by sex and court", {"cases.csv": table.files["csv"]}
                ),
                record(
                    db,
                    policies,
                    model,
                    "Sentence by age",
                    {"ols.csv": model.files["csv"], "ols.txt": model.files["txt"]},
                ),
                record(
                    db,
                    policies,
                    custom,
                    "Reoffending shares",
                    {"reoffending.csv": shares.read_bytes()},
                ),
            )
            db.commit()
            request = create_request(
                db, project_code=PROJECT, author="ana", policies=policies, title="Courts"
            )
            submit_request(db, request_id=request.id, actor="ana", policies=policies)
            return Request(request.id, *ids)
    finally:
        registry.dispose()


@pytest.fixture
def page(deployment, policies, tmp_path) -> Iterator[tuple[Request, str]]:
    request = ana_request(deployment, policies, tmp_path)
    app = make_app(deployment, policies, cookie_secret=COOKIE_SECRET)
    with BackgroundServer(app) as server:
        cho = Client(server.url)
        cho.sign_in("cho")
        response = cho.get(f"requests/{request.id}")
        assert response.status_code == 200
        yield request, response.text


def section(html: str, output_id: int) -> str:
    found = re.search(
        rf'<section class="output card[^"]*" id="output-{output_id}".*?</section>', html, re.S
    )
    assert found, output_id
    return found.group(0)


def test_hidden_cells_say_why_they_are_hidden(page, policies) -> None:
    request, html = page
    table = section(html, request.table)
    hidden = re.findall(r'<td class="cell cell-(\w+) hidden hidden-(\w+)"[^>]*>([^<]*)</td>', table)
    minimum = policies.sdc.active.minimum_cell_count
    assert ("fail", "primary", f"suppressed: fewer than {minimum}") in hidden
    assert any(
        kind == "secondary" and text == "suppressed to protect another cell"
        for _, kind, text in hidden
    )
    blank = re.findall(r'<td class="cell[^"]*"[^>]*></td>', table)
    assert blank == []  # no hidden cell is left blank and unexplained
    assert "to protect another cell</span>" in table  # the heading counts both kinds
    assert 'class="legend hidden-legend"' in table


def test_regression_estimates_are_shown_to_significant_figures(page) -> None:
    request, html = page
    model = section(html, request.model)
    estimates = re.search(r'<table class="evidence-table">(.*?)</table>', model, re.S).group(1)
    numbers = re.findall(r"<td[^>]*>([^<]+)</td>", estimates)
    assert numbers
    for number in numbers:
        digits = number.lower().split("e")[0].replace("-", "").replace(".", "").strip("0")
        assert len(digits) <= 4, number


def test_a_custom_outputs_justification_and_readiness_are_in_the_open(page) -> None:
    request, html = page
    custom = section(html, request.custom)
    justification = re.search(r'<dd class="justification">([^<]*)</dd>', custom)
    assert justification and unescape(justification.group(1)) == JUSTIFICATION
    assert custom.index('class="justification"') < custom.index("<h3>Checks</h3>")
    readiness = re.search(r'data-check="readiness">(.*?)</tr>', custom, re.S).group(1)
    assert "<details open>" in readiness
    text = unescape(readiness)
    assert "column 'cases': 2 of 2 counts are not rounded to 5" in text
    assert "holds percentages but the file has no denominator column" in text
    assert "no context" in text and "no controls" in text

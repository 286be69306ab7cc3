"""A checker sees, with each output, the dataset versions it was made from (``datasets_used``),
and an output that records none is shown with a warning to ask where its data came from."""

from __future__ import annotations

import re
from html import unescape

import pandas as pd
from agreement_fixtures import register_standard_agreements
from sqlalchemy import update
from test_web import COOKIE_SECRET, Client, password_hash
from workflow_fixtures import SECOND_CHECKER, add_checker

from output_checking.outputs import acro_record, describe_uses, record_output
from output_checking.web import BackgroundServer, make_app
from output_checking.workflow import create_request, submit_request
from registry_fixtures import PROJECT, populate
from srs.governance.registry import open_registry
from srs.governance.registry.models import Dataset, Output, Researcher
from srs.research.drafts import protected_table

USED = [
    {"name": "linked/journeys", "version": 2, "content_hash": "sha256:" + "ab" * 32},
    {"name": "linked/persons", "version": 1, "content_hash": "sha256:" + "cd" * 32},
]
# A name no catalogue holds, as a hand-edited registry might carry: shown, never run.
HOSTILE = [{"name": "<script>alert(1)</script>", "version": 1, "content_hash": "x"}]


def record_versions(db, steward: str, uses: list[dict]) -> None:
    """Registry records of the versions ``uses`` name, under DSA-POLICE (a submission checks
    that the data an output was made from are still held under agreements in force)."""
    for use in uses:
        db.add(
            Dataset(
                name=use["name"],
                version=use["version"],
                classification="confidential",
                content_hash=use["content_hash"],
                row_count=1,
                file_path=f"{use['version']}.parquet.enc",
                wrapped_key=b"key",
                master_key_id="m",
                created_by=steward,
                lineage={
                    "sources": ["police_arrests"],
                    "agreements": {"police_arrests": "DSA-POLICE"},
                },
            )
        )


def test_the_request_page_shows_the_versions_each_output_used(deployment, policies) -> None:
    registry = open_registry(deployment.database_url, migrate=True)
    people = populate(registry, policies)
    add_checker(registry, policies)
    data = pd.DataFrame({"sex": ["F"] * 30 + ["M"] * 40})
    _, table = protected_table(
        data,
        index="sex",
        profile=policies.sdc.active,
        profile_name=policies.sdc.profile,
    )
    try:
        with registry.sessions() as db:
            register_standard_agreements(db, policies, people.steward)
            record_versions(db, people.steward, USED + HOSTILE)
            db.execute(
                update(Researcher)
                .where(Researcher.username.in_(["cho", SECOND_CHECKER]))
                .values(password_hash=password_hash())
            )
            ids = [
                record_output(
                    db,
                    project_code=PROJECT,
                    author="ana",
                    kind="table",
                    name=name,
                    content=table.content,
                    checks=table.checks,
                    datasets_used=used,
                ).id
                for name, used in (("with", USED), ("without", None), ("hostile", HOSTILE))
            ]
            db.commit()
            request = create_request(
                db, project_code=PROJECT, author="ana", policies=policies, title="People"
            )
            submit_request(db, request_id=request.id, actor="ana", policies=policies)
            records = [acro_record(db.get(Output, i), []) for i in ids]
    finally:
        registry.dispose()
    assert records[0]["properties"]["datasets_used"] == USED
    assert records[1]["properties"]["datasets_used"] == []
    app = make_app(deployment, policies, cookie_secret=COOKIE_SECRET)
    with BackgroundServer(app) as server:
        cho = Client(server.url)
        cho.sign_in("cho")
        html = cho.get(f"requests/{request.id}").text
    shown = {
        output_id: unescape(
            re.sub(
                r"<[^>]+>",
                "",
                re.search(
                    rf'id="output-{output_id}".*?<dd class="datasets-used[^"]*"[^>]*>(.*?)</dd>',
                    html,
                    re.S,
                ).group(1),
            )
        )
        for output_id in ids
    }
    assert shown[ids[0]] == (
        f"linked/journeys@2 sha256:{'ab' * 8}; linked/persons@1 sha256:{'cd' * 8}"
    )
    assert shown[ids[1]].startswith("No dataset version recorded.")
    assert "ask the researcher where its data came from" in shown[ids[1]]
    # The warning stands out (role alert, its own class); outputs with versions carry neither.
    assert html.count('class="datasets-used no-datasets-used" role="alert"') == 1
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;@1" in html
    assert describe_uses(USED[:1]) == f"linked/journeys@2 (sha256:{'ab' * 8})"

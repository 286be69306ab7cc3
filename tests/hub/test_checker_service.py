"""The output checkers' UI as the hub's ``output-checking`` service, on a real JupyterHub.

The hub runs with the generated config (``srs checker serve --hub`` as a managed service behind
the proxy). A checker signs in at the hub (acknowledging the notice), opens
``/services/output-checking/`` and is taken through the hub's OAuth to the review queue; the
sign-in is audited and the UI's forms work under the prefix. A researcher is refused by the hub
(only the ``checker`` group may reach the service), an anonymous visitor is sent to the hub's
login, and a checker locked in the registry after signing in to the hub is refused by the UI.

Needs root and ``make hub-prerequisites``, as ``test_hub_e2e.py`` does; it fails, never skips.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
import requests
from hub_fixtures import (
    PASSWORD,
    Researcher,
    RunningHub,
    build_hub,
    events,
    hub_base,  # noqa: F401 (fixture)
    remove_test_accounts,
)
from workflow_fixtures import add_checker

from output_checking.outputs import record_output, table_content
from output_checking.workflow import create_request, submit_request
from srs.governance.policy import PolicySet
from srs.governance.registry import accounts, open_registry
from srs.governance.registry.sign_in import set_password
from srs.hub.config import CHECKER_SERVICE, checker_url

LOCKED_CHECKER = "chloe"
USERNAMES = ["ana", "cho", LOCKED_CHECKER]
PROJECTS = ["P001", "P002"]
PREFIX = f"/services/{CHECKER_SERVICE}/"


@pytest.fixture(scope="module")
def hub(hub_base: Path, policies: PolicySet) -> Iterator[RunningHub]:  # noqa: F811
    """The hub, started once for this module."""
    remove_test_accounts(USERNAMES, PROJECTS)  # leftovers of an interrupted run
    running = build_hub(hub_base, policies, idle_timeout=600)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        remove_test_accounts(USERNAMES, PROJECTS)


@pytest.fixture(scope="module")
def request_id(hub: RunningHub, policies: PolicySet) -> int:
    """ana's request of one table, submitted for review (the hub and the UI read the registry
    as it is now)."""
    registry = open_registry(hub.deployment.database_url)
    try:
        with registry.sessions() as db:
            table = pd.DataFrame({"count": {"F": 120, "M": 340}}).rename_axis("sex")
            record_output(
                db,
                project_code="P001",
                author="ana",
                kind="table",
                name="Cases by sex",
                content={"kind": "table", "statistic": "count", "table": table_content(table)},
                checks=[{"check": "sdc_table", "status": "ok", "message": "all cells safe"}],
                files={"by-sex.csv": table.to_csv().encode()},
            )
            db.commit()
            request = create_request(
                db, project_code="P001", author="ana", policies=policies, title="Cases by sex"
            )
            submit_request(db, request_id=request.id, actor="ana", policies=policies)
            return request.id
    finally:
        registry.dispose()


def signed_in_at_the_hub(hub: RunningHub, username: str) -> Researcher:
    person = Researcher(hub, username)
    reply = person.sign_in()  # with the system-use notice acknowledged
    assert reply.status_code == 302, reply.text
    return person


def paths(reply: requests.Response) -> list[str]:
    """Every address the browser was sent through, ending where it landed."""
    return [urlparse(hop.url).path for hop in [*reply.history, reply]]


def test_a_checker_reaches_the_queue_through_the_hubs_oauth(
    hub: RunningHub, request_id: int
) -> None:
    service = checker_url(hub.ports)
    assert service == f"{hub.url}{PREFIX}"

    # Nobody signed in: the service sends the browser to the hub's OAuth, and the hub to its login.
    anonymous = requests.get(service, timeout=30)
    assert anonymous.status_code == 200, hub.log_tail()
    assert paths(anonymous)[-1] == "/hub/login"
    assert "/hub/api/oauth2/authorize" in paths(anonymous)
    assert "service-output-checking" in parse_qs(urlparse(anonymous.url).query)["next"][0]
    assert "System-use notice" in anonymous.text

    cho = signed_in_at_the_hub(hub, "cho")
    queue = cho.http.get(service, timeout=30)
    assert queue.status_code == 200, f"{queue.url}\n{queue.text}\n{hub.log_tail()}"
    assert queue.url == service + "queue"
    assert paths(queue) == [
        PREFIX,
        PREFIX + "queue",
        "/hub/api/oauth2/authorize",  # no consent page: oauth_no_confirm
        PREFIX + "oauth_callback",
        PREFIX + "queue",
    ]
    assert f'data-request="{request_id}"' in queue.text
    assert "Cases by sex" in queue.text and 'id="signed-in-as">cho<' in queue.text
    (signed_in,) = events(hub, actor="cho", action="sign_in", target="checker-ui")
    assert signed_in.outcome == "allow"
    assert json.loads(signed_in.details) == {"through": "jupyterhub"}

    # The pages' forms work under the prefix, with the hub's XSRF token.
    xsrf = next(c for c in cho.http.cookies if c.name == "_xsrf" and c.path == PREFIX)
    assert re.search(rf'name="_xsrf" value="{re.escape(xsrf.value)}"', queue.text)
    commented = cho.http.post(
        f"{service}requests/{request_id}/comments",
        data={"_xsrf": xsrf.value, "text": "looks fine", "visibility": "checkers"},
        timeout=30,
    )
    assert commented.status_code == 200 and "Your comment is recorded." in commented.text
    assert events(hub, actor="cho", action="request.comment")
    forged = cho.http.post(
        f"{service}requests/{request_id}/comments", data={"text": "forged"}, timeout=30
    )
    assert forged.status_code == 403

    # Signing out of the UI signs out of the hub too: the next visit needs the hub's login.
    signed_out = cho.http.post(f"{service}sign-out", data={"_xsrf": xsrf.value}, timeout=30)
    assert "/hub/logout" in paths(signed_out) and paths(signed_out)[-1] == "/hub/login"
    assert events(hub, actor="cho", action="sign_out", target="checker-ui")
    assert paths(cho.http.get(service, timeout=30))[-1] == "/hub/login"


def test_a_researcher_is_refused_by_the_hub(hub: RunningHub) -> None:
    ana = signed_in_at_the_hub(hub, "ana")
    refused = ana.http.get(checker_url(hub.ports), timeout=30)
    assert refused.status_code == 403, f"{refused.url}\n{hub.log_tail()}"
    assert paths(refused)[-1] == "/hub/api/oauth2/authorize"
    assert "You do not have permission to access" in refused.text
    # Neither the hub's token for the service nor the UI's session: only the OAuth state.
    assert {c.name for c in ana.http.cookies if c.path == PREFIX} <= {
        "service-output-checking-oauth-state"
    }
    assert events(hub, actor="ana", target="checker-ui") == []  # the UI never saw her


def test_a_checker_locked_after_signing_in_at_the_hub_is_refused_by_the_ui(
    hub: RunningHub, policies: PolicySet
) -> None:
    registry = open_registry(hub.deployment.database_url)
    try:
        add_checker(registry, policies, LOCKED_CHECKER)
        with registry.sessions() as db:
            set_password(
                db, actor="admin", policies=policies, username=LOCKED_CHECKER, password=PASSWORD
            )
        chloe = signed_in_at_the_hub(hub, LOCKED_CHECKER)
        with registry.sessions() as db:
            accounts.set_locked(
                db,
                actor="admin",
                policies=policies,
                username=LOCKED_CHECKER,
                locked=True,
                reason="left the organisation",
            )
    finally:
        registry.dispose()
    # The hub still holds her session (and the checker group), so its OAuth lets her through:
    # the UI asks the registry, refuses her with a page saying why, and audits it.
    refused = chloe.http.get(checker_url(hub.ports), timeout=30)
    assert refused.status_code == 403, f"{refused.url}\n{hub.log_tail()}"
    assert urlparse(refused.url).path == PREFIX + "queue"
    assert "/hub/api/oauth2/authorize" in paths(refused)
    shown = refused.text.replace("&#39;", "'")
    assert f"{LOCKED_CHECKER} may not use the output checkers' UI" in shown
    assert "is locked (left the organisation)" in shown
    assert "srs-checker-user" not in chloe.http.cookies
    (denied,) = events(hub, actor=LOCKED_CHECKER, action="sign_in", target="checker-ui")
    assert denied.outcome == "deny" and "locked" in denied.reason

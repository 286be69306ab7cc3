"""The checker web UI over real HTTP: sign-in, XSRF, roles, blinding, the two-person rule,
escaping of researchers' text, files, and refusals shown as messages (not server errors); and
hub mode, signed in through JupyterHub's OAuth (a stand-in hub here; tests/hub has the real one).
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import secrets
import stat
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import matplotlib
import pandas as pd
import pytest
import requests
from jupyterhub.services.auth import HubOAuth
from sqlalchemy import select, update
from tornado.web import create_signed_value
from workflow_fixtures import SECOND_CHECKER, add_checker

from disclosure.tables import check_table
from output_checking.checker_sessions import session_digest
from output_checking.outputs import file_gate_rules, record_output, table_content
from output_checking.web import (
    COOKIE_SECRET_ENV,
    COOKIE_SECRET_FILE,
    HUB_SERVICE_ENVIRONMENT,
    SESSION_COOKIE,
    BackgroundServer,
    CheckerUIError,
    cell_evidence,
    load_cookie_secret,
    make_app,
    render_table,
    runs_as_hub_service,
)
from output_checking.workflow import create_request, submit_request
from registry_fixtures import PROJECT, populate
from srs.governance.deployment import Deployment
from srs.governance.registry import Registry, open_registry, projects
from srs.governance.registry.models import (
    AuditEvent,
    CheckerSession,
    Output,
    ReleaseRequest,
    Researcher,
    ReviewVote,
    utc_now,
)
from srs.governance.registry.sign_in import SIGN_IN_REFUSED, hash_password

matplotlib.use("Agg")

PASSWORD = "a long enough passphrase"
COOKIE_SECRET = "test-secret-" * 6
MEMBER_CHECKER = "cam"  # a checker who is also a member of P001
HOSTILE = '<script>alert("pwned")</script>'


@functools.cache
def password_hash() -> str:
    return hash_password(PASSWORD)


@dataclass
class Scenario:
    """A registry with ana's submitted request of a failing table, a plain table and a figure."""

    deployment: Deployment
    registry: Registry
    request_id: int
    failing_table: int
    safe_table: int
    figure: int


def failing_table_output(session, policies) -> Output:
    """A count table checked by the SDC rules, one cell (LS, F) below the minimum of 10."""
    records = pd.DataFrame(
        {
            "area": ["LS"] * 3 + ["LS"] * 40 + ["M"] * 25 + ["M"] * 30,
            "sex": ["F"] * 3 + ["M"] * 40 + ["F"] * 25 + ["M"] * 30,
        }
    )
    check = check_table(records, index="area", columns="sex", profile=policies.sdc.active)
    assert check.failing_cells() == [("LS", "F")]
    return record_output(
        session,
        project_code=PROJECT,
        author="ana",
        kind="table",
        name=f"Arrests by area {HOSTILE}",
        content={"kind": "table", "statistic": "count", "table": table_content(check.table)},
        checks=[
            {
                "check": "sdc_table",
                "status": check.overall,
                "message": check.summary(),
                "evidence": check.to_dict(),
            }
        ],
        context='<img src=x onerror="alert(1)"> arrests per area',
        controls="none & no rounding",
        files={"arrests.csv": check.table.to_csv().encode()},
        file_rules=file_gate_rules(policies),
    )


def png_bytes() -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1))
    figure.add_subplot().bar(["F", "M"], [120, 340])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


@pytest.fixture
def scenario(deployment: Deployment, policies) -> Iterator[Scenario]:
    registry = open_registry(deployment.database_url, migrate=True)
    populate(registry, policies)
    add_checker(registry, policies)
    add_checker(registry, policies, MEMBER_CHECKER)
    with registry.sessions() as s:
        projects.add_member(s, actor="admin", policies=policies, code=PROJECT, username="cam")
        # One real Argon2id hash for everyone (hashing is slow on purpose); set_password is
        # what an administrator uses, and is exercised by the browser test.
        s.execute(
            update(Researcher)
            .where(Researcher.username.in_(["cho", SECOND_CHECKER, MEMBER_CHECKER, "ana"]))
            .values(password_hash=password_hash())
        )
        failing = failing_table_output(s, policies)
        table = pd.DataFrame({"count": {"F": 120, "M": 340}}).rename_axis("sex")
        safe = record_output(
            s,
            project_code=PROJECT,
            author="ana",
            kind="table",
            name="Arrests by sex",
            content={"kind": "table", "statistic": "count", "table": table_content(table)},
            checks=[{"check": "sdc_table", "status": "ok", "message": "all cells safe"}],
            files={"by-sex.csv": table.to_csv().encode()},
        )
        figure = record_output(
            s,
            project_code=PROJECT,
            author="ana",
            kind="figure",
            name="Arrests chart",
            content={"kind": "figure", "bars": {"F": 120, "M": 340}},
            files={"chart.png": png_bytes()},
            file_rules=file_gate_rules(policies),
        )
        s.commit()
        ids = (failing.id, safe.id, figure.id)
        request = create_request(
            s, project_code=PROJECT, author="ana", policies=policies, title="Arrests <b>2026</b>"
        )
        submit_request(s, request_id=request.id, actor="ana", policies=policies)
        request_id = request.id
    try:
        yield Scenario(deployment, registry, request_id, *ids)
    finally:
        registry.dispose()


@pytest.fixture
def server(scenario: Scenario, policies) -> Iterator[BackgroundServer]:
    app = make_app(scenario.deployment, policies, cookie_secret=COOKIE_SECRET)
    with BackgroundServer(app) as running:
        yield running


class Client:
    """A browser-like HTTP client: keeps cookies and sends the XSRF token as a form would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.last: requests.Response | None = None

    def get(self, path: str, **options) -> requests.Response:
        self.last = self.http.get(self.base + path, timeout=30, **options)
        return self.last

    def post(self, path: str, data: dict, *, xsrf: bool = True, **options) -> requests.Response:
        if xsrf:
            data = {"_xsrf": self.http.cookies.get("_xsrf") or self._page_token(), **data}
        self.last = self.http.post(self.base + path, data=data, timeout=30, **options)
        return self.last

    def _page_token(self) -> str:
        page = self.get("sign-in").text
        return re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)

    def sign_in(self, username: str, password: str = PASSWORD) -> requests.Response:
        self.get("sign-in")
        return self.post("sign-in", {"username": username, "password": password})

    def flash(self) -> str:
        found = re.search(r'id="flash">([^<]*)<', self.last.text)
        return found.group(1) if found else ""


def client(server: BackgroundServer) -> Client:
    return Client(server.url)


def events(registry: Registry, **where) -> list[AuditEvent]:
    with registry.sessions() as s:
        rows = s.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
    return [e for e in rows if all(getattr(e, k) == v for k, v in where.items())]


def vote_all(checker: Client, scenario: Scenario, decision: str = "approve", **extra) -> None:
    for output_id in (scenario.failing_table, scenario.safe_table, scenario.figure):
        page = checker.post(
            f"requests/{scenario.request_id}/outputs/{output_id}/vote",
            {"decision": decision, **extra},
        )
        assert page.status_code == 200 and "is recorded" in checker.flash(), checker.flash()


# ------------------------------------------------------------------ signing in
def test_a_checker_signs_in_and_sees_the_queue(server, scenario) -> None:
    cho = client(server)
    page = cho.sign_in("cho")
    assert page.status_code == 200 and page.url == server.url + "queue"
    row = re.search(r'<tr class="queue-entry" data-request="(\d+)">(.*?)</tr>', page.text, re.S)
    assert row and int(row.group(1)) == scenario.request_id
    assert "P001" in row.group(2) and "ana" in row.group(2) and "0 of 2 complete" in row.group(2)
    assert "Arrests &lt;b&gt;2026&lt;/b&gt;" in row.group(2)
    (allowed,) = events(scenario.registry, action="sign_in", actor="cho")
    assert allowed.outcome == "allow" and allowed.target == "checker-ui"


def test_pages_need_a_signed_in_checker(server) -> None:
    anonymous = client(server)
    page = anonymous.get("queue", allow_redirects=False)
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/sign-in?next=%2Fqueue")
    assert anonymous.post("sign-out", {}).status_code == 403


def test_a_wrong_password_is_refused_audited_and_counts_to_lock_out(
    server, scenario, policies
) -> None:
    cho = client(server)
    page = cho.sign_in("cho", "not the password at all")
    assert page.status_code == 403 and cho.flash() == SIGN_IN_REFUSED
    assert "srs-checker-user" not in cho.http.cookies
    (denied,) = events(scenario.registry, action="sign_in", actor="cho")
    assert denied.outcome == "deny" and "wrong password (1 of" in denied.reason
    for _ in range(policies.access.failed_login_limit - 1):
        cho.sign_in("cho", "still not the password")
    assert cho.flash() == SIGN_IN_REFUSED  # locked now, but not said to whoever typed
    page = cho.sign_in("cho")  # the right password no longer helps
    assert page.status_code == 403 and cho.flash() == SIGN_IN_REFUSED
    reasons = [e.reason for e in events(scenario.registry, action="sign_in", actor="cho")]
    assert "locked after" in reasons[-2] and reasons[-1].startswith("account locked")


def test_a_researcher_cannot_sign_in_to_the_checker_ui(server, scenario) -> None:
    ana = client(server)
    page = ana.sign_in("ana")
    assert page.status_code == 403
    assert "ana may not use the output checkers&#39; UI" in page.text
    assert "checker role" in page.text
    assert "srs-checker-user" not in ana.http.cookies
    assert ana.get("queue", allow_redirects=False).status_code == 302
    (denied,) = events(scenario.registry, action="access.output.review", actor="ana")
    assert denied.outcome == "deny" and "may not output.review" in denied.reason


def test_sign_out_ends_the_session_and_is_audited(server, scenario) -> None:
    cho = client(server)
    cho.sign_in("cho")
    page = cho.post("sign-out", {})
    assert page.url == server.url + "sign-in" and "signed out" in cho.flash()
    assert cho.get("queue", allow_redirects=False).status_code == 302
    assert [e.outcome for e in events(scenario.registry, action="sign_out")] == ["ok"]


def test_a_forged_cookie_is_not_a_session(server) -> None:
    mallory = client(server)
    # The old form of the cookie (a username signed with the cookie secret) opens nothing now.
    for forged in ("cho", create_signed_value(COOKIE_SECRET, SESSION_COOKIE, "cho").decode()):
        mallory.http.cookies.set(SESSION_COOKIE, forged)
        assert mallory.get("queue", allow_redirects=False).status_code == 302


def session_cookie(person: Client) -> str:
    (value,) = [c.value for c in person.http.cookies if c.name == SESSION_COOKIE]
    return value


def plant(person: Client, session_id: str) -> None:
    """Put a session cookie in ``person``'s browser, where the UI's own would go."""
    host = urlparse(person.base).hostname
    person.http.cookies.set(SESSION_COOKIE, session_id, domain=host, path="/")


def replay(server: BackgroundServer, session_id: str) -> Client:
    """A fresh browser carrying a copied session cookie (and nothing else)."""
    thief = client(server)
    plant(thief, session_id)
    return thief


def checker_sessions(registry: Registry) -> list[CheckerSession]:
    with registry.sessions() as s:
        return list(s.execute(select(CheckerSession).order_by(CheckerSession.id)).scalars())


def test_the_cookie_carries_only_a_random_session_id(server, scenario) -> None:
    cho = client(server)
    cho.sign_in("cho")
    session_id = session_cookie(cho)
    assert "cho" not in session_id and len(session_id) >= 43
    (stored,) = checker_sessions(scenario.registry)
    assert stored.username == "cho" and stored.session_sha256 == session_digest(session_id)


def test_a_cookie_replayed_after_sign_out_is_refused(server, scenario) -> None:
    cho = client(server)
    cho.sign_in("cho")
    copied = session_cookie(cho)
    assert replay(server, copied).get("queue", allow_redirects=False).status_code == 200
    cho.post("sign-out", {})
    thief = replay(server, copied)
    page = thief.get("queue", allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"].startswith("/sign-in?next=")
    assert thief.post("sign-out", {}).status_code == 403  # no session, so no form either
    (ended,) = checker_sessions(scenario.registry)
    assert ended.ended_reason == "signed out"
    replays = events(scenario.registry, action="checker_session.resume", outcome="deny")
    assert replays and all("(signed out)" in e.reason for e in replays)


def test_a_session_ends_after_the_policy_idle_timeout(server, scenario, policies) -> None:
    idle = timedelta(minutes=policies.access.idle_timeout_minutes)
    recent, stale = client(server), client(server)
    recent.sign_in("cho")
    stale.sign_in(SECOND_CHECKER)
    with scenario.registry.sessions() as s:
        for username, seen in (("cho", idle - timedelta(minutes=1)), (SECOND_CHECKER, idle)):
            s.execute(
                update(CheckerSession)
                .where(CheckerSession.username == username)
                .values(last_seen_at=utc_now() - seen - timedelta(seconds=1))
            )
        s.commit()
    assert recent.get("queue", allow_redirects=False).status_code == 200
    page = stale.get("queue", allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"].startswith("/sign-in")
    # Ended for good: coming back at once does not revive it.
    assert stale.get("queue", allow_redirects=False).status_code == 302
    ended = {s.username: s.ended_reason for s in checker_sessions(scenario.registry)}
    assert ended == {"cho": None, SECOND_CHECKER: ended[SECOND_CHECKER]}
    assert ended[SECOND_CHECKER].startswith("idle for more than")


def test_a_session_ends_at_its_absolute_lifetime_however_busy(server, scenario, policies) -> None:
    cho = client(server)
    cho.sign_in("cho")
    lifetime = timedelta(hours=policies.access.checker_session_max_hours)
    with scenario.registry.sessions() as s:
        s.execute(update(CheckerSession).values(created_at=utc_now() - lifetime - timedelta(1)))
        s.commit()
    assert cho.get("queue", allow_redirects=False).status_code == 302
    (ended,) = checker_sessions(scenario.registry)
    assert "hours ago" in ended.ended_reason


def test_each_sign_in_starts_a_new_session(server, scenario) -> None:
    """Session fixation: an id planted in the browser before sign-in is never the one signed
    in, and signing in again ends the session the browser held."""
    victim = client(server)
    plant(victim, "planted-by-mallory-" + "x" * 30)
    victim.sign_in("cho")
    first = session_cookie(victim)
    assert not first.startswith("planted")
    victim.sign_in("cho")
    second = session_cookie(victim)
    assert second != first
    assert replay(server, first).get("queue", allow_redirects=False).status_code == 302
    assert replay(server, second).get("queue", allow_redirects=False).status_code == 200
    reasons = [s.ended_reason for s in checker_sessions(scenario.registry)]
    assert reasons == ["replaced by a new sign-in", None]


def test_unknown_wrong_password_and_locked_accounts_are_refused_alike(server, scenario) -> None:
    """Account enumeration by message: the same page, word for word, for each."""
    with scenario.registry.sessions() as s:
        s.execute(
            update(Researcher).where(Researcher.username == SECOND_CHECKER).values(locked=True)
        )
        s.commit()
    pages = {}
    for label, username, password in (
        ("unknown", "nobody-here", PASSWORD),
        ("wrong password", "cho", "not the password at all"),
        ("locked", SECOND_CHECKER, PASSWORD),  # even the right password
    ):
        person = client(server)
        page = person.sign_in(username, password)
        assert page.status_code == 403, label
        pages[label] = page.text.replace(f'value="{username}"', 'value=""')
        assert person.flash() == SIGN_IN_REFUSED, label
    assert len({re.sub(r'name="_xsrf" value="[^"]+"', "", p) for p in pages.values()}) == 1
    reasons = {e.actor: e.reason for e in events(scenario.registry, action="sign_in")}
    assert reasons["nobody-here"] == "no such account"
    assert reasons["cho"].startswith("wrong password")
    assert reasons[SECOND_CHECKER].startswith("account locked")


def test_unknown_wrong_password_and_locked_sign_ins_take_the_same_time(scenario, policies) -> None:
    """Account enumeration by timing: an unknown or a locked account used to be answered
    without running Argon2id (7-25 ms against 120-380 ms). Medians of interleaved attempts,
    so a busy machine slows all three alike; within 2x of each other."""
    # A high lock-out limit, so that the wrong-password attempts stay wrong-password ones.
    roomy = policies.model_copy(
        update={"access": policies.access.model_copy(update={"failed_login_limit": 100})}
    )
    with scenario.registry.sessions() as s:
        s.execute(
            update(Researcher).where(Researcher.username == SECOND_CHECKER).values(locked=True)
        )
        s.commit()
    kinds = {
        "unknown": ("nobody-here", PASSWORD),
        "wrong password": ("cho", "not the password at all"),
        "locked": (SECOND_CHECKER, PASSWORD),
    }
    rounds = 9
    timings: dict[str, list[float]] = {kind: [] for kind in kinds}
    app = make_app(scenario.deployment, roomy, cookie_secret=COOKIE_SECRET)
    with BackgroundServer(app) as running:
        person = Client(running.url)
        person.get("sign-in")
        person.post("sign-in", {"username": "warm-up", "password": "x"})
        for round_number in range(rounds):
            order = list(kinds)
            order = order[round_number % 3 :] + order[: round_number % 3]
            for kind in order:
                username, password = kinds[kind]
                began = time.perf_counter()
                page = person.post("sign-in", {"username": username, "password": password})
                timings[kind].append(time.perf_counter() - began)
                assert page.status_code == 403 and person.flash() == SIGN_IN_REFUSED
    medians = {kind: statistics.median(times) for kind, times in timings.items()}
    print("sign-in medians (ms):", {k: round(v * 1000, 1) for k, v in medians.items()})
    assert max(medians.values()) <= 2 * min(medians.values()), medians


def test_unknown_pages_are_a_plain_404(server) -> None:
    page = client(server).get("no/such/page")
    assert page.status_code == 404 and "there is no page /no/such/page here" in page.text


def test_next_only_leads_inside_the_ui(server) -> None:
    cho = client(server)
    cho.get("sign-in")
    page = cho.post(
        "sign-in",
        {"username": "cho", "password": PASSWORD, "next": "//evil.example/"},
        allow_redirects=False,
    )
    assert page.status_code == 303 and page.headers["Location"] == "/queue"
    for elsewhere in ("https://evil.example/", "/\\evil.example/"):
        cho.post("sign-out", {})
        cho.get("sign-in")
        page = cho.post(
            "sign-in",
            {"username": "cho", "password": PASSWORD, "next": elsewhere},
            allow_redirects=False,
        )
        assert page.headers["Location"] == "/queue", elsewhere
    cho.post("sign-out", {})
    cho.get("sign-in")
    page = cho.post(
        "sign-in",
        {"username": "cho", "password": PASSWORD, "next": "/requests/1"},
        allow_redirects=False,
    )
    assert page.headers["Location"] == "/requests/1"


# ------------------------------------------------------------------ XSRF
def test_every_post_needs_the_xsrf_token(server, scenario) -> None:
    cho = client(server)
    cho.sign_in("cho")
    path = f"requests/{scenario.request_id}/outputs/{scenario.safe_table}/vote"
    page = cho.post(path, {"decision": "approve"}, xsrf=False)
    assert page.status_code == 403 and "_xsrf" in page.text
    page = cho.post(path, {"decision": "approve", "_xsrf": "2|00|00|00"}, xsrf=False)
    assert page.status_code == 403
    with scenario.registry.sessions() as s:
        assert s.execute(select(ReviewVote)).scalars().all() == []
    stranger = client(server)
    page = stranger.post("sign-in", {"username": "cho", "password": PASSWORD}, xsrf=False)
    assert page.status_code == 403 and len(events(scenario.registry, action="sign_in")) == 1


# ------------------------------------------------------------------ the request page
def test_the_request_page_shows_evidence_with_the_failing_cell_marked(server, scenario) -> None:
    cho = client(server)
    cho.sign_in("cho")
    page = cho.get(f"requests/{scenario.request_id}")
    assert page.status_code == 200
    failing = re.findall(r'<td class="cell cell-fail" title="([^"]*)">([^<]*)</td>', page.text)
    assert failing == [("count 3 &lt; 10", "3")]
    assert "1 failing cell" in page.text
    assert 'data-check="sdc_table"' in page.text and "fail: 1 of 4 cells fail" in page.text
    # CSV column summaries, the figure inline and files for download
    assert 'data-file="arrests.csv"' in page.text and "1 of 2 not rounded to 5" in page.text
    assert '<td class="small-count">3</td>' in page.text  # the smallest non-zero count, flagged
    assert f'src="/outputs/{scenario.figure}/files/chart.png"' in page.text
    assert f'href="/outputs/{scenario.safe_table}/files/by-sex.csv?download=1"' in page.text
    assert 'id="blinded-notice"' in page.text
    assert re.search(r'data-action="request.submitted"', page.text)


def test_researchers_text_is_escaped_everywhere(server, scenario) -> None:
    cho = client(server)
    cho.sign_in("cho")
    cho.post(
        f"requests/{scenario.request_id}/comments",
        {"text": f"look {HOSTILE}", "visibility": "checkers"},
    )
    page = cho.get(f"requests/{scenario.request_id}")
    assert "<script>" not in page.text and 'onerror="alert(1)"' not in page.text
    assert "Arrests by area &lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; arrests per area" in page.text
    assert "none &amp; no rounding" in page.text
    assert "look &lt;script&gt;" in page.text
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none'
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_files_are_for_checkers_png_inline_and_downloads_audited(server, scenario) -> None:
    cho = client(server)
    cho.sign_in("cho")
    image = cho.get(f"outputs/{scenario.figure}/files/chart.png")
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    csv = cho.get(f"outputs/{scenario.safe_table}/files/by-sex.csv")
    assert csv.headers["Content-Type"] == "application/octet-stream"
    assert csv.headers["Content-Disposition"].startswith("attachment")
    assert csv.text.startswith("sex,count")
    (download,) = events(scenario.registry, action="output.download")
    assert download.actor == "cho" and download.target == f"request/{scenario.request_id}"
    assert cho.get(f"outputs/{scenario.safe_table}/files/nothing.csv").status_code == 404
    anonymous = client(server)
    assert anonymous.get(f"outputs/{scenario.figure}/files/chart.png").url.startswith(
        server.url + "sign-in"
    )


# ------------------------------------------------------------------ the two-person rule
def test_a_checker_in_the_project_cannot_see_or_vote_on_its_requests(server, scenario) -> None:
    cam = client(server)
    assert cam.sign_in(MEMBER_CHECKER).url == server.url + "queue"
    assert 'id="queue-empty"' in cam.last.text
    page = cam.get(f"requests/{scenario.request_id}")
    assert page.status_code == 403 and "two-person rule" in page.text
    assert cam.get(f"outputs/{scenario.figure}/files/chart.png").status_code == 403
    page = cam.post(
        f"requests/{scenario.request_id}/outputs/{scenario.safe_table}/vote",
        {"decision": "approve"},
    )
    assert page.status_code == 403  # redirected back to the request, which is refused too
    with scenario.registry.sessions() as s:
        assert s.execute(select(ReviewVote)).scalars().all() == []
    denials = events(scenario.registry, actor=MEMBER_CHECKER, outcome="deny")
    assert len(denials) >= 3 and all("two-person rule" in e.reason for e in denials)


def test_the_author_cannot_review_their_own_request_even_as_a_checker(server, scenario) -> None:
    with scenario.registry.sessions() as s:
        s.execute(
            update(Researcher)
            .where(Researcher.username == "ana")
            .values(roles=["researcher", "checker"])
        )
        s.commit()
    ana = client(server)
    assert ana.sign_in("ana").url == server.url + "queue"
    assert 'id="queue-empty"' in ana.last.text
    page = ana.get(f"requests/{scenario.request_id}")
    assert page.status_code == 403 and "it is their own" in page.text
    assert ana.get(f"outputs/{scenario.figure}/files/chart.png").status_code == 403
    denied = events(scenario.registry, actor="ana", action="access.output.review", outcome="deny")
    assert [e.target for e in denied] == [f"request/{scenario.request_id}"] * 2


# ------------------------------------------------------------------ blind, independent reviews
def test_reviews_are_blind_until_both_are_in(server, scenario) -> None:
    cho, chen = client(server), client(server)
    cho.sign_in("cho")
    vote_all(cho, scenario, comment="cho-private-reasoning")
    page = cho.get(f"requests/{scenario.request_id}")
    assert "partially reviewed" in page.text and page.text.count('class="your-vote"') == 3

    chen.sign_in(SECOND_CHECKER)
    page = chen.get(f"requests/{scenario.request_id}")
    assert 'id="blinded-notice"' in page.text
    assert "cho-private-reasoning" not in page.text
    assert 'class="other-vote"' not in page.text
    assert 'data-action="output.approve"' not in page.text  # not even in the history
    assert "1 of 2 complete" in page.text

    vote_all(chen, scenario)
    page = chen.get(f"requests/{scenario.request_id}")
    assert 'id="blinded-notice"' not in page.text
    assert page.text.count('data-reviewer="cho"') == 3 and "cho-private-reasoning" in page.text
    with scenario.registry.sessions() as s:
        request = s.get(ReleaseRequest, scenario.request_id)
        assert request.status == "approved"


def test_disagreement_is_shown_as_a_conflict(server, scenario) -> None:
    cho, chen = client(server), client(server)
    cho.sign_in("cho")
    vote_all(cho, scenario)
    chen.sign_in(SECOND_CHECKER)
    chen.post(
        f"requests/{scenario.request_id}/outputs/{scenario.failing_table}/vote",
        {"decision": "reject", "comment": "LS/F is 3", "visibility": "researcher"},
    )
    for output_id in (scenario.safe_table, scenario.figure):
        chen.post(
            f"requests/{scenario.request_id}/outputs/{output_id}/vote", {"decision": "approve"}
        )
    page = cho.get(f"requests/{scenario.request_id}")
    assert 'id="conflict-notice"' in page.text
    assert f"output #{scenario.failing_table} (cho: approve, chen: reject)" in page.text
    section = page.text.split(f'id="output-{scenario.failing_table}"')[0].rsplit("<section", 1)[1]
    assert "conflict" in section


# ------------------------------------------------------------------ refusals are messages
def test_workflow_refusals_are_shown_on_the_page_not_as_server_errors(server, scenario) -> None:
    cho = client(server)
    cho.sign_in("cho")
    path = f"requests/{scenario.request_id}/outputs/{scenario.safe_table}/vote"
    page = cho.post(path, {"decision": "maybe"})
    assert page.status_code == 200 and "a decision is one of approve" in cho.flash()
    page = cho.post(f"requests/{scenario.request_id}/outputs/99999/vote", {"decision": "approve"})
    assert "no output #99999" in cho.flash()
    page = cho.post(f"requests/{scenario.request_id}/comments", {"text": "  "})
    assert "a comment needs some text" in cho.flash()
    page = cho.get("requests/4242")
    assert page.status_code == 409 and "no release request #4242" in page.text
    page = cho.post(f"requests/{scenario.request_id}/release", {})
    assert page.url == server.url + "releases"
    assert "only an approved request can be released" in cho.flash()


def test_an_approved_request_is_released_from_the_releases_page(server, scenario) -> None:
    cho, chen = client(server), client(server)
    cho.sign_in("cho")
    chen.sign_in(SECOND_CHECKER)
    for checker in (cho, chen):
        vote_all(checker, scenario)
    page = cho.get("releases")
    assert f'data-request="{scenario.request_id}"' in page.text
    page = cho.post(f"requests/{scenario.request_id}/release", {})
    assert "Released as bundle P001-request-" in cho.flash()
    assert '<td class="bundle-name">P001-request-' in page.text
    assert (scenario.deployment.home / "releases" / f"P001-request-{scenario.request_id}").is_dir()
    page = cho.get(f"requests/{scenario.request_id}")
    assert 'id="release-notice"' in page.text and 'id="create-release"' not in page.text


# ------------------------------------------------------------------ mounting and secrets
def test_the_ui_lives_under_its_base_url(scenario, policies) -> None:
    app = make_app(
        scenario.deployment,
        policies,
        base_url="/services/output-checking",
        cookie_secret="y" * 64,
    )
    with BackgroundServer(app) as running:
        assert running.url.endswith("/services/output-checking/")
        cho = Client(running.url)
        page = cho.sign_in("cho")
        assert page.url == running.url + "queue"
        assert 'href="/services/output-checking/requests/' in page.text
        assert "/services/output-checking/static/checker.css" in page.text
        cookie = next(c for c in cho.http.cookies if c.name == "srs-checker-user")
        assert cookie.path == "/services/output-checking/"
        assert requests.get(running.url.split("/services")[0] + "/queue").status_code == 404


# ------------------------------------------------------------------ hub mode
HUB_PREFIX = "/services/output-checking/"
ACCESS = "access:services!service=output-checking"


class StandInHub(HubOAuth):
    """JupyterHub's side of OAuth, answered from memory: the one network call ``HubOAuth`` makes
    (``_api_request``) swaps an OAuth code for a token, and names the person a token belongs to."""

    def __init__(self) -> None:
        super().__init__(
            api_url="http://127.0.0.1:9/hub/api",  # never reached
            api_token="the-service-token",
            oauth_client_id="service-output-checking",
            base_url=HUB_PREFIX,
            access_scopes={ACCESS},
        )
        self.tokens: dict[str, str] = {}
        self.people: dict[str, dict[str, Any]] = {}

    def code_for(
        self, name: str, *, kind: str = "user", scopes: tuple[str, ...] = (ACCESS,)
    ) -> str:
        """An OAuth code for ``name``, as the hub's authorize page would give after sign-in."""
        code, token = secrets.token_hex(8), secrets.token_hex(16)
        self.tokens[code] = token
        self.people[token] = {"kind": kind, "name": name, "scopes": list(scopes), "groups": []}
        return code

    async def _api_request(self, method: str, url: str, **kwargs: Any) -> dict | None:
        if url.endswith("/oauth2/token"):
            # JupyterHub 6 posts the token request's form as ``data`` (5 passed tornado's ``body``).
            (code,) = parse_qs(kwargs["data"].decode())["code"]
            return {"access_token": self.tokens.pop(code)}
        token = kwargs["headers"]["Authorization"].removeprefix("token ")
        return self.people.get(token)  # None: the hub does not know the token


@pytest.fixture
def hub_server(scenario: Scenario, policies) -> Iterator[tuple[BackgroundServer, StandInHub]]:
    hub = StandInHub()
    app = make_app(scenario.deployment, policies, cookie_secret=COOKIE_SECRET, hub_auth=hub)
    with BackgroundServer(app) as running:
        yield running, hub


def arrive_through_hub(server: BackgroundServer, hub: StandInHub, name: str, **model) -> Client:
    """A browser sent to the hub's OAuth and back with a code for ``name``; its last page is
    where the callback led."""
    person = client(server)
    start = person.get("queue", allow_redirects=False)
    assert start.status_code == 302
    authorize = urlparse(start.headers["Location"])
    query = parse_qs(authorize.query)
    assert authorize.path == "/hub/api/oauth2/authorize"
    assert query["client_id"] == ["service-output-checking"]
    assert query["redirect_uri"] == [HUB_PREFIX + "oauth_callback"]
    code = hub.code_for(name, **model)
    person.get(f"oauth_callback?code={code}&state={query['state'][0]}")
    return person


def test_in_hub_mode_a_checker_arrives_through_the_hubs_oauth(hub_server, scenario) -> None:
    server, hub = hub_server
    assert server.url.endswith(HUB_PREFIX)
    cho = arrive_through_hub(server, hub, "cho")
    page = cho.last
    assert page.status_code == 200 and page.url == server.url + "queue"
    assert f'data-request="{scenario.request_id}"' in page.text
    assert 'id="signed-in-as">cho<' in page.text
    (signed_in,) = events(scenario.registry, action="sign_in", actor="cho")
    assert signed_in.outcome == "allow" and signed_in.target == "checker-ui"
    assert json.loads(signed_in.details) == {"through": "jupyterhub"}
    assert cho.get("queue").status_code == 200
    assert len(events(scenario.registry, action="sign_in", actor="cho")) == 1  # once a session

    # The hub's XSRF tokens, in a cookie under the prefix: a form works, a forged post does not.
    xsrf = next(c for c in cho.http.cookies if c.name == "_xsrf")
    assert xsrf.path == HUB_PREFIX
    comments = f"requests/{scenario.request_id}/comments"
    assert cho.post(comments, {"text": "checked", "visibility": "checkers"}).status_code == 200
    assert cho.flash() == "Your comment is recorded."
    assert cho.post(comments, {"text": "forged"}, xsrf=False).status_code == 403

    # Signing out ends this UI's session and the hub's token here, and goes on to the hub's.
    page = cho.post("sign-out", {}, allow_redirects=False)
    assert page.status_code == 303 and page.headers["Location"] == "/hub/logout"
    assert [e.outcome for e in events(scenario.registry, action="sign_out")] == ["ok"]
    again = cho.get("queue", allow_redirects=False)
    assert again.status_code == 302 and "/hub/api/oauth2/authorize" in again.headers["Location"]


def test_in_hub_mode_the_ui_session_is_held_by_the_server_too(hub_server, scenario) -> None:
    """The hub vouches for who the person is; this UI's admission is a server-side session,
    which ends at sign-out and when idle, after which the person is admitted afresh (audited)
    with a new session id, never the old one."""
    server, hub = hub_server
    cho = arrive_through_hub(server, hub, "cho")
    first = session_cookie(cho)
    with scenario.registry.sessions() as s:
        s.execute(update(CheckerSession).values(last_seen_at=utc_now() - timedelta(days=1)))
        s.commit()
    assert cho.get("queue").status_code == 200  # the hub still vouches: admitted again
    second = session_cookie(cho)
    assert second != first
    assert [e.outcome for e in events(scenario.registry, action="sign_in", actor="cho")] == [
        "allow",
        "allow",
    ]
    cho.post("sign-out", {}, allow_redirects=False)
    reasons = [s.ended_reason for s in checker_sessions(scenario.registry)]
    assert reasons[0].startswith("idle for more than") and reasons[1] == "signed out"


def test_in_hub_mode_the_registry_decides_who_comes_in(hub_server, scenario) -> None:
    server, hub = hub_server
    # ana is a hub user the hub let through (say, an admin's scopes), but no checker.
    ana = arrive_through_hub(server, hub, "ana")
    assert ana.last.status_code == 403
    assert "ana may not use the output checkers&#39; UI" in ana.last.text
    assert "checker role" in ana.last.text and 'id="signed-in-as"' not in ana.last.text
    assert "srs-checker-user" not in ana.http.cookies
    (refused,) = events(scenario.registry, action="sign_in", actor="ana")
    assert refused.outcome == "deny" and json.loads(refused.details) == {"through": "jupyterhub"}
    (denied,) = events(scenario.registry, action="access.output.review", actor="ana")
    assert denied.outcome == "deny" and "may not output.review" in denied.reason

    # A hub service is not a person, whatever its name.
    service = arrive_through_hub(server, hub, "cho", kind="service")
    assert service.last.status_code == 403 and "is not a person" in service.last.text
    # Someone the hub has not given this service's access scope is refused by JupyterHub's check.
    unscoped = arrive_through_hub(server, hub, "cho", scopes=("access:servers!user=cho",))
    assert unscoped.last.status_code == 403 and "not allowed" in unscoped.last.text
    assert [e.outcome for e in events(scenario.registry, action="sign_in", actor="cho")] == ["deny"]


def test_in_hub_mode_the_ui_has_no_password_form(hub_server, scenario) -> None:
    server, hub = hub_server
    page = client(server).get("sign-in", allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"] == HUB_PREFIX + "queue"
    # Even with a valid XSRF token, a posted password is never looked at.
    cho = arrive_through_hub(server, hub, "cho")
    page = cho.post("sign-in", {"username": "ana", "password": "not the password at all"})
    assert page.status_code == 405
    assert events(scenario.registry, action="sign_in", actor="ana") == []
    assert [e.details for e in events(scenario.registry, action="sign_in")] == [
        '{"through":"jupyterhub"}'
    ]


def test_hub_mode_follows_the_service_environment(scenario, policies, monkeypatch) -> None:
    service = {
        "JUPYTERHUB_SERVICE_NAME": "output-checking",
        "JUPYTERHUB_API_TOKEN": "the-service-token",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
        "JUPYTERHUB_CLIENT_ID": "service-output-checking",
        "JUPYTERHUB_SERVICE_PREFIX": HUB_PREFIX,
    }
    assert set(service) == set(HUB_SERVICE_ENVIRONMENT)
    assert runs_as_hub_service(service)
    # A researcher's own server has the rest, not the service name: not the hub's service.
    assert not runs_as_hub_service({**service, "JUPYTERHUB_SERVICE_NAME": ""})
    for name in service:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(CheckerUIError, match="JUPYTERHUB_API_TOKEN"):
        make_app(scenario.deployment, policies, cookie_secret=COOKIE_SECRET, hub=True)
    for name, value in service.items():
        monkeypatch.setenv(name, value)
    app = make_app(scenario.deployment, policies, cookie_secret=COOKIE_SECRET)
    ui = app.settings["srs"]
    try:
        assert (
            ui.base_url == HUB_PREFIX and ui.hub_auth.oauth_client_id == "service-output-checking"
        )
    finally:
        ui.registry.dispose()
    plain = make_app(scenario.deployment, policies, cookie_secret=COOKIE_SECRET, hub=False)
    try:
        assert plain.settings["srs"].hub_auth is None and plain.settings["srs"].base_url == "/"
    finally:
        plain.settings["srs"].registry.dispose()
    with pytest.raises(CheckerUIError, match="leave out --base-url"):
        make_app(scenario.deployment, policies, cookie_secret=COOKIE_SECRET, base_url="/ui/")


def test_cookie_secret_file_is_private_and_reused(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(COOKIE_SECRET_ENV, raising=False)
    deployment = Deployment.at(tmp_path, database_url="sqlite:///unused.db")
    first = load_cookie_secret(deployment)
    path = tmp_path / COOKIE_SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == 64
    assert load_cookie_secret(deployment) == first
    monkeypatch.setenv(COOKIE_SECRET_ENV, "z" * 40)
    assert load_cookie_secret(deployment) == b"z" * 40
    monkeypatch.setenv(COOKIE_SECRET_ENV, "short")
    with pytest.raises(CheckerUIError, match="too short"):
        load_cookie_secret(deployment)
    monkeypatch.delenv(COOKIE_SECRET_ENV)
    os.chmod(path, 0o644)
    with pytest.raises(CheckerUIError, match="chmod 600"):
        load_cookie_secret(deployment)


# ------------------------------------------------------------------ rendering, pure
def test_evidence_marks_cells_by_label_not_position() -> None:
    released = pd.DataFrame({"F": [None, 25.0], "M": [40.0, 30.0]}, index=["LS", "M"])
    released.index.name = "area"
    checks = [
        {
            "check": "sdc_table",
            "status": "fail",
            "evidence": {
                # the checked table listed its rows the other way round
                "rows": ["M", "LS"],
                "columns": ["F", "M"],
                "status": [["ok", "review"], ["fail", "ok"]],
                "findings": [{"row": "LS", "column": "F", "message": "count 3 < 10"}],
            },
        },
        {"check": "differencing", "findings": [{"row": "M", "column": "F", "message": "d=2"}]},
    ]
    assert cell_evidence(checks)[("LS", "F")].status == "fail"
    table = render_table(table_content(released), checks)
    assert table.corner == "area" and table.columns == ["F", "M"]
    (ls, ls_cells), (m, m_cells) = table.rows
    assert (ls, [c.status for c in ls_cells]) == ("LS", ["fail", "ok"])
    assert ls_cells[0].text == "" and ls_cells[0].reasons == ["count 3 < 10"]
    assert (m, [c.status for c in m_cells]) == ("M", ["fail", "review"])
    assert m_cells[0].text == "25" and table.failing == 2


def test_differencing_findings_mark_cells_by_their_own_status() -> None:
    """A disclosive difference marks its cell failing; a comparison the check could not judge
    names no cell and marks none (it is listed with the check), never a phantom ("", "") cell."""
    checks = [
        {
            "check": "differencing",
            "status": "fail",
            "findings": [
                {"row": "F", "column": "crown", "status": "fail", "message": "exposes 2"},
                {"row": "", "column": "", "status": "review", "message": "not checked: needs a"},
                {"row": "M", "column": "youth", "status": "review", "message": "no upper bound"},
            ],
        }
    ]
    cells = cell_evidence(checks)
    assert cells[("F", "crown")].status == "fail"
    assert cells[("M", "youth")].status == "review"
    assert ("", "") not in cells

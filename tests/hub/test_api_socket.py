"""The environment API on its Unix socket, as the hub runs it (``python -m srs.hub.api --socket``):
a token bound to a Unix account opens a session only from that account (``SO_PEERCRED``), a
token bound to none is refused there, a bound token is refused over TCP, and the socket's folder
must be the API's own. The API runs as root here; the researcher's side runs as ``nobody``.

Needs root (to run a client as another account): ``make test`` runs as root.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from session_fixtures import small_deployment
from sqlalchemy import select

from output_checking.web import BackgroundServer
from registry_fixtures import PROJECT
from srs.governance.registry.models import AuditEvent
from srs.hub.api import bind_api_socket, make_api_app
from srs.hub.client import RemoteSession, unix_socket_url
from srs.hub.config import API_PREFIX
from srs.hub.tokens import TokenRefused, issue_session_token
from srs.research.values import SessionError

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def api(policies) -> Iterator[tuple[str, object, Path]]:
    """The API as a process of its own on a Unix socket; (SRS_API_URL, registry, socket)."""
    if os.geteuid() != 0:
        pytest.fail("the socket tests run a client as another account: run them as root")
    base = Path(tempfile.mkdtemp(prefix="srs-api-socket-"))
    base.chmod(0o711)
    home = base / "home"
    deployment, registry = small_deployment(home, policies)
    deployment.marker_file.write_text("srs-toolkit deployment\n")
    home.chmod(0o700)
    socket_path = base / "run" / "srs-api.sock"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SRS_")}
    environment.update(
        SRS_DATABASE_URL=deployment.database_url, SRS_POLICY_DIR=str(policies.source_dir)
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "srs.hub.api",
            "--home",
            str(home),
            "--socket",
            str(socket_path),
            "--base-url",
            API_PREFIX,
        ],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists():
            if process.poll() is not None:
                pytest.fail(f"the API exited: {process.stdout.read().decode()}")
            assert time.monotonic() < deadline, "the API did not bind its socket"
            time.sleep(0.1)
        yield unix_socket_url(socket_path, API_PREFIX), registry, socket_path
    finally:
        process.terminate()
        process.wait(timeout=30)
        registry.dispose()
        subprocess.run(["rm", "-rf", str(base)], check=False)


def token(registry, policies, unix_uid: int | None) -> str:
    with registry.sessions() as db:
        return issue_session_token(
            db, username="ana", project_code=PROJECT, policies=policies, unix_uid=unix_uid
        )


def as_nobody(url: str, secret: str) -> subprocess.CompletedProcess:
    code = (
        "import sys\nfrom srs.hub.client import RemoteSession\n"
        "try:\n"
        "    s = RemoteSession(sys.argv[1], sys.argv[2])\n"
        "    print('opened', s.user, s.project, len(s.datasets()))\n"
        "except Exception as exc:\n"
        "    print('refused', type(exc).__name__, exc)\n"
    )
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", sys.executable, "-c", code, url, secret],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd="/",
    )


def test_a_bound_token_works_from_its_own_account_only(api, policies) -> None:
    url, registry, socket_path = api
    assert oct(socket_path.stat().st_mode & 0o777) == "0o666"  # any account connects...
    bound = token(registry, policies, NOBODY.pw_uid)
    opened = as_nobody(url, bound)
    assert opened.stdout.startswith("opened ana P001"), opened.stdout + opened.stderr
    # ... but root's account, with the same valid token, is refused, and that is audited.
    with pytest.raises(TokenRefused, match="works only from the server it was issued to"):
        RemoteSession(url, bound)
    with registry.sessions() as db:
        denied = (
            db.execute(
                select(AuditEvent)
                .where(AuditEvent.action == "hub.session.resolve", AuditEvent.outcome == "deny")
                .order_by(AuditEvent.seq)
            )
            .scalars()
            .all()
        )
    assert denied and f"uid {NOBODY.pw_uid}, not uid 0" in denied[-1].reason
    assert json.loads(denied[-1].details)["peer_uid"] == 0


def test_a_token_bound_to_no_account_is_refused_on_the_socket(api, policies) -> None:
    url, registry, _ = api
    refused = as_nobody(url, token(registry, policies, None))
    assert refused.stdout.startswith("refused TokenRefused"), refused.stdout + refused.stderr
    assert "bound to no Unix account" in refused.stdout


def test_over_tcp_a_bound_token_is_refused(tmp_path, policies) -> None:
    deployment, registry = small_deployment(tmp_path / "home", policies)
    app = make_api_app(deployment, policies, base_url=API_PREFIX)
    try:
        with BackgroundServer(app) as server:
            with pytest.raises(TokenRefused, match="not an unknown account"):
                RemoteSession(server.url, token(registry, policies, NOBODY.pw_uid))
            assert RemoteSession(server.url, token(registry, policies, None)).project == PROJECT
    finally:
        app.settings["srs"].close()
        registry.dispose()


def test_the_socket_folder_must_be_the_apis_own(tmp_path) -> None:
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    open_folder.chmod(0o777)
    with pytest.raises(SessionError, match="writable by no one else"):
        bind_api_socket(open_folder / "srs-api.sock")
    with pytest.raises(SessionError, match="longer than 107 bytes"):
        bind_api_socket(tmp_path / ("x" * 120) / "srs-api.sock")
    made = bind_api_socket(tmp_path / "run" / "srs-api.sock")
    made.close()
    assert oct((tmp_path / "run").stat().st_mode & 0o777) == "0o711"


def test_a_client_reports_an_unreachable_socket_clearly(tmp_path) -> None:
    with pytest.raises(SessionError, match="cannot reach the environment API"):
        RemoteSession(unix_socket_url(tmp_path / "absent.sock", API_PREFIX), "token")

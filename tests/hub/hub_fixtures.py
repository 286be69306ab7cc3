"""A real JupyterHub for the hub's end-to-end test: a deployment with vault data, the hub running
on loopback with the generated config, and a researcher's hands on it over HTTP and the kernel
websocket.

Needs root (the hub creates Unix accounts and runs servers as them), configurable-http-proxy and
jupyterhub-idle-culler, and an interpreter other accounts can run: ``make hub-prerequisites``
provides them. Their absence fails the test, never skips it.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry import open_registry, projects
from srs.governance.registry.models import AuditEvent
from srs.governance.registry.sign_in import set_password
from srs.hub.client import unix_socket_url
from srs.hub.config import (
    API_PREFIX,
    PROXY_PROGRAM,
    HubPorts,
    api_socket,
    jupyterhub_program,
    write_config,
)
from srs.hub.kernel import cgroup2_mount

PASSWORD = "correct horse battery staple"
# Accounts and groups the test creates carry their own prefixes, so a machine's real hub
# accounts (srs-*) are never touched, and leftovers of a crashed run are recognisable.
ACCOUNT_PREFIX = "srse2e-"
GROUP_PREFIX = "srse2ep-"
CGROUP_PARENT = "srs-e2e"
MAKE_TARGET = "make hub-prerequisites"


def require_prerequisites() -> None:
    """Fail (never skip) naming the Makefile target when something the hub needs is missing."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the hub test must run as root (it creates Unix accounts)")
    if not os.access(PROXY_PROGRAM, os.X_OK):
        problems.append(f"configurable-http-proxy is missing at {PROXY_PROGRAM}")
    if importlib.util.find_spec("jupyterhub_idle_culler") is None:
        problems.append("jupyterhub-idle-culler is not installed")
    for program in ("useradd", "userdel", "groupadd", "groupdel", "runuser", "nft"):
        if shutil.which(program) is None:
            problems.append(f"{program} is not installed")
    if not problems:
        # Other accounts must be able to run this venv's interpreter (pyenv keeps it in /root).
        probe = subprocess.run(
            ["runuser", "-u", "nobody", "--", sys.executable, "-c", "import srs, jupyterhub"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode != 0:
            problems.append(
                f"an unprivileged account cannot run {sys.executable} with the toolkit: "
                f"{probe.stderr.strip()[-300:]}"
            )
    if problems:
        pytest.fail("; ".join(problems) + f". Run `{MAKE_TARGET}`.", pytrace=False)


def free_port_block(size: int = 5) -> int:
    """The first of ``size`` consecutive free loopback ports."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + size > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + size):
                taken = socket.socket()
                sockets.append(taken)
                taken.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for taken in sockets:
                taken.close()
    raise RuntimeError("no block of free loopback ports found")


def session_test_helpers():
    """``tests/srs/research/test_session.py``, whose ``prepare`` builds the standard deployment."""
    path = Path(__file__).resolve().parents[1] / "srs" / "research" / "test_session.py"
    spec = importlib.util.spec_from_file_location("hub_e2e_session_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ Unix accounts
def unix_account_of(username: str) -> str:
    return f"{ACCOUNT_PREFIX}{username}"


def unix_group_of(project: str) -> str:
    return f"{GROUP_PREFIX}{project}"


def _pids_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except FileNotFoundError:
                pass
    return pids


def remove_test_accounts(usernames: list[str], projects: list[str]) -> None:
    """End the test accounts' processes (by pid), then delete the accounts and project groups."""
    for username in usernames:
        name = unix_account_of(username)
        try:
            uid = pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
        for pid in _pids_of(uid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)
        mount = cgroup2_mount()
        if mount is not None:
            folder = mount / CGROUP_PARENT / name
            for cgroup in (folder / "server", folder / "kernels", folder):
                with contextlib.suppress(OSError):
                    cgroup.rmdir()
    for project in projects:
        try:
            grp.getgrnam(unix_group_of(project))
        except KeyError:
            continue
        subprocess.run(["groupdel", unix_group_of(project)], capture_output=True, check=False)


# ------------------------------------------------------------------ the hub
@dataclass
class RunningHub:
    """A JupyterHub process on loopback over a deployment, and where its parts are."""

    deployment: Deployment
    policies: PolicySet
    base: Path
    ports: HubPorts
    config: Path
    log: Path
    process: subprocess.Popen | None = None
    people: object = None
    projects: dict[str, Path] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.public}"

    @property
    def user_home_base(self) -> Path:
        return self.base / "homes"

    @property
    def project_root(self) -> Path:
        return self.base / "projects"

    @property
    def runtime_base(self) -> Path:
        return self.base / "run"

    @property
    def egress_table(self) -> str:
        """The nft table of this hub's egress rules (one per hub, removed when it stops)."""
        return f"srs_e2e_{self.ports.public}"

    @property
    def api_socket(self) -> Path:
        return api_socket(self.runtime_base)

    @property
    def api_url(self) -> str:
        """``SRS_API_URL`` as the servers get it."""
        return unix_socket_url(self.api_socket, API_PREFIX)

    def log_tail(self, characters: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-characters:] if self.log.exists() else ""

    def start(self, timeout: float = 60) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SRS_")}
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [str(jupyterhub_program()), "-f", str(self.config)],
            cwd=self.config.parent,
            env=environment,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the hub exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            try:
                if requests.get(f"{self.url}/hub/api/", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the hub did not answer in {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGTERM: the hub stops the servers it started (cleanup_servers), its services and
        # the proxy; whatever is left after 30 s is killed with the hub's process group.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        subprocess.run(
            ["nft", "delete", "table", "inet", self.egress_table], capture_output=True, check=False
        )


def events(hub: RunningHub, **where: str) -> list[AuditEvent]:
    """The hub deployment's audit events (matching ``where``: column=value), oldest first."""
    registry = open_registry(hub.deployment.database_url)
    try:
        with registry.sessions() as db:
            query = select(AuditEvent).order_by(AuditEvent.seq)
            for column, value in where.items():
                query = query.where(getattr(AuditEvent, column) == value)
            return list(db.execute(query).scalars())
    finally:
        registry.dispose()


def build_hub(base: Path, policies: PolicySet, *, idle_timeout: int) -> RunningHub:
    """A deployment under ``base`` (linked/journeys granted to P001, linked/victims to P002; ana
    in both, olga in P002) with passwords set, and the hub's config written (not started)."""
    helpers = session_test_helpers()
    home = base / "deployment"
    (home / "vault").mkdir(parents=True, mode=0o700)
    deployment = Deployment.at(home, database_url=f"sqlite:///{home / 'srs.db'}")
    registry = open_registry(deployment.database_url, migrate=True)
    try:
        people = helpers.prepare(registry, deployment, policies)
        with registry.sessions() as db:
            # ana works in P002 as well, so her P001 session shows that the session's project,
            # not her memberships, decides what her server can open.
            projects.add_member(db, actor="admin", policies=policies, code="P002", username="ana")
            for username in ("ana", "ben", "olga", "stu", "cho"):
                set_password(
                    db, actor="admin", policies=policies, username=username, password=PASSWORD
                )
    finally:
        registry.dispose()
    return hub_over(deployment, policies, base, idle_timeout=idle_timeout, people=people)


def hub_over(
    deployment: Deployment,
    policies: PolicySet,
    base: Path,
    *,
    idle_timeout: int,
    people: object = None,
) -> RunningHub:
    """A hub over an existing ``deployment`` (made private), its folders under ``base``, its
    config written (not started)."""
    home = deployment.home
    deployment.marker_file.write_text("srs-toolkit deployment\n")
    home.chmod(0o700)
    hub = RunningHub(
        deployment=deployment,
        policies=policies,
        base=base,
        ports=HubPorts(free_port_block()),
        config=Path(),
        log=base / "jupyterhub.log",
        people=people,
    )
    hub.config = write_config(
        deployment,
        policies,
        port=hub.ports.public,
        user_home_base=hub.user_home_base,
        project_root=hub.project_root,
        runtime_base=hub.runtime_base,
        egress_table=hub.egress_table,
        idle_timeout=idle_timeout,
    )
    with hub.config.open("a") as handle:
        handle.write(
            "\n# tests/hub: accounts and groups of their own, and a shorter wait for a slow server\n"
            f"c.SRSSpawner.account_prefix = {ACCOUNT_PREFIX!r}\n"
            f"c.SRSSpawner.project_group_prefix = {GROUP_PREFIX!r}\n"
            f"c.SRSSpawner.cgroup_parent = {CGROUP_PARENT!r}\n"
            "c.Spawner.start_timeout = 90\n"
            "c.Spawner.http_timeout = 90\n"
        )
    return hub


@pytest.fixture(scope="module")
def hub_base() -> Iterator[Path]:
    """A folder other accounts may pass through (0711) but not list, like /srv would be."""
    require_prerequisites()
    base = Path(tempfile.mkdtemp(prefix="srs-hub-e2e-"))
    base.chmod(0o711)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------ a researcher's hands
class Researcher:
    """One person's browser on the hub: cookies, the XSRF token, and a hub API token once signed in."""

    def __init__(self, hub: RunningHub, username: str) -> None:
        self.hub = hub
        self.username = username
        self.http = requests.Session()
        self.token: str | None = None

    def sign_in(self, password: str = PASSWORD, *, acknowledge: bool = True) -> requests.Response:
        """Load the login page (for its XSRF cookie) and post the form; no redirects followed."""
        page = self.http.get(f"{self.hub.url}/hub/login", timeout=30)
        page.raise_for_status()
        form = {
            "_xsrf": self.http.cookies.get("_xsrf", path="/hub/"),
            "username": self.username,
            "password": password,
        }
        if acknowledge:
            form["acknowledge_notice"] = "yes"
        return self.http.post(
            f"{self.hub.url}/hub/login", data=form, allow_redirects=False, timeout=30
        )

    def api(self, method: str, path: str, **options) -> requests.Response:
        """A hub or server API call, with the API token once there is one (else cookie + XSRF)."""
        headers = options.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        else:
            headers["X-XSRFToken"] = self.http.cookies.get("_xsrf", path="/hub/") or ""
        return self.http.request(
            method, f"{self.hub.url}{path}", headers=headers, timeout=60, **options
        )

    def request_token(self) -> str:
        """A hub API token for this person (made with their sign-in cookie)."""
        reply = self.api(
            "POST",
            f"/hub/api/users/{self.username}/tokens",
            json={"note": "hub end-to-end test", "expires_in": 900},
        )
        assert reply.status_code in (200, 201), reply.text
        self.token = reply.json()["token"]
        return self.token

    def start_server(self, project: str | None = None) -> requests.Response:
        body = {"project": project} if project else {}
        return self.api("POST", f"/hub/api/users/{self.username}/server", json=body)

    def server(self) -> dict | None:
        reply = self.api("GET", f"/hub/api/users/{self.username}")
        reply.raise_for_status()
        return reply.json().get("servers", {}).get("")

    def wait_until_ready(self, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server()
            if server and server.get("ready"):
                return server
            if server is None:
                raise AssertionError(f"{self.username}'s server stopped:\n{self.hub.log_tail()}")
            time.sleep(0.5)
        raise AssertionError(f"{self.username}'s server not ready:\n{self.hub.log_tail()}")

    def start_kernel(self) -> str:
        reply = self.api("POST", f"/user/{self.username}/api/kernels", json={"name": "python3"})
        assert reply.status_code == 201, f"{reply.text}\n{self.hub.log_tail()}"
        return reply.json()["id"]

    def run(self, kernel: str, code: str, timeout: float = 120) -> KernelResult:
        """Run ``code`` in the kernel over its websocket channels; its output and any error."""
        return asyncio.run(self._run(kernel, code, timeout))

    async def _run(self, kernel: str, code: str, timeout: float) -> KernelResult:
        url = f"ws://127.0.0.1:{self.hub.ports.public}/user/{self.username}/api/kernels/{kernel}/channels"
        request = HTTPRequest(url, headers={"Authorization": f"token {self.token}"})
        connection = await websocket_connect(request)
        msg_id = uuid.uuid4().hex
        connection.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": self.username,
                        "session": uuid.uuid4().hex,
                        "date": datetime.now(UTC).isoformat(),
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "buffers": [],
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        result = KernelResult()
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no reply from the kernel in {timeout} s: {result}")
                raw = await asyncio.wait_for(connection.read_message(), left)
                if raw is None:
                    raise AssertionError(f"the kernel's websocket closed: {result}")
                message = json.loads(raw)
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    result.output += content["text"]
                elif kind == "error":
                    result.error = f"{content['ename']}: {content['evalue']}"
                elif kind == "status" and content["execution_state"] == "idle":
                    return result
        finally:
            connection.close()


@dataclass
class KernelResult:
    """What a cell printed, and the error it raised (None if it ran through)."""

    output: str = ""
    error: str | None = None

    def json(self) -> dict:
        """The last line of output, read as JSON (the cells print one JSON line)."""
        assert self.error is None, self.error
        return json.loads(self.output.strip().splitlines()[-1])

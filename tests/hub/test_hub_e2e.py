"""JupyterHub end to end: a real hub on loopback, with the generated config, over a deployment with
vault data. A researcher signs in through the login form (acknowledging the system-use notice),
starts a server that runs as their own Unix account, and runs code in a kernel over the
websocket: it reads a dataset granted to their project through the environment API, is refused
(and audited) a dataset of another project, and cannot open the key file, the registry, the
vault, the hub's state, another project's folder or another researcher's home. Wrong passwords
lock an account; lapsed accreditation and no active project are refused; an idle server is
culled and its session token ended.

Needs root and ``make hub-prerequisites`` (configurable-http-proxy, jupyterhub-idle-culler, an
interpreter other accounts can run); it fails, never skips, without them.
"""

from __future__ import annotations

import html
import json
import os
import pwd
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_fixtures import (
    PASSWORD,
    Researcher,
    RunningHub,
    build_hub,
    events,
    hub_base,  # noqa: F401 (fixture)
    remove_test_accounts,
    unix_account_of,
    unix_group_of,
)
from sqlalchemy import select

from srs.governance.access import AccessDenied
from srs.governance.audit import verify_chain
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry import open_registry
from srs.governance.registry.models import Dataset, HubSession
from srs.governance.registry.models import Researcher as Account
from srs.governance.registry.sign_in import SIGN_IN_REFUSED
from srs.hub.client import RemoteSession
from srs.hub.config import config_path, hub_dir, jupyterhub_program, write_config

IDLE_TIMEOUT_SECONDS = 20
USERNAMES = ["ana", "ben", "olga", "stu", "cho"]
PROJECTS = ["P001", "P002"]


@pytest.fixture(scope="module")
def hub(hub_base: Path, policies: PolicySet) -> Iterator[RunningHub]:  # noqa: F811
    """The hub, started once for this module, with a 20-second idle timeout."""
    remove_test_accounts(USERNAMES, PROJECTS)  # leftovers of an interrupted run
    running = build_hub(hub_base, policies, idle_timeout=IDLE_TIMEOUT_SECONDS)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        remove_test_accounts(USERNAMES, PROJECTS)


def shown(reply) -> str:
    """The page's text as a person reads it (entities decoded)."""
    return html.unescape(reply.text)


def signed_in(hub: RunningHub, username: str) -> Researcher:
    person = Researcher(hub, username)
    reply = person.sign_in()
    assert reply.status_code == 302, shown(reply)
    person.request_token()
    return person


def running_server(hub: RunningHub, username: str, project: str) -> Researcher:
    person = signed_in(hub, username)
    if person.server() is None:
        reply = person.start_server(project)
        assert reply.status_code in (201, 202), reply.text
    person.wait_until_ready()
    return person


# ------------------------------------------------------------------ safe people: signing in
def test_sign_in_needs_the_notice_a_right_password_and_an_active_project(hub: RunningHub) -> None:
    ana = Researcher(hub, "ana")
    page = ana.http.get(f"{hub.url}/hub/login", timeout=30)
    assert "System-use notice" in page.text and "I acknowledge the system-use notice" in page.text

    # No acknowledgement: refused before the password is looked at, audited, not counted.
    refused = ana.sign_in(acknowledge=False)
    assert refused.status_code == 403
    assert "acknowledge the system-use notice" in shown(refused)
    (denied,) = events(hub, actor="ana", action="hub.notice.acknowledge", outcome="deny")
    assert "without acknowledging" in denied.reason

    accepted = ana.sign_in()
    assert accepted.status_code == 302, shown(accepted)
    (acknowledged,) = events(hub, actor="ana", action="hub.notice.acknowledge", outcome="ok")
    assert len(json.loads(acknowledged.details)["notice_sha256"]) == 64
    assert events(hub, actor="ana", action="hub.login", outcome="allow")

    # Lapsed accreditation (ben) and no active project (stu, a student) are refused.
    ben = Researcher(hub, "ben").sign_in()
    assert ben.status_code == 403
    assert "accreditation" in shown(ben) and "expired" in shown(ben)
    stu = Researcher(hub, "stu")
    no_project = stu.sign_in()
    assert no_project.status_code == 403
    assert "not a member of any active project" in shown(no_project)
    assert {e.actor for e in events(hub, action="hub.login", outcome="deny")} == {"ben", "stu"}

    # The access policy's failed_login_limit wrong passwords lock the account: the right
    # password is refused afterwards.
    limit = hub.policies.access.failed_login_limit
    for _ in range(limit):
        wrong = stu.sign_in("not the password at all")
        assert wrong.status_code == 403
        # One message for every refusal (issue 15): the lock-out is in the audit log only.
        assert SIGN_IN_REFUSED in shown(wrong), shown(wrong)
    locked = stu.sign_in(PASSWORD)
    assert locked.status_code == 403
    assert SIGN_IN_REFUSED in shown(locked)
    registry = open_registry(hub.deployment.database_url)
    try:
        with registry.sessions() as db:
            accounts = {a.username: a for a in db.execute(select(Account)).scalars()}
            assert accounts["stu"].locked
            assert accounts["ana"].failed_login_count == 0  # the unacknowledged try did not count
    finally:
        registry.dispose()

    # A checker may sign in (for the output-checking service) but gets no notebook server.
    cho = signed_in(hub, "cho")
    refused_server = cho.start_server()
    assert refused_server.status_code == 403, refused_server.text
    assert "not a member of any active project" in refused_server.json()["message"]


# ------------------------------------------------------------------ safe settings: the kernel
# Two cells, so the slow imports and the work each start and end with kernel activity (the
# culler's 20-second timeout counts from the last one).
KERNEL_IMPORTS = """
import grp, json, os, pwd
from pathlib import Path

import ipykernel.connect
import srs
from srs.governance.access import AccessDenied
"""
KERNEL_CODE = """
targets = json.loads({targets!r})
s = srs.session()
journeys = s.dataset("linked/journeys")
try:
    s.dataset("linked/victims")
    other_dataset = "read"
except AccessDenied as exc:
    other_dataset = f"AccessDenied: {{exc}}"

def attempt(path, kind):
    try:
        if kind == "list":
            os.listdir(path)
        else:
            with open(path, "rb") as handle:
                handle.read(1)
        return "read"
    except PermissionError:
        return "PermissionError"
    except Exception as exc:
        return f"{{type(exc).__name__}}: {{exc}}"

shared = Path.home() / "project" / "notes.txt"
shared.write_text("shared with the project")
print(json.dumps({{
    "account": pwd.getpwuid(os.getuid()).pw_name,
    "groups": sorted(grp.getgrgid(g).gr_name for g in os.getgroups()),
    "environment": sorted(k for k in os.environ if k.startswith("SRS_")),
    "token": os.environ["SRS_SESSION_TOKEN"],
    "api_url": os.environ["SRS_API_URL"],
    "session": repr(s),
    "rows": len(journeys),
    "columns": list(journeys.columns),
    "other_dataset": other_dataset,
    "transport": ipykernel.connect.get_connection_info(unpack=True)["transport"],
    "attempts": {{label: attempt(path, kind) for label, (path, kind) in targets.items()}},
    "shared_group": grp.getgrgid(shared.stat().st_gid).gr_name,
    "shared_mode": oct(shared.stat().st_mode & 0o777),
}}))
"""


def test_a_kernel_reads_granted_data_through_the_api_and_nothing_else(hub: RunningHub) -> None:
    # olga works in P002 only: her server makes P002's folder and her home exist beside ana's.
    olga = signed_in(hub, "olga")
    assert olga.start_server().status_code in (201, 202)
    # ana works in P001 and P002: she chooses one, on the spawn form or in the API request.
    ana = signed_in(hub, "ana")
    form = ana.http.get(f"{hub.url}/hub/spawn", timeout=30)
    assert '<option value="P001">' in form.text and '<option value="P002">' in form.text
    unchosen = ana.start_server()
    assert unchosen.status_code == 400
    assert "choose one" in unchosen.json()["message"]
    assert ana.start_server("P001").status_code in (201, 202)
    ana.wait_until_ready()
    # olga's server may be culled by now (idle 20 s); her home and P002's folder stay.
    assert (hub.project_root / "P002").is_dir()
    assert (hub.user_home_base / unix_account_of("olga")).is_dir()

    account = pwd.getpwnam(unix_account_of("ana"))
    home = Path(account.pw_dir)
    assert home.parent == hub.user_home_base
    assert stat.S_IMODE(home.stat().st_mode) == 0o700 and home.stat().st_uid == account.pw_uid
    assert account.pw_shell == "/usr/sbin/nologin"

    registry = open_registry(hub.deployment.database_url)
    try:
        with registry.sessions() as db:
            vault_file = db.execute(
                select(Dataset.file_path).where(Dataset.name == "linked/journeys")
            ).scalar_one()
    finally:
        registry.dispose()
    deployment = hub.deployment
    targets = {
        "key file": (str(deployment.key_file), "read"),
        "registry database": (str(deployment.home / "srs.db"), "read"),
        "vault folder": (str(deployment.vault_dir), "list"),
        "vault file": (str(deployment.vault_dir / vault_file), "read"),
        "deployment home": (str(deployment.home), "list"),
        "hub database": (str(hub_dir(deployment) / "jupyterhub.sqlite"), "read"),
        "hub cookie secret": (str(hub_dir(deployment) / "jupyterhub_cookie_secret"), "read"),
        "other project's folder": (str(hub.project_root / "P002"), "list"),
        "other researcher's home": (str(hub.user_home_base / unix_account_of("olga")), "list"),
        "list of projects": (str(hub.project_root), "list"),
    }
    kernel = ana.start_kernel()
    imported = ana.run(kernel, KERNEL_IMPORTS)
    assert imported.error is None, imported.error
    result = ana.run(kernel, KERNEL_CODE.format(targets=json.dumps(targets))).json()

    assert result["account"] == unix_account_of("ana")
    # Only this session's project group: not P002's, though ana is a member of P002 too.
    assert result["groups"] == [unix_group_of("P001")]
    assert result["environment"] == ["SRS_API_URL", "SRS_PROJECT", "SRS_SESSION_TOKEN", "SRS_USER"]
    assert result["api_url"] == hub.api_url
    assert "ana" in result["session"] and "P001" in result["session"]
    assert result["rows"] == 600 and "person_key" in result["columns"]
    assert result["other_dataset"].startswith("AccessDenied")
    assert result["transport"] == "ipc"
    assert result["attempts"] == {label: "PermissionError" for label in targets}, result
    assert result["shared_group"] == unix_group_of("P001")
    assert result["shared_mode"] == "0o660"
    project_folder = hub.project_root / "P001"
    assert stat.S_IMODE(project_folder.stat().st_mode) == 0o2770
    assert (project_folder / "notes.txt").read_text() == "shared with the project"

    # linked/victims is granted to P002, which ana is in, but this session is P001's.
    refusals = events(hub, actor="ana", target="linked/victims", outcome="deny")
    assert refusals and "P001 has no grant for linked/victims" in refusals[-1].reason
    assert events(hub, actor="ana", action="hub.session.start", target="P001")


def test_an_idle_server_is_culled_and_its_session_token_ended(hub: RunningHub) -> None:
    ana = running_server(hub, "ana", "P001")
    kernel = ana.start_kernel()
    token = ana.run(kernel, "import os; print(os.environ['SRS_SESSION_TOKEN'])").output.strip()
    opened = ana.run(kernel, "import srs; print(srs.session().project)")
    assert opened.error is None and opened.output.strip() == "P001", opened

    # Nothing more is done: the culler (timeout 20 s, checking every 10 s) stops the server.
    idle_since = time.monotonic()
    deadline = idle_since + 4 * IDLE_TIMEOUT_SECONDS + 30
    while ana.server() is not None:
        assert time.monotonic() < deadline, f"not culled:\n{hub.log_tail()}"
        time.sleep(2)
    idle_for = time.monotonic() - idle_since
    assert idle_for >= IDLE_TIMEOUT_SECONDS - 6  # activity reports come every 5 s
    assert "idle-culler" in hub.log_tail(200_000)

    with pytest.raises(AccessDenied, match="ended"):
        RemoteSession(hub.api_url, token)
    registry = open_registry(hub.deployment.database_url)
    try:
        with registry.sessions() as db:
            sessions = db.execute(select(HubSession).where(HubSession.username == "ana")).scalars()
            assert all(record.revoked_at is not None for record in sessions)
            assert verify_chain(db).intact
    finally:
        registry.dispose()
    uid = pwd.getpwnam(unix_account_of("ana")).pw_uid
    deadline = time.monotonic() + 15
    while any(
        entry.name.isdigit() and entry.stat().st_uid == uid for entry in Path("/proc").iterdir()
    ):
        assert time.monotonic() < deadline, "ana's kernel outlived her server"
        time.sleep(0.5)


# ------------------------------------------------------------------ safe settings: the deployment
def test_the_hub_refuses_a_deployment_other_accounts_can_read(
    hub_base: Path,  # noqa: F811
    policies: PolicySet,
) -> None:
    home = hub_base / "open-deployment"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    deployment = Deployment.at(home)
    deployment.marker_file.write_text("srs-toolkit deployment\n")
    config = write_config(deployment, policies, port=18000)
    assert config == config_path(deployment)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(hub_dir(deployment).stat().st_mode) == 0o700

    environment = {k: v for k, v in os.environ.items() if not k.startswith("SRS_")}
    started = subprocess.run(
        [str(jupyterhub_program()), "-f", str(config)],
        cwd=config.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode != 0
    assert f"run `chmod 700 {home}`" in started.stdout + started.stderr

    cli = subprocess.run(
        [sys.executable, "-m", "srs.cli", "--home", str(home), "hub", "start", "--port", "18000"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert "the hub will not start" in " ".join(cli.stderr.split())

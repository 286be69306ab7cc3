"""More doors of the airlock on a real hub: ways out for an ordinary researcher (ana, in P001)
with a browser and a kernel, beyond those ``test_airlock_e2e.py`` covers.

Each test is one attack, run as ana would: her kernel prepares, her browser (HTTP with her
token) reads, and each asserts the attack is stopped. Most found nothing to fix. The attacks
that did get rows out (a kernel's own status messages, headers that do not unpack, the execution
state in /api/kernels, reconnecting or starting kernels to renew the output budget, a symlink to
/proc/<pid>/cmdline that stat calls empty, rows as file names, a restart of the server renewing
the read budget) are regression tests at the end of ``test_airlock_e2e.py``, fixed in
``srs.hub.airlock`` and ``srs.hub.spawner``; the last is here too, with files.

Needs root and ``make hub-prerequisites``, like the other real-hub tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_fixtures import (
    Researcher,
    RunningHub,
    build_hub,
    hub_base,  # noqa: F401 (fixture)
    remove_test_accounts,
)

USERNAMES = ["ana", "ben", "olga", "stu", "cho"]
PROJECTS = ["P001", "P002"]
IDLE_TIMEOUT_SECONDS = 900
USER = "/user/ana"


@pytest.fixture(scope="module")
def hub(hub_base: Path, policies) -> Iterator[RunningHub]:  # noqa: F811
    remove_test_accounts(USERNAMES, PROJECTS)
    running = build_hub(hub_base, policies, idle_timeout=IDLE_TIMEOUT_SECONDS)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        remove_test_accounts(USERNAMES, PROJECTS)


@pytest.fixture(scope="module")
def ana(hub: RunningHub) -> Researcher:
    person = Researcher(hub, "ana")
    assert person.sign_in().status_code == 302
    person.request_token()
    reply = person.start_server("P001")
    assert reply.status_code in (201, 202), hub.log_tail(12000)
    person.wait_until_ready()
    return person


@pytest.fixture(scope="module")
def kernel(ana: Researcher) -> str:
    kernel = ana.start_kernel()
    ready = ana.run(kernel, "import srs, json, os; s = srs.session(); print(s.project)")
    assert ready.error is None and ready.output.strip() == "P001", ready
    return kernel


# ------------------------------------------------------------------ JupyterLab's files
LABEXT = """
import json
from pathlib import Path
rows = s.dataset("linked/journeys").to_csv()
folder = Path.home() / ".local/share/jupyter/labextensions/rows-ext/static"
folder.mkdir(parents=True, exist_ok=True)
(folder / "rows.js").write_text(rows * 50)
(folder.parent / "package.json").write_text(json.dumps({"name": "rows-ext", "jupyterlab": {}}))
print(json.dumps({"bytes": len(rows) * 50}))
"""


def test_lab_serves_no_extension_a_kernel_wrote(hub: RunningHub, ana: Researcher, kernel: str):
    """Attack: JupyterLab serves /lab/extensions/ from every data folder, the researcher's
    ~/.local/share/jupyter/labextensions among them; the kernel writes its rows there. Stopped:
    jupyterhub-singleuser drops folders under $HOME from Jupyter's paths
    (``disable_user_config``), so the file is not found (404)."""
    ana.run(kernel, LABEXT).json()
    reply = ana.api("GET", f"{USER}/lab/extensions/rows-ext/static/rows.js")
    assert "person_key" not in reply.text, (reply.status_code, len(reply.text))


NBCONFIG = """
import json
from pathlib import Path
rows = s.dataset("linked/journeys").to_csv()
for relative in (".jupyter/nbconfig/notebook.json", ".jupyter/nbconfig/common.json"):
    path = Path.home() / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows}))
(Path.home() / "c.py").write_text("x = 1")
"""


def test_no_other_server_door_serves_what_a_kernel_wrote(
    hub: RunningHub, ana: Researcher, kernel: str
):
    """The server's other handlers: /api/config reads nbconfig from the configuration folders
    (root's only), /kernelspecs/ serves the airlock's spec folder only (no traversal), the rest
    tell nothing a kernel chose; checkpoints carry no content and their listing is counted."""
    assert ana.run(kernel, NBCONFIG).error is None
    for path in (
        "/api/config/notebook",
        "/api/config/common",
        "/api/me",
        "/api/status",
        "/api/kernelspecs",
        "/kernelspecs/python3/kernel.json",
        "/kernelspecs/python3/../../jupyter_server_config.json",
        "/kernelspecs/python3/%2e%2e/%2e%2e/jupyter_server_config.json",
        "/lab/api/plugins",
        "/metrics",
    ):
        reply = ana.api("GET", f"{USER}{path}")
        assert "person_key" not in reply.text, path
        assert "ServerApp" not in reply.text, path
    created = ana.api("POST", f"{USER}/api/contents/c.py/checkpoints")
    assert created.status_code == 201 and set(created.json()) == {"id", "last_modified"}
    assert ana.api("GET", f"{USER}/api/contents/c.py/checkpoints").status_code == 200
    restored = ana.api("POST", f"{USER}/api/contents/c.py/checkpoints/{created.json()['id']}")
    assert restored.status_code == 204


# ------------------------------------------------------------------ the hub's API
def test_the_hub_api_lets_ana_share_nothing(hub: RunningHub, ana: Researcher):
    """ana's own scopes: she can neither share her server, nor read or reach another person's,
    nor start a second (named) server with its own budgets, nor mint a broader token."""
    attempts = {
        "share": ana.api("POST", "/hub/api/shares/ana/", json={"user": "olga"}),
        "read olga": ana.api("GET", "/hub/api/users/olga"),
        "olga's server": ana.api("GET", "/user/olga/api/contents/"),
        "named server": ana.api("POST", "/hub/api/users/ana/servers/second", json={}),
        "admin token": ana.api(
            "POST", "/hub/api/users/ana/tokens", json={"scopes": ["admin:users"]}
        ),
        "share token": ana.api(
            "POST", "/hub/api/users/ana/tokens", json={"scopes": ["shares!user=ana"]}
        ),
    }
    codes = {name: reply.status_code for name, reply in attempts.items()}
    assert codes.pop("olga's server") != 200, attempts["olga's server"].text[:300]
    assert all(code >= 400 for code in codes.values()), codes


# ------------------------------------------------------------------ restarting the server
FILL_FILES = """
import json
from pathlib import Path
rows = s.dataset("linked/journeys").to_csv()
text = "# " + (rows * (1 + 1_900_000 // len(rows)))[:1_900_000]
for number in range(40):
    (Path.home() / f"part{number:02d}.py").write_text(text)
print(json.dumps({"files": 40, "bytes": len(text)}))
"""


def test_restarting_the_server_does_not_renew_the_read_budget(
    hub: RunningHub, ana: Researcher, kernel: str
):
    """Attack: the kernel writes 40 code files of 1.9 MB of rows once; the browser reads them
    until the hour's budget answers 429, asks the hub to stop and start its server (its own
    token has servers!user=ana), and reads on with a new budget: 60 MB per restart, a restart
    taking seconds, without any kernel. Rating: row-level data out, at about the speed of a
    restart (no fix here: the ledger must live outside the researcher's account)."""
    made = ana.run(kernel, FILL_FILES, timeout=300).json()
    statuses = []
    for number in range(made["files"]):
        statuses.append(ana.api("GET", f"{USER}/api/contents/part{number:02d}.py").status_code)
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429, statuses
    started = time.monotonic()
    ana.api("DELETE", "/hub/api/users/ana/server")
    while ana.server() is not None:
        time.sleep(0.5)
    assert ana.start_server("P001").status_code in (201, 202)
    ana.wait_until_ready()
    restart_seconds = time.monotonic() - started
    again = ana.api("GET", f"{USER}/api/contents/part{len(statuses) - 1:02d}.py")
    print(f"restart took {restart_seconds:.1f} s; read after it: {again.status_code}")
    assert again.status_code == 429, (again.status_code, round(restart_seconds, 1))

"""The project notebooks run unchanged in a researcher's kernel on a real hub, behind the airlock,
on the vault's linked data (the pipeline's deployment): uploaded through the contents API as a
person would, each code cell run over the kernel's websocket as the browser does, the parameter
cell set to ``source = "vault"``. Their outputs go to the checkers' queue through the API.

Needs root and ``make hub-prerequisites``; fails, never skips, without them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from hub_fixtures import (
    PASSWORD,
    Researcher,
    RunningHub,
    hub_base,  # noqa: F401 (fixture)
    hub_over,
    remove_test_accounts,
)
from notebook_fixtures import (  # noqa: F401 (fixtures, found by pytest by name)
    NOTEBOOKS,
    PROJECT,
    environment,
    offences,
    pipeline,
    simulated,
)
from sqlalchemy import select

from srs.governance.policy import PolicySet
from srs.governance.registry import open_registry
from srs.governance.registry.models import ReleaseRequest
from srs.governance.registry.sign_in import set_password

RESEARCHER = "ana"
NOTEBOOK_NAMES = ["victim_attrition", "reoffending", "remand", "student_introduction"]


@pytest.fixture(scope="module")
def hub(hub_base: Path, environment, pipeline, policies: PolicySet) -> Iterator[RunningHub]:  # noqa: F811
    remove_test_accounts([RESEARCHER], [PROJECT])
    with pipeline.registry.sessions() as db:
        set_password(db, actor="admin", policies=policies, username=RESEARCHER, password=PASSWORD)
    running = hub_over(pipeline.deployment, policies, hub_base, idle_timeout=900)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        remove_test_accounts([RESEARCHER], [PROJECT])


@pytest.fixture(scope="module")
def ana(hub: RunningHub) -> Researcher:
    person = Researcher(hub, RESEARCHER)
    assert person.sign_in().status_code == 302
    person.request_token()
    assert person.start_server(PROJECT).status_code in (201, 202)
    person.wait_until_ready()
    return person


def on_the_vault(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with ``source = "vault"`` in its parameter cell, as a researcher edits it."""
    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert 'source = "open"' in parameters.source
    parameters.source = parameters.source.replace('source = "open"', 'source = "vault"')
    return notebook


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_a_project_notebook_runs_in_the_hub_on_the_vault(
    hub: RunningHub, ana: Researcher, name: str
) -> None:
    notebook = on_the_vault(nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4))
    path = f"{name}.ipynb"
    uploaded = ana.api(
        "PUT",
        f"/user/{RESEARCHER}/api/contents/{path}",
        json={
            "type": "notebook",
            "format": "json",
            "content": json.loads(nbformat.writes(notebook)),
        },
    )
    assert uploaded.status_code in (200, 201), uploaded.text
    opened = ana.api("GET", f"/user/{RESEARCHER}/api/contents/{path}")
    assert opened.status_code == 200
    kernel = ana.start_kernel()
    requests_before = requests_of(hub)
    airlock = hub.policies.access.airlock
    ran = 0
    for number, cell in enumerate(nbformat.from_dict(opened.json()["content"]).cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if ran:
            # A researcher reading each cell's output before the next: the airlock's output
            # window is the server's (every kernel and websocket together), so a cell's
            # output waits for what the cells before it sent in the last window.
            time.sleep(airlock.output_window_seconds)
        result = ana.run(kernel, cell.source, timeout=300)
        ran += 1
        assert result.error is None, f"{name} cell {number}: {result.error}\n{cell.source[:300]}"
        # No cell of an ordinary analysis is over the airlock's output rate: nothing withheld.
        assert "withheld" not in result.output, f"{name} cell {number}: {result.output[-500:]}"
    ana.api("DELETE", f"/user/{RESEARCHER}/api/kernels/{kernel}")
    # Every notebook submits its outputs as one release request (submit = True).
    assert requests_of(hub) == requests_before + 1


def requests_of(hub: RunningHub) -> int:
    registry = open_registry(hub.deployment.database_url)
    try:
        with registry.sessions() as db:
            return len(db.execute(select(ReleaseRequest.id)).all())
    finally:
        registry.dispose()

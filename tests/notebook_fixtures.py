"""A deployment for the notebook tests (``tests/synthetic/test_student_notebook.py``,
``tests/notebooks/``): the pipeline's linked data with a project granted the four linked
datasets, a replica built by the steward with ``srs synth build`` and exported by a student with
``srs synth export`` (``environment``, made once per test session), and ``execute``, which runs a
notebook with papermill in a python3 kernel of this interpreter (``srs.research.notebook_runs``), so
``.venv/bin/python -m pytest`` works without ``.venv/bin`` on PATH.

Import the fixtures where they are used: ``from notebook_fixtures import environment, ...``
(with ``pipeline``, ``simulated`` and ``offences``, which it is made from).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from pipeline_fixtures import (  # noqa: F401 (fixtures, found by pytest by name)
    RESEARCHER,
    STEWARD,
    offences,
    open_project,
    pipeline,
    simulated,
)
from typer.testing import CliRunner

from srs.cli import app
from srs.research.notebook_runs import execute_notebook

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
PROJECT = "PSTUDY"
STUDENT = "stu"
LINKED = ("linked/journeys", "linked/persons", "linked/reoffending", "linked/victims")
# Variables a notebook's session reads from the environment: cleared for every run, then set.
ENVIRONMENT = (
    "SRS_USER",
    "SRS_PROJECT",
    "SRS_HOME",
    "SRS_DATABASE_URL",
    "SRS_OPEN_DATA",
    "SRS_PRACTICE_HOME",
    "SRS_API_URL",
)


@dataclass(frozen=True)
class NotebookEnvironment:
    """The deployment's home and the folder of the student's open-data export."""

    home: Path
    export: Path


def cli(home: Path, *args: str, actor: str):
    """``srs --home HOME --as ACTOR ARGS...``, in process."""
    return CliRunner().invoke(app, ["--home", str(home), "--as", actor, *args])


@pytest.fixture(scope="session")
def environment(pipeline, policies, tmp_path_factory) -> NotebookEnvironment:  # noqa: F811
    """The pipeline's deployment with project PSTUDY (the researcher a member, the linked
    datasets granted), a replica built by the steward and exported by a student."""
    open_project(pipeline, policies, code=PROJECT, datasets=LINKED, student=STUDENT)
    home = pipeline.deployment.home
    built = cli(home, "synth", "build", "--seed", "3", actor=STEWARD)
    assert built.exit_code == 0, built.output
    out = tmp_path_factory.mktemp("open-data") / "cross_justice"
    exported = cli(home, "synth", "export", "--out", str(out), actor=STUDENT)
    assert exported.exit_code == 0, exported.output
    return NotebookEnvironment(home=home, export=out)


def execute(
    notebook: Path, output: Path, environ: dict[str, str], **parameters
) -> nbformat.NotebookNode:
    """Run ``notebook`` with papermill into ``output`` with ``environ`` (and no other of the
    session's variables) set for the kernel; read back the executed copy. A failing cell raises
    ``papermill.PapermillExecutionError``."""
    execute_notebook(
        notebook,
        output,
        parameters=parameters,
        environment={**dict.fromkeys(ENVIRONMENT), **environ},
        cwd=output.parent,
        timeout=120,
    )
    return nbformat.read(output, as_version=4)


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def printed(notebook: nbformat.NotebookNode) -> str:
    """Everything the notebook's cells printed."""
    return "".join(
        output.get("text", "")
        for cell in code_cells(notebook)
        for output in cell.outputs
        if output.output_type == "stream"
    )

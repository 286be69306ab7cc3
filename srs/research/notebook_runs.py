"""Run a notebook with papermill in a researcher session and find what it put in the project's
queue: the machinery behind ``srs run NOTEBOOK --on synthetic|vault``.

The notebook runs in a ``python3`` kernel of this interpreter (a kernelspec written for the run,
so no system-wide kernel is needed), with ``SRS_HOME``, ``SRS_USER`` and ``SRS_PROJECT`` set for
the kernel and the parameter ``source``; its ``srs.session(source=source)`` then works in the
project as the person running it. The executed notebook is saved even when a cell fails. What the
run recorded (outputs, release requests) is read back from the registry, not from the
notebook's text, and the run is audited (``notebook.run``). The run also records the dataset
versions its kernel read (``datasets_used``: name, version, content hash), from the
environment's own record of the reads it served (the ``vault.read`` events of the person in the
project while the notebook ran), never from the notebook.

>>> run = run_notebook(deployment, policies, notebook=Path("notebooks/remand.ipynb"),
...                    source="vault", user="ana", project="P001")       # doctest: +SKIP
>>> run.outputs, run.request_ids, run.executed                           # doctest: +SKIP
>>> [f"{use['name']}@{use['version']}" for use in run.datasets_used]     # doctest: +SKIP
['linked/journeys@3']
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

import srs
from output_checking.outputs import combined_uses, dataset_use
from srs.errors import SRSError
from srs.governance.access import stored_dataset
from srs.governance.audit import event_details, record_event
from srs.governance.deployment import DATABASE_URL_ENV, HOME_ENV, Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry import open_registry
from srs.governance.registry.models import AuditEvent, Output, Project, ReleaseRequest
from srs.research.session import PROJECT_ENV, USER_ENV, open_session
from srs.research.surface import API_URL_ENV, SYNTHETIC, VAULT
from srs.research.values import OutputSummary

KERNEL = "python3"
# The sources a run in a deployment may use; "open" is a practice session, run with papermill.
RUN_SOURCES = (SYNTHETIC, VAULT)
# Parameters the command sets itself.
RESERVED_PARAMETERS = ("source", "open_data_path")
# Variables of the hub's kernels: a run reads the deployment it was started on instead.
HUB_VARIABLES = (API_URL_ENV, "SRS_SESSION_TOKEN")


class NotebookRunError(SRSError):
    """A notebook run that cannot start: no such notebook, an unknown source, a bad parameter."""


@dataclass
class NotebookRun:
    """One run: where the executed notebook is, what it recorded, and the error if a cell failed."""

    notebook: Path
    executed: Path
    source: str
    user: str
    project: str
    seconds: float
    outputs: list[OutputSummary] = field(default_factory=list)
    request_ids: list[int] = field(default_factory=list)
    error: str | None = None
    # The dataset versions the run read ({name, version, content_hash}), by name and version.
    datasets_used: list[dict[str, Any]] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.error is None


def write_kernel_spec(folder: Path) -> Path:
    """Write a ``python3`` kernelspec that runs this interpreter into ``folder/kernels`` and
    return ``folder``, to put first on ``JUPYTER_PATH``: a python3 kernel of another Python
    (a user's, the system's) cannot take its place."""
    spec = folder / "kernels" / KERNEL / "kernel.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    return folder


@contextmanager
def _environment(changes: Mapping[str, str | None]) -> Iterator[None]:
    # The kernel inherits this process's environment; put it back afterwards.
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute_notebook(
    notebook: Path,
    executed: Path,
    *,
    parameters: Mapping[str, Any],
    environment: Mapping[str, str | None] = {},  # noqa: B006 (read only)
    cwd: Path | None = None,
    progress: bool = False,
    timeout: int | None = None,
) -> None:
    """Run ``notebook`` with papermill into ``executed`` in a python3 kernel of this
    interpreter, with ``environment`` set for the kernel (None unsets a variable) and the
    checkout's packages importable. A failing cell raises papermill's
    ``PapermillExecutionError``; the executed notebook is written either way."""
    import papermill

    checkout = str(Path(srs.__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="srs-kernel-") as kernels:
        changes = {
            "JUPYTER_PATH": os.pathsep.join(
                filter(
                    None, [str(write_kernel_spec(Path(kernels))), os.environ.get("JUPYTER_PATH")]
                )
            ),
            # The kernel imports the srs this command runs, installed or not.
            "PYTHONPATH": os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")])),
            **environment,
        }
        with _environment(changes):
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters=dict(parameters),
                kernel_name=KERNEL,
                language="python",
                cwd=str(cwd or notebook.parent),
                progress_bar=progress,
                log_output=False,
                execution_timeout=timeout,
            )


def parse_parameter(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line: the value as an int, a float, True, False or None
    when it reads as one, else as text (as papermill's ``-p`` does)."""
    key, equals, raw = text.partition("=")
    key = key.strip()
    if not equals or not key.isidentifier():
        raise NotebookRunError(f"a parameter is KEY=VALUE with KEY a Python name, not {text!r}")
    if key in RESERVED_PARAMETERS:
        raise NotebookRunError(f"-p {key}=... is set by the command; use --on to choose the source")
    constants = {"True": True, "False": False, "None": None}
    if raw in constants:
        return key, constants[raw]
    for kind in (int, float):
        try:
            return key, kind(raw)
        except ValueError:
            pass
    return key, raw


def default_executed_path(deployment: Deployment, project: str, notebook: Path) -> Path:
    """``HOME/runs/<project>/<UTC timestamp>-<notebook name>.ipynb``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return deployment.home / "runs" / project / f"{stamp}-{notebook.stem}.ipynb"


def _latest_ids(db, project: str, user: str) -> tuple[int, int]:
    def latest(model) -> int:
        return (
            db.execute(
                select(func.max(model.id))
                .join(Project, Project.id == model.project_id)
                .where(Project.code == project, model.author == user)
            ).scalar()
            or 0
        )

    return latest(Output), latest(ReleaseRequest)


def last_audit_seq(db) -> int:
    """The sequence number of the newest audit event (0 for an empty log)."""
    return db.execute(select(func.max(AuditEvent.seq))).scalar() or 0


def datasets_read(db, *, user: str, project: str, after_seq: int) -> list[dict[str, Any]]:
    """The dataset versions ``user`` read in ``project`` (and synthetic replicas they read) after
    audit event ``after_seq``, as outputs record them, from the vault's own ``vault.read``
    events: what a run read, whatever its notebook says. A read of the same person in the same
    project elsewhere in those minutes (another notebook) is counted too: it may have been."""
    events = db.execute(
        select(AuditEvent)
        .where(
            AuditEvent.seq > after_seq,
            AuditEvent.action == "vault.read",
            AuditEvent.actor == user,
            AuditEvent.outcome == "ok",
        )
        .order_by(AuditEvent.seq)
    ).scalars()
    uses = []
    for event in events:
        details = event_details(event) or {}
        if details.get("project") != project and details.get("open") is not True:
            continue
        name, _, version = event.target.rpartition("@")
        stored = stored_dataset(db, name, int(version)) if version.isdigit() else None
        if stored is not None:
            uses.append(dataset_use(stored))
    return combined_uses(uses)


def _failure(exc: Exception) -> str:
    # papermill's error names the cell; its traceback lines are the kernel's (ANSI-coloured).
    cell = getattr(exc, "exec_count", None)
    name, value = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    return f"In [{cell}]: {name}: {value}" if cell is not None else f"{name}: {value}"


def run_notebook(
    deployment: Deployment,
    policies: PolicySet,
    *,
    notebook: Path,
    source: str,
    user: str,
    project: str,
    out: Path | None = None,
    parameters: Mapping[str, Any] | None = None,
    progress: bool = False,
    timeout: int | None = None,
) -> NotebookRun:
    """Execute ``notebook`` as ``user`` in ``project`` on ``source`` (``synthetic`` or
    ``vault``) and return what it recorded; a failing cell gives a run with ``error`` set (and
    the executed notebook saved), not an exception. Refuses (``NotebookRunError``,
    ``AccessDenied``) before running anything when the notebook, the source or the person's
    access is wrong."""
    import nbformat
    from papermill.exceptions import PapermillExecutionError

    if source not in RUN_SOURCES:
        raise NotebookRunError(
            f"--on must be one of {', '.join(RUN_SOURCES)} (the deployment's synthetic replica "
            f"or the vault data), not {source!r}; practise on the open data with papermill and "
            "-p source open"
        )
    notebook = Path(notebook)
    if not notebook.is_file():
        raise NotebookRunError(f"no notebook {str(notebook)!r}: give the path of an .ipynb file")
    try:
        nbformat.read(notebook, as_version=4)
    except Exception as exc:  # nbformat raises several kinds on files that are not notebooks
        raise NotebookRunError(f"{notebook} is not a Jupyter notebook: {exc}") from exc
    # The same check the notebook's session makes, before anything runs: AccessDenied says why.
    open_session(user, project, deployment=deployment, policies=policies, source=source).close()
    registry = open_registry(deployment.database_url)
    try:
        with registry.sessions() as db:
            last_output, last_request = _latest_ids(db, project, user)
            started_after = last_audit_seq(db)
        executed = (
            Path(out) / default_executed_path(deployment, project, notebook).name
            if out is not None
            else default_executed_path(deployment, project, notebook)
        )
        executed.parent.mkdir(parents=True, exist_ok=True)
        environment = {
            HOME_ENV: str(deployment.home),
            DATABASE_URL_ENV: deployment.database_url,
            USER_ENV: user,
            PROJECT_ENV: project,
            **dict.fromkeys(HUB_VARIABLES),
        }
        started, error = time.perf_counter(), None
        try:
            execute_notebook(
                notebook,
                executed,
                parameters={**(parameters or {}), "source": source},
                environment=environment,
                progress=progress,
                timeout=timeout,
            )
        except PapermillExecutionError as exc:
            error = _failure(exc)
        except Exception as exc:  # the kernel did not start, timed out, died...
            if not executed.exists():
                raise NotebookRunError(f"{notebook.name} could not be run: {exc}") from exc
            error = _failure(exc)
        seconds = time.perf_counter() - started
        with registry.sessions() as db:
            outputs = list(
                db.execute(
                    select(Output)
                    .join(Project, Project.id == Output.project_id)
                    .where(Project.code == project, Output.author == user, Output.id > last_output)
                    .order_by(Output.id)
                ).scalars()
            )
            summaries = [OutputSummary.of(output) for output in outputs]
            request_ids = list(
                db.execute(
                    select(ReleaseRequest.id)
                    .join(Project, Project.id == ReleaseRequest.project_id)
                    .where(
                        Project.code == project,
                        ReleaseRequest.author == user,
                        ReleaseRequest.id > last_request,
                    )
                    .order_by(ReleaseRequest.id)
                ).scalars()
            )
            used = datasets_read(db, user=user, project=project, after_seq=started_after)
            record_event(
                db,
                actor=user,
                action="notebook.run",
                target=f"{project}/{notebook.name}",
                outcome="ok" if error is None else "error",
                reason=error or "",
                details={
                    "notebook": str(notebook.resolve()),
                    "source": source,
                    "executed": str(executed.resolve()),
                    "outputs": [summary.id for summary in summaries],
                    "requests": request_ids,
                    "seconds": round(seconds, 1),
                    "datasets_used": [f"{u['name']}@{u['version']}" for u in used],
                    "parameters": {k: v for k, v in (parameters or {}).items()},
                },
            )
            db.commit()
    finally:
        registry.dispose()
    return NotebookRun(
        notebook=notebook,
        executed=executed,
        source=source,
        user=user,
        project=project,
        seconds=seconds,
        outputs=summaries,
        request_ids=request_ids,
        error=error,
        datasets_used=used,
    )

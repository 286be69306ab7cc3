"""``srs run``: run a notebook with papermill on the synthetic replica or the vault's data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from srs.cli.base_command import CommandContext, console, fail, print_done


def run_notebook_command(
    ctx: typer.Context,
    notebook: Path = typer.Argument(
        ..., help="The notebook (.ipynb) to run, e.g. notebooks/remand.ipynb."
    ),
    on: str = typer.Option(
        ..., "--on", help="synthetic (the deployment's replica) or vault (the project's data)."
    ),
    project: str = typer.Option(
        None,
        "--project",
        envvar="SRS_PROJECT",
        help="The project to work in (default SRS_PROJECT).",
    ),
    out: Path = typer.Option(
        None, "--out", help="Folder for the executed notebook (default HOME/runs/<project>/)."
    ),
    parameter: list[str] = typer.Option(
        None, "-p", "--parameter", help="A notebook parameter KEY=VALUE (repeatable)."
    ),
) -> None:
    """Run a notebook with papermill as you, in PROJECT, on the synthetic replica or the vault
    data (its `source` parameter), save the executed notebook, and report the outputs it recorded
    into the project's queue and its release request. A failing cell exits 2 with its error (the
    executed notebook is still saved)."""
    from srs.research.notebook_runs import NotebookRunError, parse_parameter, run_notebook

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    if not project:
        raise NotebookRunError(
            "say which project to work in: add --project CODE (or set SRS_PROJECT)"
        )
    parameters = dict(parse_parameter(text) for text in parameter or [])
    user = state.actor()
    console.print(f"Running {escape(str(notebook))} on {on} data as {user} in {project}")
    run = run_notebook(
        deployment,
        state.policies,
        notebook=notebook,
        source=on,
        user=user,
        project=project,
        out=out,
        parameters=parameters,
        progress=console.is_terminal,
    )
    console.print(f"Executed notebook: {run.executed} ({run.seconds:.1f} s)")
    for output in run.outputs:
        console.print(f"  recorded {escape(str(output))}")
    if not run.outputs:
        console.print("  it recorded no outputs")
    for request_id in run.request_ids:
        console.print(f"  release request #{request_id} is in the checkers' queue")
    if run.error:
        fail(f"the notebook failed at {escape(run.error)}; see {run.executed}")
    print_done("Ran", f"{escape(notebook.name)} on {on} data")

"""``srs linked``: build the de-identified linked research datasets from the linkage."""

from __future__ import annotations

import typer
from rich.table import Table

from srs.cli.base_command import CommandContext, console, noun_group, print_note

app = noun_group("Build the de-identified linked research datasets.")


@app.command("build")
def linked_build(ctx: typer.Context) -> None:
    """Build linked/persons, linked/journeys, linked/victims, linked/reoffending (stewards)."""
    from srs.pipeline.offences import load_offences
    from srs.pipeline.stewardship import publish_linked_datasets

    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        linked = publish_linked_datasets(
            session,
            state.vault,
            actor=state.actor(),
            offences=load_offences(state.policies.source_dir),
        )
    table = Table("dataset", "rows", "columns")
    for name, frame in linked.tables.items():
        table.add_row(name, f"{len(frame):,}", str(frame.shape[1]))
    console.print(table)
    for key, value in linked.report.items():
        if not key.startswith("rows_"):
            print_note(f"{key}: {value}")

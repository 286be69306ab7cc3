"""``srs dataset``: store files in the vault and read its catalogue (never the data)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from srs.cli.base_command import CommandContext, UsageError, console, noun_group, print_done

app = noun_group("Store datasets in the vault and see the catalogue.")


@app.command("store")
def dataset_store(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Dataset name, e.g. linked/journeys."),
    path: Path = typer.Argument(..., help="A CSV or Parquet file.", exists=True, dir_okay=False),
    classification: str = typer.Option(
        None, help="public, confidential or highly_confidential (default: by policy)."
    ),
) -> None:
    """Encrypt a CSV or Parquet file into the vault as the next version of NAME (stewards)."""
    state: CommandContext = ctx.obj
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path)
        else:
            raise UsageError(f"{path} is neither .csv nor .parquet")
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    with state.registry.sessions() as session:
        dataset = state.vault.store(
            session, name, frame, actor=state.actor(), classification=classification
        )
    print_done(
        "Stored",
        f"{dataset.name}@{dataset.version}: {dataset.row_count} rows, "
        f"{dataset.classification}, {dataset.content_hash}",
    )


@app.command("list")
def dataset_list(ctx: typer.Context) -> None:
    """List every dataset version in the vault's catalogue."""
    from sqlalchemy import select

    from srs.governance.registry.models import Dataset

    state: CommandContext = ctx.obj
    table = Table("name", "version", "classification", "rows", "stored by", "stored at")
    with state.registry.sessions() as session:
        for d in session.execute(select(Dataset).order_by(Dataset.name, Dataset.version)).scalars():
            table.add_row(
                d.name,
                str(d.version),
                d.classification,
                str(d.row_count),
                d.created_by,
                d.created_at.strftime("%Y-%m-%d %H:%M"),
            )
    console.print(table)


@app.command("show")
def dataset_show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Dataset name."),
    version: int = typer.Option(None, help="Version (default: newest)."),
) -> None:
    """Show a dataset's catalogue record and data dictionary (never its data)."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        d = state.vault.get(session, name, version)
    console.print(f"[bold]{d.name}[/] version {d.version}")
    console.print(f"  classification: {d.classification}")
    console.print(f"  rows: {d.row_count}   content: {d.content_hash}")
    console.print(f"  stored by {d.created_by} at {d.created_at.isoformat()}")
    table = Table("variable", "type", "description")
    for column in d.data_dictionary:
        table.add_row(column.get("name", ""), column.get("type", ""), column.get("description", ""))
    console.print(table)

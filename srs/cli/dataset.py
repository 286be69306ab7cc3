"""``srs dataset``: store files in the vault and read its catalogue (never the data)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from srs.cli.base_command import CommandContext, UsageError, console, noun_group, print_done

app = noun_group("Store datasets in the vault and see the catalogue.")


@app.command("store")
def dataset_store(
    ctx: typer.Context,
    name: str = typer.Argument(
        ...,
        help="Dataset name outside the data areas, e.g. reference/court_codes (source/, "
        "linked/ and steward/ are written only by the pipeline).",
    ),
    path: Path = typer.Argument(..., help="A CSV or Parquet file.", exists=True, dir_okay=False),
    classification: str = typer.Option(
        None, help="public, confidential or highly_confidential (default: by policy)."
    ),
) -> None:
    """Encrypt a CSV or Parquet file into the vault as the next version of NAME (stewards).

    Not for the data areas: extracts come in with `srs ingest` under an agreement, linked
    datasets with `srs linked build`, and the steward zone's lookups and keys are written by
    the linkage; a file stored by hand there would carry no agreement behind it."""
    state: CommandContext = ctx.obj
    access = state.policies.access
    if access.requires_lineage(name) or access.in_steward_zone(name):
        raise UsageError(
            f"{name} is not stored by hand: its data must come from deliveries under "
            "data-sharing agreements. Extracts come in with `srs ingest` under an agreement, "
            "linked datasets with `srs linked build`, and the steward zone's lookups and keys "
            "are written by `srs link run`"
        )
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
    """List every dataset version in the vault's catalogue; a destroyed (crypto-shredded)
    version is marked, with the day its data key was deleted."""
    from sqlalchemy import select

    from srs.governance.registry.models import Dataset

    state: CommandContext = ctx.obj
    table = Table("name", "version", "classification", "rows", "stored by", "stored at", "state")
    with state.registry.sessions() as session:
        for d in session.execute(select(Dataset).order_by(Dataset.name, Dataset.version)).scalars():
            table.add_row(
                d.name,
                str(d.version),
                d.classification,
                str(d.row_count),
                d.created_by,
                d.created_at.strftime("%Y-%m-%d %H:%M"),
                f"destroyed {d.shredded_at:%Y-%m-%d}" if d.shredded_at else "held",
            )
    console.print(table)


@app.command("show")
def dataset_show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Dataset name."),
    version: int = typer.Option(
        None, help="Show only this version's record and dictionary (default: every version)."
    ),
) -> None:
    """Show a dataset's versions (stored at, rows, lineage: the deliveries behind each by
    source and period and what it was derived from; what changed; destroyed ones marked), then
    the data dictionary of the newest version, or of --version N alone (never the data)."""
    from srs.research.versions import catalogue_versions

    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        d = state.vault.get(session, name, version)
        listed = catalogue_versions(session, name)
    shown = next(v for v in listed if v.version == d.version)
    if version is None:
        versions = Table("version", "stored at", "rows", "lineage", "changes", "state")
        for v in listed:
            versions.add_row(
                str(v.version),
                v.stored_at[:16].replace("T", " "),
                str(v.rows),
                escape(v.lineage) or "(stored by hand)",
                escape(v.changes),
                f"[red]DESTROYED {(v.shredded_at or '')[:10]}[/]" if v.shredded else "held",
            )
        console.print(f"[bold]{escape(d.name)}[/]: {len(listed)} version(s)")
        console.print(versions)
        for v in listed:
            if v.shredded:
                console.print(
                    f"  version {v.version} destroyed {(v.shredded_at or '')[:10]}: "
                    f"{escape(v.shredded_reason or 'no reason recorded')}"
                )
    console.print(f"[bold]{escape(d.name)}[/] version {d.version}")
    if d.shredded_at is not None:
        console.print(
            f"  [red]destroyed[/] {d.shredded_at:%Y-%m-%d} ({escape(d.shredded_reason or '')}): "
            "its data key is deleted; the record below is all that is left"
        )
    console.print(f"  classification: {d.classification}")
    console.print(f"  rows: {d.row_count}   content: {d.content_hash}")
    console.print(f"  stored by {d.created_by} at {d.created_at.isoformat()}")
    console.print(f"  lineage: {escape(shown.lineage) or '(stored by hand)'}")
    if shown.changes:
        console.print(f"  changes: {escape(shown.changes)}")
    table = Table("variable", "type", "description")
    for column in d.data_dictionary:
        table.add_row(column.get("name", ""), column.get("type", ""), column.get("description", ""))
    console.print(table)

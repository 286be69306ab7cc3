"""``srs simulate`` and ``srs ingest``: make the agencies' extracts (simulated, with ground
truth) and take extracts into the vault."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from srs.cli.base_command import CommandContext, console, print_done, progress


def simulate(
    persons: int = typer.Option(..., "--persons", min=10, help="How many persons to simulate."),
    seed: int = typer.Option(..., "--seed", help="Random seed (same seed, same data)."),
    out: Path = typer.Option(
        ..., "--out", help="Folder for extracts/, ground_truth/, manifest.json."
    ),
    file_format: str = typer.Option("csv", "--format", help="csv or parquet."),
    noise: str = typer.Option(
        "documented",
        "--noise",
        help="Identifier errors: documented (the README's table) or hard (also swapped names, "
        "digit typos in dates of birth, several errors in one record, non-ASCII and "
        "double-barrelled names, padding, placeholders such as UNKNOWN or NFA, more missing "
        "identifiers; ingest rejects the rows whose placeholders break a data dictionary).",
    ),
) -> None:
    """Simulate a population and the seven agency extracts of its journeys (with ground truth)."""
    import time

    from srs.pipeline.simulation import simulate as run_simulation
    from srs.pipeline.simulation import write_simulation

    start = time.perf_counter()
    result = run_simulation(persons, seed, progress=progress, noise=noise)
    paths = write_simulation(result, out, file_format, progress=progress)
    table = Table("source", "records", "file")
    for source, frame in result.extracts.items():
        table.add_row(source, f"{len(frame):,}", str(paths[source]))
    console.print(table)
    seconds = time.perf_counter() - start
    print_done(
        "Simulated",
        f"{persons:,} persons (seed {seed}, {noise} noise) in {seconds:.1f} s; "
        f"ground truth in {paths['ground_truth']} (the pipeline never reads it)",
    )


def ingest(
    ctx: typer.Context,
    source: str = typer.Argument(
        ..., help="Source name, e.g. police_arrests (see policies/data_dictionaries)."
    ),
    path: Path = typer.Argument(..., help="The extract: CSV or Parquet."),
    rejects: Path = typer.Option(
        None, help="Rejects file (default: FILE.rejects.csv beside the extract)."
    ),
) -> None:
    """Validate an extract against its data dictionary and store the accepted rows (stewards)."""
    from srs.pipeline.offences import load_offences
    from srs.pipeline.stewardship import ingest_into_vault

    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        result, stored = ingest_into_vault(
            session,
            state.vault,
            actor=state.actor(),
            source=source,
            path=path,
            offences=load_offences(state.policies.source_dir),
            rejects_path=rejects,
        )
    print_done(
        "Ingested",
        f"{source}: {result.rows_in:,} rows in = {result.rows_accepted:,} accepted "
        f"+ {result.rows_rejected:,} rejected; stored as {stored.name}@{stored.version}",
    )
    if result.rows_rejected:
        where = rejects or path.with_name(path.name + ".rejects.csv")
        console.print(f"  rejects with reasons: {where}")
        for reason in result.rejects["reasons"].head(5):
            console.print(f"  [yellow]-[/] {escape(reason)}")

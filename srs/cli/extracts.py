"""``srs simulate`` and ``srs ingest``: make the agencies' extracts (simulated, with ground
truth, as one extract or as a base and monthly deliveries) and take extracts and deliveries
into the vault under their data-sharing agreements."""

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
    deliveries: int = typer.Option(
        0,
        "--deliveries",
        min=0,
        max=24,
        help="Also split the extracts into a base extract and this many monthly deliveries "
        "(the last months of the period) in OUT/deliveries/YYYY-MM/, with new records, "
        "corrections, late arrivals and withdrawals (column delivery_action).",
    ),
) -> None:
    """Simulate a population and the seven agency extracts of its journeys (with ground truth)."""
    import time

    from srs.pipeline.simulation import simulate as run_simulation
    from srs.pipeline.simulation import write_simulation
    from srs.pipeline.simulation.deliveries import make_deliveries

    start = time.perf_counter()
    result = run_simulation(persons, seed, progress=progress, noise=noise)
    series = make_deliveries(result, deliveries) if deliveries else None
    paths = write_simulation(result, out, file_format, progress=progress, deliveries=series)
    if series is None:
        table = Table("source", "records", "file")
        for source, frame in result.extracts.items():
            table.add_row(source, f"{len(frame):,}", str(paths[source]))
    else:
        table = Table(
            "source", "base", *(f"{period} add/correct/withdraw" for period in series.periods)
        )
        for source, frame in series.base.items():
            counts = []
            for period in series.periods:
                action = series.deliveries[period][source]["delivery_action"]
                counts.append(
                    "/".join(
                        f"{int((action == a).sum()):,}" for a in ("add", "correct", "withdraw")
                    )
                )
            table.add_row(source, f"{len(frame):,}", *counts)
        table.add_row(
            "new persons", "", *(f"{series.new_persons[period]:,}" for period in series.periods)
        )
    console.print(table)
    if series is not None:
        console.print(
            f"  base extracts (events before {series.cut_off.date()}) in {out / 'extracts'}; "
            f"deliveries in {out / 'deliveries'}"
        )
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
    delivery: bool = typer.Option(
        False,
        "--delivery",
        help="The file is a periodic delivery (column delivery_action: add, correct or "
        "withdraw on each row), applied to the table held; without it, the base extract.",
    ),
    period: str = typer.Option(
        None, "--period", help="The period a delivery covers, e.g. 2024-11 (with --delivery)."
    ),
    report_dir: Path = typer.Option(
        None,
        "--report-dir",
        help="Folder for the quality report to the agency (default: beside the file, "
        "FILE.quality.json and FILE.quality.md).",
    ),
) -> None:
    """Validate an extract or delivery against its data dictionary and agreement, and store it
    as the next version of the source (stewards)."""
    from sqlalchemy import select

    from srs.governance.registry.models import Delivery
    from srs.pipeline.offences import load_offences
    from srs.pipeline.stewardship import ingest_into_vault, quality_report_paths

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
            delivery=delivery,
            period=period,
            report_dir=report_dir,
        )
        received = session.scalars(
            select(Delivery).where(
                Delivery.dataset_name == stored.name, Delivery.dataset_version == stored.version
            )
        ).one()
        changes, quality, shown_period = received.changes, received.quality, received.period
        reference = received.agreement.reference
    print_done(
        "Ingested",
        f"{source} ({shown_period}, under {reference}): {result.rows_in:,} rows in = "
        f"{result.rows_accepted:,} accepted + {result.rows_rejected:,} rejected; stored as "
        f"{stored.name}@{stored.version}",
    )
    console.print(
        f"  changes: {changes['added']:,} added, {changes['corrected']:,} corrected, "
        f"{changes['withdrawn']:,} withdrawn, {changes['late']:,} late"
    )
    for check in quality["checks"]:
        mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
        console.print(f"  {mark} {check['name']}: {escape(check['explanation'])}")
    json_path, md_path = quality_report_paths(path, report_dir)
    console.print(f"  quality report for the agency: {md_path} (and {json_path.name})")
    if result.rows_rejected:
        where = rejects or path.with_name(path.name + ".rejects.csv")
        console.print(f"  rejects with reasons: {where}")
        for reason in result.rejects["reasons"].head(5):
            console.print(f"  [yellow]-[/] {escape(reason)}")

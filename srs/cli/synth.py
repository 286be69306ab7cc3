"""``srs synth``: synthetic replicas of the linked datasets: build and gate them, make
differentially private ones paid from a project's budget, export them for open use."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from srs.cli.base_command import CommandContext, console, noun_group, print_done, progress

app = noun_group(
    "Synthetic replicas of the linked datasets: build, gate and export them for open use."
)


@app.command("build")
def synth_build(
    ctx: typer.Context,
    datasets: list[str] = typer.Argument(
        None, help="Linked datasets to replicate (default, and required: the related set of four)."
    ),
    synthesizer: str = typer.Option("gaussian_copula", help="gaussian_copula, ctgan or tvae."),
    persons: int = typer.Option(None, help="Synthetic persons (default: as many as training)."),
    seed: int = typer.Option(0, help="Random seed of the split and the synthesiser."),
    holdout_share: float = typer.Option(
        0.25, help="Share of real persons kept back to judge the privacy gates against."
    ),
) -> None:
    """Build a synthetic replica of the linked datasets (stewards), run the privacy gates and
    the fidelity evaluation, and store it in the vault as synthetic/* (public) only if every
    gate passed. The HTML report and JSON figures go to HOME/synthetic/. The replica's privacy is
    evidence from its gates, not a guarantee: for a formal (differentially private) replica paid
    from a project's budget, see `srs synth dp`."""
    from synthetic.vault_replicas import build_replica_in_vault

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    progress(f"building a {synthesizer} replica of the linked datasets")
    with state.registry.sessions() as session:
        built = build_replica_in_vault(
            session,
            state.vault,
            deployment,
            state.policies,
            actor=state.actor(),
            datasets=datasets or None,
            synthesizer=synthesizer,
            persons=persons,
            seed=seed,
            holdout_share=holdout_share,
            progress=console.is_terminal,
        )
    print_done("Built", escape(built.result.summary()))
    console.print(f"  stored as {', '.join(built.stored)}; report {built.report}")


@app.command("dp")
def synth_dp(
    ctx: typer.Context,
    dataset: str = typer.Argument(
        ..., help="A dataset granted to the project, e.g. linked/journeys."
    ),
    project: str = typer.Option(..., "--project", help="The project whose budget pays."),
    columns: str = typer.Option(
        ..., help="Comma-separated columns with public categories or bounds, e.g. sex,court."
    ),
    rows: int = typer.Option(..., help="Synthetic rows to draw (at most the file gate's limit)."),
    rho: float = typer.Option(..., help="Privacy loss to spend from the project's budget."),
    algorithm: str = typer.Option("mst", help="OpenDP's marginal-based synthesiser: mst or aim."),
    bins: int = typer.Option(10, help="Equal-width bins for each numeric column's public bounds."),
    seed: int = typer.Option(None, help="Seed of the sampling (never of the noise)."),
    version: int = typer.Option(None, help="The dataset's version (default: the newest)."),
    where: str = typer.Option(
        None,
        help="Rows to keep, as JSON conditions that must all hold, e.g. "
        '\'[["sex", "==", "F"], ["age_at_offence", ">=", 18]]\' (see disclosure.dp.selection).',
    ),
    name: str = typer.Option(None, help="Output name (default: says what it is)."),
) -> None:
    """Make a differentially private synthetic replica of COLUMNS of DATASET (researchers):
    OpenDP's MST or AIM at a person-level unit, read by the environment from the dataset granted
    to the project (rows chosen by --where), paid from the project's privacy budget (the ledger
    records and confirms the spend) and recorded as a dp_result output for output checking.
    Nothing is spent if the columns, selection, rho, rows or budget are refused."""
    from disclosure.dp.selection import SelectionError
    from srs.research.session import open_session as start_session

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    conditions = None
    if where is not None:
        try:
            conditions = json.loads(where)
        except ValueError as exc:
            raise SelectionError(
                f"--where is not JSON ({exc}); write it as "
                '\'[["sex", "==", "F"], ["age_at_offence", ">=", 18]]\''
            ) from None
    wanted = [c.strip() for c in columns.split(",") if c.strip()]
    progress(f"synthesising {rows:,} DP rows of {dataset} with {algorithm.upper()}")
    with start_session(
        state.actor(), project, deployment=deployment, policies=state.policies
    ) as researcher:
        replica = researcher.dp.synthetic(
            dataset,
            wanted,
            rows=rows,
            rho=rho,
            algorithm=algorithm,
            bins=bins,
            seed=seed,
            version=version,
            where=conditions,
            name=name,
        )
    paid = replica.attrs["srs_dp"]
    print_done(
        "Recorded",
        f"output #{replica.attrs['srs_output_id']} "
        f"{escape(replica.attrs['srs_output_name'])}: {len(replica):,} rows of "
        f"{', '.join(wanted)}; spend #{paid['spend_id']} rho {paid['rho']:g} "
        f"(epsilon {paid['epsilon']:.3g}); {paid['remaining_rho']:g} rho left",
    )
    console.print("  submit it for output checking with your other outputs to take it out")


@app.command("export")
def synth_export(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Folder to write the open-data package into."),
    licence: str = typer.Option("CC-BY-4.0", help="Licence of the published replica."),
    overwrite: bool = typer.Option(False, help="Replace an existing package folder."),
) -> None:
    """Export the stored replica for open use: CSV and Parquet, datapackage.json (Frictionless
    Table Schema with the data dictionary), the fidelity and privacy report, a synthetic-data
    notice and the licence. Refused unless its privacy gates passed."""
    from synthetic.vault_replicas import export_open_data

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    with state.registry.sessions() as session:
        exported = export_open_data(
            session,
            state.vault,
            deployment,
            actor=state.actor(),
            out=out,
            licence=licence,
            overwrite=overwrite,
        )
    print_done(
        "Exported",
        f"{exported.path}: {exported.rows:,} synthetic rows in "
        f"{exported.tables} tables; package validates against its schema: {exported.valid}",
    )
    console.print(f'  load it with: srs.open_data("cross_justice", path="{exported.path}")')

"""``srs audit``: verify, read and export the hash-chained audit log."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from srs.cli.base_command import CommandContext, console, fail_check, noun_group, print_done
from srs.governance import audit as audit_log

app = noun_group("Verify, read and export the hash-chained audit log.")


@app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Check the hash chain; exits 1 and names the first bad event if anything was altered."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        report = audit_log.verify_chain(session)
    if report.intact:
        console.print(f"[green]Audit log intact[/]: {report.events_checked} events verified")
        return
    fail_check(
        f"[red]Audit log broken at event {report.first_bad_seq}[/]: {report.problem} "
        f"({report.events_checked} events verified before it)"
    )


@app.command("tail")
def audit_tail(
    ctx: typer.Context, count: int = typer.Option(20, "-n", "--count", min=1, help="How many.")
) -> None:
    """Show the most recent audit events."""
    state: CommandContext = ctx.obj
    table = Table("seq", "when (UTC)", "actor", "action", "target", "outcome", "reason")
    with state.registry.sessions() as session:
        state.authorise_audit_read(session)
        for e in audit_log.tail_events(session, count):
            colour = {"deny": "red", "error": "red", "allow": "green"}.get(e.outcome, "white")
            table.add_row(
                str(e.seq),
                e.occurred_at[:19],
                e.actor,
                e.action,
                e.target,
                f"[{colour}]{e.outcome}[/]",
                e.reason,
            )
    console.print(table)


@app.command("export")
def audit_export(
    ctx: typer.Context,
    out: Path = typer.Option(None, "--out", help="File to write (default: standard output)."),
) -> None:
    """Export every audit event as JSON Lines, in sequence order."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        state.authorise_audit_read(session)
        lines = audit_log.export_events(session)
        if out is None:
            for line in lines:
                sys.stdout.write(line + "\n")
            return
        count = 0
        with out.open("w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line + "\n")
                count += 1
    print_done("Exported", f"{count} events to {out}")

"""``srs init`` and ``srs demo``: create a deployment, or a demonstration one on simulated data."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from srs.cli.base_command import CommandContext, UsageError, console, print_done
from srs.governance.registry import accounts, open_registry
from srs.vault.crypto import MASTER_KEY_ENV, generate_master_key, write_key_file


def init(
    ctx: typer.Context,
    admin: str = typer.Option("admin", help="Username of the first administrator."),
    admin_name: str = typer.Option("Administrator", help="Full name of the first administrator."),
) -> None:
    """Create a deployment: folders, master key (0600), registry database, first administrator."""
    state: CommandContext = ctx.obj
    deployment = state.deployment
    if deployment.is_initialised():
        raise UsageError(f"{deployment.home} is already a deployment; nothing was changed")
    deployment.home.mkdir(parents=True, exist_ok=True)
    # Private to the account that runs the deployment: researchers' Unix accounts (the hub's
    # spawner) must not read the registry, the vault or the key (`srs hub start` checks this).
    deployment.home.chmod(0o700)
    deployment.vault_dir.mkdir(mode=0o700, exist_ok=True)
    if os.environ.get(MASTER_KEY_ENV):
        key_note = f"master key taken from {MASTER_KEY_ENV}"
    else:
        write_key_file(deployment.key_file, generate_master_key())
        key_note = f"master key written to {deployment.key_file} (mode 0600; back it up offline)"
    registry = open_registry(deployment.database_url, migrate=True)
    with registry.sessions() as session:
        accounts.bootstrap_admin(session, username=admin, full_name=admin_name)
    deployment.marker_file.write_text("srs-toolkit deployment\n")
    registry.dispose()
    print_done("Initialised", str(deployment.home))
    console.print(f"  registry: {deployment.database_url}")
    console.print(f"  {key_note}")
    console.print(f"  first administrator: {admin} (use --as {admin})")


def demo(
    home: Path = typer.Option(
        Path("demo-home"), help="Folder for the demo deployment (recreated each run)."
    ),
) -> None:
    """Run the end-to-end demonstration on simulated data and print what it did."""
    from srs.demo import run_demo

    run_demo(home, console)

"""``srs vault``: rotate the vault's master key."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from srs.cli.base_command import CommandContext, UsageError, console, noun_group, print_done
from srs.vault.crypto import MASTER_KEY_ENV, generate_master_key, write_key_file

app = noun_group("Manage the vault's master key.")


@app.command("rotate-key")
def vault_rotate_key(
    ctx: typer.Context,
    new_key_out: Path = typer.Option(
        None,
        help=f"Where to write the new key when the current one comes from {MASTER_KEY_ENV} "
        "(required then; move it into your secret store and delete the file).",
    ),
) -> None:
    """Generate a new master key and re-wrap every dataset key with it (data files untouched)."""
    state: CommandContext = ctx.obj
    new_key = generate_master_key()
    from_env = bool(os.environ.get(MASTER_KEY_ENV))
    if from_env:
        if new_key_out is None:
            raise UsageError(
                f"the master key comes from {MASTER_KEY_ENV}: give --new-key-out FILE to receive "
                "the new key"
            )
        write_key_file(new_key_out, new_key)
    with state.registry.sessions() as session:
        count = state.vault.rotate_master_key(session, actor=state.actor(), new_key=new_key)
    print_done("Rotated", f"the master key: {count} dataset keys re-wrapped")
    console.print(f"  new key id: {new_key.key_id}")
    if from_env:
        console.print(
            f"  set {MASTER_KEY_ENV} to the contents of {new_key_out}, then delete that file"
        )

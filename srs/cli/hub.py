"""``srs hub``: write JupyterHub's configuration for the researchers' servers, and start it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import typer

from srs.cli.base_command import CommandContext, UsageError, console, noun_group

app = noun_group("JupyterHub for researchers: write its config and start it.")


def _write_hub_config(
    state: CommandContext,
    port: int,
    user_home_base: Path | None,
    project_root: Path | None,
    runtime_base: Path | None = None,
) -> Path:
    from srs.hub.config import write_config

    folders = {
        "user_home_base": user_home_base,
        "project_root": project_root,
        "runtime_base": runtime_base,
    }
    return write_config(
        state.require_initialised(),
        state.policies,
        port=port,
        **{name: folder for name, folder in folders.items() if folder is not None},
    )


# The hub uses five ports from --port on (HubPorts), so the last must still be a port.
_HUB_PORT = typer.Option(
    8000,
    min=1,
    max=65531,
    metavar="<int>",
    help="Loopback port researchers connect to (uses 5 from here).",
)
_USER_HOME_BASE = typer.Option(
    None, help="Folder of the researchers' Unix home folders (default /srv/srs/home)."
)
_PROJECT_ROOT = typer.Option(
    None, help="Folder of the projects' shared folders (default /srv/srs/projects)."
)
_RUNTIME_BASE = typer.Option(
    None,
    help="Folder of the kernels' sockets, the environment API's socket and the airlock's server "
    "configuration (default /run/srs; short: socket paths may not exceed 107 bytes).",
)


@app.command("config")
def hub_config(
    ctx: typer.Context,
    port: int = _HUB_PORT,
    user_home_base: Path = _USER_HOME_BASE,
    project_root: Path = _PROJECT_ROOT,
    runtime_base: Path = _RUNTIME_BASE,
) -> None:
    """Write HOME/hub/jupyterhub_config.py and print its path.

    The config signs people in against the registry, runs each researcher's server as their own
    Unix account behind the airlock (no file download, no network from kernels, kernel
    output rate-limited; see README), and starts the environment API (on a Unix socket) and the
    idle culler as hub services.
    """
    console.print(str(_write_hub_config(ctx.obj, port, user_home_base, project_root, runtime_base)))


@app.command("start")
def hub_start(
    ctx: typer.Context,
    port: int = _HUB_PORT,
    user_home_base: Path = _USER_HOME_BASE,
    project_root: Path = _PROJECT_ROOT,
    runtime_base: Path = _RUNTIME_BASE,
) -> None:
    """Write the config and run JupyterHub with it (as root).

    Root, because the hub creates the researchers' Unix accounts and starts their servers as
    them. Refuses to start if the deployment folder is open to other accounts.
    """
    from srs.hub.config import (
        HubPorts,
        check_deployment_private,
        checker_url,
        jupyterhub_program,
        proxy_program,
    )

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    check_deployment_private(deployment)
    proxy_program()
    if os.geteuid() != 0:
        raise UsageError("run `srs hub start` as root: the hub creates researchers' Unix accounts")
    if shutil.which("nft") is None:
        raise UsageError(
            "nft (Debian's nftables) is not installed: researchers' servers cannot be isolated "
            "from the network and would not start; install it (`apt-get install nftables`)"
        )
    config = _write_hub_config(state, port, user_home_base, project_root, runtime_base)
    program = str(jupyterhub_program())
    console.print(f"Starting JupyterHub on http://127.0.0.1:{port}/ with {config}")
    console.print(f"Output checkers sign in there and use {checker_url(HubPorts(port))}")
    sys.stdout.flush()
    os.chdir(config.parent)
    os.execv(program, [program, "-f", str(config)])

"""``srs checker``: serve the output checkers' web UI."""

from __future__ import annotations

import typer

from srs.cli.base_command import CommandContext, noun_group

app = noun_group("The output checkers' web UI.")


@app.command("serve")
def checker_serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8765, min=1, max=65535, metavar="<int>", help="Port."),
    base_url: str = typer.Option(
        None, help="URL prefix, e.g. /ui/ (default /; as a hub service, the hub's prefix)."
    ),
    hub: bool = typer.Option(
        None,
        "--hub/--no-hub",
        help="Sign people in through JupyterHub's OAuth, as the hub's output-checking service "
        "(default: when JupyterHub started this process as a service).",
    ),
) -> None:
    """Serve the output checkers' web UI (registry accounts holding `checker`), signing them in
    with its own form, or through JupyterHub as the hub's service (`srs hub start` runs it so,
    at /services/output-checking/)."""
    from output_checking.web import serve

    state: CommandContext = ctx.obj
    serve(
        state.require_initialised(),
        state.policies,
        host=host,
        port=port,
        base_url=base_url,
        hub=hub,
    )

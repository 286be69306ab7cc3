"""The ``srs`` command: set up a deployment and run its registry, vault, audit log and policies.

Every command prints a clear message and exits 2 on a user mistake (no traceback); ``--help``
works at every level. Who is acting is given by ``--as USERNAME`` or ``SRS_USER``, and every
change is authorised against that account's roles and audited.

This module only assembles the command line; each noun is a module of its own over the one
convention of ``srs.cli.base_command`` (errors and exit codes, printing, opening the deployment):

- top-level commands: ``init`` and ``demo`` (``srs.cli.deployment``), ``simulate`` and ``ingest``
  (``srs.cli.extracts``), ``run`` (``srs.cli.notebooks``);
- command groups, each in the module of its name: ``researcher``, ``project``, ``agreement``,
  ``dataset``, ``audit``, ``vault``, ``policy``, ``link``, ``linked``, ``budget``, ``outputs``,
  ``release``, ``checker``, ``synth``, ``hub``.
"""

from __future__ import annotations

import typer

from srs.cli import (
    agreement,
    audit,
    budget,
    checker,
    dataset,
    deployment,
    extracts,
    hub,
    link,
    linked,
    notebooks,
    outputs,
    policy,
    project,
    release,
    researcher,
    synth,
    vault,
)
from srs.cli.base_command import SRSCommandGroup, main_options

app = typer.Typer(
    cls=SRSCommandGroup,
    help="srs-toolkit: a secure research environment for linked criminal-justice data.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print local variables: they may hold keys
    add_completion=False,
)
app.callback()(main_options)

# In the order `srs --help` lists them.
app.command()(deployment.init)
app.command()(extracts.simulate)
app.command()(extracts.ingest)
app.command("run")(notebooks.run_notebook_command)
app.command()(deployment.demo)

for noun in (
    researcher,
    project,
    agreement,
    dataset,
    audit,
    vault,
    policy,
    link,
    linked,
    budget,
    outputs,
    release,
    checker,
    synth,
    hub,
):
    app.add_typer(noun.app, name=noun.__name__.rpartition(".")[2])


def main() -> None:
    """Entry point of the ``srs`` command."""
    app()


__all__ = ["app", "main"]

"""What every ``srs`` command shares: how errors end a command, how results are printed, and how
the deployment, registry, policies and vault are opened for it.

Every noun module (``srs.cli.researcher``, ``srs.cli.link``, ...) builds on this one, as pip's
commands build on its base command. A user mistake (``SRSError``, ``DisclosureError``) becomes
``error: <message>`` in red on standard error and exit status ``USER_ERROR`` (2), never a
traceback; a check that finds a problem (a broken audit chain, an invalid policy, a tampered
bundle) exits ``CHECK_FAILED`` (1) after naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session
from typer.core import TyperGroup

from disclosure.errors import DisclosureError
from srs.errors import SRSError
from srs.governance import audit as audit_log
from srs.governance.access import authorise
from srs.governance.deployment import HOME_ENV, Deployment
from srs.governance.policy import PolicySet, load_policies
from srs.governance.registry import Registry, open_registry
from srs.vault.store import Vault

USER_ERROR = 2
"""Exit status of a command refused for a user mistake (bad value, no permission, no such thing)."""
CHECK_FAILED = 1
"""Exit status of a check that ran and found a problem (audit chain, policies, release bundle)."""

console = Console(soft_wrap=True)
error_console = Console(stderr=True, soft_wrap=True)
if not console.is_terminal and "COLUMNS" not in os.environ:
    # Piped or logged output (make demo, CI) gets room for audit tables, not rich's 80 columns.
    console.width = 160


class UsageError(SRSError):
    """A command-line value that cannot be used."""


def fail(message: str) -> NoReturn:
    """End a refused command: print ``error: MESSAGE`` (Rich markup allowed) on standard error
    and exit ``USER_ERROR``."""
    error_console.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(USER_ERROR)


def fail_check(*lines: str) -> NoReturn:
    """End a check that ran and found problems: print each line (Rich markup allowed) on
    standard error, naming what is wrong, and exit ``CHECK_FAILED``."""
    for line in lines:
        error_console.print(line, highlight=False)
    raise typer.Exit(CHECK_FAILED)


class SRSCommandGroup(TyperGroup):
    """The top-level group: a user error (SRSError, DisclosureError) raised by any command
    becomes its message through ``fail``, not a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (SRSError, DisclosureError) as exc:
            fail(escape(str(exc)))


def noun_group(help: str) -> typer.Typer:
    """The group of one noun's commands (``srs project ...``): bare, it prints its help."""
    return typer.Typer(help=help, no_args_is_help=True)


@dataclass
class CommandContext:
    """What every command needs, opened lazily: the deployment, registry, policies and vault."""

    home: Path | None
    acting_as: str | None
    _registry: Registry | None = field(default=None, init=False)
    _policies: PolicySet | None = field(default=None, init=False)

    @property
    def deployment(self) -> Deployment:
        return Deployment.from_env(self.home)

    def require_initialised(self) -> Deployment:
        deployment = self.deployment
        if not deployment.is_initialised():
            raise UsageError(
                f"{deployment.home} is not an srs deployment; run `srs init` there first, or "
                f"point --home / {HOME_ENV} at one"
            )
        return deployment

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = open_registry(self.require_initialised().database_url)
            audit_log.use_field_bound(
                self._registry.sessions, self.policies.access.audit_field_max_chars
            )
        return self._registry

    @property
    def policies(self) -> PolicySet:
        if self._policies is None:
            self._policies = load_policies()
        return self._policies

    @property
    def vault(self) -> Vault:
        return Vault(self.require_initialised(), self.policies)

    def actor(self) -> str:
        if not self.acting_as:
            raise UsageError("say who is acting: add --as USERNAME (or set SRS_USER)")
        return self.acting_as

    def authorise_audit_read(self, session: Session) -> None:
        """Refuse unless the acting account may read the audit log; the decision is audited and
        committed before anything is read, so a refusal is on record too."""
        authorise(session, username=self.actor(), action="audit.read", policies=self.policies)
        session.commit()


def main_options(
    ctx: typer.Context,
    home: Path = typer.Option(
        None, "--home", envvar=HOME_ENV, help="Deployment folder (default ./srs-home)."
    ),
    acting_as: str = typer.Option(
        None, "--as", envvar="SRS_USER", help="Username of the person running the command."
    ),
) -> None:
    """srs-toolkit: a secure research environment for linked criminal-justice data."""
    ctx.obj = CommandContext(home=home, acting_as=acting_as)


def parse_date(text: str | None, option: str) -> date | None:
    """An ISO date (YYYY-MM-DD) from the command line, or a clear error naming the option."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} must be a date as YYYY-MM-DD, not {text!r}") from None


def print_done(verb: str, detail: str) -> None:
    """A command's result line: the verb in green (``Stored``, ``Linked``), then what it did."""
    console.print(f"[green]{verb}[/] {detail}")


def print_note(text: str) -> None:
    """A note under a result (a value made missing, a warning), shown as is."""
    console.print(f"  [yellow]note[/] {escape(text)}")


def print_table(table: Table, empty: str | None = None) -> None:
    """A listing; ``empty``, when given, is said instead of a table with no rows."""
    console.print(table if table.row_count or empty is None else empty)


def progress(text: str) -> None:
    """A dim progress line of a long step (simulation, linkage, synthesis)."""
    console.print(f"  [dim]{escape(text)}[/]")

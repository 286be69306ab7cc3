"""``srs researcher``: register accounts, set their passwords, list, lock and unlock them."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from srs.cli.base_command import CommandContext, console, noun_group, parse_date, print_done
from srs.governance.registry import accounts

app = noun_group("Register and manage accounts.")


@app.command("add")
def researcher_add(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Login name: lower-case letters, digits, . _ -"),
    name: str = typer.Option(..., "--name", help="Full name."),
    role: list[str] = typer.Option(
        ..., "--role", help="Role (repeat): admin, steward, researcher, checker, student."
    ),
    email: str = typer.Option(None, help="E-mail address."),
    accreditation_number: str = typer.Option(None, help="Accredited-researcher number."),
    accreditation_expiry: str = typer.Option(
        None, help="YYYY-MM-DD; defaults to the policy's validity from today."
    ),
    training_date: str = typer.Option(None, help="YYYY-MM-DD of safe-researcher training."),
) -> None:
    """Register an account."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        person = accounts.add_researcher(
            session,
            actor=state.actor(),
            policies=state.policies,
            username=username,
            full_name=name,
            roles=role,
            email=email,
            accreditation_number=accreditation_number,
            accreditation_expiry=parse_date(accreditation_expiry, "--accreditation-expiry"),
            training_date=parse_date(training_date, "--training-date"),
        )
    print_done("Registered", f"{person.username} ({', '.join(person.roles)})")


@app.command("set-password")
def researcher_set_password(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Account whose password is set."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input (for scripts)."
    ),
) -> None:
    """Set the password used to sign in to the web front doors (checker UI, JupyterHub).

    An administrator may set anyone's; anyone may set their own. Stored only as an Argon2id
    hash; at least 12 characters.
    """
    from srs.governance.registry.sign_in import set_password

    state: CommandContext = ctx.obj
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    with state.registry.sessions() as session:
        set_password(
            session,
            actor=state.actor(),
            policies=state.policies,
            username=username,
            password=password,
        )
    print_done("Password set", f"for {username}")


@app.command("list")
def researcher_list(ctx: typer.Context) -> None:
    """List accounts with roles, accreditation and lock state."""
    state: CommandContext = ctx.obj
    table = Table("username", "name", "roles", "accreditation", "expires", "training", "locked")
    with state.registry.sessions() as session:
        for p in accounts.list_researchers(session):
            table.add_row(
                p.username,
                p.full_name,
                ", ".join(p.roles),
                p.accreditation_number or "-",
                p.accreditation_expiry.isoformat() if p.accreditation_expiry else "-",
                p.training_date.isoformat() if p.training_date else "-",
                "yes" if p.locked else "no",
            )
    console.print(table)


@app.command("lock")
def researcher_lock(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Account to lock."),
    reason: str = typer.Option("locked by an administrator", help="Why (kept in the audit log)."),
) -> None:
    """Lock an account: it can do nothing until unlocked."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        accounts.set_locked(
            session,
            actor=state.actor(),
            policies=state.policies,
            username=username,
            locked=True,
            reason=reason,
        )
    console.print(f"[yellow]Locked[/] {username}")


@app.command("unlock")
def researcher_unlock(
    ctx: typer.Context, username: str = typer.Argument(..., help="Account to unlock.")
) -> None:
    """Unlock an account and clear its failed-login count."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        accounts.set_locked(
            session, actor=state.actor(), policies=state.policies, username=username, locked=False
        )
    print_done("Unlocked", username)

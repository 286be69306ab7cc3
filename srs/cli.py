"""The ``srs`` command: set up a deployment and run its registry, vault, audit log and policies.

Every command prints a clear message and exits 2 on a user mistake (no traceback); ``--help``
works at every level. Who is acting is given by ``--as USERNAME`` or ``SRS_USER``, and every
change is authorised against that account's roles and audited.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import click
import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from disclosure.errors import DisclosureError
from srs.errors import SRSError
from srs.governance import audit as audit_log
from srs.governance.access import authorise
from srs.governance.deployment import HOME_ENV, Deployment
from srs.governance.policy import PolicySet, check_policy_dir, default_policy_dir, load_policies
from srs.governance.registry import Registry, accounts, open_registry, projects
from srs.vault.crypto import MASTER_KEY_ENV, generate_master_key, write_key_file
from srs.vault.store import Vault

console = Console(soft_wrap=True)
error_console = Console(stderr=True, soft_wrap=True)
if not console.is_terminal and "COLUMNS" not in os.environ:
    # Piped or logged output (make demo, CI) gets room for audit tables, not rich's 80 columns.
    console.width = 160


class SRSCommandGroup(TyperGroup):
    """The top-level group: a user error (SRSError, DisclosureError) becomes a red message and
    exit status 2."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (SRSError, DisclosureError) as exc:
            error_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=SRSCommandGroup,
    help="srs-toolkit: a secure research environment for linked criminal-justice data.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print local variables: they may hold keys
    add_completion=False,
)
researcher_app = typer.Typer(help="Register and manage accounts.", no_args_is_help=True)
project_app = typer.Typer(
    help="Create projects, add members, grant datasets.", no_args_is_help=True
)
dataset_app = typer.Typer(
    help="Store datasets in the vault and see the catalogue.", no_args_is_help=True
)
audit_app = typer.Typer(
    help="Verify, read and export the hash-chained audit log.", no_args_is_help=True
)
vault_app = typer.Typer(help="Manage the vault's master key.", no_args_is_help=True)
policy_app = typer.Typer(help="Validate policy folders.", no_args_is_help=True)
link_app = typer.Typer(
    help="Link persons across sources with Splink (steward zone).", no_args_is_help=True
)
budget_app = typer.Typer(
    help="Privacy budgets of projects (differential privacy).", no_args_is_help=True
)
linked_app = typer.Typer(
    help="Build the de-identified linked research datasets.", no_args_is_help=True
)
outputs_app = typer.Typer(
    help="Review researchers' output requests: queue, show, approve, reject, request changes.",
    no_args_is_help=True,
)
release_app = typer.Typer(
    help="Create, verify and list signed release bundles of approved outputs.",
    no_args_is_help=True,
)
checker_app = typer.Typer(help="The output checkers' web UI.", no_args_is_help=True)
synth_app = typer.Typer(
    help="Synthetic replicas of the linked datasets: build, gate and export them for open use.",
    no_args_is_help=True,
)
for sub, name in (
    (researcher_app, "researcher"),
    (project_app, "project"),
    (dataset_app, "dataset"),
    (audit_app, "audit"),
    (vault_app, "vault"),
    (policy_app, "policy"),
    (link_app, "link"),
    (linked_app, "linked"),
    (budget_app, "budget"),
    (outputs_app, "outputs"),
    (release_app, "release"),
    (checker_app, "checker"),
    (synth_app, "synth"),
):
    app.add_typer(sub, name=name)
hub_app = typer.Typer(
    help="JupyterHub for researchers: write its config and start it.", no_args_is_help=True
)
app.add_typer(hub_app, name="hub")


class UsageError(SRSError):
    """A command-line value that cannot be used."""


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


def parse_date(text: str | None, option: str) -> date | None:
    """An ISO date (YYYY-MM-DD) from the command line, or a clear error naming the option."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} must be a date as YYYY-MM-DD, not {text!r}") from None


@app.callback()
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


# ---------------------------------------------------------------- init
@app.command()
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
    console.print(f"[green]Initialised[/] {deployment.home}")
    console.print(f"  registry: {deployment.database_url}")
    console.print(f"  {key_note}")
    console.print(f"  first administrator: {admin} (use --as {admin})")


# ---------------------------------------------------------------- researchers
@researcher_app.command("add")
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
    console.print(f"[green]Registered[/] {person.username} ({', '.join(person.roles)})")


@researcher_app.command("set-password")
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
    console.print(f"[green]Password set[/] for {username}")


@researcher_app.command("list")
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


@researcher_app.command("lock")
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


@researcher_app.command("unlock")
def researcher_unlock(
    ctx: typer.Context, username: str = typer.Argument(..., help="Account to unlock.")
) -> None:
    """Unlock an account and clear its failed-login count."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        accounts.set_locked(
            session, actor=state.actor(), policies=state.policies, username=username, locked=False
        )
    console.print(f"[green]Unlocked[/] {username}")


# ---------------------------------------------------------------- projects
@project_app.command("create")
def project_create(
    ctx: typer.Context,
    code: str = typer.Argument(..., help="Project code, e.g. P2026-001."),
    title: str = typer.Option(..., help="Title."),
    purpose: str = typer.Option(..., help="Purpose / public benefit statement."),
    legal_basis: str = typer.Option(..., help="Legal basis for processing."),
    start: str = typer.Option(..., help="Start date YYYY-MM-DD."),
    end: str = typer.Option(..., help="End date YYYY-MM-DD."),
    classification: str = typer.Option(
        "confidential", help="Highest dataset classification the project is approved for."
    ),
    dsa_reference: str = typer.Option(None, help="Data-sharing agreement reference."),
    budget_rho: float = typer.Option(
        None,
        help="Privacy budget in zCDP rho, above 0 and at most the policy's max_project_rho "
        "(default: the policy's default_project_rho).",
    ),
) -> None:
    """Register an approved project."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        project = projects.create_project(
            session,
            actor=state.actor(),
            policies=state.policies,
            code=code,
            title=title,
            purpose=purpose,
            legal_basis=legal_basis,
            start_date=parse_date(start, "--start"),
            end_date=parse_date(end, "--end"),
            approved_classification=classification,
            dsa_reference=dsa_reference,
            privacy_budget_rho=budget_rho,
        )
    console.print(
        f"[green]Created[/] project {project.code} ({project.start_date} to {project.end_date}, "
        f"up to {project.approved_classification}, budget rho={project.privacy_budget_rho})"
    )


@project_app.command("add-member")
def project_add_member(
    ctx: typer.Context,
    code: str = typer.Argument(..., help="Project code."),
    username: str = typer.Argument(..., help="Account to add."),
    role: str = typer.Option("researcher", help="lead or researcher."),
) -> None:
    """Add a member to a project."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        projects.add_member(
            session,
            actor=state.actor(),
            policies=state.policies,
            code=code,
            username=username,
            role=role,
        )
    console.print(f"[green]Added[/] {username} to {code} as {role}")


@project_app.command("grant")
def project_grant(
    ctx: typer.Context,
    code: str = typer.Argument(..., help="Project code."),
    dataset: str = typer.Argument(..., help="Dataset name, e.g. linked/journeys."),
) -> None:
    """Grant a project read access to a dataset (stewards only)."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        projects.grant_dataset(
            session, actor=state.actor(), policies=state.policies, code=code, dataset_name=dataset
        )
    console.print(f"[green]Granted[/] {dataset} to {code}")


@project_app.command("list")
def project_list(ctx: typer.Context) -> None:
    """List projects with dates, members and grants."""
    state: CommandContext = ctx.obj
    table = Table("code", "title", "dates", "approved up to", "members", "grants", "budget rho")
    with state.registry.sessions() as session:
        for p in projects.list_projects(session):
            table.add_row(
                p.code,
                p.title,
                f"{p.start_date} to {p.end_date}",
                p.approved_classification,
                ", ".join(f"{m.researcher.username} ({m.role})" for m in p.members) or "-",
                ", ".join(g.dataset_name for g in p.grants if g.revoked_at is None) or "-",
                f"{p.privacy_budget_rho:g}",
            )
    console.print(table)


# ---------------------------------------------------------------- datasets
@dataset_app.command("store")
def dataset_store(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Dataset name, e.g. linked/journeys."),
    path: Path = typer.Argument(..., help="A CSV or Parquet file.", exists=True, dir_okay=False),
    classification: str = typer.Option(
        None, help="public, confidential or highly_confidential (default: by policy)."
    ),
) -> None:
    """Encrypt a CSV or Parquet file into the vault as the next version of NAME (stewards)."""
    state: CommandContext = ctx.obj
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path)
        else:
            raise UsageError(f"{path} is neither .csv nor .parquet")
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    with state.registry.sessions() as session:
        dataset = state.vault.store(
            session, name, frame, actor=state.actor(), classification=classification
        )
    console.print(
        f"[green]Stored[/] {dataset.name}@{dataset.version}: {dataset.row_count} rows, "
        f"{dataset.classification}, {dataset.content_hash}"
    )


@dataset_app.command("list")
def dataset_list(ctx: typer.Context) -> None:
    """List every dataset version in the vault's catalogue."""
    from sqlalchemy import select

    from srs.governance.registry.models import Dataset

    state: CommandContext = ctx.obj
    table = Table("name", "version", "classification", "rows", "stored by", "stored at")
    with state.registry.sessions() as session:
        for d in session.execute(select(Dataset).order_by(Dataset.name, Dataset.version)).scalars():
            table.add_row(
                d.name,
                str(d.version),
                d.classification,
                str(d.row_count),
                d.created_by,
                d.created_at.strftime("%Y-%m-%d %H:%M"),
            )
    console.print(table)


@dataset_app.command("show")
def dataset_show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Dataset name."),
    version: int = typer.Option(None, help="Version (default: newest)."),
) -> None:
    """Show a dataset's catalogue record and data dictionary (never its data)."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        d = state.vault.get(session, name, version)
    console.print(f"[bold]{d.name}[/] version {d.version}")
    console.print(f"  classification: {d.classification}")
    console.print(f"  rows: {d.row_count}   content: {d.content_hash}")
    console.print(f"  stored by {d.created_by} at {d.created_at.isoformat()}")
    table = Table("variable", "type", "description")
    for column in d.data_dictionary:
        table.add_row(column.get("name", ""), column.get("type", ""), column.get("description", ""))
    console.print(table)


# ---------------------------------------------------------------- audit
@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Check the hash chain; exits 1 and names the first bad event if anything was altered."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        report = audit_log.verify_chain(session)
    if report.intact:
        console.print(f"[green]Audit log intact[/]: {report.events_checked} events verified")
        return
    error_console.print(
        f"[red]Audit log broken at event {report.first_bad_seq}[/]: {report.problem} "
        f"({report.events_checked} events verified before it)"
    )
    raise typer.Exit(1)


@audit_app.command("tail")
def audit_tail(
    ctx: typer.Context, count: int = typer.Option(20, "-n", "--count", min=1, help="How many.")
) -> None:
    """Show the most recent audit events."""
    state: CommandContext = ctx.obj
    table = Table("seq", "when (UTC)", "actor", "action", "target", "outcome", "reason")
    with state.registry.sessions() as session:
        authorise(session, username=state.actor(), action="audit.read", policies=state.policies)
        session.commit()
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


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    out: Path = typer.Option(None, "--out", help="File to write (default: standard output)."),
) -> None:
    """Export every audit event as JSON Lines, in sequence order."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        authorise(session, username=state.actor(), action="audit.read", policies=state.policies)
        session.commit()
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
    console.print(f"[green]Exported[/] {count} events to {out}")


# ---------------------------------------------------------------- vault
@vault_app.command("rotate-key")
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
    console.print(f"[green]Rotated[/] the master key: {count} dataset keys re-wrapped")
    console.print(f"  new key id: {new_key.key_id}")
    if from_env:
        console.print(
            f"  set {MASTER_KEY_ENV} to the contents of {new_key_out}, then delete that file"
        )


# ---------------------------------------------------------------- policy
@policy_app.command("check")
def policy_check(
    directory: Path = typer.Argument(None, help="Policy folder (default: the deployment's)."),
) -> None:
    """Validate every policy file in a folder; exits 1 listing each problem."""
    from srs.pipeline.ingest import known_sources, load_dictionary
    from srs.pipeline.linkage import load_linkage_settings
    from srs.pipeline.names import read_nicknames
    from srs.pipeline.offences import load_offences

    folder = directory or default_policy_dir()
    problems: list[SRSError] = list(check_policy_dir(folder))
    if folder.is_dir():
        loaders = [load_offences, load_linkage_settings, read_nicknames]
        loaders += [lambda f, s=s: load_dictionary(s, f) for s in known_sources(folder)]
        for loader in loaders:
            try:
                loader(folder)
            except SRSError as exc:
                problems.append(exc)
    if not problems:
        console.print(f"[green]Policies valid[/]: {folder}")
        return
    for problem in problems:
        error_console.print(f"[red]invalid[/] {problem}")
    error_console.print(f"{len(problems)} problem(s) in {folder}")
    raise typer.Exit(1)


# ---------------------------------------------------------------- data pipeline
def _progress(text: str) -> None:
    console.print(f"  [dim]{escape(text)}[/]")


@app.command()
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
) -> None:
    """Simulate a population and the seven agency extracts of its journeys (with ground truth)."""
    import time

    from srs.pipeline.simulation import simulate as run_simulation
    from srs.pipeline.simulation import write_simulation

    start = time.perf_counter()
    result = run_simulation(persons, seed, progress=_progress, noise=noise)
    paths = write_simulation(result, out, file_format, progress=_progress)
    table = Table("source", "records", "file")
    for source, frame in result.extracts.items():
        table.add_row(source, f"{len(frame):,}", str(paths[source]))
    console.print(table)
    console.print(
        f"[green]Simulated[/] {persons:,} persons (seed {seed}, {noise} noise) in {time.perf_counter() - start:.1f} s; "
        f"ground truth in {paths['ground_truth']} (the pipeline never reads it)"
    )


@app.command()
def ingest(
    ctx: typer.Context,
    source: str = typer.Argument(
        ..., help="Source name, e.g. police_arrests (see policies/data_dictionaries)."
    ),
    path: Path = typer.Argument(..., help="The extract: CSV or Parquet."),
    rejects: Path = typer.Option(
        None, help="Rejects file (default: FILE.rejects.csv beside the extract)."
    ),
) -> None:
    """Validate an extract against its data dictionary and store the accepted rows (stewards)."""
    from srs.pipeline.offences import load_offences
    from srs.pipeline.stewardship import ingest_into_vault

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
        )
    console.print(
        f"[green]Ingested[/] {source}: {result.rows_in:,} rows in = {result.rows_accepted:,} accepted "
        f"+ {result.rows_rejected:,} rejected; stored as {stored.name}@{stored.version}"
    )
    if result.rows_rejected:
        where = rejects or path.with_name(path.name + ".rejects.csv")
        console.print(f"  rejects with reasons: {where}")
        for reason in result.rejects["reasons"].head(5):
            console.print(f"  [yellow]-[/] {escape(reason)}")


_THRESHOLD_HELP = "Match probability at or above which two records are one person (0 < P < 1; default: the policy's match_threshold)."
_SETTINGS_HELP = "YAML file overriding keys of policies/linkage.yaml (e.g. match_threshold, training: {seed: 7}); unknown keys are refused."


def _linkage_settings(
    policy_dir: Path | None,
    settings_file: Path | None,
    threshold: float | None = None,
    link_type: str | None = None,
):
    """The policy's linkage settings, then a settings file's keys, then the options'."""
    from srs.pipeline.linkage import load_linkage_settings, override_settings, read_settings_file

    settings = load_linkage_settings(policy_dir)
    if settings_file is not None:
        if not settings_file.is_file():
            raise UsageError(f"{settings_file}: no such settings file")
        settings = read_settings_file(settings, settings_file)
    if threshold is not None:
        if not 0 < threshold < 1:
            raise UsageError(
                f"--threshold {threshold} is not a probability strictly between 0 and 1; give "
                "e.g. 0.9"
            )
        settings = override_settings(settings, {"match_threshold": threshold}, "--threshold")
    if link_type is not None:
        settings = override_settings(settings, {"link_type": link_type}, "--link-type")
    return settings


@link_app.command("run")
def link_run(
    ctx: typer.Context,
    review_out: Path = typer.Option(
        None,
        help="Clerical-review sample of borderline pairs (default: HOME/steward/clerical_review.csv).",
    ),
    threshold: float = typer.Option(None, help=_THRESHOLD_HELP),
    settings_file: Path = typer.Option(None, "--settings", help=_SETTINGS_HELP),
) -> None:
    """Link and deduplicate persons across every ingested source; store the lookup (stewards)."""
    from srs.pipeline.stewardship import PERSON_LOOKUP, link_in_vault

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    settings = _linkage_settings(state.policies.source_dir, settings_file, threshold)
    review_out = review_out or deployment.home / "steward" / "clerical_review.csv"
    with state.registry.sessions() as session:
        result = link_in_vault(
            session,
            state.vault,
            actor=state.actor(),
            settings=settings,
            clerical_path=review_out,
            progress=_progress,
        )
    clusters = result.lookup["cluster_id"].nunique()
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    console.print(
        f"[green]Linked[/] {len(result.records):,} records into {clusters:,} persons ({seconds})"
    )
    console.print(f"  lookup stored as {PERSON_LOOKUP}; clerical review sample: {review_out}")
    _print_linkage_notes(result.notes)


@link_app.command("files")
def link_files(
    tables: list[str] = typer.Argument(
        ..., help="NAME=PATH for each CSV or Parquet table (two or more, or one to deduplicate)."
    ),
    mapping: Path = typer.Option(..., help="YAML mapping each table's columns to linkage roles."),
    out: Path = typer.Option(
        ..., help="Where to write the lookup (CSV: source, record_id, cluster_id)."
    ),
    threshold: float = typer.Option(None, help=_THRESHOLD_HELP),
    link_type: str = typer.Option(
        None,
        help="link_only (pairs across tables only; two or more tables), dedupe_only or "
        "link_and_dedupe (every pair, within and across tables). Default: the policy's "
        "link_type, dedupe_only, which compares every pair.",
    ),
    settings_file: Path = typer.Option(None, "--settings", help=_SETTINGS_HELP),
) -> None:
    """Link any tables outside the vault, given a column mapping (see README)."""
    from srs.pipeline.linkage import link_tables, read_mapping_file

    settings = _linkage_settings(None, settings_file, threshold, link_type)
    frames = _linkage_tables(tables)
    result = link_tables(frames, read_mapping_file(mapping), settings, _progress)
    result.lookup.to_csv(out, index=False)
    console.print(
        f"[green]Linked[/] {len(result.records):,} records into {result.lookup['cluster_id'].nunique():,} clusters; lookup: {out}"
    )
    _print_linkage_notes(result.notes)


def _print_linkage_notes(notes: list[str]) -> None:
    """Values made missing in standardisation, then Splink's warnings, under the summary."""
    for note in notes:
        console.print(f"  [yellow]note[/] {escape(note)}")


def _read_linkage_table(file: Path) -> pd.DataFrame:
    """One table for `link files`, `link analyse` and `link evaluate`, every CSV value as text
    (blanks stay blank, not NaN-guessed). The delimiter is the comma, or else the tab,
    semicolon or bar the header line holds; spaces after a delimiter are dropped.
    """
    if file.stat().st_size == 0:
        raise UsageError(f"{file} is empty (0 bytes); a table needs a header row and records")
    try:
        if file.suffix == ".parquet":
            return pd.read_parquet(file)
        return pd.read_csv(
            file,
            sep=_csv_delimiter(file),
            skipinitialspace=True,  # "a, b, c", as FEBRL writes, headers and values alike
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8",
        )
    except UnicodeDecodeError:
        raise UsageError(_not_utf8_message(file)) from None
    except (OSError, ValueError) as exc:  # pandas' parser and Arrow errors are ValueErrors
        raise UsageError(f"cannot read {file} as a {file.suffix or 'CSV'} table: {exc}") from exc


def _csv_delimiter(file: Path) -> str:
    """The comma, unless the header line has none and holds a tab, semicolon or bar
    (spreadsheets save "CSV" with semicolons where the comma is the decimal mark)."""
    with file.open("rb") as handle:
        header = handle.readline(1 << 16).decode("utf-8", errors="replace")
    if "," in header:
        return ","
    found = [d for d in ("\t", ";", "|") if d in header]
    return max(found, key=header.count) if found else ","


def _not_utf8_message(file: Path) -> str:
    """Where a text file stops being UTF-8, and what to do: guessing another encoding
    silently would turn José into JosÃ© or worse, and names are what linkage compares."""
    with file.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = f"byte 0x{line[exc.start]:02x} on line {number:,}"
                break
        else:
            byte = "a byte"
    return (
        f"{file} is not UTF-8 text ({byte} is not UTF-8; Latin-1 or Windows-1252 perhaps); "
        "save it as UTF-8 (in Excel: Save As 'CSV UTF-8') and run again"
    )


@link_app.command("evaluate")
def link_evaluate(
    ctx: typer.Context,
    truth: Path = typer.Option(
        ..., help="Ground truth (source, record_id, person_id), CSV or Parquet."
    ),
    lookup: Path = typer.Option(
        None, help="A lookup file from `srs link files` (default: the vault's)."
    ),
) -> None:
    """Report precision, recall and F1 of the linkage against a ground truth."""
    from srs.pipeline.linkage import evaluate
    from srs.pipeline.stewardship import PERSON_LOOKUP

    def read(path: Path) -> pd.DataFrame:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        return _read_linkage_table(path)

    state: CommandContext = ctx.obj
    if lookup is None:
        with state.registry.sessions() as session:
            linked = state.vault.read_steward_zone(session, PERSON_LOOKUP, actor=state.actor())
    else:
        linked = read(lookup)
    # The vault's lookup lacks the rows ingest rejected, which the truth still holds.
    quality = evaluate(linked, read(truth), leave_out_unlinked=lookup is None)
    left_out = quality.truth_records_left_out
    table = Table("measure", "value")
    for label, value in (
        ("records", f"{quality.records:,}"),
        *([("truth records not in the lookup", f"{left_out:,}")] if left_out else []),
        ("precision", f"{quality.precision:.4f}"),
        ("recall", f"{quality.recall:.4f}"),
        ("F1", f"{quality.f1:.4f}"),
        ("true pairs", f"{quality.true_pairs:,}"),
        ("predicted pairs", f"{quality.predicted_pairs:,}"),
        ("clusters wrongly merged", f"{quality.wrongly_merged_clusters:,}"),
        ("persons wrongly split", f"{quality.wrongly_split_persons:,}"),
    ):
        table.add_row(label, value)
    console.print(table)


@link_app.command("analyse")
def link_analyse(
    ctx: typer.Context,
    tables: list[str] = typer.Argument(
        None,
        help="NAME=PATH for each CSV or Parquet table (as for `link files`); none: the vault's "
        "ingested sources (stewards).",
    ),
    mapping: Path = typer.Option(
        None, help="YAML mapping each table's columns to linkage roles (with tables)."
    ),
    truth: Path = typer.Option(
        None,
        help="Ground truth (source, record_id, person_id), CSV or Parquet: adds blocking recall, "
        "the share of true pairs the rules compare.",
    ),
    link_type: str = typer.Option(
        None, help="link_only, dedupe_only or link_and_dedupe (default: the policy's)."
    ),
    settings_file: Path = typer.Option(None, "--settings", help=_SETTINGS_HELP),
) -> None:
    """Count the comparisons each blocking rule makes, alone and cumulatively, against the
    comparison budget; with --truth, the blocking recall (Splink's blocking analysis)."""
    from srs.pipeline.linkage import (
        identifier_comparisons,
        mapping_from_dictionary,
        read_mapping_file,
        standardise,
    )
    from srs.pipeline.linkage.blocking import analyse_blocking, rule_text

    state: CommandContext = ctx.obj
    if tables:
        if mapping is None:
            raise UsageError("give --mapping with the tables (see `srs link files --help`)")
        policy_dir = None
        frames = _linkage_tables(tables)
        mappings = read_mapping_file(mapping)
    else:
        from srs.pipeline.ingest import load_dictionary
        from srs.pipeline.stewardship import read_sources

        if mapping is not None:
            raise UsageError("--mapping is for tables given as NAME=PATH; give them too")
        state.require_initialised()
        policy_dir = state.policies.source_dir
        with state.registry.sessions() as session:
            frames = read_sources(session, state.vault, actor=state.actor())
        mappings = {s: mapping_from_dictionary(load_dictionary(s, policy_dir)) for s in frames}
    truth_frame = None
    if truth is not None:
        if not truth.is_file():
            raise UsageError(f"{truth}: no such file")
        truth_frame = _read_linkage_table(truth)
    settings = _linkage_settings(policy_dir, settings_file, link_type=link_type)
    notes: list[str] = []
    records = standardise(frames, mappings, settings, notes)
    settings = identifier_comparisons(settings, mappings, records)
    analysis = analyse_blocking(records, settings, truth_frame)
    columns = ["rule", "comparisons", "new", "cumulative", "largest block"]
    if analysis.true_pairs is not None:
        columns += ["recall", "cumulative recall"]
    table = Table(*columns)
    about = "~" if analysis.estimated else ""
    for rule in analysis.rules:
        block = (
            f"{rule.largest_block} ({rule.largest_block_records:,})"
            if rule.largest_block_records > 1
            else "-"
        )
        row = [
            rule_text(rule.rule),
            f"{rule.comparisons:,}",
            f"{about}{rule.new_comparisons:,}",
            f"{about}{rule.cumulative:,}",
            block,
        ]
        if analysis.true_pairs is not None:
            row += [f"{rule.recall:.4f}", f"{rule.cumulative_recall:.4f}"]
        table.add_row(*map(escape, row))
    console.print(table)
    per_record = analysis.comparisons / analysis.records
    console.print(
        f"{analysis.records:,} records ({analysis.link_type}): {about}{analysis.comparisons:,} "
        f"comparisons, {per_record:.1f} per record"
        + (" (cumulative counts estimated by Splink from a sample)" if analysis.estimated else "")
    )
    over = analysis.over_budget()
    if over is None:
        console.print(f"[green]within the comparison budget[/] of {analysis.budget:,}")
    else:
        console.print(
            f"[red]over the comparison budget[/] of {analysis.budget:,} from rule "
            f"{escape(rule_text(over.rule))}: `srs link` would refuse these rules"
        )
    if analysis.true_pairs is not None:
        console.print(
            f"blocking recall {analysis.rules[-1].cumulative_recall:.4f} of "
            f"{analysis.true_pairs:,} true pairs"
        )
        if analysis.records_without_truth:
            notes.append(
                f"{analysis.records_without_truth:,} record(s) have no row in the ground truth "
                "and are left out of the recall"
            )
    _print_linkage_notes(notes)


def _linkage_tables(items: list[str]) -> dict[str, pd.DataFrame]:
    """Tables given as NAME=PATH, read as `link files` reads them."""
    frames = {}
    for item in items:
        name, _, location = item.partition("=")
        if not name or not location:
            raise UsageError(f"give tables as NAME=PATH, not {item!r}")
        if name in frames:
            raise UsageError(f"table name {name!r} is given twice; give each table its own name")
        file = Path(location)
        if not file.is_file():
            raise UsageError(f"{file}: no such file")
        frames[name] = _read_linkage_table(file)
    return frames


@linked_app.command("build")
def linked_build(ctx: typer.Context) -> None:
    """Build linked/persons, linked/journeys, linked/victims, linked/reoffending (stewards)."""
    from srs.pipeline.offences import load_offences
    from srs.pipeline.stewardship import publish_linked_datasets

    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        linked = publish_linked_datasets(
            session,
            state.vault,
            actor=state.actor(),
            offences=load_offences(state.policies.source_dir),
        )
    table = Table("dataset", "rows", "columns")
    for name, frame in linked.tables.items():
        table.add_row(name, f"{len(frame):,}", str(frame.shape[1]))
    console.print(table)
    for key, value in linked.report.items():
        if not key.startswith("rows_"):
            console.print(f"  [yellow]note[/] {key}: {value}")


@budget_app.command("show")
def budget_show(
    ctx: typer.Context, project: str = typer.Argument(..., help="Project code.")
) -> None:
    """Show a project's privacy budget: total, spent and remaining (rho and epsilon), the delta
    spent releasing non-public keys, each researcher's share, and every spend.

    Admins, stewards and checkers (audit.read) may see any project's budget; a researcher may
    see the budget of a project they can query.
    """
    from sqlalchemy import select

    from srs.governance.budget import FEMTO, NANO, budget_state, spends
    from srs.governance.registry.models import Researcher

    state: CommandContext = ctx.obj
    username = state.actor()
    with state.registry.sessions() as session:
        person = session.execute(
            select(Researcher).where(Researcher.username == username)
        ).scalar_one_or_none()
        roles = person.roles if person else []
        may_audit = any(state.policies.access.allows(role, "audit.read") for role in roles)
        authorise(
            session,
            username=username,
            action="audit.read" if may_audit else "output.create",
            policies=state.policies,
            project_code=None if may_audit else project,
        )
        session.commit()
        budget = budget_state(session, project, state.policies)
        rows = spends(session, project)
    queries = f"quer{'y' if budget.spends == 1 else 'ies'}"
    console.print(
        f"[bold]{project}[/] budget rho {budget.total_rho:g} (epsilon {budget.epsilon_total:.3g} "
        f"at delta {budget.delta:g}): spent {budget.spent_rho:.6g} (epsilon "
        f"{budget.epsilon_spent:.3g}) in {budget.spends} {queries}, remaining "
        f"{budget.remaining_rho:.6g}; key-release delta spent {budget.key_release_delta_spent:g} "
        f"of {budget.key_release_delta_total:g}"
    )
    for researcher, rho in sorted(budget.by_researcher.items()):
        console.print(f"  {researcher}: rho {rho:.6g}")
    table = Table("#", "when (UTC)", "researcher", "rho", "delta", "purpose")
    for spend in rows:
        table.add_row(
            str(spend.id),
            spend.created_at.strftime("%Y-%m-%d %H:%M"),
            spend.researcher,
            f"{spend.nano_rho / NANO:.6g}",
            f"{spend.femto_delta / FEMTO:g}",
            spend.purpose,
        )
    console.print(table)


# ---------------------------------------------------------------- outputs (checkers)
@outputs_app.command("queue")
def outputs_queue(
    ctx: typer.Context,
    all_states: bool = typer.Option(
        False, "--all", help="Also list decided, released and withdrawn requests."
    ),
) -> None:
    """List the release requests you may review (never your own projects')."""
    from output_checking.workflow import checker_queue

    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        entries = checker_queue(
            session, checker=state.actor(), policies=state.policies, include_decided=all_states
        )
        session.commit()
    table = Table("request", "project", "author", "title", "status", "outputs", "reviews", "yours")
    needed = state.policies.release.independent_reviews
    for entry in entries:
        table.add_row(
            str(entry.request_id),
            entry.project,
            entry.author,
            escape(entry.title),
            entry.status,
            str(entry.outputs),
            f"{len(entry.reviewers)}/{needed}",
            "done" if entry.your_review_complete else "to do",
        )
    console.print(table if entries else "No requests await your review.")


@outputs_app.command("show")
def outputs_show(
    ctx: typer.Context, request_id: int = typer.Argument(..., help="Release request number.")
) -> None:
    """Show a request: each output with its evidence, CSV summaries, votes (once unblinded),
    comments, the exception justification and the history."""
    from output_checking.workflow import request_view

    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        view = request_view(
            session, request_id=request_id, viewer=state.actor(), policies=state.policies
        )
        session.commit()
        request = view.request
        console.print(
            f"[bold]Request #{request.id}[/] {escape(request.title)} — project "
            f"{request.project.code}, by {request.author}, [bold]{request.status}[/] "
            f"(round {request.review_round}; reviews {len(view.reviewers)}/{view.reviews_needed}"
            f"{', blinded' if view.blinded else ''})"
        )
        for item in view.outputs:
            _print_output(item, state.policies)
        for comment in view.comments:
            console.print(
                f"  comment by {comment.author} ({comment.visibility}): {escape(comment.text)}"
            )
        if view.history:
            console.print("[bold]History[/]")
            for event in view.history:
                console.print(
                    f"  {event.occurred_at[:19]} {event.actor} {event.action} {event.outcome}"
                    + (f": {escape(event.reason)}" if event.reason else "")
                )


def _print_output(item, policies: PolicySet) -> None:
    output = item.output
    console.print(
        f"\n[bold]Output #{output.id}[/] {escape(output.name)} ({output.kind}"
        f"{', differentially private' if output.differentially_private else ''}) — {output.status}"
    )
    if output.context:
        console.print(f"  context: {escape(output.context)}")
    if output.controls:
        console.print(f"  controls: {escape(output.controls)}")
    if output.exception_justification:
        console.print(f"  [yellow]exception requested:[/] {escape(output.exception_justification)}")
    colours = {"ok": "green", "review": "yellow", "fail": "red"}
    for check in output.checks or []:
        colour = colours.get(check.get("status"), "white")
        console.print(
            f"  [{colour}]{check.get('status', '?')}[/] {check.get('check')}: "
            f"{escape(str(check.get('message', '')))}"
        )
        for finding in (check.get("evidence") or {}).get("findings", [])[:10]:
            console.print(f"      {escape(str(finding.get('message', finding)))}")
    from output_checking.summaries import CSVSummaryError, summarise_csv

    for stored in output.files:
        console.print(f"  file {stored.name} ({stored.size:,} bytes, sha256 {stored.sha256[:16]}…)")
        if not stored.name.endswith(".csv"):
            continue
        try:
            summary = summarise_csv(stored.content, policies.sdc.active)
        except CSVSummaryError as exc:
            console.print(f"      [yellow]{escape(str(exc))}[/]")
            continue
        for column in summary.columns:
            if column.kind == "numeric":
                console.print(
                    f"      {escape(column.name)}: min {column.minimum}, min excl. 0 "
                    f"{column.minimum_nonzero}, max {column.maximum}, sum {column.total}, "
                    f"{column.redacted} redacted, {column.rounding_note()}"
                )
            else:
                console.print(f"      {escape(column.name)}: {column.distinct} distinct values")
    if item.your_vote is not None:
        console.print(f"  your vote: {item.your_vote.decision}")
    for other in item.votes:
        console.print(f"  {other.reviewer} voted {other.decision}")
    if item.conflict:
        console.print("  [red]reviewers disagree on this output[/]")
    for comment in item.comments:
        console.print(
            f"  comment by {comment.author} ({comment.visibility}): {escape(comment.text)}"
        )


def _vote(ctx, output_id: int, decision: str, comment: str, visible: bool, override: str | None):
    from output_checking.workflow import get_request, vote

    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        cast = vote(
            session,
            output_id=output_id,
            checker=state.actor(),
            policies=state.policies,
            decision=decision,
            comment=comment or "",
            comment_visibility="researcher" if visible else "checkers",
            override_reason=override,
        )
        request = get_request(session, cast.request_id)
        console.print(
            f"[green]Recorded[/] {decision.replace('_', ' ')} on output #{output_id}; request "
            f"#{request.id} is now {request.status}"
        )


_COMMENT = typer.Option("", "--comment", help="Why: a note for the other checker (and researcher).")
_VISIBLE = typer.Option(
    False, "--visible-to-researcher", help="Let the researcher read the comment once decided."
)


@outputs_app.command("approve")
def outputs_approve(
    ctx: typer.Context,
    output_id: int = typer.Argument(..., help="Output number (see `srs outputs show`)."),
    comment: str = _COMMENT,
    visible: bool = _VISIBLE,
    override_differencing: str = typer.Option(
        None, help="Why a differencing finding against earlier releases is safe."
    ),
) -> None:
    """Vote to approve an output of a request you review."""
    _vote(ctx, output_id, "approve", comment, visible, override_differencing)


@outputs_app.command("reject")
def outputs_reject(
    ctx: typer.Context,
    output_id: int = typer.Argument(..., help="Output number."),
    comment: str = typer.Option(..., "--comment", help="Why it cannot be released."),
    visible: bool = _VISIBLE,
) -> None:
    """Vote to reject an output (it will never be released)."""
    _vote(ctx, output_id, "reject", comment, visible, None)


@outputs_app.command("request-changes")
def outputs_request_changes(
    ctx: typer.Context,
    output_id: int = typer.Argument(..., help="Output number."),
    comment: str = typer.Option(..., "--comment", help="What the researcher should change."),
) -> None:
    """Vote to send an output back to its researcher (the comment is visible to them)."""
    _vote(ctx, output_id, "request_changes", comment, True, None)


@outputs_app.command("comment")
def outputs_comment(
    ctx: typer.Context,
    request_id: int = typer.Argument(..., help="Release request number."),
    text: str = typer.Argument(..., help="The comment."),
    visible: bool = _VISIBLE,
) -> None:
    """Comment on a request, for checkers only unless --visible-to-researcher."""
    from output_checking.workflow import comment_on_request

    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        comment_on_request(
            session,
            request_id=request_id,
            actor=state.actor(),
            policies=state.policies,
            text=text,
            visibility="researcher" if visible else "checkers",
        )
    console.print(f"[green]Commented[/] on request #{request_id}")


# ---------------------------------------------------------------- releases
@release_app.command("create")
def release_create(
    ctx: typer.Context, request_id: int = typer.Argument(..., help="Approved request number.")
) -> None:
    """Sign and publish an approved request's approved outputs as a release bundle."""
    from output_checking.release import create_release, public_key_path, releases_dir

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    with state.registry.sessions() as session:
        release = create_release(
            session,
            request_id=request_id,
            actor=state.actor(),
            policies=state.policies,
            deployment=deployment,
        )
    console.print(
        f"[green]Released[/] request #{request_id}: {releases_dir(deployment) / release.bundle_name}"
        f" ({release.file_count} files, manifest sha256 {release.manifest_sha256})"
    )
    console.print(
        f"  signing key fingerprint {release.signing_key_fingerprint}; recipients verify with "
        f"`srs release verify BUNDLE --public-key {public_key_path(deployment)}`"
    )


@release_app.command("verify")
def release_verify(
    ctx: typer.Context,
    bundle: Path = typer.Argument(..., help="The bundle folder."),
    public_key: Path = typer.Option(
        None, help="Trusted public key (PEM); default: this deployment's release-signing.pub."
    ),
    audit: bool = typer.Option(
        False,
        "--audit",
        help="Also prove the bundle is what was reviewed: verify the audit chain and check every "
        "event the manifest names (creation, submission, approvals, release) against it "
        "(audit.read; needs the deployment).",
    ),
) -> None:
    """Check a bundle's Ed25519 signature and every file's SHA-256; name any tampered, missing or
    added file. With --audit, also check it against the hash-chained audit log. Exits 0 when
    valid, 1 when not."""
    from output_checking.release import check_release_against_audit, public_key_path, verify_release

    state: CommandContext = ctx.obj
    if public_key is None:
        public_key = public_key_path(state.require_initialised())
    report = verify_release(bundle, public_key)
    if not report.valid:
        error_console.print(f"[red]{escape(report.summary())}[/]", highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]{escape(report.summary())}[/]")
    manifest = report.manifest or {}
    console.print(
        f"  {manifest.get('release')}: project {manifest.get('project')}, released by "
        f"{manifest.get('released_by')} at {manifest.get('released_at')}"
    )
    if not audit:
        return
    with state.registry.sessions() as session:
        authorise(session, username=state.actor(), action="audit.read", policies=state.policies)
        session.commit()
        problems = check_release_against_audit(session, bundle, public_key, state.policies)
    if problems:
        error_console.print(
            "[red]NOT PROVEN against the audit log:[/]\n"
            + "\n".join(f"  {escape(p)}" for p in problems),
            highlight=False,
        )
        raise typer.Exit(1)
    outputs = manifest.get("outputs", [])
    console.print(
        f"[green]matches the audit log[/]: {len(outputs)} output(s) as created, submitted and "
        "approved, and the release event records this manifest"
    )


@release_app.command("list")
def release_list(
    ctx: typer.Context, project: str = typer.Option(None, help="Only this project's releases.")
) -> None:
    """List releases (checkers, admins and stewards: audit.read)."""
    from sqlalchemy import select

    from output_checking.release import list_releases, recover_releases
    from srs.governance.registry.models import Project

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    with state.registry.sessions() as session:
        authorise(session, username=state.actor(), action="audit.read", policies=state.policies)
        session.commit()
        for note in recover_releases(session, deployment):
            console.print(f"[yellow]recovered:[/] {note}")
        releases = list_releases(session, project)
        codes = {p.id: p.code for p in session.execute(select(Project)).scalars()}
    table = Table(
        "bundle", "project", "request", "released by", "when (UTC)", "files", "manifest sha256"
    )
    for release in releases:
        table.add_row(
            release.bundle_name,
            codes.get(release.project_id, "?"),
            str(release.request_id),
            release.created_by,
            release.created_at.strftime("%Y-%m-%d %H:%M"),
            str(release.file_count),
            release.manifest_sha256[:16] + "…",
        )
    console.print(table if releases else "No releases yet.")


# ---------------------------------------------------------------- checker UI
@checker_app.command("serve")
def checker_serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8765, help="Port."),
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


# ---------------------------------------------------------------- synthetic replicas
@synth_app.command("build")
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
    _progress(f"building a {synthesizer} replica of the linked datasets")
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
    console.print(f"[green]Built[/] {escape(built.result.summary())}")
    console.print(f"  stored as {', '.join(built.stored)}; report {built.report}")


@synth_app.command("dp")
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
    from srs.research.session import session as start_session

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
    _progress(f"synthesising {rows:,} DP rows of {dataset} with {algorithm.upper()}")
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
    console.print(
        f"[green]Recorded[/] output #{replica.attrs['srs_output_id']} "
        f"{escape(replica.attrs['srs_output_name'])}: {len(replica):,} rows of "
        f"{', '.join(wanted)}; spend #{paid['spend_id']} rho {paid['rho']:g} "
        f"(epsilon {paid['epsilon']:.3g}); {paid['remaining_rho']:g} rho left"
    )
    console.print("  submit it for output checking with your other outputs to take it out")


@synth_app.command("export")
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
    console.print(
        f"[green]Exported[/] {exported.path}: {exported.rows:,} synthetic rows in "
        f"{exported.tables} tables; package validates against its schema: {exported.valid}"
    )
    console.print(f'  load it with: srs.open_data("cross_justice", path="{exported.path}")')


# ---------------------------------------------------------------- JupyterHub
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


_HUB_PORT = typer.Option(8000, help="Loopback port researchers connect to (uses 5 from here).")
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


@hub_app.command("config")
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


@hub_app.command("start")
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


# ---------------------------------------------------------------- notebooks
@app.command("run")
def run_notebook_command(
    ctx: typer.Context,
    notebook: Path = typer.Argument(
        ..., help="The notebook (.ipynb) to run, e.g. notebooks/remand.ipynb."
    ),
    on: str = typer.Option(
        ..., "--on", help="synthetic (the deployment's replica) or vault (the project's data)."
    ),
    project: str = typer.Option(
        None,
        "--project",
        envvar="SRS_PROJECT",
        help="The project to work in (default SRS_PROJECT).",
    ),
    out: Path = typer.Option(
        None, "--out", help="Folder for the executed notebook (default HOME/runs/<project>/)."
    ),
    parameter: list[str] = typer.Option(
        None, "-p", "--parameter", help="A notebook parameter KEY=VALUE (repeatable)."
    ),
) -> None:
    """Run a notebook with papermill as you, in PROJECT, on the synthetic replica or the vault
    data (its `source` parameter), save the executed notebook, and report the outputs it recorded
    into the project's queue and its release request. A failing cell exits 2 with its error (the
    executed notebook is still saved)."""
    from srs.research.notebook_runs import NotebookRunError, parse_parameter, run_notebook

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    if not project:
        raise NotebookRunError(
            "say which project to work in: add --project CODE (or set SRS_PROJECT)"
        )
    parameters = dict(parse_parameter(text) for text in parameter or [])
    user = state.actor()
    console.print(f"Running {escape(str(notebook))} on {on} data as {user} in {project}")
    run = run_notebook(
        deployment,
        state.policies,
        notebook=notebook,
        source=on,
        user=user,
        project=project,
        out=out,
        parameters=parameters,
        progress=console.is_terminal,
    )
    console.print(f"Executed notebook: {run.executed} ({run.seconds:.1f} s)")
    for output in run.outputs:
        console.print(f"  recorded {escape(str(output))}")
    if not run.outputs:
        console.print("  it recorded no outputs")
    for request_id in run.request_ids:
        console.print(f"  release request #{request_id} is in the checkers' queue")
    if run.error:
        error_console.print(
            f"[red]error:[/] the notebook failed at {escape(run.error)}; see {run.executed}",
            highlight=False,
        )
        raise typer.Exit(2)
    console.print(f"[green]Ran[/] {escape(notebook.name)} on {on} data")


# ---------------------------------------------------------------- demo
@app.command()
def demo(
    home: Path = typer.Option(
        Path("demo-home"), help="Folder for the demo deployment (recreated each run)."
    ),
) -> None:
    """Run the end-to-end demonstration on simulated data and print what it did."""
    from srs.demo import run_demo

    run_demo(home, console)


def main() -> None:
    """Entry point of the ``srs`` command."""
    app()


if __name__ == "__main__":
    main()

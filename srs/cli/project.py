"""``srs project``: create projects, add their members, name the data-sharing agreements their
data come under, grant them datasets, list and show them."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from srs.cli.base_command import CommandContext, console, noun_group, parse_date, print_done
from srs.governance.registry import projects

app = noun_group("Create projects, add members, name agreements, grant datasets.")
agreement_app = noun_group("Name the data-sharing agreements a project's data come under.")
app.add_typer(agreement_app, name="agreement")


@app.command("create")
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
    dsa_reference: str = typer.Option(
        None, help="Free-text agreement reference (legacy; prefer --agreement)."
    ),
    agreement: list[str] = typer.Option(
        [],
        "--agreement",
        help="A recorded data-sharing agreement the project's data come under (repeatable).",
    ),
    purpose_category: str = typer.Option(
        "research",
        help="Kind of use (research, official_statistics, evaluation, ...): each agreement "
        "behind a granted dataset must permit it.",
    ),
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
            agreements=agreement,
            purpose_category=purpose_category,
        )
        named = ", ".join(a.agreement.reference for a in project.agreements) or "none"
    print_done(
        "Created",
        f"project {project.code} ({project.start_date} to {project.end_date}, "
        f"up to {project.approved_classification}, budget rho={project.privacy_budget_rho}; "
        f"{project.purpose_category} under agreements {named})",
    )


@agreement_app.command("add")
def project_agreement_add(
    ctx: typer.Context,
    code: str = typer.Argument(..., help="Project code."),
    reference: str = typer.Argument(..., help="Agreement reference, e.g. DSA-POLICE."),
) -> None:
    """Name a recorded agreement the project's data come under (administrators)."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        projects.name_agreement(
            session, actor=state.actor(), policies=state.policies, code=code, reference=reference
        )
    print_done("Named", f"agreement {escape(reference)} for project {escape(code)}")


@app.command("add-member")
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
    print_done("Added", f"{username} to {code} as {role}")


@app.command("grant")
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
    print_done("Granted", f"{dataset} to {code}")


@app.command("show")
def project_show(ctx: typer.Context, code: str = typer.Argument(..., help="Project code.")) -> None:
    """Show a project: purpose, legal basis, agreements, members and grants."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        p = projects.get_project(session, code)
        rows = [
            ("title", p.title),
            ("purpose", p.purpose),
            ("purpose category", p.purpose_category),
            ("legal basis", p.legal_basis),
            ("dates", f"{p.start_date} to {p.end_date}"),
            ("approved up to", p.approved_classification),
            ("budget rho", f"{p.privacy_budget_rho:g}"),
            (
                "agreements",
                ", ".join(
                    f"{a.agreement.reference} ({a.agreement.status.replace('_', ' ')})"
                    for a in p.agreements
                )
                or "none named",
            ),
            *([("agreement (free text)", p.dsa_reference)] if p.dsa_reference else []),
            ("members", ", ".join(f"{m.researcher.username} ({m.role})" for m in p.members) or "-"),
            ("grants", ", ".join(g.dataset_name for g in p.grants if g.revoked_at is None) or "-"),
        ]
        console.print(f"[bold]{escape(p.code)}[/]")
        for name, value in rows:
            console.print(f"  {name}: {escape(value)}", highlight=False)


@app.command("list")
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

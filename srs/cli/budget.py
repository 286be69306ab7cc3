"""``srs budget``: a project's privacy budget, what was spent, by whom and on what."""

from __future__ import annotations

import typer
from rich.table import Table

from srs.cli.base_command import CommandContext, console, noun_group
from srs.governance.access import authorise

app = noun_group("Privacy budgets of projects (differential privacy).")


@app.command("show")
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

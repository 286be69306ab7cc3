"""``srs outputs``: the output checkers' review of release requests: queue, show, vote, comment."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from srs.cli.base_command import CommandContext, console, noun_group, print_done, print_table
from srs.governance.policy import PolicySet

app = noun_group(
    "Review researchers' output requests: queue, show, approve, reject, request changes."
)


@app.command("queue")
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
    print_table(table, empty="No requests await your review.")


@app.command("show")
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
    from output_checking.outputs import describe_uses

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
    console.print(f"  data used: {escape(describe_uses(output.datasets_used))}")
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
        print_done(
            "Recorded",
            f"{decision.replace('_', ' ')} on output #{output_id}; request "
            f"#{request.id} is now {request.status}",
        )


_COMMENT = typer.Option("", "--comment", help="Why: a note for the other checker (and researcher).")
_VISIBLE = typer.Option(
    False, "--visible-to-researcher", help="Let the researcher read the comment once decided."
)


@app.command("approve")
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


@app.command("reject")
def outputs_reject(
    ctx: typer.Context,
    output_id: int = typer.Argument(..., help="Output number."),
    comment: str = typer.Option(..., "--comment", help="Why it cannot be released."),
    visible: bool = _VISIBLE,
) -> None:
    """Vote to reject an output (it will never be released)."""
    _vote(ctx, output_id, "reject", comment, visible, None)


@app.command("request-changes")
def outputs_request_changes(
    ctx: typer.Context,
    output_id: int = typer.Argument(..., help="Output number."),
    comment: str = typer.Option(..., "--comment", help="What the researcher should change."),
) -> None:
    """Vote to send an output back to its researcher (the comment is visible to them)."""
    _vote(ctx, output_id, "request_changes", comment, True, None)


@app.command("comment")
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
    print_done("Commented", f"on request #{request_id}")

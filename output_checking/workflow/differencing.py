"""Differencing at review: the tables an output would be released with or after, and the
differencing check of ``disclosure.differencing`` run against them and stored on the output.

An output is compared with every table its project has already released and with the other
tables of its own request, which would be released with it; a finding of either status needs a
checker's override to approve or release the output.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from disclosure.differencing import ReleasedTable, check_differencing
from output_checking.outputs import content_table
from output_checking.workflow.states import RELEASED
from srs.governance.policy import PolicySet
from srs.governance.registry.models import Output, utc_now

# The kinds whose content may hold a count table differencing reads.
COUNTED_KINDS = ("table", "figure")


def released_tables(session: Session, project_id: int, policies: PolicySet) -> dict[str, Any]:
    """Every table the project has released (a histogram's counts too), by a name a checker
    recognises, as the attacker sees it (``ReleasedTable``: cells, margins, rounding,
    statistic)."""
    tables: dict[str, Any] = {}
    outputs = session.execute(
        select(Output)
        .where(
            Output.project_id == project_id,
            Output.status == RELEASED,
            Output.kind.in_(COUNTED_KINDS),
        )
        .order_by(Output.id)
    ).scalars()
    for output in outputs:
        table = published_table(output)
        if table is not None:
            tables[f"output #{output.id} ({output.name})"] = table
    return tables


def together_tables(output: Output, others: Iterable[Output]) -> dict[str, Any]:
    """The tables of ``others`` (outputs released with ``output``, itself left out) as the
    attacker sees them, each named as "output #N in this request"."""
    tables: dict[str, Any] = {}
    for other in others:
        if other.id == output.id:
            continue
        table = published_table(other)
        if table is not None:
            tables[f"output #{other.id} in this request ({other.name})"] = table
    return tables


def published_table(output: Output) -> ReleasedTable | None:
    """The count table an output publishes, as the attacker sees it: a table output with its
    margins kept as the attacker's equations (summing them into the cells would double them and
    hide a small difference), or a histogram's bin counts (its CSV), the bins named after the
    variable binned. None for an output that publishes no table."""
    content = output.content or {}
    if output.kind == "table" and "table" in content:
        return ReleasedTable(
            content_table(content["table"]),
            margins=content.get("margins") or None,
            rounding=content.get("rounding") or "none",
            statistic=content.get("statistic", "count"),
        )
    if output.kind == "figure" and "counts" in content:
        counts = content_table(content["counts"])
        if "count" not in counts.columns:
            return None
        bins = counts[["count"]].rename_axis(content.get("column") or counts.index.name)
        return ReleasedTable(bins, rounding=content.get("rounding") or "none")
    return None


def run_differencing(
    output: Output,
    released: dict[str, Any],
    policies: PolicySet,
    together: dict[str, Any] | None = None,
) -> list[dict]:
    """Check a table output against the project's released tables and the tables to be
    released with it (``together``, from ``together_tables``); store and return findings.

    The check is ``fail`` when a cell is exposed, ``review`` when some table could not be
    judged against it (its findings say "not checked: needs a checker"), and ``ok`` only when
    every one was judged safe. Disclosive findings come first; every finding, of either status,
    needs a checker's override to approve or release the output.
    """
    table = published_table(output)
    if table is None:
        return []
    together = together or {}
    compared = {**released, **together}
    findings = [f.to_dict() for f in check_differencing(table, compared, policies.sdc.active)]
    failing = sum(f["status"] == "fail" for f in findings)
    unjudged = len(findings) - failing
    against = f"{len(released)} released table(s)"
    if together:
        against += f" and {len(together)} other table(s) of this request"
    if failing:
        status = "fail"
        message = f"{failing} cell(s) differ by a small count from {against}"
        if unjudged:
            message += f"; {unjudged} comparison(s) not checked: needs a checker"
    elif unjudged:
        status = "review"
        message = f"{unjudged} comparison(s) with {against} not checked: needs a checker"
    else:
        status = "ok"
        message = f"no disclosive difference against {against}"
    check = {
        "check": "differencing",
        "status": status,
        "message": message,
        "findings": findings,
        "checked_at": utc_now().isoformat(timespec="seconds"),
    }
    output.checks = [c for c in (output.checks or []) if c.get("check") != "differencing"] + [check]
    return findings


def differencing_summary(findings: list[dict]) -> str:
    """What a refusal says of differencing findings: disclosive differences and comparisons the
    check could not judge are named as what they are, the first of them quoted."""
    failing = sum(f.get("status") == "fail" for f in findings)
    unjudged = len(findings) - failing
    parts = []
    if failing:
        parts.append(f"{failing} disclosive difference(s)")
    if unjudged:
        parts.append(f"{unjudged} comparison(s) it could not judge (a checker must)")
    return f"{' and '.join(parts)}: {findings[0]['message']}"

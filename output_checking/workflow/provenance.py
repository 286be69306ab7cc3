"""Whether the data an output was made from may still be released: every dataset version it
records (``datasets_used``) still held, and every agreement behind it in force.

A version destroyed when its agreement ended, or one whose agreements (from its lineage,
``srs.governance.access.agreements_behind``) have ended or expired, refuses the output at
submission, at a checker's approval and at release: an agreement's end withdraws the right to
publish what was made from its data, whatever stage the output had reached.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from output_checking.outputs import checked_uses
from srs.governance.access import agreements_behind, stored_dataset
from srs.governance.agreements import in_force
from srs.governance.registry.models import Output


def dataset_problems(session: Session, output: Output, today: date | None = None) -> list[str]:
    """Why the data of ``output`` may not be released, one line per dataset version used:
    no longer recorded, destroyed, or under an agreement ended, expired or not recorded.
    Empty when every version is held under agreements in force on ``today`` (default: now).

    >>> dataset_problems(session, output)  # doctest: +SKIP
    ['linked/victims@3 was destroyed on 2026-12-08 (agreement DSA-VICTIMS ended: ...)']
    """
    today = today or datetime.now(UTC).date()
    problems: list[str] = []
    for use in checked_uses(output.datasets_used):
        named = f"{use['name']}@{use['version']}"
        stored = stored_dataset(session, use["name"], use["version"])
        if stored is None:
            problems.append(f"{named} is not recorded in the registry")
            continue
        if stored.shredded_at is not None:
            problems.append(
                f"{named} was destroyed on {stored.shredded_at.date().isoformat()} "
                f"({stored.shredded_reason or 'no reason recorded'})"
            )
            continue
        # One line per agreement, naming the sources of this version it covers.
        ended: dict[str, tuple[list[str], str]] = {}
        for source, _version, agreement in agreements_behind(session, stored):
            if agreement is None:
                problems.append(f"{named}: no data-sharing agreement is recorded for {source}")
            elif (why := in_force(agreement, today)) is not None:
                ended.setdefault(agreement.reference, ([], why))[0].append(source)
        problems.extend(
            f"{named}: agreement {reference} ({', '.join(sources)}) {why}"
            for reference, (sources, why) in ended.items()
        )
    return problems


def outputs_refusal(session: Session, outputs: list[Output], today: date | None = None) -> str:
    """The reason ``outputs`` may not go further because of their data (every problem of each,
    naming the output), or "" when there is none."""
    parts = [
        f"output #{output.id} ({output.name}): " + "; ".join(problems)
        for output in outputs
        if (problems := dataset_problems(session, output, today))
    ]
    if not parts:
        return ""
    return (
        "; ".join(parts) + ". What is made from data destroyed, or whose agreement has ended or "
        "expired, cannot be released: remove the output from the request (or ask the steward "
        "whether the agreement was renewed)"
    )

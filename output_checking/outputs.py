"""Output records: what a researcher wants to take out, with its evidence, in the registry.

An output (DESIGN.md, "Outputs: one contract") has a project, an author, a kind, its content in
open form, the checks run on it with their evidence, the researcher's context and controls, a
status and a SHA-256 checksum of its canonical content. It is born a ``draft``; the release
workflow moves it on. A ``dp_result`` always names the budget spend that paid for it, so a
checker sees at a glance that it is differentially private and needs no cell suppression.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.audit import record_event
from srs.errors import SRSError
from srs.registry.models import Output, Project
from srs.registry.projects import project_records

OUTPUT_KINDS = ("table", "model", "figure", "dp_result", "custom")
DRAFT = "draft"


class OutputError(SRSError):
    """An output cannot be recorded as asked (unknown kind, project, or a DP result without spend)."""


def content_checksum(content: dict[str, Any]) -> str:
    """SHA-256 of the content's canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record_output(
    session: Session,
    *,
    project_code: str,
    author: str,
    kind: str,
    name: str,
    content: dict[str, Any],
    checks: list[dict[str, Any]] | None = None,
    context: str = "",
    controls: str = "",
    budget_spend_id: int | None = None,
) -> Output:
    """Add a draft output in the caller's transaction, audited; the caller commits."""
    if kind not in OUTPUT_KINDS:
        raise OutputError(f"output kind {kind!r} is not one of {', '.join(OUTPUT_KINDS)}")
    if (kind == "dp_result") != (budget_spend_id is not None):
        raise OutputError(
            "a dp_result must name the budget spend that paid for it, and only a dp_result may"
        )
    if not name or not name.strip():
        raise OutputError("give the output a name a checker can recognise")
    project = session.execute(
        select(Project).where(Project.code == project_code)
    ).scalar_one_or_none()
    if project is None:
        raise OutputError(f"no project {project_code!r}")
    output = Output(
        project_id=project.id,
        author=author,
        kind=kind,
        name=name.strip(),
        status=DRAFT,
        differentially_private=kind == "dp_result",
        budget_spend_id=budget_spend_id,
        content=content,
        checks=checks or [],
        context=context,
        controls=controls,
        checksum=content_checksum(content),
    )
    session.add(output)
    session.flush()
    record_event(
        session,
        actor=author,
        action="output.create",
        target=project_code,
        outcome="ok",
        details={
            "output_id": output.id,
            "kind": kind,
            "name": output.name,
            "checksum": output.checksum,
            "budget_spend_id": budget_spend_id,
        },
    )
    return output


def project_outputs(session: Session, project_code: str) -> list[Output]:
    """Every output of a project, oldest first."""
    return project_records(session, Output, project_code)

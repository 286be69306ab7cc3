"""What the hash-chained audit log proves about a request's reviewed outputs: the facts a
release is built from, and the check of a published bundle against them.

The registry's rows (an output's status, its files and their ``sha256`` column, the votes
table, which request an output is in) can be edited by whoever holds the database without a
trace. The audit log's events cannot: editing one breaks the chain (``srs audit verify``). So a
release relies only on events, for each output it carries:

- its ``output.create`` event: the output's kind, content checksum and files (their name ->
  SHA-256 pairs, as a digest that always fits the audit field bound and whole when it fits),
  recorded in the project the request belongs to;
- the request's last ``request.submitted`` event listing the output, and a
  ``request.approved`` event after it with no other decision since;
- the approve votes (``output.approve`` events) of that submission's round, one per reviewer,
  at least ``independent_reviews`` of them and no other reviewer's vote standing against
  (and whether one recorded a differencing override, which the release's differencing needs);
- what each of those reviewers approved: every approve event's digest of the reviewed fields
  (``workflow.reviewed_fields``: kind, name, author, context, controls, exception
  justification, DP flag and spend, content and files digests, the checks but differencing,
  the dataset versions it was made from),
  which the registry's rows must still give, so nothing shown in the manifest changed since;
- the chain from the oldest of those events to the head, verified.

``gather_evidence`` compares the registry with those events and names every difference;
``check_bundle_against_audit`` checks a published bundle's manifest, which carries each
event's sequence number and hash, against the log.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, undefer

from output_checking.outputs import content_checksum, files_digest
from output_checking.workflow import (
    DECISIONS,
    DRAFT,
    REQUEST_STATES,
    changed_fields,
    output_record,
    registry_files,
    request_target,
    reviewed_digest,
    reviewed_fields,
)
from srs.governance.audit import event_details, events_about, verify_chain
from srs.governance.registry.models import AuditEvent, Output

VOTE_ACTIONS = tuple(f"output.{decision}" for decision in DECISIONS)
# The transitions that move a request on after its submission.
TRANSITIONS = tuple(f"request.{state}" for state in REQUEST_STATES if state != DRAFT)


@dataclass(frozen=True)
class EventRef:
    """One audit event as a bundle names it: its sequence number and hash."""

    seq: int
    event_hash: str

    @classmethod
    def of(cls, event: AuditEvent) -> EventRef:
        return cls(event.seq, event.event_hash)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "event_hash": self.event_hash}


@dataclass(frozen=True)
class Approval:
    """A reviewer's standing approve vote, as its audit event records it."""

    reviewer: str
    at: str
    event: EventRef

    def to_dict(self) -> dict[str, Any]:
        return {
            "reviewer": self.reviewer,
            "decision": "approve",
            "at": self.at,
            "audit_seq": self.event.seq,
            "audit_event_hash": self.event.event_hash,
        }


@dataclass(frozen=True)
class OutputEvidence:
    """What the log records of one output: its creation and its approvals."""

    output_id: int
    created: EventRef
    content_sha256: str
    files_sha256: str
    approvals: tuple[Approval, ...]
    differencing_override: bool
    reviewed_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_create": self.created.to_dict(),
            "content_sha256": self.content_sha256,
            "files_sha256": self.files_sha256,
            "reviewed_sha256": self.reviewed_sha256,
        }


@dataclass
class RequestEvidence:
    """What the log records of a request: its submission, its approval, its outputs' evidence,
    and the verified chain they sit in (``problems`` empty when the registry agrees)."""

    request_id: int
    round: int | None = None
    submitted: EventRef | None = None
    approved: EventRef | None = None
    verified_through: EventRef | None = None
    outputs: dict[int, OutputEvidence] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The request-level evidence as a manifest carries it."""
        return {
            "round": self.round,
            "request_submitted": self.submitted.to_dict() if self.submitted else None,
            "request_approved": self.approved.to_dict() if self.approved else None,
            "chain_verified_through": (
                self.verified_through.to_dict() if self.verified_through else None
            ),
        }


def _creation_events(session: Session, project_code: str) -> dict[int, list[AuditEvent]]:
    found: dict[int, list[AuditEvent]] = {}
    for event in events_about(session, project_code, ["output.create"]):
        details = event_details(event)
        if event.outcome == "ok" and details and isinstance(details.get("output_id"), int):
            found.setdefault(details["output_id"], []).append(event)
    return found


def _file_differences(actual: dict[str, str], recorded: dict[str, Any]) -> list[str]:
    """How an output's stored files (name -> SHA-256 of their bytes) differ from those its
    ``output.create`` event records."""
    listed = recorded.get("files")
    if isinstance(listed, dict):
        differences = [
            f"file {n} was added after creation" for n in sorted(set(actual) - set(listed))
        ]
        differences += [f"file {n} was removed" for n in sorted(set(listed) - set(actual))]
        differences += [
            f"file {n} has SHA-256 {actual[n][:12]}… but {listed[n][:12]}… was recorded"
            for n in sorted(set(actual) & set(listed))
            if actual[n] != listed[n]
        ]
        if differences:
            return differences
    if files_digest(actual) != recorded.get("files_sha256", files_digest(listed or {})):
        return [
            f"its {len(actual)} file(s) {sorted(actual)} are not the "
            f"{recorded.get('file_count', '?')} file(s) recorded at creation (name or SHA-256 differs)"
        ]
    return []


def _output_evidence(
    output: Output,
    creations: list[AuditEvent],
    votes: list[AuditEvent],  # the round's vote events on this output, oldest first
    submitted_ids: set[int] | None,
    needed: int,
    problems: list[str],
) -> OutputEvidence | None:
    label = f"output #{output.id}"
    found = len(problems)
    if submitted_ids is not None and output.id not in submitted_ids:
        problems.append(
            f"{label} is not among the outputs the audit log records as submitted in this request"
        )
    if len(creations) != 1:
        problems.append(
            f"{label}: the audit log holds {len(creations)} output.create events for it in this "
            "project, not one"
        )
        return None
    created = creations[0]
    recorded = event_details(created) or {}
    if recorded.get("kind") != output.kind:
        problems.append(f"{label} is a {output.kind} but was created as a {recorded.get('kind')}")
    if content_checksum(output.content) != recorded.get("checksum"):
        problems.append(f"{label}'s content differs from the checksum recorded at its creation")
    actual = registry_files(output)
    problems += [f"{label}: {d}" for d in _file_differences(actual, recorded)]
    latest: dict[str, AuditEvent] = {}
    for event in votes:  # oldest first: each reviewer's last vote stands
        latest[event.actor] = event
    standing = {reviewer: e.action.removeprefix("output.") for reviewer, e in latest.items()}
    against = {r: d for r, d in standing.items() if d != "approve"}
    approvals = tuple(
        Approval(reviewer, e.occurred_at, EventRef.of(e))
        for reviewer, e in latest.items()
        if e.action == "output.approve"
    )
    if against:
        problems.append(
            f"{label}: the audit log records "
            + ", ".join(f"{r}'s vote {d}" for r, d in sorted(against.items()))
            + " in the current review round"
        )
    if len(approvals) < needed:
        problems.append(
            f"{label} has {len(approvals)} approve vote(s) on the audit log in the current review "
            f"round; independent_reviews requires {needed}"
        )
    fields = output_record(output)
    reviewed = reviewed_digest(fields)
    for approval in approvals:
        problem = _unlike_reviewed(fields, reviewed, latest[approval.reviewer])
        if problem:
            problems.append(f"{label}: {problem}")
    if len(problems) > found:
        return None
    return OutputEvidence(
        output_id=output.id,
        created=EventRef.of(created),
        content_sha256=recorded["checksum"],
        files_sha256=files_digest(actual),
        approvals=approvals,
        differencing_override=any(
            (event_details(latest[a.reviewer]) or {}).get("differencing_override") is True
            for a in approvals
        ),
        reviewed_sha256=reviewed,
    )


def _unlike_reviewed(fields: dict[str, Any], reviewed: str, approve: AuditEvent) -> str | None:
    """How ``fields`` (an output's reviewed fields now) differ from what the approve event
    ``approve`` records its reviewer reviewed; None when they are the same."""
    cast = event_details(approve) or {}
    if cast.get("reviewed_sha256") == reviewed:
        return None
    who = f"{approve.actor}'s approval (audit event {approve.seq})"
    if not isinstance(cast.get("reviewed_sha256"), str):
        return (
            f"{who} records no digest of what they reviewed (it predates them); return it to "
            "the checkers for a new review"
        )
    changed = changed_fields(fields, cast.get("reviewed"))
    return f"what the checkers reviewed changed since {who}" + (
        f": {', '.join(changed)} differ" if changed else ""
    )


def gather_evidence(
    session: Session,
    *,
    request_id: int,
    project_code: str,
    outputs: list[Output],
    independent_reviews: int,
) -> RequestEvidence:
    """Check ``outputs`` (to be released from request ``request_id``) against the audit log.

    Returns the evidence with ``problems`` naming each output and what differs (empty when
    everything agrees and the chain from the oldest event relied on to the head is intact).
    """
    evidence = RequestEvidence(request_id)
    problems = evidence.problems
    history = [e for e in events_about(session, request_target(request_id)) if e.outcome == "ok"]
    submissions = [e for e in history if e.action == "request.submitted"]
    if not submissions:
        problems.append(f"the audit log records no submission of request #{request_id}")
        return evidence
    submitted = submissions[-1]
    details = event_details(submitted)
    submitted_ids = None
    if details is None or not isinstance(details.get("outputs"), list):
        problems.append(
            f"the submission event {submitted.seq} of request #{request_id} does not list its "
            "outputs whole (too many for the audit field bound); release the outputs in smaller "
            "requests"
        )
    else:
        submitted_ids = set(details["outputs"])
    evidence.round = (details or {}).get("round")
    evidence.submitted = EventRef.of(submitted)
    after = [e for e in history if e.seq > submitted.seq]
    decisions = [e for e in after if e.action in TRANSITIONS]
    if not decisions or decisions[-1].action != "request.approved":
        last = decisions[-1].action.removeprefix("request.") if decisions else "submitted"
        problems.append(
            f"the audit log records request #{request_id} as {last} since its last submission, "
            "not approved"
        )
        return evidence
    approved = decisions[-1]
    evidence.approved = EventRef.of(approved)
    votes: dict[int, list[AuditEvent]] = {}
    for event in after:
        if event.action in VOTE_ACTIONS and event.seq < approved.seq:
            cast = event_details(event) or {}
            if cast.get("round") == evidence.round:
                votes.setdefault(cast.get("output_id"), []).append(event)
    creations = _creation_events(session, project_code)
    # Every output's content and files in two queries, not two per output.
    session.execute(
        select(Output)
        .options(undefer(Output.content), selectinload(Output.files))
        .where(Output.id.in_([o.id for o in outputs]))
    ).scalars().all()
    for output in outputs:
        found = _output_evidence(
            output,
            creations.get(output.id, []),
            votes.get(output.id, []),
            submitted_ids,
            independent_reviews,
            problems,
        )
        if found is not None:
            evidence.outputs[output.id] = found
    if problems:
        return evidence
    relied = [submitted.seq, approved.seq] + [
        seq
        for o in evidence.outputs.values()
        for seq in (o.created.seq, *(a.event.seq for a in o.approvals))
    ]
    chain = verify_chain(session, from_seq=min(relied))
    last_seq = min(relied) + chain.events_checked - 1
    if not chain.intact or last_seq < max(relied):
        problem = (
            f"is broken at event {chain.first_bad_seq}: {chain.problem}"
            if not chain.intact
            else f"head (event {last_seq}) is before event {max(relied)}, which it must follow"
        )
        problems.append(
            f"the audit log {problem}; run `srs audit verify` and restore the log before releasing"
        )
        return evidence
    evidence.verified_through = EventRef(last_seq, chain.last_hash or "")
    return evidence


# ------------------------------------------------------------------ a published bundle
def _event(session: Session, ref: Any) -> AuditEvent | None:
    if not isinstance(ref, dict) or not isinstance(ref.get("seq"), int):
        return None
    event = session.get(AuditEvent, ref["seq"])
    return event if event is not None and event.event_hash == ref.get("event_hash") else None


def check_bundle_against_audit(
    session: Session, bundle: Path, manifest: dict[str, Any], independent_reviews: int
) -> list[str]:
    """Problems found checking a bundle's manifest against the audit log (empty: it matches).

    Run after ``verify_bundle`` (the files match the signed manifest) and ``verify_chain`` (the
    log is intact): every event the manifest names must be in the log with the hash it gives
    and say what the manifest claims, each output's released files must be those its
    ``output.create`` event records, and a ``release.create`` event must record this manifest.
    """
    problems: list[str] = []
    request = manifest.get("request") or {}
    target = request_target(request.get("id"))
    audit = manifest.get("audit") or {}
    entries = {e["path"]: e["sha256"] for e in manifest.get("files", [])}
    body = (Path(bundle) / "manifest.json").read_bytes()
    released = [
        e
        for e in events_about(session, target, ["release.create"])
        if e.outcome == "ok"
        and (event_details(e) or {}).get("manifest_sha256") == hashlib.sha256(body).hexdigest()
    ]
    if not released:
        problems.append(f"no release.create event of {target} records this manifest's SHA-256")
    submitted = _event(session, audit.get("request_submitted"))
    if submitted is None or (submitted.action, submitted.target) != ("request.submitted", target):
        problems.append(f"the submission event the manifest names is not {target}'s in the log")
    approved = _event(session, audit.get("request_approved"))
    if approved is None or (approved.action, approved.target) != ("request.approved", target):
        problems.append(f"the approval event the manifest names is not {target}'s in the log")
    listed = (event_details(submitted) or {}).get("outputs") if submitted else None
    for record in manifest.get("outputs", []):
        label = f"output #{record.get('id')}"
        evidence = record.get("audit") or {}
        created = _event(session, evidence.get("output_create"))
        details = (event_details(created) or {}) if created else {}
        if (
            created is None
            or created.action != "output.create"
            or created.target != manifest.get("project")
            or details.get("output_id") != record.get("id")
        ):
            problems.append(f"{label}: its output.create event is not in the log as named")
            continue
        if isinstance(listed, list) and record.get("id") not in listed:
            problems.append(f"{label} is not in the submission the manifest names")
        prefix = f"outputs/{record['id']:05d}-"
        files = {p.removeprefix(prefix): entries.get(p, "") for p in record.get("files", [])}
        file_count = details.get("file_count", len(details.get("files") or {}))
        if file_count == 0:
            content = json.loads((Path(bundle) / record["files"][0]).read_bytes())
            if content_checksum(content) != details.get("checksum"):
                problems.append(f"{label}: its released content is not the content created")
        elif files_digest(files) != details.get(
            "files_sha256", files_digest(details.get("files") or {})
        ):
            problems.append(f"{label}: its released files are not the files created")
        # The manifest's fields, hashed as a checker's approve vote hashed them.
        released_files = files_digest(files if file_count else {})
        fields = reviewed_fields({**record, "files_sha256": released_files})
        reviewed = reviewed_digest(fields)
        if evidence.get("reviewed_sha256") != reviewed:
            problems.append(
                f"{label}: the manifest's reviewed fields do not give its audit.reviewed_sha256"
            )
        approvers = set()
        for approval in record.get("approvals", []):
            event = _event(
                session,
                {"seq": approval.get("audit_seq"), "event_hash": approval.get("audit_event_hash")},
            )
            vote = (event_details(event) or {}) if event else {}
            if (
                event is None
                or (event.action, event.target, event.actor)
                != ("output.approve", target, approval.get("reviewer"))
                or vote.get("output_id") != record.get("id")
                or vote.get("round") != audit.get("round")
            ):
                problems.append(
                    f"{label}: {approval.get('reviewer')}'s approval is not in the log as named"
                )
            elif problem := _unlike_reviewed(fields, reviewed, event):
                problems.append(f"{label}: {problem}")
            else:
                approvers.add(event.actor)
        if len(approvers) < independent_reviews:
            problems.append(
                f"{label} has {len(approvers)} approval(s) found in the log; "
                f"independent_reviews requires {independent_reviews}"
            )
    return problems

"""The append-only audit log: every event is SHA-256-chained to the one before it.

An event's hash covers its sequence number, time, actor, action, target, outcome, reason,
details and the previous event's hash, so editing, deleting, inserting or reordering any event
breaks the chain at that point; ``verify_chain`` names the first event where it breaks. The
``audit_head`` row records the last event, so cutting events off the end is caught too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.registry.models import AuditEvent, AuditHead, utc_now

GENESIS_HASH = "0" * 64
OUTCOMES = ("allow", "deny", "ok", "error")


def canonical_details(details: dict[str, Any] | None) -> str:
    """The details as canonical JSON (sorted keys, no spaces), the form that is hashed."""
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), default=str)


def event_hash(
    *,
    seq: int,
    occurred_at: str,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    reason: str,
    details: str,
    prev_hash: str,
) -> str:
    """SHA-256 over the event's fields and the previous hash, in a fixed, unambiguous layout."""
    fields = [str(seq), occurred_at, actor, action, target, outcome, reason, details, prev_hash]
    payload = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event inside the caller's transaction (it lands or is lost with the change).

    The head row is locked for update, so concurrent writers on PostgreSQL take turns; on
    SQLite every write transaction is already exclusive.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome must be one of {OUTCOMES}, not {outcome!r}")
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()
    fields = {
        "seq": head.last_seq + 1,
        "occurred_at": utc_now().isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
        "reason": reason,
        "details": canonical_details(details),
        "prev_hash": head.last_hash,
    }
    event = AuditEvent(**fields, event_hash=event_hash(**fields))
    session.add(event)
    head.last_seq = event.seq
    head.last_hash = event.event_hash
    session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    """What verification found: how many events were checked and the first problem, if any."""

    events_checked: int
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        """True when every event and the head agree with the chain."""
        return self.problem is None


def verify_chain(session: Session, batch_size: int = 5000) -> ChainReport:
    """Walk the log in sequence order and report the first event that breaks the chain."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    rows = session.execute(
        select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=batch_size)
    ).scalars()
    for event in rows:
        if event.seq != expected_seq:
            kind = "deleted" if event.seq > expected_seq else "duplicated or reordered"
            return ChainReport(
                checked,
                expected_seq,
                f"event {expected_seq} is missing (next stored event is {event.seq}): "
                f"events were {kind}",
            )
        if event.prev_hash != prev_hash:
            return ChainReport(
                checked,
                event.seq,
                f"event {event.seq} does not follow event {event.seq - 1}: its previous-hash "
                "does not match, so events were inserted, deleted or reordered here",
            )
        recomputed = event_hash(
            seq=event.seq,
            occurred_at=event.occurred_at,
            actor=event.actor,
            action=event.action,
            target=event.target,
            outcome=event.outcome,
            reason=event.reason,
            details=event.details,
            prev_hash=event.prev_hash,
        )
        if recomputed != event.event_hash:
            return ChainReport(
                checked,
                event.seq,
                f"event {event.seq} was edited: its content no longer matches its hash",
            )
        prev_hash = event.event_hash
        expected_seq += 1
        checked += 1
    head = session.get(AuditHead, 1)
    last_seq = expected_seq - 1
    if head is None:
        return ChainReport(checked, last_seq + 1, "the audit head row is missing")
    if head.last_seq != last_seq or head.last_hash != prev_hash:
        return ChainReport(
            checked,
            last_seq + 1,
            f"the log ends at event {last_seq} but its head records event {head.last_seq}: "
            "events were deleted from the end or the head was altered",
        )
    return ChainReport(checked)


def tail_events(session: Session, count: int = 20) -> list[AuditEvent]:
    """The last ``count`` events, oldest first."""
    rows = session.execute(
        select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(count)
    ).scalars()
    return list(reversed(list(rows)))


def event_as_dict(event: AuditEvent) -> dict[str, Any]:
    """An event as a plain dict, details decoded, for export and display."""
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at,
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "reason": event.reason,
        "details": json.loads(event.details),
        "prev_hash": event.prev_hash,
        "event_hash": event.event_hash,
    }


def export_events(session: Session, batch_size: int = 5000) -> Iterator[str]:
    """Every event as one JSON line, in sequence order (stream it; the log may be large)."""
    rows = session.execute(
        select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=batch_size)
    ).scalars()
    for event in rows:
        yield json.dumps(event_as_dict(event), sort_keys=True)

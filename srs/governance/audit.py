"""The append-only audit log: every event is SHA-256-chained to the one before it.

An event's hash covers its sequence number, time, actor, action, target, outcome, reason,
details and the previous event's hash, so editing, deleting, inserting or reordering any event
breaks the chain at that point; ``verify_chain`` names the first event where it breaks. The
``audit_head`` row records the last event, so cutting events off the end is caught too.

No call can flood the log: every free-text field (actor, action, target, reason, each text in
the details and the details as a whole) is cut to a bound, the site's
``policies.access.audit_field_max_chars``, keeping its start, a visible mark and the length and
SHA-256 of the whole (``cut_text``). The cut text is what is stored and hashed, so the chain
verifies as before. The bound is the one ``record_event`` is given, else the one its database
session carries (``use_field_bound``), else ``DEFAULT_FIELD_MAX_CHARS``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from srs.governance.registry.models import AuditEvent, AuditHead, utc_now

GENESIS_HASH = "0" * 64
OUTCOMES = ("allow", "deny", "ok", "error")
# The shipped ``access.audit_field_max_chars`` (policies/access.yaml). It is the bound of every
# event whose writer passes no site value, so no call site, however far from the policies, can
# write an unbounded field; a test keeps it equal to the shipped policy.
DEFAULT_FIELD_MAX_CHARS = 2000
# Where a database session carries its site's bound (``use_field_bound``).
FIELD_BOUND_INFO = "srs.audit_field_max_chars"
CUT_MARK = "\u2026"
# The key of the details when even their cut texts do not fit: the start of their JSON, marked.
DETAILS_CUT = "cut"
# Each text column's width (None: unbounded text). The actor's and the action's are narrower
# than any bound, and PostgreSQL refuses a longer value rather than cut it.
COLUMN_CHARS = {
    name: AuditEvent.__table__.c[name].type.length
    for name in ("actor", "action", "target", "reason")
}


def _valid_unicode(text: str) -> str:
    """``text`` as the databases can store it: surrogate pairs joined, a lone surrogate or a NUL
    (which neither UTF-8 nor PostgreSQL holds) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace("\x00", "\ufffd")


def _cut_mark(length: int, digest: bytes) -> str:
    return f"{CUT_MARK} [cut: {length} chars, sha256 {digest.hex()}]"


def cut_text(text: str, max_chars: int) -> str:
    """``text`` when it has at most ``max_chars`` characters; else its start, a mark, and the
    length and SHA-256 (of the UTF-8) of the whole, in ``max_chars`` characters together.

    Characters are code points, so no character is split. In a field too narrow for that mark
    (under ~110 characters: the actor's column) the mark is the digest alone, in base64.

    >>> cut_text("linked/journeys", 200)
    'linked/journeys'
    >>> print(cut_text("v" * 500, 120))
    vvvvvvvvvvvvvvvvvvvvvvvvvvvvv… [cut: 500 chars, sha256 bb5c3eae58639640a825c7d832582282540113bd23b09302594416e0cf746ec2]
    """
    text = _valid_unicode(text)
    if len(text) <= max_chars:
        return text
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    mark = _cut_mark(len(text), digest)
    if len(mark) >= max_chars:
        mark = f"{CUT_MARK}[sha256:{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}]"
    return text[: max_chars - len(mark)] + mark


# The longest mark ``cut_text`` writes (a string is at most sys.maxsize long), and the smallest
# bound that still holds the details' own mark (``bounded_details``).
LONGEST_MARK = len(_cut_mark(sys.maxsize, bytes(32)))
MIN_FIELD_MAX_CHARS = len(
    json.dumps({DETAILS_CUT: _cut_mark(sys.maxsize, bytes(32))}, separators=(",", ":"))
)


def canonical_details(details: dict[str, Any] | None) -> str:
    """The details as canonical JSON (sorted keys, no spaces), the form that is hashed."""
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), default=str)


def _key_text(key: Any) -> str:
    # As JSON names keys (true, null, 1.5); any other key by its text, rather than failing.
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return str(key)


def _bounded_value(value: Any, max_chars: int | None) -> Any:
    """``value`` with every text in it (keys too) cut to ``max_chars`` (None: left whole), as
    JSON can hold it: mappings, lists and numbers kept, anything else by its text."""
    if isinstance(value, str):
        return value if max_chars is None else cut_text(value, max_chars)
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        # Ids and counts; a bigger number is text (hex: Python writes no decimal of more than
        # 4,300 digits), cut like any text.
        return value if -(2**63) <= value < 2**63 else _bounded_value(hex(value), max_chars)
    if isinstance(value, dict):
        return {
            _bounded_value(_key_text(key), max_chars): _bounded_value(item, max_chars)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_bounded_value(item, max_chars) for item in value]
    return _bounded_value(str(value), max_chars)


def _longest_text(value: Any) -> int:
    """The length of the longest text (key or value) in JSON-like ``value``."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((max(len(k), _longest_text(v)) for k, v in value.items()), default=0)
    if isinstance(value, list):
        return max(map(_longest_text, value), default=0)
    return 0


def bounded_details(details: dict[str, Any] | None, max_chars: int) -> str:
    """The details as canonical JSON of at most ``max_chars`` characters.

    Each text in them is cut (``cut_text``), more finely while their JSON is still too long;
    when even that does not fit (a mapping of 100,000 small keys) the details become
    ``{"cut": "<start of their JSON>… [cut: N chars, sha256 ...]"}``, the SHA-256 being that of
    their whole canonical JSON.
    """
    text_max = max_chars
    while True:
        bounded = _bounded_value(details, text_max)
        text = canonical_details(bounded)
        if len(text) <= max_chars:
            return text
        longest = _longest_text(bounded)
        text_max = max(LONGEST_MARK + 1, min(text_max, longest) // 2)
        if text_max >= longest:
            break  # no text is longer: they are too many, not too long
    whole = canonical_details(_bounded_value(details, None))
    mark = _cut_mark(len(whole), hashlib.sha256(whole.encode("utf-8")).digest())
    keep = max_chars
    while True:
        # JSON escapes the quotes of the JSON it holds: shorten by what is still over.
        text = canonical_details({DETAILS_CUT: whole[:keep] + mark})
        if len(text) <= max_chars:
            return text
        keep = max(0, min(keep, len(whole)) - (len(text) - max_chars))


def use_field_bound(sessions: sessionmaker[Session], max_field_chars: int) -> None:
    """Make every database session ``sessions`` opens from now on cut its audit events' fields
    to ``max_field_chars`` (the site's ``policies.access.audit_field_max_chars``), so events
    written where the policies are not at hand keep the site's bound too.

    >>> use_field_bound(registry.sessions, policies.access.audit_field_max_chars)  # doctest: +SKIP
    """
    _check_bound(max_field_chars)
    info = {**sessions.kw.get("info", {}), FIELD_BOUND_INFO: max_field_chars}
    sessions.configure(info=info)


def _check_bound(max_field_chars: Any) -> int:
    if (
        not isinstance(max_field_chars, int)
        or isinstance(max_field_chars, bool)
        or max_field_chars < MIN_FIELD_MAX_CHARS
    ):
        raise ValueError(
            f"an audit field bound must be a whole number of at least {MIN_FIELD_MAX_CHARS} "
            f"characters (room for the cut mark), not {max_field_chars!r}; sites set it as "
            "access.audit_field_max_chars"
        )
    return max_field_chars


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
    max_field_chars: int | None = None,
) -> AuditEvent:
    """Append one event inside the caller's transaction (it lands or is lost with the change).

    Every text field is cut to ``max_field_chars`` characters (``cut_text``; the actor and the
    action to their narrower columns), the details' JSON as a whole too (``bounded_details``).
    Callers that hold the policies pass ``policies.access.audit_field_max_chars``; without it
    the bound is the database session's (``use_field_bound``), else
    ``DEFAULT_FIELD_MAX_CHARS``.

    The head row is locked for update, so concurrent writers on PostgreSQL take turns; on
    SQLite every write transaction is already exclusive.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome must be one of {OUTCOMES}, not {outcome!r}")
    bound = _check_bound(
        max_field_chars
        if max_field_chars is not None
        else session.info.get(FIELD_BOUND_INFO, DEFAULT_FIELD_MAX_CHARS)
    )
    texts = {
        name: cut_text(str(value), min(bound, COLUMN_CHARS[name] or bound))
        for name, value in (
            ("actor", actor),
            ("action", action),
            ("target", target),
            ("reason", reason),
        )
    }
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()
    fields = {
        "seq": head.last_seq + 1,
        "occurred_at": utc_now().isoformat(timespec="microseconds"),
        **texts,
        "outcome": outcome,
        "details": bounded_details(details, bound),
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
    last_hash: str | None = None  # the hash of the last event checked, when intact

    @property
    def intact(self) -> bool:
        """True when every event and the head agree with the chain."""
        return self.problem is None


def verify_chain(session: Session, batch_size: int = 5000, *, from_seq: int = 1) -> ChainReport:
    """Walk the log in sequence order and report the first event that breaks the chain.

    With ``from_seq`` the walk starts at that event (taking its previous-hash as given) and runs
    to the head: it proves every event from there on is unedited and still linked to the
    current head, which is all a check that relies on those events needs, at the cost of the
    events since rather than of the whole log.
    """
    if from_seq < 1:
        raise ValueError(f"audit events are numbered from 1, not {from_seq}")
    # A segment stops at the head as read now (writers may append meanwhile); the whole log is
    # walked to its end and the head read after, so events forged past the head are caught.
    head = (
        session.execute(
            select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1)
        ).one_or_none()
        if from_seq > 1
        else None
    )
    expected_seq = from_seq
    prev_hash = GENESIS_HASH if from_seq == 1 else None
    checked = 0
    columns = AuditEvent.__table__.c
    rows = session.execute(
        select(AuditEvent.__table__)
        .where(columns.seq >= from_seq)
        .order_by(columns.seq)
        .execution_options(yield_per=batch_size)
    )
    for event in rows:
        if event.seq != expected_seq:
            kind = "deleted" if event.seq > expected_seq else "duplicated or reordered"
            return ChainReport(
                checked,
                expected_seq,
                f"event {expected_seq} is missing (next stored event is {event.seq}): "
                f"events were {kind}",
            )
        if prev_hash is not None and event.prev_hash != prev_hash:
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
        if head is not None and event.seq == head.last_seq:
            break
    if from_seq == 1:
        head = session.get(AuditHead, 1)
    last_seq = expected_seq - 1
    if head is None:
        return ChainReport(checked, last_seq + 1, "the audit head row is missing")
    if from_seq > 1 and checked == 0:
        return ChainReport(
            0, from_seq, f"event {from_seq} is missing: the log ends at event {head.last_seq}"
        )
    if head.last_seq != last_seq or head.last_hash != prev_hash:
        return ChainReport(
            checked,
            last_seq + 1,
            f"the log ends at event {last_seq} but its head records event {head.last_seq}: "
            "events were deleted from the end or the head was altered",
        )
    return ChainReport(checked, last_hash=prev_hash)


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


def audit_head(session: Session) -> tuple[int, str]:
    """The last event's sequence number and hash as the head row records them now."""
    row = session.execute(
        select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1)
    ).one_or_none()
    return (0, GENESIS_HASH) if row is None else (row.last_seq, row.last_hash)


def events_about(
    session: Session, target: str, actions: Iterable[str] | None = None
) -> list[AuditEvent]:
    """Every event whose target is ``target`` (optionally only these actions), oldest first.

    >>> events_about(session, "request/7", ["request.submitted"])  # doctest: +SKIP
    """
    query = select(AuditEvent).where(AuditEvent.target == target)
    if actions is not None:
        query = query.where(AuditEvent.action.in_(list(actions)))
    return list(session.execute(query.order_by(AuditEvent.seq)).scalars())


def event_details(event: AuditEvent) -> dict[str, Any] | None:
    """An event's details as recorded, or None when they were too long and stored cut
    (``bounded_details``): then no single fact in them can be relied on."""
    details = json.loads(event.details)
    if not isinstance(details, dict) or set(details) == {DETAILS_CUT}:
        return None
    return details


def field_bound(session: Session) -> int:
    """The bound ``record_event`` applies to this database session's events when given none."""
    return session.info.get(FIELD_BOUND_INFO, DEFAULT_FIELD_MAX_CHARS)


def export_events(session: Session, batch_size: int = 5000) -> Iterator[str]:
    """Every event as one JSON line, in sequence order (stream it; the log may be large)."""
    rows = session.execute(
        select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=batch_size)
    ).scalars()
    for event in rows:
        yield json.dumps(event_as_dict(event), sort_keys=True)

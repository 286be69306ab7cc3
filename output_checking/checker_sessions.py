"""Server-side sessions of the output checkers' UI: a sign-in starts one, the browser's cookie
carries only its random id, and the registry decides on every request whether it still stands.

Only the SHA-256 of a session id is stored (``CheckerSession``), so a copy of the registry
signs no one in. A session ends at sign-out, once idle past the access policy's
``idle_timeout_minutes``, once older than its ``checker_session_max_hours`` however active,
when a new sign-in in the same browser replaces it, or when its account is locked; an ended
session never resumes, so a cookie replayed after any of these opens nothing. Starts, ends and
replays of ended sessions are audited against the UI (``checker-ui``).

>>> session_id = start_session(db, username="cho", policies=policies)   # doctest: +SKIP
>>> resume_session(db, session_id, policies=policies)                    # doctest: +SKIP
'cho'
>>> end_session(db, session_id, reason="signed out")                     # doctest: +SKIP
>>> resume_session(db, session_id, policies=policies) is None             # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.governance.audit import record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.models import CheckerSession, Researcher, utc_now

SESSION_ID_BYTES = 32
# The audit target of session events: the UI, as for its sign-ins.
SERVICE = "checker-ui"
SIGNED_OUT = "signed out"
REPLACED = "replaced by a new sign-in"


def session_digest(session_id: str) -> str:
    """The SHA-256 of a session id, in hex: what the registry stores and looks sessions up by."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; every stored time is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _find(db: Session, session_id: str | None) -> CheckerSession | None:
    if not session_id:
        return None
    return db.execute(
        select(CheckerSession).where(CheckerSession.session_sha256 == session_digest(session_id))
    ).scalar_one_or_none()


def _end(db: Session, record: CheckerSession, reason: str, now: datetime) -> None:
    record.ended_at = now
    record.ended_reason = reason
    record_event(
        db,
        actor=record.username,
        action="checker_session.end",
        target=SERVICE,
        outcome="ok",
        reason=f"session #{record.id} ended: {reason}",
        details={"session": record.id},
    )


def start_session(
    db: Session,
    *,
    username: str,
    policies: PolicySet,
    replacing: str | None = None,
    now: datetime | None = None,
) -> str:
    """A new session for ``username``, who has just been admitted: its id, returned once.

    A fresh random id at every sign-in (never one the browser brought, so a planted id is never
    the one signed in); ``replacing`` is the id this browser held before, which ends. Audited as
    ``checker_session.start`` and committed.
    """
    now = now or utc_now()
    previous = _find(db, replacing)
    if previous is not None and previous.ended_at is None:
        _end(db, previous, REPLACED, now)
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    record = CheckerSession(
        session_sha256=session_digest(session_id),
        username=username,
        created_at=now,
        last_seen_at=now,
    )
    db.add(record)
    db.flush()
    lifetime = policies.access.checker_session_max_hours
    record_event(
        db,
        actor=username,
        action="checker_session.start",
        target=SERVICE,
        outcome="ok",
        reason=f"session #{record.id} started; it ends at sign-out, after "
        f"{policies.access.idle_timeout_minutes} idle minutes or after {lifetime} hours",
        details={"session": record.id},
    )
    db.commit()
    return session_id


def resume_session(
    db: Session, session_id: str | None, *, policies: PolicySet, now: datetime | None = None
) -> str | None:
    """The username of the session ``session_id`` if it still stands (its idle timer restarts),
    else None: the person must sign in again.

    A session idle past the policy's ``idle_timeout_minutes``, older than its
    ``checker_session_max_hours``, or whose account has been locked ends here (audited). An id
    of a session that already ended is refused and the replay audited (``checker_session.resume``,
    deny); an id the registry never issued is simply no one. Commits.
    """
    record = _find(db, session_id)
    if record is None:
        return None
    now = now or utc_now()
    access = policies.access
    if record.ended_at is not None:
        record_event(
            db,
            actor=record.username,
            action="checker_session.resume",
            target=SERVICE,
            outcome="deny",
            reason=f"session #{record.id} ended at "
            f"{_as_utc(record.ended_at).isoformat(timespec='seconds')} ({record.ended_reason})",
            details={"session": record.id},
        )
        db.commit()
        return None
    idle = now - _as_utc(record.last_seen_at)
    age = now - _as_utc(record.created_at)
    locked = db.execute(
        select(Researcher.locked).where(Researcher.username == record.username)
    ).scalar_one_or_none()
    reason = None
    if idle > timedelta(minutes=access.idle_timeout_minutes):
        reason = f"idle for more than {access.idle_timeout_minutes} minutes"
    elif age > timedelta(hours=access.checker_session_max_hours):
        reason = f"signed in more than {access.checker_session_max_hours} hours ago"
    elif locked is None or locked:
        reason = "the account is locked or no longer registered"
    if reason is not None:
        _end(db, record, reason, now)
        db.commit()
        return None
    record.last_seen_at = now
    db.commit()
    return record.username


def end_session(
    db: Session, session_id: str | None, *, reason: str = SIGNED_OUT, now: datetime | None = None
) -> None:
    """End the session ``session_id`` (at sign-out), audited; nothing if it is unknown or
    already ended. Commits."""
    record = _find(db, session_id)
    if record is None or record.ended_at is not None:
        return
    _end(db, record, reason, now or utc_now())
    db.commit()

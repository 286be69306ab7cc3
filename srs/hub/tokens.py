"""Per-session tokens: how the environment API knows whose kernel is calling, and for which project.

When the hub starts a researcher's server it issues a token for that person in that project
(``issue_session_token``) and hands it to the server as ``SRS_SESSION_TOKEN``; the kernel sends
it with every call and the API maps it back to the person and project
(``resolve_session_token``), re-checking each time that they may still work there. Only the
SHA-256 of a token is stored, so a copy of the registry opens no one's session. A token the
spawner issues is bound to the uid of the researcher's Unix account: the API, on its Unix socket,
refuses it from any other account (the caller's ``SO_PEERCRED`` uid), so a token read out of a
kernel's environment opens nothing from another program's account. Stopping the server ends its
tokens (``revoke_session_tokens``). Every start, end and refusal is audited.

>>> token = issue_session_token(db, username="ana", project_code="P001", policies=policies)  # doctest: +SKIP
>>> resolve_session_token(db, token, policies)                                              # doctest: +SKIP
('ana', 'P001')
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.errors import SRSError
from srs.governance.access import AccessDenied, authorise
from srs.governance.audit import record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.models import HubSession, utc_now

TOKEN_BYTES = 32
DEFAULT_TTL_HOURS = 12.0
# The audit target of refusals that name no project (a token the hub never issued).
SERVICE = "hub-api"
UNKNOWN_ACTOR = "(unknown)"


class SessionTokenError(SRSError):
    """A session token cannot be issued as asked (its lifetime is not a positive number of hours)."""


class TokenRefused(AccessDenied):
    """The session token is unknown, expired or ended: the kernel must be restarted from the hub,
    which issues a new one. (An ``AccessDenied``, so callers that refuse access handle it too.)"""


def token_digest(token: str) -> str:
    """The SHA-256 of a token, in hex: what the registry stores and looks tokens up by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; every stored time is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _moment(moment: datetime) -> str:
    return _as_utc(moment).isoformat(timespec="seconds")


def issue_session_token(
    db: Session,
    *,
    username: str,
    project_code: str,
    policies: PolicySet,
    ttl_hours: float = DEFAULT_TTL_HOURS,
    unix_uid: int | None = None,
) -> str:
    """A new token for ``username`` working in ``project_code``, valid for ``ttl_hours``, usable
    only from Unix account ``unix_uid`` when given (the spawner always gives it).

    The person must be allowed to work in the project now, exactly as ``srs.session()`` checks
    (``AccessDenied`` says why not, and the refusal is audited). The token is returned once and
    only its SHA-256 is kept; the start is audited as ``hub.session.start`` and committed.
    """
    if (
        isinstance(ttl_hours, bool)
        or not isinstance(ttl_hours, int | float)
        or not math.isfinite(ttl_hours)
        or ttl_hours <= 0
    ):
        raise SessionTokenError(
            f"a session token's lifetime must be a positive number of hours, not {ttl_hours!r}"
        )
    if unix_uid is not None and (
        isinstance(unix_uid, bool) or not isinstance(unix_uid, int) or unix_uid <= 0
    ):
        raise SessionTokenError(
            f"a session token is bound to an unprivileged account's uid (> 0), not {unix_uid!r}"
        )
    authorise(
        db, username=username, action="output.create", policies=policies, project_code=project_code
    )
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = utc_now()
    record = HubSession(
        token_sha256=token_digest(token),
        username=username,
        project_code=project_code,
        created_at=now,
        expires_at=now + timedelta(hours=ttl_hours),
        unix_uid=unix_uid,
    )
    db.add(record)
    db.flush()
    record_event(
        db,
        actor=username,
        action="hub.session.start",
        target=project_code,
        outcome="ok",
        reason=f"hub session #{record.id} started, valid until {_moment(record.expires_at)}",
        details={
            "session": record.id,
            "expires_at": _moment(record.expires_at),
            "unix_uid": unix_uid,
        },
    )
    db.commit()
    return token


def resolve_session_token(
    db: Session,
    token: str,
    policies: PolicySet,
    *,
    remote: str | None = None,
    peer_uid: int | None = None,
    require_account: bool = False,
) -> tuple[str, str]:
    """The (username, project code) a token was issued for, if it is still good.

    Refuses with ``TokenRefused`` (an ``AccessDenied``) a token the hub never issued, one that
    expired, one that was ended, one bound to a Unix account other than ``peer_uid`` (the
    caller's uid as the kernel reports it, ``SO_PEERCRED``; None when the caller's account is
    unknown, as over TCP, which no bound token accepts) and, with ``require_account``, one bound
    to no account; each refusal is audited as ``hub.session.resolve`` with ``remote`` (the
    caller) in its details. Then re-checks, audited, that the person may still work in the
    project (accreditation may have lapsed since the token was issued). Commits either way.
    """
    found = None
    if isinstance(token, str) and token:
        found = db.execute(
            select(HubSession).where(HubSession.token_sha256 == token_digest(token))
        ).scalar_one_or_none()
    if found is None:
        problem = "the session token is not one the hub issued"
    elif found.revoked_at is not None:
        problem = f"hub session #{found.id} was ended at {_moment(found.revoked_at)}"
    elif _as_utc(found.expires_at) <= utc_now():
        problem = f"hub session #{found.id} expired at {_moment(found.expires_at)}"
    elif found.unix_uid is not None and found.unix_uid != peer_uid:
        caller = "an unknown account" if peer_uid is None else f"uid {peer_uid}"
        problem = (
            f"hub session #{found.id} belongs to the server of uid {found.unix_uid}, not "
            f"{caller}: a session token works only from the server it was issued to"
        )
    elif found.unix_uid is None and require_account:
        problem = (
            f"hub session #{found.id} is bound to no Unix account; the environment accepts only "
            "tokens that the hub's spawner issued to a researcher's server"
        )
    else:
        problem = None
    if problem is not None:
        record_event(
            db,
            actor=found.username if found else UNKNOWN_ACTOR,
            action="hub.session.resolve",
            target=found.project_code if found else SERVICE,
            outcome="deny",
            reason=problem,
            details={
                "session": found.id if found else None,
                "remote": remote,
                "peer_uid": peer_uid,
            },
        )
        db.commit()
        raise TokenRefused(f"{problem}; restart your server from the hub's home page")
    authorise(
        db,
        username=found.username,
        action="output.create",
        policies=policies,
        project_code=found.project_code,
    )
    db.commit()
    return found.username, found.project_code


def ended_tokens(db: Session, digests: Iterable[str]) -> set[str]:
    """Which of these token digests no longer open a session: ended, expired or never issued."""
    wanted = set(digests)
    if not wanted:
        return set()
    now = utc_now()
    live = {
        record.token_sha256
        for record in db.execute(
            select(HubSession).where(
                HubSession.token_sha256.in_(wanted), HubSession.revoked_at.is_(None)
            )
        ).scalars()
        if _as_utc(record.expires_at) > now
    }
    return wanted - live


def revoke_session_tokens(
    db: Session, *, username: str, project_code: str | None = None, actor: str | None = None
) -> int:
    """End ``username``'s live tokens (in ``project_code`` only, if given); returns how many.

    Audited as ``hub.session.end`` by ``actor`` (default the user: the hub stops the server on
    their behalf) and committed. Ending tokens that are already over is harmless.
    """
    query = select(HubSession).where(
        HubSession.username == username, HubSession.revoked_at.is_(None)
    )
    if project_code is not None:
        query = query.where(HubSession.project_code == project_code)
    now = utc_now()
    ended = [record for record in db.execute(query).scalars() if _as_utc(record.expires_at) > now]
    for record in ended:
        record.revoked_at = now
    record_event(
        db,
        actor=actor or username,
        action="hub.session.end",
        target=project_code or username,
        outcome="ok",
        reason=f"{len(ended)} hub session(s) of {username} ended",
        details={"sessions": [record.id for record in ended], "user": username},
    )
    db.commit()
    return len(ended)

"""Per-session tokens (``srs.hub.tokens``): issued only to people who may work in the project,
stored as a hash, resolved while live, refused once expired, ended or never issued, and every
start, end and refusal audited, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from registry_fixtures import PROJECT, populate
from srs.governance.access import AccessDenied
from srs.governance.audit import verify_chain
from srs.governance.registry import Registry
from srs.governance.registry.models import AuditEvent, HubSession, Researcher, utc_now
from srs.hub.tokens import (
    SessionTokenError,
    TokenRefused,
    ended_tokens,
    issue_session_token,
    resolve_session_token,
    revoke_session_tokens,
    token_digest,
)


def events(registry: Registry, action: str) -> list[AuditEvent]:
    with registry.sessions() as db:
        return list(
            db.execute(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            ).scalars()
        )


def issue(registry: Registry, policies, username: str = "ana", **options) -> str:
    with registry.sessions() as db:
        return issue_session_token(
            db, username=username, project_code=PROJECT, policies=policies, **options
        )


def resolve(registry: Registry, token: str, policies, remote: str | None = None):
    with registry.sessions() as db:
        return resolve_session_token(db, token, policies, remote=remote)


def test_a_token_is_issued_stored_as_its_hash_and_resolved(registry, policies) -> None:
    populate(registry, policies)
    token = issue(registry, policies, ttl_hours=2)
    assert len(token) >= 40  # 32 random bytes, URL-safe
    assert resolve(registry, token, policies) == ("ana", PROJECT)
    with registry.sessions() as db:
        (stored,) = db.execute(select(HubSession)).scalars()
        columns = [getattr(stored, c.key) for c in HubSession.__table__.columns]
    assert stored.token_sha256 == hashlib.sha256(token.encode()).hexdigest() == token_digest(token)
    assert token not in map(str, columns)  # only the hash is kept
    assert (stored.username, stored.project_code, stored.revoked_at) == ("ana", PROJECT, None)
    lifetime = stored.expires_at - stored.created_at
    assert lifetime == timedelta(hours=2)
    (start,) = events(registry, "hub.session.start")
    assert (start.actor, start.target, start.outcome) == ("ana", PROJECT, "ok")
    assert json.loads(start.details)["session"] == stored.id
    assert issue(registry, policies) != token  # a fresh token every time


def test_people_who_may_not_work_in_the_project_get_no_token(registry, policies) -> None:
    people = populate(registry, policies)
    refusals = {
        people.outsider: "not a member of project P001",
        people.expired: "expired",
        people.checker: r"may not output.create",
        "nobody": "no account named 'nobody'",
    }
    for username, reason in refusals.items():
        with pytest.raises(AccessDenied, match=reason):
            issue(registry, policies, username=username)
    with registry.sessions() as db:
        assert db.execute(select(HubSession)).first() is None
    denied = [e.actor for e in events(registry, "access.output.create") if e.outcome == "deny"]
    assert denied == list(refusals)
    assert events(registry, "hub.session.start") == []
    with pytest.raises(SessionTokenError, match="positive number of hours"):
        issue(registry, policies, ttl_hours=0)


def test_expired_ended_and_unknown_tokens_are_refused_and_audited(registry, policies) -> None:
    populate(registry, policies)
    expiring, ending = issue(registry, policies), issue(registry, policies)
    with registry.sessions() as db:
        db.execute(
            update(HubSession)
            .where(HubSession.token_sha256 == token_digest(expiring))
            .values(  # issued two hours ago for one hour
                created_at=utc_now() - timedelta(hours=2),
                expires_at=utc_now() - timedelta(hours=1),
            )
        )
        db.commit()
    with pytest.raises(TokenRefused, match=r"expired at .*restart your server"):
        resolve(registry, expiring, policies, remote="10.0.0.7")
    with registry.sessions() as db:
        assert revoke_session_tokens(db, username="ana", project_code=PROJECT) == 1
    with pytest.raises(TokenRefused, match="was ended at"):
        resolve(registry, ending, policies)
    for unknown in ("not-a-token", ""):
        with pytest.raises(TokenRefused, match="not one the hub issued"):
            resolve(registry, unknown, policies, remote="10.0.0.9")
    refusals = events(registry, "hub.session.resolve")
    assert [(e.actor, e.target, e.outcome) for e in refusals] == [
        ("ana", PROJECT, "deny"),
        ("ana", PROJECT, "deny"),
        ("(unknown)", "hub-api", "deny"),
        ("(unknown)", "hub-api", "deny"),
    ]
    assert json.loads(refusals[0].details)["remote"] == "10.0.0.7"
    assert "expired" in refusals[0].reason and "ended" in refusals[1].reason
    (end,) = events(registry, "hub.session.end")
    assert (end.actor, end.target, end.outcome) == ("ana", PROJECT, "ok")
    with registry.sessions() as db:
        assert verify_chain(db).intact


def test_a_token_stops_working_when_its_holder_may_no_longer_work(registry, policies) -> None:
    populate(registry, policies)
    token = issue(registry, policies)
    with registry.sessions() as db:
        db.execute(
            update(Researcher)
            .where(Researcher.username == "ana")
            .values(accreditation_expiry=utc_now().date() - timedelta(days=1))
        )
        db.commit()
    with pytest.raises(AccessDenied, match="accreditation .* expired") as refused:
        resolve(registry, token, policies)
    assert not isinstance(refused.value, TokenRefused)  # a live token, a lapsed person
    denial = events(registry, "access.output.create")[-1]
    assert (denial.actor, denial.outcome) == ("ana", "deny")


def test_revoking_ends_only_the_live_tokens_asked_for(registry, policies) -> None:
    populate(registry, policies)
    first, second = issue(registry, policies), issue(registry, policies)
    with registry.sessions() as db:
        assert ended_tokens(db, [token_digest(first), token_digest(second), "f" * 64]) == {"f" * 64}
        assert revoke_session_tokens(db, username="ana", project_code="P999") == 0
        assert revoke_session_tokens(db, username="ben") == 0
        assert revoke_session_tokens(db, username="ana", actor="hub") == 2
        assert revoke_session_tokens(db, username="ana") == 0  # nothing left to end
        assert ended_tokens(db, [token_digest(first)]) == {token_digest(first)}
    ends = events(registry, "hub.session.end")
    assert [(e.actor, e.target) for e in ends] == [
        ("ana", "P999"),
        ("ben", "ben"),
        ("hub", "ana"),
        ("ana", "ana"),
    ]
    assert len(json.loads(ends[2].details)["sessions"]) == 2

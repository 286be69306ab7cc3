"""Server-side sessions of the checkers' UI: only a hash is stored, and a session that ended
(signed out, idle, too old, replaced, account locked) never resumes, whoever replays its id."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from output_checking.checker_sessions import (
    end_session,
    resume_session,
    session_digest,
    start_session,
)
from registry_fixtures import populate
from srs.governance.registry.models import AuditEvent, CheckerSession, Researcher, utc_now


@pytest.fixture
def db(registry, policies):
    populate(registry, policies)
    with registry.sessions() as session:
        yield session


def stored(db) -> list[CheckerSession]:
    return list(db.execute(select(CheckerSession).order_by(CheckerSession.id)).scalars())


def audited(db, action: str) -> list[AuditEvent]:
    return [
        e
        for e in db.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars()
        if e.action == action
    ]


def test_only_the_hash_of_a_session_id_is_stored(db, policies) -> None:
    session_id = start_session(db, username="cho", policies=policies)
    assert len(session_id) >= 43  # 32 random bytes, URL-safe
    (record,) = stored(db)
    assert record.session_sha256 == session_digest(session_id) != session_id
    assert session_id not in {str(v) for v in vars(record).values()}
    (started,) = audited(db, "checker_session.start")
    assert session_id not in started.reason + started.details
    assert resume_session(db, session_id, policies=policies) == "cho"


def test_every_start_is_a_new_id_and_replaces_the_browsers_old_one(db, policies) -> None:
    first = start_session(db, username="cho", policies=policies)
    second = start_session(db, username="cho", policies=policies, replacing=first)
    assert first != second
    assert resume_session(db, first, policies=policies) is None
    assert resume_session(db, second, policies=policies) == "cho"
    assert stored(db)[0].ended_reason == "replaced by a new sign-in"


def test_a_session_replayed_after_it_ended_is_refused_and_audited(db, policies) -> None:
    session_id = start_session(db, username="cho", policies=policies)
    end_session(db, session_id)
    for _ in range(2):
        assert resume_session(db, session_id, policies=policies) is None
    replays = audited(db, "checker_session.resume")
    assert [e.outcome for e in replays] == ["deny", "deny"]
    assert "(signed out)" in replays[0].reason and replays[0].actor == "cho"
    (ended,) = audited(db, "checker_session.end")
    assert "signed out" in ended.reason


def test_a_session_idle_past_the_policy_timeout_ends(db, policies) -> None:
    idle = timedelta(minutes=policies.access.idle_timeout_minutes)
    start = utc_now()
    session_id = start_session(db, username="cho", policies=policies, now=start)
    # Each use restarts the idle timer: used just inside the timeout, twice over.
    just_inside = start + idle - timedelta(seconds=1)
    assert resume_session(db, session_id, policies=policies, now=just_inside) == "cho"
    later = just_inside + idle - timedelta(seconds=1)
    assert resume_session(db, session_id, policies=policies, now=later) == "cho"
    too_late = later + idle + timedelta(seconds=1)
    assert resume_session(db, session_id, policies=policies, now=too_late) is None
    assert resume_session(db, session_id, policies=policies, now=later) is None  # ended for good
    assert stored(db)[0].ended_reason.startswith("idle for more than")


def test_a_busy_session_still_ends_at_its_absolute_lifetime(db, policies) -> None:
    lifetime = timedelta(hours=policies.access.checker_session_max_hours)
    step = timedelta(minutes=policies.access.idle_timeout_minutes) / 2
    start = utc_now()
    session_id = start_session(db, username="cho", policies=policies, now=start)
    moment = start
    while moment + step <= start + lifetime:
        moment += step
        assert resume_session(db, session_id, policies=policies, now=moment) == "cho"
    moment += step
    assert resume_session(db, session_id, policies=policies, now=moment) is None
    assert "hours ago" in stored(db)[0].ended_reason


def test_locking_the_account_ends_its_sessions(db, policies) -> None:
    session_id = start_session(db, username="cho", policies=policies)
    db.execute(update(Researcher).where(Researcher.username == "cho").values(locked=True))
    db.commit()
    assert resume_session(db, session_id, policies=policies) is None
    assert stored(db)[0].ended_reason == "the account is locked or no longer registered"


def test_ids_the_registry_never_issued_are_no_one(db, policies) -> None:
    start_session(db, username="cho", policies=policies)
    for forged in ("", None, "cho", "x" * 43, session_digest("cho")):
        assert resume_session(db, forged, policies=policies) is None
    end_session(db, "never issued")  # nothing to end, nothing raised
    assert [r.ended_at for r in stored(db)] == [None]

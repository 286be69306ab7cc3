"""Verifying the audit chain from an event to the head (what a release relies on), and the read
helpers a release uses: events about a target, details that were stored cut."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from srs.governance.audit import (
    DETAILS_CUT,
    event_details,
    events_about,
    record_event,
    verify_chain,
)
from srs.governance.registry import Registry


def append(registry: Registry, count: int) -> None:
    with registry.sessions() as session:
        for n in range(count):
            record_event(
                session,
                actor="ana",
                action="output.approve" if n % 2 else "request.submitted",
                target=f"request/{n % 3}",
                outcome="ok",
                details={"n": n},
            )
        session.commit()


def as_attacker(registry: Registry, statement: str) -> None:
    with registry.engine.begin() as connection:
        if registry.engine.dialect.name == "postgresql":
            connection.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        else:
            connection.execute(text("DROP TRIGGER audit_events_no_update"))
            connection.execute(text("DROP TRIGGER audit_events_no_delete"))
        connection.execute(text(statement))


def test_a_segment_is_verified_to_the_head_and_names_an_edit_in_it(registry: Registry) -> None:
    append(registry, 10)
    with registry.sessions() as session:
        whole, segment = verify_chain(session), verify_chain(session, from_seq=6)
    assert whole.intact and segment.intact and segment.events_checked == 5
    assert segment.last_hash == whole.last_hash
    as_attacker(registry, "UPDATE audit_events SET actor = 'eve' WHERE seq = 8")
    with registry.sessions() as session:
        broken = verify_chain(session, from_seq=6)
        assert not broken.intact and broken.first_bad_seq == 8 and "edited" in broken.problem
        # An edit before the segment is the whole log's business, not the segment's.
        assert verify_chain(session, from_seq=9).intact


def test_a_segment_catches_deletions_and_a_start_past_the_end(registry: Registry) -> None:
    append(registry, 6)
    as_attacker(registry, "DELETE FROM audit_events WHERE seq = 4")
    with registry.sessions() as session:
        assert verify_chain(session, from_seq=2).first_bad_seq == 4
        assert verify_chain(session, from_seq=4).problem.startswith("event 4 is missing")
        assert "missing" in verify_chain(session, from_seq=99).problem
        with pytest.raises(ValueError, match="numbered from 1"):
            verify_chain(session, from_seq=0)


def test_events_about_a_target_and_cut_details(registry: Registry) -> None:
    append(registry, 9)
    with registry.sessions() as session:
        record_event(
            session,
            actor="ana",
            action="output.create",
            target="P001",
            outcome="ok",
            details={f"k{n}": "x" * 60 for n in range(100)},
            max_field_chars=500,
        )
        session.commit()
        about = events_about(session, "request/1", ["output.approve"])
        assert [e.seq for e in about] == [2, 8] and all(e.target == "request/1" for e in about)
        [cut] = events_about(session, "P001")
        assert DETAILS_CUT in cut.details and event_details(cut) is None
        assert event_details(about[0]) == {"n": 1}

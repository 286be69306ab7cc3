"""The audit log: append-only, hash-chained, and any edit, deletion, insertion or reordering is caught."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from srs.audit import GENESIS_HASH, export_events, record_event, tail_events, verify_chain
from srs.registry import Registry


def append(registry: Registry, count: int, actor: str = "ana") -> None:
    with registry.sessions() as session:
        for n in range(count):
            record_event(
                session,
                actor=actor,
                action="dataset.read",
                target=f"linked/t{n}",
                outcome="allow" if n % 2 else "deny",
                reason=f"reason {n}",
                details={"n": n},
            )
        session.commit()


def as_attacker(registry: Registry, *statements: str) -> None:
    """Someone with database-owner rights drops the append-only triggers, then edits rows."""
    with registry.engine.begin() as connection:
        if registry.engine.dialect.name == "postgresql":
            connection.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        else:
            connection.execute(text("DROP TRIGGER audit_events_no_update"))
            connection.execute(text("DROP TRIGGER audit_events_no_delete"))
        for statement in statements:
            connection.execute(text(statement))


def report(registry: Registry):
    with registry.sessions() as session:
        return verify_chain(session)


def test_empty_log_is_intact(registry: Registry) -> None:
    result = report(registry)
    assert result.intact and result.events_checked == 0


def test_chain_links_each_event_to_the_previous(registry: Registry) -> None:
    append(registry, 5)
    with registry.sessions() as session:
        events = tail_events(session, 10)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.event_hash for a, b in zip(events, events[1:], strict=False))
    assert report(registry).intact
    assert report(registry).events_checked == 5


def test_database_refuses_update_and_delete(registry: Registry) -> None:
    append(registry, 2)
    for statement in (
        "UPDATE audit_events SET reason = 'x' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 2",
    ):
        with pytest.raises(DBAPIError, match="append-only"), registry.engine.begin() as conn:
            conn.execute(text(statement))
    assert report(registry).intact


def test_edited_event_is_named(registry: Registry) -> None:
    append(registry, 6)
    as_attacker(registry, "UPDATE audit_events SET outcome = 'ok' WHERE seq = 4")
    result = report(registry)
    assert not result.intact
    assert result.first_bad_seq == 4
    assert "edited" in result.problem
    assert result.events_checked == 3


def test_deleted_event_is_named(registry: Registry) -> None:
    append(registry, 6)
    as_attacker(registry, "DELETE FROM audit_events WHERE seq = 3")
    result = report(registry)
    assert result.first_bad_seq == 3
    assert "missing" in result.problem


def test_deleted_tail_is_detected_by_the_head(registry: Registry) -> None:
    append(registry, 6)
    as_attacker(registry, "DELETE FROM audit_events WHERE seq >= 5")
    result = report(registry)
    assert result.first_bad_seq == 5
    assert "head records event 6" in result.problem


def test_swapped_events_are_detected(registry: Registry) -> None:
    append(registry, 6)
    # Swap the positions of events 2 and 3 (renumber through a spare value).
    as_attacker(
        registry,
        "UPDATE audit_events SET seq = 1000 WHERE seq = 2",
        "UPDATE audit_events SET seq = 2 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 1000",
    )
    result = report(registry)
    assert not result.intact
    assert result.first_bad_seq == 2


def test_swapped_contents_are_detected(registry: Registry) -> None:
    append(registry, 6)
    as_attacker(
        registry,
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2",
        "UPDATE audit_events SET actor = 'ana' WHERE seq = 5",
    )
    assert report(registry).first_bad_seq == 2


def test_forged_event_inserted_mid_chain_is_detected(registry: Registry) -> None:
    append(registry, 4)
    with registry.sessions() as session:
        e2 = tail_events(session, 10)[1]
    # A forger renumbers 3..4 upwards and slips a new event in at 3, chained to event 2's hash
    # but with a made-up hash of its own (they cannot make event 4's prev_hash match).
    as_attacker(
        registry,
        "UPDATE audit_events SET seq = seq + 10 WHERE seq >= 3",
        "UPDATE audit_events SET seq = seq - 9 WHERE seq >= 13",
        "INSERT INTO audit_events (seq, occurred_at, actor, action, target, outcome, reason, "
        "details, prev_hash, event_hash) VALUES (3, '2026-01-01T00:00:00+00:00', 'mallory', "
        f"'dataset.read', 'x', 'allow', '', '{{}}', '{e2.event_hash}', '{'f' * 64}')",
    )
    result = report(registry)
    assert result.first_bad_seq == 3
    assert not result.intact


def test_export_is_json_lines_in_order(registry: Registry) -> None:
    append(registry, 3)
    with registry.sessions() as session:
        rows = [json.loads(line) for line in export_events(session)]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[2]["details"] == {"n": 2}
    assert rows[0]["outcome"] == "deny"


def test_unknown_outcome_is_refused(registry: Registry) -> None:
    with registry.sessions() as session, pytest.raises(ValueError, match="outcome"):
        record_event(session, actor="a", action="b", target="c", outcome="maybe")


def test_concurrent_writers_keep_one_chain(registry: Registry) -> None:
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for n in range(15):
                with registry.sessions() as session:
                    record_event(session, actor=name, action="x", target=str(n), outcome="ok")
                    session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    result = report(registry)
    assert result.intact and result.events_checked == 60

"""The audit log: append-only, hash-chained, and any edit, deletion, insertion or reordering is caught."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from srs.governance.audit import (
    DEFAULT_FIELD_MAX_CHARS,
    GENESIS_HASH,
    MIN_FIELD_MAX_CHARS,
    bounded_details,
    canonical_details,
    cut_text,
    event_as_dict,
    export_events,
    record_event,
    tail_events,
    use_field_bound,
    verify_chain,
)
from srs.governance.registry import Registry, open_registry
from srs.governance.registry.models import AuditEvent


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


# ------------------------------------------------------------------ bounded fields
HUGE = "linked/" + "v" * 5_000_000
TEXT_FIELDS = ("actor", "action", "target", "outcome", "reason", "details")
# The database's own widths of the narrow columns (srs.governance.registry.models.AuditEvent).
COLUMN_WIDTHS = {"actor": 64, "action": 80}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def last_event(registry: Registry) -> AuditEvent:
    with registry.sessions() as session:
        return session.execute(select(AuditEvent).order_by(AuditEvent.seq.desc())).scalars().first()


def record(registry: Registry, **fields) -> AuditEvent:
    with registry.sessions() as session:
        record_event(
            session, **{"actor": "ana", "action": "x", "target": "t", "outcome": "ok"} | fields
        )
        session.commit()
    return last_event(registry)


def assert_bounded(event: AuditEvent, bound: int) -> None:
    for name in TEXT_FIELDS:
        width = min(bound, COLUMN_WIDTHS.get(name, bound))
        assert len(getattr(event, name)) <= width, (name, len(getattr(event, name)))


def test_the_default_bound_is_the_shipped_policy(policies) -> None:
    assert policies.access.audit_field_max_chars == DEFAULT_FIELD_MAX_CHARS


def test_a_short_event_is_stored_as_given(registry: Registry) -> None:
    details = {"output_id": 7, "files": {"a.csv": "ab12"}, "ids": [1, 2], "dp": None, "ok": True}
    event = record(
        registry, target="linked/journeys", reason="ana may dataset.read", details=details
    )
    assert (event.target, event.reason) == ("linked/journeys", "ana may dataset.read")
    assert event_as_dict(event)["details"] == details
    assert event.details == canonical_details(details)


def test_every_field_of_a_huge_event_is_cut_marked_and_keeps_the_whole_digest(registry) -> None:
    digest = sha256(HUGE)
    event = record(
        registry,
        actor="a" * 10_000,
        action="dataset." + "r" * 10_000,
        target=HUGE,
        outcome="deny",
        reason=f"project P001 has no grant for {HUGE}",
        details={"project": "P001", "dataset": HUGE, "nested": {"seen": [HUGE, 5, None, 1.5]}},
    )
    assert_bounded(event, DEFAULT_FIELD_MAX_CHARS)
    assert event.target.startswith("linked/vvvv")
    assert event.target.endswith(f"\u2026 [cut: 5000007 chars, sha256 {digest}]")
    assert event.reason.startswith("project P001 has no grant for linked/vvvv")
    assert event.actor.startswith("aaaa") and "\u2026[sha256:" in event.actor
    details = json.loads(event.details)
    assert details["project"] == "P001" and details["dataset"].endswith(f"sha256 {digest}]")
    assert details["nested"]["seen"][0].endswith(f"sha256 {digest}]")
    assert details["nested"]["seen"][1:] == [5, None, 1.5]
    assert report(registry).intact


def test_a_bound_is_given_or_carried_by_the_database_session(registry: Registry) -> None:
    event = record(registry, target=HUGE, reason=HUGE, details={"d": HUGE}, max_field_chars=300)
    assert_bounded(event, 300)
    assert len(event.target) == 300 and sha256(HUGE) in event.target
    use_field_bound(registry.sessions, 500)
    event = record(registry, target=HUGE, reason=HUGE, details={"d": HUGE})
    assert_bounded(event, 500) and len(event.target) == 500
    event = record(registry, target=HUGE, max_field_chars=250)  # the caller's value wins
    assert len(event.target) == 250
    assert report(registry).intact


@pytest.mark.parametrize("bound", [MIN_FIELD_MAX_CHARS - 1, 0, True, 2000.0, "2000"])
def test_a_bound_too_small_for_the_mark_is_refused(registry: Registry, bound) -> None:
    with registry.sessions() as session, pytest.raises(ValueError, match="at least 122"):
        record_event(
            session, actor="a", action="b", target="c", outcome="ok", max_field_chars=bound
        )
    with pytest.raises(ValueError, match="audit field bound"):
        use_field_bound(registry.sessions, bound)


def test_the_details_are_bounded_as_a_whole(registry: Registry) -> None:
    many = {f"key{n}": n for n in range(100_000)}
    event = record(registry, details=many)
    assert len(event.details) <= DEFAULT_FIELD_MAX_CHARS
    whole = canonical_details(many)
    (cut,) = json.loads(event.details).values()
    assert cut.startswith('{"key0":0,"key1":1,')
    assert cut.endswith(f"[cut: {len(whole)} chars, sha256 {sha256(whole)}]")
    # Several long texts: each is cut finer, every key and every digest kept.
    texts = {f"part{n}": f"{n}" * 5_000 for n in range(5)}
    details = json.loads(record(registry, details=texts).details)
    assert sorted(details) == sorted(texts)
    for key, value in texts.items():
        assert details[key].endswith(f"[cut: 5000 chars, sha256 {sha256(value)}]")
    assert report(registry).intact


def test_values_json_cannot_hold_are_stored_as_text(registry: Registry) -> None:
    details = {
        "day": date(2026, 11, 22),
        "path": Path("/srv/srs"),
        3: "three",
        None: "nothing",
        "huge number": 10**5000,
        "tuple": (1, "a"),
        ("a", "b"): "tuple key",
    }
    stored = json.loads(record(registry, details=details).details)
    assert stored["day"] == "2026-11-22" and stored["path"] == "/srv/srs"
    assert stored["3"] == "three" and stored["null"] == "nothing"
    assert stored["tuple"] == [1, "a"] and stored["('a', 'b')"] == "tuple key"
    assert stored["huge number"].startswith("0x") and "[cut: " in stored["huge number"]
    assert report(registry).intact


def test_unicode_is_cut_by_characters_and_stored_as_valid_text(registry: Registry) -> None:
    emoji = "\U0001f600" * 5_000  # astral characters, two UTF-16 units each
    event = record(registry, target="é" + emoji, reason="\ud83d\ude00" * 3_000)
    assert len(event.target) <= DEFAULT_FIELD_MAX_CHARS
    assert event.target.startswith("é\U0001f600") and sha256("é" + emoji) in event.target
    # A surrogate pair given as two code units is one character: never cut in two.
    assert event.reason.startswith("\U0001f600") and "\ud83d" not in event.reason
    event.reason.encode("utf-8")  # nothing half a character left
    # What no database can hold (a lone surrogate, a NUL) is replaced, not a failed write.
    event = record(registry, target="bad\ud800name\x00", details={"k\udfff": "v\x00"})
    assert event.target == "bad\ufffdname\ufffd"
    assert json.loads(event.details) == {"k\ufffd": "v\ufffd"}
    assert report(registry).intact


# Text of any length and alphabet (surrogates included), and details nested any way.
any_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(categories=["Cs", "Lo", "So", "Cc"]), max_size=40),
    st.builds(
        lambda part, times: part * times, st.text(min_size=1, max_size=8), st.integers(1, 800)
    ),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**70),
    st.floats(allow_nan=False),
    any_text,
    st.dates(),
)
any_details = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.one_of(any_text, st.integers()), inner, max_size=6)
    ),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(text=any_text, bound=st.integers(MIN_FIELD_MAX_CHARS, 3_000))
def test_a_cut_text_never_exceeds_its_bound(text: str, bound: int) -> None:
    cut = cut_text(text, bound)
    assert len(cut) <= bound
    cut.encode("utf-8")  # storable: no half a surrogate pair, no lone one
    if any("\ud800" <= c <= "\udfff" for c in text):
        return  # pairs joined, lone ones replaced: checked by the unicode test above
    storable = text.replace("\x00", "\ufffd")
    if len(storable) <= bound:
        assert cut == storable
    else:
        assert cut.startswith(storable[:10])
        assert cut.endswith(f"[cut: {len(storable)} chars, sha256 {sha256(storable)}]")


@settings(max_examples=300, deadline=None)
@given(details=st.dictionaries(any_text, any_details, max_size=8), bound=st.integers(122, 3_000))
def test_bounded_details_are_json_within_the_bound(details, bound: int) -> None:
    stored = bounded_details(details, bound)
    assert len(stored) <= bound
    assert isinstance(json.loads(stored), dict)


def test_no_stored_field_ever_exceeds_the_bound(tmp_path: Path) -> None:
    registry = open_registry(f"sqlite:///{tmp_path / 'audit.db'}", migrate=True)

    @settings(max_examples=150, deadline=None)
    @given(
        fields=st.fixed_dictionaries(
            {"actor": any_text, "action": any_text, "target": any_text, "reason": any_text}
        ),
        details=st.dictionaries(any_text, any_details, max_size=8),
        bound=st.integers(MIN_FIELD_MAX_CHARS, 2_500),
    )
    def check(fields: dict[str, str], details: dict, bound: int) -> None:
        event = record(registry, **fields, details=details, max_field_chars=bound)
        assert_bounded(event, bound)
        assert isinstance(json.loads(event.details), dict)

    try:
        check()
        assert report(registry).intact
    finally:
        registry.dispose()

"""Sign-in: Argon2id password hashes, lock-out after the policy's consecutive failures, audit;
one message and the same Argon2id work for every refusal, so sign-in cannot list accounts."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from registry_fixtures import populate
from srs.errors import SRSError
from srs.governance.access import AccessDenied
from srs.governance.registry import sign_in as sign_in_module
from srs.governance.registry.models import AuditEvent, Researcher
from srs.governance.registry.sign_in import (
    SIGN_IN_REFUSED,
    SignInRefused,
    check_sign_in,
    dummy_password_hash,
    set_password,
)

PASSWORD = "a long enough passphrase"


@pytest.fixture
def people(registry, policies):
    people = populate(registry, policies)
    with registry.sessions() as s:
        set_password(s, actor="admin", policies=policies, username="cho", password=PASSWORD)
    return people


def sign_in(registry, policies, username="cho", password=PASSWORD):
    with registry.sessions() as s:
        return check_sign_in(
            s, username=username, password=password, policies=policies, service="test"
        )


def sign_ins(registry) -> list[tuple[str, str, str]]:
    with registry.sessions() as s:
        return [
            (e.actor, e.outcome, e.reason)
            for e in s.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars()
            if e.action == "sign_in"
        ]


def test_right_password_signs_in_and_is_audited(registry, policies, people):
    assert sign_in(registry, policies).username == "cho"
    assert sign_ins(registry) == [("cho", "allow", "")]


def test_consecutive_failures_lock_the_account_at_the_policy_limit(registry, policies, people):
    limit = policies.access.failed_login_limit
    for attempt in range(1, limit):
        with pytest.raises(SignInRefused):
            sign_in(registry, policies, password=f"wrong {attempt}")
    with pytest.raises(SignInRefused):
        sign_in(registry, policies, password="wrong again")
    with pytest.raises(SignInRefused):
        sign_in(registry, policies)  # even the right password, once locked
    with registry.sessions() as s:
        person = s.execute(select(Researcher).where(Researcher.username == "cho")).scalar_one()
        assert person.locked and f"{limit} consecutive" in person.locked_reason
    refusals = sign_ins(registry)
    assert [outcome for _, outcome, _ in refusals] == ["deny"] * (limit + 1)
    # The lock-out is on record, with why, though the person is not told.
    assert refusals[limit - 1][2] == f"wrong password; locked after {limit} consecutive failures"
    assert refusals[limit][2].startswith("account locked (")


def test_a_success_resets_the_failure_count(registry, policies, people):
    limit = policies.access.failed_login_limit
    for _ in range(limit - 1):
        with pytest.raises(SignInRefused):
            sign_in(registry, policies, password="nope nope nope")
    sign_in(registry, policies)
    for _ in range(limit - 1):
        with pytest.raises(SignInRefused):
            sign_in(registry, policies, password="nope nope nope")
    assert sign_in(registry, policies).username == "cho"


def test_unknown_accounts_and_accounts_without_password_are_refused_alike(
    registry, policies, people
):
    for username in ("nobody", "ana"):
        with pytest.raises(SignInRefused, match="not recognised"):
            sign_in(registry, policies, username=username)
    reasons = [reason for _, _, reason in sign_ins(registry)]
    assert reasons == ["no such account", "no password set"]


def test_every_refusal_shows_the_same_message_whatever_the_reason(registry, policies, people):
    """Enumeration by message: an unknown account, one without a password, a wrong password,
    the failure that locks, and a locked account (even with its right password) all read alike,
    while the audit log keeps each real reason."""
    shown = []

    def refused(**attempt) -> None:
        with pytest.raises(SignInRefused) as caught:
            sign_in(registry, policies, **attempt)
        shown.append(str(caught.value))

    refused(username="nobody")
    refused(username="ana")  # no password set
    for attempt in range(policies.access.failed_login_limit):  # the last one locks
        refused(password=f"wrong {attempt}")
    refused()  # the right password of a locked account
    assert set(shown) == {SIGN_IN_REFUSED}
    assert "locked" in SIGN_IN_REFUSED and "administrator" in SIGN_IN_REFUSED
    reasons = [reason for _, _, reason in sign_ins(registry)]
    assert reasons[:3] == ["no such account", "no password set", "wrong password (1 of 5)"]
    assert "locked after" in reasons[-2] and reasons[-1].startswith("account locked")


def test_unknown_locked_and_passwordless_accounts_still_run_argon2(
    registry, policies, people, monkeypatch
):
    """Enumeration by time: every refusal costs one Argon2id verification, and an account that
    may not sign in is checked against the dummy hash, never its own (so a locked account's
    password cannot be guessed either)."""
    verified: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            verified.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(sign_in_module, "_HASHER", CountingHasher())
    with registry.sessions() as s:
        own_hash = s.execute(
            select(Researcher.password_hash).where(Researcher.username == "cho")
        ).scalar_one()
    for username in ("nobody", "ana"):  # unknown; no password set
        with pytest.raises(SignInRefused):
            sign_in(registry, policies, username=username)
    with pytest.raises(SignInRefused):
        sign_in(registry, policies, password="not the password")
    with registry.sessions() as s:
        s.execute(update(Researcher).where(Researcher.username == "cho").values(locked=True))
        s.commit()
    with pytest.raises(SignInRefused):
        sign_in(registry, policies)  # right password, locked account
    dummy = dummy_password_hash()
    assert verified == [dummy, dummy, own_hash, dummy]
    assert dummy.startswith("$argon2id$") and dummy.split("$")[3] == own_hash.split("$")[3]


def test_only_admins_set_other_peoples_passwords(registry, policies, people):
    with registry.sessions() as s:
        with pytest.raises(AccessDenied):
            set_password(s, actor="ana", policies=policies, username="cho", password=PASSWORD)
        with pytest.raises(SRSError, match="at least 12"):
            set_password(s, actor="ana", policies=policies, username="ana", password="short")
        set_password(s, actor="ana", policies=policies, username="ana", password=PASSWORD)
    assert sign_in(registry, policies, username="ana").username == "ana"

"""Sign-in: Argon2id password hashes, lock-out after the policy's consecutive failures, audit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from registry_fixtures import populate
from srs.access import AccessDenied
from srs.errors import SRSError
from srs.registry.models import AuditEvent, Researcher
from srs.registry.sign_in import SignInRefused, check_sign_in, set_password

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
        with pytest.raises(SignInRefused, match="wrong username or password"):
            sign_in(registry, policies, password=f"wrong {attempt}")
    with pytest.raises(SignInRefused, match="now locked"):
        sign_in(registry, policies, password="wrong again")
    with pytest.raises(SignInRefused, match="locked"):
        sign_in(registry, policies)  # even the right password, once locked
    with registry.sessions() as s:
        person = s.execute(select(Researcher).where(Researcher.username == "cho")).scalar_one()
        assert person.locked and f"{limit} consecutive" in person.locked_reason
    assert [outcome for _, outcome, _ in sign_ins(registry)] == ["deny"] * (limit + 1)


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
        with pytest.raises(SignInRefused, match="wrong username or password"):
            sign_in(registry, policies, username=username)
    reasons = [reason for _, _, reason in sign_ins(registry)]
    assert reasons == ["no such account", "no password set"]


def test_only_admins_set_other_peoples_passwords(registry, policies, people):
    with registry.sessions() as s:
        with pytest.raises(AccessDenied):
            set_password(s, actor="ana", policies=policies, username="cho", password=PASSWORD)
        with pytest.raises(SRSError, match="at least 12"):
            set_password(s, actor="ana", policies=policies, username="ana", password="short")
        set_password(s, actor="ana", policies=policies, username="ana", password=PASSWORD)
    assert sign_in(registry, policies, username="ana").username == "ana"

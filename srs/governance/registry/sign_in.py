"""Passwords and sign-in: Argon2id hashes, failed-login counting and lock-out (safe people).

A password is stored only as an Argon2id hash (memory-hard, RFC 9106 parameters of
argon2-cffi). ``check_sign_in`` refuses unknown and locked accounts, counts consecutive
failures and locks the account at the access policy's ``failed_login_limit``; every attempt,
allowed or refused, is audited with its reason, while the person is shown one message for
every refusal after the same Argon2id work, so sign-in cannot be used to list accounts. The
web front doors (checker UI, JupyterHub) call it.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.errors import SRSError
from srs.governance.access import authorise
from srs.governance.audit import record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.accounts import get_researcher
from srs.governance.registry.models import Researcher

MINIMUM_PASSWORD_LENGTH = 12  # NIST SP 800-63B allows 8; a research environment asks more
_HASHER = PasswordHasher()  # Argon2id, 64 MiB, 3 passes (argon2-cffi's RFC 9106 low-memory profile)


class SignInRefused(SRSError):
    """Sign-in was refused; the message is safe to show (it never says which part was wrong)."""


# What every refused password sign-in shows, whatever the reason (the audit log keeps it): a
# different message for an unknown or a locked account would let anyone list the accounts.
SIGN_IN_REFUSED = (
    "account or password not recognised, or the account is locked; ask an administrator"
)


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password``, refusing passwords shorter than the minimum."""
    if len(password) < MINIMUM_PASSWORD_LENGTH:
        raise SRSError(f"a password needs at least {MINIMUM_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def set_password(
    session: Session, *, actor: str, policies: PolicySet, username: str, password: str
) -> None:
    """Set ``username``'s password (an administrator, or the person themself); audited."""
    if actor != username:
        authorise(session, username=actor, action="researcher.manage", policies=policies)
    person = get_researcher(session, username)
    person.password_hash = hash_password(password)
    person.failed_login_count = 0
    record_event(
        session, actor=actor, action="researcher.set_password", target=username, outcome="ok"
    )
    session.commit()


@functools.cache
def dummy_password_hash() -> str:
    """An Argon2id hash of a random password nobody knows, made once with the same parameters as
    real hashes: sign-ins for unknown and locked accounts are checked against it, so they cost
    what a wrong password costs. Front doors call it at start-up so no sign-in pays for it."""
    return _HASHER.hash(secrets.token_urlsafe(32))


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_sign_in(
    session: Session, *, username: str, password: str, policies: PolicySet, service: str
) -> Researcher:
    """The account if ``password`` is right and it may sign in, else ``SignInRefused``.

    Every refusal shows the same message (``SIGN_IN_REFUSED``) after the same work: an unknown
    account, one without a password and a locked one are checked against a dummy Argon2id hash
    (never against their own, so a locked account's password cannot be guessed either), so
    neither the message nor the time tells whether an account exists, is locked or was only
    given the wrong password. The audit event keeps the real reason, and is committed before the
    refusal is raised; a wrong password counts towards the lock-out, a right one resets the count.

    >>> check_sign_in(db, username="nobody", password="x", policies=policies, service="hub")  # doctest: +SKIP
    Traceback (most recent call last):
    SignInRefused: account or password not recognised, or the account is locked; ask an administrator
    """
    person = session.execute(
        select(Researcher).where(Researcher.username == username)
    ).scalar_one_or_none()

    def refuse(reason: str) -> SignInRefused:
        record_event(
            session,
            actor=username[:64] or "(blank)",
            action="sign_in",
            target=service,
            outcome="deny",
            reason=reason,
        )
        session.commit()
        return SignInRefused(SIGN_IN_REFUSED)

    # One Argon2id verification whatever the account: its own hash only when it may sign in.
    own_hash = person.password_hash if person is not None and not person.locked else None
    matches = _password_matches(own_hash or dummy_password_hash(), password)
    if person is None:
        raise refuse("no such account")
    if person.locked:
        raise refuse(f"account locked ({person.locked_reason or 'no reason given'})")
    if not person.password_hash:
        raise refuse("no password set")
    if not matches:
        person.failed_login_count += 1
        limit = policies.access.failed_login_limit
        if person.failed_login_count >= limit:
            person.locked = True
            person.locked_reason = f"{person.failed_login_count} consecutive failed sign-ins"
            raise refuse(
                f"wrong password; locked after {person.failed_login_count} consecutive failures"
            )
        raise refuse(f"wrong password ({person.failed_login_count} of {limit})")
    if _HASHER.check_needs_rehash(person.password_hash):
        person.password_hash = _HASHER.hash(password)
    person.failed_login_count = 0
    record_event(session, actor=username, action="sign_in", target=service, outcome="allow")
    session.commit()
    return person

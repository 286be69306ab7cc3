"""Passwords and sign-in: Argon2id hashes, failed-login counting and lock-out (safe people).

A password is stored only as an Argon2id hash (memory-hard, RFC 9106 parameters of
argon2-cffi). ``check_sign_in`` refuses unknown and locked accounts, counts consecutive
failures and locks the account at the access policy's ``failed_login_limit``; every attempt,
allowed or refused, is audited. The web front doors (checker UI, JupyterHub) call it.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.access import authorise
from srs.audit import record_event
from srs.errors import SRSError
from srs.policy import PolicySet
from srs.registry.accounts import get_researcher
from srs.registry.models import Researcher

MINIMUM_PASSWORD_LENGTH = 12  # NIST SP 800-63B allows 8; a research environment asks more
_HASHER = PasswordHasher()  # Argon2id, 64 MiB, 3 passes (argon2-cffi's RFC 9106 low-memory profile)


class SignInRefused(SRSError):
    """Sign-in was refused; the message is safe to show (it never says which part was wrong)."""


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


def check_sign_in(
    session: Session, *, username: str, password: str, policies: PolicySet, service: str
) -> Researcher:
    """The account if ``password`` is right and it may sign in, else ``SignInRefused``.

    The refusal is committed to the audit log before it is raised; a wrong password counts
    towards the lock-out, a right one resets the count.
    """
    person = session.execute(
        select(Researcher).where(Researcher.username == username)
    ).scalar_one_or_none()

    def refuse(reason: str, shown: str = "wrong username or password") -> SignInRefused:
        record_event(
            session,
            actor=username[:64] or "(blank)",
            action="sign_in",
            target=service,
            outcome="deny",
            reason=reason,
        )
        session.commit()
        return SignInRefused(shown)

    if person is None:
        raise refuse("no such account")
    if person.locked:
        raise refuse(
            f"account locked ({person.locked_reason or 'no reason given'})",
            "this account is locked; ask an administrator to unlock it",
        )
    if not person.password_hash:
        raise refuse("no password set")
    try:
        _HASHER.verify(person.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        person.failed_login_count += 1
        limit = policies.access.failed_login_limit
        if person.failed_login_count >= limit:
            person.locked = True
            person.locked_reason = f"{person.failed_login_count} consecutive failed sign-ins"
            raise refuse(
                f"wrong password; locked after {person.failed_login_count} consecutive failures",
                "this account is now locked after too many failed sign-ins; ask an administrator",
            ) from None
        raise refuse(f"wrong password ({person.failed_login_count} of {limit})") from None
    if _HASHER.check_needs_rehash(person.password_hash):
        person.password_hash = _HASHER.hash(password)
    person.failed_login_count = 0
    record_event(session, actor=username, action="sign_in", target=service, outcome="allow")
    session.commit()
    return person

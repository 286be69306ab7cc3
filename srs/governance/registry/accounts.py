"""Accounts: registering, listing, locking and unlocking the people who use the environment.

Every change is authorised (``researcher.manage``) and audited in the same transaction.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from srs.errors import SRSError
from srs.governance.access import authorise
from srs.governance.audit import record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.models import Researcher

USERNAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")


class RegistryError(SRSError):
    """A registry request that cannot be carried out as asked (duplicate, unknown name, bad value)."""


def validate_username(username: str) -> str:
    """Return ``username`` if it is a valid account name, else raise ``RegistryError``."""
    if not USERNAME_PATTERN.match(username):
        raise RegistryError(
            f"username {username!r} is not valid: use 2-64 characters, lower-case letters, digits, "
            "'.', '_' or '-', starting with a letter"
        )
    return username


def validate_roles(roles: list[str], policies: PolicySet) -> list[str]:
    """Return the roles sorted and de-duplicated, or raise if one is not a policy role."""
    known = set(policies.access.roles)
    unknown = sorted(set(roles) - known)
    if unknown:
        raise RegistryError(
            f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(sorted(known))}"
        )
    if not roles:
        raise RegistryError(f"give at least one role: {', '.join(sorted(known))}")
    return sorted(set(roles))


def get_researcher(session: Session, username: str) -> Researcher:
    """The account ``username``, or ``RegistryError`` saying it is not registered."""
    person = session.execute(
        select(Researcher).where(Researcher.username == username)
    ).scalar_one_or_none()
    if person is None:
        raise RegistryError(f"no account named {username!r}; see `srs researcher list`")
    return person


def add_researcher(
    session: Session,
    *,
    actor: str,
    policies: PolicySet,
    username: str,
    full_name: str,
    roles: list[str],
    email: str | None = None,
    accreditation_number: str | None = None,
    accreditation_expiry: date | None = None,
    training_date: date | None = None,
    today: date | None = None,
) -> Researcher:
    """Register an account. Accreditation expiry defaults to the policy's validity from today
    when an accreditation number is given."""
    authorise(session, username=actor, action="researcher.manage", policies=policies, today=today)
    validate_username(username)
    roles = validate_roles(roles, policies)
    if accreditation_number and accreditation_expiry is None:
        accreditation_expiry = (today or date.today()) + timedelta(
            days=policies.access.accreditation_validity_days
        )
    person = Researcher(
        username=username,
        full_name=full_name,
        email=email,
        roles=roles,
        accreditation_number=accreditation_number,
        accreditation_expiry=accreditation_expiry,
        training_date=training_date,
        locked=False,
        failed_login_count=0,
    )
    session.add(person)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise RegistryError(
            f"cannot register {username!r}: the username or accreditation number is already in use"
        ) from exc
    record_event(
        session,
        actor=actor,
        action="researcher.add",
        target=username,
        outcome="ok",
        details={"roles": roles, "accreditation_number": accreditation_number},
    )
    session.commit()
    return person


def list_researchers(session: Session) -> list[Researcher]:
    """Every account, by username."""
    return list(session.execute(select(Researcher).order_by(Researcher.username)).scalars())


def set_locked(
    session: Session,
    *,
    actor: str,
    policies: PolicySet,
    username: str,
    locked: bool,
    reason: str = "",
) -> Researcher:
    """Lock an account (it can do nothing) or unlock it (which also clears failed logins)."""
    authorise(session, username=actor, action="researcher.manage", policies=policies)
    person = get_researcher(session, username)
    person.locked = locked
    person.locked_reason = (reason or "locked by an administrator") if locked else None
    if not locked:
        person.failed_login_count = 0
    record_event(
        session,
        actor=actor,
        action="researcher.lock" if locked else "researcher.unlock",
        target=username,
        outcome="ok",
        reason=reason,
    )
    session.commit()
    return person


def bootstrap_admin(session: Session, *, username: str, full_name: str) -> Researcher:
    """Create the first administrator of a new deployment (no one exists yet to authorise it)."""
    validate_username(username)
    if session.execute(select(Researcher.id).limit(1)).first() is not None:
        raise RegistryError("the registry already has accounts; add more with `srs researcher add`")
    person = Researcher(
        username=username, full_name=full_name, roles=["admin"], locked=False, failed_login_count=0
    )
    session.add(person)
    session.flush()
    record_event(
        session,
        actor=username,
        action="deployment.bootstrap_admin",
        target=username,
        outcome="ok",
        reason="first administrator of a new deployment",
    )
    session.commit()
    return person

"""Projects: creating approved projects, adding members and granting datasets to them.

Creating projects and adding members needs ``project.manage`` (administrators); granting a
dataset needs ``project.grant`` (stewards) and is refused when the dataset's classification is
above what the project is approved for. A project's privacy budget is a finite zCDP rho within
the privacy-budget policy's ``min_project_rho`` and ``max_project_rho``
(``validate_project_budget``).

A project names the data-sharing agreements its data come under (``agreements``, or later
``name_agreement``) and states its purpose category (research, official_statistics, ...); a
grant of a dataset delivered under an agreement the project does not name, or whose permitted
uses do not include the project's purpose and legal basis, is refused (``srs.governance.access``).
``dsa_reference`` stays as legacy free text.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from datetime import date
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from disclosure.policy import PrivacyBudgetPolicy
from srs.governance.access import authorise, latest_dataset
from srs.governance.agreement_terms import PURPOSE_CATEGORY_PATTERN
from srs.governance.audit import record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.accounts import RegistryError, get_researcher
from srs.governance.registry.models import (
    Agreement,
    Grant,
    Project,
    ProjectAgreement,
    ProjectMember,
)

T = TypeVar("T")

PROJECT_CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")
MEMBER_ROLES = ("lead", "researcher")


class ProjectBudgetError(RegistryError):
    """A project's privacy budget is not a finite zCDP rho in the range the policy allows."""


def validate_project_budget(rho: object, budget: PrivacyBudgetPolicy) -> float:
    """``rho`` as a project's total privacy budget (zCDP), or ``ProjectBudgetError``.

    A budget is a real number (not a bool, not text), finite, from the policy's
    ``min_project_rho`` to its ``max_project_rho``: an infinite or huge budget would let every
    query through (or overflow the ledger), NaN compares false with everything, and one below
    the floor would round to nothing in the ledger.

    >>> validate_project_budget(0.5, policies.privacy_budget)  # doctest: +SKIP
    0.5
    >>> validate_project_budget(float("inf"), policies.privacy_budget)  # doctest: +SKIP
    Traceback (most recent call last):
    ProjectBudgetError: a project's privacy budget must be a zCDP rho from 0.0001 to 5 ...
    """
    allowed = (
        f"a project's privacy budget must be a zCDP rho from {budget.min_project_rho:g} to "
        f"{budget.max_project_rho:g} (min_project_rho and max_project_rho in privacy_budget.yaml)"
    )
    shown = repr(rho) if len(repr(rho)) <= 40 else repr(rho)[:37] + "..."
    if isinstance(rho, bool) or not isinstance(rho, numbers.Real):
        raise ProjectBudgetError(f"{allowed}, given as a number, not {type(rho).__name__} {shown}")
    # Compared before it is converted: 10**400 is refused here, not overflowed by float().
    if not budget.min_project_rho <= rho <= budget.max_project_rho:
        raise ProjectBudgetError(f"{allowed}, not {shown}")
    value = float(rho)
    if not math.isfinite(value):
        raise ProjectBudgetError(f"{allowed}, not {shown}")
    return value


def get_project(session: Session, code: str) -> Project:
    """The project ``code``, or ``RegistryError`` saying it is not registered."""
    project = session.execute(select(Project).where(Project.code == code)).scalar_one_or_none()
    if project is None:
        raise RegistryError(f"no project {code!r}; see `srs project list`")
    return project


def create_project(
    session: Session,
    *,
    actor: str,
    policies: PolicySet,
    code: str,
    title: str,
    purpose: str,
    legal_basis: str,
    start_date: date,
    end_date: date,
    approved_classification: str,
    dsa_reference: str | None = None,
    privacy_budget_rho: float | None = None,
    agreements: Sequence[str] = (),
    purpose_category: str = "research",
) -> Project:
    """Register an approved project; its privacy budget defaults to the policy's and must pass
    ``validate_project_budget``. ``RegistryError`` says what is wrong: a code already in use
    (and only then "already exists"), a bad code, dates, classification, text or budget, a
    purpose category that is not a slug, or an agreement that is not recorded or has ended.

    ``agreements`` are the references of the data-sharing agreements the project's data come
    under; ``purpose_category`` is the kind of use (``research``, ``official_statistics``, ...)
    that each agreement's permitted uses must include for a grant."""
    authorise(session, username=actor, action="project.manage", policies=policies)
    if not PROJECT_CODE_PATTERN.match(code):
        raise RegistryError(
            f"project code {code!r} is not valid: 2-64 letters, digits, '.', '_' or '-'"
        )
    if _code_in_use(session, code):
        raise RegistryError(f"a project {code!r} already exists")
    if end_date < start_date:
        raise RegistryError(
            f"project end date {end_date.isoformat()} is before its start {start_date.isoformat()}"
        )
    if approved_classification not in policies.classification.levels:
        raise RegistryError(
            f"classification {approved_classification!r} is not one of "
            f"{', '.join(policies.classification.levels)}"
        )
    for name, text in (("title", title), ("purpose", purpose), ("legal basis", legal_basis)):
        if not text.strip():
            raise RegistryError(f"a project needs a {name}")
    if not re.fullmatch(PURPOSE_CATEGORY_PATTERN, purpose_category):
        raise RegistryError(
            f"purpose category {purpose_category[:60]!r} is not valid: 2-40 lower-case letters, "
            "digits or '_', e.g. research or official_statistics"
        )
    named = [_agreement_to_name(session, reference) for reference in dict.fromkeys(agreements)]
    rho = validate_project_budget(
        privacy_budget_rho
        if privacy_budget_rho is not None
        else policies.privacy_budget.default_project_rho,
        policies.privacy_budget,
    )
    project = Project(
        code=code,
        title=title,
        purpose=purpose,
        legal_basis=legal_basis,
        dsa_reference=dsa_reference,
        start_date=start_date,
        end_date=end_date,
        approved_classification=approved_classification,
        privacy_budget_rho=rho,
        purpose_category=purpose_category,
        agreements=[ProjectAgreement(agreement=a, added_by=actor) for a in named],
    )
    session.add(project)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        if _code_in_use(session, code):  # registered by someone else since the check above
            raise RegistryError(f"a project {code!r} already exists") from exc
        raise RegistryError(
            f"the registry refused project {code!r} ({exc.orig}); nothing was created: check "
            "the values given"
        ) from exc
    record_event(
        session,
        actor=actor,
        action="project.create",
        target=code,
        outcome="ok",
        details={
            "start": start_date.isoformat(),
            "end": end_date.isoformat(),
            "approved_classification": approved_classification,
            "privacy_budget_rho": rho,
            "purpose_category": purpose_category,
            "agreements": [agreement.reference for agreement in named],
        },
    )
    session.commit()
    return project


def _agreement_to_name(session: Session, reference: str) -> Agreement:
    """The recorded, not ended agreement ``reference`` a project may name, or RegistryError."""
    agreement = session.execute(
        select(Agreement).where(Agreement.reference == reference)
    ).scalar_one_or_none()
    shown = repr(reference) if len(reference) <= 80 else repr(reference[:77] + "...")
    if agreement is None:
        raise RegistryError(
            f"no data-sharing agreement {shown} is recorded; see `srs agreement list` (a steward "
            "records one with `srs agreement create`)"
        )
    if agreement.status != "in_force":
        raise RegistryError(
            f"agreement {agreement.reference} has ended ({agreement.end_reason or 'no reason'}); "
            "a project cannot come under it"
        )
    return agreement


def name_agreement(
    session: Session, *, actor: str, policies: PolicySet, code: str, reference: str
) -> ProjectAgreement:
    """Record that project ``code``'s data come under agreement ``reference`` (audited); needs
    ``project.manage``. ``RegistryError`` for an unknown project, an unknown or ended agreement,
    or one the project already names."""
    authorise(session, username=actor, action="project.manage", policies=policies)
    project = get_project(session, code)
    agreement = _agreement_to_name(session, reference)
    if any(link.agreement_id == agreement.id for link in project.agreements):
        raise RegistryError(f"project {code} already names agreement {agreement.reference}")
    link = ProjectAgreement(agreement=agreement, added_by=actor)
    project.agreements.append(link)
    record_event(
        session,
        actor=actor,
        action="project.name_agreement",
        target=code,
        outcome="ok",
        details={"agreement": agreement.reference},
        max_field_chars=policies.access.audit_field_max_chars,
    )
    session.commit()
    return link


def _code_in_use(session: Session, code: str) -> bool:
    return session.execute(select(Project.id).where(Project.code == code)).first() is not None


def add_member(
    session: Session,
    *,
    actor: str,
    policies: PolicySet,
    code: str,
    username: str,
    role: str = "researcher",
) -> ProjectMember:
    """Make ``username`` a member of project ``code`` with role ``lead`` or ``researcher``."""
    authorise(session, username=actor, action="project.manage", policies=policies)
    if role not in MEMBER_ROLES:
        raise RegistryError(f"member role {role!r} is not one of {', '.join(MEMBER_ROLES)}")
    project = get_project(session, code)
    person = get_researcher(session, username)
    if any(m.researcher_id == person.id for m in project.members):
        raise RegistryError(f"{username} is already a member of {code}")
    member = ProjectMember(project=project, researcher=person, role=role)
    session.add(member)
    record_event(
        session,
        actor=actor,
        action="project.add_member",
        target=code,
        outcome="ok",
        details={"member": username, "role": role},
    )
    session.commit()
    return member


def grant_dataset(
    session: Session, *, actor: str, policies: PolicySet, code: str, dataset_name: str
) -> Grant:
    """Grant project ``code`` read access to every version of ``dataset_name``."""
    get_project(session, code)
    authorise(
        session,
        username=actor,
        action="project.grant",
        policies=policies,
        project_code=code,
        dataset_name=dataset_name,
    )
    project = get_project(session, code)
    existing = next((g for g in project.grants if g.dataset_name == dataset_name), None)
    if existing is not None and existing.revoked_at is None:
        raise RegistryError(f"project {code} already has a grant for {dataset_name}")
    if existing is not None:
        existing.revoked_at = None
        existing.granted_by = actor
        grant = existing
    else:
        grant = Grant(project=project, dataset_name=dataset_name, granted_by=actor)
        session.add(grant)
    stored = latest_dataset(session, dataset_name)
    record_event(
        session,
        actor=actor,
        action="project.grant",
        target=dataset_name,
        outcome="ok",
        details={"project": code, "dataset_stored": stored is not None},
    )
    session.commit()
    return grant


def project_records(session: Session, model: type[T], code: str) -> list[T]:
    """Every row of ``model`` (a table with ``project_id``) belonging to project ``code``, oldest first."""
    return list(
        session.execute(
            select(model)
            .join(Project, Project.id == model.project_id)
            .where(Project.code == code)
            .order_by(model.id)
        ).scalars()
    )


def list_projects(session: Session) -> list[Project]:
    """Every project, by code."""
    return list(session.execute(select(Project).order_by(Project.code)).scalars())

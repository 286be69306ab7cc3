"""Access decisions: may person P, in project Q, do action A on dataset D?

``decide`` is the rule itself, a pure function of the registry facts, the policies and the
date; ``authorise`` loads the facts, decides, writes the decision (allow or deny, with its
reason) to the audit log and raises ``AccessDenied`` on a deny. Least privilege: anything not
positively allowed by a role, a membership and a grant is denied. A grant or read of data
delivered under data-sharing agreements also needs every agreement behind it in force,
permitting the project's purpose and legal basis, and named by the project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.errors import SRSError
from srs.governance.agreement_terms import (
    current_version,
    in_force,
    permitted_use_refusal,
    terms_of,
)
from srs.governance.audit import cut_text, record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.models import (
    Agreement,
    AgreementVersion,
    Dataset,
    Project,
    Researcher,
)

# Actions that touch research data need current accreditation and training, and a project.
ACCREDITED_ACTIONS = frozenset({"dataset.read", "output.create"})
PROJECT_ACTIONS = frozenset({"dataset.read", "output.create", "project.grant"})
MEMBER_ACTIONS = frozenset({"dataset.read", "output.create"})
# The two-person rule: a checker never reviews or releases the outputs of a project they are in.
NON_MEMBER_ACTIONS = frozenset({"output.review", "output.release"})
# Uses of data that the agreements behind a dataset must permit (UNODC's "use of information"):
# a project's grant and read (in force, permitting its purpose and basis, named by it) and a
# steward's synthesis (in force; there is no project).
AGREEMENT_ACTIONS = frozenset({"project.grant", "dataset.read", "synthetic.build"})

# For each source behind a dataset version: the source, the current terms of the agreement it
# was delivered under and that agreement (None, None when no agreement is recorded).
AgreementsBehind = list[tuple[str, AgreementVersion | None, Agreement | None]]


class AccessDenied(SRSError):
    """The access check refused; the message gives the reason (it is also in the audit log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"access denied: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class AccessDecision:
    """An allow or deny, with the reason a checker or auditor would need."""

    allowed: bool
    reason: str


def _deny(reason: str) -> AccessDecision:
    return AccessDecision(False, reason)


def decide(
    *,
    person: Researcher | None,
    username: str,
    action: str,
    policies: PolicySet,
    today: date,
    project: Project | None = None,
    project_code: str | None = None,
    dataset_name: str | None = None,
    dataset_classification: str | None = None,
    agreements_behind: AgreementsBehind | None = None,
    stored_lineage: Mapping[str, Any] | None = None,
) -> AccessDecision:
    """Decide one request from the facts; no database, no side effects.

    ``project`` is None when the named project does not exist; ``dataset_classification`` is
    the stored dataset's level, or the classification policy's level for that name.
    ``agreements_behind`` are the agreements of the sources behind the dataset version acted on
    (its lineage); empty for a dataset of a lineage-free area (open data, reference tables),
    which is judged without them. A grant or a read is refused unless every one is in force,
    permits the project's purpose category and legal basis, and is named by the project; a
    synthesis (``synthetic.build``) unless every one is in force.

    ``stored_lineage`` is the lineage of the version acted on, None when no version is stored.
    In an area of the policy's ``lineage_required`` (``source/*``, ``linked/*``) a grant, read
    or synthesis fails closed: refused when nothing is stored yet, or when the version's
    lineage names no sources (a hand-edited registry row).
    """
    if person is None:
        return _deny(f"no account named {username!r} is registered")
    if person.locked:
        return _deny(
            f"account {username!r} is locked ({person.locked_reason or 'no reason given'})"
        )
    if action not in policies.access.known_actions:
        return _deny(f"{action!r} is not an action any role may take")
    if not any(policies.access.allows(role, action) for role in person.roles):
        roles = ", ".join(person.roles) or "no role"
        return _deny(f"{username} ({roles}) may not {action}")

    if action in ACCREDITED_ACTIONS:
        if person.accreditation_expiry is None:
            return _deny(f"{username} has no accreditation on record")
        if person.accreditation_expiry < today:
            return _deny(
                f"{username}'s accreditation {person.accreditation_number or ''} expired on "
                f"{person.accreditation_expiry.isoformat()}".replace("  ", " ")
            )
        if person.training_date is None:
            return _deny(f"{username} has no safe-researcher training on record")
        training_valid_until = person.training_date + timedelta(
            days=policies.access.training_validity_days
        )
        if training_valid_until < today:
            return _deny(
                f"{username}'s training of {person.training_date.isoformat()} lapsed on "
                f"{training_valid_until.isoformat()}"
            )

    if action in PROJECT_ACTIONS:
        if project is None:
            return _deny(f"no project {project_code!r} is registered")
        if today < project.start_date:
            return _deny(f"project {project.code} starts on {project.start_date.isoformat()}")
        if today > project.end_date:
            return _deny(f"project {project.code} ended on {project.end_date.isoformat()}")
        if action in MEMBER_ACTIONS and not any(
            member.researcher_id == person.id for member in project.members
        ):
            return _deny(f"{username} is not a member of project {project.code}")

    if (
        action in NON_MEMBER_ACTIONS
        and project is not None
        and any(member.researcher_id == person.id for member in project.members)
    ):
        return _deny(
            f"{username} is a member of project {project.code} and may not review or release its "
            "outputs (two-person rule)"
        )
    if action in NON_MEMBER_ACTIONS and project is None and project_code is not None:
        return _deny(f"no project {project_code!r} is registered")

    steward_zone = dataset_name is not None and policies.access.in_steward_zone(dataset_name)
    if steward_zone and action in ("project.grant", "dataset.read", "synthetic.build"):
        return _deny(
            f"{dataset_name} is in the steward zone (identifiable data or keys) and is never "
            "granted to or read by a project"
        )
    if action == "steward.read" and not steward_zone:
        return _deny(
            f"{dataset_name} is not a steward-zone dataset; research data is read through a project"
        )

    if action == "synthetic.build" and dataset_name is not None:
        refusal = (
            _lineage_refusal(action, dataset_name, stored_lineage)
            if policies.access.requires_lineage(dataset_name)
            else None
        ) or _not_in_force(dataset_name, agreements_behind or [], today)
        if refusal is not None:
            return _deny(refusal)

    if dataset_name is not None and project is not None and action in PROJECT_ACTIONS:
        level = dataset_classification or policies.classification.level_for(dataset_name)
        if not policies.classification.at_most(level, project.approved_classification):
            return _deny(
                f"{dataset_name} is classified {level}; project {project.code} is approved for "
                f"data up to {project.approved_classification}"
            )
        if action != "project.grant" and not any(
            grant.dataset_name == dataset_name and grant.revoked_at is None
            for grant in project.grants
        ):
            return _deny(f"project {project.code} has no grant for {dataset_name}")
        if action in AGREEMENT_ACTIONS and policies.access.requires_lineage(dataset_name):
            refusal = _lineage_refusal(action, dataset_name, stored_lineage)
            if refusal is not None:
                return _deny(refusal)
        if action in AGREEMENT_ACTIONS and agreements_behind:
            refusal = permitted_use_refusal(project, agreements_behind, today) or (
                _unnamed_agreement(project, dataset_name, agreements_behind)
            )
            if refusal is not None:
                return _deny(refusal)

    if action == "synthetic.read" and dataset_name is not None:
        level = dataset_classification or policies.classification.level_for(dataset_name)
        if level != policies.classification.levels[0]:
            return _deny(
                f"{dataset_name} is classified {level}, not {policies.classification.levels[0]}"
            )

    return AccessDecision(
        True, f"{username} may {action}" + (f" {dataset_name}" if dataset_name else "")
    )


def _lineage_refusal(
    action: str, dataset_name: str, lineage: Mapping[str, Any] | None
) -> str | None:
    """Why ``action`` on a version of ``dataset_name`` (in an area whose data come under
    agreements) is refused, from its lineage, or None when it names sources. With no version
    stored (``lineage`` None) a grant is refused, as there is nothing to judge it against; a
    read or synthesis goes on to fail for the missing version."""
    if lineage is None:
        return (
            f"{dataset_name}: nothing stored yet; grant once `srs linked build` has stored it"
            if action == "project.grant"
            else None
        )
    sources = lineage.get("sources") if isinstance(lineage, Mapping) else None
    if not isinstance(sources, list) or not sources:
        return (
            f"stored without lineage: {dataset_name} names no source or agreement behind it "
            "(stored by hand or its registry record edited), so it may not be used; extracts "
            "come in with `srs ingest` under an agreement, linked datasets with "
            "`srs linked build`"
        )
    return None


def _not_in_force(
    dataset_name: str, agreements_behind: AgreementsBehind, today: date
) -> str | None:
    """Why data under these agreements may not be synthesised (an agreement missing, not in
    force on ``today`` or no longer covering its source), or None."""
    for source, version, agreement in agreements_behind:
        if version is None or agreement is None:
            return (
                f"no data-sharing agreement is recorded for source {source} behind "
                f"{dataset_name}, so its data may not be synthesised"
            )
        named = f"agreement {agreement.reference} (version {version.version})"
        not_in_force = in_force(agreement, today)
        if not_in_force is not None:
            return (
                f"{named}, under which source {source} behind {dataset_name} was delivered, "
                f"is not in force: {not_in_force}; its data may not be synthesised"
            )
        if terms_of(version).data_for(source) is None:
            return f"{named} no longer covers source {source}; its data may not be synthesised"
    return None


def _unnamed_agreement(
    project: Project, dataset_name: str, agreements_behind: AgreementsBehind
) -> str | None:
    """Why ``project`` may not use ``dataset_name``: an agreement behind it that the project
    does not name (a project states which agreements its data come under), or None."""
    named = {link.agreement_id for link in project.agreements}
    for source, _, agreement in agreements_behind:
        if agreement is not None and agreement.id not in named:
            return (
                f"project {project.code} does not name agreement {agreement.reference}, under "
                f"which source {source} behind {dataset_name} was delivered; an administrator "
                f"adds it with `srs project agreement add {project.code} {agreement.reference}`"
            )
    return None


def agreements_behind(session: Session, stored: Dataset) -> AgreementsBehind:
    """The agreements behind a stored dataset version, from its lineage
    (``{"sources": [...], "agreements": {source: reference}, "derived_from": ["name@v"]}``):
    for each source, the current version of its agreement and the agreement, or
    (source, None, None) when none is recorded. Versions named in ``derived_from`` are
    followed (a dataset derived from versions carrying agreements carries them too), each
    once, so a hand-edited cycle ends. A lineage that cannot be read, or a ``derived_from``
    entry naming no stored version, stands for data of unknown provenance: an entry with no
    agreement, which every use refuses. Empty when no version in the chain names a source."""
    behind: AgreementsBehind = []
    listed: set[tuple[str, object]] = set()
    visited: set[tuple[str, int]] = set()
    pending = [stored]
    while pending:
        dataset = pending.pop()
        if (dataset.name, dataset.version) in visited:
            continue
        visited.add((dataset.name, dataset.version))
        lineage = dataset.lineage if isinstance(dataset.lineage, dict) else {}
        sources = lineage.get("sources") or []
        references = lineage.get("agreements") or {}
        derived = lineage.get("derived_from") or []
        if not (
            isinstance(sources, list) and isinstance(references, dict) and isinstance(derived, list)
        ):
            # A lineage that cannot be read stands for data of unknown provenance: deny.
            behind.append(
                (f"(unreadable lineage of {dataset.name} v{dataset.version})", None, None)
            )
            continue
        for source in sources:
            reference = references.get(source) if isinstance(source, str) else None
            if (str(source), reference) in listed:
                continue
            listed.add((str(source), reference))
            agreement = (
                session.execute(
                    select(Agreement).where(Agreement.reference == reference)
                ).scalar_one_or_none()
                if isinstance(reference, str)
                else None
            )
            if agreement is None or not agreement.versions:
                behind.append((str(source), None, None))
            else:
                behind.append((str(source), current_version(agreement), agreement))
        for entry in derived:
            name, _, number = str(entry).rpartition("@")
            parent = (
                stored_dataset(session, name, int(number)) if name and number.isdigit() else None
            )
            if parent is None:
                behind.append(
                    (
                        f"(unknown version {str(entry)[:200]!r} in the lineage of "
                        f"{dataset.name} v{dataset.version})",
                        None,
                        None,
                    )
                )
            else:
                pending.append(parent)
    return behind


def latest_dataset(session: Session, name: str) -> Dataset | None:
    """The newest stored version of dataset ``name``, or None."""
    return session.execute(
        select(Dataset).where(Dataset.name == name).order_by(Dataset.version.desc()).limit(1)
    ).scalar_one_or_none()


def stored_dataset(session: Session, name: str, version: int | None = None) -> Dataset | None:
    """Version ``version`` of dataset ``name`` (the newest when None), or None."""
    if version is None:
        return latest_dataset(session, name)
    return session.execute(
        select(Dataset).where(Dataset.name == name, Dataset.version == version)
    ).scalar_one_or_none()


def authorise(
    session: Session,
    *,
    username: str,
    action: str,
    policies: PolicySet,
    project_code: str | None = None,
    dataset_name: str | None = None,
    dataset_version: int | None = None,
    today: date | None = None,
) -> AccessDecision:
    """Decide, audit the decision, and raise ``AccessDenied`` if it is a deny.

    The dataset is judged by the classification of the version acted on: ``dataset_version``
    (a read of an older version), else the newest. Each version keeps its own level, so an
    older version stored above the project's approval is refused though the newest is not.

    A grant or read of a version with lineage is judged against the agreements behind it too
    (``agreements_behind``); refused when one has ended, is past its duration, does not permit
    the project's purpose or legal basis, or is not named by the project.

    A deny is committed to the audit log before the exception leaves, so a refused attempt is
    on record even when the caller's work is rolled back. An allow is recorded in the caller's
    transaction. The event's fields are cut to the site's ``access.audit_field_max_chars``, so
    a refused dataset name of megabytes is stored as its start and its SHA-256.
    """
    person = session.execute(
        select(Researcher).where(Researcher.username == username)
    ).scalar_one_or_none()
    project = None
    if project_code is not None:
        project = session.execute(
            select(Project).where(Project.code == project_code)
        ).scalar_one_or_none()
    stored = stored_dataset(session, dataset_name, dataset_version) if dataset_name else None
    behind = (
        agreements_behind(session, stored)
        if stored is not None and action in AGREEMENT_ACTIONS
        else []
    )
    decision = decide(
        person=person,
        username=username,
        action=action,
        policies=policies,
        today=today or date.today(),
        project=project,
        project_code=project_code,
        dataset_name=dataset_name,
        dataset_classification=stored.classification if stored else None,
        agreements_behind=behind,
        stored_lineage=(
            (stored.lineage if isinstance(stored.lineage, dict) else {})
            if stored is not None
            else None
        ),
    )
    target = dataset_name or project_code or action
    record_event(
        session,
        actor=username,
        action=f"access.{action}",
        target=target,
        outcome="allow" if decision.allowed else "deny",
        reason=decision.reason,
        details={
            "project": project_code,
            "dataset": dataset_name,
            **({"version": dataset_version} if dataset_version is not None else {}),
        },
        max_field_chars=policies.access.audit_field_max_chars,
    )
    if not decision.allowed:
        session.commit()
        # The caller reads the reason as the log stores it: a name of megabytes is not echoed.
        raise AccessDenied(cut_text(decision.reason, policies.access.audit_field_max_chars))
    return decision

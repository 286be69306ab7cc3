"""Data-sharing agreements as registry records: create, amend (each amendment a new, audited
version of the terms), look up, and check a delivery against the agreement covering its source.

The terms model and the pure rules (in force on a date, periods, permitted uses) are in
``srs.governance.agreement_terms`` and re-exported here. Creating and amending need
``agreement.manage`` (stewards, administrators). ``check_delivery`` refuses a delivery with no
current agreement covering its source, outside its duration, or not in the declared format and
periodicity; every refusal is committed to the audit log with its reason before it is raised.

Periods: the first extract of a source under an agreement is the ``base`` (everything held up
to then), accepted once per source and agreement; a periodic delivery (``2026-11``, ``2026-Q4``,
``2026``, by the agreement's periodicity) is accepted only after the base, once per source and
period, for a period that overlaps the agreement's duration and has ended by the day it is
delivered. Corrections to a delivered period come in the next period's delivery.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import date
from typing import NoReturn

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from srs.governance.access import authorise
from srs.governance.agreement_terms import (
    AGREEMENT_DIR,
    BASE_PERIOD,
    FILE_FORMATS,
    PERIODICITIES,
    PURPOSE_CATEGORY_PATTERN,
    AgreementError,
    AgreementRefused,
    AgreementTerms,
    ConfidentialitySecurity,
    DataTerms,
    Duration,
    FocalPoint,
    Party,
    QualityStandards,
    UseOfInformation,
    current_version,
    in_force,
    load_terms,
    normalise_legal_basis,
    parse_terms,
    period_bounds,
    permitted_use_refusal,
    standard_agreements,
    terms_of,
)
from srs.governance.audit import cut_text, record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.models import Agreement, AgreementVersion, Delivery

REFERENCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")

# The sources a deployment knows: their names, or each name with its data dictionary's
# variable names (then an agreement's variables are checked against the dictionary too).
KnownSources = Collection[str] | Mapping[str, Collection[str]]


def _shown(text: str, limit: int = 80) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 3] + "...")


def _check_reference(reference: str) -> None:
    if not REFERENCE_PATTERN.fullmatch(reference):
        raise AgreementError(
            f"agreement reference {_shown(reference)} is not valid: 2-64 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit"
        )


def _check_against_deployment(
    terms: AgreementTerms, policies: PolicySet, known_sources: KnownSources
) -> None:
    """What the terms model cannot know alone: the deployment's sources, their data
    dictionaries and the classification levels of its policies."""
    for terms_of_source in terms.data:
        if terms_of_source.source not in known_sources:
            raise AgreementError(
                f"data: source {terms_of_source.source!r} has no data dictionary here; known "
                f"sources: {', '.join(sorted(known_sources)) or 'none'}",
                key="data.source",
            )
        if isinstance(known_sources, Mapping) and terms_of_source.variables != ["*"]:
            dictionary = set(known_sources[terms_of_source.source])
            unknown = [v for v in terms_of_source.variables if v not in dictionary]
            if unknown:
                raise AgreementError(
                    f"data: {', '.join(unknown)} are not variables of "
                    f"{terms_of_source.source}'s data dictionary (or give ['*'] for all of it)",
                    key="data.variables",
                )
    level = terms.confidentiality_security.max_classification
    if level not in policies.classification.levels:
        raise AgreementError(
            f"{_shown(level)} is not one of the classification levels "
            f"({', '.join(policies.classification.levels)})",
            key="confidentiality_security.max_classification",
        )


def _new_version(
    agreement: Agreement, version: int, terms: AgreementTerms, actor: str, change_note: str
) -> AgreementVersion:
    return AgreementVersion(
        agreement=agreement,
        version=version,
        terms=terms.as_record(),
        start_date=terms.duration.start,
        end_date=terms.duration.end,
        change_note=change_note,
        terms_sha256=terms.sha256(),
        created_by=actor,
    )


def _audit_refusal(
    session: Session,
    actor: str,
    action: str,
    reference: str,
    refusal: AgreementError,
    policies: PolicySet,
) -> NoReturn:
    """Commit a denied ``action`` on ``reference`` to the audit log, then raise ``refusal``:
    the refusal stays on record though the caller rolls back."""
    record_event(
        session,
        actor=actor,
        action=action,
        target=reference,
        outcome="deny",
        reason=str(refusal),
        details={"key": refusal.key} if refusal.key else None,
        max_field_chars=policies.access.audit_field_max_chars,
    )
    session.commit()
    raise refusal


def _reference_in_use(session: Session, reference: str) -> bool:
    query = select(Agreement.id).where(Agreement.reference == reference)
    return session.execute(query).first() is not None


def create_agreement(
    session: Session,
    *,
    actor: str,
    policies: PolicySet,
    reference: str,
    terms: AgreementTerms,
    known_sources: KnownSources,
) -> Agreement:
    """Record a signed agreement under ``reference``; its terms become version 1.

    ``known_sources`` are the sources with a data dictionary (``srs.pipeline.ingest.
    known_sources``), or a mapping of each to its variable names. Audited; ``AgreementError``
    for a bad or taken reference, or terms naming an unknown source, variable or level.
    """
    authorise(session, username=actor, action="agreement.manage", policies=policies)
    try:
        _check_reference(reference)
        if _reference_in_use(session, reference):
            raise AgreementError(
                f"an agreement {reference!r} already exists; amend it with `srs agreement amend`"
            )
        _check_against_deployment(terms, policies, known_sources)
    except AgreementError as refusal:
        _audit_refusal(session, actor, "agreement.create", reference, refusal, policies)
    agreement = Agreement(reference=reference, title=terms.title, created_by=actor)
    session.add(agreement)
    version = _new_version(agreement, 1, terms, actor, "as signed")
    session.add(version)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise AgreementError(
            f"an agreement {reference!r} was recorded by someone else meanwhile; nothing was "
            "created"
        ) from exc
    record_event(
        session,
        actor=actor,
        action="agreement.create",
        target=reference,
        outcome="ok",
        details={
            "version": 1,
            "sources": terms.sources,
            "start": terms.duration.start.isoformat(),
            "end": terms.duration.end.isoformat(),
            "terms_sha256": version.terms_sha256,
        },
        max_field_chars=policies.access.audit_field_max_chars,
    )
    session.commit()
    return agreement


def amend_agreement(
    session: Session,
    *,
    actor: str,
    policies: PolicySet,
    reference: str,
    terms: AgreementTerms,
    change_note: str,
    known_sources: KnownSources,
) -> AgreementVersion:
    """Record an amendment of agreement ``reference``: ``terms`` become its next version, in
    force from now on for deliveries, grants and reads. Audited with ``change_note``.

    Refused (``AgreementError``) for an ended agreement, an empty note, or terms equal to the
    current version's.
    """
    authorise(session, username=actor, action="agreement.manage", policies=policies)
    try:
        agreement = get_agreement(session, reference)
        if agreement.status != "in_force":
            raise AgreementError(
                f"agreement {reference} has ended and cannot be amended; record a new agreement "
                "with `srs agreement create`"
            )
        note = change_note.strip()
        if not note:
            raise AgreementError("an amendment needs a note saying what changed and why (--note)")
        _check_against_deployment(terms, policies, known_sources)
        current = current_version(agreement)
        if terms.sha256() == current.terms_sha256:
            raise AgreementError(
                f"the terms are those of version {current.version} of {reference}; nothing to amend"
            )
    except AgreementError as refusal:
        _audit_refusal(session, actor, "agreement.amend", reference, refusal, policies)
    version = _new_version(agreement, current.version + 1, terms, actor, note)
    session.add(version)
    agreement.title = terms.title
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise AgreementError(
            f"agreement {reference} was amended by someone else meanwhile; nothing was "
            "recorded: look at `srs agreement show` and amend again"
        ) from exc
    record_event(
        session,
        actor=actor,
        action="agreement.amend",
        target=reference,
        outcome="ok",
        reason=note,
        details={
            "version": version.version,
            "previous_sha256": current.terms_sha256,
            "terms_sha256": version.terms_sha256,
            "sources": terms.sources,
        },
        max_field_chars=policies.access.audit_field_max_chars,
    )
    session.commit()
    return version


def get_agreement(session: Session, reference: str) -> Agreement:
    """The agreement ``reference``, or ``AgreementError`` saying it is not recorded."""
    agreement = session.execute(
        select(Agreement).where(Agreement.reference == reference)
    ).scalar_one_or_none()
    if agreement is None:
        raise AgreementError(f"no agreement {_shown(reference)}; see `srs agreement list`")
    return agreement


def list_agreements(session: Session) -> list[Agreement]:
    """Every agreement, by reference."""
    return list(session.execute(select(Agreement).order_by(Agreement.reference)).scalars())


def agreements_covering(session: Session, source: str) -> list[Agreement]:
    """Every agreement whose current terms cover ``source``, in force or not, by reference."""
    return [
        agreement
        for agreement in list_agreements(session)
        if agreement.versions and terms_of(current_version(agreement)).data_for(source)
    ]


def _delivery_refusal(
    session: Session,
    *,
    source: str,
    file_format: str,
    period: str,
    today: date,
    covering: list[Agreement],
) -> tuple[str | None, AgreementVersion | None]:
    """(the reason a delivery is refused, None) or (None, the version it comes under)."""
    if not covering:
        return (
            f"no data-sharing agreement covers source {source}; a steward records one with "
            "`srs agreement create`",
            None,
        )
    states = {agreement.reference: in_force(agreement, today) for agreement in covering}
    current = [agreement for agreement in covering if states[agreement.reference] is None]
    if not current:
        return (
            f"no agreement covering source {source} is in force on {today.isoformat()}: "
            + "; ".join(f"{reference} {why}" for reference, why in states.items()),
            None,
        )
    if len(current) > 1:
        return (
            f"{len(current)} agreements in force cover source {source} "
            f"({', '.join(a.reference for a in current)}); which one a delivery comes under is "
            "ambiguous: end or amend all but one",
            None,
        )
    agreement = current[0]
    version = current_version(agreement)
    # Not None: the agreement was chosen because its current terms cover the source.
    terms: DataTerms = terms_of(version).data_for(source)  # type: ignore[assignment]
    named = f"agreement {agreement.reference} (version {version.version})"
    if file_format != terms.format:
        return (
            f"{named} has source {source} delivered as {terms.format}, not "
            f"{_shown(file_format, 20)}",
            None,
        )
    earlier = session.execute(
        select(Delivery)
        .where(Delivery.source == source, Delivery.agreement_id == agreement.id)
        .order_by(Delivery.id)
    ).scalars()
    delivered = {delivery.period: delivery for delivery in earlier}
    if period == BASE_PERIOD:
        base = delivered.get(BASE_PERIOD)
        if base is not None:
            return (
                f"the base extract of {source} under {agreement.reference} was already "
                f"delivered (delivery {base.id} of {base.received_at.date().isoformat()}); send "
                "corrections in the next period's delivery",
                None,
            )
        return None, version
    if terms.periodicity == "once":
        return (
            f"{named} has {source} delivered once, as the base extract ({BASE_PERIOD!r}); "
            f"period {_shown(period, 40)} is not accepted",
            None,
        )
    try:
        first, last = period_bounds(period, terms.periodicity)
    except AgreementError as exc:
        return f"{named} has {source} delivered {terms.periodicity}: {exc}", None
    if last < version.start_date or first > version.end_date:
        return (
            f"period {period} ({first.isoformat()} to {last.isoformat()}) lies outside the "
            f"duration of {named}, {version.start_date.isoformat()} to "
            f"{version.end_date.isoformat()}",
            None,
        )
    if last >= today:
        return (
            f"period {period} ends on {last.isoformat()}; deliver it once it has ended (today is "
            f"{today.isoformat()})",
            None,
        )
    if BASE_PERIOD not in delivered:
        return (
            f"no base extract of {source} has been delivered under {agreement.reference}; deliver "
            f"the first extract with period {BASE_PERIOD!r}",
            None,
        )
    # Periods are compared as date ranges, each read in the periodicity it was written in: an
    # amendment from monthly to quarterly must not let 2024-Q4 in after 2024-11 and 2024-12.
    every_earlier = session.execute(
        select(Delivery)
        .where(Delivery.source == source, Delivery.period != BASE_PERIOD)
        .order_by(Delivery.id)
    ).scalars()
    for earlier_delivery in every_earlier:
        bounds = delivered_period_bounds(earlier_delivery.period)
        if bounds is not None and bounds[0] <= last and first <= bounds[1]:
            shown = (
                "was already delivered"
                if earlier_delivery.period == period
                else f"overlaps period {earlier_delivery.period} "
                f"({bounds[0].isoformat()} to {bounds[1].isoformat()}), already delivered"
            )
            return (
                f"period {period} of {source} {shown} (delivery {earlier_delivery.id} of "
                f"{earlier_delivery.received_at.date().isoformat()}); send corrections in the "
                "next period's delivery",
                None,
            )
    # Periods arrive in order: a month skipped and sent after a later one would rewrite data
    # researchers have already used; its records come in the next delivery as late arrivals.
    ranges = {
        p: bounds
        for p in delivered
        if p != BASE_PERIOD and (bounds := delivered_period_bounds(p)) is not None
    }
    if ranges:
        newest = max(ranges, key=lambda p: ranges[p][1])
        if first <= ranges[newest][1]:
            return (
                f"period {period} of {source} ({first.isoformat()} to {last.isoformat()}) comes "
                f"before period {newest} (to {ranges[newest][1].isoformat()}), already "
                "delivered; deliveries arrive in order: send its records in the next period's "
                "delivery (they count as late arrivals)",
                None,
            )
    return None, version


def delivered_period_bounds(period: str) -> tuple[date, date] | None:
    """The first and last day of a delivered ``period`` in whichever periodicity it was
    written (monthly ``2024-11``, quarterly ``2024-Q4``, annual ``2024``); None for the base.

    >>> delivered_period_bounds("2024-Q4")
    (datetime.date(2024, 10, 1), datetime.date(2024, 12, 31))
    """
    for periodicity in ("monthly", "quarterly", "annual"):
        try:
            return period_bounds(period, periodicity)
        except AgreementError:
            continue  # not written in this periodicity; try the next
    return None


def check_delivery(
    session: Session,
    *,
    actor: str,
    policies: PolicySet,
    source: str,
    file_format: str,
    period: str,
    today: date | None = None,
) -> AgreementVersion:
    """The current version of the in-force agreement a delivery of ``source`` for ``period`` in
    ``file_format`` comes under, or ``AgreementRefused`` with the reason.

    A refusal is committed to the audit log (action ``agreement.delivery``, target the source)
    before it is raised, so it is on record when the caller's work is rolled back; an allow is
    recorded in the caller's transaction. Fields are cut to ``access.audit_field_max_chars``.
    Who may deliver at all is the caller's check (ingest stores with ``dataset.store``).

    >>> check_delivery(s, actor="steward", policies=policies, source="police_arrests",
    ...                file_format="csv", period="2026-11")  # doctest: +SKIP
    Traceback (most recent call last):
    AgreementRefused: delivery refused: period 2026-11 of police_arrests was already delivered ...
    """
    today = today or date.today()
    covering = agreements_covering(session, source)
    reason, version = _delivery_refusal(
        session,
        source=source,
        file_format=file_format,
        period=period,
        today=today,
        covering=covering,
    )
    bound = policies.access.audit_field_max_chars
    details: dict[str, object] = {"period": period, "format": file_format}
    if version is not None:
        details |= {"agreement": version.agreement.reference, "version": version.version}
        reason_logged = (
            f"{source} {period} comes under agreement {version.agreement.reference} "
            f"(version {version.version})"
        )
    else:
        reason_logged = reason or ""
    record_event(
        session,
        actor=actor,
        action="agreement.delivery",
        target=source,
        outcome="allow" if version is not None else "deny",
        reason=reason_logged,
        details=details,
        max_field_chars=bound,
    )
    if version is None:
        session.commit()
        # The caller reads the reason as the log stores it: a period of megabytes is not echoed.
        raise AgreementRefused(cut_text(reason_logged, bound))
    return version


__all__ = [
    "AGREEMENT_DIR",
    "BASE_PERIOD",
    "FILE_FORMATS",
    "PERIODICITIES",
    "PURPOSE_CATEGORY_PATTERN",
    "REFERENCE_PATTERN",
    "AgreementError",
    "AgreementRefused",
    "AgreementTerms",
    "ConfidentialitySecurity",
    "DataTerms",
    "Duration",
    "FocalPoint",
    "KnownSources",
    "Party",
    "QualityStandards",
    "UseOfInformation",
    "agreements_covering",
    "amend_agreement",
    "check_delivery",
    "create_agreement",
    "current_version",
    "delivered_period_bounds",
    "get_agreement",
    "in_force",
    "list_agreements",
    "load_terms",
    "normalise_legal_basis",
    "parse_terms",
    "period_bounds",
    "permitted_use_refusal",
    "standard_agreements",
    "terms_of",
]

"""The terms of a data-sharing agreement (the twelve elements of UNODC's Box 10) and the pure
rules read from them: is an agreement in force on a date, which periods fit its periodicity, and
may a project use the data delivered under it.

Registry operations (create, amend, check a delivery) are in ``srs.governance.agreements``,
which re-exports every name here; ``srs.governance.access`` reads the rules from this module so
that the access check and the agreements' registry operations do not import each other.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, StringConstraints, ValidationError, model_validator

from disclosure.policy import PolicyModel
from srs.errors import SRSError
from srs.governance.registry.models import Agreement, AgreementVersion, Project

# Free text in terms: stripped, never empty, bounded (a hand-edited file cannot hold megabytes).
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
# A purpose category: research, official_statistics, evaluation, ... (a project states its own).
PURPOSE_CATEGORY_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"
PurposeSlug = Annotated[str, StringConstraints(pattern=PURPOSE_CATEGORY_PATTERN)]
VariableName = Annotated[str, StringConstraints(pattern=r"^(\*|[A-Za-z_][A-Za-z0-9_]{0,79})$")]
# A plain mailbox address (name@domain.tld); deliverability is the parties' business.
EmailAddress = Annotated[
    str,
    StringConstraints(pattern=r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$", max_length=254),
]
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,79}$")]

# Templates of a deployment's agreements, one YAML file of terms each, in its policy folder.
AGREEMENT_DIR = "agreements"
PERIODICITIES = ("monthly", "quarterly", "annual", "once")
FILE_FORMATS = ("csv", "parquet")
# The first extract of a source under an agreement: everything held up to then.
BASE_PERIOD = "base"
PERIOD_EXAMPLES = {"monthly": "2026-11", "quarterly": "2026-Q4", "annual": "2026"}
PERIOD_PATTERNS = {
    "monthly": re.compile(r"(?P<year>\d{4})-(?P<month>0[1-9]|1[0-2])"),
    "quarterly": re.compile(r"(?P<year>\d{4})-Q(?P<quarter>[1-4])"),
    "annual": re.compile(r"(?P<year>\d{4})"),
}


class AgreementError(SRSError):
    """An agreement's terms are malformed, its reference unknown or taken, or an operation on it
    is not possible (amending an ended agreement, ...); the message says what to do."""

    def __init__(self, message: str, *, file: Path | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ": ".join(str(part) for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class AgreementRefused(SRSError):
    """A delivery was refused because of a data-sharing agreement (none covers the source, it is
    not in force, the format or period does not fit); ``reason`` is what the audit log holds."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"delivery refused: {reason}")
        self.reason = reason


class Party(PolicyModel):
    """A party to the agreement: the data provider, the recipient (the statistics office or
    research environment), or another signatory (a ministry, a regulator)."""

    name: ShortText
    role: Literal["provider", "recipient", "other"]


class Duration(PolicyModel):
    """The dates between which the agreement is in force, both included."""

    start: date
    end: date

    @model_validator(mode="after")
    def _end_after_start(self) -> Duration:
        if self.end < self.start:
            raise ValueError(
                f"the end {self.end.isoformat()} is before the start {self.start.isoformat()}"
            )
        return self


class FocalPoint(PolicyModel):
    """The person each party names to answer for the exchange."""

    party: ShortText
    name: ShortText
    email: EmailAddress


class DataTerms(PolicyModel):
    """What one source delivers: which variables, how often, in what format, by what means."""

    source: SourceName
    # Names from the source's data dictionary, or ["*"] for the whole dictionary.
    variables: list[VariableName] = Field(min_length=1, max_length=500)
    periodicity: Literal["monthly", "quarterly", "annual", "once"]
    format: Literal["csv", "parquet"]
    transmission: Text

    @model_validator(mode="after")
    def _variables(self) -> DataTerms:
        if "*" in self.variables and len(self.variables) > 1:
            raise ValueError("variables: give ['*'] (the whole data dictionary) or names, not both")
        if len(set(self.variables)) != len(self.variables):
            raise ValueError(f"variables must not repeat a name, got {self.variables}")
        return self


class QualityStandards(PolicyModel):
    """What a delivery must meet (checked at ingest and recorded with each delivery)."""

    # Share of required values that are filled.
    min_completeness: float = Field(ge=0, le=1)
    # Share of rows accepted by validation.
    min_validity: float = Field(ge=0, le=1)
    max_reject_rate: float = Field(ge=0, le=1)
    # Days after the period ends by which the delivery is due.
    max_days_late: int = Field(ge=0, le=3650)
    # Relative change in rows against the previous delivery that is still "consistent".
    max_row_change: float = Field(ge=0, le=10)


class ConfidentialitySecurity(PolicyModel):
    """The highest classification the data may be held at, and the security measures agreed."""

    max_classification: ShortText
    measures: list[Text] = Field(min_length=1, max_length=100)


class UseOfInformation(PolicyModel):
    """What the data may be used for and under which legal bases, and what may be published."""

    permitted_purposes: list[PurposeSlug] = Field(min_length=1, max_length=50)
    permitted_legal_bases: list[Text] = Field(min_length=1, max_length=50)
    publication: Text


class AgreementTerms(PolicyModel):
    """The twelve elements of a memorandum of understanding between a data provider and a
    statistics office (UNODC, Guidelines for the governance of statistical data in the criminal
    justice system, Box 10), with a title."""

    title: ShortText
    parties: list[Party] = Field(min_length=2, max_length=50)
    purpose: Text
    legal_basis: Text
    duration: Duration
    obligations: list[Text] = Field(min_length=1, max_length=100)
    incentives: list[Text] = Field(default_factory=list, max_length=100)
    focal_points: list[FocalPoint] = Field(min_length=1, max_length=100)
    data: list[DataTerms] = Field(min_length=1, max_length=100)
    quality_standards: QualityStandards
    confidentiality_security: ConfidentialitySecurity
    amendments: Text
    use_of_information: UseOfInformation

    @model_validator(mode="after")
    def _consistent(self) -> AgreementTerms:
        roles = {party.role for party in self.parties}
        for needed in ("provider", "recipient"):
            if needed not in roles:
                raise ValueError(f"parties: at least one party must have role {needed!r}")
        names = [party.name for party in self.parties]
        if len(set(names)) != len(names):
            raise ValueError(f"parties: each party is named once, got {names}")
        for point in self.focal_points:
            if point.party not in names:
                raise ValueError(
                    f"focal_points: {point.party!r} is not one of the parties ({', '.join(names)})"
                )
        sources = [terms.source for terms in self.data]
        if len(set(sources)) != len(sources):
            raise ValueError(f"data: each source is listed once, got {sources}")
        return self

    def data_for(self, source: str) -> DataTerms | None:
        """The terms for ``source``, or None when the agreement does not cover it."""
        return next((terms for terms in self.data if terms.source == source), None)

    @property
    def sources(self) -> list[str]:
        """The sources the agreement covers, in the order listed."""
        return [terms.source for terms in self.data]

    def as_record(self) -> dict[str, Any]:
        """The terms as JSON-ready data (dates as ISO text), as the registry stores them."""
        return self.model_dump(mode="json")

    def sha256(self) -> str:
        """SHA-256 of the canonical JSON of the terms (sorted keys, no spaces)."""
        canonical = json.dumps(self.as_record(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _describe(error: dict[str, Any]) -> str:
    if error["type"] == "missing":
        return "a required key is missing"
    if error["type"] == "extra_forbidden":
        return "unknown key (misspelt?); it is not allowed in an agreement's terms"
    shown = repr(error.get("input"))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"{error['msg'].removeprefix('Value error, ')} (got {shown})"


def parse_terms(data: object, *, file: Path | None = None) -> AgreementTerms:
    """Validate ``data`` (a mapping, as read from YAML or JSON) into ``AgreementTerms``, or raise
    ``AgreementError`` naming the key at fault (and ``file`` when given)."""
    if not isinstance(data, dict):
        raise AgreementError(
            "must be a mapping holding the twelve elements of an agreement (parties, purpose, "
            "legal_basis, duration, ...)",
            file=file,
        )
    try:
        return AgreementTerms.model_validate(data)
    except ValidationError as exc:
        # A misspelt key shows up as "unknown" plus "missing"; the unknown one says more.
        error = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        raise AgreementError(
            _describe(error), file=file, key=".".join(str(p) for p in error["loc"]) or None
        ) from None


def load_terms(path: Path | str) -> AgreementTerms:
    """Read an agreement's terms from a YAML file; ``AgreementError`` names the file and key.

    >>> load_terms("policies/agreements/dsa-police.yaml").sources  # doctest: +SKIP
    ['police_arrests']
    """
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AgreementError("no such file", file=file) from None
    except IsADirectoryError:
        raise AgreementError("is a folder, not a YAML file of terms", file=file) from None
    except UnicodeDecodeError:
        raise AgreementError("not UTF-8 text", file=file) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise AgreementError(f"not valid YAML{line}", file=file) from None
    return parse_terms(data, file=file)


def standard_agreements(policy_dir: Path | str) -> dict[str, AgreementTerms]:
    """The agreement templates of a policy folder (``agreements/*.yaml``), each under its
    reference: the file's stem upper-cased (``dsa-police.yaml`` is ``DSA-POLICE``).

    >>> sorted(standard_agreements("policies"))  # doctest: +SKIP
    ['DSA-COURTS', 'DSA-CPS', 'DSA-POLICE', 'DSA-PRISONS', 'DSA-PROBATION', 'DSA-VICTIMS']
    """
    folder = Path(policy_dir) / AGREEMENT_DIR
    return {path.stem.upper(): load_terms(path) for path in sorted(folder.glob("*.yaml"))}


def terms_of(version: AgreementVersion) -> AgreementTerms:
    """The validated terms of a stored agreement version."""
    return parse_terms(version.terms)


def current_version(agreement: Agreement) -> AgreementVersion:
    """The agreement's terms now in force: its newest version (version 1 is as signed)."""
    if not agreement.versions:
        raise AgreementError(f"agreement {agreement.reference} has no recorded terms")
    return max(agreement.versions, key=lambda version: version.version)


def in_force(agreement: Agreement, today: date) -> str | None:
    """None when ``agreement`` is in force on ``today``; else why not (ended by a steward, not
    yet started, or expired), judged on its current version's duration."""
    if agreement.status != "in_force":
        when = agreement.ended_at.date().isoformat() if agreement.ended_at else "an unknown date"
        return (
            f"ended on {when} by {agreement.ended_by or 'an unknown steward'} because "
            f"{agreement.end_reason or 'no reason was given'}"
        )
    version = current_version(agreement)
    if today < version.start_date:
        return f"not yet started (it starts on {version.start_date.isoformat()})"
    if today > version.end_date:
        return f"expired on {version.end_date.isoformat()}"
    return None


def period_bounds(period: str, periodicity: str) -> tuple[date, date]:
    """The first and last day of ``period`` written in ``periodicity`` (monthly ``2026-11``,
    quarterly ``2026-Q4``, annual ``2026``); ``AgreementError`` when it does not fit.

    >>> period_bounds("2026-Q4", "quarterly")
    (datetime.date(2026, 10, 1), datetime.date(2026, 12, 31))
    """
    pattern = PERIOD_PATTERNS.get(periodicity)
    if pattern is None:
        raise AgreementError(
            f"a {periodicity} delivery has no periods, only the base extract ({BASE_PERIOD!r})"
        )
    match = pattern.fullmatch(period)
    if match is None:
        shown = period if len(period) <= 40 else period[:37] + "..."
        raise AgreementError(
            f"period {shown!r} does not fit a {periodicity} delivery: write it like "
            f"{PERIOD_EXAMPLES[periodicity]} (or {BASE_PERIOD!r} for the first extract)"
        )
    year = int(match["year"])
    if periodicity == "monthly":
        first_month, months = int(match["month"]), 1
    elif periodicity == "quarterly":
        first_month, months = 3 * int(match["quarter"]) - 2, 3
    else:
        first_month, months = 1, 12
    first = date(year, first_month, 1)
    after = first_month + months
    following = date(year + 1, 1, 1) if after > 12 else date(year, after, 1)
    return first, following - timedelta(days=1)


def normalise_legal_basis(text: str) -> str:
    """A legal basis as compared: case-folded, runs of whitespace as one space, trimmed."""
    return " ".join(text.split()).casefold()


def permitted_use_refusal(
    project: Project,
    versions: list[tuple[str, AgreementVersion | None, Agreement | None]],
    today: date,
) -> str | None:
    """Why ``project`` may not use data delivered under these agreements, or None when it may.

    ``versions`` holds, for every source behind a dataset, the source, the current version of
    the agreement it was delivered under and that agreement (None, None when no agreement is
    recorded). The use is refused when an agreement is missing, not in force on ``today``, no
    longer covers the source, or does not permit the project's purpose category or legal basis
    (compared case-folded, whitespace collapsed). The reason names the source and agreement.
    """
    for source, version, agreement in versions:
        if version is None or agreement is None:
            return (
                f"no data-sharing agreement is recorded for source {source}, so its data may not "
                "be used by any project"
            )
        named = f"agreement {agreement.reference} (version {version.version})"
        not_in_force = in_force(agreement, today)
        if not_in_force is not None:
            return (
                f"{named}, under which source {source} was delivered, is not in force: "
                f"{not_in_force}; its data may no longer be used"
            )
        terms = terms_of(version)
        if terms.data_for(source) is None:
            return f"{named} no longer covers source {source}; its data may not be used"
        use = terms.use_of_information
        if project.purpose_category not in use.permitted_purposes:
            return (
                f"project {project.code}'s purpose category {project.purpose_category!r} is not "
                f"a use {named} permits for source {source} (permitted: "
                f"{', '.join(use.permitted_purposes)})"
            )
        permitted_bases = {normalise_legal_basis(basis) for basis in use.permitted_legal_bases}
        if normalise_legal_basis(project.legal_basis) not in permitted_bases:
            return (
                f"project {project.code}'s legal basis {project.legal_basis!r} is not one "
                f"{named} permits for source {source} (permitted: "
                f"{'; '.join(use.permitted_legal_bases)})"
            )
    return None

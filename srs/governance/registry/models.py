"""The registry's tables: researchers, projects and their members, data-sharing agreements
and their deliveries, datasets, grants, outputs, hub sessions, checker-UI sessions, audit events.

These SQLAlchemy 2 models are the state of the environment (safe people, safe projects, safe
data's catalogue). The schema is created and changed only by the Alembic migrations in
``srs/governance/registry/migrations``; keep the two in step.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utc_now() -> datetime:
    """The current time in UTC, timezone-aware."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every registry table."""


class Researcher(Base):
    """A person with an account: researcher, checker, steward, admin or student (by ``roles``)."""

    __tablename__ = "researchers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    accreditation_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    accreditation_expiry: Mapped[date | None] = mapped_column(Date)
    training_date: Mapped[date | None] = mapped_column(Date)
    locked: Mapped[bool] = mapped_column(default=False)
    locked_reason: Mapped[str | None] = mapped_column(Text)
    failed_login_count: Mapped[int] = mapped_column(Integer, default=0)
    password_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    memberships: Mapped[list[ProjectMember]] = relationship(back_populates="researcher")


class Project(Base):
    """An approved piece of research: purpose, legal basis, dates, members, grants, budget."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    # Free text kept from before agreements were records; the agreements a project names are
    # ``project_agreements``.
    dsa_reference: Mapped[str | None] = mapped_column(String(120))
    # The kind of use, matched against an agreement's permitted purposes (``use_of_information``).
    purpose_category: Mapped[str] = mapped_column(String(40), default="research")
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    approved_classification: Mapped[str] = mapped_column(String(40))
    privacy_budget_rho: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    members: Mapped[list[ProjectMember]] = relationship(
        back_populates="project", cascade="all, delete-orphan"
    )
    grants: Mapped[list[Grant]] = relationship(
        back_populates="project", cascade="all, delete-orphan"
    )
    agreements: Mapped[list[ProjectAgreement]] = relationship(cascade="all, delete-orphan")


class ProjectMember(Base):
    """A researcher's membership of a project, with their role in it (``lead`` or ``researcher``)."""

    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "researcher_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    researcher_id: Mapped[int] = mapped_column(ForeignKey("researchers.id"))
    role: Mapped[str] = mapped_column(String(40))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    project: Mapped[Project] = relationship(back_populates="members")
    researcher: Mapped[Researcher] = relationship(back_populates="memberships")


class Dataset(Base):
    """One version of a named, classified table held encrypted in the vault."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    classification: Mapped[str] = mapped_column(String(40))
    data_dictionary: Mapped[list[dict]] = mapped_column(JSON, default=list)
    content_hash: Mapped[str] = mapped_column(String(80))
    row_count: Mapped[int] = mapped_column(Integer)
    file_path: Mapped[str] = mapped_column(Text)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    # Where the version came from: {"sources": [...], "agreements": {source: reference},
    # "deliveries": [delivery ids], "derived_from": ["name@version", ...]}; {} when a steward
    # stored it by hand with no provider behind it.
    lineage: Mapped[dict] = mapped_column(JSON, default=dict)
    # What changed against the previous version (rows added, corrected, withdrawn; keys kept...).
    change_summary: Mapped[dict] = mapped_column(JSON, default=dict)
    # Set when the data key was deleted (crypto-shredding): the file can never be read again.
    shredded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    shredded_reason: Mapped[str | None] = mapped_column(Text)


class Agreement(Base):
    """A data-sharing agreement with a data provider; its terms are in versions (amendments)."""

    __tablename__ = "agreements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    # in_force until a steward ends it; an agreement past its duration is not in force either
    # (judged on the date, see ``srs.governance.agreements``).
    status: Mapped[str] = mapped_column(String(20), default="in_force")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_by: Mapped[str | None] = mapped_column(String(64))
    end_reason: Mapped[str | None] = mapped_column(Text)

    versions: Mapped[list[AgreementVersion]] = relationship(
        back_populates="agreement",
        cascade="all, delete-orphan",
        order_by="AgreementVersion.version",
    )


class AgreementVersion(Base):
    """One version of an agreement's terms: version 1 as signed, each amendment the next."""

    __tablename__ = "agreement_versions"
    __table_args__ = (UniqueConstraint("agreement_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    # The twelve elements (UNODC Box 10), as validated by ``srs.governance.agreements``.
    terms: Mapped[dict] = mapped_column(JSON)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    change_note: Mapped[str] = mapped_column(Text, default="")
    terms_sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    agreement: Mapped[Agreement] = relationship(back_populates="versions")


class ProjectAgreement(Base):
    """An agreement a project's data comes under (a project may name several)."""

    __tablename__ = "project_agreements"
    __table_args__ = (UniqueConstraint("project_id", "agreement_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id"))
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    agreement: Mapped[Agreement] = relationship()


class Delivery(Base):
    """One extract from one source at one time, received under an agreement and stored as a
    new version of ``source/<source>``, with its quality figures."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(80))
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id"))
    agreement_version: Mapped[int] = mapped_column(Integer)
    # The period it covers, in the agreement's periodicity (2026-11, 2026-Q4, 2026, or "base").
    period: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(Text)
    file_format: Mapped[str] = mapped_column(String(16))
    file_sha256: Mapped[str] = mapped_column(String(64))
    rows_in: Mapped[int] = mapped_column(Integer)
    rows_accepted: Mapped[int] = mapped_column(Integer)
    rows_rejected: Mapped[int] = mapped_column(Integer)
    # Counts by what the rows did: added, corrected, withdrawn, late (event before the period).
    changes: Mapped[dict] = mapped_column(JSON, default=dict)
    quality: Mapped[dict] = mapped_column(JSON, default=dict)
    dataset_name: Mapped[str] = mapped_column(String(200))
    dataset_version: Mapped[int] = mapped_column(Integer)
    received_by: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    agreement: Mapped[Agreement] = relationship()


class Grant(Base):
    """A project's permission to read every version of one dataset (least privilege: none by default)."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("project_id", "dataset_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    dataset_name: Mapped[str] = mapped_column(String(200))
    granted_by: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    project: Mapped[Project] = relationship(back_populates="grants")


class BudgetSpend(Base):
    """One debit of a project's privacy budget, in whole nano-rho (zCDP), made before release."""

    __tablename__ = "budget_spends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    researcher: Mapped[str] = mapped_column(String(64))
    nano_rho: Mapped[int] = mapped_column(BigInteger)
    # Delta spent to release group keys that are not public (0 for most queries).
    femto_delta: Mapped[int] = mapped_column(BigInteger, default=0)
    purpose: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Output(Base):
    """Something a researcher wants to take out, with its evidence (DESIGN: outputs, one contract).

    ``content`` holds the output itself in open form (for a DP result: the released table, its
    error bounds and the noise evidence); ``checksum`` is the SHA-256 of its canonical JSON. A DP
    result points at the budget spend that paid for it.
    """

    __tablename__ = "outputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32), default="draft")
    differentially_private: Mapped[bool] = mapped_column(default=False)
    budget_spend_id: Mapped[int | None] = mapped_column(ForeignKey("budget_spends.id"), unique=True)
    content: Mapped[dict] = mapped_column(JSON)
    checks: Mapped[list[dict]] = mapped_column(JSON, default=list)
    context: Mapped[str] = mapped_column(Text, default="")
    controls: Mapped[str] = mapped_column(Text, default="")
    checksum: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    # The release request it was submitted in (None while a draft of the researcher's session).
    request_id: Mapped[int | None] = mapped_column(ForeignKey("release_requests.id"))
    # Why the researcher asks for release despite a failing automatic check (None: not asked).
    exception_justification: Mapped[str | None] = mapped_column(Text)
    # The dataset versions the session had read when it made the output ([{"name", "version",
    # "content_hash"}]), recorded by the environment from the reads it served, never taken from
    # the researcher's request.
    datasets_used: Mapped[list[dict]] = mapped_column(JSON, default=list)

    files: Mapped[list[OutputFile]] = relationship(
        back_populates="output", cascade="all, delete-orphan", order_by="OutputFile.id"
    )


class OutputFile(Base):
    """One file of an output, exactly the bytes a release would carry, with their SHA-256."""

    __tablename__ = "output_files"
    __table_args__ = (UniqueConstraint("output_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    output_id: Mapped[int] = mapped_column(ForeignKey("outputs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)

    output: Mapped[Output] = relationship(back_populates="files")


class ReleaseRequest(Base):
    """A set of outputs a researcher submitted for release, moving through the review workflow."""

    __tablename__ = "release_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(32))
    # Each resubmission after changes were requested starts a new round of reviews.
    review_round: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    project: Mapped[Project] = relationship()


class ReviewVote(Base):
    """One checker's decision on one output in one review round: approve, reject or request changes."""

    __tablename__ = "review_votes"
    __table_args__ = (UniqueConstraint("output_id", "reviewer", "review_round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("release_requests.id", ondelete="CASCADE"))
    output_id: Mapped[int] = mapped_column(ForeignKey("outputs.id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(String(64))
    review_round: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class OutputComment(Base):
    """A comment on a request or one of its outputs, private to checkers or visible to the researcher."""

    __tablename__ = "output_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("release_requests.id", ondelete="CASCADE")
    )
    output_id: Mapped[int | None] = mapped_column(ForeignKey("outputs.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(64))
    visibility: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Release(Base):
    """A signed release bundle made from an approved request (one per request)."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("release_requests.id"), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    created_by: Mapped[str] = mapped_column(String(64))
    bundle_name: Mapped[str] = mapped_column(String(200), unique=True)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    signing_key_fingerprint: Mapped[str] = mapped_column(String(64))
    file_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class HubSession(Base):
    """A researcher's Jupyter server in one project, as the environment API knows it: by the
    SHA-256 of its session token (the token itself is never stored), until it expires or ends."""

    __tablename__ = "hub_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64))
    project_code: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The Unix account (uid) of the server the token was issued to; the API refuses the token
    # from any other account. None: not bound (a token issued outside the hub, e.g. in tests).
    unix_uid: Mapped[int | None] = mapped_column(Integer)


class CheckerSession(Base):
    """A sign-in to the output checkers' UI, known by the SHA-256 of the random id its cookie
    carries (the id itself is never stored); it ends at sign-out, when idle past the access
    policy's timeout or older than its absolute lifetime, and an ended session never resumes."""

    __tablename__ = "checker_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why it ended: signed out, idle, past its lifetime, replaced by a new sign-in, account locked.
    ended_reason: Mapped[str | None] = mapped_column(String(200))


class AuditEvent(Base):
    """One append-only audit event, chained to its predecessor by SHA-256 (see ``srs.governance.audit``)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # Kept as the exact ISO-8601 text that was hashed, so no database round-trip can change it.
    occurred_at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    event_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The single row naming the last audit event; lets verification detect a truncated tail."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))

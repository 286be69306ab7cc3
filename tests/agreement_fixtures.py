"""The shipped data-sharing agreements (policies/agreements/), recorded in a registry for tests
and the demo: one per provider, covering the seven simulated sources."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.governance.agreement_terms import standard_agreements
from srs.governance.agreements import create_agreement
from srs.governance.policy import PolicySet
from srs.governance.registry import projects
from srs.governance.registry.models import Agreement
from srs.pipeline.ingest import known_sources


def register_standard_agreements(
    session: Session, policies: PolicySet, actor: str
) -> dict[str, Agreement]:
    """Record every agreement template of the policy folder under its reference (DSA-POLICE,
    DSA-CPS, DSA-COURTS, DSA-PRISONS, DSA-PROBATION, DSA-VICTIMS), as ``actor``."""
    sources = known_sources(policies.source_dir)
    return {
        reference: create_agreement(
            session,
            actor=actor,
            policies=policies,
            reference=reference,
            terms=terms,
            known_sources=sources,
        )
        for reference, terms in standard_agreements(policies.source_dir).items()
    }


# The legal basis every shipped agreement permits for research.
PERMITTED_BASIS = "Digital Economy Act 2017 s.64 (research)"


def agreement_for(policies: PolicySet, source: str) -> str:
    """The reference of the shipped agreement that covers ``source`` (e.g. DSA-POLICE)."""
    for reference, terms in standard_agreements(policies.source_dir).items():
        if source in terms.sources:
            return reference
    raise LookupError(f"no shipped agreement covers source {source!r}")


def research_lineage(
    policies: PolicySet, sources: tuple[str, ...] = ("police_arrests",)
) -> dict[str, object]:
    """A lineage naming ``sources`` and the shipped agreement of each, as the pipeline writes
    it, for a test that stores a ``linked/*`` or ``source/*`` version by hand."""
    return {
        "sources": list(sources),
        "agreements": {source: agreement_for(policies, source) for source in sources},
    }


def admit_to_agreements(session: Session, policies: PolicySet, *, admin: str, code: str) -> None:
    """Give project ``code`` the legal basis the shipped agreements permit and name every
    recorded agreement, so it may be granted and read data delivered under them."""
    project = projects.get_project(session, code)
    project.legal_basis = PERMITTED_BASIS
    session.commit()
    named = {link.agreement.reference for link in project.agreements}
    for reference in session.scalars(select(Agreement.reference)).all():
        if reference not in named:
            projects.name_agreement(
                session, actor=admin, policies=policies, code=code, reference=reference
            )


# The lineage of a linked dataset built from the police's extract alone (DSA-POLICE).
RESEARCH_LINEAGE = {"sources": ["police_arrests"], "agreements": {"police_arrests": "DSA-POLICE"}}

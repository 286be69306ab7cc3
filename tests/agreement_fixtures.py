"""The shipped data-sharing agreements (policies/agreements/), recorded in a registry for tests
and the demo: one per provider, covering the seven simulated sources."""

from __future__ import annotations

from sqlalchemy.orm import Session

from srs.governance.agreements import create_agreement, standard_agreements
from srs.governance.policy import PolicySet
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

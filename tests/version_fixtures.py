"""A dataset with two versions, for the tests of versioned linked datasets (local session and
through the environment API): ``linked/journeys@2`` built from two November deliveries on top of
the session fixtures' version 1, with a change summary; and a version destroyed by hand."""

from __future__ import annotations

from datetime import UTC, datetime

from agreement_fixtures import agreement_for, research_lineage
from session_fixtures import DICTIONARY, journeys
from sqlalchemy import select

from srs.governance.registry.models import Agreement, Dataset, Delivery
from srs.vault.store import Vault

NEWER_ROWS = 800
CHANGES = {"added": 200, "corrected": 3, "withdrawn": 1}


def store_second_version(lab, policies) -> None:
    """linked/journeys@2: the courts' and police's November deliveries (under the shipped
    agreements the session fixtures record) on top of version 1."""
    deployment, registry = lab
    with registry.sessions() as db:
        delivered = []
        for source in ("magistrates_cases", "police_arrests"):
            reference = agreement_for(policies, source)
            agreement = db.execute(
                select(Agreement).where(Agreement.reference == reference)
            ).scalar_one()
            delivery = Delivery(
                source=source,
                agreement_id=agreement.id,
                agreement_version=1,
                period="2026-11",
                file_name=f"{source}-2026-11.csv",
                file_format="csv",
                file_sha256="0" * 64,
                rows_in=210,
                rows_accepted=204,
                rows_rejected=6,
                changes={"added": 200},
                quality={},
                dataset_name=f"source/{source}",
                dataset_version=2,
                received_by="steward",
            )
            db.add(delivery)
            db.flush()
            delivered.append(delivery.id)
        db.commit()
        Vault(deployment, policies).store(
            db,
            "linked/journeys",
            journeys(rows=NEWER_ROWS, seed=7),
            actor="steward",
            data_dictionary=DICTIONARY,
            lineage={
                **research_lineage(policies, ("magistrates_cases", "police_arrests")),
                "deliveries": delivered,
                "derived_from": ["linked/journeys@1"],
            },
            change_summary=CHANGES,
        )


def shred(registry, name: str, version: int) -> None:
    """Mark a version destroyed as the end of its agreement does (its data key deleted)."""
    with registry.sessions() as db:
        row = db.execute(
            select(Dataset).where(Dataset.name == name, Dataset.version == version)
        ).scalar_one()
        row.shredded_at = datetime(2026, 12, 1, tzinfo=UTC)
        row.shredded_reason = "agreement DSA-COURTS ended"
        db.commit()


def use_of(registry, name: str, version: int) -> dict:
    with registry.sessions() as db:
        row = db.execute(
            select(Dataset).where(Dataset.name == name, Dataset.version == version)
        ).scalar_one()
        return {"name": name, "version": version, "content_hash": row.content_hash}

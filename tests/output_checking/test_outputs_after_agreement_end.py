"""An output made from data destroyed, or whose data-sharing agreement has ended or expired, is
refused at submission, at a checker's approval and at release, each refusal audited."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from agreement_fixtures import register_standard_agreements
from sqlalchemy import select
from workflow_fixtures import SECOND_CHECKER, add_checker, count_table

from output_checking.outputs import dataset_use, file_gate_rules, record_output, table_content
from output_checking.release import create_release
from output_checking.workflow import (
    WorkflowError,
    create_request,
    dataset_problems,
    get_request,
    submit_request,
    vote,
)
from registry_fixtures import PROJECT, populate
from srs.governance.agreements import amend_agreement, get_agreement, standard_agreements
from srs.governance.registry.models import AuditEvent, Dataset, Output, Release
from srs.pipeline.ingest import known_sources
from srs.vault.crypto import generate_master_key, write_key_file
from srs.vault.store import Vault

VICTIMS = "linked/victims"
LINEAGE = {
    "sources": ["victims", "police_arrests"],
    "agreements": {"victims": "DSA-VICTIMS", "police_arrests": "DSA-POLICE"},
    # No derived_from: the extracts are not stored here, and a lineage naming versions that
    # are not stored is data of unknown provenance (refused).
}


@pytest.fixture
def lab(registry, policies, deployment):
    """Agreements recorded, linked/victims@1 stored under two of them, a second checker."""
    people = populate(registry, policies)
    add_checker(registry, policies)
    write_key_file(deployment.key_file, generate_master_key())
    vault = Vault(deployment, policies)
    with registry.sessions() as s:
        register_standard_agreements(s, policies, people.steward)
        stored = vault.store(
            s,
            VICTIMS,
            pd.DataFrame({"sex": ["F", "M"]}),
            actor=people.steward,
            lineage=LINEAGE,
        )
        s.commit()
        use = dataset_use(stored)
    return people, vault, use


def draft(registry, policies, use, name="victims by sex") -> tuple[int, int]:
    """ana's draft request of one count table made from ``use``: (request id, output id)."""
    table = count_table({"F": 120, "M": 340})
    with registry.sessions() as s:
        output = record_output(
            s,
            project_code=PROJECT,
            author="ana",
            kind="table",
            name=name,
            content={"kind": "table", "statistic": "count", "table": table_content(table)},
            checks=[{"check": "sdc_table", "status": "ok", "message": "all cells safe"}],
            files={"victims.csv": table.to_csv().encode()},
            file_rules=file_gate_rules(policies),
            datasets_used=[use],
        )
        s.commit()
        request = create_request(
            s, project_code=PROJECT, author="ana", policies=policies, title="Victims"
        )
        return request.id, output.id


def submit(registry, policies, request_id):
    with registry.sessions() as s:
        return submit_request(s, request_id=request_id, actor="ana", policies=policies)


def end(registry, reference="DSA-VICTIMS"):
    """Mark an agreement ended as srs.pipeline.agreement_end records it."""
    with registry.sessions() as s:
        agreement = get_agreement(s, reference)
        agreement.status = "ended"
        agreement.ended_at = datetime(2026, 12, 1, tzinfo=UTC)
        agreement.ended_by = "steward"
        agreement.end_reason = "the provider withdrew"
        s.commit()


def shred(registry, vault, steward):
    with registry.sessions() as s:
        stored = s.scalars(select(Dataset).where(Dataset.name == VICTIMS)).one()
        vault.shred(s, stored, actor=steward, reason="agreement DSA-VICTIMS ended")


def expire(registry, policies, steward):
    """Amend DSA-VICTIMS to have expired at the start of 2026."""
    terms = standard_agreements(policies.source_dir)["DSA-VICTIMS"]
    duration = terms.duration.model_copy(update={"end": date(2026, 1, 1)})
    with registry.sessions() as s:
        amend_agreement(
            s,
            actor=steward,
            policies=policies,
            reference="DSA-VICTIMS",
            terms=terms.model_copy(update={"duration": duration}),
            change_note="ends early",
            known_sources=known_sources(policies.source_dir),
        )


def last_deny(registry, action) -> AuditEvent:
    with registry.sessions() as s:
        return s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.outcome == "deny")
            .order_by(AuditEvent.seq.desc())
        ).first()


def status(registry, request_id) -> str:
    with registry.sessions() as s:
        return get_request(s, request_id).status


@pytest.mark.parametrize(
    ("withdraw", "message"),
    [
        (
            "end",
            "agreement DSA-VICTIMS \\(victims\\) ended on 2026-12-01 by steward because the "
            "provider withdrew",
        ),
        ("shred", "linked/victims@1 was destroyed on .* \\(agreement DSA-VICTIMS ended\\)"),
        ("expire", "agreement DSA-VICTIMS \\(victims\\) expired on 2026-01-01"),
    ],
)
def test_a_request_is_not_submitted_once_its_data_are_withdrawn(
    registry, policies, lab, withdraw, message
) -> None:
    people, vault, use = lab
    request_id, output_id = draft(registry, policies, use)
    {
        "end": lambda: end(registry),
        "shred": lambda: shred(registry, vault, people.steward),
        "expire": lambda: expire(registry, policies, people.steward),
    }[withdraw]()
    with pytest.raises(WorkflowError, match=message) as caught:
        submit(registry, policies, request_id)
    assert f"output #{output_id} (victims by sex)" in str(caught.value)
    assert "cannot be released" in str(caught.value)
    assert status(registry, request_id) == "draft"
    event = last_deny(registry, "request.submit")
    assert event.actor == "ana" and event.target == f"request/{request_id}"
    assert event.reason == str(caught.value)


def test_a_request_under_agreements_in_force_is_submitted(registry, policies, lab) -> None:
    _, _, use = lab
    request_id, _ = draft(registry, policies, use)
    # Another agreement (not behind the data) ending changes nothing.
    end(registry, "DSA-PRISONS")
    assert submit(registry, policies, request_id).status == "submitted"


def test_an_approval_is_refused_after_the_agreement_ends_but_a_rejection_is_not(
    registry, policies, lab
) -> None:
    _, _, use = lab
    request_id, output_id = draft(registry, policies, use)
    submit(registry, policies, request_id)
    end(registry, "DSA-POLICE")
    with registry.sessions() as s, pytest.raises(WorkflowError, match="DSA-POLICE"):
        vote(s, output_id=output_id, checker="cho", policies=policies, decision="approve")
    event = last_deny(registry, "output.approve")
    assert event.actor == "cho" and json.loads(event.details)["output_id"] == output_id
    assert "reject it instead" in event.reason
    with registry.sessions() as s:
        vote(s, output_id=output_id, checker="cho", policies=policies, decision="reject")
        assert s.get(Output, output_id).status == "submitted"


def test_a_release_is_refused_when_the_data_were_destroyed_after_approval(
    registry, policies, lab, deployment
) -> None:
    people, vault, use = lab
    request_id, output_id = draft(registry, policies, use)
    submit(registry, policies, request_id)
    for checker in ("cho", SECOND_CHECKER):
        with registry.sessions() as s:
            vote(s, output_id=output_id, checker=checker, policies=policies, decision="approve")
    assert status(registry, request_id) == "approved"
    end(registry)
    shred(registry, vault, people.steward)
    with registry.sessions() as s, pytest.raises(WorkflowError, match="was destroyed"):
        create_release(
            s, request_id=request_id, actor="cho", policies=policies, deployment=deployment
        )
    event = last_deny(registry, "release.create")
    assert "nothing was released" in event.reason and json.loads(event.details)["outputs"] == [
        output_id
    ]
    assert status(registry, request_id) == "approved"
    with registry.sessions() as s:
        assert s.scalars(select(Release)).all() == []
    assert not (deployment.home / "releases").exists() or not any(
        p for p in (deployment.home / "releases").iterdir() if not p.name.startswith(".")
    )


def test_dataset_problems_name_each_version_and_agreement(registry, policies, lab) -> None:
    people, _, use = lab
    with registry.sessions() as s:
        # A version the registry does not hold (a hand-edited datasets_used) fails closed.
        forged = Output(datasets_used=[use, {**use, "version": 9}], name="forged")
        assert dataset_problems(s, forged) == ["linked/victims@9 is not recorded in the registry"]
    end(registry, "DSA-VICTIMS")
    end(registry, "DSA-POLICE")
    with registry.sessions() as s:
        problems = dataset_problems(s, Output(datasets_used=[use], name="x"))
    assert [p.split(" ended on")[0] for p in problems] == [
        "linked/victims@1: agreement DSA-VICTIMS (victims)",
        "linked/victims@1: agreement DSA-POLICE (police_arrests)",
    ]

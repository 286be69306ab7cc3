"""A release is built from the audit log's evidence, not from editable rows: an attacker with
write access to the registry who edits files, adds files, flips statuses, moves outputs into an
approved request or edits the log itself after approval gets a refused, audited release; a
bundle's manifest names the events it rests on, and `release verify --audit` checks them."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from sqlalchemy import select, text
from workflow_fixtures import SECOND_CHECKER, add_checker, submitted_request, table_output

from output_checking.bundle import MANIFEST, SIGNATURE, manifest_bytes, signing_key
from output_checking.outputs import file_gate_rules, files_digest, record_output
from output_checking.release import (
    STAGING,
    check_release_against_audit,
    create_release,
    public_key_path,
    releases_dir,
)
from output_checking.release_evidence import check_bundle_against_audit
from output_checking.workflow import (
    REVIEWED_FIELDS,
    WorkflowError,
    changed_fields,
    field_digests,
    get_request,
    reviewed_digest,
    reviewed_fields,
    vote,
)
from registry_fixtures import PROJECT, populate
from srs.governance.audit import event_details, verify_chain
from srs.governance.registry.models import AuditEvent, Output, OutputFile, ReviewVote


@pytest.fixture
def people(registry, policies):
    people = populate(registry, policies)
    add_checker(registry, policies)
    return people


def approve(registry, policies, outputs: list[int], rejected=()) -> None:
    for checker in ("cho", SECOND_CHECKER):
        for output_id in outputs:
            with registry.sessions() as s:
                vote(
                    s,
                    output_id=output_id,
                    checker=checker,
                    policies=policies,
                    decision="reject" if output_id in rejected else "approve",
                )


def release(registry, policies, deployment, request_id: int):
    with registry.sessions() as s:
        return create_release(
            s, request_id=request_id, actor="cho", policies=policies, deployment=deployment
        )


def release_denials(registry) -> list[AuditEvent]:
    with registry.sessions() as s:
        return [
            e
            for e in s.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars()
            if e.action == "release.create" and e.outcome == "deny"
        ]


def published(deployment) -> list[str]:
    root = releases_dir(deployment)
    return sorted(p.name for p in root.iterdir() if p.name != STAGING) if root.exists() else []


# ------------------------------------------------------------------ registry edits after approval
def edit_bytes_and_column(registry, policies, sub) -> int:
    victim = sub.outputs[0]
    with registry.sessions() as s:
        stored = s.execute(select(OutputFile).where(OutputFile.output_id == victim)).scalar_one()
        stored.content = stored.content.replace(b"120", b"121")
        stored.sha256 = hashlib.sha256(stored.content).hexdigest()
        s.commit()
    return victim


def edit_bytes_only(registry, policies, sub) -> int:
    victim = sub.outputs[0]
    with registry.sessions() as s:
        stored = s.execute(select(OutputFile).where(OutputFile.output_id == victim)).scalar_one()
        stored.content = stored.content.replace(b"120", b"121")
        s.commit()
    return victim


def add_a_file(registry, policies, sub) -> int:
    victim = sub.outputs[2]
    data = b"sex,count\nF,3\n"
    with registry.sessions() as s:
        s.add(
            OutputFile(
                output_id=victim,
                name="extra.csv",
                content=data,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
            )
        )
        s.commit()
    return victim


def approve_a_rejected_output(registry, policies, sub) -> int:
    victim = sub.outputs[1]  # both reviewers rejected it
    with registry.sessions() as s:
        s.get(Output, victim).status = "approved"
        s.commit()
    return victim


def move_an_unreviewed_output_in(registry, policies, sub) -> int:
    victim = table_output(registry, policies, "victims by sex", {"F": 4, "M": 2})
    with registry.sessions() as s:
        output = s.get(Output, victim)
        output.request_id, output.status = sub.request_id, "approved"
        # Forged votes in the votes table do not help: the votes' audit events are missing.
        for checker in ("cho", SECOND_CHECKER):
            s.add(
                ReviewVote(
                    request_id=sub.request_id,
                    output_id=victim,
                    reviewer=checker,
                    review_round=1,
                    decision="approve",
                )
            )
        s.commit()
    return victim


def edit_the_content(registry, policies, sub) -> int:
    victim = sub.outputs[2]
    with registry.sessions() as s:
        output = s.get(Output, victim)
        content = json.loads(json.dumps(output.content))
        content["table"]["data"][0][0] = 3
        output.content = content
        s.commit()
    return victim


@pytest.mark.parametrize(
    ("attack", "what"),
    [
        (edit_bytes_and_column, "has SHA-256"),
        (edit_bytes_only, "has SHA-256"),
        (add_a_file, "file extra.csv was added after creation"),
        (approve_a_rejected_output, "vote reject"),
        (move_an_unreviewed_output_in, "not among the outputs the audit log records as submitted"),
        (edit_the_content, "content differs from the checksum recorded"),
    ],
)
def test_a_registry_edited_after_approval_is_refused_and_audited(
    registry, policies, people, deployment, attack, what
):
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.outputs, rejected={sub.outputs[1]})
    victim = attack(registry, policies, sub)
    with pytest.raises(WorkflowError, match="does not match its audit trail") as refused:
        release(registry, policies, deployment, sub.request_id)
    assert f"output #{victim}" in str(refused.value) and what in str(refused.value)
    [denied] = release_denials(registry)
    assert denied.target == f"request/{sub.request_id}"
    assert f"output #{victim}" in denied.reason and what in denied.reason
    assert victim in json.loads(denied.details)["outputs"]
    assert published(deployment) == []
    with registry.sessions() as s:
        assert get_request(s, sub.request_id).status == "approved"


def test_a_rejected_request_marked_approved_is_refused(registry, policies, people, deployment):
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.outputs, rejected=set(sub.outputs))
    with registry.sessions() as s:
        request = get_request(s, sub.request_id)
        assert request.status == "rejected"
        request.status = "approved"
        for output_id in sub.outputs:
            s.get(Output, output_id).status = "approved"
        s.commit()
    with pytest.raises(WorkflowError, match="as rejected since its last submission, not approved"):
        release(registry, policies, deployment, sub.request_id)
    assert len(release_denials(registry)) == 1 and published(deployment) == []


def as_attacker(registry, statement: str) -> None:
    """Someone with database-owner rights drops the append-only triggers and edits the log."""
    with registry.engine.begin() as connection:
        if registry.engine.dialect.name == "postgresql":
            connection.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        else:
            connection.execute(text("DROP TRIGGER audit_events_no_update"))
            connection.execute(text("DROP TRIGGER audit_events_no_delete"))
        connection.execute(text(statement))


def test_an_edited_audit_log_is_refused(registry, policies, people, deployment):
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.outputs)
    with registry.sessions() as s:
        seq = max(
            e.seq for e in s.execute(select(AuditEvent)).scalars() if e.action == "output.approve"
        )
    # A reviewer's approve vote made to look like another output's: the chain breaks there.
    as_attacker(registry, f"UPDATE audit_events SET actor = 'eve' WHERE seq = {seq}")
    with pytest.raises(WorkflowError, match="audit"):
        release(registry, policies, deployment, sub.request_id)
    [denied] = release_denials(registry)
    assert "eve" in denied.reason or f"event {seq}" in denied.reason
    assert published(deployment) == []


def test_an_output_with_many_files_keeps_its_evidence_within_the_field_bound(
    registry, policies, people, deployment
):
    files = {
        f"table-{n:03d}.csv": f"sex,count\nF,{100 + n}\nM,{200 + n}\n".encode() for n in range(60)
    }
    with registry.sessions() as s:
        output = record_output(
            s,
            project_code=PROJECT,
            author="ana",
            kind="table",
            name="sixty tables",
            content={"kind": "custom"},
            files=files,
            file_rules=file_gate_rules(policies),
        )
        s.commit()
        output_id = output.id
        [created] = [
            e for e in s.execute(select(AuditEvent)).scalars() if e.action == "output.create"
        ]
        details = event_details(created)
        # Sixty name -> SHA-256 pairs do not fit the bound; their digest and the id always do.
        assert details is not None and details["output_id"] == output_id
        assert details["files_sha256"] == files_digest(
            {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
        )
        assert details["file_count"] == 60 and "files" not in details
    from output_checking.workflow import create_request, submit_request

    with registry.sessions() as s:
        request = create_request(
            s, project_code=PROJECT, author="ana", policies=policies, title="t"
        )
        submit_request(s, request_id=request.id, actor="ana", policies=policies)
        request_id = request.id
    approve(registry, policies, [output_id])
    with registry.sessions() as s:
        stored = s.execute(
            select(OutputFile).where(OutputFile.name == "table-031.csv")
        ).scalar_one()
        stored.content = stored.content.replace(b"131", b"132")
        stored.sha256 = hashlib.sha256(stored.content).hexdigest()
        s.commit()
    with pytest.raises(WorkflowError, match=f"output #{output_id}: its 60 file"):
        release(registry, policies, deployment, request_id)
    with registry.sessions() as s:
        stored = s.execute(
            select(OutputFile).where(OutputFile.name == "table-031.csv")
        ).scalar_one()
        stored.content = stored.content.replace(b"132", b"131")
        s.commit()
    made = release(registry, policies, deployment, request_id)
    with registry.sessions() as s:
        bundle = releases_dir(deployment) / made.bundle_name
        assert check_release_against_audit(s, bundle, public_key_path(deployment), policies) == []


# ------------------------------------------------------------------ the manifest's evidence
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_manifest_names_the_events_it_rests_on_and_they_check_out(
    registry, policies, people, deployment
):
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.outputs, rejected={sub.outputs[1]})
    made = release(registry, policies, deployment, sub.request_id)
    bundle = releases_dir(deployment) / made.bundle_name
    manifest = json.loads((bundle / MANIFEST).read_text())
    with registry.sessions() as s:
        events = {e.seq: e for e in s.execute(select(AuditEvent)).scalars()}
        assert check_release_against_audit(s, bundle, public_key_path(deployment), policies) == []
        head = manifest["audit"]["chain_verified_through"]
        assert events[head["seq"]].event_hash == head["event_hash"]
        for record in manifest["outputs"]:
            created = events[record["audit"]["output_create"]["seq"]]
            assert created.action == "output.create"
            assert event_details(created)["output_id"] == record["id"]
            assert {a["reviewer"] for a in record["approvals"]} == {"cho", SECOND_CHECKER}
            for approval in record["approvals"]:
                event = events[approval["audit_seq"]]
                assert event.event_hash == approval["audit_event_hash"]
                assert (event.action, event.actor) == ("output.approve", approval["reviewer"])
        # A manifest naming an approval the log does not hold is caught.
        forged = json.loads(json.dumps(manifest))
        forged["outputs"][0]["approvals"][0]["audit_event_hash"] = "0" * 64
        problems = check_bundle_against_audit(s, bundle, forged, 2)
        assert any("approval is not in the log" in p for p in problems)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bundle_re_signed_with_other_content_is_caught_by_the_audit(
    registry, policies, people, deployment
):
    """Whoever holds the signing key can make a bundle that verifies; not one the log bears out."""
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.outputs)
    made = release(registry, policies, deployment, sub.request_id)
    bundle = releases_dir(deployment) / made.bundle_name
    manifest = json.loads((bundle / MANIFEST).read_text())
    path = manifest["outputs"][0]["files"][0]
    data = (bundle / path).read_bytes().replace(b"120", b"121")
    (bundle / path).write_bytes(data)
    for entry in manifest["files"]:
        if entry["path"] == path:
            entry["sha256"] = hashlib.sha256(data).hexdigest()
    body = manifest_bytes(manifest)
    (bundle / MANIFEST).write_bytes(body)
    key = signing_key(deployment.home)
    (bundle / SIGNATURE).write_bytes(base64.b64encode(key.sign(body)) + b"\n")
    with registry.sessions() as s:
        assert verify_chain(s).intact
        problems = check_release_against_audit(s, bundle, public_key_path(deployment), policies)
    assert f"output #{sub.outputs[0]}: its released files are not the files created" in problems
    assert any("no release.create event" in p for p in problems)


def test_a_differencing_override_forged_in_the_votes_table_is_ignored(
    registry, policies, people, deployment
):
    earlier = submitted_request(registry, policies, {"all arrests": {"F": 120, "M": 340}})
    # The same table less three people: once the first is released, the difference exposes them.
    later = submitted_request(
        registry, policies, {"arrests excluding one court": {"F": 118, "M": 339}}
    )
    approve(registry, policies, earlier.outputs + later.outputs)
    release(registry, policies, deployment, earlier.request_id)
    with pytest.raises(WorkflowError, match=r"finds \d+ disclosive difference"):
        release(registry, policies, deployment, later.request_id)
    with registry.sessions() as s:
        for stored in s.execute(select(ReviewVote)).scalars():
            if stored.output_id == later.outputs[0]:
                stored.comment = "differencing override: forged after approval"
        s.commit()
    with pytest.raises(WorkflowError, match=r"finds \d+ disclosive difference"):
        release(registry, policies, deployment, later.request_id)
    assert published(deployment) == [f"{PROJECT}-request-{earlier.request_id}"]


def test_an_override_given_with_the_vote_is_recorded_in_its_event(registry, policies, people):
    sub = submitted_request(registry, policies, {"one": {"F": 50, "M": 60}})
    with registry.sessions() as s:
        vote(
            s,
            output_id=sub.outputs[0],
            checker="cho",
            policies=policies,
            decision="approve",
            override_reason="nested tables were agreed with the data owner",
        )
        [event] = [
            e for e in s.execute(select(AuditEvent)).scalars() if e.action == "output.approve"
        ]
        assert event_details(event)["differencing_override"] is True


# ------------------------------------------------------------------ what the checkers reviewed
def edit_field(field: str, value):
    def attack(registry, policies, sub) -> int:
        victim = sub.outputs[0]
        with registry.sessions() as s:
            setattr(s.get(Output, victim), field, value)
            s.commit()
        return victim

    return attack


EDITS = {
    "name": "Approved by the DPO - no disclosure risk",
    "context": "edited context",
    "controls": "edited controls",
    "checks": [{"check": "sdc_table", "status": "ok", "message": "edited: all safe"}],
    "differentially_private": True,  # a plain table made to claim DP
    "author": "someone_else",
    "exception_justification": "edited after approval",
}


@pytest.mark.parametrize(("field", "value"), list(EDITS.items()), ids=list(EDITS))
def test_a_field_shown_in_the_manifest_edited_after_approval_is_refused(
    registry, policies, people, deployment, field, value
):
    """Review of issue 15: these went into the signed manifest and passed both the release and
    `release verify --audit`. Each approve event fixes a digest of what its checker reviewed."""
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.outputs)
    victim = edit_field(field, value)(registry, policies, sub)
    with pytest.raises(WorkflowError, match="does not match its audit trail") as refused:
        release(registry, policies, deployment, sub.request_id)
    expected = f"output #{victim}: what the checkers reviewed changed since cho's approval"
    assert expected in str(refused.value) and f"{field} differ" in str(refused.value)
    [denied] = release_denials(registry)
    assert expected in denied.reason and victim in json.loads(denied.details)["outputs"]
    assert published(deployment) == []


def test_every_reviewed_field_changes_the_digest_and_is_named() -> None:
    """A budget spend on a table breaks a database constraint, so the field is tested here."""
    record = {
        "kind": "dp_result",
        "name": "mean age",
        "author": "ana",
        "context": "c",
        "controls": "k",
        "exception_justification": None,
        "differentially_private": True,
        "budget_spend_id": 3,
        "content_sha256": "a" * 64,
        "files_sha256": "b" * 64,
        "checks": [
            {"check": "dp", "status": "ok", "message": "rho 0.01"},
            {"check": "differencing", "status": "ok", "message": "re-runs"},
        ],
    }
    fields = reviewed_fields(record)
    assert [c["check"] for c in fields["checks"]] == ["dp"]
    recorded = field_digests(fields)
    for name in REVIEWED_FIELDS:
        edited = reviewed_fields({**record, name: [] if name == "checks" else "edited"})
        assert reviewed_digest(edited) != reviewed_digest(fields)
        assert changed_fields(edited, recorded) == [name]


def test_an_approval_that_records_no_digest_is_refused(
    registry, policies, people, deployment, monkeypatch
):
    """Approve events written before the digest existed prove nothing of the fields: refused."""
    from output_checking.workflow import reviews

    real = reviews.record_event

    def without_digest(session, **event):
        if event["action"] == "output.approve":
            event["details"] = {
                k: v for k, v in event["details"].items() if not k.startswith("reviewed")
            }
        return real(session, **event)

    sub = submitted_request(registry, policies, {"one": {"F": 50, "M": 60}})
    with monkeypatch.context() as older_votes:
        older_votes.setattr(reviews, "record_event", without_digest)
        approve(registry, policies, sub.outputs)
    with pytest.raises(WorkflowError, match="records no digest of what they reviewed"):
        release(registry, policies, deployment, sub.request_id)
    assert published(deployment) == []


def test_the_differencing_check_may_change_after_approval(registry, policies, people, deployment):
    """The differencing check is left out of the digest: it re-runs at release, as the
    project releases more."""
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.outputs)
    with registry.sessions() as s:
        output = s.get(Output, sub.outputs[0])
        output.checks = [
            {**c, "message": "stale"} if c["check"] == "differencing" else c for c in output.checks
        ]
        s.commit()
    assert release(registry, policies, deployment, sub.request_id).file_count == 4


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_manifest_carries_the_reviewed_digest_and_verify_checks_its_fields(
    registry, policies, people, deployment
):
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.outputs)
    made = release(registry, policies, deployment, sub.request_id)
    bundle = releases_dir(deployment) / made.bundle_name
    manifest = json.loads((bundle / MANIFEST).read_text())
    with registry.sessions() as s:
        events = {e.seq: e for e in s.execute(select(AuditEvent)).scalars()}
        for record in manifest["outputs"]:
            digests = {
                event_details(events[a["audit_seq"]])["reviewed_sha256"]
                for a in record["approvals"]
            }
            assert digests == {record["audit"]["reviewed_sha256"]}
        assert check_release_against_audit(s, bundle, public_key_path(deployment), policies) == []
    # Whoever holds the signing key renames an output in the manifest and re-signs it.
    manifest["outputs"][0]["name"] = "Approved by the DPO - no disclosure risk"
    body = manifest_bytes(manifest)
    (bundle / MANIFEST).write_bytes(body)
    key = signing_key(deployment.home)
    (bundle / SIGNATURE).write_bytes(base64.b64encode(key.sign(body)) + b"\n")
    label = f"output #{manifest['outputs'][0]['id']}"
    with registry.sessions() as s:
        problems = check_release_against_audit(s, bundle, public_key_path(deployment), policies)
    assert f"{label}: the manifest's reviewed fields do not give its audit.reviewed_sha256" in (
        problems
    )
    assert any(
        p.startswith(f"{label}: what the checkers reviewed changed since cho's approval")
        and p.endswith("name differ")
        for p in problems
    )

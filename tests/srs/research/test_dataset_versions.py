"""Linked datasets versioned per delivery, in a researcher's session: ``s.versions(name)`` lists
the versions with their deliveries and change summaries, ``s.dataset(name, version=N)`` pins one,
every output records the versions its session read (``datasets_used``), and a release manifest
carries them; a notebook run records what its kernel read."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest
from agreement_fixtures import research_lineage
from session_fixtures import journeys
from session_fixtures import stored_output as output
from sqlalchemy import select
from version_fixtures import CHANGES, NEWER_ROWS, shred, store_second_version, use_of
from workflow_fixtures import SECOND_CHECKER, add_checker

import srs
from output_checking.outputs import OutputError, record_output
from output_checking.release import (
    check_release_against_audit,
    create_release,
    public_key_path,
    releases_dir,
)
from output_checking.workflow import WorkflowError, vote
from registry_fixtures import PROJECT
from srs.governance.access import AccessDenied
from srs.governance.registry.models import AuditEvent, Output
from srs.research.notebook_runs import datasets_read, last_audit_seq
from srs.research.values import SessionError
from srs.vault.store import Vault, VaultError, VaultShredded


@pytest.fixture
def two_versions(lab, policies):
    store_second_version(lab, policies)
    return lab


# ------------------------------------------------------------------ pinning a version
def test_a_pinned_older_version_is_read_while_a_newer_one_exists(s, two_versions) -> None:
    pd.testing.assert_frame_equal(s.dataset("linked/journeys", version=1), journeys())
    assert len(s.dataset("linked/journeys")) == NEWER_ROWS
    assert len(s.dataset("linked/journeys", version=2)) == NEWER_ROWS


def test_a_version_not_stored_or_not_a_number_is_refused_clearly(s, two_versions) -> None:
    with pytest.raises(VaultError, match=r"linked/journeys has no version 9: s.versions\("):
        s.dataset("linked/journeys", version=9)
    for wrong in ("2", True, 1.5):
        with pytest.raises(SessionError, match="version must be a whole number"):
            s.dataset("linked/journeys", version=wrong)
    # Another project's dataset is refused by the access check, whatever version is asked for.
    with pytest.raises(AccessDenied, match="no grant for linked/victims"):
        s.dataset("linked/victims", version=9)


def test_a_destroyed_version_is_listed_marked_and_cannot_be_read(s, two_versions) -> None:
    _, registry = two_versions
    shred(registry, "linked/journeys", 1)
    with pytest.raises(VaultShredded, match="linked/journeys@1 was destroyed on 2026-12-01"):
        s.dataset("linked/journeys", version=1)
    first, second = s.versions("linked/journeys")
    assert (first.version, first.shredded, first.shredded_reason) == (
        1,
        True,
        "agreement DSA-COURTS ended",
    )
    assert "DESTROYED 2026-12-01" in str(first) and not second.shredded
    assert len(s.dataset("linked/journeys")) == NEWER_ROWS


# ------------------------------------------------------------------ s.versions
def test_versions_list_deliveries_lineage_and_change_summaries(s, two_versions) -> None:
    first, second = s.versions("linked/journeys")
    assert (first.version, first.rows, first.deliveries, first.change_summary) == (1, 600, (), {})
    assert first.lineage == "" and not first.shredded
    assert (second.version, second.rows) == (2, NEWER_ROWS)
    assert second.deliveries == (("magistrates_cases", "2026-11"), ("police_arrests", "2026-11"))
    assert second.derived_from == ("linked/journeys@1",)
    assert second.change_summary == CHANGES
    assert second.changes == "added 200, corrected 3, withdrawn 1"
    assert (
        second.lineage
        == "magistrates_cases 2026-11; police_arrests 2026-11; derived from linked/journeys@1"
    )
    assert datetime.fromisoformat(second.stored_at) >= datetime.fromisoformat(first.stored_at)


def test_versions_are_refused_without_a_grant_and_the_refusal_audited(s, lab) -> None:
    _, registry = lab
    with pytest.raises(AccessDenied, match="project P001 has no grant for linked/victims"):
        s.versions("linked/victims")
    with registry.sessions() as db:
        (denial,) = db.execute(
            select(AuditEvent).where(
                AuditEvent.action == "access.dataset.read", AuditEvent.outcome == "deny"
            )
        ).scalars()
    assert (denial.actor, denial.target) == ("ana", "linked/victims")
    with pytest.raises(SessionError, match="name a dataset by its name"):
        s.versions(["linked/journeys"])


def test_versions_leave_out_those_above_the_projects_approval(s, lab, policies) -> None:
    from srs.governance.registry import projects

    deployment, registry = lab
    vault = Vault(deployment, policies)
    with registry.sessions() as db:
        for seed, level in ((1, "highly_confidential"), (2, "confidential")):
            vault.store(
                db,
                "linked/extra",
                journeys(seed=seed),
                actor="steward",
                classification=level,
                lineage=research_lineage(policies),
            )
        projects.grant_dataset(
            db, actor="steward", policies=policies, code=PROJECT, dataset_name="linked/extra"
        )
    assert [v.version for v in s.versions("linked/extra")] == [2]


# ------------------------------------------------------------------ outputs record what was read
def test_outputs_record_the_versions_their_session_had_read(s, two_versions) -> None:
    _, registry = two_versions
    first, second = use_of(registry, "linked/journeys", 1), use_of(registry, "linked/journeys", 2)
    older = s.dataset("linked/journeys", version=1)
    table = s.crosstab(older, "sex", "court")
    assert output(registry, table.attrs["srs_output_id"]).datasets_used == [first]
    assert s.last_output.datasets_used == ("linked/journeys@1",)
    # A name read by the analysis itself is a read too: the newest version, noted.
    s.crosstab("linked/journeys", "sex")
    assert output(registry, s.last_output.id).datasets_used == [first, second]
    # Reading version 1 again adds nothing; a DP query adds the version it read.
    s.dataset("linked/journeys", version=1)
    released = s.dp.count("linked/journeys", by=["sex"], version=1, rho=0.01)
    assert output(registry, released.attrs["srs_output_id"]).datasets_used == [first, second]


def test_an_output_made_before_any_read_records_none(s, lab, tmp_path) -> None:
    _, registry = lab
    notes = tmp_path / "notes.txt"
    notes.write_text("How we linked the cases, in words only.\n")
    summary = s.custom_output(notes, "Words about the method, no figures")
    assert output(registry, summary.id).datasets_used == [] and summary.datasets_used == ()


def test_a_dp_query_in_a_fresh_session_records_the_version_it_read(s, two_versions) -> None:
    _, registry = two_versions
    released = s.dp.count("linked/journeys", by=["sex"], version=1, rho=0.01)
    recorded = output(registry, released.attrs["srs_output_id"])
    assert recorded.datasets_used == [use_of(registry, "linked/journeys", 1)]
    # And the session counts it as read for what it makes next.
    s.crosstab(journeys(), "sex")
    assert output(registry, s.last_output.id).datasets_used == recorded.datasets_used


def test_a_hand_made_or_careless_datasets_used_is_refused(lab) -> None:
    _, registry = lab
    bad = [
        "linked/journeys@1",
        [{"name": "linked/journeys", "version": "1", "content_hash": "sha256:ab"}],
        [{"name": "linked/journeys", "version": True, "content_hash": "sha256:ab"}],
        [{"name": "linked/journeys", "version": 1}],
        [{"name": "linked/journeys", "version": 1, "content_hash": "x", "note": "extra"}],
    ]
    for wrong in bad:
        with (
            registry.sessions() as db,
            pytest.raises(OutputError, match="datasets_used|a dataset use"),
        ):
            record_output(
                db,
                project_code=PROJECT,
                author="ana",
                kind="custom",
                name="notes",
                content={},
                datasets_used=wrong,
            )


# ------------------------------------------------------------------ review and release
def approve_all(registry, policies, outputs: list[int]) -> None:
    for checker in ("cho", SECOND_CHECKER):
        for output_id in outputs:
            with registry.sessions() as db:
                vote(
                    db, output_id=output_id, checker=checker, policies=policies, decision="approve"
                )


def test_a_release_manifest_and_its_acro_results_carry_the_versions_used(
    s, two_versions, policies
) -> None:
    deployment, registry = two_versions
    add_checker(registry, policies)
    s.crosstab(s.dataset("linked/journeys", version=1), "sex", "court")
    request_id = s.submit("Cases by sex and court, first delivery")
    with registry.sessions() as db:
        (output_id,) = db.execute(
            select(Output.id).where(Output.request_id == request_id)
        ).scalars()
    approve_all(registry, policies, [output_id])
    with registry.sessions() as db:
        made = create_release(
            db, request_id=request_id, actor="cho", policies=policies, deployment=deployment
        )
    bundle = releases_dir(deployment) / made.bundle_name
    manifest = json.loads((bundle / "manifest.json").read_text())
    used = [use_of(registry, "linked/journeys", 1)]
    assert [o["datasets_used"] for o in manifest["outputs"]] == [used]
    acro = json.loads((bundle / "outputs" / "results.json").read_text())
    assert acro["results"][f"output_{output_id}"]["properties"]["datasets_used"] == used
    with registry.sessions() as db:
        assert check_release_against_audit(db, bundle, public_key_path(deployment), policies) == []


def test_versions_used_changed_after_approval_stop_the_release(s, two_versions, policies) -> None:
    deployment, registry = two_versions
    add_checker(registry, policies)
    s.crosstab(s.dataset("linked/journeys", version=1), "sex", "court")
    request_id = s.submit("Cases by sex and court")
    with registry.sessions() as db:
        (output_id,) = db.execute(
            select(Output.id).where(Output.request_id == request_id)
        ).scalars()
    approve_all(registry, policies, [output_id])
    # Someone with the database rewrites the output to claim the newer version.
    with registry.sessions() as db:
        db.get(Output, output_id).datasets_used = [use_of(registry, "linked/journeys", 2)]
        db.commit()
    with registry.sessions() as db, pytest.raises(WorkflowError, match="datasets_used differ"):
        create_release(
            db, request_id=request_id, actor="cho", policies=policies, deployment=deployment
        )


# ------------------------------------------------------------------ notebook runs
def test_a_run_records_the_versions_its_person_read_in_its_project(
    s, two_versions, policies
) -> None:
    deployment, registry = two_versions
    with registry.sessions() as db:
        started = last_audit_seq(db)
    s.dataset("linked/journeys", version=1)
    s.dp.count("linked/journeys", by=["sex"], rho=0.01)
    # olga's reads in her own project are not ana's run's.
    with registry.sessions() as db:
        Vault(deployment, policies).read(db, "linked/victims", actor="olga", project="P002")
    with registry.sessions() as db:
        read = datasets_read(db, user="ana", project=PROJECT, after_seq=started)
        assert datasets_read(db, user="ana", project="P002", after_seq=started) == []
        later = datasets_read(db, user="ana", project=PROJECT, after_seq=last_audit_seq(db))
    assert read == [use_of(registry, "linked/journeys", 1), use_of(registry, "linked/journeys", 2)]
    assert later == []


def test_a_notebook_run_records_the_versions_its_kernel_read(two_versions, policies, tmp_path):
    import nbformat

    from srs.research.notebook_runs import run_notebook

    deployment, registry = two_versions
    notebook = tmp_path / "pinned.ipynb"
    parameters = nbformat.v4.new_code_cell('source = "vault"')
    parameters.metadata["tags"] = ["parameters"]
    work = nbformat.v4.new_code_cell(
        "import srs\n"
        "s = srs.session(source=source)\n"
        "older = s.dataset('linked/journeys', version=1)\n"
        "s.crosstab(older, 'sex')\n"
        # What the notebook says of itself is not what the run records.
        "datasets_used = [{'name': 'linked/journeys', 'version': 2, 'content_hash': 'forged'}]"
    )
    nbformat.write(nbformat.v4.new_notebook(cells=[parameters, work]), notebook)
    run = run_notebook(
        deployment, policies, notebook=notebook, source="vault", user="ana", project=PROJECT
    )
    assert run.succeeded, run.error
    used = [use_of(registry, "linked/journeys", 1)]
    assert run.datasets_used == used
    assert output(registry, run.outputs[0].id).datasets_used == used
    with registry.sessions() as db:
        (event,) = db.execute(
            select(AuditEvent).where(AuditEvent.action == "notebook.run")
        ).scalars()
    assert json.loads(event.details)["datasets_used"] == ["linked/journeys@1"]


def test_on_synthetic_data_the_replica_versions_are_listed_and_recorded(lab, policies) -> None:
    deployment, registry = lab
    with registry.sessions() as db:
        for seed in (11, 12):
            Vault(deployment, policies).store(
                db, "synthetic/journeys", journeys(seed=seed), actor="steward"
            )
    with srs.session(
        user="ana", project=PROJECT, deployment=deployment, policies=policies, source="synthetic"
    ) as on_replica:
        assert [v.version for v in on_replica.versions("linked/journeys")] == [1, 2]
        assert {v.name for v in on_replica.versions("linked/journeys")} == {"synthetic/journeys"}
        older = on_replica.dataset("linked/journeys", version=1)
        pd.testing.assert_frame_equal(older, journeys(seed=11))
        table = on_replica.crosstab(older, "sex")
    assert output(registry, table.attrs["srs_output_id"]).datasets_used == [
        use_of(registry, "synthetic/journeys", 1)
    ]

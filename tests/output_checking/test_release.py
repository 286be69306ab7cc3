"""Releases: exactly the approved outputs, signed; verification names tampered, missing and added
files; only checkers outside the project release approved requests; a killed release leaves no
half bundle and no state claiming a release that did not happen."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from workflow_fixtures import SECOND_CHECKER, add_checker, submitted_request

from output_checking import release as release_module
from output_checking.bundle import BundleError, load_public_key, verify_bundle
from output_checking.release import (
    STAGING,
    bundle_name,
    create_release,
    list_releases,
    public_key_path,
    recover_releases,
    releases_dir,
)
from output_checking.workflow import WorkflowError, get_request, vote
from registry_fixtures import PROJECT, populate
from srs.governance.access import AccessDenied
from srs.governance.registry.models import AuditEvent, Output, OutputFile, Release

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def people(registry, policies):
    people = populate(registry, policies)
    add_checker(registry, policies)
    return people


def approve(registry, policies, request_id: int, outputs: list[int], rejected=()) -> None:
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


def release(registry, policies, deployment, request_id: int, actor: str = "cho") -> Release:
    with registry.sessions() as s:
        return create_release(
            s, request_id=request_id, actor=actor, policies=policies, deployment=deployment
        )


def test_bundle_holds_exactly_the_approved_outputs_and_verifies(
    registry, policies, people, deployment
):
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.request_id, sub.outputs, rejected={sub.outputs[1]})
    made = release(registry, policies, deployment, sub.request_id)
    bundle = releases_dir(deployment) / made.bundle_name
    report = verify_bundle(bundle, load_public_key(public_key_path(deployment)))
    assert report.valid, report.summary()
    manifest = report.manifest
    assert [o["id"] for o in manifest["outputs"]] == [sub.outputs[0], sub.outputs[2]]
    assert all(
        {a["reviewer"] for a in o["approvals"]} == {"cho", SECOND_CHECKER}
        for o in manifest["outputs"]
    )
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert files == sorted(
        ["manifest.json", "manifest.sig", "outputs/results.json"]
        + [f"outputs/{sub.outputs[0]:05d}-arrests-by-sex.csv"]
        + [f"outputs/{sub.outputs[2]:05d}-convictions-by-sex.csv"]
    )
    # ACRO's results.json, for checkers' existing tools: one record per released output.
    acro = json.loads((bundle / "outputs" / "results.json").read_text())
    assert sorted(acro["results"]) == sorted(
        f"output_{i}" for i in (sub.outputs[0], sub.outputs[2])
    )
    record = acro["results"][f"output_{sub.outputs[0]}"]
    assert record["files"][0]["name"] == f"{sub.outputs[0]:05d}-arrests-by-sex.csv"
    assert record["status"] == "pass" and record["properties"]["name"] == "arrests by sex"
    with registry.sessions() as s:
        assert get_request(s, sub.request_id).status == "released"
        statuses = [s.get(Output, i).status for i in sub.outputs]
        assert statuses == ["released", "rejected", "released"]
        [event] = [
            e for e in s.execute(select(AuditEvent)).scalars() if e.action == "release.create"
        ]
        assert json.loads(event.details)["manifest_sha256"] == made.manifest_sha256
        assert [r.bundle_name for r in list_releases(s, PROJECT)] == [made.bundle_name]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_flipped_byte_an_added_file_or_a_removed_file_is_named(
    registry, policies, people, deployment
):
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.request_id, sub.outputs)
    made = release(registry, policies, deployment, sub.request_id)
    bundle = releases_dir(deployment) / made.bundle_name
    key = load_public_key(public_key_path(deployment))
    victim = next((bundle / "outputs").iterdir())
    data = bytearray(victim.read_bytes())
    data[5] ^= 0x01
    victim.write_bytes(bytes(data))
    report = verify_bundle(bundle, key)
    assert not report.valid and report.tampered == [f"outputs/{victim.name}"]
    assert victim.name in report.summary()
    data[5] ^= 0x01
    victim.write_bytes(bytes(data))
    assert verify_bundle(bundle, key).valid
    (bundle / "outputs" / "extra.csv").write_text("sex,count\nF,3\n")
    report = verify_bundle(bundle, key)
    assert report.unexpected == ["outputs/extra.csv"] and not report.valid
    (bundle / "outputs" / "extra.csv").unlink()
    victim.unlink()
    assert verify_bundle(bundle, key).missing == [f"outputs/{victim.name}"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_edited_manifest_or_another_key_fails_the_signature(
    registry, policies, people, deployment, tmp_path
):
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.request_id, sub.outputs)
    made = release(registry, policies, deployment, sub.request_id)
    bundle = releases_dir(deployment) / made.bundle_name
    key = load_public_key(public_key_path(deployment))
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"ana"', '"eve"'))
    report = verify_bundle(bundle, key)
    assert not report.signature_valid and "manifest.json" in report.tampered[0]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.generate().public_key()
    assert not verify_bundle(bundle, other).signature_valid
    with pytest.raises(BundleError, match="no public key file"):
        load_public_key(tmp_path / "missing.pub")


def test_unsubmitted_or_undecided_requests_cannot_be_released(
    registry, policies, people, deployment
):
    sub = submitted_request(registry, policies)
    with pytest.raises(WorkflowError, match="only an approved request"):
        release(registry, policies, deployment, sub.request_id)
    with registry.sessions() as s:
        denied = [
            e
            for e in s.execute(select(AuditEvent)).scalars()
            if e.action == "release.create" and e.outcome == "deny"
        ]
        assert len(denied) == 1
    assert not releases_dir(deployment).exists() or not any(
        p.name != STAGING for p in releases_dir(deployment).iterdir()
    )


def test_the_author_and_project_members_cannot_release(registry, policies, people, deployment):
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.request_id, sub.outputs)
    with pytest.raises(AccessDenied, match="may not output.release"):
        release(registry, policies, deployment, sub.request_id, actor="ana")
    with registry.sessions() as s:
        assert get_request(s, sub.request_id).status == "approved"
        assert list_releases(s) == []


def test_a_request_is_released_once(registry, policies, people, deployment):
    sub = submitted_request(registry, policies, {"one": {"F": 50, "M": 60}})
    approve(registry, policies, sub.request_id, sub.outputs)
    release(registry, policies, deployment, sub.request_id)
    with pytest.raises(WorkflowError, match="released; only an approved"):
        release(registry, policies, deployment, sub.request_id, actor=SECOND_CHECKER)


def test_a_file_altered_in_the_registry_is_not_released_and_the_refusal_is_audited(
    registry, policies, people, deployment
):
    sub = submitted_request(registry, policies, {"one": {"F": 50, "M": 60}})
    approve(registry, policies, sub.request_id, sub.outputs)
    with registry.sessions() as s:
        stored = s.execute(select(OutputFile)).scalars().first()
        stored.content = stored.content.replace(b"50", b"51")
        s.commit()
    with pytest.raises(WorkflowError, match=f"output #{sub.outputs[0]}: file one.csv has SHA-256"):
        release(registry, policies, deployment, sub.request_id)
    with registry.sessions() as s:
        assert get_request(s, sub.request_id).status == "approved"
        [denied] = [
            e
            for e in s.execute(select(AuditEvent)).scalars()
            if e.action == "release.create" and e.outcome == "deny"
        ]
        assert f"output #{sub.outputs[0]}" in denied.reason and "one.csv" in denied.reason


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tables_released_together_are_differenced_against_each_other(
    registry, policies, people, deployment, monkeypatch
):
    """Review of issue 15: two tables 3 women apart in one request went out together with
    differencing ok. A request whose votes did not compare them (approved before the votes
    did) is refused at release, naming the other output, and the refusal is audited."""
    from output_checking.workflow import reviews

    sub = submitted_request(
        registry,
        policies,
        {"arrests by sex": {"F": 120, "M": 340}, "arrests excl one court": {"F": 117, "M": 340}},
    )
    first, second = sub.outputs
    with monkeypatch.context() as votes_before_the_fix:
        votes_before_the_fix.setattr(reviews, "together_tables", lambda output, others: {})
        approve(registry, policies, sub.request_id, sub.outputs)
    with pytest.raises(WorkflowError, match=f"output #{second} in this request") as refused:
        release(registry, policies, deployment, sub.request_id)
    assert f"output #{first}: differencing" in str(refused.value)
    with registry.sessions() as s:
        assert get_request(s, sub.request_id).status == "approved"
        [denied] = [
            e
            for e in s.execute(select(AuditEvent)).scalars()
            if e.action == "release.create" and e.outcome == "deny"
        ]
        assert f"output #{second} in this request" in denied.reason
        [check] = [c for c in s.get(Output, first).checks if c["check"] == "differencing"]
        assert check["status"] == "fail"
    assert published(deployment) == []


def test_tables_approved_together_with_an_override_are_released_with_the_finding(
    registry, policies, people, deployment
):
    """The checkers saw the difference at their votes and recorded why it is safe: the bundle
    goes out, its manifest carrying the differencing check as it found (fail)."""
    sub = submitted_request(
        registry,
        policies,
        {"arrests by sex": {"F": 120, "M": 340}, "arrests excl one court": {"F": 117, "M": 340}},
    )
    with registry.sessions() as s:
        for checker in ("cho", SECOND_CHECKER):
            for output_id in sub.outputs:
                with pytest.raises(WorkflowError, match="in this request"):
                    vote(
                        s,
                        output_id=output_id,
                        checker=checker,
                        policies=policies,
                        decision="approve",
                    )
                vote(
                    s,
                    output_id=output_id,
                    checker=checker,
                    policies=policies,
                    decision="approve",
                    override_reason="the court is published as a whole",
                )
    made = release(registry, policies, deployment, sub.request_id)
    manifest = json.loads(
        (releases_dir(deployment) / made.bundle_name / "manifest.json").read_text()
    )
    assert [
        c["status"]
        for o in manifest["outputs"]
        for c in o["checks"]
        if c["check"] == "differencing"
    ] == ["fail", "fail"]


CRASHING_RELEASE = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from output_checking import bundle, release
    from srs.governance.deployment import Deployment
    from srs.governance.policy import load_policies
    from srs.governance.registry import open_registry

    home, url, request_id, where, ready = sys.argv[1:6]
    written = []
    real_write, real_rename = bundle._write_durably, release.os.rename

    def pause():
        Path(ready).write_text("paused")
        time.sleep(120)

    def slow_write(path, data, mode=0o644):
        real_write(path, data, mode)
        if release.STAGING in Path(path).parts:
            written.append(path)
        if where == "files" and len(written) == 1:
            pause()

    def paused_rename(source, target):
        if where == "rename":
            pause()
        real_rename(source, target)

    bundle._write_durably = slow_write
    release.os.rename = paused_rename
    registry = open_registry(url)
    with registry.sessions() as s:
        release.create_release(
            s, request_id=int(request_id), actor="cho", policies=load_policies(),
            deployment=Deployment.at(home, database_url=url),
        )
    """
)


def kill_release_midway(deployment, request_id: int, where: str, tmp_path: Path) -> None:
    ready = tmp_path / f"ready-{where}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CRASHING_RELEASE,
            str(deployment.home),
            deployment.database_url,
            str(request_id),
            where,
            str(ready),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not ready.exists():
        if process.poll() is not None:
            raise AssertionError(f"the release process ended early: {process.stderr.read()!r}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the release process never reached the pause")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def published(deployment) -> list[str]:
    root = releases_dir(deployment)
    return sorted(p.name for p in root.iterdir() if p.name != STAGING) if root.exists() else []


def test_killed_while_writing_files_leaves_no_bundle_and_no_release_state(
    registry, policies, people, deployment, tmp_path
):
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.request_id, sub.outputs)
    kill_release_midway(deployment, sub.request_id, "files", tmp_path)
    assert published(deployment) == []  # no half bundle where bundles are published
    with registry.sessions() as s:
        assert get_request(s, sub.request_id).status == "approved"
        assert list_releases(s) == []
        assert {s.get(Output, i).status for i in sub.outputs} == {"approved"}
        actions = {e.action for e in s.execute(select(AuditEvent)).scalars()}
        assert "release.create" not in actions and "request.released" not in actions
        assert recover_releases(s, deployment)[0].startswith("discarded incomplete staging")
    assert list((releases_dir(deployment) / STAGING).iterdir()) == []
    made = release(registry, policies, deployment, sub.request_id)  # a clean retry works
    assert verify_bundle(
        releases_dir(deployment) / made.bundle_name, load_public_key(public_key_path(deployment))
    ).valid


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_killed_after_commit_is_finished_by_recovery(
    registry, policies, people, deployment, tmp_path
):
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.request_id, sub.outputs)
    kill_release_midway(deployment, sub.request_id, "rename", tmp_path)
    name = bundle_name(PROJECT, sub.request_id)
    with registry.sessions() as s:
        assert [r.bundle_name for r in list_releases(s)] == [name]
        assert recover_releases(s, deployment) == [f"finished release {name}"]
    report = verify_bundle(
        releases_dir(deployment) / name, load_public_key(public_key_path(deployment))
    )
    assert report.valid and published(deployment) == [name]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_recovery_leaves_a_staging_folder_whose_lock_is_held_alone(
    registry, policies, people, deployment
):
    in_flight = releases_dir(deployment) / STAGING / f"{bundle_name(PROJECT, 9)}-0123456789ab"
    (in_flight / "bundle").mkdir(parents=True)
    (in_flight / "bundle" / "manifest.json").write_text("{}")
    holder = os.open(in_flight, os.O_RDONLY)  # as the creating process holds it
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with registry.sessions() as s:
            assert recover_releases(s, deployment) == []
        assert (in_flight / "bundle" / "manifest.json").exists()
    finally:
        os.close(holder)
    with registry.sessions() as s:  # its process is gone: the kernel dropped the lock
        assert recover_releases(s, deployment) == [
            f"discarded incomplete staging folder {in_flight.name}"
        ]
    assert not in_flight.exists()


PAUSED_RELEASE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from output_checking import release
    from srs.governance.deployment import Deployment
    from srs.governance.policy import load_policies
    from srs.governance.registry import open_registry

    home, url, request_id, ready, go = sys.argv[1:6]
    real_write_bundle = release.write_bundle

    def write_then_pause(*args, **kwargs):
        digest = real_write_bundle(*args, **kwargs)
        Path(ready).write_text("staged, not committed")
        deadline = time.monotonic() + 120
        while not Path(go).exists():
            if time.monotonic() > deadline:
                raise SystemExit("never told to go on")
            time.sleep(0.05)
        return digest

    release.write_bundle = write_then_pause
    registry = open_registry(url)
    with registry.sessions() as s:
        release.create_release(
            s, request_id=int(request_id), actor="cho", policies=load_policies(),
            deployment=Deployment.at(home, database_url=url),
        )
    """
)


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_another_release_does_not_disturb_a_release_paused_before_its_commit(
    registry, policies, people, deployment, tmp_path, monkeypatch
):
    """Release A has staged its bundle and not committed; release B of another request runs
    recovery meanwhile. A's staging is left alone, so both end published and verifying."""
    first = submitted_request(registry, policies, {"arrests by sex": {"F": 120, "M": 340}})
    approve(registry, policies, first.request_id, first.outputs)
    second = submitted_request(registry, policies, {"convictions by sex": {"F": 40, "M": 190}})
    approve(registry, policies, second.request_id, second.outputs)
    ready, go = tmp_path / "a-staged", tmp_path / "a-go"
    a = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PAUSED_RELEASE,
            str(deployment.home),
            deployment.database_url,
            str(first.request_id),
            str(ready),
            str(go),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
    )
    b_recovered = threading.Event()
    b_failed: list[BaseException] = []
    real_recover = release_module.recover_releases

    def recover_then_note(session, deployment_):
        try:
            return real_recover(session, deployment_)
        finally:
            b_recovered.set()

    def release_b() -> None:
        try:
            release(registry, policies, deployment, second.request_id, actor=SECOND_CHECKER)
        except BaseException as exc:  # reported by the assertion below
            b_failed.append(exc)

    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert a.poll() is None, f"release A ended early: {a.stderr.read()!r}"
            assert time.monotonic() < deadline, "release A never staged its bundle"
            time.sleep(0.05)
        monkeypatch.setattr(release_module, "recover_releases", recover_then_note)
        b = threading.Thread(target=release_b, daemon=True)
        b.start()
        assert b_recovered.wait(60), "release B never ran recovery"
        b.join(10)  # B may wait for A's audit-head lock; it finishes once A commits
        go.write_text("go")
        b.join(60)
        assert not b.is_alive(), "release B never finished"
        assert a.wait(60) == 0, f"release A failed: {a.stderr.read().decode()}"
    finally:
        if a.poll() is None:
            a.kill()
            a.wait(30)
    assert b_failed == []
    key = load_public_key(public_key_path(deployment))
    names = [bundle_name(PROJECT, r) for r in (first.request_id, second.request_id)]
    assert published(deployment) == sorted(names)
    for name in names:
        report = verify_bundle(releases_dir(deployment) / name, key)
        assert report.valid, report.summary()
    with registry.sessions() as s:
        assert get_request(s, first.request_id).status == "released"
        assert get_request(s, second.request_id).status == "released"
        assert sorted(r.bundle_name for r in list_releases(s)) == sorted(names)
        assert real_recover(s, deployment) == []
    assert list((releases_dir(deployment) / STAGING).iterdir()) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_staged_bundle_left_by_the_earlier_layout_is_still_finished(
    registry, policies, people, deployment
):
    """Before attempts were locked, the staging folder was the bundle itself."""
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.request_id, sub.outputs)
    made = release(registry, policies, deployment, sub.request_id)
    final = releases_dir(deployment) / made.bundle_name
    os.rename(final, releases_dir(deployment) / STAGING / f"{made.bundle_name}-0123456789ab")
    with registry.sessions() as s:
        assert recover_releases(s, deployment) == [f"finished release {made.bundle_name}"]
    assert verify_bundle(final, load_public_key(public_key_path(deployment))).valid
    assert list((releases_dir(deployment) / STAGING).iterdir()) == []

"""Releasing an approved request: a signed bundle of exactly its approved outputs, crash-safe.

Only a request in state ``approved`` can be released, only by a checker outside its project
(``output.release``), and only its outputs whose agreed decision is ``approve`` go in. The
differencing check runs once more against everything the project has released since the
votes were cast.

Creating a release never leaves a half bundle or a claim that did not happen:

1. the bundle is written and flushed in ``releases/.staging/<name>-<random>``, which is never a
   bundle (nothing lists or publishes it);
2. the release row, the outputs' and request's ``released`` state and the audit event are
   committed in one transaction;
3. the staged folder is renamed to ``releases/<name>`` (an atomic rename on one file system).

A crash during 1 leaves only a staging folder and no state; a crash between 2 and 3 leaves a
committed release whose complete, flushed bundle is still staged. ``recover_releases`` (run by
every release command) deletes the first kind and finishes the second.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from disclosure.evidence import acro_results_document
from output_checking.bundle import (
    MANIFEST,
    PUBLIC_KEY_FILE,
    BundleReport,
    key_fingerprint,
    load_public_key,
    signing_key,
    verify_bundle,
    write_bundle,
)
from output_checking.outputs import acro_record
from output_checking.workflow import (
    APPROVED,
    RELEASED,
    WorkflowError,
    _authorise_checker,
    _refuse,
    _transition,
    get_request,
    released_tables,
    request_outputs,
    request_target,
    round_votes,
    run_differencing,
)
from srs.audit import record_event
from srs.deployment import Deployment
from srs.policy import PolicySet
from srs.registry.models import Project, Release

STAGING = ".staging"
ACRO_RESULTS = "outputs/results.json"


def releases_dir(deployment: Deployment) -> Path:
    """Where a deployment's release bundles are published."""
    return deployment.home / "releases"


def bundle_name(project_code: str, request_id: int) -> str:
    """The published folder name of a request's release (one release per request)."""
    return f"{project_code}-request-{request_id}"


def recover_releases(session: Session, deployment: Deployment) -> list[str]:
    """Finish or discard what a crashed ``create_release`` left in the staging folder.

    A staged bundle whose release was committed is moved into place (after checking it against
    the committed manifest hash); any other staged folder is deleted. Returns what was done.
    """
    staging = releases_dir(deployment) / STAGING
    if not staging.is_dir():
        return []
    done = []
    committed = {r.bundle_name: r for r in session.execute(select(Release)).scalars()}
    for folder in sorted(staging.iterdir()):
        name = folder.name.rsplit("-", 1)[0]
        release = committed.get(name)
        final = releases_dir(deployment) / name
        manifest = folder / MANIFEST
        if (
            release is not None
            and not final.exists()
            and manifest.exists()
            and hashlib.sha256(manifest.read_bytes()).hexdigest() == release.manifest_sha256
        ):
            os.rename(folder, final)
            done.append(f"finished release {name}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
            done.append(f"discarded incomplete staging folder {folder.name}")
    return done


def public_key_path(deployment: Deployment) -> Path:
    """The deployment's release-signing public key (give it to whoever receives releases)."""
    return deployment.home / PUBLIC_KEY_FILE


def create_release(
    session: Session,
    *,
    request_id: int,
    actor: str,
    policies: PolicySet,
    deployment: Deployment,
) -> Release:
    """Sign and publish the approved outputs of request ``request_id`` as a release bundle."""
    recover_releases(session, deployment)
    request = get_request(session, request_id)
    target = request_target(request)
    _authorise_checker(session, actor, request, policies, "output.release")
    if request.status != APPROVED:
        raise _refuse(
            session,
            actor=actor,
            action="release.create",
            target=target,
            reason=f"request #{request.id} is {request.status}; only an approved request can be "
            "released",
        )
    approved = [o for o in request_outputs(session, request) if o.status == "approved"]
    if not approved:
        raise _refuse(
            session,
            actor=actor,
            action="release.create",
            target=target,
            reason=f"request #{request.id} has no approved outputs",
        )
    votes = round_votes(session, request)
    released = released_tables(session, request.project_id, policies)
    for output in approved:
        findings = run_differencing(output, released, policies)
        overridden = any(
            v.output_id == output.id and "differencing override:" in (v.comment or "")
            for v in votes
        )
        if findings and not overridden:
            session.commit()
            raise _refuse(
                session,
                actor=actor,
                action="release.create",
                target=target,
                reason=f"output #{output.id} now differs by a small count from a table released "
                f"since it was approved ({findings[0]['message']}); return it to the checkers",
            )
    project_code = request.project.code
    name = bundle_name(project_code, request.id)
    files: dict[str, bytes] = {}
    described = []
    acro_records: list[dict] = []
    for output in approved:
        paths = []
        for stored in output.files:
            if hashlib.sha256(stored.content).hexdigest() != stored.sha256:
                raise WorkflowError(
                    f"output #{output.id} file {stored.name} no longer matches the SHA-256 recorded "
                    "when it was created; the registry has been altered, nothing was released"
                )
            path = f"outputs/{output.id:05d}-{stored.name}"
            files[path] = stored.content
            paths.append(path)
        record = {
            "id": output.id,
            "name": output.name,
            "kind": output.kind,
            "author": output.author,
            "created_at": output.created_at.isoformat(),
            "differentially_private": output.differentially_private,
            "budget_spend_id": output.budget_spend_id,
            "content_sha256": output.checksum,
            "context": output.context,
            "controls": output.controls,
            "exception_justification": output.exception_justification,
            "checks": [
                {k: c.get(k) for k in ("check", "status", "message")} for c in output.checks
            ],
            "approvals": [
                {
                    "reviewer": v.reviewer,
                    "decision": v.decision,
                    "at": v.updated_at.isoformat(),
                }
                for v in votes
                if v.output_id == output.id
            ],
            "files": paths,
        }
        if not paths:
            # An output with no file of its own is released as its open JSON content.
            path = f"outputs/{output.id:05d}-content.json"
            files[path] = (json.dumps(output.content, indent=2, sort_keys=True) + "\n").encode()
            record["files"] = [path]
        described.append(record)
        acro_records.append(
            acro_record(output, [p.removeprefix("outputs/") for p in record["files"]])
        )
    # ACRO's results.json beside the outputs, so checkers' existing tools can read the release.
    files[ACRO_RESULTS] = (
        json.dumps(acro_results_document(acro_records), indent=2, sort_keys=True) + "\n"
    ).encode()
    key = signing_key(deployment.home)
    created_at = datetime.now(UTC)
    manifest = {
        "release": name,
        "project": project_code,
        "project_title": request.project.title,
        "request": {"id": request.id, "title": request.title, "author": request.author},
        "released_by": actor,
        "released_at": created_at.isoformat(),
        "outputs": described,
    }
    root = releases_dir(deployment)
    staged = root / STAGING / f"{name}-{uuid.uuid4().hex[:12]}"
    (root / STAGING).mkdir(parents=True, exist_ok=True)
    manifest_sha256 = write_bundle(staged, files, manifest, key)
    try:
        release = Release(
            request_id=request.id,
            project_id=request.project_id,
            created_by=actor,
            bundle_name=name,
            manifest_sha256=manifest_sha256,
            signing_key_fingerprint=key_fingerprint(key.public_key()),
            file_count=len(files),
            created_at=created_at,
        )
        session.add(release)
        for output in approved:
            output.status = RELEASED
        _transition(session, request, RELEASED, actor, bundle=name, manifest_sha256=manifest_sha256)
        record_event(
            session,
            actor=actor,
            action="release.create",
            target=target,
            outcome="ok",
            details={
                "bundle": name,
                "manifest_sha256": manifest_sha256,
                "outputs": [o.id for o in approved],
                "files": len(files),
            },
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        shutil.rmtree(staged, ignore_errors=True)
        raise WorkflowError(f"request #{request_id} has already been released") from None
    except BaseException:
        session.rollback()
        shutil.rmtree(staged, ignore_errors=True)
        raise
    os.rename(staged, root / name)
    return release


def list_releases(session: Session, project_code: str | None = None) -> list[Release]:
    """Every release, oldest first (optionally of one project)."""
    query = select(Release).order_by(Release.id)
    if project_code is not None:
        query = query.join(Project, Project.id == Release.project_id).where(
            Project.code == project_code
        )
    return list(session.execute(query).scalars())


def verify_release(bundle: Path, public_key_file: Path) -> BundleReport:
    """Verify a bundle folder against the public key in ``public_key_file``."""
    return verify_bundle(bundle, load_public_key(public_key_file))

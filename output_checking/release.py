"""Releasing an approved request: a signed bundle of exactly its approved outputs, built from
the audit log's evidence, crash- and race-safe.

Only a request in state ``approved`` can be released, only by a checker outside its project
(``output.release``), and only its outputs whose agreed decision is ``approve`` go in. What goes
in is checked against what cannot be edited quietly (``output_checking.release_evidence``): each
output's files and content against its hash-chained ``output.create`` event, its place in the
request against the submission event, its approvals against the vote events of the current
review round, what its approvers reviewed (name, context, checks and the rest of what the
manifest shows) against the digest their approve events record, and the chain from those
events to the head is verified. Any difference refuses the release, audited, naming the output
and what differs. The differencing check runs once more, against everything the project has
released since the votes were cast and the other outputs released together. The manifest
names every event relied on (sequence number and hash), so ``srs audit verify`` and
``srs release verify --audit`` together prove a bundle is what was reviewed.

Creating a release never leaves a half bundle or a claim that did not happen, and never
disturbs another process's release:

1. each attempt makes its own folder ``releases/.staging/<name>-<random>`` and holds an
   exclusive ``flock`` on it until it is done; the bundle is written and flushed in its
   ``bundle/`` subfolder, which is never a bundle (nothing lists or publishes it);
2. the release row, the outputs' and request's ``released`` state and the audit event are
   committed in one transaction;
3. the staged bundle is renamed to ``releases/<name>`` (an atomic rename on one file system).

``recover_releases`` (run by every release command) takes each staging folder's lock without
waiting and skips a folder whose lock is held: that release is in flight in another process.
A folder it can lock was left by a process that died (the kernel drops a dead process's lock):
a crash during 1 left only a staging folder and no state, which is deleted; a crash between 2
and 3 left a committed release whose complete, flushed bundle is still staged, which is moved
into place.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from output_checking.release_evidence import check_bundle_against_audit, gather_evidence
from output_checking.workflow import (
    APPROVED,
    RELEASED,
    WorkflowError,
    authorise_checker,
    differencing_summary,
    get_request,
    outputs_refusal,
    refuse,
    released_tables,
    request_outputs,
    request_target,
    run_differencing,
    together_tables,
    transition,
)
from srs.governance.audit import record_event, verify_chain
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry.models import Project, Release

STAGING = ".staging"
# Inside an attempt's staging folder, the bundle being written.
STAGED_BUNDLE = "bundle"
ACRO_RESULTS = "outputs/results.json"


def releases_dir(deployment: Deployment) -> Path:
    """Where a deployment's release bundles are published."""
    return deployment.home / "releases"


def bundle_name(project_code: str, request_id: int) -> str:
    """The published folder name of a request's release (one release per request)."""
    return f"{project_code}-request-{request_id}"


def _lock_folder(folder: Path) -> int | None:
    """An exclusive lock on ``folder`` (the open descriptor that holds it), or None when another
    process holds it, or the folder is gone or is not a folder."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held, now = os.fstat(descriptor), os.stat(folder)
        # Locked, but is it still that folder? A recovery may have deleted it meanwhile.
        if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            return descriptor
    except (BlockingIOError, FileNotFoundError):
        pass
    os.close(descriptor)
    return None


def _begin_attempt(root: Path, name: str) -> tuple[Path, int]:
    """A new staging folder for one release attempt, locked by this process."""
    staging = root / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    while True:
        attempt = staging / f"{name}-{uuid.uuid4().hex[:12]}"
        attempt.mkdir(mode=0o700)
        lock = _lock_folder(attempt)
        if lock is not None:
            return attempt, lock
        # A recovery locked the new, empty folder first and discards it; start another.


def _recover_attempt(session: Session, deployment: Deployment, folder: Path) -> str:
    """Finish or discard one abandoned attempt (its lock held by the caller)."""
    name = folder.name.rsplit("-", 1)[0]
    # Staging folders of releases made before attempts had a lock are the bundle themselves.
    staged = folder / STAGED_BUNDLE if (folder / STAGED_BUNDLE).is_dir() else folder
    release = session.execute(
        select(Release).where(Release.bundle_name == name)
    ).scalar_one_or_none()
    final = releases_dir(deployment) / name
    manifest = staged / MANIFEST
    if (
        release is not None
        and not final.exists()
        and manifest.exists()
        and hashlib.sha256(manifest.read_bytes()).hexdigest() == release.manifest_sha256
    ):
        os.rename(staged, final)
        if staged != folder:
            shutil.rmtree(folder)
        return f"finished release {name}"
    shutil.rmtree(folder, ignore_errors=True)
    return f"discarded incomplete staging folder {folder.name}"


def recover_releases(session: Session, deployment: Deployment) -> list[str]:
    """Finish or discard what crashed ``create_release`` attempts left in the staging folder.

    A folder whose lock another process holds is a release in flight and is left alone. Of the
    others, a staged bundle whose release was committed is moved into place (after checking it
    against the committed manifest hash); any other is deleted. Returns what was done.
    """
    staging = releases_dir(deployment) / STAGING
    if not staging.is_dir():
        return []
    done = []
    for folder in sorted(staging.iterdir()):
        lock = _lock_folder(folder)
        if lock is None:
            continue
        try:
            done.append(_recover_attempt(session, deployment, folder))
        finally:
            os.close(lock)
    return done


def public_key_path(deployment: Deployment) -> Path:
    """The deployment's release-signing public key (give it to whoever receives releases)."""
    return deployment.home / PUBLIC_KEY_FILE


def _refuse_release(
    session: Session, actor: str, request_id: int, reason: str, **details: Any
) -> WorkflowError:
    """Audit a refused release of request ``request_id`` and return the error to raise."""
    return refuse(
        session,
        actor=actor,
        action="release.create",
        target=request_target(request_id),
        reason=reason,
        **details,
    )


def create_release(
    session: Session,
    *,
    request_id: int,
    actor: str,
    policies: PolicySet,
    deployment: Deployment,
) -> Release:
    """Sign and publish the approved outputs of request ``request_id`` as a release bundle.

    Refused (``WorkflowError``, audited as a ``release.create`` deny) unless the request is
    approved and every output to release matches its audit trail: files, content, submission,
    the current round's approve votes and what they approved (see
    ``output_checking.release_evidence``), and unless differencing against the released tables
    and the outputs released together finds nothing, or the approvers overrode it. Refused
    too when an output was made from a dataset version destroyed since, or under an agreement
    that has ended or expired (``output_checking.workflow.provenance``).
    """
    recover_releases(session, deployment)
    request = get_request(session, request_id)
    authorise_checker(session, actor, request, policies, "output.release")
    # The allow is on record now, so no lock on the audit head is held while the bundle is built.
    session.commit()
    if request.status != APPROVED:
        raise _refuse_release(
            session,
            actor,
            request.id,
            f"request #{request.id} is {request.status}; only an approved request can be released",
        )
    approved = [o for o in request_outputs(session, request) if o.status == "approved"]
    if not approved:
        raise _refuse_release(
            session, actor, request.id, f"request #{request.id} has no approved outputs"
        )
    refusal = outputs_refusal(session, approved)
    if refusal:
        raise _refuse_release(
            session,
            actor,
            request.id,
            f"request #{request.id} cannot be released, nothing was released: {refusal}",
            outputs=[o.id for o in approved],
        )
    project_code = request.project.code
    evidence = gather_evidence(
        session,
        request_id=request.id,
        project_code=project_code,
        outputs=approved,
        independent_reviews=policies.release.independent_reviews,
    )
    if evidence.problems:
        raise _refuse_release(
            session,
            actor,
            request.id,
            f"request #{request.id} does not match its audit trail, nothing was released: "
            + "; ".join(evidence.problems),
            outputs=sorted(
                {o.id for o in approved} - set(evidence.outputs) or {o.id for o in approved}
            ),
        )
    released = released_tables(session, request.project_id, policies)
    for output in approved:
        findings = run_differencing(output, released, policies, together_tables(output, approved))
        if findings and not evidence.outputs[output.id].differencing_override:
            session.commit()
            raise _refuse_release(
                session,
                actor,
                request.id,
                f"output #{output.id}: differencing against the released tables and the outputs "
                f"released with it finds {differencing_summary(findings)}; return it to the "
                "checkers",
                output_id=output.id,
            )
    name = bundle_name(project_code, request.id)
    files: dict[str, bytes] = {}
    described = []
    acro_records: list[dict] = []
    for output in approved:
        found = evidence.outputs[output.id]
        paths = []
        for stored in output.files:
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
            "content_sha256": found.content_sha256,
            "context": output.context,
            "controls": output.controls,
            "exception_justification": output.exception_justification,
            "checks": [
                {k: c.get(k) for k in ("check", "status", "message")} for c in output.checks
            ],
            # The dataset versions the output was made from, as the environment recorded them.
            "datasets_used": list(output.datasets_used or []),
            "approvals": [a.to_dict() for a in found.approvals],
            "audit": found.to_dict(),
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
        "audit": evidence.to_dict(),
        "outputs": described,
    }
    root = releases_dir(deployment)
    attempt, lock = _begin_attempt(root, name)
    committed = False
    try:
        staged = attempt / STAGED_BUNDLE
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
            transition(
                session, request, RELEASED, actor, bundle=name, manifest_sha256=manifest_sha256
            )
            record_event(
                session,
                actor=actor,
                action="release.create",
                target=request_target(request),
                outcome="ok",
                details={
                    "bundle": name,
                    "manifest_sha256": manifest_sha256,
                    "outputs": [o.id for o in approved],
                    "files": len(files),
                },
            )
            session.commit()
            committed = True
        except IntegrityError:
            raise _refuse_release(
                session, actor, request_id, f"request #{request_id} has already been released"
            ) from None
        except BaseException:
            session.rollback()
            raise
        os.rename(staged, root / name)
        shutil.rmtree(attempt)
    except BaseException:
        if not committed:
            shutil.rmtree(attempt, ignore_errors=True)
        raise  # a committed release whose rename failed is finished by ``recover_releases``
    finally:
        os.close(lock)
    return release


def check_release_against_audit(
    session: Session, bundle: Path, public_key_file: Path, policies: PolicySet
) -> list[str]:
    """Everything that stops ``bundle`` being proven the reviewed outputs: its signature or
    files (``verify_bundle``), a broken audit chain, or a manifest the log does not bear out.
    Empty when the bundle is exactly what was created, submitted and approved."""
    report = verify_release(bundle, public_key_file)
    if not report.valid:
        return [report.summary()]
    chain = verify_chain(session)
    if not chain.intact:
        return [f"the audit log is broken at event {chain.first_bad_seq}: {chain.problem}"]
    return check_bundle_against_audit(
        session, bundle, report.manifest or {}, policies.release.independent_reviews
    )


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

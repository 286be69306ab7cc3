"""``srs release``: create, verify and list the signed release bundles of approved outputs."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from srs.cli.base_command import (
    CommandContext,
    console,
    fail_check,
    noun_group,
    print_done,
    print_table,
)

app = noun_group("Create, verify and list signed release bundles of approved outputs.")


@app.command("create")
def release_create(
    ctx: typer.Context, request_id: int = typer.Argument(..., help="Approved request number.")
) -> None:
    """Sign and publish an approved request's approved outputs as a release bundle."""
    from output_checking.release import create_release, public_key_path, releases_dir

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    with state.registry.sessions() as session:
        release = create_release(
            session,
            request_id=request_id,
            actor=state.actor(),
            policies=state.policies,
            deployment=deployment,
        )
    print_done(
        "Released",
        f"request #{request_id}: {releases_dir(deployment) / release.bundle_name}"
        f" ({release.file_count} files, manifest sha256 {release.manifest_sha256})",
    )
    console.print(
        f"  signing key fingerprint {release.signing_key_fingerprint}; recipients verify with "
        f"`srs release verify BUNDLE --public-key {public_key_path(deployment)}`"
    )


@app.command("verify")
def release_verify(
    ctx: typer.Context,
    bundle: Path = typer.Argument(..., help="The bundle folder."),
    public_key: Path = typer.Option(
        None, help="Trusted public key (PEM); default: this deployment's release-signing.pub."
    ),
    audit: bool = typer.Option(
        False,
        "--audit",
        help="Also prove the bundle is what was reviewed: verify the audit chain and check every "
        "event the manifest names (creation, submission, approvals, release) against it "
        "(audit.read; needs the deployment).",
    ),
) -> None:
    """Check a bundle's Ed25519 signature and every file's SHA-256; name any tampered, missing or
    added file. With --audit, also check it against the hash-chained audit log. Exits 0 when
    valid, 1 when not."""
    from output_checking.release import check_release_against_audit, public_key_path, verify_release

    state: CommandContext = ctx.obj
    if public_key is None:
        public_key = public_key_path(state.require_initialised())
    report = verify_release(bundle, public_key)
    if not report.valid:
        fail_check(f"[red]{escape(report.summary())}[/]")
    console.print(f"[green]{escape(report.summary())}[/]")
    manifest = report.manifest or {}
    console.print(
        f"  {manifest.get('release')}: project {manifest.get('project')}, released by "
        f"{manifest.get('released_by')} at {manifest.get('released_at')}"
    )
    if not audit:
        return
    with state.registry.sessions() as session:
        state.authorise_audit_read(session)
        problems = check_release_against_audit(session, bundle, public_key, state.policies)
    if problems:
        fail_check(
            "[red]NOT PROVEN against the audit log:[/]", *(f"  {escape(p)}" for p in problems)
        )
    outputs = manifest.get("outputs", [])
    console.print(
        f"[green]matches the audit log[/]: {len(outputs)} output(s) as created, submitted and "
        "approved, and the release event records this manifest"
    )


@app.command("list")
def release_list(
    ctx: typer.Context, project: str = typer.Option(None, help="Only this project's releases.")
) -> None:
    """List releases (checkers, admins and stewards: audit.read)."""
    from sqlalchemy import select

    from output_checking.release import list_releases, recover_releases
    from srs.governance.registry.models import Project

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    with state.registry.sessions() as session:
        state.authorise_audit_read(session)
        for note in recover_releases(session, deployment):
            console.print(f"[yellow]recovered:[/] {note}")
        releases = list_releases(session, project)
        codes = {p.id: p.code for p in session.execute(select(Project)).scalars()}
    table = Table(
        "bundle", "project", "request", "released by", "when (UTC)", "files", "manifest sha256"
    )
    for release in releases:
        table.add_row(
            release.bundle_name,
            codes.get(release.project_id, "?"),
            str(release.request_id),
            release.created_by,
            release.created_at.strftime("%Y-%m-%d %H:%M"),
            str(release.file_count),
            release.manifest_sha256[:16] + "…",
        )
    print_table(table, empty="No releases yet.")

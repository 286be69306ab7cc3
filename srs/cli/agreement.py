"""``srs agreement``: record data-sharing agreements, amend them (each amendment a new version),
show their twelve elements, list them, and end one (its data are then destroyed)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from srs.cli.base_command import (
    CommandContext,
    UsageError,
    console,
    noun_group,
    print_done,
    print_table,
)
from srs.governance import agreements
from srs.governance.registry.models import Agreement, AgreementVersion

app = noun_group("Record, amend, show, list and end data-sharing agreements.")


def _known_sources(state: CommandContext) -> list[str]:
    from srs.pipeline.ingest import known_sources

    return known_sources(state.policies.source_dir)


def _status(agreement: Agreement, today: date) -> str:
    why_not = agreements.in_force(agreement, today)
    return "in force" if why_not is None else why_not


@app.command("create")
def agreement_create(
    ctx: typer.Context,
    terms_file: Path = typer.Argument(..., help="YAML file of the agreement's twelve elements."),
    reference: str = typer.Option(..., help="The agreement's reference, e.g. DSA-POLICE."),
) -> None:
    """Record a signed agreement from its terms (stewards, administrators); version 1."""
    state: CommandContext = ctx.obj
    terms = agreements.load_terms(terms_file)
    with state.registry.sessions() as session:
        agreement = agreements.create_agreement(
            session,
            actor=state.actor(),
            policies=state.policies,
            reference=reference,
            terms=terms,
            known_sources=_known_sources(state),
        )
        print_done(
            "Recorded",
            f"agreement {escape(agreement.reference)} version 1 "
            f"({terms.duration.start} to {terms.duration.end}; {', '.join(terms.sources)})",
        )


@app.command("amend")
def agreement_amend(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="The agreement's reference."),
    terms_file: Path = typer.Argument(..., help="YAML file of the amended terms, in full."),
    note: str = typer.Option(..., help="What changed and why (kept with the version)."),
) -> None:
    """Record an amendment: the terms become the agreement's next version."""
    state: CommandContext = ctx.obj
    terms = agreements.load_terms(terms_file)
    with state.registry.sessions() as session:
        version = agreements.amend_agreement(
            session,
            actor=state.actor(),
            policies=state.policies,
            reference=reference,
            terms=terms,
            change_note=note,
            known_sources=_known_sources(state),
        )
        print_done("Amended", f"agreement {escape(reference)}: now version {version.version}")


def _version(agreement: Agreement, number: int | None) -> AgreementVersion:
    if number is None:
        return agreements.current_version(agreement)
    for version in agreement.versions:
        if version.version == number:
            return version
    raise UsageError(
        f"agreement {agreement.reference} has versions 1 to "
        f"{agreements.current_version(agreement).version}, not {number}"
    )


def _print_terms(terms: agreements.AgreementTerms) -> None:
    """The twelve elements, numbered as in UNODC's Box 10."""

    def section(number: int, name: str) -> None:
        console.print(f"[bold]{number}. {name}[/]")

    def line(text: str) -> None:
        console.print(f"   {escape(text)}", highlight=False)

    section(1, "Parties")
    for party in terms.parties:
        line(f"{party.name} ({party.role})")
    section(2, "Purpose")
    line(terms.purpose)
    section(3, "Legal basis")
    line(terms.legal_basis)
    section(4, "Duration")
    line(f"{terms.duration.start} to {terms.duration.end}")
    section(5, "Obligations")
    for obligation in terms.obligations:
        line(f"- {obligation}")
    section(6, "Incentives")
    for incentive in terms.incentives or ["none"]:
        line(f"- {incentive}")
    section(7, "Focal points")
    for point in terms.focal_points:
        line(f"{point.party}: {point.name} <{point.email}>")
    section(8, "Data")
    for data in terms.data:
        variables = (
            "the whole data dictionary" if data.variables == ["*"] else ", ".join(data.variables)
        )
        line(f"{data.source}: {data.periodicity}, {data.format}; variables: {variables}")
        line(f"  transmission: {data.transmission}")
    section(9, "Quality standards")
    quality = terms.quality_standards
    line(
        f"completeness >= {quality.min_completeness:g}, validity >= {quality.min_validity:g}, "
        f"rejects <= {quality.max_reject_rate:g}, at most {quality.max_days_late} days late, "
        f"row change <= {quality.max_row_change:g}"
    )
    section(10, "Confidentiality and security")
    line(f"held at most {terms.confidentiality_security.max_classification}")
    for measure in terms.confidentiality_security.measures:
        line(f"- {measure}")
    section(11, "Amendments")
    line(terms.amendments)
    section(12, "Use of information")
    use = terms.use_of_information
    line(f"permitted purposes: {', '.join(use.permitted_purposes)}")
    line(f"permitted legal bases: {'; '.join(use.permitted_legal_bases)}")
    line(f"publication: {use.publication}")


@app.command("show")
def agreement_show(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="The agreement's reference."),
    version: int = typer.Option(None, help="Version to show (default: the current one)."),
) -> None:
    """Show an agreement's status, versions and the twelve elements of its terms."""
    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        agreement = agreements.get_agreement(session, reference)
        shown = _version(agreement, version)
        terms = agreements.terms_of(shown)
        console.print(
            f"[bold]{escape(agreement.reference)}[/] {escape(agreement.title)}", highlight=False
        )
        console.print(f"  status: {escape(_status(agreement, date.today()))}", highlight=False)
        for each in agreement.versions:
            console.print(
                f"  version {each.version} of {each.created_at:%Y-%m-%d} by "
                f"{escape(each.created_by)}: {escape(each.change_note)} "
                f"(sha256 {each.terms_sha256[:12]})"
                + ("  [bold]<- shown[/]" if each.version == shown.version else ""),
                highlight=False,
            )
        _print_terms(terms)


@app.command("list")
def agreement_list(ctx: typer.Context) -> None:
    """List agreements: reference, title, status, version, duration and sources."""
    state: CommandContext = ctx.obj
    table = Table("reference", "title", "status", "version", "duration", "sources")
    today = date.today()
    with state.registry.sessions() as session:
        for agreement in agreements.list_agreements(session):
            version = agreements.current_version(agreement)
            table.add_row(
                escape(agreement.reference),
                escape(agreement.title),
                escape(_status(agreement, today)),
                str(version.version),
                f"{version.start_date} to {version.end_date}",
                ", ".join(agreements.terms_of(version).sources),
            )
    print_table(table, empty="No agreements are recorded; see `srs agreement create`.")


@app.command("end")
def agreement_end(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="The agreement's reference."),
    reason: str = typer.Option(..., help="Why the agreement ends (kept in the audit log)."),
    certificate_dir: Path = typer.Option(
        None, help="Folder for the destruction certificate (default: the deployment's)."
    ),
) -> None:
    """End an agreement: its data are destroyed (their keys deleted) and what mixed them is
    rebuilt; a destruction certificate is written."""
    from srs.pipeline.agreement_end import end_agreement
    from srs.pipeline.offences import load_offences

    state: CommandContext = ctx.obj
    with state.registry.sessions() as session:
        certificate = end_agreement(
            session,
            state.vault,
            actor=state.actor(),
            reference=reference,
            reason=reason,
            certificate_dir=certificate_dir,
            offences=load_offences(state.policies.source_dir),
        )
    print_done("Ended", f"agreement {escape(reference)}; {escape(str(certificate))}")

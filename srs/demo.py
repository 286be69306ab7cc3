"""The end-to-end demonstration behind ``make demo``: the whole journey on a small simulated
population, from agency extracts to a signed release.

It builds a fresh deployment in a folder of its own, registers a steward, researchers and
checkers, creates a project; simulates the extracts, ingests them (rejecting a few deliberately
broken rows), links persons with Splink and reports linkage quality against the ground truth,
builds and stores the linked research datasets, grants them to the project, reads one back as
a researcher and shows the refusals the rules require; releases differentially private
statistics against the project's budget; builds a synthetic replica, gates it against held-out
persons, evaluates it and exports it as an open-data package; runs the project's notebooks with
papermill on the synthetic replica and on the vault data (each submitting its outputs) and the
student notebook on the open export; the researcher's session makes checked tables and a
regression and submits them; two checkers review every request (a scripted decision: one
output rejected), signed release bundles of the approved outputs are created and verified, and
the audit log is verified. It ends with how to start the checker UI and JupyterHub.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from srs.errors import SRSError
from srs.governance.access import AccessDenied
from srs.governance.agreements import create_agreement, standard_agreements
from srs.governance.audit import tail_events, verify_chain
from srs.governance.deployment import Deployment
from srs.governance.policy import load_policies
from srs.governance.registry import accounts, open_registry, projects
from srs.governance.registry.models import Delivery
from srs.pipeline.ingest import known_sources
from srs.pipeline.linkage import evaluate, load_linkage_settings
from srs.pipeline.offences import load_offences
from srs.pipeline.person_linkage import link_in_vault, refresh_in_vault
from srs.pipeline.simulation import SOURCES, simulate, write_simulation
from srs.pipeline.simulation.deliveries import make_deliveries
from srs.pipeline.stewardship import PERSON_LOOKUP, ingest_into_vault, publish_linked_datasets
from srs.vault.crypto import generate_master_key, write_key_file
from srs.vault.store import Vault

DEMO_SEED = 20261122
DEMO_PERSONS = 3000
DEMO_DELIVERIES = 1  # the base extract, then this many monthly deliveries per agency
# Demo-only passwords, printed so the checker UI can be tried; a real deployment sets its own.
DEMO_CHECKER_PASSWORDS = {"cho": "demo checker cho", "chen": "demo checker chen"}
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
RESEARCH_NOTEBOOKS = ("victim_attrition.ipynb", "reoffending.ipynb", "remand.ipynb")


def run_demo(home: Path, console: Console) -> None:
    """Run the demonstration in ``home`` (recreated) and print each step."""
    home = home.resolve()
    if home.exists():
        if not (home / "DEPLOYMENT").exists():
            raise SRSError(f"{home} exists and is not a demo deployment; choose another --home")
        shutil.rmtree(home)
    deployment = Deployment.at(home, database_url=f"sqlite:///{home / 'srs.db'}")
    home.mkdir(parents=True, mode=0o700)
    home.chmod(0o700)  # as `srs init`: private, so `srs hub start` accepts it
    deployment.vault_dir.mkdir(mode=0o700)
    master_key = generate_master_key()
    write_key_file(deployment.key_file, master_key)
    policies = load_policies()
    registry = open_registry(deployment.database_url, migrate=True)
    deployment.marker_file.write_text("srs-toolkit demo deployment\n")
    vault = Vault(deployment, policies, master_key)
    today = date.today()
    step = 0

    def say(text: str) -> None:
        nonlocal step
        step += 1
        console.print(f"[bold cyan]{step:>2}.[/] {text}")

    console.rule("srs-toolkit demo")
    console.print(
        f"Deployment: {home} (SQLite registry, encrypted vault, policies from "
        f"{policies.source_dir})"
    )
    with registry.sessions() as s:
        accounts.bootstrap_admin(s, username="admin", full_name="Demo Administrator")
        say("Initialised the deployment and its first administrator 'admin'")
        people = [
            ("steward", "Sam Steward", ["steward"], None, None, None),
            (
                "ana",
                "Ana Researcher",
                ["researcher"],
                "AR-1001",
                today + timedelta(days=900),
                today - timedelta(days=30),
            ),
            (
                "ben",
                "Ben Lapsed",
                ["researcher"],
                "AR-0999",
                today - timedelta(days=1),
                today - timedelta(days=400),
            ),
            (
                "cho",
                "Cho Checker",
                ["checker"],
                "AR-2001",
                today + timedelta(days=900),
                today - timedelta(days=10),
            ),
        ]
        for username, name, roles, number, expiry, trained in people:
            accounts.add_researcher(
                s,
                actor="admin",
                policies=policies,
                username=username,
                full_name=name,
                roles=roles,
                accreditation_number=number,
                accreditation_expiry=expiry,
                training_date=trained,
            )
        say(
            "Registered steward 'steward', researchers 'ana' and 'ben' (accreditation expired "
            "yesterday), checker 'cho'"
        )
        # Every extract comes under a data-sharing agreement: the shipped one per provider.
        agreements = standard_agreements(policies.source_dir)
        for reference, terms in agreements.items():
            create_agreement(
                s,
                actor="steward",
                policies=policies,
                reference=reference,
                terms=terms,
                known_sources=known_sources(policies.source_dir),
            )
        say(
            f"Recorded the providers' data-sharing agreements ({', '.join(agreements)}; "
            "policies/agreements/): parties, purpose, legal basis, duration, data, quality "
            "standards, permitted uses..."
        )
        projects.create_project(
            s,
            actor="admin",
            policies=policies,
            code="P2026-001",
            title="Victim attrition through the justice stages",
            purpose="Estimate where and why victims withdraw support, by offence type.",
            legal_basis="Digital Economy Act 2017 s.64 (research)",
            purpose_category="research",
            agreements=sorted(agreements),
            start_date=today - timedelta(days=60),
            end_date=today + timedelta(days=365),
            approved_classification="confidential",
        )
        for member in ("ana", "ben"):
            projects.add_member(
                s, actor="admin", policies=policies, code="P2026-001", username=member
            )
        say(
            "Created project P2026-001 (research under the Digital Economy Act, approved up to "
            "'confidential', naming the six agreements); members ana and ben"
        )

        extracts = home / "simulation"
        simulation = simulate(DEMO_PERSONS, DEMO_SEED)
        series = make_deliveries(simulation, DEMO_DELIVERIES)
        paths = write_simulation(simulation, extracts, deliveries=series)
        say(
            f"Simulated {DEMO_PERSONS:,} persons: {sum(len(f) for f in series.base.values()):,} "
            f"records in 7 agency base extracts of events before {series.cut_off:%Y-%m-%d} "
            f"({extracts / 'extracts'}); the month after comes as a delivery "
            f"({extracts / 'deliveries' / series.periods[0]})"
        )
        police = paths["police_arrests"]
        lines = police.read_text().splitlines()
        # Break two rows the way real extracts break, to show the rejects file.
        lines[3] = lines[3].replace(lines[3].split(",")[8], "ZZZ99", 1)
        lines[5] = ",".join(lines[5].split(",")[:6] + ["31/31/1990"] + lines[5].split(",")[7:])
        police.write_text("\n".join(lines) + "\n")
        offences = load_offences()
        for source in SOURCES:
            result, _ = ingest_into_vault(
                s, vault, actor="steward", source=source, path=paths[source], offences=offences
            )
            note = f", {result.rows_rejected} rejected" if result.rows_rejected else ""
            console.print(
                f"      {source}: {result.rows_in:,} in, {result.rows_accepted:,} accepted{note}"
            )
        say(
            "Ingested every extract against its data dictionary into the steward zone; rejects "
            f"and reasons in {police}.rejects.csv"
        )
        settings = load_linkage_settings()
        linkage = link_in_vault(
            s,
            vault,
            actor="steward",
            settings=settings,
            clerical_path=home / "steward" / "clerical_review.csv",
        )
        quality = evaluate(linkage.lookup, series.base_truth, leave_out_unlinked=True)
        say(
            f"Linked {len(linkage.records):,} records into {linkage.lookup['cluster_id'].nunique():,} "
            f"persons with Splink: precision {quality.precision:.4f}, recall {quality.recall:.4f}, "
            f"F1 {quality.f1:.4f} against the ground truth"
        )
        linked = publish_linked_datasets(s, vault, actor="steward", offences=offences)
        say(
            "Built and stored the de-identified linked datasets: "
            + ", ".join(f"{name} ({len(table):,} rows)" for name, table in linked.tables.items())
        )
        try:
            vault.read(s, "linked/journeys", actor="ana", project="P2026-001")
        except AccessDenied as exc:
            say(f"Before any grant, ana's read is refused: {exc.reason}")
        projects.grant_dataset(
            s, actor="steward", policies=policies, code="P2026-001", dataset_name="linked/journeys"
        )
        say("Steward granted linked/journeys to P2026-001")
        frame = vault.read(s, "linked/journeys", actor="ana", project="P2026-001")
        say(
            f"ana read linked/journeys through the access check: {len(frame):,} cases of "
            f"{frame['person_key'].nunique():,} persons, decrypted in memory only; no names, "
            "dates of birth or postcodes, only pseudonymous keys, ages and areas"
        )
        for actor, dataset, why in (
            ("ben", "linked/journeys", "expired accreditation"),
            ("ana", "source/victims", "steward-zone data"),
        ):
            try:
                vault.read(s, dataset, actor=actor, project="P2026-001")
            except AccessDenied as exc:
                say(f"{actor} reading {dataset} refused ({why}): {exc.reason}")
        try:
            projects.grant_dataset(
                s,
                actor="ana",
                policies=policies,
                code="P2026-001",
                dataset_name="linked/victims",
            )
        except AccessDenied as exc:
            say(f"ana tried to grant herself a dataset: {exc.reason}")
        for name in ("linked/persons", "linked/victims", "linked/reoffending"):
            projects.grant_dataset(
                s, actor="steward", policies=policies, code="P2026-001", dataset_name=name
            )
        say("Steward granted the rest of the linked set to P2026-001 for the project's notebooks")
        _next_delivery(s, vault, policies, series, paths, offences, say, home, linked)

        _differential_privacy(s, vault, policies, say, console)
        s.commit()
        export = _open_data(deployment, registry, vault, policies, say)
        runs = _notebooks(deployment, policies, export, say, console)
        release = _output_checking(deployment, registry, policies, say, console, runs)

        report = verify_chain(s)
        say(f"Audit log verified: {report.events_checked} events, chain intact = {report.intact}")
        table = Table(
            "seq", "actor", "action", "target", "outcome", "reason", title="Last audit events"
        )
        for e in tail_events(s, 8):
            table.add_row(str(e.seq), e.actor, e.action, e.target, e.outcome, e.reason)
        console.print(table)
    registry.dispose()
    if not report.intact:
        raise SRSError(f"demo audit log is broken: {report.problem}")
    console.rule("done")
    console.print(
        f"Try: srs --home {home} --as admin audit tail    |    srs --home {home} dataset list"
    )
    console.print(
        f"     srs --home {home} release verify {release}    |    "
        f"srs --home {home} --as cho outputs queue --all"
    )
    console.print(
        f"     srs --home {home} checker serve   (sign in as cho / {DEMO_CHECKER_PASSWORDS['cho']!r})"
    )
    console.print(
        f"     srs --home {home} --as ana run notebooks/remand.ipynb --on synthetic --project P2026-001"
    )
    console.print(
        f"     sudo srs --home {home} hub start   (JupyterHub on http://127.0.0.1:8000; as root, "
        "as researchers get Unix accounts; the checker UI is at /services/output-checking/)"
    )


def _next_delivery(  # noqa: PLR0913
    session, vault, policies, series, paths, offences, say, home: Path, first_build
) -> None:
    """The month after the base arrives from every agency: each delivery is checked against its
    agreement, applied (adds, corrections, withdrawals) with a quality report; the refresh links
    the new and corrected records into the persons held, keeping every key; the linked datasets
    become version 2; and a project whose purpose no agreement permits is refused a grant."""
    period = series.periods[0]
    # The files arrive a few days after the month ends (the agreements allow 15).
    arrived = (pd.Period(period, freq="M").end_time + pd.Timedelta(days=4)).date()
    totals = {"add": 0, "correct": 0, "withdraw": 0, "late": 0, "rejected": 0}
    failed: list[str] = []
    for source in SOURCES:
        result, stored = ingest_into_vault(
            session,
            vault,
            actor="steward",
            source=source,
            path=paths[f"{period}/{source}"],
            offences=offences,
            delivery=True,
            period=period,
            today=arrived,
            report_dir=home / "steward" / "quality",
        )
        changes = stored.change_summary
        for key, label in (("add", "added"), ("correct", "corrected"), ("withdraw", "withdrawn")):
            totals[key] += int(changes.get(label, 0))
        totals["late"] += int(changes.get("late", 0))
        totals["rejected"] += result.rows_rejected
        delivery = session.execute(
            select(Delivery).where(Delivery.source == source, Delivery.period == period)
        ).scalar_one()
        failed += [
            f"{source} {check['name']}"
            for check in delivery.quality.get("checks", [])
            if not check.get("passed", True)
        ]
    say(
        f"Delivery {period} arrived from every agency and came under its agreement: "
        f"{totals['add']} records added ({totals['late']} late arrivals), {totals['correct']} "
        f"corrected, {totals['withdraw']} withdrawn, {totals['rejected']} rejected; quality "
        f"reports for the agencies in {home / 'steward' / 'quality'}"
        + (f" (below standard: {', '.join(failed)})" if failed else " (all checks met)")
    )
    before = vault.read_steward_zone(session, PERSON_LOOKUP, actor="steward")
    refresh = refresh_in_vault(
        session,
        vault,
        actor="steward",
        settings=load_linkage_settings(),
        report_path=home / "steward" / f"key_changes-{period}.csv",
    )
    after = vault.read_steward_zone(session, PERSON_LOOKUP, actor="steward")
    # A person is unchanged when the delivery neither added, corrected nor withdrew any of
    # their records and no merge touched them: each such person must keep their key.
    touched = set(refresh.changes["retired_key"]) | set(refresh.changes["surviving_key"])
    held = before.merge(after, on=["source", "record_id"], suffixes=("", "_after"))
    moved = set(before["person_key"]) - set(held["person_key"])
    per_person = held.groupby("person_key")["person_key_after"].agg(lambda keys: set(keys))
    unchanged = per_person[~per_person.index.isin(touched | moved)]
    kept = sum(keys == {key} for key, keys in unchanged.items())
    say(
        f"srs link refresh: {refresh.records_added} new and {refresh.records_changed} corrected "
        f"records scored against the persons held in {refresh.seconds:.1f} s; keys "
        + ", ".join(f"{k} {v}" for k, v in refresh.keys.items())
        + f"; {kept:,} of the {len(unchanged):,} persons the delivery did not touch keep their "
        f"person_key (change report: {refresh.report_path})"
    )
    linked = publish_linked_datasets(session, vault, actor="steward", offences=offences)
    journeys = vault.get(session, "linked/journeys")
    complete = {
        label: int(build.tables["linked/reoffending"]["follow_up_complete"].sum())
        for label, build in (("before", first_build), ("after", linked))
    }
    say(
        f"Rebuilt the linked datasets as version {journeys.version} (lineage: the sources' "
        f"deliveries and agreements): linked/journeys {journeys.row_count:,} rows; in "
        f"linked/reoffending {complete['after']:,} convictions now have a full year of follow-up "
        f"({complete['before']:,} before the delivery); researchers may pin version 1 with "
        "s.dataset(name, version=1)"
    )
    projects.create_project(
        session,
        actor="admin",
        policies=policies,
        code="P2026-002",
        title="Offender targeting for the police",
        purpose="Rank prolific offenders for police attention.",
        legal_basis="Police Act 1996",
        purpose_category="operational",
        agreements=["DSA-POLICE"],
        start_date=date.today() - timedelta(days=1),
        end_date=date.today() + timedelta(days=90),
        approved_classification="confidential",
    )
    try:
        projects.grant_dataset(
            session,
            actor="steward",
            policies=policies,
            code="P2026-002",
            dataset_name="linked/journeys",
        )
    except AccessDenied as exc:
        say(f"A grant to P2026-002 (operational use) is refused by the agreements: {exc.reason}")
    else:
        raise SRSError("the demo expected the agreements to refuse P2026-002's grant")


def _differential_privacy(session, vault, policies, say, console: Console) -> None:
    """ana previews and releases DP statistics on linked/journeys against the project's budget:
    the environment reads the dataset itself (granted to the project, audited), each query's
    rows chosen by its own declarative filter; each release is debited, confirmed by the ledger
    and recorded as an output, and a spend over the per-query limit is refused."""
    from disclosure import dp
    from output_checking.dp_release import preview_dp, release_dp
    from srs.governance.budget import SpendRefused, budget_state

    ana = {
        "project_code": "P2026-001",
        "researcher": "ana",
        "dataset": "linked/journeys",
        "policies": policies,
    }
    by_section = dp.count(by=["iccs_section"])
    preview = preview_dp(session, vault, query=by_section, accuracy=40, **ana)
    say(f"DP preview (nothing spent): {preview}")
    released = release_dp(
        session,
        vault,
        query=by_section,
        accuracy=40,
        name="Cases by ICCS section (DP)",
        **ana,
    )
    adults = [("age_at_offence", ">=", 18)]
    mean_sentence = release_dp(
        session,
        vault,
        query=dp.mean("age_at_offence", by=["sex"]),
        where=adults,
        rho=policies.privacy_budget.max_rho_per_query,
        name="Mean age at offence of adults by sex (DP)",
        **ana,
    )
    table = Table("iccs_section", "DP count", "95% interval", title="Released: cases by section")
    for row in released.result.table.itertuples():
        table.add_row(
            row.iccs_section, f"{row.estimate:,.0f}", f"{row.lower:,.0f} .. {row.upper:,.0f}"
        )
    console.print(table)
    for row in mean_sentence.result.table.itertuples():
        say(
            f"DP mean age at offence of adults (where {adults}), sex {row.sex}: "
            f"{row.estimate:.1f} years (95% {row.lower:.1f} .. {row.upper:.1f})"
        )
    try:
        release_dp(
            session,
            vault,
            query=dp.count(),
            rho=policies.privacy_budget.max_rho_per_query * 2,
            **ana,
        )
    except SpendRefused as exc:
        say(f"A larger spend is refused before any noise is drawn: {exc}")
    state = budget_state(session, "P2026-001", policies)
    say(
        f"Budget of P2026-001: spent rho {state.spent_rho:.4g} of {state.total_rho:g} in "
        f"{state.spends} queries (outputs #{released.output_id}, #{mean_sentence.output_id}, "
        f"recorded as DP results with the dataset version and query read); rho "
        f"{state.remaining_rho:.4g} left"
    )


def _output_checking(deployment, registry, policies, say, console: Console, runs=()) -> Path:
    """ana's session makes outputs and submits them with the DP results; two checkers review
    them (the unsafe table is rejected), cho releases the approved ones as a signed bundle. The
    notebooks' requests get the same scripted review, and the vault runs' are released too."""
    import srs
    from output_checking.outputs import get_output
    from output_checking.release import (
        create_release,
        public_key_path,
        releases_dir,
        verify_release,
    )
    from output_checking.workflow import WorkflowError, get_request, vote
    from srs.governance.registry.sign_in import set_password

    today = date.today()
    with registry.sessions() as s:
        accounts.add_researcher(
            s,
            actor="admin",
            policies=policies,
            username="chen",
            full_name="Chen Checker",
            roles=["checker"],
            accreditation_number="AR-2002",
            accreditation_expiry=today + timedelta(days=900),
            training_date=today - timedelta(days=10),
        )
        for username, password in DEMO_CHECKER_PASSWORDS.items():
            set_password(s, actor="admin", policies=policies, username=username, password=password)
    with srs.session(
        user="ana", project="P2026-001", deployment=deployment, policies=policies
    ) as session:
        journeys = session.dataset("linked/journeys")
        session.crosstab(journeys, "sex", "court", name="People by sex and court")
        unsafe = session.crosstab(journeys, "iccs_division", "sex", name="People by ICCS division")
        session.request_exception(
            unsafe, "Division-level counts are needed to compare with the MoJ quarterly tables."
        )
        session.ols("age_at_offence ~ C(sex) + C(court)", journeys)
        drafts = session.outputs()
        drafts = drafts[drafts["request"].isna()]  # the notebooks' outputs went with their runs
        say(
            "ana's session made checked outputs: "
            + "; ".join(f"#{i} {row['name']} ({row['checks']})" for i, row in drafts.iterrows())
        )
        request_id = session.submit("Attrition and sentencing, first tables")
    say(f"ana submitted them as release request #{request_id} (every draft, DP results included)")
    unsafe_id = unsafe.attrs["srs_output_id"]
    with registry.sessions() as s:
        for checker in DEMO_CHECKER_PASSWORDS:
            for output_id in drafts.index:
                vote(
                    s,
                    output_id=int(output_id),
                    checker=checker,
                    policies=policies,
                    decision="reject" if output_id == unsafe_id else "approve",
                    comment="suppressed cells remain; no exception"
                    if output_id == unsafe_id
                    else "",
                )
        status = get_request(s, request_id).status
        say(
            f"Checkers cho and chen reviewed it blind to each other: the suppressed division table "
            f"rejected, the rest approved; request #{request_id} is {status}"
        )
        release = create_release(
            s, request_id=request_id, actor="cho", policies=policies, deployment=deployment
        )
    bundle = releases_dir(deployment) / release.bundle_name
    report = verify_release(bundle, public_key_path(deployment))
    say(
        f"cho released it as a signed bundle {bundle} ({release.file_count} files, Ed25519 key "
        f"{release.signing_key_fingerprint[:16]}...): {report.summary()}"
    )
    decided: dict[str, int] = {}
    released = []
    with registry.sessions() as s:
        for run in runs:
            for output in run.outputs:
                for checker in DEMO_CHECKER_PASSWORDS:
                    try:
                        vote(
                            s,
                            output_id=output.id,
                            checker=checker,
                            policies=policies,
                            decision="approve",
                        )
                    except WorkflowError:
                        checks = get_output(s, output.id).checks or []
                        differencing = next(
                            (c for c in checks if c.get("check") == "differencing"), {}
                        )
                        if differencing.get("status") == "review":
                            # The check could not judge the pair (a pooled headcount or a
                            # survival table against released counts): the checker does, and
                            # says why in the override the vote and its audit event keep.
                            vote(
                                s,
                                output_id=output.id,
                                checker=checker,
                                policies=policies,
                                decision="approve",
                                override_reason="compared by hand with the released tables: "
                                "other variables and statistics, no small difference isolated",
                            )
                        else:
                            # A table that would undo a released one by a small difference.
                            vote(
                                s,
                                output_id=output.id,
                                checker=checker,
                                policies=policies,
                                decision="reject",
                                comment="differs disclosively from a released table",
                            )
            for request_id in run.request_ids:
                status = get_request(s, request_id).status
                decided[status] = decided.get(status, 0) + 1
                if run.source == "vault" and status == "approved":
                    done = create_release(
                        s,
                        request_id=request_id,
                        actor="cho",
                        policies=policies,
                        deployment=deployment,
                    )
                    released.append(releases_dir(deployment) / done.bundle_name)
    verified = [verify_release(path, public_key_path(deployment)).valid for path in released]
    say(
        "The checkers reviewed the notebooks' requests too ("
        + ", ".join(f"{n} {status}" for status, n in sorted(decided.items()))
        + f"); cho released the vault runs' approved ones as {len(released)} more signed "
        f"bundles, {sum(verified)} verified"
    )
    return bundle


def _open_data(deployment, registry, vault, policies, say) -> Path:
    """The steward builds a synthetic replica, its gates and fidelity are reported, and it is
    exported as an open-data package that loads with ``srs.open_data``."""
    from synthetic.open_data import open_data
    from synthetic.vault_replicas import build_replica_in_vault, export_open_data

    with registry.sessions() as s:
        built = build_replica_in_vault(
            s, vault, deployment, policies, actor="steward", seed=DEMO_SEED % 1000
        )
        say(f"Synthetic replica: {built.result.summary()} (report {built.report})")
        exported = export_open_data(
            s,
            vault,
            deployment,
            actor="steward",
            out=deployment.home / "open-data" / "cross_justice",
        )
    tables = open_data("cross_justice", path=exported.path)
    say(
        f"Exported it for open use: {exported.path} ({exported.rows:,} rows, datapackage.json "
        f"validates: {exported.valid}); srs.open_data loads "
        + ", ".join(f"{name} ({len(t):,})" for name, t in tables.items())
    )
    return exported.path


def _notebooks(deployment, policies, export: Path, say, console: Console) -> list:
    """The project's notebooks run with papermill, unchanged, on the deployment's synthetic
    replica and then on the vault data (``srs run``), each submitting its outputs; the student
    notebook runs on the open export in a practice session, as a student's would."""
    from srs.research.notebook_runs import execute_notebook, run_notebook

    folder = NOTEBOOKS
    if not folder.is_dir():
        raise SRSError(f"the notebooks folder {folder} is missing: run the demo from a checkout")
    runs_dir = deployment.home / "runs"
    runs = []
    for name in RESEARCH_NOTEBOOKS:
        for source in ("synthetic", "vault"):
            run = run_notebook(
                deployment,
                policies,
                notebook=folder / name,
                source=source,
                user="ana",
                project="P2026-001",
                out=runs_dir / source,
            )
            if not run.succeeded:
                raise SRSError(f"notebook {name} failed on the {source} data: {run.error}")
            runs.append(run)
            console.print(
                f"      {name} on {source}: {len(run.outputs)} outputs, release request "
                f"#{', #'.join(map(str, run.request_ids))}, {run.seconds:.0f} s -> {run.executed}"
            )
    say(
        f"Ran {len(RESEARCH_NOTEBOOKS)} project notebooks with papermill, unchanged, on the "
        "synthetic replica and on the vault data (srs run); each recorded checked outputs and "
        "submitted them"
    )
    student = runs_dir / "student_introduction-open.ipynb"
    execute_notebook(
        folder / "student_introduction.ipynb",
        student,
        parameters={"source": "open", "open_data_path": str(export)},
        environment={"SRS_HOME": None, "SRS_USER": None, "SRS_PROJECT": None},
        cwd=runs_dir,
    )
    say(f"Ran the student introduction on the open export, no accreditation needed: {student}")
    return runs

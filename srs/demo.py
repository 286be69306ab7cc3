"""The end-to-end demonstration behind ``make demo``: a deployment, people, a project, a dataset.

It builds a fresh deployment in a folder of its own, registers a steward, researchers and a
checker, creates a project, stores a small simulated dataset in the vault, reads it back through
the access check, shows the refusals the rules require, and verifies the audit log.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from srs.access import AccessDenied
from srs.audit import tail_events, verify_chain
from srs.deployment import Deployment
from srs.errors import SRSError
from srs.policy import load_policies
from srs.registry import accounts, open_registry, projects
from srs.vault import Vault
from srs.vault_crypto import generate_master_key, write_key_file

DEMO_SEED = 20261122
ICCS_DIVISIONS = ["0101", "0201", "0301", "0401", "0501", "0601", "0701", "0801"]


def simulated_journeys(rows: int = 500, seed: int = DEMO_SEED) -> pd.DataFrame:
    """A small, clearly fake case-level table (person_key, ICCS division, outcome, dates)."""
    rng = np.random.default_rng(seed)
    offence_dates = pd.Timestamp("2021-01-01") + pd.to_timedelta(
        rng.integers(0, 3 * 365, rows), unit="D"
    )
    charge_lag = pd.to_timedelta(rng.integers(1, 120, rows), unit="D")
    return pd.DataFrame(
        {
            "case_key": [f"C{n:06d}" for n in range(rows)],
            "person_key": [f"P{n:06d}" for n in rng.integers(0, rows // 2, rows)],
            "iccs_division": pd.Categorical(rng.choice(ICCS_DIVISIONS, rows)),
            "offence_date": offence_dates.date,
            "charge_date": (offence_dates + charge_lag).date,
            "outcome": pd.Categorical(
                rng.choice(["convicted", "acquitted", "no_further_action", "out_of_court"], rows)
            ),
        }
    )


def run_demo(home: Path, console: Console) -> None:
    """Run the demonstration in ``home`` (recreated) and print each step."""
    home = home.resolve()
    if home.exists():
        if not (home / "DEPLOYMENT").exists():
            raise SRSError(f"{home} exists and is not a demo deployment; choose another --home")
        shutil.rmtree(home)
    deployment = Deployment.at(home, database_url=f"sqlite:///{home / 'srs.db'}")
    home.mkdir(parents=True)
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
        projects.create_project(
            s,
            actor="admin",
            policies=policies,
            code="P2026-001",
            title="Victim attrition through the justice stages",
            purpose="Estimate where and why victims withdraw support, by offence type.",
            legal_basis="Digital Economy Act 2017 s.64 (research)",
            dsa_reference="DSA-2026-17",
            start_date=today - timedelta(days=60),
            end_date=today + timedelta(days=365),
            approved_classification="confidential",
        )
        for member in ("ana", "ben"):
            projects.add_member(
                s, actor="admin", policies=policies, code="P2026-001", username=member
            )
        say("Created project P2026-001 (approved up to 'confidential'); members ana and ben")

        journeys = simulated_journeys()
        stored = vault.store(
            s, "linked/journeys", journeys, actor="steward", classification="confidential"
        )
        vault.store(
            s,
            "linked/victims_identifiable",
            journeys.head(50),
            actor="steward",
            classification="highly_confidential",
        )
        say(
            f"Stored linked/journeys v{stored.version} ({stored.row_count} rows, AES-256-GCM) "
            "and a highly_confidential table in the vault"
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
            f"ana read linked/journeys through the access check: {len(frame)} rows, "
            f"{frame['person_key'].nunique()} persons, decrypted in memory only"
        )
        for actor, dataset, why in (
            ("ben", "linked/journeys", "expired accreditation"),
            ("ana", "linked/victims_identifiable", "classification above the project's approval"),
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
                dataset_name="linked/victims_identifiable",
            )
        except AccessDenied as exc:
            say(f"ana tried to grant herself a dataset: {exc.reason}")

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

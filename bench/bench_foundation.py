"""Benchmark of the foundation: audit-log append and verify rates, vault store/read throughput.

Run with ``make bench`` or ``.venv/bin/python bench/bench_foundation.py``; prints figures only.
Set SRS_BENCH_DATABASE_URL to measure a PostgreSQL registry instead of SQLite.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from srs.governance.audit import record_event, verify_chain
from srs.governance.deployment import Deployment
from srs.governance.policy import load_policies
from srs.governance.registry import accounts, open_registry, projects
from srs.vault.crypto import generate_master_key
from srs.vault.store import Vault

AUDIT_EVENTS = 20_000
VAULT_ROWS = 1_000_000


def main() -> None:
    policies = load_policies()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        url = os.environ.get("SRS_BENCH_DATABASE_URL") or f"sqlite:///{home / 'srs.db'}"
        registry = open_registry(url, migrate=True)
        print(f"registry: {registry.engine.dialect.name}")

        start = time.perf_counter()
        with registry.sessions() as s:
            for n in range(AUDIT_EVENTS):
                record_event(
                    s,
                    actor="bench",
                    action="bench.event",
                    target=str(n),
                    outcome="ok",
                    details={"n": n},
                )
            s.commit()
        elapsed = time.perf_counter() - start
        print(f"audit append (one transaction): {AUDIT_EVENTS / elapsed:,.0f} events/s")

        start = time.perf_counter()
        for n in range(500):
            with registry.sessions() as s:
                record_event(s, actor="bench", action="bench.event", target=str(n), outcome="ok")
                s.commit()
        elapsed = time.perf_counter() - start
        print(f"audit append (one transaction each): {500 / elapsed:,.0f} events/s")

        start = time.perf_counter()
        with registry.sessions() as s:
            report = verify_chain(s)
        elapsed = time.perf_counter() - start
        print(
            f"audit verify: {report.events_checked:,} events in {elapsed:.2f} s "
            f"({report.events_checked / elapsed:,.0f} events/s), intact={report.intact}"
        )

        deployment = Deployment.at(home, database_url=url)
        vault = Vault(deployment, policies, generate_master_key())
        rng = np.random.default_rng(1)
        frame = pd.DataFrame(
            {
                "person_key": rng.integers(0, 200_000, VAULT_ROWS).astype(str),
                "iccs_division": pd.Categorical(
                    rng.choice(["0101", "0201", "0401", "0501"], VAULT_ROWS)
                ),
                "sentence_months": rng.gamma(2.0, 6.0, VAULT_ROWS),
                "offence_date": pd.Timestamp("2020-01-01")
                + pd.to_timedelta(rng.integers(0, 2000, VAULT_ROWS), unit="D"),
            }
        )
        memory_mb = frame.memory_usage(deep=True).sum() / 1e6
        with registry.sessions() as s:
            accounts.bootstrap_admin(s, username="admin", full_name="Admin")
            accounts.add_researcher(
                s,
                actor="admin",
                policies=policies,
                username="steward",
                full_name="S",
                roles=["steward"],
            )
            accounts.add_researcher(
                s,
                actor="admin",
                policies=policies,
                username="ana",
                full_name="A",
                roles=["researcher"],
                accreditation_number="AR-1",
                training_date=pd.Timestamp.today().date(),
            )
            today = pd.Timestamp.today().date()
            projects.create_project(
                s,
                actor="admin",
                policies=policies,
                code="P1",
                title="B",
                purpose="B",
                legal_basis="B",
                start_date=today,
                end_date=today,
                approved_classification="confidential",
            )
            projects.add_member(s, actor="admin", policies=policies, code="P1", username="ana")
            start = time.perf_counter()
            stored = vault.store(
                s, "linked/bench", frame, actor="steward", classification="confidential"
            )
            store_s = time.perf_counter() - start
            projects.grant_dataset(
                s, actor="steward", policies=policies, code="P1", dataset_name="linked/bench"
            )
            start = time.perf_counter()
            back = vault.read(s, "linked/bench", actor="ana", project="P1")
            read_s = time.perf_counter() - start
        size_mb = (deployment.vault_dir / stored.file_path).stat().st_size / 1e6
        print(
            f"vault store: {VAULT_ROWS:,} rows ({memory_mb:.0f} MB in memory, {size_mb:.1f} MB "
            f"encrypted on disk) in {store_s:.2f} s"
        )
        print(
            f"vault read (access check + decrypt + Parquet decode): {read_s:.2f} s, "
            f"{len(back):,} rows"
        )
        registry.dispose()


if __name__ == "__main__":
    main()

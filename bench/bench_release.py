"""Benchmark of the release workflow: recording outputs, two reviews, a signed release, verifying it.

Run: .venv/bin/python bench/bench_release.py [OUTPUTS] [ROWS_PER_CSV]
Prints seconds for each step on a SQLite registry in a temporary folder, and the Argon2id cost
of one sign-in.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from output_checking.outputs import file_gate_rules, record_output, table_content
from output_checking.release import create_release, public_key_path, releases_dir, verify_release
from output_checking.workflow import create_request, submit_request, vote
from srs.governance.deployment import Deployment
from srs.governance.policy import load_policies
from srs.governance.registry import accounts, open_registry, projects
from srs.governance.registry.sign_in import check_sign_in, set_password


def main(outputs: int = 200, rows: int = 2000) -> None:
    policies = load_policies()
    home = Path(tempfile.mkdtemp(prefix="srs-bench-release-"))
    deployment = Deployment.at(home, database_url=f"sqlite:///{home / 'srs.db'}")
    registry = open_registry(deployment.database_url, migrate=True)
    today = date.today()
    with registry.sessions() as s:
        accounts.bootstrap_admin(s, username="admin", full_name="Admin")
        for username, role in (("ana", "researcher"), ("cho", "checker"), ("chen", "checker")):
            accounts.add_researcher(
                s,
                actor="admin",
                policies=policies,
                username=username,
                full_name=username,
                roles=[role],
                accreditation_number=f"AR-{username}",
                training_date=today,
            )
        projects.create_project(
            s,
            actor="admin",
            policies=policies,
            code="B1",
            title="Bench",
            purpose="bench",
            legal_basis="bench",
            start_date=today - timedelta(days=1),
            end_date=today + timedelta(days=30),
            approved_classification="confidential",
        )
        projects.add_member(s, actor="admin", policies=policies, code="B1", username="ana")
    rng = np.random.default_rng(1)
    rules = file_gate_rules(policies)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    with registry.sessions() as s:
        for i in range(outputs):
            table = pd.DataFrame(
                {"area": [f"A{j}" for j in range(rows)], "count": rng.integers(10, 900, rows) * 5}
            ).set_index("area")
            record_output(
                s,
                project_code="B1",
                author="ana",
                kind="table",
                name=f"table {i}",
                content={"kind": "table", "statistic": "count", "table": table_content(table)},
                checks=[{"check": "sdc_table", "status": "ok", "message": "safe"}],
                files={f"table-{i}.csv": table.to_csv().encode()},
                file_rules=rules,
            )
        s.commit()
    timings[f"record {outputs} outputs ({rows} rows each, file gate)"] = time.perf_counter() - start

    start = time.perf_counter()
    with registry.sessions() as s:
        request = create_request(s, project_code="B1", author="ana", policies=policies, title="b")
        submit_request(s, request_id=request.id, actor="ana", policies=policies)
        ids = [o.id for o in request_outputs_of(s, request.id)]
    timings["create + submit the request (differencing included)"] = time.perf_counter() - start

    start = time.perf_counter()
    for checker in ("cho", "chen"):
        with registry.sessions() as s:
            for output_id in ids:
                vote(s, output_id=output_id, checker=checker, policies=policies, decision="approve")
    timings[f"{2 * len(ids)} votes by two checkers"] = time.perf_counter() - start

    start = time.perf_counter()
    with registry.sessions() as s:
        release = create_release(
            s, request_id=request.id, actor="cho", policies=policies, deployment=deployment
        )
    timings["create the signed release"] = time.perf_counter() - start
    bundle = releases_dir(deployment) / release.bundle_name
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())

    start = time.perf_counter()
    report = verify_release(bundle, public_key_path(deployment))
    timings["verify the bundle"] = time.perf_counter() - start
    assert report.valid, report.summary()

    with registry.sessions() as s:
        set_password(s, actor="admin", policies=policies, username="cho", password="x" * 16)
        start = time.perf_counter()
        check_sign_in(s, username="cho", password="x" * 16, policies=policies, service="bench")
    timings["one sign-in (Argon2id verify + audit)"] = time.perf_counter() - start
    registry.dispose()

    print(
        f"release workflow, {outputs} outputs, bundle {size / 1e6:.1f} MB in {release.file_count} files"
    )
    for step, seconds in timings.items():
        print(f"  {step:<60} {seconds:8.3f} s")


def request_outputs_of(session, request_id: int):
    from output_checking.workflow import get_request, request_outputs

    return request_outputs(session, get_request(session, request_id))


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    main(*arguments)

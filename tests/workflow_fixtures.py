"""Fixtures for the release-workflow tests: a second checker and a submitted request of outputs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from output_checking.outputs import file_gate_rules, record_output, table_content
from output_checking.workflow import create_request, submit_request
from registry_fixtures import PROJECT, TODAY
from srs.governance.policy import PolicySet
from srs.governance.registry import Registry, accounts

SECOND_CHECKER = "chen"


def add_checker(registry: Registry, policies: PolicySet, username: str = SECOND_CHECKER) -> str:
    """Register another accredited checker (member of no project)."""
    with registry.sessions() as s:
        accounts.add_researcher(
            s,
            actor="admin",
            policies=policies,
            username=username,
            full_name=username.title(),
            roles=["checker"],
            accreditation_number=f"AR-{username}",
            accreditation_expiry=TODAY + timedelta(days=365),
            training_date=TODAY - timedelta(days=30),
            today=TODAY,
        )
    return username


def count_table(values: dict[str, int], name: str = "sex") -> pd.DataFrame:
    """A one-column count table like the session's crosstab releases."""
    return pd.DataFrame({"count": values}).rename_axis(name)


def table_output(
    registry: Registry,
    policies: PolicySet,
    name: str,
    counts: dict[str, int],
    author: str = "ana",
) -> int:
    """A draft count-table output of ``author`` in P001, with its CSV file; returns its id."""
    table = count_table(counts)
    with registry.sessions() as s:
        output = record_output(
            s,
            project_code=PROJECT,
            author=author,
            kind="table",
            name=name,
            content={"kind": "table", "statistic": "count", "table": table_content(table)},
            checks=[{"check": "sdc_table", "status": "ok", "message": "all cells safe"}],
            files={f"{name.replace(' ', '-')}.csv": table.to_csv().encode()},
            file_rules=file_gate_rules(policies),
        )
        s.commit()
        return output.id


@dataclass
class Submitted:
    """A submitted request and its outputs' ids."""

    request_id: int
    outputs: list[int]


def submitted_request(
    registry: Registry, policies: PolicySet, tables: dict[str, dict[str, int]] | None = None
) -> Submitted:
    """ana's request of count tables (default: three), submitted to the checkers."""
    tables = tables or {
        "arrests by sex": {"F": 120, "M": 340},
        "charges by sex": {"F": 80, "M": 215},
        "convictions by sex": {"F": 40, "M": 190},
    }
    ids = [table_output(registry, policies, name, counts) for name, counts in tables.items()]
    with registry.sessions() as s:
        request = create_request(
            s, project_code=PROJECT, author="ana", policies=policies, title="Attrition tables"
        )
        submit_request(s, request_id=request.id, actor="ana", policies=policies)
        return Submitted(request.id, ids)

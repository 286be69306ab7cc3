"""Review of issue 15: registry edits the release evidence does not read."""

from __future__ import annotations

import json

import pytest
from workflow_fixtures import submitted_request

from output_checking.bundle import MANIFEST
from output_checking.release import check_release_against_audit, public_key_path, releases_dir
from srs.registry.models import Output
from test_release_evidence import approve, people, release  # noqa: F401


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_fields_shown_in_the_manifest_can_be_edited_after_approval(
    registry, policies, people, deployment
):
    sub = submitted_request(registry, policies)
    approve(registry, policies, sub.outputs)
    victim = sub.outputs[0]
    with registry.sessions() as s:
        out = s.get(Output, victim)
        out.name = "Approved by the DPO - no disclosure risk"
        out.context = "edited context"
        out.checks = [{"check": "sdc_table", "status": "ok", "message": "edited: all safe"}]
        out.differentially_private = True  # a plain table now claims to be DP
        out.author = "someone_else"
        out.exception_justification = "edited"
        s.commit()
    made = release(registry, policies, deployment, sub.request_id)
    bundle = releases_dir(deployment) / made.bundle_name
    manifest = json.loads((bundle / MANIFEST).read_text())
    record = next(r for r in manifest["outputs"] if r["id"] == victim)
    print(json.dumps({k: record[k] for k in ("name", "context", "checks", "differentially_private", "author", "exception_justification")}, indent=1))
    with registry.sessions() as s:
        problems = check_release_against_audit(s, bundle, public_key_path(deployment), policies)
    # release and `srs release verify --audit` both accept the edited fields
    assert record["differentially_private"] is True and record["author"] == "someone_else"
    assert problems == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_tables_differing_by_3_in_one_request_are_released_together(
    registry, policies, people, deployment
):
    # Differencing compares each output only with tables already RELEASED, never with the
    # other outputs of the same request: the pair goes out with differencing "ok".
    sub = submitted_request(
        registry,
        policies,
        {"arrests by sex": {"F": 120, "M": 340}, "arrests by sex excl one court": {"F": 117, "M": 340}},
    )
    approve(registry, policies, sub.outputs)
    made = release(registry, policies, deployment, sub.request_id)
    bundle = releases_dir(deployment) / made.bundle_name
    manifest = json.loads((bundle / MANIFEST).read_text())
    statuses = [
        c["status"] for r in manifest["outputs"] for c in r["checks"] if c["check"] == "differencing"
    ]
    print(statuses)
    assert "fail" in statuses  # fails today: ['ok', 'ok']


def test_histogram_counts_are_outside_differencing() -> None:
    # A histogram figure publishes its bin counts (content "counts" and a CSV file), but
    # differencing reads only kind == "table": a figure is neither checked nor checked against.
    import pandas as pd

    from output_checking.outputs import table_content
    from output_checking.workflow import _released_table

    counts = pd.DataFrame({"lower": [18, 25], "upper": [25, 35], "count": [120, 340]},
                          index=pd.Index(["[18, 25)", "[25, 35)"], name="bin"))
    figure = Output(kind="figure", content={"kind": "figure", "figure": "histogram",
                                            "counts": table_content(counts), "rounding": "none"})
    assert _released_table(figure) is not None

"""Output records as ACRO results.json records, and table evidence that survives JSON."""

from __future__ import annotations

import json

import pandas as pd

from disclosure.evidence import TableCheck
from disclosure.tables import check_table
from output_checking.outputs import acro_record, file_stem
from srs.governance.registry.models import Output, utc_now


def unsafe_check(policies) -> TableCheck:
    records = pd.DataFrame(
        {"area": ["LS"] * 43 + ["M"] * 55, "sex": ["F"] * 3 + ["M"] * 40 + ["F"] * 25 + ["M"] * 30}
    )
    return check_table(records, index="area", columns="sex", profile=policies.sdc.active)


def test_table_evidence_round_trips_through_json(policies):
    check = unsafe_check(policies)
    again = TableCheck.from_dict(json.loads(check.to_json()))
    assert again.failing_cells() == check.failing_cells() == [("LS", "F")]
    assert again.summary() == check.summary()
    assert again.acro_outcome().equals(check.acro_outcome())


def test_an_output_becomes_an_acro_record_with_its_cell_outcome(policies):
    check = unsafe_check(policies)
    output = Output(
        id=7,
        kind="table",
        name="Arrests by area and sex",
        checks=[{"check": "sdc_table", "status": "review", "evidence": check.to_dict()}],
        context="Arrests in 2025",
        controls="suppression",
        exception_justification="published elsewhere",
        created_at=utc_now(),
    )
    record = acro_record(output, ["00007-arrests.csv"])
    assert record["uid"] == "output_7" and record["status"] == "review"
    assert record["outcome"]["F"]["LS"] == "threshold;" and record["outcome"]["M"]["LS"] == "ok"
    assert record["files"][0]["name"] == "00007-arrests.csv"
    assert record["exception"] == "published elsewhere"
    assert record["comments"] == ["Arrests in 2025", "suppression"]
    dp_like = Output(id=8, kind="dp_result", name="DP", checks=[], created_at=utc_now())
    assert acro_record(dp_like, [])["status"] == "pass"


def test_file_stems_are_what_record_output_accepts():
    assert file_stem("Offences by sex (2)") == "offences-by-sex-2"
    assert file_stem("  ???  ") == "output"

"""Review of issue 15: readiness findings that mislead or crash (reproductions)."""

from __future__ import annotations

import pytest

from output_checking.readiness import changes_since, file_findings
from output_checking.summaries import CSVSummaryError, summarise_csv
from srs.policy import load_policies

PROFILE = load_policies().sdc.active


def test_a_changed_cell_under_a_repeated_column_name_is_called_unchanged() -> None:
    earlier = b"sex,count,count\nF,120,3\nM,340,5\n"
    current = b"sex,count,count\nF,120,2\nM,340,5\n"
    message = changes_since(earlier, current, "output #4").message
    assert "written differently" not in message, message


def test_a_huge_exponent_is_a_clear_error_not_decimal_invalid_operation() -> None:
    # s.custom_output catches only CSVSummaryError; the checker page (web.output_page) too.
    try:
        file_findings(summarise_csv(b"sex,count\nF,1e999999\nM,120\n", PROFILE), PROFILE)
    except CSVSummaryError:
        pass


@pytest.mark.parametrize("csv", [b"sex,count\nF,-3\nM,120\n", b"group,rate\nA,33.3%\nB,66.7%\n"])
def test_negative_counts_and_percent_signs_give_no_finding(csv) -> None:
    assert file_findings(summarise_csv(csv, PROFILE), PROFILE) != []

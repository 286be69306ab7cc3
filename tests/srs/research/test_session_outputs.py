"""What a researcher sees of their outputs: why each hidden cell is hidden, regression estimates
at a readable precision (the released file the same), and a custom output's release readiness,
including what changed since a version the checkers sent back."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest
from session_fixtures import stored_output as output
from workflow_fixtures import SECOND_CHECKER, add_checker

from output_checking.outputs import content_table
from output_checking.workflow import vote
from srs.research.drafts import ESTIMATE_SIGNIFICANT_FIGURES

JUSTIFICATION = "Reoffending by court from our own linked extract, for the annual report"


def cases(counts: dict[tuple[str, str], int]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"sex": sex, "court": court} for (sex, court), n in counts.items() for _ in range(n)]
    )


def test_a_table_says_why_each_hidden_cell_is_hidden(s, policies) -> None:
    minimum = policies.sdc.active.minimum_cell_count
    data = cases(
        {
            ("F", "crown"): 25,
            ("F", "magistrates"): 4,
            ("F", "youth"): 3,
            ("M", "crown"): 40,
            ("M", "magistrates"): 30,
        }
    )
    table = s.crosstab(data, "sex", "court", unit=None, name="Cases by sex and court")
    summary = s.last_output
    hidden = int(table.isna().to_numpy().sum())
    assert len(summary.notes) == hidden > 0
    assert any(n.startswith(f"F / youth: suppressed: fewer than {minimum}") for n in summary.notes)
    complements = [n for n in summary.notes if n.endswith(": suppressed to protect another cell")]
    assert complements  # the magistrates' cells hidden so F / magistrates cannot be worked out
    assert "\n    - F / youth: suppressed" in str(summary)
    listing = s.outputs()
    assert "suppressed to protect another cell" in listing.loc[summary.id, "notes"]


def test_a_safe_table_has_no_notes(s) -> None:
    s.crosstab(cases({("F", "crown"): 25, ("M", "crown"): 40}), "sex", unit=None)
    assert s.last_output.notes == () and s.outputs()["notes"].tolist() == [""]


def test_regression_estimates_are_recorded_and_released_to_significant_figures(s, lab) -> None:
    _, registry = lab
    results = s.ols("sentence_months ~ age", s.dataset("linked/journeys"))
    record = output(registry, s.last_output.id)
    (csv_file,) = [f for f in record.files if f.name.endswith(".csv")]
    released = pd.read_csv(io.BytesIO(csv_file.content), index_col="term")
    recorded = content_table(record.content["estimates"])
    pd.testing.assert_frame_equal(released, recorded, check_names=False)  # reviewed = released
    assert record.content["significant_figures"] == ESTIMATE_SIGNIFICANT_FIGURES
    for row in list(csv.reader(io.StringIO(csv_file.content.decode())))[1:]:
        for text in row[1:]:
            digits = text.lower().split("e")[0].replace("-", "").replace(".", "").strip("0")
            assert len(digits) <= ESTIMATE_SIGNIFICANT_FIGURES, text
    assert released.loc["age", "coef"] == pytest.approx(results.params["age"], rel=5e-4)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_custom_csv_is_read_for_what_a_checker_would_send_back(s, lab, tmp_path) -> None:
    _, registry = lab
    path = write(
        tmp_path / "reoffending.csv", "court,cases,pct_reoffended\ncrown,37,35.2\nyouth,6,50\n"
    )
    summary = s.custom_output(path, JUSTIFICATION)
    rules = {check["check"]: check for check in output(registry, summary.id).checks}
    assert rules["readiness"]["status"] == "review"
    found = [f["rule"] for f in rules["readiness"]["findings"]]
    assert found == ["unrounded", "small_count", "denominator", "context", "controls"]
    notes = " | ".join(summary.notes)
    assert "column 'cases': 2 of 2 counts are not rounded to 5" in notes
    assert "below the minimum cell count of 10 (smallest 6)" in notes
    assert "column 'pct_reoffended' holds percentages but the file has no denominator" in notes
    assert "no context" in notes and "no controls" in notes
    assert "no context" in s.outputs().loc[summary.id, "notes"]
    # Once described, the words are no longer asked for (the file's findings stay).
    described = s.describe(summary.id, context="Reoffending by court, 2024", controls="none yet")
    assert not any(n.startswith(("no context", "no controls")) for n in described.notes)
    assert len(described.notes) == 3


def test_a_plain_text_custom_output_is_only_asked_for_its_words(s, tmp_path) -> None:
    path = write(tmp_path / "method.txt", "We linked cases to people.\n")
    summary = s.custom_output(path, JUSTIFICATION, context="Method notes", controls="no figures")
    assert summary.notes == ()


def test_a_custom_output_sent_again_says_what_changed(s, lab, policies, tmp_path) -> None:
    _, registry = lab
    add_checker(registry, policies)
    first = s.custom_output(
        write(tmp_path / "by-court.csv", "court,cases\ncrown,35\nyouth,6\n"),
        JUSTIFICATION,
        context="Cases by court",
        controls="none",
    )
    s.submit("Cases by court")
    for checker in ("cho", SECOND_CHECKER):
        with registry.sessions() as db:
            vote(
                db,
                output_id=first.id,
                checker=checker,
                policies=policies,
                decision="request_changes",
                comment="youth court is below 10: combine it",
                comment_visibility="researcher",
            )
    again = s.custom_output(
        write(tmp_path / "by-court.csv", "court,cases\ncrown,35\nyouth and county,15\n"),
        JUSTIFICATION,
        context="Cases by court",
        controls="youth court combined with county court",
    )
    assert again.notes == (
        f"changed since output #{first.id} (changes requested): rows 2 -> 2 (1 added, 1 removed)",
    )

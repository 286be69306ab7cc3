"""Why each hidden cell of a protected table is hidden: primary cells name the rule they failed,
complements say they protect another cell, and the checker's rendered table shows both."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from output_checking.hidden_cells import PRIMARY, SECONDARY, SECONDARY_NOTE, hidden_cells
from output_checking.outputs import content_table
from output_checking.web import render_table
from srs.research.drafts import protected_table


def cases(counts: dict[tuple[str, str], int]) -> pd.DataFrame:
    """One row per case, ``counts`` cases in each (sex, court) cell."""
    return pd.DataFrame(
        [{"sex": sex, "court": court} for (sex, court), n in counts.items() for _ in range(n)]
    )


# Youth court cases are too few (3 and 4): they fail, and with the magistrates' cells of the
# same rows and a crown cell they must be hidden so the totals cannot give them away.
SMALL_YOUTH = {
    ("F", "crown"): 25,
    ("F", "magistrates"): 4,
    ("F", "youth"): 3,
    ("M", "crown"): 40,
    ("M", "magistrates"): 30,
    ("M", "youth"): 0,
}


@pytest.fixture
def draft(policies):
    _, draft = protected_table(
        cases(SMALL_YOUTH),
        index="sex",
        columns="court",
        profile=policies.sdc.active,
        profile_name=policies.sdc.profile,
    )
    return draft


def test_primary_cells_say_which_rule_and_complements_say_they_protect(draft, policies) -> None:
    minimum = policies.sdc.active.minimum_cell_count
    notes = {(c.row, c.column): c for c in hidden_cells(draft.checks)}
    check = draft.checks[0]
    assert len(notes) == len(check["suppressed"]) and check["secondary"]
    assert notes["F", "youth"].suppression == PRIMARY
    assert notes["F", "youth"].note.startswith(f"suppressed: fewer than {minimum}")
    assert notes["F", "magistrates"].note == f"suppressed: fewer than {minimum}"
    assert "4" not in notes["F", "magistrates"].note  # the exact count stays in the evidence
    for row, column in check["secondary"]:
        assert notes[row, column].suppression == SECONDARY
        assert notes[row, column].note == SECONDARY_NOTE
    # A total that fails on its own is primary too, with its own reason.
    assert notes["Total", "youth"].note == f"suppressed: fewer than {minimum}"


def test_the_rendered_table_shows_why_in_place_of_each_blank(draft) -> None:
    table = render_table(draft.content["table"], draft.checks)
    cells = {
        (label, column): cell
        for label, row in table.rows
        for column, cell in zip(table.columns, row, strict=True)
    }
    assert cells["F", "youth"].suppression == PRIMARY
    assert cells["F", "youth"].text.startswith("suppressed: fewer than")
    assert cells["F", "youth"].status == "fail"
    # A total that failed on its own is marked failing too, though the cell grid has no margins.
    assert (cells["Total", "youth"].status, cells["Total", "youth"].suppression) == (
        "fail",
        PRIMARY,
    )
    secondary = [key for key, cell in cells.items() if cell.suppression == SECONDARY]
    assert secondary and all(cells[key].text == SECONDARY_NOTE for key in secondary)
    assert not [key for key, cell in cells.items() if cell.text == ""]  # no unexplained blank
    assert table.hidden(PRIMARY) + table.hidden(SECONDARY) == len(draft.checks[0]["suppressed"])
    shown = [cell for cell in cells.values() if cell.suppression is None]
    assert shown and all(cell.text.isdigit() for cell in shown)


def test_a_shown_value_is_never_replaced_by_a_note(policies) -> None:
    """Evidence of the unprotected table (a failing cell still showing its value) is marked as
    failing but keeps its value: only cells that were actually hidden get a note."""
    _, draft = protected_table(
        cases(SMALL_YOUTH), index="sex", columns="court", profile=policies.sdc.active
    )
    unprotected = draft.checks[0]["evidence"]
    split = {
        "data": unprotected["values"],
        "index": unprotected["rows"],
        "columns": unprotected["columns"],
        "index_names": ["sex"],
        "column_names": ["court"],
    }
    table = render_table(split, draft.checks)
    texts = {label: [c.text for c in row] for label, row in table.rows}
    assert texts["F"] == ["25", "4", "3"]
    assert all(c.suppression is None for _, row in table.rows for c in row)


def test_a_one_way_table_finds_its_cells_by_row(policies) -> None:
    data = cases({("F", "crown"): 30, ("F", "magistrates"): 40, ("F", "youth"): 4})
    _, draft = protected_table(data, index="court", profile=policies.sdc.active)
    table = render_table(draft.content["table"], draft.checks)
    texts = {label: row[0].text for label, row in table.rows}
    assert texts["youth"].startswith("suppressed: fewer than")
    # the youth cell could be worked out from the total, so one other court is hidden too
    assert sorted([texts["crown"], texts["magistrates"]])[1] == SECONDARY_NOTE
    assert texts["Total"] == "75"


def test_cells_without_evidence_of_why_still_say_they_were_suppressed() -> None:
    check = {"check": "sdc_table", "suppressed": [["a", "x"]], "secondary": []}
    (cell,) = hidden_cells([check])
    assert cell.note == "suppressed: fails a disclosure rule" and cell.where == "a / x"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    counts=st.dictionaries(
        st.tuples(st.sampled_from("FMX"), st.sampled_from(["crown", "magistrates", "youth"])),
        st.integers(0, 40),
        min_size=2,
    )
)
def test_every_hidden_cell_of_any_protected_table_is_explained(counts, policies) -> None:
    if sum(counts.values()) == 0:
        return
    _, draft = protected_table(
        cases(counts), index="sex", columns="court", profile=policies.sdc.active
    )
    released = content_table(draft.content["table"])
    table = render_table(draft.content["table"], draft.checks)
    hidden = int(released.isna().to_numpy().sum())
    assert table.hidden(PRIMARY) + table.hidden(SECONDARY) == hidden
    for _, row in table.rows:
        for cell in row:
            assert cell.text != ""
            if cell.suppression == SECONDARY:
                assert cell.text == SECONDARY_NOTE
            elif cell.suppression == PRIMARY:
                assert cell.text.startswith("suppressed: ")

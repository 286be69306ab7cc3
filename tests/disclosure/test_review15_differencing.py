"""Review of issue 15: differencing attacks the check still passes as ok (reproductions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from disclosure.differencing import ReleasedTable, check_differencing
from srs.policy import load_policies

PROFILE = load_policies().sdc.active


def table(cells, rows=("F", "M"), cols=("crown", "mags")) -> pd.DataFrame:
    return pd.DataFrame(
        cells, index=pd.Index(rows, name="sex"), columns=pd.Index(cols, name="court")
    )


EARLIER = table([[120, 80], [340, 215]])


@pytest.mark.parametrize(
    "new",
    [
        table([[117, 80], [340, 215]], rows=("Female", "M")),  # one category relabelled
        table([[117, 80], [340, 215]], rows=("F ", "M")),  # trailing space
        table([[117, 80], [340, 215]], cols=("Crown Court", "mags")),
    ],
    ids=["relabel-row", "whitespace-row", "relabel-column"],
)
def test_a_relabelled_category_hides_a_difference_of_3(new) -> None:
    # The same population minus 3 women at the Crown Court, with one label renamed: the
    # pair cannot be aligned on that category, so it should at least be "not checked: needs a
    # checker" (review), as for wholly disjoint labels. It is passed as ok (no findings).
    assert check_differencing(new, {"output #1": EARLIER}, PROFILE) != []


def test_wholly_disjoint_labels_are_review_for_comparison() -> None:
    new = table([[117, 80], [340, 215]], rows=("f", "m"))
    findings = check_differencing(new, {"output #1": EARLIER}, PROFILE)
    assert [f.status for f in findings] == ["review"]


def test_an_impossible_rounding_base_passes_as_ok() -> None:
    new = table([[117, 80], [340, 215]])
    findings = check_differencing(
        new, {"output #1": ReleasedTable(EARLIER, rounding="base 0")}, PROFILE
    )
    assert findings != []  # 'base -5' is review; 'base 0' is silently ok


def test_infinite_cell_is_a_library_exception() -> None:
    new = table([[117, np.inf], [340, 215]])
    check_differencing(new, {"output #1": EARLIER}, PROFILE)  # ValueError from linprog

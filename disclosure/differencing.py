"""Differencing: a new table that, set against one already released, exposes small counts.

Covered cases (each pairwise against every earlier release of the project):

1. **Nested populations**: the same table on a population that contains, or is contained
   in, an earlier one (a filter that removes a few units, a sub-group, a later date). When one
   table is at least the other in every cell, their difference is itself a table of the units
   in between; any difference cell strictly between 0 and the minimum count is disclosive.
2. **Recoded categories**: with a mapping from the new table's categories to the earlier
   one's (e.g. ICCS divisions to sections, or one category split out of "other"), the new
   table is first aggregated to the earlier classification, then compared as in 1.
3. **Margins**: a one-way table against the margin of an earlier two-way table (and the
   reverse) is the nested case once the two-way table is summed over its columns.

Not covered (documented for checkers): differences that need three or more tables at once,
linear combinations other than sums and differences, and magnitude tables (differencing
of sums needs the per-unit contributions). Such outputs still go to a human checker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from disclosure.policy import SDCProfile


@dataclass(frozen=True)
class DifferencingFinding:
    """One disclosive difference between the new table and an earlier release."""

    earlier: str
    row: Any
    column: Any
    difference: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "earlier": self.earlier,
            "row": str(self.row),
            "column": str(self.column),
            "difference": self.difference,
            "message": self.message,
            "status": "fail",
        }


def _as_frame(table: pd.DataFrame | pd.Series) -> pd.DataFrame:
    return table.to_frame("value") if isinstance(table, pd.Series) else table


def recode(
    table: pd.DataFrame,
    rows: Mapping[Any, Any] | None = None,
    columns: Mapping[Any, Any] | None = None,
) -> pd.DataFrame:
    """Aggregate a table's categories to another classification (unmapped keep their label)."""
    out = table
    if rows:
        out = out.groupby(lambda label: rows.get(label, label)).sum()
    if columns:
        out = out.T.groupby(lambda label: columns.get(label, label)).sum().T
    return out


def _comparable(new: pd.DataFrame, old: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    if new.shape[1] == 1 and old.shape[1] > 1:
        old = old.sum(axis=1).to_frame(new.columns[0])
    elif old.shape[1] == 1 and new.shape[1] > 1:
        new = new.sum(axis=1).to_frame(old.columns[0])
    if not set(new.index) & set(old.index) or not set(new.columns) & set(old.columns):
        return None
    rows = new.index.union(old.index)
    columns = new.columns.union(old.columns)
    return (
        new.reindex(index=rows, columns=columns, fill_value=0).fillna(0),
        old.reindex(index=rows, columns=columns, fill_value=0).fillna(0),
    )


def check_differencing(
    new: pd.DataFrame | pd.Series,
    released: Mapping[str, pd.DataFrame | pd.Series],
    profile: SDCProfile,
    row_mapping: Mapping[Any, Any] | None = None,
    column_mapping: Mapping[Any, Any] | None = None,
) -> list[DifferencingFinding]:
    """Every cell where ``new`` and an earlier frequency table differ by a small count.

    ``row_mapping``/``column_mapping`` recode the new table's categories to the earlier
    tables' classification first (case 2).
    """
    new_frame = recode(_as_frame(new), row_mapping, column_mapping)
    findings: list[DifferencingFinding] = []
    threshold = profile.minimum_cell_count
    for name, earlier in released.items():
        pair = _comparable(new_frame, _as_frame(earlier))
        if pair is None:
            continue
        a, b = pair
        difference = a.to_numpy(dtype=float) - b.to_numpy(dtype=float)
        nested = (difference >= 0).all() or (difference <= 0).all()
        if not nested or not difference.any():
            continue
        small = (np.abs(difference) > 0) & (np.abs(difference) < threshold)
        for r, c in zip(*np.nonzero(small), strict=True):
            value = float(abs(difference[r, c]))
            findings.append(
                DifferencingFinding(
                    name,
                    a.index[r],
                    a.columns[c],
                    value,
                    f"set against {name}, cell ({a.index[r]}, {a.columns[c]}) differs by {value:g} < {threshold}: "
                    "the units in between are exposed",
                )
            )
    return findings

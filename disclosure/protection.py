"""Making tables safe: primary suppression, rounding (to a base, OpenSAFELY's midpoint-6, and
controlled rounding that keeps margins additive) and top/bottom coding.

Each function takes a table (or values) and returns a new one; nothing is changed in place.
Secondary suppression, which protects suppressed cells from being recomputed from margins, is
in ``disclosure.suppression``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_matrix

from disclosure.errors import DisclosureError
from disclosure.evidence import FAIL, TableCheck


class ProtectionError(DisclosureError, ValueError):
    """A protection method cannot be applied as asked (bad base, no solution)."""


def suppress_primary(check: TableCheck) -> pd.DataFrame:
    """The checked table with every failing cell replaced by NaN (shown as suppressed)."""
    return check.table.mask(check.status == FAIL).astype(float)


def _base(base: int) -> int:
    if not isinstance(base, int | np.integer) or base < 1:
        raise ProtectionError(f"a rounding base must be a whole number of at least 1, not {base!r}")
    return int(base)


def round_to_base(table: pd.DataFrame, base: int) -> pd.DataFrame:
    """Each value to the nearest multiple of ``base`` (halves round up); NaN stays NaN.

    Rounding cell by cell does not keep margins additive; see ``controlled_round``.
    """
    base = _base(base)
    return np.floor(table.astype(float) / base + 0.5) * base


def round_midpoint6(table: pd.DataFrame) -> pd.DataFrame:
    """OpenSAFELY's midpoint-6 rounding: 0 stays 0, 1-6 become 3, 7-12 become 9, ...

    A count is rounded up to a multiple of 6 and then moved to the middle of its bucket, so
    small counts are never shown exactly and no count is shown as zero when it was not.
    """
    values = table.astype(float)
    if (values < 0).to_numpy().any():
        raise ProtectionError("midpoint-6 rounding is for counts; the table has negative values")
    rounded = np.ceil(values / 6) * 6 - 3
    return rounded.where(values != 0, 0.0).where(values.notna())


def controlled_round(
    table: pd.DataFrame, base: int
) -> tuple[pd.DataFrame, pd.Series, pd.Series, float]:
    """Round a two-way table of counts and its margins to multiples of ``base`` so that the
    rounded cells still add up to the rounded row totals, column totals and grand total.

    Every value moves to the multiple of ``base`` just below or just above it (values already
    on a multiple stay); the choice minimises the total absolute change. Solved as an integer
    program with SciPy's HiGHS (the constraint matrix is a network's, so this is fast).
    Returns the rounded interior, row totals, column totals and grand total.
    """
    base = _base(base)
    values = table.to_numpy(dtype=float)
    if np.isnan(values).any():
        raise ProtectionError("controlled rounding needs a complete table (no suppressed cells)")
    if (values < 0).any():
        raise ProtectionError("controlled rounding is for non-negative counts")
    rows, cols = values.shape
    row_totals, col_totals, grand = values.sum(axis=1), values.sum(axis=0), values.sum()
    everything = np.concatenate([values.ravel(), row_totals, col_totals, [grand]])
    floor = np.floor(everything / base) * base
    exact = np.isclose(everything, floor)
    n = everything.size
    # z = 1 rounds up, 0 rounds down; a value already on a multiple has z fixed at 0.
    cost = np.where(exact, 0.0, (floor + base - everything) - (everything - floor))
    upper = np.where(exact, 0, 1)
    constraints = lil_matrix((rows + cols + 1, n))
    rhs = np.zeros(rows + cols + 1)
    interior = rows * cols
    for i in range(rows):
        for j in range(cols):
            constraints[i, i * cols + j] = base
        constraints[i, interior + i] = -base
        rhs[i] = floor[interior + i] - floor[i * cols : (i + 1) * cols].sum()
    for j in range(cols):
        for i in range(rows):
            constraints[rows + j, i * cols + j] = base
        constraints[rows + j, interior + rows + j] = -base
        rhs[rows + j] = floor[interior + rows + j] - floor[j:interior:cols].sum()
    for i in range(rows):
        constraints[rows + cols, interior + i] = base
    constraints[rows + cols, n - 1] = -base
    rhs[rows + cols] = floor[n - 1] - floor[interior : interior + rows].sum()
    result = milp(
        c=cost,
        constraints=LinearConstraint(constraints.tocsr(), rhs, rhs),
        integrality=np.ones(n),
        bounds=Bounds(np.zeros(n), upper),
    )
    if not result.success:
        raise ProtectionError(f"no controlled rounding to base {base} was found: {result.message}")
    rounded = floor + base * np.round(result.x)
    cells = pd.DataFrame(
        rounded[:interior].reshape(rows, cols), index=table.index, columns=table.columns
    )
    return (
        cells,
        pd.Series(rounded[interior : interior + rows], index=table.index, name="total"),
        pd.Series(rounded[interior + rows : n - 1], index=table.columns, name="total"),
        float(rounded[n - 1]),
    )


def top_code(values: pd.Series, upper: float) -> pd.Series:
    """Values above ``upper`` are shown as ``upper`` (hides extreme, identifying values)."""
    return values.clip(upper=upper)


def bottom_code(values: pd.Series, lower: float) -> pd.Series:
    """Values below ``lower`` are shown as ``lower``."""
    return values.clip(lower=lower)


def top_code_quantile(values: pd.Series, quantile: float = 0.99) -> tuple[pd.Series, float]:
    """Top-code at a quantile of the values; returns the coded values and the bound used."""
    if not 0 < quantile < 1:
        raise ProtectionError(f"quantile must be between 0 and 1, not {quantile}")
    bound = float(values.quantile(quantile))
    return top_code(values, bound), bound

"""Primary disclosure checks on frequency and magnitude tables, cell by cell.

``check_table`` cross-tabulates record-level data (like ``pandas.crosstab``) and applies the
profile's rules to every cell: minimum count (or OpenSAFELY-style redaction), (n,k)
dominance, the p% rule, zeros and class disclosure, negative and missing values, and the
release rules for maxima, minima and medians. Each failing cell carries the figures that
decided it. ``check_table_with_margins`` also checks every margin on the records it adds up,
coding the keys once. Pure computation: data frame and policy in, evidence out.

The rules match ACRO's where they overlap (threshold ``count < t``; (n,k): top-n share
``>= k``; p%: ``(total - top1 - top2) < p * top1``; a cell with negative contributions is for
review under a profile that flags negatives). Where ACRO then leaves dominance unjudged, we
judge it on the absolute values of the contributions (as sdcTable and tau-ARGUS do), so a
profile that allows negatives still fails a dominated cell.

What is refused rather than judged: data with no complete record (``EmptyTableError``: a table
of no cells is not "ok"), and (``UnusableValuesError``, naming the column and example values)
a values column that is not real numbers (dates, durations, complex numbers, text such as
``"1,5"``), with an infinite value, with whole numbers beyond 2**53 or whose sum overflows or
(for whole numbers) passes 2**53, where floating point stops counting exactly; and key columns
whose values differ but read the same (``1`` and ``"1"``), which would publish two rows or
columns with one label. True/False values are counted as 1/0, so the sum of an indicator is
the number of records with it. Missing values (NaN, None) are not refused: they are left out of
every statistic and counted in the ``missing`` figure.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from disclosure.errors import DisclosureError, EmptyTableError, UnusableValuesError
from disclosure.evidence import FAIL, OK, REVIEW, STATUS_RANK, CellFinding, TableCheck
from disclosure.policy import SDCProfile

STATISTICS = ("count", "sum", "mean", "median", "max", "min", "std")
MAGNITUDE = ("sum", "mean", "std")
SINGLE_VALUE = ("median", "max", "min")
# Every whole number up to 2**53 is a float64, and so is every sum of them that stays within it:
# beyond, 2**53 + 1 reads as 2**53 and a sum drifts without any sign.
EXACT_INTEGER_LIMIT = 2**53
# Objects pandas would quietly make numbers of, or missing: dates and durations (of the standard
# library, numpy and pandas alike), times and periods, and complex numbers.
NOT_REAL_OBJECTS = (
    complex,
    np.complexfloating,
    np.datetime64,
    np.timedelta64,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    pd.Period,
)


class TableSpecError(DisclosureError, ValueError):
    """The table asked for cannot be built from the data (unknown column, bad statistic)."""


@dataclass
class CellStatistics:
    """Per-cell figures for a grid of cells (flat arrays, one entry per cell)."""

    count: np.ndarray
    total: np.ndarray
    top: list[np.ndarray]  # top[0] largest contribution, top[1] second largest, ...
    minimum: np.ndarray
    sum_squares: np.ndarray
    negatives: np.ndarray
    missing: np.ndarray
    median: np.ndarray | None


def key_list(keys: str | Sequence[str] | None) -> list[str]:
    """Table keys as a list: one name, several, or none."""
    if keys is None:
        return []
    return [keys] if isinstance(keys, str) else list(keys)


def cell_statistics(
    codes: np.ndarray, values: np.ndarray | None, cells: int, top_n: int, want_median: bool
) -> CellStatistics:
    """Figures for every cell from each record's cell code (and value), in O(records).

    Records are ordered by cell with a stable (radix, for small codes) sort; maxima come from
    ``maximum.reduceat``, and each next-largest contribution by masking one occurrence of the
    current maximum and reducing again: no sort on values is needed.
    """
    count = np.bincount(codes, minlength=cells)
    if values is None:
        zeros = np.zeros(cells)
        return CellStatistics(
            count,
            count.astype(float),
            [count.astype(float)],
            zeros,
            zeros,
            zeros.astype(int),
            zeros.astype(int),
            None,
        )
    missing_mask = np.isnan(values)
    missing = np.bincount(codes[missing_mask], minlength=cells)
    present = ~missing_mask
    codes, values = codes[present], values[present]
    count = np.bincount(codes, minlength=cells)
    with np.errstate(over="ignore"):  # an overflowing sum is refused by the caller
        total = np.bincount(codes, weights=values, minlength=cells)
        sum_squares = np.bincount(codes, weights=values * values, minlength=cells)
    negatives = np.bincount(codes[values < 0], minlength=cells)
    small = codes.astype(np.uint16) if cells < 65_536 else codes
    order = np.argsort(small, kind="stable")
    ordered = values[order]
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])
    filled = count > 0
    cell_of = np.repeat(np.arange(cells), count)
    tops = []
    working = ordered.copy()
    for _ in range(max(top_n, 2)):
        top = np.zeros(cells)
        if working.size:
            top[filled] = np.maximum.reduceat(working, starts[filled])
        top[~filled] = 0.0
        top = np.where(np.isneginf(top), 0.0, top)
        tops.append(top)
        if working.size:
            is_top = working == top[cell_of]
            first = np.flatnonzero(is_top)
            first_cell = cell_of[first]
            keep = np.ones(len(first), dtype=bool)
            keep[1:] = first_cell[1:] != first_cell[:-1]
            working[first[keep]] = -np.inf
    minimum = np.zeros(cells)
    if ordered.size:
        minimum[filled] = np.minimum.reduceat(ordered, starts[filled])
    median = None
    if want_median:
        by_value = np.lexsort((values, codes))
        sorted_values = values[by_value]
        median = np.full(cells, np.nan)
        lower = starts + (count - 1) // 2
        upper = starts + count // 2
        median[filled] = (sorted_values[lower[filled]] + sorted_values[upper[filled]]) / 2
    return CellStatistics(count, total, tops, minimum, sum_squares, negatives, missing, median)


def _key_codes(
    frame: pd.DataFrame, keys: list[str]
) -> tuple[list[np.ndarray], list[pd.Index], np.ndarray]:
    """Each key's level code per kept row, the levels, and which rows were kept (a row with a
    missing key drops out, as in pandas). Levels are those of the kept rows (sorted), or a
    categorical's categories."""
    all_codes, all_levels, categorical = [], [], []
    for key in keys:
        column = frame[key]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes, uniques = column.cat.codes.to_numpy(), column.cat.categories
        else:
            codes, uniques = pd.factorize(column, sort=True)
        all_codes.append(np.asarray(codes, dtype=np.int64))
        all_levels.append(uniques)
        categorical.append(isinstance(column.dtype, pd.CategoricalDtype))
    keep = np.ones(len(frame), dtype=bool)
    for codes in all_codes:
        keep &= codes >= 0
    kept_codes, levels = [], []
    for key, codes, uniques, is_categorical in zip(
        keys, all_codes, all_levels, categorical, strict=True
    ):
        codes = codes[keep]
        if not is_categorical:
            # A value seen only beside a missing key is no level.
            used = np.bincount(codes, minlength=len(uniques)) > 0
            if not used.all():
                codes = (np.cumsum(used) - 1)[codes]
                uniques = uniques[used]
        _refuse_labels_that_collide(key, uniques)
        kept_codes.append(codes)
        levels.append(pd.Index(uniques, name=key))
    return kept_codes, levels, keep


def _refuse_labels_that_collide(key: str, levels: pd.Index) -> None:
    """Refuse a key whose distinct values read the same (``1`` and ``"1"``): the table would
    have two rows or columns with one label, which no reader (or file) can tell apart."""
    by_label: dict[str, list[Any]] = {}
    for level in levels.tolist():
        by_label.setdefault(str(level), []).append(level)
    clashes = [values for values in by_label.values() if len(values) > 1]
    if clashes:
        shown = "; ".join(" and ".join(repr(v) for v in values) for values in clashes[:3])
        raise UnusableValuesError(
            f"key column {key!r} has values that differ but read the same ({shown}), so the "
            "table would show two rows or columns with one label; make the column one type "
            f"first, e.g. data[{key!r}] = data[{key!r}].astype(str)"
        )


def _product(levels: list[pd.Index]) -> pd.Index:
    if not levels:
        return pd.Index(["value"])
    if len(levels) == 1:
        return levels[0]
    return pd.MultiIndex.from_product(levels, names=[level.name for level in levels])


@dataclass
class TableRecords:
    """The records a table (and each of its margins) is built from, coded once: each key's
    level per record, the levels, and the records' values and units. Only records whose keys
    are all present are here."""

    keys: list[str]
    codes: list[np.ndarray]
    levels: list[pd.Index]
    values: np.ndarray | None
    units: np.ndarray | None
    values_name: str | None
    whole_numbers: bool = False  # the values column holds integers: sums must stay exact


def _examples(labels: pd.Index, shown: np.ndarray, limit: int = 3) -> str:
    pairs = [
        f"{value!r} (row {label!r})"
        for label, value in zip(labels[:limit].tolist(), shown[:limit].tolist(), strict=True)
    ]
    return ", ".join(pairs) + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def _refuse(
    column: str, data: pd.DataFrame, bad: np.ndarray, shown: np.ndarray, what: str, advice: str
) -> None:
    where = np.flatnonzero(bad)
    raise UnusableValuesError(
        f"column {column!r} has {where.size} {what}, e.g. "
        f"{_examples(data.index[where], shown[where])}. {advice}"
    )


def _not_real_numbers(series: pd.Series) -> str | None:
    """What kind of values a column holds if not real numbers (None if it does): dates,
    durations and complex numbers are numbers to numpy, but a sum of them means nothing here."""
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "dates"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "durations"
    if pd.api.types.is_complex_dtype(dtype):
        return "complex numbers"
    return None


def _numeric_values(data: pd.DataFrame, column: str, keep: np.ndarray) -> tuple[np.ndarray, bool]:
    """The values of the kept records as floats, missing as NaN, and whether they are whole
    numbers (an integer or boolean column); True/False count as 1/0. Refused, naming the column
    and example rows: values that are not real numbers (dates, durations, complex numbers,
    text or other objects that are not numbers), infinite values, and whole numbers beyond
    2**53 (which floating point cannot hold exactly)."""
    series = data[column]
    kind = _not_real_numbers(series)
    if kind is None and not pd.api.types.is_numeric_dtype(series.dtype):
        raw = series.to_numpy(dtype=object)
        present = series.notna().to_numpy() & keep
        # pandas would quietly make dates and durations missing and keep complex numbers
        # complex; below, Python ints too large for int64 would quietly lose digits.
        not_real = present & np.array([isinstance(v, NOT_REAL_OBJECTS) for v in raw], dtype=bool)
        if not_real.any():
            _refuse(
                column,
                data,
                not_real,
                raw,
                "value(s) that are not real numbers (dates, durations or complex numbers)",
                "Tabulate a number made from them instead (e.g. a duration in days), or use them "
                "as a key",
            )
        parsed = pd.to_numeric(series, errors="coerce")
        unparseable = (parsed.isna() & series.notna()).to_numpy() & keep
        if unparseable.any():
            _refuse(
                column,
                data,
                unparseable,
                raw,
                "value(s) that are not numbers",
                "Convert the column to numbers yourself (decimal separators and other local "
                "conventions are not guessed: '1,5' may mean 1.5 or 15), or set those values to "
                "missing (NaN) if that is what they are",
            )
        huge = present & np.array(
            [
                isinstance(v, (int, np.integer))
                and not isinstance(v, bool)
                and abs(int(v)) > EXACT_INTEGER_LIMIT
                for v in raw
            ],
            dtype=bool,
        )
        if huge.any():
            _refuse_huge(column, data, huge, raw)
        # Python ints beside None parse as floats, yet their sums must stay exact too.
        objects_whole = bool(present.any()) and all(
            isinstance(v, (int, np.integer, np.bool_)) for v in raw[present]
        )
        series = parsed
    else:
        objects_whole = False
    whole = (
        objects_whole
        or pd.api.types.is_integer_dtype(series.dtype)
        or pd.api.types.is_bool_dtype(series.dtype)
    )
    kind = kind or _not_real_numbers(series)
    if kind is not None:
        raise UnusableValuesError(
            f"column {column!r} holds {kind} ({series.dtype}), not real numbers: a sum, mean or "
            "dominance of them means nothing here. Tabulate a number made from them instead "
            "(e.g. a duration in days, (end - start).dt.days), or use them as a key"
        )
    if pd.api.types.is_integer_dtype(series.dtype):
        # Compared in the column's own type (no abs: -2**63 has none in int64).
        integers = series.to_numpy(
            dtype=getattr(series.dtype, "numpy_dtype", series.dtype), na_value=0
        )
        huge = keep & ((integers > EXACT_INTEGER_LIMIT) | (integers < -EXACT_INTEGER_LIMIT))
        if huge.any():
            _refuse_huge(column, data, huge, integers)
    values = series.to_numpy(dtype=float, na_value=np.nan)
    infinite = np.isinf(values) & keep
    if infinite.any():
        _refuse(
            column,
            data,
            infinite,
            values,
            "infinite value(s)",
            "No sum, mean or dominance can be judged over them: replace them with the true "
            "values, or set them to missing (NaN), which is left out",
        )
    return values[keep], whole


def _refuse_huge(column: str, data: pd.DataFrame, huge: np.ndarray, shown: np.ndarray) -> None:
    _refuse(
        column,
        data,
        huge,
        shown,
        f"whole number(s) beyond 2**53 ({EXACT_INTEGER_LIMIT:,}), which floating point cannot "
        "hold exactly (2**53 + 1 reads as 2**53)",
        "Rescale the column (e.g. to thousands) or check the values: counts and amounts this "
        "large are usually a coding error",
    )


def table_records(
    data: pd.DataFrame, keys: Sequence[str], values: str | None = None, unit: str | None = None
) -> TableRecords:
    """Code ``data``'s records for tables over ``keys`` (in that order): refuses missing
    columns, values that are not real numbers or are infinite or too large to hold exactly,
    keys whose values read the same, and data with no complete record."""
    keys = list(keys)
    missing = [
        c
        for c in [*keys, *([values] if values else []), *([unit] if unit else [])]
        if c not in data.columns
    ]
    if missing:
        raise TableSpecError(
            f"no column(s) {', '.join(missing)} in the data; it has {', '.join(map(str, data.columns))}"
        )
    codes, levels, keep = _key_codes(data, keys)
    if not keep.any():
        why = (
            "the data have no rows"
            if len(data) == 0
            else f"none of its {len(data)} rows has all of {', '.join(keys)} present"
        )
        raise EmptyTableError(
            f"the table by {' x '.join(keys)} has no records ({why}), so it has no cells to "
            "check or publish; check the filter that selected the records and the key columns"
        )
    value_array, whole_numbers = (None, False)
    if values is not None:
        value_array, whole_numbers = _numeric_values(data, values, keep)
    units = None if unit is None else pd.factorize(data[unit])[0][keep]
    return TableRecords(keys, codes, levels, value_array, units, values, whole_numbers)


def check_table(
    data: pd.DataFrame,
    *,
    index: str | Sequence[str],
    columns: str | Sequence[str] | None = None,
    values: str | None = None,
    statistic: str = "count",
    profile: SDCProfile,
    profile_name: str = "",
    unit: str | None = None,
    structural_zeros: Sequence[tuple[Any, Any]] = (),
) -> TableCheck:
    """Build a table from record-level ``data`` and check every cell against ``profile``.

    ``statistic`` is ``count`` (a frequency table) or, with ``values``, one of sum, mean,
    median, max, min, std (a magnitude table). With ``unit`` (e.g. ``person_key``), a
    person's rows in a cell count once and their values are added up before dominance is
    judged, since one person may have many cases. ``structural_zeros`` are cells that are
    empty by definition (e.g. remand for an offence that cannot be remanded) and are exempt.

    Missing values (NaN, None) are left out of every statistic (and flagged when the profile
    says so); a row with a missing key is left out, as in ``pandas.crosstab``. Refused with an
    error: data with no complete record (``EmptyTableError``); values that are not real numbers
    (dates, durations, complex numbers, text), infinite, or whole numbers beyond 2**53, sums of
    whole numbers reaching 2**53, and key values that differ but read the same (``1`` and
    ``"1"``) (``UnusableValuesError``, naming the column and example values). True/False
    values count as 1/0 (the sum of an indicator is how many records have it). A cell with
    negative contributions has dominance judged on their absolute values.

    >>> check = check_table(journeys, index="iccs_section", columns="sentence_type",
    ...                     profile=policies.sdc.active)         # doctest: +SKIP
    >>> check.summary()                                          # doctest: +SKIP
    'fail: 3 of 40 cells fail, 0 need review (threshold)'
    """
    row_keys, column_keys = _table_spec(index, columns, values, statistic)
    records = table_records(data, [*row_keys, *column_keys], values, unit)
    return _check(
        records, row_keys, column_keys, statistic, profile, profile_name, structural_zeros
    )


def check_table_with_margins(
    data: pd.DataFrame,
    *,
    index: str | Sequence[str],
    columns: str | Sequence[str] | None = None,
    values: str | None = None,
    statistic: str = "count",
    profile: SDCProfile,
    profile_name: str = "",
    unit: str | None = None,
    total_label: str = "Total",
) -> tuple[TableCheck, dict[tuple[str, ...], TableCheck]]:
    """``check_table``, and a check of every margin on the records it adds up, with the keys
    coded once. Margins are keyed by the keys they keep (in table order); each is a one-column
    table of those keys, the grand total (no keys) a single row labelled ``total_label``.

    >>> check, margins = check_table_with_margins(journeys, index="sex", columns="court",
    ...                                           profile=profile)  # doctest: +SKIP
    >>> margins[("sex",)].status                                    # doctest: +SKIP
    """
    row_keys, column_keys = _table_spec(index, columns, values, statistic)
    keys = [*row_keys, *column_keys]
    records = table_records(data, keys, values, unit)
    check = _check(records, row_keys, column_keys, statistic, profile, profile_name, ())
    margins = {}
    for size in range(len(keys)):
        for kept in itertools.combinations(keys, size):
            margins[kept] = _check(
                records, list(kept), [], statistic, profile, profile_name, (), total_label
            )
    return check, margins


def _table_spec(
    index: str | Sequence[str],
    columns: str | Sequence[str] | None,
    values: str | None,
    statistic: str,
) -> tuple[list[str], list[str]]:
    row_keys, column_keys = key_list(index), key_list(columns)
    if not row_keys:
        raise TableSpecError("a table needs at least one index variable")
    if len(row_keys) + len(column_keys) > 3:
        raise TableSpecError("tables of more than 3 dimensions are not supported")
    if statistic not in STATISTICS:
        raise TableSpecError(f"statistic {statistic!r} is not one of {', '.join(STATISTICS)}")
    if statistic != "count" and values is None:
        raise TableSpecError(f"a {statistic} table needs `values`")
    return row_keys, column_keys


def _check(
    records: TableRecords,
    row_keys: list[str],
    column_keys: list[str],
    statistic: str,
    profile: SDCProfile,
    profile_name: str,
    structural_zeros: Sequence[tuple[Any, Any]],
    total_label: str = "Total",
) -> TableCheck:
    """Check the table of ``records`` by ``row_keys`` x ``column_keys`` (a subset of their keys;
    no row keys: one row, ``total_label``, of all records)."""
    keys = row_keys + column_keys
    position = {key: i for i, key in enumerate(records.keys)}
    levels = [records.levels[position[key]] for key in keys]
    codes = np.zeros(len(records.codes[0]), dtype=np.int64)
    for key, level in zip(keys, levels, strict=True):
        codes = codes * len(level) + records.codes[position[key]]
    row_index = _product(levels[: len(row_keys)]) if row_keys else pd.Index([total_label])
    column_index = _product(levels[len(row_keys) :])
    cells = len(row_index) * len(column_index)
    value_array, values = records.values, records.values_name
    if records.units is not None:
        # One contribution per unit per cell: a person with many cases counts once.
        frame = pd.DataFrame({"cell": codes, "unit": records.units})
        if value_array is not None:
            frame["value"] = value_array
            grouped = frame.groupby(["cell", "unit"], sort=False)["value"].sum(min_count=1)
            codes = grouped.index.get_level_values("cell").to_numpy()
            value_array = grouped.to_numpy(dtype=float)
        else:
            codes = frame.drop_duplicates().loc[:, "cell"].to_numpy()
    stats = cell_statistics(codes, value_array, cells, profile.dominance_n, statistic == "median")
    shape = (len(row_index), len(column_index))
    absolute = None
    if value_array is not None:
        overflow = ~np.isfinite(stats.total) | (
            ~np.isfinite(stats.sum_squares) if statistic == "std" else False
        )
        if overflow.any():
            r, c = divmod(int(np.flatnonzero(overflow)[0]), shape[1])
            raise UnusableValuesError(
                f"the {statistic} of {values!r} in cell ({row_index[r]!r}, {column_index[c]!r}) "
                "overflows floating point; rescale the column (e.g. to thousands) first"
            )
        if records.whole_numbers and statistic == "sum":
            # A sum of whole numbers is exact while the sum of their sizes stays within 2**53
            # (every partial sum is then a float64), and computed at or above 2**53 otherwise.
            sizes = np.bincount(codes, weights=np.abs(np.nan_to_num(value_array)), minlength=cells)
            inexact = sizes >= EXACT_INTEGER_LIMIT
            if inexact.any():
                r, c = divmod(int(np.flatnonzero(inexact)[0]), shape[1])
                raise UnusableValuesError(
                    f"the sum of {values!r} in cell ({row_index[r]!r}, {column_index[c]!r}) "
                    f"reaches 2**53 ({EXACT_INTEGER_LIMIT:,}), beyond which floating point "
                    "cannot add whole numbers exactly; rescale the column (e.g. to thousands) "
                    "first"
                )
        if (stats.negatives > 0).any() and statistic in MAGNITUDE + SINGLE_VALUE:
            absolute = cell_statistics(
                codes, np.abs(value_array), cells, profile.dominance_n, False
            )
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = stats.total / stats.count
        variance = (stats.sum_squares - stats.count * mean * mean) / (stats.count - 1)
    computed = {
        "count": stats.count.astype(float),
        "sum": stats.total,
        "mean": mean,
        "median": stats.median,
        "max": np.where(stats.count > 0, stats.top[0], np.nan),
        "min": np.where(stats.count > 0, stats.minimum, np.nan),
        "std": np.sqrt(np.clip(variance, 0, None)),
    }[statistic]
    if statistic in ("sum",):
        computed = np.where(stats.count > 0, computed, np.nan if values is not None else 0)

    findings, status = _apply_rules(stats, absolute, statistic, profile, values is not None)

    def grid(array: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(np.asarray(array).reshape(shape), index=row_index, columns=column_index)

    table = grid(computed if statistic != "count" else stats.count)
    counts = grid(stats.count)
    status_grid = grid(status)
    located = []
    for cell, rule, cell_status, message, figures in findings:
        r, c = divmod(cell, shape[1])
        located.append(
            CellFinding(row_index[r], column_index[c], rule, cell_status, message, figures)
        )
    located += _class_disclosure(counts, status_grid, profile, statistic)
    exempt = {(r, c) for r, c in structural_zeros}
    if exempt:
        located = [
            f
            for f in located
            if not ((f.row, f.column) in exempt and f.rule in ("zero", "threshold"))
        ]
        for r, c in exempt:
            if (r, c) in [(i, j) for i in status_grid.index for j in status_grid.columns]:
                status_grid.loc[r, c] = _worst(
                    [f.status for f in located if (f.row, f.column) == (r, c)]
                )
    description = (
        f"{statistic}{' of ' + values if values else ''} by {' x '.join(keys) or total_label}"
    )
    return TableCheck(statistic, table, counts, status_grid, located, profile_name, description)


def _worst(statuses: list[str]) -> str:
    return max(statuses, key=STATUS_RANK.__getitem__, default=OK)


def _apply_rules(
    stats: CellStatistics,
    absolute: CellStatistics | None,
    statistic: str,
    profile: SDCProfile,
    has_values: bool,
):
    """Findings (cell, rule, status, message, figures) and each cell's status.

    ``absolute`` holds the figures of the absolute values, for cells with negative
    contributions: their dominance is judged on those (as sdcTable's and tau-ARGUS's dominance
    rules do), since a cell of +1000 and -990 reveals the large contributor as surely as one
    of +1000 alone. Under a profile that flags negatives they are also sent for review, as
    ACRO does.
    """
    cells = len(stats.count)
    status = np.full(cells, OK, dtype=object)
    findings: list[tuple[int, str, str, str, dict]] = []

    def flag(mask: np.ndarray, rule: str, cell_status: str, message, figures) -> None:
        for cell in np.flatnonzero(mask):
            findings.append((int(cell), rule, cell_status, message(cell), figures(cell)))
            if STATUS_RANK[cell_status] > STATUS_RANK[status[cell]]:
                status[cell] = cell_status

    count = stats.count
    threshold = profile.minimum_cell_count
    flag(
        (count > 0) & (count < threshold),
        "threshold",
        FAIL,
        lambda c: f"count {count[c]} < {threshold}",
        lambda c: {"count": int(count[c]), "threshold": threshold},
    )
    if profile.redact_at_or_below is not None:
        limit = profile.redact_at_or_below
        flag(
            (count > 0) & (count <= limit) & (count >= threshold),
            "redaction",
            FAIL,
            lambda c: f"count {count[c]} <= {limit} (redact)",
            lambda c: {"count": int(count[c]), "redact_at_or_below": limit},
        )
    if profile.zeros_are_disclosive:
        flag(
            count == 0,
            "zero",
            FAIL,
            lambda c: "zero cell (zeros are disclosive under this profile)",
            lambda c: {"count": 0},
        )
    if has_values:
        if profile.missing_values == "flag":
            flag(
                stats.missing > 0,
                "missing",
                REVIEW,
                lambda c: f"{stats.missing[c]} missing value(s) left out",
                lambda c: {"missing": int(stats.missing[c])},
            )
        if statistic in SINGLE_VALUE:
            rule_status = {"forbid": FAIL, "check": REVIEW}.get(profile.max_min_median_release)
            if rule_status:
                flag(
                    count > 0,
                    "max_min_median",
                    rule_status,
                    lambda c: (
                        f"a {statistic} is the value of a single unit ({profile.max_min_median_release} under this profile)"
                    ),
                    lambda c: {"count": int(count[c])},
                )
        if statistic in MAGNITUDE or statistic in SINGLE_VALUE:
            negative = stats.negatives > 0
            if profile.negative_values == "flag":
                flag(
                    negative,
                    "negative",
                    REVIEW,
                    lambda c: (
                        f"{stats.negatives[c]} negative contribution(s): dominance is not defined"
                    ),
                    lambda c: {"negatives": int(stats.negatives[c])},
                )
            judged = count > 0
            tops, total = stats.top, stats.total
            if absolute is not None:
                tops = [np.where(negative, a, t) for a, t in zip(absolute.top, tops, strict=True)]
                total = np.where(negative, absolute.total, total)
            n = profile.dominance_n
            top_n = np.sum(tops[:n], axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(total > 0, top_n / total, 0.0)
                remainder = total - tops[0] - tops[1]
                p_ratio = np.where(tops[0] > 0, remainder / tops[0], 1.0)

            def on(c: int) -> str:
                return " (of absolute values: negative contributions)" if negative[c] else ""

            k = profile.dominance_k / 100
            flag(
                judged & (share >= k),
                "dominance",
                FAIL,
                lambda c: f"top {n} contribute {share[c]:.0%} >= {profile.dominance_k:g}%{on(c)}",
                lambda c: {
                    "top_n_share": round(float(share[c]), 4),
                    "n": n,
                    "k": profile.dominance_k,
                },
            )
            p = profile.p_percent / 100
            flag(
                judged & (p_ratio < p),
                "p_percent",
                FAIL,
                lambda c: (
                    f"others contribute {p_ratio[c]:.1%} of the largest < {profile.p_percent:g}%"
                    f"{on(c)}"
                ),
                lambda c: {
                    "remainder_over_largest": round(float(p_ratio[c]), 4),
                    "p": profile.p_percent,
                },
            )
    return findings, status


def _class_disclosure(
    counts: pd.DataFrame, status: pd.DataFrame, profile: SDCProfile, statistic: str
) -> list[CellFinding]:
    """A row (or column) whose units all fall in one cell reveals their category to anyone who
    knows they are in that row: flag it."""
    if not profile.zeros_are_disclosive or counts.shape[1] < 2 or statistic != "count":
        return []
    findings = []
    values = counts.to_numpy()
    for axis, labels, other in (
        (1, counts.index, counts.columns),
        (0, counts.columns, counts.index),
    ):
        nonzero = (values > 0).sum(axis=axis)
        totals = values.sum(axis=axis)
        for position in np.flatnonzero((nonzero == 1) & (totals > 0)):
            line = values[position, :] if axis == 1 else values[:, position]
            where = int(np.flatnonzero(line)[0])
            row, column = (
                (labels[position], other[where]) if axis == 1 else (other[where], labels[position])
            )
            what = "row" if axis == 1 else "column"
            findings.append(
                CellFinding(
                    row,
                    column,
                    "class_disclosure",
                    FAIL,
                    f"all {int(totals[position])} units of {what} {labels[position]!r} fall in this one cell",
                    {"units": int(totals[position])},
                )
            )
            status.loc[row, column] = FAIL
    return findings

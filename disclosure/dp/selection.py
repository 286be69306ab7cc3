"""Which rows a DP query reads, and which columns it derives, said as plain data.

A DP query runs on a dataset the environment holds, never on a frame a researcher hands in, so
its own row filter and derived columns travel with it as a small declarative spec, applied row
by row inside the environment before any statistic (a row-by-row filter keeps the person-level
guarantee). It is never a Polars expression or a function: those could run code inside the
service that holds the vault's key.

``where`` is a list of conditions that must all hold, each ``(column, operator, value)``:

- ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` with one value: a number for a numeric column,
  text for a text column (text compares alphabetically), ``True``/``False`` for a flag (``==``
  and ``!=`` only), an ISO date text (``"2024-01-31"``) for a date column;
- ``in``, ``not in`` with a non-empty list of such values;
- ``is null``, ``is not null`` with no value: ``(column, "is null")``.

A row whose value is missing never passes a comparison (use ``is null`` to keep those rows).

``derive`` names new columns, each ``name: (kind, column, ...)``:

- ``("band", column, [edges])``: the band of a number between public, increasing edges,
  labelled like a DP histogram's bins (``"< 18"``, ``"[18, 25)"``, ``">= 65"``); a band's labels
  are public keys, so grouping by it spends no delta;
- ``("year", column)``: the year of a date column.

Derived columns can be grouped by, summarised and used in ``where``. Every column named must be
in the dataset (or derived); the privacy unit (``person_key``) can be neither filtered on nor
derived from. Sizes are bounded by the policy (``privacy_budget.max_where_conditions``,
``max_where_values``, ``max_where_text_chars``, ``max_derived_columns``).

>>> from disclosure.policy import PrivacyBudgetPolicy
>>> policy = PrivacyBudgetPolicy(default_project_rho=1, delta=1e-7, max_rho_per_query=0.5)
>>> chosen = select_rows(
...     [("sex", "==", "F"), ("age_band", "in", ["[18, 25)", "[25, 35)"])],
...     {"age_band": ("band", "age_at_offence", [18, 25, 35])},
...     policy=policy,
... )
>>> chosen.to_dict()["where"][0]
['sex', '==', 'F']
>>> chosen.public_keys()["age_band"]
('< 18', '[18, 25)', '[25, 35)', '>= 35')
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from disclosure.dp.queries import PERSON_KEY, DPQueryError, as_edge, edge_labels
from disclosure.policy import PrivacyBudgetPolicy

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
MEMBERSHIP = ("in", "not in")
NULL_TESTS = ("is null", "is not null")
OPERATORS = (*COMPARISONS, *MEMBERSHIP, *NULL_TESTS)
ORDERING = ("<", "<=", ">", ">=")
DERIVATIONS = ("band", "year")
# A derived column's name: a lower-case word, as the linked datasets' columns are.
NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
MAX_COLUMN_NAME_CHARS = 200
# Whole numbers a numeric column is compared with exactly; others are compared as Float64.
I64_RANGE = (-(2**63), 2**63 - 1)
HOW = (
    "write a condition as (column, operator, value) with an operator among "
    f"{', '.join(OPERATORS)}, e.g. where=[('sex', '==', 'F'), ('age_at_offence', '>=', 18), "
    "('court', 'in', ['crown', 'magistrates'])]"
)


class SelectionError(DPQueryError):
    """A DP query's ``where`` or ``derive`` is malformed: the message says which part and how
    to write it. Nothing was read or spent."""


@dataclass(frozen=True)
class Condition:
    """One condition of ``where``: ``column operator value``."""

    column: str
    operator: str
    value: Any = None  # a literal, a tuple of literals (in, not in) or None (null tests)

    def to_list(self) -> list[Any]:
        if self.operator in NULL_TESTS:
            return [self.column, self.operator]
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return [self.column, self.operator, value]


@dataclass(frozen=True)
class Derived:
    """One derived column: the band of a number between public edges, or the year of a date."""

    name: str
    kind: str
    column: str
    edges: tuple[float, ...] = ()

    def labels(self) -> tuple[str, ...]:
        """A band's labels, open-ended at both ends (as a DP histogram's bins)."""
        return edge_labels(self.edges)

    def to_list(self) -> list[Any]:
        return (
            [self.kind, self.column, list(self.edges)]
            if self.kind == "band"
            else [
                self.kind,
                self.column,
            ]
        )


@dataclass(frozen=True)
class RowSelection:
    """A DP query's rows (``where``) and derived columns (``derive``), validated; apply it to
    the dataset the environment read with ``apply``."""

    where: tuple[Condition, ...] = ()
    derive: tuple[Derived, ...] = ()
    identifier: str = PERSON_KEY

    def __bool__(self) -> bool:
        return bool(self.where or self.derive)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON, as recorded with the output."""
        return {
            "where": [c.to_list() for c in self.where],
            "derive": {d.name: d.to_list() for d in self.derive},
        }

    def public_keys(self) -> dict[str, tuple[str, ...]]:
        """The public values of each derived band (its labels)."""
        return {d.name: d.labels() for d in self.derive if d.kind == "band"}

    def dictionary_entries(self) -> list[dict[str, Any]]:
        """Derived bands as data-dictionary entries listing their public values."""
        return [
            {"name": name, "type": "string", "values": list(labels)}
            for name, labels in self.public_keys().items()
        ]

    def apply(self, data: pd.DataFrame | pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
        """``data`` with the derived columns added and only the rows every condition keeps."""
        if isinstance(data, pd.DataFrame):
            frame = pl.from_pandas(data).lazy()
        elif isinstance(data, pl.DataFrame):
            frame = data.lazy()
        else:
            frame = data
        schema = dict(frame.collect_schema())
        for derived in self.derive:
            frame = frame.with_columns(_derive(derived, schema).alias(derived.name))
            schema = dict(frame.collect_schema())
        conditions = [_condition(c, schema) for c in self.where]
        return frame.filter(*conditions) if conditions else frame


def select_rows(
    where: Sequence[Any] | None = None,
    derive: Mapping[str, Any] | None = None,
    *,
    policy: PrivacyBudgetPolicy,
    dataset: str | None = None,
) -> RowSelection:
    """Validate a query's ``where`` and ``derive`` (see the module notes) into a
    ``RowSelection`` for ``dataset``, whose privacy unit (``policy.privacy_unit_of``) can be
    neither filtered on nor derived from; ``SelectionError`` says what is wrong and how to
    write it.

    >>> from disclosure.policy import PrivacyBudgetPolicy
    >>> policy = PrivacyBudgetPolicy(default_project_rho=1, delta=1e-7, max_rho_per_query=0.5)
    >>> select_rows([("court", "is not null")], policy=policy).where[0].operator
    'is not null'
    """
    identifier = policy.privacy_unit_of(dataset)
    derived = _derivations(derive, policy, identifier)
    conditions = _conditions(where, policy, identifier)
    return RowSelection(where=conditions, derive=derived, identifier=identifier)


# ------------------------------------------------------------------ validating the spec
def _is_sequence(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _column_name(value: Any, where: str, identifier: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_COLUMN_NAME_CHARS:
        raise SelectionError(f"{where}: a column is named by text, not {_shown(value)}")
    if value == identifier:
        raise SelectionError(
            f"{where}: {identifier!r} is the privacy unit; it cannot be filtered on or derived "
            "from: choose rows by other columns"
        )
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _literal(value: Any, where: str, policy: PrivacyBudgetPolicy) -> Any:
    """A value a condition compares with: text, a whole or finite number, or a flag (NumPy's
    numbers and flags as Python's)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            raise SelectionError(f"{where}: compare with a finite number, not {value!r}")
        return float(value)
    if isinstance(value, str):
        if len(value) > policy.max_where_text_chars:
            raise SelectionError(
                f"{where}: a text value may be at most {policy.max_where_text_chars} characters "
                "(policy privacy_budget.max_where_text_chars)"
            )
        return value
    if value is None:
        raise SelectionError(f"{where}: to choose missing values use (column, 'is null')")
    raise SelectionError(
        f"{where}: a value is text, a number or True/False, not a {type(value).__name__}; "
        "expressions and functions are not accepted (a DP query's filter is data, not code)"
    )


def _conditions(
    where: Sequence[Any] | None, policy: PrivacyBudgetPolicy, identifier: str
) -> tuple[Condition, ...]:
    if where is None:
        return ()
    if not _is_sequence(where):
        raise SelectionError(f"where must be a list of conditions, not {_shown(where)}: {HOW}")
    if len(where) > policy.max_where_conditions:
        raise SelectionError(
            f"where has {len(where)} conditions, more than {policy.max_where_conditions} "
            "(policy privacy_budget.max_where_conditions): combine them with 'in'"
        )
    conditions = []
    for number, condition in enumerate(where, start=1):
        at = f"where condition {number}"
        if not _is_sequence(condition) or len(condition) not in (2, 3):
            raise SelectionError(f"{at} is {_shown(condition)}: {HOW}")
        column = _column_name(condition[0], at, identifier)
        operator = condition[1]
        if not isinstance(operator, str) or operator not in OPERATORS:
            raise SelectionError(
                f"{at}: operator {_shown(operator)} is not one of {', '.join(OPERATORS)}"
            )
        if operator in NULL_TESTS:
            if len(condition) == 3 and condition[2] is not None:
                raise SelectionError(
                    f"{at}: {operator!r} takes no value: ({column!r}, {operator!r})"
                )
            conditions.append(Condition(column, operator))
            continue
        if len(condition) != 3:
            raise SelectionError(
                f"{at}: {operator!r} needs a value: ({column!r}, {operator!r}, ...)"
            )
        value = condition[2]
        if operator in MEMBERSHIP:
            if not _is_sequence(value) or not value:
                raise SelectionError(f"{at}: {operator!r} needs a non-empty list of values")
            if len(value) > policy.max_where_values:
                raise SelectionError(
                    f"{at}: at most {policy.max_where_values} values in one list (policy "
                    "privacy_budget.max_where_values)"
                )
            literals = tuple(_literal(v, at, policy) for v in value)
            conditions.append(Condition(column, operator, literals))
            continue
        literal = _literal(value, at, policy)
        if operator in ORDERING and isinstance(literal, bool):
            raise SelectionError(f"{at}: a flag (True/False) is compared with == or != only")
        conditions.append(Condition(column, operator, literal))
    return tuple(conditions)


def _derivations(
    derive: Mapping[str, Any] | None, policy: PrivacyBudgetPolicy, identifier: str
) -> tuple[Derived, ...]:
    if derive is None:
        return ()
    example = (
        "derive={'age_band': ('band', 'age_at_offence', [18, 25, 35, 50]), "
        "'offence_year': ('year', 'offence_date')}"
    )
    if not isinstance(derive, Mapping):
        raise SelectionError(f"derive maps new column names to what they are, e.g. {example}")
    if len(derive) > policy.max_derived_columns:
        raise SelectionError(
            f"at most {policy.max_derived_columns} derived columns (policy "
            "privacy_budget.max_derived_columns)"
        )
    derived = []
    for name, spec in derive.items():
        if not isinstance(name, str) or not NAME.fullmatch(name) or name == identifier:
            raise SelectionError(
                f"derived column name {_shown(name)} is not allowed: use a lower-case word "
                "(letters, digits, '_'), e.g. 'age_band'"
            )
        at = f"derived column {name!r}"
        if not _is_sequence(spec) or not spec or spec[0] not in DERIVATIONS:
            raise SelectionError(
                f"{at} is {_shown(spec)}: give ('band', column, [edges]) or ('year', column), "
                f"e.g. {example}"
            )
        kind = spec[0]
        if kind == "year":
            if len(spec) != 2:
                raise SelectionError(f"{at}: a year is ('year', column)")
            derived.append(Derived(name, kind, _column_name(spec[1], at, identifier)))
            continue
        if len(spec) != 3 or not _is_sequence(spec[2]):
            raise SelectionError(f"{at}: a band is ('band', column, [edges])")
        edges = spec[2]
        if not edges or len(edges) > policy.max_where_values:
            raise SelectionError(
                f"{at}: a band needs 1 to {policy.max_where_values} edges (policy "
                "privacy_budget.max_where_values)"
            )
        numbers = []
        for edge in edges:
            number = as_edge(edge)
            if number is None:
                raise SelectionError(
                    f"{at}: band edges are numbers: finite numbers within about 1e308, not {_shown(edge)}"
                )
            numbers.append(number)
        if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
            raise SelectionError(f"{at}: band edges must increase strictly, got {numbers}")
        column = _column_name(spec[1], at, identifier)
        band = Derived(name, kind, column, tuple(numbers))
        try:
            band.labels()
        except DPQueryError as exc:
            raise SelectionError(f"{at}: {exc}") from None
        derived.append(band)
    return tuple(derived)


# ------------------------------------------------------------------ applying it
def _require_column(column: str, schema: Mapping[str, pl.DataType], where: str) -> pl.DataType:
    if column not in schema:
        names = ", ".join(list(schema)[:40])
        raise SelectionError(f"{where}: the dataset has no column {column!r}; it has {names}")
    return schema[column]


def _kind(dtype: pl.DataType) -> str:
    if dtype.is_numeric():
        return "number"
    if dtype == pl.Boolean:
        return "flag"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "text"
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return "date"
    if dtype == pl.Null:
        return "empty"
    return "other"


def _derive(derived: Derived, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    at = f"derived column {derived.name!r}"
    if derived.name in schema:
        raise SelectionError(f"{at}: the dataset already has a column of that name; choose another")
    kind = _kind(_require_column(derived.column, schema, at))
    source = pl.col(derived.column)
    if derived.kind == "band":
        if kind not in ("number", "empty"):
            raise SelectionError(f"{at}: a band is of a numeric column; {derived.column!r} is not")
        return (
            source.cast(pl.Float64, strict=False)
            .cut(list(derived.edges), labels=list(derived.labels()), left_closed=True)
            .cast(pl.String)
        )
    if kind == "date":
        return source.dt.year()
    raise SelectionError(f"{at}: a year is of a date column; {derived.column!r} is not a date")


def _typed(value: Any, kind: str, where: str, column: str) -> Any:
    """``value`` as the column's kind compares with, or ``SelectionError``."""
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind == "text" and isinstance(value, str):
        return value
    if kind == "flag" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise SelectionError(
                f"{where}: {column!r} is a date: compare with an ISO date such as '2024-01-31', "
                f"not {_shown(value)}"
            ) from exc
    wanted = {
        "number": "a number",
        "text": "text",
        "flag": "True or False",
        "date": "an ISO date text",
    }.get(kind)
    if wanted is None:
        raise SelectionError(f"{where}: {column!r} cannot be compared with values (only 'is null')")
    raise SelectionError(
        f"{where}: {column!r} holds {kind}s: compare it with {wanted}, not {_shown(value)}"
    )


def _as_one_numeric_type(
    column: pl.Expr, dtype: pl.DataType, values: list[Any], where: str
) -> tuple[pl.Expr, list[Any], pl.DataType]:
    """``column`` and ``values`` as one numeric type, so that polars compares them without a
    type error: whole numbers as Int64 when the column is whole and each fits, else Float64
    (mixed 1 and 2.5, or 2**70, compare as the numbers they are)."""
    low, high = I64_RANGE
    if dtype.is_integer() and all(isinstance(v, int) and low <= v <= high for v in values):
        return column, values, pl.Int64
    numbers = []
    for value in values:
        number = as_edge(value)
        if number is None:
            raise SelectionError(
                f"{where}: {_shown(value)} is too large to compare with (beyond about 1e308)"
            )
        numbers.append(number)
    return column.cast(pl.Float64), numbers, pl.Float64


def _condition(condition: Condition, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    at = f"where {condition.to_list()}"
    dtype = _require_column(condition.column, schema, at)
    kind = _kind(dtype)
    column = pl.col(condition.column)
    if kind == "date":
        column = column.cast(pl.Date)
    operator = condition.operator
    if operator == "is null":
        return column.is_null()
    if operator == "is not null":
        return column.is_not_null()
    if operator in ORDERING and kind == "flag":
        raise SelectionError(f"{at}: a flag (True/False) is compared with == or != only")
    listed = condition.value if operator in MEMBERSHIP else (condition.value,)
    values = [_typed(v, kind, at, condition.column) for v in listed]
    value_type = None
    if kind == "number":
        column, values, value_type = _as_one_numeric_type(column, dtype, values, at)
    if operator in MEMBERSHIP:
        member = column.is_in(values)
        return member if operator == "in" else column.is_not_null() & ~member
    value = pl.lit(values[0], dtype=value_type)
    return {
        "==": column == value,
        "!=": column != value,
        "<": column < value,
        "<=": column <= value,
        ">": column > value,
        ">=": column >= value,
    }[operator]


NAME_THE_DATASET = (
    "a DP query runs only on a dataset the environment holds, never on a frame or other data "
    "of yours: name the dataset and say which rows in the query, e.g. "
    "s.dp.count('linked/journeys', by=['court'], where=[('sex', '==', 'F'), "
    "('age_at_offence', '>=', 18)], derive={'age_band': ('band', 'age_at_offence', "
    "[18, 25, 35])}, rho=0.01)"
)


class DPDataRefused(DPQueryError):
    """A DP query was handed data instead of naming a dataset the environment holds."""


def refuse_frame(data: Any) -> str:
    """``data`` if it names a dataset; ``DPDataRefused`` saying how to write the query if it is
    a frame (or anything else): a DP query reads only data the environment holds."""
    if isinstance(data, str) and data:
        return data
    raise DPDataRefused(f"a {type(data).__name__} was given: {NAME_THE_DATASET}")

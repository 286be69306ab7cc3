"""Linkage roles and the mappings that give them: which column of each table holds the record
id, forename, surname, date of birth and the other identifiers.

A mapping comes from a data dictionary's ``linkage_role`` (:func:`mapping_from_dictionary`) or,
for tables no dictionary describes, from a mapping file (:func:`read_mapping_file`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from srs.pipeline.linkage.errors import LinkageError

# The roles a mapping gives columns; each becomes the standard column of the same name.
# ``address`` takes any number of columns, the address lines in order.
LINKAGE_COLUMNS = (
    "forename",
    "surname",
    "date_of_birth",
    "sex",
    "postcode",
    "pnc",
    "street_number",
    "address",
    "locality",
    "region",
)
# How a column a mapping adds under ``identifiers:`` is compared: exact; fuzzy (exact or
# Damerau-Levenshtein 1, for typed numbers); name (Jaro-Winkler, names folded to A-Z); text
# (Jaro-Winkler on words); date (exact, day/month swapped, one-digit typo, within a year).
IDENTIFIER_METHODS = ("exact", "fuzzy", "name", "text", "date")
# Standard columns `standardise` derives; an added identifier may not take their names.
_DERIVED_COLUMNS = (
    "unique_id",
    "source_dataset",
    "record_id",
    "forename_canonical",
    "birth_year",
    "address_sorted",
    "postcode_sector",
    "postcode_district",
    "postcode_area",
)


@dataclass(frozen=True)
class MappedIdentifier:
    """A column a mapping adds to the comparisons, and how it is compared."""

    column: str
    method: str = "exact"  # one of IDENTIFIER_METHODS
    date_format: str | None = None  # method date, when dates are text


@dataclass(frozen=True)
class SourceMapping:
    """Which column of one table plays each linkage role."""

    record_id: str
    # linkage role -> the table's column; ``address`` -> its lines (a column or a tuple)
    columns: dict[str, str | tuple[str, ...]]
    date_format: str | None = None  # when dates are text
    identifiers: dict[str, MappedIdentifier] = field(default_factory=dict)

    def address_lines(self) -> tuple[str, ...]:
        """The address columns in order (none when the table has no address)."""
        lines = self.columns.get("address", ())
        return (lines,) if isinstance(lines, str) else tuple(lines)

    def source_columns(self) -> list[str]:
        """Every column of the table the mapping names."""
        roles = [c for role, c in self.columns.items() if role != "address"]
        extra = [i.column for i in self.identifiers.values()]
        return [self.record_id, *roles, *self.address_lines(), *extra]


def mapping_from_dictionary(dictionary) -> SourceMapping:  # noqa: ANN001 - srs.pipeline.ingest.DataDictionary
    """The linkage mapping a data dictionary declares through ``linkage_role``.

    Every role is on one column, except ``address``: the columns given it are the address
    lines, in the dictionary's order.
    """
    where = f"data dictionary {dictionary.source}"
    roles: dict[str, list[str]] = {}
    for column in dictionary.columns:
        if column.linkage_role:
            roles.setdefault(column.linkage_role, []).append(column.name)
    for role, names in roles.items():
        if len(names) > 1 and role != "address":
            raise LinkageError(
                f"{where}: linkage_role {role} is on columns {', '.join(names)}; give it to "
                "one column (only address may be on several, the address lines in order)"
            )
    if "record_id" not in roles:
        raise LinkageError(f"{where}: no column has linkage_role record_id; give it to one")
    columns = {
        role: tuple(names) if role == "address" else names[0]
        for role, names in roles.items()
        if role in LINKAGE_COLUMNS
    }
    date_column = columns.get("date_of_birth")
    date_format = dictionary.column(date_column).format if date_column else None
    return SourceMapping(record_id=roles["record_id"][0], columns=columns, date_format=date_format)


def read_mapping_file(path: Path) -> dict[str, SourceMapping]:
    """A mapping file for arbitrary tables::

    tables:
      crm:
        record_id: id
        forename: first
        surname: last
        date_of_birth: dob
        date_format: "%d/%m/%Y"
        address: [line_1, line_2]          # the address lines, any number, in order
        street_number: house_no
        locality: town
        region: county
        identifiers:                       # any other columns, each with its comparison
          nhs_number: nhs_no               # exact, by default
          ssn: {column: soc_sec_id, method: fuzzy}
          birth_place: {column: born_in, method: text}

    An identifier's method is one of exact, fuzzy, name, text, date (with its own
    ``date_format``).
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LinkageError(f"cannot read the mapping file {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        raise LinkageError(
            f"{path}: expected a mapping with a `tables:` section, one entry per table"
        )
    return {
        str(name): _table_mapping(spec, f"{path}: table {name!r}")
        for name, spec in data["tables"].items()
    }


def _column_name(value: object, where: str, role: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()  # headers are matched trimmed too (see trimmed_headers)
    if value is None or value == "" or value == []:
        raise LinkageError(
            f"{where}: {role} has no column; give the column's name, or remove {role}"
        )
    raise LinkageError(f"{where}: {role} must be a column name, not {value!r}")


def _table_mapping(spec: object, where: str) -> SourceMapping:
    """One table's entry of a mapping file, checked."""
    if not isinstance(spec, dict) or "record_id" not in spec:
        raise LinkageError(f"{where} needs at least record_id and one identifier column")
    known = {"record_id", "date_format", "identifiers", *LINKAGE_COLUMNS}
    unknown = sorted(str(key) for key in set(spec) - known)
    if unknown:
        raise LinkageError(
            f"{where} has unknown role(s) {', '.join(unknown)}; roles are record_id, "
            f"date_format, {', '.join(LINKAGE_COLUMNS)}, and identifiers: for any other "
            "column (name: {column: ..., method: exact|fuzzy|name|text|date})"
        )
    record_id = _column_name(spec["record_id"], where, "record_id")
    columns: dict[str, str | tuple[str, ...]] = {}
    for role in LINKAGE_COLUMNS:
        if role not in spec:
            continue
        value = spec[role]
        if role == "address" and isinstance(value, list) and value:
            columns[role] = tuple(_column_name(v, where, "an address line") for v in value)
        else:
            columns[role] = _column_name(value, where, role)
    identifiers = _mapped_identifiers(spec.get("identifiers"), where)
    if not columns and not identifiers:
        raise LinkageError(
            f"{where} maps only record_id; map at least one identifier column too "
            f"({', '.join(LINKAGE_COLUMNS)}, or identifiers:)"
        )
    date_format = spec.get("date_format")
    if date_format is not None and not isinstance(date_format, str):
        raise LinkageError(f"{where}: date_format must be text such as '%d/%m/%Y'")
    mapping = SourceMapping(record_id, columns, date_format, identifiers)
    given: dict[str, str] = {}
    labels = [
        *((role, c) for role, c in columns.items() if role != "address"),
        *(("address", c) for c in mapping.address_lines()),
        *((f"identifiers.{n}", i.column) for n, i in identifiers.items()),
    ]
    for label, column in labels:
        if column in given:
            raise LinkageError(
                f"{where}: column {column!r} is given to both {given[column]} and {label}; "
                "give each role its own column"
            )
        given[column] = label
    return mapping


def _mapped_identifiers(spec: object, where: str) -> dict[str, MappedIdentifier]:
    """The ``identifiers:`` of one table's mapping, checked."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise LinkageError(
            f"{where}: identifiers must map names to columns, e.g. "
            "identifiers: {{ssn: {{column: soc_sec_id, method: fuzzy}}}}"
        )
    identifiers = {}
    for name, entry in spec.items():
        label = f"identifier {name!r}"
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise LinkageError(
                f"{where}: {label} needs a name of lower-case letters, digits and _ "
                "(it becomes a column of the comparison)"
            )
        if name in LINKAGE_COLUMNS or name in _DERIVED_COLUMNS:
            raise LinkageError(
                f"{where}: {label} takes the name of a standard column; map it as the role "
                f"{name} or give the identifier another name"
            )
        if not isinstance(entry, dict):
            entry = {"column": entry}
        extra = sorted(str(k) for k in set(entry) - {"column", "method", "date_format"})
        if extra:
            raise LinkageError(
                f"{where}: {label} has unknown key(s) {', '.join(extra)}; "
                "give column, method and (for dates) date_format"
            )
        method = entry.get("method", "exact")
        if method not in IDENTIFIER_METHODS:
            raise LinkageError(
                f"{where}: {label} has method {method!r}; use one of "
                f"{', '.join(IDENTIFIER_METHODS)}"
            )
        date_format = entry.get("date_format")
        if date_format is not None and (method != "date" or not isinstance(date_format, str)):
            raise LinkageError(f"{where}: {label}: date_format is text, for method date only")
        identifiers[name] = MappedIdentifier(
            _column_name(entry.get("column"), where, label), method, date_format
        )
    return identifiers


def trimmed_headers(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its column names trimmed (unchanged if trimming would make two alike)."""
    # Files written "a, b, c" carry a space before each header; the mapping names them bare.
    trimmed = [c.strip() if isinstance(c, str) else c for c in frame.columns]
    if trimmed == list(frame.columns) or len(set(trimmed)) < len(trimmed):
        return frame
    return frame.set_axis(trimmed, axis=1)

"""Person linkage with Splink: standardise identifiers, train, predict, cluster, evaluate.

Works on any two or more tables given a column mapping (which column holds the record id,
forename, surname, date of birth, sex, postcode, police number, address lines, street number,
locality and region, plus any other identifiers the mapping adds with a comparison method);
for our sources the mapping comes from the data dictionaries' ``linkage_role``. Settings are
declarative (``policies/linkage.yaml``). The result is a lookup from every source record to a
cluster of records that are the same person; keyed pseudonyms are made from it by
``srs.pipeline.deid``. All of this runs in the steward zone: inputs carry direct identifiers.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from anyascii import anyascii
from pydantic import Field, ValidationError

from disclosure.policy import PolicyModel
from srs.errors import SRSError
from srs.governance.policy import PolicyError, default_policy_dir
from srs.pipeline.names import canonical_forenames

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


class LinkageError(SRSError):
    """Linkage cannot run as asked (bad mapping, too few tables, unknown backend)."""


class ComparisonSpec(PolicyModel):
    """One comparison of the model: which column, and how two values are compared.

    Methods: ``exact``; ``fuzzy`` (exact, then Damerau-Levenshtein distances); ``name`` and
    ``text`` (exact, then Jaro-Winkler similarities); ``date`` (exact, day and month swapped,
    one-digit typo, within a year); ``postcode`` (exact, UK sector, district and area, then
    Damerau-Levenshtein distances).
    """

    column: str
    method: Literal["name", "text", "date", "postcode", "exact", "fuzzy"]
    # A second form of the value that counts as the same: the forename's usual form (Bill ->
    # WILLIAM), the address lines in any order.
    canonical_column: str | None = None
    # name: a level for this column and that one swapped (forename and surname transposed).
    swapped_with: str | None = None
    jaro_winkler: list[float] = Field(default_factory=lambda: [0.92, 0.8])
    damerau_levenshtein: list[int] = Field(default_factory=lambda: [1])
    term_frequency: bool = False


class TrainingSpec(PolicyModel):
    """How the model is trained without labels."""

    deterministic_rules: list[list[str]] = Field(min_length=1)
    deterministic_recall: float = Field(gt=0, le=1)
    u_max_pairs: int = Field(ge=10_000)
    em_blocking: list[list[str]] = Field(min_length=1)
    max_records: int = Field(default=250_000, ge=1000)
    seed: int = 42


class ComparisonBudgetSpec(PolicyModel):
    """The most record pairs the blocking rules may make in one run (``srs.pipeline.linkage.blocking``).

    The budget is ``max_comparisons``, or ``max_per_record`` times the number of records when
    that is smaller; linkage refuses before training when the rules would make more.
    """

    max_comparisons: int = Field(default=200_000_000, ge=1)
    max_per_record: float | None = Field(default=None, gt=0)

    def limit(self, records: int) -> int:
        """The budget, in comparisons, for ``records`` records."""
        if self.max_per_record is None:
            return self.max_comparisons
        return min(self.max_comparisons, int(self.max_per_record * records))


class ClericalReviewSpec(PolicyModel):
    """Which pairs count as borderline, and how many a steward reviews."""

    low: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)
    sample_size: int = Field(ge=0)


class MissingValuesSpec(PolicyModel):
    """Values that mean "not recorded": they become missing, so they never agree.

    Compared after trimming, case-insensitively (and after the role's own cleaning, so ``N/A``
    also catches ``n / a``); blanks and whitespace are always missing. ``any_role`` applies to
    every role, the others to one role only (``"0"`` is a placeholder for an identifier, not a
    name).
    """

    any_role: list[str] = Field(default_factory=list)
    forename: list[str] = Field(default_factory=list)
    surname: list[str] = Field(default_factory=list)
    date_of_birth: list[str] = Field(default_factory=list)
    sex: list[str] = Field(default_factory=list)
    postcode: list[str] = Field(default_factory=list)
    pnc: list[str] = Field(default_factory=list)
    street_number: list[str] = Field(default_factory=list)
    address: list[str] = Field(default_factory=list)  # compared line by line
    locality: list[str] = Field(default_factory=list)
    region: list[str] = Field(default_factory=list)
    identifiers: list[str] = Field(default_factory=list)  # every identifier a mapping adds

    def for_role(self, role: str) -> frozenset[str]:
        """The placeholders of ``role`` in the form values are compared in."""
        own = getattr(self, role) if role in LINKAGE_COLUMNS else self.identifiers
        values = [*self.any_role, *own]
        return frozenset(text for text in map(_text, values) if text)


class StandardisationSpec(PolicyModel):
    """How source values are made comparable before linkage."""

    missing_values: MissingValuesSpec = Field(default_factory=MissingValuesSpec)
    # A date column where more than this share of the non-blank values is not a date in the
    # declared format is refused (the format is wrong), not linked with dates missing.
    max_unparsable_date_share: float = Field(default=0.5, ge=0, le=1)


class LinkageSettings(PolicyModel):
    """The whole declarative linkage configuration (``policies/linkage.yaml``)."""

    standardisation: StandardisationSpec = Field(default_factory=StandardisationSpec)

    backend: Literal["duckdb", "spark"] = "duckdb"
    # dedupe_only treats all tables as one list (every pair of records is compared, within
    # and across tables); link_only compares only records of different tables;
    # link_and_dedupe compares every pair but keeps each record's table.
    link_type: Literal["dedupe_only", "link_only", "link_and_dedupe"] = "dedupe_only"
    comparisons: list[ComparisonSpec] = Field(min_length=1)
    blocking_rules: list[list[str]] = Field(min_length=1)
    comparison_budget: ComparisonBudgetSpec = Field(default_factory=ComparisonBudgetSpec)
    training: TrainingSpec
    match_threshold: float = Field(gt=0, lt=1)
    # A pair is linked only when something besides the names backs it: a level of another
    # comparison with at least this Bayes factor (m/u). Names alone, however rare, leave a pair
    # for clerical review. 0 turns the rule off.
    min_corroborating_bayes_factor: float = Field(default=5.0, ge=0)
    clerical_review: ClericalReviewSpec


def load_linkage_settings(policy_dir: Path | None = None) -> LinkageSettings:
    """Load and validate ``linkage.yaml``."""
    path = (policy_dir or default_policy_dir()) / "linkage.yaml"
    try:
        return LinkageSettings.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise PolicyError("missing; it must hold the Splink linkage settings", file=path) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        raise PolicyError(
            error["msg"], file=path, key=".".join(str(p) for p in error["loc"])
        ) from None


def override_settings(settings: LinkageSettings, overrides: object, where: str) -> LinkageSettings:
    """``settings`` with the keys of ``overrides`` replaced, validated as ``linkage.yaml`` is.

    Sections merge key by key (``training: {seed: 7}`` keeps the other training keys); lists
    are replaced whole. ``where`` names the source of the overrides in errors (a settings file,
    a command-line option). An unknown key is refused, named.
    """
    if overrides is None:
        raise LinkageError(f"{where} is empty; give the keys of linkage.yaml to change")
    if not isinstance(overrides, dict):
        raise LinkageError(
            f"{where}: expected keys of linkage.yaml (e.g. match_threshold: 0.95), "
            f"not {type(overrides).__name__}"
        )

    def merge(base: dict, changes: dict) -> dict:
        merged = dict(base)
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merged[key] = merge(base[key], value)
            else:
                merged[key] = value
        return merged

    try:
        return LinkageSettings.model_validate(merge(settings.model_dump(), overrides))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            raise LinkageError(
                f"{where}: {key!r} is not a linkage setting; the keys are those of "
                "policies/linkage.yaml (check the spelling and the section it is under)"
            ) from None
        raise LinkageError(f"{where}: {key}: {error['msg']}") from None


def read_settings_file(settings: LinkageSettings, path: Path) -> LinkageSettings:
    """``settings`` overridden by the keys of a YAML file (see :func:`override_settings`)."""
    try:
        overrides = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LinkageError(f"cannot read the settings file {path}: {exc}") from exc
    return override_settings(settings, overrides, f"settings file {path}")


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
        return value.strip()  # headers are matched trimmed too (see _trimmed_headers)
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


# ---------------------------------------------------------------- standardisation
# UK postcode shape (outward code, inward code) once spaces are removed; only codes of this
# shape get a sector, district and area, so codes of other countries never agree on a part.
# Groups: district (outward code), area, sector digit, unit.
_UK_POSTCODE = re.compile(r"^(([A-Z]{1,2})[0-9][A-Z0-9]?)([0-9])([A-Z]{2})$")
# Formats tried on the values the declared date format cannot read, to name a second format.
_OTHER_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y%m%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%d %b %Y",
    "%d-%b-%Y",
)
_SHOWN_VALUES = 20  # distinct unparsable values listed in a note


def _text(value: object) -> str | None:
    """A value as trimmed, upper-case ASCII text with single spaces; None when blank."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = " ".join(anyascii(str(value)).upper().split())
    return text or None


def _name(text: str) -> str | None:
    # Separators (space, hyphen, apostrophe, dot) are dropped, so Smith-Jones, Smith Jones and
    # SMITHJONES agree exactly and O'Neil equals ONeil; a dropped part still scores by
    # Jaro-Winkler. Letters outside A-Z were already folded (José -> JOSE, Иван -> IVAN).
    return re.sub(r"[^A-Z]", "", text) or None


def _postcode(text: str) -> str | None:
    compact = re.sub(r"[^A-Z0-9]", "", text)
    uk = _UK_POSTCODE.match(compact)
    return f"{uk[1]} {uk[3]}{uk[4]}" if uk else (compact or None)


def _identifier(text: str) -> str | None:
    compact = text.replace(" ", "")
    # 0, 000000, 0/0: a system's way of saying "none", never a shared identifier.
    return None if re.fullmatch(r"[0\W_]*", compact) else compact


def _sex(text: str) -> str | None:
    return text[:1] if text[:1].isalpha() else None


def _words(text: str) -> str | None:
    # Addresses and places: punctuation is a word break (St. Mary's -> ST MARY S), so
    # "12-14 High St." and "12 14 HIGH ST" agree.
    return " ".join(re.sub(r"[^A-Z0-9]+", " ", text).split()) or None


def _house_number(text: str) -> str | None:
    compact = re.sub(r"[^A-Z0-9]", "", text)
    return None if re.fullmatch(r"0*", compact) else compact


_ROLE_CLEANERS: dict[str, Callable[[str], str | None]] = {
    "forename": _name,
    "surname": _name,
    "postcode": _postcode,
    "pnc": _identifier,
    "sex": _sex,
    "street_number": _house_number,
    "address": _words,
    "locality": _words,
    "region": _words,
}
# How an identifier a mapping adds is cleaned, by its method (dates are parsed instead).
_METHOD_CLEANERS: dict[str, Callable[[str], str | None]] = {
    "exact": _identifier,
    "fuzzy": _identifier,
    "name": _name,
    "text": _words,
}
# The comparison an added identifier gets, by its method.
_METHOD_COMPARISONS = {
    "exact": {"method": "exact"},
    "fuzzy": {"method": "fuzzy", "damerau_levenshtein": [1]},
    "name": {"method": "name", "jaro_winkler": [0.92, 0.8]},
    "text": {"method": "text", "jaro_winkler": [0.92, 0.8]},
    "date": {"method": "date"},
}


def _clean(
    values: pd.Series,
    role: str,
    placeholders: frozenset[str],
    cleaner: Callable[[str], str | None] | None = None,
) -> pd.Series:
    """Values of one role in their comparable form; blanks and placeholders become None."""
    cleaner = cleaner or _ROLE_CLEANERS[role]
    cleaned_placeholders = {cleaner(p) for p in placeholders} - {None}

    def clean(value: object) -> str | None:
        text = _text(value)
        if text is None or text in placeholders:
            return None
        cleaned = cleaner(text)
        return None if cleaned in cleaned_placeholders else cleaned

    # Each distinct value is cleaned once: names and postcodes repeat a great deal.
    distinct = pd.Series(values.to_numpy(dtype=object)).drop_duplicates()
    cleaned = {v: clean(v) for v in distinct if v is not None and not pd.isna(v)}
    return pd.Series(
        [cleaned.get(v) if v is not None and not pd.isna(v) else None for v in values],
        index=values.index,
        dtype=object,
    )


def _postcode_parts(postcodes: pd.Series) -> pd.DataFrame:
    """UK sector, district and area of each postcode (None for codes not UK-shaped)."""
    parts = postcodes.str.replace(" ", "").str.extract(_UK_POSTCODE)
    parts = parts.astype(object).where(parts.notna(), None)
    sector = [f"{d} {s}" if d else None for d, s in zip(parts[0], parts[2], strict=True)]
    return pd.DataFrame(
        {"postcode_sector": sector, "postcode_district": parts[0], "postcode_area": parts[1]},
        index=postcodes.index,
    )


def _show_values(values: pd.Series) -> str:
    counts = values.value_counts()
    shown = ", ".join(f"{v!r} ({n})" for v, n in counts.head(_SHOWN_VALUES).items())
    more = len(counts) - _SHOWN_VALUES
    return shown + (f" and {more} other value(s)" if more > 0 else "")


def _parse_dates(
    values: pd.Series,
    date_format: str | None,
    where: str,
    placeholders: frozenset[str],
    refuse_above: float,
    notes: list[str],
) -> pd.Series:
    """Dates of birth as YYYY-MM-DD text; refuses a wrong or a second format (see README)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        iso = values.dt.strftime("%Y-%m-%d").astype(object)
        return iso.where(values.notna() & ~iso.isin(placeholders), None)
    # Dates already typed (date, datetime, Timestamp objects) need no format.
    typed = pd.Series([hasattr(v, "isoformat") for v in values], index=values.index)
    text = values.where(~typed).map(_text, na_action="ignore")
    text = text.astype(object).where(text.notna() & ~text.isin(placeholders), None)
    given = text.dropna()
    parsed = pd.to_datetime(text.astype("string"), format=date_format, errors="coerce")
    if typed.any():
        parsed[typed] = pd.to_datetime(values[typed], errors="coerce")
    failed = given[parsed[given.index].isna()]
    # Shown as the source holds them (trimmed), for the steward to find in the file.
    as_given = values[failed.index].astype(str).str.strip()
    named = date_format or "inferred from the first value"
    if len(failed):
        second = {
            other: int(pd.to_datetime(failed, format=other, errors="coerce").notna().sum())
            for other in _OTHER_DATE_FORMATS
            if other != date_format
        }
        other, read = max(second.items(), key=lambda item: item[1])
        if read and read * 2 > len(failed):
            raise LinkageError(
                f"{where}: {len(failed):,} of {len(given):,} values are not dates in the format "
                f"{named} (e.g. {as_given.iloc[0]!r}) but {read:,} of them read as {other}; "
                "a column must hold one format: set date_format in the mapping to the one the "
                "column uses, or convert the other values to it first"
            )
        if len(failed) > refuse_above * len(given):
            raise LinkageError(
                f"{where}: {len(failed):,} of {len(given):,} values are not dates in the format "
                f"{named} (e.g. {as_given.iloc[0]!r}); check date_format in the mapping"
            )
        notes.append(
            f"{where}: {len(failed):,} value(s) are not dates in the format {named} and are "
            f"treated as missing: {_show_values(as_given)}"
        )
    result = parsed.dt.strftime("%Y-%m-%d").astype(object)
    result = result.where(parsed.notna() & ~result.isin(placeholders), None)
    return pd.Series(result.to_numpy(), index=values.index, dtype=object)


def standardise(
    tables: dict[str, pd.DataFrame],
    mappings: dict[str, SourceMapping],
    settings: LinkageSettings | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """One table of standard linkage columns, a row per source record, keyed ``unique_id``.

    Names are folded to upper-case ASCII letters (José -> JOSE, Łukasz -> LUKASZ, Иван -> IVAN;
    Smith-Jones -> SMITHJONES), postcodes spaced the UK way when UK-shaped (sw1a1aa ->
    SW1A 1AA) and kept as upper-case letters and digits otherwise, and blanks and the
    placeholders of ``settings.standardisation`` (UNKNOWN, N/A, ...) become missing, so two
    records never agree on a value neither holds. Values that are not dates in the declared
    format are listed in ``notes``; a column where most fail, or that holds a second format,
    raises :class:`LinkageError`.
    """
    settings = settings or load_linkage_settings()
    rules = settings.standardisation
    notes = notes if notes is not None else []
    if not tables or sum(len(t) for t in tables.values()) == 0:
        raise LinkageError("the tables hold no records; give at least one table with rows")
    if settings.link_type == "link_only" and len(tables) < 2:
        raise LinkageError(
            "link_type link_only compares records of different tables only, and there is one "
            "table; give two or more tables, or use dedupe_only to find duplicates in one"
        )
    empty = [name for name, frame in tables.items() if len(frame) == 0]
    if settings.link_type == "link_only" and len(tables) - len(empty) < 2:
        raise LinkageError(
            f"link_type link_only compares records of different tables, and table(s) "
            f"{', '.join(map(repr, empty))} hold no records (a header only); give two or more "
            "tables with records"
        )
    identifiers = _identifier_methods(mappings, tables)
    nick = canonical_forenames()
    parts = []
    for name, frame in tables.items():
        if name not in mappings:
            raise LinkageError(f"no column mapping for table {name!r}")
        mapping = mappings[name]
        frame = _trimmed_headers(frame).reset_index(drop=True)  # aligned by position
        missing = [c for c in mapping.source_columns() if c not in frame.columns]
        if missing:
            raise LinkageError(
                f"table {name!r} has no column(s) {', '.join(missing)} named in its mapping"
            )
        record_ids = frame[mapping.record_id]
        no_id = int((record_ids.isna() | record_ids.astype(str).str.strip().eq("")).sum())
        if no_id:  # else they would all be the record "nan"
            raise LinkageError(
                f"table {name!r}: {no_id:,} record(s) have no record id in column "
                f"{mapping.record_id!r}; every record needs one"
            )
        part = pd.DataFrame({"source_dataset": name, "record_id": record_ids.astype(str)})
        for role in LINKAGE_COLUMNS:
            column = mapping.columns.get(role)
            if role == "address":
                continue  # its lines are joined below
            if not column:
                part[role] = None
            elif role == "date_of_birth":
                part[role] = frame[column].to_numpy()  # parsed below
            else:
                part[role] = _clean(frame[column], role, rules.missing_values.for_role(role))
        part["forename_canonical"] = part["forename"].map(
            lambda v: nick.get(v, v) if isinstance(v, str) else None
        )
        column = mapping.columns.get("date_of_birth")
        part["date_of_birth"] = _parse_dates(
            part["date_of_birth"],
            mapping.date_format,
            f"table {name!r}, date of birth column {column!r}",
            rules.missing_values.for_role("date_of_birth"),
            rules.max_unparsable_date_share,
            notes,
        )
        part["birth_year"] = part["date_of_birth"].str[:4]
        lines = [
            _clean(frame[c], "address", rules.missing_values.for_role("address"))
            for c in mapping.address_lines()
        ]
        part["address"] = _joined(lines, sort=False, index=part.index)
        part["address_sorted"] = _joined(lines, sort=True, index=part.index)
        for identifier in identifiers:
            given = mapping.identifiers.get(identifier)
            part[identifier] = (
                None
                if given is None
                else _identifier_values(frame[given.column], identifier, given, name, rules, notes)
            )
        parts.append(part)
    combined = pd.concat(parts, ignore_index=True)
    combined.insert(0, "unique_id", combined["source_dataset"] + ":" + combined["record_id"])
    if combined["unique_id"].duplicated().any():
        example = combined.loc[combined["unique_id"].duplicated(), "unique_id"].iloc[0]
        raise LinkageError(f"record ids must be unique within a table; {example} appears twice")
    combined = pd.concat([combined, _postcode_parts(combined["postcode"].astype("string"))], axis=1)
    for column in (
        *LINKAGE_COLUMNS,
        "forename_canonical",
        "birth_year",
        "address_sorted",
        *identifiers,
    ):
        combined[column] = combined[column].astype(object).where(combined[column].notna(), None)
    _drop_shared_placeholders(
        combined,
        ["pnc", *(i for i, method in identifiers.items() if method in ("exact", "fuzzy"))],
        notes,
    )
    from srs.pipeline.linkage.blocking import add_blocking_keys  # it builds on this module

    records = add_blocking_keys(combined)
    # For the run's notes: a role no table maps is left out without a word (see
    # _without_empty_columns); a mapped column with no value at all is reported.
    records.attrs["unmapped_roles"] = [
        role for role in LINKAGE_COLUMNS if not any(m.columns.get(role) for m in mappings.values())
    ]
    return records


# An identifier value held by at least this many records is checked for being a placeholder.
_SHARED_IDENTIFIER_MIN_RECORDS = 10


def _drop_shared_placeholders(records: pd.DataFrame, columns: list[str], notes: list[str]) -> None:
    """Identifier values that many different people hold become missing, with a note.

    A person's own number repeats over their records (a prolific offender's police number may
    be on hundreds), but their records mostly agree on date of birth and surname. A value
    whose records mostly disagree on both, like ``0000/0000000A`` typed when the number was not
    known, is a placeholder no policy list named; left in, it would block and agree thousands
    of strangers together. Changes ``records`` in place.
    """
    for column in columns:
        if column not in records.columns:
            continue
        values = records[column]
        counts = values.value_counts()
        candidates = counts[counts >= _SHARED_IDENTIFIER_MIN_RECORDS].index
        if len(candidates) == 0:
            continue
        held = records[values.isin(candidates)]
        shared = []
        for value, group in held.groupby(column, sort=False):
            modal_shares = [
                group[other].value_counts(normalize=True).iloc[0]
                for other in ("date_of_birth", "surname")
                if group[other].notna().sum() >= _SHARED_IDENTIFIER_MIN_RECORDS
            ]
            if modal_shares and max(modal_shares) < 0.5:
                shared.append(value)
        if shared:
            taken = values.isin(shared)
            records.loc[taken, column] = None
            notes.append(
                f"{column}: {len(shared):,} value(s) held by {int(taken.sum()):,} records of "
                "mostly different dates of birth and surnames taken as placeholders (made "
                "missing); add them to standardisation.missing_values if they mean 'not known'"
            )


def _trimmed_headers(frame: pd.DataFrame) -> pd.DataFrame:
    # Files written "a, b, c" carry a space before each header; the mapping names them bare.
    trimmed = [c.strip() if isinstance(c, str) else c for c in frame.columns]
    if trimmed == list(frame.columns) or len(set(trimmed)) < len(trimmed):
        return frame
    return frame.set_axis(trimmed, axis=1)


def _joined(lines: list[pd.Series], sort: bool, index: pd.Index) -> pd.Series:
    """Address lines as one text, blank lines skipped (``sort``: lines in any order agree)."""
    if not lines:
        return pd.Series(None, index=index, dtype=object)
    rows = zip(*(line.to_numpy() for line in lines), strict=True)
    joined = []
    for row in rows:
        given = [line for line in row if isinstance(line, str)]
        joined.append(" ".join(sorted(given) if sort else given) or None)
    return pd.Series(joined, index=index, dtype=object)


def _identifier_methods(
    mappings: dict[str, SourceMapping], tables: dict[str, pd.DataFrame]
) -> dict[str, str]:
    """Each identifier the mappings add, with its method (one method in every table)."""
    methods: dict[str, tuple[str, str]] = {}
    for name, mapping in mappings.items():
        if name not in tables:
            continue
        for identifier, given in mapping.identifiers.items():
            first = methods.setdefault(identifier, (name, given.method))
            if first[1] != given.method:
                raise LinkageError(
                    f"identifier {identifier!r} is compared by method {first[1]} in table "
                    f"{first[0]!r} but {given.method} in table {name!r}; give it one method"
                )
    return {identifier: method for identifier, (_, method) in methods.items()}


def _identifier_values(
    values: pd.Series,
    identifier: str,
    given: MappedIdentifier,
    table: str,
    rules: StandardisationSpec,
    notes: list[str],
) -> pd.Series:
    placeholders = rules.missing_values.for_role(identifier)
    if given.method == "date":
        return _parse_dates(
            values,
            given.date_format,
            f"table {table!r}, identifier {identifier!r} column {given.column!r}",
            placeholders,
            rules.max_unparsable_date_share,
            notes,
        )
    return _clean(values, identifier, placeholders, _METHOD_CLEANERS[given.method])


def identifier_comparisons(
    settings: LinkageSettings, mappings: dict[str, SourceMapping], records: pd.DataFrame
) -> LinkageSettings:
    """``settings`` with a comparison for each identifier the mappings add.

    An exact or fuzzy identifier that pairs few records (at most ten pairs per record: a
    person's own number, not a category) is also a blocking rule, as the police number is.
    """
    methods = _identifier_methods(mappings, {name: None for name in mappings})
    if not methods:
        return settings
    comparisons = [
        ComparisonSpec(column=identifier, **_METHOD_COMPARISONS[method])
        for identifier, method in methods.items()
    ]
    blocking = [
        [identifier]
        for identifier, method in methods.items()
        if method in ("exact", "fuzzy")
        and identifier in records.columns
        and _pairs(records[identifier].value_counts()) <= 10 * len(records)
    ]
    known = [rule for rule in settings.blocking_rules if rule not in blocking]
    return settings.model_copy(
        update={
            "comparisons": [*settings.comparisons, *comparisons],
            "blocking_rules": [*known, *blocking],
        }
    )


# ---------------------------------------------------------------- Splink
def _comparison(spec: ComparisonSpec):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    column = spec.column
    if spec.method == "exact":
        return cl.ExactMatch(column).configure(term_frequency_adjustments=spec.term_frequency)
    levels = [
        cll.NullLevel(column),
        cll.ExactMatchLevel(column, term_frequency_adjustments=spec.term_frequency),
    ]
    if spec.method == "postcode":
        # Splink's PostcodeComparison levels, on the parts `standardise` derives: they are null
        # for codes that are not UK-shaped, so such codes agree exactly or by a typo only.
        levels[1].configure(label_for_charts="Exact match on full postcode")
        levels += [
            cll.ExactMatchLevel(f"{column}_{part}").configure(
                label_for_charts=f"Exact match on {part}"
            )
            for part in ("sector", "district", "area")
        ]
    elif spec.method == "date":
        left, right = f"{column}_l", f"{column}_r"
        swapped = (
            f"substr({left}, 1, 4) = substr({right}, 1, 4) AND substr({left}, 6, 2) = substr({right}, 9, 2) "
            f"AND substr({left}, 9, 2) = substr({right}, 6, 2)"
        )
        return cl.CustomComparison(
            output_column_name=column,
            comparison_levels=[
                *levels,
                cll.CustomLevel(swapped, label_for_charts="day and month swapped"),
                cll.DamerauLevenshteinLevel(column, 1),
                cll.AbsoluteDateDifferenceLevel(
                    column, input_is_string=True, threshold=1, metric="year"
                ),
                cll.ElseLevel(),
            ],
        )
    if spec.canonical_column:
        label = "same name or nickname" if spec.method == "name" else "same in another order"
        levels.append(cll.ExactMatchLevel(spec.canonical_column).configure(label_for_charts=label))
    if spec.swapped_with:
        # Forename and surname transposed. The level sits in both name comparisons, so a
        # swapped pair scores as if both names agreed; EM trains it on the pairs blocked by
        # date of birth (see training.em_blocking).
        levels.append(
            cll.ColumnsReversedLevel(column, spec.swapped_with, symmetrical=True).configure(
                label_for_charts=f"{column} and {spec.swapped_with} swapped"
            )
        )
    if spec.method in ("name", "text"):
        levels += [cll.JaroWinklerLevel(column, threshold) for threshold in spec.jaro_winkler]
    else:  # fuzzy, postcode: typed codes and numbers, where one slip is the usual error
        levels += [
            cll.DamerauLevenshteinLevel(column, distance) for distance in spec.damerau_levenshtein
        ]
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(output_column_name=column, comparison_levels=levels)


def splink_settings(settings: LinkageSettings):
    """Splink's ``SettingsCreator`` for our declarative settings."""
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type=settings.link_type,
        unique_id_column_name="unique_id",
        comparisons=[_comparison(spec) for spec in settings.comparisons],
        blocking_rules_to_generate_predictions=[
            block_on(*rule) for rule in settings.blocking_rules
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=True,
    )


def database_api(backend: str):
    """The Splink database API for ``backend``.

    ``spark`` runs on the Spark session already running in this process when there is one;
    otherwise on a session started on the master named by ``SRS_SPARK_MASTER`` (a cluster:
    ``spark://host:7077``, ``yarn``, ``k8s://https://host:443``; or ``local[8]``), or on a
    small local session (``local[2]``) when that is unset. On a cluster, Splink writes its
    intermediate tables under ``SRS_SPARK_CHECKPOINT_DIR``, a folder every executor reaches.
    """
    if backend == "duckdb":
        import tempfile

        import duckdb
        from splink import DuckDBAPI

        # DuckDB spills what does not fit in memory to `.tmp` in the working folder by default:
        # names and dates of birth, unencrypted, wherever the steward happened to run the
        # command. A private folder (mode 0700) of the system's temporary area instead.
        spill = tempfile.mkdtemp(prefix="srs-linkage-")
        return DuckDBAPI(connection=duckdb.connect(config={"temp_directory": spill}))
    if backend == "spark":
        return _spark_api()
    raise LinkageError(f"unknown linkage backend {backend!r}; use duckdb or spark")


SPARK_MASTER_VARIABLE = "SRS_SPARK_MASTER"
SPARK_CHECKPOINT_VARIABLE = "SRS_SPARK_CHECKPOINT_DIR"
_LOCAL_SPARK_MASTER = "local[2]"
# The master URLs Spark takes; checked first, since spark-submit answers any other with a Java
# stack trace and PySpark with "Java gateway process exited".
_SPARK_MASTER_URL = re.compile(r"local(\[(\d+|\*)(,\d+)?\])?|yarn|(spark|k8s)://.+")
# Shuffles of a local session: Spark's 200 partitions would make thousands of tiny tasks.
_LOCAL_SHUFFLE_PARTITIONS = 8
# Spark sessions database_api started itself; only those it may stop to start another.
_STARTED_SPARK_SESSIONS: list = []
# Spark's own logging above errors only: its start-up warnings are not the steward's concern.
# (PySpark's gateway logger at the root's level too, or Spark announces a level of its own.)
_QUIET_LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = error
"""


def _spark_api():
    try:
        from pyspark.sql import SparkSession
        from splink.backends.spark import SparkAPI
    except ImportError:
        raise LinkageError(
            "the spark backend needs pyspark, which is not installed: pip install "
            "'srs-toolkit[spark]' (or run `make spark-prerequisites`), or use backend: duckdb"
        ) from None
    if os.environ.get("SPARK_REMOTE"):
        raise LinkageError(
            "SPARK_REMOTE is set, but Splink's Spark backend cannot run over Spark Connect; "
            f"unset it and set {SPARK_MASTER_VARIABLE} to the cluster's master URL "
            "(spark://host:7077, yarn, k8s://https://host:443)"
        )
    requested = os.environ.get(SPARK_MASTER_VARIABLE, "").strip() or None
    session = SparkSession.getActiveSession()
    if session is not None and requested not in (None, session.sparkContext.master):
        if not any(session is started for started in _STARTED_SPARK_SESSIONS):
            raise LinkageError(
                f"a Spark session on {session.sparkContext.master} is already running in this "
                f"process, but {SPARK_MASTER_VARIABLE} asks for {requested}; stop that "
                f"session or unset {SPARK_MASTER_VARIABLE} to link on it"
            )
        session.stop()
        session = None
    if session is None:
        session = _start_spark_session(SparkSession, requested or _LOCAL_SPARK_MASTER)
        _STARTED_SPARK_SESSIONS.append(session)
    _set_checkpoint_dir(session)
    return SparkAPI(spark_session=session)


def _start_spark_session(builder_class, master: str):  # noqa: ANN001 - pyspark's SparkSession
    from splink.backends.spark import similarity_jar_location

    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").exists()) and not shutil.which("java"):
        raise LinkageError(
            "the spark backend needs a Java runtime (17 or later) and finds none: install one "
            "(Debian: apt-get install default-jre-headless; `make spark-prerequisites` does) or "
            "set JAVA_HOME to it, or use backend: duckdb"
        )
    if not _SPARK_MASTER_URL.fullmatch(master):
        raise LinkageError(
            f"{SPARK_MASTER_VARIABLE} is {master!r}, which names no Spark master: use "
            "spark://HOST:PORT, yarn, k8s://https://HOST:PORT or local[CORES]"
        )
    if master == "yarn" and not (
        os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")
    ):
        raise LinkageError(
            f"{SPARK_MASTER_VARIABLE} is yarn, but neither HADOOP_CONF_DIR nor YARN_CONF_DIR "
            "is set: point one at the cluster's Hadoop configuration folder"
        )
    if master.startswith("spark://"):
        _check_spark_master_reachable(master)
    local = master.startswith("local")
    folder = Path(tempfile.mkdtemp(prefix="srs-spark-"))
    atexit.register(shutil.rmtree, folder, True)
    log4j = folder / "log4j2.properties"
    log4j.write_text(_QUIET_LOG4J, encoding="utf-8")
    builder = (
        builder_class.builder.master(master)
        .appName("srs-linkage")
        # Splink's string similarity functions (Jaro-Winkler, Damerau-Levenshtein) for Spark.
        .config("spark.jars", similarity_jar_location())
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log4j}")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if local:
        builder = (
            builder.config("spark.sql.shuffle.partitions", str(_LOCAL_SHUFFLE_PARTITIONS))
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.pyspark.python", sys.executable)
        )
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - Spark raises Py4J and PySpark errors alike
        raise LinkageError(
            f"cannot start Spark on master {master!r}: {_spark_reason(exc)}; check "
            f"{SPARK_MASTER_VARIABLE} and the Java runtime (java -version)"
        ) from None
    session.sparkContext.setLogLevel("ERROR")
    return session


def _check_spark_master_reachable(master: str) -> None:
    """Refuse at once a standalone master no one answers at (Spark would retry for a minute)."""
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise LinkageError(
                f"{SPARK_MASTER_VARIABLE} is {master!r}, which names no Spark master: a "
                "standalone master is spark://HOST:PORT (several: spark://HOST:PORT,HOST:PORT)"
            )
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise LinkageError(
                f"cannot reach the Spark master at {address} ({exc}); check "
                f"{SPARK_MASTER_VARIABLE} ({master})"
            ) from None


def _set_checkpoint_dir(session) -> None:  # noqa: ANN001 - pyspark's SparkSession
    """Give Splink the checkpoint folder it writes intermediate tables to, when none is set."""
    context = session.sparkContext
    if context.getCheckpointDir() is not None:
        return
    folder = os.environ.get(SPARK_CHECKPOINT_VARIABLE, "").strip()
    if not folder:
        if not context.master.startswith("local"):
            raise LinkageError(
                f"Splink writes its intermediate tables to Spark's checkpoint folder, and on "
                f"the cluster {context.master} it must be one every executor reaches: set "
                f"{SPARK_CHECKPOINT_VARIABLE} (e.g. hdfs:///tmp/srs-linkage or "
                "s3a://bucket/srs-linkage)"
            )
        folder = tempfile.mkdtemp(prefix="srs-spark-checkpoints-")
        atexit.register(shutil.rmtree, folder, True)
    context.setCheckpointDir(folder)


def _spark_reason(exc: Exception) -> str:
    """The first line of what Spark said, without the Java stack trace."""
    java = getattr(exc, "java_exception", None)
    text = str(java.getMessage()) if java is not None else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


@dataclass
class LinkageResult:
    """Every record's cluster, the scored pairs and figures about the run."""

    clusters: pd.DataFrame  # unique_id, source_dataset, record_id, cluster_id
    pairs: pd.DataFrame  # unique_id_l, unique_id_r, match_probability (>= clerical low)
    records: pd.DataFrame  # the standardised input
    seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)  # Splink's warnings during the run

    @property
    def lookup(self) -> pd.DataFrame:
        """source, record_id, cluster_id for every record."""
        return self.clusters[["source_dataset", "record_id", "cluster_id"]].rename(
            columns={"source_dataset": "source"}
        )


def run_splink(
    records: pd.DataFrame, settings: LinkageSettings, progress: Callable[[str], None] | None = None
) -> LinkageResult:
    """Train, predict and cluster standardised records with Splink."""
    say = progress or (lambda _m: None)
    notes = _SplinkNotes()
    splink_logger = logging.getLogger("splink")
    splink_logger.addHandler(notes)
    previous = splink_logger.propagate, splink_logger.level
    # Splink reports untrained levels and the like as warnings; keep them with the result
    # (the steward's report) instead of printing them over the progress output.
    splink_logger.propagate, splink_logger.level = False, logging.WARNING
    try:
        return _run_splink(records, settings, say, notes)
    finally:
        splink_logger.removeHandler(notes)
        splink_logger.propagate, splink_logger.level = previous


class _SplinkNotes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = " ".join(record.getMessage().split())
        if message and message not in self.messages:
            self.messages.append(message)


def _without_empty_columns(
    records: pd.DataFrame, settings: LinkageSettings, notes: list[str]
) -> LinkageSettings:
    """The settings without the comparisons and rules on columns no record fills.

    A column that is empty everywhere (no table maps it, or every value is blank or a
    placeholder) cannot be trained or blocked on; the other fields link without it.
    """
    empty = {c for c in records.columns if records[c].isna().all()}

    def usable(rule: list[str]) -> bool:
        return not empty & set(rule)

    comparisons = [
        spec
        for spec in settings.comparisons
        if spec.column not in empty and spec.canonical_column not in empty
    ]
    if not comparisons:
        raise LinkageError(
            "no identifier column has any value in any table; map at least forename, surname, "
            "date_of_birth or another linkage role to a filled column"
        )
    dropped = sorted({s.column for s in settings.comparisons} - {s.column for s in comparisons})
    # Roles no table maps need no note; a mapped column with no value does.
    dropped = [c for c in dropped if c not in records.attrs.get("unmapped_roles", ())]
    if dropped:
        notes.append(
            f"not compared, no record has a value: {', '.join(dropped)}; linked on the other fields"
        )
    training = settings.training.model_copy(
        update={
            "deterministic_rules": [r for r in settings.training.deterministic_rules if usable(r)],
            "em_blocking": [r for r in settings.training.em_blocking if usable(r)],
        }
    )
    blocking_rules = [r for r in settings.blocking_rules if usable(r)]
    for label, rules in (
        ("blocking rules", blocking_rules),
        ("training.deterministic_rules", training.deterministic_rules),
        ("training.em_blocking", training.em_blocking),
    ):
        if not rules:
            raise LinkageError(
                f"every one of the {label} in linkage.yaml needs a column that is empty in all "
                f"tables ({', '.join(dropped)}); map more identifier columns"
            )
    return settings.model_copy(
        update={"comparisons": comparisons, "blocking_rules": blocking_rules, "training": training}
    )


def _any_sure_pair(records: pd.DataFrame, training: TrainingSpec, link_type: str) -> bool:
    """Whether any two records (of different tables under link_only) agree on a rule of
    ``training.deterministic_rules``, the pairs the match prior is estimated from."""
    from srs.pipeline.linkage.blocking import pairs_in_blocks  # it builds on this module

    return any(
        pairs_in_blocks(records, rule, link_type)[0] > 0 for rule in training.deterministic_rules
    )


def _estimate_match_prior(linker, deterministic: list, training: TrainingSpec) -> None:  # noqa: ANN001
    try:
        linker.training.estimate_probability_two_random_records_match(
            deterministic, recall=training.deterministic_recall
        )
    except ValueError as exc:
        # Splink refuses when the deterministic rules find more pairs than the stated recall
        # allows: usually many records share one value that means "none" (a default police
        # number, a system date) and should be a placeholder in the policy.
        raise LinkageError(
            f"training.deterministic_rules {training.deterministic_rules} pair more records "
            f"than deterministic_recall {training.deterministic_recall} allows ({exc}); look for "
            "one value shared by many records (a default identifier or date) and add it to "
            "standardisation.missing_values in linkage.yaml, or, if nearly every record has "
            "its match in the tables, raise deterministic_recall"
        ) from exc


# Above this many candidate pairs (as the blocking rules give them), DuckDB scores them in
# chunks, so one chunk's comparison vectors are in memory at a time, not all of them.
PREDICT_PAIRS_PER_CHUNK = 50_000_000


def _input_tables(db_api, records: pd.DataFrame, link_type: str) -> list:  # noqa: ANN001
    """The records registered with Splink: one table per source when linking sources, else one.

    Every column goes in as text (standardise makes them text), so a column one source leaves
    empty is still a text column, not one of no type that Spark cannot read.
    """
    parts = (
        [part for _, part in records.groupby("source_dataset", sort=False)]
        if link_type != "dedupe_only"
        else [records]
    )
    return [db_api.register(_as_text_table(db_api, part)) for part in parts]


def _as_text_table(db_api, frame: pd.DataFrame):  # noqa: ANN001
    text = frame.astype(object).where(frame.notna(), None).reset_index(drop=True)
    text = text.apply(lambda column: column.map(str, na_action="ignore"))
    if getattr(db_api, "spark", None) is not None:
        from pyspark.sql.types import StringType, StructField, StructType

        schema = StructType([StructField(str(c), StringType(), True) for c in text.columns])
        return db_api.spark.createDataFrame(text, schema=schema)
    import pyarrow as pa

    schema = pa.schema([(str(c), pa.string()) for c in text.columns])
    return pa.Table.from_pandas(text, schema=schema, preserve_index=False)


def _training_sample(records: pd.DataFrame, training: TrainingSpec, link_type: str) -> pd.DataFrame:
    """A seeded random sample of ``training.max_records`` records (all of them when fewer).

    When sources are linked, a source the sample misses (a very small one) comes in whole:
    each source needs records to train on.
    """
    if len(records) <= training.max_records:
        return records
    sample = records.sample(n=training.max_records, random_state=training.seed)
    if link_type != "dedupe_only":
        missed = ~records["source_dataset"].isin(set(sample["source_dataset"]))
        sample = pd.concat([sample, records[missed]])
    return sample


def _predict_chunks(linker, records: pd.DataFrame, backend: str) -> tuple[int, int]:  # noqa: ANN001
    """Candidate pairs the blocking rules give (estimated from a sample when many records) and
    the chunks DuckDB scores them in; Spark spreads the pairs over its executors instead."""
    share = min(1.0, 50_000 / max(len(records), 1))
    counts = linker.blocking_analysis.count_comparisons_from_blocking_rules(
        record_sample_proportion=share
    )
    pairs = int(counts[-1]["cumulative_comparison_count"]) if counts else 0
    chunks = -(-pairs // PREDICT_PAIRS_PER_CHUNK) if backend == "duckdb" else 1
    return pairs, max(chunks, 1)


# Comparisons whose agreement is a name's: they never corroborate a pair on their own.
_NAME_COMPARISONS = frozenset({"forename", "surname"})


def _corroborated(pairs: pd.DataFrame, linker, settings: LinkageSettings) -> pd.Series:  # noqa: ANN001
    """Pairs on which a comparison other than the names reaches a strong enough level.

    Two records that share only a name, with the date of birth missing on one side and the
    postcode different, can score above the threshold when the name is rare in the data; in
    a justice population two people of one name are common enough that such a pair must be
    seen by a steward, not linked. The level's strength is its trained Bayes factor (m/u).
    """
    floor = settings.min_corroborating_bayes_factor
    if floor <= 0 or pairs.empty:
        return pd.Series(True, index=pairs.index)
    model = linker.misc.save_model_to_json()
    backed = pd.Series(False, index=pairs.index)
    for comparison in model["comparisons"]:
        name = comparison["output_column_name"]
        gamma = f"gamma_{name}"
        if name in _NAME_COMPARISONS or gamma not in pairs.columns:
            continue
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        strong = []
        # Splink numbers the levels other than the null level from the top, down to 0.
        for value, level in zip(range(len(levels) - 1, -1, -1), levels, strict=True):
            m, u = level.get("m_probability"), level.get("u_probability")
            if isinstance(m, float) and isinstance(u, float) and u > 0 and m / u >= floor:
                strong.append(value)
        if strong:
            backed |= pairs[gamma].isin(strong)
    return backed


def _expectation_maximisation(linker, rule: list[str]) -> None:  # noqa: ANN001
    from splink import block_on

    try:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule))
    except ValueError as exc:
        if "below the minimum allowed" not in str(exc):
            raise
        # Splink 5 refuses an m or u probability that training drove to exactly 0: a level
        # that (almost) no pair in this block reaches, usually on small or very clean data.
        raise LinkageError(
            f"training blocked on {', '.join(rule)} drove the probability of a comparison level "
            "that almost no pair reaches to 0, which Splink cannot use; the data is too small or "
            "too clean to train that level: take the rule out of training.em_blocking, or the "
            "level's comparison out of comparisons, in a --settings file, or link more records"
        ) from exc


def _run_splink(
    records: pd.DataFrame, settings: LinkageSettings, say, notes: _SplinkNotes
) -> LinkageResult:
    import time

    from splink import Linker, block_on
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    settings = _without_empty_columns(records, settings, notes.messages)
    from srs.pipeline.linkage.blocking import check_comparison_budget  # it builds on this module

    say("checking the blocking rules against the comparison budget")
    check_comparison_budget(records, settings)
    training = settings.training
    link_type = settings.link_type
    if not _any_sure_pair(records, training, link_type):
        # Nothing to learn what a match looks like from (Splink would fail on a prior of 0):
        # two clean extracts with no one in common, or one file without duplicates.
        notes.messages.append(
            "no two records agree on any of training.deterministic_rules "
            f"{training.deterministic_rules}, so no model can be trained: every record is a "
            "person of its own. If the tables do hold one person twice with differences on "
            "those fields, link them together with more records, or add a looser rule there"
        )
        clusters = records[["unique_id", "source_dataset", "record_id"]].assign(
            cluster_id=records["unique_id"]
        )
        empty = pd.DataFrame(columns=["unique_id_l", "unique_id_r", "match_probability"])
        return LinkageResult(
            clusters=clusters, pairs=empty, records=records, seconds={}, notes=notes.messages
        )
    deterministic = [block_on(*rule) for rule in training.deterministic_rules]

    def linker_on(frame: pd.DataFrame, model, db_api) -> Linker:  # noqa: ANN001
        tables = _input_tables(db_api, frame, link_type)
        return Linker(tables if link_type != "dedupe_only" else tables[0], model, log_level=None)

    sample = _training_sample(records, training, link_type)
    if sample is not records:
        say(f"training on a random sample of {len(sample):,} of {len(records):,} records")
    linker = linker_on(sample, splink_settings(settings), database_api(settings.backend))
    say("training: probability two random records match")
    _estimate_match_prior(linker, deterministic, training)
    say("training: u probabilities from random pairs")
    # Splink counts u in chunks so it can stop once every level has been seen often enough;
    # when the sample has no more pairs than u_max_pairs, every pair is counted anyway, and
    # chunks would only mean more passes over the same pairs (and more Spark jobs).
    every_pair_counted = len(sample) * (len(sample) - 1) // 2 <= training.u_max_pairs
    linker.training.estimate_u_using_random_sampling(
        max_pairs=training.u_max_pairs,
        seed=training.seed,
        **({"num_chunks": 1} if every_pair_counted else {}),
    )
    for rule in training.em_blocking:
        say(f"training: expectation maximisation blocked on {', '.join(rule)}")
        _expectation_maximisation(linker, rule)
    if sample is not records:
        # The trained m and u apply to all records; the prior that two records match does not
        # (it falls with the number of records), so it is estimated again on all of them. A
        # fresh database API: Splink caches tables it made from the sample under fixed names.
        model = linker.misc.save_model_to_json()
        linker = linker_on(records, model, database_api(settings.backend))
        _estimate_match_prior(linker, deterministic, training)
    seconds["train"] = time.perf_counter() - start
    start = time.perf_counter()
    pairs, chunks = _predict_chunks(linker, records, settings.backend)
    say(
        f"predicting pairs: about {pairs:,} candidate pairs"
        + (f" in {chunks} chunks" if chunks > 1 else "")
    )
    predictions = linker.inference.predict(
        threshold_match_probability=min(settings.clerical_review.low, settings.match_threshold),
        num_chunks_left=chunks,
    )
    seconds["predict"] = time.perf_counter() - start
    start = time.perf_counter()
    say("clustering")
    pairs_frame = predictions.as_pandas_dataframe()
    linked = pairs_frame["match_probability"] >= settings.match_threshold
    uncorroborated = linked & ~_corroborated(pairs_frame, linker, settings)
    if uncorroborated.any():
        notes.messages.append(
            f"{int(uncorroborated.sum()):,} pair(s) above the match threshold agree on names "
            "only (nothing else with a Bayes factor of at least "
            f"{settings.min_corroborating_bayes_factor:g}): not linked, left for clerical review"
        )
    clusters = cluster_pairwise_predictions_at_threshold(
        records[["unique_id"]],
        pairs_frame.loc[linked & ~uncorroborated, ["unique_id_l", "unique_id_r"]],
        linker._db_api,
        node_id_column_name="unique_id",
    )
    clustered = clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]
    seconds["cluster"] = time.perf_counter() - start
    clustered = records[["unique_id", "source_dataset", "record_id"]].merge(
        clustered, on="unique_id", how="left"
    )
    # A record in no predicted pair is a cluster of its own. A cluster is named by the least
    # unique_id among its records, whatever the backend or link type calls it.
    clustered["cluster_id"] = clustered["cluster_id"].fillna(clustered["unique_id"])
    clustered["cluster_id"] = clustered.groupby("cluster_id")["unique_id"].transform("min")
    return LinkageResult(
        clusters=clustered,
        pairs=pairs_frame,
        records=records,
        seconds=seconds,
        notes=notes.messages,
    )


def link_tables(
    tables: dict[str, pd.DataFrame],
    mappings: dict[str, SourceMapping],
    settings: LinkageSettings,
    progress: Callable[[str], None] | None = None,
) -> LinkageResult:
    """Link and deduplicate persons across ``tables`` (two or more, or one to deduplicate).

    Notes from standardisation (values made missing) come first in the result's notes, then
    Splink's.
    """
    notes: list[str] = []
    records = standardise(tables, mappings, settings, notes)
    settings = identifier_comparisons(settings, mappings, records)
    result = run_splink(records, settings, progress)
    result.notes[:0] = notes
    return result


# ---------------------------------------------------------------- quality
@dataclass(frozen=True)
class LinkageQuality:
    """Pairwise precision, recall and F1 against a ground truth, with the clusters in error."""

    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    wrongly_merged_clusters: int
    wrongly_split_persons: int
    records: int
    merged_examples: list[str]
    split_examples: list[str]
    truth_records_left_out: int = 0


def _pairs(sizes: pd.Series) -> int:
    return int((sizes * (sizes - 1) // 2).sum())


def _evaluation_rows(frame: pd.DataFrame, name: str, key: str) -> pd.DataFrame:
    """``source``, ``record_id`` and ``key`` of a lookup or ground truth as trimmed text, one
    row per record; refused when the columns are missing, a value is blank, a record is on
    two rows or there are no rows, since each would skew the pair counts without a word."""
    frame = _trimmed_headers(frame)  # "source, record_id, person_id", as FEBRL writes
    needed = ["source", "record_id", key]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise LinkageError(
            f"the {name} lacks column(s) {', '.join(missing)}; it needs the columns "
            f"{', '.join(needed)}, one row per record"
        )
    rows = frame[needed].astype("string").apply(lambda column: column.str.strip())
    rows = rows.mask(rows.eq(""))  # blank is missing
    if rows.empty:
        raise LinkageError(
            f"the {name} holds no records (a header at most); give one row per record"
        )
    for column in needed:
        blank = int(rows[column].isna().sum())
        if blank:
            raise LinkageError(
                f"the {name} has {blank:,} of {len(rows):,} row(s) with no {column}; every "
                f"record needs its {column}, or the pair counts are wrong"
            )
    rows_per_record = rows.groupby(["source", "record_id"]).size()
    repeated = rows_per_record[rows_per_record > 1]
    if len(repeated):
        (source, record_id), times = next(iter(repeated.items()))
        raise LinkageError(
            f"the {name} has {len(repeated):,} record(s) on more than one row (e.g. "
            f"{source}:{record_id}, on {times} rows); give each record one row"
        )
    return rows.astype(object)


def evaluate(
    lookup: pd.DataFrame,
    truth: pd.DataFrame,
    examples: int = 10,
    *,
    leave_out_unlinked: bool = False,
) -> LinkageQuality:
    """Compare a lookup (source, record_id, cluster_id) with truth (source, record_id, person_id).

    Both must hold the same records, each once, with every id given; anything else is
    refused with a :class:`LinkageError`, since pairs counted over part of the records are
    wrong without a sign. ``leave_out_unlinked``: records of the truth that are not in the
    lookup (rows rejected at ingest, which were never linked) are left out and counted in
    ``truth_records_left_out`` instead.

    >>> quality = evaluate(lookup, truth)  # doctest: +SKIP
    >>> quality.precision, quality.recall, quality.f1  # doctest: +SKIP
    """
    lookup = _evaluation_rows(lookup, "lookup", "cluster_id")
    truth = _evaluation_rows(truth, "ground truth", "person_id")
    joined = lookup.merge(truth, on=["source", "record_id"], how="outer", indicator=True)
    unmatched = []
    for side, name, other, everyone in (
        ("left_only", "lookup", "ground truth", lookup),
        ("right_only", "ground truth", "lookup", truth),
    ):
        alone = joined[joined["_merge"] == side]
        if len(alone) and not (side == "right_only" and leave_out_unlinked):
            example = f"{alone['source'].iloc[0]}:{alone['record_id'].iloc[0]}"
            unmatched.append(
                f"{len(alone):,} of the {len(everyone):,} records of the {name} are not in the "
                f"{other} (e.g. {example})"
            )
    if unmatched:
        if set(lookup["source"]) != set(truth["source"]):
            unmatched.append(
                f"the lookup holds table(s) {', '.join(sorted(set(lookup['source'])))}, the "
                f"ground truth {', '.join(sorted(set(truth['source'])))}"
            )
        raise LinkageError(
            f"{'; '.join(unmatched)}; the two must hold the same records: link every table the "
            "truth covers, under the names it gives them, or give the truth of the tables linked"
        )
    left_out = int((joined["_merge"] == "right_only").sum())
    joined = joined[joined["_merge"] == "both"]
    if joined.empty:
        raise LinkageError(
            "no record of the lookup is in the ground truth; its source and record_id must "
            "name the same tables and record ids"
        )
    predicted = _pairs(joined.groupby("cluster_id").size())
    actual = _pairs(joined.groupby("person_id").size())
    correct = _pairs(joined.groupby(["cluster_id", "person_id"]).size())
    if not actual:
        raise LinkageError(
            f"the ground truth gives each of the {len(joined):,} records its own person, so there "
            "is no true pair to find and recall means nothing; is person_id the person's id?"
        )
    precision = correct / predicted if predicted else 1.0
    recall = correct / actual
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    persons_per_cluster = joined.groupby("cluster_id")["person_id"].nunique()
    clusters_per_person = joined.groupby("person_id")["cluster_id"].nunique()
    merged = persons_per_cluster[persons_per_cluster > 1]
    split = clusters_per_person[clusters_per_person > 1]
    return LinkageQuality(
        precision=precision,
        recall=recall,
        f1=f1,
        true_pairs=actual,
        predicted_pairs=predicted,
        correct_pairs=correct,
        wrongly_merged_clusters=len(merged),
        wrongly_split_persons=len(split),
        records=len(joined),
        merged_examples=[str(c) for c in merged.index[:examples]],
        split_examples=[str(p) for p in split.index[:examples]],
        truth_records_left_out=left_out,
    )


def clerical_sample(result: LinkageResult, settings: LinkageSettings) -> pd.DataFrame:
    """Borderline pairs, side by side, for a steward to review (a random sample)."""
    review = settings.clerical_review
    pairs = result.pairs
    borderline = pairs[
        (pairs["match_probability"] >= review.low) & (pairs["match_probability"] < review.high)
    ]
    sample = borderline.sample(
        n=min(review.sample_size, len(borderline)), random_state=settings.training.seed
    )
    columns = ["unique_id", *[c for c in LINKAGE_COLUMNS if c in result.records.columns]]
    left = result.records[columns].add_suffix("_l")
    right = result.records[columns].add_suffix("_r")
    out = (
        sample[["unique_id_l", "unique_id_r", "match_probability"]]
        .merge(left, on="unique_id_l")
        .merge(right, on="unique_id_r")
    )
    out["same_cluster"] = out["match_probability"] >= settings.match_threshold
    out["steward_decision"] = ""
    return out.sort_values("match_probability").reset_index(drop=True)

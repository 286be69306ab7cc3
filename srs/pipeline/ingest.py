"""Ingest: check an agency extract against its data dictionary, keep the good rows, reject the
rest with their reasons, and refuse a file whose schema is wrong.

Every row ends up either accepted or in the rejects file with the reason(s) it failed
(counts in = accepted + rejected); nothing is silently dropped or coerced. A missing,
renamed or unexpected column, a column of the wrong type, a wrong delimiter or an empty file
refuses the whole file with a ``SchemaError`` that says what was wrong.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, ValidationError, model_validator

from disclosure.policy import PolicyModel
from srs.errors import SRSError
from srs.governance.policy import PolicyError, default_policy_dir
from srs.pipeline.offences import OffenceList

DICTIONARY_DIR = "data_dictionaries"
# The ingest policy (``policies/ingest.yaml``): the largest extract file taken in. Without the
# file, DEFAULT_MAX_EXTRACT_BYTES; a file larger is refused before a byte of it is read.
INGEST_POLICY_FILE = "ingest.yaml"
DEFAULT_MAX_EXTRACT_BYTES = 5_000_000_000
# Files are hashed in chunks of this many bytes, so a large extract is never held twice.
HASH_CHUNK_BYTES = 1 << 20
# A column is of the wrong type (a schema error) when at least this share of its non-empty
# values fail to parse; below it, the failing rows are rejected one by one.
WRONG_TYPE_SHARE = 0.5
RULE_PATTERN = re.compile(r"^\s*(\w+)\s*(<=|>=|<|>|==|!=)\s*(\w+)\s*$")
COMPARE = {
    "<=": np.less_equal,
    ">=": np.greater_equal,
    "<": np.less,
    ">": np.greater,
    "==": np.equal,
    "!=": np.not_equal,
}
DATE_FORMAT_HINT = {"%Y-%m-%d": "YYYY-MM-DD", "%d/%m/%Y": "DD/MM/YYYY"}
# A delivery file has the dictionary's columns and this one, saying what each row does.
DELIVERY_ACTION = "delivery_action"
DELIVERY_ACTIONS = ("add", "correct", "withdraw")


REASON_KINDS = (
    (re.compile(r"^(\w+) is required but empty$"), "{0}: required but empty"),
    (re.compile(r"^(\w+) .* does not match the pattern "), "{0}: does not match its pattern"),
    (re.compile(r"^(\w+) .* is (?:before|after|below|above) the allowed "), "{0}: out of range"),
    (re.compile(r"^(\w+) .* is not (?:a date|a whole number|a number)"), "{0}: wrong type"),
    (re.compile(r"^(\w+) .* is not one of "), "{0}: not an allowed value"),
    (re.compile(r"^(\w+) .* is not a known offence code"), "{0}: unknown offence code"),
    (re.compile(r"^rule (\w+ \S+ \w+) broken"), "rule {0} broken"),
    (re.compile(r"^(\w+) .* appears more than once$"), "{0}: repeated in the file"),
    (re.compile(r"^row has \d+ fields"), "wrong number of fields"),
    (re.compile(r"^not UTF-8 text"), "not UTF-8 text"),
    (re.compile(r"^add: (\w+) .* is already held"), "add of a record already held"),
    (re.compile(r"^correct: (\w+) .* is not held"), "correction of a record not held"),
    (re.compile(r"^withdraw: (\w+) .* is not held"), "withdrawal of a record not held"),
    (re.compile(r"^(\w+) .* is after the end of the delivery's period"), "{0}: after the period"),
)


def reason_kind(reason: str, columns: set[str]) -> str:
    """The kind of a reject reason, without the value it quotes (``surname: wrong type``).

    Only names from the data dictionary (``columns``) and fixed words come out, so a kind never carries data
    from a record; a reason of no known kind is ``other``.
    """
    for pattern, kind in REASON_KINDS:
        match = pattern.match(reason)
        if not match:
            continue
        names = match.groups()
        if all(
            all(part in columns or not part.isidentifier() for part in name.split())
            for name in names
        ):
            return kind.format(*names)
    return "other"


class SchemaError(SRSError):
    """The file cannot be ingested at all: its structure does not match the dictionary."""


class UnsharedVariables(SchemaError):
    """The file carries values in variables the data-sharing agreement does not list for its
    source: the whole file is refused (``variables`` names them, ``rows`` counts the rows)."""

    def __init__(self, message: str, *, variables: list[str], rows: int) -> None:
        super().__init__(message)
        self.variables = variables
        self.rows = rows


class IngestPolicy(PolicyModel):
    """``policies/ingest.yaml``: bounds on what ingest takes in."""

    # Largest extract file in bytes; a larger one is refused before it is read or hashed.
    max_extract_bytes: int = Field(default=DEFAULT_MAX_EXTRACT_BYTES, ge=1, strict=True)


def load_ingest_policy(folder: Path | None = None) -> IngestPolicy:
    """The ingest policy of the policy folder (``ingest.yaml``), or its defaults when the
    folder has no such file; ``PolicyError`` naming the file and key when it is malformed.

    >>> load_ingest_policy().max_extract_bytes  # doctest: +SKIP
    5000000000
    """
    path = Path(folder or default_policy_dir()) / INGEST_POLICY_FILE
    if not path.is_file():
        return IngestPolicy()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return IngestPolicy.model_validate(data)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML ({exc})") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(file)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise PolicyError(f"{path}: {problems}") from exc


def file_sha256(path: Path) -> str:
    """SHA-256 of the file's bytes, read in chunks (a multi-gigabyte extract is never held)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class ColumnSpec(PolicyModel):
    """One variable of a source's data dictionary."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    type: Literal["string", "integer", "number", "date", "category", "flag", "code"]
    required: bool
    classification: Literal["direct_identifier", "quasi_identifier", "sensitive", "operational"]
    pattern: str | None = None
    allowed: list[str] | None = None
    codes: Literal["offences"] | None = None
    format: str | None = None
    min: str | float | None = None
    max: str | float | None = None
    linkage_role: (
        Literal[
            "record_id",
            "case_ref",
            "pnc",
            "forename",
            "surname",
            "sex",
            "date_of_birth",
            "postcode",
            "street_number",
            "address",  # on each address line, in order
            "locality",
            "region",
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _type_needs(self) -> ColumnSpec:
        if self.type in ("category", "flag") and not self.allowed:
            raise ValueError(f"{self.name}: a {self.type} column needs `allowed` values")
        if self.type == "code" and self.codes is None:
            raise ValueError(f"{self.name}: a code column needs `codes` (e.g. offences)")
        if self.type == "date" and not self.format:
            raise ValueError(f"{self.name}: a date column needs a `format`")
        if self.pattern:
            re.compile(self.pattern)
        return self


class DataDictionary(PolicyModel):
    """A source's data dictionary: its variables, types, allowed values and row rules."""

    source: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    record_id: str
    columns: list[ColumnSpec] = Field(min_length=1)
    rules: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> DataDictionary:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")
        if self.record_id not in names:
            raise ValueError(f"record_id {self.record_id!r} is not one of the columns")
        for rule in self.rules:
            match = RULE_PATTERN.match(rule)
            if not match or match.group(1) not in names or match.group(3) not in names:
                raise ValueError(f"rule {rule!r} must compare two columns, e.g. 'a <= b'")
        return self

    def column(self, name: str) -> ColumnSpec:
        """The spec of column ``name``."""
        return next(c for c in self.columns if c.name == name)

    def as_records(self) -> list[dict[str, object]]:
        """The dictionary as plain records, stored with the dataset in the vault."""
        return [c.model_dump(exclude_none=True) for c in self.columns]


def load_dictionary(source: str, policy_dir: Path | None = None) -> DataDictionary:
    """The data dictionary of ``source`` from ``policies/data_dictionaries``."""
    folder = (policy_dir or default_policy_dir()) / DICTIONARY_DIR
    path = folder / f"{source}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise PolicyError(
            f"no data dictionary for source {source!r}; known sources: {', '.join(known)}",
            file=path,
        )
    try:
        return DataDictionary.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML: {exc}", file=path) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        raise PolicyError(
            error["msg"], file=path, key=".".join(str(p) for p in error["loc"])
        ) from None


def known_sources(policy_dir: Path | None = None) -> list[str]:
    """Every source that has a data dictionary."""
    return sorted(
        p.stem for p in ((policy_dir or default_policy_dir()) / DICTIONARY_DIR).glob("*.yaml")
    )


@dataclass
class IngestResult:
    """What ingest made of a file: the typed accepted rows, the rejects, and the counts."""

    source: str
    accepted: pd.DataFrame
    rejects: pd.DataFrame
    rows_in: int
    file_sha256: str
    # Required values the checked rows had to carry, and how many were filled (completeness).
    required_values: int = 0
    required_filled: int = 0
    # How many times each kind of reason was given (``reason_kind``: no values from records).
    reason_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def rows_accepted(self) -> int:
        return len(self.accepted)

    @property
    def rows_rejected(self) -> int:
        return len(self.rejects)


@dataclass(frozen=True)
class RowCounts:
    """What validation counted: required values expected and filled, kinds of reject reasons."""

    required_values: int
    required_filled: int
    reason_kinds: Counter[str]


# ---------------------------------------------------------------- reading
def _decode(data: bytes, path: Path) -> tuple[str, list[tuple[int, str, str]]]:
    """Text of the file, with lines that are not UTF-8 taken out as rejects (line, reason, raw)."""
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    good: list[str] = []
    bad: list[tuple[int, str, str]] = []
    for number, raw in enumerate(data.split(b"\n")):
        try:
            good.append(raw.decode("utf-8-sig" if number == 0 else "utf-8"))
        except UnicodeDecodeError as exc:
            if number == 0:
                raise SchemaError(
                    f"{path}: the header line is not UTF-8 text ({exc.reason} at byte {exc.start})"
                ) from None
            bad.append(
                (
                    number,
                    f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                    raw.decode("utf-8", "replace"),
                )
            )
            good.append("")  # keep line numbers aligned; empty lines are skipped below
    return "\n".join(good), bad


def read_extract(
    path: Path, dictionary: DataDictionary, delivery: bool = False
) -> tuple[pd.DataFrame, list[int], list[tuple[int, str, str]], int]:
    """Read a CSV or Parquet extract as text columns.

    Returns the frame, each row's line number, early rejects (line, reason, raw text) and the
    number of data rows read. A ``delivery`` has the column ``delivery_action`` as well.
    """
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: no such file")
    expected = [c.name for c in dictionary.columns] + ([DELIVERY_ACTION] if delivery else [])
    if path.suffix.lower() == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise SchemaError(f"{path}: not a readable Parquet file ({exc})") from exc
        _check_columns(list(frame.columns), expected, path)
        return frame[expected], list(range(1, len(frame) + 1)), [], len(frame)
    data = path.read_bytes()
    if not data.strip():
        raise SchemaError(
            f"{path}: the file is empty (no header line); expected columns: {', '.join(expected)}"
        )
    text, rejects = _decode(data, path)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    if len(header) == 1 and len(expected) > 1:
        for delimiter in (";", "\t", "|"):
            if delimiter in header[0]:
                name = {"\t": "tab"}.get(delimiter, repr(delimiter))
                raise SchemaError(
                    f"{path}: the file seems to be delimited by {name}, not by commas; export it as comma-separated CSV"
                )
    _check_columns(header, expected, path)
    rows: list[list[str]] = []
    lines: list[int] = []
    rows_in = len(rejects)
    for row in reader:
        line = reader.line_num - 1
        if not row or (len(row) == 1 and row[0] == ""):
            continue  # blank line (or a line set aside above as not UTF-8)
        rows_in += 1
        if len(row) != len(header):
            rejects.append(
                (line, f"row has {len(row)} fields, the header has {len(header)}", ",".join(row))
            )
            continue
        rows.append(row)
        lines.append(line)
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    return frame[expected], lines, rejects, rows_in


def _check_columns(found: list[str], expected: list[str], path: Path) -> None:
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    duplicated = sorted({c for c in found if found.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected column(s): {', '.join(extra)}")
    if duplicated:
        problems.append(f"repeated column(s): {', '.join(duplicated)}")
    if problems:
        hint = " (renamed?)" if missing and extra else ""
        if DELIVERY_ACTION in missing:
            hint += (
                f"; a delivery needs a {DELIVERY_ACTION} column (add, correct or withdraw on "
                "each row)"
            )
        elif DELIVERY_ACTION in extra:
            hint += f"; a file with {DELIVERY_ACTION} is a delivery: ingest it with --delivery"
        raise SchemaError(
            f"{path}: the columns do not match the data dictionary: {'; '.join(problems)}{hint}. Expected: {', '.join(expected)}"
        )


# ---------------------------------------------------------------- validation
def _is_blank(values: pd.Series) -> pd.Series:
    return values.isna() | (values.astype(str).str.strip() == "")


def _parse(
    spec: ColumnSpec, raw: pd.Series, offences: OffenceList
) -> tuple[pd.Series, pd.Series, str]:
    """Typed values, a mask of values that failed the type, and the reason for a failure."""
    blank = _is_blank(raw)
    if spec.type == "date":
        if pd.api.types.is_datetime64_any_dtype(raw):
            return raw, pd.Series(False, index=raw.index), ""
        parsed = pd.to_datetime(raw.where(~blank), format=spec.format, errors="coerce")
        hint = DATE_FORMAT_HINT.get(spec.format, spec.format)
        return parsed, ~blank & parsed.isna(), f"is not a date in the form {hint}"
    if spec.type in ("integer", "number"):
        parsed = pd.to_numeric(raw.where(~blank), errors="coerce")
        failed = ~blank & parsed.isna()
        if spec.type == "integer":
            failed |= parsed.notna() & (parsed % 1 != 0)
        return (
            parsed,
            failed,
            f"is not {'a whole number' if spec.type == 'integer' else 'a number'}",
        )
    text = raw.where(~blank).astype(object)
    if spec.type in ("category", "flag"):
        failed = ~blank & ~text.isin(spec.allowed)
        return text, failed, f"is not one of {', '.join(spec.allowed)}"
    if spec.type == "code":
        failed = ~blank & ~text.isin(offences.codes)
        return text, failed, "is not a known offence code (policies/offences.yaml)"
    return text, pd.Series(False, index=raw.index), ""


def validate_extract(
    frame: pd.DataFrame,
    lines: list[int],
    dictionary: DataDictionary,
    offences: OffenceList,
    path: Path,
    held_ids: pd.Series | None = None,
    events_until: tuple[str, date] | None = None,
    variables: Collection[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, RowCounts]:
    """Typed accepted rows, the rejects (line, reasons, raw values) of a read extract, and
    counts: the required values the rows had to carry, how many were filled, and the kinds of
    reasons rows were rejected for.

    ``held_ids`` (the record ids held so far) makes it a delivery: each row's
    ``delivery_action`` must be add (an id not held), correct or withdraw (an id held); a
    withdrawal needs only its record id. ``events_until`` (a date column and the last day of the
    delivery's period) rejects a row whose event comes after the period it was delivered for.
    A variable not in ``variables`` (those the agreement lists; None: all) is never required.
    """
    reasons = pd.Series([[] for _ in range(len(frame))], index=frame.index, dtype=object)

    def fail(mask: pd.Series, message: str) -> None:
        for index in mask[mask].index:
            reasons[index].append(message)

    delivery = held_ids is not None
    action = frame[DELIVERY_ACTION].astype(object) if delivery else None
    withdraw = (
        (action == "withdraw").astype(bool) if delivery else pd.Series(False, index=frame.index)
    )
    if delivery:
        unknown = ~action.isin(DELIVERY_ACTIONS)
        for index in unknown[unknown].index:
            reasons[index].append(
                f"{DELIVERY_ACTION} {action[index]!r} is not one of {', '.join(DELIVERY_ACTIONS)}"
            )
    required_values = required_filled = 0

    typed: dict[str, pd.Series] = {}
    for spec in dictionary.columns:
        raw = frame[spec.name]
        blank = _is_blank(raw)
        values, bad_type, why = _parse(spec, raw, offences)
        filled = int((~blank).sum())
        if (
            spec.type in ("date", "integer", "number")
            and filled
            and bad_type.sum() >= WRONG_TYPE_SHARE * filled
        ):
            example = raw[bad_type].iloc[0]
            raise SchemaError(
                f"{path}: column {spec.name} should hold {spec.type} values but {int(bad_type.sum()):,} of "
                f"{filled:,} do not (e.g. {example!r}); wrong column or wrong format"
            )
        if spec.required and (variables is None or spec.name in variables):
            # A withdrawal names its record and nothing else.
            applies = ~withdraw | (spec.name == dictionary.record_id)
            required_values += int(applies.sum())
            required_filled += int((applies & ~blank).sum())
            fail(applies & blank, f"{spec.name} is required but empty")
        if bad_type.any():
            for index in bad_type[bad_type].index:
                reasons[index].append(f"{spec.name} {raw[index]!r} {why}")
        ok = ~blank & ~bad_type
        if spec.pattern:
            mismatch = ok & ~values.astype(str).str.fullmatch(spec.pattern)
            for index in mismatch[mismatch].index:
                reasons[index].append(
                    f"{spec.name} {raw[index]!r} does not match the pattern {spec.pattern}"
                )
        for bound, compare, word in (
            (spec.min, np.less, "before" if spec.type == "date" else "below"),
            (spec.max, np.greater, "after" if spec.type == "date" else "above"),
        ):
            if bound is None:
                continue
            limit = pd.Timestamp(bound) if spec.type == "date" else float(bound)
            outside = ok & compare(values, limit).fillna(False).astype(bool)
            for index in outside[outside].index:
                reasons[index].append(f"{spec.name} {raw[index]!r} is {word} the allowed {bound}")
        typed[spec.name] = values
    for rule in dictionary.rules:
        left, operator, right = RULE_PATTERN.match(rule).groups()
        a, b = typed[left], typed[right]
        both = a.notna() & b.notna()
        broken = both & ~COMPARE[operator](a.where(both), b.where(both)).fillna(True).astype(bool)
        for index in broken[broken].index:
            reasons[index].append(
                f"rule {rule} broken ({left} {frame[left][index]}, {right} {frame[right][index]})"
            )
    record_ids = typed[dictionary.record_id]
    repeated = record_ids.notna() & record_ids.duplicated(keep="first")
    for index in repeated[repeated].index:
        reasons[index].append(f"{dictionary.record_id} {record_ids[index]} appears more than once")
    if delivery:
        held = record_ids.notna() & record_ids.astype(str).isin(set(held_ids.astype(str)))
        name = dictionary.record_id
        for mask, message in (
            ((action == "add") & held, "add: {} {} is already held (send it as correct)"),
            (
                (action == "correct") & record_ids.notna() & ~held,
                "correct: {} {} is not held (never delivered, or withdrawn: send it as add)",
            ),
            ((action == "withdraw") & record_ids.notna() & ~held, "withdraw: {} {} is not held"),
        ):
            for index in mask[mask.astype(bool)].index:
                reasons[index].append(message.format(name, record_ids[index]))
        typed[DELIVERY_ACTION] = action
    if events_until is not None:
        column, last_day = events_until
        after = (typed[column] > pd.Timestamp(last_day)).fillna(False).astype(bool) & ~withdraw
        for index in after[after].index:
            reasons[index].append(
                f"{column} {frame[column][index]!r} is after the end of the delivery's period "
                f"({last_day.isoformat()})"
            )

    rejected = reasons.map(bool).astype(bool)
    accepted = pd.DataFrame(typed, index=frame.index)[~rejected.to_numpy()].reset_index(drop=True)
    if delivery:
        accepted[DELIVERY_ACTION] = accepted[DELIVERY_ACTION].astype("string")
    for spec in dictionary.columns:
        if spec.type in ("category", "flag", "code") or spec.type == "string":
            accepted[spec.name] = accepted[spec.name].astype("string")
        elif spec.type == "integer":
            accepted[spec.name] = accepted[spec.name].astype("Int64")
    line_numbers = np.asarray(lines)
    rejects = pd.DataFrame(
        {
            "line": line_numbers[rejected.to_numpy()] if len(line_numbers) else [],
            "reasons": ["; ".join(r) for r in reasons[rejected]],
            "record": frame[rejected.to_numpy()].astype(str).agg(",".join, axis=1).to_numpy()
            if rejected.any()
            else [],
        }
    )
    columns = {spec.name for spec in dictionary.columns} | {DELIVERY_ACTION}
    kinds = Counter(reason_kind(r, columns) for row in reasons[rejected] for r in row)
    return accepted, rejects, RowCounts(required_values, required_filled, kinds)


def ingest_file(
    path: Path,
    dictionary: DataDictionary,
    offences: OffenceList,
    held_ids: pd.Series | None = None,
    events_until: tuple[str, date] | None = None,
    variables: Collection[str] | None = None,
    sha256: str | None = None,
) -> IngestResult:
    """Read and validate ``path`` against ``dictionary``: accepted rows, rejects and counts.

    With ``held_ids`` (the record ids held so far) the file is a delivery: it has the column
    ``delivery_action`` (add, correct or withdraw) and its accepted rows keep it.
    ``events_until`` (date column, last day) rejects rows dated after the delivery's period.
    ``variables`` are those the data-sharing agreement lists for the source (None: the whole
    dictionary): a file with a value, on any row (a withdrawal too), in another variable of the
    dictionary is refused whole (``UnsharedVariables``), and those variables are not required.
    ``sha256`` is the file's hash when the caller has it already (``file_sha256``).
    """
    path = Path(path)
    frame, lines, early, rows_in = read_extract(path, dictionary, delivery=held_ids is not None)
    if variables is not None:
        _refuse_unshared(frame, dictionary, set(variables), path)
    accepted, rejects, counts = validate_extract(
        frame, lines, dictionary, offences, path, held_ids, events_until, variables
    )
    counts.reason_kinds.update(reason_kind(reason, set()) for _, reason, _ in early)
    if early:
        rejects = (
            pd.concat(
                [pd.DataFrame(early, columns=["line", "reasons", "record"]), rejects],
                ignore_index=True,
            )
            .sort_values("line", kind="stable")
            .reset_index(drop=True)
        )
    result = IngestResult(
        source=dictionary.source,
        accepted=accepted,
        rejects=rejects,
        rows_in=rows_in,
        file_sha256=sha256 or file_sha256(path),
        required_values=counts.required_values,
        required_filled=counts.required_filled,
        reason_kinds=dict(sorted(counts.reason_kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
    )
    if result.rows_accepted + result.rows_rejected != result.rows_in:
        raise SRSError(
            f"{path}: {result.rows_in} rows read but {result.rows_accepted} accepted and "
            f"{result.rows_rejected} rejected; this is a bug in ingest, please report it"
        )
    return result


def _refuse_unshared(
    frame: pd.DataFrame, dictionary: DataDictionary, shared: set[str], path: Path
) -> None:
    """``UnsharedVariables`` when a variable of the dictionary the agreement does not list
    holds a value on any row (``delivery_action`` is not a variable of the data)."""
    filled = {
        spec.name: ~_is_blank(frame[spec.name])
        for spec in dictionary.columns
        if spec.name not in shared
    }
    unshared = [name for name, mask in filled.items() if mask.any()]
    if not unshared:
        return
    rows = int(pd.concat([filled[name] for name in unshared], axis=1).any(axis=1).sum())
    raise UnsharedVariables(
        f"{path}: {rows:,} row(s) carry values in {', '.join(unshared)}, which the "
        f"data-sharing agreement does not list for {dictionary.source}; nothing was taken in: "
        "the provider must leave these variables out (empty) or the agreement be amended "
        "(`srs agreement amend`)",
        variables=unshared,
        rows=rows,
    )


def write_rejects(result: IngestResult, path: Path) -> None:
    """Write the rejects (line, reasons, the record as read) as CSV."""
    result.rejects.to_csv(path, index=False)

"""Export a synthetic replica for open use: CSV and Parquet per table, a Frictionless
``datapackage.json`` (Table Schema with the data dictionary), the fidelity and privacy reports,
a README with the synthetic-data notice and licence; and validate such a package with the
``frictionless`` library, the reference implementation of the Data Package standard.

Exports are all or nothing: the package is written to a temporary folder beside ``out_dir``,
validated, and renamed into place only when complete; a replica whose privacy report did not
pass is refused before anything is written. The fidelity report is cut to what may leave the
environment (``synthetic.fidelity.publishable_fidelity``: scores, verdicts, and real-side
figures only as they passed disclosure control) before it is written or rendered.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from frictionless import Dialect, Field, FrictionlessException, Package, Resource, errors
from frictionless import Error as FrictionlessError
from frictionless.formats import CsvControl

from synthetic.errors import SyntheticError
from synthetic.fidelity import FOREIGN_KEYS, PRIMARY_KEYS, publishable_fidelity, table_label
from synthetic.package_checks import (
    CSV_FORMAT,
    DATAPACKAGE,
    UTF8,
    DescriptorUnreadable,
    descriptor_problems,
    read_descriptor,
)
from synthetic.privacy import publishable_privacy
from synthetic.report import PRIVACY_STATEMENT, SYNTHETIC_NOTICE, render_report

DEFAULT_TITLE = "Synthetic cross-justice linked data"
LICENCES = {
    "CC-BY-4.0": (
        "Creative Commons Attribution 4.0",
        "https://creativecommons.org/licenses/by/4.0/",
    ),
    "CC0-1.0": ("CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
    "ODC-BY-1.0": (
        "Open Data Commons Attribution License 1.0",
        "https://opendatacommons.org/licenses/by/1-0/",
    ),
    "OGL-UK-3.0": (
        "Open Government Licence v3.0",
        "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/",
    ),
}
# Table Schema field types of the data dictionary's types.
FIELD_TYPES = {
    "flag": "boolean",
    "integer": "integer",
    "number": "number",
    "date": "date",
    "string": "string",
}
NAME_PATTERN = re.compile(r"^[a-z0-9._-]+$")
# Field types synthetic.open_data reads back from a CSV: the ones this module writes.
READABLE_TYPES = (*FIELD_TYPES.values(), "datetime")
# Frictionless lists at most this many problems of a file.
ERROR_LIMIT = 1000
# Frictionless's error notes hold their figures in quotes; these read them back for our messages.
CONSTRAINT_NOTE = re.compile(r'constraint "(?P<name>\w+)" is "(?P<value>.*)"')
EXPECTED_NOTE = re.compile(r'expected is "(?P<expected>.*)" and actual is "(?P<actual>.*)"')
SAME_ROW_NOTE = re.compile(r"row at position (?P<row>\d+)")
# What a cell breaking each Table Schema constraint (other than required and enum) did.
CONSTRAINT_PHRASES = {
    "minimum": "is below the minimum {value}",
    "maximum": "is above the maximum {value}",
    "exclusiveMinimum": "is not above {value}",
    "exclusiveMaximum": "is not below {value}",
    "minLength": "is shorter than {value} characters",
    "maxLength": "is longer than {value} characters",
    "pattern": "does not match the pattern {value}",
}
# Frictionless's errors of a data file it could not open or decode.
UNREADABLE_ERRORS = (
    "source-error",
    "scheme-error",
    "format-error",
    "encoding-error",
    "compression-error",
)


class ExportError(SyntheticError):
    """A replica cannot be exported; the message says why and what to do."""


class ExportRefused(ExportError):
    """The privacy report did not pass: nothing may be exported."""


def _privacy_failures(privacy: Mapping[str, Any]) -> list[str]:
    # The report's own list of failures, else every gate marked failed, at any depth.
    if isinstance(privacy.get("failures"), list) and privacy["failures"]:
        return [str(failure) for failure in privacy["failures"]]
    failures: list[str] = []

    def visit(value: Any, where: str) -> None:
        if isinstance(value, Mapping):
            name = value.get("gate") or value.get("name") or where
            if value.get("passed") is False and "gates" not in value:
                why = value.get("reason") or value.get("message") or ""
                failures.append(f"{name}: {why}" if why else str(name))
            for key, item in value.items():
                visit(item, f"{where}.{key}" if where else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                visit(item, f"{where}[{index}]")

    visit(privacy.get("gates", privacy.get("datasets", {})), "")
    return failures


def _check_privacy(privacy: Mapping[str, Any]) -> None:
    if privacy.get("passed") is True:
        return
    if "passed" not in privacy:
        raise ExportRefused(
            "the privacy report has no 'passed' verdict, so the replica was never gated; "
            "run the privacy gates (srs synth evaluate) and export only a replica that passes"
        )
    failures = _privacy_failures(privacy)
    why = "; ".join(failures) if failures else "the report gives no failing gate"
    raise ExportRefused(
        f"the replica failed its privacy gates ({why}); nothing was exported. Rebuild the "
        "replica (e.g. more generalisation or the differentially private mode) and gate it again"
    )


def _field(entry: Mapping[str, Any], series: pd.Series) -> dict[str, Any]:
    kind = FIELD_TYPES.get(str(entry.get("type")), "string")
    if kind == "date" and series.notna().any():
        values = series.dropna()
        if not (values == values.dt.normalize()).all():
            kind = "datetime"
    field: dict[str, Any] = {
        "name": str(entry["name"]),
        "type": kind,
        "description": str(entry.get("description", "")),
    }
    if kind == "boolean":
        field["trueValues"], field["falseValues"] = ["true"], ["false"]
    constraints: dict[str, Any] = {}
    if kind == "string" and entry.get("values"):
        constraints["enum"] = [str(value) for value in entry["values"]]
    if constraints:
        field["constraints"] = constraints
    return field


def table_schema(
    dataset: str,
    frame: pd.DataFrame,
    dictionary: Sequence[Mapping[str, Any]],
    datasets: Sequence[str],
) -> dict[str, Any]:
    """The Table Schema of one dataset: fields from its data dictionary (type, description, enum
    of its listed values), the primary key and the foreign keys to the other ``datasets``."""
    by_name = {str(entry["name"]): entry for entry in dictionary}
    missing = [column for column in frame.columns if column not in by_name]
    if missing:
        raise ExportError(
            f"{dataset} has column(s) {', '.join(missing)} that its data dictionary does not "
            "describe; export the replica with the dictionaries of its real datasets"
        )
    schema: dict[str, Any] = {
        "fields": [_field(by_name[column], frame[column]) for column in frame.columns],
        "missingValues": [""],
    }
    if dataset in PRIMARY_KEYS:
        schema["primaryKey"] = [PRIMARY_KEYS[dataset]]
        for field in schema["fields"]:
            if field["name"] == PRIMARY_KEYS[dataset]:
                field["constraints"] = {**field.get("constraints", {}), "required": True}
    foreign = [
        {
            "fields": [key.column],
            "reference": {"resource": table_label(key.parent), "fields": [key.parent_column]},
        }
        for key in FOREIGN_KEYS
        if key.dataset == dataset and key.parent in datasets
    ]
    if foreign:
        schema["foreignKeys"] = foreign
    return schema


def _csv_frame(frame: pd.DataFrame, schema: Mapping[str, Any]) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for field in schema["fields"]:
        column = frame[field["name"]]
        if field["type"] == "date":
            text = column.dt.strftime("%Y-%m-%d")
        elif field["type"] == "datetime":
            text = column.dt.strftime("%Y-%m-%dT%H:%M:%S")
        elif field["type"] == "boolean":
            text = column.map({True: "true", False: "false"})
        elif field["type"] == "integer":
            text = pd.to_numeric(column).astype("Int64").astype("string")
        elif field["type"] == "number":
            text = pd.to_numeric(column).astype("Float64").astype("string")
        else:
            text = column.astype("string")
        out[field["name"]] = text.astype(object).where(column.notna(), "")
    return out


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _readme(
    title: str, licence: str, resources: Sequence[Mapping[str, Any]], fidelity: Mapping[str, Any]
) -> str:
    name, url = LICENCES[licence]
    lines = [
        f"# {title}",
        "",
        f"**{SYNTHETIC_NOTICE}**",
        "",
        f"Licence: {name} ({licence}), {url}",
        "",
        "## Files",
        "",
    ]
    for resource in resources:
        lines.append(
            f"- `{resource['path']}` and `{resource['name']}.parquet`: {resource['title']}"
        )
    lines += [
        f"- `{DATAPACKAGE}`: Frictionless Data Package; each CSV's Table Schema holds the data "
        "dictionary (types, descriptions, allowed values, keys)",
        "- `report.html`, `fidelity.json`, `privacy.json`: how closely the replica follows the "
        "real data, and the privacy gates it passed",
        "",
        "## Fidelity",
        "",
        f"SDMetrics overall quality score: {fidelity.get('overall_score', 'not assessed')}.",
        "",
        "## Privacy",
        "",
        PRIVACY_STATEMENT,
        "",
        "## Loading",
        "",
        "```python",
        "import srs",
        "",
        'data = srs.open_data("cross_justice", path="THIS_FOLDER")',
        'journeys = data.dataset("linked/journeys")  # as s.dataset(...) in a researcher session',
        "```",
        "",
    ]
    return "\n".join(lines)


def export_replica(
    tables: Mapping[str, pd.DataFrame],
    dictionaries: Mapping[str, Sequence[Mapping[str, Any]]],
    out_dir: str | Path,
    *,
    fidelity: Mapping[str, Any],
    privacy: Mapping[str, Any],
    licence: str = "CC-BY-4.0",
    title: str = DEFAULT_TITLE,
    name: str = "cross-justice-synthetic",
    overwrite: bool = False,
) -> Path:
    """Write the open-data package of a replica to ``out_dir`` and return its path.

    ``tables`` maps dataset names (``linked/persons``...) to synthetic frames; files are named
    by the last part (``persons.csv``, ``persons.parquet``). Refuses (``ExportRefused``) unless
    ``privacy["passed"] is True``; refuses an existing ``out_dir`` unless ``overwrite``.
    ``fidelity`` (``FidelityReport.to_dict()``) is written as ``publishable_fidelity`` keeps
    it: real figures that did not pass disclosure control are withheld.
    """
    _check_privacy(privacy)
    fidelity = publishable_fidelity(fidelity)
    if licence not in LICENCES:
        raise ExportError(f"unknown licence {licence!r}; choose one of {', '.join(LICENCES)}")
    if not NAME_PATTERN.match(name):
        raise ExportError(f"package name {name!r} must be lower case letters, digits, . _ -")
    if not tables:
        raise ExportError("no tables to export; pass the synthetic linked datasets")
    for dataset in tables:
        if dataset not in dictionaries:
            raise ExportError(f"no data dictionary for {dataset}; pass the linked dictionaries")
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; choose a new folder or pass overwrite=True")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exception:
        raise _unwritable(out, exception) from None
    try:
        resources = []
        for dataset, frame in tables.items():
            label = table_label(dataset)
            frame = frame.reset_index(drop=True)
            schema = table_schema(dataset, frame, dictionaries[dataset], list(tables))
            csv_path = staging / f"{label}.csv"
            _csv_frame(frame, schema).to_csv(
                csv_path, index=False, encoding="utf-8", lineterminator="\n"
            )
            frame.to_parquet(staging / f"{label}.parquet", engine="pyarrow", index=False)
            resources.append(
                {
                    "name": label,
                    "dataset": dataset,
                    "title": f"Synthetic {dataset}",
                    "path": csv_path.name,
                    "profile": "tabular-data-resource",
                    "format": "csv",
                    "mediatype": "text/csv",
                    "encoding": "utf-8",
                    "bytes": csv_path.stat().st_size,
                    "hash": _sha256(csv_path),
                    "schema": schema,
                }
            )
        licence_name, licence_url = LICENCES[licence]
        package = {
            "profile": "tabular-data-package",
            "name": name,
            "title": title,
            "description": SYNTHETIC_NOTICE,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "licenses": [{"name": licence, "title": licence_name, "path": licence_url}],
            "resources": resources,
        }
        (staging / DATAPACKAGE).write_text(json.dumps(package, indent=2), encoding="utf-8")
        (staging / "fidelity.json").write_text(
            json.dumps(fidelity, indent=2, default=str), encoding="utf-8"
        )
        published = publishable_privacy(dict(privacy))
        (staging / "privacy.json").write_text(
            json.dumps(published, indent=2, default=str), encoding="utf-8"
        )
        (staging / "report.html").write_text(
            render_report(fidelity, published, title=title), encoding="utf-8"
        )
        (staging / "README.md").write_text(
            _readme(title, licence, resources, fidelity), encoding="utf-8"
        )
        problems = validate_package(staging)
        if problems:
            raise ExportError(
                "the replica does not conform to its own schema, so nothing was exported "
                f"({len(problems)} problem(s), the first shown): " + "; ".join(problems[:10])
            )
        staging.chmod(0o755)  # mkdtemp makes it private; an open-data folder is for everyone
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except OSError as exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise _unwritable(out, exception) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _unwritable(out: Path, exception: OSError) -> ExportError:
    # A folder that cannot be made or written: a file in its path, no permission, a full disk.
    blocker = next((part for part in out.parents if part.exists() and not part.is_dir()), None)
    if blocker is not None:
        reason = f"{blocker} is a file, not a folder"
    else:
        where = f" ({exception.filename})" if exception.filename else ""
        reason = f"{exception.strerror or exception}{where}"
    return ExportError(
        f"cannot write the package to {out}: {reason}; nothing was exported. Choose a folder "
        "you can write to, or free some space"
    )


def _promise_problems(descriptor: Mapping[str, Any]) -> list[str]:
    # What an exported package promises beyond the standard, which frictionless does not check
    # (descriptor_problems has already refused whatever would be fetched or read differently).
    resources = descriptor["resources"]
    if not resources:
        # The standard asks for at least one resource, but frictionless 5 accepts an empty list.
        return [f"{DATAPACKAGE} lists no resources; export the replica again, a CSV per table"]
    problems = []
    for resource in resources:
        where = f"{DATAPACKAGE}, resource {resource.get('name')}"
        # The standard leaves the hash optional and frictionless checks only a hash it is given;
        # our export always writes one, so a changed file cannot pass unnoticed.
        if not str(resource.get("hash", "")).startswith("sha256:"):
            problems.append(
                f"{where}: no sha256 hash of its file, so a change to the file would go "
                "unnoticed; export the replica again"
            )
        schema = resource.get("schema")
        # The standard allows a resource without a schema; open_data reads it from here.
        if not isinstance(schema, dict):
            problems.append(f"{where}: its Table Schema is not written out in {DATAPACKAGE}")
            continue
        # Table Schema has more types (year, geopoint...) than open_data can read from a CSV.
        for field in schema.get("fields", []):
            kind = field.get("type", "string")
            if kind not in READABLE_TYPES:
                problems.append(
                    f"{where}, field {field.get('name')}: type {kind!r} is not one open_data "
                    f"can read ({', '.join(READABLE_TYPES)})"
                )
    return problems


def _as_open_data_reads(descriptor: Mapping[str, Any], folder: Path) -> Package:
    # The package as frictionless would read it, made to read each CSV exactly as open_data's
    # pd.read_csv does: UTF-8, comma-separated, double quotes, row 1 the header, no comments,
    # nothing guessed (frictionless would otherwise sniff the delimiter and the header row).
    package = Package.from_descriptor(copy.deepcopy(dict(descriptor)), basepath=str(folder))
    for resource in package.resources:
        resource.format = CSV_FORMAT
        resource.encoding = UTF8[0]
        resource.dialect = Dialect(
            header=True,
            header_rows=[1],
            comment_char=None,
            comment_rows=[],
            skip_blank_rows=False,
            controls=[
                CsvControl(
                    delimiter=",",
                    quote_char='"',
                    double_quote=True,
                    escape_char=None,
                    skip_initial_space=False,
                )
            ],
        )
    return package


def _descriptor_message(error: FrictionlessError) -> str:
    note = error.note or error.title
    return f"{DATAPACKAGE} does not follow the Data Package standard: {note}"


def _listing(values: Sequence[Any], most: int = 12) -> str:
    shown = ", ".join(str(value) for value in values[:most])
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")


def _expected(field: Field | None) -> str:
    # The type a cell failed to be, as a researcher would name it.
    if field is None:
        return "of its field's type"
    default = field.format in (None, "", "default")
    if field.type == "boolean":
        return f"a boolean ({' or '.join([*field.true_values, *field.false_values])})"
    if field.type == "date":
        return "a date (YYYY-MM-DD)" if default else f"a date in the format {field.format}"
    if field.type == "datetime":
        return (
            "a date and time (YYYY-MM-DDThh:mm:ss)"
            if default
            else f"a date and time in the format {field.format}"
        )
    kinds = {"integer": "an integer", "number": "a number"}
    return kinds.get(field.type, f"a {field.type}" + ("" if default else f" ({field.format})"))


def _constraint_message(where: str, error: FrictionlessError, field: Field | None) -> str:
    match = CONSTRAINT_NOTE.search(error.note)
    name = match["name"] if match else ""
    value = (field.constraints if field else {}).get(name, match["value"] if match else "")
    if name == "required":
        return f"{where}: the value is missing, but the field is required"
    if name == "enum" and isinstance(value, list):
        return f"{where}: {error.cell!r} is not one of the allowed values ({_listing(value)})"
    broken = CONSTRAINT_PHRASES.get(name, f"breaks the constraint {name or error.note}")
    return f"{where}: {error.cell!r} {broken.format(value=value)}"


def _data_message(
    error: FrictionlessError, resource: Resource, package: Package, folder: Path
) -> str:
    # Our message of one of frictionless's data errors: file, row, field and what is wrong.
    file = resource.path if isinstance(resource.path, str) else resource.name
    schema = resource.schema
    row = getattr(error, "row_number", None)
    field_name = getattr(error, "field_name", None)
    field = schema.get_field(field_name) if field_name and schema.has_field(field_name) else None
    kind = error.type
    figures = EXPECTED_NOTE.search(error.note or "")
    if kind == "hash-count":
        return (
            f"{file} does not match its hash in {DATAPACKAGE}: the file was changed after "
            "export; restore it or export the replica again"
        )
    if kind == "byte-count" and figures:
        return (
            f"{file} is {figures['actual']} bytes where {DATAPACKAGE} says "
            f"{figures['expected']}: the file was changed after export"
        )
    if isinstance(error, errors.LabelError):
        where = f"{file} header, column {error.field_number}"
        labels = {
            "incorrect-label": f"{error.label!r} where the schema has field {field_name!r} (the "
            "columns must be the schema's fields, in order)",
            "missing-label": f"no column for the schema's field {field_name!r}",
            "extra-label": f"{error.label!r} is not a field of the schema",
            "blank-label": "the column has no name",
            "duplicate-label": f"{error.label!r} also names an earlier column",
        }
        return f"{where}: {labels.get(kind, error.note or error.title)}"
    if isinstance(error, errors.CellError):
        where = f"{file} row {row}, field {field_name}"
        if kind == "type-error":
            return f"{where}: {error.cell!r} is not {_expected(field)}"
        if kind == "constraint-error":
            return _constraint_message(where, error, field)
        earlier = SAME_ROW_NOTE.search(error.note or "")
        if kind == "unique-error" and earlier:
            return f"{where}: {error.cell!r} is also in row {earlier['row']}; values must be unique"
        if kind == "missing-cell":
            return f"{where}: the row ends before this field"
        if kind == "extra-cell":
            return f"{file} row {row}: a cell {error.cell!r} after the last field"
        return f"{where}: {error.note or error.title}"
    if kind == "primary-key":
        key = schema.primary_key
        earlier = SAME_ROW_NOTE.search(error.note or "")
        if not earlier:
            return f"{file} row {row}: the primary key {', '.join(key)} is empty"
        names = schema.field_names
        values = [
            error.cells[names.index(name)] for name in key if names.index(name) < len(error.cells)
        ]
        return (
            f"{file} row {row}: primary key {', '.join(key)} {_listing(values)!r} is also in row "
            f"{earlier['row']}; each row needs a key of its own"
        )
    if kind == "foreign-key":
        parent = package.get_resource(error.reference_name) if error.reference_name else resource
        return (
            f"{file} row {row}, field {', '.join(error.field_names)}: "
            f"{_listing(error.field_cells)!r} matches no "
            f"{', '.join(error.reference_field_names)} in {parent.path}"
        )
    if kind == "blank-row":
        return f"{file} row {row} is blank"
    if kind in UNREADABLE_ERRORS and not (folder / file).is_file():
        return f"{file} is missing: {DATAPACKAGE} lists it; restore it or export the replica again"
    if kind in UNREADABLE_ERRORS:
        return f"{file} cannot be read: {error.note or error.title}"
    place = f"{file} row {row}" if row else file
    return f"{place}: {error.note or error.title}"


def validate_package(directory: str | Path) -> list[str]:
    """Check an exported package with the ``frictionless`` library, the reference implementation
    of the Frictionless Data Package standard; return its problems in plain words.

    First, with ``json`` alone, ``synthetic.package_checks.descriptor_problems`` refuses what no
    reader may follow (a profile, schema or table named by a URL or a path outside the folder, a
    CSV dialect, an encoding other than UTF-8); such a package is never handed to frictionless,
    and nothing is fetched. Frictionless then reads each CSV exactly as ``open_data`` does.
    Frictionless checks ``datapackage.json`` against the standard and each CSV against its Table
    Schema: the file's hash and size, the header (the schema's fields, in order), the type of
    every cell, the constraints (required, enum, unique, minimum...), the primary key (present
    and unique) and the foreign keys across resources (an empty key refers to nothing). We add
    only what an exported package promises beyond the standard: at least one resource, each a
    file in the folder with a sha256 hash and its Table Schema written out, in the types
    ``open_data`` reads. Rows count as in a spreadsheet, the header being row 1. An empty list
    means the package is valid:

    >>> validate_package("open-data/cross_justice")  # doctest: +SKIP
    ["persons.csv row 7, field birth_year: 'abc' is not an integer"]
    """
    folder = Path(directory)
    # Ours: frictionless would say only that it "cannot retrieve metadata" there.
    if not (folder / DATAPACKAGE).is_file():
        return [f"{folder} has no {DATAPACKAGE}"]
    try:
        descriptor = read_descriptor(folder)
    except DescriptorUnreadable as exception:
        return [str(exception)]
    # Before frictionless sees it: it would fetch a schema, dialect or profile named by a URL
    # while it reads the descriptor, and follow a dialect that hides rows open_data loads.
    refused = descriptor_problems(descriptor, folder)
    if refused:
        return refused
    try:
        package = _as_open_data_reads(descriptor, folder)
    except FrictionlessException as exception:
        return [_descriptor_message(error) for error in exception.reasons or [exception.error]]
    problems = _promise_problems(descriptor)
    report = package.validate(limit_errors=ERROR_LIMIT)
    problems += [_descriptor_message(error) for error in report.errors]
    for task in report.tasks:
        resource = package.get_resource(task.name)
        problems += [_data_message(error, resource, package, folder) for error in task.errors]
        if len(task.errors) >= ERROR_LIMIT:
            problems.append(f"{task.place}: checking stopped after {ERROR_LIMIT} problems")
    return problems

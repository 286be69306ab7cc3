"""Export a synthetic replica for open use: CSV and Parquet per table, a Frictionless
``datapackage.json`` (Table Schema with the data dictionary), the fidelity and privacy reports,
a README with the synthetic-data notice and licence; and validate such a package against its
own schema.

Exports are all or nothing: the package is written to a temporary folder beside ``out_dir``,
validated, and renamed into place only when complete; a replica whose privacy report did not
pass is refused before anything is written. The fidelity report is cut to what may leave the
environment (``synthetic.fidelity.publishable_fidelity``: scores, verdicts, and real-side
figures only as they passed disclosure control) before it is written or rendered.
"""

from __future__ import annotations

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

from synthetic.errors import SyntheticError
from synthetic.fidelity import FOREIGN_KEYS, PRIMARY_KEYS, publishable_fidelity, table_label
from synthetic.privacy import publishable_privacy
from synthetic.report import PRIVACY_STATEMENT, SYNTHETIC_NOTICE, render_report

DATAPACKAGE = "datapackage.json"
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
TRUE_VALUES, FALSE_VALUES = ("true", "True", "TRUE", "1"), ("false", "False", "FALSE", "0")
NAME_PATTERN = re.compile(r"^[a-z0-9._-]+$")
INTEGER_PATTERN = re.compile(r"^[+-]?\d+$")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
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
                "the replica does not conform to its own schema, so nothing was exported: "
                + "; ".join(problems[:10])
            )
        staging.chmod(0o755)  # mkdtemp makes it private; an open-data folder is for everyone
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _descriptor_problems(package: Any) -> list[str]:
    if not isinstance(package, dict):
        return [f"{DATAPACKAGE} is not a JSON object"]
    problems = []
    if not isinstance(package.get("resources"), list) or not package["resources"]:
        return [f"{DATAPACKAGE} has no resources"]
    if "name" in package and not NAME_PATTERN.match(str(package["name"])):
        problems.append(
            f"package name {package['name']!r} is not lower case letters, digits, . _ -"
        )
    for licence in package.get("licenses", []):
        if not (isinstance(licence, dict) and (licence.get("name") or licence.get("path"))):
            problems.append("a licence needs a name or a path")
    names = [r.get("name") for r in package["resources"] if isinstance(r, dict)]
    if len(set(names)) != len(names):
        problems.append("resource names are not unique")
    for resource in package["resources"]:
        if not isinstance(resource, dict):
            problems.append("a resource is not a JSON object")
            continue
        label = resource.get("name", "?")
        for key in ("name", "path", "schema"):
            if key not in resource:
                problems.append(f"resource {label}: missing {key!r}")
        if "name" in resource and not NAME_PATTERN.match(str(resource["name"])):
            problems.append(f"resource {label}: name is not lower case letters, digits, . _ -")
        path = str(resource.get("path", ""))
        if path.startswith("/") or ".." in Path(path).parts:
            problems.append(f"resource {label}: path {path!r} must be relative, inside the package")
        schema = resource.get("schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
            problems.append(f"resource {label}: schema has no fields")
            continue
        field_names = []
        for field in schema["fields"]:
            if not isinstance(field, dict) or "name" not in field:
                problems.append(f"resource {label}: a field has no name")
                continue
            field_names.append(field["name"])
            if field.get("type", "string") not in (*FIELD_TYPES.values(), "datetime"):
                problems.append(
                    f"resource {label}: field {field['name']} has unsupported type {field.get('type')!r}"
                )
        for key in schema.get("primaryKey", []):
            if key not in field_names:
                problems.append(f"resource {label}: primary key {key} is not a field")
        for foreign in schema.get("foreignKeys", []):
            reference = foreign.get("reference", {})
            if any(f not in field_names for f in foreign.get("fields", [])):
                problems.append(
                    f"resource {label}: foreign key fields {foreign.get('fields')} are not fields"
                )
            if reference.get("resource") not in names:
                problems.append(
                    f"resource {label}: foreign key refers to unknown resource {reference.get('resource')!r}"
                )
    return problems


def _cell_problems(
    values: pd.Series, field: Mapping[str, Any], missing: Sequence[str]
) -> pd.Series:
    # True where a non-missing cell cannot be read as the field's type.
    present = ~values.isin(missing)
    kind = field.get("type", "string")
    if kind == "integer":
        bad = ~values.str.match(INTEGER_PATTERN)
    elif kind == "number":
        bad = pd.to_numeric(values, errors="coerce").isna() & ~values.isin(["NaN", "INF", "-INF"])
    elif kind == "boolean":
        allowed = [*field.get("trueValues", TRUE_VALUES), *field.get("falseValues", FALSE_VALUES)]
        bad = ~values.isin(allowed)
    elif kind == "date":
        bad = (
            ~values.str.match(DATE_PATTERN)
            | pd.to_datetime(values, format="%Y-%m-%d", errors="coerce").isna()
        )
    elif kind == "datetime":
        bad = pd.to_datetime(values, format="ISO8601", errors="coerce").isna()
    else:
        bad = pd.Series(False, index=values.index)
    return present & bad


def validate_package(directory: str | Path) -> list[str]:
    """Check an exported package against its own ``datapackage.json``; return the problems.

    For each CSV resource: the file exists and matches its hash, the header names the schema's
    fields in order, every cell is castable to its field type, enum and required constraints
    hold, the primary key is unique and present, and every foreign key resolves to a row of the
    referenced resource (empty keys refer to nothing). An empty list means the package is valid.
    """
    folder = Path(directory)
    try:
        package = json.loads((folder / DATAPACKAGE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"{folder} has no {DATAPACKAGE}"]
    except json.JSONDecodeError as error:
        return [f"{DATAPACKAGE} is not valid JSON: {error}"]
    problems = _descriptor_problems(package)
    if problems:
        return problems
    frames: dict[str, pd.DataFrame] = {}
    for resource in package["resources"]:
        label, path = resource["name"], folder / resource["path"]
        if not path.is_file():
            problems.append(f"resource {label}: {resource['path']} is missing")
            continue
        if "hash" in resource and _sha256(path) != resource["hash"]:
            problems.append(f"resource {label}: {resource['path']} does not match its hash")
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, encoding=resource.get("encoding", "utf-8")
        )
        frames[label] = frame
        schema = resource["schema"]
        names = [field["name"] for field in schema["fields"]]
        if list(frame.columns) != names:
            problems.append(
                f"resource {label}: header {list(frame.columns)} differs from the schema fields {names}"
            )
            continue
        missing = schema.get("missingValues", [""])
        for field in schema["fields"]:
            values = frame[field["name"]]
            bad = _cell_problems(values, field, missing)
            where = f"resource {label}, field {field['name']}"
            if bad.any():
                first = int(bad.to_numpy().nonzero()[0][0])
                problems.append(
                    f"{where}: {int(bad.sum())} value(s) are not {field['type']}, e.g. {values.iloc[first]!r} in row {first + 2}"
                )
            constraints = field.get("constraints", {})
            present = ~values.isin(missing)
            if "enum" in constraints:
                outside = present & ~values.isin([str(v) for v in constraints["enum"]])
                if outside.any():
                    found = sorted(values[outside].unique().tolist())[:5]
                    problems.append(
                        f"{where}: {int(outside.sum())} value(s) outside the allowed values, e.g. {found}"
                    )
            if constraints.get("required") and (~present).any():
                problems.append(f"{where}: {int((~present).sum())} required value(s) are empty")
        key = schema.get("primaryKey", [])
        key = [key] if isinstance(key, str) else key
        if key:
            keys = frame[key]
            if keys.isin(missing).any().any():
                problems.append(f"resource {label}: primary key {key} has empty values")
            if keys.duplicated().any():
                problems.append(
                    f"resource {label}: primary key {key} has {int(keys.duplicated().sum())} duplicate(s)"
                )
    for resource in package["resources"]:
        label = resource["name"]
        if label not in frames or list(frames[label].columns) != [
            f["name"] for f in resource["schema"]["fields"]
        ]:
            continue
        for foreign in resource["schema"].get("foreignKeys", []):
            fields = (
                foreign["fields"] if isinstance(foreign["fields"], list) else [foreign["fields"]]
            )
            reference = foreign["reference"]
            parent_fields = (
                reference["fields"]
                if isinstance(reference["fields"], list)
                else [reference["fields"]]
            )
            parent = frames.get(reference["resource"])
            if parent is None or any(f not in parent.columns for f in parent_fields):
                problems.append(
                    f"resource {label}: foreign key {fields} refers to {reference['resource']}, which cannot be read"
                )
                continue
            child = frames[label][fields]
            missing_values = resource["schema"].get("missingValues", [""])
            child = child[~child.isin(missing_values).any(axis=1)]
            known = set(map(tuple, parent[parent_fields].to_numpy().tolist()))
            orphans = [row for row in map(tuple, child.to_numpy().tolist()) if row not in known]
            if orphans:
                problems.append(
                    f"resource {label}: {len(orphans)} foreign key value(s) of {fields} do not resolve to {reference['resource']}, e.g. {list(orphans[0])}"
                )
    return problems

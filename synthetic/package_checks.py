"""What a ``datapackage.json`` may hold before any library reads it: each table one CSV file in
the package folder, read as ``synthetic.open_data`` reads it (comma-separated UTF-8, one header
row), its Table Schema written out, and nothing named by a URL or a path outside the folder.

Both readers of an open-data package call :func:`descriptor_problems` first: the validator
(``synthetic.export.validate_package``) before it hands the descriptor to frictionless, which
would download a schema, dialect or profile named by a URL and follow a CSV dialect that hides
rows; and :func:`synthetic.open_data.open_data`, so it loads only what the validator checks.
This module reads JSON only (no pandas, no frictionless), so ``open_data`` stays light.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from synthetic.errors import SyntheticError

DATAPACKAGE = "datapackage.json"
# The profiles synthetic.export.export_replica writes: standard names, never fetched.
PACKAGE_PROFILE = "tabular-data-package"
RESOURCE_PROFILE = "tabular-data-resource"
# The one resource type of a tabular-data-resource, and the format and encoding open_data reads.
RESOURCE_TYPE = "table"
CSV_FORMAT = "csv"
UTF8 = ("utf-8", "utf8")
# Frictionless's older names of a profile ("profiles"), a dialect ("layout") and a path ("url").
PROFILE_KEYS = ("profile", "profiles", "$schema")
DIALECT_KEYS = ("dialect", "layout")
# Ways of reading a table other than one plain file, which open_data does not follow.
OTHER_READINGS = {
    "data": "inline data",
    "url": "a URL",
    "extrapaths": "more files to join to it",
    "innerpath": "a file inside an archive",
    "compression": "a compressed file",
}
# The values open_data can follow of the keys that say how to read a table, and its reading.
HOW_OPEN_DATA_READS = {
    "type": ((RESOURCE_TYPE,), "a table"),
    "format": ((CSV_FORMAT,), "a CSV file"),
    "scheme": (("file",), "a file in the package folder"),
    "encoding": (UTF8, "in UTF-8"),
}
RESEND = "remove it, or export the replica again"


class DescriptorUnreadable(SyntheticError):
    """``datapackage.json`` is not a JSON object; the message says why."""


def read_descriptor(folder: Path) -> dict[str, Any]:
    """``folder``'s ``datapackage.json`` as a dict, read with ``json`` alone (nothing fetched).

    Raises ``DescriptorUnreadable`` when it is not JSON or not a JSON object.
    """
    try:
        descriptor = json.loads((folder / DATAPACKAGE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exception:
        raise DescriptorUnreadable(
            f"{DATAPACKAGE} cannot be read as a Data Package: {exception}"
        ) from None
    if not isinstance(descriptor, dict):
        raise DescriptorUnreadable(
            f"{DATAPACKAGE} cannot be read as a Data Package: its JSON is not an object"
        )
    return descriptor


def _profile_problems(where: str, part: Mapping[str, Any], standard: str) -> list[str]:
    # A profile other than a standard name is a URL or file that frictionless would fetch.
    problems = []
    for key in PROFILE_KEYS:
        if key not in part or (key == "profile" and part[key] == standard):
            continue
        problems.append(
            f"{where}: {key} {part[key]!r} is not read, since a profile named by a URL or a file "
            f"would be fetched; the export writes only profile {standard!r}, so {RESEND}"
        )
    return problems


def _dialect_problems(where: str, part: Mapping[str, Any]) -> list[str]:
    return [
        f"{where}: {key} {part[key]!r} would make a reader skip or split rows that open_data "
        f"reads (comma-separated UTF-8, one header row), so they would go unchecked; {RESEND}"
        for key in DIALECT_KEYS
        if key in part
    ]


def _path_problem(where: str, path: Any, folder: Path) -> str | None:
    # One plain file name relative to the folder: not a URL, not absolute, no "..", not a list
    # of parts, and not a link that leads out of the folder.
    refused = (
        f"{where}: path {path!r} is not one file in the package folder; give the name of its "
        f"CSV beside {DATAPACKAGE}, e.g. persons.csv"
    )
    if not isinstance(path, str) or not path.strip():
        return refused
    parts = PurePosixPath(path)
    if (
        urlparse(path).scheme
        or parts.is_absolute()
        or "\\" in path
        or path.startswith("~")
        or ".." in parts.parts
    ):
        return refused
    base = folder.resolve()
    try:
        inside = (base / path).resolve().is_relative_to(base)
    except (OSError, RuntimeError):  # a loop of links
        inside = False
    if not inside:
        return f"{where}: path {path!r} leads out of the package folder (a link); {RESEND}"
    return None


def _resource_problems(where: str, resource: Mapping[str, Any], folder: Path) -> list[str]:
    problems = _profile_problems(where, resource, RESOURCE_PROFILE)
    problems += _dialect_problems(where, resource)
    for key, reading in OTHER_READINGS.items():
        if key in resource:
            problems.append(
                f"{where}: {key} gives {reading}, which open_data does not read (one CSV file "
                f"per table); {RESEND}"
            )
    if "path" in resource:
        problem = _path_problem(where, resource["path"], folder)
        if problem:
            problems.append(problem)
    for key, (allowed, reading) in HOW_OPEN_DATA_READS.items():
        value = resource.get(key)
        if key in resource and not (isinstance(value, str) and value.lower() in allowed):
            problems.append(
                f"{where}: {key} {value!r} is not how open_data reads a table ({reading}); {RESEND}"
            )
    schema = resource.get("schema")
    if "schema" in resource and not isinstance(schema, dict):
        problems.append(
            f"{where}: its Table Schema is not written out in {DATAPACKAGE} (a schema named by "
            f"a path or URL is not fetched); {RESEND}"
        )
    elif isinstance(schema, dict) and "$schema" in schema:
        problems.append(
            f"{where}: the Table Schema's $schema {schema['$schema']!r} is not read, since a "
            f"profile named by a URL would be fetched; {RESEND}"
        )
    return problems


def descriptor_problems(descriptor: Mapping[str, Any], folder: str | Path) -> list[str]:
    """What in ``descriptor`` (a parsed ``datapackage.json`` of ``folder``) no reader of an
    open-data package may follow, in plain words; an empty list means it is safe to read.

    Refused: a profile or ``$schema`` other than the standard names the export writes
    (``tabular-data-package``, ``tabular-data-resource``), a schema not written out (a path or
    URL), any CSV dialect (the export writes none), an encoding other than UTF-8, a format other
    than CSV, and a table that is not one plain file name in the folder (a URL, an absolute
    path, ``..``, a list of parts, inline data, an archive, a link out of the folder).

    >>> descriptor_problems({"resources": [{"name": "t", "path": "/etc/passwd"}]}, ".")[0]
    "datapackage.json, resource t: path '/etc/passwd' is not one file in the package folder; ..."
    """
    folder = Path(folder)
    problems = _profile_problems(DATAPACKAGE, descriptor, PACKAGE_PROFILE)
    problems += _dialect_problems(DATAPACKAGE, descriptor)
    resources = descriptor.get("resources")
    if not isinstance(resources, list):
        return problems  # the standard's own check says what is wrong
    for number, resource in enumerate(resources, start=1):
        if not isinstance(resource, dict):
            problems.append(
                f"{DATAPACKAGE}, resource {number}: {resource!r} is not written out as an "
                f"object (a resource named by a path or URL is not fetched); {RESEND}"
            )
            continue
        where = f"{DATAPACKAGE}, resource {resource.get('name', number)}"
        problems += _resource_problems(where, resource, folder)
    return problems

"""Load an exported synthetic replica in a notebook, without accreditation or a database: the
same dataset names and column types as the vault tables, so code written on the open data runs
unchanged on the real data in a researcher session.

:func:`open_data` returns an :class:`OpenData`, which reads like a researcher session
(``srs.session()``): ``data.dataset(name)`` and ``data.datasets()`` behave as the session's, so
a notebook differs between the open data and the vault data only in the line that picks the
source. It is also a ``dict`` of dataset name -> DataFrame, as before. In a notebook:

>>> data = open_data("cross_justice")                     # doctest: +SKIP
>>> data.datasets()                                       # doctest: +SKIP
['linked/journeys', 'linked/persons', 'linked/reoffending', 'linked/victims']
>>> journeys = data.dataset("linked/journeys")            # doctest: +SKIP
>>> journeys = data["linked/journeys"]                    # doctest: +SKIP

The folder is ``path``, else ``$SRS_OPEN_DATA``, else ``~/.srs/open-data/<name>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from synthetic.errors import SyntheticError
from synthetic.package_checks import (
    DATAPACKAGE,
    DescriptorUnreadable,
    descriptor_problems,
    read_descriptor,
)

OPEN_DATA_ENV = "SRS_OPEN_DATA"
DEFAULT_OPEN_DATA_ROOT = Path("~/.srs/open-data")
# The attribute a session's dataset() sets on its frames; set here too so outputs name their source.
DATASET_ATTRIBUTE = "srs_dataset"
ENGINES = ("pandas", "polars")  # as srs.research.session.ENGINES
# Data-dictionary types of Table Schema field types: synthetic.export.FIELD_TYPES read backwards
# (the export writes flags as booleans and dates with a time as datetimes).
DICTIONARY_TYPES = {"boolean": "flag", "datetime": "date"}


class OpenDataNotFound(SyntheticError):
    """No exported replica where one was looked for; the message says how to get one."""


class OpenDataError(SyntheticError):
    """The open data cannot give what was asked (unknown engine, a vault-only option)."""


class OpenDataRefused(OpenDataError):
    """The package's ``datapackage.json`` asks for what no reader may follow (a URL, a file
    outside the folder, a CSV dialect, another encoding); the message lists it all."""


class UnknownDataset(OpenDataError, KeyError):
    """No such dataset in the open data; the message names the ones there are."""

    __str__ = Exception.__str__  # the message, not KeyError's quoted repr of it


class OpenData(dict[str, pd.DataFrame]):
    """The tables of an exported replica, read like a researcher session's datasets.

    ``dataset(name, engine="pandas")`` and ``datasets()`` have the session's signatures and
    results, so analysis code takes either as its data source; as a ``dict`` it maps dataset
    names to the loaded frames (``data["linked/journeys"]``). ``notice`` is the package's
    synthetic-data notice, ``folder`` where it was read from, ``package`` its
    ``datapackage.json``. It holds no connection: ``close()`` and ``with`` are there only so
    session code that uses them runs unchanged.
    """

    def __init__(
        self,
        tables: dict[str, pd.DataFrame],
        *,
        name: str,
        folder: Path,
        package: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(tables)
        self.name = name
        self.folder = folder
        self.package = package or {}
        self.notice: str = self.package.get("description", "")

    def __repr__(self) -> str:
        shapes = ", ".join(f"{dataset} ({len(frame):,} rows)" for dataset, frame in self.items())
        return f"<srs open data {self.name!r} (synthetic) from {self.folder}: {shapes}>"

    def datasets(self) -> list[str]:
        """Names of the datasets in the package, sorted (as a session lists its grants)."""
        return sorted(self)

    def dataset(self, name: str, engine: str = "pandas", *, version: int | None = None) -> Any:
        """A dataset as a pandas or polars frame: a fresh copy on each call, as a session's read
        is, so changing it leaves the next read as exported.

        ``version`` is accepted for the session's signature but the package holds one version
        of each table, so only ``None`` is valid.

        >>> journeys = data.dataset("linked/journeys")                  # doctest: +SKIP
        >>> persons = data.dataset("linked/persons", engine="polars")   # doctest: +SKIP
        """
        if engine not in ENGINES:
            raise OpenDataError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
        if version is not None:
            raise OpenDataError(
                f"the open data {self.name!r} hold one version of each table; version= applies "
                "only to vault datasets in a researcher session, so leave it out here"
            )
        if name not in self:
            raise UnknownDataset(
                f"no dataset {name!r} in the open data {self.name!r} at {self.folder}; it has "
                + ", ".join(self.datasets())
            )
        frame = self[name].copy()
        frame.attrs[DATASET_ATTRIBUTE] = name
        if engine == "polars":
            import polars as pl

            return pl.from_pandas(frame)
        return frame

    def data_dictionary(self, name: str) -> list[dict[str, Any]]:
        """The data dictionary of dataset ``name`` as the vault keeps it (each column's name,
        type, description and, where public, its values), read back from the package's Table
        Schema; a practice session (``srs.research.practice``) stores it with the table.

        >>> data.data_dictionary("linked/victims")[2]                   # doctest: +SKIP
        {'name': 'sex', 'type': 'string', 'description': 'Sex of the victim', 'values': ['F', 'M']}
        """
        if name not in self:
            raise UnknownDataset(
                f"no dataset {name!r} in the open data {self.name!r}; it has "
                + ", ".join(self.datasets())
            )
        (resource,) = [
            r for r in self.package.get("resources", []) if r.get("dataset", r["name"]) == name
        ]
        entries = []
        for field in resource["schema"]["fields"]:
            kind = DICTIONARY_TYPES.get(field.get("type", "string"), field.get("type", "string"))
            entry = {
                "name": field["name"],
                "type": kind,
                "description": field.get("description", ""),
            }
            if kind == "flag":
                truth = (
                    field.get("falseValues", ["false"])[0],
                    field.get("trueValues", ["true"])[0],
                )
                entry["values"] = sorted(truth)
            elif field.get("constraints", {}).get("enum"):
                entry["values"] = list(field["constraints"]["enum"])
            entries.append(entry)
        return entries

    def close(self) -> None:
        """Nothing to release (a session closes its database connections here)."""

    def __enter__(self) -> OpenData:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_data_folder(name: str = "cross_justice", path: str | Path | None = None) -> Path:
    """Where :func:`open_data` looks: ``path``, else ``$SRS_OPEN_DATA``, else
    ``~/.srs/open-data/<name>``."""
    if path is not None:
        return Path(path).expanduser()
    if os.environ.get(OPEN_DATA_ENV):
        return Path(os.environ[OPEN_DATA_ENV]).expanduser()
    return (DEFAULT_OPEN_DATA_ROOT / name).expanduser()


def _typed(frame: pd.DataFrame, schema: dict[str, Any]) -> pd.DataFrame:
    # CSV fallback: types from the Table Schema, as the vault's Parquet would give them.
    out = pd.DataFrame(index=frame.index)
    for field in schema["fields"]:
        values = frame[field["name"]]
        empty = values == ""
        kind = field.get("type", "string")
        if kind in ("date", "datetime"):
            out[field["name"]] = pd.to_datetime(values.where(~empty), format="ISO8601")
        elif kind == "integer":
            out[field["name"]] = pd.to_numeric(values.where(~empty)).astype("Int64")
        elif kind == "number":
            out[field["name"]] = pd.to_numeric(values.where(~empty)).astype("float64")
        elif kind == "boolean":
            truth = values.isin(field.get("trueValues", ["true"]))
            out[field["name"]] = truth if not empty.any() else truth.astype("boolean").mask(empty)
        else:
            out[field["name"]] = values.astype("string").mask(empty)
    return out


def open_data(name: str = "cross_justice", path: str | Path | None = None) -> OpenData:
    """The tables of an exported replica as an :class:`OpenData`: ``.dataset(name)`` and
    ``.datasets()`` as in a researcher session, and a dict by dataset name (``linked/persons``...).

    Reads each table's Parquet file (the vault's own format, so column types match a session's
    ``dataset()``), or its CSV typed by the Table Schema when the Parquet file is absent.
    Refuses (``OpenDataRefused``), before reading any table, a ``datapackage.json`` that
    ``validate_package`` refuses too (``synthetic.package_checks.descriptor_problems``): a URL,
    a file outside the folder, a CSV dialect or an encoding other than UTF-8.
    """
    folder = open_data_folder(name, path)
    descriptor = folder / DATAPACKAGE
    if not descriptor.is_file():
        raise OpenDataNotFound(
            f"no open-data package {name!r} at {folder} (no {DATAPACKAGE}). Export one with "
            f"`srs synth export --out {folder}`, or download it there, or point "
            f"{OPEN_DATA_ENV} (or path=) at the folder that holds it"
        )
    try:
        package = read_descriptor(folder)
    except DescriptorUnreadable as exception:
        raise OpenDataRefused(f"{folder}: {exception}; export or download it again") from None
    # The validator's own refusals (synthetic.export.validate_package), so what is loaded here
    # is what it checks: one UTF-8 CSV per table in the folder, no dialect, nothing fetched.
    refused = descriptor_problems(package, folder)
    if refused:
        raise OpenDataRefused(f"the open data at {folder} were not loaded: " + "; ".join(refused))
    tables: dict[str, pd.DataFrame] = {}
    for resource in package.get("resources", []):
        dataset = resource.get("dataset", resource["name"])
        csv_path = folder / resource["path"]
        parquet_path = csv_path.with_suffix(".parquet")
        if parquet_path.is_file() and not parquet_path.resolve().is_relative_to(folder.resolve()):
            raise OpenDataRefused(
                f"{parquet_path} leads out of the package folder (a link); the open data at "
                f"{folder} were not loaded, export or download them again"
            )
        if parquet_path.is_file():
            frame = pd.read_parquet(parquet_path, engine="pyarrow")
        elif csv_path.is_file():
            raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8")
            frame = _typed(raw, resource["schema"])
        else:
            raise OpenDataNotFound(
                f"{folder} lists {resource['path']} but neither it nor its Parquet copy is "
                "there; the export is incomplete, export or download it again"
            )
        frame.attrs[DATASET_ATTRIBUTE] = dataset
        tables[dataset] = frame
    return OpenData(tables, name=name, folder=folder, package=package)

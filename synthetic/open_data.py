"""Load an exported synthetic replica in a notebook, without accreditation or a database: the
same dataset names and column types as the vault tables, so code written on the open data runs
unchanged on the real data in a researcher session.

>>> tables = open_data("cross_justice")                   # doctest: +SKIP
>>> journeys = tables["linked/journeys"]                  # as s.dataset("linked/journeys")

The folder is ``path``, else ``$SRS_OPEN_DATA``, else ``~/.srs/open-data/<name>``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from synthetic.errors import SyntheticError

OPEN_DATA_ENV = "SRS_OPEN_DATA"
DEFAULT_OPEN_DATA_ROOT = Path("~/.srs/open-data")
DATAPACKAGE = "datapackage.json"
# The attribute a session's dataset() sets on its frames; set here too so outputs name their source.
DATASET_ATTRIBUTE = "srs_dataset"


class OpenDataNotFound(SyntheticError):
    """No exported replica where one was looked for; the message says how to get one."""


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


def open_data(
    name: str = "cross_justice", path: str | Path | None = None
) -> dict[str, pd.DataFrame]:
    """The tables of an exported replica, by dataset name (``linked/persons``...).

    Reads each table's Parquet file (the vault's own format, so column types match a session's
    ``dataset()``), or its CSV typed by the Table Schema when the Parquet file is absent.
    """
    folder = open_data_folder(name, path)
    descriptor = folder / DATAPACKAGE
    if not descriptor.is_file():
        raise OpenDataNotFound(
            f"no open-data package {name!r} at {folder} (no {DATAPACKAGE}). Export one with "
            f"`srs synth export --out {folder}`, or download it there, or point "
            f"{OPEN_DATA_ENV} (or path=) at the folder that holds it"
        )
    package = json.loads(descriptor.read_text(encoding="utf-8"))
    tables: dict[str, pd.DataFrame] = {}
    for resource in package.get("resources", []):
        dataset = resource.get("dataset", resource["name"])
        csv_path = folder / resource["path"]
        parquet_path = csv_path.with_suffix(".parquet")
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
    return tables

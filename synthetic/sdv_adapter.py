"""The one door to SDV: fit and sample single-table synthesisers (Gaussian copula, CTGAN, TVAE)
by name, and save or load them.

SDV is licensed BSL-1.1, so no other module imports it; swapping the engine means rewriting this
file only. What SDV learns (its ``Metadata`` and the fitted model) records real minima, maxima
and category lists: a ``TableSynthesizer`` is a steward-zone object, to be sampled from and
never exported. Callers pass plain frames of categorical (string), numerical, boolean and
datetime columns; keys and pseudonyms must be dropped before fitting.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthetic.errors import SyntheticError

SYNTHESIZERS = ("gaussian_copula", "ctgan", "tvae")
DEFAULT_SYNTHESIZER = "gaussian_copula"


def check_synthesizer_name(name: str) -> str:
    """Return ``name`` if it is a known synthesiser, else raise ``SyntheticError``."""
    if name not in SYNTHESIZERS:
        raise SyntheticError(
            f"unknown synthesizer {name!r}: choose one of {', '.join(SYNTHESIZERS)} "
            f"({DEFAULT_SYNTHESIZER} is the fast default)"
        )
    return name


def metadata_dict(frame: pd.DataFrame, table_name: str) -> dict[str, Any]:
    """SDV 2.x metadata, as a dict, for one table: each column's sdtype from its pandas dtype.

    Strings and objects are categorical, booleans boolean, datetimes datetime, numbers
    numerical. The dict names columns and types only; SDV adds the real ranges when it fits.
    """
    columns: dict[str, dict[str, str]] = {}
    for column in frame.columns:
        dtype = frame[column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            columns[column] = {"sdtype": "boolean"}
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            columns[column] = {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"}
        elif pd.api.types.is_numeric_dtype(dtype):
            columns[column] = {"sdtype": "numerical"}
        else:
            columns[column] = {"sdtype": "categorical"}
    return {"METADATA_SPEC_VERSION": "V1", "tables": {table_name: {"columns": columns}}}


def _sdv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    # SDV's transformers expect numpy dtypes: nullable extension columns become object/float.
    plain = {}
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_bool_dtype(series.dtype):
            plain[column] = series.astype(bool)
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            plain[column] = series
        elif pd.api.types.is_numeric_dtype(series.dtype):
            plain[column] = series.astype("float64")
        else:
            plain[column] = series.astype(object).where(series.notna(), None)
    return pd.DataFrame(plain, index=frame.index)


class TableSynthesizer:
    """A fitted single-table synthesiser. Sample from it; never ship it: it holds real ranges.

    >>> model = TableSynthesizer.fit(frame, "persons", seed=1)  # doctest: +SKIP
    >>> fake = model.sample(1000)  # doctest: +SKIP
    """

    def __init__(self, engine: Any, name: str, table_name: str, columns: list[str]) -> None:
        self._engine = engine
        self.name = name
        self.table_name = table_name
        self.columns = columns

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        table_name: str,
        *,
        synthesizer: str = DEFAULT_SYNTHESIZER,
        seed: int = 0,
        epochs: int | None = None,
    ) -> TableSynthesizer:
        """Fit ``synthesizer`` (``gaussian_copula``, ``ctgan`` or ``tvae``) to ``frame``.

        ``epochs`` applies to CTGAN and TVAE only (SDV's default, 300, when None).
        """
        check_synthesizer_name(synthesizer)
        if frame.empty or not len(frame.columns):
            raise SyntheticError(
                f"cannot fit a synthesizer to {table_name!r}: it has no rows or no columns; "
                "build the linked datasets first"
            )
        from sdv.metadata import Metadata
        from sdv.single_table import (
            CTGANSynthesizer,
            GaussianCopulaSynthesizer,
            TVAESynthesizer,
        )

        metadata = Metadata.load_from_dict(metadata_dict(frame, table_name))
        options: dict[str, Any] = {}
        if synthesizer == "gaussian_copula":
            # Truncated normal marginals keep values and the uniform-encoded categories inside
            # their range (plain normals pile categories up at the ends) and fit 100k rows in
            # seconds; SDV's default (beta) is no closer here and slower.
            engine = GaussianCopulaSynthesizer(metadata, default_distribution="truncnorm")
        else:
            if epochs is not None:
                options["epochs"] = epochs
            kind = CTGANSynthesizer if synthesizer == "ctgan" else TVAESynthesizer
            engine = kind(metadata, enable_gpu=False, **options)
        _seed_everything(seed)
        with warnings.catch_warnings():
            # SDV warns about its own defaults (e.g. "no primary key"); they are not actionable.
            warnings.simplefilter("ignore")
            # SDV 2.x takes and returns data as {table name: frame}, even for one table.
            engine.fit({table_name: _sdv_frame(frame)})
        return cls(engine, synthesizer, table_name, list(frame.columns))

    def sample(self, rows: int, *, seed: int = 0) -> pd.DataFrame:
        """Draw ``rows`` synthetic rows (same columns as the fitted frame), reproducibly by seed."""
        if rows <= 0:
            return pd.DataFrame({column: pd.Series(dtype=object) for column in self.columns})
        _seed_everything(seed)
        # Reset SDV's transformers to their post-fit state, then seed the model itself.
        self._engine.reset_sampling()
        self._engine._set_random_state(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampled = self._engine.sample(num_rows=rows)
        if isinstance(sampled, dict):
            sampled = sampled[self.table_name]
        return sampled[self.columns].reset_index(drop=True)

    def save(self, path: Path) -> Path:
        """Write the fitted synthesiser to ``path`` (steward zone only: it holds real ranges)."""
        path = Path(path)
        self._engine.save(str(path))
        return path

    @classmethod
    def load(cls, path: Path) -> TableSynthesizer:
        """Load a synthesiser saved by ``save``."""
        from sdv.utils import load_synthesizer

        path = Path(path)
        if not path.exists():
            raise SyntheticError(f"no saved synthesizer at {path}: save one with .save(path)")
        engine = load_synthesizer(str(path))
        table_name = engine.metadata._get_single_table_name()
        columns = list(engine.metadata.tables[table_name].columns)
        name = {
            "GaussianCopulaSynthesizer": "gaussian_copula",
            "CTGANSynthesizer": "ctgan",
            "TVAESynthesizer": "tvae",
        }.get(type(engine).__name__, type(engine).__name__)
        return cls(engine, name, table_name, columns)


def _seed_everything(seed: int) -> None:
    # CTGAN/TVAE draw from torch and numpy's global state; seeding both makes runs repeatable.
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # the copula does not need torch
        return
    torch.manual_seed(seed)

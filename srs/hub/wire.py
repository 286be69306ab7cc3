"""The JSON format of calls between a researcher's kernel and the environment API.

Arguments and results are plain JSON, with a few tagged objects (``{"__srs__": TAG, ...}``):
frames and series as base64 Parquet (their ``attrs`` as JSON beside them), tuples, dicts with
keys JSON cannot hold, bytes, files the kernel uploads, dataclasses by type name and fields,
figures as PNG and fitted models as their estimates and summary. Never pickle: the kernel is
untrusted, so the API rebuilds only the few argument types it names (``ARGUMENT_TYPES``) and the
kernel rebuilds only result types it names (``RESULT_TYPES``; any other dataclass comes back as a
read-only ``RemoteRecord``). A value of any other type is refused with ``WireError``.

>>> decode_result(encode((1, "a")))
(1, 'a')
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import io
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from srs.errors import SRSError

TAG = "__srs__"
# The largest request body the API reads (a frame or a file sent from the kernel).
MAX_REQUEST_BYTES = 200 * 1024 * 1024
# Dataclasses the API rebuilds from a kernel's arguments: nothing that can run code.
ARGUMENT_TYPES = {
    "srs.session.OutputSummary": ("srs.session", "OutputSummary"),
    "disclosure.dp.queries.DPQuery": ("disclosure.dp.queries", "DPQuery"),
}
# Dataclasses the kernel rebuilds from results, as the local session returns them.
RESULT_TYPES = {
    **ARGUMENT_TYPES,
    "srs.session.RequestStatus": ("srs.session", "RequestStatus"),
    "srs.budget.BudgetState": ("srs.budget", "BudgetState"),
    "disclosure.dp.results.DPPreview": ("disclosure.dp.results", "DPPreview"),
    "disclosure.dp.results.NoiseLine": ("disclosure.dp.results", "NoiseLine"),
}
# What a fitted statsmodels model sends back: its estimates and fit statistics, where it has them.
MODEL_SERIES = ("params", "bse", "tvalues", "pvalues")
MODEL_NUMBERS = (
    "nobs",
    "df_model",
    "df_resid",
    "rsquared",
    "rsquared_adj",
    "prsquared",
    "llf",
    "llnull",
    "aic",
    "bic",
    "fvalue",
    "f_pvalue",
    "scale",
)


class WireError(SRSError):
    """A value cannot go between the kernel and the environment API: the message says which
    and what to send instead."""


class RequestTooLarge(WireError):
    """A call's data are over ``MAX_REQUEST_BYTES``."""


def too_large(size: int) -> str:
    """What to do when a call of ``size`` bytes is too large."""
    return (
        f"the call's data are {size / 1e6:,.0f} MB, over the {MAX_REQUEST_BYTES / 1e6:,.0f} MB the "
        "environment accepts: pass the dataset's name instead of a frame read from it, or select "
        "the rows and columns you need"
    )


@dataclasses.dataclass(frozen=True)
class FileUpload:
    """A file's name and bytes, read in the kernel and sent to the API (``custom_output``)."""

    name: str
    content: bytes

    def __repr__(self) -> str:
        return f"FileUpload({self.name!r}, {len(self.content)} bytes)"


class RemoteRecord:
    """A result the kernel has no class for: its fields as read-only attributes.

    >>> record = RemoteRecord("Example", {"rho": 0.01})
    >>> record.rho, record
    (0.01, Example(rho=0.01))
    """

    def __init__(self, type_name: str, fields: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_type_name", type_name)
        object.__setattr__(self, "_fields", dict(fields))

    def __getattr__(self, name: str) -> Any:
        fields = object.__getattribute__(self, "_fields")
        if name in fields:
            return fields[name]
        raise AttributeError(
            f"{self._type_name} has no attribute {name!r}; it has {', '.join(fields)}"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self._type_name} is read-only")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._fields})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteRecord) and (self._type_name, self._fields) == (
            other._type_name,
            other._fields,
        )

    __hash__ = None  # type: ignore[assignment]

    def as_dict(self) -> dict[str, Any]:
        """The fields, as a new dict."""
        return dict(self._fields)

    def __repr__(self) -> str:
        short = self._type_name.rsplit(".", 1)[-1]
        shown = ", ".join(f"{name}={value!r}" for name, value in self._fields.items())
        return f"{short}({shown})"


class ModelSummary:
    """A fitted model's summary as statsmodels prints it (text, and HTML in a notebook)."""

    def __init__(self, text: str, html: str) -> None:
        self._text, self._html = text, html

    def as_text(self) -> str:
        return self._text

    def as_html(self) -> str:
        return self._html

    def __str__(self) -> str:
        return self._text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self._html


class ModelResults(RemoteRecord):
    """A regression fitted in the environment: ``params``, ``bse``, ``tvalues``, ``pvalues``,
    ``conf_int()``, ``nobs``, ``df_resid``, fit statistics and ``summary()``, like the
    statsmodels results the local session returns (row-level parts such as residuals stay in the
    environment; fit the model on your frame with statsmodels for those).
    """

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """The 95% confidence intervals of the estimates (the level the environment computed)."""
        if not math.isclose(alpha, 0.05):
            raise WireError(
                "the environment sends 95% confidence intervals (alpha=0.05); compute others "
                "from params and bse"
            )
        return self._fields["conf_int_95"].copy()

    def summary(self) -> ModelSummary:
        return ModelSummary(self._fields["summary_text"], self._fields["summary_html"])

    def __repr__(self) -> str:
        nobs = self._fields.get("nobs")
        observations = f"{nobs:g} observations" if isinstance(nobs, int | float) else "fitted"
        return (
            f"<{self._fields.get('model', 'model')} results for {self._fields.get('formula')!r}: "
            f"{observations}; print(results.summary()) for the estimates>"
        )


# ------------------------------------------------------------------ encoding
def _labels_as_text(axis: pd.Index) -> bool:
    levels = [axis.get_level_values(i) for i in range(axis.nlevels)]
    return all(all(isinstance(label, str) for label in level) for level in levels)


def _mixed_index(axis: pd.Index) -> bool:
    # Parquet keeps one type per index level; an object level mixing types (False, True,
    # "Total" in a table's margins) does not survive it.
    levels = [axis.get_level_values(i) for i in range(axis.nlevels)]
    return any(
        level.dtype == object and len({type(label) for label in level if label is not None}) > 1
        for level in levels
    )


def _axis_payload(axis: pd.Index) -> dict[str, Any]:
    try:
        labels = encode(list(axis))
    except WireError as exc:
        raise WireError(f"a frame's labels cannot be sent ({exc})") from exc
    return {
        "labels": labels,
        "names": encode(list(axis.names)),
        "multi": isinstance(axis, pd.MultiIndex),
        "dtype": None if isinstance(axis, pd.MultiIndex) else str(axis.dtype),
    }


def _frame_payload(frame: pd.DataFrame) -> dict[str, Any]:
    """The frame's Parquet bytes, with its labels as JSON where Parquet cannot keep them
    (column names that are not text, an index level mixing types)."""
    plain = frame.copy(deep=False)
    plain.attrs = {}
    payload: dict[str, Any] = {}
    if not _labels_as_text(frame.columns):
        payload["columns"] = _axis_payload(frame.columns)
        plain.columns = [f"column {i}" for i in range(frame.shape[1])]
    if _mixed_index(frame.index):
        payload["index"] = _axis_payload(frame.index)
        plain = plain.reset_index(drop=True)
    buffer = io.BytesIO()
    try:
        plain.to_parquet(buffer, engine="pyarrow")
    except Exception as exc:  # pandas' and pyarrow's refusals have many types
        raise WireError(
            f"this frame cannot be sent as Parquet ({exc}); give each column one type "
            "(e.g. .astype(str)) and every column a different name"
        ) from exc
    payload["parquet"] = base64.b64encode(buffer.getvalue()).decode("ascii")
    return payload


def _model_fields(results: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "model": type(getattr(results, "model", results)).__name__,
        "formula": getattr(getattr(results, "model", None), "formula", None),
    }
    for name in MODEL_SERIES:
        if hasattr(results, name):
            fields[name] = pd.Series(getattr(results, name))
    fields["conf_int_95"] = pd.DataFrame(results.conf_int(0.05)).rename(
        columns={0: "lower", 1: "upper"}
    )
    for name in MODEL_NUMBERS:
        try:
            value = getattr(results, name, None)
        except (NotImplementedError, ValueError, np.linalg.LinAlgError):
            continue  # statsmodels computes these lazily, and some not for every model
        if isinstance(value, int | float | np.integer | np.floating):
            fields[name] = float(value)
    summary = results.summary()
    fields["summary_text"] = summary.as_text()
    fields["summary_html"] = summary.as_html()
    return fields


def encode(value: Any) -> Any:
    """``value`` as JSON-ready data, tagging what JSON cannot hold; ``WireError`` for a type that
    has no wire form."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [encode(v) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: encode(v) for k, v in value.items()}
        return {TAG: "dict", "items": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, bytes | bytearray):
        return {TAG: "bytes", "base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, pd.DataFrame):
        return {TAG: "frame", **_frame_payload(value), "attrs": encode(dict(value.attrs))}
    if isinstance(value, pd.Series):
        frame = value.to_frame(name="values")
        return {
            TAG: "series",
            **_frame_payload(frame),
            "name": encode(value.name),
            "attrs": encode(dict(value.attrs)),
        }
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return encode(value.tolist())
    if isinstance(value, FileUpload):
        content = base64.b64encode(value.content).decode("ascii")
        return {TAG: "file", "name": value.name, "base64": content}
    module = type(value).__module__
    if module.startswith("polars") and hasattr(value, "to_pandas"):
        return encode(value.to_pandas())
    if module.startswith("matplotlib") and hasattr(value, "savefig"):
        png = io.BytesIO()
        value.savefig(png, format="png", metadata={"Software": None})
        return {TAG: "figure", "png": base64.b64encode(png.getvalue()).decode("ascii")}
    if module.startswith("statsmodels") and hasattr(value, "params"):
        return {TAG: "model", "fields": encode(_model_fields(value))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            TAG: "dataclass",
            "type": f"{module}.{type(value).__qualname__}",
            "fields": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, RemoteRecord):
        return {TAG: "dataclass", "type": value._type_name, "fields": encode(value.as_dict())}
    raise WireError(
        f"a {type(value).__module__}.{type(value).__qualname__} cannot be sent to or from the "
        "environment; send numbers, text, lists, dicts, frames, series or an output's id"
    )


# ------------------------------------------------------------------ decoding
def _base64(payload: Mapping[str, Any], key: str) -> bytes:
    text = payload.get(key)
    if not isinstance(text, str):
        raise WireError(f"a {payload.get(TAG)!r} value needs {key!r} as base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise WireError(f"{key!r} of a {payload.get(TAG)!r} value is not base64") from exc


def _read_parquet(payload: Mapping[str, Any]) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(_base64(payload, "parquet")), engine="pyarrow")
    except WireError:
        raise
    except Exception as exc:  # pyarrow refuses malformed bytes with its own error types
        raise WireError(f"a frame's Parquet bytes cannot be read ({exc})") from exc


def _axis(payload: Any, labels: Any, length: int) -> pd.Index:
    names = payload.get("names") if isinstance(payload, dict) else None
    if not isinstance(labels, list) or len(labels) != length or not isinstance(names, list):
        raise WireError(f"a frame's labels must be a list of {length} with their names")
    if payload.get("multi"):
        if not all(isinstance(label, tuple) for label in labels):
            raise WireError("a frame's multi-level labels must be tuples")
        return pd.MultiIndex.from_tuples(labels, names=names)
    dtype = payload.get("dtype")
    try:
        return pd.Index(labels, dtype=None if dtype in (None, "object") else dtype, name=names[0])
    except (TypeError, ValueError):
        return pd.Index(labels, dtype=object, name=names[0])


def _load(types: Mapping[str, tuple[str, str]], name: str) -> type | None:
    if name not in types:
        return None
    module, attribute = types[name]
    return getattr(importlib.import_module(module), attribute)


def _figure(png: bytes) -> Any:
    """A matplotlib figure showing the PNG at its size, so it displays and saves like one."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    image = imread(io.BytesIO(png), format="png")
    dpi = 100
    height, width = image.shape[:2]
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(image)
    axes.set_axis_off()
    figure.srs_png = png  # the exact bytes recorded in the output
    return figure


class _Decoder:
    """Rebuilds tagged values; ``tags`` are those this side accepts, ``types`` the dataclasses
    it rebuilds (``unknown``: what to do with any other dataclass)."""

    def __init__(
        self,
        tags: frozenset[str],
        types: Mapping[str, tuple[str, str]],
        unknown: Callable[..., Any],
    ) -> None:
        self.tags, self.types, self.unknown = tags, types, unknown

    def __call__(self, value: Any) -> Any:
        try:
            return self._decode(value)
        except RecursionError as exc:
            raise WireError("the value is nested too deeply to read") from exc

    def _decode(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, list):
            return [self._decode(v) for v in value]
        if not isinstance(value, dict):
            raise WireError(f"a {type(value).__name__} is not JSON")
        if TAG not in value:
            return {k: self._decode(v) for k, v in value.items()}
        tag = value[TAG]
        if tag not in self.tags:
            raise WireError(f"{tag!r} values are not accepted here; send plain JSON, frames or ids")
        return getattr(self, f"_{tag}")(value)

    def _items(self, value: dict[str, Any]) -> list[Any]:
        items = value.get("items")
        if not isinstance(items, list):
            raise WireError(f"a {value[TAG]!r} value needs a list of items")
        return items

    def _tuple(self, value: dict[str, Any]) -> tuple:
        return tuple(self._decode(v) for v in self._items(value))

    def _dict(self, value: dict[str, Any]) -> dict:
        pairs = self._items(value)
        if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise WireError("a 'dict' value's items must be [key, value] pairs")
        decoded = {}
        for key, item in pairs:
            key = self._decode(key)
            try:
                decoded[key] = self._decode(item)
            except TypeError as exc:  # an unhashable key
                raise WireError(f"a dict key cannot be a {type(key).__name__}") from exc
        return decoded

    def _bytes(self, value: dict[str, Any]) -> bytes:
        return _base64(value, "base64")

    def _file(self, value: dict[str, Any]) -> FileUpload:
        name = value.get("name")
        if not isinstance(name, str):
            raise WireError("a file needs its name")
        return FileUpload(name=name, content=_base64(value, "base64"))

    def _attrs(self, value: dict[str, Any]) -> dict[str, Any]:
        attrs = self._decode(value.get("attrs") or {})
        if not isinstance(attrs, dict):
            raise WireError("a frame's attrs must be a dict")
        return attrs

    def _read_frame(self, value: dict[str, Any]) -> pd.DataFrame:
        frame = _read_parquet(value)
        for axis in ("columns", "index"):
            if axis in value:
                if not isinstance(value[axis], dict):
                    raise WireError(f"a frame's {axis} must be an object with its labels")
                labels = self._decode(value[axis].get("labels"))
                setattr(frame, axis, _axis(value[axis], labels, len(getattr(frame, axis))))
        return frame

    def _frame(self, value: dict[str, Any]) -> pd.DataFrame:
        frame = self._read_frame(value)
        frame.attrs = self._attrs(value)
        return frame

    def _series(self, value: dict[str, Any]) -> pd.Series:
        frame = self._read_frame(value)
        if frame.shape[1] != 1:
            raise WireError("a series is sent as a one-column frame")
        series = frame.iloc[:, 0].rename(self._decode(value.get("name")))
        series.attrs = self._attrs(value)
        return series

    def _figure(self, value: dict[str, Any]) -> Any:
        return _figure(_base64(value, "png"))

    def _model(self, value: dict[str, Any]) -> ModelResults:
        fields = self._decode(value.get("fields"))
        if not isinstance(fields, dict):
            raise WireError("a model needs its fields")
        return ModelResults("model", fields)

    def _dataclass(self, value: dict[str, Any]) -> Any:
        name, fields = value.get("type"), value.get("fields")
        if not isinstance(name, str) or not isinstance(fields, dict):
            raise WireError("a dataclass value needs its type name and fields")
        decoded = {str(k): self._decode(v) for k, v in fields.items()}
        cls = _load(self.types, name)
        if cls is None:
            return self.unknown(name, decoded)
        try:
            return cls(**decoded)
        except TypeError as exc:
            return self.unknown(name, decoded, exc)


def _refuse_type(name: str, fields: dict[str, Any], cause: Exception | None = None) -> Any:
    raise WireError(
        f"a {name} cannot be sent to the environment"
        + (f" ({cause})" if cause else "")
        + f"; it takes {', '.join(t.rsplit('.', 1)[-1] for t in ARGUMENT_TYPES)} objects only"
    )


def _record(name: str, fields: dict[str, Any], cause: Exception | None = None) -> RemoteRecord:
    return RemoteRecord(name, fields)


_ARGUMENTS = _Decoder(
    frozenset({"tuple", "dict", "bytes", "file", "frame", "series", "dataclass"}),
    ARGUMENT_TYPES,
    _refuse_type,
)
_RESULTS = _Decoder(
    frozenset({"tuple", "dict", "bytes", "frame", "series", "dataclass", "figure", "model"}),
    RESULT_TYPES,
    _record,
)


def decode_arguments(value: Any) -> Any:
    """The API's reading of a kernel's arguments: JSON, frames, series, tuples, bytes, uploaded
    files and ``ARGUMENT_TYPES`` only; ``WireError`` for anything else."""
    return _ARGUMENTS(value)


def decode_result(value: Any) -> Any:
    """The kernel's reading of a result: ``RESULT_TYPES`` rebuilt as the local session returns
    them, other dataclasses as ``RemoteRecord``, figures as matplotlib figures and fitted models
    as ``ModelResults``."""
    return _RESULTS(value)

"""The JSON format of calls between a researcher's kernel and the environment API.

Arguments and results are plain JSON, with a few tagged objects (``{"__srs__": TAG, ...}``):
frames and series as base64 Parquet (their ``attrs`` as JSON beside them), tuples, dicts with
keys JSON cannot hold, bytes, files the kernel uploads, dataclasses by type name and fields,
figures as PNG and fitted models as their estimates and summary. Never pickle: the kernel is
untrusted, so the API rebuilds only the few argument types it names (``ARGUMENT_TYPES``) and the
kernel rebuilds only result types it names (``RESULT_TYPES``; any other dataclass comes back as a
read-only ``RemoteRecord``). A value of any other type is refused with ``WireError``. Numbers
that JSON cannot hold (NaN, infinities) travel tagged too, so a request never needs JSON's
non-standard ``NaN`` or ``Infinity``.

The kernel is untrusted, so the API reads a request within limits (``WireLimits``, from the
policy's ``access.airlock``): ``read_json`` refuses a body with too many values, nested deeper
than ``max_json_depth``, or holding numbers or text no argument needs; and each frame's Parquet is
checked from its footer before any of it is decoded (flat columns, snappy or no compression, its
rows and columns within bounds), then decoded row group by row group, text as dictionaries, with
the decoded bytes counted against ``max_decoded_frame_bytes`` and, for all frames of the request,
``max_decoded_request_bytes`` (``DecodingAllowance``); the first group over a limit stops the
read with ``RequestTooLarge``, before the frame is built. Anything else malformed is a
``WireError``, whatever pandas or pyarrow raised. The kernel reads results with no limits.

A dataclass travels under the name of the module that defines it (``type(value).__module__``),
so the names in ``ARGUMENT_TYPES`` and ``RESULT_TYPES`` are where the classes live
(``srs.research.values.OutputSummary``, not a module that re-exports it).

Why one module: the format is one contract read on both sides, every tag written by ``encode``
and read back by the decoder beside it, and the limits that bound a request's reading are part
of that reading (the footer checks and counted decoding of a frame run inside it); split, a tag
or a limit could change on one side only.

>>> decode_result(encode((1, "a")))
(1, 'a')
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import io
import json
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from srs.errors import SRSError

if TYPE_CHECKING:
    from srs.governance.policy import AirlockPolicy

TAG = "__srs__"
# The largest request body the API reads (a frame or a file sent from the kernel).
MAX_REQUEST_BYTES = 200 * 1024 * 1024
# The policy settings behind ``WireLimits``, named in every refusal so it says which applies.
FRAME_LIMIT_KEY = "policies.access.airlock.max_decoded_frame_bytes"
REQUEST_LIMIT_KEY = "policies.access.airlock.max_decoded_request_bytes"
DEPTH_LIMIT_KEY = "policies.access.airlock.max_json_depth"
# A frame's cells (rows x columns, index included) count 8 bytes each at least, what pandas keeps
# most in (a 64-bit number, or a pointer to a text), so rows x columns are bounded by the limits.
BYTES_PER_CELL = 8
# Bounds no frame a researcher sends comes near, each of which costs the API time or memory per
# unit before any byte is decoded (a column object, a row group's footer entries).
MAX_FRAME_COLUMNS = 10_000
MAX_ROW_GROUPS = 10_000
# JSON values (numbers, text, lists, objects) one request may hold: Python keeps each in 30-60
# bytes, so 200 MB of "[[],[],...]" would take gigabytes. A frame is one text, its Parquet.
MAX_JSON_VALUES = 1_000_000
# Integers JSON may carry: the signed 64-bit range, as no argument needs more and pandas, numpy
# and the registry's columns refuse more, each in its own way.
MIN_INTEGER, MAX_INTEGER = -(2**63), 2**63 - 1
# The compression an argument's Parquet may use: what the kernel writes (pandas' snappy) or
# none. Snappy expands a page at most ~21 times; zstd, gzip or brotli expand 100 kB to
# gigabytes inside pyarrow, before any count of decoded bytes could stop them.
ARGUMENT_CODECS = frozenset({"SNAPPY", "UNCOMPRESSED"})
# The bytes one value of a Parquet physical type takes decoded (text and bytes: their offset).
PHYSICAL_WIDTHS = {
    "BOOLEAN": 1,
    "INT32": 4,
    "INT64": 8,
    "INT96": 12,
    "FLOAT": 4,
    "DOUBLE": 8,
    "BYTE_ARRAY": 4,
}
# Dataclasses the API rebuilds from a kernel's arguments: nothing that can run code.
ARGUMENT_TYPES = {
    "srs.research.values.OutputSummary": ("srs.research.values", "OutputSummary"),
    "disclosure.dp.queries.DPQuery": ("disclosure.dp.queries", "DPQuery"),
}
# Dataclasses the kernel rebuilds from results, as the local session returns them.
RESULT_TYPES = {
    **ARGUMENT_TYPES,
    "srs.research.values.RequestStatus": ("srs.research.values", "RequestStatus"),
    "srs.research.versions.DatasetVersion": ("srs.research.versions", "DatasetVersion"),
    "srs.governance.budget.BudgetState": ("srs.governance.budget", "BudgetState"),
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
    """A call's data are over ``MAX_REQUEST_BYTES``, or its frames decode to more than the
    policy's ``WireLimits`` allow."""


# What a researcher does about a frame too large to send, in every refusal of one.
SEND_LESS = (
    "pass the dataset's name instead of a frame read from it (s.crosstab('linked/journeys', "
    "...)), or select the rows and columns you need before sending the frame"
)


def too_large(size: int) -> str:
    """What to do when a call of ``size`` bytes is too large."""
    return (
        f"the call's data are {size / 1e6:,.0f} MB, over the {MAX_REQUEST_BYTES / 1e6:,.0f} MB the "
        f"environment accepts: {SEND_LESS}"
    )


def _size(size: int) -> str:
    if size >= 10_000_000_000:
        return f"{size / 1e9:,.0f} GB"
    return f"{size / 1e6:,.1f} MB" if size < 10_000_000 else f"{size / 1e6:,.0f} MB"


@dataclasses.dataclass(frozen=True)
class WireLimits:
    """How much one request may make the API decode: the decoded bytes of one frame, of all the
    frames of the request, and the nesting depth of its JSON. ``None`` is no limit, as when the
    kernel reads the API's results; the API takes its limits from the policy (``of``).

    >>> WireLimits(max_frame_bytes=200_000_000, max_request_bytes=400_000_000).bounded
    True
    """

    max_frame_bytes: int | None = None
    max_request_bytes: int | None = None
    max_json_depth: int | None = None

    @classmethod
    def of(cls, airlock: AirlockPolicy) -> WireLimits:
        """The limits of ``policies.access.airlock``."""
        return cls(
            max_frame_bytes=airlock.max_decoded_frame_bytes,
            max_request_bytes=airlock.max_decoded_request_bytes,
            max_json_depth=airlock.max_json_depth,
        )

    @property
    def bounded(self) -> bool:
        """True when frames are decoded within a limit (the API), false for the kernel."""
        return self.max_frame_bytes is not None or self.max_request_bytes is not None


class DecodingAllowance:
    """What the frames of one request may still decode to: each frame is checked from its
    Parquet footer, then charged as it is read, and refused (``RequestTooLarge``) as soon as it
    or the request is over its limit.

    >>> allowance = DecodingAllowance(WireLimits(10_000_000, 15_000_000))
    >>> allowance.charge(8_000_000)
    >>> allowance.check(8_000_000, "1,000,000 rows x 1 column")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    srs.hub.wire.RequestTooLarge: the frames of this call decode to 16 MB (1,000,000 rows x 1 column for the last one), over the 15 MB one call may take (policies.access.airlock.max_decoded_request_bytes): ...
    """

    def __init__(self, limits: WireLimits | None = None) -> None:
        self.limits = limits or WireLimits()
        self.decoded_bytes = 0  # of the request's frames read in full so far

    def check(self, frame_bytes: int, detail: str, *, at_least: bool = False) -> None:
        """Refuse a frame that decodes to ``frame_bytes`` (``at_least``: counted so far) if
        that is over the frame's limit or over what is left of the request's."""
        frame_limit, request_limit = self.limits.max_frame_bytes, self.limits.max_request_bytes
        size = f"{'at least ' if at_least else ''}{_size(frame_bytes)}"
        if frame_limit is not None and frame_bytes > frame_limit:
            raise RequestTooLarge(
                f"a frame sent to the environment decodes to {size} ({detail}), over the "
                f"{_size(frame_limit)} one frame may take ({FRAME_LIMIT_KEY}): {SEND_LESS}"
            )
        total = self.decoded_bytes + frame_bytes
        if request_limit is not None and total > request_limit:
            raise RequestTooLarge(
                f"the frames of this call decode to {'at least ' if at_least else ''}"
                f"{_size(total)} ({detail} for the last one), over the {_size(request_limit)} "
                f"one call may take ({REQUEST_LIMIT_KEY}): {SEND_LESS}"
            )

    def charge(self, frame_bytes: int) -> None:
        """Count a frame read in full against the request's limit."""
        self.decoded_bytes += frame_bytes


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
        number = float(value)
        # JSON has no NaN or infinity; the API refuses the literals Python would write for them.
        return number if math.isfinite(number) else {TAG: "float", "value": repr(number)}
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


# ------------------------------------------------------------------ reading a request's JSON
def read_json(body: bytes, limits: WireLimits) -> Any:
    """A request body read as JSON within ``limits``: at most ``MAX_JSON_VALUES`` values
    (counted before parsing), nested at most ``limits.max_json_depth`` deep, numbers finite and
    within 64 bits, text without NUL characters or unpaired surrogates. ``WireError`` says what
    was wrong (``RequestTooLarge`` for too many values).

    >>> read_json(b'{"method": "datasets", "args": []}', WireLimits(max_json_depth=4))
    {'method': 'datasets', 'args': []}
    """
    # Every value but the first follows a comma or opens a list or an object; base64 holds none
    # of them, so a frame counts once however large.
    values = body.count(b",") + body.count(b"[") + body.count(b"{") + 1
    if values > MAX_JSON_VALUES:
        raise RequestTooLarge(
            f"the request holds up to {values:,} JSON values, over the {MAX_JSON_VALUES:,} the "
            "environment reads: send a frame (or a dataset's name) rather than long lists"
        )
    try:
        value = json.loads(body)
    except RecursionError as exc:  # the parser recurses once per level of nesting
        raise WireError(_too_deep(limits.max_json_depth)) from exc
    except MemoryError as exc:
        raise RequestTooLarge(f"the request's JSON is too large to read: {SEND_LESS}") from exc
    except ValueError as exc:  # UnicodeDecodeError is one: a body that is not UTF-8
        raise WireError(
            f"the request body is not JSON ({exc}): send UTF-8 JSON "
            "{'target', 'method', 'args', 'kwargs'} as srs's client does"
        ) from exc
    _check_json(value, limits.max_json_depth)
    return value


def _too_deep(max_depth: int | None) -> str:
    return (
        f"the request's JSON is nested more than {max_depth or 'the'} levels deep, more than the "
        f"environment reads ({DEPTH_LIMIT_KEY}): send flat lists and objects, and frames as "
        "frames"
    )


def _check_json(value: Any, max_depth: int | None) -> None:
    """Walk parsed JSON without recursing (a deep value must not exhaust the stack here)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if max_depth is not None and depth > max_depth:
                raise WireError(_too_deep(max_depth))
            if isinstance(item, dict):
                pending.extend((key, depth) for key in item)
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise WireError("text in a request may not hold NUL characters ('\\x00')")
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise WireError(
                        "text in a request holds an unpaired surrogate (a '\\ud800' escape); "
                        "send text that is valid Unicode"
                    ) from exc
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise WireError(
                    "the request holds NaN or an infinite number (NaN, Infinity or 1e999 in its "
                    "JSON): send null for a missing value, or a finite number (srs's client "
                    "sends NaN and infinities tagged)"
                )
        elif (
            isinstance(item, int)
            and not isinstance(item, bool)
            and not MIN_INTEGER <= item <= MAX_INTEGER
        ):
            raise WireError(
                f"the request holds an integer of {len(str(abs(item)))} digits, outside the "
                "64-bit range the environment reads: send a smaller number"
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


def _read_parquet(payload: Mapping[str, Any], allowance: DecodingAllowance) -> pd.DataFrame:
    data = _base64(payload, "parquet")
    try:
        if not allowance.limits.bounded:
            return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
        return _read_parquet_within(data, allowance)
    except WireError:
        raise
    except MemoryError as exc:
        raise RequestTooLarge(f"a frame sent to the environment is too large: {SEND_LESS}") from exc
    except Exception as exc:  # pyarrow refuses malformed bytes with its own error types
        raise WireError(f"a frame's Parquet bytes cannot be read ({exc})") from exc


def _is_text(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _is_flat(kind: pa.DataType) -> bool:
    """A column type pandas reads as one value a row: numbers, text, dates, times, categories."""
    if pa.types.is_dictionary(kind):
        return not pa.types.is_dictionary(kind.value_type) and _is_flat(kind.value_type)
    return (
        pa.types.is_null(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_temporal(kind)
        or _is_text(kind)
    )


def _row_width(kind: pa.DataType, column: pq.ColumnSchema) -> int:
    """The bytes a row of a flat column takes decoded, at least: the wider of its Arrow and
    Parquet types (the footer's Arrow schema is the sender's word), a text's offset only."""
    physical = PHYSICAL_WIDTHS.get(column.physical_type, 0)
    if column.physical_type == "FIXED_LEN_BYTE_ARRAY":
        physical = column.length
    if pa.types.is_dictionary(kind):
        arrow = kind.index_type.bit_width // 8
    elif pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
        arrow = 8
    elif _is_text(kind) or pa.types.is_null(kind):
        arrow = 4
    else:
        arrow = max(kind.bit_width // 8, 1)
    return max(physical, arrow)


def _check_footer(parquet: pq.ParquetFile, allowance: DecodingAllowance) -> None:
    """Refuse a frame from its Parquet footer alone, before any of it is decoded: columns that
    are not flat, too many columns or row groups, a decoded size over the limits (the largest of
    its rows times their widths, its cells at ``BYTES_PER_CELL``, what the footer declares), or
    compression other than snappy."""
    metadata, schema = parquet.metadata, parquet.schema_arrow
    columns = len(schema)
    if columns > MAX_FRAME_COLUMNS or metadata.num_row_groups > MAX_ROW_GROUPS:
        raise RequestTooLarge(
            f"a frame sent to the environment has {columns:,} columns in "
            f"{metadata.num_row_groups:,} row groups, over the {MAX_FRAME_COLUMNS:,} columns "
            f"and {MAX_ROW_GROUPS:,} row groups the environment reads: {SEND_LESS}"
        )
    for field in schema:
        if not _is_flat(field.type):
            raise WireError(
                f"a frame's column {field.name!r} holds {field.type} values; the environment "
                "reads columns of numbers, text, booleans, dates, times and categories: "
                "flatten it (e.g. .astype(str)) or drop it before sending"
            )
    if columns != metadata.num_columns or len(set(schema.names)) != columns:
        raise WireError(
            "a frame's Parquet schema does not match its columns, or repeats a column name; "
            "send the frame as srs's client writes it"
        )
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    if any(group.num_rows < 0 or group.num_columns != columns for group in groups):
        raise WireError("a frame's Parquet footer is malformed (a row group's rows or columns)")
    rows = sum(group.num_rows for group in groups)
    shape = f"{rows:,} rows x {columns:,} column{'s' if columns != 1 else ''}"
    width = sum(_row_width(schema.field(i).type, parquet.schema.column(i)) for i in range(columns))
    declared = max(
        rows * width,
        max(rows, 1) * columns * BYTES_PER_CELL,
        sum(group.total_byte_size for group in groups),
    )
    allowance.check(declared, f"{shape}, as its Parquet footer declares")
    codecs = {group.column(i).compression for group in groups for i in range(columns)}
    if codecs - ARGUMENT_CODECS:
        raise WireError(
            f"a frame's Parquet is compressed with {', '.join(sorted(codecs - ARGUMENT_CODECS))}; "
            "the environment reads snappy-compressed or uncompressed Parquet, as srs's client "
            "writes it (frame.to_parquet(...) with its default compression)"
        )


def _expanded_bytes(column: pa.ChunkedArray) -> int:
    """What a text column read as a dictionary takes expanded: each row's value, its offset and
    its validity bit, counted without expanding it."""
    total = 0
    for chunk in column.chunks:
        if not pa.types.is_dictionary(chunk.type):
            total += chunk.nbytes
            continue
        lengths = pc.binary_length(chunk.dictionary)
        total += pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0
        large = pa.types.is_large_string(chunk.type.value_type) or pa.types.is_large_binary(
            chunk.type.value_type
        )
        total += (len(chunk) + 1) * (8 if large else 4) + (len(chunk) + 7) // 8
    return total


def _read_parquet_within(data: bytes, allowance: DecodingAllowance) -> pd.DataFrame:
    """A frame's Parquet decoded within ``allowance``: checked from its footer, then read one row
    group at a time and counted, the read stopped at the first group over a limit.

    A footer may understate what its pages decode to (a run of one value is a few bytes in
    Parquet, and the sender writes the footer), so the decoded bytes are counted as they are
    read. Text is read as dictionaries, each distinct value once, so one long text repeated on
    every row cannot expand before it is counted; it is expanded once the whole frame is within
    the limits. A row group's fixed-width columns cannot decode to more than its rows times
    their widths, which the footer check bounds."""
    parquet = pq.ParquetFile(pa.BufferReader(data))
    _check_footer(parquet, allowance)
    schema = parquet.schema_arrow
    text = {i for i, field in enumerate(schema) if _is_text(field.type)}
    reader = pq.ParquetFile(
        pa.BufferReader(data), read_dictionary=[schema.names[i] for i in sorted(text)]
    )
    rows = sum(parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups))
    decoded = counted = read = 0
    groups = []
    for index in range(parquet.metadata.num_row_groups):
        group = reader.read_row_group(index)
        read += group.num_rows
        decoded += sum(
            _expanded_bytes(group.column(i)) if i in text else group.column(i).nbytes
            for i in range(group.num_columns)
        )
        counted = max(decoded, read * group.num_columns * BYTES_PER_CELL)
        if read < rows:
            allowance.check(
                counted, f"counted in its first {read:,} of {rows:,} rows", at_least=True
            )
        else:
            allowance.check(counted, f"{rows:,} rows, counted as they were read")
        groups.append(group)
    allowance.charge(counted)
    table = pa.concat_tables(groups) if groups else schema.empty_table()
    return table.cast(schema).to_pandas()


def _axis(payload: Any, labels: Any, length: int) -> pd.Index:
    names = payload.get("names") if isinstance(payload, dict) else None
    if not isinstance(labels, list) or len(labels) != length or not isinstance(names, list):
        raise WireError(f"a frame's labels must be a list of {length} with their names")
    if payload.get("multi"):
        if not all(isinstance(label, tuple) for label in labels):
            raise WireError("a frame's multi-level labels must be tuples")
        return pd.MultiIndex.from_tuples(labels, names=names)
    if len(names) != 1:
        raise WireError(f"a frame's single-level labels need one name, not {len(names)}")
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
    it rebuilds (``unknown``: what to do with any other dataclass), ``allowance`` what its
    frames may decode to."""

    def __init__(
        self,
        tags: frozenset[str],
        types: Mapping[str, tuple[str, str]],
        unknown: Callable[..., Any],
        allowance: DecodingAllowance | None = None,
    ) -> None:
        self.tags, self.types, self.unknown = tags, types, unknown
        self.allowance = allowance or DecodingAllowance()

    def __call__(self, value: Any) -> Any:
        try:
            return self._decode(value)
        except WireError:
            raise
        except RecursionError as exc:
            raise WireError("the value is nested too deeply to read") from exc
        except MemoryError as exc:
            raise RequestTooLarge(f"the value is too large to read: {SEND_LESS}") from exc
        except Exception as exc:  # pandas and numpy refuse malformed labels with many types
            raise WireError(
                f"the value cannot be read ({type(exc).__name__}: {exc}); send it as srs's "
                "client encodes it"
            ) from exc

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
        if not isinstance(tag, str) or tag not in self.tags:
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

    def _float(self, value: dict[str, Any]) -> float:
        number = value.get("value")
        if number not in ("nan", "inf", "-inf"):
            raise WireError("a 'float' value is 'nan', 'inf' or '-inf'")
        return float(number)

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
        frame = _read_parquet(value, self.allowance)
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


# The tags each side reads: the API no figures or models, the kernel no uploaded files.
ARGUMENT_TAGS = frozenset(
    {"tuple", "dict", "bytes", "float", "file", "frame", "series", "dataclass"}
)
RESULT_TAGS = frozenset(
    {"tuple", "dict", "bytes", "float", "frame", "series", "dataclass", "figure", "model"}
)


def decode_arguments(value: Any, allowance: DecodingAllowance | None = None) -> Any:
    """The API's reading of a kernel's arguments: JSON, frames, series, tuples, bytes, uploaded
    files and ``ARGUMENT_TYPES`` only; ``WireError`` for anything else, ``RequestTooLarge`` for
    frames that decode to more than ``allowance`` leaves (the API passes one allowance for all
    the arguments of a call, from the policy's ``WireLimits``; without one, no limit).

    >>> allowance = DecodingAllowance(WireLimits(1_000_000, 1_000_000))
    >>> decode_arguments(encode(pd.DataFrame({"x": range(1_000)})), allowance).shape
    (1000, 1)
    >>> decode_arguments(encode(pd.DataFrame({"x": range(200_000)})), allowance)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    srs.hub.wire.RequestTooLarge: a frame sent to the environment decodes to ... MB (200,000 rows x 1 column, as its Parquet footer declares), over the 1.0 MB one frame may take (policies.access.airlock.max_decoded_frame_bytes): pass the dataset's name instead of a frame read from it ...
    """
    return _Decoder(ARGUMENT_TAGS, ARGUMENT_TYPES, _refuse_type, allowance)(value)


def decode_result(value: Any) -> Any:
    """The kernel's reading of a result: ``RESULT_TYPES`` rebuilt as the local session returns
    them, other dataclasses as ``RemoteRecord``, figures as matplotlib figures and fitted models
    as ``ModelResults``. The API is trusted here, so its frames are read with no limit."""
    return _Decoder(RESULT_TAGS, RESULT_TYPES, _record)(value)

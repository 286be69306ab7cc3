"""The environment API against hostile requests from a researcher's kernel: decompression bombs
are refused before they are decoded, within a stated bound on the API's memory; arguments are
bound and a formula checked before any frame is decoded; deep JSON and every malformed request
answer 400 with a message, never 500; a frame within the policy's limits works as before."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import resource
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy.exc
import test_api
from session_fixtures import journeys
from test_api import Service, http, outputs_recorded, serve, token_for

from srs.governance.policy import PolicySet, load_policies
from srs.hub import wire
from srs.hub.client import RemoteSession
from srs.research.session import ResearchSession

# The API served on loopback with a real registry, and the token of a researcher in P001.
lab, local, service, token = test_api.lab, test_api.local, test_api.service, test_api.token
# The most the API process's memory may grow while it refuses a bomb: the bombs below decode to
# 800 MB and to 10 TB; refused, they cost the footer, a row group of indices and the request.
MEMORY_BOUND = 100_000_000
MIB = 1024 * 1024


# ------------------------------------------------------------------ bombs and measurements
@cache
def int_bomb(rows: int = 100_000_000, compression: str = "zstd") -> bytes:
    """One int64 column of ``rows`` sevens: 800 MB decoded, a few hundred kB as Parquet (the
    dictionary's indices are one run), written a million rows at a time to keep the test's own
    memory small."""
    buffer = io.BytesIO()
    chunk = pa.table({"sex": pa.array(np.full(1_000_000, 7, dtype=np.int64))})
    with pq.ParquetWriter(buffer, chunk.schema, compression=compression) as writer:
        for _ in range(rows // 1_000_000):
            writer.write_table(chunk)
    return buffer.getvalue()


def text_bomb(
    rows: int = 20_000_000, length: int = 512_000, rows_per_group: int = 1_000_000
) -> bytes:
    """One text column of one ``length``-character text on each of ``rows`` rows, snappy (the
    codec the API accepts) and without an Arrow schema, so it reads back as plain text: 10 TB
    decoded, while its footer declares ~10 MB (a dictionary page per row group and runs of one
    index) and its rows x columns are within the limit."""
    buffer = io.BytesIO()
    indices = pa.array(np.zeros(rows_per_group, dtype=np.int32))
    column = pa.DictionaryArray.from_arrays(indices, pa.array(["A" * length]))
    chunk = pa.table({"sex": column})
    with pq.ParquetWriter(
        buffer,
        chunk.schema,
        compression="snappy",
        store_schema=False,
        dictionary_pagesize_limit=2 * length,
    ) as writer:
        for _ in range(rows // rows_per_group):
            writer.write_table(chunk)
    return buffer.getvalue()


def as_frame(parquet: bytes) -> dict[str, Any]:
    """Parquet bytes as a frame argument, as the kernel sends one."""
    return {wire.TAG: "frame", "parquet": base64.b64encode(parquet).decode("ascii"), "attrs": {}}


def parquet_of(table: pa.Table, **options: Any) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


@dataclass
class MemoryGrowth:
    """Peak growth of this process while a block ran (the test API serves in this process)."""

    resident: int = 0  # sampled every 2 ms from /proc/self/statm
    arrow: int = 0  # pyarrow.total_allocated_bytes(), sampled likewise
    arrow_peak: int = 0  # pyarrow's default pool's max_memory(), after minus before
    max_rss: int = 0  # ru_maxrss, after minus before (0 when an earlier peak was higher)


@contextmanager
def memory_growth() -> Iterator[MemoryGrowth]:
    growth = MemoryGrowth()
    resident, arrow = resident_bytes(), pa.total_allocated_bytes()
    arrow_peak = pa.default_memory_pool().max_memory()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            growth.resident = max(growth.resident, resident_bytes() - resident)
            growth.arrow = max(growth.arrow, pa.total_allocated_bytes() - arrow)
            stop.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield growth
    finally:
        stop.set()
        sampler.join()
        growth.arrow_peak = pa.default_memory_pool().max_memory() - arrow_peak
        growth.max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - max_rss


def assert_within_bound(growth: MemoryGrowth) -> None:
    print(f"memory growth: {growth}")
    assert growth.resident < MEMORY_BOUND, growth
    assert growth.arrow < MEMORY_BOUND, growth
    assert growth.arrow_peak < MEMORY_BOUND, growth
    assert growth.max_rss < MEMORY_BOUND, growth


def post(service: Service, token: str, body: bytes | dict[str, Any]) -> tuple[int, dict]:
    if isinstance(body, dict):
        body = json.dumps(body, allow_nan=False).encode()
    status, answer, _ = http(service.url + "call", token=token, body=body)
    return status, answer


@pytest.fixture
def decoded(monkeypatch) -> list[int]:
    """The frames the API decodes, by their Parquet's size: empty when none was."""
    sizes: list[int] = []
    read = wire._read_parquet

    def recording(payload: Any, allowance: wire.DecodingAllowance) -> pd.DataFrame:
        sizes.append(len(payload.get("parquet", "")))
        return read(payload, allowance)

    monkeypatch.setattr(wire, "_read_parquet", recording)
    return sizes


def policies_with(folder: Path, shipped: PolicySet, **airlock: int) -> PolicySet:
    """The shipped policies with other ``access.airlock`` limits, from a copy of the folder."""
    shutil.copytree(shipped.source_dir, folder)
    access = folder / "access.yaml"
    text = access.read_text()
    for key, value in airlock.items():
        text, found = re.subn(rf"(\n  {key}: )\d+", rf"\g<1>{value}", text)
        assert found == 1, key
    access.write_text(text)
    return load_policies(folder)


# ------------------------------------------------------------------ decompression bombs
def test_a_decompression_bomb_is_refused_from_its_footer(service, token) -> None:
    bomb = int_bomb()
    body = json.dumps({"method": "crosstab", "args": [as_frame(bomb), "sex"]}).encode()
    assert len(body) < 1 * MIB  # 0.6 MB sent for 800 MB decoded
    with memory_growth() as growth:
        status, answer = post(service, token, body)
    assert status == 413 and answer["error"]["type"] == "RequestTooLarge"
    message = answer["error"]["message"]
    assert "decodes to 800 MB (100,000,000 rows x 1 column, as its Parquet footer declares)" in (
        message
    )
    assert "over the 200 MB one frame may take" in message
    assert wire.FRAME_LIMIT_KEY in message and "pass the dataset's name instead" in message
    assert_within_bound(growth)
    # The codec the kernel uses changes nothing: the size is refused first.
    status, answer = post(
        service,
        token,
        {"method": "crosstab", "args": [as_frame(int_bomb(compression="snappy")), "sex"]},
    )
    assert status == 413 and "decodes to 800 MB" in answer["error"]["message"]
    assert outputs_recorded(service.registry) == 0


def test_a_bomb_whose_footer_understates_it_is_stopped_as_it_is_read(service, token) -> None:
    bomb = text_bomb()
    metadata = pq.ParquetFile(pa.BufferReader(bomb)).metadata
    declared = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    assert declared < 20_000_000  # what the footer says: well within the 200 MB limit
    body = json.dumps({"method": "crosstab", "args": [as_frame(bomb), "sex"]}).encode()
    assert len(body) < 1 * MIB  # for 20,000,000 x 512,000 bytes = 10 TB decoded
    with memory_growth() as growth:
        status, answer = post(service, token, body)
    assert status == 413 and answer["error"]["type"] == "RequestTooLarge"
    message = answer["error"]["message"]
    assert "decodes to at least 512 GB (counted in its first 1,000,000 of 20,000,000 rows)" in (
        message
    )
    assert f"over the 200 MB one frame may take ({wire.FRAME_LIMIT_KEY})" in message
    assert_within_bound(growth)


def test_an_honest_frame_over_a_low_limit_is_stopped_as_it_is_read(lab, policies, tmp_path) -> None:
    limited = policies_with(
        tmp_path / "policies",
        policies,
        max_decoded_frame_bytes=1_000_000,
        max_decoded_request_bytes=1_500_000,
    )
    deployment, registry = lab
    # 50 texts of 1,000 characters over 20,000 rows: a 20 MB column, ~50 kB in its footer.
    texts = pd.DataFrame({"note": [f"{i % 50:04d}" * 250 for i in range(20_000)]})
    with serve(deployment, registry, limited) as running:
        s = RemoteSession(running.url, token_for(registry, limited))
        with pytest.raises(wire.RequestTooLarge, match="decodes to 20 MB .20,000 rows") as refused:
            s.crosstab(texts, "note")
        assert wire.FRAME_LIMIT_KEY in str(refused.value)
        # Two frames within the frame limit are over the request's, counted together.
        part = journeys().sample(13_800, replace=True, random_state=1).reset_index(drop=True)
        with pytest.raises(wire.RequestTooLarge, match=wire.REQUEST_LIMIT_KEY) as refused:
            s.crosstab(part, part)
        assert "the frames of this call decode to 1.5 MB" in str(refused.value)


def test_a_frame_within_the_limit_is_read_and_the_call_works_as_before(
    lab, policies, local: ResearchSession, tmp_path
) -> None:
    frame = journeys().sample(24_000, replace=True, random_state=3).reset_index(drop=True)
    allowance = wire.DecodingAllowance(wire.WireLimits(10**12, 10**12))
    pd.testing.assert_frame_equal(wire.decode_arguments(wire.encode(frame), allowance), frame)
    size = allowance.decoded_bytes  # what the API counts for this frame
    assert 1_000_000 < size < 2_000_000
    limited = policies_with(
        tmp_path / "policies",
        policies,
        max_decoded_frame_bytes=size + 1_000,
        max_decoded_request_bytes=size + 1_000,
    )
    deployment, registry = lab
    with serve(deployment, registry, limited) as running:
        s = RemoteSession(running.url, token_for(registry, limited))
        table = s.crosstab(frame, "sex", "court")
    pd.testing.assert_frame_equal(table, local.crosstab(frame, "sex", "court"))
    below = wire.DecodingAllowance(wire.WireLimits(size - 1, size - 1))
    with pytest.raises(wire.RequestTooLarge, match=wire.FRAME_LIMIT_KEY):
        wire.decode_arguments(wire.encode(frame), below)


# ------------------------------------------------------------------ before anything is decoded
@pytest.mark.parametrize(
    ("request_", "refusal"),
    [
        (
            {"method": "crosstab", "args": ["BOMB", "sex", None, None, "count", "extra"]},
            "too many positional arguments; it takes (data, index, columns=None",
        ),
        (
            {"method": "crosstab", "args": ["linked/journeys", "sex"], "kwargs": {"nope": "BOMB"}},
            "got an unexpected keyword argument 'nope'",
        ),
        ({"method": "datasets", "args": ["BOMB"]}, "session.datasets: too many positional"),
        ({"target": "dp", "method": "budget", "kwargs": {"data": "BOMB"}}, "dp.budget: got an"),
    ],
)
def test_wrong_arguments_are_refused_before_any_frame_is_decoded(
    service, token, decoded, request_, refusal
) -> None:
    bomb = as_frame(int_bomb())
    filled = json.loads(json.dumps(request_).replace('"BOMB"', json.dumps(bomb)))
    with memory_growth() as growth:
        status, answer = post(service, token, filled)
    assert status == 400 and answer["error"]["type"] == "WireError"
    assert refusal in answer["error"]["message"]
    assert decoded == []
    assert_within_bound(growth)


def test_a_formula_is_checked_as_sent_before_the_data_is_decoded(service, token, decoded) -> None:
    bomb = as_frame(int_bomb())
    status, answer = post(
        service,
        token,
        {"method": "ols", "args": ["sentence_months ~ I(__import__('os').system('id'))", bomb]},
    )
    assert status == 400 and "does not evaluate" in answer["error"]["message"]
    for formula in (bomb, ["y ~ x"], 5):
        status, answer = post(service, token, {"method": "ols", "args": [formula, bomb]})
        assert status == 400 and "a formula is plain text" in answer["error"]["message"]
    assert decoded == []
    # The same call with a good formula and a frame decodes it and fits the model.
    frame = wire.encode(journeys())
    status, answer = post(service, token, {"method": "ols", "args": ["age ~ sex", frame]})
    assert status == 200 and len(decoded) == 1
    assert wire.decode_result(answer["result"]).nobs == 600


# ------------------------------------------------------------------ JSON
@pytest.mark.parametrize(
    "nested",
    [
        "[" * 200_000 + "]" * 200_000,
        '{"a": ' * 200_000 + "1" + "}" * 200_000,
        "[" * 65 + "]" * 65,  # within what Python's parser recurses, over the policy's 64
    ],
    ids=["list-200000", "dict-200000", "list-65"],
)
def test_deeply_nested_json_is_refused_with_400(service, token, nested) -> None:
    body = ('{"method": "crosstab", "args": [' + nested + "]}").encode()
    status, answer = post(service, token, body)
    assert status == 400 and answer["error"]["type"] == "WireError"
    assert "nested more than 64 levels deep" in answer["error"]["message"]
    assert wire.DEPTH_LIMIT_KEY in answer["error"]["message"]


def test_json_within_its_limits_is_read_and_refused_over_them() -> None:
    limits = wire.WireLimits(max_json_depth=4)
    assert wire.read_json(b'{"a": [[{"b": 1}]]}', limits) == {"a": [[{"b": 1}]]}
    with pytest.raises(wire.WireError, match="nested more than 4 levels"):
        wire.read_json(b'{"a": [[{"b": [1]}]]}', limits)
    many = json.dumps([0] * (wire.MAX_JSON_VALUES + 1)).encode()
    with pytest.raises(wire.RequestTooLarge, match="JSON values, over the 1,000,000"):
        wire.read_json(many, limits)
    # Base64 holds no commas or brackets: a frame counts as one value however large.
    frame = json.dumps(wire.encode(pd.DataFrame({"x": range(300_000)}))).encode()
    assert wire.read_json(frame, wire.WireLimits(max_json_depth=4))[wire.TAG] == "frame"


def test_nan_and_infinities_travel_tagged_never_as_json_literals() -> None:
    values = [float("nan"), float("inf"), -np.inf, 1.5]
    sent = json.dumps(wire.encode(values), allow_nan=False)  # raises on a NaN literal
    back = wire.decode_arguments(json.loads(sent))
    assert np.isnan(back[0]) and back[1:] == [float("inf"), float("-inf"), 1.5]
    assert wire.decode_result(json.loads(sent))[1] == float("inf")


# ------------------------------------------------------------------ malformed requests
def frame_with(**changes: Any) -> dict[str, Any]:
    """A frame argument with non-text column names (so its labels travel as JSON), changed."""
    payload = wire.encode(pd.DataFrame({1: [1, 2], 2: [3, 4]}))
    for key, value in changes.items():
        if key.startswith("columns_"):
            payload["columns"][key.removeprefix("columns_")] = value
        else:
            payload[key] = value
    return payload


def argument(value: Any, method: str = "crosstab") -> bytes:
    return json.dumps({"method": method, "args": [value, "sex"]}).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


GOOD_PARQUET = parquet_of(pa.table({"sex": ["F", "M"]}))
MALFORMED = {
    "not JSON": b"crosstab(data, 'sex')",
    "not UTF-8": b'{"method": "\xff\xfe"}',
    "UTF-16 garbage": b"\xff\xfe{\x00",
    "a JSON string": b'"datasets"',
    "a JSON list": b'["datasets"]',
    "empty": b"",
    "target not text": b'{"target": 5, "method": "datasets"}',
    "method a list": b'{"method": ["datasets"]}',
    "method missing": b'{"args": []}',
    "args an object": b'{"method": "datasets", "args": {}}',
    "kwargs a list": b'{"method": "datasets", "kwargs": []}',
    "kwargs tagged": b'{"method": "datasets", "kwargs": {"__srs__": "dict"}}',
    "unknown field": b'{"method": "datasets", "script": "import os"}',
    "unknown tag": argument({wire.TAG: "pickle", "data": "gASV"}),
    "tag not text": argument({wire.TAG: ["frame"]}),
    "figure as argument": argument({wire.TAG: "figure", "png": "AA=="}),
    "frame without parquet": argument({wire.TAG: "frame"}),
    "parquet not base64": argument({wire.TAG: "frame", "parquet": "!!not base64!!"}),
    "parquet not ASCII": argument({wire.TAG: "frame", "parquet": "é"}),
    "parquet garbage": argument(as_frame(b"PAR1" + b"\x00" * 64 + b"PAR1")),
    "parquet truncated": argument(as_frame(GOOD_PARQUET[: len(GOOD_PARQUET) // 2])),
    "parquet empty": argument(as_frame(b"")),
    "parquet of lists": argument(as_frame(parquet_of(pa.table({"sex": [[1, 2], [3]]})))),
    "parquet of structs": argument(as_frame(parquet_of(pa.table({"sex": [{"a": 1}]})))),
    "parquet zstd": argument(as_frame(parquet_of(pa.table({"sex": ["F"]}), compression="zstd"))),
    "labels too few": argument(frame_with(columns_labels=[1])),
    "labels not a list": argument(frame_with(columns_labels="12")),
    "labels without names": argument(frame_with(columns_names=None)),
    "labels names empty": argument(frame_with(columns_names=[])),
    "columns not an object": argument(frame_with(columns=[1, 2])),
    "multi labels not tuples": argument(frame_with(columns_multi=True)),
    "attrs not an object": argument(frame_with(attrs=[1])),
    "series of two columns": argument({**frame_with(), wire.TAG: "series"}),
    "dict items not pairs": argument({wire.TAG: "dict", "items": [[1]]}),
    "dict items not a list": argument({wire.TAG: "dict", "items": "ab"}),
    "dict key unhashable": argument({wire.TAG: "dict", "items": [[[1, 2], 3]]}),
    "dict key a frame": argument({wire.TAG: "dict", "items": [[as_frame(GOOD_PARQUET), 1]]}),
    "tuple items missing": argument({wire.TAG: "tuple"}),
    "bytes not base64": argument({wire.TAG: "bytes", "base64": 5}),
    "file without a name": argument({wire.TAG: "file", "base64": "AA=="}),
    "float not a number": argument({wire.TAG: "float", "value": "1e999"}),
    "dataclass without type": argument({wire.TAG: "dataclass", "fields": {}}),
    "dataclass not offered": argument(
        {
            wire.TAG: "dataclass",
            "type": "srs.governance.deployment.Deployment",
            "fields": {"home": "/"},
        }
    ),
    "dataclass bad fields": argument(
        {wire.TAG: "dataclass", "type": "srs.research.values.OutputSummary", "fields": {"x": 1}}
    ),
    "query bad fields": argument(
        {wire.TAG: "dataclass", "type": "disclosure.dp.queries.DPQuery", "fields": {"by": 5}}
    ),
    "integer of 31 digits": b'{"method": "request_status", "args": [1' + b"0" * 30 + b"]}",
    "integer of 5000 digits": b'{"method": "request_status", "args": [1' + b"0" * 5000 + b"]}",
    "NaN": b'{"method": "request_status", "args": [NaN]}',
    "Infinity": b'{"target": "dp", "method": "count", "args": ["x"], "kwargs": {"rho": Infinity}}',
    "-Infinity": b'{"method": "request_status", "args": [-Infinity]}',
    "1e999": b'{"method": "request_status", "args": [1e999]}',
    "NUL in text": b'{"method": "crosstab", "args": ["linked/journeys", "se\\u0000x"]}',
    "lone surrogate in method": b'{"method": "\\ud800"}',
    "lone surrogate in text": b'{"method": "crosstab", "args": ["linked/journeys", "\\udfff"]}',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_answers_400_with_a_message(service, token, body) -> None:
    status, answer = post(service, token, body)
    assert status == 400, answer
    assert answer["error"]["type"] in ("WireError", "SessionError"), answer
    assert len(answer["error"]["message"]) > 20
    assert outputs_recorded(service.registry) == 0


def test_too_many_json_values_is_413(service, token) -> None:
    body = json.dumps({"method": "crosstab", "args": [[[]] * 1_100_000]}).encode()
    status, answer = post(service, token, body)
    assert status == 413 and "JSON values" in answer["error"]["message"]


# ------------------------------------------------------------------ arguments the method cannot use
@pytest.mark.parametrize(
    ("request_", "refusal"),
    [
        ({"method": "crosstab", "args": ["linked/journeys", "nope"]}, "no column(s) nope"),
        ({"method": "crosstab", "args": ["linked/journeys", ["sex", ["x"]]]}, "TypeError"),
        ({"method": "crosstab", "args": ["linked/journeys", 5]}, "TypeError"),
        ({"method": "crosstab", "args": ["linked/journeys", "sex"], "kwargs": {"name": 5}}, "Attr"),
        ({"method": "hist", "args": ["linked/journeys", "age"], "kwargs": {"bins": "x"}}, "Value"),
        (
            {
                "target": "dp",
                "method": "count",
                "args": ["linked/journeys"],
                "kwargs": {"rho": "x"},
            },
            "a privacy spend must be a positive, finite rho given as a number",  # SpendRefused
        ),
        (
            {
                "target": "dp",
                "method": "mean",
                "args": ["linked/journeys", "age"],
                "kwargs": {"bounds": [1], "rho": 0.01},
            },
            "ValueError",
        ),
    ],
)
def test_a_bad_column_or_value_answers_400_and_is_logged(
    service, token, caplog, request_, refusal
) -> None:
    with caplog.at_level(logging.WARNING, logger="srs.hub.api"):
        status, answer = post(service, token, request_)
    assert status == 400, answer
    assert refusal in answer["error"]["message"]
    if answer["error"]["type"] == "SessionError":  # a plain Python error, turned into a refusal
        assert "cannot use the arguments given" in answer["error"]["message"]
        assert any("refused its arguments" in r.getMessage() for r in caplog.records)


def test_an_internal_failure_is_still_a_500(service, token, monkeypatch) -> None:
    def broken(self: ResearchSession) -> list[str]:
        raise sqlalchemy.exc.OperationalError("SELECT name FROM datasets", {}, OSError("disk"))

    monkeypatch.setattr(ResearchSession, "datasets", broken)
    status, answer = post(service, token, {"method": "datasets"})
    assert status == 500 and answer["error"]["type"] == "OperationalError"


def test_the_kernel_reads_results_with_no_limit() -> None:
    frame = pd.DataFrame({"x": np.arange(3_000_000), "text": "a long text " * 10})
    sent = json.loads(json.dumps(wire.encode(frame)))
    pd.testing.assert_frame_equal(wire.decode_result(sent), frame)
    with pytest.raises(wire.RequestTooLarge, match="decodes to"):
        wire.decode_arguments(sent, wire.DecodingAllowance(wire.WireLimits(10_000_000, 10_000_000)))

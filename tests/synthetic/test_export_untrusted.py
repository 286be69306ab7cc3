"""A downloaded package is untrusted: validate_package and open_data refuse, before frictionless or
pandas reads anything, a descriptor that names a URL (nothing is fetched: a real HTTP server on
127.0.0.1 logs every request), a file outside the folder, or a dialect or encoding that would
make the validator check other rows than open_data loads; and the validator reads each CSV as
open_data does, so a row hidden by a comment or a sniffed delimiter is still checked."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import frictionless
import pandas as pd
import pytest

from synthetic.export import validate_package
from synthetic.open_data import OpenDataRefused, open_data

SCHEMA = {
    "fields": [
        {"name": "id", "type": "integer"},
        {"name": "sex", "type": "string", "constraints": {"enum": ["F", "M"]}},
    ],
    "primaryKey": ["id"],
}
CSV = "id,sex\n1,F\n2,M\n"
# A row a comment character, a comment row or a sniffed header row would hide from frictionless.
HIDDEN_BAD_ROW = "id,sex\n1,F\n#person 7 is in prison,XX\n2,M\n"


class RequestLog(http.server.BaseHTTPRequestHandler):
    """Answers every GET with something frictionless would accept, and logs its path."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path.endswith(".csv"):
            body = CSV.encode()
        elif "schema" in self.path:
            body = json.dumps(SCHEMA).encode()
        else:
            body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *arguments: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RequestLog)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    thread.join()


def url(server: http.server.HTTPServer, name: str) -> str:
    return f"http://127.0.0.1:{server.server_port}/{name}"


def write_package(
    folder: Path,
    csv: str = CSV,
    change: Callable[[dict, dict], None] | None = None,
    encoding: str = "utf-8",
) -> Path:
    """A one-table package as our export writes it (profiles, hash, inline schema), then
    ``change(descriptor, resource)``."""
    folder.mkdir()
    data = csv.encode(encoding)
    (folder / "t.csv").write_bytes(data)
    resource = {
        "name": "t",
        "path": "t.csv",
        "profile": "tabular-data-resource",
        "format": "csv",
        "encoding": "utf-8",
        "hash": "sha256:" + hashlib.sha256(data).hexdigest(),
        "schema": json.loads(json.dumps(SCHEMA)),
    }
    descriptor = {"profile": "tabular-data-package", "name": "p", "resources": [resource]}
    if change:
        change(descriptor, resource)
    (folder / "datapackage.json").write_text(json.dumps(descriptor))
    return folder


def test_the_server_logs_what_frictionless_fetches(tmp_path, server):
    """The control: frictionless on its own downloads a schema named by a URL, so an empty log
    below means our checks stopped it, not that the server was never reachable."""
    folder = write_package(
        tmp_path / "p", change=lambda d, r: r.update(schema=url(server, "schema.json"))
    )
    frictionless.Package(str(folder / "datapackage.json"))
    assert server.requests == ["/schema.json"]


def test_a_package_as_exported_is_valid_and_loads(tmp_path, server):
    folder = write_package(tmp_path / "p", change=lambda d, r: r.update(encoding="UTF-8"))
    assert validate_package(folder) == []
    assert open_data(path=folder).dataset("t")["sex"].tolist() == ["F", "M"]
    assert server.requests == []


FETCHED = {
    "schema-url": lambda d, r, s: r.update(schema=url(s, "schema.json")),
    "dialect-url": lambda d, r, s: r.update(dialect=url(s, "dialect.json")),
    "resource-profile-url": lambda d, r, s: r.update(profile=url(s, "profile.json")),
    "resource-profiles-url": lambda d, r, s: r.update(profiles=[url(s, "profile.json")]),
    "resource-$schema-url": lambda d, r, s: r.update({"$schema": url(s, "profile.json")}),
    "package-profile-url": lambda d, r, s: d.update(profile=url(s, "profile.json")),
    "package-profiles-url": lambda d, r, s: d.update(profiles=[url(s, "profile.json")]),
    "package-$schema-url": lambda d, r, s: d.update({"$schema": url(s, "profile.json")}),
    "package-dialect-url": lambda d, r, s: d.update(dialect=url(s, "dialect.json")),
    "table-schema-$schema-url": lambda d, r, s: r["schema"].update(
        {"$schema": url(s, "tableschema.json")}
    ),
    "path-url": lambda d, r, s: r.update(path=url(s, "t.csv")),
    "path-list": lambda d, r, s: r.update(path=["t.csv", url(s, "t.csv")]),
    "v0-url": lambda d, r, s: (r.pop("path"), r.update(url=url(s, "t.csv"))),
    "extrapaths-url": lambda d, r, s: r.update(extrapaths=[url(s, "t.csv")]),
    "scheme-http": lambda d, r, s: r.update(path=f"127.0.0.1:{s.server_port}/t.csv", scheme="http"),
    "resource-by-url": lambda d, r, s: d["resources"].append(url(s, "resource.json")),
}


@pytest.mark.parametrize("form", FETCHED)
def test_nothing_named_by_a_url_is_fetched(tmp_path, server, form):
    folder = write_package(tmp_path / "p", change=lambda d, r: FETCHED[form](d, r, server))
    problems = validate_package(folder)
    assert problems
    assert all(problem.startswith("datapackage.json") for problem in problems), problems
    with pytest.raises(OpenDataRefused, match="were not loaded: datapackage.json"):
        open_data(path=folder)
    assert server.requests == []


def test_refusals_say_what_and_what_to_do(tmp_path, server):
    def change(descriptor: dict, resource: dict) -> None:
        descriptor["profile"] = url(server, "profile.json")
        resource["schema"] = url(server, "schema.json")
        resource["path"] = url(server, "t.csv")

    problems = validate_package(write_package(tmp_path / "p", change=change))
    assert problems == [
        f"datapackage.json: profile {url(server, 'profile.json')!r} is not read, since a profile "
        "named by a URL or a file would be fetched; the export writes only profile "
        "'tabular-data-package', so remove it, or export the replica again",
        f"datapackage.json, resource t: path {url(server, 't.csv')!r} is not one file in the "
        "package folder; give the name of its CSV beside datapackage.json, e.g. persons.csv",
        "datapackage.json, resource t: its Table Schema is not written out in datapackage.json "
        "(a schema named by a path or URL is not fetched); remove it, or export the replica "
        "again",
    ]
    assert server.requests == []


@pytest.mark.parametrize(
    "path",
    ["../t.csv", "/etc/passwd", "~/t.csv", "sub/../../t.csv", "sub\\t.csv", "file:///etc/passwd"],
)
def test_a_path_outside_the_folder_is_refused(tmp_path, path):
    (tmp_path / "t.csv").write_text(CSV)
    folder = write_package(tmp_path / "p", change=lambda d, r: r.update(path=path))
    assert validate_package(folder) == [
        f"datapackage.json, resource t: path {path!r} is not one file in the package folder; "
        "give the name of its CSV beside datapackage.json, e.g. persons.csv"
    ]
    with pytest.raises(OpenDataRefused):
        open_data(path=folder)


def test_a_link_out_of_the_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text(CSV)
    folder = write_package(tmp_path / "p")
    (folder / "t.csv").unlink()
    (folder / "t.csv").symlink_to(secret)
    assert validate_package(folder) == [
        "datapackage.json, resource t: path 't.csv' leads out of the package folder (a link); "
        "remove it, or export the replica again"
    ]
    with pytest.raises(OpenDataRefused, match="leads out of the package folder"):
        open_data(path=folder)


def test_a_parquet_link_out_of_the_folder_is_not_loaded(tmp_path):
    secret = tmp_path / "secret.parquet"
    pd.DataFrame({"id": [1], "sex": ["F"]}).to_parquet(secret)
    folder = write_package(tmp_path / "p")
    (folder / "t.parquet").symlink_to(secret)
    with pytest.raises(OpenDataRefused, match="t.parquet leads out of the package folder"):
        open_data(path=folder)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("data", [{"id": 1, "sex": "F"}]),
        ("innerpath", "t.csv"),
        ("compression", "zip"),
        ("format", "xlsx"),
        ("type", "json"),
        ("encoding", "latin-1"),
    ],
)
def test_other_ways_of_reading_a_table_are_refused(tmp_path, key, value):
    folder = write_package(tmp_path / "p", change=lambda d, r: r.update({key: value}))
    (problem,) = validate_package(folder)
    assert problem.startswith(f"datapackage.json, resource t: {key} ")
    assert problem.endswith("remove it, or export the replica again")
    with pytest.raises(OpenDataRefused, match=f"resource t: {key} "):
        open_data(path=folder)


@pytest.mark.parametrize(
    ("key", "dialect"),
    [
        ("dialect", {"commentChar": "#"}),
        ("dialect", {"commentRows": [3]}),
        ("dialect", {"headerRows": [3]}),
        ("dialect", {"header": False}),
        ("dialect", {"delimiter": ";"}),
        ("layout", {"skipRows": [3]}),
    ],
)
def test_a_dialect_that_hides_a_row_is_refused(tmp_path, key, dialect):
    """frictionless would skip row 3 (or read the file otherwise) where pandas loads it."""
    folder = write_package(
        tmp_path / "p", HIDDEN_BAD_ROW, change=lambda d, r: r.update({key: dialect})
    )
    assert validate_package(folder) == [
        f"datapackage.json, resource t: {key} {dialect!r} would make a reader skip or split rows "
        "that open_data reads (comma-separated UTF-8, one header row), so they would go "
        "unchecked; remove it, or export the replica again"
    ]
    with pytest.raises(OpenDataRefused, match=f"resource t: {key} "):
        open_data(path=folder)


def test_a_row_that_looks_like_a_comment_is_checked(tmp_path):
    """Without a dialect the row open_data loads is checked like any other."""
    folder = write_package(tmp_path / "p", HIDDEN_BAD_ROW)
    assert validate_package(folder) == [
        "t.csv row 3, field id: '#person 7 is in prison' is not an integer",
        "t.csv row 3, field sex: 'XX' is not one of the allowed values (F, M)",
        "t.csv row 3: the primary key id is empty",
    ]


def test_the_delimiter_is_not_guessed(tmp_path):
    """frictionless alone sniffs ';' and finds the file valid; pandas, and so open_data, reads
    one column 'id;sex': the validator reads it as pandas does and says so."""
    folder = write_package(tmp_path / "p", "id;sex\n1;F\n2;M\n")
    assert frictionless.validate(str(folder / "datapackage.json")).valid  # the gap
    problems = validate_package(folder)
    assert problems[:2] == [
        "t.csv header, column 2: no column for the schema's field 'sex'",
        "t.csv header, column 1: 'id;sex' where the schema has field 'id' (the columns must be "
        "the schema's fields, in order)",
    ]


def test_the_header_row_is_not_guessed(tmp_path):
    """A first row wider than the rest makes frictionless alone take row 2 as the header, so
    row 2 goes unchecked; open_data's header is row 1, and so is the validator's."""
    csv = "id,sex,,,,\n1,XX\n2,M\n"
    folder = write_package(tmp_path / "p", csv)
    raw = frictionless.validate(str(folder / "datapackage.json"))
    # frictionless alone reads row 2 as the header: its cells are never checked as data
    assert raw.flatten(["type", "label"]) == [["incorrect-label", "1"], ["incorrect-label", "XX"]]
    assert "t.csv row 2, field sex: 'XX' is not one of the allowed values (F, M)" in (
        validate_package(folder)
    )


def test_a_file_not_in_utf8_is_reported(tmp_path):
    """With no encoding given, frictionless alone would guess one; open_data reads UTF-8."""
    folder = write_package(
        tmp_path / "p",
        "id,sex\n1,F\n2,É\n",
        change=lambda d, r: r.pop("encoding"),
        encoding="latin-1",
    )
    (problem,) = [p for p in validate_package(folder) if "cannot be read" in p]
    assert problem.startswith("t.csv cannot be read: ")


def test_an_encoding_other_than_utf8_is_refused_in_plain_words(tmp_path):
    folder = write_package(
        tmp_path / "p", "id,sex\n1,F\n2,M\n", change=lambda d, r: r.update(encoding="latin-1")
    )
    assert validate_package(folder) == [
        "datapackage.json, resource t: encoding 'latin-1' is not how open_data reads a table "
        "(in UTF-8); remove it, or export the replica again"
    ]


def test_open_data_refuses_a_descriptor_that_is_not_a_json_object(tmp_path):
    folder = write_package(tmp_path / "p")
    (folder / "datapackage.json").write_text('["t.csv"]')
    with pytest.raises(OpenDataRefused, match="its JSON is not an object; export or download"):
        open_data(path=folder)

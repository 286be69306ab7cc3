"""Versioned datasets through the environment API: inside the hub a researcher pins a version
and lists versions as in a local session; the versions an output records are those the API's
own session read, and a kernel that claims others (a keyword, a request field, a frame's attrs)
is refused or ignored."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from session_fixtures import journeys, small_deployment
from session_fixtures import stored_output as output
from version_fixtures import CHANGES, NEWER_ROWS, shred, store_second_version, use_of

import srs
from output_checking.web import BackgroundServer
from registry_fixtures import PROJECT
from srs.governance.access import AccessDenied
from srs.hub import wire
from srs.hub.api import make_api_app
from srs.hub.client import RemoteSession
from srs.hub.tokens import issue_session_token
from srs.research.values import SessionError
from srs.research.versions import DatasetVersion
from srs.vault.store import VaultError, VaultShredded

BASE_URL = "/services/srs-api/"


@pytest.fixture
def hub(tmp_path, policies, monkeypatch) -> Iterator[tuple[Any, str, str]]:
    """(registry, API URL, ana's token) for a deployment whose linked/journeys has two
    versions, with the kernel's environment set as the spawner sets it."""
    lab = small_deployment(tmp_path / "home", policies)
    deployment, registry = lab
    store_second_version(lab, policies)
    with registry.sessions() as db:
        token = issue_session_token(db, username="ana", project_code=PROJECT, policies=policies)
    app = make_api_app(deployment, policies, base_url=BASE_URL)
    try:
        with BackgroundServer(app) as server:
            for name in ("SRS_HOME", "SRS_DATABASE_URL"):
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv("SRS_API_URL", server.url)
            monkeypatch.setenv("SRS_SESSION_TOKEN", token)
            yield registry, server.url, token
    finally:
        app.settings["srs"].close()
        registry.dispose()


@pytest.fixture
def s(hub) -> Iterator[RemoteSession]:
    with srs.session() as remote:
        yield remote


def call(url: str, token: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A call as a kernel could craft it by hand: (status, JSON answer)."""
    http = urllib.request.Request(
        url + "call",
        data=json.dumps(request).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(http, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, json.loads(refused.read())


def test_a_pinned_version_and_the_versions_list_come_through_the_api(s, hub) -> None:
    registry, _, _ = hub
    assert isinstance(s, RemoteSession)
    pd.testing.assert_frame_equal(s.dataset("linked/journeys", version=1), journeys())
    assert len(s.dataset("linked/journeys")) == NEWER_ROWS
    first, second = s.versions("linked/journeys")
    assert isinstance(second, DatasetVersion)
    assert (first.version, second.version, second.rows) == (1, 2, NEWER_ROWS)
    assert second.deliveries == (("magistrates_cases", "2026-11"), ("police_arrests", "2026-11"))
    assert second.change_summary == CHANGES and not second.shredded
    with pytest.raises(VaultError, match="linked/journeys has no version 7"):
        s.dataset("linked/journeys", version=7)
    shred(registry, "linked/journeys", 1)
    with pytest.raises(VaultShredded, match="linked/journeys@1 was destroyed"):
        s.dataset("linked/journeys", version=1)
    assert s.versions("linked/journeys")[0].shredded


def test_versions_and_pinned_reads_of_an_ungranted_dataset_are_refused(s, hub) -> None:
    with pytest.raises(AccessDenied, match="project P001 has no grant for linked/victims"):
        s.versions("linked/victims")
    with pytest.raises(AccessDenied, match="project P001 has no grant for linked/victims"):
        s.dataset("linked/victims", version=1)


def test_outputs_record_the_versions_the_apis_session_read(s, hub) -> None:
    registry, _, _ = hub
    older = s.dataset("linked/journeys", version=1)
    table = s.crosstab(older, "sex", "court")
    recorded = output(registry, table.attrs["srs_output_id"])
    assert recorded.datasets_used == [use_of(registry, "linked/journeys", 1)]
    assert s.last_output.datasets_used == ("linked/journeys@1",)
    released = s.dp.count("linked/journeys", by=["sex"], rho=0.01)
    assert output(registry, released.attrs["srs_output_id"]).datasets_used == [
        use_of(registry, "linked/journeys", 1),
        use_of(registry, "linked/journeys", 2),
    ]


def test_a_kernel_cannot_claim_the_versions_it_used(s, hub) -> None:
    registry, url, token = hub
    forged = [{"name": "linked/journeys", "version": 2, "content_hash": "sha256:" + "0" * 64}]
    frame = journeys()
    # As a keyword of the call: no method takes it.
    status, answer = call(
        url,
        token,
        {
            "method": "crosstab",
            "args": [wire.encode(frame), "sex"],
            "kwargs": {"datasets_used": forged},
        },
    )
    assert (
        status == 400
        and "unexpected keyword argument 'datasets_used'" in (answer["error"]["message"])
    )
    status, answer = call(
        url,
        token,
        {
            "target": "dp",
            "method": "count",
            "args": ["linked/journeys"],
            "kwargs": {"rho": 0.01, "datasets_used": forged},
        },
    )
    assert (
        status == 400
        and "unexpected keyword argument 'datasets_used'" in (answer["error"]["message"])
    )
    # As a field of the request: the API reads no field it does not know.
    status, answer = call(
        url,
        token,
        {"method": "crosstab", "args": [wire.encode(frame), "sex"], "datasets_used": forged},
    )
    assert status == 400 and "fields the environment does not read" in answer["error"]["message"]
    # In a frame's attrs: carried, never believed. Nothing was read, so nothing is recorded.
    frame.attrs.update({"srs_dataset": "linked/journeys", "datasets_used": forged})
    table = s.crosstab(frame, "sex")
    assert output(registry, table.attrs["srs_output_id"]).datasets_used == []
    # A fit's options are checked: datasets_used is not one of them.
    with pytest.raises(SessionError, match="ols does not take 'datasets_used'"):
        s.ols("age ~ sex", journeys(), datasets_used=forged)

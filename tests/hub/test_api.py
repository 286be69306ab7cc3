"""The environment API and its client: inside the hub ``srs.session()`` works through the API with
the local session's methods and results, every access decision and audit event the session's
own; bad tokens, private methods, formulas that run Python, paths on the service, non-JSON
payloads and oversized calls are refused."""

from __future__ import annotations

import base64
import json
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from matplotlib.figure import Figure
from session_fixtures import DICTIONARY, OTHER_PROJECT, journeys, prepare, small_deployment
from sqlalchemy import select
from sqlalchemy.orm import selectinload

import srs
from disclosure import dp
from disclosure.dp.results import DPPreview
from disclosure.dp.selection import DPDataRefused
from disclosure.tables import TableSpecError
from output_checking.outputs import OutputError
from output_checking.web import BackgroundServer
from registry_fixtures import PROJECT
from srs.governance.access import AccessDenied
from srs.governance.budget import BudgetState, SpendRefused, spends
from srs.governance.deployment import Deployment
from srs.governance.policy import default_policy_dir, load_policies
from srs.governance.registry import Registry
from srs.governance.registry.models import AuditEvent, Output
from srs.hub import wire
from srs.hub.api import (
    EnvironmentAPI,
    check_formula,
    make_api_app,
    service_address,
)
from srs.hub.client import RemoteSession
from srs.hub.tokens import TokenRefused, issue_session_token, revoke_session_tokens
from srs.research.drafts import protected_table
from srs.research.session import ResearchSession, open_session
from srs.research.surface import surface_drift
from srs.research.values import OutputSummary, RequestStatus, SessionError

BASE_URL = "/services/srs-api/"
JUSTIFICATION = "Plain-text method notes with no figures from the data"


@dataclass
class Service:
    """The API served on loopback: its URL, its state, the deployment and registry behind it."""

    url: str
    api: EnvironmentAPI
    deployment: Deployment
    registry: Registry


@pytest.fixture
def lab(tmp_path, policies) -> Iterator[tuple[Deployment, Registry]]:
    deployment, registry = small_deployment(tmp_path / "home", policies)
    yield deployment, registry
    registry.dispose()


@contextmanager
def serve(deployment: Deployment, registry: Registry, policies) -> Iterator[Service]:
    app = make_api_app(deployment, policies, base_url=BASE_URL)
    try:
        with BackgroundServer(app) as server:
            yield Service(server.url, app.settings["srs"], deployment, registry)
    finally:
        app.settings["srs"].close()


@pytest.fixture
def service(lab, policies) -> Iterator[Service]:
    with serve(*lab, policies) as running:
        yield running


def token_for(registry: Registry, policies, user: str = "ana", project: str = PROJECT) -> str:
    with registry.sessions() as db:
        return issue_session_token(db, username=user, project_code=project, policies=policies)


@pytest.fixture
def token(service: Service, policies) -> str:
    return token_for(service.registry, policies)


@pytest.fixture
def in_hub(service: Service, token: str, monkeypatch) -> Service:
    """The kernel's environment as the spawner sets it."""
    for name in ("SRS_HOME", "SRS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SRS_API_URL", service.url)
    monkeypatch.setenv("SRS_SESSION_TOKEN", token)
    monkeypatch.setenv("SRS_USER", "ana")
    monkeypatch.setenv("SRS_PROJECT", PROJECT)
    return service


@pytest.fixture
def s(in_hub: Service) -> RemoteSession:
    with srs.session() as remote:
        yield remote


@pytest.fixture
def local(lab, policies) -> Iterator[ResearchSession]:
    deployment, _ = lab
    with srs.session(user="ana", project=PROJECT, deployment=deployment, policies=policies) as ana:
        yield ana


def http(
    url: str, *, token: str | None = None, body: bytes | None = None
) -> tuple[int, dict[str, Any], Any]:
    """A raw request, as a kernel could craft it: (status, JSON answer, headers)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read()), answer.headers
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, json.loads(refused.read()), refused.headers


def call(service: Service, token: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, answer, _ = http(service.url + "call", token=token, body=json.dumps(request).encode())
    return status, answer


def audit(registry: Registry, action: str, outcome: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    with registry.sessions() as db:
        return list(db.execute(query).scalars())


def output(registry: Registry, output_id: int) -> Output:
    with registry.sessions() as db:
        return db.execute(
            select(Output).options(selectinload(Output.files)).where(Output.id == output_id)
        ).scalar_one()


def outputs_recorded(registry: Registry) -> int:
    with registry.sessions() as db:
        return len(db.execute(select(Output.id)).all())


# ------------------------------------------------------------------ the session in the kernel
def test_inside_the_hub_srs_session_reads_through_the_api(s, local, monkeypatch, policies) -> None:
    assert isinstance(s, RemoteSession) and (s.user, s.project) == ("ana", PROJECT)
    assert repr(s).startswith("<srs session: ana in P001 (via the environment API at http://")
    assert repr(s.dp) == repr(local.dp)
    # The same attributes on both sides (srs.research.surface), with the same values.
    assert surface_drift(s) == surface_drift(local) == [] == surface_drift(s.dp)
    assert (s.source, s.notice, s.last_output) == (local.source, local.notice, None)
    assert s.datasets() == local.datasets() == ["linked/journeys"]
    frame = s.dataset("linked/journeys")
    pd.testing.assert_frame_equal(frame, local.dataset("linked/journeys"))
    pd.testing.assert_frame_equal(frame, journeys())
    assert frame.attrs == {"srs_dataset": "linked/journeys"}
    assert s.dictionary_of(frame) == s.dictionary_of("linked/journeys") == DICTIONARY
    assert isinstance(s.dataset("linked/journeys", engine="polars"), pl.DataFrame)
    with pytest.raises(SessionError, match="engine 'spark'"):
        s.dataset("linked/journeys", engine="spark")
    # The token decides who and where; arguments may only agree with it.
    assert srs.session(user="ana", project=PROJECT).user == "ana"
    with pytest.raises(SessionError, match="works as ana in P001, not user 'olga'"):
        srs.session(user="olga")
    with pytest.raises(SessionError, match=f"not project '{OTHER_PROJECT}'"):
        srs.session(project=OTHER_PROJECT)
    with pytest.raises(SessionError, match="policies apply"):
        srs.session(policies=policies)
    monkeypatch.delenv("SRS_SESSION_TOKEN")
    with pytest.raises(SessionError, match="SRS_SESSION_TOKEN is not"):
        srs.session()


def test_another_projects_dataset_is_refused_in_the_kernel_and_audited(s, in_hub) -> None:
    with pytest.raises(AccessDenied, match="project P001 has no grant for linked/victims") as no:
        s.dataset("linked/victims")
    assert type(no.value) is AccessDenied and no.value.reason == (
        "project P001 has no grant for linked/victims"
    )
    (denial,) = audit(in_hub.registry, "access.dataset.read", "deny")
    assert (denial.actor, denial.target) == ("ana", "linked/victims")
    assert json.loads(denial.details)["project"] == PROJECT


def test_output_ids_are_the_environments_answer_which_refuses_others_and_audits(
    s, lab, in_hub, policies, tmp_path: Path
) -> None:
    notes = tmp_path / "Method notes.txt"
    notes.write_text("We linked cases to people and counted them by court.\n")
    deployment, _ = lab
    with open_session("olga", OTHER_PROJECT, deployment=deployment, policies=policies) as olga:
        hers = olga.custom_output(notes, JUSTIFICATION)
    mine = s.custom_output(notes, JUSTIFICATION)
    for form in (mine, mine.id, np.int64(mine.id), "Method notes"):
        assert s.output_id(form) == mine.id
    assert audit(in_hub.registry, "output.lookup") == []  # one's own outputs: nothing to note
    # Another researcher's output (by id or by its summary) and an id that names nothing: the
    # kernel vouches for none of them, the environment refuses them all, and says so no more.
    for foreign in (hers.id, hers, 424242):
        number = foreign.id if isinstance(foreign, OutputSummary) else foreign
        with pytest.raises(AccessDenied, match=f"you have no output #{number} in your project "):
            s.output_id(foreign)
    refusals = audit(in_hub.registry, "output.lookup", "deny")
    assert [(e.actor, e.target, json.loads(e.details)) for e in refusals] == [
        ("ana", PROJECT, {"project": PROJECT, "output_id": number})
        for number in (hers.id, hers.id, 424242)
    ]


def test_a_crosstab_records_its_output_and_returns_the_protected_table(
    s, local, in_hub, policies
) -> None:
    data = s.dataset("linked/journeys")
    table = s.crosstab(data, "sex", "court", name="People by sex and court")
    expected, _ = protected_table(
        journeys(),
        index="sex",
        columns="court",
        unit="person_key",
        profile=policies.sdc.active,
        profile_name=policies.sdc.profile,
    )
    pd.testing.assert_frame_equal(table, expected)
    assert table.attrs["srs_output_id"] == s.last_output.id
    assert isinstance(s.last_output, OutputSummary) and s.last_output.checks == "review"
    record = output(in_hub.registry, s.last_output.id)
    assert (record.author, record.kind, record.name) == ("ana", "table", "People by sex and court")
    assert record.checks[0]["suppressed"]  # the youth court's four cases
    # By the dataset's name too, and tables whose margins mix labels (False, True, "Total").
    by_name = s.crosstab("linked/journeys", "reoffended", "sex")
    pd.testing.assert_frame_equal(by_name, local.crosstab("linked/journeys", "reoffended", "sex"))
    assert list(by_name.index) == [False, True, "Total"]
    with pytest.raises(TableSpecError, match="no column"):
        s.crosstab(data, "nope")
    with pytest.raises(SessionError, match="has no automatic disclosure check"):
        s.pivot_table(data, "age", "sex", aggfunc=np.var)
    means = s.pivot_table(data, "sentence_months", "sex", aggfunc=np.mean)
    assert list(means.index) == ["F", "M"]


def test_dp_queries_through_the_api_spend_the_project_budget(s, in_hub) -> None:
    preview = s.dp.preview("linked/journeys", "count", by=["sex"], rho=0.01)
    assert isinstance(preview, DPPreview) and preview.rho == pytest.approx(0.01)
    assert str(preview).startswith("count of rows by sex: costs rho 0.01")
    built = s.dp.preview("linked/journeys", dp.count(by=["sex"]), rho=0.01)
    assert built.rho == preview.rho  # a query object travels as data
    budget = s.dp.budget()
    assert isinstance(budget, BudgetState) and budget.spends == 0
    table = s.dp.count("linked/journeys", by=["sex"], rho=0.01, name="Journeys by sex")
    assert list(table.columns) == ["sex", "estimate", "lower", "upper"]
    assert list(table["sex"]) == ["F", "M"]
    with in_hub.registry.sessions() as db:
        (spend,) = spends(db, PROJECT)
    assert (spend.researcher, table.attrs["srs_dp"]["spend_id"]) == ("ana", spend.id)
    assert s.dp.budget().spent_rho == pytest.approx(0.01)
    assert output(in_hub.registry, table.attrs["srs_output_id"]).kind == "dp_result"
    means = s.dp.mean(
        "linked/journeys",
        "sentence_months",
        bounds=(0, 60),
        by=["age_band"],
        where=[("court", "in", ["crown", "magistrates"]), ("sex", "==", "F")],
        derive={"age_band": ("band", "age", [18, 40])},
        rho=0.01,
    )
    assert list(means["age_band"]) == ["< 18", "[18, 40)", ">= 40"]  # the spec travels as JSON
    record = output(in_hub.registry, means.attrs["srs_output_id"])
    assert record.content["data"]["where"] == [
        ["court", "in", ["crown", "magistrates"]],
        ["sex", "==", "F"],
    ]
    assert record.content["data"]["derive"] == {"age_band": ["band", "age", [18.0, 40.0]]}
    with pytest.raises(SpendRefused, match="at most rho 0.05"):
        s.dp.count("linked/journeys", rho=0.06)
    with pytest.raises(SpendRefused, match="positive, finite rho given as a number"):
        s.dp.count("linked/journeys", rho="0.01")
    with pytest.raises(dp.SelectionError, match="operator '=' is not one of"):
        s.dp.count("linked/journeys", where=[("sex", "=", "F")], rho=0.01)
    with pytest.raises(AccessDenied, match="no grant for linked/victims"):
        s.dp.count("linked/victims", rho=0.01)
    assert s.dp.budget().spends == 2


def test_dp_queries_through_the_api_refuse_frames(s, in_hub, token) -> None:
    frame = s.dataset("linked/journeys")
    forged = pd.concat([frame.iloc[[0]]] * 300, ignore_index=True)
    forged["person_key"] = [f"fresh{i}" for i in range(300)]
    # The client refuses before sending ...
    for data in (forged, pl.from_pandas(forged), frame):
        with pytest.raises(DPDataRefused, match="never on a frame"):
            s.dp.count(data, rho=0.01)
        with pytest.raises(DPDataRefused, match="never on a frame"):
            s.dp.synthetic(data, ["sex"], rows=10, rho=0.01)
        with pytest.raises(DPDataRefused, match="never on a frame"):
            s.dp.preview(data, "count", rho=0.01)
    # ... and the API refuses a frame a kernel sends anyway, anywhere in the call, undecoded.
    sent = wire.encode(forged)
    for arguments, options in (
        ([sent], {"rho": 0.01}),
        (["linked/journeys"], {"where": [["sex", "in", sent]], "rho": 0.01}),
        (["linked/journeys"], {"derive": {"x": sent}, "rho": 0.01}),
        ([sent, ["sex"]], {"rows": 10, "rho": 0.01}),
        ([{"__srs__": "series", "parquet": "x"}], {"rho": 0.01}),
        (["linked/journeys"], {"where": [["sex", "==", {"__srs__": "bytes", "base64": ""}]]}),
    ):
        method = "synthetic" if "rows" in options else "count"
        body = json.dumps(
            {"target": "dp", "method": method, "args": arguments, "kwargs": options}
        ).encode()
        status, answer, _ = http(in_hub.url + "call", token=token, body=body)
        assert status == 400 and answer["error"]["type"] == "DPDataRefused", answer
        assert "never on a frame" in answer["error"]["message"]
    # A malformed tag is the kernel's mistake (400), never the service's (500).
    body = json.dumps(
        {
            "target": "dp",
            "method": "count",
            "args": ["linked/journeys"],
            "kwargs": {"where": [["sex", "==", {"__srs__": []}]], "rho": 0.01},
        }
    ).encode()
    status, answer, _ = http(in_hub.url + "call", token=token, body=body)
    assert status == 400 and answer["error"]["type"] == "WireError", answer
    with in_hub.registry.sessions() as db:
        assert spends(db, PROJECT) == []
    assert outputs_recorded(in_hub.registry) == 0


def test_dp_queries_through_the_api_cannot_choose_their_privacy_unit(s, in_hub, token) -> None:
    # Review of issue 15: identifier= travelled as a plain keyword and made a per-row column
    # the "person", releasing one person's 200 records as a count of about 200.
    for option in ({"identifier": "sentence_months"}, {"max_rows_per_person": 500}):
        with pytest.raises(dp.PrivacyUnitFixed, match="policy fixes"):
            s.dp.count("linked/journeys", rho=0.01, **option)
        with pytest.raises(dp.PrivacyUnitFixed, match="policy fixes"):
            s.dp.preview("linked/journeys", "count", rho=0.01, **option)
        body = json.dumps(
            {
                "target": "dp",
                "method": "count",
                "args": ["linked/journeys"],
                "kwargs": {**option, "where": [["person_key", "==", "p001"]], "rho": 0.01},
            }
        ).encode()
        status, answer, _ = http(in_hub.url + "call", token=token, body=body)
        assert status == 400 and answer["error"]["type"] == "PrivacyUnitFixed", answer
    with pytest.raises(dp.SelectionError, match="'person_key' is the privacy unit"):
        s.dp.count("linked/journeys", where=[("person_key", "==", "p001")], rho=0.01)
    with in_hub.registry.sessions() as db:
        assert spends(db, PROJECT) == []
    assert outputs_recorded(in_hub.registry) == 0


def test_models_figures_files_and_requests_through_the_api(
    s, local, in_hub, tmp_path: Path
) -> None:
    registry = in_hub.registry
    data = s.dataset("linked/journeys")
    results = s.ols("sentence_months ~ age + C(sex)", data, name="Sentence model")
    fitted = local.ols("sentence_months ~ age + C(sex)", "linked/journeys")
    pd.testing.assert_series_equal(results.params, fitted.params)
    pd.testing.assert_series_equal(results.bse, fitted.bse)
    assert results.nobs == 600 and results.df_resid == fitted.df_resid
    assert list(results.conf_int().columns) == ["lower", "upper"]
    assert "OLS Regression Results" in str(results.summary())
    assert "sentence_months ~ age + C(sex)" in repr(results)
    assert s.last_output.name == "Sentence model" and s.last_output.kind == "model"
    assert "age" in s.logit("reoffended ~ age", "linked/journeys").params
    # Fit options through the API as locally: only the checked ones, and a converged fit only.
    with pytest.raises(SessionError, match="logit does not take 'start_params'"):
        s.logit("reoffended ~ age", "linked/journeys", start_params=[0.0, 0.0])
    with pytest.raises(SessionError, match="did not converge"):
        s.logit("reoffended ~ age + C(sex)", "linked/journeys", maxiter=1)
    robust = s.ols("sentence_months ~ age", "linked/journeys", cov_type="HC3")
    plain = local.ols("sentence_months ~ age", "linked/journeys")
    assert robust.params["age"] == pytest.approx(plain.params["age"])
    assert robust.bse["age"] != pytest.approx(plain.bse["age"])  # HC3 standard errors
    counts, figure = s.hist(data, "age", bins=[10, 18, 30, 50, 70], name="Age at offence")
    assert isinstance(figure, Figure) and pd.isna(counts["count"].iloc[0])
    png = next(f for f in output(registry, s.last_output.id).files if f.name.endswith(".png"))
    assert figure.srs_png == png.content  # the very picture a checker sees
    survival = s.survival(data, "days", "reoffended")
    assert list(survival.columns) == ["at_risk", "events", "censored", "survival"]
    notes = tmp_path / "Method notes.txt"
    notes.write_text("We linked cases to people and counted them by court.\n")
    summary = s.custom_output(notes, JUSTIFICATION)
    record = output(registry, summary.id)
    assert (record.kind, record.name, [f.content for f in record.files]) == (
        "custom",
        "Method notes",
        [notes.read_bytes()],
    )
    with pytest.raises(SessionError, match="no file"):
        s.custom_output(tmp_path / "missing.txt", JUSTIFICATION)
    leak = tmp_path / "cases.csv"
    data.head(20).to_csv(leak, index=False)
    with pytest.raises(OutputError, match="'person_key' looks like a record-level identifier"):
        s.custom_output(leak, "A few example rows to show the data's layout")
    table = s.crosstab(data, "sex")
    assert s.rename(table, "People by sex").name == "People by sex"
    assert s.describe("People by sex", context="All years").id == table.attrs["srs_output_id"]
    s.comment(table, "Counts of people, not cases.")
    assert s.output_id(table) == s.output_id("People by sex") == table.attrs["srs_output_id"]
    assert s.remove(summary).status == "removed"
    listing = s.outputs()
    pd.testing.assert_frame_equal(listing, local.outputs())  # the same record, either way
    assert list(listing["status"]).count("removed") == 1
    request_id = s.submit("Tables, a model and a figure")
    status = s.request_status(request_id)
    assert isinstance(status, RequestStatus) and status.status == "submitted"
    assert all(isinstance(o, OutputSummary) for o in status.outputs)
    assert summary.id not in [o.id for o in status.outputs]


# ------------------------------------------------------------------ what the API refuses
def test_bad_tokens_are_refused_with_401_and_audited(service, token, policies) -> None:
    for given in ("not-a-token", None):
        status, answer, headers = http(service.url + "session", token=given)
        assert status == 401 and answer["error"]["type"] == "TokenRefused"
        assert headers["WWW-Authenticate"].startswith("Bearer")
    status, answer = call(service, "not-a-token", {"method": "datasets"})
    assert status == 401 and "not one the hub issued" in answer["error"]["message"]
    with pytest.raises(TokenRefused, match="not one the hub issued"):
        RemoteSession(service.url, "not-a-token")
    refusals = audit(service.registry, "hub.session.resolve", "deny")
    assert len(refusals) == 4 and {e.actor for e in refusals} == {"(unknown)"}
    assert {json.loads(e.details)["remote"] for e in refusals} == {"127.0.0.1"}
    # A server that was stopped: its token ends, its session in the API closes.
    s = RemoteSession(service.url, token)
    assert s.datasets() == ["linked/journeys"]
    with service.registry.sessions() as db:
        revoke_session_tokens(db, username="ana", project_code=PROJECT)
    assert service.api.prune() == 1
    with pytest.raises(TokenRefused, match="was ended") as ended:
        s.datasets()
    assert isinstance(ended.value, AccessDenied)
    olga = RemoteSession(service.url, token_for(service.registry, policies, "olga", OTHER_PROJECT))
    assert (olga.user, olga.project, olga.datasets()) == ("olga", OTHER_PROJECT, ["linked/victims"])


@pytest.mark.parametrize(
    ("target", "method"),
    [
        ("session", "_registry"),
        ("session", "__class__"),
        ("session", "__init__"),
        ("session", "_record"),
        ("session", "close"),
        ("dp", "_session"),
        ("dp", "_release"),
        ("vault", "read"),
    ],
)
def test_only_public_session_methods_can_be_called(service, token, target, method) -> None:
    status, answer = call(service, token, {"target": target, "method": method, "args": []})
    assert status == 403 and answer["error"]["type"] == "AccessDenied"
    assert "is not a method the environment API offers" in answer["error"]["message"]
    (refusal,) = audit(service.registry, "hub.call", "deny")
    assert (refusal.actor, refusal.target) == ("ana", PROJECT)
    assert json.loads(refusal.details)["method"] == method


def test_a_site_audit_bound_holds_for_the_apis_own_refusals(lab, tmp_path) -> None:
    """The service's refusals (a method name of 100,000 characters) keep the site's bound: in
    the stored event and in the message sent back."""
    deployment, registry = lab
    folder = tmp_path / "site-policies"
    shutil.copytree(default_policy_dir(), folder)
    access = folder / "access.yaml"
    access.write_text(
        re.sub(r"audit_field_max_chars: \d+", "audit_field_max_chars: 200", access.read_text())
    )
    site = load_policies(folder)
    with serve(deployment, registry, site) as running:
        method = "x" * 100_000
        status, answer = call(running, token_for(registry, site), {"method": method, "args": []})
    assert status == 403 and answer["error"]["type"] == "AccessDenied"
    assert len(answer["error"]["message"]) <= 250 and "[cut: " in answer["error"]["message"]
    (refusal,) = audit(registry, "hub.call", "deny")
    assert len(refusal.actor) <= 200 and len(refusal.target or "") <= 200
    assert len(refusal.reason or "") <= 200 and "sha256 " in (refusal.reason or "")
    assert len(refusal.details) <= 200, refusal.details


def test_only_json_is_read_never_pickle(service, token, s) -> None:
    def refused(body: bytes) -> dict[str, Any]:
        status, answer, _ = http(service.url + "call", token=token, body=body)
        assert status == 400, answer
        return answer["error"]

    assert (
        "not JSON" in refused(pickle.dumps({"target": "session", "method": "datasets"}))["message"]
    )
    pickled = base64.b64encode(pickle.dumps(journeys())).decode()
    crafted = [
        {wire.TAG: "pickle", "data": pickled},
        {wire.TAG: "figure", "png": pickled},
        {wire.TAG: "model", "fields": {}},
        {
            wire.TAG: "dataclass",
            "type": "srs.governance.deployment.Deployment",
            "fields": {"home": "/"},
        },
        {wire.TAG: "frame", "parquet": pickled, "attrs": {}},
    ]
    for argument in crafted:
        body = {"target": "session", "method": "crosstab", "args": [argument, "sex"]}
        error = refused(json.dumps(body).encode())
        assert error["type"] == "WireError", error
    assert outputs_recorded(service.registry) == 0
    # The kernel refuses to send what has no JSON form, before anything leaves.
    with pytest.raises(wire.WireError, match="cannot be sent"):
        s.crosstab(object(), "sex")


def test_custom_output_never_reads_a_file_of_the_service(service, token) -> None:
    for path in (str(service.deployment.key_file), str(service.deployment.home / "srs.db")):
        body = {"method": "custom_output", "args": [path, JUSTIFICATION]}
        status, answer = call(service, token, body)
        assert status == 400 and "takes the file from your kernel" in answer["error"]["message"]
    assert outputs_recorded(service.registry) == 0


def test_formulas_that_would_run_python_in_the_service_are_refused(s, in_hub) -> None:
    for allowed in (
        "y ~ x",
        "y ~ x + C(sex) - 1",
        "np.log(y) ~ x:z + I(x**2) + x*z",
        "y ~ C(court, Treatment('crown'))",
        "y ~ center(age) + Q('odd name:with colon')",
        "~ x",
    ):
        assert check_formula(allowed) == allowed
    for refused in (
        "y ~ I(__import__('os').system('id'))",
        "y ~ I(open('master.key').read())",
        "y ~ x.__class__",
        "y ~ I((lambda: 1)())",
        "y ~ I([v for v in x])",
        "y ~ I(x[0])",
        "y ~ np.load('master.key')",
        "y ~ I(f'{x}')",
        "y ~ I(eval('1'))",
        "y ~ x $ z",
        "y ~ x if x else z",
    ):
        with pytest.raises(SessionError, match="does not evaluate"):
            check_formula(refused)
    with pytest.raises(SessionError, match="does not evaluate"):
        s.ols("sentence_months ~ I(len(open('/etc/hostname').read()))", "linked/journeys")
    assert outputs_recorded(in_hub.registry) == 0


def test_a_call_too_large_is_refused_with_a_clear_error(service, token, s, monkeypatch) -> None:
    monkeypatch.setattr(wire, "MAX_REQUEST_BYTES", 10_000)
    with pytest.raises(wire.RequestTooLarge, match="pass the dataset's name instead"):
        s.crosstab(journeys(), "sex")
    body = json.dumps({"method": "datasets", "args": ["x" * 20_000]}).encode()
    status, answer, _ = http(service.url + "call", token=token, body=body)
    assert status == 413 and answer["error"]["type"] == "RequestTooLarge"
    assert s.crosstab("linked/journeys", "sex").attrs["srs_output_id"] > 0  # a name is small


# The remote session, the local one and the allow-lists are held to the one surface in
# tests/srs/research/test_surface.py.


def test_health_unknown_paths_and_where_the_service_listens(service) -> None:
    assert http(service.url + "health")[:2] == (200, {"status": "ok", "service": "srs-api"})
    status, answer, _ = http(service.url + "nothing-here")
    assert status == 404 and answer["error"]["type"] == "HTTPError"
    from_hub = {
        "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:10101",
        "JUPYTERHUB_SERVICE_PREFIX": "/services/srs-api/",
    }
    assert service_address(None, None, None, from_hub) == ("127.0.0.1", 10101, BASE_URL)
    assert service_address("0.0.0.0", 9000, "/api", from_hub) == ("0.0.0.0", 9000, "/api/")
    assert service_address(None, None, None, {}) == ("127.0.0.1", 8766, "/")


def test_the_wire_keeps_frames_their_labels_and_the_result_types() -> None:
    def through(value: Any) -> Any:
        return wire.decode_result(json.loads(json.dumps(wire.encode(value))))

    frames = [
        pd.DataFrame(
            np.arange(6).reshape(3, 2),
            index=pd.MultiIndex.from_tuples(
                [("F", False), ("F", "Total"), ("Total", "Total")], names=["sex", "remanded"]
            ),
            columns=pd.MultiIndex.from_tuples([(2024, "a"), (2025, "b")], names=["year", "x"]),
        ),
        pd.DataFrame(
            {
                "count": pd.array([5, None], dtype="Int64"),
                "court": pd.Categorical(["crown", "youth"]),
                "when": pd.to_datetime(["2024-01-01", None]),
            }
        ),
    ]
    frames[1].attrs = {"srs_output_id": 7, "srs_dp": {"notes": ["a"], "rho": 0.01}}
    for frame in frames:
        back = through(frame)
        pd.testing.assert_frame_equal(back, frame)
        assert back.attrs == frame.attrs
    series = pd.Series([1.5, np.nan], index=pd.Index([False, "Total"]), name=("a", 1))
    pd.testing.assert_series_equal(through(series), series)
    assert through({1: (2, b"\x00"), "k": [None, 1.5]}) == {1: (2, b"\x00"), "k": [None, 1.5]}
    summary = OutputSummary(1, "t", "table", "draft", "ok", ("t.csv",))
    assert through(summary) == summary
    unknown = wire.RemoteRecord("somewhere.Thing", {"rho": 0.01})
    record = through(unknown)
    assert (record.rho, repr(record)) == (0.01, "Thing(rho=0.01)")
    with pytest.raises(AttributeError, match="read-only"):
        record.rho = 1
    with pytest.raises(wire.WireError, match="cannot be sent"):
        wire.encode(object())
    with pytest.raises(wire.WireError, match="cannot be sent to the environment"):
        wire.decode_arguments(json.loads(json.dumps(wire.encode(unknown))))


def test_a_whole_session_through_the_api_on_each_database(registry, deployment, policies) -> None:
    prepare(registry, deployment, policies)
    with serve(deployment, registry, policies) as service:
        s = RemoteSession(service.url, token_for(registry, policies))
        data = s.dataset("linked/journeys")
        s.crosstab(data.query("court != 'youth'"), "sex", "court", name="Safe table")
        s.ols("sentence_months ~ age", "linked/journeys", name="Sentence model")
        s.dp.count("linked/journeys", by=["sex"], rho=0.01, name="DP count")
        with pytest.raises(AccessDenied, match="no grant"):
            s.dataset("linked/victims")
        status = s.request_status(s.submit("Everything"))
    assert [(o.name, o.kind, o.checks) for o in status.outputs] == [
        ("Safe table", "table", "ok"),
        ("Sentence model", "model", "ok"),
        ("DP count", "dp_result", "ok"),
    ]


def test_the_hub_runs_it_as_a_managed_service(lab, policies, tmp_path: Path) -> None:
    deployment, registry = lab
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {
        **os.environ,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_SERVICE_PREFIX": BASE_URL,
        "SRS_POLICY_DIR": str(policies.source_dir),
    }
    command = [sys.executable, "-m", "srs.hub.api", "--home", str(deployment.home)]
    root = Path(__file__).resolve().parents[2]
    with subprocess.Popen(
        command, cwd=root, env=environment, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            url = f"http://127.0.0.1:{port}{BASE_URL}"
            for _ in range(300):
                try:
                    if http(url + "health")[0] == 200:
                        break
                except urllib.error.URLError:
                    assert process.poll() is None, process.stderr.read()
                    time.sleep(0.1)
            s = RemoteSession(url, token_for(registry, policies))
            assert (s.user, s.datasets()) == ("ana", ["linked/journeys"])
        finally:
            process.terminate()
            process.wait(timeout=30)
    empty = tmp_path / "not-a-deployment"
    failed = subprocess.run(
        [sys.executable, "-m", "srs.hub.api", "--home", str(empty), "--port", str(port)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert failed.returncode == 2 and "is not a deployment" in failed.stderr
    assert not empty.exists()

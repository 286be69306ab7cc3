"""The researcher session (``srs.session()``): who and which project, data through the access
check, analyses that return only protected results and record outputs with their evidence, and
managing and submitting those outputs."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from agreement_fixtures import research_lineage
from matplotlib.figure import Figure
from session_fixtures import DICTIONARY, OTHER_PROJECT, journeys, prepare
from session_fixtures import stored_output as output
from sqlalchemy import select

import srs
from disclosure import dp
from disclosure.dp import DPQueryError
from disclosure.dp.selection import DPDataRefused
from disclosure.suppression import TOTAL
from disclosure.tables import TableSpecError
from output_checking.outputs import OutputError, content_table
from output_checking.workflow import WorkflowError
from registry_fixtures import PROJECT
from srs.governance.access import AccessDenied
from srs.governance.audit import verify_chain
from srs.governance.budget import SpendRefused, spends
from srs.governance.policy import default_policy_dir, load_policies
from srs.governance.registry import Registry
from srs.governance.registry.models import AuditEvent, Grant, Output
from srs.research.session import SYNTHETIC_CONTEXT
from srs.research.surface import SYNTHETIC
from srs.research.values import SessionError


def denials(registry: Registry, actor: str) -> list[AuditEvent]:
    with registry.sessions() as db:
        return list(
            db.execute(
                select(AuditEvent)
                .where(AuditEvent.actor == actor, AuditEvent.outcome == "deny")
                .order_by(AuditEvent.seq)
            ).scalars()
        )


def file_text(record: Output, suffix: str) -> str:
    (found,) = [f for f in record.files if f.name.endswith(suffix)]
    return found.content.decode("utf-8")


# ------------------------------------------------------------------ who and which project
def test_user_project_and_home_come_from_the_environment(lab, monkeypatch) -> None:
    deployment, _ = lab
    monkeypatch.setenv("SRS_USER", "ana")
    monkeypatch.setenv("SRS_PROJECT", PROJECT)
    monkeypatch.setenv("SRS_HOME", str(deployment.home))
    monkeypatch.delenv("SRS_DATABASE_URL", raising=False)
    with srs.session() as s:
        assert (s.user, s.project) == ("ana", PROJECT)
        assert repr(s) == f"<srs session: ana in {PROJECT} ({deployment.home})>"
        assert s.datasets() == ["linked/journeys"]
    with srs.session(project=OTHER_PROJECT, user="olga") as olga:  # arguments win
        assert olga.datasets() == ["linked/victims"]


def test_without_a_user_or_a_project_the_error_says_how_to_give_them(lab, monkeypatch) -> None:
    deployment, _ = lab
    for variable in ("SRS_USER", "SRS_PROJECT"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(SessionError, match=r"no researcher given.*SRS_USER"):
        srs.session(project=PROJECT, deployment=deployment)
    with pytest.raises(SessionError, match=r"no project given.*SRS_PROJECT"):
        srs.session(user="ana", deployment=deployment)
    empty = deployment.home.parent / "elsewhere"
    empty.mkdir()
    monkeypatch.delenv("SRS_DATABASE_URL", raising=False)
    with pytest.raises(SessionError, match="is not a deployment"):
        srs.session(user="ana", project=PROJECT, home=empty)
    assert not (empty / "srs.db").exists()  # no stray registry was created


def test_people_who_may_not_work_in_the_project_are_refused_and_audited(lab, policies) -> None:
    deployment, registry = lab
    refusals = {
        "ben": "expired",  # lapsed accreditation
        "olga": "not a member of project P001",
        "cho": r"cho \(checker\) may not output.create",
        "nobody": "no account named 'nobody'",
    }
    for user, reason in refusals.items():
        with pytest.raises(AccessDenied, match=reason):
            srs.session(user=user, project=PROJECT, deployment=deployment, policies=policies)
        (event,) = denials(registry, user)
        assert event.action == "access.output.create" and event.target == PROJECT
    with pytest.raises(AccessDenied, match="no project 'P999'"):
        srs.session(user="ana", project="P999", deployment=deployment, policies=policies)


# ------------------------------------------------------------------ data
def test_datasets_are_the_grants_and_reads_go_through_the_access_check(s, lab) -> None:
    _, registry = lab
    assert s.datasets() == ["linked/journeys"]
    frame = s.dataset("linked/journeys")
    pd.testing.assert_frame_equal(frame, journeys(), check_like=False)
    polars_frame = s.dataset("linked/journeys", engine="polars")
    assert isinstance(polars_frame, pl.DataFrame)
    assert s.crosstab(polars_frame, "sex").loc[TOTAL, "count"] > 0  # analyses take polars too
    with pytest.raises(SessionError, match="engine 'spark'"):
        s.dataset("linked/journeys", engine="spark")
    with registry.sessions() as db:
        reads = db.execute(
            select(AuditEvent).where(AuditEvent.actor == "ana", AuditEvent.action == "vault.read")
        ).scalars()
        assert [e.outcome for e in reads] == ["ok", "ok"]
    # linked/victims belongs to project P002: refused, and the refusal is on record.
    with pytest.raises(AccessDenied, match="project P001 has no grant for linked/victims"):
        s.dataset("linked/victims")
    (event,) = denials(registry, "ana")
    assert (event.action, event.target) == ("access.dataset.read", "linked/victims")
    with registry.sessions() as db:
        db.execute(select(Grant)).scalars().first().revoked_at = datetime.now(UTC)
        db.commit()
    assert s.datasets() == []
    with pytest.raises(AccessDenied, match="no grant"):
        s.dataset("linked/journeys")


STORED_FIELDS = ("actor", "action", "target", "outcome", "reason", "details")


def stored_chars(event: AuditEvent) -> dict[str, int]:
    """How many characters each text field of a stored audit event holds."""
    return {name: len(getattr(event, name)) for name in STORED_FIELDS}


def test_a_huge_dataset_name_is_refused_and_audited_cut_to_the_bound(s, lab, policies) -> None:
    _, registry = lab
    name = "linked/" + "v" * 5_000_000
    with pytest.raises(AccessDenied, match="project P001 has no grant for linked/vvv") as refused:
        s.dataset(name)
    (event,) = denials(registry, "ana")
    bound = policies.access.audit_field_max_chars
    # The caller is not sent the 5 MB back either: the message is the reason as stored.
    assert refused.value.reason == event.reason and len(event.reason) <= bound
    sizes = stored_chars(event)
    assert max(sizes.values()) <= bound, sizes
    assert sum(sizes.values()) <= 3 * bound  # was 15,000,082 characters: the name three times
    mark = f"[cut: {len(name)} chars, sha256 {hashlib.sha256(name.encode()).hexdigest()}]"
    assert event.target.startswith("linked/vvvv") and event.target.endswith(mark)
    reason = f"project P001 has no grant for {name}"
    assert event.reason.startswith("project P001 has no grant for linked/vvvv")
    assert event.reason.endswith(f"sha256 {hashlib.sha256(reason.encode()).hexdigest()}]")
    details = json.loads(event.details)
    assert details["project"] == PROJECT and details["dataset"].endswith(mark)
    with registry.sessions() as db:
        assert verify_chain(db).intact


def test_a_site_audit_bound_holds_for_every_event_of_its_sessions(lab, tmp_path) -> None:
    deployment, registry = lab
    folder = tmp_path / "site-policies"
    shutil.copytree(default_policy_dir(), folder)
    access = folder / "access.yaml"
    access.write_text(
        re.sub(r"audit_field_max_chars: \d+", "audit_field_max_chars: 200", access.read_text())
    )
    site = load_policies(folder)
    assert site.access.audit_field_max_chars == 200
    name = "Cases by sex " + "n" * 180  # fits an output's name, not this site's audit field
    with srs.session(user="ana", project=PROJECT, deployment=deployment, policies=site) as s:
        with pytest.raises(AccessDenied):
            s.dataset("linked/" + "v" * 5_000_000)
        # The output's audit event is written deep in output_checking, where no policies are
        # at hand: the session's bound reaches it all the same.
        s.crosstab(s.dataset("linked/journeys"), "sex", name=name)
    with registry.sessions() as db:
        events = list(db.execute(select(AuditEvent).where(AuditEvent.actor == "ana")).scalars())
        assert verify_chain(db).intact
    assert len(events) >= 4
    for event in events:
        assert max(stored_chars(event).values()) <= 200, (event.action, stored_chars(event))
    # At this bound the output's details (its name, checksum, file and its digest) are cut;
    # under the shipped bound they would be stored whole.
    (created,) = [e for e in events if e.action == "output.create" and e.outcome == "ok"]
    assert "[cut: " in created.details and "sha256 " in created.details


# ------------------------------------------------------------------ tables
def test_a_safe_table_is_recorded_ok_with_margins_rounding_and_its_file(s, lab) -> None:
    _, registry = lab
    data = s.dataset("linked/journeys").query("court != 'youth'")
    table = s.crosstab(data, "sex", "court", name="People by sex and court")
    assert list(table.index) == ["F", "M", TOTAL] and list(table.columns) == [
        "crown",
        "magistrates",
        TOTAL,
    ]
    assert table.notna().all().all() and (table.to_numpy() % 5 == 0).all()
    people = data.groupby(["sex", "court"])["person_key"].nunique()
    assert abs(table.loc["F", "crown"] - people["F", "crown"]) <= 2  # persons, rounded to 5
    assert table.attrs["srs_output_id"] == s.last_output.id
    record = output(registry, s.last_output.id)
    assert (record.kind, record.status, record.name) == (
        "table",
        "draft",
        "People by sex and court",
    )
    sdc = record.checks[0]
    assert (sdc["check"], sdc["status"], sdc["suppressed"]) == ("sdc_table", "ok", [])
    assert record.content["statistic"] == "count" and record.content["rounding"] == "base 5"
    pd.testing.assert_frame_equal(
        content_table(record.content["table"]), table, check_names=False, check_dtype=False
    )
    assert file_text(record, ".csv").splitlines() == [
        "sex,crown,magistrates,Total",
        *(
            f"{i},{','.join(str(v) for v in row)}"
            for i, row in zip(table.index, table.values, strict=True)
        ),
    ]
    assert [f.name for f in record.files] == ["people-by-sex-and-court.csv"]


def test_an_unsafe_table_comes_back_suppressed_with_its_failing_cells_in_evidence(s, lab) -> None:
    _, registry = lab
    table = s.crosstab("linked/journeys", "sex", "court")
    assert table.loc[["F", "M"], "youth"].isna().all()
    # No hidden cell can be recomputed from its row or column: each line hides 0 or >= 2 cells.
    hidden = table.isna()
    assert set(hidden.sum(axis=0)) <= {0, 2, 3} and set(hidden.sum(axis=1)) <= {0, 2, 3}
    record = output(registry, table.attrs["srs_output_id"])
    assert record.name == "count by sex x court"
    sdc = record.checks[0]
    assert sdc["status"] == "review" and "failed (threshold) and were suppressed" in sdc["message"]
    evidence = sdc["evidence"]
    assert evidence["overall"] == "fail"
    youth = evidence["columns"].index("youth")
    assert [row[youth] for row in evidence["status"]] == ["fail", "fail"]
    assert {(f["row"], f["column"], f["rule"]) for f in evidence["findings"]} == {
        ("F", "youth", "threshold"),
        ("M", "youth", "threshold"),
    }
    assert ["F", "youth"] in sdc["suppressed"] and ["F", "youth"] not in sdc["secondary"]
    assert record.content["suppressed"] == sdc["suppressed"]
    assert len(sdc["suppressed"]) == int(hidden.to_numpy().sum())
    assert s.outputs().loc[record.id, "checks"] == "review"


def test_tables_of_other_statistics_hide_failing_cells_only(s, lab) -> None:
    _, registry = lab
    data = s.dataset("linked/journeys")
    means = s.pivot_table(data, "sentence_months", "sex", "court", aggfunc="mean")
    assert means[["crown", "magistrates"]].notna().all().all()
    assert means["youth"].isna().all() and TOTAL not in means.columns
    exact = data.query("court == 'crown' and sex == 'F'").groupby("person_key")
    assert means.loc["F", "crown"] == pytest.approx(exact["sentence_months"].sum().mean())
    record = output(registry, means.attrs["srs_output_id"])
    assert record.content["statistic"] == "mean" and record.content["rounding"] == "none"
    one_way = s.crosstab(data, ["sex"], values="sentence_months", aggfunc=np.max)
    assert list(one_way.columns) == ["sentence_months"]
    assert output(registry, s.last_output.id).checks[0]["status"] == "review"  # max is one value


def test_bad_inputs_give_clear_errors(s) -> None:
    data = s.dataset("linked/journeys")
    with pytest.raises(TableSpecError, match="no column.*region.*it has person_key"):
        s.crosstab(data, "region")
    with pytest.raises(SessionError, match="needs an aggfunc"):
        s.crosstab(data, "sex", values="age")
    with pytest.raises(SessionError, match="aggfunc 'var' has no automatic disclosure check"):
        s.pivot_table(data, "age", "sex", aggfunc="var")
    with pytest.raises(SessionError, match=r"formula .* cannot be built.*columns are"):
        s.ols("sentence_months ~ income", data)
    with pytest.raises(SessionError, match="no column.*duration.*it has person_key"):
        s.survival(data, "duration", "reoffended")
    with pytest.raises(SessionError, match="no column.*height"):
        s.hist(data, "height")
    with pytest.raises(SessionError, match="DataFrame or the name of a granted dataset"):
        s.crosstab([1, 2, 3], "sex")
    assert s.outputs().empty  # nothing was recorded


# ------------------------------------------------------------------ models, survival, figures
def test_regressions_return_the_fit_and_record_their_estimates(s, lab) -> None:
    _, registry = lab
    data = s.dataset("linked/journeys")
    results = s.ols("sentence_months ~ age + C(sex)", data, name="Sentence by age")
    assert results.nobs == len(data) and "age" in results.params
    record = output(registry, s.last_output.id)
    check = record.checks[0]
    assert (record.kind, check["check"], check["status"]) == ("model", "regression", "ok")
    content = record.content
    assert (content["model"], content["formula"], content["nobs"]) == (
        "OLS",
        "sentence_months ~ age + C(sex)",
        len(data),
    )
    estimates = content_table(content["estimates"])
    assert list(estimates.columns) == ["coef", "std_err", "p_value"]
    assert estimates.loc["age", "coef"] == pytest.approx(results.params["age"], rel=5e-4)
    assert file_text(record, ".csv").startswith("term,coef,std_err,p_value")
    assert "OLS Regression Results" in file_text(record, ".txt")
    for fit in (s.logit, s.probit):
        assert fit("reoffended ~ age", data).converged  # a flag outcome is taken as 0/1
    poisson = s.poisson("days ~ age", data)
    recorded = content_table(output(registry, s.last_output.id).content["estimates"])
    assert recorded.loc["age", "coef"] == pytest.approx(poisson.params["age"], rel=5e-4)
    assert list(s.outputs()["kind"]) == ["model"] * 4


def test_a_fit_takes_only_the_options_it_is_checked_with(s) -> None:
    data = s.dataset("linked/journeys")
    refused = [
        (s.ols, {"cov_kwds": {"groups": [1, 2]}}, "ols does not take 'cov_kwds'"),
        (s.ols, {"maxiter": 5}, "ols does not take 'maxiter'"),
        (s.logit, {"start_params": [0, 0]}, "logit does not take 'start_params'"),
        (s.logit, {"callback": "print"}, "logit does not take 'callback'"),
        (s.probit, {"cov_type": "cluster"}, "cov_type 'cluster' is not one of"),
        (s.poisson, {"method": "minimize"}, "method 'minimize' is not one of"),
        (s.logit, {"maxiter": True}, "maxiter must be a whole number"),
        (s.logit, {"maxiter": 0}, "maxiter must be a whole number"),
        (s.logit, {"maxiter": 10**9}, "maxiter must be a whole number"),
        (s.logit, {"maxiter": 2.5}, "maxiter must be a whole number"),
    ]
    for fit, options, message in refused:
        with pytest.raises(SessionError, match=message):
            fit("reoffended ~ age", data, **options)
    assert s.outputs().empty  # nothing was recorded for any of them
    robust = s.ols("sentence_months ~ age", data, cov_type="HC1")
    assert robust.cov_type == "HC1"
    assert s.logit("reoffended ~ age", data, method="bfgs", maxiter=500).converged
    assert len(s.outputs()) == 2


def test_a_fit_that_did_not_converge_is_refused_and_not_recorded(s) -> None:
    data = s.dataset("linked/journeys")
    with pytest.raises(SessionError, match="logit model did not converge in 1 iterations"):
        s.logit("reoffended ~ age + C(sex)", data, maxiter=1)
    assert s.outputs().empty


def test_regressions_take_text_and_flag_columns_with_missing_values(s) -> None:
    """Vault data comes back with pandas' nullable types; patsy cannot sort ``pd.NA``."""
    data = s.dataset("linked/journeys")
    court = np.where(
        np.arange(len(data)) % 7 == 0, None, np.where(data["age"] > 40, "crown", "mags")
    )
    data = data.assign(
        court=pd.array(court, dtype="string"),
        flag=pd.array(
            [None if i % 11 == 0 else bool(i % 2) for i in range(len(data))], dtype="boolean"
        ),
    )
    results = s.ols("sentence_months ~ age + C(court) + flag", data)
    usable = data["court"].notna() & data["flag"].notna() & data["sentence_months"].notna()
    assert results.nobs == usable.sum() and "C(court)[T.mags]" in results.params


def test_a_regression_with_too_few_residual_degrees_of_freedom_fails(s, lab) -> None:
    _, registry = lab
    data = s.dataset("linked/journeys").iloc[4:16]
    results = s.ols("sentence_months ~ age + days", data)
    assert results.df_resid == 9
    record = output(registry, s.last_output.id)
    check = record.checks[0]
    assert check["status"] == "fail" and "residual degrees of freedom 9 < 10" in check["message"]
    assert record.content["df_resid"] == 9
    assert s.outputs().loc[record.id, "checks"] == "fail"


def test_survival_tables_are_cut_where_too_few_are_at_risk(s, lab, policies) -> None:
    _, registry = lab
    data = s.dataset("linked/journeys")
    table = s.survival(data, "days", "reoffended")
    minimum = policies.sdc.active.survival_minimum_at_risk
    assert (table["at_risk"] >= minimum).all() and (table[["events", "censored"]] % 5 == 0).all(
        axis=None
    )
    assert table.index.max() < data["days"].max()  # the tail was cut
    record = output(registry, table.attrs["srs_output_id"])
    check = record.checks[0]
    assert check["check"] == "survival" and check["status"] == "review"
    assert check["evidence"]["findings"] and check["evidence"]["released_time_points"] == len(table)
    assert record.content["statistic"] == "survival"


def test_a_histogram_is_drawn_from_its_safe_counts(s, lab) -> None:
    _, registry = lab
    data = s.dataset("linked/journeys")
    counts, figure = s.hist(data, "age", bins=[10, 18, 30, 50, 70], name="Age at offence")
    assert isinstance(figure, Figure)
    assert list(counts["lower"]) == [10, 18, 30, 50] and list(counts["upper"]) == [18, 30, 50, 70]
    assert pd.isna(counts["count"].iloc[0])  # four people under 18: suppressed
    assert (counts["count"].iloc[1:] % 5 == 0).all()
    record = output(registry, counts.attrs["srs_output_id"])
    assert record.kind == "figure" and record.content["edges"] == [10, 18, 30, 50, 70]
    assert record.checks[0]["check"] == "histogram" and record.checks[0]["suppressed"] == [
        ["[10, 18)", "value"]
    ]
    png = next(f for f in record.files if f.name == "age-at-offence.png")
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    lines = file_text(record, ".csv").splitlines()
    assert lines[0] == "bin,lower,upper,count" and lines[1].endswith(",")  # hidden, not shown


# ------------------------------------------------------------------ differential privacy
def test_a_dp_count_is_paid_for_and_recorded_with_its_files(s, lab, policies) -> None:
    _, registry = lab
    preview = s.dp.preview("linked/journeys", "count", by=["sex"], rho=0.01)
    assert preview.rho == pytest.approx(0.01)
    assert s.dp.budget().spends == 0  # a preview spends nothing
    table = s.dp.count("linked/journeys", by=["sex"], rho=0.01, name="Journeys by sex")
    assert list(table["sex"]) == ["F", "M"]  # public keys from the data dictionary
    assert list(table.columns) == ["sex", "estimate", "lower", "upper"]
    budget = s.dp.budget()
    assert budget.spent_rho == pytest.approx(0.01) and budget.key_release_delta_spent == 0
    record = output(registry, table.attrs["srs_output_id"])
    with registry.sessions() as db:
        (spend,) = spends(db, PROJECT)
    assert (record.kind, record.budget_spend_id) == ("dp_result", spend.id)
    assert table.attrs["srs_dp"]["spend_id"] == spend.id
    assert [f.name for f in record.files] == ["journeys-by-sex.csv", "journeys-by-sex.json"]
    assert file_text(record, ".csv").splitlines()[0] == "sex,estimate,lower,upper"
    assert json.loads(file_text(record, ".json"))["rows"] == record.content["rows"]
    assert record.checks[-1]["check"] == "file_gate"
    means = s.dp.mean("linked/journeys", "sentence_months", bounds=(0, 60), by=["court"], rho=0.01)
    assert list(means["court"]) == ["crown", "magistrates", "youth"]  # keys from the dictionary
    with pytest.raises(SessionError, match="'mode' is not a DP query"):
        s.dp.preview("linked/journeys", "mode", "age")
    assert record.content["data"] == {
        "dataset": "linked/journeys",
        "version": 1,
        "source": "vault",
        "privacy_unit": "person_key",
        "where": [],
        "derive": {},
    }


def test_a_dp_query_whose_files_could_not_leave_spends_nothing(s) -> None:
    with pytest.raises(OutputError, match="case_key.*nothing was spent"):
        s.dp.count(
            "linked/journeys",
            by=["case_key"],
            derive={"case_key": ("band", "age", [18, 40])},
            rho=0.01,
        )
    assert s.dp.budget().spends == 0


def test_a_dp_query_chooses_its_rows_by_a_filter_spec_not_a_frame(s, lab) -> None:
    _, registry = lab
    table = s.dp.count(
        "linked/journeys",
        by=["age_band"],
        where=[("sex", "==", "F"), ("court", "in", ["crown", "magistrates"])],
        derive={"age_band": ("band", "age", [18, 40])},
        rho=0.01,
        name="Adult women by age band",
    )
    assert list(table["age_band"]) == ["< 18", "[18, 40)", ">= 40"]  # public band keys
    record = output(registry, table.attrs["srs_output_id"])
    assert record.content["data"]["where"] == [
        ["sex", "==", "F"],
        ["court", "in", ["crown", "magistrates"]],
    ]
    assert record.checks[0]["query"]["by"] == ["age_band"]
    preview = s.dp.preview(
        "linked/journeys", "mean", "age", bounds=(0, 100), where=[("sex", "==", "M")], rho=0.01
    )
    assert preview.rho == pytest.approx(0.01)
    with pytest.raises(SessionError, match="a built query takes no further options"):
        s.dp.preview("linked/journeys", dp.count(), by=["sex"], rho=0.01)


def test_dp_queries_refuse_frames_whatever_they_hold(s) -> None:
    # Attack: one person's row repeated under fresh person keys, released as a DP result.
    real = s.dataset("linked/journeys").iloc[[0]]
    forged = pd.concat([real] * 300, ignore_index=True)
    forged["person_key"] = [f"fresh{i}" for i in range(300)]
    calls = [
        lambda data: s.dp.mean(data, "age", bounds=(0, 100), rho=0.01),
        lambda data: s.dp.count(data, rho=0.01),
        lambda data: s.dp.synthetic(data, ["sex"], rows=10, rho=0.01),
        lambda data: s.dp.preview(data, "count", rho=0.01),
    ]
    for data in (forged, pl.from_pandas(forged), s.dataset("linked/journeys")):
        for call in calls:
            with pytest.raises(DPDataRefused, match="never on a frame.*where="):
                call(data)
    assert s.dp.budget().spends == 0


def test_a_dp_query_reads_only_datasets_granted_to_its_own_project(s, lab) -> None:
    # Attack: another project's data released as this project's result, on its budget.
    with pytest.raises(AccessDenied, match="no grant for linked/victims"):
        s.dp.count("linked/victims", rho=0.01)
    with pytest.raises(AccessDenied, match="no grant for linked/victims"):
        s.dp.synthetic("linked/victims", ["sex"], rows=10, rho=0.01)
    assert s.dp.budget().spends == 0


@pytest.mark.parametrize(
    "option",
    [{"identifier": "sentence_months"}, {"privacy_unit": "days"}, {"max_rows_per_person": 500}],
    ids=lambda o: next(iter(o)),
)
def test_a_dp_query_cannot_choose_its_privacy_unit_or_row_cap(s, option) -> None:
    # Review of issue 15: identifier= made a per-row column the "person", so one person's
    # records were released as if each were someone else's.
    calls = [
        lambda: s.dp.count("linked/journeys", rho=0.01, **option),
        lambda: s.dp.mean("linked/journeys", "age", bounds=(0, 100), rho=0.01, **option),
        lambda: s.dp.crosstab("linked/journeys", "sex", "court", rho=0.01, **option),
        lambda: s.dp.preview("linked/journeys", "count", rho=0.01, **option),
    ]
    for call in calls:
        with pytest.raises(dp.PrivacyUnitFixed, match="policy fixes"):
            call()
    assert s.dp.budget().spends == 0


def test_the_privacy_unit_cannot_be_filtered_on(s) -> None:
    with pytest.raises(dp.SelectionError, match="'person_key' is the privacy unit"):
        s.dp.count("linked/journeys", where=[("person_key", "==", "p001")], rho=0.01)
    with pytest.raises(DPQueryError, match="'person_key' is the privacy unit"):
        s.dp.count("linked/journeys", by=["person_key"], rho=0.01)
    assert s.dp.budget().spends == 0


def test_an_older_version_above_the_projects_classification_is_not_read(s, lab, policies) -> None:
    # Review of issue 15: access was judged on the newest version's classification only, so
    # version=1, stored highly_confidential, was read (and DP-released) by a project approved
    # for confidential data.
    from srs.governance.registry import projects
    from srs.vault.store import Vault

    deployment, registry = lab
    vault = Vault(deployment, policies)
    with registry.sessions() as db:
        for seed, level in ((1, "highly_confidential"), (2, "confidential")):
            vault.store(
                db,
                "linked/extra",
                journeys(seed=seed),
                actor="steward",
                classification=level,
                data_dictionary=DICTIONARY,
                lineage=research_lineage(policies),
            )
        projects.grant_dataset(
            db, actor="steward", policies=policies, code=PROJECT, dataset_name="linked/extra"
        )
    calls = [
        lambda: s.dataset("linked/extra", version=1),
        lambda: s.dataset("linked/extra", engine="polars", version=1),
        lambda: s.dp.count("linked/extra", version=1, rho=0.01),
        lambda: s.dp.preview("linked/extra", "count", version=1, rho=0.01),
        lambda: s.dp.synthetic("linked/extra", ["sex"], rows=10, rho=0.01, version=1),
    ]
    for call in calls:
        with pytest.raises(AccessDenied, match="classified highly_confidential"):
            call()
    assert s.dp.budget().spends == 0
    assert len(s.dataset("linked/extra")) == len(journeys(seed=2))
    assert len(s.dp.count("linked/extra", version=2, rho=0.01)) == 1


def test_on_synthetic_data_a_dp_query_reads_the_stored_replica(lab, policies) -> None:
    from srs.vault.store import Vault

    deployment, registry = lab
    with registry.sessions() as db:
        Vault(deployment, policies).store(
            db, "synthetic/journeys", journeys(seed=11), actor="steward", data_dictionary=DICTIONARY
        )
    with srs.session(
        user="ana", project=PROJECT, deployment=deployment, policies=policies, source="synthetic"
    ) as on_replica:
        table = on_replica.dp.count(
            "linked/journeys", by=["sex"], where=[("court", "!=", "youth")], rho=0.01
        )
        with pytest.raises(DPDataRefused):
            on_replica.dp.count(on_replica.dataset("linked/journeys"), rho=0.01)
    record = output(registry, table.attrs["srs_output_id"])
    assert record.content["data"]["dataset"] == "synthetic/journeys"
    assert record.content["data"]["source"] == "synthetic"
    assert record.context.startswith(SYNTHETIC_CONTEXT[SYNTHETIC])


@pytest.mark.parametrize("rho", ["0.01", True, float("inf"), 0.06])
def test_a_dp_query_refuses_a_malformed_rho_clearly(s, rho) -> None:
    with pytest.raises(SpendRefused, match="positive, finite rho given as a number|at most rho"):
        s.dp.count("linked/journeys", rho=rho)
    with pytest.raises(SpendRefused, match="positive, finite rho given as a number|at most rho"):
        s.dp.synthetic("linked/journeys", ["sex"], rows=10, rho=rho)
    assert s.dp.budget().spends == 0


def test_a_dp_synthetic_replica_is_paid_for_and_goes_to_output_checking(s, lab) -> None:
    _, registry = lab
    replica = s.dp.synthetic("linked/journeys", ["sex", "court"], rows=300, rho=0.02, seed=3)
    assert list(replica.columns) == ["sex", "court"] and len(replica) == 300
    assert set(replica["court"].dropna()) <= {"crown", "magistrates", "youth"}
    record = output(registry, replica.attrs["srs_output_id"])
    with registry.sessions() as db:
        (spend,) = spends(db, PROJECT)
    assert (record.kind, record.budget_spend_id) == ("dp_result", spend.id)
    assert spend.purpose == "DP synthetic replica of linked/journeys"
    assert record.content["algorithm"] == "mst" and record.content["rows"] == 300
    assert set(record.content["marginal_noise_stddev"]) >= {"sex", "court"}
    assert file_text(record, ".csv").splitlines()[0] == "sex,court"
    assert len(file_text(record, ".csv").splitlines()) == 301
    assert "DP synthetic replica (MST)" in record.checks[0]["message"]
    assert s.submit("A DP replica for teaching", [replica]) > 0  # to the checkers, like any output


def test_a_dp_replica_that_could_not_leave_spends_nothing(s) -> None:
    with pytest.raises(OutputError, match="over the 5,000-row limit.*nothing was spent"):
        s.dp.synthetic("linked/journeys", ["sex", "court"], rows=5001, rho=0.02)
    with pytest.raises(OutputError, match="person_key.*nothing was spent"):
        s.dp.synthetic("linked/journeys", ["person_key", "sex"], rows=10, rho=0.02)
    with pytest.raises(DPQueryError, match="'age' is not in the data dictionary"):
        s.dp.synthetic("linked/journeys", ["sex", "age"], rows=10, rho=0.02)
    assert s.dp.budget().spends == 0


# ------------------------------------------------------------------ custom outputs
def test_custom_outputs_need_a_justification_and_pass_the_file_gate(s, lab, tmp_path: Path) -> None:
    _, registry = lab
    notes = tmp_path / "Method notes.txt"
    notes.write_text("We linked cases to people and counted them by court.\n")
    summary = s.custom_output(notes, "Plain-text method notes with no figures from the data")
    record = output(registry, summary.id)
    assert (record.kind, record.name, summary.checks) == ("custom", "Method notes", "review")
    assert record.content["file"] == "method-notes.txt"
    assert [f.content for f in record.files] == [notes.read_bytes()]
    with pytest.raises(SessionError, match="needs a justification"):
        s.custom_output(notes, "safe")
    with pytest.raises(SessionError, match="no file"):
        s.custom_output(tmp_path / "missing.txt", "Plain-text method notes with no figures")
    leak = tmp_path / "cases.csv"
    s.dataset("linked/journeys").head(20).to_csv(leak, index=False)
    with pytest.raises(OutputError, match="'person_key' looks like a record-level identifier"):
        s.custom_output(leak, "A few example rows to show the data's layout")
    assert list(s.outputs().index) == [summary.id]  # the refused file left no output
    (event,) = denials(registry, "ana")
    assert event.action == "output.create" and "person_key" in event.reason


# ------------------------------------------------------------------ managing and submitting
def test_outputs_can_be_renamed_described_commented_removed_and_excepted(s, lab) -> None:
    _, registry = lab
    data = s.dataset("linked/journeys")
    table = s.crosstab(data, "sex", "court")
    second = s.crosstab(data, "sex", "court")
    assert s.last_output.name == "count by sex x court (2)"
    renamed = s.rename("count by sex x court", "Cases by sex and court")
    assert renamed.id == table.attrs["srs_output_id"] and renamed.name == "Cases by sex and court"
    s.describe(table, context="Cases by sex and court, 2020-24", controls="suppression, rounding")
    s.comment(renamed.id, "The youth court column is suppressed: four cases only.")
    with pytest.raises(OutputError, match="at least 20 characters"):
        s.request_exception(table, "please")
    excepted = s.request_exception(
        table, "The youth court totals are published by the MoJ each quarter anyway."
    )
    assert excepted.exception_requested
    s.rename(second, "Cases by sex and court")
    with pytest.raises(SessionError, match=r"2 of your outputs are named .*pass the id"):
        s.remove("Cases by sex and court")
    removed = s.remove(second)
    assert removed.status == "removed"
    with pytest.raises(SessionError, match="no output named 'nothing'"):
        s.rename("nothing", "x")
    with pytest.raises(OutputError, match="only be changed while a draft"):
        s.rename(second, "again")
    listing = s.outputs()
    assert list(listing["status"]) == ["draft", "removed"]
    assert list(listing["exception"]) == [True, False]
    record = output(registry, renamed.id)
    assert record.context.startswith("Cases by sex") and record.controls.startswith("suppression")


def test_submit_sends_exactly_the_drafts_that_were_not_removed(s, lab) -> None:
    _, registry = lab
    data = s.dataset("linked/journeys")
    kept = [s.crosstab(data, "sex").attrs["srs_output_id"]]
    s.ols("sentence_months ~ age", data)
    kept.append(s.last_output.id)
    s.remove(s.crosstab(data, "court"))
    request_id = s.submit("Attrition tables")
    status = s.request_status(request_id)
    assert (status.title, status.status) == ("Attrition tables", "submitted")
    assert [o.id for o in status.outputs] == kept
    assert {o.status for o in status.outputs} == {"submitted"}
    listing = s.outputs()
    assert list(listing["request"].fillna(0)) == [request_id, request_id, 0]
    with pytest.raises(WorkflowError, match="no draft outputs"):
        s.submit("Nothing left")


def test_srs_session_is_callable_however_it_was_first_imported() -> None:
    # output_checking imports srs core modules, and the session imports output_checking: the
    # session must load lazily, and stay callable once its module is imported by name.
    code = (
        "import output_checking.outputs, srs\n"
        "from srs.research.session import ResearchSession\n"
        "assert callable(srs.session) and srs.research.session.ResearchSession is ResearchSession\n"
    )
    root = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=120)


def test_a_whole_session_on_each_database(registry, deployment, policies) -> None:
    prepare(registry, deployment, policies)
    with srs.session(user="ana", project=PROJECT, deployment=deployment, policies=policies) as s:
        data = s.dataset("linked/journeys")
        s.crosstab(data.query("court != 'youth'"), "sex", "court", name="Safe table")
        s.crosstab(data, "sex", "court", name="Unsafe table")
        s.request_exception("Unsafe table", "The youth court figures are already published.")
        s.ols("sentence_months ~ age", data, name="Sentence model")
        s.dp.count("linked/journeys", by=["sex"], rho=0.01, name="DP count")
        request_id = s.submit("Everything")
        status = s.request_status(request_id)
    # Safe on its own, but not beside the unsafe table of the same request: their row totals
    # differ by the youth court's few people, whom the unsafe table suppresses (each table is
    # differenced against the other).
    assert [(o.name, o.kind, o.checks) for o in status.outputs] == [
        ("Safe table", "table", "fail"),
        ("Unsafe table", "table", "fail"),
        ("Sentence model", "model", "ok"),
        ("DP count", "dp_result", "ok"),
    ]
    assert status.status == "submitted" and any("request.submitted" in h for h in status.history)


def test_a_request_returned_for_changes_is_revised_and_resubmitted(s, lab, policies) -> None:
    from workflow_fixtures import add_checker

    from output_checking.workflow import WorkflowError, vote

    _, registry = lab
    add_checker(registry, policies)
    data = s.dataset("linked/journeys")
    table = s.crosstab(data, "sex", name="People by sex")
    request_id = s.submit("Tables")
    with pytest.raises(WorkflowError, match="only a draft or a request returned"):
        s.resubmit(request_id)
    for checker in ("cho", "chen"):
        with registry.sessions() as db:
            vote(
                db,
                output_id=table.attrs["srs_output_id"],
                checker=checker,
                policies=policies,
                decision="request_changes",
                comment="say which year",
                comment_visibility="researcher",
            )
    status = s.request_status(request_id)
    assert status.status == "changes_requested"
    assert ("cho", table.attrs["srs_output_id"], "say which year") in status.comments
    s.describe(table, context="People arrested in 2025")
    assert s.resubmit(request_id) == request_id
    again = s.request_status(request_id)
    assert (again.status, again.review_round) == ("submitted", 2)

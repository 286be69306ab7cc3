"""Data-sharing agreements: terms validated on load, versions audited, deliveries refused with
their reason when no agreement in force covers them in that format and period."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from agreement_fixtures import register_standard_agreements
from sqlalchemy import select

from registry_fixtures import TODAY, populate
from srs.governance.access import AccessDenied
from srs.governance.agreements import (
    AgreementError,
    AgreementRefused,
    amend_agreement,
    check_delivery,
    create_agreement,
    current_version,
    get_agreement,
    in_force,
    list_agreements,
    load_terms,
    parse_terms,
    period_bounds,
    permitted_use_refusal,
    standard_agreements,
)
from srs.governance.policy import PolicySet
from srs.governance.registry import Registry
from srs.governance.registry.models import AuditEvent, Delivery, Project
from srs.pipeline.ingest import known_sources

TEMPLATE = Path(__file__).resolve().parents[3] / "policies" / "agreements" / "dsa-police.yaml"
SOURCES = known_sources()


def template() -> dict:
    """The police agreement's terms as plain data, to change in a test."""
    return yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))


def write(tmp_path: Path, data: dict, name: str = "terms.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def people(registry: Registry, policies: PolicySet):
    return populate(registry, policies)


def create(registry, policies, people, reference="DSA-POLICE", data=None, actor=None):
    with registry.sessions() as s:
        agreement = create_agreement(
            s,
            actor=actor or people.steward,
            policies=policies,
            reference=reference,
            terms=parse_terms(data or template()),
            known_sources=SOURCES,
        )
        return agreement.id


def events(registry, action):
    with registry.sessions() as s:
        return list(
            s.execute(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            ).scalars()
        )


def details(event: AuditEvent) -> dict:
    return json.loads(event.details)


def end(registry, reference, when=datetime(2026, 10, 1, tzinfo=UTC)):
    """Mark an agreement ended as the registry records it (ending itself is srs.pipeline's)."""
    with registry.sessions() as s:
        agreement = get_agreement(s, reference)
        agreement.status = "ended"
        agreement.ended_at = when
        agreement.ended_by = "steward"
        agreement.end_reason = "the provider withdrew"
        s.commit()


def deliver(
    registry, policies, people, period, file_format="csv", source="police_arrests", today=TODAY
):
    with registry.sessions() as s:
        version = check_delivery(
            s,
            actor=people.steward,
            policies=policies,
            source=source,
            file_format=file_format,
            period=period,
            today=today,
        )
        s.add(
            Delivery(
                source=source,
                agreement_id=version.agreement_id,
                agreement_version=version.version,
                period=period,
                file_name=f"{source}-{period}.csv",
                file_format=file_format,
                file_sha256="0" * 64,
                rows_in=10,
                rows_accepted=10,
                rows_rejected=0,
                dataset_name=f"source/{source}",
                dataset_version=1,
                received_by=people.steward,
            )
        )
        s.commit()
        return version.version


def refused(registry, policies, people, match, period, **kwargs):
    with pytest.raises(AgreementRefused, match=match) as caught:
        deliver(registry, policies, people, period, **kwargs)
    event = events(registry, "agreement.delivery")[-1]
    assert (event.outcome, event.actor) == ("deny", people.steward)
    assert event.target == kwargs.get("source", "police_arrests")
    assert event.reason == caught.value.reason
    return event


# --- terms as files -------------------------------------------------------------------------


def test_every_shipped_template_loads_and_they_cover_the_seven_sources(policies):
    agreements = standard_agreements(policies.source_dir)
    assert set(agreements) == {
        "DSA-POLICE",
        "DSA-CPS",
        "DSA-COURTS",
        "DSA-PRISONS",
        "DSA-PROBATION",
        "DSA-VICTIMS",
    }
    covered = sorted(source for terms in agreements.values() for source in terms.sources)
    assert covered == sorted(SOURCES)
    for terms in agreements.values():
        assert {d.periodicity for d in terms.data} == {"monthly"}
        assert terms.use_of_information.permitted_purposes == ["research", "official_statistics"]


def test_load_terms_refuses_an_unknown_key_naming_file_and_key(tmp_path):
    data = template()
    data["use_of_information"]["permited_purposes"] = ["anything"]
    path = write(tmp_path, data)
    with pytest.raises(AgreementError, match="unknown key") as caught:
        load_terms(path)
    assert str(path) in str(caught.value)
    assert caught.value.key == "use_of_information.permited_purposes"


def test_load_terms_refuses_an_end_before_the_start(tmp_path):
    data = template()
    data["duration"] = {"start": date(2026, 1, 1), "end": date(2025, 12, 31)}
    with pytest.raises(AgreementError, match="before the start") as caught:
        load_terms(write(tmp_path, data))
    assert caught.value.key == "duration"


def test_load_terms_refuses_terms_without_a_provider(tmp_path):
    data = template()
    data["parties"] = [p for p in data["parties"] if p["role"] != "provider"]
    data["focal_points"] = [
        f for f in data["focal_points"] if f["party"] in {p["name"] for p in data["parties"]}
    ]
    with pytest.raises(AgreementError, match="role 'provider'"):
        load_terms(write(tmp_path, data))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.pop("legal_basis"), "required key is missing"),
        (lambda d: d["focal_points"][0].update(party="Someone Else"), "not one of the parties"),
        (lambda d: d["focal_points"][0].update(email="not-an-address"), "focal_points.0.email"),
        (lambda d: d["data"][0].update(format="xlsx"), "data.0.format"),
        (lambda d: d["data"][0].update(periodicity="weekly"), "data.0.periodicity"),
        (lambda d: d["data"].append(copy.deepcopy(d["data"][0])), "each source is listed once"),
        (lambda d: d["data"][0].update(variables=["*", "arrest_date"]), "not both"),
        (lambda d: d["quality_standards"].update(min_completeness=1.5), "min_completeness"),
        (lambda d: d["quality_standards"].update(max_days_late=-1), "max_days_late"),
        (lambda d: d["use_of_information"].update(permitted_purposes=["Any Use!"]), "0"),
        (lambda d: d.update(purpose="   "), "purpose"),
        (lambda d: d.update(purpose="x" * 5000), "purpose"),
    ],
)
def test_hand_edited_terms_are_refused_on_load(tmp_path, change, match):
    data = template()
    change(data)
    with pytest.raises(AgreementError, match=match):
        load_terms(write(tmp_path, data))


def test_load_terms_refuses_files_that_are_not_terms(tmp_path):
    with pytest.raises(AgreementError, match="no such file"):
        load_terms(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(AgreementError, match="must be a mapping"):
        load_terms(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("title: [unclosed\n", encoding="utf-8")
    with pytest.raises(AgreementError, match="not valid YAML at line"):
        load_terms(tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    ("period", "periodicity", "bounds"),
    [
        ("2026-02", "monthly", (date(2026, 2, 1), date(2026, 2, 28))),
        ("2026-12", "monthly", (date(2026, 12, 1), date(2026, 12, 31))),
        ("2026-Q1", "quarterly", (date(2026, 1, 1), date(2026, 3, 31))),
        ("2026", "annual", (date(2026, 1, 1), date(2026, 12, 31))),
    ],
)
def test_period_bounds(period, periodicity, bounds):
    assert period_bounds(period, periodicity) == bounds


@pytest.mark.parametrize(
    ("period", "periodicity"),
    [("2026-13", "monthly"), ("2026-Q4", "monthly"), ("2026-11", "quarterly"), ("26", "annual")],
)
def test_period_bounds_refuses_a_period_of_another_periodicity(period, periodicity):
    with pytest.raises(AgreementError, match="does not fit"):
        period_bounds(period, periodicity)


# --- records and versions -------------------------------------------------------------------


def test_create_records_version_one_as_signed_and_audits_it(registry, policies, people):
    create(registry, policies, people)
    with registry.sessions() as s:
        [agreement] = list_agreements(s)
        version = current_version(agreement)
        assert (agreement.reference, agreement.status, version.version) == (
            "DSA-POLICE",
            "in_force",
            1,
        )
        assert version.change_note == "as signed"
        assert (version.start_date, version.end_date) == (date(2020, 1, 1), date(2031, 12, 31))
        assert version.terms["data"][0]["source"] == "police_arrests"
        assert in_force(agreement, TODAY) is None
    [event] = events(registry, "agreement.create")
    assert (event.actor, event.target, event.outcome) == (people.steward, "DSA-POLICE", "ok")
    assert details(event)["terms_sha256"] == version.terms_sha256
    assert details(event)["sources"] == ["police_arrests"]


def test_amendments_are_versions_each_audited(registry, policies, people):
    create(registry, policies, people)
    data = template()
    data["data"][0]["format"] = "parquet"
    with registry.sessions() as s:
        version = amend_agreement(
            s,
            actor=people.admin,
            policies=policies,
            reference="DSA-POLICE",
            terms=parse_terms(data),
            change_note="Deliveries move to Parquet",
            known_sources=SOURCES,
        )
        assert version.version == 2
    with registry.sessions() as s:
        agreement = get_agreement(s, "DSA-POLICE")
        assert [v.version for v in agreement.versions] == [1, 2]
        assert current_version(agreement).terms["data"][0]["format"] == "parquet"
        assert agreement.versions[0].terms["data"][0]["format"] == "csv"
    [event] = events(registry, "agreement.amend")
    assert (event.actor, event.reason, details(event)["version"]) == (
        people.admin,
        "Deliveries move to Parquet",
        2,
    )
    assert details(event)["previous_sha256"] != details(event)["terms_sha256"]


@pytest.mark.parametrize(
    ("note", "same_terms", "ended", "match"),
    [
        ("   ", False, False, "needs a note"),
        ("No change", True, False, "nothing to amend"),
        ("Late change", False, True, "has ended and cannot be amended"),
    ],
)
def test_amendment_refusals(registry, policies, people, note, same_terms, ended, match):
    create(registry, policies, people)
    if ended:
        end(registry, "DSA-POLICE")
    data = template()
    if not same_terms:
        data["incentives"] = ["None"]
    with registry.sessions() as s, pytest.raises(AgreementError, match=match):
        amend_agreement(
            s,
            actor=people.steward,
            policies=policies,
            reference="DSA-POLICE",
            terms=parse_terms(data),
            change_note=note,
            known_sources=SOURCES,
        )
    # The refusal is on record (committed though the caller's work is rolled back), no version.
    [event] = events(registry, "agreement.amend")
    assert (event.actor, event.outcome, event.target) == (people.steward, "deny", "DSA-POLICE")
    assert re.search(match, event.reason)
    with registry.sessions() as s:
        assert len(get_agreement(s, "DSA-POLICE").versions) == 1


def test_amending_an_unknown_agreement_is_refused_and_audited(registry, policies, people):
    with registry.sessions() as s, pytest.raises(AgreementError, match="no agreement 'DSA-NONE'"):
        amend_agreement(
            s,
            actor=people.steward,
            policies=policies,
            reference="DSA-NONE",
            terms=parse_terms(template()),
            change_note="a change",
            known_sources=SOURCES,
        )
    [event] = events(registry, "agreement.amend")
    assert (event.outcome, event.target) == ("deny", "DSA-NONE")


@pytest.mark.parametrize(
    ("reference", "change", "match", "key"),
    [
        ("DSA-POLICE", None, "already exists", None),
        ("DSA POLICE", None, "is not valid", None),
        (
            "DSA-OTHER",
            lambda d: d["data"][0].update(source="tax_records"),
            "no data dictionary",
            "data.source",
        ),
        (
            "DSA-OTHER",
            lambda d: d["data"][0].update(variables=["arrest_id", "shoe_size"]),
            "shoe_size are not",
            "data.variables",
        ),
    ],
)
def test_create_refusals_are_audited(registry, policies, people, reference, change, match, key):
    create(registry, policies, people)
    data = template()
    if change is not None:
        change(data)
    with registry.sessions() as s, pytest.raises(AgreementError, match=match):
        create_agreement(
            s,
            actor=people.steward,
            policies=policies,
            reference=reference,
            terms=parse_terms(data),
            known_sources={source: ["arrest_date", "arrest_id"] for source in SOURCES},
        )
    denied = [e for e in events(registry, "agreement.create") if e.outcome == "deny"]
    [event] = denied
    assert (event.actor, event.target) == (people.steward, reference)
    assert match in event.reason
    assert (details(event) or {}).get("key") == key
    with registry.sessions() as s:
        assert [a.reference for a in list_agreements(s)] == ["DSA-POLICE"]


def test_a_researcher_may_not_record_an_agreement_and_the_deny_is_audited(
    registry, policies, people
):
    with pytest.raises(AccessDenied, match="may not agreement.manage"):
        create(registry, policies, people, actor=people.researcher)
    [event] = events(registry, "access.agreement.manage")
    assert (event.actor, event.outcome) == (people.researcher, "deny")
    with registry.sessions() as s:
        assert list_agreements(s) == []


@pytest.mark.parametrize("reference", ["x", "-lead", "DSA POLICE", "a" * 65, "DSA/../x", "DSA-X\n"])
def test_a_bad_reference_is_refused(registry, policies, people, reference):
    with pytest.raises(AgreementError, match="is not valid"):
        create(registry, policies, people, reference=reference)


def test_a_reference_is_recorded_once(registry, policies, people):
    create(registry, policies, people)
    with pytest.raises(AgreementError, match="already exists"):
        create(registry, policies, people)


def test_terms_naming_an_unknown_source_or_variable_or_level_are_refused(
    registry, policies, people
):
    data = template()
    data["data"][0]["source"] = "tax_records"
    with pytest.raises(AgreementError, match="'tax_records' has no data dictionary"):
        create(registry, policies, people, data=data)
    data = template()
    data["confidentiality_security"]["max_classification"] = "secret"
    with pytest.raises(AgreementError, match="'secret' is not one of the classification levels"):
        create(registry, policies, people, data=data)
    data = template()
    data["data"][0]["variables"] = ["arrest_date", "shoe_size"]
    with registry.sessions() as s, pytest.raises(AgreementError, match="shoe_size are not"):
        create_agreement(
            s,
            actor=people.steward,
            policies=policies,
            reference="DSA-POLICE",
            terms=parse_terms(data),
            known_sources={"police_arrests": ["arrest_date", "arrest_id"]},
        )
    with registry.sessions() as s:
        assert list_agreements(s) == []


def test_get_agreement_names_what_to_do_for_an_unknown_reference(registry, policies, people):
    with registry.sessions() as s, pytest.raises(AgreementError, match="srs agreement list"):
        get_agreement(s, "DSA-NONE")


def test_standard_agreements_register(registry, policies, people):
    with registry.sessions() as s:
        recorded = register_standard_agreements(s, policies, people.steward)
        assert len(recorded) == 6
    assert len(events(registry, "agreement.create")) == 6


# --- deliveries -----------------------------------------------------------------------------


def test_base_then_monthly_deliveries_are_accepted_and_audited(registry, policies, people):
    create(registry, policies, people)
    assert deliver(registry, policies, people, "base") == 1
    assert deliver(registry, policies, people, "2026-10") == 1
    allowed = events(registry, "agreement.delivery")
    assert [(e.outcome, details(e)["period"], details(e)["agreement"]) for e in allowed] == [
        ("allow", "base", "DSA-POLICE"),
        ("allow", "2026-10", "DSA-POLICE"),
    ]


def test_a_delivery_comes_under_the_current_version(registry, policies, people):
    create(registry, policies, people)
    data = template()
    data["data"][0]["format"] = "parquet"
    with registry.sessions() as s:
        amend_agreement(
            s,
            actor=people.steward,
            policies=policies,
            reference="DSA-POLICE",
            terms=parse_terms(data),
            change_note="Parquet from now on",
            known_sources=SOURCES,
        )
    refused(registry, policies, people, "delivered as parquet, not 'csv'", "base")
    assert deliver(registry, policies, people, "base", file_format="parquet") == 2


def test_no_agreement_covering_the_source_refuses(registry, policies, people):
    create(registry, policies, people)
    refused(
        registry,
        policies,
        people,
        "no data-sharing agreement covers source victims",
        "base",
        source="victims",
    )


def test_an_ended_agreement_refuses(registry, policies, people):
    create(registry, policies, people)
    end(registry, "DSA-POLICE")
    event = refused(registry, policies, people, "DSA-POLICE ended on 2026-10-01", "base")
    assert "the provider withdrew" in event.reason


def test_an_expired_agreement_refuses(registry, policies, people):
    create(registry, policies, people)
    refused(
        registry,
        policies,
        people,
        "DSA-POLICE expired on 2031-12-31",
        "base",
        today=date(2032, 1, 5),
    )


def test_an_agreement_not_yet_started_refuses(registry, policies, people):
    create(registry, policies, people)
    refused(
        registry,
        policies,
        people,
        "DSA-POLICE not yet started",
        "base",
        today=date(2019, 12, 1),
    )


def test_a_wrong_format_refuses(registry, policies, people):
    create(registry, policies, people)
    refused(
        registry, policies, people, "delivered as csv, not 'parquet'", "base", file_format="parquet"
    )


@pytest.mark.parametrize("period", ["2026-Q3", "2026", "2026-9", "2026-10-01", "latest"])
def test_a_period_of_another_periodicity_refuses(registry, policies, people, period):
    create(registry, policies, people)
    deliver(registry, policies, people, "base")
    refused(registry, policies, people, "does not fit a monthly delivery", period)


def test_a_period_outside_the_duration_refuses(registry, policies, people):
    create(registry, policies, people)
    deliver(registry, policies, people, "base")
    refused(registry, policies, people, "2019-12 .* lies outside the duration", "2019-12")


def test_a_period_not_yet_ended_refuses(registry, policies, people):
    create(registry, policies, people)
    deliver(registry, policies, people, "base")
    refused(registry, policies, people, "2026-11 ends on 2026-11-30", "2026-11")
    refused(registry, policies, people, "2027-01 ends on 2027-01-31", "2027-01")


def test_a_period_before_the_base_refuses(registry, policies, people):
    create(registry, policies, people)
    refused(registry, policies, people, "no base extract of police_arrests", "2026-10")


def test_a_repeated_period_or_base_refuses_and_asks_for_corrections_next_period(
    registry, policies, people
):
    create(registry, policies, people)
    deliver(registry, policies, people, "base")
    deliver(registry, policies, people, "2026-09")
    refused(
        registry, policies, people, "2026-09 of police_arrests was already delivered", "2026-09"
    )
    event = refused(registry, policies, people, "base extract .* already delivered", "base")
    assert "next period's delivery" in event.reason


def test_a_period_before_one_already_delivered_refuses(registry, policies, people):
    # A careless steward sends September after October: its records must come in November's
    # delivery as late arrivals, not rewrite a month researchers have used.
    create(registry, policies, people)
    deliver(registry, policies, people, "base")
    deliver(registry, policies, people, "2026-10")
    event = refused(registry, policies, people, "2026-09 .* comes before period 2026-10", "2026-09")
    assert "late arrivals" in event.reason
    assert deliver(registry, policies, people, "2026-11", today=date(2026, 12, 8)) == 1


def amend_periodicity(registry, policies, people, periodicity):
    data = template()
    data["data"][0]["periodicity"] = periodicity
    with registry.sessions() as s:
        amend_agreement(
            s,
            actor=people.steward,
            policies=policies,
            reference="DSA-POLICE",
            terms=parse_terms(data),
            change_note=f"deliveries become {periodicity}",
            known_sources=SOURCES,
        )


def test_a_quarter_covering_months_already_delivered_refuses_after_an_amendment(
    registry, policies, people
):
    # Monthly July, August and September were delivered, then the agreement became quarterly:
    # 2026-Q3 would deliver the same three months again, 2026-Q2 would arrive out of order.
    create(registry, policies, people)
    for period in ("base", "2026-07", "2026-08", "2026-09"):
        deliver(registry, policies, people, period)
    amend_periodicity(registry, policies, people, "quarterly")
    event = refused(registry, policies, people, "2026-Q3 .* overlaps period 2026-0[789]", "2026-Q3")
    assert "next period's delivery" in event.reason
    refused(registry, policies, people, "2026-Q2 .* comes before period 2026-09", "2026-Q2")
    assert deliver(registry, policies, people, "2026-Q4", today=date(2027, 1, 5)) == 2


def test_a_month_inside_a_quarter_already_delivered_refuses_after_an_amendment(
    registry, policies, people
):
    create(registry, policies, people)
    amend_periodicity(registry, policies, people, "quarterly")
    deliver(registry, policies, people, "base")
    deliver(registry, policies, people, "2026-Q3")
    amend_periodicity(registry, policies, people, "monthly")
    refused(registry, policies, people, "2026-09 .* overlaps period 2026-Q3", "2026-09")
    refused(registry, policies, people, "2026-06 .* comes before period 2026-Q3", "2026-06")
    assert deliver(registry, policies, people, "2026-10") == 3
    amend_periodicity(registry, policies, people, "annual")
    refused(
        registry,
        policies,
        people,
        "2026 .* overlaps period 2026-Q3",
        "2026",
        today=date(2027, 1, 5),
    )


def test_a_once_agreement_takes_only_the_base(registry, policies, people):
    data = template()
    data["data"][0]["periodicity"] = "once"
    create(registry, policies, people, data=data)
    deliver(registry, policies, people, "base")
    refused(registry, policies, people, "delivered once", "2026-09")


def test_two_agreements_in_force_for_one_source_are_ambiguous(registry, policies, people):
    create(registry, policies, people)
    create(registry, policies, people, reference="DSA-POLICE-2")
    refused(registry, policies, people, "2 agreements in force cover source police_arrests", "base")


def test_a_new_agreement_after_one_ended_takes_the_deliveries(registry, policies, people):
    create(registry, policies, people)
    end(registry, "DSA-POLICE")
    create(registry, policies, people, reference="DSA-POLICE-2")
    deliver(registry, policies, people, "base")
    assert details(events(registry, "agreement.delivery")[-1])["agreement"] == "DSA-POLICE-2"


def test_a_hostile_period_is_cut_in_the_log_and_the_refusal(registry, policies, people):
    create(registry, policies, people)
    deliver(registry, policies, people, "base")
    event = refused(registry, policies, people, "does not fit", "9" * 200_000)
    bound = policies.access.audit_field_max_chars
    assert len(event.reason) <= bound
    assert len(event.details) <= bound + 200


def test_a_refusal_is_on_record_though_the_caller_rolls_back(registry, policies, people):
    with registry.sessions() as s:
        with pytest.raises(AgreementRefused):
            check_delivery(
                s,
                actor=people.steward,
                policies=policies,
                source="police_arrests",
                file_format="csv",
                period="base",
                today=TODAY,
            )
        s.rollback()
    assert [e.outcome for e in events(registry, "agreement.delivery")] == ["deny"]


# --- permitted uses (pure) ------------------------------------------------------------------


def test_permitted_use_refusal(registry, policies, people):
    create(registry, policies, people)
    create(registry, policies, people, reference="DSA-CPS", data=_cps_for_evaluation_only())
    with registry.sessions() as s:
        police = get_agreement(s, "DSA-POLICE")
        cps = get_agreement(s, "DSA-CPS")
        behind = [
            ("police_arrests", current_version(police), police),
            ("cps_charging", current_version(cps), cps),
        ]
        project = Project(
            code="P9",
            purpose_category="research",
            legal_basis="  digital economy act 2017   S.64 (Research) ",
        )
        assert permitted_use_refusal(project, behind[:1], TODAY) is None
        reason = permitted_use_refusal(project, behind, TODAY)
        assert "purpose category 'research' is not a use agreement DSA-CPS" in reason
        assert "cps_charging" in reason
        project.purpose_category = "evaluation"
        assert "'evaluation' is not a use agreement DSA-POLICE" in permitted_use_refusal(
            project, behind, TODAY
        )
        project.purpose_category = "research"
        project.legal_basis = "Because we asked"
        assert "legal basis 'Because we asked'" in permitted_use_refusal(project, behind[:1], TODAY)
        assert "no data-sharing agreement is recorded for source victims" in (
            permitted_use_refusal(project, [("victims", None, None)], TODAY)
        )
        project.legal_basis = "Digital Economy Act 2017 s.64 (research)"
        assert "expired on 2031-12-31" in permitted_use_refusal(
            project, behind[:1], date(2032, 1, 1)
        )


def _cps_for_evaluation_only() -> dict:
    data = yaml.safe_load(TEMPLATE.with_name("dsa-cps.yaml").read_text(encoding="utf-8"))
    data["use_of_information"]["permitted_purposes"] = ["evaluation"]
    return data

"""Deliveries: a delivery's rows are added, corrected or withdrawn against the table held, rows
that cannot be applied are rejected with their reason, the quality report holds only counts and
rates, and every refused delivery is audited and leaves no dataset version behind."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml
from agreement_fixtures import register_standard_agreements
from pipeline_fixtures import register_agreements
from sqlalchemy import select

from registry_fixtures import populate
from srs.governance.access import AccessDenied
from srs.governance.agreements import AgreementRefused, amend_agreement, parse_terms
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet, load_policies
from srs.governance.registry import Registry
from srs.governance.registry.models import AuditEvent, Dataset, Delivery
from srs.pipeline.deliveries import (
    DeliveryChanges,
    DeliveryError,
    apply_delivery,
    delivery_quality,
    write_quality_report,
)
from srs.pipeline.ingest import (
    INGEST_POLICY_FILE,
    SchemaError,
    UnsharedVariables,
    ingest_file,
    known_sources,
    load_dictionary,
    reason_kind,
)
from srs.pipeline.stewardship import PipelineError, ingest_into_vault
from srs.vault.crypto import generate_master_key, write_key_file
from srs.vault.store import Vault

HEADER = (
    "arrest_id,crime_ref,pnc_id,forename,surname,sex,date_of_birth,postcode,offence_code,"
    "offence_date,arrest_date,force_code"
)
BASE = [
    "A000000001,CR000000001,2001/1234567A,John,Smith,M,1990-04-03,LS12 4TX,ASL02,2021-05-01,2021-05-02,F03",
    "A000000002,CR000000002,,Mary,Jones,F,1985-12-30,,THF03,2022-01-10,2022-01-10,F07",
    "A000000003,CR000000003,2010/7654321B,Ali,Khan,M,2001-07-15,B9 1AB,DRG01,2023-03-03,2023-03-04,F01",
]
# A delivery for 2026-10 (the shipped agreements run from 2026): three rows that apply, four
# that cannot (an add of a held id, a correction and a withdrawal of ids not held, a hostile
# action that also lacks a required forename).
DELIVERY = [
    "A000000004,CR000000004,,Zed,Quist,M,1970-01-01,,ASL02,2024-06-01,2024-06-02,F02,add",
    "A000000002,CR000000002,,Mary,Jonas,F,1985-12-30,,THF03,2022-01-10,2022-01-10,F07,correct",
    "A000000003,,,,,,,,,,,,withdraw",
    "A000000001,CR000000001,,John,Smith,M,1990-04-03,,ASL02,2021-05-01,2021-05-02,F03,add",
    "A000000009,CR000000009,,Vic,Odd,M,1990-04-03,,ASL02,2021-05-01,2021-05-02,F03,correct",
    "A000000008,,,,,,,,,,,,withdraw",
    "A000000005,CR000000005,,,Tables,M,1990-04-03,,ASL02,2021-05-01,2021-05-02,F03,drop table",
]
STANDARDS = {
    "min_completeness": 0.95,
    "min_validity": 0.98,
    "max_reject_rate": 0.02,
    "max_days_late": 15,
    "max_row_change": 0.5,
}


def write(folder: Path, lines: list[str], name: str, header: str = HEADER) -> Path:
    path = folder / name
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def delivery_file(folder: Path, lines: list[str], name: str = "police_2026-10.csv") -> Path:
    return write(folder, lines, name, HEADER + ",delivery_action")


@pytest.fixture(scope="module")
def police():
    return load_dictionary("police_arrests")


# ---------------------------------------------------------------- apply_delivery (pure)
def typed(police, offences, tmp_path, lines, delivery_lines=None):
    base = ingest_file(write(tmp_path, lines, "base.csv"), police, offences).accepted
    if delivery_lines is None:
        return base
    held = base["arrest_id"]
    return base, ingest_file(delivery_file(tmp_path, delivery_lines), police, offences, held)


def test_a_delivery_adds_corrects_in_place_and_withdraws(tmp_path, police, offences) -> None:
    previous, result = typed(police, offences, tmp_path, BASE, DELIVERY)
    table, changes = apply_delivery(previous, result.accepted, police, "2026-10")
    assert list(table["arrest_id"]) == ["A000000001", "A000000002", "A000000004"]
    assert list(table["surname"]) == ["Smith", "Jonas", "Quist"]
    assert list(table.columns) == [c.name for c in police.columns]
    assert table["arrest_date"].dtype == previous["arrest_date"].dtype
    # The added arrest (June 2024) came in the 2026-10 delivery: late.
    assert changes == DeliveryChanges(added=1, corrected=1, withdrawn=1, late=1, period="2026-10")


def test_a_delivery_that_breaks_the_rules_is_not_half_applied(tmp_path, police, offences) -> None:
    previous = typed(police, offences, tmp_path, BASE)
    row = previous.iloc[[0]].assign(delivery_action="add")
    with pytest.raises(DeliveryError, match="an add of a arrest_id already held"):
        apply_delivery(previous, row, police, "2026-10")
    stranger = row.assign(arrest_id="A000000077", delivery_action="withdraw")
    with pytest.raises(DeliveryError, match="not held"):
        apply_delivery(previous, stranger, police, "2026-10")
    with pytest.raises(DeliveryError, match="no delivery_action column"):
        apply_delivery(previous, previous.iloc[[0]], police, "2026-10")
    with pytest.raises(DeliveryError, match="unknown delivery_action value"):
        apply_delivery(
            previous, row.assign(arrest_id="A000000078", delivery_action="merge"), police
        )


# ---------------------------------------------------------------- ingest in delivery mode
def test_rows_that_cannot_be_applied_are_rejected_with_their_reason(
    tmp_path, police, offences
) -> None:
    _, result = typed(police, offences, tmp_path, BASE, DELIVERY)
    assert (result.rows_in, result.rows_accepted, result.rows_rejected) == (7, 3, 4)
    reasons = dict(zip(result.rejects["line"], result.rejects["reasons"], strict=True))
    assert reasons[4] == "add: arrest_id A000000001 is already held (send it as correct)"
    assert reasons[5].startswith("correct: arrest_id A000000009 is not held")
    assert reasons[6] == "withdraw: arrest_id A000000008 is not held"
    assert "delivery_action 'drop table' is not one of add, correct, withdraw" in reasons[7]
    assert "forename is required but empty" in reasons[7]
    # The withdrawal needs only its id: none of its blank required fields is a reason.
    assert list(result.accepted["delivery_action"]) == ["add", "correct", "withdraw"]
    # Required values: 5 rows x 10 required columns, and the id of each of 2 withdrawals.
    assert (result.required_values, result.required_filled) == (52, 51)


def test_a_withdrawal_without_its_id_is_rejected(tmp_path, police, offences) -> None:
    _, result = typed(police, offences, tmp_path, BASE, [",,,,,,,,,,,,withdraw"])
    assert result.rows_rejected == 1
    assert "arrest_id is required but empty" in result.rejects.loc[0, "reasons"]


def test_a_delivery_without_delivery_action_is_refused_whole(tmp_path, police, offences) -> None:
    held = pd.Series(["A000000001"])
    with pytest.raises(SchemaError, match="a delivery needs a delivery_action column"):
        ingest_file(write(tmp_path, BASE, "plain.csv"), police, offences, held)
    with pytest.raises(SchemaError, match="ingest it with --delivery"):
        ingest_file(delivery_file(tmp_path, DELIVERY[:1]), police, offences)


# ---------------------------------------------------------------- the quality report
def test_quality_report_figures_and_no_identifiable_data(tmp_path, police, offences) -> None:
    previous, result = typed(police, offences, tmp_path, BASE, DELIVERY)
    _, changes = apply_delivery(previous, result.accepted, police, "2026-10")
    report = delivery_quality(result, None, changes, STANDARDS, "2026-10", date(2026, 11, 5))
    checks = {check.name: check for check in report.checks}
    assert checks["completeness"].value == round(51 / 52, 4) and checks["completeness"].passed
    assert checks["validity"].value == round(3 / 7, 4) and not checks["validity"].passed
    assert checks["reject_rate"].value == round(4 / 7, 4) and not checks["reject_rate"].passed
    assert checks["timeliness"].value == 5 and checks["timeliness"].passed
    assert checks["consistency"].value is None and checks["consistency"].passed
    assert not report.passed
    assert report.reject_reasons == {
        "add of a record already held": 1,
        "correction of a record not held": 1,
        "delivery_action: not an allowed value": 1,
        "forename: required but empty": 1,
        "withdrawal of a record not held": 1,
    }
    later = delivery_quality(result, 2, changes, STANDARDS, "2026-10", date(2026, 11, 20))
    checks = {check.name: check for check in later.checks}
    assert checks["timeliness"].value == 20 and not checks["timeliness"].passed
    assert checks["consistency"].value == 2.5 and not checks["consistency"].passed
    json_path, md_path = tmp_path / "q.json", tmp_path / "q.md"
    write_quality_report(report, json_path, md_path)
    stored = json.loads(json_path.read_text())
    assert stored["passed"] is False and stored["rows_in"] == 7
    text = json_path.read_text() + md_path.read_text()
    assert "| validity | 0.4286 | 0.98 | FAIL |" in md_path.read_text()
    for value in ("A00000000", "Smith", "Jonas", "Quist", "Tables", "drop table", "CR0000"):
        assert value not in text


def test_a_quoted_value_never_becomes_a_reason_kind() -> None:
    columns = {"surname", "arrest_id"}
    assert (
        reason_kind("surname 'O'Brien' is not one of M, F", columns)
        == "surname: not an allowed value"
    )
    # A value dressed as a column name still yields only a known kind or "other".
    assert reason_kind("Smith_Jones is required but empty", columns) == "other"
    assert reason_kind("surname 'x'; rule a <= b broken", columns) == "other"


def test_standards_must_be_complete(tmp_path, police, offences) -> None:
    previous, result = typed(police, offences, tmp_path, BASE, DELIVERY)
    _, changes = apply_delivery(previous, result.accepted, police, "2026-10")
    partial = {k: v for k, v in STANDARDS.items() if k != "max_days_late"}
    with pytest.raises(DeliveryError, match="lack max_days_late"):
        delivery_quality(result, None, changes, partial, "2026-10", date(2026, 11, 5))


# ---------------------------------------------------------------- into the vault
@pytest.fixture
def steward(registry: Registry, policies: PolicySet, deployment: Deployment):
    people = populate(registry, policies)
    write_key_file(deployment.key_file, generate_master_key())
    return people.steward, Vault(deployment, policies)


def ingest(registry, vault, steward, path, offences, **options):
    with registry.sessions() as s:
        return ingest_into_vault(
            s,
            vault,
            actor=steward,
            source="police_arrests",
            path=path,
            offences=offences,
            **options,
        )


def versions(registry) -> list[int]:
    with registry.sessions() as s:
        return list(
            s.scalars(select(Dataset.version).where(Dataset.name == "source/police_arrests"))
        )


def refusals(registry) -> list[tuple[str, str]]:
    with registry.sessions() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.outcome == "deny").order_by(AuditEvent.seq)
        )
        return [(event.action, event.reason) for event in events]


def test_base_then_delivery_into_the_vault(registry, policies, steward, tmp_path, offences):
    actor, vault = steward
    with registry.sessions() as s:
        register_standard_agreements(s, policies, actor)
    base = write(tmp_path, BASE, "police_base.csv")
    ingest(registry, vault, actor, base, offences, today=date(2026, 11, 1))
    path = delivery_file(tmp_path, DELIVERY)
    reports = tmp_path / "reports"
    result, stored = ingest(
        registry,
        vault,
        actor,
        path,
        offences,
        delivery=True,
        period="2026-10",
        today=date(2026, 11, 5),
        report_dir=reports,
    )
    assert result.rows_in == result.rows_accepted + result.rows_rejected == 7
    assert stored.version == 2
    with registry.sessions() as s:
        held = vault.read_steward_zone(s, "source/police_arrests", actor=actor)
        assert list(held["surname"]) == ["Smith", "Jonas", "Quist"]
        deliveries = s.scalars(select(Delivery).order_by(Delivery.id)).all()
        assert [d.period for d in deliveries] == ["base", "2026-10"]
        latest = deliveries[-1]
        assert (latest.rows_in, latest.rows_accepted, latest.rows_rejected) == (7, 3, 4)
        assert latest.agreement.reference == "DSA-POLICE" and latest.dataset_version == 2
        assert latest.changes["late"] == 1 and latest.quality["passed"] is False
        dataset = vault.get(s, "source/police_arrests")
        assert dataset.lineage == {
            "sources": ["police_arrests"],
            "agreements": {"police_arrests": "DSA-POLICE"},
            "deliveries": [deliveries[0].id, latest.id],
            "derived_from": ["source/police_arrests@1"],
        }
        assert dataset.change_summary["corrected"] == 1
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "ingest.delivery"))
        assert [json.loads(e.details)["delivery"] for e in events] == [latest.id]
    assert (reports / "police_2026-10.csv.quality.md").is_file()
    assert (tmp_path / "police_2026-10.csv.rejects.csv").is_file()
    assert (tmp_path / "police_base.csv.quality.json").is_file()


@pytest.mark.parametrize(
    ("setup", "options", "message"),
    [
        ("none", {}, "no data-sharing agreement covers source police_arrests"),
        ("parquet", {}, "delivered as csv, not 'parquet'"),
        ("base", {"delivery": True, "period": "2019-06"}, "lies outside the duration"),
        ("base", {}, "the base extract of police_arrests under DSA-POLICE was already"),
        ("nobase", {"delivery": True, "period": "2026-10"}, "no base extract of police_arrests"),
        ("delivered", {"delivery": True, "period": "2026-10"}, "period 2026-10 of"),
    ],
)
def test_a_refused_delivery_is_audited_and_leaves_nothing(
    registry, policies, steward, tmp_path, offences, setup, options, message
) -> None:
    actor, vault = steward
    if setup != "none":
        with registry.sessions() as s:
            register_standard_agreements(s, policies, actor)
    path = write(tmp_path, BASE, "police.csv")
    if setup in ("base", "delivered"):
        ingest(registry, vault, actor, write(tmp_path, BASE, "b.csv"), offences)
    if setup == "delivered":
        ingest(
            registry,
            vault,
            actor,
            delivery_file(tmp_path, DELIVERY[:1], "d1.csv"),
            offences,
            delivery=True,
            period="2026-10",
            today=date(2026, 11, 5),
        )
    if setup == "parquet":
        path = tmp_path / "police.parquet"
        pd.read_csv(write(tmp_path, BASE, "p.csv"), dtype=str).to_parquet(path)
    if options.get("delivery"):
        path = delivery_file(tmp_path, DELIVERY[2:3], "late.csv")
    before = versions(registry)
    with pytest.raises(AgreementRefused, match=message):
        ingest(registry, vault, actor, path, offences, today=date(2026, 11, 20), **options)
    assert versions(registry) == before
    assert refusals(registry)[-1][0] == "agreement.delivery"
    assert message.split(" of")[0] in refusals(registry)[-1][1]
    assert not (tmp_path / f"{path.name}.quality.json").exists()


def test_a_careless_steward(registry, policies, steward, tmp_path, offences) -> None:
    actor, vault = steward
    with registry.sessions() as s:
        register_standard_agreements(s, policies, actor)
    ingest(registry, vault, actor, write(tmp_path, BASE, "police.csv"), offences)
    first = delivery_file(tmp_path, DELIVERY[:1], "october.csv")
    ingest(
        registry,
        vault,
        actor,
        first,
        offences,
        delivery=True,
        period="2026-10",
        today=date(2026, 11, 5),
    )
    # The same file again, as the next month: refused, audited, nothing stored.
    again = tmp_path / "november.csv"
    shutil.copy(first, again)
    with pytest.raises(
        PipelineError, match="november.csv has the same content as october.csv, already ingested"
    ):
        ingest(
            registry,
            vault,
            actor,
            again,
            offences,
            delivery=True,
            period="2026-11",
            today=date(2026, 12, 3),
        )
    assert refusals(registry)[-1][0] == "ingest.refused"
    # A delivery file without delivery_action.
    plain = write(tmp_path, BASE[:1], "plain.csv")
    with pytest.raises(SchemaError, match="delivery_action"):
        ingest(
            registry,
            vault,
            actor,
            plain,
            offences,
            delivery=True,
            period="2026-11",
            today=date(2026, 12, 3),
        )
    assert refusals(registry)[-1][0] == "ingest.refused"
    # A delivery without its period, and a base extract given a period.
    with pytest.raises(PipelineError, match="needs the period it covers"):
        ingest(registry, vault, actor, plain, offences, delivery=True)
    with pytest.raises(PipelineError, match="was given for a base extract"):
        ingest(registry, vault, actor, plain, offences, period="2026-11")
    # A delivery for a source no agreement covers.
    with registry.sessions() as s, pytest.raises(AgreementRefused, match="interpol"):
        ingest_into_vault(
            s,
            vault,
            actor=actor,
            source="interpol",
            path=first,
            offences=offences,
            delivery=True,
            period="2026-11",
            today=date(2026, 12, 3),
        )
    assert versions(registry) == [1, 2]
    with registry.sessions() as s:
        assert s.scalar(select(Delivery).where(Delivery.period == "2026-11")) is None


def test_a_hostile_action_is_a_rejected_row_and_never_reaches_the_report(
    registry, policies, steward, tmp_path, offences
) -> None:
    actor, vault = steward
    with registry.sessions() as s:
        register_standard_agreements(s, policies, actor)
    ingest(registry, vault, actor, write(tmp_path, BASE, "police.csv"), offences)
    hostile = "x'; DROP TABLE deliveries; --"
    rows = [
        f"A000000006,CR000000006,,Eve,Mallory,F,1980-01-01,,ASL02,2021-05-01,2021-05-02,F03,{hostile}",
        "A000000007,CR000000007,,Eve,Mallory,F,1980-01-01,,ASL02,2021-05-01,2021-05-02,F03,drop table",
    ]
    result, stored = ingest(
        registry,
        vault,
        actor,
        delivery_file(tmp_path, rows),
        offences,
        delivery=True,
        period="2026-10",
        today=date(2026, 11, 5),
    )
    assert (result.rows_accepted, result.rows_rejected) == (0, 2)
    assert stored.row_count == 3
    with registry.sessions() as s:
        quality = s.scalars(select(Delivery).where(Delivery.period == "2026-10")).one().quality
    assert quality["reject_reasons"] == {"delivery_action: not an allowed value": 2}
    report = (tmp_path / "police_2026-10.csv.quality.md").read_text()
    assert "DROP" not in report and "Mallory" not in report and "drop table" not in report


def test_rows_dated_after_the_period_delivered_for_are_rejected(
    registry, policies, steward, tmp_path, offences
) -> None:
    actor, vault = steward
    with registry.sessions() as s:
        register_agreements(s, policies, actor, start=date(2024, 1, 1))
    ingest(registry, vault, actor, write(tmp_path, BASE, "police.csv"), offences)
    # December's file delivered as November's: its December arrest does not belong there.
    rows = [
        "A000000010,CR000000010,,Ann,Bell,F,1980-01-01,,ASL02,2024-12-01,2024-12-02,F03,add",
        "A000000011,CR000000011,,Bob,Bell,M,1980-01-01,,ASL02,2024-11-01,2024-11-30,F03,add",
        "A000000003,,,,,,,,,,,,withdraw",
    ]
    result, _ = ingest(
        registry,
        vault,
        actor,
        delivery_file(tmp_path, rows, "police_2024-12.csv"),
        offences,
        delivery=True,
        period="2024-11",
        today=date(2024, 12, 5),
    )
    assert (result.rows_accepted, result.rows_rejected) == (2, 1)
    assert result.rejects.loc[0, "reasons"] == (
        "arrest_date '2024-12-02' is after the end of the delivery's period (2024-11-30)"
    )
    assert result.reason_kinds == {"arrest_date: after the period": 1}


def test_a_researcher_cannot_ingest(registry, policies, steward, tmp_path, offences) -> None:
    actor, vault = steward
    with registry.sessions() as s:
        register_standard_agreements(s, policies, actor)
    with pytest.raises(AccessDenied):
        ingest(registry, vault, "ana", write(tmp_path, BASE, "mine.csv"), offences)
    ingest(registry, vault, actor, write(tmp_path, BASE, "police.csv"), offences)
    with pytest.raises(AccessDenied):
        ingest(
            registry,
            vault,
            "ana",
            delivery_file(tmp_path, DELIVERY[:3]),
            offences,
            delivery=True,
            period="2026-10",
            today=date(2026, 11, 5),
        )
    assert versions(registry) == [1]
    with registry.sessions() as s:
        assert [d.received_by for d in s.scalars(select(Delivery))] == [actor]
        # Refused before the agreement was looked up: no agreement decision on ana's behalf.
        decided = s.scalars(select(AuditEvent).where(AuditEvent.action == "agreement.delivery"))
        assert {event.actor for event in decided} == {actor}
    assert refusals(registry)[-1][0] == "access.dataset.store"
    assert not (tmp_path / "mine.csv.quality.json").exists()


# ---------------------------------------------------------------- the agreement's terms
SHARED = [
    "arrest_id",
    "crime_ref",
    "sex",
    "offence_code",
    "offence_date",
    "arrest_date",
    "force_code",
]


def amend_police(registry, policies, actor, change, note="names no longer shared") -> None:
    data = yaml.safe_load(
        (policies.source_dir / "agreements" / "dsa-police.yaml").read_text(encoding="utf-8")
    )
    change(data)
    with registry.sessions() as s:
        amend_agreement(
            s,
            actor=actor,
            policies=policies,
            reference="DSA-POLICE",
            terms=parse_terms(data),
            change_note=note,
            known_sources=known_sources(policies.source_dir),
        )


def share_only(variables):
    return lambda data: data["data"][0].update(variables=variables)


def blanked(line: str) -> str:
    """A delivery row with the identifying variables (pnc_id, names, birth date, postcode)
    left empty, as a provider sharing only SHARED sends it."""
    fields = line.split(",")
    for position in (2, 3, 4, 6, 7):
        fields[position] = ""
    return ",".join(fields)


def test_a_delivery_with_values_the_agreement_does_not_list_is_refused_whole(
    registry, policies, steward, tmp_path, offences
) -> None:
    actor, vault = steward
    with registry.sessions() as s:
        register_standard_agreements(s, policies, actor)
    ingest(registry, vault, actor, write(tmp_path, BASE, "police.csv"), offences)
    amend_police(registry, policies, actor, share_only(SHARED))
    # The provider still sends names, birth dates and postcodes: nothing is taken in.
    with pytest.raises(UnsharedVariables, match="forename, surname, date_of_birth") as caught:
        ingest(
            registry,
            vault,
            actor,
            delivery_file(tmp_path, DELIVERY[:2]),
            offences,
            delivery=True,
            period="2026-10",
            today=date(2026, 11, 5),
        )
    assert caught.value.variables == ["forename", "surname", "date_of_birth"]
    assert "provider must leave these variables out" in str(caught.value)
    assert "agreement be amended" in str(caught.value) and "DSA-POLICE, version 2" in str(
        caught.value
    )
    assert versions(registry) == [1]
    with registry.sessions() as s:
        assert s.scalar(select(Delivery).where(Delivery.period == "2026-10")) is None
        event = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "ingest.refused")
            .order_by(AuditEvent.seq.desc())
        ).first()
        assert event.outcome == "deny" and "forename" in event.reason
        assert json.loads(event.details)["variables"] == ["forename", "surname", "date_of_birth"]
    # A withdrawal carrying an unlisted value is refused too: the value was sent all the same.
    withdrawal = "A000000003,,,Ali,,,,,,,,,withdraw"
    with pytest.raises(UnsharedVariables, match="1 row\\(s\\) carry values in forename"):
        ingest(
            registry,
            vault,
            actor,
            delivery_file(tmp_path, [withdrawal], "withdraw.csv"),
            offences,
            delivery=True,
            period="2026-10",
            today=date(2026, 11, 5),
        )
    # The same rows without them are taken in: the unlisted variables are not required, and
    # delivery_action is not a variable of the data.
    result, stored = ingest(
        registry,
        vault,
        actor,
        delivery_file(tmp_path, [blanked(line) for line in DELIVERY[:2]], "clean.csv"),
        offences,
        delivery=True,
        period="2026-10",
        today=date(2026, 11, 5),
    )
    assert (result.rows_accepted, result.rows_rejected, stored.version) == (2, 0, 2)
    with registry.sessions() as s:
        held = vault.read_steward_zone(s, "source/police_arrests", actor=actor)
    added = held[held["arrest_id"] == "A000000004"].iloc[0]
    assert pd.isna(added["forename"]) and added["force_code"] == "F02"


def test_a_base_extract_with_unlisted_values_is_refused(
    registry, policies, steward, tmp_path, offences
) -> None:
    actor, vault = steward
    with registry.sessions() as s:
        register_standard_agreements(s, policies, actor)
    amend_police(registry, policies, actor, share_only([*SHARED, "forename", "surname"]))
    with pytest.raises(UnsharedVariables, match="pnc_id, date_of_birth, postcode"):
        ingest(registry, vault, actor, write(tmp_path, BASE, "police.csv"), offences)
    assert versions(registry) == []
    # ["*"] again: the whole dictionary is shared, the same file is taken in.
    amend_police(registry, policies, actor, share_only(["*"]), note="all variables again")
    result, _ = ingest(registry, vault, actor, write(tmp_path, BASE, "police.csv"), offences)
    assert result.rows_accepted == 3


def test_an_extract_held_above_the_agreements_classification_is_refused(
    registry, policies, steward, tmp_path, offences
) -> None:
    actor, vault = steward
    with registry.sessions() as s:
        register_standard_agreements(s, policies, actor)
    amend_police(
        registry,
        policies,
        actor,
        lambda data: data["confidentiality_security"].update(max_classification="confidential"),
        note="held at most confidential",
    )
    with pytest.raises(PipelineError, match="held highly_confidential, above confidential"):
        ingest(registry, vault, actor, write(tmp_path, BASE, "police.csv"), offences)
    assert versions(registry) == []
    assert refusals(registry)[-1][0] == "ingest.refused"
    assert "DSA-POLICE (version 2)" in refusals(registry)[-1][1]


def test_parameter_errors_are_audited(registry, policies, steward, tmp_path, offences) -> None:
    actor, vault = steward
    plain = write(tmp_path, BASE[:1], "plain.csv")
    with pytest.raises(PipelineError, match="needs the period it covers"):
        ingest(registry, vault, actor, plain, offences, delivery=True)
    assert refusals(registry)[-1] == (
        "ingest.refused",
        "a delivery of police_arrests needs the period it covers (--period YYYY-MM, e.g. 2024-11)",
    )
    with pytest.raises(PipelineError, match="was given for a base extract"):
        ingest(registry, vault, actor, plain, offences, period="2026-11")
    assert refusals(registry)[-1][0] == "ingest.refused"
    assert "'2026-11' was given for a base extract" in refusals(registry)[-1][1]


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(
    registry, steward, deployment, tmp_path, offences
) -> None:
    actor, _ = steward
    folder = tmp_path / "policies"
    shutil.copytree(load_policies().source_dir, folder)
    (folder / INGEST_POLICY_FILE).write_text("max_extract_bytes: 200\n", encoding="utf-8")
    limited = load_policies(folder)
    vault = Vault(deployment, limited)
    with registry.sessions() as s:
        register_standard_agreements(s, limited, actor)
    path = write(tmp_path, BASE, "police.csv")
    assert path.stat().st_size > 200
    with pytest.raises(PipelineError, match=r"police.csv is [\d,]+ bytes, more than the 200"):
        ingest(registry, vault, actor, path, offences)
    assert versions(registry) == []
    assert refusals(registry)[-1][0] == "ingest.refused"
    assert "max_extract_bytes" in refusals(registry)[-1][1]
    # A file within the limit is taken in.
    small = write(tmp_path, BASE[:1], "small.csv", header=HEADER)
    (folder / INGEST_POLICY_FILE).write_text(
        f"max_extract_bytes: {small.stat().st_size}\n", encoding="utf-8"
    )
    result, _ = ingest(registry, vault, actor, small, offences)
    assert result.rows_accepted == 1

"""Simulated deliveries: a base extract and monthly deliveries that, applied in turn, rebuild the
simulation; later deliveries carry later events and the follow-up of earlier records; ground
truth kept apart; and a real series ingested end to end under its agreements."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from pipeline_fixtures import register_agreements, register_agreements_at
from sqlalchemy import select
from typer.testing import CliRunner

from registry_fixtures import populate
from srs.cli import app
from srs.governance.registry.models import Dataset, Delivery
from srs.pipeline.deliveries import EVENT_DATE
from srs.pipeline.ingest import ingest_file, load_dictionary
from srs.pipeline.simulation import SOURCES, SimulationError, simulate, write_simulation
from srs.pipeline.simulation.deliveries import FOLLOW_UPS, SURNAME, make_deliveries
from srs.pipeline.stewardship import ingest_into_vault
from srs.vault.crypto import generate_master_key, write_key_file
from srs.vault.store import Vault

PERSONS, SEED = 800, 4


@pytest.fixture(scope="module")
def simulation():
    return simulate(PERSONS, SEED)


@pytest.fixture(scope="module")
def series(simulation):
    return make_deliveries(simulation, 3)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as text, every kind of missing value as the empty string."""
    return frame.astype(object).where(frame.notna(), "").astype(str)


def record_ids(frame: pd.DataFrame) -> pd.Series:
    return frame.iloc[:, 0].astype(str)


def test_the_same_seed_gives_the_same_deliveries(simulation, series) -> None:
    again = make_deliveries(simulate(PERSONS, SEED), 3)
    other = make_deliveries(simulate(PERSONS, SEED + 1), 3)
    assert series.periods == again.periods == ["2024-10", "2024-11", "2024-12"]
    for source in SOURCES:
        pd.testing.assert_frame_equal(series.base[source], again.base[source])
        for period in series.periods:
            pd.testing.assert_frame_equal(
                series.deliveries[period][source], again.deliveries[period][source]
            )
    assert not series.base["police_arrests"].equals(other.base["police_arrests"])


@pytest.mark.parametrize("source", SOURCES)
def test_every_record_is_sent_once_and_changed_only_while_held(simulation, series, source):
    sent = list(record_ids(series.base[source]))
    held = set(sent)
    for period in series.periods:
        frame = series.deliveries[period][source]
        action = frame["delivery_action"]
        ids = record_ids(frame)
        assert set(action) <= {"add", "correct", "withdraw"} and not ids.duplicated().any()
        assert not set(ids[action == "add"]) & held
        assert set(ids[action != "add"]) <= held
        sent += list(ids[action == "add"])
        held |= set(ids[action == "add"])
        held -= set(ids[action == "withdraw"])
        withdrawn = frame[action == "withdraw"].drop(columns=["delivery_action"])
        assert withdrawn.iloc[:, 1:].isna().all().all()  # a withdrawal carries only its id
    # Every record of the simulation is sent, but for events after the last month.
    extract = simulation.extracts[source]
    happened = pd.to_datetime(extract[EVENT_DATE[source]]) <= series.cut_off + pd.offsets.MonthEnd(
        3
    )
    assert sorted(sent) == sorted(record_ids(extract[happened]))


@pytest.mark.parametrize("source", SOURCES)
def test_later_deliveries_carry_later_events(series, source) -> None:
    column = EVENT_DATE[source]
    assert (pd.to_datetime(series.base[source][column]) < series.cut_off).all()
    late = 0
    for period in series.periods:
        frame = series.deliveries[period][source]
        adds = pd.to_datetime(frame.loc[frame["delivery_action"] == "add", column])
        month = pd.Period(period, freq="M")
        assert (adds <= month.end_time).all()
        late += int((adds < month.start_time).sum())
    # Late arrivals are a share of a month's records, not the base's history re-sent.
    total = sum(
        (series.deliveries[p][source]["delivery_action"] == "add").sum() for p in series.periods
    )
    assert late <= max(3, total // 2)


@pytest.mark.parametrize("source", sorted(FOLLOW_UPS))
def test_applying_the_deliveries_rebuilds_the_simulation(simulation, series, source) -> None:
    follow_up = FOLLOW_UPS[source]
    table = series.base[source].set_index(series.base[source].columns[0])
    last_cut = pd.Period(series.periods[-1], freq="M").end_time
    # The base shows no outcome, release or end that came after its cut-off.
    true_dates = simulation.extracts[source].set_index(table.index.name).loc[table.index]
    after_cut = pd.to_datetime(true_dates[follow_up.date]) >= series.cut_off
    assert pd.to_datetime(table.loc[after_cut, follow_up.date]).isna().all()
    for period in series.periods:
        frame = series.deliveries[period][source].set_index(table.index.name)
        action = frame.pop("delivery_action")
        table = table.drop(index=frame.index[action == "withdraw"])
        corrected = frame[action == "correct"]
        table.loc[corrected.index] = corrected[table.columns]
        table = pd.concat([table, frame[action == "add"][table.columns]])
    expected = simulation.extracts[source].set_index(table.index.name).loc[table.index]
    known = pd.to_datetime(expected[follow_up.date]).isna() | (
        pd.to_datetime(expected[follow_up.date]) <= last_cut
    )
    columns = [c for c in table.columns if c != SURNAME[source]]
    pd.testing.assert_frame_equal(
        as_text(table.loc[known, columns]), as_text(expected.loc[known, columns])
    )


def test_follow_up_arrives_as_corrections(simulation, series) -> None:
    follow_ups = 0
    for source, follow_up in FOLLOW_UPS.items():
        for period in series.periods:
            frame = series.deliveries[period][source]
            corrected = frame[frame["delivery_action"] == "correct"]
            dates = pd.to_datetime(corrected[follow_up.date])
            month = pd.Period(period, freq="M")
            # A follow-up is sent in the delivery of the month it happened in.
            in_month = (dates >= month.start_time) & (dates <= month.end_time)
            follow_ups += int(in_month.sum())
    assert follow_ups > 0


def test_surnames_are_corrected_to_the_true_one(simulation, series) -> None:
    truth = simulation.ground_truth.set_index(["source", "record_id"])["person_id"]
    true_surname = simulation.identities.set_index("person_id")["surname"]
    fixed = 0
    for period in series.periods:
        for source in SOURCES:
            frame = series.deliveries[period][source]
            corrected = frame[frame["delivery_action"] == "correct"]
            before = simulation.extracts[source].set_index(frame.columns[0])
            for record, surname in zip(
                record_ids(corrected), corrected[SURNAME[source]], strict=True
            ):
                if surname != before.loc[record, SURNAME[source]]:
                    person = truth.loc[(source, record)]
                    assert surname.casefold() == true_surname.loc[person].casefold()
                    fixed += 1
    assert fixed > 0


def test_the_series_is_written_with_its_ground_truth_apart(simulation, series, tmp_path) -> None:
    paths = write_simulation(simulation, tmp_path, deliveries=series)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["base"]["events_before"] == "2024-10-01"
    assert [d["period"] for d in manifest["deliveries"]] == series.periods
    for entry in manifest["deliveries"]:
        truth = pd.read_csv(tmp_path / "ground_truth" / "deliveries" / f"{entry['period']}.csv")
        for source in SOURCES:
            written = pd.read_csv(tmp_path / "deliveries" / entry["period"] / f"{source}.csv")
            assert paths[f"{entry['period']}/{source}"].is_file()
            counts = written["delivery_action"].value_counts().to_dict()
            assert {k: v for k, v in entry["records"][source].items() if v} == counts
            mine = truth[truth["source"] == source]
            assert list(mine["record_id"]) == list(written.iloc[:, 0].astype(str))
        assert entry["new_persons"] >= 0
    assert sum(d["new_persons"] for d in manifest["deliveries"]) > 0
    for source in SOURCES:
        base = pd.read_csv(paths[source])
        assert len(base) == manifest["records"][source] == len(series.base[source])
        assert "delivery_action" not in base.columns
    base_truth = pd.read_csv(paths["ground_truth"])
    assert len(base_truth) == sum(len(frame) for frame in series.base.values())


@pytest.mark.parametrize("deliveries", [0, 25, -1])
def test_impossible_series_are_refused(simulation, deliveries) -> None:
    with pytest.raises(SimulationError, match="deliveries must be between 1 and 24"):
        make_deliveries(simulation, deliveries)


def test_a_simulated_series_ingested_end_to_end(
    registry, policies, deployment, simulation, series, tmp_path, offences
) -> None:
    steward = populate(registry, policies).steward
    write_key_file(deployment.key_file, generate_master_key())
    vault = Vault(deployment, policies)
    paths = write_simulation(simulation, tmp_path, deliveries=series)
    with registry.sessions() as s:
        register_agreements(s, policies, steward, start=date(2024, 1, 1))
    received = {"base": date(2024, 10, 2), "2024-10": date(2024, 11, 4)}
    received |= {"2024-11": date(2024, 12, 6), "2024-12": date(2025, 1, 30)}
    for source in SOURCES:
        with registry.sessions() as s:
            base, _ = ingest_into_vault(
                s,
                vault,
                actor=steward,
                source=source,
                path=paths[source],
                offences=offences,
                today=received["base"],
            )
        expected_rows = base.rows_accepted
        assert base.rows_in == base.rows_accepted + base.rows_rejected == len(series.base[source])
        for period in series.periods:
            with registry.sessions() as s:
                result, stored = ingest_into_vault(
                    s,
                    vault,
                    actor=steward,
                    source=source,
                    path=paths[f"{period}/{source}"],
                    offences=offences,
                    delivery=True,
                    period=period,
                    today=received[period],
                )
            assert result.rows_in == result.rows_accepted + result.rows_rejected
            assert result.rows_in == len(series.deliveries[period][source])
            action = result.accepted["delivery_action"]
            expected_rows += int((action == "add").sum() - (action == "withdraw").sum())
            assert stored.row_count == expected_rows
    with registry.sessions() as s:
        deliveries = s.scalars(select(Delivery).order_by(Delivery.id)).all()
        assert len(deliveries) == 4 * len(SOURCES)
        police = [d for d in deliveries if d.source == "police_arrests"]
        assert [d.dataset_version for d in police] == [1, 2, 3, 4]
        last = s.scalars(
            select(Dataset).where(Dataset.name == "source/police_arrests", Dataset.version == 4)
        ).one()
        assert last.lineage["deliveries"] == [d.id for d in police]
        assert last.lineage["derived_from"] == ["source/police_arrests@3"]
        assert last.lineage["agreements"] == {"police_arrests": "DSA-POLICE"}
        # December's delivery came 30 days after the month ended: late against 15 days.
        timeliness = {c["name"]: c for c in police[-1].quality["checks"]}["timeliness"]
        assert timeliness["value"] == 30 and not timeliness["passed"]
        held = {
            source: vault.read_steward_zone(s, f"source/{source}", actor=steward)
            for source in FOLLOW_UPS
        }
    # Follow-up grows as deliveries arrive: records pending when the base was cut (no outcome,
    # release, end of supervision or withdrawal of support yet) have it in the table held.
    followed_up = 0
    for source, follow_up in FOLLOW_UPS.items():
        base = series.base[source].set_index(series.base[source].columns[0])
        pending = base.index[base[follow_up.date].isna()]
        now = held[source].set_index(base.index.name)[follow_up.date]
        followed_up += int(now.reindex(pending).notna().sum())
    assert followed_up > 0


def test_simulate_and_ingest_deliveries_through_the_cli(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    for variable in ("SRS_MASTER_KEY", "SRS_DATABASE_URL", "SRS_HOME", "SRS_USER"):
        monkeypatch.delenv(variable, raising=False)
    runner = CliRunner()
    home, out = str(tmp_path / "home"), tmp_path / "sim"
    simulated = runner.invoke(
        app, ["simulate", "--persons", "300", "--seed", "5", "--out", str(out), "--deliveries", "2"]
    )
    assert simulated.exit_code == 0, simulated.output
    assert "2024-11 add/correct/withdraw" in simulated.output and "new persons" in simulated.output
    assert (out / "deliveries" / "2024-12" / "victims.csv").is_file()
    assert runner.invoke(app, ["--home", home, "init"]).exit_code == 0
    added = runner.invoke(
        app,
        [
            "--home",
            home,
            "--as",
            "admin",
            "researcher",
            "add",
            "sam",
            "--name",
            "Sam",
            "--role",
            "steward",
        ],
    )
    assert added.exit_code == 0, added.output
    register_agreements_at(home, "sam", start=date(2024, 1, 1))
    steward = ["--home", home, "--as", "sam", "ingest", "police_arrests"]
    base = runner.invoke(app, [*steward, str(out / "extracts" / "police_arrests.csv")])
    assert base.exit_code == 0, base.output
    assert "Ingested police_arrests (base, under DSA-POLICE)" in " ".join(base.output.split())
    delivery = out / "deliveries" / "2024-11" / "police_arrests.csv"
    reports = tmp_path / "reports"
    ingested = runner.invoke(
        app,
        [
            *steward,
            str(delivery),
            "--delivery",
            "--period",
            "2024-11",
            "--report-dir",
            str(reports),
        ],
    )
    assert ingested.exit_code == 0, ingested.output
    text = " ".join(ingested.output.split())
    assert "Ingested police_arrests (2024-11, under DSA-POLICE)" in text
    assert "added" in text and "withdrawn" in text and "late" in text
    # Received today, two years after November 2024 ended: the timeliness standard fails.
    assert "FAIL timeliness" in text and "pass completeness" in text
    assert (reports / "police_arrests.csv.quality.md").is_file()
    again = runner.invoke(app, [*steward, str(delivery), "--delivery", "--period", "2024-11"])
    assert again.exit_code == 2 and "was already delivered" in " ".join(again.output.split())
    missing = runner.invoke(app, [*steward, str(delivery), "--delivery"])
    assert missing.exit_code == 2 and "needs the period it covers" in missing.output


def test_hard_noise_deliveries_validate_row_by_row(tmp_path, offences) -> None:
    hard = simulate(400, 9, noise="hard")
    series = make_deliveries(hard, 2)
    paths = write_simulation(hard, tmp_path, deliveries=series)
    for source in SOURCES:
        dictionary = load_dictionary(source)
        held = ingest_file(paths[source], dictionary, offences).accepted[dictionary.record_id]
        for period in series.periods:
            result = ingest_file(paths[f"{period}/{source}"], dictionary, offences, held)
            assert result.rows_in == result.rows_accepted + result.rows_rejected
            assert result.rows_in == len(series.deliveries[period][source])
            action = result.accepted["delivery_action"]
            held = pd.concat(
                [
                    held[
                        ~held.isin(result.accepted.loc[action == "withdraw", dictionary.record_id])
                    ],
                    result.accepted.loc[action == "add", dictionary.record_id],
                ]
            )

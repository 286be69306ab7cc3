"""Simulated monthly deliveries: one simulation split into a base extract and N monthly
deliveries per source, as agencies send them under a data-sharing agreement.

Each record goes to the delivery of the month its event falls in (events before the first
month make the base extract; events after the last month are not sent). On top of that: late arrivals (a share of a month's records held
back to a later delivery), corrections (an outcome, release or end of supervision that happened
after the record was first sent, and a share of mistyped surnames put right) and withdrawals
(most of them duplicate records the agency found). A record is sent as it stood when its
delivery was cut, so later deliveries carry later events and the follow-up of earlier ones.
Deterministic for the simulation's seed; the ground truth of every delivered record is kept
apart, as for the base extracts.

Example::

    result = simulate(persons=5_000, seed=7)
    series = make_deliveries(result, deliveries=3)     # base to 2024-09, then 2024-10..12
    write_simulation(result, Path("sim"), deliveries=series)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from srs.pipeline.deliveries import EVENT_DATE
from srs.pipeline.ingest import DELIVERY_ACTION
from srs.pipeline.simulation import SOURCES, Simulation, SimulationError
from srs.pipeline.simulation.extracts import QUALITY
from srs.pipeline.simulation.journeys import PERIOD_END

MAX_DELIVERIES = 24


@dataclass(frozen=True)
class FollowUp:
    """A later event of a record (its date column) and what its columns hold until then."""

    date: str
    pending: dict[str, object] = field(default_factory=dict)


FOLLOW_UPS = {
    "magistrates_cases": FollowUp(
        "outcome_date",
        {"plea": None, "outcome": None, "sentence_type": None, "sentence_months": None},
    ),
    "crown_court_cases": FollowUp(
        "verdict_date",
        {"plea": None, "verdict": None, "sentence_type": None, "sentence_months": None},
    ),
    "prison_spells": FollowUp("release_date"),
    "probation_episodes": FollowUp("end_date"),
    "victims": FollowUp("withdrawal_date", {"withdrew_support": "N", "withdrawal_stage": None}),
}
SURNAME = {
    "police_arrests": "surname",
    "cps_charging": "defendant_surname",
    "magistrates_cases": "last_name",
    "crown_court_cases": "surname",
    "prison_spells": "surname",
    "probation_episodes": "surname",
    "victims": "surname",
}


@dataclass(frozen=True)
class DeliveryRates:
    """How agencies deliver: shares of records late, corrected and withdrawn."""

    late: float = 0.05  # of a month's records, held back one or two months
    surname_fixed: float = 0.3  # of records with a mistyped surname, corrected later
    duplicate_withdrawn: float = 0.5  # of duplicate records, withdrawn later
    withdrawn: float = 0.002  # of other records, withdrawn later (recorded in error)


DELIVERY_RATES = DeliveryRates()


@dataclass
class DeliverySeries:
    """A base extract and monthly deliveries per source, with their ground truth.

    ``deliveries[period][source]`` holds the source's columns and ``delivery_action``;
    ``truth[period]`` which true person each delivered record belongs to (never read by the
    pipeline); ``new_persons[period]`` how many persons were first seen in that delivery.
    """

    cut_off: pd.Timestamp
    base: dict[str, pd.DataFrame]
    base_truth: pd.DataFrame
    periods: list[str]
    deliveries: dict[str, dict[str, pd.DataFrame]]
    truth: dict[str, pd.DataFrame]
    new_persons: dict[str, int]

    def manifest(self) -> dict[str, object]:
        """The base's cut-off and counts, and each delivery's counts by action."""
        return {
            "base": {
                "events_before": self.cut_off.date().isoformat(),
                "records": {source: len(frame) for source, frame in self.base.items()},
            },
            "deliveries": [
                {
                    "period": period,
                    "records": {
                        source: {
                            action: int((frame[DELIVERY_ACTION] == action).sum())
                            for action in ("add", "correct", "withdraw")
                        }
                        for source, frame in self.deliveries[period].items()
                    },
                    "new_persons": self.new_persons[period],
                }
                for period in self.periods
            ],
            "rates": asdict(DELIVERY_RATES),
        }


def _delivery_of(dates: pd.Series, cuts: np.ndarray) -> np.ndarray:
    """The first delivery whose cut is on or after each date (0 = base; NaT goes to the base;
    a date after the last cut gets ``len(cuts)``: not in the series)."""
    values = pd.to_datetime(dates).to_numpy(dtype="datetime64[ns]")
    index = np.searchsorted(cuts, values, side="left")
    return np.where(np.isnat(values), 0, index)


def _source_series(
    rng: np.random.Generator,
    source: str,
    frame: pd.DataFrame,
    person_of: pd.Series,
    true_surname: pd.Series | None,
    cuts: np.ndarray,
    rates: DeliveryRates,
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """One source's base rows and the rows of each delivery (1..N)."""
    n, last = len(frame), len(cuts) - 1
    record = frame.columns[0]
    ids = frame[record].astype(str)
    events = pd.to_datetime(frame[EVENT_DATE[source]]).to_numpy(dtype="datetime64[ns]")
    natural = _delivery_of(frame[EVENT_DATE[source]], cuts)
    # Held back: records of a month's events (the base's last month too), not older ones.
    recent = events > cuts[0] - np.timedelta64(31, "D")
    late = (natural < last) & recent & (rng.random(n) < rates.late)
    sent = np.minimum(natural + np.where(late, rng.integers(1, 3, n), 0), last)
    # A record of an event after the last delivery's month (a charging decision in 2025) has
    # not happened yet for the series: it is never sent.
    sent = np.where(natural > last, last + 1, sent)

    never = np.full(n, last + 1)
    follow_up = FOLLOW_UPS.get(source)
    known_at = never.copy()
    if follow_up is not None:
        dates = pd.to_datetime(frame[follow_up.date])
        # A later event beyond the last delivery is not known in the series at all.
        known_at = np.minimum(_delivery_of(dates, cuts), never)

    fixed_at = never.copy()
    if true_surname is not None:
        truth = true_surname.loc[person_of.loc[ids].to_numpy()].astype(str).to_numpy()
        if QUALITY[source].upper_case_surname:
            truth = np.char.upper(truth.astype(str)).astype(object)
        given = frame[SURNAME[source]].astype(str).str.strip().str.casefold().to_numpy()
        mistyped = given != pd.Series(truth).str.casefold().to_numpy()
        fix = mistyped & (sent < last) & (rng.random(n) < rates.surname_fixed)
        later = sent + 1 + np.floor(rng.random(n) * (last - sent)).astype(int)
        fixed_at = np.where(fix, later, never)
    else:
        truth = None

    duplicate = ids.str.endswith("D").to_numpy()
    share = np.where(duplicate, rates.duplicate_withdrawn, rates.withdrawn)
    withdraw = (sent < last) & (rng.random(n) < share)
    later = sent + 1 + np.floor(rng.random(n) * (last - sent)).astype(int)
    withdrawn_at = np.where(withdraw, later, never)

    def as_sent(rows: np.ndarray, at: int) -> pd.DataFrame:
        out = frame[rows].copy()
        if follow_up is not None:
            pending = known_at[rows] > at
            out.loc[pending, follow_up.date] = pd.NaT
            for column, value in follow_up.pending.items():
                if value is None:
                    out[column] = out[column].where(~pending)  # keeps the column's type
                else:
                    out[column] = out[column].astype(object)
                    out.loc[pending, column] = value
        if truth is not None:
            fixed = fixed_at[rows] <= at
            out[SURNAME[source]] = out[SURNAME[source]].astype(object)
            out.loc[fixed, SURNAME[source]] = truth[rows][fixed]
        return out

    base = as_sent(sent == 0, 0)
    deliveries = []
    for at in range(1, last + 1):
        adds = as_sent(sent == at, at).assign(**{DELIVERY_ACTION: "add"})
        still_held = (sent < at) & (withdrawn_at > at)
        corrected = still_held & ((known_at == at) | (fixed_at == at))
        corrections = as_sent(corrected, at).assign(**{DELIVERY_ACTION: "correct"})
        gone = frame.loc[(withdrawn_at == at) & (sent < at), [record]]
        withdrawals = gone.assign(**{DELIVERY_ACTION: "withdraw"})
        deliveries.append(
            pd.concat([adds, corrections, withdrawals], ignore_index=True)[
                [*frame.columns, DELIVERY_ACTION]
            ]
        )
    return base.reset_index(drop=True), deliveries


def make_deliveries(
    result: Simulation, deliveries: int, rates: DeliveryRates = DELIVERY_RATES
) -> DeliverySeries:
    """Split ``result`` into a base extract and ``deliveries`` monthly deliveries per source.

    The deliveries cover the last ``deliveries`` months of the simulated period; the base holds
    every record whose event came before them.
    """
    if not 1 <= deliveries <= MAX_DELIVERIES:
        raise SimulationError(
            f"deliveries must be between 1 and {MAX_DELIVERIES} months, not {deliveries}"
        )
    periods = pd.period_range(end=PERIOD_END, periods=deliveries, freq="M")
    cut_off = periods[0].start_time
    cuts = np.array(
        [cut_off - pd.Timedelta(days=1)] + [p.end_time.normalize() for p in periods],
        dtype="datetime64[ns]",
    )
    rng = np.random.default_rng([result.seed, 2])
    truth = result.ground_truth
    true_surname = (
        result.identities.set_index("person_id")["surname"]
        if result.identities is not None
        else None
    )
    labels = [str(p) for p in periods]
    base: dict[str, pd.DataFrame] = {}
    delivered: dict[str, dict[str, pd.DataFrame]] = {label: {} for label in labels}
    for source in SOURCES:
        person_of = truth[truth["source"] == source].set_index("record_id")["person_id"]
        base[source], monthly = _source_series(
            rng, source, result.extracts[source], person_of, true_surname, cuts, rates
        )
        for label, frame in zip(labels, monthly, strict=True):
            delivered[label][source] = frame

    def truth_of(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
        parts = []
        for source, frame in frames.items():
            ids = frame.iloc[:, 0].astype(str)
            person_of = truth[truth["source"] == source].set_index("record_id")["person_id"]
            parts.append(
                pd.DataFrame(
                    {
                        "source": source,
                        "record_id": ids.to_numpy(),
                        "person_id": person_of.loc[ids].to_numpy(),
                        **(
                            {DELIVERY_ACTION: frame[DELIVERY_ACTION].to_numpy()}
                            if DELIVERY_ACTION in frame
                            else {}
                        ),
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)

    base_truth = truth_of(base)
    seen = set(base_truth["person_id"])
    delivery_truth, new_persons = {}, {}
    for label in labels:
        delivery_truth[label] = truth_of(delivered[label])
        added = delivery_truth[label]
        people = set(added.loc[added[DELIVERY_ACTION] == "add", "person_id"])
        new_persons[label] = len(people - seen)
        seen |= people
    return DeliverySeries(
        cut_off=cut_off,
        base=base,
        base_truth=base_truth,
        periods=labels,
        deliveries=delivered,
        truth=delivery_truth,
        new_persons=new_persons,
    )


__all__ = ["DELIVERY_RATES", "DeliveryRates", "DeliverySeries", "make_deliveries"]

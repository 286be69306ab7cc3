"""Simulated journeys through the justice system: offence, arrest, charge, court, sentence,
custody and probation, victims and their attrition, and reoffending.

Cases are generated in generations, all cases of a generation at once (vectorised): every
offender's first case, then the reoffences that follow each outcome with a probability that
depends on the sentence, until the simulated period ends. The rates are plausible for England
and Wales but are inventions of the simulator, documented in ``JOURNEY_RATES``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from srs.pipeline.offences import OffenceList

PERIOD_START = pd.Timestamp("2019-01-01")
PERIOD_END = pd.Timestamp("2024-12-31")
SENTENCES = ("custody", "suspended", "community", "fine", "discharge")


@dataclass(frozen=True)
class JourneyRates:
    """The simulator's rates (documented in the README's simulator section)."""

    referred_to_cps: float = 0.78
    charged: float = 0.56
    out_of_court: float = 0.10
    victim_withdraws_before_charge: float = 0.22
    nfa_after_victim_withdrawal: float = 0.80
    victim_withdraws_at_court: float = 0.10
    either_way_to_crown: float = 0.18
    guilty_plea: float = 0.66
    convicted_at_trial: float = 0.55
    withdrawn_before_plea: float = 0.07
    remand: tuple[float, float, float] = (0.02, 0.10, 0.40)  # summary, either-way, indictable
    reoffend_after: tuple[tuple[str, float], ...] = (
        ("custody_short", 0.55),
        ("custody_long", 0.35),
        ("suspended", 0.32),
        ("community", 0.36),
        ("fine", 0.28),
        ("discharge", 0.22),
        ("not_convicted", 0.20),
    )
    victim_is_also_offender: float = 0.20
    max_generations: int = 10


JOURNEY_RATES = JourneyRates()
SENTENCE_BY_MODE = {  # custody, suspended, community, fine, discharge
    "summary": [0.05, 0.05, 0.20, 0.55, 0.15],
    "either_way": [0.25, 0.15, 0.25, 0.25, 0.10],
    "indictable": [0.62, 0.15, 0.13, 0.05, 0.05],
}
CUSTODY_MEDIAN_MONTHS = {"summary": 2.0, "either_way": 6.0, "indictable": 30.0}


def _days(rng: np.random.Generator, low: int, high: int, count: int) -> pd.TimedeltaIndex:
    return pd.to_timedelta(rng.integers(low, high + 1, count), unit="D")


def _pick(rng: np.random.Generator, probability: float | np.ndarray, count: int) -> np.ndarray:
    return rng.random(count) < probability


def _stage_outcomes(
    rng: np.random.Generator, cases: pd.DataFrame, offences: OffenceList, rates: JourneyRates
) -> pd.DataFrame:
    """Fill every stage of a batch of cases that have offender, offence and offence date."""
    n = len(cases)
    info = offences.table().set_index("offence_code")
    mode = info.loc[cases["offence_code"], "court_mode"].to_numpy()
    has_victim = info.loc[cases["offence_code"], "person_victim"].to_numpy().astype(bool)
    cases["court_mode"] = mode
    cases["has_victim"] = has_victim
    cases["arrest_date"] = cases["offence_date"] + _days(rng, 0, 21, n)

    # Victims may withdraw support before a charging decision, which usually ends the case.
    withdrew_early = has_victim & _pick(rng, rates.victim_withdraws_before_charge, n)
    referred = _pick(rng, rates.referred_to_cps, n)
    decision = np.where(_pick(rng, rates.charged, n), "charged", "nfa")
    decision = np.where(_pick(rng, rates.out_of_court, n), "out_of_court", decision)
    decision = np.where(
        withdrew_early & _pick(rng, rates.nfa_after_victim_withdrawal, n), "nfa", decision
    )
    cases["referred_to_cps"] = referred
    cases["charge_decision"] = np.where(referred, decision, None)
    cases["decision_date"] = cases["arrest_date"] + _days(rng, 1, 75, n)
    charged = referred & (decision == "charged")

    crown = charged & (
        (mode == "indictable") | ((mode == "either_way") & _pick(rng, rates.either_way_to_crown, n))
    )
    cases["charged"] = charged
    cases["crown_court"] = crown
    cases["first_hearing_date"] = cases["decision_date"] + _days(rng, 7, 42, n)
    cases["committal_date"] = cases["first_hearing_date"] + _days(rng, 14, 28, n)

    withdrew_court = (
        charged & has_victim & ~withdrew_early & _pick(rng, rates.victim_withdraws_at_court, n)
    )
    withdrawn = charged & (
        _pick(rng, rates.withdrawn_before_plea, n) | (withdrew_court & _pick(rng, 0.7, n))
    )
    guilty_plea = charged & ~withdrawn & _pick(rng, rates.guilty_plea, n)
    trial = charged & ~withdrawn & ~guilty_plea
    convicted = guilty_plea | (trial & _pick(rng, rates.convicted_at_trial, n))
    cases["plea"] = np.select([guilty_plea, trial], ["guilty", "not_guilty"], default=None)
    cases["court_outcome"] = np.select(
        [~charged, withdrawn, convicted], [None, "withdrawn", "convicted"], default="acquitted"
    )
    start = np.where(crown, cases["committal_date"], cases["first_hearing_date"])
    lag = np.where(
        crown,
        np.where(guilty_plea, rng.integers(30, 91, n), rng.integers(150, 400, n)),
        np.where(guilty_plea, rng.integers(0, 15, n), rng.integers(45, 180, n)),
    )
    cases["outcome_date"] = pd.to_datetime(start) + pd.to_timedelta(lag, unit="D")

    sentence = np.full(n, None, dtype=object)
    for court_mode, probabilities in SENTENCE_BY_MODE.items():
        chosen = convicted & (mode == court_mode)
        sentence[chosen] = rng.choice(SENTENCES, chosen.sum(), p=probabilities)
    cases["sentence_type"] = sentence
    median = np.array([CUSTODY_MEDIAN_MONTHS[m] for m in mode])
    custody_months = np.clip(np.round(median * rng.lognormal(0, 0.6, n), 1), 0.5, 360)
    order_months = rng.choice([6, 12, 18, 24, 36], n).astype(float)
    cases["sentence_months"] = np.select(
        [sentence == "custody", np.isin(sentence, ["suspended", "community"])],
        [custody_months, order_months],
        default=np.nan,
    )

    remand_p = np.select(
        [mode == "summary", mode == "either_way"],
        [rates.remand[0], rates.remand[1]],
        default=rates.remand[2],
    )
    remanded = charged & ~withdrawn & _pick(rng, remand_p, n)
    cases["remanded"] = remanded
    cases["remand_start"] = cases["first_hearing_date"]
    cases["remand_end"] = cases["outcome_date"]

    custody = sentence == "custody"
    served = pd.to_timedelta(np.round(cases["sentence_months"].fillna(0) * 30.44 / 2), unit="D")
    remand_days = (cases["remand_end"] - cases["remand_start"]).where(remanded, pd.Timedelta(0))
    release = cases["outcome_date"] + (served - remand_days).clip(lower=pd.Timedelta(days=1))
    cases["release_date"] = release.where(custody)
    licence_end = cases["outcome_date"] + pd.to_timedelta(
        np.round(cases["sentence_months"].fillna(0) * 30.44), unit="D"
    )
    cases["licence_end"] = np.maximum(licence_end, release + pd.Timedelta(days=365)).where(custody)

    # Victims' attrition, stage by stage.
    cases["victim_withdrawal_stage"] = np.select(
        [withdrew_early, withdrew_court], ["before_charge", "at_court"], default=None
    )
    cases["victim_withdrawal_stage"] = cases["victim_withdrawal_stage"].where(has_victim)
    return cases


def _reoffending_probability(cases: pd.DataFrame, rates: JourneyRates) -> np.ndarray:
    table = dict(rates.reoffend_after)
    sentence = cases["sentence_type"].to_numpy()
    months = cases["sentence_months"].to_numpy()
    return np.select(
        [
            (sentence == "custody") & (months < 12),
            sentence == "custody",
            sentence == "suspended",
            sentence == "community",
            sentence == "fine",
            sentence == "discharge",
        ],
        [
            table["custody_short"],
            table["custody_long"],
            table["suspended"],
            table["community"],
            table["fine"],
            table["discharge"],
        ],
        default=table["not_convicted"],
    )


def simulate_cases(
    rng: np.random.Generator,
    offender_ids: np.ndarray,
    victim_pool: np.ndarray,
    offences: OffenceList,
    rates: JourneyRates = JOURNEY_RATES,
) -> pd.DataFrame:
    """Every case of every offender over the period, with all stages and its victim (if any)."""
    codes = np.array(offences.codes)
    weights = np.array([o.weight for o in offences.offences])
    weights = weights / weights.sum()
    span = (PERIOD_END - PERIOD_START).days
    batch = pd.DataFrame(
        {
            "offender_id": offender_ids,
            "offence_date": PERIOD_START
            + pd.to_timedelta(rng.integers(0, span - 365, len(offender_ids)), unit="D"),
        }
    )
    generations = []
    for generation in range(rates.max_generations):
        if batch.empty:
            break
        batch["generation"] = generation
        batch["offence_code"] = rng.choice(codes, len(batch), p=weights)
        batch = _stage_outcomes(rng, batch, offences, rates)
        generations.append(batch)
        # Reoffending: at risk from release (custody) or from the outcome or decision.
        at_risk_from = batch["release_date"].fillna(
            batch["outcome_date"].where(batch["charged"], batch["decision_date"])
        )
        reoffends = _pick(rng, _reoffending_probability(batch, rates), len(batch))
        next_date = at_risk_from + pd.to_timedelta(
            rng.exponential(240, len(batch)).round(), unit="D"
        )
        keep = reoffends & (next_date <= PERIOD_END - pd.Timedelta(days=30))
        batch = pd.DataFrame(
            {
                "offender_id": batch["offender_id"][keep].to_numpy(),
                "offence_date": next_date[keep].to_numpy(),
            }
        )
    cases = pd.concat(generations, ignore_index=True)
    cases = cases.sort_values(["offence_date", "offender_id"], kind="stable").reset_index(drop=True)
    cases.insert(0, "case_id", np.arange(len(cases)))

    # A victim for each case with a personal victim; some victims are offenders themselves.
    n = len(cases)
    from_offenders = _pick(rng, rates.victim_is_also_offender, n)
    victim = np.where(from_offenders, rng.choice(offender_ids, n), rng.choice(victim_pool, n))
    victim = np.where(victim == cases["offender_id"].to_numpy(), rng.choice(victim_pool, n), victim)
    cases["victim_id"] = pd.array(np.where(cases["has_victim"], victim, -1), dtype="Int64")
    cases.loc[~cases["has_victim"], "victim_id"] = pd.NA
    return cases

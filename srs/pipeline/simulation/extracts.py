"""Simulated agency extracts: each source's own columns, formats and identifier quality.

From the simulated persons and cases this builds the seven source extracts (police arrests,
CPS charging, magistrates' and Crown Court cases, prison spells, probation episodes, victims),
each with its own column names, date format and rates of typing errors, nicknames, swapped
day/month, missing or stale postcodes, missing police national numbers and duplicate rows; and
the ground truth (which true person each record belongs to), which the pipeline never reads.
The hard profile (``HARD_NOISE``) adds more errors of more kinds on top, from its own random
stream, so the documented profile's output for a seed never changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from srs.pipeline.linked_datasets import JUSTICE_SOURCES
from srs.pipeline.simulation.identities import (
    apply_nicknames,
    apply_typos,
    blank,
    dob_digit_typo,
    pad,
    placeholder,
    postcode_typo,
    record_names_as_systems_do,
    swap_day_month,
    swap_names,
    typo,
)
from srs.pipeline.simulation.journeys import PERIOD_END

SOURCES = JUSTICE_SOURCES


@dataclass(frozen=True)
class IdentifierQuality:
    """How good one source's identifiers are (shares of its records)."""

    pnc_present: float
    forename_typo: float
    surname_typo: float
    nickname: float
    day_month_swap: float
    dob_missing: float
    postcode_missing: float
    postcode_stale: float
    duplicate_rows: float
    upper_case_surname: bool
    date_format: str


QUALITY = {
    "police_arrests": IdentifierQuality(
        0.95, 0.01, 0.01, 0.03, 0.005, 0.0, 0.03, 0.05, 0.010, False, "%Y-%m-%d"
    ),
    "cps_charging": IdentifierQuality(
        0.60, 0.02, 0.02, 0.05, 0.010, 0.0, 0.08, 0.10, 0.005, False, "%d/%m/%Y"
    ),
    "magistrates_cases": IdentifierQuality(
        0.50, 0.02, 0.02, 0.05, 0.010, 0.0, 0.10, 0.15, 0.010, True, "%Y-%m-%d"
    ),
    "crown_court_cases": IdentifierQuality(
        0.70, 0.015, 0.015, 0.04, 0.010, 0.0, 0.08, 0.12, 0.005, True, "%d/%m/%Y"
    ),
    "prison_spells": IdentifierQuality(
        0.85, 0.01, 0.01, 0.02, 0.005, 0.0, 1.0, 0.0, 0.010, False, "%Y-%m-%d"
    ),
    "probation_episodes": IdentifierQuality(
        0.70, 0.015, 0.015, 0.06, 0.010, 0.0, 0.05, 0.10, 0.010, False, "%Y-%m-%d"
    ),
    "victims": IdentifierQuality(
        0.0, 0.03, 0.03, 0.08, 0.015, 0.10, 0.05, 0.05, 0.010, False, "%d/%m/%Y"
    ),
}


@dataclass(frozen=True)
class HardNoise:
    """The hard profile's errors, added to every source's documented ones (shares of records).

    Names of persons: ``accented`` of forenames and of surnames have letters outside A-Z and
    ``double_barrelled`` of surnames two parts; systems record them as they can (accents
    dropped, a space for the hyphen, one part only).
    """

    accented: float = 0.05
    double_barrelled: float = 0.05
    name_swap: float = 0.03  # forename and surname in each other's field
    forename_typo: float = 0.03
    surname_typo: float = 0.03
    dob_digit_typo: float = 0.03  # one digit of the date of birth wrong
    several_errors: float = 0.04  # two or three of: name typos, DOB digit, postcode letter
    pnc_missing: float = 0.10
    dob_missing: float = 0.02
    postcode_missing: float = 0.05
    name_placeholder: float = 0.01  # UNKNOWN, N/K, ...
    placeholder: float = 0.02  # NFA / ZZ99 3VZ postcodes, 0 PNCs, U sex, 1900-01-01 births
    padded: float = 0.05  # spaces around, or letter case changed


HARD_NOISE = HardNoise()
NOISE_PROFILES = ("documented", "hard")


@dataclass(frozen=True)
class HardProfile:
    """The hard profile at work: its own random stream, its rates, and every person's true
    names (some non-ASCII or double-barrelled), ``forename`` and ``surname`` by person_id."""

    rng: np.random.Generator
    noise: HardNoise
    names: pd.DataFrame


def harden(rng: np.random.Generator, ids: dict[str, object], noise: HardNoise) -> dict[str, object]:
    """The identifying columns of a batch of records with the hard profile's errors added."""
    out = dict(ids)
    forename = record_names_as_systems_do(rng, np.asarray(out["forename"], dtype=object))
    surname = record_names_as_systems_do(rng, np.asarray(out["surname"], dtype=object))
    forename, surname = swap_names(rng, forename, surname, noise.name_swap)
    forename = apply_typos(rng, forename, noise.forename_typo)
    surname = apply_typos(rng, surname, noise.surname_typo)
    dob = np.asarray(out["date_of_birth"], dtype=object).copy()
    postcode = np.asarray(out["postcode"], dtype=object).copy()
    for index in np.flatnonzero(rng.random(len(dob)) < noise.dob_digit_typo):
        if isinstance(dob[index], pd.Timestamp):
            dob[index] = dob_digit_typo(rng, dob[index])
    for index in np.flatnonzero(rng.random(len(dob)) < noise.several_errors):
        for kind in rng.choice(4, int(rng.integers(2, 4)), replace=False):
            if kind == 0 and isinstance(forename[index], str):
                forename[index] = typo(rng, forename[index])
            elif kind == 1 and isinstance(surname[index], str):
                surname[index] = typo(rng, surname[index])
            elif kind == 2 and isinstance(dob[index], pd.Timestamp):
                dob[index] = dob_digit_typo(rng, dob[index])
            elif kind == 3 and isinstance(postcode[index], str):
                postcode[index] = postcode_typo(rng, postcode[index])
    out["forename"] = pad(
        rng, placeholder(rng, forename, "forename", noise.name_placeholder), noise.padded
    )
    out["surname"] = pad(
        rng, placeholder(rng, surname, "surname", noise.name_placeholder), noise.padded
    )
    dob = blank(rng, dob, noise.dob_missing)
    out["date_of_birth"] = placeholder(rng, dob, "date_of_birth", noise.placeholder)
    postcode = blank(rng, postcode, noise.postcode_missing)
    postcode = placeholder(rng, postcode, "postcode", noise.placeholder)
    out["postcode"] = pad(rng, postcode, noise.padded)
    pnc = blank(rng, np.asarray(out["pnc"], dtype=object), noise.pnc_missing)
    present = np.array([isinstance(v, str) for v in pnc])
    pnc[present] = placeholder(rng, pnc[present], "pnc", noise.placeholder)
    out["pnc"] = pad(rng, pnc, noise.padded)
    out["sex"] = placeholder(rng, np.asarray(out["sex"], dtype=object), "sex", noise.placeholder)
    return out


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    return (prefix + pd.Series(numbers).astype(str).str.zfill(width)).to_numpy(dtype=object)


def _identities(
    rng: np.random.Generator,
    persons: pd.DataFrame,
    person_ids: np.ndarray,
    at: pd.Series,
    quality: IdentifierQuality,
    hard: HardProfile | None = None,
) -> dict[str, object]:
    """The identifying columns of a batch of records, as that source would hold them."""
    people = persons.loc[person_ids]
    forename = apply_nicknames(rng, people["forename"].to_numpy(dtype=object), quality.nickname)
    forename = apply_typos(rng, forename, quality.forename_typo)
    surname = apply_typos(rng, people["surname"].to_numpy(dtype=object), quality.surname_typo)
    if quality.upper_case_surname:
        surname = np.array([s.upper() for s in surname], dtype=object)
    dob = swap_day_month(
        rng, people["date_of_birth"].reset_index(drop=True), quality.day_month_swap
    )
    at = pd.Series(at).reset_index(drop=True)
    moved = people["moved_on"].reset_index(drop=True)
    current = np.where(
        moved.notna() & (at >= moved), people["postcode"], people["previous_postcode"]
    )
    current = np.where(pd.isna(current), people["postcode"], current)
    other = np.where(
        pd.isna(people["previous_postcode"]), people["postcode"], people["previous_postcode"]
    )
    stale = rng.random(len(people)) < quality.postcode_stale
    postcode = np.where(stale, other, current).astype(object)
    ids = {
        "pnc": blank(rng, people["pnc"].to_numpy(dtype=object), 1 - quality.pnc_present),
        "forename": forename,
        "surname": surname,
        "sex": people["sex"].to_numpy(dtype=object),
        "date_of_birth": blank(rng, dob.to_numpy(dtype=object), quality.dob_missing),
        "postcode": blank(rng, postcode, quality.postcode_missing),
    }
    if hard is None:
        return ids
    # The hard profile draws from its own stream and the documented draws above are made on
    # the population's usual names, so they stay the same. A person whose true name is
    # unusual has it recorded instead (the hard errors then apply to it).
    true = hard.names.loc[person_ids]
    for role in ("forename", "surname"):
        given = true[role].to_numpy(dtype=object)
        unusual = given != people[role].to_numpy(dtype=object)
        if role == "surname" and quality.upper_case_surname:
            given = np.array([name.upper() for name in given], dtype=object)
        recorded = np.asarray(ids[role], dtype=object).copy()
        recorded[unusual] = given[unusual]
        ids[role] = recorded
    return harden(hard.rng, ids, hard.noise)


def _until_extract(dates: pd.Series) -> pd.Series:
    # Events after the extraction date have not happened yet: their fields are empty.
    return dates.where(dates <= PERIOD_END)


def build_extracts(
    rng: np.random.Generator,
    persons: pd.DataFrame,
    cases: pd.DataFrame,
    hard: HardProfile | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The seven source extracts (typed frames) and the ground truth.

    ``hard``: the hard profile's errors, added to each source's (``persons`` keeps the usual
    names; ``hard.names`` the true ones).
    """
    persons = persons.set_index("person_id", drop=False)
    extracts: dict[str, pd.DataFrame] = {}
    truth: list[pd.DataFrame] = []

    def emit(
        source: str,
        record_column: str,
        frame: pd.DataFrame,
        person_ids: np.ndarray,
        at: pd.Series,
        layout: dict[str, str],
    ) -> None:
        quality = QUALITY[source]
        at = pd.Series(at).reset_index(drop=True)  # aligned with the frame's rows
        ids = _identities(rng, persons, person_ids, at, quality, hard)
        for column, role in layout.items():
            frame[column] = ids[role]
        frame["_person_id"] = person_ids
        # Duplicate records: the same event keyed twice, with its own keying errors.
        dupes = frame[rng.random(len(frame)) < quality.duplicate_rows].copy()
        if len(dupes):
            again = _identities(
                rng, persons, dupes["_person_id"].to_numpy(), at[dupes.index], quality, hard
            )
            for column, role in layout.items():
                dupes[column] = again[role]
            dupes[record_column] = dupes[record_column].astype(str) + "D"
            frame = pd.concat([frame, dupes], ignore_index=True)
        truth.append(
            pd.DataFrame(
                {
                    "source": source,
                    "record_id": frame[record_column].astype(str),
                    "person_id": frame["_person_id"].to_numpy(),
                }
            )
        )
        extracts[source] = frame.drop(columns="_person_id").reset_index(drop=True)

    n = len(cases)
    crime_ref = _ids("CR", cases["case_id"].to_numpy(), 9)

    police = pd.DataFrame({"arrest_id": _ids("A", np.arange(n), 9), "crime_ref": crime_ref})
    emit(
        "police_arrests",
        "arrest_id",
        police,
        cases["offender_id"].to_numpy(),
        cases["arrest_date"],
        {
            "pnc_id": "pnc",
            "forename": "forename",
            "surname": "surname",
            "sex": "sex",
            "date_of_birth": "date_of_birth",
            "postcode": "postcode",
        },
    )
    extracts["police_arrests"] = _attach(
        extracts["police_arrests"],
        "crime_ref",
        cases.assign(crime_ref=crime_ref),
        {
            "offence_code": "offence_code",
            "offence_date": "offence_date",
            "arrest_date": "arrest_date",
            "force_code": "force_code",
        },
    )

    referred = cases[cases["referred_to_cps"]]
    cps = pd.DataFrame(
        {
            "cps_urn": _ids("U", referred["case_id"].to_numpy(), 9),
            "crime_ref": crime_ref[referred.index],
        }
    )
    emit(
        "cps_charging",
        "cps_urn",
        cps,
        referred["offender_id"].to_numpy(),
        referred["decision_date"],
        {
            "pnc_id": "pnc",
            "defendant_forename": "forename",
            "defendant_surname": "surname",
            "defendant_dob": "date_of_birth",
            "defendant_postcode": "postcode",
        },
    )
    extracts["cps_charging"] = _attach(
        extracts["cps_charging"],
        "crime_ref",
        cases.assign(crime_ref=crime_ref),
        {
            "offence_code": "offence_code",
            "decision": "charge_decision",
            "decision_date": "decision_date",
        },
    )

    charged = cases[cases["charged"] & (cases["first_hearing_date"] <= PERIOD_END)]
    mc = pd.DataFrame(
        {
            "mc_case_no": _ids("MC", charged["case_id"].to_numpy(), 8),
            "cps_urn": _ids("U", charged["case_id"].to_numpy(), 9),
        }
    )
    emit(
        "magistrates_cases",
        "mc_case_no",
        mc,
        charged["offender_id"].to_numpy(),
        charged["first_hearing_date"],
        {
            "pnc_id": "pnc",
            "first_name": "forename",
            "last_name": "surname",
            "sex": "sex",
            "dob": "date_of_birth",
            "address_postcode": "postcode",
        },
    )
    magistrates = cases.assign(
        cps_urn=_ids("U", cases["case_id"].to_numpy(), 9),
        mc_outcome=np.where(cases["crown_court"], "sent_to_crown", cases["court_outcome"]),
        mc_outcome_date=np.where(
            cases["crown_court"], cases["committal_date"], cases["outcome_date"]
        ),
    )
    magistrates["mc_outcome_date"] = _until_extract(pd.to_datetime(magistrates["mc_outcome_date"]))
    done = magistrates["mc_outcome_date"].notna()
    magistrates["mc_outcome"] = magistrates["mc_outcome"].where(done)
    magistrates["mc_plea"] = magistrates["plea"].where(~magistrates["crown_court"] & done)
    for column in ("sentence_type", "sentence_months"):
        magistrates[f"mc_{column}"] = magistrates[column].where(~magistrates["crown_court"] & done)
    magistrates["remanded_in_custody"] = np.where(magistrates["remanded"], "Y", "N")
    extracts["magistrates_cases"] = _attach(
        extracts["magistrates_cases"],
        "cps_urn",
        magistrates,
        {
            "offence_code": "offence_code",
            "first_hearing_date": "first_hearing_date",
            "plea": "mc_plea",
            "outcome": "mc_outcome",
            "outcome_date": "mc_outcome_date",
            "sentence_type": "mc_sentence_type",
            "sentence_months": "mc_sentence_months",
            "remanded_in_custody": "remanded_in_custody",
        },
    )

    crown = cases[cases["crown_court"] & (cases["committal_date"] <= PERIOD_END)]
    cc = pd.DataFrame(
        {
            "cc_case_no": _ids("T", crown["case_id"].to_numpy(), 8),
            "mc_case_no": _ids("MC", crown["case_id"].to_numpy(), 8),
        }
    )
    emit(
        "crown_court_cases",
        "cc_case_no",
        cc,
        crown["offender_id"].to_numpy(),
        crown["committal_date"],
        {
            "pnc_id": "pnc",
            "forename": "forename",
            "surname": "surname",
            "sex": "sex",
            "date_of_birth": "date_of_birth",
            "postcode": "postcode",
        },
    )
    crown_view = cases.assign(mc_case_no=_ids("MC", cases["case_id"].to_numpy(), 8))
    crown_view["verdict_date"] = _until_extract(crown_view["outcome_date"])
    done = crown_view["verdict_date"].notna()
    crown_view["verdict"] = crown_view["court_outcome"].where(done)
    crown_view["cc_plea"] = crown_view["plea"].where(done)
    crown_view["cc_sentence_type"] = crown_view["sentence_type"].where(done)
    crown_view["cc_sentence_months"] = crown_view["sentence_months"].where(done)
    extracts["crown_court_cases"] = _attach(
        extracts["crown_court_cases"],
        "mc_case_no",
        crown_view,
        {
            "offence_code": "offence_code",
            "committal_date": "committal_date",
            "plea": "cc_plea",
            "verdict": "verdict",
            "verdict_date": "verdict_date",
            "sentence_type": "cc_sentence_type",
            "sentence_months": "cc_sentence_months",
        },
    )

    court_ref = np.where(
        cases["crown_court"],
        _ids("T", cases["case_id"].to_numpy(), 8),
        _ids("MC", cases["case_id"].to_numpy(), 8),
    )
    remand = cases[cases["remanded"] & (cases["remand_start"] <= PERIOD_END)]
    sentenced = cases[(cases["sentence_type"] == "custody") & (cases["outcome_date"] <= PERIOD_END)]
    spells = (
        pd.concat(
            [
                pd.DataFrame(
                    {
                        "case_id": remand["case_id"],
                        "offender_id": remand["offender_id"],
                        "spell_type": "remand",
                        "reception_date": remand["remand_start"],
                        "release_date": _until_extract(remand["remand_end"]),
                        "court_case_ref": court_ref[remand.index],
                    }
                ),
                pd.DataFrame(
                    {
                        "case_id": sentenced["case_id"],
                        "offender_id": sentenced["offender_id"],
                        "spell_type": "sentenced",
                        "reception_date": sentenced["outcome_date"],
                        "release_date": _until_extract(sentenced["release_date"]),
                        "court_case_ref": court_ref[sentenced.index],
                    }
                ),
            ]
        )
        .sort_values("reception_date", kind="stable")
        .reset_index(drop=True)
    )
    prison = pd.DataFrame(
        {
            "spell_id": _ids("S", np.arange(len(spells)), 9),
            "prison_number": persons.loc[spells["offender_id"], "prison_number"].to_numpy(),
        }
    )
    emit(
        "prison_spells",
        "spell_id",
        prison,
        spells["offender_id"].to_numpy(),
        spells["reception_date"],
        {
            "pnc_id": "pnc",
            "forename": "forename",
            "surname": "surname",
            "sex": "sex",
            "date_of_birth": "date_of_birth",
        },
    )
    extracts["prison_spells"] = _attach_rows(
        extracts["prison_spells"],
        spells,
        ["court_case_ref", "spell_type", "reception_date", "release_date"],
    )

    community = cases[
        cases["sentence_type"].isin(["community", "suspended"])
        & (cases["outcome_date"] <= PERIOD_END)
    ]
    licences = cases[(cases["sentence_type"] == "custody") & (cases["release_date"] <= PERIOD_END)]
    episodes = (
        pd.concat(
            [
                pd.DataFrame(
                    {
                        "offender_id": community["offender_id"],
                        "court_case_ref": court_ref[community.index],
                        "order_type": np.where(
                            community["sentence_type"] == "community",
                            "community_order",
                            "suspended_sentence_order",
                        ),
                        "start_date": community["outcome_date"],
                        "end_date": _until_extract(
                            community["outcome_date"]
                            + pd.to_timedelta(
                                np.round(community["sentence_months"] * 30.44), unit="D"
                            )
                        ),
                    }
                ),
                pd.DataFrame(
                    {
                        "offender_id": licences["offender_id"],
                        "court_case_ref": court_ref[licences.index],
                        "order_type": "licence",
                        "start_date": licences["release_date"],
                        "end_date": _until_extract(licences["licence_end"]),
                    }
                ),
            ]
        )
        .sort_values("start_date", kind="stable")
        .reset_index(drop=True)
    )
    probation = pd.DataFrame(
        {
            "episode_id": _ids("E", np.arange(len(episodes)), 9),
            "crn": persons.loc[episodes["offender_id"], "crn"].to_numpy(),
        }
    )
    emit(
        "probation_episodes",
        "episode_id",
        probation,
        episodes["offender_id"].to_numpy(),
        episodes["start_date"],
        {
            "pnc_id": "pnc",
            "first_name": "forename",
            "surname": "surname",
            "date_of_birth": "date_of_birth",
            "postcode": "postcode",
        },
    )
    extracts["probation_episodes"] = _attach_rows(
        extracts["probation_episodes"],
        episodes,
        ["court_case_ref", "order_type", "start_date", "end_date"],
    )

    victim_cases = cases[cases["has_victim"]]
    withdrawal_date = np.select(
        [
            victim_cases["victim_withdrawal_stage"] == "before_charge",
            victim_cases["victim_withdrawal_stage"] == "at_court",
        ],
        [victim_cases["arrest_date"] + pd.Timedelta(days=7), victim_cases["first_hearing_date"]],
        default=pd.NaT,
    )
    victim_view = pd.DataFrame(
        {
            "crime_ref": crime_ref[victim_cases.index],
            "contact_date": (victim_cases["offence_date"] + pd.Timedelta(days=1)).to_numpy(),
            "withdrew_support": np.where(victim_cases["victim_withdrawal_stage"].notna(), "Y", "N"),
            "withdrawal_stage": victim_cases["victim_withdrawal_stage"].to_numpy(),
            "withdrawal_date": pd.to_datetime(withdrawal_date),
        }
    )
    victims = pd.DataFrame(
        {
            "victim_id": _ids("V", victim_cases["case_id"].to_numpy(), 9),
            "crime_ref": victim_view["crime_ref"].to_numpy(),
        }
    )
    emit(
        "victims",
        "victim_id",
        victims,
        victim_cases["victim_id"].to_numpy(dtype=np.int64),
        victim_view["contact_date"],
        {
            "forename": "forename",
            "surname": "surname",
            "sex": "sex",
            "date_of_birth": "date_of_birth",
            "postcode": "postcode",
        },
    )
    extracts["victims"] = _attach(
        extracts["victims"],
        "crime_ref",
        victim_view,
        {
            "contact_date": "contact_date",
            "withdrew_support": "withdrew_support",
            "withdrawal_stage": "withdrawal_stage",
            "withdrawal_date": "withdrawal_date",
        },
    )
    return extracts, pd.concat(truth, ignore_index=True)


def _attach(
    frame: pd.DataFrame, key: str, source: pd.DataFrame, columns: dict[str, str]
) -> pd.DataFrame:
    """Add case-level columns to a source's rows (and their duplicates) through a case reference."""
    lookup = source.drop_duplicates(key).set_index(key)
    for target, column in columns.items():
        frame[target] = lookup.loc[frame[key], column].to_numpy()
    return frame


def _attach_rows(frame: pd.DataFrame, rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Add row-level columns to a source whose duplicates were appended after its rows."""
    original = len(rows)
    # Duplicates are copies of earlier rows; find each one's original by its record id.
    record = frame.columns[0]
    base_ids = frame[record].astype(str).str.rstrip("D")
    index_of = pd.Series(np.arange(original), index=frame[record].iloc[:original].astype(str))
    position = index_of.loc[base_ids].to_numpy()
    for column in columns:
        frame[column] = rows[column].to_numpy()[position]
    return frame


def quality_table() -> dict[str, dict[str, object]]:
    """The identifier-quality settings of every source, for the simulation manifest."""
    return {source: asdict(quality) for source, quality in QUALITY.items()}

"""The research questions the environment exists for, computed on linked tables (real or
synthetic) and compared side by side within a tolerance in percentage points.

Each question is a pure function of one linked table that returns percentages indexed by group,
so the same code answers it on the vault data, on a replica and on the open-data export:

>>> victim_attrition_by_stage(tables["linked/victims"])            # doctest: +SKIP
before_charge    21.6
at_court          3.9
any_stage        25.5
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthetic.errors import SyntheticError

WITHDRAWAL_STAGES = ("before_charge", "at_court")
COLUMNS = ("question", "group", "real", "synthetic", "difference", "within_tolerance")


class ResearchQuestionError(SyntheticError):
    """A linked table lacks what a research question needs; the message names the columns."""


def _require(frame: pd.DataFrame, dataset: str, columns: Sequence[str]) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ResearchQuestionError(
            f"{dataset} lacks column(s) {', '.join(missing)} needed for this research question; "
            "pass the linked table with its full schema (see its data dictionary)"
        )


def _percentage(numerator: float, denominator: float) -> float:
    return float("nan") if denominator == 0 else 100.0 * numerator / denominator


def victim_attrition_by_stage(victims: pd.DataFrame) -> pd.Series:
    """Victim attrition: the percentage of all victims in ``linked/victims`` who withdrew their
    support, at each stage (``before_charge``, ``at_court``) and at any stage.

    The denominator is every victim row; a withdrawal without a recorded stage counts towards
    ``any_stage`` only.
    """
    _require(victims, "linked/victims", ("withdrew_support", "withdrawal_stage"))
    withdrew = victims["withdrew_support"].fillna(False).astype(bool)
    stage = victims["withdrawal_stage"].astype("string")
    total = len(victims)
    rates = {s: _percentage(int((withdrew & (stage == s)).sum()), total) for s in WITHDRAWAL_STAGES}
    rates["any_stage"] = _percentage(int(withdrew.sum()), total)
    return pd.Series(rates, name="victim attrition (% of victims)", dtype="float64")


def reoffending_by_sentence_type(
    reoffending: pd.DataFrame, *, complete_follow_up_only: bool = True
) -> pd.Series:
    """Reoffending rate: the percentage of index convictions in ``linked/reoffending`` followed
    by a new offence within a year, by sentence type, and over all sentence types (``all``).

    Only index dates with a full year of follow-up before the extract date count (the usual
    proven-reoffending rule) unless ``complete_follow_up_only`` is False.
    """
    _require(
        reoffending, "linked/reoffending", ("reoffended", "sentence_type", "follow_up_complete")
    )
    frame = reoffending
    if complete_follow_up_only:
        frame = frame[frame["follow_up_complete"].fillna(False).astype(bool)]
    reoffended = frame["reoffended"].fillna(False).astype(bool)
    by_type = reoffended.groupby(frame["sentence_type"].astype("string"), dropna=True).mean() * 100
    rates = by_type.astype("float64").sort_index()
    rates["all"] = _percentage(int(reoffended.sum()), len(frame))
    rates.name = "reoffending within a year (% of index convictions)"
    rates.index.name = None
    return rates


def _remand_spells(journeys: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    remanded = journeys["remanded"].fillna(False).astype(bool)
    # A remand runs from the first hearing (else, counting back, from the outcome) for
    # remand_days days; journeys keep the length, not the dates, of the remand spell.
    days = pd.to_timedelta(pd.to_numeric(journeys["remand_days"], errors="coerce"), unit="D")
    start = journeys["first_hearing_date"].where(
        journeys["first_hearing_date"].notna(), journeys["outcome_date"] - days
    )
    keep = remanded & start.notna() & days.notna()
    return start[keep], (start + days)[keep]


def census_dates_for(journeys: pd.DataFrame) -> list[pd.Timestamp]:
    """Quarter ends from the first to the last day anyone in ``journeys`` entered custody
    (remand or sentenced): the default census dates of :func:`remand_share`."""
    _require(journeys, "linked/journeys", ("custody_start",))
    remand_start, _ = _remand_spells(journeys)
    starts = pd.concat([remand_start, journeys["custody_start"].dropna()])
    if starts.empty:
        return []
    return list(pd.date_range(starts.min(), starts.max(), freq="QE"))


def remand_share(
    journeys: pd.DataFrame, census_dates: Sequence[pd.Timestamp] | None = None
) -> pd.Series:
    """Remand share of the prison population: on each census date, the people on remand
    divided by the people in custody (on remand or serving a sentence), pooled over the census
    dates (total remand headcount / total custody headcount), as a percentage.

    A person is on remand on a date inside ``[remand start, remand start + remand_days)``, where
    the remand starts at ``first_hearing_date``; in sentenced custody from ``custody_start`` to
    ``custody_release`` (still inside when the release is empty). Census dates default to the
    quarter ends of the data (:func:`census_dates_for`); pass the real data's dates when
    comparing a replica so both sides are counted on the same days.
    """
    _require(
        journeys,
        "linked/journeys",
        (
            "person_key",
            "remanded",
            "remand_days",
            "first_hearing_date",
            "outcome_date",
            "custody_start",
            "custody_release",
        ),
    )
    dates = census_dates_for(journeys) if census_dates is None else list(census_dates)
    remand_start, remand_end = _remand_spells(journeys)
    remand_people = journeys.loc[remand_start.index, "person_key"]
    sentenced = journeys[journeys["custody_start"].notna()]
    on_remand = in_custody = 0
    for day in pd.to_datetime(pd.Series(dates, dtype="datetime64[ns]")):
        remand_today = set(remand_people[(remand_start <= day) & (remand_end > day)].dropna())
        release = sentenced["custody_release"]
        serving = (sentenced["custody_start"] <= day) & (release.isna() | (release > day))
        sentenced_today = set(sentenced.loc[serving, "person_key"].dropna())
        # Someone remanded on a new case while serving a sentence counts once, as sentenced.
        remand_today -= sentenced_today
        on_remand += len(remand_today)
        in_custody += len(remand_today) + len(sentenced_today)
    return pd.Series(
        {"prison_population": _percentage(on_remand, in_custody)},
        name="remand share (% of people in custody on census dates)",
        dtype="float64",
    )


@dataclass(frozen=True)
class ResearchQuestion:
    """One question: its name, the linked table it reads and what it measures."""

    name: str
    dataset: str
    description: str


RESEARCH_QUESTIONS = (
    ResearchQuestion(
        "victim_attrition_by_stage",
        "linked/victims",
        "Victims who withdrew support, % of all victims, by stage",
    ),
    ResearchQuestion(
        "reoffending_by_sentence_type",
        "linked/reoffending",
        "Index convictions followed by a new offence within a year, %, by sentence type",
    ),
    ResearchQuestion(
        "remand_share",
        "linked/journeys",
        "People on remand, % of people in custody, pooled over quarter-end census dates",
    ),
)


def compare_research_questions(
    real: Mapping[str, pd.DataFrame],
    synthetic: Mapping[str, pd.DataFrame],
    max_absolute_difference_percentage_points: float,
) -> pd.DataFrame:
    """Answer every research question on real and synthetic tables side by side.

    Returns one row per question and group: ``real`` and ``synthetic`` percentages (rounded to
    one decimal), ``difference`` (synthetic - real, percentage points) and ``within_tolerance``
    (absolute difference at most the tolerance; False when either side cannot be computed).
    Questions whose table is missing from ``real`` are skipped.
    """
    if max_absolute_difference_percentage_points < 0:
        raise ResearchQuestionError(
            "max_absolute_difference_percentage_points must be zero or more, not "
            f"{max_absolute_difference_percentage_points}"
        )
    rows: list[dict[str, Any]] = []
    for question in RESEARCH_QUESTIONS:
        if question.dataset not in real:
            continue
        if question.dataset not in synthetic:
            raise ResearchQuestionError(
                f"the synthetic tables lack {question.dataset}, which the real tables have; "
                "synthesise every linked dataset you evaluate"
            )
        real_table, synthetic_table = real[question.dataset], synthetic[question.dataset]
        if question.name == "victim_attrition_by_stage":
            answers = (
                victim_attrition_by_stage(real_table),
                victim_attrition_by_stage(synthetic_table),
            )
        elif question.name == "reoffending_by_sentence_type":
            answers = (
                reoffending_by_sentence_type(real_table),
                reoffending_by_sentence_type(synthetic_table),
            )
        else:
            dates = census_dates_for(real_table)
            answers = remand_share(real_table, dates), remand_share(synthetic_table, dates)
        real_answer, synthetic_answer = answers
        for group in list(dict.fromkeys([*real_answer.index, *synthetic_answer.index])):
            real_value = float(real_answer.get(group, np.nan))
            synthetic_value = float(synthetic_answer.get(group, np.nan))
            difference = synthetic_value - real_value
            rows.append(
                {
                    "question": question.name,
                    "group": str(group),
                    "real": round(real_value, 1),
                    "synthetic": round(synthetic_value, 1),
                    "difference": round(difference, 1),
                    "within_tolerance": bool(
                        np.isfinite(difference)
                        and abs(difference) <= max_absolute_difference_percentage_points
                    ),
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))

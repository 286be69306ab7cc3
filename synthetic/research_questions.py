"""The research questions the environment exists for, computed on linked tables (real or
synthetic) and compared side by side within a tolerance in percentage points.

Each question is a pure function of one linked table that returns percentages indexed by group,
so the same code answers it on the vault data, on a replica and on the open-data export:

>>> victim_attrition_by_stage(tables["linked/victims"])            # doctest: +SKIP
before_charge    21.6
at_court          3.9
any_stage        25.5

The real answers leave the environment only as :func:`protected_answers`: each rate derived from
record counts that passed the active SDC profile (``synthetic.real_figures``), or suppressed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from disclosure.policy import SDCPolicy, SDCProfile
from disclosure.suppression import TOTAL
from synthetic.errors import SyntheticError
from synthetic.real_figures import (
    PERSON_KEY,
    ProtectedRate,
    RealSideControl,
    cell,
    person_unit,
    protected_rate,
)

WITHDRAWAL_STAGES = ("before_charge", "at_court")
# ``real``, ``difference`` and ``within_tolerance`` are judged on the unprotected real answer
# and stay inside the environment; ``real_published`` (with its protected numerator and
# denominator, or ``real_status`` saying it was suppressed) is the only real figure that leaves.
COLUMNS = (
    "question",
    "group",
    "real",
    "synthetic",
    "difference",
    "within_tolerance",
    "real_published",
    "real_numerator",
    "real_denominator",
    "real_status",
)
# The categories of the victims' outcome: every victim falls in exactly one.
NOT_WITHDRAWN, STAGE_NOT_RECORDED = "did_not_withdraw", "withdrew_stage_not_recorded"
SENTENCE_NOT_RECORDED = "(sentence not recorded)"
REMAND, SENTENCED = "remand", "sentenced"


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


def _victim_outcomes(victims: pd.DataFrame) -> pd.Series:
    """Each victim's outcome: the stage they withdrew at, ``withdrew_stage_not_recorded``, or
    ``did_not_withdraw`` (the partition behind :func:`victim_attrition_by_stage`)."""
    withdrew = victims["withdrew_support"].fillna(False).astype(bool).to_numpy()
    stage = victims["withdrawal_stage"].astype("string")
    outcome = np.where(withdrew, STAGE_NOT_RECORDED, NOT_WITHDRAWN).astype(object)
    for name in WITHDRAWAL_STAGES:
        outcome[withdrew & (stage == name).fillna(False).to_numpy(dtype=bool)] = name
    return pd.Series(outcome, index=victims.index, dtype=object)


def victim_attrition_by_stage(victims: pd.DataFrame) -> pd.Series:
    """Victim attrition: the percentage of all victims in ``linked/victims`` who withdrew their
    support, at each stage (``before_charge``, ``at_court``) and at any stage.

    The denominator is every victim row; a withdrawal without a recorded stage counts towards
    ``any_stage`` only.
    """
    _require(victims, "linked/victims", ("withdrew_support", "withdrawal_stage"))
    outcome = _victim_outcomes(victims)
    total = len(victims)
    rates = {s: _percentage(int((outcome == s).sum()), total) for s in WITHDRAWAL_STAGES}
    rates["any_stage"] = _percentage(int((outcome != NOT_WITHDRAWN).sum()), total)
    return pd.Series(rates, name="victim attrition (% of victims)", dtype="float64")


def _followed_up(reoffending: pd.DataFrame, complete_follow_up_only: bool = True) -> pd.DataFrame:
    """The index convictions :func:`reoffending_by_sentence_type` counts."""
    _require(
        reoffending, "linked/reoffending", ("reoffended", "sentence_type", "follow_up_complete")
    )
    if not complete_follow_up_only:
        return reoffending
    return reoffending[reoffending["follow_up_complete"].fillna(False).astype(bool)]


def reoffending_by_sentence_type(
    reoffending: pd.DataFrame, *, complete_follow_up_only: bool = True
) -> pd.Series:
    """Reoffending rate: the percentage of index convictions in ``linked/reoffending`` followed
    by a new offence within a year, by sentence type, and over all sentence types (``all``).

    Only index dates with a full year of follow-up before the extract date count (the usual
    proven-reoffending rule) unless ``complete_follow_up_only`` is False.
    """
    frame = _followed_up(reoffending, complete_follow_up_only)
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
    census = _census(journeys, census_dates)
    on_remand = int((census["status"] == REMAND).sum())
    return pd.Series(
        {"prison_population": _percentage(on_remand, len(census))},
        name="remand share (% of people in custody on census dates)",
        dtype="float64",
    )


def _census(
    journeys: pd.DataFrame, census_dates: Sequence[pd.Timestamp] | None = None
) -> pd.DataFrame:
    """One record per person in custody per census date: ``person_key`` and ``status``
    (``remand`` or ``sentenced``), as :func:`remand_share` counts them."""
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
    people: list[Any] = []
    statuses: list[str] = []
    for day in pd.to_datetime(pd.Series(dates, dtype="datetime64[ns]")):
        remand_today = set(remand_people[(remand_start <= day) & (remand_end > day)].dropna())
        release = sentenced["custody_release"]
        serving = (sentenced["custody_start"] <= day) & (release.isna() | (release > day))
        sentenced_today = set(sentenced.loc[serving, "person_key"].dropna())
        # Someone remanded on a new case while serving a sentence counts once, as sentenced.
        remand_today -= sentenced_today
        people += [*remand_today, *sentenced_today]
        statuses += [REMAND] * len(remand_today) + [SENTENCED] * len(sentenced_today)
    return pd.DataFrame({PERSON_KEY: pd.Series(people, dtype=object), "status": statuses})


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


def _protected_victim_attrition(
    victims: pd.DataFrame, control: RealSideControl
) -> dict[str, ProtectedRate]:
    # One table of victims by outcome (a partition), so suppression sees every figure at once;
    # a rate whose numerator or complement adds several cells is also checked on its own.
    _require(victims, "linked/victims", ("withdrew_support", "withdrawal_stage"))
    unit = person_unit(victims, "linked/victims")
    outcome = _victim_outcomes(victims)
    categories = [*WITHDRAWAL_STAGES, NOT_WITHDRAWN]
    if (outcome == STAGE_NOT_RECORDED).any():
        categories.insert(len(WITHDRAWAL_STAGES), STAGE_NOT_RECORDED)
    data = pd.DataFrame({"outcome": pd.Categorical(outcome, categories=categories)})
    if unit:
        data[unit] = victims[unit].to_numpy()
    counts = control.counts(data, "outcome", unit=unit)
    total = cell(counts, TOTAL)
    rates = {}
    for stage in WITHDRAWAL_STAGES:
        rates[stage] = protected_rate(
            cell(counts, stage),
            total,
            control,
            passes=control.passes(data, outcome == stage, unit=unit),
        )
    not_withdrawn = cell(counts, NOT_WITHDRAWN)
    withdrew = None if total is None or not_withdrawn is None else total - not_withdrawn
    rates["any_stage"] = protected_rate(
        withdrew,
        total,
        control,
        passes=control.passes(data, outcome != NOT_WITHDRAWN, unit=unit),
        also=(not_withdrawn,),
    )
    return rates


def _protected_reoffending(
    reoffending: pd.DataFrame, control: RealSideControl
) -> dict[str, ProtectedRate]:
    # Sentence type by reoffended: numerator and complement are cells, the denominator a
    # margin; ``all`` is the margins' row. Index convictions without a sentence type stay in
    # the margins (as in ``all`` of reoffending_by_sentence_type) under a label of their own.
    frame = _followed_up(reoffending)
    unit = person_unit(frame, "linked/reoffending")
    reoffended = frame["reoffended"].fillna(False).astype(bool).to_numpy()
    data = pd.DataFrame(
        {
            "sentence_type": frame["sentence_type"]
            .astype("string")
            .fillna(SENTENCE_NOT_RECORDED)
            .astype(object)
            .to_numpy(),
            "reoffended": pd.Categorical(np.where(reoffended, "yes", "no"), ["yes", "no"]),
        }
    )
    if unit:
        data[unit] = frame[unit].to_numpy()
    counts = control.counts(data, "sentence_type", "reoffended", unit=unit)
    groups = [str(g) for g in data["sentence_type"].unique() if g != SENTENCE_NOT_RECORDED]
    rates = {}
    for group, row in [*((g, g) for g in sorted(groups)), ("all", TOTAL)]:
        rates[group] = protected_rate(
            cell(counts, row, "yes"),
            cell(counts, row, TOTAL),
            control,
            also=(cell(counts, row, "no"),),
        )
    return rates


def _protected_remand_share(
    journeys: pd.DataFrame, census_dates: Sequence[pd.Timestamp], control: RealSideControl
) -> dict[str, ProtectedRate]:
    # Person-days in custody on the census dates by status; each person counts once per status.
    census = _census(journeys, census_dates)
    census["status"] = pd.Categorical(census["status"], categories=[REMAND, SENTENCED])
    counts = control.counts(census, "status", unit=PERSON_KEY)
    return {
        "prison_population": protected_rate(
            cell(counts, REMAND), cell(counts, TOTAL), control, also=(cell(counts, SENTENCED),)
        )
    }


def protected_answers(
    question: str,
    real_table: pd.DataFrame,
    sdc: SDCPolicy | SDCProfile | RealSideControl | None = None,
    *,
    census_dates: Sequence[pd.Timestamp] | None = None,
) -> dict[str, ProtectedRate]:
    """The answer to one research question on real data as it may leave the environment: per
    group, the percentage derived from protected record counts (their numerator and
    denominator, rounded as the SDC profile asks), or suppressed when any count behind it (or
    its complement) fails the profile's rules, judged on persons.

    ``sdc`` is the deployment's SDC policy (its active profile is used), one profile, or None
    for the active profile of the policies in force.
    """
    control = RealSideControl.resolve(sdc)
    if question == "victim_attrition_by_stage":
        return _protected_victim_attrition(real_table, control)
    if question == "reoffending_by_sentence_type":
        return _protected_reoffending(real_table, control)
    if question == "remand_share":
        dates = census_dates_for(real_table) if census_dates is None else census_dates
        return _protected_remand_share(real_table, dates, control)
    raise ResearchQuestionError(
        f"unknown research question {question!r}; one of "
        + ", ".join(q.name for q in RESEARCH_QUESTIONS)
    )


def compare_research_questions(
    real: Mapping[str, pd.DataFrame],
    synthetic: Mapping[str, pd.DataFrame],
    max_absolute_difference_percentage_points: float,
    *,
    sdc: SDCPolicy | SDCProfile | RealSideControl | None = None,
) -> pd.DataFrame:
    """Answer every research question on real and synthetic tables side by side.

    Returns one row per question and group: ``real`` and ``synthetic`` percentages (rounded to
    one decimal), ``difference`` (synthetic - real, percentage points) and ``within_tolerance``
    (absolute difference at most the tolerance; False when either side cannot be computed),
    all judged on the unprotected real answer, which must not leave the environment; and the
    real answer as it may leave it (:func:`protected_answers` under ``sdc``, by default the
    active SDC profile): ``real_published`` with ``real_numerator`` and ``real_denominator``,
    or None and ``real_status`` saying it was suppressed.
    Questions whose table is missing from ``real`` are skipped.
    """
    if max_absolute_difference_percentage_points < 0:
        raise ResearchQuestionError(
            "max_absolute_difference_percentage_points must be zero or more, not "
            f"{max_absolute_difference_percentage_points}"
        )
    control = RealSideControl.resolve(sdc)
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
        dates = None
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
        protected = protected_answers(question.name, real_table, control, census_dates=dates)
        for group in list(dict.fromkeys([*real_answer.index, *synthetic_answer.index])):
            real_value = float(real_answer.get(group, np.nan))
            synthetic_value = float(synthetic_answer.get(group, np.nan))
            difference = synthetic_value - real_value
            published = protected.get(
                str(group), ProtectedRate(None, None, None, control.suppressed_label)
            )
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
                    "real_published": published.rate,
                    "real_numerator": published.numerator,
                    "real_denominator": published.denominator,
                    "real_status": published.status,
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def published_research_questions(questions: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of :func:`compare_research_questions` as they may leave the environment: the
    protected real figure as ``real`` (None and ``real_status`` when suppressed),
    ``difference`` against it, and the verdict judged on the unprotected figure; a suppressed
    row's own verdict is withheld, since it would bound the suppressed figure to within the
    tolerance of the synthetic one. The unprotected figure, and the difference from it, are
    not kept."""
    rows = []
    for row in questions.to_dict(orient="records"):
        real = row.get("real_published")
        real = None if real is None or not np.isfinite(real) else float(real)
        synthetic = row.get("synthetic")
        synthetic = None if synthetic is None or not np.isfinite(synthetic) else float(synthetic)
        published = real is not None
        rows.append(
            {
                "question": str(row["question"]),
                "group": str(row["group"]),
                "real": real,
                "real_numerator": _count(row.get("real_numerator")) if published else None,
                "real_denominator": _count(row.get("real_denominator")) if published else None,
                "real_status": str(row.get("real_status") or "not published"),
                "synthetic": synthetic,
                "difference": (
                    round(synthetic - real, 1) if published and synthetic is not None else None
                ),
                "within_tolerance": bool(row["within_tolerance"]) if published else None,
            }
        )
    return rows


def _count(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    return int(value)

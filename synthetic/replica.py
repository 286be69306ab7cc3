"""Build a synthetic replica of the linked research datasets as one related set: synthetic
persons, their journeys, the victims of those journeys and the reoffending follow-up of their
convictions, keyed by new random person_keys and case_keys.

Each table is modelled by a single-table synthesiser (``synthetic.sdv_adapter``) on a model frame
that makes the real data's rules easy to keep, then assembled and repaired in plain pandas:

- persons are sampled first; each synthetic person gets exactly as many journeys as its ``cases``
  (so ``is_offender`` and ``cases`` agree), and its sex, area and birth year fix the journeys'
  sex, area and age at offence;
- a journey's categorical path through the system (charging decision, court, plea, outcome,
  sentence, probation order, remand, victim withdrawal, and which dates and amounts are recorded)
  is one column whose values are the combinations seen in the real data, so "sentence only after
  conviction", "withdrawal stage only if the victim withdrew" and the like hold by construction;
- stage dates are modelled as the offence date plus non-negative gaps, so they are in order;
- victims attach to synthetic journeys that have a victim, and take the journey's offence, charge
  and outcome and the victim person's sex, area and age; persons with no case of their own are
  the victims first (as in the real data, everyone is there as an offender or a victim);
- a person's first contact is their earliest offence or victim contact, as the real build
  derives it;
- reoffending rows are the synthetic convictions, with their reoffending outcome drawn from a
  synthesiser matched on sentence type.

Numeric values and dates are clipped to the real data's 1st-99th percentiles by default
(``clip_quantiles``), so real extremes are not reproduced; rows shifted or repaired to keep a rule
are counted in ``Replica.notes``. Nothing SDV learned (metadata, fitted models) leaves this
module: the ``Replica`` holds synthetic tables, the public data dictionaries and counts only.
Reoffending outcomes are synthesised per index case, not re-derived from the person's later
synthetic journeys.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from srs.pipeline.linked_datasets import DESCRIPTIONS, EXTRACT_END, FOLLOW_UP_DAYS, STAGE_DATES
from synthetic.errors import SyntheticError
from synthetic.sdv_adapter import DEFAULT_SYNTHESIZER, TableSynthesizer, check_synthesizer_name

PERSONS = "linked/persons"
JOURNEYS = "linked/journeys"
VICTIMS = "linked/victims"
REOFFENDING = "linked/reoffending"
LINKED_TABLES = (PERSONS, JOURNEYS, VICTIMS, REOFFENDING)
DEFAULT_CLIP_QUANTILES = (0.01, 0.99)
KEY_LENGTH = 20  # hex characters, as the real keyed pseudonyms
EPOCH = pd.Timestamp("1970-01-01")
ICCS_LEVELS = ("iccs_code", "iccs_section", "iccs_division", "iccs_group", "iccs_class")
# Pathways followed by fewer real journeys than this are never released (see ``journeys``).
MIN_PATHWAY_JOURNEYS = 5
# A journey's path through the system: these columns plus which dates and amounts are present.
PATHWAY_CATEGORIES = (
    "charge_decision",
    "court",
    "plea",
    "court_outcome",
    "sentence_type",
    "probation_order_type",
    "remanded",
    "victim_withdrew",
    "victim_withdrawal_stage",
    "has_victim",
)
LATER_DATES = (*STAGE_DATES[1:], "probation_start", "probation_end")
JOURNEY_AMOUNTS = ("sentence_months", "remand_days")
REOFFENDING_OUTCOMES = ("reoffended", "proven_reoffence", "days_to_reoffence")


@dataclass
class Replica:
    """A synthetic related set of the linked datasets, safe to evaluate and (after the privacy
    gates) to publish: tables with the real schema, the public data dictionaries, and counts of
    what the build clipped, shifted or repaired (``notes``)."""

    tables: dict[str, pd.DataFrame]
    dictionaries: dict[str, list[dict]]
    synthesizer: str
    seed: int
    notes: dict[str, int] = field(default_factory=dict)


def build_replica(
    tables: dict[str, pd.DataFrame],
    dictionaries: dict[str, list[dict]],
    *,
    synthesizer: str = DEFAULT_SYNTHESIZER,
    persons: int | None = None,
    seed: int = 0,
    progress: bool = True,
    clip_quantiles: tuple[float, float] | None = DEFAULT_CLIP_QUANTILES,
    epochs: int | None = None,
) -> Replica:
    """Synthesise ``linked/persons``, ``linked/journeys``, ``linked/victims`` and
    ``linked/reoffending`` as one related set with the real tables' columns, dtypes and rules.

    ``persons`` sets the number of synthetic persons (default: as many as the real table).
    ``clip_quantiles`` bounds numbers and dates to those quantiles of the real data (None keeps
    the real minima and maxima, which may then be reproduced). ``epochs`` applies to CTGAN/TVAE.

    >>> replica = build_replica(linked.tables, linked.dictionaries, seed=1)  # doctest: +SKIP
    >>> replica.tables["linked/journeys"].columns.equals(  # doctest: +SKIP
    ...     linked.tables["linked/journeys"].columns
    ... )
    True
    """
    check_synthesizer_name(synthesizer)
    _check_tables(tables)
    if persons is not None and persons <= 0:
        raise SyntheticError(f"persons must be a positive number of persons, not {persons}")
    if clip_quantiles is not None:
        low, high = clip_quantiles
        if not 0 <= low < high <= 1:
            raise SyntheticError(
                f"clip_quantiles must be two quantiles 0 <= low < high <= 1, not {clip_quantiles}"
            )
    builder = _ReplicaBuilder(tables, synthesizer, seed, clip_quantiles, epochs)
    steps = tqdm(total=5, desc="synthetic replica", disable=not progress, unit="step")
    with steps:
        steps.set_postfix_str("persons")
        synthetic_persons = builder.persons(persons or len(tables[PERSONS]))
        steps.update()
        steps.set_postfix_str("journeys")
        journeys = builder.journeys(synthetic_persons)
        steps.update()
        steps.set_postfix_str("victims")
        victims = builder.victims(journeys, synthetic_persons)
        steps.update()
        steps.set_postfix_str("reoffending")
        reoffending = builder.reoffending(journeys)
        steps.update()
        steps.set_postfix_str("persons' first contact")
        builder.settle_persons(synthetic_persons, journeys, victims)
        steps.update()
    synthetic_tables = {
        PERSONS: synthetic_persons,
        JOURNEYS: journeys,
        VICTIMS: victims,
        REOFFENDING: reoffending,
    }
    return Replica(
        tables={name: _like_real(synthetic_tables[name], tables[name]) for name in LINKED_TABLES},
        dictionaries={name: copy.deepcopy(dictionaries.get(name, [])) for name in LINKED_TABLES},
        synthesizer=synthesizer,
        seed=seed,
        notes=builder.notes,
    )


def _check_tables(tables: dict[str, pd.DataFrame]) -> None:
    missing = [name for name in LINKED_TABLES if name not in tables]
    if missing:
        raise SyntheticError(
            f"missing linked tables {', '.join(missing)}: a replica needs all of "
            f"{', '.join(LINKED_TABLES)} (build them with srs.pipeline.linked_datasets)"
        )
    for name in LINKED_TABLES:
        absent = [column for column in DESCRIPTIONS[name] if column not in tables[name].columns]
        if absent:
            raise SyntheticError(
                f"{name} lacks columns {', '.join(absent)}: pass the tables as "
                "srs.pipeline.linked_datasets builds them, with every column"
            )
    for name in (PERSONS, JOURNEYS):
        if tables[name].empty:
            raise SyntheticError(
                f"{name} has no rows: there is nothing to learn a replica from; "
                "check the linked build or the vault dataset"
            )


def _days(dates: pd.Series) -> pd.Series:
    return (pd.to_datetime(dates) - EPOCH).dt.days.astype("float64")


def _dates(days: pd.Series | np.ndarray) -> pd.Series:
    days = pd.Series(days, dtype="float64")
    return EPOCH + pd.to_timedelta(days.round(), unit="D")


class _ReplicaBuilder:
    """Holds the real tables, the fitted synthesisers (never returned) and the repair counts."""

    def __init__(
        self,
        tables: dict[str, pd.DataFrame],
        synthesizer: str,
        seed: int,
        clip_quantiles: tuple[float, float] | None,
        epochs: int | None,
    ) -> None:
        self.real = tables
        self.synthesizer = synthesizer
        self.seed = seed
        self.clip_quantiles = clip_quantiles
        self.epochs = epochs
        self.rng = np.random.default_rng(seed)
        self.notes: dict[str, int] = {}
        self.used_keys: set[str] = set()
        for table in tables.values():
            for column in ("person_key", "case_key", "victim_person_key"):
                if column in table.columns:
                    self.used_keys.update(table[column].dropna().astype(str))

    # -- shared steps ---------------------------------------------------------------------
    def _count(self, note: str, count: int) -> None:
        if count:
            self.notes[note] = self.notes.get(note, 0) + int(count)

    def _fit_sample(self, frame: pd.DataFrame, table_name: str, rows: int) -> pd.DataFrame:
        model = TableSynthesizer.fit(
            frame, table_name, synthesizer=self.synthesizer, seed=self.seed, epochs=self.epochs
        )
        return model.sample(rows, seed=self.seed)

    def _bounds(self, real: pd.Series) -> tuple[float, float] | None:
        values = pd.to_numeric(real, errors="coerce").dropna()
        if values.empty:
            return None
        if self.clip_quantiles is None:
            return float(values.min()), float(values.max())
        low, high = self.clip_quantiles
        low, high = float(values.quantile(low)), float(values.quantile(high))
        # Round inward to whole units (days, years), so rounding later cannot step outside.
        if np.ceil(low) <= np.floor(high):
            return float(np.ceil(low)), float(np.floor(high))
        return low, high

    def _clip(self, synthetic: pd.DataFrame, real: pd.DataFrame, columns: Iterable[str]) -> None:
        for column in columns:
            bounds = self._bounds(real[column])
            if bounds is None:
                continue
            values = pd.to_numeric(synthetic[column], errors="coerce").astype("float64")
            outside = values.notna() & ((values < bounds[0]) | (values > bounds[1]))
            self._count(f"{column}_clipped", outside.sum())
            synthetic[column] = values.clip(*bounds)

    def _hot_deck(self, frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
        """Fill the model frame's empty values with random values of the same column.

        Whether a value is recorded is modelled elsewhere (the journey's pathway, the victim's
        withdrawal, the reoffence flag); left empty, SDV would model it again, independently,
        and the two would disagree.
        """
        frame = frame.copy()
        for column in columns:
            empty = frame[column].isna().to_numpy()
            pool = frame[column].dropna().to_numpy()
            if empty.any() and len(pool):
                frame.loc[empty, column] = self.rng.choice(pool, size=empty.sum())
        return frame

    def _new_keys(self, count: int) -> np.ndarray:
        # Random hex keys of the real keys' length, never equal to a real key or to each other.
        keys: list[str] = []
        while len(keys) < count:
            raw = self.rng.integers(0, 16, size=(count - len(keys), KEY_LENGTH))
            candidates = ["".join("0123456789abcdef"[d] for d in row) for row in raw]
            for key in candidates:
                if key not in self.used_keys:
                    self.used_keys.add(key)
                    keys.append(key)
        return np.array(keys, dtype=object)

    def _fill_present(self, values: pd.Series, present: np.ndarray, note: str) -> pd.Series:
        # The pathway says a value is recorded but the synthesiser left it empty (or the other
        # way round): blank what must be absent, fill what must be present from the other
        # synthetic values of the column.
        pool = values.astype("float64").dropna().to_numpy()
        values = values.astype("float64").where(present)
        gaps = present & values.isna().to_numpy()
        if gaps.any():
            fill = self.rng.choice(pool, size=gaps.sum()) if len(pool) else 0.0
            values[gaps] = fill
            self._count(note, gaps.sum())
        return values

    # -- persons ---------------------------------------------------------------------------
    def persons(self, count: int) -> pd.DataFrame:
        real = self.real[PERSONS]
        frame = pd.DataFrame(
            {
                "sex": real["sex"],
                "birth_year": real["birth_year"].astype("float64"),
                "area": real["area"],
                # A person's role (cases, capped at the upper clip bound, and victim or not) as
                # one category: a copula keeps a category's frequencies exactly but smooths a
                # count and only weakly links two categorical columns (no case => victim).
                "role": (
                    real["cases"].clip(upper=self._bounds(real["cases"])[1]).astype(str)
                    + "|"
                    + real["is_victim"].astype(bool).astype(str)
                ).astype(object),
            }
        )
        synthetic = self._fit_sample(frame, "persons", count)
        self._clip(synthetic, frame, ("birth_year",))
        synthetic["birth_year"] = synthetic["birth_year"].round()
        role = synthetic.pop("role").astype(str).str.split("|", expand=True)
        cases = pd.to_numeric(role[0], errors="coerce")
        synthetic["cases"] = cases.fillna(0).round().clip(lower=0).astype(int)
        synthetic["is_victim"] = role[1] == "True"
        synthetic.insert(0, "person_key", self._new_keys(count))
        synthetic["is_offender"] = synthetic["cases"] > 0
        return synthetic

    # -- journeys --------------------------------------------------------------------------
    def _journey_model_frame(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        real = self.real[JOURNEYS]
        victim_cases = set(self.real[VICTIMS]["case_key"].dropna())
        structure = pd.DataFrame(
            {column: real[column].astype(object) for column in PATHWAY_CATEGORIES[:-1]}
        )
        structure["has_victim"] = real["case_key"].isin(victim_cases).to_numpy()
        for column in (*LATER_DATES, *JOURNEY_AMOUNTS):
            structure[f"has_{column}"] = real[column].notna().to_numpy()
        structure = structure.astype(object).where(structure.notna(), "")
        signature = structure.astype(str).agg("|".join, axis=1)
        codes, pathways = pd.factorize(signature, sort=True)
        table = structure.groupby(codes).first()
        table.index = [f"path{i}" for i in table.index]
        frame = pd.DataFrame(
            {
                "pathway": [f"path{c}" for c in codes],
                "offence_code": real["offence_code"].astype(object),
                "offence_days": _days(real["offence_date"]),
            }
        )
        latest = real["offence_date"].copy()
        for column in STAGE_DATES[1:]:
            frame[f"gap_{column}"] = (real[column] - latest).dt.days.astype("float64")
            latest = real[column].where(real[column].notna(), latest)
        frame["gap_probation_start"] = (real["probation_start"] - latest).dt.days.astype(float)
        frame["gap_probation_end"] = (
            real["probation_end"] - real["probation_start"]
        ).dt.days.astype(float)
        for column in JOURNEY_AMOUNTS:
            frame[column] = real[column].astype("float64")
        return frame, table

    def journeys(self, persons: pd.DataFrame) -> pd.DataFrame:
        real = self.real[JOURNEYS]
        frame, pathways = self._journey_model_frame()
        count = int(persons["cases"].sum())
        numeric = [c for c in frame.columns if c not in ("pathway", "offence_code")]
        synthetic = self._fit_sample(self._hot_deck(frame, numeric), "journeys", count)
        # A pathway followed by fewer than MIN_PATHWAY_JOURNEYS real journeys could single
        # out the people on it, so only common pathways are released (the others resampled).
        frequency = frame["pathway"].value_counts()
        common = frequency[frequency >= MIN_PATHWAY_JOURNEYS].index
        pool = frame["pathway"][frame["pathway"].isin(common)].to_numpy()
        if not len(pool):
            pool = frame["pathway"].to_numpy()
        unknown = ~synthetic["pathway"].isin(common if len(common) else pathways.index)
        if unknown.any():
            synthetic.loc[unknown, "pathway"] = self.rng.choice(pool, unknown.sum())
            self._count("journeys_pathway_resampled", unknown.sum())
        path = pathways.loc[synthetic["pathway"]].reset_index(drop=True)
        self._clip(synthetic, frame, numeric)
        bad_code = ~synthetic["offence_code"].isin(set(real["offence_code"].dropna()))
        if bad_code.any():
            synthetic.loc[bad_code, "offence_code"] = self.rng.choice(
                real["offence_code"].dropna().to_numpy(), bad_code.sum()
            )
            self._count("journeys_offence_code_resampled", bad_code.sum())

        out = pd.DataFrame(index=synthetic.index)
        out["case_key"] = self._new_keys(count)
        owners = persons.loc[persons.index.repeat(persons["cases"])].reset_index(drop=True)
        out["person_key"] = owners["person_key"].to_numpy()
        out["offence_code"] = synthetic["offence_code"].to_numpy()
        iccs = real.drop_duplicates("offence_code").set_index("offence_code")[list(ICCS_LEVELS)]
        for level in ICCS_LEVELS:
            out[level] = iccs.loc[out["offence_code"], level].to_numpy()
        offence = synthetic["offence_days"].fillna(synthetic["offence_days"].median())
        days = {"offence_date": offence}
        latest = offence.copy()
        for column in STAGE_DATES[1:]:
            gap = self._fill_present(
                synthetic[f"gap_{column}"], path[f"has_{column}"].to_numpy(bool), "gaps_filled"
            )
            days[column] = (latest + gap.clip(lower=0)).where(gap.notna())
            latest = days[column].where(days[column].notna(), latest)
        gap = self._fill_present(
            synthetic["gap_probation_start"],
            path["has_probation_start"].to_numpy(bool),
            "gaps_filled",
        )
        days["probation_start"] = (latest + gap.clip(lower=0)).where(gap.notna())
        gap = self._fill_present(
            synthetic["gap_probation_end"], path["has_probation_end"].to_numpy(bool), "gaps_filled"
        )
        days["probation_end"] = (days["probation_start"] + gap.clip(lower=0)).where(gap.notna())
        days = pd.DataFrame(days)
        # Keep every date within the real (clipped) range of dates: shift a journey that runs
        # past it back in time as a whole, which keeps its stage order and gaps.
        ceiling = self._date_ceiling()
        overshoot = (days.max(axis=1) - ceiling).clip(lower=0)
        self._count("journeys_shifted_before_last_date", (overshoot > 0).sum())
        days = days.sub(overshoot, axis=0)

        out["age_at_offence"] = 0
        out["sex"] = owners["sex"].to_numpy()
        out["area"] = owners["area"].to_numpy()
        for column in ("offence_date", *LATER_DATES):
            out[column] = _dates(days[column]).to_numpy()
        for column in PATHWAY_CATEGORIES:
            if column in ("remanded", "victim_withdrew", "has_victim"):
                out[column] = path[column].astype(bool).to_numpy()
            else:
                out[column] = path[column].where(path[column] != "", None).to_numpy()
        for column in JOURNEY_AMOUNTS:
            out[column] = self._fill_present(
                synthetic[column], path[f"has_{column}"].to_numpy(bool), f"{column}_filled"
            ).to_numpy()
        out["sentence_months"] = out["sentence_months"].round(1)
        self._remand_before_outcome(out, ceiling)
        self._ages_from_persons(out, persons, owners)
        return out

    def _date_ceiling(self) -> float:
        real = self.real[JOURNEYS]
        pooled = pd.concat([_days(real[c]) for c in ("offence_date", *LATER_DATES)]).dropna()
        bounds = self._bounds(pooled)
        return bounds[1] if bounds else float(_days(pd.Series([EXTRACT_END])).iloc[0])

    @staticmethod
    def _remand_span(journeys: pd.DataFrame, ceiling: pd.Timestamp) -> pd.Series:
        """Days from the first hearing (else the arrest) to the outcome (else ``ceiling``)."""
        start = journeys["first_hearing_date"].fillna(journeys["arrest_date"])
        end = journeys["outcome_date"].fillna(ceiling)
        return (end - start).dt.days.clip(lower=0)

    def _remand_until_outcome_share(self) -> float:
        """The real share of remands that last from the first hearing to the outcome."""
        real = self.real[JOURNEYS]
        remanded = real["remanded"].fillna(False).astype(bool) & real["outcome_date"].notna()
        if not remanded.any():
            return 0.0
        span = self._remand_span(real[remanded], real["outcome_date"].max())
        days = pd.to_numeric(real.loc[remanded, "remand_days"], errors="coerce")
        return float(((days - span).abs() <= 1).mean())

    def _remand_before_outcome(self, journeys: pd.DataFrame, ceiling: float) -> None:
        # Remand runs from the first hearing and ends by the outcome (or the extract's end).
        # Most real remands last until the outcome: the copula draws the length independently
        # of the hearing-to-outcome span, so that share of remanded journeys (learnt from the
        # real data) is given the whole span, as the logical rule says.
        remand = journeys["remand_days"].round()
        longest = self._remand_span(journeys, _dates(pd.Series([ceiling])).iloc[0])
        until_outcome = (
            journeys["remanded"].astype(bool).to_numpy()
            & journeys["outcome_date"].notna().to_numpy()
            & remand.notna().to_numpy()
            & (self.rng.random(len(journeys)) < self._remand_until_outcome_share())
        )
        self._count("remand_days_until_outcome", int(until_outcome.sum()))
        remand = remand.where(~until_outcome, longest)
        too_long = remand.notna() & (remand > longest)
        self._count("remand_days_cut_to_outcome", too_long.sum())
        journeys["remand_days"] = remand.where(~too_long, longest).clip(lower=0)

    def _ages_from_persons(
        self, journeys: pd.DataFrame, persons: pd.DataFrame, owners: pd.DataFrame
    ) -> None:
        # Age at offence is the offence year minus the birth year, less one before the
        # birthday. A person whose birth year makes any of their offences fall outside the real
        # (clipped) ages has that birth year moved to the nearest one that fits.
        real_age = self.real[JOURNEYS]["age_at_offence"]
        low, high = self._bounds(real_age) or (0.0, 120.0)
        years = journeys["offence_date"].dt.year
        span = pd.DataFrame({"person_key": journeys["person_key"], "year": years})
        by_person = span.groupby("person_key")["year"].agg(["min", "max"])
        indexed = persons.set_index("person_key")
        birth = indexed.loc[by_person.index, "birth_year"]
        earliest = by_person["max"] - high
        latest = by_person["min"] - low - 1
        fitted = birth.clip(lower=earliest, upper=np.maximum(earliest, latest))
        moved = fitted.ne(birth) | birth.isna()
        self._count("persons_birth_year_moved_to_fit_offence_ages", moved.sum())
        fitted = fitted.fillna(earliest)
        persons.loc[persons["person_key"].isin(fitted.index), "birth_year"] = (
            persons["person_key"].map(fitted).dropna()
        )
        birth_of = journeys["person_key"].map(persons.set_index("person_key")["birth_year"])
        before_birthday = self.rng.integers(0, 2, len(journeys))
        age = years - birth_of - before_birthday
        age = age.where(age >= low, age + 1).clip(low, high)
        journeys["age_at_offence"] = age.astype(int).to_numpy()

    # -- victims ---------------------------------------------------------------------------
    def victims(self, journeys: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
        real = self.real[VICTIMS]
        real_journeys = self.real[JOURNEYS].set_index("case_key")
        cases = journeys[journeys["has_victim"]].reset_index(drop=True)
        columns = list(real.columns)
        if cases.empty or real.empty:
            return pd.DataFrame({column: pd.Series(dtype=real[column].dtype) for column in columns})
        offence = real_journeys["offence_date"].reindex(real["case_key"]).to_numpy()
        frame = pd.DataFrame(
            {
                "withdrew_support": real["withdrew_support"].astype(bool),
                "age_recorded": real["age_at_offence"].notna().to_numpy(),
                "contact_gap": (real["contact_date"] - offence).dt.days.astype(float),
                "withdrawal_gap": (
                    (real["withdrawal_date"] - real["contact_date"]).dt.days.astype(float)
                ),
            }
        )
        sampled = self._fit_sample(
            self._hot_deck(frame, ("contact_gap", "withdrawal_gap")), "victims", 2 * len(cases)
        )
        self._clip(sampled, frame, ("contact_gap", "withdrawal_gap"))
        drawn = self._matched(sampled, "withdrew_support", cases["victim_withdrew"])

        victim_people = self._victim_people(persons, cases)
        out = pd.DataFrame({"victim_person_key": victim_people["person_key"].to_numpy()})
        out["case_key"] = cases["case_key"].to_numpy()
        out["sex"] = victim_people["sex"].to_numpy()
        years = cases["offence_date"].dt.year.to_numpy()
        before_birthday = self.rng.integers(0, 2, len(cases))
        age = pd.Series(years - victim_people["birth_year"].to_numpy() - before_birthday)
        age = age.clip(lower=0).where(drawn["age_recorded"].astype(bool).to_numpy())
        out["age_at_offence"] = age.round().astype("Int64")
        out["area"] = victim_people["area"].to_numpy()
        for column in ("offence_code", "iccs_section", "iccs_division"):
            out[column] = cases[column].to_numpy()
        contact_gap = drawn["contact_gap"].fillna(drawn["contact_gap"].median()).fillna(0)
        out["contact_date"] = cases["offence_date"] + pd.to_timedelta(
            contact_gap.clip(lower=0).round().to_numpy(), unit="D"
        )
        withdrew = cases["victim_withdrew"].astype(bool).to_numpy()
        out["withdrew_support"] = withdrew
        out["withdrawal_stage"] = cases["victim_withdrawal_stage"].to_numpy()
        gap = self._fill_present(drawn["withdrawal_gap"], withdrew, "victim_withdrawal_gap_filled")
        out["withdrawal_date"] = out["contact_date"] + pd.to_timedelta(
            gap.clip(lower=0).round().to_numpy(), unit="D"
        )
        out["charged"] = (cases["charge_decision"] == "charged").fillna(False).to_numpy(bool)
        out["court_outcome"] = cases["court_outcome"].to_numpy()
        out["victim_is_also_offender"] = victim_people["is_offender"].to_numpy(bool)
        return out[columns]

    def _victim_people(self, persons: pd.DataFrame, cases: pd.DataFrame) -> pd.DataFrame:
        # As in the real data, a person with no case of their own is in the data as a victim,
        # so those persons are given a victim row first, then offenders marked is_victim, then
        # the remaining rows go to any of them. A victim is born by the offence year.
        # ``is_victim`` then says whether the person has a victim row (repairs in notes).
        # Copies: under pandas 3's copy-on-write an index's array is a read-only view, which
        # numpy's permutation refuses.
        must = self.rng.permutation(persons.index[persons["cases"] == 0].to_numpy(copy=True))
        also = persons.index[(persons["cases"] > 0) & persons["is_victim"]].to_numpy(copy=True)
        also = self.rng.permutation(also)
        first = np.concatenate([must, also])[: len(cases)]
        if len(first) == 0:
            first = self.rng.choice(persons.index, size=min(len(cases), len(persons)))
        extra = self.rng.choice(first, size=len(cases) - len(first))
        chosen = self.rng.permutation(np.concatenate([first, extra]))
        years = cases["offence_date"].dt.year.to_numpy()
        born_after = persons.loc[chosen, "birth_year"].to_numpy() > years
        if born_after.any():
            pool = np.unique(chosen)
            births = persons.loc[pool, "birth_year"].to_numpy()
            for row in np.flatnonzero(born_after):
                fits = pool[births <= years[row]]
                if len(fits):
                    chosen[row] = self.rng.choice(fits)
            self._count("victims_reassigned_to_person_born_before_offence", born_after.sum())
        is_victim = persons.index.isin(chosen)
        self._count(
            "persons_is_victim_set_by_victim_rows", (is_victim != persons["is_victim"]).sum()
        )
        persons["is_victim"] = is_victim
        return persons.loc[chosen].reset_index(drop=True)

    def _matched(self, sampled: pd.DataFrame, column: str, targets: pd.Series) -> pd.DataFrame:
        # Conditioning by matching: for each target value, draw a synthetic row with the same
        # value of ``column`` (any row if the synthesiser made none with that value).
        sampled = sampled.reset_index(drop=True)
        keys = sampled[column].astype(str)
        rows = np.empty(len(targets), dtype=int)
        target_keys = targets.astype(str).to_numpy()
        for value in np.unique(target_keys):
            where = np.flatnonzero(target_keys == value)
            pool = np.flatnonzero(keys.to_numpy() == value)
            if len(pool) == 0:
                pool = np.arange(len(sampled))
                self._count(f"{column}_unmatched_draws", len(where))
            rows[where] = self.rng.choice(pool, size=len(where))
        return sampled.loc[rows].reset_index(drop=True)

    # -- reoffending -----------------------------------------------------------------------
    def reoffending(self, journeys: pd.DataFrame) -> pd.DataFrame:
        real = self.real[REOFFENDING]
        columns = list(real.columns)
        convicted = journeys[journeys["court_outcome"] == "convicted"].copy()
        convicted["index_date"] = convicted["custody_release"].where(
            convicted["sentence_type"] == "custody", convicted["outcome_date"]
        )
        convicted = convicted[convicted["index_date"].notna()].reset_index(drop=True)
        if convicted.empty or real.empty:
            return pd.DataFrame({column: pd.Series(dtype=real[column].dtype) for column in columns})
        # Sentence type and outcome as one category, so that the reoffending rate by sentence
        # type (a question the environment exists for) survives: a copula keeps a category's
        # frequencies but only weakly the association between two categorical columns.
        # Follow-up completeness joins them: a reoffence is likelier in a full year than in
        # the part of one an index date near the extract's end leaves (the proven-reoffending
        # rate counts full years only), so rows are matched on sentence and completeness.
        outcome = (
            real["sentence_type"].astype(str)
            + "|"
            + real["reoffended"].astype(bool).astype(str)
            + "|"
            + real["proven_reoffence"].astype(bool).astype(str)
            + "|"
            + real["follow_up_complete"].astype(bool).astype(str)
        )
        frame = pd.DataFrame(
            {
                "outcome": outcome.astype(object),
                "days_to_reoffence": real["days_to_reoffence"].astype("float64"),
            }
        )
        sampled = self._fit_sample(
            self._hot_deck(frame, ("days_to_reoffence",)), "reoffending", 3 * len(convicted)
        )
        self._clip(sampled, frame, ("days_to_reoffence",))
        parts = sampled["outcome"].astype(str).str.split("|", expand=True)
        sampled["sentence_type"] = parts[0]
        sampled["reoffended"] = parts[1] == "True"
        sampled["proven_reoffence"] = parts[2] == "True"
        sampled["sentence_follow_up"] = parts[0] + "|" + parts[3]
        longest = (self._bounds(frame["days_to_reoffence"]) or (1, FOLLOW_UP_DAYS))[1]
        index_date = convicted["index_date"]
        complete = index_date + pd.Timedelta(days=FOLLOW_UP_DAYS) <= EXTRACT_END
        drawn = self._matched(
            sampled,
            "sentence_follow_up",
            convicted["sentence_type"].astype(str) + "|" + complete.astype(str),
        )
        out = pd.DataFrame(
            {
                "person_key": convicted["person_key"].to_numpy(),
                "case_key": convicted["case_key"].to_numpy(),
                "index_date": index_date.to_numpy(),
                "sentence_type": convicted["sentence_type"].to_numpy(),
                "sentence_months": convicted["sentence_months"].to_numpy(),
                "age_at_index": (
                    convicted["age_at_offence"]
                    + (index_date - convicted["offence_date"]).dt.days // 365
                ).to_numpy(),
                "sex": convicted["sex"].to_numpy(),
                "iccs_section": convicted["iccs_section"].to_numpy(),
                "follow_up_complete": complete.to_numpy(),
            }
        )
        reoffended = drawn["reoffended"].astype(bool).to_numpy()
        days = drawn["days_to_reoffence"].round()
        # A reoffence falls within the follow-up year and before the extract's end.
        room = (EXTRACT_END - index_date).dt.days.clip(upper=min(FOLLOW_UP_DAYS, longest))
        room = room.to_numpy()
        days = self._fill_present(days, reoffended, "days_to_reoffence_filled").clip(lower=1)
        beyond = reoffended & (days.to_numpy() > room)
        fits = beyond & (room >= 1)
        days[fits] = self.rng.integers(1, np.maximum(room[fits], 1) + 1)
        lost = beyond & (room < 1)
        self._count("reoffences_moved_inside_follow_up", fits.sum())
        self._count("reoffences_dropped_no_follow_up_left", lost.sum())
        reoffended = reoffended & ~lost
        out["reoffended"] = reoffended
        out["proven_reoffence"] = drawn["proven_reoffence"].astype(bool).to_numpy() & reoffended
        out["days_to_reoffence"] = days.where(reoffended).to_numpy()
        return out[columns]

    # -- persons, last -----------------------------------------------------------------------
    def settle_persons(
        self, persons: pd.DataFrame, journeys: pd.DataFrame, victims: pd.DataFrame
    ) -> None:
        """Set each person's first contact to their earliest offence or victim contact, as the
        real build does, and drop persons with neither (counted in notes)."""
        own = pd.concat(
            [
                journeys[["person_key", "offence_date"]].set_axis(["person_key", "date"], axis=1),
                victims[["victim_person_key", "contact_date"]].set_axis(
                    ["person_key", "date"], axis=1
                ),
            ]
        )
        earliest = persons["person_key"].map(own.groupby("person_key")["date"].min())
        persons["first_contact_date"] = earliest
        orphans = earliest.isna()
        self._count("persons_dropped_without_case_or_victim_row", orphans.sum())
        persons.drop(index=persons.index[orphans], inplace=True)


def _like_real(synthetic: pd.DataFrame, real: pd.DataFrame) -> pd.DataFrame:
    """The synthetic table with the real table's column order and dtypes."""
    missing = [column for column in real.columns if column not in synthetic.columns]
    if missing:
        raise SyntheticError(f"replica is missing columns {missing}; this is a bug in the builder")
    out = {}
    for column in real.columns:
        dtype = real[column].dtype
        values = synthetic[column].reset_index(drop=True)
        if pd.api.types.is_datetime64_any_dtype(dtype):
            out[column] = pd.to_datetime(values).astype(dtype)
        elif pd.api.types.is_bool_dtype(dtype):
            out[column] = values.fillna(False).astype(bool)
        elif pd.api.types.is_integer_dtype(dtype):
            numbers = pd.to_numeric(values, errors="coerce").round()
            out[column] = (
                numbers.astype(dtype) if dtype == "Int64" else numbers.fillna(0).astype(dtype)
            )
        elif pd.api.types.is_float_dtype(dtype):
            out[column] = pd.to_numeric(values, errors="coerce").astype(dtype)
        elif isinstance(dtype, pd.StringDtype):
            out[column] = values.astype(object).where(values.notna(), None).astype(dtype)
        else:
            strings = values.astype(object)
            out[column] = strings.where(strings.notna(), pd.NA).astype(object)
    return pd.DataFrame(out)

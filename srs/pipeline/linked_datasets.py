"""The linked research datasets, built from validated source extracts and the linkage lookup.

``build_linked_datasets`` is pure: typed source frames, the person lookup and a pseudonymiser
in; ``linked/persons``, ``linked/journeys``, ``linked/victims`` and ``linked/reoffending`` out,
each with a generated data dictionary. Direct identifiers never leave: people and cases are
keyed by keyed pseudonyms, dates of birth become birth years and ages, postcodes become areas.
Stage dates are checked for order (no charge before its offence); any out of order is blanked
and counted in the build report, never silently kept or dropped. A source that may no longer be
used (its agreement ended) is given as ``empty_source``: the tables are built without its rows,
and the columns it alone fills are left empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from srs.pipeline.deid import Pseudonymiser, age_at, birth_year, postcode_area
from srs.pipeline.deliveries import EVENT_DATE
from srs.pipeline.ingest import DataDictionary
from srs.pipeline.offences import OffenceList

# The simulator's last day; the linked datasets take their own extract date from the data
# (``extract_date``), so follow-up grows as deliveries arrive.
EXTRACT_END = pd.Timestamp("2024-12-31")
FOLLOW_UP_DAYS = 365  # proven reoffending: offences within a year of release or sentence
COURT_REF = {"magistrates_cases": "mc_case_no", "crown_court_cases": "cc_case_no"}
# The seven agency sources the linked datasets are built from (the simulator makes exactly these).
JUSTICE_SOURCES = (
    "police_arrests",
    "cps_charging",
    "magistrates_cases",
    "crown_court_cases",
    "prison_spells",
    "probation_episodes",
    "victims",
)
OFFENDER_SOURCES = tuple(s for s in JUSTICE_SOURCES if s != "victims")
# Stage dates of a case, in the order they must occur.
STAGE_DATES = (
    "offence_date",
    "arrest_date",
    "decision_date",
    "first_hearing_date",
    "committal_date",
    "outcome_date",
    "custody_start",
    "custody_release",
)


@dataclass
class LinkedDatasets:
    """The four research tables, their data dictionaries and what the build noticed."""

    tables: dict[str, pd.DataFrame]
    dictionaries: dict[str, list[dict[str, str]]]
    report: dict[str, int] = field(default_factory=dict)


DESCRIPTIONS: dict[str, dict[str, str]] = {
    "linked/persons": {
        "person_key": "Pseudonymous person identifier, issued by the steward's person register when the person was first linked and kept across deliveries",
        "sex": "Sex, the most frequent value across the person's records",
        "birth_year": "Year of birth (the exact date is not released)",
        "area": "Postcode area of the most recent address (e.g. LS)",
        "first_contact_date": "Earliest date the person appears in any source",
        "is_offender": "True if the person appears as a suspect or defendant",
        "is_victim": "True if the person appears as a victim",
        "cases": "Number of cases in which the person was arrested",
    },
    "linked/journeys": {
        "case_key": "Pseudonymous case identifier (keyed HMAC-SHA256 of the crime reference)",
        "person_key": "Pseudonymous identifier of the arrested person",
        "offence_code": "National offence code recorded by the police",
        "iccs_code": "Deepest ICCS code of the offence",
        "iccs_section": "ICCS section (2 digits)",
        "iccs_division": "ICCS division (4 digits)",
        "iccs_group": "ICCS group (5 digits), where the offence maps that deep",
        "iccs_class": "ICCS class (6 digits), where the offence maps that deep",
        "age_at_offence": "Age in whole years at the offence",
        "sex": "Sex of the arrested person",
        "area": "Postcode area at arrest",
        "offence_date": "Date of the offence",
        "arrest_date": "Date of arrest",
        "charge_decision": "CPS decision: charged, nfa or out_of_court (empty if not referred)",
        "decision_date": "Date of the charging decision",
        "court": "magistrates or crown (where the case was decided)",
        "first_hearing_date": "Date of first hearing at the magistrates' court",
        "committal_date": "Date the case reached the Crown Court",
        "plea": "guilty or not_guilty",
        "court_outcome": "convicted, acquitted or withdrawn (empty while pending)",
        "outcome_date": "Date of the court outcome",
        "sentence_type": "custody, suspended, community, fine or discharge",
        "sentence_months": "Sentence length in months (custody, suspended or community)",
        "remanded": "True if remanded in custody before the outcome",
        "remand_days": "Days spent on remand",
        "custody_start": "Start of the sentenced custody spell",
        "custody_release": "Release from sentenced custody (empty if still in custody)",
        "probation_order_type": "community_order, suspended_sentence_order or licence",
        "probation_start": "Start of probation supervision",
        "probation_end": "End of probation supervision",
        "victim_withdrew": "True if the case's victim withdrew support",
        "victim_withdrawal_stage": "before_charge or at_court",
    },
    "linked/victims": {
        "victim_person_key": "Pseudonymous identifier of the victim",
        "case_key": "Pseudonymous identifier of the case",
        "sex": "Sex of the victim",
        "age_at_offence": "Age of the victim at the offence (empty if date of birth unrecorded)",
        "area": "Postcode area of the victim",
        "offence_code": "National offence code",
        "iccs_section": "ICCS section of the offence",
        "iccs_division": "ICCS division of the offence",
        "contact_date": "First contact with victim services",
        "withdrew_support": "True if the victim withdrew support",
        "withdrawal_stage": "before_charge or at_court",
        "withdrawal_date": "Date support was withdrawn",
        "charged": "True if the case was charged",
        "court_outcome": "convicted, acquitted or withdrawn",
        "victim_is_also_offender": "True if the victim also appears as a suspect or defendant",
    },
    "linked/reoffending": {
        "person_key": "Pseudonymous person identifier",
        "case_key": "The index case (a conviction)",
        "index_date": "Start of the follow-up: release from custody, else the sentence date",
        "sentence_type": "Sentence of the index case",
        "sentence_months": "Sentence length of the index case, in months",
        "age_at_index": "Age at the index date",
        "sex": "Sex",
        "iccs_section": "ICCS section of the index offence",
        "follow_up_complete": "True if a full year of follow-up lies before the extract date",
        "reoffended": "True if a new offence was committed within a year of the index date",
        "proven_reoffence": "True if such an offence led to a conviction or out-of-court disposal",
        "days_to_reoffence": "Days from the index date to the first new offence in the year",
    },
}


# Columns whose possible values are public (they come from the source data dictionaries'
# allowed values), listed in the data dictionary so that DP queries can group by them without a
# threshold. Offence codes and ICCS levels come from the offence list (policy data).
PUBLIC_VALUES: dict[str, list[str]] = {
    "sex": ["F", "M"],
    "court": ["crown", "magistrates"],
    "charge_decision": ["charged", "nfa", "out_of_court"],
    "plea": ["guilty", "not_guilty"],
    "court_outcome": ["acquitted", "convicted", "withdrawn"],
    "sentence_type": ["community", "custody", "discharge", "fine", "suspended"],
    "probation_order_type": ["community_order", "licence", "suspended_sentence_order"],
    "victim_withdrawal_stage": ["at_court", "before_charge"],
    "withdrawal_stage": ["at_court", "before_charge"],
}
FLAG_VALUES = ["false", "true"]


def public_values(offences: OffenceList) -> dict[str, list[str]]:
    """Every column's public values: fixed categories, flags, and the offence list's codes."""
    table = offences.table()
    values = dict(PUBLIC_VALUES)
    values["offence_code"] = sorted(offences.codes)
    for level in ("iccs_code", "iccs_section", "iccs_division", "iccs_group", "iccs_class"):
        values[level] = sorted(table[level].dropna().unique().tolist())
    return values


def _dictionary(
    name: str, frame: pd.DataFrame, values: dict[str, list[str]] | None = None
) -> list[dict]:
    def kind(dtype) -> str:
        if pd.api.types.is_bool_dtype(dtype):
            return "flag"
        if pd.api.types.is_integer_dtype(dtype):
            return "integer"
        if pd.api.types.is_float_dtype(dtype):
            return "number"
        if pd.api.types.is_datetime64_any_dtype(dtype):
            return "date"
        return "string"

    keys = {"person_key", "case_key", "victim_person_key"}
    values = values or {}
    entries = []
    for column in frame.columns:
        entry = {
            "name": column,
            "type": kind(frame[column].dtype),
            "description": DESCRIPTIONS[name][column],
            "classification": "pseudonym" if column in keys else "research",
        }
        if entry["type"] == "flag":
            entry["values"] = FLAG_VALUES
        elif column in values:
            entry["values"] = values[column]
        entries.append(entry)
    return entries


def empty_source(dictionary: DataDictionary) -> pd.DataFrame:
    """A source extract with no rows, typed as ingest types its columns: what the build is
    given for a source that may no longer be used, so the tables keep every column.

    >>> from srs.pipeline.ingest import load_dictionary
    >>> empty_source(load_dictionary("victims")).empty
    True
    """
    dtypes = {"date": "datetime64[ns]", "integer": "Int64", "number": "float64"}
    return pd.DataFrame(
        {
            column.name: pd.Series(dtype=dtypes.get(column.type, "string"))
            for column in dictionary.columns
        }
    )


def _column_or_missing(frame: pd.DataFrame, column: str | None, convert, dtype: str) -> pd.Series:
    # Sources lack some person columns (prison has no postcode); keep the type regardless.
    if column is None or column not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype=dtype)
    return convert(frame[column])


def _first(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    # Duplicate records of one event (same reference) keep the first copy.
    return frame.drop_duplicates(key, keep="first")


def _blank_out_of_order(journeys: pd.DataFrame, report: dict[str, int]) -> None:

    for earlier, later in zip(STAGE_DATES, STAGE_DATES[1:], strict=False):
        bad = (
            journeys[later].notna()
            & journeys[earlier].notna()
            & (journeys[later] < journeys[earlier])
        )
        if bad.any():
            journeys.loc[bad, later] = pd.NaT
            report[f"dates_blanked_{later}_before_{earlier}"] = int(bad.sum())


def _mode_by(frame: pd.DataFrame, key: str, column: str, keys: pd.Index) -> pd.Series:
    """Each key's most frequent non-missing ``column`` value (missing where it has none),
    indexed by ``keys``: ``groupby(key)[column].agg(lambda s: s.dropna().value_counts().index[0])``
    computed by counting (key, value) pairs at once instead of one Python call per key.

    Keys whose top count is tied keep the per-key ``value_counts`` call, so their value is
    exactly what it always was (``value_counts`` orders ties by numpy's unstable argsort).
    """
    present = frame.loc[frame[column].notna(), [key, column]]
    pairs = present.groupby([key, column], sort=False, observed=True).size().reset_index(name="n")
    best = pairs[pairs["n"] == pairs.groupby(key)["n"].transform("max")]
    tied = best[key].duplicated(keep=False)
    modes = best.loc[~tied].set_index(key)[column].astype(object)
    if tied.any():
        ties = present[present[key].isin(best.loc[tied, key])]
        by_count = ties.groupby(key, sort=False)[column].agg(lambda s: s.value_counts().index[0])
        modes = pd.concat([modes, by_count.astype(object)])
    return modes.reindex(keys)


def extract_date(sources: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The latest event date in ``sources`` (each source's dating column, see
    ``srs.pipeline.deliveries.EVENT_DATE``): the day the data run to. ``EXTRACT_END`` when no
    source has a dated record."""
    latest = [
        pd.to_datetime(frame[column], errors="coerce").max()
        for source, frame in sources.items()
        if (column := EVENT_DATE.get(source)) is not None and column in frame.columns
    ]
    latest = [day for day in latest if pd.notna(day)]
    return max(latest) if latest else EXTRACT_END


def build_linked_datasets(
    sources: dict[str, pd.DataFrame],
    lookup: pd.DataFrame,
    pseudonymiser: Pseudonymiser,
    offences: OffenceList,
    extract_end: pd.Timestamp | None = None,
) -> LinkedDatasets:
    """Build the linked research datasets from typed source extracts and the person lookup.

    ``extract_end`` is the day the data run to (the end of the newest delivered period); by
    default the latest event date in the sources. Remand to date and whether a conviction has
    a full year of follow-up are judged against it.
    """
    end = extract_end if extract_end is not None else extract_date(sources)
    report: dict[str, int] = {}
    # The key the register issued (srs.pipeline.linkage.person_keys), stable across relinks;
    # a bare clustering (source, record_id, cluster_id) gets the keys a first link issues.
    if "person_key" not in lookup.columns:
        lookup = lookup.assign(
            person_key=pseudonymiser.series(lookup["cluster_id"].astype(str), "person")
        )
    person_of = lookup.set_index(["source", "record_id"])["person_key"].astype("string")

    def keyed(source: str, frame: pd.DataFrame, record_column: str) -> pd.Series:
        index = pd.MultiIndex.from_arrays(
            [np.full(len(frame), source), frame[record_column].astype(str)]
        )
        return pd.Series(person_of.reindex(index).to_numpy(), index=frame.index, dtype="string")

    offence_info = offences.table().set_index("offence_code")
    police = _first(sources["police_arrests"], "crime_ref").copy()
    police["person_key"] = keyed("police_arrests", police, "arrest_id")
    cps = _first(sources["cps_charging"], "crime_ref").set_index("crime_ref")
    mc = _first(sources["magistrates_cases"], "cps_urn")
    mc_by_urn = mc.set_index("cps_urn")
    cc = _first(sources["crown_court_cases"], "mc_case_no").set_index("mc_case_no")
    prison = sources["prison_spells"]
    probation = _first(sources["probation_episodes"], "court_case_ref").set_index("court_case_ref")
    victims = _first(sources["victims"], "crime_ref").copy()

    j = pd.DataFrame({"crime_ref": police["crime_ref"].astype(str).to_numpy()})
    j["case_key"] = pseudonymiser.series(j["crime_ref"], "case").to_numpy()
    j["person_key"] = police["person_key"].to_numpy()
    j["offence_code"] = police["offence_code"].astype(str).to_numpy()
    for level in ("iccs_code", "iccs_section", "iccs_division", "iccs_group", "iccs_class"):
        j[level] = offence_info.loc[j["offence_code"], level].to_numpy()
    j["age_at_offence"] = age_at(police["date_of_birth"], police["offence_date"]).to_numpy()
    j["sex"] = police["sex"].to_numpy()
    j["area"] = postcode_area(police["postcode"]).to_numpy()
    j["offence_date"] = police["offence_date"].to_numpy()
    j["arrest_date"] = police["arrest_date"].to_numpy()
    c = cps.reindex(j["crime_ref"])
    j["charge_decision"] = c["decision"].to_numpy()
    j["decision_date"] = c["decision_date"].to_numpy()
    urn = c["cps_urn"].astype("string").str.rstrip("D")
    m = mc_by_urn.reindex(urn)
    crown = cc.reindex(m["mc_case_no"].astype("string").str.rstrip("D"))
    at_crown = crown["cc_case_no"].notna().to_numpy()
    j["court"] = np.select(
        [at_crown, m["mc_case_no"].notna().to_numpy()], ["crown", "magistrates"], default=None
    )
    j["first_hearing_date"] = m["first_hearing_date"].to_numpy()
    j["committal_date"] = crown["committal_date"].to_numpy()
    j["plea"] = np.where(at_crown, crown["plea"], m["plea"])
    j["court_outcome"] = np.where(
        at_crown, crown["verdict"], m["outcome"].where(m["outcome"] != "sent_to_crown")
    )
    j["outcome_date"] = np.where(at_crown, crown["verdict_date"], m["outcome_date"])
    j["sentence_type"] = np.where(at_crown, crown["sentence_type"], m["sentence_type"])
    j["sentence_months"] = np.where(
        at_crown, crown["sentence_months"], m["sentence_months"]
    ).astype(float)
    j["remanded"] = (m["remanded_in_custody"] == "Y").fillna(False).to_numpy(dtype=bool)
    court_ref = np.where(
        at_crown,
        crown["cc_case_no"].astype("string").str.rstrip("D"),
        m["mc_case_no"].astype("string").str.rstrip("D"),
    )
    spells = _first(prison, "spell_id")
    remand_spells = (
        spells[spells["spell_type"] == "remand"]
        .drop_duplicates("court_case_ref")
        .set_index("court_case_ref")
    )
    sentenced = (
        spells[spells["spell_type"] == "sentenced"]
        .drop_duplicates("court_case_ref")
        .set_index("court_case_ref")
    )
    r = remand_spells.reindex(court_ref)
    j["remand_days"] = (
        ((r["release_date"].fillna(end) - r["reception_date"]).dt.days).astype("Int64").to_numpy()
    )
    s = sentenced.reindex(court_ref)
    j["custody_start"] = s["reception_date"].to_numpy()
    j["custody_release"] = s["release_date"].to_numpy()
    p = probation.reindex(court_ref)
    j["probation_order_type"] = p["order_type"].to_numpy()
    j["probation_start"] = p["start_date"].to_numpy()
    j["probation_end"] = p["end_date"].to_numpy()
    v = victims.set_index("crime_ref").reindex(j["crime_ref"])
    j["victim_withdrew"] = (v["withdrew_support"] == "Y").fillna(False).to_numpy(dtype=bool)
    j["victim_withdrawal_stage"] = v["withdrawal_stage"].to_numpy()
    for column in (*STAGE_DATES, "probation_start", "probation_end"):
        j[column] = pd.to_datetime(j[column])
    _blank_out_of_order(j, report)
    missing_person = j["person_key"].isna()
    if missing_person.any():
        report["journeys_without_person_key"] = int(missing_person.sum())
    journeys = j.drop(columns="crime_ref")
    for column in (
        "charge_decision",
        "court",
        "plea",
        "court_outcome",
        "sentence_type",
        "probation_order_type",
        "victim_withdrawal_stage",
        "sex",
        "area",
        "offence_code",
        "iccs_code",
        "iccs_section",
        "iccs_division",
        "iccs_group",
        "iccs_class",
    ):
        journeys[column] = journeys[column].astype("string")

    # Victims.
    victims["victim_person_key"] = keyed("victims", victims, "victim_id")
    case_of = j.set_index("crime_ref")
    vc = case_of.reindex(victims["crime_ref"].astype(str))
    offenders = set(journeys["person_key"].dropna())
    linked_victims = pd.DataFrame(
        {
            "victim_person_key": victims["victim_person_key"].to_numpy(),
            "case_key": pseudonymiser.series(victims["crime_ref"].astype(str), "case").to_numpy(),
            "sex": victims["sex"].astype("string").to_numpy(),
            "age_at_offence": age_at(
                victims["date_of_birth"],
                pd.Series(vc["offence_date"].to_numpy(), index=victims.index),
            ).array,
            "area": postcode_area(victims["postcode"]).to_numpy(),
            "offence_code": vc["offence_code"].astype("string").to_numpy(),
            "iccs_section": vc["iccs_section"].astype("string").to_numpy(),
            "iccs_division": vc["iccs_division"].astype("string").to_numpy(),
            "contact_date": victims["contact_date"].to_numpy(),
            "withdrew_support": (victims["withdrew_support"] == "Y").to_numpy(dtype=bool),
            "withdrawal_stage": victims["withdrawal_stage"].astype("string").to_numpy(),
            "withdrawal_date": victims["withdrawal_date"].to_numpy(),
            "charged": (vc["charge_decision"] == "charged").fillna(False).to_numpy(dtype=bool),
            "court_outcome": vc["court_outcome"].astype("string").to_numpy(),
            "victim_is_also_offender": victims["victim_person_key"]
            .isin(offenders)
            .to_numpy(dtype=bool),
        }
    )

    # Persons: every person key seen in any source.
    rows = []
    for source, frame in sources.items():
        record_column = frame.columns[0]
        key = keyed(source, frame, record_column)
        date_columns = [
            c
            for c in frame.columns
            if pd.api.types.is_datetime64_any_dtype(frame[c])
            and c not in ("date_of_birth", "dob", "defendant_dob")
        ]
        event = (
            frame[date_columns].min(axis=1)
            if date_columns
            else pd.Series(pd.NaT, index=frame.index)
        )
        dob_column = next(
            (c for c in ("date_of_birth", "dob", "defendant_dob") if c in frame.columns), None
        )
        postcode_column = next((c for c in frame.columns if c.endswith("postcode")), None)
        rows.append(
            pd.DataFrame(
                {
                    "person_key": key,
                    "sex": _column_or_missing(frame, "sex", lambda c: c.astype("string"), "string"),
                    "birth_year": _column_or_missing(frame, dob_column, birth_year, "Int64"),
                    "area": _column_or_missing(frame, postcode_column, postcode_area, "string"),
                    "event_date": event,
                    "offender": source in OFFENDER_SOURCES,
                    "victim": source == "victims",
                }
            )
        )
    everything = pd.concat(rows, ignore_index=True).dropna(subset=["person_key"])
    everything = everything.sort_values("event_date", kind="stable").reset_index(drop=True)
    grouped = everything.groupby("person_key", sort=True)
    people = grouped.size().index

    persons = pd.DataFrame(
        {
            "sex": _mode_by(everything, "person_key", "sex", people).astype("string"),
            "birth_year": _mode_by(everything, "person_key", "birth_year", people).astype("Int64"),
            # The most recent address: the last non-missing area in event-date order.
            "area": grouped["area"].last().astype("string"),
            "first_contact_date": grouped["event_date"].min(),
            "is_offender": grouped["offender"].any(),
            "is_victim": grouped["victim"].any(),
        }
    )
    persons["cases"] = (
        journeys.groupby("person_key").size().reindex(persons.index).fillna(0).astype("Int64")
    )
    persons = persons.reset_index()

    # Reoffending: follow-up from each conviction.
    convicted = journeys[journeys["court_outcome"] == "convicted"].copy()
    convicted["index_date"] = convicted["custody_release"].where(
        convicted["sentence_type"] == "custody", convicted["outcome_date"]
    )
    convicted = convicted[convicted["index_date"].notna()]
    later = journeys[["person_key", "offence_date", "court_outcome", "charge_decision"]]
    pairs = convicted[["case_key", "person_key", "index_date"]].merge(later, on="person_key")
    window = pairs[
        (pairs["offence_date"] > pairs["index_date"])
        & (pairs["offence_date"] <= pairs["index_date"] + pd.Timedelta(days=FOLLOW_UP_DAYS))
    ]
    window = window.assign(
        proven=(window["court_outcome"] == "convicted")
        | (window["charge_decision"] == "out_of_court")
    )
    first_new = window.groupby("case_key")["offence_date"].min()
    proven = window.groupby("case_key")["proven"].any()
    reoffending = pd.DataFrame(
        {
            "person_key": convicted["person_key"].to_numpy(),
            "case_key": convicted["case_key"].to_numpy(),
            "index_date": convicted["index_date"].to_numpy(),
            "sentence_type": convicted["sentence_type"].to_numpy(),
            "sentence_months": convicted["sentence_months"].to_numpy(),
            "age_at_index": (
                convicted["age_at_offence"]
                + ((convicted["index_date"] - convicted["offence_date"]).dt.days // 365)
            )
            .astype("Int64")
            .to_numpy(),
            "sex": convicted["sex"].to_numpy(),
            "iccs_section": convicted["iccs_section"].to_numpy(),
            "follow_up_complete": (
                convicted["index_date"] + pd.Timedelta(days=FOLLOW_UP_DAYS) <= end
            ).to_numpy(),
        }
    )
    index_first = first_new.reindex(reoffending["case_key"])
    reoffending["reoffended"] = index_first.notna().to_numpy()
    reoffending["proven_reoffence"] = (
        proven.reindex(reoffending["case_key"]).fillna(False).astype(bool).to_numpy()
    )
    reoffending["days_to_reoffence"] = (
        index_first.to_numpy() - reoffending["index_date"]
    ).dt.days.astype("Int64")

    tables = {
        "linked/persons": persons,
        "linked/journeys": journeys.reset_index(drop=True),
        "linked/victims": linked_victims,
        "linked/reoffending": reoffending,
    }
    for name, table in tables.items():
        report[f"rows_{name.split('/')[1]}"] = len(table)
    return LinkedDatasets(
        tables=tables,
        dictionaries={
            name: _dictionary(name, table, public_values(offences))
            for name, table in tables.items()
        },
        report=report,
    )

"""Person linkage with Splink: standardise identifiers, train, predict, cluster, evaluate.

Works on any two or more tables given a column mapping (which column holds the forename,
surname, date of birth, sex, postcode, police number and record id); for our sources the
mapping comes from the data dictionaries' ``linkage_role``. Settings are declarative
(``policies/linkage.yaml``). The result is a lookup from every source record to a cluster of
records that are the same person; keyed pseudonyms are made from it by ``srs.deid``. All of
this runs in the steward zone: inputs carry direct identifiers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from anyascii import anyascii
from pydantic import Field, ValidationError

from disclosure.policy import PolicyModel
from srs.errors import SRSError
from srs.names import canonical_forenames
from srs.policy import PolicyError, default_policy_dir

LINKAGE_COLUMNS = ("forename", "surname", "date_of_birth", "sex", "postcode", "pnc")


class LinkageError(SRSError):
    """Linkage cannot run as asked (bad mapping, too few tables, unknown backend)."""


class ComparisonSpec(PolicyModel):
    """One comparison of the model: which column, and how two values are compared."""

    column: str
    method: Literal["name", "date_of_birth", "postcode", "exact"]
    canonical_column: str | None = None
    jaro_winkler: list[float] = Field(default_factory=lambda: [0.92, 0.8])
    term_frequency: bool = False


class TrainingSpec(PolicyModel):
    """How the model is trained without labels."""

    deterministic_rules: list[list[str]] = Field(min_length=1)
    deterministic_recall: float = Field(gt=0, le=1)
    u_max_pairs: int = Field(ge=10_000)
    em_blocking: list[list[str]] = Field(min_length=1)
    max_records: int = Field(default=250_000, ge=1000)
    seed: int = 42


class ClericalReviewSpec(PolicyModel):
    """Which pairs count as borderline, and how many a steward reviews."""

    low: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)
    sample_size: int = Field(ge=0)


class MissingValuesSpec(PolicyModel):
    """Values that mean "not recorded": they become missing, so they never agree.

    Compared after trimming, case-insensitively (and after the role's own cleaning, so ``N/A``
    also catches ``n / a``); blanks and whitespace are always missing. ``any_role`` applies to
    every role, the others to one role only (``"0"`` is a placeholder for an identifier, not a
    name).
    """

    any_role: list[str] = Field(default_factory=list)
    forename: list[str] = Field(default_factory=list)
    surname: list[str] = Field(default_factory=list)
    date_of_birth: list[str] = Field(default_factory=list)
    sex: list[str] = Field(default_factory=list)
    postcode: list[str] = Field(default_factory=list)
    pnc: list[str] = Field(default_factory=list)

    def for_role(self, role: str) -> frozenset[str]:
        """The placeholders of ``role`` in the form values are compared in."""
        values = [*self.any_role, *getattr(self, role)]
        return frozenset(text for text in map(_text, values) if text)


class StandardisationSpec(PolicyModel):
    """How source values are made comparable before linkage."""

    missing_values: MissingValuesSpec = Field(default_factory=MissingValuesSpec)
    # A date column where more than this share of the non-blank values is not a date in the
    # declared format is refused (the format is wrong), not linked with dates missing.
    max_unparsable_date_share: float = Field(default=0.5, ge=0, le=1)


class LinkageSettings(PolicyModel):
    """The whole declarative linkage configuration (``policies/linkage.yaml``)."""

    standardisation: StandardisationSpec = Field(default_factory=StandardisationSpec)

    backend: Literal["duckdb", "spark"] = "duckdb"
    comparisons: list[ComparisonSpec] = Field(min_length=1)
    blocking_rules: list[list[str]] = Field(min_length=1)
    training: TrainingSpec
    match_threshold: float = Field(gt=0, lt=1)
    clerical_review: ClericalReviewSpec


def load_linkage_settings(policy_dir: Path | None = None) -> LinkageSettings:
    """Load and validate ``linkage.yaml``."""
    path = (policy_dir or default_policy_dir()) / "linkage.yaml"
    try:
        return LinkageSettings.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise PolicyError("missing; it must hold the Splink linkage settings", file=path) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        raise PolicyError(
            error["msg"], file=path, key=".".join(str(p) for p in error["loc"])
        ) from None


@dataclass(frozen=True)
class SourceMapping:
    """Which column of one table plays each linkage role."""

    record_id: str
    columns: dict[str, str]  # linkage role -> the table's column
    date_format: str | None = None  # when dates are text


def mapping_from_dictionary(dictionary) -> SourceMapping:  # noqa: ANN001 - srs.ingest.DataDictionary
    """The linkage mapping a data dictionary declares through ``linkage_role``."""
    roles = {c.linkage_role: c.name for c in dictionary.columns if c.linkage_role}
    date_column = roles.get("date_of_birth")
    date_format = dictionary.column(date_column).format if date_column else None
    return SourceMapping(
        record_id=roles["record_id"],
        columns={role: column for role, column in roles.items() if role in LINKAGE_COLUMNS},
        date_format=date_format,
    )


def read_mapping_file(path: Path) -> dict[str, SourceMapping]:
    """A mapping file for arbitrary tables::

    tables:
      crm: {record_id: id, forename: first, surname: last, date_of_birth: dob,
            date_format: "%d/%m/%Y"}
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LinkageError(f"cannot read the mapping file {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        raise LinkageError(
            f"{path}: expected a mapping with a `tables:` section, one entry per table"
        )
    mappings = {}
    for name, spec in data["tables"].items():
        if not isinstance(spec, dict) or "record_id" not in spec:
            raise LinkageError(
                f"{path}: table {name!r} needs at least record_id and one identifier column"
            )
        unknown = set(spec) - set(LINKAGE_COLUMNS) - {"record_id", "date_format"}
        if unknown:
            raise LinkageError(
                f"{path}: table {name!r} has unknown role(s) {', '.join(sorted(unknown))}; roles are record_id, date_format, {', '.join(LINKAGE_COLUMNS)}"
            )
        columns = {role: spec[role] for role in LINKAGE_COLUMNS if role in spec}
        if not columns:
            raise LinkageError(
                f"{path}: table {name!r} maps only record_id; map at least one identifier "
                f"column too ({', '.join(LINKAGE_COLUMNS)})"
            )
        mappings[name] = SourceMapping(
            record_id=spec["record_id"], columns=columns, date_format=spec.get("date_format")
        )
    return mappings


# ---------------------------------------------------------------- standardisation
# UK postcode shape (outward code, inward code) once spaces are removed; only codes of this
# shape get a sector, district and area, so codes of other countries never agree on a part.
# Groups: district (outward code), area, sector digit, unit.
_UK_POSTCODE = re.compile(r"^(([A-Z]{1,2})[0-9][A-Z0-9]?)([0-9])([A-Z]{2})$")
# Formats tried on the values the declared date format cannot read, to name a second format.
_OTHER_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y%m%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%d %b %Y",
    "%d-%b-%Y",
)
_SHOWN_VALUES = 20  # distinct unparsable values listed in a note


def _text(value: object) -> str | None:
    """A value as trimmed, upper-case ASCII text with single spaces; None when blank."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = " ".join(anyascii(str(value)).upper().split())
    return text or None


def _name(text: str) -> str | None:
    # Separators (space, hyphen, apostrophe, dot) are dropped, so Smith-Jones, Smith Jones and
    # SMITHJONES agree exactly and O'Neil equals ONeil; a dropped part still scores by
    # Jaro-Winkler. Letters outside A-Z were already folded (José -> JOSE, Иван -> IVAN).
    return re.sub(r"[^A-Z]", "", text) or None


def _postcode(text: str) -> str | None:
    compact = re.sub(r"[^A-Z0-9]", "", text)
    uk = _UK_POSTCODE.match(compact)
    return f"{uk[1]} {uk[3]}{uk[4]}" if uk else (compact or None)


def _identifier(text: str) -> str | None:
    compact = text.replace(" ", "")
    # 0, 000000, 0/0: a system's way of saying "none", never a shared identifier.
    return None if re.fullmatch(r"[0\W_]*", compact) else compact


def _sex(text: str) -> str | None:
    return text[:1] if text[:1].isalpha() else None


_ROLE_CLEANERS: dict[str, Callable[[str], str | None]] = {
    "forename": _name,
    "surname": _name,
    "postcode": _postcode,
    "pnc": _identifier,
    "sex": _sex,
}


def _clean(values: pd.Series, role: str, placeholders: frozenset[str]) -> pd.Series:
    """Values of one role in their comparable form; blanks and placeholders become None."""
    cleaner = _ROLE_CLEANERS[role]
    cleaned_placeholders = {cleaner(p) for p in placeholders} - {None}

    def clean(value: object) -> str | None:
        text = _text(value)
        if text is None or text in placeholders:
            return None
        cleaned = cleaner(text)
        return None if cleaned in cleaned_placeholders else cleaned

    # Each distinct value is cleaned once: names and postcodes repeat a great deal.
    distinct = pd.Series(values.to_numpy(dtype=object)).drop_duplicates()
    cleaned = {v: clean(v) for v in distinct if v is not None and not pd.isna(v)}
    return pd.Series(
        [cleaned.get(v) if v is not None and not pd.isna(v) else None for v in values],
        index=values.index,
        dtype=object,
    )


def _postcode_parts(postcodes: pd.Series) -> pd.DataFrame:
    """UK sector, district and area of each postcode (None for codes not UK-shaped)."""
    parts = postcodes.str.replace(" ", "").str.extract(_UK_POSTCODE)
    parts = parts.astype(object).where(parts.notna(), None)
    sector = [f"{d} {s}" if d else None for d, s in zip(parts[0], parts[2], strict=True)]
    return pd.DataFrame(
        {"postcode_sector": sector, "postcode_district": parts[0], "postcode_area": parts[1]},
        index=postcodes.index,
    )


def _show_values(values: pd.Series) -> str:
    counts = values.value_counts()
    shown = ", ".join(f"{v!r} ({n})" for v, n in counts.head(_SHOWN_VALUES).items())
    more = len(counts) - _SHOWN_VALUES
    return shown + (f" and {more} other value(s)" if more > 0 else "")


def _parse_dates(
    values: pd.Series,
    date_format: str | None,
    where: str,
    placeholders: frozenset[str],
    refuse_above: float,
    notes: list[str],
) -> pd.Series:
    """Dates of birth as YYYY-MM-DD text; refuses a wrong or a second format (see README)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        iso = values.dt.strftime("%Y-%m-%d").astype(object)
        return iso.where(values.notna() & ~iso.isin(placeholders), None)
    # Dates already typed (date, datetime, Timestamp objects) need no format.
    typed = pd.Series([hasattr(v, "isoformat") for v in values], index=values.index)
    text = values.where(~typed).map(_text, na_action="ignore")
    text = text.astype(object).where(text.notna() & ~text.isin(placeholders), None)
    given = text.dropna()
    parsed = pd.to_datetime(text.astype("string"), format=date_format, errors="coerce")
    if typed.any():
        parsed[typed] = pd.to_datetime(values[typed], errors="coerce")
    failed = given[parsed[given.index].isna()]
    # Shown as the source holds them (trimmed), for the steward to find in the file.
    as_given = values[failed.index].astype(str).str.strip()
    named = date_format or "inferred from the first value"
    if len(failed):
        second = {
            other: int(pd.to_datetime(failed, format=other, errors="coerce").notna().sum())
            for other in _OTHER_DATE_FORMATS
            if other != date_format
        }
        other, read = max(second.items(), key=lambda item: item[1])
        if read and read * 2 > len(failed):
            raise LinkageError(
                f"{where}: {len(failed):,} of {len(given):,} values are not dates in the format "
                f"{named} (e.g. {as_given.iloc[0]!r}) but {read:,} of them read as {other}; "
                "a column must hold one format: set date_format in the mapping to the one the "
                "column uses, or convert the other values to it first"
            )
        if len(failed) > refuse_above * len(given):
            raise LinkageError(
                f"{where}: {len(failed):,} of {len(given):,} values are not dates in the format "
                f"{named} (e.g. {as_given.iloc[0]!r}); check date_format in the mapping"
            )
        notes.append(
            f"{where}: {len(failed):,} value(s) are not dates in the format {named} and are "
            f"treated as missing: {_show_values(as_given)}"
        )
    result = parsed.dt.strftime("%Y-%m-%d").astype(object)
    result = result.where(parsed.notna() & ~result.isin(placeholders), None)
    return pd.Series(result.to_numpy(), index=values.index, dtype=object)


def standardise(
    tables: dict[str, pd.DataFrame],
    mappings: dict[str, SourceMapping],
    settings: LinkageSettings | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """One table of standard linkage columns, a row per source record, keyed ``unique_id``.

    Names are folded to upper-case ASCII letters (José -> JOSE, Łukasz -> LUKASZ, Иван -> IVAN;
    Smith-Jones -> SMITHJONES), postcodes spaced the UK way when UK-shaped (sw1a1aa ->
    SW1A 1AA) and kept as upper-case letters and digits otherwise, and blanks and the
    placeholders of ``settings.standardisation`` (UNKNOWN, N/A, ...) become missing, so two
    records never agree on a value neither holds. Values that are not dates in the declared
    format are listed in ``notes``; a column where most fail, or that holds a second format,
    raises :class:`LinkageError`.
    """
    settings = settings or load_linkage_settings()
    rules = settings.standardisation
    notes = notes if notes is not None else []
    if not tables or sum(len(t) for t in tables.values()) == 0:
        raise LinkageError("the tables hold no records; give at least one table with rows")
    nick = canonical_forenames()
    parts = []
    for name, frame in tables.items():
        if name not in mappings:
            raise LinkageError(f"no column mapping for table {name!r}")
        mapping = mappings[name]
        missing = [
            c for c in [mapping.record_id, *mapping.columns.values()] if c not in frame.columns
        ]
        if missing:
            raise LinkageError(
                f"table {name!r} has no column(s) {', '.join(missing)} named in its mapping"
            )
        frame = frame.reset_index(drop=True)  # values are aligned by position, not by label
        part = pd.DataFrame(
            {"source_dataset": name, "record_id": frame[mapping.record_id].astype(str)}
        )
        for role in LINKAGE_COLUMNS:
            column = mapping.columns.get(role)
            part[role] = frame[column].to_numpy() if column else None
        for role in ("forename", "surname", "postcode", "pnc", "sex"):
            part[role] = _clean(part[role], role, rules.missing_values.for_role(role))
        part["forename_canonical"] = part["forename"].map(
            lambda v: nick.get(v, v) if isinstance(v, str) else None
        )
        column = mapping.columns.get("date_of_birth")
        part["date_of_birth"] = _parse_dates(
            part["date_of_birth"],
            mapping.date_format,
            f"table {name!r}, date of birth column {column!r}",
            rules.missing_values.for_role("date_of_birth"),
            rules.max_unparsable_date_share,
            notes,
        )
        part["birth_year"] = part["date_of_birth"].str[:4]
        parts.append(part)
    combined = pd.concat(parts, ignore_index=True)
    combined.insert(0, "unique_id", combined["source_dataset"] + ":" + combined["record_id"])
    if combined["unique_id"].duplicated().any():
        example = combined.loc[combined["unique_id"].duplicated(), "unique_id"].iloc[0]
        raise LinkageError(f"record ids must be unique within a table; {example} appears twice")
    combined = pd.concat([combined, _postcode_parts(combined["postcode"].astype("string"))], axis=1)
    for column in (
        "forename",
        "surname",
        "forename_canonical",
        "date_of_birth",
        "birth_year",
        "postcode",
        "sex",
        "pnc",
    ):
        combined[column] = combined[column].astype(object).where(combined[column].notna(), None)
    return combined


# ---------------------------------------------------------------- Splink
def _comparison(spec: ComparisonSpec):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    column = spec.column
    if spec.method == "exact":
        return cl.ExactMatch(column)
    if spec.method == "postcode":
        # Splink's PostcodeComparison levels, on the parts `standardise` derives: they are null
        # for codes that are not UK-shaped, so two such codes agree exactly or not at all.
        return cl.CustomComparison(
            output_column_name=column,
            comparison_levels=[
                cll.NullLevel(column),
                cll.ExactMatchLevel(column).configure(
                    label_for_charts="Exact match on full postcode"
                ),
                *(
                    cll.ExactMatchLevel(f"{column}_{part}").configure(
                        label_for_charts=f"Exact match on {part}"
                    )
                    for part in ("sector", "district", "area")
                ),
                cll.ElseLevel(),
            ],
        )
    if spec.method == "date_of_birth":
        left, right = f"{column}_l", f"{column}_r"
        swapped = (
            f"substr({left}, 1, 4) = substr({right}, 1, 4) AND substr({left}, 6, 2) = substr({right}, 9, 2) "
            f"AND substr({left}, 9, 2) = substr({right}, 6, 2)"
        )
        return cl.CustomComparison(
            output_column_name=column,
            comparison_levels=[
                cll.NullLevel(column),
                cll.ExactMatchLevel(column),
                cll.CustomLevel(swapped, label_for_charts="day and month swapped"),
                cll.DamerauLevenshteinLevel(column, 1),
                cll.AbsoluteDateDifferenceLevel(
                    column, input_is_string=True, threshold=1, metric="year"
                ),
                cll.ElseLevel(),
            ],
        )
    levels = [
        cll.NullLevel(column),
        cll.ExactMatchLevel(column, term_frequency_adjustments=spec.term_frequency),
    ]
    if spec.canonical_column:
        levels.append(
            cll.ExactMatchLevel(spec.canonical_column).configure(
                label_for_charts="same name or nickname"
            )
        )
    levels += [cll.JaroWinklerLevel(column, threshold) for threshold in spec.jaro_winkler]
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(output_column_name=column, comparison_levels=levels)


def splink_settings(settings: LinkageSettings):
    """Splink's ``SettingsCreator`` for our declarative settings (dedupe over all records)."""
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[_comparison(spec) for spec in settings.comparisons],
        blocking_rules_to_generate_predictions=[
            block_on(*rule) for rule in settings.blocking_rules
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=True,
    )


def database_api(backend: str):
    """The Splink database API for ``backend``."""
    if backend == "duckdb":
        from splink import DuckDBAPI

        return DuckDBAPI()
    if backend == "spark":
        try:
            from pyspark.sql import SparkSession
            from splink.backends.spark import SparkAPI
        except ImportError as exc:
            raise LinkageError(
                "the spark backend needs pyspark and a Java runtime: pip install 'srs-toolkit[spark]'"
            ) from exc
        return SparkAPI(spark_session=SparkSession.builder.getOrCreate())
    raise LinkageError(f"unknown linkage backend {backend!r}; use duckdb or spark")


@dataclass
class LinkageResult:
    """Every record's cluster, the scored pairs and figures about the run."""

    clusters: pd.DataFrame  # unique_id, source_dataset, record_id, cluster_id
    pairs: pd.DataFrame  # unique_id_l, unique_id_r, match_probability (>= clerical low)
    records: pd.DataFrame  # the standardised input
    seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)  # Splink's warnings during the run

    @property
    def lookup(self) -> pd.DataFrame:
        """source, record_id, cluster_id for every record."""
        return self.clusters[["source_dataset", "record_id", "cluster_id"]].rename(
            columns={"source_dataset": "source"}
        )


def run_splink(
    records: pd.DataFrame, settings: LinkageSettings, progress: Callable[[str], None] | None = None
) -> LinkageResult:
    """Train, predict and cluster standardised records with Splink."""
    say = progress or (lambda _m: None)
    notes = _SplinkNotes()
    splink_logger = logging.getLogger("splink")
    splink_logger.addHandler(notes)
    previous = splink_logger.propagate, splink_logger.level
    # Splink reports untrained levels and the like as warnings; keep them with the result
    # (the steward's report) instead of printing them over the progress output.
    splink_logger.propagate, splink_logger.level = False, logging.WARNING
    try:
        return _run_splink(records, settings, say, notes)
    finally:
        splink_logger.removeHandler(notes)
        splink_logger.propagate, splink_logger.level = previous


class _SplinkNotes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = " ".join(record.getMessage().split())
        if message and message not in self.messages:
            self.messages.append(message)


def _without_empty_columns(
    records: pd.DataFrame, settings: LinkageSettings, notes: list[str]
) -> LinkageSettings:
    """The settings without the comparisons and rules on columns no record fills.

    A column that is empty everywhere (no table maps it, or every value is blank or a
    placeholder) cannot be trained or blocked on; the other fields link without it.
    """
    empty = {c for c in records.columns if records[c].isna().all()}

    def usable(rule: list[str]) -> bool:
        return not empty & set(rule)

    comparisons = [
        spec
        for spec in settings.comparisons
        if spec.column not in empty and spec.canonical_column not in empty
    ]
    if not comparisons:
        raise LinkageError(
            "no identifier column has any value in any table; map at least forename, surname, "
            "date_of_birth or another linkage role to a filled column"
        )
    dropped = sorted({s.column for s in settings.comparisons} - {s.column for s in comparisons})
    if dropped:
        notes.append(
            f"not compared, no record has a value: {', '.join(dropped)}; linked on the other fields"
        )
    training = settings.training.model_copy(
        update={
            "deterministic_rules": [r for r in settings.training.deterministic_rules if usable(r)],
            "em_blocking": [r for r in settings.training.em_blocking if usable(r)],
        }
    )
    blocking_rules = [r for r in settings.blocking_rules if usable(r)]
    for label, rules in (
        ("blocking rules", blocking_rules),
        ("training.deterministic_rules", training.deterministic_rules),
        ("training.em_blocking", training.em_blocking),
    ):
        if not rules:
            raise LinkageError(
                f"every one of the {label} in linkage.yaml needs a column that is empty in all "
                f"tables ({', '.join(dropped)}); map more identifier columns"
            )
    return settings.model_copy(
        update={"comparisons": comparisons, "blocking_rules": blocking_rules, "training": training}
    )


def _estimate_match_prior(linker, deterministic: list, training: TrainingSpec) -> None:  # noqa: ANN001
    try:
        linker.training.estimate_probability_two_random_records_match(
            deterministic, recall=training.deterministic_recall
        )
    except ValueError as exc:
        # Splink refuses when the deterministic rules find more pairs than the stated recall
        # allows: usually many records share one value that means "none" (a default police
        # number, a system date) and should be a placeholder in the policy.
        raise LinkageError(
            f"training.deterministic_rules {training.deterministic_rules} pair more records "
            f"than deterministic_recall {training.deterministic_recall} allows ({exc}); look for "
            "one value shared by many records (a default identifier or date) and add it to "
            "standardisation.missing_values in linkage.yaml, or, if nearly every record has "
            "its match in the tables, raise deterministic_recall"
        ) from exc


def _run_splink(
    records: pd.DataFrame, settings: LinkageSettings, say, notes: _SplinkNotes
) -> LinkageResult:
    import time

    from splink import Linker, block_on

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    settings = _without_empty_columns(records, settings, notes.messages)
    training = settings.training
    deterministic = [block_on(*rule) for rule in training.deterministic_rules]
    sample = records
    if len(records) > training.max_records:
        sample = records.sample(n=training.max_records, random_state=training.seed)
        say(f"training on a random sample of {len(sample):,} of {len(records):,} records")
    linker = Linker(
        sample,
        splink_settings(settings),
        db_api=database_api(settings.backend),
        set_up_basic_logging=False,
    )
    say("training: probability two random records match")
    _estimate_match_prior(linker, deterministic, training)
    say("training: u probabilities from random pairs")
    linker.training.estimate_u_using_random_sampling(
        max_pairs=training.u_max_pairs, seed=training.seed
    )
    for rule in training.em_blocking:
        say(f"training: expectation maximisation blocked on {', '.join(rule)}")
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule))
    if sample is not records:
        # The trained m and u apply to all records; the prior that two records match does not
        # (it falls with the number of records), so it is estimated again on all of them.
        model = linker.misc.save_model_to_json()
        linker = Linker(
            records, model, db_api=database_api(settings.backend), set_up_basic_logging=False
        )
        _estimate_match_prior(linker, deterministic, training)
    seconds["train"] = time.perf_counter() - start
    start = time.perf_counter()
    say("predicting pairs")
    predictions = linker.inference.predict(
        threshold_match_probability=min(settings.clerical_review.low, settings.match_threshold)
    )
    seconds["predict"] = time.perf_counter() - start
    start = time.perf_counter()
    say("clustering")
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, settings.match_threshold
    )
    clustered = clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]
    pairs = predictions.as_pandas_dataframe()
    seconds["cluster"] = time.perf_counter() - start
    clustered = records[["unique_id", "source_dataset", "record_id"]].merge(
        clustered, on="unique_id", how="left"
    )
    # A record in no predicted pair is a cluster of its own.
    clustered["cluster_id"] = clustered["cluster_id"].fillna(clustered["unique_id"])
    return LinkageResult(
        clusters=clustered, pairs=pairs, records=records, seconds=seconds, notes=notes.messages
    )


def link_tables(
    tables: dict[str, pd.DataFrame],
    mappings: dict[str, SourceMapping],
    settings: LinkageSettings,
    progress: Callable[[str], None] | None = None,
) -> LinkageResult:
    """Link and deduplicate persons across ``tables`` (two or more, or one to deduplicate).

    Notes from standardisation (values made missing) come first in the result's notes, then
    Splink's.
    """
    notes: list[str] = []
    result = run_splink(standardise(tables, mappings, settings, notes), settings, progress)
    result.notes[:0] = notes
    return result


# ---------------------------------------------------------------- quality
@dataclass(frozen=True)
class LinkageQuality:
    """Pairwise precision, recall and F1 against a ground truth, with the clusters in error."""

    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    wrongly_merged_clusters: int
    wrongly_split_persons: int
    records: int
    merged_examples: list[str]
    split_examples: list[str]


def _pairs(sizes: pd.Series) -> int:
    return int((sizes * (sizes - 1) // 2).sum())


def evaluate(lookup: pd.DataFrame, truth: pd.DataFrame, examples: int = 10) -> LinkageQuality:
    """Compare a lookup (source, record_id, cluster_id) with truth (source, record_id, person_id)."""
    for name, frame, needed in (
        ("lookup", lookup, {"source", "record_id", "cluster_id"}),
        ("ground truth", truth, {"source", "record_id", "person_id"}),
    ):
        missing = needed - set(frame.columns)
        if missing:
            raise LinkageError(f"the {name} lacks column(s) {', '.join(sorted(missing))}")
    joined = lookup.astype({"record_id": str}).merge(
        truth.astype({"record_id": str}), on=["source", "record_id"], how="inner"
    )
    if len(joined) < len(lookup):
        raise LinkageError(
            f"{len(lookup) - len(joined)} linked records are not in the ground truth; is it the right file?"
        )
    predicted = _pairs(joined.groupby("cluster_id").size())
    actual = _pairs(joined.groupby("person_id").size())
    correct = _pairs(joined.groupby(["cluster_id", "person_id"]).size())
    precision = correct / predicted if predicted else 1.0
    recall = correct / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    persons_per_cluster = joined.groupby("cluster_id")["person_id"].nunique()
    clusters_per_person = joined.groupby("person_id")["cluster_id"].nunique()
    merged = persons_per_cluster[persons_per_cluster > 1]
    split = clusters_per_person[clusters_per_person > 1]
    return LinkageQuality(
        precision=precision,
        recall=recall,
        f1=f1,
        true_pairs=actual,
        predicted_pairs=predicted,
        correct_pairs=correct,
        wrongly_merged_clusters=len(merged),
        wrongly_split_persons=len(split),
        records=len(joined),
        merged_examples=[str(c) for c in merged.index[:examples]],
        split_examples=[str(p) for p in split.index[:examples]],
    )


def clerical_sample(result: LinkageResult, settings: LinkageSettings) -> pd.DataFrame:
    """Borderline pairs, side by side, for a steward to review (a random sample)."""
    review = settings.clerical_review
    pairs = result.pairs
    borderline = pairs[
        (pairs["match_probability"] >= review.low) & (pairs["match_probability"] < review.high)
    ]
    sample = borderline.sample(
        n=min(review.sample_size, len(borderline)), random_state=settings.training.seed
    )
    columns = ["unique_id", *[c for c in LINKAGE_COLUMNS if c in result.records.columns]]
    left = result.records[columns].add_suffix("_l")
    right = result.records[columns].add_suffix("_r")
    out = (
        sample[["unique_id_l", "unique_id_r", "match_probability"]]
        .merge(left, on="unique_id_l")
        .merge(right, on="unique_id_r")
    )
    out["same_cluster"] = out["match_probability"] >= settings.match_threshold
    out["steward_decision"] = ""
    return out.sort_values("match_probability").reset_index(drop=True)

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
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


class LinkageSettings(PolicyModel):
    """The whole declarative linkage configuration (``policies/linkage.yaml``)."""

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
        mappings[name] = SourceMapping(
            record_id=spec["record_id"],
            columns={role: spec[role] for role in LINKAGE_COLUMNS if role in spec},
            date_format=spec.get("date_format"),
        )
    return mappings


# ---------------------------------------------------------------- standardisation
def _clean_name(values: pd.Series) -> pd.Series:
    cleaned = values.astype("string").str.upper().str.replace(r"[^A-Z]", "", regex=True)
    return cleaned.where(cleaned.str.len() > 0)


def standardise(
    tables: dict[str, pd.DataFrame], mappings: dict[str, SourceMapping]
) -> pd.DataFrame:
    """One table of standard linkage columns, a row per source record, keyed ``unique_id``."""
    if len(tables) < 2 and sum(len(t) for t in tables.values()) == 0:
        raise LinkageError("give at least one non-empty table")
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
        part = pd.DataFrame(
            {"source_dataset": name, "record_id": frame[mapping.record_id].astype(str)}
        )
        for role in LINKAGE_COLUMNS:
            column = mapping.columns.get(role)
            part[role] = frame[column].to_numpy() if column else None
        part["forename"] = _clean_name(part["forename"])
        part["surname"] = _clean_name(part["surname"])
        part["forename_canonical"] = part["forename"].map(
            lambda v: nick.get(v, v) if isinstance(v, str) else None
        )
        dob = part["date_of_birth"]
        if not pd.api.types.is_datetime64_any_dtype(dob):
            dob = pd.to_datetime(dob.astype("string"), format=mapping.date_format, errors="coerce")
        part["date_of_birth"] = dob.dt.strftime("%Y-%m-%d")
        part["birth_year"] = part["date_of_birth"].str[:4]
        part["postcode"] = (
            part["postcode"]
            .astype("string")
            .str.upper()
            .str.replace(r"\s+", " ", regex=True)
            .str.strip()
        )
        part["sex"] = part["sex"].astype("string").str.upper().str[:1]
        part["pnc"] = part["pnc"].astype("string").str.upper().str.strip()
        parts.append(part)
    combined = pd.concat(parts, ignore_index=True)
    combined.insert(0, "unique_id", combined["source_dataset"] + ":" + combined["record_id"])
    if combined["unique_id"].duplicated().any():
        example = combined.loc[combined["unique_id"].duplicated(), "unique_id"].iloc[0]
        raise LinkageError(f"record ids must be unique within a table; {example} appears twice")
    for column in (
        "forename",
        "surname",
        "forename_canonical",
        "date_of_birth",
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
        return cl.PostcodeComparison(column)
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


def _run_splink(
    records: pd.DataFrame, settings: LinkageSettings, say, notes: _SplinkNotes
) -> LinkageResult:
    import time

    from splink import Linker, block_on

    seconds: dict[str, float] = {}
    start = time.perf_counter()
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
    linker.training.estimate_probability_two_random_records_match(
        deterministic, recall=training.deterministic_recall
    )
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
        linker.training.estimate_probability_two_random_records_match(
            deterministic, recall=training.deterministic_recall
        )
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
    """Link and deduplicate persons across ``tables`` (two or more, or one to deduplicate)."""
    return run_splink(standardise(tables, mappings), settings, progress)


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

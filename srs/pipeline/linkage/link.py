"""Linking persons: standardise the tables, train the model, score the candidate pairs (in
chunks when many) and cluster the linked pairs into persons (:func:`link_tables`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from srs.pipeline.linkage.backends import database_api, input_tables
from srs.pipeline.linkage.blocking import check_comparison_budget
from srs.pipeline.linkage.errors import LinkageError
from srs.pipeline.linkage.identifiers import identifier_comparisons
from srs.pipeline.linkage.model import splink_settings
from srs.pipeline.linkage.roles import SourceMapping
from srs.pipeline.linkage.settings import LinkageSettings
from srs.pipeline.linkage.standardisation import standardise
from srs.pipeline.linkage.training import (
    any_sure_pair,
    estimate_match_prior,
    expectation_maximisation,
    training_sample,
)


@dataclass
class LinkageResult:
    """Every record's cluster, the scored pairs and figures about the run."""

    clusters: pd.DataFrame  # unique_id, source_dataset, record_id, cluster_id
    pairs: pd.DataFrame  # unique_id_l, unique_id_r, match_probability (>= clerical low)
    records: pd.DataFrame  # the standardised input
    seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)  # Splink's warnings during the run
    # The trained Splink model (its settings JSON), for `srs link refresh` to score new
    # records with; None when no model could be trained (every record a person of its own).
    model: dict | None = None

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
    # Roles no table maps need no note; a mapped column with no value does.
    dropped = [c for c in dropped if c not in records.attrs.get("unmapped_roles", ())]
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


# Above this many candidate pairs (as the blocking rules give them), DuckDB scores them in
# chunks, so one chunk's comparison vectors are in memory at a time, not all of them.
PREDICT_PAIRS_PER_CHUNK = 50_000_000


def _predict_chunks(linker, records: pd.DataFrame, backend: str) -> tuple[int, int]:  # noqa: ANN001
    """Candidate pairs the blocking rules give (estimated from a sample when many records) and
    the chunks DuckDB scores them in; Spark spreads the pairs over its executors instead."""
    share = min(1.0, 50_000 / max(len(records), 1))
    counts = linker.blocking_analysis.count_comparisons_from_blocking_rules(
        record_sample_proportion=share
    )
    pairs = int(counts[-1]["cumulative_comparison_count"]) if counts else 0
    chunks = -(-pairs // PREDICT_PAIRS_PER_CHUNK) if backend == "duckdb" else 1
    return pairs, max(chunks, 1)


# Comparisons whose agreement is a name's: they never corroborate a pair on their own.
_NAME_COMPARISONS = frozenset({"forename", "surname"})


def corroborated(pairs: pd.DataFrame, linker, settings: LinkageSettings) -> pd.Series:  # noqa: ANN001
    """Pairs on which a comparison other than the names reaches a strong enough level.

    Two records that share only a name, with the date of birth missing on one side and the
    postcode different, can score above the threshold when the name is rare in the data; in
    a justice population two people of one name are common enough that such a pair must be
    seen by a steward, not linked. The level's strength is its trained Bayes factor (m/u).
    """
    floor = settings.min_corroborating_bayes_factor
    if floor <= 0 or pairs.empty:
        return pd.Series(True, index=pairs.index)
    model = linker.misc.save_model_to_json()
    backed = pd.Series(False, index=pairs.index)
    for comparison in model["comparisons"]:
        name = comparison["output_column_name"]
        gamma = f"gamma_{name}"
        if name in _NAME_COMPARISONS or gamma not in pairs.columns:
            continue
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        strong = []
        # Splink numbers the levels other than the null level from the top, down to 0.
        for value, level in zip(range(len(levels) - 1, -1, -1), levels, strict=True):
            m, u = level.get("m_probability"), level.get("u_probability")
            if isinstance(m, float) and isinstance(u, float) and u > 0 and m / u >= floor:
                strong.append(value)
        if strong:
            backed |= pairs[gamma].isin(strong)
    return backed


def _run_splink(
    records: pd.DataFrame, settings: LinkageSettings, say, notes: _SplinkNotes
) -> LinkageResult:
    import time

    from splink import Linker, block_on
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    settings = _without_empty_columns(records, settings, notes.messages)
    say("checking the blocking rules against the comparison budget")
    check_comparison_budget(records, settings)
    training = settings.training
    link_type = settings.link_type
    if not any_sure_pair(records, training, link_type):
        # Nothing to learn what a match looks like from (Splink would fail on a prior of 0):
        # two clean extracts with no one in common, or one file without duplicates.
        notes.messages.append(
            "no two records agree on any of training.deterministic_rules "
            f"{training.deterministic_rules}, so no model can be trained: every record is a "
            "person of its own. If the tables do hold one person twice with differences on "
            "those fields, link them together with more records, or add a looser rule there"
        )
        clusters = records[["unique_id", "source_dataset", "record_id"]].assign(
            cluster_id=records["unique_id"]
        )
        empty = pd.DataFrame(columns=["unique_id_l", "unique_id_r", "match_probability"])
        return LinkageResult(
            clusters=clusters, pairs=empty, records=records, seconds={}, notes=notes.messages
        )
    deterministic = [block_on(*rule) for rule in training.deterministic_rules]

    def linker_on(frame: pd.DataFrame, model, db_api) -> Linker:  # noqa: ANN001
        tables = input_tables(db_api, frame, link_type)
        return Linker(tables if link_type != "dedupe_only" else tables[0], model, log_level=None)

    sample = training_sample(records, training, link_type)
    if sample is not records:
        say(f"training on a random sample of {len(sample):,} of {len(records):,} records")
    linker = linker_on(sample, splink_settings(settings), database_api(settings.backend))
    say("training: probability two random records match")
    estimate_match_prior(linker, deterministic, training)
    say("training: u probabilities from random pairs")
    # Splink counts u in chunks so it can stop once every level has been seen often enough;
    # when the sample has no more pairs than u_max_pairs, every pair is counted anyway, and
    # chunks would only mean more passes over the same pairs (and more Spark jobs).
    every_pair_counted = len(sample) * (len(sample) - 1) // 2 <= training.u_max_pairs
    linker.training.estimate_u_using_random_sampling(
        max_pairs=training.u_max_pairs,
        seed=training.seed,
        **({"num_chunks": 1} if every_pair_counted else {}),
    )
    for rule in training.em_blocking:
        say(f"training: expectation maximisation blocked on {', '.join(rule)}")
        expectation_maximisation(linker, rule)
    if sample is not records:
        # The trained m and u apply to all records; the prior that two records match does not
        # (it falls with the number of records), so it is estimated again on all of them. A
        # fresh database API: Splink caches tables it made from the sample under fixed names.
        model = linker.misc.save_model_to_json()
        linker = linker_on(records, model, database_api(settings.backend))
        estimate_match_prior(linker, deterministic, training)
    seconds["train"] = time.perf_counter() - start
    start = time.perf_counter()
    pairs, chunks = _predict_chunks(linker, records, settings.backend)
    say(
        f"predicting pairs: about {pairs:,} candidate pairs"
        + (f" in {chunks} chunks" if chunks > 1 else "")
    )
    predictions = linker.inference.predict(
        threshold_match_probability=min(settings.clerical_review.low, settings.match_threshold),
        num_chunks_left=chunks,
    )
    seconds["predict"] = time.perf_counter() - start
    start = time.perf_counter()
    say("clustering")
    pairs_frame = predictions.as_pandas_dataframe()
    linked = pairs_frame["match_probability"] >= settings.match_threshold
    uncorroborated = linked & ~corroborated(pairs_frame, linker, settings)
    if uncorroborated.any():
        notes.messages.append(
            f"{int(uncorroborated.sum()):,} pair(s) above the match threshold agree on names "
            "only (nothing else with a Bayes factor of at least "
            f"{settings.min_corroborating_bayes_factor:g}): not linked, left for clerical review"
        )
    clusters = cluster_pairwise_predictions_at_threshold(
        records[["unique_id"]],
        pairs_frame.loc[linked & ~uncorroborated, ["unique_id_l", "unique_id_r"]],
        linker._db_api,
        node_id_column_name="unique_id",
    )
    clustered = clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]
    seconds["cluster"] = time.perf_counter() - start
    clustered = records[["unique_id", "source_dataset", "record_id"]].merge(
        clustered, on="unique_id", how="left"
    )
    # A record in no predicted pair is a cluster of its own. A cluster is named by the least
    # unique_id among its records, whatever the backend or link type calls it.
    clustered["cluster_id"] = clustered["cluster_id"].fillna(clustered["unique_id"])
    clustered["cluster_id"] = clustered.groupby("cluster_id")["unique_id"].transform("min")
    return LinkageResult(
        clusters=clustered,
        pairs=pairs_frame,
        records=records,
        seconds=seconds,
        notes=notes.messages,
        model=linker.misc.save_model_to_json(),
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
    records = standardise(tables, mappings, settings, notes)
    settings = identifier_comparisons(settings, mappings, records)
    result = run_splink(records, settings, progress)
    result.notes[:0] = notes
    return result

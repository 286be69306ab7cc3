"""Linkage quality against a ground truth: pairwise precision, recall and F1, and the clusters
that merge two persons or split one."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from srs.pipeline.linkage.blocking import pairs_among
from srs.pipeline.linkage.errors import LinkageError
from srs.pipeline.linkage.roles import trimmed_headers


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
    truth_records_left_out: int = 0


def _evaluation_rows(frame: pd.DataFrame, name: str, key: str) -> pd.DataFrame:
    """``source``, ``record_id`` and ``key`` of a lookup or ground truth as trimmed text, one
    row per record; refused when the columns are missing, a value is blank, a record is on
    two rows or there are no rows, since each would skew the pair counts without a word."""
    frame = trimmed_headers(frame)  # "source, record_id, person_id", as FEBRL writes
    needed = ["source", "record_id", key]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise LinkageError(
            f"the {name} lacks column(s) {', '.join(missing)}; it needs the columns "
            f"{', '.join(needed)}, one row per record"
        )
    rows = frame[needed].astype("string").apply(lambda column: column.str.strip())
    rows = rows.mask(rows.eq(""))  # blank is missing
    if rows.empty:
        raise LinkageError(
            f"the {name} holds no records (a header at most); give one row per record"
        )
    for column in needed:
        blank = int(rows[column].isna().sum())
        if blank:
            raise LinkageError(
                f"the {name} has {blank:,} of {len(rows):,} row(s) with no {column}; every "
                f"record needs its {column}, or the pair counts are wrong"
            )
    rows_per_record = rows.groupby(["source", "record_id"]).size()
    repeated = rows_per_record[rows_per_record > 1]
    if len(repeated):
        (source, record_id), times = next(iter(repeated.items()))
        raise LinkageError(
            f"the {name} has {len(repeated):,} record(s) on more than one row (e.g. "
            f"{source}:{record_id}, on {times} rows); give each record one row"
        )
    return rows.astype(object)


def evaluate(
    lookup: pd.DataFrame,
    truth: pd.DataFrame,
    examples: int = 10,
    *,
    leave_out_unlinked: bool = False,
) -> LinkageQuality:
    """Compare a lookup (source, record_id, cluster_id) with truth (source, record_id, person_id).

    Both must hold the same records, each once, with every id given; anything else is
    refused with a :class:`LinkageError`, since pairs counted over part of the records are
    wrong without a sign. ``leave_out_unlinked``: records of the truth that are not in the
    lookup (rows rejected at ingest, which were never linked) are left out and counted in
    ``truth_records_left_out`` instead.

    >>> quality = evaluate(lookup, truth)  # doctest: +SKIP
    >>> quality.precision, quality.recall, quality.f1  # doctest: +SKIP
    """
    lookup = _evaluation_rows(lookup, "lookup", "cluster_id")
    truth = _evaluation_rows(truth, "ground truth", "person_id")
    joined = lookup.merge(truth, on=["source", "record_id"], how="outer", indicator=True)
    unmatched = []
    for side, name, other, everyone in (
        ("left_only", "lookup", "ground truth", lookup),
        ("right_only", "ground truth", "lookup", truth),
    ):
        alone = joined[joined["_merge"] == side]
        if len(alone) and not (side == "right_only" and leave_out_unlinked):
            example = f"{alone['source'].iloc[0]}:{alone['record_id'].iloc[0]}"
            unmatched.append(
                f"{len(alone):,} of the {len(everyone):,} records of the {name} are not in the "
                f"{other} (e.g. {example})"
            )
    if unmatched:
        if set(lookup["source"]) != set(truth["source"]):
            unmatched.append(
                f"the lookup holds table(s) {', '.join(sorted(set(lookup['source'])))}, the "
                f"ground truth {', '.join(sorted(set(truth['source'])))}"
            )
        raise LinkageError(
            f"{'; '.join(unmatched)}; the two must hold the same records: link every table the "
            "truth covers, under the names it gives them, or give the truth of the tables linked"
        )
    left_out = int((joined["_merge"] == "right_only").sum())
    joined = joined[joined["_merge"] == "both"]
    if joined.empty:
        raise LinkageError(
            "no record of the lookup is in the ground truth; its source and record_id must "
            "name the same tables and record ids"
        )
    predicted = pairs_among(joined.groupby("cluster_id").size())
    actual = pairs_among(joined.groupby("person_id").size())
    correct = pairs_among(joined.groupby(["cluster_id", "person_id"]).size())
    if not actual:
        raise LinkageError(
            f"the ground truth gives each of the {len(joined):,} records its own person, so there "
            "is no true pair to find and recall means nothing; is person_id the person's id?"
        )
    precision = correct / predicted if predicted else 1.0
    recall = correct / actual
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
        truth_records_left_out=left_out,
    )

"""Clerical review: a sample of the borderline pairs, side by side, for a steward to decide."""

from __future__ import annotations

import pandas as pd

from srs.pipeline.linkage.link import LinkageResult
from srs.pipeline.linkage.roles import LINKAGE_COLUMNS
from srs.pipeline.linkage.settings import LinkageSettings


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

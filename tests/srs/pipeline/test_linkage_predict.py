"""Prediction in chunks (Splink 5's chunked predict): many candidate pairs are scored a chunk at
a time, and the persons found are the same as in one pass."""

from __future__ import annotations

import pytest

import srs.pipeline.linkage.link
from srs.pipeline.ingest import load_dictionary
from srs.pipeline.linkage import (
    LinkageResult,
    link_tables,
    load_linkage_settings,
    mapping_from_dictionary,
)
from srs.pipeline.simulation import simulate


def persons(result: LinkageResult) -> set[frozenset[str]]:
    return set(result.clusters.groupby("cluster_id")["unique_id"].agg(frozenset))


def test_many_candidate_pairs_are_scored_in_chunks_to_the_same_persons(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    simulation = simulate(300, 5)
    mappings = {s: mapping_from_dictionary(load_dictionary(s)) for s in simulation.extracts}
    settings = load_linkage_settings()
    whole: list[str] = []
    one_pass = link_tables(simulation.extracts, mappings, settings, whole.append)
    candidates = [m for m in whole if m.startswith("predicting pairs")]
    assert candidates and "chunks" not in candidates[0], whole

    monkeypatch.setattr(srs.pipeline.linkage.link, "PREDICT_PAIRS_PER_CHUNK", 400)
    chunked: list[str] = []
    in_chunks = link_tables(simulation.extracts, mappings, settings, chunked.append)
    pairs = int(candidates[0].split("about ")[1].split(" ")[0].replace(",", ""))
    assert f"in {-(-pairs // 400)} chunks" in " ".join(chunked), chunked
    assert persons(in_chunks) == persons(one_pass)
    scored = [
        r.pairs.set_index(["unique_id_l", "unique_id_r"])["match_probability"].sort_index()
        for r in (one_pass, in_chunks)
    ]
    assert scored[0].index.equals(scored[1].index)
    assert (scored[0] - scored[1]).abs().max() < 1e-9

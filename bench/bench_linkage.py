"""Benchmark: linkage quality and our wrapper's cost against Splink alone, side by side.

    .venv/bin/python bench/bench_linkage.py --persons 100000 --repeats 2

"Splink alone" is a plain Splink 4 script (Linker, the same training calls, predict, cluster)
given records already standardised; "srs" is ``link_tables`` from the typed source tables,
including standardisation and building the lookup. Runs alternate, and medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

from splink import DuckDBAPI, Linker, block_on

from srs.ingest import ingest_file, load_dictionary
from srs.linkage import (
    evaluate,
    link_tables,
    load_linkage_settings,
    mapping_from_dictionary,
    splink_settings,
    standardise,
)
from srs.offences import load_offences
from srs.simulation import SOURCES, simulate, write_simulation


def splink_alone(records, settings) -> int:
    """The same model with plain Splink calls; returns the number of clusters."""
    linker = Linker(
        records, splink_settings(settings), db_api=DuckDBAPI(), set_up_basic_logging=False
    )
    training = settings.training
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*rule) for rule in training.deterministic_rules],
        recall=training.deterministic_recall,
    )
    linker.training.estimate_u_using_random_sampling(
        max_pairs=training.u_max_pairs, seed=training.seed
    )
    for rule in training.em_blocking:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule))
    predictions = linker.inference.predict(
        threshold_match_probability=min(settings.clerical_review.low, settings.match_threshold)
    )
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, settings.match_threshold
    )
    frame = clusters.as_pandas_dataframe()
    predictions.as_pandas_dataframe()
    return frame["cluster_id"].nunique()


def main() -> None:
    import logging
    import tempfile
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("splink").setLevel(logging.ERROR)
    offences = load_offences()
    settings = load_linkage_settings()
    with tempfile.TemporaryDirectory() as folder:
        result = simulate(args.persons, 7, offences)
        paths = write_simulation(result, Path(folder), "parquet")
        tables, mappings = {}, {}
        for source in SOURCES:
            dictionary = load_dictionary(source)
            tables[source] = ingest_file(paths[source], dictionary, offences).accepted
            mappings[source] = mapping_from_dictionary(dictionary)
    records = standardise(tables, mappings)
    ours, alone = [], []
    quality = None
    for _ in range(args.repeats):
        start = time.perf_counter()
        splink_alone(records, settings)
        alone.append(time.perf_counter() - start)
        start = time.perf_counter()
        linked = link_tables(tables, mappings, settings)
        ours.append(time.perf_counter() - start)
        quality = evaluate(linked.lookup, result.ground_truth)
    print(f"persons: {args.persons:,}   records: {len(records):,}   repeats: {args.repeats}")
    print(
        f"Splink alone (standardised input): median {statistics.median(alone):.1f} s  {[round(t, 1) for t in alone]}"
    )
    print(
        f"srs link_tables (raw tables):      median {statistics.median(ours):.1f} s  {[round(t, 1) for t in ours]}"
    )
    print(
        f"ratio srs / Splink alone: {statistics.median(ours) / statistics.median(alone):.3f} (target <= 1.25)"
    )
    print(
        f"precision {quality.precision:.4f}  recall {quality.recall:.4f}  F1 {quality.f1:.4f} (target >= 0.98)"
    )
    print(
        f"wrongly merged clusters {quality.wrongly_merged_clusters}, wrongly split persons {quality.wrongly_split_persons}"
    )


if __name__ == "__main__":
    main()

"""Benchmark: simulate + ingest + link a population end to end; prints time per step and peak memory.

    .venv/bin/python bench/bench_end_to_end.py --persons 1000000

Runs in a temporary folder; the extracts are written as Parquet (as a steward would receive
large extracts) and read back through the real ingest validation.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from srs.pipeline.ingest import ingest_file, load_dictionary
from srs.pipeline.linkage import (
    evaluate,
    link_tables,
    load_linkage_settings,
    mapping_from_dictionary,
)
from srs.pipeline.offences import load_offences
from srs.pipeline.simulation import SOURCES, simulate, write_simulation


def peak_memory_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", default="parquet", choices=["csv", "parquet"])
    args = parser.parse_args()
    offences = load_offences()
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = simulate(args.persons, args.seed, offences)
        paths = write_simulation(result, Path(folder), args.format)
        timings["simulate + write"] = time.perf_counter() - start
        truth = result.ground_truth
        records = sum(len(f) for f in result.extracts.values())
        del result
        start = time.perf_counter()
        tables, mappings = {}, {}
        for source in SOURCES:
            dictionary = load_dictionary(source)
            ingested = ingest_file(paths[source], dictionary, offences)
            tables[source] = ingested.accepted
            mappings[source] = mapping_from_dictionary(dictionary)
        timings["ingest (validate 7 extracts)"] = time.perf_counter() - start
        start = time.perf_counter()
        linked = link_tables(tables, mappings, load_linkage_settings(), progress=None)
        timings["link (standardise + Splink)"] = time.perf_counter() - start
        quality = evaluate(linked.lookup, truth, leave_out_unlinked=True)
    total = sum(timings.values())
    print(f"persons: {args.persons:,}   records: {records:,}")
    for step, seconds in timings.items():
        print(f"  {step:<32} {seconds:8.1f} s")
    print(f"  {'total':<32} {total:8.1f} s")
    print("  splink phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in linked.seconds.items()))
    print(
        f"linkage: precision {quality.precision:.4f}  recall {quality.recall:.4f}  F1 {quality.f1:.4f}"
    )
    print(f"peak memory (max RSS): {peak_memory_gb():.2f} GB")


if __name__ == "__main__":
    main()

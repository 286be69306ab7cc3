"""Benchmark: fit and sample a synthetic replica of a 100,000-person linked population.

    .venv/bin/python bench/bench_synthetic.py                  # 100,000 persons, Gaussian copula
    .venv/bin/python bench/bench_synthetic.py --persons 20000 --synthesizer ctgan

Simulates the population (``srs.simulation.simulate``), ingests the extracts through the data
dictionaries and builds the linked datasets with the simulator's ground truth as the person
lookup (as ``tests/synthetic/conftest.py`` does, skipping Splink), then times
``synthetic.replica.build_replica`` (fit + sample + assembly of all four tables) and prints the
seconds of each step and the rows per table, real and synthetic.
Target (issue 7): fit + sample under 3 minutes with the default synthesiser.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from srs.deid import Pseudonymiser
from srs.ingest import ingest_file, load_dictionary
from srs.linked_datasets import LinkedDatasets, build_linked_datasets
from srs.offences import load_offences
from srs.simulation import SOURCES, simulate, write_simulation
from synthetic.replica import LINKED_TABLES, build_replica

TARGET_SECONDS = 180.0


def linked_population(persons: int, seed: int, timings: dict[str, float]) -> LinkedDatasets:
    """Simulate ``persons`` people and build their linked datasets, timing each step."""
    start = time.perf_counter()
    simulation = simulate(persons, seed)
    timings["simulate"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        paths = write_simulation(simulation, Path(folder))
        offences = load_offences()
        sources = {
            source: ingest_file(paths[source], load_dictionary(source), offences).accepted
            for source in SOURCES
        }
        timings["write + ingest"] = time.perf_counter() - start
    start = time.perf_counter()
    lookup = simulation.ground_truth.rename(columns={"person_id": "cluster_id"})
    linked = build_linked_datasets(sources, lookup, Pseudonymiser(bytes(32)), offences)
    timings["build linked datasets"] = time.perf_counter() - start
    return linked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--synthesizer", default="gaussian_copula")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None, help="CTGAN/TVAE only")
    args = parser.parse_args()

    timings: dict[str, float] = {}
    linked = linked_population(args.persons, args.seed, timings)
    start = time.perf_counter()
    replica = build_replica(
        linked.tables,
        linked.dictionaries,
        synthesizer=args.synthesizer,
        seed=args.seed,
        epochs=args.epochs,
        progress=True,
    )
    timings[f"replica: fit + sample ({args.synthesizer})"] = time.perf_counter() - start

    print(f"\n{args.persons:,} simulated persons")
    for step, seconds in timings.items():
        print(f"  {step:<40} {seconds:8.1f} s")
    print(f"\n  {'table':<22} {'real rows':>10} {'synthetic rows':>15}")
    for name in LINKED_TABLES:
        print(f"  {name:<22} {len(linked.tables[name]):>10,} {len(replica.tables[name]):>15,}")
    print("\n  repairs and clips (replica.notes):")
    for note, count in sorted(replica.notes.items()):
        print(f"    {note:<52} {count:>8,}")
    fit_sample = timings[f"replica: fit + sample ({args.synthesizer})"]
    verdict = "meets" if fit_sample <= TARGET_SECONDS else "misses"
    print(f"\n  fit + sample {fit_sample:.1f} s {verdict} the {TARGET_SECONDS:.0f} s target")


if __name__ == "__main__":
    main()

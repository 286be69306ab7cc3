"""Benchmark: make an open replica of a 100,000-person linked population, as ``srs synth`` does.

    .venv/bin/python bench/bench_synthetic.py                  # 100,000 persons, Gaussian copula
    .venv/bin/python bench/bench_synthetic.py --persons 20000 --synthesizer ctgan

Simulates the population (``srs.pipeline.simulation.simulate``), ingests the extracts through the data
dictionaries and builds the linked datasets with the simulator's ground truth as the person
lookup (as ``tests/synthetic/conftest.py`` does, skipping Splink). Then runs
``synthetic.open_replica.make_open_replica`` itself with the policies of ``policies/`` (hold out
a quarter of the persons, fit + sample the replica on the rest, run the privacy gates against
the holdout, score fidelity against the training side), timing each of its phases, and prints:

- the seconds of every step, and whether fit + sample meets the 3-minute target;
- the SDMetrics quality score, overall (the policy's ``min_quality_score`` aim) and per table;
- every privacy gate of every dataset: its figure, threshold, standard error, pass or fail;
- the research questions answered on the real (training) and synthetic tables side by side,
  with the policy's tolerance and whether each is within it.

Targets (issue 7): fit + sample under 3 minutes with the default synthesiser; SDMetrics quality
>= 0.85; every privacy gate passed; research questions within the policy tolerance.

The phases are timed by wrapping, for the duration of the call, the functions
``make_open_replica`` calls through its module (``split_by_person``, ``build_replica``,
``evaluate_privacy``, ``evaluate_fidelity``) and the gates ``evaluate_privacy`` calls; nothing
in the library changes, and the bench stops with an error if a phase was not seen.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType
from unittest import mock

import synthetic.fidelity
import synthetic.open_replica
import synthetic.privacy
from srs.governance.policy import load_policies
from srs.pipeline.deid import Pseudonymiser
from srs.pipeline.ingest import ingest_file, load_dictionary
from srs.pipeline.linked_datasets import LinkedDatasets, build_linked_datasets
from srs.pipeline.offences import load_offences
from srs.pipeline.simulation import SOURCES, simulate, write_simulation
from synthetic.open_replica import EvaluatedReplica, make_open_replica
from synthetic.replica import DEFAULT_SYNTHESIZER, LINKED_TABLES

TARGET_SECONDS = 180.0

# What make_open_replica calls, in order, and the label each phase is printed under.
PHASES = {
    "split_by_person": "split by person (training / holdout)",
    "build_replica": "fit + sample (build_replica)",
    "evaluate_privacy": "privacy gates (evaluate_privacy)",
    "evaluate_fidelity": "fidelity (evaluate_fidelity)",
}
GATES = {
    "exact_match_gate": "exact_matches",
    "dcr_gate": "distance_to_closest_record",
    "membership_gate": "membership_inference",
    "microdata_gate": "microdata_risk",
    "attribute_inference_gate": "attribute_inference",
}
RESEARCH_QUESTIONS = "compare_research_questions"


class Clock:
    """Wall-clock and CPU seconds (this process, all threads) spent inside a ``with`` block."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._start[0]
        self.cpu += time.process_time() - self._start[1]


def linked_population(persons: int, seed: int, timings: dict[str, Clock]) -> LinkedDatasets:
    """Simulate ``persons`` people and build their linked datasets, timing each step."""
    with timings.setdefault("simulate", Clock()):
        simulation = simulate(persons, seed)
    with tempfile.TemporaryDirectory() as folder, timings.setdefault("write + ingest", Clock()):
        paths = write_simulation(simulation, Path(folder))
        offences = load_offences()
        sources = {
            source: ingest_file(paths[source], load_dictionary(source), offences).accepted
            for source in SOURCES
        }
    with timings.setdefault("build linked datasets", Clock()):
        lookup = simulation.ground_truth.rename(columns={"person_id": "cluster_id"})
        linked = build_linked_datasets(sources, lookup, Pseudonymiser(bytes(32)), offences)
    return linked


def _timed(function: Callable, name: str, clocks: dict[str, Clock]) -> Callable:
    @functools.wraps(function)
    def timed(*args, **kwargs):
        with clocks.setdefault(name, Clock()):
            return function(*args, **kwargs)

    return timed


@contextmanager
def timing_phases(clocks: dict[str, Clock]) -> Iterator[None]:
    """Time each phase of ``make_open_replica`` (and each privacy gate, summed over the
    datasets, and the research questions) into ``clocks`` while inside."""
    targets: list[tuple[ModuleType, str]] = [
        *((synthetic.open_replica, name) for name in PHASES),
        *((synthetic.privacy, name) for name in GATES),
        (synthetic.fidelity, RESEARCH_QUESTIONS),
    ]
    with ExitStack() as stack:
        for module, name in targets:
            wrapped = _timed(getattr(module, name), name, clocks)
            stack.enter_context(mock.patch.object(module, name, wrapped))
        yield
    unseen = [name for _, name in targets if name not in clocks]
    if unseen:
        raise RuntimeError(
            f"make_open_replica no longer calls {', '.join(unseen)} through its module; "
            "update the bench's phase list"
        )


def _mark(passed: bool) -> str:
    return "pass" if passed else "FAIL"


def print_timings(
    persons: int, synthesizer: str, timings: dict[str, Clock], phases: dict[str, Clock]
) -> None:
    print(f"\n{persons:,} simulated persons; synthesiser {synthesizer}")
    print(f"\nTimings {'wall s':>51} {'cpu s':>8}")

    def line(indent: int, label: str, wall: float, cpu: float) -> None:
        print(f"{' ' * indent}{label:<{56 - indent}} {wall:8.1f} {cpu:8.1f}")

    for step, clock in timings.items():
        line(2, step, clock.wall, clock.cpu)
    print("  make_open_replica:")
    for name, label in PHASES.items():
        line(4, label, phases[name].wall, phases[name].cpu)
        if name == "evaluate_privacy":
            for gate, gate_label in GATES.items():
                line(6, gate_label, phases[gate].wall, phases[gate].cpu)
            line(
                6,
                "sampling and checks",
                phases[name].wall - sum(phases[gate].wall for gate in GATES),
                phases[name].cpu - sum(phases[gate].cpu for gate in GATES),
            )
        if name == "evaluate_fidelity":
            questions = phases[RESEARCH_QUESTIONS]
            line(
                6,
                "SDMetrics quality + distributions",
                phases[name].wall - questions.wall,
                phases[name].cpu - questions.cpu,
            )
            line(6, "research questions", questions.wall, questions.cpu)
    line(
        4,
        "total",
        sum(phases[name].wall for name in PHASES),
        sum(phases[name].cpu for name in PHASES),
    )
    print(f"  (wall-clock and this process's CPU seconds; {os.cpu_count()} CPUs)")


def print_rows(linked: LinkedDatasets, evaluated: EvaluatedReplica) -> None:
    print(
        f"\nRows ({evaluated.training_persons:,} training persons, "
        f"{evaluated.holdout_persons:,} held out)"
    )
    print(f"  {'table':<22} {'real rows':>10} {'synthetic rows':>15}")
    for name in LINKED_TABLES:
        real, synthetic_rows = len(linked.tables[name]), len(evaluated.replica.tables[name])
        print(f"  {name:<22} {real:>10,} {synthetic_rows:>15,}")
    print("  repairs and clips (replica.notes):")
    for note, count in sorted(evaluated.replica.notes.items()):
        print(f"    {note:<52} {count:>8,}")


def print_quality(evaluated: EvaluatedReplica) -> None:
    fidelity = evaluated.fidelity
    aim = fidelity.min_quality_score
    print(f"\nSDMetrics quality (replica against the training side; aim >= {aim:.2f})")
    print(f"  {'table':<22} {'shapes':>8} {'pair trends':>12} {'score':>8}  vs aim")
    for name, scores in fidelity.tables.items():
        score = scores["score"]
        print(
            f"  {name:<22} {scores['column_shapes']:>8.3f} {scores['column_pair_trends']:>12.3f} "
            f"{score:>8.3f}  {'meets' if score >= aim else 'below'}"
        )
    properties = fidelity.properties
    print(
        f"  {'all tables':<22} {properties['Column Shapes']:>8.3f} "
        f"{properties['Column Pair Trends']:>12.3f} {fidelity.overall_score:>8.3f}  "
        f"{'meets' if fidelity.quality_passed else 'below'} (overall: mean of the table scores)"
    )


def print_privacy(evaluated: EvaluatedReplica, noise_allowance: float) -> None:
    privacy = evaluated.privacy
    print(
        "\nPrivacy gates (figure against threshold; a gate fails when its figure exceeds the "
        f"threshold by more than {noise_allowance:g} standard errors)"
    )
    print(
        f"  {'dataset':<20} {'gate':<28} {'figure':>8} {'threshold':>9} {'std err':>8} "
        f"{'limit':>7}  verdict"
    )
    for name, dataset in privacy.datasets.items():
        for gate in dataset.gates:
            limit = gate.threshold + noise_allowance * gate.standard_error
            print(
                f"  {name:<20} {gate.gate:<28} {gate.figure:>8.4f} {gate.threshold:>9.4f} "
                f"{gate.standard_error:>8.4f} {limit:>7.4f}  {_mark(gate.passed)}"
            )
            print(f"      {gate.reason}")
            if gate.gate == "microdata_risk":
                risk = gate.details["replica"]
                print(
                    f"      replica (evidence): k-anonymity {risk['k_anonymity']} "
                    f"(k threshold {risk['k_threshold']}), {risk['sample_uniques']:,} of "
                    f"{risk['records']:,} records sample-unique on the quasi-identifiers"
                )
    failures = privacy.failures()
    verdict = "every gate passed" if privacy.passed else f"{len(failures)} gate(s) FAILED"
    print(f"  privacy verdict: {verdict}; export {'allowed' if privacy.passed else 'blocked'}")


def print_research_questions(evaluated: EvaluatedReplica) -> None:
    fidelity = evaluated.fidelity
    tolerance = fidelity.max_absolute_difference_percentage_points
    print(
        "\nResearch questions, real (training) vs synthetic, % "
        f"(policy tolerance: {tolerance:g} percentage points)"
    )
    print(
        f"  {'question':<30} {'group':<18} {'real':>6} {'synthetic':>9} {'diff pp':>8}  "
        "within tolerance"
    )
    for row in fidelity.research_questions.itertuples(index=False):
        print(
            f"  {row.question:<30} {row.group:<18} {row.real:>6.1f} {row.synthetic:>9.1f} "
            f"{row.difference:>+8.1f}  {'yes' if row.within_tolerance else 'NO'}"
        )
    within = int(fidelity.research_questions["within_tolerance"].sum())
    print(f"  {within} of {len(fidelity.research_questions)} figures within tolerance")


def print_targets(evaluated: EvaluatedReplica, phases: dict[str, Clock]) -> None:
    fit_sample = phases["build_replica"].wall
    fidelity = evaluated.fidelity
    within = int(fidelity.research_questions["within_tolerance"].sum())
    total = len(fidelity.research_questions)
    print("\nTargets (issue 7)")
    print(
        f"  fit + sample {fit_sample:.1f} s: "
        f"{'meets' if fit_sample <= TARGET_SECONDS else 'MISSES'} the "
        f"{TARGET_SECONDS:.0f} s (3-minute) target"
    )
    print(
        f"  SDMetrics quality {fidelity.overall_score:.3f}: "
        f"{'meets' if fidelity.quality_passed else 'MISSES'} the "
        f">= {fidelity.min_quality_score:.2f} aim"
    )
    print(
        f"  privacy gates: {'all passed' if evaluated.privacy.passed else 'FAILED'} "
        f"({len(evaluated.privacy.failures())} failed)"
    )
    print(
        f"  research questions: {within} of {total} within "
        f"{fidelity.max_absolute_difference_percentage_points:g} pp"
        + ("" if fidelity.research_questions_within_tolerance else " (NOT all)")
    )
    print(f"\n{evaluated.summary()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000, help="simulated persons")
    parser.add_argument("--synthesizer", default=DEFAULT_SYNTHESIZER)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None, help="CTGAN/TVAE only")
    parser.add_argument("--holdout-share", type=float, default=0.25)
    parser.add_argument(
        "--synthetic-persons",
        type=int,
        default=None,
        help="synthetic persons to sample (default: as many as training persons)",
    )
    parser.add_argument("--progress", action="store_true", help="show the replica's progress")
    args = parser.parse_args()

    policies = load_policies()
    timings: dict[str, Clock] = {}
    linked = linked_population(args.persons, args.seed, timings)
    phases: dict[str, Clock] = {}
    with timing_phases(phases):
        evaluated = make_open_replica(
            linked.tables,
            linked.dictionaries,
            policies,
            synthesizer=args.synthesizer,
            persons=args.synthetic_persons,
            seed=args.seed,
            holdout_share=args.holdout_share,
            progress=args.progress,
            epochs=args.epochs,
        )

    print_timings(args.persons, args.synthesizer, timings, phases)
    print_rows(linked, evaluated)
    print_quality(evaluated)
    print_privacy(evaluated, policies.synthetic.privacy.noise_allowance_standard_errors)
    print_research_questions(evaluated)
    print_targets(evaluated, phases)


if __name__ == "__main__":
    main()

"""Benchmark: linkage quality and wall time of ``link_tables`` beside plain Splink, side by side.

    .venv/bin/python bench/bench_linkage.py --persons 100000 --repeats 2

Scenarios, each run by both:

- the simulator's documented profile, and its hard profile (``simulate(noise="hard")``);
- the hard profile with 10% of one identifier blank or a placeholder (half each), one run per
  identifier (``--blank-roles``): pairwise precision must stay at or above 0.99;
- the FEBRL files (``make linkage-benchmark-data``): dataset4a + dataset4b linked (link only),
  dataset3 deduplicated.

"srs" is ``link_tables`` on the typed tables as simulated or read (standardisation, training,
prediction, clustering, the lookup), with ``policies/linkage.yaml`` as it is at run time.
The simulated extracts are linked as simulated, not through ingest: ingest would reject the
rows whose placeholders or padding break a data dictionary's patterns, and linkage is what is
measured here. "Splink, standard" is plain Splink 5 as a competent user would write it from
Splink's documentation: names and identifiers trimmed and upper-cased, dates as ISO text,
``cl.NameComparison`` with term frequencies, ``cl.DateOfBirthComparison``,
``cl.PostcodeComparison``, ``cl.ExactMatch``, ``block_on`` rules on single fields (and a
forename + surname rule), the match prior from a deterministic rule, u from random sampling,
m by expectation maximisation; clustered at the policy's match threshold. On the simulated
profiles a third run, "Splink, same model", gives the same comparisons, blocking and training
as ours to plain Splink on records already standardised: the time our wrapper is held to
(target: srs at most 1.25 x its time). Times are medians over ``--repeats`` runs, which
alternate between the tools.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

from srs.pipeline.ingest import load_dictionary
from srs.pipeline.linkage import (
    LINKAGE_COLUMNS,
    LinkageSettings,
    MappedIdentifier,
    SourceMapping,
    evaluate,
    identifier_comparisons,
    link_tables,
    load_linkage_settings,
    mapping_from_dictionary,
    override_settings,
    splink_settings,
    standardise,
)
from srs.pipeline.linkage.link import (
    _without_empty_columns,  # the settings link_tables runs with, for the same-model baseline
)
from srs.pipeline.simulation import SOURCES, simulate
from srs.pipeline.simulation.identities import PLACEHOLDERS

FEBRL = Path(__file__).resolve().parents[1] / ".cache" / "febrl"
BLANK_SHARE = 0.10
IDENTIFIER_ROLES = ("forename", "surname", "date_of_birth", "postcode", "pnc", "sex")
# FEBRL columns by linkage role (``address`` takes the address lines in order); a role the
# policy does not know is left out. soc_sec_id is an extra identifier, compared fuzzily.
FEBRL_ROLES: dict[str, str | tuple[str, ...]] = {
    "forename": "given_name",
    "surname": "surname",
    "date_of_birth": "date_of_birth",
    "postcode": "postcode",
    "street_number": "street_number",
    "address": ("address_1", "address_2"),
    "locality": "suburb",
    "region": "state",
}
FEBRL_IDENTIFIERS = {"soc_sec_id": MappedIdentifier("soc_sec_id", "fuzzy")}
# Plain Splink's blocking rules, and the most comparisons it is let make: a placeholder that
# plain Splink keeps as a value (1900-01-01 in 5% of records) makes one block of ~10^8 pairs,
# which exhausts memory; such a run is reported as skipped, with its count.
SIMULATED_PLAIN_BLOCKING = [["pnc"], ["date_of_birth"], ["postcode"], ["forename", "surname"]]
FEBRL_PLAIN_BLOCKING = [["soc_sec_id"], ["date_of_birth"], ["postcode"], ["forename", "surname"]]
PLAIN_MAX_COMPARISONS = 50_000_000


@dataclass
class Scenario:
    """Tables to link, how to read them, who is who, and the plain-Splink configuration."""

    name: str
    tables: dict[str, pd.DataFrame]
    mappings: dict[str, SourceMapping]
    truth: pd.DataFrame
    link_type: str  # dedupe_only, link_only, link_and_dedupe
    plain: Callable[[], SettingsCreator]
    plain_blocking: list[list[str]]
    plain_mappings: dict[str, SourceMapping] | None = None  # when plain Splink reads others
    same_model: bool = False


@dataclass
class Run:
    seconds: list[float]
    precision: float
    recall: float
    f1: float
    skipped: str | None = None


# ---------------------------------------------------------------- plain Splink
def plain_records(tables: dict[str, pd.DataFrame], mappings: dict[str, SourceMapping]):
    """What a competent user prepares for Splink: one frame per table with common column
    names, text trimmed and upper-cased, blanks as nulls, dates of birth as ISO text."""
    frames = {}
    for name, frame in tables.items():
        mapping = mappings[name]
        out = pd.DataFrame({"unique_id": name + ":" + frame[mapping.record_id].astype(str)})
        for role, column in mapping.columns.items():
            values = frame[column]
            if role == "date_of_birth":
                if not pd.api.types.is_datetime64_any_dtype(values):
                    values = pd.to_datetime(
                        values.astype("string").str.strip(),
                        format=mapping.date_format,
                        errors="coerce",
                    )
                text = values.dt.strftime("%Y-%m-%d")
            else:
                text = values.astype("string").str.strip().str.upper()
            text = text.astype(object).where(text.notna() & (text != ""), None)
            out[role] = text.to_numpy()
        frames[name] = out.reset_index(drop=True)
    return frames


def standard_comparisons(roles: set[str], postcode_uk: bool = True) -> list:
    """Splink's documented out-of-the-box comparisons for the roles present."""
    comparisons = []
    for role in ("forename", "surname"):
        if role in roles:
            comparisons.append(cl.NameComparison(role).configure(term_frequency_adjustments=True))
    if "date_of_birth" in roles:
        comparisons.append(cl.DateOfBirthComparison("date_of_birth", input_is_string=True))
    if "postcode" in roles:
        comparisons.append(
            cl.PostcodeComparison("postcode")
            if postcode_uk
            else cl.ExactMatch("postcode").configure(term_frequency_adjustments=True)
        )
    for role in ("street_number", "address_line", "locality", "pnc", "identifier", "sex"):
        if role in roles:
            comparisons.append(cl.ExactMatch(role))
    return comparisons


def _comparisons(frames: dict[str, pd.DataFrame], rules: list[list[str]]) -> int:
    """Pairs the blocking rules make (an upper bound: pairs in several blocks count again)."""
    everyone = pd.concat(frames.values(), ignore_index=True)
    total = 0
    for rule in rules:
        sizes = everyone.dropna(subset=rule).groupby(rule).size()
        total += int((sizes * (sizes - 1) // 2).sum())
    return total


def plain_splink(scenario: Scenario, threshold: float) -> tuple[pd.DataFrame | None, float | str]:
    """Plain Splink 5 on the user-prepared tables; the lookup and the wall time (or, when
    its blocking makes too many comparisons, None and why it was skipped)."""
    start = time.perf_counter()
    frames = plain_records(scenario.tables, scenario.plain_mappings or scenario.mappings)
    comparisons = _comparisons(frames, scenario.plain_blocking)
    if comparisons > PLAIN_MAX_COMPARISONS:
        return None, f"skipped: its blocking makes ~{comparisons:,} comparisons"
    db_api = DuckDBAPI()
    if scenario.link_type == "dedupe_only":
        inputs = db_api.register(pd.concat(frames.values(), ignore_index=True))
    else:
        inputs = [db_api.register(frame, table_name=f"t_{name}") for name, frame in frames.items()]
    # log_level None: a handler of Splink's own would print the warnings of later runs.
    linker = Linker(inputs, scenario.plain(), log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("forename", "surname", "date_of_birth")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=2_000_000, seed=42)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("forename", "surname")
    )
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    predictions = linker.inference.predict(threshold_match_probability=threshold)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, threshold)
    frame = clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]
    seconds = time.perf_counter() - start
    everyone = pd.concat([f[["unique_id"]] for f in frames.values()], ignore_index=True)
    lookup = everyone.merge(frame, on="unique_id", how="left")
    lookup["cluster_id"] = lookup["cluster_id"].fillna(lookup["unique_id"])
    parts = lookup["unique_id"].str.split(":", n=1, expand=True)
    lookup = pd.DataFrame(
        {"source": parts[0], "record_id": parts[1], "cluster_id": lookup["cluster_id"]}
    )
    return lookup, seconds


def same_model_splink(records: pd.DataFrame, settings: LinkageSettings) -> float:
    """Our comparisons, blocking and training given to plain Splink on standardised records."""
    start = time.perf_counter()
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(records), splink_settings(settings), log_level=None)
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
    clusters.as_pandas_dataframe()
    predictions.as_pandas_dataframe()
    return time.perf_counter() - start


# ---------------------------------------------------------------- scenarios
def simulated(name: str, persons: int, noise: str) -> Scenario:
    result = simulate(persons, 7, noise=noise)
    mappings = {source: mapping_from_dictionary(load_dictionary(source)) for source in SOURCES}
    roles = {role for mapping in mappings.values() for role in mapping.columns}
    return Scenario(
        name=name,
        tables=result.extracts,
        mappings=mappings,
        truth=result.ground_truth,
        link_type="dedupe_only",
        plain=lambda: SettingsCreator(
            link_type="dedupe_only",
            comparisons=standard_comparisons(roles),
            blocking_rules_to_generate_predictions=[
                block_on(*rule) for rule in SIMULATED_PLAIN_BLOCKING
            ],
            retain_intermediate_calculation_columns=False,
        ),
        plain_blocking=SIMULATED_PLAIN_BLOCKING,
        same_model=True,
    )


def with_blanks(base: Scenario, role: str, seed: int = 11) -> Scenario:
    """``base`` with 10% of ``role`` in every table blank (half) or a placeholder (half)."""
    rng = np.random.default_rng(seed)
    tables = {}
    for source, frame in base.tables.items():
        column = base.mappings[source].columns.get(role)
        frame = frame.copy()
        if column:
            values = frame[column].astype(object).to_numpy().copy()
            hit = np.flatnonzero(rng.random(len(values)) < BLANK_SHARE)
            as_placeholder = rng.random(len(hit)) < 0.5
            options = PLACEHOLDERS[role]
            values[hit[~as_placeholder]] = None
            for index in hit[as_placeholder]:
                values[index] = options[int(rng.integers(0, len(options)))]
            frame[column] = values
        tables[source] = frame
    return Scenario(
        name=f"hard, 10% {role} blank/placeholder",
        tables=tables,
        mappings=base.mappings,
        truth=base.truth,
        link_type=base.link_type,
        plain=base.plain,
        plain_blocking=base.plain_blocking,
    )


def _febrl(file: str) -> pd.DataFrame:
    return pd.read_csv(FEBRL / file, dtype=str, skipinitialspace=True, keep_default_na=False)


def febrl(name: str, files: dict[str, str], link_type: str) -> Scenario:
    known = set(LINKAGE_COLUMNS)
    columns = {role: column for role, column in FEBRL_ROLES.items() if role in known}
    tables = {label: _febrl(file) for label, file in files.items()}
    mapping = SourceMapping(
        record_id="rec_id",
        columns=columns,
        date_format="%Y%m%d",
        identifiers=FEBRL_IDENTIFIERS,
    )
    truth = pd.concat(
        [
            pd.DataFrame(
                {
                    "source": label,
                    "record_id": frame["rec_id"],
                    "person_id": frame["rec_id"].str.split("-").str[1],
                }
            )
            for label, frame in tables.items()
        ],
        ignore_index=True,
    )
    plain_roles = {"forename", "surname", "date_of_birth", "postcode", "street_number"}

    def plain() -> SettingsCreator:
        return SettingsCreator(
            link_type=link_type,
            comparisons=[
                *standard_comparisons(plain_roles, postcode_uk=False),
                cl.ExactMatch("suburb").configure(term_frequency_adjustments=True),
                cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            ],
            blocking_rules_to_generate_predictions=[
                block_on(*rule) for rule in FEBRL_PLAIN_BLOCKING
            ],
            retain_intermediate_calculation_columns=False,
        )

    plain_mapping = SourceMapping(
        record_id="rec_id",
        columns={
            "forename": "given_name",
            "surname": "surname",
            "date_of_birth": "date_of_birth",
            "postcode": "postcode",
            "street_number": "street_number",
            "suburb": "suburb",
            "soc_sec_id": "soc_sec_id",
        },
        date_format="%Y%m%d",
    )
    return Scenario(
        name=name,
        tables=tables,
        mappings={label: mapping for label in tables},
        truth=truth,
        link_type=link_type,
        plain=plain,
        plain_blocking=FEBRL_PLAIN_BLOCKING,
        plain_mappings={label: plain_mapping for label in tables},
    )


# ---------------------------------------------------------------- running
def run_ours(scenario: Scenario, settings: LinkageSettings) -> tuple[pd.DataFrame, float]:
    start = time.perf_counter()
    result = link_tables(scenario.tables, scenario.mappings, settings)
    return result.lookup, time.perf_counter() - start


def measure(scenario: Scenario, settings: LinkageSettings, repeats: int) -> dict[str, Run]:
    settings = override_settings(settings, {"link_type": scenario.link_type}, "the benchmark")
    ours, plain, same = [], [], []
    ours_lookup = plain_lookup = None
    skipped = None
    for _ in range(repeats):
        if skipped is None:
            plain_lookup, seconds = plain_splink(scenario, settings.match_threshold)
            if plain_lookup is None:
                skipped = str(seconds)
            else:
                plain.append(seconds)
        ours_lookup, seconds = run_ours(scenario, settings)
        ours.append(seconds)
        if scenario.same_model:
            records = standardise(scenario.tables, scenario.mappings, settings)
            model = identifier_comparisons(settings, scenario.mappings, records)
            model = _without_empty_columns(records, model, [])
            same.append(same_model_splink(records, model))
    runs = {}
    for label, lookup, seconds in (
        ("srs link_tables", ours_lookup, ours),
        ("Splink, standard", plain_lookup, plain),
    ):
        if lookup is None:
            runs[label] = Run([], float("nan"), float("nan"), float("nan"), skipped)
            continue
        quality = evaluate(lookup, scenario.truth)
        runs[label] = Run(seconds, quality.precision, quality.recall, quality.f1)
    if same:
        runs["Splink, same model"] = Run(same, float("nan"), float("nan"), float("nan"))
    return runs


def report(scenario: Scenario, runs: dict[str, Run]) -> None:
    records = sum(len(t) for t in scenario.tables.values())
    print(f"\n== {scenario.name}  ({records:,} records, {scenario.link_type})")
    print(f"   {'':22} {'precision':>9} {'recall':>8} {'F1':>8} {'median s':>9}  runs")
    for label, run in runs.items():
        if run.skipped:
            print(f"   {label:22} {run.skipped}")
            continue
        figures = (
            f"{run.precision:9.4f} {run.recall:8.4f} {run.f1:8.4f}"
            if not np.isnan(run.f1)
            else f"{'-':>9} {'-':>8} {'-':>8}"
        )
        times = [round(t, 1) for t in run.seconds]
        print(f"   {label:22} {figures} {statistics.median(run.seconds):9.1f}  {times}")
    if "Splink, same model" in runs:
        ratio = statistics.median(runs["srs link_tables"].seconds) / statistics.median(
            runs["Splink, same model"].seconds
        )
        print(f"   time srs / Splink same model: {ratio:.2f} (target <= 1.25)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=10_000, help="persons to simulate")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each tool")
    parser.add_argument(
        "--blank-roles",
        default=",".join(IDENTIFIER_ROLES),
        help="identifiers to blank 10%% of, one scenario each (comma-separated; '' for none)",
    )
    parser.add_argument("--no-febrl", action="store_true", help="skip the FEBRL files")
    args = parser.parse_args()
    blank_roles = [r for r in args.blank_roles.split(",") if r]
    unknown = set(blank_roles) - set(IDENTIFIER_ROLES)
    if unknown:
        parser.error(f"--blank-roles: unknown {', '.join(sorted(unknown))}; use {IDENTIFIER_ROLES}")
    logging.getLogger("splink").setLevel(logging.ERROR)
    settings = load_linkage_settings()
    print(f"persons: {args.persons:,}   repeats: {args.repeats}   linkage roles: {LINKAGE_COLUMNS}")
    documented = simulated("simulated, documented profile", args.persons, "documented")
    report(documented, measure(documented, settings, args.repeats))
    del documented
    hard = simulated("simulated, hard profile", args.persons, "hard")
    runs = measure(hard, settings, args.repeats)
    report(hard, runs)
    hard_f1 = runs["srs link_tables"].f1
    worst = 1.0
    for role in blank_roles:
        scenario = with_blanks(hard, role)
        runs = measure(scenario, settings, 1)
        report(scenario, runs)
        worst = min(worst, runs["srs link_tables"].precision)
    print(f"\nhard profile F1 (srs): {hard_f1:.4f} (target >= 0.98)")
    if blank_roles:
        print(
            f"lowest precision with 10% of an identifier blank or placeholder: {worst:.4f} (target >= 0.99)"
        )
    if args.no_febrl:
        return
    if not (FEBRL / "dataset3.csv").exists():
        print(f"\nFEBRL files not found in {FEBRL}: run `make linkage-benchmark-data`")
        return
    for scenario in (
        febrl(
            "FEBRL dataset4a + dataset4b",
            {"4a": "dataset4a.csv", "4b": "dataset4b.csv"},
            "link_only",
        ),
        febrl("FEBRL dataset3", {"3": "dataset3.csv"}, "dedupe_only"),
    ):
        report(scenario, measure(scenario, settings, args.repeats))


if __name__ == "__main__":
    main()

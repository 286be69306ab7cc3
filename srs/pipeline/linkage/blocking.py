"""Blocking, measured: which record pairs linkage compares, counted before any is scored.

Linkage compares a pair of records only when it agrees on every column of at least one of
the blocking rules in ``policies/linkage.yaml`` (a union of blocks). This module derives the
blocking keys rules may name besides the standard columns (initials, Soundex codes, day and
month of birth), counts the comparisons each rule makes alone and cumulatively (Splink's
blocking analysis), measures blocking recall against a ground truth (the share of true pairs
some rule compares: a pair no rule compares can never be linked), and holds a run to the
policy's comparison budget.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import jellyfish
import numpy as np
import pandas as pd

from srs.pipeline.linkage.backends import database_api, input_tables
from srs.pipeline.linkage.errors import LinkageError
from srs.pipeline.linkage.model import splink_settings
from srs.pipeline.linkage.settings import LinkageSettings

# Keys `standardise` adds for blocking rules to name, and what each holds. Derived from the
# standardised names and dates, so a missing name or date gives a missing key (never a block).
BLOCKING_KEYS = {
    "forename_initial": "first letter of the forename",
    "surname_initial": "first letter of the surname",
    "forename_soundex": "Soundex code of the forename (ROBERT and RUPERT: R163)",
    "surname_soundex": "Soundex code of the surname (SMITH and SMYTHE: S530)",
    "name_soundex": "Soundex codes of forename and surname in alphabetical order, so names "
    "that sound alike agree even with forename and surname transposed",
    "birth_month_day": "month and day of birth (MM-DD), agreeing when the year is mistyped",
}
# Below this many pairs in all (the rules' counts added up), Splink counts the cumulative
# comparisons exactly; above, it estimates them from a sample of records of this many pairs.
EXACT_COUNT_PAIRS = 20_000_000


class ComparisonBudgetExceeded(LinkageError):
    """The blocking rules would make more comparisons than the policy's budget allows."""


def _soundex(values: pd.Series) -> pd.Series:
    # Each distinct name is coded once: names repeat a great deal.
    codes = {v: jellyfish.soundex(v) for v in values.dropna().unique() if v}
    return values.map(codes).astype(object).where(values.notna(), None)


def add_blocking_keys(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` (standardised) with the columns of :data:`BLOCKING_KEYS` added.

    Example: MICHAELA NEUMANN born 1915-11-11 gets forename_initial M, surname_initial N,
    forename_soundex M240, surname_soundex N550, name_soundex "M240 N550" and birth_month_day
    11-11; NEUMANN MICHAELA (transposed) gets the same name_soundex.
    """
    taken = sorted(set(BLOCKING_KEYS) & set(records.columns))
    if taken:
        raise LinkageError(
            f"identifier(s) {', '.join(taken)} take the name of a blocking key; give them "
            "another name in the mapping"
        )
    keys = pd.DataFrame(index=records.index)
    for role in ("forename", "surname"):
        names = records[role].astype(object).where(records[role].notna(), None)
        keys[f"{role}_initial"] = names.str[:1].astype(object).where(names.notna(), None)
        keys[f"{role}_soundex"] = _soundex(names)
    both = keys["forename_soundex"].notna() & keys["surname_soundex"].notna()
    keys["name_soundex"] = [
        " ".join(sorted((f, s))) if ok else None
        for f, s, ok in zip(keys["forename_soundex"], keys["surname_soundex"], both, strict=True)
    ]
    born = records["date_of_birth"]
    keys["birth_month_day"] = born.str[5:10].astype(object).where(born.notna(), None)
    return pd.concat([records, keys], axis=1)


# ---------------------------------------------------------------- counting
def pairs_among(group_sizes: pd.Series) -> int:
    """Record pairs within groups of these sizes: ``n`` records make ``n (n - 1) / 2``."""
    return int((group_sizes * (group_sizes - 1) // 2).sum())


def rule_text(rule: list[str] | tuple[str, ...]) -> str:
    """A rule as the policy writes it: ``[surname_soundex, birth_year]``."""
    return "[" + ", ".join(rule) + "]"


def check_rule_columns(records: pd.DataFrame, rules: list[list[str]], where: str) -> None:
    """Refuse a rule that names a column the standardised records lack (a typo, an old name)."""
    for rule in rules:
        unknown = [column for column in rule if column not in records.columns]
        if unknown:
            known = [c for c in records.columns if c not in ("unique_id", "record_id")]
            raise LinkageError(
                f"{where} rule {rule_text(rule)} names {', '.join(unknown)}, which is not a column "
                f"of the standardised records; rules may name {', '.join(known)}"
            )


@dataclass(frozen=True)
class RuleComparisons:
    """What one blocking rule compares, alone and after the rules before it."""

    rule: tuple[str, ...]
    comparisons: int  # pairs this rule alone compares (exact)
    new_comparisons: int  # pairs no earlier rule compares
    cumulative: int  # pairs this rule and the earlier ones compare
    largest_block: str | None  # the value shared by most records, and how many share it
    largest_block_records: int
    recall: float | None = None  # share of true pairs this rule compares (with a truth)
    cumulative_recall: float | None = None  # ... that this rule or an earlier one compares


@dataclass(frozen=True)
class BlockingAnalysis:
    """The comparisons of every blocking rule, the budget, and blocking recall if measured."""

    records: int
    link_type: str
    rules: list[RuleComparisons]
    budget: int
    estimated: bool  # cumulative counts estimated by Splink from a sample of records
    true_pairs: int | None = None
    records_without_truth: int = 0

    @property
    def comparisons(self) -> int:
        """Pairs all rules compare together (what linkage scores)."""
        return self.rules[-1].cumulative if self.rules else 0

    def over_budget(self) -> RuleComparisons | None:
        """The first rule at which the comparisons pass the budget (None when within it)."""
        return next((r for r in self.rules if r.cumulative > self.budget), None)


def pairs_in_blocks(
    records: pd.DataFrame, rule: list[str], link_type: str
) -> tuple[int, object, int]:
    """Pairs one rule compares, exactly, from its block sizes; and its largest block."""
    keyed = records[[*rule, "source_dataset"]].dropna(subset=rule)
    if keyed.empty:
        return 0, None, 0
    sizes = keyed.groupby(rule, sort=False).size()
    pairs = pairs_among(sizes)
    if link_type == "link_only":
        # Only pairs of records from different tables: all pairs less those within a table.
        within = keyed.groupby([*rule, "source_dataset"], sort=False).size()
        pairs = int((sizes.pow(2).sum() - within.pow(2).sum()) // 2)
    largest = sizes.idxmax()
    value = " / ".join(map(str, largest)) if isinstance(largest, tuple) else str(largest)
    return pairs, value, int(sizes.max())


def _cumulative_comparisons(
    records: pd.DataFrame, settings: LinkageSettings, total: int
) -> tuple[list[int], bool]:
    """Pairs the rules compare so far, rule by rule, as Splink counts them for prediction."""
    from splink import Linker

    proportion = 1.0 if total <= EXACT_COUNT_PAIRS else math.sqrt(EXACT_COUNT_PAIRS / total)
    db_api = database_api(settings.backend)
    tables = input_tables(db_api, records, settings.link_type)
    linker = Linker(
        tables if settings.link_type != "dedupe_only" else tables[0],
        splink_settings(settings),
        log_level=None,
    )
    with warnings.catch_warnings():
        # Splink warns when a rule's sampled count is small; the result says it is estimated.
        warnings.simplefilter("ignore", UserWarning)
        counts = linker.blocking_analysis.count_comparisons_from_blocking_rules(
            record_sample_proportion=proportion
        )
    return [int(c["cumulative_comparison_count"]) for c in counts], proportion < 1.0


def analyse_blocking(
    records: pd.DataFrame, settings: LinkageSettings, truth: pd.DataFrame | None = None
) -> BlockingAnalysis:
    """Comparisons of each blocking rule alone and cumulatively, and blocking recall.

    ``records`` are standardised (:func:`srs.pipeline.linkage.standardise`); ``truth`` (source,
    record_id, person_id), when given, measures the share of true pairs the rules compare.
    The cumulative counts are Splink's (exact below :data:`EXACT_COUNT_PAIRS` pairs, else
    estimated); the rest is counted exactly.
    """
    rules = settings.blocking_rules
    link_type = settings.link_type
    check_rule_columns(records, rules, "blocking")
    alone = [pairs_in_blocks(records, rule, link_type) for rule in rules]
    cumulative, estimated = _cumulative_comparisons(records, settings, sum(a[0] for a in alone))
    recall = cumulative_recall = [None] * len(rules)
    true_pairs, without_truth = None, 0
    if truth is not None:
        true_pairs, recall, cumulative_recall, without_truth = blocking_recall(
            records, truth, rules, link_type
        )
    counted = []
    previous = 0
    for index, rule in enumerate(rules):
        counted.append(
            RuleComparisons(
                rule=tuple(rule),
                comparisons=alone[index][0],
                new_comparisons=cumulative[index] - previous,
                cumulative=cumulative[index],
                largest_block=alone[index][1],
                largest_block_records=alone[index][2],
                recall=recall[index],
                cumulative_recall=cumulative_recall[index],
            )
        )
        previous = cumulative[index]
    return BlockingAnalysis(
        records=len(records),
        link_type=link_type,
        rules=counted,
        budget=settings.comparison_budget.limit(len(records)),
        estimated=estimated,
        true_pairs=true_pairs,
        records_without_truth=without_truth,
    )


# ---------------------------------------------------------------- recall
def _truth_per_record(records: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    """The true person of each record, by position in ``records`` (None where truth has none)."""
    needed = {"source", "record_id", "person_id"}
    missing = needed - set(truth.columns)
    if missing:
        raise LinkageError(
            f"the ground truth lacks column(s) {', '.join(sorted(missing))}; it needs source "
            "(the table's name), record_id and person_id, one row per record"
        )
    truth = truth[["source", "record_id", "person_id"]].astype(object)
    truth = truth.assign(
        source=truth["source"].astype(str), record_id=truth["record_id"].astype(str)
    )
    tables = set(records["source_dataset"])
    unknown = sorted(set(truth["source"]) - tables)
    if unknown:
        raise LinkageError(
            f"the ground truth names table(s) {', '.join(unknown)}, which are not among the "
            f"tables analysed ({', '.join(sorted(tables))}); its source column must hold the "
            "names the tables are given"
        )
    twice = truth.duplicated(["source", "record_id"])
    if twice.any():
        source, record_id = truth.loc[twice, ["source", "record_id"]].iloc[0]
        raise LinkageError(
            f"the ground truth gives record {record_id!r} of table {source!r} more than one "
            "person; give each record one row"
        )
    if truth["person_id"].isna().any():
        raise LinkageError(
            f"the ground truth has {int(truth['person_id'].isna().sum()):,} row(s) without a "
            "person_id; give every row one"
        )
    person = records[["source_dataset", "record_id"]].merge(
        truth.rename(columns={"source": "source_dataset"}),
        on=["source_dataset", "record_id"],
        how="left",
    )["person_id"]
    if person.notna().sum() == 0:
        raise LinkageError(
            "no record of the tables is in the ground truth; its source and record_id must "
            "name the tables and their record ids"
        )
    return person.astype(str).where(person.notna(), None)


def blocking_recall(
    records: pd.DataFrame, truth: pd.DataFrame, rules: list[list[str]], link_type: str
) -> tuple[int, list[float], list[float], int]:
    """True pairs, the share of them each rule compares and the share the rules so far do.

    A pair is compared by a rule when both records hold every column of the rule and agree
    on it. Under ``link_only`` only pairs from different tables count (the others are never
    compared). Also returned: how many records have no row in the truth (left out).
    """
    person = _truth_per_record(records.reset_index(drop=True), truth)
    known = pd.DataFrame(
        {"position": np.arange(len(records)), "person": person.to_numpy()}
    ).dropna()
    pairs = known.merge(known, on="person", suffixes=("_l", "_r"))
    pairs = pairs[pairs["position_l"] < pairs["position_r"]]
    left, right = pairs["position_l"].to_numpy(), pairs["position_r"].to_numpy()
    if link_type == "link_only":
        source = records["source_dataset"].to_numpy()
        across = source[left] != source[right]
        left, right = left[across], right[across]
    without_truth = len(records) - len(known)
    if len(left) == 0:
        raise LinkageError(
            "the ground truth has no two records of one person that linkage could compare; "
            "blocking recall needs at least one true pair"
        )
    compared_so_far = np.zeros(len(left), dtype=bool)
    recall, cumulative = [], []
    for rule in rules:
        compared = np.ones(len(left), dtype=bool)
        for column in rule:
            values = records[column].to_numpy(dtype=object)
            l_values, r_values = values[left], values[right]
            filled = pd.notna(l_values) & pd.notna(r_values)
            compared &= filled & (l_values == r_values)
        compared_so_far |= compared
        recall.append(float(compared.mean()))
        cumulative.append(float(compared_so_far.mean()))
    return len(left), recall, cumulative, without_truth


# ---------------------------------------------------------------- the budget
def check_comparison_budget(
    records: pd.DataFrame, settings: LinkageSettings
) -> BlockingAnalysis | None:
    """Refuse, before any training, blocking rules that would make more comparisons than the
    policy's ``comparison_budget``; the message names the rule that passes it.

    Each rule's own count is exact and cheap (block sizes), so a rule that alone passes the
    budget is refused without making a pair; only when the rules together might pass it are
    their cumulative comparisons counted (by Splink). Training rules are checked for unknown
    columns too.
    """
    check_rule_columns(records, settings.blocking_rules, "blocking")
    check_rule_columns(
        records, settings.training.deterministic_rules, "training.deterministic_rules"
    )
    check_rule_columns(records, settings.training.em_blocking, "training.em_blocking")
    budget = settings.comparison_budget.limit(len(records))
    alone = [pairs_in_blocks(records, r, settings.link_type) for r in settings.blocking_rules]
    for rule, (pairs, value, size) in zip(settings.blocking_rules, alone, strict=True):
        if pairs > budget:
            raise ComparisonBudgetExceeded(
                _over_budget_message(rule, pairs, budget, len(records), settings, value, size)
            )
    if sum(a[0] for a in alone) <= budget:
        return None
    analysis = analyse_blocking(records, settings)
    over = analysis.over_budget()
    if over is not None:
        raise ComparisonBudgetExceeded(
            _over_budget_message(
                list(over.rule), over.cumulative, budget, len(records), settings, cumulative=True
            )
        )
    return analysis


def _over_budget_message(
    rule: list[str],
    pairs: int,
    budget: int,
    records: int,
    settings: LinkageSettings,
    value: object = None,
    size: int = 0,
    cumulative: bool = False,
) -> str:
    spec = settings.comparison_budget
    stated = f"comparison_budget.max_comparisons {spec.max_comparisons:,}"
    if spec.max_per_record is not None and budget < spec.max_comparisons:
        stated = f"comparison_budget.max_per_record {spec.max_per_record:g} x {records:,} records"
    what = (
        f"with the rules before it, blocking rule {rule_text(rule)} makes {pairs:,} comparisons"
        if cumulative
        else f"blocking rule {rule_text(rule)} alone makes {pairs:,} comparisons"
    )
    largest = (
        f" (its largest block: {size:,} records share {value!r}; if that value means "
        "'not recorded', add it to standardisation.missing_values)"
        if size > 1
        else ""
    )
    return (
        f"{what}, over the comparison budget of {budget:,} ({stated} in linkage.yaml){largest}; "
        "add a column to that rule, remove it, or raise the budget; `srs link analyse` shows "
        "every rule's comparisons"
    )

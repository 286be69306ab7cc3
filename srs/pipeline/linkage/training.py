"""Training the model without labels: the match prior from deterministic rules, u from random
pairs, m by expectation maximisation, on a seeded sample when the records are many."""

from __future__ import annotations

import pandas as pd

from srs.pipeline.linkage.blocking import pairs_in_blocks
from srs.pipeline.linkage.errors import LinkageError
from srs.pipeline.linkage.settings import TrainingSpec


def any_sure_pair(records: pd.DataFrame, training: TrainingSpec, link_type: str) -> bool:
    """Whether any two records (of different tables under link_only) agree on a rule of
    ``training.deterministic_rules``, the pairs the match prior is estimated from."""
    return any(
        pairs_in_blocks(records, rule, link_type)[0] > 0 for rule in training.deterministic_rules
    )


def estimate_match_prior(linker, deterministic: list, training: TrainingSpec) -> None:  # noqa: ANN001
    """Estimate the prior that two random records match from the pairs the deterministic
    rules find, trusting them to find ``training.deterministic_recall`` of the matches."""
    try:
        linker.training.estimate_probability_two_random_records_match(
            deterministic, recall=training.deterministic_recall
        )
    except ValueError as exc:
        # Splink refuses when the deterministic rules find more pairs than the stated recall
        # allows: usually many records share one value that means "none" (a default police
        # number, a system date) and should be a placeholder in the policy.
        raise LinkageError(
            f"training.deterministic_rules {training.deterministic_rules} pair more records "
            f"than deterministic_recall {training.deterministic_recall} allows ({exc}); look for "
            "one value shared by many records (a default identifier or date) and add it to "
            "standardisation.missing_values in linkage.yaml, or, if nearly every record has "
            "its match in the tables, raise deterministic_recall"
        ) from exc


def training_sample(records: pd.DataFrame, training: TrainingSpec, link_type: str) -> pd.DataFrame:
    """A seeded random sample of ``training.max_records`` records (all of them when fewer).

    When sources are linked, a source the sample misses (a very small one) comes in whole:
    each source needs records to train on.
    """
    if len(records) <= training.max_records:
        return records
    sample = records.sample(n=training.max_records, random_state=training.seed)
    if link_type != "dedupe_only":
        missed = ~records["source_dataset"].isin(set(sample["source_dataset"]))
        sample = pd.concat([sample, records[missed]])
    return sample


def expectation_maximisation(linker, rule: list[str]) -> None:  # noqa: ANN001
    """Estimate the m probabilities by expectation maximisation on the pairs ``rule`` blocks."""
    from splink import block_on

    try:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule))
    except ValueError as exc:
        if "below the minimum allowed" not in str(exc):
            raise
        # Splink 5 refuses an m or u probability that training drove to exactly 0: a level
        # that (almost) no pair in this block reaches, usually on small or very clean data.
        raise LinkageError(
            f"training blocked on {', '.join(rule)} drove the probability of a comparison level "
            "that almost no pair reaches to 0, which Splink cannot use; the data is too small or "
            "too clean to train that level: take the rule out of training.em_blocking, or the "
            "level's comparison out of comparisons, in a --settings file, or link more records"
        ) from exc

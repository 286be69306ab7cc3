"""Making an open replica: keep real persons back, synthesise from the rest, gate, evaluate.

``make_open_replica`` splits the real linked tables by person (a person's journeys, victims
and reoffending stay on one side), fits the replica on the training side only, runs every
privacy gate against the held-out persons (the synthesiser never saw them, so they show what
chance looks like) and scores fidelity against the training side. Pure computation on data
frames; storing, reporting and exporting are the caller's (``srs synth``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from srs.governance.policy import PolicySet
from synthetic.errors import SyntheticError
from synthetic.fidelity import FidelityReport, evaluate_fidelity
from synthetic.privacy import PrivacyReport, evaluate_privacy
from synthetic.replica import DEFAULT_SYNTHESIZER, Replica, build_replica

PERSONS, JOURNEYS, VICTIMS, REOFFENDING = (
    "linked/persons",
    "linked/journeys",
    "linked/victims",
    "linked/reoffending",
)


@dataclass
class EvaluatedReplica:
    """A replica with the privacy gates' verdict and its fidelity to the training data."""

    replica: Replica
    privacy: PrivacyReport
    fidelity: FidelityReport
    training_persons: int
    holdout_persons: int

    @property
    def passed(self) -> bool:
        """True when every privacy gate passed: only then may the replica be exported."""
        return self.privacy.passed

    def summary(self) -> str:
        """One paragraph: quality, research questions and the privacy verdict."""
        fidelity = self.fidelity.to_dict()
        # The verdicts as judged inside, on the unprotected real answers.
        questions = self.fidelity.research_questions
        within = int(questions["within_tolerance"].sum())
        verdict = (
            "passed every privacy gate"
            if self.passed
            else ("FAILED the privacy gates: " + "; ".join(self.privacy.failures()))
        )
        return (
            f"{self.replica.synthesizer} replica of {self.training_persons:,} training persons "
            f"({self.holdout_persons:,} held out): SDMetrics quality "
            f"{fidelity.get('overall_score', float('nan')):.3f}; {within} of {len(questions)} "
            f"research-question figures within tolerance; {verdict}"
        )


def split_by_person(
    tables: Mapping[str, pd.DataFrame], holdout_share: float, seed: int
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Training and holdout sides of the linked tables, split by person (and by their cases)."""
    if not 0 < holdout_share < 1:
        raise SyntheticError(f"holdout_share must be between 0 and 1, not {holdout_share}")
    missing = [name for name in (PERSONS, JOURNEYS, VICTIMS, REOFFENDING) if name not in tables]
    if missing:
        raise SyntheticError(f"the linked tables lack {', '.join(missing)}")
    persons = tables[PERSONS]["person_key"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    held = set(rng.choice(persons, size=max(1, round(len(persons) * holdout_share)), replace=False))

    def side(keep_held: bool) -> dict[str, pd.DataFrame]:
        def mine(keys: pd.Series) -> np.ndarray:
            return keys.astype(str).isin(held).to_numpy() == keep_held

        journeys = tables[JOURNEYS][mine(tables[JOURNEYS]["person_key"])]
        cases = set(journeys["case_key"].astype(str))
        return {
            PERSONS: tables[PERSONS][mine(tables[PERSONS]["person_key"])].reset_index(drop=True),
            JOURNEYS: journeys.reset_index(drop=True),
            VICTIMS: tables[VICTIMS][
                tables[VICTIMS]["case_key"].astype(str).isin(cases).to_numpy()
            ].reset_index(drop=True),
            REOFFENDING: tables[REOFFENDING][mine(tables[REOFFENDING]["person_key"])].reset_index(
                drop=True
            ),
        }

    return side(False), side(True)


def make_open_replica(
    tables: Mapping[str, pd.DataFrame],
    dictionaries: Mapping[str, Sequence[Mapping[str, Any]]],
    policies: PolicySet,
    *,
    synthesizer: str = DEFAULT_SYNTHESIZER,
    persons: int | None = None,
    seed: int = 0,
    holdout_share: float = 0.25,
    progress: bool = True,
    epochs: int | None = None,
) -> EvaluatedReplica:
    """Hold out ``holdout_share`` of the real persons, build a replica from the rest, and
    evaluate it: the privacy gates (against the holdout) and fidelity (against training).

    ``persons`` defaults to as many synthetic persons as there are training persons.
    """
    training, holdout = split_by_person(tables, holdout_share, seed)
    replica = build_replica(
        training,
        {name: list(entries) for name, entries in dictionaries.items()},
        synthesizer=synthesizer,
        persons=persons,
        seed=seed,
        progress=progress,
        epochs=epochs,
    )
    privacy = evaluate_privacy(training, holdout, replica.tables, policies.synthetic)
    fidelity = evaluate_fidelity(
        training,
        replica.tables,
        dictionaries,
        max_absolute_difference_percentage_points=(
            policies.synthetic.research_questions.max_absolute_difference_percentage_points
        ),
        min_quality_score=policies.synthetic.fidelity.min_quality_score,
        sdc=policies.sdc,
    )
    return EvaluatedReplica(
        replica=replica,
        privacy=privacy,
        fidelity=fidelity,
        training_persons=len(training[PERSONS]),
        holdout_persons=len(holdout[PERSONS]),
    )

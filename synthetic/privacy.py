"""Privacy gates a synthetic replica must pass before export, each measured against a real holdout.

For every dataset: exact copies of real rows, distance to closest record (DCR), a
membership-inference attack, the microdata risk checks of ``disclosure.microdata`` and an
attribute-inference attack. Pure computation: real training tables, a real holdout (records the
synthesiser never saw), the replica and ``policies/synthetic.yaml`` in; a ``PrivacyReport`` out.

Distances are Gower distances over the dataset's declared quasi-identifiers and sensitive
attributes: a categorical mismatch counts 1, a numeric or date difference counts its share of
the training range, a missing value against a present one counts 1, averaged over the columns.
They are evidence, not a guarantee; only the differentially private mode carries a formal one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from scipy.stats import rankdata

from disclosure.microdata import assess_microdata
from srs.governance.policy import SyntheticDatasetSpec, SyntheticPolicy
from synthetic.errors import SyntheticError

GUARANTEE_STATEMENT = (
    "Distance-based measures (exact matches, distance to closest record, membership and "
    "attribute inference) are evidence that the replica does not reproduce real records, not "
    "a guarantee; only a replica made in the differentially private mode carries a formal "
    "privacy guarantee."
)
MISSING = "<missing>"


class PrivacySpecError(SyntheticError, ValueError):
    """The tables or the policy do not fit together (a dataset or column is missing)."""


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict on one dataset: the figure, the threshold, and why."""

    gate: str
    figure: float
    threshold: float
    passed: bool
    reason: str
    standard_error: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "figure": _json_number(self.figure),
            "threshold": _json_number(self.threshold),
            "standard_error": _json_number(self.standard_error),
            "passed": self.passed,
            "reason": self.reason,
            "details": {key: _json_value(value) for key, value in self.details.items()},
        }


@dataclass(frozen=True)
class DatasetPrivacy:
    """Every gate's verdict on one synthetic dataset."""

    dataset: str
    gates: list[GateResult]

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "passed": self.passed,
            "gates": [gate.to_dict() for gate in self.gates],
        }


@dataclass(frozen=True)
class PrivacyReport:
    """The privacy gates of a replica: per dataset and overall, with the reason for each verdict.

    A replica whose report has not ``passed`` cannot be exported; ``failures()`` says why.
    """

    datasets: dict[str, DatasetPrivacy]
    differentially_private: bool = False
    statement: str = GUARANTEE_STATEMENT

    @property
    def passed(self) -> bool:
        return all(dataset.passed for dataset in self.datasets.values())

    def failed_gates(self) -> list[str]:
        """One short line per failed gate: ``dataset: gate``."""
        return [
            f"{name}: {gate.gate}"
            for name, dataset in self.datasets.items()
            for gate in dataset.gates
            if not gate.passed
        ]

    def failures(self) -> list[str]:
        """One line per failed gate: ``dataset: gate: reason``."""
        return [
            f"{name}: {gate.gate}: {gate.reason}"
            for name, dataset in self.datasets.items()
            for gate in dataset.gates
            if not gate.passed
        ]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-safe data (for the export package and the HTML report)."""
        return {
            "passed": self.passed,
            "differentially_private": self.differentially_private,
            "statement": self.statement,
            "failures": self.failures(),
            "datasets": {name: dataset.to_dict() for name, dataset in self.datasets.items()},
        }


PUBLISHED_DECIMALS = 3


def publishable_privacy(report: Any) -> Any:
    """A privacy report (``PrivacyReport.to_dict()``) as it may leave the environment: every
    figure rounded to ``PUBLISHED_DECIMALS`` decimals (0.1 of a percentage point).

    The gates' shares, baselines and distances are computed on real training and holdout rows;
    unrounded, a share of a known holdout size gives back an exact count of real people.
    Verdicts, reasons (already rounded to 0.1%), and counts of synthetic rows are unchanged.
    """
    if isinstance(report, float):
        return round(report, PUBLISHED_DECIMALS) if report == report else report
    if isinstance(report, dict):
        return {key: publishable_privacy(value) for key, value in report.items()}
    if isinstance(report, list | tuple):
        return [publishable_privacy(value) for value in report]
    return report


def evaluate_privacy(
    training: Mapping[str, pd.DataFrame],
    holdout: Mapping[str, pd.DataFrame],
    synthetic: Mapping[str, pd.DataFrame],
    policy: SyntheticPolicy,
    *,
    datasets: Sequence[str] | None = None,
    differentially_private: bool = False,
) -> PrivacyReport:
    """Run every privacy gate on each synthetic dataset that the policy declares.

    ``training`` holds the real tables the synthesiser was fitted on, ``holdout`` real rows of
    the same tables it never saw (a random 20-30% kept back before fitting), ``synthetic`` the
    replica; all keyed by dataset name (``linked/persons``). ``datasets`` restricts the check to
    some names (default: every synthetic table). Every synthetic table must be declared in
    ``policy.datasets``, so nothing is exported unchecked.

    >>> report = evaluate_privacy(train, holdout, replica, load_policies().synthetic)  # doctest: +SKIP
    >>> report.passed, report.failures()  # doctest: +SKIP
    """
    names = list(datasets) if datasets is not None else list(synthetic)
    if not names:
        raise PrivacySpecError("no synthetic datasets to check; pass at least one table")
    results = {}
    for name in names:
        spec = policy.datasets.get(name)
        if spec is None:
            raise PrivacySpecError(
                f"dataset {name!r} has no quasi-identifiers declared; add it under datasets: in "
                f"policies/synthetic.yaml (declared: {', '.join(sorted(policy.datasets))})"
            )
        for role, tables in (
            ("training", training),
            ("holdout", holdout),
            ("synthetic", synthetic),
        ):
            if name not in tables:
                raise PrivacySpecError(
                    f"no {role} table for dataset {name!r}; the {role} tables are: "
                    f"{', '.join(sorted(tables)) or 'none'}"
                )
        results[name] = evaluate_dataset(
            name, training[name], holdout[name], synthetic[name], spec, policy
        )
    return PrivacyReport(results, differentially_private=differentially_private)


def evaluate_dataset(
    name: str,
    training: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    spec: SyntheticDatasetSpec,
    policy: SyntheticPolicy,
) -> DatasetPrivacy:
    """Every gate on one dataset (see ``evaluate_privacy``)."""
    columns = [*spec.quasi_identifiers, *spec.sensitive]
    for role, frame in (("training", training), ("holdout", holdout), ("synthetic", synthetic)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise PrivacySpecError(
                f"{name}: the {role} table has no column(s) {', '.join(missing)} declared in "
                f"policies/synthetic.yaml; fix the declaration or the table"
            )
        if frame.empty:
            raise PrivacySpecError(f"{name}: the {role} table is empty; nothing to compare")
    gates = policy.privacy
    rng = np.random.default_rng(gates.seed)
    training = _sample(training, gates.max_rows_compared, rng)
    holdout = _sample(holdout, gates.max_rows_compared, rng)
    synthetic = _sample(synthetic, gates.max_rows_compared, rng)
    # Attacks compare as many training members as holdout non-members, so chance is 0.5.
    members = _sample(training, len(holdout), rng)
    noise = gates.noise_allowance_standard_errors
    return DatasetPrivacy(
        name,
        [
            exact_match_gate(
                training, holdout, synthetic, columns, gates.max_exact_match_excess, noise
            ),
            dcr_gate(
                members, holdout, synthetic, columns, gates.max_dcr_closer_to_training_share, noise
            ),
            membership_gate(
                members, holdout, synthetic, columns, gates.max_membership_advantage, noise
            ),
            microdata_gate(
                training,
                holdout,
                synthetic,
                spec,
                gates.max_training_unique_excess,
                gates.k_anonymity_threshold,
                noise,
            ),
            attribute_inference_gate(
                members, holdout, synthetic, spec, gates.max_attribute_inference_risk, noise
            ),
        ],
    )


def exact_match_gate(
    training: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    columns: Sequence[str],
    max_excess: float,
    noise_allowance: float = 0.0,
) -> GateResult:
    """Share of synthetic rows equal to a training row on ``columns``, against the holdout's.

    Holdout rows equal a training row only by chance (two people alike on a few coarse
    columns); a replica may not copy beyond that by more than ``max_excess``.
    """
    real_keys = set(_row_keys(training, columns))
    synthetic_share = _share_in(_row_keys(synthetic, columns), real_keys)
    holdout_share = _share_in(_row_keys(holdout, columns), real_keys)
    excess = synthetic_share - holdout_share
    error = _difference_error(synthetic_share, len(synthetic), holdout_share, len(holdout))
    passed = _within(excess, error, max_excess, noise_allowance)
    reason = (
        f"{synthetic_share:.1%} of synthetic rows equal a training row on "
        f"{len(columns)} quasi-identifiers and sensitive attributes, against {holdout_share:.1%} "
        f"of holdout rows by chance: an excess of {excess:+.1%}, "
        + ("within" if passed else "above")
        + f" the {max_excess:.1%} allowed"
    )
    return GateResult(
        "exact_matches",
        excess,
        max_excess,
        passed,
        reason,
        error,
        {
            "synthetic_rows_matching": int(round(synthetic_share * len(synthetic))),
            "synthetic_share": synthetic_share,
            "holdout_share": holdout_share,
            "columns": list(columns),
        },
    )


def dcr_gate(
    members: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    columns: Sequence[str],
    max_share: float,
    noise_allowance: float = 0.0,
) -> GateResult:
    """Share of synthetic rows nearer a training row than a holdout row (ties count half).

    ``members`` is a training sample of the holdout's size, so a replica that learnt the
    distribution rather than the records sits as near one as the other: 0.5.
    """
    encoder = GowerEncoder(columns, members, holdout, synthetic)
    to_training = nearest_distances(encoder, members, synthetic)
    to_holdout = nearest_distances(encoder, holdout, synthetic)
    share = float(
        np.mean(np.where(to_training < to_holdout, 1.0, 0.0) + 0.5 * (to_training == to_holdout))
    )
    holdout_dcr = nearest_distances(encoder, members, holdout)
    error = float(np.sqrt(share * (1 - share) / len(synthetic)))
    passed = _within(share, error, max_share, noise_allowance)
    reason = (
        f"{share:.1%} of synthetic rows sit nearer a training row than a holdout row "
        f"(50% is chance), " + ("within" if passed else "above") + f" the {max_share:.0%} allowed"
    )
    return GateResult(
        "distance_to_closest_record",
        share,
        max_share,
        passed,
        reason,
        error,
        {
            "synthetic_median_dcr_to_training": float(np.median(to_training)),
            "holdout_median_dcr_to_training": float(np.median(holdout_dcr)),
            "holdout_dcr_5th_percentile": float(np.percentile(holdout_dcr, 5)),
            "synthetic_share_below_holdout_5th_percentile": float(
                np.mean(to_training < np.percentile(holdout_dcr, 5))
            ),
            "synthetic_share_at_distance_zero": float(np.mean(to_training == 0)),
        },
    )


def membership_gate(
    members: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    columns: Sequence[str],
    max_advantage: float,
    noise_allowance: float = 0.0,
) -> GateResult:
    """A distance attack: call a record a training member when the replica has a row near it.

    Scores training members and holdout non-members by their (negated) distance to the nearest
    synthetic row; the AUC of that score is the attack's success, and its advantage
    ``2 * (AUC - 0.5)`` (0 chance, 1 certainty) must stay within ``max_advantage``.
    """
    encoder = GowerEncoder(columns, members, holdout, synthetic)
    member_distance = nearest_distances(encoder, synthetic, members)
    outsider_distance = nearest_distances(encoder, synthetic, holdout)
    auc = attack_auc(-member_distance, -outsider_distance)
    advantage = max(0.0, 2 * (auc - 0.5))
    # Hanley and McNeil's (1982) standard error of an AUC under no effect, doubled for advantage.
    n_members, n_outsiders = len(members), len(holdout)
    error = float(2 * np.sqrt((n_members + n_outsiders + 1) / (12 * n_members * n_outsiders)))
    passed = _within(advantage, error, max_advantage, noise_allowance)
    reason = (
        f"a distance-based membership attack reaches AUC {auc:.3f} (advantage {advantage:.3f}; "
        "0 is chance), " + ("within" if passed else "above") + f" the {max_advantage:.3f} allowed"
    )
    return GateResult(
        "membership_inference",
        advantage,
        max_advantage,
        passed,
        reason,
        error,
        {"auc": auc, "members": len(members), "non_members": len(holdout)},
    )


def microdata_gate(
    training: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    spec: SyntheticDatasetSpec,
    max_excess: float,
    k_threshold: int,
    noise_allowance: float = 0.0,
) -> GateResult:
    """Microdata risk of the replica: training-unique quasi-identifier combinations it repeats.

    A combination of quasi-identifiers held by one training record points at that person; the
    replica may land on such combinations no more often than holdout rows do by chance, plus
    ``max_excess``. ``disclosure.microdata.assess_microdata`` on the replica (k-anonymity,
    l-diversity, sample uniques) is reported alongside as evidence.
    """
    qis = list(spec.quasi_identifiers)
    counts = pd.Series(_row_keys(training, qis)).value_counts()
    unique_keys = set(counts.index[counts == 1])
    synthetic_share = _share_in(_row_keys(synthetic, qis), unique_keys)
    holdout_share = _share_in(_row_keys(holdout, qis), unique_keys)
    excess = synthetic_share - holdout_share
    risk = assess_microdata(synthetic, qis, spec.sensitive, k_threshold=k_threshold)
    error = _difference_error(synthetic_share, len(synthetic), holdout_share, len(holdout))
    passed = _within(excess, error, max_excess, noise_allowance)
    reason = (
        f"{synthetic_share:.1%} of synthetic rows repeat a quasi-identifier combination unique "
        f"in the training data, against {holdout_share:.1%} of holdout rows by chance: an "
        f"excess of {excess:+.1%}, "
        + ("within" if passed else "above")
        + f" the {max_excess:.1%} allowed"
    )
    return GateResult(
        "microdata_risk",
        excess,
        max_excess,
        passed,
        reason,
        error,
        {
            "synthetic_share_on_training_uniques": synthetic_share,
            "holdout_share_on_training_uniques": holdout_share,
            "replica": risk.to_dict(),
        },
    )


def attribute_inference_gate(
    members: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    spec: SyntheticDatasetSpec,
    max_risk: float,
    noise_allowance: float = 0.0,
) -> GateResult:
    """An inference attack: guess each sensitive attribute from the nearest synthetic row.

    An intruder who knows a person's quasi-identifiers takes the sensitive value of the
    synthetic row nearest them. Accuracy on holdout rows is what the replica teaches about the
    population; accuracy above it on training rows is what it leaks about its members. The risk
    ``(training - holdout) / (1 - holdout)`` is anonymeter's inference risk (Giomi et al. 2023);
    the worst sensitive attribute must stay within ``max_risk``.
    """
    qis = list(spec.quasi_identifiers)
    encoder = GowerEncoder(qis, synthetic, members, holdout)
    tree = cKDTree(encoder.encode(synthetic))
    member_nearest = tree.query(encoder.encode(members), p=1)[1]
    outsider_nearest = tree.query(encoder.encode(holdout), p=1)[1]
    per_attribute: dict[str, dict[str, float]] = {}
    for attribute in spec.sensitive:
        guesses = _as_keys(synthetic[attribute]).to_numpy()
        member_accuracy = float(
            np.mean(guesses[member_nearest] == _as_keys(members[attribute]).to_numpy())
        )
        outsider_accuracy = float(
            np.mean(guesses[outsider_nearest] == _as_keys(holdout[attribute]).to_numpy())
        )
        per_attribute[attribute] = {
            "training_accuracy": member_accuracy,
            "holdout_accuracy": outsider_accuracy,
            "majority_baseline": float(
                _as_keys(holdout[attribute]).value_counts(normalize=True).iloc[0]
            ),
            "risk": inference_risk(member_accuracy, outsider_accuracy),
            "standard_error": _difference_error(
                member_accuracy, len(members), outsider_accuracy, len(holdout)
            )
            / max(1 - outsider_accuracy, 1 / len(holdout)),
        }
    # The attribute nearest to failing decides (its risk less its noise allowance).
    worst = max(
        per_attribute,
        key=lambda a: (
            per_attribute[a]["risk"] - noise_allowance * per_attribute[a]["standard_error"]
        ),
    )
    risk, error = per_attribute[worst]["risk"], per_attribute[worst]["standard_error"]
    passed = _within(risk, error, max_risk, noise_allowance)
    reason = (
        f"guessing {worst} from the nearest synthetic row on the quasi-identifiers is right for "
        f"{per_attribute[worst]['training_accuracy']:.1%} of training records against "
        f"{per_attribute[worst]['holdout_accuracy']:.1%} of holdout records: risk {risk:.3f}, "
        + ("within" if passed else "above")
        + f" the {max_risk:.3f} allowed"
    )
    return GateResult(
        "attribute_inference", risk, max_risk, passed, reason, error, {"attributes": per_attribute}
    )


def _within(figure: float, error: float, threshold: float, noise_allowance: float) -> bool:
    """True unless ``figure`` exceeds ``threshold`` by more than ``noise_allowance`` errors."""
    return figure - noise_allowance * error <= threshold


def _difference_error(share_a: float, rows_a: int, share_b: float, rows_b: int) -> float:
    """Standard error of the difference of two independent proportions."""
    return float(
        np.sqrt(share_a * (1 - share_a) / max(rows_a, 1) + share_b * (1 - share_b) / max(rows_b, 1))
    )


def inference_risk(attack_rate: float, control_rate: float) -> float:
    """anonymeter's normalised risk: how much of what the control missed the attack gets right.

    >>> inference_risk(0.9, 0.8)
    0.5
    """
    if control_rate >= 1:
        return 0.0
    return max(0.0, (attack_rate - control_rate) / (1 - control_rate))


def attack_auc(member_scores: np.ndarray, outsider_scores: np.ndarray) -> float:
    """Probability that a random member scores above a random non-member (ties count half).

    >>> attack_auc(np.array([3.0, 2.0]), np.array([1.0, 2.0]))
    0.875
    """
    if len(member_scores) == 0 or len(outsider_scores) == 0:
        raise PrivacySpecError("a membership attack needs both training and holdout records")
    ranks = rankdata(np.concatenate([member_scores, outsider_scores]))
    n_members, n_outsiders = len(member_scores), len(outsider_scores)
    u = ranks[:n_members].sum() - n_members * (n_members + 1) / 2
    return float(u / (n_members * n_outsiders))


class GowerEncoder:
    """Encodes rows so that the Manhattan distance between encodings is the Gower distance.

    Categorical values (text, booleans) become one-hot columns of weight 1/2, so a mismatch
    adds 1; numbers and dates become their value over the reference table's range; a missing
    number is its own indicator. Divided by the number of columns, as Gower (1971) does.
    """

    def __init__(
        self, columns: Sequence[str], reference: pd.DataFrame, *others: pd.DataFrame
    ) -> None:
        self.columns = list(columns)
        self.numeric: dict[str, tuple[float, float]] = {}
        self.categories: dict[str, pd.Index] = {}
        for column in self.columns:
            values = _numeric(reference[column])
            if values is None:
                seen = pd.concat([_as_keys(f[column]) for f in (reference, *others)])
                self.categories[column] = pd.Index(sorted(seen.unique()))
                continue
            finite = values[np.isfinite(values)]
            low = float(finite.min()) if len(finite) else 0.0
            span = float(finite.max() - low) if len(finite) else 0.0
            self.numeric[column] = (low, span if span > 0 else 1.0)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The encoded rows of ``frame`` (one row per record)."""
        blocks = []
        for column in self.columns:
            if column in self.numeric:
                low, span = self.numeric[column]
                values = _numeric(frame[column])
                if values is None:
                    raise PrivacySpecError(
                        f"column {column!r} is numeric or a date in the real data but not in "
                        "this table; give every table the same column types"
                    )
                missing = ~np.isfinite(values)
                blocks.append(np.where(missing, 0.0, (values - low) / span)[:, None])
                blocks.append(missing.astype(float)[:, None])
            else:
                codes = self.categories[column].get_indexer(_as_keys(frame[column]))
                if (codes < 0).any():
                    raise PrivacySpecError(
                        f"column {column!r} holds values the encoder was not shown; build the "
                        "encoder from every table it will encode"
                    )
                one_hot = np.zeros((len(frame), len(self.categories[column])))
                one_hot[np.arange(len(frame)), codes] = 0.5
                blocks.append(one_hot)
        return np.hstack(blocks) / len(self.columns)


def nearest_distances(
    encoder: GowerEncoder, reference: pd.DataFrame, queries: pd.DataFrame
) -> np.ndarray:
    """Gower distance from each row of ``queries`` to its nearest row of ``reference``."""
    return cKDTree(encoder.encode(reference)).query(encoder.encode(queries), p=1)[0]


def _numeric(series: pd.Series) -> np.ndarray | None:
    """Numbers and dates (as days) as floats with NaN for missing; None for categorical data."""
    if pd.api.types.is_bool_dtype(series):
        return None
    if pd.api.types.is_datetime64_any_dtype(series):
        days = series.astype("datetime64[ns]").to_numpy().astype("int64") / 86_400e9
        return np.where(series.isna().to_numpy(), np.nan, days)
    if pd.api.types.is_numeric_dtype(series):
        return pd.to_numeric(series).astype("float64").to_numpy()
    return None


def _as_keys(series: pd.Series) -> pd.Series:
    """Values as comparable text, missing as its own value (an intruder can know it is missing)."""
    return series.astype("string").fillna(MISSING).reset_index(drop=True)


def _row_keys(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[str, ...]]:
    keys = frame[list(columns)].astype("string").fillna(MISSING)
    return list(keys.itertuples(index=False, name=None))


def _share_in(keys: list[tuple[str, ...]], known: set[tuple[str, ...]]) -> float:
    return float(np.mean([key in known for key in keys])) if keys else 0.0


def _sample(frame: pd.DataFrame, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    picked = rng.choice(len(frame), size=rows, replace=False)
    return frame.iloc[np.sort(picked)].reset_index(drop=True)


def _json_number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _json_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, float | np.floating):
        return _json_number(float(value))
    return value

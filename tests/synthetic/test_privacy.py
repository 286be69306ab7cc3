"""Privacy gates: a copy of real rows is refused by every gate, an independent sample passes,
each figure is right on a hand-made example, and bad inputs or thresholds are refused clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from srs.governance.policy import PolicyError, SyntheticPolicy, default_policy_dir, load_policies
from srs.pipeline.deid import Pseudonymiser
from srs.pipeline.ingest import ingest_file, load_dictionary
from srs.pipeline.linked_datasets import LinkedDatasets, build_linked_datasets
from srs.pipeline.offences import load_offences
from srs.pipeline.simulation import SOURCES, simulate, write_simulation
from synthetic.privacy import (
    GUARANTEE_STATEMENT,
    GowerEncoder,
    PrivacySpecError,
    attack_auc,
    dcr_gate,
    evaluate_privacy,
    exact_match_gate,
    inference_risk,
    membership_gate,
    nearest_distances,
)

Tables = dict[str, pd.DataFrame]


@pytest.fixture(scope="module")
def policy() -> SyntheticPolicy:
    return load_policies().synthetic


@pytest.fixture(scope="module")
def split(linked: LinkedDatasets) -> tuple[Tables, Tables]:
    """70% of each real table for training, the other 30% kept back as the holdout."""
    training, holdout = {}, {}
    for name, table in linked.tables.items():
        order = np.random.default_rng(1).permutation(len(table))
        cut = int(0.7 * len(table))
        training[name] = table.iloc[np.sort(order[:cut])]
        holdout[name] = table.iloc[np.sort(order[cut:])]
    return training, holdout


@pytest.fixture(scope="module")
def other_population(tmp_path_factory) -> Tables:
    """The same linked tables of another simulated population (same generator, other seed)."""
    simulation = simulate(800, 8)
    paths = write_simulation(simulation, Path(tmp_path_factory.mktemp("other-population")))
    offences = load_offences()
    sources = {
        source: ingest_file(paths[source], load_dictionary(source), offences).accepted
        for source in SOURCES
    }
    lookup = simulation.ground_truth.rename(columns={"person_id": "cluster_id"})
    return build_linked_datasets(sources, lookup, Pseudonymiser(bytes(32)), offences).tables


def test_a_replica_that_copies_real_rows_is_refused(split, policy) -> None:
    training, holdout = split
    copy = {name: t.sample(len(t), replace=True, random_state=2) for name, t in training.items()}
    report = evaluate_privacy(training, holdout, copy, policy)
    assert not report.passed
    for name in ("linked/persons", "linked/journeys", "linked/victims"):
        gates = {gate.gate: gate for gate in report.datasets[name].gates}
        for gate in (
            "exact_matches",
            "distance_to_closest_record",
            "membership_inference",
            "microdata_risk",
            "attribute_inference",
        ):
            assert not gates[gate].passed, (name, gate, gates[gate].reason)
        assert gates["exact_matches"].details["synthetic_share"] > 0.9
    failures = report.failures()
    assert any(f.startswith("linked/journeys: exact_matches:") for f in failures)
    assert "above the" in failures[0]


def test_an_independent_sample_of_the_same_population_passes(
    split, other_population, policy
) -> None:
    training, holdout = split
    independent = {
        name: table.sample(len(training[name]), replace=True, random_state=3)
        for name, table in other_population.items()
    }
    report = evaluate_privacy(training, holdout, independent, policy)
    assert report.passed, report.failures()
    dcr = {n: d.gates[1].figure for n, d in report.datasets.items()}
    assert all(0.4 < share < 0.6 for share in dcr.values()), dcr


def test_report_is_json_safe_and_says_what_it_guarantees(split, policy) -> None:
    training, holdout = split
    report = evaluate_privacy(training, holdout, training, policy, datasets=["linked/persons"])
    data = json.loads(json.dumps(report.to_dict()))
    assert data["statement"] == GUARANTEE_STATEMENT
    assert "not a guarantee" in data["statement"] and "differentially private" in data["statement"]
    assert data["passed"] is False and data["failures"] == report.failures()
    gate = data["datasets"]["linked/persons"]["gates"][0]
    assert set(gate) >= {"gate", "figure", "threshold", "passed", "reason", "standard_error"}
    assert data["datasets"]["linked/persons"]["gates"][3]["details"]["replica"]["kind"] == (
        "microdata"
    )


# Hand-made examples: every figure checked against arithmetic done by hand.
def test_gower_distance_by_hand() -> None:
    reference = pd.DataFrame({"sex": ["M", "F"], "age": [20, 60], "area": ["LS", None]})
    query = pd.DataFrame({"sex": ["M", "F"], "age": [30, 60], "area": ["LS", "M"]})
    encoder = GowerEncoder(["sex", "age", "area"], reference, query)
    # Row 0 to reference 0: sex 0 + age 10/40 + area 0 over 3 columns.
    # Row 1 to reference 1: sex 0 + age 0 + area mismatch (missing vs M) 1, over 3 columns.
    assert nearest_distances(encoder, reference, query) == pytest.approx([0.25 / 3, 1 / 3])


def test_exact_match_figure_by_hand() -> None:
    training = pd.DataFrame({"sex": ["M", "F", "M", "F"], "area": ["LS", "LS", "M", "M"]})
    holdout = pd.DataFrame({"sex": ["M", "F"], "area": ["LS", "B"]})  # 1 of 2 matches: 50%
    synthetic = pd.DataFrame({"sex": ["M", "F", "F", "M"], "area": ["LS", "LS", "M", "B"]})
    gate = exact_match_gate(training, holdout, synthetic, ["sex", "area"], 0.1)
    assert gate.details["synthetic_share"] == 0.75
    assert gate.details["holdout_share"] == 0.5
    assert gate.figure == pytest.approx(0.25)
    assert not gate.passed
    assert exact_match_gate(training, holdout, synthetic, ["sex", "area"], 0.25).passed


def test_dcr_share_counts_ties_as_half() -> None:
    members = pd.DataFrame({"age": [10.0, 50.0]})
    holdout = pd.DataFrame({"age": [20.0, 90.0]})
    # 10 -> training (0 vs 10), 50 -> training (0 vs 30), 15 -> tie (5 vs 5), 90 -> holdout.
    synthetic = pd.DataFrame({"age": [10.0, 50.0, 15.0, 90.0]})
    gate = dcr_gate(members, holdout, synthetic, ["age"], 0.6)
    assert gate.figure == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert not gate.passed


def test_membership_auc_and_advantage_by_hand() -> None:
    assert attack_auc(np.array([3.0, 2.0]), np.array([1.0, 2.0])) == pytest.approx(0.875)
    members = pd.DataFrame({"age": [10.0, 20.0]})
    holdout = pd.DataFrame({"age": [60.0, 90.0]})
    synthetic = pd.DataFrame({"age": [10.0, 20.0]})
    gate = membership_gate(members, holdout, synthetic, ["age"], 0.1)
    assert gate.details["auc"] == 1.0 and gate.figure == 1.0 and not gate.passed


def test_inference_risk_by_hand() -> None:
    assert inference_risk(0.9, 0.8) == pytest.approx(0.5)
    assert inference_risk(0.7, 0.8) == 0.0
    assert inference_risk(1.0, 1.0) == 0.0


def test_attribute_inference_and_microdata_on_a_copy_by_hand(policy) -> None:
    training = pd.DataFrame(
        {"sex": list("MFMFMFMFMF"), "birth_year": range(1960, 1970), "area": ["LS"] * 10}
    ).assign(is_offender=[True, False] * 5, is_victim=[False] * 9 + [True])
    holdout = training.assign(birth_year=training["birth_year"] + 20)
    report = evaluate_privacy(
        {"linked/persons": training},
        {"linked/persons": holdout},
        {"linked/persons": training},
        policy,
    )
    gates = {gate.gate: gate for gate in report.datasets["linked/persons"].gates}
    # Every training row is unique on its quasi-identifiers and copied; no holdout row lands on one.
    assert gates["microdata_risk"].figure == 1.0
    assert gates["microdata_risk"].details["replica"]["sample_uniques"] == 10
    # The copy tells the intruder each member's is_victim exactly; on the holdout the nearest
    # synthetic row (same sex, 20 years off) is right 9 times in 10: risk (1 - 0.9) / (1 - 0.9).
    victim = gates["attribute_inference"].details["attributes"]["is_victim"]
    assert victim["training_accuracy"] == 1.0
    assert victim["risk"] == pytest.approx(inference_risk(1.0, victim["holdout_accuracy"]))


def test_missing_dataset_and_unknown_column_are_refused_clearly(split, policy) -> None:
    training, holdout = split
    with pytest.raises(PrivacySpecError, match="no holdout table for dataset 'linked/persons'"):
        evaluate_privacy(training, {}, training, policy)
    with pytest.raises(PrivacySpecError, match="'synthetic/other' has no quasi-identifiers"):
        evaluate_privacy(training, holdout, {"synthetic/other": training["linked/persons"]}, policy)
    without_area = {"linked/persons": training["linked/persons"].drop(columns="area")}
    with pytest.raises(PrivacySpecError, match="synthetic table has no column.s. area"):
        evaluate_privacy(training, holdout, without_area, policy)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), copy)
    return copy


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (
            "max_dcr_closer_to_training_share: 0.6",
            "max_dcr_closer_to_training_share: 0.4",
            "privacy.max_dcr_closer_to_training_share",
        ),
        (
            "max_membership_advantage: 0.1",
            "max_membership_advantage: 1.5",
            "privacy.max_membership_advantage",
        ),
        ("max_exact_match_excess: 0.01", "max_exact_match_excess: -1", "privacy"),
        ("min_quality_score: 0.85", "min_quality_score: 0", "fidelity.min_quality_score"),
        (
            "sensitive: [is_offender, is_victim]",
            "sensitive: [is_offender, sex]",
            "datasets.linked/persons",
        ),
        ("  seed: 0", "  seed: 0\n  max_dcr: 1", "privacy.max_dcr"),
    ],
)
def test_bad_thresholds_are_refused(folder: Path, old: str, new: str, key: str) -> None:
    path = folder / "synthetic.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(PolicyError, match=r"synthetic\.yaml") as caught:
        load_policies(folder)
    assert caught.value.key is not None and caught.value.key.startswith(key)


def test_shipped_synthetic_policy_keys(policy) -> None:
    assert policy.fidelity.min_quality_score == 0.85
    assert policy.research_questions.max_absolute_difference_percentage_points == 5
    assert set(policy.datasets) == {
        "linked/persons",
        "linked/journeys",
        "linked/victims",
        "linked/reoffending",
    }

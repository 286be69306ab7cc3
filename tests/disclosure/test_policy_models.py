"""Disclosure's policy models, used without any file: validation and the zCDP conversion."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from disclosure.policy import PrivacyBudgetPolicy, SDCPolicy


def test_epsilon_at_matches_bun_steinke() -> None:
    budget = PrivacyBudgetPolicy(default_project_rho=1.0, delta=1e-6, max_rho_per_query=0.5)
    # rho + 2 sqrt(rho ln(1/delta)) by hand: 0.5 + 2 * sqrt(0.5 * 13.815510558) = 5.756522
    assert budget.epsilon_at(0.5) == pytest.approx(5.756522, abs=1e-6)
    assert budget.epsilon_at(0.0) == 0.0
    assert budget.epsilon_at(0.1) == pytest.approx(0.1 + 2 * math.sqrt(0.1 * math.log(1e6)))
    with pytest.raises(ValueError, match="non-negative"):
        budget.epsilon_at(-1)


def test_query_budget_cannot_exceed_project_budget() -> None:
    with pytest.raises(ValidationError, match="must not exceed"):
        PrivacyBudgetPolicy(default_project_rho=0.1, delta=1e-6, max_rho_per_query=0.2)


def test_models_are_frozen_and_strict(policies) -> None:
    with pytest.raises(ValidationError):
        policies.sdc.active.minimum_cell_count = 1
    with pytest.raises(ValidationError, match="Extra inputs"):
        SDCPolicy(profile="x", profiles={}, surprise=1)
    with pytest.raises(ValidationError, match="available"):
        SDCPolicy(profile="x", profiles={"y": policies.sdc.active})


def test_dp_query_settings_have_safe_defaults_and_are_checked() -> None:
    budget = PrivacyBudgetPolicy(default_project_rho=1.0, delta=1e-7, max_rho_per_query=0.5)
    assert budget.max_rows_per_person >= 1 and 0.5 <= budget.confidence_level < 1
    assert budget.key_release_delta <= budget.max_key_release_delta
    for bad in ({"confidence_level": 1.0}, {"quantile_candidates": 1}, {"max_dataset_rows": 0}):
        with pytest.raises(ValidationError):
            PrivacyBudgetPolicy(default_project_rho=1.0, delta=1e-7, max_rho_per_query=0.5, **bad)
    with pytest.raises(ValidationError, match="need finite lower < upper"):
        PrivacyBudgetPolicy(
            default_project_rho=1.0,
            delta=1e-7,
            max_rho_per_query=0.5,
            value_bounds={"age": (5, float("nan"))},
        )

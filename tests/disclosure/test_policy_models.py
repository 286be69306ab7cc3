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

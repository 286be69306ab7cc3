"""The policy models that disclosure control needs: SDC thresholds by profile and DP budgets.

These are pure data (pydantic, frozen, unknown keys refused). Loading them from files is the
environment's business (``srs.governance.policy``); ``disclosure`` only reads the validated objects.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PolicyModel(BaseModel):
    """Base of every policy model: immutable, and a misspelt or unknown key is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Rounding(StrEnum):
    """How released counts are rounded."""

    none = "none"
    base = "base"  # to the nearest multiple of rounding_base
    midpoint6 = "midpoint6"  # OpenSAFELY's midpoint-6 rounding
    controlled = "controlled"  # keeps margins additive


class SDCProfile(PolicyModel):
    """One site's statistical-disclosure-control thresholds."""

    minimum_cell_count: int = Field(ge=1, le=1000)
    dominance_n: int = Field(ge=1, le=10)
    dominance_k: float = Field(gt=0, le=100, description="percent")
    p_percent: float = Field(gt=0, le=100)
    residual_degrees_of_freedom: int = Field(ge=0, le=10_000)
    rounding: Rounding
    rounding_base: int = Field(ge=1, le=1000)
    redact_at_or_below: int | None = Field(default=None, ge=0, le=1000)
    zeros_are_disclosive: bool
    negative_values: str = Field(pattern="^(allow|flag)$")
    missing_values: str = Field(pattern="^(allow|flag)$")
    max_min_median_release: str = Field(pattern="^(forbid|allow|check)$")
    min_observations_per_category: int = Field(ge=1, le=1000)
    max_parameters_fraction: float | None = Field(default=None, gt=0, le=1)
    survival_minimum_at_risk: int = Field(ge=1, le=1000)
    # Secondary suppression: an attacker's interval for a suppressed cell must be at least
    # max(secondary_protection_minimum, secondary_protection_percent% of its value) wide.
    secondary_protection_minimum: float = Field(ge=0)
    secondary_protection_percent: float = Field(ge=0, le=100)


class SDCPolicy(PolicyModel):
    """The named SDC profiles a deployment ships and the one in force."""

    profile: str
    profiles: dict[str, SDCProfile] = Field(min_length=1)

    @model_validator(mode="after")
    def _active_profile_exists(self) -> SDCPolicy:
        if self.profile not in self.profiles:
            raise ValueError(
                f"profile {self.profile!r} is not defined; available: {', '.join(sorted(self.profiles))}"
            )
        return self

    @property
    def active(self) -> SDCProfile:
        """The thresholds of the profile in force."""
        return self.profiles[self.profile]


# A privacy unit's column: a lower-case word, as the linked datasets' columns are.
UNIT_COLUMN = r"^[a-z][a-z0-9_]{0,62}$"


class PrivacyBudgetPolicy(PolicyModel):
    """Differential-privacy budgets, in zero-concentrated DP (rho), reported as (epsilon, delta)."""

    default_project_rho: float = Field(gt=0, le=100)
    # The range of any one project's budget (a project is created with a rho in it). The floor
    # is at least a nano-rho, the unit the budget ledger counts in.
    min_project_rho: float = Field(default=1e-4, ge=1e-9, le=100)
    max_project_rho: float = Field(default=5.0, gt=0, le=100)
    delta: float = Field(gt=0, lt=1)
    max_rho_per_query: float = Field(gt=0)
    per_researcher_rho_cap: float | None = Field(default=None, gt=0)
    allow_accuracy_targets: bool = True
    # How DP queries bound and report (disclosure.dp). The privacy unit is the person: before any
    # statistic, each person's rows are cut to a random sample of max_rows_per_person.
    # The column naming the person is fixed here, never by a query (with a per-row column as the
    # "unit", one person's rows would each count as a person): privacy_unit in every dataset,
    # except those privacy_units names (linked/victims: victim_person_key).
    privacy_unit: str = Field(default="person_key", pattern=UNIT_COLUMN)
    privacy_units: dict[str, str] = Field(default_factory=dict)
    confidence_level: float = Field(default=0.95, ge=0.5, lt=1)
    max_rows_per_person: int = Field(default=5, ge=1, le=1000)
    # A public upper bound on a table's length; OpenDP needs one to bound sums and quantiles.
    max_dataset_rows: int = Field(default=100_000_000, ge=1, le=10**12)
    # Group keys that are not public are released only above a DP threshold; each such query
    # spends this delta, and a project may spend at most max_key_release_delta in all.
    key_release_delta: float = Field(default=1e-9, gt=0, le=1e-3)
    max_key_release_delta: float = Field(default=1e-7, gt=0, le=1e-2)
    quantile_candidates: int = Field(default=100, ge=2, le=10_000)
    # How large a DP query's declarative row selection may be (disclosure.dp.selection): where
    # conditions, values listed in one condition or band, characters of a text value, and
    # derived columns.
    max_where_conditions: int = Field(default=20, ge=1, le=1000)
    max_where_values: int = Field(default=200, ge=1, le=100_000)
    max_where_text_chars: int = Field(default=200, ge=1, le=10_000)
    max_derived_columns: int = Field(default=5, ge=0, le=100)
    # Public clipping bounds of numeric columns; a researcher may give narrower ones per query.
    value_bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _query_within_project(self) -> PrivacyBudgetPolicy:
        if not self.min_project_rho <= self.default_project_rho <= self.max_project_rho:
            raise ValueError(
                f"default_project_rho ({self.default_project_rho}) must lie between "
                f"min_project_rho ({self.min_project_rho}) and max_project_rho "
                f"({self.max_project_rho})"
            )
        cap = self.per_researcher_rho_cap
        if cap is not None and not (math.isfinite(cap) and cap <= self.max_project_rho):
            raise ValueError(
                f"per_researcher_rho_cap must be a finite rho in (0, {self.max_project_rho}] "
                f"(max_project_rho), got {cap}"
            )
        if self.max_rho_per_query > self.default_project_rho:
            raise ValueError(
                f"max_rho_per_query ({self.max_rho_per_query}) must not exceed "
                f"default_project_rho ({self.default_project_rho})"
            )
        if self.key_release_delta > self.max_key_release_delta:
            raise ValueError(
                f"key_release_delta ({self.key_release_delta}) must not exceed "
                f"max_key_release_delta ({self.max_key_release_delta})"
            )
        for dataset, column in self.privacy_units.items():
            if not re.fullmatch(UNIT_COLUMN, column):
                raise ValueError(
                    f"privacy_units.{dataset}: {column!r} is not a column name (a lower-case word)"
                )
        for column, (low, high) in self.value_bounds.items():
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(
                    f"value_bounds.{column}: need finite lower < upper, got [{low}, {high}]"
                )
        return self

    def privacy_unit_of(self, dataset: str | None) -> str:
        """The column naming the person (the privacy unit) in ``dataset``: fixed by this policy,
        never chosen by a query.

        >>> policy = PrivacyBudgetPolicy(default_project_rho=1, delta=1e-7, max_rho_per_query=0.5,
        ...                              privacy_units={"linked/victims": "victim_person_key"})
        >>> policy.privacy_unit_of("linked/victims"), policy.privacy_unit_of("linked/journeys")
        ('victim_person_key', 'person_key')
        """
        return self.privacy_units.get(dataset or "", self.privacy_unit)

    def epsilon_at(self, rho: float) -> float:
        """The epsilon that ``rho``-zCDP implies at this policy's delta.

        Bun and Steinke (2016), Proposition 1.3: rho-zCDP implies
        (rho + 2 sqrt(rho ln(1/delta)), delta)-DP.

        >>> PrivacyBudgetPolicy(default_project_rho=1, delta=1e-6, max_rho_per_query=0.5).epsilon_at(0.5)
        5.756...
        """
        if rho < 0:
            raise ValueError(f"rho must be non-negative, not {rho}")
        return rho + 2 * math.sqrt(rho * math.log(1 / self.delta))

"""Policies as data: the shipped folder loads, and every kind of bad file is refused precisely."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from srs.governance.policy import (
    PolicyError,
    PolicySet,
    check_policy_dir,
    default_policy_dir,
    load_policies,
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), copy)
    return copy


def edit(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1))


def test_shipped_policies_load(policies: PolicySet) -> None:
    assert policies.sdc.profile == "ons-srs"
    assert policies.source_dir == default_policy_dir().resolve()
    assert check_policy_dir() == []


def test_profiles_carry_the_documented_thresholds(policies: PolicySet) -> None:
    ons = policies.sdc.profiles["ons-srs"]
    assert (
        ons.minimum_cell_count,
        ons.dominance_n,
        ons.dominance_k,
        ons.p_percent,
        ons.residual_degrees_of_freedom,
        ons.rounding_base,
    ) == (10, 2, 90, 10, 10, 5)
    opensafely = policies.sdc.profiles["opensafely"]
    assert (opensafely.redact_at_or_below, opensafely.rounding_base) == (7, 5)
    datashield = policies.sdc.profiles["datashield"]
    assert (datashield.minimum_cell_count, datashield.max_parameters_fraction) == (3, 0.33)
    assert policies.sdc.active is ons


def test_site_folder_from_environment(folder: Path, monkeypatch) -> None:
    edit(folder, "sdc.yaml", "profile: ons-srs", "profile: datashield")
    monkeypatch.setenv("SRS_POLICY_DIR", str(folder))
    assert load_policies().sdc.active.minimum_cell_count == 3


@pytest.mark.parametrize(
    ("name", "old", "new", "key", "fragment"),
    [
        (
            "sdc.yaml",
            "minimum_cell_count: 10",
            "minimum_cell_count: 0",
            "profiles.ons-srs.minimum_cell_count",
            "got 0",
        ),
        ("sdc.yaml", "p_percent: 10", "p_percent: 150", "profiles.ons-srs.p_percent", "got 150"),
        (
            "sdc.yaml",
            "rounding: base",
            "rounding: sometimes",
            "profiles.ons-srs.rounding",
            "sometimes",
        ),
        (
            "sdc.yaml",
            "dominance_n: 2",
            "dominanse_n: 2",
            "profiles.ons-srs.dominanse_n",
            "unknown key",
        ),
        ("privacy_budget.yaml", "delta: 1.0e-7", "delta: 2", "delta", "got 2"),
        (
            "privacy_budget.yaml",
            "max_rows_per_person: 5",
            "max_rows_per_person: 0",
            "max_rows_per_person",
            "got 0",
        ),
        (
            "privacy_budget.yaml",
            "sentence_months: [0, 240]",
            "sentence_months: [240, 0]",
            None,
            "value_bounds.sentence_months: need finite lower < upper",
        ),
        (
            "privacy_budget.yaml",
            "key_release_delta: 1.0e-9",
            "key_release_delta: 1.0e-6",
            None,
            "must not exceed max_key_release_delta",
        ),
        (
            "privacy_budget.yaml",
            "max_rho_per_query: 0.05",
            "max_rho_per_query: 5",
            None,
            "must not exceed",
        ),
        (
            "access.yaml",
            "failed_login_limit: 5",
            "failed_login_limit: 0",
            "failed_login_limit",
            "got 0",
        ),
        ("access.yaml", "  student: [synthetic.read]\n", "", "roles", "missing student"),
        ("access.yaml", "checker: [output.review", "checker: [Review!", "roles", "area.verb"),
        (
            "classification.yaml",
            '"linked/*": confidential',
            '"linked/*": secret',
            None,
            "'secret' is not one of",
        ),
        (
            "release.yaml",
            "checker_may_review_own_project: false",
            "checker_may_review_own_project: true",
            "checker_may_review_own_project",
            "two-person rule",
        ),
        (
            "release.yaml",
            '"^person_key$"',
            '"^(person_key$"',
            "identifier_column_patterns",
            "not a valid regular expression",
        ),
    ],
)
def test_bad_values_are_refused_with_file_key_and_value(folder, name, old, new, key, fragment):
    edit(folder, name, old, new)
    with pytest.raises(PolicyError) as caught:
        load_policies(folder)
    message = str(caught.value)
    assert name in message
    assert fragment in message
    if key:
        assert caught.value.key == key and key in message
    assert caught.value.file == folder / name


def test_unknown_active_profile_lists_the_available_ones(folder: Path) -> None:
    edit(folder, "sdc.yaml", "profile: ons-srs", "profile: strict")
    with pytest.raises(
        PolicyError, match="'strict' is not defined; available: datashield, ons-srs, opensafely"
    ):
        load_policies(folder)


def test_missing_file(folder: Path) -> None:
    (folder / "access.yaml").unlink()
    with pytest.raises(PolicyError, match="access.yaml: missing; it must hold"):
        load_policies(folder)


def test_malformed_yaml_names_the_line(folder: Path) -> None:
    (folder / "release.yaml").write_text("independent_reviews: 2\nblind_reviews: [true\n")
    with pytest.raises(PolicyError, match="release.yaml: not valid YAML at line"):
        load_policies(folder)


@pytest.mark.parametrize("content", ["", "- a\n- b\n", "just text\n"])
def test_file_that_is_not_a_mapping(folder: Path, content: str) -> None:
    (folder / "sdc.yaml").write_text(content)
    with pytest.raises(PolicyError, match="sdc.yaml: must be a mapping"):
        load_policies(folder)


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not a folder"):
        load_policies(tmp_path / "absent")
    assert len(check_policy_dir(tmp_path / "absent")) == 1


def test_check_reports_every_problem_at_once(folder: Path) -> None:
    edit(folder, "sdc.yaml", "minimum_cell_count: 10", "minimum_cell_count: 0")
    edit(folder, "sdc.yaml", "p_percent: 10", "p_percent: 0")
    edit(folder, "access.yaml", "idle_timeout_minutes: 30", "idle_timeout_minutes: 0")
    (folder / "release.yaml").unlink()
    problems = check_policy_dir(folder)
    assert len(problems) == 4
    keys = {(p.file.name, p.key) for p in problems}
    assert ("sdc.yaml", "profiles.ons-srs.minimum_cell_count") in keys
    assert ("sdc.yaml", "profiles.ons-srs.p_percent") in keys
    assert ("access.yaml", "idle_timeout_minutes") in keys
    assert ("release.yaml", None) in keys


def test_classification_rules(policies: PolicySet) -> None:
    c = policies.classification
    assert c.level_for("synthetic/journeys") == "public"
    assert c.level_for("linked/journeys") == "confidential"
    assert c.level_for("source/police_arrests") == "highly_confidential"
    assert c.level_for("anything/else") == "highly_confidential"  # deny by default
    assert c.rank("public") < c.rank("confidential") < c.rank("highly_confidential")
    assert c.at_most("public", "confidential") and not c.at_most(
        "highly_confidential", "confidential"
    )
    with pytest.raises(PolicyError, match="'secret' is not one of"):
        c.rank("secret")


def test_longest_pattern_wins(folder: Path) -> None:
    edit(
        folder,
        "classification.yaml",
        '  "linked/*": confidential',
        '  "linked/*": confidential\n  "linked/victims*": highly_confidential',
    )
    c = load_policies(folder).classification
    assert c.level_for("linked/victims") == "highly_confidential"
    assert c.level_for("linked/journeys") == "confidential"


def test_access_rules(policies: PolicySet) -> None:
    a = policies.access
    assert a.allows("steward", "project.grant") and not a.allows("researcher", "project.grant")
    assert not a.allows("nobody", "dataset.read")
    assert "dataset.read" in a.known_actions
    assert a.accreditation_validity_days == 1826


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max_project_rho: 5.0", "max_project_rho: .inf", "less than or equal to 100"),
        ("max_project_rho: 5.0", "max_project_rho: .nan", "max_project_rho: Input should be"),
        ("max_project_rho: 5.0", "max_project_rho: 0.1", "must lie between min_project_rho"),
        ("min_project_rho: 1.0e-4", "min_project_rho: 0.6", "must lie between min_project_rho"),
        (
            "min_project_rho: 1.0e-4",
            "min_project_rho: 1.0e-12",
            "greater than or equal to 0.000000001",
        ),
        (
            "per_researcher_rho_cap: null",
            "per_researcher_rho_cap: .inf",
            "per_researcher_rho_cap must be a finite rho",
        ),
        (
            "per_researcher_rho_cap: null",
            "per_researcher_rho_cap: 50",
            "per_researcher_rho_cap must be a finite rho in (0, 5.0]",
        ),
    ],
)
def test_the_project_budget_ceiling_is_validated_on_load(folder, old, new, message) -> None:
    """An infinite or NaN ceiling, a default above it, or a per-researcher cap that no finite
    budget bounds would let every DP query through; each is refused where it is written."""
    edit(folder, "privacy_budget.yaml", old, new)
    with pytest.raises(PolicyError, match=re.escape(message)) as refused:
        load_policies(folder)
    assert "privacy_budget.yaml" in str(refused.value)


def test_the_shipped_project_budget_ceiling(policies: PolicySet) -> None:
    budget = policies.privacy_budget
    assert budget.min_project_rho <= budget.default_project_rho <= budget.max_project_rho == 5.0


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ("checker_session_max_hours: 0", "greater than or equal to 1"),
        ("checker_session_max_hours: 25", "less than or equal to 24"),
        ("checker_session_max_hours: 1\nidle_timeout_minutes: 90", "must be at least"),
    ],
)
def test_the_checker_session_lifetime_is_validated_on_load(folder, new, message) -> None:
    edit(folder, "access.yaml", "checker_session_max_hours: 12", new)
    if "idle_timeout_minutes: 90" in new:
        edit(folder, "access.yaml", "idle_timeout_minutes: 30 ", "")
    with pytest.raises(PolicyError, match=message) as refused:
        load_policies(folder)
    assert "access.yaml" in str(refused.value)


def test_the_checker_session_lifetime_is_required(folder) -> None:
    edit(folder, "access.yaml", "checker_session_max_hours: 12", "")
    problems = check_policy_dir(folder)
    assert [(p.file.name, p.key) for p in problems] == [
        ("access.yaml", "checker_session_max_hours")
    ]

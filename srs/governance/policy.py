"""Policies as data: load and validate the YAML files of a policy folder into one PolicySet.

Each file holds one part (``sdc.yaml``, ``privacy_budget.yaml``, ``classification.yaml``,
``access.yaml``, ``release.yaml``, ``synthetic.yaml``). A malformed or out-of-range value is refused at load with
the file, the dotted key, what is allowed and the value found. A site uses its own folder by
setting ``SRS_POLICY_DIR``.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from disclosure.policy import PolicyModel, PrivacyBudgetPolicy, SDCPolicy
from srs.errors import SRSError

POLICY_DIR_ENV = "SRS_POLICY_DIR"
DESIGN_ROLES = frozenset({"admin", "steward", "researcher", "checker", "student"})


class PolicyError(SRSError):
    """A policy file is missing, unreadable, or holds a value that is not allowed."""

    def __init__(self, message: str, *, file: Path | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ": ".join(str(part) for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class ClassificationPolicy(PolicyModel):
    """Classification levels (least to most sensitive) and the level of each dataset name."""

    levels: list[str] = Field(min_length=1)
    default_level: str
    datasets: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _levels_known(self) -> ClassificationPolicy:
        if len(set(self.levels)) != len(self.levels):
            raise ValueError(f"levels must be unique, got {self.levels}")
        for name, level in [("default_level", self.default_level), *self.datasets.items()]:
            if level not in self.levels:
                raise ValueError(f"{name}: level {level!r} is not one of {', '.join(self.levels)}")
        return self

    def rank(self, level: str) -> int:
        """Position of ``level`` from least (0) to most sensitive."""
        try:
            return self.levels.index(level)
        except ValueError:
            raise PolicyError(
                f"classification {level!r} is not one of {', '.join(self.levels)}"
            ) from None

    def level_for(self, dataset_name: str) -> str:
        """The level of ``dataset_name``: the longest matching pattern wins, else the default."""
        matches = [p for p in self.datasets if fnmatch.fnmatchcase(dataset_name, p)]
        if not matches:
            return self.default_level
        return self.datasets[max(matches, key=len)]

    def at_most(self, level: str, ceiling: str) -> bool:
        """True when ``level`` is no more sensitive than ``ceiling``."""
        return self.rank(level) <= self.rank(ceiling)


class AirlockPolicy(PolicyModel):
    """The technical airlock of a researcher's server (``srs.hub``): what the browser may read
    back, what may be uploaded, how fast kernel output may reach the browser, and the limits of
    the environment API's requests."""

    # Files the browser may open and save (notebooks and code); every other file stays on the
    # server and is neither served nor uploaded.
    editable_suffixes: list[str] = Field(min_length=1)
    max_readable_file_bytes: int = Field(ge=1_000, le=100_000_000)
    max_upload_file_bytes: int = Field(ge=1_000, le=100_000_000)
    # Content of editable files served to the browser over a sliding hour, all files together:
    # a kernel may write anything into a notebook, so file reads are bounded like its output.
    read_bytes_per_hour: int = Field(ge=1_000, le=10_000_000_000)
    # Kernel output to the browser, over a sliding window (every message type but status).
    output_bytes_per_second: int = Field(ge=100, le=100_000_000)
    output_messages_per_second: int = Field(ge=1, le=100_000)
    output_window_seconds: float = Field(ge=1, le=3600)
    max_output_message_bytes: int = Field(ge=1_000, le=100_000_000)
    # The environment API: a frame's decoded size, all frames of one request, nesting depth.
    max_decoded_frame_bytes: int = Field(ge=1_000_000, le=50_000_000_000)
    max_decoded_request_bytes: int = Field(ge=1_000_000, le=100_000_000_000)
    max_json_depth: int = Field(ge=4, le=1_000)

    @field_validator("editable_suffixes")
    @classmethod
    def _suffixes(cls, suffixes: list[str]) -> list[str]:
        for suffix in suffixes:
            if not re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix):
                raise ValueError(f"{suffix!r} is not a file suffix such as '.ipynb'")
        return [suffix.lower() for suffix in suffixes]

    @model_validator(mode="after")
    def _an_hour_reads_a_file(self) -> AirlockPolicy:
        if self.read_bytes_per_hour < self.max_readable_file_bytes:
            raise ValueError(
                "read_bytes_per_hour must be at least max_readable_file_bytes "
                f"({self.read_bytes_per_hour} < {self.max_readable_file_bytes}): otherwise the "
                "largest readable notebook could never be opened"
            )
        return self

    @model_validator(mode="after")
    def _request_holds_a_frame(self) -> AirlockPolicy:
        if self.max_decoded_request_bytes < self.max_decoded_frame_bytes:
            raise ValueError(
                "max_decoded_request_bytes must be at least max_decoded_frame_bytes "
                f"({self.max_decoded_request_bytes} < {self.max_decoded_frame_bytes})"
            )
        return self


class AccessPolicy(PolicyModel):
    """Safe-people and safe-settings rules: lockout, idle timeout, validity, role permissions,
    the bound on audit fields and the airlock of researchers' servers."""

    failed_login_limit: int = Field(ge=1, le=100)
    idle_timeout_minutes: int = Field(ge=1, le=1440)
    # However active, a checker-UI sign-in ends this long after it began (its absolute lifetime).
    checker_session_max_hours: int = Field(ge=1, le=24)
    accreditation_validity_days: int = Field(ge=1, le=3650)
    training_validity_days: int = Field(ge=1, le=3650)
    # Longest text kept of any free-text audit field (target, reason, each detail); longer
    # values are cut, marked and their SHA-256 kept, so one call cannot flood the log.
    audit_field_max_chars: int = Field(ge=200, le=1_000_000)
    airlock: AirlockPolicy
    steward_zone: list[str] = Field(min_length=1)
    # Data areas whose versions must come from deliveries under agreements (the pipeline writes
    # them with a lineage naming sources and agreements); empty only where no data is real
    # (a practice deployment on synthetic open data).
    lineage_required: list[str]
    roles: dict[str, list[str]]

    @model_validator(mode="after")
    def _session_outlives_idle_timeout(self) -> AccessPolicy:
        if self.checker_session_max_hours * 60 < self.idle_timeout_minutes:
            raise ValueError(
                f"checker_session_max_hours ({self.checker_session_max_hours} h) must be at least "
                f"idle_timeout_minutes ({self.idle_timeout_minutes} min): a session cannot "
                "sit idle for longer than it may last"
            )
        return self

    @field_validator("lineage_required")
    @classmethod
    def _area_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not re.fullmatch(r"[a-z0-9_]+/\*", pattern):
                raise ValueError(
                    f"lineage_required: {pattern!r} is not a data area; write it as area/*, "
                    'e.g. "linked/*"'
                )
        return patterns

    @field_validator("roles")
    @classmethod
    def _design_roles(cls, roles: dict[str, list[str]]) -> dict[str, list[str]]:
        if set(roles) != DESIGN_ROLES:
            missing = sorted(DESIGN_ROLES - set(roles))
            extra = sorted(set(roles) - DESIGN_ROLES)
            raise ValueError(
                f"roles must be exactly {', '.join(sorted(DESIGN_ROLES))}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(extra)}" if extra else "")
            )
        for role, actions in roles.items():
            for action in actions:
                if not re.fullmatch(r"[a-z_]+\.[a-z_]+", action):
                    raise ValueError(f"{role}: action {action!r} is not of the form area.verb")
        return roles

    def allows(self, role: str, action: str) -> bool:
        """True when ``role`` may take ``action``."""
        return action in self.roles.get(role, ())

    def in_steward_zone(self, dataset_name: str) -> bool:
        """True for datasets only stewards may read (extracts with identifiers, keys, lookups)."""
        return any(fnmatch.fnmatchcase(dataset_name, pattern) for pattern in self.steward_zone)

    def requires_lineage(self, dataset_name: str) -> bool:
        """True for datasets that must come from deliveries under agreements (``source/*``,
        ``linked/*``): stored only with a lineage naming their sources and agreements."""
        return any(fnmatch.fnmatchcase(dataset_name, pattern) for pattern in self.lineage_required)

    @property
    def known_actions(self) -> set[str]:
        """Every action some role may take."""
        return {action for actions in self.roles.values() for action in actions}


class ReleasePolicy(PolicyModel):
    """Output-release rules: reviews, signing and the file gate."""

    independent_reviews: int = Field(ge=1, le=5)
    blind_reviews: bool
    checker_may_review_own_project: bool
    signing_algorithm: str = Field(pattern="^ed25519$")
    allowed_file_types: list[str] = Field(min_length=1)
    max_file_size_mb: float = Field(gt=0, le=10_000)
    max_csv_rows: int = Field(gt=0)
    identifier_column_patterns: list[str]

    @field_validator("checker_may_review_own_project")
    @classmethod
    def _two_person_rule(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "must be false: a checker reviewing their own project's outputs breaks the "
                "two-person rule"
            )
        return value

    @field_validator("identifier_column_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {pattern!r} is not a valid regular expression: {exc}"
                ) from None
        return patterns


class SyntheticDatasetSpec(PolicyModel):
    """What an intruder could know of one dataset's records, and what they would want to learn."""

    quasi_identifiers: list[str] = Field(min_length=1)
    sensitive: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _disjoint_and_unique(self) -> SyntheticDatasetSpec:
        for name, columns in (
            ("quasi_identifiers", self.quasi_identifiers),
            ("sensitive", self.sensitive),
        ):
            if len(set(columns)) != len(columns):
                raise ValueError(f"{name} must not repeat a column, got {columns}")
        both = sorted(set(self.quasi_identifiers) & set(self.sensitive))
        if both:
            raise ValueError(
                f"{', '.join(both)} cannot be both a quasi-identifier and a sensitive attribute"
            )
        return self


class SyntheticPrivacyGates(PolicyModel):
    """Thresholds of the privacy gates a synthetic replica must pass before export.

    The exact-match, DCR, membership and attribute gates compare the replica with a real holdout
    (records the synthesiser never saw), so each threshold is an excess over what chance gives.
    """

    # Synthetic rows equal to a training row on quasi-identifiers + sensitive attributes, as a
    # share of the replica, beyond the share of holdout rows that equal a training row by chance.
    max_exact_match_excess: float = Field(ge=0, le=1)
    # Share of synthetic rows nearer a training row than a holdout row (ties count half; equal
    # training and holdout samples, so 0.5 is what a replica that did not memorise gives).
    max_dcr_closer_to_training_share: float = Field(ge=0.5, le=1)
    # Membership-inference advantage 2 * (AUC - 0.5) of a distance attack: 0 is chance, 1 certainty.
    max_membership_advantage: float = Field(ge=0, le=1)
    # Attribute-inference risk (attack accuracy on training rows above that on holdout rows,
    # normalised as in anonymeter): 0 is no more than what the population reveals.
    max_attribute_inference_risk: float = Field(ge=0, le=1)
    # Share of synthetic rows reproducing a quasi-identifier combination unique in the training
    # data, beyond the share of holdout rows that land on one by chance.
    max_training_unique_excess: float = Field(ge=0, le=1)
    # k of the k-anonymity figure reported for the replica (disclosure.microdata).
    k_anonymity_threshold: int = Field(ge=1, le=1000)
    # A gate fails when its figure exceeds the threshold by more than this many standard errors
    # of sampling noise (small holdouts are noisy; a replica that copies is many errors above).
    noise_allowance_standard_errors: float = Field(ge=0, le=4)
    # Distance computations use at most this many rows of each table (a seeded sample).
    max_rows_compared: int = Field(ge=100, le=1_000_000)
    seed: int = Field(ge=0)


class FidelityPolicy(PolicyModel):
    """How like the real data a replica must be (SDMetrics quality report)."""

    min_quality_score: float = Field(gt=0, le=1)


class ResearchQuestionTolerance(PolicyModel):
    """How far a research question's answer on synthetic data may sit from the real answer."""

    max_absolute_difference_percentage_points: float = Field(gt=0, le=100)


class SyntheticPolicy(PolicyModel):
    """Synthetic replicas: privacy gates, the datasets' quasi-identifiers, fidelity targets."""

    privacy: SyntheticPrivacyGates
    datasets: dict[str, SyntheticDatasetSpec] = Field(min_length=1)
    fidelity: FidelityPolicy
    research_questions: ResearchQuestionTolerance


class PolicySet(PolicyModel):
    """Every policy of a deployment, validated."""

    sdc: SDCPolicy
    privacy_budget: PrivacyBudgetPolicy
    classification: ClassificationPolicy
    access: AccessPolicy
    release: ReleasePolicy
    synthetic: SyntheticPolicy
    source_dir: Path


POLICY_FILES: dict[str, tuple[str, type[PolicyModel], str]] = {
    "sdc": ("sdc.yaml", SDCPolicy, "the active SDC profile and the named profiles"),
    "privacy_budget": ("privacy_budget.yaml", PrivacyBudgetPolicy, "the DP budgets"),
    "classification": ("classification.yaml", ClassificationPolicy, "classification levels"),
    "access": ("access.yaml", AccessPolicy, "lockout, timeouts, validity and role actions"),
    "release": ("release.yaml", ReleasePolicy, "review, signing and file-gate rules"),
    "synthetic": (
        "synthetic.yaml",
        SyntheticPolicy,
        "the privacy gates, quasi-identifiers and fidelity targets of synthetic replicas",
    ),
}


def default_policy_dir() -> Path:
    """``SRS_POLICY_DIR`` if set, else the ``policies/`` folder shipped beside the packages."""
    configured = os.environ.get(POLICY_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "policies"


def _describe(error: dict[str, Any]) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in {"missing", "extra_forbidden"}:
        return (
            "a required key is missing"
            if error["type"] == "missing"
            else ("unknown key (misspelt?); it is not allowed here")
        )
    return f"{message} (got {error.get('input')!r})"


def _read_part(directory: Path, part: str) -> tuple[PolicyModel | None, list[PolicyError]]:
    filename, model, contents = POLICY_FILES[part]
    path = directory / filename
    if not path.is_file():
        return None, [PolicyError(f"missing; it must hold {contents}", file=path)]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        return None, [PolicyError(f"not valid YAML{line}: {exc}", file=path)]
    except UnicodeDecodeError:
        return None, [PolicyError("not UTF-8 text", file=path)]
    if not isinstance(data, dict):
        return None, [
            PolicyError(f"must be a mapping of keys to values holding {contents}", file=path)
        ]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        # A misspelt key shows up as "unknown" plus "missing"; the unknown one says more.
        errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
        return None, [
            PolicyError(
                _describe(error), file=path, key=".".join(str(p) for p in error["loc"]) or None
            )
            for error in errors
        ]


def check_policy_dir(directory: Path | str | None = None) -> list[PolicyError]:
    """Every problem in every policy file of ``directory`` (an empty list means valid)."""
    folder = Path(directory) if directory is not None else default_policy_dir()
    if not folder.is_dir():
        return [PolicyError("is not a folder of policy files", file=folder)]
    problems: list[PolicyError] = []
    for part in POLICY_FILES:
        problems.extend(_read_part(folder, part)[1])
    return problems


def load_policies(directory: Path | str | None = None) -> PolicySet:
    """Load and validate a policy folder; raise ``PolicyError`` on the first problem found."""
    folder = Path(directory) if directory is not None else default_policy_dir()
    if not folder.is_dir():
        raise PolicyError(f"is not a folder of policy files (set {POLICY_DIR_ENV})", file=folder)
    parts: dict[str, Any] = {}
    for part in POLICY_FILES:
        model, problems = _read_part(folder, part)
        if problems:
            raise problems[0]
        parts[part] = model
    return PolicySet(**parts, source_dir=folder.resolve())

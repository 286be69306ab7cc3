"""The declarative linkage settings (``policies/linkage.yaml``): comparisons, blocking,
training, thresholds, standardisation; loaded, validated and overridden key by key."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from disclosure.policy import PolicyModel
from srs.governance.policy import PolicyError, default_policy_dir
from srs.pipeline.linkage.cleaning import folded_text
from srs.pipeline.linkage.errors import LinkageError
from srs.pipeline.linkage.roles import LINKAGE_COLUMNS


class ComparisonSpec(PolicyModel):
    """One comparison of the model: which column, and how two values are compared.

    Methods: ``exact``; ``fuzzy`` (exact, then Damerau-Levenshtein distances); ``name`` and
    ``text`` (exact, then Jaro-Winkler similarities); ``date`` (exact, day and month swapped,
    one-digit typo, within a year); ``postcode`` (exact, UK sector, district and area, then
    Damerau-Levenshtein distances).
    """

    column: str
    method: Literal["name", "text", "date", "postcode", "exact", "fuzzy"]
    # A second form of the value that counts as the same: the forename's usual form (Bill ->
    # WILLIAM), the address lines in any order.
    canonical_column: str | None = None
    # name: a level for this column and that one swapped (forename and surname transposed).
    swapped_with: str | None = None
    jaro_winkler: list[float] = Field(default_factory=lambda: [0.92, 0.8])
    damerau_levenshtein: list[int] = Field(default_factory=lambda: [1])
    term_frequency: bool = False


class TrainingSpec(PolicyModel):
    """How the model is trained without labels."""

    deterministic_rules: list[list[str]] = Field(min_length=1)
    deterministic_recall: float = Field(gt=0, le=1)
    u_max_pairs: int = Field(ge=10_000)
    em_blocking: list[list[str]] = Field(min_length=1)
    max_records: int = Field(default=250_000, ge=1000)
    seed: int = 42


class ComparisonBudgetSpec(PolicyModel):
    """The most record pairs the blocking rules may make in one run (``srs.pipeline.linkage.blocking``).

    The budget is ``max_comparisons``, or ``max_per_record`` times the number of records when
    that is smaller; linkage refuses before training when the rules would make more.
    """

    max_comparisons: int = Field(default=200_000_000, ge=1)
    max_per_record: float | None = Field(default=None, gt=0)

    def limit(self, records: int) -> int:
        """The budget, in comparisons, for ``records`` records."""
        if self.max_per_record is None:
            return self.max_comparisons
        return min(self.max_comparisons, int(self.max_per_record * records))


class ClericalReviewSpec(PolicyModel):
    """Which pairs count as borderline, and how many a steward reviews."""

    low: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)
    sample_size: int = Field(ge=0)


class MissingValuesSpec(PolicyModel):
    """Values that mean "not recorded": they become missing, so they never agree.

    Compared after trimming, case-insensitively (and after the role's own cleaning, so ``N/A``
    also catches ``n / a``); blanks and whitespace are always missing. ``any_role`` applies to
    every role, the others to one role only (``"0"`` is a placeholder for an identifier, not a
    name).
    """

    any_role: list[str] = Field(default_factory=list)
    forename: list[str] = Field(default_factory=list)
    surname: list[str] = Field(default_factory=list)
    date_of_birth: list[str] = Field(default_factory=list)
    sex: list[str] = Field(default_factory=list)
    postcode: list[str] = Field(default_factory=list)
    pnc: list[str] = Field(default_factory=list)
    street_number: list[str] = Field(default_factory=list)
    address: list[str] = Field(default_factory=list)  # compared line by line
    locality: list[str] = Field(default_factory=list)
    region: list[str] = Field(default_factory=list)
    identifiers: list[str] = Field(default_factory=list)  # every identifier a mapping adds

    def for_role(self, role: str) -> frozenset[str]:
        """The placeholders of ``role`` in the form values are compared in."""
        own = getattr(self, role) if role in LINKAGE_COLUMNS else self.identifiers
        values = [*self.any_role, *own]
        return frozenset(text for text in map(folded_text, values) if text)


class StandardisationSpec(PolicyModel):
    """How source values are made comparable before linkage."""

    missing_values: MissingValuesSpec = Field(default_factory=MissingValuesSpec)
    # A date column where more than this share of the non-blank values is not a date in the
    # declared format is refused (the format is wrong), not linked with dates missing.
    max_unparsable_date_share: float = Field(default=0.5, ge=0, le=1)


class LinkageSettings(PolicyModel):
    """The whole declarative linkage configuration (``policies/linkage.yaml``)."""

    standardisation: StandardisationSpec = Field(default_factory=StandardisationSpec)

    backend: Literal["duckdb", "spark"] = "duckdb"
    # dedupe_only treats all tables as one list (every pair of records is compared, within
    # and across tables); link_only compares only records of different tables;
    # link_and_dedupe compares every pair but keeps each record's table.
    link_type: Literal["dedupe_only", "link_only", "link_and_dedupe"] = "dedupe_only"
    comparisons: list[ComparisonSpec] = Field(min_length=1)
    blocking_rules: list[list[str]] = Field(min_length=1)
    comparison_budget: ComparisonBudgetSpec = Field(default_factory=ComparisonBudgetSpec)
    training: TrainingSpec
    match_threshold: float = Field(gt=0, lt=1)
    # A pair is linked only when something besides the names backs it: a level of another
    # comparison with at least this Bayes factor (m/u). Names alone, however rare, leave a pair
    # for clerical review. 0 turns the rule off.
    min_corroborating_bayes_factor: float = Field(default=5.0, ge=0)
    clerical_review: ClericalReviewSpec


def load_linkage_settings(policy_dir: Path | None = None) -> LinkageSettings:
    """Load and validate ``linkage.yaml``."""
    path = (policy_dir or default_policy_dir()) / "linkage.yaml"
    try:
        return LinkageSettings.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise PolicyError("missing; it must hold the Splink linkage settings", file=path) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        raise PolicyError(
            error["msg"], file=path, key=".".join(str(p) for p in error["loc"])
        ) from None


def override_settings(settings: LinkageSettings, overrides: object, where: str) -> LinkageSettings:
    """``settings`` with the keys of ``overrides`` replaced, validated as ``linkage.yaml`` is.

    Sections merge key by key (``training: {seed: 7}`` keeps the other training keys); lists
    are replaced whole. ``where`` names the source of the overrides in errors (a settings file,
    a command-line option). An unknown key is refused, named.
    """
    if overrides is None:
        raise LinkageError(f"{where} is empty; give the keys of linkage.yaml to change")
    if not isinstance(overrides, dict):
        raise LinkageError(
            f"{where}: expected keys of linkage.yaml (e.g. match_threshold: 0.95), "
            f"not {type(overrides).__name__}"
        )

    def merge(base: dict, changes: dict) -> dict:
        merged = dict(base)
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merged[key] = merge(base[key], value)
            else:
                merged[key] = value
        return merged

    try:
        return LinkageSettings.model_validate(merge(settings.model_dump(), overrides))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            raise LinkageError(
                f"{where}: {key!r} is not a linkage setting; the keys are those of "
                "policies/linkage.yaml (check the spelling and the section it is under)"
            ) from None
        raise LinkageError(f"{where}: {key}: {error['msg']}") from None


def read_settings_file(settings: LinkageSettings, path: Path) -> LinkageSettings:
    """``settings`` overridden by the keys of a YAML file (see :func:`override_settings`)."""
    try:
        overrides = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LinkageError(f"cannot read the settings file {path}: {exc}") from exc
    return override_settings(settings, overrides, f"settings file {path}")

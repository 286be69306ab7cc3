"""The national offence list and its correspondence to the ICCS offence classification.

Loaded from ``policies/offences.yaml`` and checked against the ICCS sections and divisions in
``policies/reference/``: every offence maps to a valid ICCS code, from which its section
(2 digits), division (4), group (5) and class (6) follow, so any statistic can be aggregated
to any ICCS level.
"""

from __future__ import annotations

import csv
import re
from functools import cached_property
from pathlib import Path

import pandas as pd
import yaml
from pydantic import Field, ValidationError, model_validator

from disclosure.policy import PolicyModel
from srs.governance.policy import PolicyError, default_policy_dir

ICCS_REFERENCE = Path("reference") / "iccs_sections_divisions.csv"
COURT_MODES = ("summary", "either_way", "indictable")


class Offence(PolicyModel):
    """One national offence and the deepest ICCS code it maps to."""

    code: str = Field(pattern=r"^[A-Z0-9_]{2,16}$")
    label: str = Field(min_length=1)
    iccs: str = Field(pattern=r"^\d{2}(\d{2}(\d(\d)?)?)?$")
    mode: str = Field(pattern="^(summary|either_way|indictable)$")
    person_victim: bool
    weight: float = Field(gt=0)


class OffenceList(PolicyModel):
    """Every national offence the environment knows, with its ICCS mapping."""

    offences: list[Offence] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_codes(self) -> OffenceList:
        codes = [o.code for o in self.offences]
        duplicates = sorted({c for c in codes if codes.count(c) > 1})
        if duplicates:
            raise ValueError(f"offence codes must be unique; repeated: {', '.join(duplicates)}")
        return self

    @cached_property
    def by_code(self) -> dict[str, Offence]:
        """Offences keyed by national code."""
        return {o.code: o for o in self.offences}

    @property
    def codes(self) -> list[str]:
        """The national offence codes, in list order."""
        return [o.code for o in self.offences]

    def table(self) -> pd.DataFrame:
        """One row per offence with its ICCS section, division, group and class codes."""
        rows = []
        for o in self.offences:
            rows.append(
                {
                    "offence_code": o.code,
                    "offence_label": o.label,
                    "iccs_code": o.iccs,
                    "iccs_section": o.iccs[:2],
                    "iccs_division": o.iccs[:4] if len(o.iccs) >= 4 else None,
                    "iccs_group": o.iccs[:5] if len(o.iccs) >= 5 else None,
                    "iccs_class": o.iccs[:6] if len(o.iccs) >= 6 else None,
                    "court_mode": o.mode,
                    "person_victim": o.person_victim,
                }
            )
        return pd.DataFrame(rows)


def read_iccs_reference(policy_dir: Path) -> dict[str, str]:
    """ICCS section and division codes to their labels."""
    path = policy_dir / ICCS_REFERENCE
    if not path.is_file():
        raise PolicyError("missing: the ICCS sections and divisions reference", file=path)
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["code"]: row["label"] for row in csv.DictReader(handle)}


def load_offences(policy_dir: Path | str | None = None) -> OffenceList:
    """Load ``offences.yaml`` and check every ICCS code against the reference."""
    folder = Path(policy_dir) if policy_dir is not None else default_policy_dir()
    path = folder / "offences.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        offences = OffenceList.model_validate(data)
    except FileNotFoundError:
        raise PolicyError("missing; it must list the national offences", file=path) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"not valid YAML: {exc}", file=path) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        raise PolicyError(
            f"{error['msg'].removeprefix('Value error, ')} (got {error.get('input')!r})",
            file=path,
            key=key,
        ) from None
    reference = read_iccs_reference(folder)
    for index, offence in enumerate(offences.offences):
        known = offence.iccs[:4] if len(offence.iccs) >= 4 else offence.iccs
        if known not in reference:
            raise PolicyError(
                f"ICCS code {offence.iccs} of {offence.code} is under no known ICCS "
                f"{'division' if len(known) == 4 else 'section'} ({known})",
                file=path,
                key=f"offences.{index}.iccs",
            )
    return offences


def iccs_levels(code: str) -> dict[str, str | None]:
    """The section/division/group/class prefixes of an ICCS code (None below its depth)."""
    if not re.fullmatch(r"\d{2}(\d{2}(\d(\d)?)?)?", code):
        raise ValueError(f"{code!r} is not an ICCS code of 2, 4, 5 or 6 digits")
    return {
        "section": code[:2],
        "division": code[:4] if len(code) >= 4 else None,
        "group": code[:5] if len(code) >= 5 else None,
        "class": code[:6] if len(code) >= 6 else None,
    }

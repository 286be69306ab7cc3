"""Name reference data: common English nicknames and the registered names they stand for.

Read from ``policies/reference/nicknames.csv``; the simulator uses it to put nicknames into
records, and linkage to recognise them (``Bill`` and ``William`` are the same forename).
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from srs.governance.policy import PolicyError, default_policy_dir

NICKNAMES_FILE = Path("reference") / "nicknames.csv"


@cache
def _read(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        raise PolicyError("missing: the nickname reference (name,nickname)", file=path)
    table: dict[str, list[str]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            table.setdefault(row["name"], []).append(row["nickname"])
    return table


def read_nicknames(policy_dir: Path | None = None) -> dict[str, list[str]]:
    """Registered name -> its nicknames (e.g. 'William' -> ['Bill', 'Will', 'Billy'])."""
    return _read(Path(policy_dir or default_policy_dir()) / NICKNAMES_FILE)


def canonical_forenames(policy_dir: Path | None = None) -> dict[str, str]:
    """Upper-case nickname -> upper-case registered name (the first listed, when several)."""
    canonical: dict[str, str] = {}
    for name, nicknames in read_nicknames(policy_dir).items():
        for nickname in nicknames:
            canonical.setdefault(nickname.upper(), name.upper())
    return canonical

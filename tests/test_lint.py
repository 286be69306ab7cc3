"""The tree stays ``ruff check`` and ``ruff format --check`` clean (STYLE.md), checked by the suite
so that CI holds it, not only ``make lint``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.parametrize("command", [["check", "--no-cache"], ["format", "--check", "--no-cache"]])
def test_ruff_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [str(RUFF), *command, "."], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (
        f"ruff {' '.join(command)} found problems (run `make format`):\n{result.stdout}"
    )

"""The examples in the packages' docstrings run as written (those that need a deployment or data
are marked ``+SKIP``), so a researcher who copies one gets what it shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docstring_examples_run() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--doctest-modules",
            "srs",
            "disclosure",
            "synthetic",
            "output_checking",
            # Alembic's environment runs migrations when imported; ``python -m srs.cli`` runs
            # the command line.
            "--ignore=srs/governance/registry/migrations",
            "--ignore=srs/cli/__main__.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout

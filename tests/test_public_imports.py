"""The public names people import keep working whatever the layers below them look like.

Each is imported in a fresh interpreter, as a notebook or a ``jupyterhub_config.py`` would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "code",
    [
        "import srs; assert callable(srs.session); assert callable(srs.open_data)",
        "from srs.session import ResearchSession, SessionError, session",
        "import srs.hub; from srs.hub.auth import SRSAuthenticator as A;"
        " assert srs.hub.SRSAuthenticator is A",
        "import srs.hub; from srs.hub.spawner import SRSSpawner as S; assert srs.hub.SRSSpawner is S",
        "from srs.vault import Vault, VaultError, VaultIntegrityError, VaultKeyError",
        "from srs.governance.registry import open_registry",
        "from disclosure.tables import check_table; from disclosure import dp",
        "from disclosure.protection import suppress_primary, controlled_round",
        "from disclosure.suppression import linear_table, secondary_suppression",
        "from srs.cli import app, main",
    ],
)
def test_public_import(code: str) -> None:
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_an_unknown_hub_name_is_an_attribute_error() -> None:
    result = run_python("import srs.hub; srs.hub.NoSuchThing")
    assert result.returncode == 1
    assert "module 'srs.hub' has no attribute 'NoSuchThing'" in result.stderr


def test_loading_the_hub_package_loads_none_of_its_parts() -> None:
    # The kernel imports srs.hub.client; that must not drag in the authenticator or the API.
    result = run_python(
        "import sys, srs.hub.client\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('srs.hub.'))\n"
        "assert 'srs.hub.auth' not in loaded and 'srs.hub.api' not in loaded, loaded"
    )
    assert result.returncode == 0, result.stderr

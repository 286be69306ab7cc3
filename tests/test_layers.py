"""The layers of DESIGN.md hold: nothing imports a layer above its own (import-linter).

The contracts are in pyproject.toml (``[tool.importlinter]``). These tests run the real
``lint-imports`` on the tree, and then on a copy of it with one backward import planted, so that
the check is seen to fail when it should: a lazy import inside a function counts, and so does a
chain through a third module.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("srs", "disclosure", "synthetic", "output_checking")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the packages under ``root`` with the contracts of pyproject.toml."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_keeps_every_layer_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packages and pyproject.toml, for planting a backward import in."""
    copy = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def plant(tree: Path, module: str, code: str) -> str:
    """Append ``code`` to ``module``'s file in ``tree``; return the original text to restore."""
    path = tree / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = tree / module.replace(".", "/") / "__init__.py"
    original = path.read_text(encoding="utf-8")
    path.write_text(original + "\n\n" + code + "\n", encoding="utf-8")
    return original


@pytest.mark.parametrize(
    ("module", "code", "broken"),
    [
        # The core reaching up to the hub, hidden inside a function.
        (
            "srs.governance.policy",
            "def _late():\n    from srs.hub import client\n    return client",
            "srs.governance is not allowed to import srs.hub",
        ),
        # The vault importing the research session at module level.
        (
            "srs.vault.crypto",
            "import srs.research.session",
            "srs.vault is not allowed to import srs.research",
        ),
        # The pipeline using the checkers' workflow.
        (
            "srs.pipeline.deid",
            "from output_checking import workflow as _workflow",
            "srs.pipeline is not allowed to import output_checking",
        ),
        # synthetic/ reaching the research session through the front door.
        (
            "synthetic.errors",
            "import srs.session",
            "synthetic is not allowed to import srs.session",
        ),
        # The pure computation package reading the registry's database.
        (
            "disclosure.evidence",
            "import sqlalchemy",
            "disclosure is not allowed to import sqlalchemy",
        ),
    ],
)
def test_a_backward_import_breaks_the_contract(
    tree_copy: Path, module: str, code: str, broken: str
) -> None:
    path_module = module
    original = plant(tree_copy, path_module, code)
    try:
        result = lint_imports(tree_copy)
    finally:
        target = tree_copy / (module.replace(".", "/") + ".py")
        if not target.exists():
            target = tree_copy / module.replace(".", "/") / "__init__.py"
        target.write_text(original, encoding="utf-8")
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout, result.stdout


def test_an_indirect_chain_upwards_is_caught(tree_copy: Path) -> None:
    # The governance core imports a new module outside every layer that imports the hub: no
    # single import crosses a layer, the chain runs from the bottom to the top.
    bridge = tree_copy / "srs" / "bridge_for_test.py"
    bridge.write_text("from srs.hub import tokens\n", encoding="utf-8")
    original = plant(tree_copy, "srs.governance.audit", "import srs.bridge_for_test")
    try:
        result = lint_imports(tree_copy)
    finally:
        (tree_copy / "srs" / "governance" / "audit.py").write_text(original, encoding="utf-8")
        bridge.unlink()
    assert result.returncode == 1
    assert "srs.governance is not allowed to import srs.hub" in result.stdout
    assert "srs.governance.audit -> srs.bridge_for_test" in result.stdout
    assert "srs.bridge_for_test -> srs.hub.tokens" in result.stdout


def test_every_module_of_srs_is_in_a_layer() -> None:
    # A module outside the layers is checked by no contract of its own: srs/ holds only the layer
    # subpackages, the front doors, the root exception and the package's own __init__.
    top_level = sorted(path.name for path in (ROOT / "srs").iterdir() if path.name != "__pycache__")
    layered = {"governance", "vault", "pipeline", "research", "hub", "cli", "cli.py"}
    loose = {"__init__.py", "errors.py", "session.py", "demo.py"}
    assert set(top_level) - layered - loose == set(), (
        "srs/ has a module outside every layer: put it in the subpackage of its layer "
        "(and the layer list of pyproject.toml's [tool.importlinter] if it is a new layer)"
    )

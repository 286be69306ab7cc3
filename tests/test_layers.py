"""The layers of DESIGN.md hold: nothing imports a layer above its own (import-linter).

The contracts are in pyproject.toml (``[tool.importlinter]``). These tests run the real
``lint-imports`` on the tree, and then on a copy of it with one backward import planted, so that
the check is seen to fail when it should: a lazy import inside a function counts, and so does a
chain through a third module.
"""

from __future__ import annotations

import ast
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


# ------------------------------------------------------------------ imports import-linter cannot see
# import-linter reads import statements only. A module can also reach another through a string
# (``importlib.import_module("srs.hub.client")``, ``__import__``, a table of module names that a
# function imports later) or through ``srs``'s lazy attributes (``import srs; srs.session``). These
# tests read every module's syntax tree for both and hold them to the same layers.

DYNAMIC_IMPORTERS = {"import_module", "__import__"}
# Modules whose dynamic imports take a name from a table (not a literal): the table's strings are
# checked below like every other string, so only the call itself is allowed here.
TABLE_DRIVEN = {
    "srs.hub.client": "REMOTE_ERRORS names the module of each error class the API may report",
    "srs.hub.wire": "the wire's table of the value types that travel, by module and name",
    "srs.hub": "srs.hub's public names load their modules on first use (_PUBLIC)",
}


def layer_prefixes(root: Path) -> list[list[str]]:
    """The layers of pyproject.toml's layers contract, lowest first, each a list of packages."""
    import tomllib

    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers")
    layers = [
        [part.strip() for part in layer.replace("|", ":").split(":")]
        for layer in contract["layers"]
    ]
    return list(reversed(layers))


def layer_of(module: str, layers: list[list[str]]) -> int | None:
    """The index (0 lowest) of the layer ``module`` belongs to, or None outside every layer."""
    for index, packages in enumerate(layers):
        if any(module == package or module.startswith(package + ".") for package in packages):
            return index
    return None


def module_names(root: Path) -> dict[str, Path]:
    names = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            names[name] = path
    return names


def names_in_strings_and_attributes(tree: ast.AST) -> list[tuple[int, str]]:
    """Dotted names of our packages this tree names in a string (not a docstring) or reaches as an
    attribute chain from a root package (``srs.session``), with their line numbers."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            text = node.value.strip()
            # A bare package name is a word ("synthetic" the policy file); dotted, it is a module.
            dotted = "." in text and all(part.isidentifier() for part in text.split("."))
            if dotted and text.split(".")[0] in PACKAGES:
                found.append((node.lineno, text))
        elif isinstance(node, ast.Attribute):
            chain = []
            current: ast.AST = node
            while isinstance(current, ast.Attribute):
                chain.append(current.attr)
                current = current.value
            if isinstance(current, ast.Name) and current.id in PACKAGES:
                found.append((node.lineno, ".".join([current.id, *reversed(chain)])))
    return found


def dynamic_import_calls(tree: ast.AST) -> list[tuple[int, str | None]]:
    """Calls of ``import_module``/``__import__``: the literal module name, or None for a variable."""
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else getattr(node.func, "id", None)
            )
            if called in DYNAMIC_IMPORTERS and node.args:
                first = node.args[0]
                literal = (
                    first.value
                    if isinstance(first, ast.Constant) and isinstance(first.value, str)
                    else None
                )
                calls.append((node.lineno, literal))
    return calls


def upward_references(root: Path) -> list[str]:
    """Every string, attribute chain or dynamic import by which a module names a module of a
    higher layer than its own."""
    layers = layer_prefixes(root)
    modules = module_names(root)
    problems = []
    for name, path in sorted(modules.items()):
        own = layer_of(name, layers)
        if own is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        named = names_in_strings_and_attributes(tree)
        for line, literal in dynamic_import_calls(tree):
            if literal is None and name not in TABLE_DRIVEN:
                problems.append(f"{name} (line {line}) imports a module named by a variable")
            elif literal is not None and "." not in literal:
                named.append((line, literal))
        for line, dotted in named:
            parts = dotted.split(".")
            target = next(
                (
                    ".".join(parts[:k])
                    for k in range(len(parts), 0, -1)
                    if ".".join(parts[:k]) in modules
                ),
                None,
            )
            if target is None:
                continue
            # A root package and one more word is a permission or event name ("synthetic.read"),
            # unless it is one of srs's lazy attributes.
            if target in PACKAGES and len(parts) == 2 and parts[1] not in {"session", "open_data"}:
                continue
            # ``srs.session``/``srs.open_data`` are lazy attributes of srs: the modules they load.
            if target == "srs" and len(parts) > 1 and parts[1] in {"session", "open_data"}:
                target = "srs.session" if parts[1] == "session" else "synthetic.open_data"
            theirs = layer_of(target, layers)
            if theirs is not None and theirs > own:
                problems.append(f"{name} (line {line}) names {dotted}, a layer above its own")
    return problems


def test_no_module_names_a_higher_layer_in_a_string_or_attribute() -> None:
    assert upward_references(ROOT) == []


@pytest.mark.parametrize(
    ("module", "code", "expected"),
    [
        (
            "srs.governance.policy",
            "def _late():\n    import importlib\n    return importlib.import_module('srs.hub.client')",
            "srs.governance.policy (line",
        ),
        (
            "disclosure.evidence",
            "def _s():\n    import srs\n    return srs.session",
            "names srs.session",
        ),
        (
            "srs.vault.crypto",
            "_WORKFLOW = __import__('output_checking.workflow')",
            "names output_checking.workflow",
        ),
        (
            "srs.pipeline.deid",
            "_TABLE = {'x': 'srs.research.session'}\ndef _f(n):\n    import importlib\n    return importlib.import_module(_TABLE[n])",
            "imports a module named by a variable",
        ),
    ],
)
def test_a_hidden_upward_import_is_found(
    tree_copy: Path, module: str, code: str, expected: str
) -> None:
    original = plant(tree_copy, module, code)
    try:
        problems = upward_references(tree_copy)
    finally:
        target = tree_copy / (module.replace(".", "/") + ".py")
        target.write_text(original, encoding="utf-8")
    assert any(expected in problem for problem in problems), problems

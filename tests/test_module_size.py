"""No module grows past about 800 lines without saying why (STYLE.md: a module does one thing).

A module over the limit must carry, in its docstring, a paragraph that starts ``Why one module:``
and gives the reason (one algorithm whose parts share state, say). Splitting is the default.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("srs", "disclosure", "synthetic", "output_checking")
LIMIT = 850  # "about 800": a little room before the reason is owed
REASON = "Why one module:"


def long_modules_without_a_reason(root: Path) -> list[str]:
    """The modules under ``root``'s packages over ``LIMIT`` lines whose docstring gives no reason."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            lines = text.count("\n") + 1
            if lines <= LIMIT:
                continue
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if REASON not in docstring:
                found.append(f"{path.relative_to(root)} ({lines} lines)")
    return found


def test_no_long_module_without_a_reason() -> None:
    assert long_modules_without_a_reason(ROOT) == [], (
        f"split these modules, or give the reason in a docstring paragraph starting {REASON!r}"
    )


def test_a_long_module_is_found_and_a_reason_excuses_it(tmp_path: Path) -> None:
    package = tmp_path / "srs"
    package.mkdir()
    body = "\n".join(f"x{n} = {n}" for n in range(LIMIT + 10))
    (package / "long.py").write_text('"""A long module."""\n' + body, encoding="utf-8")
    assert long_modules_without_a_reason(tmp_path) == [f"srs/long.py ({LIMIT + 11} lines)"]
    (package / "long.py").write_text(
        f'"""A long module.\n\n{REASON} one table of codes.\n"""\n' + body, encoding="utf-8"
    )
    assert long_modules_without_a_reason(tmp_path) == []

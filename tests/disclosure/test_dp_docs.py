"""The examples in the DP modules' docstrings are run, so what a researcher reads stays true."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "disclosure.dp",
        "disclosure.dp.queries",
        "disclosure.dp.engine",
        "disclosure.dp.selection",
        "disclosure.dp.spend",
        "disclosure.policy",
    ],
)
def test_docstring_examples_hold(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0

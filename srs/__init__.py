"""srs: the secure research environment: registry, access, audit, vault, data pipeline, CLI and
the researcher session (``import srs; s = srs.session()``) and the open synthetic data
(``srs.open_data("cross_justice")``, no accreditation needed)."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ``srs.session`` (the module, which is also callable) loads on first use: importing it here
    # would import output_checking whenever any srs module is imported, and that imports srs.
    if name == "session":
        return importlib.import_module("srs.session")
    if name == "open_data":
        return importlib.import_module("synthetic.open_data").open_data
    raise AttributeError(f"module 'srs' has no attribute {name!r}")

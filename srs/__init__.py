"""srs: the secure research environment, in layers (lowest first; none imports one above it):

- ``srs.errors``: the root exception; ``srs.governance``: policy, deployment, registry, access,
  audit, budget ledger; ``srs.vault``: encrypted datasets; ``srs.pipeline``: safe data, from
  agencies' extracts to linked research tables (between them and the research surface sit the
  packages ``synthetic`` and ``output_checking``);
- ``srs.research``: the researcher's session surface; ``srs.hub``: JupyterHub and the
  environment API;
- the front doors: ``srs.session`` (``import srs; s = srs.session()``), ``srs.cli`` (the ``srs``
  command), ``srs.demo``; and the open synthetic data (``srs.open_data("cross_justice")``, no
  accreditation needed).

README.md's Layout section has the table; tests/test_layers.py holds the direction.
"""

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

"""srs.hub: the environment inside JupyterHub (safe settings), where a researcher's kernel runs as
an unprivileged user that holds no key and cannot read the registry or the vault.

- ``srs.hub.tokens``: per-session tokens the hub issues for one person in one project.
- ``srs.hub.api``: the environment API, a hub-managed service that resolves a session's token
  and runs the real ``ResearchSession`` behind the access check (``python -m srs.hub.api``).
- ``srs.hub.client``: ``RemoteSession``, what ``srs.session()`` returns inside the hub (when
  ``SRS_API_URL`` is set): the same API, by JSON calls to that service.
- ``srs.hub.wire``: the JSON format of those calls (frames as Parquet, never pickle).
- ``srs.hub.auth``, ``srs.hub.spawner``, ``srs.hub.airlock``, ``srs.hub.kernel``,
  ``srs.hub.config``: ``SRSAuthenticator``, ``SRSSpawner``, the airlock they set up and the
  ``jupyterhub_config.py`` that names them.

Nothing is imported eagerly, so that loading one part (the kernel's client) does not load the
others: ``srs.hub.SRSAuthenticator`` and ``srs.hub.SRSSpawner`` load their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "SRSAuthenticator": "srs.hub.auth",
    "SRSSpawner": "srs.hub.spawner",
    "RemoteSession": "srs.hub.client",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'srs.hub' has no attribute {name!r}")

"""``srs.session``: the researcher's front door, this module and also the call that starts a session.

``srs.session(user=..., project=...)`` returns the local ``ResearchSession`` in the environment,
a practice session on open data (``source="open"``), or, inside JupyterHub, the hub's
``RemoteSession``: the same methods either way (``srs.research.surface``). The classes live in
``srs.research``; their names are re-exported here for ``from srs.session import ...``.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

from srs.research.session import (
    OutputSummary,
    RequestStatus,
    ResearchSession,
    SessionError,
    session,
)

__all__ = ["OutputSummary", "RequestStatus", "ResearchSession", "SessionError", "session"]


class _SessionModule(types.ModuleType):
    """``srs.session`` is this module and also the call that starts a session, so that
    ``srs.session(...)`` works however the module was first imported."""

    def __call__(
        self,
        user: str | None = None,
        project: str | None = None,
        home: str | os.PathLike | None = None,
        **options: Any,
    ) -> Any:
        """Start working as ``user`` in ``project``: see ``srs.research.session.session``."""
        return session(user, project, home, **options)


sys.modules[__name__].__class__ = _SessionModule

"""``srs.session``: the researcher's front door, this module and also the call that starts a session.

``srs.session(user=..., project=...)`` returns the local ``ResearchSession`` in the environment,
a practice session on open data (``source="open"``), or, inside JupyterHub, the hub's
``RemoteSession``: the same methods either way (``srs.research.surface``). The classes live in
``srs.research`` and ``srs.hub.client``; their names are re-exported here for
``from srs.session import ...``. Only this front door knows all three, so the session, the
practice session and the hub's client never import one another to choose.
"""

from __future__ import annotations

import os
import sys
import types
from typing import TYPE_CHECKING, Any

from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.research.session import ResearchSession, check_source, open_session
from srs.research.surface import API_URL_ENV, OPEN, VAULT
from srs.research.values import OutputSummary, RequestStatus, SessionError

if TYPE_CHECKING:
    from srs.hub.client import RemoteSession

__all__ = ["OutputSummary", "RequestStatus", "ResearchSession", "SessionError", "session"]


def session(
    user: str | None = None,
    project: str | None = None,
    home: str | os.PathLike | None = None,
    *,
    deployment: Deployment | None = None,
    policies: PolicySet | None = None,
    source: str = VAULT,
    open_data_path: str | os.PathLike | None = None,
    practice_home: str | os.PathLike | None = None,
) -> ResearchSession | RemoteSession:
    """Start working as ``user`` in ``project``; both default to ``SRS_USER`` and ``SRS_PROJECT``.

    ``home`` is the deployment folder (default ``SRS_HOME``, else ``./srs-home``); policies come
    from ``SRS_POLICY_DIR`` or the shipped folder. The person must be allowed to work in the
    project now (accredited, trained, a member of a running project): ``AccessDenied`` says
    why not, and the refusal is audited.

    Inside JupyterHub (``SRS_API_URL`` set by the spawner, and no ``home`` or ``deployment``
    given) the kernel holds no key, so this returns a ``srs.hub.client.RemoteSession``: the same
    methods, run by the environment API for the person and project of ``SRS_SESSION_TOKEN``
    (``user`` and ``project``, if given, must be those).

    ``source`` says where ``dataset("linked/...")`` reads from, so the same notebook runs on
    each: ``"vault"`` (the project's granted data); ``"synthetic"`` (the deployment's stored
    replica ``synthetic/...`` of each linked dataset, in the same project; every output's
    context says it was computed on synthetic data); ``"open"`` (a practice session on the open
    export at ``open_data_path``, in a throwaway deployment: see ``srs.research.practice``).

    >>> import srs
    >>> s = srs.session(user="ana", project="P001", home="/srv/srs")  # doctest: +SKIP
    >>> s.datasets()                                                  # doctest: +SKIP
    ['linked/journeys', 'linked/persons']
    >>> s = srs.session(source="open", open_data_path="open-data/cross_justice")  # doctest: +SKIP
    """
    check_source(source, user, project, home, deployment, open_data_path, practice_home)
    if source == OPEN:
        from srs.research.practice import practice_session

        return practice_session(open_data_path, practice_home=practice_home, policies=policies)
    if home is None and deployment is None and os.environ.get(API_URL_ENV, "").strip():
        from srs.hub.client import RemoteSession

        return RemoteSession.from_environment(user=user, project=project, policies=policies)
    return open_session(
        user, project, home, deployment=deployment, policies=policies, source=source
    )


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
        """Start working as ``user`` in ``project``: see ``srs.session.session``."""
        return session(user, project, home, **options)


sys.modules[__name__].__class__ = _SessionModule

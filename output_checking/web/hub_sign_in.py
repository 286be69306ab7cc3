"""Hub mode: the UI run by JupyterHub as its ``output-checking`` service, where people sign in at
the hub and arrive through its OAuth, and the registry account of the same name must still pass
``admit_checker``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from sqlalchemy.orm import Session

from output_checking.checker_sessions import resume_session
from output_checking.web.base import SESSION_COOKIE, CheckerHandler
from output_checking.web.sign_in import SERVICE, admit_checker
from srs.governance.audit import record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.sign_in import SignInRefused


def sign_in_through_hub(db: Session, *, hub_user: Mapping[str, Any], policies: PolicySet) -> str:
    """Admit the person JupyterHub's OAuth names (its user model) as the sign-in form would.

    The hub proved who they are; the registry account of the same name must still pass
    ``admit_checker``, and a hub service (not a person) never does. The sign-in is audited like
    the form's, a ``sign_in`` to ``checker-ui`` (allow or deny) with ``through: jupyterhub``.
    Returns the username, or raises ``SignInRefused`` whose message says why.

    >>> hub_user = {"kind": "user", "name": "cho"}  # what JupyterHub's API says of a token
    >>> sign_in_through_hub(db, hub_user=hub_user, policies=policies)  # doctest: +SKIP
    'cho'
    """
    name = str(hub_user.get("name") or "")
    kind = str(hub_user.get("kind") or "user")
    through = {"through": "jupyterhub"}
    try:
        if kind != "user":
            raise SignInRefused(
                f"JupyterHub's {kind} {name!r} is not a person; the output checkers' UI is for "
                "checkers' registry accounts"
            )
        admit_checker(db, username=name, policies=policies)
    except SignInRefused as exc:
        record_event(
            db,
            actor=name[:64] or "(blank)",
            action="sign_in",
            target=SERVICE,
            outcome="deny",
            reason=str(exc),
            details=through,
        )
        db.commit()
        raise
    record_event(
        db,
        actor=name,
        action="sign_in",
        target=SERVICE,
        outcome="allow",
        reason="signed in at JupyterHub (OAuth)",
        details=through,
    )
    db.commit()
    return name


class HubSignIn(HubOAuthenticated):
    """Who is signed in when the UI is a JupyterHub service: the person the hub's OAuth names.

    Mixed in ahead of a page's handler class (``through_hub``), so JupyterHub's own
    ``HubOAuthenticated`` sends anyone unknown to the hub's OAuth (and so its login page), keeps
    the hub's token in a cookie under the service prefix and applies the hub's XSRF tokens. The
    hub says who the person is; ``sign_in_through_hub`` decides, once per UI session, whether
    they may come in (and audits it), and starts the UI's own server-side session. Once that
    session has ended (signed out, idle, too old) the person is admitted (and audited) afresh
    with a new session while the hub still vouches for them; ending the hub's sign-in is the
    hub's business.
    """

    @property
    def hub_auth(self) -> HubOAuth:
        return self.settings["srs"].hub_auth

    def get_current_user(self) -> str | None:
        """The registry username of the hub's user, admitted to this UI; None if the hub knows
        no one here (a page then redirects to the hub). ``SignInRefused`` (a 403 page) if the
        registry refuses them."""
        hub_user = super().get_current_user()
        if not hub_user:
            return None
        name = hub_user["name"]
        session_id = self.get_cookie(SESSION_COOKIE)
        if (
            hub_user.get("kind", "user") == "user"
            and session_id
            and resume_session(self.db, session_id, policies=self.srs.policies) == name
        ):
            return name
        try:
            sign_in_through_hub(self.db, hub_user=hub_user, policies=self.srs.policies)
        except SignInRefused:
            # The refusal page renders with no one signed in, and admission is not retried.
            self._current_user = None
            raise
        self.begin_session(name)
        return name


@functools.cache
def through_hub(handler: type[CheckerHandler]) -> type[CheckerHandler]:
    """``handler`` with ``HubSignIn`` ahead of it, so the page signs people in through the hub
    (its methods, templates and refusals are the page's own)."""
    return type(handler.__name__, (HubSignIn, handler), {"__doc__": handler.__doc__})


class HubSignInPage(CheckerHandler):
    """``sign-in`` in hub mode: there is no form to fill, people sign in at the hub. A visit goes
    to the queue (by the hub's OAuth if need be); a posted password is never looked at."""

    def get(self) -> None:
        self.redirect(self.srs.url("queue"))


class HubOAuthCallback(HubSignIn, HubOAuthCallbackHandler, CheckerHandler):
    """``oauth_callback``: where the hub sends a person back with an OAuth code. JupyterHub's
    handler swaps it for a token, keeps the token in a cookie and goes on to the page first
    asked for, where ``HubSignIn`` admits the person."""

"""Signing in with the UI's own form and signing out: the registry checks the password, and the
checkers' door is still only for accounts that may review outputs (``admit_checker``).
"""

from __future__ import annotations

import tornado.web
from sqlalchemy.orm import Session

from output_checking.checker_sessions import end_session
from output_checking.web.base import SESSION_COOKIE, CheckerHandler
from output_checking.web.configuration import url_join
from srs.governance.access import AccessDenied, authorise
from srs.governance.audit import record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.sign_in import SignInRefused, check_sign_in

# The audit target of sign-ins here, so `srs audit` tells this door from the hub's.
SERVICE = "checker-ui"


def admit_checker(db: Session, *, username: str, policies: PolicySet) -> None:
    """Refuse (``SignInRefused``) anyone whose registry account may not review outputs: the UI
    is the checkers' door whichever way they signed in. ``srs.governance.access`` decides (the checker
    role's ``output.review``; a locked or unknown account never passes) and audits it."""
    try:
        authorise(db, username=username, action="output.review", policies=policies)
    except AccessDenied as exc:
        raise SignInRefused(
            f"{username} may not use the output checkers' UI: it is for accounts with the "
            f"checker role ({exc})"
        ) from None


class SignInHandler(CheckerHandler):
    """The sign-in form: a registry account whose role may review outputs."""

    def get(self) -> None:
        if self.current_user:
            self.redirect(self.local_next(self.srs.url("queue")))
            return
        self.render_page("sign_in.html", next=self.get_argument("next", ""), username="")

    def post(self) -> None:
        username = self.get_body_argument("username", "").strip()
        password = self.get_body_argument("password", "")
        try:
            person = check_sign_in(
                self.db,
                username=username,
                password=password,
                policies=self.srs.policies,
                service=SERVICE,
            )
            # The password was right; the checkers' door is still only for checkers.
            admit_checker(self.db, username=person.username, policies=self.srs.policies)
            self.db.commit()
        except SignInRefused as exc:
            self._refused(username, str(exc))
            return
        self.begin_session(person.username)
        self.redirect(self.local_next(self.srs.url("queue")), status=303)

    def _refused(self, username: str, message: str) -> None:
        self.render_page(
            "sign_in.html",
            status=403,
            next=self.get_argument("next", ""),
            username=username,
            flash={"kind": "error", "text": message},
        )


class SignOutHandler(CheckerHandler):
    """Sign out (audited): the session ends on the server, so its cookie opens nothing again,
    and the cookie is cleared. In hub mode the hub's token cookie goes too and the browser is
    sent on to sign out of the hub, which signed them in."""

    @tornado.web.authenticated
    def post(self) -> None:
        record_event(self.db, actor=self.checker, action="sign_out", target=SERVICE, outcome="ok")
        self.db.commit()
        end_session(self.db, self.get_cookie(SESSION_COOKIE))
        self.clear_cookie(SESSION_COOKIE, path=self.srs.url(""))
        hub_auth = self.srs.hub_auth
        if hub_auth is None:
            self.flash("ok", "You are signed out.")
            self.redirect(self.srs.url("sign-in"), status=303)
            return
        hub_auth.clear_cookie(self)
        self.redirect(hub_auth.hub_host + url_join(hub_auth.hub_prefix, "logout"), status=303)

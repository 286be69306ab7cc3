"""What every page of the checker UI shares: the registry session, who is signed in (the
server-side session behind the session cookie), flash messages, XSRF-carrying forms, the
security headers, rendering, error pages, and the checker's view of one request that every page
about a request starts from (refused, audited, to anyone but its checkers).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import tornado.web
from markupsafe import Markup
from sqlalchemy.orm import Session

from output_checking.checker_sessions import resume_session, start_session
from output_checking.web.configuration import CheckerUI
from output_checking.workflow import RequestView, WorkflowError, request_target, request_view
from srs.errors import SRSError
from srs.governance.access import AccessDenied
from srs.governance.audit import record_event
from srs.governance.registry.sign_in import SignInRefused

# Holds only the random id of a server-side session (the name is older than the sessions).
SESSION_COOKIE = "srs-checker-user"
FLASH_COOKIE = "srs-checker-flash"
# Status codes for refusals the workflow explains; anything else is a plain 400.
STATUS_FOR = {AccessDenied: 403, SignInRefused: 403, WorkflowError: 409}

log = logging.getLogger(__name__)


class CheckerHandler(tornado.web.RequestHandler):
    """Base of every page: the database session, who is signed in, rendering and errors.

    Authentication lives in ``get_current_user`` alone (in hub mode ``HubSignIn``'s, mixed in
    ahead of every page). What a user may do is decided by ``srs.governance.access`` inside the workflow,
    never here.
    """

    _session: Session | None = None

    @property
    def srs(self) -> CheckerUI:
        return self.settings["srs"]

    @property
    def db(self) -> Session:
        """A registry session for this request, closed when the response is finished."""
        if self._session is None:
            self._session = self.srs.registry.sessions()
        return self._session

    def on_finish(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def set_default_headers(self) -> None:
        # No scripts at all, nothing from elsewhere, no framing, nothing cached: these pages
        # show unreleased outputs.
        self.set_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'",
        )
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")

    def get_current_user(self) -> str | None:
        """The username of this browser's session if it still stands (``resume_session``: not
        signed out, idle or too old), else None and the cookie is cleared. The one place to
        change how people are identified."""
        session_id = self.get_cookie(SESSION_COOKIE)
        if not session_id:
            return None
        username = resume_session(self.db, session_id, policies=self.srs.policies)
        if username is None:
            self.clear_cookie(SESSION_COOKIE, path=self.srs.url(""))
        return username

    def begin_session(self, username: str) -> None:
        """Start a new session for ``username``, just admitted, ending any this browser held (a
        new id at every sign-in: an id planted before sign-in is never the one signed in)."""
        session_id = start_session(
            self.db,
            username=username,
            policies=self.srs.policies,
            replacing=self.get_cookie(SESSION_COOKIE),
        )
        self.set_cookie(
            SESSION_COOKIE,
            session_id,
            expires_days=None,  # gone with the browser; the server ends it sooner
            path=self.srs.url(""),
            httponly=True,
            samesite="Strict",
            secure=self.request.protocol == "https",
        )

    @property
    def checker(self) -> str:
        """The signed-in user (pages that need one are ``@tornado.web.authenticated``)."""
        if not self.current_user:
            raise tornado.web.HTTPError(403)
        return self.current_user

    # -------------------------------------------------------------- flash messages
    def flash(self, kind: str, text: str) -> None:
        """A message for the next page this browser loads (after a redirect)."""
        self.set_signed_cookie(
            FLASH_COOKIE,
            json.dumps({"kind": kind, "text": text[:1500]}),
            expires_days=None,
            path=self.srs.url(""),
            httponly=True,
            samesite="Strict",
        )

    def pop_flash(self) -> dict[str, str] | None:
        value = self.get_signed_cookie(FLASH_COOKIE, max_age_days=1 / 24)
        if self.get_cookie(FLASH_COOKIE) is not None:
            self.clear_cookie(FLASH_COOKIE, path=self.srs.url(""))
        return json.loads(value) if value else None

    def attempt(self, action: Callable[[], Any], success: str, back: str) -> None:
        """Run a workflow step; redirect to ``back`` with its outcome (or its refusal) shown."""
        try:
            result = action()
        except SRSError as exc:
            self.db.rollback()
            self.flash("error", str(exc))
        else:
            self.flash("ok", success.format(result=result))
        self.redirect(back, status=303)

    # -------------------------------------------------------------- rendering
    def render_page(self, template: str, status: int = 200, **context: Any) -> None:
        self.set_status(status)
        page = self.srs.templates.get_template(template)
        self.finish(
            page.render(
                url=self.srs.url,
                static_url=self.static_url,
                xsrf_form_html=Markup(self.xsrf_form_html()),
                user=self.current_user,
                flash=context.pop("flash", None) or self.pop_flash(),
                **context,
            )
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, SRSError):
            status_code = next((s for t, s in STATUS_FOR.items() if isinstance(exc, t)), 400)
            message = str(exc)
        elif isinstance(exc, tornado.web.HTTPError) and exc.log_message and status_code < 500:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        else:
            message = self._reason
        self.render_page("error.html", status=status_code, message=message, flash=None)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, SRSError):
            # A refusal the user is shown and the audit log holds; no traceback is needed.
            log.info("%s %s refused: %s", self.request.method, self.request.uri, value)
            return
        super().log_exception(typ, value, tb)

    def local_next(self, default: str) -> str:
        """The ``next`` argument if it is a page of this UI (never another site)."""
        target = self.get_argument("next", "")
        # "//host" and "/\\host" are other sites to a browser.
        if target.startswith(self.srs.url("")) and target[1:2] not in ("/", "\\"):
            return target
        return default


class NotFoundHandler(CheckerHandler):
    """Any other path under the UI: a 404 page in the UI's own layout."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, "there is no page %s here", self.request.path)


class ReviewHandler(CheckerHandler):
    """Base of the pages about one request: the checker's view of it, refused to anyone else."""

    def checker_view(self, request_id: int) -> RequestView:
        view = request_view(
            self.db, request_id=request_id, viewer=self.checker, policies=self.srs.policies
        )
        if not view.is_checker:
            # Its author (or a researcher who is also a checker): this door is the checkers'.
            self.db.rollback()
            reason = f"{self.checker} may not review request #{request_id} here: it is their own"
            record_event(
                self.db,
                actor=self.checker,
                action="access.output.review",
                target=request_target(request_id),
                outcome="deny",
                reason=reason,
            )
            self.db.commit()
            raise AccessDenied(reason)
        return view

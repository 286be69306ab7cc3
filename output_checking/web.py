"""The output checkers' web UI: sign-in, the review queue, each request with its evidence, votes,
comments, and the release history, as a Tornado application.

Pages are rendered on the server from Jinja2 templates with autoescaping on (output names,
context and comments are researchers' text), every POST carries Tornado's XSRF token, and every
action goes through ``output_checking.workflow`` and ``output_checking.release``, so the UI can
do nothing the CLI could not and every refusal is audited the same way. Who is signed in is
decided in one place, ``get_current_user``: on its own the UI signs checkers in with a form
against the registry (``SignInHandler``); run by JupyterHub as its ``output-checking`` service
(hub mode, under ``/services/output-checking/``) people sign in at the hub and arrive through its
OAuth (``HubSignIn``), and the registry account of the same name must still hold the checker
role. Either way the sign-in is audited and starts a server-side session
(``output_checking.checker_sessions``) whose random id is all the cookie carries; it ends at
sign-out, when idle or too old, and an ended session's cookie opens nothing.

Start it with ``serve(deployment, policies)`` (``srs checker serve``, ``--hub`` as a hub
service), or in a background thread with ``BackgroundServer`` (tests, the demo).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import tornado.httpserver
import tornado.netutil
import tornado.web
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from output_checking.checker_sessions import end_session, resume_session, start_session
from output_checking.hidden_cells import PRIMARY, hidden_cells
from output_checking.outputs import OutputError, content_table, get_output
from output_checking.readiness import refreshed
from output_checking.release import create_release, list_releases
from output_checking.summaries import CSVSummary, CSVSummaryError, summarise_csv
from output_checking.workflow import (
    APPROVED,
    DECISIONS,
    UNDER_REVIEW,
    OutputView,
    RequestView,
    WorkflowError,
    checker_queue,
    comment_on_request,
    request_target,
    request_view,
    vote,
)
from srs.errors import SRSError
from srs.governance.access import AccessDenied, authorise
from srs.governance.audit import record_event, use_field_bound
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry import Registry, open_registry
from srs.governance.registry.models import OutputFile, Project
from srs.governance.registry.sign_in import SignInRefused, check_sign_in, dummy_password_hash

COOKIE_SECRET_ENV = "SRS_CHECKER_COOKIE_SECRET"
COOKIE_SECRET_FILE = "checker-ui.secret"
# The audit target of sign-ins here, so `srs audit` tells this door from the hub's.
SERVICE = "checker-ui"
# Holds only the random id of a server-side session (the name is older than the sessions).
SESSION_COOKIE = "srs-checker-user"
FLASH_COOKIE = "srs-checker-flash"
TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
# A checker reads these inline; anything else is only downloaded (never rendered by the browser).
INLINE_TYPES = {".png": "image/png"}
MAX_FINDINGS_SHOWN = 50
MAX_CONTENT_CHARS = 20_000
# Status codes for refusals the workflow explains; anything else is a plain 400.
STATUS_FOR = {AccessDenied: 403, SignInRefused: 403, WorkflowError: 409}
# What JupyterHub gives a service it starts. A researcher's single-user server has all of them
# but the service name, so a UI started there is never mistaken for the hub's service.
HUB_SERVICE_ENVIRONMENT = (
    "JUPYTERHUB_SERVICE_NAME",
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_CLIENT_ID",
    "JUPYTERHUB_SERVICE_PREFIX",
)

log = logging.getLogger(__name__)


class CheckerUIError(SRSError):
    """The checker UI cannot start as configured (cookie secret exposed or unreadable)."""


# ------------------------------------------------------------------ configuration
def load_cookie_secret(deployment: Deployment) -> bytes:
    """The secret that signs the UI's cookies: ``SRS_CHECKER_COOKIE_SECRET`` if set, else the
    deployment's ``checker-ui.secret`` (mode 0600), created with 32 random bytes on first use."""
    from_env = os.environ.get(COOKIE_SECRET_ENV, "").strip()
    if from_env:
        if len(from_env) < 32:
            raise CheckerUIError(
                f"{COOKIE_SECRET_ENV} is too short to sign cookies: give at least 32 random "
                "characters (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return from_env.encode()
    path = deployment.home / COOKIE_SECRET_FILE
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise CheckerUIError(
            f"cannot create the cookie secret {path}: {exc.strerror}; create the deployment "
            f"with `srs init` or set {COOKIE_SECRET_ENV}"
        ) from None
    else:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    mode = path.stat().st_mode
    if mode & 0o077:
        raise CheckerUIError(
            f"{path} is readable by others (mode {stat.filemode(mode)}); anyone who reads it can "
            f"sign in as any checker: run `chmod 600 {path}`"
        )
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < 32:
        raise CheckerUIError(f"{path} holds no usable secret; delete it to make a new one")
    return secret.encode()


def runs_as_hub_service(environ: Mapping[str, str] | None = None) -> bool:
    """True when JupyterHub started this process as a service (``HUB_SERVICE_ENVIRONMENT`` is
    set), so the UI should sign people in through the hub."""
    environ = os.environ if environ is None else environ
    return all(environ.get(name) for name in HUB_SERVICE_ENVIRONMENT)


def hub_oauth_from_environment() -> HubOAuth:
    """The hub's OAuth client for this service, from the environment JupyterHub started it with
    (its API URL and token, the OAuth client id and the service prefix)."""
    missing = [name for name in HUB_SERVICE_ENVIRONMENT if not os.environ.get(name)]
    if missing:
        raise CheckerUIError(
            "the checker UI signs people in through JupyterHub only when the hub starts it as a "
            f"service, and {', '.join(missing)} is not set: let the hub start it (`srs hub "
            "start`), or serve it with its own sign-in form (without --hub)"
        )
    return HubOAuth(
        api_url=os.environ["JUPYTERHUB_API_URL"],
        api_token=os.environ["JUPYTERHUB_API_TOKEN"],
        oauth_client_id=os.environ["JUPYTERHUB_CLIENT_ID"],
        base_url=os.environ["JUPYTERHUB_SERVICE_PREFIX"],
    )


def _url_join(base: str, *parts: str) -> str:
    return base.rstrip("/") + "/" + "/".join(p.strip("/") for p in parts if p)


@dataclass
class CheckerUI:
    """What every handler needs: the deployment, its policies, the registry and the URL prefix,
    and in hub mode the hub's OAuth client."""

    deployment: Deployment
    policies: PolicySet
    registry: Registry
    base_url: str
    templates: Environment
    hub_auth: HubOAuth | None = None

    def url(self, *parts: str) -> str:
        """An absolute path inside the UI, e.g. ``url("requests", "3")``."""
        return _url_join(self.base_url, *parts)


# ------------------------------------------------------------------ who may come in
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


# ------------------------------------------------------------------ what a page shows
@dataclass
class Cell:
    """One rendered table cell: its text, its worst evidence status and why, and for a hidden
    cell whether it failed a rule itself (``primary``) or protects another (``secondary``)."""

    text: str
    status: str = "ok"
    reasons: list[str] = field(default_factory=list)
    suppression: str | None = None


@dataclass
class RenderedTable:
    """A table output laid out for HTML, with each cell's status from the evidence."""

    corner: str
    columns: list[str]
    rows: list[tuple[str, list[Cell]]]

    @property
    def failing(self) -> int:
        """How many cells fail a rule."""
        return sum(cell.status == "fail" for _, cells in self.rows for cell in cells)

    @property
    def flagged(self) -> int:
        """How many cells fail a rule or need a checker's look."""
        return sum(cell.status != "ok" for _, cells in self.rows for cell in cells)

    def hidden(self, suppression: str) -> int:
        """How many cells are hidden as ``primary`` or ``secondary``."""
        return sum(cell.suppression == suppression for _, cells in self.rows for cell in cells)


@dataclass
class OutputPage:
    """One output of a request as the request page shows it."""

    view: OutputView
    tables: list[tuple[str, RenderedTable]]
    records: tuple[list[str], list[list[str]]] | None
    checks: list[dict[str, Any]]
    csv_summaries: list[tuple[OutputFile, CSVSummary | None, str]]
    images: list[OutputFile]
    content_json: str
    notes: list[str]
    justification: str = ""


STATUS_RANK = {"ok": 0, "review": 1, "fail": 2}


def _label(value: Any) -> str:
    """One form for a row or column label, whether it came from pandas or from JSON evidence."""
    if isinstance(value, list | tuple):
        return str(tuple(value) if len(value) > 1 else value[0])
    return str(value)


def _shown_label(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " / ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.6g}"
    return str(value)


def cell_evidence(checks: Iterable[dict[str, Any]]) -> dict[tuple[str, str], Cell]:
    """The worst status of each cell over every check carrying per-cell evidence.

    A check carries it as ``evidence`` in ``TableCheck.to_dict()``'s layout (``rows``,
    ``columns``, a ``status`` grid and ``findings``); the differencing check's ``findings`` name
    their cell by ``row`` and ``column``. Cells are keyed by their labels, so the evidence of the
    checked table marks the same cells in the released one.
    """
    cells: dict[tuple[str, str], Cell] = {}

    def mark(row: Any, column: Any, status: str, reason: str | None) -> None:
        cell = cells.setdefault((_label(row), _label(column)), Cell(""))
        if STATUS_RANK.get(status, 0) > STATUS_RANK.get(cell.status, 0):
            cell.status = status
        if reason:
            cell.reasons.append(reason)

    for check in checks:
        evidence = check.get("evidence")
        if isinstance(evidence, dict) and isinstance(evidence.get("status"), list):
            for r, row in enumerate(evidence.get("rows", [])):
                for c, column in enumerate(evidence.get("columns", [])):
                    try:
                        mark(row, column, evidence["status"][r][c], None)
                    except (IndexError, TypeError):
                        continue
            for finding in evidence.get("findings", []):
                mark(finding.get("row"), finding.get("column"), "ok", finding.get("message"))
        if check.get("check") == "differencing":
            for finding in check.get("findings", []):
                # A comparison the check could not judge names no cell: it is listed with the
                # check, not pinned on an empty row and column.
                if finding.get("row") in (None, "") and finding.get("column") in (None, ""):
                    continue
                status = finding.get("status", "fail")
                mark(finding.get("row"), finding.get("column"), status, finding.get("message"))
    return cells


def render_table(split: dict[str, Any], checks: Iterable[dict[str, Any]]) -> RenderedTable:
    """Lay out a table output (``table_content``'s form) with each cell's evidence status; a
    hidden cell says why it is hidden (``output_checking.hidden_cells``)."""
    checks = list(checks)
    frame = content_table(split)
    evidence = cell_evidence(checks)
    hidden = hidden_cells(checks)
    rows = []
    for row_label, values in zip(frame.index, frame.itertuples(index=False), strict=True):
        cells = []
        for column_label, value in zip(frame.columns, values, strict=True):
            found = evidence.get((_label(row_label), _label(column_label)))
            blank = value is None or value != value  # NaN: a suppressed cell
            note = hidden.find(row_label, column_label) if blank else None
            status = found.status if found else "ok"
            if note and note.suppression == PRIMARY:
                status = "fail"  # it failed a rule, even a margin the cell grid does not hold
            cells.append(
                Cell(
                    note.note if note else _cell_text(None if blank else value),
                    status,
                    list(dict.fromkeys(found.reasons)) if found else [],
                    note.suppression if note else None,
                )
            )
        rows.append((_shown_label(row_label), cells))
    names = [n for n in (split.get("index_names") or []) if n]
    return RenderedTable(
        corner=" / ".join(names), columns=[_shown_label(c) for c in frame.columns], rows=rows
    )


def _is_split_table(value: Any) -> bool:
    """True for a table in ``table_content``'s form (a table output's ``table``, a model's
    ``estimates``, a histogram's ``counts``)."""
    return isinstance(value, dict) and {"data", "index", "columns"} <= value.keys()


def _records(content: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """A DP result's (or any record-style) table: its columns and rows as text."""
    columns, rows = content.get("columns"), content.get("rows")
    if not isinstance(columns, list) or not isinstance(rows, list):
        return None
    if not all(isinstance(row, dict) for row in rows):
        return None
    return [str(c) for c in columns], [[_cell_text(row.get(c)) for c in columns] for row in rows]


def output_page(view: OutputView, policies: PolicySet) -> OutputPage:
    """Everything the request page shows of one output."""
    output = view.output
    content = output.content or {}
    # The readiness check's context and controls findings as the output reads now.
    checks = refreshed(output.checks or [], output.context, output.controls)
    tables = [
        (key.replace("_", " ").capitalize(), render_table(value, checks))
        for key, value in content.items()
        if _is_split_table(value)
    ]
    summaries: list[tuple[OutputFile, CSVSummary | None, str]] = []
    for stored in output.files:
        if stored.name.lower().endswith(".csv"):
            try:
                summaries.append((stored, summarise_csv(stored.content, policies.sdc.active), ""))
            except CSVSummaryError as exc:
                summaries.append((stored, None, str(exc)))
    text = json.dumps(content, indent=2, sort_keys=True, default=str)
    if len(text) > MAX_CONTENT_CHARS:
        text = text[:MAX_CONTENT_CHARS] + f"\n... ({len(text) - MAX_CONTENT_CHARS} more characters)"
    notes = content.get("notes")
    return OutputPage(
        view=view,
        tables=tables,
        records=None if tables else _records(content),
        checks=checks,
        csv_summaries=summaries,
        images=[f for f in output.files if Path(f.name).suffix.lower() in INLINE_TYPES],
        content_json=text,
        notes=[str(n) for n in notes] if isinstance(notes, list) else [],
        justification=str(content.get("justification") or "") if output.kind == "custom" else "",
    )


def _event_details(details: str) -> str:
    try:
        decoded = json.loads(details)
    except ValueError:
        return details
    if not decoded:
        return ""
    if {"from", "to"} <= decoded.keys():
        return f"{decoded['from']} \u2192 {decoded['to']}"
    return ", ".join(f"{k}: {v}" for k, v in decoded.items() if k != "project")


# ------------------------------------------------------------------ handlers
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


class RootHandler(CheckerHandler):
    """The UI's root: the queue is where a checker starts."""

    def get(self) -> None:
        self.redirect(self.srs.url("queue"))


class NotFoundHandler(CheckerHandler):
    """Any other path under the UI: a 404 page in the UI's own layout."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, "there is no page %s here", self.request.path)


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
        self.redirect(hub_auth.hub_host + _url_join(hub_auth.hub_prefix, "logout"), status=303)


class QueueHandler(CheckerHandler):
    """Requests awaiting review that this checker may review (never their own projects')."""

    @tornado.web.authenticated
    def get(self) -> None:
        everything = self.get_argument("all", "") == "1"
        entries = checker_queue(
            self.db, checker=self.checker, policies=self.srs.policies, include_decided=everything
        )
        self.db.commit()  # the access decision is on record
        self.render_page(
            "queue.html",
            entries=entries,
            everything=everything,
            reviews_needed=self.srs.policies.release.independent_reviews,
        )


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


class RequestHandler(ReviewHandler):
    """One request: outputs with evidence, votes, comments, history and the decision forms."""

    @tornado.web.authenticated
    def get(self, request_id: str) -> None:
        view = self.checker_view(int(request_id))
        pages = [output_page(o, self.srs.policies) for o in view.outputs]
        self.db.commit()  # the access decision (and any refreshed evidence) is on record
        self.render_page(
            "request.html",
            view=view,
            request=view.request,
            pages=pages,
            history=view.history,
            voting_open=view.request.status in UNDER_REVIEW,
            can_release=view.request.status == APPROVED and view.release is None,
            decisions=DECISIONS,
            max_findings=MAX_FINDINGS_SHOWN,
            small_count=self.srs.policies.sdc.active.minimum_cell_count,
            event_details=_event_details,
            reviews_needed=view.reviews_needed,
        )


class VoteHandler(ReviewHandler):
    """A checker's decision on one output, with an optional comment and its visibility."""

    @tornado.web.authenticated
    def post(self, request_id: str, output_id: str) -> None:
        decision = self.get_body_argument("decision", "")
        back = self.srs.url("requests", request_id) + f"#output-{output_id}"

        def cast() -> Any:
            output = get_output(self.db, int(output_id))
            if output.request_id != int(request_id):
                raise OutputError(f"output #{output_id} is not in request #{request_id}")
            return vote(
                self.db,
                output_id=output.id,
                checker=self.checker,
                policies=self.srs.policies,
                decision=decision,
                comment=self.get_body_argument("comment", ""),
                comment_visibility=self.get_body_argument("visibility", "checkers"),
                override_reason=self.get_body_argument("override_reason", "").strip() or None,
            )

        label = decision.replace("_", " ")
        self.attempt(cast, f"Your decision on output #{output_id} is recorded: {label}.", back)


class CommentHandler(ReviewHandler):
    """A checker's comment on a whole request."""

    @tornado.web.authenticated
    def post(self, request_id: str) -> None:
        self.attempt(
            lambda: comment_on_request(
                self.db,
                request_id=int(request_id),
                actor=self.checker,
                policies=self.srs.policies,
                text=self.get_body_argument("text", ""),
                visibility=self.get_body_argument("visibility", "checkers"),
            ),
            "Your comment is recorded.",
            self.srs.url("requests", request_id) + "#comments",
        )


class ReleaseHandler(ReviewHandler):
    """Release an approved request as a signed bundle (``output_checking.release``)."""

    @tornado.web.authenticated
    def post(self, request_id: str) -> None:
        self.attempt(
            lambda: create_release(
                self.db,
                request_id=int(request_id),
                actor=self.checker,
                policies=self.srs.policies,
                deployment=self.srs.deployment,
            ),
            "Released as bundle {result.bundle_name} ({result.file_count} files).",
            self.srs.url("releases"),
        )


class ReleasesHandler(CheckerHandler):
    """Release history, and the approved requests waiting to be released."""

    @tornado.web.authenticated
    def get(self) -> None:
        # The queue's access check (checker role) guards this page too.
        waiting = [
            entry
            for entry in checker_queue(
                self.db, checker=self.checker, policies=self.srs.policies, include_decided=False
            )
            if entry.status == APPROVED
        ]
        releases = list_releases(self.db)
        codes = {pid: code for pid, code in self.db.execute(select(Project.id, Project.code))}
        self.db.commit()
        self.render_page("releases.html", releases=releases, waiting=waiting, codes=codes)


class FileHandler(ReviewHandler):
    """An output file, for its checkers only: PNG shown inline, anything else downloaded."""

    @tornado.web.authenticated
    def get(self, output_id: str, name: str) -> None:
        output = get_output(self.db, int(output_id))
        if output.request_id is None:
            raise OutputError(f"output #{output_id} has not been submitted for review")
        view = self.checker_view(output.request_id)
        if output.id not in {o.output.id for o in view.outputs}:
            raise OutputError(f"output #{output_id} was removed from request #{view.request.id}")
        stored = next((f for f in output.files if f.name == name), None)
        if stored is None:
            raise tornado.web.HTTPError(404, "output #%s has no file %s", output_id, name)
        download = self.get_argument("download", "") == "1"
        inline_type = INLINE_TYPES.get(Path(name).suffix.lower())
        if download or inline_type is None:
            record_event(
                self.db,
                actor=self.checker,
                action="output.download",
                target=request_target(output.request_id),
                outcome="ok",
                details={"output_id": output.id, "file": name, "sha256": stored.sha256},
            )
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
        else:
            self.set_header("Content-Type", inline_type)
        self.db.commit()
        self.finish(stored.content)


# ------------------------------------------------------------------ hub mode
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


# ------------------------------------------------------------------ the application
def _templates() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every page shows researchers' text
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment


def make_app(
    deployment: Deployment,
    policies: PolicySet,
    *,
    base_url: str | None = None,
    cookie_secret: bytes | str | None = None,
    hub: bool | None = None,
    hub_auth: HubOAuth | None = None,
) -> tornado.web.Application:
    """The checker UI as a Tornado application, every page under ``base_url`` (default ``/``).

    ``cookie_secret`` defaults to ``load_cookie_secret(deployment)``. The registry is the
    deployment's database, which must have been created (``srs init``).

    Hub mode (``hub=True``; by default whenever ``runs_as_hub_service()``): people sign in at
    JupyterHub and arrive through its OAuth, the UI's own sign-in form is off, and the UI lives
    at the service prefix the hub gave it (``/services/output-checking/``), with the OAuth
    callback at ``<prefix>oauth_callback``. ``hub_auth`` is the hub's OAuth client, made from
    the service environment unless given (tests give a stand-in).
    """
    if hub is False and hub_auth is not None:
        raise CheckerUIError("hub_auth is for hub mode; leave it out, or drop hub=False")
    if hub_auth is None and (runs_as_hub_service() if hub is None else hub):
        hub_auth = hub_oauth_from_environment()
    if hub_auth is not None:
        if base_url is not None and base_url.rstrip("/") != hub_auth.base_url.rstrip("/"):
            raise CheckerUIError(
                f"as a hub service the UI lives at the prefix the hub gave it, "
                f"{hub_auth.base_url}, not {base_url}: leave out --base-url"
            )
        base_url = hub_auth.base_url
    base_url = base_url or "/"
    if not base_url.startswith("/"):
        raise CheckerUIError(
            f"base_url must be an absolute path such as /services/x/, not {base_url!r}"
        )
    base_url = base_url.rstrip("/") + "/"
    secret = cookie_secret if cookie_secret is not None else load_cookie_secret(deployment)
    if hub_auth is None:
        dummy_password_hash()  # made now, so no sign-in (of an unknown account) pays for it
    registry = open_registry(deployment.database_url)
    use_field_bound(registry.sessions, policies.access.audit_field_max_chars)
    ui = CheckerUI(
        deployment=deployment,
        policies=policies,
        registry=registry,
        base_url=base_url,
        templates=_templates(),
        hub_auth=hub_auth,
    )
    number = r"(\d+)"
    routes: list[tuple[str, type[CheckerHandler]]] = [
        (base_url, RootHandler),
        (base_url.rstrip("/") or "/", RootHandler),
        (ui.url("sign-in"), SignInHandler if hub_auth is None else HubSignInPage),
        (ui.url("sign-out"), SignOutHandler),
        (ui.url("queue"), QueueHandler),
        (ui.url("releases"), ReleasesHandler),
        (ui.url("requests", number), RequestHandler),
        (ui.url("requests", number, "comments"), CommentHandler),
        (ui.url("requests", number, "release"), ReleaseHandler),
        (ui.url("requests", number, "outputs", number, "vote"), VoteHandler),
        (ui.url("outputs", number, "files", r"([A-Za-z0-9][A-Za-z0-9._-]*)"), FileHandler),
    ]
    not_found: type[CheckerHandler] = NotFoundHandler
    if hub_auth is not None:
        routes = [(pattern, through_hub(handler)) for pattern, handler in routes]
        routes.append((ui.url("oauth_callback"), HubOAuthCallback))
        not_found = through_hub(NotFoundHandler)
    return tornado.web.Application(
        routes,
        srs=ui,
        cookie_secret=secret,
        xsrf_cookies=True,
        # Under the prefix only; in hub mode JupyterHub's XSRF helpers set the cookie with these.
        xsrf_cookie_kwargs={"path": base_url, "httponly": True, "samesite": "Strict"},
        login_url=ui.url("sign-in") if hub_auth is None else hub_auth.login_url,
        default_handler_class=not_found,
        static_path=str(STATIC),
        static_url_prefix=ui.url("static") + "/",
        serve_traceback=False,
    )


def serve(
    deployment: Deployment,
    policies: PolicySet,
    host: str = "127.0.0.1",
    port: int = 8765,
    base_url: str | None = None,
    hub: bool | None = None,
) -> None:
    """Serve the checker UI until interrupted, printing its address first (``make_app`` says
    what ``base_url`` and ``hub`` do)."""
    app = make_app(deployment, policies, base_url=base_url, hub=hub)
    ui: CheckerUI = app.settings["srs"]
    door = "sign-in through JupyterHub" if ui.hub_auth is not None else "its own sign-in form"

    async def run() -> None:
        app.listen(port, address=host)
        print(f"Output checkers' UI: http://{host}:{port}{ui.base_url} ({door})", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        print("stopped", flush=True)


class BackgroundServer:
    """The UI served on a thread of its own, on a free port (for tests, notebooks, the demo).

    Example::

        with BackgroundServer(make_app(deployment, policies)) as server:
            print(server.url)
    """

    def __init__(self, app: tornado.web.Application, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: tornado.httpserver.HTTPServer | None = None

    @property
    def url(self) -> str:
        """The UI's address, ending in its base URL."""
        return f"http://{self.host}:{self.port}{self.app.settings['srs'].base_url}"

    def start(self) -> str:
        """Bind, start serving in the background and return the URL."""
        sockets = tornado.netutil.bind_sockets(self.port, address=self.host)
        self.port = sockets[0].getsockname()[1]
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)

            async def listen() -> None:
                self._server = tornado.httpserver.HTTPServer(self.app)
                self._server.add_sockets(sockets)

            self._loop.run_until_complete(listen())
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="checker-ui", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)
        return self.url

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._loop is None or self._thread is None:
            return
        loop, server = self._loop, self._server

        def shut() -> None:
            if server is not None:
                server.stop()
            loop.stop()

        loop.call_soon_threadsafe(shut)
        self._thread.join(timeout=30)
        self.app.settings["srs"].registry.dispose()

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

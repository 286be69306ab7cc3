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

This package builds the application (``make_app``) from one module per page or group of pages
(``sign_in``, ``hub_sign_in``, ``queue_page``, ``request_page``, ``decisions``,
``releases_page``, ``output_files``) over ``base``, what every page shares; ``output_layout``
lays an output out for the request page and ``configuration`` holds the cookie secret and hub
settings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import tornado.web
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jupyterhub.services.auth import HubOAuth

from output_checking.web.background import BackgroundServer
from output_checking.web.base import (
    FLASH_COOKIE,
    SESSION_COOKIE,
    STATUS_FOR,
    CheckerHandler,
    NotFoundHandler,
    ReviewHandler,
)
from output_checking.web.configuration import (
    COOKIE_SECRET_ENV,
    COOKIE_SECRET_FILE,
    HUB_SERVICE_ENVIRONMENT,
    CheckerUI,
    CheckerUIError,
    hub_oauth_from_environment,
    load_cookie_secret,
    runs_as_hub_service,
)
from output_checking.web.decisions import CommentHandler, VoteHandler
from output_checking.web.hub_sign_in import (
    HubOAuthCallback,
    HubSignIn,
    HubSignInPage,
    sign_in_through_hub,
    through_hub,
)
from output_checking.web.output_files import FileHandler
from output_checking.web.output_layout import (
    INLINE_TYPES,
    MAX_CONTENT_CHARS,
    Cell,
    OutputPage,
    RenderedTable,
    cell_evidence,
    output_page,
    render_table,
)
from output_checking.web.queue_page import QueueHandler, RootHandler
from output_checking.web.releases_page import ReleaseHandler, ReleasesHandler
from output_checking.web.request_page import MAX_FINDINGS_SHOWN, RequestHandler
from output_checking.web.sign_in import SERVICE, SignInHandler, SignOutHandler, admit_checker
from srs.governance.audit import use_field_bound
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry import open_registry
from srs.governance.registry.sign_in import dummy_password_hash

# Beside this package, in output_checking/ (the package data pyproject.toml names).
TEMPLATES = Path(__file__).parent.with_name("templates")
STATIC = Path(__file__).parent.with_name("static")


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


__all__ = [
    "COOKIE_SECRET_ENV",
    "COOKIE_SECRET_FILE",
    "FLASH_COOKIE",
    "HUB_SERVICE_ENVIRONMENT",
    "INLINE_TYPES",
    "MAX_CONTENT_CHARS",
    "MAX_FINDINGS_SHOWN",
    "SERVICE",
    "SESSION_COOKIE",
    "STATIC",
    "STATUS_FOR",
    "TEMPLATES",
    "BackgroundServer",
    "Cell",
    "CheckerHandler",
    "CheckerUI",
    "CheckerUIError",
    "CommentHandler",
    "FileHandler",
    "HubOAuthCallback",
    "HubSignIn",
    "HubSignInPage",
    "NotFoundHandler",
    "OutputPage",
    "QueueHandler",
    "ReleaseHandler",
    "ReleasesHandler",
    "RenderedTable",
    "RequestHandler",
    "ReviewHandler",
    "RootHandler",
    "SignInHandler",
    "SignOutHandler",
    "VoteHandler",
    "admit_checker",
    "cell_evidence",
    "hub_oauth_from_environment",
    "load_cookie_secret",
    "make_app",
    "output_page",
    "render_table",
    "runs_as_hub_service",
    "serve",
    "sign_in_through_hub",
    "through_hub",
]

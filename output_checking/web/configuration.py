"""How the checker UI is configured: the secret that signs its cookies, whether JupyterHub runs
it as a service (and its OAuth client then), and ``CheckerUI``, what every page is given.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from jinja2 import Environment
from jupyterhub.services.auth import HubOAuth

from srs.errors import SRSError
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry import Registry

COOKIE_SECRET_ENV = "SRS_CHECKER_COOKIE_SECRET"
COOKIE_SECRET_FILE = "checker-ui.secret"
# What JupyterHub gives a service it starts. A researcher's single-user server has all of them
# but the service name, so a UI started there is never mistaken for the hub's service.
HUB_SERVICE_ENVIRONMENT = (
    "JUPYTERHUB_SERVICE_NAME",
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_CLIENT_ID",
    "JUPYTERHUB_SERVICE_PREFIX",
)


class CheckerUIError(SRSError):
    """The checker UI cannot start as configured (cookie secret exposed or unreadable)."""


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


def url_join(base: str, *parts: str) -> str:
    """``base`` and ``parts`` joined with one slash between each, e.g. a hub's logout page."""
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
        return url_join(self.base_url, *parts)

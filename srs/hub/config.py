"""The hub's configuration: ``write_config`` writes ``HOME/hub/jupyterhub_config.py`` for a deployment.

The file sets up JupyterHub on loopback with the registry sign-in (``SRSAuthenticator``), one
unprivileged Unix user per researcher (``SRSSpawner``, with the airlock), and three hub-managed
services: the environment API (``srs-api``, the only way data reach a kernel, on a Unix socket
and never behind the proxy), the idle culler (its timeout from the access policy) and the output
checkers' UI (``output-checking``). It also refuses to
start the hub unless the deployment folder is private to the account running it
(``check_deployment_private``), since the researchers' servers run on the same machine.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from pprint import pformat
from typing import Any

from sqlalchemy.engine import make_url

from srs.errors import SRSError
from srs.governance.deployment import HOME_ENV, Deployment
from srs.governance.policy import PolicySet

API_SERVICE = "srs-api"
CULLER_SERVICE = "idle-culler"
CHECKER_SERVICE = "output-checking"
CONFIG_FILE = "jupyterhub_config.py"
PROXY_TOKEN_FILE = "proxy_auth_token"
DEFAULT_USER_HOME_BASE = Path("/srv/srs/home")
DEFAULT_PROJECT_ROOT = Path("/srv/srs/projects")
DEFAULT_RUNTIME_BASE = Path("/run/srs")
API_SOCKET = "srs-api.sock"
API_PREFIX = f"/services/{API_SERVICE}/"
# What `make hub-prerequisites` installs the proxy as (npm --prefix .venv/node).
PROXY_PROGRAM = Path(sys.prefix) / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
# Secrets never go into the config file: the services that need them take them from the hub's
# environment when it starts. The culler needs none of them.
SERVICE_ENVIRONMENT_FROM_HUB = {
    API_SERVICE: ("SRS_DATABASE_URL", "SRS_MASTER_KEY"),
    CHECKER_SERVICE: ("SRS_DATABASE_URL", "SRS_MASTER_KEY", "SRS_CHECKER_COOKIE_SECRET"),
}


class HubConfigError(SRSError):
    """The hub cannot be configured or started as asked; the message says what to change."""


@dataclass(frozen=True)
class HubPorts:
    """The loopback ports of one hub: five in a row from the public one.

    ``public`` is the proxy researchers connect to; ``proxy_api`` its REST API (the hub's only);
    ``hub`` the hub itself; ``api`` kept free (the environment API is a Unix socket, not a port);
    ``checker`` the output checkers' UI.
    """

    public: int

    @property
    def proxy_api(self) -> int:
        return self.public + 1

    @property
    def hub(self) -> int:
        return self.public + 2

    @property
    def api(self) -> int:
        return self.public + 3

    @property
    def checker(self) -> int:
        return self.public + 4


def hub_dir(deployment: Deployment) -> Path:
    """The hub's own state (its database, cookie secret, proxy token): ``HOME/hub``."""
    return deployment.home / "hub"


def config_path(deployment: Deployment) -> Path:
    """Where ``write_config`` writes the hub's configuration."""
    return hub_dir(deployment) / CONFIG_FILE


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def deployment_privacy_problems(deployment: Deployment) -> list[str]:
    """What would let another Unix account (a researcher's server) read the deployment's secrets.

    The home folder must give group and others no access at all (mode 0700), which also covers
    the registry database, the vault, the key file and the hub's state inside it; the vault
    (0700) and key file (0600) are checked as well, as ``srs init`` makes them, so a later
    ``chmod`` of the home alone cannot expose them. A SQLite registry outside the home must be
    private itself.
    """
    problems: list[str] = []
    home = deployment.home
    if not home.is_dir():
        return [f"{home} is not a folder; run `srs init` there first"]
    if _mode(home) & 0o077:
        problems.append(
            f"{home} is open to group or others (mode {stat.filemode(home.stat().st_mode)}); "
            f"run `chmod 700 {home}`"
        )
    if home.stat().st_uid != os.geteuid():
        problems.append(f"{home} is not owned by the account starting the hub (uid {os.geteuid()})")
    for path, private in ((deployment.vault_dir, 0o700), (deployment.key_file, 0o600)):
        if path.exists() and _mode(path) & 0o077:
            problems.append(
                f"{path} is open to group or others (mode {stat.filemode(path.stat().st_mode)}); "
                f"run `chmod {private:o} {path}`"
            )
    url = make_url(deployment.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        database = Path(url.database).resolve()
        if not database.is_relative_to(home) and database.exists() and _mode(database) & 0o077:
            problems.append(
                f"the registry database {database} is open to group or others; run "
                f"`chmod 600 {database}`"
            )
    return problems


def check_deployment_private(deployment: Deployment) -> None:
    """Raise ``HubConfigError`` listing every way the deployment is open to other accounts."""
    problems = deployment_privacy_problems(deployment)
    if problems:
        raise HubConfigError(
            "the hub will not start: researchers' servers run as other Unix accounts on this "
            "machine and must not reach the registry, vault or keys. " + "; ".join(problems)
        )


def read_proxy_token(deployment: Deployment) -> str:
    """The proxy's API token (``HOME/hub/proxy_auth_token``, 0600), made on first use."""
    path = hub_dir(deployment) / PROXY_TOKEN_FILE
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    return path.read_text(encoding="ascii").strip()


def proxy_program() -> Path:
    """The configurable-http-proxy program, or ``HubConfigError`` naming the Makefile target."""
    if not os.access(PROXY_PROGRAM, os.X_OK):
        raise HubConfigError(
            f"configurable-http-proxy is not installed at {PROXY_PROGRAM}; run "
            "`make hub-prerequisites`"
        )
    return PROXY_PROGRAM


def jupyterhub_program() -> Path:
    """The ``jupyterhub`` program of this environment (beside the running interpreter)."""
    program = Path(sys.executable).parent / "jupyterhub"
    if not os.access(program, os.X_OK):
        raise HubConfigError(f"jupyterhub is not installed beside {sys.executable}; run `make`")
    return program


def api_socket(runtime_base: Path) -> Path:
    """The environment API's Unix socket, in the servers' runtime folder."""
    return Path(runtime_base) / API_SOCKET


def api_url(runtime_base: Path) -> str:
    """The environment API as the kernels reach it (``SRS_API_URL``): its Unix socket."""
    from srs.hub.client import unix_socket_url

    return unix_socket_url(api_socket(runtime_base), API_PREFIX)


def api_service(deployment: Deployment, policies: PolicySet, runtime_base: Path) -> dict[str, Any]:
    """The environment API (``python -m srs.hub.api``) as a hub-managed service.

    It has no ``url``, so the hub's proxy publishes no route to it: it listens only on its Unix
    socket, where it knows each caller's Unix account and accepts a token only from the account
    it was issued to.
    """
    return {
        "name": API_SERVICE,
        "command": [
            sys.executable,
            "-m",
            "srs.hub.api",
            "--home",
            str(deployment.home),
            "--socket",
            str(api_socket(runtime_base)),
            "--base-url",
            API_PREFIX,
        ],
        "environment": {"SRS_POLICY_DIR": str(policies.source_dir)},
        "cwd": str(hub_dir(deployment)),
    }


def idle_timeout_seconds(policies: PolicySet) -> int:
    """The access policy's ``idle_timeout_minutes``, in seconds."""
    return policies.access.idle_timeout_minutes * 60


def idle_culler_service(timeout_seconds: int) -> dict[str, Any]:
    """jupyterhub-idle-culler as a hub-managed service, stopping servers idle ``timeout_seconds``.

    It checks twice per timeout (at least every 5 s, at most every 5 min) so a server is gone
    within 1.5 timeouts of its last activity.
    """
    every = max(5, min(300, timeout_seconds // 2))
    return {
        "name": CULLER_SERVICE,
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={timeout_seconds}",
            f"--cull-every={every}",
        ],
    }


def activity_interval_seconds(timeout_seconds: int) -> int:
    """How often a server reports activity to the hub: four times per idle timeout (5 s to 5 min),
    so the culler never stops a server that is in use."""
    return max(5, min(300, timeout_seconds // 4))


def checker_url(ports: HubPorts) -> str:
    """Where checkers find their UI: through the hub's proxy, under the service prefix."""
    return f"http://127.0.0.1:{ports.public}/services/{CHECKER_SERVICE}/"


def checker_service(deployment: Deployment, policies: PolicySet, ports: HubPorts) -> dict[str, Any]:
    """The output checkers' UI (``srs checker serve --hub``) as a hub-managed service.

    It listens on loopback (``ports.checker``) and the proxy publishes it under
    ``/services/output-checking/`` (``checker_url``). People sign in at the hub and reach it
    through the hub's OAuth: the ``srs-checker`` role (``hub_roles``) lets members of the
    registry's ``checker`` group in, ``oauth_no_confirm`` spares them a consent page, and the UI
    admits only registry accounts that hold the checker role. It runs as the hub's account,
    which may read the deployment (the registry, and the vault key to sign release bundles).
    """
    return {
        "name": CHECKER_SERVICE,
        "url": f"http://127.0.0.1:{ports.checker}",
        "command": [
            str(Path(sys.executable).parent / "srs"),
            "--home",
            str(deployment.home),
            "checker",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(ports.checker),
            "--hub",
        ],
        "environment": {
            HOME_ENV: str(deployment.home),
            "SRS_POLICY_DIR": str(policies.source_dir),
        },
        "cwd": str(hub_dir(deployment)),
        "oauth_no_confirm": True,
        "display": True,
    }


def hub_roles() -> list[dict[str, Any]]:
    """The hub's RBAC roles: the least the culler needs, and checker access to their UI."""
    return [
        {
            "name": CULLER_SERVICE,
            "description": "Find and stop idle servers (jupyterhub-idle-culler)",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": [CULLER_SERVICE],
        },
        {
            "name": "srs-checker",
            "description": "Reach the output checkers' UI",
            # Without it the hub refuses the OAuth request, before the UI sees the person.
            "scopes": [f"access:services!service={CHECKER_SERVICE}"],
            # The registry's roles become hub groups at sign-in (SRSAuthenticator.manage_groups).
            "groups": ["checker"],
        },
    ]


def _literal(value: Any) -> str:
    return pformat(value, width=96, sort_dicts=False)


def write_config(
    deployment: Deployment,
    policies: PolicySet,
    *,
    port: int = 8000,
    user_home_base: Path = DEFAULT_USER_HOME_BASE,
    project_root: Path = DEFAULT_PROJECT_ROOT,
    runtime_base: Path = DEFAULT_RUNTIME_BASE,
    egress_table: str = "srs_airlock",
    idle_timeout: int | None = None,
    with_checker: bool = True,
) -> Path:
    """Write ``HOME/hub/jupyterhub_config.py`` and return its path.

    The hub listens on ``127.0.0.1:port`` (five ports from ``port``: see ``HubPorts``); the
    researchers' Unix accounts get homes under ``user_home_base`` and their projects' shared
    folders sit under ``project_root``; ``runtime_base`` holds the kernels' sockets, the API's
    socket and the airlock's server configuration; ``egress_table`` names the nft table of the
    servers' egress rules. ``idle_timeout`` (seconds) overrides the access policy's
    ``idle_timeout_minutes`` (tests use a short one). Nothing secret is written into the file:
    the proxy's token is read from a 0600 file beside it when the hub starts.

    >>> write_config(Deployment.at("/srv/srs"), load_policies())  # doctest: +SKIP
    PosixPath('/srv/srs/hub/jupyterhub_config.py')
    """
    if not deployment.is_initialised():
        raise HubConfigError(f"{deployment.home} is not an srs deployment; run `srs init` first")
    if not 1024 <= port <= 65535 - 4:
        raise HubConfigError(f"the hub's port must be 1024-65531 (it uses five), not {port}")
    ports = HubPorts(port)
    timeout = idle_timeout if idle_timeout is not None else idle_timeout_seconds(policies)
    if timeout < 1:
        raise HubConfigError(f"the idle timeout must be at least 1 second, not {timeout}")
    folder = hub_dir(deployment)
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    read_proxy_token(deployment)
    services = [api_service(deployment, policies, runtime_base), idle_culler_service(timeout)]
    if with_checker:
        services.append(checker_service(deployment, policies, ports))
    home = str(deployment.home)
    policy_dir = str(policies.source_dir)
    text = f'''\
"""JupyterHub configuration of the srs deployment at {home}.

Written by `srs hub config` on {datetime.now(UTC).date().isoformat()}; write it again rather than edit it
(the idle timeout comes from the access policy, {policy_dir}/access.yaml).
"""

import os

from srs.governance.deployment import Deployment
from srs.hub.config import check_deployment_private, read_proxy_token

c = get_config()  # noqa: F821 (JupyterHub provides it)
deployment = Deployment.at({home!r})
# Researchers' servers run as other Unix accounts here: refuse to start if they could read the
# registry, the vault or the keys.
check_deployment_private(deployment)

# Loopback only; a TLS-terminating reverse proxy in front publishes it.
c.JupyterHub.bind_url = "http://127.0.0.1:{ports.public}/"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{ports.hub}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{ports.proxy_api}"
c.ConfigurableHTTPProxy.command = [{str(PROXY_PROGRAM)!r}]
c.ConfigurableHTTPProxy.auth_token = read_proxy_token(deployment)
c.ConfigurableHTTPProxy.pid_file = {str(folder / "proxy.pid")!r}
c.JupyterHub.db_url = {"sqlite:///" + str(folder / "jupyterhub.sqlite")!r}
c.JupyterHub.cookie_secret_file = {str(folder / "jupyterhub_cookie_secret")!r}

c.JupyterHub.authenticator_class = "srs.hub.auth.SRSAuthenticator"
c.SRSAuthenticator.home = {home!r}
c.SRSAuthenticator.policy_dir = {policy_dir!r}

c.JupyterHub.spawner_class = "srs.hub.spawner.SRSSpawner"
c.SRSSpawner.home = {home!r}
c.SRSSpawner.policy_dir = {policy_dir!r}
c.SRSSpawner.api_url = {api_url(runtime_base)!r}
c.SRSSpawner.user_home_base = {str(user_home_base)!r}
c.SRSSpawner.project_root = {str(project_root)!r}
c.SRSSpawner.runtime_base = {str(runtime_base)!r}
# The airlock: no TCP or UDP from the servers' accounts but to the hub's API (nft, fail closed).
c.SRSSpawner.network_isolation = True
c.SRSSpawner.egress_table = {egress_table!r}
c.SRSSpawner.activity_interval = {activity_interval_seconds(timeout)}

# One server per person, stopped (and its session token ended) when they sign out.
c.JupyterHub.allow_named_servers = False
c.JupyterHub.shutdown_on_logout = True
c.JupyterHub.cleanup_servers = True

c.JupyterHub.services = {_literal(services)}
for service in c.JupyterHub.services:
    for name in {_literal(SERVICE_ENVIRONMENT_FROM_HUB)}.get(service["name"], ()):
        if name in os.environ:
            service.setdefault("environment", {{}})[name] = os.environ[name]

c.JupyterHub.load_roles = {_literal(hub_roles())}
'''
    path = config_path(deployment)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)
    return path

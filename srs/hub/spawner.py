"""Starting a researcher's server (safe settings): ``SRSSpawner``, one Unix account per researcher.

Each researcher's single-user server runs as their own unprivileged system account
``srs-<username>`` (home under ``user_home_base``, mode 0700), with one supplementary group: that
of the project the session is for, whose shared folder (``project_root/<CODE>``, mode 2770) is
the only project folder it can open. The server gets a session token for that person in that
project, bound to that account's uid, and the environment API's Unix socket, and nothing else of
the deployment: no ``SRS_HOME``, no key, no database URL; the hub's own environment is not
inherited. Data reach the kernel only through the API, which checks every read. Stopping the
server ends its token.

The airlock (``srs.hub.airlock``): the server runs with a configuration the spawner writes into a
root-owned folder, which shuts every door a file's bytes could leave by through the browser and
limits kernel output; its kernels have no TCP port (``srs.hub.kernel``); the server runs in a
cgroup of its own and its kernels in a sibling one they cannot leave; and a netfilter table
(``nft``, ``egress_ruleset``) lets only the server's cgroup send, and only replies on connections
others opened to it (the proxy's) and new connections to the hub's API, so no cell can reach the
network, loopback and the hub included, or resolve a name. The server does not start if the
cgroups or the table cannot be put in place.

The part that is not about Unix accounts (choosing the project, the token, the four session
variables) is ``ProjectSessionMixin``, which fits any JupyterHub spawner (KubeSpawner too).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import Bool, Float, Integer, List, Unicode, default

from srs.hub.airlock import (
    KERNEL_NAME,
    READ_LEDGER_FD_VARIABLE,
    kernel_spec,
    lab_page_config,
    server_config,
)
from srs.hub.auth import HubDeployment, HubStanding, active_projects
from srs.hub.config import DEFAULT_PROJECT_ROOT, DEFAULT_USER_HOME_BASE, HubConfigError
from srs.hub.kernel import KERNEL_CGROUP, SERVER_CGROUP, cgroup2_mount
from srs.hub.tokens import issue_session_token, revoke_session_tokens

# What a server may be told about its session; every other SRS_ variable is dropped.
SESSION_ENVIRONMENT = ("SRS_API_URL", "SRS_SESSION_TOKEN", "SRS_USER", "SRS_PROJECT")
NO_LOGIN_SHELL = "/usr/sbin/nologin"
MAX_UNIX_NAME = 32  # useradd/groupadd's limit on Linux
UNIX_SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) less the final NUL
UNIX_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
NFT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
NFT_CGROUP_BASE = Path("/sys/fs/cgroup")
NAME_IN_CGROUP = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _refuse(status: int, message: str) -> web.HTTPError:
    # JupyterHub relays an HTTPError's message to the person starting the server.
    return web.HTTPError(status, "%s", message)


def _accept_project_option(spawner: ProjectSessionMixin, user_options: dict) -> None:
    # The only option a spawn request may carry; whether the person may work in that project is
    # decided in start(), against the registry.
    unknown = sorted(set(user_options) - {"project"})
    if unknown:
        raise _refuse(
            400, f"unknown server option(s) {', '.join(unknown)}; only 'project' is accepted"
        )


class ProjectSessionMixin(HubDeployment):
    """What any spawner needs to start a researcher's server in one project.

    Before the server starts: choose the project (``user_options["project"]`` from the spawn
    form or the JSON body of ``POST /hub/api/users/<name>/server``, else the person's only active
    project), run ``prepare_session`` (a subclass's accounts and folders), issue a session token
    (``srs.hub.tokens``, authorised and audited). The server's environment gets ``SRS_API_URL``,
    ``SRS_SESSION_TOKEN``, ``SRS_USER`` and ``SRS_PROJECT`` and loses every other ``SRS_``
    variable. After it stops: the token is ended. Put it first among the bases::

        class SRSKubeSpawner(ProjectSessionMixin, KubeSpawner): ...
    """

    api_url = Unicode(
        help="The environment API's address as a kernel reaches it (SRS_API_URL).",
    ).tag(config=True)

    session_token_hours = Float(
        12.0,
        help="Lifetime of a session's token; the server is stopped (and the token ended) sooner "
        "when idle or signed out.",
    ).tag(config=True)

    activity_interval = Integer(
        300,
        help="""Seconds between the server's activity reports to the hub
        (JUPYTERHUB_ACTIVITY_INTERVAL); keep it well under the idle culler's timeout.""",
    ).tag(config=True)

    _project: str | None = None
    _session_token: str | None = None

    @default("options_form")
    def _options_form_default(self):
        return self._project_form

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return _accept_project_option

    async def _project_form(self, spawner: ProjectSessionMixin) -> str:
        """A choice of project when the person has more than one (no form otherwise)."""
        standing = await asyncio.to_thread(self.standing)
        if len(standing.projects) < 2:
            return ""
        options = "\n".join(f'<option value="{code}">{code}</option>' for code in standing.projects)
        return (
            '<label for="project">Project to work in</label>\n'
            f'<select class="form-control" name="project" id="project">{options}</select>'
        )

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, str]:
        """``{"project": CODE}`` from the spawn form."""
        chosen = (formdata.get("project") or [""])[0].strip()
        return {"project": chosen} if chosen else {}

    def standing(self) -> HubStanding:
        """The person's standing now (``srs.hub.auth.active_projects``)."""
        with self.registry.sessions() as db:
            return active_projects(db, username=self.user.name, policies=self.policies)

    def choose_project(self) -> str:
        """The project of this session: the one asked for, else the person's only active one."""
        standing = self.standing()
        asked = str((self.user_options or {}).get("project") or "").strip()
        active = ", ".join(standing.projects) or "none"
        if standing.refusal:
            raise _refuse(403, f"{self.user.name} may not start a server: {standing.refusal}")
        if asked:
            if asked not in standing.projects:
                raise _refuse(
                    403,
                    f"{self.user.name} may not work in project {asked!r} now; active projects: "
                    f"{active}",
                )
            return asked
        if len(standing.projects) == 1:
            return standing.projects[0]
        raise _refuse(
            400,
            f"{self.user.name} works in several projects ({active}); choose one "
            '(the spawn form, or {"project": CODE} in the API request)',
        )

    async def prepare_session(self, project: str) -> None:
        """Make what the server of a session in ``project`` needs before it starts (no-op here)."""

    def session_environment(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` without any ``SRS_`` variable but the session's four, which are set."""
        for name in list(env):
            # Whatever config or the hub's environment added, no other SRS_ variable (the
            # deployment's home, key or database) goes to a researcher's server.
            if name.startswith("SRS_") and name not in SESSION_ENVIRONMENT:
                del env[name]
        env.update(
            SRS_API_URL=self.api_url,
            SRS_SESSION_TOKEN=self._session_token or "",
            SRS_USER=self.user.name,
            SRS_PROJECT=self._project or "",
            JUPYTERHUB_ACTIVITY_INTERVAL=str(self.activity_interval),
        )
        return env

    def get_env(self) -> dict[str, str]:
        """The spawner's environment with the session's variables (``session_environment``)."""
        return self.session_environment(super().get_env())

    def session_account_uid(self) -> int | None:
        """The uid the session's token is bound to (the server's Unix account); None here."""
        return None

    def _issue_token(self, project: str) -> str:
        with self.registry.sessions() as db:
            return issue_session_token(
                db,
                username=self.user.name,
                project_code=project,
                policies=self.policies,
                ttl_hours=self.session_token_hours,
                unix_uid=self.session_account_uid(),
            )

    def _end_tokens(self, project: str | None) -> int:
        with self.registry.sessions() as db:
            return revoke_session_tokens(db, username=self.user.name, project_code=project)

    async def start(self):
        """Choose the project, prepare the session, issue its token, start the server."""
        if not self.api_url:
            raise HubConfigError(
                f"{type(self).__name__}.api_url is not set; write the config with `srs hub config`"
            )
        project = await asyncio.to_thread(self.choose_project)
        await self.prepare_session(project)
        self._session_token = await asyncio.to_thread(self._issue_token, project)
        self._project = project
        self.log.info("Starting %s's server in project %s", self.user.name, project)
        try:
            return await super().start()
        except BaseException:
            await asyncio.to_thread(self._end_tokens, project)
            raise
        finally:
            # The token lives on only in the server's environment.
            self._session_token = None

    async def stop(self, now: bool = False) -> None:
        """Stop the server, then end its session token (so a leftover kernel can read nothing)."""
        await super().stop(now=now)
        ended = await asyncio.to_thread(self._end_tokens, self._project)
        self.log.info("Ended %d session token(s) of %s", ended, self.user.name)

    def get_state(self) -> dict:
        """The base spawner's state and the session's project, kept across hub restarts."""
        state = super().get_state()
        if self._project:
            state["srs_project"] = self._project
        return state

    def load_state(self, state: dict) -> None:
        """Restore what ``get_state`` saved."""
        super().load_state(state)
        self._project = state.get("srs_project") or self._project


@dataclass(frozen=True)
class UnixAccount:
    """The system account a researcher's server runs as."""

    name: str
    uid: int
    gid: int
    home: Path


async def _run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise HubConfigError(
            f"{' '.join(command)} failed ({process.returncode}): "
            f"{(err or out).decode(errors='replace').strip()}"
        )


def _private_folder(path: Path, mode: int, uid: int, gid: int) -> None:
    path.mkdir(mode=mode, exist_ok=True)
    os.chown(path, uid, gid)
    path.chmod(mode)


def _passable_folder(path: Path) -> None:
    # Accounts may pass through (to their own folder) but not list the others' names.
    if not path.exists():
        path.mkdir(mode=0o711, parents=True)
        path.chmod(0o711)


def _root_file(path: Path, text: str) -> None:
    # Written beside and renamed over, readable by the servers, writable by root alone.
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    temporary.chmod(0o644)
    os.replace(temporary, path)


def nft_cgroup(cgroup: Path, mount: Path) -> tuple[str, int]:
    """How nft names a cgroup v2 folder: its path below /sys/fs/cgroup, and its depth below the
    cgroup2 mount."""
    try:
        named = cgroup.relative_to(NFT_CGROUP_BASE)
    except ValueError:
        raise HubConfigError(
            f"the cgroup v2 hierarchy is mounted at {mount}, outside {NFT_CGROUP_BASE}, where nft "
            "looks for cgroups; mount it there"
        ) from None
    return str(named), len(cgroup.relative_to(mount).parts)


def egress_ruleset(
    table: str,
    hub_host: str,
    hub_port: int,
    parent_cgroup: tuple[str, int],
    server_cgroups: list[tuple[str, int]],
) -> str:
    """The nft script of the airlock's egress table (nft's name and level of each cgroup).

    Every packet from a socket of the researchers' cgroups (``parent_cgroup``: the servers and
    their kernels) or of the researchers' accounts (the ``researchers`` set) is refused unless
    its socket is in a server's own cgroup (``server_cgroups``), and then it passes only as a
    reply on a connection others opened (the proxy's) or as a new connection to the hub's API.
    A kernel lives in a sibling cgroup it cannot leave for its server's, so it sends nothing at
    all, and a process of the account listening on a port (after killing its server, say)
    cannot answer the proxy. Sockets are matched by cgroup as well as by account because a
    closed socket's last packets carry no account. A SYN-ACK comes from a listening socket's
    request, which nft cannot place in a cgroup; it is let through, and the first byte of data
    from a socket outside a server's cgroup is refused. Applied as one transaction, so no packet
    sees the table half-made.
    """
    if not NFT_NAME.match(table):
        raise HubConfigError(f"{table!r} cannot name an nft table (letters, digits, '_')")
    family = "ip6" if ":" in hub_host else "ip"
    parent, parent_level = parent_cgroup
    servers = "".join(
        f'add rule inet {table} from_researchers socket cgroupv2 level {level} "{name}" '
        "goto server_traffic\n"
        for name, level in server_cgroups
    )
    return f"""\
table inet {table} {{
    set researchers {{ typeof meta skuid; }}
    chain output {{ type filter hook output priority 0; policy accept; }}
    chain from_researchers {{ }}
    chain server_traffic {{ }}
}}
flush chain inet {table} output
flush chain inet {table} from_researchers
flush chain inet {table} server_traffic
add rule inet {table} output socket cgroupv2 level {parent_level} "{parent}" jump from_researchers
add rule inet {table} output meta skuid @researchers jump from_researchers
{servers}add rule inet {table} from_researchers tcp flags & (syn | ack) == syn | ack ct state established accept
add rule inet {table} from_researchers counter reject
add rule inet {table} server_traffic ct state established,related accept
add rule inet {table} server_traffic {family} daddr {hub_host} tcp dport {hub_port} ct state new accept
add rule inet {table} server_traffic counter reject
"""


class SRSSpawner(ProjectSessionMixin, LocalProcessSpawner):
    """Run each researcher's server as ``srs-<username>`` in one project, holding only a session token.

    Configure in ``jupyterhub_config.py`` (``srs hub config`` writes this)::

        c.JupyterHub.spawner_class = "srs.hub.spawner.SRSSpawner"
        c.SRSSpawner.home = "/srv/srs"
        c.SRSSpawner.api_url = "http://127.0.0.1:8003/services/srs-api/"

    The hub must run as root: it creates the accounts and switches to them.
    """

    user_home_base = Unicode(
        str(DEFAULT_USER_HOME_BASE),
        help="""Folder holding the researchers' home folders (``srs-<username>``, mode 0700).
        Made mode 0711 if missing: accounts can pass through it but not list it.""",
    ).tag(config=True)

    project_root = Unicode(
        str(DEFAULT_PROJECT_ROOT),
        help="""Folder holding one shared folder per project (``<CODE>``, group
        ``<project_group_prefix><CODE>``, mode 2770). A session can open only its project's.""",
    ).tag(config=True)

    runtime_base = Unicode(
        "/run/srs",
        help="""Folder of the servers' Jupyter runtime folders (``<account>``, mode 0700), which
        hold the kernels' connection files and Unix sockets. Kept short: a socket's path may
        not exceed 107 bytes.""",
    ).tag(config=True)

    account_prefix = Unicode(
        "srs-",
        help="Prefix of the researchers' Unix account names (``srs-ana``).",
    ).tag(config=True)

    project_group_prefix = Unicode(
        "srsp-",
        help="Prefix of the projects' Unix group names (``srsp-P001``).",
    ).tag(config=True)

    network_isolation = Bool(
        True,
        help="""Refuse the servers' accounts every TCP and UDP packet but to the hub's API and
        replies on the proxy's connections (nft table ``egress_table``). A server is not started
        when the table cannot be put in place. Switch off only where the platform isolates
        servers itself (a network policy on Kubernetes).""",
    ).tag(config=True)

    cgroup_parent = Unicode(
        "srs",
        help="""Folder below the cgroup v2 root holding one cgroup per account, with two children:
        ``server`` (the server, which the egress table lets answer the proxy and reach the hub)
        and ``kernels`` (where every kernel moves itself before running any code, and which
        sends nothing). The account may move its processes from ``server`` to ``kernels`` but
        never back.""",
    ).tag(config=True)

    egress_table = Unicode(
        "srs_airlock",
        help="Name of the nft table (family inet) holding the airlock's egress rules.",
    ).tag(config=True)

    nft_program = Unicode(
        "nft",
        help="The nft program (Debian package nftables).",
    ).tag(config=True)

    server_umask = Integer(
        0o007,
        help="umask of the server and its kernels: files are shared with the project's group, "
        "never with others.",
    ).tag(config=True)

    locale_environment = List(
        Unicode(),
        default_value=["LANG", "LC_ALL"],
        help="Variables of the hub's environment a server may see (locale only).",
    ).tag(config=True)

    _account: UnixAccount | None = None
    _project_gid: int | None = None
    _runtime_dir: Path | None = None
    _airlock: Path | None = None
    _server_cgroup: Path | None = None

    @default("env_keep")
    def _env_keep_default(self) -> list[str]:
        # Nothing of the hub's environment (which may hold SRS_MASTER_KEY or a database URL)
        # reaches a server except the locale; PATH is set in get_env.
        return list(self.locale_environment)

    @default("cmd")
    def _cmd_default(self) -> list[str]:
        return [str(Path(sys.executable).parent / "jupyterhub-singleuser")]

    @default("args")
    def _args_default(self) -> list[str]:
        # Kernels talk to their server over Unix sockets in the researcher's private runtime
        # folder, not loopback TCP ports that any account on the machine could connect to
        # (and, on IOPub, listen to). The airlock's configuration says so too.
        return ["--KernelManager.transport=ipc"]

    @default("poll_interval")
    def _poll_interval_default(self) -> int:
        # A server that died (or was killed by its own kernel) loses its proxy route this soon.
        return 5

    @default("disable_user_config")
    def _disable_user_config_default(self) -> bool:
        # A researcher's ~/.jupyter cannot change how their server is run.
        return True

    # ---------------------------------------------------------------- Unix accounts and folders
    def account_name(self) -> str:
        """The Unix account of this researcher: ``account_prefix`` + username."""
        name = f"{self.account_prefix}{self.user.name}"
        if len(name) > MAX_UNIX_NAME or not UNIX_NAME.match(name):
            raise _refuse(
                400,
                f"{self.user.name!r} cannot be a Unix account name ({name!r}: at most "
                f"{MAX_UNIX_NAME} letters, digits, '.', '_' or '-'); ask an administrator",
            )
        return name

    def project_group_name(self, project: str) -> str:
        """The Unix group of project ``project``'s shared folder."""
        name = f"{self.project_group_prefix}{project}"
        if len(name) > MAX_UNIX_NAME or not UNIX_NAME.match(name):
            raise _refuse(
                400, f"project code {project!r} cannot name a Unix group ({name!r}); shorten it"
            )
        return name

    async def ensure_account(self) -> UnixAccount:
        """The researcher's system account, created (no login shell, private home) if missing."""
        name = self.account_name()
        base = Path(self.user_home_base)
        _passable_folder(base)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            await _run(
                "useradd",
                "--system",
                "--user-group",
                "--create-home",
                "--home-dir",
                str(base / name),
                "--shell",
                NO_LOGIN_SHELL,
                "--comment",
                f"srs researcher {self.user.name}",
                name,
            )
            entry = pwd.getpwnam(name)
            self.log.info("Created Unix account %s for %s", name, self.user.name)
        if entry.pw_uid == 0 or entry.pw_gid == 0:
            raise HubConfigError(f"Unix account {name} has root's uid or gid; refusing to use it")
        home = Path(entry.pw_dir)
        _private_folder(home, 0o700, entry.pw_uid, entry.pw_gid)
        return UnixAccount(name=name, uid=entry.pw_uid, gid=entry.pw_gid, home=home)

    def ensure_runtime_folder(self, account: UnixAccount) -> Path:
        """The account's private Jupyter runtime folder (kernel sockets), made if missing."""
        base = Path(self.runtime_base)
        folder = base / account.name
        # The longest socket path a kernel makes: <folder>/kernel-<uuid>-ipc-<n>.
        longest = len(str(folder)) + len("/kernel-00000000-0000-0000-0000-000000000000-ipc-5")
        if longest > UNIX_SOCKET_PATH_MAX:
            raise HubConfigError(
                f"SRSSpawner.runtime_base {base} is too long for kernel sockets ({longest} > "
                f"{UNIX_SOCKET_PATH_MAX} bytes); choose a shorter folder"
            )
        _passable_folder(base)
        _private_folder(folder, 0o700, account.uid, account.gid)
        return folder

    def airlock_folder(self) -> Path:
        """The root-owned folder of the servers' configuration and kernel spec."""
        return Path(self.runtime_base) / "airlock"

    def write_airlock(self) -> Path:
        """Write the servers' configuration (``srs.hub.airlock.server_config``) and the kernel
        spec into ``airlock_folder`` (root's, readable by the servers); returns the folder."""
        folder = self.airlock_folder()
        _passable_folder(Path(self.runtime_base))
        folder.mkdir(mode=0o755, exist_ok=True)
        if folder.stat().st_uid != os.geteuid():
            raise HubConfigError(f"{folder} must belong to the hub's account")
        folder.chmod(0o755)
        kernels = folder / "kernels"
        lab = folder / "lab"
        config = server_config(self.policies.access.airlock, kernels_dir=kernels, lab_dir=lab)
        spec = kernel_spec(own_cgroup=self.network_isolation)
        _root_file(folder / "jupyter_server_config.json", json.dumps(config, indent=2))
        _root_file(kernels / KERNEL_NAME / "kernel.json", json.dumps(spec, indent=2))
        # JupyterLab's page config: read from the configuration folders, and this is the only
        # one a server sees (JUPYTER_CONFIG_DIR too, so never the researcher's ~/.jupyter).
        _root_file(folder / "labconfig" / "page_config.json", json.dumps(lab_page_config()))
        # jupyter_core would copy a researcher's ~/.ipython configuration into this folder at a
        # server's start unless this marker exists (unwritable for them: it then does nothing).
        _root_file(folder / "migrated", "")
        for made in (lab / "user-settings", lab / "workspaces"):
            made.mkdir(mode=0o755, parents=True, exist_ok=True)
        for made in (kernels, kernels / KERNEL_NAME, folder / "labconfig", lab, *lab.iterdir()):
            made.chmod(0o755)
        return folder

    def ensure_cgroups(self, account: UnixAccount) -> Path:
        """The account's ``server`` and ``kernels`` cgroups (made if missing); returns the first.

        ``<account>/cgroup.procs`` and ``kernels/cgroup.procs`` belong to the account, so its
        processes may move from ``server`` to ``kernels``; ``server/cgroup.procs`` is root's, so
        nothing of the account's can move (back) into the server's cgroup.
        """
        mount = cgroup2_mount()
        if mount is None:
            raise HubConfigError(
                "no cgroup v2 hierarchy is mounted (/proc/self/mountinfo): kernels cannot be "
                "told apart from their server, so no server is started"
            )
        if not NAME_IN_CGROUP.match(self.cgroup_parent):
            raise HubConfigError(f"SRSSpawner.cgroup_parent {self.cgroup_parent!r} is not a name")
        folder = mount / self.cgroup_parent / account.name
        server, kernels = folder / SERVER_CGROUP, folder / KERNEL_CGROUP
        for made in (folder.parent, folder, server, kernels):
            made.mkdir(exist_ok=True)
        os.chown(folder / "cgroup.procs", account.uid, -1)
        os.chown(kernels / "cgroup.procs", account.uid, -1)
        if (server / "cgroup.procs").stat().st_uid != os.geteuid():
            raise HubConfigError(f"{server}/cgroup.procs must belong to the hub's account")
        return server

    def server_cgroups(self) -> list[tuple[str, int]]:
        """nft's name and level of every account's server cgroup under ``cgroup_parent``."""
        mount = cgroup2_mount()
        if mount is None:
            return []
        parent = mount / self.cgroup_parent
        return [
            nft_cgroup(server, mount)
            for server in sorted(parent.glob(f"*/{SERVER_CGROUP}"))
            if server.is_dir()
        ]

    async def isolate_network(self, account: UnixAccount) -> None:
        """Put ``account`` under the airlock's egress table; ``HubConfigError`` if it cannot be."""
        if not self.network_isolation:
            self.log.warning(
                "network isolation is off: %s's kernels can reach the network", account.name
            )
            self._server_cgroup = None
            return
        self._server_cgroup = self.ensure_cgroups(account)
        program = shutil.which(self.nft_program)
        if program is None:
            raise HubConfigError(
                f"{self.nft_program} is not installed: the server of {self.user.name} cannot be "
                "isolated from the network, so it is not started (install Debian's nftables, or "
                "`make hub-prerequisites`)"
            )
        hub = urlparse(self.hub.api_url)
        if hub.hostname is None or hub.port is None:
            raise HubConfigError(f"the hub's API address {self.hub.api_url} has no host and port")
        mount = cgroup2_mount()
        script = egress_ruleset(
            self.egress_table,
            hub.hostname,
            hub.port,
            nft_cgroup(mount / self.cgroup_parent, mount),
            self.server_cgroups(),
        )
        process = await asyncio.create_subprocess_exec(
            program,
            "-f",
            "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate(script.encode())
        if process.returncode != 0:
            raise HubConfigError(f"nft could not apply the airlock's egress table: {err.decode()}")
        await _run(
            program,
            "add",
            "element",
            "inet",
            self.egress_table,
            "researchers",
            f"{{ {account.uid} }}",
        )

    async def ensure_project_folder(self, project: str) -> tuple[Path, int]:
        """The project's shared folder and its group id, created if missing (root-owned, 2770)."""
        group = self.project_group_name(project)
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            await _run("groupadd", "--system", group)
            gid = grp.getgrnam(group).gr_gid
        root = Path(self.project_root)
        _passable_folder(root)
        folder = root / project
        # setgid: files made inside belong to the project's group, so its members share them.
        _private_folder(folder, 0o2770, 0, gid)
        return folder, gid

    def _link_project_folder(self, account: UnixAccount, folder: Path) -> None:
        # ~/project points at this session's project folder. Made beside and renamed over, so
        # an existing link is replaced atomically and nothing of the researcher's is followed.
        link = account.home / "project"
        temporary = account.home / f".project.{os.getpid()}"
        try:
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(folder)
            os.lchown(temporary, account.uid, account.gid)
            os.replace(temporary, link)
        except OSError as exc:
            self.log.warning("Could not link %s to %s: %s", link, folder, exc)

    async def prepare_session(self, project: str) -> None:
        """The account, its runtime folder, the project's folder and the ``~/project`` link."""
        self._account = await self.ensure_account()
        await self.isolate_network(self._account)
        self._airlock = self.write_airlock()
        self._runtime_dir = self.ensure_runtime_folder(self._account)
        folder, self._project_gid = await self.ensure_project_folder(project)
        self._link_project_folder(self._account, folder)
        self._open_read_ledger(self._account)
        self.log.info("%s's server runs as %s", self.user.name, self._account.name)

    _read_ledger_fd: int | None = None

    def _open_read_ledger(self, account: UnixAccount) -> None:
        """Open the account's read ledger for its server (``RUNTIME_BASE/read-ledgers/<account>``,
        root's, 0600), trimmed to the last hour: the server gets the descriptor only (inherited,
        ``AIRLOCK_READ_LEDGER_FD``), so the hour's reads of the contents API survive a restart
        of the server, and no kernel can open, trim or truncate the file."""
        folder = Path(self.runtime_base) / "read-ledgers"
        folder.mkdir(mode=0o700, exist_ok=True)
        if folder.stat().st_uid != os.geteuid():
            raise HubConfigError(f"{folder} must belong to the hub's account")
        folder.chmod(0o700)
        path = folder / account.name
        kept = []
        if path.exists():
            cutoff = time.time() - 3600
            for line in path.read_text(encoding="ascii", errors="replace").splitlines():
                with contextlib.suppress(ValueError, IndexError):
                    if float(line.split()[0]) >= cutoff:
                        kept.append(line + "\n")
        _root_file(path, "".join(kept))
        path.chmod(0o600)
        self._close_read_ledger()
        self._read_ledger_fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        self.popen_kwargs = {**self.popen_kwargs, "pass_fds": (self._read_ledger_fd,)}

    def _close_read_ledger(self) -> None:
        if self._read_ledger_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._read_ledger_fd)
            self._read_ledger_fd = None

    async def start(self):
        """Start the server (``ProjectSessionMixin.start``); the hub keeps no copy of the
        ledger's descriptor once the server holds it."""
        try:
            return await super().start()
        finally:
            self._close_read_ledger()

    # ---------------------------------------------------------------- the server process
    def make_preexec_fn(self, name: str):
        """Become the researcher's account with only the session's project group, in its home."""
        account, project_gid, umask = self._account, self._project_gid, self.server_umask
        if account is None:
            raise HubConfigError("the spawner has no account to run as; start() sets it")
        procs = self._server_cgroup / "cgroup.procs" if self._server_cgroup else None

        def become_researcher() -> None:
            if procs is not None:
                # Into the server's cgroup while still root: the egress table lets only its
                # sockets answer the proxy; kernels leave it for their own before running code.
                with open(procs, "w") as handle:
                    handle.write(str(os.getpid()))
            os.setgid(account.gid)
            # Only this session's project: not every group the account may be in.
            os.setgroups([project_gid] if project_gid is not None else [])
            os.setuid(account.uid)
            os.umask(umask)
            os.chdir(account.home)

        return become_researcher

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        """HOME, USER and SHELL of the researcher's account (not of the hub's user)."""
        account = self._account
        if account is None:
            return env
        env["USER"] = env["LOGNAME"] = account.name
        env["HOME"] = str(account.home)
        env["SHELL"] = NO_LOGIN_SHELL
        return env

    def get_env(self) -> dict[str, str]:
        """The session's environment, a fixed PATH and the private runtime folder."""
        env = super().get_env()
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])
        if self._runtime_dir is not None:
            env["JUPYTER_RUNTIME_DIR"] = str(self._runtime_dir)
        if self._airlock is not None:
            # The airlock's configuration, and nothing of the researcher's: no user site
            # packages (a .pth file there would run in the server at its next start).
            env["JUPYTER_CONFIG_PATH"] = str(self._airlock)
            # The first configuration folder (Jupyter's and JupyterLab's page config) is root's
            # too: a kernel could otherwise write a dataset into ~/.jupyter/labconfig and have
            # the server put it into the page it sends the browser.
            env["JUPYTER_CONFIG_DIR"] = str(self._airlock)
        env["PYTHONNOUSERSITE"] = "1"
        if self._read_ledger_fd is not None:
            env[READ_LEDGER_FD_VARIABLE] = str(self._read_ledger_fd)
        return env

    def session_account_uid(self) -> int | None:
        """The server's Unix account: its token works from that account only."""
        return self._account.uid if self._account is not None else None

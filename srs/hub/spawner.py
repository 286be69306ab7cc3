"""Starting a researcher's server (safe settings): ``SRSSpawner``, one Unix account per researcher.

Each researcher's single-user server runs as their own unprivileged system account
``srs-<username>`` (home under ``user_home_base``, mode 0700), with one supplementary group: that
of the project the session is for, whose shared folder (``project_root/<CODE>``, mode 2770) is
the only project folder it can open. The server gets a session token for that person in that
project and the environment API's loopback address, and nothing else of the deployment: no
``SRS_HOME``, no key, no database URL; the hub's own environment is not inherited. Data reach the
kernel only through the API, which checks every read. Stopping the server ends its token.

The part that is not about Unix accounts (choosing the project, the token, the four session
variables) is ``ProjectSessionMixin``, which fits any JupyterHub spawner (KubeSpawner too).
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import Float, Integer, List, Unicode, default

from srs.hub.auth import HubDeployment, HubStanding, active_projects
from srs.hub.config import DEFAULT_PROJECT_ROOT, DEFAULT_USER_HOME_BASE, HubConfigError
from srs.hub.tokens import issue_session_token, revoke_session_tokens

# What a server may be told about its session; every other SRS_ variable is dropped.
SESSION_ENVIRONMENT = ("SRS_API_URL", "SRS_SESSION_TOKEN", "SRS_USER", "SRS_PROJECT")
NO_LOGIN_SHELL = "/usr/sbin/nologin"
MAX_UNIX_NAME = 32  # useradd/groupadd's limit on Linux
UNIX_SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) less the final NUL
UNIX_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


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

    def _issue_token(self, project: str) -> str:
        with self.registry.sessions() as db:
            return issue_session_token(
                db,
                username=self.user.name,
                project_code=project,
                policies=self.policies,
                ttl_hours=self.session_token_hours,
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
        # (and, on IOPub, listen to).
        return ["--KernelManager.transport=ipc"]

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
        self._runtime_dir = self.ensure_runtime_folder(self._account)
        folder, self._project_gid = await self.ensure_project_folder(project)
        self._link_project_folder(self._account, folder)
        self.log.info("%s's server runs as %s", self.user.name, self._account.name)

    # ---------------------------------------------------------------- the server process
    def make_preexec_fn(self, name: str):
        """Become the researcher's account with only the session's project group, in its home."""
        account, project_gid, umask = self._account, self._project_gid, self.server_umask
        if account is None:
            raise HubConfigError("the spawner has no account to run as; start() sets it")

        def become_researcher() -> None:
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
        return env

"""The airlock of a researcher's Jupyter server: nothing leaves it for the browser but notebooks and
code of a bounded size, and kernel output at a bounded rate.

This module runs inside the single-user server (as the researcher's Unix account), loaded by the
configuration ``SRSSpawner`` writes (``server_config``). It refuses by server configuration, not
by hiding buttons:

- ``AirlockContentsManager``: the contents API serves a file's content only for the policy's
  editable suffixes (``.ipynb``, ``.py``, ...) and only up to ``max_readable_file_bytes``;
  saving and uploading likewise (``max_upload_file_bytes``). Listings and metadata still work,
  within the read budget below.
- ``airlock`` (a server extension) answers 403 on every other door to a file's bytes: ``/files/``,
  ``/view/``, nbconvert (``/nbconvert/``, ``/api/nbconvert``) and terminals; it refuses to let the
  server run without the airlock's contents manager, kernel specs and websocket limits, and marks
  the server's process undumpable so a kernel (the same account) cannot read or patch its memory.
- ``AirlockWebsocketConnection``: kernel messages to the browser (every channel, every type,
  status too) over a sliding window of ``output_window_seconds`` kept for the whole server (all
  its kernels and websockets together, so reconnecting or starting more kernels renews nothing):
  at most ``output_bytes_per_second`` and ``output_messages_per_second`` on average, and no
  single message over ``max_output_message_bytes``; what is over is withheld, and the cell is
  told so. A status over the rate is rebuilt from the browser's own request (its state only);
  a message whose header does not unpack never goes.
- ``AirlockKernelManager``: ``/api/kernels`` and ``/api/sessions`` show Jupyter's own execution
  states only, not whatever a kernel's status message said.
- ``AirlockKernelSpecManager``: one kernel, ``python3``, started by ``srs.hub.kernel`` (every
  channel on IPC sockets); specs in the researcher's own folders are never read.
- Everything the contents API serves (editable files' content, listings, metadata, checkpoint
  lists) reaches the browser at most ``read_bytes_per_hour`` over a sliding hour, counted as
  served (not as ``stat`` tells): a kernel may write anything into a notebook, or as file names,
  so reading back is bounded like kernel output. The reads are also written to the account's
  read ledger, a root-owned file the spawner opens and hands the server as a file descriptor
  (``AIRLOCK_READ_LEDGER_FD``), so that a restart of the server renews nothing.
- JupyterLab, the researchers' interface: its download and export plugins are disabled
  (``labconfig/page_config.json``), and everything it reads besides notebooks (page config, user
  settings, workspaces, extensions) comes from root's folders, never from the researcher's home,
  where a kernel could have written a dataset for the browser to fetch.

What a person reads off the screen still leaves; the rates above bound it. For the highest
classification, a remote-desktop tier (no browser download at all) is the answer.
"""

from __future__ import annotations

import contextvars
import ctypes
import hashlib
import json
import os
import sys
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.utils import url_path_join
from tornado import web
from traitlets import Float, Integer, List, Unicode, default

KERNEL_NAME = "python3"
# The environment variable that tells a server the file descriptor of its account's read ledger
# (opened by SRSSpawner on a root-owned file; see AirlockContentsManager).
READ_LEDGER_FD_VARIABLE = "AIRLOCK_READ_LEDGER_FD"
PR_SET_DUMPABLE = 4
# The execution states Jupyter itself uses; a kernel's status message may say anything.
EXECUTION_STATES = frozenset(
    {"starting", "idle", "busy", "restarting", "autorestarting", "dead", "unknown", "terminating"}
)
# The browser's requests remembered per connection (for a status over the rate; see
# AirlockWebsocketConnection._airlock_status), and the header fields kept of each.
MAX_TRACKED_REQUESTS = 256
_REQUEST_HEADER_FIELDS = ("msg_id", "msg_type", "username", "session", "date", "version")
# Doors to a file's bytes other than the contents API, answered 403 (the server's own routes
# for them come after an extension's, so these are matched first).
REFUSED_ROUTES = (
    r"/files/.*",
    r"/view/.*",
    r"/nbconvert/.*",
    r"/api/nbconvert.*",
    r"/terminals.*",
    r"/api/terminals.*",
)
# JupyterLab plugins that only lead to a refused door, disabled so that nobody is offered them:
# downloads, exports, opening a file's raw bytes in a browser tab, terminals, extension installs.
DISABLED_LAB_PLUGINS = (
    "@jupyterlab/docmanager-extension:download",
    "@jupyterlab/filebrowser-extension:download",
    "@jupyterlab/filebrowser-extension:open-browser-tab",
    "@jupyterlab/notebook-extension:export",
    "@jupyterlab/terminal-extension",
    "@jupyterlab/extensionmanager-extension",
    "@jupyterlab/apputils-extension:announcements",
)
REFUSAL = (
    "this environment does not let files leave through the browser: take results out through "
    "output checking (s.custom_output, s.submit)"
)


def _suffix(path: str) -> str:
    return Path(path).suffix.lower()


# Set while the contents manager builds an answer: the models a listing asks for are counted
# once, as part of the listing, not each again.
_WITHIN_LISTING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "airlock_within_listing", default=False
)


def _content_bytes(model: dict[str, Any]) -> int:
    """The size of a file model's content as the file holds it (base64 decoded)."""
    content = model.get("content")
    if model.get("type") == "notebook":
        return len(json.dumps(content, ensure_ascii=False).encode("utf-8"))
    if model.get("format") == "base64":
        return len(content) * 3 // 4
    return len(str(content).encode("utf-8"))


class AirlockContentsManager(AsyncLargeFileManager):
    """The contents API of a researcher's server: notebooks and code only, of a bounded size."""

    editable_suffixes = List(
        Unicode(),
        default_value=[".ipynb", ".py"],
        help="File suffixes the browser may open, save and upload (policy "
        "access.airlock.editable_suffixes); any other file's content is never served.",
    ).tag(config=True)

    max_readable_file_bytes = Integer(
        2_000_000,
        help="Largest file whose content the browser may read (access.airlock).",
    ).tag(config=True)

    max_upload_file_bytes = Integer(
        2_000_000,
        help="Largest file the browser may save or upload (access.airlock).",
    ).tag(config=True)

    read_bytes_per_hour = Integer(
        60_000_000,
        help="Content of editable files served to the browser over a sliding hour, all files "
        "together (access.airlock.read_bytes_per_hour).",
    ).tag(config=True)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # (when, bytes) of each file content served within the last hour.
        self._airlock_reads: deque[tuple[float, int]] = deque()
        self._ledger_fd = self._open_ledger()

    def _open_ledger(self) -> int | None:
        """The account's read ledger, if the spawner passed one: a root-owned file the server
        holds open (appending), which no kernel can open, so that the hour's reads survive a
        restart of the server. The reads of the last hour in it count from the start."""
        number = os.environ.pop(READ_LEDGER_FD_VARIABLE, None)
        if not number:
            return None
        descriptor = int(number)
        os.set_inheritable(descriptor, False)  # never a kernel's
        size = os.fstat(descriptor).st_size
        text = os.pread(descriptor, size, 0).decode("ascii", "replace") if size else ""
        wall, now = time.time(), time.monotonic()
        for line in text.splitlines():
            try:
                when, bytes_read = line.split()
                age = wall - float(when)
                if 0 <= age < 3600:
                    self._airlock_reads.append((now - age, int(bytes_read)))
            except ValueError:
                continue
        return descriptor

    @default("files_handler_class")
    def _files_handler_default(self) -> type:
        return RefusedHandler

    def _admit_read(self, path: str, size: int) -> None:
        """Count ``size`` bytes against the hour's read budget, or refuse (429) if over it."""
        now = time.monotonic()
        served = self._airlock_reads
        while served and served[0][0] <= now - 3600:
            served.popleft()
        used = sum(bytes_read for _, bytes_read in served)
        if used + size > self.read_bytes_per_hour:
            wait = int(served[0][0] + 3600 - now) + 1 if served else 3600
            raise web.HTTPError(
                429,
                f"{path} ({size:,} bytes) would take the files read back in the last hour past "
                f"the environment's {self.read_bytes_per_hour:,} bytes; try again in about "
                f"{max(wait // 60, 1)} minute(s). Results leave through output checking "
                "(s.custom_output, s.submit)",
            )
        served.append((now, size))
        if self._ledger_fd is not None:
            os.write(self._ledger_fd, f"{time.time():.3f} {size}\n".encode("ascii"))

    def _editable(self, path: str) -> bool:
        return _suffix(path) in {suffix.lower() for suffix in self.editable_suffixes}

    async def get(self, path, content=True, type=None, format=None, require_hash=False):
        """A file's model; its content only for an editable suffix within the size limit.

        Every answer to the browser counts against the hour's read budget by what it serves,
        not by what ``stat`` says: a listing's names and a file's metadata are the kernel's to
        choose, and a file whose size ``stat`` does not tell (``/proc/<pid>/cmdline`` behind a
        symlink named ``leak.py`` says 0 bytes) is measured as read. A listing's own entries
        (models the listing asks for) are counted once, in the listing."""
        counted = 0
        if content:
            os_path = self._get_os_path(path.strip("/"))
            if os.path.isfile(os_path):
                if not self._editable(path):
                    raise web.HTTPError(
                        403,
                        f"{path} is not a notebook or code file ({', '.join(self.editable_suffixes)})"
                        f"; {REFUSAL}",
                    )
                size = os.path.getsize(os_path)
                self._refuse_too_big(path, size)
                self._admit_read(path, size)
                counted = size
        outer = not _WITHIN_LISTING.get()
        marker = _WITHIN_LISTING.set(True)
        try:
            model = await super().get(
                path, content=content, type=type, format=format, require_hash=require_hash
            )
        finally:
            _WITHIN_LISTING.reset(marker)
        if outer:
            if model.get("type") in ("file", "notebook") and model.get("content") is not None:
                self._refuse_too_big(path, _content_bytes(model))
            served = len(json.dumps(model, default=str, ensure_ascii=False).encode("utf-8"))
            if served > counted:
                self._admit_read(path, served - counted)
        return model

    async def list_checkpoints(self, path):
        """A file's checkpoints, counted like a listing (their times are the kernel's to set)."""
        checkpoints = await super().list_checkpoints(path)
        self._admit_read(path, len(json.dumps(checkpoints, default=str).encode("utf-8")))
        return checkpoints

    def _refuse_too_big(self, path: str, size: int) -> None:
        if size > self.max_readable_file_bytes:
            raise web.HTTPError(
                403,
                f"{path} is {size:,} bytes, over the {self.max_readable_file_bytes:,} the "
                "browser may read; clear the notebook's outputs in the kernel "
                "(jupyter nbconvert --clear-output) or split the file",
            )

    async def save(self, model, path=""):
        """Save or upload a notebook or code file within the size limit; folders as usual."""
        kind = model.get("type")
        if kind in ("file", "notebook"):
            if not self._editable(path):
                raise web.HTTPError(
                    403,
                    f"only notebooks and code files ({', '.join(self.editable_suffixes)}) may be "
                    f"saved or uploaded here, not {path}",
                )
            size = self._incoming_size(model, path)
            if size > self.max_upload_file_bytes:
                raise web.HTTPError(
                    413,
                    f"{path} would be {size:,} bytes, over the {self.max_upload_file_bytes:,} "
                    "allowed for a notebook or code file",
                )
        return await super().save(model, path)

    def _incoming_size(self, model: dict[str, Any], path: str) -> int:
        content = model.get("content")
        if content is None:
            size = 0
        elif model.get("type") == "notebook":
            size = len(json.dumps(content).encode("utf-8"))
        elif model.get("format") == "base64":
            size = len(content) * 3 // 4
        else:
            size = len(str(content).encode("utf-8"))
        chunk = model.get("chunk")
        if chunk is not None and chunk != 1:
            # A chunked upload grows the file already written by the earlier chunks.
            os_path = self._get_os_path(path.strip("/"))
            size += os.path.getsize(os_path) if os.path.isfile(os_path) else 0
        return size

    async def rename_file(self, old_path, new_path):
        """Renaming is refused when it would make a file the browser may not read readable."""
        if not self._editable(old_path) and self._editable(new_path):
            raise web.HTTPError(
                403, f"{old_path} may not become {new_path}: only notebooks and code are editable"
            )
        return await super().rename_file(old_path, new_path)

    async def copy(self, from_path, to_path=None):
        """Copying follows the same rule as renaming (a copy of a data file stays unreadable)."""
        if not self._editable(from_path):
            raise web.HTTPError(403, f"{from_path} is not a notebook or code file; {REFUSAL}")
        return await super().copy(from_path, to_path)


class RefusedHandler(JupyterHandler):
    """403 for every method: a door to a file's bytes the airlock keeps shut."""

    def initialize(self, **_: Any) -> None:  # files_handler_params, if any, are ignored
        pass

    def prepare(self) -> None:
        raise web.HTTPError(403, REFUSAL)

    def check_xsrf_cookie(self) -> None:
        # Refused before XSRF matters: the answer is the same for everyone.
        pass


class AirlockWebsocketConnection(ZMQChannelsWebsocketConnection):
    """Kernel messages to the browser within the airlock's size and rate limits."""

    output_bytes_per_second = Float(
        20_000, help="Average bytes a second over the window (access.airlock)."
    ).tag(config=True)
    output_messages_per_second = Float(
        50, help="Average messages a second over the window (access.airlock)."
    ).tag(config=True)
    output_window_seconds = Float(10, help="The window (access.airlock).").tag(config=True)
    max_output_message_bytes = Integer(
        500_000, help="Largest single message (access.airlock)."
    ).tag(config=True)

    @default("limit_rate")
    def _limit_rate_default(self) -> bool:
        # Jupyter's own limiter counts only stream bytes and resets at every idle; ours replaces it.
        return False

    def _airlock_window(self) -> deque:
        """The output window: one for the whole server (every kernel, every connection), kept
        on its kernel manager, so that neither reconnecting nor starting more kernels renews
        or multiplies the budget."""
        owner = getattr(getattr(self, "parent", None), "parent", None) or self
        shared = getattr(owner, "_srs_output_window", None)
        if shared is None:
            shared = _OutputWindow()
            owner._srs_output_window = shared
        self._srs_shared = shared
        if not hasattr(self, "_srs_warned_at"):
            self._srs_warned_at = 0.0
        return shared.messages

    def _airlock_admits(self, size: int, digest: bytes | None = None) -> str | None:
        """None if a message of ``size`` bytes may go now; else why not. A message whose bytes
        (``digest``) went to another of the server's connections within the window is not
        counted again: a kernel's IOPub reaches each of its connections, and the same bytes
        tell the browser nothing new."""
        if size > self.max_output_message_bytes:
            return (
                f"a {size:,}-byte output was withheld: the environment sends at most "
                f"{self.max_output_message_bytes:,} bytes at once to the browser"
            )
        now = time.monotonic()
        window = self._airlock_window()
        shared = self._srs_shared
        while window and window[0][0] <= now - self.output_window_seconds:
            when, gone, gone_digest = window.popleft()
            shared.bytes -= gone
            if gone_digest is not None and shared.digests.get(gone_digest) == when:
                del shared.digests[gone_digest]
        if digest is not None and digest in shared.digests:
            return None
        byte_budget = self.output_bytes_per_second * self.output_window_seconds
        message_budget = self.output_messages_per_second * self.output_window_seconds
        if shared.bytes + size > byte_budget or len(window) + 1 > message_budget:
            return (
                "output to the browser is over the environment's rate "
                f"({self.output_bytes_per_second:,.0f} bytes and "
                f"{self.output_messages_per_second:,.0f} messages a second over "
                f"{self.output_window_seconds:g} s); some was withheld. Show less (a summary, "
                "head()), or take results out through output checking"
            )
        window.append((now, size, digest))
        shared.bytes += size
        if digest is not None:
            shared.digests[digest] = now
        return None

    def _airlock_requests(self) -> OrderedDict:
        requests = getattr(self, "_srs_requests", None)
        if requests is None:
            requests = self._srs_requests = OrderedDict()
        return requests

    def handle_incoming_message(self, incoming_msg: Any) -> None:
        """Note the header of each request the browser sends (a status message that is over
        the rate may still tell the browser its request is done; see ``_airlock_status``)."""
        try:
            if self.subprotocol == "v1.kernel.websocket.jupyter.org":
                _, msg_list = deserialize_msg_from_ws_v1(incoming_msg)
                header = self.session.unpack(msg_list[0])
            else:
                header = json.loads(incoming_msg)["header"]
            msg_id = header["msg_id"]
            if isinstance(msg_id, str):
                requests = self._airlock_requests()
                requests[msg_id] = {key: header.get(key) for key in _REQUEST_HEADER_FIELDS}
                requests.move_to_end(msg_id)
                while len(requests) > MAX_TRACKED_REQUESTS:
                    requests.popitem(last=False)
        except Exception:  # noqa: S110 (Jupyter itself decides what to do with it)
            pass
        return super().handle_incoming_message(incoming_msg)

    def _airlock_status(self, stream: Any, parts: list[bytes], header: dict) -> bool:
        """A status message over the rate, rebuilt with nothing of the kernel's but its state
        (``idle`` or ``busy``), once per state for a request this connection's browser sent:
        the notebook still learns its cell finished, and no kernel-chosen byte rides along.
        True if one was sent."""
        try:
            state = self.session.unpack(parts[3]).get("execution_state")
            parent_id = self.session.unpack(parts[1]).get("msg_id")
        except Exception:
            return False
        request = self._airlock_requests().get(parent_id) if isinstance(parent_id, str) else None
        if state not in ("idle", "busy") or request is None:
            return False
        told = request.setdefault("_srs_told", set())
        if state in told:
            return False
        told.add(state)
        parent = {key: value for key, value in request.items() if key != "_srs_told"}
        rebuilt = self.session.msg("status", content={"execution_state": state}, parent=parent)
        rebuilt["header"]["session"] = self._srs_kernel_session or rebuilt["header"]["session"]
        return super().handle_outgoing_message(stream, self.session.serialize(rebuilt)) or True

    _srs_kernel_session: str | None = None

    def handle_outgoing_message(self, stream: str, outgoing_msg: list[Any]) -> None:
        """Send a kernel message on to the browser if the airlock admits it: every message,
        status messages too, counts against the server's window; one that is not a message
        (a header that does not unpack) never goes."""
        _, fed = self.session.feed_identities(outgoing_msg)
        parts = fed[1:]
        try:
            header = self.session.unpack(parts[0])
            if not isinstance(header, dict) or len(parts) < 4:
                raise ValueError("not a message")
        except Exception:
            # Jupyter's own path would pass it on, unread, to a browser speaking the v1
            # protocol: bytes no limit counted.
            self.log.warning("airlock: a kernel message that does not unpack was dropped")
            return None
        status = header.get("msg_type") == "status"
        if status and self._srs_kernel_session is None and isinstance(header.get("session"), str):
            self._srs_kernel_session = header["session"][:64]
        size = sum(len(part) for part in parts)
        digest = hashlib.sha256(b"".join(bytes(part) for part in parts)).digest()
        refusal = self._airlock_admits(size, digest)
        if refusal is None:
            return super().handle_outgoing_message(stream, outgoing_msg)
        if status:
            self._airlock_status(stream, parts, header)
            return None
        now = time.monotonic()
        if now - self._srs_warned_at >= 1.0:
            self._srs_warned_at = now
            try:
                parent = self.session.unpack(parts[1])
            except Exception:
                parent = {}
            self.write_stderr(refusal, parent)
        self.log.warning("airlock: %s", refusal)


class _OutputWindow:
    """The messages sent to the browser within the window, (when, bytes, digest), and their
    bytes."""

    def __init__(self) -> None:
        self.messages: deque[tuple[float, int, bytes | None]] = deque()
        self.bytes = 0
        # The digest of each message's bytes admitted within the window, and when.
        self.digests: dict[bytes, float] = {}


class AirlockKernelManager(AsyncMappingKernelManager):
    """The server's kernels, shown to the browser (``/api/kernels``, ``/api/sessions``) with
    an execution state of Jupyter's own words only: the server records whatever a status
    message from the kernel says, which would otherwise reach the browser unlimited."""

    def kernel_model(self, kernel_id: str) -> dict[str, Any]:
        model = super().kernel_model(kernel_id)
        if model.get("execution_state") not in EXECUTION_STATES:
            model["execution_state"] = "unknown"
        if "reason" in model:
            model["reason"] = str(model["reason"])[:500]
        return model


class AirlockKernelSpecManager(KernelSpecManager):
    """Only the airlock's own kernel spec (``srs.hub.kernel``), from the folder the spawner
    wrote; specs in the researcher's folders are never read, so no kernel can be started with a
    command of the researcher's choosing from the server."""

    airlock_kernels_dir = Unicode(
        help="The folder holding the airlock's kernel specs (written by SRSSpawner)."
    ).tag(config=True)

    @default("ensure_native_kernel")
    def _no_native_kernel(self) -> bool:
        return False

    @default("kernel_dirs")
    def _airlock_kernel_dirs(self) -> list[str]:
        return [self.airlock_kernels_dir] if self.airlock_kernels_dir else []

    @default("allowed_kernelspecs")
    def _only_ours(self) -> set[str]:
        return {KERNEL_NAME}


def kernel_spec(python: str = sys.executable, *, own_cgroup: bool = True) -> dict[str, Any]:
    """The airlock's ``python3`` kernel spec: ipykernel through ``srs.hub.kernel``, no debugger.

    ``-I``: nothing of the researcher's (the notebook's folder, ``PYTHON*`` variables, user site
    packages) is imported before the launcher has moved the kernel into its own cgroup
    (``own_cgroup``), out of the server's.
    """
    launcher = [python, "-I", "-m", "srs.hub.kernel"]
    if own_cgroup:
        launcher.append("--srs-own-cgroup")
    return {
        "argv": [*launcher, "-f", "{connection_file}"],
        "display_name": "Python 3 (srs)",
        "language": "python",
        # The debugger opens a TCP port; srs.hub.kernel switches it off.
        "metadata": {"debugger": False},
    }


def lab_page_config() -> dict[str, Any]:
    """JupyterLab's page configuration (``labconfig/page_config.json``): the plugins that lead
    only to a refused door are disabled."""
    return {"disabledExtensions": {plugin: True for plugin in DISABLED_LAB_PLUGINS}}


def server_config(
    airlock: Any,
    *,
    kernels_dir: Path,
    lab_dir: Path | None = None,
) -> dict[str, Any]:
    """The single-user server's configuration (``jupyter_server_config.json``) for an
    ``AirlockPolicy``: the airlock's classes, its limits, terminals and language servers off,
    kernels on IPC, and JupyterLab's settings and workspaces read from ``lab_dir`` (root's, so
    that nothing a kernel writes is served back; by default beside ``kernels_dir``)."""
    lab_dir = lab_dir if lab_dir is not None else kernels_dir.parent / "lab"
    limits = {
        "output_bytes_per_second": airlock.output_bytes_per_second,
        "output_messages_per_second": airlock.output_messages_per_second,
        "output_window_seconds": airlock.output_window_seconds,
        "max_output_message_bytes": airlock.max_output_message_bytes,
    }
    return {
        "ServerApp": {
            "contents_manager_class": f"{__name__}.AirlockContentsManager",
            "kernel_spec_manager_class": f"{__name__}.AirlockKernelSpecManager",
            "kernel_manager_class": f"{__name__}.AirlockKernelManager",
            "kernel_websocket_connection_class": f"{__name__}.AirlockWebsocketConnection",
            "terminals_enabled": False,
            "jpserver_extensions": {
                __name__: True,
                "jupyter_server_terminals": False,
                # Language servers would be processes of the server's own cgroup (the one that
                # may answer the proxy) started at the browser's request.
                "jupyter_lsp": False,
            },
            "max_body_size": airlock.max_upload_file_bytes * 2 + 100_000,
        },
        "KernelManager": {"transport": "ipc"},
        "AirlockContentsManager": {
            "editable_suffixes": list(airlock.editable_suffixes),
            "max_readable_file_bytes": airlock.max_readable_file_bytes,
            "max_upload_file_bytes": airlock.max_upload_file_bytes,
            "read_bytes_per_hour": airlock.read_bytes_per_hour,
        },
        "LabApp": {
            # Root's empty folders: the researcher's settings and workspaces are not kept, and
            # nothing a kernel writes under ~/.jupyter/lab is served back to the browser.
            "user_settings_dir": str(lab_dir / "user-settings"),
            "workspaces_dir": str(lab_dir / "workspaces"),
            "extension_manager": "readonly",
            "news_url": None,
            "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        },
        "AirlockKernelSpecManager": {"airlock_kernels_dir": str(kernels_dir)},
        "AirlockWebsocketConnection": limits,
    }


class AirlockMisconfigured(RuntimeError):
    """The server is not configured with the airlock; it refuses to run."""


def _undumpable() -> None:
    # Without Yama, any process of the same account (a kernel) may ptrace this one or read its
    # memory and environment through /proc; an undumpable process is root's alone.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise AirlockMisconfigured(f"prctl(PR_SET_DUMPABLE, 0) failed: errno {ctypes.get_errno()}")


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Check the server runs with the airlock's classes, shut the other doors, go undumpable."""
    problems = []
    if not isinstance(serverapp.contents_manager, AirlockContentsManager):
        problems.append(f"contents manager is {type(serverapp.contents_manager).__name__}")
    if not isinstance(serverapp.kernel_manager, AirlockKernelManager):
        problems.append(f"kernel manager is {type(serverapp.kernel_manager).__name__}")
    if not isinstance(serverapp.kernel_spec_manager, AirlockKernelSpecManager):
        problems.append(f"kernel spec manager is {type(serverapp.kernel_spec_manager).__name__}")
    connection = serverapp.kernel_websocket_connection_class
    if not (isinstance(connection, type) and issubclass(connection, AirlockWebsocketConnection)):
        problems.append(f"kernel websocket connection is {connection}")
    if problems:
        # An exception here is only logged by Jupyter; a server without its airlock must not run.
        serverapp.log.critical("airlock: refusing to run: %s", "; ".join(problems))
        os._exit(3)
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$", [(url_path_join(base, route), RefusedHandler) for route in REFUSED_ROUTES]
    )
    _undumpable()
    serverapp.log.info("airlock: in force (%d doors shut)", len(REFUSED_ROUTES))

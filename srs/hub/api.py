"""The environment API: the one door from a researcher's kernel to the project's data and outputs.

Inside JupyterHub a kernel runs as an unprivileged user that holds no key and cannot read the
registry or the vault, so ``srs.session()`` there talks to this service (``srs.hub.client``).
It is a Tornado application, run by the hub as a managed service (``python -m srs.hub.api``):

- ``GET  {base_url}health``: ``{"status": "ok"}``, for the hub's checks.
- ``GET  {base_url}session``: who the caller's token is for, ``{"user": ..., "project": ...}``.
- ``POST {base_url}call``: one session method, ``{"target": "session" | "dp", "method": NAME,
  "args": [...], "kwargs": {...}}``, answered ``{"result": ..., "last_output": ...}`` in the
  JSON of ``srs.hub.wire``, or ``{"error": {"type": ..., "message": ..., "attributes": ...}}``
  with a 4xx status (401 for a bad token, 403 for a refusal, 413 for too large a request).

In the hub the API listens only on a Unix socket (``--socket``), never on a TCP port and never
behind the hub's proxy: nothing outside the machine, and no browser, can reach it. It reads each
caller's uid from the socket (``SO_PEERCRED``) and accepts a token only from the Unix account it
was issued to, so a token copied out of a kernel opens nothing from another account or program.
(On TCP, for development, only tokens bound to no account are accepted.)

Every request carries ``Authorization: Bearer <session token>``; the token is resolved and the
person re-authorised for the project on each call (``srs.hub.tokens``), and the call runs on one
real ``ResearchSession`` per token, so the access decisions, disclosure checks and audit events
are the session's own; so are the dataset versions each output records (``datasets_used``):
the versions this process read for the token's session, never anything the request says. Only
the methods of the session's surface (``srs.research.surface``:
``SESSION_METHODS`` and ``DP_METHODS``) can be called, their arguments bound to its signatures;
a model's formula is checked first (patsy evaluates formulas as Python, and this process holds
the vault's key); a custom output arrives as the file's bytes, never as a path here. A DP
call carrying a frame (or series, bytes, file) anywhere in its arguments is refused before
anything is decoded (``DPDataRefused``): DP queries name a dataset held here and choose its rows
with a declarative ``where`` and ``derive``, plain JSON.

A kernel is untrusted, so a call is read within the limits of ``policies.access.airlock``
(``wire.WireLimits``): its JSON's size and nesting (``max_json_depth``) before anything else; its
arguments bound, as sent, to the method's parameters and a formula checked before any frame is
decoded; each frame checked from its Parquet footer and counted as it is decoded, within
``max_decoded_frame_bytes`` and, for all frames of the call, ``max_decoded_request_bytes`` (413
over them). A malformed request is a 400 with a message, as is an argument the method cannot use
(pandas' ``KeyError`` for a column that is not there, say); a 500 is an internal failure only.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import inspect
import io
import json
import logging
import os
import socket
import stat
import struct
import sys
import tempfile
import threading
import time
import tokenize
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import tornado.httpserver
import tornado.netutil
import tornado.web
from sqlalchemy.engine import make_url

from disclosure.dp.selection import NAME_THE_DATASET, DPDataRefused
from disclosure.errors import DisclosureError
from output_checking.workflow import WorkflowError
from srs.errors import SRSError
from srs.governance.access import AccessDenied
from srs.governance.audit import cut_text, record_event, use_field_bound
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet, load_policies
from srs.governance.registry import DatabaseError, Registry, open_registry
from srs.hub import wire
from srs.hub.tokens import TokenRefused, ended_tokens, resolve_session_token, token_digest
from srs.research.session import ResearchSession, open_session
from srs.research.surface import MODELS, DPSurface, SessionSurface, call_signature, surface_methods
from srs.research.values import SessionError

# What a kernel may call: the methods the session's surface declares (``srs.research.surface``),
# the same the local session implements and the kernel's client derives its own from. Nothing
# else (no name starting with "_", no ``close``) is reachable, whatever the request says.
SURFACES = {"session": SessionSurface, "dp": DPSurface}
TARGETS = {target: frozenset(surface_methods(surface)) for target, surface in SURFACES.items()}
SESSION_METHODS = TARGETS["session"]
DP_METHODS = TARGETS["dp"]
# What a DP call may never carry: data of the kernel's own (DP runs on datasets held here).
DP_REFUSED_TAGS = frozenset({"frame", "series", "bytes", "file"})
SERVICE_NAME = "srs-api"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766
DEFAULT_WORKERS = 8
# How often sessions whose tokens have ended are closed (checked on the next call after it).
PRUNE_SECONDS = 300
MAX_FORMULA_CHARS = 2000
# What a formula may call: patsy's own functions and these numpy functions (``np.log(x)``).
FORMULA_FUNCTIONS = frozenset(
    {"C", "I", "Q", "center", "standardize", "scale", "bs", "cr", "cc", "te"}
    | {"Treatment", "Sum", "Poly", "Helmert", "Diff"}
)
FORMULA_NUMPY = frozenset(
    {"log", "log1p", "log2", "log10", "exp", "expm1", "sqrt", "square", "abs", "power"}
    | {"floor", "ceil", "round", "clip", "sin", "cos", "arcsinh"}
)
# The rest of a formula's syntax tree: expressions, operators, lists and tuples of constants.
FORMULA_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.List,
    ast.Tuple,
    ast.Load,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Pow,
    ast.BitAnd,  # patsy's ':'
    ast.BitOr,
    ast.USub,
    ast.UAdd,
    ast.Eq,  # patsy's '~'
)
# Status codes for refusals; any other toolkit error is a 400, anything unexpected a 500.
STATUS_FOR = (
    (wire.RequestTooLarge, 413),
    (AccessDenied, 403),  # TokenRefused, a subclass, is answered 401 below
    (WorkflowError, 409),
)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ formulas
def check_formula(formula: Any) -> str:
    """Refuse a model formula that could do more than name columns and transform them.

    Patsy evaluates each term of a formula as Python in the calling process, so
    ``"y ~ I(open('master.key').read())"`` would read this service's files. A formula here may
    use column names, numbers, text, arithmetic, patsy's operators, patsy's functions (``C``,
    ``I``, ``Q``, ``center``, ...) and a few numpy functions (``np.log``); nothing else.
    """
    if not isinstance(formula, str) or not formula.strip():
        raise SessionError(f"a formula is text such as 'y ~ x + C(group)', not {formula!r}")
    if len(formula) > MAX_FORMULA_CHARS:
        raise SessionError(f"a formula may be at most {MAX_FORMULA_CHARS} characters long")
    refusal = SessionError(
        f"the formula {formula!r} uses Python the environment does not evaluate: use column "
        f"names, numbers, + - * / : ** ~, {', '.join(sorted(FORMULA_FUNCTIONS))} and "
        f"np.{', np.'.join(sorted(FORMULA_NUMPY))}"
    )
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(formula).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        raise refusal from exc
    # Patsy's '~' and ':' are not Python binary operators; '==' and '&' stand in for them.
    pieces = []
    for token in tokens:
        if token.type == tokenize.ERRORTOKEN and not token.string.isspace():
            raise refusal
        if token.type == tokenize.OP and token.string in ("~", ":"):
            pieces.append("==" if token.string == "~" else "&")
        else:
            pieces.append(token.string)
    expression = " ".join(pieces).strip()
    if expression.startswith("=="):
        expression = "0 " + expression
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise refusal from exc
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            by_name = isinstance(function, ast.Name) and function.id in FORMULA_FUNCTIONS
            by_numpy = (
                isinstance(function, ast.Attribute)
                and isinstance(function.value, ast.Name)
                and function.value.id in ("np", "numpy")
                and function.attr in FORMULA_NUMPY
            )
            if not (by_name or by_numpy):
                raise refusal
        elif isinstance(node, ast.Attribute):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("np", "numpy")):
                raise refusal
            if node.attr not in FORMULA_NUMPY:
                raise refusal
        elif isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise refusal
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float | str | bool | None):
                raise refusal
        elif isinstance(node, ast.keyword):
            if node.arg is None or node.arg.startswith("_"):
                raise refusal
        elif not isinstance(node, FORMULA_NODES):
            raise refusal
    return formula


# ------------------------------------------------------------------ who is calling
@dataclass(frozen=True)
class Caller:
    """Who is on the other end of a request: the address (TCP) or, on the Unix socket, the
    process id and Unix account the kernel reports for the connection (``SO_PEERCRED``)."""

    address: str | None = None
    uid: int | None = None
    pid: int | None = None

    def __str__(self) -> str:
        if self.uid is not None:
            return f"unix socket, uid {self.uid}, pid {self.pid}"
        return self.address or "unknown"


def peer_credentials(connection: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket, from the kernel."""
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


# ------------------------------------------------------------------ sessions behind tokens
@dataclass
class LiveSession:
    """One token's real session; ``lock`` runs its calls one at a time."""

    session: ResearchSession
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self.lock:
            self.session.close()


def error_payload(error: BaseException) -> dict[str, Any]:
    """An exception as the API answers it: type, message and its simple attributes."""
    attributes = {
        name: value
        for name, value in vars(error).items()
        if not name.startswith("_") and isinstance(value, str | int | float | bool | type(None))
    }
    return {
        "error": {"type": type(error).__name__, "message": str(error), "attributes": attributes}
    }


def status_for(error: BaseException) -> int:
    """The HTTP status of an error: 401 bad token, 403 refused, 413 too large, 409 workflow,
    400 any other toolkit error, 500 anything else."""
    if isinstance(error, TokenRefused):
        return 401
    for kind, status in STATUS_FOR:
        if isinstance(error, kind):
            return status
    if isinstance(error, SRSError | DisclosureError):
        return 400
    return 500


class EnvironmentAPI:
    """The service's state: the deployment, its policies, the registry that holds the tokens,
    the live sessions by token and the threads the calls run on (they block: database, vault,
    models, OpenDP), so one researcher's long query does not hold up the others."""

    def __init__(
        self,
        deployment: Deployment,
        policies: PolicySet,
        *,
        base_url: str = "/",
        workers: int = DEFAULT_WORKERS,
        require_account: bool = False,
    ) -> None:
        if not base_url.startswith("/"):
            raise SessionError(
                f"base_url must be an absolute path such as /services/srs-api/, not {base_url!r}"
            )
        url = make_url(deployment.database_url)
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
            # Connecting would leave an empty database file behind.
            raise DatabaseError(
                f"{deployment.home} is not a deployment (no registry at {url.database}): pass "
                "--home or set SRS_HOME to the deployment folder"
            )
        self.deployment = deployment
        self.policies = policies
        self.base_url = base_url.rstrip("/") + "/"
        # On the hub's Unix socket: only tokens bound to the caller's own account are accepted.
        self.require_account = require_account
        self.registry: Registry = open_registry(deployment.database_url)
        # Events written here (token refusals, the registry's own) keep the site's bound too.
        use_field_bound(self.registry.sessions, policies.access.audit_field_max_chars)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="srs-api")
        self._sessions: dict[str, LiveSession] = {}
        self._sessions_lock = threading.Lock()
        self._pruned_at = time.monotonic()

    # -------------------------------------------------------------- tokens
    def resolve(self, token: str, remote: Caller | str | None) -> tuple[str, str]:
        """The (user, project) of a token used by ``remote``; a refused token's session is
        closed. A token bound to a Unix account is accepted only from that account's uid."""
        caller = remote if isinstance(remote, Caller) else Caller(address=remote)
        try:
            with self.registry.sessions() as db:
                return resolve_session_token(
                    db,
                    token,
                    self.policies,
                    remote=str(caller),
                    peer_uid=caller.uid,
                    require_account=self.require_account,
                )
        except AccessDenied:
            self._drop(token_digest(token or ""))
            raise

    def whoami(self, token: str, remote: Caller | str | None) -> dict[str, str]:
        """``GET session``: who the token is for."""
        user, project = self.resolve(token, remote)
        return {"user": user, "project": project}

    def _drop(self, digest: str) -> None:
        with self._sessions_lock:
            live = self._sessions.pop(digest, None)
        if live is not None:
            live.close()

    def _live(self, token: str, user: str, project: str) -> LiveSession:
        digest = token_digest(token)
        with self._sessions_lock:
            live = self._sessions.get(digest)
        if live is not None:
            return live
        created = LiveSession(
            open_session(user, project, deployment=self.deployment, policies=self.policies)
        )
        with self._sessions_lock:
            live = self._sessions.setdefault(digest, created)
        if live is not created:
            created.close()
        return live

    def prune(self) -> int:
        """Close the sessions whose tokens have ended or expired; returns how many."""
        with self._sessions_lock:
            digests = list(self._sessions)
        if not digests:
            return 0
        with self.registry.sessions() as db:
            ended = ended_tokens(db, digests)
        for digest in ended:
            self._drop(digest)
        return len(ended)

    def _maybe_prune(self) -> None:
        if time.monotonic() - self._pruned_at >= PRUNE_SECONDS:
            self._pruned_at = time.monotonic()
            self.prune()

    # -------------------------------------------------------------- calls
    def call(self, token: str, remote: str | None, body: bytes) -> str:
        """``POST call``: resolve the token, read the body within the policy's limits, check
        the method, bind the arguments as sent (still encoded) to its parameters, check a
        model's formula, and only then decode the arguments, every frame counted against the
        request's decoded-size limits; run it and answer in wire JSON. A request that cannot be
        read or bound is a ``WireError`` (400), as is an argument the method cannot use."""
        self._maybe_prune()
        user, project = self.resolve(token, remote)
        if len(body) > wire.MAX_REQUEST_BYTES:
            raise wire.RequestTooLarge(wire.too_large(len(body)))
        limits = wire.WireLimits.of(self.policies.access.airlock)
        target, method, arguments, options = _parse_call(body, limits)
        if method not in TARGETS.get(target, ()):
            self._refuse_method(user, project, target, method, remote)
        live = self._live(token, user, project)
        with live.lock:
            owner = live.session if target == "session" else live.session.dp
            bound_method = getattr(owner, method)
            signature = call_signature(SURFACES[target], method)
            bound = _bind_as_sent(f"{target}.{method}", signature, arguments, options)
            if target == "session" and method in MODELS:
                _check_formula_as_sent(bound.arguments.get("formula"))
            if target == "dp":
                _refuse_data_for_dp(f"dp.{method}", arguments, options)
            _decode_bound(bound, wire.DecodingAllowance(limits))
            result = _run(f"{target}.{method}", bound_method, bound)
            last_output = live.session.last_output
        return json.dumps({"result": wire.encode(result), "last_output": wire.encode(last_output)})

    def _refuse_method(
        self, user: str, project: str, target: str, method: str, remote: str | None
    ) -> None:
        offered = TARGETS.get(target)
        reason = f"{target}.{method} is not a method the environment API offers; " + (
            f"{target} offers {', '.join(sorted(offered))}"
            if offered
            else "targets are session and dp"
        )
        with self.registry.sessions() as db:
            record_event(
                db,
                actor=user,
                action="hub.call",
                target=project,
                outcome="deny",
                reason=reason,
                details={"target": target, "method": method, "remote": str(remote)},
            )
            db.commit()
        raise AccessDenied(cut_text(reason, self.policies.access.audit_field_max_chars))

    def close(self) -> None:
        """Close every live session, the registry and the worker threads."""
        with self._sessions_lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for live in sessions:
            live.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.registry.dispose()


def _parse_call(body: bytes, limits: wire.WireLimits) -> tuple[str, str, list[Any], dict[str, Any]]:
    """The target, method, args and kwargs of a call's body, as sent (nothing decoded yet);
    ``WireError`` for a body that is not such a JSON object within ``limits``."""
    fields = {"target", "method", "args", "kwargs"}
    request = wire.read_json(body, limits)
    if not isinstance(request, dict):
        raise wire.WireError(
            "the request body must be a JSON object {'target', 'method', 'args', 'kwargs'}"
        )
    unknown = sorted(set(request) - fields)
    if unknown:
        raise wire.WireError(
            f"the request has fields the environment does not read ({', '.join(unknown)[:200]}); "
            f"send only {', '.join(sorted(fields))}"
        )
    target = request.get("target", "session")
    method = request.get("method")
    arguments = request.get("args", [])
    options = request.get("kwargs", {})
    if not isinstance(target, str) or not isinstance(method, str):
        raise wire.WireError(
            "'target' and 'method' must be text such as 'session' and 'crosstab', not "
            f"{type(target).__name__} and {type(method).__name__}"
        )
    if not isinstance(arguments, list) or not isinstance(options, dict):
        raise wire.WireError(
            "'args' must be a list and 'kwargs' an object, not "
            f"{type(arguments).__name__} and {type(options).__name__}"
        )
    if wire.TAG in options:
        raise wire.WireError("'kwargs' must be a plain object of keyword arguments")
    return target, method, arguments, options


def _bind_as_sent(
    name: str, signature: inspect.Signature, arguments: list[Any], options: dict[str, Any]
) -> inspect.BoundArguments:
    """The arguments as sent (still encoded) bound to the surface's ``signature`` of the method
    (``srs.research.surface.call_signature``), so a wrong number of them or an unknown keyword
    is refused before any frame is decoded."""
    try:
        return signature.bind(*arguments, **options)
    except TypeError as exc:
        plain = signature.replace(
            parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
            return_annotation=signature.empty,
        )
        raise wire.WireError(f"{name}: {exc}; it takes {plain}") from exc


def _check_formula_as_sent(formula: Any) -> None:
    """A model's formula, checked as sent: plain text only (never a tagged value, which would
    be decoded first), then ``check_formula``."""
    if not isinstance(formula, str):
        raise SessionError(
            f"a formula is plain text such as 'y ~ x + C(group)', not a {type(formula).__name__}"
        )
    check_formula(formula)


def _refuse_data_for_dp(name: str, arguments: list[Any], options: dict[str, Any]) -> None:
    """Refuse, as sent and before anything is decoded, a DP call carrying a frame, series,
    bytes or file anywhere in its arguments: a DP query names a dataset the environment holds
    and chooses its rows with ``where`` and ``derive`` (``DPDataRefused``)."""
    pending: list[Any] = [arguments, options]
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, dict):
            tag = value.get(wire.TAG)
            if isinstance(tag, str) and tag in DP_REFUSED_TAGS:
                raise DPDataRefused(f"{name} was sent a {tag}: {NAME_THE_DATASET}")
            pending.extend(value.values())


def _decode_bound(bound: inspect.BoundArguments, allowance: wire.DecodingAllowance) -> None:
    """Decode each bound argument in place, every frame of them counted against ``allowance``,
    the one request's (``*args`` and ``**options`` parameters value by value)."""
    parameters = bound.signature.parameters
    for name, sent in bound.arguments.items():
        kind = parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            decoded = tuple(wire.decode_arguments(value, allowance) for value in sent)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            decoded = {key: wire.decode_arguments(value, allowance) for key, value in sent.items()}
        else:
            decoded = wire.decode_arguments(sent, allowance)
        bound.arguments[name] = decoded


def _run(name: str, bound_method: Any, bound: inspect.BoundArguments) -> Any:
    """Run the method on its decoded arguments. What it raises on arguments it cannot use (a
    column that is not there, a value of the wrong type: pandas' TypeError, ValueError,
    KeyError, ...) is the caller's mistake, answered 400 with its message and logged as a
    warning; a toolkit error keeps its own status, anything else is a 500."""
    argument_errors = (TypeError, ValueError, LookupError, ArithmeticError, AttributeError)
    try:
        if name == "session.custom_output":
            return _custom_output(bound_method, bound)
        return bound_method(*bound.args, **bound.kwargs)
    except argument_errors as exc:
        if status_for(exc) != 500:
            raise  # a toolkit error (some are ValueErrors too) keeps its own status
        log.warning("%s refused its arguments", name, exc_info=exc)
        raise SessionError(
            f"{name} cannot use the arguments given ({type(exc).__name__}: {exc}); check the "
            "column names, types and values you passed"
        ) from exc


def _custom_output(bound_method: Any, bound: inspect.BoundArguments) -> Any:
    """Write the uploaded file to a private temporary folder and record it from there."""
    upload = bound.arguments.get("path")
    if not isinstance(upload, wire.FileUpload):
        raise SessionError(
            "custom_output takes the file from your kernel: call s.custom_output(path, ...) with "
            "the path of a file in your workspace (the environment never reads its own files "
            "for you)"
        )
    name = Path(upload.name).name
    if name in ("", ".", "..") or "\x00" in name:
        raise SessionError(f"{upload.name!r} is not a file name")
    with tempfile.TemporaryDirectory(prefix="srs-api-upload-") as folder:
        path = Path(folder, name)
        path.write_bytes(upload.content)
        bound.arguments["path"] = path
        return bound_method(*bound.args, **bound.kwargs)


# ------------------------------------------------------------------ the Tornado application
class APIHandler(tornado.web.RequestHandler):
    """JSON in and out; errors as ``{"error": ...}``; the blocking work on the API's threads."""

    @property
    def api(self) -> EnvironmentAPI:
        return self.settings["srs"]

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def caller(self) -> Caller:
        """The caller: on the Unix socket its uid and pid from the kernel, else its address."""
        stream = getattr(self.request.connection, "stream", None)
        connection = getattr(stream, "socket", None)
        if connection is not None and connection.family == socket.AF_UNIX:
            pid, uid, _ = peer_credentials(connection)
            return Caller(uid=uid, pid=pid)
        return Caller(address=self.request.remote_ip)

    def bearer_token(self) -> str:
        scheme, _, value = self.request.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "token") else ""

    async def in_worker(self, function: Any, *arguments: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.api.executor, function, *arguments)

    def answer_error(self, error: BaseException) -> None:
        status = status_for(error)
        if status >= 500:
            log.error("%s failed", self.request.path, exc_info=error)
        if status == 401:
            self.set_header("WWW-Authenticate", f'Bearer realm="{SERVICE_NAME}"')
        self.set_status(status)
        self.finish(json.dumps(error_payload(error)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        self.finish(json.dumps({"error": {"type": "HTTPError", "message": message}}))


class HealthHandler(APIHandler):
    def get(self) -> None:
        self.finish(json.dumps({"status": "ok", "service": SERVICE_NAME}))


class SessionHandler(APIHandler):
    async def get(self) -> None:
        try:
            who = await self.in_worker(self.api.whoami, self.bearer_token(), self.caller())
        except Exception as error:  # answered as JSON with its status; unexpected ones logged
            self.answer_error(error)
            return
        self.finish(json.dumps(who))


class CallHandler(APIHandler):
    async def post(self) -> None:
        try:
            answer = await self.in_worker(
                self.api.call, self.bearer_token(), self.caller(), self.request.body
            )
        except Exception as error:  # answered as JSON with its status; unexpected ones logged
            self.answer_error(error)
            return
        self.finish(answer)


class NotFoundHandler(APIHandler):
    def prepare(self) -> None:
        self.set_status(404)
        self.finish(
            json.dumps(
                {"error": {"type": "HTTPError", "message": f"no endpoint {self.request.path}"}}
            )
        )


def make_api_app(
    deployment: Deployment,
    policies: PolicySet,
    *,
    base_url: str = "/",
    workers: int = DEFAULT_WORKERS,
    require_account: bool = False,
) -> tornado.web.Application:
    """The environment API as a Tornado application, its endpoints under ``base_url``
    (``require_account``: accept only tokens bound to the caller's Unix account, as on the hub's
    Unix socket).

    ``app.settings["srs"]`` is the ``EnvironmentAPI`` (close it when done). The registry must
    exist (``srs init``); the vault's key comes from ``SRS_MASTER_KEY`` or the deployment's key
    file, which only this service (not the researchers' Unix users) can read.

    >>> app = make_api_app(Deployment.from_env(), load_policies(), base_url="/services/srs-api/")  # doctest: +SKIP
    """
    api = EnvironmentAPI(
        deployment, policies, base_url=base_url, workers=workers, require_account=require_account
    )
    routes = [
        (api.base_url + "health", HealthHandler),
        (api.base_url + "session", SessionHandler),
        (api.base_url + "call", CallHandler),
    ]
    return tornado.web.Application(
        routes, srs=api, default_handler_class=NotFoundHandler, serve_traceback=False
    )


def api_server(app: tornado.web.Application) -> tornado.httpserver.HTTPServer:
    """An HTTP server for the API that reads request bodies up to ``wire.MAX_REQUEST_BYTES``."""
    return tornado.httpserver.HTTPServer(app, max_body_size=wire.MAX_REQUEST_BYTES)


# ------------------------------------------------------------------ running it
def service_address(
    ip: str | None,
    port: int | None,
    base_url: str | None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[str, int, str]:
    """Where to listen and under which prefix: the arguments given, else what JupyterHub gives
    a managed service (``JUPYTERHUB_SERVICE_URL``, ``JUPYTERHUB_SERVICE_PREFIX``), else
    127.0.0.1:8766 at ``/``.

    >>> service_address(None, None, None, {"JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:10101",
    ...                                    "JUPYTERHUB_SERVICE_PREFIX": "/services/srs-api/"})
    ('127.0.0.1', 10101, '/services/srs-api/')
    """
    from_hub = urlparse(environ.get("JUPYTERHUB_SERVICE_URL", ""))
    host = ip or from_hub.hostname or DEFAULT_HOST
    port = port if port is not None else (from_hub.port or DEFAULT_PORT)
    prefix = base_url or environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
    return host, port, prefix.rstrip("/") + "/"


def bind_api_socket(path: Path) -> socket.socket:
    """The API's listening Unix socket at ``path``: any local account may connect (mode 0666)
    and the API tells them apart by ``SO_PEERCRED``. Its folder is made (0711) if missing and
    must be this account's and writable by no one else, so nobody can put a socket of their own
    in its place."""
    if len(os.fsencode(path)) > 107:
        raise SessionError(f"the API's socket path {path} is longer than 107 bytes; shorten it")
    folder = path.parent
    folder.mkdir(mode=0o711, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o022:
        raise SessionError(
            f"{folder} must belong to the API's account (uid {os.geteuid()}) and be writable by "
            f"no one else (it is uid {info.st_uid}, mode {stat.filemode(info.st_mode)}): other "
            "accounts could replace the API's socket"
        )
    return tornado.netutil.bind_unix_socket(str(path), mode=0o666)


def serve(
    deployment: Deployment,
    policies: PolicySet,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    base_url: str = "/",
    workers: int = DEFAULT_WORKERS,
    socket_path: Path | None = None,
) -> None:
    """Serve the API until interrupted: on the Unix socket ``socket_path`` (the hub's way; only
    account-bound tokens from their own account are accepted), else on TCP ``host:port``."""
    app = make_api_app(
        deployment,
        policies,
        base_url=base_url,
        workers=workers,
        require_account=socket_path is not None,
    )
    api: EnvironmentAPI = app.settings["srs"]

    async def run() -> None:
        server = api_server(app)
        if socket_path is not None:
            server.add_socket(bind_api_socket(socket_path))
            log.info("environment API on unix:%s%s", socket_path, api.base_url)
        else:
            server.listen(port, address=host)
            log.info("environment API on http://%s:%s%s", host, port, api.base_url)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        api.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m srs.hub.api --home HOME [--port PORT] [--base-url /services/srs-api/]``."""
    parser = argparse.ArgumentParser(
        prog="python -m srs.hub.api",
        description="The environment API: researchers' kernels reach data and outputs through it.",
    )
    parser.add_argument("--home", help="the deployment folder (default SRS_HOME, else ./srs-home)")
    parser.add_argument("--ip", help="address to listen on (default from JUPYTERHUB_SERVICE_URL)")
    parser.add_argument("--port", type=int, help="port (default from JUPYTERHUB_SERVICE_URL)")
    parser.add_argument("--base-url", help="URL prefix (default JUPYTERHUB_SERVICE_PREFIX or /)")
    parser.add_argument(
        "--socket",
        type=Path,
        help="listen on this Unix socket instead of TCP (the hub's way: callers are told apart "
        "by their Unix account, and only tokens bound to it are accepted)",
    )
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="calls run at once")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(name)s] %(message)s")
    host, port, base_url = service_address(arguments.ip, arguments.port, arguments.base_url)
    try:
        serve(
            Deployment.from_env(arguments.home),
            load_policies(),
            host=host,
            port=port,
            base_url=base_url,
            workers=arguments.workers,
            socket_path=arguments.socket,
        )
    except SRSError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

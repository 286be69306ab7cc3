"""``RemoteSession``: the researcher session inside JupyterHub, by calls to the environment API.

A kernel in the hub holds no key and cannot read the registry, so ``srs.session()`` there (when
the spawner has set ``SRS_API_URL`` and ``SRS_SESSION_TOKEN``) returns a ``RemoteSession``: the
same methods as ``srs.research.session.ResearchSession`` (both implement
``srs.research.surface.SessionSurface``), each one a JSON call (``srs.hub.wire``) to the
API (``srs.hub.api``), which runs it on the real session behind the access check. Errors come
back as the toolkit's own exception classes (``AccessDenied``, ``OutputError``,
``BudgetExhausted``...). Only the standard library is used for HTTP. In the hub the API is a Unix
socket (``SRS_API_URL=http+unix://%2Frun%2Fsrs%2Fapi.sock/services/srs-api/``: the socket's path,
percent-encoded, then the API's prefix); ``http(s)://`` URLs work too, for development.

>>> import srs
>>> s = srs.session()                                   # doctest: +SKIP
>>> s                                                   # doctest: +SKIP
<srs session: ana in P001 (via the environment API at http://127.0.0.1:8003/services/srs-api/)>
>>> journeys = s.dataset("linked/journeys")             # doctest: +SKIP
"""

from __future__ import annotations

import http.client
import importlib
import inspect
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from disclosure.dp.selection import refuse_frame
from srs.hub import wire
from srs.research.drafts import custom_draft
from srs.research.surface import (
    API_URL_ENV,
    DATASET,
    ENGINES,
    OUTPUT_ID,
    VAULT,
    DPSurface,
    SessionSurface,
    forwarded,
)
from srs.research.values import OutputSummary, SessionError

TOKEN_ENV = "SRS_SESSION_TOKEN"
UNIX_SCHEME = "http+unix"
TIMEOUT_ENV = "SRS_API_TIMEOUT"
# Long enough for a DP synthetic replica of a large dataset; a call is never retried.
DEFAULT_TIMEOUT_SECONDS = 3600.0
# The errors re-raised as themselves, by name and the module that defines them; any other error
# in the environment comes back as a SessionError naming it.
REMOTE_ERRORS = {
    "SRSError": "srs.errors",
    "AccessDenied": "srs.governance.access",
    "TokenRefused": "srs.hub.tokens",
    "SessionError": "srs.research.values",
    "WireError": "srs.hub.wire",
    "RequestTooLarge": "srs.hub.wire",
    "VaultError": "srs.vault.store",
    "VaultShredded": "srs.vault.store",
    "VaultKeyError": "srs.vault.crypto",
    "VaultIntegrityError": "srs.vault.crypto",
    "DatabaseError": "srs.governance.registry.database",
    "RegistryError": "srs.governance.registry.accounts",
    "PolicyError": "srs.governance.policy",
    "BudgetExhausted": "srs.governance.budget",
    "SpendRefused": "srs.governance.budget",
    "OutputError": "output_checking.outputs",
    "WorkflowError": "output_checking.workflow",
    "DisclosureError": "disclosure.errors",
    "TableSpecError": "disclosure.tables",
    "MicrodataSpecError": "disclosure.microdata",
    "SuppressionError": "disclosure.suppression",
    "ProtectionError": "disclosure.protection",
    "DPQueryError": "disclosure.dp.queries",
    "PrivacyUnitFixed": "disclosure.dp.queries",
    "SelectionError": "disclosure.dp.selection",
    "DPDataRefused": "disclosure.dp.selection",
    "DPReleaseRefused": "disclosure.dp.spend",
    "SpendNotConfirmed": "srs.governance.budget",
    "SyntheticError": "synthetic.errors",
    "DPReplicaError": "synthetic.dp_synthesis",
    "DPReplicaRefused": "synthetic.dp_synthesis",
}


def _timeout_from_environment() -> float:
    given = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        seconds = float(given) if given else DEFAULT_TIMEOUT_SECONDS
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise SessionError(f"{TIMEOUT_ENV} must be a number of seconds, not {given!r}")
    return seconds


def unix_socket_url(socket_path: str | os.PathLike[str], prefix: str) -> str:
    """The ``SRS_API_URL`` of an API on a Unix socket.

    >>> unix_socket_url("/run/srs/api.sock", "/services/srs-api/")
    'http+unix://%2Frun%2Fsrs%2Fapi.sock/services/srs-api/'
    """
    encoded = urllib.parse.quote(os.fspath(socket_path), safe="")
    return f"{UNIX_SCHEME}://{encoded}/{prefix.strip('/')}/"


def socket_of_url(api_url: str) -> str | None:
    """The socket path of an ``http+unix://`` URL (None for http and https)."""
    parsed = urllib.parse.urlsplit(api_url)
    if parsed.scheme != UNIX_SCHEME:
        return None
    return urllib.parse.unquote(parsed.netloc)


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (the environment API in the hub)."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(self.timeout)
        try:
            connection.connect(self.socket_path)
        except OSError:
            connection.close()
            raise
        self.sock = connection


def remote_error(payload: Any, status: int) -> Exception:
    """The exception an API error answer stands for: the toolkit's own class when it is in
    ``REMOTE_ERRORS``, else a ``SessionError`` naming the type."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return SessionError(f"the environment API answered HTTP {status} without an explanation")
    name, message = str(error.get("type", "")), str(error.get("message", ""))
    if name in REMOTE_ERRORS:
        cls = getattr(importlib.import_module(REMOTE_ERRORS[name]), name)
        raised = cls.__new__(cls)
        Exception.__init__(raised, message)
        attributes = error.get("attributes")
        if isinstance(attributes, dict):
            raised.__dict__.update({str(k): v for k, v in attributes.items()})
        return raised
    return SessionError(f"{name or 'error'} in the environment: {message}")


def _aggfunc_name(aggfunc: Any) -> Any:
    # The session checks an aggfunc by its name (np.mean and "mean" alike); a function cannot
    # travel, its name can.
    if isinstance(aggfunc, str) or not callable(aggfunc):
        return aggfunc
    name = getattr(aggfunc, "__name__", None)
    if not name:
        raise SessionError(f"aggfunc {aggfunc!r} has no name; give one such as 'mean'")
    return name


def _reference(output: Any) -> Any:
    # A frame an analysis returned stands for its output: send the id, not the frame.
    if isinstance(output, pd.DataFrame) and OUTPUT_ID in output.attrs:
        return int(output.attrs[OUTPUT_ID])
    return output


def _references(outputs: Any) -> Any:
    return None if outputs is None else [_reference(o) for o in outputs]


def _listed(values: Any) -> Any:
    # A sequence travels as a JSON list whatever it was (tuple, numpy array, pandas Index).
    return None if values is None else list(values)


def _prepare(bound: inspect.BoundArguments, by_parameter: dict[str, Callable[[Any], Any]]) -> None:
    """Turn each argument ``by_parameter`` names into what can travel, in place."""
    for parameter, prepare in by_parameter.items():
        if parameter in bound.arguments:
            bound.arguments[parameter] = prepare(bound.arguments[parameter])


@forwarded
class RemoteSession(SessionSurface):
    """One researcher working in one project through the environment API; what
    ``srs.session()`` returns inside the hub. Its methods are derived from
    ``srs.research.surface.SessionSurface``, the same as ``ResearchSession``'s: each binds its
    call to the surface's signature and sends it.

    Frames go to the API as Parquet: pass a dataset's name rather than a whole frame read from
    it where you can (DP queries take only a dataset's name). Fitted models come back as
    ``ModelResults`` (estimates, fit statistics and the summary); figures as matplotlib figures
    of the recorded PNG.
    """

    # What an argument becomes before it is sent, by parameter name, for every method.
    _SENT_AS = {"aggfunc": _aggfunc_name, "output": _reference, "outputs": _references}

    def __init__(self, api_url: str, token: str, *, timeout: float | None = None) -> None:
        if not api_url.startswith(("http://", "https://", f"{UNIX_SCHEME}://")):
            raise SessionError(
                f"{API_URL_ENV} must be an http(s) or {UNIX_SCHEME} URL, not {api_url!r}"
            )
        self._api_url = api_url.rstrip("/") + "/"
        self._socket_path = socket_of_url(self._api_url)
        self._token = token
        self._timeout = timeout or _timeout_from_environment()
        # No proxy: the token goes straight to the environment's own service.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        who = self._request("GET", "session")
        self.user: str = who["user"]
        self.project: str = who["project"]
        # The environment API opens every session on the project's vault data (srs.session()
        # refuses source='synthetic' in the hub), where there is nothing to warn of.
        self.source = VAULT
        self.notice: str | None = None
        self.last_output: OutputSummary | None = None
        self.dp = RemoteDifferentialPrivacy(self)

    @classmethod
    def from_environment(
        cls, user: str | None = None, project: str | None = None, policies: Any = None
    ) -> RemoteSession:
        """The session the hub's spawner set up (``SRS_API_URL``, ``SRS_SESSION_TOKEN``);
        ``user`` and ``project``, if given, must be the ones the token was issued for."""
        if policies is not None:
            raise SessionError(
                "inside the hub the environment's policies apply; call srs.session() without "
                "policies="
            )
        url = os.environ.get(API_URL_ENV, "").strip()
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise SessionError(
                f"{API_URL_ENV} is set but {TOKEN_ENV} is not: stop and start your server from "
                "the hub's home page to get a session token"
            )
        remote = cls(url, token)
        for given, actual, what in (
            (user, remote.user, "user"),
            (project, remote.project, "project"),
        ):
            if given is not None and given != actual:
                raise SessionError(
                    f"this server works as {remote.user} in {remote.project}, not {what} "
                    f"{given!r}: call srs.session() without arguments, or start a server for "
                    "that project from the hub's home page"
                )
        return remote

    def __repr__(self) -> str:
        return f"<srs session: {self.user} in {self.project} (via the environment API at {self._api_url})>"

    def close(self) -> None:
        """Nothing to release here: the environment keeps the session until the server stops."""

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -------------------------------------------------------------- transport
    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def _request_on_socket(self, verb: str, endpoint: str, body: bytes | None) -> Any:
        path = urllib.parse.urlsplit(self._api_url).path + endpoint
        connection = UnixHTTPConnection(self._socket_path, timeout=self._timeout)
        try:
            connection.request(verb, path, body=body, headers=self._headers())
            response = connection.getresponse()
            text = response.read()
        except OSError as exc:
            raise SessionError(
                f"cannot reach the environment API at {self._api_url} ({exc}); if it persists, "
                "tell the environment's administrators"
            ) from exc
        finally:
            connection.close()
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if response.status >= 400:
            raise remote_error(payload, response.status)
        if payload is None:
            raise SessionError(f"the environment API answered HTTP {response.status} without JSON")
        return payload

    def _request(self, verb: str, endpoint: str, body: bytes | None = None) -> Any:
        if self._socket_path is not None:
            return self._request_on_socket(verb, endpoint, body)
        request = urllib.request.Request(
            self._api_url + endpoint, data=body, method=verb, headers=self._headers()
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as answer:
            with answer:
                text = answer.read()
            try:
                payload = json.loads(text)
            except ValueError:
                payload = None
            raise remote_error(payload, answer.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SessionError(
                f"cannot reach the environment API at {self._api_url} ({reason}); if it persists, "
                "tell the environment's administrators"
            ) from exc

    def _call(self, target: str, method: str, *arguments: Any, **options: Any) -> Any:
        body = json.dumps(
            {
                "target": target,
                "method": method,
                "args": wire.encode(list(arguments)),
                "kwargs": wire.encode(options),
            }
        ).encode("utf-8")
        if len(body) > wire.MAX_REQUEST_BYTES:
            raise wire.RequestTooLarge(wire.too_large(len(body)))
        answer = self._request("POST", "call", body)
        last_output = wire.decode_result(answer.get("last_output"))
        if last_output is not None:
            self.last_output = last_output
        return wire.decode_result(answer.get("result"))

    def _forward(self, method: str, bound: inspect.BoundArguments) -> Any:
        """Send a call bound to the surface's signature (``srs.research.surface.forwarded``)."""
        _prepare(bound, self._SENT_AS)
        return self._call("session", method, *bound.args[1:], **bound.kwargs)

    # -------------------------------------------------------------- methods with work done here
    # Their signatures are the surface's (held so by tests/srs/research/test_surface.py) and
    # their docstrings come from it.
    def dataset(self, name: str, engine: str = "pandas", *, version: int | None = None) -> Any:
        if engine not in ENGINES:
            raise SessionError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
        frame = self._call("session", "dataset", name, version=version)
        if engine == "polars":
            import polars as pl

            return pl.from_pandas(frame)
        return frame

    def dictionary_of(self, data: Any) -> list[dict[str, Any]] | None:
        name = data if isinstance(data, str) else getattr(data, "attrs", {}).get(DATASET)
        return self._call("session", "dictionary_of", name) if name else None

    def custom_output(
        self,
        path: str | os.PathLike,
        justification: str,
        name: str | None = None,
        context: str = "",
        controls: str = "",
    ) -> OutputSummary:
        # The same checks as the local session, before anything is sent; then the file's bytes
        # travel, never its path (the environment reads no file of its own for a kernel).
        draft = custom_draft(path, justification)
        upload = wire.FileUpload(name=Path(path).name, content=next(iter(draft.files.values())))
        return self._call(
            "session",
            "custom_output",
            upload,
            justification,
            name=name,
            context=context,
            controls=controls,
        )


@forwarded
class RemoteDifferentialPrivacy(DPSurface):
    """``s.dp`` inside the hub: the same differentially private queries on the project's
    datasets (``srs.research.surface.DPSurface``), paid from the project's budget by the
    environment. A query names a dataset; a frame is refused here, before anything is sent (and
    by the API, whatever is sent)."""

    # What an argument becomes before it is sent, by parameter name, for every query.
    _SENT_AS = {"dataset": refuse_frame, "columns": _listed, "qs": _listed, "edges": _listed}

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"<DP queries for {self._session.project}: {', '.join(self.QUERIES)}>"

    def _forward(self, method: str, bound: inspect.BoundArguments) -> Any:
        """Send a call bound to the surface's signature (``srs.research.surface.forwarded``)."""
        _prepare(bound, self._SENT_AS)
        return self._session._call("dp", method, *bound.args[1:], **bound.kwargs)

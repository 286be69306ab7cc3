"""One session surface, two transports: the local session, the hub's remote session and the API's
allow-lists all offer exactly the methods of ``srs.research.surface``, with its signatures and
docstrings, and a session of either transport exactly its attributes; a drift on any side is
reported, whatever kind of public name it is; and the research layer never reaches up to the hub
or the front door to choose between them.
"""

from __future__ import annotations

import ast
import functools
import inspect
import pydoc
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from disclosure.dp.selection import DPDataRefused
from srs.hub import api
from srs.hub.client import RemoteDifferentialPrivacy, RemoteSession
from srs.research.dp import DifferentialPrivacy
from srs.research.session import ResearchSession
from srs.research.surface import (
    OUTPUT_ID,
    TRANSPORT_ONLY,
    DPSurface,
    SessionSurface,
    SurfaceAttribute,
    call_signature,
    forwarded,
    surface_attributes,
    surface_drift,
    surface_methods,
)

ROOT = Path(__file__).resolve().parents[3]
IMPLEMENTATIONS = [
    (ResearchSession, SessionSurface),
    (RemoteSession, SessionSurface),
    (DifferentialPrivacy, DPSurface),
    (RemoteDifferentialPrivacy, DPSurface),
]
# What the research layer may not import: the hub, or the front door that picks a transport.
ABOVE_RESEARCH = ("srs.hub", "srs.session")
WHAT_TO_DO = (
    "declare it there, or make it private (a name one transport alone must have goes in "
    "TRANSPORT_ONLY, with why)"
)


def _export(self: Any, what: str) -> str:
    return what


# Every kind of public name a class can offer besides a plain method, as the class body would
# write it (``extra``), and how the drift names its kind.
LOOPHOLES = {
    "property": (lambda: {"extra": property(lambda self: "a property")}, "property"),
    "classmethod": (lambda: {"extra": classmethod(lambda cls: cls)}, "classmethod"),
    "staticmethod": (lambda: {"extra": staticmethod(lambda: None)}, "staticmethod"),
    "functools.cache": (lambda: {"extra": functools.cache(lambda self: 0)}, "_lru_cache_wrapper"),
    "functools.lru_cache": (
        lambda: {"extra": functools.lru_cache(maxsize=8)(lambda self: 0)},
        "_lru_cache_wrapper",
    ),
    "functools.cached_property": (
        lambda: {"extra": functools.cached_property(lambda self: 0)},
        "cached_property",
    ),
    "functools.partialmethod": (
        lambda: {"_export": _export, "extra": functools.partialmethod(_export, "all")},
        "partialmethod",
    ),
    "a constant": (lambda: {"extra": ("a", "tuple")}, "tuple"),
}


def allow_list_drift(allowed: frozenset[str], surface: type) -> list[str]:
    """How an API allow-list differs from the surface's methods."""
    declared = set(surface_methods(surface))
    return [f"allowed but not declared: {name}" for name in sorted(allowed - declared)] + [
        f"declared but not allowed: {name}" for name in sorted(declared - allowed)
    ]


# ------------------------------------------------------------------ (a) every side is the surface
@pytest.mark.parametrize(("implementation", "surface"), IMPLEMENTATIONS)
def test_each_session_class_offers_exactly_its_surface(implementation, surface) -> None:
    assert surface_drift(implementation) == []
    assert surface_drift(implementation, surface) == []
    for name, declared in surface_methods(surface).items():
        method = getattr(implementation, name)
        assert method.__doc__ == declared.__doc__ and declared.__doc__, name
        offered = list(inspect.signature(method).parameters.values())
        expected = list(inspect.signature(declared).parameters.values())
        assert [(p.name, p.kind, p.default) for p in offered] == [
            (p.name, p.kind, p.default) for p in expected
        ], name


def test_the_api_allows_exactly_the_surface_and_binds_to_it() -> None:
    assert allow_list_drift(api.SESSION_METHODS, SessionSurface) == []
    assert allow_list_drift(api.DP_METHODS, DPSurface) == []
    assert api.TARGETS == {"session": api.SESSION_METHODS, "dp": api.DP_METHODS}
    assert {"crosstab", "submit", "custom_output", *api.MODELS} <= api.SESSION_METHODS
    assert "close" not in api.SESSION_METHODS and "synthetic" in api.DP_METHODS
    assert list(call_signature(SessionSurface, "crosstab").parameters)[:2] == ["data", "index"]


def test_help_reads_the_same_on_the_local_and_the_remote_session() -> None:
    remote = RemoteSession.__new__(RemoteSession)  # no API needed to read the help
    remote_dp = RemoteDifferentialPrivacy(remote)
    for method in (remote.crosstab, ResearchSession.crosstab):
        text = pydoc.render_doc(method)
        assert "A checked, protected cross-tabulation" in text
        assert "unit: 'str | None' = 'auto'" in text and "controls: 'str' = ''" in text
    assert "differentially private synthetic replica" in pydoc.render_doc(remote_dp.synthetic)


# ------------------------------------------------------------------ (b) a drift is caught
def test_an_extra_public_method_is_reported() -> None:
    class Wider(ResearchSession):
        def export_everything(self) -> None:
            """Not a call the environment offers."""

    assert surface_drift(Wider) == [
        f"Wider.export_everything (method) is public but not on SessionSurface: {WHAT_TO_DO}"
    ]
    assert allow_list_drift(api.SESSION_METHODS | {"export_everything"}, SessionSurface) == [
        "allowed but not declared: export_everything"
    ]


def test_a_changed_signature_default_or_docstring_is_reported() -> None:
    class Narrower(RemoteSession):
        def crosstab(self, data, index, columns=None):  # parameters dropped
            return None

        def hist(self, data, column, bins=20, *, name=None, context="", controls=""):
            return None  # a default changed

        def remove(self, output):
            """Remove it (a docstring of its own)."""

    drift = surface_drift(Narrower)
    assert len(drift) == 3, drift
    assert drift[0].startswith("Narrower.crosstab(self, data, index, columns=None) is not ")
    assert drift[1].startswith("Narrower.hist(") and "bins=20" in drift[1]
    assert drift[2] == "Narrower.remove has a docstring of its own, not SessionSurface.remove's"


def test_a_missing_method_and_a_stand_in_outside_the_surface_are_reported() -> None:
    class Partial(DPSurface):
        def count(self, dataset: str, **options: Any) -> Any:
            return None

    drift = surface_drift(Partial)
    assert (
        "Partial lacks DPSurface.budget" in drift
        and len(drift) == len(surface_methods(DPSurface)) - 1
    )
    assert "count has a docstring" not in " ".join(drift)  # it took the surface's

    class StandIn:  # not derived from the surface at all, compared with it
        def count(self, dataset: str, *, rho: float) -> Any:
            return None

    drift = surface_drift(StandIn, DPSurface)
    assert drift[-2].startswith("StandIn.count(self, dataset: 'str', *, rho: 'float')")
    assert drift[-1] == "StandIn.count has a docstring of its own, not DPSurface.count's"


@pytest.mark.parametrize("loophole", list(LOOPHOLES))
@pytest.mark.parametrize(("implementation", "surface"), IMPLEMENTATIONS)
def test_a_public_name_of_any_kind_outside_the_surface_is_reported(
    implementation, surface, loophole
) -> None:
    body, kind = LOOPHOLES[loophole]
    wider = type("Wider", (implementation,), body())
    assert surface_drift(wider) == [
        f"Wider.extra ({kind}) is public but not on {surface.__name__}: {WHAT_TO_DO}"
    ]


@pytest.mark.parametrize("dynamic", ["__getattr__", "__getattribute__"])
@pytest.mark.parametrize(("implementation", "surface"), IMPLEMENTATIONS)
def test_names_served_by_getattr_are_refused(implementation, surface, dynamic) -> None:
    def serve_anything(self: Any, name: str) -> Any:
        return lambda *arguments, **options: ("called", name)

    wider = type("Wider", (implementation,), {dynamic: serve_anything})
    mixin = type("Anything", (), {dynamic: serve_anything})  # a base counts as the class does
    mixed = type("Mixed", (implementation, mixin), {})
    refusal = "which no surface check can list: write each method out"
    assert surface_drift(wider) == [f"Wider serves names through Wider.{dynamic}, {refusal}"]
    assert surface_drift(mixed) == [f"Mixed serves names through Anything.{dynamic}, {refusal}"]


@pytest.mark.parametrize(("implementation", "surface"), IMPLEMENTATIONS)
def test_a_surface_method_of_another_kind_is_reported(implementation, surface) -> None:
    name = next(iter(surface_methods(surface)))
    replaced = type("Replaced", (implementation,), {name: functools.cache(lambda self: None)})
    assert surface_drift(replaced) == [
        f"Replaced.{name} is a _lru_cache_wrapper, not a method as {surface.__name__}.{name} "
        "is: write it as a plain method"
    ]


@pytest.mark.parametrize("implementation", [DifferentialPrivacy, RemoteDifferentialPrivacy])
def test_a_surface_constant_redefined_is_reported(implementation) -> None:
    assert implementation.QUERIES is DPSurface.QUERIES and "READING" not in vars(implementation)
    replaced = type("Replaced", (implementation,), {"QUERIES": ("count",)})
    assert surface_drift(replaced) == [
        "Replaced.QUERIES replaces DPSurface.QUERIES with a tuple: use the surface's"
    ]


def test_a_surface_attribute_replaced_on_the_class_is_reported() -> None:
    for implementation in (ResearchSession, RemoteSession):
        replaced = type("Replaced", (implementation,), {"notice": property(lambda self: "hi")})
        assert surface_drift(replaced) == [
            "Replaced.notice replaces the attribute SessionSurface.notice with a property: set "
            "it on the session in __init__ instead"
        ]


def test_a_name_one_transport_alone_may_have_is_allowed_there_only() -> None:
    classes = {cls.__qualname__: cls for cls, _ in IMPLEMENTATIONS}
    assert set(TRANSPORT_ONLY) == set(classes)
    for name, allowed in TRANSPORT_ONLY.items():
        for public, reason in allowed.items():
            assert public in vars(classes[name]) and len(reason) > 40, (name, public)
    assert "from_environment" in TRANSPORT_ONLY["RemoteSession"]
    # The same constructor on the local session is drift: the allowance is RemoteSession's own.
    local = type("Local", (ResearchSession,), {"from_environment": classmethod(lambda cls: cls)})
    assert surface_drift(local) == [
        f"Local.from_environment (classmethod) is public but not on SessionSurface: {WHAT_TO_DO}"
    ]


def remote_without_an_api(monkeypatch) -> RemoteSession:
    """A remote session whose API answers only who the token is for."""

    def whoami(self: Any, verb: str, endpoint: str, body: bytes | None = None) -> Any:
        assert (verb, endpoint) == ("GET", "session")
        return {"user": "ana", "project": "P001"}

    monkeypatch.setattr(RemoteSession, "_request", whoami)
    return RemoteSession("http://127.0.0.1:9/services/srs-api/", "token", timeout=1)


def test_a_session_of_either_transport_has_exactly_the_surface_attributes(s, monkeypatch) -> None:
    remote = remote_without_an_api(monkeypatch)
    for session in (s, remote):
        assert surface_drift(session) == [] and surface_drift(session.dp) == []
        assert {name for name in vars(session) if not name.startswith("_")} == set(
            surface_attributes(SessionSurface)
        )
    for name in surface_attributes(SessionSurface):
        if name != "dp":
            assert getattr(s, name) == getattr(remote, name), name
    assert (remote.source, remote.notice, remote.last_output) == ("vault", None, None)
    described = pydoc.render_doc(RemoteSession)
    for name, attribute in surface_attributes(SessionSurface).items():
        assert isinstance(attribute, SurfaceAttribute) and attribute.__doc__ in described, name


def test_an_instance_attribute_outside_the_surface_or_one_missing_is_reported(
    monkeypatch,
) -> None:
    remote = remote_without_an_api(monkeypatch)
    remote.api_url = "http://127.0.0.1:9/"  # as it once was, on this transport only
    del remote.__dict__["notice"]
    assert surface_drift(remote) == [
        "RemoteSession has not set SessionSurface.notice: set it in __init__",
        f"RemoteSession sets api_url on its sessions, which is not on SessionSurface: {WHAT_TO_DO}",
    ]
    with pytest.raises(AttributeError, match="has not set SessionSurface.notice"):
        print(remote.notice)
    remote.dp.budget_left = 0.5
    assert surface_drift(remote.dp) == [
        f"RemoteDifferentialPrivacy sets budget_left on its sessions, which is not on "
        f"DPSurface: {WHAT_TO_DO}"
    ]


# ------------------------------------------------------------------ the remote side sends the surface
class Sent:
    """A remote session whose calls are recorded instead of sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple, dict]] = []
        self.session = RemoteSession.__new__(RemoteSession)
        self.session._call = self.record  # type: ignore[method-assign]
        self.session.dp = RemoteDifferentialPrivacy(self.session)

    def record(self, target: str, method: str, *arguments: Any, **options: Any) -> str:
        self.calls.append((target, method, arguments, options))
        return "answer"


def test_remote_calls_are_bound_to_the_surface_then_sent() -> None:
    sent = Sent()
    s = sent.session
    assert (
        s.crosstab("linked/journeys", "sex", aggfunc=np.mean, values="age", unit=None) == "answer"
    )
    frame = pd.DataFrame({"x": [1]})
    frame.attrs[OUTPUT_ID] = 7
    s.rename(frame, "cases by sex")
    s.submit("Tables", [frame, 8])
    s.output_id(frame)
    s.output_id(424242)  # never answered here: the API checks it is the researcher's own
    s.dp.quantiles("linked/journeys", "age", (0.25, 0.75), rho=0.01)
    s.dp.crosstab("linked/journeys", "sex", "court", rho=0.01)
    assert sent.calls == [
        (
            "session",
            "crosstab",
            ("linked/journeys", "sex"),
            {"aggfunc": "mean", "values": "age", "unit": None},
        ),
        ("session", "rename", (7, "cases by sex"), {}),
        ("session", "submit", ("Tables", [7, 8]), {}),
        ("session", "output_id", (7,), {}),
        ("session", "output_id", (424242,), {}),
        ("dp", "quantiles", ("linked/journeys", "age", [0.25, 0.75]), {"rho": 0.01}),
        ("dp", "crosstab", ("linked/journeys", "sex", "court"), {"rho": 0.01}),
    ]
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        s.hist("linked/journeys", "age", colour="red")
    with pytest.raises(DPDataRefused):
        s.dp.count(frame, rho=0.01)
    assert len(sent.calls) == 7  # neither refused call was sent


def test_forwarded_fills_in_every_surface_method_not_written() -> None:
    @forwarded
    class Echo(DPSurface):
        def _forward(self, name: str, bound: inspect.BoundArguments) -> Any:
            return name, bound.args[1:], bound.kwargs

    assert surface_drift(Echo) == []
    assert Echo().budget() == ("budget", (), {})
    assert Echo().preview("d", "count", by=["sex"]) == ("preview", ("d", "count"), {"by": ["sex"]})


# ------------------------------------------------------------------ (c) no circle, no reach upwards
def imports_above_research(source: str) -> list[str]:
    """The modules above the research layer that ``source`` imports, anywhere in it (inside
    functions too, and by ``importlib.import_module("...")``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # ``from srs import session`` names the module through its package.
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = names if node.module == "srs" else [node.module]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names = [str(node.args[0].value)]
        found += [
            name
            for name in names
            if any(name == above or name.startswith(above + ".") for above in ABOVE_RESEARCH)
        ]
    return found


@pytest.mark.parametrize(
    "module",
    ["session", "practice", "surface", "values", "drafts", "dp"],
)
def test_the_research_modules_never_import_the_hub_or_the_front_door(module: str) -> None:
    source = (ROOT / "srs" / "research" / f"{module}.py").read_text(encoding="utf-8")
    assert imports_above_research(source) == []


def test_an_import_upwards_is_found_even_inside_a_function() -> None:
    planted = (
        "import os\n"
        "def late():\n"
        "    from srs.hub.client import RemoteSession\n"
        "    import srs.session\n"
        "    from srs import session\n"
        "    importlib.import_module('srs.hub.wire')\n"
    )
    assert imports_above_research(planted) == [
        "srs.hub.client",
        "srs.session",
        "srs.session",
        "srs.hub.wire",
    ]
    assert imports_above_research("from srs.sessions_of_old import x\nimport srs.hubcap") == []


@pytest.mark.parametrize("module", ["srs.research.session", "srs.research.practice"])
def test_importing_the_research_session_loads_no_hub(module: str) -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m.startswith(('srs.hub', 'srs.session'))))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr


def test_the_front_door_keeps_its_names() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import srs; from srs.session import ResearchSession, SessionError, session; "
            "import srs.research.session as local; "
            "assert callable(srs.session) and ResearchSession is local.ResearchSession; "
            "assert SessionError is local.SessionError and session.__module__ == 'srs.session'",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr

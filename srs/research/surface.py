"""The researcher session's surface: the one list of its methods, their signatures and docstrings.

``SessionSurface`` (``s.crosstab``, ``s.submit``...) and ``DPSurface`` (``s.dp.count``...) declare
every call a researcher makes, each an abstract method whose signature and docstring are the
documentation (``help(s.crosstab)``). Two transports implement them:

- ``srs.research.session.ResearchSession`` and ``srs.research.dp.DifferentialPrivacy`` run each
  call here, against the registry and the vault;
- ``srs.hub.client.RemoteSession`` and ``RemoteDifferentialPrivacy`` are derived from the surface
  (``forwarded``): each method binds its call to the surface's signature and sends it to the
  environment API, which allows exactly the surface's methods (``surface_methods``) and binds
  the arguments to the same signatures.

The session's surface also declares the attributes every session has (``s.user``, ``s.project``,
``s.source``, ``s.notice``, ``s.last_output``, ``s.dp``: ``SurfaceAttribute``), so a notebook
that reads one works on either transport. An implementation's method without a docstring takes
the surface's; ``surface_drift`` lists how a class (or a session itself) differs from its surface:
a method missing, a parameter's name, kind or default, a docstring, and any public name of any
kind (method, property, class or static method, cached or partial method, constant, instance
attribute) the surface does not declare, unless ``TRANSPORT_ONLY`` lists it with the reason one
transport alone has it; a ``__getattr__`` is refused, as the names it serves cannot be listed.
The tests hold the drift empty for all four classes and for a session of each transport.

>>> sorted(surface_methods(DPSurface))[:3]
['budget', 'count', 'crosstab']
"""

from __future__ import annotations

import abc
import inspect
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import pandas as pd

    from srs.governance.budget import BudgetState
    from srs.research.values import OutputSummary, RequestStatus
    from srs.research.versions import DatasetVersion

# Set by the hub's spawner: the environment API a kernel in the hub works through.
API_URL_ENV = "SRS_API_URL"
# Where a session's data come from (``srs.session(source=...)``): the project's vault data, the
# deployment's stored synthetic replica of them, or the open export in a practice deployment.
VAULT, SYNTHETIC, OPEN = "vault", "synthetic", "open"
SOURCES = (VAULT, SYNTHETIC, OPEN)
# ``unit="auto"``: count persons (person_key) when the data has them, else rows.
AUTO = "auto"
# A frame a session returns or reads names its output and its dataset in ``attrs``.
OUTPUT_ID = "srs_output_id"
DATASET = "srs_dataset"
ENGINES = ("pandas", "polars")
# Regressions offered, by their statsmodels formula API names.
MODELS = ("ols", "logit", "probit", "poisson")
# The DP queries of ``disclosure.dp`` a session offers, by name (``s.dp.preview`` takes them too).
DP_QUERIES = ("count", "sum_of", "mean", "variance", "quantiles", "median", "histogram", "crosstab")
# Public methods of a session that are not calls to the environment: each side closes its own.
LIFECYCLE = frozenset({"close"})
# The public names one implementation has and the other transport's must not, by the class that
# defines them, each with the reason. Any other public name not on the surface is drift
# (``surface_drift``): declare it on the surface, or make it private (``_name``).
TRANSPORT_ONLY: dict[str, dict[str, str]] = {
    "ResearchSession": {},
    "DifferentialPrivacy": {},
    "RemoteSession": {
        "from_environment": "the constructor srs.session() calls inside the hub: it opens the "
        "session the spawner set up (SRS_API_URL, SRS_SESSION_TOKEN); a local session is opened "
        "by srs.research.session.open_session from the registry, which a kernel cannot read",
    },
    "RemoteDifferentialPrivacy": {},
}
# Methods through which a class serves names nobody wrote out, so no list of its names is whole.
DYNAMIC_LOOKUP = ("__getattr__", "__getattribute__")

SurfaceClass = TypeVar("SurfaceClass", bound=type)


class Surface(abc.ABC):  # noqa: B024 (its subclasses declare the methods)
    """The base of the two surfaces: a subclass's method without a docstring takes the one its
    surface declares, so ``help()`` reads the same on every transport."""

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__(**options)
        surface = surface_of(cls)
        if surface is cls:
            return
        for name, declared in surface_methods(surface).items():
            implemented = vars(cls).get(name)
            if inspect.isfunction(implemented) and implemented.__doc__ is None:
                implemented.__doc__ = declared.__doc__


def surface_of(cls: type) -> type:
    """The surface ``cls`` implements (``SessionSurface`` or ``DPSurface``): the class of its
    ancestry that derives directly from ``Surface``."""
    for ancestor in cls.__mro__:
        if Surface in ancestor.__bases__:
            return ancestor
    raise TypeError(f"{cls.__qualname__} implements no session surface")


def surface_methods(surface: type) -> dict[str, Callable[..., Any]]:
    """The methods ``surface`` declares, by name, in the order written: what a researcher calls
    and the environment API allows.

    >>> "crosstab" in surface_methods(SessionSurface), "close" in surface_methods(SessionSurface)
    (True, False)
    """
    return {
        name: value
        for name, value in vars(surface).items()
        if inspect.isfunction(value) and getattr(value, "__isabstractmethod__", False)
    }


def call_signature(surface: type, name: str) -> inspect.Signature:
    """The signature of the surface's method ``name`` as a caller sees it (without ``self``):
    what the environment API binds a request's arguments to."""
    signature = inspect.signature(surface_methods(surface)[name])
    return signature.replace(parameters=list(signature.parameters.values())[1:])


class SurfaceAttribute:
    """An attribute a surface declares (``s.user``): every implementation sets it on its
    instances, in ``__init__``; ``help()`` shows its docstring on either transport.

    >>> class Named(Surface):
    ...     user = SurfaceAttribute("Who works.")
    >>> class Here(Named):
    ...     def __init__(self):
    ...         self.user = "ana"
    >>> Here().user, vars(Here())
    ('ana', {'user': 'ana'})
    """

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""
        self.surface = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.surface = name, owner.__name__

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        try:
            return instance.__dict__[self.name]
        except KeyError:
            raise AttributeError(
                f"{type(instance).__name__} has not set {self.surface}.{self.name}: every "
                "implementation of the surface sets it in __init__"
            ) from None

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.name] = value

    def __repr__(self) -> str:
        return f"<attribute {self.surface}.{self.name}>"


def surface_attributes(surface: type) -> dict[str, SurfaceAttribute]:
    """The attributes ``surface`` declares, by name: what every session of it has.

    >>> list(surface_attributes(SessionSurface))
    ['user', 'project', 'source', 'notice', 'last_output', 'dp']
    """
    return {
        name: value for name, value in vars(surface).items() if isinstance(value, SurfaceAttribute)
    }


def _public_names(surface: type) -> set[str]:
    return {name for name in vars(surface) if not name.startswith("_")}


def _defined(implementation: type, surface: type) -> dict[str, tuple[type, Any]]:
    """Every public name ``implementation`` defines below ``surface`` (in its own class or any
    base that is not the surface, ``Surface``, ``abc.ABC`` or ``object``), whatever its kind,
    with the class whose ``__dict__`` gives it."""
    shared = set(surface.__mro__) | {object}
    names = {
        name
        for ancestor in implementation.__mro__
        if ancestor not in shared
        for name in vars(ancestor)
        if not name.startswith("_")
    }
    found = {}
    for name in sorted(names):
        owner = next(ancestor for ancestor in implementation.__mro__ if name in vars(ancestor))
        if owner not in shared:
            found[name] = (owner, vars(owner)[name])
    return found


def _allowed_one_sided(owner: type) -> dict[str, str]:
    return TRANSPORT_ONLY.get(owner.__qualname__, {})


def _kind(value: Any) -> str:
    if isinstance(value, SurfaceAttribute):
        return "surface attribute"
    return "method" if inspect.isfunction(value) else type(value).__name__


def _parameters(function: Callable[..., Any]) -> list[tuple[str, str, Any]]:
    return [
        (p.name, p.kind.description, p.default)
        for p in list(inspect.signature(function).parameters.values())[1:]
    ]


def surface_drift(implementation: type | object, surface: type | None = None) -> list[str]:
    """How ``implementation`` (a class, or a session: then its instance attributes too) differs
    from ``surface`` (by default the one it derives from): methods it lacks, parameters (name,
    kind, default) and docstrings that are not the surface's, and every public name of any kind
    the surface does not declare (a method, property, class or static method, cached or partial
    method, constant or instance attribute) that ``TRANSPORT_ONLY`` does not list for the class
    defining it; a ``__getattr__`` or ``__getattribute__``, whose names no list can hold; a
    surface attribute a session has not set, or a class replaces. Empty when it offers exactly
    the surface.

    >>> class Partial(DPSurface):
    ...     def count(self, dataset, **options): ...
    >>> surface_drift(Partial)[0]
    'Partial lacks DPSurface.sum_of'
    """
    instance = None if isinstance(implementation, type) else implementation
    cls = type(implementation) if instance is not None else implementation
    surface = surface or surface_of(cls)
    declared = surface_methods(surface)
    attributes = surface_attributes(surface)
    owner, of = cls.__name__, surface.__name__
    defined = _defined(cls, surface)
    drift = [
        f"{owner} lacks {of}.{name}"
        for name in declared
        if name not in defined or getattr(defined[name][1], "__isabstractmethod__", False)
    ]
    drift += [
        f"{owner} serves names through {ancestor.__name__}.{dynamic}, which no surface check can "
        f"list: write each method out"
        for ancestor in cls.__mro__
        if ancestor is not object
        for dynamic in DYNAMIC_LOOKUP
        if dynamic in vars(ancestor)
    ]
    for name, (definer, value) in defined.items():
        kind = _kind(value)
        if name in declared:
            if kind != "method":
                drift.append(
                    f"{owner}.{name} is a {kind}, not a method as {of}.{name} is: write it as a "
                    "plain method"
                )
        elif name in attributes:
            drift.append(
                f"{owner}.{name} replaces the attribute {of}.{name} with a {kind}: set it on "
                "the session in __init__ instead"
            )
        elif name in _public_names(surface):
            drift.append(f"{owner}.{name} replaces {of}.{name} with a {kind}: use the surface's")
        elif name in LIFECYCLE and kind == "method":
            continue
        elif name not in _allowed_one_sided(definer):
            drift.append(
                f"{owner}.{name} ({kind}) is public but not on {of}: declare it there, or make "
                "it private (a name one transport alone must have goes in TRANSPORT_ONLY, with "
                "why)"
            )
    for name, expected in declared.items():
        method = defined.get(name, (None, None))[1]
        if not inspect.isfunction(method) or getattr(method, "__isabstractmethod__", False):
            continue
        if _parameters(method) != _parameters(expected):
            drift.append(
                f"{owner}.{name}{inspect.signature(method)} is not {of}.{name}"
                f"{inspect.signature(expected)}"
            )
        if method.__doc__ != expected.__doc__:
            drift.append(f"{owner}.{name} has a docstring of its own, not {of}.{name}'s")
    if instance is not None:
        drift += _instance_drift(instance, cls, surface, attributes)
    return drift


def _instance_drift(
    instance: object, cls: type, surface: type, attributes: dict[str, SurfaceAttribute]
) -> list[str]:
    """How a session's own attributes (``vars(s)``) differ from the surface's attributes."""
    owner, of = cls.__name__, surface.__name__
    present = {name for name in getattr(instance, "__dict__", {}) if not name.startswith("_")}
    allowed = {name for ancestor in cls.__mro__ for name in _allowed_one_sided(ancestor)}
    drift = [
        f"{owner} has not set {of}.{name}: set it in __init__"
        for name in attributes
        if name not in present
    ]
    drift += [
        f"{owner} sets {name} on its sessions, which is not on {of}: declare it there, or make "
        "it private (a name one transport alone must have goes in TRANSPORT_ONLY, with why)"
        for name in sorted(present - set(attributes) - allowed)
    ]
    return drift


def _forwarding(surface: type, owner: type, name: str) -> Callable[..., Any]:
    declared = surface_methods(surface)[name]
    signature = inspect.signature(declared)

    def method(self: Any, *arguments: Any, **options: Any) -> Any:
        return self._forward(name, signature.bind(self, *arguments, **options))

    method.__name__ = name
    method.__qualname__ = f"{owner.__qualname__}.{name}"
    method.__module__ = owner.__module__
    method.__doc__ = declared.__doc__
    method.__signature__ = signature  # help() and inspect show the surface's parameters
    return method


def forwarded(cls: SurfaceClass) -> SurfaceClass:
    """Class decorator: every surface method ``cls`` does not write itself becomes one that binds
    its call to the surface's signature (a wrong argument is refused as Python refuses it) and
    hands the name and the ``inspect.BoundArguments`` to ``cls._forward``: the transport.

    >>> @forwarded
    ... class Echo(DPSurface):
    ...     def _forward(self, name, bound):
    ...         return name, bound.args[1:], bound.kwargs
    >>> Echo().count("linked/journeys", by=["sex"], rho=0.01)
    ('count', ('linked/journeys',), {'by': ['sex'], 'rho': 0.01})
    """
    surface = surface_of(cls)
    for name in surface_methods(surface):
        if name not in vars(cls):
            setattr(cls, name, _forwarding(surface, cls, name))
    abc.update_abstractmethods(cls)
    return cls


# ------------------------------------------------------------------ the session's calls
class SessionSurface(Surface):
    """What a researcher calls on a session (``s = srs.session()``): data in through the access
    check, outputs out through disclosure checks. Implemented by
    ``srs.research.session.ResearchSession`` and, through the environment API, by
    ``srs.hub.client.RemoteSession``."""

    user = SurfaceAttribute("The researcher working in the session (their username).")
    project = SurfaceAttribute(
        "The code of the project the session works in (``P001``); it acts in no other."
    )
    source = SurfaceAttribute(
        "Where the session's data come from: ``vault`` (the project's data), ``synthetic`` (the "
        "deployment's stored replica of them) or ``open`` (a practice session on the open "
        "synthetic data); a session in the hub reads the ``vault``."
    )
    notice = SurfaceAttribute(
        "What to know about the data before using any result (on synthetic data, that it is "
        "synthetic), printed when the session opens; None when there is nothing to say (the "
        "project's vault data)."
    )
    last_output = SurfaceAttribute(
        "The ``OutputSummary`` of the output the latest analysis recorded (None before the "
        "first); its ``id`` is also in the returned frame's ``attrs['srs_output_id']``."
    )
    dp = SurfaceAttribute(
        "The differentially private queries on the project's datasets (``DPSurface``: "
        "``s.dp.count``...), paid from the project's privacy budget."
    )

    @abc.abstractmethod
    def datasets(self) -> list[str]:
        """Names of the datasets granted to the project (revoked grants left out); on the
        ``synthetic`` source, the linked datasets the deployment holds a replica of."""

    @abc.abstractmethod
    def dataset(self, name: str, engine: str = "pandas", *, version: int | None = None) -> Any:
        """Read a granted dataset (newest version unless ``version``) as a pandas or polars frame.

        The read is access-checked and audited; a dataset the project holds no grant for (or
        one of another project) raises ``AccessDenied``, a version not stored ``VaultError`` and
        a destroyed one ``VaultShredded`` (``s.versions(name)`` lists them). The session notes
        the version read: every output it records afterwards names it (``datasets_used``).

        >>> journeys = s.dataset("linked/journeys")                    # doctest: +SKIP
        >>> persons = s.dataset("linked/persons", engine="polars")     # doctest: +SKIP
        """

    @abc.abstractmethod
    def versions(self, name: str) -> list[DatasetVersion]:
        """The versions of a granted dataset the project may read, oldest first, each a
        ``DatasetVersion``: its number, rows, when it was stored, the deliveries behind it
        (source and period), the versions it was derived from, what changed against the one
        before (``change_summary``) and whether it was destroyed (``shredded``: its agreement
        ended; it can no longer be read). Pin one with ``s.dataset(name, version=N)``: every
        output records the versions its session read.

        A dataset the project holds no grant for raises ``AccessDenied`` (audited).

        >>> for v in s.versions("linked/reoffending"):                 # doctest: +SKIP
        ...     print(v)
        linked/reoffending@1  5210 rows  stored 2026-10-02  from courts 2026-09; police 2026-09 ...
        >>> frame = s.dataset("linked/reoffending", version=1)           # doctest: +SKIP
        """

    @abc.abstractmethod
    def dictionary_of(self, data: Any) -> list[dict[str, Any]] | None:
        """The data dictionary behind ``data`` (a dataset name or a frame read by this session)."""

    @abc.abstractmethod
    def crosstab(
        self,
        data: Any,
        index: str | Sequence[str],
        columns: str | Sequence[str] | None = None,
        values: str | None = None,
        aggfunc: Any = "count",
        *,
        unit: str | None = AUTO,
        name: str | None = None,
        context: str = "",
        controls: str = "",
    ) -> pd.DataFrame:
        """A checked, protected cross-tabulation, like ``pandas.crosstab`` on column names.

        Counts (or, with ``values`` and ``aggfunc``, sums, means, medians, ...) by up to three
        keys. With ``unit`` (default: ``person_key`` when the data has it) each person counts
        once per cell, as the threshold rule intends, and a person's values in a cell are added
        up before any statistic (a mean is then a mean per person); ``unit=None`` counts rows.
        Count and sum tables come back with
        margins (``Total``), failing cells and their complements hidden and counts rounded as
        the active SDC profile asks; other statistics have failing cells hidden.

        >>> s.crosstab(journeys, "sex", "court", name="people by sex and court")  # doctest: +SKIP
        court   crown  magistrates  Total
        sex
        F         ...
        """

    @abc.abstractmethod
    def pivot_table(
        self,
        data: Any,
        values: str,
        index: str | Sequence[str],
        columns: str | Sequence[str] | None = None,
        aggfunc: Any = "mean",
        *,
        unit: str | None = AUTO,
        name: str | None = None,
        context: str = "",
        controls: str = "",
    ) -> pd.DataFrame:
        """A checked, protected pivot table of ``values`` by ``index`` (and ``columns``), like
        ``pandas.pivot_table``; ``aggfunc`` is count, sum, mean, median, max, min or std.

        >>> s.pivot_table(journeys, "sentence_months", "sentence_type", aggfunc="median")  # doctest: +SKIP
        """

    @abc.abstractmethod
    def ols(self, formula: str, data: Any, **options: Any) -> Any:
        """Ordinary least squares with a statsmodels formula (``"y ~ x + C(group)"``), checked.

        Returns the fitted statsmodels results; the output holds the estimates (coefficients,
        standard errors, p-values), observations and residual degrees of freedom, as a CSV and
        the text summary. ``name``, ``context`` and ``controls`` may be given; of ``fit``'s own
        options, ``cov_type`` (``"nonrobust"``, ``"HC0"``..``"HC3"``) and, for ``logit``,
        ``probit`` and ``poisson``, ``method`` and ``maxiter``: any other is refused, and so is a
        fit that did not converge (nothing is recorded).

        >>> results = s.ols("sentence_months ~ age_at_offence + C(sex)", journeys)  # doctest: +SKIP
        """

    @abc.abstractmethod
    def logit(self, formula: str, data: Any, **options: Any) -> Any:
        """Logistic regression with a statsmodels formula, checked (see ``ols``)."""

    @abc.abstractmethod
    def probit(self, formula: str, data: Any, **options: Any) -> Any:
        """Probit regression with a statsmodels formula, checked (see ``ols``)."""

    @abc.abstractmethod
    def poisson(self, formula: str, data: Any, **options: Any) -> Any:
        """Poisson regression with a statsmodels formula, checked (see ``ols``)."""

    @abc.abstractmethod
    def survival(
        self,
        data: Any,
        duration: str,
        event: str,
        *,
        name: str | None = None,
        context: str = "",
        controls: str = "",
    ) -> pd.DataFrame:
        """A Kaplan-Meier table (time, at risk, events, censored, survival), cut where fewer
        than the profile's minimum remain at risk, counts rounded.

        >>> s.survival(reoffending, "days_to_reoffence", "reoffended")  # doctest: +SKIP
        """

    @abc.abstractmethod
    def hist(
        self,
        data: Any,
        column: str,
        bins: int | list[float] = 10,
        *,
        name: str | None = None,
        context: str = "",
        controls: str = "",
    ) -> tuple[pd.DataFrame, Any]:
        """A histogram drawn from its safe counts: returns the counts (bin, lower, upper, count)
        and the matplotlib figure; the output holds both, as CSV and PNG.

        Give ``bins`` as explicit edges to avoid showing the data's minimum and maximum (outer
        edges taken from the data are for a checker to review).

        >>> counts, figure = s.hist(journeys, "age_at_offence", bins=[10, 20, 30, 40, 60, 90])  # doctest: +SKIP
        """

    @abc.abstractmethod
    def custom_output(
        self,
        path: str | os.PathLike,
        justification: str,
        name: str | None = None,
        context: str = "",
        controls: str = "",
    ) -> OutputSummary:
        """Put any other file up for release, saying why it is safe; a checker always reads it.

        The file gate still applies: a file of a type that may not leave, too large, or with
        identifier columns (``person_key``...) raises ``OutputError``. A CSV is read for what a
        checker would send back (unrounded or small counts, percentages without safe
        denominators; ``output_checking.readiness``), as are missing ``context`` and
        ``controls``; a file sent again under the name of an earlier custom output says what
        changed since. The returned summary's ``findings`` (and ``s.outputs()``) list them.

        >>> s.custom_output("flow.png", "Diagram of case flow; no counts below 100")  # doctest: +SKIP
        """

    @abc.abstractmethod
    def outputs(self) -> pd.DataFrame:
        """This researcher's outputs in the project: name, kind, status, checks, files and
        notes (why cells are hidden; what a checker will ask about a custom output)."""

    @abc.abstractmethod
    def output_id(self, output: Any) -> int:
        """The id of ``output``: an id, a name, an ``OutputSummary`` or a returned frame.

        Only your own outputs in this session's project are found: the id of any other output
        raises ``AccessDenied`` (audited).
        """

    @abc.abstractmethod
    def rename(self, output: Any, name: str) -> OutputSummary:
        """Give a draft output a name a checker will recognise (files keep their names)."""

    @abc.abstractmethod
    def describe(
        self, output: Any, *, context: str | None = None, controls: str | None = None
    ) -> OutputSummary:
        """Say what an output is (``context``) and which disclosure controls you applied
        (``controls``): checkers read both."""

    @abc.abstractmethod
    def comment(self, output: Any, text: str) -> OutputSummary:
        """Add a note to your output for the checkers."""

    @abc.abstractmethod
    def remove(self, output: Any) -> OutputSummary:
        """Leave a draft out of what you submit (it stays on record, marked removed)."""

    @abc.abstractmethod
    def request_exception(self, output: Any, justification: str) -> OutputSummary:
        """Ask the checkers to release an output although an automatic check failed, saying
        why it is safe and why it is needed."""

    @abc.abstractmethod
    def submit(self, title: str, outputs: Sequence[Any] | None = None) -> int:
        """Send your drafts (or just ``outputs``) to the checkers' queue as one release
        request; returns its id. Removed outputs are never sent, nor any output that is not
        your own in this session's project (``AccessDenied``, audited).

        >>> request_id = s.submit("Attrition tables for the 2026 report")  # doctest: +SKIP
        """

    @abc.abstractmethod
    def resubmit(self, request_id: int) -> int:
        """Send a request the checkers returned for changes back to them, after you have
        revised its outputs (``rename``, ``describe``, ``remove``, ``request_exception``); a new
        round of reviews starts. Returns the request id. Only your own requests in this
        session's project can be resubmitted from it.

        >>> s.request_status(7).status                                   # doctest: +SKIP
        'changes_requested'
        >>> s.resubmit(7)                                                # doctest: +SKIP
        """

    @abc.abstractmethod
    def request_status(self, request_id: int) -> RequestStatus:
        """Where a release request stands: its status, its outputs' statuses, the comments
        meant for you and its history. Only your own requests in this session's project are
        shown; any other id raises ``AccessDenied`` (audited)."""


# ------------------------------------------------------------------ s.dp
class DPSurface(Surface):
    """``s.dp``: differentially private queries on the project's datasets, paid from the
    project's privacy budget.

    Each method mirrors the query of the same name in ``disclosure.dp``, with the name of a
    dataset granted to the project first (``version=`` for an older version than the newest),
    then ``rho=`` or ``accuracy=``. The environment reads the dataset itself, through the access
    check, and never takes a frame: choose the rows with ``where=`` (conditions that must all
    hold) and derive columns with ``derive=`` (bands of a number, years of a date), as data,
    not code (``disclosure.dp.selection``). The data dictionary and derived bands make group
    keys public. Each query spends, releases and records a ``dp_result`` output naming the
    dataset, the version read and the query, and returns the released table (estimate, lower,
    upper). The privacy unit (the person's column, e.g. ``person_key``) and the rows each person
    may contribute are the policy's for the dataset; an option choosing them (``identifier=``,
    ``max_rows_per_person=``) is refused (``PrivacyUnitFixed``).

    >>> s.dp.count("linked/journeys", by=["sex"], rho=0.01)          # doctest: +SKIP
    >>> s.dp.count(
    ...     "linked/journeys",
    ...     by=["age_band"],
    ...     where=[("sex", "==", "F"), ("court", "in", ["crown", "magistrates"])],
    ...     derive={"age_band": ("band", "age_at_offence", [18, 25, 35, 50])},
    ...     rho=0.01,
    ... )                                                             # doctest: +SKIP
    >>> s.dp.preview("linked/journeys", "mean", "sentence_months", bounds=(0, 120), rho=0.01)  # doctest: +SKIP
    >>> s.dp.budget().remaining_rho                                   # doctest: +SKIP

    ``s.dp.synthetic(...)`` makes a DP synthetic replica of chosen columns the same way.
    """

    QUERIES = DP_QUERIES
    # Options of every query that say what to read and how to pay, not what to compute.
    READING = ("version", "where", "derive")

    @abc.abstractmethod
    def count(self, dataset: str, **options: Any) -> pd.DataFrame:
        """Number of rows of ``dataset``, overall or ``by`` groups (options of
        ``disclosure.dp.count``, and ``where``, ``derive``, ``version``, ``rho`` or
        ``accuracy``, ``name``, ``context``)."""

    @abc.abstractmethod
    def sum_of(self, dataset: str, column: str, **options: Any) -> pd.DataFrame:
        """Sum of ``column`` clipped to ``bounds`` (options of ``disclosure.dp.sum_of``)."""

    @abc.abstractmethod
    def mean(self, dataset: str, column: str, **options: Any) -> pd.DataFrame:
        """Mean of ``column`` (options of ``disclosure.dp.mean``: bounds, by, keys, decimals)."""

    @abc.abstractmethod
    def variance(self, dataset: str, column: str, **options: Any) -> pd.DataFrame:
        """Variance of ``column`` (options of ``disclosure.dp.variance``)."""

    @abc.abstractmethod
    def quantiles(
        self, dataset: str, column: str, qs: Sequence[float], **options: Any
    ) -> pd.DataFrame:
        """Quantiles ``qs`` of ``column`` (options of ``disclosure.dp.quantiles``)."""

    @abc.abstractmethod
    def median(self, dataset: str, column: str, **options: Any) -> pd.DataFrame:
        """Median of ``column`` (options of ``disclosure.dp.median``)."""

    @abc.abstractmethod
    def histogram(
        self, dataset: str, column: str, edges: Sequence[float], **options: Any
    ) -> pd.DataFrame:
        """Counts of ``column`` between public ``edges`` (options of ``disclosure.dp.histogram``)."""

    @abc.abstractmethod
    def crosstab(self, dataset: str, *columns: str, **options: Any) -> pd.DataFrame:
        """A 1-3 way table of counts of ``columns`` (options of ``disclosure.dp.crosstab``)."""

    @abc.abstractmethod
    def synthetic(
        self,
        dataset: str,
        columns: Sequence[str],
        *,
        rows: int,
        rho: float,
        algorithm: str = "mst",
        bins: int | None = None,
        seed: int | None = None,
        version: int | None = None,
        where: Sequence[Any] | None = None,
        derive: dict[str, Any] | None = None,
        name: str | None = None,
        context: str = "",
    ) -> pd.DataFrame:
        """A differentially private synthetic replica of ``columns`` of ``dataset`` (its rows
        chosen by ``where``, as for a query): OpenDP's MST (or AIM) at a person-level unit, paid
        from the project's budget and recorded as a ``dp_result`` output (its rows as CSV) for
        output checking. Categories come from the data dictionary (public), numbers from public
        bounds; nothing is spent if anything is refused.

        >>> s.dp.synthetic("linked/journeys", ["sex", "court", "remanded"], rows=2000, rho=0.05)  # doctest: +SKIP
        """

    @abc.abstractmethod
    def preview(
        self,
        dataset: str,
        query: Any,
        *arguments: Any,
        rho: float | None = None,
        accuracy: float | None = None,
        **options: Any,
    ) -> Any:
        """The cost and expected error of a query on ``dataset``, spending nothing: ``query``
        is a ``disclosure.dp`` query or the name of one, followed by its arguments (and
        ``where``, ``derive``, ``version`` as for the query itself).

        >>> print(s.dp.preview("linked/journeys", "count", by=["sex"], rho=0.01))  # doctest: +SKIP
        count of rows by sex: costs rho 0.01 (epsilon ... at delta 1e-07); 95% error count +/- ...
        """

    @abc.abstractmethod
    def budget(self) -> BudgetState:
        """Where the project's privacy budget stands (total, spent, remaining, by researcher)."""

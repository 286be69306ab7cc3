"""The researcher session: ``import srs; s = srs.session()``, how an accredited researcher works.

A session knows who is working and in which project (explicit arguments, else ``SRS_USER``,
``SRS_PROJECT`` and ``SRS_HOME``, which the JupyterHub spawner sets). It reads the project's
granted datasets through the access check, and its analysis functions (``crosstab``,
``pivot_table``, ``ols``, ``logit``, ``probit``, ``poisson``, ``survival``, ``hist``, the
differentially private ``s.dp.*`` and ``custom_output``) work like the pandas and statsmodels
ones but give back only the protected result: each call records a draft output with its
disclosure evidence and its files in open formats, for a checker to review once submitted.
Outside the hub the session reads the vault with the deployment's key; inside it, the hub's
data service takes that place behind the same access decision and audit event.

>>> import srs
>>> s = srs.session(user="ana", project="P001")                        # doctest: +SKIP
>>> journeys = s.dataset("linked/journeys")                             # doctest: +SKIP
>>> s.crosstab(journeys, "sex", "court", name="cases by sex and court")  # doctest: +SKIP
>>> s.dp.count("linked/journeys", by=["sex"], rho=0.01)                 # doctest: +SKIP
>>> s.submit("Attrition tables for the 2026 report")                    # doctest: +SKIP
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import make_url

from disclosure.evidence import FAIL, OK, REVIEW, STATUS_RANK, json_safe
from disclosure.figures import check_histogram
from disclosure.models import check_regression, check_survival, safe_survival_table
from disclosure.policy import SDCProfile
from disclosure.protection import (
    suppress_primary,
)
from disclosure.publication import publishable_table, round_table
from output_checking.hidden_cells import hidden_cells
from output_checking.outputs import (
    REMOVED,
    OutputError,
    comment_on_own_output,
    describe_output,
    file_gate_rules,
    file_stem,
    get_output,
    record_output,
    remove_output,
    rename_output,
    request_exception,
    table_content,
)
from output_checking.readiness import (
    ReadinessFinding,
    changes_since,
    description_findings,
    file_findings,
    readiness_check,
    readiness_findings,
    refreshed,
)
from output_checking.summaries import CSVSummaryError, summarise_csv
from output_checking.workflow import create_request, request_target, request_view, submit_request
from srs.errors import SRSError
from srs.governance.access import AccessDenied, authorise
from srs.governance.audit import record_event, use_field_bound
from srs.governance.budget import BudgetState, SpendReceipt, budget_state
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet, load_policies
from srs.governance.registry import Registry, open_registry
from srs.governance.registry.models import Grant, Output, Project, ReleaseRequest
from srs.vault.store import Vault

if TYPE_CHECKING:
    from srs.hub.client import RemoteSession

USER_ENV = "SRS_USER"
PROJECT_ENV = "SRS_PROJECT"
# Set by the hub's spawner: the environment API a kernel in the hub works through.
API_URL_ENV = "SRS_API_URL"
# Where a session's data come from (``srs.session(source=...)``): the project's vault data, the
# deployment's stored synthetic replica of them, or the open export in a practice deployment.
VAULT, SYNTHETIC, OPEN = "vault", "synthetic", "open"
SOURCES = (VAULT, SYNTHETIC, OPEN)
# Put at the head of the context of every output made on synthetic data, so checkers see it.
SYNTHETIC_CONTEXT = {
    SYNTHETIC: "[computed on SYNTHETIC data: the deployment's replica synthetic/*, not the real "
    "linked data]",
    OPEN: "[computed on SYNTHETIC open data in a practice session, not the real linked data]",
}
SYNTHETIC_SOURCE_NOTICE = (
    "SYNTHETIC DATA: this session reads the deployment's synthetic replica (synthetic/*) in "
    "place of each linked dataset; every output it records is marked as computed on synthetic data."
)
PERSON_KEY = "person_key"
# ``unit="auto"``: count persons (person_key) when the data has them, else rows.
AUTO = "auto"
OUTPUT_ID = "srs_output_id"
DATASET = "srs_dataset"
ENGINES = ("pandas", "polars")
MINIMUM_JUSTIFICATION = 20
# Regression estimates, standard errors and p-values are released to this many significant
# figures: a presentation precision (what journals print), not a disclosure threshold, so it is
# a constant here rather than a policy value.
ESTIMATE_SIGNIFICANT_FIGURES = 4
# aggfunc names (and numpy/builtin function names) -> the statistic the table check knows.
AGGFUNCS = {
    "count": "count",
    "size": "count",
    "len": "count",
    "sum": "sum",
    "mean": "mean",
    "average": "mean",
    "median": "median",
    "max": "max",
    "amax": "max",
    "min": "min",
    "amin": "min",
    "std": "std",
}
# Regressions offered, by their statsmodels formula API names.
MODELS = ("ols", "logit", "probit", "poisson")
# What a session may act on by id, only when it is the researcher's own in the session's
# project: what a refusal calls it, and the audit detail naming the id asked for. A refused
# request is audited with the request as target, as every step of a request is (its history).
OWN_RECORDS = {Output: ("output", "output_id"), ReleaseRequest: ("release request", "request_id")}
# Ids are database integers; anything outside this range names nothing.
LARGEST_ID = 2**63 - 1


class SessionError(SRSError):
    """The session cannot do what was asked: no user or project, unknown output, bad input."""


# ------------------------------------------------------------------ what a researcher sees
@dataclass(frozen=True)
class OutputSummary:
    """One output as its author sees it: id, name, kind, status, its checks' verdict and
    ``notes``: why each hidden cell is hidden ("F / youth: suppressed: fewer than 10") and, for
    a custom output, what a checker will ask about before release."""

    id: int
    name: str
    kind: str
    status: str
    checks: str
    files: tuple[str, ...] = ()
    request_id: int | None = None
    exception_requested: bool = False
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, output: Output) -> OutputSummary:
        """The summary of a registry output (read inside its database session)."""
        checks = refreshed(output.checks or [], output.context, output.controls)
        notes = [f"{cell.where}: {cell.note}" for cell in hidden_cells(checks)]
        notes += [finding.message for finding in readiness_findings(checks)]
        return cls(
            id=output.id,
            name=output.name,
            kind=output.kind,
            status=output.status,
            checks=overall_status(checks),
            files=tuple(f.name for f in output.files),
            request_id=output.request_id,
            exception_requested=output.exception_justification is not None,
            notes=tuple(notes),
        )

    def __str__(self) -> str:
        line = f"output #{self.id} {self.name!r} ({self.kind}, {self.status}, checks {self.checks})"
        return "\n".join([line, *(f"    - {note}" for note in self.notes)])


@dataclass(frozen=True)
class RequestStatus:
    """Where a release request stands, as its author may see it."""

    request_id: int
    title: str
    status: str
    review_round: int
    outputs: tuple[OutputSummary, ...]
    comments: tuple[tuple[str, int | None, str], ...]  # (author, output id or None, text)
    history: tuple[str, ...]

    def __str__(self) -> str:
        lines = [f"request #{self.request_id} {self.title!r}: {self.status}"]
        lines += [f"  {output}" for output in self.outputs]
        lines += [f"  {author} on #{o}: {text}" for author, o, text in self.comments]
        return "\n".join(lines)


def overall_status(checks: list[dict[str, Any]]) -> str:
    """The worst status of an output's checks (``ok`` when it has none)."""
    return max(
        (c.get("status", OK) for c in checks), key=lambda s: STATUS_RANK.get(s, 0), default=OK
    )


# ------------------------------------------------------------------ analyses, as pure functions
@dataclass
class Draft:
    """An analysis's protected result, ready to be recorded as an output.

    ``files`` maps a file extension to the bytes; the session names each file after the output.
    """

    kind: str
    default_name: str
    content: dict[str, Any]
    checks: list[dict[str, Any]]
    files: dict[str, bytes] = field(default_factory=dict)


def _statistic(aggfunc: Any) -> str:
    name = aggfunc if isinstance(aggfunc, str) else getattr(aggfunc, "__name__", repr(aggfunc))
    if name not in AGGFUNCS:
        raise SessionError(
            f"aggfunc {name!r} has no automatic disclosure check; use one of count, sum, mean, "
            "median, max, min, std, or take the result out with custom_output and a justification"
        )
    return AGGFUNCS[name]


def _for_formula(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame in the numpy types statsmodels and patsy take: flags as 0/1 (a bool outcome
    would otherwise become two columns), nullable numbers as floats, and text with missing
    values as objects with NaN (patsy cannot sort ``pd.NA``; it drops rows with NaN instead).
    """
    converted: dict[str, pd.Series] = {}
    for column, dtype in frame.dtypes.items():
        series = frame[column]
        if pd.api.types.is_bool_dtype(dtype) or (
            pd.api.types.is_extension_array_dtype(dtype) and pd.api.types.is_numeric_dtype(dtype)
        ):
            converted[column] = series.astype("float64")
        elif isinstance(dtype, pd.StringDtype) or (
            pd.api.types.is_object_dtype(dtype) and series.map(lambda v: v is pd.NA).any()
        ):
            converted[column] = series.astype(object).where(series.notna(), np.nan)
    return frame.assign(**converted) if converted else frame


def _require_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SessionError(
            f"no column(s) {', '.join(map(str, missing))} in the data; it has "
            f"{', '.join(map(str, frame.columns))}"
        )


def protected_table(
    data: pd.DataFrame,
    *,
    index: str | Sequence[str],
    columns: str | Sequence[str] | None = None,
    values: str | None = None,
    statistic: str = "count",
    unit: str | None = None,
    profile: SDCProfile,
    profile_name: str = "",
) -> tuple[pd.DataFrame, Draft]:
    """Check a table cell by cell and protect it (``disclosure.publication``); returns the
    publishable table and its draft. The draft's evidence is the unprotected check, so a checker
    sees which cells failed and why.

    >>> table, draft = protected_table(journeys, index="sex", columns="court",
    ...                                unit="person_key", profile=profile)  # doctest: +SKIP
    >>> draft.checks[0]["status"], draft.content["suppressed"]              # doctest: +SKIP
    ('review', [['F', 'crown'], ['F', 'youth'], ['M', 'crown'], ['M', 'youth'], ...])
    """
    published = publishable_table(
        data,
        index=index,
        columns=columns,
        values=values,
        statistic=statistic,
        unit=unit,
        profile=profile,
        profile_name=profile_name,
    )
    check, frame, rounding = published.check, published.table, published.rounding
    margin_findings, secondary = published.margin_findings, published.secondary
    failing = int((check.status == FAIL).to_numpy().sum())
    review = int((check.status == REVIEW).to_numpy().sum())
    rules = sorted(
        {f.rule for f in check.findings if f.status == FAIL} | {f["rule"] for f in margin_findings}
    )
    margins = {tuple(f["row"]) for f in margin_findings}
    if failing or margins:
        status = REVIEW
        message = (
            f"{failing} of {check.status.size} cells"
            + (f" and {len(margins)} margin(s)" if margins else "")
            + f" failed ({', '.join(rules)}) and were suppressed, with {len(secondary)} "
            "complementary cell(s)"
        )
    elif review:
        status, message = REVIEW, check.summary()
    else:
        status, message = OK, f"all {check.status.size} cells pass the {profile_name} rules"
    if rounding != "none":
        message += f"; rounded ({rounding})"
    description = check.description + (f", each {unit} counted once per cell" if unit else "")
    draft = Draft(
        kind="table",
        default_name=check.description,
        content={
            "kind": "table",
            "statistic": statistic,
            "description": description,
            "table": table_content(frame),
            "rounding": rounding,
            "suppressed": published.suppressed,
            "margins": published.margins,
            "unit": unit,
            "profile": profile_name,
        },
        checks=[
            {
                "check": "sdc_table",
                "status": status,
                "message": message,
                "evidence": check.to_dict(),
                "suppressed": published.suppressed,
                "secondary": secondary,
                "margin_findings": margin_findings,
            }
        ],
        files={"csv": frame.to_csv().encode("utf-8")},
    )
    return frame, draft


def significant_figures(frame: pd.DataFrame, figures: int) -> pd.DataFrame:
    """Every number of ``frame`` to ``figures`` significant figures (NaN and infinity kept).

    >>> significant_figures(pd.DataFrame({"coef": [0.123456789, -1234.5678]}), 4)["coef"].tolist()
    [0.1235, -1235.0]
    """
    if figures < 1:
        raise SessionError(f"significant figures must be at least 1, not {figures}")

    def rounded(value: Any) -> Any:
        if isinstance(value, float | np.floating) and np.isfinite(value):
            return float(f"{value:.{figures}g}")
        return value

    return frame.apply(lambda column: column.map(rounded) if column.dtype.kind == "f" else column)


def model_draft(results: Any, formula: str, profile: SDCProfile) -> Draft:
    """A fitted statsmodels regression as a draft: estimates, observations and its check.

    Estimates, standard errors and p-values are kept to ``ESTIMATE_SIGNIFICANT_FIGURES``
    significant figures in the recorded content and in the CSV alike, so the checker reviews
    exactly the numbers that would be released (17-digit floats carry no meaning and crowd the
    review page). The text summary is statsmodels' own, already at a readable precision.
    """
    check = check_regression(results, profile)
    estimates = check.estimates if check.estimates is not None else pd.DataFrame()
    estimates = significant_figures(estimates.rename_axis("term"), ESTIMATE_SIGNIFICANT_FIGURES)
    df_resid = getattr(results, "df_resid", None)
    return Draft(
        kind="model",
        default_name=f"{check.model} {formula}",
        content={
            "kind": "model",
            "model": check.model,
            "formula": formula,
            "estimates": table_content(estimates),
            "significant_figures": ESTIMATE_SIGNIFICANT_FIGURES,
            "nobs": int(check.observations),
            "df_resid": None if df_resid is None else float(df_resid),
        },
        checks=[
            {
                "check": "regression",
                "status": check.status,
                "message": check.summary(),
                "evidence": check.to_dict(),
            }
        ],
        files={
            "csv": estimates.to_csv().encode("utf-8"),
            "txt": results.summary().as_text().encode("utf-8"),
        },
    )


def survival_draft(
    data: pd.DataFrame, duration: str, event: str, profile: SDCProfile
) -> tuple[pd.DataFrame, Draft]:
    """A Kaplan-Meier table cut where too few remain at risk, with counts rounded."""
    _require_columns(data, [duration, event])
    full, findings = check_survival(data[duration], data[event], profile)
    safe = safe_survival_table(data[duration], data[event], profile)
    minimum, base = profile.survival_minimum_at_risk, profile.rounding_base
    if safe.empty:
        status = FAIL
        message = f"fewer than {minimum} are at risk at every time: nothing can be released"
    elif findings:
        status = REVIEW
        message = (
            f"{len(findings)} of {len(full)} time points with fewer than {minimum} at risk were "
            f"cut; counts rounded to base {base}"
        )
    else:
        status, message = OK, f"every time point has at least {minimum} at risk; counts rounded"
    description = f"Kaplan-Meier survival of {duration} (event {event})"
    return safe, Draft(
        kind="table",
        default_name=f"survival {duration} {event}",
        content={
            "kind": "table",
            "statistic": "survival",
            "description": description,
            "table": table_content(safe),
            "rounding": f"base {base}",
            "suppressed": [],
            "cut_at_risk_below": minimum,
        },
        checks=[
            {
                "check": "survival",
                "status": status,
                "message": message,
                "evidence": {
                    "findings": findings,
                    "time_points": len(full),
                    "released_time_points": len(safe),
                },
            }
        ],
        files={"csv": safe.to_csv().encode("utf-8")},
    )


def histogram_draft(
    data: pd.DataFrame, column: str, bins: int | list[float], profile: SDCProfile, profile_name: str
) -> tuple[pd.DataFrame, Any, Draft]:
    """A histogram from its safe counts: failing bins suppressed, counts rounded, drawn as PNG."""
    _require_columns(data, [column])
    check, edges = check_histogram(data[column], profile, bins)
    safe = suppress_primary(check)["value"].to_frame()
    safe, rounding = round_table(safe, "count", profile)
    counts = pd.DataFrame(
        {
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": safe["value"].to_numpy(dtype=float, na_value=np.nan),
        },
        index=pd.Index(check.table.index, name="bin"),
    ).astype({"count": "Int64"})
    suppressed = [[json_safe(b), "value"] for b, _ in check.failing_cells()]
    failing = len(suppressed)
    review = int((check.status == REVIEW).to_numpy().sum())
    if failing:
        status = REVIEW
        message = f"{failing} of {len(counts)} bins failed and were suppressed; counts rounded ({rounding})"
    elif review:
        status, message = REVIEW, check.summary()
    else:
        status, message = OK, f"all {len(counts)} bins pass the {profile_name} rules"
    figure, png = _draw_histogram(counts, column, rounding)
    draft = Draft(
        kind="figure",
        default_name=f"histogram of {column}",
        content={
            "kind": "figure",
            "figure": "histogram",
            "column": column,
            "counts": table_content(counts),
            "edges": [float(e) for e in edges],
            "rounding": rounding,
            "suppressed": suppressed,
        },
        checks=[
            {
                "check": "histogram",
                "status": status,
                "message": message,
                "evidence": check.to_dict(),
                "suppressed": suppressed,
            }
        ],
        files={"png": png, "csv": counts.to_csv().encode("utf-8")},
    )
    return counts, figure, draft


def _draw_histogram(counts: pd.DataFrame, column: str, rounding: str) -> tuple[Any, bytes]:
    """The figure of a histogram's safe counts (suppressed bins hatched) and its PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)  # the Agg canvas: no display, no pyplot state
    axes = figure.add_subplot()
    lower = counts["lower"].to_numpy(dtype=float)
    width = counts["upper"].to_numpy(dtype=float) - lower
    heights = counts["count"].to_numpy(dtype=float, na_value=np.nan)
    shown = ~np.isnan(heights)
    axes.bar(lower[shown], heights[shown], width=width[shown], align="edge", edgecolor="white")
    for position, (left, span) in enumerate(zip(lower[~shown], width[~shown], strict=True)):
        axes.axvspan(
            left,
            left + span,
            facecolor="none",
            edgecolor="0.6",
            hatch="//",
            label="suppressed" if position == 0 else None,
        )
    if not shown.all():
        axes.legend()
    axes.set_xlabel(column)
    axes.set_ylabel("count" + (f" (rounded, {rounding})" if rounding != "none" else ""))
    png = io.BytesIO()
    figure.savefig(png, format="png", metadata={"Software": None})
    return figure, png.getvalue()


def custom_draft(
    path: str | os.PathLike,
    justification: str,
    *,
    profile: SDCProfile | None = None,
    context: str = "",
    controls: str = "",
    earlier: tuple[str, bytes] | None = None,
) -> Draft:
    """Any other file, with the researcher's justification: always for a checker to read.

    Given the SDC ``profile``, a CSV file is also read for what checkers usually send back
    (``output_checking.readiness``: unrounded or small counts, shares without safe
    denominators), as is the output's ``context`` and ``controls`` text; ``earlier`` (a label
    such as ``"output #4 (changes requested)"`` and that version's bytes) adds what changed
    since. The findings are a ``readiness`` check, for review before and after submission.
    """
    path = Path(path)
    if not path.is_file():
        raise SessionError(f"no file {str(path)!r}: give the path of the file to take out")
    if not justification or len(justification.strip()) < MINIMUM_JUSTIFICATION:
        raise SessionError(
            "a custom output needs a justification a checker can weigh (at least "
            f"{MINIMUM_JUSTIFICATION} characters): what is it, and why is it safe to release?"
        )
    extension = path.suffix.lower().lstrip(".")
    data = path.read_bytes()
    checks: list[dict[str, Any]] = [
        {
            "check": "custom",
            "status": REVIEW,
            "message": "a custom output has no automatic disclosure check: a checker reads it "
            "with its justification",
        }
    ]
    if profile is not None:
        findings = description_findings(context, controls)
        if extension == "csv":
            try:
                findings = file_findings(summarise_csv(data, profile), profile) + findings
            except CSVSummaryError as exc:
                findings.insert(0, ReadinessFinding("csv", f"the file cannot be read: {exc}"))
        if earlier is not None:
            findings.append(changes_since(earlier[1], data, earlier[0]))
        checks.append(readiness_check(findings))
    return Draft(
        kind="custom",
        default_name=path.stem,
        content={"kind": "custom", "justification": justification.strip()},
        checks=checks,
        files={extension: data},
    )


def _earlier_version(outputs: Sequence[Output], name: str) -> tuple[str, bytes] | None:
    """The latest earlier custom output of this name (or of the name with the " (2)" a repeat
    is given), as a label and its file's bytes: what a file sent again is compared with."""
    name = " ".join(name.split())
    repeat = re.compile(re.escape(name) + r"( \(\d+\))?")
    same = [
        o
        for o in outputs
        if o.kind == "custom" and o.status != REMOVED and o.files and repeat.fullmatch(o.name)
    ]
    if not same:
        return None
    latest = max(same, key=lambda o: o.id)
    return f"output #{latest.id} ({latest.status.replace('_', ' ')})", latest.files[0].content


# ------------------------------------------------------------------ the session
def _from_environment(value: str | None, variable: str, what: str, example: str) -> str:
    value = value or os.environ.get(variable, "").strip()
    if not value:
        raise SessionError(
            f"no {what} given: call srs.session({example}) or set {variable} (the JupyterHub "
            "spawner sets it for you)"
        )
    return value


def _check_source(
    source: str,
    user: str | None,
    project: str | None,
    home: str | os.PathLike | None,
    deployment: Deployment | None,
    open_data_path: str | os.PathLike | None,
    practice_home: str | os.PathLike | None,
) -> None:
    """Refuse a data source the session cannot give, or options that do not apply to it."""
    if source not in SOURCES:
        raise SessionError(
            f"source must be 'vault' (the project's data), 'synthetic' (the deployment's stored "
            f"replica of them) or 'open' (a practice session on the open synthetic data), not "
            f"{source!r}"
        )
    if source == OPEN:
        given = [n for n, v in (("user", user), ("project", project)) if v is not None]
        given += [n for n, v in (("home", home), ("deployment", deployment)) if v is not None]
        if given:
            raise SessionError(
                "a practice session (source='open') has a practice researcher, project and "
                f"deployment of its own: leave out {', '.join(given)}"
            )
        return
    for option, value in (("open_data_path", open_data_path), ("practice_home", practice_home)):
        if value is not None:
            raise SessionError(f"{option} applies only to source='open', not to {source!r}")
    if source == SYNTHETIC and home is None and deployment is None and os.environ.get(API_URL_ENV):
        raise SessionError(
            "source='synthetic' is not served through the hub's environment API: inside the hub, "
            "use source='vault', or source='open' with the open-data export"
        )


def session(
    user: str | None = None,
    project: str | None = None,
    home: str | os.PathLike | None = None,
    *,
    deployment: Deployment | None = None,
    policies: PolicySet | None = None,
    source: str = VAULT,
    open_data_path: str | os.PathLike | None = None,
    practice_home: str | os.PathLike | None = None,
) -> ResearchSession | RemoteSession:
    """Start working as ``user`` in ``project``; both default to ``SRS_USER`` and ``SRS_PROJECT``.

    ``home`` is the deployment folder (default ``SRS_HOME``, else ``./srs-home``); policies come
    from ``SRS_POLICY_DIR`` or the shipped folder. The person must be allowed to work in the
    project now (accredited, trained, a member of a running project): ``AccessDenied`` says
    why not, and the refusal is audited.

    Inside JupyterHub (``SRS_API_URL`` set by the spawner, and no ``home`` or ``deployment``
    given) the kernel holds no key, so this returns a ``srs.hub.client.RemoteSession``: the same
    methods, run by the environment API for the person and project of ``SRS_SESSION_TOKEN``
    (``user`` and ``project``, if given, must be those).

    ``source`` says where ``dataset("linked/...")`` reads from, so the same notebook runs on
    each: ``"vault"`` (the project's granted data); ``"synthetic"`` (the deployment's stored
    replica ``synthetic/...`` of each linked dataset, in the same project; every output's
    context says it was computed on synthetic data); ``"open"`` (a practice session on the open
    export at ``open_data_path``, in a throwaway deployment: see ``srs.research.practice``).

    >>> import srs
    >>> s = srs.session(user="ana", project="P001", home="/srv/srs")  # doctest: +SKIP
    >>> s.datasets()                                                  # doctest: +SKIP
    ['linked/journeys', 'linked/persons']
    >>> s = srs.session(source="open", open_data_path="open-data/cross_justice")  # doctest: +SKIP
    """
    _check_source(source, user, project, home, deployment, open_data_path, practice_home)
    if source == OPEN:
        from srs.research.practice import practice_session

        return practice_session(open_data_path, practice_home=practice_home, policies=policies)
    if home is None and deployment is None and os.environ.get(API_URL_ENV, "").strip():
        from srs.hub.client import RemoteSession

        return RemoteSession.from_environment(user=user, project=project, policies=policies)
    user = _from_environment(user, USER_ENV, "researcher", "user='ana', project='P001'")
    project = _from_environment(project, PROJECT_ENV, "project", "user='ana', project='P001'")
    if deployment is not None and home is not None:
        raise SessionError("give the deployment's home or a Deployment, not both")
    deployment = deployment or Deployment.from_env(home)
    url = make_url(deployment.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        raise SessionError(
            f"{deployment.home} is not a deployment (no registry at {url.database}): pass "
            "home= or set SRS_HOME to the deployment folder"
        )
    policies = policies or load_policies()
    registry = open_registry(deployment.database_url)
    try:
        with registry.sessions() as db:
            authorise(
                db, username=user, action="output.create", policies=policies, project_code=project
            )
            db.commit()
    except BaseException:
        registry.dispose()
        raise
    return ResearchSession(
        user=user,
        project=project,
        deployment=deployment,
        registry=registry,
        policies=policies,
        vault=Vault(deployment, policies),
        source=source,
    )


class ResearchSession:
    """One researcher working in one project: data in through the access check, outputs out
    through disclosure checks. Make one with ``srs.session()``.

    Every analysis returns the protected result and records a draft output; its id is in
    ``frame.attrs["srs_output_id"]`` and ``s.last_output``. Outputs are named from what they
    show unless ``name=`` is given; a name already used gets ``(2)``, ``(3)``...

    ``source`` is where its data come from (``vault``, ``synthetic`` or ``open``; see
    ``srs.research.session.session``); on synthetic data ``notice`` says so and every output's context
    starts with a note a checker sees.

    A session acts only in its own project and only on its researcher's own outputs and
    requests: an id of anything else (another project's, even the same researcher's, or a
    colleague's) raises ``AccessDenied`` saying no more than that it is not among theirs, and
    the refusal is audited. Its audit events are cut to the site's
    ``access.audit_field_max_chars``.
    """

    def __init__(
        self,
        *,
        user: str,
        project: str,
        deployment: Deployment,
        registry: Registry,
        policies: PolicySet,
        vault: Vault,
        source: str = VAULT,
        notice: str | None = None,
    ) -> None:
        self.user = user
        self.project = project
        self.deployment = deployment
        self.policies = policies
        self.source = source
        self.notice = notice or (SYNTHETIC_SOURCE_NOTICE if source == SYNTHETIC else None)
        self._registry = registry
        # Every audit event written through this registry, here or deep in a workflow that
        # never sees the policies, keeps the site's bound.
        use_field_bound(registry.sessions, policies.access.audit_field_max_chars)
        self._vault = vault
        self._dictionaries: dict[str, list[dict[str, Any]]] = {}
        self.last_output: OutputSummary | None = None
        self.dp = DifferentialPrivacy(self)
        if self.notice:
            print(f"NOTE: {self.notice}")

    def __repr__(self) -> str:
        on = "" if self.source == VAULT else f", on {self.source} data"
        return f"<srs session: {self.user} in {self.project} ({self.deployment.home}{on})>"

    def _context(self, context: str) -> str:
        """The context an output is recorded with: on synthetic data, led by a note saying so."""
        note = SYNTHETIC_CONTEXT.get(self.source)
        if not note or context.startswith(note):
            return context
        return f"{note} {context}".strip()

    def close(self) -> None:
        """Release the session's database connections."""
        self._registry.dispose()

    def __enter__(self) -> ResearchSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -------------------------------------------------------------- data
    def datasets(self) -> list[str]:
        """Names of the datasets granted to the project (revoked grants left out); on the
        ``synthetic`` source, the linked datasets the deployment holds a replica of."""
        with self._registry.sessions() as db:
            if self.source == SYNTHETIC:
                from synthetic.vault_replicas import stored_replicas

                return stored_replicas(db)
            return list(
                db.execute(
                    select(Grant.dataset_name)
                    .join(Project, Project.id == Grant.project_id)
                    .where(Project.code == self.project, Grant.revoked_at.is_(None))
                    .order_by(Grant.dataset_name)
                ).scalars()
            )

    def dataset(self, name: str, engine: str = "pandas", *, version: int | None = None) -> Any:
        """Read a granted dataset (newest version unless ``version``) as a pandas or polars frame.

        The read is access-checked and audited; a dataset the project holds no grant for (or
        one of another project) raises ``AccessDenied``.

        >>> journeys = s.dataset("linked/journeys")                    # doctest: +SKIP
        >>> persons = s.dataset("linked/persons", engine="polars")     # doctest: +SKIP
        """
        if engine not in ENGINES:
            raise SessionError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
        with self._registry.sessions() as db:
            if self.source == SYNTHETIC:
                from synthetic.vault_replicas import read_replica

                frame, dictionary = read_replica(
                    db, self._vault, name, actor=self.user, version=version
                )
            else:
                frame = self._vault.read(
                    db, name, actor=self.user, project=self.project, version=version
                )
                dictionary = self._vault.get(db, name, version).data_dictionary
            self._dictionaries[name] = list(dictionary)
        frame.attrs[DATASET] = name
        if engine == "polars":
            import polars as pl

            return pl.from_pandas(frame)
        return frame

    def _frame(self, data: Any) -> pd.DataFrame:
        if isinstance(data, str):
            return self.dataset(data)
        if isinstance(data, pd.DataFrame):
            return data
        if hasattr(data, "to_pandas"):
            return data.to_pandas()
        raise SessionError(
            "data must be a pandas or polars DataFrame or the name of a granted dataset, not "
            f"{type(data).__name__}"
        )

    def dictionary_of(self, data: Any) -> list[dict[str, Any]] | None:
        """The data dictionary behind ``data`` (a dataset name or a frame read by this session)."""
        name = data if isinstance(data, str) else getattr(data, "attrs", {}).get(DATASET)
        return self._dictionaries.get(name) if name else None

    # -------------------------------------------------------------- recording
    def _own_outputs(self, db) -> list[Output]:
        return list(
            db.execute(
                select(Output)
                .join(Project, Project.id == Output.project_id)
                .where(Project.code == self.project, Output.author == self.user)
                .order_by(Output.id)
            ).scalars()
        )

    def _unique_name(self, db, name: str) -> str:
        name = " ".join(name.split())
        taken = {o.name for o in self._own_outputs(db)}
        candidate, number = name, 1
        while candidate in taken:
            number += 1
            candidate = f"{name} ({number})"
        return candidate

    def _record(self, draft: Draft, name: str | None, context: str, controls: str) -> OutputSummary:
        # Lazily: dp_release loads OpenDP, which ``import srs`` should not wait for.

        with self._registry.sessions() as db:
            authorise(
                db,
                username=self.user,
                action="output.create",
                policies=self.policies,
                project_code=self.project,
            )
            name = self._unique_name(db, name or draft.default_name)
            stem = file_stem(name)
            files = {
                (f"{stem}.{extension}" if extension else stem): data
                for extension, data in draft.files.items()
            }
            content = draft.content
            if draft.kind == "custom":
                content = {**content, "file": next(iter(files))}
            try:
                output = record_output(
                    db,
                    project_code=self.project,
                    author=self.user,
                    kind=draft.kind,
                    name=name,
                    content=content,
                    checks=draft.checks,
                    context=self._context(context),
                    controls=controls,
                    files=files,
                    file_rules=file_gate_rules(self.policies),
                )
            except OutputError as refusal:
                db.rollback()
                record_event(
                    db,
                    actor=self.user,
                    action="output.create",
                    target=self.project,
                    outcome="deny",
                    reason=str(refusal),
                    details={"kind": draft.kind, "name": name},
                )
                db.commit()
                raise
            db.commit()
            summary = OutputSummary.of(output)
        self.last_output = summary
        return summary

    @staticmethod
    def _tagged(frame: pd.DataFrame, summary: OutputSummary) -> pd.DataFrame:
        frame.attrs[OUTPUT_ID] = summary.id
        frame.attrs["srs_output_name"] = summary.name
        return frame

    # -------------------------------------------------------------- tables
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
        statistic = _statistic(aggfunc)
        if values is not None and statistic == "count":
            raise SessionError(
                f"values={values!r} needs an aggfunc (sum, mean, median, max, min or std)"
            )
        return self._table(data, index, columns, values, statistic, unit, name, context, controls)

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
        statistic = _statistic(aggfunc)
        return self._table(
            data,
            index,
            columns,
            None if statistic == "count" else values,
            statistic,
            unit,
            name,
            context,
            controls,
        )

    def _table(self, data, index, columns, values, statistic, unit, name, context, controls):
        frame = self._frame(data)
        if unit == AUTO:
            unit = PERSON_KEY if PERSON_KEY in frame.columns else None
        table, draft = protected_table(
            frame,
            index=index,
            columns=columns,
            values=values,
            statistic=statistic,
            unit=unit,
            profile=self.policies.sdc.active,
            profile_name=self.policies.sdc.profile,
        )
        return self._tagged(table, self._record(draft, name, context, controls))

    # -------------------------------------------------------------- models
    def ols(self, formula: str, data: Any, **options: Any) -> Any:
        """Ordinary least squares with a statsmodels formula (``"y ~ x + C(group)"``), checked.

        Returns the fitted statsmodels results; the output holds the estimates (coefficients,
        standard errors, p-values), observations and residual degrees of freedom, as a CSV and
        the text summary. ``name``, ``context`` and ``controls`` may be given; other keyword
        arguments go to ``fit``.

        >>> results = s.ols("sentence_months ~ age_at_offence + C(sex)", journeys)  # doctest: +SKIP
        """
        return self._model("ols", formula, data, options)

    def logit(self, formula: str, data: Any, **options: Any) -> Any:
        """Logistic regression with a statsmodels formula, checked (see ``ols``)."""
        return self._model("logit", formula, data, options)

    def probit(self, formula: str, data: Any, **options: Any) -> Any:
        """Probit regression with a statsmodels formula, checked (see ``ols``)."""
        return self._model("probit", formula, data, options)

    def poisson(self, formula: str, data: Any, **options: Any) -> Any:
        """Poisson regression with a statsmodels formula, checked (see ``ols``)."""
        return self._model("poisson", formula, data, options)

    def _model(self, kind: str, formula: str, data: Any, options: dict[str, Any]) -> Any:
        import statsmodels.formula.api as smf
        from patsy import PatsyError

        name = options.pop("name", None)
        context = options.pop("context", "")
        controls = options.pop("controls", "")
        frame = _for_formula(self._frame(data))
        try:
            model = getattr(smf, kind)(formula, data=frame)
        except PatsyError as exc:
            raise SessionError(
                f"the formula {formula!r} cannot be built from the data ({exc.message.strip()}); "
                f"its columns are {', '.join(map(str, frame.columns))}"
            ) from exc
        if kind != "ols":
            options.setdefault("disp", False)
        results = model.fit(**options)
        draft = model_draft(results, formula, self.policies.sdc.active)
        self._record(draft, name, context, controls)
        return results

    # -------------------------------------------------------------- survival and figures
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
        table, draft = survival_draft(self._frame(data), duration, event, self.policies.sdc.active)
        return self._tagged(table, self._record(draft, name, context, controls))

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
        counts, figure, draft = histogram_draft(
            self._frame(data), column, bins, self.policies.sdc.active, self.policies.sdc.profile
        )
        return self._tagged(counts, self._record(draft, name, context, controls)), figure

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
        with self._registry.sessions() as db:
            earlier = _earlier_version(self._own_outputs(db), name or Path(path).stem)
        draft = custom_draft(
            path,
            justification,
            profile=self.policies.sdc.active,
            context=context,
            controls=controls,
            earlier=earlier,
        )
        return self._record(draft, name, context, controls)

    # -------------------------------------------------------------- managing outputs
    def outputs(self) -> pd.DataFrame:
        """This researcher's outputs in the project: name, kind, status, checks, files and
        notes (why cells are hidden; what a checker will ask about a custom output)."""
        with self._registry.sessions() as db:
            summaries = [OutputSummary.of(o) for o in self._own_outputs(db)]
        columns = ["name", "kind", "status", "checks", "exception", "request", "files", "notes"]
        return pd.DataFrame(
            [
                [
                    o.name,
                    o.kind,
                    o.status,
                    o.checks,
                    o.exception_requested,
                    o.request_id,
                    ", ".join(o.files),
                    "; ".join(o.notes),
                ]
                for o in summaries
            ],
            index=pd.Index([o.id for o in summaries], name="id", dtype="int64"),
            columns=columns,
        ).astype({"request": "Int64"})

    def output_id(self, output: Any) -> int:
        """The id of ``output``: an id, a name, an ``OutputSummary`` or a returned frame.

        Only your own outputs in this session's project are found: the id of any other output
        raises ``AccessDenied`` (audited).
        """
        with self._registry.sessions() as db:
            return self._own_output_id(db, output, "output.lookup")

    def _own_output_id(self, db, output: Any, action: str) -> int:
        """The id of ``output`` (anything ``output_id`` takes), refused (``_own``) unless it
        names one of the researcher's own outputs in this project; ``action`` is the call's."""
        if isinstance(output, OutputSummary):
            output = output.id
        elif isinstance(output, pd.DataFrame) and OUTPUT_ID in output.attrs:
            output = int(output.attrs[OUTPUT_ID])
        if isinstance(output, int | np.integer) and not isinstance(output, bool):
            return self._own(db, Output, int(output), action).id
        if isinstance(output, str):
            named = [o for o in self._own_outputs(db) if o.name == output]
            live = [o for o in named if o.status != REMOVED] or named
            if len(live) == 1:
                return live[0].id
            if not live:
                raise SessionError(
                    f"you have no output named {output!r} in {self.project}; see s.outputs()"
                )
            raise SessionError(
                f"{len(live)} of your outputs are named {output!r} "
                f"({', '.join(f'#{o.id}' for o in live)}); pass the id instead"
            )
        raise SessionError(
            "name an output by its id, its name, or the frame an analysis returned, not "
            f"{type(output).__name__}"
        )

    def _own(
        self, db, model: type[Output | ReleaseRequest], record_id: int, action: str
    ) -> Output | ReleaseRequest:
        """The output or request ``record_id`` if it is the researcher's own in the session's
        project; else ``AccessDenied``, audited, that says nothing of what the id names."""
        what, detail = OWN_RECORDS[model]
        found = None
        if 0 < record_id <= LARGEST_ID:
            found = db.execute(
                select(model)
                .join(Project, Project.id == model.project_id)
                .where(
                    model.id == record_id, Project.code == self.project, model.author == self.user
                )
            ).scalar_one_or_none()
        if found is not None:
            return found
        reason = (
            f"you have no {what} #{record_id} in your project {self.project}: a session acts "
            f"only on your own {what}s in its project (s.outputs() lists them)"
        )
        db.rollback()
        record_event(
            db,
            actor=self.user,
            action=action,
            target=request_target(record_id) if model is ReleaseRequest else self.project,
            outcome="deny",
            reason=reason,
            details={"project": self.project, detail: record_id},
        )
        db.commit()  # now: the refusal stays on record whatever the caller does next
        raise AccessDenied(reason)

    def _own_request(self, db, request_id: Any, action: str) -> ReleaseRequest:
        """The researcher's own request ``request_id`` in this project (see ``_own``)."""
        if isinstance(request_id, bool) or not isinstance(request_id, int | np.integer):
            raise SessionError(
                f"name a release request by its id (the number s.submit returned), not "
                f"{type(request_id).__name__}"
            )
        return self._own(db, ReleaseRequest, int(request_id), action)

    def _change(self, change, output: Any, action: str, **arguments: Any) -> OutputSummary:
        with self._registry.sessions() as db:
            output_id = self._own_output_id(db, output, f"output.{action}")
            change(db, output_id=output_id, actor=self.user, policies=self.policies, **arguments)
            return OutputSummary.of(get_output(db, output_id))

    def rename(self, output: Any, name: str) -> OutputSummary:
        """Give a draft output a name a checker will recognise (files keep their names)."""
        return self._change(rename_output, output, "rename", name=name)

    def describe(
        self, output: Any, *, context: str | None = None, controls: str | None = None
    ) -> OutputSummary:
        """Say what an output is (``context``) and which disclosure controls you applied
        (``controls``): checkers read both."""
        context = None if context is None else self._context(context)
        return self._change(describe_output, output, "describe", context=context, controls=controls)

    def comment(self, output: Any, text: str) -> OutputSummary:
        """Add a note to your output for the checkers."""
        return self._change(comment_on_own_output, output, "comment", text=text)

    def remove(self, output: Any) -> OutputSummary:
        """Leave a draft out of what you submit (it stays on record, marked removed)."""
        return self._change(remove_output, output, "remove")

    def request_exception(self, output: Any, justification: str) -> OutputSummary:
        """Ask the checkers to release an output although an automatic check failed, saying
        why it is safe and why it is needed."""
        return self._change(
            request_exception, output, "request_exception", justification=justification
        )

    def submit(self, title: str, outputs: Sequence[Any] | None = None) -> int:
        """Send your drafts (or just ``outputs``) to the checkers' queue as one release
        request; returns its id. Removed outputs are never sent, nor any output that is not
        your own in this session's project (``AccessDenied``, audited).

        >>> request_id = s.submit("Attrition tables for the 2026 report")  # doctest: +SKIP
        """
        with self._registry.sessions() as db:
            ids = (
                None
                if outputs is None
                else [self._own_output_id(db, o, "request.create") for o in outputs]
            )
            request = create_request(
                db,
                project_code=self.project,
                author=self.user,
                policies=self.policies,
                title=title,
                output_ids=ids,
            )
            submit_request(db, request_id=request.id, actor=self.user, policies=self.policies)
            return request.id

    def resubmit(self, request_id: int) -> int:
        """Send a request the checkers returned for changes back to them, after you have
        revised its outputs (``rename``, ``describe``, ``remove``, ``request_exception``); a new
        round of reviews starts. Returns the request id. Only your own requests in this
        session's project can be resubmitted from it.

        >>> s.request_status(7).status                                   # doctest: +SKIP
        'changes_requested'
        >>> s.resubmit(7)                                                # doctest: +SKIP
        """
        with self._registry.sessions() as db:
            request = self._own_request(db, request_id, "request.submit")
            submit_request(db, request_id=request.id, actor=self.user, policies=self.policies)
            return request.id

    def request_status(self, request_id: int) -> RequestStatus:
        """Where a release request stands: its status, its outputs' statuses, the comments
        meant for you and its history. Only your own requests in this session's project are
        shown; any other id raises ``AccessDenied`` (audited)."""
        with self._registry.sessions() as db:
            request = self._own_request(db, request_id, "request.view")
            view = request_view(db, request_id=request.id, viewer=self.user, policies=self.policies)
            request = view.request
            return RequestStatus(
                request_id=request.id,
                title=request.title,
                status=request.status,
                review_round=request.review_round,
                outputs=tuple(OutputSummary.of(v.output) for v in view.outputs),
                comments=tuple(
                    (c.author, c.output_id, c.text)
                    for c in [*view.comments, *(c for v in view.outputs for c in v.comments)]
                ),
                history=tuple(f"{e.occurred_at} {e.action} by {e.actor}" for e in view.history),
            )


def _spend_attrs(receipt: SpendReceipt, **extra: Any) -> dict[str, Any]:
    """What a DP result's ``attrs["srs_dp"]`` says of the spend that paid for it."""
    return {
        "rho": receipt.rho,
        "epsilon": receipt.epsilon,
        "delta": receipt.epsilon_delta,
        "spend_id": receipt.spend_id,
        "remaining_rho": receipt.remaining_rho,
        **extra,
    }


class DifferentialPrivacy:
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

    QUERIES = (
        "count",
        "sum_of",
        "mean",
        "variance",
        "quantiles",
        "median",
        "histogram",
        "crosstab",
    )
    # Options of every query that say what to read and how to pay, not what to compute.
    READING = ("version", "where", "derive")

    def __init__(self, session: ResearchSession) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"<DP queries for {self._session.project}: {', '.join(self.QUERIES)}>"

    def _query(self, statistic: Any, arguments: tuple, options: dict[str, Any]) -> Any:
        from disclosure import dp

        if isinstance(statistic, dp.DPQuery):
            if options:
                raise SessionError(
                    f"a built query takes no further options ({', '.join(sorted(options))}): "
                    "give them to the query's constructor"
                )
            return statistic
        if statistic not in self.QUERIES:
            raise SessionError(
                f"{statistic!r} is not a DP query; use one of {', '.join(self.QUERIES)}"
            )
        return getattr(dp, statistic)(*arguments, **options)

    def _reading(self, dataset: Any, options: dict[str, Any]) -> dict[str, Any]:
        """What to read: the dataset's name (a frame is refused, with how to write the query
        instead) and the ``version``, ``where`` and ``derive`` popped from ``options``."""
        from disclosure.dp.selection import refuse_frame

        session = self._session
        return {
            "vault": session._vault,
            "project_code": session.project,
            "researcher": session.user,
            "policies": session.policies,
            "dataset": refuse_frame(dataset),
            "synthetic": session.source == SYNTHETIC,
            **{key: options.pop(key, None) for key in self.READING},
        }

    def _release(
        self,
        statistic: str,
        dataset: Any,
        arguments: tuple,
        options: dict[str, Any],
    ) -> pd.DataFrame:
        from output_checking.dp_release import release_dp

        reading = self._reading(dataset, options)
        rho = options.pop("rho", None)
        accuracy = options.pop("accuracy", None)
        name = options.pop("name", None)
        context = options.pop("context", "")
        query = self._query(statistic, arguments, options)
        session = self._session
        with session._registry.sessions() as db:
            name = session._unique_name(db, name or f"DP {query.describe()}")
            released = release_dp(
                db,
                query=query,
                rho=rho,
                accuracy=accuracy,
                name=name,
                context=session._context(context),
                **reading,
            )
            summary = OutputSummary.of(get_output(db, released.output_id))
        session.last_output = summary
        table = released.result.table.copy()
        table.attrs["srs_dp"] = _spend_attrs(released.receipt, notes=list(released.result.notes))
        return session._tagged(table, summary)

    def count(self, dataset: str, **options: Any) -> pd.DataFrame:
        """Number of rows of ``dataset``, overall or ``by`` groups (options of
        ``disclosure.dp.count``, and ``where``, ``derive``, ``version``, ``rho`` or
        ``accuracy``, ``name``, ``context``)."""
        return self._release("count", dataset, (), options)

    def sum_of(self, dataset: str, column: str, **options: Any) -> pd.DataFrame:
        """Sum of ``column`` clipped to ``bounds`` (options of ``disclosure.dp.sum_of``)."""
        return self._release("sum_of", dataset, (column,), options)

    def mean(self, dataset: str, column: str, **options: Any) -> pd.DataFrame:
        """Mean of ``column`` (options of ``disclosure.dp.mean``: bounds, by, keys, decimals)."""
        return self._release("mean", dataset, (column,), options)

    def variance(self, dataset: str, column: str, **options: Any) -> pd.DataFrame:
        """Variance of ``column`` (options of ``disclosure.dp.variance``)."""
        return self._release("variance", dataset, (column,), options)

    def quantiles(
        self, dataset: str, column: str, qs: Sequence[float], **options: Any
    ) -> pd.DataFrame:
        """Quantiles ``qs`` of ``column`` (options of ``disclosure.dp.quantiles``)."""
        return self._release("quantiles", dataset, (column, qs), options)

    def median(self, dataset: str, column: str, **options: Any) -> pd.DataFrame:
        """Median of ``column`` (options of ``disclosure.dp.median``)."""
        return self._release("median", dataset, (column,), options)

    def histogram(
        self, dataset: str, column: str, edges: Sequence[float], **options: Any
    ) -> pd.DataFrame:
        """Counts of ``column`` between public ``edges`` (options of ``disclosure.dp.histogram``)."""
        return self._release("histogram", dataset, (column, edges), options)

    def crosstab(self, dataset: str, *columns: str, **options: Any) -> pd.DataFrame:
        """A 1-3 way table of counts of ``columns`` (options of ``disclosure.dp.crosstab``)."""
        return self._release("crosstab", dataset, columns, options)

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
        from output_checking.dp_release import release_dp_replica

        reading = self._reading(dataset, {"version": version, "where": where, "derive": derive})
        session = self._session
        with session._registry.sessions() as db:
            name = session._unique_name(
                db, name or f"DP synthetic replica of {reading['dataset']} ({', '.join(columns)})"
            )
            released = release_dp_replica(
                db,
                columns=list(columns),
                rows=rows,
                rho=rho,
                algorithm=algorithm,
                bins=bins,
                seed=seed,
                name=name,
                context=session._context(context),
                **reading,
            )
            summary = OutputSummary.of(get_output(db, released.output_id))
        session.last_output = summary
        table = released.data
        table.attrs["srs_dp"] = _spend_attrs(released.receipt, algorithm=algorithm)
        return session._tagged(table, summary)

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
        from output_checking.dp_release import preview_dp

        reading = self._reading(dataset, options)
        built = self._query(query, arguments, options)
        with self._session._registry.sessions() as db:
            return preview_dp(db, query=built, rho=rho, accuracy=accuracy, **reading)

    def budget(self) -> BudgetState:
        """Where the project's privacy budget stands (total, spent, remaining, by researcher)."""
        with self._session._registry.sessions() as db:
            return budget_state(db, self._session.project, self._session.policies)

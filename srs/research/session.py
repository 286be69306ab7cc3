"""The researcher session: ``ResearchSession``, how an accredited researcher works in the environment.

A session knows who is working and in which project. It reads the project's granted datasets
through the access check, and its analysis functions (``crosstab``, ``pivot_table``, ``ols``,
``logit``, ``probit``, ``poisson``, ``survival``, ``hist``, the differentially private ``s.dp.*``
and ``custom_output``) work like the pandas and statsmodels ones but give back only the
protected result: each call records a draft output with its disclosure evidence and its files
in open formats, for a checker to review once submitted. The methods, their signatures and
docstrings are declared once in ``srs.research.surface``; the checks that make each draft are
the pure functions of ``srs.research.drafts``; ``s.dp`` is ``srs.research.dp``.

``srs.session()`` (the front door, ``srs/session.py``) picks this session, a practice session
(``srs.research.practice``) or, inside JupyterHub, the hub's ``RemoteSession``; ``open_session``
here opens the local one only, and never loads the hub.

>>> import srs
>>> s = srs.session(user="ana", project="P001")                        # doctest: +SKIP
>>> journeys = s.dataset("linked/journeys")                             # doctest: +SKIP
>>> s.crosstab(journeys, "sex", "court", name="cases by sex and court")  # doctest: +SKIP
>>> s.dp.count("linked/journeys", by=["sex"], rho=0.01)                 # doctest: +SKIP
>>> s.submit("Attrition tables for the 2026 report")                    # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import make_url

from output_checking.outputs import (
    REMOVED,
    OutputError,
    combined_uses,
    comment_on_own_output,
    dataset_use,
    describe_output,
    file_gate_rules,
    file_stem,
    get_output,
    record_output,
    remove_output,
    rename_output,
    request_exception,
)
from output_checking.workflow import create_request, request_target, request_view, submit_request
from srs.governance.access import AccessDenied, authorise, latest_dataset, stored_dataset
from srs.governance.audit import record_event, use_field_bound
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet, load_policies
from srs.governance.registry import Registry, open_registry
from srs.governance.registry.models import Grant, Output, Project, ReleaseRequest
from srs.research.dp import DifferentialPrivacy
from srs.research.drafts import (
    Draft,
    aggfunc_statistic,
    custom_draft,
    earlier_version,
    fit_options,
    formula_frame,
    histogram_draft,
    model_draft,
    protected_table,
    require_convergence,
    survival_draft,
)
from srs.research.surface import (
    API_URL_ENV,
    AUTO,
    DATASET,
    ENGINES,
    OPEN,
    OUTPUT_ID,
    SOURCES,
    SYNTHETIC,
    VAULT,
    SessionSurface,
)
from srs.research.values import (
    OutputSummary,
    RequestStatus,
    SessionError,
)
from srs.research.versions import DatasetVersion, catalogue_versions
from srs.vault.store import Vault, VaultError

USER_ENV = "SRS_USER"
PROJECT_ENV = "SRS_PROJECT"
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
# What a session may act on by id, only when it is the researcher's own in the session's
# project: what a refusal calls it, and the audit detail naming the id asked for. A refused
# request is audited with the request as target, as every step of a request is (its history).
OWN_RECORDS = {Output: ("output", "output_id"), ReleaseRequest: ("release request", "request_id")}
# Ids are database integers; anything outside this range names nothing.
LARGEST_ID = 2**63 - 1


# ------------------------------------------------------------------ opening a session
def _from_environment(value: str | None, variable: str, what: str, example: str) -> str:
    """``value``, else the environment's ``variable``; ``SessionError`` saying how to give it."""
    value = value or os.environ.get(variable, "").strip()
    if not value:
        raise SessionError(
            f"no {what} given: call srs.session({example}) or set {variable} (the JupyterHub "
            "spawner sets it for you)"
        )
    return value


def check_source(
    source: str,
    user: str | None,
    project: str | None,
    home: str | os.PathLike | None,
    deployment: Deployment | None,
    open_data_path: str | os.PathLike | None,
    practice_home: str | os.PathLike | None,
) -> None:
    """Refuse a data source ``srs.session()`` cannot give, or options that do not apply to it."""
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


def open_session(
    user: str | None = None,
    project: str | None = None,
    home: str | os.PathLike | None = None,
    *,
    deployment: Deployment | None = None,
    policies: PolicySet | None = None,
    source: str = VAULT,
) -> ResearchSession:
    """The local session of ``user`` in ``project`` on the deployment at ``home`` (or
    ``deployment``), reading the ``vault`` or its ``synthetic`` replica; ``user`` and
    ``project`` default to ``SRS_USER`` and ``SRS_PROJECT``, ``home`` to ``SRS_HOME``, else
    ``./srs-home``; policies come from ``SRS_POLICY_DIR`` or the shipped folder. The person must
    be allowed to work in the project now (accredited, trained, a member of a running project):
    ``AccessDenied`` says why not, and the refusal is audited.

    Researchers call ``srs.session()``, which also opens practice sessions and, inside
    JupyterHub, the hub's remote session; this is the part of it that runs here.

    >>> s = open_session("ana", "P001", "/srv/srs", source="synthetic")  # doctest: +SKIP
    """
    if source not in (VAULT, SYNTHETIC):
        raise SessionError(
            f"open_session reads the deployment's 'vault' or 'synthetic' data, not {source!r}: "
            "call srs.session(source='open', ...) for a practice session on the open data"
        )
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


class ResearchSession(SessionSurface):
    """One researcher working in one project: data in through the access check, outputs out
    through disclosure checks. Make one with ``srs.session()``.

    Every analysis returns the protected result and records a draft output; its id is in
    ``frame.attrs["srs_output_id"]`` and ``s.last_output``. Outputs are named from what they
    show unless ``name=`` is given; a name already used gets ``(2)``, ``(3)``...

    ``source`` is where its data come from (``vault``, ``synthetic`` or ``open``; see
    ``srs.session``); on synthetic data ``notice`` says so and every output's context
    starts with a note a checker sees.

    A session acts only in its own project and only on its researcher's own outputs and
    requests: an id of anything else (another project's, even the same researcher's, or a
    colleague's) raises ``AccessDenied`` saying no more than that it is not among theirs, and
    the refusal is audited. Its audit events are cut to the site's
    ``access.audit_field_max_chars``.

    The session notes every dataset version it reads (``s.dataset``, a DP query): each output
    it records names the versions read so far (``datasets_used``), taken from the reads the
    environment served, never from what a caller says.
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
        # Private, as everything not on the surface: a session in the hub has neither (its
        # kernel holds no key and reads no policy), so a notebook must not come to rely on them.
        self._deployment = deployment
        self._policies = policies
        self.source = source
        self.notice = notice or (SYNTHETIC_SOURCE_NOTICE if source == SYNTHETIC else None)
        self._registry = registry
        # Every audit event written through this registry, here or deep in a workflow that
        # never sees the policies, keeps the site's bound.
        use_field_bound(registry.sessions, policies.access.audit_field_max_chars)
        self._vault = vault
        self._dictionaries: dict[str, list[dict[str, Any]]] = {}
        # The dataset versions read so far ({name, version, content_hash}), by name and version.
        self._datasets_read: list[dict[str, Any]] = []
        self.last_output: OutputSummary | None = None
        self.dp = DifferentialPrivacy(self)
        if self.notice:
            print(f"NOTE: {self.notice}")

    def __repr__(self) -> str:
        on = "" if self.source == VAULT else f", on {self.source} data"
        return f"<srs session: {self.user} in {self.project} ({self._deployment.home}{on})>"

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
        if engine not in ENGINES:
            raise SessionError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise SessionError(
                f"version must be a whole number such as 2 (s.versions({name!r}) lists them), "
                f"not {version!r}"
            )
        with self._registry.sessions() as db:
            stored = self._stored_name(name)
            # The version is fixed first, so the one noted is the one read.
            if version is None and isinstance(stored, str):
                newest = latest_dataset(db, stored)
                version = newest.version if newest is not None else None
            try:
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
            except VaultError as exc:
                if version is None or stored_dataset(db, stored, version) is not None:
                    raise
                raise VaultError(
                    f"{name} has no version {version}: s.versions({name!r}) lists the versions "
                    "your project may read"
                ) from exc
            self._note_reads([dataset_use(stored_dataset(db, stored, version))])
            self._dictionaries[name] = list(dictionary)
        frame.attrs[DATASET] = name
        if engine == "polars":
            import polars as pl

            return pl.from_pandas(frame)
        return frame

    def _stored_name(self, name: Any) -> Any:
        """The vault name read for ``name``: on synthetic data, its replica's."""
        if self.source == SYNTHETIC and isinstance(name, str) and name.startswith("linked/"):
            from synthetic.vault_replicas import synthetic_name

            return synthetic_name(name)
        return name

    def _note_reads(self, uses: list[dict[str, Any]]) -> None:
        """Add dataset versions the environment read for this session to what it has read."""
        self._datasets_read = combined_uses(self._datasets_read, uses)

    def versions(self, name: str) -> list[DatasetVersion]:
        if not isinstance(name, str):
            raise SessionError(
                f"name a dataset by its name, such as 'linked/journeys', not {type(name).__name__}"
            )
        stored = self._stored_name(name)
        with self._registry.sessions() as db:
            if self.source == SYNTHETIC:
                authorise(
                    db,
                    username=self.user,
                    action="synthetic.read",
                    policies=self._policies,
                    dataset_name=stored,
                )
            else:
                authorise(
                    db,
                    username=self.user,
                    action="dataset.read",
                    policies=self._policies,
                    project_code=self.project,
                    dataset_name=name,
                )
            db.commit()
            approved = db.execute(
                select(Project.approved_classification).where(Project.code == self.project)
            ).scalar_one()
            listed = catalogue_versions(db, stored)
        levels = self._policies.classification
        return [
            v
            for v in listed
            if self.source == SYNTHETIC or levels.at_most(v.classification, approved)
        ]

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
        with self._registry.sessions() as db:
            authorise(
                db,
                username=self.user,
                action="output.create",
                policies=self._policies,
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
                    file_rules=file_gate_rules(self._policies),
                    datasets_used=self._datasets_read,
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
        statistic = aggfunc_statistic(aggfunc)
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
        statistic = aggfunc_statistic(aggfunc)
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
            profile=self._policies.sdc.active,
            profile_name=self._policies.sdc.profile,
        )
        return self._tagged(table, self._record(draft, name, context, controls))

    # -------------------------------------------------------------- models
    def ols(self, formula: str, data: Any, **options: Any) -> Any:
        return self._model("ols", formula, data, options)

    def logit(self, formula: str, data: Any, **options: Any) -> Any:
        return self._model("logit", formula, data, options)

    def probit(self, formula: str, data: Any, **options: Any) -> Any:
        return self._model("probit", formula, data, options)

    def poisson(self, formula: str, data: Any, **options: Any) -> Any:
        return self._model("poisson", formula, data, options)

    def _model(self, kind: str, formula: str, data: Any, options: dict[str, Any]) -> Any:
        import statsmodels.formula.api as smf
        from patsy import PatsyError
        from statsmodels.tools.sm_exceptions import ConvergenceWarning

        name = options.pop("name", None)
        context = options.pop("context", "")
        controls = options.pop("controls", "")
        fit = fit_options(kind, options)
        frame = formula_frame(self._frame(data))
        try:
            model = getattr(smf, kind)(formula, data=frame)
        except PatsyError as exc:
            raise SessionError(
                f"the formula {formula!r} cannot be built from the data ({exc.message.strip()}); "
                f"its columns are {', '.join(map(str, frame.columns))}"
            ) from exc
        with warnings.catch_warnings():
            # A fit that stops early is refused below with a message of ours, not left to a
            # warning a notebook may hide.
            warnings.simplefilter("ignore", ConvergenceWarning)
            results = model.fit(**fit)
        require_convergence(results, kind)
        draft = model_draft(results, formula, self._policies.sdc.active)
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
        table, draft = survival_draft(self._frame(data), duration, event, self._policies.sdc.active)
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
        counts, figure, draft = histogram_draft(
            self._frame(data), column, bins, self._policies.sdc.active, self._policies.sdc.profile
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
        with self._registry.sessions() as db:
            earlier = earlier_version(self._own_outputs(db), name or Path(path).stem)
        draft = custom_draft(
            path,
            justification,
            profile=self._policies.sdc.active,
            context=context,
            controls=controls,
            earlier=earlier,
        )
        return self._record(draft, name, context, controls)

    # -------------------------------------------------------------- managing outputs
    def outputs(self) -> pd.DataFrame:
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
            change(db, output_id=output_id, actor=self.user, policies=self._policies, **arguments)
            return OutputSummary.of(get_output(db, output_id))

    def rename(self, output: Any, name: str) -> OutputSummary:
        return self._change(rename_output, output, "rename", name=name)

    def describe(
        self, output: Any, *, context: str | None = None, controls: str | None = None
    ) -> OutputSummary:
        context = None if context is None else self._context(context)
        return self._change(describe_output, output, "describe", context=context, controls=controls)

    def comment(self, output: Any, text: str) -> OutputSummary:
        return self._change(comment_on_own_output, output, "comment", text=text)

    def remove(self, output: Any) -> OutputSummary:
        return self._change(remove_output, output, "remove")

    def request_exception(self, output: Any, justification: str) -> OutputSummary:
        return self._change(
            request_exception, output, "request_exception", justification=justification
        )

    def submit(self, title: str, outputs: Sequence[Any] | None = None) -> int:
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
                policies=self._policies,
                title=title,
                output_ids=ids,
            )
            submit_request(db, request_id=request.id, actor=self.user, policies=self._policies)
            return request.id

    def resubmit(self, request_id: int) -> int:
        with self._registry.sessions() as db:
            request = self._own_request(db, request_id, "request.submit")
            submit_request(db, request_id=request.id, actor=self.user, policies=self._policies)
            return request.id

    def request_status(self, request_id: int) -> RequestStatus:
        with self._registry.sessions() as db:
            request = self._own_request(db, request_id, "request.view")
            view = request_view(
                db, request_id=request.id, viewer=self.user, policies=self._policies
            )
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

"""The research notebooks (notebooks/*.ipynb) and how they run: every notebook runs with
papermill on the synthetic export in a practice session (source="open") and submits its
checked outputs to the practice project's queue; `srs run` runs one in a deployment on the
synthetic replica or the vault data and reports what it put in the project's queue, read from
the registry; the practice and synthetic sources read what they say and mark their outputs.

A new notebook in notebooks/ is covered by the parametrised tests without any change here.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from notebook_fixtures import (  # noqa: F401 (fixtures, found by pytest by name)
    LINKED,
    NOTEBOOKS,
    PROJECT,
    RESEARCHER,
    STEWARD,
    STUDENT,
    cli,
    code_cells,
    environment,
    execute,
    offences,
    pipeline,
    printed,
    simulated,
)
from sqlalchemy import select

import srs
from srs.governance.registry import open_registry
from srs.governance.registry.models import AuditEvent, Dataset, Output, Project, ReleaseRequest
from srs.research.practice import (
    PRACTICE_PROJECT,
    PRACTICE_RESEARCHER,
    is_practice_deployment,
    practice_deployment,
)
from srs.research.session import SYNTHETIC_CONTEXT
from srs.research.surface import OPEN, SYNTHETIC
from srs.research.values import SessionError
from synthetic.open_data import open_data
from synthetic.research_questions import protected_answers
from synthetic.vault_replicas import ReplicaNotFound

ALL = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
SUMMARY = "NOTEBOOK_SUMMARY "
# The research notebooks and the question (synthetic.research_questions) each answers.
QUESTIONS = {
    "victim_attrition.ipynb": ("victim_attrition_by_stage", "linked/victims", "victim_attrition"),
    "reoffending.ipynb": (
        "reoffending_by_sentence_type",
        "linked/reoffending",
        "reoffending_by_sentence",
    ),
    "remand.ipynb": ("remand_share", "linked/journeys", "remand_share"),
}


@pytest.fixture(scope="module")
def practice(environment, tmp_path_factory):  # noqa: F811 (the imported fixture)
    """Runs a notebook (once) on the open export in a practice session kept in a folder of its
    own: (executed notebook, practice home)."""
    folder = tmp_path_factory.mktemp("practice-runs")

    @cache
    def run(name: str) -> tuple[nbformat.NotebookNode, Path]:
        home = folder / f"{Path(name).stem}-practice"
        executed = execute(
            NOTEBOOKS / name,
            folder / name,
            {"SRS_PRACTICE_HOME": str(home)},
            source="open",
            open_data_path=str(environment.export),
        )
        return executed, home

    return run


def summary(notebook: nbformat.NotebookNode) -> dict:
    (line,) = [line for line in printed(notebook).splitlines() if line.startswith(SUMMARY)]
    return json.loads(line[len(SUMMARY) :])


def outputs_in(database_url: str, project: str, author: str, after: int = 0) -> list[Output]:
    """The outputs of ``author`` in ``project`` after id ``after``, from the registry."""
    registry = open_registry(database_url)
    try:
        with registry.sessions() as db:
            return list(
                db.execute(
                    select(Output)
                    .join(Project, Project.id == Output.project_id)
                    .where(Project.code == project, Output.author == author, Output.id > after)
                    .order_by(Output.id)
                ).scalars()
            )
    finally:
        registry.dispose()


# ------------------------------------------------------------------ every notebook, on the export
def test_the_notebooks_are_found():
    assert {"student_introduction.ipynb", *QUESTIONS} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_a_notebook_has_source_parameters_and_one_data_source_cell(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    cells = code_cells(notebook)
    (parameters,) = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    for line in ('source = "open"', "open_data_path = None", "submit = True"):
        assert line in parameters.source.splitlines()
    pickers = [
        c.source for c in cells if "srs.session(" in c.source or "srs.open_data(" in c.source
    ]
    assert len(pickers) == 1
    assert "s = srs.session(source=source, open_data_path=open_data_path)" in pickers[0]
    assert "s.submit(" in "".join(c.source for c in cells)


@pytest.mark.parametrize("name", ALL)
def test_a_notebook_runs_on_the_export_and_submits_its_outputs_in_a_practice_session(
    name, practice
):
    executed, home = practice(name)
    assert is_practice_deployment(home)
    assert "NOTE: SYNTHETIC DATA" in printed(executed) and "PRACTICE SESSION" in printed(executed)
    practice_url = practice_deployment(home).database_url
    outputs = outputs_in(practice_url, PRACTICE_PROJECT, PRACTICE_RESEARCHER)
    assert outputs, "the notebook recorded no output"
    requests = {output.request_id for output in outputs}
    assert len(requests) == 1 and None not in requests
    assert all(output.status == "submitted" for output in outputs)
    assert all(output.context.startswith(SYNTHETIC_CONTEXT[OPEN]) for output in outputs)
    registry = open_registry(practice_url)
    try:
        with registry.sessions() as db:
            assert db.get(ReleaseRequest, requests.pop()).status == "submitted"
    finally:
        registry.dispose()


@pytest.mark.parametrize("name", sorted(QUESTIONS))
def test_a_research_notebook_releases_the_questions_protected_answers(
    name,
    practice,
    environment,  # noqa: F811 (the imported fixture)
    policies,
):
    """Its released rates are those synthetic.research_questions.protected_answers gives on the
    same table under the same SDC profile: the notebook follows the question's definition."""
    question, dataset, key = QUESTIONS[name]
    executed, home = practice(name)
    got = summary(executed)
    expected = protected_answers(
        question, open_data(path=environment.export)[dataset], policies.sdc
    )
    assert set(got["results"][key]) == set(expected)
    for group, answer in expected.items():
        assert got["results"][key][group] == answer.rate, (group, answer)
    practice_url = practice_deployment(home).database_url
    made = [o.id for o in outputs_in(practice_url, PRACTICE_PROJECT, PRACTICE_RESEARCHER)]
    assert got["outputs"] == made and got["source"] == "open"
    assert got["project"] == PRACTICE_PROJECT and got["request_id"] is not None


# ------------------------------------------------------------------ srs run in a deployment
def last_ids(pipeline) -> tuple[int, int]:  # noqa: F811
    with pipeline.registry.sessions() as db:
        outputs = db.execute(select(Output.id).order_by(Output.id.desc())).scalars().first()
        audit = db.execute(select(AuditEvent.seq).order_by(AuditEvent.seq.desc())).scalars().first()
    return outputs or 0, audit or 0


def events(pipeline, after: int, action: str) -> list[AuditEvent]:  # noqa: F811
    with pipeline.registry.sessions() as db:
        return list(
            db.execute(
                select(AuditEvent)
                .where(AuditEvent.seq > after, AuditEvent.action == action)
                .order_by(AuditEvent.seq)
            ).scalars()
        )


@pytest.mark.parametrize(
    ("name", "source", "read"),
    [
        ("reoffending.ipynb", "vault", "linked/reoffending"),
        ("victim_attrition.ipynb", "synthetic", "synthetic/victims"),
    ],
)
def test_srs_run_records_the_notebooks_outputs_into_the_projects_queue(
    name,
    source,
    read,
    environment,  # noqa: F811 (the imported fixture)
    pipeline,  # noqa: F811
):
    before, audit_before = last_ids(pipeline)
    result = cli(
        environment.home,
        "run",
        str(NOTEBOOKS / name),
        "--on",
        source,
        "--project",
        PROJECT,
        actor=RESEARCHER,
    )
    assert result.exit_code == 0, result.output
    outputs = outputs_in(pipeline.deployment.database_url, PROJECT, RESEARCHER, after=before)
    assert outputs and all(o.status == "submitted" for o in outputs)
    (request_id,) = {o.request_id for o in outputs}
    for output in outputs:
        assert f"output #{output.id} {output.name!r}" in result.output
        assert output.context.startswith(SYNTHETIC_CONTEXT[SYNTHETIC]) == (source == "synthetic")
    assert f"release request #{request_id} is in the checkers' queue" in result.output
    (saved,) = (environment.home / "runs" / PROJECT).glob(f"*-{Path(name).stem}.ipynb")
    assert f"Executed notebook: {saved}" in result.output
    executed = nbformat.read(saved, as_version=4)
    assert summary(executed)["request_id"] == request_id
    (run,) = events(pipeline, audit_before, "notebook.run")
    assert run.actor == RESEARCHER and run.outcome == "ok" and run.target == f"{PROJECT}/{name}"
    details = json.loads(run.details)
    assert details["outputs"] == [o.id for o in outputs] and details["source"] == source
    assert details["requests"] == [request_id] and details["executed"] == str(saved.resolve())
    reads = {e.target.split("@")[0] for e in events(pipeline, audit_before, "vault.read")}
    assert reads == {read}


@pytest.fixture
def failing_notebook(tmp_path) -> Path:
    """A notebook that records one output, then raises."""
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('source = "open"\nopen_data_path = None\nsubmit = True')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [
        parameters,
        nbformat.v4.new_code_cell(
            "import srs\n\ns = srs.session(source=source, open_data_path=open_data_path)"
        ),
        nbformat.v4.new_code_cell(
            's.crosstab("linked/journeys", "sex", name="before the failure")'
        ),
        nbformat.v4.new_code_cell('raise RuntimeError("the analysis went wrong here")'),
    ]
    path = tmp_path / "failing.ipynb"
    nbformat.write(notebook, path)
    return path


def test_a_failing_notebook_exits_2_with_its_error_and_is_saved(
    failing_notebook,
    tmp_path,
    environment,  # noqa: F811 (the imported fixture)
    pipeline,  # noqa: F811
):
    before, audit_before = last_ids(pipeline)
    out = tmp_path / "runs"
    args = [str(failing_notebook), "--on", "vault", "--project", PROJECT, "--out", str(out)]
    result = cli(environment.home, "run", *args, actor=RESEARCHER)
    assert result.exit_code == 2, result.output
    assert "RuntimeError: the analysis went wrong here" in result.output
    assert "failed at In [5]" in result.output  # papermill's parameters cell comes before it
    (saved,) = out.glob("*-failing.ipynb")
    errors = [
        output
        for cell in code_cells(nbformat.read(saved, as_version=4))
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert [error.ename for error in errors] == ["RuntimeError"]
    (recorded,) = outputs_in(pipeline.deployment.database_url, PROJECT, RESEARCHER, after=before)
    assert recorded.name == "before the failure" and f"output #{recorded.id}" in result.output
    (run,) = events(pipeline, audit_before, "notebook.run")
    assert run.outcome == "error" and "RuntimeError" in run.reason


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no/such/notebook.ipynb", "--on", "vault"], "no notebook 'no/such/notebook.ipynb'"),
        (["notebooks/remand.ipynb", "--on", "nonsense"], "--on must be one of synthetic, vault"),
        (["notebooks/remand.ipynb", "--on", "vault", "-p", "source=open"], "use --on"),
        (["notebooks/remand.ipynb", "--on", "vault", "-p", "nothing"], "KEY=VALUE"),
        (["README.md", "--on", "vault"], "is not a Jupyter notebook"),
    ],
)
def test_srs_run_refuses_bad_inputs_before_running_anything(
    args,
    message,
    environment,  # noqa: F811 (the imported fixture)
    monkeypatch,
):
    monkeypatch.chdir(NOTEBOOKS.parent)
    runs = environment.home / "runs"
    before = sorted(runs.rglob("*")) if runs.exists() else []
    result = cli(environment.home, "run", *args, "--project", PROJECT, actor=RESEARCHER)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert (sorted(runs.rglob("*")) if runs.exists() else []) == before


def test_srs_run_as_someone_outside_the_project_is_denied_before_running(
    environment,  # noqa: F811 (the imported fixture)
):
    notebook = str(NOTEBOOKS / "remand.ipynb")
    for actor in (STUDENT, STEWARD):
        result = cli(
            environment.home, "run", notebook, "--on", "vault", "--project", PROJECT, actor=actor
        )
        assert result.exit_code == 2 and "access denied" in result.output


# ------------------------------------------------------------------ the data sources themselves
def test_a_practice_session_reads_the_open_tables_in_a_deployment_of_its_own(
    environment,  # noqa: F811 (the imported fixture)
    tmp_path,
    capsys,
):
    home = (tmp_path / "practice").resolve()
    tables = open_data(path=environment.export)
    with srs.session(source="open", open_data_path=environment.export, practice_home=home) as s:
        assert "NOTE: SYNTHETIC DATA" in capsys.readouterr().out and s.notice
        assert (s.user, s.project, s.source) == (PRACTICE_RESEARCHER, PRACTICE_PROJECT, "open")
        assert repr(s).endswith(f"({home}, on open data)>")
        assert s.datasets() == list(LINKED)
        for name in LINKED:
            pd.testing.assert_frame_equal(s.dataset(name), tables.dataset(name))
            assert s.dictionary_of(name) == tables.data_dictionary(name)
        table = s.crosstab("linked/journeys", "sex", context="practice")
        request_id = s.submit("practice request")
    practice_url = practice_deployment(home).database_url
    (output,) = outputs_in(practice_url, PRACTICE_PROJECT, PRACTICE_RESEARCHER)
    assert output.id == table.attrs["srs_output_id"] and output.request_id == request_id
    assert output.context == f"{SYNTHETIC_CONTEXT[OPEN]} practice"
    # Its vault holds the open tables under their linked names, nothing of the real vault.
    registry = open_registry(practice_url)
    with registry.sessions() as db:
        stored = {d.name: d.row_count for d in db.execute(select(Dataset)).scalars()}
    registry.dispose()
    assert stored == {name: len(tables[name]) for name in LINKED}
    # A second session there reuses it: the same data, no new versions, earlier outputs kept.
    with srs.session(source="open", open_data_path=environment.export, practice_home=home) as s:
        assert len(s.outputs()) == 1
    registry = open_registry(practice_url)
    with registry.sessions() as db:
        assert len(list(db.execute(select(Dataset.id)).scalars())) == len(LINKED)
    registry.dispose()


def test_a_practice_session_never_writes_into_another_folder_and_takes_no_identity(
    environment,  # noqa: F811 (the imported fixture)
    tmp_path,
):
    with pytest.raises(SessionError, match="holds no practice deployment"):
        srs.session(
            source="open", open_data_path=environment.export, practice_home=environment.home
        )
    with pytest.raises(SessionError, match="leave out user, project"):
        srs.session(RESEARCHER, PROJECT, source="open", open_data_path=environment.export)
    with pytest.raises(SessionError, match="source must be 'vault'"):
        srs.session(RESEARCHER, PROJECT, home=environment.home, source="nonsense")
    with pytest.raises(SessionError, match="open_data_path applies only to source='open'"):
        srs.session(RESEARCHER, PROJECT, home=environment.home, open_data_path=tmp_path)


def test_the_synthetic_source_reads_the_replicas_and_marks_its_outputs(
    environment,  # noqa: F811 (the imported fixture)
    pipeline,  # noqa: F811
):
    _, audit_before = last_ids(pipeline)
    with srs.session(RESEARCHER, PROJECT, home=environment.home, source=SYNTHETIC) as s:
        assert s.datasets() == list(LINKED) and "SYNTHETIC DATA" in s.notice
        journeys = s.dataset("linked/journeys")
        table = s.crosstab(journeys, "sex", context="sex of arrested people")
        s.describe(table, context="rewritten by the researcher")
        with pytest.raises(ReplicaNotFound, match="name a linked dataset"):
            s.dataset("synthetic/journeys")
        with pytest.raises(ReplicaNotFound, match="no synthetic replica of linked/nothing"):
            s.dataset("linked/nothing")
    with pipeline.registry.sessions() as db:
        replica = pipeline.vault.read_synthetic(db, "synthetic/journeys", actor=STEWARD)
        record = db.get(Output, table.attrs["srs_output_id"])
        assert record.context == f"{SYNTHETIC_CONTEXT[SYNTHETIC]} rewritten by the researcher"
    journeys.attrs.clear()
    pd.testing.assert_frame_equal(journeys, replica)
    reads = {
        (e.actor, e.target.split("@")[0], e.outcome)
        for e in events(pipeline, audit_before, "vault.read")
    }
    assert (RESEARCHER, "synthetic/journeys", "ok") in reads
    assert not any(target.startswith("linked/") for _, target, _ in reads)

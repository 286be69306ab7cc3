"""Output records: what a researcher wants to take out, with its evidence, in the registry.

An output (DESIGN.md, "Outputs: one contract") has a project, an author, a kind, its content in
open form, the checks run on it with their evidence, the researcher's context and controls, a
status and a SHA-256 checksum of its canonical content, and the files a release would carry
(CSV, JSON, PNG...), each passed through the file gate before it is stored. It is born a
``draft``; its author may rename it, comment on it, remove it or ask for an exception, until
it is submitted; the release workflow (``output_checking.workflow``) moves it on. A
``dp_result`` always names the budget spend that paid for it, so a checker sees at a glance
that it is differentially private and needs no cell suppression.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from disclosure.evidence import STATUS_RANK, TableCheck
from disclosure.file_gate import FileGateRules, check_file
from srs.errors import SRSError
from srs.governance.access import authorise
from srs.governance.audit import canonical_details, field_bound, record_event
from srs.governance.policy import PolicySet
from srs.governance.registry.models import Dataset, Output, OutputComment, OutputFile, Project
from srs.governance.registry.projects import project_records

FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}")
OUTPUT_KINDS = ("table", "model", "figure", "dp_result", "custom")
DRAFT = "draft"
REMOVED = "removed"
# Where an output may be edited by its author: before submission, or when changes were asked.
EDITABLE = ("draft", "changes_requested")
COMMENT_VISIBILITY = ("checkers", "researcher")
# What an output records of each dataset version it was made from.
DATASET_USE_FIELDS = ("name", "version", "content_hash")


class OutputError(SRSError):
    """An output cannot be recorded as asked (unknown kind, project, or a DP result without spend)."""


def file_stem(name: str) -> str:
    """The stem of an output's file names: its name in lower case, runs of anything but letters,
    digits, '.', '_' and '-' made one '-' (the names ``record_output`` accepts).

    >>> file_stem("Offences by sex (2)")
    'offences-by-sex-2'
    """
    stem = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")[:80].strip("-._")
    return stem or "output"


def dataset_use(dataset: Dataset) -> dict[str, Any]:
    """What an output records of a dataset version it was made from: name, version, hash."""
    return {"name": dataset.name, "version": dataset.version, "content_hash": dataset.content_hash}


def combined_uses(*groups: Any) -> list[dict[str, Any]]:
    """The dataset versions of ``groups`` (lists of ``dataset_use`` records), each once, by name
    then version: what an output made after all those reads records.

    >>> use = {"name": "linked/journeys", "version": 2, "content_hash": "ab"}
    >>> combined_uses([use], [use, {**use, "version": 1}])[0]["version"]
    1
    """
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for group in groups:
        for use in checked_uses(group):
            found.setdefault((use["name"], use["version"]), use)
    return [found[key] for key in sorted(found)]


def checked_uses(value: Any) -> list[dict[str, Any]]:
    """``value`` as a list of dataset-use records (``dataset_use``), or ``OutputError`` saying
    what is wrong with it: the environment writes them, so a malformed one is a fault."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise OutputError(
            f"datasets_used must be a list of {{name, version, content_hash}}, not "
            f"{type(value).__name__}"
        )
    uses = []
    for use in value:
        if (
            not isinstance(use, dict)
            or set(use) != set(DATASET_USE_FIELDS)
            or not isinstance(use["name"], str)
            or isinstance(use["version"], bool)
            or not isinstance(use["version"], int)
            or not isinstance(use["content_hash"], str)
        ):
            raise OutputError(
                f"a dataset use is {{name: text, version: whole number, content_hash: text}}, "
                f"not {use!r}"[:300]
            )
        uses.append({field: use[field] for field in DATASET_USE_FIELDS})
    return uses


def describe_uses(uses: Any) -> str:
    """Dataset versions as a checker reads them: ``linked/journeys@3 (sha256 1f2e3d4c5b6a...)``.

    >>> describe_uses([{"name": "linked/journeys", "version": 3, "content_hash": "sha256:1f2e"}])
    'linked/journeys@3 (sha256:1f2e)'
    """
    described = [
        f"{use['name']}@{use['version']} ({str(use['content_hash'])[:23]})"
        for use in checked_uses(uses)
    ]
    return ", ".join(described) or "none recorded"


def file_gate_rules(policies: PolicySet) -> FileGateRules:
    """The file gate's rules from the release policy."""
    release = policies.release
    return FileGateRules(
        allowed_file_types=release.allowed_file_types,
        max_file_size_mb=release.max_file_size_mb,
        max_csv_rows=release.max_csv_rows,
        identifier_column_patterns=release.identifier_column_patterns,
    )


def table_content(table: Any) -> dict[str, Any]:
    """A released table (pandas DataFrame or Series) as JSON-safe ``split`` form, with names."""
    import pandas as pd

    frame = table.to_frame() if isinstance(table, pd.Series) else table
    split = json.loads(frame.to_json(orient="split", date_format="iso"))
    split["index_names"] = [None if n is None else str(n) for n in frame.index.names]
    split["column_names"] = [None if n is None else str(n) for n in frame.columns.names]
    return split


def content_table(split: dict[str, Any]) -> Any:
    """The DataFrame back from ``table_content``'s form."""
    import pandas as pd

    def labels(values: list, names: list) -> pd.Index:
        if len(names) > 1:
            return pd.MultiIndex.from_tuples([tuple(v) for v in values], names=names)
        return pd.Index(values, name=names[0] if names else None)

    return pd.DataFrame(
        split["data"],
        index=labels(split["index"], split.get("index_names", [None])),
        columns=labels(split["columns"], split.get("column_names", [None])),
    )


def content_checksum(content: dict[str, Any]) -> str:
    """SHA-256 of the content's canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record_output(
    session: Session,
    *,
    project_code: str,
    author: str,
    kind: str,
    name: str,
    content: dict[str, Any],
    checks: list[dict[str, Any]] | None = None,
    context: str = "",
    controls: str = "",
    budget_spend_id: int | None = None,
    files: dict[str, bytes] | None = None,
    file_rules: FileGateRules | None = None,
    datasets_used: list[dict[str, Any]] | None = None,
) -> Output:
    """Add a draft output in the caller's transaction, audited; the caller commits.

    ``files`` maps file names to the exact bytes a release would carry; with ``file_rules``
    each is checked by the file gate first and a file that may not leave raises ``OutputError``.
    ``datasets_used`` are the dataset versions the session had read (``dataset_use`` records),
    as the environment recorded them.
    """
    datasets_used = combined_uses(datasets_used)
    if kind not in OUTPUT_KINDS:
        raise OutputError(f"output kind {kind!r} is not one of {', '.join(OUTPUT_KINDS)}")
    if (kind == "dp_result") != (budget_spend_id is not None):
        raise OutputError(
            "a dp_result must name the budget spend that paid for it, and only a dp_result may"
        )
    if not name or not name.strip():
        raise OutputError("give the output a name a checker can recognise")
    project = session.execute(
        select(Project).where(Project.code == project_code)
    ).scalar_one_or_none()
    if project is None:
        raise OutputError(f"no project {project_code!r}")
    files = files or {}
    gate = []
    for file_name, data in files.items():
        if not FILE_NAME.fullmatch(file_name):
            raise OutputError(
                f"file name {file_name!r} is not allowed: use letters, digits, '.', '_' and '-'"
            )
        if file_rules is not None:
            verdict = check_file(file_name, data, file_rules)
            if not verdict.allowed:
                raise OutputError(
                    f"{file_name} may not leave the environment: {'; '.join(verdict.reasons)}"
                )
            gate.append(verdict.to_dict())
    if gate:
        checks = [
            *(checks or []),
            {
                "check": "file_gate",
                "status": "ok",
                "message": f"{len(gate)} file(s) of allowed type, size and columns",
                "files": gate,
            },
        ]
    output = Output(
        project_id=project.id,
        author=author,
        kind=kind,
        name=name.strip(),
        status=DRAFT,
        differentially_private=kind == "dp_result",
        budget_spend_id=budget_spend_id,
        content=content,
        checks=checks or [],
        context=context,
        controls=controls,
        checksum=content_checksum(content),
        datasets_used=datasets_used,
        files=[
            OutputFile(
                name=file_name,
                content=data,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
            )
            for file_name, data in files.items()
        ],
    )
    session.add(output)
    session.flush()
    recorded = {f.name: f.sha256 for f in output.files}
    details = {
        "output_id": output.id,
        "kind": kind,
        "name": output.name,
        "checksum": output.checksum,
        "budget_spend_id": budget_spend_id,
        # What a release is checked against (output_checking.release): the digest always fits
        # the audit field bound; the per-file list goes in too when it fits whole.
        "file_count": len(recorded),
        "files_sha256": files_digest(recorded),
        "files": recorded,
        "datasets_used": [f"{use['name']}@{use['version']}" for use in datasets_used],
    }
    for longest in ("files", "datasets_used"):
        if len(canonical_details(details)) > field_bound(session):
            del details[longest]
    record_event(
        session,
        actor=author,
        action="output.create",
        target=project_code,
        outcome="ok",
        details=details,
    )
    return output


def files_digest(files: dict[str, str]) -> str:
    """SHA-256 of an output's files as name -> SHA-256 pairs (canonical JSON, sorted by name):
    one value that fixes both the set of files and every file's bytes.

    >>> files_digest({}) == hashlib.sha256(b"[]").hexdigest()
    True
    """
    pairs = sorted([name, sha256] for name, sha256 in files.items())
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()


def get_output(session: Session, output_id: int) -> Output:
    """The output with this id, or ``OutputError``."""
    output = session.get(Output, output_id)
    if output is None:
        raise OutputError(f"no output #{output_id}")
    return output


def _project_code(session: Session, output: Output) -> str:
    return session.get(Project, output.project_id).code


def _own_editable(
    session: Session, output_id: int, actor: str, policies: PolicySet, change: str
) -> Output:
    """The author's own output, still editable; every refusal is audited before it is raised."""
    output = get_output(session, output_id)
    code = _project_code(session, output)
    authorise(session, username=actor, action="output.create", policies=policies, project_code=code)
    problem = None
    if output.author != actor:
        problem = f"output #{output_id} is {output.author}'s; only its author may {change} it"
    elif output.status not in EDITABLE:
        problem = (
            f"output #{output_id} is {output.status}; it can only be changed while a draft or "
            "when a checker has asked for changes"
        )
    if problem:
        record_event(
            session,
            actor=actor,
            action=f"output.{change}",
            target=code,
            outcome="deny",
            reason=problem,
            details={"output_id": output_id},
        )
        session.commit()
        raise OutputError(problem)
    return output


def _audit_change(session: Session, output: Output, actor: str, change: str, **details) -> None:
    record_event(
        session,
        actor=actor,
        action=f"output.{change}",
        target=_project_code(session, output),
        outcome="ok",
        details={"output_id": output.id, **details},
    )
    session.commit()


def rename_output(
    session: Session, *, output_id: int, actor: str, policies: PolicySet, name: str
) -> Output:
    """Give a draft output a name a checker will recognise."""
    if not name or not name.strip():
        raise OutputError("give the output a name a checker can recognise")
    output = _own_editable(session, output_id, actor, policies, "rename")
    old, output.name = output.name, name.strip()
    _audit_change(session, output, actor, "rename", old=old, new=output.name)
    return output


def describe_output(
    session: Session,
    *,
    output_id: int,
    actor: str,
    policies: PolicySet,
    context: str | None = None,
    controls: str | None = None,
) -> Output:
    """Set the researcher's context ("what is this") and controls ("what did I apply")."""
    output = _own_editable(session, output_id, actor, policies, "describe")
    if context is not None:
        output.context = context
    if controls is not None:
        output.controls = controls
    _audit_change(session, output, actor, "describe")
    return output


def remove_output(session: Session, *, output_id: int, actor: str, policies: PolicySet) -> Output:
    """Take a draft out of what will be submitted (it stays on record, marked removed)."""
    output = _own_editable(session, output_id, actor, policies, "remove")
    output.status = REMOVED
    _audit_change(session, output, actor, "remove")
    return output


def request_exception(
    session: Session, *, output_id: int, actor: str, policies: PolicySet, justification: str
) -> Output:
    """Ask the checkers to release an output although an automatic check failed, saying why."""
    if not justification or len(justification.strip()) < 20:
        raise OutputError(
            "an exception needs a justification a checker can weigh (at least 20 characters): "
            "why is this output safe, and why is it needed?"
        )
    output = _own_editable(session, output_id, actor, policies, "request_exception")
    output.exception_justification = justification.strip()
    _audit_change(session, output, actor, "request_exception")
    return output


def add_comment(
    session: Session,
    *,
    actor: str,
    text: str,
    visibility: str,
    output: Output | None = None,
    request_id: int | None = None,
) -> OutputComment:
    """Record a comment in the caller's transaction (callers authorise the actor first)."""
    if visibility not in COMMENT_VISIBILITY:
        raise OutputError(f"comment visibility must be one of {', '.join(COMMENT_VISIBILITY)}")
    if not text or not text.strip():
        raise OutputError("a comment needs some text")
    comment = OutputComment(
        output_id=output.id if output is not None else None,
        request_id=request_id
        if request_id is not None
        else (output.request_id if output else None),
        author=actor,
        visibility=visibility,
        text=text.strip(),
    )
    session.add(comment)
    session.flush()
    return comment


def comment_on_own_output(
    session: Session, *, output_id: int, actor: str, policies: PolicySet, text: str
) -> OutputComment:
    """The author's note on their output, for the checkers (and themself) to read."""
    output = get_output(session, output_id)
    code = _project_code(session, output)
    authorise(session, username=actor, action="output.create", policies=policies, project_code=code)
    if output.author != actor:
        raise OutputError(f"output #{output_id} is {output.author}'s; comment on your own outputs")
    comment = add_comment(session, actor=actor, text=text, visibility="researcher", output=output)
    _audit_change(session, output, actor, "comment", comment_id=comment.id)
    return comment


def acro_record(output: Output, files: list[str]) -> dict[str, Any]:
    """The output as one record of ACRO's ``results.json`` (DESIGN: outputs, one contract), so
    checkers' existing tools (SACRO-Viewer) can read a release.

    A table's record carries ACRO's per-cell outcome from the stored evidence; every record's
    status is the output's own (a suppressed table is ``review``, as in ACRO), its exception
    the researcher's justification and its comments the researcher's context and controls.
    """
    statuses = [c.get("status", "ok") for c in output.checks or []]
    worst = max(statuses, key=lambda s: STATUS_RANK.get(s, 0), default="ok")
    evidence = next(
        (
            c["evidence"]
            for c in output.checks or []
            if (c.get("evidence") or {}).get("kind") == "table"
        ),
        None,
    )
    if evidence is not None:
        record = TableCheck.from_dict(evidence).to_acro_record(f"output_{output.id}", files=files)
    else:
        record = {
            "uid": f"output_{output.id}",
            "type": output.kind,
            "properties": {},
            "files": [{"name": name, "sdc": {}} for name in files],
            "outcome": {},
            "command": "",
            "summary": "; ".join(str(c.get("message", "")) for c in output.checks or []),
            "fair": {},
        }
    record.update(
        {
            "status": {"ok": "pass", "review": "review", "fail": "fail"}.get(worst, "review"),
            "type": output.kind if output.kind != "dp_result" else "custom",
            "properties": {
                **record.get("properties", {}),
                "name": output.name,
                "datasets_used": list(output.datasets_used or []),
            },
            "timestamp": output.created_at.isoformat(),
            "comments": [text for text in (output.context, output.controls) if text],
            "exception": output.exception_justification or "",
        }
    )
    return record


def project_outputs(session: Session, project_code: str) -> list[Output]:
    """Every output of a project, oldest first."""
    return project_records(session, Output, project_code)

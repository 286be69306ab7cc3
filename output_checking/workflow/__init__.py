"""The release workflow: a researcher's request, blinded independent reviews, and the outcome.

A release request moves ``draft -> submitted -> partially_reviewed -> reviewed -> approved |
changes_requested | rejected -> released`` (or ``withdrawn`` by its author before a decision);
every transition is audited with the request as target, so the audit log is its history.

Each checker votes on every output of the request: ``approve``, ``reject`` or
``request_changes``. A checker's review is complete once they have voted on every output. The
policy's ``independent_reviews`` (two by default, as in the OpenSAFELY airlock and the ONS SRS)
complete reviews make the request ``reviewed``; while ``blind_reviews`` holds, no checker sees
another's votes until then. If the reviewers agree on every output the request is decided at
once: any output needing changes sends the request back to its author
(``changes_requested``), otherwise it is ``approved`` when at least one output is approved
(rejected outputs stay behind) and ``rejected`` when none is. Where they disagree the conflict
is shown and either reviewer may change their vote. The two-person rule is enforced by
``srs.governance.access``: a checker never reviews a request of a project they belong to.

Before an approve vote counts on a table (or a histogram's counts), the differencing check runs
against the tables the project has already released and the other tables of the same request,
which would be released with it; a disclosive difference refuses the vote unless the checker
records why it is safe. The approve vote's audit event fixes a digest of exactly what the
checker reviewed (``reviewed_fields``), which a release requires to be unchanged. Every refusal
is audited.

The parts: ``states`` (a request's states, its audited transitions and refusals),
``researcher`` (draft, submit, withdraw), ``differencing`` (the tables an output is compared
with), ``reviews`` (votes, the two-person rule, deciding), ``provenance`` (the data an output was
made from still held, under agreements in force), ``reviewed`` (the digest of what a
checker approved) and ``views`` (the queue and what each viewer may see of a request). Import
from here; the parts are the package's own layout.
"""

from __future__ import annotations

from output_checking.outputs import EDITABLE
from output_checking.workflow.differencing import (
    COUNTED_KINDS,
    differencing_summary,
    published_table,
    released_tables,
    run_differencing,
    together_tables,
)
from output_checking.workflow.provenance import dataset_problems, outputs_refusal
from output_checking.workflow.researcher import create_request, submit_request, withdraw_request
from output_checking.workflow.reviewed import (
    REVIEWED_FIELDS,
    changed_fields,
    field_digests,
    output_record,
    registry_files,
    reviewed_digest,
    reviewed_fields,
)
from output_checking.workflow.reviews import (
    authorise_checker,
    comment_on_request,
    complete_reviewers,
    conflicts,
    round_votes,
    vote,
)
from output_checking.workflow.states import (
    APPROVED,
    CHANGES_REQUESTED,
    DECISIONS,
    DRAFT,
    OUTPUT_STATUS_FOR,
    PARTIALLY_REVIEWED,
    REJECTED,
    RELEASED,
    REQUEST_STATES,
    REVIEWED,
    SUBMITTED,
    UNDER_REVIEW,
    WITHDRAWN,
    WorkflowError,
    get_request,
    refuse,
    request_outputs,
    request_target,
    transition,
)
from output_checking.workflow.views import (
    OutputView,
    QueueEntry,
    RequestView,
    checker_queue,
    project_requests,
    request_view,
)

__all__ = [
    "APPROVED",
    "CHANGES_REQUESTED",
    "COUNTED_KINDS",
    "DECISIONS",
    "DRAFT",
    "EDITABLE",
    "OUTPUT_STATUS_FOR",
    "PARTIALLY_REVIEWED",
    "REJECTED",
    "RELEASED",
    "REQUEST_STATES",
    "REVIEWED",
    "REVIEWED_FIELDS",
    "SUBMITTED",
    "UNDER_REVIEW",
    "WITHDRAWN",
    "OutputView",
    "QueueEntry",
    "RequestView",
    "WorkflowError",
    "authorise_checker",
    "changed_fields",
    "checker_queue",
    "comment_on_request",
    "complete_reviewers",
    "conflicts",
    "create_request",
    "dataset_problems",
    "differencing_summary",
    "field_digests",
    "get_request",
    "output_record",
    "outputs_refusal",
    "project_requests",
    "published_table",
    "refuse",
    "registry_files",
    "released_tables",
    "request_outputs",
    "request_target",
    "request_view",
    "reviewed_digest",
    "reviewed_fields",
    "round_votes",
    "run_differencing",
    "submit_request",
    "together_tables",
    "transition",
    "vote",
    "withdraw_request",
]

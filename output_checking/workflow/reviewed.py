"""What a checker reviewed of an output: the fields an approve vote's audit event fixes by digest,
and a release requires its rows still to give.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from output_checking.outputs import content_checksum, files_digest
from srs.governance.registry.models import Output

# What a checker reviews of an output and a release carries: an approve vote's audit event
# fixes their digest, and a release refuses an output whose rows no longer give it.
_ROW_FIELDS = (
    "kind",
    "name",
    "author",
    "context",
    "controls",
    "exception_justification",
    "differentially_private",
    "budget_spend_id",
)
# The dataset versions an output was made from are reviewed too, when it records any: a vote
# cast before outputs recorded them (none) keeps its digest.
DATASETS_USED = "datasets_used"
REVIEWED_FIELDS = (*_ROW_FIELDS, "content_sha256", "files_sha256", "checks", DATASETS_USED)


def reviewed_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The reviewed fields of an output record (``output_record``, or a manifest's record with
    its ``files_sha256``). Of the checks, each one's check, status and message, except the
    differencing check's, which re-runs as the project releases more. ``datasets_used`` is
    left out when empty, so what an approval before it existed fixed still gives its digest."""
    fields = {name: record.get(name) for name in REVIEWED_FIELDS}
    if not fields[DATASETS_USED]:
        del fields[DATASETS_USED]
    fields["checks"] = [
        {key: check.get(key) for key in ("check", "status", "message")}
        for check in record.get("checks") or []
        if check.get("check") != "differencing"
    ]
    return fields


def registry_files(output: Output) -> dict[str, str]:
    """An output's files as the registry holds them: name -> SHA-256 of the stored bytes (not
    of the editable ``sha256`` column)."""
    return {f.name: hashlib.sha256(f.content).hexdigest() for f in output.files}


def output_record(output: Output) -> dict[str, Any]:
    """An output's reviewed fields as its registry rows give them now."""
    return reviewed_fields(
        {
            **{name: getattr(output, name) for name in _ROW_FIELDS},
            "content_sha256": content_checksum(output.content),
            "files_sha256": files_digest(registry_files(output)),
            "checks": output.checks,
            DATASETS_USED: output.datasets_used,
        }
    )


def reviewed_digest(fields: Mapping[str, Any]) -> str:
    """SHA-256 of the reviewed fields' canonical JSON: what an approve vote's event records."""
    return content_checksum(dict(fields))


def field_digests(fields: Mapping[str, Any]) -> dict[str, str]:
    """Each reviewed field's own short digest, so a refusal can say which of them changed."""
    return {name: content_checksum({"value": value})[:16] for name, value in fields.items()}


def changed_fields(fields: Mapping[str, Any], recorded: Any) -> list[str]:
    """The reviewed fields whose digest differs from ``recorded`` (a vote event's
    ``reviewed``); empty when the event recorded none."""
    if not isinstance(recorded, dict):
        return []
    now = field_digests(fields)
    return [
        name
        for name in REVIEWED_FIELDS
        if recorded.get(name) != now.get(name) and (name in recorded or name in now)
    ]

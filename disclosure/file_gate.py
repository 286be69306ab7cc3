"""The file gate: what may leave the environment at all, whatever its statistics.

Every file of an output is checked for an allowed type (by extension and by content: a PNG
must start like a PNG, text must be UTF-8), a size limit, a row limit for CSV files, and
columns that look like record-level identifiers (``person_key``, ``case_key``, names,
police numbers...). The limits and patterns are policy values (``policies/release.yaml``).
Pure computation on bytes: the caller reads the files.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_TYPES = {"csv", "json", "txt", "md", "html"}


@dataclass(frozen=True)
class FileGateRules:
    """The gate's policy: allowed types, size, CSV rows and identifier column patterns."""

    allowed_file_types: Sequence[str]
    max_file_size_mb: float
    max_csv_rows: int
    identifier_column_patterns: Sequence[str]


@dataclass
class FileVerdict:
    """Whether one file may leave, and every reason it may not."""

    name: str
    allowed: bool
    reasons: list[str] = field(default_factory=list)
    rows: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "allowed": self.allowed,
            "reasons": self.reasons,
            "rows": self.rows,
        }


def check_file(name: str, content: bytes, rules: FileGateRules) -> FileVerdict:
    """Check one file, given its name and bytes."""
    reasons: list[str] = []
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    allowed_types = {t.lower().lstrip(".") for t in rules.allowed_file_types}
    if extension not in allowed_types:
        reasons.append(
            f"file type .{extension or '(none)'} is not allowed; allowed: {', '.join(sorted(allowed_types))}"
        )
    size_mb = len(content) / 1_000_000
    if size_mb > rules.max_file_size_mb:
        reasons.append(f"{size_mb:.1f} MB is over the {rules.max_file_size_mb:g} MB limit")
    rows = None
    if extension == "png" and not content.startswith(PNG_SIGNATURE):
        reasons.append("the file is named .png but is not a PNG image")
    if extension in TEXT_TYPES:
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            reasons.append(f"a .{extension} file must be UTF-8 text")
            text = None
        if text is not None and extension == "csv":
            rows, header = _csv_shape(text)
            if rows > rules.max_csv_rows:
                reasons.append(
                    f"{rows:,} rows is over the {rules.max_csv_rows:,}-row limit for tables (record-level data cannot leave)"
                )
            for column in identifier_columns(header, rules.identifier_column_patterns):
                reasons.append(f"column {column!r} looks like a record-level identifier")
    return FileVerdict(name=name, allowed=not reasons, reasons=reasons, rows=rows)


def _csv_shape(text: str) -> tuple[int, list[str]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    rows = sum(1 for row in reader if row)
    return rows, header


def identifier_columns(columns: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """Columns whose (lower-case) name matches any identifier pattern."""
    compiled = [re.compile(p) for p in patterns]
    return [c for c in columns if any(p.search(str(c).strip().lower()) for p in compiled)]

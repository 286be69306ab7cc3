"""The versions of a linked dataset, each with where it came from and what changed: what
``s.versions(name)`` gives a researcher and ``srs dataset show NAME`` lists for a steward.

Linked datasets are versioned per delivery (DESIGN.md, "Over time"): each version's catalogue
row holds its lineage (the deliveries behind it, by source and period, and the versions it was
derived from) and a summary of what changed against the previous version; a version whose
agreement ended is destroyed (shredded) and stays listed, marked, with no data behind it.

>>> version = DatasetVersion("linked/journeys", 2, 640, "2026-12-01T09:00:00+00:00",
...     "confidential", (("courts", "2026-11"),), (), {"added": 40}, False)
>>> print(version)
linked/journeys@2  640 rows  stored 2026-12-01  from courts 2026-11  changes: added 40
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.governance.registry.models import Dataset, Delivery


@dataclass(frozen=True)
class DatasetVersion:
    """One stored version of a dataset: its number, rows, when it was stored (ISO 8601, UTC), its
    classification, the deliveries behind it as (source, period) pairs, the versions it was
    derived from (``name@version``), what changed against the previous version, and whether it
    was destroyed (``shredded``, with when and why)."""

    name: str
    version: int
    rows: int
    stored_at: str
    classification: str
    deliveries: tuple[tuple[str, str], ...] = ()
    derived_from: tuple[str, ...] = ()
    change_summary: dict[str, Any] = field(default_factory=dict)
    shredded: bool = False
    shredded_at: str | None = None
    shredded_reason: str | None = None

    @property
    def lineage(self) -> str:
        """Where the version came from, in one line: its deliveries and the versions it was
        derived from (empty when a steward stored it by hand)."""
        parts = [f"{source} {period}" for source, period in self.deliveries]
        parts += [f"derived from {', '.join(self.derived_from)}"] if self.derived_from else []
        return "; ".join(parts)

    @property
    def changes(self) -> str:
        """The change summary in one line (``added 40, corrected 2``)."""
        return summary_text(self.change_summary)

    def __str__(self) -> str:
        line = f"{self.name}@{self.version}  {self.rows} rows  stored {self.stored_at[:10]}"
        if self.lineage:
            line += f"  from {self.lineage}"
        if self.changes:
            line += f"  changes: {self.changes}"
        if self.shredded:
            line += f"  DESTROYED {(self.shredded_at or '')[:10]} ({self.shredded_reason or ''})"
        return line


def summary_text(summary: Mapping[str, Any] | None) -> str:
    """A change summary as one line: each entry ``key value``, nested values as compact JSON.

    >>> summary_text({"added": 40, "withdrawn": 1, "keys": {"kept": 600}})
    'added 40, withdrawn 1, keys {"kept":600}'
    """
    if not isinstance(summary, Mapping):
        return ""
    parts = []
    for key, value in summary.items():
        shown = (
            json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
            if isinstance(value, Mapping | list)
            else value
        )
        parts.append(f"{key} {shown}")
    return ", ".join(parts)


def _delivery_ids(lineage: Any) -> list[int]:
    ids = lineage.get("deliveries") if isinstance(lineage, Mapping) else None
    if not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]


def version_of(dataset: Dataset, deliveries: Mapping[int, Delivery]) -> DatasetVersion:
    """One catalogue row as a ``DatasetVersion``; ``deliveries`` by id (a delivery the lineage
    names but the registry does not hold is shown as ``(unknown, #id)``)."""
    lineage = dataset.lineage if isinstance(dataset.lineage, Mapping) else {}
    delivered = []
    for delivery_id in _delivery_ids(lineage):
        found = deliveries.get(delivery_id)
        delivered.append(
            (found.source, found.period) if found else ("(unknown delivery)", f"#{delivery_id}")
        )
    derived = lineage.get("derived_from")
    return DatasetVersion(
        name=dataset.name,
        version=dataset.version,
        rows=dataset.row_count,
        stored_at=dataset.created_at.isoformat(),
        classification=dataset.classification,
        deliveries=tuple(delivered),
        derived_from=tuple(str(d) for d in derived) if isinstance(derived, list) else (),
        change_summary=dict(dataset.change_summary)
        if isinstance(dataset.change_summary, Mapping)
        else {},
        shredded=dataset.shredded_at is not None,
        shredded_at=dataset.shredded_at.isoformat() if dataset.shredded_at else None,
        shredded_reason=dataset.shredded_reason,
    )


def catalogue_versions(session: Session, name: str) -> list[DatasetVersion]:
    """Every stored version of dataset ``name``, oldest first, with its deliveries (empty when
    none is stored). Reads the catalogue only, never the data; the caller checks access."""
    rows = list(
        session.execute(
            select(Dataset).where(Dataset.name == name).order_by(Dataset.version)
        ).scalars()
    )
    wanted = {i for row in rows for i in _delivery_ids(row.lineage)}
    deliveries = (
        {
            d.id: d
            for d in session.execute(select(Delivery).where(Delivery.id.in_(wanted))).scalars()
        }
        if wanted
        else {}
    )
    return [version_of(row, deliveries) for row in rows]

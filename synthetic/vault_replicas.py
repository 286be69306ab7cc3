"""Synthetic replicas in a deployment: built from the vault, gated, stored, reported, exported.

The edges of ``synthetic/``: a steward's ``build_replica_in_vault`` reads the linked datasets
(``synthetic.build``, audited), makes and evaluates a replica, writes its HTML report and JSON
figures to ``HOME/synthetic/``, and stores it in the vault as public ``synthetic/*`` data only
when every privacy gate passed (a failure is audited and raised with its reasons), each
table with the lineage of the linked versions read (``replica_lineage``), so ending an
agreement behind them destroys the replica. ``export_open_data`` writes the stored replica as
an open-data package for anyone with ``synthetic.read`` and records the folder
(``open_data.export``). The CLI (``srs synth``) and the demo call these. A researcher session
on the ``synthetic`` source reads a stored replica in place of its linked dataset
(``read_replica``, ``stored_replicas``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from srs.errors import SRSError
from srs.governance.audit import record_event
from srs.governance.deployment import Deployment
from srs.governance.policy import PolicySet
from srs.governance.registry.models import Dataset
from srs.pipeline.agreement_end import lineage_of
from srs.vault.store import Vault

if TYPE_CHECKING:
    from synthetic.open_replica import EvaluatedReplica

LINKED_SET = ("linked/persons", "linked/journeys", "linked/victims", "linked/reoffending")
LINKED_AREA, SYNTHETIC_AREA = "linked/", "synthetic/"


class ReplicaRefused(SRSError):
    """A replica failed its privacy gates (or was asked for wrongly) and was not stored."""


class ReplicaNotFound(SRSError):
    """No replica of the linked dataset asked for is stored; the message says how to get one."""


def synthetic_name(linked_name: str) -> str:
    """The vault name of a linked dataset's replica: ``linked/persons`` -> ``synthetic/persons``."""
    return SYNTHETIC_AREA + linked_name.split("/", 1)[1]


def linked_name(replica_name: str) -> str:
    """The linked dataset a replica stands for: ``synthetic/persons`` -> ``linked/persons``."""
    return LINKED_AREA + replica_name.split("/", 1)[1]


def stored_replicas(session: Session) -> list[str]:
    """The linked datasets the vault holds a replica of, by their linked names, sorted."""
    names = session.execute(
        select(Dataset.name).where(Dataset.name.startswith(SYNTHETIC_AREA)).distinct()
    ).scalars()
    return sorted(linked_name(name) for name in names)


def read_replica(
    session: Session, vault: Vault, name: str, *, actor: str, version: int | None = None
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The stored replica of linked dataset ``name`` and its data dictionary, read in its place
    (``synthetic.read``, audited): what a session on the ``synthetic`` source reads.

    >>> frame, dictionary = read_replica(db, vault, "linked/journeys", actor="ana")  # doctest: +SKIP
    """
    if not name.startswith(LINKED_AREA):
        raise ReplicaNotFound(
            f"on synthetic data, name a linked dataset (e.g. linked/journeys), not {name!r}: "
            "replicas stand in for the linked datasets"
        )
    stored = synthetic_name(name)
    if not vault.exists(session, stored):
        held = ", ".join(stored_replicas(session)) or "none"
        raise ReplicaNotFound(
            f"the deployment holds no synthetic replica of {name} (replicas of: {held}); a "
            "steward builds them with `srs synth build`"
        )
    frame = vault.read_synthetic(session, stored, actor=actor, version=version)
    return frame, list(vault.get(session, stored, version).data_dictionary)


def reports_dir(deployment: Deployment, passed: bool = True) -> Path:
    """Where a build writes its report: passing builds apart from failing ones."""
    return deployment.home / "synthetic" / ("cross_justice" if passed else "cross_justice-failed")


def replica_lineage(read: list[Dataset]) -> dict[str, Any]:
    """The lineage every table of a replica is stored with: the sources and agreements of the
    linked versions it was built from, and those versions (``derived_from``), so ending an
    agreement behind them destroys the replica too."""
    sources: set[str] = set()
    agreements: dict[str, str] = {}
    for dataset in read:
        lineage = lineage_of(dataset)
        sources |= {str(source) for source in lineage["sources"]}
        agreements |= {str(k): str(v) for k, v in lineage["agreements"].items()}
    return {
        "sources": sorted(sources),
        "agreements": dict(sorted(agreements.items())),
        "derived_from": [f"{d.name}@{d.version}" for d in read],
    }


@dataclass
class BuiltReplica:
    """What a build stored and where its report is."""

    result: EvaluatedReplica
    stored: list[str]
    report: Path


def build_replica_in_vault(
    session: Session,
    vault: Vault,
    deployment: Deployment,
    policies: PolicySet,
    *,
    actor: str,
    datasets: list[str] | None = None,
    synthesizer: str = "gaussian_copula",
    persons: int | None = None,
    seed: int = 0,
    holdout_share: float = 0.25,
    progress: bool = False,
) -> BuiltReplica:
    """Build, gate and evaluate a replica of the linked set; store it only if it passed."""
    # Loaded here, not at import: sessions reading replicas need none of the synthesisers.
    from synthetic.open_replica import make_open_replica
    from synthetic.report import render_report

    asked = tuple(datasets or LINKED_SET)
    if sorted(asked) != sorted(LINKED_SET):
        raise ReplicaRefused(
            "a replica is built of the related set (persons -> journeys -> victims, "
            f"reoffending), so name all of {', '.join(LINKED_SET)} or none"
        )
    # The versions read are pinned first, so the lineage names exactly what was read.
    read = {name: vault.get(session, name) for name in asked}
    tables = {
        name: vault.read_for_synthesis(session, name, actor=actor, version=read[name].version)
        for name in asked
    }
    dictionaries = {name: read[name].data_dictionary for name in asked}
    lineage = replica_lineage(list(read.values()))
    session.commit()
    result = make_open_replica(
        tables,
        dictionaries,
        policies,
        synthesizer=synthesizer,
        persons=persons,
        seed=seed,
        holdout_share=holdout_share,
        progress=progress,
    )
    privacy, fidelity = result.privacy.to_dict(), result.fidelity.to_dict()
    folder = reports_dir(deployment, result.passed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "privacy.json").write_text(json.dumps(privacy, indent=2) + "\n")
    (folder / "fidelity.json").write_text(json.dumps(fidelity, indent=2) + "\n")
    (folder / "report.html").write_text(
        render_report(fidelity, privacy, title="Synthetic cross-justice replica")
    )
    details = {
        "synthesizer": synthesizer,
        "seed": seed,
        "quality": fidelity.get("overall_score"),
        # Which gates failed, short enough to survive the audit bound whole; the reasons
        # (longer, and cut first when there are many) follow.
        "failed_gates": result.privacy.failed_gates(),
        "failures": result.privacy.failures(),
    }
    if not result.passed:
        record_event(
            session,
            actor=actor,
            action="synthetic.build",
            target="synthetic/*",
            outcome="deny",
            reason="privacy gates failed",
            details=details,
        )
        session.commit()
        raise ReplicaRefused(
            "the replica failed its privacy gates and was not stored: "
            + "; ".join(result.privacy.failures())
            + f" (report: {folder / 'report.html'})"
        )
    stored = []
    for name, frame in result.replica.tables.items():
        vault.store(
            session,
            synthetic_name(name),
            frame,
            actor=actor,
            data_dictionary=result.replica.dictionaries.get(name) or dictionaries[name],
            lineage=lineage,
        )
        stored.append(synthetic_name(name))
    record_event(
        session,
        actor=actor,
        action="synthetic.build",
        target="synthetic/*",
        outcome="ok",
        details=details,
    )
    session.commit()
    return BuiltReplica(result=result, stored=stored, report=folder / "report.html")


@dataclass
class ExportedPackage:
    """Where the package went, how big it is, and whether it validates against its schema."""

    path: Path
    rows: int
    tables: int
    valid: bool


def export_open_data(
    session: Session,
    vault: Vault,
    deployment: Deployment,
    *,
    actor: str,
    out: Path,
    licence: str = "CC-BY-4.0",
    overwrite: bool = False,
) -> ExportedPackage:
    """Export the stored replica (``synthetic.read``, audited) with its passing reports; the
    folder written is recorded (``open_data.export``) so an agreement's destruction
    certificate can name the exports it cannot recall."""
    from synthetic.export import export_replica, validate_package

    folder = reports_dir(deployment, True)
    if not (folder / "privacy.json").exists():
        raise ReplicaRefused("no replica has passed its gates yet; run `srs synth build` first")
    stored = [vault.get(session, synthetic_name(name)) for name in LINKED_SET]
    tables = {
        name: vault.read_synthetic(session, d.name, actor=actor, version=d.version)
        for name, d in zip(LINKED_SET, stored, strict=True)
    }
    dictionaries = {name: d.data_dictionary for name, d in zip(LINKED_SET, stored, strict=True)}
    session.commit()
    path = export_replica(
        tables,
        dictionaries,
        out,
        fidelity=json.loads((folder / "fidelity.json").read_text()),
        privacy=json.loads((folder / "privacy.json").read_text()),
        licence=licence,
        overwrite=overwrite,
    )
    # Where it went, so that ending an agreement can name the exports it cannot recall.
    record_event(
        session,
        actor=actor,
        action="open_data.export",
        target=str(Path(path).resolve()),
        outcome="ok",
        details={"replica": [f"{d.name}@{d.version}" for d in stored]},
        max_field_chars=vault.policies.access.audit_field_max_chars,
    )
    session.commit()
    return ExportedPackage(
        path=path,
        rows=sum(len(t) for t in tables.values()),
        tables=len(tables),
        valid=not validate_package(path),
    )

"""Incremental linkage: score a delivery's new and changed records against the persons already
linked, with the model the last full link trained, and fold the links into the clusters
(:func:`refresh_clusters`).

The held records are never scored against each other again, so a refresh costs about what
the delivery costs, not what all the records cost. New links can only join: a new record that
links to two persons merges them. A split (records of one person found to be two) is found
only by a full relink (``srs link run``), which scores every pair again.

:func:`find_delivery` finds what a delivery added, corrected and withdrew by comparing a hash
of each record's raw linkage fields with the one kept at the last link, so only the
delivery's records need standardising.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from srs.pipeline.linkage.backends import database_api, input_tables
from srs.pipeline.linkage.errors import LinkageError
from srs.pipeline.linkage.link import _without_empty_columns, corroborated
from srs.pipeline.linkage.roles import LINKAGE_COLUMNS, SourceMapping, trimmed_headers
from srs.pipeline.linkage.settings import LinkageSettings
from srs.pipeline.linkage.standardisation import standardise

CLUSTER_COLUMNS = ["unique_id", "source_dataset", "record_id", "cluster_id"]


def raw_hashes(
    tables: Mapping[str, pd.DataFrame], mappings: Mapping[str, SourceMapping]
) -> pd.DataFrame:
    """``unique_id`` (``source:record_id``, as ``standardise`` makes it) and ``raw_hash``: a
    64-bit hash of the record's linkage fields as the source holds them (every column its
    mapping names but the record id). A record whose fields change gets another hash; the
    fields are not standardised, so this costs a small part of standardising them."""
    parts = []
    for name, frame in tables.items():
        if name not in mappings:
            raise LinkageError(f"no column mapping for table {name!r}")
        mapping = mappings[name]
        frame = trimmed_headers(frame)
        columns = list(dict.fromkeys(c for c in mapping.source_columns()[1:]))
        missing = [c for c in [mapping.record_id, *columns] if c not in frame.columns]
        if missing:
            raise LinkageError(
                f"table {name!r} has no column(s) {', '.join(missing)} named in its mapping"
            )
        # Text, so a column stored with another type in a later version hashes alike when its
        # values are alike; the column's name and place are part of the hash.
        values = frame[columns].astype("string").fillna("\x00")
        values.columns = [f"{i}:{c}" for i, c in enumerate(columns)]
        hashed = pd.util.hash_pandas_object(values, index=False).to_numpy()
        parts.append(
            pd.DataFrame(
                {
                    "unique_id": (name + ":" + frame[mapping.record_id].astype(str)).to_numpy(),
                    "raw_hash": hashed.view(np.int64),
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            {"unique_id": pd.Series(dtype=object), "raw_hash": pd.Series(dtype=np.int64)}
        )
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class Delivery:
    """What changed since the last link: the raw rows to standardise and link, and counts."""

    tables: dict[str, pd.DataFrame]  # per source, its added and corrected records (raw rows)
    hashes: pd.DataFrame  # unique_id, raw_hash of every record held now
    added: int
    changed: int
    removed: list[str]  # unique_id of the withdrawn records

    @property
    def empty(self) -> bool:
        """Nothing was added, corrected or withdrawn."""
        return not (self.added or self.changed or self.removed)


def find_delivery(
    tables: Mapping[str, pd.DataFrame],
    mappings: Mapping[str, SourceMapping],
    linked: pd.DataFrame,
) -> Delivery:
    """The records of ``tables`` that are new or corrected since the last link, and those
    withdrawn, found by hash: ``linked`` holds ``unique_id`` and ``raw_hash`` (as
    :func:`raw_hashes` made them) of every record the last link linked."""
    missing = {"unique_id", "raw_hash"} - set(linked.columns)
    if missing:
        raise LinkageError(
            f"the linked records lack column(s) {', '.join(sorted(missing))}; give each "
            "record's unique_id and raw_hash (srs.pipeline.linkage.incremental.raw_hashes)"
        )
    now = raw_hashes(tables, mappings)
    if now["unique_id"].duplicated().any():
        example = now.loc[now["unique_id"].duplicated(), "unique_id"].iloc[0]
        raise LinkageError(f"record ids must be unique within a table; {example} appears twice")
    before = pd.Series(
        linked["raw_hash"].to_numpy(), index=pd.Index(linked["unique_id"].astype(str))
    )
    position = before.index.get_indexer(now["unique_id"])
    known = position >= 0
    was = np.where(known, before.to_numpy()[np.maximum(position, 0)], 0)
    changed = known & (was != now["raw_hash"].to_numpy())
    fresh = pd.Index(now.loc[~known | changed, "unique_id"])
    removed = before.index.difference(pd.Index(now["unique_id"]))
    chosen = {}
    for name, frame in tables.items():
        frame = trimmed_headers(frame)
        ids = name + ":" + frame[mappings[name].record_id].astype(str)
        rows = frame[ids.isin(fresh).to_numpy()]
        if len(rows):
            chosen[name] = rows.reset_index(drop=True)
    return Delivery(
        tables=chosen,
        hashes=now,
        added=int((~known).sum()),
        changed=int(changed.sum()),
        removed=sorted(removed),
    )


@dataclass(frozen=True)
class StandardisedDelivery:
    """A delivery's records standardised, beside the records the last link standardised."""

    held: pd.DataFrame  # the last link's standardised records (without raw_hash)
    new: pd.DataFrame  # the added and corrected records, standardised
    records: pd.DataFrame  # every record now: held ones not replaced or withdrawn, then new
    removed: list[str]  # unique_id of the withdrawn records
    added: int
    changed: int
    hashes: pd.DataFrame  # unique_id, raw_hash of every record now (raw_hashes)


def standardised_delivery(
    tables: Mapping[str, pd.DataFrame],
    mappings: Mapping[str, SourceMapping],
    linked: pd.DataFrame,
    settings: LinkageSettings,
    notes: list[str] | None = None,
) -> StandardisedDelivery | None:
    """The delivery (:func:`find_delivery`) with only its records standardised, or None when
    nothing was added, corrected or withdrawn. ``linked``: the last link's standardised
    records, each with its ``raw_hash``.

    Placeholder identifiers are found among the delivery's records only (a value many of them
    share); one the last link found stays missing in the held records.
    """
    notes = notes if notes is not None else []
    delivery = find_delivery(tables, mappings, linked)
    if delivery.empty:
        return None
    held = linked.drop(columns="raw_hash")
    if delivery.tables:
        # A delivery may be of one source only: under link_only it is still compared with the
        # other sources' held records, so it is standardised as records to link.
        as_records = settings.model_copy(update={"link_type": "link_and_dedupe"})
        new = standardise(delivery.tables, mappings, as_records, notes)
        new = new.reindex(columns=held.columns)
    else:
        new = held.iloc[:0]
    # Roles no source maps are left out of the comparisons without a note, as in a full link.
    unmapped = [r for r in LINKAGE_COLUMNS if not any(m.columns.get(r) for m in mappings.values())]
    held.attrs["unmapped_roles"] = new.attrs["unmapped_roles"] = unmapped
    replaced = pd.Index(new["unique_id"]).append(pd.Index(delivery.removed))
    records = pd.concat([held[~held["unique_id"].isin(replaced)], new], ignore_index=True)
    records.attrs["unmapped_roles"] = unmapped
    return StandardisedDelivery(
        held=held,
        new=new,
        records=records,
        removed=delivery.removed,
        added=delivery.added,
        changed=delivery.changed,
        hashes=delivery.hashes,
    )


def refresh_clusters(
    previous_records: pd.DataFrame,
    previous_clusters: pd.DataFrame,
    model_json: dict,
    new_records: pd.DataFrame,
    removed_ids: Iterable[str],
    settings: LinkageSettings,
    *,
    notes: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Every record's cluster after a delivery, without relinking the records already held.

    ``previous_records``: standardised records (as ``standardise`` makes them) of the last
    link; ``previous_clusters``: their ``unique_id`` and ``cluster_id``. ``new_records``:
    standardised new records and corrected ones (a ``unique_id`` already held, with other
    identifiers: it leaves its cluster and is scored again as new). ``removed_ids``: the
    ``unique_id`` of withdrawn records. ``model_json``: the trained model the last full link
    saved (``LinkageResult.model``). Pairs at or above ``settings.match_threshold`` that
    something besides the names corroborates are linked, as in a full link. Returns
    unique_id, source_dataset, record_id, cluster_id (the least ``unique_id`` of the cluster).
    """
    say = progress or (lambda _m: None)
    notes = notes if notes is not None else []
    for frame, name in ((previous_records, "previous records"), (new_records, "new records")):
        missing = {"unique_id", "source_dataset", "record_id"} - set(frame.columns)
        if missing:
            raise LinkageError(
                f"the {name} lack column(s) {', '.join(sorted(missing))}; give standardised "
                "records (srs.pipeline.linkage.standardise)"
            )
    if new_records["unique_id"].duplicated().any():
        twice = new_records.loc[new_records["unique_id"].duplicated(), "unique_id"].iloc[0]
        raise LinkageError(f"the new records hold {twice} twice; give each record once")
    replaced = set(new_records["unique_id"]) | set(removed_ids)
    held = previous_records[~previous_records["unique_id"].isin(replaced)]
    cluster_of = previous_clusters.set_index("unique_id")["cluster_id"]
    unclustered = ~held["unique_id"].isin(cluster_of.index)
    if unclustered.any():
        raise LinkageError(
            f"{int(unclustered.sum()):,} held record(s) have no cluster (e.g. "
            f"{held.loc[unclustered, 'unique_id'].iloc[0]}); the records and clusters are not "
            "of the same link: run a full link (`srs link run`)"
        )
    edges = pd.DataFrame(columns=["unique_id_l", "unique_id_r"])
    if len(new_records):
        say(f"scoring {len(new_records):,} new or changed record(s) against {len(held):,} held")
        edges = _new_links(held, new_records, model_json, settings, notes)
    say("folding the new links into the persons")
    records = pd.concat(
        [
            held[["unique_id", "source_dataset", "record_id"]],
            new_records[["unique_id", "source_dataset", "record_id"]],
        ],
        ignore_index=True,
    )
    return _components(records, cluster_of.reindex(held["unique_id"]), edges)


def _term_frequencies(records: pd.DataFrame, column: str) -> pd.DataFrame:
    """Each value's share of the filled values of ``column``, as Splink computes it."""
    values = records[column].dropna().map(str)
    shares = values.value_counts(normalize=True)
    return pd.DataFrame({column: shares.index.astype(object), f"tf_{column}": shares.to_numpy()})


def _new_links(
    held: pd.DataFrame,
    new: pd.DataFrame,
    model_json: dict,
    settings: LinkageSettings,
    notes: list[str],
) -> pd.DataFrame:
    """Linked pairs new x held and new x new, scored with the trained model."""
    from splink import Linker, block_on

    everyone = pd.concat([held, new], ignore_index=True)
    settings = _without_empty_columns(everyone, settings, notes)
    link_type = settings.link_type
    db_api = database_api(settings.backend)
    new_tables = input_tables(db_api, new, link_type)
    held_tables = input_tables(db_api, held, link_type) if len(held) else []
    model = dict(model_json, link_type=link_type)
    linker = Linker(
        new_tables if link_type != "dedupe_only" else new_tables[0], model, log_level=None
    )
    # Term frequencies of all records, as a full link on them would count them.
    tf_columns = {
        level["tf_adjustment_column"]
        for comparison in model.get("comparisons", [])
        for level in comparison.get("comparison_levels", [])
        if level.get("tf_adjustment_column")
    }
    for column in sorted(tf_columns):
        if column not in everyone.columns:
            raise LinkageError(
                f"the saved linkage model adjusts {column} for term frequencies, but the records "
                "have no such column; run a full link (`srs link run`) to train a new model"
            )
        table = db_api.register(_term_frequencies(everyone, column))
        linker.table_management.register_term_frequency_lookup(table, column)
    rules = [block_on(*rule) for rule in settings.blocking_rules]
    threshold = settings.match_threshold
    frames = []
    scored = [
        linker.inference.predict_within(
            new_tables if link_type != "dedupe_only" else new_tables[0],
            blocking_rules_to_generate_predictions=rules,
            threshold_match_probability=threshold,
            warning_mode="never",
        )
    ]
    if held_tables:
        scored.append(
            linker.inference.predict_between(
                held_tables,
                new_tables,
                blocking_rules_to_generate_predictions=rules,
                threshold_match_probability=threshold,
                warning_mode="never",
            )
        )
    for result in scored:
        pairs = result.as_pandas_dataframe()
        if pairs.empty:
            continue
        linked = pairs["match_probability"] >= threshold
        backed = corroborated(pairs, linker, settings)
        names_only = int((linked & ~backed).sum())
        if names_only:
            notes.append(
                f"{names_only:,} new pair(s) above the match threshold agree on names only: not "
                "linked; a full link (`srs link run`) writes them for clerical review"
            )
        frames.append(pairs.loc[linked & backed, ["unique_id_l", "unique_id_r"]])
    if not frames:
        return pd.DataFrame(columns=["unique_id_l", "unique_id_r"])
    return pd.concat(frames, ignore_index=True).astype(str)


def _components(
    records: pd.DataFrame, held_cluster: pd.Series, edges: pd.DataFrame
) -> pd.DataFrame:
    """Connected components of the held clusters joined by the new edges; each named by the
    least unique_id among its records."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = pd.Index(records["unique_id"].astype(str))
    if not ids.is_unique:
        raise LinkageError("a record is both held and new; give it once")
    n = len(ids)
    # One node per record, then one per held cluster: a held record is tied to its cluster.
    cluster_codes, _clusters = pd.factorize(held_cluster.astype(str).to_numpy())
    held_nodes = ids.get_indexer(held_cluster.index.astype(str))
    rows = np.concatenate([held_nodes, ids.get_indexer(edges["unique_id_l"].astype(str))])
    cols = np.concatenate([n + cluster_codes, ids.get_indexer(edges["unique_id_r"].astype(str))])
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    if (rows < 0).any() or (cols < 0).any():
        raise LinkageError("a linked pair names a record that is neither held nor new")
    size = n + len(_clusters)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(size, size))
    _count, labels = connected_components(graph, directed=False)
    out = records.reset_index(drop=True).copy()
    out["unique_id"] = out["unique_id"].astype(str)
    out["component"] = labels[:n]
    # The least unique_id of each component, found by Arrow (a pandas groupby min on text
    # runs in Python, one group at a time; sorting every id costs more than this).
    import pyarrow as pa

    table = pa.table(
        {"component": out["component"].to_numpy(), "unique_id": pa.array(out["unique_id"])}
    )
    least = table.group_by("component").aggregate([("unique_id", "min")])
    names = pd.Series(
        least.column("unique_id_min").to_numpy(zero_copy_only=False),
        index=least.column("component").to_numpy(),
    )
    out["cluster_id"] = names.reindex(out["component"].to_numpy()).to_numpy()
    return out[CLUSTER_COLUMNS]

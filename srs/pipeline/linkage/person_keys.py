"""The person-key policy: which ``person_key`` each cluster of records carries after a (re)link,
so that a key once issued never changes while its records still link (:func:`reconcile_person_keys`).

Pure: the previous register and the new clusters in, the new register, the key changes and a
report out. The policy, for every new cluster:

- its records held exactly one previous key: it keeps that key (*kept*);
- they held several: it keeps the OLDEST (lowest ``key_serial``); the others are retired as
  aliases of it (*merged*);
- a previous key whose records are now in several clusters stays with the part holding most
  of its previous records (ties: the part holding its first record by ``(source, record_id)``);
  the other parts get new keys or the key of the cluster they joined (*split*);
- a cluster of new records only gets a new key (*new*);
- a previous key with no records left is retired (*withdrawn*).

New keys are keyed HMACs (namespace ``person``) of the cluster's representative record (its
``cluster_id``), so the first link gives exactly the keys ``srs link run`` always gave; later a
key already issued or retired is never issued again (``f"{representative}#{n}"`` instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from srs.pipeline.deid import Pseudonymiser
from srs.pipeline.linkage.errors import LinkageError

REGISTER_COLUMNS = ["source", "record_id", "cluster_id", "person_key", "key_serial"]
CHANGE_COLUMNS = ["retired_key", "surviving_key", "change", "detail"]
CHANGE_KINDS = ("merged", "split", "withdrawn")
_NAMESPACE = "person"


@dataclass(frozen=True)
class KeyReconciliation:
    """The register after a (re)link, the key changes it made and their counts.

    ``register``: source, record_id, cluster_id, person_key, key_serial (one row per record).
    ``changes``: retired_key, surviving_key, change (merged, split, withdrawn), detail. For a
    merge, ``retired_key`` is now an alias of ``surviving_key``; for a withdrawal nothing
    survives (``surviving_key`` is missing); for a split nothing is retired: ``retired_key`` is
    the key part of its records had and ``surviving_key`` the key those records have now.
    ``report``: kept, new, merged, split, withdrawn and retired (merged + withdrawn) keys.
    ``retired_serials``: each retired key's serial, for the alias table.
    """

    register: pd.DataFrame
    changes: pd.DataFrame
    report: dict[str, int]
    retired_serials: dict[str, int]


def _checked(frame: pd.DataFrame, name: str, columns: list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LinkageError(
            f"the {name} lacks column(s) {', '.join(missing)}; it needs {', '.join(columns)}"
        )
    out = frame[columns].copy()
    for column in ("source", "record_id", "cluster_id", "person_key"):
        if column in out.columns:
            if out[column].isna().any():
                raise LinkageError(
                    f"the {name} has {int(out[column].isna().sum()):,} row(s) without a "
                    f"{column}; every record needs one (a hand-edited register? restore it "
                    "from its previous vault version)"
                )
            out[column] = out[column].astype(str)
    twice = out.duplicated(["source", "record_id"])
    if twice.any():
        first = out.loc[twice].iloc[0]
        raise LinkageError(
            f"the {name} holds record {first['source']}:{first['record_id']} more than once; "
            "each record belongs to one person"
        )
    return out


def reconcile_person_keys(
    previous: pd.DataFrame | None,
    clusters: pd.DataFrame,
    pseudonymiser: Pseudonymiser,
    *,
    retired: Mapping[str, int] | None = None,
) -> KeyReconciliation:
    """Give every new cluster its person key, keeping issued keys by the policy above.

    ``previous``: the register before (source, record_id, person_key, key_serial), or None on
    the very first link. ``clusters``: source, record_id, cluster_id for every record now.
    ``retired``: keys retired earlier (the alias table) with their serials, never reissued.

    Example::

        result = reconcile_person_keys(register, lookup, pseudonymiser, retired=aliases)
        result.register  # source, record_id, cluster_id, person_key, key_serial
    """
    now = _checked(clusters, "clusters", ["source", "record_id", "cluster_id"])
    retired = dict(retired or {})
    first_link = previous is None or previous.empty
    if first_link:
        before = pd.DataFrame(columns=["source", "record_id", "person_key", "key_serial"])
    else:
        before = _checked(
            previous, "previous register", ["source", "record_id", "person_key", "key_serial"]
        )
        serials = pd.to_numeric(before["key_serial"], errors="coerce")
        if serials.isna().any():
            raise LinkageError(
                "the previous register has key_serial values that are not numbers; restore "
                "steward/person_lookup from its previous vault version"
            )
        before["key_serial"] = serials.astype("int64")
        if (before.groupby("person_key")["key_serial"].nunique() > 1).any():
            raise LinkageError(
                "the previous register gives one person_key two serials; restore "
                "steward/person_lookup from its previous vault version"
            )
        reissued = sorted(set(before["person_key"]) & set(retired))
        if reissued:
            raise LinkageError(
                f"person_key {reissued[0]} is both in the register and retired in the alias "
                "table; the two do not belong together (restore both from one run)"
            )
    # Records ordered by (source, record_id): a key's "oldest record" is its first here.
    order = now.sort_values(["source", "record_id"], kind="stable").index
    now["rank"] = pd.Series(np.arange(len(now)), index=order)
    joined = now.merge(before, on=["source", "record_id"], how="left")
    held = joined.dropna(subset=["person_key"])
    parts = (
        held.groupby(["person_key", "cluster_id"], sort=False)
        .agg(records=("rank", "size"), first=("rank", "min"), serial=("key_serial", "first"))
        .reset_index()
    )
    # Each previous key's home: the part with most of its records, then its first record.
    parts = parts.sort_values(
        ["person_key", "records", "first"], ascending=[True, False, True], kind="stable"
    )
    homes = parts.drop_duplicates("person_key")
    # A cluster that is home to several keys keeps the oldest.
    homes = homes.sort_values(["cluster_id", "serial", "person_key"], kind="stable")
    keeper = homes.drop_duplicates("cluster_id")
    key_of = dict(zip(keeper["cluster_id"], keeper["person_key"], strict=True))
    serial_of = dict(zip(keeper["person_key"], keeper["serial"].astype("int64"), strict=True))
    changes: list[dict[str, object]] = []
    merged = homes[~homes["person_key"].isin(keeper["person_key"])]
    for retired_key, cluster in zip(merged["person_key"], merged["cluster_id"], strict=True):
        changes.append(
            {
                "retired_key": retired_key,
                "surviving_key": key_of[cluster],
                "change": "merged",
                "detail": f"{retired_key} and {key_of[cluster]} are one person; the older "
                f"key {key_of[cluster]} survives",
            }
        )
    # Clusters with no key yet: new records only, or parts split from their key's home.
    issued = set(before["person_key"]) | set(retired)
    next_serial = max([0, *before["key_serial"].tolist(), *retired.values()]) + 1
    keyless = sorted(set(now["cluster_id"]) - set(key_of))
    new_keys = _new_keys(keyless, pseudonymiser, issued)
    for cluster in keyless:
        key_of[cluster] = new_keys[cluster]
        serial_of[new_keys[cluster]] = next_serial
        next_serial += 1
    # New persons: clusters holding no record that had a key.
    newcomers = len(set(keyless) - set(held["cluster_id"]))
    # Parts of a previous key that did not stay with it: say where their records went.
    home_of = dict(zip(homes["person_key"], homes["cluster_id"], strict=True))
    away = parts[parts["cluster_id"] != parts["person_key"].map(home_of)]
    for old_key, cluster, records in zip(
        away["person_key"], away["cluster_id"], away["records"], strict=True
    ):
        changes.append(
            {
                "retired_key": old_key,
                "surviving_key": key_of[cluster],
                "change": "split",
                "detail": f"{records} record(s) of {old_key} are another person now: "
                f"{key_of[cluster]}",
            }
        )
    withdrawn = sorted(set(before["person_key"]) - set(held["person_key"]))
    for old_key in withdrawn:
        changes.append(
            {
                "retired_key": old_key,
                "surviving_key": None,
                "change": "withdrawn",
                "detail": f"every record of {old_key} was withdrawn; the key is retired",
            }
        )
    register = now.drop(columns="rank")
    register["person_key"] = register["cluster_id"].map(key_of).astype("string")
    register["key_serial"] = register["person_key"].map(serial_of).astype("int64")
    kept = len(keeper)
    report = {
        "kept": kept,
        "new": newcomers,
        "merged": len(merged),
        "split": int(len(away)),
        "withdrawn": len(withdrawn),
        "retired": len(merged) + len(withdrawn),
    }
    frame = pd.DataFrame(changes, columns=CHANGE_COLUMNS).astype("string")
    serial_before = before.drop_duplicates("person_key").set_index("person_key")["key_serial"]
    gone = [*merged["person_key"], *withdrawn]
    retired_serials = {key: int(serial_before[key]) for key in gone}
    return KeyReconciliation(register[REGISTER_COLUMNS], frame, report, retired_serials)


def _new_keys(
    representatives: list[str], pseudonymiser: Pseudonymiser, issued: set[str]
) -> dict[str, str]:
    """A key for each representative never issued before (nor to another one here)."""
    keys = dict(
        zip(representatives, pseudonymiser.pseudonyms(representatives, _NAMESPACE), strict=True)
    )
    taken = set(issued)
    out: dict[str, str] = {}
    for representative in representatives:
        key, n = keys[representative], 0
        while key in taken:
            # A representative whose key a person has (or had) already: its record held that
            # key before and has moved, or the key was retired. Never hand a key out twice.
            n += 1
            key = pseudonymiser.pseudonym(f"{representative}#{n}", _NAMESPACE)
        taken.add(key)
        out[representative] = key
    return out

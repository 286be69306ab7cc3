"""The person-key policy: keys kept, merged (older survives), split, new and withdrawn."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srs.pipeline.deid import Pseudonymiser
from srs.pipeline.linkage import LinkageError
from srs.pipeline.linkage.person_keys import reconcile_person_keys

KEYS = Pseudonymiser(bytes(range(32)))


def clusters(rows: dict[str, str]) -> pd.DataFrame:
    """record -> cluster, records named 'source:record_id'."""
    return pd.DataFrame(
        [
            {"source": r.split(":")[0], "record_id": r.split(":")[1], "cluster_id": c}
            for r, c in rows.items()
        ]
    )


def key_of(register: pd.DataFrame, record: str) -> str:
    source, record_id = record.split(":")
    row = register[(register["source"] == source) & (register["record_id"] == record_id)]
    return row["person_key"].iloc[0]


def first_register(rows: dict[str, str]) -> pd.DataFrame:
    return reconcile_person_keys(None, clusters(rows), KEYS).register


def test_first_link_gives_the_hmac_of_the_representative() -> None:
    result = reconcile_person_keys(None, clusters({"a:1": "a:1", "a:2": "a:1", "b:1": "b:1"}), KEYS)
    assert key_of(result.register, "a:2") == KEYS.pseudonym("a:1", "person")
    assert key_of(result.register, "b:1") == KEYS.pseudonym("b:1", "person")
    assert sorted(result.register["key_serial"].unique()) == [1, 2]
    assert result.report == {
        "kept": 0,
        "new": 2,
        "merged": 0,
        "split": 0,
        "withdrawn": 0,
        "retired": 0,
    }
    assert result.changes.empty


def test_unchanged_persons_keep_their_keys_when_the_representative_changes() -> None:
    before = first_register({"a:2": "a:2", "a:3": "a:2", "b:1": "b:1"})
    # A new record a:1 joins the first person and becomes its representative.
    after = reconcile_person_keys(
        before, clusters({"a:1": "a:1", "a:2": "a:1", "a:3": "a:1", "b:1": "b:1"}), KEYS
    )
    assert key_of(after.register, "a:1") == key_of(before, "a:2")
    assert key_of(after.register, "b:1") == key_of(before, "b:1")
    assert after.report["kept"] == 2 and after.report["new"] == 0


def test_a_merge_keeps_the_older_key_and_retires_the_other() -> None:
    before = first_register({"a:1": "a:1", "b:1": "b:1"})
    older = before.sort_values("key_serial")["person_key"].iloc[0]
    younger = before.sort_values("key_serial")["person_key"].iloc[1]
    after = reconcile_person_keys(before, clusters({"a:1": "a:1", "b:1": "a:1"}), KEYS)
    assert set(after.register["person_key"]) == {older}
    change = after.changes.iloc[0]
    assert (change["retired_key"], change["surviving_key"], change["change"]) == (
        younger,
        older,
        "merged",
    )
    assert after.report["merged"] == 1 and after.report["retired"] == 1


def test_the_older_key_survives_even_when_the_younger_has_more_records() -> None:
    before = pd.DataFrame(
        {
            "source": ["a", "a", "a"],
            "record_id": ["1", "2", "3"],
            "person_key": ["young", "young", "old"],
            "key_serial": [9, 9, 2],
        }
    )
    after = reconcile_person_keys(
        before, clusters({"a:1": "a:1", "a:2": "a:1", "a:3": "a:1"}), KEYS
    )
    assert set(after.register["person_key"]) == {"old"}
    assert set(after.register["key_serial"]) == {2}


def test_a_split_leaves_the_key_with_the_larger_part() -> None:
    before = first_register({"a:1": "a:1", "a:2": "a:1", "a:3": "a:1"})
    key = key_of(before, "a:1")
    after = reconcile_person_keys(
        before, clusters({"a:1": "a:1", "a:2": "a:2", "a:3": "a:2"}), KEYS
    )
    assert key_of(after.register, "a:2") == key
    assert key_of(after.register, "a:1") != key
    split = after.changes[after.changes["change"] == "split"].iloc[0]
    assert split["retired_key"] == key and split["surviving_key"] == key_of(after.register, "a:1")
    assert after.report["split"] == 1


def test_a_split_in_two_equal_parts_leaves_the_key_with_the_oldest_record() -> None:
    before = first_register({"a:1": "a:1", "a:2": "a:1", "b:1": "a:1", "b:2": "a:1"})
    key = key_of(before, "a:1")
    after = reconcile_person_keys(
        before, clusters({"a:1": "b:1", "a:2": "a:2", "b:1": "b:1", "b:2": "a:2"}), KEYS
    )
    assert key_of(after.register, "a:1") == key
    assert key_of(after.register, "a:2") != key


def test_a_withdrawn_key_is_retired_and_never_issued_again() -> None:
    before = first_register({"a:1": "a:1", "b:1": "b:1"})
    gone = key_of(before, "b:1")
    after = reconcile_person_keys(before, clusters({"a:1": "a:1"}), KEYS)
    assert after.changes["change"].tolist() == ["withdrawn"]
    assert pd.isna(after.changes["surviving_key"].iloc[0])
    # b:1 comes back later as a person of its own: its old key is retired, so a new one.
    again = reconcile_person_keys(
        after.register,
        clusters({"a:1": "a:1", "b:1": "b:1"}),
        KEYS,
        retired={gone: int(before["key_serial"].max())},
    )
    assert key_of(again.register, "b:1") not in {gone, key_of(before, "a:1")}
    assert key_of(again.register, "b:1") == KEYS.pseudonym("b:1#1", "person")
    # ...with a serial after every serial ever issued, the retired one's too.
    assert again.register["key_serial"].max() > before["key_serial"].max()


def test_a_representative_whose_key_another_person_holds_gets_a_fresh_one() -> None:
    before = first_register({"a:1": "a:1", "a:2": "a:1", "a:3": "a:1"})
    issued = key_of(before, "a:1")
    assert issued == KEYS.pseudonym("a:1", "person")
    # a:1 splits off alone; the key stays with the larger part, so a:1's own HMAC is taken.
    after = reconcile_person_keys(
        before, clusters({"a:1": "a:1", "a:2": "a:2", "a:3": "a:2"}), KEYS
    )
    assert key_of(after.register, "a:2") == issued
    assert key_of(after.register, "a:1") == KEYS.pseudonym("a:1#1", "person")


@pytest.mark.parametrize(
    "previous, message",
    [
        (
            pd.DataFrame({"source": ["a"], "record_id": ["1"], "person_key": ["k"]}),
            r"lacks column\(s\) key_serial",
        ),
        (
            pd.DataFrame(
                {"source": ["a"], "record_id": ["1"], "person_key": [None], "key_serial": [1]}
            ),
            "without a person_key",
        ),
        (
            pd.DataFrame(
                {"source": ["a"], "record_id": ["1"], "person_key": ["k"], "key_serial": ["x"]}
            ),
            "not numbers",
        ),
        (
            pd.DataFrame(
                {
                    "source": ["a", "a"],
                    "record_id": ["1", "2"],
                    "person_key": ["k", "k"],
                    "key_serial": [1, 2],
                }
            ),
            "two serials",
        ),
        (
            pd.DataFrame(
                {
                    "source": ["a", "a"],
                    "record_id": ["1", "1"],
                    "person_key": ["k", "j"],
                    "key_serial": [1, 2],
                }
            ),
            "more than once",
        ),
    ],
)
def test_a_hand_edited_register_is_refused(previous: pd.DataFrame, message: str) -> None:
    with pytest.raises(LinkageError, match=message):
        reconcile_person_keys(previous, clusters({"a:1": "a:1"}), KEYS)


def test_a_key_both_live_and_retired_is_refused() -> None:
    before = first_register({"a:1": "a:1"})
    with pytest.raises(LinkageError, match="both in the register and retired"):
        reconcile_person_keys(
            before, clusters({"a:1": "a:1"}), KEYS, retired={key_of(before, "a:1"): 1}
        )


# ------------------------------------------------------------------ properties
RECORDS = [f"s{s}:{r}" for s in range(2) for r in range(8)]


@st.composite
def relinks(draw):
    """A first clustering of some records, then a second of some (maybe other) records."""
    first = draw(st.lists(st.sampled_from(RECORDS), min_size=1, max_size=16, unique=True))
    second = draw(st.lists(st.sampled_from(RECORDS), min_size=1, max_size=16, unique=True))
    labels = st.integers(0, 5)
    a = {r: f"c{draw(labels)}" for r in first}
    b = {r: f"c{draw(labels)}" for r in second}
    return a, b


def _named(rows: dict[str, str]) -> dict[str, str]:
    """Name each cluster by its least record, as link.py does."""
    least = {}
    for record, label in sorted(rows.items()):
        least.setdefault(label, record)
    return {record: least[label] for record, label in rows.items()}


@settings(max_examples=200, deadline=None)
@given(relinks())
def test_every_record_gets_one_key_and_no_key_is_issued_twice(case) -> None:
    first, second = (_named(c) for c in case)
    before = reconcile_person_keys(None, clusters(first), KEYS)
    after = reconcile_person_keys(before.register, clusters(second), KEYS)
    register = after.register
    assert len(register) == len(second) and register["person_key"].notna().all()
    # One key per cluster, one cluster per key.
    assert (register.groupby("cluster_id")["person_key"].nunique() == 1).all()
    assert (register.groupby("person_key")["cluster_id"].nunique() == 1).all()
    # A key not carried over from before is new: never one issued before.
    old = set(before.register["person_key"])
    carried = set(register["person_key"]) & old
    assert carried <= old
    # Retired keys are no longer held, and every previous key is either held or retired.
    retired = set(after.changes.loc[after.changes["change"] != "split", "retired_key"])
    assert not retired & set(register["person_key"])
    assert old <= retired | set(register["person_key"])
    # Serials: one per key, distinct across keys.
    serials = register.groupby("person_key")["key_serial"].agg(["nunique", "first"])
    assert (serials["nunique"] == 1).all() and serials["first"].is_unique


@settings(max_examples=200, deadline=None)
@given(relinks())
def test_unchanged_clusters_keep_their_keys_and_merges_keep_the_oldest(case) -> None:
    first, second = (_named(c) for c in case)
    before = reconcile_person_keys(None, clusters(first), KEYS).register
    after = reconcile_person_keys(before, clusters(second), KEYS).register

    def members(frame: pd.DataFrame) -> pd.Series:
        named = frame.assign(r=frame["source"] + ":" + frame["record_id"])
        return named.groupby("person_key")["r"].agg(frozenset)

    old, new = members(before), members(after)
    new_by_records = {records: key for key, records in new.items()}
    for key, records in old.items():
        if records in new_by_records:
            assert new_by_records[records] == key
    serial = before.groupby("person_key")["key_serial"].first()
    for key, records in new.items():
        # Every previous key wholly inside this cluster was merged into it: the oldest survives.
        wholly_inside = [k for k, r in old.items() if r <= records]
        if wholly_inside:
            assert key in serial.index
            assert serial[key] == min(serial[k] for k in wholly_inside) or any(
                # ...unless a key partly inside is older still and also made its home here.
                serial[k] < min(serial[j] for j in wholly_inside)
                for k, r in old.items()
                if r & records and not r <= records
            )

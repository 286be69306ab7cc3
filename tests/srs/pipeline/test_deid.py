"""De-identification: keyed pseudonyms are HMAC-SHA256, stable under a key, unlinkable across keys."""

from __future__ import annotations

import hmac

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from srs.pipeline.deid import (
    PSEUDONYM_HEX_CHARS,
    Pseudonymiser,
    PseudonymKeyError,
    age_at,
    age_band,
    birth_year,
    generate_pseudonym_key,
    postcode_area,
)

KEY = bytes(range(32))


@given(value=st.text(max_size=40), namespace=st.sampled_from(["person", "case"]))
def test_pseudonym_is_truncated_hmac_sha256(value: str, namespace: str) -> None:
    expected = hmac.new(KEY, namespace.encode() + b"\x1f" + value.encode(), "sha256").hexdigest()
    assert Pseudonymiser(KEY).pseudonym(value, namespace) == expected[:PSEUDONYM_HEX_CHARS]


def test_stable_for_the_same_key_across_instances() -> None:
    values = [f"cluster-{n}" for n in range(500)]
    assert Pseudonymiser(KEY).pseudonyms(values, "person") == Pseudonymiser(bytes(KEY)).pseudonyms(
        values, "person"
    )


def test_a_different_key_gives_unrelated_pseudonyms() -> None:
    values = [f"cluster-{n}" for n in range(2000)]
    ours = Pseudonymiser(KEY).pseudonyms(values, "person")
    theirs = Pseudonymiser(generate_pseudonym_key()).pseudonyms(values, "person")
    assert not set(ours) & set(theirs)
    assert len(set(ours)) == len(values)


def test_namespaces_keep_persons_and_cases_apart() -> None:
    p = Pseudonymiser(KEY)
    assert p.pseudonym("X1", "person") != p.pseudonym("X1", "case")


def test_series_keeps_missing_values_missing() -> None:
    out = Pseudonymiser(KEY).series(pd.Series(["a", None, "b"]), "person")
    assert out.isna().tolist() == [False, True, False]
    assert out.dtype == "string"


@pytest.mark.parametrize("key", [b"", b"short", bytes(33), "a string key"])
def test_bad_keys_are_refused(key) -> None:
    with pytest.raises(PseudonymKeyError, match="32 bytes"):
        Pseudonymiser(key)


def test_generalisation() -> None:
    dob = pd.Series(pd.to_datetime(["1990-06-15", "2005-01-01", None]))
    event = pd.Series(pd.to_datetime(["2020-06-14", "2023-01-01", "2020-01-01"]))
    assert age_at(dob, event).tolist()[:2] == [29, 18]
    assert pd.isna(age_at(dob, event).iloc[2])
    assert birth_year(dob).tolist()[:2] == [1990, 2005]
    assert postcode_area(pd.Series(["LS12 4TX", "B9 1AB", None])).tolist()[:2] == ["LS", "B"]
    assert age_band(pd.Series([15, 18, 22, 45, 70])).astype(str).tolist() == [
        "10-17",
        "18-20",
        "21-24",
        "40-49",
        "50+",
    ]

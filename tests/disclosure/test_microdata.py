"""Microdata risk: k-anonymity, l-diversity, sample uniques, per-record risk."""

from __future__ import annotations

import pandas as pd
import pytest

from disclosure.microdata import MicrodataSpecError, assess_microdata

DATA = pd.DataFrame(
    {
        "sex": ["M", "M", "M", "F", "F", "F", "F"],
        "birth_year": [1990, 1990, 1990, 1985, 1985, 1985, 1970],
        "area": ["LS", "LS", "LS", "B", "B", "B", "B"],
        "sentence": ["custody", "fine", "fine", "fine", "fine", "fine", "custody"],
    }
)


def test_k_anonymity_uniques_and_risk() -> None:
    risk = assess_microdata(DATA, ["sex", "birth_year", "area"], ["sentence"], k_threshold=3)
    assert risk.k_anonymity == 1  # the woman born 1970 is unique
    assert risk.sample_uniques == 1 and risk.groups_below_k == 1
    assert risk.l_diversity == {
        "sentence": 1
    }  # the 1985 women all have fines: attribute disclosure
    assert risk.record_risk.tolist() == pytest.approx([1 / 3] * 6 + [1.0])
    assert risk.max_risk == 1.0 and not risk.passes()
    assert risk.to_dict()["sample_uniques"] == 1


def test_coarser_quasi_identifiers_reduce_risk() -> None:
    risk = assess_microdata(DATA, ["sex"], ["sentence"], k_threshold=3)
    assert risk.k_anonymity == 3 and risk.sample_uniques == 0
    assert risk.l_diversity == {"sentence": 2} and risk.passes(l_threshold=2)


def test_missing_values_are_a_category_and_bad_specs_fail() -> None:
    data = DATA.assign(area=[None] * 7)
    assert assess_microdata(data, ["area"]).k_anonymity == 7
    with pytest.raises(MicrodataSpecError, match="no column"):
        assess_microdata(DATA, ["shoe_size"])
    with pytest.raises(MicrodataSpecError, match="at least one"):
        assess_microdata(DATA, [])
    assert assess_microdata(DATA.iloc[:0], ["sex"]).records == 0

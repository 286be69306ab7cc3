"""Review of issue 15: bad values that still give a silent result (reproductions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from disclosure.errors import DisclosureError
from disclosure.publication import publishable_table
from disclosure.tables import check_table
from srs.policy import load_policies

PROFILE = load_policies().sdc.active


def frame(values) -> pd.DataFrame:
    return pd.DataFrame({"a": ["x"] * 30 + ["y"] * 30, "b": ["p", "q", "r"] * 20, "v": values})


@pytest.mark.parametrize(
    "values",
    [
        pd.date_range("2020-01-01", periods=60),  # summed as nanoseconds: ~1.6e19, status ok
        pd.to_timedelta(range(60), unit="D"),  # summed as nanoseconds
        np.arange(60) * (1 + 1j),  # imaginary part dropped with only a ComplexWarning
    ],
    ids=["datetime", "timedelta", "complex"],
)
def test_non_numeric_magnitudes_are_refused(values) -> None:
    with pytest.raises(DisclosureError):
        check_table(frame(values), index="a", columns="b", values="v", statistic="sum", profile=PROFILE)


def test_datetime_values_in_publishable_table_are_a_clear_error() -> None:
    with pytest.raises(DisclosureError):  # today: builtins.TypeError cannot safely cast
        publishable_table(
            frame(pd.date_range("2020-01-01", periods=60)),
            index="a", columns="b", values="v", statistic="sum", profile=PROFILE,
        )


def test_keys_1_and_text_1_publish_two_columns_with_the_same_label() -> None:
    data = pd.DataFrame({"a": ["x"] * 30 + ["y"] * 30, "b": [1, "1"] * 30})
    table = publishable_table(data, index="a", columns="b", profile=PROFILE).table
    header = table.to_csv().splitlines()[0]
    assert header.count(",1") < 2, header  # 'a,1,1,Total'


def test_int64_beyond_2_53_loses_precision_silently() -> None:
    check = check_table(frame([2**53 + 1] * 60), index="a", columns="b", values="v",
                        statistic="sum", profile=PROFILE)
    assert check.table.iloc[0, 0] == 10 * (2**53 + 1)

"""Disclosure checks on figures: histograms and bar charts through their underlying counts.

A figure is as disclosive as the numbers behind it, so a histogram is checked as the
frequency table of its bins (and its outer bin edges, which show extreme values, are for
review), a bar chart as the frequency table of its bars; a figure submitted without its data
cannot be checked automatically and goes to a checker.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from disclosure.evidence import FAIL, REVIEW, TableCheck
from disclosure.policy import SDCProfile
from disclosure.tables import check_table


def check_histogram(
    values: pd.Series, profile: SDCProfile, bins: int | list[float] = 10
) -> tuple[TableCheck, np.ndarray]:
    """The bins' frequency table, checked, and the bin edges.

    The outer edges are the data's minimum and maximum unless explicit edges are given, so
    they are flagged for review in that case.
    """
    data = pd.to_numeric(values, errors="coerce").dropna()
    counts, edges = np.histogram(data, bins=bins)
    labels = [f"[{edges[i]:g}, {edges[i + 1]:g})" for i in range(len(counts))]
    frame = pd.DataFrame({"bin": pd.Categorical(np.repeat(labels, counts), categories=labels)})
    check = check_table(frame, index="bin", profile=profile)
    if isinstance(bins, int) and len(data):
        from disclosure.evidence import CellFinding

        for label in (labels[0], labels[-1]):
            check.findings.append(
                CellFinding(
                    label,
                    "value",
                    "extreme_values",
                    REVIEW,
                    "the outer bin edge is an actual minimum or maximum value",
                )
            )
            if check.status.loc[label, "value"] != FAIL:
                check.status.loc[label, "value"] = REVIEW
    return check, edges


def check_bar_chart(
    data: pd.DataFrame, category: str, profile: SDCProfile, group: str | None = None
) -> TableCheck:
    """The bars' frequency table (one bar per category, per group if grouped), checked."""
    return check_table(data, index=category, columns=group, profile=profile)


def figure_without_data(name: str) -> dict[str, Any]:
    """The verdict on a figure whose data was not given: a checker must look at it."""
    return {
        "kind": "figure",
        "name": name,
        "status": REVIEW,
        "message": "a figure without its underlying data cannot be checked automatically; a checker must review it",
    }

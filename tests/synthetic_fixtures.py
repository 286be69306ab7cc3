"""Stand-ins for the synthetic-data tests that need a replica without running a synthesiser."""

from __future__ import annotations

import numpy as np
import pandas as pd


def stand_in_replica(tables: dict[str, pd.DataFrame], seed: int = 5) -> dict[str, pd.DataFrame]:
    """A stand-in for a synthesiser's output: a fifth of every non-key value swapped for one
    drawn from elsewhere in its column (keys kept, so links hold; values stay in the enums)."""
    rng = np.random.default_rng(seed)
    replica = {}
    for name, frame in tables.items():
        frame = frame.copy()
        for column in frame.columns:
            if column.endswith("person_key") or column == "case_key":
                continue
            swap = rng.random(len(frame)) < 0.2
            donors = rng.integers(0, len(frame), len(frame))
            frame.loc[swap, column] = frame[column].to_numpy()[donors][swap]
        replica[name] = frame
    return replica

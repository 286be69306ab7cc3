"""Fixtures for the data-pipeline tests: one simulated population, and one deployment where it
has been ingested, linked and built into linked datasets (made once per test session; defined in
``tests/pipeline_fixtures.py``, which the synthetic tests share)."""

from __future__ import annotations

from pipeline_fixtures import (  # noqa: F401 (fixtures, found by pytest by name)
    PIPELINE_PERSONS,
    PIPELINE_SEED,
    Pipeline,
    offences,
    pipeline,
    simulated,
)

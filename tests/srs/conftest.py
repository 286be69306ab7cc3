"""Fixtures for the data-pipeline tests: one simulated population, and one deployment where it
has been ingested, linked and built into linked datasets (made once per test session; defined in
``tests/pipeline_fixtures.py``, which the synthetic tests share); and for the session tests, a
small deployment (``lab``) and ana's session in it (``s``), from ``tests/session_fixtures.py``
(a module may define its own ``lab``)."""

from __future__ import annotations

from pipeline_fixtures import (  # noqa: F401 (fixtures, found by pytest by name)
    PIPELINE_PERSONS,
    PIPELINE_SEED,
    Pipeline,
    offences,
    pipeline,
    simulated,
)
from session_fixtures import lab, s  # noqa: F401 (fixtures, found by pytest by name)

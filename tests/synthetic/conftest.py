"""Fixtures for the synthetic-data tests: real-shaped linked datasets built from a simulated
population (ingested through the data dictionaries, persons linked by the simulator's ground
truth instead of Splink, to stay fast), made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from srs.pipeline.deid import Pseudonymiser
from srs.pipeline.ingest import ingest_file, load_dictionary
from srs.pipeline.linked_datasets import LinkedDatasets, build_linked_datasets
from srs.pipeline.offences import load_offences
from srs.pipeline.simulation import SOURCES, simulate, write_simulation

SYNTHETIC_TEST_PERSONS = 800


@pytest.fixture(scope="session")
def linked(tmp_path_factory) -> LinkedDatasets:
    """``linked/persons``, ``linked/journeys``, ``linked/victims``, ``linked/reoffending`` of
    800 simulated persons, with their data dictionaries (``.tables``, ``.dictionaries``)."""
    simulation = simulate(SYNTHETIC_TEST_PERSONS, 7)
    paths = write_simulation(simulation, Path(tmp_path_factory.mktemp("synthetic-simulation")))
    offences = load_offences()
    sources = {
        source: ingest_file(paths[source], load_dictionary(source), offences).accepted
        for source in SOURCES
    }
    lookup = simulation.ground_truth.rename(columns={"person_id": "cluster_id"})
    return build_linked_datasets(sources, lookup, Pseudonymiser(bytes(32)), offences)

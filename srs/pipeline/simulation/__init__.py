"""The cross-justice simulator: a population, its journeys through the system, and the
agency extracts (with realistic identifier errors) that a steward would receive.

``simulate`` is deterministic for a seed. The true person behind every record is kept apart in
a ground-truth table, written to its own folder, that the pipeline never reads; only linkage
evaluation does. Two noise profiles: ``documented`` (the README's table of identifier errors)
and ``hard`` (those and more: swapped names, digit typos in dates of birth, several errors in one
record, non-ASCII and double-barrelled names, padding, placeholders, missing identifiers).

Example::

    result = simulate(persons=10_000, seed=7)
    hard = simulate(persons=10_000, seed=7, noise="hard")
    write_simulation(result, Path("sim"))   # sim/extracts/*.csv, sim/ground_truth/, manifest
    series = make_deliveries(result, deliveries=2)  # srs.pipeline.simulation.deliveries
    write_simulation(result, Path("sim"), deliveries=series)  # and sim/deliveries/YYYY-MM/
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from srs.errors import SRSError
from srs.pipeline.offences import OffenceList, load_offences
from srs.pipeline.simulation.extracts import (
    HARD_NOISE,
    NOISE_PROFILES,
    QUALITY,
    SOURCES,
    HardProfile,
    build_extracts,
    quality_table,
)
from srs.pipeline.simulation.identities import (
    AREAS,
    draw_forenames,
    draw_postcodes,
    draw_surnames,
    give_unusual_names,
    postcode_area,
)
from srs.pipeline.simulation.journeys import JOURNEY_RATES, PERIOD_END, PERIOD_START, simulate_cases

if TYPE_CHECKING:
    from srs.pipeline.simulation.deliveries import DeliverySeries

OFFENDER_SHARE = 0.62
MOVED_SHARE = 0.25


class SimulationError(SRSError):
    """The simulator was asked for something it cannot make."""


@dataclass
class Simulation:
    """Extracts by source name, the ground truth, and what produced them.

    ``identities`` holds every person's true identifiers (names, sex, date of birth, postcodes,
    police number), for measuring the noise; it is not written out.
    """

    extracts: dict[str, pd.DataFrame]
    ground_truth: pd.DataFrame
    persons: int
    seed: int
    noise: str = "documented"
    identities: pd.DataFrame | None = None

    def manifest(self) -> dict[str, object]:
        """Counts and settings, written beside the extracts."""
        manifest: dict[str, object] = {
            "persons": self.persons,
            "seed": self.seed,
            "period": [PERIOD_START.date().isoformat(), PERIOD_END.date().isoformat()],
            "records": {name: len(frame) for name, frame in self.extracts.items()},
            "identifier_quality": quality_table(),
            "journey_rates": asdict(JOURNEY_RATES),
        }
        if self.noise == "hard":
            manifest["noise"] = {"profile": "hard", "added_errors": asdict(HARD_NOISE)}
        return manifest


def _persons(rng: np.random.Generator, count: int) -> pd.DataFrame:
    offender = rng.random(count) < OFFENDER_SHARE
    sex = np.where(rng.random(count) < np.where(offender, 0.82, 0.5), "M", "F")
    age = np.where(
        offender,
        np.clip(12 + rng.gamma(2.2, 9.0, count), 10, 80),
        np.clip(8 + rng.gamma(2.5, 12.0, count), 8, 95),
    )
    dob = PERIOD_START - pd.to_timedelta(np.round(age * 365.25), unit="D")
    postcode = draw_postcodes(rng, count)
    moved = rng.random(count) < MOVED_SHARE
    span = (PERIOD_END - PERIOD_START).days
    moved_on = PERIOD_START + pd.to_timedelta(rng.integers(30, span, count), unit="D")
    new_postcode = draw_postcodes(rng, count)
    serial = rng.permutation(count) + 1_000_000
    letters = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZ"))
    pnc = (
        pd.Series(rng.integers(1995, 2019, count)).astype(str)
        + "/"
        + pd.Series(serial).astype(str).str.zfill(7)
        + letters[serial % len(letters)]
    )
    prison_number = (
        pd.Series(rng.choice(letters, count))
        + pd.Series(rng.integers(1000, 9999, count)).astype(str)
        + pd.Series(rng.choice(letters, count))
        + pd.Series(rng.choice(letters, count))
    )
    return pd.DataFrame(
        {
            "person_id": np.arange(count),
            "offender": offender,
            "sex": sex,
            "forename": draw_forenames(rng, sex),
            "surname": draw_surnames(rng, count),
            "date_of_birth": dob.normalize(),
            # Addresses: where they lived at the start; movers get a new one on moved_on.
            "postcode": np.where(moved, new_postcode, postcode),
            "previous_postcode": np.where(moved, postcode, None),
            "moved_on": pd.Series(moved_on).where(moved),
            "pnc": pnc.where(offender).to_numpy(dtype=object),
            "prison_number": prison_number.where(offender).to_numpy(dtype=object),
            "crn": ("X" + pd.Series(serial).astype(str).str[-6:])
            .where(offender)
            .to_numpy(dtype=object),
        }
    )


def simulate(
    persons: int,
    seed: int,
    offences: OffenceList | None = None,
    progress: Callable[[str], None] | None = None,
    noise: str = "documented",
) -> Simulation:
    """Simulate ``persons`` people and every agency extract of their journeys.

    ``noise`` is ``documented`` (each source's errors as in the README) or ``hard`` (those and
    the errors of ``HARD_NOISE``, drawn from a stream of their own: the same seed gives the same
    population and journeys under both profiles).
    """
    if noise not in NOISE_PROFILES:
        raise SimulationError(
            f"unknown noise profile {noise!r}; use one of {', '.join(NOISE_PROFILES)}"
        )
    if persons < 10:
        raise SimulationError(f"simulate at least 10 persons, not {persons}")
    if persons > 20_000_000:
        raise SimulationError(f"{persons:,} persons is beyond this simulator (20 million at most)")
    say = progress or (lambda _message: None)
    offences = offences or load_offences()
    rng = np.random.default_rng(seed)
    say(f"persons: {persons:,}")
    people = _persons(rng, persons)
    identities, hard = people, None
    if noise == "hard":
        hard_rng = np.random.default_rng([seed, 1])
        identities = give_unusual_names(
            hard_rng, people, HARD_NOISE.accented, HARD_NOISE.double_barrelled
        )
        names = identities.set_index("person_id")[["forename", "surname"]]
        hard = HardProfile(hard_rng, HARD_NOISE, names)
    offender_ids = people.loc[people["offender"], "person_id"].to_numpy()
    victim_pool = people.loc[~people["offender"], "person_id"].to_numpy()
    if len(victim_pool) == 0:
        victim_pool = offender_ids
    say("journeys")
    cases = simulate_cases(rng, offender_ids, victim_pool, offences)
    areas = postcode_area(people.set_index("person_id").loc[cases["offender_id"], "postcode"])
    force_index = {area: index + 1 for index, area in enumerate(AREAS)}
    cases["force_code"] = ["F" + str(force_index.get(a, 0)).zfill(2) for a in areas]
    say(f"cases: {len(cases):,}; building extracts")
    extracts, truth = build_extracts(rng, people, cases, hard)
    return Simulation(
        extracts=extracts,
        ground_truth=truth,
        persons=persons,
        seed=seed,
        noise=noise,
        identities=identities,
    )


def _formatted(frame: pd.DataFrame, date_format: str) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime(date_format)
        elif (
            out[column].dtype == object
            and len(out)
            and isinstance(
                out[column].dropna().iloc[0] if out[column].notna().any() else None, pd.Timestamp
            )
        ):
            out[column] = pd.to_datetime(out[column]).dt.strftime(date_format)
    return out


def _write_frame(frame: pd.DataFrame, path: Path, file_format: str) -> None:
    if file_format == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def write_simulation(
    result: Simulation,
    out: Path,
    file_format: str = "csv",
    progress: Callable[[str], None] | None = None,
    deliveries: DeliverySeries | None = None,
) -> dict[str, Path]:
    """Write extracts (``out/extracts``), ground truth (``out/ground_truth``) and a manifest.

    With ``deliveries`` (from ``make_deliveries``) the extracts are the base extracts and each
    delivery goes to ``out/deliveries/YYYY-MM/SOURCE.csv`` (key ``YYYY-MM/SOURCE`` of the
    paths returned), its ground truth to ``out/ground_truth/deliveries/YYYY-MM.csv``.
    """
    if file_format not in ("csv", "parquet"):
        raise SimulationError(f"format must be csv or parquet, not {file_format!r}")
    say = progress or (lambda _message: None)
    extracts_dir = out / "extracts"
    truth_dir = out / "ground_truth"
    extracts_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    extracts = result.extracts if deliveries is None else deliveries.base
    paths: dict[str, Path] = {}
    for source in SOURCES:
        frame = _formatted(extracts[source], QUALITY[source].date_format)
        path = extracts_dir / f"{source}.{file_format}"
        _write_frame(frame, path, file_format)
        paths[source] = path
        say(f"wrote {path} ({len(frame):,} rows)")
    truth_path = truth_dir / f"ground_truth.{file_format}"
    _write_frame(
        result.ground_truth if deliveries is None else deliveries.base_truth,
        truth_path,
        file_format,
    )
    paths["ground_truth"] = truth_path
    manifest = result.manifest()
    if deliveries is not None:
        (truth_dir / "deliveries").mkdir(exist_ok=True)
        for period in deliveries.periods:
            folder = out / "deliveries" / period
            folder.mkdir(parents=True, exist_ok=True)
            for source in SOURCES:
                frame = _formatted(
                    deliveries.deliveries[period][source], QUALITY[source].date_format
                )
                path = folder / f"{source}.{file_format}"
                _write_frame(frame, path, file_format)
                paths[f"{period}/{source}"] = path
            _write_frame(
                deliveries.truth[period],
                truth_dir / "deliveries" / f"{period}.{file_format}",
                file_format,
            )
            say(f"wrote delivery {period}")
        manifest["records"] = {source: len(frame) for source, frame in deliveries.base.items()}
        manifest.update(deliveries.manifest())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return paths


__all__ = [
    "NOISE_PROFILES",
    "SOURCES",
    "Simulation",
    "SimulationError",
    "simulate",
    "write_simulation",
]

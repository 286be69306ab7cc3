"""Fidelity of a synthetic replica: SDMetrics quality scores (column shapes, column pair trends,
overall and per table) and the research questions answered on real and synthetic data.

>>> report = evaluate_fidelity(real, synthetic, dictionaries,
...                            max_absolute_difference_percentage_points=5)  # doctest: +SKIP
>>> report.overall_score, report.passed                                      # doctest: +SKIP
(0.91, True)

The report keeps only aggregates of the real data (scores, rounded percentages, binned shares
with small categories folded away and without real extremes), so it can travel with the replica.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from synthetic.errors import SyntheticError
from synthetic.research_questions import compare_research_questions

QUALITY_PROPERTIES = ("Column Shapes", "Column Pair Trends")


class ForeignKey(NamedTuple):
    """``dataset.column`` refers to ``parent.parent_column`` (empty values refer to nothing)."""

    dataset: str
    column: str
    parent: str
    parent_column: str


# The keys of the linked research tables: one place for SDMetrics' relationships and the
# Frictionless package's primaryKey/foreignKeys.
PRIMARY_KEYS: dict[str, str] = {"linked/persons": "person_key", "linked/journeys": "case_key"}
FOREIGN_KEYS: tuple[ForeignKey, ...] = (
    ForeignKey("linked/journeys", "person_key", "linked/persons", "person_key"),
    ForeignKey("linked/victims", "victim_person_key", "linked/persons", "person_key"),
    ForeignKey("linked/victims", "case_key", "linked/journeys", "case_key"),
    ForeignKey("linked/reoffending", "person_key", "linked/persons", "person_key"),
    ForeignKey("linked/reoffending", "case_key", "linked/journeys", "case_key"),
)
# Columns whose real and synthetic distributions the HTML report draws, where present.
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "linked/persons": ("sex", "birth_year"),
    "linked/journeys": ("iccs_section", "sentence_type", "age_at_offence"),
    "linked/victims": ("withdrawal_stage",),
    "linked/reoffending": ("sentence_type", "days_to_reoffence"),
}
# Real categories seen fewer times than this are folded into "other" in the distributions kept.
DISTRIBUTION_MINIMUM_COUNT = 10
DISTRIBUTION_BINS = 8


class FidelityError(SyntheticError):
    """Real and synthetic tables cannot be compared as given; the message says what to fix."""


def table_label(dataset: str) -> str:
    """The short table name used in SDMetrics and file names: ``linked/persons`` -> ``persons``."""
    return dataset.rsplit("/", 1)[-1]


def _sdtype(entry: Mapping[str, Any]) -> str:
    if entry.get("classification") == "pseudonym":
        return "id"
    return {
        "flag": "boolean",
        "integer": "numerical",
        "number": "numerical",
        "date": "datetime",
    }.get(str(entry.get("type")), "categorical")


def sdmetrics_metadata(
    dictionaries: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, Any]:
    """SDMetrics' multi-table metadata dict built from the data dictionaries: sdtypes from the
    dictionary types (pseudonyms are ids), primary keys and relationships from the linked keys.
    Tables are named by :func:`table_label`."""
    tables: dict[str, Any] = {}
    for dataset, entries in dictionaries.items():
        columns = {str(entry["name"]): {"sdtype": _sdtype(entry)} for entry in entries}
        table: dict[str, Any] = {"columns": columns}
        if dataset in PRIMARY_KEYS and PRIMARY_KEYS[dataset] in columns:
            table["primary_key"] = PRIMARY_KEYS[dataset]
        tables[table_label(dataset)] = table
    relationships = [
        {
            "parent_table_name": table_label(key.parent),
            "parent_primary_key": key.parent_column,
            "child_table_name": table_label(key.dataset),
            "child_foreign_key": key.column,
        }
        for key in FOREIGN_KEYS
        if key.dataset in dictionaries
        and key.parent in dictionaries
        and PRIMARY_KEYS.get(key.parent) == key.parent_column
    ]
    return {"tables": tables, "relationships": relationships}


def _for_sdmetrics(frame: pd.DataFrame) -> pd.DataFrame:
    # SDMetrics merges keys and compares categories as numpy objects: nullable pandas dtypes
    # (string, Int64, boolean) are turned into object/float with NaN so real and synthetic match.
    out = frame.copy()
    for column in out.columns:
        dtype = out[column].dtype
        if pd.api.types.is_datetime64_any_dtype(dtype):
            continue
        if pd.api.types.is_bool_dtype(dtype) and not isinstance(dtype, pd.BooleanDtype):
            continue
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
        else:
            values = out[column].astype(object)
            out[column] = values.where(out[column].notna(), np.nan)
    return out


def _quality_report(real: dict, synthetic: dict, metadata: dict[str, Any]) -> Any:
    from sdmetrics.reports import QualityReport

    report = QualityReport()
    with warnings.catch_warnings():
        # SDMetrics warns about constant or sparse columns; the scores already reflect them.
        warnings.simplefilter("ignore")
        report.generate(real, synthetic, metadata, verbose=False)
    return report


def _distribution(real: pd.Series, synthetic: pd.Series, kind: str) -> dict[str, Any] | None:
    real, synthetic = real.dropna(), synthetic.dropna()
    if real.empty:
        return None
    if kind == "numeric":
        real_values = pd.to_numeric(real, errors="coerce").dropna().astype(float)
        synthetic_values = pd.to_numeric(synthetic, errors="coerce").dropna().astype(float)
        if real_values.empty:
            return None
        # Inner edges between the real 5th and 95th percentiles: no real extreme is shown.
        low, high = np.nanpercentile(real_values, [5, 95])
        inner = np.unique(np.round(np.linspace(low, high, DISTRIBUTION_BINS - 1), 1))
        edges = np.concatenate([[-np.inf], inner, [np.inf]])
        labels = [f"< {inner[0]:g}"]
        labels += [f"{a:g} to {b:g}" for a, b in zip(inner, inner[1:], strict=False)]
        labels.append(f">= {inner[-1]:g}")

        def shares(values: pd.Series) -> list[float]:
            counts = pd.cut(values, edges, right=False, labels=False).value_counts()
            counts = counts.reindex(range(len(labels)), fill_value=0)
            total = max(len(values), 1)
            return [round(float(c) / total, 3) for c in counts]

        return {
            "kind": "numeric",
            "labels": labels,
            "real": shares(real_values),
            "synthetic": shares(synthetic_values),
        }
    real_counts = real.astype(str).value_counts()
    shown = [str(v) for v in real_counts[real_counts >= DISTRIBUTION_MINIMUM_COUNT].index[:12]]
    labels = sorted(shown) + ["other"]

    def category_shares(values: pd.Series) -> list[float]:
        text = values.astype(str)
        text = text.where(text.isin(shown), "other")
        counts = text.value_counts().reindex(labels, fill_value=0)
        total = max(len(values), 1)
        return [round(float(c) / total, 3) for c in counts]

    return {
        "kind": "categorical",
        "labels": labels,
        "real": category_shares(real),
        "synthetic": category_shares(synthetic),
    }


@dataclass
class FidelityReport:
    """Quality scores and research-question answers of one replica against its real data.

    ``overall_score`` is the mean of the table scores (or SDMetrics' multi-table score when
    relationships were included); ``properties`` the property scores over all tables; ``tables`` the per-table Column Shapes, Column Pair Trends and their mean
    (``score``); ``columns`` each column's shape score; ``research_questions`` real vs synthetic
    vs difference vs within tolerance; ``distributions`` binned shares of key columns.
    """

    overall_score: float
    properties: dict[str, float]
    tables: dict[str, dict[str, float]]
    columns: list[dict[str, Any]]
    research_questions: pd.DataFrame
    max_absolute_difference_percentage_points: float
    min_quality_score: float | None = None
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def research_questions_within_tolerance(self) -> bool:
        """True if every research-question answer is within the tolerance."""
        return bool(self.research_questions["within_tolerance"].all())

    @property
    def quality_passed(self) -> bool | None:
        """True if the overall score reaches ``min_quality_score`` (None when none was set)."""
        if self.min_quality_score is None:
            return None
        return self.overall_score >= self.min_quality_score

    @property
    def passed(self) -> bool:
        """True if the research questions are within tolerance and the quality is high enough."""
        return self.research_questions_within_tolerance and self.quality_passed is not False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the whole report (what ``fidelity.json`` holds)."""
        questions = self.research_questions.astype(object)
        questions = questions.where(questions.notna(), None)
        return {
            "overall_score": round(self.overall_score, 4),
            "min_quality_score": self.min_quality_score,
            "quality_passed": self.quality_passed,
            "properties": {k: round(v, 4) for k, v in self.properties.items()},
            "tables": {
                name: {k: round(v, 4) for k, v in scores.items()}
                for name, scores in self.tables.items()
            },
            "columns": self.columns,
            "research_questions": questions.to_dict(orient="records"),
            "max_absolute_difference_percentage_points": (
                self.max_absolute_difference_percentage_points
            ),
            "research_questions_within_tolerance": self.research_questions_within_tolerance,
            "distributions": self.distributions,
            "passed": self.passed,
        }


def _check_tables(
    real: Mapping[str, pd.DataFrame],
    synthetic: Mapping[str, pd.DataFrame],
    dictionaries: Mapping[str, Sequence[Mapping[str, Any]]],
) -> None:
    for dataset, frame in real.items():
        if dataset not in synthetic:
            raise FidelityError(
                f"no synthetic table for {dataset}; synthesise every dataset you evaluate"
            )
        if dataset not in dictionaries:
            raise FidelityError(f"no data dictionary for {dataset}; pass the linked dictionaries")
        expected = [str(entry["name"]) for entry in dictionaries[dataset]]
        for side, table in (("real", frame), ("synthetic", synthetic[dataset])):
            if list(table.columns) != expected:
                raise FidelityError(
                    f"the {side} {dataset} columns {list(table.columns)} differ from its data "
                    f"dictionary's {expected}; a replica must keep the real schema"
                )


def evaluate_fidelity(
    real: Mapping[str, pd.DataFrame],
    synthetic: Mapping[str, pd.DataFrame],
    dictionaries: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    max_absolute_difference_percentage_points: float,
    min_quality_score: float | None = None,
    include_relationships: bool = False,
) -> FidelityReport:
    """Score a replica against the real linked tables it was built from.

    ``real`` and ``synthetic`` map dataset names (``linked/persons``...) to frames with the
    columns of ``dictionaries``. The tolerance and minimum score come from the synthetic policy
    (``research_questions.max_absolute_difference_percentage_points``,
    ``fidelity.min_quality_score``).

    Each table gets SDMetrics' quality report (Column Shapes, Column Pair Trends); the overall
    score is the mean of the table scores. ``include_relationships`` runs SDMetrics'
    multi-table report instead for the overall score and properties, adding Cardinality and
    Intertable Trends (several times slower).
    """
    if not real:
        raise FidelityError("no real tables to evaluate against; pass the linked datasets")
    _check_tables(real, synthetic, dictionaries)

    used = {dataset: dictionaries[dataset] for dataset in real}
    metadata = sdmetrics_metadata(used)
    real_frames = {table_label(d): _for_sdmetrics(frame) for d, frame in real.items()}
    synthetic_frames = {table_label(d): _for_sdmetrics(synthetic[d]) for d in real}
    tables: dict[str, dict[str, float]] = {}
    shapes_found, trends_found = [], []
    for dataset in real:
        label = table_label(dataset)
        single = _quality_report(
            {label: real_frames[label]},
            {label: synthetic_frames[label]},
            {"tables": {label: metadata["tables"][label]}, "relationships": []},
        )
        shapes = single.get_details("Column Shapes").assign(Table=label)
        trends = single.get_details("Column Pair Trends").assign(Table=label)
        shapes_found.append(shapes)
        trends_found.append(trends)
        scores = {
            "column_shapes": float(shapes["Score"].mean()),
            "column_pair_trends": float(trends["Score"].mean()),
        }
        present = [v for v in scores.values() if np.isfinite(v)]
        scores["score"] = float(np.mean(present)) if present else float("nan")
        tables[dataset] = scores
    shapes = pd.concat(shapes_found, ignore_index=True)
    trends = pd.concat(trends_found, ignore_index=True)
    properties = {
        "Column Shapes": float(shapes["Score"].mean()),
        "Column Pair Trends": float(trends["Score"].mean()),
    }
    overall = float(np.nanmean([scores["score"] for scores in tables.values()]))
    if include_relationships:
        # SDMetrics' multi-table report adds Cardinality and Intertable Trends (slow: every
        # parent column against every child column) and scores the whole set.
        linked_report = _quality_report(real_frames, synthetic_frames, metadata)
        properties = {
            str(row["Property"]): float(row["Score"])
            for _, row in linked_report.get_properties().iterrows()
            if pd.notna(row["Score"])
        }
        overall = float(linked_report.get_score())
    columns = [
        {
            "table": str(row["Table"]),
            "column": str(row["Column"]),
            "metric": str(row["Metric"]),
            "score": round(float(row["Score"]), 4),
        }
        for _, row in shapes.iterrows()
        if pd.notna(row["Score"])
    ]
    kinds = {
        dataset: {str(e["name"]): _sdtype(e) for e in entries} for dataset, entries in used.items()
    }
    distributions: dict[str, dict[str, Any]] = {}
    for dataset, names in KEY_COLUMNS.items():
        for column in names:
            if dataset not in real or column not in real[dataset].columns:
                continue
            kind = "numeric" if kinds[dataset].get(column) == "numerical" else "categorical"
            summary = _distribution(real[dataset][column], synthetic[dataset][column], kind)
            if summary is not None:
                distributions[f"{dataset}.{column}"] = summary
    return FidelityReport(
        overall_score=overall,
        properties=properties,
        tables=tables,
        columns=columns,
        research_questions=compare_research_questions(
            real, synthetic, max_absolute_difference_percentage_points
        ),
        max_absolute_difference_percentage_points=max_absolute_difference_percentage_points,
        min_quality_score=min_quality_score,
        distributions=distributions,
    )

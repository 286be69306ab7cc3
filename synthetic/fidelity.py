"""Fidelity of a synthetic replica: SDMetrics quality scores (column shapes, column pair trends,
overall and per table) and the research questions answered on real and synthetic data.

>>> report = evaluate_fidelity(real, synthetic, dictionaries,
...                            max_absolute_difference_percentage_points=5)  # doctest: +SKIP
>>> report.overall_score, report.passed                                      # doctest: +SKIP
(0.91, True)

What leaves the environment (``FidelityReport.to_dict()``, the ``fidelity.json`` and
``report.html`` of the open-data package) holds SDMetrics similarity scores and real-side
figures only as they pass the active SDC profile (``synthetic.real_figures``): the research
questions' real rates and the real shares of the key columns' distributions are derived from
record counts judged on persons, with failing cells and their complements suppressed and the
rest rounded. Bin edges come from the replica, never from real values; real categories are
named only when their count was published. Pass/fail verdicts are judged inside on the
unprotected real figures. :func:`publishable_fidelity` keeps only those parts of a report dict,
and is what the export and the HTML report apply to whatever they are given.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from disclosure.policy import SDCPolicy, SDCProfile
from disclosure.suppression import TOTAL
from synthetic.errors import SyntheticError
from synthetic.real_figures import RealSideControl, person_unit, protected_shares
from synthetic.research_questions import compare_research_questions, published_research_questions

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
# Categories shown per distribution (those with the largest published real counts), the rest
# folded into "other"; numeric columns in this many bins between the replica's 5th and 95th
# percentiles.
DISTRIBUTION_CATEGORIES = 12
DISTRIBUTION_BINS = 8
OTHER = "other"


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


def _distribution(
    real: pd.Series,
    synthetic: pd.Series,
    kind: str,
    control: RealSideControl,
    units: pd.Series | None = None,
) -> dict[str, Any] | None:
    """Real and synthetic shares of one column's values by category or bin.

    The real shares come from protected record counts (``control``: each category or bin
    judged on the persons in ``units``, suppressed ones None, the rest rounded); bins are cut
    at the replica's 5th and 95th percentiles, so no real value is shown, and only categories
    whose real count was published are named (the rest are ``other``).
    """
    present = real.notna()
    real = real[present]
    units = None if units is None else units[present]
    synthetic = synthetic.dropna()
    if real.empty:
        return None
    unit = None if units is None else str(units.name)

    def protected(keys: pd.Series | pd.Categorical) -> pd.Series | None:
        data = pd.DataFrame({"value": keys})
        if units is not None:
            data[unit] = units.to_numpy()
        return control.counts(data, "value", unit=unit)

    if kind == "numeric":
        real_values = pd.to_numeric(real, errors="coerce")
        synthetic_values = pd.to_numeric(synthetic, errors="coerce").dropna().astype(float)
        if synthetic_values.empty or real_values.isna().all():
            return None
        # Inner edges between the replica's 5th and 95th percentiles: public values only.
        low, high = np.nanpercentile(synthetic_values, [5, 95])
        inner = np.unique(np.round(np.linspace(low, high, DISTRIBUTION_BINS - 1), 1))
        edges = np.concatenate([[-np.inf], inner, [np.inf]])
        labels = [f"< {inner[0]:g}"]
        labels += [f"{a:g} to {b:g}" for a, b in zip(inner, inner[1:], strict=False)]
        labels.append(f">= {inner[-1]:g}")

        def binned(values: pd.Series) -> pd.Categorical:
            codes = pd.cut(values.astype(float), edges, right=False, labels=False)
            codes = np.where(np.isnan(codes), -1, codes).astype(int)
            return pd.Categorical.from_codes(codes, categories=labels)

        def shares(values: pd.Series) -> list[float]:
            counts = pd.Series(binned(values)).value_counts().reindex(labels, fill_value=0)
            total = max(len(values), 1)
            return [round(float(c) / total, 3) for c in counts]

        return {
            "kind": "numeric",
            "labels": labels,
            "real": protected_shares(protected(binned(real_values)), labels),
            "synthetic": shares(synthetic_values),
        }
    counts = protected(real.astype(str).to_numpy())
    published = (
        pd.Series(dtype="float64")
        if counts is None
        else counts.drop(labels=[TOTAL], errors="ignore").dropna()
    )
    published = published[published.index != OTHER]
    largest = published.sort_values(ascending=False, kind="stable")
    shown = [str(v) for v in largest.index[:DISTRIBUTION_CATEGORIES]]
    labels = sorted(shown) + [OTHER]

    def category_shares(values: pd.Series) -> list[float]:
        text = values.astype(str)
        text = text.where(text.isin(shown), OTHER)
        counts = text.value_counts().reindex(labels, fill_value=0)
        total = max(len(values), 1)
        return [round(float(c) / total, 3) for c in counts]

    return {
        "kind": "categorical",
        "labels": labels,
        "real": protected_shares(counts, labels, other=OTHER),
        "synthetic": category_shares(synthetic),
    }


@dataclass
class FidelityReport:
    """Quality scores and research-question answers of one replica against its real data.

    ``overall_score`` is the mean of the table scores (or SDMetrics' multi-table score when
    relationships were included); ``properties`` the property scores over all tables;
    ``tables`` the per-table Column Shapes, Column Pair Trends and their mean (``score``);
    ``columns`` each column's shape score; ``research_questions`` real vs synthetic vs
    difference vs within tolerance (see ``compare_research_questions``: judged on the
    unprotected real answers, which stay here, beside the protected ones that may leave);
    ``distributions`` shares of key columns, the real ones protected; ``disclosure_control``
    the SDC rules the real-side figures passed. ``to_dict()`` holds only what may leave.
    """

    overall_score: float
    properties: dict[str, float]
    tables: dict[str, dict[str, float]]
    columns: list[dict[str, Any]]
    research_questions: pd.DataFrame
    max_absolute_difference_percentage_points: float
    min_quality_score: float | None = None
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)
    disclosure_control: dict[str, Any] = field(default_factory=dict)

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
        """A JSON-serialisable dict of the report as it may leave the environment (what
        ``fidelity.json`` holds): scores, the protected real figures and the verdicts; no
        unprotected real figure, nor a difference computed on one."""
        return {
            "overall_score": round(self.overall_score, 4),
            "min_quality_score": self.min_quality_score,
            "quality_passed": self.quality_passed,
            "properties": {k: round(v, 4) for k, v in self.properties.items()},
            "tables": {
                name: {k: round(v, 4) for k, v in scores.items()}
                for name, scores in self.tables.items()
            },
            "columns": [_column_score(column) for column in self.columns],
            "research_questions": published_research_questions(self.research_questions),
            "max_absolute_difference_percentage_points": (
                self.max_absolute_difference_percentage_points
            ),
            "research_questions_within_tolerance": self.research_questions_within_tolerance,
            "distributions": self.distributions,
            "passed": self.passed,
            "disclosure_control": self.disclosure_control,
        }


# What each part of a report dict may hold when it leaves the environment.
PUBLISHABLE_KEYS = (
    "overall_score",
    "min_quality_score",
    "quality_passed",
    "properties",
    "tables",
    "columns",
    "research_questions",
    "max_absolute_difference_percentage_points",
    "research_questions_within_tolerance",
    "distributions",
    "passed",
    "disclosure_control",
)
COLUMN_KEYS = ("table", "column", "metric", "score")
QUESTION_KEYS = (
    "question",
    "group",
    "real",
    "real_numerator",
    "real_denominator",
    "real_status",
    "synthetic",
    "difference",
    "within_tolerance",
)
NOT_CONTROLLED = "not published (the report predates disclosure control; rebuild the replica)"


PUBLISHED_SCORE_DECIMALS = 2


def _column_score(column: Mapping[str, Any]) -> dict[str, Any]:
    # An SDMetrics detail reduced to its similarity score: no real value, extreme or frequency.
    # The score is rounded: for a two-valued column it is 1 - |real share - synthetic share|,
    # so four decimals would publish a real share to within 0.01 of a percentage point.
    out = {key: column.get(key) for key in COLUMN_KEYS}
    if isinstance(out["score"], int | float) and out["score"] == out["score"]:
        out["score"] = round(float(out["score"]), PUBLISHED_SCORE_DECIMALS)
    return out


def publishable_fidelity(fidelity: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a fidelity report dict that may leave the environment.

    Keeps the scores, verdicts and the real-side figures that passed disclosure control
    (a report from ``FidelityReport.to_dict()`` carries ``disclosure_control``), and nothing
    else: unknown keys are dropped, SDMetrics column details are cut to their score, and the
    real figures of a report made without disclosure control (an older ``fidelity.json``) are
    withheld, with the differences and per-row verdicts computed on them.
    """
    controlled = bool(fidelity.get("disclosure_control"))
    out = {key: fidelity[key] for key in PUBLISHABLE_KEYS if key in fidelity}
    if "columns" in out:
        out["columns"] = [_column_score(column) for column in out["columns"] or []]
    if "research_questions" in out:
        rows = []
        for row in out["research_questions"] or []:
            row = {key: row.get(key) for key in QUESTION_KEYS}
            if not controlled:
                row.update(
                    real=None,
                    real_numerator=None,
                    real_denominator=None,
                    real_status=NOT_CONTROLLED,
                    difference=None,
                    within_tolerance=None,
                )
            rows.append(row)
        out["research_questions"] = rows
    if "distributions" in out:
        distributions = {}
        for name, summary in (out["distributions"] or {}).items():
            summary = {key: summary.get(key) for key in ("kind", "labels", "real", "synthetic")}
            if not controlled:
                summary["real"] = [None] * len(summary["labels"] or [])
            distributions[name] = summary
        out["distributions"] = distributions
    return out


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
    sdc: SDCPolicy | SDCProfile | RealSideControl | None = None,
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

    Real-side figures (research-question rates, distribution shares) are protected under
    ``sdc``: the deployment's SDC policy (its active profile), one profile, or None for the
    active profile of the policies in force.
    """
    if not real:
        raise FidelityError("no real tables to evaluate against; pass the linked datasets")
    _check_tables(real, synthetic, dictionaries)
    control = RealSideControl.resolve(sdc)

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
            unit = person_unit(real[dataset], dataset)
            summary = _distribution(
                real[dataset][column],
                synthetic[dataset][column],
                kind,
                control,
                real[dataset][unit] if unit else None,
            )
            if summary is not None:
                distributions[f"{dataset}.{column}"] = summary
    return FidelityReport(
        overall_score=overall,
        properties=properties,
        tables=tables,
        columns=columns,
        research_questions=compare_research_questions(
            real, synthetic, max_absolute_difference_percentage_points, sdc=control
        ),
        max_absolute_difference_percentage_points=max_absolute_difference_percentage_points,
        min_quality_score=min_quality_score,
        distributions=distributions,
        disclosure_control=control.describe(),
    )

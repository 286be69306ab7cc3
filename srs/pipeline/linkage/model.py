"""The Splink model the settings declare: each comparison's levels, and Splink's settings."""

from __future__ import annotations

from srs.pipeline.linkage.settings import ComparisonSpec, LinkageSettings


def _comparison(spec: ComparisonSpec):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    column = spec.column
    if spec.method == "exact":
        return cl.ExactMatch(column).configure(term_frequency_adjustments=spec.term_frequency)
    levels = [
        cll.NullLevel(column),
        cll.ExactMatchLevel(column, term_frequency_adjustments=spec.term_frequency),
    ]
    if spec.method == "postcode":
        # Splink's PostcodeComparison levels, on the parts `standardise` derives: they are null
        # for codes that are not UK-shaped, so such codes agree exactly or by a typo only.
        levels[1].configure(label_for_charts="Exact match on full postcode")
        levels += [
            cll.ExactMatchLevel(f"{column}_{part}").configure(
                label_for_charts=f"Exact match on {part}"
            )
            for part in ("sector", "district", "area")
        ]
    elif spec.method == "date":
        left, right = f"{column}_l", f"{column}_r"
        swapped = (
            f"substr({left}, 1, 4) = substr({right}, 1, 4) AND substr({left}, 6, 2) = substr({right}, 9, 2) "
            f"AND substr({left}, 9, 2) = substr({right}, 6, 2)"
        )
        return cl.CustomComparison(
            output_column_name=column,
            comparison_levels=[
                *levels,
                cll.CustomLevel(swapped, label_for_charts="day and month swapped"),
                cll.DamerauLevenshteinLevel(column, 1),
                cll.AbsoluteDateDifferenceLevel(
                    column, input_is_string=True, threshold=1, metric="year"
                ),
                cll.ElseLevel(),
            ],
        )
    if spec.canonical_column:
        label = "same name or nickname" if spec.method == "name" else "same in another order"
        levels.append(cll.ExactMatchLevel(spec.canonical_column).configure(label_for_charts=label))
    if spec.swapped_with:
        # Forename and surname transposed. The level sits in both name comparisons, so a
        # swapped pair scores as if both names agreed; EM trains it on the pairs blocked by
        # date of birth (see training.em_blocking).
        levels.append(
            cll.ColumnsReversedLevel(column, spec.swapped_with, symmetrical=True).configure(
                label_for_charts=f"{column} and {spec.swapped_with} swapped"
            )
        )
    if spec.method in ("name", "text"):
        levels += [cll.JaroWinklerLevel(column, threshold) for threshold in spec.jaro_winkler]
    else:  # fuzzy, postcode: typed codes and numbers, where one slip is the usual error
        levels += [
            cll.DamerauLevenshteinLevel(column, distance) for distance in spec.damerau_levenshtein
        ]
    levels.append(cll.ElseLevel())
    return cl.CustomComparison(output_column_name=column, comparison_levels=levels)


def splink_settings(settings: LinkageSettings):
    """Splink's ``SettingsCreator`` for our declarative settings."""
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type=settings.link_type,
        unique_id_column_name="unique_id",
        comparisons=[_comparison(spec) for spec in settings.comparisons],
        blocking_rules_to_generate_predictions=[
            block_on(*rule) for rule in settings.blocking_rules
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=True,
    )

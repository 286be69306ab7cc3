"""Identifiers a mapping adds beyond the standard roles (``identifiers:``): the method each is
compared by, its values cleaned by that method, and the comparisons and blocking rules it
brings to the settings."""

from __future__ import annotations

import pandas as pd

from srs.pipeline.linkage.blocking import pairs_among
from srs.pipeline.linkage.cleaning import METHOD_CLEANERS, clean_values, parse_dates
from srs.pipeline.linkage.errors import LinkageError
from srs.pipeline.linkage.roles import MappedIdentifier, SourceMapping
from srs.pipeline.linkage.settings import ComparisonSpec, LinkageSettings, StandardisationSpec

# The comparison an added identifier gets, by its method.
_METHOD_COMPARISONS = {
    "exact": {"method": "exact"},
    "fuzzy": {"method": "fuzzy", "damerau_levenshtein": [1]},
    "name": {"method": "name", "jaro_winkler": [0.92, 0.8]},
    "text": {"method": "text", "jaro_winkler": [0.92, 0.8]},
    "date": {"method": "date"},
}


def identifier_methods(
    mappings: dict[str, SourceMapping], tables: dict[str, pd.DataFrame]
) -> dict[str, str]:
    """Each identifier the mappings add, with its method (one method in every table)."""
    methods: dict[str, tuple[str, str]] = {}
    for name, mapping in mappings.items():
        if name not in tables:
            continue
        for identifier, given in mapping.identifiers.items():
            first = methods.setdefault(identifier, (name, given.method))
            if first[1] != given.method:
                raise LinkageError(
                    f"identifier {identifier!r} is compared by method {first[1]} in table "
                    f"{first[0]!r} but {given.method} in table {name!r}; give it one method"
                )
    return {identifier: method for identifier, (_, method) in methods.items()}


def identifier_values(
    values: pd.Series,
    identifier: str,
    given: MappedIdentifier,
    table: str,
    rules: StandardisationSpec,
    notes: list[str],
) -> pd.Series:
    """An added identifier's values in their comparable form, cleaned (or, for dates, parsed)
    by its method; its placeholders become None."""
    placeholders = rules.missing_values.for_role(identifier)
    if given.method == "date":
        return parse_dates(
            values,
            given.date_format,
            f"table {table!r}, identifier {identifier!r} column {given.column!r}",
            placeholders,
            rules.max_unparsable_date_share,
            notes,
        )
    return clean_values(values, identifier, placeholders, METHOD_CLEANERS[given.method])


def identifier_comparisons(
    settings: LinkageSettings, mappings: dict[str, SourceMapping], records: pd.DataFrame
) -> LinkageSettings:
    """``settings`` with a comparison for each identifier the mappings add.

    An exact or fuzzy identifier that pairs few records (at most ten pairs per record: a
    person's own number, not a category) is also a blocking rule, as the police number is.
    """
    methods = identifier_methods(mappings, {name: None for name in mappings})
    if not methods:
        return settings
    comparisons = [
        ComparisonSpec(column=identifier, **_METHOD_COMPARISONS[method])
        for identifier, method in methods.items()
    ]
    blocking = [
        [identifier]
        for identifier, method in methods.items()
        if method in ("exact", "fuzzy")
        and identifier in records.columns
        and pairs_among(records[identifier].value_counts()) <= 10 * len(records)
    ]
    known = [rule for rule in settings.blocking_rules if rule not in blocking]
    return settings.model_copy(
        update={
            "comparisons": [*settings.comparisons, *comparisons],
            "blocking_rules": [*known, *blocking],
        }
    )

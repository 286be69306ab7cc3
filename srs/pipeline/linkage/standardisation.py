"""Standardisation: the source tables as one table of comparable linkage columns, a row per
record, with the keys blocking rules name; identifier values many people share are dropped."""

from __future__ import annotations

import pandas as pd

from srs.pipeline.linkage.blocking import add_blocking_keys
from srs.pipeline.linkage.cleaning import clean_values, parse_dates, postcode_parts
from srs.pipeline.linkage.errors import LinkageError
from srs.pipeline.linkage.identifiers import identifier_methods, identifier_values
from srs.pipeline.linkage.roles import LINKAGE_COLUMNS, SourceMapping, trimmed_headers
from srs.pipeline.linkage.settings import LinkageSettings, load_linkage_settings
from srs.pipeline.names import canonical_forenames


def standardise(
    tables: dict[str, pd.DataFrame],
    mappings: dict[str, SourceMapping],
    settings: LinkageSettings | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """One table of standard linkage columns, a row per source record, keyed ``unique_id``.

    Names are folded to upper-case ASCII letters (José -> JOSE, Łukasz -> LUKASZ, Иван -> IVAN;
    Smith-Jones -> SMITHJONES), postcodes spaced the UK way when UK-shaped (sw1a1aa ->
    SW1A 1AA) and kept as upper-case letters and digits otherwise, and blanks and the
    placeholders of ``settings.standardisation`` (UNKNOWN, N/A, ...) become missing, so two
    records never agree on a value neither holds. Values that are not dates in the declared
    format are listed in ``notes``; a column where most fail, or that holds a second format,
    raises :class:`LinkageError`.
    """
    settings = settings or load_linkage_settings()
    rules = settings.standardisation
    notes = notes if notes is not None else []
    if not tables or sum(len(t) for t in tables.values()) == 0:
        raise LinkageError("the tables hold no records; give at least one table with rows")
    if settings.link_type == "link_only" and len(tables) < 2:
        raise LinkageError(
            "link_type link_only compares records of different tables only, and there is one "
            "table; give two or more tables, or use dedupe_only to find duplicates in one"
        )
    empty = [name for name, frame in tables.items() if len(frame) == 0]
    if settings.link_type == "link_only" and len(tables) - len(empty) < 2:
        raise LinkageError(
            f"link_type link_only compares records of different tables, and table(s) "
            f"{', '.join(map(repr, empty))} hold no records (a header only); give two or more "
            "tables with records"
        )
    identifiers = identifier_methods(mappings, tables)
    nick = canonical_forenames()
    parts = []
    for name, frame in tables.items():
        if name not in mappings:
            raise LinkageError(f"no column mapping for table {name!r}")
        mapping = mappings[name]
        frame = trimmed_headers(frame).reset_index(drop=True)  # aligned by position
        missing = [c for c in mapping.source_columns() if c not in frame.columns]
        if missing:
            raise LinkageError(
                f"table {name!r} has no column(s) {', '.join(missing)} named in its mapping"
            )
        record_ids = frame[mapping.record_id]
        no_id = int((record_ids.isna() | record_ids.astype(str).str.strip().eq("")).sum())
        if no_id:  # else they would all be the record "nan"
            raise LinkageError(
                f"table {name!r}: {no_id:,} record(s) have no record id in column "
                f"{mapping.record_id!r}; every record needs one"
            )
        part = pd.DataFrame({"source_dataset": name, "record_id": record_ids.astype(str)})
        for role in LINKAGE_COLUMNS:
            column = mapping.columns.get(role)
            if role == "address":
                continue  # its lines are joined below
            if not column:
                part[role] = None
            elif role == "date_of_birth":
                part[role] = frame[column].to_numpy()  # parsed below
            else:
                part[role] = clean_values(frame[column], role, rules.missing_values.for_role(role))
        part["forename_canonical"] = part["forename"].map(
            lambda v: nick.get(v, v) if isinstance(v, str) else None
        )
        column = mapping.columns.get("date_of_birth")
        part["date_of_birth"] = parse_dates(
            part["date_of_birth"],
            mapping.date_format,
            f"table {name!r}, date of birth column {column!r}",
            rules.missing_values.for_role("date_of_birth"),
            rules.max_unparsable_date_share,
            notes,
        )
        part["birth_year"] = part["date_of_birth"].str[:4]
        lines = [
            clean_values(frame[c], "address", rules.missing_values.for_role("address"))
            for c in mapping.address_lines()
        ]
        part["address"] = _joined(lines, sort=False, index=part.index)
        part["address_sorted"] = _joined(lines, sort=True, index=part.index)
        for identifier in identifiers:
            given = mapping.identifiers.get(identifier)
            part[identifier] = (
                None
                if given is None
                else identifier_values(frame[given.column], identifier, given, name, rules, notes)
            )
        parts.append(part)
    combined = pd.concat(parts, ignore_index=True)
    combined.insert(0, "unique_id", combined["source_dataset"] + ":" + combined["record_id"])
    if combined["unique_id"].duplicated().any():
        example = combined.loc[combined["unique_id"].duplicated(), "unique_id"].iloc[0]
        raise LinkageError(f"record ids must be unique within a table; {example} appears twice")
    combined = pd.concat([combined, postcode_parts(combined["postcode"].astype("string"))], axis=1)
    for column in (
        *LINKAGE_COLUMNS,
        "forename_canonical",
        "birth_year",
        "address_sorted",
        *identifiers,
    ):
        combined[column] = combined[column].astype(object).where(combined[column].notna(), None)
    _drop_shared_placeholders(
        combined,
        ["pnc", *(i for i, method in identifiers.items() if method in ("exact", "fuzzy"))],
        notes,
    )
    records = add_blocking_keys(combined)
    # For the run's notes: a role no table maps is left out without a word (see
    # link._without_empty_columns); a mapped column with no value at all is reported.
    records.attrs["unmapped_roles"] = [
        role for role in LINKAGE_COLUMNS if not any(m.columns.get(role) for m in mappings.values())
    ]
    return records


# An identifier value held by at least this many records is checked for being a placeholder.
_SHARED_IDENTIFIER_MIN_RECORDS = 10


def _drop_shared_placeholders(records: pd.DataFrame, columns: list[str], notes: list[str]) -> None:
    """Identifier values that many different people hold become missing, with a note.

    A person's own number repeats over their records (a prolific offender's police number may
    be on hundreds), but their records mostly agree on date of birth and surname. A value
    whose records mostly disagree on both, like ``0000/0000000A`` typed when the number was not
    known, is a placeholder no policy list named; left in, it would block and agree thousands
    of strangers together. Changes ``records`` in place.
    """
    for column in columns:
        if column not in records.columns:
            continue
        values = records[column]
        counts = values.value_counts()
        candidates = counts[counts >= _SHARED_IDENTIFIER_MIN_RECORDS].index
        if len(candidates) == 0:
            continue
        held = records[values.isin(candidates)]
        shared = []
        for value, group in held.groupby(column, sort=False):
            modal_shares = [
                group[other].value_counts(normalize=True).iloc[0]
                for other in ("date_of_birth", "surname")
                if group[other].notna().sum() >= _SHARED_IDENTIFIER_MIN_RECORDS
            ]
            if modal_shares and max(modal_shares) < 0.5:
                shared.append(value)
        if shared:
            taken = values.isin(shared)
            records.loc[taken, column] = None
            notes.append(
                f"{column}: {len(shared):,} value(s) held by {int(taken.sum()):,} records of "
                "mostly different dates of birth and surnames taken as placeholders (made "
                "missing); add them to standardisation.missing_values if they mean 'not known'"
            )


def _joined(lines: list[pd.Series], sort: bool, index: pd.Index) -> pd.Series:
    """Address lines as one text, blank lines skipped (``sort``: lines in any order agree)."""
    if not lines:
        return pd.Series(None, index=index, dtype=object)
    rows = zip(*(line.to_numpy() for line in lines), strict=True)
    joined = []
    for row in rows:
        given = [line for line in row if isinstance(line, str)]
        joined.append(" ".join(sorted(given) if sort else given) or None)
    return pd.Series(joined, index=index, dtype=object)

"""Cleaning one column's values into the form linkage compares: text folded to upper-case
ASCII, each role's own cleaning (names, postcodes, identifiers, addresses), dates parsed.

Blanks and placeholders become None, so two records never agree on a value neither holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pandas as pd
from anyascii import anyascii

from srs.pipeline.linkage.errors import LinkageError

# UK postcode shape (outward code, inward code) once spaces are removed; only codes of this
# shape get a sector, district and area, so codes of other countries never agree on a part.
# Groups: district (outward code), area, sector digit, unit.
_UK_POSTCODE = re.compile(r"^(([A-Z]{1,2})[0-9][A-Z0-9]?)([0-9])([A-Z]{2})$")
# Formats tried on the values the declared date format cannot read, to name a second format.
_OTHER_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y%m%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%d %b %Y",
    "%d-%b-%Y",
)
_SHOWN_VALUES = 20  # distinct unparsable values listed in a note


def folded_text(value: object) -> str | None:
    """A value as trimmed, upper-case ASCII text with single spaces; None when blank."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = " ".join(anyascii(str(value)).upper().split())
    return text or None


def _name(text: str) -> str | None:
    # Separators (space, hyphen, apostrophe, dot) are dropped, so Smith-Jones, Smith Jones and
    # SMITHJONES agree exactly and O'Neil equals ONeil; a dropped part still scores by
    # Jaro-Winkler. Letters outside A-Z were already folded (José -> JOSE, Иван -> IVAN).
    return re.sub(r"[^A-Z]", "", text) or None


def _postcode(text: str) -> str | None:
    compact = re.sub(r"[^A-Z0-9]", "", text)
    uk = _UK_POSTCODE.match(compact)
    return f"{uk[1]} {uk[3]}{uk[4]}" if uk else (compact or None)


def _identifier(text: str) -> str | None:
    compact = text.replace(" ", "")
    # 0, 000000, 0/0: a system's way of saying "none", never a shared identifier.
    return None if re.fullmatch(r"[0\W_]*", compact) else compact


def _sex(text: str) -> str | None:
    return text[:1] if text[:1].isalpha() else None


def _words(text: str) -> str | None:
    # Addresses and places: punctuation is a word break (St. Mary's -> ST MARY S), so
    # "12-14 High St." and "12 14 HIGH ST" agree.
    return " ".join(re.sub(r"[^A-Z0-9]+", " ", text).split()) or None


def _house_number(text: str) -> str | None:
    compact = re.sub(r"[^A-Z0-9]", "", text)
    return None if re.fullmatch(r"0*", compact) else compact


_ROLE_CLEANERS: dict[str, Callable[[str], str | None]] = {
    "forename": _name,
    "surname": _name,
    "postcode": _postcode,
    "pnc": _identifier,
    "sex": _sex,
    "street_number": _house_number,
    "address": _words,
    "locality": _words,
    "region": _words,
}
# How an identifier a mapping adds is cleaned, by its method (dates are parsed instead).
METHOD_CLEANERS: dict[str, Callable[[str], str | None]] = {
    "exact": _identifier,
    "fuzzy": _identifier,
    "name": _name,
    "text": _words,
}


def clean_values(
    values: pd.Series,
    role: str,
    placeholders: frozenset[str],
    cleaner: Callable[[str], str | None] | None = None,
) -> pd.Series:
    """Values of one role in their comparable form; blanks and placeholders become None."""
    cleaner = cleaner or _ROLE_CLEANERS[role]
    cleaned_placeholders = {cleaner(p) for p in placeholders} - {None}

    def clean(value: object) -> str | None:
        text = folded_text(value)
        if text is None or text in placeholders:
            return None
        cleaned = cleaner(text)
        return None if cleaned in cleaned_placeholders else cleaned

    # Each distinct value is cleaned once: names and postcodes repeat a great deal.
    distinct = pd.Series(values.to_numpy(dtype=object)).drop_duplicates()
    cleaned = {v: clean(v) for v in distinct if v is not None and not pd.isna(v)}
    return pd.Series(
        [cleaned.get(v) if v is not None and not pd.isna(v) else None for v in values],
        index=values.index,
        dtype=object,
    )


def postcode_parts(postcodes: pd.Series) -> pd.DataFrame:
    """UK sector, district and area of each postcode (None for codes not UK-shaped)."""
    parts = postcodes.str.replace(" ", "").str.extract(_UK_POSTCODE)
    parts = parts.astype(object).where(parts.notna(), None)
    sector = [f"{d} {s}" if d else None for d, s in zip(parts[0], parts[2], strict=True)]
    return pd.DataFrame(
        {"postcode_sector": sector, "postcode_district": parts[0], "postcode_area": parts[1]},
        index=postcodes.index,
    )


def _show_values(values: pd.Series) -> str:
    counts = values.value_counts()
    shown = ", ".join(f"{v!r} ({n})" for v, n in counts.head(_SHOWN_VALUES).items())
    more = len(counts) - _SHOWN_VALUES
    return shown + (f" and {more} other value(s)" if more > 0 else "")


def parse_dates(
    values: pd.Series,
    date_format: str | None,
    where: str,
    placeholders: frozenset[str],
    refuse_above: float,
    notes: list[str],
) -> pd.Series:
    """Dates of birth as YYYY-MM-DD text; refuses a wrong or a second format (see README)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        iso = values.dt.strftime("%Y-%m-%d").astype(object)
        return iso.where(values.notna() & ~iso.isin(placeholders), None)
    # Dates already typed (date, datetime, Timestamp objects) need no format.
    typed = pd.Series([hasattr(v, "isoformat") for v in values], index=values.index)
    text = values.where(~typed).map(folded_text, na_action="ignore")
    text = text.astype(object).where(text.notna() & ~text.isin(placeholders), None)
    given = text.dropna()
    parsed = pd.to_datetime(text.astype("string"), format=date_format, errors="coerce")
    if typed.any():
        parsed[typed] = pd.to_datetime(values[typed], errors="coerce")
    failed = given[parsed[given.index].isna()]
    # Shown as the source holds them (trimmed), for the steward to find in the file.
    as_given = values[failed.index].astype(str).str.strip()
    named = date_format or "inferred from the first value"
    if len(failed):
        second = {
            other: int(pd.to_datetime(failed, format=other, errors="coerce").notna().sum())
            for other in _OTHER_DATE_FORMATS
            if other != date_format
        }
        other, read = max(second.items(), key=lambda item: item[1])
        if read and read * 2 > len(failed):
            raise LinkageError(
                f"{where}: {len(failed):,} of {len(given):,} values are not dates in the format "
                f"{named} (e.g. {as_given.iloc[0]!r}) but {read:,} of them read as {other}; "
                "a column must hold one format: set date_format in the mapping to the one the "
                "column uses, or convert the other values to it first"
            )
        if len(failed) > refuse_above * len(given):
            raise LinkageError(
                f"{where}: {len(failed):,} of {len(given):,} values are not dates in the format "
                f"{named} (e.g. {as_given.iloc[0]!r}); check date_format in the mapping"
            )
        notes.append(
            f"{where}: {len(failed):,} value(s) are not dates in the format {named} and are "
            f"treated as missing: {_show_values(as_given)}"
        )
    result = parsed.dt.strftime("%Y-%m-%d").astype(object)
    result = result.where(parsed.notna() & ~result.isin(placeholders), None)
    return pd.Series(result.to_numpy(), index=values.index, dtype=object)

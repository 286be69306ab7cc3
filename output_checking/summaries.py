"""Per-column summaries of an output's CSV file, for the checker who has to read it.

A checker opening a CSV wants to see at a glance whether it holds small counts (the minimum
excluding zero, and how many values are below the profile's minimum cell count), how many cells
were left blank or redacted, what the columns add up to, and whether every number is rounded as
the disclosure profile asks ("rounded to 5");
``summarise_csv`` gives that for each column of the file's bytes. A value written with a % sign
("12.5%") is a number (12.5) and is counted, so a column of them reads as percentages. A number
in a column of numbers beyond the range of any statistic (more than 308 digits before the point,
such as ``1e999999``) makes the file one that cannot be summarised (``CSVSummaryError``, naming
the cell), never an arithmetic error. Pure computation: bytes and a profile in, summaries out.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, localcontext

from disclosure.policy import Rounding, SDCProfile
from srs.errors import SRSError

NUMERIC = "numeric"
TEXT = "text"
# Cells that hold no value: blank, or how pandas, R and ONS tables write "not available".
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "..", "[z]"})
# Cells that were suppressed: OpenSAFELY's [REDACTED], ONS's c / x / [c] / [x] / [low], the
# asterisk and tilde many sites use, and bands such as "<5" or "<10".
REDACTION_MARKERS = frozenset({"[redacted]", "redacted", "*", "c", "x", "~", "[c]", "[x]", "[low]"})
# Letters that are redaction markers in a column of numbers but ordinary values in a text column.
AMBIGUOUS_MARKERS = frozenset({"c", "x"})
BAND = re.compile(r"<\s*=?\s*\d+")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
PERCENT_SIGN = re.compile(r"\s*%$")
# The largest float64 is about 1.8e308: no tool writes a statistic with more digits than that,
# and past it exact arithmetic (and printing) of the number costs without bound.
LARGEST_EXPONENT = 308
THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")


class CSVSummaryError(SRSError):
    """A file cannot be summarised as CSV (not UTF-8 text, or no header row)."""


@dataclass(frozen=True)
class ColumnSummary:
    """One column of a CSV as a checker sees it.

    Numeric columns have ``minimum``, ``minimum_nonzero``, ``maximum`` and ``total`` (of the
    values present), ``whole`` (every value a whole number, as counts are), ``below_minimum``
    (values above 0 and below the profile's minimum cell count), ``negative`` (values below 0),
    ``percent_signs`` (values written with a % sign, "12.5%") and, where the profile rounds,
    ``unrounded``: how many values are not on the profile's rounding. Text columns have
    ``distinct``.
    """

    name: str
    kind: str
    cells: int
    missing: int
    redacted: int
    values: int
    minimum: int | float | None = None
    minimum_nonzero: int | float | None = None
    maximum: int | float | None = None
    total: int | float | None = None
    rounding: str | None = None
    unrounded: int | None = None
    distinct: int | None = None
    whole: bool | None = None
    below_minimum: int | None = None
    negative: int | None = None
    percent_signs: int | None = None

    @property
    def rounded(self) -> bool | None:
        """True when every value is on the profile's rounding, None when it does not apply."""
        if self.kind != NUMERIC or self.unrounded is None or self.values == 0:
            return None
        return self.unrounded == 0

    def rounding_note(self) -> str:
        """What a checker reads about rounding: "rounded to 5", "3 of 12 not rounded to 5"."""
        if self.kind != NUMERIC:
            return ""
        if self.rounding is None:
            return "profile does not round"
        if self.values == 0:
            return "no values"
        if self.unrounded == 0:
            return self.rounding
        return f"{self.unrounded} of {self.values} not {self.rounding}"


@dataclass(frozen=True)
class CSVSummary:
    """Every column of one CSV file, and the rows that did not fit the header."""

    rows: int
    columns: list[ColumnSummary]
    ragged_rows: list[int] = field(default_factory=list)


def rounding_rule(profile: SDCProfile) -> str | None:
    """How the profile rounds released numbers, as a checker would say it (None: it does not)."""
    if profile.rounding in (Rounding.base, Rounding.controlled):
        return None if profile.rounding_base == 1 else f"rounded to {profile.rounding_base}"
    if profile.rounding == Rounding.midpoint6:
        return "midpoint-6 rounded"
    return None


def _on_rounding(value: Decimal, profile: SDCProfile) -> bool:
    # On Python ints, not Decimals: a Decimal remainder of a number of more than 28 digits is
    # an InvalidOperation under the default context.
    if value != value.to_integral_value():
        return False
    whole = int(value)
    if profile.rounding == Rounding.midpoint6:
        # 0 stays 0; 1-6 become 3, 7-12 become 9: every other value is 3 more than a multiple of 6.
        return whole == 0 or whole % 6 == 3
    return whole % profile.rounding_base == 0


def _percent(text: str) -> bool:
    """True when a cell is a number written with a trailing % sign ("12.5%", "3 %")."""
    return bool(PERCENT_SIGN.search(text)) and _number(PERCENT_SIGN.sub("", text)) is not None


def _number(text: str) -> Decimal | None:
    """The number a cell holds: plain, with thousands separators, or with a % sign."""
    if PERCENT_SIGN.search(text):
        text = PERCENT_SIGN.sub("", text)
    if THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    if not NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        return None


def _plain(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _exact_sum(values: list[Decimal]) -> Decimal:
    # Enough digits for every whole part the range admits: the default 28 would round a total of
    # 30-digit numbers.
    with localcontext() as context:
        context.prec = LARGEST_EXPONENT + 30
        return sum(values, Decimal(0))


def _refuse_out_of_range(name: str, cells: list[str]) -> None:
    for row, cell in enumerate(cells, start=2):
        value = _number(cell)
        if value is not None and value != 0 and value.adjusted() > LARGEST_EXPONENT:
            shown = cell if len(cell) <= 40 else cell[:20] + "..." + cell[-10:]
            raise CSVSummaryError(
                f"column {name!r}, row {row}: {shown!r} is beyond the range of any statistic "
                f"(more than {LARGEST_EXPONENT + 1} digits before the point), so the column "
                "cannot be summarised; ask the researcher to correct the value, or to write it "
                "as text if it is a label"
            )


def _summarise_column(name: str, cells: list[str], profile: SDCProfile) -> ColumnSummary:
    stripped = [cell.strip() for cell in cells]
    missing = sum(1 for cell in stripped if cell.lower() in MISSING_MARKERS)
    present = [cell for cell in stripped if cell.lower() not in MISSING_MARKERS]

    def redaction(cell: str, numeric_column: bool) -> bool:
        lowered = cell.lower()
        if lowered in AMBIGUOUS_MARKERS:
            return numeric_column
        return lowered in REDACTION_MARKERS or bool(BAND.fullmatch(cell))

    numbers = [_number(cell) for cell in present]
    others = [c for c, n in zip(present, numbers, strict=True) if n is None]
    values = [n for n in numbers if n is not None]
    if values and all(redaction(cell, True) for cell in others):
        _refuse_out_of_range(name, stripped)
        rule = rounding_rule(profile)
        nonzero = [v for v in values if v != 0]
        return ColumnSummary(
            name=name,
            kind=NUMERIC,
            cells=len(cells),
            missing=missing,
            redacted=len(others),
            values=len(values),
            minimum=_plain(min(values)),
            minimum_nonzero=_plain(min(nonzero)) if nonzero else None,
            maximum=_plain(max(values)),
            total=_plain(_exact_sum(values)),
            rounding=rule,
            unrounded=None if rule is None else sum(not _on_rounding(v, profile) for v in values),
            whole=all(v == v.to_integral_value() for v in values),
            below_minimum=sum(0 < v < profile.minimum_cell_count for v in values),
            negative=sum(v < 0 for v in values),
            percent_signs=sum(_percent(cell) for cell in present),
        )
    redacted = [cell for cell in present if redaction(cell, False)]
    return ColumnSummary(
        name=name,
        kind=TEXT,
        cells=len(cells),
        missing=missing,
        redacted=len(redacted),
        values=len(present) - len(redacted),
        distinct=len({cell for cell in present if not redaction(cell, False)}),
    )


def summarise_csv(data: bytes, profile: SDCProfile) -> CSVSummary:
    """Summarise each column of a CSV file's bytes (UTF-8, header row first).

    >>> from srs.governance.policy import load_policies
    >>> profile = load_policies().sdc.active                    # ons-srs: round to 5
    >>> summary = summarise_csv(b"area,count\\nLS,15\\nM,0\\nB,*\\n", profile)
    >>> count = summary.columns[1]
    >>> count.minimum, count.minimum_nonzero, count.maximum, count.redacted
    (0, 15, 15, 1)
    >>> count.rounding_note()
    'rounded to 5'
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CSVSummaryError(
            f"the file is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); "
            "ask the researcher to export the CSV as UTF-8"
        ) from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise CSVSummaryError(f"the file is not valid CSV: {exc}") from None
    rows = [row for row in rows if row]  # blank lines carry no cells
    if not rows:
        raise CSVSummaryError("the file is empty: a CSV output needs a header row")
    header, body = rows[0], rows[1:]
    ragged = [number for number, row in enumerate(body, start=2) if len(row) != len(header)]
    names = [name.strip() or f"column {i + 1}" for i, name in enumerate(header)]
    columns = [
        _summarise_column(name, [row[i] if i < len(row) else "" for row in body], profile)
        for i, name in enumerate(names)
    ]
    return CSVSummary(rows=len(body), columns=columns, ragged_rows=ragged)

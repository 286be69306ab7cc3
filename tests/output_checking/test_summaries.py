"""CSV column summaries for checkers: ranges, small counts, redactions and rounding."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

from output_checking import summaries
from output_checking.summaries import NUMERIC, TEXT, CSVSummaryError, summarise_csv


@pytest.fixture(scope="module")
def profiles(policies):
    return policies.sdc.profiles


def by_name(data: bytes, profile):
    return {c.name: c for c in summarise_csv(data, profile).columns}


def test_numeric_column_has_range_total_and_smallest_nonzero(profiles) -> None:
    csv = b"area,count,mean_age\nLS,15,34.5\nM,0,41.25\nB,1235,29\n"
    columns = by_name(csv, profiles["ons-srs"])
    count = columns["count"]
    assert count.kind == NUMERIC
    assert (count.minimum, count.minimum_nonzero, count.maximum, count.total) == (0, 15, 1235, 1250)
    assert count.rounded is True and count.rounding_note() == "rounded to 5"
    age = columns["mean_age"]
    assert age.minimum == 29 and age.maximum == 41.25 and age.total == pytest.approx(104.75)
    assert age.unrounded == 3 and age.rounding_note() == "3 of 3 not rounded to 5"
    area = columns["area"]
    assert area.kind == TEXT and area.distinct == 3 and area.minimum is None


def test_missing_and_redacted_cells_are_counted_apart(profiles) -> None:
    csv = b"group,count\na,[REDACTED]\nb,*\nc,c\nd,~\ne,<10\nf,\ng,NaN\nh,NA\ni,20\nj,x\nk,[c]\n"
    count = by_name(csv, profiles["ons-srs"])["count"]
    assert count.kind == NUMERIC
    assert count.cells == 11 and count.values == 1
    assert count.redacted == 7  # [REDACTED], *, c, ~, <10, x, [c]
    assert count.missing == 3  # blank, NaN, NA
    assert count.minimum == count.maximum == 20


def test_single_letters_are_values_in_a_text_column(profiles) -> None:
    columns = by_name(b"grade,note\nc,[REDACTED]\nx,fine\nb,fine\n", profiles["ons-srs"])
    assert columns["grade"].kind == TEXT
    assert columns["grade"].distinct == 3 and columns["grade"].redacted == 0
    assert columns["note"].redacted == 1 and columns["note"].distinct == 1


def test_an_unrounded_count_is_named(profiles) -> None:
    count = by_name(b"area,count\nLS,15\nM,7\nB,20\n", profiles["ons-srs"])["count"]
    assert count.rounded is False
    assert count.rounding_note() == "1 of 3 not rounded to 5"
    assert count.minimum_nonzero == 7


def test_rounding_follows_the_profile(profiles) -> None:
    csv = b"area,count\nLS,3\nM,9\nB,0\n"
    assert by_name(csv, profiles["ons-srs"])["count"].rounded is False
    assert by_name(csv, profiles["datashield"])["count"].rounded is None  # does not round
    assert by_name(csv, profiles["datashield"])["count"].rounding_note() == "profile does not round"
    midpoint = profiles["opensafely"].model_copy(update={"rounding": "midpoint6"})
    column = by_name(csv, midpoint)["count"]
    assert column.rounded is True and column.rounding_note() == "midpoint-6 rounded"
    assert by_name(b"area,count\nLS,6\n", midpoint)["count"].rounded is False


def test_thousands_separators_and_signs_are_numbers(profiles) -> None:
    count = by_name(b'area,count\nLS,"1,250"\nM,-5\nB,+10\n', profiles["ons-srs"])["count"]
    assert count.kind == NUMERIC
    assert (count.minimum, count.maximum, count.total) == (-5, 1250, 1255)


def test_a_column_with_one_word_is_text(profiles) -> None:
    column = by_name(b"area,count\nLS,15\nM,many\n", profiles["ons-srs"])["count"]
    assert column.kind == TEXT and column.distinct == 2


def test_ragged_rows_are_reported_and_padded(profiles) -> None:
    summary = summarise_csv(b"a,b\n1,2\n3\n4,5,6\n", profiles["ons-srs"])
    assert summary.rows == 3 and summary.ragged_rows == [3, 4]
    b = summary.columns[1]
    assert b.missing == 1 and b.values == 2


def test_byte_order_mark_and_blank_header_names(profiles) -> None:
    summary = summarise_csv("\ufeffarea,\nLS,5\n".encode(), profiles["ons-srs"])
    assert [c.name for c in summary.columns] == ["area", "column 2"]


def test_files_that_are_not_csv_text_are_refused_with_a_reason(profiles) -> None:
    with pytest.raises(CSVSummaryError, match="not UTF-8"):
        summarise_csv(b"\x89PNG\r\n\x1a\n", profiles["ons-srs"])
    with pytest.raises(CSVSummaryError, match="empty"):
        summarise_csv(b"\n\n", profiles["ons-srs"])


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=30))
def test_summary_of_any_count_column_matches_the_numbers(profiles, counts) -> None:
    profile = profiles["ons-srs"]
    csv = ("count\n" + "".join(f"{c}\n" for c in counts)).encode()
    (column,) = summarise_csv(csv, profile).columns
    assert column.minimum == min(counts) and column.maximum == max(counts)
    assert column.total == sum(counts)
    nonzero = [c for c in counts if c]
    assert column.minimum_nonzero == (min(nonzero) if nonzero else None)
    assert column.rounded == all(c % 5 == 0 for c in counts)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(summaries)
    assert result.attempted > 0 and result.failed == 0


def test_whole_numbers_and_counts_below_the_minimum_are_counted(profiles) -> None:
    columns = by_name(b"area,count,rate\nLS,15,0.5\nM,7,1\nB,0,2\nW,3,3\n", profiles["ons-srs"])
    count = columns["count"]
    assert count.whole is True and count.below_minimum == 2  # 7 and 3; zero is not small
    assert columns["rate"].whole is False
    datashield = by_name(b"area,count\nLS,15\nM,7\nW,3\n", profiles["datashield"])["count"]
    assert datashield.below_minimum == 0  # its minimum cell count is 3


@pytest.mark.parametrize(
    "cell", ["1e999999", "-1E+400", "1" + "0" * 309, "1e999999999999"], ids=str.__len__
)
def test_a_number_beyond_any_statistic_is_a_summary_error_naming_the_cell(profiles, cell) -> None:
    # 1e999999 raised decimal.InvalidOperation, which the checker page did not catch.
    csv = f"sex,count\nF,120\nM,{cell}\n".encode()
    with pytest.raises(CSVSummaryError, match=r"column 'count', row 3: .* beyond the range"):
        summarise_csv(csv, profiles["ons-srs"])


def test_long_numbers_are_summarised_exactly(profiles) -> None:
    # A remainder of a Decimal of more than 28 digits was an InvalidOperation too.
    big = 10**35 + 5
    (column,) = summarise_csv(f"count\n{big}\n{big}\n1e300\n".encode(), profiles["ons-srs"]).columns
    assert column.total == 2 * big + 10**300 and column.unrounded == 0


def test_percent_signs_and_negative_values_are_counted(profiles) -> None:
    columns = by_name(b"group,rate,change\nA,33.3%,-5\nB,66.7 %,10\nC,,-3\n", profiles["ons-srs"])
    rate, change = columns["rate"], columns["change"]
    assert rate.kind == NUMERIC and rate.percent_signs == 2 and rate.maximum == 66.7
    assert change.negative == 2 and columns["rate"].negative == 0


@given(st.text(alphabet="0123456789eE+-.,%x *\n", max_size=60))
def test_any_text_is_summarised_or_refused_as_a_summary_error(profiles, body) -> None:
    # The checker page and s.custom_output catch CSVSummaryError: nothing else may escape.
    from output_checking.readiness import file_findings

    profile = profiles["ons-srs"]
    try:
        summary = summarise_csv(("count,n\n" + body).encode(), profile)
    except CSVSummaryError:
        return
    file_findings(summary, profile)

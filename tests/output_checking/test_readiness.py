"""Release readiness of a custom output's CSV: what a checker would send back, found before
submission (rounding, small counts, shares without safe denominators, missing words, changes)."""

from __future__ import annotations

import pytest

from output_checking.readiness import (
    CHECK,
    REVIEW,
    changes_since,
    count_findings,
    description_findings,
    file_findings,
    percentage_findings,
    readiness_check,
    readiness_findings,
    refreshed,
)
from output_checking.summaries import summarise_csv


@pytest.fixture(scope="module")
def profile(policies):
    return policies.sdc.profiles["ons-srs"]  # minimum cell count 10, rounding to 5


def findings(csv: bytes, profile, rule=file_findings):
    return rule(summarise_csv(csv, profile), profile)


def test_unrounded_and_small_counts_are_named_by_column(profile) -> None:
    found = findings(b"court,cases,people\ncrown,35,40\nyouth,7,12\n", profile, count_findings)
    by_rule = {(f.rule, f.column): f for f in found}
    assert set(by_rule) == {
        ("unrounded", "cases"),
        ("small_count", "cases"),
        ("unrounded", "people"),
    }
    assert "1 of 2 counts are not rounded to 5" in by_rule["unrounded", "cases"].message
    small = by_rule["small_count", "cases"].message
    assert "below the minimum cell count of 10 (smallest 7)" in small
    assert all(f.status == REVIEW for f in found)


def test_a_clean_table_has_no_findings(profile) -> None:
    assert findings(b"court,cases,total\ncrown,35,40\nyouth,15,20\n", profile) == []


def test_years_ages_and_fractions_are_not_counts(profile) -> None:
    csv = b"year,age_band_lower,mean_sentence,cases\n2021,18,4.37,15\n2022,21,3.5,20\n"
    assert findings(csv, profile, count_findings) == []


def test_the_thresholds_are_the_profiles(policies) -> None:
    datashield = policies.sdc.profiles["datashield"]  # minimum 3, no rounding
    assert findings(b"court,cases\ncrown,7\nyouth,4\n", datashield, count_findings) == []


def test_a_percentage_without_a_denominator_asks_for_one(profile) -> None:
    (finding,) = findings(b"court,pct_reoffended\ncrown,35.2\nyouth,50\n", profile)
    assert (finding.rule, finding.column) == ("denominator", "pct_reoffended")
    assert "holds percentages but the file has no denominator column" in finding.message
    (proportion,) = findings(b"court,share\ncrown,0.35\nyouth,0.5\n", profile)
    assert "holds proportions" in proportion.message
    (rate,) = findings(b"area,rate per 100k\nLS,412.5\n", profile)
    assert "holds rates" in rate.message
    (sign,) = findings(b"court,% convicted\ncrown,80\n", profile)
    assert sign.column == "% convicted"


def test_a_percentage_over_a_small_denominator_is_flagged(profile) -> None:
    csv = b"court,reoffended_pct,n\ncrown,35.2,125\nyouth,50,6\n"
    found = findings(csv, profile, percentage_findings)
    (finding,) = found
    assert finding.rule == "small_denominator" and finding.column == "reoffended_pct"
    assert "'n' has 1 such value (smallest 6)" in finding.message
    safe = b"court,reoffended_pct,total\ncrown,35.2,125\nyouth,50,60\n"
    assert findings(safe, profile, percentage_findings) == []


def test_missing_context_and_controls_are_asked_for(profile) -> None:
    rules = [f.rule for f in description_findings("", "  ")]
    assert rules == ["context", "controls"]
    # The environment's own tag is not the researcher's description.
    tagged = "[computed on SYNTHETIC data: the deployment's replica synthetic/*]  "
    assert [f.rule for f in description_findings(tagged, "rounded to 5")] == ["context"]
    assert description_findings("Reoffending by court, 2020-24", "rounded to 5") == []


def test_changes_since_an_earlier_version_count_rows_columns_and_cells() -> None:
    earlier = b"court,cases,pct\ncrown,35,20.1\nyouth,7,50\nmags,40,10\n"
    current = b"court,cases,total\ncrown,35,100\nyouth,10,20\ncounty,15,30\n"
    finding = changes_since(earlier, current, "output #4 (changes requested)")
    assert finding.rule == "changes" and finding.status == REVIEW
    assert finding.message == (
        "changed since output #4 (changes requested): rows 3 -> 3 (1 added, 1 removed); "
        "columns added: total; columns removed: pct; 1 cell changed (column cases)"
    )
    same = changes_since(earlier, earlier, "output #4")
    assert same.message == "unchanged since output #4: the file is byte for byte the same"
    png = changes_since(b"\x89PNG1", b"\x89PNG2", "output #4")
    assert "not CSV" in png.message


def test_rows_without_unique_labels_are_compared_by_position() -> None:
    earlier = b"sex,n\nF,10\nF,20\n"
    current = b"sex,n\nF,10\nF,25\nM,5\n"
    message = changes_since(earlier, current, "output #1").message
    assert "rows 2 -> 3 (1 added, 0 removed)" in message and "1 cell changed" in message


def test_a_changed_cell_under_a_repeated_column_name_is_found() -> None:
    # It was "the same cells, written differently": both columns were read as the first 'count'.
    earlier = b"sex,count,count\nF,120,3\nM,340,5\n"
    current = b"sex,count,count\nF,120,2\nM,340,5\n"
    message = changes_since(earlier, current, "output #4").message
    assert message == "changed since output #4: 1 cell changed (column count (2nd))"
    dropped = changes_since(earlier, b"sex,count\nF,120\nM,340\n", "output #4").message
    assert dropped == "changed since output #4: columns removed: count (2nd)"


def test_repeated_column_names_are_a_finding(profile) -> None:
    found = findings(b"sex,count,count\nF,120,15\nM,340,25\n", profile)
    assert [(f.rule, f.column) for f in found] == [("duplicate_columns", "count")]
    assert "column name 'count' is used 2 times: give each column its own name" in found[0].message


def test_negative_counts_are_a_finding_and_the_rest_still_judged(profile) -> None:
    found = findings(b"sex,count\nF,-3\nM,120\nX,4\n", profile)
    by_rule = {f.rule: f for f in found}
    assert set(by_rule) == {"negative", "unrounded", "small_count"}
    assert by_rule["negative"].message.startswith(
        "column 'count': 1 value is negative (smallest -3), which no count can be"
    )
    assert readiness_check(found)["message"].endswith(
        "negative counts; unrounded counts; small counts"
    )


def test_rates_written_with_a_percent_sign_are_shares(profile) -> None:
    # "33.3%" made the column text, so no share was found and nothing asked for.
    found = findings(b"group,rate\nA,33.3%\nB,66.7%\n", profile)
    assert [(f.rule, f.column) for f in found] == [("denominator", "rate")]
    assert "column 'rate' holds percentages but the file has no denominator" in found[0].message
    unnamed = findings(b"group,value,n\nA,33.3%,5\nB,66.7%,100\n", profile, percentage_findings)
    assert [(f.rule, f.column) for f in unnamed] == [("small_denominator", "value")]


def test_a_huge_exponent_is_a_finding_and_the_checker_page_still_renders(
    profile, policies, tmp_path
) -> None:
    from output_checking.web import output_page
    from output_checking.workflow import OutputView
    from srs.governance.registry.models import Output, OutputFile
    from srs.research.drafts import custom_draft

    data = b"sex,count\nF,1e999999\nM,120\n"
    path = tmp_path / "counts.csv"
    path.write_bytes(data)
    draft = custom_draft(path, "Counts by sex for the appendix, checked by hand.", profile=profile)
    (csv,) = [f for f in readiness_findings(draft.checks) if f.rule == "csv"]
    assert csv.message.startswith("the file cannot be read: column 'count', row 2: '1e999999'")
    output = Output(kind="custom", name="counts", content=draft.content, checks=draft.checks)
    output.files = [OutputFile(name="counts.csv", content=data, sha256="0" * 64, size=len(data))]
    page = output_page(OutputView(output, None, [], False, [], None), policies)
    ((_, summary, problem),) = page.csv_summaries
    assert summary is None and "is beyond the range of any statistic" in problem


def test_the_check_refreshes_its_description_findings(profile) -> None:
    file = findings(b"court,cases\ncrown,7\n", profile)
    check = readiness_check(file + description_findings("", ""))
    assert check["check"] == CHECK and check["status"] == REVIEW
    assert check["message"].startswith("4 things a checker will ask about before release")
    other = {"check": "custom", "status": "review", "message": "read it"}
    (kept, now) = refreshed([other, check], "Cases by court", "suppressed below 10")
    assert kept == other
    assert [f["rule"] for f in now["findings"]] == ["unrounded", "small_count"]
    assert [f.rule for f in readiness_findings([kept, now])] == ["unrounded", "small_count"]
    clean = refreshed([readiness_check([])], "Cases by court", "rounded to 5")
    assert clean[0]["status"] == "ok" and readiness_findings(clean) == []

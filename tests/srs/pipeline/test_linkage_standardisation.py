"""Standardisation never invents agreement: blanks and placeholders are missing, Unicode names
fold instead of vanishing, postcodes compare however they are spaced, and dates in the wrong or
a second format are refused with the format named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from srs.governance.policy import PolicyError, default_policy_dir
from srs.pipeline.ingest import load_dictionary
from srs.pipeline.linkage import (
    LinkageError,
    SourceMapping,
    evaluate,
    link_tables,
    load_linkage_settings,
    mapping_from_dictionary,
    standardise,
)

PLACEHOLDERS = ["", " ", "   ", "UNKNOWN", "n/a", "N/A", "0", "Not Known", "none", "NULL", "-", "?"]


def one_table(**columns: list) -> tuple[dict[str, pd.DataFrame], dict[str, SourceMapping]]:
    date_format = columns.pop("date_format", None)
    count = len(next(iter(columns.values())))
    frame = pd.DataFrame({"id": [str(n) for n in range(count)], **columns}, dtype=object)
    mapping = SourceMapping("id", {role: role for role in columns}, date_format)
    return {"t": frame}, {"t": mapping}


def test_blank_and_placeholder_identifiers_become_missing() -> None:
    tables, mappings = one_table(pnc=PLACEHOLDERS + ["  ab12/34c ", "0000000"])
    records = standardise(tables, mappings)
    assert records["pnc"].tolist() == [None] * len(PLACEHOLDERS) + ["AB12/34C", None]


def test_placeholders_hold_for_every_role() -> None:
    tables, mappings = one_table(
        forename=["UNKNOWN", " ", "N/A", "José"],
        surname=["Not known", "", "NONE", "?"],
        sex=["U", "unknown", " ", "f"],
        postcode=["NFA", "n/a", "  ", "sw1a1aa"],
    )
    records = standardise(tables, mappings)
    assert records["forename"].tolist() == [None, None, None, "JOSE"]
    assert records["surname"].tolist() == [None, None, None, None]
    assert records["sex"].tolist() == [None, None, None, "F"]
    assert records["postcode"].tolist() == [None, None, None, "SW1A 1AA"]


def test_placeholders_come_from_the_policy(tmp_path) -> None:
    settings = load_linkage_settings()
    assert "UNKNOWN" in settings.standardisation.missing_values.any_role
    custom = settings.model_copy(
        update={
            "standardisation": settings.standardisation.model_copy(
                update={
                    "missing_values": settings.standardisation.missing_values.model_copy(
                        update={"pnc": ["ZZZ"]}
                    )
                }
            )
        }
    )
    tables, mappings = one_table(pnc=["zzz", "0"])
    assert standardise(tables, mappings, custom)["pnc"].tolist() == [None, None]
    (tmp_path / "linkage.yaml").write_text(
        (default_policy_dir() / "linkage.yaml")
        .read_text()
        .replace("missing_values:", "missing_values:\n    shoe_size: [X]")
    )
    with pytest.raises(PolicyError, match="shoe_size"):
        load_linkage_settings(tmp_path)


def test_unicode_names_fold_instead_of_vanishing() -> None:
    names = ["José", "Müller", "Łukasz", "Иван", "Smith-Jones", "O'Neil", "Nguyễn", "  søren "]
    tables, mappings = one_table(forename=names, surname=names)
    records = standardise(tables, mappings)
    assert records["surname"].tolist() == [
        "JOSE",
        "MULLER",
        "LUKASZ",
        "IVAN",
        "SMITHJONES",
        "ONEIL",
        "NGUYEN",
        "SOREN",
    ]
    # The nickname table still applies to a folded forename.
    assert records["forename_canonical"].tolist()[:4] == ["JOSE", "MULLER", "LUKASZ", "IVAN"]


def test_postcodes_compare_however_they_are_spaced() -> None:
    codes = [
        "SW1A1AA",
        "sw1a 1aa",
        " SW1A  1AA ",
        "m11aa",
        "75008",
        "k1a 0b1",
        "1012 ab",
        "10001-1234",
    ]
    tables, mappings = one_table(postcode=codes)
    records = standardise(tables, mappings)
    assert records["postcode"].tolist() == [
        "SW1A 1AA",
        "SW1A 1AA",
        "SW1A 1AA",
        "M1 1AA",
        "75008",
        "K1A0B1",
        "1012AB",
        "100011234",
    ]
    # UK sector, district and area only for UK-shaped codes: non-UK codes never agree on a part.
    assert records["postcode_district"].tolist() == ["SW1A"] * 3 + ["M1"] + [None] * 4
    assert records["postcode_sector"].tolist()[:4] == ["SW1A 1", "SW1A 1", "SW1A 1", "M1 1"]
    assert records["postcode_area"].tolist()[:4] == ["SW", "SW", "SW", "M"]


def test_non_uk_postcodes_agree_only_exactly() -> None:
    # Two French and two US codes that differ: under Splink's UK postcode levels they would
    # "agree" on an empty area; here they fall to the else level.
    people = [
        ("Anne", "Martin", "1980-01-01", "75008"),
        ("Anne", "Martin", "1980-01-01", "75008"),
        ("Paul", "Durand", "1970-05-05", "69001"),
        ("Paul", "Durand", "1970-05-05", "10001"),
    ] * 5
    frame = pd.DataFrame(people, columns=["f", "s", "d", "p"])
    frame.insert(0, "id", [str(n) for n in range(len(frame))])
    mapping = SourceMapping(
        "id", {"forename": "f", "surname": "s", "date_of_birth": "d", "postcode": "p"}, "%Y-%m-%d"
    )
    result = link_tables({"t": frame}, {"t": mapping}, load_linkage_settings())
    pairs = result.pairs
    differing = pairs[pairs["postcode_l"] != pairs["postcode_r"]]
    assert len(differing) and (differing["gamma_postcode"] == 0).all()


def test_dates_trimmed_and_unparsable_values_reported() -> None:
    tables, mappings = one_table(
        date_of_birth=[" 19151111", "19800101 ", "19901332", "19901332", "UNKNOWN", ""]
        + ["19700101"] * 6,
        date_format="%Y%m%d",
    )
    notes: list[str] = []
    records = standardise(tables, mappings, notes=notes)
    assert records["date_of_birth"].tolist()[:6] == [
        "1915-11-11",
        "1980-01-01",
        None,
        None,
        None,
        None,
    ]
    assert any("2 value(s)" in n and "'19901332' (2)" in n and "%Y%m%d" in n for n in notes), notes


def test_a_wrong_date_format_is_refused_naming_it() -> None:
    tables, mappings = one_table(
        date_of_birth=["19151111", "19800101", "19700101"], date_format="%d/%m/%Y"
    )
    with pytest.raises(LinkageError, match=r"%d/%m/%Y.*'19151111'.*%Y%m%d"):
        standardise(tables, mappings)
    tables, mappings = one_table(
        date_of_birth=["garbage", "more", "1970-01-01"], date_format="%Y-%m-%d"
    )
    with pytest.raises(LinkageError, match=r"2 of 3 .*%Y-%m-%d.*'garbage'"):
        standardise(tables, mappings)


@pytest.mark.parametrize(
    ("declared", "main", "other", "other_format"),
    [
        ("%Y%m%d", "19800102", "02/01/1980", "%d/%m/%Y"),
        ("%d/%m/%Y", "25/12/1980", "19801225", "%Y%m%d"),
    ],
)
def test_a_second_date_format_in_one_column_is_refused(declared, main, other, other_format) -> None:
    values = [main] * 8 + [other] * 2
    tables, mappings = one_table(date_of_birth=values, date_format=declared)
    with pytest.raises(LinkageError, match=rf"2 of 10.*{declared}.*{other_format}"):
        standardise(tables, mappings)


# ------------------------------------------------------------- on a simulated population
def degrade_pnc(
    tables: dict[str, pd.DataFrame], share: float, seed: int, values: list | None = None
) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    values = PLACEHOLDERS if values is None else values
    degraded = {}
    for source, frame in tables.items():
        frame = frame.copy()
        if "pnc_id" in frame.columns:
            hit = rng.random(len(frame)) < share
            frame["pnc_id"] = frame["pnc_id"].astype(object)
            frame.loc[hit, "pnc_id"] = rng.choice(np.array(values, dtype=object), hit.sum())
        degraded[source] = frame
    return degraded


@pytest.fixture(scope="module")
def simulated_small():
    from srs.pipeline.simulation import simulate

    simulation = simulate(400, 5)
    tables = simulation.extracts
    mappings = {s: mapping_from_dictionary(load_dictionary(s)) for s in tables}
    return simulation, tables, mappings


def common_name_population(
    persons: int, seed: int, placeholders: list[str]
) -> tuple[dict[str, pd.DataFrame], dict[str, SourceMapping], pd.DataFrame]:
    """Two files of one population with common names and missing dates and postcodes, so the
    police number carries much of the evidence; 10% of police numbers are a placeholder."""
    rng = np.random.default_rng(seed)
    forenames = [
        "JOHN",
        "DAVID",
        "MICHAEL",
        "PAUL",
        "MARK",
        "JAMES",
        "SARAH",
        "EMMA",
        "LISA",
        "CLAIRE",
        "ANNA",
        "PETER",
    ]
    surnames = [
        "SMITH",
        "JONES",
        "TAYLOR",
        "BROWN",
        "WILLIAMS",
        "WILSON",
        "JOHNSON",
        "DAVIES",
        "ROBINSON",
        "WRIGHT",
        "THOMPSON",
        "EVANS",
        "WALKER",
        "WHITE",
        "ROBERTS",
        "GREEN",
    ]
    letters = list("ABDEFGHJLNPQRSTUWXYZ")
    population = pd.DataFrame(
        {
            "person": range(persons),
            "f": rng.choice(forenames, persons),
            "s": rng.choice(surnames, persons),
            "d": (
                pd.Timestamp("1960-01-01")
                + pd.to_timedelta(rng.integers(0, 365 * 40, persons), "D")
            ).strftime("%Y-%m-%d"),
            "pc": [
                f"LS{rng.integers(1, 30)} {rng.integers(1, 9)}{''.join(rng.choice(letters, 2))}"
                for _ in range(persons)
            ],
            "pnc": [f"{rng.integers(1990, 2020)}/{n:07d}X" for n in range(persons)],
        }
    )
    tables = {}
    for name in ("a", "b"):
        table = population.sample(frac=0.8, random_state=int(rng.integers(1 << 30)))
        table = table.reset_index(drop=True).astype(object)
        for column, share in (("d", 0.2), ("pc", 0.3)):
            table.loc[rng.random(len(table)) < share, column] = None
        hit = rng.random(len(table)) < 0.10
        table.loc[hit, "pnc"] = rng.choice(np.array(placeholders, dtype=object), hit.sum())
        table["id"] = [f"{name}{n}" for n in range(len(table))]
        tables[name] = table
    roles = {"forename": "f", "surname": "s", "date_of_birth": "d", "postcode": "pc", "pnc": "pnc"}
    mapping = SourceMapping("id", roles, "%Y-%m-%d")
    truth = pd.concat(
        pd.DataFrame({"source": name, "record_id": t["id"], "person_id": t["person"]})
        for name, t in tables.items()
    )
    return tables, {"a": mapping, "b": mapping}, truth


@pytest.mark.parametrize(
    "placeholders", [["", " "], ["UNKNOWN"], [" ", "UNKNOWN", "N/A", "0"]], ids=str
)
def test_placeholder_pncs_do_not_merge_people(placeholders: list[str]) -> None:
    # Before placeholders were made missing: precision 0.955, 0.968 and 0.983 here.
    tables, mappings, truth = common_name_population(1000, 1, placeholders)
    result = link_tables(tables, mappings, load_linkage_settings())
    quality = evaluate(result.lookup, truth)
    assert quality.precision >= 0.99, quality
    assert quality.wrongly_merged_clusters == 0, quality


def test_placeholder_pncs_do_not_merge_simulated_people(simulated_small) -> None:
    simulation, tables, mappings = simulated_small
    degraded = degrade_pnc(tables, 0.10, seed=3)
    result = link_tables(degraded, mappings, load_linkage_settings())
    quality = evaluate(result.lookup, simulation.ground_truth)
    assert quality.precision >= 0.99, quality


def test_placeholder_pncs_make_no_pairs_in_their_block(simulated_small) -> None:
    _, tables, mappings = simulated_small
    clean = standardise(tables, mappings)
    degraded = standardise(degrade_pnc(tables, 0.10, seed=3), mappings)

    def pnc_block_pairs(records: pd.DataFrame) -> int:
        sizes = records["pnc"].dropna().value_counts()
        return int((sizes * (sizes - 1) // 2).sum())

    assert pnc_block_pairs(degraded) <= pnc_block_pairs(clean)


def test_all_pncs_blank_still_links_on_other_fields(simulated_small) -> None:
    simulation, tables, mappings = simulated_small
    blank = degrade_pnc(tables, 1.0, seed=4, values=[None])
    result = link_tables(blank, mappings, load_linkage_settings())
    quality = evaluate(result.lookup, simulation.ground_truth)
    assert quality.precision >= 0.99 and quality.f1 >= 0.9, quality
    assert any("pnc" in note for note in result.notes), result.notes


def test_all_pncs_placeholders_still_link_on_other_fields(simulated_small) -> None:
    simulation, tables, mappings = simulated_small
    result = link_tables(degrade_pnc(tables, 1.0, seed=5), mappings, load_linkage_settings())
    assert evaluate(result.lookup, simulation.ground_truth).precision >= 0.99
    assert result.records["pnc"].isna().all()


def test_no_records_at_all_is_refused() -> None:
    tables, mappings = one_table(forename=[], surname=[])
    with pytest.raises(LinkageError, match="no records"):
        standardise({**tables, "u": tables["t"]}, {**mappings, "u": mappings["t"]})


def test_a_default_identifier_outside_the_policy_is_taken_as_a_placeholder() -> None:
    # Every record carries one made-up police number the policy does not list. Once Splink
    # refused it with a ValueError; now the records' disagreeing names and dates show it is no
    # one's number: it is made missing, with a note, and the people link on the other fields.
    rows = [
        ("William", "Turner", "1980-02-11"),
        ("Sarah", "Okafor", "1975-09-30"),
        ("James", "Li", "1992-12-01"),
        ("Aisha", "Begum", "1988-07-19"),
        ("Robert", "Nowak", "1969-03-05"),
    ]
    frame = pd.DataFrame(rows, columns=["f", "s", "d"]).assign(p="1999/9999999Z")
    mapping = SourceMapping(
        "id", {"forename": "f", "surname": "s", "date_of_birth": "d", "pnc": "p"}, "%Y-%m-%d"
    )
    tables = {"a": frame.assign(id=list("12345")), "b": frame.assign(id=list("67890"))}
    result = link_tables(tables, {"a": mapping, "b": mapping}, load_linkage_settings())
    assert result.records["pnc"].isna().all()
    assert any("pnc: 1 value(s) held by 10 records" in note for note in result.notes)
    persons = result.lookup.groupby("cluster_id")["record_id"].apply(frozenset)
    assert set(persons) == {frozenset(pair) for pair in ("16", "27", "38", "49", "50")}


def test_a_default_date_is_missing_whether_text_or_typed() -> None:
    typed = pd.to_datetime(pd.Series(["1900-01-01", "1980-01-02"]))
    tables, mappings = one_table(date_of_birth=typed.tolist())
    tables["t"]["date_of_birth"] = typed
    assert standardise(tables, mappings)["date_of_birth"].tolist() == [None, "1980-01-02"]
    tables, mappings = one_table(
        date_of_birth=["01/01/1900", "02/01/1980", "00/00/0000"], date_format="%d/%m/%Y"
    )
    assert standardise(tables, mappings)["date_of_birth"].tolist() == [None, "1980-01-02", None]


def test_an_identifier_shared_by_many_different_people_becomes_missing_with_a_note() -> None:
    # 30 strangers typed in with the same made-up police number (no policy list names it),
    # and one prolific offender whose own number is on 40 of their records.
    strangers = 30
    tables, mappings = one_table(
        pnc=["0000/0000000A"] * strangers + ["99/123456X"] * 40 + ["01/1A", "02/2B"],
        surname=[f"STRANGER{chr(65 + n % 26)}{chr(65 + n // 26)}" for n in range(strangers)]
        + ["PROLIFIC"] * 40
        + ["A", "B"],
        date_of_birth=[f"19{50 + n}-01-0{1 + n % 9}" for n in range(strangers)]
        + ["1980-05-05"] * 38
        + ["1980-05-06", "1908-05-05"]  # the offender's own records carry two typos
        + ["1970-01-01", "1971-01-01"],
    )
    notes: list[str] = []
    records = standardise(tables, mappings, notes=notes)
    assert records["pnc"].iloc[:strangers].isna().all()
    assert (records["pnc"].iloc[strangers : strangers + 40] == "99/123456X").all()
    assert list(records["pnc"].iloc[-2:]) == ["01/1A", "02/2B"]
    assert any("pnc: 1 value(s) held by 30 records" in note for note in notes), notes

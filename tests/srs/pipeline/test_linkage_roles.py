"""Linkage roles of real extracts: address lines, street number, locality, region, identifiers a
mapping adds (exact, fuzzy or any method), forename/surname swaps, link types, and the
`srs link files` options --threshold, --link-type and --settings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from srs.cli import app
from srs.pipeline.linkage import (
    LinkageError,
    MappedIdentifier,
    link_tables,
    load_linkage_settings,
    mapping_from_dictionary,
    override_settings,
    read_mapping_file,
    standardise,
)

# Records of FEBRL 4, the public benchmark (`make linkage-benchmark-data`), under other column
# names: each person as file 4a records them and as 4b does, with FEBRL's own typing errors,
# blanks and swaps. Tests change some of them further.
FEBRL = Path(__file__).resolve().parents[3] / ".cache" / "febrl"
FIELDS = {
    "given_name": "given",
    "surname": "family",
    "date_of_birth": "born",
    "street_number": "house",
    "address_1": "line1",
    "address_2": "line2",
    "suburb": "town",
    "state": "county",
    "postcode": "pc",
    "soc_sec_id": "ssn",
}
HEADER = ["ref", *FIELDS.values()]


def febrl_people(size: int = 600) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The first ``size`` persons of FEBRL 4, as file 4a records them and as 4b does."""

    def read(name: str) -> pd.DataFrame:
        frame = pd.read_csv(FEBRL / name, dtype=str, keep_default_na=False, skipinitialspace=True)
        frame.index = frame["rec_id"].str.extract(r"rec-(\d+)-", expand=False).astype(int)
        return frame.rename(columns=FIELDS)[list(FIELDS.values())]

    a, b = read("dataset4a.csv"), read("dataset4b.csv")
    persons = sorted(a.index)[:size]
    return a.loc[persons].to_dict("records"), b.loc[persons].to_dict("records")


def typo(text: str) -> str:
    """One digit changed."""
    return text[:3] + str((int(text[3]) + 1) % 10) + text[4:]


def write(path: Path, prefix: str, people: list[dict[str, str]]) -> Path:
    frame = pd.DataFrame(people)[HEADER[1:]]
    frame.insert(0, "ref", [f"{prefix}{n}" for n in range(len(frame))])
    # The way FEBRL and many exports write CSV: a space after each comma, headers included.
    lines = [", ".join(frame.columns)] + [", ".join(row) for row in frame.to_numpy()]
    path.write_text("\n".join(lines) + "\n")
    return path


ROLES = (
    "record_id: ref, forename: given, surname: family, date_of_birth: born, "
    "date_format: '%Y%m%d', street_number: house, address: [line1, line2], locality: town, "
    "region: county, postcode: pc"
)


def write_mapping(tmp_path: Path, identifiers: str = "", tables=("a", "b")) -> Path:
    extra = f", identifiers: {identifiers}" if identifiers else ""
    path = tmp_path / "mapping.yaml"
    path.write_text("tables:\n" + "".join(f"  {t}: {{{ROLES}{extra}}}\n" for t in tables))
    return path


def link(tmp_path: Path, a: Path, b: Path, mapping: Path, *options: str):
    out = tmp_path / "lookup.csv"
    result = CliRunner().invoke(
        app,
        [
            "link",
            "files",
            f"a={a}",
            f"b={b}",
            "--mapping",
            str(mapping),
            "--out",
            str(out),
            *options,
        ],
    )
    assert result.exit_code == 0, result.output
    return pd.read_csv(out, dtype=str).set_index(["source", "record_id"])["cluster_id"]


def linked(lookup: pd.Series, n: int) -> bool:
    return lookup[("a", f"A{n}")] == lookup[("b", f"B{n}")]


def assert_refused(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in text, result.output


# ------------------------------------------------------------------ mapping the new roles
def test_a_mapping_reads_the_new_roles_and_standardise_cleans_them(tmp_path: Path) -> None:
    mapping = read_mapping_file(
        write_mapping(
            tmp_path,
            "{ssn: ssn, nhs: {column: nhs_no, method: fuzzy}, "
            "born_in: {column: birthplace, method: text}}",
            tables=("a",),
        )
    )["a"]
    assert mapping.address_lines() == ("line1", "line2")
    assert mapping.columns["locality"] == "town" and mapping.columns["region"] == "county"
    assert mapping.identifiers == {
        "ssn": MappedIdentifier("ssn", "exact"),
        "nhs": MappedIdentifier("nhs_no", "fuzzy"),
        "born_in": MappedIdentifier("birthplace", "text"),
    }
    frame = pd.DataFrame(
        {
            # padded headers, as a "a, b, c" CSV gives them
            " ref": ["1", "2"],
            " given": [" ann", "bob"],
            " family": ["lee", "ray"],
            " born": ["19800101", "19900202"],
            " house": [" 12a", "0"],
            " line1": [" flat 2,", "n/a"],
            " line2": ["high st.", "Mill Road"],
            " town": ["St. Ives ", " "],
            " county": ["cornwall", "UNKNOWN"],
            " pc": ["tr26 1aa", ""],
            " ssn": ["123 456", "000"],
            " nhs_no": ["9434765919", None],
            " birthplace": ["Truro", "n/k"],
        }
    )
    records = standardise({"a": frame}, {"a": mapping})
    first, second = records.iloc[0], records.iloc[1]
    assert (first["street_number"], first["address"], first["address_sorted"]) == (
        "12A",
        "FLAT 2 HIGH ST",
        "FLAT 2 HIGH ST",
    )
    assert (first["locality"], first["region"], first["ssn"], first["born_in"]) == (
        "ST IVES",
        "CORNWALL",
        "123456",
        "TRURO",
    )
    # Blanks, zeros and the policy's placeholders never agree: they are missing.
    assert second["street_number"] is None and second["locality"] is None
    assert second["region"] is None and second["ssn"] is None and second["born_in"] is None
    assert second["address"] == "MILL ROAD"  # a placeholder line is dropped, not the address


def test_address_lines_in_another_order_share_their_sorted_form(tmp_path: Path) -> None:
    mapping = read_mapping_file(write_mapping(tmp_path, tables=("a",)))
    frame = pd.DataFrame(
        {c: ["x", "y"] for c in HEADER} | {"ref": ["1", "2"], "born": ["19800101"] * 2}
    )
    frame["line1"], frame["line2"] = ["Rose Cottage", "Mill Lane"], ["Mill Lane", "Rose Cottage"]
    records = standardise({"a": frame}, mapping)
    assert records["address"].tolist() == ["ROSE COTTAGE MILL LANE", "MILL LANE ROSE COTTAGE"]
    assert records["address_sorted"].nunique() == 1


def test_a_data_dictionary_maps_the_new_roles() -> None:
    from srs.pipeline.ingest import DataDictionary

    def dictionary(roles: dict[str, str]) -> DataDictionary:
        columns = [
            {
                "name": name,
                "description": name,
                "type": "string",
                "required": False,
                "classification": "direct_identifier",
                "linkage_role": role,
            }
            for name, role in roles.items()
        ]
        return DataDictionary(source="crm", description="d", record_id="id", columns=columns)

    mapping = mapping_from_dictionary(
        dictionary(
            {
                "id": "record_id",
                "house_no": "street_number",
                "addr_1": "address",
                "addr_2": "address",
                "town": "locality",
                "county": "region",
            }
        )
    )
    assert mapping.record_id == "id"
    assert mapping.address_lines() == ("addr_1", "addr_2")
    assert mapping.columns["street_number"] == "house_no"
    assert (mapping.columns["locality"], mapping.columns["region"]) == ("town", "county")
    with pytest.raises(LinkageError, match="data dictionary crm: linkage_role locality is on"):
        mapping_from_dictionary(
            dictionary({"id": "record_id", "town": "locality", "city": "locality"})
        )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("{record_id: ref, forename: given, shoe_size: s}", "unknown role(s) shoe_size"),
        ("{record_id: ref, forename: given, surname: given}", "column 'given' is given to both"),
        (
            "{record_id: ref, forename: given, address: [line1, given]}",
            "column 'given' is given to both forename and address",
        ),
        ("{record_id: ref, forename: given, locality: }", "locality has no column"),
        ("{record_id: ref, forename: given, address: []}", "address has no column"),
        (
            "{record_id: ref, identifiers: {ssn: {column: ssn, method: phonetic}}}",
            "method 'phonetic'; use one of exact, fuzzy, name, text, date",
        ),
        ("{record_id: ref, identifiers: {ssn: {method: fuzzy}}}", "identifier 'ssn' has no column"),
        ("{record_id: ref, identifiers: {postcode: pc}}", "takes the name of a standard column"),
        ("{record_id: ref, identifiers: {Ssn: ssn}}", "lower-case letters"),
        ("{record_id: ref, identifiers: [ssn]}", "identifiers must map names to columns"),
        (
            "{record_id: ref, identifiers: {ssn: {column: ssn, format: x}}}",
            "unknown key(s) format",
        ),
    ],
)
def test_a_bad_mapping_is_refused_naming_the_table_and_the_fix(
    tmp_path: Path, table: str, message: str
) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(f"tables:\n  crm: {table}\n")
    with pytest.raises(LinkageError) as error:
        read_mapping_file(path)
    assert message in str(error.value) and "table 'crm'" in str(error.value)


def test_an_identifier_compared_two_ways_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(
        "tables:\n"
        "  a: {record_id: ref, identifiers: {ssn: {column: ssn, method: exact}}}\n"
        "  b: {record_id: ref, identifiers: {ssn: {column: ssn, method: fuzzy}}}\n"
    )
    frame = pd.DataFrame({"ref": ["1"], "ssn": ["1"]})
    with pytest.raises(LinkageError, match="'ssn' is compared by method exact in table 'a'"):
        standardise({"a": frame, "b": frame}, read_mapping_file(path))


# ------------------------------------------------------------------ linking with the new roles
def test_swapped_forename_and_surname_link(tmp_path: Path) -> None:
    people, other = febrl_people()
    swapped = list(range(0, len(people), 8))  # one in eight
    for n in swapped:
        other[n]["given"], other[n]["family"] = people[n]["family"], people[n]["given"]
        # agreeing on date of birth and postcode, the rest of the address not recorded
        other[n] |= {"born": people[n]["born"], "pc": people[n]["pc"]}
        other[n] |= {"house": "", "line1": "", "line2": "", "town": "", "county": ""}
    a = write(tmp_path / "a.csv", "A", people)
    b = write(tmp_path / "b.csv", "B", other)
    lookup = link(tmp_path, a, b, write_mapping(tmp_path))
    assert all(linked(lookup, n) for n in swapped), [n for n in swapped if not linked(lookup, n)]


def mistyped_people() -> tuple[list[dict[str, str]], list[dict[str, str]], list[int]]:
    """People who married and moved within their town by the second table, and whose
    identifier was mistyped there (one digit)."""
    people, other = febrl_people()
    changed = list(range(1, len(people), 20))
    for n in changed:
        elsewhere = people[(n + 300) % len(people)]  # another person's surname and address
        other[n] = dict(people[n], ssn=typo(people[n]["ssn"]))
        other[n] |= {key: elsewhere[key] for key in ("family", "house", "line1", "pc")}
    return people, other, changed


def share_linked(lookup: pd.Series, persons: list[int]) -> float:
    return sum(linked(lookup, n) for n in persons) / len(persons)


def test_an_exact_identifier_keeps_apart_what_a_fuzzy_one_forgives(tmp_path: Path) -> None:
    people, other, changed = mistyped_people()
    a = write(tmp_path / "a.csv", "A", people)
    b = write(tmp_path / "b.csv", "B", other)
    # Disagreeing on an exact identifier is strong evidence of two persons ...
    exact = link(tmp_path, a, b, write_mapping(tmp_path, "{ssn: ssn}"))
    assert share_linked(exact, changed) <= 0.5
    # ... but one digit apart is a typing error when the identifier is fuzzy.
    fuzzy = link(tmp_path, a, b, write_mapping(tmp_path, "{ssn: {column: ssn, method: fuzzy}}"))
    assert share_linked(fuzzy, changed) >= 0.9
    others = [n for n in range(len(people)) if n not in changed]
    assert share_linked(exact, others) >= 0.99 and share_linked(fuzzy, others) >= 0.99


def test_a_column_the_mapping_adds_is_compared_by_its_method(tmp_path: Path) -> None:
    people, other = febrl_people()
    for person in people + other:
        person["ssn"] = f"born in {person['town']}"  # the column holds a place of birth
    a = write(tmp_path / "a.csv", "A", people)
    b = write(tmp_path / "b.csv", "B", other)
    mapping = read_mapping_file(
        write_mapping(tmp_path, "{birthplace: {column: ssn, method: text}}")
    )
    result = link_tables({"a": _read(a), "b": _read(b)}, mapping, load_linkage_settings())
    assert {"birthplace_l", "birthplace_r"} <= set(result.pairs.columns)
    assert result.records["birthplace"].str.startswith("BORN IN").all()
    lookup = result.lookup.set_index(["source", "record_id"])["cluster_id"]
    assert sum(linked(lookup, n) for n in range(len(people))) >= 0.95 * len(people)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


# ------------------------------------------------------------------ link types and options
def with_duplicates(tmp_path: Path) -> tuple[Path, Path]:
    people, other = febrl_people()
    a_people = people + [dict(people[0]), dict(people[1])]  # two duplicates within table a
    return write(tmp_path / "a.csv", "A", a_people), write(tmp_path / "b.csv", "B", other)


def test_link_only_compares_no_pairs_within_one_table(tmp_path: Path) -> None:
    a, b = with_duplicates(tmp_path)
    mapping = read_mapping_file(write_mapping(tmp_path))
    tables = {"a": _read(a), "b": _read(b)}
    settings = load_linkage_settings()
    both = link_tables(tables, mapping, settings)
    within = both.pairs[both.pairs["unique_id_l"].str[0] == both.pairs["unique_id_r"].str[0]]
    assert len(within) >= 2  # the duplicates within table a, found when every pair is compared

    link_only = override_settings(settings, {"link_type": "link_only"}, "test")
    across = link_tables(tables, mapping, link_only)
    pairs = across.pairs
    assert len(pairs) >= 500
    assert (pairs["unique_id_l"].str[0] != pairs["unique_id_r"].str[0]).all()

    lookup = link(tmp_path, a, b, write_mapping(tmp_path), "--link-type", "link_only")
    assert linked(lookup, 5)


def test_the_threshold_option_decides_what_links(tmp_path: Path) -> None:
    people, other = febrl_people()
    for n in range(0, len(people), 4):  # weak evidence: only names and date of birth agree
        other[n] |= {"house": "", "line1": "", "line2": "", "town": "", "county": "", "pc": ""}
    a = write(tmp_path / "a.csv", "A", people)
    b = write(tmp_path / "b.csv", "B", other)
    loose = link(tmp_path, a, b, write_mapping(tmp_path), "--threshold", "0.5")
    strict = link(tmp_path, a, b, write_mapping(tmp_path), "--threshold", "0.999999999")
    assert loose.nunique() < strict.nunique()


def test_a_settings_file_overrides_the_policy(tmp_path: Path) -> None:
    people, other = febrl_people()
    a = write(tmp_path / "a.csv", "A", people)
    b = write(tmp_path / "b.csv", "B", other)
    linked_by_policy = link(tmp_path, a, b, write_mapping(tmp_path))
    settings = tmp_path / "settings.yaml"
    # Sections merge key by key: the seed changes, the other training keys stay.
    settings.write_text("match_threshold: 0.999999999\ntraining: {seed: 7}\n")
    lookup = link(tmp_path, a, b, write_mapping(tmp_path), "--settings", str(settings))
    assert lookup.nunique() > linked_by_policy.nunique()


@pytest.mark.parametrize(
    ("options", "settings_text", "message"),
    [
        (["--threshold", "1.5"], None, "--threshold 1.5 is not a probability"),
        (["--threshold", "0"], None, "--threshold 0.0 is not a probability"),
        (["--link-type", "link_all"], None, "--link-type: link_type"),
        ([], "match_treshold: 0.95\n", "'match_treshold' is not a linkage setting"),
        ([], "training: {sede: 7}\n", "'training.sede' is not a linkage setting"),
        ([], "- 0.95\n", "expected keys of linkage.yaml"),
        ([], "match_threshold: 2\n", "match_threshold: Input should be less than 1"),
    ],
)
def test_bad_options_are_refused(
    tmp_path: Path, options: list[str], settings_text: str | None, message: str
) -> None:
    people, other = febrl_people(size=20)
    a = write(tmp_path / "a.csv", "A", people)
    b = write(tmp_path / "b.csv", "B", other)
    if settings_text is not None:
        (tmp_path / "settings.yaml").write_text(settings_text)
        options = [*options, "--settings", str(tmp_path / "settings.yaml")]
    result = CliRunner().invoke(
        app,
        [
            "link",
            "files",
            f"a={a}",
            f"b={b}",
            "--mapping",
            str(write_mapping(tmp_path)),
            "--out",
            str(tmp_path / "lookup.csv"),
            *options,
        ],
    )
    assert_refused(result, message)
    assert not (tmp_path / "lookup.csv").exists()


def test_link_only_with_one_table_is_refused(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "A", febrl_people(size=20)[0])
    result = CliRunner().invoke(
        app,
        [
            "link",
            "files",
            f"a={a}",
            "--mapping",
            str(write_mapping(tmp_path, tables=("a",))),
            "--out",
            str(tmp_path / "lookup.csv"),
            "--link-type",
            "link_only",
        ],
    )
    assert_refused(result, "link_only compares records of different tables only")


def test_a_bad_mapping_is_refused_through_the_cli(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "A", febrl_people(size=20)[0])
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("tables:\n  a: {record_id: ref, forename: given, surname: given}\n")
    result = CliRunner().invoke(
        app,
        ["link", "files", f"a={a}", "--mapping", str(mapping), "--out", str(tmp_path / "o.csv")],
    )
    assert_refused(result, "table 'a'", "column 'given' is given to both forename and surname")


def test_link_only_with_a_header_only_table_names_the_empty_table(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "A", febrl_people(size=20)[0])
    b = tmp_path / "b.csv"
    b.write_text(a.read_text().splitlines()[0] + "\n")
    result = CliRunner().invoke(
        app,
        [
            "link",
            "files",
            f"a={a}",
            f"b={b}",
            "--mapping",
            str(write_mapping(tmp_path, tables=("a", "b"))),
            "--out",
            str(tmp_path / "lookup.csv"),
            "--link-type",
            "link_only",
        ],
    )
    assert_refused(result, "table(s) 'b' hold no records")

"""Review of issue 15: attacks on DP-on-held-data (reproductions, not fixes)."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pytest

from disclosure import dp
from test_dp_release import (  # noqa: F401  (fixtures)
    DATASET,
    DICTIONARY,
    PROJECT,
    hold,
    journeys,
    people,
    preview,
    release,
    set_budget,
    vault,
)


def test_researcher_can_change_the_privacy_unit_and_filter_on_person_key(
    registry, vault, policies, people
) -> None:
    # identifier= is a researcher option (dp.count(identifier=...), also through the hub as a
    # plain keyword): with a row-unique column as the "unit", person_key is no longer the unit,
    # so (1) it can be filtered on and (2) the per-person cap (max_rows_per_person = 5) is gone:
    # one person's 200 cases are released as ~200 +/- noise calibrated for 5 rows.
    heavy = journeys()
    extra = heavy.iloc[[0] * 200].copy()
    extra["person_key"] = "target"
    extra["sentence_months"] = [float(i) + 0.5 for i in range(200)]  # row-unique "unit"
    with registry.sessions() as s:
        vault.store(
            s, DATASET, pd.concat([heavy, extra], ignore_index=True),
            actor=people.steward, data_dictionary=DICTIONARY,
        )
    out = release(
        registry, vault, policies, dp.count(identifier="sentence_months"), rho=0.05,
        where=[("person_key", "==", "target")],
    )
    row = out.result.table.iloc[0]
    print(out.result.table)
    # person-level DP would cap this person at 5 rows; here ~200 is released
    assert row["lower"] > 100
    honest = release(registry, vault, policies, dp.count(), rho=0.05,
                     where=[("sex", "==", heavy.loc[0, "sex"])])
    assert honest is not None


def test_preview_is_the_same_for_an_empty_and_a_full_selection(registry, vault, policies) -> None:
    a = preview(registry, vault, policies, dp.count(), rho=0.01, where=[("sex", "==", "Z")])
    b = preview(registry, vault, policies, dp.count(), rho=0.01)
    assert str(a) == str(b)


@pytest.mark.parametrize(
    ("where", "derive"),
    [
        ([("age_at_offence", "==", 2**70)], None),
        ([("age_at_offence", "in", [1, 2**70])], None),
        (None, {"b": ("band", "age_at_offence", [1234567, 1234568, 1234569])}),
        (None, {"b": ("band", "age_at_offence", [1e-300, 2e-300])}),
        ([("sex", "in", ["F", 1])], None),
        ([("age_at_offence", "in", [1, 2.5])], None),
    ],
)
def test_odd_literals_give_a_selection_error_not_a_library_exception(
    registry, vault, policies, where, derive
) -> None:
    try:
        release(registry, vault, policies, dp.count(by=["b"] if derive else []), where=where, derive=derive)
    except dp.DPQueryError as exc:
        print("clean:", type(exc).__name__, exc)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"library exception {type(exc).__module__}.{type(exc).__name__}: {exc}")


def test_band_edges_that_print_alike_give_duplicate_public_keys(registry, vault, policies) -> None:
    derive = {"b": ("band", "age_at_offence", [20.00001, 20.00002, 20.00003, 50])}
    out = release(registry, vault, policies, dp.count(by=["b"]), derive=derive)
    print(out.result.table)
    labels = list(out.result.table["b"])
    assert len(labels) == len(set(labels)), labels


def test_an_older_version_above_the_projects_classification_is_read_for_dp(
    registry, deployment, policies, people
) -> None:
    # The access check judges the NEWEST version's classification; version= then reads an
    # older one. v1 stored highly_confidential (e.g. before identifiers were removed), v2
    # confidential; the project (approved: confidential) is granted the name and reads v1.
    from srs.vault import Vault
    from srs.vault_crypto import generate_master_key, write_key_file
    from srs.registry import projects

    write_key_file(deployment.key_file, generate_master_key())
    v = Vault(deployment, policies)
    with registry.sessions() as s:
        v.store(s, "linked/extra", journeys(), actor=people.steward,
                classification="highly_confidential", data_dictionary=DICTIONARY)
        v.store(s, "linked/extra", journeys(seed=5), actor=people.steward,
                classification="confidential", data_dictionary=DICTIONARY)
        projects.grant_dataset(s, actor=people.steward, policies=policies, code=PROJECT,
                               dataset_name="linked/extra")
    with pytest.raises(Exception):
        release(registry, v, policies, dp.count(), dataset="linked/extra", version=1)

"""The vault's cryptography: round trips, tamper and truncation detection, key files and wrapping."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srs.vault.crypto import (
    FILE_MAGIC,
    MASTER_KEY_ENV,
    VaultIntegrityError,
    VaultKeyError,
    decode_master_key,
    decrypt_dataset_bytes,
    encode_master_key,
    encrypt_dataset_bytes,
    frame_to_parquet_bytes,
    generate_data_key,
    generate_master_key,
    load_master_key,
    parquet_bytes_to_frame,
    read_key_file,
    rewrap_data_key,
    unwrap_data_key,
    wrap_data_key,
    write_encrypted_file,
    write_key_file,
)

DATA_KEY = generate_data_key()
IDENTITY = {"dataset": "linked/journeys", "version": 3}


def sample_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n": [1, 2, 3],
            "x": [0.5, float("nan"), -2.0],
            "s": ["alpha", "VERY-SECRET-VALUE", None],
            "d": pd.to_datetime(["2020-01-01", "2021-02-03", "2022-03-04"]),
            "c": pd.Categorical(["a", "b", "a"]),
        }
    )


def test_frame_round_trip_through_an_encrypted_file(tmp_path: Path) -> None:
    frame = sample_frame()
    path = tmp_path / "vault" / "linked" / "v3.parquet.enc"
    write_encrypted_file(
        path, encrypt_dataset_bytes(DATA_KEY, frame_to_parquet_bytes(frame), **IDENTITY)
    )
    assert b"VERY-SECRET-VALUE" not in path.read_bytes()
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    back = parquet_bytes_to_frame(decrypt_dataset_bytes(DATA_KEY, path.read_bytes(), **IDENTITY))
    pd.testing.assert_frame_equal(back, frame)


BLOB = encrypt_dataset_bytes(DATA_KEY, b"x" * 1000, **IDENTITY)


@pytest.mark.parametrize(
    "offset", [0, 5, len(FILE_MAGIC), len(FILE_MAGIC) + 11, 500, len(BLOB) - 1]
)
def test_any_flipped_byte_is_refused(offset: int) -> None:
    tampered = bytearray(BLOB)
    tampered[offset] ^= 0x80
    with pytest.raises(VaultIntegrityError, match="linked/journeys@3"):
        decrypt_dataset_bytes(DATA_KEY, bytes(tampered), **IDENTITY)


@pytest.mark.parametrize("length", [0, 1, len(FILE_MAGIC) + 12, 100, len(BLOB) - 1])
def test_truncation_is_refused(length: int) -> None:
    with pytest.raises(VaultIntegrityError):
        decrypt_dataset_bytes(DATA_KEY, BLOB[:length], **IDENTITY)


@pytest.mark.parametrize(
    "identity",
    [{"dataset": "linked/persons", "version": 3}, {"dataset": "linked/journeys", "version": 4}],
)
def test_a_file_moved_to_another_dataset_is_refused(identity) -> None:
    with pytest.raises(VaultIntegrityError, match="belongs to another dataset"):
        decrypt_dataset_bytes(DATA_KEY, BLOB, **identity)


def test_wrong_data_key_is_refused() -> None:
    with pytest.raises(VaultIntegrityError):
        decrypt_dataset_bytes(generate_data_key(), BLOB, **IDENTITY)


def test_wrapping_binds_key_and_identity() -> None:
    master, other = generate_master_key(), generate_master_key()
    wrapped = wrap_data_key(master, DATA_KEY, **IDENTITY)
    assert unwrap_data_key(master, wrapped, **IDENTITY) == DATA_KEY
    with pytest.raises(VaultIntegrityError, match="master key is wrong"):
        unwrap_data_key(other, wrapped, **IDENTITY)
    with pytest.raises(VaultIntegrityError):
        unwrap_data_key(master, wrapped, dataset="linked/persons", version=3)


def test_rewrap_moves_the_key_to_the_new_master() -> None:
    old, new = generate_master_key(), generate_master_key()
    rewrapped = rewrap_data_key(old, new, wrap_data_key(old, DATA_KEY, **IDENTITY), **IDENTITY)
    assert unwrap_data_key(new, rewrapped, **IDENTITY) == DATA_KEY
    with pytest.raises(VaultIntegrityError):
        unwrap_data_key(old, rewrapped, **IDENTITY)


def test_key_file_is_private_and_not_overwritten(tmp_path: Path) -> None:
    key = generate_master_key()
    path = tmp_path / "master.key"
    write_key_file(path, key)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_key_file(path) == key
    with pytest.raises(VaultKeyError, match="refusing to overwrite"):
        write_key_file(path, generate_master_key())
    write_key_file(path, generate_master_key(), overwrite=True)
    assert read_key_file(path) != key


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    write_key_file(path, generate_master_key())
    os.chmod(path, 0o644)
    with pytest.raises(VaultKeyError, match="chmod 600"):
        read_key_file(path)


def test_missing_key_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(VaultKeyError, match="srs init"):
        read_key_file(tmp_path / "absent.key")


@pytest.mark.parametrize("text", ["", "not base64 at all!!", "c2hvcnQ=", "A" * 60])
def test_malformed_keys_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(VaultKeyError, match="URL-safe base64") as caught:
        decode_master_key(text, "SRS_MASTER_KEY")
    if text:
        assert text not in str(caught.value)


def test_environment_key_wins_over_the_file(tmp_path: Path, monkeypatch) -> None:
    from_file, from_env = generate_master_key(), generate_master_key()
    path = tmp_path / "master.key"
    write_key_file(path, from_file)
    monkeypatch.setenv(MASTER_KEY_ENV, encode_master_key(from_env))
    assert load_master_key(path) == from_env
    monkeypatch.delenv(MASTER_KEY_ENV)
    assert load_master_key(path) == from_file
    with pytest.raises(VaultKeyError, match=MASTER_KEY_ENV):
        load_master_key(None)


def test_repr_hides_the_key_material() -> None:
    key = generate_master_key()
    assert encode_master_key(key) not in repr(key)
    assert key.material.hex() not in repr(key)
    assert key.key_id in repr(key)


@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=2048), data=st.data())
def test_round_trip_and_single_flip_detection(plaintext: bytes, data) -> None:
    blob = encrypt_dataset_bytes(DATA_KEY, plaintext, **IDENTITY)
    assert decrypt_dataset_bytes(DATA_KEY, blob, **IDENTITY) == plaintext
    offset = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = bytearray(blob)
    tampered[offset] ^= 1 << bit
    with pytest.raises(VaultIntegrityError):
        decrypt_dataset_bytes(DATA_KEY, bytes(tampered), **IDENTITY)

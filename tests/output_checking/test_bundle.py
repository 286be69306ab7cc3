"""Bundle files and signing keys: paths stay inside the bundle, keys are private and repairable."""

from __future__ import annotations

import stat

import pytest

from output_checking.bundle import (
    PUBLIC_KEY_FILE,
    SIGNING_KEY_FILE,
    BundleError,
    key_fingerprint,
    load_public_key,
    signing_key,
    verify_bundle,
    write_bundle,
)


def test_signing_key_is_private_stable_and_its_public_key_is_repaired(tmp_path):
    key = signing_key(tmp_path)
    assert stat.S_IMODE((tmp_path / SIGNING_KEY_FILE).stat().st_mode) == 0o600
    assert key_fingerprint(signing_key(tmp_path).public_key()) == key_fingerprint(key.public_key())
    (tmp_path / PUBLIC_KEY_FILE).unlink()  # as if a crash came between the two files
    signing_key(tmp_path)
    public = load_public_key(tmp_path / PUBLIC_KEY_FILE)
    assert key_fingerprint(public) == key_fingerprint(key.public_key())
    with pytest.raises(BundleError, match="no release-signing key"):
        signing_key(tmp_path / "elsewhere", create=False)


def test_a_garbled_key_file_is_explained(tmp_path):
    (tmp_path / SIGNING_KEY_FILE).write_text("not a key")
    with pytest.raises(BundleError, match="not a PEM Ed25519 private key"):
        signing_key(tmp_path)


@pytest.mark.parametrize(
    "path", ["../escape.csv", "/etc/passwd", "outputs/../../x.csv", "manifest.json"]
)
def test_paths_outside_the_bundle_are_refused(tmp_path, path):
    with pytest.raises(BundleError, match="not a plain relative file path"):
        write_bundle(tmp_path / "b", {path: b"x"}, {}, signing_key(tmp_path))


def test_a_bundle_is_written_into_a_new_folder_only(tmp_path):
    key = signing_key(tmp_path)
    write_bundle(tmp_path / "b", {"outputs/t.csv": b"a,b\n1,2\n"}, {"release": "x"}, key)
    with pytest.raises(BundleError, match="already exists"):
        write_bundle(tmp_path / "b", {"outputs/t.csv": b"a"}, {}, key)
    report = verify_bundle(tmp_path / "b", key.public_key())
    assert report.valid and report.manifest["release"] == "x"
    assert "valid: signature checks out and all 1 file(s)" in report.summary()


def test_a_symlinked_file_and_a_non_bundle_are_reported(tmp_path):
    key = signing_key(tmp_path)
    write_bundle(tmp_path / "b", {"outputs/t.csv": b"a,b\n1,2\n"}, {}, key)
    target = tmp_path / "b" / "outputs" / "t.csv"
    (tmp_path / "other.csv").write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(tmp_path / "other.csv")
    assert verify_bundle(tmp_path / "b", key.public_key()).tampered == [
        "outputs/t.csv (a symbolic link, not a file)"
    ]
    assert verify_bundle(tmp_path / "nothing", key.public_key()).problems
    (tmp_path / "empty").mkdir()
    assert verify_bundle(tmp_path / "empty", key.public_key()).missing == ["manifest.json"]

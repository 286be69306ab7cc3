"""`srs release verify --audit`: a bundle re-signed with the deployment's own key still verifies,
but not against the audit log, which names the output whose files were swapped."""

from __future__ import annotations

import base64
import hashlib
import json

from test_cli_outputs import deployment, srs  # noqa: F401 (deployment is a fixture)
from workflow_fixtures import submitted_request

from output_checking.bundle import MANIFEST, SIGNATURE, manifest_bytes, signing_key


def test_verify_with_the_audit_log_catches_a_bundle_re_signed_with_other_content(deployment):  # noqa: F811
    home, registry, policies = deployment
    sub = submitted_request(registry, policies)
    for checker in ("cho", "chen"):
        for output_id in sub.outputs:
            assert srs(home, "outputs", "approve", str(output_id), actor=checker).exit_code == 0
    assert srs(home, "release", "create", str(sub.request_id), actor="cho").exit_code == 0
    bundle = home / "releases" / f"P001-request-{sub.request_id}"
    proven = srs(home, "release", "verify", str(bundle), "--audit", actor="cho")
    assert proven.exit_code == 0, proven.output
    assert "matches the audit log: 3 output(s)" in proven.output
    denied = srs(home, "release", "verify", str(bundle), "--audit", actor="ana")
    assert denied.exit_code == 2 and "may not audit.read" in denied.output
    # Someone holding the signing key swaps a released file and re-signs the manifest.
    manifest = json.loads((bundle / MANIFEST).read_text())
    path = manifest["outputs"][1]["files"][0]
    data = (bundle / path).read_bytes().replace(b"80", b"81")
    (bundle / path).write_bytes(data)
    for entry in manifest["files"]:
        if entry["path"] == path:
            entry["sha256"] = hashlib.sha256(data).hexdigest()
    body = manifest_bytes(manifest)
    (bundle / MANIFEST).write_bytes(body)
    (bundle / SIGNATURE).write_bytes(base64.b64encode(signing_key(home).sign(body)) + b"\n")
    assert srs(home, "release", "verify", str(bundle), actor=None).exit_code == 0
    caught = srs(home, "release", "verify", str(bundle), "--audit", actor="cho")
    assert caught.exit_code == 1
    assert f"output #{sub.outputs[1]}: its released files are not the files created" in (
        caught.output
    )

"""The airlock's pieces without a hub: the contents manager's refusals, the output limiter's
budget, the server configuration and kernel spec the spawner writes, the egress ruleset (checked
by the real ``nft``), the kernel launcher's cgroup and socket rules, and tokens bound to an
account."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
from tornado import web

from registry_fixtures import PROJECT, populate
from srs.governance.policy import PolicyError, default_policy_dir, load_policies
from srs.hub.airlock import (
    REFUSED_ROUTES,
    AirlockContentsManager,
    AirlockWebsocketConnection,
    kernel_spec,
    lab_page_config,
    server_config,
)
from srs.hub.config import HubConfigError
from srs.hub.kernel import cgroup2_mount, pipe_address
from srs.hub.spawner import egress_ruleset, nft_cgroup
from srs.hub.tokens import SessionTokenError, TokenRefused, issue_session_token
from srs.hub.tokens import resolve_session_token as resolve


@pytest.fixture
def contents(tmp_path: Path, policies) -> AirlockContentsManager:
    airlock = policies.access.airlock
    manager = AirlockContentsManager(
        root_dir=str(tmp_path),
        editable_suffixes=airlock.editable_suffixes,
        max_readable_file_bytes=10_000,
        max_upload_file_bytes=5_000,
    )
    (tmp_path / "rows.csv").write_text("person_key,age\n1,30\n")
    (tmp_path / "rows.parquet").write_bytes(b"PAR1")
    (tmp_path / "analysis.py").write_text("print(1)\n")
    (tmp_path / "Analysis.PY").write_text("print(2)\n")
    (tmp_path / "large.py").write_text("#" * 20_000)
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebook.ipynb")
    (tmp_path / "folder").mkdir()
    return manager


def run(coroutine):
    return asyncio.run(coroutine)


def refused(coroutine, status: int = 403) -> str:
    with pytest.raises(web.HTTPError) as caught:
        run(coroutine)
    assert caught.value.status_code == status
    return caught.value.log_message % caught.value.args


def test_data_files_content_is_never_served(contents: AirlockContentsManager) -> None:
    for path in ("rows.csv", "rows.parquet"):
        for options in ({}, {"type": "file"}, {"type": "file", "format": "base64"}):
            assert "not a notebook or code file" in refused(contents.get(path, **options))
    # Metadata and listings still work.
    assert run(contents.get("rows.csv", content=False))["content"] is None
    names = {item["name"] for item in run(contents.get(""))["content"]}
    assert {"rows.csv", "analysis.py", "folder"} <= names
    # Notebooks and code open (suffixes compared without case); too large a file does not.
    assert run(contents.get("notebook.ipynb"))["type"] == "notebook"
    assert run(contents.get("analysis.py"))["content"] == "print(1)\n"
    assert run(contents.get("Analysis.PY"))["content"] == "print(2)\n"
    assert "over the 10,000" in refused(contents.get("large.py"))


def test_saving_and_uploading_take_notebooks_and_code_of_a_bounded_size(
    contents: AirlockContentsManager, tmp_path: Path
) -> None:
    text = {"type": "file", "format": "text", "content": "person_key\n1\n"}
    assert "only notebooks and code" in refused(contents.save(text, "upload.csv"))
    assert not (tmp_path / "upload.csv").exists()
    encoded = {
        "type": "file",
        "format": "base64",
        "content": base64.b64encode(b"x" * 6_000).decode(),
    }
    assert "over the 5,000" in refused(contents.save(encoded, "big.py"), 413)
    # A chunked upload counts the chunks already written.
    first = {"type": "file", "format": "text", "content": "#" * 3_000, "chunk": 1}
    run(contents.save(first, "chunked.py"))
    second = {"type": "file", "format": "text", "content": "#" * 3_000, "chunk": -1}
    assert "would be 6,000" in refused(contents.save(second, "chunked.py"), 413)
    # Folders and small code files save as usual.
    run(contents.save({"type": "directory"}, "made"))
    run(contents.save({"type": "file", "format": "text", "content": "x = 1\n"}, "ok.py"))
    assert (tmp_path / "ok.py").read_text() == "x = 1\n"


def test_a_data_file_cannot_become_a_readable_one(contents: AirlockContentsManager) -> None:
    assert "may not become" in refused(contents.rename_file("rows.csv", "rows.py"))
    assert "not a notebook or code file" in refused(contents.copy("rows.csv", "copied.py"))
    run(contents.rename_file("analysis.py", "renamed.py"))  # code to code is fine
    run(contents.rename_file("renamed.py", "notes.txt"))  # and code to a data name hides it


def test_files_read_back_are_bounded_over_the_hour(tmp_path: Path, policies) -> None:
    """A kernel writes a dataset into one notebook after another; the browser reads them back
    until the hour's budget is spent, then 429, while listings and metadata go on working."""
    manager = AirlockContentsManager(
        root_dir=str(tmp_path),
        editable_suffixes=policies.access.airlock.editable_suffixes,
        max_readable_file_bytes=10_000,
        read_bytes_per_hour=25_000,
    )
    for number in range(5):
        (tmp_path / f"part{number}.py").write_text("#" * 9_000)
    for number in range(2):
        assert len(run(manager.get(f"part{number}.py"))["content"]) == 9_000
    message = refused(manager.get("part2.py"), 429)
    assert "25,000 bytes" in message and "output checking" in message
    assert "part3.py" in {item["name"] for item in run(manager.get(""))["content"]}
    assert run(manager.get("part3.py", content=False))["content"] is None
    # The budget is per hour: reads older than that no longer count.
    manager._airlock_reads = type(manager._airlock_reads)(
        (when - 3_601, size) for when, size in manager._airlock_reads
    )
    assert len(run(manager.get("part2.py"))["content"]) == 9_000


def test_jupyterlab_offers_no_download_or_export(policies) -> None:
    disabled = lab_page_config()["disabledExtensions"]
    for plugin in (
        "@jupyterlab/docmanager-extension:download",
        "@jupyterlab/filebrowser-extension:download",
        "@jupyterlab/notebook-extension:export",
        "@jupyterlab/terminal-extension",
    ):
        assert disabled[plugin] is True, plugin


def test_a_policy_whose_hour_cannot_read_one_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), folder)
    access = folder / "access.yaml"
    access.write_text(
        re.sub(r"read_bytes_per_hour: \d+", "read_bytes_per_hour: 1000", access.read_text())
    )
    with pytest.raises(PolicyError, match="read_bytes_per_hour must be at least"):
        load_policies(folder)


class Recorder(AirlockWebsocketConnection):
    """The limiter alone: ``_airlock_admits`` without a websocket."""

    def __init__(self, **limits) -> None:
        super().__init__(**limits)


def test_output_is_bounded_over_the_window_and_never_reset(policies) -> None:
    limiter = Recorder(
        output_bytes_per_second=1_000,
        output_messages_per_second=1_000,
        output_window_seconds=2,
        max_output_message_bytes=1_500,
    )
    assert "withheld" in limiter._airlock_admits(1_501)
    admitted = sum(1 for _ in range(100) if limiter._airlock_admits(100) is None)
    assert admitted == 20  # 1,000 bytes a second over 2 s
    assert "over the environment's rate" in limiter._airlock_admits(1)
    time.sleep(2.1)
    assert limiter._airlock_admits(100) is None  # the window moved on

    messages = Recorder(
        output_bytes_per_second=1e9,
        output_messages_per_second=5,
        output_window_seconds=1,
        max_output_message_bytes=10**6,
    )
    assert sum(1 for _ in range(50) if messages._airlock_admits(1) is None) == 5


def test_the_server_configuration_carries_the_policy(policies, tmp_path: Path) -> None:
    airlock = policies.access.airlock
    config = server_config(airlock, kernels_dir=tmp_path / "kernels")
    server = config["ServerApp"]
    assert server["contents_manager_class"].endswith("AirlockContentsManager")
    assert server["kernel_websocket_connection_class"].endswith("AirlockWebsocketConnection")
    assert server["terminals_enabled"] is False
    assert server["jpserver_extensions"] == {
        "srs.hub.airlock": True,
        "jupyter_server_terminals": False,
        "jupyter_lsp": False,
    }
    # JupyterLab reads settings and workspaces from root's folders beside the kernel specs.
    lab = config["LabApp"]
    assert lab["user_settings_dir"] == str(tmp_path / "lab" / "user-settings")
    assert lab["workspaces_dir"] == str(tmp_path / "lab" / "workspaces")
    assert lab["extension_manager"] == "readonly" and lab["news_url"] is None
    assert config["AirlockContentsManager"]["read_bytes_per_hour"] == airlock.read_bytes_per_hour
    assert config["KernelManager"] == {"transport": "ipc"}
    assert (
        config["AirlockContentsManager"]["max_readable_file_bytes"]
        == airlock.max_readable_file_bytes
    )
    assert (
        config["AirlockWebsocketConnection"]["output_bytes_per_second"]
        == airlock.output_bytes_per_second
    )
    json.dumps(config)  # written as JSON
    assert any("/files/" in route for route in REFUSED_ROUTES)
    argv = kernel_spec("/venv/bin/python")["argv"]
    assert argv[:4] == ["/venv/bin/python", "-I", "-m", "srs.hub.kernel"]
    assert "--srs-own-cgroup" in argv
    assert "--srs-own-cgroup" not in kernel_spec("/venv/bin/python", own_cgroup=False)["argv"]


def test_the_egress_ruleset_is_valid_nft(tmp_path: Path) -> None:
    nft = shutil.which("nft")
    assert nft, "nft is missing: run `make hub-prerequisites`"
    mount = cgroup2_mount()
    assert mount is not None, "no cgroup v2 hierarchy on this machine"
    parent = mount / "srs-ruleset-check"
    server = parent / "srse2e-check" / "server"
    server.mkdir(parents=True, exist_ok=True)
    try:
        named, level = nft_cgroup(server, mount)
        assert level == 3 and named.endswith("srs-ruleset-check/srse2e-check/server")
        script = egress_ruleset(
            "srs_check", "127.0.0.1", 8002, nft_cgroup(parent, mount), [(named, level)]
        )
        checked = subprocess.run(
            [nft, "-c", "-f", "-"], input=script, text=True, capture_output=True
        )
        assert checked.returncode == 0, checked.stderr
    finally:
        for folder in (server, server.parent, parent):
            folder.rmdir()
    assert "meta skuid @researchers jump from_researchers" in script
    assert f'socket cgroupv2 level {level} "{named}" goto server_traffic' in script
    assert "tcp dport 8002 ct state new accept" in script
    with pytest.raises(HubConfigError, match="cannot name an nft table"):
        egress_ruleset("bad name; flush ruleset", "127.0.0.1", 8002, ("x", 1), [])
    with pytest.raises(HubConfigError, match="outside /sys/fs/cgroup"):
        nft_cgroup(tmp_path / "srs", tmp_path)


def test_the_kernel_launcher_rules(tmp_path: Path) -> None:
    assert pipe_address(tmp_path, 42) == f"ipc://{tmp_path}/kernel-42-iopub-pipe"
    with pytest.raises(SystemExit, match="too long"):
        pipe_address(tmp_path / ("x" * 120), 42)
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "25 30 0:22 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "26 30 0:23 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    assert cgroup2_mount(str(mountinfo)) == Path("/sys/fs/cgroup/unified")
    mountinfo.write_text("25 30 0:22 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    assert cgroup2_mount(str(mountinfo)) is None


def test_a_token_is_bound_to_a_real_account(registry, policies) -> None:
    populate(registry, policies)
    with registry.sessions() as db:
        for bad in (0, -1, True, "1000", 1.5):
            with pytest.raises(SessionTokenError, match="unprivileged account"):
                issue_session_token(
                    db, username="ana", project_code=PROJECT, policies=policies, unix_uid=bad
                )
        bound = issue_session_token(
            db, username="ana", project_code=PROJECT, policies=policies, unix_uid=4242
        )
        unbound = issue_session_token(db, username="ana", project_code=PROJECT, policies=policies)
        assert resolve(db, bound, policies, peer_uid=4242) == ("ana", PROJECT)
        for peer in (None, 0, 4243):
            with pytest.raises(TokenRefused, match="works only from the server"):
                resolve(db, bound, policies, peer_uid=peer)
        assert resolve(db, unbound, policies) == ("ana", PROJECT)
        with pytest.raises(TokenRefused, match="bound to no Unix account"):
            resolve(db, unbound, policies, peer_uid=4242, require_account=True)


def test_no_server_starts_when_its_network_cannot_be_isolated(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from srs.hub.spawner import SRSSpawner, UnixAccount

    spawner = SRSSpawner(
        user=SimpleNamespace(name="ana", url="/user/ana/"),
        hub=SimpleNamespace(api_url="http://127.0.0.1:8002/hub/api"),
        nft_program="nft-that-is-not-installed",
        cgroup_parent="srs-fail-closed-check",
    )
    account = UnixAccount(name="srse2e-check", uid=4242, gid=4242, home=tmp_path)
    mount = cgroup2_mount()
    try:
        with pytest.raises(HubConfigError, match="so it is not started"):
            asyncio.run(spawner.isolate_network(account))
    finally:
        folder = mount / "srs-fail-closed-check"
        for cgroup in (folder / account.name / "server", folder / account.name / "kernels"):
            cgroup.rmdir()
        (folder / account.name).rmdir()
        folder.rmdir()


def test_the_read_budget_outlives_the_server(tmp_path: Path, policies, monkeypatch) -> None:
    """The hour's reads are kept in the account's ledger, a file the spawner opens and hands
    the server as a descriptor: a new server (after a restart) starts with them counted."""
    ledger = tmp_path / "ledger"
    ledger.write_text(f"{time.time() - 4_000:.3f} 20000\n{time.time() - 60:.3f} 20000\n")
    descriptor = os.open(ledger, os.O_RDWR | os.O_APPEND)
    monkeypatch.setenv("AIRLOCK_READ_LEDGER_FD", str(descriptor))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "part.py").write_text("#" * 9_000)
    manager = AirlockContentsManager(
        root_dir=str(tmp_path / "home"),
        editable_suffixes=policies.access.airlock.editable_suffixes,
        max_readable_file_bytes=10_000,
        read_bytes_per_hour=25_000,
    )
    assert "AIRLOCK_READ_LEDGER_FD" not in os.environ  # not a kernel's to see
    assert not os.get_inheritable(descriptor)
    refused(manager.get("part.py"), 429)  # 20,000 read a minute ago, by the server before
    manager._airlock_reads.clear()
    assert len(run(manager.get("part.py"))["content"]) == 9_000
    assert any(line.endswith(" 9000") for line in ledger.read_text().splitlines()[2:])
    os.close(descriptor)

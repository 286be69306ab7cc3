"""Bad input on the command line ends at once with a usage error (exit 2) that names the option,
never a traceback or a server left listening on nothing: every --port is a TCP port (the hub's
leaves room for the five ports it uses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from srs.cli.base_command import USER_ERROR

REPOSITORY = Path(__file__).resolve().parents[3]


def srs_command(*arguments: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``srs`` in a fresh process; a timeout (a hang) fails the test."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SRS_")}
    environment["COLUMNS"] = "200"  # the whole error box on one line
    return subprocess.run(
        [sys.executable, "-m", "srs.cli", "--home", str(home), *arguments],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("command", "port", "bound"),
    [
        (("checker", "serve"), "99999999", "less than or equal to 65535"),
        (("checker", "serve"), "65536", "less than or equal to 65535"),
        (("checker", "serve"), "0", "greater than or equal to 1"),
        (("hub", "start"), "65532", "less than or equal to 65531"),
        (("hub", "config"), "-1", "greater than or equal to 1"),
    ],
)
def test_a_port_out_of_range_is_a_usage_error(tmp_path, command, port, bound):
    result = srs_command(*command, "--port", port, home=tmp_path / "none")
    assert result.returncode == USER_ERROR, result.stderr
    assert f"Invalid value for '--port': Input should be {bound}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("command", "port"), [(("hub", "config"), "65531"), (("hub", "config"), "1")]
)
def test_a_port_in_range_gets_past_the_option(tmp_path, command, port):
    """The control: the same command with a port in range fails later, on the missing home."""
    result = srs_command(*command, "--port", port, home=tmp_path / "none")
    assert result.returncode == USER_ERROR
    assert "--port" not in result.stderr
    assert "is not an srs deployment; run `srs init` there first" in result.stderr

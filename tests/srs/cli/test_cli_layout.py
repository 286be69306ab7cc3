"""The command line's shape: each noun's commands come from the module of its name in srs.cli,
the top-level commands are exactly the documented ones, and every module ends a refused command
the one way srs.cli.base_command sets (a red ``error:`` line and its exit status, no traceback)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

import srs.cli
from srs.cli import app
from srs.cli.base_command import CHECK_FAILED, USER_ERROR

runner = CliRunner()

# `srs --help` lists these, in this order: five commands, then the noun groups.
TOP_LEVEL_COMMANDS = ["init", "simulate", "ingest", "run", "demo"]
NOUN_GROUPS = [
    "researcher",
    "project",
    "agreement",
    "dataset",
    "audit",
    "vault",
    "policy",
    "link",
    "linked",
    "budget",
    "outputs",
    "release",
    "checker",
    "synth",
    "hub",
]
# The module of each top-level command, as srs.cli's docstring says.
TOP_LEVEL_MODULES = {
    "init": "srs.cli.deployment",
    "demo": "srs.cli.deployment",
    "simulate": "srs.cli.extracts",
    "ingest": "srs.cli.extracts",
    "run": "srs.cli.notebooks",
}


@pytest.fixture(autouse=True)
def no_deployment_from_the_environment(monkeypatch) -> None:
    for variable in ("SRS_HOME", "SRS_USER", "SRS_MASTER_KEY", "SRS_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)


def command_name(info: typer.models.CommandInfo) -> str:
    return info.name or info.callback.__name__.replace("_", "-")


def test_every_noun_group_is_registered_from_its_own_module() -> None:
    groups = {info.name: info.typer_instance for info in app.registered_groups}
    assert list(groups) == NOUN_GROUPS
    for noun, group in groups.items():
        module = f"srs.cli.{noun}"
        assert group is getattr(srs.cli, noun).app, noun
        assert group.registered_commands, f"srs {noun} has no commands"
        for info in group.registered_commands:
            assert info.callback.__module__ == module, (noun, command_name(info))


def test_the_top_level_commands_are_exactly_the_documented_ones() -> None:
    command = typer.main.get_command(app)
    listed = command.list_commands(click.Context(command))
    assert listed == TOP_LEVEL_COMMANDS + NOUN_GROUPS
    registered = {command_name(info): info.callback for info in app.registered_commands}
    assert {name: f.__module__ for name, f in registered.items()} == TOP_LEVEL_MODULES
    documented = srs.cli.__doc__ or ""
    for name in TOP_LEVEL_COMMANDS + NOUN_GROUPS + sorted(set(TOP_LEVEL_MODULES.values())):
        assert f"``{name}``" in documented, name


def test_no_module_of_the_command_line_is_long() -> None:
    folder = Path(srs.cli.__file__).parent
    lengths = {p.name: p.read_text(encoding="utf-8").count("\n") for p in folder.glob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 800} == {}


def test_a_command_outside_a_deployment_says_to_run_init(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["--home", str(tmp_path / "nowhere"), "--as", "admin", "project", "list"]
    )
    assert result.exit_code == USER_ERROR
    assert result.stderr.startswith("error: ")
    assert "is not an srs deployment; run `srs init` there first" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_a_refused_command_exits_with_the_shared_code_and_message(tmp_path: Path) -> None:
    home = tmp_path / "deploy"
    assert runner.invoke(app, ["--home", str(home), "init"]).exit_code == 0
    missing = runner.invoke(app, ["--home", str(home), "--as", "admin", "dataset", "show", "NOPE"])
    assert missing.exit_code == USER_ERROR
    assert missing.stderr == "error: the vault holds no dataset 'NOPE'; see `srs dataset list`\n"
    assert "Traceback" not in missing.output
    anonymous = runner.invoke(app, ["--home", str(home), "audit", "tail"])
    assert anonymous.exit_code == USER_ERROR
    assert anonymous.stderr == "error: say who is acting: add --as USERNAME (or set SRS_USER)\n"


def test_a_check_that_finds_problems_exits_with_the_check_code(tmp_path: Path) -> None:
    empty_policies = tmp_path / "policies"
    empty_policies.mkdir()
    result = runner.invoke(app, ["policy", "check", str(empty_policies)])
    assert result.exit_code == CHECK_FAILED
    assert result.stderr.splitlines()[0].startswith("invalid ")
    assert result.stderr.splitlines()[-1].endswith(f"problem(s) in {empty_policies}")

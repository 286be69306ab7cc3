"""``srs policy``: validate a policy folder, every file of it, before a deployment uses it."""

from __future__ import annotations

from pathlib import Path

import typer

from srs.cli.base_command import console, fail_check, noun_group
from srs.errors import SRSError
from srs.governance.policy import check_policy_dir, default_policy_dir

app = noun_group("Validate policy folders.")


@app.command("check")
def policy_check(
    directory: Path = typer.Argument(None, help="Policy folder (default: the deployment's)."),
) -> None:
    """Validate every policy file in a folder; exits 1 listing each problem."""
    from srs.pipeline.ingest import known_sources, load_dictionary
    from srs.pipeline.linkage import load_linkage_settings
    from srs.pipeline.names import read_nicknames
    from srs.pipeline.offences import load_offences

    folder = directory or default_policy_dir()
    problems: list[SRSError] = list(check_policy_dir(folder))
    if folder.is_dir():
        loaders = [load_offences, load_linkage_settings, read_nicknames]
        loaders += [lambda f, s=s: load_dictionary(s, f) for s in known_sources(folder)]
        for loader in loaders:
            try:
                loader(folder)
            except SRSError as exc:
                problems.append(exc)
    if not problems:
        console.print(f"[green]Policies valid[/]: {folder}")
        return
    fail_check(
        *(f"[red]invalid[/] {problem}" for problem in problems),
        f"{len(problems)} problem(s) in {folder}",
    )

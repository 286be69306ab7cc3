"""``srs link``: link persons across sources with Splink, in the vault's steward zone or on any
tables given as files, and measure the linkage (blocking analysis, precision and recall)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from srs.cli.base_command import (
    CommandContext,
    UsageError,
    console,
    noun_group,
    print_done,
    print_note,
    progress,
)

app = noun_group("Link persons across sources with Splink (steward zone).")


_THRESHOLD_HELP = "Match probability at or above which two records are one person (0 < P < 1; default: the policy's match_threshold)."
_SETTINGS_HELP = "YAML file overriding keys of policies/linkage.yaml (e.g. match_threshold, training: {seed: 7}); unknown keys are refused."


def _linkage_settings(
    policy_dir: Path | None,
    settings_file: Path | None,
    threshold: float | None = None,
    link_type: str | None = None,
):
    """The policy's linkage settings, then a settings file's keys, then the options'."""
    from srs.pipeline.linkage import load_linkage_settings, override_settings, read_settings_file

    settings = load_linkage_settings(policy_dir)
    if settings_file is not None:
        if not settings_file.is_file():
            raise UsageError(f"{settings_file}: no such settings file")
        settings = read_settings_file(settings, settings_file)
    if threshold is not None:
        if not 0 < threshold < 1:
            raise UsageError(
                f"--threshold {threshold} is not a probability strictly between 0 and 1; give "
                "e.g. 0.9"
            )
        settings = override_settings(settings, {"match_threshold": threshold}, "--threshold")
    if link_type is not None:
        settings = override_settings(settings, {"link_type": link_type}, "--link-type")
    return settings


@app.command("run")
def link_run(
    ctx: typer.Context,
    review_out: Path = typer.Option(
        None,
        help="Clerical-review sample of borderline pairs (default: HOME/steward/clerical_review.csv).",
    ),
    threshold: float = typer.Option(None, help=_THRESHOLD_HELP),
    settings_file: Path = typer.Option(None, "--settings", help=_SETTINGS_HELP),
) -> None:
    """Link and deduplicate persons across every ingested source; store the lookup (stewards)."""
    from srs.pipeline.person_linkage import link_in_vault
    from srs.pipeline.stewardship import PERSON_LOOKUP

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    settings = _linkage_settings(state.policies.source_dir, settings_file, threshold)
    review_out = review_out or deployment.home / "steward" / "clerical_review.csv"
    with state.registry.sessions() as session:
        result = link_in_vault(
            session,
            state.vault,
            actor=state.actor(),
            settings=settings,
            clerical_path=review_out,
            progress=progress,
        )
    clusters = result.lookup["cluster_id"].nunique()
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print_done("Linked", f"{len(result.records):,} records into {clusters:,} persons ({seconds})")
    console.print(f"  lookup stored as {PERSON_LOOKUP}; clerical review sample: {review_out}")
    for note in result.notes:
        print_note(note)


@app.command("refresh")
def link_refresh(
    ctx: typer.Context,
    report_out: Path = typer.Option(
        None,
        help="The steward's change report, CSV of every key change, with a summary beside it "
        "(default: HOME/steward/key_changes-vN.csv, N the register's new version).",
    ),
    threshold: float = typer.Option(None, help=_THRESHOLD_HELP),
    settings_file: Path = typer.Option(None, "--settings", help=_SETTINGS_HELP),
) -> None:
    """Link the records new source versions add or correct into the persons already linked,
    keeping every person's key (stewards). Splits need a full `srs link run`."""
    from srs.pipeline.person_linkage import refresh_in_vault
    from srs.pipeline.stewardship import PERSON_LOOKUP

    state: CommandContext = ctx.obj
    deployment = state.require_initialised()
    settings = _linkage_settings(state.policies.source_dir, settings_file, threshold)
    with state.registry.sessions() as session:
        if report_out is None and state.vault.exists(session, PERSON_LOOKUP):
            version = state.vault.get(session, PERSON_LOOKUP).version + 1
            report_out = deployment.home / "steward" / f"key_changes-v{version}.csv"
        result = refresh_in_vault(
            session,
            state.vault,
            actor=state.actor(),
            settings=settings,
            report_path=report_out,
            progress=progress,
        )
    if result.lookup_version is None:
        print_done("Refreshed", "nothing to do: no record was added, corrected or withdrawn")
        return
    keys = result.keys
    print_done(
        "Refreshed",
        f"{result.records_added:,} record(s) added, {result.records_changed:,} corrected, "
        f"{result.records_removed:,} withdrawn in {result.seconds:.1f} s",
    )
    console.print(
        f"  person keys: {keys['kept']:,} kept, {keys['new']:,} new, {keys['merged']:,} merged, "
        f"{keys['split']:,} split, {keys['withdrawn']:,} withdrawn"
    )
    console.print(
        f"  register stored as {PERSON_LOOKUP}@{result.lookup_version}; change report: "
        f"{escape(str(result.report_path))}"
    )
    for note in result.notes:
        print_note(note)


@app.command("files")
def link_files(
    tables: list[str] = typer.Argument(
        ..., help="NAME=PATH for each CSV or Parquet table (two or more, or one to deduplicate)."
    ),
    mapping: Path = typer.Option(..., help="YAML mapping each table's columns to linkage roles."),
    out: Path = typer.Option(
        ..., help="Where to write the lookup (CSV: source, record_id, cluster_id)."
    ),
    threshold: float = typer.Option(None, help=_THRESHOLD_HELP),
    link_type: str = typer.Option(
        None,
        help="link_only (pairs across tables only; two or more tables), dedupe_only or "
        "link_and_dedupe (every pair, within and across tables). Default: the policy's "
        "link_type, dedupe_only, which compares every pair.",
    ),
    settings_file: Path = typer.Option(None, "--settings", help=_SETTINGS_HELP),
) -> None:
    """Link any tables outside the vault, given a column mapping (see README)."""
    from srs.pipeline.linkage import link_tables, read_mapping_file

    settings = _linkage_settings(None, settings_file, threshold, link_type)
    frames = _linkage_tables(tables)
    result = link_tables(frames, read_mapping_file(mapping), settings, progress)
    result.lookup.to_csv(out, index=False)
    clusters = result.lookup["cluster_id"].nunique()
    print_done(
        "Linked", f"{len(result.records):,} records into {clusters:,} clusters; lookup: {out}"
    )
    for note in result.notes:
        print_note(note)


def _read_linkage_table(file: Path) -> pd.DataFrame:
    """One table for `link files`, `link analyse` and `link evaluate`, every CSV value as text
    (blanks stay blank, not NaN-guessed). The delimiter is the comma, or else the tab,
    semicolon or bar the header line holds; spaces after a delimiter are dropped.
    """
    if file.stat().st_size == 0:
        raise UsageError(f"{file} is empty (0 bytes); a table needs a header row and records")
    try:
        if file.suffix == ".parquet":
            return pd.read_parquet(file)
        return pd.read_csv(
            file,
            sep=_csv_delimiter(file),
            skipinitialspace=True,  # "a, b, c", as FEBRL writes, headers and values alike
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8",
        )
    except UnicodeDecodeError:
        raise UsageError(_not_utf8_message(file)) from None
    except (OSError, ValueError) as exc:  # pandas' parser and Arrow errors are ValueErrors
        raise UsageError(f"cannot read {file} as a {file.suffix or 'CSV'} table: {exc}") from exc


def _csv_delimiter(file: Path) -> str:
    """The comma, unless the header line has none and holds a tab, semicolon or bar
    (spreadsheets save "CSV" with semicolons where the comma is the decimal mark)."""
    with file.open("rb") as handle:
        header = handle.readline(1 << 16).decode("utf-8", errors="replace")
    if "," in header:
        return ","
    found = [d for d in ("\t", ";", "|") if d in header]
    return max(found, key=header.count) if found else ","


def _not_utf8_message(file: Path) -> str:
    """Where a text file stops being UTF-8, and what to do: guessing another encoding
    silently would turn José into JosÃ© or worse, and names are what linkage compares."""
    with file.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = f"byte 0x{line[exc.start]:02x} on line {number:,}"
                break
        else:
            byte = "a byte"
    return (
        f"{file} is not UTF-8 text ({byte} is not UTF-8; Latin-1 or Windows-1252 perhaps); "
        "save it as UTF-8 (in Excel: Save As 'CSV UTF-8') and run again"
    )


@app.command("evaluate")
def link_evaluate(
    ctx: typer.Context,
    truth: Path = typer.Option(
        ..., help="Ground truth (source, record_id, person_id), CSV or Parquet."
    ),
    lookup: Path = typer.Option(
        None, help="A lookup file from `srs link files` (default: the vault's)."
    ),
) -> None:
    """Report precision, recall and F1 of the linkage against a ground truth."""
    from srs.pipeline.linkage import evaluate
    from srs.pipeline.stewardship import PERSON_LOOKUP

    def read(path: Path) -> pd.DataFrame:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        return _read_linkage_table(path)

    state: CommandContext = ctx.obj
    if lookup is None:
        with state.registry.sessions() as session:
            linked = state.vault.read_steward_zone(session, PERSON_LOOKUP, actor=state.actor())
    else:
        linked = read(lookup)
    # The vault's lookup lacks the rows ingest rejected, which the truth still holds.
    quality = evaluate(linked, read(truth), leave_out_unlinked=lookup is None)
    left_out = quality.truth_records_left_out
    table = Table("measure", "value")
    for label, value in (
        ("records", f"{quality.records:,}"),
        *([("truth records not in the lookup", f"{left_out:,}")] if left_out else []),
        ("precision", f"{quality.precision:.4f}"),
        ("recall", f"{quality.recall:.4f}"),
        ("F1", f"{quality.f1:.4f}"),
        ("true pairs", f"{quality.true_pairs:,}"),
        ("predicted pairs", f"{quality.predicted_pairs:,}"),
        ("clusters wrongly merged", f"{quality.wrongly_merged_clusters:,}"),
        ("persons wrongly split", f"{quality.wrongly_split_persons:,}"),
    ):
        table.add_row(label, value)
    console.print(table)


@app.command("analyse")
def link_analyse(
    ctx: typer.Context,
    tables: list[str] = typer.Argument(
        None,
        help="NAME=PATH for each CSV or Parquet table (as for `link files`); none: the vault's "
        "ingested sources (stewards).",
    ),
    mapping: Path = typer.Option(
        None, help="YAML mapping each table's columns to linkage roles (with tables)."
    ),
    truth: Path = typer.Option(
        None,
        help="Ground truth (source, record_id, person_id), CSV or Parquet: adds blocking recall, "
        "the share of true pairs the rules compare.",
    ),
    link_type: str = typer.Option(
        None, help="link_only, dedupe_only or link_and_dedupe (default: the policy's)."
    ),
    settings_file: Path = typer.Option(None, "--settings", help=_SETTINGS_HELP),
) -> None:
    """Count the comparisons each blocking rule makes, alone and cumulatively, against the
    comparison budget; with --truth, the blocking recall (Splink's blocking analysis)."""
    from srs.pipeline.linkage import (
        identifier_comparisons,
        mapping_from_dictionary,
        read_mapping_file,
        standardise,
    )
    from srs.pipeline.linkage.blocking import analyse_blocking, rule_text

    state: CommandContext = ctx.obj
    if tables:
        if mapping is None:
            raise UsageError("give --mapping with the tables (see `srs link files --help`)")
        policy_dir = None
        frames = _linkage_tables(tables)
        mappings = read_mapping_file(mapping)
    else:
        from srs.pipeline.ingest import load_dictionary
        from srs.pipeline.stewardship import read_sources

        if mapping is not None:
            raise UsageError("--mapping is for tables given as NAME=PATH; give them too")
        state.require_initialised()
        policy_dir = state.policies.source_dir
        with state.registry.sessions() as session:
            frames = read_sources(session, state.vault, actor=state.actor())
        mappings = {s: mapping_from_dictionary(load_dictionary(s, policy_dir)) for s in frames}
    truth_frame = None
    if truth is not None:
        if not truth.is_file():
            raise UsageError(f"{truth}: no such file")
        truth_frame = _read_linkage_table(truth)
    settings = _linkage_settings(policy_dir, settings_file, link_type=link_type)
    notes: list[str] = []
    records = standardise(frames, mappings, settings, notes)
    settings = identifier_comparisons(settings, mappings, records)
    analysis = analyse_blocking(records, settings, truth_frame)
    columns = ["rule", "comparisons", "new", "cumulative", "largest block"]
    if analysis.true_pairs is not None:
        columns += ["recall", "cumulative recall"]
    table = Table(*columns)
    about = "~" if analysis.estimated else ""
    for rule in analysis.rules:
        block = (
            f"{rule.largest_block} ({rule.largest_block_records:,})"
            if rule.largest_block_records > 1
            else "-"
        )
        row = [
            rule_text(rule.rule),
            f"{rule.comparisons:,}",
            f"{about}{rule.new_comparisons:,}",
            f"{about}{rule.cumulative:,}",
            block,
        ]
        if analysis.true_pairs is not None:
            row += [f"{rule.recall:.4f}", f"{rule.cumulative_recall:.4f}"]
        table.add_row(*map(escape, row))
    console.print(table)
    per_record = analysis.comparisons / analysis.records
    console.print(
        f"{analysis.records:,} records ({analysis.link_type}): {about}{analysis.comparisons:,} "
        f"comparisons, {per_record:.1f} per record"
        + (" (cumulative counts estimated by Splink from a sample)" if analysis.estimated else "")
    )
    over = analysis.over_budget()
    if over is None:
        console.print(f"[green]within the comparison budget[/] of {analysis.budget:,}")
    else:
        console.print(
            f"[red]over the comparison budget[/] of {analysis.budget:,} from rule "
            f"{escape(rule_text(over.rule))}: `srs link` would refuse these rules"
        )
    if analysis.true_pairs is not None:
        console.print(
            f"blocking recall {analysis.rules[-1].cumulative_recall:.4f} of "
            f"{analysis.true_pairs:,} true pairs"
        )
        if analysis.records_without_truth:
            notes.append(
                f"{analysis.records_without_truth:,} record(s) have no row in the ground truth "
                "and are left out of the recall"
            )
    for note in notes:
        print_note(note)


def _linkage_tables(items: list[str]) -> dict[str, pd.DataFrame]:
    """Tables given as NAME=PATH, read as `link files` reads them."""
    frames = {}
    for item in items:
        name, _, location = item.partition("=")
        if not name or not location:
            raise UsageError(f"give tables as NAME=PATH, not {item!r}")
        if name in frames:
            raise UsageError(f"table name {name!r} is given twice; give each table its own name")
        file = Path(location)
        if not file.is_file():
            raise UsageError(f"{file}: no such file")
        frames[name] = _read_linkage_table(file)
    return frames

"""The `blobflow` command: parse options, call the library, render the result.

The only module that imports click. One error boundary (`main`): a BlobflowError becomes one
`Error: ...` line and its exit status; anything else is a bug, shown in one line unless --debug.
"""

from __future__ import annotations

import os
import select
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from blobflow import render
from blobflow.api import PipelineHandle, open_pipeline
from blobflow.db import (
    is_missing_table,
    mask_url,
    missing_schemas,
    refused_value,
    sqlite_file_missing,
)
from blobflow.errors import BlobflowError, ConnectionFailed, UsageError
from blobflow.sources import FORMATS, detect_format, read_rows, resolve_blob_sources

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 3  # a bug in blobflow: distinct from 1 (keys failed) and 2 (the user's input)


@dataclass
class Settings:
    pipeline: str | None
    database: str | None
    debug: bool

    def pipeline_path(self) -> str:
        if self.pipeline:
            return self.pipeline
        for candidate in ("pipeline.yaml", "pipeline"):
            if Path(candidate).exists():
                return candidate
        raise UsageError(
            "no pipeline given: use -p PATH, set BLOBFLOW_PIPELINE, or run where ./pipeline.yaml "
            "or ./pipeline/ exists"
        )

    def open(self, *, existing: bool = True) -> PipelineHandle:
        """The pipeline on its database; `existing` refuses a SQLite file, or PostgreSQL schemas, that
        `init` has not created (instead of silently creating an empty file from a mistyped path, or
        failing on the first query)."""
        pipe = open_pipeline(self.pipeline_path(), self.database)
        if not existing:
            return pipe
        database = pipe.database
        missing = sqlite_file_missing(database.url)
        schemas = [database.sql_schema(s) for s in database.pipeline.schemas]
        try:
            absent = [] if missing else missing_schemas(database.engine, schemas)
        except BaseException:
            pipe.close()
            raise
        if missing or absent:
            pipe.close()
            where = (
                f"no database at {missing}" if missing else f"no schema {', '.join(absent)} in the database"
            )
            raise UsageError(f"{where}; run `blobflow init` first (or check --database)")
        return pipe


pass_settings = click.make_pass_decorator(Settings)


class BlobflowGroup(click.Group):
    """The one error boundary: a BlobflowError becomes `Error: ...` and its exit status; anything else
    is a bug, shown in one line unless --debug. Lives on the group so CliRunner tests exercise it."""

    def invoke(self, ctx: click.Context) -> Any:
        # ctx.params holds the group's parsed options (set before invoke); sys.argv is not the command
        # line when the group is invoked programmatically (CliRunner, main(args=...)).
        debug = bool(ctx.params.get("debug")) or os.environ.get("BLOBFLOW_DEBUG", "").lower() in (
            "1",
            "true",
            "yes",
            "on",
        )
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            render.error("interrupted")
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError as exc:
            if not _stdout_reader_gone():  # a pipe of blobflow's own broke (a worker's): a real failure
                _report_bug(exc, debug)
                ctx.exit(EXIT_INTERNAL)
            # The reader went away (`blobflow query ... | head`): not an error; silence the final flush.
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
            ctx.exit(0)
        except BlobflowError as exc:
            _report(exc, str(exc), debug)
            ctx.exit(exc.exit_code)
        except sa.exc.DBAPIError as exc:
            failure = _database_failure(exc)
            if failure is None:
                _report_bug(exc, debug)
                ctx.exit(EXIT_INTERNAL)
            _report(exc, str(failure), debug)
            ctx.exit(failure.exit_code)
        except Exception as exc:
            _report_bug(exc, debug)
            ctx.exit(EXIT_INTERNAL)


@click.group(
    cls=BlobflowGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "-p",
    "--pipeline",
    envvar="BLOBFLOW_PIPELINE",
    metavar="PATH",
    help="Manifest file or directory [env BLOBFLOW_PIPELINE; default ./pipeline.yaml, else ./pipeline/].",
)
@click.option(
    "--database",
    envvar="BLOBFLOW_DATABASE_URL",
    metavar="URL",
    help="Database URL [env BLOBFLOW_DATABASE_URL; default the manifest's, else sqlite:///blobflow.db].",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="blobflow")
@click.pass_context
def cli(context: click.Context, pipeline: str | None, database: str | None, debug: bool) -> None:
    """Run parameter-sweep pipelines declared in YAML manifests.

    \b
    Example:
      blobflow -p pipelines/blobs init
      blobflow -p pipelines/blobs insert Image images.yaml
    """
    context.obj = Settings(pipeline, database, debug)


@cli.command()
@pass_settings
def init(settings: Settings) -> None:
    """Create the schema and tables and insert lookup contents; safe to repeat.

    Refuses, listing the differences, when a table in the database differs from the manifest.

    \b
    Example:
      blobflow -p pipelines/blobs init
    """
    with settings.open(existing=False) as pipe:
        result = pipe.init()
        where = mask_url(pipe.database.url)
        for name in result.created:
            render.message(f"created {name}")
        for name, count in result.contents_inserted.items():
            if count:
                render.message(f"inserted {count} contents rows into {name}")
        render.message(
            f"{len(result.created)} tables created, {len(result.existing)} already there ({where})"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_settings
def tables(settings: Settings, as_json: bool) -> None:
    """List the pipeline's tables with tiers, keys and row counts.

    \b
    Example:
      blobflow -p pipelines/blobs tables
    """
    with settings.open(existing=False) as pipe:
        counts = pipe.row_counts()
        name = pipe.model.display_name
        rows = [(name(t), t.tier, ", ".join(t.primary_key), counts[name(t)]) for t in pipe.model]
    if as_json:
        render.print_json([dict(zip(("table", "tier", "key", "rows"), row)) for row in rows])
        return
    render.print_rows(
        ["table", "tier", "key", "rows"],
        [(n, tier, key, "-" if c is None else c) for n, tier, key, c in rows],
    )


@cli.command()
@click.argument("table")
@pass_settings
def describe(settings: Settings, table: str) -> None:
    """Show a table's definition, with its parts, and its row count.

    \b
    Example:
      blobflow -p pipelines/blobs describe Detection
    """
    with settings.open(existing=False) as pipe:
        handle = pipe.table(table)
        shown = pipe.model.display_name(handle.model)
        count = pipe.row_counts()[shown]
        render.print_text(handle.describe())
    render.message(
        f"{shown}: " + ("not created yet (run blobflow init)" if count is None else f"{count} rows")
    )


@cli.command()
@click.argument("table")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--format", "file_format", type=click.Choice(FORMATS), help="Input format [default: by extension]."
)
@click.option("--skip-duplicates", is_flag=True, help="Keep existing rows with the same key.")
@click.option("--replace", is_flag=True, help="Overwrite existing rows with the same key.")
@click.option("--ignore-extra-fields", is_flag=True, help="Ignore fields that are not attributes.")
@pass_settings
def insert(
    settings: Settings,
    table: str,
    file,
    file_format: str | None,
    skip_duplicates: bool,
    replace: bool,
    ignore_extra_fields: bool,
) -> None:
    """Insert rows from a YAML, JSON, JSON Lines or CSV file (- for stdin); all or nothing.

    A blob value may be {npy: path}, {image: path} or {call: module:function}.

    \b
    Example:
      blobflow -p pipelines/blobs insert Image pipelines/blobs/inserts/images.yaml
    """
    with settings.open() as pipe:
        handle = pipe.table(table)
        rows = read_rows(file, file.name, file_format)
        base = Path(file.name).parent if file.name not in ("<stdin>", "-") else Path.cwd()
        from_csv = (file_format or detect_format(file.name, "")) == "csv"
        rows = resolve_blob_sources(rows, handle.model, pipe.model, base, from_csv=from_csv)
        result = handle.insert(
            rows, skip_duplicates=skip_duplicates, replace=replace, ignore_extra_fields=ignore_extra_fields
        )
    parts = "".join(f", {n} {name} rows" for name, n in result.part_rows.items())
    verb = "inserted or kept" if skip_duplicates else "inserted or replaced" if replace else "inserted"
    render.message(f"{verb} {result.rows} {result.table} rows{parts}")


@cli.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def drop(settings: Settings, yes: bool) -> None:
    """Drop the pipeline's schemas with every table and row in them.

    \b
    Example:
      blobflow -p pipelines/blobs drop --yes
    """
    with settings.open(existing=False) as pipe:
        plan = pipe.plan_drop()
        if not plan.row_counts:
            render.message("nothing to drop: no table of the pipeline exists")
            return
        for name, count in plan.row_counts.items():
            render.message(f"  {name}: {count} rows")
        question = (
            f"Drop schema {', '.join(plan.schemas)} with {len(plan.row_counts)} tables "
            f"and {sum(plan.row_counts.values())} rows?"
        )
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError("drop deletes everything: pass --yes when not running on a terminal")
            if not render.confirm(question):
                render.message("nothing dropped")
                return
        pipe.drop()
    render.message(f"dropped {', '.join(plan.schemas)}")


@cli.command()
@click.argument("tables", nargs=-1)
@click.option(
    "-j", "--jobs", default=1, show_default=True, type=click.IntRange(1), help="Processes computing at once."
)
@click.option("--where", metavar="COND", help='Only keys matching a condition or query, e.g. "image_id = 1".')
@click.option("--limit", type=click.IntRange(1), help="Compute at most N keys per table.")
@click.option(
    "--order",
    type=click.Choice(["original", "random"]),
    default="original",
    show_default=True,
    help="Order in which pending keys are taken.",
)
@click.option("--retry-errors", is_flag=True, help="Compute keys that failed before, too.")
@click.option("--dry-run", is_flag=True, help="Show what is pending, compute nothing.")
@click.option("--progress/--no-progress", default=True, help="Show progress on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option(
    "--reserve/--no-reserve",
    default=None,
    help="Claim keys in the jobs table so other processes skip them [default: on for PostgreSQL].",
)
@click.option(
    "--lease",
    "lease_seconds",
    type=click.FloatRange(0.5),
    default=60.0,
    show_default=True,
    help="Seconds a claim lasts unless renewed; a dead worker's keys are taken after this.",
)
@pass_settings
def populate(
    settings: Settings,
    tables: tuple[str, ...],
    jobs: int,
    where: str | None,
    limit: int | None,
    order: str,
    retry_errors: bool,
    dry_run: bool,
    progress: bool,
    as_json: bool,
    reserve: bool | None,
    lease_seconds: float,
) -> None:
    """Compute what is pending: the named tables and every computed table upstream of them
    (all computed tables when none is named). Exits 1 if any key failed.

    \b
    Example:
      blobflow -p pipelines/blobs populate detection --jobs 2
    """
    from blobflow.populate.executor import PopulateOptions
    from blobflow.populate.executor import populate as run_populate

    with settings.open() as pipe:
        targets = [pipe.table(name).model for name in tables]
        targets = [pipe.model.table(t.master) if t.master else t for t in targets]
        if dry_run:
            _print_plan(pipe, targets, where, retry_errors, limit)
            return
        options = PopulateOptions(
            jobs=jobs,
            retry_errors=retry_errors,
            limit=limit,
            random_order=order == "random",
            reserve=reserve,
            lease_seconds=lease_seconds,
            where=where,
        )
        summaries: dict = {}
        key_names = {pipe.model.display_name(table): table.primary_key for table in pipe.model}
        try:
            with render.PopulateProgress(progress) as display:
                run_populate(pipe.database, targets or None, options, display, summaries)
        except KeyboardInterrupt:
            _print_summary(summaries, as_json, key_names)
            raise
    _print_summary(summaries, as_json, key_names)
    if any(s.failed for s in summaries.values()):
        raise click.exceptions.Exit(1)


def _print_plan(
    pipe: PipelineHandle, targets: list, where: str | None, retry_errors: bool, limit: int | None
) -> None:
    from blobflow.populate.planner import pending_keys_now

    plan = pending_keys_now(pipe.database, targets or None, where, retry_errors=retry_errors, limit=limit)
    for planned in plan:
        sample, count = planned.sample, planned.pending
        keys = ", ".join("(" + ", ".join(f"{k}={v}" for k, v in key.items()) + ")" for key in sample)
        more = f" and {count - len(sample)} more" if count > len(sample) else ""
        notes = []
        if planned.failed:
            notes.append(f"{planned.failed} failed before: --retry-errors computes them again")
        if planned.waits_upstream:
            notes.append("more once the tables above are computed")
        line = f"{pipe.model.display_name(planned.table)}: {count} pending"
        line += f" ({'; '.join(notes)})" if notes else ""
        render.print_text(line + (f": {keys}{more}" if keys else ""))


def _print_summary(summaries: dict, as_json: bool, key_names: dict[str, tuple[str, ...]]) -> None:
    if as_json:
        render.print_json(
            {
                name: {
                    "computed": s.computed,
                    "failed": s.failed,
                    "skipped": s.skipped,
                    "seconds": round(s.seconds, 3),
                }
                for name, s in summaries.items()
            }
        )
    for name, summary in summaries.items():
        line = f"{name}: {summary.computed} computed, {summary.failed} failed"
        if summary.skipped:
            line += f", {summary.skipped} done by another process"
        render.message(line + f" in {summary.seconds:.1f} s")
        for error in summary.errors[:3]:
            key = _key_text(dict(zip(key_names.get(name, ()), error.key)))
            first_line = error.message.splitlines()[0] if error.message else ""
            render.message(f"  ({key}): {error.error_type}: {first_line}")
        if summary.failed:
            render.message("  `blobflow jobs --errors -v` shows every failure with its traceback")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_settings
def status(settings: Settings, as_json: bool) -> None:
    """Per table: rows, and for computed tables the keys pending, in progress and failed.

    \b
    Example:
      blobflow -p pipelines/blobs status
    """
    from blobflow.populate.status import pipeline_status

    with settings.open(existing=False) as pipe:
        rows = pipeline_status(pipe.database)
    if as_json:
        render.print_json([vars(row) for row in rows])
        return
    blank = lambda value: "-" if value is None else value  # noqa: E731
    render.print_rows(
        ["table", "tier", "rows", "pending", "in progress", "errors"],
        [
            (r.table, r.tier, blank(r.rows), blank(r.pending), blank(r.reserved), blank(r.errors))
            for r in rows
        ],
    )


@cli.command()
@click.option("--errors", "errors_only", is_flag=True, help="Only failed keys.")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_settings
def jobs(settings: Settings, errors_only: bool, verbose: bool, as_json: bool) -> None:
    """Keys reserved by running workers and keys whose make failed.

    \b
    Example:
      blobflow -p pipelines/blobs jobs --errors -v
    """
    from blobflow.populate.status import list_jobs

    with settings.open() as pipe:
        found = list_jobs(pipe.database, errors_only=errors_only)
    if as_json:
        render.print_json([vars(job) | ({} if verbose else {"error_traceback": None}) for job in found])
        return
    render.print_rows(
        ["table", "key", "status", "host", "pid", "since", "error"],
        [
            (
                j.table,
                _key_text(j.key),
                j.status,
                j.host,
                j.pid,
                j.reserved_at.isoformat(" ", "seconds"),
                f"{j.error_type}: {j.error_message}" if j.error_type else "",
            )
            for j in found
        ],
    )
    if verbose:
        for job in found:
            if job.error_traceback:
                render.print_text(f"\n{job.table} {_key_text(job.key)}:\n{job.error_traceback.rstrip()}")


def _key_text(key: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items())


@cli.command()
@click.argument("expression")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json", "jsonl"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("--limit", type=click.IntRange(0), help="At most N rows.")
@click.option(
    "--order-by", metavar="ATTRS", help='Order, e.g. "num_blobs desc, image_id" [default: primary key].'
)
@pass_settings
def query(
    settings: Settings, expression: str, output_format: str, limit: int | None, order_by: str | None
) -> None:
    """Print the rows of a query expression.

    \b
    Example:
      blobflow -p pipelines/blobs query "Detection & num_blobs < 300"
      blobflow -p pipelines/blobs query "(Image * Detection).proj(image_name, num_blobs)" --format csv
    """
    from blobflow.query import compile_query, final_select, iter_rows

    with settings.open() as pipe:
        relation = compile_query(pipe.database, expression)
        select = final_select(relation, order_by=order_by, limit=limit, raw_blobs=True)
        render.print_query_rows(relation.heading, iter_rows(pipe.database, select), output_format)


@cli.command()
@click.argument("expression")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
@pass_settings
def delete(settings: Settings, expression: str, yes: bool, dry_run: bool) -> None:
    """Delete rows and, cascading, every row that depends on them; shows the counts and asks first.

    \b
    Example:
      blobflow -p pipelines/blobs delete "Detection & params_id = 1" --dry-run
    """
    from blobflow.delete import execute_delete, plan_delete

    with settings.open() as pipe:
        plan = plan_delete(pipe.database, expression)
        if not plan.counts:
            render.message("nothing to delete: no row matches")
            return
        for name, count in plan.counts.items():
            render.message(f"  {name}: {count} rows")
        if dry_run:
            return
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError("delete removes rows: pass --yes when not running on a terminal")
            if not render.confirm(f"Delete {sum(plan.counts.values())} rows from {len(plan.counts)} tables?"):
                render.message("nothing deleted")
                return
        done = execute_delete(pipe.database, expression)
    render.message("deleted " + ", ".join(f"{n} {name} rows" for name, n in done.counts.items()))


@cli.command()
@click.option(
    "--format",
    "diagram_format",
    type=click.Choice(["mermaid", "dot", "svg", "png"]),
    help="Output format [default: from the extension of --out, else mermaid].",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write to FILE (.mmd .md .dot .gv .svg .png) instead of stdout.",
)
@pass_settings
def diagram(settings: Settings, diagram_format: str | None, out: Path | None) -> None:
    """Draw the pipeline's tables and their dependencies; needs no database.

    Tiers are coloured as in DataJoint: manual green, lookup grey, imported blue, computed red, parts
    small beside their master. Arrows go from parent to child: solid for `depends`, dashed for
    `references`. Mermaid renders on GitHub; svg and png are drawn with matplotlib.

    \b
    Example:
      blobflow -p pipelines/blobs diagram
      blobflow -p pipelines/blobs diagram --out diagram.png
    """
    from blobflow.diagram import format_for_path, render_diagram
    from blobflow.manifest import load_pipeline

    pipeline = load_pipeline(settings.pipeline_path())
    chosen = diagram_format or (format_for_path(out) if out is not None else "mermaid")
    markdown = chosen == "mermaid" and out is not None and out.suffix.lower() == ".md"
    content = render_diagram(pipeline, chosen, markdown=markdown)
    if out is None:
        if isinstance(content, bytes):
            if sys.stdout.isatty():
                raise UsageError("a png diagram is binary: pass --out FILE or redirect stdout")
            sys.stdout.flush()
            sys.stdout.buffer.write(content)
            sys.stdout.buffer.flush()
        else:
            click.echo(content, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        out.write_bytes(content)
    else:
        out.write_text(content, encoding="utf-8")
    render.message(f"wrote {out} ({chosen})")


@cli.command()
@click.argument("name", required=False)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Figure file; the format follows the extension (.png, .svg, .pdf, ...) [default: NAME.png].",
)
@pass_settings
def view(settings: Settings, name: str | None, out: Path | None) -> None:
    """Run a plotting view declared under `views:` in the manifest and save its figure; without NAME,
    list the views.

    The view function is called with `pipe` (the open pipeline, for queries) and `out` (the file), each
    when it accepts it, and returns a matplotlib Figure that blobflow saves (or writes `out` itself).
    A view that raises is reported in one line and exits with status 1.

    \b
    Example:
      blobflow -p pipelines/blobs view blobs --out blobs.png
    """
    from blobflow import views
    from blobflow.manifest import load_pipeline

    pipeline = load_pipeline(settings.pipeline_path())
    if name is None:
        if not pipeline.views:
            render.message("the pipeline declares no views (add a 'views:' section to the manifest)")
            return
        render.print_rows(
            ["view", "function", "description"],
            [(v.name, f"{v.module}:{v.function}", v.description) for v in pipeline.views.values()],
        )
        return
    found = views.find_view(pipeline, name)  # an unknown name is refused before touching the database
    views.use_headless_backend()
    with settings.open() as pipe:
        result = views.run_view(pipe, found.name, out if out is not None else Path(f"{found.name}.png"))
    render.message(f"wrote {result.path}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="blobflow")


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (the write end of such a pipe polls as
    an error); False when stdout is not a file descriptor at all."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return False
    if not hasattr(select, "poll"):  # Windows: cannot tell, so not assumed
        return False
    poller = select.poll()
    poller.register(descriptor, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _database_failure(exc: sa.exc.DBAPIError) -> BlobflowError | None:
    """The user's error a database error stands for, or None: a bug of blobflow's."""
    if is_missing_table(exc):  # the manifest has a table that `init` has not created (yet)
        first_line = str(exc.orig).splitlines()[0]
        return UsageError(
            f"{first_line}: run `blobflow init` to create the pipeline's missing tables (or check --database)"
        )
    refused = refused_value(exc)  # in a condition of populate --where, delete, a key source
    if refused is not None:
        return refused
    if isinstance(exc, sa.exc.OperationalError):
        return ConnectionFailed(f"database error: {' '.join(str(exc.orig).split())}")
    return None


def _report_bug(exc: BaseException, debug: bool) -> None:
    text = f"unexpected {type(exc).__name__}: {exc} (a bug in blobflow; rerun with --debug for the traceback)"
    _report(exc, text, debug)


def _report(exc: BaseException, text: str, debug: bool) -> None:
    if debug:
        traceback.print_exception(exc)
    render.error(text)

"""The `llmring-usage` command line: demo, stats, logs, flush and doctor (click + rich).

Nothing in the library imports this module; click and rich are needed only here. Errors a user
can cause end with one `Error: ...` line and exit status 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import functools
import io
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from .config import (
    ENV_API_KEY,
    ENV_JOURNAL_PATH,
    ENV_SERVER_URL,
    LoggerConfig,
    check_server_url,
    default_journal_path,
)
from .delivery.exporter import LOGS_PATH, HttpExporter
from .delivery.journal import Journal
from .delivery.logger import UsageLogger
from .errors import AuthenticationError, DeliveryError, LLMRingUsageError
from .stats import (
    LogFilter,
    UsageStats,
    journal_logs,
    journal_stats,
    parse_when,
    pending_errors,
    server_log_row,
    server_pages,
    server_stats,
)

F = TypeVar("F", bound=Callable[..., Any])

STATS_PATH = "/api/v1/stats"
HEALTH_PATH = "/health"
_DEFAULT_HTTP_TIMEOUT_S = 10.0
_DEFAULT_FLUSH_TIMEOUT_S = 60.0
_DOCTOR_TIMEOUT_S = 5.0
_BAR_WIDTH = 32
_PIPE_WIDTH = 160
"""Rich's width when stdout is not a terminal (pipes, tests): wide enough not to wrap tables."""
LOG_FIELDS = (
    "time",
    "provider",
    "model",
    "alias",
    "origin",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost",
    "latency_ms",
    "state",
    "record_id",
    "id_at_origin",
    "usage_source",
    "error",
)


# --------------------------------------------------------------------------- plumbing


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else _PIPE_WIDTH, highlight=False)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _user_errors(func: F) -> F:
    """Turn the errors a user can cause into click's one-line `Error: ...` and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except LLMRingUsageError as exc:
            raise click.ClickException(_one_line(exc)) from None
        except (OSError, sqlite3.Error) as exc:
            raise click.ClickException(_one_line(f"{type(exc).__name__}: {exc}")) from None

    return wrapper  # type: ignore[return-value]


class _When(click.ParamType):  # type: ignore[type-arg]
    """A date, date-time or relative time (`7d`), as a UTC datetime."""

    name = "when"

    def __init__(self, *, end_of_range: bool) -> None:
        self.end_of_range = end_of_range

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(str(value), end_of_range=self.end_of_range)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _connection_options(func: F) -> F:
    func = click.option(
        "--journal",
        "journal_path",
        type=click.Path(path_type=Path),
        envvar=ENV_JOURNAL_PATH,
        help=f"Local journal file [env {ENV_JOURNAL_PATH}; default ~/.local/share/llmring-usage/usage.db].",
    )(func)
    func = click.option(
        "--api-key",
        envvar=ENV_API_KEY,
        help=f"API key for the server [env {ENV_API_KEY}]. Never printed.",
    )(func)
    func = click.option(
        "--server-url",
        envvar=ENV_SERVER_URL,
        help=f"llmring-server URL, e.g. http://127.0.0.1:8000 [env {ENV_SERVER_URL}].",
    )(func)
    return func


def _filter_options(func: F) -> F:
    func = click.option(
        "--until", type=_When(end_of_range=True), help="Up to this time (a bare date includes the whole day)."
    )(func)
    func = click.option(
        "--since",
        type=_When(end_of_range=False),
        help="From this time: 2025-01-31, 2025-01-31T14:00, 7d, 24h.",
    )(func)
    return func


def _journal_path(journal_path: Path | None) -> Path:
    return Path(journal_path).expanduser() if journal_path is not None else default_journal_path()


def _open_existing_journal(journal_path: Path | None) -> Journal:
    path = _journal_path(journal_path)
    if not path.exists():
        raise click.ClickException(
            f"no usage journal at {path} yet: run `llmring-usage demo` to make some records, "
            "or pass --journal"
        )
    if path.is_dir():
        raise click.ClickException(f"{path} is a directory, not a journal file: pass --journal FILE")
    return Journal(path)


def _server(server_url: str | None, api_key: str | None, *, purpose: str) -> tuple[str, str] | None:
    if not server_url:
        return None
    url = check_server_url(server_url)
    if not api_key:
        raise click.ClickException(f"{purpose} {url} needs an API key: pass --api-key or set {ENV_API_KEY}")
    return url, api_key


def _server_get(url: str, api_key: str, path: str, params: dict[str, Any] | None = None) -> Any:
    async def fetch() -> Any:
        exporter = HttpExporter(url, api_key, timeout_s=_DEFAULT_HTTP_TIMEOUT_S, max_connections=1)
        try:
            return await exporter.get_json(path, params)
        finally:
            await exporter.aclose()

    try:
        return asyncio.run(fetch())
    except AuthenticationError as exc:
        raise click.ClickException(f"{url}: {exc}: check --api-key or {ENV_API_KEY}") from None
    except DeliveryError as exc:
        raise click.ClickException(f"cannot read {path} from {url}: {_one_line(exc)}") from None
    except ValueError:
        raise click.ClickException(f"{url}{path} did not answer JSON: is this an llmring-server?") from None


class _ClickLogHandler(logging.Handler):
    """Library warnings as plain lines on stderr (resolved at emit time, so CliRunner sees them)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(_one_line(self.format(record)), err=True)


def _install_log_handler(ctx: click.Context) -> None:
    """Show the library's warnings for the length of one command (removed after it, for tests)."""
    library_logger = logging.getLogger("llmring_usage")
    handler = _ClickLogHandler(logging.WARNING)
    library_logger.addHandler(handler)
    ctx.call_on_close(lambda: library_logger.removeHandler(handler))


# --------------------------------------------------------------------------- formatting


def _cost(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1:
        return f"${value:,.2f}"
    if value >= 0.01:
        return f"${value:.4f}"
    return "$" + (f"{value:.7f}".rstrip("0").rstrip(".") or "0")


def _int(value: Any) -> str:
    return f"{int(value):,}" if value is not None else "-"


def _bar(value: float, maximum: float, width: int = _BAR_WIDTH) -> str:
    if maximum <= 0 or value <= 0:
        return ""
    eighths = max(int(round(value / maximum * width * 8)), 1)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[rest]


def _window(stats: UsageStats) -> str:
    if stats.since and stats.until:
        return f"from {stats.since} to {stats.until}"
    if stats.since:
        return f"since {stats.since}"
    if stats.until:
        return f"until {stats.until}"
    return "all records" if stats.source == "journal" else "last 30 days"


def _render_stats(console: Console, stats: UsageStats) -> None:
    where = "journal" if stats.source == "journal" else "server"
    console.print(f"[bold]Usage[/bold] from the {where} {escape(stats.location)} ({escape(_window(stats))})")
    summary = stats.summary
    if not summary["requests"]:
        console.print("No usage recorded in this window.")
        return
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("Requests", _int(summary["requests"]))
    table.add_row(
        "Tokens",
        f"{_int(summary['total_tokens'])} ({_int(summary.get('input_tokens'))} in, "
        f"{_int(summary.get('output_tokens'))} out"
        + (f", {_int(summary['cached_input_tokens'])} cached" if summary.get("cached_input_tokens") else "")
        + ")",
    )
    table.add_row("Cost", _cost(summary["cost"]))
    table.add_row("Models", _int(summary["unique_models"]))
    table.add_row("Origins", _int(summary["unique_origins"]))
    if summary.get("avg_latency_ms") is not None:
        table.add_row("Average latency", f"{summary['avg_latency_ms']:,.1f} ms")
    if summary.get("unpriced"):
        table.add_row("Unpriced requests", _int(summary["unpriced"]))
    if stats.source == "journal":
        table.add_row(
            "Journal states",
            f"{summary['delivered']} delivered, {summary['pending']} pending, {summary['rejected']} rejected",
        )
    console.print(table)
    for title, rows in (
        ("By model", stats.by_model),
        ("By provider", stats.by_provider),
        ("By origin", stats.by_origin),
        ("By alias", stats.by_alias),
    ):
        if rows:
            console.print(_group_table(title, rows))
    if stats.by_day:
        console.print(_day_table(stats.by_day))
    for note in stats.notes:
        console.print(f"[dim]Note: {escape(note)}[/dim]")


def _group_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column(title.split()[-1].capitalize())
    table.add_column("Requests", justify="right")
    table.add_column("Input tokens", justify="right")
    table.add_column("Output tokens", justify="right")
    table.add_column("Cost", justify="right")
    for row in rows:
        table.add_row(
            escape(str(row["name"])),
            _int(row["requests"]),
            _int(row.get("input_tokens")),
            _int(row.get("output_tokens")),
            _cost(row.get("cost")),
        )
    return table


def _day_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Requests per day (UTC)", title_justify="left", title_style="bold")
    table.add_column("Day")
    table.add_column("Requests", justify="right")
    table.add_column("Cost", justify="right")
    table.add_column("", no_wrap=True, style="cyan")
    peak = max(row["requests"] for row in rows)
    for row in rows:
        table.add_row(row["name"], _int(row["requests"]), _cost(row.get("cost")), _bar(row["requests"], peak))
    return table


def _logs_table(rows: list[dict[str, Any]], *, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for name, justify in (
        ("Time (UTC)", "left"),
        ("Model", "left"),
        ("Alias", "left"),
        ("Origin", "left"),
        ("In", "right"),
        ("Out", "right"),
        ("Cost", "right"),
        ("Latency", "right"),
        ("State", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        tokens_note = " (est.)" if row.get("usage_source") == "estimated" else ""
        table.add_row(
            str(row["time"]).replace("+00:00", "")[:19],
            escape(f"{row['provider']}:{row['model']}"),
            escape(row.get("alias") or ""),
            escape(row.get("origin") or ""),
            _int(row.get("input_tokens")) + tokens_note,
            _int(row.get("output_tokens")),
            _cost(row.get("cost")),
            f"{row['latency_ms']:,} ms" if row.get("latency_ms") is not None else "-",
            row.get("state") or "",
        )
    return table


# --------------------------------------------------------------------------- commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llmring-usage")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Usage records of LLM calls made through llmring: try it, read it, send it, check it.

    Records go to a local journal (the default) and, when a server is configured, to
    llmring-server. Start with `llmring-usage demo`.
    """
    _install_log_handler(ctx)


@cli.command()
@_connection_options
@click.option(
    "--simulate", is_flag=True, help="Use the local simulated provider even when a provider key is set."
)
@_user_errors
def demo(server_url: str | None, api_key: str | None, journal_path: Path | None, simulate: bool) -> None:
    """Make a few real llmring calls through with_usage_logging and show what they logged.

    Without OPENAI_API_KEY / ANTHROPIC_API_KEY (or with --simulate) the calls go to a local
    OpenAI/Anthropic-compatible endpoint on 127.0.0.1 with realistic answers and usage.
    """
    from ._demo import run_demo

    console = _console()
    server = _server(server_url, api_key, purpose="logging to")
    if server is not None:
        server_url, api_key = server
    result = run_demo(server_url=server_url, api_key=api_key, journal_path=journal_path, simulate=simulate)
    if result.simulated:
        reason = "--simulate was given" if simulate else "no provider key is set"
        console.print(
            f"[bold yellow]Simulated answers:[/bold yellow] {reason}, so "
            f"llmring's real OpenAI and Anthropic providers talk to a local endpoint at "
            f"{result.provider_url}. Token counts and prices are realistic; the text is canned and "
            "nothing leaves this machine."
        )
    else:
        console.print("[bold]Real calls[/bold] with your provider key(s) (at most 300 output tokens each).")
    for note in result.notes:
        console.print(f"[dim]{escape(note)}[/dim]")
    calls = Table(title="Calls made through with_usage_logging(LLMRingSession(...))", title_justify="left")
    calls.add_column("#", justify="right")
    calls.add_column("Method")
    calls.add_column("Model")
    calls.add_column("Result")
    for number, call in enumerate(result.calls, 1):
        outcome = f"[red]failed: {escape(call.error)}[/red]" if call.error else escape(call.detail)
        calls.add_row(str(number), call.method, escape(call.model_ref), outcome)
    console.print(calls)
    if not result.records:
        raise click.ClickException("no call succeeded, so nothing was logged (see the failures above)")
    console.print(_logs_table(result.records, title=f"Usage records written ({len(result.records)})"))
    requests = len(result.records)
    tokens = sum(r["input_tokens"] + r["output_tokens"] for r in result.records)
    costs = [r["cost"] for r in result.records if r["cost"] is not None]
    console.print(
        f"[bold]Total:[/bold] {requests} requests, {tokens:,} tokens, {_cost(sum(costs) if costs else None)}"
    )
    if any(r.get("usage_source") == "estimated" for r in result.records):
        console.print(
            "[dim](est.) llmring 1.4 reports no usage for OpenAI streams; the call is logged anyway "
            "with estimated tokens (metadata.usage_source = estimated).[/dim]"
        )
    console.print(f"Records are in the local journal [bold]{escape(str(result.journal_path))}[/bold]")
    if result.server_url:
        delivered = sum(1 for r in result.records if r["state"] == "delivered")
        console.print(f"and {delivered} of {requests} were delivered to {escape(result.server_url)}.")
        if delivered < requests:
            console.print("The others stay in the journal: `llmring-usage flush` sends them.")
        console.print(
            f"Look at them: llmring-usage stats --server-url {escape(result.server_url)} (with your API key)"
        )
    else:
        journal_option = (
            "" if result.journal_path == default_journal_path() else f" --journal {result.journal_path}"
        )
        if result.simulated and journal_option:
            console.print(
                "Simulated records have a journal of their own, so they never reach a real server "
                "that later reads the default journal."
            )
        console.print(
            "No server configured, so they stay there (the embedded default). Look at them: "
            f"`llmring-usage stats{escape(journal_option)}`, `llmring-usage logs{escape(journal_option)}`."
        )
        console.print(
            "[dim]pending = kept in the journal, not yet on a server: a logger with a server that opens "
            "this journal, or `llmring-usage flush --server-url ...`, sends them.[/dim]"
        )


@cli.command()
@_connection_options
@_filter_options
@click.option("--local", is_flag=True, help="Read the local journal even when a server is configured.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@_user_errors
def stats(
    server_url: str | None,
    api_key: str | None,
    journal_path: Path | None,
    since: datetime | None,
    until: datetime | None,
    local: bool,
    as_json: bool,
) -> None:
    """Totals and breakdowns by model, provider, origin, alias and day.

    From the local journal, or from the server's /api/v1/stats when a server URL is given.
    """
    filters = LogFilter(since=since, until=until)
    server = None if local else _server(server_url, api_key, purpose="reading from")
    if server is not None:
        url, key = server
        body = _server_get(url, key, STATS_PATH, filters.server_params())
        result = server_stats(body, location=url, filters=filters)
    else:
        journal = _open_existing_journal(journal_path)
        try:
            result = journal_stats(journal, filters)
        finally:
            journal.close()
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    _render_stats(_console(), result)


@cli.command()
@_connection_options
@_filter_options
@click.option("--origin", help="Only records of this origin.")
@click.option("--model", help="Only this model (`gpt-4o-mini` or `openai:gpt-4o-mini`).")
@click.option("--alias", help="Only records made through this alias.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many records.")
@click.option("--local", is_flag=True, help="Read the local journal even when a server is configured.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the records as CSV.")
@_user_errors
def logs(
    server_url: str | None,
    api_key: str | None,
    journal_path: Path | None,
    since: datetime | None,
    until: datetime | None,
    origin: str | None,
    model: str | None,
    alias: str | None,
    limit: int,
    local: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Recent usage records, newest first, from the local journal or the server's /api/v1/logs."""
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    filters = LogFilter(since=since, until=until, origin=origin, model=model, alias=alias)
    server = None if local else _server(server_url, api_key, purpose="reading from")
    if server is not None:
        url, key = server
        rows: list[dict[str, Any]] = []
        for offset, size in server_pages(limit):
            page = _server_get(
                url, key, LOGS_PATH, {**filters.server_params(), "limit": size, "offset": offset}
            )
            rows += [server_log_row(entry) for entry in page]
            if len(page) < size:
                break
        source = url
    else:
        journal = _open_existing_journal(journal_path)
        try:
            rows = journal_logs(journal, filters, limit=limit)
        finally:
            journal.close()
        source = str(journal.path)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if as_csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=LOG_FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
        return
    console = _console()
    if not rows:
        console.print(f"No records match in {escape(source)}.")
        return
    console.print(_logs_table(rows, title=f"{len(rows)} most recent records from {escape(source)}"))


@cli.command()
@_connection_options
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0.1),
    default=_DEFAULT_FLUSH_TIMEOUT_S,
    show_default=True,
    help="Seconds to keep trying.",
)
@_user_errors
def flush(server_url: str | None, api_key: str | None, journal_path: Path | None, timeout_s: float) -> None:
    """Send every pending record of a journal to the server; exit 1 if some stay pending."""
    server = _server(server_url, api_key, purpose="sending to")
    if server is None:
        raise click.UsageError(f"flush needs a server: pass --server-url or set {ENV_SERVER_URL}")
    url, key = server
    journal = _open_existing_journal(journal_path)
    before = journal.counts()
    journal.close()
    console = _console()
    if before.pending == 0:
        console.print(f"Nothing to send: no pending records in {escape(str(journal.path))}.")
        return
    config = LoggerConfig(server_url=url, api_key=key, journal_path=journal.path, delivery="background")
    library_logger = logging.getLogger("llmring_usage")
    previous_level = library_logger.level
    library_logger.setLevel(logging.ERROR)  # the report below says why records stay pending
    usage_logger = UsageLogger(config)
    try:
        with (
            Progress(
                TextColumn("Sending to " + escape(url)),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            task = progress.add_task("flush", total=before.pending)
            future = pool.submit(usage_logger.flush, timeout_s)
            while not future.done():
                # The logger's counters, not the journal: a count query ten times a second over a
                # large journal would compete with the sends it reports on.
                counts = usage_logger.counters.snapshot()
                progress.update(task, completed=counts["sent"] + counts["deduplicated"] + counts["rejected"])
                time.sleep(0.1)
            future.result()
            after = usage_logger.journal.counts()
            progress.update(task, completed=before.pending - after.pending)
        reasons = pending_errors(usage_logger.journal) if after.pending else []
    finally:
        usage_logger.close(timeout_s=1.0)
        library_logger.setLevel(previous_level)
    delivered = after.delivered - before.delivered
    rejected = after.rejected - before.rejected
    console.print(
        f"[bold]Delivered {delivered}[/bold], pending {after.pending}, rejected {rejected} "
        f"(journal {escape(str(journal.path))})"
    )
    if rejected:
        console.print(
            "Rejected records were refused by the server; their reasons are in `llmring-usage logs --json`."
        )
    if after.pending:
        for reason, count in reasons[:3]:
            console.print(f"  {count} pending: {escape(reason)}")
        raise click.ClickException(
            f"{after.pending} record(s) are still pending in {journal.path}; "
            "fix the cause above and run flush again"
        )


# --------------------------------------------------------------------------- doctor


class _Checks:
    """The doctor's lines: each OK, WARN, FAIL or INFO with what to do."""

    STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red", "info": "cyan"}

    def __init__(self, console: Console) -> None:
        self.console = console
        self.failures = 0

    def add(self, status: str, name: str, message: str) -> None:
        if status == "fail":
            self.failures += 1
        style = self.STYLES[status]
        self.console.print(f"[{style}]{status.upper():<5}[/{style}] {name:<9} {escape(message)}")


@cli.command()
@_connection_options
@click.option(
    "--lockfile",
    type=click.Path(path_type=Path),
    envvar="LLMRING_LOCKFILE_PATH",
    help="llmring lockfile whose models to price [env LLMRING_LOCKFILE_PATH; default ./llmring.lock].",
)
@click.option("--registry-url", help="llmring registry to price from (default: llmring's public registry).")
@click.option(
    "--model", "models", multiple=True, help="Also check the price of this provider:model (repeatable)."
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0.1),
    default=_DOCTOR_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for the server.",
)
@_user_errors
def doctor(
    server_url: str | None,
    api_key: str | None,
    journal_path: Path | None,
    lockfile: Path | None,
    registry_url: str | None,
    models: tuple[str, ...],
    timeout_s: float,
) -> None:
    """Check the server, its /health, the API key, pricing and the journal; exit 1 if one fails."""
    checks = _Checks(_console())
    url = _doctor_server(checks, server_url, api_key, timeout_s)
    _doctor_pricing(checks, lockfile, registry_url, models)
    _doctor_journal(checks, journal_path, server_configured=url is not None)
    if checks.failures:
        raise click.ClickException(f"{checks.failures} check(s) failed; see the lines above")
    checks.console.print("All checks passed.")


def _doctor_server(
    checks: _Checks, server_url: str | None, api_key: str | None, timeout_s: float
) -> str | None:
    if not server_url:
        checks.add(
            "info",
            "server",
            "none configured: records stay in the local journal "
            f"(set --server-url or {ENV_SERVER_URL} to send them)",
        )
        return None
    try:
        url = check_server_url(server_url)
    except LLMRingUsageError as exc:
        checks.add("fail", "server", f"{exc}: fix --server-url or {ENV_SERVER_URL}")
        return None
    with httpx.Client(base_url=url, timeout=timeout_s, headers={"User-Agent": "llmring-usage"}) as client:
        try:
            health = client.get(HEALTH_PATH)
        except httpx.ConnectError as exc:
            checks.add(
                "fail",
                "server",
                f"cannot connect to {url} ({_one_line(exc)}): is llmring-server running there?",
            )
            checks.add("info", "API key", "not checked: the server did not answer")
            return url
        except httpx.TimeoutException:
            checks.add(
                "fail", "server", f"{url} did not answer within {timeout_s:g} s: is it overloaded or hung?"
            )
            checks.add("info", "API key", "not checked: the server did not answer")
            return url
        except httpx.HTTPError as exc:
            checks.add("fail", "server", f"cannot talk to {url}: {_one_line(exc)}")
            checks.add("info", "API key", "not checked: the server did not answer")
            return url
        checks.add("ok", "server", f"{url} is reachable")
        status = None
        if health.status_code == 200:
            try:
                body = health.json()
                status = body.get("status") if isinstance(body, dict) else None
            except ValueError:
                pass
        if status == "healthy":
            checks.add("ok", "/health", f"healthy (database {body.get('database', 'connected')})")
        elif status is not None:
            checks.add(
                "fail", "/health", f"the server says {status!r}: check its database ({body.get('database')})"
            )
        else:
            checks.add(
                "fail",
                "/health",
                f"HTTP {health.status_code} without an llmring-server answer: is the URL right?",
            )
        if not api_key:
            checks.add("fail", "API key", f"none given: pass --api-key or set {ENV_API_KEY}")
            return url
        try:
            answer = client.get(LOGS_PATH, params={"limit": 1}, headers={"X-API-Key": api_key})
        except httpx.HTTPError as exc:
            checks.add("fail", "API key", f"could not be checked: {_one_line(exc)}")
            return url
        if answer.status_code == 200:
            checks.add("ok", "API key", "accepted (GET /api/v1/logs?limit=1)")
        elif answer.status_code in (401, 403):
            checks.add(
                "fail",
                "API key",
                f"refused by the server (HTTP {answer.status_code}): check --api-key or {ENV_API_KEY}; "
                "records are kept in the journal until a valid key sends them",
            )
        else:
            checks.add("fail", "API key", f"GET /api/v1/logs answered HTTP {answer.status_code}")
    return url


def _lockfile_models(checks: _Checks, lockfile: Path | None) -> list[str] | None:
    path = lockfile or (Path("llmring.lock") if Path("llmring.lock").exists() else None)
    if path is None:
        return None
    if not path.is_file():
        checks.add("fail", "pricing", f"lockfile {path} not found: fix --lockfile or LLMRING_LOCKFILE_PATH")
        return []
    try:
        from llmring.lockfile_core import Lockfile

        loaded = Lockfile.load(path)
    except Exception as exc:  # a broken lockfile is the user's to fix: say what is wrong
        checks.add("fail", "pricing", f"cannot read lockfile {path}: {_one_line(exc)}")
        return []
    refs = [ref for profile in loaded.profiles.values() for b in profile.bindings for ref in b.models]
    checks.add("info", "pricing", f"{len(set(refs))} model(s) bound in {path}")
    return refs


def _doctor_pricing(
    checks: _Checks, lockfile: Path | None, registry_url: str | None, models: tuple[str, ...]
) -> None:
    refs = list(models)
    from_lockfile = _lockfile_models(checks, lockfile)
    if from_lockfile:
        refs += from_lockfile
    if not refs:
        if from_lockfile is None:
            checks.add(
                "info",
                "pricing",
                "no lockfile here (./llmring.lock or LLMRING_LOCKFILE_PATH): pass --lockfile or "
                "--model provider:model to check prices",
            )
        return
    for ref, status, message in asyncio.run(_prices(list(dict.fromkeys(refs)), registry_url)):
        checks.add(status, "pricing", f"{ref}: {message}")


async def _prices(refs: list[str], registry_url: str | None) -> list[tuple[str, str, str]]:
    import tempfile

    from llmring.registry import RegistryClient
    from llmring.schemas import LLMResponse
    from llmring.services.cost_calculator import CostCalculator

    results: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="llmring-usage-doctor-") as tmp:
        try:
            # A registry given here must not land in llmring's shared per-provider cache.
            registry = RegistryClient(
                registry_url=registry_url, cache_dir=Path(tmp) if registry_url else None
            )
        except ValueError as exc:
            return [(ref, "fail", f"bad --registry-url: {_one_line(exc)}") for ref in refs]
        calculator = CostCalculator(registry)
        catalogues: dict[str, Any] = {}
        for ref in refs:
            if ":" not in ref:
                results.append(
                    (ref, "fail", "not a model reference: use provider:model, e.g. openai:gpt-4o-mini")
                )
                continue
            provider, model = ref.split(":", 1)
            if provider == "ollama":
                results.append((ref, "info", "a local Ollama model: its records carry no cost"))
                continue
            if provider not in catalogues:
                try:
                    catalogues[provider] = await registry.fetch_current_models(provider)
                except Exception as exc:
                    catalogues[provider] = exc
            catalogue = catalogues[provider]
            if isinstance(catalogue, Exception):
                results.append(
                    (
                        ref,
                        "fail",
                        f"cannot read the {provider} registry at {registry.registry_url} "
                        f"({_one_line(catalogue)[:160]}): check the network, or pass --registry-url",
                    )
                )
                continue
            if not any(entry.model_name == model for entry in catalogue):
                results.append(
                    (
                        ref,
                        "fail",
                        f"unknown model: not in the {provider} registry; check the name in your lockfile",
                    )
                )
                continue
            response = LLMResponse(
                content="", model=ref, usage={"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}
            )
            cost = await calculator.calculate_cost(response)
            if not cost:
                results.append((ref, "fail", "no price in the registry: its records will carry no cost"))
                continue
            results.append(
                (
                    ref,
                    "ok",
                    f"${cost['cost_per_million_input']:g} in / ${cost['cost_per_million_output']:g} out "
                    "per million tokens",
                )
            )
    return results


def _doctor_journal(checks: _Checks, journal_path: Path | None, *, server_configured: bool) -> None:
    path = _journal_path(journal_path)
    if path.exists():
        if path.is_dir():
            checks.add(
                "fail", "journal", f"{path} is a directory: set --journal or {ENV_JOURNAL_PATH} to a file"
            )
            return
        if not os.access(path, os.R_OK | os.W_OK):
            checks.add(
                "fail", "journal", f"{path} is not writable: fix its permissions or set {ENV_JOURNAL_PATH}"
            )
            return
        try:
            journal = Journal(path)
        except LLMRingUsageError as exc:
            checks.add("fail", "journal", f"{_one_line(exc)}: move it away or set {ENV_JOURNAL_PATH}")
            return
        try:
            counts = journal.counts()
        finally:
            journal.close()
        summary = f"{counts.pending} pending, {counts.delivered} delivered, {counts.rejected} rejected"
        if counts.pending and server_configured:
            checks.add("warn", "journal", f"{path} is writable; {summary}: `llmring-usage flush` sends them")
        else:
            checks.add("ok", "journal", f"{path} is writable; {summary}")
        return
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.is_dir() and os.access(ancestor, os.W_OK | os.X_OK):
        checks.add("ok", "journal", f"{path} will be created at the first record")
    else:
        checks.add(
            "fail",
            "journal",
            f"cannot create {path} ({ancestor} is not a writable directory): set {ENV_JOURNAL_PATH}",
        )


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="llmring-usage")


if __name__ == "__main__":
    main()

"""The `llmring-usage` command line without a server: demo, stats, logs, doctor and user errors."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from llmring_usage import Journal, UsageRecord
from llmring_usage.cli import cli
from llmring_usage.stats import parse_when
from llmring_usage.testing import write_lockfile, write_registry

TWO_DAYS_S = 2 * 86400

# Known records: (provider, model, input, output, cost, origin, alias, latency_ms, days ago)
KNOWN = [
    ("openai", "gpt-4o-mini", 14, 286, 0.0001737, "app-a", "fast", 100, 0),
    ("openai", "gpt-4o-mini", 14, 286, 0.0001737, "app-b", None, 120, 0),
    ("anthropic", "claude-haiku-4-5-20251001", 100, 50, 0.00035, "app-a", "smart", 300, 0),
    ("openai", "gpt-4o", 1000, 500, 0.0075, "app-b", None, 480, 2),
]
TOTAL_REQUESTS = 4
TOTAL_INPUT = 14 + 14 + 100 + 1000
TOTAL_OUTPUT = 286 + 286 + 50 + 500
TOTAL_COST = 0.0001737 * 2 + 0.00035 + 0.0075  # 0.0081974


def make_record(
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cost: float | None,
    origin: str,
    alias: str | None,
    latency_ms: int,
) -> UsageRecord:
    return UsageRecord(
        model=model,
        provider=provider,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=cost,
        origin=origin,
        alias=alias,
        latency_ms=latency_ms,
        metadata={"record_id": uuid.uuid4().hex, "model_alias": f"{provider}:{model}"},
    )


def write_known_journal(path: Path) -> Path:
    """A journal holding KNOWN, the last one dated two days back (UTC)."""
    journal = Journal(path)
    try:
        for *fields, days_ago in KNOWN:
            record = make_record(*fields)
            journal.append([record])
            if days_ago:
                journal._connection.execute(
                    "UPDATE records SET created_at = created_at - ? WHERE record_id = ?",
                    (days_ago * 86400, record.record_id),
                )
    finally:
        journal.close()
    return path


@pytest.fixture
def known_journal(tmp_path: Path) -> Path:
    return write_known_journal(tmp_path / "known.db")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def assert_user_error(result: Result, *fragments: str) -> None:
    """Exit status 1, one `Error:` line naming the problem, and no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, result.output
    for fragment in fragments:
        assert fragment in error_lines[0], result.output


def cli_command() -> list[str]:
    script = Path(sys.executable).with_name("llmring-usage")
    return [str(script)] if script.exists() else [sys.executable, "-m", "llmring_usage.cli"]


def fresh_env(home: Path) -> dict[str, str]:
    """The environment of a user who just installed: a new HOME, no keys, no llmring settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LLMRING_", "XDG_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_"))
    }
    env["HOME"] = str(home)
    return env


def journal_rows(path: Path) -> list[dict[str, Any]]:
    journal = Journal(path)
    try:
        return journal.query("SELECT * FROM records ORDER BY seq")
    finally:
        journal.close()


class TestDemo:
    """`llmring-usage demo` on a machine with no key, no server and no network."""

    def test_demo_in_process_logs_every_call_to_the_journal(self, tmp_path: Path) -> None:
        """The demo's calls (plain, alias, stream, conversation) each leave one journaled record."""
        journal = tmp_path / "demo.db"
        result = invoke("demo", "--journal", str(journal))
        assert result.exit_code == 0, result.output
        assert "Simulated answers" in result.output
        assert str(journal) in result.output
        rows = journal_rows(journal)
        assert len(rows) == 5
        assert {row["origin"] for row in rows} == {"llmring-usage-demo"}
        assert [row["alias"] for row in rows].count("fast") == 1
        assert [row["alias"] for row in rows].count("smart") == 1
        bodies = [json.loads(row["body"]) for row in rows]
        assert sum(1 for body in bodies if body.get("id_at_origin")) == 1
        assert all(body["metadata"]["simulated"] is True for body in bodies)
        assert all(row["cost"] and row["cost"] > 0 for row in rows)

    def test_demo_leaves_the_environment_and_registry_cache_as_they_were(self, tmp_path: Path) -> None:
        """The fake provider's variables and llmring's cache directory are restored afterwards."""
        from llmring.registry import RegistryClient

        cache_dir = RegistryClient.CACHE_DIR
        assert invoke("demo", "--journal", str(tmp_path / "demo.db")).exit_code == 0
        assert "OPENAI_BASE_URL" not in os.environ and "OPENAI_API_KEY" not in os.environ
        assert RegistryClient.CACHE_DIR == cache_dir

    def test_demo_as_a_subprocess_on_a_fresh_home(self, tmp_path: Path) -> None:
        """The console script on a new HOME exits 0 and fills the simulated demo's own journal."""
        home = tmp_path / "fresh-home"
        home.mkdir()
        completed = subprocess.run(
            [*cli_command(), "demo"],
            env=fresh_env(home),
            cwd=home,
            capture_output=True,
            text=True,
            timeout=180,
        )
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, output
        assert "Traceback" not in output
        journal = home / ".local" / "share" / "llmring-usage" / "demo.db"
        assert journal.exists(), output
        assert len(journal_rows(journal)) == 5
        # Made-up usage never lands in the default journal, which a real server may later read.
        assert not (home / ".local" / "share" / "llmring-usage" / "usage.db").exists()
        assert f"llmring-usage stats --journal {journal}" in " ".join(output.split())
        # llmring's registry cache of the user was not touched (the demo used a temporary one).
        assert not list((home / ".cache").glob("llmring/registry/*.json"))

    def test_bad_server_url_is_one_clear_line(self) -> None:
        """A server URL that is not http(s) ends the demo with one error line."""
        result = CliRunner().invoke(cli, ["demo", "--server-url", "ftp://example.com", "--api-key", "k"])
        assert_user_error(result, "http:// or https://", "ftp://example.com")

    def test_server_without_key_is_one_clear_line(self) -> None:
        """A server URL with no API key says how to give one, without printing any key."""
        result = CliRunner().invoke(cli, ["demo", "--server-url", "http://127.0.0.1:9"])
        assert_user_error(result, "needs an API key", "--api-key")


class TestStats:
    """`llmring-usage stats` over a journal with known records."""

    def test_json_totals_and_breakdowns(self, known_journal: Path) -> None:
        """--json gives the exact totals and per-model, provider, origin, alias and day figures."""
        result = invoke("stats", "--journal", str(known_journal), "--json")
        assert result.exit_code == 0, result.output
        stats = json.loads(result.output)
        summary = stats["summary"]
        assert summary["requests"] == TOTAL_REQUESTS
        assert summary["input_tokens"] == TOTAL_INPUT
        assert summary["output_tokens"] == TOTAL_OUTPUT
        assert summary["total_tokens"] == TOTAL_INPUT + TOTAL_OUTPUT
        assert summary["cost"] == pytest.approx(TOTAL_COST)
        assert summary["unique_models"] == 3 and summary["unique_origins"] == 2
        assert summary["pending"] == 4 and summary["delivered"] == 0
        assert summary["avg_latency_ms"] == pytest.approx((100 + 120 + 300 + 480) / 4)
        by_model = {row["name"]: row for row in stats["by_model"]}
        assert by_model["openai:gpt-4o-mini"]["requests"] == 2
        assert by_model["openai:gpt-4o-mini"]["cost"] == pytest.approx(2 * 0.0001737)
        assert by_model["openai:gpt-4o"]["input_tokens"] == 1000
        by_provider = {row["name"]: row["requests"] for row in stats["by_provider"]}
        assert by_provider == {"openai": 3, "anthropic": 1}
        by_origin = {row["name"]: row["requests"] for row in stats["by_origin"]}
        assert by_origin == {"app-a": 2, "app-b": 2}
        by_alias = {row["name"]: row["requests"] for row in stats["by_alias"]}
        assert by_alias == {"fast": 1, "smart": 1}
        assert [day["requests"] for day in stats["by_day"]] == [1, 3]

    def test_table_shows_the_totals(self, known_journal: Path) -> None:
        """The rich output prints the request count, tokens and cost, and a per-day bar chart."""
        result = invoke("stats", "--journal", str(known_journal))
        assert result.exit_code == 0, result.output
        assert "2,250 (1,128 in, 1,122 out)" in result.output
        assert "$0.0081974" in result.output
        for title in ("By model", "By provider", "By origin", "By alias", "Requests per day"):
            assert title in result.output
        assert "█" in result.output

    def test_since_keeps_the_window(self, known_journal: Path) -> None:
        """--since 1d leaves out the record dated two days back."""
        result = invoke("stats", "--journal", str(known_journal), "--since", "1d", "--json")
        summary = json.loads(result.output)["summary"]
        assert summary["requests"] == 3
        assert summary["cost"] == pytest.approx(TOTAL_COST - 0.0075)

    def test_until_a_past_day_sees_only_that_day(self, known_journal: Path) -> None:
        """A bare date for --until includes that whole UTC day and nothing after."""
        two_days_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - TWO_DAYS_S))
        result = invoke("stats", "--journal", str(known_journal), "--until", two_days_ago, "--json")
        assert json.loads(result.output)["summary"]["requests"] == 1

    def test_empty_window_says_so(self, known_journal: Path) -> None:
        """A window with no records prints a plain sentence, exit 0."""
        result = invoke("stats", "--journal", str(known_journal), "--until", "2000-01-01")
        assert result.exit_code == 0
        assert "No usage recorded" in result.output

    def test_missing_journal_is_one_clear_line(self, tmp_path: Path) -> None:
        """Reading a journal that does not exist says so and suggests the demo."""
        result = CliRunner().invoke(cli, ["stats", "--journal", str(tmp_path / "none.db")])
        assert_user_error(result, "no usage journal", "llmring-usage demo")
        assert not (tmp_path / "none.db").exists()

    def test_unreadable_journal_is_one_clear_line(self, tmp_path: Path) -> None:
        """A file that is not a journal gives one error line, no traceback."""
        bogus = tmp_path / "bogus.db"
        bogus.write_text("this is not sqlite " * 100)
        result = CliRunner().invoke(cli, ["stats", "--journal", str(bogus)])
        assert_user_error(result, "cannot open the usage journal", str(bogus))

    def test_bad_date_is_a_usage_error(self, known_journal: Path) -> None:
        """An unparseable --since is refused by click with the accepted forms."""
        result = CliRunner().invoke(cli, ["stats", "--journal", str(known_journal), "--since", "soon"])
        assert result.exit_code == 2
        assert "7d" in result.output and "Traceback" not in result.output

    def test_bad_server_url_is_one_clear_line(self) -> None:
        """stats --server-url with a non-http URL ends with one error line."""
        result = CliRunner().invoke(cli, ["stats", "--server-url", "localhost:8000", "--api-key", "k"])
        assert_user_error(result, "http:// or https://")

    def test_dead_server_is_one_clear_line(self, refusing_port: Any) -> None:
        """A server that refuses connections gives one error line, no traceback."""
        result = CliRunner().invoke(cli, ["stats", "--server-url", refusing_port.url, "--api-key", "k"])
        assert_user_error(result, "cannot read /api/v1/stats", refusing_port.url)

    def test_local_flag_reads_the_journal_despite_a_server(self, known_journal: Path) -> None:
        """--local ignores LLMRING_SERVER_URL and reads the journal."""
        result = CliRunner(env={"LLMRING_SERVER_URL": "http://127.0.0.1:9"}).invoke(
            cli, ["stats", "--local", "--journal", str(known_journal), "--json"]
        )
        assert json.loads(result.output)["summary"]["requests"] == TOTAL_REQUESTS


class TestLogs:
    """`llmring-usage logs` over a journal with known records."""

    def test_json_lists_newest_first(self, known_journal: Path) -> None:
        """--json gives every record, newest first, with its tokens and cost."""
        rows = json.loads(invoke("logs", "--journal", str(known_journal), "--json").output)
        assert len(rows) == TOTAL_REQUESTS
        assert rows[-1]["model"] == "gpt-4o"  # dated two days back
        assert sum(row["input_tokens"] for row in rows) == TOTAL_INPUT
        assert sum(row["cost"] for row in rows) == pytest.approx(TOTAL_COST)
        assert rows[0]["state"] == "pending" and rows[0]["record_id"]

    @pytest.mark.parametrize(
        ("option", "value", "expected"),
        [
            ("--origin", "app-b", 2),
            ("--model", "gpt-4o-mini", 2),
            ("--model", "openai:gpt-4o", 1),
            ("--alias", "smart", 1),
            ("--since", "1d", 3),
        ],
    )
    def test_filters(self, known_journal: Path, option: str, value: str, expected: int) -> None:
        """Each filter keeps exactly the matching records."""
        rows = json.loads(invoke("logs", "--journal", str(known_journal), option, value, "--json").output)
        assert len(rows) == expected
        if option == "--origin":
            assert {row["origin"] for row in rows} == {value}

    def test_limit(self, known_journal: Path) -> None:
        """--limit 2 returns the two newest records."""
        rows = json.loads(invoke("logs", "--journal", str(known_journal), "--limit", "2", "--json").output)
        assert len(rows) == 2

    def test_csv_has_a_header_and_one_row_per_record(self, known_journal: Path) -> None:
        """--csv prints a header line and one parseable row per record."""
        result = invoke("logs", "--journal", str(known_journal), "--csv")
        rows = list(csv.DictReader(io.StringIO(result.output)))
        assert result.output.splitlines()[0].startswith("time,provider,model,alias,origin,input_tokens")
        assert len(rows) == TOTAL_REQUESTS
        assert sum(int(row["output_tokens"]) for row in rows) == TOTAL_OUTPUT
        assert sum(float(row["cost"]) for row in rows) == pytest.approx(TOTAL_COST)

    def test_table_shows_models_and_costs(self, known_journal: Path) -> None:
        """The default table names each model with its provider and shows its cost."""
        result = invoke("logs", "--journal", str(known_journal))
        assert "anthropic:claude-haiku-4-5-20251001" in result.output
        assert "$0.0075" in result.output and "$0.0001737" in result.output

    def test_json_and_csv_together_is_a_usage_error(self, known_journal: Path) -> None:
        """Asking for both formats is refused."""
        result = CliRunner().invoke(cli, ["logs", "--journal", str(known_journal), "--json", "--csv"])
        assert result.exit_code == 2 and "Traceback" not in result.output

    def test_logs_as_a_subprocess(self, known_journal: Path, tmp_path: Path) -> None:
        """The installed command prints CSV the same way from a real process."""
        home = tmp_path / "sub-home"
        home.mkdir()
        completed = subprocess.run(
            [*cli_command(), "logs", "--journal", str(known_journal), "--csv", "--origin", "app-a"],
            env=fresh_env(home),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert completed.returncode == 0, completed.stderr
        rows = list(csv.DictReader(io.StringIO(completed.stdout)))
        assert sorted(row["alias"] for row in rows) == ["fast", "smart"]


class TestFlushWithoutServer:
    """`llmring-usage flush` errors that need no server."""

    def test_needs_a_server(self, known_journal: Path) -> None:
        """Without --server-url flush says what is missing."""
        result = CliRunner().invoke(cli, ["flush", "--journal", str(known_journal)])
        assert result.exit_code == 2 and "--server-url" in result.output

    def test_dead_server_keeps_records_and_exits_non_zero(
        self, known_journal: Path, refusing_port: Any
    ) -> None:
        """When nothing can be delivered the report says so, the records stay, the exit is 1."""
        result = CliRunner().invoke(
            cli,
            ["flush", "--journal", str(known_journal), "--server-url", refusing_port.url]
            + ["--api-key", "k", "--timeout", "3"],
        )
        assert_user_error(result, "4 record(s) are still pending")
        assert "Delivered 0, pending 4, rejected 0" in result.output
        assert "cannot reach" in result.output
        assert all(row["state"] == "pending" for row in journal_rows(known_journal))


class TestDoctorWithoutServer:
    """`llmring-usage doctor` on checks that need no llmring-server."""

    def test_no_server_is_fine(self, tmp_path: Path) -> None:
        """With no server configured doctor explains the embedded default and passes."""
        result = invoke("doctor", "--journal", str(tmp_path / "new" / "usage.db"))
        assert result.exit_code == 0, result.output
        assert "none configured" in result.output
        assert "will be created" in result.output

    def test_dead_server_fails(self, refusing_port: Any, tmp_path: Path) -> None:
        """A refused connection is a FAIL line and exit 1."""
        result = CliRunner().invoke(
            cli,
            ["doctor", "--server-url", refusing_port.url, "--api-key", "k"]
            + ["--journal", str(tmp_path / "usage.db")],
        )
        assert_user_error(result, "1 check(s) failed")
        assert "FAIL  server    cannot connect to " + refusing_port.url in result.output

    def test_prices_the_lockfile_models(self, tmp_path: Path) -> None:
        """Every model of the lockfile is priced from the registry: OK with its prices."""
        registry_url = write_registry(tmp_path / "registry")
        lockfile = write_lockfile(tmp_path / "llmring.lock")
        result = invoke(
            "doctor", "--lockfile", str(lockfile), "--registry-url", registry_url,
            "--journal", str(tmp_path / "usage.db"),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "openai:gpt-4o-mini: $0.15 in / $0.6 out per million tokens" in result.output
        assert "anthropic:claude-haiku-4-5-20251001: $1 in / $5 out" in result.output

    def test_unknown_model_fails(self, tmp_path: Path) -> None:
        """A model missing from the registry is a FAIL line saying it is unknown."""
        registry_url = write_registry(tmp_path / "registry")
        result = CliRunner().invoke(
            cli,
            ["doctor", "--registry-url", registry_url, "--model", "openai:gpt-99-imaginary"]
            + ["--journal", str(tmp_path / "usage.db")],
        )
        assert_user_error(result, "1 check(s) failed")
        assert "openai:gpt-99-imaginary: unknown model" in result.output

    def test_pending_records_are_reported(self, known_journal: Path) -> None:
        """The journal line gives the pending count."""
        result = invoke("doctor", "--journal", str(known_journal))
        assert "4 pending, 0 delivered, 0 rejected" in result.output

    def test_uncreatable_journal_fails(self, tmp_path: Path) -> None:
        """A journal path that cannot be created (a file stands where a directory must) is a FAIL."""
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        result = CliRunner().invoke(cli, ["doctor", "--journal", str(blocker / "sub" / "usage.db")])
        assert_user_error(result, "1 check(s) failed")
        assert "is not a writable directory" in result.output

    def test_journal_that_is_not_sqlite_fails(self, tmp_path: Path) -> None:
        """A journal file that is not a database is a FAIL line, not a traceback."""
        bogus = tmp_path / "bogus.db"
        bogus.write_text("not a database " * 100)
        result = CliRunner().invoke(cli, ["doctor", "--journal", str(bogus)])
        assert_user_error(result, "1 check(s) failed")
        assert "cannot open the usage journal" in result.output


class TestParseWhen:
    """Dates given to --since / --until."""

    def test_forms(self) -> None:
        """Dates, date-times, relative times and keywords parse to UTC datetimes."""
        from datetime import datetime, timezone

        now = datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc)
        assert parse_when("2025-03-01", now=now) == datetime(2025, 3, 1, tzinfo=timezone.utc)
        assert parse_when("2025-03-01", end_of_range=True, now=now).hour == 23
        assert parse_when("7d", now=now) == datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)
        assert parse_when("yesterday", now=now) == datetime(2025, 3, 9, tzinfo=timezone.utc)
        assert parse_when("2025-03-01T10:00+02:00", now=now).hour == 8
        with pytest.raises(ValueError):
            parse_when("next tuesday", now=now)


class TestInstallation:
    """What the command line needs from the installed environment."""

    def test_sqlite_has_json_extract(self) -> None:
        """The journal queries use json_extract, which this Python's SQLite must have."""
        row = sqlite3.connect(":memory:").execute("SELECT json_extract('{\"a\": 1}', '$.a')").fetchone()
        assert row == (1,)

    def test_console_script_is_installed(self) -> None:
        """`llmring-usage` is installed next to the interpreter (pyproject's console script)."""
        assert Path(sys.executable).with_name("llmring-usage").exists() or shutil.which("llmring-usage")

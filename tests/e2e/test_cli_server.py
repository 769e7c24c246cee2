"""The `llmring-usage` command line against the real llmring-server: flush, stats, logs, doctor, demo."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support.server import RealServer, run_sync
from click.testing import CliRunner, Result

from llmring_usage import Journal, UsageRecord
from llmring_usage.cli import cli

pytestmark = pytest.mark.server

COST = 0.0001737


def pending_journal(path: Path, count: int, *, origin: str = "cli-e2e") -> list[str]:
    """Write `count` pending gpt-4o-mini records (14 in, 286 out) to a journal; return their ids."""
    records = [
        UsageRecord(
            model="gpt-4o-mini",
            provider="openai",
            input_tokens=14,
            output_tokens=286,
            cost=COST,
            latency_ms=40,
            origin=origin,
            alias="fast",
            metadata={
                "record_id": uuid.uuid4().hex,
                "client_timestamp": datetime.now(timezone.utc).isoformat(),
            },
        )
        for _ in range(count)
    ]
    journal = Journal(path)
    try:
        journal.append(records)
    finally:
        journal.close()
    return [record.record_id for record in records]


def journal_states(path: Path) -> list[str]:
    journal = Journal(path)
    try:
        return [row["state"] for row in journal.query("SELECT state FROM records ORDER BY seq")]
    finally:
        journal.close()


def server_stats(server: RealServer, key: str) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}/api/v1/stats", headers={"X-API-Key": key}, timeout=10)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_user_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, result.output
    for fragment in fragments:
        assert fragment in error_lines[0], result.output


class TestFlush:
    """`llmring-usage flush` sends a journal's pending records to the real server."""

    def test_delivers_pending_records_and_the_server_stats_show_them(
        self, server: RealServer, tmp_path: Path
    ) -> None:
        """3 pending records are delivered once each; /api/v1/stats then counts 3 requests."""
        key = server.new_api_key()
        journal = tmp_path / "usage.db"
        sent = pending_journal(journal, 3)
        result = invoke("flush", "--server-url", server.url, "--api-key", key, "--journal", str(journal))
        assert result.exit_code == 0, result.output
        assert "Delivered 3, pending 0, rejected 0" in result.output
        assert key not in result.output
        assert journal_states(journal) == ["delivered"] * 3
        stats = server_stats(server, key)
        assert stats["summary"]["total_requests"] == 3
        assert stats["summary"]["total_tokens"] == 3 * 300
        assert float(stats["summary"]["total_cost"]) == pytest.approx(3 * COST)
        rows = run_sync(lambda: server.rows(key))
        assert sorted(row["metadata"]["record_id"] for row in rows) == sorted(sent)

    def test_second_flush_has_nothing_to_send(self, server: RealServer, tmp_path: Path) -> None:
        """Once delivered, records are not sent again: a second flush sends nothing."""
        key = server.new_api_key()
        journal = tmp_path / "usage.db"
        pending_journal(journal, 2)
        args = ["flush", "--server-url", server.url, "--api-key", key, "--journal", str(journal)]
        assert invoke(*args).exit_code == 0
        again = invoke(*args)
        assert again.exit_code == 0 and "Nothing to send" in again.output
        assert server_stats(server, key)["summary"]["total_requests"] == 2

    def test_refused_key_keeps_the_records_and_exits_non_zero(
        self, strict_server: RealServer, tmp_path: Path
    ) -> None:
        """A key the strict server refuses (401) leaves every record pending, with the reason."""
        journal = tmp_path / "usage.db"
        pending_journal(journal, 2)
        result = invoke(
            "flush", "--server-url", strict_server.url, "--api-key", "wrong-key",
            "--journal", str(journal), "--timeout", "10",
        )  # fmt: skip
        assert_user_error(result, "2 record(s) are still pending")
        assert "refused the API key (HTTP 401)" in result.output
        assert journal_states(journal) == ["pending"] * 2


class TestReadFromServer:
    """`stats` and `logs` with --server-url read the server's own answers."""

    @pytest.fixture
    def delivered(self, server: RealServer, tmp_path: Path) -> tuple[str, list[str]]:
        key = server.new_api_key()
        journal = tmp_path / "usage.db"
        sent = pending_journal(journal, 3, origin="cli-read")
        result = invoke("flush", "--server-url", server.url, "--api-key", key, "--journal", str(journal))
        assert result.exit_code == 0, result.output
        return key, sent

    def test_stats_json_from_the_server(self, server: RealServer, delivered: tuple[str, list[str]]) -> None:
        """stats --server-url --json gives the server's totals in the journal's shape."""
        key, _ = delivered
        result = invoke("stats", "--server-url", server.url, "--api-key", key, "--json")
        assert result.exit_code == 0, result.output
        stats = json.loads(result.output)
        assert stats["source"] == "server"
        assert stats["summary"]["requests"] == 3
        assert stats["summary"]["total_tokens"] == 900
        assert stats["summary"]["cost"] == pytest.approx(3 * COST)
        assert {row["name"]: row["requests"] for row in stats["by_origin"]} == {"cli-read": 3}
        assert {row["name"]: row["requests"] for row in stats["by_alias"]} == {"fast": 3}

    def test_stats_table_from_the_server(self, server: RealServer, delivered: tuple[str, list[str]]) -> None:
        """The rich view of the server's stats shows the totals and the per-day chart."""
        key, _ = delivered
        result = invoke("stats", "--server-url", server.url, "--api-key", key)
        assert result.exit_code == 0, result.output
        assert "900 (42 in, 858 out)" in result.output
        assert "Requests per day" in result.output and "█" in result.output

    def test_logs_json_from_the_server(self, server: RealServer, delivered: tuple[str, list[str]]) -> None:
        """logs --server-url --json lists the delivered records with their client record ids."""
        key, sent = delivered
        result = invoke(
            "logs", "--server-url", server.url, "--api-key", key, "--json", "--origin", "cli-read"
        )
        assert result.exit_code == 0, result.output
        rows = json.loads(result.output)
        assert sorted(row["record_id"] for row in rows) == sorted(sent)
        assert all(row["input_tokens"] == 14 and row["output_tokens"] == 286 for row in rows)

    def test_logs_csv_from_the_server(self, server: RealServer, delivered: tuple[str, list[str]]) -> None:
        """logs --csv from the server has a header and one row per record."""
        key, _ = delivered
        result = invoke("logs", "--server-url", server.url, "--api-key", key, "--csv", "--limit", "2")
        lines = result.output.strip().splitlines()
        assert lines[0].startswith("time,provider,model")
        assert len(lines) == 3

    def test_refused_key_is_one_clear_line(self, strict_server: RealServer) -> None:
        """stats with a key the strict server refuses ends with one line naming the key problem."""
        result = invoke("stats", "--server-url", strict_server.url, "--api-key", "wrong-key")
        assert_user_error(result, "refused the API key", "--api-key")


class TestDoctor:
    """`llmring-usage doctor` against real servers."""

    def test_healthy_server_and_accepted_key(self, server: RealServer, tmp_path: Path) -> None:
        """A running bridge server: reachable, healthy, key accepted, exit 0."""
        result = invoke(
            "doctor", "--server-url", server.url, "--api-key", server.new_api_key(),
            "--journal", str(tmp_path / "usage.db"),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert f"OK    server    {server.url} is reachable" in result.output
        assert "OK    /health   healthy (database connected)" in result.output
        assert "OK    API key   accepted" in result.output

    def test_wrong_key_is_reported(self, strict_server: RealServer, tmp_path: Path) -> None:
        """The strict server answers 401 to an unknown key: doctor says so and exits 1."""
        result = invoke(
            "doctor", "--server-url", strict_server.url, "--api-key", "not-a-real-key",
            "--journal", str(tmp_path / "usage.db"),
        )  # fmt: skip
        assert_user_error(result, "1 check(s) failed")
        assert "FAIL  API key   refused by the server (HTTP 401)" in result.output
        assert "OK    /health" in result.output
        assert "not-a-real-key" not in result.output

    async def test_registered_key_passes_on_the_strict_server(
        self, strict_server: RealServer, tmp_path: Path
    ) -> None:
        """A key registered on the strict server is accepted."""
        key = strict_server.new_api_key()
        await strict_server.add_key(key)
        result = await asyncio.to_thread(
            invoke, "doctor", "--server-url", strict_server.url, "--api-key", key,
            "--journal", str(tmp_path / "usage.db"),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "OK    API key   accepted" in result.output

    def test_dead_server_is_reported(self, refusing_port: Any, tmp_path: Path) -> None:
        """Nothing listening: the server line fails and the key is not checked."""
        result = invoke(
            "doctor", "--server-url", refusing_port.url, "--api-key", "k",
            "--journal", str(tmp_path / "usage.db"),
        )  # fmt: skip
        assert_user_error(result, "1 check(s) failed")
        assert "FAIL  server" in result.output
        assert "not checked" in result.output

    def test_pending_records_suggest_flush(self, server: RealServer, tmp_path: Path) -> None:
        """With a server and pending records, the journal line says to run flush."""
        journal = tmp_path / "usage.db"
        pending_journal(journal, 2)
        result = invoke(
            "doctor", "--server-url", server.url, "--api-key", server.new_api_key(),
            "--journal", str(journal),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "2 pending" in result.output and "llmring-usage flush" in result.output


class TestDemoWithServer:
    """`llmring-usage demo --server-url` logs every call to the real server."""

    def test_every_demo_call_reaches_the_server(self, server: RealServer, tmp_path: Path) -> None:
        """The demo's 5 calls are 5 rows on the server and 5 delivered records in the journal."""
        key = server.new_api_key()
        journal = tmp_path / "demo.db"
        result = invoke("demo", "--server-url", server.url, "--api-key", key, "--journal", str(journal))
        assert result.exit_code == 0, result.output
        assert f"5 of 5 were delivered to {server.url}" in result.output
        assert key not in result.output
        assert journal_states(journal) == ["delivered"] * 5
        assert server_stats(server, key)["summary"]["total_requests"] == 5
        rows = run_sync(lambda: server.rows(key))
        assert {row["origin"] for row in rows} == {"llmring-usage-demo"}
        assert all(row["latency_ms"] is not None for row in rows)

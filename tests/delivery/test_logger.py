"""UsageLogger without a live server: the embedded journal, budgets, breaker, backoff, close."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from llmring_usage.config import LoggerConfig
from llmring_usage.delivery.logger import Counters, UsageLogger, _backoff_s
from llmring_usage.errors import OutcomeUnknownError, RetryableDeliveryError
from llmring_usage.record import UsageRecord

MARGIN_S = 0.3


def bare_record() -> UsageRecord:
    return UsageRecord(
        model="gpt-4o-mini", provider="openai", input_tokens=14, output_tokens=286, cost=0.0001737
    )


@pytest.fixture
def made(tmp_path: Path):
    loggers: list[UsageLogger] = []

    def make(**options) -> UsageLogger:
        options.setdefault("journal_path", tmp_path / "usage.db")
        usage_logger = UsageLogger(**options)
        loggers.append(usage_logger)
        return usage_logger

    yield make
    for usage_logger in loggers:
        usage_logger.close(timeout_s=0.5)


class TestEmbeddedJournal:
    """With no server, records land in the journal only, quietly."""

    def test_default_path_follows_the_data_home(self, isolated_env):
        """No journal_path: $XDG_DATA_HOME/llmring-usage/usage.db."""
        usage_logger = UsageLogger()
        try:
            assert (
                usage_logger.journal.path == isolated_env / ".local" / "share" / "llmring-usage" / "usage.db"
            )
        finally:
            usage_logger.close()

    def test_environment_overrides_the_path(self, tmp_path, monkeypatch):
        """LLMRING_USAGE_JOURNAL names the journal file."""
        monkeypatch.setenv("LLMRING_USAGE_JOURNAL", str(tmp_path / "env.db"))
        usage_logger = UsageLogger()
        try:
            assert usage_logger.journal.path == tmp_path / "env.db"
        finally:
            usage_logger.close()

    def test_records_are_journaled_without_warnings(self, made, caplog):
        """Five records without a server: five pending rows, no receipt, no warning."""
        caplog.set_level(logging.INFO, logger="llmring_usage")
        usage_logger = made()
        for _ in range(5):
            assert usage_logger.log(bare_record()) is None
        assert usage_logger.journal.counts().pending == 5
        report = usage_logger.flush(1)
        assert report.completed and report.delivered == 0
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    def test_records_without_an_id_are_each_kept(self, made):
        """Records built without a record_id get one: three records are three rows, not one."""
        usage_logger = made()
        for _ in range(3):
            usage_logger.log(bare_record())
        usage_logger.log_nowait(bare_record())
        usage_logger.flush(1)
        assert usage_logger.journal.counts().pending == 4
        ids = {row["record_id"] for row in usage_logger.journal.query("SELECT record_id FROM records")}
        assert len(ids) == 4 and "" not in ids


class TestInlineBudget:
    """A hung server costs an inline caller its budget at most, then nothing (breaker)."""

    async def test_hung_server_costs_budget_then_breaker(self, made, hung_server):
        """Each call waits <= 0.2 s + margin; after three expiries calls return at once."""
        usage_logger = made(server_url=hung_server.url, api_key="k", timeout_s=0.2, send_timeout_s=1.0)
        waits = []
        for _ in range(6):
            began = time.monotonic()
            assert await usage_logger.alog(bare_record()) is None
            waits.append(time.monotonic() - began)
        assert max(waits) <= 0.2 + MARGIN_S, waits
        assert max(waits[3:]) < 0.05, waits
        report = await usage_logger.aflush(0.5)
        assert report.pending == 6 and not report.completed
        assert usage_logger.counters.dropped == 0

    def test_refused_connection_keeps_records(self, made, refusing_port, caplog):
        """A refusing port: calls return None quickly, records stay pending, one warning."""
        caplog.set_level(logging.INFO, logger="llmring_usage")
        usage_logger = made(server_url=refusing_port.url, api_key="k", timeout_s=1.0)
        began = time.monotonic()
        for _ in range(10):
            assert usage_logger.log(bare_record()) is None
        assert time.monotonic() - began < 1.0 + MARGIN_S
        report = usage_logger.close(timeout_s=0.5)
        assert report is not None and report.pending == 10
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "kept in" in warnings[0].getMessage()


class TestClose:
    """close/aclose are idempotent and log one summary line."""

    def test_close_twice(self, made, caplog):
        """The second close returns None and logs nothing more."""
        caplog.set_level(logging.INFO, logger="llmring_usage")
        usage_logger = made()
        usage_logger.log(bare_record())
        usage_logger.close()
        assert usage_logger.close() is None
        summaries = [r.getMessage() for r in caplog.records if "closed" in r.getMessage()]
        assert len(summaries) == 1 and "queued=1" in summaries[0] and "journaled=1" in summaries[0]

    async def test_aclose_twice_from_async_code(self, made):
        """aclose works from a running loop and twice."""
        usage_logger = made(server_url="http://127.0.0.1:9", api_key="k", delivery="background")
        await usage_logger.alog(bare_record())
        first = await usage_logger.aclose(timeout_s=0.3)
        assert first is not None and first.pending == 1
        assert await usage_logger.aclose() is None

    def test_logger_from_config(self, tmp_path):
        """A LoggerConfig is accepted as is."""
        usage_logger = UsageLogger(LoggerConfig(journal_path=tmp_path / "c.db", delivery="background"))
        try:
            assert usage_logger.config.delivery == "background"
        finally:
            usage_logger.close()


class TestBackoff:
    """Exponential backoff with jitter; Retry-After is a floor."""

    def test_grows_and_is_capped(self):
        """Delays grow with attempts, within jitter, and never pass 60 s * 1.5."""
        error = RetryableDeliveryError("x")
        assert 0.25 <= _backoff_s(1, error) <= 0.75
        assert 2.0 <= _backoff_s(4, error) <= 6.0
        assert _backoff_s(1000, error) <= 90.0

    def test_retry_after_is_a_floor(self):
        """A server's Retry-After is never undercut."""
        assert _backoff_s(1, RetryableDeliveryError("x", retry_after_s=7.0)) >= 7.0
        assert _backoff_s(1, OutcomeUnknownError("x")) <= 0.75


class TestCounters:
    """Counters are readable as a snapshot and by name."""

    def test_snapshot_and_attributes(self):
        """Every name starts at 0 and add() bumps it."""
        counters = Counters()
        counters.add("sent", 2)
        assert counters.snapshot() == dict.fromkeys(Counters.NAMES, 0) | {"sent": 2}
        assert counters.sent == 2 and counters.dropped == 0
        with pytest.raises(AttributeError):
            _ = counters.unknown


class TestThreads:
    """Sync callers on many threads share one worker."""

    def test_asyncio_run_repeatedly(self, made):
        """alog from ten successive asyncio.run loops: every record journaled, nothing dropped."""
        usage_logger = made()

        async def one() -> None:
            await usage_logger.alog(bare_record())

        for _ in range(10):
            asyncio.run(one())
        assert usage_logger.journal.counts().pending == 10
        assert usage_logger.counters.dropped == 0

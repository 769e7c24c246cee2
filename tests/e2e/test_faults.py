"""Delivery under faults, against the real llmring-server: nothing lost, nothing written twice.

Every test counts the server's rows for its own API key and compares the record ids it sent with
the ids found there. Delivery is awaited with flush, never with a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from _support.faults import FaultProxy
from _support.records import identified_record
from _support.server import RealServer
from llmring.schemas import LLMRequest, Message

from llmring_usage import with_usage_logging
from llmring_usage.delivery.logger import UsageLogger
from llmring_usage.record import UsageRecord

pytestmark = pytest.mark.server

COST = 0.0001737
MARGIN_S = 0.3
"""What a caller may wait beyond its budget (thread hand-over, a loaded CI machine)."""


def make_record(origin: str = "faults") -> UsageRecord:
    return identified_record(origin, latency_ms=5)


async def server_ids(server: RealServer, key: str) -> list[str]:
    """Record ids of every row the server holds for `key` (one entry per row)."""
    return [row["metadata"].get("record_id") for row in await server.rows(key)]


async def assert_exactly_once(server: RealServer, key: str, sent: list[str]) -> None:
    found = await server_ids(server, key)
    assert len(found) == len(sent), f"{len(sent)} records sent, {len(found)} rows on the server"
    assert sorted(found) == sorted(sent)


def stamp_requests(proxy: FaultProxy) -> list[tuple[float, str]]:
    """Have `proxy` note (monotonic time, mode) for each request it takes, in order."""
    stamps: list[tuple[float, str]] = []
    take_mode = proxy._take_mode

    def take() -> Any:
        mode = take_mode()
        stamps.append((time.monotonic(), mode.name))
        return mode

    proxy._take_mode = take  # type: ignore[method-assign]
    return stamps


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal" / "usage.db"


@pytest.fixture
def make_logger(journal_path: Path) -> Iterator[Callable[..., UsageLogger]]:
    """Factory of UsageLoggers on this test's journal; each is closed at teardown."""
    made: list[UsageLogger] = []

    def make(**options: Any) -> UsageLogger:
        options.setdefault("journal_path", journal_path)
        usage_logger = UsageLogger(**options)
        made.append(usage_logger)
        return usage_logger

    yield make
    for usage_logger in made:
        usage_logger.close(timeout_s=1.0)


async def log_timed(usage_logger: UsageLogger, record: UsageRecord) -> tuple[Any, float]:
    began = time.monotonic()
    receipt = await usage_logger.alog(record)
    return receipt, time.monotonic() - began


class TestServerDown:
    """A server that is down for a while then back loses nothing and costs callers little."""

    async def test_outage_records_arrive_once_after_restart(self, server, make_logger):
        """20 calls while the server is stopped return at once; after start, flush delivers all 20 once."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=server.url, api_key=key, timeout_s=1.0)
        first = make_record()
        assert await usage_logger.alog(first) is not None
        server.stop()
        sent = [first.record_id]
        waits = []
        for _ in range(20):
            record = make_record()
            sent.append(record.record_id)
            receipt, waited = await log_timed(usage_logger, record)
            assert receipt is None
            waits.append(waited)
        assert max(waits) < 1.0 + MARGIN_S
        assert sum(waits) < 2.0, waits  # refused at once, then the breaker journals without waiting
        server.start()
        report = await usage_logger.aflush(30)
        assert report.completed and report.pending == 0
        assert report.delivered == 20
        await assert_exactly_once(server, key, sent)
        counts = usage_logger.counters.snapshot()
        assert counts["sent"] == 21 and counts["dropped"] == 0 and counts["deduplicated"] == 0

    async def test_restart_mid_run_with_pooled_connections(self, server, make_logger):
        """Stop/start between calls while keep-alive connections are pooled: all 10 arrive once."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=server.url, api_key=key, timeout_s=2.0)
        sent = []
        for _ in range(5):
            record = make_record()
            sent.append(record.record_id)
            assert await usage_logger.alog(record) is not None
        server.stop()
        server.start()
        for _ in range(5):
            record = make_record()
            sent.append(record.record_id)
            await usage_logger.alog(record)
        report = await usage_logger.aflush(30)
        assert report.completed and report.pending == 0
        await assert_exactly_once(server, key, sent)
        counts = usage_logger.counters.snapshot()
        assert counts["sent"] + counts["deduplicated"] == 10
        assert counts["dropped"] == 0


class TestSlowServer:
    """A server answering after 5 s does not make callers wait past their budget."""

    async def test_caller_waits_budget_and_record_arrives_later(self, server, fault_proxy, make_logger):
        """With a 0.2 s budget each call returns within budget + margin; flush delivers each record once."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=fault_proxy.url, api_key=key, timeout_s=0.2)
        fault_proxy.delay(5)
        sent = []
        for _ in range(5):
            record = make_record()
            sent.append(record.record_id)
            receipt, waited = await log_timed(usage_logger, record)
            assert receipt is None
            assert waited <= 0.2 + MARGIN_S
        fault_proxy.pass_through()
        report = await usage_logger.aflush(30)
        assert report.completed and report.pending == 0
        await assert_exactly_once(server, key, sent)
        counts = usage_logger.counters.snapshot()
        assert counts["sent"] + counts["deduplicated"] == 5 and counts["dropped"] == 0


class TestServerErrors:
    """5xx and 429 answers are retried; Retry-After is honoured."""

    async def test_500s_then_recovery(self, server, fault_proxy, make_logger):
        """Three 500s, then the server answers: all 5 records arrive once and retries are counted."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=fault_proxy.url, api_key=key, timeout_s=1.0)
        fault_proxy.status(500, count=3)
        sent = []
        for _ in range(5):
            record = make_record()
            sent.append(record.record_id)
            await usage_logger.alog(record)
        report = await usage_logger.aflush(30)
        assert report.completed and report.pending == 0 and report.delivered == 5
        await assert_exactly_once(server, key, sent)
        counts = usage_logger.counters.snapshot()
        assert counts["retried"] >= 3
        assert counts["sent"] == 5 and counts["rejected"] == 0
        assert fault_proxy.seen["status"] == 3

    async def test_flush_keeps_retrying_with_backoff_until_recovery(self, server, fault_proxy, make_logger):
        """500s past the breaker's threshold: a flush with time left waits out backoff, then delivers."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=fault_proxy.url, api_key=key, delivery="background")
        stamps = stamp_requests(fault_proxy)
        fault_proxy.status(500, count=3)
        record = make_record()
        await usage_logger.alog(record)
        report = await usage_logger.aflush(30)
        assert report.completed and report.pending == 0 and report.delivered == 1
        await assert_exactly_once(server, key, [record.record_id])
        assert [name for _, name in stamps] == ["status"] * 3 + ["pass"]
        gaps = [later - earlier for (earlier, _), (later, _) in zip(stamps, stamps[1:], strict=False)]
        # The flush's first try ignores earlier backoff; the next ones wait it out, not a hot loop.
        assert min(gaps[1:]) >= 0.2, gaps
        assert usage_logger.counters.retried == 3

    async def test_429_retry_after_is_honoured(self, server, fault_proxy, make_logger):
        """A 429 with Retry-After: 1 is retried no sooner than 1 s later, even by a flush; one row."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=fault_proxy.url, api_key=key, timeout_s=1.0)
        stamps = stamp_requests(fault_proxy)
        fault_proxy.status(429, headers={"Retry-After": "1"}, count=1)
        record = make_record()
        assert await usage_logger.alog(record) is None
        report = await usage_logger.aflush(30)
        assert report.completed and report.delivered == 1
        await assert_exactly_once(server, key, [record.record_id])
        assert [name for _, name in stamps] == ["status", "pass"]
        assert stamps[1][0] - stamps[0][0] >= 0.95
        assert usage_logger.counters.retried == 1


class TestWrongKey:
    """A 401 keeps the records; a logger with a valid key delivers them later."""

    async def test_401_keeps_records_until_key_is_fixed(self, strict_server, make_logger, caplog):
        """3 records refused with 401: one warning, no key in the logs, 3 pending; then delivered once."""
        caplog.set_level(logging.INFO, logger="llmring_usage")
        key = strict_server.new_api_key("wrongkey")
        refused = make_logger(server_url=strict_server.url, api_key=key, timeout_s=1.0)
        sent = []
        for _ in range(3):
            record = make_record()
            sent.append(record.record_id)
            assert await refused.alog(record) is None
        report = await refused.aclose()
        assert report is not None and report.pending == 3 and report.delivered == 0
        assert refused.journal.counts().pending == 3
        warnings = [r for r in caplog.records if r.name == "llmring_usage" and r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "401" in warnings[0].getMessage()
        assert key not in caplog.text
        assert await strict_server.count(key) == 0

        await strict_server.add_key(key)
        fixed = make_logger(server_url=strict_server.url, api_key=key)
        report = await fixed.aflush(30)
        assert report.completed and report.pending == 0 and report.delivered == 3
        await assert_exactly_once(strict_server, key, sent)
        assert fixed.counters.sent == 3


class TestLostAnswer:
    """An answer lost after the server inserted the row is settled by reading back, not resending."""

    async def test_dropped_reply_gives_exactly_one_row(self, server, fault_proxy, make_logger):
        """drop_reply on the first POST: the flush finds the row on the server; one row, deduplicated=1."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=fault_proxy.url, api_key=key, timeout_s=2.0)
        fault_proxy.drop_reply(count=1)
        record = make_record()
        assert await usage_logger.alog(record) is None
        assert usage_logger.journal.counts().check_needed == 1
        report = await usage_logger.aflush(30)
        assert report.completed and report.pending == 0 and report.delivered == 1
        await assert_exactly_once(server, key, [record.record_id])
        counts = usage_logger.counters.snapshot()
        assert counts["deduplicated"] == 1 and counts["sent"] == 0
        posts = [path for method, path in fault_proxy.requests if method == "POST"]
        assert posts == ["/api/v1/log"]

    async def test_failed_read_back_keeps_the_check(self, server, fault_proxy, make_logger):
        """The answer is lost, then the read-back GET fails with 500: the next try reads back again."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=fault_proxy.url, api_key=key, timeout_s=2.0)
        fault_proxy.drop_reply(count=1)
        record = make_record()
        assert await usage_logger.alog(record) is None
        fault_proxy.status(500, count=1)
        report = await usage_logger.aflush(30)
        assert report.completed and report.pending == 0 and report.delivered == 1
        await assert_exactly_once(server, key, [record.record_id])
        counts = usage_logger.counters.snapshot()
        assert counts["deduplicated"] == 1 and counts["sent"] == 0
        assert [method for method, _ in fault_proxy.requests] == ["POST", "GET", "GET"]


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime, timezone
    from llmring_usage.delivery.logger import UsageLogger
    from llmring_usage.record import UsageRecord

    url, key, journal, record_id = sys.argv[1:5]
    usage_logger = UsageLogger(server_url=url, api_key=key, journal_path=journal, timeout_s=0.2)
    record = UsageRecord(
        model="gpt-4o-mini", provider="openai", input_tokens=14, output_tokens=286,
        cost=0.0001737, latency_ms=5, origin="faults",
        metadata={"record_id": record_id, "client_timestamp": datetime.now(timezone.utc).isoformat()},
    )
    assert usage_logger.log(record) is None
    print(usage_logger.journal.counts().pending, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


class TestKilledProcess:
    """A process killed between journaling and the server's answer leaves a record a later logger sends."""

    def _run_child(self, tmp_path: Path, url: str, key: str, journal: Path, record_id: str) -> None:
        script = tmp_path / "child.py"
        script.write_text(_CHILD)
        done = subprocess.run(
            [sys.executable, str(script), url, key, str(journal), record_id],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == -9, done.stderr
        assert done.stdout.strip() == "1"

    async def test_request_never_reached_server(
        self, tmp_path, server, fault_proxy, journal_path, make_logger
    ):
        """The child's POST hangs in the proxy, then SIGKILL: the next logger sends it; one row."""
        key = server.new_api_key()
        record_id = uuid4().hex
        fault_proxy.hang(count=1)
        self._run_child(tmp_path, fault_proxy.url, key, journal_path, record_id)
        assert await server.count(key) == 0
        usage_logger = make_logger(server_url=server.url, api_key=key)
        report = await usage_logger.aflush(30)
        assert report.completed and report.pending == 0 and report.delivered == 1
        await assert_exactly_once(server, key, [record_id])
        counts = usage_logger.counters.snapshot()
        assert counts["sent"] == 1 and counts["deduplicated"] == 0

    async def test_request_reached_server_answer_unknown(
        self, tmp_path, server, fault_proxy, journal_path, make_logger
    ):
        """The server stores the row but the child is killed before the answer: found, not resent."""
        key = server.new_api_key()
        record_id = uuid4().hex
        fault_proxy.delay(30, count=1)
        self._run_child(tmp_path, fault_proxy.url, key, journal_path, record_id)
        assert await server.wait_for_count(key, 1) == 1  # the proxy forwarded before delaying
        usage_logger = make_logger(server_url=server.url, api_key=key)
        report = await usage_logger.aflush(30)
        assert report.completed and report.pending == 0 and report.delivered == 1
        await assert_exactly_once(server, key, [record_id])
        counts = usage_logger.counters.snapshot()
        assert counts["deduplicated"] == 1 and counts["sent"] == 0


def _request() -> LLMRequest:
    return LLMRequest(model="openai:gpt-4o-mini", messages=[Message(role="user", content="hi")])


class TestConcurrency:
    """Background mode under many concurrent callers, loops and threads."""

    async def test_1000_concurrent_calls(self, server, make_logger):
        """1,000 concurrent alog calls in background mode: 1,000 rows, each record once."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=server.url, api_key=key, delivery="background")
        records = [make_record() for _ in range(1000)]
        began = time.monotonic()
        receipts = await asyncio.gather(*(usage_logger.alog(record) for record in records))
        handed_over_s = time.monotonic() - began
        assert receipts == [None] * 1000  # background mode: nobody waits for the server
        assert handed_over_s < 5.0
        report = await usage_logger.aflush(60)
        assert report.completed and report.pending == 0
        await assert_exactly_once(server, key, [record.record_id for record in records])
        counts = usage_logger.counters.snapshot()
        assert counts["queued"] == counts["journaled"] == counts["sent"] == 1000
        assert counts["dropped"] == 0 and counts["deduplicated"] == 0

    async def test_concurrent_chats_through_a_wrapped_ring(self, server, make_ring, make_logger):
        """200 concurrent chats through a wrapped real ring in background mode: 200 rows, once each."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=server.url, api_key=key, delivery="background")
        ring = with_usage_logging(make_ring(), usage_logger=usage_logger, origin="faults-ring")
        responses = await asyncio.gather(*(ring.chat(_request()) for _ in range(200)))
        assert len(responses) == 200
        report = await usage_logger.aflush(60)
        assert report.completed and report.pending == 0
        rows = await server.rows(key)
        ids = [row["metadata"].get("record_id") for row in rows]
        assert len(rows) == 200 and len(set(ids)) == 200 and None not in ids
        assert {row["origin"] for row in rows} == {"faults-ring"}
        assert {row["output_tokens"] for row in rows} == {286}
        counts = usage_logger.counters.snapshot()
        assert counts["queued"] == counts["sent"] == 200 and counts["dropped"] == 0

    def test_three_threads_each_with_own_loops(self, server, make_logger):
        """Three threads, each calling asyncio.run three times with 20 concurrent alogs: 180 rows once."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=server.url, api_key=key, delivery="background")
        sent: list[str] = []
        sent_lock = threading.Lock()
        errors: list[BaseException] = []

        async def burst() -> None:
            records = [make_record() for _ in range(20)]
            with sent_lock:
                sent.extend(record.record_id for record in records)
            await asyncio.gather(*(usage_logger.alog(record) for record in records))

        def worker() -> None:
            try:
                for _ in range(3):
                    asyncio.run(burst())
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        report = usage_logger.flush(30)
        assert report.completed and report.pending == 0
        asyncio.run(assert_exactly_once(server, key, sent))
        assert len(sent) == 180 and usage_logger.counters.sent == 180

    def test_inline_from_plain_threads(self, server, make_logger):
        """Four plain threads calling log() inline: every call gets its receipt, 40 rows once."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=server.url, api_key=key, timeout_s=5.0)
        sent: list[str] = []
        receipts: list[Any] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(10):
                record = make_record()
                receipt = usage_logger.log(record)
                with lock:
                    sent.append(record.record_id)
                    receipts.append(receipt)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert all(receipt is not None for receipt in receipts)
        assert {receipt.record_id for receipt in receipts} == set(sent)
        asyncio.run(assert_exactly_once(server, key, sent))


class TestBoundedMemory:
    """An outage does not make the logger hold every record in memory."""

    def test_outage_queue_stays_bounded(self, refusing_port, make_logger):
        """20,000 log_nowait calls, server down: queue <= max_queue_size, memory far below N records."""
        count, bound = 20_000, 500
        usage_logger = make_logger(
            server_url=refusing_port.url, api_key="k", delivery="background", max_queue_size=bound
        )
        records = [make_record() for _ in range(1000)]
        tracemalloc.start()
        try:
            baseline, _ = tracemalloc.get_traced_memory()
            held = [make_record() for _ in range(1000)]
            per_record = (tracemalloc.get_traced_memory()[0] - baseline) / len(held)
            del held, records
            tracemalloc.reset_peak()
            baseline, _ = tracemalloc.get_traced_memory()
            longest = 0
            for _ in range(count):
                usage_logger.log_nowait(make_record())
                longest = max(longest, len(usage_logger._queue))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert longest <= bound
        assert peak - baseline < count * per_record / 5, (peak - baseline, per_record)
        report = usage_logger.flush(5)
        assert report.pending == count and not report.completed
        assert usage_logger.journal.counts().pending == count
        counts = usage_logger.counters.snapshot()
        assert counts["queued"] == counts["journaled"] == count
        assert counts["dropped"] == 0 and counts["sent"] == 0


_FORK = textwrap.dedent(
    """
    import json, os, sys
    from datetime import datetime, timezone
    from llmring_usage.delivery.logger import UsageLogger
    from llmring_usage.record import UsageRecord

    url, key, journal, out = sys.argv[1:5]

    def record(origin):
        return UsageRecord(
            model="gpt-4o-mini", provider="openai", input_tokens=14, output_tokens=286,
            cost=0.0001737, latency_ms=5, origin=origin,
            metadata={"record_id": os.urandom(16).hex(),
                      "client_timestamp": datetime.now(timezone.utc).isoformat()},
        )

    usage_logger = UsageLogger(server_url=url, api_key=key, journal_path=journal, delivery="background")
    parent = [record("parent") for _ in range(5)]
    for item in parent[:2]:
        usage_logger.log(item)
    usage_logger.flush(20)
    for item in parent[2:]:
        usage_logger.log_nowait(item)
    pid = os.fork()
    if pid == 0:
        child = record("child")
        usage_logger.log(child)
        report = usage_logger.flush(20)
        with open(out + ".child", "w") as handle:
            json.dump({"id": child.record_id, "completed": report.completed,
                       "counters": usage_logger.counters.snapshot()}, handle)
        usage_logger.close()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    report = usage_logger.flush(20)
    usage_logger.close()
    with open(out, "w") as handle:
        json.dump({"ids": [item.record_id for item in parent], "status": status,
                   "completed": report.completed, "counters": usage_logger.counters.snapshot()}, handle)
    """
)


class TestFlushAndClose:
    """flush reports, close is idempotent and says what happened, a journal outlives its logger."""

    async def test_flush_report_and_close_twice(self, server, make_logger, caplog):
        """flush returns delivered/pending/rejected; close twice is fine; one summary line at close."""
        caplog.set_level(logging.INFO, logger="llmring_usage")
        key = server.new_api_key()
        usage_logger = make_logger(server_url=server.url, api_key=key, delivery="background")
        sent = [make_record() for _ in range(3)]
        for record in sent:
            await usage_logger.alog(record)
        report = await usage_logger.aflush(10)
        assert (report.delivered, report.pending, report.rejected, report.completed) == (3, 0, 0, True)
        assert await usage_logger.aclose() is not None
        assert await usage_logger.aclose() is None
        usage_logger.close()
        summaries = [r.getMessage() for r in caplog.records if "closed" in r.getMessage()]
        assert len(summaries) == 1
        assert "queued=3" in summaries[0] and "sent=3" in summaries[0] and "dropped=0" in summaries[0]
        await assert_exactly_once(server, key, [record.record_id for record in sent])

    async def test_rejected_record_is_kept_with_reason(self, server, fault_proxy, make_logger):
        """A 422 is not retried: the record is rejected, kept in the journal with the server's reason."""
        key = server.new_api_key()
        usage_logger = make_logger(server_url=fault_proxy.url, api_key=key)
        fault_proxy.status(422, body='{"detail": "bad record"}', count=1)
        record = make_record()
        await usage_logger.alog(record)
        report = await usage_logger.aflush(10)
        assert report.rejected == 0 and report.pending == 0  # rejected before the flush began
        row = usage_logger.journal.get(record.record_id)
        assert row is not None and row["state"] == "rejected" and "bad record" in row["error"]
        assert usage_logger.counters.rejected == 1
        assert fault_proxy.seen["status"] == 1 and fault_proxy.seen["pass"] == 0
        assert await server.count(key) == 0

    async def test_fresh_logger_replays_a_closed_loggers_journal(self, server, refusing_port, make_logger):
        """Records left pending by a closed logger are sent by the next logger opening the journal."""
        key = server.new_api_key()
        down = make_logger(server_url=refusing_port.url, api_key=key, timeout_s=0.5)
        sent = [make_record() for _ in range(4)]
        for record in sent:
            await down.alog(record)
        report = await down.aclose(timeout_s=0.5)
        assert report is not None and report.pending == 4
        replay = make_logger(server_url=server.url, api_key=key)
        report = await replay.aflush(30)
        assert report.completed and report.delivered == 4
        await assert_exactly_once(server, key, [record.record_id for record in sent])

    async def test_fork_child_delivers_its_own_record(self, tmp_path, server, journal_path):
        """After os.fork() the child's logger delivers its record; the parent's are not sent twice."""
        key = server.new_api_key()
        out = tmp_path / "fork.json"
        script = tmp_path / "fork.py"
        script.write_text(_FORK)
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(script), server.url, key, str(journal_path), str(out)],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert done.returncode == 0, done.stderr
        parent = json.loads(out.read_text())
        child = json.loads(Path(str(out) + ".child").read_text())
        assert parent["status"] == 0 and parent["completed"] and child["completed"]
        await assert_exactly_once(server, key, [*parent["ids"], child["id"]])
        rows = await server.rows(key)
        assert [row["origin"] for row in rows].count("child") == 1
        assert os.path.exists(journal_path)


class TestWorkerSurvives:
    """An unexpected error inside the worker never ends delivery."""

    def test_journal_error_in_the_worker_is_survived(self, server, make_logger, caplog):
        """A SQLite error while claiming records: the worker goes on and every record arrives once."""
        import sqlite3

        key = server.new_api_key()
        usage_logger = make_logger(server_url=server.url, api_key=key, delivery="background")
        failed = threading.Event()
        real_claim = usage_logger.journal.claim

        def claim_failing_once(*args: Any, **kwargs: Any) -> Any:
            if not failed.is_set():
                failed.set()
                raise sqlite3.OperationalError("database is locked")
            return real_claim(*args, **kwargs)

        usage_logger.journal.claim = claim_failing_once  # type: ignore[method-assign]
        first = make_record()
        usage_logger.log(first)
        assert failed.wait(10), "the worker never tried to claim the record"
        second = make_record()
        usage_logger.log(second)
        report = usage_logger.flush(10)
        assert report.completed and report.pending == 0
        assert usage_logger._thread is not None and usage_logger._thread.is_alive()
        asyncio.run(assert_exactly_once(server, key, [first.record_id, second.record_id]))
        assert any("database is locked" in r.getMessage() for r in caplog.records)

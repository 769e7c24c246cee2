"""UsageLogger: journals every record, delivers it inline or in the background, retries, flushes.

The logger owns one worker thread running its own asyncio event loop, one HttpExporter and one
Journal. Callers on any thread or event loop hand records over; the worker journals them, sends
them with bounded concurrency, retries with backoff and jitter, and keeps what it cannot send in
the journal for later. Nothing here ever raises into a caller's LLM call.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import contextvars
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from ..config import LoggerConfig
from ..errors import (
    AuthenticationError,
    DeliveryError,
    OutcomeUnknownError,
    RecordRejectedError,
    RetryableDeliveryError,
)
from ..record import CLIENT_TIMESTAMP_KEY, RECORD_ID_KEY, Receipt, UsageRecord, new_record_id, utc_now_iso
from .exporter import HttpExporter
from .journal import ClaimedRecord, Journal

logger = logging.getLogger("llmring_usage")

T = TypeVar("T")

_RETRY_BASE_S = 0.5
_RETRY_MAX_S = 60.0
_BREAKER_THRESHOLD = 3
_BREAKER_COOLDOWN_S = 2.0
_BREAKER_MAX_COOLDOWN_S = 30.0
_JOURNAL_BATCH = 500
_IDLE_POLL_S = 1.0
_FLUSH_POLL_S = 0.05
_EXIT_FLUSH_S = 5.0
_STOP_JOIN_S = 5.0
_MARK_DELIVERED_DELAY_S = 0.05

_last_receipt: contextvars.ContextVar[Receipt | None] = contextvars.ContextVar(
    "llmring_usage_last_receipt", default=None
)


@dataclass(frozen=True)
class FlushReport:
    """What a flush achieved: delivered and rejected during it, pending in the journal after it."""

    delivered: int
    pending: int
    rejected: int
    completed: bool


class Counters:
    """Monotonic counts of what a logger did, safe to bump from any thread."""

    NAMES = ("queued", "journaled", "sent", "retried", "deduplicated", "rejected", "dropped")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.NAMES, 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def __getattr__(self, name: str) -> int:
        if name in Counters.NAMES:
            return self.snapshot()[name]
        raise AttributeError(name)


class UsageLogger:
    """The processor: hands records to the journal and the server, never raising into callers."""

    _wake_scheduled_on: asyncio.AbstractEventLoop | None
    """The caller's loop where a wake of the worker is scheduled and has not run yet."""

    def __init__(self, config: LoggerConfig | None = None, **options: Any) -> None:
        self.config = config if config is not None else LoggerConfig(**options)
        self.journal = Journal(self.config.journal_path)
        self.counters = Counters()
        self._queue: collections.deque[UsageRecord | Callable[[], UsageRecord]] = collections.deque()
        self._lease_s = self.config.send_timeout_s * 3 + 5
        self._state_lock = threading.Lock()
        self._reset_worker_state()
        # Breaker and health, written by the worker, read by callers.
        self._failures = 0
        self._open_until = 0.0
        self._retry_after_until = 0.0
        """Monotonic time before which the server asked (Retry-After) not to be sent to."""
        self._cooldown_s = _BREAKER_COOLDOWN_S
        self._outage_warned = False
        self._auth_blocked = False
        self._rejection_warned = False
        self._closed = False
        _live_loggers.add(self)
        if self.config.server_url and self.journal.next_due_at() is not None:  # an index probe
            self._ensure_worker()  # replay what an earlier process left behind
            self._wake()

    # -- public ------------------------------------------------------------------------------

    @property
    def sends(self) -> bool:
        """True when a server is configured (otherwise records stay in the journal)."""
        return self.config.server_url is not None

    @property
    def last_receipt(self) -> Receipt | None:
        """The server's receipt for the last record logged in this task or thread."""
        return _last_receipt.get()

    def log(self, record: UsageRecord) -> Receipt | None:
        """Hand a record over from sync code; inline mode waits up to `timeout_s` for the receipt."""
        future: concurrent.futures.Future[Receipt | None] = concurrent.futures.Future()
        if not self._submit(record, _resolve_concurrent(future)):
            return None
        try:
            receipt = future.result(timeout=self.config.timeout_s)
        except concurrent.futures.TimeoutError:
            self._note_budget_exceeded()
            return None
        if receipt is not None:
            _last_receipt.set(receipt)
        return receipt

    async def alog(self, record: UsageRecord) -> Receipt | None:
        """Hand a record over from async code; inline mode waits up to `timeout_s` for the receipt."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt | None] = loop.create_future()
        if not self._submit(record, _resolve_on_loop(loop, future)):
            return None
        try:
            # On timeout the attempt goes on in the worker and the record arrives later.
            receipt = await asyncio.wait_for(future, self.config.timeout_s)
        except asyncio.TimeoutError:
            self._note_budget_exceeded()
            return None
        if receipt is not None:
            _last_receipt.set(receipt)
        return receipt

    @property
    def waits(self) -> bool:
        """True when `alog`/`log` wait for the record (inline mode), False when they only hand over."""
        return self.config.delivery == "inline" and self.config.timeout_s > 0

    def log_nowait(self, record: UsageRecord | Callable[[], UsageRecord]) -> None:
        """Hand a record over without waiting, whatever the mode (background, streams closed early).

        `record` may be a function that builds it: the worker then calls it, off the caller's path.
        """
        self.counters.add("queued")
        self._enqueue(record)

    def flush(self, timeout_s: float = 10.0, *, retry: bool = True) -> FlushReport:
        """Journal everything handed over and deliver every pending record, within `timeout_s`.

        Failed sends are tried again with their backoff until the deadline; `retry=False` makes
        one pass only (as close and interpreter exit do).
        """
        future = self._run_in_worker(self._flush(time.monotonic() + timeout_s, retry=retry))
        try:
            return future.result(timeout=timeout_s + 1.0)
        except concurrent.futures.TimeoutError:
            return self._report(0, 0)

    async def aflush(self, timeout_s: float = 10.0, *, retry: bool = True) -> FlushReport:
        future = self._run_in_worker(self._flush(time.monotonic() + timeout_s, retry=retry))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s + 1.0)
        except asyncio.TimeoutError:
            return self._report(0, 0)

    def close(self, timeout_s: float = _EXIT_FLUSH_S) -> FlushReport | None:
        """One flush pass within `timeout_s`, stop the worker, log one summary line. Safe twice.

        What the server does not take now stays in the journal for the next logger that opens it.
        """
        with self._state_lock:
            if self._closed:
                return None
            self._closed = True
        report = self.flush(timeout_s, retry=False) if self._thread is not None or self._queue else None
        self._stop_worker()
        self._log_summary(report)
        return report

    async def aclose(self, timeout_s: float = _EXIT_FLUSH_S) -> FlushReport | None:
        with self._state_lock:
            if self._closed:
                return None
            self._closed = True
        busy = self._thread is not None or self._queue
        report = await self.aflush(timeout_s, retry=False) if busy else None
        await asyncio.to_thread(self._stop_worker)
        self._log_summary(report)
        return report

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run a coroutine on the worker's loop from sync code (used to price sync calls)."""
        return self._run_in_worker(coro).result(timeout=timeout_s)

    def run_soon(self, coro: Coroutine[Any, Any, None]) -> None:
        """Start a coroutine on the worker's loop and return at once (it must not raise).

        A flush waits for it, as for the worker's own tasks.
        """
        self._ensure_worker().call_soon_threadsafe(self._spawn, coro)

    # -- caller side -------------------------------------------------------------------------

    def _submit(self, record: UsageRecord, answer: Callable[[Receipt | None], None]) -> bool:
        """Hand `record` over; True when `answer` will be called with its receipt (inline mode)."""
        self.counters.add("queued")
        record = _identified(record)
        self._closed = False  # a logger used again after close starts its worker anew
        background = not self.waits
        if not self.sends and not background:
            self._journal_now([record])  # inline with no server: on disk when the call returns
            return False
        if background or not self._may_send():
            self._enqueue(record)
            return False
        self._call_in_worker(self._deliver_now, record, answer)
        return True

    def _enqueue(self, record: UsageRecord | Callable[[], UsageRecord]) -> None:
        if len(self._queue) >= self.config.max_queue_size:
            # The worker is behind: journal here rather than hold more in memory.
            self._journal_now(self._materialize([record]))
            self._wake()
            return
        self._queue.append(record)
        self._wake_soon()

    def _wake_soon(self) -> None:
        """Wake the worker once the caller's event loop next gets control, not in the middle of the call.

        A worker woken at once takes the GIL while the caller is still in our code and keeps it
        through its journal write and send (each short GIL release hands it straight back to the
        worker): the call then waits for all of it (milliseconds). Woken from the caller's loop,
        the worker runs while the caller awaits its next I/O.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # sync caller: nothing to wait for
            self._wake()
            return
        if loop is self._loop:
            self._wake()
        elif loop is not self._wake_scheduled_on:
            # One scheduled wake per loop: a caller that never yields must not pile up callbacks.
            self._wake_scheduled_on = loop
            loop.call_soon(self._wake_from_caller_loop)

    def _wake_from_caller_loop(self) -> None:
        self._wake_scheduled_on = None
        self._wake()

    def _journal_now(self, records: list[UsageRecord]) -> None:
        try:
            self.journal.append(records)
            self.counters.add("journaled", len(records))
        except Exception as exc:
            self.counters.add("dropped", len(records))
            logger.error("llmring-usage: could not journal %d record(s): %s", len(records), exc)

    def _note_budget_exceeded(self) -> None:
        with self._state_lock:
            self._failures += 1
            if self._failures >= _BREAKER_THRESHOLD:
                self._open_breaker()

    # -- breaker -----------------------------------------------------------------------------

    def _may_send(self) -> bool:
        return self.sends and not self._auth_blocked and time.monotonic() >= self._open_until

    def _open_breaker(self) -> None:
        self._open_until = time.monotonic() + self._cooldown_s
        self._cooldown_s = min(self._cooldown_s * 2, _BREAKER_MAX_COOLDOWN_S)

    def _on_success(self) -> None:
        with self._state_lock:
            recovered = self._outage_warned
            self._failures = 0
            self._open_until = 0.0
            self._cooldown_s = _BREAKER_COOLDOWN_S
            self._outage_warned = False
        if recovered:
            logger.info("llmring-usage: %s answers again; sending kept records", self.config.server_url)

    def _on_failure(self, error: DeliveryError) -> None:
        with self._state_lock:
            self._failures += 1
            if self._failures >= _BREAKER_THRESHOLD:
                self._open_breaker()
            if isinstance(error, RetryableDeliveryError) and error.retry_after_s is not None:
                # The server said when to come back: nothing is sent before then, not even by a flush.
                self._retry_after_until = max(self._retry_after_until, time.monotonic() + error.retry_after_s)
                self._open_until = max(self._open_until, self._retry_after_until)
            warn = not self._outage_warned
            self._outage_warned = True
        if warn:
            logger.warning(
                "llmring-usage: cannot deliver usage records to %s (%s); they are kept in %s "
                "and sent when it answers",
                self.config.server_url,
                error,
                self.journal.path,
            )

    def _on_auth_failure(self, error: AuthenticationError) -> None:
        with self._state_lock:
            warn = not self._auth_blocked
            self._auth_blocked = True
        if warn:
            logger.warning(
                "llmring-usage: %s: %s; records are kept in %s until a logger with a valid key sends them",
                self.config.server_url,
                error,
                self.journal.path,
            )

    # -- worker lifecycle --------------------------------------------------------------------

    def _reset_worker_state(self) -> None:
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_event: asyncio.Event | None = None
        self._wake_pending = False
        self._wake_scheduled_on = None
        self._stopping = False
        self._exporter: HttpExporter | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._receipts_to_mark: list[Receipt] = []
        self._start_lock = threading.Lock()

    def _after_fork_in_child(self) -> None:
        # The parent owns what it had queued and the thread did not survive the fork.
        self._queue = collections.deque()
        self._state_lock = threading.Lock()
        self.counters = Counters()
        self.journal = self.journal.reopen_after_fork()
        self._reset_worker_state()

    def _ensure_worker(self) -> asyncio.AbstractEventLoop:
        if self._pid != os.getpid():
            self._after_fork_in_child()
        loop = self._loop
        if loop is not None:
            return loop
        with self._start_lock:
            if self._loop is None:
                ready = threading.Event()
                self._stopping = False
                thread = threading.Thread(
                    target=self._thread_main, args=(ready,), name="llmring-usage", daemon=True
                )
                thread.start()
                ready.wait()
                self._thread = thread
            assert self._loop is not None
            return self._loop

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._wake_event = asyncio.Event()
        self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
        if self.sends:
            assert self.config.server_url is not None and self.config.api_key is not None
            self._exporter = HttpExporter(
                self.config.server_url,
                self.config.api_key,
                timeout_s=self.config.send_timeout_s,
                max_connections=self.config.max_concurrency,
            )
        self._loop = loop
        ready.set()
        try:
            loop.run_until_complete(self._run())
        finally:
            try:
                if self._exporter is not None:
                    loop.run_until_complete(self._exporter.aclose())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def _stop_worker(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or self._pid != os.getpid():
            return
        self._stopping = True
        self._wake()
        thread.join(_STOP_JOIN_S)
        try:
            self.journal.release_all()
        except Exception:
            pass
        self._reset_worker_state()

    def _wake(self) -> None:
        loop = self._ensure_worker()
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            loop.call_soon_threadsafe(self._set_wake)
        except RuntimeError:  # the loop closed under us (interpreter exit)
            self._wake_pending = False

    def _set_wake(self) -> None:
        if self._wake_event is not None:
            self._wake_event.set()

    def _call_in_worker(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        loop = self._ensure_worker()
        loop.call_soon_threadsafe(self._spawn_call, fn, args)

    def _spawn_call(self, fn: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]) -> None:
        self._spawn(fn(*args))

    def _run_in_worker(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_worker())

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    # -- worker side -------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake_event is not None
        while True:
            self._wake_event.clear()
            self._wake_pending = False
            delay: float | None
            try:
                self._drain_queue()
                if self._stopping:
                    break
                idle = True
                if self._may_send():
                    # A task in _inflight, so that a flush waits for the sends it has under way.
                    pump = asyncio.get_running_loop().create_task(self._pump())
                    self._inflight.add(pump)
                    pump.add_done_callback(self._inflight.discard)
                    idle = not await pump
                # Bounded even when idle: a wake the caller's loop scheduled but never ran (a loop
                # closed at once) delays a handed-over record by at most this, never forever.
                wake_in = self._next_wake_in(idle)
                delay = _IDLE_POLL_S if wake_in is None else min(wake_in, _IDLE_POLL_S * 5)
            except Exception as exc:  # the worker must outlive any error (a locked journal, a bug)
                logger.error("llmring-usage: delivery worker error, retrying: %r", exc)
                delay = _IDLE_POLL_S
            try:
                await asyncio.wait_for(self._wake_event.wait(), delay)
            except asyncio.TimeoutError:
                pass
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=self.config.send_timeout_s)
        self._drain_queue()
        self._mark_delivered_now()

    def _next_wake_in(self, idle: bool) -> float | None:
        if not self.sends or self._auth_blocked:
            return None
        now = time.monotonic()
        if now < self._open_until:
            return self._open_until - now
        due = self.journal.next_due_at()
        if due is None:
            return None
        wait = due - time.time()
        if wait <= 0:
            # Due but not claimable (leased elsewhere, or all attempts just failed): poll.
            return 0.0 if not idle else _IDLE_POLL_S
        return min(wait, _RETRY_MAX_S)

    def _drain_queue(self) -> None:
        while self._queue:
            batch: list[UsageRecord | Callable[[], UsageRecord]] = []
            while self._queue and len(batch) < _JOURNAL_BATCH:
                batch.append(self._queue.popleft())
            self._journal_now(self._materialize(batch))

    def _materialize(self, items: list[UsageRecord | Callable[[], UsageRecord]]) -> list[UsageRecord]:
        """Records from queued items, building those handed over as builders."""
        records = []
        for item in items:
            try:
                records.append(_identified(item if isinstance(item, UsageRecord) else item()))
            except Exception as exc:  # a builder that fails is a bug of ours: count it, never hide it
                self.counters.add("dropped")
                logger.error("llmring-usage: could not build a record: %r", exc)
        return records

    async def _pump(self, *, ignore_schedule: bool = False, deadline: float | None = None) -> bool:
        """Send due records from the journal until none is left or sending stops; True if any went."""
        assert self._semaphore is not None
        any_sent = False
        batch_size = self.config.max_concurrency * 16
        while self._may_send() and not self._stopping:
            if deadline is not None and time.monotonic() >= deadline:
                break
            claimed = self.journal.claim(batch_size, lease_s=self._lease_s, ignore_schedule=ignore_schedule)
            if not claimed:
                break
            to_send = await self._settle_unknown(claimed)
            results = await asyncio.gather(*(self._attempt(item) for item in to_send))
            receipts = [receipt for receipt in results if receipt is not None]
            self.journal.mark_delivered(receipts)
            self.counters.add("sent", len(receipts))
            any_sent = any_sent or bool(receipts)
            self._drain_queue()
        return any_sent

    async def _settle_unknown(self, claimed: list[ClaimedRecord]) -> list[ClaimedRecord]:
        """Ask the server about records whose earlier attempt has an unknown outcome."""
        unknown = [item for item in claimed if item.check_needed]
        if not unknown:
            return claimed
        assert self._exporter is not None
        try:
            found = await self._exporter.find_many([item.record for item in unknown])
        except DeliveryError as exc:
            for item in unknown:
                self._release(item, exc, outcome_unknown=True)  # still unknown: ask again next time
            if isinstance(exc, AuthenticationError):
                self._on_auth_failure(exc)
            else:
                self._on_failure(exc)
            return [item for item in claimed if not item.check_needed]
        if found:
            self.journal.mark_delivered(found.values())
            self.counters.add("deduplicated", len(found))
        return [item for item in claimed if item.record.record_id not in found]

    async def _attempt(self, item: ClaimedRecord) -> Receipt | None:
        """One send of one leased record; the journal is updated for every outcome but success."""
        assert self._semaphore is not None and self._exporter is not None
        record = item.record
        if item.attempts > 1:
            self.counters.add("retried")
        async with self._semaphore:
            if not self._may_send():  # the breaker opened while this record waited its turn
                self._release(item, RetryableDeliveryError("not sent"), retry_now=True)
                return None
            try:
                receipt = await self._exporter.send(record)
            except AuthenticationError as exc:
                self._release(item, exc, retry_now=True)
                self._on_auth_failure(exc)
                return None
            except RecordRejectedError as exc:
                self.journal.mark_rejected(record.record_id, exc.reason)
                self.counters.add("rejected")
                if not self._rejection_warned:
                    self._rejection_warned = True
                    logger.warning("llmring-usage: %s (kept in %s)", exc, self.journal.path)
                return None
            except RetryableDeliveryError as exc:
                self._release(item, exc)
                self._on_failure(exc)
                return None
            except asyncio.CancelledError:
                self._release(item, OutcomeUnknownError("cancelled"), retry_now=True)
                raise
            except Exception as exc:  # a bug of ours must not lose the record
                self._release(item, OutcomeUnknownError(repr(exc)))
                self._on_failure(OutcomeUnknownError(repr(exc)))
                return None
        self._on_success()
        return receipt

    def _release(
        self,
        item: ClaimedRecord,
        error: DeliveryError,
        *,
        retry_now: bool = False,
        outcome_unknown: bool = False,
    ) -> None:
        delay = 0.0 if retry_now else _backoff_s(item.attempts, error)
        self.journal.release(
            item.record.record_id,
            next_attempt_at=time.time() + delay,
            error=str(error),
            outcome_unknown=outcome_unknown or isinstance(error, OutcomeUnknownError),
        )

    async def _deliver_now(self, record: UsageRecord, answer: Callable[[Receipt | None], None]) -> None:
        """Inline mode: journal the record leased to us, send it at once, answer the caller first."""
        receipt = None
        try:
            if not self._may_send():
                self._journal_now([record])
                return
            try:
                self.journal.append([record], lease_s=self._lease_s)
                self.counters.add("journaled")
            except Exception as exc:
                self.counters.add("dropped")
                logger.error("llmring-usage: could not journal a record: %s", exc)
                return
            receipt = await self._attempt(ClaimedRecord(record, 1, False))
        finally:
            answer(receipt)
        if receipt is not None:
            self.counters.add("sent")
            self._mark_delivered_soon(receipt)

    def _mark_delivered_soon(self, receipt: Receipt) -> None:
        """Mark an inline record delivered a moment later, in a batch.

        Right after answering, the worker must leave the GIL to the caller it just woke rather
        than write to SQLite (the caller would wait for that, or for the switch interval). A crash
        before the mark leaves the record pending with its check flag set: it is found on the
        server, not sent twice.
        """
        self._receipts_to_mark.append(receipt)
        if len(self._receipts_to_mark) == 1:
            asyncio.get_running_loop().call_later(_MARK_DELIVERED_DELAY_S, self._mark_delivered_now)

    def _mark_delivered_now(self) -> None:
        receipts, self._receipts_to_mark = self._receipts_to_mark, []
        try:
            self.journal.mark_delivered(receipts)
        except Exception as exc:  # they stay pending and are found on the server later
            logger.error("llmring-usage: could not mark %d record(s) delivered: %r", len(receipts), exc)

    async def _flush(self, deadline: float, *, retry: bool = True) -> FlushReport:
        before = self.counters.snapshot()
        self._drain_queue()
        self._mark_delivered_now()
        current = asyncio.current_task()
        pending_tasks = {task for task in self._inflight if task is not current}
        if pending_tasks:
            await asyncio.wait(pending_tasks, timeout=max(deadline - time.monotonic(), 0))
            self._drain_queue()  # what those tasks handed over (sync calls priced here)
        if self.sends and not self._auth_blocked:
            self.journal.reschedule_now()
            with self._state_lock:
                # A flush tries the server now, whatever the breaker says, unless it asked to wait.
                self._open_until = self._retry_after_until
                self._failures = 0
            # Failures during the flush are retried with their backoff (and Retry-After, and the
            # breaker's cool-down) as long as the next try falls before the deadline.
            while not self._auth_blocked:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if self._may_send():
                    try:
                        await asyncio.wait_for(self._pump(deadline=deadline), remaining)
                    except asyncio.TimeoutError:
                        break
                    except Exception as exc:  # a flush reports, it never raises into the caller
                        logger.error("llmring-usage: flush stopped by an error: %r", exc)
                        break
                self._drain_queue()
                if not retry:  # close and exit make one pass: what fails waits for a later run
                    break
                wait = self._next_wake_in(idle=False)
                if wait is None or time.monotonic() + wait >= deadline:
                    break
                await asyncio.sleep(max(wait, _FLUSH_POLL_S))
        self._mark_delivered_now()
        after = self.counters.snapshot()
        return self._report(
            after["sent"] + after["deduplicated"] - before["sent"] - before["deduplicated"],
            after["rejected"] - before["rejected"],
        )

    def _report(self, delivered: int, rejected: int) -> FlushReport:
        pending = self.journal.counts().pending + len(self._queue)
        return FlushReport(
            delivered=delivered,
            pending=pending,
            rejected=rejected,
            completed=pending == 0 or not self.sends,
        )

    def _log_summary(self, report: FlushReport | None) -> None:
        counts = self.counters.snapshot()
        pending = report.pending if report is not None else self.journal.counts().pending
        logger.info(
            "llmring-usage: closed (%s, pending=%d, journal=%s)",
            ", ".join(f"{name}={value}" for name, value in counts.items()),
            pending,
            self.journal.path,
        )


def _identified(record: UsageRecord) -> UsageRecord:
    """`record`, or a copy with a record id (and client timestamp) when it was built without one.

    The journal keys rows by record id: records sharing the empty id would be kept only once.
    """
    if record.record_id:
        return record
    metadata = {**record.metadata, RECORD_ID_KEY: new_record_id()}
    metadata.setdefault(CLIENT_TIMESTAMP_KEY, utc_now_iso())
    return record.model_copy(update={"metadata": metadata})


def _resolve_concurrent(future: concurrent.futures.Future[T]) -> Callable[[T], None]:
    def answer(value: T) -> None:
        if not future.done():
            future.set_result(value)

    return answer


def _resolve_on_loop(loop: asyncio.AbstractEventLoop, future: asyncio.Future[T]) -> Callable[[T], None]:
    def set_if_waiting(value: T) -> None:
        if not future.done():
            future.set_result(value)

    def answer(value: T) -> None:
        try:
            loop.call_soon_threadsafe(set_if_waiting, value)
        except RuntimeError:  # the caller's loop is gone: nobody waits any more
            pass

    return answer


def _backoff_s(attempts: int, error: DeliveryError) -> float:
    """Exponential backoff with jitter; a server's Retry-After is a floor."""
    base = min(_RETRY_BASE_S * 2.0 ** min(max(attempts - 1, 0), 16), _RETRY_MAX_S)
    delay = base * random.uniform(0.5, 1.5)
    if isinstance(error, RetryableDeliveryError) and error.retry_after_s is not None:
        delay = max(delay, error.retry_after_s)
    return delay


_live_loggers: weakref.WeakSet[UsageLogger] = weakref.WeakSet()
_shared: dict[tuple[Any, ...], UsageLogger] = {}
_shared_lock = threading.Lock()


def shared_logger(config: LoggerConfig) -> UsageLogger:
    """One logger per configuration in a process, so wrapping many rings starts one worker."""
    with _shared_lock:
        existing = _shared.get(config.key)
        if existing is not None and existing._pid == os.getpid():
            return existing
        created = UsageLogger(config)
        _shared[config.key] = created
        return created


def live_loggers() -> set[UsageLogger]:
    """Every UsageLogger of this process that is still referenced."""
    return set(_live_loggers)


def close_loggers(loggers: set[UsageLogger], *, timeout_s: float) -> None:
    """Close `loggers` and drop them from the shared ones, so the next wrap builds a new logger."""
    for usage_logger in loggers:
        usage_logger.close(timeout_s=timeout_s)
    with _shared_lock:
        for key, usage_logger in list(_shared.items()):
            if usage_logger in loggers:
                del _shared[key]


def _close_all_at_exit() -> None:
    deadline = time.monotonic() + _EXIT_FLUSH_S
    for usage_logger in list(_live_loggers):
        remaining = deadline - time.monotonic()
        if usage_logger._thread is None and not usage_logger._queue:
            continue
        try:
            usage_logger.close(timeout_s=max(remaining, 0.1))
        except Exception:
            pass


def _after_fork() -> None:
    for usage_logger in list(_live_loggers):
        usage_logger._after_fork_in_child()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)

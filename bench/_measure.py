"""The five measurements. Each takes a ``Bench`` and returns plain data for the JSON results.

1. ``latency``: per ``chat()`` call over a bare ring, for llmring's built-in logging, our inline and
   background modes, and the bare POST of one record (the floor for inline), interleaved in blocks.
2. ``background_cost``: the time a call spends in our code in background mode.
3. ``drain``: records/s of ``flush()`` delivering a journal, against a plain httpx client.
4. ``outage``: 100,000 calls with the server down (memory, journal size), then the replay.
5. ``journal``: records/s written to the journal alone.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._harness import (
    MODEL,
    BenchServer,
    free_port,
    make_records,
    peak_rss_bytes,
    reset_peak_rss,
    row_counts,
    rss_bytes,
    sizes_on_disk,
)
from bench._stats import added_us, percentile, summary_us

LOG_PATH = "/api/v1/log"
CONCURRENCY = 8
"""The logger's default max_concurrency, used by the plain client too."""


@dataclass(frozen=True)
class Scale:
    """How much of everything to do; ``QUICK`` is a smoke run of the same code."""

    blocks: int = 20
    calls_per_block: int = 25
    warmup_calls: int = 30
    background_chat_calls: int = 1_000
    background_cached_calls: int = 10_000
    handover_records: int = 10_000
    drain_records: int = 10_000
    outage_calls: int = 100_000
    journal_batch_records: int = 50_000
    journal_batch_size: int = 500
    journal_single_records: int = 5_000


QUICK = Scale(
    blocks=4,
    calls_per_block=10,
    warmup_calls=10,
    background_chat_calls=300,
    background_cached_calls=3_000,
    handover_records=3_000,
    drain_records=1_000,
    outage_calls=5_000,
    journal_batch_records=5_000,
    journal_single_records=1_000,
)


@dataclass
class Bench:
    """What every measurement needs: the running server, the offline registry, a work dir."""

    workdir: Path
    server: BenchServer
    registry_url: str
    lockfile: Path
    scale: Scale

    def key(self, name: str) -> str:
        """A fresh API key: the server (bridge mode) stores it verbatim, so rows are counted by it."""
        return f"bench-{name}-{secrets.token_hex(4)}"

    def ring(self, **kwargs: Any) -> Any:
        from llmring import LLMRing

        kwargs.setdefault("server_url", "")
        return LLMRing(registry_url=self.registry_url, lockfile_path=str(self.lockfile), **kwargs)

    def journal_path(self, name: str) -> Path:
        return self.workdir / "journals" / f"{name}.db"


def chat_request() -> Any:
    from llmring.schemas import LLMRequest, Message

    return LLMRequest(
        model=MODEL, messages=[Message(role="user", content="Why log the usage of every LLM call?")]
    )


async def close_ring(ring: Any) -> None:
    ring = getattr(ring, "__wrapped__", ring)
    await ring.close()
    server_client = getattr(ring, "server_client", None)
    if server_client is not None:
        await server_client.close()


# --------------------------------------------------------------------------- 1. latency


async def latency(bench: Bench) -> dict[str, Any]:
    """Per-call time of each variant in interleaved blocks (rotating order), after a warm-up."""
    from llmring_usage import with_usage_logging

    scale = bench.scale
    url = bench.server.url
    keys = {name: bench.key(name) for name in ("builtin", "inline", "background", "post")}
    request = chat_request()
    bare = bench.ring()
    builtin = bench.ring(server_url=url, api_key=keys["builtin"])
    inline = with_usage_logging(
        bench.ring(),
        server_url=url,
        api_key=keys["inline"],
        delivery="inline",
        journal_path=bench.journal_path("latency-inline"),
    )
    background = with_usage_logging(
        bench.ring(),
        server_url=url,
        api_key=keys["background"],
        delivery="background",
        journal_path=bench.journal_path("latency-background"),
    )
    client = httpx.AsyncClient(
        base_url=url,
        headers={"X-API-Key": keys["post"]},
        timeout=30.0,
        limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY),
    )
    per_variant = scale.warmup_calls + scale.blocks * scale.calls_per_block
    bodies = iter([record.to_body() for record in make_records(per_variant, origin="bench-post")])

    async def post() -> None:
        # What the inline path cannot avoid: one POST on a pooled connection, its answer parsed.
        answer = await client.post(LOG_PATH, json=next(bodies))
        answer.raise_for_status()
        answer.json()

    variants: dict[str, Callable[[], Awaitable[Any]]] = {
        "bare": lambda: bare.chat(request),
        "builtin": lambda: builtin.chat(request),
        "inline": lambda: inline.chat(request),
        "background": lambda: background.chat(request),
        "post": post,
    }
    samples: dict[str, list[int]] = {name: [] for name in variants}
    block_p50: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for call in variants.values():
            for _ in range(scale.warmup_calls):
                await call()
        await background.usage_logger.aflush(60)
        names = list(variants)
        for block in range(scale.blocks):
            shift = block % len(names)
            for name in names[shift:] + names[:shift]:
                call = variants[name]
                times: list[int] = []
                for _ in range(scale.calls_per_block):
                    started = time.perf_counter_ns()
                    await call()
                    times.append(time.perf_counter_ns() - started)
                samples[name] += times
                block_p50[name].append(statistics.median(times) / 1000)
                if name == "background":
                    # Untimed: what this block handed over must not be sent during another's.
                    await background.usage_logger.aflush(60)
        await inline.usage_logger.aflush(60)
        rows = {name: (await row_counts(bench.server.database_url, key))[0] for name, key in keys.items()}
    finally:
        await client.aclose()
        for ring in (inline, background):
            await ring.usage_logger.aclose(10)
        for ring in (bare, builtin, inline, background):
            await close_ring(ring)

    stats = {name: summary_us(values) for name, values in samples.items()}
    added = {name: added_us(stats[name], stats["bare"]) for name in ("builtin", "inline", "background")}
    blockwise = {
        name: round(
            statistics.median(v - b for v, b in zip(block_p50[name], block_p50["bare"], strict=True)), 2
        )
        for name in ("builtin", "inline", "background")
    }
    return {
        "blocks": scale.blocks,
        "calls_per_block": scale.calls_per_block,
        "warmup_calls": scale.warmup_calls,
        "per_call": stats,
        "added_over_bare": added,
        "added_p50_blockwise_us": blockwise,
        "ratios": {
            "inline_added_over_builtin_added": _ratio(added["inline"]["p50_us"], added["builtin"]["p50_us"]),
            "inline_added_over_bare_post": _ratio(added["inline"]["p50_us"], stats["post"]["p50_us"]),
            "builtin_added_over_bare_post": _ratio(added["builtin"]["p50_us"], stats["post"]["p50_us"]),
        },
        "rows_on_server": rows,
        "rows_expected": {
            "builtin": per_variant,
            "inline": per_variant,
            "background": per_variant,
            "post": per_variant,
        },
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator > 0 else None


# --------------------------------------------------------------------------- 2. background cost


async def cached_response(bench: Bench) -> Any:
    """One real answer from the fake provider, to be served again without I/O."""
    ring = bench.ring()
    try:
        return await ring.chat(chat_request())
    finally:
        await close_ring(ring)


def serve_cached(ring: Any, response: Any) -> None:
    """Make `ring.chat` answer `response` at once: only our code is left to time.

    It yields to the event loop once, as every real call does while it waits for the provider.
    """

    async def chat(request: Any, profile: str | None = None) -> Any:
        await asyncio.sleep(0)
        return response

    ring.chat = chat


async def background_cost(bench: Bench, response: Any) -> dict[str, Any]:
    """Time spent in our code per call in background mode, three ways:

    - ``chat_real``: real chats, server up; our time = wrapped call minus the inner ``chat`` (timed
      by a shim the wrapper calls), while the worker delivers the records alongside;
    - ``chat_cached``: the inner ``chat`` answers a cached response, so the whole call is our code
      (interceptor, pricing, record, hand-over); the server is unreachable and the worker journals;
    - ``handover``: ``await alog(record)`` and ``log_nowait(record)`` alone.
    """
    from llmring_usage import UsageLogger, with_usage_logging
    from llmring_usage.config import LoggerConfig

    scale = bench.scale
    request = chat_request()
    key = bench.key("background-cost")

    # -- real chats, our share measured around the inner call
    inner_ns: list[int] = []

    def timed(ring: Any) -> Any:
        inner = ring.chat

        async def chat(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter_ns()
            try:
                return await inner(*args, **kwargs)
            finally:
                inner_ns.append(time.perf_counter_ns() - started)

        ring.chat = chat
        return ring

    control = timed(bench.ring())
    wrapped = with_usage_logging(
        timed(bench.ring()),
        server_url=bench.server.url,
        api_key=key,
        delivery="background",
        journal_path=bench.journal_path("background-cost"),
    )
    ours: dict[str, list[int]] = {"wrapped": [], "control": []}
    try:
        for ring in (control, wrapped):
            for _ in range(scale.warmup_calls):
                await ring.chat(request)
        await wrapped.usage_logger.aflush(60)
        per_block = scale.background_chat_calls // 10
        for _ in range(10):  # interleaved: wrapped and unwrapped alternate in blocks
            for name, ring in (("wrapped", wrapped), ("control", control)):
                for _ in range(per_block):
                    started = time.perf_counter_ns()
                    await ring.chat(request)
                    total = time.perf_counter_ns() - started
                    ours[name].append(total - inner_ns[-1])
        report = await wrapped.usage_logger.aflush(120)
        rows = (await row_counts(bench.server.database_url, key))[0]
    finally:
        await wrapped.usage_logger.aclose(5)
        await close_ring(wrapped)
        await close_ring(control)
    chat_real = {
        "calls": len(ours["wrapped"]),
        "ours": summary_us(ours["wrapped"]),
        "control_unwrapped": summary_us(ours["control"]),
        "rows_on_server": rows,
        "rows_expected": len(ours["wrapped"]) + scale.warmup_calls,
        "flush_pending": report.pending,
    }

    # -- cached answers: the whole call is ours; nobody listens at the server URL
    down_url = f"http://127.0.0.1:{free_port()}"
    ring = bench.ring()
    serve_cached(ring, response)
    cached = with_usage_logging(
        ring,
        server_url=down_url,
        api_key=key,
        delivery="background",
        journal_path=bench.journal_path("background-cached"),
    )
    cached_ns: list[int] = []
    try:
        for _ in range(scale.warmup_calls * 10):
            await cached.chat(request)
        for _ in range(scale.background_cached_calls):
            started = time.perf_counter_ns()
            await cached.chat(request)
            cached_ns.append(time.perf_counter_ns() - started)
        bare_ns = []
        for _ in range(1000):
            started = time.perf_counter_ns()
            await ring.chat(request)
            bare_ns.append(time.perf_counter_ns() - started)
    finally:
        await cached.usage_logger.aclose(0.5)
        await close_ring(cached)
    chat_cached = {
        "calls": len(cached_ns),
        "ours": summary_us(cached_ns),
        "cached_chat_alone": summary_us(bare_ns),
    }

    # -- the hand-over alone
    handover: dict[str, Any] = {}
    for method in ("alog", "log_nowait"):
        usage_logger = UsageLogger(
            LoggerConfig(
                server_url=down_url,
                api_key=key,
                delivery="background",
                journal_path=bench.journal_path(f"handover-{method}"),
            )
        )
        records = make_records(scale.handover_records + 200)
        times: list[int] = []
        try:
            for index, record in enumerate(records):
                started = time.perf_counter_ns()
                if method == "alog":
                    await usage_logger.alog(record)
                else:
                    usage_logger.log_nowait(record)
                if index >= 200:
                    times.append(time.perf_counter_ns() - started)
        finally:
            await usage_logger.aclose(0.5)
        handover[method] = summary_us(times)

    return {"chat_real": chat_real, "chat_cached": chat_cached, "handover": handover}


# --------------------------------------------------------------------------- 3. drain


async def post_plainly(url: str, api_key: str, bodies: list[dict[str, Any]]) -> float:
    """POST every body with one pooled httpx client at CONCURRENCY; seconds taken."""
    async with httpx.AsyncClient(
        base_url=url,
        headers={"X-API-Key": api_key},
        timeout=30.0,
        limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY),
    ) as client:
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(body: dict[str, Any]) -> None:
            async with semaphore:
                answer = await client.post(LOG_PATH, json=body)
                answer.raise_for_status()
                answer.json()

        started = time.perf_counter()
        await asyncio.gather(*(one(body) for body in bodies))
        return time.perf_counter() - started


async def drain(bench: Bench) -> dict[str, Any]:
    """Deliver a journal of N records with ``flush()``; against a plain client posting N bodies.

    The plain client runs half its records before ours and half after (A-B-A), so a drift of the
    machine's load weighs on both alike.
    """
    from llmring_usage import Journal, UsageLogger
    from llmring_usage.config import LoggerConfig

    count = bench.scale.drain_records
    url = bench.server.url
    plain_key, ours_key = bench.key("drain-plain"), bench.key("drain-ours")
    bodies = [record.to_body() for record in make_records(count, origin="bench-plain")]
    path = bench.journal_path("drain")
    journal = Journal(path)
    journal.append(make_records(count, origin="bench-drain"))
    journal.close()

    plain_s = await post_plainly(url, plain_key, bodies[: count // 2])

    started = time.perf_counter()
    usage_logger = UsageLogger(
        LoggerConfig(server_url=url, api_key=ours_key, delivery="background", journal_path=path)
    )
    report = await usage_logger.aflush(timeout_s=max(120.0, count / 10))
    ours_s = time.perf_counter() - started
    counters = usage_logger.counters.snapshot()
    await usage_logger.aclose(5)

    plain_s += await post_plainly(url, plain_key, bodies[count // 2 :])
    plain_rows = await row_counts(bench.server.database_url, plain_key)
    ours_rows = await row_counts(bench.server.database_url, ours_key)
    return {
        "records": count,
        "concurrency": CONCURRENCY,
        "plain": {
            "seconds": round(plain_s, 3),
            "records_per_s": round(count / plain_s, 1),
            "rows_on_server": plain_rows[0],
            "distinct_record_ids": plain_rows[1],
        },
        "ours": {
            "seconds": round(ours_s, 3),
            "records_per_s": round(count / ours_s, 1),
            "rows_on_server": ours_rows[0],
            "distinct_record_ids": ours_rows[1],
            "flush_completed": report.completed,
            "flush_pending": report.pending,
            "counters": counters,
        },
        "ours_over_plain": round((count / ours_s) / (count / plain_s), 3),
    }


# --------------------------------------------------------------------------- 4. outage


class _RssSampler:
    """Highest RSS seen, sampled every 20 ms (a fallback where the kernel's peak cannot be reset)."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


async def outage(bench: Bench, response: Any) -> dict[str, Any]:
    """N wrapped calls (cached answers) in background mode with the server stopped, then recovery.

    Memory is the growth of this process during the calls: the RSS peak (kernel VmHWM after a
    reset, and 20 ms sampling) minus the RSS before. Not tracemalloc: it slows 100,000 calls from
    ~8 s to ~60 s, which the run's 10-minute budget cannot afford.
    """
    from llmring_usage import with_usage_logging

    count = bench.scale.outage_calls
    key = bench.key("outage")
    path = bench.journal_path("outage")
    request = chat_request()
    ring = bench.ring()
    serve_cached(ring, response)
    wrapped = with_usage_logging(
        ring, server_url=bench.server.url, api_key=key, delivery="background", journal_path=path
    )
    usage_logger = wrapped.usage_logger
    bench.server.stop()
    try:
        await wrapped.chat(request)  # starts the worker before the baseline is taken
        while usage_logger.counters.journaled < 1:
            await asyncio.sleep(0.01)
        gc.collect()
        rss_before = rss_bytes()
        kernel_peak = reset_peak_rss()
        started = time.perf_counter()
        with _RssSampler() as sampler:
            for _ in range(count - 1):
                await wrapped.chat(request)
            calls_s = time.perf_counter() - started
            deadline = time.monotonic() + 120
            while usage_logger.counters.journaled < count and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            journaled_s = time.perf_counter() - started
        rss_peak = max(peak_rss_bytes() if kernel_peak else 0, sampler.peak)
        journal_bytes = sizes_on_disk(path)
        pending_before = usage_logger.journal.counts().pending
        counters_down = usage_logger.counters.snapshot()

        bench.server.start()
        started = time.perf_counter()
        report = await usage_logger.aflush(timeout_s=max(300.0, count / 20))
        replay_s = time.perf_counter() - started
        counters = usage_logger.counters.snapshot()
    finally:
        if not bench.server.is_running:
            bench.server.start()
        await usage_logger.aclose(5)
        await close_ring(wrapped)
    rows, distinct = await row_counts(bench.server.database_url, key)
    rss_extra = rss_peak - rss_before
    return {
        "calls": count,
        "calls_seconds": round(calls_s, 3),
        "calls_and_journaled_seconds": round(journaled_s, 3),
        "calls_per_s": round(count / calls_s, 1),
        "rss_extra_peak_mb": round(rss_extra / 1e6, 2),
        "rss_peak_measured_by": "VmHWM (reset) and 20 ms sampling" if kernel_peak else "20 ms sampling",
        "journal_bytes": journal_bytes,
        "journal_bytes_per_record": round(journal_bytes / count, 1),
        "pending_before_recovery": pending_before,
        "counters_while_down": counters_down,
        "replay_seconds": round(replay_s, 3),
        "replay_records_per_s": round(count / replay_s, 1),
        "replay_completed": report.completed,
        "replay_pending": report.pending,
        "counters": counters,
        "rows_on_server": rows,
        "distinct_record_ids": distinct,
    }


# --------------------------------------------------------------------------- 5. journal


def journal(bench: Bench) -> dict[str, Any]:
    """Records/s of ``Journal.append`` alone: in batches (as the worker writes) and one by one."""
    from llmring_usage import Journal

    scale = bench.scale
    batch = scale.journal_batch_size
    results: dict[str, Any] = {}
    store = Journal(bench.journal_path("journal-cost"))
    try:
        records = make_records(scale.journal_batch_records)
        started = time.perf_counter()
        for index in range(0, len(records), batch):
            store.append(records[index : index + batch])
        seconds = time.perf_counter() - started
        results["batched"] = {
            "records": len(records),
            "batch_size": batch,
            "seconds": round(seconds, 3),
            "records_per_s": round(len(records) / seconds, 1),
        }
        singles = make_records(scale.journal_single_records)
        times: list[int] = []
        started = time.perf_counter()
        for record in singles:
            began = time.perf_counter_ns()
            store.append([record])
            times.append(time.perf_counter_ns() - began)
        seconds = time.perf_counter() - started
        results["one_by_one"] = {
            "records": len(singles),
            "seconds": round(seconds, 3),
            "records_per_s": round(len(singles) / seconds, 1),
            "per_append": summary_us(times),
        }
        to_json: list[int] = []
        for record in singles[:2000]:
            began = time.perf_counter_ns()
            record.to_json()
            to_json.append(time.perf_counter_ns() - began)
        results["record_to_json_p50_us"] = round(percentile(to_json, 50) / 1000, 2)
        results["file_bytes"] = sizes_on_disk(store.path)
    finally:
        store.close()
    return results

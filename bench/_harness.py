"""The real parts a benchmark runs against: llmring-server over PostgreSQL, the fake provider, rings.

The server and database helpers are the tests' own (``tests/_support/server.py``), imported from the
source tree so that the benchmark and the tests start the server the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from _support.env import FOREIGN_ENV  # noqa: E402 - needs the path above
from _support.server import (  # noqa: E402 - needs the path above
    ADMIN_DSN,
    SCHEMA,
    RealServer,
    create_database,
    drop_database,
    free_port,
    postgres_reachable,
    try_start_postgres,
)

__all__ = [
    "BenchServer",
    "ProviderProcess",
    "create_database",
    "drop_database",
    "free_port",
    "isolate_environment",
    "machine_info",
    "make_records",
    "require_postgres",
    "row_counts",
]

MODEL = "openai:gpt-4o-mini"
COST = 0.0001737
"""gpt-4o-mini at $0.15 / $0.60 per million tokens for 14 + 286 tokens (what the pricer gives)."""


def isolate_environment(workdir: Path) -> Path:
    """Own HOME and XDG dirs (llmring's registry cache, our journal), no LLMRING_* from outside.

    Call before llmring is imported: its registry cache dir is computed from HOME at import.
    """
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(home)
    os.environ["XDG_DATA_HOME"] = str(home / ".local" / "share")
    os.environ["XDG_CACHE_HOME"] = str(home / ".cache")
    os.environ["XDG_CONFIG_HOME"] = str(home / ".config")
    for name in list(os.environ):
        if name.startswith("LLMRING_") or name in FOREIGN_ENV:
            del os.environ[name]
    no_proxy = ",".join(p for p in (os.environ.get("NO_PROXY", ""), "127.0.0.1,localhost") if p)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = no_proxy
    from llmring.registry import RegistryClient

    RegistryClient.CACHE_DIR = home / ".cache" / "llmring" / "registry"
    return home


def require_postgres() -> None:
    if postgres_reachable() or (try_start_postgres() and postgres_reachable()):
        return
    raise SystemExit(f"bench: PostgreSQL is not reachable at {ADMIN_DSN}; it is needed for llmring-server")


class BenchServer(RealServer):
    """The tests' RealServer (bridge mode, registry on a closed port, no Redis), without access log.

    uvicorn's access log costs the server a log line per request; a deployment that cares about
    throughput turns it off, and every client measured here meets the same server either way.
    """

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["UVICORN_ACCESS_LOG"] = "false"
        return env


class ProviderProcess:
    """``llmring_usage.testing.FakeProvider`` served from its own process.

    In its own process the provider's threads do not compete for this process's GIL, as a remote
    provider would not: the timings of this process are then those of the client side only.
    """

    _CODE = (
        "import json, sys\n"
        "from llmring_usage.testing import FakeProvider\n"
        "with FakeProvider() as provider:\n"
        "    print(json.dumps(provider.env()), flush=True)\n"
        "    sys.stdin.read()\n"
    )

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.env: dict[str, str] = {}

    def __enter__(self) -> ProviderProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-c", self._CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the fake provider process did not start")
        self.env = json.loads(line)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def row_counts(database_url: str, api_key: str) -> tuple[int, int]:
    """Rows the server stored for ``api_key`` and how many distinct record ids they carry."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, count(DISTINCT metadata->>'record_id') AS distinct_ids "
            f"FROM {SCHEMA}.usage_logs WHERE api_key_id = $1",
            api_key,
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["n"]), int(row["distinct_ids"])


def make_records(count: int, *, origin: str = "bench") -> list[Any]:
    """Records shaped like those the interceptor builds for a gpt-4o-mini call, each its own id."""
    from llmring_usage.record import UsageRecord

    started_at = datetime.now(timezone.utc).isoformat()
    return [
        UsageRecord(
            model="gpt-4o-mini",
            provider="openai",
            input_tokens=14,
            output_tokens=286,
            cost=COST,
            latency_ms=3,
            origin=origin,
            metadata={
                "model_alias": MODEL,
                "finish_reason": "stop",
                "usage_source": "response",
                "record_id": uuid.uuid4().hex,
                "client_timestamp": started_at,
            },
        )
        for _ in range(count)
    ]


def _version(distribution: str) -> str:
    try:
        return importlib_metadata.version(distribution)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    """What the figures depend on: CPU, memory, load, versions."""
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    async def postgres_version() -> str:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return {
        "nproc": nproc,
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_total_gib(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "llmring": _version("llmring"),
        "llmring_server": _version("llmring-server"),
        "llmring_usage": _version("llmring-usage"),
        "httpx": _version("httpx"),
        "postgresql": asyncio.run(postgres_version()),
        "git_commit": _git_commit(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def rss_bytes() -> int:
    """Resident set size of this process now."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size since the last ``reset_peak_rss()`` (or the process start)."""
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False when not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def sizes_on_disk(path: Path) -> int:
    """Bytes of a SQLite file with its -wal and -shm companions."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        candidate = Path(str(path) + suffix)
        if candidate.exists():
            total += candidate.stat().st_size
    return total


def elapsed_s(started: float) -> float:
    return round(time.perf_counter() - started, 3)

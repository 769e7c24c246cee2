"""The real llmring-server 0.1.3 over a fresh PostgreSQL database, run as a subprocess for tests.

``RealServer`` owns one server process (bridge or strict key validation) on 127.0.0.1; the database
helpers create and drop the throwaway database it uses. Rows are read straight from
``<schema>.usage_logs`` with asyncpg, because the server's ``/logs`` endpoint hides ``latency_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx

PG_HOST = os.environ.get("LLMRING_USAGE_TEST_PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("LLMRING_USAGE_TEST_PGPORT", "5432"))
PG_USER = os.environ.get("LLMRING_USAGE_TEST_PGUSER", "postgres")
ADMIN_DSN = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
SCHEMA = "llmring"
# Nothing listens on the discard port: the server's registry fetches fail at once, never hang.
CLOSED_URL = "http://127.0.0.1:9/"
_DEFAULT_START_TIMEOUT_S = 30.0
_DEFAULT_STOP_TIMEOUT_S = 5.0

T = TypeVar("T")


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code, even when the calling thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())  # type: ignore[arg-type]
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(factory()))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- PostgreSQL


async def _can_connect(timeout_s: float) -> bool:
    try:
        conn = await asyncpg.connect(ADMIN_DSN, timeout=timeout_s)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return False
    await conn.close()
    return True


def postgres_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the PostgreSQL server for tests answers as user ``postgres``."""
    return run_sync(lambda: _can_connect(timeout_s))


def try_start_postgres(wait_s: float = 20.0) -> bool:
    """Start the local cluster once with ``pg_ctlcluster`` and wait until it answers."""
    versions_dir = Path("/etc/postgresql")
    pg_ctlcluster = shutil.which("pg_ctlcluster")
    if pg_ctlcluster is None or not versions_dir.is_dir():
        return False
    for version in sorted(p.name for p in versions_dir.iterdir()):
        subprocess.run(
            [pg_ctlcluster, "--skip-systemctl-redirect", version, "main", "start"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if postgres_reachable(1.0):
            return True
        time.sleep(0.5)
    return False


def create_database(prefix: str = "llmring_usage_t_") -> str:
    """Create a fresh database and return its DSN."""
    name = prefix + secrets.token_hex(5)

    async def create() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    run_sync(create)
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_database(dsn: str) -> None:
    """Drop the database named in ``dsn``, closing whatever still connects to it."""
    name = dsn.rsplit("/", 1)[1]

    async def drop() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    run_sync(drop)


_API_KEYS_DDL = """
CREATE SCHEMA IF NOT EXISTS llmring_api;
CREATE TABLE IF NOT EXISTS llmring_api.api_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid,
    name text,
    key_hash text UNIQUE NOT NULL,
    is_active bool NOT NULL DEFAULT true
);
"""


# --------------------------------------------------------------------------- the server


class RealServer:
    """One llmring-server process on 127.0.0.1 over the database ``database_url``.

    In ``bridge`` mode any key is accepted and stored verbatim as ``api_key_id``: give each test its
    own ``new_api_key()`` and read back only its rows. In ``strict`` mode only keys added with
    ``add_key()`` pass (others get 401) and rows carry the key's row id, which ``rows()`` maps back.
    ``stop()`` / ``start()`` restart it on the same port over the same database (outage tests).
    """

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        mode: str = "bridge",
        port: int | None = None,
        pool_size: int = 5,
    ) -> None:
        if mode not in ("bridge", "strict"):
            raise ValueError("mode must be 'bridge' or 'strict'")
        self.database_url = database_url
        self.mode = mode
        self.port = port or free_port()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"server-{mode}-{self.port}.log"
        self.pool_size = pool_size
        self.start_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._key_ids: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("LLMRING_") and k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
        }
        env.update(
            LLMRING_DATABASE_URL=self.database_url,
            LLMRING_DATABASE_SCHEMA=SCHEMA,
            LLMRING_API_KEY_VALIDATION_MODE=self.mode,
            LLMRING_REGISTRY_BASE_URL=CLOSED_URL,
            # A Redis may run on this machine: keep the server off it so no cache leaks in.
            LLMRING_REDIS_URL="redis://127.0.0.1:9/0",
            LLMRING_DATABASE_POOL_SIZE=str(self.pool_size),
            LLMRING_DATABASE_POOL_OVERFLOW=str(self.pool_size),
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self, timeout_s: float = _DEFAULT_START_TIMEOUT_S) -> None:
        """Start the process (no-op when running) and wait until ``/health`` says healthy."""
        if self.is_running:
            return
        began = time.monotonic()
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file.write(f"\n--- start on port {self.port} ---\n".encode())
        self._log_file.flush()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "llmring_server.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=self.workdir,  # the server reads ./.env: start it where none exists
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = began + timeout_s
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                last_error = f"process exited with {self._process.returncode}"
                break
            try:
                answer = httpx.get(self.url + "/health", timeout=2.0)
                if answer.status_code == 200 and answer.json().get("status") == "healthy":
                    self.start_seconds = time.monotonic() - began
                    return
                last_error = f"/health answered {answer.status_code} {answer.text[:200]}"
            except (httpx.HTTPError, ValueError) as exc:
                last_error = repr(exc)
            time.sleep(0.1)
        log = self.log_tail()
        self.stop()
        raise RuntimeError(
            f"llmring-server ({self.mode}) did not become healthy on {self.url} within "
            f"{timeout_s:.0f} s: {last_error}\n--- server log ({self.log_path}) ---\n{log}"
        )

    def stop(self, timeout_s: float = _DEFAULT_STOP_TIMEOUT_S) -> None:
        """Terminate the process (kill it after ``timeout_s``); safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout_s)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, max_chars: int = 6000) -> str:
        """The end of the server's combined stdout/stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return "(no log)"

    # ---- keys

    def new_api_key(self, prefix: str = "test") -> str:
        """A key no other test uses (bridge mode stores it verbatim as ``api_key_id``)."""
        return f"{prefix}-{secrets.token_hex(8)}"

    async def add_key(self, key: str, *, active: bool = True) -> str:
        """Register ``key`` for strict mode (its sha256 hex); return the key's row id."""
        key_hash = hashlib.sha256(key.encode()).hexdigest()
        conn = await asyncpg.connect(self.database_url)
        try:
            await conn.execute(_API_KEYS_DDL)
            key_id = await conn.fetchval(
                "INSERT INTO llmring_api.api_keys (name, key_hash, is_active) VALUES ($1, $2, $3)"
                " ON CONFLICT (key_hash) DO UPDATE SET is_active = EXCLUDED.is_active"
                " RETURNING id",
                key[:40],
                key_hash,
                active,
            )
        finally:
            await conn.close()
        self._key_ids[key] = str(key_id)
        return str(key_id)

    def api_key_id(self, key: str) -> str:
        """What the server stores as ``api_key_id`` for ``key``."""
        return self._key_ids.get(key, key) if self.mode == "strict" else key

    # ---- reading rows

    async def rows(self, api_key: str) -> list[dict[str, Any]]:
        """Every ``usage_logs`` row stored for ``api_key``, oldest first, ``metadata`` as a dict."""
        conn = await asyncpg.connect(self.database_url)
        try:
            records = await conn.fetch(
                f"SELECT * FROM {SCHEMA}.usage_logs WHERE api_key_id = $1 ORDER BY created_at, id",
                self.api_key_id(api_key),
            )
        finally:
            await conn.close()
        return [_row_dict(record) for record in records]

    async def count(self, api_key: str) -> int:
        """How many ``usage_logs`` rows ``api_key`` has."""
        conn = await asyncpg.connect(self.database_url)
        try:
            value = await conn.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.usage_logs WHERE api_key_id = $1",
                self.api_key_id(api_key),
            )
        finally:
            await conn.close()
        return int(value)

    async def wait_for_count(self, api_key: str, expected: int, timeout_s: float = 10.0) -> int:
        """Poll ``count`` until it reaches ``expected`` or ``timeout_s`` passes; return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.count(api_key)
            if value >= expected or time.monotonic() >= deadline:
                return value
            await asyncio.sleep(0.05)


def _row_dict(record: asyncpg.Record) -> dict[str, Any]:
    row = dict(record)
    metadata = row.get("metadata")
    if isinstance(metadata, str):
        with contextlib.suppress(ValueError):
            row["metadata"] = json.loads(metadata)
    if row.get("metadata") is None:
        row["metadata"] = {}
    if isinstance(row.get("cost"), Decimal):
        row["cost"] = float(row["cost"])
    for key in ("id", "conversation_id", "project_id"):
        if row.get(key) is not None:
            row[key] = str(row[key])
    return row


def prepare_strict_schema(database_url: str) -> None:
    """Create ``llmring_api.api_keys``, the table strict mode reads and no migration creates."""

    async def prepare() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(_API_KEYS_DDL)
        finally:
            await conn.close()

    run_sync(prepare)

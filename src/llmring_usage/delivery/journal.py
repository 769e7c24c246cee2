"""Journal: the local SQLite file that keeps every record until the server has it (and for good).

Each record is one row, written before it is sent. States: `pending` (not known to be on the
server), `delivered` (with the server's receipt) and `rejected` (the server refused it, with the
reason). A pending row with `check_needed` set may already be on the server (an attempt began
whose outcome is unknown): the server is asked before it is sent again. Rows are claimed with a
lease (pid and expiry) so that several processes sharing one journal never send a row twice; a
lease held by a dead process is void.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import default_journal_path
from ..errors import ConfigurationError
from ..record import Receipt, UsageRecord

_SCHEMA_VERSION = 1
_BUSY_TIMEOUT_MS = 5_000
_DEAD_LEASE_CHECK_S = 2.0
"""How often a claim looks for leases held by dead processes (a crash is rare, claims are not)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    check_needed INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_pid INTEGER,
    lease_until REAL,
    log_id TEXT,
    server_cost REAL,
    server_timestamp TEXT,
    finished_at REAL,
    error TEXT,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    origin TEXT,
    alias TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    cost REAL,
    latency_ms INTEGER
);
DROP INDEX IF EXISTS records_pending;
-- Partial indexes over pending rows only: claiming stays fast with a large delivered history and a
-- large backlog (100,000 pending rows: 0.2 ms instead of 60-80 ms per claim).
CREATE INDEX IF NOT EXISTS records_pending_seq ON records (seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS records_pending_due ON records (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS records_pending_lease ON records (lease_until)
    WHERE state = 'pending' AND lease_until IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_created ON records (created_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_INSERT = """
INSERT OR IGNORE INTO records (
    record_id, created_at, body, model, provider, origin, alias,
    input_tokens, output_tokens, cached_input_tokens, cost, latency_ms,
    lease_owner, lease_pid, lease_until, attempts, check_needed
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


@dataclass(frozen=True)
class JournalCounts:
    pending: int
    delivered: int
    rejected: int
    check_needed: int


@dataclass(frozen=True)
class ClaimedRecord:
    record: UsageRecord
    attempts: int
    check_needed: bool


def _row_values(record: UsageRecord, created_at: float, lease: tuple[Any, ...]) -> tuple[Any, ...]:
    return (
        record.record_id,
        created_at,
        record.to_json(),
        record.model,
        record.provider,
        record.origin,
        record.alias,
        record.input_tokens,
        record.output_tokens,
        record.cached_input_tokens,
        record.cost,
        record.latency_ms,
        *lease,
    )


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Journal:
    """One SQLite file in WAL mode, shared safely by the threads of a process and by processes."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_journal_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(
                str(self.path),
                check_same_thread=False,
                isolation_level=None,
                timeout=_BUSY_TIMEOUT_MS / 1000,
            )
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._connection.executescript(_SCHEMA)
            self._connection.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(_SCHEMA_VERSION),),
            )
        except (sqlite3.Error, OSError) as exc:
            raise ConfigurationError(f"cannot open the usage journal at {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._owner = uuid.uuid4().hex
        self._next_lease_check = 0.0
        """Lease holder name of this Journal object: loggers in one process never free each other's."""

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def append(self, records: Iterable[UsageRecord], *, lease_s: float | None = None) -> int:
        """Write records as pending; a record already in the journal is left as it is.

        With `lease_s` the records are written already leased to this journal for an immediate
        first attempt (one transaction instead of two on the inline path).
        """
        now = time.time()
        lease: tuple[Any, ...] = (
            (self._owner, os.getpid(), now + lease_s, 1, 1)
            if lease_s is not None
            else (None, None, None, 0, 0)
        )
        rows = [_row_values(record, now, lease) for record in records]
        if not rows:
            return 0
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(_INSERT, rows)
            return db.total_changes - before

    def claim(self, limit: int, *, lease_s: float, ignore_schedule: bool = False) -> list[ClaimedRecord]:
        """Lease up to `limit` pending records due for an attempt, oldest first, to this process."""
        now = time.time()
        due = 1e18 if ignore_schedule else now
        with self._transaction() as db:
            if now >= self._next_lease_check:
                self._void_dead_leases(db, now)
                self._next_lease_check = now + _DEAD_LEASE_CHECK_S
            rows = db.execute(
                """
                SELECT seq, body, attempts, check_needed FROM records
                WHERE state = 'pending' AND next_attempt_at <= ?
                  AND (lease_until IS NULL OR lease_until < ?)
                ORDER BY seq LIMIT ?
                """,
                (due, now, limit),
            ).fetchall()
            # Once an attempt starts its outcome is unknown until it ends: a crash leaves it so.
            db.executemany(
                """
                UPDATE records SET lease_owner = ?, lease_pid = ?, lease_until = ?,
                    attempts = attempts + 1, check_needed = 1
                WHERE seq = ?
                """,
                [(self._owner, os.getpid(), now + lease_s, seq) for seq, _, _, _ in rows],
            )
        return [
            ClaimedRecord(UsageRecord.from_json(body), attempts + 1, bool(check))
            for _, body, attempts, check in rows
        ]

    def _void_dead_leases(self, db: sqlite3.Connection, now: float) -> None:
        holders = db.execute(
            "SELECT DISTINCT lease_pid FROM records"
            " WHERE state = 'pending' AND lease_until IS NOT NULL AND lease_until >= ?",
            (now,),
        ).fetchall()
        dead = [pid for (pid,) in holders if pid is not None and not _pid_alive(pid)]
        for pid in dead:
            db.execute(
                "UPDATE records SET lease_until = NULL WHERE lease_pid = ? AND state = 'pending'",
                (pid,),
            )

    def mark_delivered(self, receipts: Iterable[Receipt]) -> None:
        now = time.time()
        rows = [(r.log_id, r.cost, r.timestamp, now, r.record_id) for r in receipts]
        if not rows:
            return
        with self._transaction() as db:
            db.executemany(
                """
                UPDATE records SET state = 'delivered', log_id = ?, server_cost = ?,
                    server_timestamp = ?, finished_at = ?, lease_until = NULL, check_needed = 0,
                    error = NULL
                WHERE record_id = ?
                """,
                rows,
            )

    def mark_rejected(self, record_id: str, reason: str) -> None:
        with self._transaction() as db:
            db.execute(
                """
                UPDATE records SET state = 'rejected', error = ?, finished_at = ?,
                    lease_until = NULL, check_needed = 0
                WHERE record_id = ?
                """,
                (reason, time.time(), record_id),
            )

    def release(self, record_id: str, *, next_attempt_at: float, error: str, outcome_unknown: bool) -> None:
        """End a failed attempt: the record stays pending, to be tried again at `next_attempt_at`.

        `outcome_unknown` keeps `check_needed` set: the server may have stored the record.
        """
        with self._transaction() as db:
            db.execute(
                """
                UPDATE records SET lease_until = NULL, next_attempt_at = ?, error = ?,
                    check_needed = ?
                WHERE record_id = ? AND state = 'pending'
                """,
                (next_attempt_at, error, 1 if outcome_unknown else 0, record_id),
            )

    def release_all(self) -> None:
        """Give back every lease this journal object holds (at close)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE records SET lease_until = NULL WHERE lease_owner = ? AND state = 'pending'",
                (self._owner,),
            )

    def reschedule_now(self) -> None:
        """Make every pending record due now (a flush or a new key ignores earlier backoff)."""
        with self._lock:
            self._connection.execute(
                "UPDATE records SET next_attempt_at = 0 WHERE state = 'pending' AND next_attempt_at > 0"
            )

    # -- reading -----------------------------------------------------------------------------

    def counts(self) -> JournalCounts:
        with self._lock:
            rows = dict(
                self._connection.execute("SELECT state, COUNT(*) FROM records GROUP BY state").fetchall()
            )
            (check,) = self._connection.execute(
                "SELECT COUNT(*) FROM records WHERE state = 'pending' AND check_needed = 1"
            ).fetchone()
        return JournalCounts(
            pending=rows.get("pending", 0),
            delivered=rows.get("delivered", 0),
            rejected=rows.get("rejected", 0),
            check_needed=check,
        )

    def next_due_at(self) -> float | None:
        """When the earliest pending record is due, or None when nothing is pending."""
        with self._lock:
            (due,) = self._connection.execute(
                "SELECT MIN(next_attempt_at) FROM records WHERE state = 'pending'"
            ).fetchone()
        return float(due) if due is not None else None

    def get(self, record_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM records WHERE record_id = ?", (record_id,))
        return rows[0] if rows else None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query as dicts (for the CLI's stats and logs)."""
        with self._lock:
            cursor = self._connection.execute(sql, params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        with self._lock:
            try:
                self._connection.close()
            except sqlite3.Error:
                pass

    def reopen_after_fork(self) -> Journal:
        """A fresh connection for a forked child (SQLite connections must not cross a fork)."""
        return Journal(self.path)


def record_metadata(row: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(row["body"])
    metadata = body.get("metadata") or {}
    return metadata if isinstance(metadata, dict) else {}

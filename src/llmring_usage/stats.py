"""Usage statistics and recent records, from a local journal (SQL) or llmring-server's answers.

Both sources are turned into the same plain shapes, so the command line renders and prints them
one way: `UsageStats` (a summary plus breakdowns by model, provider, origin, alias and day) and
lists of log rows. Times are UTC; a day is a UTC calendar day, as on the server.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .delivery.journal import Journal

_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SERVER_PAGE_SIZE = 500
"""llmring-server answers at most 500 rows per GET /api/v1/logs."""


def parse_when(text: str, *, end_of_range: bool = False, now: datetime | None = None) -> datetime:
    """A UTC datetime from `2025-01-31`, an ISO date-time, `today`, `yesterday` or `7d` / `24h` / `30m` ago.

    A bare date is the start of that UTC day, or its last instant when `end_of_range` (as the
    server reads it). Raises ValueError on anything else.
    """
    now = now or datetime.now(timezone.utc)
    value = text.strip()
    lowered = value.lower()
    if lowered in ("now",):
        return now
    if lowered in ("today", "yesterday"):
        day = now.date() - timedelta(days=1 if lowered == "yesterday" else 0)
        return _day_bound(datetime(day.year, day.month, day.day, tzinfo=timezone.utc), end_of_range)
    relative = _RELATIVE.match(value)
    if relative:
        return now - timedelta(seconds=int(relative.group(1)) * _UNIT_S[relative.group(2).lower()])
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date: use 2025-01-31, 2025-01-31T14:00, today, yesterday, 7d, 24h or 30m"
        ) from None
    parsed = parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
    if "T" not in value and " " not in value:
        return _day_bound(parsed, end_of_range)
    return parsed


def _day_bound(day: datetime, end_of_range: bool) -> datetime:
    start = day.replace(hour=0, minute=0, second=0, microsecond=0)
    return start + timedelta(days=1, microseconds=-1) if end_of_range else start


@dataclass(frozen=True)
class LogFilter:
    """The filters of `llmring-usage logs`, named as on the server's GET /api/v1/logs."""

    since: datetime | None = None
    until: datetime | None = None
    origin: str | None = None
    model: str | None = None
    alias: str | None = None

    def server_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.since is not None:
            params["start_date"] = self.since.isoformat()
        if self.until is not None:
            params["end_date"] = self.until.isoformat()
        for name in ("origin", "model", "alias"):
            value = getattr(self, name)
            if value:
                params[name] = value.split(":", 1)[1] if name == "model" and ":" in value else value
        return params


@dataclass
class UsageStats:
    """Totals and breakdowns of usage, whichever the source."""

    source: str
    location: str
    since: str | None
    until: str | None
    summary: dict[str, Any]
    by_model: list[dict[str, Any]] = field(default_factory=list)
    by_provider: list[dict[str, Any]] = field(default_factory=list)
    by_origin: list[dict[str, Any]] = field(default_factory=list)
    by_alias: list[dict[str, Any]] = field(default_factory=list)
    by_day: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- the journal

_COST = "COALESCE(cost, server_cost)"
_DAY = "strftime('%Y-%m-%d', created_at, 'unixepoch')"
_GROUP_COLUMNS = f"""
    COUNT(*) AS requests,
    COALESCE(SUM(input_tokens), 0) AS input_tokens,
    COALESCE(SUM(output_tokens), 0) AS output_tokens,
    COALESCE(SUM(input_tokens + output_tokens), 0) AS total_tokens,
    SUM({_COST}) AS cost
"""


def _where(filters: LogFilter) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    if filters.since is not None:
        clauses.append("created_at >= ?")
        params.append(filters.since.timestamp())
    if filters.until is not None:
        clauses.append("created_at <= ?")
        params.append(filters.until.timestamp())
    if filters.origin:
        clauses.append("origin = ?")
        params.append(filters.origin)
    if filters.alias:
        clauses.append("alias = ?")
        params.append(filters.alias)
    if filters.model:
        if ":" in filters.model:
            provider, model = filters.model.split(":", 1)
            clauses.append("provider = ? AND model = ?")
            params += [provider, model]
        else:
            clauses.append("model = ?")
            params.append(filters.model)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def journal_stats(journal: Journal, filters: LogFilter | None = None) -> UsageStats:
    """Every record of the journal in the window (pending, delivered and rejected alike)."""
    filters = filters or LogFilter()
    where, params = _where(filters)
    (summary,) = journal.query(
        f"""
        SELECT {_GROUP_COLUMNS},
            COALESCE(SUM(cached_input_tokens), 0) AS cached_input_tokens,
            COUNT(DISTINCT provider || ':' || model) AS unique_models,
            COUNT(DISTINCT origin) AS unique_origins,
            SUM(CASE WHEN {_COST} IS NULL THEN 1 ELSE 0 END) AS unpriced,
            AVG(latency_ms) AS avg_latency_ms,
            SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS pending,
            SUM(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END) AS delivered,
            SUM(CASE WHEN state = 'rejected' THEN 1 ELSE 0 END) AS rejected,
            MIN(created_at) AS first_at, MAX(created_at) AS last_at
        FROM records{where}
        """,
        params,
    )
    summary["cost"] = _cost(summary["cost"])
    for name in ("unpriced", "pending", "delivered", "rejected"):
        summary[name] = int(summary[name] or 0)
    if summary["avg_latency_ms"] is not None:
        summary["avg_latency_ms"] = round(float(summary["avg_latency_ms"]), 1)
    for name in ("first_at", "last_at"):
        summary[name] = _iso(summary[name]) if summary[name] is not None else None

    def grouped(
        key_sql: str, extra_where: str = "", order: str = "requests DESC, name"
    ) -> list[dict[str, Any]]:
        clause = where + ((" AND " if where else " WHERE ") + extra_where if extra_where else "")
        rows = journal.query(
            f"SELECT {key_sql} AS name, {_GROUP_COLUMNS} FROM records{clause} GROUP BY name ORDER BY {order}",
            params,
        )
        for row in rows:
            row["cost"] = _cost(row["cost"])
        return rows

    return UsageStats(
        source="journal",
        location=str(journal.path),
        since=_iso_or_none(filters.since),
        until=_iso_or_none(filters.until),
        summary=summary,
        by_model=grouped("provider || ':' || model"),
        by_provider=grouped("provider"),
        by_origin=grouped("COALESCE(origin, '(none)')"),
        by_alias=grouped("alias", "alias IS NOT NULL"),
        by_day=grouped(_DAY, order="name"),
    )


_LOG_COLUMNS = f"""
    created_at, provider, model, alias, origin, input_tokens, output_tokens,
    cached_input_tokens, {_COST} AS cost, latency_ms, state, record_id,
    json_extract(body, '$.id_at_origin') AS id_at_origin,
    json_extract(body, '$.metadata.usage_source') AS usage_source,
    error
"""
"""The journal's columns in the shape of a log row (shared by `logs` and the demo's table)."""


def _log_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"time": _iso(row.pop("created_at")), **row} for row in rows]


def journal_logs(
    journal: Journal, filters: LogFilter | None = None, *, limit: int = 20
) -> list[dict[str, Any]]:
    """The most recent records of the journal matching `filters`, newest first."""
    where, params = _where(filters or LogFilter())
    rows = journal.query(
        f"""
        SELECT {_LOG_COLUMNS}
        FROM records{where}
        ORDER BY created_at DESC, seq DESC LIMIT ?
        """,
        (*params, limit),
    )
    return _log_rows(rows)


def pending_errors(journal: Journal) -> list[tuple[str, int]]:
    """Why pending records are still pending: each last error with its count, most common first."""
    rows = journal.query(
        "SELECT error, COUNT(*) AS n FROM records WHERE state = 'pending' AND error IS NOT NULL "
        "GROUP BY error ORDER BY n DESC"
    )
    return [(str(row["error"]), int(row["n"])) for row in rows]


def last_seq(journal: Journal) -> int:
    (row,) = journal.query("SELECT COALESCE(MAX(seq), 0) AS seq FROM records")
    return int(row["seq"])


def records_after(journal: Journal, seq: int) -> list[dict[str, Any]]:
    """Records written after `seq`, oldest first, in the shape of `journal_logs`."""
    rows = journal.query(
        f"""
        SELECT {_LOG_COLUMNS}
        FROM records WHERE seq > ? ORDER BY seq
        """,
        (seq,),
    )
    return _log_rows(rows)


# --------------------------------------------------------------------------- the server


def server_stats(body: dict[str, Any], *, location: str, filters: LogFilter | None = None) -> UsageStats:
    """llmring-server's GET /api/v1/stats answer in the journal's shape."""
    filters = filters or LogFilter()
    raw = body.get("summary") or {}
    summary = {
        "requests": int(raw.get("total_requests") or 0),
        "total_tokens": int(raw.get("total_tokens") or 0),
        "cost": _cost(raw.get("total_cost")),
        "unique_models": int(raw.get("unique_models") or 0),
        "unique_origins": int(raw.get("unique_origins") or 0),
    }
    by_model = _server_groups(body.get("by_model"))
    summary["input_tokens"] = sum(row["input_tokens"] or 0 for row in by_model)
    summary["output_tokens"] = sum(row["output_tokens"] or 0 for row in by_model)
    by_day = [
        {
            "name": str(day.get("date")),
            "requests": int(day.get("requests") or 0),
            "cost": _cost(day.get("cost")),
            "top_model": day.get("top_model"),
        }
        for day in body.get("by_day") or []
    ]
    by_day.sort(key=lambda row: row["name"])
    notes = ["the server reports no breakdown by provider"]
    if by_day:
        notes.append("llmring-server 0.1.3 counts only each day's top model in its per-day figures")
    if filters.since is None:
        notes.append("the server covers the last 30 days unless --since is given")
    return UsageStats(
        source="server",
        location=location,
        since=_iso_or_none(filters.since),
        until=_iso_or_none(filters.until),
        summary=summary,
        by_model=by_model,
        by_provider=[],
        by_origin=_server_groups(body.get("by_origin")),
        by_alias=_server_groups(body.get("by_alias")),
        by_day=by_day,
        notes=notes,
    )


def _server_groups(groups: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, values in (groups or {}).items():
        values = values or {}
        input_tokens = values.get("input_tokens")
        output_tokens = values.get("output_tokens")
        rows.append(
            {
                "name": str(name),
                "requests": int(values.get("requests") or 0),
                "input_tokens": int(input_tokens) if input_tokens is not None else None,
                "output_tokens": int(output_tokens) if output_tokens is not None else None,
                "total_tokens": (
                    int(input_tokens) + int(output_tokens)
                    if input_tokens is not None and output_tokens is not None
                    else None
                ),
                "cost": _cost(values.get("cost")),
            }
        )
    rows.sort(key=lambda row: (-row["requests"], row["name"]))
    return rows


def server_log_row(entry: dict[str, Any]) -> dict[str, Any]:
    """One GET /api/v1/logs entry in the journal's log shape (the server hides `latency_ms`)."""
    metadata = entry.get("metadata") or {}
    return {
        "time": str(entry.get("logged_at", "")),
        "provider": entry.get("provider"),
        "model": entry.get("model"),
        "alias": entry.get("alias"),
        "origin": entry.get("origin"),
        "input_tokens": entry.get("input_tokens"),
        "output_tokens": entry.get("output_tokens"),
        "cached_input_tokens": entry.get("cached_input_tokens"),
        "cost": _cost(entry.get("cost")),
        "latency_ms": None,
        "state": "delivered",
        "record_id": metadata.get("record_id"),
        "id_at_origin": entry.get("id_at_origin"),
        "usage_source": metadata.get("usage_source"),
        "error": None,
    }


def server_pages(limit: int) -> list[tuple[int, int]]:
    """(offset, page size) pairs covering `limit` rows in pages the server accepts."""
    return [(offset, min(_SERVER_PAGE_SIZE, limit - offset)) for offset in range(0, limit, _SERVER_PAGE_SIZE)]


# --------------------------------------------------------------------------- helpers


def _cost(value: Any) -> float | None:
    return round(float(value), 10) if value is not None else None


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(float(epoch_s), timezone.utc).isoformat(timespec="seconds")


def _iso_or_none(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None

"""Targets, the printed table, the JSON results and docs/benchmarks.md, all from one results dict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COMMAND = ".venv/bin/python -m bench"

Table = tuple[str, list[str], list[list[str]]]


def _ms(us: float) -> str:
    return f"{us / 1000:.2f} ms"


def _us(us: float) -> str:
    return f"{us:,.1f}"


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with its figure and whether it was met."""
    targets: list[dict[str, Any]] = []
    lat = results.get("latency")
    if lat:
        inline = lat["added_over_bare"]["inline"]["p50_us"]
        builtin = lat["added_over_bare"]["builtin"]["p50_us"]
        post = lat["per_call"]["post"]["p50_us"]
        targets.append(
            {
                "target": "inline: added median <= llmring's built-in logging",
                "figure": f"inline +{_ms(inline)} vs built-in +{_ms(builtin)} "
                f"(x{lat['ratios']['inline_added_over_builtin_added']})",
                "met": inline <= builtin,
            }
        )
        targets.append(
            {
                "target": "inline: added median <= 1.2x the bare POST",
                "figure": f"inline +{_ms(inline)} vs bare POST {_ms(post)} "
                f"(x{lat['ratios']['inline_added_over_bare_post']})",
                "met": inline <= 1.2 * post,
            }
        )
    cost = results.get("background_cost")
    if cost:
        ours = cost["chat_real"]["ours"]
        targets.append(
            {
                "target": "background: p50 < 50 us added per call",
                "figure": f"{_us(ours['p50_us'])} us (wrapped chat minus inner chat, server up)",
                "met": ours["p50_us"] < 50,
            }
        )
        targets.append(
            {
                "target": "background: p99 < 500 us added per call",
                "figure": f"{_us(ours['p99_us'])} us",
                "met": ours["p99_us"] < 500,
            }
        )
    drain = results.get("drain")
    if drain:
        n = drain["records"]
        rows_ok = all(
            drain[side]["rows_on_server"] == n and drain[side]["distinct_record_ids"] == n
            for side in ("plain", "ours")
        )
        targets.append(
            {
                "target": "drain: >= 90% of plain httpx records/s, same concurrency; all rows there",
                "figure": f"{drain['ours']['records_per_s']:,.0f} vs {drain['plain']['records_per_s']:,.0f} "
                f"records/s ({drain['ours_over_plain']:.0%}); rows {drain['ours']['rows_on_server']:,}"
                f" / {drain['plain']['rows_on_server']:,} of {n:,}",
                "met": drain["ours_over_plain"] >= 0.9 and rows_ok,
            }
        )
    out = results.get("outage")
    if out:
        extra = out["rss_extra_peak_mb"]
        targets.append(
            {
                "target": f"outage: < 50 MB extra memory for {out['calls']:,} calls",
                "figure": f"RSS peak +{out['rss_extra_peak_mb']:.1f} MB",
                "met": extra < 50,
            }
        )
        targets.append(
            {
                "target": "outage: every record delivered once after recovery",
                "figure": f"{out['rows_on_server']:,} rows, {out['distinct_record_ids']:,} distinct ids "
                f"of {out['calls']:,}",
                "met": out["rows_on_server"] == out["calls"] == out["distinct_record_ids"],
            }
        )
    return targets


def tables(results: dict[str, Any]) -> list[Table]:
    """Every figure, as (title, headers, rows)."""
    out: list[Table] = []
    lat = results.get("latency")
    if lat:
        rows = []
        labels = {
            "bare": "bare ring (no logging)",
            "builtin": "llmring built-in logging",
            "inline": "llmring-usage inline",
            "background": "llmring-usage background",
            "post": "bare POST of one record (httpx)",
        }
        for name, label in labels.items():
            stats = lat["per_call"][name]
            added = lat["added_over_bare"].get(name)
            rows.append(
                [
                    label,
                    _us(stats["p50_us"]),
                    _us(stats["p95_us"]),
                    _us(stats["p99_us"]),
                    _us(added["p50_us"]) if added else "",
                    _us(added["p95_us"]) if added else "",
                    _us(added["p99_us"]) if added else "",
                    _us(lat["added_p50_blockwise_us"][name]) if name in lat["added_p50_blockwise_us"] else "",
                ]
            )
        out.append(
            (
                f"1. Latency per chat() call, us ({lat['blocks']} interleaved blocks x "
                f"{lat['calls_per_block']} calls per variant, after {lat['warmup_calls']} warm-up calls)",
                ["variant", "p50", "p95", "p99", "added p50", "added p95", "added p99", "added p50 by block"],
                rows,
            )
        )
        ratios = lat["ratios"]
        out.append(
            (
                "1b. Ratios (medians)",
                ["ratio", "value"],
                [
                    ["inline added / built-in added", f"{ratios['inline_added_over_builtin_added']}"],
                    ["inline added / bare POST", f"{ratios['inline_added_over_bare_post']}"],
                    ["built-in added / bare POST", f"{ratios['builtin_added_over_bare_post']}"],
                ],
            )
        )
    cost = results.get("background_cost")
    if cost:

        def row(label: str, stats: dict[str, Any]) -> list[str]:
            return [
                label,
                f"{stats['n']:,}",
                _us(stats["p50_us"]),
                _us(stats["p95_us"]),
                _us(stats["p99_us"]),
                _us(stats["max_us"]),
            ]

        out.append(
            (
                "2. Background mode: time a call spends in our code, us",
                ["what", "n", "p50", "p95", "p99", "max"],
                [
                    row("real chat, server up: wrapped minus inner chat", cost["chat_real"]["ours"]),
                    row(
                        "  control: same timing of an unwrapped ring", cost["chat_real"]["control_unwrapped"]
                    ),
                    row("cached answer: whole wrapped call (server down)", cost["chat_cached"]["ours"]),
                    row("  control: the cached chat alone", cost["chat_cached"]["cached_chat_alone"]),
                    row("hand-over: await alog(record)", cost["handover"]["alog"]),
                    row("hand-over: log_nowait(record)", cost["handover"]["log_nowait"]),
                ],
            )
        )
    drain = results.get("drain")
    if drain:
        out.append(
            (
                f"3. Drain: {drain['records']:,} records to the real server, "
                f"concurrency {drain['concurrency']}",
                ["client", "seconds", "records/s", "rows on server", "distinct ids"],
                [
                    [
                        "plain httpx.AsyncClient + semaphore",
                        f"{drain['plain']['seconds']:.2f}",
                        f"{drain['plain']['records_per_s']:,.0f}",
                        f"{drain['plain']['rows_on_server']:,}",
                        f"{drain['plain']['distinct_record_ids']:,}",
                    ],
                    [
                        "llmring-usage flush() of the journal",
                        f"{drain['ours']['seconds']:.2f}",
                        f"{drain['ours']['records_per_s']:,.0f}",
                        f"{drain['ours']['rows_on_server']:,}",
                        f"{drain['ours']['distinct_record_ids']:,}",
                    ],
                    ["ours / plain", "", f"{drain['ours_over_plain']:.0%}", "", ""],
                ],
            )
        )
    out_ = results.get("outage")
    if out_:
        out.append(
            (
                f"4. Outage: {out_['calls']:,} background calls with the server stopped, then recovery",
                ["figure", "value"],
                [
                    ["calls made in", f"{out_['calls_seconds']:.1f} s"],
                    ["RSS peak over before", f"{out_['rss_extra_peak_mb']:.1f} MB"],
                    [
                        "journal on disk",
                        f"{out_['journal_bytes'] / 1e6:.1f} MB "
                        f"({out_['journal_bytes_per_record']:.0f} B/record)",
                    ],
                    ["pending in the journal before recovery", f"{out_['pending_before_recovery']:,}"],
                    [
                        "replay after the server is back (flush)",
                        f"{out_['replay_seconds']:.1f} s, {out_['replay_records_per_s']:,.0f} records/s",
                    ],
                    [
                        "rows on the server / distinct record ids",
                        f"{out_['rows_on_server']:,} / {out_['distinct_record_ids']:,}",
                    ],
                ],
            )
        )
    jr = results.get("journal")
    if jr:
        out.append(
            (
                "5. Journal alone (SQLite, WAL, synchronous=NORMAL)",
                ["mode", "records", "records/s", "per record"],
                [
                    [
                        f"append in batches of {jr['batched']['batch_size']}",
                        f"{jr['batched']['records']:,}",
                        f"{jr['batched']['records_per_s']:,.0f}",
                        f"{1e6 / jr['batched']['records_per_s']:.1f} us",
                    ],
                    [
                        "append one by one (one transaction each)",
                        f"{jr['one_by_one']['records']:,}",
                        f"{jr['one_by_one']['records_per_s']:,.0f}",
                        f"p50 {_us(jr['one_by_one']['per_append']['p50_us'])} us, "
                        f"p99 {_us(jr['one_by_one']['per_append']['p99_us'])} us",
                    ],
                ],
            )
        )
    return out


def target_table(targets: list[dict[str, Any]]) -> Table:
    return (
        "Targets",
        ["target", "figure", "status"],
        [[t["target"], t["figure"], "met" if t["met"] else "NOT MET"] for t in targets],
    )


def print_tables(results: dict[str, Any], targets: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(width=160)
    for title, headers, rows in [*tables(results), target_table(targets)]:
        table = RichTable(title=title, title_justify="left", show_lines=False)
        for index, header in enumerate(headers):
            table.add_column(header, justify="left" if index == 0 else "right")
        for row in rows:
            styled = list(row)
            if styled and styled[-1] == "NOT MET":
                styled[-1] = "[bold red]NOT MET[/]"
            elif styled and styled[-1] == "met":
                styled[-1] = "[green]met[/]"
            table.add_row(*styled)
        console.print(table)


def markdown_table(table: Table) -> str:
    title, headers, rows = table
    lines = [
        f"**{title}**",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(results: dict[str, Any], directory: Path, stamp: str, *, latest: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, sort_keys=False) + "\n"
    path = directory / f"{stamp}.json"
    path.write_text(text)
    if latest:
        (directory / "latest.json").write_text(text)
    return path


def write_markdown(results: dict[str, Any], targets: list[dict[str, Any]], path: Path, notes: str) -> None:
    m = results["machine"]
    met = sum(1 for t in targets if t["met"])
    parts = [
        "# Benchmarks",
        "",
        "What logging costs the caller, side by side with llmring's own logging, measured in one run "
        "against the real llmring-server over PostgreSQL on 127.0.0.1 and a real `LLMRing` whose "
        "OpenAI provider is served locally (`llmring_usage.testing.FakeProvider`, in its own process).",
        "",
        "## Command",
        "",
        "```",
        COMMAND + "                      # the full run",
        COMMAND + " --quick              # a smoke run of the same code, about 2 minutes",
        COMMAND + " --outage-calls 20000 # a shorter outage (the replay is most of the run)",
        "```",
        "",
        "Most of a full run is the replay of the 100,000 outage records. llmring-server's own speed "
        "limits it (see the drain figures): 5-7 minutes on a quiet 2-core machine, more on a busy one.",
        "",
        "```",
        COMMAND + " --rewrite-doc        # rewrite this file from bench/results/latest.json",
        "```",
        "",
        "It starts llmring-server (bridge mode, a fresh database, a free port, its registry on a closed "
        "port, no Redis, uvicorn access log off) and the fake provider, runs the five measurements, "
        "prints the tables below, writes `bench/results/<timestamp>.json` and `bench/results/latest.json`, "
        "rewrites this file, then stops the server and drops the database.",
        "",
        "## Machine and versions",
        "",
        f"- {m['nproc']} CPUs: {m['cpu_model']}; {m['memory_gib']} GiB; load average at start "
        f"{', '.join(str(x) for x in m['load_average_at_start'])}; {m['platform']}",
        f"- Python {m['python']}, llmring {m['llmring']}, llmring-server {m['llmring_server']}, "
        f"llmring-usage {m['llmring_usage']} (commit {m['git_commit']}), httpx {m['httpx']}, "
        f"PostgreSQL {m['postgresql']}",
        f"- run started {m['started_at']}, took {results['duration_s']:.0f} s"
        + (" (--quick)" if results.get("quick") else ""),
        "",
        f"## Targets: {met} of {len(targets)} met",
        "",
        markdown_table(target_table(targets)),
        "",
        "## Figures",
        "",
    ]
    for table in tables(results):
        parts += [markdown_table(table), ""]
    parts += [notes.strip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))

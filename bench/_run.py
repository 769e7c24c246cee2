"""Runs the benchmark: starts the real parts, measures, reports, cleans up."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
DOC_PATH = ROOT / "docs" / "benchmarks.md"
NOTES_PATH = ROOT / "bench" / "notes.md"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run at a fraction of the scale")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="SECTION",
        choices=["latency", "background_cost", "drain", "outage", "journal"],
        help="run only these sections (the results are then not written as latest)",
    )
    parser.add_argument("--outage-calls", type=int, help="calls during the outage (default 100,000)")
    parser.add_argument("--drain-records", type=int, help="records to drain (default 10,000)")
    parser.add_argument(
        "--rewrite-doc",
        action="store_true",
        help="measure nothing: rewrite docs/benchmarks.md from bench/results/latest.json",
    )
    return parser.parse_args(argv)


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.rewrite_doc:
        return _rewrite_doc()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmring-usage-bench-") as tmp:
        workdir = Path(tmp)
        from bench import _harness

        _harness.isolate_environment(workdir)
        # The logger's warnings during the outage are expected; keep the table readable.
        logging.getLogger("llmring_usage").setLevel(logging.ERROR)
        from bench import _measure

        scale = _measure.QUICK if args.quick else _measure.Scale()
        if args.outage_calls:
            scale = replace(scale, outage_calls=args.outage_calls)
        if args.drain_records:
            scale = replace(scale, drain_records=args.drain_records)
        sections = args.only or ["latency", "background_cost", "drain", "outage", "journal"]

        _harness.require_postgres()
        results: dict[str, Any] = {
            "command": " ".join(["python -m bench", *(argv or sys.argv[1:])]),
            "quick": args.quick,
            "scale": scale.__dict__,
            "machine": _harness.machine_info(),
        }
        from llmring_usage.testing import write_lockfile, write_registry

        registry_url = write_registry(workdir / "registry")
        lockfile = write_lockfile(workdir / "llmring.lock")
        database_url = _harness.create_database("llmring_usage_bench_")
        server = _harness.BenchServer(database_url, workdir / "server", mode="bridge", pool_size=8)
        try:
            server.start()
            _say(f"llmring-server on {server.url} (started in {server.start_seconds:.1f} s)")
            with _harness.ProviderProcess() as provider:
                os.environ.update(provider.env)
                bench = _measure.Bench(workdir, server, registry_url, lockfile, scale)
                asyncio.run(_measure_all(bench, sections, results))
        finally:
            server.stop()
            _harness.drop_database(database_url)
    results["duration_s"] = round(time.perf_counter() - began, 1)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

    from bench import _report

    targets = _report.evaluate(results)
    results["targets"] = targets
    _report.print_tables(results, targets)
    full = not (args.quick or args.only or args.outage_calls or args.drain_records)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + ("" if full else "-partial")
    path = _report.write_json(results, RESULTS_DIR, stamp, latest=full)
    _say(f"results: {path.relative_to(ROOT)}" + (" and bench/results/latest.json" if full else ""))
    if full:
        notes = NOTES_PATH.read_text() if NOTES_PATH.exists() else ""
        _report.write_markdown(results, targets, DOC_PATH, notes)
        _say(f"summary: {DOC_PATH.relative_to(ROOT)}")
    _say(f"done in {results['duration_s']:.0f} s")
    return 0


def _rewrite_doc() -> int:
    import json

    from bench import _report

    results = json.loads((RESULTS_DIR / "latest.json").read_text())
    notes = NOTES_PATH.read_text() if NOTES_PATH.exists() else ""
    _report.write_markdown(results, results["targets"], DOC_PATH, notes)
    _say(f"summary: {DOC_PATH.relative_to(ROOT)} (from bench/results/latest.json)")
    return 0


async def _measure_all(bench: Any, sections: list[str], results: dict[str, Any]) -> None:
    from bench import _measure

    response = await _measure.cached_response(bench)
    for name in sections:
        started = time.perf_counter()
        _say(f"{name} ...")
        if name == "latency":
            results[name] = await _measure.latency(bench)
        elif name == "background_cost":
            results[name] = await _measure.background_cost(bench, response)
        elif name == "drain":
            results[name] = await _measure.drain(bench)
        elif name == "outage":
            results[name] = await _measure.outage(bench, response)
        elif name == "journal":
            results[name] = _measure.journal(bench)
        results[name]["section_seconds"] = round(time.perf_counter() - started, 1)
        _say(f"{name} done in {results[name]['section_seconds']:.1f} s")

"""Run every benchmark (what `make bench` does): each script in a fresh process, one after another.

Prints each result as a JSON line as it arrives, then a table against the targets, and writes all of
it to out/bench/results.json. `--backend postgres|sqlite|both` and `--only NAME` pass through.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "out" / "bench" / "results.json"
SCRIPTS = ("bench_populate", "bench_planning", "bench_query", "bench_seed", "bench_codec")


def run_script(name: str, backend: str) -> list[dict[str, Any]]:
    command = [sys.executable, str(HERE / f"{name}.py")]
    if name != "bench_codec":
        command += ["--backend", backend]
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    results = []
    for line in process.stdout.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if name == "bench_codec":
            record = {"benchmark": "codec", "backend": "-", **record}
        results.append(record)
        print(json.dumps(record), flush=True)
    if process.returncode != 0:
        print(process.stderr, file=sys.stderr)
        results.append({"benchmark": name, "backend": backend, "failed": process.returncode})
    print(f"# {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return results


def find(results: list[dict], benchmark: str, backend: str) -> dict:
    for record in results:
        if record.get("benchmark") == benchmark and record.get("backend") == backend:
            return record
    return {}


def table(results: list[dict]) -> str:
    """Figures against the targets, one row per figure, PostgreSQL and SQLite side by side."""

    def get(record: dict, *path: str):
        for key in path:
            if not isinstance(record, dict) or key not in record:
                return None
            record = record[key]
        return record

    rows = [
        ("populate, trivial make, 2,000 keys, no reservations (keys/s)", "populate_trivial",
         ("no_reserve", "keys_per_s"), ">= 10,000", "1,000-1,200"),
        ("populate, trivial make, 2,000 keys, with leases (keys/s)", "populate_trivial",
         ("reserve", "keys_per_s"), ">= 3,000", "440-500"),
        ("one make, 100,000 part rows (rows/s)", "populate_part_rows", ("rows_per_s",),
         ">= 500,000", "25,000"),
        ("  same rows written by the bare driver (rows/s)", "populate_part_rows",
         ("driver_write", "rows_per_s"), "", ""),
        ("planning 100,000 pending keys, no reservations (s)", "planning", ("plan_all", "best_s"), "< 1", ""),
        ("planning with reservations: count + first claim (s)", "planning",
         ("count_and_first_claim", "best_s"), "< 1", ""),
        ("seed: populate jobs=1 / bare loop (best of each)", "seed", ("jobs1_over_bare",), "<= 1.03", ""),
        ("  paired median", "seed", ("jobs1_over_bare_paired_median",), "", ""),
        ("seed: populate's own time (wall - make calls) / bare loop", "seed",
         ("jobs1_overhead_fraction",), "<= 0.03", ""),
        ("seed: jobs=1 time / jobs=2 time", "seed", ("jobs2_speedup",), ">= 1.8", ""),
        ("  best possible with perfect scheduling and this start-up", "seed",
         ("jobs2_speedup_bound_with_start",), "", ""),
        ("  the same, keys handed out in key order", "seed",
         ("jobs2_speedup_key_order_with_start",), "", ""),
        ("  keys in key order, workers ready at once", "seed",
         ("jobs2_speedup_key_order_instant_workers",), "", ""),
        ("  perfect scheduling, workers ready at once", "seed",
         ("jobs2_speedup_bound_instant_workers",), "", ""),
        ("seed x4 (24 keys): jobs=1 time / jobs=2 time", "seed_longer", ("jobs2_speedup",), "", ""),
        ("  keys in order, instant workers, no database work", "seed_longer",
         ("jobs2_speedup_bound_instant_workers",), "", ""),
        ("query ~15,000 rows as dicts (ms)", "query", ("fetch_dicts", "best_ms"), "<= 46", "139"),
        ("  / same SQL through the bare driver", "query", ("fetch_dicts", "vs_driver"), "<= 1.3", ""),
        ("query as numpy arrays (ms)", "query", ("to_arrays", "best_ms"), "", ""),
        ("count, integer arithmetic, 100,000 rows (ms)", "query", ("arithmetic_count", "best_ms"), "", ""),
        ("  / the same SQL unchecked, bare driver", "query", ("arithmetic_count", "vs_unchecked"), "", ""),
    ]  # fmt: skip
    lines = [
        f"| {'figure':<62} | {'PostgreSQL':>11} | {'SQLite':>11} | {'target':>10} | {'DataJoint':>11} |",
        f"|{'-' * 64}|{'-' * 13}|{'-' * 13}|{'-' * 12}|{'-' * 13}|",
    ]
    for label, benchmark, path, target, datajoint in rows:
        cells = []
        for backend in ("postgres", "sqlite"):
            value = get(find(results, benchmark, backend), *path)
            cells.append("-" if value is None else f"{value:,}" if isinstance(value, int) else f"{value}")
        lines.append(f"| {label:<62} | {cells[0]:>11} | {cells[1]:>11} | {target:>10} | {datajoint:>11} |")
    codec = find(results, "codec", "-")
    if codec:
        lines.append(
            f"\ncodec ({codec.get('array')}): encode {codec.get('encode_ms')} ms = "
            f"{codec.get('encode_ratio')} x tobytes; decode {codec.get('decode_ms')} ms = "
            f"{codec.get('decode_ratio')} x frombuffer+copy"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("postgres", "sqlite", "both"), default="both")
    parser.add_argument("--only", choices=SCRIPTS, action="append", help="run only this script (repeatable)")
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()
    results: list[dict[str, Any]] = []
    for name in args.only or SCRIPTS:
        results += run_script(name, args.backend)
    summary = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "total_s": round(time.perf_counter() - started, 1),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": summary, "results": results}, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"benchmark": "machine", **summary}))
    print()
    print(table(results))
    print(f"\nAll results: {OUT.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()

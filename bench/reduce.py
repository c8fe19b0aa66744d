"""Reducer throughput on a synthetic workday, beside reading the same events from Parquet.

    .venv/bin/python bench/reduce.py                     # 8-hour day, 5 rounds
    .venv/bin/python bench/reduce.py --hours 1 --rounds 3
    .venv/bin/python bench/reduce.py --regen             # write the day's Parquet file again

Input: ``bench/workday.py``'s day for ``--hours`` and ``--seed`` (8 hours: about a million raw
events, 98% pointer moves), written once as
``bench/out/workday-v<generator version>-<hours>h-seed<seed>.parquet`` (zstd) and reused by later
runs. The process is pinned to one core where the OS allows it (``os.sched_setaffinity``). After
one warm-up of each, every round measures, in alternating order:

- baseline: ``pyarrow.parquet.read_table`` of the file;
- read + reduce: the same read, then ``demotrace.dataset.reduce.reduce_events(table, screen)``
  (``screen`` from the day's SCREEN row), timed as a whole and in its two parts.

Reported: medians over the rounds of the three times, events per second for the reducer alone
and for read + reduce, the ratio of read + reduce to the plain read, the number of actions (and
by type). Prints a table and writes ``bench/out/reduce.json``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import workday  # noqa: E402  (bench/ is not a package)
from common import cpu_seconds, rss_peak_mb, save_result  # noqa: E402

OUT = HERE / "out" / "reduce.json"
Reducer = Callable[..., Any]


def load_reducer() -> tuple[Reducer, int | None]:
    """``reduce_events`` and ``REDUCER_VERSION``, or exit with a message saying what is missing."""
    try:
        from demotrace.dataset import reduce as module
    except ImportError as exc:
        raise SystemExit(
            "bench/reduce.py: the reducer is not importable yet: `from demotrace.dataset import "
            f"reduce` failed ({exc}). The bench measures "
            "demotrace.dataset.reduce.reduce_events(table, screen=(w, h)); nothing was measured."
        ) from exc
    fn = getattr(module, "reduce_events", None)
    if not callable(fn):
        raise SystemExit(
            "bench/reduce.py: demotrace.dataset.reduce has no reduce_events(table, screen=(w, h)) "
            "yet; nothing was measured."
        )
    return fn, getattr(module, "REDUCER_VERSION", None)


def pin_one_core() -> int | None:
    """Pin this process to the first core it may use; that core, or None where it cannot."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return None
    return cpu


def prepare(hours: float, seed: int, regen: bool) -> tuple[Path, float | None]:
    """The day's Parquet file, written now if missing (or ``regen``); seconds spent generating
    (None when the cached file was used)."""
    name = f"workday-v{workday.WORKDAY_VERSION}-{hours:g}h-seed{seed}.parquet"
    path = HERE / "out" / name
    if path.exists() and not regen:
        return path, None
    t0 = time.perf_counter()
    table = workday.generate_workday(hours, seed)
    took = time.perf_counter() - t0
    workday.write_parquet(table, path)
    return path, took


def screen_of(table: pa.Table) -> tuple[int, int]:
    kind = table.column("kind").to_numpy()
    hits = np.flatnonzero(kind == 13)  # Kind.SCREEN: x = width, y = height
    if hits.size == 0:
        raise SystemExit("bench/reduce.py: the events hold no SCREEN row")
    i = int(hits[0])
    return int(table.column("x")[i].as_py()), int(table.column("y")[i].as_py())


def time_read(path: Path) -> float:
    gc.collect()
    t0 = time.perf_counter()
    table = pq.read_table(path)
    took = time.perf_counter() - t0
    del table
    return took


def time_read_reduce(
    path: Path, reduce: Reducer, screen: tuple[int, int]
) -> tuple[dict[str, float], Any]:
    gc.collect()
    pid = os.getpid()
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    table = pq.read_table(path)
    t1 = time.perf_counter()
    result = reduce(table, screen=screen)
    t2 = time.perf_counter()
    cpu = cpu_seconds(pid) - cpu0
    times = {"read_s": t1 - t0, "reduce_s": t2 - t1, "read_reduce_s": t2 - t0, "cpu_s": cpu}
    return times, result


def actions_of(result: Any) -> list[Any]:
    actions = getattr(result, "actions", None)
    if not isinstance(actions, list):
        raise SystemExit(
            f"bench/reduce.py: reduce_events returned {type(result).__name__} without an "
            "`actions` list; nothing was measured."
        )
    return actions


def action_types(actions: list[Any]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for a in actions:
        kind = a.get("type") if isinstance(a, dict) else getattr(a, "type", None)
        counts[str(kind)] += 1
    return dict(counts.most_common())


def measure(
    path: Path, reduce: Reducer, screen: tuple[int, int], rounds: int
) -> tuple[dict[str, list[float]], list[Any]]:
    time_read(path)  # warm-up: the file in the page cache, lazy imports done
    _, result = time_read_reduce(path, reduce, screen)
    actions = actions_of(result)
    del result
    runs: dict[str, list[float]] = {
        "read_s": [],
        "rr_read_s": [],
        "reduce_s": [],
        "read_reduce_s": [],
        "read_reduce_cpu_s": [],
    }
    for i in range(rounds):
        order = ("read", "reduce") if i % 2 == 0 else ("reduce", "read")
        for what in order:
            if what == "read":
                runs["read_s"].append(time_read(path))
                continue
            times, result = time_read_reduce(path, reduce, screen)
            if len(actions_of(result)) != len(actions):
                raise SystemExit("bench/reduce.py: the reducer gave a different result this round")
            del result
            runs["rr_read_s"].append(times["read_s"])
            runs["reduce_s"].append(times["reduce_s"])
            runs["read_reduce_s"].append(times["read_reduce_s"])
            runs["read_reduce_cpu_s"].append(times["cpu_s"])
    return runs, actions


def _fmt_runs(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--hours", type=float, default=8.0, help="length of the synthetic day")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--regen", action="store_true", help="generate the day's file again")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    reduce, reducer_version = load_reducer()
    cpu = pin_one_core()
    path, generated_s = prepare(args.hours, args.seed, args.regen)
    table = pq.read_table(path)
    screen = screen_of(table)
    counts = workday.describe(table)
    n = table.num_rows
    del table

    runs, actions = measure(path, reduce, screen, args.rounds)
    med = {k: statistics.median(v) for k, v in runs.items()}
    types = action_types(actions)
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "pinned_cpu": cpu,
        "pyarrow": pa.__version__,
        "numpy": np.__version__,
        "reducer_version": reducer_version,
        "input": {
            "path": str(path.relative_to(HERE.parent)),
            "hours": args.hours,
            "seed": args.seed,
            "screen": list(screen),
            "events": n,
            "moves": counts.get("move", 0),
            "by_kind": counts,
            "parquet_bytes": path.stat().st_size,
            "generated_s": generated_s,
            "workday_version": workday.WORKDAY_VERSION,
        },
        "rounds": args.rounds,
        "runs": runs,
        "median": med,
        "events_per_s": {
            "read": n / med["read_s"],
            "reduce": n / med["reduce_s"],
            "read_reduce": n / med["read_reduce_s"],
        },
        "reduce_us_per_event": med["reduce_s"] / n * 1e6,
        "ratio_read_reduce_to_read": med["read_reduce_s"] / med["read_s"],
        "actions": len(actions),
        "action_types": types,
        "rss_peak_mb": rss_peak_mb(os.getpid()),
    }

    pinned = f"pinned to CPU {cpu}" if cpu is not None else "not pinned"
    title = (
        f"Reducer on a {args.hours:g}-hour synthetic day: {n:,} events "
        f"({counts.get('move', 0) / n:.1%} moves), {args.rounds} rounds, {pinned}"
    )
    tab = Table(title=title)
    tab.add_column("measure")
    tab.add_column("ms per round")
    tab.add_column("median ms", justify="right")
    tab.add_column("events/s", justify="right")
    rows = (
        ("baseline: pq.read_table", "read_s"),
        ("read + reduce_events", "read_reduce_s"),
        ("  of which read", "rr_read_s"),
        ("  of which reduce_events", "reduce_s"),
    )
    for label, key in rows:
        tab.add_row(label, _fmt_runs(runs[key]), f"{med[key] * 1000:.0f}", f"{n / med[key]:,.0f}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # logs and pipes: one line per row
    console.print(tab)
    console.print(
        f"read + reduce / read: [bold]{result['ratio_read_reduce_to_read']:.2f}x[/bold]; "
        f"reduce alone {result['reduce_us_per_event']:.2f} µs per event; "
        f"{len(actions):,} actions ({', '.join(f'{k} {v}' for k, v in types.items())})"
    )
    made = f", generated in {generated_s:.2f} s" if generated_s is not None else " (cached)"
    console.print(
        f"input {result['input']['path']}: {result['input']['parquet_bytes'] / 1e6:.1f} MB"
        f"{made}; peak RSS {result['rss_peak_mb']:.0f} MB"
    )
    save_result(result, args.out, console)


if __name__ == "__main__":
    main()

"""Build throughput and dataset size per hour of work, beside the image work a build cannot skip.

    .venv/bin/python bench/build_bench.py                # 3 rounds, local engine
    .venv/bin/python bench/build_bench.py --rounds 5
    .venv/bin/python bench/build_bench.py --rerecord     # record the demo session again
    .venv/bin/python bench/build_bench.py --ray          # also the Ray engine, reported apart

Input: the shipped demo scenarios recorded once by ``demotrace.demo.run_demo`` (the real
recorder on a private Xvfb desktop, about 70 s; needs Xvfb, jwm and xterm) into
``bench/out/build-home/`` and reused by later runs while its store holds a stopped session.
After one warm-up of each, every round measures, in alternating order:

- baseline: the image work alone: open the store, and for every distinct frame referenced by a
  FRAME event (``data.frame``), reassemble it with ``FrameReader`` and encode it as PNG
  (``compress_level=1``, as the build does);
- build: ``demotrace.dataset.build.build(home, tmp, engine="local", overwrite=True)``: read,
  reduce, cut episodes, encode observations, write Parquet, the card and its plots.

With ``--ray`` the Ray engine is measured after the local rounds: one cold build (it starts and
stops a local Ray runtime), ``ray.init`` alone, then ``--rounds`` builds on the running runtime.

Reported: medians over the rounds of both times (wall and this process's CPU), steps per second,
the ratio build / baseline; the dataset's bytes (``data/*.parquet`` + ``meta/``) and the store's
(``demotrace.db`` + its WAL), hours of work (the episodes' ``duration_s`` summed), both in MB per
hour of work, and bytes per step. Prints tables and writes ``bench/out/build.json``.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import PIL
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from demotrace.dataset.build import build
from demotrace.dataset.reduce import REDUCER_VERSION
from demotrace.errors import DemotraceError
from demotrace.model import Kind
from demotrace.paths import store_dir
from demotrace.store.db import Store
from demotrace.store.frames import FrameReader

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import cpu_seconds, rss_peak_mb, save_result  # noqa: E402  (bench/ is not a package)

OUT = HERE / "out" / "build.json"
HOME = HERE / "out" / "build-home"
DESKTOP_TOOLS = ("Xvfb", "jwm", "xterm")
MB = 1e6


# ------------------------------------------------------------------------------- the recording
def stopped_sessions(home: Path) -> list[dict[str, Any]]:
    """The sessions of ``home``'s store that the recorder ended; [] when there is no store."""
    if not (store_dir(home) / "demotrace.db").exists():
        return []
    try:
        with Store(store_dir(home), create=False) as store:
            return [s for s in store.sessions() if s["status"] in ("stopped", "ended")]
    except DemotraceError:
        return []


def record(home: Path) -> float:
    """Record the shipped scenarios into a fresh ``home``; seconds it took."""
    missing = [tool for tool in DESKTOP_TOOLS if shutil.which(tool) is None]
    if missing:
        raise SystemExit(
            f"bench/build_bench.py: cannot record into {home}: the virtual desktop needs "
            f"{', '.join(missing)}, not installed. Install the desktop tools with "
            "`sudo apt-get install -y --no-install-recommends xvfb jwm xterm python3-tk xdotool "
            "x11-utils`, or copy a recorded DEMOTRACE_HOME there; nothing was measured."
        )
    from demotrace.demo import run_demo

    if home.exists():
        shutil.rmtree(home)
    t0 = time.perf_counter()
    try:
        run_demo(home=home, console=Console(quiet=True))
    except DemotraceError as exc:
        raise SystemExit(
            f"bench/build_bench.py: recording the demo into {home} failed: {exc}; "
            "nothing was measured."
        ) from exc
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------- measures
def image_work(store_root: Path) -> dict[str, float]:
    """The baseline, timed: every distinct FRAME-event frame reassembled and encoded as PNG."""
    gc.collect()
    pid = os.getpid()
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    frames = png_bytes = 0
    with Store(store_root, create=False) as store:
        reader = FrameReader(store.db)
        seen: set[str] = set()
        rows = store.db.execute(
            "SELECT data FROM events WHERE kind = ? ORDER BY session, seq", (int(Kind.FRAME),)
        )
        for (data,) in rows:
            fid = json.loads(data or "{}").get("frame")
            if not fid or fid in seen:
                continue
            seen.add(fid)
            out = io.BytesIO()
            reader.image(bytes.fromhex(fid)).save(out, "PNG", compress_level=1)
            frames += 1
            png_bytes += out.tell()
    took = time.perf_counter() - t0
    return {
        "s": took,
        "cpu_s": cpu_seconds(pid) - cpu0,
        "frames": frames,
        "png_bytes": png_bytes,
    }


def time_build(
    home: Path, out: Path, engine: str = "local"
) -> tuple[dict[str, float], dict[str, Any]]:
    """One ``build`` into ``out``, timed; its times and meta/info.json's content."""
    gc.collect()
    pid = os.getpid()
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    info = build(home, out, engine=engine, overwrite=True)
    took = time.perf_counter() - t0
    return {"s": took, "cpu_s": cpu_seconds(pid) - cpu0}, info


def check_same(first: dict[str, Any], info: dict[str, Any], what: str) -> None:
    if info["counts"] != first["counts"]:
        raise SystemExit(
            f"bench/build_bench.py: {what} gave different counts this round "
            f"({info['counts']} against {first['counts']})"
        )


def measure(
    home: Path, out: Path, rounds: int
) -> tuple[dict[str, list[float]], dict[str, Any], dict[str, float]]:
    """Warm-up, then ``rounds`` alternating rounds; the runs, the build's info, the baseline's
    frame and PNG byte counts."""
    store_root = store_dir(home)
    base = image_work(store_root)  # warm-up: page cache, lazy imports (the card's plots)
    _, first = time_build(home, out)
    runs: dict[str, list[float]] = {
        "baseline_s": [],
        "baseline_cpu_s": [],
        "build_s": [],
        "build_cpu_s": [],
    }
    for i in range(rounds):
        order = ("baseline", "build") if i % 2 == 0 else ("build", "baseline")
        for what in order:
            if what == "baseline":
                b = image_work(store_root)
                if b["frames"] != base["frames"]:
                    raise SystemExit("bench/build_bench.py: the baseline saw other frames")
                runs["baseline_s"].append(b["s"])
                runs["baseline_cpu_s"].append(b["cpu_s"])
                continue
            times, info = time_build(home, out)
            check_same(first, info, "the build")
            runs["build_s"].append(times["s"])
            runs["build_cpu_s"].append(times["cpu_s"])
    return runs, first, {"frames": base["frames"], "png_bytes": base["png_bytes"]}


def measure_ray(home: Path, out: Path, rounds: int, local: dict[str, Any]) -> dict[str, Any]:
    """The Ray engine: one cold build, ``ray.init`` alone, ``rounds`` builds on that runtime."""
    try:
        import ray
    except ImportError as exc:
        raise SystemExit(
            "bench/build_bench.py: --ray needs Ray (pip install 'demotrace[ray]')"
        ) from exc
    cold, info = time_build(home, out, engine="ray")  # starts and stops its own runtime
    check_same(local, info, "the Ray engine")
    t0 = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    init_s = time.perf_counter() - t0
    warm: list[float] = []
    try:
        for _ in range(rounds):
            times, info = time_build(home, out, engine="ray")
            check_same(local, info, "the Ray engine")
            warm.append(times["s"])
    finally:
        ray.shutdown()
    return {
        "ray": ray.__version__,
        "cold_build_s": cold["s"],
        "init_s": init_s,
        "warm_runs_s": warm,
        "warm_build_s": statistics.median(warm),
    }


# ------------------------------------------------------------------------------------- sizes
def files_bytes(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def sizes(home: Path, dataset: Path) -> dict[str, Any]:
    store_root = store_dir(home)
    data = files_bytes(sorted((dataset / "data").glob("*.parquet")))
    meta = files_bytes(sorted((dataset / "meta").rglob("*")))
    whole = files_bytes(sorted(dataset.rglob("*")))
    db = files_bytes([store_root / "demotrace.db", store_root / "demotrace.db-wal"])
    durations = pq.read_table(dataset / "meta" / "episodes.parquet", columns=["duration_s"])
    work_s = float(pc.sum(durations.column("duration_s")).as_py() or 0.0)
    return {
        "dataset_bytes": data + meta,
        "dataset_data_bytes": data,
        "dataset_meta_bytes": meta,
        "dataset_folder_bytes": whole,  # with README.md and plots/
        "store_bytes": db,
        "work_s": work_s,
        "work_hours": work_s / 3600,
    }


def session_seconds(sessions: list[dict[str, Any]]) -> float:
    return sum(
        (s["ended_mono_ns"] - s["started_mono_ns"]) / 1e9
        for s in sessions
        if s["ended_mono_ns"] is not None
    )


# ------------------------------------------------------------------------------------ report
def _fmt_runs(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rerecord", action="store_true", help="record the demo session again")
    ap.add_argument("--ray", action="store_true", help="also the Ray engine (startup apart)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # logs and pipes: one line per row
    recorded_s = None
    sessions = [] if args.rerecord else stopped_sessions(HOME)
    if not sessions:
        console.print(f"recording the demo scenarios into {HOME} (about 70 s) ...")
        recorded_s = record(HOME)
        sessions = stopped_sessions(HOME)
        if not sessions:
            raise SystemExit(
                f"bench/build_bench.py: the recording in {HOME} has no stopped session"
            )

    with tempfile.TemporaryDirectory(prefix="demotrace-build-bench-") as tmp:
        dataset = Path(tmp) / "dataset"
        runs, info, base = measure(HOME, dataset, args.rounds)
        size = sizes(HOME, dataset)
        ray_result = measure_ray(HOME, dataset, args.rounds, info) if args.ray else None

    med = {k: statistics.median(v) for k, v in runs.items()}
    counts = info["counts"]
    steps = counts["steps"]
    hours = size["work_hours"]

    def per_hour(nbytes: int) -> float | None:
        return nbytes / MB / hours if hours else None

    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "pyarrow": pa.__version__,
        "pillow": PIL.__version__,
        "reducer_version": REDUCER_VERSION,
        "input": {
            "home": str(HOME.relative_to(HERE.parent)),
            "sessions": [int(s["id"]) for s in sessions],
            "session_s": session_seconds(sessions),
            "recorded_s": recorded_s,
            "events": counts["events"],
            "steps": steps,
            "episodes": counts["episodes"],
            "distinct_frames": base["frames"],
            "build_frames": counts["frames"],
            "baseline_png_bytes": base["png_bytes"],
        },
        "rounds": args.rounds,
        "runs": runs,
        "median": med,
        "steps_per_s": steps / med["build_s"],
        "baseline_frames_per_s": base["frames"] / med["baseline_s"],
        "ratio_build_to_baseline": med["build_s"] / med["baseline_s"],
        "ratio_build_to_baseline_cpu": med["build_cpu_s"] / med["baseline_cpu_s"],
        "sizes": size,
        "dataset_mb_per_hour": per_hour(size["dataset_bytes"]),
        "store_mb_per_hour": per_hour(size["store_bytes"]),
        "dataset_bytes_per_step": size["dataset_bytes"] / steps if steps else None,
        "store_bytes_per_step": size["store_bytes"] / steps if steps else None,
        "ray": ray_result,
        "rss_peak_mb": rss_peak_mb(os.getpid()),
    }

    title = (
        f"demotrace build of the demo recording: {steps:,} steps in {counts['episodes']} "
        f"episodes, {base['frames']} distinct frames, {counts['events']:,} events; "
        f"{args.rounds} rounds"
    )
    tab = Table(title=title)
    tab.add_column("measure")
    tab.add_column("s per round")
    tab.add_column("median s", justify="right")
    tab.add_column("median CPU s", justify="right")
    tab.add_column("throughput", justify="right")
    tab.add_row(
        "baseline: reassemble + PNG, distinct frames",
        _fmt_runs(runs["baseline_s"]),
        f"{med['baseline_s']:.2f}",
        f"{med['baseline_cpu_s']:.2f}",
        f"{result['baseline_frames_per_s']:,.1f} frames/s",
    )
    tab.add_row(
        "build, engine local",
        _fmt_runs(runs["build_s"]),
        f"{med['build_s']:.2f}",
        f"{med['build_cpu_s']:.2f}",
        f"{result['steps_per_s']:,.1f} steps/s",
    )
    console.print(tab)
    console.print(
        f"build / baseline: [bold]{result['ratio_build_to_baseline']:.2f}x[/bold] wall, "
        f"{result['ratio_build_to_baseline_cpu']:.2f}x CPU; the baseline encodes the "
        f"{base['frames']} distinct frames of FRAME events, the build the {counts['frames']} "
        "its steps use"
    )

    work = f"{size['work_s']:.0f} s of work ({hours * 60:.2f} min, the episodes' durations)"
    st = Table(title=f"Sizes for {work}")
    st.add_column("what")
    st.add_column("bytes", justify="right")
    st.add_column("MB per hour of work", justify="right")
    st.add_column("bytes per step", justify="right")
    for label, nbytes in (
        ("dataset: data/*.parquet + meta/", size["dataset_bytes"]),
        ("  of which data/*.parquet", size["dataset_data_bytes"]),
        ("dataset folder (with card and plots)", size["dataset_folder_bytes"]),
        ("store: demotrace.db + wal", size["store_bytes"]),
        ("baseline PNGs of the distinct frames", base["png_bytes"]),
    ):
        mbh = per_hour(nbytes)
        st.add_row(
            label,
            f"{nbytes:,}",
            f"{mbh:,.1f}" if mbh is not None else "-",
            f"{nbytes / steps:,.0f}" if steps else "-",
        )
    console.print(st)
    if ray_result is not None:
        console.print(
            f"Ray engine ({ray_result['ray']}): cold build {ray_result['cold_build_s']:.2f} s "
            f"(starts and stops a local runtime); ray.init alone {ray_result['init_s']:.2f} s; "
            f"builds on the running runtime {_fmt_runs(ray_result['warm_runs_s'])} s, median "
            f"[bold]{ray_result['warm_build_s']:.2f} s[/bold] "
            f"({ray_result['warm_build_s'] / med['build_s']:.2f}x the local engine)"
        )
    made = f", recorded in {recorded_s:.0f} s" if recorded_s is not None else " (reused)"
    console.print(
        f"input {result['input']['home']}: session {result['input']['session_s']:.0f} s"
        f"{made}; peak RSS {result['rss_peak_mb']:.0f} MB"
    )
    save_result(result, args.out, console)


if __name__ == "__main__":
    main()

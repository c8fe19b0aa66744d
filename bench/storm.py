"""Recorder CPU per input event during a storm, beside `xinput test-xi2 --root` on the same storm.

Storm: 20,000 XTEST pointer moves, 2,000 typed characters (press + release each), 200 clicks,
sent as fast as the X server takes them into an xterm running `cat > /dev/null`.
Each consumer runs alone, the two alternate for ``--repeats`` rounds; the median is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import cpu_seconds, rss_peak_mb, start_demotrace, start_xinput, stop
from demotrace.testbench.desktop import VirtualDesktop
from demotrace.testbench.worker import ScriptedWorker

TEXT = ("The quick brown fox jumps over the lazy dog 0123456789 " * 40)[:2000]


def storm(display: str) -> int:
    with ScriptedWorker(display, speed=1000) as worker:
        worker.motion_storm(20_000)
        worker.type_storm(TEXT)
        for i in range(200):
            worker.click(200 + (i % 20) * 10, 180 + (i // 20) * 10)
        return sum(worker.sent.values())


def measure(display: str, start) -> dict:
    proc = start()
    try:
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.monotonic()
        n = storm(display)
        time.sleep(1.5)  # let the consumer drain what is queued
        cpu = cpu_seconds(proc.pid) - cpu0
        wall = time.monotonic() - t0
        rss = rss_peak_mb(proc.pid)
    finally:
        stop(proc)
    return {"events": n, "cpu_s": cpu, "wall_s": wall, "us_per_event": cpu / n * 1e6, "rss_mb": rss}


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench/out/storm.json"))
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"demotrace": [], "xinput": []}
    with VirtualDesktop() as desk, tempfile.TemporaryDirectory() as tmp:
        desk.launch(
            [
                "xterm",
                "-title",
                "xterm",
                "-geometry",
                "80x24+100+100",
                "-e",
                "sh",
                "-c",
                "cat > /dev/null",
            ],
            "sink",
        )
        desk.wait_for_window("XTerm")
        with ScriptedWorker(desk.display) as w:
            w.click(300, 200)
        for i in range(args.repeats):
            home = Path(tmp) / f"home{i}"
            runs["demotrace"].append(
                measure(desk.display, lambda h=home: start_demotrace(desk.display, h))
            )
            runs["xinput"].append(measure(desk.display, lambda: start_xinput(desk.display)))
    result = {
        name: {
            "us_per_event_median": statistics.median(r["us_per_event"] for r in rs),
            "rss_mb_max": max(r["rss_mb"] for r in rs),
            "runs": rs,
        }
        for name, rs in runs.items()
    }
    result["ratio"] = (
        result["demotrace"]["us_per_event_median"] / result["xinput"]["us_per_event_median"]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        json.dumps(
            {
                k: (v if k == "ratio" else {kk: vv for kk, vv in v.items() if kk != "runs"})
                for k, v in result.items()
            },
            indent=2,
        )
    )
    return result


if __name__ == "__main__":
    main()

"""Helpers shared by the benchmarks: process CPU and memory from /proc, recorder processes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from demotrace.testbench.recorder_process import start_recorder, stop_recorder

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_demotrace(display: str, home: Path, *extra: str) -> subprocess.Popen:
    proc = start_recorder(display, home, *extra, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc


def start_xinput(display: str) -> subprocess.Popen:
    env = dict(os.environ, DISPLAY=display)
    proc = subprocess.Popen(
        ["xinput", "test-xi2", "--root"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    return proc


def stop(proc: subprocess.Popen) -> None:
    stop_recorder(proc)  # SIGINT, then kill: the same for xinput


def save_result(result: dict, out: Path, console: object) -> None:
    """Write a benchmark's result as JSON to ``out`` and say where (``console`` is rich's)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    console.print(f"wrote {out}")  # type: ignore[attr-defined]

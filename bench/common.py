"""Helpers shared by the benchmarks: process CPU and memory from /proc, recorder processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

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
    env = dict(os.environ, DISPLAY=display, DEMOTRACE_HOME=str(home))
    proc = subprocess.Popen(
        [sys.executable, "-m", "demotrace", "record", "--display", display, *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = home / "store" / "demotrace.db"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    if conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]:
                        break
            except sqlite3.Error:
                pass
        time.sleep(0.1)
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
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

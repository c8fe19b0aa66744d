"""Bad situations give one clear paragraph and a non-zero exit, never a traceback or lost data."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from demotrace.privacy.policy import demo_policy_path
from demotrace.testbench.recorder_process import accept_policy, start_recorder
from demotrace.testbench.worker import ScriptedWorker

DEMO = str(demo_policy_path())
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def demotrace(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "demotrace", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_clean_error(result: subprocess.CompletedProcess, code: int, *phrases: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    text = " ".join(result.stderr.split())
    for phrase in phrases:
        assert phrase in text, text


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_no_display(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env["DEMOTRACE_HOME"] = str(tmp_path)
    assert demotrace("consent", "--accept", env=env).returncode == 0
    result = demotrace("record", env=env)
    assert_clean_error(result, 3, "Cannot open the X display", "set DISPLAY")
    result = demotrace("record", "--display", ":987", env=env)
    assert_clean_error(result, 3, "Cannot open the X display :987")


def test_sessions_without_a_store_and_unknown_session(tmp_path: Path) -> None:
    env = dict(os.environ, DEMOTRACE_HOME=str(tmp_path / "nothing"))
    assert_clean_error(demotrace("sessions", env=env), 5, "no demotrace store")
    assert_clean_error(demotrace("show", "3", env=env), 5, "no demotrace store")


@ROOT_ONLY
def test_read_only_data_directory(desktop, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        env = dict(desktop.env, DEMOTRACE_HOME=str(ro / "home"))
        result = demotrace("record", "--duration", "1", env=env)
    assert_clean_error(result, 5, "Cannot open the local store", "read-only")


@ROOT_ONLY
def test_full_disk_stops_cleanly_and_keeps_what_was_committed(desktop, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "size=2m") as full:
        home = full / "home"
        proc = start_recorder(desktop.display, home)
        with ScriptedWorker(desktop.display, speed=1000) as worker:
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                worker.motion_storm(2000)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        _out, stderr = proc.communicate(timeout=30)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)
        assert_clean_error(result, 5, "disk is full", "already captured is kept")
        with sqlite3.connect(home / "store" / "demotrace.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] > 1000


def test_second_recorder_on_the_same_store(desktop, tmp_path: Path) -> None:
    env = dict(desktop.env, DEMOTRACE_HOME=str(tmp_path / "home"))
    first = start_recorder(desktop.display, tmp_path / "home", stderr=subprocess.DEVNULL)
    try:
        second = demotrace("record", "--duration", "1", "--policy", DEMO, env=env)
        assert_clean_error(second, 6, "already writing to the store", f"pid {first.pid}")
    finally:
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=30) == 0


def test_server_without_damage_records_input_without_frames(tmp_path: Path) -> None:
    from demotrace.testbench.desktop import VirtualDesktop

    with VirtualDesktop(wm=False, extra_args=["-extension", "DAMAGE"]) as desk:
        env = dict(desk.env, DEMOTRACE_HOME=str(tmp_path / "home"))
        accept_policy(tmp_path / "home")
        result = demotrace("record", "--duration", "1", "--json", "--policy", DEMO, env=env)
    assert result.returncode == 0, result.stderr
    assert "screen frames are off (the X server lacks the DAMAGE extension)" in " ".join(
        result.stderr.split()
    )
    assert json.loads(result.stdout)["events"]["screen"] == 1


def test_controls_without_a_running_recorder(tmp_path: Path) -> None:
    env = dict(os.environ, DEMOTRACE_HOME=str(tmp_path))
    for args in (("pause",), ("resume",), ("status",), ("pause", "--for", "15m")):
        assert_clean_error(demotrace(*args, env=env), 11, "No recorder is running")
    result = demotrace("pause", "--for", "soon", env=env)
    assert result.returncode == 2 and "not a duration" in result.stderr

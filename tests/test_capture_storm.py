"""Every synthetic input event is recorded, in order, and a SIGKILL loses at most a second."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

from conftest import recording, wide_policy, wide_policy_file
from demotrace.model import Kind
from demotrace.store.db import Store
from demotrace.testbench.recorder_process import start_recorder
from demotrace.testbench.worker import ScriptedWorker

STORM_TEXT = ("The quick brown fox jumps over the lazy dog 0123456789 " * 40)[:2000]


def _typed_text(events: list) -> str:
    """The typed text as stored: the text rows (typing keys themselves carry no content)."""
    return "".join(ev.data["text"] for ev in events if ev.kind == Kind.TEXT)


def _launch_sink_terminal(desktop) -> None:
    desktop.launch(
        ["xterm", "-geometry", "80x24+100+100", "-e", "sh", "-c", "cat > /dev/null"], "xterm-sink"
    )
    desktop.wait_for_window("XTerm")


def _wait_for_all(rec, sent: dict[str, int], timeout: float = 120.0) -> None:
    """Until the recorder has counted as many moves, buttons and keys as the worker sent (on a
    loaded machine the X server's RECORD stream can lag behind by more than any quiet spell)."""
    want = {Kind.MOVE: sent["motion"], Kind.BUTTON: sent["button"], Kind.KEY: sent["key"]}
    deadline = time.monotonic() + timeout
    while any(rec.counts.get(kind, 0) < n for kind, n in want.items()):
        if time.monotonic() > deadline:
            return  # the assertions below say what is missing
        time.sleep(0.05)


def test_storm_every_event_recorded_in_order(desktop, store: Store) -> None:
    _launch_sink_terminal(desktop)
    with ScriptedWorker(desktop.display, speed=1000) as worker:
        with recording(desktop.display, store, wide_policy()) as rec:
            worker.click(300, 200)
            worker.motion_storm(20_000)
            worker.type_storm(STORM_TEXT)
            for i in range(200):
                worker.click(200 + (i % 20) * 10, 180 + (i // 20) * 10)
            _wait_for_all(rec, dict(worker.sent))
        sent = dict(worker.sent)
    counts = store.counts(rec.session)
    assert counts["move"] == sent["motion"]
    assert counts["button"] == sent["button"]
    assert counts["key"] == sent["key"]
    assert sent["motion"] >= 20_000 and sent["key"] >= 4_000 and sent["button"] >= 402

    events = list(store.events(rec.session))
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    inputs = [e for e in events if e.kind in (Kind.MOVE, Kind.BUTTON, Kind.KEY, Kind.WHEEL)]
    stamps = [e.t_ns for e in inputs]
    assert stamps == sorted(stamps), "input events are stored in the order they happened"
    # the storm's moves alternate between two adjacent pixels, without a single gap
    moves = [(e.x, e.y) for e in events if e.kind == Kind.MOVE]
    longest = run = 1
    for a, b in itertools.pairwise(moves):
        run = run + 1 if abs(a[0] - b[0]) == 1 and a[1] == b[1] else 1
        longest = max(longest, run)
    assert longest >= 20_000
    assert _typed_text(events) == STORM_TEXT
    presses = [e for e in events if e.kind == Kind.BUTTON and e.value == 1]
    targets = [e for e in events if e.kind == Kind.TARGET]
    assert len(targets) == len(presses)
    assert all(t.data and t.data.get("app") == "XTerm" for t in targets[-200:])


def test_sigkill_during_storm_keeps_a_clean_store(desktop, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    policy = wide_policy_file(tmp_path)
    proc = start_recorder(desktop.display, home, stderr=subprocess.DEVNULL, policy=policy)
    db_path = home / "store" / "demotrace.db"
    time.sleep(0.5)
    stop = threading.Event()
    sent_until: list[int] = []

    def storm() -> None:
        with ScriptedWorker(desktop.display, speed=1000) as worker:
            while not stop.is_set():
                worker.motion_storm(500)
                sent_until.append(time.monotonic_ns())

    thread = threading.Thread(target=storm)
    thread.start()
    time.sleep(3.0)
    killed_ns = time.monotonic_ns()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    thread.join()
    assert proc.returncode == -signal.SIGKILL

    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        last_t, n_moves = db.execute(
            "SELECT MAX(t_ns), SUM(kind = ?) FROM events", (int(Kind.MOVE),)
        ).fetchone()
    assert n_moves > 1000
    assert killed_ns - last_t <= 1_000_000_000, "at most one second of events lost"
    store = Store(home / "store", create=False)
    from demotrace.summary import session_summary

    assert session_summary(store, 1)["status"] == "interrupted"
    moves = [(e.x, e.y) for e in store.events(1, (Kind.MOVE,))]
    store.close()
    # what was committed is a gap-free prefix: consecutive moves always differ by one pixel
    storm_moves = moves[-n_moves // 2 :]
    assert all(abs(a[0] - b[0]) == 1 for a, b in itertools.pairwise(storm_moves))

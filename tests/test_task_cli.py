"""`demotrace task start/end` against a running recorder: marker rows, redaction, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from demotrace.model import Kind
from demotrace.privacy.policy import demo_policy_path
from demotrace.store.db import Store
from demotrace.testbench.recorder_process import start_recorder, stop_recorder
from test_cli_errors import demotrace as cli

pytestmark = pytest.mark.desktop


def test_task_markers_reach_the_store_redacted(desktop, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = dict(desktop.env, DEMOTRACE_HOME=str(home))
    proc = start_recorder(desktop.display, home, policy=demo_policy_path())
    try:
        started = cli("task", "start", "Mail the report to bob@example.com", "--json", env=env)
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["text"] == "Mail the report to <EMAIL>"
        status = json.loads(cli("status", "--json", env=env).stdout)
        assert status["task"] == "Mail the report to <EMAIL>"
        assert cli("task", "end", env=env).returncode == 0
        assert json.loads(cli("status", "--json", env=env).stdout)["task"] is None
        empty = cli("task", "start", "  ", env=env)
        assert empty.returncode != 0 and "your own words" in empty.stderr
    finally:
        assert stop_recorder(proc) == 0
    with Store(home / "store", create=False) as store:
        markers = [e.data for e in store.events(1, (Kind.MARKER,))]
    assert markers == [
        {"what": "task_start", "text": "Mail the report to <EMAIL>"},
        {"what": "task_end"},
    ]
    raw = b"".join(p.read_bytes() for p in (home / "store").iterdir() if p.is_file())
    assert b"bob@example.com" not in raw


def test_task_without_a_recorder_is_a_clear_error(tmp_path: Path) -> None:
    done = cli("task", "start", "Anything", env=dict(os.environ, DEMOTRACE_HOME=str(tmp_path)))
    assert done.returncode == 11
    assert "Traceback" not in done.stderr and "recorder" in done.stderr


def test_task_hotkey_marks_start_and_end(desktop, tmp_path: Path) -> None:
    import time

    from demotrace.testbench.apps import start_workbench
    from demotrace.testbench.worker import ScriptedWorker

    home = tmp_path / "home"
    home.mkdir()
    env = dict(desktop.env, DEMOTRACE_HOME=str(home))

    def task_state() -> object:
        return json.loads(cli("status", "--json", env=env).stdout)["task"]

    def wait_for(value: object) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if task_state() == value:
                return True
            time.sleep(0.1)
        return False

    wb = start_workbench(desktop)
    assert wb.layout is not None
    proc = start_recorder(desktop.display, home, policy=demo_policy_path())
    try:
        with ScriptedWorker(desktop.display, tmp_path / "truth.jsonl", seed=2, speed=3) as w:
            w.click_widget(wb.layout, "notes")  # an app in scope has the focus
            assert task_state() is None
            w.hotkey("ctrl", "alt", "m")
            assert wait_for("")  # a task is open, without words
            w.hotkey("ctrl", "s")
            w.hotkey("ctrl", "alt", "m")
            assert wait_for(None)
    finally:
        assert stop_recorder(proc) == 0
        wb_proc = desktop.apps.get("workbench")
        if wb_proc is not None:
            desktop.stop_app("workbench")
    with Store(home / "store", create=False) as store:
        markers = [e.data for e in store.events(1, (Kind.MARKER,))]
        keys = [e.name for e in store.events(1, (Kind.KEY,)) if e.value]
    assert markers == [{"what": "task_start"}, {"what": "task_end"}]
    assert "s" in keys  # keys around the hotkey are recorded (the app is in scope) ...
    assert "m" not in keys  # ... and the hotkey's own key is never stored

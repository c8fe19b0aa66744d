"""`demotrace record`, `sessions` and `show` as a person uses them, against the worker's truth."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from demotrace.privacy.policy import demo_policy_path
from demotrace.store.db import Store
from demotrace.store.frames import FrameReader
from demotrace.testbench.apps import start_workbench
from demotrace.testbench.worker import ScriptedWorker


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "demotrace", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_record_sessions_show_and_frames(desktop, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = dict(desktop.env, DEMOTRACE_HOME=str(home))
    app = start_workbench(desktop)
    home.mkdir()
    consent = run_cli("consent", "--accept", "--policy", str(demo_policy_path()), env=env)
    assert consent.returncode == 0, consent.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "demotrace", "record", "--policy", str(demo_policy_path())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = home / "store" / "recorder.lock"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (lock.exists() and lock.read_text()):
        time.sleep(0.1)
    time.sleep(0.5)
    assert app.layout is not None
    with ScriptedWorker(desktop.display, tmp_path / "truth.jsonl", seed=5, speed=3) as worker:
        worker.click_widget(app.layout, "name")
        worker.type_text("Grace")
        worker.click_widget(app.layout, "agree")
        time.sleep(1.0)
        sent = dict(worker.sent)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped session 1" in err

    listed = json.loads(run_cli("sessions", "--json", env=env).stdout)
    assert [s["id"] for s in listed] == [1] and listed[0]["status"] == "stopped"
    shown = json.loads(run_cli("show", "1", "--json", env=env).stdout)
    assert shown["counts"]["move"] == sent["motion"]
    assert shown["counts"]["button"] == sent["button"] == 4
    assert shown["counts"]["key"] == sent["key"]
    assert shown["apps"] == {"Workbench": 1}
    assert shown["frames"]["paired"] >= 3  # two presses and the first key of the burst
    assert shown["bytes"]["frames"] > 0

    out_dir = tmp_path / "frames"
    text = run_cli("show", "1", "--frames-out", str(out_dir), env=env)
    assert text.returncode == 0 and "Workbench" in text.stdout
    pngs = sorted(out_dir.glob("*.png"))
    assert len(pngs) >= shown["frames"]["paired"]
    with Store(home / "store", create=False) as store:
        frame = next(e for e in store.events(1) if e.data and e.data.get("reason") == "press")
        assert frame.data is not None
        expected = np.asarray(FrameReader(store.db).image(bytes.fromhex(frame.data["frame"])))
    written = next(p for p in pngs if p.name.startswith(f"{frame.seq:08d}-"))
    assert np.array_equal(np.asarray(Image.open(written).convert("RGB")), expected)
    assert expected.shape == (desktop.height, desktop.width, 3)

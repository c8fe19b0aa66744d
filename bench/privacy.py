"""Privacy controls and the gate: how fast pause acts, and what the gate costs per event.

1. Control latency: `demotrace pause` / `resume` through the control socket, from sending the
   request to the answer (the recorder has switched by then), beside a `ping` on the same socket
   in the same run (the floor of a socket round trip to that process).
2. Visible latency: from sending `pause` (or pressing the hotkey with XTEST) to the indicator's
   title showing the new state, polled on a separate X connection every 1 ms.
3. Gate cost: synthetic moves and typing through `Gate.feed`, beside the baseline of building
   the same sequence-numbered rows without any decision (what the recorder did before the gate).

Writes bench/out/privacy.json. Run: .venv/bin/python bench/privacy.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import start_demotrace, stop
from demotrace.control import call
from demotrace.model import MOD_ALT, MOD_CONTROL, Kind, Row
from demotrace.privacy.gate import Gate
from demotrace.privacy.policy import demo_policy_path, load_policy
from demotrace.privacy.scope import Layout, TopWindow
from demotrace.testbench.apps import start_workbench
from demotrace.testbench.desktop import VirtualDesktop
from demotrace.testbench.worker import ScriptedWorker


def indicator_title(disp) -> str:
    for child in disp.screen().root.query_tree().children:
        cls = child.get_wm_class()
        if cls and cls[0] == "demotrace-indicator":
            return child.get_wm_name() or ""
    return ""


def wait_title(disp, want: str, t0: float, timeout: float = 3.0) -> float:
    while time.perf_counter() - t0 < timeout:
        if indicator_title(disp) == want:
            return (time.perf_counter() - t0) * 1000
        time.sleep(0.001)
    return float("nan")


def press_hotkey(disp) -> float:
    """ctrl+alt+p through XTEST; returns perf_counter() just before the p press is sent."""
    from Xlib import XK, X
    from Xlib.ext import xtest

    codes = [disp.keysym_to_keycode(XK.string_to_keysym(n)) for n in ("Control_L", "Alt_L", "p")]
    for code in codes[:2]:
        xtest.fake_input(disp, X.KeyPress, detail=code)
    disp.sync()
    t0 = time.perf_counter()
    xtest.fake_input(disp, X.KeyPress, detail=codes[2])
    disp.sync()
    for code in reversed(codes):
        xtest.fake_input(disp, X.KeyRelease, detail=code)
    disp.sync()
    return t0


def controls(rounds: int) -> dict:
    from Xlib import display as xdisplay

    out: dict[str, list[float]] = {"ping_ms": [], "pause_ms": [], "resume_ms": []}
    out.update({"pause_visible_ms": [], "hotkey_visible_ms": []})
    with VirtualDesktop() as desk, tempfile.TemporaryDirectory() as tmp:
        start_workbench(desk)
        home = Path(tmp) / "home"
        home.mkdir()
        proc = start_demotrace(desk.display, home)
        disp = xdisplay.Display(desk.display)
        try:
            with ScriptedWorker(desk.display, speed=5) as worker:
                worker.click(300, 300)
                for _ in range(rounds):
                    for cmd, key in (("ping", "ping_ms"), ("pause", "pause_ms")):
                        t0 = time.perf_counter()
                        call(home, {"cmd": cmd})
                        out[key].append((time.perf_counter() - t0) * 1000)
                    out["pause_visible_ms"].append(wait_title(disp, "demotrace: paused", t0))
                    t0 = time.perf_counter()
                    call(home, {"cmd": "resume"})
                    out["resume_ms"].append((time.perf_counter() - t0) * 1000)
                    wait_title(disp, "demotrace: recording", t0)
                    t0 = press_hotkey(disp)  # from the moment the "p" goes down
                    out["hotkey_visible_ms"].append(wait_title(disp, "demotrace: paused", t0))
                    press_hotkey(disp)
                    wait_title(disp, "demotrace: recording", time.perf_counter())
        finally:
            disp.close()
            stop(proc)
    return {k: summarise(v) for k, v in out.items()}


def summarise(values: list[float]) -> dict:
    good = sorted(v for v in values if v == v)
    return {
        "n": len(values),
        "failed": len(values) - len(good),
        "p50": round(statistics.median(good), 2) if good else None,
        "max": round(max(good), 2) if good else None,
    }


def gate_cost(n_moves: int = 200_000, n_chars: int = 20_000) -> dict:
    policy = load_policy(demo_policy_path())
    windows = (
        TopWindow(1, 11, "Workbench", "workbench", "Workbench", (0, 0, 640, 740)),
        TopWindow(2, 12, "XTerm", "xterm", "private", (660, 400, 1000, 600)),
        TopWindow(3, 13, "XTerm", "xterm", "xterm", (660, 40, 1000, 200)),
    )
    focus = Row(1, None, Kind.FOCUS, data=json.dumps({"window": 11, "app": "Workbench"}))
    moves = [(10 + i, 1, Kind.MOVE, 100 + i % 2, 200) for i in range(n_moves)]
    keys: list[Row] = []
    for i in range(n_chars):
        ch = "abcdefghij klmnopqrstuvwxyz"[i % 27]
        name = "space" if ch == " " else ch
        t = 10_000_000_000 + i * 1_000_000
        keys.append(Row(t, 1, Kind.KEY, 5, 5, 40, 0, 1, name))
        keys.append(Row(t + 500_000, 1, Kind.KEY, 5, 5, 40, 0, 0, name))
    keys.append(Row(keys[-1][0] + 1, 1, Kind.KEY, 5, 5, 36, 0, 1, "Return"))
    result = {}
    for label, rows in (("move", moves), ("key", keys)):
        sink: list = []
        counter = iter(range(1, 1 << 40))
        gate = Gate(policy, sink.extend, counter.__next__, hotkey=("p", MOD_CONTROL | MOD_ALT))
        gate.set_layout(Layout(1, windows, (1280, 800)))
        gate.feed([focus])
        batches = [rows[i : i + 64] for i in range(0, len(rows), 64)]
        t0 = time.process_time()
        for batch in batches:
            gate.feed(batch)
        gate.flush(1 << 62)
        gated = time.process_time() - t0
        base: list = []
        seq = 0
        t0 = time.process_time()
        for batch in batches:  # the old path: number the rows, nothing else
            base.extend([(seq + i, row) for i, row in enumerate(batch, 1)])
            seq += len(batch)
        baseline = time.process_time() - t0
        result[label] = {
            "events": len(rows),
            "gate_us_per_event": round(gated / len(rows) * 1e6, 3),
            "baseline_us_per_event": round(baseline / len(rows) * 1e6, 3),
            "kept": len(sink),
        }
    return result


def main() -> dict:
    result = {"gate": gate_cost(), "controls": controls(10)}
    out = Path("bench/out/privacy.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

"""The frame ring's memory stays bounded when encoding falls behind, and what it stores is whole."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np

from demotrace.capture import screen as screen_mod
from demotrace.capture.base import now_ns
from demotrace.capture.screen import FrameRing
from demotrace.model import Kind
from demotrace.store.db import Store
from demotrace.store.frames import FrameReader
from demotrace.store.writer import Writer
from demotrace.testbench.worker import ScriptedWorker


def test_backlog_and_pixel_cache_stay_under_their_caps(
    desktop, tmp_path: Path, monkeypatch
) -> None:
    real_encode = screen_mod.encode_tile

    def slow_encode(pixels: np.ndarray) -> bytes:
        time.sleep(0.01)  # an encoder far slower than the screen changes
        return real_encode(pixels)

    monkeypatch.setattr(screen_mod, "encode_tile", slow_encode)
    desktop.launch(["xterm", "-geometry", "120x40+0+0", "-e", "sh", "-c", "cat"], "xterm-big")
    desktop.wait_for_window("XTerm")
    store = Store(tmp_path / "store")
    session = store.create_session(
        started_wall_ns=0, started_mono_ns=0, status="test", event_model=1
    )
    writer = Writer(store, 0.2)
    writer.start()
    seq = iter(range(1, 1_000_000))

    def make_event(t_ns: int, data: dict) -> tuple:
        return (
            session,
            next(seq),
            t_ns,
            None,
            int(Kind.FRAME),
            None,
            None,
            None,
            None,
            None,
            None,
            json.dumps(data),
        )

    ring = FrameRing(desktop.display, session, make_event, writer.put_frame)
    ring.backlog_cap = 256 * 1024
    ring.pixel_cap = 512 * 1024
    ring.start()
    ring.set_mask(np.ones((ring.height, ring.width), dtype=bool))  # everything in scope
    peak = {"backlog": 0, "pixels": 0}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak["backlog"] = max(peak["backlog"], ring._backlog_bytes)
            peak["pixels"] = max(peak["pixels"], ring._pixel_bytes)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ScriptedWorker(desktop.display, speed=50) as worker:
        worker.click(300, 200)
        for i in range(40):
            worker.type_storm(f"line {i} " + "x" * 100 + "\n")
            ring.request(now_ns(), None, "press")
            time.sleep(0.03)
    time.sleep(0.5)
    done.set()
    watcher.join()
    ring.stop()
    writer.close()

    one_frame = desktop.width * desktop.height * 4
    assert peak["backlog"] <= 2 * ring.backlog_cap + one_frame
    assert peak["pixels"] <= ring.pixel_cap + 64 * 64 * 4
    assert ring.stats["dropped"] > 0, "the caps were never reached: the test proves nothing"
    assert ring.stats["frames"] > 0
    reader = FrameReader(store.db)
    frames = [e for e in store.events(session, (Kind.FRAME,)) if e.data]
    assert frames
    for ev in frames:  # every stored frame is whole: no tile was dropped half-way
        assert ev.data is not None
        img = reader.image(bytes.fromhex(ev.data["frame"]))
        assert img.size == (desktop.width, desktop.height)
    store.close()

"""The recorder: capture -> (privacy, later) -> store, with frames paired to action starts."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from demotrace import __version__
from demotrace.capture.base import now_ns
from demotrace.capture.screen import ScreenConfig
from demotrace.errors import DemotraceError, StoreError
from demotrace.model import EVENT_MODEL_VERSION, Kind, Row
from demotrace.store.db import Store
from demotrace.store.writer import FrameWrite, Writer


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    commit_interval: float = 0.5
    #: A key press this long after the previous key event starts a new typing burst.
    burst_gap: float = 0.5
    #: A wheel notch this long after the previous one (or in another direction) starts a scroll.
    wheel_gap: float = 0.5
    frames: bool = True
    screen: ScreenConfig = field(default_factory=ScreenConfig)


class ActionStarts:
    """Decides which raw events start an action (and so get the frame from just before them).

    Starts: a button press; the first wheel notch of a run (new direction, a pause of
    ``wheel_gap``, or anything else in between); the first key press of a burst (a pause of
    ``burst_gap`` since the last key event, or a click or scroll in between); a change of the
    active window to another window (not to "no window").
    """

    def __init__(self, burst_gap: float = 0.5, wheel_gap: float = 0.5) -> None:
        self.burst_gap = int(burst_gap * 1e9)
        self.wheel_gap = int(wheel_gap * 1e9)
        self._last_key = -(1 << 62)
        self._last_wheel: tuple[int, int | None] = (-(1 << 62), None)
        self._other_since_key = True
        self._other_since_wheel = True

    def feed(self, row: Row) -> str | None:
        kind = row.kind
        if kind == Kind.MOVE:
            return None
        if kind == Kind.BUTTON:
            if row.value:
                self._other_since_key = self._other_since_wheel = True
                return "press"
            return None
        if kind == Kind.WHEEL:
            last_t, last_code = self._last_wheel
            self._last_wheel = (row.t_ns, row.code)
            self._other_since_key = True
            start = (
                self._other_since_wheel
                or row.code != last_code
                or row.t_ns - last_t > self.wheel_gap
            )
            self._other_since_wheel = False
            return "scroll" if start else None
        if kind == Kind.KEY:
            gap = row.t_ns - self._last_key
            self._last_key = row.t_ns
            self._other_since_wheel = True
            if row.value and (self._other_since_key or gap > self.burst_gap):
                self._other_since_key = False
                return "key"
            return None
        if kind == Kind.FOCUS:
            self._other_since_key = self._other_since_wheel = True
            # no active window (a transient state between two windows) starts nothing
            return "switch" if row.data and '"window":0,' not in row.data else None
        return None


class Recorder:
    """Records one session from an X display into a store until :meth:`stop`."""

    def __init__(
        self, store: Store, display: str | None = None, config: RecorderConfig | None = None
    ):
        self.store = store
        self.display = display if display is not None else os.environ.get("DISPLAY")
        self.config = config or RecorderConfig()
        self.session: int | None = None
        self.failed = threading.Event()
        self.error: DemotraceError | None = None
        self._lock = threading.Lock()
        self._seq = 0
        self._starts = ActionStarts(self.config.burst_gap, self.config.wheel_gap)
        self._capture: Any = None
        self._ring: Any = None
        self._writer: Writer | None = None
        self.counts: dict[int, int] = {}
        self.warnings: list[str] = []
        self.started_ns = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> int:
        from demotrace.capture.x11 import X11Capture  # X code only when a display is wanted

        self.store.acquire_writer()
        capture = X11Capture(self.display)
        w, h = capture.screen_size
        self.started_ns = now_ns()
        self.session = self.store.create_session(
            started_wall_ns=time.time_ns(),
            started_mono_ns=self.started_ns,
            status="recording",
            host=socket.gethostname(),
            display=self.display,
            screen_w=w,
            screen_h=h,
            event_model=EVENT_MODEL_VERSION,
            recorder_version=__version__,
            info=json.dumps({"pid": os.getpid(), "commit_interval": self.config.commit_interval}),
        )
        self._writer = Writer(
            self.store, self.config.commit_interval, on_error=self._on_store_error
        )
        self._writer.start()
        if self.config.frames:
            from demotrace.capture.screen import FrameRing

            ring = FrameRing(
                self.display, self.session, self._frame_event, self._on_frame, self.config.screen
            )
            try:
                ring.start()
                self._ring = ring
            except Exception as exc:  # no DAMAGE or MIT-SHM: record input and windows only
                self.warnings.append(
                    f"screen frames are off ({exc}); input and windows are still recorded"
                )
        self._capture = capture
        capture.start(self._on_rows)
        return self.session

    def stop(self) -> dict[str, Any]:
        """Stop capture, store every frame already requested, commit, close. Safe to call twice."""
        if self._capture is not None:
            self._capture.stop()
        if self._ring is not None:
            self._ring.stop()
        if self._writer is not None:
            self._writer.close()
        status = "failed" if self.error is not None else "stopped"
        if self.session is not None and self._capture is not None:
            # the disk may be full: the session then reads as interrupted
            with contextlib.suppress(Exception):
                self.store.update_session(
                    self.session,
                    ended_wall_ns=time.time_ns(),
                    ended_mono_ns=now_ns(),
                    status=status,
                )
        self._capture = None
        self.store.release_writer()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "session": self.session,
            "events": {Kind(k).name.lower(): n for k, n in sorted(self.counts.items())},
            "seconds": (now_ns() - self.started_ns) / 1e9 if self.started_ns else 0.0,
        }
        if self._ring is not None:
            out["screen"] = dict(self._ring.stats)
        if self._writer is not None:
            out["committed_events"] = self._writer.stats.events
        problems = []
        for part in (self._capture, self._ring):
            if part is not None and getattr(part, "error", None):
                problems.append(part.error)
        if problems:
            out["problems"] = problems
        return out

    # -- data paths ----------------------------------------------------------------------------
    def _on_rows(self, rows: list[Row]) -> None:
        session = self.session
        starts = self._starts
        ring = self._ring
        counts = self.counts
        move = Kind.MOVE
        with self._lock:
            base = self._seq
            self._seq = base + len(rows)
            out = [(session, base + i, *row) for i, row in enumerate(rows, 1)]
            others = 0
            for i, row in enumerate(rows, 1):
                kind = row[2]
                if kind == move:
                    continue
                others += 1
                counts[kind] = counts.get(kind, 0) + 1
                reason = starts.feed(row)
                if ring is not None and reason is not None:
                    ring.request(row.t_ns, base + i, reason)
            counts[move] = counts.get(move, 0) + len(rows) - others
            assert self._writer is not None
            self._writer.put_events(out)

    def _frame_event(self, t_ns: int, data: dict[str, Any]) -> tuple:
        with self._lock:
            self._seq += 1
            self.counts[Kind.FRAME] = self.counts.get(Kind.FRAME, 0) + 1
            return (
                self.session,
                self._seq,
                t_ns,
                None,
                int(Kind.FRAME),
                None,
                None,
                None,
                None,
                None,
                None,
                json.dumps(data, separators=(",", ":")),
            )

    def _on_frame(self, item: FrameWrite) -> None:
        assert self._writer is not None
        self._writer.put_frame(item)

    def _on_store_error(self, error: StoreError) -> None:
        self.error = error
        self.failed.set()

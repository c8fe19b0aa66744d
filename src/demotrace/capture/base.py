"""The capture interface every platform implements, and the session clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from demotrace.model import Row

#: Receives captured rows in capture order. Called from capture threads; must be cheap.
#: Pointer moves, 98% of all events, come as short 5-tuples ``(t_ns, xtime, kind, x, y)``;
#: every other row is a full :class:`~demotrace.model.Row`.
Sink = Callable[[list[Row]], None]


class Source(Protocol):
    """A platform input/window source (X11 today)."""

    screen_size: tuple[int, int]

    def start(self, sink: Sink) -> None: ...

    def stop(self) -> None: ...


def now_ns() -> int:
    """The session clock: CLOCK_MONOTONIC in nanoseconds (same clock as the scripted worker)."""
    return time.monotonic_ns()


class ServerClock:
    """Maps X server timestamps (ms, 32-bit, wrapping) onto the monotonic ns clock.

    The offset is the smallest ``receive_time - server_time`` seen in the current window: the
    delivery latency is never negative, so the minimum is the best estimate, and it is re-taken
    every ``window_s`` seconds so a drifting server clock is followed. A mapped time is never later
    than the true event time by more than the server clock's 1 ms resolution allows, which makes
    "the last frame before the event" conservative.
    """

    WRAP = 1 << 32

    def __init__(self, window_s: float = 30.0) -> None:
        self._offset: int | None = None
        self._window_min: int | None = None
        self._window_ns = int(window_s * 1e9)
        self._window_start = 0
        self._last_x: int | None = None
        self._wraps = 0

    def map(self, xtime: int, recv_ns: int) -> int:
        if (
            self._last_x is not None
            and xtime < self._last_x
            and self._last_x - xtime > self.WRAP // 2
        ):
            self._wraps += 1
        self._last_x = xtime
        x_ns = (xtime + self._wraps * self.WRAP) * 1_000_000
        sample = recv_ns - x_ns
        if self._offset is None or sample < self._offset:
            self._offset = sample
        if self._window_min is None or sample < self._window_min:
            self._window_min = sample
        if recv_ns - self._window_start > self._window_ns:
            if self._window_min is not None:
                self._offset = self._window_min
            self._window_min = None
            self._window_start = recv_ns
        t = x_ns + self._offset
        return t if t <= recv_ns else recv_ns


def process_name(pid: int | None) -> str | None:
    """The process name (``comm``) of a pid, or None when unknown or gone."""
    if not pid:
        return None
    try:
        with open(f"/proc/{int(pid)}/comm", encoding="utf-8", errors="replace") as fh:
            return fh.read().strip() or None
    except (OSError, ValueError):
        return None

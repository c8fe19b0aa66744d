"""The store's one writer: a thread that commits queued rows at a fixed interval.

Capture threads only append to a deque (no wake-up per event); the writer wakes every
``commit_interval`` seconds, writes everything queued in one transaction and commits. A process
killed at any moment therefore loses at most one interval of events, and SQLite's WAL keeps the
database consistent. A write error (disk full, I/O error) stops the writer, keeps what was already
committed, and is reported through :attr:`Writer.error`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from demotrace.errors import StoreError
from demotrace.store.db import Store, _friendly


@dataclass(slots=True)
class FrameWrite:
    """A frame ready to store: its new tiles, its manifest row, and its FRAME event row."""

    tiles: list[tuple[bytes, int, int, int, bytes]]  # hash, session, w, h, data
    frame: tuple | None  # hash, session, w, h, tile, parent, depth, grid, t_grab_ns
    event: tuple  # full events row


@dataclass
class WriterStats:
    events: int = 0
    frames: int = 0
    tiles: int = 0
    commits: int = 0
    last_commit_ns: int = 0
    busy_s: float = field(default=0.0)


_EVENT_SQL = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
#: Pointer moves arrive as short rows; binding the five NULL columns costs more than the insert.
_MOVE_SQL = "INSERT INTO events (session, seq, t_ns, xtime, kind, x, y) VALUES (?,?,?,?,?,?,?)"
_TILE_SQL = "INSERT OR IGNORE INTO tiles VALUES (?,?,?,?,?)"
_FRAME_SQL = "INSERT OR IGNORE INTO frames VALUES (?,?,?,?,?,?,?,?,?)"


class Writer:
    """Owns the write connection; everything else only enqueues."""

    def __init__(
        self,
        store: Store,
        commit_interval: float = 0.25,
        on_error: Callable[[StoreError], None] | None = None,
    ) -> None:
        self.store = store
        self.commit_interval = commit_interval
        self.queue: deque[tuple | FrameWrite] = deque()
        self.stats = WriterStats()
        self.error: StoreError | None = None
        self._on_error = on_error
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._db = sqlite3.connect(store.path, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA synchronous=NORMAL")

    def start(self) -> None:
        self._thread.start()

    def put_events(self, rows: list[tuple]) -> None:
        self.queue.extend(rows)

    def put_frame(self, item: FrameWrite) -> None:
        self.queue.append(item)

    def close(self) -> None:
        """Write everything queued, commit, and stop. Safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        else:
            self.flush()
        self._db.close()

    def _run(self) -> None:
        while not self._stop.wait(self.commit_interval):
            if not self.flush():
                return
        self.flush()

    def flush(self) -> bool:
        """Write and commit what is queued now (from any thread). False once writing failed."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> bool:
        if self.error is not None:
            return False
        n = len(self.queue)
        if not n:
            return True
        started = time.perf_counter()
        events: list[tuple] = []
        moves: list[tuple] = []
        tiles: list[tuple] = []
        frames: list[tuple] = []
        popleft = self.queue.popleft
        for _ in range(n):
            item = popleft()
            if isinstance(item, FrameWrite):
                tiles.extend(item.tiles)
                if item.frame is not None:
                    frames.append(item.frame)
                events.append(item.event)
            elif len(item) == 7:
                moves.append(item)
            else:
                events.append(item)
        try:
            with self._db:
                if tiles:
                    self._db.executemany(_TILE_SQL, tiles)
                if frames:
                    self._db.executemany(_FRAME_SQL, frames)
                if moves:
                    self._db.executemany(_MOVE_SQL, moves)
                if events:
                    self._db.executemany(_EVENT_SQL, events)
        except sqlite3.Error as exc:
            self.error = _friendly(exc, self.store.root, "write to")
            # Keep the batch in memory (nothing silently dropped) for the summary.
            self.queue.extendleft(reversed(events + moves))
            if self._on_error is not None:
                self._on_error(self.error)
            return False
        st = self.stats
        st.events += len(events) + len(moves)
        st.frames += len(frames)
        st.tiles += len(tiles)
        st.commits += 1
        st.last_commit_ns = time.monotonic_ns()
        st.busy_s += time.perf_counter() - started
        return True

"""The screen: damage-driven grabs into a versioned tile grid, paired with actions on request.

One thread owns an X connection with a DAMAGE object on the root window and an mss (MIT-SHM)
grabber. It grabs only where the server reports damage: a short ``settle`` after the first report,
and no sooner than ``min_interval`` plus ``area_interval`` times the damaged share of the screen
after the previous grab (small changes such as a highlighted menu item are grabbed within tens of
milliseconds, whole-screen redraws at a few per second), compares the grabbed tiles with the
current screen, and records a new *version* (tile hashes + grab time) when a tile really changed.
The last ``max_versions`` versions form the ring.

Every damage report is also kept on a short timeline (server time, mapped to the session clock).
A version is known to match the screen from its grab until the first damage reported after the
repair that preceded its grab; so for the frame paired with an action the recorder states when
the screen was last *known* to look like it (``t_verified_ns``), usually the action's own time.

:meth:`FrameRing.request` asks for the last version whose grab finished before a given event time;
requests are answered by the screen thread itself, so a grab that is being registered can never be
missed. Tiles not yet stored are handed, with the frame's manifest, to an encoder thread, which
encodes them (lossless WebP) and passes a :class:`~demotrace.store.writer.FrameWrite` on. Memory
is bounded: the ring, the cache of unstored tile pixels and the encoder backlog all have byte caps
proportional to the screen size.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import select
import struct
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from demotrace.capture.base import ServerClock, now_ns
from demotrace.store.frames import (
    MAX_DEPTH,
    TILE,
    encode_tile,
    frame_hash,
    grid_shape,
    hash_pixels,
    pack_delta,
    pack_full,
)
from demotrace.store.writer import FrameWrite

_DAMAGE_SUBTRACT = 3  # DamageSubtract minor opcode
_DAMAGE_TIME_AREA = struct.Struct("=IhhHH")  # DamageNotify timestamp and area, at byte 12


@dataclass(frozen=True, slots=True)
class ScreenConfig:
    min_interval: float = 0.03
    area_interval: float = 0.25
    settle: float = 0.008
    keyframe_s: float = 10.0
    max_versions: int = 32
    tile: int = TILE


@dataclass(slots=True)
class Version:
    n: int
    t_grab: int  # monotonic ns when the grab that made this version returned
    t_repair: int  # the repair before the latest grab that found the screen equal to this
    hashes: list[bytes]
    fhash: bytes | None = None


@dataclass(slots=True)
class Request:
    t_event: int
    for_seq: int | None
    reason: str


@dataclass(slots=True)
class Job:
    version: Version
    request: Request
    fhash: bytes
    tiles: dict[bytes, np.ndarray]
    manifest: tuple | None  # frame row without tiles, or None when already stored
    verified: int = field(default=0)  # latest time before the event the screen matched


#: Called by the encoder thread with a frame ready to store; returns the FRAME event row.
FrameSink = Callable[[FrameWrite], None]
EventRowFactory = Callable[[int, dict], tuple]


class FrameRing:
    def __init__(
        self,
        display_name: str | None,
        session: int,
        make_event: EventRowFactory,
        sink: FrameSink,
        config: ScreenConfig | None = None,
    ) -> None:
        from demotrace.capture.x11 import open_display

        self.cfg = config or ScreenConfig()
        self.session = session
        self._make_event = make_event
        self._sink = sink
        self._disp = open_display(display_name)
        self._display_name = display_name
        screen = self._disp.screen()
        self.width, self.height = screen.width_in_pixels, screen.height_in_pixels
        self.cols, self.rows = grid_shape(self.width, self.height, self.cfg.tile)
        self._wake_r, self._wake_w = os.pipe()
        self._requests: deque[Request] = deque()
        self._damage_times: list[int] = []  # session-clock times of recent damage reports
        self._clock = ServerClock()
        self._damage_horizon = 0  # damage before this time has been forgotten
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="screen", daemon=True)
        self._encoder = threading.Thread(target=self._encode_loop, name="encoder", daemon=True)
        self._jobs: deque[Job] = deque()
        self._jobs_cv = threading.Condition()
        self._backlog_bytes = 0
        screen_bytes = self.width * self.height * 4
        self.backlog_cap = max(32 << 20, 2 * screen_bytes)
        self.pixel_cap = max(32 << 20, 3 * screen_bytes)
        self.buffer = np.zeros((self.height, self.width), dtype=np.uint32)  # BGRX words
        self.versions: deque[Version] = deque(maxlen=self.cfg.max_versions)
        self._pixels: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._pixel_bytes = 0
        self._stored_tiles: set[bytes] = set()
        self._stored_frames: dict[bytes, int] = {}
        self._last_persisted: tuple[bytes, list[bytes], int] | None = None
        self._last_keyframe_n = -1
        self._last_keyframe_t = 0
        self._last_change = 0
        self.stats = {
            "grabs": 0,
            "versions": 0,
            "frames": 0,
            "dropped": 0,
            "tiles_encoded": 0,
            "encode_s": 0.0,
            "grab_s": 0.0,
        }
        self.error: str | None = None
        # Privacy: pixels outside the mask are black before anything is compared or encoded.
        # No grab happens before the first mask, nor while a new layout is pending or paused.
        self._mask: tuple[np.ndarray, np.ndarray] | None = None  # (mask, visible px per tile)
        self._mask_new = False
        self.mask_pending: Callable[[], bool] = lambda: False
        self._paused = False
        self._forget = False

    # -- public, thread-safe -------------------------------------------------------------------
    def start(self) -> None:
        from Xlib.ext import damage

        if not self._disp.has_extension("DAMAGE"):
            raise RuntimeError("the X server lacks the DAMAGE extension")
        self._disp.damage_query_version()
        root = self._disp.screen().root
        self._damage = root.damage_create(damage.DamageReportBoundingBox)
        ext = self._disp.query_extension("DAMAGE")
        self._damage_event = ext.first_event + damage.DamageNotifyCode
        self._subtract = struct.pack(
            "=BBHIII", ext.major_opcode, _DAMAGE_SUBTRACT, 4, self._damage, 0, 0
        )
        self._disp.sync()
        # From here on the connection carries only DamageNotify events and our DamageSubtract
        # requests, both handled on the raw socket: python-xlib costs more per event than the
        # whole grab.
        self._sock = self._disp.display.socket
        self._thread.start()
        self._encoder.start()

    def stop(self) -> None:
        """Stop grabbing, finish encoding what was requested, close. Safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake()
        self._thread.join(timeout=10)
        with self._jobs_cv:
            self._jobs_cv.notify_all()
        self._encoder.join(timeout=60)
        with contextlib.suppress(Exception):
            self._disp.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def set_mask(self, mask: np.ndarray) -> None:
        """Where frames may show pixels (True) from now on; the next grab covers the screen."""
        if mask.shape != (self.height, self.width):
            fixed = np.zeros((self.height, self.width), dtype=bool)
            h, w = min(self.height, mask.shape[0]), min(self.width, mask.shape[1])
            fixed[:h, :w] = mask[:h, :w]
            mask = fixed
        # Visible pixels per tile: grabs are tile-aligned, so this tells cheaply whether a grab
        # box is all visible, all hidden (no grab needed: it is black and stays black) or mixed
        # (mask it pixel by pixel).
        t = self.cfg.tile
        padded = np.zeros((self.rows * t, self.cols * t), dtype=bool)
        padded[: self.height, : self.width] = mask
        per_tile = padded.reshape(self.rows, t, self.cols, t).sum(axis=(1, 3), dtype=np.int32)
        self._mask = (mask, per_tile)
        self._mask_new = True
        self._wake()

    def set_paused(self, paused: bool) -> None:
        """While paused nothing is grabbed; resuming grabs the whole screen again."""
        self._paused = paused
        if not paused:
            self._mask_new = True
        self._wake()

    def forget(self) -> None:
        """Stored frames and tiles were deleted: store everything afresh from the next grab."""
        self._forget = True
        self._wake()

    def request(self, t_event: int, for_seq: int | None, reason: str) -> None:
        """Persist the last frame grabbed before ``t_event`` (answered on the screen thread)."""
        self._requests.append(Request(t_event, for_seq, reason))
        self._wake()

    # -- screen thread -------------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def _run(self) -> None:
        import mss

        try:
            grabber = mss.MSS(display=self._display_name)
        except Exception as exc:
            self.error = f"screen capture unavailable: {exc}"
            return
        try:
            self._loop(grabber)
        except Exception as exc:  # report, never take the recorder down
            self.error = f"screen capture stopped: {exc!r}"
        finally:
            with contextlib.suppress(Exception):
                grabber.close()

    def _loop(self, grabber: object) -> None:
        cfg = self.cfg
        xfd = self._sock.fileno()
        pending = bytearray()
        dirty: list[int] | None = None
        first_dirty = 0
        last_grab = 0
        # Repair first: damage that python-xlib read before we took the socket over would
        # otherwise never be reported again. The first grab (version 0) covers the whole screen
        # as soon as a mask is known.
        self._sock.sendall(self._subtract)
        while not self._stop.is_set():
            now = now_ns()
            timeout = cfg.keyframe_s
            if self._forget:
                self._forget = False
                self._reset()
            if self._mask_new and not self._paused:
                if dirty is None:
                    first_dirty = now
                dirty = [0, 0, self.width, self.height]
                self._mask_new = False
            if self._mask is None or self._paused or self.mask_pending():
                timeout = 0.01 if self.mask_pending() else cfg.keyframe_s
            elif dirty is not None:
                due = max(first_dirty + int(cfg.settle * 1e9), last_grab + self._interval_ns(dirty))
                timeout = max(0.0, (due - now) / 1e9)
            if self._requests:
                timeout = 0.0  # answer them now; only read what is already there
            readable, _, _ = select.select([xfd, self._wake_r], [], [], timeout)
            x_ready = xfd in readable
            if self._wake_r in readable:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.read(self._wake_r, 4096)
            if x_ready:
                chunk = self._sock.recv(1 << 16)
                if not chunk:
                    raise ConnectionError("the X server closed the connection")
                recv = now_ns()
                pending += chunk
                usable = len(pending) - len(pending) % 32
                for off in range(0, usable, 32):
                    if pending[off] & 0x7F != self._damage_event:
                        continue  # errors, other events: nothing we asked for
                    xtime, x, y, w, h = _DAMAGE_TIME_AREA.unpack_from(pending, off + 12)
                    if not (w and h):
                        continue
                    self._damage_times.append(self._clock.map(xtime, recv))
                    if dirty is None:
                        dirty, first_dirty = [x, y, x + w, y + h], now_ns()
                    else:
                        dirty = [
                            min(dirty[0], x),
                            min(dirty[1], y),
                            max(dirty[2], x + w),
                            max(dirty[3], y + h),
                        ]
                del pending[:usable]
            self._answer_requests()
            now = now_ns()
            if self._mask is None or self._paused or self.mask_pending():
                continue
            if dirty is not None:
                due = max(first_dirty + int(cfg.settle * 1e9), last_grab + self._interval_ns(dirty))
                if now >= due:
                    t_repair = now_ns()
                    self._sock.sendall(self._subtract)  # repair first: later damage re-reports
                    if self._grab(grabber, tuple(dirty), t_repair):
                        dirty = None
                    last_grab = now_ns()
                    self._prune_damage(last_grab)
                    continue
            self._maybe_keyframe(now)
        self._answer_requests()

    def _reset(self) -> None:
        """Forget every version and what was stored; the next grab starts a new chain."""
        self._requests.clear()
        self.versions.clear()
        self._pixels.clear()
        self._pixel_bytes = 0
        self._stored_tiles.clear()
        self._stored_frames.clear()
        self._last_persisted = None
        self._last_keyframe_n = -1
        self._mask_new = True

    def _interval_ns(self, box: list[int]) -> int:
        """Time to leave after the previous grab: longer for larger damaged regions."""
        share = max(0, box[2] - box[0]) * max(0, box[3] - box[1]) / (self.width * self.height)
        return int((self.cfg.min_interval + self.cfg.area_interval * min(1.0, share)) * 1e9)

    def _prune_damage(self, now: int) -> None:
        keep_after = now - 30_000_000_000
        if self._damage_times and self._damage_times[0] < keep_after:
            self._damage_times = [t for t in self._damage_times if t >= keep_after]
            self._damage_horizon = keep_after

    def _grab(self, grabber: object, box: tuple, t_repair: int) -> bool:
        """Grab ``box``, black out what the mask hides, record a version if tiles changed.

        Returns False (nothing recorded) when the window layout changed during the grab: the
        mask may not fit these pixels, so the caller grabs again once the layout is known.
        """
        tile = self.cfg.tile
        x0 = max(0, min(self.width, box[0])) // tile * tile
        y0 = max(0, min(self.height, box[1])) // tile * tile
        x1 = min(self.width, -(-max(0, box[2]) // tile) * tile)
        y1 = min(self.height, -(-max(0, box[3]) // tile) * tile)
        if x1 <= x0 or y1 <= y0:
            return True
        started = time.perf_counter()
        masks = self._mask
        assert masks is not None
        mask, per_tile = masks
        shown = int(per_tile[y0 // tile : -(-y1 // tile), x0 // tile : -(-x1 // tile)].sum())
        if shown == 0 and self.versions:
            # Damage only where nothing may be shown: those pixels are black in every version.
            self.versions[-1].t_repair = t_repair
            return True
        shot = grabber.grab({"left": x0, "top": y0, "width": x1 - x0, "height": y1 - y0})  # type: ignore[attr-defined]
        t_grab = now_ns()
        if self.mask_pending() or masks is not self._mask:
            return False  # the layout changed meanwhile: grab again under the new mask
        # One 32-bit word per pixel (BGRX): a quarter of the comparisons of a byte view.
        region = np.frombuffer(shot.raw, dtype=np.uint32).reshape(y1 - y0, x1 - x0)
        if shown < (y1 - y0) * (x1 - x0):  # privacy: what is not in scope is black, first
            region = np.where(mask[y0:y1, x0:x1], region, np.uint32(0))
        self.stats["grabs"] += 1
        current = self.versions[-1] if self.versions else None
        hashes = list(current.hashes) if current else [b""] * (self.cols * self.rows)
        changed = current is None
        old_region = self.buffer[y0:y1, x0:x1]
        if current is None:
            dirty = np.ones(((y1 - y0 + tile - 1) // tile, (x1 - x0 + tile - 1) // tile), bool)
        else:
            diff = region != old_region
            if not diff.any():
                dirty = None
            else:  # which tiles differ, in two vectorised reductions
                dirty = np.logical_or.reduceat(
                    np.logical_or.reduceat(diff, np.arange(0, y1 - y0, tile), axis=0),
                    np.arange(0, x1 - x0, tile),
                    axis=1,
                )
        if dirty is not None:
            old_region[...] = region
            for ry, rx in zip(*np.nonzero(dirty), strict=True):
                ty, tx = y0 // tile + int(ry), x0 // tile + int(rx)
                sy0, sx0 = ty * tile, tx * tile
                # own copy: the ring may need it after the buffer has moved on
                pixels = self.buffer[sy0 : sy0 + tile, sx0 : sx0 + tile].copy()
                thash = hash_pixels(pixels)
                index = ty * self.cols + tx
                if hashes[index] != thash:
                    hashes[index] = thash
                    changed = True
                    self._keep_pixels(thash, pixels)
        self.stats["grab_s"] += time.perf_counter() - started
        if changed:
            n = self.versions[-1].n + 1 if self.versions else 0
            self.versions.append(Version(n, t_grab, t_repair, hashes))
            self.stats["versions"] += 1
            self._last_change = t_grab
        elif current is not None:
            # Damage was reported, but the pixels are the same: the version is confirmed as of
            # this grab, and only damage after this repair can have changed it.
            current.t_repair = t_repair
        return True

    def _keep_pixels(self, thash: bytes, pixels: np.ndarray) -> None:
        if thash in self._stored_tiles or thash in self._pixels:
            return
        self._pixels[thash] = pixels
        self._pixel_bytes += pixels.nbytes
        while self._pixel_bytes > self.pixel_cap and self._pixels:
            _h, old = self._pixels.popitem(last=False)
            self._pixel_bytes -= old.nbytes

    def _answer_requests(self) -> None:
        while self._requests:
            req = self._requests.popleft()
            version = None
            for v in reversed(self.versions):
                if v.t_grab <= req.t_event:
                    version = v
                    break
            if version is None:
                self.stats["dropped"] += 1
                continue
            self._persist(version, req)

    def _maybe_keyframe(self, now: int) -> None:
        if not self.versions or self._paused:
            return
        current = self.versions[-1]
        if current.n == self._last_keyframe_n or current.fhash is not None:
            return
        if self._last_persisted is not None and now - self._last_change > self.cfg.keyframe_s * 1e9:
            return  # the screen is not changing: no keyframes
        if now - self._last_keyframe_t < self.cfg.keyframe_s * 1e9:
            return
        self._last_keyframe_t = now
        self._last_keyframe_n = current.n
        self._persist(current, Request(now, None, "keyframe"))

    def _verified(self, version: Version, t_event: int) -> int:
        """Latest time up to ``t_event`` the screen is known to have looked like ``version``.

        That is the event time itself unless damage was reported after the repair that preceded
        the version's grab; then it is the time of that damage.
        """
        if version.t_repair < self._damage_horizon:
            return version.t_grab  # older than the damage timeline: only the grab is known
        times = self._damage_times
        i = bisect.bisect_right(times, version.t_repair)
        if i < len(times) and times[i] <= t_event:
            return times[i]
        return t_event

    def _persist(self, version: Version, req: Request) -> None:
        if version.fhash is None:
            version.fhash = frame_hash(self.width, self.height, self.cfg.tile, version.hashes)
        fhash = version.fhash
        manifest = None
        tiles: dict[bytes, np.ndarray] = {}
        if fhash not in self._stored_frames:
            for thash in version.hashes:
                if thash in self._stored_tiles or thash in tiles:
                    continue
                pixels = self._pixels.get(thash)
                if pixels is None:
                    self.stats["dropped"] += 1  # evicted before it could be stored
                    return
                tiles[thash] = pixels
            # Bounded backlog: keyframes give way first; an action's frame only past twice the
            # cap. Decided before any bookkeeping, so a dropped frame leaves no tile half-stored.
            size = sum(p.nbytes for p in tiles.values())
            cap = self.backlog_cap if req.reason == "keyframe" else 2 * self.backlog_cap
            if self._backlog_bytes + size > cap:
                self.stats["dropped"] += 1
                return
            parent, depth = None, 0
            last = self._last_persisted
            if last is not None and last[2] < MAX_DEPTH:
                changes = [
                    (i, h)
                    for i, (h, p) in enumerate(zip(version.hashes, last[1], strict=True))
                    if h != p
                ]
                if len(changes) * 2 < len(version.hashes):
                    parent, depth = last[0], last[2] + 1
                    grid = pack_delta(changes)
            if parent is None:
                grid = pack_full(version.hashes)
            manifest = (
                fhash,
                self.session,
                self.width,
                self.height,
                self.cfg.tile,
                parent,
                depth,
                grid,
                version.t_grab,
            )
            if len(self._stored_frames) > 100_000:  # bounded; the store ignores duplicates
                self._stored_frames.clear()
            self._stored_frames[fhash] = depth
            self._last_persisted = (fhash, version.hashes, depth)
            for thash in tiles:
                self._stored_tiles.add(thash)
                pixels = self._pixels.pop(thash, None)
                if pixels is not None:
                    self._pixel_bytes -= pixels.nbytes
        job = Job(version, req, fhash, tiles, manifest, self._verified(version, req.t_event))
        size = sum(p.nbytes for p in tiles.values())
        with self._jobs_cv:
            self._jobs.append(job)
            self._backlog_bytes += size
            self._jobs_cv.notify()

    # -- encoder thread ------------------------------------------------------------------------
    def _encode_loop(self) -> None:
        while True:
            with self._jobs_cv:
                while not self._jobs and not self._stop.is_set():
                    self._jobs_cv.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            started = time.perf_counter()
            tiles = []
            size = 0
            for thash, pixels in job.tiles.items():
                tiles.append(
                    (thash, self.session, pixels.shape[1], pixels.shape[0], encode_tile(pixels))
                )
                size += pixels.nbytes
            self.stats["encode_s"] += time.perf_counter() - started
            self.stats["tiles_encoded"] += len(tiles)
            self.stats["frames"] += 1
            with self._jobs_cv:
                self._backlog_bytes -= size
            v, req = job.version, job.request
            data = {
                "frame": job.fhash.hex(),
                "reason": req.reason,
                "t_grab_ns": v.t_grab,
                "t_verified_ns": job.verified,
                "age_ns": req.t_event - job.verified,
                "region": [0, 0, self.width, self.height],
            }
            if req.for_seq is not None:
                data["for_seq"] = req.for_seq
            self._sink(FrameWrite(tiles, job.manifest, self._make_event(req.t_event, data)))

"""Collector ingest: throughput and latency with 1, 8 and 32 simulated devices on loopback, for
events and for frames, on SQLite and PostgreSQL, beside a bare endpoint that only stores the bytes.

    .venv/bin/python bench/ingest.py                    # full run (about 3 minutes on 2 cores)
    .venv/bin/python bench/ingest.py --profile          # and py-spy the server (30 s more)
    .venv/bin/python bench/ingest.py --quick            # a quarter of the uploads (1 minute)
    .venv/bin/python bench/ingest.py --backends sqlite  # skip PostgreSQL
    .venv/bin/python bench/ingest.py --segment-rows 400 --segments 1024 --frames 64 --devices 32
                                                        # segments the size the 5-minute sync sends
    .venv/bin/python bench/ingest.py --bare-server PORT DIR   # (used by the bench itself)

Servers, each its own process on 127.0.0.1, all started before the first measurement:

- ``demotrace serve --workers 1`` (``tests/collector_proc.py``) with its default SQLite database,
  and again on a throwaway PostgreSQL (``tests/pgserver.py``, run with the production durability
  settings ``fsync``, ``synchronous_commit`` and ``full_page_writes`` on); each with its lake in a
  fresh temporary folder;
- baseline, the bare endpoint: a FastAPI app on uvicorn (the same defaults as ``demotrace serve``)
  in its own process, with the collector's route shapes, that reads each body and stores it in the
  collector's lake layout through the collector's own ``FsBlobs`` (temp file, fsync, rename, fsync
  of the folder): a segment as one file, a blob batch as one file per tile and per manifest (the
  Arrow stream is split, nothing checked), a session as its JSON. No credential check, no
  validation, no database; ``/v1/blobs/missing`` answers that everything is missing.

Payloads, made before anything is timed (in a process pool) and sent byte for byte the same to
the three servers:

- events: segments of ``--segment-rows`` (20,000) rows cut from ``bench/workday.py``'s 8-hour day
  (98% pointer moves; KEY, BUTTON, WHEEL, TEXT, FOCUS, POPUP, TARGET and FRAME rows with the
  recorder's JSON), renumbered per device (seq and t_ns rise across a device's segments), their
  FRAME rows pointing at frames that device uploaded; Parquet with zstd and the
  ``Content-Digest``, made by ``demotrace.collector.wire`` as the sync client makes them (blob
  batches too);
- frames: per device a 1920x1080 screen drawn like a desktop (windows, title bars, lines of text;
  one of four, so the untimed keyframes may share tiles), cut into 64x64 tiles (lossless WebP by
  ``demotrace.store.frames.encode_tile``), then frames where ``--tiles-per-frame`` (8) tiles of
  text change; each frame's manifest (``lake.pack_manifest``, 510 tile keys) and its new tiles.
  Every timed tile is distinct, across devices too, so nothing dedups away (the collector's
  answers are checked: ``existing`` stays 0). A frame batch is what the sync client sends for one
  segment: ``POST /v1/blobs/missing`` (every tile key of the batch's manifests, and the frame
  ids), ``POST /v1/blobs`` with the new tiles, ``POST /v1/blobs`` with the manifests.

Simulated devices: one thread per device, each with its own ``httpx.Client``. Untimed setup per
device: enrolment (admin API), ``PUT /v1/sessions/1``, the first full frame (keyframe) upload.
Then all devices start together and send their batches (frames) or segments (events) one after
the other. Totals are fixed per run and split among the devices: ``--segments`` segments (128)
and ``--frames`` frames (512) in batches of up to 32. For each device count, frames run first on
every server, then events (the segments show the uploaded frames); the order of the servers
rotates between device counts. The bare endpoint's events runs are short, so each is run three
times (it stores the same files again) and the median kept.

Latency is one unit: a segment's PUT, or a frame batch's three requests. Throughput is the run's
total over the wall time from the common start to the last device's end. CPU is the server's
(its process tree, from ``/proc``), PostgreSQL's (the postmaster's tree) and this client's.
Client and servers share the machine's cores. Before anything is measured each server takes one
warm-up device's keyframe and a 1,000-row segment (a fresh worker's first segment pays one-time
imports); their latencies are reported apart.

Where the time goes: after the runs, the 8-device uploads go once more, one request at a time,
straight to a fresh ``Service`` in this process (no HTTP) on each database, with the service's
helpers (Parquet read, FRAME references, tile and manifest checks, ``insert_ignore``, other
statements, BEGIN/COMMIT, missing-blob queries, ``FsBlobs.put``) timed by wrapping them. With
``--profile``, a fresh SQLite collector also gets them with py-spy attached (``--idle``, 250 Hz);
the samples are sorted into kinds of work, and the raw stacks kept in
``bench/out/ingest-profile-*.txt``. Writes ``bench/out/ingest.json``.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Request  # at module level: the bare app's annotations are resolved here

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))
from common import save_result  # noqa: E402  (bench/ is not a package)

OUT = HERE / "out" / "ingest.json"
SCREEN = (1920, 1080)
TILE = 64
DEVICE_COUNTS = (1, 8, 32)
MB = 1e6
EVENT_MODEL = 2
TARGET_EVENTS_PER_S = 200_000
TARGET_RATIO = 2.0
BATCH_FRAMES = 32


# ------------------------------------------------------------------------------------ payloads
@dataclasses.dataclass
class Segment:
    first: int
    last: int
    rows: int
    body: bytes
    digest: str  # the Content-Digest header's value


@dataclasses.dataclass
class FrameBatch:
    missing: bytes  # JSON body of POST /v1/blobs/missing
    tiles: bytes  # Arrow IPC stream of the new tiles
    frames: bytes  # Arrow IPC stream of the manifests
    n_frames: int
    n_tiles: int
    tile_bytes: int
    manifest_bytes: int

    @property
    def size(self) -> int:
        return len(self.missing) + len(self.tiles) + len(self.frames)


@dataclasses.dataclass
class DevicePayload:
    slot: int
    session: dict[str, Any]
    keyframe: FrameBatch
    batches: list[FrameBatch]
    segments: list[Segment]


_DAY: Any = None  # the workday table, loaded once per pool process
_FONT: Any = None
_BASES: dict[int, tuple[np.ndarray, list[tuple[int, int, int, int]], list[str], dict[str, bytes]]]
_BASES = {}
_STRIPS: list[np.ndarray] | None = None
SCREEN_VARIANTS = 4  # devices start from one of these screens (their keyframes, untimed)
_VOCABULARY = (
    "report quarterly budget review meeting notes draft summary customer order invoice team "
    "project deadline update status plan release build test data sales forecast annual agenda "
    "follow up thanks please attached schedule call tomorrow numbers table chart server deploy"
)
_WORDS = tuple(_VOCABULARY.split())


def day_path() -> Path:
    """``bench/workday.py``'s 8-hour day as Parquet (the file ``bench/reduce.py`` caches)."""
    import workday

    path = HERE / "out" / f"workday-v{workday.WORKDAY_VERSION}-8h-seed0.parquet"
    if not path.exists():
        workday.write_parquet(workday.generate_workday(8.0, 0), path)
    return path


def _pool_init(path: str) -> None:
    global _DAY, _FONT
    import pyarrow.parquet as pq
    from PIL import ImageFont

    _DAY = pq.read_table(path)
    try:
        _FONT = ImageFont.load_default(size=13)
    except (OSError, ImportError, TypeError):
        _FONT = ImageFont.load_default()


def _ipc(rows: list[tuple[str, str, bytes]]) -> bytes:
    """A blob batch as the sync client writes it."""
    from demotrace.collector.wire import blob_batch

    return blob_batch(rows)


def _bgrx(rgb: np.ndarray) -> np.ndarray:
    out = np.zeros((*rgb.shape[:2], 4), np.uint8)
    out[..., 0], out[..., 1], out[..., 2] = rgb[..., 2], rgb[..., 1], rgb[..., 0]
    return out


def _words(rng: np.random.Generator, lo: int, hi: int) -> str:
    return " ".join(rng.choice(_WORDS, size=int(rng.integers(lo, hi))))


def _draw_screen(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A desktop: background, a top bar, two or three windows of text. (RGB, text areas)."""
    from PIL import Image, ImageDraw

    w, h = SCREEN
    bg = [(58, 110, 165), (40, 44, 52), (90, 120, 90), (120, 100, 140)][int(rng.integers(4))]
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, w, 28], fill=(36, 36, 36))
    d.text((8, 7), "Activities   " + _words(rng, 2, 4), fill=(230, 230, 230), font=_FONT)
    bodies = []
    for _ in range(int(rng.integers(2, 4))):
        ww, wh = int(rng.integers(700, 1200)), int(rng.integers(500, 950))
        wx, wy = int(rng.integers(0, w - ww)), int(rng.integers(30, h - wh))
        d.rectangle([wx, wy, wx + ww, wy + wh], fill=(250, 250, 250), outline=(120, 120, 120))
        d.rectangle([wx, wy, wx + ww, wy + 26], fill=(220, 222, 226))
        d.text((wx + 10, wy + 6), _words(rng, 2, 5).title(), fill=(20, 20, 20), font=_FONT)
        y = wy + 40
        while y < wy + wh - 20:
            d.text((wx + 16, y), _words(rng, 3, 14), fill=(30, 30, 30), font=_FONT)
            y += 18
        bodies.append((wx + 1, wy + 27, wx + ww - 1, wy + wh - 1))
    return np.array(img), bodies


def _base(variant: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]], list[str], dict]:
    """A start screen (cached per process): RGB, text areas, tile keys, encoded distinct tiles."""
    from demotrace.lake import content_hash
    from demotrace.store.frames import encode_tile, grid_shape, tile_rect

    if variant not in _BASES:
        rgb, bodies = _draw_screen(np.random.default_rng(10_000 + variant))
        w, h = SCREEN
        cols, rows = grid_shape(w, h, TILE)
        keys: list[str] = []
        encoded: dict[str, bytes] = {}
        by_pixels: dict[bytes, str] = {}
        for i in range(cols * rows):
            x0, y0, x1, y1 = tile_rect(i, w, h, TILE)
            px = np.ascontiguousarray(rgb[y0:y1, x0:x1])
            key = by_pixels.get(px.tobytes())
            if key is None:
                data = encode_tile(_bgrx(px))
                key = by_pixels[px.tobytes()] = content_hash(data)
                encoded[key] = data
            keys.append(key)
        _BASES[variant] = (rgb, bodies, keys, encoded)
    return _BASES[variant]


def frame_ids(n: int, slot: int, count: int) -> list[str]:
    """The ids of device ``slot``'s keyframe and ``count`` frames (the recorder's ids are hashes
    of pixels; the collector only needs 32 hex digits)."""
    return [hashlib.blake2b(f"{n}:{slot}:{f}".encode(), digest_size=16).hexdigest()
            for f in range(count + 1)]  # fmt: skip


def _batch(frames: list[tuple[str, bytes]], tiles: dict[str, bytes]) -> FrameBatch:
    from demotrace.lake import unpack_manifest

    all_keys = sorted({k.hex() for _f, m in frames for k in unpack_manifest(m)[3]})
    missing = json.dumps({"tiles": all_keys, "frames": sorted(f for f, _m in frames)})
    return FrameBatch(
        missing=missing.encode(),
        tiles=_ipc([("tile", k, d) for k, d in sorted(tiles.items())]),
        frames=_ipc([("frame", f, m) for f, m in frames]),
        n_frames=len(frames),
        n_tiles=len(tiles),
        tile_bytes=sum(len(d) for d in tiles.values()),
        manifest_bytes=sum(len(m) for _f, m in frames),
    )


def make_keyframe(n: int, slot: int) -> FrameBatch:
    """Device ``slot``'s first frame: its start screen, every distinct tile of it."""
    from demotrace.lake import pack_manifest

    _rgb, _bodies, keys, encoded = _base(slot % SCREEN_VARIANTS)
    manifest = pack_manifest(*SCREEN, TILE, [bytes.fromhex(k) for k in keys])
    return _batch([(frame_ids(n, slot, 0)[0], manifest)], dict(encoded))


def _strips() -> list[np.ndarray]:
    """Lines of text rendered once per process (alpha, 0-1): tiles are cut from them."""
    global _STRIPS
    if _STRIPS is None:
        from PIL import Image, ImageDraw

        rng = np.random.default_rng(7)
        _STRIPS = []
        for _ in range(64):
            img = Image.new("L", (1000, 18), 0)
            ImageDraw.Draw(img).text((0, 2), _words(rng, 8, 16), fill=255, font=_FONT)
            alpha = np.asarray(img, np.float32)[..., None] / 255
            inked = np.flatnonzero(alpha.max(axis=(0, 2)))
            _STRIPS.append(alpha[:, : max(int(inked[-1]) + 1, 2 * TILE)])
    return _STRIPS


def make_frames(n: int, slot: int, first: int, count: int, ids: list[str], tpf: int) -> FrameBatch:
    """Frames ``first .. first+count-1`` of device ``slot`` (after its keyframe): from its start
    screen, ``tpf`` tiles of text change per frame; one batch of manifests and new tiles."""
    from demotrace.lake import content_hash, pack_manifest
    from demotrace.store.frames import encode_tile, tile_rect

    rng = np.random.default_rng([n, slot, first])
    w, h = SCREEN
    base, bodies, base_keys, encoded = _base(slot % SCREEN_VARIANTS)
    rgb, keys = base.copy(), list(base_keys)
    cells = [
        i
        for i, (x0, y0, x1, y1) in ((i, tile_rect(i, w, h, TILE)) for i in range(len(keys)))
        if any(bx0 <= x0 and x1 <= bx1 and by0 <= y0 and y1 <= by1 for bx0, by0, bx1, by1 in bodies)
    ] or list(range(len(keys)))
    strips = _strips()
    seen = set(encoded)
    frames: list[tuple[str, bytes]] = []
    new_tiles: dict[str, bytes] = {}
    for f in range(first, first + count):
        start = int(rng.integers(len(cells)))
        for j in range(tpf):
            i = cells[(start + j) % len(cells)]
            x0, y0, x1, y1 = tile_rect(i, w, h, TILE)
            tw, th = x1 - x0, y1 - y0
            while True:  # one to three lines of text, in inks of their own: all distinct
                tile = np.full((th, tw, 3), 250.0, np.float32)
                for line in range(int(rng.integers(1, 4))):
                    strip = strips[int(rng.integers(len(strips)))]
                    x = int(rng.integers(0, strip.shape[1] - tw))
                    y = min(int(rng.integers(0, 6)) + 20 * line, th - strip.shape[0])
                    ink = rng.integers(0, 90, size=3).astype(np.float32)
                    a = strip[:, x : x + tw]
                    tile[y : y + a.shape[0]] = tile[y : y + a.shape[0]] * (1 - a) + ink * a
                px = tile.astype(np.uint8)
                data = encode_tile(_bgrx(px))
                key = content_hash(data)
                if key not in seen:
                    break
            seen.add(key)
            new_tiles[key] = data
            rgb[y0:y1, x0:x1] = px
            keys[i] = key
        frames.append((ids[f], pack_manifest(w, h, TILE, [bytes.fromhex(k) for k in keys])))
    return _batch(frames, new_tiles)


def make_segments(slot: int, first_k: int, count: int, rows: int, ids: list[str]) -> list[Segment]:
    """Segments ``first_k ..`` of device ``slot``: slices of the day, renumbered (seq from
    ``first_k * rows + 1``, t_ns rising), their FRAME rows on the device's frames in turn."""
    import pyarrow as pa

    from demotrace.collector.wire import content_digest, events_parquet
    from demotrace.dataset.schema import EVENT_SCHEMA
    from demotrace.model import Kind

    day = _DAY
    slices = day.num_rows // rows
    out = []
    for k in range(first_k, first_k + count):
        part = day.slice(((slot * 11 + k) % slices) * rows, rows)
        first = k * rows + 1
        old_seq = part.column("seq").to_numpy()
        shift = first - int(old_seq[0])
        t = part.column("t_ns").to_numpy()
        t_new = t - int(t[0]) + 10**12 + slot * 10**9 + k * 200 * 10**9  # ~2.5 min a segment
        kinds = part.column("kind").to_numpy()
        data = part.column("data").to_pylist()
        for n_ref, i in enumerate(np.flatnonzero(kinds == int(Kind.FRAME))):
            row = json.loads(data[i])
            row["frame"] = ids[(k * 64 + n_ref) % len(ids)]
            if "for_seq" in row:
                row["for_seq"] = int(row["for_seq"]) + shift
            data[i] = json.dumps(row, separators=(",", ":"))
        table = part.set_column(0, "seq", pa.array(old_seq + shift, pa.int64()))
        table = table.set_column(1, "t_ns", pa.array(t_new, pa.int64()))
        table = table.set_column(9, "data", pa.array(data, pa.string()))
        body = events_parquet(table.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA))
        out.append(Segment(first, first + rows - 1, rows, body, content_digest(body)))
    return out


def _session(slot: int) -> dict[str, Any]:
    return {
        "started_wall_ns": time.time_ns() - 3600 * 10**9,
        "started_mono_ns": 10**12 + slot * 10**9,
        "ended_mono_ns": None,
        "status": "recording",
        "screen": list(SCREEN),
        "event_model": EVENT_MODEL,
        "info": {"bench": "ingest", "slot": slot},
    }


def prepare(
    counts: tuple[int, ...], frames_total: int, segments_total: int, rows: int, tpf: int
) -> dict[int, list[DevicePayload]]:
    """Every device's payload for each device count, made in a process pool."""
    path = str(day_path())
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=os.cpu_count() or 2, initializer=_pool_init, initargs=(path,)
    ) as pool:
        plan = {}
        ids0 = frame_ids(0, 0, 0)  # the warm-up device: its keyframe and a small segment
        for n in counts:
            n_frames, n_segs = frames_total // n, max(1, segments_total // n)
            for slot in range(n):
                ids = frame_ids(n, slot, n_frames)
                key = pool.submit(make_keyframe, n, slot)
                fr = [
                    pool.submit(make_frames, n, slot, f, min(BATCH_FRAMES, n_frames + 1 - f),
                                ids, tpf)
                    for f in range(1, n_frames + 1, BATCH_FRAMES)
                ]  # fmt: skip
                segs = [
                    pool.submit(make_segments, slot, k, min(16, n_segs - k), rows, ids)
                    for k in range(0, n_segs, 16)
                ]
                plan[n, slot] = (key, fr, segs)
        warm = (pool.submit(make_keyframe, 0, 0), pool.submit(make_segments, 0, 0, 1, 1000, ids0))
        out: dict[int, list[DevicePayload]] = {
            0: [DevicePayload(0, _session(0), warm[0].result(), [], warm[1].result())]
        }
        for (n, slot), (key, fr, segs) in plan.items():
            out.setdefault(n, []).append(
                DevicePayload(
                    slot,
                    _session(slot),
                    key.result(),
                    [f.result() for f in fr],
                    [s for part in segs for s in part.result()],
                )
            )
        return out


# ------------------------------------------------------------------------------ bare endpoint
def bare_app(root: Path) -> Any:
    """The baseline: the collector's route shapes; each body stored as the collector's lake
    would hold it (``FsBlobs``: temp + fsync + rename), nothing checked, no database."""
    import pyarrow as pa
    from fastapi import FastAPI
    from fastapi.concurrency import run_in_threadpool

    from demotrace.collector.blobs import FsBlobs
    from demotrace.lake import frame_key, session_date, tile_key

    blobs = FsBlobs(root)
    date = session_date(time.time_ns())
    app = FastAPI()

    def device(request: Request) -> str:
        auth = request.headers.get("authorization", "")
        return auth.removeprefix("Bearer ").partition(".")[0] or "anonymous"

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"ok": True}

    @app.put("/v1/sessions/{session}")
    async def put_session(session: int, request: Request) -> dict[str, Any]:
        body = await request.body()
        await run_in_threadpool(blobs.put, f"sessions/{device(request)}/{session}.json", body)
        return {"status": "stored", "session": session}

    @app.post("/v1/blobs/missing")
    async def missing(request: Request) -> dict[str, list[str]]:
        asked = json.loads(await request.body())
        return {"tiles": asked.get("tiles", []), "frames": asked.get("frames", [])}

    @app.post("/v1/blobs")
    async def put_blobs(request: Request) -> dict[str, int]:
        body = await request.body()
        who = device(request)

        def store() -> int:
            table = pa.ipc.open_stream(body).read_all()
            rows = zip(
                table.column("kind").to_pylist(),
                table.column("key").to_pylist(),
                table.column("data").to_pylist(),
                strict=True,
            )
            n = 0
            for kind, key, data in rows:
                blobs.put(tile_key(key) if kind == "tile" else frame_key(who, key), data)
                n += 1
            return n

        return {"stored": await run_in_threadpool(store)}

    @app.put("/v1/sessions/{session}/segments/{first}-{last}")
    async def put_segment(session: int, first: int, last: int, request: Request) -> dict[str, Any]:
        body = await request.body()
        raw = request.headers.get("content-digest", "").partition("=")[2].strip(":")
        sha = base64.b64decode(raw).hex() if raw else "0" * 64
        key = (
            f"events/date={date}/device={device(request)}/session={session}/"
            f"seg-{first:012d}-{sha[:12]}.parquet"
        )
        await run_in_threadpool(blobs.put, key, body)
        return {"status": "stored", "first": first, "last": last, "rows": last - first + 1}

    return app


def run_bare_server(port: int, folder: Path) -> None:
    import uvicorn

    uvicorn.run(bare_app(folder), host="127.0.0.1", port=port, log_level="warning")


# ------------------------------------------------------------------------------------ servers
def tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its living descendants and the children it has reaped."""
    return sum(tree_cpu_split(pid))


def tree_cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process tree, as :func:`tree_cpu` counts them."""
    clk = os.sysconf("SC_CLK_TCK")
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{entry}/stat").read_text()
                stats[int(entry)] = text.rsplit(")", 1)[1].split()
    children: dict[int, list[int]] = {}
    for p, f in stats.items():
        children.setdefault(int(f[1]), []).append(p)
    user, system, todo = 0, 0, [pid]
    while todo:
        p = todo.pop()
        f = stats.get(p)
        if f is None:
            continue
        user += int(f[11]) + int(f[13])
        system += int(f[12]) + int(f[14])
        todo.extend(children.get(p, []))
    return user / clk, system / clk


class Target:
    """A server the devices upload to."""

    name = ""
    backend = ""
    url = ""

    def start(self) -> None: ...
    def stop(self) -> None: ...

    def pids(self) -> dict[str, int]:
        """Processes whose CPU counts: ``server`` and, for PostgreSQL, ``db``."""
        return {}

    def devices(self, n: int) -> list[str]:
        """Credentials of ``n`` new devices."""
        raise NotImplementedError


class BareTarget(Target):
    name, backend = "bare", "bare"

    def __init__(self, folder: Path) -> None:
        from s3server import free_port

        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._n = 0

    def start(self) -> None:
        import httpx

        self.folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, __file__, "--bare-server", str(self.port), str(self.folder)]
        self.proc = subprocess.Popen(cmd, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the bare endpoint exited")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/v1/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("the bare endpoint did not answer")

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
            self.proc = None

    def pids(self) -> dict[str, int]:
        assert self.proc is not None
        return {"server": self.proc.pid}

    def devices(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            self._n += 1
            out.append(f"d-{self._n:012x}.{'x' * 32}")
        return out


class CollectorTarget(Target):
    def __init__(self, folder: Path, backend: str, workers: int, db: str | None = None) -> None:
        from collector_proc import Collector

        self.backend = backend
        self.name = f"collector/{backend}"
        self.collector = Collector(folder, db=db, workers=workers)
        self.url = self.collector.url
        self.db_pid: int | None = None

    def start(self) -> None:
        self.collector.start(timeout=60)
        if not self.collector.admin_token:
            raise RuntimeError("demotrace serve did not print an admin credential")

    def stop(self) -> None:
        self.collector.kill(signal.SIGTERM)

    def pids(self) -> dict[str, int]:
        assert self.collector.proc is not None
        out = {"server": self.collector.proc.pid}
        if self.db_pid is not None:
            out["db"] = self.db_pid
        return out

    def devices(self, n: int) -> list[str]:
        import httpx

        out = []
        with httpx.Client(base_url=self.url, timeout=60) as c:
            for i in range(n):
                r = c.post("/v1/admin/enroll-codes", json={}, headers=self.collector.headers())
                r.raise_for_status()
                r = c.post("/v1/enroll", json={"code": r.json()["code"], "label": f"bench-{i}"})
                r.raise_for_status()
                out.append(r.json()["token"])
        return out


# ---------------------------------------------------------------------------------------- load
class Refused(Exception):
    pass


def _check(r: Any, what: str) -> dict[str, Any]:
    if not r.is_success:
        raise Refused(f"{what}: HTTP {r.status_code} {r.text[:300]}")
    return r.json()


def _send_batch(c: Any, b: FrameBatch, stats: Counter[str]) -> dict[str, float]:
    t0 = time.perf_counter()
    need = _check(
        c.post(
            "/v1/blobs/missing", content=b.missing, headers={"Content-Type": "application/json"}
        ),
        "missing",
    )
    t1 = time.perf_counter()
    octet = {"Content-Type": "application/octet-stream"}
    got = _check(c.post("/v1/blobs", content=b.tiles, headers=octet), "tiles")
    t2 = time.perf_counter()
    got_f = _check(c.post("/v1/blobs", content=b.frames, headers=octet), "frames")
    t3 = time.perf_counter()
    stats["missing_tiles"] += len(need["tiles"])
    stats["existing"] += int(got.get("existing", 0)) + int(got_f.get("existing", 0))
    stats["stored_tiles"] += int(got.get("tiles", got.get("stored", 0)))
    return {"missing": t1 - t0, "tiles": t2 - t1, "frames": t3 - t2, "unit": t3 - t0}


def _send_segment(c: Any, s: Segment, stats: Counter[str]) -> dict[str, float]:
    t0 = time.perf_counter()
    r = c.put(
        f"/v1/sessions/1/segments/{s.first}-{s.last}",
        content=s.body,
        headers={"Content-Digest": s.digest, "Content-Type": "application/octet-stream"},
    )
    t1 = time.perf_counter()
    answer = _check(r, "segment")
    if answer.get("status") != "stored":
        raise Refused(f"segment {s.first}-{s.last}: {answer}")
    stats["rows"] += int(answer.get("rows", 0))
    return {"unit": t1 - t0}


def run_phase(
    target: Target, tokens: list[str], payloads: list[DevicePayload], workload: str
) -> dict[str, Any]:
    """All devices upload their frames (or segments) at once; the run's figures."""
    import httpx

    n = len(tokens)
    barrier = threading.Barrier(n + 1)
    times: list[list[dict[str, float]]] = [[] for _ in range(n)]
    stats: list[Counter[str]] = [Counter() for _ in range(n)]
    errors: list[BaseException] = []

    def device(i: int) -> None:
        p = payloads[i]
        headers = {"Authorization": f"Bearer {tokens[i]}"}
        try:
            with httpx.Client(base_url=target.url, headers=headers, timeout=300) as c:
                _check(c.put("/v1/sessions/1", json=p.session), "session")
                if workload == "frames":
                    _send_batch(c, p.keyframe, Counter())
                barrier.wait()
                if workload == "frames":
                    for b in p.batches:
                        times[i].append(_send_batch(c, b, stats[i]))
                else:
                    for s in p.segments:
                        times[i].append(_send_segment(c, s, stats[i]))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=device, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        for t in threads:
            t.join()
        raise RuntimeError(f"{target.name}: setup failed: {errors[0]!r}") from errors[0]
    pids = target.pids()
    cpu0 = {k: tree_cpu_split(v) for k, v in pids.items()}
    me0 = time.process_time()  # this process only: the servers are its children
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    split = {
        k: [a - b for a, b in zip(tree_cpu_split(v), cpu0[k], strict=True)] for k, v in pids.items()
    }
    cpu = {k: sum(v) for k, v in split.items()}
    client_cpu = time.process_time() - me0
    if errors:
        raise RuntimeError(f"{target.name} {workload} x{n}: {errors[0]!r}") from errors[0]
    units = [u for dev in times for u in dev]
    lat = np.array([u["unit"] for u in units]) * 1000
    total: Counter[str] = Counter()
    for s in stats:
        total.update(s)
    out: dict[str, Any] = {
        "target": target.name,
        "backend": target.backend,
        "workload": workload,
        "devices": n,
        "wall_s": wall,
        "units": len(units),
        "latency_ms": {
            "p50": float(np.percentile(lat, 50)),
            "p90": float(np.percentile(lat, 90)),
            "p99": float(np.percentile(lat, 99)),
            "max": float(lat.max()),
        },
        "latencies_ms": [[round(u["unit"] * 1000, 2) for u in dev] for dev in times],
        "server_cpu_s": cpu.get("server", 0.0),
        "server_sys_s": split.get("server", [0.0, 0.0])[1],
        "db_cpu_s": cpu.get("db", 0.0),
        "client_cpu_s": client_cpu,
    }
    if workload == "frames":
        batches = [b for p in payloads for b in p.batches]
        frames = sum(b.n_frames for b in batches)
        tiles = sum(b.n_tiles for b in batches)
        sent = sum(b.size for b in batches)
        out |= {
            "frames": frames,
            "tiles": tiles,
            "bytes": sent,
            "frames_per_s": frames / wall,
            "tiles_per_s": tiles / wall,
            "mb_per_s": sent / wall / MB,
            "server_cpu_ms_per_frame": out["server_cpu_s"] / frames * 1000,
            "db_cpu_ms_per_frame": out["db_cpu_s"] / frames * 1000,
            "request_p50_ms": {
                k: float(np.median([u[k] for u in units]) * 1000)
                for k in ("missing", "tiles", "frames")
            },
            "answers": dict(total),
        }
        if target.backend != "bare" and (total["existing"] or total["stored_tiles"] != tiles):
            out["dedup_note"] = (
                f"the collector stored {total['stored_tiles']} of {tiles} tiles "
                f"({total['existing']} existing)"
            )
    else:
        segs = [s for p in payloads for s in p.segments]
        events = sum(s.rows for s in segs)
        sent = sum(len(s.body) for s in segs)
        out |= {
            "events": events,
            "bytes": sent,
            "events_per_s": events / wall,
            "mb_per_s": sent / wall / MB,
            "server_cpu_us_per_event": out["server_cpu_s"] / events * 1e6,
            "db_cpu_us_per_event": out["db_cpu_s"] / events * 1e6,
        }
    return out


def warm_up(target: Target, payload: DevicePayload) -> dict[str, float]:
    """One extra device's keyframe and a 1,000-row segment, before anything is measured: a fresh
    server's one-time costs (imports on first use) stay out of the figures. Their latencies."""
    import httpx

    token = target.devices(1)[0]
    with httpx.Client(base_url=target.url, headers={"Authorization": f"Bearer {token}"}) as c:
        c.timeout = httpx.Timeout(300)
        _check(c.put("/v1/sessions/1", json=payload.session), "session")
        frames = _send_batch(c, payload.keyframe, Counter())["unit"]
        segment = _send_segment(c, payload.segments[0], Counter())["unit"]
    return {"keyframe_batch_ms": frames * 1000, "first_segment_ms": segment * 1000}


# ---------------------------------------------------------------------------------- breakdown
class _Clock:
    """Time spent in wrapped functions, each call's time given to the innermost one, except
    inside a call wrapped with ``absorb``: that one keeps everything below it."""

    def __init__(self) -> None:
        self.spent: Counter[str] = Counter()
        self._stack: list[list[Any]] = []

    def wrap(self, label: str, fn: Any, absorb: bool = False) -> Any:
        def timed(*args: Any, **kw: Any) -> Any:
            if self._stack and self._stack[-1][2]:
                return fn(*args, **kw)
            self._stack.append([time.perf_counter(), 0.0, absorb])
            try:
                return fn(*args, **kw)
            finally:
                start, inner, _absorb = self._stack.pop()
                took = time.perf_counter() - start
                self.spent[label] += took - inner
                if self._stack:
                    self._stack[-1][1] += took

        return timed


def breakdown(
    folder: Path,
    db_url: str | None,
    payloads: list[DevicePayload],
    warm: DevicePayload,
    devices: int = 8,
) -> dict[str, Any]:
    """Where one segment's and one frame batch's time goes: ``Service`` called straight from
    this process (no HTTP), one request at a time, its helpers timed by wrapping them (after
    the warm-up device's uploads)."""
    import sqlalchemy as sa

    from demotrace.collector import db as T
    from demotrace.collector import service as S

    cfg = S.Config.in_folder(folder)
    if db_url:
        cfg.db_url = db_url
    svc = S.Service(cfg)
    clock = _Clock()
    patches: list[tuple[Any, str, str]] = [
        (S, "_read_events", "Parquet read, column check, cast"),
        (S, "_frame_refs", "FRAME references"),
        (S, "_not_tombstoned", "tombstone filter"),
        (S, "_check_tile", "tile checks (BLAKE2b, WebP header)"),
        (S, "_check_manifest", "manifest checks"),
        (T, "insert_ignore", "database: inserts (insert_ignore)"),
        (sa.engine.Connection, "execute", "database: other statements (incl. auth)"),
        (sa.engine.Connection, "exec_driver_sql", "database: BEGIN, COMMIT"),
        (sa.engine.Connection, "_commit_impl", "database: BEGIN, COMMIT"),
        (S.Service, "missing_blobs", "database: missing-blob queries"),
        (type(svc.blobs), "put", "lake writes (FsBlobs.put)"),
    ]
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
    out: dict[str, Any] = {}
    try:
        for owner, name, label in patches:
            absorb = label.startswith("database")
            setattr(owner, name, clock.wrap(label, owner.__dict__[name], absorb))
        users = []
        for p in [warm, *payloads[:devices]]:
            token = svc.enroll(svc.new_enroll_code()["code"])["token"]
            device = svc.device_for(token)
            svc.put_session(device, 1, p.session)
            svc.put_blobs(device, p.keyframe.tiles)
            svc.put_blobs(device, p.keyframe.frames)
            users.append((token, p))
        token, p = users.pop(0)
        digest = base64.b64decode(p.segments[0].digest.partition("=")[2].strip(":")).hex()
        s0 = p.segments[0]
        svc.put_segment(svc.device_for(token), 1, s0.first, s0.last, s0.body, digest)
        for workload in ("frames", "events"):
            clock.spent.clear()
            total, units, items = 0.0, 0, 0
            for token, p in users:
                for unit in p.batches if workload == "frames" else p.segments:
                    t0 = time.perf_counter()
                    device = svc.device_for(token)
                    if isinstance(unit, FrameBatch):
                        asked = json.loads(unit.missing)
                        svc.missing_blobs(device, asked["tiles"], asked["frames"])
                        svc.put_blobs(device, unit.tiles)
                        svc.put_blobs(device, unit.frames)
                        items += unit.n_frames
                    else:
                        digest = base64.b64decode(unit.digest.partition("=")[2].strip(":")).hex()
                        svc.put_segment(device, 1, unit.first, unit.last, unit.body, digest)
                        items += unit.rows
                    total += time.perf_counter() - t0
                    units += 1
            rest = total - sum(clock.spent.values())
            parts = {**clock.spent, "the rest (SHA-256, seq checks, Arrow IPC, loops)": rest}
            out[workload] = {
                "units": units,
                "items": items,
                "ms_per_unit": total / units * 1000,
                "us_per_item": total / items * 1e6,
                "ms_per_unit_by_part": {
                    k: v / units * 1000 for k, v in sorted(parts.items(), key=lambda kv: -kv[1])
                },
            }
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)
        svc.close()
    return out


# ------------------------------------------------------------------------------------ profile
_CATEGORIES = (  # (label, substrings of a frame "function (file:line)"), leaf first wins
    ("lake writes (FsBlobs.put: temp, fsync, rename)", ("collector/blobs.py",)),
    ("database (SQLAlchemy, driver)", ("sqlalchemy/", "psycopg", "sqlite3", "/db.py")),
    ("Parquet read and schema cast (_read_events)", ("_read_events",)),
    ("tile checks (hash, WebP header)", ("_check_tile", "PIL/")),
    ("manifest checks", ("_check_manifest", "unpack_manifest")),
    ("FRAME references (_frame_refs)", ("_frame_refs",)),
    ("Arrow IPC read", ("pyarrow/ipc",)),
    ("put_segment / put_blobs own lines (SHA-256, seq checks, loops)", ("service.py",)),
    ("request models (pydantic)", ("pydantic",)),
    ("HTTP, ASGI, FastAPI, event loop", ("h11", "uvicorn", "starlette", "fastapi", "anyio")),
)
_IDLE = (
    "wait (threading.py",
    "_worker (concurrent",
    "select (selectors.py",
    "get (queue.py",
    "worker_thread (anyio",
    "run (anyio/_backends",
)


_REQUEST = ("collector/service.py", "collector/api.py", "collector/blobs.py", "collector/db.py")
LOCK_WAIT = "SQLite write lock: waiting in BEGIN IMMEDIATE"
POOL_WAIT = "waiting for a pooled database connection"


def classify(stack: str) -> str:
    """The kind of work of one sampled stack (root first, ``;``-separated, as py-spy writes)."""
    frames = stack.split(";")
    leaf = frames[-1]
    in_request = any(m in f for f in frames for m in _REQUEST)
    if any(m in leaf for m in _IDLE) or "_run_once (asyncio" in leaf:
        if not in_request:
            return "idle"
        if any("sqlalchemy/pool" in f for f in frames):
            return POOL_WAIT
    if any("_begin (demotrace/collector/db.py" in f for f in frames):
        return LOCK_WAIT
    for frame in reversed(frames):
        for label, marks in _CATEGORIES:
            if any(m in frame for m in marks):
                return label
    return "other"


def read_profile(path: Path) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if n.isdigit():
            counts[classify(stack)] += int(n)
    busy = sum(v for k, v in counts.items() if k != "idle")
    return {
        "samples": sum(counts.values()),
        "busy_samples": busy,
        "share_of_busy": {k: v / busy for k, v in counts.most_common() if k != "idle" and busy},
    }


def profile_run(
    target: Target, payloads: list[DevicePayload], out_dir: Path
) -> dict[str, dict[str, Any]]:
    """Both workloads once more on ``target`` with py-spy attached to the server."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    result = {}
    tokens = target.devices(len(payloads))
    for workload in ("frames", "events"):
        raw = out_dir / f"ingest-profile-{workload}.txt"
        cmd = [spy, "record", "--pid", str(target.pids()["server"]), "--rate", "250"]
        cmd += ["--format", "raw", "--idle", "--nonblocking", "--output", str(raw)]
        spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        run = run_phase(target, tokens, payloads, workload)
        spy_proc.send_signal(signal.SIGINT)
        spy_proc.wait(30)
        where = str(raw.relative_to(ROOT)) if raw.is_relative_to(ROOT) else str(raw)
        result[workload] = {"run": run, **read_profile(raw), "raw": where}
    return result


# ------------------------------------------------------------------------------------ report
def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}"


def add_ratios(runs: list[dict[str, Any]]) -> None:
    bare = {(r["workload"], r["devices"]): r for r in runs if r["backend"] == "bare"}
    for r in runs:
        b = bare.get((r["workload"], r["devices"]))
        if b is None:
            continue
        r["vs_bare_time"] = r["wall_s"] / b["wall_s"]
        r["vs_bare_server_cpu"] = (r["server_cpu_s"] + r["db_cpu_s"]) / max(b["server_cpu_s"], 1e-9)


def print_table(console: Any, runs: list[dict[str, Any]], title: str) -> None:
    from rich.table import Table

    tab = Table(title=title)
    for col in ("server", "work", "dev", "throughput", "MB/s", "p50 ms", "p99 ms"):
        tab.add_column(col, justify="right" if col not in ("server", "work") else "left")
    for col in ("server CPU", "vs bare: time", "vs bare: CPU"):
        tab.add_column(col, justify="right")
    order = {"bare": 0, "sqlite": 1, "postgresql": 2}
    for r in sorted(runs, key=lambda r: (r["workload"], order[r["backend"]], r["devices"])):
        if r["workload"] == "events":
            rate = f"{_fmt(r['events_per_s'])} ev/s"
            cpu = f"{r['server_cpu_us_per_event'] + r['db_cpu_us_per_event']:.2f} µs/ev"
        else:
            rate = f"{_fmt(r['frames_per_s'])} fr/s, {_fmt(r['tiles_per_s'])} tiles/s"
            cpu = f"{r['server_cpu_ms_per_frame'] + r['db_cpu_ms_per_frame']:.2f} ms/fr"
        tab.add_row(
            r["backend"],
            r["workload"],
            str(r["devices"]),
            rate,
            f"{r['mb_per_s']:.1f}",
            f"{r['latency_ms']['p50']:.1f}",
            f"{r['latency_ms']['p99']:.1f}",
            cpu,
            f"{r['vs_bare_time']:.2f}x" if r["backend"] != "bare" else "",
            f"{r['vs_bare_server_cpu']:.2f}x" if r["backend"] != "bare" else "",
        )
    console.print(tab)


def payload_summary(payloads: dict[int, list[DevicePayload]]) -> dict[str, Any]:
    devices = [p for n, ps in payloads.items() if n for p in ps]  # not the warm-up device
    segs = [s for p in devices for s in p.segments]
    batches = [b for p in devices for b in p.batches]
    keyframes = [p.keyframe for p in devices]
    frames = sum(b.n_frames for b in batches)
    tiles = sum(b.n_tiles for b in batches)
    return {
        "segments": len(segs),
        "segment_rows": segs[0].rows,
        "segment_bytes_mean": float(np.mean([len(s.body) for s in segs])),
        "bytes_per_event": sum(len(s.body) for s in segs) / sum(s.rows for s in segs),
        "frames": frames,
        "tiles": tiles,
        "tiles_per_frame": tiles / frames,
        "tile_bytes_mean": sum(b.tile_bytes for b in batches) / tiles,
        "manifest_bytes": batches[0].manifest_bytes // batches[0].n_frames,
        "keyframe_tiles_mean": float(np.mean([k.n_tiles for k in keyframes])),
        "keyframe_tile_bytes_mean": sum(k.tile_bytes for k in keyframes)
        / sum(k.n_tiles for k in keyframes),
        "batch_bytes_mean": float(np.mean([b.size for b in batches])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="a quarter of the uploads")
    ap.add_argument(
        "--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    ap.add_argument("--devices", default=",".join(map(str, DEVICE_COUNTS)))
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers of the collector")
    ap.add_argument("--segments", type=int, default=128, help="segments per run (all devices)")
    ap.add_argument("--segment-rows", type=int, default=20_000)
    ap.add_argument("--frames", type=int, default=512, help="frames per run (all devices)")
    ap.add_argument("--tiles-per-frame", type=int, default=8, help="new tiles in each frame")
    ap.add_argument("--profile", action="store_true", help="py-spy the server (SQLite, 8 dev.)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--bare-server", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server:
        run_bare_server(int(args.bare_server[0]), Path(args.bare_server[1]))
        return
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    if args.quick:
        args.segments, args.frames = args.segments // 4, args.frames // 4
    counts = tuple(int(x) for x in args.devices.split(","))
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    console.print(f"preparing payloads for {counts} devices ...")
    payloads = prepare(counts, args.frames, args.segments, args.segment_rows, args.tiles_per_frame)
    if 8 not in payloads:  # the breakdown and the profile use the 8-device uploads
        payloads |= prepare(
            (8,), args.frames, args.segments, args.segment_rows, args.tiles_per_frame
        )
    prep_s = time.perf_counter() - t_start
    summary = payload_summary(payloads)
    console.print(
        f"payloads ready in {prep_s:.1f} s: segments of {summary['segment_rows']:,} rows, "
        f"{summary['segment_bytes_mean'] / 1e3:.0f} kB ({summary['bytes_per_event']:.1f} B/event); "
        f"frames with {summary['tiles_per_frame']:.1f} new tiles of "
        f"{summary['tile_bytes_mean']:.0f} B and a {summary['manifest_bytes']:,} B manifest"
    )

    work = Path(tempfile.mkdtemp(prefix="demotrace-ingest-"))
    targets: list[Target] = [BareTarget(work / "bare")]
    pg_cm: Any = None
    notes = []
    try:
        if "sqlite" in backends:
            targets.append(CollectorTarget(work / "sqlite", "sqlite", args.workers))
        if "postgresql" in backends:
            from pgserver import PgUnavailable, pg_server

            durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
            try:
                pg_cm = pg_server(durable)
                pg = pg_cm.__enter__()
            except (PgUnavailable, RuntimeError) as exc:
                pg_cm = None
                notes.append(f"PostgreSQL skipped: {exc}")
                console.print(f"[yellow]PostgreSQL skipped: {exc}[/]")
            else:
                t = CollectorTarget(work / "postgresql", "postgresql", args.workers, db=pg.url)
                t.db_pid = int((pg.data / "postmaster.pid").read_text().split()[0])
                targets.append(t)
        warm = {}
        for t in targets:
            t.start()
            warm[t.name] = warm_up(t, payloads[0][0])
        runs: list[dict[str, Any]] = []
        for k, n in enumerate(counts):
            tokens = {t.name: t.devices(n) for t in targets}
            order = targets[k % len(targets) :] + targets[: k % len(targets)]
            for workload in ("frames", "events"):
                for t in order:
                    r = run_phase(t, tokens[t.name], payloads[n], workload)
                    if t.backend == "bare" and workload == "events":  # short: 3 runs, median
                        again = [r] + [
                            run_phase(t, tokens[t.name], payloads[n], workload) for _ in range(2)
                        ]
                        r = sorted(again, key=lambda x: x["wall_s"])[1]
                        r["repeats_wall_s"] = [x["wall_s"] for x in again]
                    runs.append(r)
                    rate = (
                        f"{r['events_per_s']:,.0f} events/s"
                        if workload == "events"
                        else f"{r['frames_per_s']:,.0f} frames/s"
                    )
                    console.print(
                        f"  {t.name:22s} {workload:6s} x{n:<3d} {r['wall_s']:6.2f} s  {rate}  "
                        f"p50 {r['latency_ms']['p50']:.1f} ms  p99 {r['latency_ms']['p99']:.1f} ms"
                    )
        parts = {}
        for b in backends:
            url = None
            if b == "postgresql":
                if pg_cm is None:
                    continue
                url = pg.new_database("breakdown")
            parts[b] = breakdown(work / f"breakdown-{b}", url, payloads[8], payloads[0][0])
        profile = None
        if args.profile:
            prof_target = CollectorTarget(work / "profile", "sqlite", args.workers)
            prof_target.start()
            try:
                warm_up(prof_target, payloads[0][0])
                profile = profile_run(prof_target, payloads[8], args.out.parent)
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                notes.append(f"profile failed: {exc!r}")
                console.print(f"[yellow]profile failed: {exc!r}[/]")
            finally:
                prof_target.stop()
    finally:
        for t in targets:
            with contextlib.suppress(Exception):
                t.stop()
        if pg_cm is not None:
            pg_cm.__exit__(None, None, None)
        shutil.rmtree(work, ignore_errors=True)

    add_ratios(runs)
    events = [r for r in runs if r["workload"] == "events" and r["backend"] != "bare"]
    best: dict[str, float] = {}
    for r in events:
        best[r["backend"]] = max(best.get(r["backend"], 0.0), r["events_per_s"])
    worst_ratio = max((r["vs_bare_time"] for r in runs if r["backend"] != "bare"), default=0.0)
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_before_after": [list(load_before), list(os.getloadavg())],
        "collector_workers": args.workers,
        "config": {
            "segments_per_run": args.segments,
            "segment_rows": args.segment_rows,
            "frames_per_run": args.frames,
            "frames_per_batch": BATCH_FRAMES,
            "tiles_per_frame": args.tiles_per_frame,
            "screen": list(SCREEN),
            "tile": TILE,
            "quick": args.quick,
        },
        "payloads": summary,
        "prepare_s": prep_s,
        "runs": runs,
        "targets": {
            "events_per_s_per_worker": TARGET_EVENTS_PER_S,
            "best_events_per_s": best,
            "events_met": all(v / args.workers >= TARGET_EVENTS_PER_S for v in best.values()),
            "ratio_vs_bare": TARGET_RATIO,
            "worst_ratio_vs_bare_time": worst_ratio,
            "ratio_met_events": all(r["vs_bare_time"] <= TARGET_RATIO for r in events),
            "ratio_met_frames": all(
                r["vs_bare_time"] <= TARGET_RATIO
                for r in runs
                if r["workload"] == "frames" and r["backend"] != "bare"
            ),
        },
        "notes": notes,
        "warm_up": warm,
        "breakdown": parts,
        "profile": profile,
        "total_s": time.perf_counter() - t_start,
    }
    title = (
        f"Collector ingest on loopback, {args.workers} server worker(s), {os.cpu_count()} cores "
        f"shared with the client; {args.segments} segments of {args.segment_rows:,} events and "
        f"{args.frames} frames per run"
    )
    print_table(console, runs, title)
    tg = result["targets"]
    console.print(
        "best events/s per worker: "
        + ", ".join(f"{b} {v / args.workers:,.0f}" for b, v in best.items())
        + f" (target {TARGET_EVENTS_PER_S:,}: {'met' if tg['events_met'] else 'NOT met'}); "
        f"collector / bare time: events {'<=' if tg['ratio_met_events'] else '>'} {TARGET_RATIO}x, "
        f"frames {'<=' if tg['ratio_met_frames'] else '>'} {TARGET_RATIO}x "
        f"(worst {worst_ratio:.2f}x)"
    )
    for b, per in parts.items():
        for workload, d in per.items():
            unit = "segment" if workload == "events" else "frame batch"
            top = ", ".join(
                f"{k} {v:.1f}" for k, v in d["ms_per_unit_by_part"].items() if v >= 0.05
            )
            console.print(
                f"breakdown {b} {workload}: {d['ms_per_unit']:.1f} ms per {unit} "
                f"(one request at a time, no HTTP): {top}"
            )
    console.print(
        "warm-up (first requests on each fresh server): "
        + "; ".join(
            f"{k} keyframe {v['keyframe_batch_ms']:.0f} ms, first segment "
            f"{v['first_segment_ms']:.0f} ms"
            for k, v in warm.items()
        )
    )
    if profile:
        for workload, p in profile.items():
            shares = ", ".join(f"{k} {v:.0%}" for k, v in p["share_of_busy"].items() if v >= 0.01)
            console.print(f"profile {workload} (busy samples {p['busy_samples']}): {shares}")
    save_result(result, args.out, console)


if __name__ == "__main__":
    main()

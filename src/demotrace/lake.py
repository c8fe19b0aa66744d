"""The lake: recorded sessions as Parquet event segments and content-addressed blobs, by date.

The collector lays uploaded data out this way, and ``demotrace build`` reads it directly (local and
Ray engines), from a folder or any URI pyarrow's file systems know (``s3://bucket/prefix``)::

    LAKE/
      sessions/<device>/<session>.json      the session: clocks, status, screen, event model, info
      events/date=YYYY-MM-DD/device=<device>/session=<session>/seg-<first seq>.parquet
      frames/<device>/<hh>/<frame id>.bin    a frame's manifest: its full grid of tile keys
      tiles/<hh>/<tile key>.webp             a tile, lossless WebP, as the recorder stored it

Events keep the local store's columns (:data:`~demotrace.dataset.schema.EVENT_SCHEMA`), sorted by
``seq``, at most :data:`SEGMENT_ROWS` a segment; ``date`` is the session's start (UTC).

A tile's key is the BLAKE2b-128 hash of its bytes, so anyone can check it and tiles are shared by
every device that shows the same pixels. A frame keeps the recorder's id (the hash of its tiles'
pixels, which the events refer to), and its manifest lists the keys of its tiles; manifests live
under their device, so no device can place a manifest another device's events would read. Writing
is idempotent: a segment or blob written twice is the same file, and readers drop duplicate
``seq``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import posixpath
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from PIL import Image

from demotrace.dataset.schema import EVENT_SCHEMA
from demotrace.errors import DatasetError
from demotrace.model import Kind

SEGMENT_ROWS = 500_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MANIFEST = struct.Struct("<4sIII")  # magic, width, height, tile
_MAGIC = b"DTF1"


def open_fs(uri: str | Path) -> tuple[pafs.FileSystem, str]:
    """(file system, root path) of a lake folder or URI."""
    text = str(uri)
    try:
        if "://" in text:
            return pafs.FileSystem.from_uri(text)
        return pafs.LocalFileSystem(), str(Path(text).resolve())
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DatasetError(f"Cannot open the lake at {uri}: {exc}.") from None


def tile_key(hexhash: str) -> str:
    return f"tiles/{hexhash[:2]}/{hexhash}.webp"


def frame_key(device: str, frame_id: str) -> str:
    return f"frames/{device}/{frame_id[:2]}/{frame_id}.bin"


def content_hash(data: bytes) -> str:
    """The lake's name for a tile: BLAKE2b-128 of its bytes, hex."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class FrameExporter:
    """A local store's frames as lake blobs: each frame's manifest (the content keys of its
    tiles) and the tiles' bytes by key. Used by ``export_session`` and by the sync client."""

    def __init__(self, db: Any, reader: Any) -> None:
        self.db = db
        self.reader = reader
        self._keys: dict[bytes, str] = {}  # pixel hash -> content key
        self._pixels: dict[str, bytes] = {}  # content key -> pixel hash

    def _row(self, pixel_hash: bytes) -> bytes:
        row = self.db.execute("SELECT data FROM tiles WHERE hash = ?", (pixel_hash,)).fetchone()
        if row is None:
            raise KeyError(f"tile {pixel_hash.hex()} is not in the store")
        return bytes(row[0])

    def key(self, pixel_hash: bytes) -> str:
        """The content key (:func:`content_hash`) of one stored tile; KeyError when missing."""
        key = self._keys.get(pixel_hash)
        if key is None:
            key = content_hash(self._row(pixel_hash))
            self._keys[pixel_hash] = key
            self._pixels[key] = pixel_hash
        return key

    def manifest(self, frame_id: str) -> bytes:
        """The frame's manifest; KeyError when the store lacks the frame or one of its tiles."""
        w, h, tile, hashes = self.reader.grid(bytes.fromhex(frame_id))
        return pack_manifest(w, h, tile, [bytes.fromhex(self.key(ph)) for ph in hashes])

    def tile_bytes(self, key: str) -> bytes:
        """The bytes of a tile this exporter has keyed (by :meth:`key` or :meth:`manifest`)."""
        return self._row(self._pixels[key])

    def frame(self, frame_id: str) -> tuple[bytes, dict[str, bytes | None]]:
        """(manifest, {tile key: bytes, or None when this exporter handed it out before})."""
        seen = set(self._pixels)
        manifest = self.manifest(frame_id)
        tiles: dict[str, bytes | None] = {}
        for key in unpack_manifest(manifest)[3]:
            k = key.hex()
            if k not in tiles:
                tiles[k] = None if k in seen else self.tile_bytes(k)
                seen.add(k)
        return manifest, tiles


def pack_manifest(width: int, height: int, tile: int, hashes: list[bytes]) -> bytes:
    return _MANIFEST.pack(_MAGIC, width, height, tile) + b"".join(hashes)


def unpack_manifest(data: bytes) -> tuple[int, int, int, list[bytes]]:
    if len(data) < _MANIFEST.size or data[:4] != _MAGIC or (len(data) - _MANIFEST.size) % 16:
        raise ValueError("not a frame manifest")
    _magic, w, h, tile = _MANIFEST.unpack_from(data)
    body = data[_MANIFEST.size :]
    return w, h, tile, [body[i : i + 16] for i in range(0, len(body), 16)]


class _Files:
    def __init__(self, uri: str | Path) -> None:
        self.uri = str(uri)
        self.fs, self.root = open_fs(uri)

    def path(self, rel: str) -> str:
        return posixpath.join(self.root, rel)

    def write(self, rel: str, data: bytes, *, if_absent: bool = False) -> None:
        path = self.path(rel)
        if if_absent and self.exists(rel):
            return
        self.fs.create_dir(posixpath.dirname(path), recursive=True)
        with self.fs.open_output_stream(path) as out:
            out.write(data)

    def read(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type == pafs.FileType.File

    def any_under(self, rel: str) -> bool:
        """True if ``rel`` is a folder with something in it (one shallow listing)."""
        selector = pafs.FileSelector(self.path(rel), allow_not_found=True)
        return bool(self.fs.get_file_info(selector))

    def listing(self, rel: str) -> list[str]:
        """Paths (relative to the root) of the files under ``rel``, sorted."""
        selector = pafs.FileSelector(self.path(rel), allow_not_found=True, recursive=True)
        info = self.fs.get_file_info(selector)
        root = self.root.rstrip("/") + "/"
        return sorted(i.path[len(root) :] for i in info if i.type == pafs.FileType.File)


# -- writing ----------------------------------------------------------------------------------
def session_date(started_wall_ns: int) -> str:
    return dt.datetime.fromtimestamp(started_wall_ns / 1e9, dt.UTC).strftime("%Y-%m-%d")


def export_session(store_root: Path, session: int, lake: str | Path, device: str) -> dict[str, int]:
    """Write one session of a local store into the lake (as the collector does for an upload).

    Idempotent: run twice, it leaves the same files. Returns what it wrote: events, segments,
    frames and tiles (blobs already in the lake are not rewritten, and not counted).
    """
    from demotrace.dataset.sources import LocalStoreSource

    src = LocalStoreSource(store_root)
    files = _Files(lake)
    try:
        ref = next((r for r in src.sessions() if r["session"] == session), None)
        if ref is None:
            raise DatasetError(f"Session {session} is not in the store at {store_root}.")
        row = src.store.session(session) or {}
        events = src.events(ref)
        date = session_date(ref["started_wall_ns"])
        meta = {
            "device": device,
            "session": session,
            "date": date,
            "started_wall_ns": ref["started_wall_ns"],
            "started_mono_ns": ref["started_mono_ns"],
            "ended_mono_ns": ref["ended_mono_ns"],
            "status": ref["status"],
            "screen": ref["screen"],
            "event_model": ref["event_model"],
            "info": json.loads(row.get("info") or "{}"),
        }
        counts = {"events": events.num_rows, "segments": 0, "frames": 0, "tiles": 0}
        folder = f"events/date={date}/device={device}/session={session}"
        for start in range(0, events.num_rows, SEGMENT_ROWS):
            part = events.slice(start, SEGMENT_ROWS)
            first = part.column("seq")[0].as_py()
            sink = pa.BufferOutputStream()
            pq.write_table(part, sink, compression="zstd")
            files.write(f"{folder}/seg-{first:012d}.parquet", sink.getvalue().to_pybytes())
            counts["segments"] += 1
        kinds = events.column("kind").to_numpy()
        frame_ids: set[str] = set()
        for data in events.filter(pa.array(kinds == Kind.FRAME)).column("data").to_pylist():
            fid = json.loads(data or "{}").get("frame")
            if fid:
                frame_ids.add(fid)
        exporter = FrameExporter(src.store.db, src.reader)
        for fid in sorted(frame_ids):
            try:
                manifest, tiles = exporter.frame(fid)
            except KeyError as exc:
                raise DatasetError(
                    f"Frame {fid} of session {session} is incomplete in the store ({exc})."
                ) from None
            for key, data in tiles.items():
                rel = tile_key(key)
                if data is not None and not files.exists(rel):
                    files.write(rel, data)
                    counts["tiles"] += 1
            rel = frame_key(device, fid)
            if not files.exists(rel):
                files.write(rel, manifest)
                counts["frames"] += 1
        # the session file last: a reader sees a session only once its data is there
        files.write(f"sessions/{device}/{session}.json", json.dumps(meta, indent=1).encode())
        return counts
    finally:
        src.close()


# -- reading ----------------------------------------------------------------------------------
class LakeSource:
    """Sessions of a lake, for ``demotrace build`` (see :class:`demotrace.dataset.sources`)."""

    def __init__(self, uri: str | Path) -> None:
        self.spec = str(uri)
        self.files = _Files(uri)
        if not self.files.any_under("sessions"):
            raise DatasetError(
                f"{uri} holds no lake sessions (no sessions/<device>/<session>.json). Give a "
                "collector's lake folder or URI, or a local store."
            )
        self._tiles: dict[bytes, Image.Image] = {}

    def sessions(self) -> list[dict[str, Any]]:
        out = []
        for rel in self.files.listing("sessions"):
            if not rel.endswith(".json"):
                continue
            try:
                out.append(self._session(json.loads(self.files.read(rel))))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise DatasetError(
                    f"The lake's session file {rel} is damaged ({type(exc).__name__}: {exc}); "
                    "restore it from the collector, or move it away to build without it."
                ) from None
        out.sort(key=lambda r: (r["device"], r["session"]))
        return out

    def _session(self, meta: dict[str, Any]) -> dict[str, Any]:
        info = meta.get("info") or {}
        keys = ("double_click_ms", "double_click_px")
        if not _NAME.fullmatch(str(meta["device"])) or not _DATE.fullmatch(str(meta["date"])):
            raise ValueError("its device or date is not a plain name")  # they become paths
        return {
            "source": self.spec,
            "kind": "lake",
            "device": str(meta["device"]),
            "session": int(meta["session"]),
            "date": meta["date"],
            "started_wall_ns": int(meta["started_wall_ns"]),
            "started_mono_ns": int(meta["started_mono_ns"]),
            "ended_mono_ns": meta.get("ended_mono_ns"),
            "status": meta.get("status"),
            "screen": list(meta.get("screen") or [0, 0]),
            "event_model": int(meta["event_model"]),
            "input": {k: int(info[k]) for k in keys if isinstance(info.get(k), int)},
        }

    def events(self, ref: dict[str, Any]) -> pa.Table:
        folder = f"events/date={ref['date']}/device={ref['device']}/session={ref['session']}"
        parts = [p for p in self.files.listing(folder) if p.endswith(".parquet")]
        if not parts:
            return EVENT_SCHEMA.empty_table()
        tables = []
        for rel in parts:
            try:
                table = pq.read_table(io.BytesIO(self.files.read(rel)))
                tables.append(table.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA))
            except (pa.ArrowException, KeyError) as exc:
                raise DatasetError(f"The lake's event segment {rel} is damaged: {exc}.") from None
        table = pa.concat_tables(tables)
        order = np.argsort(table.column("seq").to_numpy(), kind="stable")
        table = table.take(pa.array(order))
        seq = table.column("seq").to_numpy()
        keep = np.ones(len(seq), dtype=bool)
        keep[1:] = seq[1:] != seq[:-1]  # a segment stored twice (a retried upload) counts once
        return table.filter(pa.array(keep)) if not keep.all() else table

    def _tile(self, th: bytes) -> Image.Image:
        img = self._tiles.get(th)
        if img is None:
            img = Image.open(io.BytesIO(self.files.read(tile_key(th.hex()))))
            img.load()
            if len(self._tiles) > 4096:
                self._tiles.clear()
            self._tiles[th] = img
        return img

    def frame(self, ref: dict[str, Any], frame_id: str) -> Image.Image:
        from demotrace.store.frames import tile_rect

        data = self.files.read(frame_key(ref["device"], frame_id))
        w, h, tile, hashes = unpack_manifest(data)
        out = Image.new("RGB", (w, h))
        for index, th in enumerate(hashes):
            x0, y0, _x1, _y1 = tile_rect(index, w, h, tile)
            out.paste(self._tile(th), (x0, y0))
        return out

    def missing_frames(self, ref: dict[str, Any], frame_ids: set[str]) -> set[str]:
        missing = set()
        present: dict[bytes, bool] = {}  # frames share most tiles: ask about each one once
        for fid in frame_ids:
            rel = frame_key(ref["device"], fid)
            try:
                _w, _h, _t, hashes = unpack_manifest(self.files.read(rel))
            except (OSError, ValueError, pa.ArrowException):
                missing.add(fid)
                continue
            for th in set(hashes):
                if th not in present:
                    present[th] = self.files.exists(tile_key(th.hex()))
                if not present[th]:
                    missing.add(fid)
                    break
        return missing

    def close(self) -> None:
        self._tiles.clear()


def is_lake(spec: str | Path) -> bool:
    """True for a URI, or a folder with a ``sessions`` folder and no store in it."""
    text = str(spec)
    if "://" in text:
        return True
    path = Path(text)
    return (path / "sessions").is_dir() and not (path / "demotrace.db").exists()

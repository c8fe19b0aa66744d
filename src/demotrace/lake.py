"""The lake: recorded sessions as Parquet event segments and content-addressed blobs, by date.

The collector lays uploaded data out this way, and ``demotrace build`` reads it directly (local and
Ray engines), from a folder or any URI pyarrow's file systems know (``s3://bucket/prefix``)::

    LAKE/
      sessions/<device>/<session>.json      the session: clocks, status, screen, event model, info
      events/date=YYYY-MM-DD/device=<device>/session=<session>/seg-<first seq>.parquet
      frames/<hh>/<frame hash>.bin           a frame's manifest: its full grid of tile hashes
      tiles/<hh>/<tile hash>.webp            a tile, lossless WebP, as the recorder stored it

Events keep the local store's columns (:data:`~demotrace.dataset.schema.EVENT_SCHEMA`), sorted by
``seq``, at most :data:`SEGMENT_ROWS` a segment; ``date`` is the session's start (UTC). Every blob
is named by its content hash and can be checked: a manifest's name is the hash of its dimensions
and tile hashes (``store.frames.frame_hash``), a tile's the hash of its decoded pixels. Writing is
idempotent: a segment or blob written twice is the same file, and readers drop duplicate ``seq``.
"""

from __future__ import annotations

import datetime as dt
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


def _blob(kind: str, hexhash: str, ext: str) -> str:
    return f"{kind}/{hexhash[:2]}/{hexhash}.{ext}"


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
        db = src.store.db
        for fid in sorted(frame_ids):
            w, h, tile, hashes = src.reader.grid(bytes.fromhex(fid))
            for th in sorted(set(hashes)):
                rel = _blob("tiles", th.hex(), "webp")
                if not files.exists(rel):
                    blob = db.execute("SELECT data FROM tiles WHERE hash = ?", (th,)).fetchone()
                    if blob is None:
                        raise DatasetError(
                            f"Frame {fid} of session {session} lacks a tile in the store."
                        )
                    files.write(rel, blob[0])
                    counts["tiles"] += 1
            rel = _blob("frames", fid, "bin")
            if not files.exists(rel):
                files.write(rel, pack_manifest(w, h, tile, hashes))
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
            img = Image.open(io.BytesIO(self.files.read(_blob("tiles", th.hex(), "webp"))))
            img.load()
            if len(self._tiles) > 4096:
                self._tiles.clear()
            self._tiles[th] = img
        return img

    def frame(self, ref: dict[str, Any], frame_id: str) -> Image.Image:
        from demotrace.store.frames import tile_rect

        w, h, tile, hashes = unpack_manifest(self.files.read(_blob("frames", frame_id, "bin")))
        out = Image.new("RGB", (w, h))
        for index, th in enumerate(hashes):
            x0, y0, _x1, _y1 = tile_rect(index, w, h, tile)
            out.paste(self._tile(th), (x0, y0))
        return out

    def missing_frames(self, ref: dict[str, Any], frame_ids: set[str]) -> set[str]:
        missing = set()
        present: dict[bytes, bool] = {}  # frames share most tiles: ask about each one once
        for fid in frame_ids:
            rel = _blob("frames", fid, "bin")
            try:
                _w, _h, _t, hashes = unpack_manifest(self.files.read(rel))
            except (OSError, ValueError, pa.ArrowException):
                missing.add(fid)
                continue
            for th in set(hashes):
                if th not in present:
                    present[th] = self.files.exists(_blob("tiles", th.hex(), "webp"))
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

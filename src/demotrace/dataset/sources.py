"""Where a build reads recordings from: a local store today (the collector's lake plugs in here).

A source lists sessions as small picklable dicts (so that Ray workers can open the source
themselves) and gives one session's raw events as an Arrow table and its frames as images.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
from PIL import Image

from demotrace.dataset.schema import EVENT_SCHEMA
from demotrace.errors import DatasetError, StoreError
from demotrace.model import EVENT_MODEL_VERSION


class Source(Protocol):
    """What a build needs from recordings."""

    spec: str

    def sessions(self) -> list[dict[str, Any]]: ...

    def events(self, ref: dict[str, Any]) -> pa.Table: ...

    def frame(self, ref: dict[str, Any], frame_id: str) -> Image.Image: ...

    def missing_frames(self, ref: dict[str, Any], frame_ids: set[str]) -> set[str]: ...

    def close(self) -> None: ...


class LocalStoreSource:
    """A local store folder (``$DEMOTRACE_HOME/store``), read-only."""

    def __init__(self, root: Path) -> None:
        from demotrace.store.db import Store
        from demotrace.store.frames import FrameReader

        self.root = Path(root)
        self.spec = str(self.root)
        try:
            self.store = Store(self.root, create=False)
        except StoreError as exc:
            raise DatasetError(str(exc)) from None
        self.reader = FrameReader(self.store.db)

    def sessions(self) -> list[dict[str, Any]]:
        out = []
        for s in self.store.sessions():
            out.append(
                {
                    "source": self.spec,
                    "kind": "local",
                    "device": "local",
                    "session": int(s["id"]),
                    "started_wall_ns": int(s["started_wall_ns"]),
                    "started_mono_ns": int(s["started_mono_ns"]),
                    "ended_mono_ns": s["ended_mono_ns"],
                    "status": s["status"],
                    "screen": [int(s["screen_w"] or 0), int(s["screen_h"] or 0)],
                    "event_model": int(s["event_model"]),
                    "input": _input_settings(s.get("info")),
                }
            )
        return out

    def events(self, ref: dict[str, Any]) -> pa.Table:
        try:
            rows = self.store.db.execute(
                "SELECT seq, t_ns, kind, x, y, code, state, value, name, data FROM events "
                "WHERE session = ? ORDER BY seq",
                (ref["session"],),
            ).fetchall()
        except sqlite3.Error as exc:
            raise DatasetError(
                f"Cannot read session {ref['session']} from the store at {self.root}: {exc}."
            ) from None
        if not rows:
            return EVENT_SCHEMA.empty_table()
        cols = list(zip(*rows, strict=True))
        arrays = [pa.array(c, type=f.type) for c, f in zip(cols, EVENT_SCHEMA, strict=True)]
        return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)

    def frame(self, ref: dict[str, Any], frame_id: str) -> Image.Image:
        return self.reader.image(bytes.fromhex(frame_id))

    def missing_frames(self, ref: dict[str, Any], frame_ids: set[str]) -> set[str]:
        """Frames referenced by events whose manifest or tiles are not in the store."""
        missing = set()
        present: dict[bytes, bool] = {}  # frames share most tiles: ask about each one once
        for fid in frame_ids:
            try:
                _w, _h, _tile, hashes = self.reader.grid(bytes.fromhex(fid))
            except (KeyError, ValueError):
                missing.add(fid)
                continue
            for thash in set(hashes):
                if thash not in present:
                    row = self.store.db.execute("SELECT 1 FROM tiles WHERE hash = ?", (thash,))
                    present[thash] = row.fetchone() is not None
                if not present[thash]:
                    missing.add(fid)
                    break
        return missing

    def close(self) -> None:
        self.store.close()


def open_source(spec: str | Path) -> Source:
    """A source from what the person typed: a store folder, a DEMOTRACE_HOME holding one, or a
    collector's lake (a folder or a URI such as ``s3://bucket/lake``)."""
    from demotrace.lake import LakeSource, is_lake

    if is_lake(spec):
        return LakeSource(spec)
    path = Path(spec)
    if (path / "store" / "demotrace.db").exists():
        path = path / "store"
    if (path / "demotrace.db").exists():
        return LocalStoreSource(path)
    if not path.exists():
        raise DatasetError(
            f"There is nothing at {spec} to build from. Give a local store folder (the `store` "
            "folder under DEMOTRACE_HOME, or DEMOTRACE_HOME itself), a collector's lake, or "
            "leave SOURCE out to build from this machine's recordings."
        )
    raise DatasetError(
        f"{spec} is not a demotrace store or lake: it has no demotrace.db and no sessions "
        "folder. Give a local store folder (the `store` folder under DEMOTRACE_HOME, or "
        "DEMOTRACE_HOME itself) or a collector's lake."
    )


def _input_settings(info: str | None) -> dict[str, int]:
    """The desktop's double-click settings the recorder found (session info), if any."""
    try:
        data = json.loads(info or "{}")
    except ValueError:
        return {}
    keys = ("double_click_ms", "double_click_px")
    return {k: int(data[k]) for k in keys if isinstance(data.get(k), int)}


def session_problem(ref: dict[str, Any]) -> str | None:
    """Why a session cannot be built at all (newer event model), or None."""
    if ref["event_model"] > EVENT_MODEL_VERSION:
        return (
            f"recorded with event model {ref['event_model']}, newer than this demotrace's "
            f"{EVENT_MODEL_VERSION}; upgrade demotrace to build it"
        )
    return None

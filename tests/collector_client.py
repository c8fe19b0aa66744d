"""Raw HTTP access to a collector for API tests: request bodies built the way the sync client
builds them (Arrow blob batches, Parquet segments with a Content-Digest), a device's client, and
snapshots of the lake (a folder or an S3 prefix) to prove that nothing changed."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
from PIL import Image

from demotrace.collector.wire import blob_batch, content_digest, events_parquet
from demotrace.dataset.schema import EVENT_SCHEMA
from demotrace.lake import content_hash, pack_manifest
from demotrace.model import Kind

STARTED_WALL_NS = 1_790_000_000_000_000_000  # 2026-09-21 (UTC)
TILE = 16


# -- bodies -------------------------------------------------------------------------------------
def webp_tile(seed: int, size: int = TILE) -> bytes:
    """A small lossless WebP whose pixels (and so bytes) depend on ``seed``."""
    img = Image.new("RGB", (size, size), ((seed * 37) % 256, (seed * 91) % 256, seed % 256))
    img.putpixel((seed % size, (seed // size) % size), (255 - seed % 256, 7, 11))
    out = io.BytesIO()
    img.save(out, "WEBP", lossless=True)
    return out.getvalue()


def manifest(width: int, height: int, tile_keys: list[str], tile: int = TILE) -> bytes:
    """A frame manifest (DTF1) over the given tile keys."""
    return pack_manifest(width, height, tile, [bytes.fromhex(k) for k in tile_keys])


def ipc_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def event(seq: int, kind: Kind = Kind.MOVE, **cols: Any) -> dict[str, Any]:
    """One event row of the lake's columns."""
    row: dict[str, Any] = {name: None for name in EVENT_SCHEMA.names}
    row |= {"seq": seq, "t_ns": 1_000_000_000 + seq * 1_000_000, "kind": int(kind)}
    if kind == Kind.MOVE:
        row |= {"x": seq % 800, "y": seq % 600}
    return row | cols


def frame_event(seq: int, frame_id: str) -> dict[str, Any]:
    return event(seq, Kind.FRAME, data=json.dumps({"frame": frame_id, "for_seq": seq - 1}))


def parquet(rows: list[dict[str, Any]], schema: pa.Schema = EVENT_SCHEMA) -> bytes:
    """Rows as a zstd Parquet file, as ``Syncer._send_segment`` writes it."""
    return events_parquet(pa.Table.from_pylist(rows, schema=schema))


digest = content_digest


def session_meta(started_wall_ns: int = STARTED_WALL_NS, **extra: Any) -> dict[str, Any]:
    return {
        "started_wall_ns": started_wall_ns,
        "started_mono_ns": 1_000_000,
        "ended_mono_ns": None,
        "status": "recording",
        "screen": [64, 32],
        "event_model": 1,
        "info": {},
    } | extra


# -- a device -----------------------------------------------------------------------------------
class Device:
    """One enrolled device talking to the collector with its credential."""

    def __init__(self, url: str, device: str, token: str) -> None:
        self.id, self.token = device, token
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    @classmethod
    def enroll(cls, url: str, code: str, label: str | None = None) -> Device:
        r = httpx.post(f"{url}/v1/enroll", json={"code": code, "label": label}, timeout=30)
        assert r.status_code == 201, r.text
        return cls(url, r.json()["device"], r.json()["token"])

    def close(self) -> None:
        self.http.close()

    def put_session(self, session: int, **meta: Any) -> httpx.Response:
        return self.http.put(f"/v1/sessions/{session}", json=session_meta(**meta))

    def put_segment(
        self,
        session: int | str,
        first: int | str,
        last: int | str,
        body: bytes,
        headers: dict[str, str | None] | None = None,
    ) -> httpx.Response:
        """PUT a segment with its Content-Digest; ``headers`` override (None: leave out)."""
        h = _headers({"Content-Digest": digest(body)}, headers)
        return self.http.put(
            f"/v1/sessions/{session}/segments/{first}-{last}", content=body, headers=h
        )

    def put_blobs(self, items: list[tuple[str, str, bytes]]) -> httpx.Response:
        return self.post_blobs_raw(blob_batch(items))

    def post_blobs_raw(
        self, body: bytes, headers: dict[str, str | None] | None = None
    ) -> httpx.Response:
        return self.http.post("/v1/blobs", content=body, headers=_headers({}, headers))

    def missing(self, tiles: list[str], frames: list[str]) -> dict[str, list[str]]:
        r = self.http.post("/v1/blobs/missing", json={"tiles": tiles, "frames": frames})
        assert r.status_code == 200, r.text
        return r.json()

    def delete(self, request_id: str, **what: Any) -> httpx.Response:
        return self.http.post("/v1/deletions", json={"id": request_id, **what})


def _headers(base: dict[str, str], extra: dict[str, str | None] | None) -> httpx.Headers:
    h = httpx.Headers({"Content-Type": "application/octet-stream", **base})
    for name, value in (extra or {}).items():
        if value is None:
            h.pop(name, None)
        else:
            h[name] = value
    return h


def tiles_for(seeds: range | list[int]) -> dict[str, bytes]:
    """{key: bytes} of the tiles made from ``seeds``."""
    out = {}
    for s in seeds:
        data = webp_tile(s)
        out[content_hash(data)] = data
    return out


# -- the lake -----------------------------------------------------------------------------------
class LakeView:
    """What the collector's lake holds, {key: a digest of its bytes}, from a folder or S3."""

    def __init__(self, folder: Path | None = None, s3: Any = None, bucket: str = "") -> None:
        self.folder, self.s3, self.bucket = folder, s3, bucket

    def snapshot(self) -> dict[str, str]:
        if self.folder is not None:
            if not self.folder.exists():
                return {}
            return {
                p.relative_to(self.folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.folder.rglob("*"))
                if p.is_file()
            }
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix="lake/"
        ):
            for item in page.get("Contents", ()):  # the ETag of a plain PUT is its MD5
                out[item["Key"][len("lake/") :]] = f"{item['ETag']}:{item['Size']}"
        return out

    def read(self, key: str) -> bytes:
        if self.folder is not None:
            return (self.folder / key).read_bytes()
        return self.s3.get_object(Bucket=self.bucket, Key=f"lake/{key}")["Body"].read()

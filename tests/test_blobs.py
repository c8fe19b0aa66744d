"""Blob stores (a folder, S3 on a real moto server): the same behaviour, and a readable lake."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from demotrace.collector import blobs
from demotrace.collector.blobs import BlobStore, FsBlobs, S3Blobs, open_blobs
from demotrace.dataset.schema import EVENT_SCHEMA
from demotrace.errors import CollectorError
from demotrace.lake import LakeSource, content_hash, frame_key, pack_manifest, tile_key
from s3server import S3Server, free_port, s3_server

BAD_KEYS = ["../x", "/abs", "a\\b", "a b", "a/../b", "", "a//b", "a/", ".", "x/./y", "é"]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """One moto server for the module, its environment applied while the module runs."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    with s3_server() as server, mock.patch.dict(os.environ, server.env):
        yield server


def _bucket(server: S3Server) -> str:
    return server.make_bucket(f"t-{uuid.uuid4().hex[:16]}")


@pytest.fixture(params=["fs", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "fs":
        return open_blobs(tmp_path / "lake")
    server = request.getfixturevalue("s3")
    return open_blobs(f"s3://{_bucket(server)}/lake/v1")


def test_round_trip(store: BlobStore) -> None:
    assert isinstance(store, BlobStore)
    assert list(store.list("")) == []
    assert not store.exists("tiles/ab/ab.webp") and store.size("tiles/ab/ab.webp") is None
    with pytest.raises(KeyError):
        store.get("tiles/ab/ab.webp")
    store.put("tiles/ab/ab.webp", b"tile")
    store.put("sessions/dev-1/3.json", b"")
    assert store.get("tiles/ab/ab.webp") == b"tile" and store.get("sessions/dev-1/3.json") == b""
    assert store.exists("tiles/ab/ab.webp") and store.size("tiles/ab/ab.webp") == 4
    assert store.size("sessions/dev-1/3.json") == 0
    assert not store.exists("tiles/ab") and store.size("tiles") is None  # folders are no keys
    assert list(store.list("")) == ["sessions/dev-1/3.json", "tiles/ab/ab.webp"]
    store.delete("tiles/ab/ab.webp")
    assert not store.exists("tiles/ab/ab.webp")
    assert list(store.list("")) == ["sessions/dev-1/3.json"]


def test_put_overwrites_whole_objects(store: BlobStore) -> None:
    store.put("frames/00/f.bin", b"old" * 1000)
    store.put("frames/00/f.bin", b"new")
    assert store.get("frames/00/f.bin") == b"new" and store.size("frames/00/f.bin") == 3
    assert list(store.list("frames/")) == ["frames/00/f.bin"]
    if isinstance(store, FsBlobs):
        assert [p.name for p in store.root.rglob("*")] == ["frames", "00", "f.bin"]


@pytest.mark.parametrize("broken", ["replace", "write"])
def test_a_failed_write_keeps_the_old_object_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    store = FsBlobs(tmp_path / "lake")
    store.put("a/b.bin", b"old")

    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, broken, full)
    with pytest.raises(CollectorError, match="disk is full") as info:
        store.put("a/b.bin", b"new")
    monkeypatch.undo()
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert store.get("a/b.bin") == b"old"
    assert [p.name for p in (tmp_path / "lake").rglob("*")] == ["a", "b.bin"]


def test_an_unwritable_folder_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FsBlobs(tmp_path / "lake")

    def denied(*_args: object, **_kw: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(CollectorError, match="write access") as info:
        store.put("a/b.bin", b"x")
    assert str(tmp_path / "lake") in str(info.value)


def test_keys_are_checked(store: BlobStore) -> None:
    for key in BAD_KEYS:
        for call in (
            lambda k: store.put(k, b"x"),
            store.get,
            store.exists,
            store.size,
            store.delete,
        ):
            with pytest.raises(ValueError, match="Invalid blob key"):
                call(key)
    for prefix in ("../", "/x", "a b", "a//"):
        with pytest.raises(ValueError):
            list(store.list(prefix))
    assert list(store.list("")) == []


def test_deleting_an_absent_key_is_fine(store: BlobStore) -> None:
    store.delete("no/such/key.bin")
    store.put("tiles/ab/one.webp", b"1")
    store.put("tiles/ab/two.webp", b"2")
    store.delete("tiles/ab/one.webp")
    store.delete("tiles/ab/one.webp")
    assert list(store.list("")) == ["tiles/ab/two.webp"]
    store.delete("tiles/ab/two.webp")
    assert list(store.list("")) == []
    if isinstance(store, FsBlobs):  # empty folders go, the root stays
        assert store.root.is_dir() and list(store.root.iterdir()) == []


def test_list_by_prefix_page_by_page(store: BlobStore) -> None:
    keys = [
        "events/date=2024-05-01/device=a/session=1/seg-000000000000.parquet",
        "events/date=2024-05-01/device=a/session=1/seg-000000000500.parquet",
        "events/date=2024-05-02/device=b/session=2/seg-000000000000.parquet",
        "frames/0a/0a1.bin",
        "frames/0a/0a2.bin",
        "frames/ff/ff1.bin",
        "sessions/a-b/1.json",
        "sessions/a/1.json",
        "sessions/a/10.json",
        "sessions/a/2.json",
    ]
    for key in reversed(keys):
        store.put(key, key.encode())
    calls = []
    if isinstance(store, S3Blobs):
        store.client.meta.events.register(
            "before-parameter-build.s3.ListObjectsV2", lambda **kw: calls.append(kw["params"])
        )
    with mock.patch.object(blobs, "PAGE_SIZE", 3):
        assert list(store.list("")) == sorted(keys)
        assert list(store.list("frames/0a/")) == keys[3:5]
        assert list(store.list("events/date=2024-05-01")) == keys[:2]  # a prefix, not a folder
        assert list(store.list("sessions/a")) == keys[6:]
        assert list(store.list("sessions/a/")) == keys[7:]
        assert list(store.list("nothing/")) == []
    if isinstance(store, S3Blobs):
        assert len(calls) >= 4 + 1 + 1 + 2 + 1 + 1
        assert all(c["MaxKeys"] == 3 for c in calls)


def test_a_missing_bucket_is_a_clear_error(s3: S3Server) -> None:
    start = time.monotonic()
    with pytest.raises(CollectorError, match="does not exist") as info:
        open_blobs("s3://no-such-bucket-here/lake")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "no-such-bucket-here" in message and s3.endpoint in message and "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_an_unreachable_endpoint_is_a_clear_error(s3: S3Server) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with (
        mock.patch.dict(os.environ, {"DEMOTRACE_S3_ENDPOINT": closed}),
        mock.patch.object(blobs, "ATTEMPTS", 1),
        mock.patch.object(blobs, "TIMEOUT", 2.0),
        pytest.raises(CollectorError, match="does not answer") as info,
    ):
        open_blobs("s3://some-bucket/lake")
    assert time.monotonic() - start < 5
    assert closed in str(info.value) and "DEMOTRACE_S3_ENDPOINT" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_boto3_is_needed_only_for_s3(tmp_path: Path) -> None:
    with mock.patch.dict(sys.modules, {"boto3": None}):
        assert isinstance(open_blobs(tmp_path), FsBlobs)
        with pytest.raises(CollectorError, match=r"pip install 'demotrace\[server\]'"):
            open_blobs("s3://some-bucket/lake")


def test_specs(tmp_path: Path, s3: S3Server) -> None:
    assert open_blobs(tmp_path / "a").url == str(tmp_path / "a")
    assert open_blobs(f"file://{tmp_path}/b").url == str(tmp_path / "b")
    assert (tmp_path / "a").is_dir() and (tmp_path / "b").is_dir()
    for bad in ("ftp://host/x", "s3://Bad_Bucket/x", "s3://ok-bucket/a b", "s3://ok-bucket/x?k=v"):
        with pytest.raises(CollectorError):
            open_blobs(bad)
    bucket = _bucket(s3)
    store = open_blobs(f"s3://{bucket}/p/q/")
    port = s3.endpoint.rsplit(":", 1)[1]
    query = f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    assert store.url == f"s3://{bucket}/p/q?{query}"
    assert "testing" not in store.url
    secret = S3Blobs("abc-def", endpoint="http://user:secret@127.0.0.1:9/").url
    assert "secret" not in secret and "endpoint_override=127.0.0.1:9&" in secret
    store.put("x.bin", b"x")
    # the url alone finds the same store again, without the endpoint in the environment
    env = {k: v for k, v in os.environ.items() if k != "DEMOTRACE_S3_ENDPOINT"}
    with mock.patch.dict(os.environ, env, clear=True):
        assert open_blobs(store.url).get("x.bin") == b"x"
    assert open_blobs(f"s3://{bucket}").url == f"s3://{bucket}?{query}"
    assert list(open_blobs(f"s3://{bucket}").list("")) == ["p/q/x.bin"]


def test_a_lake_written_to_a_store_is_readable_by_build(store: BlobStore) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    webp = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(webp, "WEBP", lossless=True)
    th = content_hash(webp.getvalue())
    fid = hashlib.blake2b(pixels.tobytes(), digest_size=16).hexdigest()  # the recorder's id
    store.put(tile_key(th), webp.getvalue())
    store.put(frame_key("dev-1", fid), pack_manifest(16, 16, 16, [bytes.fromhex(th)]))

    events = pa.table(
        {
            "seq": [1, 2, 3],
            "t_ns": [10, 20, 30],
            "kind": [1, 2, 3],
            "x": [1, 2, None],
            "y": [3, 4, None],
            "code": [None, 5, None],
            "state": [0, 0, 0],
            "value": [None, None, 7],
            "name": ["a", None, "c"],
            "data": [None, json.dumps({"frame": fid}), "{}"],
        },
        schema=EVENT_SCHEMA,
    )
    sink = pa.BufferOutputStream()
    pq.write_table(events, sink, compression="zstd")
    folder = "events/date=2024-05-01/device=dev-1/session=7"
    store.put(f"{folder}/seg-000000000001.parquet", sink.getvalue().to_pybytes())
    meta = {
        "device": "dev-1",
        "session": 7,
        "date": "2024-05-01",
        "started_wall_ns": 1_714_521_600_000_000_000,
        "started_mono_ns": 5,
        "ended_mono_ns": 99,
        "status": "ended",
        "screen": [16, 16],
        "event_model": 2,
        "info": {"double_click_ms": 400},
    }
    store.put("sessions/dev-1/7.json", json.dumps(meta).encode())

    lake = LakeSource(store.url)
    (ref,) = lake.sessions()
    assert ref["device"] == "dev-1" and ref["session"] == 7 and ref["date"] == "2024-05-01"
    assert ref["kind"] == "lake" and ref["event_model"] == 2 and ref["screen"] == [16, 16]
    assert ref["input"] == {"double_click_ms": 400}
    assert lake.events(ref).equals(events)
    assert np.array_equal(np.asarray(lake.frame(ref, fid)), pixels)
    assert lake.missing_frames(ref, {fid, "00" * 16}) == {"00" * 16}
    lake.close()

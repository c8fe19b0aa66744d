"""The lake: sessions exported from a store, read back by `demotrace build` (local and Ray)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from demotrace.dataset.build import build
from demotrace.dataset.sources import LocalStoreSource
from demotrace.errors import DatasetError
from demotrace.lake import export_session, unpack_manifest
from demotrace.store.frames import frame_hash
from test_build import _session


def _parquet_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


@pytest.fixture
def two_sessions(tmp_path: Path) -> tuple[Path, Path]:
    store = tmp_path / "store"
    _session(store, 1)
    _session(store, 2)
    lake = tmp_path / "lake"
    for session in (1, 2):
        export_session(store, session, lake, device="local")
    return store, lake


def test_a_lake_builds_the_same_dataset_as_its_store(two_sessions, tmp_path: Path) -> None:
    store, lake = two_sessions
    from_store, from_lake = tmp_path / "a", tmp_path / "b"
    build(store, from_store)
    info = build(lake, from_lake)
    assert info["counts"]["sessions"] == 2 and info["sources"] == ["a lake"]
    assert _parquet_files(from_store) == _parquet_files(from_lake)
    layout = sorted(str(p.relative_to(lake)).split("/")[0] for p in lake.rglob("*") if p.is_file())
    assert set(layout) == {"sessions", "events", "frames", "tiles"}


def test_blobs_are_named_by_their_content(two_sessions) -> None:
    import hashlib

    store, lake = two_sessions
    manifests = list((lake / "frames" / "local").rglob("*.bin"))
    assert len(manifests) == 3  # the three distinct screens of the hand-written session
    tiles = {p.stem: p for p in (lake / "tiles").rglob("*.webp")}
    for path in tiles.values():
        assert hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest() == path.stem
    src = LocalStoreSource(store)
    try:
        for path in manifests:
            w, h, tile, keys = unpack_manifest(path.read_bytes())
            # the frame keeps the recorder's id: the hash of its tiles' pixels
            pw, ph, ptile, pixel_hashes = src.reader.grid(bytes.fromhex(path.stem))
            assert (w, h, tile) == (pw, ph, ptile) and len(keys) == len(pixel_hashes)
            assert frame_hash(w, h, tile, pixel_hashes).hex() == path.stem
            assert all(k.hex() in tiles for k in keys)
    finally:
        src.close()


def test_export_is_idempotent_and_duplicates_count_once(two_sessions, tmp_path: Path) -> None:
    store, lake = two_sessions
    before = {p: p.read_bytes() for p in lake.rglob("*") if p.is_file()}
    again = export_session(store, 1, lake, device="local")
    assert (again["frames"], again["tiles"]) == (0, 0)
    assert {p: p.read_bytes() for p in lake.rglob("*") if p.is_file()} == before
    # a segment stored twice under another name (a retried upload) changes nothing
    seg = next((lake / "events").rglob("seg-*.parquet"))
    shutil.copy(seg, seg.with_name("seg-retry.parquet"))
    reference, doubled = tmp_path / "a", tmp_path / "b"
    build(store, reference)
    build(lake, doubled)
    assert _parquet_files(reference) == _parquet_files(doubled)


def test_missing_blob_skips_the_session_and_damage_is_a_clear_error(
    two_sessions, tmp_path: Path
) -> None:
    _store, lake = two_sessions
    next((lake / "tiles").rglob("*.webp")).unlink()
    info = build(lake, tmp_path / "a")
    assert len(info["skipped"]) >= 1
    assert all("screenshots are missing" in s["reason"] for s in info["skipped"])
    seg = next((lake / "events").rglob("seg-*.parquet"))
    seg.write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetError, match="damaged"):
        build(lake, tmp_path / "b")
    empty = tmp_path / "empty"
    (empty / "sessions").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no lake sessions"):
        build(empty, tmp_path / "c")


def test_ray_engine_reads_the_lake(two_sessions, tmp_path: Path) -> None:
    store, lake = two_sessions
    local, ray = tmp_path / "local", tmp_path / "ray"
    build(store, local)
    build(lake, ray, engine="ray")
    assert _parquet_files(local) == _parquet_files(ray)
    # an error in a Ray worker comes back as its own one-paragraph message
    next((lake / "events").rglob("seg-*.parquet")).write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetError, match="damaged"):
        build(lake, tmp_path / "broken", engine="ray")


def test_source_labels_never_carry_paths_or_credentials() -> None:
    from types import SimpleNamespace

    from demotrace.dataset.build import source_label

    def label(spec: str) -> str:
        return source_label(SimpleNamespace(spec=spec))  # type: ignore[arg-type]

    assert label("/home/ada/lake") == "a lake"
    assert label("s3://AKIAXXXX:topsecret@bucket/lake?region=eu") == "s3://bucket/lake"


def test_damaged_session_files_and_events_are_clear(two_sessions, tmp_path: Path) -> None:
    _store, lake = two_sessions
    meta = next((lake / "sessions").rglob("*.json"))
    meta.write_text('{"device": "../../etc", "session": 1}')
    with pytest.raises(DatasetError, match="is damaged"):
        build(lake, tmp_path / "a")

"""Unit tests of pure pieces: server clock, action starts, frame manifests, store schema."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demotrace.capture.base import ServerClock
from demotrace.errors import StoreError
from demotrace.model import Kind, Row, modifier_names
from demotrace.recorder import ActionStarts
from demotrace.store.db import MIGRATIONS, Store
from demotrace.store.frames import (
    FrameReader,
    encode_tile,
    frame_hash,
    grid_shape,
    hash_pixels,
    pack_delta,
    pack_full,
    tile_rect,
    unpack,
)

MS = 1_000_000


def test_server_clock_never_later_than_receipt_and_follows_the_fastest_delivery() -> None:
    clock = ServerClock()
    assert clock.map(1000, 5_000 * MS) == 5_000 * MS  # first sample: offset = 4000 ms
    # delivered 3 ms late: mapped to the server time plus the best offset seen so far
    assert clock.map(1010, 5_013 * MS) == 5_010 * MS
    # a faster delivery lowers the offset for everything after it
    assert clock.map(1020, 5_019 * MS) == 5_019 * MS
    assert clock.map(1030, 5_040 * MS) == 5_029 * MS


def test_server_clock_handles_the_32_bit_wrap() -> None:
    clock = ServerClock()
    top = (1 << 32) - 5
    t0 = clock.map(top, 10_000 * MS)
    t1 = clock.map(3, 10_008 * MS)  # 8 ms later, after the wrap
    assert t1 - t0 == 8 * MS


def _row(
    kind: Kind,
    t_ms: int,
    value: int | None = None,
    code: int | None = None,
    data: str | None = None,
) -> Row:
    return Row(t_ms * MS, t_ms, int(kind), 1, 1, code, 0, value, None, data)


def test_action_starts() -> None:
    s = ActionStarts(burst_gap=0.5, wheel_gap=0.5)
    assert s.feed(_row(Kind.MOVE, 0)) is None
    assert s.feed(_row(Kind.BUTTON, 10, value=1, code=1)) == "press"
    assert s.feed(_row(Kind.BUTTON, 80, value=0, code=1)) is None
    assert s.feed(_row(Kind.KEY, 100, value=1)) == "key"  # first key after a click
    assert s.feed(_row(Kind.KEY, 150, value=0)) is None
    assert s.feed(_row(Kind.KEY, 300, value=1)) is None  # same burst
    assert s.feed(_row(Kind.KEY, 1000, value=1)) == "key"  # after a pause
    assert s.feed(_row(Kind.WHEEL, 1100, value=1, code=5)) == "scroll"
    assert s.feed(_row(Kind.WHEEL, 1200, value=1, code=5)) is None
    assert s.feed(_row(Kind.WHEEL, 1250, value=1, code=4)) == "scroll"  # other direction
    assert s.feed(_row(Kind.WHEEL, 2000, value=1, code=4)) == "scroll"  # after a pause
    focus = json.dumps({"window": 7, "app": "XTerm"}, separators=(",", ":"))
    assert s.feed(_row(Kind.FOCUS, 2100, data=focus)) == "switch"
    nothing = json.dumps({"window": 0, "app": ""}, separators=(",", ":"))
    assert s.feed(_row(Kind.FOCUS, 2200, data=nothing)) is None


def test_modifier_names() -> None:
    assert modifier_names(4 | 1) == ["shift", "ctrl"]
    assert modifier_names(16) == []  # num lock is not a modifier anyone pressed


def test_tiles_and_manifests_reassemble_pixel_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    width, height, tile = 200, 130, 64
    cols, rows = grid_shape(width, height, tile)
    assert (cols, rows) == (4, 3)
    assert tile_rect(cols * rows - 1, width, height, tile) == (192, 128, 200, 130)
    screens = [rng.integers(0, 255, (height, width), dtype=np.uint32) | 0xFF000000]
    second = screens[0].copy()
    second[70:90, 10:40] = 0xFF00FF00  # changes tiles 4 and 5... only row 1
    screens.append(second)
    store = Store(tmp_path / "s")
    stored: list[bytes] = []
    parent_hashes: list[bytes] | None = None
    for n, screen in enumerate(screens):
        hashes, tiles = [], []
        for index in range(cols * rows):
            x0, y0, x1, y1 = tile_rect(index, width, height, tile)
            pixels = screen[y0:y1, x0:x1].copy()
            th = hash_pixels(pixels)
            hashes.append(th)
            tiles.append((th, 1, x1 - x0, y1 - y0, encode_tile(pixels)))
        fh = frame_hash(width, height, tile, hashes)
        if parent_hashes is None:
            grid, parent, depth = pack_full(hashes), None, 0
        else:
            changes = [
                (i, h) for i, (h, p) in enumerate(zip(hashes, parent_hashes, strict=True)) if h != p
            ]
            assert [i for i, _ in changes] == [4]
            grid, parent, depth = pack_delta(changes), stored[-1], 1
        assert unpack(grid)[0] == ("F" if parent is None else "D")
        with store.db:
            store.db.executemany("INSERT OR IGNORE INTO tiles VALUES (?,?,?,?,?)", tiles)
            store.db.execute(
                "INSERT INTO frames VALUES (?,?,?,?,?,?,?,?,?)",
                (fh, 1, width, height, tile, parent, depth, grid, n),
            )
        stored.append(fh)
        parent_hashes = hashes
    reader = FrameReader(store.db)
    for fh, screen in zip(stored, screens, strict=True):
        img = np.asarray(reader.image(fh))
        bgrx = screen.view(np.uint8).reshape(height, width, 4)
        assert np.array_equal(img, bgrx[:, :, 2::-1]), "lossless and in the right place"
    assert store.db.execute("SELECT COUNT(*) FROM tiles").fetchone()[0] == cols * rows + 1
    store.close()


def test_encoded_tile_is_lossless_webp() -> None:
    pixels = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 2654435761) | 0xFF000000
    img = Image.open(io.BytesIO(encode_tile(pixels)))
    assert img.format == "WEBP"
    expected = pixels.view(np.uint8).reshape(64, 64, 4)[:, :, 2::-1]
    assert np.array_equal(np.asarray(img.convert("RGB")), expected)


def test_store_schema_is_versioned_and_newer_stores_are_refused(tmp_path: Path) -> None:
    Store(tmp_path / "s").close()
    with sqlite3.connect(tmp_path / "s" / "demotrace.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer demotrace"):
        Store(tmp_path / "s")


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no demotrace store"):
        Store(tmp_path / "nothing", create=False)


def test_the_recorder_of_a_machine_not_enrolled_imports_no_sync_or_dataset_code(
    tmp_path: Path,
) -> None:
    """What `demotrace record` imports on a machine that is not enrolled: not httpx, pyarrow
    or the collector's libraries (30+ MB resident; BENCHMARKS.md section 1)."""
    import subprocess
    import sys

    code = f"""
import argparse, pathlib, sys
from demotrace import cli
import demotrace.recorder, demotrace.capture.x11, demotrace.capture.screen, demotrace.control
import demotrace.privacy.consent, demotrace.privacy.indicator, demotrace.privacy.atspi
import demotrace.browser.pairing, demotrace.store.writer  # the channel: only when paired
home = pathlib.Path({str(tmp_path)!r})
assert cli._background_sync(argparse.Namespace(sync_every=60), home, None) is None
heavy = ("pyarrow", "httpx", "sqlalchemy", "fastapi", "starlette", "pandas", "ray", "jinja2")
print(",".join(m for m in heavy if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    (tmp_path / "collector.json").write_text(
        '{"url": "http://127.0.0.1:9", "device": "d-1", "token": "d-1.x", "enrolled_ns": 1}'
    )
    from demotrace.sync.enrollment import Enrollment

    assert Enrollment.load(tmp_path) is not None  # enrolled: the sync client is loaded then

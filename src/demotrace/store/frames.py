"""Frames as grids of content-addressed tiles: hashing, encoding, manifests, reassembly.

A frame is the whole screen cut into ``tile`` x ``tile`` pixel tiles (the last row and column
may be smaller). Each tile is stored once, as lossless WebP, under the BLAKE2b-128 hash of its raw
pixels. A frame's manifest lists its tiles' hashes in row-major order, either in full (``F``) or as
the tiles that differ from a parent frame (``D``); a chain of deltas is at most
:data:`MAX_DEPTH` long. Reassembly is exact: decoded frames are pixel-identical to the screen.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
import struct
import zlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from PIL import Image

TILE = 64
MAX_DEPTH = 31
_DELTA_ITEM = struct.Struct("<H16s")


def grid_shape(width: int, height: int, tile: int = TILE) -> tuple[int, int]:
    """(columns, rows) of tiles covering a width x height screen."""
    return (width + tile - 1) // tile, (height + tile - 1) // tile


def tile_rect(index: int, width: int, height: int, tile: int = TILE) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of tile ``index`` in screen pixels."""
    cols, _rows = grid_shape(width, height, tile)
    ty, tx = divmod(index, cols)
    x0, y0 = tx * tile, ty * tile
    return x0, y0, min(x0 + tile, width), min(y0 + tile, height)


def hash_pixels(pixels: np.ndarray) -> bytes:
    """Content hash of a tile's pixels (BGRX, any strides)."""
    return hashlib.blake2b(np.ascontiguousarray(pixels).data, digest_size=16).digest()


def frame_hash(width: int, height: int, tile: int, hashes: Sequence[bytes]) -> bytes:
    h = hashlib.blake2b(struct.pack("<III", width, height, tile), digest_size=16)
    h.update(b"".join(hashes))
    return h.digest()


def encode_tile(pixels: np.ndarray) -> bytes:
    """Lossless WebP of a BGRX tile (uint32 words or uint8 x 4). Tiles are small: fast settings."""
    h, w = pixels.shape[:2]
    img = Image.frombuffer("RGB", (w, h), np.ascontiguousarray(pixels).data, "raw", "BGRX", 0, 1)
    out = io.BytesIO()
    img.save(out, "WEBP", lossless=True, quality=10, method=1)
    return out.getvalue()


def pack_full(hashes: Sequence[bytes]) -> bytes:
    return b"F" + zlib.compress(b"".join(hashes), 6)


def pack_delta(changes: Sequence[tuple[int, bytes]]) -> bytes:
    return b"D" + zlib.compress(b"".join(_DELTA_ITEM.pack(i, h) for i, h in changes), 6)


def unpack(grid: bytes) -> tuple[str, list[bytes] | list[tuple[int, bytes]]]:
    kind, body = chr(grid[0]), zlib.decompress(grid[1:])
    if kind == "F":
        return kind, [body[i : i + 16] for i in range(0, len(body), 16)]
    return kind, [(i, h) for i, h in _DELTA_ITEM.iter_unpack(body)]


class FrameReader:
    """Reassembles stored frames into Pillow images, with small caches for tiles and manifests."""

    def __init__(self, db: sqlite3.Connection, cache_tiles: int = 4096) -> None:
        self.db = db
        self._tiles: OrderedDict[bytes, Image.Image] = OrderedDict()
        self._cache_tiles = cache_tiles
        self._grids: OrderedDict[bytes, tuple[int, int, int, list[bytes]]] = OrderedDict()

    def grid(self, fhash: bytes) -> tuple[int, int, int, list[bytes]]:
        """(width, height, tile, tile hashes) of a frame, following its delta chain."""
        cached = self._grids.get(fhash)
        if cached is not None:
            return cached
        chain: list[tuple[bytes, str, list]] = []
        cursor: bytes | None = fhash
        base: tuple[int, int, int, list[bytes]] | None = None
        dims = (0, 0, 0)
        while cursor is not None:
            if cursor in self._grids:
                base = self._grids[cursor]
                break
            row = self.db.execute(
                "SELECT w, h, tile, parent, grid FROM frames WHERE hash = ?", (cursor,)
            ).fetchone()
            if row is None:
                raise KeyError(f"frame {cursor.hex()} is not in the store")
            dims = (row[0], row[1], row[2])
            kind, items = unpack(row[4])
            chain.append((cursor, kind, items))
            if kind == "F":
                base = (*dims, list(items))  # type: ignore[arg-type]
                chain.pop()
                self._remember(cursor, base)
                break
            cursor = row[3]
        assert base is not None
        hashes = list(base[3])
        for key, _kind, items in reversed(chain):
            for index, h in items:
                hashes[index] = h
            self._remember(key, (base[0], base[1], base[2], list(hashes)))
        return self._grids[fhash]

    def _remember(self, key: bytes, value: tuple[int, int, int, list[bytes]]) -> None:
        self._grids[key] = value
        if len(self._grids) > 256:
            self._grids.popitem(last=False)

    def tile(self, thash: bytes) -> Image.Image:
        img = self._tiles.get(thash)
        if img is None:
            row = self.db.execute("SELECT data FROM tiles WHERE hash = ?", (thash,)).fetchone()
            if row is None:
                raise KeyError(f"tile {thash.hex()} is not in the store")
            img = Image.open(io.BytesIO(row[0]))
            img.load()
            self._tiles[thash] = img
            if len(self._tiles) > self._cache_tiles:
                self._tiles.popitem(last=False)
        else:
            self._tiles.move_to_end(thash)
        return img

    def image(self, fhash: bytes) -> Image.Image:
        """The frame as an RGB image, pixel-identical to what was grabbed."""
        width, height, tile, hashes = self.grid(fhash)
        out = Image.new("RGB", (width, height))
        for index, thash in enumerate(hashes):
            x0, y0, _x1, _y1 = tile_rect(index, width, height, tile)
            out.paste(self.tile(thash), (x0, y0))
        return out

"""A local store written by hand: one session from an :class:`Events` table, with real frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from demotrace.model import EVENT_MODEL_VERSION
from demotrace.store.db import Store
from demotrace.store.frames import (
    TILE,
    encode_tile,
    frame_hash,
    grid_shape,
    hash_pixels,
    pack_full,
    tile_rect,
)
from events_builder import Events


def screen_image(w: int, h: int, label: int, popup: tuple[int, int, int, int] | None = None):
    """A recognisable test screen; with ``popup`` (x, y, w, h), a menu with a highlighted item."""
    img = Image.new("RGB", (w, h), (40 + label * 20 % 200, 60, 90))
    draw = ImageDraw.Draw(img)
    draw.rectangle([10, 10, 10 + 30 * (label % 10), 30], fill=(250, 250, 250))
    if popup is not None:
        x, y, pw, ph = popup
        draw.rectangle([x, y, x + pw - 1, y + ph - 1], fill=(235, 235, 235))
        for i in range(ph // 20):
            colour = (50, 100, 200) if i == 2 else (235, 235, 235)
            draw.rectangle([x, y + i * 20, x + pw - 1, y + i * 20 + 19], fill=colour)
    return img


def put_frame(store: Store, session: int, img: Image.Image, t_grab: int) -> str:
    """Store ``img`` as a full frame of tiles; its id (hex) for FRAME rows."""
    w, h = img.size
    rgb = np.asarray(img.convert("RGB"))
    bgrx = np.zeros((h, w, 4), np.uint8)
    bgrx[..., 0], bgrx[..., 1], bgrx[..., 2] = rgb[..., 2], rgb[..., 1], rgb[..., 0]
    cols, rows = grid_shape(w, h)
    hashes = []
    with store.db:
        for i in range(cols * rows):
            x0, y0, x1, y1 = tile_rect(i, w, h)
            tile = bgrx[y0:y1, x0:x1]
            th = hash_pixels(tile)
            hashes.append(th)
            store.db.execute(
                "INSERT OR IGNORE INTO tiles VALUES (?,?,?,?,?)",
                (th, session, x1 - x0, y1 - y0, encode_tile(tile)),
            )
        fh = frame_hash(w, h, TILE, hashes)
        store.db.execute(
            "INSERT OR IGNORE INTO frames VALUES (?,?,?,?,?,?,?,?,?)",
            (fh, session, w, h, TILE, None, 0, pack_full(hashes), t_grab),
        )
    return fh.hex()


_COLS = ("x", "y", "code", "state", "value", "name", "data")


def write_session(
    root: Path,
    ev: Events,
    *,
    status: str = "stopped",
    event_model: int = EVENT_MODEL_VERSION,
    size: tuple[int, int] = (800, 600),
) -> int:
    """A session holding ``ev``'s rows in a store under ``root``."""
    store = Store(root)
    try:
        t0 = ev.rows[0]["t_ns"]
        session = store.create_session(
            started_wall_ns=1_790_000_000_000_000_000,
            started_mono_ns=t0,
            ended_mono_ns=ev.rows[-1]["t_ns"] if status == "stopped" else None,
            status=status,
            screen_w=size[0],
            screen_h=size[1],
            event_model=event_model,
        )
        insert_events(store, session, ev)
        return session
    finally:
        store.close()


def insert_events(store: Store, session: int, ev: Events) -> None:
    """Write ``ev``'s rows into ``session`` of an open store."""
    with store.db:
        store.db.executemany(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (session, r["seq"], r["t_ns"], None, r["kind"], *(r[c] for c in _COLS))
                for r in ev.rows
            ],
        )

"""A realistic local store for sync tests, the sync command as a subprocess, and the check that
the collector holds the store's content exactly once."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from demotrace.dataset.schema import EVENT_SCHEMA
from demotrace.lake import LakeSource
from demotrace.model import EVENT_MODEL_VERSION, Kind
from demotrace.store.db import Store
from demotrace.store.frames import FrameReader
from events_builder import Events
from store_builder import insert_events, put_frame, screen_image

SCREEN = (640, 480)
DAY_NS = 86_400 * 10**9
EXIT_SYNC = 14  # SyncError.exit_code
_WORDS = ("invoice", "Germany", "total 42.50", "ok", "quarterly report", "Re: meeting", "ß→ü")


# -- the local store ------------------------------------------------------------------------------
def _frame_specs(rng: random.Random, n: int, shared: int) -> list[tuple[int, Any]]:
    """``shared`` plain screens every session shows, then popups placed by ``rng``."""
    specs: list[tuple[int, Any]] = [(label, None) for label in range(shared)]
    while len(specs) < n:
        w, h = rng.choice((120, 160, 200)), rng.choice((100, 160, 220))
        popup = (rng.randrange(0, SCREEN[0] - w), rng.randrange(0, SCREEN[1] - h), w, h)
        specs.append((rng.randrange(10), popup))
    return specs


def write_work_session(
    root: Path,
    seed: int,
    *,
    events: int = 3000,
    frames: int = 45,
    shared: int = 6,
    app: str = "Workbench",
) -> int:
    """One session of ``events`` rows of mixed work (moves, clicks, keys, typing, wheel) showing
    ``frames`` distinct frames; the first ``shared`` frames are the same in every session. Its
    start is three days ago, so it is past any review period. Returns its id."""
    rng = random.Random(seed)
    store = Store(root)
    try:
        ev = Events(*SCREEN)
        ids = [
            put_frame(store, 0, screen_image(*SCREEN, label, popup), ev.t)
            for label, popup in _frame_specs(rng, frames, shared)
        ]
        order = ids + [rng.choice(ids) for _ in range(frames)]  # each at least once, some twice
        ev.focus(app, 1, f"Form {seed}")
        ev.marker("task_start", f"task {seed}")
        per_frame = max(1, events // len(order))
        for fid in order:
            start = len(ev.rows)
            p = ev.click(window=1, app=app)
            ev.frame(fid, p)
            while len(ev.rows) - start < per_frame:
                r = rng.random()
                if r < 0.55:
                    ev.glide(rng.randrange(SCREEN[0]), rng.randrange(SCREEN[1]), rng.randint(3, 12))
                elif r < 0.7:
                    ev.tap(rng.choice(("Tab", "Return", "Down", "BackSpace")))
                elif r < 0.8:
                    ev.text(rng.choice(_WORDS))
                elif r < 0.87:
                    ev.wheel(rng.choice((4, 5)))
                elif r < 0.92:
                    ev.chord("Control_L", rng.choice("csvz"), state_bits=(4,))
                else:
                    ev.click(rng.choice((1, 3)))
        ev.marker("task_end")
        session = store.create_session(
            started_wall_ns=time.time_ns() - 3 * DAY_NS,
            started_mono_ns=ev.rows[0]["t_ns"],
            ended_mono_ns=ev.rows[-1]["t_ns"],
            status="stopped",
            screen_w=SCREEN[0],
            screen_h=SCREEN[1],
            event_model=EVENT_MODEL_VERSION,
            info=json.dumps({"seed": seed}),
        )
        insert_events(store, session, ev)
        return session
    finally:
        store.close()


def store_events(db: sqlite3.Connection, session: int) -> pa.Table:
    """The ground truth: a session's events in the store, as the lake's columns."""
    rows = db.execute(
        f"SELECT {', '.join(EVENT_SCHEMA.names)} FROM events WHERE session = ? ORDER BY seq",
        (session,),
    ).fetchall()
    cols = list(zip(*rows, strict=True))
    arrays = [pa.array(c, type=f.type) for c, f in zip(cols, EVENT_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


def frame_ids(table: pa.Table) -> set[str]:
    """The frames a table's FRAME rows show."""
    out = set()
    for kind, data in zip(table["kind"].to_pylist(), table["data"].to_pylist(), strict=True):
        if kind == Kind.FRAME:
            out.add(json.loads(data)["frame"])
    return out


# -- the sync command -----------------------------------------------------------------------------
def sync_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DEMOTRACE_POLICY"}
    return {**env, "DEMOTRACE_HOME": str(home)}


def sync_cmd(timeout: str = "60s", segment_rows: int = 200) -> list[str]:
    return [
        sys.executable,
        "-m",
        "demotrace",
        "sync",
        "--json",
        "--timeout",
        timeout,
        "--segment-rows",
        str(segment_rows),
    ]


def start_sync(home: Path, log: Path, **kw: Any) -> subprocess.Popen[str]:
    """``demotrace sync --json`` in the background: its summary on a pipe, stderr to ``log``."""
    with open(log, "a") as f:
        return subprocess.Popen(
            sync_cmd(**kw), stdout=subprocess.PIPE, stderr=f, text=True, env=sync_env(home)
        )


def run_sync(home: Path, *, wall_s: float = 600, **kw: Any) -> subprocess.CompletedProcess[str]:
    """``demotrace sync --json``; ``wall_s`` only guards against a hang (keep it above the
    sync's own ``timeout``, after which it gives up with exit code 14)."""
    return subprocess.run(
        sync_cmd(**kw), capture_output=True, text=True, env=sync_env(home), timeout=wall_s
    )


def sync_until_done(home: Path, rounds: int = 6, **kw: Any) -> dict[str, Any]:
    """Run sync until it exits 0 (exit 14, gave up retrying, runs again); its JSON summary."""
    for _ in range(rounds):
        done = run_sync(home, **kw)
        if done.returncode == 0:
            return json.loads(done.stdout)
        assert done.returncode == EXIT_SYNC, done.stderr[-3000:]
    raise AssertionError(f"sync did not complete in {rounds} rounds: {done.stderr[-3000:]}")


def segment_files(lake: Path) -> list[Path]:
    """Every event segment file in the lake (not temp files)."""
    return sorted(p for p in (lake / "events").rglob("*.parquet") if not p.name.startswith("."))


# -- exactly once ---------------------------------------------------------------------------------
def admin_totals(data_dir: Path) -> dict[str, int]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "demotrace",
            "admin",
            "totals",
            "--json",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_exactly_once(
    home: Path,
    data_dir: Path,
    device: str,
    totals: Callable[[], dict[str, int]] | None = None,
) -> None:
    """The collector under ``data_dir`` holds every row and frame of the store under ``home``
    once: segment files read directly (no reader dedup), the database's totals (``totals``, by
    default ``demotrace admin totals``), and a second sync that finds nothing to upload."""
    lake = data_dir / "lake"
    store = Store(home / "store", create=False)
    try:
        sessions = [int(s["id"]) for s in store.sessions()]
        files = segment_files(lake)
        referenced: set[str] = set()
        total_rows = 0
        for sid in sessions:
            truth = store_events(store.db, sid)
            total_rows += truth.num_rows
            parts = [
                p for p in files if p.parent.name == f"session={sid}" and f"={device}" in str(p)
            ]
            assert parts, f"session {sid}: no segment file in the lake"
            tables = [pq.read_table(p).select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA) for p in parts]
            lake_rows = pa.concat_tables(tables)
            twice = [s for s, n in Counter(lake_rows["seq"].to_pylist()).items() if n > 1]
            assert not twice, f"session {sid}: seq stored more than once: {twice[:20]}"
            order = np.argsort(lake_rows["seq"].to_numpy(), kind="stable")
            lake_rows = lake_rows.take(pa.array(order))
            assert lake_rows.num_rows == truth.num_rows, f"session {sid}: row count"
            assert lake_rows.equals(truth), (
                f"session {sid}: the lake's rows differ from the store's"
            )
            referenced |= frame_ids(truth)
        # every frame the events show, pixel for pixel
        source = LakeSource(lake)
        reader = FrameReader(store.db)
        ref = {"device": device}
        tiles: set[bytes] = set()
        for fid in sorted(referenced):
            local = np.asarray(reader.image(bytes.fromhex(fid)))
            remote = np.asarray(source.frame(ref, fid).convert("RGB"))
            assert np.array_equal(local, remote), f"frame {fid} differs on the collector"
            tiles.update(reader.grid(bytes.fromhex(fid))[3])
        assert {s["session"] for s in source.sessions()} == set(sessions)
        source.close()
    finally:
        store.close()
    # the database counts what the lake holds; no stray segment file
    db = sqlite3.connect(f"file:{data_dir / 'collector.db'}?mode=ro", uri=True, timeout=60)
    try:
        keys = {r[0] for r in db.execute("SELECT key FROM segments WHERE device = ?", (device,))}
    finally:
        db.close()
    assert {p.relative_to(lake).as_posix() for p in files} == keys, "stray or missing segment files"
    counted = totals() if totals is not None else admin_totals(data_dir)
    assert counted["events"] == total_rows, counted
    assert counted["segments"] == len(files), counted
    assert counted["frames"] == len(referenced), counted
    assert counted["tiles"] == len(tiles), counted
    assert counted["sessions"] == len(sessions), counted
    # nothing is left to upload
    again = run_sync(home)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["events"] == 0 and summary["segments"] == 0, summary
    assert summary["frames"] == 0 and summary["tiles"] == 0, summary

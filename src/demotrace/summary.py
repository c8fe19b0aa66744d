"""Summaries of recorded sessions, shared by `sessions`, `show`, `record` and `demo`."""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Any

from demotrace.errors import UnknownSessionError
from demotrace.model import Kind
from demotrace.store.db import LOCK_NAME, Store

#: Approximate bytes of one event row besides its text columns (record header, integers, key).
ROW_OVERHEAD = 30


def _writer_alive(store: Store) -> bool:
    path = store.root / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return False


def session_status(store: Store, row: dict[str, Any]) -> str:
    if row["status"] == "recording" and not _writer_alive(store):
        return "interrupted"
    return str(row["status"])


def session_summary(store: Store, session: int) -> dict[str, Any]:
    row = store.session(session)
    if row is None:
        known = ", ".join(str(s["id"]) for s in store.sessions()[-10:]) or "none yet"
        raise UnknownSessionError(
            f"There is no session {session} in the store at {store.root}. Known sessions: "
            f"{known}. `demotrace sessions` lists them all."
        )
    counts = store.counts(session)
    span = store.db.execute(
        "SELECT MIN(t_ns), MAX(t_ns), COUNT(*), "
        "COALESCE(SUM(LENGTH(name)), 0) + COALESCE(SUM(LENGTH(data)), 0) "
        "FROM events WHERE session = ?",
        (session,),
    ).fetchone()
    end = row["ended_mono_ns"] or span[1] or row["started_mono_ns"]
    apps: dict[str, int] = {}
    for ev in store.events(session, (Kind.FOCUS,)):
        app = (ev.data or {}).get("app") or "(none)"
        apps[app] = apps.get(app, 0) + 1
    frames = store.frame_bytes(session)
    frame_events = store.db.execute(
        "SELECT COUNT(*) FROM events WHERE session = ? AND kind = ? "
        "AND json_extract(data, '$.for_seq') IS NOT NULL",
        (session, int(Kind.FRAME)),
    ).fetchone()[0]
    event_bytes = span[2] * ROW_OVERHEAD + span[3]
    return {
        "id": session,
        "status": session_status(store, row),
        "started_wall_ns": row["started_wall_ns"],
        "duration_s": round((end - row["started_mono_ns"]) / 1e9, 3),
        "display": row["display"],
        "screen": [row["screen_w"], row["screen_h"]],
        "events": sum(counts.values()),
        "counts": counts,
        "apps": apps,
        "frames": {"paired": frame_events, **frames},
        "bytes": {
            "events_approx": event_bytes,
            "frames": frames["frame_bytes"],
            "total_approx": event_bytes + frames["frame_bytes"],
        },
    }

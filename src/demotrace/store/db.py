"""The local store: one SQLite database in WAL mode, versioned schema, named migrations.

Layout of ``$DEMOTRACE_HOME/store/``::

    demotrace.db      sessions, events, frames, tiles (this module)
    recorder.lock     held (flock) by the one recorder that writes

Events are a ``WITHOUT ROWID`` table keyed by ``(session, seq)``: rows stay a few dozen bytes and
are stored in capture order. Screen frames are stored as a grid of 64x64 tiles, each tile a
lossless WebP keyed by the BLAKE2b hash of its pixels, so identical tiles (and identical frames)
are stored once. A frame's manifest is either a full grid of tile hashes or a delta against a
parent frame (the tiles that differ); see :mod:`demotrace.store.frames`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from demotrace.errors import StoreBusyError, StoreError
from demotrace.model import STORE_SCHEMA_VERSION, Event, Kind

DB_NAME = "demotrace.db"
LOCK_NAME = "recorder.lock"


def _m1_initial(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            started_wall_ns INTEGER NOT NULL,
            started_mono_ns INTEGER NOT NULL,
            ended_wall_ns INTEGER,
            ended_mono_ns INTEGER,
            status TEXT NOT NULL,
            host TEXT,
            display TEXT,
            screen_w INTEGER,
            screen_h INTEGER,
            event_model INTEGER NOT NULL,
            recorder_version TEXT,
            info TEXT
        );
        CREATE TABLE events (
            session INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            t_ns INTEGER NOT NULL,
            xtime INTEGER,
            kind INTEGER NOT NULL,
            x INTEGER, y INTEGER, code INTEGER, state INTEGER, value INTEGER,
            name TEXT,
            data TEXT,
            PRIMARY KEY (session, seq)
        ) WITHOUT ROWID;
        CREATE TABLE tiles (
            hash BLOB PRIMARY KEY,
            session INTEGER NOT NULL,
            w INTEGER NOT NULL,
            h INTEGER NOT NULL,
            data BLOB NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE frames (
            hash BLOB PRIMARY KEY,
            session INTEGER NOT NULL,
            w INTEGER NOT NULL,
            h INTEGER NOT NULL,
            tile INTEGER NOT NULL,
            parent BLOB,
            depth INTEGER NOT NULL,
            grid BLOB NOT NULL,
            t_grab_ns INTEGER NOT NULL
        ) WITHOUT ROWID;
        """
    )


def _m2_consent(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE consent (
            id INTEGER PRIMARY KEY,
            t_wall_ns INTEGER NOT NULL,
            action TEXT NOT NULL,            -- accept | withdraw
            policy_version TEXT NOT NULL,    -- revision-digest: what the worker agreed to
            policy_name TEXT,
            policy_source TEXT,
            user TEXT,
            host TEXT
        );
        CREATE TABLE deletions (
            id INTEGER PRIMARY KEY,
            t_wall_ns INTEGER NOT NULL,
            what TEXT NOT NULL,              -- JSON: {"session": id} or {"since_wall_ns": t}
            reason TEXT NOT NULL,            -- forget | retention | withdraw
            events INTEGER NOT NULL,
            frames INTEGER NOT NULL,
            tiles INTEGER NOT NULL
        );
        """
    )


def _m3_sync(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        -- a deletion is also a request to the collector: sent_ns is set once it accepted it
        ALTER TABLE deletions ADD COLUMN sent_ns INTEGER;
        CREATE TABLE uploads (
            session INTEGER PRIMARY KEY,
            seq INTEGER NOT NULL,            -- the collector holds this session up to here
            t_wall_ns INTEGER NOT NULL       -- when that was last confirmed
        );
        """
    )


#: Named migrations, applied in order, each in its own transaction. Never edit one that shipped.
MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("initial", _m1_initial),
    ("consent and deletions", _m2_consent),
    ("sync outbox", _m3_sync),
]
assert len(MIGRATIONS) == STORE_SCHEMA_VERSION


def _friendly(exc: BaseException, path: Path, doing: str) -> StoreError:
    text = str(exc)
    low = text.lower()
    if "readonly" in low or "read-only" in low or isinstance(exc, PermissionError):
        hint = (
            "the folder or file is read-only; choose a writable DEMOTRACE_HOME or fix permissions"
        )
    elif "full" in low or getattr(exc, "errno", None) == errno.ENOSPC:
        hint = "the disk is full; free some space (what was already captured is kept)"
    elif "malformed" in low or "not a database" in low:
        hint = "the database file is damaged; move it aside and start a new store"
    else:
        hint = "check that the folder exists, is writable and has free space"
    return StoreError(f"Cannot {doing} the local store at {path}: {text}. Hint: {hint}.")


class Store:
    """Access to one store folder. Readers may open it any time; one :meth:`writer` at a time."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.root = Path(root)
        self.path = self.root / DB_NAME
        if not create and not self.path.exists():
            raise StoreError(
                f"There is no demotrace store at {self.root} yet. Record something first "
                "(`demotrace record` or `demotrace demo`), or point DEMOTRACE_HOME at an existing "
                "one."
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            # Deleted content is overwritten with zeros, so forgotten data leaves no bytes.
            self.db.execute("PRAGMA secure_delete=ON")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise _friendly(exc, self.root, "open") from None
        self._lock_fd: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
        self.release_writer()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"The store at {self.root} was written by a newer demotrace (schema {version}, "
                f"this one knows {len(MIGRATIONS)}). Upgrade demotrace to read it."
            )
        for index in range(version, len(MIGRATIONS)):
            _name, apply = MIGRATIONS[index]
            with self.db:
                apply(self.db)
                self.db.execute(f"PRAGMA user_version = {index + 1}")

    def acquire_writer(self) -> None:
        """Take the store's writer lock, or raise :class:`StoreBusyError`."""
        if self._lock_fd is not None:
            return
        lock_path = self.root / LOCK_NAME
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _friendly(exc, self.root, "lock") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = ""
            with contextlib.suppress(OSError):
                holder = Path(lock_path).read_text().strip()
            raise StoreBusyError(
                f"Another demotrace recorder{f' (pid {holder})' if holder else ''} is already "
                f"writing to the store at {self.root}. Stop it first (Ctrl-C in its terminal, or "
                "`kill` its pid), or record into another folder with DEMOTRACE_HOME."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def release_writer(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    # -- sessions ----------------------------------------------------------------------------
    def create_session(self, **fields: Any) -> int:
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        try:
            with self.db:
                cur = self.db.execute(
                    f"INSERT INTO sessions ({cols}) VALUES ({marks})", list(fields.values())
                )
        except sqlite3.Error as exc:
            raise _friendly(exc, self.root, "write to") from None
        assert cur.lastrowid is not None
        return cur.lastrowid

    def update_session(self, session: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.db:
            self.db.execute(f"UPDATE sessions SET {sets} WHERE id = ?", [*fields.values(), session])

    def sessions(self) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT * FROM sessions ORDER BY id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def session(self, session: int) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM sessions WHERE id = ?", (session,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    # -- events ------------------------------------------------------------------------------
    def events(self, session: int, kinds: tuple[Kind, ...] | None = None) -> Iterator[Event]:
        sql = "SELECT * FROM events WHERE session = ?"
        args: list[Any] = [session]
        if kinds:
            sql += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            args.extend(int(k) for k in kinds)
        sql += " ORDER BY seq"
        for row in self.db.execute(sql, args):
            data = json.loads(row[11]) if row[11] else None
            yield Event(row[0], row[1], row[2], row[3], Kind(row[4]), *row[5:11], data)

    def counts(self, session: int) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT kind, COUNT(*) FROM events WHERE session = ? GROUP BY kind", (session,)
        )
        return {Kind(k).name.lower(): n for k, n in rows}

    def frame_bytes(self, session: int) -> dict[str, int]:
        """Distinct frames and tiles first stored by a session, and their bytes."""
        frames, grid = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(grid)), 0) FROM frames WHERE session = ?",
            (session,),
        ).fetchone()
        tiles, tile_bytes = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM tiles WHERE session = ?",
            (session,),
        ).fetchone()
        return {"frames": frames, "tiles": tiles, "frame_bytes": grid + tile_bytes}

    def event_bytes(self, session: int) -> int:
        """Approximate bytes the session's event rows take (payload, not page overhead)."""
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(name)), 0) + COALESCE(SUM(LENGTH(data)), 0) "
            "FROM events WHERE session = ?",
            (session,),
        ).fetchone()
        return row[0] * 24 + row[1]

    # -- consent -------------------------------------------------------------------------------
    def record_consent(self, action: str, policy_version: str, **fields: Any) -> None:
        """Store a consent event (``accept`` or ``withdraw``) for one policy version."""
        import getpass
        import socket
        import time

        try:
            with self.db:
                self.db.execute(
                    "INSERT INTO consent (t_wall_ns, action, policy_version, policy_name, "
                    "policy_source, user, host) VALUES (?,?,?,?,?,?,?)",
                    (
                        time.time_ns(),
                        action,
                        policy_version,
                        fields.get("policy_name"),
                        fields.get("policy_source"),
                        getpass.getuser(),
                        socket.gethostname(),
                    ),
                )
        except sqlite3.Error as exc:
            raise _friendly(exc, self.root, "write to") from None

    def consent(self) -> dict[str, Any] | None:
        """The latest consent event, or None when the worker never answered."""
        cur = self.db.execute("SELECT * FROM consent ORDER BY id DESC LIMIT 1")
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def consent_history(self) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT * FROM consent ORDER BY id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    # -- deletion ------------------------------------------------------------------------------
    def forget(
        self,
        *,
        sessions: Iterable[int] = (),
        since_wall_ns: int | None = None,
        keep_session: int | None = None,
        reason: str = "forget",
    ) -> dict[str, int]:
        """Delete whole sessions, or everything captured at or after a wall-clock time.

        ``keep_session`` (the one being recorded) loses its events but keeps its session row, so
        the recorder can go on writing into it.

        Frames and tiles that nothing else refers to go too (frames and tiles are shared between
        sessions when identical). ``secure_delete`` zeroes the freed pages and the WAL is
        checkpointed and truncated, so the deleted bytes are gone from the files.
        """
        counts = {"events": 0, "frames": 0, "tiles": 0, "sessions": 0}
        db = self.db
        try:
            with db:
                sessions = list(sessions)
                for session in sessions:
                    counts["events"] += db.execute(
                        "DELETE FROM events WHERE session = ?", (session,)
                    ).rowcount
                    if session != keep_session:
                        counts["sessions"] += db.execute(
                            "DELETE FROM sessions WHERE id = ?", (session,)
                        ).rowcount
                if since_wall_ns is not None:
                    for sid, wall0, mono0 in db.execute(
                        "SELECT id, started_wall_ns, started_mono_ns FROM sessions"
                    ).fetchall():
                        cutoff = mono0 + (since_wall_ns - wall0)
                        counts["events"] += db.execute(
                            "DELETE FROM events WHERE session = ? AND t_ns >= ?", (sid, cutoff)
                        ).rowcount
                what = {"sessions": sessions} if sessions else {"since": since_wall_ns}
                self._sweep(counts, what, reason)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise _friendly(exc, self.root, "delete from") from None
        return counts

    def forget_span(
        self, session: int, seq_from: int, seq_to: int, reason: str = "forget"
    ) -> dict[str, int]:
        """Delete the events of one session with ``seq_from <= seq <= seq_to`` (one step's raw
        span) and the FRAME rows grabbed for them (their ``for_seq`` in the span), then, as
        :meth:`forget` does, the frames and tiles nothing refers to any more."""
        counts = {"events": 0, "frames": 0, "tiles": 0, "sessions": 0}
        db = self.db
        try:
            with db:
                counts["events"] = db.execute(
                    "DELETE FROM events WHERE session = ? AND seq >= ? AND seq <= ?",
                    (session, seq_from, seq_to),
                ).rowcount
                # the screenshot rows grabbed for those events (``for_seq``) come after them
                counts["events"] += db.execute(
                    "DELETE FROM events WHERE session = ? AND kind = ? AND "
                    "json_extract(data, '$.for_seq') BETWEEN ? AND ?",
                    (session, int(Kind.FRAME), seq_from, seq_to),
                ).rowcount
                what = {"session": session, "seq": [seq_from, seq_to]}
                self._sweep(counts, what, reason)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise _friendly(exc, self.root, "delete from") from None
        return counts

    def _sweep(self, counts: dict[str, int], what: dict[str, Any], reason: str) -> None:
        """Inside a deletion's transaction: drop the frames and tiles nothing refers to any more
        and log a ``deletions`` row (``counts`` gets the numbers of frames and tiles)."""
        import time

        from demotrace.store.frames import unpack

        db = self.db
        # Frames still referred to: by a remaining FRAME event, or as a delta's parent.
        keep: set[bytes] = set()
        for (data,) in db.execute("SELECT data FROM events WHERE kind = ?", (int(Kind.FRAME),)):
            with contextlib.suppress(ValueError, TypeError, KeyError):
                keep.add(bytes.fromhex(json.loads(data)["frame"]))
        parents = dict(db.execute("SELECT hash, parent FROM frames").fetchall())
        todo = list(keep)
        while todo:
            parent = parents.get(todo.pop())
            if parent is not None and parent not in keep:
                keep.add(parent)
                todo.append(parent)
        gone = [h for h in parents if h not in keep]
        for h in gone:
            db.execute("DELETE FROM frames WHERE hash = ?", (h,))
        counts["frames"] = len(gone)
        used: set[bytes] = set()
        for (grid,) in db.execute("SELECT grid FROM frames"):
            _kind, items = unpack(grid)
            for item in items:
                used.add(item[1] if isinstance(item, tuple) else item)
        tiles = [h for (h,) in db.execute("SELECT hash FROM tiles") if h not in used]
        for h in tiles:
            db.execute("DELETE FROM tiles WHERE hash = ?", (h,))
        counts["tiles"] = len(tiles)
        db.execute(
            "INSERT INTO deletions (t_wall_ns, what, reason, events, frames, tiles) "
            "VALUES (?,?,?,?,?,?)",
            (
                time.time_ns(),
                json.dumps(what),
                reason,
                counts["events"],
                counts["frames"],
                counts["tiles"],
            ),
        )

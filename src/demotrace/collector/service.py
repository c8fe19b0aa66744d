"""What the collector does, independent of HTTP: credentials, uploads into the lake, deletion,
retention, policies. :mod:`demotrace.collector.api` maps routes onto these methods.

Every upload is idempotent. A segment is identified by its session and seq range; stored again
with the same bytes it changes nothing, and an overlapping or different one is refused (409). A
blob is identified by its content hash (tiles) or its frame id under its device (frames). The lake
file is written before the database row that makes it count, and a file is only ever replaced by
one with the same name and content, so a crash at any point leaves either nothing or the whole
upload, and the client's retry completes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import io
import json
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from demotrace.collector import db as T
from demotrace.collector.blobs import BlobStore, open_blobs
from demotrace.collector.wire import events_parquet
from demotrace.dataset.schema import EVENT_SCHEMA
from demotrace.lake import content_hash, frame_key, session_date, tile_key, unpack_manifest
from demotrace.model import Kind

_HEX32 = re.compile(r"[0-9a-f]{32}")
_DEVICE = re.compile(r"d-[0-9a-f]{12}")
_FRAME_REF = r'"frame":\s*"(?P<frame>[0-9a-f]{32})"'
MiB = 1024 * 1024
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


class Problem(Exception):
    """A request the collector refuses: an HTTP status and a one-paragraph message."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


@dataclasses.dataclass
class Config:
    """How one collector runs. Workers get it through the environment (:meth:`to_env`)."""

    db_url: str
    blobs_url: str
    max_segment_bytes: int = 64 * MiB
    max_blob_batch_bytes: int = 32 * MiB
    max_rows: int = 2_000_000
    max_blobs: int = 20_000
    rate_per_s: float = 200.0
    rate_burst: int = 1000
    retention_days: int | None = None
    enroll_ttl_s: int = 7 * 24 * 3600
    k_anonymity: int = 5  # coverage and consent counts: no group from fewer devices is shown
    work_dir: str | None = None  # build scratch space and unpacked datasets (a cache)

    @classmethod
    def in_folder(cls, folder: Path, **kw: Any) -> Config:
        """The embedded default: a SQLite file and a lake folder under ``folder``."""
        folder = Path(folder).resolve()
        kw.setdefault("work_dir", str(folder / "work"))
        return cls(f"sqlite:///{folder / 'collector.db'}", str(folder / "lake"), **kw)

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls, text: str) -> Config:
        return cls(**json.loads(text))


def now_ns() -> int:
    return time.time_ns()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _split_token(token: str | None, prefix_ok: re.Pattern[str]) -> tuple[str, str] | None:
    if not token or "." not in token or len(token) > 200:
        return None
    who, _, secret = token.partition(".")
    if not prefix_ok.fullmatch(who) or len(secret) < 20:
        return None
    return who, secret


class Service:
    """The collector over one database and one blob store (stateless between requests)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.engine = T.open_db(config.db_url)
        self.blobs: BlobStore = open_blobs(config.blobs_url)
        self._sweep_lock = threading.Lock()
        # SQLite: one writer at a time anyway; queueing writers on a lock in this process beats
        # letting them poll SQLite's busy handler, and readers use their own engine that never
        # takes the write lock (WAL lets them read while a write is under way).
        self._sqlite = self.engine.dialect.name == "sqlite"
        self._write_lock = threading.Lock()
        self._reader = T.make_engine(config.db_url, readonly=True) if self._sqlite else self.engine

    def warm_up(self) -> None:
        """The first Parquet read of a process imports more of pyarrow: a server does it at
        start, not in its first request (admin commands never need it)."""
        _read_events(events_parquet(EVENT_SCHEMA.empty_table()), None, None)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction (serialised per process on SQLite)."""
        if not self._sqlite:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._reader.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()
        self._reader.dispose()

    # -- credentials -----------------------------------------------------------------------
    def ensure_admin(self) -> str | None:
        """Create the admin credential on first start; returns it then (shown once), else None."""
        with self._write() as conn:
            if conn.execute(sa.select(sa.func.count()).select_from(T.admins)).scalar():
                return None
            return self._new_admin(conn)

    def rotate_admin(self) -> str:
        """Replace the admin credential (the old one stops working) and return the new one."""
        with self._write() as conn:
            conn.execute(T.admins.delete())
            return self._new_admin(conn)

    def _new_admin(self, conn: sa.Connection) -> str:
        secret = secrets.token_urlsafe(32)
        conn.execute(T.admins.insert().values(token_hash=_sha(secret), created_ns=now_ns()))
        return f"admin.{secret}"

    def check_admin(self, token: str | None) -> None:
        parts = _split_token(token, re.compile("admin"))
        with self._read() as conn:
            stored = [r[0] for r in conn.execute(sa.select(T.admins.c.token_hash))]
        given = _sha(parts[1]) if parts else "-" * 64
        ok = any(hmac.compare_digest(given, s) for s in stored)  # all compared, in constant time
        if not ok:
            if parts is None and _split_token(token, _DEVICE):
                raise Problem(
                    403,
                    "This route is for the collector's admin; a device credential cannot use it.",
                )
            raise Problem(
                401,
                "This route needs the collector's admin credential (Authorization: "
                "Bearer admin.…); the one given is missing or wrong.",
            )

    def new_enroll_code(self, ttl_s: int | None = None, note: str | None = None) -> dict[str, Any]:
        """A one-time code for ``demotrace enroll``, valid for ``ttl_s`` seconds."""
        # 100 bits in groups a person can read out; never starting with "-" (a command-line flag)
        raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(20))
        code = "-".join(raw[i : i + 5] for i in range(0, 20, 5))
        created = now_ns()
        expires = created + int((ttl_s or self.config.enroll_ttl_s) * 1e9)
        with self._write() as conn:
            conn.execute(
                T.enroll_codes.insert().values(
                    code_hash=_sha(code), created_ns=created, expires_ns=expires, note=note
                )
            )
        return {"code": code, "expires_ns": expires}

    def enroll(
        self, code: str, label: str | None = None, key_hash: str | None = None
    ) -> dict[str, Any]:
        """Spend an enrolment code: a new device id. With ``key_hash`` (the SHA-256 of a secret
        the device chose and keeps), the credential is ``<device>.<secret>`` and the server never
        sees it; a retry with the same code and key gets the same device (its first answer may
        have been lost). Without it, the server makes the secret and returns the credential."""
        now = now_ns()
        with self._write() as conn:
            row = conn.execute(
                sa.select(T.enroll_codes).where(
                    T.enroll_codes.c.code_hash == _sha((code or "").strip().upper())
                )
            ).fetchone()
            retry = row is not None and row.used_ns is not None and row.key_hash is not None
            if retry and key_hash is not None and hmac.compare_digest(row.key_hash, key_hash):
                return {"device": row.device, "token": None, "again": True}
            if row is None or row.used_ns is not None or row.expires_ns < now:
                why = (
                    "was already used"
                    if row is not None and row.used_ns
                    else ("has expired" if row is not None else "is not one this collector issued")
                )
                raise Problem(
                    403,
                    f"This enrolment code {why}. Ask the collector's admin for a new one "
                    "(`demotrace admin enroll-code`).",
                )
            device = f"d-{secrets.token_hex(6)}"
            secret = None if key_hash else secrets.token_urlsafe(32)
            done = conn.execute(
                T.enroll_codes.update()
                .where(T.enroll_codes.c.code_hash == row.code_hash)
                .where(T.enroll_codes.c.used_ns.is_(None))
                .values(used_ns=now, device=device, key_hash=key_hash)
            )
            if done.rowcount != 1:  # spent by a request racing this one
                raise Problem(403, "This enrolment code was already used. Ask for a new one.")
            conn.execute(
                T.devices.insert().values(
                    id=device,
                    token_hash=key_hash or _sha(secret or ""),
                    label=label,
                    created_ns=now,
                )
            )
        return {"device": device, "token": f"{device}.{secret}" if secret else None}

    def device_for(self, token: str | None) -> str:
        """The device a credential belongs to; 401 for an unknown one, 403 if revoked."""
        parts = _split_token(token, _DEVICE)
        if parts is None:
            raise Problem(
                401,
                "This route needs a device credential (Authorization: Bearer d-….…). "
                "Enroll this machine with `demotrace enroll URL CODE`.",
            )
        device, secret = parts
        with self._read() as conn:
            row = conn.execute(
                sa.select(T.devices.c.token_hash, T.devices.c.revoked_ns).where(
                    T.devices.c.id == device
                )
            ).fetchone()
        stored = row.token_hash if row is not None else "0" * 64
        if not hmac.compare_digest(_sha(secret), stored) or row is None:
            raise Problem(
                401,
                "This device credential is not valid here. Enroll again with a "
                "new code from the collector's admin.",
            )
        if row.revoked_ns is not None:
            raise Problem(
                403,
                "This device was revoked by the collector's admin; it can no longer "
                "upload. Ask the admin if that is a mistake.",
            )
        return device

    def revoke(self, device: str) -> bool:
        with self._write() as conn:
            done = conn.execute(
                T.devices.update()
                .where(T.devices.c.id == device)
                .where(T.devices.c.revoked_ns.is_(None))
                .values(revoked_ns=now_ns())
            )
        return done.rowcount == 1

    def list_devices(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(
                    T.devices.c.id,
                    T.devices.c.label,
                    T.devices.c.created_ns,
                    T.devices.c.revoked_ns,
                ).order_by(T.devices.c.created_ns)
            ).fetchall()
        return [dict(r._mapping) for r in rows]

    # -- sessions ---------------------------------------------------------------------------
    def put_session(self, device: str, session: int, meta: dict[str, Any]) -> dict[str, Any]:
        """Create or update a session's description (idempotent). Its start cannot change."""
        if _depth(meta) > 12:
            raise Problem(422, "The session's description nests too deep (more than 12 levels).")
        try:
            text = json.dumps(meta, allow_nan=False)
        except ValueError:
            raise Problem(
                422, "The session's description holds NaN or infinity; JSON has neither."
            ) from None
        started = int(meta["started_wall_ns"])
        date = session_date(started)
        full = {"device": device, "session": session, "date": date, **meta}
        now = now_ns()
        with self._write() as conn:
            old = self._session_row(conn, device, session)
            if old is not None and (
                old.started_wall_ns != started or old.started_mono_ns != meta["started_mono_ns"]
            ):
                raise Problem(
                    409,
                    f"Session {session} is stored with another start time; a "
                    "session's clocks cannot change. Is this the same store?",
                )
            if old is not None and self._tombstoned_session(conn, device, session):
                return {"status": "deleted", "session": session}
            self.blobs.put(f"sessions/{device}/{session}.json", json.dumps(full, indent=1).encode())
            values = {"meta": text, "updated_ns": now}
            if old is None:
                if self._tombstoned_session(conn, device, session):
                    return {"status": "deleted", "session": session}
                T.insert_ignore(
                    conn,
                    T.sessions,
                    [
                        {
                            "device": device,
                            "session": session,
                            "date": date,
                            "started_wall_ns": started,
                            "started_mono_ns": int(meta["started_mono_ns"]),
                            **values,
                        }
                    ],
                )
            else:
                conn.execute(
                    T.sessions.update()
                    .where(T.sessions.c.device == device, T.sessions.c.session == session)
                    .values(**values)
                )
        return {"status": "stored", "session": session, "date": date}

    def _session_row(self, conn: sa.Connection, device: str, session: int) -> Any:
        return conn.execute(
            sa.select(T.sessions).where(
                T.sessions.c.device == device, T.sessions.c.session == session
            )
        ).fetchone()

    def _tombstoned_session(self, conn: sa.Connection, device: str, session: int) -> bool:
        return bool(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(T.tombstones)
                .where(
                    T.tombstones.c.device == device,
                    T.tombstones.c.session == session,
                    T.tombstones.c.seq_from.is_(None),
                    T.tombstones.c.since_wall_ns.is_(None),
                )
            ).scalar()
        )

    def list_sessions(self, device: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(
                    T.sessions.c.session,
                    T.sessions.c.date,
                    T.sessions.c.started_wall_ns,
                    sa.func.count(T.segments.c.first_seq).label("segments"),
                    sa.func.coalesce(sa.func.sum(T.segments.c.rows), 0).label("events"),
                    sa.func.max(T.segments.c.last_seq).label("last_seq"),
                )
                .select_from(
                    T.sessions.outerjoin(
                        T.segments,
                        sa.and_(
                            T.segments.c.device == T.sessions.c.device,
                            T.segments.c.session == T.sessions.c.session,
                        ),
                    )
                )
                .where(T.sessions.c.device == device)
                .group_by(T.sessions.c.session, T.sessions.c.date, T.sessions.c.started_wall_ns)
                .order_by(T.sessions.c.session)
            ).fetchall()
        return [dict(r._mapping) for r in rows]

    def get_session(self, device: str, session: int) -> dict[str, Any]:
        with self._read() as conn:
            row = self._session_row(conn, device, session)
            if row is None:
                raise Problem(404, f"This device has no session {session} on the collector.")
            segs = conn.execute(
                sa.select(
                    T.segments.c.first_seq,
                    T.segments.c.last_seq,
                    T.segments.c.rows,
                    T.segments.c.digest,
                )
                .where(T.segments.c.device == device, T.segments.c.session == session)
                .order_by(T.segments.c.first_seq)
            ).fetchall()
        return {
            "session": session,
            "date": row.date,
            "meta": json.loads(row.meta),
            "segments": [dict(s._mapping) for s in segs],
        }

    # -- blobs ------------------------------------------------------------------------------
    def missing_blobs(
        self,
        device: str,
        tiles: list[str],
        frames: list[str],
        conn: sa.Connection | None = None,
    ) -> dict[str, list[str]]:
        """Which of these this device has not uploaded yet. Answers only about the device's own
        uploads, so nobody learns what other devices' screens showed."""
        for h in (*tiles, *frames):
            if not _HEX32.fullmatch(h):
                raise Problem(422, f"{h!r} is not a blob hash (32 lower-case hex digits).")
        if conn is None:
            with self._read() as own:
                return self.missing_blobs(device, tiles, frames, own)
        have_t: set[str] = set()
        have_f: set[str] = set()
        for part in _chunks(sorted(set(tiles)), 500):
            have_t.update(
                r[0]
                for r in conn.execute(
                    sa.select(T.tile_owners.c.hash).where(
                        T.tile_owners.c.device == device, T.tile_owners.c.hash.in_(part)
                    )
                )
            )
        for part in _chunks(sorted(set(frames)), 500):
            have_f.update(
                r[0]
                for r in conn.execute(
                    sa.select(T.frames.c.frame).where(
                        T.frames.c.device == device, T.frames.c.frame.in_(part)
                    )
                )
            )
        return {
            "tiles": sorted(set(tiles) - have_t),
            "frames": sorted(set(frames) - have_f),
        }

    def put_blobs(self, device: str, body: bytes) -> dict[str, int]:
        """Store a batch of blobs: an Arrow IPC stream with columns ``kind`` ("tile" or
        "frame"), ``key`` (hex) and ``data`` (bytes). Tiles are checked against their hash and
        must be WebP; frames must be manifests whose tiles this device has uploaded."""
        try:
            table = pa.ipc.open_stream(body).read_all()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise Problem(422, f"The blob batch is not an Arrow IPC stream: {exc}.") from None
        if sorted(table.column_names) != ["data", "key", "kind"]:
            raise Problem(
                422,
                "The blob batch needs exactly the columns kind, key and data; it "
                f"has {', '.join(table.column_names) or 'none'}.",
            )
        if table.num_rows > self.config.max_blobs:
            raise Problem(
                413,
                f"A batch holds at most {self.config.max_blobs} blobs; this one "
                f"has {table.num_rows}. Send smaller batches.",
            )
        try:
            kinds = table.column("kind").cast(pa.string()).to_pylist()
            keys = table.column("key").cast(pa.string()).to_pylist()
            datas = table.column("data").cast(pa.binary()).to_pylist()
        except pa.ArrowException as exc:
            raise Problem(422, f"The blob batch's columns have the wrong types: {exc}.") from None
        tiles: dict[str, bytes] = {}
        manifests: dict[str, tuple[bytes, list[str]]] = {}
        for kind, key, data in zip(kinds, keys, datas, strict=True):
            if not isinstance(key, str) or not _HEX32.fullmatch(key) or data is None:
                raise Problem(
                    422, f"Blob key {key!r} is not 32 lower-case hex digits, or it has no data."
                )
            if kind == "tile":
                _check_tile(key, data)
                tiles[key] = data
            elif kind == "frame":
                manifests[key] = (data, _check_manifest(key, data))
            else:
                raise Problem(422, f"Blob kind {kind!r} is neither 'tile' nor 'frame'.")
        needed = sorted({t for _data, ts in manifests.values() for t in ts} - set(tiles))
        if needed:  # checked before anything is stored
            missing = self.missing_blobs(device, needed, [])["tiles"]
            if missing:
                raise Problem(
                    409,
                    f"{len(missing)} tile(s) these frames use are not uploaded "
                    "by this device yet; send them first.",
                    missing_tiles=missing[:100],
                )
        now = now_ns()
        with self._read() as conn:
            present: set[str] = set()  # on the collector, from any device
            mine: set[str] = set()  # uploaded by this device before
            for part in _chunks(sorted(tiles), 500):
                present.update(
                    r[0]
                    for r in conn.execute(sa.select(T.tiles.c.hash).where(T.tiles.c.hash.in_(part)))
                )
                mine.update(
                    r[0]
                    for r in conn.execute(
                        sa.select(T.tile_owners.c.hash).where(
                            T.tile_owners.c.device == device, T.tile_owners.c.hash.in_(part)
                        )
                    )
                )
            have: set[str] = set()
            for part in _chunks(sorted(manifests), 500):
                have.update(
                    r[0]
                    for r in conn.execute(
                        sa.select(T.frames.c.frame).where(
                            T.frames.c.device == device, T.frames.c.frame.in_(part)
                        )
                    )
                )
        for key in sorted(tiles):
            if key not in present:
                self.blobs.put(tile_key(key), tiles[key])  # before the row that makes it count
        for key in sorted(manifests):
            if key not in have:
                self.blobs.put(frame_key(device, key), manifests[key][0])
        with self._write() as conn:
            self._lock(conn, "tiles", shared=True)  # no tile sweep meanwhile
            still: set[str] = set()
            for part in _chunks(sorted(set(tiles) & present), 500):
                still.update(
                    r[0]
                    for r in conn.execute(sa.select(T.tiles.c.hash).where(T.tiles.c.hash.in_(part)))
                )
            for key in sorted((set(tiles) & present) - still):  # swept since: write it again
                self.blobs.put(tile_key(key), tiles[key])
            T.insert_ignore(
                conn,
                T.tiles,
                [{"hash": k, "bytes": len(tiles[k]), "created_ns": now} for k in sorted(tiles)],
            )
            T.insert_ignore(conn, T.tile_owners, [{"device": device, "hash": k} for k in tiles])
            if needed:  # a sweep may have taken a tile since the check above
                gone = self.missing_blobs(device, needed, [], conn=conn)["tiles"]
                if gone:
                    raise Problem(
                        409,
                        f"{len(gone)} tile(s) these frames use were just removed; send them again.",
                        missing_tiles=gone[:100],
                    )
            T.insert_ignore(
                conn,
                T.frames,
                [
                    {"device": device, "frame": k, "bytes": len(manifests[k][0]), "created_ns": now}
                    for k in sorted(manifests)
                    if k not in have
                ],
            )
        # Counted against this device's own uploads only: whether another device has shown the
        # same pixels is nobody's business.
        return {
            "tiles": len(set(tiles) - mine),
            "frames": len(set(manifests) - have),
            "existing": len(set(tiles) & mine) + len(set(manifests) & have),
        }

    # -- segments ---------------------------------------------------------------------------
    def put_segment(
        self, device: str, session: int, first: int, last: int, body: bytes, digest: str
    ) -> dict[str, Any]:
        """Store the events of one seq range ``first..last`` of a session (Parquet, the lake's
        event columns). Idempotent; see the module's description."""
        if first < 0 or last < first:
            raise Problem(422, f"The range {first}-{last} is not a range of seq numbers.")
        sha = hashlib.sha256(body).hexdigest()
        if sha != digest:
            raise Problem(
                422,
                f"The segment's SHA-256 is {sha}, but the request says {digest}: "
                "it was damaged on the way. Send it again.",
            )
        table = _read_events(body, self.config.max_rows, self.config.max_segment_bytes * 4)
        seq = table.column("seq").to_numpy()
        if len(seq) and (seq[0] < first or seq[-1] > last or np.any(np.diff(seq) <= 0)):
            raise Problem(
                422, f"The segment's seq numbers must rise strictly and lie within {first}-{last}."
            )
        frames = _frame_refs(table)
        # Checking, writing and recording a segment is one step per session: a deletion or an
        # overlapping upload of the same session waits for it.
        with self._write() as conn:
            self._lock(conn, "session", device, session)
            srow = self._session_row(conn, device, session)
            if srow is None:
                raise Problem(
                    409,
                    f"Session {session} is not on the collector; PUT its description "
                    f"(/v1/sessions/{session}) first.",
                )
            missing = self.missing_blobs(device, [], sorted(frames), conn)["frames"]
            if missing:
                raise Problem(
                    409,
                    f"{len(missing)} frame(s) these events show are not uploaded "
                    "yet; send them first.",
                    missing_frames=missing[:100],
                )
            clash = conn.execute(
                sa.select(T.segments.c.first_seq, T.segments.c.last_seq, T.segments.c.digest).where(
                    T.segments.c.device == device,
                    T.segments.c.session == session,
                    T.segments.c.first_seq <= last,
                    T.segments.c.last_seq >= first,
                )
            ).fetchall()
            for c in clash:
                if (c.first_seq, c.last_seq) == (first, last):  # a retry: it is there already
                    return {
                        "status": "exists",
                        "first": first,
                        "last": last,
                        "identical": c.digest == sha,
                    }
            if clash:
                ranges = ", ".join(f"{c.first_seq}-{c.last_seq}" for c in clash)
                raise Problem(
                    409,
                    f"Events {first}-{last} of session {session} overlap what is "
                    f"stored ({ranges}). Ask GET /v1/sessions/{session} what is there and "
                    "send the rest.",
                    stored=[[c.first_seq, c.last_seq] for c in clash],
                )
            keep = _not_tombstoned(table, srow, self._tombstones(conn, device, session))
            dropped = 0
            if keep is not None:  # deleted meanwhile: those rows stay deleted
                dropped = int((~keep).sum())
                table = _read_events(body, None, None, tuple(EVENT_SCHEMA.names))
                table = table.filter(pa.array(keep))
                frames = _frame_refs(table)
                body = _write_events(table)
                sha = hashlib.sha256(body).hexdigest()
            key = (
                f"events/date={srow.date}/device={device}/session={session}/"
                f"seg-{first:012d}-{sha[:12]}.parquet"
            )
            self.blobs.put(key, body)  # the file first, then the row that makes it count
            conn.execute(
                T.segments.insert().values(
                    device=device,
                    session=session,
                    first_seq=first,
                    last_seq=last,
                    rows=table.num_rows,
                    bytes=len(body),
                    digest=sha,
                    key=key,
                    created_ns=now_ns(),
                )
            )
            T.insert_ignore(
                conn,
                T.segment_frames,
                [
                    {"device": device, "session": session, "first_seq": first, "frame": f}
                    for f in sorted(frames)
                ],
            )
        return {
            "status": "stored",
            "first": first,
            "last": last,
            "rows": table.num_rows,
            "dropped": dropped,
        }

    def _lock(self, conn: sa.Connection, *what: object, shared: bool = False) -> None:
        """Hold a lock on ``what`` until ``conn``'s transaction ends. PostgreSQL: an advisory
        lock. SQLite: every transaction begins IMMEDIATE, so writers are serialised already."""
        if conn.dialect.name != "postgresql":
            return
        name = "/".join(str(w) for w in what).encode()
        key = int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)
        fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        conn.execute(sa.text(f"SELECT {fn}(:k)"), {"k": key})

    def _tombstones(self, conn: sa.Connection, device: str, session: int) -> list[Any]:
        return conn.execute(
            sa.select(T.tombstones).where(
                T.tombstones.c.device == device,
                sa.or_(T.tombstones.c.session.is_(None), T.tombstones.c.session == session),
            )
        ).fetchall()

    # -- deletion ---------------------------------------------------------------------------
    def delete(
        self, device: str, request_id: str, what: dict[str, Any], reason: str = "forget"
    ) -> dict[str, Any]:
        """Delete a device's events (a session, a seq span of one, or a wall-clock span), the
        frames only they showed and the tiles only those frames used; keep a tombstone so a late
        retry cannot bring them back. Idempotent per ``request_id``."""
        with self._read() as conn:
            done = conn.execute(
                sa.select(T.deletions.c.result).where(
                    T.deletions.c.device == device, T.deletions.c.request_id == request_id
                )
            ).fetchone()
        if done is not None:
            return {**json.loads(done[0]), "status": "done before"}
        stone = _tombstone(device, what, reason)
        with self._write() as conn:
            conn.execute(T.tombstones.insert().values(**stone))  # first: uploads now filter
            if stone["session"] is not None:
                sids = [stone["session"]]
            else:
                sids = [
                    r[0]
                    for r in conn.execute(
                        sa.select(T.sessions.c.session).where(T.sessions.c.device == device)
                    )
                ]
        from demotrace.collector.builds import withdraw

        withdrawn = withdraw(self, device, stone["session"])  # builds that hold any of it
        counts = {"events": 0, "segments": 0, "frames": 0, "tiles": 0, "sessions": 0}
        gone_frames: set[str] = set()
        whole = stone["session"] is not None and stone["seq_from"] is None
        for sid in sids:
            with self._write() as conn:
                self._lock(conn, "session", device, sid)  # no upload of it runs meanwhile
                srow = self._session_row(conn, device, sid)
                if srow is None:
                    continue
                segs = conn.execute(
                    sa.select(T.segments).where(
                        T.segments.c.device == device, T.segments.c.session == sid
                    )
                ).fetchall()
                for seg in segs:
                    self._delete_in_segment(conn, srow, seg, _Stone(**stone), counts, gone_frames)
                keys = set(
                    r[0]
                    for r in conn.execute(
                        sa.select(T.segments.c.key).where(
                            T.segments.c.device == device, T.segments.c.session == sid
                        )
                    )
                )
                # files no row counts (a crash between a file and its row) go too
                folder = f"events/date={srow.date}/device={device}/session={sid}/"
                for key in list(self.blobs.list(folder)):
                    if key not in keys:
                        self.blobs.delete(key)
                if whole:
                    counts["sessions"] += conn.execute(
                        T.sessions.delete().where(
                            T.sessions.c.device == device, T.sessions.c.session == sid
                        )
                    ).rowcount
                    self.blobs.delete(f"sessions/{device}/{sid}.json")
        self._drop_frames(device, gone_frames, counts)
        result = {"status": "deleted", **counts, "builds_withdrawn": len(withdrawn)}
        with self._write() as conn:
            T.insert_ignore(
                conn,
                T.deletions,
                [
                    {
                        "device": device,
                        "request_id": request_id,
                        "what": json.dumps(what),
                        "result": json.dumps(result),
                        "created_ns": now_ns(),
                    }
                ],
            )
        return result

    def _delete_in_segment(
        self,
        conn: sa.Connection,
        srow: Any,
        seg: Any,
        stone: _Stone,
        counts: dict[str, int],
        gone_frames: set[str],
    ) -> None:
        try:
            table = _read_events(self.blobs.get(seg.key), None, None, tuple(EVENT_SCHEMA.names))
        except KeyError:
            table = EVENT_SCHEMA.empty_table()
        keep = _not_tombstoned(table, srow, [stone])
        if keep is None:
            return
        old_frames = _frame_refs(table)
        table = table.filter(pa.array(keep))
        removed = int((~keep).sum())
        new_frames = _frame_refs(table)
        where = (
            T.segments.c.device == seg.device,
            T.segments.c.session == seg.session,
            T.segments.c.first_seq == seg.first_seq,
        )
        fwhere = (
            T.segment_frames.c.device == seg.device,
            T.segment_frames.c.session == seg.session,
            T.segment_frames.c.first_seq == seg.first_seq,
        )
        key = seg.key
        if table.num_rows == 0:
            conn.execute(T.segments.delete().where(*where))
            conn.execute(T.segment_frames.delete().where(*fwhere))
            counts["segments"] += 1
        else:
            body = _write_events(table)
            sha = hashlib.sha256(body).hexdigest()
            key = seg.key.rsplit("-", 1)[0] + f"-{sha[:12]}.parquet"
            self.blobs.put(key, body)
            conn.execute(
                T.segments.update()
                .where(*where)
                .values(rows=table.num_rows, bytes=len(body), digest=sha, key=key)
            )
            for part in _chunks(sorted(old_frames - new_frames), 500):
                conn.execute(
                    T.segment_frames.delete().where(*fwhere, T.segment_frames.c.frame.in_(part))
                )
        if table.num_rows == 0 or key != seg.key:
            self.blobs.delete(seg.key)
        counts["events"] += removed
        gone_frames.update(old_frames - new_frames)

    def _drop_frames(self, device: str, candidates: set[str], counts: dict[str, int]) -> None:
        """Delete the frames no segment of the device shows any more, then the tiles that no
        remaining frame uses."""
        if not candidates:
            return
        with self._read() as conn:
            still = set()
            for part in _chunks(sorted(candidates), 500):
                still.update(
                    r[0]
                    for r in conn.execute(
                        sa.select(T.segment_frames.c.frame).where(
                            T.segment_frames.c.device == device, T.segment_frames.c.frame.in_(part)
                        )
                    )
                )
        drop = sorted(candidates - still)
        tile_candidates: set[str] = set()
        for fid in drop:
            try:
                _w, _h, _t, keys = unpack_manifest(self.blobs.get(frame_key(device, fid)))
                tile_candidates.update(k.hex() for k in keys)
            except (KeyError, ValueError):
                pass
        with self._write() as conn:
            for part in _chunks(drop, 500):
                conn.execute(
                    T.frames.delete().where(T.frames.c.device == device, T.frames.c.frame.in_(part))
                )
        for fid in drop:
            self.blobs.delete(frame_key(device, fid))
        counts["frames"] += len(drop)
        counts["tiles"] += self.sweep_tiles(tile_candidates)

    def sweep_tiles(self, candidates: Iterable[str] | None = None, grace_s: float = 3600) -> int:
        """Delete tiles that no frame manifest uses: ``candidates`` (the tiles of frames just
        deleted), or every tile older than ``grace_s`` (a tile uploaded just now may be waiting
        for its frame). A mark over every manifest, then a sweep, under a lock that frame uploads
        share. Returns how many were deleted."""
        with self._sweep_lock, self._write() as conn:
            self._lock(conn, "tiles")
            if candidates is None:
                old = now_ns() - int(grace_s * 1e9)
                candidates = [
                    r[0]
                    for r in conn.execute(
                        sa.select(T.tiles.c.hash).where(T.tiles.c.created_ns < old)
                    )
                ]
            todo = set(candidates)
            if not todo:
                return 0
            frames = conn.execute(sa.select(T.frames.c.device, T.frames.c.frame)).fetchall()
            for device, fid in frames:
                try:
                    _w, _h, _t, keys = unpack_manifest(self.blobs.get(frame_key(device, fid)))
                except (KeyError, ValueError):
                    continue
                todo.difference_update(k.hex() for k in keys)
                if not todo:
                    return 0
            gone = sorted(todo)
            for part in _chunks(gone, 500):
                conn.execute(T.tile_owners.delete().where(T.tile_owners.c.hash.in_(part)))
                conn.execute(T.tiles.delete().where(T.tiles.c.hash.in_(part)))
            for key in gone:  # inside the lock: an upload never sees a row without its file
                self.blobs.delete(tile_key(key))
            return len(gone)

    def purge(self, now: int | None = None) -> list[dict[str, Any]]:
        """Server-side retention: delete sessions that started more than ``retention_days`` ago."""
        days = self.config.retention_days
        if not days:
            return []
        cutoff = (now or now_ns()) - int(days * 86400 * 1e9)
        with self._read() as conn:
            old = conn.execute(
                sa.select(T.sessions.c.device, T.sessions.c.session).where(
                    T.sessions.c.started_wall_ns < cutoff
                )
            ).fetchall()
        out = []
        for device, session in old:
            result = self.delete(
                device, f"retention-{session}", {"session": session}, reason="retention"
            )
            out.append({"device": device, "session": session, **result})
        return out

    # -- policies ---------------------------------------------------------------------------
    def put_policy(self, text: str) -> dict[str, Any]:
        """Publish a policy version (validated as ``demotrace record`` would); it becomes the one
        devices fetch."""
        from demotrace.errors import PolicyError
        from demotrace.privacy.policy import parse_policy

        try:
            policy = parse_policy(text, "the uploaded policy")
        except PolicyError as exc:
            raise Problem(422, str(exc)) from None
        with self._write() as conn:
            conn.execute(T.policies.delete().where(T.policies.c.version == policy.version))
            conn.execute(
                T.policies.insert().values(
                    version=policy.version, name=policy.name, text=text, created_ns=now_ns()
                )
            )
        return {"version": policy.version, "name": policy.name}

    def current_policy(self) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(T.policies).order_by(T.policies.c.id.desc()).limit(1)
            ).fetchone()
        if row is None:
            return None
        return {"version": row.version, "name": row.name, "text": row.text}

    # -- consent ----------------------------------------------------------------------------
    def report_consent(self, device: str, answers: list[dict[str, Any]]) -> dict[str, int]:
        """A device's consent answers: its latest state (``accepted`` or ``withdrawn``) per
        policy version, with when it was given. An older answer never replaces a newer one."""
        latest: dict[str, dict[str, Any]] = {}
        for a in answers:
            v = str(a["version"])
            if v not in latest or int(a["at_ns"]) >= latest[v]["at_ns"]:
                latest[v] = {"state": a["state"], "at_ns": int(a["at_ns"])}
        changed = 0
        c = T.consents.c

        def known(conn: sa.Connection) -> dict[str, int]:
            query = sa.select(c.version, c.at_ns).where(
                c.device == device, c.version.in_(sorted(latest))
            )
            return {r.version: r.at_ns for r in conn.execute(query)}

        # every sync reports: most find nothing new, and then no write transaction is taken
        with self._read() as conn:
            have = known(conn)
        if all(v in have and have[v] >= a["at_ns"] for v, a in latest.items()):
            return {"versions": len(latest), "changed": 0}
        with self._write() as conn:
            self._lock(conn, "consent", device)
            have = known(conn)
            for version, a in sorted(latest.items()):
                if version in have and have[version] >= a["at_ns"]:
                    continue
                where = sa.and_(c.device == device, c.version == version)
                conn.execute(T.consents.delete().where(where))
                conn.execute(T.consents.insert().values(device=device, version=version, **a))
                changed += 1
        return {"versions": len(latest), "changed": changed}

    def consent_summary(self) -> list[dict[str, Any]]:
        """Per published policy version (newest first): how many active devices accepted it,
        withdrew, or never answered. Counts only, and a count from fewer than ``k_anonymity``
        devices is shown as such, not as a number."""
        k = self.config.k_anonymity
        c = T.consents.c
        active = T.devices.c.revoked_ns.is_(None)
        with self._read() as conn:
            n_active = int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(T.devices).where(active)
                ).scalar()
            )
            counts: dict[tuple[str, str], int] = {
                (r.version, r.state): int(r.n)
                for r in conn.execute(
                    sa.select(c.version, c.state, sa.func.count().label("n"))
                    .select_from(T.consents.join(T.devices, T.devices.c.id == c.device))
                    .where(active)
                    .group_by(c.version, c.state)
                )
            }
            policies = conn.execute(
                sa.select(
                    T.policies.c.version, T.policies.c.name, T.policies.c.created_ns
                ).order_by(T.policies.c.id.desc())
            ).fetchall()

        def cells(*ns: int) -> list[int | str]:
            # A small count is hidden; then the others are rounded too, or the number of devices
            # (which the devices page shows) minus them would give it back.
            small = any(0 < n < k for n in ns)
            return [
                n
                if n == 0 or (n >= k and not small)
                else (f"fewer than {k}" if n < k else f"{k} or more")
                for n in ns
            ]

        out = []
        for i, p in enumerate(policies):
            accepted = counts.get((p.version, "accepted"), 0)
            withdrawn = counts.get((p.version, "withdrawn"), 0)
            a, w, na = cells(accepted, withdrawn, max(0, n_active - accepted - withdrawn))
            out.append(
                {
                    "version": p.version,
                    "name": p.name,
                    "published_ns": p.created_ns,
                    "current": i == 0,
                    "accepted": a,
                    "withdrawn": w,
                    "not_answered": na,
                }
            )
        return out

    # -- numbers ----------------------------------------------------------------------------
    def totals(self) -> dict[str, int]:
        """Aggregate counts (no per-device breakdown)."""
        with self._read() as conn:

            def count(table: sa.Table) -> int:
                return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar())

            events = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(T.segments.c.rows), 0)))
            return {
                "devices": count(T.devices),
                "sessions": count(T.sessions),
                "segments": count(T.segments),
                "events": int(events.scalar()),
                "frames": count(T.frames),
                "tiles": count(T.tiles),
            }


# -- helpers ----------------------------------------------------------------------------------
@dataclasses.dataclass
class _Stone:
    device: str
    session: int | None
    seq_from: int | None
    seq_to: int | None
    since_wall_ns: int | None
    until_wall_ns: int | None
    reason: str
    created_ns: int
    id: int | None = None


def _tombstone(device: str, what: dict[str, Any], reason: str) -> dict[str, Any]:
    stone: dict[str, Any] = {
        "device": device,
        "session": None,
        "seq_from": None,
        "seq_to": None,
        "since_wall_ns": None,
        "until_wall_ns": None,
        "reason": reason,
        "created_ns": now_ns(),
    }
    if what.get("session") is not None:
        stone["session"] = int(what["session"])
        if what.get("seq") is not None:
            stone["seq_from"], stone["seq_to"] = (int(v) for v in what["seq"])
    elif what.get("since_wall_ns") is not None:
        stone["since_wall_ns"] = int(what["since_wall_ns"])
        stone["until_wall_ns"] = int(what.get("until_wall_ns") or stone["created_ns"])
    else:
        raise Problem(
            422,
            "A deletion names a session (optionally with a seq span) or a "
            "wall-clock span (since_wall_ns).",
        )
    return stone


def _not_tombstoned(table: pa.Table, srow: Any, stones: Iterable[Any]) -> np.ndarray | None:
    """A keep-mask of the rows no tombstone covers, or None when none is covered."""
    stones = list(stones)
    if not stones or table.num_rows == 0:
        return None
    seq = table.column("seq").to_numpy()
    t = table.column("t_ns").to_numpy()
    drop = np.zeros(len(seq), dtype=bool)
    session = int(srow.session)
    for s in stones:
        if s.session is not None and int(s.session) != session:
            continue
        if s.since_wall_ns is not None:
            wall = int(srow.started_wall_ns) + (t - int(srow.started_mono_ns))
            drop |= (wall >= s.since_wall_ns) & (wall <= (s.until_wall_ns or 2**62))
        elif s.seq_from is not None:
            drop |= (seq >= s.seq_from) & (seq <= s.seq_to)
        else:
            drop[:] = True
    # a FRAME row belongs to the event it was grabbed for: it goes when that event goes
    if drop.any() and not drop.all():
        kinds = table.column("kind").to_numpy()
        is_frame = kinds == int(Kind.FRAME)
        if is_frame.any():
            gone = set(seq[drop & ~is_frame].tolist())
            for i in np.nonzero(is_frame & ~drop)[0]:
                data = table.column("data")[int(i)].as_py() or "{}"
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    if json.loads(data).get("for_seq") in gone:
                        drop[i] = True
    return ~drop if drop.any() else None


#: The text columns and the most bytes one value may have: a keysym-like name, one event's
#: JSON details.
_TEXT_COLUMNS = {"name": 256, "data": 256 * 1024}
#: The columns an upload's checks read (types of all are checked from the footer).
_CHECKED = ("seq", "t_ns", "kind", "name", "data")


def _read_events(
    body: bytes,
    max_rows: int | None,
    max_decoded: int | None,
    columns: tuple[str, ...] | None = None,
) -> pa.Table:
    """The events of a Parquet segment, checked: the lake's columns and types, at most
    ``max_rows`` rows, no null ``seq``/``t_ns``/``kind``, and at most ``max_decoded`` bytes once
    decoded (a small file can decode to gigabytes: compressed pages, or one long string repeated
    through a dictionary). ``name`` and ``data`` are read, and returned, dictionary-encoded, so
    their size is known before anything expands them; the body itself is what the lake keeps.
    Only ``columns`` are read (default: those the checks need)."""
    try:
        pf = pq.ParquetFile(pa.BufferReader(body))
        meta = pf.metadata
        if max_rows is not None and meta.num_rows > max_rows:
            raise Problem(
                413,
                f"A segment holds at most {max_rows:,} events; this one has {meta.num_rows:,}. "
                "Send smaller segments.",
            )
        names = pf.schema_arrow.names
        if sorted(names) != sorted(EVENT_SCHEMA.names):
            raise Problem(
                422,
                "The segment's columns must be exactly "
                f"{', '.join(EVENT_SCHEMA.names)}; it has {', '.join(names)}.",
            )
        if max_decoded is not None:
            pages = sum(
                meta.row_group(g).column(c).total_uncompressed_size
                for g in range(meta.num_row_groups)
                for c in range(meta.num_columns)
            )
            if pages > max_decoded:
                raise Problem(
                    413,
                    f"The segment decompresses to {pages:,} bytes; the limit is {max_decoded:,}.",
                )
        for field in EVENT_SCHEMA:  # types first, from the footer
            got = pf.schema_arrow.field(field.name).type
            if field.name in _TEXT_COLUMNS and pa.types.is_dictionary(got):
                got = got.value_type
            if got != field.type:
                raise Problem(
                    422, f"The segment's column {field.name} is {got}; it must be {field.type}."
                )
        pf = pq.ParquetFile(pa.BufferReader(body), read_dictionary=list(_TEXT_COLUMNS))
        # what the checks need; the body is what gets stored
        table = pf.read(columns=list(columns or _CHECKED))
    except Problem:
        raise
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise Problem(422, f"The segment is not a Parquet file of events: {exc}.") from None
    expanded = 0
    for name, limit in _TEXT_COLUMNS.items():
        for chunk in table.column(name).chunks:
            if not pa.types.is_dictionary(chunk.type) or len(chunk.dictionary) == 0:
                continue
            lengths = pc.binary_length(chunk.dictionary).to_numpy(zero_copy_only=False)
            if lengths.max() > limit:
                raise Problem(
                    422,
                    f"An event's {name} is {int(lengths.max()):,} bytes; the limit is {limit:,}.",
                )
            idx = chunk.indices.fill_null(0).to_numpy(zero_copy_only=False)
            expanded += int(lengths[idx].sum())
    if max_decoded is not None and expanded > max_decoded:
        raise Problem(
            413, f"The segment's text decodes to {expanded:,} bytes; the limit is {max_decoded:,}."
        )
    for n in ("seq", "t_ns", "kind"):
        if table.column(n).null_count:
            raise Problem(
                422, f"Every event needs its {n}; {table.column(n).null_count} have none."
            )
    return table


def _write_events(table: pa.Table) -> bytes:
    return events_parquet(table.cast(EVENT_SCHEMA))


def _frame_refs(table: pa.Table) -> set[str]:
    if table.num_rows == 0:
        return set()
    is_frame = pc.equal(table.column("kind"), int(Kind.FRAME))
    data = table.column("data").filter(is_frame).cast(pa.string())
    if len(data) == 0:
        return set()
    found = pc.extract_regex(data, _FRAME_REF)
    refs = set(pc.struct_field(found, [0]).drop_null().to_pylist())
    if found.null_count - data.null_count > 0:
        raise Problem(422, "A FRAME event does not name its frame (data.frame, 32 hex digits).")
    return refs


def _check_tile(key: str, data: bytes) -> None:
    if content_hash(data) != key:
        raise Problem(
            422,
            f"Tile {key} does not match its content (BLAKE2b-128 of the bytes is "
            f"{content_hash(data)}): it was damaged on the way. Send it again.",
        )
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise Problem(422, f"Tile {key} is not a WebP image.")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
    except Exception as exc:
        raise Problem(422, f"Tile {key} is not a readable WebP image ({exc}).") from None
    if w > 1024 or h > 1024:
        raise Problem(422, f"Tile {key} is {w}x{h}; tiles are at most 1024x1024 pixels.")


def _check_manifest(key: str, data: bytes) -> list[str]:
    try:
        w, h, tile, keys = unpack_manifest(data)
    except ValueError:
        raise Problem(422, f"Frame {key} is not a frame manifest (DTF1).") from None
    if not (0 < w <= 32768 and 0 < h <= 32768 and 8 <= tile <= 1024):
        raise Problem(422, f"Frame {key} has impossible dimensions {w}x{h} (tile {tile}).")
    cells = ((w + tile - 1) // tile) * ((h + tile - 1) // tile)
    if cells != len(keys):
        raise Problem(
            422,
            f"Frame {key} lists {len(keys)} tiles; a {w}x{h} screen in {tile}-pixel "
            f"tiles has {cells}.",
        )
    return sorted({k.hex() for k in keys})


def _depth(value: Any, level: int = 0) -> int:
    """How deep JSON-like data nests (stops counting past 64)."""
    if level > 64:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="seconds")

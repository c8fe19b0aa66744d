"""The collector's database: admins, devices, enrolment codes, sessions, segments, blobs,
deletions and tombstones, policies and each device's consent to them, dataset builds.

SQLAlchemy Core on SQLite (the embedded default, one file) or PostgreSQL (``postgresql://``). The
schema is made and upgraded by the Alembic migrations in :mod:`demotrace.collector.migrations`,
run by :func:`open_db` under a lock, so several server processes can start on one database.
Every time is an integer of nanoseconds since the epoch (UTC).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from demotrace.errors import CollectorError

metadata = sa.MetaData()
_ns = sa.BigInteger
_autoid = sa.Integer

admins = sa.Table(
    "admins",
    metadata,
    sa.Column("id", _autoid, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("created_ns", _ns, nullable=False),
)
enroll_codes = sa.Table(
    "enroll_codes",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("created_ns", _ns, nullable=False),
    sa.Column("expires_ns", _ns, nullable=False),
    sa.Column("used_ns", _ns),
    sa.Column("device", sa.String(40)),
    sa.Column("note", sa.String(200)),
    sa.Column("key_hash", sa.String(64)),
)
devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("label", sa.String(200)),
    sa.Column("created_ns", _ns, nullable=False),
    sa.Column("revoked_ns", _ns),
    sa.Column("last_seen_ns", _ns),
)
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("device", sa.String(40), primary_key=True),
    sa.Column("session", sa.BigInteger, primary_key=True),
    sa.Column("date", sa.String(10), nullable=False),
    sa.Column("started_wall_ns", _ns, nullable=False),
    sa.Column("started_mono_ns", _ns, nullable=False),
    sa.Column("meta", sa.Text, nullable=False),
    sa.Column("updated_ns", _ns, nullable=False),
)
segments = sa.Table(
    "segments",
    metadata,
    sa.Column("device", sa.String(40), primary_key=True),
    sa.Column("session", sa.BigInteger, primary_key=True),
    sa.Column("first_seq", sa.BigInteger, primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("bytes", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("key", sa.String(300), nullable=False),
    sa.Column("created_ns", _ns, nullable=False),
)
segment_frames = sa.Table(
    "segment_frames",
    metadata,
    sa.Column("device", sa.String(40), primary_key=True),
    sa.Column("session", sa.BigInteger, primary_key=True),
    sa.Column("first_seq", sa.BigInteger, primary_key=True),
    sa.Column("frame", sa.String(32), primary_key=True),
    sa.Index("ix_segment_frames_frame", "device", "frame"),
)
frames = sa.Table(
    "frames",
    metadata,
    sa.Column("device", sa.String(40), primary_key=True),
    sa.Column("frame", sa.String(32), primary_key=True),
    sa.Column("bytes", sa.Integer, nullable=False),
    sa.Column("created_ns", _ns, nullable=False),
)
tiles = sa.Table(
    "tiles",
    metadata,
    sa.Column("hash", sa.String(32), primary_key=True),
    sa.Column("bytes", sa.Integer, nullable=False),
    sa.Column("created_ns", _ns, nullable=False),
)
tile_owners = sa.Table(
    "tile_owners",
    metadata,
    sa.Column("device", sa.String(40), primary_key=True),
    sa.Column("hash", sa.String(32), primary_key=True),
)
tombstones = sa.Table(
    "tombstones",
    metadata,
    sa.Column("id", _autoid, primary_key=True),
    sa.Column("device", sa.String(40), nullable=False, index=True),
    sa.Column("session", sa.BigInteger),
    sa.Column("seq_from", sa.BigInteger),
    sa.Column("seq_to", sa.BigInteger),
    sa.Column("since_wall_ns", _ns),
    sa.Column("until_wall_ns", _ns),
    sa.Column("reason", sa.String(20), nullable=False),
    sa.Column("created_ns", _ns, nullable=False),
)
deletions = sa.Table(
    "deletions",
    metadata,
    sa.Column("device", sa.String(40), primary_key=True),
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("what", sa.Text, nullable=False),
    sa.Column("result", sa.Text, nullable=False),
    sa.Column("created_ns", _ns, nullable=False),
)
policies = sa.Table(
    "policies",
    metadata,
    sa.Column("id", _autoid, primary_key=True),
    sa.Column("version", sa.String(80), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_ns", _ns, nullable=False),
)

consents = sa.Table(
    "consents",
    metadata,
    sa.Column("device", sa.String(40), primary_key=True),
    sa.Column("version", sa.String(80), primary_key=True),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("at_ns", _ns, nullable=False),
)
builds = sa.Table(
    "builds",
    metadata,
    sa.Column("id", sa.String(24), primary_key=True),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("engine", sa.String(12), nullable=False),
    sa.Column("note", sa.String(200)),
    sa.Column("created_ns", _ns, nullable=False),
    sa.Column("started_ns", _ns),
    sa.Column("finished_ns", _ns),
    sa.Column("heartbeat_ns", _ns),
    sa.Column("done_sessions", sa.Integer, nullable=False, server_default="0"),
    sa.Column("total_sessions", sa.Integer, nullable=False, server_default="0"),
    sa.Column("episodes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("steps", sa.Integer, nullable=False, server_default="0"),
    sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
    sa.Column("coverage", sa.Text),
)
build_sessions = sa.Table(
    "build_sessions",
    metadata,
    sa.Column("build", sa.String(24), primary_key=True),
    sa.Column("device", sa.String(40), primary_key=True, index=True),
    sa.Column("session", sa.BigInteger, primary_key=True),
)


def normalise_url(url: str) -> str:
    """A database URL with the driver this package uses (psycopg 3 for PostgreSQL)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    with contextlib.suppress(Exception):
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    return "<unparseable URL>"


def make_engine(url: str, *, readonly: bool = False) -> Engine:
    """An engine on ``url``. On SQLite, write transactions begin IMMEDIATE; a ``readonly`` engine
    begins them deferred (readers never wait for the write lock in WAL mode)."""
    url = normalise_url(url)
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise CollectorError(
            f"The database URL {url!r} is not a URL SQLAlchemy understands. Give a SQLite file "
            "(sqlite:////path/collector.db) or PostgreSQL (postgresql://user:pass@host/db)."
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi: Any, _record: Any) -> None:
            dbapi.isolation_level = None  # transactions are begun below, IMMEDIATE
            cur = dbapi.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # writers take the write lock at the start, so two never deadlock on an upgrade
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise CollectorError(
                "PostgreSQL needs the psycopg driver: pip install 'demotrace[server]'."
            ) from None
        return sa.create_engine(url, pool_size=8, max_overflow=16, pool_pre_ping=True)
    raise CollectorError(
        f"The database {redact_url(url)} is neither SQLite nor PostgreSQL; the collector runs on "
        "those two."
    )


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection | None]:
    """Serialise migrations of one database across processes."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(74657261)"))
            try:
                yield conn
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(74657261)"))
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield None
        return
    fd = os.open(database + ".migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield None
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (Alembic ``upgrade head``)."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", "demotrace.collector:migrations")
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with _migration_lock(engine), engine.begin() as conn:
        current = _current_revision(conn)
        if current == head:
            return
        known = {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}
        if current is not None and current not in known:
            raise CollectorError(
                f"The collector database {redact_url(str(engine.url))} was written by a newer "
                f"demotrace (schema revision {current}). Upgrade demotrace to serve it."
            )
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _current_revision(conn: Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    row = conn.execute(sa.text("SELECT version_num FROM alembic_version")).fetchone()
    return row[0] if row else None


def open_db(url: str) -> Engine:
    """An engine on a migrated database; a clear :class:`CollectorError` when it cannot be."""
    engine = make_engine(url)
    try:
        migrate(engine)
    except CollectorError:
        raise
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        reason = str(exc.orig if hasattr(exc, "orig") else exc).strip().splitlines()[0]
        raise CollectorError(
            f"Cannot reach the collector database {redact_url(url)}: {reason}. Check that the "
            "server runs, the URL (host, port, user, password, database) and that it accepts "
            "connections from here."
        ) from None
    except sa.exc.SQLAlchemyError as exc:
        raise CollectorError(
            f"Cannot prepare the collector database {redact_url(url)}: {exc}."
        ) from None
    return engine


_INSERTS: dict[tuple[str, str], Any] = {}


def insert_ignore(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, skipping those whose primary key exists (idempotent writes). Returns the
    number inserted, counted from RETURNING (drivers differ in what rowcount says). One cached
    statement per table, run over the rows."""
    if not rows:
        return 0
    stmt = _INSERTS.get((conn.dialect.name, table.name))
    if stmt is None:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        key = next(iter(table.primary_key.columns))
        stmt = insert(table).on_conflict_do_nothing().returning(key)
        _INSERTS[(conn.dialect.name, table.name)] = stmt
    result = conn.execute(stmt, list(rows))
    return len(result.fetchall())

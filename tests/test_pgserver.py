"""The throwaway PostgreSQL server of ``tests/pgserver.py``: start, isolate, clients, clean up."""

from __future__ import annotations

import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pgserver import PgServer, PgUnavailable, find_pg_bin, pg_server


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with ExitStack() as stack:
        try:
            server = stack.enter_context(pg_server())
        except PgUnavailable as exc:
            pytest.skip(f"PostgreSQL is not installed: {exc}")
        yield server


def _refused(port: int) -> bool:
    """Whether nothing listens on loopback ``port`` any more."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _leftovers() -> set[Path]:
    """Temporary folders of servers, in every place ``pg_server`` may put them."""
    return {
        *Path(tempfile.gettempdir()).glob("demotrace-pg-*"),
        *Path("/tmp").glob("demotrace-pg-*"),
    }


def test_url_and_settings(pg: PgServer) -> None:
    url = make_url(pg.url)
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+psycopg",
        "127.0.0.1",
        pg.port,
        "demotrace_test",
    )
    expected = {
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(pg.base),
    }
    with pg.connect() as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone() for name in expected}
    assert shown == {name: (value,) for name, value in expected.items()}
    assert (pg.base / f".s.PGSQL.{pg.port}").exists()


def test_sqlalchemy_roundtrip(pg: PgServer) -> None:
    engine = create_engine(pg.url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)"))
            conn.execute(text("INSERT INTO notes (body) VALUES (:b)"), [{"b": "a"}, {"b": "b"}])
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, body FROM notes ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b")]
    finally:
        engine.dispose()


def test_new_database_is_isolated(pg: PgServer) -> None:
    main, other = create_engine(pg.url), create_engine(pg.new_database("pgserver_iso"))
    probe = text("SELECT to_regclass(:t) IS NOT NULL")
    try:
        assert make_url(other.url).database == "pgserver_iso"
        with main.begin() as conn:
            conn.execute(text("CREATE TABLE only_main (x int)"))
        with other.begin() as conn:
            conn.execute(text("CREATE TABLE only_other (x int)"))
            assert not conn.execute(probe, {"t": "only_main"}).scalar()
        with main.connect() as conn:
            assert not conn.execute(probe, {"t": "only_other"}).scalar()
        # Asking again gives a clean database, even while a client is still connected.
        held = other.connect()
        other2 = create_engine(pg.new_database("pgserver_iso"))
        with other2.connect() as conn:
            assert not conn.execute(probe, {"t": "only_other"}).scalar()
        held.invalidate()
        other2.dispose()
    finally:
        main.dispose()
        other.dispose()


@pytest.mark.parametrize("name", ["Bad-Name", "postgres", "template1", "", "x; DROP"])
def test_new_database_rejects_bad_names(pg: PgServer, name: str) -> None:
    with pytest.raises(ValueError):
        pg.new_database(name)


def test_150_simultaneous_connections(pg: PgServer) -> None:
    n = 150
    engine = create_engine(pg.url, pool_size=n, max_overflow=0, pool_timeout=20)
    barrier = threading.Barrier(n, timeout=20)

    def client(_: int) -> tuple[int, int]:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            barrier.wait()  # every connection is open at this point
            seen = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            ).scalar_one()
            barrier.wait()
        return pid, seen

    try:
        with ThreadPoolExecutor(max_workers=n) as pool:
            results = list(pool.map(client, range(n)))
    finally:
        engine.dispose()
    assert len({pid for pid, _ in results}) == n
    assert min(seen for _, seen in results) >= n


def test_stop_on_error_removes_everything() -> None:
    try:
        with pytest.raises(KeyError), pg_server() as server:
            base, port = server.base, server.port
            assert server.startup_s < 30
            raise KeyError("boom")
    except PgUnavailable as exc:
        pytest.skip(f"PostgreSQL is not installed: {exc}")
    assert not base.exists()
    assert _refused(port)
    server.stop()  # a second stop is harmless
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", connect_timeout=2)


def test_startup_failure_shows_server_log() -> None:
    before = _leftovers()
    try:
        with pytest.raises(RuntimeError) as info, pg_server({"shared_buffers": "plenty"}):
            pass
    except PgUnavailable as exc:
        pytest.skip(f"PostgreSQL is not installed: {exc}")
    assert "did not start" in str(info.value)
    assert 'invalid value for parameter "shared_buffers"' in str(info.value)
    assert _leftovers() <= before


def _fake_bin(folder: Path, names: tuple[str, ...] = ("initdb", "pg_ctl", "postgres")) -> Path:
    """A folder with executable stand-ins for the server binaries."""
    folder.mkdir(parents=True)
    for name in names:
        exe = folder / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return folder


def test_find_pg_bin(tmp_path: Path) -> None:
    lib, empty = tmp_path / "lib", tmp_path / "empty"
    empty.mkdir()
    for version in ("9.6", "15", "16"):
        _fake_bin(lib / version / "bin")
    _fake_bin(lib / "17" / "bin", ("initdb", "pg_ctl"))  # incomplete: no postgres
    # The newest complete version under the lib folder, compared as numbers.
    assert find_pg_bin(path=str(empty), lib_root=lib) == lib / "16" / "bin"
    # initdb on PATH wins, followed through a symlink to the folder holding its siblings.
    real = _fake_bin(tmp_path / "opt" / "pg" / "bin")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "initdb").symlink_to(real / "initdb")
    assert find_pg_bin(path=str(linked), lib_root=lib) == real
    # An initdb on PATH without pg_ctl/postgres beside it (like a wrapper) is passed over.
    wrapper = _fake_bin(tmp_path / "wrapper", ("initdb",))
    assert find_pg_bin(path=str(wrapper), lib_root=lib) == lib / "16" / "bin"
    with pytest.raises(PgUnavailable, match="postgresql"):
        find_pg_bin(path=str(empty), lib_root=tmp_path / "nowhere")

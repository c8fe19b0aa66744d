"""A throwaway PostgreSQL cluster for tests and benchmarks.

``with pg_server() as pg:`` runs ``initdb`` in a fresh temporary folder, starts the server on a
free loopback port (TCP on 127.0.0.1 only, trust authentication for local connections, its unix
socket inside the temporary folder) and yields a :class:`PgServer` whose ``url`` is a SQLAlchemy
URL of the ``demotrace_test`` database. On exit the server is stopped with ``pg_ctl stop -m
immediate`` and the folder removed, whether or not the body raised.

The server is tuned for speed, not durability (``fsync=off``, ``synchronous_commit=off``,
``full_page_writes=off``) and allows 200 connections. ``initdb`` refuses to run as root, so as
root every server command runs as the ``postgres`` system user (or ``nobody``) through
``runuser``. Without PostgreSQL binaries, :class:`PgUnavailable` is raised so that callers can
skip; ``make sysdeps`` installs them (Debian package ``postgresql``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

#: Where Debian and Ubuntu put each major version's server binaries.
PG_LIB = Path("/usr/lib/postgresql")
#: The database that :attr:`PgServer.url` points at.
DATABASE = "demotrace_test"
#: The superuser created by ``initdb``; trust authentication means it needs no password.
SUPERUSER = "postgres"
HOST = "127.0.0.1"
#: Seconds to wait for the server to accept connections.
START_TIMEOUT = 30.0
#: ``postgresql.conf`` settings, appended after ``initdb``'s so that they win.
SETTINGS: dict[str, str] = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "shared_buffers": "64MB",
    "max_connections": "200",
}
#: Local connections only: the unix socket and loopback TCP.
PG_HBA = """\
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
host    all       all   ::1/128       trust
"""
_BINARIES = ("initdb", "pg_ctl", "postgres")
_RESERVED = frozenset({"postgres", "template0", "template1"})
_SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"


class PgUnavailable(Exception):
    """No PostgreSQL server binaries are installed."""


def _complete(bindir: Path) -> bool:
    """Whether ``bindir`` holds ``initdb``, ``pg_ctl`` and ``postgres``."""
    return all(
        (bindir / name).is_file() and os.access(bindir / name, os.X_OK) for name in _BINARIES
    )


def _version_key(name: str) -> tuple[int, ...]:
    """``"9.6"`` -> ``(9, 6)``, so that versions sort numerically."""
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (-1,)


def find_pg_bin(path: str | None = None, lib_root: Path = PG_LIB) -> Path:
    """The folder of the server binaries: ``initdb`` on ``path``, else the newest in ``lib_root``.

    ``path`` defaults to ``$PATH``. An ``initdb`` found there is followed through symlinks, and
    used only if ``pg_ctl`` and ``postgres`` sit beside it (Debian's ``pg_wrapper`` does not).
    """
    found = shutil.which("initdb", path=path)
    if found:
        bindir = Path(found).resolve().parent
        if _complete(bindir):
            return bindir
    versions = [d for d in lib_root.glob("*/bin") if _complete(d)]
    if versions:
        return max(versions, key=lambda d: _version_key(d.parent.name))
    raise PgUnavailable(
        f"PostgreSQL server binaries ({', '.join(_BINARIES)}) not found on PATH or under "
        f"{lib_root}/*/bin; install the Debian package `postgresql` (`make sysdeps` does it)"
    )


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as when we are root, else ``None``."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, but there is neither a `postgres` nor a `nobody` user")


def _run_as(user: pwd.struct_passwd | None) -> list[str]:
    """The command prefix that runs a program as ``user`` (nothing for the current user)."""
    if user is None:
        return []
    search = f"{os.environ.get('PATH', '')}:{_SBIN}"
    if runuser := shutil.which("runuser", path=search):
        return [runuser, "-u", user.pw_name, "--"]
    if setpriv := shutil.which("setpriv", path=search):
        return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
    raise RuntimeError("running as root, but neither `runuser` nor `setpriv` is installed")


def _reachable(folder: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` may traverse ``folder`` and all its parents."""
    for part in (folder, *folder.parents):
        st = part.stat()
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid == user.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _base_dir(user: pwd.struct_passwd | None) -> Path:
    """A parent for the temporary folder: reachable by ``user``, short enough for a socket."""
    candidates = [Path(tempfile.gettempdir()).resolve(), Path("/tmp")]
    for folder in candidates:
        # A unix socket path is at most 107 bytes; leave room for "/demotrace-pg-XXXXXXXX/.s...".
        if len(str(folder)) <= 60 and (user is None or _reachable(folder, user)):
            return folder
    return candidates[-1]


def _free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _quote(value: str) -> str:
    """A ``postgresql.conf`` value in single quotes."""
    return "'" + value.replace("'", "''") + "'"


class PgServer:
    """A running throwaway cluster; ``url`` points at its ``demotrace_test`` database."""

    def __init__(self, bindir: Path, base: Path, prefix: list[str]) -> None:
        self.bindir = bindir
        self.base = base
        self.data = base / "data"
        self.log_path = base / "server.log"
        self.host = HOST
        self.user = SUPERUSER
        self.port = 0
        self.startup_s = 0.0
        self._prefix = prefix
        self._owner_pid = os.getpid()
        self._stopped = False

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    def start(cls, settings: Mapping[str, str] | None = None) -> PgServer:
        """Create, configure and start a cluster; ``settings`` add to or override SETTINGS."""
        t0 = time.monotonic()
        bindir = find_pg_bin()
        user = _server_user()
        prefix = _run_as(user)
        base = Path(tempfile.mkdtemp(prefix="demotrace-pg-", dir=_base_dir(user)))
        server = cls(bindir, base, prefix)
        atexit.register(server.stop)
        try:
            if user is not None:
                os.chown(base, user.pw_uid, user.pw_gid)
            base.chmod(0o755)
            server._initdb({**SETTINGS, **(settings or {})})
            server._launch(deadline=time.monotonic() + START_TIMEOUT)
            server._create(DATABASE)
        except BaseException:
            server.stop()
            raise
        server.startup_s = time.monotonic() - t0
        return server

    def stop(self) -> None:
        """Stop the server at once and remove its folder; safe to call twice."""
        if self._stopped or os.getpid() != self._owner_pid:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        pidfile = self.data / "postmaster.pid"
        if pidfile.exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
            self._kill_leftover(pidfile)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``demotrace_test`` database."""
        return self.url_for(DATABASE)

    def url_for(self, dbname: str) -> str:
        """SQLAlchemy URL of database ``dbname`` on this server."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = DATABASE) -> psycopg.Connection[TupleRow]:
        """A plain psycopg connection in autocommit mode."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=dbname,
            connect_timeout=5,
            autocommit=True,
        )

    def new_database(self, name: str) -> str:
        """Create an empty database ``name`` (dropping any old one) and return its URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name) or name in _RESERVED:
            raise ValueError(f"not a usable database name: {name!r}")
        ident = sql.Identifier(name)
        with self.connect("postgres") as conn:
            force = sql.SQL(" WITH (FORCE)" if conn.info.server_version >= 130000 else "")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(ident, force))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        return self.url_for(name)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- internals --------------------------------------------------------------------------

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a server program as the server user; output captured, never raises on failure."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(
            [*self._prefix, str(self.bindir / program), *args],
            cwd=self.base,
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT + 30,
            check=False,
        )

    def _initdb(self, settings: Mapping[str, str]) -> None:
        """Run ``initdb`` and write the configuration."""
        done = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            "-E",
            "UTF8",
            "--locale=C",
            "-A",
            "trust",
            "--no-sync",
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            raise RuntimeError(f"initdb failed (exit {done.returncode}):\n{tail}")
        conf = {"unix_socket_directories": str(self.base), **settings}
        with (self.data / "postgresql.conf").open("a") as f:
            f.write("\n# demotrace tests/pgserver.py\n")
            f.writelines(f"{key} = {_quote(str(value))}\n" for key, value in conf.items())
        (self.data / "pg_hba.conf").write_text(PG_HBA)

    def _launch(self, deadline: float) -> None:
        """Start on a free port (another one if it was taken meanwhile) and wait until ready."""
        for attempt in range(3):
            self.port = _free_port()
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            timeout = max(1, int(deadline - time.monotonic()))
            done = self._run(
                "pg_ctl",
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                str(timeout),
                "-o",
                f"-p {self.port}",
            )
            if done.returncode == 0:
                self._wait_ready(deadline)
                return
            fresh = self.log_path.read_bytes()[offset:] if self.log_path.exists() else b""
            if b"Address already in use" not in fresh or attempt == 2:
                output = (done.stdout + done.stderr).strip()
                raise RuntimeError(
                    f"PostgreSQL did not start (pg_ctl exit {done.returncode}: {output})\n"
                    f"--- {self.log_path} ---\n{self.log_tail()}"
                )

    def _wait_ready(self, deadline: float) -> None:
        """Poll with psycopg until the server accepts connections."""
        while True:
            try:
                with self.connect("postgres") as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL on port {self.port} did not accept connections within "
                        f"{START_TIMEOUT:.0f} s: {exc}\n--- {self.log_path} ---\n{self.log_tail()}"
                    ) from exc
            time.sleep(0.05)

    def _create(self, dbname: str) -> None:
        """Create database ``dbname``."""
        with self.connect("postgres") as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))

    def _kill_leftover(self, pidfile: Path) -> None:
        """SIGKILL the postmaster if ``pg_ctl stop`` left it running (checked via ``/proc``)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pidfile.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(self.data).encode() in cmdline:
                os.kill(pid, signal.SIGKILL)


@contextmanager
def pg_server(settings: Mapping[str, str] | None = None) -> Iterator[PgServer]:
    """Run a throwaway PostgreSQL server for the duration of the ``with`` block.

    Raises :class:`PgUnavailable` if PostgreSQL is not installed, and ``RuntimeError`` (with the
    tail of the server log) if it does not start.
    """
    server = PgServer.start(settings)
    try:
        yield server
    finally:
        server.stop()

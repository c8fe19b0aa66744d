"""A private D-Bus session and AT-SPI accessibility bus for one :class:`VirtualDesktop`.

``a11y = start_a11y(desk)`` starts ``dbus-daemon --session`` listening on a socket in a new
private directory, then ``at-spi-bus-launcher --launch-immediately`` on that session with the
desktop's ``DISPLAY``. The launcher starts the accessibility bus (a second ``dbus-daemon``) and
publishes its address as the ``AT_SPI_BUS`` property of the display's root window; the registry
daemon ``at-spi2-registryd`` is started by D-Bus activation when the first client asks for it.

The result is a ``dict`` of environment variables for programs on that desktop (the desktop's own
``env`` plus ``DBUS_SESSION_BUS_ADDRESS``, ``AT_SPI_BUS_ADDRESS`` and ``XDG_RUNTIME_DIR``, without
``NO_AT_BRIDGE`` and ``GTK_A11Y``, which would switch GTK's accessibility bridge off). It also has
``close()`` (idempotent; also a context manager) which ends every process it started, including
the ones they started in turn, and removes the private directory. Close it before the desktop.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from demotrace.errors import MissingToolError, NoDisplayError

APT_PACKAGES = "dbus-daemon at-spi2-core"
LAUNCHER_PLACES = (
    "/usr/libexec/at-spi-bus-launcher",
    "/usr/lib/at-spi2-core/at-spi-bus-launcher",
    "/usr/lib/at-spi2/at-spi-bus-launcher",
)
_TIMEOUT = 10.0
#: Variables that turn accessibility off or point at another session; never passed on.
_DROPPED = ("NO_AT_BRIDGE", "GTK_A11Y", "AT_SPI_BUS_ADDRESS", "DBUS_SESSION_BUS_ADDRESS")


def bus_launcher() -> str | None:
    """Path of ``at-spi-bus-launcher`` (it lives outside PATH on Debian), or None."""
    for place in LAUNCHER_PLACES:
        if os.access(place, os.X_OK):
            return place
    return shutil.which("at-spi-bus-launcher")


def missing_tools() -> list[str]:
    """Names of the programs :func:`start_a11y` needs that are not installed."""
    missing = [] if shutil.which("dbus-daemon") else ["dbus-daemon"]
    if bus_launcher() is None:
        missing.append("at-spi-bus-launcher")
    return missing


def _session_members(sid: int) -> list[int]:
    """Pids of live processes in session ``sid`` (read from /proc)."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields[0] is the state, [3] the session id; zombies are already gone
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


class A11yEnv(dict[str, str]):
    """Environment for programs on an accessible desktop; ``close()`` stops the buses."""

    def __init__(self, env: dict[str, str], procs: list[subprocess.Popen[Any]], tmp: Path) -> None:
        super().__init__(env)
        self.procs = procs
        self.tmpdir = tmp
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """Pids of everything this started: the daemons and what they started, still alive."""
        out: list[int] = []
        for proc in self.procs:
            if proc.poll() is None:
                out.extend(pid for pid in _session_members(proc.pid) if pid not in out)
        return out

    def close(self) -> None:
        """Stop dbus-daemon, at-spi-bus-launcher, the accessibility bus and at-spi2-registryd."""
        if self._closed:
            return
        self._closed = True
        # every process started here runs in a session of its own, led by the one we started;
        # what they spawned (the a11y dbus-daemon, the registry daemon) stays in that session
        sessions = [p.pid for p in self.procs]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            members = [pid for sid in sessions for pid in _session_members(sid)]
            if not members:
                break
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                for proc in self.procs:
                    proc.poll()  # reap our direct children so they leave the session
                if not any(_session_members(sid) for sid in sessions):
                    break
                time.sleep(0.02)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1.0)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> A11yEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.05)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
        elif proc.poll() is not None:
            break
    return buf.decode(errors="replace").strip()


def _root_property(display: str, name: str) -> str | None:
    from Xlib import X
    from Xlib import display as xdisplay

    d = xdisplay.Display(display)
    try:
        prop = d.screen().root.get_full_property(d.intern_atom(name), X.AnyPropertyType)
    finally:
        d.close()
    if not prop or not prop.value:
        return None
    value = prop.value
    return value.decode() if isinstance(value, bytes) else str(value)


def _delete_root_property(display: str, name: str) -> None:
    from Xlib import display as xdisplay

    d = xdisplay.Display(display)
    try:
        d.screen().root.delete_property(d.intern_atom(name))
        d.sync()
    finally:
        d.close()


def start_a11y(desktop: Any) -> A11yEnv:
    """Start a D-Bus session and the AT-SPI bus for ``desktop`` (anything with ``display`` and
    ``env``, e.g. a :class:`~demotrace.testbench.desktop.VirtualDesktop`); see the module doc."""
    missing = missing_tools()
    if missing:
        raise MissingToolError(
            f"The programs {', '.join(missing)} are not installed; accessibility (AT-SPI) tests "
            f"need them. Install them with: sudo apt-get install -y {APT_PACKAGES}"
        )
    tmp = Path(tempfile.mkdtemp(prefix="demotrace-a11y-"))
    tmp.chmod(0o700)
    env = {k: v for k, v in dict(desktop.env).items() if k not in _DROPPED}
    env["DISPLAY"] = desktop.display
    env["XDG_RUNTIME_DIR"] = str(tmp)
    procs: list[subprocess.Popen[Any]] = []
    a11y = A11yEnv(env, procs, tmp)
    try:
        with (tmp / "dbus-daemon.log").open("wb") as log:
            dbus = subprocess.Popen(
                ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1",
                 f"--address=unix:path={tmp / 'bus'}"],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        procs.append(dbus)
        address = _read_line(dbus, _TIMEOUT)
        if not address.startswith("unix:"):
            raise NoDisplayError(f"dbus-daemon did not start: {address or 'no address printed'}")
        env["DBUS_SESSION_BUS_ADDRESS"] = address
        _delete_root_property(desktop.display, "AT_SPI_BUS")  # left by an earlier launcher
        with (tmp / "at-spi-bus-launcher.log").open("wb") as log:
            launcher = subprocess.Popen(
                [str(bus_launcher()), "--launch-immediately"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        procs.append(launcher)
        deadline = time.monotonic() + _TIMEOUT
        while (bus := _root_property(desktop.display, "AT_SPI_BUS")) is None:
            if launcher.poll() is not None or time.monotonic() > deadline:
                log_text = (tmp / "at-spi-bus-launcher.log").read_text(errors="replace")
                raise NoDisplayError(
                    f"at-spi-bus-launcher did not publish the accessibility bus on "
                    f"{desktop.display}: {log_text.strip()[-400:] or '(no output)'}"
                )
            time.sleep(0.02)
        env["AT_SPI_BUS_ADDRESS"] = bus
        a11y.update(env)
        return a11y
    except BaseException:
        a11y.close()
        raise

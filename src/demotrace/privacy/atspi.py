"""Where the keyboard focus is, from AT-SPI: is it in a password field, and since when.

pyatspi lives in Debian's system Python, not in the venv, so :class:`FocusWatcher` runs the
standalone script ``atspi_agent.py`` (next to this file) with ``/usr/bin/python3``, keeps a pipe to
its stdin (the agent exits when that pipe closes) and reads the JSON lines it prints on a daemon
thread. Each line becomes a :class:`FocusInfo`, kept in a short history so the recorder can ask
whether a keystroke at time *t* went into a secret field (:meth:`FocusWatcher.secret_at`) after
the fact.

All times are ``time.monotonic_ns()`` (CLOCK_MONOTONIC, shared by every process on the machine).
The agent stamps an event when it receives it, which is a few milliseconds *after* the focus really
moved (see docs/atspi.md): a keystroke typed in that gap would look as if it went to the previous
field, so decide a keystroke's fate only after ``slack_ns`` and with :meth:`secret_at`, which treats
a keystroke as secret when the focus was in a secret field at any time in ``[t, t + slack_ns]``.

Nothing here imports pyatspi, gi or Xlib.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

#: The agent script, started by path with the system Python.
AGENT = Path(__file__).with_name("atspi_agent.py")
#: How far back :meth:`FocusWatcher.secret_between` can answer (older changes are dropped).
HISTORY_NS = 10 * 60 * 1_000_000_000
#: Default slack for :meth:`FocusWatcher.secret_at`: well above the measured event delay.
SLACK_NS = 250_000_000
#: How many raw agent lines are kept (for tests and diagnostics).
RAW_LINES = 2000
_CHECK_TIMEOUT = 10.0
_STDERR_TAIL = 40
_ENV_DROPPED = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")


@dataclass(frozen=True, slots=True)
class FocusInfo:
    """One focus change as the agent saw it."""

    t_ns: int  # time.monotonic_ns() in the agent when the focus event arrived
    role: str  # AT-SPI role name ("password text", "text", "entry", ...), "" if unknown or none
    secret: bool  # a password field, or a field whose attributes or label mark it as a secret
    app: str  # application name as AT-SPI reports it
    name: str  # accessible name, e.g. "Password" (a label, never the field's text)
    kind: str = "focus"  # "focus" (gained), "initial" (focused at start), "none" (focus left)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> FocusInfo:
        """Build from one agent JSON object; a role of "password text" is always secret."""
        role = str(record.get("role") or "")
        return cls(
            t_ns=int(record["t_ns"]),
            role=role,
            secret=bool(record.get("secret")) or role == "password text",
            app=str(record.get("app") or ""),
            name=str(record.get("name") or ""),
            kind=str(record.get("kind") or "focus"),
        )


def _agent_env(env: Mapping[str, str] | None) -> dict[str, str]:
    base = dict(os.environ if env is None else env)
    for key in _ENV_DROPPED:
        base.pop(key, None)
    return base


def _has_bus(env: Mapping[str, str]) -> bool:
    if env.get("DBUS_SESSION_BUS_ADDRESS") or env.get("AT_SPI_BUS_ADDRESS"):
        return True
    runtime = env.get("XDG_RUNTIME_DIR")
    return bool(runtime) and Path(runtime, "bus").exists()


class FocusWatcher:
    """Runs the AT-SPI agent and keeps the focus state and its recent history.

    ``on_change`` is called on the watcher's reader thread for every focus line, in order; it
    must return quickly. Exceptions it raises are logged and ignored.
    """

    def __init__(
        self,
        on_change: Callable[[FocusInfo], None],
        env: Mapping[str, str] | None = None,
        python: str = "/usr/bin/python3",
    ) -> None:
        self.on_change = on_change
        self.env = _agent_env(env)
        self.python = python
        self.current: FocusInfo | None = None
        self.error: str | None = None
        self._history: deque[FocusInfo] = deque()
        self._raw: deque[str] = deque(maxlen=RAW_LINES)
        self._stderr: deque[str] = deque(maxlen=_STDERR_TAIL)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        self._closing = False

    # ------------------------------------------------------------------ availability
    @staticmethod
    def available(
        env: Mapping[str, str] | None = None, python: str = "/usr/bin/python3"
    ) -> str | None:
        """None when the agent can run and reach the accessibility bus, else the reason.

        Checks, in order: ``python`` exists; the environment names a D-Bus session
        (``DBUS_SESSION_BUS_ADDRESS``, ``AT_SPI_BUS_ADDRESS`` or ``$XDG_RUNTIME_DIR/bus``) or at
        least a ``DISPLAY`` (where at-spi-bus-launcher may have published the bus); then runs the
        agent with ``--check`` (imports pyatspi, connects; up to 10 s).
        """
        agent_env = _agent_env(env)
        if not os.access(python, os.X_OK):
            return f"{python} is not an executable Python (install python3 and python3-pyatspi)"
        if not _has_bus(agent_env) and not agent_env.get("DISPLAY"):
            return (
                "no D-Bus session: DBUS_SESSION_BUS_ADDRESS, AT_SPI_BUS_ADDRESS and DISPLAY are "
                "all unset, so the AT-SPI accessibility bus cannot be found"
            )
        try:
            done = subprocess.run(
                [python, "-I", "-u", str(AGENT), "--check"],
                env=agent_env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_CHECK_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return f"the AT-SPI check did not answer within {_CHECK_TIMEOUT:.0f} s"
        except OSError as exc:
            return f"could not run {python}: {exc}"
        for line in reversed(done.stdout.splitlines()):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("ok"):
                    return None
                if record.get("error"):
                    return str(record["error"])
        detail = " ".join(done.stderr.split())[-300:] or f"exit status {done.returncode}"
        return f"the AT-SPI accessibility bus is not reachable: {detail}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the agent and the reader thread. Does not wait for the agent to be ready (see
        :meth:`wait_ready`); if the agent cannot be started, sets :attr:`error` and returns."""
        if self._proc is not None or self._closing:
            raise RuntimeError("FocusWatcher.start() may be called once")
        try:
            self._proc = subprocess.Popen(
                [self.python, "-I", "-u", str(AGENT)],
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                start_new_session=True,  # a Ctrl-C meant for the recorder does not reach it
            )
        except OSError as exc:
            self.error = f"could not start the AT-SPI agent with {self.python}: {exc}"
            self._ready.set()
            return
        assert self._proc.stdout is not None and self._proc.stderr is not None
        for target, stream, name in (
            (self._read_stdout, self._proc.stdout, "atspi-focus"),
            (self._read_stderr, self._proc.stderr, "atspi-stderr"),
        ):
            thread = threading.Thread(target=target, args=(stream,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait until the agent listens (True), or died, or ``timeout`` passed (False)."""
        return self._ready.wait(timeout) and self.error is None

    def close(self) -> None:
        """Stop the agent (closes its stdin, then SIGTERM, then SIGKILL). Idempotent."""
        if self._closing:
            return
        self._closing = True
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)
                try:
                    proc.wait(2.0)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for thread in self._threads:
            thread.join(2.0)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def __enter__(self) -> FocusWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """Process id of the agent, once started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def raw_lines(self) -> list[str]:
        """The agent's most recent stdout lines, verbatim (for tests and diagnostics)."""
        with self._lock:
            return list(self._raw)

    @property
    def history(self) -> list[FocusInfo]:
        """Focus changes of (about) the last 10 minutes, oldest first."""
        with self._lock:
            return list(self._history)

    # ------------------------------------------------------------------ queries
    def secret_between(self, t0_ns: int, t1_ns: int) -> bool:
        """True if the focus was in a secret field at any moment in ``[t0_ns, t1_ns]``.

        The state at a moment is the last change stamped at or before it. Before the agent's
        first line the state is unknown and counts as not secret; check :attr:`error` and
        :meth:`wait_ready` to know whether the watcher works at all.
        """
        if t0_ns > t1_ns:
            raise ValueError(f"t0_ns ({t0_ns}) is after t1_ns ({t1_ns})")
        with self._lock:
            before: FocusInfo | None = None
            for info in self._history:
                if info.t_ns <= t0_ns:
                    before = info
                elif info.t_ns <= t1_ns:
                    if info.secret:
                        return True
                else:
                    break
            return before is not None and before.secret

    def focus_at(self, t_ns: int) -> FocusInfo | None:
        """The object focused at ``t_ns``: the last change stamped at or before it."""
        with self._lock:
            found: FocusInfo | None = None
            for info in self._history:
                if info.t_ns > t_ns:
                    break
                found = info
            return found

    def secret_at(self, t_ns: int, slack_ns: int = SLACK_NS) -> bool | None:
        """Whether a keystroke at ``t_ns`` must be treated as typed into a secret field.

        True if the focus was secret at any moment in ``[t_ns, t_ns + slack_ns]`` (events are
        stamped after the fact, so a change up to ``slack_ns`` later may have happened before the
        keystroke). None while it is too early to tell (``t_ns + slack_ns`` is still in the
        future); the caller then holds the keystroke and asks again.
        """
        if time.monotonic_ns() < t_ns + slack_ns:
            return None
        return self.secret_between(t_ns, t_ns + slack_ns)

    # ------------------------------------------------------------------ reader threads
    def _read_stdout(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self._handle_line(line.rstrip("\n"))
        except (OSError, ValueError):  # stream closed under us during close()
            pass
        finally:
            self._finished()

    def _handle_line(self, line: str) -> None:
        if not line.strip():
            return
        with self._lock:
            self._raw.append(line)
        try:
            record = json.loads(line)
        except ValueError:
            log.warning("AT-SPI agent printed a line that is not JSON; ignored")
            return
        if not isinstance(record, dict):
            return
        if record.get("ready"):
            self._ready.set()
            return
        if "error" in record:
            self.error = f"AT-SPI agent: {record['error']}"
            return
        if "t_ns" not in record:
            return
        info = FocusInfo.from_record(record)
        with self._lock:
            self.current = info
            self._history.append(info)
            cutoff = info.t_ns - HISTORY_NS
            # keep the last change before the cutoff: it is the state at the cutoff
            while len(self._history) > 1 and self._history[1].t_ns <= cutoff:
                self._history.popleft()
        try:
            self.on_change(info)
        except Exception:
            log.exception("FocusWatcher on_change callback failed")

    def _read_stderr(self, stream: IO[str]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in stream:
                if line.strip():
                    self._stderr.append(line.rstrip("\n"))

    def _finished(self) -> None:
        proc = self._proc
        if not self._closing and proc is not None:
            code = proc.wait()
            if len(self._threads) > 1:
                self._threads[1].join(1.0)  # collect the rest of stderr
            tail = " | ".join(list(self._stderr)[-5:]) or "no message"
            self.error = self.error or f"the AT-SPI agent exited (status {code}): {tail}"
            log.warning("%s", self.error)
        self._ready.set()

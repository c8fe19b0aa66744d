"""The running recorder's control socket: pause, resume, status, forget, stop.

One Unix stream socket in the data home (mode 0600, so only the worker's own account can reach
it). A request is one JSON line, the answer is one JSON line. The recorder answers from its own
thread, so a command takes effect within a few milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from demotrace.errors import ControlError

SOCKET_NAME = "control.sock"
Handler = Callable[[dict[str, Any]], dict[str, Any]]


def socket_path(home: Path) -> Path:
    return Path(home) / SOCKET_NAME


class ControlServer:
    """Serves requests on ``home/control.sock`` from one daemon thread."""

    def __init__(self, home: Path, handler: Handler) -> None:
        self.path = socket_path(home)
        self.handler = handler
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        if self.path.exists():
            try:  # a live recorder answers; a stale socket from a crash is replaced
                call(self.path.parent, {"cmd": "ping"}, timeout=0.5)
            except ControlError:
                self.path.unlink(missing_ok=True)
            else:
                raise ControlError(f"Another recorder already answers on {self.path}.")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        sock.listen(8)
        sock.settimeout(0.5)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self.path.unlink(missing_ok=True)
            self._sock = None

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    request = json.loads(_read_line(conn) or "{}")
                    answer = self.handler(request if isinstance(request, dict) else {})
                except Exception as exc:  # an answer, never a dead control thread
                    answer = {"ok": False, "error": str(exc)}
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps(answer).encode() + b"\n")


def _read_line(conn: socket.socket) -> str:
    buf = b""
    while b"\n" not in buf and len(buf) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0].decode("utf-8", "replace")


def call(home: Path, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to the recorder of ``home``; :class:`ControlError` if none answers."""
    path = socket_path(home)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        line = _read_line(sock)
    except (FileNotFoundError, ConnectionRefusedError):
        raise ControlError(
            f"No recorder is running for {Path(home)} (no answer on {path}). Start one with "
            "`demotrace record`."
        ) from None
    except OSError as exc:
        raise ControlError(f"The recorder at {path} did not answer: {exc}.") from None
    finally:
        sock.close()
    if not line:
        raise ControlError(f"The recorder at {path} closed the connection without answering.")
    answer = json.loads(line)
    if not answer.get("ok", True):
        raise ControlError(f"The recorder refused: {answer.get('error')}.")
    return answer

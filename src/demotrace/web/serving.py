"""Serving a page on this machine only: a loopback socket bound first, then uvicorn on it."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from demotrace.errors import DemotraceError, cannot_listen


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackServer:
    """An app bound to a loopback port (0: a free one), ready to :meth:`run`.

    ``make_app(port)`` builds the app once the port is known (it checks Host headers against it);
    ``what`` names the page in errors and ``why_local`` says why it may not listen elsewhere.
    """

    def __init__(
        self,
        make_app: Callable[[int], FastAPI],
        *,
        what: str,
        why_local: str,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "",
    ) -> None:
        if not is_loopback(host):
            raise DemotraceError(
                f"The {what} only listens on this machine (127.0.0.1 or localhost), not on "
                f"{host!r}: {why_local}"
            )
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
        except OSError as exc:
            self.socket.close()
            raise DemotraceError(cannot_listen(what, host, port, exc, any_port=True)) from exc
        self.port = self.socket.getsockname()[1]
        name = "[::1]" if family == socket.AF_INET6 else "127.0.0.1"
        self.url = f"http://{name}:{self.port}/{path}"
        config = uvicorn.Config(make_app(self.port), log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)

    def run(self) -> None:
        """Serve until :meth:`stop` (or Ctrl-C when run in the main thread)."""
        with self.socket:
            self.server.run(sockets=[self.socket])

    def stop(self) -> None:
        self.server.should_exit = True

"""A loopback TCP proxy that cuts connections at random points, for retry and idempotency tests.

Client and server talk through :class:`ChaosProxy` as they would directly. HTTP/1.1 keeps one
connection open for many requests, so the proxy looks at each *exchange* (the client's bytes up to
the server's answer) and draws, with probability ``drop_rate``, how to cut it:

- ``before_request``: the client's first bytes are swallowed and the connection cut, so the
  server never sees the request;
- ``mid_request``: the request is cut after a random number of bytes;
- ``after_request``: the whole request reached the server and it answered, but the answer is
  thrown away and the connection cut (the case that tests idempotency: the server did the work,
  the client cannot know);
- ``mid_response``: the answer is cut after a random number of bytes.

The proxy knows nothing of HTTP: a new exchange starts when the client sends after the server
has answered. Draws come from one seeded generator, in the order exchanges start; ``script``
names how the first exchanges go (a cut from :data:`CUTS`, or None: through) before the draws.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import random
import threading
from collections.abc import Sequence

CUTS = ("before_request", "mid_request", "after_request", "mid_response")


@dataclasses.dataclass
class _Plan:
    where: str  # "up" (client to server) or "down"
    after: int  # bytes of this exchange in that direction forwarded before the cut


@dataclasses.dataclass(eq=False)  # kept in a set: hashed by identity
class _Link:
    """One client connection and its server connection."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    plan: _Plan | None
    answering: bool = False  # the server has started answering the current request
    up: int = 0
    down: int = 0
    cut: bool = False


_SCRIPTED: dict[str | None, _Plan | None] = {
    None: None,
    "before_request": _Plan("up", 0),
    "mid_request": _Plan("up", 1),
    "after_request": _Plan("down", 0),
    "mid_response": _Plan("down", 1),
}


class ChaosProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port``, cutting some exchanges."""

    def __init__(
        self,
        target_port: int,
        drop_rate: float = 0.2,
        seed: int = 1,
        *,
        max_request_cut: int = 256 * 1024,
        max_response_cut: int = 400,
        script: Sequence[str | None] = (),
    ) -> None:
        self.target_port = target_port
        self.drop_rate = drop_rate
        self.max_request_cut = max_request_cut
        self.max_response_cut = max_response_cut
        self.rng = random.Random(seed)
        self.script = list(script)
        self.counts: dict[str, int] = dict.fromkeys(
            ("connections", "exchanges", "dropped", "refused", *CUTS), 0
        )
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="chaos-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._server is None:
            raise RuntimeError(f"the chaos proxy did not start: {self._error!r}")
        self.port: int = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle --------------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._accept, "127.0.0.1", 0)
            )
        except Exception as exc:  # reported by __init__
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        """Stop listening, cut every open connection and stop the proxy's thread."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            with contextlib.suppress(Exception):
                future.result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self._loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for link in list(self._links):
            self._abort(link)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def __enter__(self) -> ChaosProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- forwarding -------------------------------------------------------------------------------
    def _draw(self) -> _Plan | None:
        """How the exchange now starting is cut, if it is."""
        self.counts["exchanges"] += 1
        if self.script:
            return _SCRIPTED[self.script.pop(0)]
        if self.rng.random() >= self.drop_rate:
            return None
        if self.rng.random() < 0.6:  # in the request (or, when it is shorter, after it)
            if self.rng.random() < 0.25:
                return _Plan("up", 0)
            return _Plan("up", int(math.exp(self.rng.uniform(0, math.log(self.max_request_cut)))))
        if self.rng.random() < 0.6:  # the answer is lost whole
            return _Plan("down", 0)
        return _Plan("down", self.rng.randint(1, self.max_response_cut))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.counts["connections"] += 1
        try:
            try:
                s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                self.counts["refused"] += 1
                writer.transport.abort()
                return
            link = _Link(writer, s_writer, self._draw())
            try:
                self._links.add(link)
                await asyncio.gather(self._pump_up(reader, link), self._pump_down(s_reader, link))
            finally:
                self._links.discard(link)
                self._abort(link)
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)

    async def _pump_up(self, reader: asyncio.StreamReader, link: _Link) -> None:
        """Client to server."""
        while not link.cut:
            data = await _read(reader)
            if not data:
                _close(link.server)
                return
            if link.answering:  # the client sends again: a new exchange on this connection
                link.answering, link.up, link.down = False, 0, 0
                link.plan = self._draw()
            plan = link.plan
            if plan is not None and plan.where == "up" and link.up + len(data) > plan.after:
                keep = plan.after - link.up
                if keep:
                    await _send(link.server, data[:keep])
                self._cut(link, "mid_request" if link.up + keep else "before_request")
                return
            link.up += len(data)
            await _send(link.server, data)

    async def _pump_down(self, reader: asyncio.StreamReader, link: _Link) -> None:
        """Server to client."""
        while not link.cut:
            data = await _read(reader)
            if not data:
                _close(link.client)
                return
            link.answering = True
            plan = link.plan
            if plan is not None and plan.where == "up":  # the request was shorter than the cut
                self._cut(link, "after_request")
                return
            if plan is not None and link.down + len(data) > plan.after:
                keep = plan.after - link.down
                if keep:
                    await _send(link.client, data[:keep])
                self._cut(link, "mid_response" if link.down + keep else "after_request")
                return
            link.down += len(data)
            await _send(link.client, data)

    def _cut(self, link: _Link, how: str) -> None:
        if link.cut:
            return
        self.counts["dropped"] += 1
        self.counts[how] += 1
        self._abort(link)

    @staticmethod
    def _abort(link: _Link) -> None:
        link.cut = True
        link.client.transport.abort()
        link.server.transport.abort()


async def _read(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.read(64 * 1024)
    except (ConnectionError, OSError):
        return b""


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    if writer.transport.is_closing():
        return
    writer.write(data)
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        writer.close()

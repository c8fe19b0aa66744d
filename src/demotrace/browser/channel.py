"""The recorder's local channel for the browser extension (docs/browser.md, "The channel").

An HTTP endpoint on 127.0.0.1 that only the paired extension can use: the Host must be the
loopback address and port (DNS rebinding), a POST must carry the extension's ``Origin`` (a web
page's fetch carries its own), every request the pairing token; bodies, event counts and every
field are bounded and strictly typed. Accepted events are handed, with ``t_ns`` on the
monotonic clock, to ``on_events`` on the server's thread; nothing else is kept.

    channel = BrowserChannel(home, on_events=recorder.browser_events, status=lambda: "recording")
    channel.start()      # BrowserError when the port is taken or there is no pairing
    ...
    channel.stop()
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic import ValidationError

from demotrace.browser import BrowserError
from demotrace.browser.events import validate_events
from demotrace.browser.pairing import Pairing, load_pairing, pairing_path
from demotrace.errors import DemotraceError

MAX_BODY = 64 * 1024
MAX_EVENTS = 200
_HANDLER_WINDOW = 10_000  # handler_us percentiles are over the latest this many events
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
log = logging.getLogger(__name__)


def to_monotonic_ns(t_ms: float, mono_ns: int, wall_ns: int) -> int:
    """An epoch time in ms (the browser's clock) on the monotonic clock, given one reading of
    both clocks: ``mono - (wall - t)``."""
    return mono_ns - (wall_ns - round(t_ms * 1e6))


def _refusal(status: int, message: str) -> Response:
    return Response(
        json.dumps({"error": message}),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


class _Refused(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


class BrowserChannel:
    """The channel over the pairing in ``home`` (``browser.json``).

    ``on_events(list[dict])`` gets each accepted batch: the validated fields of every event
    (``None`` where a field is absent) plus ``t_ns``. ``status()`` is the recorder's state for
    ``/v1/hello`` ("recording", "paused", ...). ``port`` overrides the pairing's (0: any free
    port, for tests). ``start()`` raises :class:`BrowserError` when there is no pairing or the
    port is taken.
    """

    def __init__(
        self,
        home: Path,
        on_events: Callable[[list[dict[str, Any]]], None],
        status: Callable[[], str] | None = None,
        *,
        port: int | None = None,
    ) -> None:
        self.home = Path(home)
        self.on_events = on_events
        self.status = status
        self._port_override = port
        self.pairing: Pairing | None = None
        self._pairing_stamp: tuple[int, int] | None = None
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._accepted = 0
        self._batches = 0
        self._hellos = 0
        self._refused: Counter[str] = Counter()
        self._last_event_ns: int | None = None
        self._last_refusal: str | None = None
        self._handler_us: deque[int] = deque(maxlen=_HANDLER_WINDOW)

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/`` once started."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        from demotrace.web.serving import LoopbackServer

        if self._server is not None:
            return
        pairing = load_pairing(self.home)
        if pairing is None:
            raise BrowserError(
                f"There is no browser pairing in {self.home}. Run `demotrace browser pair` and "
                "open the link it prints in the browser that has the extension."
            )
        self.pairing = pairing
        self._pairing_stamp = self._stamp()
        port = pairing.port if self._port_override is None else self._port_override
        try:
            server = LoopbackServer(
                self._app,
                what="browser channel",
                why_local="only the browser extension on this computer may send to it",
                port=port,
            )
        except DemotraceError as exc:
            raise BrowserError(
                f"The browser channel cannot listen on 127.0.0.1:{port}: another program "
                "(perhaps another recorder) already uses that port. Stop it, or move the "
                "pairing to a free port with `demotrace browser pair --port N` and open the new "
                "link in the browser."
            ) from exc
        self.port = server.port
        thread = threading.Thread(target=server.run, name="browser-channel", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.stop()
                raise BrowserError(f"The browser channel on 127.0.0.1:{port} did not start.")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop serving; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.stop()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> BrowserChannel:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ figures
    @property
    def stats(self) -> dict[str, Any]:
        """Events accepted, batches, hellos, refusals by reason, the last event's ``t_ns`` and
        the median / p95 / max of ``handler_us`` over the latest 10,000 events that had one."""
        with self._lock:
            values = sorted(self._handler_us)
            out: dict[str, Any] = {
                "accepted": self._accepted,
                "batches": self._batches,
                "hellos": self._hellos,
                "refused": dict(self._refused),
                "last_refusal": self._last_refusal,
                "last_event_ns": self._last_event_ns,
            }
        out["handler_us"] = (
            {
                "n": len(values),
                "p50": values[len(values) // 2],
                "p95": values[min(len(values) - 1, int(len(values) * 0.95))],
                "max": values[-1],
            }
            if values
            else {"n": 0, "p50": None, "p95": None, "max": None}
        )
        return out

    # ------------------------------------------------------------------ pairing
    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = pairing_path(self.home).stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _current_pairing(self) -> Pairing | None:
        """The pairing, read again when ``browser.json`` changed (``pair --new`` takes effect at
        once; a new port only at the next start). None when it was removed or is damaged."""
        stamp = self._stamp()
        if stamp != self._pairing_stamp:
            try:
                pairing = load_pairing(self.home) if stamp is not None else None
            except BrowserError:
                pairing = None
            self.pairing, self._pairing_stamp = pairing, stamp
        return self.pairing

    # ------------------------------------------------------------------ HTTP
    def _app(self, port: int) -> FastAPI:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

        @app.api_route("/{path:path}", methods=_METHODS)
        async def handle(request: Request, path: str) -> Response:
            try:
                return await self._handle(request, port)
            except _Refused as no:
                with self._lock:
                    self._refused[no.reason] += 1
                    self._last_refusal = no.reason
                return _refusal(no.status, no.message)

        return app

    async def _handle(self, request: Request, port: int) -> Response:
        host = request.headers.get("host", "")
        if host not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            raise _Refused(421, "host", f"Only requests to 127.0.0.1:{port} are answered.")
        if request.method == "OPTIONS":
            raise _Refused(403, "preflight", "No cross-origin requests.")
        pairing = self._current_pairing()
        if pairing is None:
            raise _Refused(401, "unpaired", "This computer has no browser pairing any more.")
        origin = request.headers.get("origin")
        allowed = {f"chrome-extension://{i}" for i in pairing.extension_ids}
        # Chromium sends no Origin on an extension's GET; every POST carries one.
        if origin not in allowed and not (origin is None and request.method == "GET"):
            raise _Refused(403, "origin", "Only the paired browser extension may send here.")
        auth = request.headers.get("authorization", "")
        want = f"Bearer {pairing.token}"
        if not hmac.compare_digest(auth.encode(), want.encode()):
            raise _Refused(401, "token", "Wrong or missing pairing token: pair the browser again.")
        path = request.url.path
        if path == "/v1/hello" and request.method == "GET":
            return self._hello()
        if path == "/v1/events" and request.method == "POST":
            return await self._events(request)
        if path in ("/v1/hello", "/v1/events"):
            raise _Refused(405, "method", f"{request.method} is not allowed on {path}.")
        raise _Refused(404, "path", "Not found.")

    def _hello(self) -> Response:
        state = "listening"
        if self.status is not None:
            try:
                state = str(self.status())
            except Exception:  # the recorder's state is advice for a badge, never fatal
                state = "unknown"
        with self._lock:
            self._hellos += 1
        return Response(
            json.dumps({"recorder": True, "state": state}),
            media_type="application/json",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    async def _events(self, request: Request) -> Response:
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise _Refused(415, "content_type", "The body must be application/json.")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise _Refused(413, "size", f"The body must be at most {MAX_BODY} bytes.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise _Refused(413, "size", f"The body must be at most {MAX_BODY} bytes.")
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Refused(422, "json", "The body is not JSON.") from exc
        if (
            not isinstance(raw, dict)
            or set(raw) != {"events"}
            or not isinstance(raw["events"], list)
        ):
            raise _Refused(422, "invalid", 'The body must be {"events": [...]}.')
        if len(raw["events"]) > MAX_EVENTS:
            raise _Refused(413, "count", f"At most {MAX_EVENTS} events per request.")
        try:
            events = validate_events(raw["events"])
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            loc = [str(p) for p in first["loc"]]
            where = f"event {loc[0]}" + (f" ({loc[1]})" if len(loc) > 1 else "")
            field = ".".join(loc[2:]) or "type"
            raise _Refused(422, "invalid", f"Invalid {where}, {field}: {first['msg']}.") from exc
        mono, wall = time.monotonic_ns(), time.time_ns()
        for ev in events:
            ev["t_ns"] = to_monotonic_ns(ev["t"], mono, wall)
        if events:
            try:
                self.on_events(events)
            except Exception:
                log.exception("the recorder failed on browser events")
                raise _Refused(
                    500, "recorder", "The recorder could not take these events."
                ) from None
        with self._lock:
            self._accepted += len(events)
            self._batches += 1
            for ev in events:
                if ev["handler_us"] is not None:
                    self._handler_us.append(ev["handler_us"])
            if events:
                self._last_event_ns = max(ev["t_ns"] for ev in events)
        return Response(status_code=204, headers={"Cache-Control": "no-store"})

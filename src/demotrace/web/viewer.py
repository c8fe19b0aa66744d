"""The replay viewer: a read-only local web app over a built dataset (``docs/viewer.md``).

:func:`create_app` indexes the dataset once (episode, step -> file, row group, row) from its small
columns, never loading screenshots; a page of step metadata or one observation is then read from
its row group alone. The player shows the raw observation and draws the step's action over it in
the browser (SVG) from the shapes each step carries (:mod:`demotrace.web.overlay`); ``/frame/``
serves the same drawing burnt into a PNG by Pillow, for a download or where no script runs.
:func:`serve` runs it on a loopback address; requests addressed to any other host are refused
(DNS rebinding). Another app (the collector's admin pages) can mount it under a path prefix, with
its own authentication and with the people who recorded the episodes hidden.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from demotrace.dataset.formats.common import Dataset
from demotrace.errors import DatasetError, DemotraceError
from demotrace.web.overlay import overlay, render_frame
from demotrace.web.serving import LoopbackServer

HERE = Path(__file__).parent
#: Steps per page of ``/api/episode/{id}/steps`` (default and most).
PAGE = 200
MAX_PAGE = 1000
EPISODES_PER_PAGE = 200

_LOOPBACK_NAMES = ("127.0.0.1", "localhost")


# -- reading -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """Consecutive steps of one episode stored in consecutive rows of one file."""

    file: int
    row: int  # first row in the file
    step: int  # first step index
    count: int


class DatasetIndex:
    """Where every step lives, built from the ``episode_id`` and ``step_index`` columns."""

    def __init__(self, root: Path) -> None:
        dataset = Dataset(root)  # checks the folder, meta/info.json and its version
        self.root = root
        self.info = dataset.info
        self.episodes = dataset.episodes
        self.files = dataset.data_files
        self._lock = threading.Lock()
        self._group_starts: list[list[int]] = []
        self._segments: dict[str, list[Segment]] = {}
        try:
            for number, path in enumerate(self.files):
                self._index_file(number, path)
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(root, exc) from exc
        for own in self._segments.values():
            own.sort(key=lambda s: s.step)
        self._meta = functools.lru_cache(maxsize=16)(self._read_meta)
        self._images = functools.lru_cache(maxsize=3)(self._read_images)
        self._meta_columns = [n for n in pq.read_schema(self.files[0]).names if n != "observation"]

    def _index_file(self, number: int, path: Path) -> None:
        parquet = pq.ParquetFile(path)
        starts, total = [], 0
        for group in range(parquet.metadata.num_row_groups):
            starts.append(total)
            total += parquet.metadata.row_group(group).num_rows
        self._group_starts.append(starts)
        table = parquet.read(columns=["episode_id", "step_index"])
        episodes = table.column("episode_id").to_pylist()
        steps = table.column("step_index").to_pylist()
        last: Segment | None = None
        for row, (episode, step) in enumerate(zip(episodes, steps, strict=True)):
            own = self._segments.setdefault(episode, [])
            if last is not None and own and own[-1] is last and step == last.step + last.count:
                last = own[-1] = Segment(number, last.row, last.step, last.count + 1)
            else:
                last = Segment(number, row, step, 1)
                own.append(last)

    def n_steps(self, episode_id: str) -> int:
        """Steps of an episode (0 for one without steps); KeyError for an unknown episode."""
        if episode_id not in self.episodes:
            raise KeyError(episode_id)
        own = self._segments.get(episode_id)
        return own[-1].step + own[-1].count if own else 0

    def locate(self, episode_id: str, step: int) -> tuple[int, int, int]:
        """(file, row group, row in the group) of a step; KeyError if it does not exist."""
        own = self._segments.get(episode_id, []) if episode_id in self.episodes else []
        i = bisect.bisect_right([s.step for s in own], step) - 1
        if i < 0 or step >= own[i].step + own[i].count:
            raise KeyError((episode_id, step))
        segment = own[i]
        row = segment.row + step - segment.step
        starts = self._group_starts[segment.file]
        group = bisect.bisect_right(starts, row) - 1
        return segment.file, group, row - starts[group]

    def steps(self, episode_id: str, offset: int, limit: int) -> list[dict[str, Any]]:
        """Metadata (no image) of the steps ``offset`` to ``offset + limit`` that exist, each
        with its ``overlay`` (what the player draws over it; made once, kept with the row)."""
        end = min(offset + limit, self.n_steps(episode_id))
        places = [self.locate(episode_id, step) for step in range(offset, end)]
        rows: list[dict[str, Any]] = []
        i = 0
        while i < len(places):  # runs of consecutive rows of one row group
            file, group, first = places[i]
            j = i + 1
            while j < len(places) and places[j] == (file, group, first + j - i):
                j += 1
            for cached in self._meta(file, group).rows(first, first + j - i):
                if "overlay" not in cached:
                    cached["overlay"] = overlay(cached)
                rows.append(dict(cached))
            i = j
        return rows

    def step(self, episode_id: str, step: int) -> dict[str, Any]:
        file, group, row = self.locate(episode_id, step)
        return dict(self._meta(file, group).rows(row, row + 1)[0])

    def observation(self, episode_id: str, step: int) -> bytes | None:
        """The stored image bytes of a step's observation (None if it has no frame)."""
        file, group, row = self.locate(episode_id, step)
        value = self._images(file, group)[row].as_py()
        return value.get("bytes") if value else None

    def _read_meta(self, file: int, group: int) -> _Rows:
        with self._lock:
            table = self._read(file, group, self._meta_columns)
        # times as integers (microseconds since the epoch, UTC), made ISO 8601 text row by row
        # in _Rows: Arrow's strftime costs more, and nanosecond times made Python objects by
        # to_pylist come out as pandas Timestamps, slower still
        times = []
        for i, field in enumerate(table.schema):
            if pa.types.is_timestamp(field.type):
                us = pc.cast(table.column(i), pa.timestamp("us", tz="UTC"), safe=False)
                table = table.set_column(i, field.name, us.cast(pa.int64()))
                times.append(field.name)
        return _Rows(table, times)

    def _read_images(self, file: int, group: int) -> pa.ChunkedArray:
        with self._lock:
            return self._read(file, group, ["observation"]).column(0)

    def _read(self, file: int, group: int, columns: list[str]) -> pa.Table:
        try:
            return pq.ParquetFile(self.files[file]).read_row_group(group, columns=columns)
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(self.root, exc) from exc


class _Rows:
    """One row group's metadata: an Arrow table, turned into Python rows only where asked (a
    page of steps that starts deep inside a group converts its part, not the whole group)."""

    def __init__(self, table: pa.Table, times: list[str]) -> None:
        self.table = table
        self.times = times  # columns of microseconds since the epoch, to show as ISO 8601
        self._rows: list[dict[str, Any] | None] = [None] * table.num_rows
        self._lock = threading.Lock()

    def rows(self, start: int, stop: int) -> list[dict[str, Any]]:
        """The rows ``start`` to ``stop`` (the same dicts on every call: callers copy)."""
        with self._lock:
            if any(row is None for row in self._rows[start:stop]):
                fresh = self.table.slice(start, stop - start).to_pylist()
                for i, row in enumerate(fresh, start):
                    if self._rows[i] is None:
                        for key in self.times:
                            if row[key] is not None:
                                row[key] = _iso(row[key])
                        self._rows[i] = _parse_action(row)
            return self._rows[start:stop]  # type: ignore[return-value]


def _damaged(root: Path, exc: object) -> DatasetError:
    return DatasetError(
        f"The dataset {root} cannot be read ({exc}). It is damaged or incomplete; build it "
        "again with `demotrace build`."
    )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _iso(microseconds: int) -> str:
    """ISO 8601 in UTC, to the microsecond, of a time in microseconds since the epoch."""
    return (_EPOCH + dt.timedelta(microseconds=microseconds)).isoformat(timespec="microseconds")


def _parse_action(row: dict[str, Any]) -> dict[str, Any]:
    try:
        row["action"] = json.loads(row["action"])
    except (TypeError, ValueError):
        row["action"] = {"type": row.get("action_type"), "invalid": row.get("action")}
    return row


# -- the app -----------------------------------------------------------------------------------
#: What ``hide_people`` leaves out: who recorded an episode and when (``docs/viewer.md``).
HIDDEN_EPISODE_FIELDS = ("device", "session", "episode_index", "t_start", "t_end")
HIDDEN_STEP_FIELDS = ("device", "session", "seq_start", "seq_end", "t_start", "t_end")
HIDDEN_NOTE = (
    "People hidden: no device, session, date or clock time is shown; episodes go by a name "
    "derived from their id, in that order, and times are seconds since the episode's start."
)


def create_app(
    dataset: Path,
    port: int | None = None,
    *,
    base: str | None = None,
    check_host: bool = True,
    hide_people: bool = False,
    home_link: tuple[str, str] | None = None,
) -> FastAPI:
    """The viewer app over ``dataset``.

    ``base`` is the path prefix the app is served under (``"/admin/builds/b-1/view"``); every
    URL on its pages and in its script carries it. None takes it from the request's
    ``root_path``, which ``Mount(prefix, app)`` in a parent app (and ``uvicorn --root-path``)
    sets, so a mounted viewer needs no ``base``. With ``check_host`` only requests whose Host
    header is a loopback name with ``port`` (any port when None) are answered (:func:`serve`
    passes the port it bound); an app that authenticates its requests itself passes False.
    ``hide_people`` leaves out who recorded each episode and when (device, session, dates and
    clock times; see :data:`HIDDEN_EPISODE_FIELDS`, :data:`HIDDEN_STEP_FIELDS`), and names
    episodes by :func:`episode_alias` instead of their id, which contains the device.
    ``home_link`` (href, text) adds a link back to the parent app in the header.
    """
    if base is not None:
        base = base.rstrip("/")
        if base and not base.startswith("/"):
            raise ValueError(f"base must be empty or a path starting with '/', not {base!r}")
    index = DatasetIndex(Path(dataset))
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["duration"] = _duration
    app = FastAPI(title="demotrace viewer", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.port = port
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # Episodes by the name the pages use (their id, or an alias that does not show the device).
    if hide_people:
        names = _aliases(list(index.episodes), json.dumps(index.info, sort_keys=True).encode())
        listed = sorted(index.episodes, key=names.__getitem__)
    else:
        names = {eid: eid for eid in index.episodes}
        listed = list(index.episodes)
    by_name = {name: eid for eid, name in names.items()}

    def prefix(request: Request) -> str:
        return base if base is not None else request.scope.get("root_path", "").rstrip("/")

    def route_path(request: Request) -> str:
        """The path inside this app, whether it is mounted or not."""
        path, root = request.scope["path"], request.scope.get("root_path", "")
        return path[len(root) :] if root and path.startswith(root) else path

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[..., Any]) -> Response:
        host = request.headers.get("host", "")
        name, _, got = host.rpartition(":")
        want = app.state.port
        wrong_port = want is not None and got != str(want)
        if check_host and (name not in (*_LOOPBACK_NAMES, "[::1]") or wrong_port):
            where = f"http://127.0.0.1:{want}/" if want is not None else "http://127.0.0.1:PORT/"
            return PlainTextResponse(
                f"This demotrace viewer only answers requests addressed to {where} (this one was "
                f"addressed to {host!r}), so that no other web site can read the dataset through "
                "your browser. Open the address `demotrace view` printed.",
                status_code=421,
            )
        response: Response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'"
        )
        return response

    def render(
        request: Request, template: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        page = {
            "base": prefix(request),
            "hide_people": hide_people,
            "hidden_note": HIDDEN_NOTE,
            "home_link": home_link,
        }
        return templates.TemplateResponse(
            request, template, page | context, status_code=status_code
        )

    def not_found(what: str) -> HTTPException:
        return HTTPException(status_code=404, detail=f"{what} is not in the dataset {index.root}.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if route_path(request).startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        context = {"status": exc.status_code, "message": exc.detail}
        return render(request, "error.html", context, status_code=exc.status_code)

    @app.exception_handler(DemotraceError)
    async def dataset_error(request: Request, exc: DemotraceError) -> Response:
        return render(request, "error.html", {"status": 500, "message": str(exc)}, 500)

    def resolve(name: str) -> str:
        """The episode id of the episode the pages call ``name``; 404 if there is none."""
        if name not in by_name:
            raise not_found(f"The episode {name!r}")
        return by_name[name]

    def shown(episode: dict[str, Any]) -> dict[str, Any]:
        """An episode's row as the pages show it."""
        row = dict(episode, episode_id=names[episode["episode_id"]])
        if hide_people:
            for field in HIDDEN_EPISODE_FIELDS:
                row.pop(field, None)
        return row

    @app.get("/", response_class=HTMLResponse)
    def episodes(request: Request, page: int = Query(0, ge=0)) -> Response:
        pages = max(1, math.ceil(len(listed) / EPISODES_PER_PAGE))
        chunk = listed[page * EPISODES_PER_PAGE : (page + 1) * EPISODES_PER_PAGE]
        context = {
            "episodes": [shown(index.episodes[eid]) for eid in chunk],
            "info": index.info,
            "page": page,
            "pages": pages,
            "root": index.root,
            "total": len(listed),
        }
        return render(request, "index.html", context)

    @app.get("/episode/{name}", response_class=HTMLResponse)
    def episode(request: Request, name: str, step: int = Query(0, ge=0)) -> Response:
        episode_id = resolve(name)
        n = index.n_steps(episode_id)
        context = {
            "episode": shown(index.episodes[episode_id]),
            "n_steps": n,
            "step": min(step, max(n - 1, 0)),
            "page_size": PAGE,
        }
        return render(request, "episode.html", context)

    @app.get("/api/episode/{name}/steps")
    def steps(
        name: str,
        offset: int = Query(0, ge=0),
        limit: int = Query(PAGE, ge=1, le=MAX_PAGE),
    ) -> Response:
        episode_id = resolve(name)
        total = index.n_steps(episode_id)
        try:
            rows = index.steps(episode_id, offset, limit)
        except KeyError:
            raise not_found(f"A step of the episode {name!r}") from None
        start = index.episodes[episode_id].get("t_start")
        for row in rows:
            row["t"] = _seconds_since(row.get("t_start"), start)
            row["episode_id"] = name
            if hide_people:
                for field in HIDDEN_STEP_FIELDS:
                    row.pop(field, None)
        body = {"episode_id": name, "offset": offset, "limit": limit, "total": total, "steps": rows}
        # plain JSON values already: encoded at once by orjson (a tenth of json's time for a
        # page of 200 steps), without FastAPI's walk over every value
        return Response(orjson.dumps(body), media_type="application/json")

    def frame_step(name: str, step_index: int) -> tuple[str, dict[str, Any]]:
        episode_id = resolve(name)
        try:
            return episode_id, index.step(episode_id, step_index)
        except KeyError:
            raise not_found(f"Step {step_index} of the episode {name!r}") from None

    @app.get("/frame/{name}/{step_index:int}.png")
    def frame(name: str, step_index: int) -> Response:
        episode_id, step = frame_step(name, step_index)
        png = render_frame(index.observation(episode_id, step_index), step)
        return Response(
            png, media_type="image/png", headers={"Cache-Control": "private, max-age=600"}
        )

    @app.get("/raw/{name}/{step_index:int}")
    def raw(name: str, step_index: int) -> Response:
        episode_id, _ = frame_step(name, step_index)
        data = index.observation(episode_id, step_index)
        if not data:
            raise not_found(f"An observation of step {step_index} of {name!r}")
        return Response(data, media_type=_image_type(data))

    return app


def episode_alias(key: bytes, episode_id: str, length: int = 12) -> str:
    """The name ``hide_people`` gives an episode: ``e-`` and hex digits of a keyed hash of its
    id (the key is the dataset's ``meta/info.json``). It is stable for a build, shows neither
    the device nor the session, and sorting by it mixes everyone's episodes. It is not a
    secret: whoever holds the dataset can compute it."""
    digest = hmac.new(key, episode_id.encode(), hashlib.sha256).hexdigest()
    return f"e-{digest[:length]}"


def _aliases(episode_ids: list[str], key: bytes) -> dict[str, str]:
    names = {eid: episode_alias(key, eid) for eid in episode_ids}
    if len(set(names.values())) < len(names):  # 48 bits collide about never; then use all 256
        names = {eid: episode_alias(key, eid, 64) for eid in episode_ids}
    return names


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = round(seconds)
    minutes = f"{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 3600}:{minutes}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _seconds_since(iso: str | None, start: dt.datetime | None) -> float | None:
    if iso is None or start is None:
        return None
    return round((dt.datetime.fromisoformat(iso) - start).total_seconds(), 3)


def _image_type(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return "application/octet-stream"


# -- serving -----------------------------------------------------------------------------------
class ViewerServer(LoopbackServer):
    """The viewer bound to a loopback port (0: a free one), ready to :meth:`run`."""

    def __init__(self, dataset: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(
            lambda bound: create_app(dataset, bound),
            what="viewer",
            why_local="it has no login, so anyone who could reach it could read the dataset. "
            "To look at a dataset on another machine, copy it or use an SSH tunnel.",
            host=host,
            port=port,
        )


def serve(
    dataset: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the viewer over ``dataset`` until Ctrl-C; ``on_ready(url)`` once it listens."""
    server = ViewerServer(Path(dataset), host, port)
    if on_ready is not None:
        on_ready(server.url)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn has shut down; Ctrl-C is the way out
        server.run()

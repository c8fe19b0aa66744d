"""The worker's own page (``demotrace ui``): status, pause, notice, recordings, replay, deletion,
export.

A local web app over the data home: it talks to the running recorder through its control socket
and reads the local store; it never reaches the network. Every request must carry the random
token of this start in its path (``/t/<token>/...``), be addressed to the loopback address and
port it listens on (DNS rebinding), and a POST must come from the page's own origin (cross-site
requests). See ``docs/ui.md``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import json
import math
import re
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
import urllib.parse
import weakref
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from demotrace.control import call
from demotrace.errors import ControlError, DemotraceError
from demotrace.paths import store_dir
from demotrace.web.overlay import render_frame
from demotrace.web.serving import LoopbackServer

HERE = Path(__file__).parent
#: Steps per page of a session's timeline.
STEPS_PER_PAGE = 40
THUMB_W = 320
#: How often a recorder on an enrolled machine syncs by default (``record --sync-every``).
SYNC_EVERY_MIN = 5
STATES = {
    "recording": "Recording",
    "paused": "Paused",
    "out_of_scope": "Out of scope (the window in front is not recorded)",
    "secret": "Private (a password or secret is being typed: nothing is kept)",
    "stopped": "Stopping",
}


class UiError(Exception):
    """A refusal or failure shown to the worker as a page with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def form_data(request: Request) -> dict[str, str]:
    """A posted urlencoded form (without python-multipart): each field's last value."""
    body = (await request.body())[:65536].decode("utf-8", "replace")
    return {k: v[-1] for k, v in urllib.parse.parse_qs(body, keep_blank_values=True).items()}


Posted = Annotated[dict[str, str], Depends(form_data)]


def _field(form: dict[str, str], name: str, kind: type, *, required: bool = True) -> Any:
    raw = form.get(name, "").strip()
    if not raw:
        if required:
            raise UiError(f"The request is missing the field {name!r}.", 400)
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise UiError(f"The field {name!r} has a bad value {raw!r}.", 400) from None
    if isinstance(value, float) and not (math.isfinite(value) and value > 0):
        raise UiError(f"The field {name!r} must be a positive number, not {raw!r}.", 400)
    return value


# -- the recorder and the store ---------------------------------------------------------------
def recorder_status(home: Path) -> dict[str, Any] | None:
    """The running recorder's status, or None when none answers."""
    try:
        return call(home, {"cmd": "status"}, timeout=2)
    except ControlError:
        return None


def _open_store(home: Path) -> Any:
    from demotrace.store.db import Store

    return Store(store_dir(home), create=False)


def _wall(ns: int | None) -> str:
    if not ns:
        return ""
    return dt.datetime.fromtimestamp(ns / 1e9).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _clock(value: Any) -> str:
    """Local time of day of a timestamp (datetime or pandas Timestamp), or ""."""
    if value is None or not hasattr(value, "timestamp"):
        return ""
    return dt.datetime.fromtimestamp(value.timestamp()).strftime("%H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = max(0, round(seconds))
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def _until(ns: int | None) -> str:
    """Local date and time of ``ns`` rounded up to the minute (by then it has happened)."""
    if ns is None:
        return ""
    minute = 60_000_000_000
    seconds = -(-ns // minute) * 60
    return dt.datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M")


# -- uploads ----------------------------------------------------------------------------------
def _enrollment(home: Path) -> tuple[Any, str | None]:
    """(the enrolment or None, a problem with its file or None)."""
    from demotrace.errors import SyncError
    from demotrace.sync.enrollment import Enrollment

    try:
        return Enrollment.load(home), None
    except SyncError as exc:
        return None, str(exc)


def session_upload(plan: Any, enrolled: bool) -> dict[str, Any]:
    """A session's upload state: ``state`` (none, empty, waiting, ready, partial, uploaded),
    ``label`` for the page and ``until_ns``, when its first waiting event may leave."""
    n, m = plan.uploaded, plan.events
    until = _until(plan.next_wall_ns)
    out: dict[str, Any] = {"until_ns": plan.next_wall_ns if enrolled and plan.waiting else None}
    if not enrolled:
        if n == 0:
            return {**out, "state": "none", "label": "not uploaded (no collector)"}
        done = "uploaded" if n == m else f"partly uploaded ({n:,} of {m:,} events)"
        return {
            **out,
            "state": "uploaded" if n == m else "partial",
            "label": f"{done} earlier; not enrolled now, so nothing more leaves",
        }
    if m == 0:
        return {**out, "state": "empty", "label": "nothing to upload (no events)"}
    if n == m:
        return {**out, "state": "uploaded", "label": "uploaded"}
    later = f"waiting for review until {until}" if plan.waiting else ""
    if n == 0 and not plan.eligible:
        return {**out, "state": "waiting", "label": later}
    parts = [f"partly uploaded ({n:,} of {m:,} events)" if n else "not uploaded yet"]
    if plan.eligible:
        parts.append(f"the next sync sends {plan.eligible:,} events")
    if plan.waiting:
        parts.append(f"{plan.waiting:,} {later}")
    return {**out, "state": "partial" if n else "ready", "label": "; ".join(parts)}


def deletion_state(reason: str, sent_ns: int | None, enrolled: bool) -> dict[str, str]:
    """Whether a deletion has reached the collector: ``state`` (sent, waiting, none, local) and
    ``label``."""
    from demotrace.sync.client import _FORWARDED

    if reason not in _FORWARDED:
        return {"state": "local", "label": "needs no sending: the collector has its own retention"}
    if sent_ns:
        return {"state": "sent", "label": f"reached the collector at {_wall(sent_ns)}"}
    if enrolled:
        return {"state": "waiting", "label": "waiting for the next sync to reach the collector"}
    return {"state": "none", "label": "needs no sending: this machine has no collector"}


def deletion_rows(store: Any, enrolled: bool, after: int = 0, limit: int = 20) -> list[dict]:
    """The deletions log with ids above ``after``, newest first, each with its collector state."""
    out = []
    for r in store.db.execute(
        "SELECT id, t_wall_ns, what, reason, events, frames, tiles, sent_ns FROM deletions "
        "WHERE id > ? ORDER BY id DESC LIMIT ?",
        (after, limit),
    ):
        row = dict(zip(("id", "t_wall_ns", "what", "reason", "events", "frames", "tiles",
                        "sent_ns"), r, strict=True))  # fmt: skip
        row["when"] = _wall(row["t_wall_ns"])
        row["collector"] = deletion_state(row["reason"], row["sent_ns"], enrolled)
        out.append(row)
    return out


def upload_state(home: Path, store: Any, review_hours: float) -> dict[str, Any]:
    """What has reached the collector and what waits, computed as the sync client decides it
    (:func:`demotrace.sync.client.upload_plan`), with SQL aggregates only. ``sessions`` maps a
    session id to :func:`session_upload`. ``store`` may be None (nothing recorded yet)."""
    from demotrace.sync.client import _FORWARDED, review_period_ns, upload_plan

    enrollment, problem = _enrollment(home)
    enrolled = enrollment is not None
    out: dict[str, Any] = {
        "enrolled": enrolled,
        "problem": problem,
        "collector": enrollment.url if enrolled else None,
        "device": enrollment.device if enrolled else None,
        "enrolled_at": _wall(enrollment.enrolled_ns) if enrolled else "",
        "review_hours": review_hours,
        "sync_every_min": SYNC_EVERY_MIN,
        "events": 0,
        "uploaded": 0,
        "uploaded_sessions": 0,
        "complete_sessions": 0,
        "eligible": 0,
        "waiting": 0,
        "next_ns": None,
        "next": "",
        "last_upload_ns": None,
        "last_upload": "",
        "deletions_waiting": 0,
        "sessions": {},
    }
    if store is None:
        return out
    now = time.time_ns()
    review = review_period_ns(review_hours)
    for s in store.sessions():
        plan = upload_plan(store.db, s, review, now)
        out["sessions"][plan.session] = session_upload(plan, enrolled)
        out["events"] += plan.events
        out["uploaded"] += plan.uploaded
        out["uploaded_sessions"] += plan.uploaded > 0
        out["complete_sessions"] += plan.events > 0 and plan.uploaded == plan.events
        out["eligible"] += plan.eligible
        out["waiting"] += plan.waiting
        if plan.waiting and (out["next_ns"] is None or plan.next_wall_ns < out["next_ns"]):
            out["next_ns"] = plan.next_wall_ns
    out["next"] = _until(out["next_ns"])
    out["last_upload_ns"] = store.db.execute("SELECT MAX(t_wall_ns) FROM uploads").fetchone()[0]
    out["last_upload"] = _wall(out["last_upload_ns"])
    marks = ", ".join("?" for _ in _FORWARDED)
    out["deletions_waiting"] = store.db.execute(
        f"SELECT COUNT(*) FROM deletions WHERE sent_ns IS NULL AND reason IN ({marks})",
        _FORWARDED,
    ).fetchone()[0]
    return out


def upload_summary(up: dict[str, Any]) -> str:
    """The upload state in one paragraph of plain text (the export's summary)."""
    if not up["enrolled"]:
        why = f" {up['problem']}" if up["problem"] else ""
        return (
            f"This machine is not enrolled with a collector: nothing leaves this computer.{why} "
            "Enrolling takes a code from the collector's admin: `demotrace enroll URL CODE`."
        )
    text = [
        f"Enrolled with the collector {up['collector']} as device {up['device']} "
        f"since {up['enrolled_at']}.",
        f"Last upload: {up['last_upload']}." if up["last_upload"] else "Nothing uploaded yet.",
        f"Uploaded: {up['uploaded']:,} of {up['events']:,} events kept here "
        f"({up['uploaded_sessions']} sessions).",
    ]
    if up["waiting"]:
        text.append(
            f"{up['waiting']:,} events wait for the review period ({up['review_hours']:g} "
            f"hours); the earliest may leave at {up['next']}."
        )
    if up["eligible"]:
        text.append(f"{up['eligible']:,} events are past it and go with the next sync.")
    if up["deletions_waiting"]:
        text.append(f"{up['deletions_waiting']} deletions wait for the next sync.")
    return " ".join(text)


def session_rows(store: Any, live: int | None) -> list[dict[str, Any]]:
    """Each session with its start, duration, status and counts, newest first."""
    rows = []
    for s in store.sessions():
        sid = int(s["id"])
        counts = store.counts(sid)
        end = s["ended_mono_ns"]
        if end is None:
            last = store.db.execute("SELECT MAX(t_ns) FROM events WHERE session = ?", (sid,))
            end = last.fetchone()[0]
        seconds = (end - s["started_mono_ns"]) / 1e9 if end is not None else None
        rows.append(
            {
                "id": sid,
                "start": _wall(s["started_wall_ns"]),
                "duration": _duration(seconds),
                "status": "recording now" if sid == live else s["status"],
                "live": sid == live,
                "events": sum(counts.values()),
                "clicks": counts.get("button", 0) // 2,
                "texts": counts.get("text", 0),
                "frames": counts.get("frame", 0),
                "gaps": counts.get("gap", 0),
            }
        )
    rows.reverse()
    return rows


class Steps:
    """A session's steps, reduced on the fly from the store (cached until its events change)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[tuple[int, int], dict[str, Any]]] = {}

    def get(self, session: int) -> dict[str, Any]:
        """``{"steps": [step dicts], "images": [bytes|None], "skipped": reason|None}``."""
        from demotrace.dataset.build import BuildConfig, build_session
        from demotrace.dataset.sources import LocalStoreSource

        with self._lock:
            source = LocalStoreSource(store_dir(self.home))
            try:
                row = source.store.db.execute(
                    "SELECT COUNT(*), COALESCE(MAX(seq), -1) FROM events WHERE session = ?",
                    (session,),
                ).fetchone()
                key = (int(row[0]), int(row[1]))
                hit = self._cache.get(session)
                if hit is not None and hit[0] == key:
                    return hit[1]
                ref = next((r for r in source.sessions() if r["session"] == session), None)
                if ref is None:
                    raise UiError(f"There is no session {session} on this machine.", 404)
                out = build_session(source, ref, BuildConfig())
            finally:
                source.close()
            steps: list[dict[str, Any]] = []
            images: list[bytes | None] = []
            if out.steps is not None:
                images = [
                    (o or {}).get("bytes") for o in out.steps.column("observation").to_pylist()
                ]
                for step in out.steps.drop_columns(["observation"]).to_pylist():
                    try:
                        step["action"] = json.loads(step["action"])
                    except (TypeError, ValueError):
                        step["action"] = {"type": step.get("action_type"), "invalid": True}
                    steps.append(step)
            value = {"steps": steps, "images": images, "skipped": out.skipped}
            self._cache[session] = (key, value)
            if len(self._cache) > 4:
                self._cache.pop(next(iter(self._cache)))
            return value


#: Built copies of sessions kept at once for the player (each holds a session's screenshots).
PLAY_COPIES = 2


@dataclass
class Replay:
    """One session built as a dataset in the private temporary folder, with its viewer app."""

    session: int
    key: tuple[int, ...]  # what every deletion changes (:meth:`Replays.fingerprint`)
    top: int  # the session's last seq when it was built
    folder: Path
    episodes: list[str]
    app: Any


class Replays:
    """Sessions built for the replay viewer (``/play/<session>/``), each on its own.

    A copy holds the worker's screenshots, so it lives in a private temporary folder (0700,
    outside the data home) that goes when the page stops (``close``; at the latest at exit), and
    it is checked against the store on every request: a copy that may hold something deleted
    since it was built is dropped and built again. Builds of one session take turns.
    """

    def __init__(self, home: Path, prefix: str) -> None:
        self.home = home
        self.prefix = prefix
        self._lock = threading.Lock()  # guards everything below
        self._building: dict[int, threading.Lock] = {}
        self._copies: dict[int, Replay] = {}  # least recently used first
        self._generation = 0  # drop_all() counts up: a build started before it is not kept
        self._made = 0
        self.root = self._new_root()

    def _new_root(self) -> Path:
        root = Path(tempfile.mkdtemp(prefix="demotrace-play-"))  # private to this user: 0700
        root.chmod(0o700)
        weakref.finalize(self, shutil.rmtree, root, True)  # at the latest when Python exits
        return root

    def fingerprint(self, session: int) -> tuple[tuple[int, ...], int] | None:
        """(what any deletion changes, the session's last seq); None when the session is gone.

        Every deletion (this page, ``demotrace forget``, retention, a withdrawal) adds a row to
        the deletions log in the same transaction, and recording only appends events with a
        higher seq. So the log's size and last id, and the session's first seq, change whenever
        something a copy may hold is deleted; a higher last seq only means newer events. These
        are index look-ups, with no count over an hours-long session's events.
        """
        from demotrace.errors import StoreError

        try:
            store = _open_store(self.home)
        except StoreError:
            return None
        try:
            row = store.db.execute(
                "SELECT (SELECT COUNT(*) FROM sessions WHERE id = ?), "
                "(SELECT MIN(seq) FROM events WHERE session = ?), "
                "(SELECT MAX(seq) FROM events WHERE session = ?), "
                "(SELECT COUNT(*) FROM deletions), (SELECT COALESCE(MAX(id), 0) FROM deletions)",
                (session, session, session),
            ).fetchone()
        finally:
            store.close()
        if not row[0]:
            return None
        first = -1 if row[1] is None else int(row[1])
        last = -1 if row[2] is None else int(row[2])
        return (first, int(row[3]), int(row[4])), last

    def get(self, session: int, fresh: bool) -> Replay:
        """The session's copy, built again first when something was deleted since, or (with
        ``fresh``: a page, not a frame or the steps API) when new events were recorded."""
        with self._lock:
            turn = self._building.setdefault(session, threading.Lock())
        with turn:
            for _attempt in range(3):
                now = self.fingerprint(session)
                if now is None:
                    self.drop(session)
                    raise UiError(
                        f"Session {session} is not on this machine (any more: it may have been "
                        "deleted), so there is nothing to play.",
                        404,
                    )
                key, top = now
                with self._lock:
                    copy = self._copies.get(session)
                    if copy is not None and copy.key == key and (copy.top == top or not fresh):
                        self._copies[session] = self._copies.pop(session)  # used last
                        return copy
                    generation = self._generation
                self.drop(session)
                copy = self._build(session, key, top)
                after = self.fingerprint(session)
                with self._lock:
                    kept = after is not None and after[0] == key
                    if kept and generation == self._generation:
                        self._copies[session] = copy
                        old = [self._copies.pop(s) for s in list(self._copies)[:-PLAY_COPIES]]
                    else:
                        old, copy = [copy], None
                for replay in old:
                    shutil.rmtree(replay.folder, ignore_errors=True)
                if copy is not None:
                    return copy
            raise UiError(
                f"Session {session} changed while it was being prepared for playing (something "
                "was deleted). Open it again.",
                409,
            )

    def _build(self, session: int, key: tuple[int, ...], top: int) -> Replay:
        import pyarrow.parquet as pq

        from demotrace.dataset.build import build
        from demotrace.web.viewer import create_app as viewer_app

        with self._lock:
            if not self.root.is_dir():  # removed by close() or a cleaner of temporary files
                self.root = self._new_root()
            self._made += 1
            folder = self.root / f"session-{session}-{self._made}"
        base = f"{self.prefix}/play/{session}"
        try:
            info = build(store_dir(self.home), folder, sessions=[session])
            if not info["counts"]["episodes"]:
                skipped = info.get("skipped") or []
                if skipped:
                    raise UiError(f"Session {session} cannot be played: {skipped[0]['reason']}.")
                raise UiError(f"Session {session} has no steps to play (yet).", 404)
            table = pq.read_table(folder / "meta" / "episodes.parquet", columns=["episode_id"])
            episodes = [str(e) for e in table.column("episode_id").to_pylist()]
            app = viewer_app(
                folder,
                base=base,
                check_host=False,  # the page's own guard checks the token, Host and Origin
                home_link=(f"{self.prefix}/session/{session}", f"session {session}"),
            )
        except UiError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        except Exception as exc:
            shutil.rmtree(folder, ignore_errors=True)
            why = str(exc) if isinstance(exc, DemotraceError) else f"{type(exc).__name__}: {exc}"
            raise UiError(
                f"Session {session} could not be prepared for playing: {why}. Its steps are "
                "still on the session page.",
                500,
            ) from None
        return Replay(session, key, top, folder, episodes, app)

    def drop(self, session: int) -> None:
        with self._lock:
            copy = self._copies.pop(session, None)
        if copy is not None:
            shutil.rmtree(copy.folder, ignore_errors=True)

    def drop_all(self) -> None:
        """Remove every copy (after a deletion), and keep none whose build is under way."""
        with self._lock:
            self._generation += 1
            copies = list(self._copies.values())
            self._copies.clear()
        for copy in copies:
            shutil.rmtree(copy.folder, ignore_errors=True)

    def close(self) -> None:
        """Remove the temporary folder with every copy (the page stops)."""
        self.drop_all()
        shutil.rmtree(self.root, ignore_errors=True)


def export_zip(home: Path, folder: Path, policy: Any) -> Path:
    """A zip of a consistent copy of the store's database and a JSON summary, in ``folder``."""
    from demotrace.store.db import DB_NAME

    store = _open_store(home)
    try:
        up = upload_state(home, store, policy.review_hours)
        per_session = up.pop("sessions")
        copy = folder / DB_NAME
        target = sqlite3.connect(copy)
        try:
            store.db.backup(target)
        finally:
            target.close()
        summary = {
            "what": "Everything demotrace holds about you on this machine.",
            "exported_at": _wall(time.time_ns()),
            "data_home": str(home),
            "policy_in_force": {"name": policy.name, "version": policy.version},
            "upload": {**up, "text": upload_summary(up)},
            "sessions": [
                {
                    **s,
                    "counts": store.counts(int(s["id"])),
                    "upload": per_session.get(int(s["id"]), {}).get("label"),
                }
                for s in store.sessions()
            ],
            "consent": store.consent_history(),
            "deletions": [
                {**d, "collector": d["collector"]["label"]}
                for d in reversed(deletion_rows(store, up["enrolled"], limit=-1))
            ],
            "files": {DB_NAME: "a copy of the local store (SQLite): sessions, events, screenshots"},
        }
    finally:
        store.close()
    path = folder / "demotrace-my-data.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(copy, DB_NAME)
        zf.writestr("summary.json", json.dumps(summary, indent=2, default=str))
    copy.unlink()
    return path


# -- the app ----------------------------------------------------------------------------------
def _host_ok(host: str, port: int | None) -> bool:
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        got = rest[1:] if rest.startswith(":") else ""
        name = f"[{name}]"
    else:
        name, _, got = host.partition(":")
    if name not in ("127.0.0.1", "localhost", "[::1]"):
        return False
    return port is None or got == str(port)


def create_app(home: Path, token: str, port: int | None = None) -> FastAPI:
    """The worker's page over the data home ``home``. Every path starts with ``/t/<token>/``;
    requests addressed to another host than loopback (with ``port`` when given) get 421."""
    home = Path(home)
    prefix = f"/t/{token}"
    templates = Jinja2Templates(directory=HERE / "templates")
    replays = Replays(home, prefix)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            replays.close()  # the built copies hold screenshots: none outlives the page

    app = FastAPI(
        title="demotrace", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.port = port
    app.state.replays = replays
    app.mount(f"{prefix}/static", StaticFiles(directory=HERE / "static"), name="static")
    steps_cache = Steps(home)

    def page(request: Request, name: str, code: int = 200, **context: Any) -> Response:
        context.setdefault("base", prefix)
        return templates.TemplateResponse(request, name, context, status_code=code)

    def error_page(request: Request, status: int, message: str) -> Response:
        return page(request, "ui_error.html", status, status_code=status, message=message)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[..., Any]) -> Response:
        host = request.headers.get("host", "")
        if not _host_ok(host, app.state.port):
            return Response(
                f"This page only answers requests addressed to 127.0.0.1:{app.state.port} (this "
                f"one was addressed to {host!r}), so that no web site can reach your recordings "
                "through your browser. Open the address `demotrace ui` printed.",
                status_code=421,
                media_type="text/plain",
            )
        path = request.url.path
        got = path[3:].split("/", 1)[0] if path.startswith("/t/") else ""
        if not hmac.compare_digest(got.encode(), token.encode()):
            return Response(
                "This page needs the secret address `demotrace ui` printed (it changes at every "
                "start). Open that address; a link without it is refused.",
                status_code=403,
                media_type="text/plain",
            )
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin != f"http://{host}":
                return Response(
                    "Refused: this change did not come from this page (its Origin is "
                    f"{origin!r}). Use the buttons on the page itself.",
                    status_code=403,
                    media_type="text/plain",
                )
        response: Response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; object-src 'none'; form-action 'self'; "
            "frame-ancestors 'none'"
        )
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if exc.status_code != 404 else "There is no such page here."
        return error_page(request, exc.status_code, str(message))

    @app.exception_handler(UiError)
    async def ui_error(request: Request, exc: UiError) -> Response:
        return error_page(request, exc.status, str(exc))

    @app.exception_handler(DemotraceError)
    async def demotrace_error(request: Request, exc: DemotraceError) -> Response:
        return error_page(request, 500, str(exc))

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception) -> Response:
        return error_page(
            request, 500, f"Something went wrong: {type(exc).__name__}: {exc}. Nothing was changed "
            "unless the page said so; try again, or use the `demotrace` commands."
        )  # fmt: skip

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(str(e.get("loc", ["?"])[-1]) for e in exc.errors())
        return error_page(request, 400, f"The request is missing or has a bad value: {fields}.")

    router = APIRouter(prefix=prefix)

    def policy() -> Any:
        from demotrace.privacy.consent import load_in_force

        return load_in_force(None, home)

    def store_or_none() -> Any:
        from demotrace.errors import StoreError

        try:
            return _open_store(home)
        except StoreError:
            return None

    def have_store() -> bool:
        store = store_or_none()
        if store is None:
            return False
        store.close()
        return True

    @router.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        status = recorder_status(home)
        pol = policy()
        store = store_or_none()
        n_sessions, consent = 0, "none"
        try:
            up = upload_state(home, store, pol.review_hours)
            if store is not None:
                from demotrace.privacy.consent import consent_state

                n_sessions, consent = len(store.sessions()), consent_state(store, pol)
        finally:
            if store is not None:
                store.close()
        state = status["state"] if status else None
        return page(
            request,
            "ui_home.html",
            status=status,
            state=state or "not_running",
            state_label=STATES.get(state or "", "Not running: nothing is being recorded"),
            policy=pol,
            consent=consent,
            n_sessions=n_sessions,
            upload=up,
            home=home,
        )

    @router.post("/pause")
    def pause(form: Posted) -> Response:
        request: dict[str, Any] = {"cmd": "pause"}
        minutes = _field(form, "minutes", float, required=False)
        if minutes:
            request["seconds"] = float(minutes) * 60
        control(request)
        return RedirectResponse(f"{prefix}/", status_code=303)

    @router.post("/resume")
    def resume() -> Response:
        control({"cmd": "resume"})
        return RedirectResponse(f"{prefix}/", status_code=303)

    def control(request: dict[str, Any]) -> dict[str, Any]:
        try:
            return call(home, request, timeout=60)
        except ControlError as exc:
            raise UiError(str(exc), 409) from None

    @router.get("/notice", response_class=HTMLResponse)
    def notice(request: Request) -> Response:
        from demotrace.privacy.consent import consent_state
        from demotrace.privacy.notice import notice_dict

        pol = policy()
        history: list[dict[str, Any]] = []
        state = "none"
        store = store_or_none()
        if store is not None:
            try:
                history = store.consent_history()
                state = consent_state(store, pol)
            finally:
                store.close()
        for h in history:
            h["when"] = _wall(h["t_wall_ns"])
        return page(
            request,
            "ui_notice.html",
            notice=notice_dict(pol),
            policy=pol,
            consent=state,
            history=list(reversed(history)),
        )

    @router.get("/sessions", response_class=HTMLResponse)
    def sessions(request: Request) -> Response:
        status = recorder_status(home)
        pol = policy()
        store = store_or_none()
        rows: list[dict[str, Any]] = []
        deletions: list[dict[str, Any]] = []
        try:
            up = upload_state(home, store, pol.review_hours)
            if store is not None:
                rows = session_rows(store, status.get("session") if status else None)
                deletions = deletion_rows(store, up["enrolled"])
        finally:
            if store is not None:
                store.close()
        for row in rows:
            row["upload"] = up["sessions"].get(row["id"])
        return page(
            request,
            "ui_sessions.html",
            sessions=rows,
            running=status is not None,
            deletions=deletions,
            upload=up,
        )

    def session_info(sid: int) -> tuple[dict[str, Any], int | None]:
        status = recorder_status(home)
        live = status.get("session") if status else None
        store = store_or_none()
        if store is None:
            raise UiError("Nothing has been recorded on this machine yet.", 404)
        try:
            rows = {r["id"]: r for r in session_rows(store, live)}
        finally:
            store.close()
        if sid not in rows:
            raise UiError(
                f"There is no session {sid} on this machine (it may have been deleted).", 404
            )
        return rows[sid], live

    @router.get("/session/{sid}", response_class=HTMLResponse)
    def session(
        request: Request, sid: int, page_no: int = Query(0, ge=0, alias="page")
    ) -> Response:
        info, _live = session_info(sid)
        data = steps_cache.get(sid)
        steps = data["steps"]
        pages = max(1, math.ceil(len(steps) / STEPS_PER_PAGE))
        page_no = min(page_no, pages - 1)
        first = page_no * STEPS_PER_PAGE
        shown = []
        for i, step in enumerate(steps[first : first + STEPS_PER_PAGE], start=first):
            a = step["action"]
            shown.append(
                {
                    "index": i,
                    "episode": step["episode_id"],
                    "type": step["action_type"],
                    "summary": _summary(a),
                    "app": step.get("app") or "",
                    "title": step.get("title") or "",
                    "url": step.get("url") or "",
                    "when": _clock(step.get("t_start")),
                    "seq_start": step["seq_start"],
                    "seq_end": step["seq_end"],
                    "has_image": data["images"][i] is not None,
                }
            )
        return page(
            request,
            "ui_session.html",
            session=info,
            steps=shown,
            total=len(steps),
            skipped=data["skipped"],
            page=page_no,
            pages=pages,
            thumb_w=THUMB_W,
        )

    @router.get("/frame/{sid}/{index}.png")
    def frame(sid: int, index: int, full: int = Query(0)) -> Response:
        data = steps_cache.get(sid)
        if not 0 <= index < len(data["steps"]):
            raise UiError(f"Session {sid} has no step {index} (any more).", 404)
        # a thumbnail twice as wide as shown: sharp on high-density screens
        width = None if full else THUMB_W * 2
        png = render_frame(data["images"][index], data["steps"][index], max_width=width)
        return Response(png, media_type="image/png")

    def last_deletion() -> int:
        """The id of the newest row of the deletions log (0: none), to find the new ones."""
        store = store_or_none()
        if store is None:
            return 0
        try:
            return int(store.db.execute("SELECT COALESCE(MAX(id), 0) FROM deletions").fetchone()[0])
        finally:
            store.close()

    def done(
        request: Request, what: str, counts: dict[str, Any], back: str, after: int
    ) -> Response:
        """The page after a deletion: what went, and whether the collector has been told."""
        steps_cache._cache.clear()
        replays.drop_all()
        enrollment, _problem = _enrollment(home)
        logged: list[dict[str, Any]] = []
        store = store_or_none()
        if store is not None:
            try:
                logged = deletion_rows(store, enrollment is not None, after=after)
            finally:
                store.close()
        return page(
            request,
            "ui_done.html",
            what=what,
            events=counts.get("events", 0),
            frames=counts.get("frames", 0),
            tiles=counts.get("tiles", 0),
            back=back,
            enrollment=enrollment,
            logged=logged,
            sync_every_min=SYNC_EVERY_MIN,
        )

    @router.post("/forget/step", response_class=HTMLResponse)
    def forget_step(request: Request, form: Posted) -> Response:
        session = _field(form, "session", int)
        seq_start, seq_end = _field(form, "seq_start", int), _field(form, "seq_end", int)
        session_info(session)
        status = recorder_status(home)
        if status is not None:
            live = status.get("session")
            which = "this session" if live == session else f"session {live}"
            raise UiError(
                f"Single steps cannot be deleted while the recorder runs (it is recording "
                f"{which}, and new screenshots may be built on the ones this step uses). Pause "
                "and stop recording first (`demotrace stop` or Ctrl-C), then delete the step. "
                "A whole session or the last minutes can be deleted at any time.",
                409,
            )
        steps = steps_cache.get(session)["steps"]
        if not any(s["seq_start"] == seq_start and s["seq_end"] == seq_end for s in steps):
            raise UiError(f"Session {session} has no such step (any more).", 404)
        after = last_deletion()
        store = _open_store(home)
        try:
            counts = store.forget_span(session, seq_start, seq_end)
        finally:
            store.close()
        back = f"{prefix}/session/{session}"
        return done(request, f"a step of session {session}", counts, back, after)

    def forget(request: dict[str, Any]) -> dict[str, Any]:
        """Through the running recorder (it drops what it holds too), else in the store."""
        try:
            counts = call(home, {"cmd": "forget", **request}, timeout=60)
        except ControlError:
            store = _open_store(home)
            try:
                counts = store.forget(
                    since_wall_ns=request.get("since_wall_ns"),
                    sessions=request.get("sessions", ()),
                )
            finally:
                store.close()
        return counts

    @router.post("/forget/session", response_class=HTMLResponse)
    def forget_session(request: Request, form: Posted) -> Response:
        session = _field(form, "session", int)
        session_info(session)
        after = last_deletion()
        counts = forget({"sessions": [session]})
        return done(request, f"session {session}", counts, f"{prefix}/sessions", after)

    @router.post("/forget/recent", response_class=HTMLResponse)
    def forget_recent(request: Request, form: Posted) -> Response:
        minutes = _field(form, "minutes", float)
        if not have_store():
            raise UiError("Nothing has been recorded on this machine yet.", 404)
        after = last_deletion()
        counts = forget({"since_wall_ns": time.time_ns() - int(minutes * 60e9)})
        what = f"the last {minutes:g} minutes"
        return done(request, what, counts, f"{prefix}/sessions", after)

    @router.get("/export")
    def export() -> Response:
        if not have_store():
            raise UiError("Nothing has been recorded on this machine yet: there is no data.", 404)
        folder = Path(tempfile.mkdtemp(prefix=".export-", dir=home))
        try:
            path = export_zip(home, folder, policy())
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(
            path,
            media_type="application/zip",
            filename="demotrace-my-data.zip",
            background=BackgroundTask(shutil.rmtree, folder, True),
        )

    async def play(scope: Scope, receive: Receive, send: Send) -> None:
        """``/play/<session>/...``: the replay viewer over the session's built copy."""
        mount = scope.get("root_path", "")  # .../t/<token>/play
        path = scope["path"]
        rest = path[len(mount) :] if path.startswith(mount) else path
        number, slash, tail = rest.lstrip("/").partition("/")
        if not number:
            await RedirectResponse(f"{prefix}/sessions", status_code=303)(scope, receive, send)
            return
        if not re.fullmatch(r"0|[1-9][0-9]{0,17}", number):  # one spelling per session
            raise UiError("There is no such page here.", 404)
        session = int(number)
        base = f"{mount}/{session}"
        if not slash:
            await RedirectResponse(f"{base}/", status_code=307)(scope, receive, send)
            return
        fresh = tail == "" or tail.startswith("episode/")  # a page, not a frame or the API
        replay = await run_in_threadpool(replays.get, session, fresh)
        if tail == "" and len(replay.episodes) == 1:
            to = f"{base}/episode/{urllib.parse.quote(replay.episodes[0], safe='')}"
            await RedirectResponse(to, status_code=303)(scope, receive, send)
            return
        await replay.app({**scope, "root_path": base}, receive, send)

    app.mount(f"{prefix}/play", play)
    app.include_router(router)
    return app


def _summary(a: dict[str, Any]) -> str:
    kind = a.get("type")
    if kind == "click":
        button = " ".join([*a.get("modifiers", []), a.get("button", "left")])
        return f"{button} click x{a.get('count', 1)}"
    if kind == "type":
        return f"type {a.get('text', '')!r}"
    if kind == "key":
        return f"key {'+'.join(a.get('keys', []))}"
    if kind == "scroll":
        return f"scroll dx={a.get('dx', 0)} dy={a.get('dy', 0)}"
    if kind == "switch_app":
        return f"switch to {a.get('app')}"
    if kind == "select_option":
        return f"select {a.get('value')!r}"
    return str(kind)


# -- serving ----------------------------------------------------------------------------------
class UiServer(LoopbackServer):
    """The worker's page bound to a loopback port (0: a free one), ready to :meth:`run`."""

    def __init__(self, home: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = secrets.token_urlsafe(24)
        super().__init__(
            lambda bound: create_app(Path(home), self.token, bound),
            what="worker's page",
            why_local="it shows and deletes your recordings, so nothing else may reach it.",
            host=host,
            port=port,
            path=f"t/{self.token}/",
        )


def serve(home: Path, port: int = 0, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the worker's page until Ctrl-C; ``on_ready(url)`` once it listens."""
    server = UiServer(Path(home), port=port)
    if on_ready is not None:
        on_ready(server.url)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()

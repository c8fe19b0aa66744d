"""Upload what is past the worker's review period to the collector; carry deletions there.

The outbox is the local store itself: events above a session's upload mark, and deletion rows
not yet accepted by the collector (``deletions.sent_ns``). A sync round:

1. fetches the collector's policy; a new version is installed and needs consent;
2. sends the deletions the worker made (``forget``), before anything else;
3. per session: PUT its description, ask the collector how far it holds the session (the
   collector is the truth: a reply lost on the way costs nothing), then upload events in segments
   of at most :data:`SEGMENT_ROWS`: first the tiles and frames the segment shows that the
   collector lacks, then the segment, with its SHA-256.

Every request is retried with exponential backoff and full jitter on what retrying can fix
(connection errors, timeouts, 5xx, 429); on anything else it stops with the collector's message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from demotrace.collector.wire import blob_batch, content_digest, events_parquet
from demotrace.dataset.schema import EVENT_SCHEMA
from demotrace.errors import SyncError
from demotrace.lake import FrameExporter
from demotrace.model import Kind
from demotrace.sync.enrollment import Enrollment

SEGMENT_ROWS = 100_000
BATCH_BYTES = 8 * 1024 * 1024
BATCH_ITEMS = 4000
_FORWARDED = ("forget", "withdraw")  # local retention is local; the collector has its own


# -- enrolment ------------------------------------------------------------------------------------
def enroll(home: Path, url: str, code: str, label: str | None = None) -> Enrollment:
    """Join a collector with a one-time code; the device credential is kept in the data home."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise SyncError(f"{url!r} is not a collector URL; give one like https://collector:8600.")
    # The device chooses its secret and sends only its hash: the credential never travels, and
    # a retry after a lost answer is recognised as the same enrolment.
    secret = secrets.token_urlsafe(32)
    key = hashlib.sha256(secret.encode()).hexdigest()
    with Transport(url, None, attempts=4) as t:
        body = t.call(
            "POST", "/v1/enroll", json={"code": code, "label": label, "key_sha256": key}
        ).json()
    enrolled = Enrollment(url, body["device"], f"{body['device']}.{secret}", time.time_ns())
    enrolled.save(home)
    return enrolled


# -- HTTP with retries ----------------------------------------------------------------------------
class Retryable(Exception):
    """One attempt failed in a way a later attempt can fix."""


@dataclasses.dataclass
class Backoff:
    base_s: float = 0.5
    cap_s: float = 60.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return random.uniform(0, min(self.cap_s, self.base_s * 2**attempt))


class Transport:
    """An HTTP client on one collector that retries what is retryable."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        attempts: int = 8,
        deadline_s: float | None = None,
        backoff: Backoff | None = None,
        timeout_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)
        self.attempts = attempts
        self.deadline = time.monotonic() + deadline_s if deadline_s else None
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.retries = 0

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (), **kw: Any
    ) -> httpx.Response:
        """The response (2xx, or a status in ``ok``), retrying connection errors, 5xx and 429;
        :class:`SyncError` for any other answer, or when the attempts or the deadline run out."""
        last = ""
        for attempt in range(self.attempts):
            wait = None
            try:
                r = self.client.request(method, path, **kw)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if r.is_success or r.status_code in ok:
                    return r
                if r.status_code == 429 or r.status_code >= 500:
                    last = f"HTTP {r.status_code}"
                    with contextlib.suppress(ValueError):
                        wait = float(r.headers.get("retry-after", ""))
                else:
                    raise SyncError(_refusal(self.url, method, path, r))
            if attempt + 1 == self.attempts:
                break
            pause = self.backoff.delay(attempt) if wait is None else wait
            if self.deadline is not None and time.monotonic() + pause > self.deadline:
                break
            self.retries += 1
            self.sleep(pause)
        raise SyncError(
            f"The collector at {self.url} did not take {method} {path} ({last}). Nothing is "
            "lost: what is not uploaded stays in the local store and goes on the next sync."
        )


def _refusal(url: str, method: str, path: str, r: httpx.Response) -> str:
    try:
        said = r.json().get("error") or r.text
    except ValueError:
        said = r.text[:300]
    hint = {
        401: " Enroll this machine again with `demotrace enroll URL CODE`.",
        403: "" if "admin" in said else " Ask the collector's admin.",
        413: " The collector's size limit is lower than this upload.",
    }.get(r.status_code, "")
    return f"The collector at {url} refused {method} {path} (HTTP {r.status_code}): {said}{hint}"


# -- what is due ----------------------------------------------------------------------------------
def review_period_ns(review_hours: float) -> int:
    """The policy's review period in nanoseconds, as every upload decision counts it."""
    return int(review_hours * 3600e9)


@dataclasses.dataclass
class UploadPlan:
    """Where one session stands with the collector, from the local store alone.

    An event may leave once it is older than the review period (its wall time plus the period
    is at or before ``now``). Uploads are contiguous runs of seq above the upload mark, so an
    event past the review period still waits behind an earlier one that is not."""

    session: int
    events: int  # rows in the local store
    uploaded: int  # at or below the upload mark: the collector holds them
    eligible: int  # the contiguous run above the mark past the review period: the next sync
    waiting: int  # the rest: inside the review period, or behind a row that is
    mark: int  # the upload mark (seq), -1 before the first upload
    mark_wall_ns: int | None  # when the collector last confirmed the mark
    cutoff_t: int  # rows with t_ns at or below this are past the review period
    next_wall_ns: int | None  # when the first waiting row leaves the review period


def upload_plan(
    db: sqlite3.Connection, session: dict[str, Any], review_ns: int, now_ns: int
) -> UploadPlan:
    """The :class:`UploadPlan` of one session (a row of ``Store.sessions()``) at wall time
    ``now_ns``: three indexed queries, no loop over events. The :class:`Syncer` decides with it
    what to upload; ``demotrace ui`` shows it."""
    sid = int(session["id"])
    wall0, mono0 = int(session["started_wall_ns"]), int(session["started_mono_ns"])
    cutoff_t = mono0 + (now_ns - review_ns - wall0)
    row = db.execute("SELECT seq, t_wall_ns FROM uploads WHERE session = ?", (sid,)).fetchone()
    mark, mark_wall = (int(row[0]), int(row[1])) if row else (-1, None)
    first = db.execute(  # the first row above the mark still inside the review period
        "SELECT seq, t_ns FROM events WHERE session = ? AND seq > ? AND t_ns > ? "
        "ORDER BY seq LIMIT 1",
        (sid, mark, cutoff_t),
    ).fetchone()
    stop = int(first[0]) if first else None
    total, uploaded, eligible = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(seq <= ?), 0), "
        "COALESCE(SUM(seq > ? AND (? IS NULL OR seq < ?)), 0) FROM events WHERE session = ?",
        (mark, mark, stop, stop, sid),
    ).fetchone()
    return UploadPlan(
        session=sid,
        events=int(total),
        uploaded=int(uploaded),
        eligible=int(eligible),
        waiting=int(total - uploaded - eligible),
        mark=mark,
        mark_wall_ns=mark_wall,
        cutoff_t=cutoff_t,
        next_wall_ns=wall0 + (int(first[1]) - mono0) + review_ns if first else None,
    )


# -- one sync round -------------------------------------------------------------------------------
@dataclasses.dataclass
class SyncResult:
    sessions: int = 0
    segments: int = 0
    events: int = 0
    tiles: int = 0
    frames: int = 0
    bytes: int = 0
    deletions: int = 0
    waiting_events: int = 0  # still inside the review period
    retries: int = 0
    policy: str | None = None  # the new policy version installed, if any

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Syncer:
    """Uploads one local store's sessions to the collector it is enrolled with."""

    def __init__(
        self,
        store: Any,
        enrollment: Enrollment,
        *,
        review_hours: float,
        home: Path | None = None,
        transport: Transport | None = None,
        segment_rows: int = SEGMENT_ROWS,
        progress: Callable[[str, int], None] | None = None,
    ) -> None:
        from demotrace.store.frames import FrameReader

        self.store = store
        self.db: sqlite3.Connection = store.db
        self.enrollment = enrollment
        self.review_ns = review_period_ns(review_hours)
        self.home = home
        self.t = transport or Transport(enrollment.url, enrollment.token)
        self.segment_rows = segment_rows
        self.progress = progress or (lambda _what, _n: None)
        self.reader = FrameReader(self.db)
        self.frames = FrameExporter(self.db, self.reader)
        self.result = SyncResult()

    def run(self, now_wall_ns: int | None = None) -> SyncResult:
        now = now_wall_ns or time.time_ns()
        self.fetch_policy()
        self.report_consent()
        self.send_deletions()
        for s in self.store.sessions():
            self.upload_session(s, now)
        self.result.retries = self.t.retries
        return self.result

    # policy ---------------------------------------------------------------------------------
    def fetch_policy(self) -> None:
        """Install the collector's policy when it is a new version (consent is then needed)."""
        if self.home is None:
            return
        from demotrace.errors import PolicyError
        from demotrace.privacy.consent import POLICY_NAME
        from demotrace.privacy.policy import parse_policy

        r = self.t.call("GET", "/v1/policy", ok=(404,))
        if r.status_code == 404:
            return
        body = r.json()
        path = self.home / POLICY_NAME
        try:
            current = parse_policy(path.read_text(), str(path)).version if path.exists() else None
        except (PolicyError, OSError):
            current = None
        if current == body["version"]:
            return
        try:
            parse_policy(body["text"], "the collector's policy")
        except PolicyError as exc:
            raise SyncError(
                f"The collector sent a policy this demotrace cannot use: {exc}"
            ) from None
        tmp = path.with_suffix(".tmp")
        tmp.write_text(body["text"])
        os.replace(tmp, path)
        self.result.policy = body["version"]

    def report_consent(self) -> None:
        """Tell the collector the latest consent answer per policy version (counts per version
        are all its admin sees)."""
        from demotrace.sync.consent import consent_answers

        answers = consent_answers(self.db)
        if answers:
            self.t.call("PUT", "/v1/consent", json={"answers": answers[-1000:]})

    # deletions ------------------------------------------------------------------------------
    def send_deletions(self) -> None:
        rows = self.db.execute(
            "SELECT id, t_wall_ns, what, reason FROM deletions WHERE sent_ns IS NULL ORDER BY id"
        ).fetchall()
        for row_id, t_wall, what_text, reason in rows:
            if reason in _FORWARDED:
                for i, request in enumerate(_requests(json.loads(what_text), t_wall)):
                    body = {"id": f"local-{self.enrollment.device}-{row_id}-{i}", **request}
                    self.t.call("POST", "/v1/deletions", json=body)
                self.result.deletions += 1
            with self.db:
                self.db.execute(
                    "UPDATE deletions SET sent_ns = ? WHERE id = ?", (time.time_ns(), row_id)
                )

    # sessions -------------------------------------------------------------------------------
    def upload_session(self, s: dict[str, Any], now: int) -> None:
        sid = int(s["id"])
        plan = upload_plan(self.db, s, self.review_ns, now)
        cutoff_t = plan.cutoff_t
        self.result.waiting_events += plan.waiting
        if not plan.eligible:
            return
        answer = self.t.call("PUT", f"/v1/sessions/{sid}", json=_session_meta(s)).json()
        if answer.get("status") == "deleted":  # deleted on the collector: it stays deleted
            return
        self.result.sessions += 1
        mark = self._server_mark(sid)
        while True:
            table = self._events(sid, mark, cutoff_t)
            if table.num_rows == 0:
                break
            last = int(table.column("seq")[-1].as_py())
            if self._send_segment(sid, mark + 1, last, table):
                mark = last
            else:  # the collector holds another range already: ask it again
                mark = self._server_mark(sid)
            self._set_mark(sid, mark)

    def _set_mark(self, sid: int, seq: int) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO uploads (session, seq, t_wall_ns) VALUES (?,?,?) "
                "ON CONFLICT(session) DO UPDATE "
                "SET seq = excluded.seq, t_wall_ns = excluded.t_wall_ns",
                (sid, seq, time.time_ns()),
            )

    def _server_mark(self, sid: int) -> int:
        state = self.t.call("GET", f"/v1/sessions/{sid}").json()
        return max((int(seg["last_seq"]) for seg in state["segments"]), default=-1)

    def _events(self, sid: int, after: int, cutoff_t: int) -> pa.Table:
        """The rows after seq ``after`` up to the first one still inside the review period: a
        contiguous run of seq, so a segment's range never skips a row that must come later."""
        rows = self.db.execute(
            "SELECT seq, t_ns, kind, x, y, code, state, value, name, data FROM events "
            "WHERE session = ? AND seq > ? ORDER BY seq LIMIT ?",
            (sid, after, self.segment_rows),
        ).fetchall()
        for i, row in enumerate(rows):
            if row[1] > cutoff_t:
                rows = rows[:i]
                break
        if not rows:
            return EVENT_SCHEMA.empty_table()
        cols = list(zip(*rows, strict=True))
        arrays = [pa.array(c, type=f.type) for c, f in zip(cols, EVENT_SCHEMA, strict=True)]
        return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)

    def _send_segment(self, sid: int, first: int, last: int, table: pa.Table) -> bool:
        """Upload the blobs the segment shows, then the segment. False when the collector
        already holds an overlapping range (the caller asks where to go on)."""
        self._send_frames(_frame_ids(table))
        body = events_parquet(table)
        for _ in range(3):
            r = self.t.call(
                "PUT",
                f"/v1/sessions/{sid}/segments/{first}-{last}",
                content=body,
                headers={
                    "Content-Digest": content_digest(body),
                    "Content-Type": "application/octet-stream",
                },
                ok=(409,),
            )
            if r.status_code != 409:
                answer = r.json()
                if answer.get("status") == "stored":
                    self.result.segments += 1
                    self.result.events += int(answer.get("rows", 0))
                    self.result.bytes += len(body)
                    self.progress("events", int(answer.get("rows", 0)))
                return True
            problem = r.json()
            if problem.get("missing_frames"):  # swept meanwhile, or lost: send them again
                self._send_frames(_frame_ids(table), force=True)
                continue
            return False
        raise SyncError(
            f"The collector keeps refusing session {sid}'s events {first}-{last}: "
            f"{r.json().get('error')}"
        )

    def _send_frames(self, frame_ids: set[str], force: bool = False) -> None:
        if not frame_ids:
            return
        manifests: dict[str, bytes] = {}
        for fid in sorted(frame_ids):
            manifests[fid] = self._manifest(fid)
        tile_keys = sorted({k for m in manifests.values() for k in _manifest_keys(m)})
        need = self.t.call(
            "POST", "/v1/blobs/missing", json={"tiles": tile_keys, "frames": sorted(manifests)}
        ).json()
        self._post_blobs([("tile", k, self._tile_bytes(k)) for k in need["tiles"]])
        self._post_blobs([("frame", f, manifests[f]) for f in need["frames"]])
        self.result.tiles += len(need["tiles"])
        self.result.frames += len(need["frames"])

    def _post_blobs(self, items: list[tuple[str, str, bytes]]) -> None:
        batch: list[tuple[str, str, bytes]] = []
        size = 0
        for item in items:
            if batch and (size + len(item[2]) > BATCH_BYTES or len(batch) >= BATCH_ITEMS):
                self._post_batch(batch)
                batch, size = [], 0
            batch.append(item)
            size += len(item[2])
        if batch:
            self._post_batch(batch)

    def _post_batch(self, batch: list[tuple[str, str, bytes]]) -> None:
        body = blob_batch(batch)
        self.t.call(
            "POST", "/v1/blobs", content=body, headers={"Content-Type": "application/octet-stream"}
        )
        self.result.bytes += len(body)
        self.progress("blobs", len(batch))

    def _manifest(self, fid: str) -> bytes:
        try:
            return self.frames.manifest(fid)
        except KeyError:
            raise SyncError(
                f"Frame {fid} lacks a tile in the local store; it cannot be uploaded. Run "
                "`demotrace build` to see which session."
            ) from None

    def _tile_bytes(self, key: str) -> bytes:
        return self.frames.tile_bytes(key)


def _manifest_keys(manifest: bytes) -> set[str]:
    from demotrace.lake import unpack_manifest

    return {k.hex() for k in unpack_manifest(manifest)[3]}


def _frame_ids(table: pa.Table) -> set[str]:
    kinds = table.column("kind").to_numpy(zero_copy_only=False)
    datas = table.column("data").to_pylist()
    out = set()
    for kind, data in zip(kinds, datas, strict=True):
        if kind == Kind.FRAME and data:
            with contextlib.suppress(ValueError, AttributeError):
                fid = json.loads(data).get("frame")
                if fid:
                    out.add(fid)
    return out


def _session_meta(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "started_wall_ns": int(s["started_wall_ns"]),
        "started_mono_ns": int(s["started_mono_ns"]),
        "ended_mono_ns": s["ended_mono_ns"],
        "status": s["status"] or "recording",
        "screen": [int(s["screen_w"] or 0), int(s["screen_h"] or 0)],
        "event_model": int(s["event_model"]),
        "info": json.loads(s["info"] or "{}"),
    }


def _requests(what: dict[str, Any], t_wall_ns: int) -> list[dict[str, Any]]:
    """The collector's deletion requests for one local deletion row."""
    if "sessions" in what:
        return [{"session": int(s)} for s in what["sessions"]]
    if what.get("session") is not None:
        out: dict[str, Any] = {"session": int(what["session"])}
        if what.get("seq"):
            out["seq"] = [int(v) for v in what["seq"]]
        return [out]
    if what.get("since") is not None:
        return [{"since_wall_ns": int(what["since"]), "until_wall_ns": int(t_wall_ns)}]
    return []

"""The collector's HTTP API from the outside: a real `demotrace serve` process per backend (SQLite +
a lake folder; PostgreSQL + an S3 lake), raw requests as any client could send them.

- isolation: a device can neither read, list, overwrite nor delete another device's data, nor
  learn what the other uploaded;
- credentials: revoked devices, admin routes, the admin token's rotation, enrolment codes;
- bad input: every refusal is a 4xx with a JSON ``error``, leaves the server healthy and stores
  nothing (the lake's bytes and the totals stay as they were);
- limits: bodies over the limit, zstd bombs.

The rate limit (a token bucket per device, burst 1000 at 200/s) has no command-line or
environment setting, so it is not tested here: a burst of over a thousand requests would be slow
and would starve the other tests.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from PIL import Image

from collector_client import (
    Device,
    LakeView,
    blob_batch,
    digest,
    event,
    frame_event,
    ipc_stream,
    manifest,
    parquet,
    session_meta,
    tiles_for,
    webp_tile,
)
from collector_proc import Collector
from demotrace.dataset.schema import EVENT_SCHEMA
from demotrace.lake import content_hash, frame_key, tile_key
from demotrace.model import Kind

SA, SA2 = 4242, 4343  # A's sessions
A_FRAME, A_FRAME2 = "a1" * 16, "a2" * 16  # A's frames
NEVER = "cd" * 16  # a blob hash nobody uploads
NO_BUILD = "b-000000000000"  # a build that does not exist
MiB = 1024 * 1024
MAX_RSS_GROWTH_KB = 200 * 1024


# -- backends -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Store:
    """Where one collector keeps its data, and a view of its lake from outside."""

    folder: Path
    db: str | None
    blobs: str | None
    env: dict[str, str]
    lake: LakeView

    def collector(self, *extra: str) -> Collector:
        return Collector(self.folder, db=self.db, blobs=self.blobs, env=self.env, extra=extra)


@pytest.fixture(scope="module", params=["sqlite+folder", "postgresql+s3"])
def new_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Store]]:
    """Makes empty stores of one backend: ``new_store(name)``."""
    root = tmp_path_factory.mktemp(request.param.replace("+", "-"))
    if request.param == "sqlite+folder":
        yield lambda name: Store(root / name, None, None, {}, LakeView(folder=root / name / "lake"))
        return
    from pgserver import PgUnavailable, pg_server
    from s3server import s3_server

    with ExitStack() as stack:
        try:
            pg = stack.enter_context(pg_server())
        except PgUnavailable as exc:
            pytest.skip(f"PostgreSQL is not installed: {exc}")
        s3 = stack.enter_context(s3_server())
        client = s3.client()

        def make(name: str) -> Store:
            bucket = s3.make_bucket(f"c-{name}-{uuid.uuid4().hex[:8]}")
            return Store(
                root / name,
                pg.new_database(name),
                f"s3://{bucket}/lake",
                dict(s3.env),
                LakeView(s3=client, bucket=bucket),
            )

        yield make


@dataclasses.dataclass
class Server:
    """A running collector and what the tests need of it."""

    c: Collector
    lake: LakeView

    @property
    def url(self) -> str:
        return self.c.url

    def admin_get(self, path: str) -> Any:
        r = httpx.get(self.url + path, headers=self.c.headers(), timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def code(self, **body: Any) -> str:
        r = httpx.post(
            f"{self.url}/v1/admin/enroll-codes", json=body, headers=self.c.headers(), timeout=30
        )
        assert r.status_code == 201, r.text
        return str(r.json()["code"])

    def enroll(self, label: str | None = None) -> Device:
        return Device.enroll(self.url, self.code(), label)

    def totals(self) -> dict[str, int]:
        return dict(self.admin_get("/v1/admin/totals"))

    def healthy(self) -> bool:
        r = httpx.get(f"{self.url}/v1/health", timeout=10)
        return r.status_code == 200 and r.json()["ok"] is True

    def log(self) -> str:
        return self.c.log.read_text(errors="replace")

    def peak_rss_kb(self) -> int:
        """The server process's peak resident memory (VmHWM), in KiB."""
        assert self.c.proc is not None
        for line in Path(f"/proc/{self.c.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")


def _serve(store: Store, *extra: str) -> Iterator[Server]:
    c = store.collector(*extra).start()
    try:
        assert c.admin_token, "the first start shows the admin credential"
        yield Server(c, store.lake)
    finally:
        c.kill()


@pytest.fixture(scope="module")
def server(new_store: Callable[[str], Store]) -> Iterator[Server]:
    yield from _serve(new_store("main"))


@pytest.fixture(scope="module")
def small(new_store: Callable[[str], Store]) -> Iterator[Server]:
    """A second collector that takes segments of at most 1 MiB."""
    yield from _serve(new_store("small"), "--max-body-mb", "1")


# -- device A's data, and device B -------------------------------------------------------------
@dataclasses.dataclass
class World:
    """Device A with its uploads, device B with none (yet), on one collector."""

    server: Server
    a: Device
    b: Device
    tiles: dict[str, bytes]  # A's tiles by key
    keys: list[str]  # A_FRAME's tiles, in grid order
    segment: bytes  # A's segment 1-10 of SA
    a_session: dict[str, Any]  # GET /v1/sessions/SA as A
    a_sessions: list[dict[str, Any]]  # GET /v1/sessions as A
    a_lake: dict[str, str]  # the lake after A's upload: {key: digest of the bytes}
    cli_totals: dict[str, int] = dataclasses.field(default_factory=dict)


@pytest.fixture(scope="module")
def world(server: Server) -> Iterator[World]:
    """A uploads two sessions: SA with tiles, two frames and a segment; SA2 with a segment."""
    a, b = server.enroll("A"), server.enroll("B")
    tiles = tiles_for(range(10))
    keys = sorted(tiles)[:8]
    assert a.put_session(SA).json()["status"] == "stored"
    r = a.put_blobs([("tile", k, v) for k, v in tiles.items()])
    assert r.json() == {"tiles": 10, "frames": 0, "existing": 0}, r.text
    second = [*sorted(tiles)[8:], keys[0]]  # A_FRAME2: a 48x16 screen, 3 tiles
    r = a.put_blobs(
        [("frame", A_FRAME, manifest(64, 32, keys)), ("frame", A_FRAME2, manifest(48, 16, second))]
    )
    assert r.json()["frames"] == 2, r.text
    rows = [event(s) for s in range(1, 11)]
    rows[4], rows[7] = frame_event(5, A_FRAME), frame_event(8, A_FRAME2)
    segment = parquet(rows)
    r = a.put_segment(SA, 1, 10, segment)
    assert r.json()["status"] == "stored", r.text
    assert a.put_session(SA2).status_code == 200
    assert a.put_segment(SA2, 1, 5, _rows([1, 2, 3, 4, 5])).json()["status"] == "stored"
    w = World(
        server,
        a,
        b,
        tiles,
        keys,
        segment,
        a.http.get(f"/v1/sessions/{SA}").json(),
        a.http.get("/v1/sessions").json(),
        server.lake.snapshot(),
    )
    assert f"sessions/{a.id}/{SA}.json" in w.a_lake
    assert frame_key(a.id, A_FRAME) in w.a_lake and tile_key(keys[0]) in w.a_lake
    yield w
    a.close()
    b.close()


def assert_a_unchanged(w: World) -> None:
    """A's sessions, blobs and lake files are exactly as A uploaded them."""
    assert w.a.http.get(f"/v1/sessions/{SA}").json() == w.a_session
    assert len(w.a.http.get(f"/v1/sessions/{SA2}").json()["segments"]) == 1
    assert w.a.http.get("/v1/sessions").json() == w.a_sessions
    assert w.a.missing(sorted(w.tiles), [A_FRAME, A_FRAME2]) == {"tiles": [], "frames": []}
    now = w.server.lake.snapshot()
    changed = {k for k, sha in w.a_lake.items() if now.get(k) != sha}
    assert not changed, f"A's lake files changed or went: {sorted(changed)}"
    assert w.server.healthy()


def b_keys(w: World) -> list[str]:
    """Lake keys under B's device."""
    return [k for k in w.server.lake.snapshot() if w.b.id in k]


# -- isolation ---------------------------------------------------------------------------------
def test_another_device_sees_none_of_a_sessions(world: World) -> None:
    """B's listing and GET show nothing of A's sessions."""
    w = world
    assert w.b.http.get("/v1/sessions").json() == []
    r = w.b.http.get(f"/v1/sessions/{SA}")
    assert r.status_code == 404 and "no session" in r.json()["error"]
    assert w.b.http.get("/v1/device").json() == {"device": w.b.id}
    assert_a_unchanged(w)


def test_deleting_a_session_id_only_another_device_has_changes_nothing(world: World) -> None:
    """B deleting A's session id (whole, or a seq span) deletes nothing of A's."""
    w = world
    nothing = {
        "events": 0,
        "segments": 0,
        "frames": 0,
        "tiles": 0,
        "sessions": 0,
        "builds_withdrawn": 0,
    }
    for i, what in enumerate([{"session": SA2, "seq": [1, 5]}, {"session": SA2}]):
        r = w.b.delete(f"b-forget-{i}", **what)
        assert r.status_code == 200 and r.json() == {"status": "deleted", **nothing}, r.text
    assert_a_unchanged(w)


def test_missing_blobs_answers_only_about_own_uploads(world: World) -> None:
    """B is told A's tiles and frames are missing: no hint that A uploaded them."""
    w = world
    asked = sorted(w.tiles)
    assert w.b.missing(asked, [A_FRAME, A_FRAME2]) == {
        "tiles": asked,
        "frames": [A_FRAME, A_FRAME2],
    }
    assert_a_unchanged(w)


def test_uploading_a_tile_another_device_has_reveals_nothing(world: World) -> None:
    """B holding the pixels of a tile must not learn that some other device showed them."""
    w = world
    key = sorted(w.tiles)[-1]  # A uploaded it; B never did
    fresh = tiles_for([900])
    fresh_key = next(iter(fresh))
    own = w.b.put_blobs([("tile", fresh_key, fresh[fresh_key])]).json()
    other = w.b.put_blobs([("tile", key, w.tiles[key])]).json()
    assert_a_unchanged(w)
    assert other == own, f"a new tile answers {own}, a tile A uploaded answers {other}"


def test_frame_with_a_frame_id_lands_under_own_device(world: World) -> None:
    """B's manifest under A's frame id goes to B's folder; A's stays as it was."""
    w = world
    own = tiles_for([100])
    shared = w.keys[0]
    items = [("tile", k, v) for k, v in own.items()] + [("tile", shared, w.tiles[shared])]
    assert w.b.put_blobs(items).status_code == 200
    m = manifest(32, 16, [shared, *own])
    r = w.b.put_blobs([("frame", A_FRAME, m)])
    assert r.status_code == 200 and r.json()["frames"] == 1, r.text
    assert w.server.lake.read(frame_key(w.b.id, A_FRAME)) == m
    assert w.b.missing([], [A_FRAME, A_FRAME2]) == {"tiles": [], "frames": [A_FRAME2]}
    assert_a_unchanged(w)


def test_frame_cannot_use_tiles_only_another_device_uploaded(world: World) -> None:
    """A frame may only use tiles its own device uploaded (409, nothing stored)."""
    w = world
    before = w.server.lake.snapshot()
    others = sorted(w.tiles)[6:9]  # B uploaded none of these
    r = w.b.put_blobs([("frame", A_FRAME2, manifest(48, 16, others))])
    assert r.status_code == 409, r.text
    assert sorted(r.json()["missing_tiles"]) == others
    assert w.server.lake.snapshot() == before
    assert_a_unchanged(w)


def test_segment_with_a_session_id_stays_in_own_namespace(world: World) -> None:
    """B's segment under A's session id is refused, then stored under B's own session."""
    w = world
    rows = [event(s, Kind.MARKER, data='{"what":"b"}') for s in range(1, 11)]
    rows[2] = frame_event(3, A_FRAME)  # B's own manifest of that id
    body = parquet(rows)
    r = w.b.put_segment(SA, 1, 10, body)
    assert r.status_code == 409 and "PUT its description" in r.json()["error"]
    assert w.b.put_session(SA, started_wall_ns=1_800_000_000_000_000_000).status_code == 200
    r = w.b.put_segment(SA, 1, 10, body)
    assert r.status_code == 200 and r.json()["status"] == "stored", r.text
    mine = w.b.http.get(f"/v1/sessions/{SA}").json()
    assert mine["date"] != w.a_session["date"] and len(mine["segments"]) == 1
    assert mine["segments"][0]["digest"] != w.a_session["segments"][0]["digest"]
    assert [s["session"] for s in w.b.http.get("/v1/sessions").json()] == [SA]
    assert any(f"device={w.b.id}/session={SA}/" in k for k in b_keys(w))
    assert_a_unchanged(w)


def test_segment_cannot_show_a_frame_only_another_device_uploaded(world: World) -> None:
    """B's events cannot show A's frame (409, nothing stored)."""
    w = world
    before = w.server.lake.snapshot()
    r = w.b.put_segment(SA, 11, 12, parquet([event(11), frame_event(12, A_FRAME2)]))
    assert r.status_code == 409 and r.json()["missing_frames"] == [A_FRAME2], r.text
    assert w.server.lake.snapshot() == before
    assert_a_unchanged(w)


def test_deletions_touch_only_own_data(world: World) -> None:
    """B deleting its session (and everything since 1970) leaves A's data and shared tiles."""
    w = world
    own_tile = tile_key(next(iter(tiles_for([100]))))
    assert own_tile in w.server.lake.snapshot()
    r = w.b.delete("b-forget-sa", session=SA)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "deleted",
        "events": 10,
        "segments": 1,
        "frames": 1,  # B's manifest under A's frame id
        "tiles": 1,  # B's own tile; the one shared with A's frames stays
        "sessions": 1,
        "builds_withdrawn": 0,
    }
    r = w.b.delete("b-forget-all", since_wall_ns=0)
    assert r.status_code == 200 and r.json()["status"] == "deleted", r.text
    r = w.b.delete("b-forget-span", session=SA, seq=[1, 10])
    assert r.status_code == 200, r.text
    assert w.b.http.get(f"/v1/sessions/{SA}").status_code == 404
    lake = w.server.lake.snapshot()
    assert own_tile not in lake and tile_key(w.keys[0]) in lake
    assert b_keys(w) == []
    assert_a_unchanged(w)


# -- credentials --------------------------------------------------------------------------------
def _schema_routes(server: Server, tag: str) -> set[tuple[str, str]]:
    schema = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    return {
        (method.upper(), path)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if tag in op.get("tags", [])
    }


def device_requests(w: World) -> dict[tuple[str, str], dict[str, Any]]:
    """One well-formed request per device route (so only the credential can make it fail)."""
    tile = webp_tile(500)
    segment = parquet([event(1)])
    return {
        ("GET", "/v1/device"): {"url": "/v1/device"},
        ("GET", "/v1/policy"): {"url": "/v1/policy"},
        ("GET", "/v1/sessions"): {"url": "/v1/sessions"},
        ("GET", "/v1/sessions/{session}"): {"url": f"/v1/sessions/{SA}"},
        ("PUT", "/v1/sessions/{session}"): {"url": "/v1/sessions/7", "json": session_meta()},
        ("PUT", "/v1/sessions/{session}/segments/{first}-{last}"): {
            "url": "/v1/sessions/7/segments/1-1",
            "content": segment,
            "headers": {"Content-Digest": digest(segment)},
        },
        ("POST", "/v1/blobs/missing"): {
            "url": "/v1/blobs/missing",
            "json": {"tiles": [w.keys[0]], "frames": [A_FRAME]},
        },
        ("POST", "/v1/blobs"): {
            "url": "/v1/blobs",
            "content": blob_batch([("tile", content_hash(tile), tile)]),
        },
        ("POST", "/v1/deletions"): {"url": "/v1/deletions", "json": {"id": "x" * 8, "session": SA}},
        ("PUT", "/v1/consent"): {"url": "/v1/consent", "json": {"answers": []}},
    }


def admin_requests() -> dict[tuple[str, str], dict[str, Any]]:
    """One well-formed request per admin route; the device named does not exist."""
    return {
        ("POST", "/v1/admin/enroll-codes"): {"url": "/v1/admin/enroll-codes", "json": {}},
        ("GET", "/v1/admin/devices"): {"url": "/v1/admin/devices"},
        ("POST", "/v1/admin/devices/{device}/revoke"): {
            "url": "/v1/admin/devices/d-000000000000/revoke"
        },
        ("PUT", "/v1/admin/policy"): {"url": "/v1/admin/policy", "content": b"x = 1"},
        ("GET", "/v1/admin/totals"): {"url": "/v1/admin/totals"},
        ("POST", "/v1/admin/purge"): {"url": "/v1/admin/purge"},
        ("GET", "/v1/admin/consent"): {"url": "/v1/admin/consent"},
        ("POST", "/v1/admin/builds"): {"url": "/v1/admin/builds", "json": {}},
        ("GET", "/v1/admin/builds"): {"url": "/v1/admin/builds"},
        ("GET", "/v1/admin/builds/{build}"): {"url": f"/v1/admin/builds/{NO_BUILD}"},
        ("GET", "/v1/admin/builds/{build}/coverage"): {
            "url": f"/v1/admin/builds/{NO_BUILD}/coverage"
        },
        ("GET", "/v1/admin/builds/{build}/dataset.zip"): {
            "url": f"/v1/admin/builds/{NO_BUILD}/dataset.zip"
        },
    }


def _send(url: str, method: str, token: str | None, request: dict[str, Any]) -> httpx.Response:
    spec = dict(request)
    headers = dict(spec.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, url + spec.pop("url"), headers=headers, timeout=30, **spec)


def test_request_lists_cover_every_route(world: World) -> None:
    """The per-route request lists cover every device and admin route of /openapi.json."""
    assert set(device_requests(world)) == _schema_routes(world.server, "device")
    assert set(admin_requests()) == _schema_routes(world.server, "admin")


def test_revoked_devices_are_refused_everywhere(world: World) -> None:
    """Revoked (by API or CLI): 403 on every device route; A still works."""
    w = world
    by_api, by_cli = w.server.enroll("C"), w.server.enroll("D")
    r = httpx.post(
        f"{w.server.url}/v1/admin/devices/{by_api.id}/revoke", headers=w.server.c.headers()
    )
    assert r.status_code == 200 and r.json() == {"device": by_api.id, "revoked": True}
    w.server.c.admin("revoke", by_cli.id)
    again = httpx.post(
        f"{w.server.url}/v1/admin/devices/{by_cli.id}/revoke", headers=w.server.c.headers()
    )
    assert again.status_code == 404
    before = w.server.lake.snapshot()
    for device in (by_api, by_cli):
        for (method, path), request in device_requests(w).items():
            r = _send(w.server.url, method, device.token, request)
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            assert "revoked" in r.json()["error"]
        device.close()
    assert w.server.lake.snapshot() == before
    listed = {d["id"]: d for d in w.server.admin_get("/v1/admin/devices")}
    assert listed[by_api.id]["revoked_ns"] and listed[by_cli.id]["revoked_ns"]
    assert not listed[w.a.id]["revoked_ns"]
    assert_a_unchanged(w)


def test_device_routes_refuse_missing_and_forged_credentials(world: World) -> None:
    """No, malformed, forged or admin credentials: 401 on every device route."""
    w = world
    forged = f"{w.a.id}.{'x' * 43}"  # A's id, a wrong secret
    tokens: list[str | None] = [None, "nonsense", forged, w.server.c.admin_token]
    for token in tokens:
        for (method, path), request in device_requests(w).items():
            r = _send(w.server.url, method, token, request)
            assert r.status_code == 401, (token, method, path, r.status_code, r.text)
            assert r.json()["error"]
    assert_a_unchanged(w)


def test_admin_routes_refuse_device_missing_and_wrong_credentials(world: World) -> None:
    """Admin routes: 403 for a device credential, 401 for none or a wrong one."""
    w = world
    admin = w.server.c.admin_token
    assert admin
    wrong = "admin." + "x" * 43
    for (method, path), request in admin_requests().items():
        for token, status in ((w.a.token, 403), (None, 401), (wrong, 401), (admin + "x", 401)):
            r = _send(w.server.url, method, token, request)
            assert r.status_code == status, (token, method, path, r.status_code, r.text)
            assert "admin" in r.json()["error"]
    assert len(w.server.admin_get("/v1/admin/devices")) >= 2  # nothing was revoked
    assert_a_unchanged(w)


def test_admin_token_rotation_retires_the_old_one(world: World) -> None:
    """`demotrace admin token`: the old admin credential stops working."""
    c = world.server.c
    old = c.admin_token
    new = c.admin("token").splitlines()[-1]
    assert new.startswith("admin.") and new != old
    url = f"{c.url}/v1/admin/totals"
    assert httpx.get(url, headers={"Authorization": f"Bearer {old}"}).status_code == 401
    c.admin_token = new
    assert httpx.get(url, headers=c.headers()).status_code == 200


def test_an_enrolment_code_works_once(world: World) -> None:
    """A code enrolls one device; again, or an unknown code: 403."""
    s = world.server
    code = s.code(ttl_s=60, note="once")  # the shortest time the API allows
    first = httpx.post(f"{s.url}/v1/enroll", json={"code": code})
    assert first.status_code == 201 and first.json()["device"].startswith("d-")
    second = httpx.post(f"{s.url}/v1/enroll", json={"code": code})
    assert second.status_code == 403 and "already used" in second.json()["error"]
    unknown = httpx.post(f"{s.url}/v1/enroll", json={"code": "not-a-code"})
    assert unknown.status_code == 403 and "not one this collector issued" in unknown.json()["error"]
    too_short = httpx.post(
        f"{s.url}/v1/admin/enroll-codes", json={"ttl_s": 59}, headers=s.c.headers()
    )
    assert too_short.status_code == 422 and "ttl_s" in too_short.json()["error"]


def test_an_expired_enrolment_code_is_refused(world: World) -> None:
    """A code past its time (the CLI allows 1 s): 403 with what to do."""
    s = world.server
    code = s.c.admin("enroll-code", "--ttl", "1s").splitlines()[-1]
    time.sleep(2)
    r = httpx.post(f"{s.url}/v1/enroll", json={"code": code})
    assert r.status_code == 403 and "has expired" in r.json()["error"]
    assert "demotrace admin enroll-code" in r.json()["error"]


# -- bad input ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Bad:
    """A request the collector must refuse with ``status`` and a message containing ``says``."""

    id: str
    send: Callable[[World], httpx.Response]
    status: int
    says: str = ""


def _rows(seqs: list[int]) -> bytes:
    return parquet([event(s) for s in seqs])


def _seg(body: bytes, first: int = 11, last: int = 20, **headers: str | None) -> Callable:
    return lambda w: w.a.put_segment(SA, first, last, body, headers)


def _blobs(items: list[tuple[str, str, bytes]], **headers: str | None) -> Callable:
    return lambda w: w.a.post_blobs_raw(blob_batch(items), headers)


def _raw_blobs(body: bytes) -> Callable:
    return lambda w: w.a.post_blobs_raw(body)


def _req(method: str, path: str, **kw: Any) -> Callable:
    return lambda w: w.a.http.request(method, path, **kw)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(out, "PNG")
    return out.getvalue()


def _wide_webp() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1100, 8), (9, 9, 9)).save(out, "WEBP", lossless=True)
    return out.getvalue()


NOISE = random.Random(7).randbytes(4096)
GOOD = _rows(list(range(11, 21)))
PNG, WIDE = _png(), _wide_webp()
BROKEN_WEBP = b"RIFF" + (40).to_bytes(4, "little") + b"WEBPVP8L" + bytes(32)
NEW_TILE = webp_tile(777)
NEW_KEY = content_hash(NEW_TILE)
NO_DATA = pa.schema([f for f in EVENT_SCHEMA if f.name != "data"])
EXTRA = EVENT_SCHEMA.append(pa.field("extra", pa.int64()))
STRING_SEQ = pa.schema([pa.field("seq", pa.string()), *list(EVENT_SCHEMA)[1:]])
HUGE = 2**62 + 1
JSON = {"Content-Type": "application/json"}
BAD = [
    # segments
    Bad("segment-random-bytes", _seg(NOISE), 422, "not a Parquet file"),
    Bad("segment-truncated", _seg(GOOD[: len(GOOD) // 2]), 422, "not a Parquet file"),
    Bad("segment-empty", _seg(b""), 422, "not a Parquet file"),
    Bad("segment-no-data-column", _seg(parquet([event(11)], NO_DATA)), 422, "columns must be"),
    Bad("segment-extra-column", _seg(parquet([event(11) | {"extra": 1}], EXTRA)), 422, "columns"),
    Bad("segment-seq-not-int", _seg(parquet([event(11) | {"seq": "x"}], STRING_SEQ)), 422, ""),
    Bad("segment-seq-below-range", _seg(_rows([10, 11, 12])), 422, "rise strictly"),
    Bad("segment-seq-above-range", _seg(_rows([19, 20, 21])), 422, "rise strictly"),
    Bad("segment-seq-not-rising", _seg(_rows([11, 13, 12])), 422, "rise strictly"),
    Bad("segment-seq-repeated", _seg(_rows([11, 11, 12])), 422, "rise strictly"),
    Bad("segment-range-reversed", _seg(GOOD, 20, 11), 422, "not a range"),
    Bad("segment-wrong-digest", _seg(GOOD, **{"Content-Digest": digest(b"x")}), 422, "damaged"),
    Bad("segment-no-digest", _seg(GOOD, **{"Content-Digest": None}), 422, "Content-Digest"),
    Bad("segment-digest-not-b64", _seg(GOOD, **{"Content-Digest": "sha-256=:!!:"}), 422, "SHA"),
    Bad("segment-digest-md5", _seg(GOOD, **{"Content-Digest": "md5=:AAAA:"}), 422, "SHA-256"),
    Bad("segment-gzip", _seg(GOOD, **{"Content-Encoding": "gzip"}), 415, "not supported"),
    Bad("segment-bad-zstd", _seg(GOOD, **{"Content-Encoding": "zstd"}), 422, "not valid zstd"),
    Bad("segment-unknown-frame", _seg(parquet([frame_event(11, NEVER)])), 409, "not uploaded"),
    Bad(
        "segment-frame-without-id",
        _seg(parquet([event(11, Kind.FRAME, data='{"frame": "XYZ"}')])),
        422,
        "does not name its frame",
    ),
    Bad("segment-overlap", _seg(_rows(list(range(5, 16))), 5, 15), 409, "overlap"),
    Bad("segment-same-first-seq", _seg(_rows([1, 2]), 1, 2), 409, "overlap"),
    Bad("segment-unknown-session", lambda w: w.a.put_segment(777, 1, 1, _rows([1])), 409, "PUT"),
    Bad("segment-negative-first", _seg(GOOD, -1, 20), 422, "first"),
    Bad("segment-huge-last", _seg(GOOD, 11, HUGE), 422, "last"),
    Bad("segment-not-numbers", lambda w: w.a.put_segment(SA, "x", "y", GOOD), 422, ""),
    Bad("segment-no-range", _req("PUT", f"/v1/sessions/{SA}/segments/5", content=GOOD), 404, ""),
    # blob batches
    Bad("blobs-not-arrow", _raw_blobs(NOISE), 422, "not an Arrow IPC stream"),
    Bad("blobs-empty-body", _raw_blobs(b""), 422, "Arrow"),
    Bad(
        "blobs-missing-column",
        _raw_blobs(ipc_stream(pa.table({"kind": ["tile"], "key": [NEW_KEY]}))),
        422,
        "kind, key and data",
    ),
    Bad(
        "blobs-data-not-bytes",
        _raw_blobs(ipc_stream(pa.table({"kind": ["tile"], "key": [NEW_KEY], "data": [1]}))),
        422,
        "wrong types",
    ),
    Bad("blobs-unknown-kind", _blobs([("movie", NEW_KEY, NEW_TILE)]), 422, "neither"),
    Bad("blobs-bad-key", _blobs([("tile", "XYZ", NEW_TILE)]), 422, "32 lower-case hex"),
    Bad("blobs-upper-case-key", _blobs([("tile", NEW_KEY.upper(), NEW_TILE)]), 422, "hex"),
    Bad("blobs-tile-key-mismatch", _blobs([("tile", NEVER, NEW_TILE)]), 422, "does not match"),
    Bad(
        "blobs-good-tile-then-bad-one",
        _blobs([("tile", NEW_KEY, NEW_TILE), ("tile", NEVER, NEW_TILE)]),
        422,
        "does not match",
    ),
    Bad("blobs-tile-png", _blobs([("tile", content_hash(PNG), PNG)]), 422, "not a WebP"),
    Bad(
        "blobs-tile-broken-webp",
        _blobs([("tile", content_hash(BROKEN_WEBP), BROKEN_WEBP)]),
        422,
        "not a readable WebP",
    ),
    Bad("blobs-tile-too-wide", _blobs([("tile", content_hash(WIDE), WIDE)]), 422, "1100x8"),
    Bad("blobs-frame-not-manifest", _blobs([("frame", NEVER, b"junk")]), 422, "DTF1"),
    Bad(
        "blobs-frame-zero-width",
        _blobs([("frame", NEVER, manifest(0, 16, []))]),
        422,
        "impossible dimensions",
    ),
    Bad(
        "blobs-frame-huge",
        _blobs([("frame", NEVER, manifest(40000, 16, [NEVER]))]),
        422,
        "impossible dimensions",
    ),
    Bad(
        "blobs-frame-tiny-tiles",
        _blobs([("frame", NEVER, manifest(4, 4, [NEVER], tile=4))]),
        422,
        "impossible dimensions",
    ),
    Bad(
        "blobs-frame-wrong-tile-count",
        _blobs([("frame", NEVER, manifest(64, 32, [NEVER] * 7))]),
        422,
        "lists 7 tiles",
    ),
    Bad(
        "blobs-frame-unknown-tiles",
        _blobs([("frame", NEVER, manifest(32, 16, [NEVER, NEW_KEY]))]),
        409,
        "not uploaded",
    ),
    Bad(
        "blobs-gzip",
        _blobs([("tile", NEW_KEY, NEW_TILE)], **{"Content-Encoding": "gzip"}),
        415,
        "not supported",
    ),
    # JSON bodies
    Bad("session-not-json", _req("PUT", f"/v1/sessions/{SA}", content=b"{", headers=JSON), 422),
    Bad("session-not-json-typed", _req("PUT", f"/v1/sessions/{SA}", content=b"{"), 422, "body"),
    Bad("session-empty-object", _req("PUT", "/v1/sessions/8", json={}), 422, "started_wall_ns"),
    Bad(
        "session-extra-field",
        _req("PUT", "/v1/sessions/8", json=session_meta(owner="x")),
        422,
        "owner",
    ),
    Bad("session-screen-1d", _req("PUT", "/v1/sessions/8", json=session_meta(screen=[1])), 422),
    Bad(
        "session-negative-clock",
        _req("PUT", "/v1/sessions/8", json=session_meta(started_wall_ns=-1)),
        422,
        "started_wall_ns",
    ),
    Bad(
        "session-clock-changed",
        _req("PUT", f"/v1/sessions/{SA}", json=session_meta(started_wall_ns=1)),
        409,
        "another start time",
    ),
    Bad(
        "session-info-over-64k",
        _req("PUT", "/v1/sessions/8", json=session_meta(info={"x": "a" * 70_000})),
        413,
        "64 KiB",
    ),
    Bad("session-array-body", _req("PUT", "/v1/sessions/8", json=[session_meta()]), 422, "valid"),
    Bad("missing-bad-hash", _req("POST", "/v1/blobs/missing", json={"tiles": ["XYZ"]}), 422),
    Bad("missing-not-list", _req("POST", "/v1/blobs/missing", json={"tiles": "ab"}), 422),
    Bad("missing-not-json", _req("POST", "/v1/blobs/missing", content=b"[[", headers=JSON), 422),
    Bad("deletion-short-id", _req("POST", "/v1/deletions", json={"id": "x", "session": SA}), 422),
    Bad(
        "deletion-id-with-slash",
        _req("POST", "/v1/deletions", json={"id": "../../etc", "session": SA}),
        422,
    ),
    Bad("deletion-names-nothing", _req("POST", "/v1/deletions", json={"id": "x" * 9}), 422),
    Bad(
        "deletion-seq-without-session",
        _req("POST", "/v1/deletions", json={"id": "x" * 9, "seq": [1, 2]}),
        422,
        "needs its session",
    ),
    Bad(
        "deletion-seq-reversed",
        _req("POST", "/v1/deletions", json={"id": "x" * 9, "session": SA, "seq": [5, 1]}),
        422,
        "first to its last",
    ),
    Bad(
        "deletion-negative-session",
        _req("POST", "/v1/deletions", json={"id": "x" * 9, "session": -1}),
        422,
    ),
    Bad(
        "deletion-huge-session",
        _req("POST", "/v1/deletions", json={"id": "x" * 9, "session": 2**64}),
        422,
    ),
    Bad("enroll-empty-code", lambda w: httpx.post(f"{w.server.url}/v1/enroll", json={}), 422),
    # path numbers and methods
    Bad("session-negative", _req("GET", "/v1/sessions/-1"), 422, "session"),
    Bad("session-huge", _req("GET", f"/v1/sessions/{HUGE}"), 422, "session"),
    Bad("session-beyond-int64", _req("GET", f"/v1/sessions/{10**30}"), 422, "session"),
    Bad("session-fraction", _req("GET", "/v1/sessions/1.5"), 422, "session"),
    Bad("session-put-negative", _req("PUT", "/v1/sessions/-5", json=session_meta()), 422),
    Bad("session-delete-method", _req("DELETE", f"/v1/sessions/{SA}"), 405, "Not Allowed"),
]


def test_record_totals_before_bad_input(world: World) -> None:
    """The totals (CLI) before the bad-input tests, to compare after them."""
    world.cli_totals = json.loads(world.server.c.admin("totals", "--json"))
    assert world.cli_totals == world.server.totals()


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_input_is_refused_and_stores_nothing(world: World, bad: Bad) -> None:
    """4xx with a JSON error; healthy, no traceback, lake and totals unchanged."""
    w = world
    lake, totals, log = w.server.lake.snapshot(), w.server.totals(), len(w.server.log())
    r = bad.send(w)
    assert r.status_code == bad.status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error, str) and bad.says in error
    assert w.server.healthy()
    assert w.server.lake.snapshot() == lake
    assert w.server.totals() == totals
    assert "Traceback" not in w.server.log()[log:]


def test_the_same_segment_twice_is_stored_once(world: World) -> None:
    """A retried segment answers status exists and stores nothing again."""
    w = world
    lake, totals = w.server.lake.snapshot(), w.server.totals()
    r = w.a.put_segment(SA, 1, 10, w.segment)
    assert r.status_code == 200
    assert r.json() == {"status": "exists", "first": 1, "last": 10, "identical": True}
    assert w.server.lake.snapshot() == lake and w.server.totals() == totals
    assert_a_unchanged(w)


def test_totals_after_bad_input_are_unchanged(world: World) -> None:
    """The totals (CLI) after the bad-input tests are those before."""
    assert json.loads(world.server.c.admin("totals", "--json")) == world.cli_totals
    assert_a_unchanged(world)


# -- limits -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_device(small: Server) -> Iterator[Device]:
    d = small.enroll("small")
    assert d.put_session(1).status_code == 200
    yield d
    d.close()


def test_a_body_over_the_limit_is_413(small: Server, small_device: Device) -> None:
    """2 MiB to a 1 MiB server: 413, with or without a Content-Length."""
    lake, totals = small.lake.snapshot(), small.totals()
    big = random.Random(3).randbytes(2 * MiB)
    r = small_device.put_segment(1, 1, 3, big)
    assert r.status_code == 413 and "limit" in r.json()["error"], r.text
    chunks = [big[i : i + 64 * 1024] for i in range(0, len(big), 64 * 1024)]
    r = small_device.http.put(
        "/v1/sessions/1/segments/1-3",
        content=iter(chunks),  # streamed: no Content-Length to refuse it by
        headers={"Content-Digest": digest(big)},
    )
    assert r.status_code == 413 and "limit" in r.json()["error"], r.text
    assert small.healthy() and small.lake.snapshot() == lake and small.totals() == totals
    ok = _rows([1, 2, 3])
    assert small_device.put_segment(1, 1, 3, ok).json()["status"] == "stored"


def test_a_zstd_bomb_is_413_without_a_memory_spike(small: Server, small_device: Device) -> None:
    """32 KB of zstd that inflate to 512 MiB: 413, the server's memory stays put."""
    squeezer = zstandard.ZstdCompressor(level=3).compressobj()
    zeros = bytes(16 * MiB)
    bomb = b"".join(squeezer.compress(zeros) for _ in range(32)) + squeezer.flush()  # 512 MiB
    assert len(bomb) < 64 * 1024
    lake, totals, before = small.lake.snapshot(), small.totals(), small.peak_rss_kb()
    r = small_device.put_segment(
        1, 10, 20, bomb, {"Content-Encoding": "zstd", "Content-Digest": digest(bytes(10))}
    )
    assert r.status_code == 413 and "decompresses to more than" in r.json()["error"], r.text
    assert small.peak_rss_kb() - before < MAX_RSS_GROWTH_KB
    r = small_device.post_blobs_raw(bomb, {"Content-Encoding": "zstd"})
    assert r.status_code == 413, r.text
    assert small.peak_rss_kb() - before < MAX_RSS_GROWTH_KB
    assert small.healthy() and small.lake.snapshot() == lake and small.totals() == totals


# -- defects found by these tests, fixed ------------------------------------------------------
def test_a_parquet_bomb_is_refused_without_a_memory_spike(
    small: Server, small_device: Device
) -> None:
    """A Parquet file under the limit that decodes to 300 MiB of text."""
    rows = 300  # each with the same 1 MiB text: 300 MiB once decoded
    columns = {f.name: pa.nulls(rows, f.type) for f in EVENT_SCHEMA}
    columns["seq"] = pa.array(range(100, 100 + rows), pa.int64())
    columns["kind"] = pa.array([int(Kind.MARKER)] * rows, pa.int8())
    columns["data"] = pa.DictionaryArray.from_arrays(
        pa.array([0] * rows, pa.int32()), pa.array(["a" * MiB])
    )
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink, compression="zstd")
    body = sink.getvalue().to_pybytes()
    assert len(body) < MiB  # within the limit: the bomb is in what it expands to
    before = small.peak_rss_kb()
    r = small_device.put_segment(1, 100, 100 + rows - 1, body)
    grown = small.peak_rss_kb() - before
    assert small.healthy()
    assert r.status_code in (413, 422), f"{r.status_code} {r.text}; +{grown // 1024} MB peak"
    assert grown < MAX_RSS_GROWTH_KB, f"the server's peak memory grew by {grown // 1024} MB"


def test_a_segment_with_null_seq_is_refused(world: World) -> None:
    """Events without a seq number cannot be ordered or deduplicated."""
    w = world
    assert w.a.put_session(31).status_code == 200
    r = w.a.put_segment(31, 1, 3, parquet([event(1) | {"seq": None}, event(2) | {"seq": None}]))
    assert r.status_code == 422, r.text


def test_deeply_nested_session_info_is_refused_or_readable(world: World) -> None:
    w = world
    nested = json.loads("[" * 300 + "]" * 300)
    put = w.a.put_session(32, info={"deep": nested})
    if put.status_code == 200:
        with httpx.Client(base_url=w.server.url, headers=w.a.http.headers) as fresh:
            got = fresh.get("/v1/sessions/32")
        assert w.server.healthy()
        assert got.status_code == 200, got.text
    else:
        assert put.status_code in (413, 422), put.text


def test_session_info_with_nan_is_refused_or_stored_as_json(world: World) -> None:
    w = world
    body = json.dumps(session_meta(info={"x": float("nan")}))
    r = w.a.http.put("/v1/sessions/33", content=body, headers={"Content-Type": "application/json"})
    if r.status_code != 200:
        assert r.status_code == 422, r.text
        return

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    json.loads(w.server.lake.read(f"sessions/{w.a.id}/33.json"), parse_constant=refuse)


def _race(w: World, session: int, clients: int = 6) -> tuple[list[int], list[Any]]:
    """PUT overlapping segments 1-10, 2-11, ... of ``session`` at once; (statuses, stored)."""
    assert w.a.put_session(session).status_code == 200
    statuses: list[int] = []
    gate = threading.Barrier(clients)

    def put(offset: int) -> None:
        body = _rows(list(range(1 + offset, 11 + offset)))
        with httpx.Client(base_url=w.server.url, headers=w.a.http.headers) as client:
            gate.wait()
            r = client.put(
                f"/v1/sessions/{session}/segments/{1 + offset}-{10 + offset}",
                content=body,
                headers={"Content-Digest": digest(body)},
            )
        statuses.append(r.status_code)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, w.a.http.get(f"/v1/sessions/{session}").json()["segments"]


def test_concurrent_overlapping_segments_are_refused(world: World) -> None:
    """Two syncs of one device at once (the recorder's background sync and `demotrace sync`)."""
    for trial in range(10):
        statuses, stored = _race(world, 40 + trial)
        assert statuses.count(200) == len(stored)
        assert len(stored) == 1, f"trial {trial}: overlapping segments stored: {stored}"
    assert world.server.healthy()

"""The collector's HTTP API: routes only. What they do is in :mod:`demotrace.collector.service`.

Every answer that is not a success is JSON ``{"error": "<one paragraph>"}`` with a 4xx status
(plus fields such as ``missing_frames`` where they help the client), never a traceback. Bodies are
capped before they are read; a ``zstd``-compressed body is capped again as it decompresses.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import zstandard
from fastapi import Depends, FastAPI, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from demotrace import __version__
from demotrace.collector.builds import Builds
from demotrace.collector.service import Config, Problem, Service
from demotrace.errors import CollectorError
from demotrace.web.admin import add_admin, error_response

log = logging.getLogger("demotrace.collector")
ENV_CONFIG = "DEMOTRACE_COLLECTOR_CONFIG"
SESSION = Annotated[int, Path(ge=0, le=2**62, description="the session id on the device")]
SEQ = Annotated[int, Path(ge=0, le=2**62)]
BUILD = Annotated[str, Path(pattern=r"^b-[0-9a-f]{12}$", description="a build id")]
_bearer = HTTPBearer(auto_error=False, description="a device credential or the admin credential")
Creds = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _device(request: Request, creds: Creds) -> str:
    """The device a request's credential belongs to (checked before its body is looked at),
    within its rate limit."""
    service: Service = request.app.state.service
    device = await run_in_threadpool(service.device_for, creds.credentials if creds else None)
    wait = request.app.state.limiter.take(device)
    if wait:
        raise Problem(
            429,
            "Too many requests from this device; slow down and retry.",
            retry_after=max(1, round(wait)),
        )
    return device


async def _admin(request: Request, creds: Creds) -> None:
    service: Service = request.app.state.service
    await run_in_threadpool(service.check_admin, creds.credentials if creds else None)


Device = Annotated[str, Depends(_device)]
Admin = Annotated[None, Depends(_admin)]


# -- request and answer models ------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollIn(_Strict):
    code: str = Field(min_length=1, max_length=100)
    label: str | None = Field(default=None, max_length=200)
    key_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (hex) of a secret the device chose; then the credential is "
        "<device>.<secret>, and a retry with the same code and key gets the same device",
    )


class EnrollOut(BaseModel):
    device: str
    token: str | None = Field(description="the credential, when the server made the secret")


class SessionIn(_Strict):
    started_wall_ns: int = Field(ge=0, le=2**62)
    started_mono_ns: int = Field(ge=0, le=2**62)
    ended_mono_ns: int | None = Field(default=None, ge=0, le=2**62)
    status: str = Field(default="recording", max_length=40)
    screen: list[Annotated[int, Field(ge=0, le=100_000)]] = Field(min_length=2, max_length=2)
    event_model: int = Field(ge=0, le=1000)
    info: dict[str, Any] = Field(default_factory=dict)


class MissingIn(_Strict):
    tiles: list[str] = Field(default_factory=list, max_length=50_000)
    frames: list[str] = Field(default_factory=list, max_length=50_000)


class DeletionIn(_Strict):
    id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    session: int | None = Field(default=None, ge=0, le=2**62)
    seq: list[Annotated[int, Field(ge=0, le=2**62)]] | None = Field(
        default=None, min_length=2, max_length=2
    )
    since_wall_ns: int | None = Field(default=None, ge=0, le=2**62)
    until_wall_ns: int | None = Field(default=None, ge=0, le=2**62)


class CodeIn(_Strict):
    ttl_s: int | None = Field(default=None, ge=60, le=365 * 86400)
    note: str | None = Field(default=None, max_length=200)


class ConsentAnswer(_Strict):
    version: str = Field(min_length=1, max_length=80)
    state: Literal["accepted", "withdrawn"]
    at_ns: int = Field(ge=0, le=2**62)


class ConsentIn(_Strict):
    answers: list[ConsentAnswer] = Field(max_length=1000)


class BuildIn(_Strict):
    engine: Literal["local", "ray"] = "local"
    note: str | None = Field(default=None, max_length=200)


_BINARY = {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    "required": True,
}
_POLICY = {"content": {"application/toml": {"schema": {"type": "string"}}}, "required": True}


# -- limits ---------------------------------------------------------------------------------------
class RateLimiter:
    """A token bucket per device (in this worker process)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, who: str) -> float:
        """0 if the request may go on, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(who, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[who] = (tokens, now)
                return (1 - tokens) / self.rate
            self._buckets[who] = (tokens - 1, now)
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            return 0.0


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes after decompression; 413/415 otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(
            413,
            f"The body is {int(declared):,} bytes; the limit here is {limit:,}. "
            "Send smaller segments or batches.",
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"The body is over the limit of {limit:,} bytes.")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "zstd":
        raise Problem(415, f"Content-Encoding {encoding!r} is not supported; send zstd or none.")
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(body)
        out = reader.read(limit + 1)
        while len(out) <= limit:
            more = reader.read(limit + 1 - len(out))
            if not more:
                break
            out += more
    except zstandard.ZstdError as exc:
        raise Problem(422, f"The body is not valid zstd: {exc}.") from None
    if len(out) > limit:
        raise Problem(413, f"The body decompresses to more than the limit of {limit:,} bytes.")
    return out


def _digest(header: str | None) -> str:
    """The SHA-256 (hex) from a ``Content-Digest: sha-256=:<base64>:`` header."""
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "sha-256":
            raw = value.strip().strip(":")
            with contextlib.suppress(binascii.Error, ValueError):
                decoded = base64.b64decode(raw, validate=True)
                if len(decoded) == 32:
                    return decoded.hex()
    raise Problem(
        422,
        "A segment needs its hash in a Content-Digest header: "
        "`Content-Digest: sha-256=:<base64 of the SHA-256 of the body>:`.",
    )


# -- the application ----------------------------------------------------------------------------
def _is_page(request: Request) -> bool:
    path = request.url.path
    return path == "/admin" or path.startswith("/admin/")


def create_app(service: Service) -> FastAPI:
    cfg = service.config
    limiter = RateLimiter(cfg.rate_per_s, cfg.rate_burst)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.warm_up)
        task = asyncio.create_task(_housekeeping(service)) if cfg.retention_days else None
        yield
        if task is not None:
            task.cancel()

    app = FastAPI(
        title="demotrace collector",
        version=__version__,
        description="Uploads, deletions and policies (docs/collector.md).",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.limiter = limiter
    builds = Builds(service)
    app.state.builds = builds

    @app.exception_handler(Problem)
    async def _problem(req: Request, exc: Problem) -> Response:
        if _is_page(req):
            return error_response(req, exc.status, exc.message)
        headers = {}
        if exc.status == 429:
            headers["Retry-After"] = str(exc.extra.pop("retry_after", 1))
        return JSONResponse({"error": exc.message, **exc.extra}, exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(req: Request, exc: RequestValidationError) -> Response:
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where or 'the body'}: {e.get('msg')}")
        if _is_page(req):
            return error_response(req, 422, "The request is not valid: " + "; ".join(parts) + ".")
        return JSONResponse({"error": "The request is not valid: " + "; ".join(parts) + "."}, 422)

    @app.exception_handler(CollectorError)
    async def _backend(req: Request, exc: CollectorError) -> Response:
        log.error("%s %s: %s", req.method, req.url.path, exc)
        if _is_page(req):
            return error_response(
                req,
                503,
                "The collector cannot reach its database or blob store just now; nothing was "
                "changed. Retry in a moment.",
            )
        return JSONResponse(
            {
                "error": "The collector cannot reach its database or blob store just now; nothing "
                "of this request was kept. Retry later."
            },
            503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _bug(req: Request, exc: Exception) -> Response:
        log.exception("unexpected error in %s %s", req.method, req.url.path)
        if _is_page(req):
            return error_response(req, 500, "The collector failed on this page (logged).")
        return JSONResponse(
            {
                "error": "The collector failed on this request (logged). Nothing of it was kept; "
                "retrying is safe."
            },
            500,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> Response:
        if _is_page(req):
            message = "There is no such admin page." if exc.status_code == 404 else str(exc.detail)
            return error_response(req, exc.status_code, message)
        return JSONResponse({"error": str(exc.detail)}, exc.status_code)

    @app.get("/v1/health", tags=["public"])
    async def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__}

    @app.post("/v1/enroll", tags=["public"], status_code=201)
    async def enroll(body: EnrollIn, request: Request) -> EnrollOut:
        client = request.client.host if request.client else "?"
        wait = limiter.take(f"enroll:{client}")
        if wait:
            raise Problem(
                429, "Too many enrolment attempts; wait and retry.", retry_after=max(1, round(wait))
            )
        out = await run_in_threadpool(service.enroll, body.code, body.label, body.key_sha256)
        return EnrollOut(device=out["device"], token=out["token"])

    @app.get("/v1/device", tags=["device"])
    async def whoami(device: Device) -> dict[str, Any]:
        return {"device": device}

    @app.get("/v1/policy", tags=["device"])
    async def policy(device: Device) -> dict[str, Any]:
        current = await run_in_threadpool(service.current_policy)
        if current is None:
            raise Problem(404, "The collector has no policy yet; devices keep the one they have.")
        return current

    @app.get("/v1/sessions", tags=["device"])
    async def sessions(device: Device) -> list[dict[str, Any]]:
        return await run_in_threadpool(service.list_sessions, device)

    @app.get("/v1/sessions/{session}", tags=["device"])
    async def session(session: SESSION, device: Device) -> dict[str, Any]:
        return await run_in_threadpool(service.get_session, device, session)

    @app.put("/v1/sessions/{session}", tags=["device"])
    async def put_session(session: SESSION, body: SessionIn, device: Device) -> dict[str, Any]:
        if len(repr(body.info)) > 64 * 1024:
            raise Problem(413, "The session's info is over 64 KiB.")
        return await run_in_threadpool(service.put_session, device, session, body.model_dump())

    @app.put(
        "/v1/sessions/{session}/segments/{first}-{last}",
        tags=["device"],
        openapi_extra={"requestBody": _BINARY},
    )
    async def put_segment(
        session: SESSION,
        first: SEQ,
        last: SEQ,
        request: Request,
        device: Device,
        content_digest: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        digest = _digest(content_digest)
        body = await read_body(request, cfg.max_segment_bytes)
        return await run_in_threadpool(
            service.put_segment, device, session, first, last, body, digest
        )

    @app.post("/v1/blobs/missing", tags=["device"])
    async def missing(body: MissingIn, device: Device) -> dict[str, list[str]]:
        return await run_in_threadpool(service.missing_blobs, device, body.tiles, body.frames)

    @app.post("/v1/blobs", tags=["device"], openapi_extra={"requestBody": _BINARY})
    async def put_blobs(request: Request, device: Device) -> dict[str, int]:
        body = await read_body(request, cfg.max_blob_batch_bytes)
        return await run_in_threadpool(service.put_blobs, device, body)

    @app.post("/v1/deletions", tags=["device"])
    async def delete(body: DeletionIn, device: Device) -> dict[str, Any]:
        what = body.model_dump(exclude={"id"}, exclude_none=True)
        if "seq" in what and "session" not in what:
            raise Problem(422, "A seq span needs its session.")
        if "seq" in what and what["seq"][0] > what["seq"][1]:
            raise Problem(422, "A seq span runs from its first to its last seq.")
        return await run_in_threadpool(service.delete, device, body.id, what)

    @app.put("/v1/consent", tags=["device"])
    async def consent(body: ConsentIn, device: Device) -> dict[str, int]:
        answers = [a.model_dump() for a in body.answers]
        return await run_in_threadpool(service.report_consent, device, answers)

    # -- admin ------------------------------------------------------------------------------
    @app.post("/v1/admin/enroll-codes", tags=["admin"], status_code=201)
    async def new_code(body: CodeIn, _admin: Admin) -> dict[str, Any]:
        return await run_in_threadpool(service.new_enroll_code, body.ttl_s, body.note)

    @app.get("/v1/admin/devices", tags=["admin"])
    async def devices(_admin: Admin) -> list[dict[str, Any]]:
        return await run_in_threadpool(service.list_devices)

    @app.post("/v1/admin/devices/{device}/revoke", tags=["admin"])
    async def revoke(
        device: Annotated[str, Path(pattern=r"^d-[0-9a-f]{12}$")], _admin: Admin
    ) -> dict[str, Any]:
        if not await run_in_threadpool(service.revoke, device):
            raise Problem(404, f"There is no active device {device}.")
        return {"device": device, "revoked": True}

    @app.put("/v1/admin/policy", tags=["admin"], openapi_extra={"requestBody": _POLICY})
    async def put_policy(request: Request, _admin: Admin) -> dict[str, Any]:
        body = await read_body(request, 256 * 1024)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Problem(422, "The policy is not UTF-8 text.") from None
        return await run_in_threadpool(service.put_policy, text)

    @app.get("/v1/admin/totals", tags=["admin"])
    async def totals(_admin: Admin) -> dict[str, int]:
        return await run_in_threadpool(service.totals)

    @app.post("/v1/admin/purge", tags=["admin"])
    async def purge(_admin: Admin) -> dict[str, Any]:
        gone = await run_in_threadpool(service.purge)
        return {"sessions": len(gone)}

    @app.get("/v1/admin/consent", tags=["admin"])
    async def consent_summary(_admin: Admin) -> list[dict[str, Any]]:
        return await run_in_threadpool(service.consent_summary)

    @app.post("/v1/admin/builds", tags=["admin"], status_code=202)
    async def start_build(body: BuildIn, _admin: Admin) -> dict[str, Any]:
        return await run_in_threadpool(builds.start, body.engine, body.note)

    @app.get("/v1/admin/builds", tags=["admin"])
    async def list_builds(_admin: Admin) -> list[dict[str, Any]]:
        return await run_in_threadpool(builds.list)

    @app.get("/v1/admin/builds/{build}", tags=["admin"])
    async def get_build(build: BUILD, _admin: Admin) -> dict[str, Any]:
        return await run_in_threadpool(builds.get, build)

    @app.get("/v1/admin/builds/{build}/coverage", tags=["admin"])
    async def coverage(build: BUILD, _admin: Admin) -> dict[str, Any]:
        return await run_in_threadpool(builds.coverage, build)

    @app.get("/v1/admin/builds/{build}/dataset.zip", tags=["admin"])
    async def download(build: BUILD, _admin: Admin) -> FileResponse:
        path = await run_in_threadpool(builds.zip_file, build)
        return FileResponse(path, media_type="application/zip", filename=f"{build}.zip")

    add_admin(app, service, builds)

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/admin/", status_code=303)
        return PlainTextResponse(
            "demotrace collector: API under /v1, schema at /openapi.json, admin pages at /admin/\n"
        )

    return app


async def _housekeeping(service: Service) -> None:
    """Retention purge, hourly, in each worker (idempotent: workers may overlap)."""
    while True:
        with contextlib.suppress(Exception):
            gone = await run_in_threadpool(service.purge)
            if gone:
                log.info("retention: deleted %d sessions", len(gone))
        await asyncio.sleep(3600)


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker: its configuration comes from the environment."""
    return create_app(Service(Config.from_env(os.environ[ENV_CONFIG])))

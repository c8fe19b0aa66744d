"""The collector's admin pages (``/admin`` in ``demotrace serve``): devices and enrolment codes,
policy versions with consent counts, dataset builds (start, progress, download, replay viewer)
and the coverage dashboard.

Server-rendered (Jinja2) with one small script (progress of running builds). Aggregate only:
every figure comes from :meth:`Service.consent_summary`, :func:`coverage.suppress` and
:meth:`Service.totals`, which hide groups from fewer than ``k_anonymity`` devices; no page
shows what a device or person did, when, or how much.

Sign-in: the admin credential (the one ``demotrace serve`` printed at first start) is entered
once; the answer is a cookie ``demotrace_admin`` holding an expiry and an HMAC of it keyed with
the stored hash of the credential, so every worker can check it without a session table, and
rotating the credential (``demotrace admin token``) signs everyone out. The cookie is
``HttpOnly`` and ``SameSite=Strict``. Every form that changes something also needs an
``Origin`` header naming this server and a form token derived from the cookie.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from demotrace.collector import db as T
from demotrace.collector.builds import BUILD_ID, Builds
from demotrace.collector.service import Problem, Service

HERE = Path(__file__).parent
COOKIE = "demotrace_admin"
SESSION_S = 12 * 3600
PREFIX = "/admin"
MAX_FORM = 300 * 1024  # a policy is at most 256 KiB


class SignIn(Exception):
    """The request has no valid admin cookie: go to the sign-in page."""


def _key_hashes(service: Service) -> list[str]:
    with service._read() as conn:
        return [r[0] for r in conn.execute(sa.select(T.admins.c.token_hash))]


def _sign(key: str, message: str) -> str:
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def make_cookie(service: Service, now: float | None = None) -> str:
    keys = _key_hashes(service)
    expires = int((now or time.time()) + SESSION_S)
    return f"{expires}.{_sign(keys[0], f'admin-session:{expires}')}"


def cookie_ok(service: Service, value: str | None, now: float | None = None) -> bool:
    if not value or "." not in value or len(value) > 200:
        return False
    expires, _, sig = value.partition(".")
    if not expires.isdigit() or int(expires) < (now or time.time()):
        return False
    good = False
    for key in _key_hashes(service):  # all compared, in constant time
        good |= hmac.compare_digest(_sign(key, f"admin-session:{expires}"), sig)
    return good


def _active_devices(service: Service) -> int:
    with service._read() as conn:
        query = sa.select(sa.func.count()).select_from(T.devices)
        return int(conn.execute(query.where(T.devices.c.revoked_ns.is_(None))).scalar())


def form_token(cookie: str) -> str:
    return hashlib.sha256(f"form:{cookie}".encode()).hexdigest()[:32]


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if not origin or origin == "null":
        return False
    return urllib.parse.urlsplit(origin).netloc == host


async def posted(request: Request) -> dict[str, str]:
    """A posted urlencoded form, at most :data:`MAX_FORM` bytes: each field's last value."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM:
        raise Problem(413, f"The form is over {MAX_FORM // 1024} KiB; nothing was changed.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise Problem(413, f"The form is over {MAX_FORM // 1024} KiB; nothing was changed.")
    text = body.decode("utf-8", "replace")
    try:
        pairs = urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=20)
    except ValueError:
        raise Problem(400, "The form has too many fields; nothing was changed.") from None
    return {key: values[-1] for key, values in pairs.items()}


def _when(ns: int | None) -> str:
    if not ns:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ns / 1e9))


def _size(n: int | None) -> str:
    n = n or 0
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _number(value: Any) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:,.2f}" if value < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class ViewerMount:
    """``/admin/builds/<id>/view/...``: the replay viewer over a finished build, one viewer app
    per build (made on first use), behind the admin sign-in, with people hidden."""

    def __init__(self, service: Service, builds: Builds) -> None:
        self.service = service
        self.builds = builds
        self.apps: dict[str, ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from demotrace.web.viewer import create_app

        app_root = scope.get("app_root_path", "")
        path = (
            scope["path"][len(app_root) :] if scope["path"].startswith(app_root) else scope["path"]
        )
        rest = path[len(PREFIX + "/builds/") :]
        build_id, _, tail = rest.partition("/")
        request = Request(scope)
        if not await run_in_threadpool(cookie_ok, self.service, request.cookies.get(COOKIE)):
            response: Response = RedirectResponse(f"{PREFIX}/login", status_code=303)
            await response(scope, receive, send)
            return
        if not BUILD_ID.fullmatch(build_id) or not (tail == "view" or tail.startswith("view/")):
            await _error_page(request, 404, "There is no such admin page.")(scope, receive, send)
            return
        if tail == "view":
            await RedirectResponse(f"{app_root}{PREFIX}/builds/{build_id}/view/", status_code=307)(
                scope, receive, send
            )
            return
        try:
            folder = await run_in_threadpool(self.builds.dataset, build_id)
        except Problem as exc:
            self.apps.pop(build_id, None)
            await _error_page(request, exc.status, exc.message)(scope, receive, send)
            return
        base = f"{PREFIX}/builds/{build_id}/view"
        app = self.apps.get(build_id)
        if app is None:
            app = create_app(
                folder,
                base=base,
                check_host=False,
                hide_people=True,
                home_link=(f"{PREFIX}/builds", "builds"),
            )
            self.apps[build_id] = app
        child = dict(scope)
        child["root_path"] = app_root + base
        await app(child, receive, send)


@functools.cache
def templates() -> Jinja2Templates:
    out = Jinja2Templates(directory=HERE / "templates")
    out.env.filters.update(when=_when, size=_size, number=_number)
    return out


def _error_page(request: Request, status: int, message: str) -> Response:
    return templates().TemplateResponse(
        request,
        "admin_error.html",
        {"status": status, "message": message, "prefix": PREFIX, "signed_in": False},
        status_code=status,
    )


def error_response(request: Request, status: int, message: str) -> Response:
    """An error on an admin page: a page, not JSON."""
    return _error_page(request, status, message)


def add_admin(app: FastAPI, service: Service, builds: Builds) -> None:
    """Add the admin pages to the collector's app."""
    tpl = templates()
    k = service.config.k_anonymity
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="admin-static")

    @app.middleware("http")
    async def admin_guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            return await call_next(request)
        public = path in (f"{PREFIX}/login",) or path.startswith(f"{PREFIX}/static/")
        cookie = request.cookies.get(COOKIE)
        if not public and not await run_in_threadpool(cookie_ok, service, cookie):
            if request.method == "GET" and not path.endswith(".json"):
                return RedirectResponse(f"{PREFIX}/login", status_code=303)
            return _error_page(request, 401, "Sign in first: this page needs the admin credential.")
        if request.method not in ("GET", "HEAD") and not _same_origin(request):
            return _error_page(
                request,
                403,
                "This form was not sent from this collector's own pages (its Origin header is "
                "missing or names another site), so nothing was changed.",
            )
        response = await call_next(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; object-src 'none'; "
            "form-action 'self'; frame-ancestors 'none'",
        )
        return response

    async def form(request: Request) -> dict[str, str]:
        fields = await posted(request)
        cookie = request.cookies.get(COOKIE, "")
        if not hmac.compare_digest(fields.get("form_token", ""), form_token(cookie)):
            raise Problem(
                403,
                "This form is stale or was not made by this collector; reload the page and send "
                "it again.",
            )
        return fields

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        cookie = request.cookies.get(COOKIE, "")
        context.update(prefix=PREFIX, k=k, signed_in=True, form_token=form_token(cookie), nav=name)
        return tpl.TemplateResponse(request, name, context, status_code=status)

    # -- sign-in ----------------------------------------------------------------------------
    @app.get(f"{PREFIX}/login", include_in_schema=False)
    async def login_page(request: Request) -> Response:
        return tpl.TemplateResponse(
            request, "admin_login.html", {"prefix": PREFIX, "signed_in": False, "error": None}
        )

    @app.post(f"{PREFIX}/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        token = (await posted(request)).get("token", "").strip()
        try:
            await run_in_threadpool(service.check_admin, token)
        except Problem:
            return tpl.TemplateResponse(
                request,
                "admin_login.html",
                {
                    "prefix": PREFIX,
                    "signed_in": False,
                    "error": "That is not this collector's admin credential. It starts with "
                    "admin. and was printed when the collector first started; "
                    "`demotrace admin token` makes a new one.",
                },
                status_code=401,
            )
        cookie = await run_in_threadpool(make_cookie, service)
        response = RedirectResponse(f"{PREFIX}/", status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=SESSION_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path=PREFIX,
        )
        return response

    @app.post(f"{PREFIX}/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        await form(request)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    # -- overview ---------------------------------------------------------------------------
    @app.get(PREFIX, include_in_schema=False)
    async def admin_root() -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    @app.get(f"{PREFIX}/", include_in_schema=False)
    async def overview(request: Request) -> Response:
        totals = await run_in_threadpool(service.totals)
        active = await run_in_threadpool(_active_devices, service)
        policy = await run_in_threadpool(service.current_policy)
        recent = await run_in_threadpool(builds.list, 3)
        return page(
            request,
            "admin_home.html",
            totals=totals,
            active=active,
            revoked=totals["devices"] - active,
            policy=policy,
            builds=recent,
        )

    # -- devices ----------------------------------------------------------------------------
    @app.get(f"{PREFIX}/devices", include_in_schema=False)
    async def devices_page(request: Request) -> Response:
        devices = await run_in_threadpool(service.list_devices)
        return page(request, "admin_devices.html", devices=devices, code=None)

    @app.post(f"{PREFIX}/devices/code", include_in_schema=False)
    async def new_code(request: Request) -> Response:
        fields = await form(request)
        hours = {"1": 1, "24": 24, "168": 168, "720": 720}.get(fields.get("ttl_h", "168"), 168)
        note = fields.get("note", "").strip()[:200] or None
        code = await run_in_threadpool(service.new_enroll_code, hours * 3600, note)
        devices = await run_in_threadpool(service.list_devices)
        url = f"{request.url.scheme}://{request.headers.get('host', 'COLLECTOR')}"
        return page(
            request,
            "admin_devices.html",
            devices=devices,
            code={**code, "url": url, "hours": hours, "note": note},
        )

    @app.post(f"{PREFIX}/devices/{{device}}/revoke", include_in_schema=False)
    async def revoke(request: Request, device: str) -> Response:
        await form(request)
        if not await run_in_threadpool(service.revoke, device):
            raise Problem(
                404, f"There is no active device {device[:40]!r}; it may be revoked already."
            )
        return RedirectResponse(f"{PREFIX}/devices", status_code=303)

    # -- policies ---------------------------------------------------------------------------
    @app.get(f"{PREFIX}/policies", include_in_schema=False)
    async def policies(request: Request) -> Response:
        versions = await run_in_threadpool(service.consent_summary)
        current = await run_in_threadpool(service.current_policy)
        return page(
            request, "admin_policies.html", versions=versions, current=current, published=None
        )

    @app.post(f"{PREFIX}/policies", include_in_schema=False)
    async def publish(request: Request) -> Response:
        fields = await form(request)
        text = fields.get("text", "")
        if len(text.encode()) > 256 * 1024:
            raise Problem(413, "The policy is over 256 KiB; a policy is a short TOML file.")
        published = await run_in_threadpool(service.put_policy, text)
        versions = await run_in_threadpool(service.consent_summary)
        current = await run_in_threadpool(service.current_policy)
        return page(
            request, "admin_policies.html", versions=versions, current=current, published=published
        )

    # -- builds -----------------------------------------------------------------------------
    def engines() -> list[str]:
        try:
            import ray  # noqa: F401
        except ImportError:
            return ["local"]
        return ["local", "ray"]

    @app.get(f"{PREFIX}/builds", include_in_schema=False)
    async def builds_page(request: Request) -> Response:
        rows = await run_in_threadpool(builds.list)
        return page(request, "admin_builds.html", builds=rows, engines=engines())

    @app.get(f"{PREFIX}/builds.json", include_in_schema=False)
    async def builds_json() -> list[dict[str, Any]]:
        return await run_in_threadpool(builds.list)

    @app.post(f"{PREFIX}/builds", include_in_schema=False)
    async def start_build(request: Request) -> Response:
        fields = await form(request)
        engine = fields.get("engine", "local")
        note = fields.get("note", "").strip()[:200] or None
        await run_in_threadpool(builds.start, engine, note)
        return RedirectResponse(f"{PREFIX}/builds", status_code=303)

    @app.get(f"{PREFIX}/builds/{{build_id}}/dataset.zip", include_in_schema=False)
    async def download(build_id: str) -> Response:
        from fastapi.responses import FileResponse

        path = await run_in_threadpool(builds.zip_file, build_id)
        return FileResponse(path, media_type="application/zip", filename=f"{build_id}.zip")

    @app.get(f"{PREFIX}/builds/{{build_id}}/coverage", include_in_schema=False)
    async def coverage(request: Request, build_id: str) -> Response:
        build = await run_in_threadpool(builds.get, build_id)
        cov = await run_in_threadpool(builds.coverage, build_id)
        for chart in cov["charts"]:
            top = max((r["value"] for r in chart["rows"]), default=0) or 1
            for r in chart["rows"]:
                r["pct"] = max(0.5, 100 * r["value"] / top) if r["value"] else 0
            chart["height"] = 24 * max(1, len(chart["rows"])) + 8
        return page(request, "admin_coverage.html", build=build, coverage=cov, ceil=math.ceil)

    app.mount(f"{PREFIX}/builds/", ViewerMount(service, builds), name="admin-viewer")

"""The collector's admin pages in the system Chromium (Playwright), against a real
``demotrace serve`` process on loopback: sign in, enrol a device with a code made on the page
(through the real ``demotrace enroll``), revoke it, publish a policy, build a dataset from the
lake and read its coverage (a group of one device is hidden), replay it, download it.

Requests a browser would never send (no cookie, a foreign Origin, a forged form) are sent with
httpx to the same server. With DEMOTRACE_SCREENSHOTS=1 the pages are written to docs/screenshots.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import CHROMIUM, chromium_page
from collector_proc import Collector
from demotrace.lake import export_session
from sync_fixture import write_work_session

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs the chromium package")
SHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
COMMON = [f"d-{i:012x}" for i in range(1, 7)]
LONER = "d-0000000000aa"
POLICY = """format = 1
revision = 7
name = "Support desk"
purpose = "Teach assistants how support work is done."
organisation = "Example Ltd"
contact = "privacy@example.com"
who_sees = "the data team"
[[apps]]
name = "Workbench"
class = ["Workbench"]
keystrokes = "text"
"""


def shot(page: Any, name: str) -> None:
    if os.environ.get("DEMOTRACE_SCREENSHOTS"):
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"))


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    root = tmp_path_factory.mktemp("admin")
    c = Collector(root / "collector").start()
    assert c.admin_token and c.admin_token.startswith("admin.")
    # a lake: six devices worked in Workbench, one alone in Ledger
    common = write_work_session(root / "a", 1, events=600, frames=8, shared=3)
    loner = write_work_session(root / "b", 2, events=400, frames=6, shared=3, app="Ledger")
    lake = c.data_dir / "lake"
    for device in COMMON:
        export_session(root / "a", common, lake, device)
    export_session(root / "b", loner, lake, LONER)
    try:
        yield c
    finally:
        c.kill()


def sign_in(page: Any, c: Collector) -> None:
    page.goto(c.url + "/admin/")
    assert page.url.endswith("/admin/login")  # no cookie: the sign-in page
    page.fill("#token", "admin.wrong-credential-123456789")
    page.click("button[type=submit]")
    assert "not this collector's admin credential" in page.inner_text("#login-error")
    page.fill("#token", c.admin_token)
    page.click("button[type=submit]")
    page.wait_for_url(c.url + "/admin/")
    shot(page, "admin-home")


def test_enrol_and_revoke_a_device_from_the_pages(collector: Collector, tmp_path: Path) -> None:
    c = collector
    with chromium_page() as page:
        sign_in(page, c)
        page.click("text=Devices")
        page.fill("input[name=note]", "laptop 12")
        page.click("#make-code")
        code = page.inner_text("#code").strip()
        assert len(code.replace("-", "")) == 20
        command = page.inner_text("#enroll-command")
        assert command == f"demotrace enroll {c.url} {code}"
        # the worker's computer runs the command shown
        home = tmp_path / "worker"
        env = {**os.environ, "DEMOTRACE_HOME": str(home)}
        done = subprocess.run(
            [sys.executable, "-m", "demotrace", "enroll", c.url, code, "--label", "desk-7"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        enrolment = json.loads((home / "collector.json").read_text())
        device, token = enrolment["device"], enrolment["token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(c.url + "/v1/device", headers=auth).status_code == 200
        page.reload()
        row = page.locator(f"tr[data-device='{device}']")
        assert "desk-7" in row.inner_text() and row.locator(".state").inner_text() == "active"
        shot(page, "admin-devices")
        page.once("dialog", lambda dialog: dialog.accept())
        row.locator("button.danger").click()
        page.wait_for_url(c.url + "/admin/devices")
        row = page.locator(f"tr[data-device='{device}']")
        assert row.locator(".state").inner_text().startswith("revoked")
        assert row.locator("button.danger").count() == 0
        # the device's credential stops working at once
        assert httpx.get(c.url + "/v1/device", headers=auth).status_code in (401, 403)
        # the code cannot be used twice
        again = subprocess.run(
            [sys.executable, "-m", "demotrace", "enroll", c.url, code],
            capture_output=True,
            text=True,
            env={**os.environ, "DEMOTRACE_HOME": str(tmp_path / "other")},
            timeout=60,
        )
        assert again.returncode != 0 and "Traceback" not in again.stderr


def test_publish_a_policy_and_see_consent_counts(collector: Collector) -> None:
    c = collector
    with chromium_page() as page:
        sign_in(page, c)
        page.click("text=Policies and consent")
        page.fill("textarea[name=text]", POLICY)
        page.click("button:text-is('Publish')")
        assert "Support desk" in page.inner_text("#published")
        version = json.loads(
            httpx.get(
                c.url + "/v1/admin/consent",
                headers={"Authorization": f"Bearer {c.admin_token}"},
            ).text
        )[0]["version"]
        row = page.locator(f"tr[data-version='{version}']")
        assert "in force" in row.inner_text()
        # no device answered yet (the only one enrolled by another test may be revoked)
        assert row.locator(".accepted").inner_text() == "0"
        shot(page, "admin-policies")
        # a bad policy is refused with its reason, and nothing is published
        page.goto(c.url + "/admin/policies")
        page.fill("textarea[name=text]", "format = 1\nrevision = 'x'\n")
        page.click("button:text-is('Publish')")
        message = page.inner_text("#message")
        assert "who_sees: is missing" in message and "Fix the policy" in message
        versions = httpx.get(c.url + "/v1/admin/consent", headers=_admin(c)).json()
        assert [v["version"] for v in versions] == [version]


def test_build_a_dataset_see_coverage_replay_and_download(collector: Collector) -> None:
    c = collector
    with chromium_page(timeout_ms=10_000) as page:
        sign_in(page, c)
        page.click("text=Datasets and coverage")
        page.fill("input[name=note]", "weekly build")
        page.click("#start-build")
        page.wait_for_url(c.url + "/admin/builds")
        row = page.locator("tr[data-build]").first
        build_id = row.get_attribute("data-build")
        # the page polls the build's progress and reloads when it ends
        page.wait_for_selector(f"tr[data-build='{build_id}'][data-state='done']", timeout=180_000)
        row = page.locator(f"tr[data-build='{build_id}']")
        assert "7 / 7" in row.inner_text()
        shot(page, "admin-builds")

        row.locator("text=coverage").click()
        bars = page.locator("#hours_by_app g.bar")
        labels = [bars.nth(i).get_attribute("data-label") for i in range(bars.count())]
        assert labels == ["Workbench"]  # Ledger: one device, hidden
        assert "1 group with data from fewer than 5 devices is not shown" in page.inner_text(
            "#hours_by_app"
        )
        actions = page.locator("#steps_by_action g.bar")
        assert actions.count() >= 2
        body = page.content()
        assert "Ledger" not in body and LONER not in body and COMMON[0] not in body
        shot(page, "admin-coverage")

        # the replay viewer over the build, with people hidden
        page.goto(c.url + f"/admin/builds/{build_id}/view/")
        page.locator("a[href*='/episode/']").first.click()
        page.wait_for_selector('#obs[data-loaded="0"]')
        first = page.get_attribute("#obs", "src")
        assert first.startswith(f"/admin/builds/{build_id}/view/raw/")
        page.keyboard.press("ArrowRight")
        page.wait_for_selector('#obs[data-loaded="1"]')  # the next frame, loaded
        assert page.get_attribute("#obs", "src") != first
        assert page.evaluate("document.getElementById('obs').naturalWidth") > 0
        assert not any(d in page.content() for d in COMMON)
        shot(page, "admin-viewer")

        # the download is the dataset
        cookies = {ck["name"]: ck["value"] for ck in page.context.cookies()}
        answer = httpx.get(c.url + f"/admin/builds/{build_id}/dataset.zip", cookies=cookies)
        assert answer.status_code == 200
        with zipfile.ZipFile(io.BytesIO(answer.content)) as zf:
            info = json.loads(zf.read("dataset/meta/info.json"))
        assert info["counts"]["sessions"] == 7 and info["counts"]["devices"] == 7


def test_requests_a_browser_would_not_send_are_refused(collector: Collector) -> None:
    c = collector
    with httpx.Client(base_url=c.url, follow_redirects=False) as http:
        for path in ("/admin/", "/admin/devices", "/admin/builds/b-000000000000/view/"):
            r = http.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/admin/login", path
        assert http.get("/admin/builds.json").status_code == 401
        assert http.post("/admin/devices/code", data={"ttl_h": "1"}).status_code == 401
        # signing in needs the page's own Origin too (no login CSRF)
        assert http.post("/admin/login", data={"token": c.admin_token}).status_code == 403
        signed = http.post("/admin/login", data={"token": c.admin_token}, headers={"Origin": c.url})
        assert signed.status_code == 303
        cookie = signed.cookies["demotrace_admin"]
        set_cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        http.cookies.clear()  # each request below says its own cookie, or none
        jar = {"Cookie": f"demotrace_admin={cookie}"}
        page = http.get("/admin/devices", headers=jar)
        assert page.status_code == 200
        token = page.text.split('name="form_token" value="')[1].split('"')[0]
        before = len(http.get("/v1/admin/devices", headers=_admin(c)).json())
        # a cross-site form: right cookie and token, foreign Origin
        evil = http.post(
            "/admin/devices/code",
            data={"form_token": token},
            headers={**jar, "Origin": "http://evil.example"},
        )
        assert evil.status_code == 403 and "Origin" in evil.text
        # no Origin at all
        assert (
            http.post("/admin/devices/code", data={"form_token": token}, headers=jar).status_code
            == 403
        )
        # same origin, forged form token
        forged = http.post(
            "/admin/devices/code",
            data={"form_token": "0" * 32},
            headers={**jar, "Origin": c.url},
        )
        assert forged.status_code == 403 and "stale" in forged.text
        # a forged cookie
        forged_cookie = {"Cookie": "demotrace_admin=9999999999.abc"}
        assert http.get("/admin/", headers=forged_cookie).status_code == 303
        ok = http.post(
            "/admin/devices/code",
            data={"form_token": token},
            headers={**jar, "Origin": c.url},
        )
        assert ok.status_code == 200 and 'id="code"' in ok.text
        assert len(http.get("/v1/admin/devices", headers=_admin(c)).json()) == before
        # errors on pages are pages, without a traceback
        missing = http.get("/admin/builds/b-000000000000/coverage", headers=jar)
        assert missing.status_code == 404 and "<html" in missing.text.lower()
        assert "Traceback" not in missing.text
        # a device credential cannot reach the admin API, nor does any route list per-device
        # activity: the admin API's routes are the ones documented
        schema = http.get("/openapi.json").json()
        admin_routes = sorted(p for p in schema["paths"] if p.startswith("/v1/admin"))
        assert admin_routes == [
            "/v1/admin/builds",
            "/v1/admin/builds/{build}",
            "/v1/admin/builds/{build}/coverage",
            "/v1/admin/builds/{build}/dataset.zip",
            "/v1/admin/consent",
            "/v1/admin/devices",
            "/v1/admin/devices/{device}/revoke",
            "/v1/admin/enroll-codes",
            "/v1/admin/policy",
            "/v1/admin/purge",
            "/v1/admin/totals",
        ]
        devices = http.get("/v1/admin/devices", headers=_admin(c)).json()
        assert all(set(d) == {"id", "label", "created_ns", "revoked_ns"} for d in devices)


def _admin(c: Collector) -> dict[str, str]:
    return {"Authorization": f"Bearer {c.admin_token}"}

"""The worker's page in the real Chromium, driven by Playwright, against `demotrace record`
running on the virtual desktop: pause and resume from the page reach the recorder; deleting a
step from the page removes its events and its screenshot from the store; Play opens the replay
viewer over the session and the arrow keys step through it."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import CHROMIUM, chromium_page, running
from demotrace.control import call
from demotrace.model import Kind
from demotrace.privacy.policy import demo_policy_path
from demotrace.store.db import Store
from demotrace.testbench.apps import start_workbench
from demotrace.testbench.recorder_process import start_recorder, stop_recorder
from demotrace.testbench.worker import ScriptedWorker
from demotrace.web.ui import UiServer

if CHROMIUM is None:
    pytest.skip("chromium is not installed (run `make setup`)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = pytest.mark.desktop
#: With DEMOTRACE_SCREENSHOTS=1 the tests also write the pages at 1280x800 into docs/screenshots.
SHOTS = Path(__file__).parent.parent / "docs" / "screenshots"


def shot(page: sync_api.Page, name: str) -> None:
    if os.environ.get("DEMOTRACE_SCREENSHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"))


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    home = tmp_path / "home"
    home.mkdir()
    with running(UiServer(home), "the worker's page") as url:
        yield home, url


@pytest.fixture
def page() -> Iterator[sync_api.Page]:
    with chromium_page(timeout_ms=15000) as page:
        page.on("dialog", lambda dialog: dialog.accept())  # the "really delete?" questions
        yield page


def own_frames(store: Store, session: int) -> dict[tuple[int, int], tuple[int, str]]:
    """FRAME rows grabbed for a raw event: {for_seq: (seq of the FRAME row, frame hex)}."""
    out = {}
    for ev in store.events(session, (Kind.FRAME,)):
        if ev.data and ev.data.get("for_seq") is not None:
            out[ev.data["for_seq"]] = (ev.seq, ev.data["frame"])
    return out


def test_pause_resume_and_delete_a_step_from_the_page(
    desktop, ui: tuple[Path, str], page: sync_api.Page, tmp_path: Path
) -> None:
    home, url = ui
    for name in list(desktop.apps):
        desktop.stop_app(name)
    shutil.copy(demo_policy_path(), home / "policy.toml")  # as an admin installs it
    wb = start_workbench(desktop)
    assert wb.layout is not None
    proc = start_recorder(desktop.display, home, policy=demo_policy_path())
    try:
        page.goto(url)
        page.wait_for_selector("#pause")
        page.click("#pause")
        page.wait_for_selector('#state[data-state="paused"]')
        assert call(home, {"cmd": "status"})["state"] == "paused"
        page.click("#resume")
        page.wait_for_selector("#pause")
        assert call(home, {"cmd": "status"})["state"] != "paused"
        assert page.locator("#policy-differs").count() == 0
        shot(page, "ui-home")
        with ScriptedWorker(desktop.display, tmp_path / "truth.jsonl", seed=7, speed=3) as w:
            w.click_widget(wb.layout, "name")
            w.type_text("hello")
            w.click_widget(wb.layout, "email")
            w.type_text("world")
            w.click_widget(wb.layout, "name")
            w.wait(1.5)
        # while recording, single steps of the live session cannot be deleted
        session = call(home, {"cmd": "status"})["session"]
        page.goto(f"{url}session/{session}")
        assert page.locator(".delete-step").count() == 0
    finally:
        assert stop_recorder(proc) == 0
        desktop.stop_app("workbench")

    with Store(home / "store", create=False) as store:
        frames_for = own_frames(store, session)
        parents = {p for (p,) in store.db.execute("SELECT parent FROM frames") if p is not None}
        refs: dict[str, int] = {}
        for _seq, frame in frames_for.values():
            refs[frame] = refs.get(frame, 0) + 1
    page.goto(f"{url}session/{session}")
    loaded = "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)"
    deadline = time.monotonic() + 15
    while not page.locator("li.step img").evaluate_all(loaded):  # the thumbnails
        assert time.monotonic() < deadline, "the thumbnails did not load"
        time.sleep(0.1)
    shot(page, "ui-session")
    steps = page.locator('li.step[data-type="click"]')
    assert steps.count() >= 2
    # a click whose screenshot no other step and no later screenshot uses
    chosen = None
    for i in range(steps.count()):
        start = int(steps.nth(i).get_attribute("data-seq-start") or -1)
        end = int(steps.nth(i).get_attribute("data-seq-end") or -1)
        own = [frames_for[s] for s in range(start, end + 1) if s in frames_for]
        if own and refs[own[0][1]] == 1 and bytes.fromhex(own[0][1]) not in parents:
            chosen = (i, start, end, own[0])
    assert chosen is not None, "no click step with a screenshot of its own"
    i, start, end, (frame_seq, frame) = chosen
    with Store(home / "store", create=False) as store:
        before = {e.seq for e in store.events(session)}
        n_frames = store.db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    steps.nth(i).locator(".delete-step").click()
    page.wait_for_selector("#done")
    with Store(home / "store", create=False) as store:
        after = {e.seq for e in store.events(session)}
        assert after == before - set(range(start, end + 1)) - {frame_seq}
        gone = store.db.execute("SELECT 1 FROM frames WHERE hash = ?", (bytes.fromhex(frame),))
        assert gone.fetchone() is None
        assert store.db.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == n_frames - 1
        last = store.db.execute("SELECT what FROM deletions ORDER BY id DESC").fetchone()
        assert json.loads(last[0]) == {"session": session, "seq": [start, end]}

    # Play opens the replay viewer over the session as it is now; the arrow key steps
    page.goto(f"{url}session/{session}")
    page.click("#play")
    if page.locator("#player").count() == 0:  # several episodes: the viewer lists them
        page.click("#episodes a >> nth=0")
    assert f"/play/{session}/episode/" in page.url
    page.wait_for_selector('#obs[data-loaded="0"]')
    page.wait_for_selector('#action[data-step="0"]')
    page.keyboard.press("ArrowRight")
    page.wait_for_selector('#obs[data-loaded="1"]')
    page.wait_for_selector('#action[data-step="1"]')
    assert page.locator("#step-index").text_content() == "1"
    assert page.locator("#app").text_content()
    shot(page, "ui-play")
    if os.environ.get("DEMOTRACE_SCREENSHOTS"):  # the other pages, for docs/screenshots
        page.goto(f"{url}sessions")
        shot(page, "ui-sessions")
        page.goto(f"{url}notice")
        shot(page, "ui-notice")


def test_screenshot_of_the_viewer(page: sync_api.Page, tmp_path: Path) -> None:
    """The replay viewer (`demotrace view`) over the tiny dataset, for docs/screenshots."""
    if not os.environ.get("DEMOTRACE_SCREENSHOTS"):
        pytest.skip("set DEMOTRACE_SCREENSHOTS=1 to write docs/screenshots")
    from dataset_fixture import EPISODES, make_tiny_dataset
    from demotrace.web.viewer import ViewerServer

    server = ViewerServer(make_tiny_dataset(tmp_path / "ds"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.server.started:
            time.sleep(0.02)
        page.goto(f"{server.url}episode/{EPISODES[0]['episode_id']}?step=1")
        page.wait_for_selector('#obs[data-loaded="1"]')
        shot(page, "viewer")
    finally:
        server.stop()
        thread.join(timeout=10)

"""The replay viewer in the real Chromium, driven by Playwright (docs/viewer.md).

The viewer runs as a real uvicorn server on a free loopback port in a thread; the browser is the
system's ``chromium`` (Playwright never downloads one here).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from PIL import Image

from browser import CHROMIUM, chromium_page, running
from dataset_fixture import EPISODES, make_tiny_dataset
from demotrace.web.serving import LoopbackServer
from demotrace.web.viewer import ViewerServer, create_app

if CHROMIUM is None:
    pytest.skip("chromium is not installed (run `make setup`)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from test_viewer import HOME, PREFIX, parent_app, red_centroid  # noqa: E402 - after the skips

EPISODE = EPISODES[0]["episode_id"]
N_STEPS = len(EPISODES[0]["steps"])


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ViewerServer(make_tiny_dataset(tmp_path_factory.mktemp("browser") / "ds"))
    with running(server, "the viewer") as url:
        yield url


@pytest.fixture(scope="module")
def page(viewer: str) -> Iterator[sync_api.Page]:
    with chromium_page() as page:
        yield page


def shown(page: sync_api.Page, index: int) -> dict[str, object]:
    """Wait until step ``index`` is on screen (frame loaded, panel filled); its action."""
    page.wait_for_selector(f'#obs[data-loaded="{index}"]')
    page.wait_for_selector(f'#action[data-step="{index}"]')
    assert page.text_content("#step-index") == str(index)
    assert page.input_value("#scrubber") == str(index)
    return json.loads(page.text_content("#action") or "")


def test_click_marker_where_the_action_says(page: sync_api.Page, viewer: str) -> None:
    page.goto(f"{viewer}episode/{EPISODE}")
    action = shown(page, 0)
    index = 0
    while True:  # step to the next click
        page.keyboard.press("ArrowRight")
        index += 1
        action = shown(page, index)
        if action["type"] == "click":
            break
    natural = page.eval_on_selector("#obs", "img => [img.naturalWidth, img.naturalHeight]")
    shot = Image.open(io.BytesIO(page.locator("#obs").screenshot()))
    scale_x, scale_y = shot.width / natural[0], shot.height / natural[1]
    assert scale_x < 1  # the frame is shown smaller than it is: the check scales
    px, py = round(action["x"] * natural[0]), round(action["y"] * natural[1])
    want = ((px + 0.5) * scale_x - 0.5, (py + 0.5) * scale_y - 0.5)
    x, y = red_centroid(shot, want, radius=20)
    assert abs(x - want[0]) <= 2.5 and abs(y - want[1]) <= 2.5
    # the marker is the player's drawing over the raw observation: without it, no red there
    assert page.get_attribute("#obs", "src").endswith(f"/raw/{EPISODE}/{index}")
    page.eval_on_selector("#overlay", "svg => { svg.style.display = 'none'; }")
    bare = Image.open(io.BytesIO(page.locator("#obs").screenshot()))
    with pytest.raises(AssertionError, match="no red marker"):
        red_centroid(bare, want, radius=20)


def test_scrubber_home_end_and_play(page: sync_api.Page, viewer: str) -> None:
    page.goto(f"{viewer}episode/{EPISODE}?step=2")
    shown(page, 2)
    box = page.locator("#scrubber").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    moved = int(page.input_value("#scrubber"))
    assert 6 <= moved <= 11
    shown(page, moved)
    page.keyboard.press("End")
    shown(page, N_STEPS - 1)
    page.keyboard.press("Home")
    shown(page, 0)
    page.keyboard.press("Space")  # the fixture's steps are 2 s apart
    assert page.text_content("#play") == "Pause"
    shown(page, 1)
    page.keyboard.press("Space")
    assert page.text_content("#play") == "Play"
    assert "step=1" in page.url


@pytest.fixture(scope="module")
def mounted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The viewer mounted under PREFIX in a parent app, people hidden; the parent's URL."""
    dataset = make_tiny_dataset(tmp_path_factory.mktemp("mounted") / "ds")
    server = LoopbackServer(
        lambda port: parent_app(create_app(dataset, port, hide_people=True, home_link=HOME)),
        what="viewer's parent",
        why_local="it is a test.",
    )
    with running(server, "the viewer's parent") as url:
        yield url.rstrip("/")


def test_player_under_a_prefix(page: sync_api.Page, mounted: str) -> None:
    page.goto(f"{mounted}{PREFIX}/")
    page.click("#episodes a >> text=e-")
    page.wait_for_url(f"{mounted}{PREFIX}/episode/e-*")
    name = page.url.partition("?")[0].rsplit("/", 1)[1]
    shown(page, 0)
    assert page.get_attribute("#obs", "src") == f"{PREFIX}/raw/{name}/0"
    page.keyboard.press("ArrowRight")
    shown(page, 1)
    assert page.get_attribute("#obs", "src") == f"{PREFIX}/raw/{name}/1"
    assert page.get_attribute("#drawn", "href") == f"{PREFIX}/frame/{name}/1.png"
    assert page.url == f"{mounted}{PREFIX}/episode/{name}?step=1"
    assert page.text_content("#time") == "2.0 s" and page.locator("#started").count() == 0
    page.keyboard.press("Space")  # plays from the steps' t: 2 s apart
    assert page.text_content("#play") == "Pause"
    shown(page, 2)
    page.keyboard.press("Space")
    assert page.text_content("#play") == "Play"
    page.click("#home")
    page.wait_for_url(f"{mounted}{HOME[0]}")


def test_the_next_page_of_steps_is_asked_for_ahead(
    page: sync_api.Page, viewer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import demotrace.web.viewer as viewer_module

    monkeypatch.setattr(viewer_module, "PAGE", 4)  # pages of 4 steps: 16 steps, 4 pages
    asked: list[str] = []

    def note(request: sync_api.Request) -> None:
        if "/steps?" in request.url:
            asked.append(request.url)

    page.on("request", note)
    try:
        page.goto(f"{viewer}episode/{EPISODE}")
        shown(page, 0)
        for _ in range(100):  # the page of steps 4-7, asked for while step 0 is shown
            if any("offset=4&" in u for u in asked):
                break
            page.wait_for_timeout(50)
        assert [u.split("?")[1] for u in asked] == ["offset=0&limit=4", "offset=4&limit=4"]
        page.keyboard.press("End")
        shown(page, N_STEPS - 1)
        page.keyboard.press("Home")
        shown(page, 0)
    finally:
        page.remove_listener("request", note)

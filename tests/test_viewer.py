"""The replay viewer's app (docs/viewer.md) over the tiny dataset, through FastAPI's TestClient."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from starlette.routing import Mount

from dataset_fixture import EPISODES, STEP_NAMES, make_tiny_dataset
from demotrace.errors import DatasetError, DemotraceError
from demotrace.web.viewer import ViewerServer, create_app

PORT = 8765
DESKTOP, BROWSER = "local-1-0000", "local-1-0001"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("viewer") / "ds")


@pytest.fixture(scope="module")
def client(dataset: Path) -> Iterator[TestClient]:
    with TestClient(create_app(dataset, PORT), base_url=f"http://127.0.0.1:{PORT}") as c:
        yield c


def red_centroid(
    image: Image.Image, near: tuple[float, float], radius: float
) -> tuple[float, float]:
    """The centre of the strongly red pixels within ``radius`` of ``near``."""
    rgb = np.asarray(image.convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    ys, xs = np.nonzero((r > 150) & (r - np.maximum(g, b) > 100))
    keep = np.hypot(xs - near[0], ys - near[1]) <= radius
    assert keep.sum() > 10, f"no red marker near {near}"
    return float(xs[keep].mean()), float(ys[keep].mean())


def step_of(name: str) -> tuple[str, int]:
    return next(key for key, value in STEP_NAMES.items() if value == name)


def test_index_lists_every_episode(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    for episode in EPISODES:
        assert f'href="/episode/{episode["episode_id"]}"' in page.text
    assert "Fill in the form and choose Germany" in page.text
    assert "Workbench, xterm" in page.text  # apps
    assert "dropdown" in page.text  # skills
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


def test_player_page_has_the_controls(client: TestClient) -> None:
    page = client.get(f"/episode/{DESKTOP}?step=3")
    assert page.status_code == 200
    for element in ('id="obs"', 'id="scrubber"', 'id="step-index"', 'id="action"', 'id="play"'):
        assert element in page.text
    assert f'data-steps="{len(EPISODES[0]["steps"])}"' in page.text
    assert 'data-step="3"' in page.text
    assert client.get("/static/viewer.js").status_code == 200


def test_steps_api_pages_without_images(client: TestClient) -> None:
    total = len(EPISODES[0]["steps"])
    seen = []
    for offset in range(0, total, 5):  # the episode spans two files: pages cross them
        body = client.get(f"/api/episode/{DESKTOP}/steps?offset={offset}&limit=5").json()
        assert body["total"] == total
        seen += body["steps"]
    assert [s["step_index"] for s in seen] == list(range(total))
    first = seen[0]
    assert "observation" not in first
    assert first["action"]["type"] == "click" and first["action"]["count"] == 2
    assert first["app"] == "Workbench" and first["screen_w"] == 1280
    assert [s["t"] for s in seen[:3]] == [0.0, 2.0, 4.0]
    past = client.get(f"/api/episode/{DESKTOP}/steps?offset={total}").json()
    assert past["steps"] == []
    assert client.get(f"/api/episode/{DESKTOP}/steps?limit=100000").status_code == 422


@pytest.mark.parametrize("name", ["ctrl_double_click", "right_click", "web_click", "web_select"])
def test_frame_marks_the_click_pixel(client: TestClient, name: str) -> None:
    episode_id, index = step_of(name)
    step = client.get(f"/api/episode/{episode_id}/steps?offset={index}&limit=1").json()["steps"][0]
    response = client.get(f"/frame/{episode_id}/{index}.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (step["screen_w"], step["screen_h"])
    want = (round(step["action"]["x"] * image.width), round(step["action"]["y"] * image.height))
    x, y = red_centroid(image, want, radius=25)
    assert abs(x - want[0]) <= 2 and abs(y - want[1]) <= 2


@pytest.mark.parametrize("name", sorted(set(STEP_NAMES.values())))
def test_every_step_renders(client: TestClient, name: str) -> None:
    episode_id, index = step_of(name)
    response = client.get(f"/frame/{episode_id}/{index}.png")
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    stored = client.get(f"/raw/{episode_id}/{index}")
    if name == "wait":  # no frame: a placeholder of the screen's size, and no raw image
        assert stored.status_code == 404
        assert image.size == (1280, 800)
    else:
        assert stored.status_code == 200
        assert Image.open(io.BytesIO(stored.content)).size == image.size
        # something is drawn on every frame: the action or its caption
        assert image.convert("RGB").tobytes() != Image.open(io.BytesIO(stored.content)).tobytes()


def test_unknown_episode_and_step_are_404(client: TestClient) -> None:
    page = client.get("/episode/local-9-0000")
    assert page.status_code == 404
    assert "local-9-0000" in page.text and "Traceback" not in page.text
    assert client.get("/frame/local-9-0000/0.png").status_code == 404
    assert client.get(f"/frame/{DESKTOP}/999.png").status_code == 404
    api = client.get("/api/episode/local-9-0000/steps")
    assert api.status_code == 404 and "local-9-0000" in api.json()["detail"]


def test_read_only(client: TestClient) -> None:
    assert client.post("/").status_code == 405
    assert client.delete(f"/episode/{DESKTOP}").status_code == 405


@pytest.mark.parametrize(
    "host", ["evil.example:8765", f"127.0.0.1:{PORT + 1}", "127.0.0.1", "attacker.localhost:8765"]
)
def test_foreign_host_is_refused(client: TestClient, host: str) -> None:
    response = client.get("/", headers={"host": host})
    assert response.status_code == 421
    assert f"http://127.0.0.1:{PORT}/" in response.text
    assert client.get("/", headers={"host": f"localhost:{PORT}"}).status_code == 200


def test_bad_dataset_dirs(tmp_path: Path, dataset: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        create_app(tmp_path / "missing")
    with pytest.raises(DatasetError, match="has no meta"):
        create_app(tmp_path)
    newer = make_tiny_dataset(tmp_path / "newer")
    info = json.loads((newer / "meta" / "info.json").read_text())
    (newer / "meta" / "info.json").write_text(json.dumps(info | {"version": 99}))
    with pytest.raises(DatasetError, match="newer"):
        create_app(newer)


def test_server_listens_on_loopback_only(dataset: Path) -> None:
    with pytest.raises(DemotraceError, match="only listens on this machine"):
        ViewerServer(dataset, host="0.0.0.0")
    server = ViewerServer(dataset)
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/" and server.port > 0
    finally:
        server.socket.close()


# -- mounted in another app under a prefix, people hidden ----------------------------------------
PREFIX = "/admin/builds/b-123/view"
HOME = ("/admin/builds", "builds")
HIDDEN_STEP_KEYS = {"device", "session", "seq_start", "seq_end", "t_start", "t_end"}


class Links(HTMLParser):
    """Every href, src and form action of a page, and the data-base of its body."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.base: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "action") and value is not None:
                self.urls.append(value)
            if tag == "body" and name == "data-base":
                self.base = value


def parent_app(viewer: FastAPI) -> FastAPI:
    """A stand-in for the collector: its own page, and the viewer mounted under PREFIX."""
    parent = FastAPI()

    @parent.get("/admin/builds")
    def builds() -> dict[str, str]:
        return {"page": "builds"}

    parent.router.routes.append(Mount(PREFIX, viewer))
    return parent


@pytest.fixture(scope="module")
def mounted(dataset: Path) -> Iterator[TestClient]:
    viewer = create_app(dataset, check_host=False, home_link=HOME)
    with TestClient(parent_app(viewer), base_url="https://collector.example") as c:
        yield c


@pytest.fixture(scope="module")
def hidden(dataset: Path) -> Iterator[TestClient]:
    viewer = create_app(dataset, check_host=False, hide_people=True, home_link=HOME)
    with TestClient(parent_app(viewer), base_url="https://collector.example") as c:
        yield c


def own_urls(text: str, base: str = PREFIX) -> list[str]:
    """The page's URLs other than the home link and data: URIs; each must start with ``base``."""
    links = Links(text)
    assert links.base == base
    urls = [u for u in links.urls if u != HOME[0] and not u.startswith("data:")]
    for url in urls:
        assert url.startswith(f"{base}/"), f"{url!r} does not start with {base}/"
    return urls


def episode_links(text: str) -> list[str]:
    return [u for u in own_urls(text) if u.startswith(f"{PREFIX}/episode/")]


@pytest.mark.parametrize("which", ["mounted", "hidden"])
def test_mounted_under_a_prefix(request: pytest.FixtureRequest, which: str) -> None:
    client: TestClient = request.getfixturevalue(which)
    index = client.get(f"{PREFIX}/")
    assert index.status_code == 200
    assert f'<a id="home" class="home" href="{HOME[0]}">{HOME[1]}</a>' in index.text
    assert client.get(HOME[0]).json() == {"page": "builds"}  # the parent's own route
    urls = own_urls(index.text)
    assert f"{PREFIX}/static/viewer.css" in urls
    assert len(episode_links(index.text)) == len(EPISODES)
    for url in urls:  # everything the list links to is there
        assert client.get(url).status_code == 200, url
    for link in episode_links(index.text):
        page = client.get(link)
        assert page.status_code == 200
        player_urls = own_urls(page.text)
        assert f"{PREFIX}/static/viewer.js" in player_urls
        name = link.rsplit("/", 1)[1]
        assert f"{PREFIX}/frame/{name}/0.png" in player_urls
        for url in player_urls:  # stylesheet, script, frame, raw observation, the list
            assert client.get(url).status_code == 200, url
        frame = client.get(f"{PREFIX}/frame/{name}/1.png")
        assert frame.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(frame.content)).size in ((1280, 800), (1024, 768))
        body = client.get(f"{PREFIX}/api/episode/{name}/steps?limit=3").json()
        assert body["episode_id"] == name and [s["t"] for s in body["steps"]] == [0.0, 2.0, 4.0]
    missing = client.get(f"{PREFIX}/episode/local-9-0000")
    assert missing.status_code == 404 and "local-9-0000" in missing.text
    own_urls(missing.text)
    api = client.get(f"{PREFIX}/api/episode/local-9-0000/steps")  # JSON under the prefix too
    assert api.status_code == 404 and "detail" in api.json()
    assert client.get("/static/viewer.js").status_code == 404  # nothing at the parent's root


def test_explicit_base_without_a_mount(dataset: Path) -> None:
    """Behind a proxy that strips the prefix, ``base`` alone puts it on every URL."""
    app = create_app(dataset, PORT, base="/view/")
    with TestClient(app, base_url=f"http://127.0.0.1:{PORT}") as c:
        index = c.get("/")
        urls = own_urls(index.text, "/view")
        assert f"/view/episode/{DESKTOP}" in urls
        player = c.get(f"/episode/{DESKTOP}")
        assert f"/view/frame/{DESKTOP}/0.png" in own_urls(player.text, "/view")
    with pytest.raises(ValueError, match="base"):
        create_app(dataset, base="view")


def test_mounted_app_still_checks_the_host(dataset: Path) -> None:
    parent = parent_app(create_app(dataset, PORT))
    with TestClient(parent, base_url=f"http://127.0.0.1:{PORT}") as c:
        assert c.get(f"{PREFIX}/").status_code == 200
        assert c.get(f"{PREFIX}/", headers={"host": "evil.example"}).status_code == 421
        assert c.get(HOME[0], headers={"host": "evil.example"}).status_code == 200  # not ours


def test_hide_people_shows_no_device_or_time(hidden: TestClient, client: TestClient) -> None:
    shown = client.get("/").text  # the local viewer shows when each episode started
    assert "2025-03-01 09:00:00" in shown
    index = hidden.get(f"{PREFIX}/")
    names = [u.rsplit("/", 1)[1] for u in episode_links(index.text)]
    assert len(names) == len(EPISODES) and names == sorted(names)  # by name, not by time
    assert all(n.startswith("e-") for n in names)
    assert 'id="hidden-note"' in index.text and "People hidden" in index.text
    pages = [index.text]
    for name in names:
        page = hidden.get(f"{PREFIX}/episode/{name}?step=2")
        assert 'id="started"' not in page.text and 'id="hidden-note"' in page.text
        pages.append(page.text)
        total = 0
        for offset in range(0, 100, 5):
            body = hidden.get(f"{PREFIX}/api/episode/{name}/steps?offset={offset}&limit=5").json()
            for step in body["steps"]:
                assert not HIDDEN_STEP_KEYS & step.keys(), step
                assert step["episode_id"] == name and isinstance(step["t"], float)
                assert step["app"] and step["action"]["type"]  # the rest is there
            total += len(body["steps"])
            pages.append(json.dumps(body))
        assert total == body["total"] > 0
    for text in pages:
        for episode in EPISODES:  # the id names the device and session
            assert episode["episode_id"] not in text
        assert "local" not in text and "2025" not in text and "09:00" not in text
    # the ids the local viewer uses are not answered
    assert hidden.get(f"{PREFIX}/episode/{DESKTOP}").status_code == 404
    assert hidden.get(f"{PREFIX}/api/episode/{DESKTOP}/steps").status_code == 404
    assert hidden.get(f"{PREFIX}/frame/{DESKTOP}/0.png").status_code == 404
    assert hidden.get(f"{PREFIX}/raw/{DESKTOP}/0").status_code == 404


def test_demo_serves_the_viewer_over_its_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demotrace demo --view yes` ends with the viewer's URL, and the viewer answers there with
    the dataset the demo built (the recording itself is tested in test_dataset_e2e)."""
    import threading

    import httpx

    import demotrace.demo
    from demotrace.cli import main
    from demotrace.web import viewer

    dataset = make_tiny_dataset(tmp_path / "ds")
    monkeypatch.setattr(demotrace.demo, "run_demo", lambda **_kw: {"dataset": str(dataset)})
    answers: list[int] = []

    def run(server: viewer.ViewerServer) -> None:
        thread = threading.Thread(target=viewer.LoopbackServer.run, args=(server,), daemon=True)
        thread.start()
        for _ in range(200):
            if server.server.started:
                break
            threading.Event().wait(0.02)
        answers.append(httpx.get(server.url).status_code)
        server.stop()
        thread.join(10)

    monkeypatch.setattr(viewer.ViewerServer, "run", run)
    assert main(["demo", "--view", "yes"]) == 0
    err = capsys.readouterr().err
    assert answers == [200]
    url = err.split("viewer over the dataset: ")[1].split()[0]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/")


# -- the shapes the player draws (demotrace.web.overlay) ----------------------------------------
def _shapes(client: TestClient, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    episode_id, index = step_of(name)
    step = client.get(f"/api/episode/{episode_id}/steps?offset={index}&limit=1").json()["steps"][0]
    return step, step["overlay"]


@pytest.mark.parametrize("name", ["ctrl_double_click", "right_click", "web_click", "web_select"])
def test_steps_carry_a_ring_on_the_click_pixel(client: TestClient, name: str) -> None:
    step, drawing = _shapes(client, name)
    assert (drawing["w"], drawing["h"]) == (step["screen_w"], step["screen_h"])
    a = step["action"]
    want = [round(a["x"] * step["screen_w"]), round(a["y"] * step["screen_h"])]
    rings = [s for s in drawing["shapes"] if s["kind"] == "circle" and s["colour"] == "#ff0000"]
    assert [r["at"] for r in rings] == [want] and rings[0]["dot"]
    labels = [s for s in drawing["shapes"] if s["kind"] == "label"]
    assert labels and labels[0]["at"] == want
    if name == "ctrl_double_click":
        assert labels[0]["text"] == "ctrl left x2"
    if a.get("target") and a["type"] == "click":  # the element's box, in pixels
        box = next(s["box"] for s in drawing["shapes"] if s["kind"] == "box")
        assert box[0] <= want[0] <= box[2] and box[1] <= want[1] <= box[3]


def test_steps_carry_drag_scroll_and_caption_shapes(client: TestClient) -> None:
    step, drawing = _shapes(client, "drag")
    kinds = [s["kind"] for s in drawing["shapes"]]
    path = [[round(p[0] * 1280), round(p[1] * 800)] for p in step["action"]["path"]]
    drag_line = next(
        s for s in drawing["shapes"] if s["kind"] == "line" and s["colour"] == "#ff9600"
    )
    assert drag_line["points"] == path and "polygon" in kinds  # the path and its arrow head
    _, drawing = _shapes(client, "scroll_xy")  # dx 2, dy -3: three notches, three ticks
    lines = [s for s in drawing["shapes"] if s["kind"] == "line" and s["colour"] == "#e600e6"]
    assert len(lines) == 1 + 3
    label = next(s for s in drawing["shapes"] if s["kind"] == "label")
    assert label["text"] == "scroll dx=2 dy=-3"
    step, drawing = _shapes(client, "type")
    caption = next(s for s in drawing["shapes"] if s["kind"] == "caption")
    assert caption["lines"][0] == f"type: {step['action']['text']}"


def test_the_png_and_the_shapes_come_from_one_drawing(client: TestClient) -> None:
    """The drawn frame is the raw observation with exactly the overlay's shapes painted."""
    from demotrace.web.overlay import paint

    episode_id, index = step_of("drag")
    _step, drawing = _shapes(client, "drag")
    png = Image.open(io.BytesIO(client.get(f"/frame/{episode_id}/{index}.png").content))
    raw = Image.open(io.BytesIO(client.get(f"/raw/{episode_id}/{index}").content))
    layer = Image.new("RGBA", raw.size, (0, 0, 0, 0))
    paint(layer, drawing)
    mine = Image.alpha_composite(raw.convert("RGBA"), layer).convert("RGB")
    assert mine.tobytes() == png.convert("RGB").tobytes()

"""The browser channel (docs/browser.md): its refusals and acceptance over real HTTP on loopback,
the pairing file and command, and the real extension in the real Chromium on the virtual
desktop: element targets whose screen boxes contain the points clicked through XTEST, a select's
option, secret fields, typed text that never leaves the page, a web page that cannot post to the
channel, a replaced token that stops working, and the handler times the events carry."""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_desktop import CHROMIUM, Browser, chromium_with_extension
from demotrace.browser import EXTENSION_DIR, EXTENSION_ID, BrowserError, extension_dir
from demotrace.browser.channel import MAX_BODY, BrowserChannel, to_monotonic_ns
from demotrace.browser.pairing import Pairing, load_pairing, pair, pairing_path

ORIGIN = f"chrome-extension://{EXTENSION_ID}"


def target(**over: Any) -> dict[str, Any]:
    t = {
        "tag": "input",
        "role": "textbox",
        "name": "Full name",
        "id": "name",
        "type": "text",
        "autocomplete": None,
        "bbox": [10, 20, 110, 40],
        "secret": False,
    }
    return t | over


def event(kind: str = "pointer", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": kind, "t": time.time() * 1000, "tab": 7, "win": 3}
    extra: dict[str, dict[str, Any]] = {
        "active": {"url": "https://example.org/a", "title": "A"},
        "page": {
            "url": "https://example.org/a",
            "title": "A",
            "viewport": [0, 80, 1280, 800],
            "dpr": 1,
            "sensitive": [[10, 100, 200, 120]],
            "handler_us": 40,
        },
        "pointer": {"x": 50, "y": 30, "button": 0, "target": target(), "handler_us": 35},
        "focus": {"target": target(), "handler_us": 20},
        "keys": {"target": target(), "handler_us": 15},
        "scroll": {"x": 50, "y": 30, "target": target(tag="div", role=None), "handler_us": 25},
        "change": {
            "target": target(tag="select", role="combobox", type=None),
            "option": {"text": "Japan", "value": "jp", "index": 2},
            "handler_us": 30,
        },
    }
    return base | extra[kind] | over


# -- the channel alone, over real HTTP --------------------------------------------------------
class Channel:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.pairing, _ = pair(home)
        self.received: list[dict[str, Any]] = []
        self.fail = False
        self.channel = BrowserChannel(home, self._take, status=lambda: "recording", port=0)

    def _take(self, events: list[dict[str, Any]]) -> None:
        if self.fail:
            raise RuntimeError("the recorder broke")
        self.received.extend(events)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.channel.port}"

    def headers(self, **over: str | None) -> dict[str, str]:
        h: dict[str, str | None] = {
            "Origin": ORIGIN,
            "Authorization": f"Bearer {self.pairing.token}",
            "Content-Type": "application/json",
        }
        h |= {k.replace("_", "-"): v for k, v in over.items()}
        return {k: v for k, v in h.items() if v is not None}

    def post(self, body: Any, raw: bytes | None = None, **headers: str | None) -> httpx.Response:
        content = raw if raw is not None else json.dumps(body).encode()
        return httpx.post(
            f"{self.base}/v1/events", content=content, headers=self.headers(**headers), timeout=10
        )


@pytest.fixture
def chan(tmp_path: Path) -> Iterator[Channel]:
    c = Channel(tmp_path / "home")
    c.channel.start()
    try:
        yield c
    finally:
        c.channel.stop()


def test_accepts_every_event_type_and_converts_time(chan: Channel) -> None:
    kinds = ["active", "page", "pointer", "focus", "keys", "scroll", "change"]
    sent = [event(k) for k in kinds]
    sent[0]["t"] = time.time() * 1000 - 5000  # five seconds ago
    before = time.monotonic_ns()
    r = chan.post({"events": sent})
    after = time.monotonic_ns()
    assert r.status_code == 204, r.text
    assert [e["type"] for e in chan.received] == kinds
    first = chan.received[0]
    assert before - 6e9 < first["t_ns"] < after - 4e9
    assert first["url"] == "https://example.org/a" and first["handler_us"] is None
    change = chan.received[-1]
    assert change["option"] == {"text": "Japan", "value": "jp", "index": 2}
    assert chan.received[2]["target"]["bbox"] == [10, 20, 110, 40]
    stats = chan.channel.stats
    assert stats["accepted"] == 7 and stats["refused"] == {}
    assert stats["handler_us"]["n"] == 6 and stats["handler_us"]["max"] == 40
    assert stats["last_event_ns"] == max(e["t_ns"] for e in chan.received)
    assert not any(k.lower().startswith("access-control") for k in r.headers)
    # an element that cannot be placed (a frame gone meanwhile) has no box; the rest is kept
    placeless = event("pointer", target=target(bbox=None))
    assert chan.post({"events": [placeless]}).status_code == 204
    assert chan.received[-1]["target"]["bbox"] is None


def test_t_ns_is_on_the_monotonic_clock() -> None:
    assert to_monotonic_ns(1000.5, mono_ns=50_000_000_000, wall_ns=1_000_600_000) == (
        50_000_000_000 - 100_000
    )


def test_long_names_are_cut_and_nulls_kept(chan: Channel) -> None:
    long = "n" * 1000
    ev = event("pointer", target=target(name=long, id="i" * 900, autocomplete=None))
    assert chan.post({"events": [ev, event("change", option=None)]}).status_code == 204
    got = chan.received[0]["target"]
    assert got["name"] == "n" * 200 and got["id"] == "i" * 200
    assert chan.received[1]["option"] is None


def test_hello_says_the_recorders_state(chan: Channel) -> None:
    auth = {"Authorization": f"Bearer {chan.pairing.token}"}
    # Chromium sends no Origin on an extension's GET
    r = httpx.get(f"{chan.base}/v1/hello", headers=auth)
    assert r.status_code == 200 and r.json() == {"recorder": True, "state": "recording"}
    r = httpx.get(f"{chan.base}/v1/hello", headers=auth | {"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert httpx.get(f"{chan.base}/v1/hello").status_code == 401
    assert chan.channel.stats["hellos"] == 1


BAD_TYPES: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("x as a string", lambda: event("pointer", x="50")),
    ("bool as an int", lambda: event("pointer", button=True)),
    ("bbox of 3", lambda: event("pointer", target=target(bbox=[1, 2, 3]))),
    ("float coordinate", lambda: event("scroll", x=1.5)),
    ("unknown field", lambda: event("focus", value="typed text")),
    ("unknown type", lambda: event("focus", type="keystroke")),
    ("url too long", lambda: event("active", url="https://x.org/" + "a" * 4100)),
    ("title too long", lambda: event("page", title="t" * 1001)),
    ("name too long", lambda: event("focus", target=target(name="n" * 1001))),
    ("too many rectangles", lambda: event("page", sensitive=[[0, 0, 1, 1]] * 101)),
    ("secret not bool", lambda: event("keys", target=target(secret="no"))),
    ("t not finite", lambda: event("keys", t=float("inf"))),
    ("no target", lambda: {k: v for k, v in event("keys").items() if k != "target"}),
]


@pytest.mark.parametrize("why,make", BAD_TYPES, ids=[b[0] for b in BAD_TYPES])
def test_invalid_events_are_refused(chan: Channel, why: str, make: Callable[[], Any]) -> None:
    body = json.dumps({"events": [event("keys"), make()]}, allow_nan=True).encode()
    r = chan.post(None, raw=body)
    assert r.status_code == 422, why
    assert "error" in r.json() and "event 1" in r.json()["error"]
    assert chan.received == [] and chan.channel.stats["refused"] == {"invalid": 1}


def _refusals(c: Channel) -> list[tuple[str, Callable[[], httpx.Response], int, str]]:
    ok = {"events": [event("keys")]}
    port = c.channel.port
    return [
        ("no token", lambda: c.post(ok, Authorization=None), 401, "token"),
        ("wrong token", lambda: c.post(ok, Authorization="Bearer " + "x" * 32), 401, "token"),
        ("token not bearer", lambda: c.post(ok, Authorization=c.pairing.token), 401, "token"),
        ("foreign origin", lambda: c.post(ok, Origin="https://evil.example"), 403, "origin"),
        ("null origin", lambda: c.post(ok, Origin="null"), 403, "origin"),
        ("page on loopback", lambda: c.post(ok, Origin=f"http://127.0.0.1:{port}"), 403, "origin"),
        (
            "other extension",
            lambda: c.post(ok, Origin="chrome-extension://" + "a" * 32),
            403,
            "origin",
        ),
        ("no origin", lambda: c.post(ok, Origin=None), 403, "origin"),
        ("foreign host", lambda: c.post(ok, Host=f"evil.example:{port}"), 421, "host"),
        ("other port", lambda: c.post(ok, Host=f"127.0.0.1:{port + 1}"), 421, "host"),
        ("text/plain", lambda: c.post(ok, Content_Type="text/plain"), 415, "content_type"),
        ("no content type", lambda: c.post(ok, Content_Type=None), 415, "content_type"),
        (
            "too big",
            lambda: c.post(None, raw=b'{"events": [' + b" " * MAX_BODY + b"]}"),
            413,
            "size",
        ),
        (
            "too big, streamed",
            lambda: httpx.post(
                f"{c.base}/v1/events",
                content=iter([b'{"events": [', b" " * MAX_BODY, b"]}"]),
                headers=c.headers(),
            ),
            413,
            "size",
        ),
        ("too many", lambda: c.post({"events": [event("keys")] * 201}), 413, "count"),
        ("bad JSON", lambda: c.post(None, raw=b'{"events": [{"type": '), 422, "json"),
        ("not an object", lambda: c.post([event("keys")]), 422, "invalid"),
        ("extra key", lambda: c.post({"events": [], "more": 1}), 422, "invalid"),
        (
            "OPTIONS preflight",
            lambda: httpx.options(
                f"{c.base}/v1/events",
                headers={
                    "Origin": "https://evil.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type",
                },
            ),
            403,
            "preflight",
        ),
        (
            "OPTIONS from the extension",
            lambda: httpx.options(f"{c.base}/v1/events", headers=c.headers()),
            403,
            "preflight",
        ),
        (
            "GET events",
            lambda: httpx.get(f"{c.base}/v1/events", headers=c.headers()),
            405,
            "method",
        ),
        ("other path", lambda: httpx.post(f"{c.base}/v1/x", headers=c.headers()), 404, "path"),
    ]


def test_every_refusal(chan: Channel) -> None:
    for why, send, status, reason in _refusals(chan):
        before = chan.channel.stats["refused"].get(reason, 0)
        r = send()
        assert r.status_code == status, f"{why}: {r.status_code} {r.text}"
        assert "error" in r.json(), why
        assert not any(k.lower().startswith("access-control") for k in r.headers), why
        assert chan.channel.stats["refused"][reason] == before + 1, why
    assert chan.received == [] and chan.channel.stats["accepted"] == 0
    assert chan.post({"events": [event("keys")]}).status_code == 204  # and it still works


def test_a_failing_recorder_is_a_500_not_a_crash(chan: Channel) -> None:
    chan.fail = True
    assert chan.post({"events": [event("keys")]}).status_code == 500
    chan.fail = False
    assert chan.post({"events": [event("keys")]}).status_code == 204
    assert chan.channel.stats["refused"] == {"recorder": 1}


def test_a_new_token_works_at_once_and_the_old_one_stops(chan: Channel) -> None:
    old = chan.pairing.token
    time.sleep(0.01)  # a new mtime
    chan.pairing, changed = pair(chan.home, new=True)
    assert changed and chan.pairing.token != old
    assert chan.post({"events": [event("keys")]}).status_code == 204
    assert chan.post({"events": [event("keys")]}, Authorization=f"Bearer {old}").status_code == 401
    pairing_path(chan.home).unlink()
    assert chan.post({"events": [event("keys")]}).status_code == 401
    assert chan.channel.stats["refused"] == {"token": 1, "unpaired": 1}


def test_port_taken_and_no_pairing_are_clear_errors(chan: Channel, tmp_path: Path) -> None:
    other = tmp_path / "other"
    with pytest.raises(BrowserError, match="no browser pairing"):
        BrowserChannel(other, lambda e: None).start()
    pair(other, port=chan.channel.port)
    second = BrowserChannel(other, lambda e: None)
    with pytest.raises(BrowserError, match=f"127.0.0.1:{chan.channel.port}.*already uses"):
        second.start()
    second.stop()  # harmless when it never started


# -- pairing -------------------------------------------------------------------------------
def test_pairing_file_is_private_and_stable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first, made = pair(home)
    assert made and first.port == 8611 and len(first.token) >= 32
    path = pairing_path(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "port": 8611,
        "token": first.token,
        "extension_ids": [EXTENSION_ID],
    }
    again, made = pair(home)
    assert again == first and not made
    moved, made = pair(home, port=9123)
    assert made and moved.port == 9123 and moved.token == first.token
    renewed, made = pair(home, new=True)
    assert made and renewed.port == 9123 and renewed.token != first.token
    assert renewed.link() == (
        f"chrome-extension://{EXTENSION_ID}/pair.html#port=9123&token={renewed.token}"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text('{"port": "8611"}')
    with pytest.raises(BrowserError, match="damaged"):
        load_pairing(home)
    with pytest.raises(BrowserError, match="pair --new"):
        pair(home)
    fresh, made = pair(home, new=True)
    assert made and fresh.port == 8611 and load_pairing(home) == fresh
    with pytest.raises(BrowserError, match="between 1 and 65535"):
        pair(tmp_path / "h2", port=70000)


def test_pair_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from demotrace.cli_browser import add_parsers

    monkeypatch.setenv("DEMOTRACE_HOME", str(tmp_path / "home"))
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> str:
        args = parser.parse_args(["browser", "pair", *argv])
        assert args.func(args) == 0
        return capsys.readouterr().out

    link = run().strip()
    got = load_pairing(tmp_path / "home")
    assert got is not None and link == got.link()
    shown = json.loads(run("--json", "--port", "9001"))
    assert shown["port"] == 9001 and shown["extension_dir"] == str(EXTENSION_DIR)
    assert shown["link"].endswith(f"&token={got.token}")
    assert run("--new").strip() != link
    assert extension_dir() == EXTENSION_DIR and (EXTENSION_DIR / "background.js").is_file()


# -- the real extension in the real Chromium ---------------------------------------------------
FORM = """<!doctype html>
<html><head><meta charset="utf-8"><title>Order form</title>
<style>
  body { font: 16px sans-serif; margin: 20px; }
  input, select, button, textarea { font-size: 16px; margin: 6px; }
  #name { background: #ff00ff; border: 0; padding: 4px; width: 240px; }
  .tall { height: 2400px; }
</style></head>
<body>
<form onsubmit="return false">
  <p><label for="name">Full name</label> <input id="name" autocomplete="name"></p>
  <p><label for="pw">Password</label>
     <input id="pw" type="password" autocomplete="current-password"></p>
  <p><label for="pin">PIN</label> <input id="pin" type="password" autocomplete="off">
     <button type="button" id="show"
       onclick="pin.type = pin.type === 'password' ? 'text' : 'password'">Show</button></p>
  <p><label for="country">Country</label>
     <select id="country"><option value="fr">France</option><option value="de">Germany</option>
     <option value="jp">Japan</option></select></p>
  <p><label><input type="checkbox" id="agree"> I agree to the terms</label></p>
  <p><button type="button" id="send">Send it</button>
     <button type="button" id="close" aria-label="Close dialog">x</button></p>
  <p><textarea id="notes" placeholder="Notes"></textarea></p>
</form>
<div class="tall" id="space">Room to scroll</div>
</body></html>
"""

ATTACK = """<!doctype html>
<html><head><meta charset="utf-8"><title>Innocent page</title></head><body>
<script>
  // A web page that knows the channel's port (and, worse, its token) tries to send events.
  const url = "http://127.0.0.1:PORT/v1/events";
  const body = JSON.stringify({events: [{type: "active", t: Date.now(), tab: 1, win: 1,
    url: "https://ATTACK-MARKER.example/", title: "ATTACK-MARKER"}]});
  const tries = [
    fetch(url, {method: "POST", body,
      headers: {"Content-Type": "application/json", "Authorization": "Bearer TOKEN"}}),
    fetch(url, {method: "POST", body, mode: "no-cors",
      headers: {"Content-Type": "text/plain"}}),
    fetch(url, {method: "POST", body, mode: "no-cors"}),
    fetch(url.replace("events", "hello"), {headers: {"Authorization": "Bearer TOKEN"}}),
  ];
  Promise.allSettled(tries).then((r) => {
    window.outcome = r.map((x) => x.status === "fulfilled" ? x.value.type : "refused");
    document.title = "attack done";
  });
</script></body></html>
"""

FRAMES = """<!doctype html>
<html><head><meta charset="utf-8"><title>Framed app</title>
<style>body { font: 16px sans-serif; margin: 20px; } iframe { border: 3px solid #777; }</style>
</head><body>
<p>An older web app: its forms live in a frame of the same site.</p>
<iframe id="app" src="/inner" width="520" height="260"></iframe>
</body></html>
"""

INNER = """<!doctype html>
<html><head><meta charset="utf-8"><title>inner</title>
<style>body { font: 16px sans-serif; margin: 14px; } input, button { font-size: 16px; }</style>
</head><body>
<p><button type="button" id="inner-send">Send order</button></p>
<p><label for="inner-pw">PIN</label> <input id="inner-pw" type="password"></p>
<p><label for="inner-qty">Quantity</label> <input id="inner-qty" type="number"></p>
<vault-box id="vault"></vault-box>
<script>
window.testRoots = {};
customElements.define("vault-box", class extends HTMLElement {
  connectedCallback() {
    const root = this.attachShadow({ mode: "closed" });
    root.innerHTML = '<label for="f">Vault code</label> <input id="f" type="password">';
    window.testRoots[this.id] = root;
  }
});
</script>
</body></html>
"""

LEGACY = """<!doctype html>
<html><head><meta charset="utf-8"><title>Legacy widget</title>
<style>body { font: 16px sans-serif; margin: 20px; } input { font-size: 16px; }</style>
</head><body>
<p>A login widget that hides its field in a closed root on a plain div.</p>
<div id="legacy"></div>
<script>
window.testRoots = {};
const host = document.getElementById("legacy");
const root = host.attachShadow({ mode: "closed" });
root.innerHTML = '<label for="f">Passphrase</label> <input id="f" type="password">';
window.testRoots.legacy = root;
</script>
</body></html>
"""

MANY = (
    '<!doctype html><html><head><meta charset="utf-8"><title>Many PINs</title></head>'
    '<body style="display: flex; flex-wrap: wrap; gap: 4px">'
    + "".join(f'<input type="password" id="p{i}" style="width: 50px">' for i in range(60))
    + "</body></html>"
)

COI = {  # cross-origin isolated: performance.now() is coarsened to 5 µs here, not 100 µs
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Pages(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, channel_port: int, token: str) -> None:
        pages = {
            "/form": (FORM, COI),
            "/plain": (FORM, {}),
            "/frames": (FRAMES, {}),
            "/private": (FORM, {}),
            "/many": (MANY, {}),
            "/legacy": (LEGACY, {}),
            "/inner": (INNER, {}),
            "/attack": (ATTACK.replace("PORT", str(channel_port)).replace("TOKEN", token), {}),
        }

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = pages.get(self.path)
                if page is None:
                    self.send_error(404)
                    return
                data = page[0].encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in page[1].items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"


class Live:
    """The channel, a page server and Chromium with the extension, on one desktop."""

    def __init__(self, desktop: Any, home: Path) -> None:
        self.desktop = desktop
        self.home = home
        self.pairing, _ = pair(home, port=free_port())
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.channel = BrowserChannel(home, self._take, status=lambda: "recording")
        self.pages = Pages(self.pairing.port, self.pairing.token)
        self.browser: Browser

    def _take(self, events: list[dict[str, Any]]) -> None:
        with self.lock:
            self.received.extend(events)

    def since(self, mark: int) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received[mark:])

    def mark(self) -> int:
        with self.lock:
            return len(self.received)

    def wait(
        self, mark: int, want: Callable[[dict[str, Any]], bool], what: str, timeout: float = 10
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.since(mark):
                if want(ev):
                    return ev
            if time.monotonic() > deadline:
                kinds = [e["type"] for e in self.since(mark)]
                raise AssertionError(f"no {what} within {timeout:.0f} s; got {kinds}")
            time.sleep(0.05)

    def open(self, path: str) -> int:
        mark = self.mark()
        url = self.pages.base + path
        self.browser.goto(url)
        self.wait(mark, lambda e: e["type"] == "page" and e["url"] == url, f"page event of {url}")
        return mark


@pytest.fixture(scope="module")
def live(desktop: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (run `make setup`)")
    lv = Live(desktop, tmp_path_factory.mktemp("browser-home"))
    threading.Thread(target=lv.pages.serve_forever, daemon=True).start()
    lv.channel.start()
    try:
        with chromium_with_extension(desktop, lv.pairing) as browser:
            lv.browser = browser
            yield lv
    finally:
        lv.channel.stop()
        lv.pages.shutdown()
        lv.pages.server_close()


@pytest.fixture(scope="module")
def worker(live: Live) -> Iterator[Any]:
    from demotrace.testbench.worker import ScriptedWorker

    with ScriptedWorker(live.desktop.display, seed=3, speed=6) as w:
        yield w


def on(kind: str, element_id: str) -> Callable[[dict[str, Any]], bool]:
    """An event of type ``kind`` whose target has the id ``element_id``."""
    return lambda e: e["type"] == kind and (e.get("target") or {}).get("id") == element_id


def until(what: str, check: Callable[[], Any], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.05)


def close(a: list[int], b: list[int]) -> bool:
    """Two screen boxes equal within a pixel (rounding)."""
    return len(a) == len(b) == 4 and all(abs(x - y) <= 1 for x, y in zip(a, b, strict=True))


def inside(box: list[int], x: int, y: int) -> bool:
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def magenta_box(display: str) -> list[int]:
    """Where #name's magenta background is on the screen: ground truth from the pixels."""
    import mss
    import numpy as np

    with mss.MSS(display=display) as grabber:
        shot = np.asarray(grabber.grab(grabber.monitors[0]))
    ys, xs = np.nonzero((shot[:, :, 2] == 255) & (shot[:, :, 1] == 0) & (shot[:, :, 0] == 255))
    assert len(xs), "the magenta input is not on the screen"
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


@pytest.mark.desktop
def test_pointer_and_focus_targets_on_screen(live: Live, worker: Any) -> None:
    mark = live.open("/form")
    url = live.pages.base + "/form"
    active = live.wait(mark, lambda e: e["type"] == "active" and e["url"] == url, "active")
    assert active["win"] >= 0 and active["tab"] >= 0

    truth = magenta_box(live.desktop.display)
    assert close(truth, live.browser.element_box("#name"))
    x, y = (truth[0] + truth[2]) // 2, (truth[1] + truth[3]) // 2
    mark = live.mark()
    worker.click(x, y)
    ev = live.wait(mark, on("pointer", "name"), "pointer event")
    t = ev["target"]
    assert (t["tag"], t["role"], t["name"], t["id"], t["type"]) == (
        "input",
        "textbox",
        "Full name",
        "name",
        "text",
    )
    assert inside(t["bbox"], x, y), (t["bbox"], x, y)
    assert close(t["bbox"], truth), (t["bbox"], truth)
    assert (ev["x"], ev["y"], ev["button"]) == (x, y, 0) and t["secret"] is False
    focus = live.wait(mark, on("focus", "name"), "focus event")
    assert focus["target"]["id"] == "name"

    for selector, tag, role, name in [
        ("#send", "button", "button", "Send it"),
        ("#close", "button", "button", "Close dialog"),
        ("#agree", "input", "checkbox", "I agree to the terms"),
    ]:
        x, y = live.browser.element_center(selector)
        mark = live.mark()
        worker.click(x, y)
        ev = live.wait(mark, on("pointer", selector[1:]), f"pointer on {selector}")
        t = ev["target"]
        assert (t["tag"], t["role"], t["name"]) == (tag, role, name), selector
        assert inside(t["bbox"], x, y), (selector, t["bbox"], x, y)
    changed = live.wait(mark, on("change", "agree"), "checkbox change")
    assert changed["target"]["id"] == "agree" and changed["option"] is None


@pytest.mark.desktop
def test_boxes_stay_right_on_a_zoomed_page(live: Live, worker: Any) -> None:
    live.open("/plain")
    mark = live.mark()
    worker.click(*live.browser.element_center("#space"))
    live.wait(mark, on("pointer", "space"), "pointer on the page")
    worker.hotkey("ctrl", "=")  # 110%
    worker.hotkey("ctrl", "=")  # 125%
    try:
        until("the zoom", lambda: live.browser.eval("devicePixelRatio") == 1.25)
        for selector in ("#name", "#send"):
            truth = live.browser.element_box(selector)
            x, y = live.browser.element_center(selector)
            mark = live.mark()
            worker.click(x, y)
            ev = live.wait(mark, on("pointer", selector[1:]), f"pointer on {selector}")
            assert (ev["x"], ev["y"]) == (x, y)
            assert close(ev["target"]["bbox"], truth), (selector, ev["target"]["bbox"], truth)
    finally:
        worker.hotkey("ctrl", "0")
    until("zoom 100%", lambda: live.browser.eval("devicePixelRatio") == 1)


@pytest.mark.desktop
def test_select_change_reports_the_option(live: Live, worker: Any) -> None:
    x, y = live.browser.element_center("#country")
    mark = live.mark()
    worker.click(x, y)  # opens Chromium's popup; the keys choose in it
    ev = live.wait(mark, on("pointer", "country"), "pointer on the select")
    assert (ev["target"]["role"], ev["target"]["name"]) == ("combobox", "Country")
    worker.key("down", repeat=2)
    worker.key("enter")
    ev = live.wait(mark, on("change", "country"), "select change")
    assert ev["target"]["id"] == "country" and ev["target"]["tag"] == "select"
    assert ev["option"] == {"text": "Japan", "value": "jp", "index": 2}
    assert live.browser.eval("document.querySelector('#country').value") == "jp"


@pytest.mark.desktop
def test_secret_fields_and_typed_text_never_leave_the_page(live: Live, worker: Any) -> None:
    canary, password = "Zebra canary 7781", "hunter2 Secret 99"
    mark = live.mark()
    worker.click(*live.browser.element_center("#name"))
    worker.hotkey("ctrl", "a")
    worker.type_text(canary)
    worker.click(*live.browser.element_center("#notes"))
    worker.type_text(canary)
    pw = live.browser.element_box("#pw")
    worker.click((pw[0] + pw[2]) // 2, (pw[1] + pw[3]) // 2)
    worker.type_text(password, secret=True)
    worker.key("tab")
    live.wait(mark, on("focus", "pin"), "focus on the next field after tab")
    assert live.browser.eval("document.querySelector('#pw').value") == password

    got = live.since(mark)
    keys = [e["target"]["id"] for e in got if e["type"] == "keys"]
    bursts = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
    assert bursts == ["name", "notes", "pw"], keys  # one event per burst, no key values
    secret = [e for e in got if e.get("target") and e["target"]["id"] == "pw"]
    assert secret and all(e["target"]["secret"] for e in secret)
    assert {e["type"] for e in secret} >= {"pointer", "focus", "keys"}
    pages = [e for e in live.received if e["type"] == "page" and e["url"].endswith("/form")]
    assert any(close(r, pw) for p in pages for r in p["sensitive"]), (
        pw,
        [p["sensitive"] for p in pages],
    )
    everything = json.dumps(live.received)
    for word in ("Zebra", "canary", "7781", "hunter2", "Secret"):
        assert word not in everything, word


@pytest.mark.desktop
def test_scroll_moves_the_page_and_the_secret_box(live: Live, worker: Any) -> None:
    x, y = live.browser.element_center("#space")
    mark = live.mark()
    worker.scroll(x, y, dy=-1)
    ev = live.wait(mark, on("scroll", "space"), "scroll event")
    assert (ev["x"], ev["y"]) == (x, y)
    live.wait(mark, lambda e: e["type"] == "page", "page event after the scroll")
    time.sleep(0.5)  # smooth scrolling ends; the last page event follows within 200 ms
    assert live.browser.eval("window.scrollY") > 0
    want = []
    for field in ("#pw", "#pin"):
        with contextlib.suppress(AssertionError):  # scrolled out of view
            want.append(live.browser.visible_box(field))
    last = [e for e in live.since(mark) if e["type"] == "page"][-1]
    assert len(last["sensitive"]) == len(want), (last["sensitive"], want)
    for got, expected in zip(last["sensitive"], want, strict=True):
        assert close(got, expected), (got, expected)


@pytest.mark.desktop
def test_handler_time_is_in_every_content_event(live: Live, worker: Any) -> None:
    # /form is cross-origin isolated: performance.now() has 5 µs steps there, not 100 µs
    live.open("/form")
    assert live.browser.eval("crossOriginIsolated") is True
    mark = live.mark()
    for selector in ("#name", "#send", "#notes", "#agree"):
        worker.click(*live.browser.element_center(selector))
    worker.type_text("abc")
    worker.scroll(*live.browser.element_center("#space"), dy=2)
    live.wait(mark, on("scroll", "space"), "scroll event")
    got = [e for e in live.since(mark) if e["type"] != "active"]
    assert len(got) >= 8
    assert all(isinstance(e["handler_us"], int) and e["handler_us"] > 0 for e in got), [
        (e["type"], e["handler_us"]) for e in got
    ]
    active = [e for e in live.received if e["type"] == "active"]
    assert active and all(e["handler_us"] is None for e in active)


@pytest.mark.desktop
def test_events_are_dropped_while_the_recorder_is_stopped(live: Live, worker: Any) -> None:
    live.channel.stop()
    try:
        for _ in range(3):
            worker.click(*live.browser.element_center("#send"))
        time.sleep(0.3)  # the extension's send fails: it drops these and pauses for 3 s
    finally:
        live.channel.start()
    restarted = time.monotonic_ns()
    mark = live.mark()
    time.sleep(3.2)
    worker.click(*live.browser.element_center("#name"))
    ev = live.wait(mark, on("pointer", "name"), "pointer after the restart")
    assert ev["target"]["id"] == "name"
    assert all(e["t_ns"] > restarted for e in live.since(mark)), "old events were replayed"


@pytest.mark.desktop
def test_a_web_page_cannot_post_to_the_channel(live: Live) -> None:
    refused = dict(live.channel.stats["refused"])
    mark = live.mark()
    live.browser.goto(live.pages.base + "/attack")
    until("the page's fetches settle", lambda: live.browser.eval("document.title") == "attack done")
    outcome = live.browser.eval("window.outcome")
    assert outcome[0] == "refused" and outcome[3] == "refused"  # preflights refused
    now = live.channel.stats["refused"]
    assert now.get("preflight", 0) - refused.get("preflight", 0) == 2
    assert now.get("origin", 0) - refused.get("origin", 0) == 2  # the no-cors POSTs
    time.sleep(0.3)
    assert "ATTACK-MARKER" not in json.dumps(live.since(mark))


@pytest.mark.desktop
def test_a_replaced_token_is_refused_until_paired_again(live: Live, worker: Any) -> None:
    live.open("/plain")
    time.sleep(0.01)
    renewed, _ = pair(live.home, new=True)
    refused = live.channel.stats["refused"].get("token", 0)
    mark = live.mark()
    worker.click(*live.browser.element_center("#send"))
    until("the old token is refused", lambda: live.channel.stats["refused"].get("token") != refused)
    assert live.since(mark) == []
    # as a person does: the new link pasted (here typed) into the address bar
    worker.hotkey("ctrl", "l")
    worker.type_storm(renewed.link())
    worker.key("enter")
    until("paired again", lambda: live.browser.eval("document.title") == "demotrace: paired")
    live.browser.goto(live.pages.base + "/plain")  # the new pairing ended the 3 s pause
    mark = live.mark()
    worker.click(*live.browser.element_center("#send"))
    ev = live.wait(mark, on("pointer", "send"), "pointer after pairing again")
    assert ev["target"]["id"] == "send"
    # the pair page as the active tab, once paired: its address goes without the token
    mark = live.mark()
    live.browser.pair(renewed)
    live.wait(mark, lambda e: e["type"] == "active" and "pair.html" in e["url"], "pair page")
    sent = json.dumps(live.received)
    assert live.pairing.token not in sent and renewed.token not in sent


@pytest.mark.desktop
def test_no_browser_window_in_focus_is_a_null_url(live: Live, worker: Any) -> None:
    live.open("/plain")
    worker.click(*live.browser.element_center("#space"))  # the page has the focus
    until("the page has the focus", lambda: live.browser.eval("document.hasFocus()"))
    mark = live.mark()
    live.desktop.launch(["xterm"], "xterm")
    try:
        ev = live.wait(mark, lambda e: e["type"] == "active" and e["url"] is None, "null url")
        assert ev["title"] is None
    finally:
        live.desktop.stop_app("xterm")


def test_pairing_type_is_plain_data() -> None:
    p = Pairing(8611, "t" * 32)
    assert p.as_json()["extension_ids"] == [EXTENSION_ID]


@pytest.mark.desktop
def test_a_password_shown_as_text_stays_secret(live: Live, worker: Any) -> None:
    """A "show password" button makes the field type=text: it stays secret, and masked."""
    live.open("/plain")
    time.sleep(0.5)  # the page events after load have seen the password field
    worker.click(*live.browser.element_center("#show"))
    until("shown", lambda: live.browser.eval("document.querySelector('#pin').type") == "text")
    mark = live.mark()
    worker.click(*live.browser.element_center("#pin"))
    worker.type_text("Shown pass 8008", secret=True)
    keys = live.wait(mark, on("keys", "pin"), "keys into the shown PIN")
    assert keys["target"]["secret"] is True and keys["target"]["type"] == "text"
    # a scroll moves the fields: the page event after it still masks the shown one
    x, y = live.browser.element_center("#space")
    mark = live.mark()
    worker.scroll(x, y, dy=-1)
    live.wait(mark, lambda e: e["type"] == "page", "page event after the scroll")
    time.sleep(0.5)
    pin = live.browser.visible_box("#pin")
    last = [e for e in live.since(mark) if e["type"] == "page"][-1]
    assert any(close(r, pin) for r in last["sensitive"]), (pin, last["sensitive"])
    assert "8008" not in json.dumps(live.received)


@pytest.mark.desktop
def test_more_secret_fields_than_an_event_carries_mask_the_page(live: Live) -> None:
    mark = live.open("/many")
    url = live.pages.base + "/many"
    page = live.wait(mark, lambda e: e["type"] == "page" and e["url"] == url, "page event")
    assert page["sensitive"] == [page["viewport"]]


@pytest.mark.desktop
def test_actions_inside_a_frame_of_the_same_site(live: Live, worker: Any) -> None:
    """The content script runs in the top frame; a frame of the same origin is heard from
    there, with boxes on the screen, and its password field is secret."""
    live.open("/frames")
    until(
        "the frame has loaded",
        lambda: live.browser.eval(
            "!!document.querySelector('#app').contentDocument.querySelector('#inner-send')"
        ),
    )
    time.sleep(0.6)  # a page event after the frame's load: its events are listened to
    for selector, role, name in [
        ("#inner-send", "button", "Send order"),
        ("#inner-qty", "spinbutton", "Quantity"),
    ]:
        truth = live.browser.element_box(f"#app >>> {selector}")
        x, y = (truth[0] + truth[2]) // 2, (truth[1] + truth[3]) // 2
        mark = live.mark()
        worker.click(x, y)
        ev = live.wait(mark, on("pointer", selector[1:]), f"pointer on {selector} in the frame")
        t = ev["target"]
        assert (t["role"], t["name"], t["secret"]) == (role, name, False), t
        assert close(t["bbox"], truth), (t["bbox"], truth)
    pin = "Frame-Pin-4417"
    truth = live.browser.element_box("#app >>> #inner-pw")
    mark = live.mark()
    worker.click((truth[0] + truth[2]) // 2, (truth[1] + truth[3]) // 2)
    worker.type_text(pin, secret=True)
    keys = live.wait(mark, on("keys", "inner-pw"), "keys into the frame's PIN")
    assert keys["target"]["secret"] is True and close(keys["target"]["bbox"], truth)
    focus = [e for e in live.since(mark) if e["type"] == "focus"]
    assert focus and focus[-1]["target"]["id"] == "inner-pw" and focus[-1]["target"]["secret"]
    assert pin not in json.dumps(live.received)


def masked(live: Live, mark: int, url: str, box: list[int]) -> Callable[[], bool]:
    """Whether the last page event of ``url`` since ``mark`` has ``box`` among its secret boxes."""

    def check() -> bool:
        pages = [e for e in live.since(mark) if e["type"] == "page" and e["url"] == url]
        return bool(pages) and any(close(r, box) for r in pages[-1]["sensitive"])

    return check


def type_secret(live: Live, worker: Any, box: list[int], secret: str) -> int:
    """Click the field at ``box`` and type ``secret``: the keys are secret, and no part of the
    secret (nor it less its first or last two keys) reached the channel. Returns the mark."""
    mark = live.mark()
    worker.click((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)
    worker.type_text(secret, secret=True)
    keys = live.wait(mark, lambda e: e["type"] == "keys", "keys into the secret field")
    assert keys["target"]["secret"] is True and close(keys["target"]["bbox"], box), keys
    received = json.dumps(live.received)
    for part in (secret, secret[2:], secret[:-2]):
        assert part not in received
    return mark


@pytest.mark.desktop
def test_a_closed_shadow_root_inside_a_frame_is_masked_and_heard(live: Live, worker: Any) -> None:
    """A web component with a closed root, in a frame of the same site: its password field is
    among the page's secret boxes, and keys into it are secret."""
    mark = live.open("/frames")
    until(
        "the frame's web component is up",
        lambda: live.browser.eval(
            "!!document.querySelector('#app').contentWindow.testRoots?.vault"
        ),
    )
    truth = live.browser.element_box("#app >>> #vault >>> #f")
    url = live.pages.base + "/frames"

    until("the frame's shadow-root password field is masked", masked(live, mark, url, truth))
    code = "Vault-7719"
    type_secret(live, worker, truth, code)


@pytest.mark.desktop
def test_a_closed_root_on_a_div_is_opened_when_the_keyboard_goes_in(
    live: Live, worker: Any
) -> None:
    """Closed roots of built-in elements are not walked for, but focus going into one opens
    it: the field is secret, its keys are, and from then on it is masked."""
    live.open("/legacy")
    url = live.pages.base + "/legacy"
    truth = live.browser.element_box("#legacy >>> #f")
    mark = type_secret(live, worker, truth, "Legacy-Phrase-6606")
    focus = [e for e in live.since(mark) if e["type"] == "focus"]
    assert focus and focus[-1]["target"]["id"] == "f" and focus[-1]["target"]["secret"], focus
    until("the passphrase field is masked", masked(live, mark, url, truth))


@pytest.mark.desktop
def test_an_incognito_window_sends_nothing(live: Live, worker: Any) -> None:
    """The extension is not allowed in incognito: a private window's page, clicks and keys
    are never reported, and while it has the focus no page is (its url is null)."""
    browser = live.browser
    live.open("/frames")  # the normal window shows a page without the private page's ids
    home_target = browser._target
    ctx = browser.browser_cdp("Target.createBrowserContext")["browserContextId"]
    url = live.pages.base + "/private"
    mark = live.mark()
    try:
        target = browser.browser_cdp(
            "Target.createTarget", url=url, browserContextId=ctx, newWindow=True
        )["targetId"]
        browser.attach(target)
        until(
            "the private page has loaded", lambda: browser.eval("document.readyState") == "complete"
        )
        canary = "Private canary 5150"
        worker.click(*browser.element_center("#name"))
        until("the private page has the focus", lambda: browser.eval("document.hasFocus()"))
        worker.type_text(canary)
        worker.click(*browser.element_center("#send"))
        until(
            "the text is in the field",
            lambda: browser.eval("document.querySelector('#name').value") == canary,
        )
        live.wait(mark, lambda e: e["type"] == "active" and e["url"] is None, "a null url")
        time.sleep(1.0)  # anything the extension might still send has arrived
        got = live.since(mark)
        private = [
            e
            for e in got
            if e.get("url") == url or (e.get("target") or {}).get("id") in ("name", "send")
        ]
        assert private == [], private
        assert "/private" not in json.dumps(got) and "canary" not in json.dumps(live.received)
        # nothing from a page at all but the normal window's own (its frame's late page event)
        home = live.pages.base + "/frames"
        others = [e for e in got if e["type"] != "active" and e.get("url") != home]
        assert others == [], [(e["type"], e.get("url")) for e in others]
    finally:
        browser.browser_cdp("Target.disposeBrowserContext", browserContextId=ctx)
        browser.attach(home_target)

"""The browser extension's handler time per event, in the page, beside baselines from the same page.

    .venv/bin/python bench/extension.py                # 20 rounds (about 250 events, ~30 s)
    .venv/bin/python bench/extension.py --rounds 40

Everything is real: Xvfb + jwm, the system Chromium with the extension (``extension/``) paired to a
``BrowserChannel`` in this process, and XTEST input from ``ScriptedWorker`` (speed 12, seed 0)
on a form page served on loopback. Each round clicks a text field and types two letters, clicks a
check box, turns the wheel over one of two scrolling boxes, clicks a select and picks another
option in its popup with the keys, and scrolls the page down (and back at the next round): about
a dozen reported events (pointer, focus, keys, change, scroll, and the page events that scrolling
the page causes, as the secret fields move).

The page is served cross-origin isolated (COOP + COEP), where Chromium coarsens
``performance.now()`` to 5 µs instead of 100 µs, so the handler times are resolved.

Measured:

- ``handler_us`` of every event the channel accepted: ``performance.now()`` at the end of the
  content script's handler minus at its start (the message to the service worker is not in it);
- baseline, same page, same run: the page's own empty capture-phase listener on the same event
  types (on window, so it runs right after the content script's), timed the same way: the floor
  of this way of timing;
- the delay before the page's listener runs, ``performance.now() - event.timeStamp`` in that
  listener, with the extension and in a second Chromium without it (same page, same script,
  same seed): this includes the content script's whole handler with its message, plus the
  browser's own input routing, which dominates and varies.

Reported: n, median, p95 and max per event type and for all events. Prints a table and writes
``bench/out/extension.json``.
"""

from __future__ import annotations

import argparse
import http.server
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the Chromium helper shared with the tests
import browser_desktop  # noqa: E402
from common import save_result  # noqa: E402
from demotrace.browser import extension_dir  # noqa: E402
from demotrace.browser.channel import BrowserChannel  # noqa: E402
from demotrace.browser.pairing import pair  # noqa: E402
from demotrace.testbench.desktop import VirtualDesktop  # noqa: E402
from demotrace.testbench.worker import ScriptedWorker  # noqa: E402

OUT = HERE / "out" / "extension.json"
TYPES = ["pointerdown", "focusin", "keydown", "wheel", "change"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Bench form</title>
<style>
  body { font: 15px sans-serif; margin: 16px; }
  .row { display: flex; gap: 12px; margin: 8px 0; }
  input[type=text] { width: 150px; }
  .box { width: 300px; height: 120px; overflow: auto; border: 1px solid #888; }
  .box div { height: 900px; background: linear-gradient(#eee, #99c); }
</style></head>
<body>
<form onsubmit="return false">
  <div class="row">
    <label>First name <input type="text" id="t0"></label>
    <label>Last name <input type="text" id="t1"></label>
    <label for="t2">City</label><input type="text" id="t2" placeholder="City">
  </div>
  <div class="row">
    <input type="text" id="t3" aria-label="Street">
    <input type="password" id="t4" autocomplete="current-password" aria-label="Password">
    <input type="text" id="t5" autocomplete="one-time-code" aria-label="Code">
  </div>
  <div class="row">
    <label><input type="checkbox" id="c0"> Newsletter</label>
    <label><input type="checkbox" id="c1"> Terms</label>
    <label><input type="checkbox" id="c2"> Invoice</label>
    <label><input type="checkbox" id="c3"> Gift</label>
  </div>
  <div class="row">
    <label>Country <select id="s0"><option>France</option><option>Germany</option>
      <option>Japan</option><option>Peru</option><option>Chile</option><option>Ghana</option>
      <option>Kenya</option><option>Nepal</option><option>Oman</option><option>Spain</option>
      <option>Togo</option><option>Yemen</option></select></label>
    <label>Size <select id="s1"><option>XS</option><option>S</option><option>M</option>
      <option>L</option><option>XL</option><option>XXL</option><option>3XL</option>
      <option>4XL</option><option>5XL</option><option>6XL</option><option>7XL</option>
      <option>8XL</option></select></label>
  </div>
  <div class="row">
    <div class="box" id="b0"><div>first box</div></div>
    <div class="box" id="b1"><div>second box</div></div>
  </div>
</form>
<div id="space" style="height: 1600px">room to scroll the page</div>
<script>
  // The baseline: an empty capture-phase listener, timed the way the content script times its
  // handlers; and how long after the event's creation the page's listener runs.
  window.bench = {empty: [], delay: []};
  for (const type of TYPES) {
    window.addEventListener(type, (e) => {
      const t0 = performance.now();
      const t1 = performance.now();
      if (!e.isTrusted) return;
      bench.empty.push([type, Math.round((t1 - t0) * 1000)]);
      bench.delay.push([type, Math.round((t0 - e.timeStamp) * 1000)]);
    }, {capture: true, passive: true});
  }
</script>
</body></html>
""".replace("TYPES", str(TYPES))


class Pages(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        body = PAGE.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cross-Origin-Opener-Policy", "same-origin")
                self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/form"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def burst(browser: browser_desktop.Browser, worker: ScriptedWorker, rounds: int) -> None:
    """The scripted input, the same with and without the extension."""
    center = browser.element_center

    def to_top() -> None:
        worker.scroll(*center("#space"), dy=1)  # the page back to its top
        deadline = time.monotonic() + 3
        while browser.eval("scrollY") > 0 and time.monotonic() < deadline:
            time.sleep(0.02)  # smooth scrolling still moving it

    for i in range(rounds):
        if i:
            to_top()
        worker.click(*center(f"#t{i % 6}"))
        worker.type_text("ab")
        worker.click(*center(f"#c{i % 4}"))
        worker.scroll(*center(f"#b{i % 2}"), dy=-1 if i % 4 < 2 else 1)
        worker.click(*center(f"#s{i % 2}"))  # its popup opens
        worker.key("down" if i % 6 < 3 else "up")
        worker.key("enter")
        worker.scroll(*center("#space"), dy=-1)  # the secret fields move: a page event
    to_top()
    worker.click(*center("#t0"))  # the last change event (blur of a text field)
    time.sleep(0.6)  # the last batch (100 ms) and throttled page event (200 ms)


def stats(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "p95": None, "max": None}
    v = sorted(values)
    return {
        "n": len(v),
        "median": statistics.median(v),
        "p95": v[min(len(v) - 1, round(0.95 * (len(v) - 1)))],
        "max": v[-1],
    }


def by_type(pairs: list[tuple[str, int]]) -> dict[str, Any]:
    out = {"all": stats([v for _, v in pairs])}
    for kind in sorted({k for k, _ in pairs}):
        out[kind] = stats([v for k, v in pairs if k == kind])
    return out


FINISH = """      port.postMessage(batch);
"""
TIMED_FINISH = """      const p0 = performance.now();
      port.postMessage(batch);
      (globalThis.__benchPost = globalThis.__benchPost || []).push(
        Math.round((performance.now() - p0) * 1000));
"""


def timed_copy(folder: Path) -> Path:
    """A copy of extension/ whose content script also times its messages to the service worker
    (sent after the event's handlers, outside ``handler_us``)."""
    copy = folder / "extension"
    shutil.copytree(extension_dir(), copy)
    script = copy / "content.js"
    text = script.read_text()
    if text.count(FINISH) != 1:
        raise SystemExit("content.js changed: update FINISH in bench/extension.py")
    script.write_text(text.replace(FINISH, TIMED_FINISH))
    return copy


def run_with_extension(desk: VirtualDesktop, rounds: int, seed: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="demotrace-bench-ext-"))
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    def take(events: list[dict[str, Any]]) -> None:
        arrived = time.monotonic_ns()
        with lock:
            for e in events:
                e["arrived_ns"] = arrived
            received.extend(events)

    pairing, _ = pair(home, port=free_port())
    channel = BrowserChannel(home, take, status=lambda: "recording")
    pages = Pages()
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    channel.start()
    try:
        copy = timed_copy(home)
        with browser_desktop.chromium_with_extension(desk, pairing, extension=copy) as browser:
            browser.goto(pages.url)
            time.sleep(0.5)
            with lock:
                received.clear()
            with ScriptedWorker(desk.display, seed=seed, speed=12) as worker:
                t0 = time.monotonic()
                burst(browser, worker, rounds)
                seconds = time.monotonic() - t0
            page = browser.eval("window.bench")
            post_us = browser.eval("globalThis.__benchPost || []", context=browser.world())
    finally:
        channel.stop()
        pages.shutdown()
        pages.server_close()
        shutil.rmtree(home, ignore_errors=True)
    content = sorted((e for e in received if e["handler_us"] is not None), key=lambda e: e["t"])
    assert content, "the extension reported no events"
    first, rest = content[0], content[1:]
    secrets = [e for e in content if e.get("target") and e["target"]["secret"]]
    return {
        "seconds": round(seconds, 1),
        "events": len(received),
        "content_events": len(content),
        "secret_target_events": len(secrets),
        "by_type": {k: sum(1 for e in received if e["type"] == k) for k in _kinds(received)},
        "handler_us": by_type([(e["type"], e["handler_us"]) for e in content]),
        "first_event": {"type": first["type"], "handler_us": first["handler_us"]},
        "handler_us_after_first": stats([e["handler_us"] for e in rest]),
        "sequence": [[e["type"], e["handler_us"]] for e in content],
        "post_us": stats(post_us),
        "delivery_ms": stats(
            [round((e["arrived_ns"] - e["t_ns"]) / 1e6) for e in content if e["type"] != "page"]
        ),
        "baseline_empty_us": by_type([(k, v) for k, v in page["empty"]]),
        "page_delay_us": by_type([(k, v) for k, v in page["delay"]]),
        "channel_stats": channel.stats,
    }


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    return sorted({e["type"] for e in events})


def run_without_extension(desk: VirtualDesktop, rounds: int, seed: int) -> dict[str, Any]:
    pages = Pages()
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    folder = Path(tempfile.mkdtemp(prefix="demotrace-bench-noext-"))
    browser = browser_desktop.launch(desk, "about:blank", folder / "profile", extension=False)
    try:
        browser_desktop.wait_for_window(browser)
        browser.goto(pages.url)
        time.sleep(0.5)
        with ScriptedWorker(desk.display, seed=seed, speed=12) as worker:
            burst(browser, worker, rounds)
        page = browser.eval("window.bench")
    finally:
        browser.close()
        pages.shutdown()
        pages.server_close()
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "baseline_empty_us": by_type([(k, v) for k, v in page["empty"]]),
        "page_delay_us": by_type([(k, v) for k, v in page["delay"]]),
    }


def chromium_version() -> str:
    try:
        got = subprocess.run(
            [browser_desktop.CHROMIUM or "chromium", "--version"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return got.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def show(result: dict[str, Any], console: Console) -> None:
    ext = result["with_extension"]
    table = Table(title="handler time per event (µs, performance.now() at 5 µs resolution)")
    for col in ("event", "n", "median", "p95", "max"):
        table.add_column(col, justify="left" if col == "event" else "right")
    for kind, s in ext["handler_us"].items():
        table.add_row(
            f"extension: {kind}", str(s["n"]), str(s["median"]), str(s["p95"]), str(s["max"])
        )
    s = ext["post_us"]
    table.add_row(
        "message to the service worker (after the event)",
        str(s["n"]),
        str(s["median"]),
        str(s["p95"]),
        str(s["max"]),
    )
    s = ext["baseline_empty_us"]["all"]
    table.add_row(
        "baseline: empty page listener", str(s["n"]), str(s["median"]), str(s["p95"]), str(s["max"])
    )
    for label, run in (("with", ext), ("without", result["without_extension"])):
        s = run["page_delay_us"]["all"]
        table.add_row(
            f"page listener delay, {label} extension",
            str(s["n"]),
            str(s["median"]),
            str(s["p95"]),
            str(s["max"]),
        )
    console.print(table)
    d, f, r = ext["delivery_ms"], ext["first_event"], ext["handler_us_after_first"]
    console.print(
        f"{ext['events']} events ({ext['content_events']} from the page) in {ext['seconds']} s; "
        f"the page's first event ({f['type']}) {f['handler_us']} µs, the others max "
        f"{r['max']} µs; event to channel: median {d['median']} ms, p95 {d['p95']} ms, "
        f"max {d['max']} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if browser_desktop.CHROMIUM is None:
        ap.error("chromium is not installed (run `make setup`)")
    console = Console()
    with VirtualDesktop() as desk:
        with_ext = run_with_extension(desk, args.rounds, args.seed)
        without = run_without_extension(desk, args.rounds, args.seed)
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "chromium": chromium_version(),
        "rounds": args.rounds,
        "seed": args.seed,
        "with_extension": with_ext,
        "without_extension": without,
    }
    show(result, console)
    save_result(result, args.out, console)


if __name__ == "__main__":
    main()

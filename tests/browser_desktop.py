"""Chromium with the demotrace extension on a virtual desktop, for tests and benchmarks.

``with chromium_with_extension(desktop, pairing) as browser:`` starts the system Chromium on the
desktop's display with the flags of ``shared/desktop-testing.md``, ``--load-extension`` of the
repository's ``extension/`` and a fresh profile, opens the pairing link first (as a person would
paste it into the address bar), and returns once the extension has stored the pairing. Then:

- ``browser.window`` is the X window and ``browser.window_box()`` its screen box;
- ``browser.goto(url)`` loads a page in the tab (and waits for its load event);
- ``browser.eval(js)`` runs JavaScript in the page (the page's own world, not the extension's);
- ``browser.element_box(selector)`` is an element's box in screen pixels, from the page's own
  ``getBoundingClientRect`` and the viewport's place on the screen found by CDP (a test's ground
  truth, independent of the extension's own arithmetic);
- ``browser.cdp(method, **params)`` talks DevTools protocol to the page.

DevTools runs over ``--remote-debugging-pipe`` (fds 3 and 4): no port, nothing else to install.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from demotrace.browser import extension_dir
from demotrace.browser.pairing import Pairing

CHROMIUM = shutil.which("chromium")

#: shared/desktop-testing.md, "Chromium on the virtual display"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--password-store=basic",
    "--test-type",
]


class CdpError(RuntimeError):
    pass


class Cdp:
    """DevTools protocol over Chromium's pipe: NUL-terminated JSON messages on two fds."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self._w = to_browser
        self._r = from_browser
        self._next = 0
        self._lock = threading.Lock()
        self._buf = b""
        self.events: list[dict[str, Any]] = []

    def call(
        self, method: str, session: str | None = None, timeout: float = 15.0, **params: Any
    ) -> dict[str, Any]:
        with self._lock:
            self._next += 1
            ident = self._next
            msg: dict[str, Any] = {"id": ident, "method": method, "params": params}
            if session:
                msg["sessionId"] = session
            data = json.dumps(msg).encode() + b"\0"
            while data:
                data = data[os.write(self._w, data) :]
            deadline = time.monotonic() + timeout
            while True:
                reply = self._read(deadline)
                if reply.get("id") == ident:
                    if "error" in reply:
                        raise CdpError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
                if "method" in reply:
                    self.events.append(reply)
                    del self.events[:-500]

    def _read(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError("Chromium did not answer on the DevTools pipe in time")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 16)
                if not chunk:
                    raise CdpError("Chromium closed the DevTools pipe")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\0")
        return json.loads(line)

    def close(self) -> None:
        for fd in (self._w, self._r):
            with contextlib.suppress(OSError):
                os.close(fd)


class Browser:
    """A running Chromium with the extension; see the module's docstring."""

    def __init__(self, desktop: Any, proc: subprocess.Popen[bytes], cdp: Cdp, profile: Path):
        self.desktop = desktop
        self.proc = proc
        self.profile = profile
        self._cdp = cdp
        self.window = 0
        self._session = ""
        self._target = ""

    # ------------------------------------------------------------------ DevTools
    def cdp(self, method: str, **params: Any) -> dict[str, Any]:
        """A DevTools call in the page's session."""
        return self._cdp.call(method, self._session, **params)

    def browser_cdp(self, method: str, **params: Any) -> dict[str, Any]:
        return self._cdp.call(method, None, **params)

    def page_targets(self) -> list[dict[str, Any]]:
        infos = self.browser_cdp("Target.getTargets")["targetInfos"]
        return [t for t in infos if t["type"] == "page"]

    def attach(self, target_id: str) -> None:
        got = self.browser_cdp("Target.attachToTarget", targetId=target_id, flatten=True)
        self._session, self._target = got["sessionId"], target_id
        self.cdp("Runtime.enable")
        self.cdp("Page.enable")

    def eval(self, expression: str, timeout: float = 15.0, context: int | None = None) -> Any:
        """The value of a JavaScript expression in the page (awaited when a promise); in the
        page's own world, or in the execution context ``context`` (see :meth:`world`)."""
        where = {} if context is None else {"contextId": context}
        got = self._cdp.call(
            "Runtime.evaluate",
            self._session,
            timeout=timeout,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
            **where,
        )
        if "exceptionDetails" in got:
            raise CdpError(f"{expression[:80]!r}: {got['exceptionDetails']}")
        return got["result"].get("value")

    def world(self, name: str = "demotrace") -> int:
        """The execution context id of the latest isolated world called ``name`` (a content
        script's world bears its extension's name) in this tab."""
        self.eval("1")  # reads the events DevTools sent meanwhile
        for ev in reversed(self._cdp.events):
            ctx = ev.get("params", {}).get("context", {})
            aux = ctx.get("auxData", {})
            if (
                ev.get("method") == "Runtime.executionContextCreated"
                and ev.get("sessionId") == self._session
                and aux.get("type") == "isolated"
                and ctx.get("name") == name
            ):
                return int(ctx["id"])
        raise CdpError(f"no isolated world {name!r} in this tab")

    def goto(self, url: str, timeout: float = 15.0) -> None:
        """Load ``url`` in the tab and wait for its load event (and its title)."""
        self.cdp("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(CdpError):
                state = self.eval("[location.href, document.readyState]")
                if state and state[0] == url and state[1] == "complete":
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load within {timeout:.0f} s")
            time.sleep(0.05)

    def pair(self, pairing: Pairing, timeout: float = 30.0) -> None:
        """Open the pairing link in the tab, as a person pastes it into the address bar, and
        wait until the extension's page says it stored it. (A chrome-extension:// link given on
        the command line is blocked, ERR_BLOCKED_BY_CLIENT: that tab opens before
        --load-extension has loaded the extension.)"""
        self.cdp("Page.navigate", url=pairing.link())
        wait_for(
            "the extension did not store the pairing",
            lambda: _title(self) == "demotrace: paired",
            timeout,
        )

    # ------------------------------------------------------------------ geometry
    def window_box(self) -> list[int]:
        """The browser's X window, [x0, y0, x1, y1] on the screen."""
        return self.desktop.window_box(self.window)

    def viewport_origin(self) -> tuple[float, float]:
        """Screen pixels of the page's top-left corner, from X and the page's height (not from
        the extension's arithmetic): the viewport is the bottom of Chromium's X window, as wide
        as it (Chromium draws its tab strip and toolbar on top, and no border)."""
        box = self.window_box()
        height = self.eval("window.innerHeight * devicePixelRatio")
        return float(box[0]), float(box[3] - height)

    def element_box(self, selector: str) -> list[int]:
        """``selector``'s box in screen pixels (ground truth for tests). ``"#host >>> sel"``
        looks inside #host: the document of a frame of the same origin, its open shadow root,
        or for a closed one its window's own ``testRoots[id]`` (page scripts cannot reach a
        closed root otherwise). Levels nest: ``"#frame >>> #host >>> sel"``."""
        parts = json.dumps(selector.split(" >>> "))
        rect = self.eval(
            f"""(() => {{
  let scope = document, win = window, dx = 0, dy = 0, el = null;
  for (const [i, sel] of {parts}.entries()) {{
    el = scope.querySelector(sel);
    if (i === {parts}.length - 1) break;
    if (el.contentDocument) {{
      const f = el.getBoundingClientRect();
      dx += f.left + el.clientLeft;
      dy += f.top + el.clientTop;
      scope = el.contentDocument;
      win = el.contentWindow;
    }} else {{
      scope = el.shadowRoot || win.testRoots[el.id];
    }}
  }}
  const r = el.getBoundingClientRect(), k = devicePixelRatio;
  return [(r.left + dx) * k, (r.top + dy) * k, (r.right + dx) * k, (r.bottom + dy) * k];
}})()"""
        )
        x, y = self.viewport_origin()
        return [round(rect[0] + x), round(rect[1] + y), round(rect[2] + x), round(rect[3] + y)]

    def visible_box(self, selector: str) -> list[int]:
        """The part of ``selector``'s screen box inside the viewport (AssertionError if none)."""
        b = self.element_box(selector)
        x, y = self.viewport_origin()
        w, h = self.eval("[innerWidth * devicePixelRatio, innerHeight * devicePixelRatio]")
        v = [
            max(b[0], round(x)),
            max(b[1], round(y)),
            min(b[2], round(x + w)),
            min(b[3], round(y + h)),
        ]
        assert v[0] < v[2] and v[1] < v[3], f"{selector} is not in view"
        return v

    def element_center(self, selector: str) -> tuple[int, int]:
        """The middle of the visible part of ``selector``, in screen pixels: where to click."""
        b = self.visible_box(selector)
        return (b[0] + b[2]) // 2, (b[1] + b[3]) // 2

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(CdpError, OSError):
                self._cdp.call("Browser.close", None, timeout=3)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._cdp.close()


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """The pipe's ends moved above fd 100, clear of the fds 3 and 4 that bash sets up (dash
    takes only single-digit fds)."""
    import fcntl

    out = []
    for fd in fds:
        out.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100))
        os.close(fd)
    return out[0], out[1]


def launch(
    desktop: Any,
    first_url: str,
    profile: Path,
    *extra: str,
    extension: bool | Path = True,
) -> Browser:
    """Chromium on ``desktop``'s display, DevTools on a pipe; with the repository's extension,
    none (``extension=False``) or the one in a given folder. Then :func:`wait_for_window`."""
    folder = extension_dir() if extension is True else extension
    if CHROMIUM is None:
        raise FileNotFoundError("chromium is not installed")
    to_r, to_w = _high(os.pipe())  # we write, Chromium reads on fd 3
    from_r, from_w = _high(os.pipe())  # Chromium writes on fd 4, we read
    argv = [
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "--window-size=1280,800",
        "--window-position=0,0",
        "--remote-debugging-pipe",
        *([f"--load-extension={folder}"] if folder else []),
        *extra,
        first_url,
    ]
    shell = f'exec "$@" 3<&{to_r} 4>&{from_w} {to_r}<&- {from_w}>&-'
    log = (profile.parent / "chromium.log").open("ab")
    try:
        proc = subprocess.Popen(
            ["/bin/bash", "-c", shell, "bash", *argv],
            env=desktop.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            pass_fds=(to_r, from_w),
            start_new_session=True,
        )
    finally:
        log.close()
        os.close(to_r)
        os.close(from_w)
    return Browser(desktop, proc, Cdp(to_w, from_r), profile)


def _title(browser: Browser) -> str | None:
    with contextlib.suppress(CdpError):
        return browser.eval("document.title", timeout=5)
    return None


def wait_for(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(0.05)


def wait_for_window(browser: Browser, timeout: float = 30.0) -> None:
    """Wait for the browser's X window (``browser.window``) and attach to its first tab."""

    def first_tab() -> str | None:
        pages = browser.page_targets()
        return str(pages[0]["targetId"]) if pages else None

    browser.window = browser.desktop.wait_for_window("Chromium", timeout)  # WM_CLASS
    browser.attach(wait_for("Chromium opened no tab", first_tab, timeout))


@contextlib.contextmanager
def chromium_with_extension(
    desktop: Any,
    pairing: Pairing,
    *extra: str,
    timeout: float = 30.0,
    extension: Path | None = None,
) -> Iterator[Browser]:
    """Chromium on ``desktop`` with the extension (the repository's, or the one in the folder
    ``extension``) paired to ``pairing``; see the module's docstring."""
    folder = Path(tempfile.mkdtemp(prefix="demotrace-chromium-"))
    browser = launch(
        desktop, "about:blank", folder / "profile", *extra, extension=extension or True
    )
    try:
        wait_for_window(browser, timeout)
        browser.pair(pairing, timeout)
        yield browser
    finally:
        browser.close()
        shutil.rmtree(folder, ignore_errors=True)

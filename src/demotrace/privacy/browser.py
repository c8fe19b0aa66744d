"""What the browser extension says about the browser windows on screen: which URL each shows,
where its secret fields are, and whether a secret field has the keyboard focus.

Fed by the recorder with the local channel's events (:mod:`demotrace.browser.channel`, see
docs/browser.md) and read by the scope resolver and the gate. Not thread-safe: the recorder
calls it under its lock, as it does the gate.

X windows and browser windows are tied together by where the events come from: an ``active``
event (the focused browser window's tab changed, or its URL or title) belongs to the X window
that has the focus; a ``page`` event (a visible tab, with its viewport on screen) belongs to the
browser X window that contains the viewport's centre.

Fail closed: once the extension has spoken, a browser window whose URL is not known is out of
scope (a site rule cannot be checked on a title alone), and a browser window whose secret
fields are not known for the page it shows is masked whole.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: How long focus changes are kept (for typing sequences judged after they end).
HISTORY_NS = 10 * 60 * 1_000_000_000
#: A keystroke is secret when a secret field had the focus within this much after it: the
#: extension's report arrives a few milliseconds after the focus moved.
SLACK_NS = 250_000_000

Rect = tuple[int, int, int, int]


def title_agrees(x_title: str, page_title: str) -> bool:
    """A browser window's X title shows this page title: "Checkout - Shop - Chromium" for the
    page "Checkout - Shop". A page without a title is shown by its address: anything goes."""
    if not page_title:
        return True
    return x_title == page_title or x_title.startswith(page_title + " - ")


@dataclass
class _Window:
    url: str | None = None
    title: str = ""
    sensitive: list[Rect] | None = None  # None: not known for the page shown now
    viewport: Rect | None = None
    #: (t_ns, url) of the latest URL changes, oldest first: an element event that arrives
    #: after the next page's URL is judged by the URL of its own time.
    history: deque[tuple[int, str | None]] = field(default_factory=lambda: deque(maxlen=32))

    def set_url(self, t: int, url: str | None) -> None:
        if url != self.url or not self.history:
            self.history.append((t, url))
        self.url = url


@dataclass
class BrowserContext:
    """The extension's view of the browser windows, by X window id."""

    seen: bool = False  # any event from the extension in this recording
    windows: dict[int, _Window] = field(default_factory=dict)
    _focus: deque[tuple[int, bool]] = field(default_factory=deque)
    _chrome_to_x: dict[int, int] = field(default_factory=dict)
    #: The X window whose page last reported where the keyboard focus is, and whether that
    #: element is secret.
    focus_window: int | None = None
    focus_secret: bool = False

    # -- updates -------------------------------------------------------------------------------
    def on_active(self, event: dict[str, Any], focused_x: int | None, is_browser: bool) -> bool:
        """An ``active`` event; ``focused_x`` is the X window with the focus. True when the URL
        of a window changed (scope must be judged again)."""
        self.seen = True
        if event.get("url") is None or not focused_x or not is_browser:
            return False
        self._chrome_to_x[int(event.get("win") or 0)] = focused_x
        w = self.windows.setdefault(focused_x, _Window())
        changed = w.url != event["url"]
        if changed:
            w.sensitive = None  # a new page: its fields are not known yet
            w.viewport = None
        w.set_url(int(event.get("t_ns") or 0), event["url"])
        w.title = str(event.get("title") or "")
        return changed

    def on_page(self, event: dict[str, Any], x_window: int | None) -> bool:
        """A ``page`` event of a visible tab, placed in ``x_window`` (the browser window that
        contains its viewport). True when that window's URL or fields changed."""
        self.seen = True
        if not x_window:
            return False
        self._chrome_to_x[int(event.get("win") or 0)] = x_window
        w = self.windows.setdefault(x_window, _Window())
        rects = [tuple(int(v) for v in r[:4]) for r in event.get("sensitive") or []]
        viewport = tuple(int(v) for v in event["viewport"][:4]) if event.get("viewport") else None
        changed = w.url != event.get("url") or w.sensitive != rects or w.viewport != viewport
        w.set_url(int(event.get("t_ns") or 0), event.get("url"))
        w.title = str(event.get("title") or "")
        w.sensitive = rects  # type: ignore[assignment]
        w.viewport = viewport  # type: ignore[assignment]
        return changed

    def on_element(self, event: dict[str, Any], focused_x: int | None = None) -> None:
        """A ``focus`` or ``keys`` event (or a press): remember whether a secret field has the
        focus from now on."""
        self.seen = True
        target = event.get("target") or {}
        if event.get("type") in ("focus", "keys") or (
            event.get("type") == "pointer" and target.get("secret")
        ):
            secret = bool(target.get("secret"))
            self.focus_window, self.focus_secret = focused_x, secret
            self._focus.append((int(event["t_ns"]), secret))
            while self._focus and self._focus[0][0] < event["t_ns"] - HISTORY_NS:
                self._focus.popleft()

    def scrolled(self, x_window: int) -> bool:
        """The page in ``x_window`` scrolled: its fields moved, so they are unknown until the
        next ``page`` event. True when that changes the mask."""
        w = self.windows.get(x_window)
        if w is None or w.sensitive is None:
            return False
        w.sensitive = None
        return True

    def forget_window(self, x_window: int) -> None:
        self.windows.pop(x_window, None)

    # -- questions -----------------------------------------------------------------------------
    def secret_focused(self, x_window: int | None) -> bool:
        """Whether the page in ``x_window`` (the active window) has a secret field focused."""
        return bool(x_window) and self.focus_window == x_window and self.focus_secret

    def url_of(self, x_window: int, x_title: str | None = None) -> str | None:
        """The URL ``x_window`` shows; None when not known, or when the window's title
        (``x_title``, from X) is not the title of the page the extension last named there: X
        tells a new title before the extension tells the new URL, and until it does, the page
        is not known."""
        w = self.windows.get(x_window)
        if w is None:
            return None
        if x_title is not None and not title_agrees(x_title, w.title):
            return None
        return w.url

    def url_at(self, x_window: int, t_ns: int) -> str | None:
        """The URL ``x_window`` showed at ``t_ns`` (as far as the extension told)."""
        w = self.windows.get(x_window)
        if w is None:
            return None
        then = None
        for t, url in w.history:
            if t > t_ns:
                break
            then = url
        return then if then is not None else w.url

    def window_of(self, chrome_window: int) -> int | None:
        return self._chrome_to_x.get(chrome_window)

    def sensitive(self, x_window: int) -> list[Rect] | None:
        """Rectangles (x0, y0, x1, y1) on screen to mask in ``x_window``; None: unknown (mask
        the whole window)."""
        w = self.windows.get(x_window)
        return w.sensitive if w is not None else None

    def secret_between(self, t0: int, t1: int, slack: int = SLACK_NS) -> bool:
        """Whether a secret field had the focus at any time in ``[t0, t1 + slack]``."""
        before = False
        for t, secret in self._focus:
            if t <= t0:
                before = secret
            elif t <= t1 + slack:
                if secret:
                    return True
            else:
                break
        return before

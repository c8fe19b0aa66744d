"""What is in scope on screen: the stacked top-level windows, their policy rules, the pixel mask.

The X capture publishes a :class:`Layout` (every viewable top-level window, bottom to top, with
its client's class, instance and title) whenever windows map, unmap, move, restack or retitle.
:class:`ScopeResolver` answers, from a layout and the policy:

- which rule (if any) puts a window in scope; a popup (override-redirect menu, dropdown, tooltip)
  belongs to the window that was active when it was mapped, not to its own class;
- which window is under a screen point (for pointer events);
- the boolean pixel mask of what a frame may show: only the pixels of in-scope windows whose
  screenshot mode is ``window``, minus whatever is stacked above them. Everything else (other
  apps, the desktop, panels, other monitors, the indicator) is black before encoding.

Pure logic, no X calls: the capture gathers the facts, this module judges them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from demotrace.privacy.browser import BrowserContext
    from demotrace.privacy.policy import Policy, Rule


#: Pixels masked around a secret field's box, on every side.
FIELD_MARGIN = 4


@dataclass(frozen=True, slots=True)
class TopWindow:
    """A viewable child of the root window: a window manager frame (with its client) or a popup."""

    frame: int  # the root child (WM frame, or the popup itself)
    client: int  # the window with WM_STATE inside it (0 when none: panels, WM helpers)
    app: str  # WM_CLASS class of the client ("" when unknown)
    instance: str  # WM_CLASS instance
    title: str
    rect: tuple[int, int, int, int]  # x0, y0, x1, y1 on the root, border included
    popup: bool = False  # override-redirect (menus, dropdowns, tooltips)
    opener: int = 0  # for popups: the client that was active when it was mapped
    process: str | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """All viewable top-level windows, bottom to top, as of ``version``."""

    version: int
    windows: tuple[TopWindow, ...] = ()
    size: tuple[int, int] = (0, 0)

    def client(self, window: int) -> TopWindow | None:
        for w in self.windows:
            if w.client == window or w.frame == window:
                return w
        return None


def popup_owner(layout: Layout, own_class: str, opener: int) -> TopWindow | None:
    """The window a popup belongs to: the one that was active when it was mapped (``opener``),
    unless the popup's own WM_CLASS names the app of another window and not the opener's (a
    tooltip that an app in the background shows under the pointer: GTK popups carry their
    app's class; Tk's, "Menu" or "ComboboxPopdown", and Chromium's, none, name no app and stay
    with the opener). None when neither is known: such a popup is out of scope."""
    found = layout.client(opener) if opener else None
    if found is not None and found.popup:
        found = None
    own = own_class.lower()
    if own and (found is None or own not in (found.app.lower(), found.instance.lower())):
        for w in reversed(layout.windows):  # the topmost window of that app
            if not w.popup and w.client and own in (w.app.lower(), w.instance.lower()):
                return w
    return found


@dataclass
class ScopeResolver:
    """Judges windows against a policy; caches decisions per (class, instance, title, process)."""

    policy: Policy
    own_windows: frozenset[int] = frozenset()
    #: What the browser extension says (URLs and secret fields of browser windows), if paired.
    browser: BrowserContext | None = None
    _rules: dict[tuple[str, str, str, str | None, str | None], Rule | None] = field(
        default_factory=dict
    )
    _secret: dict[tuple[str, str, str], bool] = field(default_factory=dict)

    def rule(
        self, app: str, instance: str, title: str, process: str | None = None, window: int = 0
    ) -> Rule | None:
        """The rule of a window. A browser window's URL comes from the extension once it has
        spoken: then a browser window whose URL is not known matches no site rule (only app
        rules), rather than being judged by its title."""
        url = None
        browser = self.browser
        if browser is not None and browser.seen and self.policy.is_browser(app, instance):
            url = browser.url_of(window, title) or ""
        key = (app, instance, title, process, url)
        if key not in self._rules:
            if len(self._rules) > 4096:
                self._rules.clear()
            if url == "":  # the extension speaks, but not of this window (yet): no site rule
                found = self.policy.match_window(app, instance, title, process, url="about:blank")
            else:
                found = self.policy.match_window(app, instance, title, process, url=url)
            self._rules[key] = found
        return self._rules[key]

    def is_secret(self, app: str, instance: str, title: str) -> bool:
        key = (app, instance, title)
        if key not in self._secret:
            if len(self._secret) > 4096:
                self._secret.clear()
            self._secret[key] = self.policy.is_secret_window(app, instance, title)
        return self._secret[key]

    def window_rule(self, layout: Layout, w: TopWindow) -> Rule | None:
        """The rule of a top-level window; popups take their opener's."""
        if w.frame in self.own_windows or w.client in self.own_windows:
            return None
        if w.popup:
            owner = popup_owner(layout, w.app, w.opener)
            return None if owner is None else self.window_rule(layout, owner)
        if not w.client:
            return None
        return self.rule(w.app, w.instance, w.title, w.process, w.client)

    def at(self, layout: Layout, x: int, y: int) -> TopWindow | None:
        """The topmost window containing a root point, or None over the bare desktop."""
        for w in reversed(layout.windows):
            x0, y0, x1, y1 = w.rect
            if x0 <= x < x1 and y0 <= y < y1:
                return w
        return None

    def mask(self, layout: Layout, width: int, height: int) -> np.ndarray:
        """True where a frame may show pixels: in-scope windows with screenshots on, as stacked."""
        out = np.zeros((height, width), dtype=bool)
        for w in layout.windows:
            x0, y0, x1, y1 = w.rect
            x0, y0 = max(0, x0), max(0, y0)
            x1, y1 = min(width, x1), min(height, y1)
            if x1 <= x0 or y1 <= y0:
                continue
            rule = self.window_rule(layout, w)
            out[y0:y1, x0:x1] = rule is not None and rule.screenshots == "window"
            if (
                rule is not None
                and self.browser is not None
                and self.browser.seen
                and (not w.popup and self.policy.is_browser(w.app, w.instance))
            ):
                rects = self.browser.sensitive(w.client)
                if rects is None:  # the page's secret fields are not known: nothing of it
                    out[y0:y1, x0:x1] = False
                for rx0, ry0, rx1, ry1 in rects or ():
                    # a few pixels more: the page rounds its boxes, and the field's border
                    # and focus ring are drawn around it
                    rx0, ry0 = max(rx0 - FIELD_MARGIN, x0), max(ry0 - FIELD_MARGIN, y0)
                    rx1, ry1 = min(rx1 + FIELD_MARGIN, x1), min(ry1 + FIELD_MARGIN, y1)
                    if rx1 > rx0 and ry1 > ry0:
                        out[ry0:ry1, rx0:rx1] = False
        return out

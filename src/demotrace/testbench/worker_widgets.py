"""Higher-level worker actions on the workbench: dropdowns, menus, switching apps.

A mixin of :class:`~demotrace.testbench.worker.ScriptedWorker`; each public method writes one
ground-truth line whose ``steps`` hold the clicks and moves it was made of.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demotrace.errors import ScenarioError
from demotrace.testbench import xwin
from demotrace.testbench.layout import Layout, LayoutFile, aim, center, find_popup, widget

if TYPE_CHECKING:
    from demotrace.testbench.worker import ScriptedWorker as _Base
else:
    _Base = object

_POPUP_TIMEOUT = 5.0


def _as_layout(layout: LayoutFile | str | Path) -> LayoutFile:
    return layout if isinstance(layout, LayoutFile) else LayoutFile(layout)


def _entry(popup: dict[str, Any], label: str, key: str = "entries") -> dict[str, Any]:
    field = "label" if key == "entries" else "text"
    for entry in popup[key]:
        if entry.get(field) == label:
            if not entry.get("bbox"):
                raise ScenarioError(f"{label!r} is in the popup but not visible.")
            return entry
    labels = [e.get(field) for e in popup[key] if e.get(field)]
    raise ScenarioError(f"No item {label!r} in the open popup; it offers {labels}.")


def _laid_out(popup: dict[str, Any], want: str) -> bool:
    """True once an open popup has its size and the item ``want`` a box inside it.

    An item the popup does not have counts as laid out, so that ``_entry`` can say so.
    """
    box = popup.get("bbox")
    if not box or box[2] - box[0] < 3 or box[3] - box[1] < 3:
        return False
    items = popup["items"] if popup["kind"] == "combo" else popup["entries"]
    field = "text" if popup["kind"] == "combo" else "label"
    for item in items:
        if item.get(field) == want:
            r = item["bbox"]
            return bool(r) and box[0] <= r[0] < r[2] <= box[2] and box[1] <= r[1] < r[3] <= box[3]
    return True


def _popup_info(popup: dict[str, Any]) -> dict[str, Any]:
    return {"kind": popup["kind"], "bbox": popup["bbox"]}


class WidgetActions(_Base):
    """Dropdowns, menus, context menus and app switching, built from the primitive actions."""

    def look(self, layout: LayoutFile | str | Path) -> Layout:
        """The layout after the app has seen our last input, after a human 'look' pause."""
        self._sleep(self.rng.uniform(0.15, 0.4))
        return _as_layout(layout).read_after(self.layout_fresh_after)

    def click_widget(
        self, layout: LayoutFile | str | Path, name: str, button: str = "left", count: int = 1
    ) -> None:
        """Click a named workbench widget at a human-chosen point inside it."""
        info = widget(self.look(layout), name)
        x, y = aim(self.rng, info["bbox"])
        self.click(x, y, button=button, count=count, target=name)

    def _wait_popup(
        self,
        layout: LayoutFile,
        kind: str,
        owner: str,
        path: Sequence[str],
        since: float,
        want: str,
        timeout: float = _POPUP_TIMEOUT,
    ) -> dict[str, Any]:
        """Wait for a popup shown in a layout written after ``since`` (``time.time()``) in
        which the item labelled ``want`` is on screen."""
        found: dict[str, Any] = {}

        def is_open(lay: Layout) -> bool:
            if lay.get("written_at", 0.0) <= since:
                return False
            popup = find_popup(lay, kind, owner, path)
            if popup and _laid_out(popup, want):
                found["popup"] = popup
                return True
            return False

        what = f"{kind} popup of {owner} {list(path) or ''} to open".replace("  ", " ")
        layout.wait(is_open, timeout, what)
        return found["popup"]

    def select_dropdown(self, layout: LayoutFile | str | Path, name: str, option: str) -> None:
        """Open the combobox or option menu ``name`` and click ``option`` in its list."""
        lay = _as_layout(layout)
        info = widget(self.look(lay), name)
        kinds = {"combobox": ("combo", "items"), "optionmenu": ("menu", "entries")}
        if info["kind"] not in kinds:
            raise ScenarioError(f"Widget {name!r} is a {info['kind']}, not a dropdown.")
        kind, key = kinds[info["kind"]]
        with self._action("select_option", target=name, option=option) as rec:
            x, y = aim(self.rng, info["bbox"], 0.3)
            before = time.time()
            self.click(x, y, target=name)
            popup = self._wait_popup(lay, kind, name, (), before, option)
            self._sleep(self.rng.uniform(0.15, 0.4))  # reading the list
            item = _entry(popup, option, key)
            ix, iy = aim(self.rng, item["bbox"], 0.15)
            self.click(ix, iy, target=name, popup=_popup_info(popup))
            rec.fields |= {"x": ix, "y": iy, "popup": _popup_info(popup)}

    def choose_menu(self, layout: LayoutFile | str | Path, path: Sequence[str]) -> None:
        """Open a menubar menu and pick ``path`` (e.g. ``["File", "Export", "PDF"]``)."""
        if len(path) < 2:
            raise ScenarioError(f"A menu path needs a menu and an item, got {list(path)}.")
        lay = _as_layout(layout)
        bar = widget(self.look(lay), "menubar")
        top = next((e for e in bar.get("entries", []) if e["label"] == path[0]), None)
        if top is None:
            raise ScenarioError(f"The menubar has no menu {path[0]!r}.")
        with self._action("menu", path=list(path), target="menubar", via="menubar") as rec:
            x, y = aim(self.rng, top["bbox"], 0.25)
            before = time.time()
            self.click(x, y, target="menubar")
            self._walk_menu(lay, "menubar", list(path[:1]), list(path[1:]), rec, before)

    def context_menu(self, layout: LayoutFile | str | Path, name: str, item: str) -> None:
        """Right-click widget ``name`` and pick ``item`` from its context menu."""
        lay = _as_layout(layout)
        info = widget(self.look(lay), name)
        with self._action("menu", path=[item], target=name, via="context") as rec:
            x, y = aim(self.rng, info["bbox"], 0.3)
            before = time.time()
            self.click(x, y, button="right", target=name)
            self._walk_menu(lay, name, [], [item], rec, before)

    def _walk_menu(
        self,
        lay: LayoutFile,
        owner: str,
        opened: list[str],
        rest: list[str],
        rec: Any,
        since: float,
    ) -> None:
        popup = self._wait_popup(lay, "menu", owner, opened, since, rest[0])
        for i, label in enumerate(rest):
            self._sleep(self.rng.uniform(0.15, 0.35))
            entry = _entry(popup, label)
            if i + 1 == len(rest):
                ix, iy = aim(self.rng, entry["bbox"], 0.2)
                self.click(ix, iy, target=owner, popup=_popup_info(popup))
                rec.fields |= {"x": ix, "y": iy, "popup": _popup_info(popup)}
                return
            # hover the cascade entry, then slide straight right into the submenu
            ex, ey = aim(self.rng, entry["bbox"], 0.15)
            before = time.time()
            self.move(ex, ey, target=owner)
            opened = [*opened, label]
            sub = None
            for attempt in range(3):  # Tk may miss the hover; a person would wiggle the pointer
                try:
                    sub = self._wait_popup(lay, "menu", owner, opened, before, rest[i + 1], 1.5)
                    break
                except ScenarioError:
                    if attempt == 2:
                        raise
                    # leave the entry for the one above, and come back: Tk posts on entering
                    self.move(ex, entry["bbox"][1] - 6, target=owner)
                    ex, ey = aim(self.rng, entry["bbox"], 0.15)
                    self.move(ex, ey, target=owner)
            assert sub is not None
            row = min(max(ey, sub["entries"][0]["bbox"][1] + 2), sub["entries"][0]["bbox"][3] - 2)
            self._slide(sub["bbox"][0] + self.rng.randint(8, 20), row)
            popup = sub

    def _slide(self, x: int, y: int) -> None:
        with self._action("move", x=x, y=y) as rec:
            rec.fields["from"] = list(self._glide(x, y, curve=0.0))

    def switch_app(self, method: str = "alt_tab", target_class: str = "") -> None:
        """Bring the window of WM_CLASS ``target_class`` to the front by alt+Tab or a click."""
        if method not in ("alt_tab", "click"):
            raise ScenarioError(f"Unknown switch method {method!r}; use alt_tab or click.")
        d = self._d
        target = xwin.find_client(d, target_class)
        if target is None:
            raise ScenarioError(f"No window of class {target_class!r} is on the desktop.")
        started = time.time()
        before = xwin.active_window(d)
        from_class = xwin.wm_class(d, before)[1] if before else None
        with self._action(
            "switch_app", method=method, target_class=target_class, from_class=from_class
        ) as rec:
            if method == "click":
                frame, client = xwin.frame_box(d, target), xwin.client_box(d, target)
                title = [client[0], frame[1], client[2], max(frame[1] + 4, client[1])]
                x, y = aim(self.rng, title, 0.3)
                self.click(x, y, target=target_class)
                rec.fields |= {"x": x, "y": y}
            else:
                alt, tab = self._named_key("alt")[0], self._named_key("tab")[0]
                self._key_event(alt, True)
                for _ in range(len(xwin.client_list(d))):
                    self._sleep(self.rng.uniform(0.08, 0.18))
                    self._key_event(tab, True)
                    self._sleep(self._hold())
                    self._key_event(tab, False)
                    if self._active_is(target, 0.3):
                        break
                self._sleep(self.rng.uniform(0.05, 0.12))
                self._key_event(alt, False)
                rec.fields["keys"] = ["alt", "tab"]
            if not self._active_is(target, 3.0):
                now = xwin.active_window(d)
                raise ScenarioError(
                    f"switch_app by {method} did not activate {target_class!r}; the active "
                    f"window is {xwin.wm_class(d, now)[1] if now else None!r}."
                )
            rec.fields["to_class"] = target_class
        # the workbench saw none of these events, only the focus change (and wrote then)
        self.layout_fresh_after = started

    def _active_is(self, wid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if xwin.active_window(self._d) == wid:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def center_of(self, layout: LayoutFile | str | Path, name: str) -> tuple[int, int]:
        return center(widget(self.look(layout), name)["bbox"])

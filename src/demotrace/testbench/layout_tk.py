"""Inside the workbench process: measure widgets and popups, write the layout file.

The layout file is JSON, replaced atomically (temp file + ``os.replace``) whenever geometry
changes, a popup maps or unmaps, input arrives, and every 0.5 s as a fallback (only when
something changed). Boxes are ``[x0, y0, x1, y1]`` in root (screen) pixels, x1/y1 exclusive.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import tkinter as tk
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from demotrace.testbench.workbench import Workbench

Box = list[int]
_POLL_MS = 500
_WORD = re.compile(r"\S+")
_MAX_WORDS = 300


class LayoutWriter:
    """Keeps the layout file of one :class:`Workbench` current."""

    def __init__(self, bench: Workbench, path: Path) -> None:
        self.bench = bench
        self.root = bench.root
        self.path = Path(path)
        self.version = 0
        self._last = ""
        self._pending: str | None = None
        self._force = False

    def start(self) -> None:
        root = self.root
        for sequence in ("<Map>", "<Unmap>"):
            root.bind_all(sequence, self._on_event, add="+")
        # always answer input (and focus changes, e.g. a click on the title bar) with a write
        for sequence in ("<KeyRelease>", "<ButtonRelease>", "<FocusIn>", "<FocusOut>"):
            root.bind_all(sequence, self._on_input, add="+")
        root.bind("<Configure>", self._on_event, add="+")
        combo = self.bench.widgets["country"]
        popdown = str(root.tk.call("ttk::combobox::PopdownWindow", combo))
        for sequence in ("<Map>", "<Unmap>"):
            root.tk.call("bind", popdown, sequence, "+" + root.register(self.request))
        # the popdown's bindtags lack "all": answer input there explicitly
        on_input = "+" + root.register(self._on_input_any)
        for path in (popdown, f"{popdown}.f.l"):
            for sequence in ("<KeyRelease>", "<ButtonRelease>"):
                root.tk.call("bind", path, sequence, on_input)
        for var in (self.bench.country, self.bench.priority, self.bench.agree):
            var.trace_add("write", lambda *_: self.request())
        self.request()
        root.after(_POLL_MS, self._poll)

    def _on_event(self, _event: tk.Event) -> None:
        self.request()

    def _on_input(self, _event: tk.Event) -> None:
        self._on_input_any()

    def _on_input_any(self, *_args: object) -> None:
        self._force = True
        self.request()

    def request(self, *_args: object) -> None:
        """Write soon (once the app is idle), coalescing bursts of events."""
        if self._pending is None:
            self._pending = self.root.after_idle(self._flush)

    def _poll(self) -> None:
        self.request()
        self.root.after(_POLL_MS, self._poll)

    def _flush(self) -> None:
        self._pending = None
        try:
            snapshot = self.snapshot()
        except (tk.TclError, ValueError) as exc:  # a widget went away mid-measure: retry later
            print(f"layout: {exc}", file=sys.stderr)
            return
        body = json.dumps(snapshot, sort_keys=True)
        if body == self._last and not self._force:
            return
        self._force = False
        self._last = body
        self.version += 1
        snapshot["version"] = self.version
        snapshot["written_at"] = time.time()
        snapshot["pid"] = os.getpid()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(snapshot), encoding="utf-8")
        os.replace(tmp, self.path)

    # ------------------------------------------------------------------------- measuring
    def _call(self, *args: Any) -> Any:
        return self.root.tk.call(*args)

    def _int(self, *args: Any) -> int:
        return int(str(self.root.tk.call(*args)))

    def _box(self, path: str) -> Box | None:
        if not self._int("winfo", "viewable", path):
            return None
        x = self._int("winfo", "rootx", path)
        y = self._int("winfo", "rooty", path)
        w = self._int("winfo", "width", path)
        h = self._int("winfo", "height", path)
        return [x, y, x + w, y + h]

    def snapshot(self) -> dict[str, Any]:
        widgets: dict[str, Any] = {}
        for name, kind in _kinds(self.bench).items():
            path = self._menubar_clone() if kind == "menubar" else str(self.bench.widgets[name])
            info: dict[str, Any] = {"kind": kind, "bbox": self._box(path) if path else None}
            if kind == "menubar" and path:
                info["entries"] = self._menubar_entries(path)
            elif kind == "listbox":
                info.update(self._listbox_items(path))
            elif kind == "text":
                info["words"] = self._text_words(path)
            widgets[name] = info
        root_box = self._box(".")
        menubar = widgets["menubar"]["bbox"]
        frame_box = root_box
        if root_box and menubar:
            frame_box = [root_box[0], min(root_box[1], menubar[1]), root_box[2], root_box[3]]
        return {
            "window": {
                "title": self.root.title(),
                "xid": int(self.root.wm_frame(), 16),
                "bbox": frame_box,
                "geometry": self.root.winfo_geometry(),
            },
            "widgets": widgets,
            "popups": self._popups(),
            "state": self.bench.state(),
        }

    def _menubar_clone(self) -> str | None:
        for child in self._call("winfo", "children", "."):
            child = str(child)
            if self._call("winfo", "class", child) == "Menu" and (
                str(self._call(child, "cget", "-type")) == "menubar"
            ):
                return child
        return None

    def _menubar_entries(self, path: str) -> list[dict[str, Any]]:
        box = self._box(path)
        if box is None:
            return []
        last = str(self._call(path, "index", "end"))
        if last == "none":
            return []
        font = self._call(path, "cget", "-font")
        starts, labels = [], []
        for i in range(int(last) + 1):
            starts.append(self._int(path, "xposition", i))
            labels.append(str(self._call(path, "entrycget", i, "-label")))
        pad = 20
        if len(starts) > 1:
            pad = starts[1] - starts[0] - self._int("font", "measure", font, labels[0])
        entries = []
        for i, label in enumerate(labels):
            if i + 1 < len(starts):
                end = starts[i + 1]
            else:
                end = starts[i] + self._int("font", "measure", font, label) + pad
            entries.append(
                {"label": label, "bbox": [box[0] + starts[i], box[1], box[0] + end, box[3]]}
            )
        return entries

    def _listbox_items(self, path: str) -> dict[str, Any]:
        box = self._box(path)
        items: list[dict[str, Any]] = []
        if box is not None:
            size = self._int(path, "size")
            for i in range(size):
                item = self._call(path, "bbox", i)
                if not item:
                    continue
                row = _row(box, item, 2)
                if row is None:
                    continue
                text = str(self._call(path, "get", i))
                items.append({"index": i, "text": text, "bbox": row})
        first, last = (float(v) for v in self._call(path, "yview"))
        return {"items": items, "yview": [first, last]}

    def _text_words(self, path: str) -> list[dict[str, Any]]:
        box = self._box(path)
        if box is None:
            return []
        start = str(self._call(path, "index", "@0,0"))
        end = str(self._call(path, "index", f"@{box[2] - box[0]},{box[3] - box[1]} lineend"))
        text = str(self._call(path, "get", start, end))
        words = []
        for match in _WORD.finditer(text):
            first = self._call(path, "bbox", f"{start}+{match.start()}c")
            last = self._call(path, "bbox", f"{start}+{match.end() - 1}c")
            if not first or not last:
                continue
            x0, y0, _w, h = (int(v) for v in first)
            lx, ly, lw, _lh = (int(v) for v in last)
            if ly != y0:  # wrapped across lines: keep the first line's part only
                lx, lw = x0, int(first[2])
            words.append(
                {
                    "text": match.group(),
                    "index": str(self._call(path, "index", f"{start}+{match.start()}c")),
                    "bbox": [box[0] + x0, box[1] + y0, box[0] + lx + lw, box[1] + y0 + h],
                }
            )
            if len(words) >= _MAX_WORDS:
                break
        return words

    def _popups(self) -> list[dict[str, Any]]:
        popups: list[dict[str, Any]] = []
        combo = str(self.bench.widgets["country"])
        popdown = f"{combo}.popdown"
        if self._int("winfo", "exists", popdown) and self._int("winfo", "ismapped", popdown):
            popups.append(self._combo_popup(popdown))
        for menu in self._menus("."):
            if str(self._call(menu, "cget", "-type")) == "menubar":
                continue
            if self._int("winfo", "ismapped", menu):
                popups.append(self._menu_popup(menu))
        return popups

    def _combo_popup(self, popdown: str) -> dict[str, Any]:
        listbox = f"{popdown}.f.l"
        box = self._box(listbox) or [0, 0, 0, 0]
        items = []
        for i in range(self._int(listbox, "size")):
            item = self._call(listbox, "bbox", i)
            entry: dict[str, Any] = {"text": str(self._call(listbox, "get", i)), "bbox": None}
            if item:
                entry["bbox"] = _row(box, item, 1)
            items.append(entry)
        return {
            "kind": "combo",
            "owner": "country",
            "path": [],
            "bbox": self._box(popdown),
            "items": items,
        }

    def _menus(self, parent: str) -> list[str]:
        found = []
        for child in self._call("winfo", "children", parent):
            child = str(child)
            if self._call("winfo", "class", child) == "Menu":
                found.append(child)
            found.extend(self._menus(child))
        return found

    def _menu_popup(self, menu: str) -> dict[str, Any]:
        owner, path = self.bench.menu_owners.get(menu, ("", ()))
        if not owner:
            suffix = menu.rsplit(".", 1)[-1].rsplit("#", 1)[-1]
            owner, path = self.bench.menu_owners.get(suffix, ("unknown", ()))
        box = self._box(menu) or [0, 0, 0, 0]
        bd = self._int("winfo", "pixels", menu, self._call(menu, "cget", "-borderwidth"))
        last = str(self._call(menu, "index", "end"))
        count = 0 if last == "none" else int(last) + 1
        active = str(self._call(menu, "index", "active"))
        tops = [self._int(menu, "yposition", i) for i in range(count)]
        entries = []
        for i in range(count):
            kind = str(self._call(menu, "type", i))
            bottom = tops[i + 1] if i + 1 < count else box[3] - box[1] - bd
            label = None if kind == "separator" else str(self._call(menu, "entrycget", i, "-label"))
            entries.append(
                {
                    "label": label,
                    "type": kind,
                    "bbox": [box[0] + bd, box[1] + tops[i], box[2] - bd, box[1] + bottom],
                }
            )
        return {
            "kind": "menu",
            "owner": owner,
            "path": list(path),
            "bbox": self._box(menu),
            "active": None if active == "none" else int(active),
            "entries": entries,
        }


def _row(box: Box, item: Any, inset: int) -> Box | None:
    """A listbox row's on-screen box from its ``bbox`` (x, y, w, h relative to the listbox),
    clipped to the listbox; None when less than half of it is visible."""
    _x, y, _w, h = (int(v) for v in item)
    y0, y1 = max(box[1] + y, box[1]), min(box[1] + y + h, box[3])
    if y1 - y0 < max(1, h // 2):
        return None
    return [box[0] + inset, y0, box[2] - inset, y1]


def _kinds(bench: Workbench) -> dict[str, str]:
    from demotrace.testbench import spec

    return {name: kind for name, kind in spec.WIDGETS.items() if name in bench.widgets}

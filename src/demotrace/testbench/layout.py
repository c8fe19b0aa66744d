"""Reading the workbench's layout file from outside the app (tests, worker, scenarios).

Schema (all boxes ``[x0, y0, x1, y1]`` in screen pixels, x1/y1 exclusive)::

    {"version": int, "written_at": float, "pid": int,
     "window": {"title", "xid", "bbox", "geometry"},
     "widgets": {name: {"kind", "bbox", ...}},   # menubar: "entries" [{label, bbox}];
                                                 # listbox: "items" [{index, text, bbox}],
                                                 # "yview"; text: "words" [{text, index, bbox}]
     "popups": [{"kind": "combo", "owner", "path": [], "bbox", "items": [{text, bbox|null}]},
                {"kind": "menu", "owner", "path": [labels], "bbox", "active",
                 "entries": [{label, type, bbox}]}],
     "state": {...}}                             # see spec.STATE_KEYS; never the password
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from demotrace.errors import ScenarioError

Box = Sequence[int]
Layout = dict[str, Any]


class LayoutFile:
    """The layout file one workbench process keeps current."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self, timeout: float = 5.0) -> Layout:
        """The current layout; waits up to ``timeout`` for the file to exist."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return json.loads(self.path.read_text(encoding="utf-8"))
            except (FileNotFoundError, json.JSONDecodeError):
                if time.monotonic() > deadline:
                    raise ScenarioError(
                        f"The workbench layout file {self.path} did not appear within "
                        f"{timeout:.0f} s; check the workbench log next to it."
                    ) from None
                time.sleep(0.01)

    def read_after(self, wall_time: float, timeout: float = 1.0) -> Layout:
        """The layout, preferably one written after ``wall_time`` (``time.time()``).

        The workbench rewrites the file after every key or button release it receives, so
        waiting for a write newer than the worker's last input sees that input's effect. When
        the input went elsewhere no write comes, and after ``timeout`` the latest one is used.
        """
        deadline = time.monotonic() + timeout
        while True:
            layout = self.read()
            if layout.get("written_at", 0.0) > wall_time or time.monotonic() > deadline:
                return layout
            time.sleep(0.005)

    def wait(
        self, predicate: Callable[[Layout], bool], timeout: float = 5.0, what: str = ""
    ) -> Layout:
        """Poll until ``predicate(layout)`` holds; ScenarioError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            layout = self.read(timeout)
            if predicate(layout):
                return layout
            if time.monotonic() > deadline:
                raise ScenarioError(
                    f"Timed out after {timeout:.1f} s waiting for the workbench: "
                    f"{what or 'condition'} (layout version {layout.get('version')})."
                )
            time.sleep(0.01)

    def wait_ready(self, timeout: float = 10.0) -> Layout:
        """Wait until the window and every named widget are on screen."""

        def ready(lay: Layout) -> bool:
            shown = lay.get("widgets", {}).values()
            return bool(shown) and all(w.get("bbox") for w in shown)

        return self.wait(ready, timeout, "all widgets on screen")

    def wait_state(self, key: str, value: Any, timeout: float = 5.0) -> Layout:
        """Wait until the app's ``state[key] == value``; the error shows the value it has."""
        try:
            return self.wait(lambda lay: lay["state"].get(key) == value, timeout)
        except ScenarioError:
            have = self.read()["state"].get(key)
            raise ScenarioError(
                f"Timed out after {timeout:.1f} s waiting for the workbench's {key} to be "
                f"{value!r}; it is {have!r}."
            ) from None


def widget(layout: Layout, name: str) -> dict[str, Any]:
    try:
        info = layout["widgets"][name]
    except KeyError:
        raise ScenarioError(f"The workbench has no widget named {name!r}.") from None
    if not info.get("bbox"):
        raise ScenarioError(f"The workbench widget {name!r} is not visible.")
    return info


def find_popup(
    layout: Layout, kind: str, owner: str, path: Sequence[str] = ()
) -> dict[str, Any] | None:
    for popup in layout.get("popups", []):
        if popup["kind"] == kind and popup["owner"] == owner and popup["path"] == list(path):
            return popup
    return None


def center(box: Box) -> tuple[int, int]:
    return (box[0] + box[2]) // 2, (box[1] + box[3]) // 2


def aim(rng: random.Random, box: Box, spread: float = 0.35) -> tuple[int, int]:
    """A point a person would click in ``box``: near the centre, never near the edges.

    ``spread`` is the half-width of the allowed zone as a fraction of the box (0.35 = the
    inner 70 %).
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * spread, (box[3] - box[1]) * spread
    x = cx + max(-hw, min(hw, rng.gauss(0.0, hw / 2)))
    y = cy + max(-hh, min(hh, rng.gauss(0.0, hh / 2)))
    return round(x), round(y)

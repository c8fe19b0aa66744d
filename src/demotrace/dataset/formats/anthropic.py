"""Anthropic computer-use tool (``computer_20250124``) actions, in scaled pixels.

Writes ``OUT/anthropic.jsonl``, one line per episode with the tool definition and, per step, the
tool inputs that replay it, and ``OUT/images/<frame_id>.png``. Screenshots are scaled down to fit
within 1024x768 (XGA; aspect kept, never scaled up), as Anthropic recommends, and coordinates are
pixels of that scaled image. The episode's ``scale`` is scaled pixels per observation pixel; the
tool's ``display_width_px`` / ``display_height_px`` are the scaled size. Reading a coordinate back
snaps it to the nearest observation pixel, which is exact only when the scale is 1.

Keys use xdotool names (``ctrl+c``, ``Return``, ``Page_Down``; see
:data:`common.XDOTOOL_KEYS`); held modifiers go in ``text``.

What the tool cannot express, and what is written instead:

- ``switch_app`` via keys: a ``key`` action (``alt+Tab``); via click: that click; via launcher:
  skipped and counted (nothing recorded to replay).
- ``select_option``: a ``left_click`` on the option; the chosen value is only in the image.
- back/forward mouse buttons: ``key`` ``alt+Left`` / ``alt+Right``.
- a right or middle click of count 2 or 3: that many single clicks.
- a drag's path: ``left_click_drag`` from the press to the release; the points between are
  dropped. Drags with another button or with modifiers held are skipped and counted.
- a click's ``target`` (role, name, box): not written; the element is only in the image.
- ``masked`` typing: the masked text is typed; the flag is dropped.
- a key pressed ``count`` times: that many ``key`` actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from demotrace.dataset.formats import common
from demotrace.dataset.formats.common import Action, Step

#: The largest screenshot the tool should see (XGA).
MAX_SIZE = (1024, 768)

TOOL = {"type": "computer_20250124", "name": "computer"}

#: (button, count) -> the tool's click action.
CLICKS: dict[tuple[str, int], str] = {
    ("left", 1): "left_click",
    ("left", 2): "double_click",
    ("left", 3): "triple_click",
    ("right", 1): "right_click",
    ("middle", 1): "middle_click",
}
_CLICK_OF = {name: key for key, name in CLICKS.items()}


def scaled_size(size: tuple[int, int]) -> tuple[int, int]:
    """The screenshot size the tool sees for an observation of ``size``."""
    return common.fit_within(size, MAX_SIZE)


def scale(size: tuple[int, int]) -> float:
    """Scaled pixels per observation pixel."""
    return round(scaled_size(size)[0] / size[0], 6)


def to_dialect(step: Step) -> list[dict[str, Any]]:
    """The tool inputs that replay one step."""
    action = common.as_plain(step["action"])
    scaled = scaled_size(common.size_of(step))

    def coordinate(x: float, y: float) -> list[int]:
        return list(common.point_px(x, y, scaled))

    held = {"text": common.xdotool_chord(action["modifiers"])} if action.get("modifiers") else {}
    kind = action["type"]
    if kind == "click":
        at = coordinate(action["x"], action["y"])
        button, count = action["button"], action["count"]
        if (button, count) in CLICKS:
            return [{"action": CLICKS[button, count], "coordinate": at, **held}]
        return [{"action": CLICKS[button, 1], "coordinate": at, **held}] * count
    if kind == "drag":
        if action["button"] != "left":
            raise common.Skip(f"drag with the {action['button']} button")
        if held:
            raise common.Skip("drag with modifiers held")
        return [
            {
                "action": "left_click_drag",
                "start_coordinate": coordinate(*action["path"][0]),
                "coordinate": coordinate(*action["path"][-1]),
            }
        ]
    if kind == "scroll":
        at = coordinate(action["x"], action["y"])
        wheel = []
        for amount, positive, negative in (
            (action["dy"], "up", "down"),
            (action["dx"], "right", "left"),
        ):
            if amount:
                direction = positive if amount > 0 else negative
                wheel.append(
                    {
                        "action": "scroll",
                        "coordinate": at,
                        "scroll_direction": direction,
                        "scroll_amount": abs(amount),
                        **held,
                    }
                )
        return wheel
    if kind == "type":
        return [{"action": "type", "text": action["text"]}]
    if kind == "key":
        key = {"action": "key", "text": common.xdotool_chord(action["keys"])}
        return [key] * action.get("count", 1)
    if kind == "wait":
        return [{"action": "wait", "duration": action["seconds"]}]
    if kind == "move":
        return [{"action": "mouse_move", "coordinate": coordinate(action["x"], action["y"])}]
    raise common.Skip(f"unknown action type {kind!r}")


def from_dialect(items: Sequence[dict[str, Any]], size: tuple[int, int]) -> Action:
    """The canonical action of one step's tool inputs (``size``: the observation's)."""
    scaled = scaled_size(size)

    def point(coordinate: Sequence[int]) -> list[float]:
        return [common.snap(coordinate[i] / scaled[i], size[i]) for i in (0, 1)]

    first = items[0]
    name = first["action"]
    if name == "type":
        return {"type": "type", "text": first["text"]}
    # ``text`` is the chord of a key action, or the modifiers held during a click or scroll.
    keys = common.keys_of_xdotool(first["text"]) if "text" in first else []
    if name in _CLICK_OF:
        button, count = _CLICK_OF[name]
        count *= common.runs(items)
        return common.click_action(*point(first["coordinate"]), button, count, keys)
    if name == "left_click_drag":
        return common.drag_action([point(first["start_coordinate"]), point(first["coordinate"])])
    if name == "scroll":
        notches = {"up": (0, 1), "down": (0, -1), "right": (1, 0), "left": (-1, 0)}
        dx = sum(notches[i["scroll_direction"]][0] * i["scroll_amount"] for i in items)
        dy = sum(notches[i["scroll_direction"]][1] * i["scroll_amount"] for i in items)
        return common.scroll_action(*point(first["coordinate"]), dx, dy, keys)
    if name == "key":
        return common.key_action(keys, common.runs(items))
    if name == "wait":
        return {"type": "wait", "seconds": first["duration"]}
    if name == "mouse_move":
        x, y = point(first["coordinate"])
        return {"type": "move", "x": x, "y": y}
    raise ValueError(f"not a computer_20250124 step: {items!r}")


def export(
    dataset: common.Dataset, out: Path, progress: common.Progress | None = None
) -> common.Summary:
    def episode_record(episode: common.Episode, steps: list[dict[str, Any]]) -> dict[str, Any]:
        size = (episode["screen_w"], episode["screen_h"])
        width, height = scaled_size(size)
        return {
            "episode_id": episode["episode_id"],
            "instruction": episode["instruction"],
            "tool": {**TOOL, "display_width_px": width, "display_height_px": height},
            "scale": scale(size),
            "steps": steps,
        }

    return common.export_jsonl(
        dataset,
        out,
        "anthropic",
        to_dialect,
        common.step_record("actions"),
        episode_record,
        fit=MAX_SIZE,
        progress=progress,
    )

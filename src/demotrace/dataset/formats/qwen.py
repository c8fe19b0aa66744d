"""Qwen2.5-VL / Qwen3-VL ``computer_use`` tool calls, coordinates on the 0-1000 grid.

Writes ``OUT/qwen.jsonl``, one line per episode with, per step, the tool calls
(``{"name": "computer_use", "arguments": {...}}``) that replay it, and
``OUT/images/<frame_id>.png``. A coordinate is ``[round(x * 1000), round(y * 1000)]`` of the
observation; reading it back snaps to the nearest observation pixel, so a screen wider or taller
than 1000 pixels loses up to half a grid cell. Keys are pyautogui names (``ctrl``, ``enter``).
``scroll`` / ``hscroll`` take ``pixels`` as the tool's executor passes them to
``pyautogui.scroll``: wheel notches, positive up (and right). Mouse actions act where the
pointer is, so a scroll or drag starts with a ``mouse_move``.

What the tool cannot express, and what is written instead:

- ``switch_app`` via keys: a ``key`` call; via click: that click; via launcher: skipped and
  counted (nothing recorded to replay).
- ``select_option``: a ``left_click`` on the option; the chosen value is only in the image.
- back/forward mouse buttons: ``key`` ``["alt", "left"]`` / ``["alt", "right"]``.
- a right or middle click of count 2 or 3: that many single clicks.
- modifiers held during a click, drag or scroll (``key`` presses and releases at once): the
  step is skipped and counted.
- a drag's path: ``mouse_move`` to the press, ``left_click_drag`` to the release; the points
  between are dropped. A drag with another button is skipped and counted.
- a click's ``target`` (role, name, box): not written; the element is only in the image.
- ``masked`` typing: the masked text is typed; the flag is dropped.
- a key chord pressed ``count`` times: that many ``key`` calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from demotrace.dataset.formats import common
from demotrace.dataset.formats.common import GRID, Action, Step

TOOL = "computer_use"

#: (button, count) -> the tool's click action.
CLICKS: dict[tuple[str, int], str] = {
    ("left", 1): "left_click",
    ("left", 2): "double_click",
    ("left", 3): "triple_click",
    ("right", 1): "right_click",
    ("middle", 1): "middle_click",
}
_CLICK_OF = {name: key for key, name in CLICKS.items()}


def _grid(x: float, y: float) -> list[int]:
    return [round(x * GRID), round(y * GRID)]


def to_dialect(step: Step) -> list[dict[str, Any]]:
    """The ``computer_use`` calls that replay one step."""
    action = common.as_plain(step["action"])
    kind = action["type"]
    if action.get("modifiers"):
        raise common.Skip(f"{kind} with modifiers held")
    if kind == "click":
        at = _grid(action["x"], action["y"])
        button, count = action["button"], action["count"]
        if (button, count) in CLICKS:
            calls = [{"action": CLICKS[button, count], "coordinate": at}]
        else:
            calls = [{"action": CLICKS[button, 1], "coordinate": at}] * count
    elif kind == "drag":
        if action["button"] != "left":
            raise common.Skip(f"drag with the {action['button']} button")
        calls = [
            {"action": "mouse_move", "coordinate": _grid(*action["path"][0])},
            {"action": "left_click_drag", "coordinate": _grid(*action["path"][-1])},
        ]
    elif kind == "scroll":
        calls = [{"action": "mouse_move", "coordinate": _grid(action["x"], action["y"])}]
        if action["dy"]:
            calls.append({"action": "scroll", "pixels": action["dy"]})
        if action["dx"]:
            calls.append({"action": "hscroll", "pixels": action["dx"]})
    elif kind == "type":
        calls = [{"action": "type", "text": action["text"]}]
    elif kind == "key":
        calls = [{"action": "key", "keys": action["keys"]}] * action.get("count", 1)
    elif kind == "wait":
        calls = [{"action": "wait", "time": action["seconds"]}]
    elif kind == "move":
        calls = [{"action": "mouse_move", "coordinate": _grid(action["x"], action["y"])}]
    else:
        raise common.Skip(f"unknown action type {kind!r}")
    return [{"name": TOOL, "arguments": arguments} for arguments in calls]


def from_dialect(items: Sequence[dict[str, Any]], size: tuple[int, int]) -> Action:
    """The canonical action of one step's tool calls (``size``: the observation's)."""
    calls = [item["arguments"] for item in items]
    first = calls[0]
    name = first["action"]

    def point(arguments: dict[str, Any]) -> list[float]:
        return [common.snap(arguments["coordinate"][i] / GRID, size[i]) for i in (0, 1)]

    if name in _CLICK_OF:
        button, count = _CLICK_OF[name]
        return common.click_action(*point(first), button, count * common.runs(calls))
    if name == "mouse_move" and len(calls) == 1:
        x, y = point(first)
        return {"type": "move", "x": x, "y": y}
    if name == "mouse_move" and calls[1]["action"] == "left_click_drag":
        return common.drag_action([point(first), point(calls[1])])
    if name == "mouse_move":
        wheel = {c["action"]: c["pixels"] for c in calls[1:]}
        return common.scroll_action(*point(first), wheel.get("hscroll", 0), wheel.get("scroll", 0))
    if name == "type":
        return {"type": "type", "text": first["text"]}
    if name == "key":
        return common.key_action(list(first["keys"]), common.runs(calls))
    if name == "wait":
        return {"type": "wait", "seconds": first["time"]}
    raise ValueError(f"not a computer_use step: {items!r}")


def export(
    dataset: common.Dataset, out: Path, progress: common.Progress | None = None
) -> common.Summary:
    def episode_record(episode: common.Episode, steps: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "episode_id": episode["episode_id"],
            "instruction": episode["instruction"],
            "steps": steps,
        }

    return common.export_jsonl(
        dataset,
        out,
        "qwen",
        to_dialect,
        common.step_record("tool_calls"),
        episode_record,
        progress=progress,
    )

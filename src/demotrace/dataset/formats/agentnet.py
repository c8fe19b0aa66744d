"""AgentNet (OpenCUA) trajectories: pyautogui code with coordinates normalised to 0-1.

Writes ``OUT/agentnet.jsonl``, one line per episode::

    {"task_id": ..., "instruction": ..., "traj": [{"index": 0, "image": "<frame_id>.png",
     "value": {"code": "pyautogui.click(x=0.4211, y=0.631)"}}]}

and the images as ``OUT/images/<frame_id>.png``. Coordinates are fractions of the observation
with 4 decimals (as AgentNet writes them); reading them back snaps to the nearest observation
pixel, which is exact for screens narrower than 10,000 pixels. A step of several calls has them
on separate lines of ``code``.

What this code cannot express, and what is written instead:

- ``switch_app`` via keys: the key chord (``pyautogui.hotkey(['alt', 'tab'])``); via click:
  that click; via launcher: skipped and counted (nothing recorded to replay).
- ``select_option``: a click on the option; the chosen value is only in the image.
- back/forward mouse buttons: ``hotkey(['alt', 'left'])`` / ``hotkey(['alt', 'right'])``.
- a drag's path: ``moveTo`` the press, ``dragTo`` the release; the points between are dropped.
- a click's ``target`` (role, name, box): not written; the element is only in the image.
- ``masked`` typing: the masked text is written; the flag is dropped.
- a key chord pressed ``count`` times: the ``hotkey`` call repeated.

Clicks use AgentNet's names (``click``, ``doubleClick``, ``tripleClick``, ``rightClick``,
``middleClick``; other button and count pairs ``click(..., clicks=, button=)``), modifiers are
held with ``keyDown`` / ``keyUp``, and a wait is ``computer.wait(seconds=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from demotrace.dataset.formats import common
from demotrace.dataset.formats.common import Action, Step, call

#: (button, count) -> AgentNet's pyautogui function.
CLICKS: dict[tuple[str, int], str] = {
    ("left", 1): "pyautogui.click",
    ("left", 2): "pyautogui.doubleClick",
    ("left", 3): "pyautogui.tripleClick",
    ("right", 1): "pyautogui.rightClick",
    ("middle", 1): "pyautogui.middleClick",
}
_CLICK_OF = {name: key for key, name in CLICKS.items()}


def _norm(value: float) -> float:
    return round(value, 4)


def to_dialect(step: Step) -> list[str]:
    """The normalised pyautogui calls that replay one step."""
    action = common.as_plain(step["action"])
    kind = action["type"]
    if kind == "click":
        x, y = _norm(action["x"]), _norm(action["y"])
        key = (action["button"], action["count"])
        if key in CLICKS:
            click = call(CLICKS[key], x=x, y=y)
        else:
            click = call("pyautogui.click", x=x, y=y, clicks=key[1], button=key[0])
        return common.hold(action["modifiers"], [click])
    if kind == "drag":
        (x0, y0), (x1, y1) = action["path"][0], action["path"][-1]
        drag = [
            call("pyautogui.moveTo", x=_norm(x0), y=_norm(y0)),
            call("pyautogui.dragTo", x=_norm(x1), y=_norm(y1), button=action["button"]),
        ]
        return common.hold(action["modifiers"], drag)
    if kind == "scroll":
        x, y = _norm(action["x"]), _norm(action["y"])
        wheel = [call("pyautogui.scroll", action["dy"], x=x, y=y)] if action["dy"] else []
        if action["dx"]:
            wheel.append(call("pyautogui.hscroll", action["dx"], x=x, y=y))
        return common.hold(action["modifiers"], wheel)
    if kind == "type":
        return [call("pyautogui.write", message=action["text"])]
    if kind == "key":
        keys, count = action["keys"], action.get("count", 1)
        if len(keys) > 1:
            return [call("pyautogui.hotkey", keys)] * count
        return [call("pyautogui.press", keys[0], **({"presses": count} if count > 1 else {}))]
    if kind == "wait":
        return [call("computer.wait", seconds=action["seconds"])]
    if kind == "move":
        return [call("pyautogui.moveTo", x=_norm(action["x"]), y=_norm(action["y"]))]
    raise common.Skip(f"unknown action type {kind!r}")


def from_dialect(items: Sequence[str], size: tuple[int, int]) -> Action:
    """The canonical action of one step's code (``size``: the observation's, to snap to)."""
    modifiers, calls = common.unhold([common.parse_call(code) for code in items])
    name, args, kw = calls[0]

    def point(kwargs: dict[str, Any]) -> tuple[float, float]:
        return common.snap(kwargs["x"], size[0]), common.snap(kwargs["y"], size[1])

    if name in _CLICK_OF:
        button, count = _CLICK_OF[name] if "clicks" not in kw else (kw["button"], kw["clicks"])
        return common.click_action(*point(kw), button, count, modifiers)
    if name == "pyautogui.moveTo" and len(calls) == 2:
        end = calls[1][2]
        return common.drag_action([list(point(kw)), list(point(end))], end["button"], modifiers)
    if name in ("pyautogui.scroll", "pyautogui.hscroll"):
        wheel = {c[0]: c[1][0] for c in calls}
        dx, dy = wheel.get("pyautogui.hscroll", 0), wheel.get("pyautogui.scroll", 0)
        return common.scroll_action(*point(kw), dx, dy, modifiers)
    if name == "pyautogui.moveTo":
        x, y = point(kw)
        return {"type": "move", "x": x, "y": y}
    if name == "pyautogui.write":
        return {"type": "type", "text": kw["message"]}
    if name == "pyautogui.press":
        return common.key_action([args[0]], kw.get("presses", 1))
    if name == "pyautogui.hotkey":
        return common.key_action(list(args[0]), common.runs(calls))
    if name == "computer.wait":
        return {"type": "wait", "seconds": kw["seconds"]}
    raise ValueError(f"not an AgentNet step: {items!r}")


def export(
    dataset: common.Dataset, out: Path, progress: common.Progress | None = None
) -> common.Summary:
    def step_record(step: Step, items: list[str], image: str | None) -> dict[str, Any]:
        return {"index": step["step_index"], "image": image, "value": {"code": "\n".join(items)}}

    def episode_record(episode: common.Episode, steps: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "task_id": episode["episode_id"],
            "instruction": episode["instruction"],
            "traj": steps,
        }

    return common.export_jsonl(
        dataset,
        out,
        "agentnet",
        to_dialect,
        step_record,
        episode_record,
        progress=progress,
    )

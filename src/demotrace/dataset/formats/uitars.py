"""UI-TARS action strings in a ``Thought: ... / Action: ...`` response, 0-1000 grid coordinates.

Writes ``OUT/uitars.jsonl``, one line per episode with, per step, the response a UI-TARS model
would give, and ``OUT/images/<frame_id>.png``::

    Thought: Double-click the push button 'Save' in Workbench.
    Action: left_double(start_box='(421,631)')

The thought is a plain description generated from the recorded action and its target (what was
done, not the worker's reasoning). A step of several actions lists them separated by a blank
line. Points are ``(round(x * 1000),round(y * 1000))``; reading them back snaps to the nearest
observation pixel, so a screen wider or taller than 1000 pixels loses up to half a grid cell.
Keys are pyautogui names, lower case, separated by spaces (``hotkey(key='ctrl c')``).

What UI-TARS cannot express, and what is written instead:

- ``switch_app`` via keys: a ``hotkey``; via click: that click; via launcher: skipped and
  counted (nothing recorded to replay).
- ``select_option``: a ``click`` on the option; the chosen value is only in the image.
- back/forward mouse buttons: ``hotkey(key='alt left')`` / ``hotkey(key='alt right')``.
- a triple click, a middle click, a right double click: skipped and counted.
- modifiers held during a click, drag or scroll: skipped and counted.
- a drag's path: ``drag`` from the press to the release; the points between are dropped. A drag
  with another button is skipped and counted.
- a scroll's amount: ``scroll`` gives a direction only (one per axis); it is read back as one
  notch.
- ``wait``: ``wait()`` has a fixed length (5 s); it is read back as 5 seconds.
- ``move``: ``hover(start_box=...)``, which UI-TARS' action parser accepts.
- a click's ``target``: not in the action; the thought names it (role and name).
- ``masked`` typing: the masked text is typed; the flag is dropped.
- a key chord pressed ``count`` times: that many ``hotkey`` actions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from demotrace.dataset.formats import common
from demotrace.dataset.formats.common import GRID, Action, Step, call

#: Seconds UI-TARS' ``wait()`` sleeps.
WAIT_S = 5.0

#: (button, count) -> UI-TARS' click action.
CLICKS: dict[tuple[str, int], str] = {
    ("left", 1): "click",
    ("left", 2): "left_double",
    ("right", 1): "right_single",
}
_CLICK_OF = {name: key for key, name in CLICKS.items()}
_BOX = re.compile(r"\((\d+),\s*(\d+)\)")
_DIRECTIONS = {"up": (0, 1), "down": (0, -1), "right": (1, 0), "left": (-1, 0)}
_VERBS = {
    ("left", 1): "Click",
    ("left", 2): "Double-click",
    ("right", 1): "Right-click",
}


def _box(x: float, y: float) -> str:
    return f"({round(x * GRID)},{round(y * GRID)})"


def to_dialect(step: Step) -> list[str]:
    """The UI-TARS actions that replay one step."""
    action = common.as_plain(step["action"])
    kind = action["type"]
    if action.get("modifiers"):
        raise common.Skip(f"{kind} with modifiers held")
    if kind == "click":
        key = (action["button"], action["count"])
        if key not in CLICKS:
            raise common.Skip(f"{key[0]} click of count {key[1]}")
        return [call(CLICKS[key], start_box=_box(action["x"], action["y"]))]
    if kind == "drag":
        if action["button"] != "left":
            raise common.Skip(f"drag with the {action['button']} button")
        start, end = action["path"][0], action["path"][-1]
        return [call("drag", start_box=_box(*start), end_box=_box(*end))]
    if kind == "scroll":
        box = _box(action["x"], action["y"])
        wheel = []
        if action["dy"]:
            wheel.append(
                call("scroll", start_box=box, direction="up" if action["dy"] > 0 else "down")
            )
        if action["dx"]:
            wheel.append(
                call("scroll", start_box=box, direction="right" if action["dx"] > 0 else "left")
            )
        return wheel
    if kind == "type":
        return [call("type", content=action["text"])]
    if kind == "key":
        return [call("hotkey", key=" ".join(action["keys"]))] * action.get("count", 1)
    if kind == "wait":
        return [call("wait")]
    if kind == "move":
        return [call("hover", start_box=_box(action["x"], action["y"]))]
    raise common.Skip(f"unknown action type {kind!r}")


def from_dialect(items: Sequence[str], size: tuple[int, int]) -> Action:
    """The canonical action of one step's UI-TARS actions (``size``: the observation's)."""
    calls = [common.parse_call(item) for item in items]
    name, _, kw = calls[0]

    def point(box: str) -> list[float]:
        match = _BOX.search(box)
        if match is None:
            raise ValueError(f"not a UI-TARS point: {box!r}")
        return [common.snap(int(match[i + 1]) / GRID, size[i]) for i in (0, 1)]

    if name in _CLICK_OF:
        return common.click_action(*point(kw["start_box"]), *_CLICK_OF[name])
    if name == "drag":
        return common.drag_action([point(kw["start_box"]), point(kw["end_box"])])
    if name == "scroll":
        dx = sum(_DIRECTIONS[c[2]["direction"]][0] for c in calls)
        dy = sum(_DIRECTIONS[c[2]["direction"]][1] for c in calls)
        return common.scroll_action(*point(kw["start_box"]), dx, dy)
    if name == "type":
        return {"type": "type", "text": kw["content"]}
    if name == "hotkey":
        return common.key_action(kw["key"].split(" "), common.runs(calls))
    if name == "wait":
        return {"type": "wait", "seconds": WAIT_S}
    if name == "hover":
        x, y = point(kw["start_box"])
        return {"type": "move", "x": x, "y": y}
    raise ValueError(f"not a UI-TARS step: {items!r}")


def thought(step: Step) -> str:
    """A one-sentence description of what the step did, from its action and target."""
    original = step["action"]
    action = common.as_plain(original)
    kind = action["type"]
    target = original.get("target") or {}
    what = f" the {target['role']} '{target['name']}'" if target.get("name") else ""
    where = f" in {step['app']}" if step.get("app") else ""
    if original["type"] == "switch_app":
        return f"Switch to {original['app']}."
    if original["type"] == "select_option":
        return f"Choose '{original['value']}'{' in' + what if what else ''}{where}."
    if kind == "click":
        return f"{_VERBS[action['button'], action['count']]}{what}{where}."
    if kind == "drag":
        return f"Drag{where}."
    if kind == "scroll":
        amounts = [
            (action["dy"], "up", "down"),
            (action["dx"], "right", "left"),
        ]
        parts = [f"{pos if n > 0 else neg} {abs(n)}" for n, pos, neg in amounts if n]
        return f"Scroll {' and '.join(parts)}{where}."
    if kind == "type":
        return f"Type {common.quote(action['text'])}."
    if kind == "key":
        times = f" {action['count']} times" if action.get("count", 1) > 1 else ""
        return f"Press {'+'.join(action['keys'])}{times}."
    if kind == "wait":
        return "Wait for the screen to change."
    return f"Hover{' over' + what if what else ''}{where}."


def export(
    dataset: common.Dataset, out: Path, progress: common.Progress | None = None
) -> common.Summary:
    def step_record(step: Step, items: list[str], image: str | None) -> dict[str, Any]:
        response = f"Thought: {thought(step)}\nAction: " + "\n\n".join(items)
        return {
            **common.step_fields(step, image),
            "response": response,
        }

    def episode_record(episode: common.Episode, steps: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "episode_id": episode["episode_id"],
            "instruction": episode["instruction"],
            "steps": steps,
        }

    return common.export_jsonl(
        dataset,
        out,
        "uitars",
        to_dialect,
        step_record,
        episode_record,
        progress=progress,
    )

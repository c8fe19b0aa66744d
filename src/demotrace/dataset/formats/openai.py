"""OpenAI computer-use actions (the ``computer_call`` action objects), in observation pixels.

Writes ``OUT/openai.jsonl``, one line per episode with the tool's display size and, per step, the
actions that replay it, and ``OUT/images/<frame_id>.png``. Coordinates are pixels of the
observation (the display is declared at the observation's size). Key names are the upper-case
ones the model emits (``CTRL``, ``ENTER``, ``ARROWDOWN``, ``META``); held modifiers go in
``keys`` on ``click``, ``double_click``, ``drag`` and ``scroll``. A scroll notch is
:data:`SCROLL_PX` pixels; ``scroll_y`` > 0 scrolls down and ``scroll_x`` > 0 right.

What the actions cannot express, and what is written instead:

- ``switch_app`` via keys: a ``keypress``; via click: that click; via launcher: skipped and
  counted (nothing recorded to replay).
- ``select_option``: a ``click`` on the option; the chosen value is only in the image.
- a triple click, or a right, middle, back or forward click of count 2 or 3: that many
  ``click`` actions (``double_click`` exists for the left button only).
- a drag with a button other than the left: skipped and counted.
- ``wait`` has no duration: it is written without one, and read back as
  :data:`WAIT_S` seconds, the shortest wait the dataset records.
- a click's ``target`` (role, name, box): not written; the element is only in the image.
- ``masked`` typing: the masked text is typed; the flag is dropped.
- a key chord pressed ``count`` times: that many ``keypress`` actions.

A drag keeps its whole path; buttons back and forward exist (``back``, ``forward``; the middle
button is ``wheel``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from demotrace.dataset.formats import common
from demotrace.dataset.formats.common import Action, Step

#: Pixels scrolled per wheel notch (what browsers scroll for one notch).
SCROLL_PX = 100
#: Seconds a duration-less ``wait`` stands for when read back.
WAIT_S = 3.0

BUTTONS: dict[str, str] = {
    "left": "left",
    "right": "right",
    "middle": "wheel",
    "back": "back",
    "forward": "forward",
}
_BUTTON_OF = {name: button for button, name in BUTTONS.items()}


def to_dialect(step: Step) -> list[dict[str, Any]]:
    """The actions that replay one step."""
    action = common.as_plain(step["action"], buttons=tuple(BUTTONS))
    size = common.size_of(step)
    held = {"keys": common.openai_keys(action["modifiers"])} if action.get("modifiers") else {}
    kind = action["type"]
    if kind == "click":
        x, y = common.point_px(action["x"], action["y"], size)
        if action["button"] == "left" and action["count"] == 2:
            return [{"type": "double_click", "x": x, "y": y, **held}]
        click = {"type": "click", "button": BUTTONS[action["button"]], "x": x, "y": y, **held}
        return [click] * action["count"]
    if kind == "drag":
        if action["button"] != "left":
            raise common.Skip(f"drag with the {action['button']} button")
        path = [common.point_px(x, y, size) for x, y in action["path"]]
        return [{"type": "drag", "path": [{"x": x, "y": y} for x, y in path], **held}]
    if kind == "scroll":
        x, y = common.point_px(action["x"], action["y"], size)
        scroll_x, scroll_y = action["dx"] * SCROLL_PX, -action["dy"] * SCROLL_PX
        return [
            {"type": "scroll", "x": x, "y": y, "scroll_x": scroll_x, "scroll_y": scroll_y, **held}
        ]
    if kind == "type":
        return [{"type": "type", "text": action["text"]}]
    if kind == "key":
        keypress = {"type": "keypress", "keys": common.openai_keys(action["keys"])}
        return [keypress] * action.get("count", 1)
    if kind == "wait":
        return [{"type": "wait"}]
    if kind == "move":
        x, y = common.point_px(action["x"], action["y"], size)
        return [{"type": "move", "x": x, "y": y}]
    raise common.Skip(f"unknown action type {kind!r}")


def from_dialect(items: Sequence[dict[str, Any]], size: tuple[int, int]) -> Action:
    """The canonical action of one step's actions (``size``: the observation's)."""
    first = items[0]
    kind = first["type"]
    held = common.keys_of_openai(first.get("keys", [])) if kind != "keypress" else []

    def at(item: dict[str, Any]) -> tuple[float, float]:
        return common.point_from_px(item["x"], item["y"], size)

    if kind == "double_click":
        return common.click_action(*at(first), "left", 2, held)
    if kind == "click":
        button = _BUTTON_OF[first["button"]]
        return common.click_action(*at(first), button, common.runs(items), held)
    if kind == "drag":
        return common.drag_action([list(at(p)) for p in first["path"]], "left", held)
    if kind == "scroll":
        dx, dy = round(first["scroll_x"] / SCROLL_PX), round(-first["scroll_y"] / SCROLL_PX)
        return common.scroll_action(*at(first), dx, dy, held)
    if kind == "type":
        return {"type": "type", "text": first["text"]}
    if kind == "keypress":
        return common.key_action(common.keys_of_openai(first["keys"]), common.runs(items))
    if kind == "wait":
        return {"type": "wait", "seconds": WAIT_S}
    if kind == "move":
        x, y = at(first)
        return {"type": "move", "x": x, "y": y}
    raise ValueError(f"not an OpenAI computer action: {items!r}")


def export(
    dataset: common.Dataset, out: Path, progress: common.Progress | None = None
) -> common.Summary:
    def episode_record(episode: common.Episode, steps: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "episode_id": episode["episode_id"],
            "instruction": episode["instruction"],
            "tool": {
                "type": "computer_use_preview",
                "display_width": episode["screen_w"],
                "display_height": episode["screen_h"],
            },
            "steps": steps,
        }

    return common.export_jsonl(
        dataset,
        out,
        "openai",
        to_dialect,
        common.step_record("actions"),
        episode_record,
        progress=progress,
    )

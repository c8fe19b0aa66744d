"""OSWorld-style pyautogui code: absolute pixels of the observation, one list of calls per step.

Writes ``OUT/pyautogui.jsonl`` (one line per episode) and ``OUT/images/<frame_id>.png``.

What pyautogui cannot express, and what is written instead:

- ``switch_app`` via keys: the key chord (``pyautogui.hotkey('alt', 'tab')``); via click: that
  click; via launcher: skipped and counted (nothing recorded to replay).
- ``select_option``: a click on the option; the chosen value is only in the image.
- back/forward mouse buttons (pyautogui has no buttons 8 and 9): ``hotkey('alt', 'left')`` /
  ``hotkey('alt', 'right')``, the keys most apps bind to them.
- a drag's path: ``moveTo`` the press, ``dragTo`` the release; the points between are dropped.
- a click's ``target`` (role, name, box): not written; the element is only in the image.
- ``masked`` typing: the masked text is written; the flag is dropped.
- a key chord pressed ``count`` times: the ``hotkey`` call repeated (one key uses ``presses=``).

Everything else is exact: modifier-held clicks, drags and scrolls are wrapped in ``keyDown`` /
``keyUp``, counts are ``clicks=``, a wait is ``time.sleep(seconds)`` and a move is ``moveTo``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from demotrace.dataset.formats import common
from demotrace.dataset.formats.common import Action, Step, call, point_from_px, point_px


def to_dialect(step: Step) -> list[str]:
    """The pyautogui calls that replay one step, in observation pixels."""
    action = common.as_plain(step["action"])
    size = common.size_of(step)
    kind = action["type"]
    if kind == "click":
        x, y = point_px(action["x"], action["y"], size)
        click = call("pyautogui.click", x=x, y=y, clicks=action["count"], button=action["button"])
        return common.hold(action["modifiers"], [click])
    if kind == "drag":
        (x0, y0), (x1, y1) = (point_px(*p, size) for p in (action["path"][0], action["path"][-1]))
        drag = [
            call("pyautogui.moveTo", x=x0, y=y0),
            call("pyautogui.dragTo", x=x1, y=y1, button=action["button"]),
        ]
        return common.hold(action["modifiers"], drag)
    if kind == "scroll":
        x, y = point_px(action["x"], action["y"], size)
        wheel = [call("pyautogui.scroll", action["dy"], x=x, y=y)] if action["dy"] else []
        if action["dx"]:
            wheel.append(call("pyautogui.hscroll", action["dx"], x=x, y=y))
        return common.hold(action["modifiers"], wheel)
    if kind == "type":
        return [call("pyautogui.write", action["text"])]
    if kind == "key":
        keys, count = action["keys"], action.get("count", 1)
        if len(keys) > 1:
            return [call("pyautogui.hotkey", *keys)] * count
        return [call("pyautogui.press", keys[0], **({"presses": count} if count > 1 else {}))]
    if kind == "wait":
        return [call("time.sleep", action["seconds"])]
    if kind == "move":
        x, y = point_px(action["x"], action["y"], size)
        return [call("pyautogui.moveTo", x=x, y=y)]
    raise common.Skip(f"unknown action type {kind!r}")


def from_dialect(items: Sequence[str], size: tuple[int, int]) -> Action:
    """The canonical action that one step's calls perform (``size``: the observation's)."""
    modifiers, calls = common.unhold([common.parse_call(code) for code in items])
    name, args, kw = calls[0]
    if name == "pyautogui.click":
        x, y = point_from_px(kw["x"], kw["y"], size)
        return common.click_action(x, y, kw["button"], kw["clicks"], modifiers)
    if name == "pyautogui.moveTo" and len(calls) == 2:
        end = calls[1][2]
        path = [list(point_from_px(c["x"], c["y"], size)) for c in (kw, end)]
        return common.drag_action(path, end["button"], modifiers)
    if name in ("pyautogui.scroll", "pyautogui.hscroll"):
        wheel = {c[0]: c[1][0] for c in calls}
        x, y = point_from_px(kw["x"], kw["y"], size)
        dx, dy = wheel.get("pyautogui.hscroll", 0), wheel.get("pyautogui.scroll", 0)
        return common.scroll_action(x, y, dx, dy, modifiers)
    if name == "pyautogui.moveTo":
        x, y = point_from_px(kw["x"], kw["y"], size)
        return {"type": "move", "x": x, "y": y}
    if name == "pyautogui.write":
        return {"type": "type", "text": args[0]}
    if name == "pyautogui.press":
        return common.key_action([args[0]], kw.get("presses", 1))
    if name == "pyautogui.hotkey":
        return common.key_action(list(args), common.runs(calls))
    if name == "time.sleep":
        return {"type": "wait", "seconds": args[0]}
    raise ValueError(f"not a pyautogui step: {items!r}")


def export(
    dataset: common.Dataset, out: Path, progress: common.Progress | None = None
) -> common.Summary:
    def episode_record(episode: common.Episode, steps: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "episode_id": episode["episode_id"],
            "instruction": episode["instruction"],
            "screen": [episode["screen_w"], episode["screen_h"]],
            "steps": steps,
        }

    return common.export_jsonl(
        dataset,
        out,
        "pyautogui",
        to_dialect,
        common.step_record("actions"),
        episode_record,
        progress=progress,
    )

"""Mind2Web-like web tasks: the steps done on web page elements, as CLICK, TYPE and SELECT.

Writes ``OUT/mind2web.json``, a JSON list with one task per episode that has a web step::

    {"annotation_id": ..., "website": "example.com", "confirmed_task": ..., "action_reprs":
     ["[button]  Submit -> CLICK"], "actions": [{"action_uid": ..., "url": ...,
     "operation": {"op": "CLICK", "original_op": "CLICK", "value": ""},
     "target": {"role": "button", "name": "Submit", "bbox": [x0, y0, x1, y1]},
     "point": [x, y], "image": "images/<frame_id>.png"}]}

and ``OUT/images/<frame_id>.png``. A web step is one whose action has a ``target`` from the
browser (``source`` ``dom``) and whose step has a ``url``. ``bbox`` and ``point`` (where the
pointer acted; a TYPE has none) are pixels of the observation; ``website`` is the host of the
task's first URL without ``www.``.

- a plain left click -> CLICK.
- ``select_option`` -> SELECT with the chosen value.
- ``type`` right after a web click on the same page -> TYPE with the text, on the clicked
  element (the exporter lends the type step that element as its ``target``). ``masked`` text
  is written masked; the flag is dropped.

What Mind2Web cannot express: everything else. Steps without a DOM target or URL (desktop
apps, keys, scrolls, drags, waits, moves, app switches), and clicks with another button, a count
above 1 or modifiers held are skipped and counted, and an episode without web steps is left out.
Reading an action back gives the canonical click, select_option or type (whose canonical form
has no target).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from demotrace.dataset.formats import common
from demotrace.dataset.formats.common import Action, Step


def _dom_target(step: Step) -> dict[str, Any] | None:
    target = step["action"].get("target")
    if target and target.get("source") == "dom" and step.get("url"):
        return target
    return None


def to_dialect(step: Step) -> list[dict[str, Any]]:
    """The Mind2Web action of one web step (raises :class:`common.Skip` for other steps)."""
    action = step["action"]
    target = _dom_target(step)
    if target is None:
        raise common.Skip("not a web step (no DOM target and URL)")
    if not target.get("bbox"):
        raise common.Skip("web step whose element has no box")
    size = common.size_of(step)
    kind = action["type"]
    if kind == "click":
        if (action["button"], action["count"], action["modifiers"]) != ("left", 1, []):
            raise common.Skip("web click other than a plain left click")
        op, value = "CLICK", ""
    elif kind == "select_option":
        op, value = "SELECT", action["value"]
    elif kind == "type":
        op, value = "TYPE", action["text"]
    else:
        raise common.Skip(f"{kind} on a web page (not CLICK, TYPE or SELECT)")
    x0, y0 = common.point_px(target["bbox"][0], target["bbox"][1], size)
    x1, y1 = common.point_px(target["bbox"][2], target["bbox"][3], size)
    item: dict[str, Any] = {
        "action_uid": f"{step['episode_id']}-{step['step_index']}",
        "url": step["url"],
        "operation": {"op": op, "original_op": op, "value": value},
        "target": {
            "role": target["role"],
            "name": target.get("name", ""),
            "bbox": [x0, y0, x1, y1],
        },
    }
    if kind != "type":
        item["point"] = list(common.point_px(action["x"], action["y"], size))
    return [item]


def from_dialect(items: Sequence[dict[str, Any]], size: tuple[int, int]) -> Action:
    """The canonical action of one Mind2Web action (``size``: the observation's)."""
    item = items[0]
    operation = item["operation"]
    if operation["op"] == "TYPE":
        return {"type": "type", "text": operation["value"]}
    x, y = common.point_from_px(*item["point"], size)
    box = item["target"]["bbox"]
    target = {
        "role": item["target"]["role"],
        "name": item["target"]["name"],
        "bbox": [
            *common.point_from_px(box[0], box[1], size),
            *common.point_from_px(box[2], box[3], size),
        ],
        "source": "dom",
    }
    if operation["op"] == "SELECT":
        return {
            "type": "select_option",
            "x": x,
            "y": y,
            "value": operation["value"],
            "target": target,
        }
    return {**common.click_action(x, y, "left"), "target": target}


def action_repr(item: dict[str, Any]) -> str:
    """Mind2Web's one-line form: ``[role]  name -> OP: value``."""
    target, operation = item["target"], item["operation"]
    op = operation["op"] + (f": {operation['value']}" if operation["op"] != "CLICK" else "")
    return f"[{target['role']}]  {target['name']} -> {op}"


def with_focus(steps: Iterable[Step]) -> Iterator[Step]:
    """The steps, where a ``type`` right after a web click (or after typing lent a field) on the
    same page gets that element as its ``target``: the field the text went into."""
    previous: Step | None = None
    for step in steps:
        focus = None
        if previous is not None and previous["action"]["type"] in ("click", "type"):
            focus = _dom_target(previous) if previous["url"] == step.get("url") else None
        if step["action"]["type"] == "type" and focus is not None:
            step = {**step, "action": {**step["action"], "target": focus}}
        yield step
        previous = step


def export(
    dataset: common.Dataset, out: Path, progress: common.Progress | None = None
) -> common.Summary:
    summary = common.Summary("mind2web", out)
    images = common.Images(out / "images")
    path = out / "mind2web.json"
    try:
        with path.open("w", encoding="utf-8") as fh:
            fh.write("[")
            for episode, steps in dataset.by_episode(progress):
                actions = []
                for step in with_focus(steps):
                    try:
                        (item,) = to_dialect(step)
                    except common.Skip as skip:
                        summary.skipped[skip.reason] += 1
                        continue
                    image = images.write(step)
                    actions.append({**item, "image": image and f"images/{image}"})
                if not actions:
                    continue
                task = {
                    "annotation_id": episode["episode_id"],
                    "website": _website(actions[0]["url"]),
                    "confirmed_task": episode["instruction"],
                    "action_reprs": [action_repr(a) for a in actions],
                    "actions": actions,
                }
                line = json.dumps(task, ensure_ascii=False, separators=(",", ":"))
                fh.write(("," if summary.episodes else "") + "\n" + line)
                summary.episodes += 1
                summary.steps += len(actions)
            fh.write("\n]\n")
    except OSError as exc:
        raise common.unwritable(out, exc) from exc
    summary.files += 1 + len(images.written)
    return summary


def _website(url: str) -> str:
    host = urlsplit(url).hostname or url
    return host.removeprefix("www.")

"""Scenario files: parsing and validation (no X needed).

A scenario is a TOML file in ``demotrace/scenarios/``::

    title = "Fill in the contact form"
    instruction = "Enter your name and email, pick Germany, ... and submit."
    apps = ["workbench"]                      # started in this order: workbench, xterm
    steps = [
      {do = "click", target = "workbench:name"},
      {do = "type", text = "Ada Lovelace"},
      {do = "select", target = "workbench:country", option = "Germany"},
    ]
    [expect]                                  # optional: workbench state after the last step
    country = "Germany"
    invoked = ["submit"]                      # lists: each item must occur in the state's list
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demotrace.errors import ScenarioError
from demotrace.testbench import spec
from demotrace.testbench.keys import is_key_name

APPS = {"workbench": "Workbench", "xterm": "XTerm"}

_POINTER = {"target": str, "item": str, "word": str}
#: verb -> (required keys, optional keys); values are the expected Python types.
VERBS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "move": ({"target": str}, {"item": str, "word": str}),
    "click": (
        {"target": str},
        {"item": str, "word": str, "button": str, "modifiers": list},
    ),
    "double_click": ({"target": str}, {"item": str, "word": str}),
    "triple_click": ({"target": str}, {"item": str, "word": str}),
    "right_click": ({"target": str}, {"item": str, "word": str}),
    "type": ({"text": str}, {**_POINTER, "secret": bool}),
    "select": ({"target": str, "option": str}, {}),
    "menu": ({"path": list}, {}),
    "context_menu": ({"target": str, "item": str}, {}),
    "hotkey": ({"keys": list}, {}),
    "key": ({"key": str}, {"repeat": int}),
    "scroll": ({"target": str}, {"item": str, "dy": int, "dx": int}),
    "drag": ({"target": str, "from_word": str, "to_word": str}, {}),
    "switch_app": ({"to": str, "via": str}, {}),
    "wait": ({"seconds": (int, float)}, {}),
    "check": ({"state": dict}, {}),
}


@dataclass(frozen=True)
class Step:
    index: int  # 1-based position in the file's ``steps``
    do: str
    args: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.args.get(key, default)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    instruction: str
    apps: tuple[str, ...]
    steps: tuple[Step, ...]
    expect: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def parse_scenario(path: Path, text: str | None = None) -> Scenario:
    """Parse and validate one scenario file; ScenarioError names the file and step."""
    where = str(path)
    try:
        data = tomllib.loads(text if text is not None else path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"Scenario file {where}: cannot read it ({exc}).") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"Scenario file {where}: not valid TOML ({exc}).") from exc
    unknown = set(data) - {"title", "instruction", "apps", "steps", "expect"}
    if unknown:
        raise ScenarioError(f"Scenario file {where}: unknown top-level keys {sorted(unknown)}.")
    for key in ("title", "instruction"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ScenarioError(f"Scenario file {where}: {key!r} must be a non-empty string.")
    apps = data.get("apps")
    if not isinstance(apps, list) or not apps or any(a not in APPS for a in apps):
        raise ScenarioError(
            f"Scenario file {where}: 'apps' must be a non-empty list drawn from {sorted(APPS)}."
        )
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError(f"Scenario file {where}: 'steps' must be a non-empty list of tables.")
    steps = tuple(_step(where, i, raw, tuple(apps)) for i, raw in enumerate(raw_steps, 1))
    expect = data.get("expect", {})
    if not isinstance(expect, dict) or set(expect) - set(spec.STATE_KEYS):
        raise ScenarioError(
            f"Scenario file {where}: 'expect' keys must be among {list(spec.STATE_KEYS)}."
        )
    return Scenario(
        name=path.stem,
        title=data["title"],
        instruction=" ".join(data["instruction"].split()),
        apps=tuple(apps),
        steps=steps,
        expect=expect,
        path=path,
    )


def _step(where: str, index: int, raw: Any, apps: tuple[str, ...]) -> Step:
    def fail(message: str) -> ScenarioError:
        verb = f" ({raw.get('do')})" if isinstance(raw, dict) and "do" in raw else ""
        return ScenarioError(f"Scenario file {where}, step {index}{verb}: {message}")

    if not isinstance(raw, dict):
        raise fail('each step must be a table like {do = "click", target = "workbench:name"}.')
    do = raw.get("do")
    if do not in VERBS:
        raise fail(f"'do' must be one of {sorted(VERBS)}, got {do!r}.")
    required, optional = VERBS[do]
    args = {k: v for k, v in raw.items() if k != "do"}
    for key in required:
        if key not in args:
            raise fail(f"missing {key!r}.")
    for key, value in args.items():
        kind = required.get(key, optional.get(key))
        if kind is None:
            raise fail(f"unknown key {key!r}; allowed: {sorted({**required, **optional})}.")
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise fail(f"{key!r} has the wrong type ({type(value).__name__}).")
    _check_semantics(do, args, apps, fail)
    return Step(index, do, args)


def _check_semantics(do: str, args: dict[str, Any], apps: tuple[str, ...], fail: Any) -> None:
    target = args.get("target")
    if target is not None:
        app, _, name = target.partition(":")
        if app not in apps:
            raise fail(f"target {target!r} names an app not in 'apps' {list(apps)}.")
        if app == "workbench" and name not in spec.WIDGETS:
            raise fail(f"the workbench has no widget {name!r}; it has {sorted(spec.WIDGETS)}.")
        if app == "xterm" and name:
            raise fail("an xterm target is just 'xterm'.")
        if "item" in args and name != "files" and do != "context_menu":
            raise fail("'item' is only for the workbench:files list.")
        if "item" in args and name == "files" and args["item"] not in spec.FILES:
            raise fail(f"the files list has no item {args['item']!r}.")
        if ("word" in args or do == "drag") and name != "notes":
            raise fail("'word', 'from_word' and 'to_word' are only for workbench:notes.")
    if do == "select":
        options = {"workbench:country": spec.COUNTRIES, "workbench:priority": spec.PRIORITIES}
        if target not in options:
            raise fail("'select' works on workbench:country or workbench:priority.")
        if args["option"] not in options[target]:
            raise fail(f"{args['option']!r} is not an option of {target}.")
    elif do == "menu":
        if "workbench" not in apps or not spec.menu_path_exists(args["path"]):
            raise fail(f"{args['path']!r} is not a workbench menubar path like File>Export>PDF.")
    elif do == "context_menu":
        if target != "workbench:notes" or args["item"] not in spec.CONTEXT_MENU:
            raise fail(f"context menus: target workbench:notes, item in {spec.CONTEXT_MENU}.")
    elif do == "hotkey":
        keys = args["keys"]
        if not keys or not all(isinstance(k, str) and is_key_name(k) for k in keys):
            raise fail(f"'keys' must be pyautogui key names, got {keys!r}.")
    elif do == "type" and not all(" " <= c <= "~" or c in "\n\t" for c in args["text"]):
        raise fail("'text' must be printable ASCII (what a US keyboard types), \\n or \\t.")
    elif do == "key" and not is_key_name(args["key"]):
        raise fail(f"{args['key']!r} is not a pyautogui key name.")
    elif do == "scroll" and not (args.get("dy") or args.get("dx")):
        raise fail("'scroll' needs a non-zero dy or dx.")
    elif do == "switch_app":
        if args["to"] not in apps or args["via"] not in ("alt_tab", "click"):
            raise fail(f"'to' must be one of {list(apps)} and 'via' alt_tab or click.")
    elif do == "check" and set(args["state"]) - set(spec.STATE_KEYS):
        raise fail(f"'state' keys must be among {list(spec.STATE_KEYS)}.")
    elif do == "click" and args.get("button", "left") not in ("left", "middle", "right"):
        raise fail("'button' must be left, middle or right.")
    elif do == "click" and not all(is_key_name(m) for m in args.get("modifiers", [])):
        raise fail("'modifiers' must be key names like ctrl or shift.")

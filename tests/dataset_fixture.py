"""A tiny built dataset, written directly with the schemas of ``demotrace.dataset.schema``.

Two episodes cover every action type of ``docs/dataset.md``:

- ``local-1-0000`` (1280x800, desktop apps, no instruction): a ctrl double click with a target,
  a right click, a three-point drag, a scroll on both axes, typing, a key chord, a key pressed 3
  times, ``switch_app`` via keys, click and launcher, a wait (no frame), a move, a triple click,
  a back-button click, a middle click and a ctrl scroll. Its steps are split over two files.
- ``local-1-0001`` (1024x768, a browser page): web clicks, typing, ``select_option`` on DOM
  targets, an enter key and masked typing.

Coordinates are chosen in pixels and stored as canonical fractions, so ``round(x * w)`` gives
the pixel back. Frames are solid-colour PNGs whose id is a hash of their pixels.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from demotrace.dataset import schema

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
DESKTOP = (1280, 800)
BROWSER = (1024, 768)
URL = "https://www.example.com/form"

#: Frame name -> (size, colour).
FRAMES: dict[str, tuple[tuple[int, int], tuple[int, int, int]]] = {
    "desk1": (DESKTOP, (30, 60, 90)),
    "desk2": (DESKTOP, (200, 200, 200)),
    "desk3": (DESKTOP, (250, 250, 240)),
    "term1": (DESKTOP, (0, 0, 0)),
    "desk4": (DESKTOP, (90, 120, 160)),
    "web1": (BROWSER, (255, 255, 255)),
    "web2": (BROWSER, (240, 244, 255)),
    "web3": (BROWSER, (230, 255, 230)),
    "web4": (BROWSER, (255, 240, 240)),
}


@functools.cache
def _frame(name: str) -> tuple[str, bytes]:
    size, colour = FRAMES[name]
    image = Image.new("RGB", size, colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return hashlib.sha256(image.tobytes()).hexdigest()[:16], buffer.getvalue()


def _fx(pixel: int, size: int) -> float:
    return round(pixel / size, 6)


def _pt(px: int, py: int, size: tuple[int, int]) -> dict[str, float]:
    return {"x": _fx(px, size[0]), "y": _fx(py, size[1])}


def _box(x0: int, y0: int, x1: int, y1: int, size: tuple[int, int]) -> list[float]:
    return [_fx(x0, size[0]), _fx(y0, size[1]), _fx(x1, size[0]), _fx(y1, size[1])]


_ATSPI = {"source": "atspi"}
_DOM = {"source": "dom"}


class FixtureStep(NamedTuple):
    name: str  # what the step covers; the tests name lossy cases by it
    action: dict[str, Any]
    frame: str | None
    app: str
    skills: tuple[str, ...] = ()


def _click(
    at: dict[str, float], button: str = "left", count: int = 1, modifiers: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {"type": "click", **at, "button": button, "count": count, "modifiers": list(modifiers)}


def _desktop_steps() -> list[FixtureStep]:
    d = DESKTOP
    save = {"role": "push button", "name": "Save", "bbox": _box(500, 490, 580, 520, d)}
    drag_path = [[_fx(px, d[0]), _fx(py, d[1])] for px, py in ((100, 200), (180, 260), (300, 330))]
    centre = _pt(640, 400, d)
    s, wb = FixtureStep, "Workbench"
    return [
        s(
            "ctrl_double_click",
            {**_click(_pt(539, 505, d), count=2, modifiers=("ctrl",)), "target": save | _ATSPI},
            "desk1",
            wb,
        ),
        s("right_click", _click(centre, button="right"), "desk1", wb, ("menu",)),
        s(
            "drag",
            {"type": "drag", "path": drag_path, "button": "left", "modifiers": []},
            "desk2",
            wb,
            ("drag",),
        ),
        s(
            "scroll_xy",
            {"type": "scroll", **centre, "dx": 2, "dy": -3, "modifiers": []},
            "desk2",
            wb,
            ("scroll",),
        ),
        s("type", {"type": "type", "text": "quarterly report"}, "desk3", wb, ("typing",)),
        s("chord", {"type": "key", "keys": ["ctrl", "c"]}, "desk3", wb, ("shortcut",)),
        s("key_x3", {"type": "key", "keys": ["down"], "count": 3}, "desk3", wb),
        s(
            "switch_keys",
            {"type": "switch_app", "app": "xterm", "via": "keys", "keys": ["alt", "tab"]},
            "desk3",
            wb,
            ("app_switch", "shortcut"),
        ),
        s(
            "switch_click",
            {"type": "switch_app", "app": wb, "via": "click", **_pt(960, 120, d), "button": "left"},
            "term1",
            "xterm",
            ("app_switch",),
        ),
        s(
            "switch_launcher",
            {"type": "switch_app", "app": "xterm", "via": "launcher"},
            "desk4",
            wb,
            ("app_switch",),
        ),
        s("wait", {"type": "wait", "seconds": 4.2}, None, "xterm"),
        s("move", {"type": "move", **_pt(313, 80, d)}, "desk4", wb, ("menu",)),
        s("triple_click", _click(_pt(700, 300, d), count=3), "desk4", wb),
        s("back_click", _click(centre, button="back"), "desk4", wb),
        s("middle_click", _click(_pt(320, 640, d), button="middle"), "desk4", wb),
        s(
            "ctrl_scroll",
            {"type": "scroll", **centre, "dx": 0, "dy": 1, "modifiers": ["ctrl"]},
            "desk4",
            wb,
            ("scroll",),
        ),
    ]


def _browser_steps() -> list[FixtureStep]:
    b = BROWSER
    name = {"role": "textbox", "name": "Name", "bbox": _box(150, 140, 400, 160, b)} | _DOM
    country = {"role": "combobox", "name": "Country", "bbox": _box(250, 380, 450, 400, b)} | _DOM
    submit = {"role": "button", "name": "Submit", "bbox": _box(460, 585, 540, 615, b)} | _DOM
    select = {"type": "select_option", **_pt(300, 402, b), "value": "Germany", "target": country}
    s, ff = FixtureStep, "Firefox"
    return [
        s("web_click", {**_click(_pt(200, 150, b)), "target": name}, "web1", ff),
        s("web_type", {"type": "type", "text": "Ada Lovelace"}, "web2", ff, ("typing",)),
        s("web_select", select, "web2", ff, ("dropdown",)),
        s("web_submit", {**_click(_pt(500, 600, b)), "target": submit}, "web3", ff),
        s("web_enter", {"type": "key", "keys": ["enter"]}, "web4", ff),
        s(
            "masked_type",
            {"type": "type", "text": "aaaaaaaa", "masked": True},
            "web4",
            ff,
            ("typing",),
        ),
    ]


EPISODES: list[dict[str, Any]] = [
    {
        "episode_id": "local-1-0000",
        "episode_index": 0,
        "instruction": None,
        "size": DESKTOP,
        "url": None,
        "steps": _desktop_steps(),
    },
    {
        "episode_id": "local-1-0001",
        "episode_index": 1,
        "instruction": "Fill in the form and choose Germany",
        "size": BROWSER,
        "url": URL,
        "steps": _browser_steps(),
    },
]

#: (episode_id, step_index) -> the fixture step's name.
STEP_NAMES: dict[tuple[str, int], str] = {
    (e["episode_id"], i): step.name for e in EPISODES for i, step in enumerate(e["steps"])
}


def _step_rows() -> list[dict[str, Any]]:
    rows = []
    seq = 100
    clock = T0
    for episode in EPISODES:
        w, h = episode["size"]
        for index, (_, action, frame, app, skills) in enumerate(episode["steps"]):
            fid, png = _frame(frame) if frame else (None, None)
            x, y = action.get("x", 0.5), action.get("y", 0.5)
            rows.append(
                {
                    "episode_id": episode["episode_id"],
                    "step_index": index,
                    "action_type": action["type"],
                    "action": schema.dumps_action(action),
                    "skills": list(skills),
                    "app": app,
                    "title": f"{app} window",
                    "url": episode["url"],
                    "screen_w": w,
                    "screen_h": h,
                    "scale": 1.0,
                    "pointer_x": x,
                    "pointer_y": y,
                    "pointer_path": [[x, y, -0.25], [x, y, 0.0]],
                    "t_start": clock,
                    "t_end": clock + dt.timedelta(milliseconds=120),
                    "device": "local",
                    "session": 1,
                    "seq_start": seq,
                    "seq_end": seq + 3,
                    "frame_id": fid,
                    "frame_age_ms": 40.0 if fid else None,
                    "observation": {"bytes": png, "path": None} if png else None,
                }
            )
            seq += 4
            clock += dt.timedelta(seconds=2)
    return rows


def _episode_rows(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for episode in EPISODES:
        own = [s for s in steps if s["episode_id"] == episode["episode_id"]]
        apps = list(dict.fromkeys(s["app"] for s in own))
        start, end = own[0]["t_start"], own[-1]["t_end"]
        rows.append(
            {
                "episode_id": episode["episode_id"],
                "device": "local",
                "session": 1,
                "episode_index": episode["episode_index"],
                "instruction": episode["instruction"],
                "apps": apps,
                "skills": sorted({k for s in own for k in s["skills"]}),
                "action_types": list(dict.fromkeys(s["action_type"] for s in own)),
                "t_start": start,
                "t_end": end,
                "duration_s": (end - start).total_seconds(),
                "n_steps": len(own),
                "n_events": own[-1]["seq_end"] - own[0]["seq_start"] + 1,
                "start_reason": "session" if episode["episode_index"] == 0 else "marker",
                "end_reason": "marker" if episode["episode_index"] == 0 else "session",
                "screen_w": episode["size"][0],
                "screen_h": episode["size"][1],
            }
        )
    return rows


def make_tiny_dataset(path: Path) -> Path:
    """Write the tiny dataset into the folder ``path`` (created) and return it."""
    (path / "data").mkdir(parents=True)
    (path / "meta").mkdir()
    (path / "plots").mkdir()
    steps = _step_rows()
    # The first episode is split over two files, as a build with small files would do.
    for number, chunk in enumerate((steps[:8], steps[8:])):
        table = pa.Table.from_pylist(chunk, schema=schema.STEP_SCHEMA)
        pq.write_table(
            table, path / "data" / f"steps-{number:05d}.parquet", row_group_size=schema.ROW_GROUP
        )
    episodes = pa.Table.from_pylist(_episode_rows(steps), schema=schema.EPISODE_SCHEMA)
    pq.write_table(episodes, path / "meta" / "episodes.parquet")
    info = {
        "format": schema.FORMAT_NAME,
        "version": schema.FORMAT_VERSION,
        "reducer_version": 1,
        "counts": {"episodes": len(EPISODES), "steps": len(steps)},
        "screens": [list(DESKTOP), list(BROWSER)],
        "sources": ["local"],
        "created": T0.isoformat(),
    }
    (path / "meta" / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    (path / "README.md").write_text("# Tiny demotrace dataset\n\nTwo episodes for the tests.\n")
    Image.new("RGB", (8, 8), (0, 0, 0)).save(path / "plots" / "action_types.png")
    return path

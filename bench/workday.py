"""A synthetic workday of raw events, shaped like what the recorder stores, for the reducer bench.

    from workday import generate_workday, write_parquet
    table = generate_workday(hours=8.0, seed=0)        # ~1,000,000 rows, EVENT_SCHEMA, seq order
    write_parquet(table, "bench/out/workday.parquet")

    .venv/bin/python bench/workday.py --hours 8 --out bench/out/workday.parquet

What a day holds (per hour of work, roughly): ~130,000 rows and ~210 actions (clicks, double,
right and modifier clicks, drags, scroll runs, typed texts, shortcuts, special keys, app switches
by click, taskbar or alt+tab, dropdown and menu choices, submenus, tooltips) between think times
during which the pointer fidgets; longer silences; a few gaps (an out-of-scope app, a password
field, and on days of 5 hours or more a paused lunch of 30-50 minutes). About 98% of the rows are
pointer moves, sampled at 60-125 Hz along minimum-jerk paths, and only while the pointer moves (a
still pointer reports nothing, as under X). The 8-hour day of seed 0 has 1,071,061 rows.

The rows follow the habits of the recorder as seen in real recordings:

- a BUTTON press is followed by its TARGET row (the window under the pointer) and a FRAME row
  whose ``for_seq`` is the press; release ``state`` holds the button's mask (256, 512, 1024);
- frames follow :class:`demotrace.recorder.ActionStarts`: every press, the first wheel notch of a
  run, a named key press after something else or after 0.5 s, a focus change to a window; a typed
  sequence's frame is for its first key. ``keyframe`` frames (no ``for_seq``) come now and then;
- a typed sequence is one TEXT row (``text``, ``mode``, ``keys``, ``t_end_ns``) just before its
  first key row; its character keys carry no code and no name, Shift and BackSpace stay named;
- chords are named KEY rows whose ``state`` is the modifiers held before the event;
- WHEEL rows are one per notch (codes 4-7); FOCUS rows carry app, instance, title, pid, window,
  geometry, with a ``window: 0`` row between two windows when the taskbar switches; POPUP rows map
  (value 1) and unmap (value 0) with the popup's window, type, geometry, app and opener;
- FRAME rows' ``t_ns`` is the time of the event they show, so it may run behind the row before.

Moves are built with numpy from a list of bursts; the other rows come from a Python loop over
actions. Everything is drawn from one ``numpy.random.Generator``: a seed gives the same table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from demotrace.dataset.schema import EVENT_SCHEMA
from demotrace.model import MOD_ALT, MOD_CONTROL, MOD_SHIFT, MOD_SUPER, Kind

#: Bump when the same seed would give other rows (the reducer bench caches days by version).
WORKDAY_VERSION = 1
MS = 1_000_000
S = 1_000_000_000
_NULL = int(np.iinfo(np.int32).min)  # "no value" in the int columns while building

#: X key codes of a US keyboard (evdev + 8).
KEYCODES: dict[str, int] = {
    "Escape": 9, "BackSpace": 22, "Tab": 23, "Return": 36, "Control_L": 37, "Shift_L": 50,
    "Alt_L": 64, "space": 65, "F2": 68, "F5": 71, "Home": 110, "Up": 111, "Prior": 112,
    "Left": 113, "Right": 114, "End": 115, "Down": 116, "Next": 117, "Delete": 119,
    "Super_L": 133,
    **dict(zip("1234567890", range(10, 20), strict=True)),
    **dict(zip("qwertyuiop", range(24, 34), strict=True)),
    **dict(zip("asdfghjkl", range(38, 47), strict=True)),
    **dict(zip("zxcvbnm", range(52, 59), strict=True)),
}  # fmt: skip
_MOD_KEYS = {"Shift_L": MOD_SHIFT, "Control_L": MOD_CONTROL, "Alt_L": MOD_ALT, "Super_L": MOD_SUPER}
_BUTTON_MASK = {1: 256, 2: 512, 3: 1024}
_SHIFTED = set('~!@#$%^&*()_+{}|:"<>?')

_VOCABULARY = (
    "report quarterly budget review meeting notes draft summary customer order invoice team "
    "project deadline update status plan release build test data sales forecast annual agenda "
    "follow up thanks please attached schedule call tomorrow monday friday numbers table chart "
    "server deploy config issue fix bug feature branch merge request approve comment docs api "
    "user account access export import total revenue cost margin region north south q3 q4 2026 "
    "hello hi regards best the a of to and for in on with from by this that is are will can we"
)
_WORDS = tuple(_VOCABULARY.split())
_COMMANDS = (
    "git status", "git diff", "ls -la", "cd src", "cd ..", "pytest -q", "make", "git log --oneline",
    "python3 -m demotrace", "top", "df -h", "git pull", "git push", "vim notes.md", "history",
    "grep -rn TODO .", "docker ps", "ssh build01", "tail -f app.log", "clear",
)  # fmt: skip
_SHORTCUTS = (  # (modifier keys, key name, weight)
    (("Control_L",), "c", 14), (("Control_L",), "v", 14), (("Control_L",), "s", 8),
    (("Control_L",), "z", 6), (("Control_L",), "a", 5), (("Control_L",), "x", 3),
    (("Control_L",), "f", 4), (("Control_L",), "t", 3), (("Control_L",), "w", 3),
    (("Control_L",), "l", 2), (("Control_L", "Shift_L"), "T", 1), (("Control_L",), "Tab", 2),
    (("Control_L", "Shift_L"), "z", 1), (("Super_L",), "d", 1),
)  # fmt: skip
_SPECIAL = (  # (key name, weight, how many presses at most)
    ("Return", 10, 1), ("Tab", 5, 3), ("Escape", 4, 1), ("Down", 7, 8), ("Up", 4, 5),
    ("Left", 2, 4), ("Right", 3, 6), ("Next", 2, 3), ("Prior", 1, 2), ("BackSpace", 3, 6),
    ("Delete", 2, 3), ("Home", 1, 1), ("End", 1, 1), ("F5", 1, 1), ("F2", 1, 1),
)  # fmt: skip
_ACTIONS = (  # (action, weight)
    ("click", 32), ("double_click", 4), ("context_menu", 2), ("dropdown", 3), ("menu", 2),
    ("drag", 2), ("scroll", 10), ("typing", 10), ("shortcut", 9), ("special", 10),
    ("switch", 6), ("modifier_click", 1),
)  # fmt: skip


@dataclass(frozen=True)
class App:
    """A top-level window the worker uses."""

    app: str
    instance: str
    window: int
    pid: int
    geometry: tuple[int, int, int, int]
    titles: tuple[str, ...]
    weight: float
    terminal: bool = False


def _apps(w: int, h: int) -> tuple[App, ...]:
    full = (0, 28, w, h - 28 - 40)  # maximized, under a 28 px title bar, above a 40 px panel
    right = (w // 2, 28, w - w // 2, h - 28 - 40)
    return (
        App("firefox", "Navigator", 0x2A00003, 2211, full, (
            "Inbox (3) - Mozilla Firefox", "Pull requests · acme/api - Mozilla Firefox",
            "Q3 planning - Google Docs - Mozilla Firefox", "Jira - Sprint 42 - Mozilla Firefox",
        ), 0.30),
        App("Code", "code", 0x3400004, 3120, full, (
            "reduce.py - demotrace - Visual Studio Code",
            "● schema.py - demotrace - Visual Studio Code",
        ), 0.25),
        App("Gnome-terminal", "gnome-terminal-server", 0x3C00006, 3380, right,
            ("dev@box: ~/src/api",), 0.15, terminal=True),
        App("libreoffice-calc", "libreoffice", 0x4400007, 4051, full,
            ("Q3 budget.ods - LibreOffice Calc",), 0.10),
        App("thunderbird", "Mail", 0x4C00003, 4400, full,
            ("Inbox - Local Folders - Mozilla Thunderbird",), 0.10),
        App("Slack", "slack", 0x5200003, 4620, full, ("Slack | #team-data | Acme",), 0.07),
        App("org.gnome.Nautilus", "org.gnome.Nautilus", 0x5800004, 4700, right,
            ("Documents",), 0.03),
    )  # fmt: skip


_PANEL = (0x1000010, "Xfce4-panel")
_EMAIL = re.compile(r"\S+@\S+")


def _js(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class _Day:
    """The Python half: actions in time order, non-move rows, and the bursts of pointer motion."""

    def __init__(self, rng: np.random.Generator, screen: tuple[int, int], t0: int) -> None:
        self.rng = rng
        self.w, self.h = screen
        self.apps = _apps(*screen)
        self.app_weights = np.array([a.weight for a in self.apps]) / sum(
            a.weight for a in self.apps
        )
        self.app = self.apps[0]
        self.title = self.app.titles[0]
        self.now = t0
        self.last_ord = t0
        self.px, self.py = self.w // 2, self.h // 2
        self.mods = 0
        self.next_popup = 0x6000001
        # non-move rows, in emission (= seq) order
        self.ord: list[int] = []
        self.t: list[int] = []
        self.kind: list[int] = []
        self.x: list[int] = []
        self.y: list[int] = []
        self.code: list[int] = []
        self.state: list[int] = []
        self.value: list[int] = []
        self.name: list[str | None] = []
        self.data: list[str | None] = []
        self.frames: list[tuple[int, int, dict[str, Any]]] = []  # (row, target row or -1, data)
        # pointer bursts: start/end time, from, to, rate (Hz), bend (fraction of the distance)
        self.bursts: list[tuple[int, int, int, int, int, int, float, float]] = []
        # the recorder's ActionStarts, mirrored
        self._last_key = -(1 << 62)
        self._last_wheel: tuple[int, int | None] = (-(1 << 62), None)
        self._other_key = True
        self._other_wheel = True

    # -- rows ----------------------------------------------------------------------------------
    def emit(
        self,
        kind: Kind,
        t: int,
        x: int | None = None,
        y: int | None = None,
        code: int | None = None,
        state: int | None = None,
        value: int | None = None,
        name: str | None = None,
        data: str | None = None,
    ) -> int:
        order = max(t, self.last_ord)
        if kind in (Kind.BUTTON, Kind.WHEEL, Kind.KEY):
            t = order  # input rows keep t_ns in seq order, as the X server numbers them
        self.last_ord = order
        self.ord.append(order)
        self.t.append(t)
        self.kind.append(int(kind))
        self.x.append(_NULL if x is None else x)
        self.y.append(_NULL if y is None else y)
        self.code.append(_NULL if code is None else code)
        self.state.append(_NULL if state is None else state)
        self.value.append(_NULL if value is None else value)
        self.name.append(name)
        self.data.append(data)
        return len(self.ord) - 1

    def frame(self, t: int, reason: str, target: int = -1) -> None:
        """A FRAME row for the row ``target`` (its seq is filled in once seqs are known)."""
        rng = self.rng
        age = 0 if rng.random() < 0.8 else int(rng.integers(0, 250 * MS))
        data: dict[str, Any] = {
            "frame": rng.bytes(16).hex(),
            "reason": reason,
            "t_grab_ns": t - int(rng.integers(5 * MS, 400 * MS)),
            "t_verified_ns": t,
            "age_ns": age,
            "region": [0, 0, self.w, self.h],
        }
        row = self.emit(Kind.FRAME, t)
        self.frames.append((row, target, data))

    def key(self, t: int, name: str | None, press: bool, typing: bool = False) -> int:
        """A KEY row (``typing``: a character key, stored without code and name)."""
        mods = self.mods
        code = None if typing or name is None else KEYCODES.get(name, KEYCODES.get(name.lower()))
        row = self.emit(
            Kind.KEY, t, self.px, self.py, code, mods, int(press), None if typing else name
        )
        if name in _MOD_KEYS:
            self.mods = mods | _MOD_KEYS[name] if press else mods & ~_MOD_KEYS[name]
        gap = t - self._last_key
        self._last_key = t
        self._other_wheel = True
        if press and (self._other_key or gap > S // 2):
            self._other_key = False
            if not typing:
                self.frame(t, "key", row)
        return row

    def press(self, t: int, button: int = 1, popup: tuple[int, str] | None = None) -> int:
        """A button press with its TARGET and FRAME rows; returns the press row."""
        row = self.emit(Kind.BUTTON, t, self.px, self.py, button, self.mods, 1)
        self._other_key = self._other_wheel = True
        if popup is not None:
            target = {"window": popup[0], "popup": popup[1], "app": self.app.app}
        elif self.py >= self.h - 40:
            target = {"window": _PANEL[0], "app": _PANEL[1]}
        else:
            target = {"window": self.app.window, "app": self.app.app}
        self.emit(Kind.TARGET, t, self.px, self.py, data=_js(target))
        self.frame(t, "press", row)
        return row

    def release(self, t: int, button: int = 1) -> None:
        state = self.mods | _BUTTON_MASK.get(button, 0)
        self.emit(Kind.BUTTON, t, self.px, self.py, button, state, 0)

    def wheel(self, t: int, code: int) -> None:
        row = self.emit(Kind.WHEEL, t, self.px, self.py, code, self.mods, 1)
        last_t, last_code = self._last_wheel
        start = self._other_wheel or code != last_code or t - last_t > S // 2
        self._last_wheel = (t, code)
        self._other_key = True
        self._other_wheel = False
        if start:
            self.frame(t, "scroll", row)

    def focus(self, t: int, app: App | None, frame: bool = True) -> None:
        self._other_key = self._other_wheel = True
        if app is None:
            info: dict[str, Any] = {"window": 0, "app": "", "instance": "", "title": ""}
            info["pid"] = None
            self.emit(Kind.FOCUS, t, data=_js(info))
            return
        self.app = app
        self.title = app.titles[int(self.rng.integers(len(app.titles)))]
        info = {
            "window": app.window,
            "app": app.app,
            "instance": app.instance,
            "title": self.title,
            "pid": app.pid,
            "geometry": list(app.geometry),
        }
        row = self.emit(Kind.FOCUS, t, data=_js(info))
        if frame:
            self.frame(t, "switch", row)

    def popup(self, t: int, window: int, ptype: str, geometry: list[int], mapped: bool) -> None:
        own = {"COMBO": "ComboboxPopdown", "TOOLTIP": "Tooltip"}.get(ptype, "Menu")
        info = {
            "window": window,
            "type": ptype,
            "geometry": geometry,
            "app": self.app.app,
            "opener": self.app.window,
            "own_class": own,
        }
        self.emit(Kind.POPUP, t, value=int(mapped), data=_js(info))

    # -- time and the pointer ------------------------------------------------------------------
    def ms(self, lo: float, hi: float) -> int:
        return int(self.rng.uniform(lo, hi) * MS)

    def wait(self, lo_ms: float, hi_ms: float) -> int:
        """Advance the clock by a uniform draw of milliseconds; the new time."""
        return self.after(self.rng.uniform(lo_ms, hi_ms))

    def after(self, ms: float) -> int:
        self.now = max(self.now, self.last_ord) + int(ms * MS)
        return self.now

    def move_to(self, x: int, y: int, precise: bool = True) -> None:
        """An aimed pointer movement (Fitts-like duration), sometimes with a correction."""
        rng = self.rng
        x = int(min(max(x, 0), self.w - 1))
        y = int(min(max(y, 0), self.h - 1))
        dist = float(np.hypot(x - self.px, y - self.py))
        if dist < 1.0:
            return
        seconds = (0.12 + 0.11 * np.log2(1.0 + dist / 24.0)) * rng.lognormal(0.0, 0.2)
        if precise and dist > 60 and rng.random() < 0.35:  # undershoot, then a small correction
            f = rng.uniform(0.88, 0.97)
            mx = int(self.px + (x - self.px) * f + rng.normal(0, 3))
            my = int(self.py + (y - self.py) * f + rng.normal(0, 3))
            self._burst(mx, my, seconds * 0.85)
            self.wait(30, 90)
            self._burst(x, y, rng.uniform(0.10, 0.22))
        else:
            self._burst(x, y, seconds)
        self.wait(40, 220)  # settle on the target

    def _burst(self, x: int, y: int, seconds: float) -> None:
        x = int(min(max(x, 0), self.w - 1))
        y = int(min(max(y, 0), self.h - 1))
        t0 = max(self.now, self.last_ord)
        t1 = t0 + max(int(seconds * S), 20 * MS)
        rate = float(self.rng.uniform(60.0, 125.0))
        bend = float(self.rng.normal(0.0, 0.06))
        self.bursts.append((t0, t1, self.px, self.py, x, y, rate, bend))
        self.px, self.py, self.now = x, y, t1

    def think(self, seconds: float) -> None:
        """Time between actions: the pointer fidgets for part of it (reading, hovering)."""
        rng = self.rng
        start = max(self.now, self.last_ord)
        end = start + int(seconds * S)
        keyframe = None  # the screen changes on its own now and then: a keyframe, in passing
        if seconds > 1.0 and rng.random() < 0.15:
            keyframe = start + int(rng.uniform(0.1, 0.5) * seconds * S)
        self.now = start
        if rng.random() < 0.93:
            while True:
                self.now += int(rng.exponential(0.15) * S)
                if keyframe is not None and keyframe <= self.now:
                    self.keyframe(keyframe)
                    keyframe = None
                dur = float(rng.uniform(0.4, 2.0))
                if self.now + int(dur * S) >= end:
                    break
                gx, gy, gw, gh = self.app.geometry
                dist = rng.lognormal(np.log(110.0), 0.8)
                angle = rng.uniform(0, 2 * np.pi)
                nx = int(min(max(self.px + dist * np.cos(angle), gx + 5), gx + gw - 5))
                ny = int(min(max(self.py + dist * np.sin(angle), gy + 5), gy + gh - 5))
                if rng.random() < 0.01:  # a tooltip under the hovering pointer
                    self._burst(nx, ny, dur)
                    tip = self._popup_id()
                    geo = self.fit([nx + 8, ny + 20, int(rng.integers(80, 260)), 24])
                    self.popup(self.now + self.ms(400, 900), tip, "TOOLTIP", geo, True)
                    self.now = self.last_ord
                    self.popup(self.now + self.ms(600, 2500), tip, "TOOLTIP", geo, False)
                    self.now = self.last_ord
                else:
                    self._burst(nx, ny, dur)
        if keyframe is not None:
            self.keyframe(max(keyframe, self.last_ord))
        self.now = max(end, self.now, self.last_ord)

    def keyframe(self, t: int) -> None:
        """A FRAME row for no event: the recorder's periodic full frame of a changed screen."""
        data = {
            "frame": self.rng.bytes(16).hex(),
            "reason": "keyframe",
            "t_grab_ns": t - self.ms(1, 600),
            "t_verified_ns": t,
            "age_ns": 0,
            "region": [0, 0, self.w, self.h],
        }
        self.frames.append((self.emit(Kind.FRAME, t), -1, data))

    def fit(self, geometry: list[int]) -> list[int]:
        """A popup's [x, y, w, h] moved (and if need be cut) to lie on the screen, as toolkits
        place them."""
        w = min(geometry[2], self.w)
        h = min(geometry[3], self.h)
        x = min(max(geometry[0], 0), self.w - w)
        y = min(max(geometry[1], 0), self.h - h)
        return [x, y, w, h]

    def _popup_id(self) -> int:
        self.next_popup += int(self.rng.integers(1, 40))
        return self.next_popup

    def spot(self, margin: int = 12) -> tuple[int, int]:
        """A point in the active window, biased to where content and controls are."""
        gx, gy, gw, gh = self.app.geometry
        mx, my = min(margin, gw // 3), min(margin, gh // 3)
        x = int(self.rng.triangular(gx + mx, gx + max(mx, gw * 0.4), gx + gw - mx))
        y = int(self.rng.triangular(gy + my, gy + max(my, gh * 0.35), gy + gh - my))
        return x, y

    # -- actions ---------------------------------------------------------------------------------
    def click(self, button: int = 1, count: int = 1, at: tuple[int, int] | None = None) -> int:
        self.move_to(*(at or self.spot()))
        row = -1
        for i in range(count):
            if i:
                self.wait(60, 170)
            row = self.press(self.wait(0, 1), button)
            self.release(self.wait(55, 140), button)
        return row

    def do_click(self) -> None:
        self.click()

    def do_double_click(self) -> None:
        self.click(count=2 if self.rng.random() < 0.92 else 3)

    def do_modifier_click(self) -> None:
        mod = "Control_L" if self.rng.random() < 0.6 else "Shift_L"
        self.move_to(*self.spot())
        self.key(self.wait(80, 300), mod, True)
        self.click(at=(self.px, self.py))
        self.key(self.wait(60, 250), mod, False)

    def do_drag(self) -> None:
        rng = self.rng
        gx, gy, gw, _ = self.app.geometry
        on_frame = rng.random() < 0.2  # move a window by its title bar: TARGET "part": "frame"
        start = (
            (int(rng.uniform(gx + gw / 4, gx + gw * 3 / 4)), gy - 14) if on_frame else self.spot(30)
        )
        self.move_to(*start)
        t = self.wait(0, 1)
        row = self.emit(Kind.BUTTON, t, self.px, self.py, 1, self.mods, 1)
        self._other_key = self._other_wheel = True
        target: dict[str, Any] = {"window": self.app.window, "app": self.app.app}
        if on_frame:
            target["part"] = "frame"
        self.emit(Kind.TARGET, t, self.px, self.py, data=_js(target))
        self.frame(t, "press", row)
        self.wait(90, 260)
        dist = rng.uniform(40, 600)
        angle = rng.uniform(0, 2 * np.pi)
        self._burst(
            int(self.px + dist * np.cos(angle)),
            int(self.py + dist * np.sin(angle)),
            (0.25 + 0.15 * np.log2(1 + dist / 20)) * rng.lognormal(0, 0.25),
        )
        self.release(self.wait(60, 200))

    def do_scroll(self) -> None:
        rng = self.rng
        self.move_to(*self.spot(60), precise=False)
        ctrl = rng.random() < 0.02
        if ctrl:
            self.key(self.wait(80, 250), "Control_L", True)
        horizontal = rng.random() < 0.03
        code = 5 if rng.random() < 0.8 else 4
        for i in range(int(rng.integers(1, 5))):
            if i:
                self.wait(150, 800)
                if rng.random() < 0.25:
                    code = 9 - code  # back the other way
            for _ in range(int(rng.integers(1, 10))):
                self.wheel(self.wait(15, 60), (7 if code == 5 else 6) if horizontal else code)
        if ctrl:
            self.key(self.wait(80, 250), "Control_L", False)

    def do_typing(self) -> None:
        rng = self.rng
        if not self.app.terminal and rng.random() < 0.75:
            self.click()
        fields = 1 if self.app.terminal or rng.random() < 0.7 else int(rng.integers(2, 5))
        for i in range(fields):
            if i:
                self.key(self.wait(150, 600), "Tab", True)
                self.key(self.wait(50, 120), "Tab", False)
            if self.app.app == "firefox" and rng.random() < 0.04:
                self.secret()
            else:
                self.type_text(self.text())
        end = rng.random()
        if self.app.terminal or end < 0.45:
            self.key(self.wait(80, 400), "Return", True)
            self.key(self.wait(60, 120), "Return", False)
            if self.app.app == "firefox" and rng.random() < 0.5:
                self.retitle()
        elif end < 0.55:
            self.key(self.wait(80, 400), "Escape", True)
            self.key(self.wait(60, 120), "Escape", False)

    def text(self) -> str:
        rng = self.rng
        if self.app.terminal:
            return _COMMANDS[int(rng.integers(len(_COMMANDS)))]
        n = int(rng.integers(1, 6))
        words = [_WORDS[int(i)] for i in rng.integers(0, len(_WORDS), n)]
        if rng.random() < 0.5:
            words[0] = words[0].capitalize()
        if rng.random() < 0.05:
            words.append("anna.berg@example.com")
        text = " ".join(words)
        if rng.random() < 0.2:
            text += "." if rng.random() < 0.7 else "?"
        return text

    def type_text(self, text: str) -> None:
        """One typed sequence: TEXT row, stripped character keys, named Shift and BackSpace."""
        rng = self.rng
        events: list[tuple[str | None, bool, bool]] = []  # (name, press, typing)
        chars = 0
        for ch in text:
            if rng.random() < 0.03:  # a typo, taken back
                events += [(None, True, True), (None, False, True)]
                events += [("BackSpace", True, False), ("BackSpace", False, False)]
                chars += 1
            shifted = ch.isupper() or ch in _SHIFTED
            if shifted:
                events.append(("Shift_L", True, False))
            events += [(None, True, True), (None, False, True)]
            if shifted:
                events.append(("Shift_L", False, False))
            chars += 1
        t = self.wait(100, 500)
        text_row = last = -1
        for name, press, typing in events:
            if typing and press and text_row < 0:
                text_row = self.emit(Kind.TEXT, t)  # its data once t_end is known
                last = self.key(t, name, press, typing)
                self.frame(t, "key", last)  # the frame the sequence asked for when it opened
            else:
                last = self.key(t, name, press, typing)
            t = self.after(rng.lognormal(np.log(85.0 if press else 75.0), 0.4))
        shown = _EMAIL.sub("<EMAIL>", text)
        data = {"text": shown, "mode": "text", "keys": chars, "t_end_ns": self.t[last]}
        self.data[text_row] = _js(data)

    def secret(self) -> None:
        """A password field: the recorder keeps a GAP (reason secret) in place of its keys."""
        t = self.wait(100, 500)
        duration = self.ms(1500, 4500)
        self.emit(Kind.GAP, t, data=_js({"reason": "secret", "duration_ns": duration}))
        self.now = t + duration

    def retitle(self) -> None:
        rng = self.rng
        self.title = self.app.titles[int(rng.integers(len(self.app.titles)))]
        info = {"window": self.app.window, "title": self.title}
        self.emit(Kind.TITLE, self.wait(150, 900), data=_js(info))

    def do_shortcut(self) -> None:
        rng = self.rng
        weights = np.array([s[2] for s in _SHORTCUTS], dtype=float)
        mods, key, _ = _SHORTCUTS[int(rng.choice(len(_SHORTCUTS), p=weights / weights.sum()))]
        for mod in mods:
            self.key(self.wait(60, 250), mod, True)
        for _ in range(1 if rng.random() < 0.9 else int(rng.integers(2, 4))):
            self.key(self.wait(40, 200), key, True)
            self.key(self.wait(50, 130), key, False)
        for mod in reversed(mods):
            self.key(self.wait(20, 150), mod, False)
        if key in ("s", "t", "w") and rng.random() < 0.6:
            self.retitle()

    def do_special(self) -> None:
        rng = self.rng
        weights = np.array([s[1] for s in _SPECIAL], dtype=float)
        name, _, most = _SPECIAL[int(rng.choice(len(_SPECIAL), p=weights / weights.sum()))]
        for _ in range(int(rng.integers(1, most + 1))):
            self.key(self.wait(90, 350), name, True)
            self.key(self.wait(50, 120), name, False)

    def do_switch(self) -> None:
        rng = self.rng
        others = [i for i, a in enumerate(self.apps) if a is not self.app]
        weights = self.app_weights[others] / self.app_weights[others].sum()
        app = self.apps[others[int(rng.choice(len(others), p=weights))]]
        how = rng.random()
        if how < 0.06:  # to an app the policy leaves out: a gap, then alt+tab back
            self.key(self.wait(100, 300), "Alt_L", True)
            self.key(self.wait(80, 200), "Tab", True)
            t = self.wait(3, 12)
            away = int(rng.lognormal(np.log(60.0), 0.8) * S)
            self.emit(Kind.GAP, t, data=_js({"reason": "out_of_scope", "duration_ns": away}))
            self.mods = MOD_ALT  # the keys pressed out there were dropped: alt is still held
            self.now = t + away
            self.focus(self.wait(0, 1), app)
            self.key(self.wait(40, 120), "Tab", False)
            self.key(self.wait(40, 200), "Alt_L", False)
        elif how < 0.45:  # alt+tab, sometimes twice
            self.key(self.wait(100, 300), "Alt_L", True)
            for _ in range(1 if rng.random() < 0.8 else 2):
                self.key(self.wait(80, 250), "Tab", True)
                self.focus(self.wait(2, 12), app)
                self.key(self.wait(40, 120), "Tab", False)
            self.key(self.wait(40, 200), "Alt_L", False)
        elif how < 0.75:  # the taskbar: no window for a moment, then the new one
            index = self.apps.index(app)
            self.move_to(40 + 60 * index + int(rng.integers(0, 40)), self.h - 20)
            self.press(self.wait(0, 1))
            self.release(self.wait(60, 140))
            self.focus(self.wait(5, 30), None)
            self.focus(self.wait(80, 300), app)
        else:  # a click into the other window (its title bar now and then)
            gx, gy, gw, gh = app.geometry
            frame = rng.random() < 0.3
            x = int(rng.uniform(gx + 20, gx + gw - 20))
            y = gy - 14 if frame else int(rng.uniform(gy + 20, gy + gh - 20))
            self.move_to(x, y)
            t = self.wait(0, 1)
            row = self.emit(Kind.BUTTON, t, self.px, self.py, 1, self.mods, 1)
            self._other_key = self._other_wheel = True
            target: dict[str, Any] = {"window": app.window, "app": app.app}
            if frame:
                target["part"] = "frame"
            self.emit(Kind.TARGET, t, self.px, self.py, data=_js(target))
            self.frame(t, "press", row)
            self.focus(self.wait(5, 25), app)
            self.release(self.wait(50, 120))

    def _open(self, button: int, ptype: str, geometry: list[int]) -> int:
        """Press-release that maps a popup; the POPUP row lands before or after the frame."""
        window = self._popup_id()
        t = self.wait(0, 1)
        row = self.emit(Kind.BUTTON, t, self.px, self.py, button, self.mods, 1)
        self._other_key = self._other_wheel = True
        self.emit(Kind.TARGET, t, self.px, self.py, data=_js(self._target()))
        if self.rng.random() < 0.3:
            self.popup(t + self.ms(5, 30), window, ptype, geometry, True)
            self.frame(t, "press", row)
        else:
            self.frame(t, "press", row)
            self.popup(t + self.ms(5, 30), window, ptype, geometry, True)
        self.release(self.wait(50, 130), button)
        return window

    def _target(self) -> dict[str, Any]:
        return {"window": self.app.window, "app": self.app.app}

    def _choose(self, window: int, ptype: str, geometry: list[int], parents: list[Any]) -> None:
        """Move onto an item of an open popup and click it; the popups unmap."""
        rng = self.rng
        px, py, pw, ph = geometry
        item = int(rng.integers(0, max(1, ph // 24)))
        self.move_to(int(px + rng.uniform(10, max(12, pw - 10))), py + 12 + 24 * item)
        self.press(self.wait(0, 1), popup=(window, ptype))
        t = self.wait(50, 130)
        closes = [(window, ptype, geometry), *parents]
        if rng.random() < 0.3:
            for w, tp, geo in closes:
                self.popup(t - self.ms(1, 8), w, tp, geo, False)
            self.release(t)
        else:
            self.release(t)
            for w, tp, geo in closes:
                self.popup(t + self.ms(2, 10), w, tp, geo, False)

    def _dismiss(self, closes: list[Any]) -> None:
        self.key(self.wait(200, 900), "Escape", True)
        for w, tp, geo in closes:
            self.popup(self.now + self.ms(2, 10), w, tp, geo, False)
        self.key(self.wait(50, 110), "Escape", False)

    def do_dropdown(self) -> None:
        rng = self.rng
        x, y = self.spot(150)
        self.move_to(x, y)
        n = int(rng.integers(3, 12))
        geometry = [x - int(rng.integers(10, 120)), y + 14, int(rng.integers(120, 320)), 24 * n]
        if geometry[1] + geometry[3] > self.h:  # no room below: the list opens above
            geometry[1] = y - 14 - geometry[3]
        geometry = self.fit(geometry)
        window = self._open(1, "COMBO", geometry)
        how = rng.random()
        self.think(rng.uniform(0.3, 1.5))
        if how < 0.72:
            self._choose(window, "COMBO", geometry, [])
        elif how < 0.9:  # by keys: Down a few times, then Return
            for _ in range(int(rng.integers(1, 6))):
                self.key(self.wait(120, 400), "Down", True)
                self.key(self.wait(50, 110), "Down", False)
            self.key(self.wait(150, 500), "Return", True)
            self.popup(self.now + self.ms(2, 10), window, "COMBO", geometry, False)
            self.key(self.wait(50, 110), "Return", False)
        else:
            self._dismiss([(window, "COMBO", geometry)])

    def do_menu(self) -> None:
        rng = self.rng
        gx, gy, _, _ = self.app.geometry
        x, y = gx + int(rng.integers(10, 400)), gy + int(rng.integers(6, 20))
        self.move_to(x, y)
        ptype = "DROPDOWN_MENU" if rng.random() < 0.6 else "MENU"
        geometry = [x - 10, gy + 24, int(rng.integers(160, 300)), 24 * int(rng.integers(4, 14))]
        geometry = self.fit(geometry)
        window = self._open(1, ptype, geometry)
        self.think(rng.uniform(0.3, 1.2))
        self._menu_items(window, ptype, geometry)

    def do_context_menu(self) -> None:
        rng = self.rng
        self.move_to(*self.spot(200))
        geometry = [self.px, self.py, int(rng.integers(150, 260)), 24 * int(rng.integers(4, 10))]
        geometry = self.fit(geometry)
        window = self._open(3, "POPUP_MENU", geometry)
        self.think(rng.uniform(0.3, 1.2))
        self._menu_items(window, "POPUP_MENU", geometry)

    def _menu_items(self, window: int, ptype: str, geometry: list[int]) -> None:
        rng = self.rng
        opened = [(window, ptype, geometry)]
        if rng.random() < 0.1:
            self._dismiss(opened)
            return
        if rng.random() < 0.3:  # hover an item that opens a submenu, then choose in it
            px, py, pw, ph = geometry
            item = int(rng.integers(0, max(1, ph // 24)))
            self.move_to(px + pw // 2, py + 12 + 24 * item)
            sub = self._popup_id()
            sub_geo = self.fit([px + pw - 4, py + 24 * item, int(rng.integers(140, 260)), 96])
            self.popup(self.now + self.ms(150, 400), sub, ptype, sub_geo, True)
            self.think(rng.uniform(0.2, 0.8))
            self._choose(sub, ptype, sub_geo, opened)
        else:
            self._choose(window, ptype, geometry, [])

    # -- the day ---------------------------------------------------------------------------------
    def run(self, seconds: float) -> None:
        rng = self.rng
        end = self.now + int(seconds * S)
        self.emit(Kind.SCREEN, self.now, self.w, self.h)
        self.focus(self.now, self.app, frame=False)  # the recorder has no frame yet
        lunch = self.now + int(seconds * rng.uniform(0.45, 0.55) * S) if seconds >= 5 * 3600 else 0
        names = [a for a, _ in _ACTIONS]
        weights = np.array([w for _, w in _ACTIONS], dtype=float)
        p = weights / weights.sum()
        # drawn in blocks: one rng call per few hundred actions instead of one per action
        block = 256
        while self.now < end:
            choices = rng.choice(len(names), size=block, p=p)
            thinks = rng.lognormal(np.log(8.5), 1.0, size=block)
            for choice, think in zip(choices, thinks, strict=True):
                if self.now >= end:
                    break
                if lunch and self.now >= lunch:
                    lunch = 0
                    duration = int(rng.uniform(30, 50) * 60 * S)
                    info = {"reason": "paused", "duration_ns": duration}
                    self.emit(Kind.GAP, self.wait(0, 1), data=_js(info))
                    self.now += duration
                    continue
                if rng.random() < 0.015:  # reading, a call: a long silence
                    self.now = max(self.now, self.last_ord) + int(rng.uniform(20, 180) * S)
                name = names[int(choice)]
                if self.app.terminal and name in ("dropdown", "menu", "context_menu", "drag"):
                    name = "typing"
                getattr(self, f"do_{name}")()
                self.think(min(float(think), 60.0))


# -- arrays ----------------------------------------------------------------------------------------
def _move_rows(
    bursts: list[tuple[int, int, int, int, int, int, float, float]],
    rng: np.random.Generator,
    screen: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, x, y) of every pointer move, in time order, from the bursts: minimum-jerk paths with a
    slight bend and tremor, sampled at each burst's rate with jittered intervals; samples that land
    on the pixel before them are dropped (a still pointer reports nothing)."""
    if not bursts:
        empty = np.zeros(0, np.int64)
        return empty, empty.astype(np.int32), empty.astype(np.int32)
    b = np.array(bursts, dtype=np.float64)  # times < 2**53: exact
    t0, t1 = b[:, 0].astype(np.int64), b[:, 1].astype(np.int64)
    x0, y0, x1, y1, rate, bend = b[:, 2], b[:, 3], b[:, 4], b[:, 5], b[:, 6], b[:, 7]
    dur = t1 - t0
    n = np.maximum(2, (dur / S * rate).astype(np.int64) + 1)  # samples, the start included
    total = int(n.sum())
    burst = np.repeat(np.arange(len(n)), n)
    first = np.cumsum(n) - n
    k = np.arange(total) - first[burst]
    step = rng.uniform(0.75, 1.25, total)  # poll-to-poll jitter
    step[first] = 0.0
    c = np.cumsum(step)
    c -= c[first][burst]
    u = c / c[first + n - 1][burst]  # 0 at the start of each burst, 1 at its end
    t = t0[burst] + (u * dur[burst]).astype(np.int64)
    s = u * u * u * (10.0 + u * (-15.0 + 6.0 * u))  # minimum-jerk progress
    dx, dy = (x1 - x0)[burst], (y1 - y0)[burst]
    arc = np.sin(np.pi * s)
    off = bend[burst] * arc  # sideways, as a fraction of the distance
    tremor = np.sin(np.pi * u) * 0.5
    x = x0[burst] + dx * s - dy * off + rng.normal(0.0, 1.0, total) * tremor
    y = y0[burst] + dy * s + dx * off + rng.normal(0.0, 1.0, total) * tremor
    xi = np.clip(np.rint(x), 0, screen[0] - 1).astype(np.int32)
    yi = np.clip(np.rint(y), 0, screen[1] - 1).astype(np.int32)
    keep = k > 0  # a burst's start is where the pointer already was
    keep[1:] &= (xi[1:] != xi[:-1]) | (yi[1:] != yi[:-1])
    return t[keep], xi[keep], yi[keep]


def _table(day: _Day, rng: np.random.Generator) -> pa.Table:
    """Merge the moves into the other rows by time (moves first on a tie), number them, fill in
    the frames' ``for_seq``."""
    mt, mx, my = _move_rows(day.bursts, rng, (day.w, day.h))
    order = np.array(day.ord, dtype=np.int64)
    assert order.size == 0 or bool(np.all(np.diff(order) >= 0))
    m, k = mt.size, order.size
    n = m + k
    nm_pos = np.searchsorted(mt, order, side="right") + np.arange(k)
    is_nm = np.zeros(n, dtype=bool)
    is_nm[nm_pos] = True
    mv_pos = np.flatnonzero(~is_nm)

    def ints(moves: np.ndarray | None, others: list[int], dtype: type) -> pa.Array:
        col = np.full(n, _NULL, dtype=np.int64)
        if moves is not None:
            col[mv_pos] = moves
        col[nm_pos] = others
        arrow_type = pa.from_numpy_dtype(dtype)
        return pa.array(col.astype(dtype), mask=col == _NULL, type=arrow_type)

    t = np.empty(n, dtype=np.int64)
    t[mv_pos] = mt
    t[nm_pos] = day.t
    kind = np.full(n, int(Kind.MOVE), dtype=np.int8)
    kind[nm_pos] = day.kind
    data = list(day.data)
    for row, target, info in day.frames:
        if target >= 0:
            info["for_seq"] = int(nm_pos[target]) + 1
        data[row] = _js(info)
    take = np.full(n, k, dtype=np.int64)
    take[nm_pos] = np.arange(k)
    take_arrow = pa.array(take)
    names = pa.array([*day.name, None], type=pa.string()).take(take_arrow)
    datas = pa.array([*data, None], type=pa.string()).take(take_arrow)
    columns = [
        pa.array(np.arange(1, n + 1, dtype=np.int64)),
        pa.array(t),
        pa.array(kind),
        ints(mx, day.x, np.int32),
        ints(my, day.y, np.int32),
        ints(None, day.code, np.int32),
        ints(None, day.state, np.int32),
        ints(None, day.value, np.int32),
        names,
        datas,
    ]
    return pa.Table.from_arrays(columns, schema=EVENT_SCHEMA)


def generate_workday(
    hours: float = 8.0, seed: int = 0, screen: tuple[int, int] = (1920, 1080)
) -> pa.Table:
    """A synthetic recording of ``hours`` of computer work on a ``screen`` of (width, height):
    one session's raw events with :data:`~demotrace.dataset.schema.EVENT_SCHEMA`, in ``seq``
    order (seq 1, 2, ...). About 130,000 rows an hour, 98% of them pointer moves; 8 hours make
    about a million. The same seed gives the same table."""
    rng = np.random.default_rng(seed)
    t0 = int(rng.integers(600, 400_000)) * S + int(rng.integers(0, S))  # a monotonic clock
    day = _Day(rng, (int(screen[0]), int(screen[1])), t0)
    day.run(hours * 3600.0)
    return _table(day, rng)


def write_parquet(table: pa.Table, path: str | Path, compression: str = "zstd") -> Path:
    """Write the events as one Parquet file (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression=compression)
    return path


def describe(table: pa.Table) -> dict[str, int]:
    """Row counts by kind name, and ``total``."""
    kinds = table.column("kind").to_numpy()
    counts = np.bincount(kinds, minlength=max(Kind) + 1)
    out = {Kind(i).name.lower(): int(c) for i, c in enumerate(counts) if i and c}
    out["total"] = int(table.num_rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/out/workday.parquet"))
    args = ap.parse_args()
    t = time.perf_counter()
    table = generate_workday(args.hours, args.seed)
    took = time.perf_counter() - t
    write_parquet(table, args.out)
    counts = describe(table)
    print(f"{counts['total']:,} rows in {took:.2f} s -> {args.out}", file=sys.stderr)
    print(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()

"""A scripted, human-like worker that drives the virtual desktop through XTEST.

Every action sends synthetic input with ``Xlib.ext.xtest.fake_input`` on the worker's own
connection (pointer motion as absolute XTEST MotionNotify, never a warp) and syncs after each
event (storms: every 64). Each public method appends exactly one JSON line of ground truth when
it completes (also when it fails, with ``error``). Fields, all lines::

    seq             1, 2, ... per worker
    action          move click drag scroll type key hotkey wait select_option menu switch_app
                    motion_storm type_storm launch
    t_start_ns      time.monotonic_ns() just before the first synthetic event (entry if none)
    t_end_ns        time.monotonic_ns() after the last event was synced (exit if none)
    first_event_ns  time.monotonic_ns() just before the first non-motion event, or null
    n_motion n_button n_key   events sent (press and release counted separately)
    scenario step   when run by run_scenario

and per action: ``x y`` (the press point / end point, screen pixels), ``from`` (pointer at the
start), ``button count modifiers`` (click), ``x1 y1`` (drag end), ``dx dy`` (scroll notches),
``text`` (or ``secret: true, text_len`` for passwords), ``keys`` (key/hotkey/alt_tab),
``target`` (widget or app when known), ``popup: {kind: combo|menu, bbox}`` (click in an open
popup), ``option`` (select_option), ``path via`` (menu), ``method target_class from_class
to_class`` (switch_app), ``seconds`` (wait), and ``steps``: the lines of the moves and clicks a
higher-level action was made of.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from demotrace.errors import NoDisplayError, ScenarioError
from demotrace.testbench.motion import human_path
from demotrace.testbench.worker_keys import KeyboardActions
from demotrace.testbench.worker_widgets import WidgetActions

BUTTONS = {"left": 1, "middle": 2, "right": 3}
_STORM_SYNC_EVERY = 64


class _Record:
    """Ground truth being collected for one action."""

    def __init__(self, action: str, fields: dict[str, Any]) -> None:
        self.fields: dict[str, Any] = {"action": action, **fields}
        self.entered_ns = time.monotonic_ns()
        self.t_start_ns: int | None = None
        self.t_end_ns: int | None = None
        self.first_event_ns: int | None = None
        self.counts = {"motion": 0, "button": 0, "key": 0}
        self.steps: list[dict[str, Any]] = []

    def event(self, kind: str, before_ns: int, after_ns: int) -> None:
        if self.t_start_ns is None:
            self.t_start_ns = before_ns
        if kind != "motion" and self.first_event_ns is None:
            self.first_event_ns = before_ns
        self.t_end_ns = after_ns
        self.counts[kind] += 1

    def absorb(self, child: _Record, line: dict[str, Any]) -> None:
        if child.t_start_ns is not None:
            if self.t_start_ns is None:
                self.t_start_ns = child.t_start_ns
            self.t_end_ns = child.t_end_ns
        if self.first_event_ns is None:
            self.first_event_ns = child.first_event_ns
        for kind, n in child.counts.items():
            self.counts[kind] += n
        self.steps.append(line)

    def line(self, exit_ns: int) -> dict[str, Any]:
        out = dict(self.fields)
        out["t_start_ns"] = self.t_start_ns if self.t_start_ns is not None else self.entered_ns
        out["t_end_ns"] = self.t_end_ns if self.t_end_ns is not None else exit_ns
        out["first_event_ns"] = self.first_event_ns
        out["n_motion"] = self.counts["motion"]
        out["n_button"] = self.counts["button"]
        out["n_key"] = self.counts["key"]
        if self.steps:
            out["steps"] = self.steps
        return out


class ScriptedWorker(KeyboardActions, WidgetActions):
    """Human-like synthetic input on one X display, with exact ground truth.

    ``speed`` divides every delay and travel time (1.0 = human; 50+ = as fast as Tk keeps up).
    ``sent`` holds running totals of the synthetic events sent: motion, button, key.
    """

    def __init__(
        self,
        display: str,
        truth_path: str | Path | None = None,
        seed: int | random.Random = 0,
        speed: float = 1.0,
    ) -> None:
        from Xlib import display as xdisplay
        from Xlib.error import DisplayError

        try:
            self._d = xdisplay.Display(display)
        except (DisplayError, OSError) as exc:
            raise NoDisplayError(
                f"Cannot open X display {display!r} for the scripted worker: {exc}."
            ) from exc
        if not self._d.has_extension("XTEST"):
            self._d.close()
            raise NoDisplayError(f"X display {display!r} lacks the XTEST extension.")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.display_name = display
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        self.speed = float(speed)
        self.truth_path = Path(truth_path) if truth_path else None
        self._truth = self.truth_path.open("a", encoding="utf-8") if self.truth_path else None
        self.sent: dict[str, int] = {"motion": 0, "button": 0, "key": 0}
        self._stack: list[_Record] = []
        self._seq = 0
        self._root = self._d.screen().root
        self._keymap_cache: dict[int, tuple[int, int]] = {}
        self._batch = 0
        self._closed = False
        #: extra fields for every ground-truth line (run_scenario sets scenario and step)
        self.tags: dict[str, Any] = {}
        #: time.time() after which a layout write reflects all input the workbench received:
        #: the last synthetic event, or the start of a switch_app (whose keys go to the WM)
        self.layout_fresh_after = 0.0

    # ---------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._truth:
            self._truth.close()
        self._d.close()

    def __enter__(self) -> ScriptedWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------- plumbing
    @contextmanager
    def _action(self, action: str, **fields: Any) -> Iterator[_Record]:
        rec = _Record(action, fields)
        parent = self._stack[-1] if self._stack else None
        self._stack.append(rec)
        error: BaseException | None = None
        try:
            yield rec
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._stack.pop()
            line = rec.line(time.monotonic_ns())
            if error is not None:
                line["error"] = f"{type(error).__name__}: {error}"
            if parent is not None:
                parent.absorb(rec, line)
            else:
                self._write(line)

    def _write(self, line: dict[str, Any]) -> None:
        self._seq += 1
        line = {"seq": self._seq, **self.tags, **line}
        if self._truth:
            self._truth.write(json.dumps(line) + "\n")
            self._truth.flush()

    def _send(self, kind: str, event_type: int, detail: int, x: int = 0, y: int = 0) -> None:
        from Xlib.ext import xtest

        before = time.monotonic_ns()
        if kind == "motion":
            xtest.fake_input(self._d, event_type, detail=0, root=self._root, x=x, y=y)
        else:
            xtest.fake_input(self._d, event_type, detail=detail)
        if self._batch:  # storms: one round trip per batch instead of per event
            self._batch += 1
            if self._batch % _STORM_SYNC_EVERY == 0:
                self._d.sync()
        else:
            self._d.sync()
        after = time.monotonic_ns()
        self.sent[kind] += 1
        self.layout_fresh_after = time.time()
        if self._stack:
            self._stack[-1].event(kind, before, after)

    @contextmanager
    def _batched(self) -> Iterator[None]:
        """Sync every few events rather than after each (storms), and once at the end."""
        self._batch = 1
        try:
            yield
        finally:
            self._batch = 0
            self._d.sync()
            if self._stack and self._stack[-1].t_end_ns is not None:
                self._stack[-1].t_end_ns = time.monotonic_ns()

    def _hold(self) -> float:
        """How long a button or key stays down: 40-120 ms at human speed."""
        return self.rng.uniform(0.04, 0.12)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)

    def _motion(self, x: int, y: int) -> None:
        from Xlib import X

        self._send("motion", X.MotionNotify, 0, x, y)

    def _button(self, button: int, press: bool) -> None:
        from Xlib import X

        self._send("button", X.ButtonPress if press else X.ButtonRelease, button)

    def _key_event(self, keycode: int, press: bool) -> None:
        from Xlib import X

        self._send("key", X.KeyPress if press else X.KeyRelease, keycode)

    def pointer(self) -> tuple[int, int]:
        """Current pointer position on the screen."""
        reply = self._root.query_pointer()
        return reply.root_x, reply.root_y

    def _glide(self, x: int, y: int, curve: float = 1.0, slow: float = 1.0) -> tuple[int, int]:
        """Move along a human path to (x, y); returns the start position."""
        start = self.pointer()
        path = human_path(
            self.rng,
            start,
            (x, y),
            speed=self.speed,
            curve=curve,
            overshoot=curve > 0.5,
            slow=slow,
        )
        t0 = time.perf_counter()
        for t, px, py in path:
            delay = t0 + t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self._motion(px, py)
        return start

    # ---------------------------------------------------------------------- actions
    def launched(self, app_class: str) -> None:
        """Note that the scenario started an app (of WM_CLASS ``app_class``), which took the
        focus without any input from the worker: a switch from outside the recorded apps."""
        with self._action("launch", app=app_class):
            pass

    def move(self, x: int, y: int, target: str | None = None) -> None:
        with self._action("move", x=x, y=y, target=target) as rec:
            rec.fields["from"] = list(self._glide(x, y))

    def _press_modifiers(self, modifiers: Sequence[str], press: bool) -> None:
        order = list(modifiers) if press else list(reversed(modifiers))
        for mod in order:
            self._key_event(self._named_key(mod)[0], press)
            self._sleep(self.rng.uniform(0.02, 0.06))

    def click(
        self,
        x: int,
        y: int,
        button: str = "left",
        count: int = 1,
        modifiers: Sequence[str] = (),
        target: str | None = None,
        popup: dict[str, Any] | None = None,
    ) -> None:
        """Move there, dwell 80-250 ms, click ``count`` times (2 = double, 3 = triple)."""
        if button not in BUTTONS:
            raise ScenarioError(f"Unknown mouse button {button!r}; use left, middle or right.")
        fields: dict[str, Any] = {"x": x, "y": y, "button": button, "count": count}
        fields |= {"modifiers": list(modifiers), "target": target}
        if popup is not None:
            fields["popup"] = popup
        with self._action("click", **fields) as rec:
            rec.fields["from"] = list(self._glide(x, y))
            self._sleep(self.rng.uniform(0.08, 0.25))
            self._press_modifiers(modifiers, True)
            for i in range(count):
                if i:
                    self._sleep(self.rng.uniform(0.06, 0.12))
                self._button(BUTTONS[button], True)
                self._sleep(self._hold())
                self._button(BUTTONS[button], False)
            self._press_modifiers(modifiers, False)

    def drag(
        self, x0: int, y0: int, x1: int, y1: int, button: str = "left", target: str | None = None
    ) -> None:
        with self._action("drag", x=x0, y=y0, x1=x1, y1=y1, button=button, target=target) as rec:
            rec.fields["from"] = list(self._glide(x0, y0))
            self._sleep(self.rng.uniform(0.08, 0.25))
            self._button(BUTTONS[button], True)
            self._sleep(self.rng.uniform(0.06, 0.15))
            self._glide(x1, y1, curve=0.4, slow=1.3)
            self._sleep(self.rng.uniform(0.06, 0.15))
            self._button(BUTTONS[button], False)

    def scroll(self, x: int, y: int, dy: int = 0, dx: int = 0, target: str | None = None) -> None:
        """Wheel notches at (x, y): dy>0 up (button 4), dy<0 down (5), dx>0 right (7), dx<0 (6)."""
        with self._action("scroll", x=x, y=y, dx=dx, dy=dy, target=target) as rec:
            rec.fields["from"] = list(self._glide(x, y))
            self._sleep(self.rng.uniform(0.08, 0.2))
            notches = [4 if dy > 0 else 5] * abs(dy) + [7 if dx > 0 else 6] * abs(dx)
            for i, button in enumerate(notches):
                if i:
                    self._sleep(self.rng.uniform(0.03, 0.09))
                self._button(button, True)
                self._sleep(self.rng.uniform(0.005, 0.015))
                self._button(button, False)

    def wait(self, seconds: float) -> None:
        """Idle (not divided by ``speed``: a wait is part of the script)."""
        with self._action("wait", seconds=seconds):
            time.sleep(max(0.0, seconds))

    # ---------------------------------------------------------------------- storms
    def motion_storm(self, n: int) -> None:
        """``n`` XTEST motions as fast as possible, alternating between two adjacent pixels.

        Events are synced every 64 (and at the end), not one by one."""
        x, y = self.pointer()
        x = min(max(x, 1), self._root.get_geometry().width - 2)
        with self._action("motion_storm", count=n, x=x, y=y), self._batched():
            for i in range(n):
                self._motion(x + (1 if i % 2 == 0 else 0), y)

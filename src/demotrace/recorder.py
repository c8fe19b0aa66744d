"""The recorder: capture -> privacy gate -> store, with frames paired to action starts."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from demotrace import __version__
from demotrace.capture.base import now_ns
from demotrace.capture.screen import ScreenConfig
from demotrace.errors import ConsentError, DemotraceError, StoreError
from demotrace.model import (
    EVENT_MODEL_VERSION,
    MOD_ALT,
    MOD_CONTROL,
    MOD_SHIFT,
    MOD_SUPER,
    Kind,
    Row,
)
from demotrace.privacy.browser import BrowserContext
from demotrace.privacy.gate import Gate
from demotrace.privacy.policy import Policy
from demotrace.privacy.redact import redact, redact_name
from demotrace.privacy.scope import Layout
from demotrace.store.db import Store
from demotrace.store.writer import FrameWrite, Writer


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    commit_interval: float = 0.5
    #: A key press this long after the previous key event starts a new typing burst.
    burst_gap: float = 0.5
    #: A wheel notch this long after the previous one (or in another direction) starts a scroll.
    wheel_gap: float = 0.5
    frames: bool = True
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    #: Show the recording indicator (badge or tray icon) and grab the pause hotkey.
    indicator: bool = True
    #: Ask AT-SPI which field has the focus (password fields), where it is available.
    atspi: bool = True
    #: Listen for the browser extension (docs/browser.md) when it is paired.
    browser: bool = True


class ActionStarts:
    """Decides which raw events start an action (and so get the frame from just before them).

    Starts: a button press; the first wheel notch of a run (new direction, a pause of
    ``wheel_gap``, or anything else in between); the first key press of a burst (a pause of
    ``burst_gap`` since the last key event, or a click or scroll in between); a change of the
    active window to another window (not to "no window").
    """

    def __init__(self, burst_gap: float = 0.5, wheel_gap: float = 0.5) -> None:
        self.burst_gap = int(burst_gap * 1e9)
        self.wheel_gap = int(wheel_gap * 1e9)
        self._last_key = -(1 << 62)
        self._last_wheel: tuple[int, int | None] = (-(1 << 62), None)
        self._other_since_key = True
        self._other_since_wheel = True

    def feed(self, row: Row) -> str | None:
        kind = row.kind
        if kind == Kind.MOVE:
            return None
        if kind == Kind.BUTTON:
            if row.value:
                self._other_since_key = self._other_since_wheel = True
                return "press"
            return None
        if kind == Kind.WHEEL:
            last_t, last_code = self._last_wheel
            self._last_wheel = (row.t_ns, row.code)
            self._other_since_key = True
            start = (
                self._other_since_wheel
                or row.code != last_code
                or row.t_ns - last_t > self.wheel_gap
            )
            self._other_since_wheel = False
            return "scroll" if start else None
        if kind == Kind.KEY:
            gap = row.t_ns - self._last_key
            self._last_key = row.t_ns
            self._other_since_wheel = True
            if row.value and (self._other_since_key or gap > self.burst_gap):
                self._other_since_key = False
                return "key"
            return None
        if kind == Kind.FOCUS:
            self._other_since_key = self._other_since_wheel = True
            # no active window (a transient state between two windows) starts nothing
            return "switch" if row.data and '"window":0,' not in row.data else None
        return None


log = logging.getLogger("demotrace")

#: Accessible roles of the items a dropdown or menu offers (AT-SPI role names).
ITEM_ROLES = frozenset(
    {"menu item", "check menu item", "radio menu item", "list item", "tree item", "option"}
)
#: A focused item is the one being chosen only if it got the focus this recently before the press.
ITEM_FRESH_NS = 10_000_000_000


def _app_key(name: str) -> str:
    """An app name as AT-SPI (program name) and X (WM_CLASS) both spell it: letters and digits,
    lower case (``acme-login`` and ``AcmeLogin`` are the same app)."""
    return "".join(c for c in name.lower() if c.isalnum())


_TICK_S = 0.25
_MODS = {"ctrl": MOD_CONTROL, "alt": MOD_ALT, "shift": MOD_SHIFT, "super": MOD_SUPER}


def require_consent(store: Store, policy: Policy) -> None:
    """Raise :class:`ConsentError` unless the latest consent accepts exactly this policy."""
    last = store.consent()
    if last is None or last["action"] != "accept":
        raise ConsentError(
            f"Recording needs your consent to the policy {policy.name!r} (version "
            f"{policy.version}), and none is on record"
            + (" since you withdrew it" if last is not None else "")
            + ". Read what it captures with `demotrace consent --show`, then agree with "
            "`demotrace consent --accept`. Nothing was recorded."
        )
    if last["policy_version"] != policy.version:
        raise ConsentError(
            f"The policy changed since you agreed to it (you accepted version "
            f"{last['policy_version']}, the policy in force is {policy.version}). Read the new "
            "notice with `demotrace consent --show` and agree with `demotrace consent --accept` "
            "before recording again. Nothing was recorded."
        )


def hotkey_spec(policy: Policy, which: str = "hotkey") -> tuple[str, int]:
    """("p", ctrl|alt mask) for the policy's hotkey (or ``task_hotkey``): how the gate
    recognises its key rows."""
    keys = policy.hotkey_keys if which == "hotkey" else policy.task_hotkey_keys
    mask = 0
    for mod in keys.modifiers:
        mask |= _MODS[mod]
    return keys.keysym.lower(), mask


class Recorder:
    """Records one session from an X display into a store until :meth:`stop`.

    Every row passes the privacy :class:`~demotrace.privacy.gate.Gate` of ``policy`` before it
    is stored, and frames are masked to the in-scope windows before they are compared or
    encoded. :meth:`start` refuses (:class:`ConsentError`) without consent to this policy.
    """

    def __init__(
        self,
        store: Store,
        policy: Policy,
        display: str | None = None,
        config: RecorderConfig | None = None,
        home: Path | None = None,
    ):
        self.store = store
        self.policy = policy
        self.home = home
        self.display = display if display is not None else os.environ.get("DISPLAY")
        self.config = config or RecorderConfig()
        self.session: int | None = None
        self.failed = threading.Event()
        self.stopped = threading.Event()
        self.error: DemotraceError | None = None
        self._lock = threading.RLock()
        self._seq = 0
        self._starts = ActionStarts(self.config.burst_gap, self.config.wheel_gap)
        self._capture: Any = None
        self._ring: Any = None
        self._writer: Writer | None = None
        self._indicator: Any = None
        self._watcher: Any = None
        self._browser: Any = None  # the local channel of the browser extension
        self._browser_ctx: BrowserContext | None = None
        self._control: Any = None
        self._ticker: threading.Thread | None = None
        self._gate: Gate | None = None
        self._shown_state = ""
        self._pause_until: int | None = None
        self._screen = (0, 0)
        self._mask: np.ndarray | None = None
        self.counts: dict[int, int] = {}
        #: The instruction of the task the worker marked as started (None: no task open).
        self.task_open: str | None = None
        # the control socket and the hotkey (indicator thread) may mark a task at once
        self._task_lock = threading.RLock()
        self.warnings: list[str] = []
        self.started_ns = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> int:
        from demotrace.capture.x11 import X11Capture  # X code only when a display is wanted

        require_consent(self.store, self.policy)
        self.store.acquire_writer()
        capture = X11Capture(self.display)
        w, h = self._screen = capture.screen_size
        self.started_ns = now_ns()
        self.session = self.store.create_session(
            started_wall_ns=time.time_ns(),
            started_mono_ns=self.started_ns,
            status="recording",
            host=socket.gethostname(),
            display=self.display,
            screen_w=w,
            screen_h=h,
            event_model=EVENT_MODEL_VERSION,
            recorder_version=__version__,
            info=json.dumps(
                {
                    "pid": os.getpid(),
                    "commit_interval": self.config.commit_interval,
                    "policy": self.policy.version,
                    "policy_name": self.policy.name,
                    **capture.input_settings,
                }
            ),
        )
        self._writer = Writer(
            self.store, self.config.commit_interval, on_error=self._on_store_error
        )
        self._writer.start()
        gate = Gate(
            self.policy,
            self._on_accepted,
            self._next_seq,
            hotkey=hotkey_spec(self.policy) if self.config.indicator else None,
            extra_hotkeys=(hotkey_spec(self.policy, "task"),) if self.config.indicator else (),
        )
        gate.on_typing = self._on_typing
        self._gate = gate
        self._gate.set_outside_hours(not self._within_hours(), self.started_ns)
        if self.config.indicator:
            self._start_indicator()
        if self.config.atspi:
            self._start_watcher()
        if self.config.browser and self.home is not None:
            self._start_browser()
        if self.config.frames:
            from demotrace.capture.screen import FrameRing

            ring = FrameRing(
                self.display, self.session, self._frame_event, self._on_frame, self.config.screen
            )
            ring.mask_pending = capture.layout_pending.is_set
            ring.set_paused(gate.outside_hours)
            try:
                ring.start()
                self._ring = ring
            except Exception as exc:  # no DAMAGE or MIT-SHM: record input and windows only
                self.warnings.append(
                    f"screen frames are off ({exc}); input and windows are still recorded"
                )
        self._capture = capture
        capture.start(self._on_rows, self._on_layout)
        if self.home is not None:
            from demotrace.control import ControlServer

            self._control = ControlServer(self.home, self.handle)
            try:
                self._control.start()
            except (DemotraceError, OSError) as exc:
                self.warnings.append(f"pause/resume/status commands are off: {exc}")
                self._control = None
        self._ticker = threading.Thread(target=self._tick_loop, name="privacy-tick", daemon=True)
        self._ticker.start()
        self._show_state()
        return self.session

    def _start_indicator(self) -> None:
        try:
            from demotrace.privacy.indicator import Indicator

            ind = Indicator(
                self.display,
                hotkey=self.policy.hotkey,
                on_hotkey=self.toggle_pause,
                extra_hotkeys={self.policy.task_hotkey: self.toggle_task},
            )
            ind.start()
        except Exception as exc:
            self.warnings.append(f"the recording indicator could not be shown: {exc}")
            return
        self._indicator = ind
        assert self._gate is not None
        self._gate.set_own_windows(frozenset(ind.window_ids))
        if ind.hotkey_error:
            self.warnings.append(f"the pause hotkey is off: {ind.hotkey_error}")
        for error in ind.extra_hotkey_errors.values():
            self.warnings.append(f"the task hotkey is off: {error}")

    def _start_watcher(self) -> None:
        try:
            from demotrace.privacy.atspi import FocusWatcher
        except Exception:  # pragma: no cover - the module ships with the package
            return
        if FocusWatcher.available() is not None:
            return  # no accessibility bus: the other secret signals still apply
        try:
            watcher = FocusWatcher(lambda info: None)
            watcher.start()
        except Exception as exc:
            self.warnings.append(f"password-field detection through AT-SPI is off: {exc}")
            return
        self._watcher = watcher
        assert self._gate is not None
        self._gate.secret_field = watcher.secret_between

    def _start_browser(self) -> None:
        """The local channel of the browser extension, when it is paired (``demotrace browser
        pair``): URLs for site scope, secret fields, targets of actions in web pages."""
        assert self.home is not None and self._gate is not None
        if not (self.home / "browser.json").is_file():
            return  # not paired: nothing listens
        from demotrace.browser.channel import BrowserChannel

        ctx = BrowserContext()
        gate = self._gate
        channel = BrowserChannel(self.home, self._on_browser, status=gate.state)
        try:
            channel.start()  # reads the pairing: a damaged one is a warning, as a taken port
        except DemotraceError as exc:
            self.warnings.append(f"the browser extension is not listened to: {exc}")
            return
        self._browser, self._browser_ctx = channel, ctx
        gate.scope.browser = ctx
        atspi = gate.secret_field

        def secret(t0: int, t1: int) -> bool:
            return ctx.secret_between(t0, t1) or (atspi is not None and atspi(t0, t1))

        gate.secret_field = secret

    def _on_browser(self, events: list[dict[str, Any]]) -> None:
        """Events of the browser extension (validated by the channel, ``t_ns`` on our clock)."""
        ctx = self._browser_ctx
        if ctx is None:
            return
        with self._lock:
            gate = self._gate
            if gate is None:
                return
            rows: list[Row] = []
            changed = False
            for event in events:
                kind = event.get("type")
                active = gate.active.get("window") or None
                if kind == "active":
                    info = gate.active
                    is_browser = self.policy.is_browser(info.get("app"), info.get("instance"))
                    changed |= ctx.on_active(event, active, is_browser)
                elif kind == "page":  # where things are on screen: the gate stores none of it
                    changed |= ctx.on_page(event, self._browser_window(event.get("viewport")))
                else:
                    ctx.on_element(event, active)
                rows.append(Row(int(event["t_ns"]), None, Kind.BROWSER, data=json.dumps(event)))
            if changed:
                gate.browser_changed()
                self._update_mask()
            gate.field_secret = ctx.secret_focused(gate.active.get("window"))
            if rows:
                gate.feed(rows)
        if self._indicator is not None:
            self._show_state()

    def _browser_window(self, viewport: list[int] | None) -> int | None:
        """The browser X window that contains the centre of a page's viewport."""
        gate = self._gate
        if gate is None or not viewport or len(viewport) < 4:
            return None
        cx, cy = (viewport[0] + viewport[2]) // 2, (viewport[1] + viewport[3]) // 2
        for w in reversed(gate.layout.windows):
            x0, y0, x1, y1 = w.rect
            if x0 <= cx < x1 and y0 <= cy < y1:
                if w.popup or not self.policy.is_browser(w.app, w.instance):
                    return None
                return w.client
        return None

    def stop(self) -> dict[str, Any]:
        """Stop capture, store every frame already requested, commit, close. Safe to call twice."""
        self.stopped.set()
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._browser is not None:
            with contextlib.suppress(Exception):
                self._browser.stop()
            self._browser = None
        if self._capture is not None:
            self._capture.stop()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        if self._gate is not None:
            with self._lock:
                self._gate.flush(now_ns())
        if self._ring is not None:
            self._ring.stop()
        if self._writer is not None:
            self._writer.close()
        for part in (self._indicator, self._watcher):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        self._indicator = self._watcher = None
        status = "failed" if self.error is not None else "stopped"
        if self.session is not None and self._capture is not None:
            # the disk may be full: the session then reads as interrupted
            with contextlib.suppress(Exception):
                self.store.update_session(
                    self.session,
                    ended_wall_ns=time.time_ns(),
                    ended_mono_ns=now_ns(),
                    status=status,
                )
        self._capture = None
        self.store.release_writer()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "session": self.session,
            "events": {Kind(k).name.lower(): n for k, n in sorted(self.counts.items())},
            "seconds": (now_ns() - self.started_ns) / 1e9 if self.started_ns else 0.0,
            "policy": self.policy.version,
        }
        if self._gate is not None:
            out["privacy"] = dict(self._gate.stats)
        if self._ring is not None:
            out["screen"] = dict(self._ring.stats)
        if self._writer is not None:
            out["committed_events"] = self._writer.stats.events
        problems = []
        for part in (self._capture, self._ring, self._watcher):
            if part is not None and getattr(part, "error", None):
                problems.append(part.error)
        if problems:
            out["problems"] = problems
        return out

    # -- control: pause, resume, status, forget -----------------------------------------------
    def pause(self, seconds: float | None = None) -> dict[str, Any]:
        """Pause now (for ``seconds``, or until :meth:`resume`): nothing is captured."""
        t = now_ns()
        with self._lock:
            assert self._gate is not None
            self._gate.set_paused(True, t)
            self._pause_until = t + int(seconds * 1e9) if seconds else None
            if self._ring is not None:
                self._ring.set_paused(True)
        self._show_state()
        return self.status()

    def resume(self) -> dict[str, Any]:
        t = now_ns()
        with self._lock:
            assert self._gate is not None
            self._gate.set_paused(False, t)
            self._pause_until = None
            if self._ring is not None:  # outside working hours the screen stays unwatched
                self._ring.set_paused(self._gate.outside_hours)
        self._show_state()
        return self.status()

    def toggle_pause(self) -> None:
        if self._gate is not None and self._gate.paused:
            self.resume()
        else:
            self.pause()

    def status(self) -> dict[str, Any]:
        gate = self._gate
        left = None
        if self._pause_until is not None:
            left = max(0.0, (self._pause_until - now_ns()) / 1e9)
        return {
            "ok": True,
            "state": gate.state() if gate is not None else "stopped",
            "session": self.session,
            "pid": os.getpid(),
            "policy": self.policy.version,
            "pause_left_s": left,
            "seconds": (now_ns() - self.started_ns) / 1e9 if self.started_ns else 0.0,
            "events": sum(self.counts.values()),
            "task": self.task_open,
            # the accessibility agent listens (password fields, dropdown item names)
            "atspi": self._watcher is not None and self._watcher.wait_ready(0),
            # the browser extension's channel listens (None: not paired)
            "browser": dict(self._browser.stats) if self._browser is not None else None,
        }

    def forget(self, *, since_wall_ns: int | None = None, sessions: Iterable[int] = ()) -> dict:
        """Delete recent data (or sessions) while recording: held rows, queued rows, frames.
        The session being recorded keeps its row and goes on."""
        with self._lock:
            if self._gate is not None:
                self._gate.flush(now_ns())
            if self._writer is not None:
                self._writer.flush()
            reader = Store(self.store.root)
            try:
                counts = reader.forget(
                    since_wall_ns=since_wall_ns, sessions=sessions, keep_session=self.session
                )
            finally:
                reader.close()
            if self._ring is not None:
                self._ring.forget()
        return {"ok": True, **counts}

    def task(self, what: str, text: str | None = None) -> dict[str, Any]:
        """Mark where a task starts (with the worker's instruction, redacted) or ends."""
        if what not in ("start", "end"):
            return {"ok": False, "error": f"unknown task marker {what!r}; use start or end"}
        data: dict[str, Any] = {"what": f"task_{what}"}
        if what == "start" and text:
            data["text"] = redact(str(text))[:2000]
        with self._task_lock:
            row = Row(now_ns(), None, Kind.MARKER, data=json.dumps(data, separators=(",", ":")))
            self._on_rows([row])
            self.task_open = data.get("text", "") if what == "start" else None
        self._show_state()
        return {"ok": True, "task": what, "text": data.get("text")}

    def toggle_task(self) -> dict[str, Any]:
        """The task hotkey: start a task (no instruction) when none is open, else end it."""
        with self._task_lock:
            return self.task("start" if self.task_open is None else "end")

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one control request (from the control socket)."""
        cmd = request.get("cmd")
        if cmd == "ping":
            return {"ok": True}
        if cmd == "status":
            return self.status()
        if cmd == "pause":
            seconds = request.get("seconds")
            return self.pause(float(seconds) if seconds else None)
        if cmd == "resume":
            return self.resume()
        if cmd == "forget":
            return self.forget(
                since_wall_ns=request.get("since_wall_ns"),
                sessions=[int(n) for n in request.get("sessions") or ()],
            )
        if cmd == "task":
            return self.task(str(request.get("what") or ""), request.get("text"))
        if cmd == "stop":
            self.failed.set()  # the record loop stops on this, as on Ctrl-C
            return {"ok": True, "stopping": True}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    # -- timers ----------------------------------------------------------------------------
    def _within_hours(self) -> bool:
        return self.policy.within_hours(datetime.datetime.now().astimezone())

    def _tick_loop(self) -> None:
        last_hours = 0.0
        while not self.stopped.wait(_TICK_S):
            t = now_ns()
            with self._lock:
                gate = self._gate
                if gate is None:
                    return
                gate.tick(t)
                if self._pause_until is not None and t >= self._pause_until:
                    self._pause_until = None
                    gate.set_paused(False, t)
                    if self._ring is not None:
                        self._ring.set_paused(gate.outside_hours)
                if time.monotonic() - last_hours > 1.0:
                    last_hours = time.monotonic()
                    outside = not self._within_hours()
                    if outside != gate.outside_hours:
                        gate.set_outside_hours(outside, t)
                        if self._ring is not None:
                            self._ring.set_paused(outside or gate.paused)
            self._show_state()

    def _show_state(self) -> None:
        gate, ind = self._gate, self._indicator
        if gate is None:
            return
        state = gate.state()
        detail = ""
        if state == "paused" and self._pause_until is not None:
            detail = f"{max(0, (self._pause_until - now_ns())) / 60e9:.0f} min left"
        elif self.task_open is not None:
            detail = "task"
        shown = f"{state}|{detail}"
        if shown != self._shown_state:
            self._shown_state = shown
            if ind is not None:
                with contextlib.suppress(Exception):
                    ind.set_state(state, detail)

    # -- data paths ----------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _on_rows(self, rows: list[Row]) -> None:
        with self._lock:
            if self._watcher is not None:
                rows = [self._with_item(r) if r[2] == Kind.TARGET else r for r in rows]
            gate = self._gate
            assert gate is not None
            gate.feed(rows)
            ctx = self._browser_ctx
            if ctx is not None and ctx.seen:
                self._browser_rows(rows)
        # Only window rows (focus, title) change what the indicator shows; input batches, the
        # hot path, start with an input row and skip this.
        if self._indicator is not None and rows and rows[0][2] > Kind.KEY:
            self._show_state()

    def _browser_rows(self, rows: list[Row]) -> None:
        """X events that change what the extension told us (under the lock): a wheel over a
        browser window moves its page (its secret fields are unknown until the page says where
        they went); another active window changes which page has the keyboard."""
        ctx, gate = self._browser_ctx, self._gate
        assert ctx is not None and gate is not None
        moved = False
        for row in rows:
            kind = row[2]
            if kind == Kind.WHEEL and row.x is not None and row.y is not None:
                w = gate.scope.at(gate.layout, row.x, row.y)
                if w is not None and not w.popup and ctx.scrolled(w.client):
                    moved = True
            elif kind == Kind.FOCUS:
                gate.field_secret = ctx.secret_focused(gate.active.get("window"))
        if moved:
            self._update_mask()

    def _with_item(self, row: Row) -> Row:
        """A press in a dropdown or menu: add the item accessibility says has the focus (its
        role and name, redacted), which is the item being chosen."""
        data = json.loads(row.data or "{}")
        gate = self._gate
        if not data.get("popup") or gate is None:
            return row
        rule = gate.active_rule
        info = self._watcher.focus_at(row.t_ns)
        if (
            info is None
            or info.secret
            or gate.active_secret
            or rule is None
            or rule.keystrokes == "keys"  # the policy keeps no text of this app
            or info.role not in ITEM_ROLES
            or not info.name
            or row.t_ns - info.t_ns > ITEM_FRESH_NS
            or _app_key(info.app) != _app_key(str(data.get("app") or ""))
        ):
            return row
        data["a11y"] = {"role": info.role, "name": redact_name(info.name, rule.keystrokes)}
        return row._replace(data=json.dumps(data, separators=(",", ":")))

    def _on_layout(self, layout: Layout) -> None:
        with self._lock:
            gate = self._gate
            assert gate is not None
            gate.set_layout(layout, now_ns())
            self._update_mask()

    def _update_mask(self) -> None:
        """The frame mask from the layout and what the browser extension says (under the lock)."""
        gate = self._gate
        if self._ring is None or gate is None:
            return
        layout = gate.layout
        w, h = layout.size if layout.size != (0, 0) else self._screen
        mask = gate.scope.mask(layout, w, h)
        # A change that leaves the mask as it was (a popup inside its app, the badge re-raising
        # itself) costs no full-screen grab.
        if self._mask is None or not np.array_equal(mask, self._mask):
            self._mask = mask
            self._ring.set_mask(mask)

    def _on_typing(self, t_ns: int, seq: int, mode: str, secret: bool) -> None:
        """A typing sequence opened: its frame is the screen just before its first key."""
        if self._ring is not None and mode != "keys" and not secret:
            self._ring.request(t_ns, seq, "key")

    def _on_accepted(self, items: list[tuple[int, Row]]) -> None:
        """Rows the gate let through, with their sequence numbers (called under the lock)."""
        session = self.session
        starts = self._starts
        ring = self._ring
        counts = self.counts
        move = Kind.MOVE
        out = [(session, seq, *row) for seq, row in items]
        others = 0
        for seq, row in items:
            kind = row[2]
            if kind == move:
                continue
            others += 1
            counts[kind] = counts.get(kind, 0) + 1
            reason = starts.feed(row)  # type: ignore[arg-type]
            if reason == "key" and row[8] is None:
                reason = None  # typing: its frame was requested when the sequence opened
            if ring is not None and reason is not None:
                ring.request(row[0], seq, reason)
        counts[move] = counts.get(move, 0) + len(items) - others
        assert self._writer is not None
        self._writer.put_events(out)

    def _frame_event(self, t_ns: int, data: dict[str, Any]) -> tuple:
        with self._lock:
            seq = self._next_seq()
            self.counts[Kind.FRAME] = self.counts.get(Kind.FRAME, 0) + 1
            return (
                self.session,
                seq,
                t_ns,
                None,
                int(Kind.FRAME),
                None,
                None,
                None,
                None,
                None,
                None,
                json.dumps(data, separators=(",", ":")),
            )

    def _on_frame(self, item: FrameWrite) -> None:
        assert self._writer is not None
        self._writer.put_frame(item)

    def _on_store_error(self, error: StoreError) -> None:
        self.error = error
        self.failed.set()

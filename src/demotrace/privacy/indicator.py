"""The always-visible recording indicator and the global pause hotkey (X11).

While demotrace records, the worker must always be able to see that it does and what it is doing
(privacy principle 3). :class:`Indicator` shows that on the X display:

- as an icon docked in the system tray (XEmbed system-tray protocol) when a tray exists and
  accepts the icon within :data:`DOCK_TIMEOUT` seconds, or
- as a small badge (:data:`BADGE_SIZE`) in a screen corner: an override-redirect window (no window
  manager decorates, moves or hides it) that re-raises itself whenever another window is mapped,
  restacked or configured above it.

Both show the state with a solid colour (see :data:`STATE_COLOURS`); the badge also draws a short
label with a core X font. Both carry ``WM_NAME`` / ``_NET_WM_NAME`` = ``demotrace: <state>`` (plus
`` (<detail>)`` when a detail is given) and ``WM_CLASS`` = ``("demotrace-indicator", "Demotrace")``.
Neither ever takes the keyboard focus: ``WM_HINTS.input`` is false, the badge's input shape is
empty where the server has SHAPE 1.1 (clicks go through to the window below), and nothing grabs
the pointer.

The pause hotkey (default ``ctrl+alt+p``) is a passive key grab on the root window, made for every
combination of the Lock and NumLock modifiers. If another client already holds it,
:attr:`Indicator.hotkey_error` says so and the indicator works without it.

One thread per indicator owns the indicator's own X connection; :meth:`Indicator.set_state` and
:meth:`Indicator.close` wake it through a pipe, so it sleeps in ``select`` with no timeout when
idle. This module imports python-xlib at the top: import it only when recording.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from Xlib import XK, X, Xatom, Xutil
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.protocol import event as xevent
from Xlib.protocol import rq

from demotrace.errors import NoDisplayError

log = logging.getLogger(__name__)

STATES = ("recording", "paused", "out_of_scope", "secret", "stopped")
"""Every state the indicator can show. ``stopped`` shows nothing."""

STATE_COLOURS: dict[str, int] = {
    "recording": 0xD32F2F,
    "paused": 0xF9A825,
    "out_of_scope": 0x616161,
    "secret": 0x283593,
}
"""Background colour (0xRRGGBB) of the badge and the tray icon in each visible state."""

STATE_LABELS: dict[str, str] = {
    "recording": "REC demotrace",
    "paused": "PAUSED",
    "out_of_scope": "OUT OF SCOPE",
    "secret": "PRIVATE",
}
"""Text drawn on the badge in each visible state."""

CORNERS = ("top-right", "top-left", "bottom-right", "bottom-left")
BADGE_SIZE = (150, 26)
WM_CLASS = ("demotrace-indicator", "Demotrace")
DOCK_TIMEOUT = 1.0
"""Seconds a tray has to reparent the icon before the indicator falls back to the badge."""
MIN_RAISE_INTERVAL = 0.05
"""Seconds between two re-raises of the badge, so a fight with another always-on-top client
costs at most 20 raises a second."""

_DARK_TEXT_STATES = frozenset({"paused"})  # black text on amber, white on the others
_FONTS = ("-misc-fixed-bold-r-normal--13-*-*-*-*-*-iso8859-1", "7x13bold", "6x13bold", "fixed")
_TEXT_PAD = 8  # pixels kept free of text at the badge's left and right edges
_SYSTEM_TRAY_REQUEST_DOCK = 0
_XEMBED_MAPPED = 1
_XKB_USE_CORE_KBD = 0x100
_XKB_MAP_NOTIFY = 1 << 1  # XkbMapNotifyMask
_XKB_MAP_PARTS = (1 << 1) | (1 << 2)  # XkbKeySymsMask | XkbModifierMapMask
_XKB_DETECTABLE_AUTOREPEAT = 1
_HELD_KEY_FORGET_MS = 2000
_RESTACK_EVENTS = (X.MapNotify, X.ConfigureNotify, X.CirculateNotify)
_WINDOW_EVENTS = (
    *_RESTACK_EVENTS,
    X.UnmapNotify,
    X.DestroyNotify,
    X.ReparentNotify,
)  # a "held" hotkey not seen for this long was released unseen
_MODIFIERS = {
    "ctrl": "ctrl",
    "control": "ctrl",
    "alt": "alt",
    "shift": "shift",
    "super": "super",
    "win": "super",
}
# Keys that may be a hotkey without ctrl, alt or super: they type nothing.
_BARE_KEYS = frozenset({"Pause", "Break", "Scroll_Lock", *(f"F{n}" for n in range(1, 36))})
_MODIFIER_KEYSYMS = frozenset(
    {f"{m}_{side}" for m in ("Shift", "Control", "Alt", "Meta", "Super", "Hyper") for side in "LR"}
    | {"Caps_Lock", "Num_Lock", "ISO_Level3_Shift", "Mode_switch"}
)


@dataclass(frozen=True)
class Hotkey:
    """A parsed hotkey: modifier names (ctrl, alt, shift, super) and one keysym."""

    text: str
    modifiers: frozenset[str]
    keysym: int
    key_name: str


class _XkbUseExtension(rq.ReplyRequest):
    """XkbUseExtension: an XKB client must send it before any other XKB request."""

    _request = rq.Struct(
        rq.Card8("opcode"), rq.Opcode(0), rq.RequestLength(),
        rq.Card16("wanted_major"), rq.Card16("wanted_minor"),
    )  # fmt: skip
    _reply = rq.Struct(
        rq.ReplyCode(), rq.Bool("supported"), rq.Card16("sequence_number"), rq.ReplyLength(),
        rq.Card16("server_major"), rq.Card16("server_minor"), rq.Pad(20),
    )  # fmt: skip


class _XkbSelectEvents(rq.Request):
    """XkbSelectEvents for XkbMapNotify only (its details travel in affect_map / map)."""

    _request = rq.Struct(
        rq.Card8("opcode"), rq.Opcode(1), rq.RequestLength(),
        rq.Card16("device_spec"), rq.Card16("affect_which"), rq.Card16("clear"),
        rq.Card16("select_all"), rq.Card16("affect_map"), rq.Card16("map"),
    )  # fmt: skip


class _XkbPerClientFlags(rq.ReplyRequest):
    """XkbPerClientFlags: per-connection XKB behaviour such as detectable auto-repeat."""

    _request = rq.Struct(
        rq.Card8("opcode"), rq.Opcode(21), rq.RequestLength(),
        rq.Card16("device_spec"), rq.Pad(2), rq.Card32("change"), rq.Card32("value"),
        rq.Card32("ctrls_to_change"), rq.Card32("auto_ctrls"), rq.Card32("auto_ctrl_values"),
    )  # fmt: skip
    _reply = rq.Struct(
        rq.ReplyCode(), rq.Card8("device_id"), rq.Card16("sequence_number"), rq.ReplyLength(),
        rq.Card32("supported"), rq.Card32("value"), rq.Card32("auto_ctrls"),
        rq.Card32("auto_ctrl_values"), rq.Pad(8),
    )  # fmt: skip


@dataclass(eq=False)
class _Binding:
    """One grabbed hotkey and what it does (state owned by the indicator thread)."""

    hotkey: Hotkey
    callback: Callable[[], None] | None
    primary: bool
    grabs: list[tuple[int, int]] = field(default_factory=list)
    codes: frozenset[int] = frozenset()
    mask: int = 0
    taken: bool = False  # another client holds it: do not retry
    failed: bool = True  # not grabbed (yet)


def parse_hotkey(text: str) -> Hotkey:
    """Parse ``"ctrl+alt+p"`` / ``"super+shift+F9"``: modifiers, then exactly one key name.

    Modifiers are ``ctrl`` (``control``), ``alt``, ``shift`` and ``super`` (``win``), in any case.
    The key is an X keysym name (``p``, ``F9``, ``Pause``, ``space``). A key that types something
    needs ctrl, alt or super, so the grab can never swallow ordinary typing. Raises ValueError with
    the reason for anything else.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"Bad hotkey {text!r}: give modifiers and one key, e.g. 'ctrl+alt+p'.")
    parts = [p.strip() for p in text.strip().split("+")]
    if any(not p for p in parts):
        raise ValueError(f"Bad hotkey {text!r}: an empty part between '+' signs.")
    modifiers: set[str] = set()
    keys: list[str] = []
    for part in parts:
        mod = _MODIFIERS.get(part.lower())
        if mod is None:
            keys.append(part)
        elif mod in modifiers:
            raise ValueError(f"Bad hotkey {text!r}: the modifier {part!r} is given twice.")
        else:
            modifiers.add(mod)
    if len(keys) != 1:
        what = "no key" if not keys else f"{len(keys)} keys ({', '.join(keys)})"
        raise ValueError(
            f"Bad hotkey {text!r}: it names {what}; give exactly one key after the modifiers "
            f"(ctrl, alt, shift, super), e.g. 'ctrl+alt+p'."
        )
    name = keys[0]
    keysym, key_name = 0, name
    for candidate in dict.fromkeys((name, name.lower(), name.upper(), name.capitalize())):
        keysym = XK.string_to_keysym(candidate)
        if keysym:
            key_name = candidate
            break
    if not keysym:
        raise ValueError(f"Bad hotkey {text!r}: {name!r} is not an X key name.")
    if key_name in _MODIFIER_KEYSYMS:
        raise ValueError(f"Bad hotkey {text!r}: the key {name!r} is itself a modifier.")
    if key_name not in _BARE_KEYS and not modifiers & {"ctrl", "alt", "super"}:
        raise ValueError(
            f"Bad hotkey {text!r}: a key that types something needs ctrl, alt or super, or "
            f"the worker could no longer type it."
        )
    return Hotkey(text=text, modifiers=frozenset(modifiers), keysym=keysym, key_name=key_name)


def title_for(state: str, detail: str = "") -> str:
    """The window title the indicator shows for a state: ``demotrace: paused (12 min left)``."""
    return f"demotrace: {state} ({detail})" if detail else f"demotrace: {state}"


class Indicator:
    """The recording indicator (tray icon or corner badge) plus the global pause hotkey.

    ``Indicator(display)`` only parses and validates its arguments (a bad hotkey or corner raises
    ValueError); :meth:`start` connects and shows the indicator in state ``recording``.
    """

    hotkey_error: str | None
    """Why the hotkey is not active (another client holds it, or no key code for it), else None."""

    def __init__(
        self,
        display: str | None,
        *,
        hotkey: str | None = "ctrl+alt+p",
        on_hotkey: Callable[[], None] | None = None,
        extra_hotkeys: dict[str, Callable[[], None]] | None = None,
        prefer_tray: bool = True,
        corner: str = "top-right",
    ) -> None:
        if corner not in CORNERS:
            raise ValueError(f"Bad corner {corner!r}: use one of {', '.join(CORNERS)}.")
        self._display_name = display
        self._hotkey = parse_hotkey(hotkey) if hotkey is not None else None
        self._on_hotkey = on_hotkey
        # every grabbed hotkey: the pause hotkey first, then the extra ones (e.g. task markers)
        self._bindings: list[_Binding] = []
        if self._hotkey is not None:
            self._bindings.append(_Binding(self._hotkey, on_hotkey, primary=True))
        for text, callback in (extra_hotkeys or {}).items():
            extra = parse_hotkey(text)
            if self._hotkey is not None and extra == self._hotkey:
                raise ValueError(f"The hotkey {text!r} is given twice.")
            self._bindings.append(_Binding(extra, callback, primary=False))
        self.extra_hotkey_errors: dict[str, str] = {}
        """Why an extra hotkey is not active, by its text (absent when it is)."""
        self._prefer_tray = prefer_tray
        self._corner = corner
        self.hotkey_error = None
        self.errors: deque[str] = deque(maxlen=20)
        """The last X errors and callback exceptions seen on the indicator thread (text)."""
        self.hotkey_presses = 0
        """How many hotkey presses were delivered (auto-repeat excluded)."""
        self.hotkey_repeats_ignored = 0
        """How many auto-repeat presses of a held hotkey were dropped."""

        self._lock = threading.Lock()
        self._life = threading.Lock()  # held by start(); close() waits for it
        self._want = ("recording", "")  # requested (state, detail), guarded by _lock
        self._started = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._wake_r = -1
        self._wake_w = -1
        self._window_ids: frozenset[int] = frozenset()
        self._mode = "badge"

        # Owned by the indicator thread once it runs (by start() before that).
        self._d: Any = None
        self._root: Any = None
        self._atoms: dict[str, int] = {}
        self._pixels: dict[str, int] = {}
        self._white = 0
        self._black = 0
        self._font: Any = None
        self._char_widths: tuple[int, dict[int, int]] = (6, {})
        self._font_ascent = 10
        self._font_descent = 3
        self._gc: Any = None
        self._badge: Any = None
        self._badge_mapped = False
        self._screen_size = (0, 0)
        self._icon: Any = None
        self._icon_docked = False  # reparented into a tray
        self._icon_mapped = False  # and mapped there
        self._tray_ok = True  # the last dock attempt worked (or none was made)
        self._icon_size = (24, 24)
        self._dock_deadline: float | None = None
        self._shown = ("", "")  # (state, detail) currently painted
        self._raise_wanted = False
        self._last_raise = 0.0
        self._ignored_mask = 0
        self._last_release: tuple[int, int] = (-1, -1)  # (keycode, server time)
        self._held: dict[int, int] = {}  # hotkey keycode -> server time last seen pressed
        self._detectable_repeat = False

    # ------------------------------------------------------------------ public API
    @property
    def window_ids(self) -> frozenset[int]:
        """Every X window this indicator created (badge and tray icons, including gone ones)."""
        return self._window_ids

    @property
    def mode(self) -> str:
        """``"tray"`` while the state is shown by a docked tray icon, else ``"badge"``."""
        return self._mode

    @property
    def state(self) -> str:
        """The state last asked for with :meth:`set_state` (``recording`` initially)."""
        return self._want[0]

    @property
    def hotkey(self) -> str | None:
        """The hotkey string given, or None when there is no hotkey."""
        return self._hotkey.text if self._hotkey else None

    @property
    def running(self) -> bool:
        """True while the indicator thread runs (False before start, after close, or when the
        X connection was lost)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def thread_native_id(self) -> int | None:
        """The OS thread id of the indicator thread (for CPU accounting), once started."""
        return self._thread.native_id if self._thread is not None else None

    def start(self) -> None:
        """Connect to the display, show the indicator in state ``recording``, grab the hotkey and
        start the indicator thread. Raises NoDisplayError when the display cannot be opened and
        RuntimeError when called twice. When it returns, :attr:`mode` and :attr:`hotkey_error`
        are final for now (a tray appearing or vanishing later changes the mode)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("This indicator is closed; make a new one.")
            if self._started:
                raise RuntimeError("This indicator is already started.")
            self._started = True
        with self._life:
            self._start()

    def _start(self) -> None:
        try:
            self._d = xdisplay.Display(self._display_name)
        except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
            name = self._display_name or os.environ.get("DISPLAY") or "(DISPLAY unset)"
            raise NoDisplayError(
                f"The recording indicator could not open the X display {name}: {exc}. "
                f"Check that DISPLAY names a running X server."
            ) from exc
        try:
            self._setup()
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._thread = threading.Thread(
                target=self._run, name="demotrace-indicator", daemon=True
            )
            self._thread.start()
        except BaseException:
            self._teardown()
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_r = self._wake_w = -1
            raise

    def set_state(self, state: str, detail: str = "") -> None:
        """Show ``state`` (one of :data:`STATES`) with an optional short ``detail`` (for example
        ``"12 min left"``). Thread-safe and non-blocking; the indicator thread repaints at once.
        After :meth:`close` it does nothing."""
        if state not in STATES:
            raise ValueError(f"Unknown indicator state {state!r}: use one of {', '.join(STATES)}.")
        with self._lock:
            self._want = (state, str(detail))
            if not self._closed:
                self._wake()

    def close(self) -> None:
        """Ungrab the hotkey, destroy the windows and close the X connection. Idempotent; safe to
        call from ``on_hotkey`` (the thread then finishes right after the callback)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake()
        thread = self._thread
        if thread is not None and thread is threading.current_thread():
            return  # the loop sees _closed after the callback returns and cleans up
        with self._life:  # lets a start() in progress finish first
            thread = self._thread
            if thread is None:
                self._teardown()  # never started, or start failed
                return
        thread.join(timeout=5.0)
        if thread.is_alive():
            log.warning("the indicator thread did not stop within 5 s")
            return
        with self._lock:
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):
                    os.close(self._wake_w)
                self._wake_w = -1

    def __enter__(self) -> Indicator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ setup (caller thread)
    def _setup(self) -> None:
        d = self._d
        d.set_error_handler(self._on_x_error)
        screen = d.screen()
        self._root = screen.root
        self._screen_size = (screen.width_in_pixels, screen.height_in_pixels)
        for name in (
            "UTF8_STRING",
            "_NET_WM_NAME",
            "_NET_WM_PID",
            "_NET_WM_STATE",
            "_NET_WM_STATE_ABOVE",
            "_NET_WM_STATE_STICKY",
            "_NET_WM_STATE_SKIP_TASKBAR",
            "_NET_WM_STATE_SKIP_PAGER",
            "_NET_WM_WINDOW_TYPE",
            "_NET_WM_WINDOW_TYPE_NOTIFICATION",
            "_NET_SYSTEM_TRAY_OPCODE",
            "_XEMBED_INFO",
            "MANAGER",
        ):
            self._atoms[name] = d.intern_atom(name)
        self._atoms["tray"] = d.intern_atom(f"_NET_SYSTEM_TRAY_S{d.get_default_screen()}")
        cmap = screen.default_colormap
        for state, rgb in STATE_COLOURS.items():
            r, g, b = (rgb >> 16) & 0xFF, (rgb >> 8) & 0xFF, rgb & 0xFF
            self._pixels[state] = cmap.alloc_color(r * 257, g * 257, b * 257).pixel
        self._white, self._black = screen.white_pixel, screen.black_pixel
        self._open_font()
        self._gc = self._root.create_gc(foreground=self._white, background=self._black)
        if self._font is not None:
            self._gc.change(font=self._font)
        self._create_badge()

        state, detail = self._want
        if self._prefer_tray and state != "stopped" and self._begin_dock():
            # Until the tray has reparented and mapped the icon, or DOCK_TIMEOUT.
            self._pump_until(lambda: self._dock_deadline is None, DOCK_TIMEOUT + 0.5)
        if self._bindings:
            self._detectable_repeat = self._enable_detectable_autorepeat()
        self._grab_hotkey()
        self._set_root_mask(watch_stacking=False)
        self._apply(state, detail)
        d.sync()

    def _open_font(self) -> None:
        for name in _FONTS:
            font = self._d.open_font(name)
            if font is None:
                continue
            info = font.query()
            widths = {
                info.min_char_or_byte2 + i: ci.character_width
                for i, ci in enumerate(info.char_infos)
            }
            self._font = font
            self._char_widths = (info.max_bounds.character_width, widths)
            self._font_ascent, self._font_descent = info.font_ascent, info.font_descent
            return

    def _create_badge(self) -> None:
        w, h = BADGE_SIZE
        x, y = self._badge_origin()
        badge = self._new_window(
            (x, y, w, h), "recording", override_redirect=True, event_mask=X.ExposureMask
        )
        self._badge = badge
        a = self._atoms
        kind = [a["_NET_WM_WINDOW_TYPE_NOTIFICATION"]]
        badge.change_property(a["_NET_WM_WINDOW_TYPE"], Xatom.ATOM, 32, kind)
        flags = ["ABOVE", "STICKY", "SKIP_TASKBAR", "SKIP_PAGER"]
        wm_state = [a[f"_NET_WM_STATE_{flag}"] for flag in flags]
        badge.change_property(a["_NET_WM_STATE"], Xatom.ATOM, 32, wm_state)
        if self._d.has_extension("SHAPE"):
            with contextlib.suppress(Exception):
                version = self._d.shape_query_version()
                if (version.major_version, version.minor_version) >= (1, 1):
                    from Xlib.ext import shape

                    # An empty input region: clicks fall through to the window below.
                    badge.shape_rectangles(shape.SO.Set, shape.SK.Input, X.Unsorted, 0, 0, [])

    def _new_window(self, box: tuple[int, int, int, int], state: str, **attrs: Any) -> Any:
        """A top-level window of ours in the state's colour, with class, input hint and pid."""
        x, y, w, h = box
        win = self._root.create_window(
            x, y, w, h, 0, X.CopyFromParent, X.InputOutput, X.CopyFromParent,
            background_pixel=self._pixels[state], **attrs
        )  # fmt: skip
        self._add_window(win)
        win.set_wm_class(*WM_CLASS)
        win.set_wm_hints(flags=Xutil.InputHint, input=0)
        win.change_property(self._atoms["_NET_WM_PID"], Xatom.CARDINAL, 32, [os.getpid()])
        return win

    def _badge_origin(self) -> tuple[int, int]:
        sw, sh = self._screen_size
        w, h = BADGE_SIZE
        x = sw - w if self._corner.endswith("right") else 0
        y = sh - h if self._corner.startswith("bottom") else 0
        return max(0, x), max(0, y)

    def _add_window(self, win: Any) -> None:
        self._window_ids = self._window_ids | {int(win.id)}

    # ------------------------------------------------------------------ hotkey
    def _modifier_masks(self) -> dict[str, int]:
        masks = {"alt": X.Mod1Mask, "super": X.Mod4Mask, "numlock": X.Mod2Mask}
        found: dict[str, int] = {}
        wanted = {
            "alt": ("Alt_L", "Alt_R", "Meta_L", "Meta_R"),
            "super": ("Super_L", "Super_R"),
            "numlock": ("Num_Lock",),
        }
        syms = {XK.string_to_keysym(n): role for role, names in wanted.items() for n in names}
        for index, keycodes in enumerate(self._d.get_modifier_mapping()):
            if index < 3:  # Shift, Lock, Control
                continue
            for keycode in keycodes:
                if not keycode:
                    continue
                for col in range(4):
                    role = syms.get(self._d.keycode_to_keysym(keycode, col))
                    if role is not None and role not in found:
                        found[role] = 1 << index
        masks.update(found)
        masks["shift"], masks["ctrl"] = X.ShiftMask, X.ControlMask
        return masks

    def _grab_hotkey(self) -> None:
        """Grab every hotkey (the pause one and the extra ones) that no other client holds."""
        if not self._bindings:
            return
        masks = self._modifier_masks()
        lock_bits = [X.LockMask, masks["numlock"]]
        self._ignored_mask = lock_bits[0] | lock_bits[1]
        for binding in self._bindings:
            if not binding.taken:
                self._grab_one(binding, masks, lock_bits)

    def _set_error(self, binding: _Binding, error: str | None) -> None:
        if binding.primary:
            self.hotkey_error = error
        elif error is None:
            self.extra_hotkey_errors.pop(binding.hotkey.text, None)
        else:
            self.extra_hotkey_errors[binding.hotkey.text] = error

    def _grab_one(self, b: _Binding, masks: dict[str, int], lock_bits: list[int]) -> None:
        """Grab one hotkey on the root window for each Lock/NumLock combination; on BadAccess
        give its grabs back and say why."""
        hk = b.hotkey
        mask = 0
        for mod in hk.modifiers:
            mask |= masks[mod]
        ignored = [0, lock_bits[0], lock_bits[1], lock_bits[0] | lock_bits[1]]
        codes = sorted({code for code, _index in self._d.keysym_to_keycodes(hk.keysym)})
        if not codes:
            self._ungrab_one(b)
            self._set_error(
                b, f"The hotkey {hk.text} is off: the keyboard map has no key for {hk.key_name!r}."
            )
            return
        wanted = [(code, mask | extra) for code in codes for extra in ignored]
        if wanted == b.grabs and not b.failed:
            return  # a keymap change that did not move the hotkey
        self._ungrab_one(b)
        catcher = xerror.CatchError(xerror.BadAccess)
        for code in codes:
            for extra in ignored:
                self._root.grab_key(
                    code, mask | extra, False, X.GrabModeAsync, X.GrabModeAsync, onerror=catcher
                )
                b.grabs.append((code, mask | extra))
        self._d.sync()
        if catcher.get_error() is not None:
            self._ungrab_one(b)
            b.taken = True
            hint = "pause with `demotrace pause` instead" if b.primary else "use the command"
            self._set_error(
                b,
                f"The hotkey {hk.text} is off: another program already uses it. The indicator "
                f"still shows the state; {hint}.",
            )
            return
        b.failed = False
        self._set_error(b, None)
        for code in codes:
            self._held.pop(code, None)
        b.codes = frozenset(codes)
        b.mask = mask

    def _ungrab_one(self, b: _Binding) -> None:
        for code, mods in b.grabs:
            self._root.ungrab_key(code, mods)
        b.grabs = []
        b.codes = frozenset()
        b.failed = True

    def _ungrab_hotkey(self) -> None:
        for binding in self._bindings:
            self._ungrab_one(binding)

    def _enable_detectable_autorepeat(self) -> bool:
        """Ask XKB to report a held key as repeated presses without releases (this connection
        only), and to keep sending core MappingNotify for keysym and modifier changes. True when
        the server agreed."""
        info = self._d.query_extension("XKEYBOARD")
        if info is None:
            return False
        conn, op = self._d.display, info.major_opcode
        try:
            use = _XkbUseExtension(display=conn, opcode=op, wanted_major=1, wanted_minor=0)
            if not use.supported:
                return False
            # An XKB client gets core MappingNotify only for the map parts it selects.
            _XkbSelectEvents(
                display=conn, opcode=op, device_spec=_XKB_USE_CORE_KBD,
                affect_which=_XKB_MAP_NOTIFY, clear=0, select_all=0,
                affect_map=_XKB_MAP_PARTS, map=_XKB_MAP_PARTS,
            )  # fmt: skip
            flags = _XkbPerClientFlags(
                display=conn, opcode=op, device_spec=_XKB_USE_CORE_KBD,
                change=_XKB_DETECTABLE_AUTOREPEAT, value=_XKB_DETECTABLE_AUTOREPEAT,
                ctrls_to_change=0, auto_ctrls=0, auto_ctrl_values=0,
            )  # fmt: skip
        except xerror.XError:
            return False
        return bool(flags.value & _XKB_DETECTABLE_AUTOREPEAT)

    def _on_key(self, ev: Any) -> None:
        code = ev.detail
        bindings = [b for b in self._bindings if code in b.codes]
        if not bindings:
            return
        if ev.type == X.KeyRelease:
            self._held.pop(code, None)
            self._last_release = (code, ev.time)
            return
        state = ev.state & ~self._ignored_mask & 0xFF
        binding = next((b for b in bindings if b.mask == state), None)
        if binding is None:
            return
        last = self._held.get(code)
        self._held[code] = ev.time
        if last is not None and (ev.time - last) % 2**32 < _HELD_KEY_FORGET_MS:
            self.hotkey_repeats_ignored += 1  # still held: XKB detectable auto-repeat
            return
        if not self._detectable_repeat and self._last_release == (code, ev.time):
            self.hotkey_repeats_ignored += 1  # core auto-repeat: release + press, one time
            return
        self.hotkey_presses += 1
        if binding.callback is None:
            return
        try:
            binding.callback()
        except Exception as exc:  # the callback's bug must not stop the indicator
            log.exception("the indicator's hotkey callback failed")
            self.errors.append(f"on_hotkey raised {exc!r}")

    # ------------------------------------------------------------------ tray
    def _begin_dock(self) -> bool:
        """Create a tray icon and ask the tray's selection owner to dock it. True if asked."""
        owner = self._d.get_selection_owner(self._atoms["tray"])
        if not hasattr(owner, "send_event") or int(owner.id) == X.NONE:
            return False  # no tray on this screen
        w, h = self._icon_size
        state = self._want[0] if self._want[0] in STATE_COLOURS else "recording"
        icon = self._new_window(
            (0, 0, w, h), state, event_mask=X.ExposureMask | X.StructureNotifyMask
        )
        xi = self._atoms["_XEMBED_INFO"]
        icon.change_property(xi, xi, 32, [0, _XEMBED_MAPPED])
        self._icon, self._icon_docked, self._icon_mapped = icon, False, False
        self._shown = ("", "")
        self._dock_deadline = time.monotonic() + DOCK_TIMEOUT
        message = xevent.ClientMessage(
            window=owner,
            client_type=self._atoms["_NET_SYSTEM_TRAY_OPCODE"],
            data=(32, [X.CurrentTime, _SYSTEM_TRAY_REQUEST_DOCK, icon.id, 0, 0]),
        )
        owner.send_event(message, event_mask=X.NoEventMask)
        self._d.flush()
        return True

    def _drop_icon(self, destroy: bool = True) -> None:
        icon, self._icon = self._icon, None
        self._icon_docked = self._icon_mapped = False
        self._dock_deadline = None
        if icon is not None and destroy:
            icon.destroy()

    def _set_mode(self, mode: str) -> None:
        """Record what shows the state now; the next loop pass maps or unmaps the badge."""
        self._mode = mode
        self._shown = ("", "")  # repaint everything on the next _apply

    def _on_icon_event(self, ev: Any) -> None:
        """Follow the tray icon: docked (reparented and mapped), hidden, given back, destroyed."""
        t = ev.type
        if t == X.ConfigureNotify:
            self._icon_size = (max(1, ev.width), max(1, ev.height))
            return
        if t == X.ReparentNotify:
            if int(ev.parent.id) != int(self._root.id):
                self._icon_docked = True
            elif self._icon_docked:  # the tray went away and gave the icon back to the root
                log.info("the system tray released the indicator icon; showing the badge")
                self._drop_icon()
                self._tray_ok = False
                self._set_mode("badge")
                return
        elif t == X.MapNotify:
            self._icon_mapped = True
        elif t == X.UnmapNotify:
            self._icon_mapped = False
            if self._icon_docked and self._dock_deadline is None:
                log.info("the system tray hid the indicator icon; showing the badge")
                self._set_mode("badge")
            return
        elif t == X.DestroyNotify:  # its tray was destroyed with it (no save-set)
            log.info("the indicator icon was destroyed with its tray; showing the badge")
            self._drop_icon(destroy=False)
            self._tray_ok = False
            self._set_mode("badge")
            return
        if self._icon_docked and self._icon_mapped and self._mode != "tray":
            self._dock_deadline = None
            self._tray_ok = True
            self._set_mode("tray")

    def _on_manager(self, ev: Any) -> None:
        fmt, data = ev.data
        if fmt != 32 or data[1] != self._atoms["tray"]:
            return
        if self._prefer_tray and self._icon is None and self._want[0] != "stopped":
            self._begin_dock()

    def _check_deadlines(self, now: float) -> None:
        if self._dock_deadline is not None and now >= self._dock_deadline:
            log.info("the system tray did not dock the indicator icon; showing the badge")
            self._drop_icon()
            self._tray_ok = False
            self._set_mode("badge")

    # ------------------------------------------------------------------ painting
    def _apply(self, state: str, detail: str) -> None:
        """Bring the windows in line with ``state``: show, hide, repaint, retitle."""
        visible = state != "stopped"
        if not visible and self._icon is not None:
            self._drop_icon()  # undock; docked again when a visible state comes back
        elif visible and self._icon is None and self._mode == "tray":
            self._set_mode("badge")
            if self._prefer_tray and self._tray_ok:
                self._begin_dock()  # the badge stands in until the tray has mapped the icon
        want_badge = visible and self._mode == "badge"
        changed = (state, detail) != self._shown
        if changed:
            title = title_for(state, detail)
            for win in (self._badge, self._icon):
                if win is not None:
                    self._set_title(win, title)
        if want_badge and not self._badge_mapped:
            self._set_root_mask(watch_stacking=True)
            self._badge.change_attributes(background_pixel=self._pixels[state])
            self._badge.map()
            self._badge_mapped = True
            self._raise_wanted = True
            self._paint_badge(state, detail)
        elif not want_badge and self._badge_mapped:
            self._badge.unmap()
            self._badge_mapped = False
            self._set_root_mask(watch_stacking=False)
        elif want_badge and changed:
            self._badge.change_attributes(background_pixel=self._pixels[state])
            self._badge.clear_area()
            self._paint_badge(state, detail)
        if self._icon is not None and visible and changed:
            self._icon.change_attributes(background_pixel=self._pixels[state])
            self._icon.clear_area()
            self._paint_icon(state)
        self._shown = (state, detail)

    def _set_root_mask(self, watch_stacking: bool) -> None:
        """Root events: StructureNotify always (screen size, a tray's MANAGER message), and
        SubstructureNotify (every map and restack on the screen) only while the badge shows."""
        mask = X.StructureNotifyMask | (X.SubstructureNotifyMask if watch_stacking else 0)
        self._root.change_attributes(event_mask=mask)

    def _set_title(self, win: Any, title: str) -> None:
        win.change_property(Xatom.WM_NAME, Xatom.STRING, 8, title.encode("latin-1", "replace"))
        win.change_property(
            self._atoms["_NET_WM_NAME"], self._atoms["UTF8_STRING"], 8, title.encode("utf-8")
        )

    def _text_width(self, text: bytes) -> int:
        default, widths = self._char_widths
        return sum(widths.get(c, default) or default for c in text)

    def _paint_badge(self, state: str, detail: str) -> None:
        if state not in STATE_LABELS:
            return
        w, h = BADGE_SIZE
        label = STATE_LABELS[state].encode("latin-1")
        text = label
        if detail:
            longer = f"{STATE_LABELS[state]}  {detail}".encode("latin-1", "replace")
            if self._text_width(longer) <= w - 2 * _TEXT_PAD:
                text = longer
        width = self._text_width(text)
        x = max(_TEXT_PAD, (w - width) // 2)
        y = (h + self._font_ascent - self._font_descent) // 2
        fg = self._black if state in _DARK_TEXT_STATES else self._white
        self._gc.change(foreground=fg)
        self._badge.draw_text(self._gc, x, y, text)

    def _paint_icon(self, state: str) -> None:
        """A glyph in the middle of the icon; its left quarter stays the plain state colour."""
        if state not in STATE_COLOURS or self._icon is None:
            return
        w, h = self._icon_size
        s = max(4, min(w, h) // 2)
        x0, y0 = (w - s) // 2, (h - s) // 2
        fg = self._black if state in _DARK_TEXT_STATES else self._white
        self._gc.change(foreground=fg)
        icon = self._icon
        if state == "recording":
            icon.fill_arc(self._gc, x0, y0, s, s, 0, 360 * 64)
        elif state == "paused":
            bar = max(1, s // 3)
            icon.fill_rectangle(self._gc, x0, y0, bar, s)
            icon.fill_rectangle(self._gc, x0 + s - bar, y0, bar, s)
        elif state == "out_of_scope":
            icon.fill_rectangle(self._gc, x0, h // 2 - 1, s, 3)
        else:
            icon.rectangle(self._gc, x0, y0, s - 1, s - 1)

    def _raise_badge(self) -> None:
        self._badge.configure(stack_mode=X.Above)
        self._last_raise = time.monotonic()
        self._raise_wanted = False

    # ------------------------------------------------------------------ events
    def _handle(self, ev: Any) -> None:
        t = ev.type
        if t in (X.KeyPress, X.KeyRelease):
            self._on_key(ev)
        elif t == X.Expose:
            if ev.count == 0:
                self._on_expose(int(ev.window.id))
        elif t in _WINDOW_EVENTS:
            wid = int(ev.window.id)
            if self._icon is not None and wid == int(self._icon.id):
                self._on_icon_event(ev)
            elif t == X.ConfigureNotify and wid == int(self._root.id):
                self._on_screen_resize(ev.width, ev.height)
            elif (
                t in _RESTACK_EVENTS
                and wid not in self._window_ids
                and int(ev.event.id) == int(self._root.id)
            ):
                self._raise_wanted = True  # a window was mapped or restacked: maybe over us
        elif t == X.ClientMessage:
            if ev.client_type == self._atoms["MANAGER"]:
                self._on_manager(ev)
        elif t == X.MappingNotify and ev.request in (X.MappingKeyboard, X.MappingModifier):
            self._d.refresh_keyboard_mapping(ev)
            self._grab_hotkey()

    def _on_expose(self, wid: int) -> None:
        state, detail = self._shown
        if self._badge is not None and wid == int(self._badge.id):
            self._paint_badge(state, detail)
        elif self._icon is not None and wid == int(self._icon.id):
            self._paint_icon(state)

    def _on_screen_resize(self, width: int, height: int) -> None:
        if (width, height) == self._screen_size:
            return
        self._screen_size = (width, height)
        x, y = self._badge_origin()
        self._badge.configure(x=x, y=y)
        self._raise_wanted = True

    def _on_x_error(self, err: Any, request: Any = None) -> None:
        self.errors.append(f"X error: {err}")
        log.debug("indicator X error: %s", err)

    def _pump_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Handle events on the calling thread until ``done()`` or ``timeout`` (used by start)."""
        d = self._d
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(d.fileno(), selectors.EVENT_READ)
            while not done():
                while d.pending_events():
                    self._handle(d.next_event())
                now = time.monotonic()
                self._check_deadlines(now)
                if done() or now >= deadline:
                    return
                d.flush()
                wait = deadline - now
                if self._dock_deadline is not None:
                    wait = min(wait, max(0.0, self._dock_deadline - now))
                sel.select(wait)

    # ------------------------------------------------------------------ the thread
    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"x")

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_r, 512):
                pass

    def _timeout(self, now: float) -> float | None:
        waits = []
        if self._raise_wanted and self._badge_mapped:
            waits.append(max(0.0, self._last_raise + MIN_RAISE_INTERVAL - now))
        if self._dock_deadline is not None:
            waits.append(max(0.0, self._dock_deadline - now))
        return min(waits) if waits else None

    def _run(self) -> None:
        d = self._d
        sel = selectors.DefaultSelector()  # X connection and wake pipe
        sel.register(d.fileno(), selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        pipe_only = selectors.DefaultSelector()  # while a re-raise waits for its turn
        pipe_only.register(self._wake_r, selectors.EVENT_READ)
        failures = 0
        try:
            while True:
                try:
                    self._drain_wake()
                    with self._lock:
                        closing, want = self._closed, self._want
                    if closing:
                        break
                    while d.pending_events():
                        self._handle(d.next_event())
                    now = time.monotonic()
                    self._check_deadlines(now)
                    if want != self._shown:
                        self._apply(*want)
                    if (
                        self._raise_wanted
                        and self._badge_mapped
                        and now - self._last_raise >= MIN_RAISE_INTERVAL
                    ):
                        self._raise_badge()
                    elif self._raise_wanted and not self._badge_mapped:
                        self._raise_wanted = False
                    d.flush()
                    now = time.monotonic()
                    if self._raise_wanted and self._badge_mapped:
                        # Windows are moving: let their events pile up until the next raise
                        # may happen, then handle them in one batch (at most ~20 wake-ups/s).
                        # set_state and close still wake the thread at once.
                        pipe_only.select(self._timeout(now))
                        continue
                    if d.pending_events():
                        continue  # a reply carried events in; handle them before sleeping
                    sel.select(self._timeout(now))
                    failures = 0
                except xerror.ConnectionClosedError as exc:
                    self.errors.append(f"X connection lost: {exc}")
                    log.error("the indicator lost its X connection: %s", exc)
                    return
                except Exception as exc:  # keep the indicator alive whatever one event does
                    failures += 1
                    self.errors.append(f"indicator error: {exc!r}")
                    log.exception("the indicator thread hit an error")
                    time.sleep(min(1.0, 0.05 * failures))
        finally:
            sel.close()
            pipe_only.close()
            self._teardown()
            with contextlib.suppress(OSError):
                os.close(self._wake_r)
            self._wake_r = -1
            with self._lock:
                if self._closed and self._wake_w >= 0:
                    with contextlib.suppress(OSError):
                        os.close(self._wake_w)
                    self._wake_w = -1

    def _teardown(self) -> None:
        """Give back the grab, destroy the windows and close the connection (best effort)."""
        d, self._d = self._d, None
        if d is None:
            return
        with contextlib.suppress(Exception):
            self._ungrab_hotkey()
            if self._icon is not None:
                self._icon.destroy()
                self._icon = None
            if self._badge is not None:
                self._badge.destroy()
                self._badge_mapped = False
            d.sync()
        with contextlib.suppress(Exception):
            d.close()

"""Event kinds, the raw event row, and schema versions. No I/O here.

A raw event is stored as one row with a fixed set of small columns so that the 98% of events that
are pointer moves cost a few dozen bytes each. Which columns a kind uses is documented on
:class:`Kind`; rich kinds (focus, popup, target, frame, gap, marker) put their details in ``data``
as compact JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

#: Version of the local store's schema (see ``store/db.py`` for migrations).
STORE_SCHEMA_VERSION = 3
#: Version of the raw event model written into every session.
EVENT_MODEL_VERSION = 2


class Kind(IntEnum):
    """Raw event kinds. Values are stored; never renumber, only add.

    Columns used per kind (``x``, ``y`` are root-window pixels):

    - MOVE: x, y
    - BUTTON: x, y, code = X button (1-3, 8, 9), state, value = 1 press / 0 release
    - WHEEL: x, y, code = X button (4 up, 5 down, 6 left, 7 right), state; one row per notch
    - KEY: x, y (pointer), code = key code, state, value = 1 press / 0 release, name = keysym name
    - FOCUS: data = {app, instance, title, pid, window, geometry}
    - TITLE: data = {window, title}
    - POPUP: value = 1 map / 0 unmap, data = {window, type, geometry, app}
    - TARGET: x, y, data = {window, app, popup} (the window under the pointer at a press)
    - FRAME: data = {frame, for_seq, reason, t_grab_ns, t_verified_ns, age_ns, region}
    - GAP: data = {reason, duration_ns}; reason is out_of_scope, paused, private, hours or secret.
      Nothing of what happened in a gap is stored.
    - MARKER: data = {what, text}
    - SCREEN: x = width, y = height (at session start and on every change)
    - TEXT: data = {text, mode, keys, t_end_ns}: a typed sequence (backspaces applied), redacted
      (mode ``text``) or masked by character class (``masked``). The KEY rows of typing
      characters carry no key code and no keysym name: this row is the only typed content.
    """

    MOVE = 1
    BUTTON = 2
    WHEEL = 3
    KEY = 4
    FOCUS = 5
    TITLE = 6
    POPUP = 7
    TARGET = 8
    BROWSER = 9
    FRAME = 10
    GAP = 11
    MARKER = 12
    SCREEN = 13
    TEXT = 14


KIND_NAMES = {k: k.name.lower() for k in Kind}

#: X modifier bits in an event's ``state``.
MOD_SHIFT, MOD_LOCK, MOD_CONTROL, MOD_ALT = 1, 2, 4, 8
MOD_NUMLOCK, MOD_SUPER, MOD_ALTGR = 16, 64, 128
MODIFIER_NAMES = {MOD_SHIFT: "shift", MOD_CONTROL: "ctrl", MOD_ALT: "alt", MOD_SUPER: "win"}

#: Wheel buttons and the notch they mean, following pyautogui: dy > 0 is up.
WHEEL_BUTTONS = {4: (0, 1), 5: (0, -1), 6: (-1, 0), 7: (1, 0)}


class Row(NamedTuple):
    """One raw event as captured, before the store assigns its sequence number."""

    t_ns: int
    xtime: int | None
    kind: int
    x: int | None = None
    y: int | None = None
    code: int | None = None
    state: int | None = None
    value: int | None = None
    name: str | None = None
    data: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A raw event read back from the store."""

    session: int
    seq: int
    t_ns: int
    xtime: int | None
    kind: Kind
    x: int | None
    y: int | None
    code: int | None
    state: int | None
    value: int | None
    name: str | None
    data: dict[str, Any] | None


def modifier_names(state: int) -> list[str]:
    """Names of the held modifiers in an X state mask, in pyautogui's spelling."""
    return [name for bit, name in MODIFIER_NAMES.items() if state & bit]

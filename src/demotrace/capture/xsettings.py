"""The desktop's input settings from XSETTINGS: double-click time and distance.

A desktop (GNOME, Xfce, MATE, a settings daemon) publishes its settings as the property
``_XSETTINGS_SETTINGS`` on the window owning the selection ``_XSETTINGS_S<screen>``. The reducer
uses ``Net/DoubleClickTime`` (ms) and ``Net/DoubleClickDistance`` (px) to count clicks the way
the person's desktop did; without a settings manager it keeps its defaults (400 ms, 4 px).

The property's format (freedesktop XSETTINGS specification, version 0.5): a byte-order byte, three
unused bytes, a serial and a count (CARD32 each), then per setting: type (0 integer, 1 string, 2
colour), an unused byte, the name's length (CARD16), the name padded to 4 bytes, the last-change
serial (CARD32), and the value (INT32; CARD32 length + bytes padded to 4; or four CARD16).
"""

from __future__ import annotations

import struct
from typing import Any

#: The settings the recorder keeps, and the session-info keys they are stored under.
WANTED = {"Net/DoubleClickTime": "double_click_ms", "Net/DoubleClickDistance": "double_click_px"}


def _pad(n: int) -> int:
    return (n + 3) & ~3


def parse(blob: bytes) -> dict[str, int | str | tuple[int, int, int, int]]:
    """The settings in an ``_XSETTINGS_SETTINGS`` property value. Raises ValueError when the
    bytes are not in the format."""
    if len(blob) < 12:
        raise ValueError("too short for an XSETTINGS header")
    order = {0: "<", 1: ">"}.get(blob[0])
    if order is None:
        raise ValueError(f"bad byte order {blob[0]}")
    _serial, count = struct.unpack_from(order + "II", blob, 4)
    pos = 12
    out: dict[str, int | str | tuple[int, int, int, int]] = {}
    try:
        for _ in range(count):
            kind, _unused, name_len = struct.unpack_from(order + "BBH", blob, pos)
            pos += 4
            name = blob[pos : pos + name_len].decode("utf-8", "replace")
            pos += _pad(name_len) + 4  # name, then last-change serial
            if kind == 0:
                (out[name],) = struct.unpack_from(order + "i", blob, pos)
                pos += 4
            elif kind == 1:
                (length,) = struct.unpack_from(order + "I", blob, pos)
                pos += 4
                out[name] = blob[pos : pos + length].decode("utf-8", "replace")
                pos += _pad(length)
            elif kind == 2:
                out[name] = struct.unpack_from(order + "HHHH", blob, pos)
                pos += 8
            else:
                raise ValueError(f"unknown setting type {kind}")
    except struct.error as exc:
        raise ValueError(f"truncated XSETTINGS data: {exc}") from None
    return out


def build(settings: dict[str, int | str], order: str = "<", serial: int = 1) -> bytes:
    """An ``_XSETTINGS_SETTINGS`` value holding integer and string ``settings`` (for tests and
    for bench desktops without a settings daemon)."""
    out = bytearray(struct.pack(order + "B3xII", 0 if order == "<" else 1, serial, len(settings)))
    for name, value in settings.items():
        raw = name.encode()
        kind = 0 if isinstance(value, int) else 1
        out += (
            struct.pack(order + "BxH", kind, len(raw)) + raw + b"\0" * (_pad(len(raw)) - len(raw))
        )
        out += struct.pack(order + "I", serial)
        if isinstance(value, int):
            out += struct.pack(order + "i", value)
        else:
            data = value.encode()
            out += (
                struct.pack(order + "I", len(data)) + data + b"\0" * (_pad(len(data)) - len(data))
            )
    return bytes(out)


def input_settings(disp: Any) -> dict[str, int]:
    """``{"double_click_ms": ..., "double_click_px": ...}`` from the desktop's settings manager
    on ``disp`` (a python-xlib Display); only what it publishes, empty without one."""
    from Xlib import X

    try:
        owner = disp.get_selection_owner(
            disp.intern_atom(f"_XSETTINGS_S{disp.get_default_screen()}")
        )
        if owner in (None, X.NONE) or not int(getattr(owner, "id", owner)):
            return {}
        atom = disp.intern_atom("_XSETTINGS_SETTINGS")
        prop = owner.get_full_property(atom, X.AnyPropertyType)
        if prop is None or prop.format != 8:
            return {}
        settings = parse(bytes(prop.value))
    except Exception:  # a broken or vanishing settings manager must never stop a recording
        return {}
    out: dict[str, int] = {}
    for name, key in WANTED.items():
        value = settings.get(name)
        if isinstance(value, int) and 0 < value < 10_000:
            out[key] = value
    return out

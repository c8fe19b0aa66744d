"""Keysym names -> typed characters, and typed tokens -> text with the edits applied. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from Xlib import XK

_KEYPAD = {
    "KP_0": "0", "KP_1": "1", "KP_2": "2", "KP_3": "3", "KP_4": "4", "KP_5": "5", "KP_6": "6",
    "KP_7": "7", "KP_8": "8", "KP_9": "9", "KP_Decimal": ".", "KP_Add": "+",
    "KP_Subtract": "-", "KP_Multiply": "*", "KP_Divide": "/", "KP_Space": " ", "KP_Equal": "=",
}  # fmt: skip
_cache: dict[str, str | None] = {}

#: The token for one press of BackSpace in a typed sequence.
BACKSPACE = "BackSpace"


def keysym_char(name: str | None) -> str | None:
    """The printable character a keysym name types (``"a"``, ``"exclam"``, ``"U+00E9"``), or
    None for keys that type nothing (modifiers, navigation, function keys, Return, Tab)."""
    if not name:
        return None
    hit = _cache.get(name, "?miss")
    if hit != "?miss":
        return hit
    char: str | None = None
    if name.startswith("U+"):
        try:
            char = chr(int(name[2:], 16))
        except ValueError:
            char = None
    elif name in _KEYPAD:
        char = _KEYPAD[name]
    else:
        sym = XK.string_to_keysym(name)
        if 0x20 <= sym <= 0x7E or 0xA0 <= sym <= 0xFF:
            char = chr(sym)
        elif sym & 0xFF000000 == 0x01000000:
            char = chr(sym & 0xFFFFFF)
    if char is not None and not char.isprintable():
        char = None
    _cache[name] = char
    return char


def apply_edits(tokens: Iterable[str]) -> str:
    """Text typed by a sequence of tokens: single characters, or :data:`BACKSPACE`, which deletes
    the character before it (nothing when the sequence is empty)."""
    out: list[str] = []
    for token in tokens:
        if token == BACKSPACE:
            if out:
                out.pop()
        else:
            out.append(token)
    return "".join(out)

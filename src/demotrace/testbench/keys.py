"""Key names (pyautogui's spelling) and characters to X keysym names. Imports nothing from X."""

from __future__ import annotations

#: pyautogui key name -> X keysym name.
KEY_NAMES: dict[str, str] = {
    "ctrl": "Control_L",
    "ctrlleft": "Control_L",
    "ctrlright": "Control_R",
    "alt": "Alt_L",
    "altleft": "Alt_L",
    "altright": "Alt_R",
    "shift": "Shift_L",
    "shiftleft": "Shift_L",
    "shiftright": "Shift_R",
    "win": "Super_L",
    "winleft": "Super_L",
    "winright": "Super_R",
    "super": "Super_L",
    "enter": "Return",
    "return": "Return",
    "tab": "Tab",
    "esc": "Escape",
    "escape": "Escape",
    "backspace": "BackSpace",
    "delete": "Delete",
    "del": "Delete",
    "insert": "Insert",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "home": "Home",
    "end": "End",
    "pageup": "Prior",
    "pagedown": "Next",
    "space": "space",
    "menu": "Menu",
    **{f"f{i}": f"F{i}" for i in range(1, 13)},
}

#: Modifier key names, pressed first and released last in a hotkey.
MODIFIERS = frozenset(
    {"ctrl", "ctrlleft", "ctrlright", "alt", "altleft", "altright", "shift", "shiftleft"}
    | {"shiftright", "win", "winleft", "winright", "super"}
)

_CONTROL_CHARS = {"\n": "Return", "\r": "Return", "\t": "Tab", "\b": "BackSpace"}


def is_key_name(name: str) -> bool:
    """True for a pyautogui key name or a single printable character."""
    return name.lower() in KEY_NAMES or (len(name) == 1 and (name.isprintable() or name in "\n\t"))


def char_keysym(char: str) -> int:
    """The X keysym value of one character (Latin-1 maps directly, others via 0x01000000)."""
    if char in _CONTROL_CHARS:
        from_name = {"Return": 0xFF0D, "Tab": 0xFF09, "BackSpace": 0xFF08}
        return from_name[_CONTROL_CHARS[char]]
    code = ord(char)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code
    return 0x01000000 | code

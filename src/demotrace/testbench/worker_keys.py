"""Keyboard actions of the scripted worker: typing with a human rhythm, hotkeys, single keys.

A mixin of :class:`~demotrace.testbench.worker.ScriptedWorker`. Characters are looked up in the
display's keyboard map (shift level 0 or 1 only); one that no key produces is a ScenarioError.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from demotrace.errors import ScenarioError
from demotrace.testbench import keys as keynames

if TYPE_CHECKING:
    from demotrace.testbench.worker import ScriptedWorker as _Base
else:
    _Base = object

_MAIN_BLOCK_LAST = 90  # keycodes 9-90: the main typing block of the evdev keymap


class KeyboardActions(_Base):
    """type_text, hotkey, key and type_storm, on the worker's XTEST plumbing."""

    def _keycode(self, keysym: int, what: str) -> tuple[int, int]:
        """(keycode, shift level 0/1) for a keysym, or ScenarioError if it is not mapped."""
        if keysym in self._keymap_cache:
            return self._keymap_cache[keysym]
        # prefer the main block as a US typist would: shift+9 for "(", not the extra
        # parenleft key that Xvfb's keymap carries at keycode 187
        found = sorted(
            (code > _MAIN_BLOCK_LAST, index, code)
            for code, index in self._d.keysym_to_keycodes(keysym)
            if index < 2
        )
        if not keysym or not found:
            raise ScenarioError(
                f"Cannot type {what}: no key on display {self.display_name}'s keyboard map "
                "produces it. Use characters of the US keyboard layout."
            )
        _extra, index, code = found[0]
        self._keymap_cache[keysym] = (code, index)
        return code, index

    def _named_key(self, name: str) -> tuple[int, int]:
        from Xlib import XK

        lowered = name.lower()
        if lowered in keynames.KEY_NAMES:
            return self._keycode(XK.string_to_keysym(keynames.KEY_NAMES[lowered]), repr(name))
        if len(name) == 1:
            return self._keycode(keynames.char_keysym(name), repr(name))
        raise ScenarioError(f"Unknown key name {name!r}; use pyautogui's names (ctrl, enter, f5).")

    def _tap(self, code: int, shifted: bool, interval: float) -> None:
        """Press and release one key (with shift around it), taking about ``interval`` s."""
        shift = self._named_key("shift")[0] if shifted else 0
        hold = min(self._hold(), max(0.04, interval - 0.02))
        if shift:
            self._key_event(shift, True)
            self._sleep(self.rng.uniform(0.015, 0.04))
        self._key_event(code, True)
        self._sleep(hold)
        self._key_event(code, False)
        if shift:
            self._sleep(self.rng.uniform(0.01, 0.03))
            self._key_event(shift, False)

    def _interval(self, char: str, previous: str) -> float:
        """Press-to-press time: log-normal (median ~135 ms) in 60-250 ms, slower around spaces."""
        gap = min(0.25, max(0.06, self.rng.lognormvariate(-2.0, 0.35)))
        if char == " " or previous == " ":
            gap = min(0.25, gap * self.rng.uniform(1.15, 1.5))
        return gap

    def type_text(self, text: str, target: str | None = None, secret: bool = False) -> None:
        """Type with a human rhythm; shift for upper case and shifted symbols.

        With ``secret`` (passwords) the ground truth keeps only the length, not the text.
        """
        plan = [
            self._keycode(keynames.char_keysym(c), "a character" if secret else repr(c))
            for c in text
        ]
        shown: dict[str, Any] = {"text": text}
        if secret:
            shown = {"text": None, "secret": True, "text_len": len(text)}
        with self._action("type", **shown, target=target):
            previous = ""
            for i, (char, (code, level)) in enumerate(zip(text, plan, strict=True)):
                interval = self._interval(char, previous)
                started = time.perf_counter()
                self._tap(code, level == 1, interval)
                if i + 1 < len(text):
                    rest = interval - (time.perf_counter() - started) * self.speed
                    self._sleep(max(0.0, rest))
                previous = char

    def hotkey(self, *names: str, target: str | None = None) -> None:
        """Press keys in order and release them in reverse (e.g. ``hotkey("ctrl", "c")``)."""
        codes = [self._named_key(n)[0] for n in names]
        with self._action("hotkey", keys=list(names), target=target):
            self._chord(codes)

    def _chord(self, codes: Sequence[int]) -> None:
        for i, code in enumerate(codes):
            if i:
                self._sleep(self.rng.uniform(0.03, 0.08))
            self._key_event(code, True)
        self._sleep(self.rng.uniform(0.06, 0.15))
        for i, code in enumerate(reversed(codes)):
            if i:
                self._sleep(self.rng.uniform(0.02, 0.06))
            self._key_event(code, False)

    def key(self, name: str, repeat: int = 1, target: str | None = None) -> None:
        """Tap one named key (enter, tab, down, ...) ``repeat`` times."""
        code, level = self._named_key(name)
        with self._action("key", keys=[name], count=repeat, target=target):
            for i in range(repeat):
                if i:
                    self._sleep(self.rng.uniform(0.08, 0.2))
                self._tap(code, level == 1 and len(name) == 1, 0.15)

    def type_storm(self, text: str) -> None:
        """Type ``text`` with no delays at all (shift around upper case), syncing in batches."""
        plan = [self._keycode(keynames.char_keysym(c), repr(c)) for c in text]
        shift = self._named_key("shift")[0]
        with self._action("type_storm", text=text), self._batched():
            for code, level in plan:
                if level:
                    self._key_event(shift, True)
                self._key_event(code, True)
                self._key_event(code, False)
                if level:
                    self._key_event(shift, False)

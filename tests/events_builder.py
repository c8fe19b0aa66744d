"""Build raw event tables by hand, the way the recorder stores them, for reducer unit tests."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from demotrace.dataset.schema import EVENT_SCHEMA
from demotrace.model import Kind

_KEYCODES: dict[str, int] = {}


class Events:
    """Appends rows in stream order; ``after`` is the time since the previous row, in ms."""

    def __init__(self, width: int = 800, height: int = 600) -> None:
        self.rows: list[dict[str, Any]] = []
        self.t = 1_000_000_000_000
        self.x, self.y = 100, 100
        self.screen(width, height)

    def _add(self, kind: Kind, after: float = 10, **cols: Any) -> int:
        self.t += int(after * 1e6)
        seq = len(self.rows) + 1
        row = {name: None for name in EVENT_SCHEMA.names}
        row |= {"seq": seq, "t_ns": self.t, "kind": int(kind)}
        if "data" in cols and cols["data"] is not None:
            cols["data"] = json.dumps(cols["data"], separators=(",", ":"))
        row |= cols
        self.rows.append(row)
        return seq

    def screen(self, w: int, h: int) -> int:
        return self._add(Kind.SCREEN, 0, x=w, y=h)

    def move(self, x: int, y: int, after: float = 8) -> int:
        self.x, self.y = x, y
        return self._add(Kind.MOVE, after, x=x, y=y)

    def glide(self, x: int, y: int, steps: int = 10, after: float = 8) -> None:
        x0, y0 = self.x, self.y
        for i in range(1, steps + 1):
            self.move(x0 + (x - x0) * i // steps, y0 + (y - y0) * i // steps, after)

    def press(self, button: int = 1, state: int = 0, after: float = 10, **target: Any) -> int:
        seq = self._add(Kind.BUTTON, after, x=self.x, y=self.y, code=button, state=state, value=1)
        if target:
            self._add(Kind.TARGET, 0, x=self.x, y=self.y, data=target)
        return seq

    def release(self, button: int = 1, state: int = 0, after: float = 80) -> int:
        mask = 256 << (button - 1) if button <= 5 else 0
        return self._add(
            Kind.BUTTON, after, x=self.x, y=self.y, code=button, state=state | mask, value=0
        )

    def click(self, button: int = 1, state: int = 0, after: float = 10, **target: Any) -> int:
        seq = self.press(button, state, after, **target)
        self.release(button, state)
        return seq

    def wheel(self, code: int, after: float = 40, state: int = 0) -> int:
        return self._add(Kind.WHEEL, after, x=self.x, y=self.y, code=code, state=state, value=1)

    def key(self, name: str | None, press: bool = True, state: int = 0, after: float = 60,
            code: int | None = None) -> int:  # fmt: skip
        if code is None and name is not None:
            code = _KEYCODES.setdefault(name, 10 + len(_KEYCODES))
        return self._add(
            Kind.KEY, after, x=self.x, y=self.y, code=code, state=state, value=int(press),
            name=name,
        )  # fmt: skip

    def tap(self, name: str, state: int = 0, after: float = 60) -> int:
        seq = self.key(name, True, state, after)
        self.key(name, False, state, 50)
        return seq

    def chord(self, *names: str, state_bits: tuple[int, ...] = ()) -> int:
        """Modifiers down (with their bits), the key, then all up in reverse."""
        state = 0
        for name, bit in zip(names[:-1], state_bits, strict=True):
            self.key(name, True, state, 40)
            state |= bit
        seq = self.key(names[-1], True, state, 40)
        self.key(names[-1], False, state, 60)
        for name, bit in reversed(list(zip(names[:-1], state_bits, strict=True))):
            state &= ~bit
            self.key(name, False, state | bit, 30)
        return seq

    def text(self, text: str, keys: int | None = None, mode: str = "text") -> int:
        """A TEXT row and the stripped key rows of an event-model-2 typed sequence."""
        n = keys if keys is not None else len(text)
        t0 = self.t + 60_000_000
        seq = self._add(
            Kind.TEXT, 60, data={"text": text, "mode": mode, "keys": n, "t_end_ns": t0 + n * 1e8}
        )
        self.t -= 0
        for i in range(n):
            self._add(Kind.KEY, 0 if i == 0 else 50, x=self.x, y=self.y, state=0, value=1)
            self._add(Kind.KEY, 50, x=self.x, y=self.y, state=0, value=0)
        return seq

    def focus(self, app: str, window: int, title: str = "", after: float = 20) -> int:
        data = {"window": window, "app": app, "instance": app.lower(), "title": title}
        return self._add(Kind.FOCUS, after, data=data)

    def popup(self, mapped: bool, ptype: str, geometry: list[int], window: int = 77,
              after: float = 15) -> int:  # fmt: skip
        data = {"window": window, "type": ptype, "geometry": geometry, "app": "App"}
        return self._add(Kind.POPUP, after, value=int(mapped), data=data)

    def frame(self, frame: str, for_seq: int | None, after: float = 5) -> int:
        data: dict[str, Any] = {"frame": frame, "t_grab_ns": self.t - 1_000_000}
        if for_seq is not None:
            data["for_seq"] = for_seq
        return self._add(Kind.FRAME, after, data=data)

    def gap(self, reason: str, seconds: float) -> int:
        seq = self._add(Kind.GAP, 10, data={"reason": reason, "duration_ns": int(seconds * 1e9)})
        self.t += int(seconds * 1e9)
        return seq

    def marker(self, what: str, text: str | None = None) -> int:
        return self._add(Kind.MARKER, 10, data={"what": what, "text": text})

    def idle(self, seconds: float) -> None:
        self.t += int(seconds * 1e9)

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=EVENT_SCHEMA)

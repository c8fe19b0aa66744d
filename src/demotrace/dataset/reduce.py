"""The reducer: one session's raw events -> canonical actions. Pure, versioned, deterministic.

Input is a pyarrow Table with :data:`~demotrace.dataset.schema.EVENT_SCHEMA` in ``seq`` order.
Pointer moves (98% of the rows) are never visited one by one: they are cut out as numpy arrays
and used in bulk (paths by ``searchsorted``, drag tests by slicing). A single Python pass walks the
other rows and builds *atoms* (a press and its release, a wheel run, a typed text, a key press, a
focus change); a second pass merges and relabels them: multi-clicks, drags, app switches, dropdown
and menu choices, and submenu hovers (waits are added with the episodes). Actions keep screen
pixels; :func:`canonical` turns one into the normalised JSON of ``docs/dataset.md``.

Rules and their thresholds live in :class:`ReduceConfig`; ``docs/reducer.md`` explains each one.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from demotrace.model import MOD_ALT, MOD_CONTROL, MOD_SHIFT, MOD_SUPER, Kind
from demotrace.privacy.keys import BACKSPACE, apply_edits, keysym_char

#: Bump when a rule changes what the reducer produces for the same input.
REDUCER_VERSION = 1

_BUTTON_NAMES = {1: "left", 2: "middle", 3: "right", 8: "back", 9: "forward"}
_WHEEL = {4: (0, 1), 5: (0, -1), 6: (-1, 0), 7: (1, 0)}
_MODIFIER_KEYS = {
    "Shift_L": MOD_SHIFT, "Shift_R": MOD_SHIFT, "Control_L": MOD_CONTROL,
    "Control_R": MOD_CONTROL, "Alt_L": MOD_ALT, "Alt_R": MOD_ALT, "Meta_L": MOD_ALT,
    "Meta_R": MOD_ALT, "Super_L": MOD_SUPER, "Super_R": MOD_SUPER, "Hyper_L": MOD_SUPER,
    "Hyper_R": MOD_SUPER, "ISO_Level3_Shift": 0, "Mode_switch": 0, "Caps_Lock": 0,
    "Num_Lock": 0,
}  # fmt: skip
#: X keysym name -> pyautogui key name, for keys whose names differ.
_PYAUTOGUI = {
    "Return": "enter", "KP_Enter": "enter", "Tab": "tab", "ISO_Left_Tab": "tab",
    "Escape": "esc", "BackSpace": "backspace", "Delete": "delete", "KP_Delete": "delete",
    "Insert": "insert", "KP_Insert": "insert", "Up": "up", "Down": "down", "Left": "left",
    "Right": "right", "KP_Up": "up", "KP_Down": "down", "KP_Left": "left", "KP_Right": "right",
    "Home": "home", "End": "end", "KP_Home": "home", "KP_End": "end", "Prior": "pageup",
    "Next": "pagedown", "KP_Prior": "pageup", "KP_Next": "pagedown", "space": "space",
    "Menu": "apps", "Print": "printscreen", "Pause": "pause", "Scroll_Lock": "scrolllock",
    "KP_Add": "add", "KP_Subtract": "subtract", "KP_Multiply": "multiply",
    "KP_Divide": "divide", "KP_Decimal": "decimal",
    **{f"KP_{i}": f"num{i}" for i in range(10)},
    **{f"F{i}": f"f{i}" for i in range(1, 25)},
}  # fmt: skip
_MENU_TYPES = {"POPUP_MENU": "menu", "MENU": "menu", "DROPDOWN_MENU": "dropdown"}
_DROPDOWN_TYPES = {"COMBO": "dropdown", "DROPDOWN": "dropdown"}
#: How far apart the X server may deliver a press and the map it caused, on two connections.
_SKEW_NS = 50_000_000
_INPUT_KINDS = (int(Kind.MOVE), int(Kind.BUTTON), int(Kind.WHEEL), int(Kind.KEY))


@dataclass(frozen=True)
class ReduceConfig:
    """Thresholds of the reduction rules (the defaults are the documented ones)."""

    #: Presses of one button closer than this in time and space add to the click count.
    double_click_s: float = 0.4
    double_click_px: int = 4
    #: A release this far (px) from its press makes a drag.
    drag_px: int = 5
    #: A wheel run ends after this pause, or when the pointer moves this far.
    scroll_gap_s: float = 0.5
    scroll_px: int = 8
    #: Presses of the same key this close together are one ``key`` step with a count.
    key_repeat_s: float = 0.5
    #: Idle time inside an episode that becomes a ``wait`` step.
    wait_s: float = 3.0
    #: A focus change this soon after an alt+tab or a click is credited to it.
    switch_s: float = 1.5
    #: A popup mapped this soon after a click was opened by it.
    popup_s: float = 1.0
    #: A pointer still for this long has come to rest (submenu hover).
    rest_s: float = 0.05
    #: Points kept of the pointer path before an action, and of a drag's path.
    path_points: int = 64
    drag_points: int = 32


@dataclass(slots=True)
class Action:
    """One canonical action in screen pixels, with where it came from."""

    type: str
    t_start: int
    t_end: int
    seq_start: int
    seq_end: int
    fields: dict[str, Any]
    skills: list[str] = field(default_factory=list)
    app: str | None = None
    title: str | None = None
    url: str | None = None
    window: int = 0
    #: (type, [x, y, w, h]) of the popup a click chose in, for the item box (found in pixels).
    popup: tuple[str, list[int]] | None = None
    #: The chosen item as accessibility named it: {"role": ..., "name": ...}.
    item: dict[str, str] | None = None
    #: The page element the action went to, as the browser extension described it (role, name,
    #: bbox in screen pixels; no bbox for an option of a native select's popup).
    dom: dict[str, Any] | None = None
    pointer: tuple[int, int] | None = None
    path: np.ndarray | None = None  # (n, 3): x, y, t_ns
    frame: str | None = None
    frame_t: int | None = None


@dataclass
class Reduction:
    """What the reducer found in one session."""

    actions: list[Action]
    screens: list[tuple[int, int, int]]  # (seq, w, h)
    markers: list[tuple[int, int, str, str | None]]  # (t, seq, what, text)
    gaps: list[tuple[int, int, str, int]]  # (t, seq, reason, duration_ns)
    idle: list[tuple[int, int]]  # (t_from, t_to) of input silences of wait_s or more
    n_events: int
    t_first: int
    t_last: int
    timeline: list[tuple[int, str]] = field(default_factory=list)  # (t_grab, frame), sorted

    def frame_before(self, t: int) -> tuple[str, int] | None:
        """The last frame grabbed at or before ``t``: (frame, t_grab)."""
        i = bisect_right(self.timeline, (t, "\uffff")) - 1
        return (self.timeline[i][1], self.timeline[i][0]) if i >= 0 else None

    def screen_at(self, seq: int) -> tuple[int, int]:
        """Screen size in force at ``seq`` (the first one before the first SCREEN row)."""
        if not self.screens:
            return (0, 0)
        i = bisect_right([s[0] for s in self.screens], seq) - 1
        _, w, h = self.screens[max(i, 0)]
        return (w, h)


def key_name(name: str) -> str:
    """pyautogui's name of an X keysym name (``Return`` -> ``enter``, ``A`` -> ``a``)."""
    if name in _PYAUTOGUI:
        return _PYAUTOGUI[name]
    char = keysym_char(name)
    if char is not None:
        return char.lower() if char.isalpha() else char
    return name.lower()


def _mods(state: int) -> list[str]:
    out = []
    if state & MOD_CONTROL:
        out.append("ctrl")
    if state & MOD_ALT:
        out.append("alt")
    if state & MOD_SHIFT:
        out.append("shift")
    if state & MOD_SUPER:
        out.append("win")
    return out


def _col(table: pa.Table, name: str, fill: int = 0) -> np.ndarray:
    return pc.fill_null(table.column(name), fill).to_numpy()


class _Moves:
    """The session's pointer moves as arrays, for paths and positions in bulk."""

    def __init__(self, seq: np.ndarray, t: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        self.seq, self.t, self.x, self.y = seq, t, x, y

    def between(self, seq_from: int, seq_to: int) -> slice:
        """Moves with seq_from < seq < seq_to."""
        a = int(np.searchsorted(self.seq, seq_from, side="right"))
        b = int(np.searchsorted(self.seq, seq_to, side="left"))
        return slice(a, max(a, b))

    def at_time(self, t: int) -> tuple[int, int] | None:
        """Pointer position of the last move at or before time ``t``."""
        i = int(np.searchsorted(self.t, t, side="right")) - 1
        return (int(self.x[i]), int(self.y[i])) if i >= 0 else None

    def at(self, seq: int) -> tuple[int, int] | None:
        """Pointer position of the last move before ``seq``."""
        i = int(np.searchsorted(self.seq, seq, side="left")) - 1
        return (int(self.x[i]), int(self.y[i])) if i >= 0 else None


def _thin(n: int, keep: int) -> np.ndarray:
    """Indices of at most ``keep`` points of ``n``, evenly spread, always the first and last."""
    if n <= keep:
        return np.arange(n)
    return np.arange(keep) * (n - 1) // (keep - 1)  # strictly increasing as n > keep


class _Walker:
    """The single pass over non-move rows: builds atoms and the context they happened in."""

    def __init__(self, cfg: ReduceConfig, moves: _Moves) -> None:
        self.cfg = cfg
        self.moves = moves
        self.atoms: list[Action] = []
        self.focus: list[tuple[int, int, int, str, str]] = []  # (t, seq, window, app, title)
        #: (t, seq, map, type, geometry, window) of popup rows
        self.popups: list[tuple[int, int, int, str, list[int], int]] = []
        self.frames_for: dict[int, tuple[str, int]] = {}
        self.timeline: list[tuple[int, str]] = []  # (t_grab, frame)
        self.screens: list[tuple[int, int, int]] = []
        self.markers: list[tuple[int, int, str, str | None]] = []
        self.gaps: list[tuple[int, int, str, int]] = []
        self.app: str | None = None
        self.title: str | None = None
        self.urls: dict[int, str | None] = {}  # window -> the URL its page has (browsers)
        self.dom: list[tuple[int, int, dict[str, Any]]] = []  # (t, seq, event) of the extension
        self.window = 0
        self.press: Action | None = None  # a button press waiting for its release
        self.scroll: Action | None = None
        self.text: Action | None = None  # an open typed text (TEXT row or named keys)
        self.tokens: list[str] | None = None  # named typing keys (event model 1, tests)
        self.held = 0  # modifier bits from modifier key presses, for rows without state
        self.last_key: tuple[int, int] | None = None  # (code, t) of the last key press

    def _new(self, kind: str, t: int, seq: int, **fields: Any) -> Action:
        url = self.urls.get(self.window)
        a = Action(kind, t, t, seq, seq, fields, app=self.app, title=self.title, url=url)
        a.window = self.window
        self.atoms.append(a)
        return a

    def _close_runs(self) -> None:
        self.scroll = None
        self._close_text()

    def _close_text(self) -> None:
        if self.tokens is not None and self.text is not None:
            self.text.fields["text"] = apply_edits(self.tokens)
            if not self.text.fields["text"]:
                self.atoms.remove(self.text)
        self.tokens = None
        self.text = None

    def _finish_press(self, t: int, seq: int, x: int, y: int) -> None:
        a = self.press
        self.press = None
        if a is None:
            return
        a.t_end, a.seq_end = t, seq
        a.fields["x1"], a.fields["y1"] = x, y

    def row(self, seq: int, t: int, kind: int, x: int, y: int, code: int, state: int,
            value: int, name: str | None, data: str | None) -> None:  # fmt: skip
        if kind == Kind.BUTTON:
            self._button(seq, t, x, y, code, state, value)
        elif kind == Kind.KEY:
            self._key(seq, t, code, state, value, name)
        elif kind == Kind.WHEEL:
            self._wheel(seq, t, x, y, code, state)
        elif kind == Kind.TEXT:
            self._close_runs()
            info = json.loads(data or "{}")
            a = self._new("type", t, seq, text=info.get("text") or "")
            if info.get("mode") == "masked":
                a.fields["masked"] = True
            a.t_end = int(info.get("t_end_ns") or t)
            self.text = a
        elif kind == Kind.FOCUS:
            info = json.loads(data or "{}")
            window = int(info.get("window") or 0)
            if window:
                self._close_runs()
                self.held = 0  # modifier releases may have gone to the window left behind
                self.window = window
                self.app, self.title = info.get("app") or "", info.get("title") or ""
                self.focus.append((t, seq, window, self.app, self.title))
        elif kind == Kind.TITLE:
            info = json.loads(data or "{}")
            if int(info.get("window") or 0) == self.window:
                self.title = info.get("title") or ""
        elif kind == Kind.POPUP:
            info = json.loads(data or "{}")
            geom = list(info.get("geometry") or [0, 0, 0, 0])
            window = int(info.get("window") or 0)
            self.popups.append((t, seq, value, str(info.get("type") or ""), geom, window))
        elif kind == Kind.SCREEN:
            self.screens.append((seq, x, y))
        elif kind == Kind.GAP:
            info = json.loads(data or "{}")
            self._close_runs()
            self.held = 0  # what happened in the gap is unknown, key releases included
            self.gaps.append((t, seq, str(info.get("reason")), int(info.get("duration_ns") or 0)))
        elif kind == Kind.MARKER:
            info = json.loads(data or "{}")
            self._close_runs()
            self.markers.append((t, seq, str(info.get("what")), info.get("text")))
        elif kind == Kind.BROWSER:
            info = json.loads(data or "{}")
            if "url" in info:
                self.urls[self.window] = info.get("url")
            if info.get("type") in ("pointer", "change"):
                self.dom.append((t, seq, info))

    def _button(self, seq: int, t: int, x: int, y: int, code: int, state: int, value: int) -> None:
        if code not in _BUTTON_NAMES:
            return
        if value:
            self._close_runs()
            if self.press is not None:  # its release was lost: it ends here, where it was
                p = self.press
                self._finish_press(p.t_start, p.seq_start, p.fields["x"], p.fields["y"])
            self.press = self._new(
                "click", t, seq, x=x, y=y, button=_BUTTON_NAMES[code], count=1,
                modifiers=_mods(state if state >= 0 else self.held),
            )  # fmt: skip
            self.press.pointer = (x, y)
        elif self.press is not None and self.press.fields["button"] == _BUTTON_NAMES[code]:
            self._finish_press(t, seq, x, y)

    def _wheel(self, seq: int, t: int, x: int, y: int, code: int, state: int) -> None:
        if code not in _WHEEL:
            return
        self._close_text()
        dx, dy = _WHEEL[code]
        s = self.scroll
        cfg = self.cfg
        if s is not None and self.atoms and self.atoms[-1] is s:
            f = s.fields
            reverses = (dx and f["dx"] * dx < 0) or (dy and f["dy"] * dy < 0)
            far = abs(x - f["x"]) > cfg.scroll_px or abs(y - f["y"]) > cfg.scroll_px
            if not reverses and not far and t - s.t_end <= cfg.scroll_gap_s * 1e9:
                f["dx"] += dx
                f["dy"] += dy
                s.t_end, s.seq_end = t, seq
                return
        mods = _mods(state if state >= 0 else self.held)
        self.scroll = self._new("scroll", t, seq, x=x, y=y, dx=dx, dy=dy, modifiers=mods)
        self.scroll.pointer = (x, y)

    def _key(self, seq: int, t: int, code: int, state: int, value: int, name: str | None) -> None:
        bit = _MODIFIER_KEYS.get(name)
        if bit is not None:
            self.held = self.held | bit if value else self.held & ~bit
            return
        if not value:
            return
        mods = state if state >= 0 else self.held
        # a BackSpace inside a TEXT row's span was applied by the recorder already
        t_open = self.text
        if name == BACKSPACE and t_open is not None and self.tokens is None and t <= t_open.t_end:
            t_open.seq_end = seq
            return
        char = keysym_char(name) if not mods & (MOD_CONTROL | MOD_ALT | MOD_SUPER) else None
        if char is not None or (name == BACKSPACE and self.tokens is not None):
            if self.tokens is None:
                self._close_runs()
                self.text = self._new("type", t, seq, text="")
                self.tokens = []
            assert self.text is not None
            self.tokens.append(char if char is not None else BACKSPACE)
            self.text.t_end, self.text.seq_end = t, seq
            return
        self._close_runs()
        keys = [*_mods(mods), key_name(name)]
        if name == "ISO_Left_Tab" and "shift" not in keys:  # shift+tab arrives as its own keysym
            keys.insert(len(keys) - 1, "shift")
        last = self.atoms[-1] if self.atoms else None
        if (
            last is not None
            and last.type == "key"
            and last.fields["keys"] == keys
            and t - last.t_end <= self.cfg.key_repeat_s * 1e9  # auto-repeat is ~30 ms apart
        ):
            last.fields["count"] = last.fields.get("count", 1) + 1
            last.t_end, last.seq_end = t, seq
            return
        self._new("key", t, seq, keys=keys)


def _idle(t: np.ndarray, kind: np.ndarray, wait_ns: int) -> list[tuple[int, int]]:
    """Silences of ``wait_ns`` or more between input events (moves, buttons, wheel, keys)."""
    ti = t[(kind >= Kind.MOVE) & (kind <= Kind.KEY)]
    if ti.size < 2:
        return []
    # rows are in stream order, times nearly so: a running maximum stands in for a sort
    ti = np.maximum.accumulate(ti)
    d = np.diff(ti)
    where = np.nonzero(d >= wait_ns)[0]
    return [(int(ti[i]), int(ti[i + 1])) for i in where]


_FRAME_JSON = pa.schema(
    [
        ("frame", pa.string()),
        ("for_seq", pa.int64()),
        ("t_grab_ns", pa.int64()),
        ("t_verified_ns", pa.int64()),
    ]
)
_TARGET_JSON = pa.schema(
    [
        ("window", pa.int64()),
        ("app", pa.string()),
        ("popup", pa.string()),
        ("a11y", pa.struct([("role", pa.string()), ("name", pa.string())])),
    ]
)


def _json_rows(events: pa.Table, where: np.ndarray, schema: pa.Schema) -> pa.Table:
    """The ``data`` JSON of the rows at ``where``, parsed in bulk by Arrow into ``schema``."""
    import pyarrow.json as pj

    texts = events.column("data").take(pa.array(where)).to_pylist()
    body = "\n".join(t or "{}" for t in texts).encode()
    opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    return pj.read_json(pa.BufferReader(body), parse_options=opts)


def _bulk_frames(w: _Walker, events: pa.Table, kind: np.ndarray, t: np.ndarray) -> None:
    where = np.nonzero(kind == Kind.FRAME)[0]
    if not where.size:
        return
    info = _json_rows(events, where, _FRAME_JSON)
    frames = info.column("frame").to_pylist()
    grab = pc.coalesce(info.column("t_grab_ns"), pa.array(t[where])).to_pylist()
    # age: from the last moment the screen was seen to look like this
    seen = pc.coalesce(info.column("t_verified_ns"), pa.array(grab)).to_pylist()
    for frame, for_seq, g, v in zip(
        frames, info.column("for_seq").to_pylist(), grab, seen, strict=True
    ):
        if frame:
            if for_seq is not None:
                w.frames_for.setdefault(for_seq, (frame, v))
            w.timeline.append((g, frame))


def _bulk_targets(events: pa.Table, kind: np.ndarray, seq: np.ndarray) -> dict[int, dict]:
    where = np.nonzero(kind == Kind.TARGET)[0]
    if not where.size:
        return {}
    info = _json_rows(events, where, _TARGET_JSON).to_pylist()
    return dict(zip(seq[where].tolist(), info, strict=True))


def _extend_texts(atoms: list[Action], key_seq: np.ndarray, key_t: np.ndarray) -> None:
    """A TEXT row's action spans its nameless key rows, up to the next action."""
    if not key_seq.size:
        return
    for i, a in enumerate(atoms):
        if a.type != "type":
            continue
        limit = atoms[i + 1].seq_start if i + 1 < len(atoms) else 1 << 62
        j = int(np.searchsorted(key_seq, limit, side="left")) - 1
        if j >= 0 and key_seq[j] > a.seq_start:
            a.seq_end = max(a.seq_end, int(key_seq[j]))
            a.t_end = max(a.t_end, int(key_t[j]))


def reduce_events(
    events: pa.Table, screen: tuple[int, int] = (0, 0), config: ReduceConfig | None = None
) -> Reduction:
    """Reduce one session's raw events (EVENT_SCHEMA, in seq order) to actions."""
    cfg = config or ReduceConfig()
    n = events.num_rows
    kind = _col(events, "kind")
    seq = _col(events, "seq")
    t = _col(events, "t_ns")
    is_move = kind == Kind.MOVE
    mi = np.nonzero(is_move)[0]
    x_all = _col(events, "x")
    y_all = _col(events, "y")
    moves = _Moves(seq[mi], t[mi], x_all[mi], y_all[mi])
    walker = _Walker(cfg, moves)
    if screen != (0, 0):
        walker.screens.append((-1, *screen))
    # frames and targets (a fifth of the other rows) are read in bulk, not in the loop
    _bulk_frames(walker, events, kind, t)
    targets = _bulk_targets(events, kind, seq)
    # ... and so are the nameless key rows of typed text (event model 2): its TEXT row has it all
    nameless = pc.is_null(events.column("name")).to_numpy(zero_copy_only=False)
    typing = (kind == Kind.KEY) & nameless
    oi = np.nonzero(~is_move & (kind != Kind.FRAME) & (kind != Kind.TARGET) & ~typing)[0]
    other = events.take(pa.array(oi))
    cols = [
        seq[oi].tolist(),
        t[oi].tolist(),
        kind[oi].tolist(),
        x_all[oi].tolist(),
        y_all[oi].tolist(),
        _col(other, "code").tolist(),
        _col(other, "state", -1).tolist(),  # -1: not known (0 means no modifier held)
        _col(other, "value").tolist(),
        other.column("name").to_pylist(),
        other.column("data").to_pylist(),
    ]
    row = walker.row
    for args in zip(*cols, strict=True):
        row(*args)
    walker._close_runs()
    if walker.press is not None:  # released after the session ended: a click where it was
        p = walker.press
        walker._finish_press(p.t_start, p.seq_start, p.fields["x"], p.fields["y"])
    _extend_texts(walker.atoms, seq[typing], t[typing])
    if targets:
        for a in walker.atoms:
            if a.type == "click":
                s = a.seq_start
                hit = targets.get(s + 1) or targets.get(s + 2) or targets.get(s + 3)
                if hit is not None:
                    a.fields["_target"] = hit
    actions = _merge(walker, cfg)
    if walker.dom:
        _attach_dom(actions, walker.dom)
    _attach_paths(actions, moves, cfg)
    _pair_frames(actions, walker)
    idle = _idle(t, kind, int(cfg.wait_s * 1e9))
    return Reduction(
        actions=actions,
        screens=walker.screens,
        markers=walker.markers,
        gaps=walker.gaps,
        idle=idle,
        n_events=n,
        t_first=int(t.min()) if n else 0,
        t_last=int(t.max()) if n else 0,
        timeline=sorted(walker.timeline),
    )


def _merge(w: _Walker, cfg: ReduceConfig) -> list[Action]:
    """Second pass: drags, multi-clicks, app switches, dropdowns and menus, submenu hovers."""
    atoms = w.atoms
    moves = w.moves
    # drags: the release is far from the press (a release outside the screen is clamped)
    screen_seqs = [s[0] for s in w.screens]
    for a in atoms:
        if a.type != "click":
            continue
        i = bisect_right(screen_seqs, a.seq_start) - 1
        width, height = (w.screens[max(i, 0)][1], w.screens[max(i, 0)][2]) if w.screens else (0, 0)
        f = a.fields
        x1, y1 = f.pop("x1", f["x"]), f.pop("y1", f["y"])
        if width and height:
            x1, y1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
        if max(abs(x1 - f["x"]), abs(y1 - f["y"])) > cfg.drag_px:
            sl = moves.between(a.seq_start, a.seq_end)
            px, py = moves.x[sl], moves.y[sl]
            if width and height:
                px, py = np.clip(px, 0, width - 1), np.clip(py, 0, height - 1)
            pts = np.column_stack([px, py]) if px.size else np.zeros((0, 2), np.int64)
            pts = np.vstack([[f["x"], f["y"]], pts, [x1, y1]])
            pts = pts[_thin(len(pts), cfg.drag_points)]
            a.type = "drag"
            a.fields = {
                "path": pts.astype(int).tolist(),
                "button": f["button"],
                "modifiers": f["modifiers"],
                **({"_target": f["_target"]} if "_target" in f else {}),
            }
    # multi-clicks: same button, close in time and space, nothing in between
    out: list[Action] = []
    chain_first: Action | None = None
    for a in atoms:
        prev = out[-1] if out else None
        if (
            a.type == "click"
            and prev is not None
            and prev.type == "click"
            and chain_first is not None
            and prev.fields["button"] == a.fields["button"]
            and prev.fields["count"] < 3
            and a.t_start - prev.t_start <= cfg.double_click_s * 1e9 * prev.fields["count"]
            and a.t_start - prev.t_end <= cfg.double_click_s * 1e9
            and abs(a.fields["x"] - chain_first.fields["x"]) <= cfg.double_click_px
            and abs(a.fields["y"] - chain_first.fields["y"]) <= cfg.double_click_px
        ):
            prev.fields["count"] += 1
            prev.t_end, prev.seq_end = a.t_end, a.seq_end
            continue
        chain_first = a if a.type == "click" else None
        out.append(a)
    _switches(out, w, cfg)
    _popups(out, w, cfg)
    for a in out:
        target = a.fields.pop("_target", None)
        if a.type in ("click", "drag") and target:
            a.window = int(target.get("window") or a.window)
        if a.type == "key" and any(k in ("ctrl", "alt", "win") for k in a.fields["keys"][:-1]):
            a.skills.append("shortcut")
        elif a.type == "drag":
            a.skills.append("drag")
        elif a.type == "scroll":
            a.skills.append("scroll")
        elif a.type == "type":
            a.skills.append("typing")
    out.sort(key=lambda a: (a.seq_start, a.t_start))
    return out


def _switches(out: list[Action], w: _Walker, cfg: ReduceConfig) -> None:
    """A change of the active app is a ``switch_app``: by keys, by a click, or from outside."""
    window_ns = int(cfg.switch_s * 1e9)
    prev_app: str | None = None
    inputs = sorted((a for a in out if a.type in ("key", "click")), key=lambda a: a.t_start)
    starts = [a.t_start for a in inputs]
    for t, seq, window, app, title in w.focus:
        if prev_app is None or app == prev_app:
            prev_app = app
            continue
        prev_app = app
        # the focus change and the input that caused it come on two X connections: by time
        i = bisect_right(starts, t + _SKEW_NS) - 1
        last = inputs[i] if i >= 0 else None
        if last is not None and last.type == "key" and t - last.t_start <= window_ns:
            keys = last.fields["keys"]
            if any(k in ("alt", "win", "ctrl") for k in keys[:-1]):
                last.type = "switch_app"
                last.fields = {"app": app, "via": "keys", "keys": keys}
                last.app, last.title, last.window = app, title, window
                last.skills.append("app_switch")
                continue
        if last is not None and last.type == "click" and t - last.t_start <= window_ns:
            target = last.fields.get("_target") or {}
            if int(target.get("window") or 0) == window or target.get("app") == app:
                f = last.fields
                if f["count"] == 1 and not f["modifiers"]:
                    last.type = "switch_app"
                    last.fields = {
                        "app": app, "via": "click", "x": f["x"], "y": f["y"],
                        "button": f["button"], "_target": target,
                    }  # fmt: skip
                last.app, last.title, last.window = app, title, window
                last.skills.append("app_switch")
                continue
        a = Action("switch_app", t, t, seq, seq, {"app": app, "via": "launcher"})
        a.app, a.title, a.window = app, title, window
        a.pointer = w.moves.at(seq)
        a.skills.append("app_switch")
        out.append(a)
    out.sort(key=lambda a: (a.seq_start, a.t_start))


def _popups(out: list[Action], w: _Walker, cfg: ReduceConfig) -> None:
    """Clicks that open dropdowns and menus, choices inside them, and hovers that open submenus."""
    popup_ns = int(cfg.popup_s * 1e9)
    clicks = sorted(
        (a for a in out if a.type in ("click", "switch_app") and "x" in a.fields),
        key=lambda a: a.t_start,
    )
    times = [a.t_start for a in clicks]
    used: set[int] = set()
    hovers: list[Action] = []
    keyboard = [a for a in out if a.type in ("key", "switch_app", "type")]
    keys = sorted([a.t_start for a in keyboard] + [a.t_end for a in keyboard if a.type == "type"])
    by_window: dict[int, list[tuple[int, int, list[int]]]] = {}
    for pt, _s, mapped, _ptype, geom, pw in sorted(w.popups):
        by_window.setdefault(pw, []).append((pt, mapped, geom))
    is_open: dict[int, tuple[str, list[int]]] = {}  # window -> (type, geometry) of open popups
    for t, seq, mapped, ptype, geom, window in sorted(w.popups):
        if not mapped:
            is_open.pop(window, None)
            continue
        parents = dict(is_open)
        is_open[window] = (ptype, geom)
        tag = _DROPDOWN_TYPES.get(ptype) or _MENU_TYPES.get(ptype)
        if tag is None:
            continue
        # X delivers the map and the press on different connections: match them by time
        i = bisect_right(times, t + _SKEW_NS) - 1
        opener = clicks[i] if i >= 0 else None
        if opener is not None and id(opener) not in used and t - opener.t_start <= popup_ns:
            used.add(id(opener))
            inside = (opener.fields.get("_target") or {}).get("popup")
            if not inside and tag not in opener.skills:
                opener.skills.append(tag)
            continue
        # No click opened it. A submenu opened by hovering: a menu was open under the pointer
        # and no key was pressed just before (the keyboard opens menus too, and completion
        # lists pop up while typing). The hover is where the pointer came to rest.
        k = bisect_right(keys, t + _SKEW_NS) - 1
        if tag != "menu" or (k >= 0 and t - keys[k] <= popup_ns):
            continue
        at = w.moves.at_time(t)
        if at is None or not any(
            _inside(at, g) for p, g in parents.values() if _MENU_TYPES.get(p) == "menu"
        ):
            continue
        pos = _rest(w.moves, t, geom, cfg)
        if pos is not None:
            px, py, pt, pseq = pos
            if hovers and (hovers[-1].fields["x"], hovers[-1].fields["y"]) == (px, py):
                continue
            a = Action("move", pt, pt, pseq, pseq, {"x": px, "y": py}, skills=[tag])
            a.pointer = (px, py)
            a.app, a.title, a.window = _context_at(w, seq)
            hovers.append(a)
    for a in clicks:
        inside = (a.fields.get("_target") or {}).get("popup")
        if not inside:
            continue
        tag = _DROPDOWN_TYPES.get(inside) or _MENU_TYPES.get(inside)
        if tag is None:
            continue
        if tag not in a.skills:
            a.skills.append(tag)
        geom = _open_popup(by_window, a.t_start, int(a.fields["_target"].get("window") or 0))
        if geom is not None:
            a.popup = (inside, geom)
        named = a.fields["_target"].get("a11y") or {}
        if named.get("name"):
            a.item = {"role": str(named.get("role") or ""), "name": str(named["name"])}
            if tag == "dropdown" and a.type == "click":  # the chosen value is known
                f = a.fields
                a.type = "select_option"
                a.fields = {"x": f["x"], "y": f["y"], "value": a.item["name"]}
                a.fields["_target"] = f["_target"]
    out.extend(hovers)
    out.sort(key=lambda a: (a.seq_start, a.t_start))


#: A press the extension saw is the X press of an action within this much (its clock is the
#: page's, converted on arrival).
_DOM_SKEW_NS = 400_000_000
#: A select's ``change`` follows the click that chose its option within this much.
_CHANGE_NS = 3_000_000_000


def _attach_dom(actions: list[Action], dom: list[tuple[int, int, dict[str, Any]]]) -> None:
    """Targets from the browser extension: the element a click or drag pressed on (the press
    event nearest in time whose element box holds the point); a ``change`` of a native select
    makes the click that chose it (in the select's popup) a ``select_option`` with the option's
    text, whose target is the select element; a click on an element whose role is ``option``
    (a custom listbox) is a ``select_option`` too, with that option as its target."""
    presses = sorted((t, ev) for t, _s, ev in dom if ev.get("type") == "pointer")
    times = [t for t, _ in presses]
    for a in actions:
        if a.type in ("click", "select_option", "switch_app") and "x" in a.fields:
            x, y = a.fields["x"], a.fields["y"]
        elif a.type == "drag":
            x, y = a.fields["path"][0]
        else:
            continue
        lo = bisect_right(times, a.t_start - _DOM_SKEW_NS)
        hi = bisect_right(times, a.t_start + _DOM_SKEW_NS)
        best = None
        for t, ev in presses[lo:hi]:
            box = (ev.get("target") or {}).get("bbox")
            if not box or len(box) < 4:
                continue
            inside = box[0] - 1 <= x <= box[2] + 1 and box[1] - 1 <= y <= box[3] + 1
            if inside and (best is None or abs(t - a.t_start) < abs(best[0] - a.t_start)):
                best = (t, ev)
        if best is None:
            continue
        target = best[1]["target"]
        a.dom = {k: target[k] for k in ("role", "name", "bbox", "tag") if target.get(k)}
        if a.type == "click" and target.get("role") == "option" and target.get("name"):
            a.type = "select_option"
            a.fields = {"x": x, "y": y, "value": target["name"]}
    chosen = sorted(
        (a for a in actions if a.type in ("click", "select_option") and "x" in a.fields),
        key=lambda a: a.t_start,
    )
    starts = [a.t_start for a in chosen]
    for t, _s, ev in dom:
        option = ev.get("option") or {}
        if ev.get("type") != "change" or not option.get("text"):
            continue
        i = bisect_right(starts, t + _DOM_SKEW_NS) - 1
        if i < 0 or t - chosen[i].t_start > _CHANGE_NS:
            continue
        a = chosen[i]
        on_select = (a.dom or {}).get("tag") == "select"
        if a.popup is None and a.type != "select_option" and not on_select:
            continue
        f = a.fields
        a.type = "select_option"
        a.fields = {"x": f["x"], "y": f["y"], "value": option["text"]}
        select = ev.get("target") or {}
        # the target is the select element the value was set on (as Mind2Web's SELECT has it)
        a.dom = {k: select[k] for k in ("role", "name", "bbox", "tag") if select.get(k)}


def _inside(point: tuple[int, int], geom: list[int]) -> bool:
    x, y = point
    gx, gy, gw, gh = geom
    return gx <= x < gx + gw and gy <= y < gy + gh


def _open_popup(
    by_window: dict[int, list[tuple[int, int, list[int]]]], t: int, window: int
) -> list[int] | None:
    """Geometry of the popup ``window`` as last mapped before ``t`` (its rows in time order)."""
    found = None
    for pt, mapped, geom in by_window.get(window, ()):
        if pt > t + _SKEW_NS:
            break
        if mapped:
            found = geom
    return found


def _context_at(w: _Walker, seq: int) -> tuple[str | None, str | None, int]:
    for _t, s, window, app, title in reversed(w.focus):
        if s < seq:
            return app, title, window
    return None, None, 0


def _rest(
    moves: _Moves, t_at: int, geom: list[int], cfg: ReduceConfig
) -> tuple[int, int, int, int] | None:
    """Where the pointer hovered to open a submenu mapped at ``t_at`` with ``geom``: its last
    rest (a still moment of ``rest_s``) before it entered the submenu, within ``popup_s``;
    else where it was at the map. Returns (x, y, t, seq)."""
    t = moves.t
    i = int(np.searchsorted(t, t_at, side="right")) - 1
    if i < 0:
        return None
    gx, gy, gw, gh = geom
    rest_ns = cfg.rest_s * 1e9
    until = t_at + cfg.popup_s * 1e9
    best = i
    j = i
    n = len(t)
    while j + 1 < n and t[j] <= until:
        if gx <= moves.x[j] < gx + gw and gy <= moves.y[j] < gy + gh:
            break
        if t[j + 1] - t[j] >= rest_ns:
            best = j
        j += 1
    return int(moves.x[best]), int(moves.y[best]), int(t[best]), int(moves.seq[best])


def _attach_paths(actions: list[Action], moves: _Moves, cfg: ReduceConfig) -> None:
    """Each action gets the pointer path since the previous action, and its start position."""
    if not actions:
        return
    starts = np.fromiter((a.seq_start for a in actions), np.int64, len(actions))
    ends = np.maximum.accumulate(np.fromiter((a.seq_end for a in actions), np.int64, len(actions)))
    prev_end = np.concatenate([[-1], ends[:-1]])
    lo = np.searchsorted(moves.seq, prev_end, side="right")
    hi = np.maximum(lo, np.searchsorted(moves.seq, starts, side="left"))
    keep = cfg.path_points
    mx, my, mt = moves.x, moves.y, moves.t
    for a, a_lo, a_hi in zip(actions, lo.tolist(), hi.tolist(), strict=True):
        n = a_hi - a_lo
        if n:
            idx = _thin(n, keep) + a_lo
            path = np.empty((len(idx), 3), np.int64)
            path[:, 0], path[:, 1], path[:, 2] = mx[idx], my[idx], mt[idx]
            path[:, 2] -= a.t_start
            a.path = path
            if a.pointer is None:
                a.pointer = (int(mx[a_hi - 1]), int(my[a_hi - 1]))
        elif a.pointer is None:
            a.pointer = moves.at(a.seq_start)


def _pair_frames(actions: list[Action], w: _Walker) -> None:
    """The frame the recorder grabbed for the action's first raw event; else the last frame
    grabbed before the action began."""
    timeline = sorted(w.timeline)
    grabs = [g for g, _ in timeline]
    for a in actions:
        hit = None
        # a TEXT row comes just before its first key, which the frame was requested for
        for s in range(a.seq_start, a.seq_start + (3 if a.type == "type" else 1)):
            hit = w.frames_for.get(s)
            if hit is not None:
                break
        if hit is None and timeline:
            i = bisect_right(grabs, a.t_start) - 1
            if i >= 0:
                hit = (timeline[i][1], timeline[i][0])
        if hit is not None:
            a.frame, a.frame_t = hit


def _norm(v: float, size: int) -> float:
    return round(v / size, 6) if size else 0.0


def canonical(a: Action, w: int, h: int, target_bbox: list[int] | None = None) -> dict[str, Any]:
    """The action's canonical JSON (docs/dataset.md): coordinates as fractions of w x h."""
    f = a.fields
    out: dict[str, Any] = {"type": a.type}
    if a.type == "click":
        out |= {"x": _norm(f["x"], w), "y": _norm(f["y"], h), "button": f["button"]}
        out |= {"count": f["count"], "modifiers": f["modifiers"]}
    elif a.type == "drag":
        out["path"] = [[_norm(x, w), _norm(y, h)] for x, y in f["path"]]
        out |= {"button": f["button"], "modifiers": f["modifiers"]}
    elif a.type == "scroll":
        out |= {"x": _norm(f["x"], w), "y": _norm(f["y"], h), "dx": f["dx"], "dy": f["dy"]}
        out["modifiers"] = f["modifiers"]
    elif a.type == "type":
        out["text"] = f["text"]
        if f.get("masked"):
            out["masked"] = True
    elif a.type == "key":
        out["keys"] = f["keys"]
        if f.get("count", 1) > 1:
            out["count"] = f["count"]
    elif a.type == "switch_app":
        out |= {"app": f["app"], "via": f["via"]}
        if f["via"] == "keys":
            out["keys"] = f["keys"]
        elif f["via"] == "click":
            out |= {"x": _norm(f["x"], w), "y": _norm(f["y"], h), "button": f["button"]}
    elif a.type == "wait":
        out["seconds"] = f["seconds"]
    elif a.type in ("move", "select_option"):
        out |= {"x": _norm(f["x"], w), "y": _norm(f["y"], h)}
        if a.type == "select_option":
            out["value"] = f["value"]
    if a.dom is not None and a.dom.get("role"):
        target = {"role": a.dom["role"]}
        if a.dom.get("name"):
            target["name"] = a.dom["name"]
        box = a.dom.get("bbox")
        if box and len(box) >= 4:
            target["bbox"] = [
                _norm(box[0], w),
                _norm(box[1], h),
                _norm(box[2], w),
                _norm(box[3], h),
            ]
        target["source"] = "dom"
        out["target"] = target
    elif target_bbox is not None or a.item is not None:
        default_role = "menu item" if a.popup and a.popup[0] != "COMBO" else "option"
        target: dict[str, Any] = {"role": (a.item or {}).get("role") or default_role}
        if a.item is not None:
            target["name"] = a.item["name"]
        if target_bbox is not None:
            x0, y0, x1, y1 = target_bbox
            target["bbox"] = [_norm(x0, w), _norm(y0, h), _norm(x1, w), _norm(y1, h)]
        target["source"] = "atspi" if a.item is not None else "pixels"
        out["target"] = target
    return out

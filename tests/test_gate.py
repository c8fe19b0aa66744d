"""The privacy gate on synthetic streams: what it keeps, strips, redacts, drops and records as gaps.

These are unit tests of one piece; the end-to-end proof on a real desktop is in
test_privacy_e2e.py.
"""

from __future__ import annotations

import json

from demotrace.model import MOD_ALT, MOD_CONTROL, MOD_SHIFT, Kind, Row
from demotrace.privacy.gate import SEQUENCE_IDLE_NS, Gate
from demotrace.privacy.policy import parse_policy
from demotrace.privacy.scope import Layout, TopWindow

POLICY = """
format = 1
revision = 1
name = "t"
purpose = "tests"
organisation = "o"
contact = "c"
who_sees = "w"
[[apps]]
name = "Editor"
class = ["Editor"]
keystrokes = "text"
[[apps]]
name = "Sheet"
class = ["Sheet"]
keystrokes = "masked"
[[apps]]
name = "Chat"
class = ["Chat"]
keystrokes = "keys"
[[apps]]
name = "Terminal"
class = ["XTerm"]
keystrokes = "text"
[controls]
hotkey = "ctrl+alt+p"
"""

WINDOWS = {"Editor": 11, "Sheet": 12, "Chat": 13, "XTerm": 14, "Other": 15, "KeePassXC": 16}
# name -> keysym names for the characters used below
_NAMES = {" ": "space", "-": "minus", "!": "exclam", ".": "period", "@": "at", "_": "underscore"}


class Harness:
    def __init__(self, secret_field=None) -> None:
        self.policy = parse_policy(POLICY)
        self.rows: list[tuple[int, Row]] = []
        self.n = 0
        self.t = 1_000_000_000
        self.gate = Gate(
            self.policy,
            self.rows.extend,
            self._next,
            hotkey=("p", MOD_CONTROL | MOD_ALT),
            secret_field=secret_field,
        )
        layout = [
            TopWindow(100 + i, wid, app, app.lower(), app, (i * 100, 0, i * 100 + 100, 100))
            for i, (app, wid) in enumerate(WINDOWS.items())
        ]
        self.gate.set_layout(Layout(1, tuple(layout), (1000, 100)))

    def _next(self) -> int:
        self.n += 1
        return self.n

    def tick(self, ns: int = 10_000_000) -> int:
        self.t += ns
        return self.t

    def focus(self, app: str, title: str | None = None) -> None:
        data = {"window": WINDOWS[app], "app": app, "instance": app.lower(), "title": title or app}
        self.gate.feed([Row(self.tick(), None, Kind.FOCUS, data=json.dumps(data))])

    def key(self, name: str, state: int = 0) -> None:
        code = 10 + len(name)
        self.gate.feed([Row(self.tick(), 1, Kind.KEY, 5, 5, code, state, 1, name)])
        self.gate.feed([Row(self.tick(), 1, Kind.KEY, 5, 5, code, state, 0, name)])

    def type(self, text: str) -> None:
        for ch in text:
            if ch == "\b":
                self.key("BackSpace")
            else:
                name = _NAMES.get(ch, ch)
                self.key(name, MOD_SHIFT if ch.isupper() else 0)

    def click(self, x: int, y: int) -> None:
        self.gate.feed([Row(self.tick(), 1, Kind.BUTTON, x, y, 1, 0, 1)])
        self.gate.feed([Row(self.tick(), 1, Kind.BUTTON, x, y, 1, 0, 0)])

    def move(self, x: int, y: int) -> None:
        self.gate.feed([(self.tick(), 1, Kind.MOVE, x, y)])  # type: ignore[list-item]

    def finish(self) -> list[Row]:
        self.gate.flush(self.tick())
        return [row for _seq, row in sorted(self.rows, key=lambda item: item[0])]


def kinds(rows: list[Row], kind: Kind) -> list[Row]:
    return [r for r in rows if r[2] == kind]


def data(row: Row) -> dict:
    return json.loads(row.data or "{}")


def test_typed_text_becomes_one_redacted_text_row_and_keys_lose_their_content() -> None:
    h = Harness()
    h.focus("Editor")
    card = "4111 1111 1111 1111"
    h.type("pay 4111 1112\b1 1111 1111 now")
    h.key("Return")
    rows = h.finish()
    texts = kinds(rows, Kind.TEXT)
    assert len(texts) == 1
    assert data(texts[0])["text"] == "pay <CARD> now"
    assert data(texts[0])["keys"] == len("pay 4111 11121 1111 1111 now")
    keys = kinds(rows, Kind.KEY)
    named = [r.name for r in keys if r.name]
    assert named == ["BackSpace", "BackSpace", "Return", "Return"]
    assert all(r.code is None for r in keys if r.name is None)
    blob = json.dumps([list(r) for r in rows])
    assert card not in blob and card.replace(" ", "") not in blob
    # the text row sits where the typing started, before the Return
    order = [r[2] for r in rows if r[2] in (Kind.TEXT, Kind.KEY)]
    assert order[0] == Kind.TEXT


def test_masked_and_keys_modes() -> None:
    h = Harness()
    h.focus("Sheet")
    h.type("Ab 12!")
    h.key("Tab")
    h.focus("Chat")
    h.type("hello")
    h.key("c", MOD_CONTROL)
    rows = h.finish()
    texts = kinds(rows, Kind.TEXT)
    assert [data(t)["text"] for t in texts] == ["aa 99."]
    chat_keys = [r for r in kinds(rows, Kind.KEY) if r.t_ns > kinds(rows, Kind.FOCUS)[1].t_ns]
    assert [r.name for r in chat_keys] == ["c", "c"]  # only the shortcut; typing dropped


def test_secret_field_drops_every_key_and_leaves_a_gap() -> None:
    spans: list[tuple[int, int]] = []

    def secret_field(t0: int, t1: int) -> bool:
        return any(a <= t1 and t0 <= b for a, b in spans)

    h = Harness(secret_field)
    h.focus("Editor")
    h.type("user")
    h.click(50, 50)
    start = h.t
    h.type("Hunter2hunter")
    spans.append((start, h.t))
    h.click(50, 60)
    h.type("ok")
    rows = h.finish()
    assert [data(t)["text"] for t in kinds(rows, Kind.TEXT)] == ["user", "ok"]
    gaps = [data(g) for g in kinds(rows, Kind.GAP)]
    assert [g["reason"] for g in gaps] == ["secret"]
    assert gaps[0]["duration_ns"] > 0
    n_keys = len(kinds(rows, Kind.KEY))
    assert n_keys == 2 * (len("user") + len("ok"))


def test_secure_prompt_window_is_secret() -> None:
    h = Harness()
    h.focus("Editor", title="Unlock database - KeePassXC")
    h.type("masterpw")
    rows = h.finish()
    assert not kinds(rows, Kind.KEY) and not kinds(rows, Kind.TEXT)
    assert [data(g)["reason"] for g in kinds(rows, Kind.GAP)] == ["secret"]


def test_terminal_line_after_sudo_is_secret() -> None:
    h = Harness()
    h.focus("XTerm")
    h.type("sudo apt update")
    h.key("Return")
    h.type("s3cretpass")
    h.key("Return")
    h.type("ls")
    h.key("Return")
    rows = h.finish()
    assert [data(t)["text"] for t in kinds(rows, Kind.TEXT)] == ["sudo apt update", "ls"]
    assert [data(g)["reason"] for g in kinds(rows, Kind.GAP)] == ["secret"]
    assert "s3cretpass" not in json.dumps([list(r) for r in rows])


def test_out_of_scope_window_leaves_only_a_gap() -> None:
    h = Harness()
    h.focus("Editor")
    h.move(50, 50)
    h.focus("Other", title="Private mail")
    h.type("private words")
    h.click(450, 50)
    h.move(460, 50)
    h.focus("Editor")
    h.move(60, 50)
    rows = h.finish()
    focus = [data(f)["app"] for f in kinds(rows, Kind.FOCUS)]
    assert focus == ["Editor", "Editor"]
    assert [data(g)["reason"] for g in kinds(rows, Kind.GAP)] == ["out_of_scope"]
    assert not kinds(rows, Kind.KEY) and not kinds(rows, Kind.BUTTON)
    assert "Private" not in json.dumps([list(r) for r in rows])
    assert len([r for r in rows if r[2] == Kind.MOVE]) == 2


def test_pointer_over_out_of_scope_window_is_dropped_even_when_active_is_in_scope() -> None:
    h = Harness()
    h.focus("Editor")
    h.move(50, 50)
    h.move(450, 50)  # over "Other"
    h.move(455, 50)
    h.move(60, 50)
    rows = h.finish()
    assert [(r[3], r[4]) for r in rows if r[2] == Kind.MOVE] == [(50, 50), (60, 50)]
    assert [data(g)["reason"] for g in kinds(rows, Kind.GAP)] == ["out_of_scope"]


def test_pause_drops_everything_and_the_hotkey_is_never_recorded() -> None:
    h = Harness()
    h.focus("Editor")
    h.type("a")
    h.key("p", MOD_CONTROL | MOD_ALT)
    h.gate.set_paused(True, h.tick())
    assert h.gate.state() == "paused"
    h.type("during pause")
    h.click(50, 50)
    h.gate.set_paused(False, h.tick())
    h.type("b")
    rows = h.finish()
    assert [data(t)["text"] for t in kinds(rows, Kind.TEXT)] == ["a", "b"]
    assert [data(g)["reason"] for g in kinds(rows, Kind.GAP)] == ["paused"]
    assert not [r for r in kinds(rows, Kind.KEY) if r.name == "p"]
    assert not kinds(rows, Kind.BUTTON)


def test_idle_closes_a_sequence_and_titles_are_redacted() -> None:
    h = Harness()
    h.focus("Editor", title="Reply to jane.doe@example.com")
    h.type("abc")
    h.gate.tick(h.t + SEQUENCE_IDLE_NS + 1)
    assert [data(t)["text"] for t in kinds([r for _s, r in h.rows], Kind.TEXT)] == ["abc"]
    rows = h.finish()
    assert "jane.doe" not in json.dumps([list(r) for r in rows])
    assert data(kinds(rows, Kind.FOCUS)[0])["title"] == "Reply to <EMAIL>"


def test_sequence_numbers_follow_time_order() -> None:
    h = Harness()
    h.focus("Editor")
    h.move(10, 10)
    h.type("hi")
    h.move(20, 10)
    h.key("Return")
    h.focus("Other")
    h.type("x")
    h.focus("Editor")
    rows = sorted(h.rows, key=lambda item: item[0])
    times = [r[0] for _s, r in rows]
    assert times == sorted(times)
    assert len({s for s, _r in h.rows}) == len(h.rows)


def test_outside_working_hours_nothing_passes() -> None:
    h = Harness()
    h.focus("Editor")
    h.gate.set_outside_hours(True, h.tick())
    assert h.gate.state() == "out_of_scope"
    h.type("late work")
    h.move(50, 50)
    h.gate.set_outside_hours(False, h.tick())
    h.type("ok")
    rows = h.finish()
    assert [data(t)["text"] for t in kinds(rows, Kind.TEXT)] == ["ok"]
    assert [data(g)["reason"] for g in kinds(rows, Kind.GAP)] == ["hours"]
    assert not [r for r in rows if r[2] == Kind.MOVE]


def test_hotkey_release_after_its_modifiers_and_other_chords() -> None:
    """The hotkey's key is dropped on release too, even once ctrl and alt are up; the same key
    with one more modifier is not the hotkey (the grab does not take it: the app gets it)."""
    h = Harness()
    h.focus("Editor")
    code = 10 + len("p")
    for state, press, name in (
        (0, 1, "Control_L"),
        (MOD_CONTROL, 1, "Alt_L"),
        (MOD_CONTROL | MOD_ALT, 1, "p"),
        (MOD_CONTROL | MOD_ALT, 0, "Alt_L"),
        (MOD_CONTROL, 0, "Control_L"),
        (0, 0, "p"),  # released last, with no modifier held
    ):
        key = code if name == "p" else 50 + len(name)
        h.gate.feed([Row(h.tick(), 1, Kind.KEY, 5, 5, key, state, press, name)])
    h.key("P", MOD_CONTROL | MOD_ALT | MOD_SHIFT)
    rows = h.finish()
    assert [(r.name, r.value) for r in kinds(rows, Kind.KEY) if r.name in ("p", "P")] == [
        ("P", 1),
        ("P", 0),
    ]


def test_a_click_is_judged_by_the_windows_of_its_time() -> None:
    """The gate can see a click after the layout it changed (the recorder reads input and
    windows apart): a click that opened an Other-app popup over the Editor, and a click on an
    Other-app dialog that closed it, are judged by the windows they were made on."""
    h = Harness()
    h.focus("Editor")
    editor = TopWindow(100, WINDOWS["Editor"], "Editor", "editor", "Editor", (0, 0, 100, 100))
    other = TopWindow(104, WINDOWS["Other"], "Other", "other", "Other", (0, 0, 100, 100))
    t0 = h.tick()
    h.gate.set_layout(Layout(2, (editor,), (1000, 100)), t0)
    # a click at t1 on the Editor, and a window of Other mapped over it at t2 (a layout the gate
    # learns before it sees the click)
    t1, t2 = h.tick(), h.tick()
    h.gate.set_layout(Layout(3, (editor, other), (1000, 100)), t2)
    h.gate.feed(
        [Row(t1, 1, Kind.BUTTON, 50, 50, 1, 0, 1), Row(t1 + 1, 1, Kind.BUTTON, 50, 50, 1, 0, 0)]
    )
    # a click at t3 on the Other window, which then goes away (t4)
    t3, t4 = h.tick(), h.tick()
    h.gate.set_layout(Layout(4, (editor,), (1000, 100)), t4)
    h.gate.feed(
        [Row(t3, 1, Kind.BUTTON, 60, 60, 1, 0, 1), Row(t3 + 1, 1, Kind.BUTTON, 60, 60, 1, 0, 0)]
    )
    # and a click after that, on the Editor again
    t5 = h.tick()
    h.gate.feed([Row(t5, 1, Kind.BUTTON, 70, 70, 1, 0, 1)])
    rows = h.finish()
    presses = [(r.x, r.y) for r in kinds(rows, Kind.BUTTON) if r.value]
    assert presses == [(50, 50), (70, 70)]
    gaps = [data(r) for r in kinds(rows, Kind.GAP)]
    assert [g["reason"] for g in gaps] == ["out_of_scope"]


def test_without_a_time_a_layout_holds_for_every_row() -> None:
    h = Harness()
    h.focus("Editor")
    other = TopWindow(104, WINDOWS["Other"], "Other", "other", "Other", (0, 0, 100, 100))
    h.gate.set_layout(Layout(2, (other,), (1000, 100)))
    h.gate.feed([Row(5, 1, Kind.BUTTON, 50, 50, 1, 0, 1)])  # older than anything: still judged
    rows = h.finish()
    assert not [r for r in kinds(rows, Kind.BUTTON)]
    assert [data(r)["reason"] for r in kinds(rows, Kind.GAP)] == ["out_of_scope"]


def _popup_row(t: int, window: int, own_class: str, opener: int, rect: tuple) -> Row:
    x0, y0, x1, y1 = rect
    info = {
        "window": window,
        "type": "TOOLTIP",
        "geometry": [x0, y0, x1 - x0, y1 - y0],
        "app": "Editor",
        "opener": opener,
        "own_class": own_class,
    }
    return Row(t, None, Kind.POPUP, value=1, data=json.dumps(info))


def test_a_popup_naming_a_background_app_belongs_to_it() -> None:
    """A tooltip that an out-of-scope app in the background shows (its WM_CLASS names that app)
    while an in-scope app is active: not stored, its pixels not shown, clicks on it dropped.
    A popup whose class names no app (Tk's "Menu") stays with the active window."""
    h = Harness()
    h.focus("Editor")
    editor = TopWindow(100, WINDOWS["Editor"], "Editor", "editor", "Editor", (0, 0, 100, 100))
    other = TopWindow(104, WINDOWS["Other"], "Other", "other", "Other", (100, 0, 200, 100))
    tip = TopWindow(900, 0, "Other", "", "", (120, 10, 180, 30), popup=True, opener=editor.client)
    menu = TopWindow(901, 0, "Menu", "", "", (10, 10, 60, 90), popup=True, opener=editor.client)
    layout = Layout(2, (editor, other, tip, menu), (1000, 100))
    h.gate.set_layout(layout)
    scope = h.gate.scope
    assert scope.window_rule(layout, tip) is None
    assert scope.window_rule(layout, menu) is not None
    mask = scope.mask(layout, 200, 100)
    assert not mask[10:30, 120:180].any() and mask[10:90, 10:60].all()
    h.gate.feed([_popup_row(h.tick(), 900, "Other", editor.client, tip.rect)])
    h.gate.feed([_popup_row(h.tick(), 901, "Menu", editor.client, menu.rect)])
    h.click(150, 20)  # on the tooltip
    h.click(30, 50)  # on the menu
    rows = h.finish()
    assert [data(r)["window"] for r in kinds(rows, Kind.POPUP)] == [901]
    assert [(r.x, r.y) for r in kinds(rows, Kind.BUTTON) if r.value] == [(30, 50)]

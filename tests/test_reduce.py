"""Unit tests of the reducer and the episode cutter, one rule each, on hand-built event tables."""

from __future__ import annotations

import json

import pytest

from demotrace.dataset.episodes import EpisodeConfig, split_episodes
from demotrace.dataset.reduce import ReduceConfig, canonical, key_name, reduce_events
from demotrace.model import MOD_ALT, MOD_CONTROL, MOD_LOCK, MOD_SHIFT
from events_builder import Events


def actions(ev: Events, **cfg: object) -> list[tuple[str, dict]]:
    red = reduce_events(ev.table(), config=ReduceConfig(**cfg))  # type: ignore[arg-type]
    return [(a.type, a.fields) for a in red.actions]


def only(ev: Events) -> tuple[str, dict]:
    found = actions(ev)
    assert len(found) == 1, found
    return found[0]


# -- clicks ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("button", "name"), [(1, "left"), (2, "middle"), (3, "right"), (8, "back")]
)
def test_click_buttons(button: int, name: str) -> None:
    ev = Events()
    ev.glide(300, 200)
    ev.click(button)
    kind, f = only(ev)
    assert kind == "click"
    assert (f["x"], f["y"], f["button"], f["count"], f["modifiers"]) == (300, 200, name, 1, [])


@pytest.mark.parametrize("count", [2, 3])
def test_double_and_triple_click(count: int) -> None:
    ev = Events()
    ev.move(50, 60)
    for _ in range(count):
        ev.click(after=60)
    kind, f = only(ev)
    assert (kind, f["count"]) == ("click", count)


def test_four_quick_clicks_are_a_triple_then_a_single() -> None:
    ev = Events()
    ev.move(50, 60)
    for _ in range(4):
        ev.click(after=60)
    assert [f["count"] for _k, f in actions(ev)] == [3, 1]


def test_clicks_too_slow_or_too_far_are_separate() -> None:
    ev = Events()
    ev.move(50, 60)
    ev.click()
    ev.idle(0.6)
    ev.click()  # too slow
    ev.move(60, 60, after=20)
    ev.click(after=20)  # too far (10 px)
    assert [f["count"] for _k, f in actions(ev)] == [1, 1, 1]


def test_modifiers_held_across_clicks() -> None:
    ev = Events()
    ev.key("Control_L", True)
    ev.move(100, 100)
    ev.click(state=MOD_CONTROL)
    ev.move(100, 200, after=300)
    ev.click(state=MOD_CONTROL, after=300)
    ev.key("Control_L", False, state=MOD_CONTROL)
    found = actions(ev)
    assert [k for k, _f in found] == ["click", "click"]  # the bare ctrl press is no step
    assert all(f["modifiers"] == ["ctrl"] and f["count"] == 1 for _k, f in found)


def test_press_whose_release_was_lost() -> None:
    ev = Events()
    ev.move(10, 10)
    ev.press()  # release lost
    ev.move(400, 300, after=500)
    ev.click(after=100)
    found = actions(ev)
    assert [(k, f["x"], f["y"]) for k, f in found] == [("click", 10, 10), ("click", 400, 300)]


# -- drags ----------------------------------------------------------------------------------
def test_drag_keeps_its_path() -> None:
    ev = Events()
    ev.move(100, 100)
    ev.press()
    ev.glide(200, 150, steps=20)
    ev.release()
    kind, f = only(ev)
    assert kind == "drag"
    assert f["path"][0] == [100, 100] and f["path"][-1] == [200, 150]
    assert 3 <= len(f["path"]) <= ReduceConfig().drag_points


def test_small_jitter_is_still_a_click() -> None:
    ev = Events()
    ev.move(100, 100)
    ev.press()
    ev.move(103, 101)
    ev.release()
    assert only(ev)[0] == "click"


def test_drag_that_ends_outside_the_screen_is_clamped() -> None:
    ev = Events(800, 600)
    ev.move(700, 500)
    ev.press()
    ev.glide(900, 700, steps=10)  # beyond the right and bottom edges
    ev.release()
    kind, f = only(ev)
    assert kind == "drag"
    assert f["path"][-1] == [799, 599]
    assert all(0 <= x < 800 and 0 <= y < 600 for x, y in f["path"])


# -- scrolling ------------------------------------------------------------------------------
def test_scroll_run_is_merged() -> None:
    ev = Events()
    ev.move(300, 300)
    for _ in range(4):
        ev.wheel(5)
    kind, f = only(ev)
    assert (kind, f["dx"], f["dy"], f["x"], f["y"]) == ("scroll", 0, -4, 300, 300)


def test_scroll_in_both_axes_is_one_step() -> None:
    ev = Events()
    ev.move(300, 300)
    for code in (5, 7, 5, 7, 5):
        ev.wheel(code)
    kind, f = only(ev)
    assert (kind, f["dx"], f["dy"]) == ("scroll", 2, -3)


def test_scroll_splits_on_reversal_pause_and_movement() -> None:
    ev = Events()
    ev.move(300, 300)
    ev.wheel(5)
    ev.wheel(5)
    ev.wheel(4)  # reversal
    ev.idle(1.0)
    ev.wheel(4)  # after a pause
    ev.move(340, 300)
    ev.wheel(4)  # moved away
    assert [(f["dy"], f["x"]) for _k, f in actions(ev)] == [(-2, 300), (1, 300), (1, 300), (1, 340)]


# -- typing and keys ------------------------------------------------------------------------
def test_typing_with_shift_and_corrections() -> None:
    ev = Events()
    ev.key("Shift_L", True)
    ev.tap("H", state=MOD_SHIFT)
    ev.key("Shift_L", False, state=MOD_SHIFT)
    for c in "elp":
        ev.tap(c)
    ev.tap("BackSpace")
    for c in "lo":
        ev.tap(c)
    assert only(ev) == ("type", {"text": "Hello"})


def test_shift_released_before_the_key() -> None:
    """xdotool releases shift before the key it shifted: the key is still upper case, and a
    chord keeps its shift."""
    ev = Events()
    ev.key("Shift_L", True)
    ev.key("A", True, state=MOD_SHIFT)
    ev.key("Shift_L", False, state=MOD_SHIFT)
    ev.key("A", False)
    ev.key("Control_L", True, after=300)
    ev.key("Shift_L", True, state=MOD_CONTROL)
    ev.key("T", True, state=MOD_CONTROL | MOD_SHIFT)
    ev.key("Shift_L", False, state=MOD_CONTROL | MOD_SHIFT)
    ev.key("T", False, state=MOD_CONTROL)
    ev.key("Control_L", False, state=MOD_CONTROL)
    assert actions(ev) == [("type", {"text": "A"}), ("key", {"keys": ["ctrl", "shift", "t"]})]


def test_caps_lock_and_keypad() -> None:
    ev = Events()
    ev.tap("Caps_Lock")
    ev.tap("A", state=MOD_LOCK)  # the capture resolves the level: caps lock gives "A"
    ev.tap("B", state=MOD_LOCK)
    ev.tap("Caps_Lock", state=MOD_LOCK)
    ev.tap("KP_1")
    ev.tap("KP_Add")
    ev.tap("KP_2")
    assert only(ev) == ("type", {"text": "AB1+2"})


def test_auto_repeat() -> None:
    ev = Events()
    ev.key("Down", True)
    for _ in range(4):
        ev.key("Down", True, after=33)  # auto-repeat: presses without releases
    ev.key("Down", False)
    ev.key("x", True, after=400)
    for _ in range(3):
        ev.key("x", True, after=33)
    ev.key("x", False)
    assert actions(ev) == [("key", {"keys": ["down"], "count": 5}), ("type", {"text": "xxxx"})]


def test_stale_modifier_does_not_make_a_chord() -> None:
    """A ctrl press whose release was lost: the key's own state says ctrl is up."""
    ev = Events()
    ev.key("Control_L", True)
    ev.tap("x", state=0, after=800)
    assert only(ev) == ("type", {"text": "x"})


def test_special_keys_and_chords() -> None:
    ev = Events()
    ev.chord("Control_L", "c", state_bits=(MOD_CONTROL,))
    ev.tap("Return", after=600)
    ev.tap("ISO_Left_Tab", state=MOD_SHIFT, after=600)
    ev.tap("F5", after=600)
    ev.chord("Alt_L", "F4", state_bits=(MOD_ALT,))
    red = reduce_events(ev.table())
    got = [(a.fields["keys"], a.skills) for a in red.actions]
    assert got == [
        (["ctrl", "c"], ["shortcut"]),
        (["enter"], []),
        (["shift", "tab"], []),
        (["f5"], []),
        (["alt", "f4"], ["shortcut"]),
    ]


def test_recorded_text_rows_with_backspace_inside() -> None:
    """Event model 2: the recorder stores one TEXT row; its key rows have no names, and a
    BackSpace inside the sequence was already applied."""
    ev = Events()
    ev.move(40, 40)
    ev.click()
    ev.text("report", keys=7)
    ev.tap("BackSpace", after=20)
    ev.tap("Return", after=3000)
    found = actions(ev)
    assert [k for k, _ in found] == ["click", "type", "key"]
    assert found[1][1] == {"text": "report"} and found[2][1] == {"keys": ["enter"]}


def test_masked_text_keeps_its_mode() -> None:
    ev = Events()
    ev.text("Aaaa 99", mode="masked")
    assert only(ev) == ("type", {"text": "Aaaa 99", "masked": True})


# -- app switches ---------------------------------------------------------------------------
def test_switch_by_alt_tab_by_click_and_from_outside() -> None:
    ev = Events()
    ev.focus("Editor", 1)
    ev.key("Alt_L", True, after=500)
    ev.key("Tab", True, state=MOD_ALT)
    ev.focus("XTerm", 2)
    ev.key("Tab", False, state=MOD_ALT)
    ev.key("Alt_L", False, state=MOD_ALT)
    ev.move(600, 20, after=500)
    ev.press(window=1, app="Editor")
    ev.focus("Editor", 1, after=5)
    ev.release()
    ev.focus("XTerm", 2, after=900)  # a launcher or a program raised it
    ev.focus("XTerm", 3, after=900)  # another xterm window: same app, no switch
    red = reduce_events(ev.table())
    got = [(a.type, a.fields.get("via"), a.fields.get("app"), a.skills) for a in red.actions]
    assert got == [
        ("switch_app", "keys", "XTerm", ["app_switch"]),
        ("switch_app", "click", "Editor", ["app_switch"]),
        ("switch_app", "launcher", "XTerm", ["app_switch"]),
    ]
    assert red.actions[0].fields["keys"] == ["alt", "tab"]
    assert (red.actions[1].fields["x"], red.actions[1].fields["y"]) == (600, 20)


# -- dropdowns and menus --------------------------------------------------------------------
def test_dropdown_open_and_choose() -> None:
    ev = Events()
    ev.focus("App", 1)
    ev.move(120, 100)
    ev.click(window=1, app="App")
    ev.popup(True, "COMBO", [100, 110, 150, 200])
    ev.glide(140, 180)
    chooser = ev.click(after=300, window=77, app="App", popup="COMBO")
    ev.popup(False, "COMBO", [100, 110, 150, 200])
    red = reduce_events(ev.table())
    assert [(a.type, a.skills) for a in red.actions] == [
        ("click", ["dropdown"]),
        ("click", ["dropdown"]),
    ]
    choice = red.actions[1]
    assert choice.seq_start == chooser and choice.popup == ("COMBO", [100, 110, 150, 200])


def test_menu_with_a_submenu_opened_by_hovering() -> None:
    ev = Events()
    ev.focus("App", 1)
    ev.move(20, 10)
    ev.click(window=1, app="App")
    ev.popup(True, "POPUP_MENU", [5, 20, 100, 120], window=70)
    ev.glide(40, 60)  # onto the cascade entry
    ev.popup(True, "POPUP_MENU", [105, 55, 80, 60], window=71, after=20)
    ev.idle(0.2)  # resting there while the submenu opens
    ev.glide(130, 62)  # slide into the submenu
    ev.click(after=200, window=71, app="App", popup="POPUP_MENU")
    red = reduce_events(ev.table())
    got = [(a.type, a.fields.get("x"), a.fields.get("y"), a.skills) for a in red.actions]
    assert got == [
        ("click", 20, 10, ["menu"]),
        ("move", 40, 60, ["menu"]),
        ("click", 130, 62, ["menu"]),
    ]


# -- paths and frames -----------------------------------------------------------------------
def test_pointer_path_before_an_action() -> None:
    ev = Events()
    ev.move(0, 0)
    ev.click()
    ev.glide(300, 200, steps=100)
    ev.click(after=50)
    red = reduce_events(ev.table())
    path = red.actions[1].path
    assert path is not None and len(path) == ReduceConfig().path_points
    assert tuple(path[-1][:2]) == (300, 200) and all(t < 0 for t in path[:, 2])


def test_frames_pair_with_the_first_event_or_the_last_before() -> None:
    ev = Events()
    ev.frame("aa", None)  # a keyframe
    ev.move(10, 10)
    p = ev.press()
    ev.frame("bb", p)
    ev.release()
    ev.tap("Return", after=600)  # no frame requested for it: the last one before
    red = reduce_events(ev.table())
    assert [a.frame for a in red.actions] == ["bb", "bb"]


def test_reduction_is_deterministic() -> None:
    ev = Events()
    ev.move(5, 5)
    ev.click()
    ev.text("abc")
    ev.glide(100, 100)
    ev.wheel(5)
    a = reduce_events(ev.table())
    b = reduce_events(ev.table())
    dump = [(x.type, json.dumps(x.fields), x.seq_start, x.seq_end, x.skills) for x in a.actions]
    assert dump == [
        (x.type, json.dumps(x.fields), x.seq_start, x.seq_end, x.skills) for x in b.actions
    ]


def test_canonical_coordinates_give_the_pixel_back() -> None:
    ev = Events(1366, 768)
    ev.move(0, 0)
    ev.click()
    a = reduce_events(ev.table()).actions[0]
    for px in range(1366):
        a.fields["x"] = px
        assert round(canonical(a, 1366, 768)["x"] * 1366) == px


def test_key_names() -> None:
    assert [key_name(n) for n in ("Return", "A", "exclam", "Prior", "KP_5", "F12", "U+00E9")] == [
        "enter",
        "a",
        "!",
        "pageup",
        "num5",
        "f12",
        "é",
    ]


# -- episodes -------------------------------------------------------------------------------
def _clicks_with_pauses(ev: Events, pauses: list[float]) -> None:
    ev.move(10, 10)
    ev.click()
    for p in pauses:
        ev.idle(p)
        ev.click(after=10)
        ev.move(10 + len(ev.rows) % 7, 10, after=5)


def test_waits_inside_an_episode_and_idle_splits() -> None:
    ev = Events()
    _clicks_with_pauses(ev, [1.0, 5.0, 70.0, 0.5])
    eps = split_episodes(reduce_events(ev.table()), EpisodeConfig())
    assert [[a.type for a in e.actions] for e in eps] == [
        ["click", "click", "wait", "click"],
        ["click", "click"],
    ]
    assert eps[0].actions[2].fields["seconds"] == pytest.approx(5.0, abs=0.05)
    assert (eps[0].end_reason, eps[1].start_reason) == ("idle", "idle")


def test_task_markers_make_episodes_with_instructions() -> None:
    ev = Events()
    ev.move(10, 10)
    ev.click()
    ev.marker("task_start", "File the March invoices")
    ev.move(50, 10, after=300)
    ev.click(after=100)
    ev.idle(90)  # a long pause inside a marked task does not split it
    ev.click(after=100)
    ev.marker("task_end")
    ev.move(90, 10, after=300)
    ev.click(after=100)
    eps = split_episodes(reduce_events(ev.table()))
    assert [len([a for a in e.actions if a.type == "click"]) for e in eps] == [1, 2, 1]
    assert [e.instruction for e in eps] == [None, "File the March invoices", None]
    assert eps[1].start_reason == "marker" and eps[1].end_reason == "marker"
    assert [a.type for a in eps[1].actions] == ["click", "wait", "click"]


def test_pause_and_long_scope_gaps_split_short_ones_do_not() -> None:
    ev = Events()
    ev.move(10, 10)
    ev.click()
    ev.gap("out_of_scope", 2.0)  # the pointer crossed the desktop
    ev.click(after=10)
    ev.gap("paused", 1.0)
    ev.click(after=10)
    ev.gap("out_of_scope", 30.0)
    ev.click(after=10)
    eps = split_episodes(reduce_events(ev.table()), EpisodeConfig(wait_s=100))
    assert [len(e.actions) for e in eps] == [2, 1, 1]
    assert [e.start_reason for e in eps] == ["session", "gap", "gap"]


def test_accessibility_names_the_choice() -> None:
    """With the item's accessible name, a dropdown choice is a select_option with its value and
    a menu choice a click that names its item."""
    ev = Events()
    ev.focus("App", 1)
    ev.move(120, 100)
    ev.click(window=1, app="App")
    ev.popup(True, "COMBO", [100, 110, 150, 200])
    ev.glide(140, 180)
    a11y = {"role": "menu item", "name": "Germany"}
    ev.click(after=300, window=77, app="App", popup="COMBO", a11y=a11y)
    ev.popup(False, "COMBO", [100, 110, 150, 200])
    ev.move(30, 20, after=400)
    ev.click(after=100, window=1, app="App")
    ev.popup(True, "POPUP_MENU", [20, 30, 100, 80], window=78)
    ev.glide(50, 60)
    ev.click(
        after=300,
        window=78,
        app="App",
        popup="POPUP_MENU",
        a11y={"role": "menu item", "name": "Save"},
    )
    red = reduce_events(ev.table())
    kinds = [(a.type, a.skills) for a in red.actions]
    assert kinds == [
        ("click", ["dropdown"]),
        ("select_option", ["dropdown"]),
        ("click", ["menu"]),
        ("click", ["menu"]),
    ]
    choice, save = red.actions[1], red.actions[3]
    assert choice.fields == {"x": 140, "y": 180, "value": "Germany"}
    out = canonical(choice, 800, 600, [100, 170, 250, 190])
    assert out["value"] == "Germany" and out["type"] == "select_option"
    assert out["target"] == {
        "role": "menu item",
        "name": "Germany",
        "bbox": [0.125, 0.283333, 0.3125, 0.316667],
        "source": "atspi",
    }
    assert canonical(save, 800, 600)["target"] == {
        "role": "menu item",
        "name": "Save",
        "source": "atspi",
    }


def test_review_cases_of_episodes_and_keys() -> None:
    """The last action before a long silence stays in its episode; a silence holding a gap is no
    wait; the same key pressed again after a long pause is two steps."""
    ev = Events()
    ev.move(10, 10)
    ev.click()
    ev.wheel(5, after=300)
    ev.idle(120)
    ev.click(after=10)
    eps = split_episodes(reduce_events(ev.table()))
    assert [[a.type for a in e.actions] for e in eps] == [["click", "scroll"], ["click"]]

    ev = Events()
    ev.marker("task_start", "Write the memo")
    ev.move(10, 10)
    ev.click()
    ev.gap("paused", 900)  # private time inside the task
    ev.move(20, 10, after=10)
    ev.click(after=10)
    eps = split_episodes(reduce_events(ev.table()))
    assert [a.type for a in eps[0].actions] == ["click", "click"]

    ev = Events()
    ev.key("Down", True)  # its release is lost
    ev.idle(600)
    ev.key("Down", True, after=10)
    ev.key("Down", False)
    assert actions(ev) == [("key", {"keys": ["down"]}), ("key", {"keys": ["down"]})]


def test_no_hover_step_without_a_menu_under_the_pointer() -> None:
    """A completion list that pops up while typing, or a menu opened with the keyboard, is no
    hover."""
    ev = Events()
    ev.focus("App", 1)
    ev.move(100, 100)
    ev.text("ger")
    ev.popup(True, "COMBO", [100, 120, 200, 100])  # completion list
    ev.chord("Alt_L", "f", state_bits=(MOD_ALT,))
    ev.popup(True, "POPUP_MENU", [300, 20, 100, 120], window=70)  # opened by alt+f
    ev.idle(1.5)
    ev.popup(True, "POPUP_MENU", [400, 20, 80, 120], window=71)  # the pointer is not on 70
    assert "move" not in [k for k, _f in actions(ev)]

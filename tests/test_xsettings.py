"""The desktop's double-click settings (XSETTINGS): parsing, capture, and their use in reduction."""

from __future__ import annotations

import json

import pytest

from conftest import recording
from demotrace.capture import xsettings
from demotrace.dataset.build import reduce_config
from demotrace.dataset.reduce import ReduceConfig, reduce_events
from demotrace.dataset.sources import LocalStoreSource
from events_builder import Events


@pytest.mark.parametrize("order", ["<", ">"])
def test_parse_round_trip(order: str) -> None:
    blob = xsettings.build(
        {"Net/DoubleClickTime": 250, "Net/ThemeName": "Adwaita", "Gtk/CursorThemeSize": -1},
        order=order,
    )
    assert xsettings.parse(blob) == {
        "Net/DoubleClickTime": 250,
        "Net/ThemeName": "Adwaita",
        "Gtk/CursorThemeSize": -1,
    }


def test_parse_rejects_damaged_data() -> None:
    blob = xsettings.build({"Net/DoubleClickTime": 250})
    with pytest.raises(ValueError):
        xsettings.parse(blob[:-2])
    with pytest.raises(ValueError):
        xsettings.parse(b"\x07" + blob[1:])
    with pytest.raises(ValueError):
        xsettings.parse(b"\x00\x00")


def test_reducer_counts_clicks_with_the_desktops_settings() -> None:
    ev = Events()
    ev.move(100, 100)
    ev.click()
    ev.move(106, 100, after=10)
    ev.click(after=400)  # 500 ms after the first press, 6 px away
    default = reduce_events(ev.table()).actions
    assert [a.fields["count"] for a in default] == [1, 1]
    slow = reduce_config(ReduceConfig(), {"input": {"double_click_ms": 800, "double_click_px": 8}})
    assert (slow.double_click_s, slow.double_click_px) == (0.8, 8)
    assert [a.fields["count"] for a in reduce_events(ev.table(), config=slow).actions] == [2]
    assert reduce_config(ReduceConfig(), {}) == ReduceConfig()


def _publish(display: str, settings: dict[str, int | str]):
    """Own _XSETTINGS_S0 on ``display`` with ``settings``, as a settings daemon does."""
    from Xlib import X
    from Xlib import display as xdisplay

    d = xdisplay.Display(display)
    win = d.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
    atom = d.intern_atom("_XSETTINGS_SETTINGS")
    win.change_property(atom, atom, 8, xsettings.build(settings))
    win.set_selection_owner(d.intern_atom("_XSETTINGS_S0"), X.CurrentTime)
    d.sync()
    return d


@pytest.mark.desktop
def test_recorder_stores_the_settings_and_build_uses_them(desktop, store) -> None:
    from demotrace.capture.x11 import X11Capture

    daemon = _publish(desktop.display, {"Net/DoubleClickTime": 650, "Net/DoubleClickDistance": 7})
    try:
        cap = X11Capture(desktop.display)
        try:
            assert cap.input_settings == {"double_click_ms": 650, "double_click_px": 7}
        finally:
            cap.stop()
        with recording(desktop.display, store) as rec:
            session = rec.session
    finally:
        daemon.close()
    info = json.loads(store.session(session)["info"])
    assert (info["double_click_ms"], info["double_click_px"]) == (650, 7)
    source = LocalStoreSource(store.root)
    try:
        ref = next(r for r in source.sessions() if r["session"] == session)
    finally:
        source.close()
    assert ref["input"] == {"double_click_ms": 650, "double_click_px": 7}
    assert reduce_config(ReduceConfig(), ref).double_click_s == 0.65


@pytest.mark.desktop
def test_no_settings_manager_means_no_settings(desktop) -> None:
    from demotrace.capture.x11 import X11Capture

    cap = X11Capture(desktop.display)
    try:
        assert cap.input_settings == {}
    finally:
        cap.stop()

"""The recording indicator and pause hotkey on a real Xvfb display (demotrace.privacy.indicator).

Every visible effect is checked by polling for it (up to 2 s), never by a fixed sleep followed by
an assertion, so a slow machine makes the tests slower, not flaky.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.desktop

xlib_display = pytest.importorskip("Xlib.display")
from Xlib import XK, X  # noqa: E402
from Xlib.error import BadWindow  # noqa: E402
from Xlib.ext import xtest  # noqa: E402

from demotrace.privacy.indicator import (  # noqa: E402
    BADGE_SIZE,
    STATE_COLOURS,
    STATES,
    Indicator,
    parse_hotkey,
)

RED, AMBER, GREY, BLUE = (
    STATE_COLOURS[s] for s in ("recording", "paused", "out_of_scope", "secret")
)
TRAY_RC = """<?xml version="1.0"?>
<JWM>
    <Desktops width="1" height="1"><Background type="solid">#2E3440</Background></Desktops>
    <Tray x="0" y="-1" height="28" autohide="off"><Dock/></Tray>
    <FocusModel>click</FocusModel>
</JWM>
"""


# ---------------------------------------------------------------------------- helpers
def wait_for(check: Callable[[], bool], timeout: float = 2.0) -> float | None:
    """Seconds until ``check()`` was first true (polled every ~2 ms), or None after ``timeout``."""
    start = time.perf_counter()
    while True:
        if check():
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            return None
        time.sleep(0.002)


def pixel(d: Any, x: int, y: int) -> int:
    """The screen's colour at (x, y) as 0xRRGGBB (24-bit TrueColor, 32 bits a pixel)."""
    raw = d.screen().root.get_image(x, y, 1, 1, X.ZPixmap, 0xFFFFFFFF).data
    return (raw[2] << 16) | (raw[1] << 8) | raw[0]


def window(d: Any, wid: int) -> Any:
    return d.create_resource_object("window", wid)


def root_box(d: Any, wid: int) -> tuple[int, int, int, int]:
    """(x, y, width, height) of a window in root coordinates."""
    win = window(d, wid)
    geom = win.get_geometry()
    origin = win.translate_coords(d.screen().root, 0, 0)
    return -origin.x, -origin.y, geom.width, geom.height


def titles(d: Any, wid: int) -> tuple[str, str]:
    """(WM_NAME, _NET_WM_NAME) of a window."""
    win = window(d, wid)
    net = win.get_full_property(d.intern_atom("_NET_WM_NAME"), d.intern_atom("UTF8_STRING"))
    return str(win.get_wm_name()), net.value.decode("utf-8") if net else ""


def indicator_windows(d: Any) -> list[int]:
    """Mapped children of the root window whose WM_CLASS says they are the indicator's."""
    found = []
    for child in d.screen().root.query_tree().children:
        try:
            cls = child.get_wm_class()
            viewable = child.get_attributes().map_state == X.IsViewable
        except BadWindow:
            continue
        if cls and cls[0] == "demotrace-indicator" and viewable:
            found.append(int(child.id))
    return found


def active_window(d: Any) -> int:
    prop = d.screen().root.get_full_property(d.intern_atom("_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
    return int(prop.value[0]) if prop and prop.value else 0


def window_gone(d: Any, wid: int) -> bool:
    try:
        window(d, wid).get_attributes()
    except BadWindow:
        return True
    return False


def keycode(d: Any, name: str) -> int:
    code = d.keysym_to_keycode(XK.string_to_keysym(name))
    assert code, f"no key code for {name}"
    return int(code)


def free_keycode(d: Any) -> int:
    """A key code the keymap leaves without keysyms."""
    first = d.display.info.min_keycode
    rows = d.get_keyboard_mapping(first, d.display.info.max_keycode - first + 1)
    for offset, row in enumerate(rows):
        if offset and not any(row):
            return first + offset
    pytest.skip("the keymap has no free key code")


def press_combo(d: Any, *names: str) -> None:
    """Press the keys in order, release them in reverse order (XTEST)."""
    press_codes(d, *(keycode(d, n) for n in names))


def press_codes(d: Any, *codes: int) -> None:
    for code in codes:
        xtest.fake_input(d, X.KeyPress, code)
    for code in reversed(codes):
        xtest.fake_input(d, X.KeyRelease, code)
    d.sync()


def click(d: Any, x: int, y: int) -> None:
    xtest.fake_input(d, X.MotionNotify, x=x, y=y)
    xtest.fake_input(d, X.ButtonPress, 1)
    xtest.fake_input(d, X.ButtonRelease, 1)
    d.sync()


def thread_cpu_seconds(tid: int) -> float:
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def xd(desktop: Any) -> Iterator[Any]:
    """The test's own X connection to the shared virtual desktop."""
    d = xlib_display.Display(desktop.display)
    yield d
    d.close()


# ---------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "ctrl+alt",
        "ctrl++p",
        "ctrl+alt+p+q",
        "ctrl+ctrl+p",
        "ctrl+alt+nosuchkey",
        "p",
        "shift+p",
        "ctrl+Shift_L",
        "hyper+p",
    ],
)
def test_bad_hotkey_strings_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="hotkey"):
        parse_hotkey(text)
    with pytest.raises(ValueError, match="hotkey"):
        Indicator(":0", hotkey=text)


def test_good_hotkey_strings_parse() -> None:
    hk = parse_hotkey("ctrl+alt+p")
    assert hk.modifiers == {"ctrl", "alt"} and hk.key_name == "p"
    assert parse_hotkey("super+shift+F9").modifiers == {"super", "shift"}
    assert parse_hotkey("Control+Alt+f9").key_name == "F9"
    assert parse_hotkey("Pause").modifiers == frozenset()  # types nothing: allowed alone
    with pytest.raises(ValueError, match="corner"):
        Indicator(":0", corner="middle")
    with pytest.raises(ValueError, match="state"):
        Indicator(":0").set_state("sleeping")
    assert "stopped" in STATES


# ---------------------------------------------------------------------------- badge
def test_badge_shows_each_state_in_its_corner(desktop: Any, xd: Any) -> None:
    ind = Indicator(desktop.display, hotkey=None)
    ind.start()
    try:
        assert ind.mode == "badge"  # the bench's jwm has no tray
        assert wait_for(lambda: len(indicator_windows(xd)) == 1)
        (wid,) = indicator_windows(xd)
        assert wid in ind.window_ids
        w, h = BADGE_SIZE
        assert root_box(xd, wid) == (desktop.width - w, 0, w, h)
        attrs = window(xd, wid).get_attributes()
        assert attrs.override_redirect
        hints = window(xd, wid).get_wm_hints()
        assert hints is not None and hints.input == 0
        x, y = desktop.width - w + 3, h // 2  # middle-left: background, away from the text
        assert wait_for(lambda: pixel(xd, x, y) == RED), hex(pixel(xd, x, y))
        assert titles(xd, wid) == ("demotrace: recording", "demotrace: recording")

        ind.set_state("paused")
        latency = wait_for(lambda: pixel(xd, x, y) == AMBER)
        assert latency is not None, hex(pixel(xd, x, y))
        print(f"state change visible after {latency * 1000:.2f} ms")
        assert wait_for(lambda: titles(xd, wid)[0] == "demotrace: paused")
        assert titles(xd, wid) == ("demotrace: paused", "demotrace: paused")

        ind.set_state("paused", "12 min left")
        want = "demotrace: paused (12 min left)"
        assert wait_for(lambda: titles(xd, wid) == (want, want))

        ind.set_state("out_of_scope")
        assert wait_for(lambda: pixel(xd, x, y) == GREY)
        ind.set_state("secret")
        assert wait_for(lambda: pixel(xd, x, y) == BLUE)
        assert titles(xd, wid)[0] == "demotrace: secret"

        ind.set_state("stopped")
        assert wait_for(lambda: not indicator_windows(xd))
        ind.set_state("recording")
        assert wait_for(lambda: pixel(xd, x, y) == RED and indicator_windows(xd) == [wid])

        # Clicks go through the badge: the window under the pointer is not the badge.
        xd.screen().root.warp_pointer(desktop.width - w // 2, h // 2)
        xd.sync()
        child = xd.screen().root.query_pointer().child
        assert not child or int(child.id) != wid
    finally:
        ind.close()
    assert wait_for(lambda: window_gone(xd, wid))
    assert not indicator_windows(xd)
    ind.close()  # idempotent
    ind.set_state("paused")  # ignored after close
    assert not ind.running


def test_badge_in_other_corner_and_idle_cpu(desktop: Any, xd: Any) -> None:
    ind = Indicator(desktop.display, hotkey=None, prefer_tray=False, corner="bottom-left")
    ind.start()
    try:
        assert wait_for(lambda: len(indicator_windows(xd)) == 1)
        (wid,) = indicator_windows(xd)
        w, h = BADGE_SIZE
        assert root_box(xd, wid) == (0, desktop.height - h, w, h)
        assert wait_for(lambda: pixel(xd, 3, desktop.height - h // 2) == RED)
        tid = ind.thread_native_id
        if tid is not None and Path(f"/proc/self/task/{tid}/stat").exists():
            before = thread_cpu_seconds(tid)
            time.sleep(1.0)
            used = thread_cpu_seconds(tid) - before
            assert used < 0.05, f"the idle indicator thread used {used:.3f} s of CPU in 1 s"
    finally:
        ind.close()


def test_badge_stays_on_top(desktop: Any, xd: Any) -> None:
    ind = Indicator(desktop.display, hotkey=None)
    ind.start()
    root = xd.screen().root
    w, h = BADGE_SIZE
    x, y = desktop.width - w + 3, h // 2
    cover = None
    try:
        assert wait_for(lambda: pixel(xd, x, y) == RED)
        green = xd.screen().default_colormap.alloc_color(0, 0xFFFF, 0).pixel
        cover = root.create_window(
            desktop.width - 300, 0, 300, 120, 0, X.CopyFromParent,
            background_pixel=green, override_redirect=True,
        )  # fmt: skip
        cover.map()
        xd.sync()
        below = (desktop.width - 150, 100)  # the cover's pixel outside the badge
        assert wait_for(lambda: pixel(xd, *below) == 0x00FF00)
        assert wait_for(lambda: pixel(xd, x, y) == RED), hex(pixel(xd, x, y))
        # Raised again (a restack, not a map): the badge comes back on top again.
        for _ in range(3):
            cover.configure(stack_mode=X.Above)
            xd.sync()
            assert wait_for(lambda: pixel(xd, x, y) == RED), hex(pixel(xd, x, y))
        ind.set_state("paused")
        assert wait_for(lambda: pixel(xd, x, y) == AMBER)
    finally:
        if cover is not None:
            cover.destroy()
            xd.sync()
        ind.close()


def test_indicator_does_not_take_focus(desktop: Any, xd: Any) -> None:
    desktop.launch(["xterm", "-geometry", "60x10+200+200"], "xterm-focus")
    try:
        xterm = desktop.wait_for_window("XTerm")
        x0, y0, x1, y1 = desktop.window_box(xterm)
        click(xd, (x0 + x1) // 2, (y0 + y1) // 2)
        assert wait_for(lambda: active_window(xd) == xterm), "the xterm did not become active"
        calls: list[int] = []
        ind = Indicator(desktop.display, on_hotkey=lambda: calls.append(1))
        ind.start()
        try:
            assert wait_for(lambda: len(indicator_windows(xd)) == 1)
            press_combo(xd, "Control_L", "Alt_L", "p")
            assert wait_for(lambda: len(calls) == 1)
            ind.set_state("paused")
            # Stays the xterm for half a second after the badge appeared and changed.
            assert wait_for(lambda: active_window(xd) != xterm, timeout=0.5) is None
            focus = xd.get_input_focus().focus
            assert int(focus.id) not in ind.window_ids
        finally:
            ind.close()
        assert active_window(xd) == xterm
    finally:
        desktop.stop_app("xterm-focus")


# ---------------------------------------------------------------------------- hotkey
def test_hotkey_calls_back_once_per_press(desktop: Any, xd: Any) -> None:
    calls: list[str] = []
    fail_next = threading.Event()
    fail_next.set()

    def on_hotkey() -> None:
        calls.append(threading.current_thread().name)
        if fail_next.is_set():
            fail_next.clear()
            raise RuntimeError("a bug in the callback")

    first = Indicator(desktop.display, on_hotkey=on_hotkey)
    first.start()
    try:
        assert first.hotkey_error is None
        press_combo(xd, "Control_L", "Alt_L", "p")
        assert wait_for(lambda: len(calls) == 1)
        assert wait_for(lambda: any("on_hotkey raised" in e for e in first.errors))
        assert calls == ["demotrace-indicator"]
        press_combo(xd, "Control_L", "Alt_L", "p")  # the thread survived the exception
        assert wait_for(lambda: len(calls) == 2)
        press_combo(xd, "Control_L", "Alt_L", "o")  # another key: nothing
        press_combo(xd, "Alt_L", "p")  # modifiers missing: nothing

        # With Caps Lock on, the grab still matches (Lock is ignored).
        caps = keycode(xd, "Caps_Lock")
        xtest.fake_input(xd, X.KeyPress, caps)
        xtest.fake_input(xd, X.KeyRelease, caps)
        try:
            press_combo(xd, "Control_L", "Alt_L", "p")
            assert wait_for(lambda: len(calls) == 3)
        finally:
            xtest.fake_input(xd, X.KeyPress, caps)
            xtest.fake_input(xd, X.KeyRelease, caps)
            xd.sync()

        # Held past the auto-repeat delay (660 ms on Xvfb): one call, the repeats are dropped.
        codes = [keycode(xd, n) for n in ("Control_L", "Alt_L", "p")]
        for code in codes:
            xtest.fake_input(xd, X.KeyPress, code)
        xd.sync()
        time.sleep(1.0)
        for code in reversed(codes):
            xtest.fake_input(xd, X.KeyRelease, code)
        press_combo(xd, "Control_L", "Alt_L", "p")
        assert wait_for(lambda: len(calls) >= 5)
        assert len(calls) == 5
        if xd.get_keyboard_control().global_auto_repeat:
            assert first.hotkey_repeats_ignored > 0

        # The keymap changes (a second key now types p): the indicator grabs that key too.
        spare = free_keycode(xd)
        p_sym = XK.string_to_keysym("p")
        xd.change_keyboard_mapping(spare, [(p_sym, p_sym, p_sym, p_sym)])
        xd.sync()
        try:
            for _ in range(3):  # the regrab follows the MappingNotify shortly
                press_codes(xd, keycode(xd, "Control_L"), keycode(xd, "Alt_L"), spare)
                if wait_for(lambda: len(calls) == 6, timeout=0.5):
                    break
            assert len(calls) == 6
        finally:
            xd.change_keyboard_mapping(spare, [(0, 0, 0, 0)])
            xd.sync()

        # A second indicator cannot grab the same hotkey: it says so and works anyway.
        second = Indicator(desktop.display, on_hotkey=lambda: calls.append("second"))
        second.start()
        try:
            assert second.hotkey_error and "ctrl+alt+p" in second.hotkey_error
            assert second.running
            second.set_state("paused")
            press_combo(xd, "Control_L", "Alt_L", "p")
            assert wait_for(lambda: len(calls) == 7)
        finally:
            second.close()
        assert calls.count("second") == 0
        assert first.hotkey_presses == 7
    finally:
        first.close()

    # The first one gave its grab back: a new indicator gets the hotkey and may close itself
    # from its own callback.
    made: list[Indicator] = []
    third = Indicator(desktop.display, on_hotkey=lambda: made[0].close())
    made.append(third)
    third.start()
    assert third.hotkey_error is None
    press_combo(xd, "Control_L", "Alt_L", "p")
    assert wait_for(lambda: not third.running)
    third.close()


# ---------------------------------------------------------------------------- tray
@pytest.fixture(scope="module")
def tray_desktop() -> Iterator[Any]:
    """A second virtual desktop whose jwm has a system tray (``<Tray><Dock/></Tray>``)."""
    if shutil.which("jwm") is None or shutil.which("Xvfb") is None:
        pytest.skip("Xvfb and jwm are needed for the tray test")
    from demotrace.testbench.desktop import VirtualDesktop

    with VirtualDesktop(wm=False) as desk:
        rc = desk.tmpdir / "tray.jwmrc"
        rc.write_text(TRAY_RC)
        desk.launch(["jwm", "-f", str(rc)], "jwm-tray")
        d = xlib_display.Display(desk.display)
        selection = d.intern_atom("_NET_SYSTEM_TRAY_S0")
        if not wait_for(lambda: d.get_selection_owner(selection) != X.NONE, timeout=10):
            pytest.fail("jwm did not take the system tray selection")
        d.close()
        yield desk


def docked_icon(d: Any, ind: Indicator) -> int | None:
    """The indicator's window that is mapped inside the tray (its parent is not the root)."""
    root = int(d.screen().root.id)
    for wid in ind.window_ids:
        try:
            parent = int(window(d, wid).query_tree().parent.id)
            viewable = window(d, wid).get_attributes().map_state == X.IsViewable
        except BadWindow:
            continue
        if parent != root and viewable:
            return wid
    return None


def test_tray_icon_docks_and_shows_the_state(tray_desktop: Any) -> None:
    d = xlib_display.Display(tray_desktop.display)
    ind = Indicator(tray_desktop.display, hotkey=None)
    ind.start()
    try:
        assert ind.mode == "tray"
        assert wait_for(lambda: docked_icon(d, ind) is not None)
        icon = docked_icon(d, ind)
        assert icon is not None and not indicator_windows(d)  # no badge beside the icon
        x, y, w, h = root_box(d, icon)
        assert w > 4 and h > 4
        px, py = x + 1, y + h // 2  # left edge: plain background, away from the glyph
        assert wait_for(lambda: pixel(d, px, py) == RED), hex(pixel(d, px, py))
        assert titles(d, icon) == ("demotrace: recording", "demotrace: recording")
        ind.set_state("paused", "5 min left")
        assert wait_for(lambda: pixel(d, px, py) == AMBER)
        assert wait_for(lambda: titles(d, icon)[0] == "demotrace: paused (5 min left)")

        ind.set_state("stopped")  # the icon leaves the tray
        assert wait_for(lambda: docked_icon(d, ind) is None)
        ind.set_state("recording")  # and docks again
        assert wait_for(lambda: docked_icon(d, ind) is not None)
        # The badge stood in while the tray docked the new icon; it goes once the icon is in.
        assert wait_for(lambda: ind.mode == "tray" and not indicator_windows(d))

        # The tray goes away: the indicator falls back to the badge at once.
        tray_desktop.stop_app("jwm-tray")
        assert wait_for(lambda: ind.mode == "badge")
        assert wait_for(lambda: len(indicator_windows(d)) == 1)
        bw, bh = BADGE_SIZE
        bx = tray_desktop.width - bw + 3
        assert wait_for(lambda: pixel(d, bx, bh // 2) == RED), hex(pixel(d, bx, bh // 2))
    finally:
        ind.close()
        d.close()


class FakeTray:
    """A minimal system tray on its own connection: owns ``_NET_SYSTEM_TRAY_S0`` and, when
    ``dock`` is true, reparents the first icon asked for into a socket window (with no save-set,
    so destroying the socket destroys the icon) and maps it."""

    def __init__(self, display: str, dock: bool) -> None:
        self.d = xlib_display.Display(display)
        root = self.d.screen().root
        self.owner = root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        self.socket = root.create_window(
            600, 300, 32, 32, 0, X.CopyFromParent, background_pixel=0, override_redirect=True
        )
        self.socket.map()
        self.owner.set_selection_owner(self.d.intern_atom("_NET_SYSTEM_TRAY_S0"), X.CurrentTime)
        self.d.sync()
        self.dock = dock
        self.icon: int | None = None
        self.asked = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        opcode = self.d.intern_atom("_NET_SYSTEM_TRAY_OPCODE")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            while self.d.pending_events():
                ev = self.d.next_event()
                if ev.type == X.ClientMessage and ev.client_type == opcode:
                    icon_id = ev.data[1][2]
                    if self.dock:
                        self.icon = icon_id  # before the map the indicator may react to
                        icon = window(self.d, icon_id)
                        icon.reparent(self.socket, 0, 0)
                        icon.configure(width=32, height=32)
                        icon.map()
                        self.d.sync()
                    self.asked.set()
                    return
            time.sleep(0.005)

    def close(self) -> None:
        self._thread.join(timeout=6)
        self.d.close()


def test_silent_tray_falls_back_to_the_badge(desktop: Any, xd: Any) -> None:
    tray = FakeTray(desktop.display, dock=False)
    ind = Indicator(desktop.display, hotkey=None)
    try:
        started = time.perf_counter()
        ind.start()
        assert tray.asked.is_set() and time.perf_counter() - started >= 0.9  # DOCK_TIMEOUT
        assert ind.mode == "badge"
        assert wait_for(lambda: len(indicator_windows(xd)) == 1)
        x = desktop.width - BADGE_SIZE[0] + 3
        assert wait_for(lambda: pixel(xd, x, 13) == RED)
        assert sum(not window_gone(xd, wid) for wid in ind.window_ids) == 1  # icon destroyed
    finally:
        ind.close()
        tray.close()


def test_tray_that_hides_or_loses_the_icon_brings_the_badge_back(desktop: Any, xd: Any) -> None:
    tray = FakeTray(desktop.display, dock=True)
    ind = Indicator(desktop.display, hotkey=None)
    try:
        ind.start()
        assert ind.mode == "tray" and tray.icon in ind.window_ids
        assert wait_for(lambda: pixel(xd, 601, 316) == RED)
        assert not indicator_windows(xd)
        x = desktop.width - BADGE_SIZE[0] + 3

        window(tray.d, tray.icon).unmap()  # the tray hides the icon
        tray.d.sync()
        assert wait_for(lambda: ind.mode == "badge" and pixel(xd, x, 13) == RED)
        window(tray.d, tray.icon).map()  # and shows it again
        tray.d.sync()
        assert wait_for(lambda: ind.mode == "tray" and not indicator_windows(xd))

        tray.socket.destroy()  # the tray dies and takes the icon with it
        tray.d.sync()
        assert wait_for(lambda: ind.mode == "badge" and pixel(xd, x, 13) == RED)
        ind.set_state("paused")
        assert wait_for(lambda: pixel(xd, x, 13) == AMBER)
    finally:
        ind.close()
        tray.close()

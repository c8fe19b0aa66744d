"""A dropdown choice in a GTK app: accessibility names the chosen item, so the step is a
``select_option`` with its value (real GTK app, real AT-SPI bus, real recorder on Xvfb)."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest

from demotrace.control import call
from demotrace.dataset.build import BuildConfig, build_session
from demotrace.dataset.sources import LocalStoreSource
from demotrace.errors import ControlError
from demotrace.testbench import a11y as a11y_mod
from demotrace.testbench import gtk_login
from demotrace.testbench.recorder_process import start_recorder, stop_recorder
from test_atspi import _REASON, LoginApp, login_policy

pytestmark = pytest.mark.desktop


def _layout(app: LoginApp, want: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            doc = json.loads(app.layout_path.read_text())
            if want == "popup" and doc.get("popup"):
                return doc
            if want != "popup" and doc.get("country") == want and not doc.get("popup"):
                return doc
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the GTK app's layout never showed {want!r}")
        time.sleep(0.05)


def _move_and_click(app: LoginApp, x: int, y: int) -> None:
    from Xlib import X
    from Xlib.ext import xtest

    root = app.x.screen().root
    for i in range(1, 9):  # a short glide, so GTK sees the pointer enter the item
        xtest.fake_input(app.x, X.MotionNotify, detail=0, root=root, x=x - 16 + 2 * i, y=y)
        app.x.sync()
        time.sleep(0.02)
    time.sleep(0.4)  # a person reads the item before clicking it
    xtest.fake_input(app.x, X.ButtonPress, detail=1)
    app.x.sync()
    time.sleep(0.08)
    xtest.fake_input(app.x, X.ButtonRelease, detail=1)
    app.x.sync()


def test_gtk_dropdown_choice_is_a_select_option_named_by_atspi(desktop, tmp_path: Path) -> None:
    if _REASON is not None:
        pytest.skip(f"AT-SPI unavailable: {_REASON}")
    env = a11y_mod.start_a11y(desktop)
    app = LoginApp(desktop, env, tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    policy = login_policy(tmp_path)
    try:
        proc = start_recorder(desktop.display, home, policy=policy, env=dict(env))
        try:
            # the recorder is up and judges the login window in scope before the first click
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(ControlError):
                    status = call(home, {"cmd": "status"})
                    # recording, and its AT-SPI agent listening (it names the chosen item)
                    if status.get("state") == "recording" and status.get("atspi"):
                        break
                assert time.monotonic() < deadline, "the recorder never started, or AT-SPI never"
                time.sleep(0.1)
            time.sleep(0.5)
            app.click("country")
            # the list may still be placing itself: wait until its items stay where they are
            item: dict = {}
            for _ in range(20):
                doc = _layout(app, "popup")
                found = next(i for i in doc["popup"]["items"] if i["text"] == "Germany")
                if found == item:
                    break
                item = found
                time.sleep(0.2)
            _move_and_click(app, *item["center"])
            _layout(app, "Germany")  # the app really chose it: the ground truth
            time.sleep(1.0)
        finally:
            assert stop_recorder(proc) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        app.close()
        env.close()
    source = LocalStoreSource(home / "store")
    try:
        ref = source.sessions()[-1]
        out = build_session(source, ref, BuildConfig())
    finally:
        source.close()
    assert out.skipped is None and out.steps is not None
    steps = out.steps.drop_columns(["observation"]).to_pylist()
    actions = [json.loads(s["action"]) for s in steps]
    chosen = [(a, s) for a, s in zip(actions, steps, strict=True) if a["type"] == "select_option"]
    assert len(chosen) == 1, actions
    action, step = chosen[0]
    assert action["value"] == "Germany"
    assert action["target"]["name"] == "Germany" and action["target"]["source"] == "atspi"
    assert action["target"]["role"] == "menu item"
    assert step["skills"] == ["dropdown"] and step["app"] == gtk_login.WM_CLASS
    # the click that opened the list is a step too, tagged as a dropdown
    at = steps.index(step)
    assert at >= 1, actions
    opener = steps[at - 1]
    assert json.loads(opener["action"])["type"] == "click" and opener["skills"] == ["dropdown"]

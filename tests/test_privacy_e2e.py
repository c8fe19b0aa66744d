"""Privacy end to end, on the real virtual desktop with real apps and `demotrace record` running
as its own process with its indicator: canaries, scope, pause, consent, forget, retention.

Ground truth comes from what the scripted worker did (the canaries it typed, the windows it used),
never from the recorder's own output.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from demotrace.model import Kind
from demotrace.privacy.keys import keysym_char
from demotrace.privacy.policy import demo_policy_path
from demotrace.store.db import Store
from demotrace.store.frames import FrameReader
from demotrace.testbench.apps import start_workbench
from demotrace.testbench.recorder_process import accept_policy, start_recorder, stop_recorder
from demotrace.testbench.worker import ScriptedWorker
from test_cli_errors import demotrace as cli

DEMO = str(demo_policy_path())
PASSWORD = "Zq7!canary-Pw93"  # typed into the workbench's password entry
CARD = "4556 7375 8689 9855"  # Luhn-valid, typed into a plain entry
API_KEY = "sk_live_canary4eC39HqLyjWDarjtT1zdp7dc"
OUTSIDE = "outofscopecanary"  # typed into an out-of-scope terminal
ON_SCREEN = "SCREENCANARY"  # shown in the out-of-scope terminal
TERM_PASSWORD = "termcanaryX9"  # answered to a sudo prompt in the in-scope terminal


def keystroke_forms(secret: str) -> list[bytes]:
    """The ways a typed string could leak: as text, digits only, and as the run of keysym names
    or key codes its keystrokes would have (the per-keystroke forms)."""
    from Xlib import XK

    forms = {secret, secret.replace(" ", "")}
    names = []
    for ch in secret:
        name = next(
            (n for n in (ch, XK.keysym_to_string(ord(ch))) if n and keysym_char(n) == ch), None
        )
        if name is None:
            for attr in dir(XK):
                if attr.startswith("XK_") and keysym_char(attr[3:]) == ch:
                    name = attr[3:]
                    break
        names.append(name or ch)
    forms.add("".join(names))
    forms.add(",".join(names))
    out = [f.encode() for f in forms if len(f) >= 6]
    out += [f.encode("utf-16-le") for f in forms if len(f) >= 6]
    return out


def leaks(folder: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for secret in secrets:
            for form in keystroke_forms(secret):
                if form in data:
                    found.append(f"{secret!r} as {form[:40]!r} in {path.name}")
    return found


def find_window(desktop, title: str, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", f"^{title}$"],
            env=desktop.env,
            capture_output=True,
            text=True,
        )
        if res.stdout.split():
            return int(res.stdout.split()[0])
        time.sleep(0.1)
    raise AssertionError(f"no window titled {title!r}")


def center(box: list[int]) -> tuple[int, int]:
    return (box[0] + box[2]) // 2, (box[1] + box[3]) // 2


@pytest.fixture
def fresh(desktop):
    for name in list(desktop.apps):
        desktop.stop_app(name)
    yield desktop
    for name in list(desktop.apps):
        desktop.stop_app(name)


def test_canaries_never_stored_and_out_of_scope_stays_black(fresh, tmp_path: Path) -> None:
    desktop = fresh
    home = tmp_path / "home"
    home.mkdir()
    # A stand-in for sudo that prompts like it, with echo off.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sudo").write_text(
        '#!/bin/sh\nprintf "[sudo] password for worker: "\nstty -echo\nread -r p\nstty echo\n'
        'echo\n"$@"\n'
    )
    (bindir / "sudo").chmod(0o755)
    wb = start_workbench(desktop)
    path = f"PATH={bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    desktop.launch(
        ["env", path, "xterm", "-title", "xterm", "-geometry", "60x8+660+40", "-e", "/bin/sh"],
        "xterm",
    )
    desktop.launch(
        [
            "xterm", "-title", "private notes", "-geometry", "50x10+660+420", "-e", "sh", "-c",
            f"echo {ON_SCREEN}; exec sh",
        ],
        "private",
    )  # fmt: skip
    term = find_window(desktop, "xterm")
    private = find_window(desktop, "private notes")
    time.sleep(0.5)
    proc = start_recorder(desktop.display, home, policy=Path(DEMO))
    truth = tmp_path / "truth.jsonl"
    try:
        with ScriptedWorker(desktop.display, truth, seed=3, speed=3) as worker:
            assert wb.layout is not None
            worker.click_widget(wb.layout, "password")
            worker.type_text(PASSWORD, secret=True)
            worker.click_widget(wb.layout, "email")
            worker.type_text(f"card {CARD} key {API_KEY}")
            worker.click(*center(desktop.window_box(private)))
            worker.type_text(OUTSIDE)
            worker.key("enter")
            worker.click(*center(desktop.window_box(term)))
            worker.type_text("sudo true")
            worker.key("enter")
            worker.wait(0.5)
            worker.type_text(TERM_PASSWORD)
            worker.key("enter")
            worker.click_widget(wb.layout, "name")
            worker.type_text("Ada")
            worker.wait(2.5)  # the last typing sequence closes when idle
            sent = dict(worker.sent)
        private_box = desktop.window_box(private)
    finally:
        assert stop_recorder(proc) == 0, proc.stderr.read() if proc.stderr else ""

    secrets = [PASSWORD, CARD, API_KEY, OUTSIDE, ON_SCREEN, TERM_PASSWORD]
    assert leaks(home, secrets) == []

    store = Store(home / "store", create=False)
    try:
        session = store.sessions()[-1]["id"]
        events = list(store.events(session))
        # typing keys carry no content at all; the text rows carry it, redacted
        typed = [e for e in events if e.kind == Kind.KEY and e.name and keysym_char(e.name)]
        assert typed == []
        texts = [e.data["text"] for e in events if e.kind == Kind.TEXT]
        assert "card <CARD> key <KEY>" in texts
        assert "sudo true" in texts and "Ada" in texts
        assert PASSWORD not in texts and texts[0] != PASSWORD
        gaps = [e.data["reason"] for e in events if e.kind == Kind.GAP]
        assert "out_of_scope" in gaps and "secret" in gaps
        # scope: every click in the in-scope apps is kept, the one in the private terminal is not
        presses = [e for e in events if e.kind == Kind.BUTTON and e.value == 1]
        assert len(presses) == sent["button"] // 2 - 1
        focus_windows = {e.data.get("window") for e in events if e.kind == Kind.FOCUS}
        assert private not in focus_windows
        inside = [
            e
            for e in events
            if e.kind in (Kind.MOVE, Kind.BUTTON, Kind.WHEEL)
            and private_box[0] <= e.x < private_box[2]
            and private_box[1] <= e.y < private_box[3]
        ]
        assert inside == []
        # frames: the private terminal's pixels are black in every one
        frames = [e for e in events if e.kind == Kind.FRAME]
        assert len(frames) >= 5
        reader = FrameReader(store.db)
        x0, y0, x1, y1 = private_box
        for ev in frames:
            img = np.asarray(reader.image(bytes.fromhex(ev.data["frame"])))
            assert not img[y0:y1, x0:x1].any(), f"frame {ev.seq} shows the private window"
        # and the in-scope workbench is visible in them
        last = np.asarray(reader.image(bytes.fromhex(frames[-1].data["frame"])))
        assert last[50:600, 50:600].any()
    finally:
        store.close()


def _indicator_title(desktop) -> str:
    from Xlib import X, display

    disp = display.Display(desktop.display)
    try:
        for child in disp.screen().root.query_tree().children:
            cls = child.get_wm_class()
            if cls and cls[0] == "demotrace-indicator":
                attrs = child.get_attributes()
                if attrs.map_state == X.IsViewable:
                    return child.get_wm_name() or ""
    finally:
        disp.close()
    return ""


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_pause_hotkey_resume_and_indicator(fresh, tmp_path: Path) -> None:
    desktop = fresh
    home = tmp_path / "home"
    home.mkdir()
    env = dict(desktop.env, DEMOTRACE_HOME=str(home))
    wb = start_workbench(desktop)
    assert wb.layout is not None
    proc = start_recorder(desktop.display, home, policy=Path(DEMO))
    try:
        assert _wait(lambda: _indicator_title(desktop) == "demotrace: recording")
        with ScriptedWorker(desktop.display, tmp_path / "truth.jsonl", seed=4, speed=3) as w:
            w.click_widget(wb.layout, "name")
            w.type_text("before")
            started = time.monotonic()
            assert cli("pause", env=env).returncode == 0
            took = time.monotonic() - started
            assert _wait(lambda: _indicator_title(desktop) == "demotrace: paused")
            print(f"pause command round trip: {took * 1000:.0f} ms")
            w.click_widget(wb.layout, "email")
            w.type_text("duringpause")
            status = json.loads(cli("status", "--json", env=env).stdout)
            assert status["state"] == "paused"
            assert cli("resume", env=env).returncode == 0
            assert _wait(lambda: _indicator_title(desktop) == "demotrace: recording")
            w.click_widget(wb.layout, "name")
            w.type_text("after")
            w.wait(0.3)
            w.hotkey("ctrl", "alt", "p")
            assert _wait(lambda: json.loads(cli("status", "--json", env=env).stdout)["state"]
                         == "paused")  # fmt: skip
            w.type_text("hotkeypaused")
            w.hotkey("ctrl", "alt", "p")
            assert _wait(lambda: _indicator_title(desktop) == "demotrace: recording")
            assert cli("pause", "--for", "2s", env=env).returncode == 0
            assert json.loads(cli("status", "--json", env=env).stdout)["state"] == "paused"
            assert _wait(lambda: _indicator_title(desktop) == "demotrace: recording", 6)
            w.click_widget(wb.layout, "name")
            w.type_text("end")
            w.wait(2.5)
    finally:
        assert stop_recorder(proc) == 0
    assert leaks(home, ["duringpause", "hotkeypaused"]) == []
    with Store(home / "store", create=False) as store:
        events = list(store.events(store.sessions()[-1]["id"]))
    texts = [e.data["text"] for e in events if e.kind == Kind.TEXT]
    assert texts == ["before", "after", "end"]
    gaps = [e for e in events if e.kind == Kind.GAP]
    assert [g.data["reason"] for g in gaps] == ["paused", "paused", "paused"]
    for gap in gaps:  # nothing at all was stored inside a pause
        t0, t1 = gap.t_ns, gap.t_ns + gap.data["duration_ns"]
        inside = [e for e in events if t0 < e.t_ns < t1 and e.kind != Kind.FRAME]
        assert inside == [], inside[:3]
    # the hotkey's own key is not stored
    assert not [e for e in events if e.kind == Kind.KEY and e.name == "p"]


def test_consent_is_required_and_bound_to_the_policy_version(desktop, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = dict(desktop.env, DEMOTRACE_HOME=str(home))
    result = cli("record", "--duration", "1", "--policy", DEMO, env=env)
    assert result.returncode == 10 and "consent" in result.stderr
    assert "Traceback" not in result.stderr
    with Store(home / "store") as store:
        assert store.sessions() == []
    notice = cli("consent", "--show", "--policy", DEMO, env=env)
    assert notice.returncode == 0 and "Workbench" in notice.stdout and "none" in notice.stdout
    assert cli("consent", "--accept", "--policy", DEMO, env=env).returncode == 0
    changed = tmp_path / "changed.toml"
    changed.write_text(Path(DEMO).read_text().replace("days = 7", "days = 8"))
    result = cli("record", "--duration", "1", "--policy", str(changed), env=env)
    assert result.returncode == 10 and "policy changed" in " ".join(result.stderr.split())
    broken = tmp_path / "broken.toml"
    broken.write_text(Path(DEMO).read_text().replace('keystrokes = "text"', "keystrokes = 3"))
    result = cli("record", "--duration", "1", "--policy", str(broken), env=env)
    assert result.returncode == 9 and "line" in result.stderr and "keystrokes" in result.stderr
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(Path(DEMO).read_text() + "\nsurprise = 1\n")
    result = cli("record", "--duration", "1", "--policy", str(unknown), env=env)
    assert result.returncode == 9 and "surprise" in result.stderr
    badre = tmp_path / "badre.toml"
    badre.write_text(Path(DEMO).read_text().replace("^xterm$", "^(xterm$"))
    result = cli("record", "--duration", "1", "--policy", str(badre), env=env)
    assert result.returncode == 9 and "titles" in result.stderr and "line" in result.stderr
    with Store(home / "store") as store:
        assert store.sessions() == []
        assert [c["action"] for c in store.consent_history()] == ["accept"]
    # withdrawing stops a running recorder and, asked to, deletes local data
    proc = start_recorder(desktop.display, home, policy=Path(DEMO))
    result = cli("consent", "--withdraw", "--delete", "--policy", DEMO, env=env)
    assert result.returncode == 0, result.stderr
    proc.wait(timeout=30)
    assert proc.returncode == 0
    with Store(home / "store") as store:
        assert store.sessions() == []
        assert [c["action"] for c in store.consent_history()] == ["accept", "accept", "withdraw"]
    result = cli("record", "--duration", "1", "--policy", DEMO, env=env)
    assert result.returncode == 10 and "withdrew" in result.stderr


def test_forget_last_minutes_while_recording(fresh, tmp_path: Path) -> None:
    desktop = fresh
    home = tmp_path / "home"
    home.mkdir()
    env = dict(desktop.env, DEMOTRACE_HOME=str(home))
    wb = start_workbench(desktop)
    assert wb.layout is not None
    proc = start_recorder(desktop.display, home, policy=Path(DEMO))
    try:
        with ScriptedWorker(desktop.display, tmp_path / "truth.jsonl", seed=5, speed=3) as w:
            w.click_widget(wb.layout, "name")
            w.type_text("forgetmeplease")
            w.click_widget(wb.layout, "email")
            w.wait(1.0)
            result = cli("forget", "--last", "10m", "--json", env=env)
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["events"] > 0
            unknown = cli("forget", "--session", "999", env=env)
            assert unknown.returncode == 7 and "no session 999" in unknown.stderr
            w.click_widget(wb.layout, "name")
            w.type_text("kept")
            w.wait(2.5)
    finally:
        assert stop_recorder(proc) == 0
    assert leaks(home, ["forgetmeplease"]) == []
    with Store(home / "store", create=False) as store:
        sid = store.sessions()[-1]["id"]
        texts = [e.data["text"] for e in store.events(sid, (Kind.TEXT,))]
        assert texts == ["kept"]
        frames = [e for e in store.events(sid, (Kind.FRAME,))]
        reader = FrameReader(store.db)
        for ev in frames:  # every frame left is whole
            reader.image(bytes.fromhex(ev.data["frame"]))
        result = cli("forget", "--session", str(sid), env=env)
        assert result.returncode == 0
        assert store.sessions() == []
        assert store.db.execute("SELECT COUNT(*) FROM tiles").fetchone()[0] == 0


def test_retention_deletes_old_sessions_with_a_log_line(tmp_path: Path) -> None:
    from demotrace.privacy.consent import purge, setup_log
    from demotrace.privacy.policy import load_policy

    policy = load_policy(DEMO)  # 7 days
    now = time.time_ns()
    with Store(tmp_path / "store") as store:
        old = store.create_session(
            started_wall_ns=now - 8 * 86400 * 10**9, started_mono_ns=0, status="stopped",
            event_model=2,
        )  # fmt: skip
        new = store.create_session(
            started_wall_ns=now - 86400 * 10**9, started_mono_ns=0, status="stopped",
            event_model=2,
        )  # fmt: skip
        setup_log(tmp_path)
        done = purge(store, policy, now_ns=now)
        assert [d["session"] for d in done] == [old]
        assert [s["id"] for s in store.sessions()] == [new]
    log = (tmp_path / "logs" / "demotrace.log").read_text()
    assert f"deleted session {old}" in log and "older than 7 days" in log


def test_accept_policy_helper_is_only_for_the_bench(tmp_path: Path) -> None:
    """The bench helper records an ordinary consent event, visible in the history."""
    accept_policy(tmp_path)
    with Store(tmp_path / "store") as store:
        history = store.consent_history()
    assert [h["action"] for h in history] == ["accept"]


def test_gtk_password_field_found_through_atspi_leaves_only_a_secret_gap(
    desktop, tmp_path: Path
) -> None:
    from demotrace.testbench import a11y as a11y_mod
    from test_atspi import _REASON, LoginApp, login_policy

    if _REASON is not None:
        pytest.skip(f"AT-SPI unavailable: {_REASON}")
    env = a11y_mod.start_a11y(desktop)
    app = LoginApp(desktop, env, tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    policy = login_policy(tmp_path)
    canary = "gtkcanary42"  # lower case only: a weak password the redactor alone would miss
    try:
        proc = start_recorder(desktop.display, home, policy=policy, env=dict(env))
        try:
            # A person takes well over 0.1 s from a click to the first key; a key typed within
            # ~30 ms of leaving a password field still counts as secret (on purpose).
            for widget, text in (("user", "ada"), ("password", canary), ("notes", "hello")):
                app.click(widget)
                time.sleep(0.2)
                app.type(text)
            time.sleep(2.5)
        finally:
            assert stop_recorder(proc) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        app.close()
        env.close()
    assert leaks(home, [canary]) == []
    with Store(home / "store", create=False) as store:
        events = list(store.events(store.sessions()[-1]["id"]))
    texts = [e.data["text"] for e in events if e.kind == Kind.TEXT]
    assert texts == ["ada", "hello"]
    assert [e.data["reason"] for e in events if e.kind == Kind.GAP] == ["secret"]


def test_outside_working_hours_nothing_is_captured(fresh, tmp_path: Path) -> None:
    import datetime as dt

    from conftest import recording
    from demotrace.privacy.policy import parse_policy

    desktop = fresh
    wb = start_workbench(desktop)
    assert wb.layout is not None
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    today = days[dt.datetime.now().weekday()]
    others = ", ".join(f'"{d}"' for d in days if d != today)
    text = (
        Path(DEMO)
        .read_text()
        .replace(
            "[defaults]",
            f'[hours]\ndays = [{others}]\nstart = "00:00"\nend = "24:00"\n\n[defaults]',
        )
    )
    policy = parse_policy(text, "<not today>")
    store = Store(tmp_path / "store")
    with (
        ScriptedWorker(desktop.display, speed=3) as w,
        recording(desktop.display, store, policy) as rec,
    ):
        w.click_widget(wb.layout, "name")
        w.type_text("afterhours")
        w.wait(0.5)
    events = list(store.events(rec.session))
    store.close()
    kinds = {e.kind for e in events}
    assert kinds <= {Kind.SCREEN, Kind.GAP}, kinds
    assert [e.data["reason"] for e in events if e.kind == Kind.GAP] == ["hours"]


def test_the_mask_follows_an_out_of_scope_window_that_moves(fresh, tmp_path: Path) -> None:
    from conftest import recording

    desktop = fresh
    wb = start_workbench(desktop)
    assert wb.layout is not None
    desktop.launch(
        ["xterm", "-title", "private", "-geometry", "40x8+700+100", "-e", "sh"], "private"
    )
    private = find_window(desktop, "private")
    store = Store(tmp_path / "store")
    with (
        ScriptedWorker(desktop.display, speed=3) as w,
        recording(desktop.display, store) as rec,
    ):
        w.click_widget(wb.layout, "name")
        subprocess.run(
            ["xdotool", "windowmove", str(private), "300", "300"], env=desktop.env, check=True
        )
        deadline = time.monotonic() + 5
        while desktop.window_box(private)[:2] == [700, 100] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        subprocess.run(["xdotool", "windowraise", str(private)], env=desktop.env, check=True)
        time.sleep(0.3)
        box = desktop.window_box(private)
        w.type_text("hi")  # into the workbench, which the private xterm now partly covers
        w.wait(0.5)
    frames = list(store.events(rec.session, (Kind.FRAME,)))
    reader = FrameReader(store.db)
    last = np.asarray(reader.image(bytes.fromhex(frames[-1].data["frame"])))
    store.close()
    assert box[0] < 640 and frames[-1].data["reason"] == "key"  # it covers part of the workbench
    assert not last[box[1] : box[3], box[0] : box[2]].any()
    assert last[50:250, 20:250].any()  # the uncovered workbench still shows


def test_forget_all_while_recording_keeps_the_running_session(fresh, tmp_path: Path) -> None:
    desktop = fresh
    home = tmp_path / "home"
    home.mkdir()
    env = dict(desktop.env, DEMOTRACE_HOME=str(home))
    wb = start_workbench(desktop)
    assert wb.layout is not None
    for i in range(2):  # an older session, then the running one
        proc = start_recorder(desktop.display, home, policy=Path(DEMO))
        with ScriptedWorker(desktop.display, tmp_path / "truth.jsonl", seed=6, speed=3) as w:
            w.click_widget(wb.layout, "name")
            w.type_text("oldwords")
            w.click_widget(wb.layout, "email")
            if i == 1:
                assert cli("forget", "--all", env=env).returncode == 0
                w.click_widget(wb.layout, "name")
                w.type_text("after")
                w.wait(2.5)
        assert stop_recorder(proc) == 0
    assert leaks(home, ["oldwords"]) == []
    with Store(home / "store", create=False) as store:
        sessions = [s["id"] for s in store.sessions()]
        assert sessions == [2]
        texts = [e.data["text"] for e in store.events(2, (Kind.TEXT,))]
    assert texts == ["after"]

"""The AT-SPI focus watcher on a real desktop: a GTK3 login form, XTEST clicks and typing.

A private D-Bus session and accessibility bus run for the module's virtual desktop; the GTK app
and the watcher's agent run with Debian's /usr/bin/python3 (pyatspi is not in the venv).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from demotrace.privacy.atspi import FocusInfo, FocusWatcher
from demotrace.privacy.policy import demo_policy_path
from demotrace.testbench import a11y as a11y_mod
from demotrace.testbench import gtk_login

SYSTEM_PYTHON = "/usr/bin/python3"
CANARY = "qz7canary9x"
_PROBE = (
    "import gi; gi.require_version('Gtk', '3.0'); gi.require_version('Atspi', '2.0'); "
    "import pyatspi; from gi.repository import Gtk"
)


def _why_no_atspi() -> str | None:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing"
    if shutil.which("dbus-launch") is None:
        return "dbus-launch is missing (apt-get install dbus-x11)"
    missing = a11y_mod.missing_tools()
    if missing:
        return f"{', '.join(missing)} missing (apt-get install dbus-daemon at-spi2-core)"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"{SYSTEM_PYTHON} lacks pyatspi or GTK3 via gi ({last}); apt-get install " + (
            "python3-pyatspi python3-gi gir1.2-gtk-3.0"
        )
    return None


_REASON = _why_no_atspi()
needs_atspi = pytest.mark.skipif(_REASON is not None, reason=f"AT-SPI unavailable: {_REASON}")


# ---------------------------------------------------------------------------- without a desktop
def test_available_needs_a_session_bus() -> None:
    reason = FocusWatcher.available(env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    assert reason is not None and "D-Bus" in reason


def test_available_names_a_missing_python(tmp_path: Path) -> None:
    env = {"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent"}
    reason = FocusWatcher.available(env=env, python=str(tmp_path / "python3"))
    assert reason is not None and "python3" in reason


@needs_atspi
def test_available_reports_an_unreachable_bus(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/none"}
    reason = FocusWatcher.available(env=env)
    assert reason is not None and "accessibility bus" in reason


def test_available_names_a_python_without_pyatspi() -> None:
    env = {"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent"}
    reason = FocusWatcher.available(env=env, python=sys.executable)  # the venv has no gi
    assert reason is not None and "pyatspi" in reason


class _States:
    def __init__(self, *states: str) -> None:
        self.states = set(states)

    def contains(self, state: str) -> bool:
        return state in self.states


class _Acc:
    """A stand-in for a pyatspi Accessible: what the agent may read, and no text at all."""

    def __init__(self, role: str, name: str, states: tuple[str, ...], attrs: list[str]) -> None:
        self.role, self.name, self.states, self.attrs = role, name, states, attrs

    def getRole(self) -> str:
        return self.role

    def getRoleName(self) -> str:
        return self.role

    def getState(self) -> _States:
        return _States(*self.states)

    def getAttributes(self) -> list[str]:
        return self.attrs

    def get_application(self) -> Any:
        return types.SimpleNamespace(name="app")

    def queryText(self) -> Any:
        raise AssertionError("the agent must not read the text of a field")


_FAKE_PYATSPI = types.SimpleNamespace(
    ROLE_PASSWORD_TEXT="password text", STATE_EDITABLE="editable", STATE_SENSITIVE="sensitive"
)


@pytest.mark.parametrize(
    ("role", "name", "states", "attrs", "secret"),
    [
        ("password text", "Password", ("editable",), [], True),
        ("entry", "Card", ("editable",), ["text-input-type:password"], True),  # Chromium
        ("entry", "Code", ("editable",), ["input-purpose:PIN"], True),
        ("text", "PIN", ("editable",), [], True),  # by its label
        ("text", "Client secret", ("editable",), [], True),
        ("text", "Notes", ("editable", "sensitive"), [], False),  # "sensitive" = enabled
        ("text", "Spinning", ("editable",), ["text-input-type:text"], False),
        ("push button", "Password reset", (), [], False),  # not a text field
        ("terminal", "xterm", (), [], False),
    ],
)
def test_agent_decides_what_is_secret(
    role: str, name: str, states: tuple[str, ...], attrs: list[str], secret: bool
) -> None:
    from demotrace.privacy import atspi_agent

    info = atspi_agent.describe(_Acc(role, name, states, attrs), _FAKE_PYATSPI)
    assert info == {"role": role, "secret": secret, "app": "app", "name": name}


def test_secret_between_uses_the_state_at_each_moment() -> None:
    watcher = FocusWatcher(lambda _info: None)
    for t, role in ((100, "text"), (200, "password text"), (300, "text")):
        watcher._handle_line(json.dumps({"t_ns": t, "role": role, "secret": False, "app": "a"}))
    assert watcher.current is not None and watcher.current.t_ns == 300
    assert [i.secret for i in watcher.history] == [False, True, False]  # the role decides
    assert not watcher.secret_between(0, 99)  # before anything was known
    assert not watcher.secret_between(100, 199)
    assert watcher.secret_between(150, 200)
    assert watcher.secret_between(250, 260)  # inside the password focus, no change in between
    assert watcher.secret_between(299, 400)
    assert not watcher.secret_between(300, 10_000)
    assert watcher.secret_at(150, slack_ns=60) is True  # a change 50 ns later may precede it
    assert watcher.secret_at(150, slack_ns=10) is False
    assert watcher.secret_at(time.monotonic_ns(), slack_ns=10**12) is None  # too early to tell
    with pytest.raises(ValueError):
        watcher.secret_between(5, 4)


# ---------------------------------------------------------------------------- on a desktop
@pytest.fixture(scope="module")
def a11y(desktop: Any) -> Iterator[dict[str, str]]:
    if _REASON is not None:
        pytest.skip(f"AT-SPI unavailable: {_REASON}")
    env = a11y_mod.start_a11y(desktop)
    try:
        yield env
    finally:
        env.close()


class LoginApp:
    """The GTK login form running on the desktop, and XTEST input on the test's connection."""

    def __init__(self, desktop: Any, env: dict[str, str], folder: Path) -> None:
        from Xlib import display as xdisplay

        self.layout_path = folder / "layout.json"
        self.log = (folder / "gtk_login.log").open("wb")
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, "-I", gtk_login.__file__, "--layout", str(self.layout_path)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wid = desktop.wait_for_window(gtk_login.WM_CLASS, timeout=15)
        self.x = xdisplay.Display(desktop.display)
        self.desktop = desktop

    def centre(self, widget: str) -> tuple[int, int]:
        """Root coordinates of a widget's centre, from the app's layout file."""
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError, ValueError, KeyError):
                doc = json.loads(self.layout_path.read_text())
                if doc["window"][:2] == self.desktop.window_box(self.wid)[:2]:  # placed by jwm
                    x, y = doc["widgets"][widget]["center"]
                    return int(x), int(y)
            if time.monotonic() > deadline:
                raise AssertionError(f"no current layout in {self.layout_path}")
            time.sleep(0.05)

    def click(self, widget: str) -> int:
        """Click a widget's centre with XTEST; returns monotonic_ns just before sending."""
        from Xlib import X
        from Xlib.ext import xtest

        x, y = self.centre(widget)
        root = self.x.screen().root
        xtest.fake_input(self.x, X.MotionNotify, detail=0, root=root, x=x, y=y)
        self.x.sync()
        t = time.monotonic_ns()
        xtest.fake_input(self.x, X.ButtonPress, detail=1)
        xtest.fake_input(self.x, X.ButtonRelease, detail=1)
        self.x.sync()
        return t

    def type(self, text: str) -> None:
        """Type lower-case letters and digits with XTEST."""
        from Xlib import XK, X
        from Xlib.ext import xtest

        for ch in text:
            code = self.x.keysym_to_keycode(XK.string_to_keysym(ch))
            assert code, ch
            xtest.fake_input(self.x, X.KeyPress, detail=code)
            xtest.fake_input(self.x, X.KeyRelease, detail=code)
            self.x.sync()
            time.sleep(0.005)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(3)
        self.log.close()
        self.x.close()


@pytest.fixture(scope="module")
def login(desktop: Any, a11y: dict[str, str], tmp_path_factory: Any) -> Iterator[LoginApp]:
    app = LoginApp(desktop, a11y, tmp_path_factory.mktemp("gtk_login"))
    try:
        yield app
    finally:
        app.close()


class Recorded:
    """Focus infos from the watcher's callback, with the time each arrived."""

    def __init__(self) -> None:
        self.items: list[tuple[int, FocusInfo]] = []
        self.cond = threading.Condition()

    def __call__(self, info: FocusInfo) -> None:
        with self.cond:
            self.items.append((time.monotonic_ns(), info))
            self.cond.notify_all()

    def wait_for(self, match: Callable[[FocusInfo], bool], since: int = 0, timeout: float = 5.0):
        """The first info at index >= ``since`` that matches, with its index."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(since, len(self.items)):
                    if match(self.items[i][1]):
                        return i, self.items[i][1]
                left = deadline - time.monotonic()
                if left <= 0:
                    infos = [info for _, info in self.items]
                    raise AssertionError(f"no matching focus change; got {infos}")
                self.cond.wait(left)


@pytest.fixture
def watcher(a11y: dict[str, str], login: LoginApp) -> Iterator[tuple[FocusWatcher, Recorded]]:
    assert FocusWatcher.available(env=a11y) is None
    seen = Recorded()
    w = FocusWatcher(seen, env=a11y)
    w.start()
    assert w.wait_ready(15), w.error
    try:
        yield w, seen
    finally:
        w.close()


def _named(name: str) -> Callable[[FocusInfo], bool]:
    return lambda info: info.name == name and info.kind != "none"


def _password_length(env: dict[str, str]) -> int:
    """Characters in the form's password field, read over AT-SPI (its count, not its text)."""
    code = (
        "import pyatspi\n"
        "def walk(a):\n"
        "    if a.getRole() == pyatspi.ROLE_PASSWORD_TEXT: return a\n"
        "    for c in a:\n"
        "        f = walk(c)\n"
        "        if f is not None: return f\n"
        "for app in pyatspi.Registry.getDesktop(0):\n"
        f"    if app.name == {gtk_login.WM_INSTANCE!r}:\n"
        "        print(walk(app).queryText().characterCount)\n"
    )
    done = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-c", code], env=env, capture_output=True, text=True, timeout=20
    )
    return int(done.stdout.split()[-1])


@needs_atspi
def test_focus_moves_in_and_out_of_the_password_field(
    watcher: tuple[FocusWatcher, Recorded], login: LoginApp, a11y: dict[str, str]
) -> None:
    w, seen = watcher
    assert w.current is not None and w.current.kind in ("initial", "none")  # known from start
    start = len(seen.items)
    t_user = login.click("user")
    i_user, user = seen.wait_for(_named("User"), start)
    login.click("password")
    i_pw, pw = seen.wait_for(_named("Password"), i_user + 1)
    login.type(CANARY)
    deadline = time.monotonic() + 5
    while _password_length(a11y) < len(CANARY) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _password_length(a11y) == len(CANARY)  # the keystrokes did reach the field
    t_typed = time.monotonic_ns()
    login.click("notes")
    _, notes = seen.wait_for(_named("Notes"), i_pw + 1)
    time.sleep(0.3)  # let any late events arrive

    assert (user.secret, pw.secret, notes.secret) == (False, True, False)
    assert (user.role, pw.role, notes.role) == ("text", "password text", "text")
    assert user.app == pw.app == notes.app == gtk_login.WM_INSTANCE
    assert user.t_ns >= t_user and user.t_ns < pw.t_ns < notes.t_ns
    changes = [(c.kind, c.name, c.secret) for _, c in seen.items[start:]]
    # a loss followed at once by a gain inside the window is reported as the gain alone
    assert changes == [
        ("focus", "User", False),
        ("focus", "Password", True),
        ("focus", "Notes", False),
    ]
    assert w.current == notes
    assert w.error is None

    assert w.secret_between(pw.t_ns, pw.t_ns)
    assert w.secret_between(pw.t_ns + 1, notes.t_ns - 1)  # inside the password focus
    assert w.secret_between(t_typed, t_typed)
    assert w.secret_between(t_user, time.monotonic_ns())  # a span that covers it
    assert not w.secret_between(user.t_ns, pw.t_ns - 1)
    assert not w.secret_between(notes.t_ns, time.monotonic_ns())
    assert w.secret_at(t_typed) is True

    lines = w.raw_lines
    assert len(lines) >= 4 and all(json.loads(line) for line in lines)
    assert not any(CANARY in line or CANARY[:4] in line for line in lines)
    assert not any(ch in line for line in lines for ch in ("\u25cf", "\u2022"))  # no bullets


@needs_atspi
def test_focus_leaving_for_a_window_without_accessibility(
    watcher: tuple[FocusWatcher, Recorded], login: LoginApp, desktop: Any
) -> None:
    w, seen = watcher
    login.click("user")
    i, _ = seen.wait_for(_named("User"))
    login.click("password")
    i, pw = seen.wait_for(_named("Password"), i + 1)
    assert pw.secret
    xterm = desktop.launch(["xterm"], "xterm-a11y")  # jwm gives the new window the focus
    try:
        _, gone = seen.wait_for(lambda info: info.kind == "none", i + 1, timeout=10)
        assert not gone.secret and gone.role == "" and gone.name == ""
        assert w.current is not None and not w.current.secret
        assert not w.secret_between(gone.t_ns, time.monotonic_ns())
    finally:
        desktop.stop_app("xterm-a11y")
        assert xterm.poll() is not None


@needs_atspi
def test_agent_exits_when_its_stdin_closes(a11y: dict[str, str], login: LoginApp) -> None:
    w = FocusWatcher(lambda _info: None, env=a11y)
    w.start()
    assert w.wait_ready(15), w.error
    proc = w._proc
    assert proc is not None and proc.stdin is not None
    proc.stdin.close()  # as when the recorder dies
    assert proc.wait(5) == 0
    deadline = time.monotonic() + 5
    while w.error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert w.error is not None and "exited" in w.error
    w.close()
    w.close()  # idempotent


@needs_atspi
def test_agent_exits_on_sigterm(a11y: dict[str, str], login: LoginApp) -> None:
    with FocusWatcher(lambda _info: None, env=a11y) as w:
        assert w.wait_ready(15), w.error
        assert w.pid is not None
        os.kill(w.pid, signal.SIGTERM)
        assert w._proc is not None and w._proc.wait(5) == 0


def test_watcher_reports_an_agent_that_cannot_start(tmp_path: Path) -> None:
    w = FocusWatcher(lambda _info: None, env={}, python=str(tmp_path / "nope"))
    w.start()
    assert not w.wait_ready(1)
    assert w.error is not None and "could not start" in w.error
    w.close()


@needs_atspi
def test_start_a11y_cleans_up_its_processes() -> None:
    from demotrace.testbench.desktop import VirtualDesktop

    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed")
    with VirtualDesktop(wm=False) as desk:
        env = a11y_mod.start_a11y(desk)
        assert FocusWatcher.available(env=env) is None  # starts at-spi2-registryd by activation
        pids = env.pids
        assert len(pids) >= 3, pids  # dbus-daemon, bus launcher, a11y bus (+ registryd)
        tmp = env.tmpdir
        env.close()
        env.close()
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid), pid
        assert not tmp.exists()


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rfind(")") + 2] == "Z"
    return True


def login_policy(folder: Path) -> Path:
    """The demo policy with the GTK login app in scope (typed text kept as text)."""
    policy = folder / "login-policy.toml"
    policy.write_text(
        demo_policy_path().read_text()
        + f'\n[[apps]]\nname = "Login"\nclass = ["{gtk_login.WM_CLASS}"]\nkeystrokes = "text"\n'
    )
    return policy

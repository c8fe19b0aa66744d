#!/usr/bin/python3
"""AT-SPI focus agent: prints one JSON line each time the keyboard focus changes.

Run with Debian's ``/usr/bin/python3`` (it needs ``python3-pyatspi``; a venv normally cannot import
it). demotrace's :class:`~demotrace.privacy.atspi.FocusWatcher` starts this file by path, keeps a
pipe to its stdin and reads its stdout. It imports nothing from demotrace and nothing outside the
standard library, ``gi`` and ``pyatspi``.

Output, one JSON object per line, flushed at once:

* ``{"t_ns": ..., "kind": "focus", "role": "password text", "secret": true, "app": "acme-login",
  "name": "Password"}`` when an object gains the focus (``object:state-changed:focused`` with
  detail1 = 1, or ``focus:``; duplicates for the same object are sent once);
* the same with ``"kind": "none"`` and empty ``role`` and ``name`` when the focused object loses the
  focus and no accessible object gains it within 30 ms (the window was deactivated, or the focus
  went to an application that does not speak AT-SPI); it carries the time of the loss;
* at start, the object focused in the active window (``"kind": "initial"``, or ``"none"`` when
  there is none), then ``{"ready": true, "t_ns": ...}`` once the listeners are registered.

``t_ns`` is ``time.monotonic_ns()`` in this process when the event was dispatched (CLOCK_MONOTONIC,
the same clock in every process of the machine). The agent reads the role, accessible name, state
set, object attributes and application name of the focused object, never its text content, and
prints no attribute values. It exits when stdin reaches end of file or on SIGTERM / SIGINT.

``--check`` connects to the accessibility bus, prints ``{"ok": true, "apps": N}`` and exits 0; if
the bus cannot be reached, libatspi aborts the process with a message on stderr.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections import deque
from typing import Any

#: Longest accessible name printed; longer names are cut (names are labels, not content).
MAX_NAME = 200
#: How long a focus loss waits for a focus gain before it is printed as a "none" line.
NONE_DELAY_MS = 30
#: How many objects the start-up search for the focused object may visit.
SEARCH_BUDGET = 4000
#: Object attributes (lower-cased key -> values) that mark an input as a secret.
SECRET_ATTRIBUTES: dict[str, frozenset[str]] = {
    "text-input-type": frozenset({"password"}),  # Chromium, Firefox for <input type=password>
    "input-type": frozenset({"password"}),
    "type": frozenset({"password"}),
    "input-purpose": frozenset({"password", "pin"}),  # GTK input purposes
}
#: Accessible names of editable fields that are treated as secrets even without a password role.
SECRET_NAME = re.compile(
    r"\b(pass ?words?|passphrase|passcode|passwort|kennwort|mot de passe|contrase[ñn]a|senha|"
    r"pin|otp|one[- ]time (code|password)|secret|security code|cvv|cvc|csc)\b",
    re.IGNORECASE,
)
#: Roles of objects that take typed text (lower-case AT-SPI role names).
TEXT_ROLES = frozenset({"text", "entry", "password text", "editbar", "spin button", "combo box"})


def emit(record: dict[str, Any]) -> None:
    """Write one JSON line to stdout and flush it."""
    sys.stdout.write(json.dumps(record) + "\n")  # ASCII: safe whatever the locale
    sys.stdout.flush()


def _safe(call: Any, default: Any) -> Any:
    try:
        return call()
    except Exception:  # the application went away or does not answer
        return default


def describe(acc: Any, pyatspi: Any) -> dict[str, Any]:
    """Role, secrecy, application and accessible name of ``acc`` (never its text)."""
    role_enum = _safe(acc.getRole, None)
    role = str(_safe(acc.getRoleName, "") or "")
    name = str(_safe(lambda: acc.name, "") or "")[:MAX_NAME]
    app = str(_safe(lambda: acc.get_application().name, "") or "")
    secret = role_enum == pyatspi.ROLE_PASSWORD_TEXT or role == "password text"
    if not secret:
        states = _safe(lambda: acc.getState(), None)
        editable = states is not None and _safe(
            lambda: states.contains(pyatspi.STATE_EDITABLE), False
        )
        if editable or role in TEXT_ROLES:
            attrs = _safe(acc.getAttributes, []) or []
            secret = _secret_attributes(attrs) or bool(SECRET_NAME.search(name))
    # NB: AT-SPI's STATE_SENSITIVE means "enabled", not "confidential"; it is deliberately unused.
    return {"role": role, "secret": bool(secret), "app": app, "name": name}


def _secret_attributes(attrs: Any) -> bool:
    pairs: list[tuple[str, str]] = []
    if isinstance(attrs, dict):
        pairs = [(str(k), str(v)) for k, v in attrs.items()]
    else:  # pyatspi returns ["key:value", ...]
        for item in attrs:
            key, _, value = str(item).partition(":")
            pairs.append((key, value))
    for key, value in pairs:
        allowed = SECRET_ATTRIBUTES.get(key.strip().lower())
        if allowed is not None and value.strip().lower() in allowed:
            return True
    return False


def object_key(acc: Any) -> tuple[str, str]:
    """A stable identity for an accessible object: (application bus name, object path)."""
    bus = _safe(lambda: acc.app.bus_name, "") if getattr(acc, "app", None) is not None else ""
    return str(bus or ""), str(_safe(lambda: acc.path, "") or id(acc))


def find_focused(desktop: Any, pyatspi: Any, budget: int = SEARCH_BUDGET) -> Any | None:
    """The focused object inside an active top-level window, or None (breadth-first, bounded)."""
    queue: deque[Any] = deque()
    for app in _safe(lambda: list(desktop), []):
        for top in _safe(lambda app=app: list(app), []):
            states = _safe(top.getState, None)
            if states is not None and _safe(lambda s=states: s.contains(pyatspi.STATE_ACTIVE), 0):
                queue.append(top)
    while queue and budget > 0:
        node = queue.popleft()
        budget -= 1
        states = _safe(node.getState, None)
        if states is None:
            continue
        if _safe(lambda s=states: s.contains(pyatspi.STATE_FOCUSED), False):
            return node
        if _safe(lambda s=states: s.contains(pyatspi.STATE_SHOWING), False):
            queue.extend(_safe(lambda n=node: list(n), []))
    return None


class Agent:
    """Focus listener state: the object last reported as focused, and the output.

    A focus loss is held for ``NONE_DELAY_MS``: when another object gains the focus meanwhile
    (the usual case inside one window), only the gain is printed; otherwise a ``none`` line
    stamped with the time of the loss follows.
    """

    def __init__(self, pyatspi: Any, glib: Any) -> None:
        self.pyatspi = pyatspi
        self.glib = glib
        self.current: tuple[str, str] | None = None
        self._pending: int | None = None  # GLib source id of a held focus loss

    def report(self, acc: Any | None, kind: str, t_ns: int, app: str = "") -> None:
        """Print the focus line for ``acc`` (or a ``none`` line when ``acc`` is None)."""
        if acc is None:
            self.current = None
            emit({"t_ns": t_ns, "kind": "none", "role": "", "secret": False, "app": app,
                  "name": ""})  # fmt: skip
            return
        info = describe(acc, self.pyatspi)
        self.current = object_key(acc)
        emit({"t_ns": t_ns, "kind": kind, **info})

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self.glib.source_remove(self._pending)
            self._pending = None

    def on_event(self, event: Any) -> None:
        """Handle ``object:state-changed:focused`` and ``focus:`` events."""
        t_ns = time.monotonic_ns()
        try:
            source = event.source
            if source is None:
                return
            key = object_key(source)
            gained = event.type.startswith("focus") or bool(event.detail1)
            if gained:
                self._cancel_pending()
                if key != self.current:
                    self.report(source, "focus", t_ns)
            elif key == self.current and self._pending is None:
                app = str(_safe(lambda: source.get_application().name, "") or "")

                def flush() -> bool:
                    self._pending = None
                    self.report(None, "none", t_ns, app)
                    return False

                self._pending = self.glib.timeout_add(NONE_DELAY_MS, flush)
        except BrokenPipeError:
            self.pyatspi.Registry.stop()
        except Exception as exc:  # never let one odd event end the agent
            print(f"atspi_agent: event skipped: {type(exc).__name__}: {exc}", file=sys.stderr)


def _watch_stdin(glib: Any, stop: Any) -> None:
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)

    def on_stdin(_fd: int, _cond: Any) -> bool:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            stop()
            return False
        return True

    cond = glib.IOCondition.IN | glib.IOCondition.HUP | glib.IOCondition.ERR
    glib.io_add_watch(fd, glib.PRIORITY_DEFAULT, cond, on_stdin)


def main(argv: list[str] | None = None) -> int:
    """Run the agent (or ``--check``); returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    try:
        import gi

        gi.require_version("Atspi", "2.0")
        import pyatspi
        from gi.repository import GLib
    except (ImportError, ValueError) as exc:
        emit({"error": f"pyatspi or gi is missing: {exc}"})
        return 2
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    desktop = pyatspi.Registry.getDesktop(0)  # libatspi aborts here if there is no a11y bus
    if "--check" in args:
        emit({"ok": True, "apps": int(desktop.childCount)})
        return 0

    agent = Agent(pyatspi, GLib)
    events = ("object:state-changed:focused", "focus:")
    pyatspi.Registry.registerEventListener(agent.on_event, *events)

    def stop(*_args: Any) -> bool:
        pyatspi.Registry.stop()
        return False

    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, stop)
    _watch_stdin(GLib, stop)
    try:
        agent.report(find_focused(desktop, pyatspi), "initial", time.monotonic_ns())
        emit({"ready": True, "t_ns": time.monotonic_ns()})
        pyatspi.Registry.start(gil=False)
    except BrokenPipeError:
        pass
    finally:
        pyatspi.Registry.deregisterEventListener(agent.on_event, *events)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A private X desktop for tests and demos: Xvfb + jwm, with programs launched on it.

``with VirtualDesktop() as desk: desk.launch(["xterm"], "xterm")`` starts Xvfb on a free display
number, waits for it to answer, starts jwm with the bench's own configuration and waits until it
manages windows. Teardown kills everything launched, then jwm, then Xvfb, and removes temp files.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

from demotrace.errors import MissingToolError, NoDisplayError
from demotrace.testbench import xwin

APT_PACKAGES = "xvfb jwm xterm python3-tk xdotool x11-utils"
REQUIRED_EXTENSIONS = ("RECORD", "XTEST", "MIT-SHM", "DAMAGE")
_START_TIMEOUT = 10.0


def require_tool(name: str) -> str:
    """Full path of a program, or MissingToolError naming the packages to install."""
    path = shutil.which(name)
    if path is None:
        raise MissingToolError(
            f"The program {name!r} is not installed; the virtual desktop needs it. Install the "
            f"desktop tools with: sudo apt-get install -y --no-install-recommends {APT_PACKAGES}"
        )
    return path


def _display_free(n: int) -> bool:
    return not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists()


class VirtualDesktop:
    """Xvfb (+ jwm) on a display of its own. A context manager; ``close()`` is idempotent."""

    def __init__(
        self,
        width: int = 1280,
        height: int = 800,
        wm: bool = True,
        extra_args: list[str] | None = None,
    ) -> None:
        self.extra_args = list(extra_args or [])  # more Xvfb options, e.g. "-extension DAMAGE"
        self.width = width
        self.height = height
        self.number = -1
        self.display = ""
        self.env: dict[str, str] = {}
        self.tmpdir = Path(tempfile.mkdtemp(prefix="demotrace-desk-"))
        self.apps: dict[str, subprocess.Popen[bytes]] = {}
        self._xvfb: subprocess.Popen[bytes] | None = None
        self._wm: subprocess.Popen[bytes] | None = None
        self._launched: list[subprocess.Popen[bytes]] = []
        self._x: Any = None
        self._closed = False
        try:
            self._start_xvfb()
            if wm:
                self._start_wm()
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------------- startup
    def _start_xvfb(self) -> None:
        xvfb = require_tool("Xvfb")
        first = 90 + random.randrange(0, 800)
        last_error = ""
        for attempt in range(20):
            n = first + attempt * 7
            if not _display_free(n):
                continue
            log = (self.tmpdir / f"xvfb-{n}.log").open("wb")
            argv = [xvfb, f":{n}", "-screen", "0", f"{self.width}x{self.height}x24"]
            argv += ["-nolisten", "tcp", "+extension", "RECORD", *self.extra_args]
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()
            self._xvfb = proc
            self.number, self.display = n, f":{n}"
            if self._wait_for_server(proc):
                break
            last_error = (self.tmpdir / f"xvfb-{n}.log").read_text(errors="replace")[-400:]
            self._stop(proc)
            self._xvfb = None
        else:
            raise NoDisplayError(
                f"Could not start Xvfb on a free display after 20 tries. Last output: "
                f"{last_error.strip() or '(none)'}"
            )
        self.env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
        self.env["DISPLAY"] = self.display
        self.env.pop("XAUTHORITY", None)
        present = set(self._x.list_extensions())
        disabled = {
            name
            for flag, name in zip(self.extra_args, self.extra_args[1:], strict=False)
            if flag == "-extension"
        }
        missing = [e for e in REQUIRED_EXTENSIONS if e not in present and e not in disabled]
        if missing:
            raise NoDisplayError(f"Xvfb on {self.display} lacks the extensions {missing}.")

    def _wait_for_server(self, proc: subprocess.Popen[bytes]) -> bool:
        from Xlib import display as xdisplay

        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                self._x = xdisplay.Display(self.display)
                return True
            except Exception:  # not listening yet: socket missing, refused, bad greeting
                time.sleep(0.05)
        return False

    def _start_wm(self) -> None:
        jwm = require_tool("jwm")
        rc = self.tmpdir / "bench.jwmrc"
        rc.write_bytes(resources.files("demotrace.testbench").joinpath("bench.jwmrc").read_bytes())
        self._wm = self._spawn([jwm, "-f", str(rc)], "jwm")
        deadline = time.monotonic() + _START_TIMEOUT
        while not xwin.wm_running(self._x):
            if self._wm.poll() is not None or time.monotonic() > deadline:
                log = (self.tmpdir / "jwm.log").read_text(errors="replace")[-400:]
                raise NoDisplayError(f"jwm did not start on {self.display}: {log.strip()}")
            time.sleep(0.05)

    def _spawn(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        with (self.tmpdir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.tmpdir,
            )

    # ---------------------------------------------------------------------- programs
    def launch(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        """Start a program on this display; its output goes to ``tmpdir/NAME.log``."""
        if self._closed:
            raise NoDisplayError("The virtual desktop is closed.")
        if "/" not in argv[0]:
            require_tool(argv[0])
        proc = self._spawn(argv, name)
        self._launched.append(proc)
        self.apps[name] = proc
        return proc

    def stop_app(self, name: str) -> None:
        """Stop the program launched as ``name`` (and its process group), if it runs."""
        proc = self.apps.pop(name, None)
        if proc is not None:
            self._stop(proc)

    def wait_for_window(self, wm_class: str, timeout: float = 10.0) -> int:
        """Id of a mapped managed window whose WM_CLASS class or instance is ``wm_class``."""
        deadline = time.monotonic() + timeout
        while True:
            wid = xwin.find_client(self._x, wm_class)
            if wid is not None:
                return wid
            if time.monotonic() > deadline:
                raise NoDisplayError(
                    f"No window of class {wm_class!r} appeared on {self.display} within "
                    f"{timeout:.0f} s; see the logs in {self.tmpdir}."
                )
            time.sleep(0.05)

    def window_box(self, wid: int) -> list[int]:
        """A client window's [x0, y0, x1, y1] on the screen."""
        return xwin.client_box(self._x, wid)

    def active_class(self) -> str | None:
        """WM_CLASS class of the active window, if any."""
        wid = xwin.active_window(self._x)
        return xwin.wm_class(self._x, wid)[1] if wid else None

    @property
    def pids(self) -> list[int]:
        """Process ids of everything this desktop started (Xvfb, jwm, programs)."""
        procs = [self._xvfb, self._wm, *self._launched]
        return [p.pid for p in procs if p is not None]

    # ---------------------------------------------------------------------- teardown
    @staticmethod
    def _stop(proc: subprocess.Popen[bytes], grace: float = 2.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(grace)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self._launched):
            self._stop(proc)
        if self._wm is not None:
            self._stop(self._wm)
        if self._x is not None:
            with contextlib.suppress(Exception):
                self._x.close()
            self._x = None
        if self._xvfb is not None:
            self._stop(self._xvfb, grace=5.0)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> VirtualDesktop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()

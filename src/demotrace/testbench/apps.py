"""Starting the bench's programs on a :class:`VirtualDesktop`: the workbench and xterm."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from demotrace.errors import MissingToolError
from demotrace.testbench.desktop import APT_PACKAGES
from demotrace.testbench.layout import LayoutFile

if TYPE_CHECKING:
    from demotrace.testbench.desktop import VirtualDesktop

WORKBENCH_GEOMETRY = "640x740+0+0"
XTERM_GEOMETRY = "80x24+660+40"


@dataclass
class App:
    name: str
    wm_class: str
    window: int
    layout: LayoutFile | None = None


def start_workbench(
    desktop: VirtualDesktop, geometry: str = WORKBENCH_GEOMETRY, timeout: float = 15.0
) -> App:
    """Launch the Tk workbench and wait until its layout file shows every widget."""
    if importlib.util.find_spec("tkinter") is None:
        raise MissingToolError(
            f"This Python ({sys.executable}) has no tkinter, which the workbench needs. Install "
            f"it with: sudo apt-get install -y --no-install-recommends {APT_PACKAGES}"
        )
    layout = LayoutFile(desktop.tmpdir / "workbench-layout.json")
    argv = [sys.executable, "-m", "demotrace.testbench.workbench"]
    desktop.launch([*argv, "--layout", str(layout.path), "--geometry", geometry], "workbench")
    window = desktop.wait_for_window("Workbench", timeout)
    layout.wait_ready(timeout)
    return App("workbench", "Workbench", window, layout)


def start_xterm(
    desktop: VirtualDesktop, geometry: str = XTERM_GEOMETRY, timeout: float = 15.0
) -> App:
    """Launch xterm (plain ``sh``, no rc files) at ``geometry`` and wait for its window."""
    argv = ["xterm", "-geometry", geometry, "-title", "xterm", "-e", "/bin/sh"]
    desktop.launch(argv, "xterm")
    return App("xterm", "XTerm", desktop.wait_for_window("XTerm", timeout))


def ensure_app(desktop: VirtualDesktop, name: str) -> App:
    """The app ``name`` on this desktop: the running one if there is one, else a new one."""
    proc = desktop.apps.get(name)
    if proc is None or proc.poll() is not None:
        return {"workbench": start_workbench, "xterm": start_xterm}[name](desktop)
    if name == "workbench":
        layout = LayoutFile(desktop.tmpdir / "workbench-layout.json")
        return App(name, "Workbench", desktop.wait_for_window("Workbench"), layout)
    return App(name, "XTerm", desktop.wait_for_window("XTerm"))

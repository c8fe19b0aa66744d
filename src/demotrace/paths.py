"""Where demotrace keeps its data. Read only when a command asks, never at import time."""

from __future__ import annotations

import os
from pathlib import Path


def data_home(env: dict[str, str] | None = None) -> Path:
    """``$DEMOTRACE_HOME``, else ``$XDG_DATA_HOME/demotrace``, else ``~/.local/share/demotrace``."""
    env = dict(os.environ) if env is None else env
    if env.get("DEMOTRACE_HOME"):
        return Path(env["DEMOTRACE_HOME"]).expanduser()
    xdg = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "demotrace"


def store_dir(home: Path) -> Path:
    return home / "store"

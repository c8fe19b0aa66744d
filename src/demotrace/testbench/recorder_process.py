"""`demotrace record` as its own process, the way a person runs it (demo, tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from demotrace.errors import DemotraceError
from demotrace.paths import store_dir


def accept_policy(home: Path, policy: Path | None = None) -> Path:
    """Record the scripted worker's consent to ``policy`` (default: the demo policy) in ``home``.

    Only for the virtual desktop of the demo, tests and benchmarks, where the "worker" is a
    script; a person gives consent with ``demotrace consent --accept``.
    """
    from demotrace.privacy.consent import accept
    from demotrace.privacy.policy import demo_policy_path, load_policy
    from demotrace.store.db import Store

    path = policy or demo_policy_path()
    with Store(store_dir(home)) as store:
        accept(store, load_policy(path))
    return path


def start_recorder(
    display: str,
    home: Path,
    *extra: str,
    stderr: int = subprocess.PIPE,
    policy: Path | None = None,
    consent: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start ``demotrace record`` on ``display`` into ``home`` and wait until it records.

    ``policy`` defaults to the packaged demo policy; with ``consent`` the scripted worker
    accepts it first.
    """
    from demotrace.privacy.policy import demo_policy_path

    policy = policy or demo_policy_path()
    if consent:
        accept_policy(home, policy)
    env = dict(env if env is not None else os.environ, DISPLAY=display, DEMOTRACE_HOME=str(home))
    argv = ["record", "--display", display, "--policy", str(policy), *extra]
    proc = subprocess.Popen(
        [sys.executable, "-m", "demotrace", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )
    wait_until_recording(home, proc)
    return proc


def wait_until_recording(home: Path, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Return once the recorder's first events are committed; raise if it died or hangs."""
    db = store_dir(home) / "demotrace.db"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise DemotraceError(f"The recorder stopped at start-up: {(err or '').strip()}")
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    if conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]:
                        return
            except sqlite3.Error:
                pass
        time.sleep(0.05)
    proc.kill()
    raise DemotraceError(f"The recorder did not start within {timeout:.0f} s.")


def stop_recorder(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    """Stop a recorder as Ctrl-C would (it commits and closes); kill it if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode

"""Shared fixtures: a real Xvfb desktop, a store folder, a recorder running in-process."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from demotrace.privacy.consent import accept
from demotrace.privacy.policy import Policy, demo_policy_path, load_policy
from demotrace.recorder import Recorder, RecorderConfig
from demotrace.store.db import Store

NEEDED = ("Xvfb", "jwm", "xterm", "xdpyinfo")


def _missing() -> list[str]:
    return [tool for tool in NEEDED if shutil.which(tool) is None]


@pytest.fixture(scope="module")
def desktop() -> Iterator[object]:
    missing = _missing()
    if missing:
        pytest.skip(f"virtual desktop tools not installed: {', '.join(missing)} (run `make setup`)")
    from demotrace.testbench.desktop import VirtualDesktop

    with VirtualDesktop() as d:
        yield d


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store")
    yield s
    s.close()


def wait_settled(recorder: Recorder, quiet: float = 0.4, timeout: float = 30.0) -> None:
    """Wait until the recorder has seen no new event for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = sum(recorder.counts.values())
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


#: The demo policy, but every xterm is in scope whatever its title.
WIDE_POLICY = (
    demo_policy_path()
    .read_text()
    .replace('titles = ["^xterm$"]', "")
    .replace("revision = 1", "revision = 2")
)


def wide_policy_file(folder: Path) -> Path:
    path = folder / "wide-policy.toml"
    path.write_text(WIDE_POLICY)
    return path


def wide_policy() -> Policy:
    from demotrace.privacy.policy import parse_policy

    return parse_policy(WIDE_POLICY, "<wide test policy>")


@contextmanager
def recording(
    display: str, store: Store, policy: Policy | None = None, **config: object
) -> Iterator[Recorder]:
    """A recorder in this process under ``policy`` (default: the demo policy), consent given."""
    policy = policy or load_policy(demo_policy_path())
    accept(store, policy)
    config.setdefault("indicator", False)
    rec = Recorder(store, policy, display, RecorderConfig(**config))  # type: ignore[arg-type]
    rec.start()
    time.sleep(0.3)  # the first full-screen grab and window state
    try:
        yield rec
        wait_settled(rec)
    finally:
        rec.stop()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Any]:
    """A real `demotrace serve` on a loopback port, with a SQLite database and a lake folder."""
    from collector_proc import Collector

    c = Collector(tmp_path / "collector").start(timeout=120)
    try:
        yield c
    finally:
        c.kill()

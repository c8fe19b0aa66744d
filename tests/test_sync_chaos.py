"""Exactly-once and offline uploads with real processes: ``demotrace serve`` SIGKILLed and
restarted under a running ``demotrace sync``, the sync itself SIGKILLed, a network that cuts
connections (also after the server did the work), and a collector that is not there at all.

Each test ends with :func:`sync_fixture.assert_exactly_once`: the lake's segment files, read
directly, hold the local store's rows once each, every frame decodes pixel-identical, the
collector's totals agree and a second sync finds nothing to send.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from chaos_proxy import ChaosProxy
from collector_proc import Collector
from demotrace.sync.client import enroll
from demotrace.sync.enrollment import ENROLLMENT
from sync_fixture import (
    EXIT_SYNC,
    assert_exactly_once,
    run_sync,
    segment_files,
    start_sync,
    sync_until_done,
    write_work_session,
)

SEGMENT_ROWS = 200  # the sync commands' --segment-rows (sync_fixture.sync_cmd)
WAIT_S = 180.0  # generous: a loaded 2-core CI machine


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data home whose store holds three sessions of work (built once, copied per test)."""
    home = tmp_path_factory.mktemp("template")
    for seed in (1, 2, 3):
        write_work_session(home / "store", seed, events=2500, frames=42)
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "home"
    shutil.copytree(template, dst)
    return dst


# -- helpers --------------------------------------------------------------------------------------
def new_code(collector: Collector) -> str:
    """A one-time enrolment code (``demotrace admin enroll-code`` over HTTP)."""
    r = httpx.post(
        f"{collector.url}/v1/admin/enroll-codes", json={}, headers=collector.headers(), timeout=60
    )
    r.raise_for_status()
    return str(r.json()["code"])


def enroll_home(collector: Collector, home: Path, url: str | None = None) -> str:
    """Enroll ``home`` with the collector, then sync through ``url`` when given; the device."""
    device = enroll(home, collector.url, new_code(collector)).device
    if url is not None:
        path = home / ENROLLMENT
        path.write_text(json.dumps({**json.loads(path.read_text()), "url": url}))
    return device


def http_totals(collector: Collector) -> Callable[[], dict[str, int]]:
    def totals() -> dict[str, int]:
        r = httpx.get(f"{collector.url}/v1/admin/totals", headers=collector.headers(), timeout=60)
        r.raise_for_status()
        return r.json()

    return totals


def store_counts(home: Path) -> tuple[int, int]:
    """(events, segments a full sync makes) of the store under ``home``."""
    db = sqlite3.connect(home / "store" / "demotrace.db")
    try:
        per = [n for (n,) in db.execute("SELECT COUNT(*) FROM events GROUP BY session")]
    finally:
        db.close()
    return sum(per), sum(math.ceil(n / SEGMENT_ROWS) for n in per)


def wait_for(done: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def kill_points(seed: int, n: int, segments: int) -> list[int]:
    """``n`` distinct segment counts, well before the last, at which to kill something."""
    return sorted(random.Random(seed).sample(range(2, segments - 8), n))


# -- the tests ------------------------------------------------------------------------------------
def test_server_sigkilled_and_restarted_during_sync(
    home: Path, collector: Collector, tmp_path: Path
) -> None:
    """The collector is SIGKILLed five times mid-upload, each time a little after a new segment
    file appears (so sometimes between a segment's file and its database row, sometimes amid
    blob batches) and restarted; the running sync retries through every restart, and the
    result is exactly once."""
    device = enroll_home(collector, home)
    _events, segments = store_counts(home)
    lake = collector.data_dir / "lake"
    rng = random.Random(2024)
    proc = start_sync(home, tmp_path / "sync.log", timeout="240s")
    kills = 0
    try:
        for target in kill_points(7, 5, segments):
            wait_for(
                lambda t=target: len(segment_files(lake)) >= t or proc.poll() is not None,
                f"{target} segments in the lake",
            )
            time.sleep(rng.uniform(0, 0.3))
            assert proc.poll() is None, "the sync ended before the collector was killed"
            collector.kill()
            kills += 1
            time.sleep(rng.uniform(0, 0.3))
            collector.start(timeout=120)
        out, _ = proc.communicate(timeout=WAIT_S + 240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert kills == 5
    if proc.returncode == EXIT_SYNC:  # gave up retrying (a loaded machine): sync again
        sync_until_done(home)
    else:
        assert proc.returncode == 0, (tmp_path / "sync.log").read_text()[-3000:]
        assert json.loads(out)["retries"] > 0
    assert_exactly_once(home, collector.data_dir, device, http_totals(collector))


def test_sync_sigkilled_mid_upload(home: Path, collector: Collector, tmp_path: Path) -> None:
    """The sync process dies four times mid-upload; the next one goes on from what the
    collector holds, and nothing is stored twice."""
    device = enroll_home(collector, home)
    events, segments = store_counts(home)
    lake = collector.data_dir / "lake"
    rng = random.Random(77)
    for target in kill_points(8, 4, segments):
        proc = start_sync(home, tmp_path / "sync.log")
        try:
            wait_for(
                lambda t=target, p=proc: len(segment_files(lake)) >= t or p.poll() is not None,
                f"{target} segments in the lake",
            )
            time.sleep(rng.uniform(0, 0.2))
            assert proc.poll() is None, "the sync ended before it was killed"
        finally:
            proc.kill()
            proc.communicate(timeout=60)
        assert proc.returncode == -9
    summary = sync_until_done(home)
    assert 0 < summary["events"] < events
    assert_exactly_once(home, collector.data_dir, device, http_totals(collector))


def test_sync_through_a_network_that_cuts_connections(
    home: Path, collector: Collector, tmp_path: Path
) -> None:
    """A third of the exchanges are cut, some after the collector did the work and before its
    answer got back; retried uploads are stored once. (Segments of 400 rows: every cut costs a
    back-off pause of the sync's own Transport, up to seconds.)"""
    with ChaosProxy(collector.port, drop_rate=0.3, seed=5) as proxy:
        device = enroll_home(collector, home, url=proxy.url)
        summary = sync_until_done(home, timeout="240s", segment_rows=2 * SEGMENT_ROWS)
        counts = dict(proxy.counts)
        print(f"proxy: {counts}; sync: {summary}")
        assert counts["dropped"] > 0 and counts["after_request"] > 0, counts
        assert summary["retries"] > 0
        assert_exactly_once(home, collector.data_dir, device, http_totals(collector))


def test_offline_sync_loses_nothing(home: Path, collector: Collector, tmp_path: Path) -> None:
    """With the collector gone, sync gives up after --timeout with exit code 14 and a clear
    message, the store keeps everything (also what was recorded meanwhile), and the next sync
    with the collector back uploads it all."""
    device = enroll_home(collector, home)
    collector.kill()
    for seed in (101, 102):  # recorded while offline
        write_work_session(home / "store", seed, events=1200, frames=12)
    events, _segments = store_counts(home)
    done = run_sync(home, timeout="3s")
    assert done.returncode == EXIT_SYNC, done.stderr
    said = " ".join(done.stderr.split())
    assert f"The collector at {collector.url} did not take" in said, said
    assert "Nothing is lost" in said and "next sync" in said, said
    assert store_counts(home)[0] == events
    db = sqlite3.connect(home / "store" / "demotrace.db")
    try:
        assert db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0] == 0
    finally:
        db.close()
    collector.start(timeout=120)
    summary = sync_until_done(home)
    assert summary["events"] == events and summary["sessions"] == 5, summary
    assert_exactly_once(home, collector.data_dir, device)


def test_enroll_survives_a_lost_answer(collector: Collector, tmp_path: Path) -> None:
    """Enrolment retries when the collector's answer is lost on the way: the retry enrolls this
    machine with the same code, and the collector holds one device, the one it got."""
    code = new_code(collector)
    with ChaosProxy(collector.port, drop_rate=0, script=["after_request"]) as proxy:
        enrolled = enroll(tmp_path / "home", proxy.url, code)
        assert proxy.counts["after_request"] == 1
    r = httpx.get(f"{collector.url}/v1/admin/devices", headers=collector.headers(), timeout=60)
    assert [d["id"] for d in r.json()] == [enrolled.device]
    # and the credential it keeps works
    r = httpx.get(
        f"{collector.url}/v1/device",
        timeout=60,
        headers={"Authorization": f"Bearer {enrolled.token}"},
    )
    assert r.status_code == 200 and r.json() == {"device": enrolled.device}

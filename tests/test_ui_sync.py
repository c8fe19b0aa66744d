"""The worker's page against a real collector: ``demotrace serve`` as its own process, a real
enrolment and the real sync client. The page says what the sync client does: what it uploads,
what waits for the review period and until when, and whether a deletion made on the page has
reached the collector (which then answers that the session is deleted)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from collector_proc import Collector
from demotrace.privacy.consent import accept, load_in_force
from demotrace.store.db import Store
from demotrace.sync.client import Enrollment, Syncer, _session_meta, enroll
from demotrace.web.ui import _until, _wall, create_app
from test_build import _session
from test_ui import BASE, HOST, deletion_cells, post, text_of, upload_cells, wall_of

DAY_NS = 86_400 * 10**9


def query(home: Path, sql: str, *args: object) -> list[tuple]:
    db = sqlite3.connect(home / "store" / "demotrace.db")
    try:
        with db:
            return db.execute(sql, args).fetchall()
    finally:
        db.close()


def sync(home: Path) -> dict:
    """One round of the real sync client, as ``demotrace sync`` runs it."""
    store = Store(home / "store", create=False)
    try:
        policy = load_in_force(None, home)
        enrolled = Enrollment.load(home)
        assert enrolled is not None
        return Syncer(store, enrolled, review_hours=policy.review_hours, home=home).run().as_dict()
    finally:
        store.close()


def test_the_page_follows_uploads_and_deletions_to_the_collector(
    tmp_path: Path, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEMOTRACE_POLICY", raising=False)
    home = tmp_path / "home"
    for _ in range(3):
        _session(home / "store", 1)  # sessions 1, 2, 3: seq 1..45 each
    policy = load_in_force(None, home)
    with Store(home / "store") as store:
        accept(store, policy)
    review = int(policy.review_hours * 3600 * 10**9)
    now = time.time_ns()
    old = now - 3 * DAY_NS - review
    query(home, "UPDATE sessions SET started_wall_ns = ? WHERE id IN (1, 3)", old)
    query(home, "UPDATE sessions SET started_wall_ns = ? WHERE id = 2", now - 3600 * 10**9)
    # session 3: event 30 is recent (a clock step); the ones after it wait behind it
    shift = 3 * DAY_NS + 2 * review
    query(home, "UPDATE events SET t_ns = t_ns + ? WHERE session = 3 AND seq = 30", shift)
    ui = TestClient(create_app(home, "tok-" + "x" * 28, 8765), base_url=f"http://{HOST}")
    assert 'data-enrolled="no"' in ui.get(BASE + "/").text

    code = httpx.post(
        f"{collector.url}/v1/admin/enroll-codes", json={}, headers=collector.headers(), timeout=60
    ).json()["code"]
    device = enroll(home, collector.url, code)
    page = ui.get(BASE + "/").text
    assert collector.url in text_of(page, "upload-collector")
    assert device.device in text_of(page, "upload-collector")
    assert text_of(page, "upload-last") == "Nothing has been uploaded yet."
    assert text_of(page, "upload-due").startswith("74 events are past the review period")

    first = sync(home)
    # what the page said was due is what the sync client sent, and what it left waits
    assert first["events"] == 45 + 29 and first["waiting_events"] == 45 + 16
    until_2 = wall_of(home, 2, 1) + review  # its first event
    until_3 = wall_of(home, 3, 30) + review  # the one the others wait behind
    page = ui.get(BASE + "/sessions").text
    assert upload_cells(page) == {
        1: ("uploaded", None, "uploaded"),
        2: ("waiting", until_2, f"waiting for review until {_until(until_2)}"),
        3: (
            "partial",
            until_3,
            f"partly uploaded (29 of 45 events); 16 waiting for review until {_until(until_3)}",
        ),
    }
    (last,) = query(home, "SELECT MAX(t_wall_ns) FROM uploads")[0]
    assert text_of(page, "upload-last") == f"Last upload: {_wall(last)}."
    assert text_of(page, "upload-done") == (
        "Uploaded: 74 of the 135 events kept here, from 2 sessions (1 complete)."
    )
    assert f"the earliest may leave at {_until(until_2)}," in text_of(page, "upload-waiting")
    # the collector holds exactly what the page calls uploaded
    http = httpx.Client(
        base_url=collector.url, headers={"Authorization": f"Bearer {device.token}"}, timeout=60
    )
    with http:
        held = {
            sid: sum(seg["rows"] for seg in http.get(f"/v1/sessions/{sid}").json()["segments"])
            for sid in (1, 3)
        }
        assert held == {1: 45, 3: 29}
        assert http.get("/v1/sessions/2").status_code == 404

        # delete the uploaded session from the page: the deletion waits for the next sync
        with Store(home / "store") as store:
            meta = _session_meta(store.session(1))
        done = post(ui, "/forget/session", {"session": 1})
        assert done.status_code == 200, done.text
        assert collector.url in text_of(done.text, "deletion-collector")
        waiting = ("waiting", "waiting for the next sync to reach the collector")
        assert deletion_cells(done.text) == {1: waiting}
        page = ui.get(BASE + "/sessions").text
        assert deletion_cells(page) == {1: waiting} and 1 not in upload_cells(page)
        assert text_of(page, "upload-deletions").startswith("1 deletion waits")
        assert http.get("/v1/sessions/1").status_code == 200  # not yet on the collector

        second = sync(home)
        assert second["deletions"] == 1 and second["events"] == 0
        (sent,) = query(home, "SELECT sent_ns FROM deletions WHERE id = 1")[0]
        page = ui.get(BASE + "/sessions").text
        assert deletion_cells(page) == {1: ("sent", f"reached the collector at {_wall(sent)}")}
        assert 'id="upload-deletions"' not in page
        # the collector answers that the session is deleted, and it stays deleted
        assert http.get("/v1/sessions/1").status_code == 404
        assert http.put("/v1/sessions/1", json=meta).json()["status"] == "deleted"
        assert {s["session"] for s in http.get("/v1/sessions").json()} == {3}

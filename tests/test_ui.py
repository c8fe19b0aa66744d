"""The worker's page (`demotrace ui`) with a TestClient over a hand-written store: the guards
(token, Host, Origin), the notice, deleting a step / a session / recent minutes, the export, and
the upload state (not enrolled, enrolled with sessions uploaded, partly uploaded, ready or
waiting for the review period; deletions sent, waiting or local). ``tests/test_ui_sync.py`` does
the same against a real collector and the real sync client."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import time
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from demotrace.model import Kind
from demotrace.privacy.consent import accept, load_in_force
from demotrace.store.db import Store
from demotrace.sync.client import Enrollment
from demotrace.web.ui import _until, _wall, create_app
from test_build import _session

TOKEN = "tok-" + "x" * 28
HOST = "127.0.0.1:8765"
ORIGIN = f"http://{HOST}"
BASE = f"/t/{TOKEN}"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DEMOTRACE_POLICY", raising=False)
    home = tmp_path / "home"
    _session(home / "store", 1)
    with Store(home / "store") as store:
        accept(store, load_in_force(None, home))
    return home


@pytest.fixture
def client(home: Path) -> TestClient:
    app = create_app(home, TOKEN, 8765)
    return TestClient(app, base_url=f"http://{HOST}", raise_server_exceptions=False)


def post(client: TestClient, path: str, data: dict, origin: str | None = ORIGIN):
    headers = {"Origin": origin} if origin is not None else {}
    return client.post(BASE + path, data=data, headers=headers, follow_redirects=False)


def rows(home: Path, sql: str, *args: object) -> list[tuple]:
    db = sqlite3.connect(home / "store" / "demotrace.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def frame_rows(home: Path) -> set[str]:
    return {h.hex() for (h,) in rows(home, "SELECT hash FROM frames")}


def upload_cells(html: str) -> dict[int, tuple[str, int | None, str]]:
    """The Recordings page's upload column: {session: (state, until_ns or None, label)}."""
    found = re.findall(
        r'<tr data-session="(\d+)">.*?<td class="upload-state" data-upload="(\w+)"'
        r'(?: data-until-ns="(\d+)")?>(.*?)</td>',
        html,
        re.S,
    )
    return {int(sid): (state, int(until) if until else None, label) for sid, state, until,
            label in found}  # fmt: skip


def deletion_cells(html: str) -> dict[int, tuple[str, str]]:
    """The deletions log's collector column (also on the page after a deletion):
    {deletion id: (state, label)}."""
    found = re.findall(
        r'data-deletion="(\d+)".*?class="deletion-state" data-sent="(\w+)">(.*?)</',
        html,
        re.S,
    )
    return {int(i): (state, label.strip()) for i, state, label in found}


def text_of(html: str, element_id: str) -> str:
    """The text of the element with ``element_id`` (tags dropped, spaces collapsed)."""
    m = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert m, f"no element #{element_id}"
    return " ".join(re.sub(r"<[^>]+>", "", m.group(2)).split())


def test_without_or_with_a_wrong_token_is_refused(client: TestClient) -> None:
    assert client.get("/").status_code == 403
    assert client.get("/sessions").status_code == 403
    assert client.get("/t/wrong/").status_code == 403
    assert client.get(f"/t/{TOKEN[:-1]}/").status_code == 403
    assert client.get(f"/t/{TOKEN}x/").status_code == 403
    assert client.get("/t/wrong/static/ui.css").status_code == 403
    page = client.get(BASE + "/")
    assert page.status_code == 200 and "Not running" in page.text
    assert page.headers["referrer-policy"] == "same-origin"
    assert client.get(BASE + "/static/ui.js").status_code == 200


def test_a_foreign_host_is_refused(client: TestClient) -> None:
    for host in ("evil.example:8765", "127.0.0.1:9999", "127.0.0.1.evil.example:8765", ""):
        response = client.get(BASE + "/", headers={"Host": host})
        assert response.status_code == 421, host
    assert client.get(BASE + "/", headers={"Host": "localhost:8765"}).status_code == 200


def test_a_post_from_another_origin_or_none_is_refused(client: TestClient, home: Path) -> None:
    before = rows(home, "SELECT COUNT(*) FROM events")[0][0]
    for origin in (None, "http://evil.example", "null", "http://127.0.0.1:9999"):
        response = post(client, "/forget/session", {"session": 1}, origin=origin)
        assert response.status_code == 403, origin
        assert post(client, "/pause", {}, origin=origin).status_code == 403
    assert rows(home, "SELECT COUNT(*) FROM events")[0][0] == before


def test_pause_without_a_recorder_is_a_clear_page(client: TestClient) -> None:
    response = post(client, "/pause", {})
    assert response.status_code == 409
    assert "No recorder is running" in response.text and "Traceback" not in response.text


def test_the_notice_shows_the_policy_and_the_consent_history(
    client: TestClient, home: Path
) -> None:
    policy = load_in_force(None, home)
    page = client.get(BASE + "/notice")
    assert page.status_code == 200
    assert policy.name in page.text and policy.version in page.text
    assert 'id="consent-history"' in page.text and "accept" in page.text
    assert policy.name in client.get(BASE + "/").text


def test_sessions_and_steps_pages(client: TestClient) -> None:
    page = client.get(BASE + "/sessions")
    assert page.status_code == 200 and 'data-session="1"' in page.text
    assert 'data-enrolled="no"' in page.text and "nothing leaves this computer" in page.text
    assert upload_cells(page.text) == {1: ("none", None, "not uploaded (no collector)")}
    steps = client.get(BASE + "/session/1")
    assert steps.status_code == 200
    assert steps.text.count('class="step"') == 4
    thumb = client.get(BASE + "/frame/1/0.png")
    assert thumb.status_code == 200 and thumb.content[:4] == b"\x89PNG"
    assert client.get(BASE + "/frame/1/99.png").status_code == 404
    missing = client.get(BASE + "/session/42")
    assert missing.status_code == 404 and "no session 42" in missing.text
    assert client.get(BASE + "/nowhere").status_code == 404


def test_deleting_a_step_removes_its_events_and_only_its_frame(
    client: TestClient, home: Path
) -> None:
    import re

    page = client.get(BASE + "/session/1").text
    spans = [tuple(map(int, m)) for m in re.findall(
        r'data-seq-start="(\d+)" data-seq-end="(\d+)" data-type="click"', page)]  # fmt: skip
    seq_start, seq_end = spans[0]
    frames_before = frame_rows(home)
    events = {s for (s,) in rows(home, "SELECT seq FROM events WHERE session = 1")}
    # the FRAME row grabbed for this click, and the frame it names (used by nothing else)
    own = [
        (seq, json.loads(data))
        for seq, data in rows(
            home, "SELECT seq, data FROM events WHERE session = 1 AND kind = ?", int(Kind.FRAME)
        )
        if seq_start <= json.loads(data).get("for_seq", -1) <= seq_end
    ]
    assert len(own) == 1
    own_seq, own_data = own[0]
    response = post(
        client, "/forget/step", {"session": 1, "seq_start": seq_start, "seq_end": seq_end}
    )
    assert response.status_code == 200, response.text
    assert 'id="done"' in response.text
    left = {s for (s,) in rows(home, "SELECT seq FROM events WHERE session = 1")}
    gone = set(range(seq_start, seq_end + 1)) | {own_seq}
    assert left == events - gone
    assert frame_rows(home) == frames_before - {own_data["frame"]}
    log = rows(home, "SELECT what, reason FROM deletions")
    assert json.loads(log[-1][0]) == {"session": 1, "seq": [seq_start, seq_end]}
    # the page now shows one step fewer; deleting the same step again is a clear 404
    assert client.get(BASE + "/session/1").text.count('class="step"') == 3
    again = post(client, "/forget/step", {"session": 1, "seq_start": seq_start, "seq_end": seq_end})
    assert again.status_code == 404 and "no such step" in again.text


def test_deleting_a_session_and_recent_minutes(client: TestClient, home: Path) -> None:
    _session(home / "store", 2)
    assert post(client, "/forget/session", {"session": 1}).status_code == 200
    assert rows(home, "SELECT id FROM sessions") == [(2,)]
    assert rows(home, "SELECT COUNT(*) FROM events WHERE session = 1") == [(0,)]
    assert client.get(BASE + "/session/1").status_code == 404
    bad = post(client, "/forget/recent", {"minutes": "lots"})
    assert bad.status_code == 400 and "minutes" in bad.text
    assert post(client, "/forget/recent", {"minutes": 10}).status_code == 200


def test_export_holds_the_database_and_a_summary(client: TestClient, home: Path) -> None:
    response = client.get(BASE + "/export")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        assert sorted(zf.namelist()) == ["demotrace.db", "summary.json"]
        summary = json.loads(zf.read("summary.json"))
        db_bytes = zf.read("demotrace.db")
    assert [s["id"] for s in summary["sessions"]] == [1]
    assert summary["consent"][0]["action"] == "accept"
    assert summary["upload"]["enrolled"] is False
    assert "nothing leaves this computer" in summary["upload"]["text"]
    assert summary["sessions"][0]["upload"] == "not uploaded (no collector)"
    copy = home.parent / "copy.db"
    copy.write_bytes(db_bytes)
    db = sqlite3.connect(copy)
    assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] > 0
    db.close()
    assert not list(home.glob(".export-*"))  # the temporary copy is gone


# -- the upload state ---------------------------------------------------------------------------
DAY_NS = 86_400 * 10**9
URL = "http://collector.invalid:8600"
DEVICE = "d-0123456789ab"
SECRET = "the-device-secret-is-never-shown"


def enroll_here(home: Path) -> None:
    """This data home enrolled with a collector (the pages never contact it)."""
    Enrollment(URL, DEVICE, f"{DEVICE}.{SECRET}", 1_795_000_000_000_000_000).save(home)


def execute(home: Path, sql: str, *args: object) -> None:
    db = sqlite3.connect(home / "store" / "demotrace.db")
    try:
        with db:
            db.execute(sql, args)
    finally:
        db.close()


def new_session(home: Path, started_wall_ns: int) -> int:
    """Another copy of the small session (seq 1..45), started at ``started_wall_ns``."""
    _session(home / "store", 1)
    sid = rows(home, "SELECT MAX(id) FROM sessions")[0][0]
    execute(home, "UPDATE sessions SET started_wall_ns = ? WHERE id = ?", started_wall_ns, sid)
    return sid


def wall_of(home: Path, session: int, seq: int) -> int:
    """The wall-clock time an event was recorded at."""
    return rows(
        home,
        "SELECT s.started_wall_ns + (e.t_ns - s.started_mono_ns) FROM events e "
        "JOIN sessions s ON s.id = e.session WHERE e.session = ? AND e.seq = ?",
        session,
        seq,
    )[0][0]


def test_not_enrolled_nothing_leaves_and_deletions_need_no_sending(
    client: TestClient, home: Path
) -> None:
    page = client.get(BASE + "/").text
    assert 'data-enrolled="no"' in page
    assert "not enrolled with a collector: nothing leaves this computer" in text_of(
        page, "upload-none"
    )
    assert "demotrace enroll URL CODE" in page
    done = post(client, "/forget/session", {"session": 1})
    assert done.status_code == 200
    assert "not enrolled with a collector" in text_of(done.text, "deletion-collector")
    (deletion,) = rows(home, "SELECT id FROM deletions")
    expected = ("none", "needs no sending: this machine has no collector")
    assert deletion_cells(done.text) == {deletion[0]: expected}
    assert deletion_cells(client.get(BASE + "/sessions").text) == {deletion[0]: expected}


def test_enrolled_pages_show_each_session_upload_state(client: TestClient, home: Path) -> None:
    enroll_here(home)
    review = int(load_in_force(None, home).review_hours * 3600 * 10**9)
    now = time.time_ns()
    old = now - 3 * DAY_NS - review  # days past any review period
    execute(home, "UPDATE sessions SET started_wall_ns = ? WHERE id = 1", old)  # ready
    done_s = new_session(home, old)  # uploaded in full
    recent = new_session(home, now - 3600 * 10**9)  # recorded an hour ago: waits
    partial = new_session(home, old)  # 1..9 uploaded, 10..29 past review, 30..45 recent
    gap = new_session(home, old)  # only seq 30 is recent: it holds back 31..45
    with Store(home / "store") as store:
        empty = store.create_session(
            started_wall_ns=old, started_mono_ns=0, status="stopped", event_model=1
        )
    shift = 3 * DAY_NS + review
    execute(home, "UPDATE events SET t_ns = t_ns + ? WHERE session = ? AND seq >= 30", shift,
            partial)  # fmt: skip
    execute(home, "UPDATE events SET t_ns = t_ns + ? WHERE session = ? AND seq = 30", shift, gap)
    up_full, up_part = now - 7200 * 10**9, now - 3600 * 10**9
    execute(home, "INSERT INTO uploads VALUES (?, 45, ?)", done_s, up_full)
    execute(home, "INSERT INTO uploads VALUES (?, 9, ?)", partial, up_part)

    until_recent = wall_of(home, recent, 1) + review
    until_partial = wall_of(home, partial, 30) + review
    until_gap = wall_of(home, gap, 30) + review
    cells = upload_cells(client.get(BASE + "/sessions").text)
    assert cells == {
        1: ("ready", None, "not uploaded yet; the next sync sends 45 events"),
        done_s: ("uploaded", None, "uploaded"),
        recent: ("waiting", until_recent, f"waiting for review until {_until(until_recent)}"),
        partial: (
            "partial",
            until_partial,
            "partly uploaded (9 of 45 events); the next sync sends 20 events; "
            f"16 waiting for review until {_until(until_partial)}",
        ),
        gap: (
            "ready",
            until_gap,
            "not uploaded yet; the next sync sends 29 events; "
            f"16 waiting for review until {_until(until_gap)}",
        ),
        empty: ("empty", None, "nothing to upload (no events)"),
    }
    # the time shown is a local clock time rounded up to the minute, never before the truth
    assert _until(until_recent) >= _wall(until_recent)[:16]

    for path in ("/", "/sessions"):
        page = client.get(BASE + path).text
        assert 'data-enrolled="yes"' in page
        collector = text_of(page, "upload-collector")
        assert URL in collector and DEVICE in collector
        assert SECRET not in page  # the credential is never shown
        assert text_of(page, "upload-last") == f"Last upload: {_wall(up_part)}."  # the latest
        assert text_of(page, "upload-done") == (
            "Uploaded: 54 of the 225 events kept here, from 2 sessions (1 complete)."
        )
        waiting = text_of(page, "upload-waiting")
        assert waiting.startswith("77 events wait for the review period (24 hours)")
        assert f"the earliest may leave at {_until(until_recent)}," in waiting
        assert f'data-next-ns="{until_recent}"' in page
        assert text_of(page, "upload-due") == (
            "94 events are past the review period and go with the next sync."
        )
        assert "demotrace sync" in page and "--sync-every" in page


def test_enrolled_deletions_show_whether_they_reached_the_collector(
    client: TestClient, home: Path
) -> None:
    enroll_here(home)
    sent = time.time_ns() - 600 * 10**9
    for reason, sent_ns in (("forget", sent), ("forget", None), ("retention", sent)):
        execute(
            home,
            "INSERT INTO deletions (t_wall_ns, what, reason, events, frames, tiles, sent_ns) "
            "VALUES (?, ?, ?, 0, 0, 0, ?)",
            sent - 10**9,
            json.dumps({"sessions": [9]}),
            reason,
            sent_ns,
        )
    page = client.get(BASE + "/sessions").text
    assert deletion_cells(page) == {
        1: ("sent", f"reached the collector at {_wall(sent)}"),
        2: ("waiting", "waiting for the next sync to reach the collector"),
        3: ("local", "needs no sending: the collector has its own retention"),
    }
    assert text_of(page, "upload-deletions") == (
        "1 deletion waits for the next sync to reach the collector."
    )
    # a deletion from the page waits for the next sync; the page after it says so
    done = post(client, "/forget/session", {"session": 1})
    assert done.status_code == 200
    assert URL in text_of(done.text, "deletion-collector")
    assert deletion_cells(done.text) == {
        4: ("waiting", "waiting for the next sync to reach the collector")
    }
    assert deletion_cells(client.get(BASE + "/sessions").text)[4][0] == "waiting"
    assert text_of(client.get(BASE + "/").text, "upload-deletions").startswith("2 deletions wait")
    # the export says the same, without the credential
    with zipfile.ZipFile(io.BytesIO(client.get(BASE + "/export").content)) as zf:
        raw = zf.read("summary.json").decode()
    summary = json.loads(raw)
    assert SECRET not in raw
    upload = summary["upload"]
    assert upload["enrolled"] is True and upload["device"] == DEVICE
    assert upload["collector"] == URL and upload["deletions_waiting"] == 2
    assert [d["collector"] for d in summary["deletions"]] == [
        f"reached the collector at {_wall(sent)}",
        "waiting for the next sync to reach the collector",
        "needs no sending: the collector has its own retention",
        "waiting for the next sync to reach the collector",
    ]


def test_a_damaged_enrolment_or_no_store_is_a_clear_page(tmp_path: Path, home: Path) -> None:
    (home / "collector.json").write_text("{not json")
    app = TestClient(create_app(home, TOKEN, 8765), base_url=f"http://{HOST}")
    page = app.get(BASE + "/")
    assert page.status_code == 200 and 'data-enrolled="no"' in page.text
    assert "enrolment file" in text_of(page.text, "upload-none")
    assert "damaged" in text_of(page.text, "upload-none")
    empty = tmp_path / "empty"
    empty.mkdir()
    enroll_here(empty)
    bare = TestClient(create_app(empty, TOKEN, 8765), base_url=f"http://{HOST}")
    for path in ("/", "/sessions"):
        response = bare.get(BASE + path)
        assert response.status_code == 200 and 'data-enrolled="yes"' in response.text
        assert text_of(response.text, "upload-last") == "Nothing has been uploaded yet."

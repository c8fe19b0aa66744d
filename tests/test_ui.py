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


# -- the replay viewer (/play/<session>/) -------------------------------------------------------
PLAY = f"{BASE}/play"


def two_tasks(home: Path) -> int:
    """Another session holding two marked tasks (two episodes) of one click each."""
    from events_builder import Events
    from store_builder import put_frame, screen_image, write_session

    ev = Events(800, 600)
    store = Store(home / "store")
    try:
        frame = put_frame(store, 99, screen_image(800, 600, 3), ev.t)
    finally:
        store.close()
    ev.focus("Workbench", 1, "Form")
    for n, text in enumerate(("Open the form", "Save it")):
        ev.marker("task_start", text)
        ev.move(100 + 50 * n, 100)
        pressed = ev.press(window=1, app="Workbench")
        ev.frame(frame, pressed)
        ev.release()
        ev.marker("task_end")
    return write_session(home / "store", ev)


def player(client: TestClient, session: int = 1) -> tuple[str, str]:
    """(the episode id, the player's page) the session's Play link leads to."""
    first = client.get(f"{PLAY}/{session}/", follow_redirects=False)
    assert first.status_code == 303, first.text
    where = first.headers["location"]
    assert where.startswith(f"{PLAY}/{session}/episode/")
    page = client.get(where)
    assert page.status_code == 200
    return where.rsplit("/", 1)[1], page.text


def steps_of(client: TestClient, episode: str, session: int = 1) -> dict:
    response = client.get(f"{PLAY}/{session}/api/episode/{episode}/steps")
    assert response.status_code == 200, response.text
    return response.json()


def copies(client: TestClient) -> list[Path]:
    return sorted(client.app.state.replays.root.glob("session-*"))  # type: ignore[attr-defined]


def test_play_serves_the_viewer_under_the_token(client: TestClient) -> None:
    play_link = f'href="{PLAY}/1/"'
    assert play_link in client.get(BASE + "/sessions").text
    assert play_link in client.get(BASE + "/session/1").text
    episode, html = player(client)
    assert f'data-base="{PLAY}/1"' in html
    links = re.findall(r'(?:href|src)="([^"]*)"', html)
    home = re.search(r'<a id="home"[^>]* href="([^"]*)"', html)
    assert home and home.group(1) == f"{BASE}/session/1"  # back to the session page
    for link in links:
        if link not in ("data:,", home.group(1)):
            assert link.startswith(f"{PLAY}/1/"), link
    assert client.get(f"{PLAY}/1/static/viewer.js").status_code == 200
    steps = steps_of(client, episode)
    assert steps["total"] == 4 and [s["action_type"] for s in steps["steps"]] == [
        "click", "click", "type", "key"
    ]  # fmt: skip
    frame = client.get(f"{PLAY}/1/frame/{episode}/0.png")
    assert frame.status_code == 200 and frame.content[:4] == b"\x89PNG"
    assert frame.headers["cache-control"] == "no-store"
    assert client.get(f"{PLAY}/1/frame/{episode}/4.png").status_code == 404
    assert client.get(f"{PLAY}/1", follow_redirects=False).headers["location"] == f"{PLAY}/1/"
    # the page's guards hold for the player too
    assert client.get("/play/1/").status_code == 403
    assert client.get(f"/t/wrong/play/1/api/episode/{episode}/steps").status_code == 403
    foreign = client.get(f"{PLAY}/1/frame/{episode}/0.png", headers={"Host": "evil.example:8765"})
    assert foreign.status_code == 421
    missing = client.get(f"{PLAY}/42/")
    assert missing.status_code == 404 and "not on this machine" in missing.text
    assert "Traceback" not in missing.text
    for odd in ("x", "01", "²", "9" * 30):
        assert client.get(f"{PLAY}/{odd}/").status_code == 404, odd


def test_play_lists_the_episodes_of_a_session_with_several(client: TestClient, home: Path) -> None:
    sid = two_tasks(home)
    page = client.get(f"{PLAY}/{sid}/", follow_redirects=False)
    assert page.status_code == 200 and 'id="episodes"' in page.text
    episodes = re.findall(rf'href="{PLAY}/{sid}/episode/([^"]+)"', page.text)
    assert len(episodes) == 2 and "Open the form" in page.text and "Save it" in page.text
    for episode in episodes:
        assert steps_of(client, episode, sid)["total"] == 1


def test_a_step_deleted_is_gone_from_the_player(client: TestClient, home: Path) -> None:
    episode, _html = player(client)
    before = steps_of(client, episode)["steps"]
    (old,) = copies(client)
    click = before[0]
    span = {"session": 1, "seq_start": click["seq_start"], "seq_end": click["seq_end"]}
    done = post(client, "/forget/step", span)
    assert done.status_code == 200
    assert not old.exists()  # a deletion from the page drops every copy at once
    after = steps_of(client, episode)["steps"]  # built again, as it is now
    assert len(after) == 3 and click["seq_start"] not in [s["seq_start"] for s in after]
    assert [s["action_type"] for s in after] == ["click", "type", "key"]
    assert client.get(f"{PLAY}/1/frame/{episode}/2.png").status_code == 200
    assert client.get(f"{PLAY}/1/frame/{episode}/3.png").status_code == 404
    # a deletion made elsewhere (`demotrace forget`) is seen by the next request of any kind
    (second,) = copies(client)
    typed = after[1]
    with Store(home / "store") as store:
        store.forget_span(1, typed["seq_start"], typed["seq_end"])
    assert client.get(f"{PLAY}/1/frame/{episode}/2.png").status_code == 404
    assert not second.exists()
    assert [s["action_type"] for s in steps_of(client, episode)["steps"]] == ["click", "key"]
    assert len(copies(client)) == 1


def test_new_events_are_shown_when_a_page_is_opened(client: TestClient, home: Path) -> None:
    episode, _html = player(client)
    (first,) = copies(client)
    # the recorder appends (a pointer move): frames and the steps API go on from the copy ...
    execute(
        home,
        "INSERT INTO events (session, seq, t_ns, kind, x, y) VALUES (1, 1000, "
        "(SELECT MAX(t_ns) + 1000 FROM events WHERE session = 1), ?, 5, 5)",
        int(Kind.MOVE),
    )
    assert steps_of(client, episode)["total"] == 4
    assert copies(client) == [first]
    # ... and opening the player builds it again, with what is stored now
    player(client)
    assert first.exists() is False and len(copies(client)) == 1


def test_after_the_session_is_deleted_play_says_it_is_gone(client: TestClient) -> None:
    episode, _html = player(client)
    (copy,) = copies(client)
    assert post(client, "/forget/session", {"session": 1}).status_code == 200
    assert not copy.exists()
    for path in ("/", f"/episode/{episode}", f"/frame/{episode}/0.png"):
        gone = client.get(f"{PLAY}/1{path}")
        assert gone.status_code == 404 and "not on this machine" in gone.text, path
    assert copies(client) == []


def test_two_requests_build_once_and_a_failed_build_is_a_page(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import demotrace.dataset.build as building

    real, calls = building.build, []

    def slow(*args: object, **kwargs: object) -> dict:
        calls.append(args)
        time.sleep(0.3)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(building, "build", slow)
    replays = client.app.state.replays  # type: ignore[attr-defined]
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(replays.get(1, True))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 2 and got[0] is got[1]

    def broken(*args: object, **kwargs: object) -> dict:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(building, "build", broken)
    replays.drop_all()
    page = client.get(f"{PLAY}/1/")
    assert page.status_code == 500 and 'id="error"' in page.text
    assert "could not be prepared for playing" in page.text and "the disk is full" in page.text
    assert "Traceback" not in page.text and copies(client) == []


def test_the_copies_live_in_a_private_folder_gone_at_shutdown(home: Path) -> None:
    app = create_app(home, TOKEN, 8765)
    root = app.state.replays.root
    assert root.is_dir() and (root.stat().st_mode & 0o777) == 0o700
    assert home.resolve() not in root.resolve().parents
    with TestClient(app, base_url=f"http://{HOST}") as client:
        episode, _html = player(client)
        assert steps_of(client, episode)["total"] == 4
        assert list(root.glob("session-1-*/data/*.parquet"))
    assert not root.exists()  # the page stopped: no copy of the screenshots is left


def test_status_says_when_the_browser_extension_is_paired(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recorder with the browser channel says so on the status page; one without, does not."""
    import demotrace.web.ui as ui

    status = {"ok": True, "state": "recording", "session": 1, "events": 5, "policy": None}
    monkeypatch.setattr(ui, "recorder_status", lambda _home: {**status, "browser": None})
    assert 'id="browser-extension"' not in client.get(BASE + "/").text
    stats = {"accepted": 1234, "refused": {}, "handler_us": {"n": 0}}
    monkeypatch.setattr(ui, "recorder_status", lambda _home: {**status, "browser": stats})
    page = client.get(BASE + "/").text
    assert 'id="browser-extension"' in page and "1,234 page events" in page

"""The worker's page (`demotrace ui`) with a TestClient over a hand-written store: the guards
(token, Host, Origin), the notice, deleting a step / a session / recent minutes, the export."""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from demotrace.model import Kind
from demotrace.privacy.consent import accept, load_in_force
from demotrace.store.db import Store
from demotrace.web.ui import create_app
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
    assert "this machine has no collector" in page.text
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
    assert "no collector" in summary["upload"]
    copy = home.parent / "copy.db"
    copy.write_bytes(db_bytes)
    db = sqlite3.connect(copy)
    assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] > 0
    db.close()
    assert not list(home.glob(".export-*"))  # the temporary copy is gone

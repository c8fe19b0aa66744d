"""The collector end to end: real `demotrace serve` processes, real sync clients, both backends
(SQLite + a lake folder, PostgreSQL + an S3-compatible store), and the lake they produce read back
by `demotrace build`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from collector_proc import Collector
from demotrace.cli import main
from demotrace.collector.blobs import open_blobs
from demotrace.dataset.build import build
from demotrace.store.db import Store
from events_builder import Events
from store_builder import put_frame, screen_image, write_session
from test_build import _session

CANARY = "CANARY-7f3e-do-not-keep"


# -- backends -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    from pgserver import PgUnavailable, pg_server

    try:
        with pg_server() as server:
            yield server
    except PgUnavailable as exc:
        pytest.skip(f"PostgreSQL is not installed: {exc}")


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    from s3server import s3_server

    with s3_server() as server, mock.patch.dict(os.environ, server.env):
        yield server


class Backend:
    def __init__(self, name: str, folder: Path, db: str | None, blobs: str | None, env: dict):
        self.name, self.folder, self.db, self.blobs, self.env = name, folder, db, blobs, env

    def collector(self, **kw: Any) -> Collector:
        return Collector(self.folder, db=self.db, blobs=self.blobs, env=self.env, **kw)

    @property
    def lake(self) -> str:
        """The lake URI `demotrace build` reads."""
        if self.blobs is None:
            return str(self.folder / "lake")
        return open_blobs(self.blobs).url


@pytest.fixture(params=["sqlite+folder", "postgresql+s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite+folder":
        return Backend(request.param, tmp_path / "collector", None, None, {})
    pg, s3 = request.getfixturevalue("pg"), request.getfixturevalue("s3")
    name = f"c{uuid.uuid4().hex[:10]}"
    s3.make_bucket(name)
    return Backend(
        request.param,
        tmp_path / "collector",
        pg.new_database(name),
        f"s3://{name}/lake",
        dict(s3.env),
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("DEMOTRACE_HOME", str(home))
    return home


def _sync(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["sync", "--json", "--timeout", "60s", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _enroll(c: Collector, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["enroll", c.url, c.enroll_code()]) == 0
    capsys.readouterr()
    return json.loads((Path(os.environ["DEMOTRACE_HOME"]) / "collector.json").read_text())["device"]


def _lake_text(c: Collector) -> str:
    """Every event's text in the lake (segments are zstd inside: a byte scan would miss it)."""
    blobs = open_blobs(c.blobs or c.data_dir / "lake")
    parts = []
    for key in blobs.list("events/"):
        table = pq.read_table(io.BytesIO(blobs.get(key)))
        parts.extend(str(v) for v in table.column("data").to_pylist())
        parts.extend(str(v) for v in table.column("name").to_pylist())
    return "\n".join(parts)


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def _totals(c: Collector) -> dict[str, int]:
    """The collector's aggregate counts, read in this process (a CLI run costs seconds)."""
    from demotrace.collector.service import Config, Service

    cfg = Config.in_folder(c.data_dir)
    svc = Service(Config(c.db or cfg.db_url, c.blobs or cfg.blobs_url))
    try:
        return svc.totals()
    finally:
        svc.close()


def _canary_session(root: Path) -> int:
    ev = Events(800, 600)
    store = Store(root)
    fid = put_frame(store, 9, screen_image(800, 600, 7), ev.t)
    store.close()
    ev.focus("Notes", 1, "secret notes")
    p = ev.press(window=1, app="Notes")
    ev.frame(fid, p)
    ev.release()
    ev.text(CANARY)
    return write_session(root, ev)


# -- uploads ------------------------------------------------------------------------------------
def test_synced_lake_builds_the_same_dataset(
    backend: Backend, home: Path, tmp_path: Path, capsys
) -> None:
    store = home / "store"
    _session(store, 1)
    _session(store, 2)
    with backend.collector() as c:
        device = _enroll(c, capsys)
        first = _sync(capsys)
        assert first["sessions"] == 2 and first["events"] == 90 and first["frames"] == 3
        again = _sync(capsys)  # nothing new: nothing sent
        assert again["events"] == 0 and again["tiles"] == 0 and again["frames"] == 0
        assert _totals(c)["events"] == 90
    from_store, from_lake = tmp_path / "a", tmp_path / "b"
    build(store, from_store)
    info = build(backend.lake, from_lake)
    assert info["counts"]["steps"] == 8 and info["counts"]["devices"] == 1
    for rel in ("data/steps-00000.parquet", "meta/episodes.parquet"):
        a, b = pq.read_table(from_store / rel), pq.read_table(from_lake / rel)
        assert b.column("device").unique().to_pylist() == [device]
        skip = {"device", "episode_id"}
        for col in a.column_names:
            if col not in skip:
                assert a.column(col).equals(b.column(col)), f"{rel}: {col} differs"
    if backend.blobs is not None:  # the Ray engine reads the S3 lake to the same bytes
        with_ray = tmp_path / "c"
        build(backend.lake, with_ray, engine="ray")
        for rel in ("data/steps-00000.parquet", "meta/episodes.parquet"):
            assert (with_ray / rel).read_bytes() == (from_lake / rel).read_bytes()


def test_two_server_processes_share_one_database_and_lake(
    backend: Backend, home: Path, capsys
) -> None:
    store = home / "store"
    _session(store, 1)
    _session(store, 2)
    one = backend.collector(workers=2).start()  # uvicorn workers in one process group too
    two = Collector(backend.folder, db=backend.db, blobs=backend.blobs, env=backend.env)
    two.admin_token = one.admin_token
    try:
        two.start()
        _enroll(one, capsys)  # enrolled through one process ...
        enrolment = home / "collector.json"
        data = json.loads(enrolment.read_text())
        data["url"] = two.url  # ... uploading through the other
        enrolment.write_text(json.dumps(data))
        assert _sync(capsys)["events"] == 90
        data["url"] = one.url
        enrolment.write_text(json.dumps(data))
        assert _sync(capsys)["events"] == 0  # the first process sees what the second stored
        assert _totals(one) == _totals(two)
    finally:
        one.kill()
        two.kill()


def _policy_text(revision: int, review_hours: float = 24) -> str:
    from demotrace.privacy.policy import demo_policy_path

    text = demo_policy_path().read_text().replace("revision = 1", f"revision = {revision}")
    return text.replace("[review]\nhours = 24", f"[review]\nhours = {review_hours:g}")


def test_review_period_keeps_recent_data_local(home: Path, tmp_path: Path, capsys) -> None:
    import time

    store_root = home / "store"
    _session(store_root, 1)
    store = Store(store_root)
    with store.db:  # recorded half an hour ago
        store.db.execute(
            "UPDATE sessions SET started_wall_ns = ?", (time.time_ns() - 1800 * 10**9,)
        )
    store.close()
    (home / "policy.toml").write_text(_policy_text(1, review_hours=1))
    with Collector(tmp_path / "collector") as c:
        _enroll(c, capsys)
        waiting = _sync(capsys)
        assert waiting["events"] == 0 and waiting["waiting_events"] == 45
        assert _totals(c)["events"] == 0
        (home / "policy.toml").write_text(_policy_text(1, review_hours=0.25))
        assert _sync(capsys)["events"] == 45


def test_a_published_policy_needs_consent_before_recording(
    home: Path, tmp_path: Path, capsys
) -> None:
    from demotrace.privacy.consent import consent_state, load_in_force
    from demotrace.sync.background import BackgroundSync
    from demotrace.sync.client import Enrollment

    Store(home / "store").close()
    published = tmp_path / "policy.toml"
    published.write_text(_policy_text(7))
    with Collector(tmp_path / "collector") as c:
        _enroll(c, capsys)
        assert main(["consent", "--accept"]) == 0  # the packaged default, before
        capsys.readouterr()
        c.admin("policy", str(published))
        result = _sync(capsys)
        assert result["policy"] and result["policy"].startswith("7-")
        assert (home / "policy.toml").read_text() == published.read_text()
        assert main(["record", "--duration", "1", "--no-indicator"]) == 10  # consent first
        assert "policy changed" in capsys.readouterr().err.replace("\n", " ")
        # the background sync of a running recorder notices a new version too
        published.write_text(_policy_text(8))
        c.admin("policy", str(published))
        bg = BackgroundSync(home, Enrollment.load(home), review_hours=24)
        bg.run_once()
        assert bg.policy_changed.is_set()
        store = Store(home / "store")
        try:
            policy = load_in_force(None, home)
            assert policy.version.startswith("8-") and consent_state(store, policy) == "outdated"
        finally:
            store.close()


def test_server_retention_purges_old_sessions(tmp_path: Path, home: Path, capsys) -> None:
    _session(home / "store", 1)  # recorded in September 2026
    with Collector(tmp_path / "collector") as c:
        _enroll(c, capsys)
        _sync(capsys)
        c.admin("purge", "--retention-days", "3650")
        assert _totals(c)["sessions"] == 1
        c.admin("purge", "--retention-days", "30")
        totals = _totals(c)
        assert totals["sessions"] == 0 and totals["events"] == 0 and totals["frames"] == 0
        assert totals["tiles"] == 0
        assert not list((c.data_dir / "lake" / "events").rglob("*.parquet"))


def test_deletion_reaches_the_collector(backend: Backend, home: Path, capsys) -> None:
    store_root = home / "store"
    _session(store_root, 1)
    secret_session = _canary_session(store_root)
    with backend.collector() as c:
        _enroll(c, capsys)
        assert _sync(capsys)["sessions"] == 2
        assert CANARY in _lake_text(c)
        before = _totals(c)
        assert main(["forget", "--session", str(secret_session)]) == 0
        result = _sync(capsys)
        assert result["deletions"] == 1
        after = _totals(c)
        assert after["sessions"] == before["sessions"] - 1
        assert after["frames"] == before["frames"] - 1  # the frame only it showed
        assert after["tiles"] < before["tiles"]  # and the tiles only that frame used
        assert CANARY not in _lake_text(c)
        if backend.blobs is None:
            assert CANARY.encode() not in _all_bytes(backend.folder)
        # a late retry of the deleted session cannot bring it back
        token = json.loads((home / "collector.json").read_text())["token"]
        import httpx

        r = httpx.put(
            f"{c.url}/v1/sessions/{secret_session}",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "started_wall_ns": 1_790_000_000_000_000_000,
                "started_mono_ns": 1,
                "screen": [800, 600],
                "event_model": 1,
            },
        )
        assert r.status_code == 200 and r.json()["status"] == "deleted"
        assert _totals(c)["sessions"] == after["sessions"]
        # the session that was not deleted is whole
        assert _totals(c)["events"] == 45


def test_forget_a_span_deletes_only_that_span(backend: Backend, home: Path, capsys) -> None:
    store_root = home / "store"
    _session(store_root, 1)
    with backend.collector() as c:
        _enroll(c, capsys)
        _sync(capsys)
        store = Store(store_root)
        try:
            store.forget_span(1, 10, 20)
            kept = store.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        finally:
            store.close()
        assert _sync(capsys)["deletions"] == 1
        assert _totals(c)["events"] == kept
        # `forget --last` is a wall-clock span: everything recorded in it goes, on both sides
        assert main(["forget", "--last", "3650d"]) == 0
        assert _sync(capsys)["deletions"] == 1
        assert _totals(c)["events"] == 0 and _totals(c)["frames"] == 0


# -- schema and errors ------------------------------------------------------------------------
def test_migrations_make_exactly_the_tables_the_code_uses(tmp_path: Path, pg) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from demotrace.collector.db import metadata, open_db

    for url in (f"sqlite:///{tmp_path / 'c.db'}", pg.new_database("schema_check")):
        engine = open_db(url)
        open_db(url)  # a second start changes nothing
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        engine.dispose()
        assert diff == [], f"{url}: {diff}"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "demotrace", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_bad_configuration_is_one_clear_paragraph(tmp_path: Path, home: Path) -> None:
    from s3server import free_port

    port = free_port()
    down = _cli(
        "serve",
        "--db",
        f"postgresql://nobody@127.0.0.1:{port}/x",
        "--data-dir",
        str(tmp_path / "c"),
    )
    assert down.returncode == 13 and "Cannot reach the collector database" in down.stderr
    assert "Traceback" not in down.stderr
    weird = _cli("serve", "--db", "mysql://x@y/z", "--data-dir", str(tmp_path / "c"))
    assert weird.returncode == 13 and "neither SQLite nor PostgreSQL" in weird.stderr
    alone = _cli("sync")
    assert alone.returncode == 14 and "not enrolled" in alone.stderr
    nobody = _cli("enroll", f"http://127.0.0.1:{port}", "code", "--label", "x")
    assert nobody.returncode == 14 and "did not take" in nobody.stderr
    assert "Traceback" not in nobody.stderr


def test_enrolment_codes_are_one_time(tmp_path: Path, home: Path) -> None:
    with Collector(tmp_path / "collector") as c:
        code = c.enroll_code()
        assert _cli("enroll", c.url, code).returncode == 0
        again = _cli("enroll", c.url, code)
        assert again.returncode == 14 and "already used" in again.stderr
        devices = json.loads(c.admin("devices", "--json"))
        assert len(devices) == 1 and devices[0]["id"].startswith("d-")
        engine = sa.create_engine(f"sqlite:///{c.data_dir / 'collector.db'}")
        with engine.connect() as conn:  # credentials and codes are stored hashed
            stored = " ".join(
                str(r)
                for t in ("devices", "enroll_codes", "admins")
                for r in conn.execute(sa.text(f"SELECT * FROM {t}"))
            )
        engine.dispose()
        token = json.loads((home / "collector.json").read_text())["token"]
        assert token.split(".", 1)[1] not in stored and code not in stored
        assert c.admin_token and c.admin_token.split(".", 1)[1] not in stored


# -- consent reports and builds on the collector ----------------------------------------------
def test_consent_reports_builds_and_their_withdrawal(
    backend: Backend, home: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two devices sync and report consent; the admin sees counts; a build of the lake (the
    real job process) matches a local build of the same lake; a deletion withdraws it."""
    import time

    import httpx

    published = tmp_path / "policy.toml"
    published.write_text(_policy_text(5, review_hours=1))
    homes = [home, tmp_path / "home-b"]
    with backend.collector(extra=("--k-anonymity", "2")) as c:
        admin = {"Authorization": f"Bearer {c.admin_token}"}
        c.admin("policy", str(published))
        for h in homes:
            monkeypatch.setenv("DEMOTRACE_HOME", str(h))
            _session(h / "store", 1)
            _enroll(c, capsys)
            first = _sync(capsys)
            assert first["policy"].startswith("5-") and first["events"] == 45
            assert main(["consent", "--accept"]) == 0
            assert _sync(capsys)["events"] == 0  # this round only reports the consent
        consent = httpx.get(c.url + "/v1/admin/consent", headers=admin).json()
        assert [(v["accepted"], v["withdrawn"], v["not_answered"]) for v in consent] == [(2, 0, 0)]

        started = httpx.post(c.url + "/v1/admin/builds", json={"note": "t"}, headers=admin)
        assert started.status_code == 202 and started.json()["state"] == "queued"
        build_id = started.json()["id"]
        deadline = time.monotonic() + 180
        while (b := httpx.get(f"{c.url}/v1/admin/builds/{build_id}", headers=admin).json())[
            "state"
        ] in ("queued", "running"):
            assert time.monotonic() < deadline, b
            time.sleep(0.3)
        assert b["state"] == "done", b
        assert (b["done_sessions"], b["total_sessions"], b["devices"]) == (2, 2, 2)
        local = build(backend.lake, tmp_path / "local")
        assert (
            b["steps"] == local["counts"]["steps"] and b["episodes"] == local["counts"]["episodes"]
        )
        cov = httpx.get(f"{c.url}/v1/admin/builds/{build_id}/coverage", headers=admin).json()
        apps = {
            r["label"] for ch in cov["charts"] if ch["id"] == "hours_by_app" for r in ch["rows"]
        }
        assert cov["shown"] and apps == {"Workbench"}
        zipped = httpx.get(f"{c.url}/v1/admin/builds/{build_id}/dataset.zip", headers=admin)
        assert zipped.status_code == 200 and zipped.content[:2] == b"PK"
        # a device's credential cannot start or read builds
        device_token = json.loads((homes[1] / "collector.json").read_text())["token"]
        as_device = {"Authorization": f"Bearer {device_token}"}
        assert httpx.get(c.url + "/v1/admin/builds", headers=as_device).status_code == 403

        # the second device deletes its session and withdraws consent: the build goes
        assert main(["forget", "--session", "1"]) == 0
        assert main(["consent", "--withdraw"]) == 0
        assert _sync(capsys)["deletions"] == 1
        gone = httpx.get(f"{c.url}/v1/admin/builds/{build_id}", headers=admin).json()
        assert gone["state"] == "withdrawn" and "deleted data" in gone["error"]
        again = httpx.get(f"{c.url}/v1/admin/builds/{build_id}/dataset.zip", headers=admin)
        assert again.status_code == 409
        assert not open_blobs(backend.blobs or c.data_dir / "lake").exists(f"builds/{build_id}.zip")
        consent = httpx.get(c.url + "/v1/admin/consent", headers=admin).json()[0]
        assert (consent["accepted"], consent["withdrawn"]) == ("fewer than 2", "fewer than 2")

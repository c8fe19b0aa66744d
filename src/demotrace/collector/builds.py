"""Dataset builds on the collector: started from the admin pages or API, run as a separate
process over the lake, tracked in the ``builds`` table, downloadable as a zip.

A build runs ``python -m demotrace.collector.builds BUILD_ID`` (the collector's configuration
comes through the environment, as for server workers), so a server worker never spends its CPU
on one and a build outlives the worker that started it. The job reports progress (sessions done
of sessions in the lake) and a heartbeat to the database; any worker shows it. A build whose
heartbeat stops (its process died) is shown as failed.

What a build holds is recorded (``build_sessions``). When a device deletes data that a finished
build holds, the build is withdrawn: its zip and local copies are deleted and the page says why.
A deletion that lands while a build runs is caught when the build finishes. Copies downloaded
before cannot be recalled; the dataset card says the data is subject to deletion requests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from demotrace.collector import db as T
from demotrace.collector.coverage import aggregate, suppress
from demotrace.collector.service import Config, Problem, Service, now_ns
from demotrace.errors import DemotraceError

log = logging.getLogger("demotrace.collector")
ENV_CONFIG = "DEMOTRACE_COLLECTOR_CONFIG"
BUILD_ID = re.compile(r"b-[0-9a-f]{12}")
ENGINES = ("local", "ray")
HEARTBEAT_S = 15.0
STALE_S = 300.0  # no heartbeat for this long: the process running the build is gone
STATES = ("queued", "running", "done", "failed", "withdrawn")
_STORED_ZIP = (".parquet", ".png", ".webp", ".jpg")


def work_dir(config: Config) -> Path:
    """Where this host keeps build scratch space and unpacked datasets (a cache: the zip in the
    blob store is the build)."""
    if config.work_dir:
        return Path(config.work_dir)
    return Path(tempfile.gettempdir()) / f"demotrace-collector-{os.getuid()}"


def zip_key(build_id: str) -> str:
    return f"builds/{build_id}.zip"


def _check_id(build_id: str) -> str:
    if not BUILD_ID.fullmatch(build_id):
        raise Problem(
            404, f"There is no build {build_id[:40]!r}; build ids look like b-1a2b3c4d5e6f."
        )
    return build_id


def _zip_gone(build_id: str) -> Problem:
    return Problem(410, f"The build {build_id}'s zip is missing from the blob store; build again.")


def _row(service: Service, build_id: str) -> Any:
    with service._read() as conn:
        row = conn.execute(
            sa.select(T.builds).where(T.builds.c.id == _check_id(build_id))
        ).fetchone()
    if row is None:
        raise Problem(404, f"There is no build {build_id!r}.")
    return row


def describe(row: Any, k: int, now: int | None = None) -> dict[str, Any]:
    """A build as pages and the API show it (totals only once it spans ``k`` devices)."""
    now = now or now_ns()
    state, error = row.state, row.error
    if (
        state in ("queued", "running")
        and now - (row.heartbeat_ns or row.created_ns) > STALE_S * 1e9
    ):
        state = "failed"
        error = (
            "The process running this build stopped reporting (it ended, or its machine "
            "restarted) before finishing. Start a new build."
        )
    coverage = json.loads(row.coverage) if row.coverage else None
    devices = coverage.get("devices", 0) if coverage else 0
    out: dict[str, Any] = {
        "id": row.id,
        "state": state,
        "engine": row.engine,
        "note": row.note,
        "created_ns": row.created_ns,
        "started_ns": row.started_ns,
        "finished_ns": row.finished_ns,
        "done_sessions": row.done_sessions,
        "total_sessions": row.total_sessions,
        "bytes": row.bytes,
        "error": error,
    }
    if state == "done":
        if devices >= k:
            out.update(episodes=row.episodes, steps=row.steps, devices=devices)
        else:
            out["totals_hidden"] = f"fewer than {k} devices"
    return out


class Builds:
    """Dataset builds of one collector."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.k = service.config.k_anonymity
        self.work = work_dir(service.config)

    # -- starting and listing ---------------------------------------------------------------
    def start(
        self, engine: str = "local", note: str | None = None, *, spawn: bool = True
    ) -> dict[str, Any]:
        if engine not in ENGINES:
            raise Problem(422, f"Unknown build engine {engine!r}; use one of {', '.join(ENGINES)}.")
        if engine == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                raise Problem(
                    422,
                    "The ray engine needs Ray on the collector (pip install 'demotrace[ray]'); "
                    "use the local engine or install it.",
                ) from None
        build_id = f"b-{secrets.token_hex(6)}"
        now = now_ns()
        with self.service._write() as conn:
            conn.execute(
                T.builds.insert().values(
                    id=build_id,
                    state="queued",
                    engine=engine,
                    note=note,
                    created_ns=now,
                    heartbeat_ns=now,
                )
            )
        if spawn:
            self._spawn(build_id)
        return self.get(build_id)

    def _spawn(self, build_id: str) -> None:
        folder = self.work / "builds"
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, ENV_CONFIG: self.service.config.to_env()}
        with open(folder / f"{build_id}.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "demotrace.collector.builds", build_id],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # it outlives this worker, and a Ctrl-C meant for it
            )
        threading.Thread(target=proc.wait, name=f"reap-{build_id}", daemon=True).start()

    def list(self, limit: int = 200) -> list[dict[str, Any]]:
        """The newest ``limit`` builds, newest first."""
        with self.service._read() as conn:
            rows = conn.execute(
                sa.select(T.builds).order_by(T.builds.c.created_ns.desc()).limit(limit)
            ).fetchall()
        now = now_ns()
        return [describe(r, self.k, now) for r in rows]

    def get(self, build_id: str) -> dict[str, Any]:
        return describe(_row(self.service, build_id), self.k)

    def _done(self, build_id: str) -> Any:
        row = _row(self.service, build_id)
        if row.state != "done":
            shown = describe(row, self.k)
            why = f": {shown['error']}" if shown.get("error") else ""
            raise Problem(409, f"The build {build_id} is {shown['state']}, not done{why}.")
        return row

    # -- results ----------------------------------------------------------------------------
    def coverage(self, build_id: str) -> dict[str, Any]:
        row = self._done(build_id)
        return {"build": build_id, **suppress(json.loads(row.coverage or "{}"), self.k)}

    def zip_file(self, build_id: str) -> Path:
        """A local path of the build's zip (the blob itself for a folder store, else a cached
        copy)."""
        self._done(build_id)
        blobs = self.service.blobs
        path = blobs.local_path(zip_key(build_id))
        if path is not None:
            if path.is_file():
                return path
            raise _zip_gone(build_id)
        cached = self.work / "cache" / f"{build_id}.zip"
        if not cached.is_file():
            cached.parent.mkdir(parents=True, exist_ok=True)
            part = cached.with_suffix(f".{secrets.token_hex(4)}.part")
            try:
                blobs.get_file(zip_key(build_id), part)
            except KeyError:
                part.unlink(missing_ok=True)
                raise _zip_gone(build_id) from None
            os.replace(part, cached)
        return cached

    def dataset(self, build_id: str) -> Path:
        """The build's dataset unpacked on this host (for the replay viewer)."""
        folder = self.work / "datasets" / build_id
        self._done(build_id)
        if (folder / "meta" / "info.json").is_file():
            return folder
        archive = self.zip_file(build_id)
        tmp = folder.with_name(f".{build_id}.{secrets.token_hex(4)}")
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise Problem(500, f"The build {build_id}'s zip holds an unsafe path {name!r}.")
            zf.extractall(tmp)
        inner = tmp / "dataset"
        try:
            os.replace(inner, folder)
        except OSError:
            if not (folder / "meta" / "info.json").is_file():
                raise
        shutil.rmtree(tmp, ignore_errors=True)
        return folder

    def forget_local(self, build_id: str) -> None:
        shutil.rmtree(self.work / "datasets" / build_id, ignore_errors=True)
        (self.work / "cache" / f"{build_id}.zip").unlink(missing_ok=True)


# -- withdrawal -----------------------------------------------------------------------------
def withdraw(service: Service, device: str, session: int | None) -> list[str]:
    """Withdraw the finished builds that hold ``device``'s ``session`` (any of its sessions
    when None): called by every deletion, after its tombstone is written."""
    bs = T.build_sessions
    where = [bs.c.device == device]
    if session is not None:
        where.append(bs.c.session == session)
    with service._write() as conn:
        service._lock(conn, "builds")
        ids = sorted(
            {
                r[0]
                for r in conn.execute(
                    sa.select(bs.c.build)
                    .join(T.builds, T.builds.c.id == bs.c.build)
                    .where(*where, T.builds.c.state == "done")
                )
            }
        )
        for build_id in ids:
            _mark_withdrawn(conn, build_id)
    for build_id in ids:
        service.blobs.delete(zip_key(build_id))
        Builds(service).forget_local(build_id)
    return ids


def _mark_withdrawn(conn: sa.Connection, build_id: str) -> None:
    conn.execute(
        T.builds.update()
        .where(T.builds.c.id == build_id)
        .values(
            state="withdrawn",
            error="A device deleted data this build held, so the build was deleted. Start a "
            "new build; copies downloaded before are still subject to the deletion.",
        )
    )


# -- the job --------------------------------------------------------------------------------
def _zip_dataset(folder: Path, archive: Path) -> int:
    with zipfile.ZipFile(archive, "w", allowZip64=True) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                kind = zipfile.ZIP_STORED if path.suffix in _STORED_ZIP else zipfile.ZIP_DEFLATED
                zf.write(path, Path("dataset") / path.relative_to(folder), compress_type=kind)
    return archive.stat().st_size


def run_job(config: Config, build_id: str) -> int:
    """Run one queued build to its end (done, failed or withdrawn). Returns an exit status."""
    from demotrace.dataset.build import build

    service = Service(config)
    stop = threading.Event()
    try:
        with service._write() as conn:
            claimed = conn.execute(
                T.builds.update()
                .where(T.builds.c.id == build_id, T.builds.c.state == "queued")
                .values(state="running", started_ns=now_ns(), heartbeat_ns=now_ns())
            ).rowcount
        if not claimed:
            log.warning("build %s is not queued; nothing to do", build_id)
            return 1
        row = _row(service, build_id)

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                with contextlib.suppress(Exception), service._write() as conn:
                    conn.execute(
                        T.builds.update()
                        .where(T.builds.c.id == build_id)
                        .values(heartbeat_ns=now_ns())
                    )

        threading.Thread(target=beat, daemon=True).start()
        scratch = work_dir(config) / "builds" / f"{build_id}.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        held: list[tuple[str, int]] = []

        def progress(result: Any, done: int, total: int) -> None:
            if result.skipped is None:
                held.append((result.ref["device"], int(result.ref["session"])))
            with service._write() as conn:
                conn.execute(
                    T.builds.update()
                    .where(T.builds.c.id == build_id)
                    .values(done_sessions=done, total_sessions=total, heartbeat_ns=now_ns())
                )

        if next(iter(service.blobs.list("sessions/")), None) is None:
            _fail(
                service,
                build_id,
                "The lake holds no sessions: nothing has been uploaded yet (or all of it was "
                "deleted). Build again once devices have synced.",
            )
            return 2
        try:
            info = build(service.blobs.url, scratch / "dataset", row.engine, progress=progress)
            raw = aggregate(scratch / "dataset")
            size = _zip_dataset(scratch / "dataset", scratch / "dataset.zip")
            service.blobs.put_file(zip_key(build_id), scratch / "dataset.zip")
        except DemotraceError as exc:
            _fail(service, build_id, str(exc))
            return 2
        except Exception as exc:  # the page must say something; the log has the traceback
            log.exception("build %s failed", build_id)
            _fail(
                service, build_id, f"The build failed unexpectedly ({type(exc).__name__}: {exc})."
            )
            return 2
        counts = info.get("counts", {})
        withdrawn = _finish(
            service, build_id, row.started_ns or row.created_ns, held, raw, counts, size
        )
        if withdrawn:
            service.blobs.delete(zip_key(build_id))
        else:
            dest = work_dir(config) / "datasets" / build_id
            dest.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.replace(scratch / "dataset", dest)
        shutil.rmtree(scratch, ignore_errors=True)
        return 0
    finally:
        stop.set()
        service.close()


def _fail(service: Service, build_id: str, message: str) -> None:
    with service._write() as conn:
        conn.execute(
            T.builds.update()
            .where(T.builds.c.id == build_id)
            .values(state="failed", error=message, finished_ns=now_ns())
        )


def _finish(
    service: Service,
    build_id: str,
    started_ns: int,
    held: list[tuple[str, int]],
    raw: dict[str, Any],
    counts: dict[str, Any],
    size: int,
) -> bool:
    """Record what the build holds and mark it done, unless a deletion of any of it landed
    since it started (then it is withdrawn). Returns True when withdrawn."""
    ts = T.tombstones
    with service._write() as conn:
        service._lock(conn, "builds")  # against withdraw(): one of the two sees the other
        T.insert_ignore(
            conn,
            T.build_sessions,
            [{"build": build_id, "device": d, "session": s} for d, s in sorted(set(held))],
        )
        hit = False
        for device in sorted({d for d, _ in held}):
            sessions = [s for d, s in held if d == device]
            hit = hit or bool(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(ts)
                    .where(
                        ts.c.device == device,
                        ts.c.created_ns >= started_ns,
                        sa.or_(ts.c.session.is_(None), ts.c.session.in_(sessions)),
                    )
                ).scalar()
            )
        if hit:
            _mark_withdrawn(conn, build_id)
        else:
            conn.execute(
                T.builds.update()
                .where(T.builds.c.id == build_id)
                .values(
                    state="done",
                    finished_ns=now_ns(),
                    episodes=int(counts.get("episodes", 0)),
                    steps=int(counts.get("steps", 0)),
                    bytes=size,
                    coverage=json.dumps(raw),
                )
            )
    return hit


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not BUILD_ID.fullmatch(args[0]) or ENV_CONFIG not in os.environ:
        print(
            "usage: python -m demotrace.collector.builds BUILD_ID (started by `demotrace serve`, "
            f"with the collector's configuration in {ENV_CONFIG})",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run_job(Config.from_env(os.environ[ENV_CONFIG]), args[0])


if __name__ == "__main__":
    sys.exit(main())

"""A real collector for tests: ``demotrace serve`` as its own process on a loopback port."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from s3server import free_port


class Collector:
    """``demotrace serve`` on 127.0.0.1; :meth:`kill` and :meth:`start` again at will."""

    def __init__(
        self,
        data_dir: Path,
        *,
        db: str | None = None,
        blobs: str | None = None,
        env: dict[str, str] | None = None,
        workers: int = 1,
        port: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.db, self.blobs, self.workers = db, blobs, workers
        self.env = {**os.environ, **(env or {})}
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin_token: str | None = None
        self.log = self.data_dir / "serve.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def store_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.db:
            args += ["--db", self.db]
        if self.blobs:
            args += ["--blobs", self.blobs]
        return args

    def start(self, timeout: float = 30) -> Collector:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "demotrace",
            "serve",
            *self.store_args(),
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            *self.extra,
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, env=self.env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"demotrace serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            self.kill()
            raise RuntimeError(f"demotrace serve did not answer: {self.log.read_text()[-2000:]}")
        if self.admin_token is None:
            # printed before the server answers, and only on the database's first start
            assert self.proc.stdout is not None
            if select.select([self.proc.stdout], [], [], 0.5)[0]:
                line = self.proc.stdout.readline().decode().strip()
                self.admin_token = line if line.startswith("admin.") else None
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the server and every worker it started (the whole process group)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def admin(self, *args: str) -> str:
        """Run ``demotrace admin ...`` on the collector's database; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "demotrace", "admin", *args, *self.store_args()],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        if done.returncode:
            raise RuntimeError(f"demotrace admin {args} failed: {done.stderr}")
        return done.stdout.strip()

    def enroll_code(self) -> str:
        return self.admin("enroll-code").splitlines()[-1]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.kill(signal.SIGTERM)

"""A real S3-compatible server for tests: moto's standalone server in its own process.

Nothing is set globally: tests apply ``server.env`` themselves, e.g.
``mock.patch.dict(os.environ, server.env)`` in a module-scoped fixture.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    """A running moto server: its endpoint, the environment a client needs, a bucket maker."""

    endpoint: str
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    def client(self) -> Any:
        """A boto3 S3 client for this server (its own credentials, not the environment's)."""
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.env["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name``; returns the name."""
        self.client().create_bucket(Bucket=name)
        return name


def _answers(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(endpoint + "/", timeout=1).close()
    except urllib.error.HTTPError:
        return True  # any HTTP answer will do
    except OSError:
        return False
    return True


def _start(port: int, log: Any, timeout: float) -> subprocess.Popen[bytes] | None:
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None  # e.g. the port was taken meanwhile
        if _answers(f"http://127.0.0.1:{port}"):
            return proc
        time.sleep(0.05)
    _stop(proc)
    return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextmanager
def s3_server(timeout: float = 20.0) -> Iterator[S3Server]:
    """Run ``python -m moto.server`` on a free loopback port until the block ends."""
    with tempfile.TemporaryFile() as log:
        proc = None
        for _ in range(3):
            port = free_port()
            proc = _start(port, log, timeout)
            if proc is not None:
                break
        if proc is None:
            log.seek(0)
            tail = log.read()[-2000:].decode(errors="replace")
            raise RuntimeError(f"moto server did not start:\n{tail}")
        endpoint = f"http://127.0.0.1:{port}"
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DEMOTRACE_S3_ENDPOINT": endpoint,
        }
        try:
            yield S3Server(endpoint=endpoint, process=proc, env=env)
        finally:
            _stop(proc)

"""Schemathesis against a real `demotrace serve`: every operation of its own /openapi.json, with
a device credential on device routes and the admin credential on admin routes. Whatever the
requests, the collector answers 2xx or a 4xx JSON `{"error": ...}`, never a 5xx, stays healthy
and logs no traceback."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis.specs.openapi.schemas import OpenApiSchema

from collector_client import Device
from collector_proc import Collector

#: Generated examples per operation (the fuzzing phase); the coverage phase adds its own.
MAX_EXAMPLES = 25
SEED = 20_251_129
#: Every n-th request keeps the Authorization header schemathesis generated (auth parsing).
RAW_AUTH_EVERY = 5


@dataclasses.dataclass
class Target:
    collector: Collector
    device: Device
    admin_token: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    c = Collector(tmp_path_factory.mktemp("fuzz") / "collector").start()
    try:
        assert c.admin_token
        code = httpx.post(f"{c.url}/v1/admin/enroll-codes", json={}, headers=c.headers())
        device = Device.enroll(c.url, code.json()["code"], label="fuzz")
        assert device.put_session(1).status_code == 200  # something for GETs to find
        yield Target(c, device, c.admin_token)
        device.close()
    finally:
        c.kill()


@pytest.fixture(scope="module")
def api_schema(target: Target) -> OpenApiSchema:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
            "request-timeout": 30,
        }
    )
    return schemathesis.openapi.from_url(f"{target.collector.url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")
_calls = itertools.count()


@schema.parametrize()
def test_no_server_errors(case: schemathesis.Case, target: Target) -> None:
    """Each request gets 2xx, or a 4xx with a JSON error message."""
    token = target.admin_token if "admin" in (case.operation.tags or []) else target.device.token
    headers = None if next(_calls) % RAW_AUTH_EVERY == 0 else {"Authorization": f"Bearer {token}"}
    response = case.call(headers=headers, timeout=30)
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), where
        error = response.json().get("error")
        assert isinstance(error, str) and error, where


def test_still_healthy_and_no_traceback(target: Target) -> None:
    """After the fuzzing the server answers, and its log holds no traceback."""
    assert httpx.get(f"{target.collector.url}/v1/health", timeout=10).json()["ok"] is True
    r = target.device.http.get("/v1/sessions/1")
    assert r.status_code == 200, r.text
    log = Path(target.collector.log).read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]

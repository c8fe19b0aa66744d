"""Schemathesis against a real `demotrace serve`: every operation of its own /openapi.json, with
a device credential on device routes and the admin credential on admin routes. Whatever the
requests, the collector answers 2xx or a 4xx JSON `{"error": ...}`, never a 5xx, stays healthy
and logs no traceback.

Cases come from ``APIOperation.as_strategy()`` (positive and negative data) under a derandomized
Hypothesis run, so every run sends the same requests. (``schemathesis.pytest.from_fixture`` would
be the lazy way, but schemathesis 4.32.5 sets ``request.node._nodeid``, which pytest 9.2 no longer
has.)
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.schemas import OpenApiSchema

from collector_client import Device
from collector_proc import Collector
from demotrace.privacy.policy import demo_policy_path

#: Generated requests per operation.
MAX_EXAMPLES = 25
#: One request in this many keeps the Authorization header schemathesis generated (auth parsing).
RAW_AUTH_ONE_IN = 5
#: Every operation of the collector's schema; test_operations_are_all_fuzzed keeps it complete.
OPERATIONS = [
    ("GET", "/v1/health"),
    ("POST", "/v1/enroll"),
    ("GET", "/v1/device"),
    ("GET", "/v1/policy"),
    ("GET", "/v1/sessions"),
    ("GET", "/v1/sessions/{session}"),
    ("PUT", "/v1/sessions/{session}"),
    ("PUT", "/v1/sessions/{session}/segments/{first}-{last}"),
    ("POST", "/v1/blobs/missing"),
    ("POST", "/v1/blobs"),
    ("POST", "/v1/deletions"),
    ("PUT", "/v1/consent"),
    ("POST", "/v1/admin/enroll-codes"),
    ("GET", "/v1/admin/devices"),
    ("POST", "/v1/admin/devices/{device}/revoke"),
    ("PUT", "/v1/admin/policy"),
    ("GET", "/v1/admin/totals"),
    ("POST", "/v1/admin/purge"),
    ("GET", "/v1/admin/consent"),
    ("POST", "/v1/admin/builds"),
    ("GET", "/v1/admin/builds"),
    ("GET", "/v1/admin/builds/{build}"),
    ("GET", "/v1/admin/builds/{build}/coverage"),
    ("GET", "/v1/admin/builds/{build}/dataset.zip"),
]


# the admin policy route takes TOML text: send generated strings as they are
schemathesis.serializer.alias("application/toml", "text/plain")


@dataclasses.dataclass
class Target:
    """The collector under test, an enrolled device on it and the admin credential."""

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
        policy = demo_policy_path().read_bytes()
        r = httpx.put(f"{c.url}/v1/admin/policy", content=policy, headers=c.headers())
        assert r.status_code == 200, r.text
        yield Target(c, device, c.admin_token)
        device.close()
    finally:
        c.kill()


@pytest.fixture(scope="module")
def api_schema(target: Target) -> OpenApiSchema:
    """The schema the running server publishes."""
    return schemathesis.openapi.from_url(f"{target.collector.url}/openapi.json")


def test_operations_are_all_fuzzed(api_schema: OpenApiSchema) -> None:
    """The list fuzzed below is every operation the server publishes."""
    published = {
        (result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()
    }
    assert published == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_errors(
    api_schema: OpenApiSchema, target: Target, method: str, path: str
) -> None:
    """Each request gets 2xx, or a 4xx with a JSON error message."""
    operation = api_schema[path][method]
    admin = "admin" in (operation.tags or [])
    token = target.admin_token if admin else target.device.token
    cases = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )
    seen: dict[int, int] = {}
    sent = itertools.count(1)

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: schemathesis.Case) -> None:
        if next(sent) % RAW_AUTH_ONE_IN:  # replace whatever credential was generated
            generated = case.headers or {}
            case.headers = {k: v for k, v in generated.items() if k.lower() != "authorization"}
            case.headers["Authorization"] = f"Bearer {token}"
        response = case.call(timeout=30)
        status = response.status_code
        seen[status] = seen.get(status, 0) + 1
        where = f"{case.method} {case.formatted_path} -> {status}: {response.text[:300]}"
        assert status < 500, where
        if status >= 400:
            content_type = response.headers.get("content-type", [""])[0]
            assert content_type.startswith("application/json"), where
            error = response.json().get("error")
            assert isinstance(error, str) and error, where

    run()
    assert set(seen) - {401}, f"no request got past the credential check: {seen}"


def test_still_healthy_and_no_traceback(target: Target) -> None:
    """After the fuzzing the server answers, and its log holds no traceback."""
    assert httpx.get(f"{target.collector.url}/v1/health", timeout=10).json()["ok"] is True
    for path in ("/v1/device", "/v1/sessions"):  # fuzzed deletions may have taken session 1
        r = target.device.http.get(path)
        assert r.status_code == 200, r.text
    log = Path(target.collector.log).read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]

"""The collector's admin back end: consent counts per policy version, dataset builds over the
lake (progress, coverage with k-anonymity, download), and builds withdrawn by deletions.

Builds run the real build job (:func:`demotrace.collector.builds.run_job`) over a real lake:
synthetic work sessions exported under seven pseudonymous devices, six in the app "Workbench"
and one alone in "Ledger", so the coverage must show Workbench and hide Ledger.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from demotrace.collector import builds as B
from demotrace.collector.coverage import aggregate, suppress
from demotrace.collector.service import Config, Problem, Service
from demotrace.lake import export_session
from sync_fixture import write_work_session

POLICY = """format = 1
revision = {v}
name = "Test policy"
purpose = "tests"
organisation = "o"
contact = "c"
who_sees = "w"
[[apps]]
name = "Workbench"
class = ["Workbench"]
keystrokes = "text"
"""
COMMON = [f"d-{i:012x}" for i in range(1, 7)]  # six devices in Workbench
LONER = "d-0000000000aa"  # the only device in Ledger


def _enroll(service: Service, n: int) -> list[str]:
    out = []
    for i in range(n):
        code = service.new_enroll_code()["code"]
        key = hashlib.sha256(f"secret-{i}".encode()).hexdigest()
        out.append(service.enroll(code, None, key)["device"])
    return out


@pytest.fixture
def service(tmp_path: Path) -> Any:
    s = Service(Config.in_folder(tmp_path / "collector"))
    yield s
    s.close()


def test_consent_counts_per_version_hide_small_groups(service: Service) -> None:
    first = service.put_policy(POLICY.format(v=1))["version"]
    second_v = service.put_policy(POLICY.format(v=2))["version"]
    devices = _enroll(service, 8)
    t = 1_700_000_000 * 10**9
    for i, d in enumerate(devices):
        answers = [{"version": first, "state": "accepted", "at_ns": t}]
        if i < 6:
            answers.append({"version": second_v, "state": "accepted", "at_ns": t + 10})
        elif i == 6:
            answers.append({"version": second_v, "state": "withdrawn", "at_ns": t + 10})
        service.report_consent(d, answers)
    # an older answer arriving late changes nothing
    assert service.report_consent(
        devices[6], [{"version": second_v, "state": "accepted", "at_ns": t}]
    ) == {"versions": 1, "changed": 0}
    summary = {row["version"]: row for row in service.consent_summary()}
    assert summary[second_v]["current"] and not summary[first]["current"]
    # all 8 accepted the first version: exact counts
    assert (summary[first]["accepted"], summary[first]["withdrawn"]) == (8, 0)
    assert summary[first]["not_answered"] == 0
    # the second: 6 accepted, 1 withdrew, 1 never answered. The small cells are hidden, and the
    # large one is rounded, or 8 devices - 6 would give the withdrawn count back.
    second = summary[second_v]
    assert second["withdrawn"] == "fewer than 5" and second["not_answered"] == "fewer than 5"
    assert second["accepted"] == "5 or more"
    # a revoked device no longer counts
    service.revoke(devices[7])
    second = {r["version"]: r for r in service.consent_summary()}[second_v]
    assert second["not_answered"] == 0 and second["withdrawn"] == "fewer than 5"
    text = json.dumps(service.consent_summary())
    assert not any(d in text for d in devices)


@pytest.fixture(scope="module")
def work_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("stores")
    common = write_work_session(root / "a", 1, events=600, frames=8, shared=3)
    loner = write_work_session(root / "b", 2, events=400, frames=6, shared=3, app="Ledger")
    return {"common": (root / "a", common), "loner": (root / "b", loner)}


def _lake(service: Service, work_store: dict[str, Any]) -> None:
    store, sid = work_store["common"]
    for device in COMMON:
        export_session(store, sid, service.blobs.url, device)
    store, sid = work_store["loner"]
    export_session(store, sid, service.blobs.url, LONER)


def _run(service: Service, exit_status: int = 0) -> dict[str, Any]:
    """Start a build and run its job here; the build as the API shows it after."""
    started = B.Builds(service).start("local", "test", spawn=False)
    assert started["state"] == "queued"
    assert B.run_job(service.config, started["id"]) == exit_status
    return B.Builds(service).get(started["id"])


def test_build_over_the_lake_has_progress_coverage_and_a_zip(
    service: Service, work_store: dict[str, Any]
) -> None:
    _lake(service, work_store)
    builds = B.Builds(service)
    done = _run(service)
    assert done["state"] == "done", done
    assert done["done_sessions"] == done["total_sessions"] == 7
    assert done["devices"] == 7 and done["steps"] > 0 and done["episodes"] >= 7
    # the zip is the dataset, and unpacks to the same step count
    with zipfile.ZipFile(builds.zip_file(done["id"])) as zf:
        assert "dataset/meta/info.json" in zf.namelist()
        info = json.loads(zf.read("dataset/meta/info.json"))
    assert info["counts"]["steps"] == done["steps"]
    folder = builds.dataset(done["id"])
    steps = sum(pq.read_metadata(f).num_rows for f in (folder / "data").glob("steps-*.parquet"))
    assert steps == done["steps"]

    cov = builds.coverage(done["id"])
    assert cov["shown"] and cov["k"] == 5 and cov["devices"] == 7
    charts = {c["id"]: c for c in cov["charts"]}
    apps = {r["label"]: r["value"] for r in charts["hours_by_app"]["rows"]}
    assert "Workbench" in apps and apps["Workbench"] > 0
    assert "Ledger" not in apps and charts["hours_by_app"]["hidden_groups"] == 1
    assert "fewer than 5 devices" in charts["hours_by_app"]["note"]
    actions = {r["label"] for r in charts["steps_by_action"]["rows"]}
    assert {"click", "type"} <= actions
    assert charts["episodes_by_length"]["rows"]
    assert LONER not in json.dumps(cov) and COMMON[0] not in json.dumps(cov)

    # the raw figures agree with the dataset: Workbench's steps come from six devices
    raw = aggregate(folder)
    by_app = {r["label"]: r for r in raw["charts"]["hours_by_app"]}
    assert by_app["Workbench"]["devices"] == 6 and by_app["Ledger"]["devices"] == 1
    assert suppress(raw, 8)["shown"] is False  # seven devices: nothing at k=8


def test_a_deletion_withdraws_the_builds_that_hold_it(
    service: Service, work_store: dict[str, Any]
) -> None:
    _lake(service, work_store)
    builds = B.Builds(service)
    done = _run(service)
    zip_path = builds.zip_file(done["id"])
    sid = work_store["loner"][1]
    result = service.delete(LONER, "req-000001", {"session": sid})
    assert result["builds_withdrawn"] == 1
    gone = builds.get(done["id"])
    assert gone["state"] == "withdrawn" and "deleted data" in gone["error"]
    assert not zip_path.exists() and not service.blobs.exists(B.zip_key(done["id"]))
    with pytest.raises(Problem) as refused:
        builds.zip_file(done["id"])
    assert refused.value.status == 409
    # builds that do not hold it stay: a build over the other devices only
    # (the lake here was written directly, not uploaded, so the delete left its files)
    other = _run(service)
    assert service.delete(COMMON[0], "req-000003", {"session": 999})["builds_withdrawn"] == 0
    assert builds.get(other["id"])["state"] == "done"


def test_a_deletion_during_a_build_withdraws_it_at_the_end(
    service: Service, work_store: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _lake(service, work_store)
    real = B.aggregate

    def delete_meanwhile(folder: Path) -> dict[str, Any]:
        # the dataset is written: a deletion lands before the build is recorded as done
        service.delete(COMMON[0], "req-000002", {"since_wall_ns": 0, "until_wall_ns": 2**62})
        return real(folder)

    monkeypatch.setattr(B, "aggregate", delete_meanwhile)
    out = _run(service)
    assert out["state"] == "withdrawn"
    assert not service.blobs.exists(B.zip_key(out["id"]))


def test_a_build_of_an_empty_lake_fails_with_a_reason(service: Service) -> None:
    out = _run(service, exit_status=2)
    assert out["state"] == "failed" and "holds no sessions" in out["error"]


def test_a_build_whose_process_died_shows_as_failed(service: Service) -> None:
    started = B.Builds(service).start("local", None, spawn=False)
    from demotrace.collector import db as T

    with service._write() as conn:
        conn.execute(
            T.builds.update()
            .where(T.builds.c.id == started["id"])
            .values(state="running", heartbeat_ns=1)
        )
    shown = B.Builds(service).get(started["id"])
    assert shown["state"] == "failed" and "stopped reporting" in shown["error"]


def test_unknown_builds_and_engines_are_refused(service: Service) -> None:
    builds = B.Builds(service)
    for bad in ("b-000000000000", "../x", "b-zz"):
        with pytest.raises(Problem) as e:
            builds.get(bad)
        assert e.value.status == 404
    with pytest.raises(Problem) as e:
        builds.start("spark")
    assert e.value.status == 422

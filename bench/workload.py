"""The standard workload: the shipped scenarios in a loop at human speed, recorded.

Measured in one run, on the same input:

- CPU share of one core and peak RSS of ``demotrace record`` (frames on), beside
  ``xinput test-xi2 --root`` consuming the same events;
- bytes stored per hour (the store folder after the recorder stopped), beside two baselines
  computed from the same recording: the events as JSON lines (what a naive recorder writes) and
  one full-screen lossless WebP per action (a frame per action without tiling);
- the age of the frame paired with each action: the time from the last grab that verified the
  screen to the action's first event, and from the grab itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import cpu_seconds, rss_peak_mb, start_demotrace, start_xinput, stop
from demotrace.errors import ScenarioError
from demotrace.model import Kind
from demotrace.store.db import Store
from demotrace.store.frames import FrameReader
from demotrace.testbench.desktop import VirtualDesktop
from demotrace.testbench.scenarios import load_scenarios, run_scenario
from demotrace.testbench.worker import ScriptedWorker


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)

    def pick(q: float) -> float:
        return v[min(len(v) - 1, int(q * len(v)))]

    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": v[-1], "n": len(v)}


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def json_lines_bytes(store: Store, session: int) -> int:
    total = 0
    for ev in store.events(session):
        if ev.kind == Kind.FRAME:
            continue
        row = {k: v for k, v in dataclasses.asdict(ev).items() if v is not None}
        row["kind"] = ev.kind.name.lower()
        total += len(json.dumps(row)) + 1
    return total


def full_frame_bytes(store: Store, session: int, sample: int = 120) -> tuple[float, int]:
    """Mean bytes of a full-screen lossless WebP per action frame (a random sample)."""
    reader = FrameReader(store.db)
    frames = [
        ev.data["frame"]
        for ev in store.events(session, (Kind.FRAME,))
        if ev.data and "for_seq" in ev.data
    ]
    random.Random(1).shuffle(frames)
    sizes = []
    for fh in frames[:sample]:
        out = io.BytesIO()
        reader.image(bytes.fromhex(fh)).save(out, "WEBP", lossless=True, quality=80, method=4)
        sizes.append(len(out.getvalue()))
    return (statistics.mean(sizes) if sizes else 0.0), len(frames)


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=Path("bench/out/workload.json"))
    args = ap.parse_args()
    scenarios = load_scenarios()
    with VirtualDesktop() as desk, tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        rec = start_demotrace(desk.display, home)
        base = start_xinput(desk.display)
        cpu_rec0, cpu_base0 = cpu_seconds(rec.pid), cpu_seconds(base.pid)
        t0 = time.monotonic()
        loops = 0
        failures: list[str] = []
        with ScriptedWorker(desk.display, Path(tmp) / "truth.jsonl", seed=3) as worker:
            while time.monotonic() - t0 < args.minutes * 60:
                scenario = scenarios[loops % len(scenarios)]
                for name in list(desk.apps):
                    desk.stop_app(name)
                try:
                    run_scenario(scenario, desk, worker)
                except ScenarioError as exc:  # the app missed an input: note it, go on
                    failures.append(str(exc))
                loops += 1
            sent = dict(worker.sent)
        wall = time.monotonic() - t0
        cpu_rec = cpu_seconds(rec.pid) - cpu_rec0
        cpu_base = cpu_seconds(base.pid) - cpu_base0
        rss = rss_peak_mb(rec.pid)
        stop(rec)
        stop(base)
        with Store(home / "store", create=False) as store:
            session = store.sessions()[-1]["id"]
            counts = store.counts(session)
            frames = [ev.data for ev in store.events(session, (Kind.FRAME,)) if ev.data]
            paired = [f for f in frames if "for_seq" in f]
            jsonl = json_lines_bytes(store, session)
            full_mean, n_actions = full_frame_bytes(store, session)
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored = folder_bytes(home / "store")
    hours = wall / 3600
    n_input = sum(counts.get(k, 0) for k in ("move", "button", "key", "wheel"))
    result = {
        "minutes": wall / 60,
        "scenario_runs": loops,
        "scenario_failures": failures,
        "events_sent": sent,
        "events_recorded": counts,
        "input_events_per_s": n_input / wall,
        "actions_with_frames": len(paired),
        "actions_per_s": len(paired) / wall,
        "cpu_share_pct": {"demotrace": 100 * cpu_rec / wall, "xinput": 100 * cpu_base / wall},
        "rss_peak_mb": rss,
        "bytes_per_hour_mb": {
            "demotrace_store": stored / hours / 1e6,
            "baseline_events_jsonl": jsonl / hours / 1e6,
            "baseline_full_webp_per_action": (jsonl + full_mean * n_actions) / hours / 1e6,
        },
        "frame_age_ms": {
            "since_verified": percentiles([f["age_ns"] / 1e6 for f in paired]),
            "since_grab": percentiles(
                [(f["age_ns"] + f["t_verified_ns"] - f["t_grab_ns"]) / 1e6 for f in paired]
            ),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

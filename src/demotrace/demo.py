"""`demotrace demo`: a private virtual desktop, scripted work on real apps, recorded.

The recorder runs as its own process (``demotrace record``), exactly as a person would start it;
the scripted worker drives the workbench and xterm through XTEST and writes its ground truth next
to the recording.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from demotrace.errors import DemotraceError, ScenarioError
from demotrace.paths import store_dir

#: The port `make demo` suggests for the viewer.
VIEW_PORT = 8765


def run_demo(
    home: Path | None = None,
    scenarios: list[str] | None = None,
    speed: float = 1.0,
    console: Console | None = None,
) -> dict[str, Any]:
    from demotrace.control import call
    from demotrace.privacy.policy import demo_policy_path
    from demotrace.store.db import Store
    from demotrace.summary import session_summary
    from demotrace.testbench.desktop import VirtualDesktop
    from demotrace.testbench.recorder_process import start_recorder, stop_recorder
    from demotrace.testbench.scenarios import load_scenarios, run_scenario
    from demotrace.testbench.worker import ScriptedWorker

    console = console or Console(stderr=True)
    chosen = load_scenarios(scenarios)
    if home is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        home = Path("demo-out") / f"run-{stamp}"
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    truth = home / "ground-truth.jsonl"
    console.print(f"[bold]demotrace demo[/]: {len(chosen)} scenarios, data in {home}")
    with VirtualDesktop() as desk:
        console.print(f"virtual desktop {desk.display} ({desk.width}x{desk.height}) is up")
        policy = demo_policy_path()
        console.print(
            f"the scripted worker consents to the demo policy ({policy}); read it with "
            f"`demotrace consent --show --policy {policy}`"
        )
        recorder = start_recorder(desk.display, home, policy=policy)
        try:
            console.print(f"[bold red]●[/] recorder running (pid {recorder.pid})")
            progress = Progress(
                TextColumn("{task.description:<56}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} scenarios"),
                TimeElapsedColumn(),
                console=console,
            )
            with progress, ScriptedWorker(desk.display, truth, seed=7, speed=speed) as worker:
                task = progress.add_task("scripted work", total=len(chosen))
                for scenario in chosen:
                    progress.update(task, description=f"{scenario.name}: {scenario.title}"[:56])
                    for attempt in range(2):
                        for name in list(desk.apps):  # every task starts from fresh apps
                            desk.stop_app(name)
                        # the worker says what the task is, as a person would
                        call(home, {"cmd": "task", "what": "start", "text": scenario.instruction})
                        try:
                            run_scenario(scenario, desk, worker)
                            break
                        except ScenarioError as exc:
                            if attempt:
                                raise
                            console.print(f"[yellow]retrying {scenario.name}:[/] {exc}")
                        finally:
                            call(home, {"cmd": "task", "what": "end"})
                    progress.advance(task)
            time.sleep(1.0)  # let the last frames and events commit
        finally:
            stop_recorder(recorder)
    if recorder.returncode != 0:
        err = recorder.stderr.read() if recorder.stderr else ""
        raise DemotraceError(f"The recorder failed: {err.strip()}")
    with Store(store_dir(home), create=False) as store:
        session = store.sessions()[-1]["id"]
        summary = session_summary(store, session)
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(summary["counts"].items()))
    console.print(
        f"[bold]recorded session {session}[/]: {summary['duration_s']:.0f} s, {counts}; "
        f"{summary['frames']['frames']} distinct screens in "
        f"{summary['bytes']['frames'] / 1024:.0f} KB"
    )
    console.print(f"recording: {store_dir(home)}  (DEMOTRACE_HOME={home})")
    console.print(f"ground truth of the scripted worker: {truth}")
    dataset = home / "dataset"
    info, score = build_and_score(home, session, truth, dataset, console)
    exe = Path(sys.executable).parent / "demotrace"
    command = str(exe) if exe.exists() else "demotrace"
    console.print(
        f"look at it: DEMOTRACE_HOME={home} {command} show {session} --frames-out {home / 'frames'}"
    )
    console.print(f"the dataset: {dataset} (its card: {dataset / 'README.md'})")
    console.print(
        f"replay it in your browser: {command} view {dataset} --port {VIEW_PORT}  "
        f"-> http://127.0.0.1:{VIEW_PORT}/"
    )
    return {
        "home": str(home),
        "session": session,
        "summary": summary,
        "truth": str(truth),
        "dataset": str(dataset),
        "counts": info["counts"],
        "score": score,
    }


def build_and_score(
    home: Path, session: int, truth: Path, dataset: Path, console: Console
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build the dataset of ``home`` and score the session's steps against the ground truth."""
    import pyarrow.parquet as pq

    from demotrace.dataset.build import build
    from demotrace.privacy.redact import redact
    from demotrace.store.db import Store
    from demotrace.testbench.truth import expected_actions, read_truth, score

    info = build(home, dataset, overwrite=True)
    c = info["counts"]
    console.print(
        f"[bold]dataset built[/]: {c['steps']:,} steps in {c['episodes']:,} episodes, {dataset}"
    )
    with Store(store_dir(home), create=False) as store:
        ref = store.session(session)
    assert ref is not None
    steps = pq.read_table(
        dataset / "data",
        columns=["session", "action", "skills", "t_start", "screen_w", "screen_h"],
        filters=[("session", "=", session)],
    ).to_pylist()
    found = [found_step(r, ref) for r in steps]
    lines = [
        line
        for line in read_truth(truth)
        if ref["started_mono_ns"] <= line["t_end_ns"] <= (ref["ended_mono_ns"] or 1 << 62)
    ]
    result = score(expected_actions(lines, redact), found)
    console.print(
        f"steps against the scripted worker's ground truth: precision {result.precision:.1%}, "
        f"recall {result.recall:.1%} ({result.matched} of {result.expected} actions)"
    )
    return info, {
        "precision": result.precision,
        "recall": result.recall,
        "matched": result.matched,
        "expected": result.expected,
        "found": result.found,
    }


def found_step(row: dict[str, Any], session: dict[str, Any]) -> Any:
    """A dataset step back in the scorer's terms: pixels, and the session's monotonic clock."""
    import json

    from demotrace.testbench.truth import Found

    action = json.loads(row["action"])
    w, h = row["screen_w"], row["screen_h"]
    fields = {k: v for k, v in action.items() if k not in ("type", "target")}
    for key, size in (("x", w), ("y", h)):
        if key in fields:
            fields[key] = round(fields[key] * size)
    if "path" in fields:
        fields["path"] = [[round(x * w), round(y * h)] for x, y in fields["path"]]
    t = row["t_start"]
    wall = t.value if hasattr(t, "value") else int(t.timestamp() * 1e9)
    mono = wall - session["started_wall_ns"] + session["started_mono_ns"]
    return Found(action["type"], mono, fields, list(row["skills"] or []))

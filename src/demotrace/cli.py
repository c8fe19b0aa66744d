"""The command line: thin commands over the library. ``demotrace --help`` lists them."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from demotrace import __version__, argtypes
from demotrace.errors import DemotraceError, StoreError
from demotrace.paths import data_home, store_dir

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def _open_store(create: bool):
    from demotrace.store.db import Store

    return Store(store_dir(data_home()), create=create)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


# -- record -----------------------------------------------------------------------------------
def cmd_record(args: argparse.Namespace) -> int:
    from demotrace.privacy.consent import load_in_force, purge, setup_log
    from demotrace.recorder import Recorder, RecorderConfig, require_consent

    home = data_home()
    policy = load_in_force(args.policy, home)
    store = _open_store(create=True)
    require_consent(store, policy)  # before anything else happens
    setup_log(home)
    for gone in purge(store, policy):
        err.print(f"retention: deleted session {gone['session']} ({gone['why']})")
    config = RecorderConfig(frames=not args.no_frames, indicator=not args.no_indicator)
    recorder = Recorder(store, policy, args.display, config, home=home)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    session = recorder.start()
    background = _background_sync(args, home, policy)
    for warning in recorder.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    deadline = time.monotonic() + args.duration if args.duration else None
    err.print(
        f"[bold red]●[/] recording session {session} on {recorder.display} into {store.root} "
        f"under the policy {policy.name!r} ({policy.version}); pause with {policy.hotkey} or "
        "`demotrace pause`, Ctrl-C to stop"
    )
    last_purge = time.monotonic()
    policy_stop = False
    try:
        with err.status("", spinner="dots") if err.is_terminal else _nullcontext() as status:
            while not stop.wait(0.5):
                if recorder.failed.is_set():
                    break
                if background is not None and background.policy_changed.is_set():
                    policy_stop = True
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if time.monotonic() - last_purge > 600:
                    last_purge = time.monotonic()
                    purge(store, policy, keep=session)
                if status is not None:
                    c = recorder.counts
                    state = recorder.status()["state"]
                    status.update(f"session {session} ({state}): {sum(c.values()):,} events")
    finally:
        summary = recorder.stop()
        if background is not None:
            background.stop()
        store.close()
    if policy_stop:
        from demotrace.errors import ConsentError

        raise ConsentError(
            f"Recording stopped: the collector published a new policy (session {session} is "
            "kept). Read what it captures with `demotrace consent --show`, agree with "
            "`demotrace consent --accept`, then start `demotrace record` again."
        )
    if args.json:
        out.print_json(json.dumps(summary))
    else:
        n = sum(summary["events"].values())
        err.print(
            f"[bold]■[/] stopped session {session}: {n:,} events, "
            f"{summary['events'].get('frame', 0):,} frames paired, {summary['seconds']:.1f} s"
        )
    if recorder.error is not None:
        raise recorder.error
    return 0


def _background_sync(args: argparse.Namespace, home: Path, policy: Any) -> Any:
    """A sync thread while recording, when this machine is enrolled with a collector."""
    import os

    from demotrace.sync.enrollment import Enrollment

    if args.sync_every <= 0:
        return None
    enrollment = Enrollment.load(home)
    if enrollment is None:
        return None  # and the sync client (httpx, pyarrow: 30 MB) is never imported
    from demotrace.sync.background import BackgroundSync

    by_hand = bool(args.policy or os.environ.get("DEMOTRACE_POLICY"))  # stays in force
    return BackgroundSync(
        home, enrollment, policy.review_hours, every_s=args.sync_every, follow_policy=not by_hand
    ).start()


# -- consent ----------------------------------------------------------------------------------
def cmd_consent(args: argparse.Namespace) -> int:
    from demotrace.control import call
    from demotrace.errors import ControlError
    from demotrace.privacy import consent
    from demotrace.privacy.notice import notice_dict, render_notice

    home = data_home()
    policy = consent.load_in_force(args.policy, home)
    store = _open_store(create=True)
    consent.setup_log(home)
    try:
        if args.accept:
            consent.accept(store, policy)
            consent.log.info("consent: accepted policy %s", policy.version)
            msg = (
                f"You agreed to the policy {policy.name!r}, version {policy.version}. "
                "`demotrace record` may now record within its scope; withdraw any time with "
                "`demotrace consent --withdraw`."
            )
        elif args.withdraw:
            consent.withdraw(store, policy)
            consent.log.info("consent: withdrawn (policy %s)", policy.version)
            stopped = False
            try:
                call(home, {"cmd": "stop"})
                stopped = True
            except ControlError:
                pass
            msg = "You withdrew your consent: nothing more will be recorded."
            if stopped:
                msg += " The running recorder is stopping."
            n = len(store.sessions())
            delete = args.delete
            if not delete and n and sys.stdin.isatty() and not args.json:
                answer = input(f"Delete all {n} recorded sessions on this machine now? [y/N] ")
                delete = answer.strip().lower() in ("y", "yes")
            if delete and n:
                if stopped:
                    time.sleep(1.0)  # let it commit and close
                store.forget(sessions=[s["id"] for s in store.sessions()], reason="withdraw")
                msg += f" All {n} local sessions were deleted."
            elif n:
                msg += (
                    f" Your {n} recorded sessions are still here; delete them with "
                    "`demotrace forget --all`."
                )
        else:
            state = consent.consent_state(store, policy)
            if args.json:
                notice = notice_dict(policy)
                out.print_json(
                    json.dumps(
                        {"state": state, "policy": policy.summary(), "notice": notice},
                        default=str,
                    )
                )
                return 0
            out.print(render_notice(policy), markup=False, highlight=False)
            out.print(f"\nYour consent to this version: {state}.")
            return 0
    finally:
        store.close()
    if args.json:
        out.print_json(json.dumps({"ok": True, "policy": policy.version, "message": msg}))
    else:
        err.print(msg)
    return 0


# -- pause / resume / status / forget --------------------------------------------------------
_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$"
)


def parse_duration(text: str) -> float:
    """Seconds in "15m", "90s", "1h30m", "2h", "7d" (a bare number is minutes)."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text) * 60
    m = _DURATION.match(text)
    if not text or m is None or not any(m.groups()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; write it like 15m, 90s, 1h30m, 7d"
        )
    d, h, mi, se = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + se


def cmd_pause(args: argparse.Namespace) -> int:
    from demotrace.control import call

    answer = call(data_home(), {"cmd": "pause", "seconds": args.for_})
    return _print_status(answer, args.json)


def cmd_resume(args: argparse.Namespace) -> int:
    from demotrace.control import call

    return _print_status(call(data_home(), {"cmd": "resume"}), args.json)


def cmd_status(args: argparse.Namespace) -> int:
    from demotrace.control import call

    return _print_status(call(data_home(), {"cmd": "status"}), args.json)


def _print_status(answer: dict[str, Any], as_json: bool) -> int:
    if as_json:
        out.print_json(json.dumps(answer))
        return 0
    line = f"recorder (pid {answer.get('pid')}): {answer.get('state')}"
    if answer.get("pause_left_s") is not None:
        line += f", resumes in {answer['pause_left_s'] / 60:.1f} min"
    line += f"; session {answer.get('session')}, policy {answer.get('policy')}"
    out.print(line)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from demotrace.control import call
    from demotrace.errors import ControlError, UnknownSessionError

    store = _open_store(create=False)
    try:
        ids = [sess["id"] for sess in store.sessions()]
        request: dict[str, Any] = {"cmd": "forget"}
        if args.last is not None:
            request["since_wall_ns"] = time.time_ns() - int(args.last * 1e9)
            what = f"the last {args.last / 60:g} minutes"
        elif args.session is not None:
            if args.session not in ids:
                raise UnknownSessionError(
                    f"There is no session {args.session} in {store.root}; "
                    "`demotrace sessions` lists them."
                )
            request["sessions"] = [args.session]
            what = f"session {args.session}"
        else:
            request["sessions"] = ids
            what = "every session"
        try:  # a running recorder deletes, so that it drops what it holds too
            counts = call(data_home(), request, timeout=60)
        except ControlError:
            counts = store.forget(
                since_wall_ns=request.get("since_wall_ns"), sessions=request.get("sessions", ())
            )
    finally:
        store.close()
    counts.pop("ok", None)
    if args.json:
        out.print_json(json.dumps(counts))
    else:
        err.print(
            f"Deleted {what}: {counts.get('events', 0):,} events, {counts.get('frames', 0):,} "
            f"frames, {counts.get('tiles', 0):,} tiles."
        )
    return 0


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# -- sessions / show --------------------------------------------------------------------------
def cmd_sessions(args: argparse.Namespace) -> int:
    from demotrace.summary import session_summary

    store = _open_store(create=False)
    rows = [session_summary(store, s["id"]) for s in store.sessions()]
    store.close()
    if args.json:
        out.print_json(json.dumps(rows))
        return 0
    table = Table(title=f"Sessions in {store.root}")
    for col in ("id", "started", "status", "duration", "events", "frames", "apps", "size"):
        table.add_column(
            col, justify="right" if col in ("id", "events", "frames", "size") else "left"
        )
    for r in rows:
        started = dt.datetime.fromtimestamp(r["started_wall_ns"] / 1e9).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
        table.add_row(
            str(r["id"]),
            started,
            r["status"],
            f"{r['duration_s']:.1f} s",
            f"{r['events']:,}",
            f"{r['frames']['paired']:,}",
            ", ".join(r["apps"]),
            "≈" + _human_bytes(r["bytes"]["total_approx"]),
        )
    out.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from demotrace.summary import session_summary

    store = _open_store(create=False)
    summary = session_summary(store, args.id)
    if args.frames_out:
        summary["frames_written"] = _export_frames(store, args.id, Path(args.frames_out))
    store.close()
    if args.json:
        out.print_json(json.dumps(summary))
        return 0
    out.print(
        f"[bold]Session {summary['id']}[/] ({summary['status']}), "
        f"{summary['duration_s']:.1f} s on {summary['display']} "
        f"{summary['screen'][0]}x{summary['screen'][1]}"
    )
    table = Table(title="events by kind")
    table.add_column("kind")
    table.add_column("count", justify="right")
    for kind, n in sorted(summary["counts"].items(), key=lambda kv: -kv[1]):
        table.add_row(kind, f"{n:,}")
    out.print(table)
    apps = ", ".join(f"{a} ({n}x)" for a, n in summary["apps"].items()) or "none"
    out.print(f"apps (window switches): {apps}")
    fr = summary["frames"]
    out.print(
        f"frames: {fr['paired']:,} paired with actions, {fr['frames']:,} distinct screens, "
        f"{fr['tiles']:,} stored tiles"
    )
    b = summary["bytes"]
    out.print(
        f"bytes: events ≈{_human_bytes(b['events_approx'])}, frames {_human_bytes(b['frames'])}"
    )
    if args.frames_out:
        out.print(f"wrote {summary['frames_written']} frame images to {args.frames_out}")
    return 0


def _export_frames(store: Any, session: int, folder: Path) -> int:
    from demotrace.model import Kind
    from demotrace.store.frames import FrameReader

    folder.mkdir(parents=True, exist_ok=True)
    reader = FrameReader(store.db)
    written = 0
    for ev in store.events(session, (Kind.FRAME,)):
        data = ev.data or {}
        name = f"{ev.seq:08d}-{data.get('reason', 'frame')}-{data.get('for_seq', 0)}.png"
        reader.image(bytes.fromhex(data["frame"])).save(folder / name)
        written += 1
    return written


# -- tasks ------------------------------------------------------------------------------------
def cmd_task(args: argparse.Namespace) -> int:
    from demotrace.control import call
    from demotrace.errors import ControlError

    request: dict[str, Any] = {"cmd": "task", "what": args.what}
    if args.what == "start":
        if not args.instruction or not args.instruction.strip():
            raise DemotraceError(
                'Say what the task is, in your own words: demotrace task start "Export the '
                'March invoices as PDF". That sentence becomes the instruction of the episode.'
            )
        request["text"] = args.instruction.strip()
    elif args.instruction:
        raise DemotraceError("`demotrace task end` takes no instruction; just end the task.")
    answer = call(data_home(), request)
    if not answer.get("ok"):
        raise ControlError(f"The recorder refused the task marker: {answer.get('error')}.")
    if args.json:
        out.print_json(json.dumps(answer))
    elif args.what == "start":
        out.print(f"task started: {answer.get('text')}")
    else:
        out.print("task ended")
    return 0


# -- build and export -------------------------------------------------------------------------
def cmd_build(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from demotrace.dataset.build import BuildConfig, build
    from demotrace.dataset.episodes import EpisodeConfig

    source = args.source or str(store_dir(data_home()))
    cfg = BuildConfig(episodes=EpisodeConfig(idle_split_s=args.idle_split))
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TimeElapsedColumn(),
        console=err,
        disable=args.json,
    )
    with progress:
        task = progress.add_task(f"building ({args.engine})", total=None, count="")

        def step(result: Any, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, count=f"{done}/{total} sessions")
            if result.skipped:
                progress.console.print(
                    f"[yellow]skipped session {result.ref['session']}:[/] {result.skipped}"
                )

        info = build(
            source,
            Path(args.out),
            engine=args.engine,
            cfg=cfg,
            sessions=args.session or None,
            overwrite=args.overwrite,
            progress=step,
            ray_address=args.ray_address,
        )
    if args.json:
        out.print_json(json.dumps(info))
        return 0
    c = info["counts"]
    out.print(
        f"[bold]dataset[/] {args.out}: {c['steps']:,} steps in {c['episodes']:,} episodes "
        f"from {c['sessions']} session{'' if c['sessions'] == 1 else 's'} ({c['events']:,} raw "
        f"events, {c['frames']:,} screenshots)"
    )
    for s in info["skipped"]:
        out.print(f"[yellow]skipped[/] session {s['session']}: {s['reason']}")
    for s in info["partial"]:
        out.print(f"[yellow]partial[/] session {s['session']}: the recorder did not end it")
    out.print(f"card: {Path(args.out) / 'README.md'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from demotrace.dataset.formats import export_dataset

    summary = export_dataset(Path(args.dataset), args.format, Path(args.out))
    if args.json:
        out.print_json(json.dumps(summary, default=str))
    else:
        out.print(
            f"[bold]{args.format}[/]: {summary.get('steps', 0):,} steps of "
            f"{summary.get('episodes', 0):,} episodes written to {args.out}"
        )
        for reason, n in sorted((summary.get("skipped") or {}).items()):
            out.print(f"  left out {n:,} steps: {reason}")
    return 0


# -- ui ---------------------------------------------------------------------------------------
def cmd_ui(args: argparse.Namespace) -> int:
    from demotrace.web.ui import serve

    def ready(url: str) -> None:
        out.print("Your page (only for you, on this computer):", soft_wrap=True)
        print(url, flush=True)
        out.print("Ctrl-C stops it.")

    serve(data_home(), port=args.port, on_ready=ready)
    return 0


# -- view -------------------------------------------------------------------------------------
def cmd_view(args: argparse.Namespace) -> int:
    from demotrace.web.viewer import serve

    def ready(url: str) -> None:
        out.print(f"viewing {args.dataset} at [bold]{url}[/] (Ctrl-C to stop)", soft_wrap=True)

    serve(Path(args.dataset), port=args.port, on_ready=ready)
    return 0


# -- demo -------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from demotrace.demo import run_demo

    result = run_demo(
        home=Path(args.home) if args.home else None,
        scenarios=args.scenario or None,
        speed=args.speed,
        console=err,
    )
    if args.json:
        out.print_json(json.dumps(result))
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    if args.view == "yes" or (args.view == "auto" and interactive and not args.json):
        from demotrace.demo import VIEW_PORT
        from demotrace.errors import DemotraceError
        from demotrace.web.viewer import ViewerServer

        try:
            server = ViewerServer(Path(result["dataset"]), port=VIEW_PORT)
        except DemotraceError:  # the port is taken: any free one
            server = ViewerServer(Path(result["dataset"]), port=0)
        err.print(f"[bold]viewer over the dataset: {server.url}[/]  (Ctrl-C stops it)")
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
    return 0


# -- plumbing ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="demotrace",
        description="Consent-first recording of computer work, turned into agent datasets.",
    )
    p.add_argument("--version", action="version", version=f"demotrace {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("record", help="record until Ctrl-C or SIGTERM")
    r.add_argument("--display", help="X display to record (default: $DISPLAY)")
    r.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    r.add_argument("--no-frames", action="store_true", help="record input and windows only")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.add_argument("--policy", help="policy file (default: $DEMOTRACE_POLICY, the installed one)")
    r.add_argument("--no-indicator", action="store_true", help="no badge or tray icon (tests only)")
    r.add_argument(
        "--sync-every",
        type=float,
        default=300,
        help="seconds between uploads when enrolled with a collector (0: never)",
    )
    r.set_defaults(func=cmd_record)

    c = sub.add_parser("consent", help="the notice of the policy; agree or withdraw")
    group = c.add_mutually_exclusive_group()
    group.add_argument("--show", action="store_true", help="print the notice (the default)")
    group.add_argument("--accept", action="store_true", help="agree to this policy version")
    group.add_argument("--withdraw", action="store_true", help="withdraw: stop recording")
    c.add_argument("--delete", action="store_true", help="with --withdraw: delete local data")
    c.add_argument("--policy", help="policy file (default: the one in force)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_consent)

    pa = sub.add_parser("pause", help="pause the running recorder (private time)")
    pa.add_argument(
        "--for", dest="for_", type=parse_duration, metavar="DURATION", help="e.g. 15m, 1h"
    )
    pa.add_argument("--json", action="store_true")
    pa.set_defaults(func=cmd_pause)
    re_ = sub.add_parser("resume", help="resume the running recorder")
    re_.add_argument("--json", action="store_true")
    re_.set_defaults(func=cmd_resume)
    st = sub.add_parser("status", help="what the running recorder is doing")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    fo = sub.add_parser("forget", help="delete recorded data on this machine")
    which = fo.add_mutually_exclusive_group(required=True)
    which.add_argument("--last", type=parse_duration, metavar="DURATION", help="e.g. 10m")
    which.add_argument("--session", type=int, metavar="ID")
    which.add_argument("--all", action="store_true")
    fo.add_argument("--json", action="store_true")
    fo.set_defaults(func=cmd_forget)

    s = sub.add_parser("sessions", help="list recorded sessions")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_sessions)

    sh = sub.add_parser("show", help="what one session holds")
    sh.add_argument("id", type=int)
    sh.add_argument("--json", action="store_true")
    sh.add_argument("--frames-out", metavar="DIR", help="also write every paired frame as PNG")
    sh.set_defaults(func=cmd_show)

    tk = sub.add_parser("task", help="mark where a task starts (with its instruction) or ends")
    tk.add_argument("what", choices=["start", "end"])
    tk.add_argument("instruction", nargs="?", help="what the task is, in your own words")
    tk.add_argument("--json", action="store_true")
    tk.set_defaults(func=cmd_task)

    b = sub.add_parser("build", help="recordings -> a dataset (docs/dataset.md)")
    b.add_argument("source", nargs="?", help="a local store (default: this machine's)")
    b.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    b.add_argument("--engine", choices=["local", "ray"], default="local")
    b.add_argument("--ray-address", help="join this Ray cluster (default: a local runtime)")
    b.add_argument("--session", type=int, action="append", metavar="ID", help="only these")
    b.add_argument(
        "--idle-split",
        type=float,
        default=60.0,
        metavar="S",
        help="idle seconds that end an episode",
    )
    b.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_build)

    ex = sub.add_parser("export", help="a dataset -> another format or action dialect")
    ex.add_argument("dataset", metavar="DIR")
    ex.add_argument(
        "--format",
        required=True,
        choices=[
            "hf",
            "agentnet",
            "pyautogui",
            "anthropic",
            "openai",
            "qwen",
            "uitars",
            "mind2web",
        ],
    )
    ex.add_argument("--out", required=True, metavar="OUT")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_export)

    ui = sub.add_parser("ui", help="your own page: status, pause, recordings, delete, export")
    ui.add_argument(
        "--port", type=argtypes.port_or_any, default=0, help="loopback port (default: any free one)"
    )
    ui.set_defaults(func=cmd_ui)

    v = sub.add_parser("view", help="replay a dataset's episodes in the browser (docs/viewer.md)")
    v.add_argument("dataset", help="the folder `demotrace build` wrote")
    v.add_argument(
        "--port",
        type=argtypes.port_or_any,
        default=0,
        help="port on 127.0.0.1 (default: any free one)",
    )
    v.set_defaults(func=cmd_view)

    d = sub.add_parser("demo", help="record scripted work on a private virtual desktop")
    d.add_argument(
        "--home", help="data folder for the demo (default: a new folder under ./demo-out)"
    )
    d.add_argument("--scenario", action="append", help="scenario name (repeatable; default: all)")
    d.add_argument("--speed", type=float, default=1.0, help="worker speed factor (1 = human)")
    d.add_argument("--json", action="store_true")
    d.add_argument(
        "--view",
        choices=("auto", "yes", "no"),
        default="auto",
        help="then serve the replay viewer over the dataset until Ctrl-C (auto: when run from "
        "a terminal)",
    )
    d.set_defaults(func=cmd_demo)

    from demotrace.cli_collector import add_parsers

    add_parsers(sub)
    from demotrace.cli_browser import add_parsers as add_browser_parsers

    add_browser_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except DemotraceError as exc:
        err.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except OSError as exc:
        wrapped = StoreError(
            f"{exc.strerror or exc}: {exc.filename or ''}. Check the path, its "
            "permissions and the free disk space."
        )
        err.print(f"[bold red]error:[/] {wrapped}", soft_wrap=True)
        return wrapped.exit_code
    except Exception:
        log = data_home() / "logs" / f"crash-{int(time.time())}.txt"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(traceback.format_exc())
            where = f"The details are in {log}."
        except OSError:
            where = "The details could not be saved (the data folder is not writable)."
        err.print(
            f"[bold red]error:[/] demotrace hit an internal error. {where} Data captured "
            "so far was committed. Please report it with that file.",
            soft_wrap=True,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())

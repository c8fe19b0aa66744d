"""The command line: thin commands over the library. ``demotrace --help`` lists them."""

from __future__ import annotations

import argparse
import datetime as dt
import json
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

from demotrace import __version__
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
    from demotrace.recorder import Recorder, RecorderConfig

    store = _open_store(create=True)
    recorder = Recorder(store, args.display, RecorderConfig(frames=not args.no_frames))
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    session = recorder.start()
    for warning in recorder.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    deadline = time.monotonic() + args.duration if args.duration else None
    err.print(
        f"[bold red]●[/] recording session {session} on {recorder.display} into {store.root} "
        "(Ctrl-C to stop)"
    )
    try:
        with err.status("", spinner="dots") if err.is_terminal else _nullcontext() as status:
            while not stop.wait(0.5):
                if recorder.failed.is_set():
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if status is not None:
                    c = recorder.counts
                    status.update(f"session {session}: {sum(c.values()):,} events")
    finally:
        summary = recorder.stop()
        store.close()
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
    r.set_defaults(func=cmd_record)

    s = sub.add_parser("sessions", help="list recorded sessions")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_sessions)

    sh = sub.add_parser("show", help="what one session holds")
    sh.add_argument("id", type=int)
    sh.add_argument("--json", action="store_true")
    sh.add_argument("--frames-out", metavar="DIR", help="also write every paired frame as PNG")
    sh.set_defaults(func=cmd_show)

    d = sub.add_parser("demo", help="record scripted work on a private virtual desktop")
    d.add_argument(
        "--home", help="data folder for the demo (default: a new folder under ./demo-out)"
    )
    d.add_argument("--scenario", action="append", help="scenario name (repeatable; default: all)")
    d.add_argument("--speed", type=float, default=1.0, help="worker speed factor (1 = human)")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_demo)
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

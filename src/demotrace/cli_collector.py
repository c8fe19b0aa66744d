"""The collector and sync commands: ``serve``, ``admin``, ``enroll``, ``sync``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from demotrace import argtypes
from demotrace.paths import data_home

out = Console()
err = Console(stderr=True)


def _duration(text: str) -> int:
    """Whole seconds of a duration (``90s``, ``15m``, ``12h``, ``7d``; a bare number is seconds
    here, as in ``--ttl 90``)."""
    from demotrace.cli import parse_duration

    return int(text) if text.strip().isdigit() else round(parse_duration(text))


def _config(args: argparse.Namespace) -> Any:
    from demotrace.collector.service import Config

    folder = Path(args.data_dir) if args.data_dir else data_home() / "collector"
    cfg = Config.in_folder(folder)
    if args.db:
        cfg.db_url = args.db
    if args.blobs:
        cfg.blobs_url = args.blobs
    if getattr(args, "retention_days", None):
        cfg.retention_days = args.retention_days
    if getattr(args, "rate", None):
        cfg.rate_per_s = args.rate
    if getattr(args, "burst", None):
        cfg.rate_burst = args.burst
    if getattr(args, "k_anonymity", None):
        if args.k_anonymity < 2:
            from demotrace.errors import CollectorError

            raise CollectorError(
                "--k-anonymity must be 2 or more: with 1, coverage figures would describe a "
                "single device."
            )
        cfg.k_anonymity = args.k_anonymity
    if getattr(args, "work_dir", None):
        cfg.work_dir = str(Path(args.work_dir).resolve())
    if getattr(args, "max_body_mb", None):
        cfg.max_segment_bytes = int(args.max_body_mb * 1024 * 1024)
    return cfg


def _service(args: argparse.Namespace) -> Any:
    from demotrace.collector.service import Service

    return Service(_config(args))


# -- serve ----------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from demotrace.collector.server import serve

    cfg = _config(args)

    def ready(service: Any, admin_token: str | None) -> None:
        from demotrace.collector.db import redact_url

        if admin_token:
            err.print("[bold]The admin credential[/] (shown once; keep it somewhere safe):")
            print(admin_token, flush=True)
        err.print(
            f"collector on http://{args.host}:{args.port} ({args.workers} worker"
            f"{'s' if args.workers > 1 else ''}), database {redact_url(cfg.db_url)}, lake "
            f"{service.blobs.url}. Ctrl-C stops it.",
            soft_wrap=True,
        )

    serve(cfg, host=args.host, port=args.port, workers=args.workers, on_ready=ready)
    return 0


# -- admin ----------------------------------------------------------------------------------------
def cmd_admin(args: argparse.Namespace) -> int:
    from demotrace.collector.service import Problem, iso

    service = _service(args)
    try:
        if args.admin_command == "enroll-code":
            code = service.new_enroll_code(args.ttl, args.note)
            if args.json:
                out.print_json(json.dumps(code))
            else:
                err.print(f"One-time enrolment code, valid until {iso(code['expires_ns'])}:")
                print(code["code"], flush=True)
                err.print("On the worker's machine: demotrace enroll URL CODE")
        elif args.admin_command == "devices":
            devices = service.list_devices()
            if args.json:
                out.print_json(json.dumps(devices))
            for d in [] if args.json else devices:
                state = f"revoked {iso(d['revoked_ns'])}" if d["revoked_ns"] else "active"
                out.print(
                    f"{d['id']}  enrolled {iso(d['created_ns'])}  {state}  {d['label'] or ''}"
                )
        elif args.admin_command == "revoke":
            if not service.revoke(args.device):
                err.print(f"There is no active device {args.device}.")
                return 1
            err.print(f"Revoked {args.device}: its credential no longer works.")
        elif args.admin_command == "policy":
            try:
                text = Path(args.file).read_text()
            except OSError as exc:
                err.print(f"Cannot read the policy {args.file}: {exc.strerror}.")
                return 9
            try:
                published = service.put_policy(text)
            except Problem as exc:
                err.print(exc.message)
                return 9
            err.print(
                f"Published policy {published['name']!r} version {published['version']}; devices "
                "fetch it on their next sync and ask their worker's consent."
            )
        elif args.admin_command == "token":
            err.print("New admin credential (the old one no longer works):")
            print(service.rotate_admin(), flush=True)
        elif args.admin_command == "purge":
            gone = service.purge()
            tiles = service.sweep_tiles()
            err.print(f"Deleted {len(gone)} sessions past retention and {tiles} unused tiles.")
        elif args.admin_command == "totals":
            out.print_json(json.dumps(service.totals()))
    finally:
        service.close()
    return 0


# -- enroll / sync --------------------------------------------------------------------------------
def cmd_enroll(args: argparse.Namespace) -> int:
    from demotrace.sync.client import enroll

    e = enroll(data_home(), args.url, args.code, args.label)
    err.print(
        f"Enrolled as device {e.device} with {e.url}. `demotrace sync` uploads what is past "
        "your review period."
    )
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from demotrace.cli import _open_store
    from demotrace.errors import SyncError
    from demotrace.privacy.consent import load_in_force
    from demotrace.sync.client import Enrollment, Syncer, Transport

    home = data_home()
    enrollment = Enrollment.load(home)
    if enrollment is None:
        raise SyncError(
            "This machine is not enrolled with a collector. Ask the admin for a code "
            "and run `demotrace enroll URL CODE`."
        )
    policy = load_in_force(None, home)
    store = _open_store(create=True)
    started = time.monotonic()
    try:
        with Transport(
            enrollment.url, enrollment.token, attempts=1000, deadline_s=args.timeout
        ) as t:
            syncer = Syncer(
                store,
                enrollment,
                review_hours=policy.review_hours,
                home=home,
                transport=t,
                segment_rows=args.segment_rows,
            )
            result = syncer.run()
    finally:
        store.close()
    summary = result.as_dict()
    summary["seconds"] = round(time.monotonic() - started, 2)
    if args.json:
        out.print_json(json.dumps(summary))
    else:
        err.print(
            f"synced: {result.events:,} events in {result.segments} segments, {result.frames:,} "
            f"frames, {result.tiles:,} tiles ({result.bytes / 1e6:.1f} MB), {result.deletions} "
            f"deletions sent; {result.waiting_events:,} events wait out the review period "
            f"({policy.review_hours:g} h)."
        )
    if result.policy:
        err.print(
            f"[yellow]The collector published policy version {result.policy}.[/] Read it "
            "with `demotrace consent --show` and agree with `demotrace consent --accept` "
            "before recording again."
        )
    return 0


# -- parsers --------------------------------------------------------------------------------------
def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        help="folder of the embedded database and lake (default: $DEMOTRACE_HOME/collector)",
    )
    p.add_argument("--db", help="database URL: sqlite:////path.db or postgresql://user@host/db")
    p.add_argument(
        "--blobs", help="lake: a folder or s3://bucket/prefix (endpoint from DEMOTRACE_S3_ENDPOINT)"
    )


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("serve", help="the collector: devices upload here (docs/collector.md)")
    _store_args(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=argtypes.port, default=8600)
    s.add_argument("--workers", type=argtypes.positive, default=1, help="uvicorn worker processes")
    s.add_argument("--retention-days", type=int, help="delete sessions older than this")
    s.add_argument("--max-body-mb", type=float, help="largest segment accepted (default 64)")
    s.add_argument("--rate", type=float, help="requests per second per device (default 200)")
    s.add_argument("--burst", type=int, help="burst of requests per device (default 1000)")
    s.add_argument(
        "--k-anonymity",
        type=int,
        help="admin pages and API hide any coverage or consent group from fewer devices "
        "(default 5)",
    )
    s.add_argument(
        "--work-dir",
        help="this host's scratch space for dataset builds (default DATA_DIR/work)",
    )
    s.set_defaults(func=cmd_serve)

    a = sub.add_parser("admin", help="collector side: enrolment codes, devices, policy, purge")
    asub = a.add_subparsers(dest="admin_command", required=True, metavar="ADMIN_COMMAND")
    code = asub.add_parser("enroll-code", help="a one-time, expiring code for `demotrace enroll`")
    code.add_argument("--ttl", type=_duration, default=7 * 86400, help="valid for (default 7d)")
    code.add_argument("--note", help="a note kept with the code (not shown to the device)")
    asub.add_parser("devices", help="enrolled devices (pseudonymous ids)")
    rv = asub.add_parser("revoke", help="revoke a device's credential")
    rv.add_argument("device")
    po = asub.add_parser("policy", help="publish a policy file to every device")
    po.add_argument("file")
    asub.add_parser("token", help="replace the admin credential")
    asub.add_parser("purge", help="apply server-side retention now; drop unused tiles")
    asub.add_parser("totals", help="aggregate counts")
    for p in asub.choices.values():
        _store_args(p)
        p.add_argument("--json", action="store_true")
        p.add_argument("--retention-days", type=int, help="for purge: sessions older than this")
    a.set_defaults(func=cmd_admin)

    e = sub.add_parser("enroll", help="join a collector with a one-time code")
    e.add_argument("url")
    e.add_argument("code")
    e.add_argument("--label", help="an optional label the admin sees (no name needed)")
    e.set_defaults(func=cmd_enroll)

    y = sub.add_parser("sync", help="upload what is past the review period; send deletions")
    y.add_argument(
        "--timeout",
        type=_duration,
        default=300,
        help="give up retrying after this long (default 5m); nothing is lost",
    )
    y.add_argument("--json", action="store_true")
    y.add_argument("--segment-rows", type=int, default=100_000, help=argparse.SUPPRESS)
    y.set_defaults(func=cmd_sync)

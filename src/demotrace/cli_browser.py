"""The browser command: ``demotrace browser pair`` (docs/browser.md, "Pairing")."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from demotrace import argtypes
from demotrace.paths import data_home

out = Console()
err = Console(stderr=True)


def cmd_browser_pair(args: argparse.Namespace) -> int:
    from demotrace.browser import EXTENSION_DIR, EXTENSION_ID
    from demotrace.browser.pairing import pair, pairing_path

    home = data_home()
    pairing, changed = pair(home, port=args.port, new=args.new)
    folder = EXTENSION_DIR if (EXTENSION_DIR / "manifest.json").is_file() else None
    if args.json:
        out.print_json(
            json.dumps(
                {
                    "link": pairing.link(),
                    "port": pairing.port,
                    "changed": changed,
                    "file": str(pairing_path(home)),
                    "extension_id": EXTENSION_ID,
                    "extension_dir": str(folder) if folder else None,
                }
            )
        )
        return 0
    what = "New pairing" if changed else "The pairing"
    err.print(
        f"{what} in {pairing_path(home)} (port {pairing.port}). Open this link once in the "
        "browser that has the demotrace extension (paste it into the address bar):",
        soft_wrap=True,
    )
    print(pairing.link(), flush=True)
    if folder is None:
        err.print(
            "The extension folder is not part of this installation: it is the folder "
            "extension/ of demotrace's source checkout.",
            soft_wrap=True,
        )
        shown = "extension/"
    else:
        shown = str(folder)
    err.print(
        f"The extension: {shown}. Chromium: start it with `chromium --load-extension={shown}`, "
        "or open chrome://extensions, turn on Developer mode and choose Load unpacked (Google "
        "Chrome: Load unpacked only). The recorder listens for it on "
        f"127.0.0.1:{pairing.port} while it records; `demotrace browser pair --new` replaces "
        "the token (open the new link again).",
        soft_wrap=True,
    )
    return 0


def add_parsers(sub: Any) -> None:
    b = sub.add_parser("browser", help="the browser extension: pairing (docs/browser.md)")
    bsub = b.add_subparsers(dest="browser_command", required=True, metavar="BROWSER_COMMAND")
    p = bsub.add_parser("pair", help="make or show the link that pairs the extension")
    p.add_argument(
        "--port", type=argtypes.port, help="the port the recorder listens on (default 8611)"
    )
    p.add_argument("--new", action="store_true", help="a new token; the old one stops working")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_browser_pair)

"""The pairing between the extension and the recorder: ``browser.json`` in the data home.

``{"port": 8611, "token": "...", "extension_ids": [EXTENSION_ID]}``, mode 0600. The extension
learns port and token from the pairing link (``chrome-extension://ID/pair.html#port=P&token=T``);
the channel accepts only requests that carry that token from one of those extension origins.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from demotrace.browser import EXTENSION_ID, BrowserError

DEFAULT_PORT = 8611
FILENAME = "browser.json"


@dataclass(frozen=True)
class Pairing:
    port: int
    token: str
    extension_ids: tuple[str, ...] = field(default=(EXTENSION_ID,))

    def link(self, extension_id: str = EXTENSION_ID) -> str:
        """The link to open once in the browser: the extension's page stores port and token."""
        return f"chrome-extension://{extension_id}/pair.html#port={self.port}&token={self.token}"

    def as_json(self) -> dict[str, object]:
        return {"port": self.port, "token": self.token, "extension_ids": list(self.extension_ids)}


def pairing_path(home: Path) -> Path:
    return Path(home) / FILENAME


def _damaged(path: Path, why: str) -> BrowserError:
    return BrowserError(
        f"The browser pairing {path} is damaged ({why}). Make a new one with "
        "`demotrace browser pair --new` and open the link it prints in the browser again."
    )


def _check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise BrowserError(f"The port must be between 1 and 65535, not {port}.")
    return port


def load_pairing(home: Path) -> Pairing | None:
    """The pairing in ``home``, or None when there is none."""
    path = pairing_path(home)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, str(exc)) from exc
    if not isinstance(raw, dict):
        raise _damaged(path, "not a JSON object")
    port, token, ids = raw.get("port"), raw.get("token"), raw.get("extension_ids")
    if type(port) is not int or not 1 <= port <= 65535:
        raise _damaged(path, "no valid port")
    if not isinstance(token, str) or len(token) < 16:
        raise _damaged(path, "no valid token")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise _damaged(path, "no extension ids")
    return Pairing(port, token, tuple(ids))


def save_pairing(home: Path, pairing: Pairing) -> Path:
    """Write ``browser.json`` (0600, replaced atomically)."""
    path = pairing_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{FILENAME}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(pairing.as_json(), f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def pair(home: Path, port: int | None = None, new: bool = False) -> tuple[Pairing, bool]:
    """Make or show the pairing; returns it and whether it changed.

    No pairing yet, or ``new``: a fresh token (on ``port``, else the old port, else 8611).
    Otherwise the existing one, moved to ``port`` when another is given (same token)."""
    if port is not None:
        _check_port(port)
    try:
        old = load_pairing(home)
    except BrowserError:
        if not new:
            raise
        old = None  # --new replaces a damaged pairing
    if old is None or new:
        chosen = port or (old.port if old else DEFAULT_PORT)
        pairing = Pairing(chosen, secrets.token_urlsafe(24))
    elif port is not None and port != old.port:
        pairing = Pairing(port, old.token, old.extension_ids)
    else:
        return old, False
    save_pairing(home, pairing)
    return pairing, True

"""What the collector learns of the worker's consent: per policy version, the latest answer
(accepted or withdrawn) and when it was given. Not who gave it: the device is pseudonymous, and
the admin pages show counts per version only."""

from __future__ import annotations

import sqlite3
from typing import Any

_STATES = {"accept": "accepted", "withdraw": "withdrawn"}


def consent_answers(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """The store's latest consent answer per policy version, oldest version first."""
    latest: dict[str, dict[str, Any]] = {}
    for version, action, at in db.execute(
        "SELECT policy_version, action, t_wall_ns FROM consent ORDER BY id"
    ):
        if action in _STATES and version:
            latest[str(version)[:80]] = {
                "version": str(version)[:80],
                "state": _STATES[action],
                "at_ns": int(at),
            }
    return list(latest.values())

"""Which policy is in force on this machine, consent to it, and retention of local data."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from demotrace.privacy.policy import Policy
    from demotrace.store.db import Store

log = logging.getLogger("demotrace")

#: The policy an admin installs for this account: ``$DEMOTRACE_HOME/policy.toml``.
POLICY_NAME = "policy.toml"


def policy_path(arg: str | None, home: Path) -> Path | None:
    """The policy file in force: ``--policy``, else ``$DEMOTRACE_POLICY``, else the one in the
    data home, else None (the packaged default)."""
    if arg:
        return Path(arg)
    if os.environ.get("DEMOTRACE_POLICY"):
        return Path(os.environ["DEMOTRACE_POLICY"])
    installed = home / POLICY_NAME
    return installed if installed.exists() else None


def load_in_force(arg: str | None, home: Path) -> Policy:
    from demotrace.privacy.policy import load_policy

    return load_policy(policy_path(arg, home))


def consent_state(store: Store, policy: Policy) -> str:
    """``accepted``, ``withdrawn``, ``outdated`` (another version accepted) or ``none``."""
    last = store.consent()
    if last is None:
        return "none"
    if last["action"] != "accept":
        return "withdrawn"
    return "accepted" if last["policy_version"] == policy.version else "outdated"


def accept(store: Store, policy: Policy) -> None:
    store.record_consent(
        "accept", policy.version, policy_name=policy.name, policy_source=policy.source
    )


def withdraw(store: Store, policy: Policy) -> None:
    store.record_consent(
        "withdraw", policy.version, policy_name=policy.name, policy_source=policy.source
    )


def store_used_bytes(store: Store) -> int:
    """Bytes of live data in the database (free pages left by deletions do not count)."""
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    free = store.db.execute("PRAGMA freelist_count").fetchone()[0]
    size = store.db.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def purge(
    store: Store, policy: Policy, *, keep: int | None = None, now_ns: int | None = None
) -> list[dict[str, Any]]:
    """Delete whole sessions past the policy's retention, oldest first, with a log line each.

    A session goes when it started more than ``retention_days`` ago, then (oldest first) while
    the store holds more than ``retention_gb``. Session ``keep`` (the one being recorded) stays.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    cutoff = now_ns - int(policy.retention_days * 86400e9)
    limit = int(policy.retention_gb * (1 << 30))
    done: list[dict[str, Any]] = []
    sessions = [s for s in store.sessions() if s["id"] != keep]
    sessions.sort(key=lambda s: s["started_wall_ns"])
    for s in sessions:
        why = None
        if s["started_wall_ns"] < cutoff:
            why = f"older than {policy.retention_days} days"
        elif store_used_bytes(store) > limit:
            why = f"the store is over {policy.retention_gb:g} GB"
        if why is None:
            continue
        counts = store.forget(sessions=[s["id"]], reason="retention")
        log.info("retention: deleted session %s (%s): %s", s["id"], why, counts)
        done.append({"session": s["id"], "why": why, **counts})
    return done


def setup_log(home: Path) -> None:
    """Log lines (retention, consent, sync) go to ``home/logs/demotrace.log`` (the one of the
    latest home set up in this process)."""
    path = str((home / "logs" / "demotrace.log").resolve())
    for h in list(log.handlers):
        if getattr(h, "_demotrace", False):
            if getattr(h, "baseFilename", None) == path:
                return
            log.removeHandler(h)
            h.close()
    try:
        (home / "logs").mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(home / "logs" / "demotrace.log", encoding="utf-8")
    except OSError:
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler._demotrace = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.INFO)

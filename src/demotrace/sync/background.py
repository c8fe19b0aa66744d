"""Background sync inside ``demotrace record``: a sync round every few minutes while recording.

Offline is normal: a round that cannot reach the collector logs one line and the next round tries
again; nothing waits on the network. When the collector publishes a new policy version, the round
installs it and sets :attr:`BackgroundSync.policy_changed`: the recorder then stops, because
recording under the new policy needs the worker's consent first.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from demotrace.errors import DemotraceError
from demotrace.sync.client import Enrollment, Syncer, Transport

log = logging.getLogger("demotrace")


class BackgroundSync:
    def __init__(
        self,
        home: Path,
        enrollment: Enrollment,
        review_hours: float,
        every_s: float = 300,
        follow_policy: bool = True,
    ) -> None:
        self.follow_policy = follow_policy
        self.home = home
        self.enrollment = enrollment
        self.review_hours = review_hours
        self.every_s = every_s
        self.policy_changed = threading.Event()
        self.rounds = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demotrace-sync", daemon=True)

    def start(self) -> BackgroundSync:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def run_once(self) -> None:
        from demotrace.store.db import Store

        store = Store(self.home / "store", create=False)
        try:
            with Transport(
                self.enrollment.url, self.enrollment.token, attempts=4, deadline_s=120
            ) as t:
                result = Syncer(
                    store,
                    self.enrollment,
                    review_hours=self.review_hours,
                    home=self.home,
                    transport=t,
                ).run()
            self.last_error = None
            if result.events or result.deletions:
                log.info("sync: %d events, %d deletions sent", result.events, result.deletions)
            if result.policy and self.follow_policy:
                log.warning("sync: the collector published policy %s", result.policy)
                self.policy_changed.set()
        finally:
            store.close()
            self.rounds += 1

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.run_once()
            except DemotraceError as exc:
                self.last_error = str(exc)
                log.warning("sync: %s", exc)
            except Exception:  # never take the recorder down
                log.exception("sync: unexpected error")

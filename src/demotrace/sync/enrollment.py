"""The device's enrolment with a collector (its URL, pseudonymous device id and credential),
kept in the data home. Light on purpose: the recorder checks it at every start, and only an
enrolled machine imports the sync client (httpx, pyarrow)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from demotrace.errors import SyncError

ENROLLMENT = "collector.json"


@dataclasses.dataclass
class Enrollment:
    url: str
    device: str
    token: str
    enrolled_ns: int

    @classmethod
    def load(cls, home: Path) -> Enrollment | None:
        path = Path(home) / ENROLLMENT
        if not path.exists():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise SyncError(
                f"The enrolment file {path} is damaged ({exc}). Delete it and enroll again with "
                "`demotrace enroll URL CODE`."
            ) from None

    def save(self, home: Path) -> None:
        path = Path(home) / ENROLLMENT
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the credential
        with os.fdopen(fd, "w") as f:
            json.dump(dataclasses.asdict(self), f)
        os.replace(tmp, path)

"""One exception tree for everything the user can cause or fix.

Every error a person can act on is a :class:`DemotraceError` whose message is one plain paragraph:
what went wrong, and what to do about it. The CLI prints it and exits with ``exit_code``; it never
prints a traceback for these.
"""

from __future__ import annotations


class DemotraceError(Exception):
    """Base class: a clear, one-paragraph message for the person at the keyboard."""

    exit_code = 1


class NoDisplayError(DemotraceError):
    """No X display could be opened (DISPLAY unset, server gone, or not X11)."""

    exit_code = 3


class MissingToolError(DemotraceError):
    """A system program the command needs (Xvfb, jwm, xterm, ...) is not installed."""

    exit_code = 4


class StoreError(DemotraceError):
    """The local store cannot be opened or written (read-only, full disk, corrupt)."""

    exit_code = 5


class StoreBusyError(StoreError):
    """Another recorder already writes to this store."""

    exit_code = 6


class UnknownSessionError(DemotraceError):
    """The session id given does not exist in the store."""

    exit_code = 7


class ScenarioError(DemotraceError):
    """A scenario file is malformed or names something that does not exist."""

    exit_code = 8


class PolicyError(DemotraceError):
    """The policy file is missing, not TOML, or breaks the policy schema (line and field named)."""

    exit_code = 9


class ConsentError(DemotraceError):
    """Recording was asked for without the worker's consent to this exact policy version."""

    exit_code = 10


class ControlError(DemotraceError):
    """No recorder answers on the control socket (pause, resume, status, forget)."""

    exit_code = 11


class DatasetError(DemotraceError):
    """A dataset cannot be built, read or exported (bad source, newer format, damaged files)."""

    exit_code = 12


class CollectorError(DemotraceError):
    """The collector cannot start or serve: bad database or blob store URL, unreachable backend,
    a schema newer than this demotrace, or an admin command it cannot carry out."""

    exit_code = 13


class SyncError(DemotraceError):
    """Enrolment or upload failed for a reason retrying cannot fix (bad code or credential,
    revoked device, a body the collector refuses), or the collector is unreachable."""

    exit_code = 14


class BrowserError(DemotraceError):
    """The browser pairing is damaged, or the local channel cannot listen on its port."""

    exit_code = 15


def cannot_listen(what: str, host: str, port: int, exc: OSError, any_port: bool = False) -> str:
    """The message for a socket that cannot be bound, with what to do about it, from why.
    ``any_port``: port 0 (any free one) is a choice too."""
    import errno

    other = "another port, or 0 for any free one" if any_port else "another port"
    if exc.errno == errno.EADDRINUSE:
        hint = f"Another program uses that port: stop it, or give {other}."
    elif exc.errno == errno.EADDRNOTAVAIL:
        hint = "That address is not one of this machine's: give one it has, or 127.0.0.1."
    elif exc.errno == errno.EACCES:
        hint = "Ports below 1024 need administrator rights: give a port above 1023."
    else:
        hint = f"Give another address or {other}."
    return f"The {what} cannot listen on {host}:{port} ({exc.strerror or exc}). {hint}"

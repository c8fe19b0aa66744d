"""``demotrace serve``: the collector on uvicorn, one or several worker processes.

The parent process prepares the database (migrations, the admin credential on first start) and
checks the blob store, so a bad URL fails before any worker starts; each worker then builds its
own :class:`~demotrace.collector.service.Service` from the configuration in its environment.
Workers share nothing but the database and the blob store, so more of them, on this machine or
others, serve the same collector.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from demotrace.collector.api import ENV_CONFIG, create_app
from demotrace.collector.service import Config, Service
from demotrace.errors import CollectorError, cannot_listen


def check_address(host: str, port: int) -> None:
    """Fail with a clear error, before the database is touched, when ``host:port`` cannot be
    listened on (a port in use, a name that does not resolve, an address not of this machine)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise CollectorError(f"The collector cannot listen on {host!r}: {exc}.") from exc
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise CollectorError(cannot_listen("collector", host, port, exc)) from exc


def prepare(config: Config) -> tuple[Service, str | None]:
    """The service on a migrated database, and the admin credential if it was just created."""
    service = Service(config)
    return service, service.ensure_admin()


def serve(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8600,
    workers: int = 1,
    on_ready: Callable[[Service, str | None], None] | None = None,
) -> None:
    import uvicorn

    check_address(host, port)
    service, admin_token = prepare(config)
    if on_ready is not None:
        on_ready(service, admin_token)
    if workers <= 1:
        uvicorn.run(create_app(service), host=host, port=port, log_level="warning")
        return
    service.close()
    os.environ[ENV_CONFIG] = config.to_env()
    uvicorn.run(
        "demotrace.collector.api:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )

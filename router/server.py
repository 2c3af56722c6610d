"""Run the app under uvicorn with uvloop + httptools (chosen by measurement, see
benchmarks/router/README.md; one write per answer, router/http_protocol.py), JSON logs and
no access log (the router logs each request)."""

from __future__ import annotations

import socket
from pathlib import Path

from router import logs
from router.config import RouterConfig


def serve(
    config: RouterConfig,
    host: str | None = None,
    port: int | None = None,
    config_path: Path | None = None,
) -> None:
    """Serve until SIGTERM has drained the requests in flight (router/drain.py: exit 0);
    SIGHUP reloads `config_path`, keeping the old config if the new one is bad. With
    `listen.workers` > 1, a supervisor runs that many (router/workers.py)."""
    from router.drain import run_router
    from router.http_protocol import HttpProtocol

    logs.setup(config.logging.level)
    host = host or config.listen.host
    port = port if port is not None else config.listen.port
    options = {
        "loop": "uvloop",
        "http": HttpProtocol,
        "access_log": False,
        "proxy_headers": False,  # a sidecar on the pod's loopback: no forwarded-for to trust
        "server_header": False,
        "log_config": logs.uvicorn_log_config(config.logging.level),
    }
    sock = bind(host, port, config_path)
    workers = config.listen.workers
    if workers == 1:
        run_router(config, config_path, host, port, sock=sock, **options)
        return
    from router.workers import supervise

    def worker(sock: socket.socket, control: int, serving: int) -> int:
        return run_router(
            config, config_path, host, port,
            workers=workers, sock=sock, control=control, serving=serving, **options,
        )  # fmt: skip

    status = supervise(workers, sock, worker)
    if status:
        raise SystemExit(status)


def bind(host: str, port: int, config_path: Path | None) -> socket.socket:
    """The listening socket, bound before anything starts: a taken port is one line
    naming the setting (exit 2), and every worker accepts on this one socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        from pipeline.errors import UserError

        where = f"{config_path}: " if config_path else ""
        raise UserError(f"{where}listen: cannot bind {host}:{port}: {err.strerror}") from None
    sock.listen(2048)
    return sock

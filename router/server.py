"""Run the app under uvicorn with uvloop + httptools (chosen by measurement, see
benchmarks/router/README.md), JSON logs and no access log (the router logs each request)."""

from __future__ import annotations

from router import logs
from router.config import RouterConfig


def serve(config: RouterConfig, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    from router.app import build_app

    logs.setup(config.logging.level)
    app = build_app(config)
    uvicorn.run(
        app,
        host=host or config.listen.host,
        port=port if port is not None else config.listen.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=logs.uvicorn_log_config(config.logging.level),
        timeout_graceful_shutdown=30,
    )

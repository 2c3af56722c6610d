"""The router benchmarks' processes, each a server on 127.0.0.1: the upstream, the router,
nginx and the LiteLLM proxy (common.Server: CPU seconds of the process tree from /proc)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks import common
from benchmarks.common import Server, free_port

HERE = Path(__file__).resolve().parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LITELLM_KEY = "sk-bench-1234"


def upstream(latency: float) -> Server:
    port = free_port()
    argv = [sys.executable, str(HERE / "upstream.py"), str(port), str(latency)]
    return Server(f"upstream-{latency}", argv, port, "/health").wait()


def router(
    upstream_url: str,
    workdir: Path,
    *,
    tree: Path | None = None,
    config: dict | None = None,
    prefix: list[str] | None = None,
    env: dict | None = None,
    wait_s: float = 120,
    workers: int = 1,
    python: str | None = None,
    cpus: frozenset[int] | None = None,
    name: str = "router",
) -> Server:
    """`edgepack router` (rules-only unless `config` adds a model) in front of one upstream.
    `tree`: the checkout whose router runs (ROOT if None; it imports from its folder:
    common.checkout); `config`: top-level config keys to replace; `prefix`: argv before the
    interpreter (valgrind, nice); `env`: the process's environment; `workers`: listen.workers
    (more than one may use every core, pinned or not); `python`: the interpreter that runs it
    (this one's if None); `cpus`: where it runs (the pinned core, or every core for several
    workers, if None)."""
    port = free_port()
    cfg: dict = {
        "listen": {"host": "127.0.0.1", "port": port},
        "onprem": {
            "upstreams": [{"name": "bench", "url": upstream_url}],
            "health": {"interval_s": 5},
        },
        "admission": {"per_upstream_limit": 256},
        "limits": {"deadline_s": 30},
    }
    if workers > 1:  # only then: an older revision's router may lack the key
        cfg["listen"]["workers"] = workers
    cfg.update(config or {})
    path = workdir / f"router-{port}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    main = "from pipeline.cli import main; main()"
    argv = [*(prefix or []), python or sys.executable, "-c", main, "router", "--config", str(path)]
    if cpus is None:
        cpus = common.PROXY_CPUS if workers == 1 or common.PROXY_CPUS is None else common.ALL_CPUS
    server = Server(name, argv, port, "/readyz", env=env, cpus=cpus, cwd=tree)
    return server.wait(timeout=wait_s)


NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  upstream backend {{ server {upstream}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""


def nginx(upstream_url: str, workdir: Path) -> Server | None:
    if not Path(NGINX).exists():
        return None
    port = free_port()
    tmp = Path(tempfile.mkdtemp(dir=workdir, prefix="nginx-"))
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, upstream=upstream_url.split("//")[1]))
    argv = [NGINX, "-c", str(conf), "-p", str(tmp), "-g", "daemon off;"]
    return Server("nginx", argv, port, "/health", cpus=common.PROXY_CPUS).wait()


def litellm(upstream_url: str, workdir: Path) -> Server | None:
    exe = HERE / ".venv" / "bin" / "litellm"
    if not exe.exists():
        return None
    port = free_port()
    cfg = {
        "model_list": [
            {
                "model_name": "m",
                "litellm_params": {
                    "model": "openai/m",
                    "api_base": upstream_url + "/v1",
                    "api_key": "none",
                },
            }
        ],
        "general_settings": {"master_key": LITELLM_KEY},
        "litellm_settings": {"num_retries": 0, "request_timeout": 30},
    }
    path = workdir / f"litellm-{port}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(
        os.environ, LITELLM_LOG="ERROR", LITELLM_TELEMETRY="False", DISABLE_SCHEMA_UPDATE="true"
    )
    argv = [str(exe), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1"]
    return Server(
        "litellm", argv, port, "/health/liveliness", env=env, cpus=common.PROXY_CPUS
    ).wait(timeout=240)

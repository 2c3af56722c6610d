"""Start and stop the benchmark's servers (each a separate process on 127.0.0.1) and read
their CPU time from /proc (the process and all its children: nginx's workers, uvicorn's)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ALL_CPUS = frozenset(os.sched_getaffinity(0))
PROXY_CPUS: frozenset[int] | None = None  # set by pin()


def pin() -> None:
    """Give the proxy under test a core of its own (the last one); this process, and so wrk
    and the upstreams it starts, keep the others. Without it the scheduler places the proxy
    beside wrk or the upstream in some runs and not others, and CPU per request moves by
    ±20% from one process to the next on a 2-core machine."""
    global PROXY_CPUS
    if len(ALL_CPUS) > 1:
        PROXY_CPUS = frozenset({max(ALL_CPUS)})
        os.sched_setaffinity(0, ALL_CPUS - PROXY_CPUS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its descendants (live ones), in seconds."""
    total, todo = 0.0, [pid]
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
        todo.extend(children.get(p, []))
    return total


class Server:
    def __init__(
        self, name: str, argv: list[str], port: int, ready_path: str, env=None, cpus=None,
        cwd: Path | None = None,
    ) -> None:  # fmt: skip
        """`cpus`: where the process may run (None: where this one may); `cwd`: ROOT if None."""
        self.name, self.port, self.ready_path = name, port, ready_path
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd or ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, timeout: float = 120) -> Server:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code < 500:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready on {self.url}")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def upstream(latency: float) -> Server:
    port = free_port()
    argv = [sys.executable, str(HERE / "upstream.py"), str(port), str(latency)]
    return Server(f"upstream-{latency}", argv, port, "/health").wait()


def router(
    upstream_url: str,
    workdir: Path,
    model: Path | None = None,
    *,
    tree: Path | None = None,
    config: dict | None = None,
    prefix: list[str] | None = None,
    env: dict | None = None,
    wait_s: float = 120,
    workers: int = 1,
    python: str | None = None,
) -> Server:
    """`edgepack router` (rules-only, or `model` on every request) in front of one upstream.
    `tree`: the checkout whose router runs (ROOT if None; it imports from its folder);
    `config`: top-level config keys to replace; `prefix`: argv before the interpreter
    (valgrind, nice); `env`: the process's environment; `workers`: listen.workers (more than
    one may use every core, pinned or not); `python`: the interpreter that runs it (this
    one's if None)."""
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
    if model is not None:  # the model on every request: no detector may decide first
        cfg["classifier"] = {
            "detectors": [],
            "model": {"path": str(model), "max_batch": 32, "max_wait_ms": 2, "timeout_ms": 2000},
        }
    if workers > 1:  # only then: an older tree (router-ab, instructions.py) lacks the key
        cfg["listen"]["workers"] = workers
    cfg.update(config or {})
    path = workdir / f"router-{port}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    argv = [
        *(prefix or []),
        python or sys.executable,
        "-c",
        "from pipeline.cli import main; main()",
        "router",
        "--config",
        str(path),
    ]
    name = ("router+model" if model else "router") + (f"-w{workers}" if workers > 1 else "")
    cpus = PROXY_CPUS if workers == 1 or PROXY_CPUS is None else ALL_CPUS
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
    return Server("nginx", argv, port, "/health", cpus=PROXY_CPUS).wait()


LITELLM_KEY = "sk-bench-1234"


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
    argv = [
        str(exe),
        "--config",
        str(path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    return Server("litellm", argv, port, "/health/liveliness", env=env, cpus=PROXY_CPUS).wait(
        timeout=240
    )

"""`listen.workers` > 1: real `edgepack router` processes behind a supervisor on one port.

Both workers serve; a scrape answered by either counts every worker's requests; SIGHUP
reloads each with its share of the limits; a killed worker is replaced; a SIGTERM that
reaches the workers both from the supervisor and directly (a signal to the whole process
group: Ctrl-C, systemd) still drains the requests in flight and exits 0; workers outlive
no supervisor; one that cannot start stops the router."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from router.config import config_from_dict
from router.workers import RESTART_DELAY_S, share
from tests.fixtures.ports import free_port
from tests.fixtures.router_yaml import router_yaml
from tests.fixtures.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def test_share_splits_the_totals_between_workers():
    config = config_from_dict({
        "onprem": {"upstreams": [{"name": "a", "url": "http://127.0.0.1:9"}]},
        "sagemaker": {"endpoint_name": "ep", "max_concurrency": 64},
        "admission": {"per_upstream_limit": 16, "pool_limits": {"onprem": 10, "sagemaker": 2},
                      "queue_size": {"high": 64, "normal": 3, "low": 0}},
        "fallback": {"public": {"upstreams": [{"name": "s", "url": "http://127.0.0.1:9"}]}},
    })  # fmt: skip
    part = share(config, 3)
    assert part.admission.per_upstream_limit == 5
    assert part.admission.pool_limits == {"onprem": 3, "sagemaker": 1}  # never below 1
    assert part.admission.queue_size == {"high": 21, "normal": 1, "low": 0}  # 0 stays 0
    assert part.sagemaker.max_concurrency == 21
    assert part.onprem.max_connections == 85 and part.fallback.public.max_connections == 85
    assert part.fallback.confidential is None
    assert part.retry.budget_min_retries == 1
    assert part.onprem.upstreams == config.onprem.upstreams and part.listen == config.listen
    assert share(config, 1) is config


def _children(pid: int) -> set[int]:
    """`pid`'s live children (not the zombies it has yet to reap)."""
    listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in listed if _alive(int(child))}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _write_config(path: Path, upstream: str, port: int, limit: int, workers: int = 2) -> None:
    listen = f"listen: {{host: 127.0.0.1, port: {port}, workers: {workers}}}\n"
    router_yaml(path, upstream, limit, extra=listen)


def _start(cfg: Path, env: dict, base: str) -> subprocess.Popen:
    argv = [sys.executable, "-c", "from pipeline.cli import main; main()", "router", "--config",
            str(cfg)]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip

    def ready() -> bool:
        try:
            return httpx.get(base + "/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    if not eventually(lambda: ready() and len(_children(proc.pid)) == 2, timeout=60):
        proc.kill()
        raise AssertionError(f"router did not start: {proc.communicate()[1]}")
    return proc


def _requests_total(base: str) -> float:
    text = httpx.get(base + "/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("edgepack_router_requests_total{")
    )


def _chat_in_parallel(base: str, n: int, threads: int = 8) -> list[int]:
    """`n` chats, each on a new connection, so the kernel spreads them over the workers."""
    statuses: list[int] = []

    def run(k: int) -> None:
        for _ in range(k):
            statuses.append(httpx.post(base + "/v1/chat/completions", json=CHAT, timeout=30)
                            .status_code)  # fmt: skip

    pool = [threading.Thread(target=run, args=(n // threads,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    return statuses


@pytest.mark.slow
def test_two_workers_serve_count_reload_restart_and_drain(tmp_path):
    from router.testing.openai_server import FakeOpenAI
    from router.testing.serve import ServerThread

    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale, from a run before")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    fake = FakeOpenAI(name="gpu-0", latency_s=0.05)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with ServerThread(fake) as upstream:
        cfg = tmp_path / "router.yaml"
        _write_config(cfg, upstream.url, port, limit=10)
        proc = _start(cfg, env, base)
        try:
            assert not (metrics_dir / "counter_999999.db").exists()
            assert _chat_in_parallel(base, 64) == [200] * 64
            assert eventually(lambda: _requests_total(base) == 64, 15)  # published each second
            for _ in range(6):  # whichever worker answers the scrape counts both
                assert _requests_total(base) == 64
            limit = lambda: httpx.get(base + "/readyz").json()["admission"]["onprem"]["limit"]  # noqa: E731
            assert {limit() for _ in range(6)} == {5}  # each worker holds half of 10

            _write_config(cfg, upstream.url, port, limit=20)
            proc.send_signal(signal.SIGHUP)
            assert eventually(lambda: {limit() for _ in range(6)} == {10}, 15)
            reloaded = 'edgepack_router_config_reloads_total{result="ok"} 2.0'  # both workers
            assert eventually(lambda: reloaded in httpx.get(base + "/metrics").text, 15)

            workers = _children(proc.pid)
            os.kill(min(workers), signal.SIGKILL)
            assert eventually(lambda: len(_children(proc.pid) - workers) == 1, 15)
            assert eventually(lambda: _chat_in_parallel(base, 8) == [200] * 8, 15)
            assert eventually(lambda: _requests_total(base) >= 64 + 8, 15)  # the dead one's too

            fake.latency_s = 1.5
            statuses: list[int] = []
            in_flight = threading.Thread(
                target=lambda: statuses.extend(_chat_in_parallel(base, 4, 4))
            )
            in_flight.start()
            assert eventually(lambda: fake.in_flight == 4, 30), (statuses, fake.in_flight)
            # A SIGTERM to the process group reaches each worker twice: from the supervisor
            # (its pipe) and directly. The pipe first, then the signal: still one drain.
            workers = _children(proc.pid)
            proc.send_signal(signal.SIGTERM)
            assert eventually(lambda: httpx.get(base + "/readyz").status_code == 503, 5)
            time.sleep(0.3)  # both workers heard the pipe (a new connection may reach either)
            for pid in workers:  # one with nothing in flight may have finished already
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            in_flight.join(30)
            assert statuses == [200] * 4
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    err = proc.stderr.read()
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    served_by = {line["pid"] for line in lines if line["msg"] == "request"}
    assert len(served_by) >= 2 and proc.pid not in served_by
    assert "hello" not in err


@pytest.mark.slow
def test_workers_drain_when_the_supervisor_dies(tmp_path):
    from router.testing.openai_server import FakeOpenAI
    from router.testing.serve import ServerThread

    port = free_port()
    cfg = tmp_path / "router.yaml"
    with ServerThread(FakeOpenAI(name="gpu-0")) as upstream:
        _write_config(cfg, upstream.url, port, limit=4)
        proc = _start(cfg, dict(os.environ), f"http://127.0.0.1:{port}")
        workers = _children(proc.pid)
        proc.kill()
        proc.wait(10)
        assert eventually(lambda: not any(_alive(p) for p in workers), timeout=20)


def test_a_worker_that_cannot_start_stops_the_router():
    code = textwrap.dedent("""
        import sys
        from router import logs
        from router.config import config_from_dict
        from router.server import bind
        from router.workers import supervise
        logs.setup("info")
        config = config_from_dict({"onprem": {"upstreams": [{"name": "a", "url": "http://h"}]}})
        sys.exit(supervise(2, bind("127.0.0.1", 0, None), lambda *_: 3, config))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert "died before serving: stopping the router" in result.stderr


def test_a_taken_port_is_one_line_naming_the_setting(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for workers in (1, 2):
            cfg = tmp_path / f"router-{workers}.yaml"
            _write_config(cfg, "http://127.0.0.1:9", port, limit=4, workers=workers)
            argv = [sys.executable, "-c", "from pipeline.cli import main; main()", "router",
                    "--config", str(cfg)]  # fmt: skip
            result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert result.returncode == 2
            assert result.stderr.strip().splitlines() == [
                f"error: {cfg}: listen: cannot bind 127.0.0.1:{port}: Address already in use"
            ]


def test_workers_that_die_after_serving_are_replaced_at_a_bounded_rate():
    """The rate comes from the supervisor's own timestamps (its "started" lines), so a slow
    machine makes fewer restarts, never a failed test."""
    code = textwrap.dedent("""
        import os, sys
        from router import logs
        from router.config import config_from_dict
        from router.server import bind
        from router.workers import SERVING, supervise

        def crash_after_serving(sock, control, serving, config, replacement):
            os.write(serving, SERVING)
            return 3

        logs.setup("info")
        config = config_from_dict({"onprem": {"upstreams": [{"name": "a", "url": "http://h"}]}})
        sys.exit(supervise(2, bind("127.0.0.1", 0, None), crash_after_serving, config))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    starts: dict[int, list[float]] = {0: [], 1: []}
    for line in proc.stderr:
        record = json.loads(line)
        if record["msg"].startswith("worker ") and " started " in record["msg"]:
            starts[int(record["msg"].split()[1])].append(record["ts"])
        if min(len(ts) for ts in starts.values()) >= 4:
            break
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 1  # its workers did not end cleanly
    for ts in starts.values():  # each one replaced, never sooner than RESTART_DELAY_S after
        gaps = [b - a for a, b in itertools.pairwise(ts)]
        assert len(gaps) >= 3 and min(gaps) >= RESTART_DELAY_S - 0.01, gaps

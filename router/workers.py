"""Several router processes on one listening socket (`listen.workers` > 1).

Why: one Python process handles one request at a time, so the requests of a burst queue
behind each other: at c=16 the last of a burst waits for the 15 before it (p99 +4 ms with
a 20 ms upstream, one worker; benchmarks/router/README.md). Workers on spare cores take
the burst in parallel. router/server.py binds the socket once (a busy port is one clear
error), then the supervisor forks the workers before anything starts threads; the kernel
hands each new connection to whichever worker accepts it first, so an idle one takes it.

Per worker: the event loop, classifier, pools, health checks, breakers and retry budget.
Limits that say what an upstream may see in total are split between the workers (`share`).
Shared: the socket, the cache (Redis) and the metrics (prometheus_client's multiprocess
files, router/metrics.py), so a scrape answered by any worker counts them all.

Signals go to the supervisor: SIGTERM/SIGINT drain every worker, SIGHUP reloads each. It
tells them over one pipe each, not by signal, so a signal that also reaches the workers
themselves (Ctrl-C, systemd's control-group kill) counts once, not as the second signal
that stops a worker without draining. A worker whose supervisor dies sees its pipe close
and drains. A worker that dies is started again (half a second later), unless it died
before it served (it says so over a second pipe): a crash at start-up would repeat, so the
router stops (exit 1).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import values as client_values

from router.metrics import MULTIPROC_ENV

log = logging.getLogger("edgepack.router.workers")

DRAIN, RELOAD, SERVING = b"d", b"r", b"s"
RESTART_DELAY_S = 0.5  # a worker that dies right after it serves is not forked in a tight loop
SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}

Run = Callable[[socket.socket, int, int], int]
"""A worker's body: serve on the socket, obey the control pipe (read end), write SERVING to
the other pipe once it serves; its exit status."""


def share(config: Any, workers: int) -> Any:
    """One worker's part of the limits that bound what the upstreams see in total:
    admission slots and queues, connections, SageMaker's concurrency, the retry budget's
    floor. Each is divided (at least 1 where it was), so N workers never exceed the
    configured totals; the rest of the config is the same for every worker."""
    if workers == 1:
        return config

    def part(value: int) -> int:
        return max(1, value // workers) if value > 0 else 0

    def connections(pool: Any) -> Any:
        return pool and pool.model_copy(update={"max_connections": part(pool.max_connections)})

    a, fallback = config.admission, config.fallback
    update: dict[str, Any] = {
        "admission": a.model_copy(update={
            "per_upstream_limit": part(a.per_upstream_limit),
            "pool_limits": {k: part(v) for k, v in a.pool_limits.items()},
            "queue_size": {k: part(v) for k, v in a.queue_size.items()},
        }),
        "retry": config.retry.model_copy(
            update={"budget_min_retries": part(config.retry.budget_min_retries)}
        ),
        "onprem": connections(config.onprem),
        "fallback": fallback.model_copy(update={
            "confidential": connections(fallback.confidential),
            "public": connections(fallback.public),
        }),
    }  # fmt: skip
    if config.sagemaker is not None:
        sm = config.sagemaker
        update["sagemaker"] = sm.model_copy(update={"max_concurrency": part(sm.max_concurrency)})
    return config.model_copy(update=update)


def supervise(workers: int, sock: socket.socket, run: Run) -> int:
    """Fork `workers` processes running `run` on `sock`, keep them running until told to
    stop; 0 if every worker drained cleanly."""
    metrics_dir, owned = _metrics_dir()
    # prometheus_client picks its value class from the environment when first imported
    # (here: before the dir was set); every metric is made in a worker, after this.
    client_values.ValueClass = client_values.get_value_class()
    try:
        log.info("starting %d workers on %s", workers, sock.getsockname())
        return Supervisor(workers, sock, run, metrics_dir).run()
    finally:
        if owned:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_dir() -> tuple[str, bool]:
    """PROMETHEUS_MULTIPROC_DIR if the deployment set one (emptied of the last run's
    files, as prometheus_client asks), else a fresh one removed at exit. True: ours."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return given, False
    path = tempfile.mkdtemp(prefix="edgepack-router-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path, True


@dataclass
class Worker:
    index: int
    pid: int
    control: int  # the write end of its control pipe
    serving: int  # the read end of the pipe it says SERVING on


class Supervisor:
    def __init__(self, count: int, sock: socket.socket, run: Run, metrics_dir: str) -> None:
        self.count, self.sock, self.run_worker, self.metrics_dir = count, sock, run, metrics_dir
        self.workers: dict[int, Worker] = {}
        self.stopping = False
        self.status = 0

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self.tell(RELOAD))
        for index in range(self.count):
            self.start(index)
        while self.workers:
            pid, wait_status = os.waitpid(-1, 0)  # a signal's handler runs, then it waits on
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self.reap(worker, os.waitstatus_to_exitcode(wait_status))
        return self.status

    def start(self, index: int) -> None:
        """Fork one worker. Signals wait meanwhile: a drain told half-way through would
        miss the new worker, or run the supervisor's handler inside it."""
        control, tell = os.pipe()
        serving, says = os.pipe()
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:  # the worker
                inherited = [tell, serving]
                inherited += [fd for w in self.workers.values() for fd in (w.control, w.serving)]
                _worker_main(lambda: self.run_worker(self.sock, control, says), inherited)
            os.close(control)
            os.close(says)
            os.set_blocking(serving, False)
            self.workers[pid] = Worker(index, pid, tell, serving)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    def reap(self, worker: Worker, code: int) -> None:
        """A worker ended: account for it; start it again unless stopping."""
        from prometheus_client import multiprocess

        served = _read(worker.serving) == SERVING
        os.close(worker.control)
        os.close(worker.serving)
        multiprocess.mark_process_dead(worker.pid, self.metrics_dir)  # its live gauges go
        if self.stopping:
            self.status = self.status or int(code != 0)
            return
        log.error("worker %d (pid %d) exited with status %d", worker.index, worker.pid, code)
        if not served:
            log.error("worker %d died before serving: stopping the router", worker.index)
            self.status = 1
            self.stop()
            return
        time.sleep(RESTART_DELAY_S)  # a stop meanwhile runs its handler; then no restart
        if not self.stopping:
            self.start(worker.index)

    def stop(self) -> None:
        self.stopping = True
        self.tell(DRAIN)

    def tell(self, message: bytes) -> None:
        for worker in self.workers.values():
            with contextlib.suppress(OSError):  # it is exiting; waitpid will say so
                os.write(worker.control, message)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 1)
    except BlockingIOError:
        return b""


def _worker_main(run: Callable[[], int], inherited: list[int]) -> None:
    """The forked worker: never returns (os._exit), so it never runs the supervisor's
    cleanup (the socket, the metrics dir) on its way out."""
    code = 1
    try:
        for fd in inherited:  # the supervisor's ends: else a pipe outlives the supervisor
            os.close(fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the server installs its own
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload before serving: nothing yet
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        code = run()
    except BaseException:
        log.exception("worker failed")
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)

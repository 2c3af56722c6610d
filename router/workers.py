"""Several router processes on one listening socket (`listen.workers` > 1).

Why: one Python process handles one request at a time, so the requests of a burst queue
behind each other: at c=16 the last of a burst waits for the 15 before it
(docs/decisions/004-router-measured-choices.md). Workers on spare cores take
the burst in parallel. router/server.py binds the socket once (a busy port is one clear
error), then the supervisor forks the workers before anything starts threads; the kernel
hands each new connection to whichever worker accepts it first, so an idle one takes it.

Per worker: the event loop, classifier (and its score cache: router/sensitivity/scores.py
says why it is not shared), pools, health checks, breakers and retry budget.
Limits that say what an upstream may see in total are split between the workers (`share`).
Shared: the socket, the cache (Redis) and the metrics (prometheus_client's multiprocess
files, router/metrics.py), so a scrape answered by any worker counts them all.

Signals go to the supervisor: SIGTERM/SIGINT drain every worker, SIGHUP reloads each. It
tells them over one pipe each, not by signal, so a signal that also reaches the workers
themselves (Ctrl-C, systemd's control-group kill) counts once, not as the second signal
that stops a worker without draining. A worker whose supervisor dies sees its pipe close
and drains.

The supervisor owns the config in force. On SIGHUP it reads the file, refuses it as a
whole if it is invalid, changes a restart-only section (`listen`) or names a model that
does not load (tried in a short-lived child, as the supervisor itself starts no threads
before it forks), else stages it (`staged_config`) and tells the workers to put it in
force. A worker that dies is started again half a second later with that config; it is
admitted to the socket only once it has loaded it whole. One that dies before it served
at start-up stops the router (exit 1: the crash would repeat); a replacement that cannot
load the config is tried again, half a second later, while the others serve.
"""

from __future__ import annotations

import contextlib
import fcntl
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

from router.app import refuse_restart_only
from router.config import RouterConfig
from router.metrics import MULTIPROC_ENV

log = logging.getLogger("edgepack.router.workers")

DRAIN, RELOAD, REJECTED, SERVING = b"d", b"r", b"x", b"s"
RESTART_DELAY_S = 0.5  # a worker that dies right after it serves is not forked in a tight loop
SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
WAITED = SIGNALS | {signal.SIGCHLD}  # what the supervisor's loop waits for
DIR_PREFIX = "edgepack-router-metrics-"
LOCK, STAGED = ".lock", "router-config.json"
FRESH_S, STALE_AFTER_S = 5.0, 60.0  # younger: maybe starting; a lock-less dir this old: dead

Run = Callable[[socket.socket, int, int, RouterConfig, bool], int]
"""A worker's body: serve on the socket with the config, obey the control pipe (read end),
write SERVING to the other pipe once it serves; its exit status. True: a replacement,
which must load the whole config (its model included) before it serves."""
Load = Callable[[], RouterConfig]
Check = Callable[[RouterConfig], "str | None"]


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


def supervise(
    workers: int,
    sock: socket.socket,
    run: Run,
    config: RouterConfig,
    load: Load | None = None,
    check: Check | None = None,
) -> int:
    """Fork `workers` processes running `run` on `sock`, keep them running until told to
    stop; 0 if every worker drained cleanly. SIGHUP: `load` the new config, `check` that
    it loads whole (one line saying what does not, or None)."""
    metrics_dir, owned = _metrics_dir()
    # prometheus_client picks its value class from the environment when first imported
    # (here: before the dir was set); every metric is made in a worker, after this.
    client_values.ValueClass = client_values.get_value_class()
    supervisor = Supervisor(workers, sock, run, metrics_dir, config, load, check)
    supervisor.owned = owned
    try:
        log.info("starting %d workers on %s", workers, sock.getsockname())
        return supervisor.run()
    finally:
        if owned:
            _remove_if_last(metrics_dir, supervisor.lock)


def staged_config() -> RouterConfig:
    """The config the supervisor last put in force (a worker's SIGHUP reads it)."""
    path = Path(os.environ[MULTIPROC_ENV]) / STAGED
    return RouterConfig.model_validate_json(path.read_text())


def _stage(directory: str, config: RouterConfig) -> None:
    temp = Path(directory) / f".{STAGED}.{os.getpid()}"
    temp.write_text(config.model_dump_json())
    os.replace(temp, Path(directory) / STAGED)  # a worker reads the old file or the new


def _metrics_dir() -> tuple[str, bool]:
    """PROMETHEUS_MULTIPROC_DIR if the deployment set one (emptied of the last run's
    files, as prometheus_client asks), else a fresh one, removed by whichever of the
    router's processes ends last, or by the next router that finds it unlocked. True: ours."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return given, False
    _remove_stale(Path(tempfile.gettempdir()))
    path = tempfile.mkdtemp(prefix=DIR_PREFIX)
    os.environ[MULTIPROC_ENV] = path
    return path, True


def _hold(directory: str) -> int:
    """A shared lock on the dir's lock file, held while this process lives."""
    fd = os.open(Path(directory) / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def _remove_if_last(directory: str, fd: int | None) -> None:
    """Give up this process's lock; remove the dir if no other process holds one."""
    if fd is not None:
        os.close(fd)
    try:
        probe = os.open(Path(directory) / LOCK, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another of its processes still runs
    finally:
        os.close(probe)
    shutil.rmtree(directory, ignore_errors=True)


def _remove_stale(tmp: Path) -> None:
    """Dirs of routers that were killed outright (no process left to remove them)."""
    for directory in tmp.glob(DIR_PREFIX + "*"):
        with contextlib.suppress(OSError):
            age = time.time() - directory.stat().st_mtime
            if age < FRESH_S:
                continue  # a router starting now may not hold its lock yet
            if (directory / LOCK).exists():
                _remove_if_last(str(directory), None)
            elif age > STALE_AFTER_S:
                shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Worker:
    index: int
    pid: int
    control: int  # the write end of its control pipe
    serving: int  # the read end of the pipe it says SERVING on
    served: bool = False


class Supervisor:
    def __init__(
        self,
        count: int,
        sock: socket.socket,
        run: Run,
        metrics_dir: str,
        config: RouterConfig,
        load: Load | None = None,
        check: Check | None = None,
    ) -> None:
        self.count, self.sock, self.run_worker, self.metrics_dir = count, sock, run, metrics_dir
        self.config, self.load, self.check = config, load, check
        self.workers: dict[int, Worker] = {}
        self.due: dict[int, float] = {}  # worker index → when to start it again
        self.stopping = False
        self.served = False  # a worker has served: later deaths are not start-up crashes
        self.status = 0
        self.owned = False
        self.lock: int | None = None

    def run(self) -> int:
        """Signals are blocked and taken one at a time by `sigtimedwait`, so a reload, a
        restart and a stop never run inside one another."""
        signal.signal(signal.SIGCHLD, lambda *_: None)  # delivered (not ignored) while blocked
        signal.pthread_sigmask(signal.SIG_BLOCK, WAITED)
        self.lock = _hold(self.metrics_dir)
        _stage(self.metrics_dir, self.config)
        for index in range(self.count):
            self.start(index)
        while self.workers or (self.due and not self.stopping):
            self.step()
        return self.status

    def step(self) -> None:
        now = time.monotonic()
        timeout = max(min(self.due.values()) - now, 0) if self.due else 3600.0
        info = signal.sigtimedwait(WAITED, timeout)
        signo = info.si_signo if info is not None else None
        if signo in (signal.SIGTERM, signal.SIGINT):
            self.stop()
        elif signo == signal.SIGHUP:
            self.reload()
        self.reap_all()
        for index, when in list(self.due.items()):
            if self.stopping:
                self.due.clear()
            elif when <= time.monotonic():
                del self.due[index]
                self.start(index, replacement=True)

    def start(self, index: int, replacement: bool = False) -> None:
        """Fork one worker (signals are blocked: the supervisor takes them in `step`)."""
        control, tell = os.pipe()
        serving, says = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            inherited = [tell, serving, *([self.lock] if self.lock is not None else [])]
            inherited += [fd for w in self.workers.values() for fd in (w.control, w.serving)]
            config = self.config
            _worker_main(
                lambda: self.run_worker(self.sock, control, says, config, replacement),
                inherited,
                self.metrics_dir if self.owned else None,
            )
        os.close(control)
        os.close(says)
        os.set_blocking(serving, False)
        self.workers[pid] = Worker(index, pid, tell, serving)
        log.info("worker %d started (pid %d)", index, pid)

    def reap_all(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self.reap(worker, os.waitstatus_to_exitcode(wait_status))

    def reap(self, worker: Worker, code: int) -> None:
        """A worker ended: account for it; start it again unless stopping."""
        from prometheus_client import multiprocess

        served = self._served(worker)
        os.close(worker.control)
        os.close(worker.serving)
        multiprocess.mark_process_dead(worker.pid, self.metrics_dir)  # its live gauges go
        if self.stopping:
            self.status = self.status or int(code != 0)
            return
        log.error("worker %d (pid %d) exited with status %d", worker.index, worker.pid, code)
        if not served and not self.served and not any(map(self._served, self.workers.values())):
            log.error("worker %d died before serving: stopping the router", worker.index)
            self.status = 1
            self.stop()
            return
        if not served:
            log.error("worker %d could not load the config in force: not admitted", worker.index)
        self.due[worker.index] = time.monotonic() + RESTART_DELAY_S

    def _served(self, worker: Worker) -> bool:
        if not worker.served and _read(worker.serving) == SERVING:
            worker.served = self.served = True
        return worker.served

    def reload(self) -> None:
        """SIGHUP: the new config goes to every worker, or none does (one line says why)."""
        if self.load is None:
            self.tell(RELOAD)
            return
        try:
            new = self.load()
            refuse_restart_only(self.config, new)
            problem = self._probe(new)
            if problem is not None:
                raise ValueError(problem)
        except Exception as exc:  # bad config: reject, keep serving with the old one
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.error("config reload rejected, keeping the old config: %s", why)
            self.tell(REJECTED)
            return
        self.config = new
        _stage(self.metrics_dir, new)
        self.tell(RELOAD)

    def _probe(self, config: RouterConfig) -> str | None:
        """`check(config)` in a child: loading a model starts threads, which a process that
        forks must not have. Its one line, or None if the config loads."""
        if self.check is None:
            return None
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(read)
                problem = self.check(config)
                os.write(write, (problem or "").encode()[:4096])
                code = 0 if problem is None else 1
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read, "rb") as said:
            problem = said.read().decode(errors="replace")
        _, wait_status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(wait_status) == 0:
            return None
        return problem or "the new config did not load"

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


def _worker_main(run: Callable[[], int], inherited: list[int], owned_dir: str | None) -> None:
    """The forked worker: never returns (os._exit), so it never runs the supervisor's
    cleanup (the socket) on its way out. It holds its own lock on the router's metrics
    dir (`owned_dir`) and removes the dir if it is the last of the router's processes."""
    code = 1
    lock = None
    try:
        for fd in inherited:  # the supervisor's ends: else a pipe outlives the supervisor
            os.close(fd)
        if owned_dir is not None:
            lock = _hold(owned_dir)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the server installs its own
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload before serving: nothing yet
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WAITED)
        code = run()
    except BaseException:
        log.exception("worker failed")
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        if owned_dir is not None:
            _remove_if_last(owned_dir, lock)
        os._exit(code)

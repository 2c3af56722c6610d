"""What every benchmark here needs, once (../shared/BENCHMARKING.md): variants interleaved
round-robin, medians and per-round ratios, /proc/loadavg, the CPU seconds of a process tree,
a core of its own for the process under test, loopback servers started and stopped, the
default recipe's eval prompts, and another revision's files to A/B against.

Scripts run as `python benchmarks/.../x.py`; each puts the checkout's root on sys.path
first and imports `benchmarks.common` from there.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "recipes/data/sensitivity/eval.jsonl"
TICK = os.sysconf("SC_CLK_TCK")
ALL_CPUS = frozenset(os.sched_getaffinity(0))
PROXY_CPUS: frozenset[int] | None = None  # set by pin()

T = TypeVar("T")


# --- measuring ---------------------------------------------------------------------------


def loadavg() -> str:
    """The 1/5/15-minute load average, to print before and after every run: the machine is
    shared, and a figure means little without it."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def finish(result: dict, out: Path | None) -> None:
    """Close a run's record: the load average after it (next to the one before), printed and,
    with `out`, the whole record written as JSON."""
    result["loadavg_after"] = loadavg()
    print(f"loadavg before {result['loadavg_before']} after {result['loadavg_after']}")
    if out:
        out.write_text(json.dumps(result, indent=2))


def round_robin(
    variants: Mapping[str, Callable[[], T]],
    rounds: int,
    warmup: int = 0,
    before_round: Callable[[int], object] | None = None,
) -> dict[str, list[T]]:
    """Call the variants A B C A B C …: `warmup` whole rounds first (dropped), then `rounds`;
    each variant's results in round order. On a drifting machine every variant then sees the
    same drift, so ratios within one run hold where absolute figures do not."""
    samples: dict[str, list[T]] = {name: [] for name in variants}
    for r in range(warmup + rounds):
        if before_round is not None:
            before_round(r)
        for name, run in variants.items():
            value = run()
            if r >= warmup:
                samples[name].append(value)
    return samples


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def medians(rows: Sequence[Mapping[str, Any]], digits: int = 3) -> dict[str, float | None]:
    """The median of each numeric field over `rows` (None where no row has a number)."""
    out: dict[str, float | None] = {}
    for key in rows[0] if rows else ():
        values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
        out[key] = round(statistics.median(values), digits) if values else None
    return out


def median_ratio(new: Iterable[float], old: Iterable[float]) -> float:
    """The median of the per-round ratios new/old (both measured in the same rounds)."""
    return statistics.median(n / o for n, o in zip(new, old, strict=True))


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its live descendants (nginx's workers, uvicorn's), from
    /proc: CPU per request is stable on a shared machine where latency is not."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
        todo.extend(children.get(p, []))
    return total


def pin() -> None:
    """Give the process under test a core of its own (the last one); this process, and so
    the load generator and the upstreams it starts, keep the others. Unpinned, the scheduler
    places it beside the load in some runs and not others, and CPU per request moves by
    ±20% from one process to the next on a 2-core machine."""
    global PROXY_CPUS
    if len(ALL_CPUS) > 1:
        PROXY_CPUS = frozenset({max(ALL_CPUS)})
        os.sched_setaffinity(0, ALL_CPUS - PROXY_CPUS)


# --- loopback servers ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on 127.0.0.1, in its own session so that stop() ends its children."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        ready_path: str,
        env: Mapping[str, str] | None = None,
        cpus: frozenset[int] | None = None,
        cwd: Path | None = None,
    ) -> None:
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
        """Return once `ready_path` answers below 500; raise if the process exits first."""
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
        self.stop()
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
                self.proc.wait()


# --- inputs --------------------------------------------------------------------------------


def eval_rows() -> list[dict]:
    """The default recipe's eval split (EN+ZH prompts with their labels)."""
    return [json.loads(line) for line in EVAL.read_text().splitlines() if line.strip()]


def eval_texts(label: str | None = None) -> list[str]:
    return [r["text"] for r in eval_rows() if label is None or r["label"] == label]


def chat_bodies(texts: Iterable[str]) -> list[bytes]:
    """One OpenAI chat request body per text."""
    return [
        json.dumps({"model": "m", "messages": [{"role": "user", "content": t}]}).encode()
        for t in texts
    ]


# --- A/B against another revision ---------------------------------------------------------


def checkout(rev: str, paths: Sequence[str] = (), parent: Path | None = None) -> Path:
    """A new folder with `rev`'s tracked files (`git archive`); with `paths`, HEAD's files
    with only those taken from `rev`. Every A/B here compares such a tree with the working
    tree, interleaved in one run: a process per tree, or the tree's router/ imported
    beside this one (`import_router`)."""
    tree = Path(tempfile.mkdtemp(prefix="bench-rev-", dir=parent))
    git = ["git", "-C", str(ROOT)]
    base = "HEAD" if paths else rev
    archive = subprocess.run([*git, "archive", base], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    for path in paths:
        old = subprocess.run([*git, "show", f"{rev}:{path}"], capture_output=True, check=True)
        (tree / path).write_bytes(old.stdout)
    return tree


def ab_args(parser) -> None:
    """The one A/B option set every script takes."""
    parser.add_argument(
        "--rev",
        help="also measure this git revision's code (e.g. HEAD, main, a1b2c3d), interleaved "
        "with the working tree's",
    )
    parser.add_argument(
        "--rev-paths",
        nargs="*",
        default=[],
        metavar="PATH",
        help="with --rev: HEAD's files with only these paths from REV",
    )


def rev_name(rev: str, paths: Sequence[str]) -> str:
    return f"{','.join(paths)}@{rev}" if paths else f"@{rev}"


def import_router(tree: Path, package: str = "router_base"):
    """`tree`/router imported in this process as `package` (its own imports rewritten), so
    that both revisions run in the same interleaved rounds of one process. Returns a function
    that imports one of its modules by its name under router/ (e.g. "upstreams.http1")."""
    pattern = re.compile(r"(?<=from )router(?=[. ])|(?<=import )router(?=\.)|(?<=\")router(?=\.)")
    pkg = Path(tempfile.mkdtemp(prefix="bench-import-")) / package
    shutil.copytree(tree / "router", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for path in pkg.rglob("*.py"):
        path.write_text(pattern.sub(package, path.read_text()))
    sys.path.insert(0, str(pkg.parent))
    return lambda name: importlib.import_module(f"{package}.{name}")

"""Build progress for people (live spinner + per-stage lines) and for CI logs (--quiet)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from pipeline.stage import Reporter, StageResult

QUIET_PROGRESS_EVERY_S = 15.0


class RichReporter(Reporter):
    """A live line (spinner, stage, status, elapsed) while a stage runs, then one line each.

    With `quiet` there is no live display: plain lines only, and a running stage's status
    at most every QUIET_PROGRESS_EVERY_S seconds, so CI logs stay short but show life.
    """

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet or not console.is_terminal  # a log file gets plain lines
        self._live: Progress | None = None
        self._task: TaskID | None = None
        self._last_plain = 0.0

    def stage_started(self, name: str, cached: bool) -> None:
        if cached:
            return
        if self.quiet:
            self.console.print(f"{name}: running", highlight=False)
            self._last_plain = time.monotonic()
            return
        self._live = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[stage]:<9}"),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=self.console,
            transient=True,
        )
        self._task = self._live.add_task("running…", stage=name, total=None)
        self._live.start()

    def stage_progress(self, name: str, message: str) -> None:
        if self._live is not None and self._task is not None:
            self._live.update(self._task, description=message)
        elif self.quiet and time.monotonic() - self._last_plain >= QUIET_PROGRESS_EVERY_S:
            self._last_plain = time.monotonic()
            self.console.print(f"{name}: {message}", highlight=False)

    def stage_finished(self, result: StageResult) -> None:
        if self._live is not None:
            self._live.stop()
            self._live, self._task = None, None
        state = "cached" if result.cached else f"done in {result.seconds:.1f}s"
        if self.quiet:
            self.console.print(f"{result.name}: {state} ({result.key})", highlight=False)
            return
        mark = "[dim]•[/]" if result.cached else "[green]✓[/]"
        self.console.print(f"{mark} {result.name:<9} {state}  [dim]{result.key}[/]")

    def note(self, stage: str, line: str) -> None:
        if self.quiet:
            self.console.print(f"{stage}: note: {line}", highlight=False)
        else:
            self.console.print(f"[yellow]![/] {stage}: {line}", highlight=False)

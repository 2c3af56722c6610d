"""Build progress for people (rich spinner + per-stage lines) and for CI logs (--quiet)."""

from __future__ import annotations

from rich.console import Console
from rich.status import Status

from pipeline.runner import Reporter, StageResult


class RichReporter(Reporter):
    """A spinner while a stage runs, then one line per stage with its time."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self._status: Status | None = None

    def stage_started(self, name: str, cached: bool) -> None:
        if not cached and not self.quiet:
            self._status = self.console.status(f"[bold]{name}[/] running…")
            self._status.start()

    def stage_progress(self, name: str, message: str) -> None:
        if self._status is not None:
            self._status.update(f"[bold]{name}[/] {message}")

    def stage_finished(self, result: StageResult) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        state = "cached" if result.cached else f"done in {result.seconds:.1f}s"
        mark = "[dim]•[/]" if result.cached else "[green]✓[/]"
        self.console.print(f"{mark} {result.name:<9} {state}  [dim]{result.key}[/]")

    def note(self, stage: str, line: str) -> None:
        if self._status is not None:
            self._status.stop()
        self.console.print(f"[yellow]![/] {stage}: {line}")
        if self._status is not None:
            self._status.start()

"""Transfer progress: a rich bar (bytes, speed, ETA) for people, nothing for `--quiet` CI logs."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from s3transfer.subscribers import BaseSubscriber


class TransferProgress:
    """One bar over all bytes of a transfer; s3transfer subscribers feed it from threads."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        # A bar only on a terminal: in a log file its final frame is noise beside the summary.
        self.quiet = quiet or not console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._console = console

    def start(self, label: str, total_bytes: int) -> None:
        if self.quiet or total_bytes <= 0:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, nbytes)  # thread-safe: rich locks internally

    def subscriber(self) -> BaseSubscriber:
        return _ProgressSubscriber(self)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _ProgressSubscriber(BaseSubscriber):
    def __init__(self, progress: TransferProgress) -> None:
        self._progress = progress

    def on_progress(self, future, bytes_transferred: int, **kwargs) -> None:
        # Negative on a retried part: the bar steps back and counts the bytes again.
        self._progress.advance(bytes_transferred)

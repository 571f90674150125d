"""Progress reporting that library code can call without knowing who is watching.

The CLI installs a rich progress display; everywhere else (tests, Prefect
workers) the reporter does nothing. Library code stays free of UI concerns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class Reporter:
    """No-op base: ``task`` yields an ``advance(completed)`` callable."""

    interactive = False  # True when someone watches: worth polling for progress

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator:
        yield lambda completed: None


class RichReporter(Reporter):
    interactive = True

    def __init__(self, console):
        self.console = console

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = [
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=self.console, transient=True) as progress:
            tid = progress.add_task(description, total=total)
            yield lambda completed: progress.update(tid, completed=completed)


_current: Reporter = Reporter()


def reporter() -> Reporter:
    return _current


def install(r: Reporter) -> None:
    global _current
    _current = r

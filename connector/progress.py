"""Progress of long work: rich bars (count, rate, ETA) on a terminal, plain lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol, Self

__all__ = ["NullProgress", "Progress", "ProgressCounts", "ProgressSink", "make_progress"]

log = logging.getLogger("connector.progress")


class ProgressSink(Protocol):
    def task(self, name: str, total: int | None = None) -> int: ...

    def advance(self, task: int, n: int = 1, *, total: int | None = None) -> None: ...

    def done(self, task: int) -> None: ...


class NullProgress:
    """Progress that shows nothing (tests, dry runs inside other commands)."""

    def task(self, name: str, total: int | None = None) -> int:
        return 0

    def advance(self, task: int, n: int = 1, *, total: int | None = None) -> None:
        return None

    def done(self, task: int) -> None:
        return None


class PlainProgress:
    """A log line per task every `every` seconds and at the end: count, rate, ETA if known."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._tasks: dict[int, list[object]] = {}

    def task(self, name: str, total: int | None = None) -> int:
        tid = len(self._tasks) + 1
        now = time.monotonic()
        self._tasks[tid] = [name, total, 0, now, now]
        log.info("%s: started", name)
        return tid

    def _line(self, tid: int, final: bool = False) -> None:
        name, total, count, start, _ = self._tasks[tid]
        elapsed = max(time.monotonic() - float(start), 1e-6)  # type: ignore[arg-type]
        rate = int(count) / elapsed  # type: ignore[call-overload]
        parts = [f"{name}: {count}" + (f"/{total}" if total else ""), f"{rate:.1f}/s"]
        if total and rate > 0 and not final:
            parts.append(f"ETA {max(int(total) - int(count), 0) / rate:.0f}s")  # type: ignore[call-overload]
        if final:
            parts.append(f"done in {elapsed:.1f}s")
        log.info(" ".join(parts))

    def advance(self, task: int, n: int = 1, *, total: int | None = None) -> None:
        entry = self._tasks.get(task)
        if entry is None:
            return
        entry[2] = int(entry[2]) + n  # type: ignore[call-overload]
        if total is not None:
            entry[1] = total
        if time.monotonic() - float(entry[4]) >= self.every:  # type: ignore[arg-type]
            entry[4] = time.monotonic()
            self._line(task)

    def done(self, task: int) -> None:
        if task in self._tasks:
            self._line(task, final=True)


class ProgressCounts(Counter[str]):
    """An engine's counts that also advance a progress task: every increase of one of the
    watched keys (outcomes, one per record) moves the task, so an engine that only counts shows
    its progress without knowing of it."""

    def watch(self, sink: ProgressSink, task: int, keys: Iterable[str]) -> Self:
        """Advance `task` on `sink` by what the `keys` grow by; returns self."""
        self._sink, self._task, self._keys = sink, task, frozenset(keys)
        return self

    def __setitem__(self, key: str, value: int) -> None:
        keys: frozenset[str] = getattr(self, "_keys", frozenset())
        if key in keys and (grown := value - self.get(key, 0)) > 0:
            self._sink.advance(self._task, grown)
        super().__setitem__(key, value)


def _rate_column_class() -> type:
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Records per second."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f}/s" if speed else "-/s", style="progress.data.speed")

    return RateColumn


class Progress:
    """rich progress bars on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        _RateColumn = _rate_column_class()

        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )

    def start(self) -> None:
        self._bar.start()

    def stop(self) -> None:
        self._bar.stop()

    def task(self, name: str, total: int | None = None) -> int:
        return int(self._bar.add_task(name, total=total))

    def advance(self, task: int, n: int = 1, *, total: int | None = None) -> None:
        if total is not None:
            self._bar.update(task, total=total)  # type: ignore[arg-type]
        self._bar.advance(task, n)  # type: ignore[arg-type]

    def done(self, task: int) -> None:
        t = self._bar.tasks[task] if task < len(self._bar.tasks) else None
        if t is not None and t.total is None:
            self._bar.update(task, total=t.completed)  # type: ignore[arg-type]


@contextmanager
def make_progress(enabled: bool = True) -> Iterator[ProgressSink]:
    """Bars on a terminal, plain log lines otherwise, nothing when disabled."""
    if not enabled:
        yield NullProgress()
        return
    if sys.stderr.isatty():
        bar = Progress()
        bar.start()
        try:
            yield bar
        finally:
            bar.stop()
        return
    yield PlainProgress()

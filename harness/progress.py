"""Progress of `harness run` on the console: runs ended and training progress, kept apart."""

from __future__ import annotations

import os
import time

from rich.console import Console


class RunProgress:
    """Two counts, kept apart: runs that have ENDED (trained, logged, terminal) and training
    progress inside the current block (its runs end together, after the last step). A rich bar
    on a terminal; plain lines otherwise (a log, CI): one per ended run, one per 10% trained."""

    def __init__(self, console: Console):
        self.console = console
        self.plain = not console.is_terminal and os.environ.get("HARNESS_PROGRESS") != "1"
        self.t0 = time.perf_counter()
        self.start: int | None = None  # runs already ended before this invocation
        self.last_ended, self.last_decile = -1, 0

    def __enter__(self) -> RunProgress:
        if not self.plain:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("{task.description:>13}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=self.console)
            self.bar.__enter__()
            self.t_ended = self.bar.add_task("runs ended", total=None)
            self.t_train = self.bar.add_task("training", total=None)
        return self

    def __exit__(self, *exc) -> None:
        if not self.plain:
            self.bar.__exit__(*exc)

    def ended(self, done: float, total: int) -> None:
        done = int(done)
        if self.start is None:
            self.start = done
        if self.plain:
            if done != self.last_ended:
                self.last_ended = done
                el = time.perf_counter() - self.t0
                rate = (done - self.start) / el if el > 0 else 0.0
                eta = f"{(total - done) / rate:.0f} s" if rate > 0 else "?"
                self.console.print(f"runs {done}/{total} ended; elapsed {el:.0f} s; eta {eta}", markup=False)
        else:
            self.bar.update(self.t_ended, completed=done, total=total)
            self.bar.update(self.t_train, completed=max(done, self.bar.tasks[self.t_train].completed), total=total)

    def training(self, trained: float, total: int) -> None:
        start = self.start or 0
        if self.plain:
            frac = (trained - start) / max(total - start, 1)
            decile = int(frac * 10 + 1e-9)
            if decile > self.last_decile:
                self.last_decile = decile
                self.console.print(f"training: {10 * decile}% of this invocation's {total - start} runs' steps "
                                   f"({time.perf_counter() - self.t0:.0f} s)", markup=False)
        else:
            self.bar.update(self.t_train, completed=trained, total=total)

"""Progress of `harness run` on the console: one display per phase (tuning, then the
confirmatory runs), runs ended and training progress kept apart, an ETA from the step rate."""

from __future__ import annotations

import os
import time

from rich.console import Console

from analysis.outputs import duration


class RunProgress:
    """Per phase, two counts kept apart: runs that have ENDED (trained, logged, terminal) and
    training progress inside the current blocks (their runs end together, after the last step).
    Every count starts again at a new phase (:meth:`phase`): the tuning's trial runs are never
    carried into the confirmatory runs' counts. The ETA is the work left over the rate measured
    in this phase, training steps included (not ended runs only: a block's runs all end at its
    last step, so their rate jumps). A rich bar on a terminal; plain lines otherwise (a log,
    CI): one per ended run, one per 10% trained, each naming its phase."""

    def __init__(self, console: Console):
        self.console = console
        self.plain = not console.is_terminal and os.environ.get("HARNESS_PROGRESS") != "1"
        self.bar = None
        self.name = "confirmatory"
        self._reset()

    def _reset(self) -> None:
        self.t0 = time.perf_counter()
        self.start: float | None = None  # runs already ended when this phase started (resume)
        self.done = 0.0  # max of ended runs and training progress, in run units
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

            self.bar = Progress(TextColumn("{task.description:>24}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=self.console)
            self.bar.__enter__()
            self.t_ended = self.bar.add_task(f"{self.label}: runs ended", total=None)
            self.t_train = self.bar.add_task(f"{self.label}: training", total=None)
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    @property
    def label(self) -> str:
        return self.name

    def phase(self, name: str, total: int) -> None:
        """A new phase ("tuning", "confirmatory") of ``total`` runs: every count starts again."""
        self.name = name
        self._reset()
        if self.plain:
            self.console.print(f"{self.label}: {total} runs planned", markup=False)
        else:
            self.bar.reset(self.t_ended, total=total, completed=0, description=f"{self.label}: runs ended")
            self.bar.reset(self.t_train, total=total, completed=0, description=f"{self.label}: training")

    def _eta(self, total: int) -> str:
        el = time.perf_counter() - self.t0
        rate = (self.done - (self.start or 0)) / el if el > 0 else 0.0
        return duration((total - self.done) / rate) if rate > 0 else "?"

    def ended(self, done: float, total: int) -> None:
        if self.start is None:
            self.start = float(done)
        self.done = max(self.done, float(done))
        done = int(done)
        if self.plain:
            if done != self.last_ended:
                self.last_ended = done
                el = time.perf_counter() - self.t0
                self.console.print(f"{self.label}: runs {done}/{total} ended; elapsed {duration(el)}; "
                                   f"eta {self._eta(total)}", markup=False)
        else:
            self.bar.update(self.t_ended, completed=done, total=total)
            self.bar.update(self.t_train, completed=max(done, self.bar.tasks[self.t_train].completed), total=total)

    def training(self, trained: float, total: int) -> None:
        if self.start is None:
            self.start = 0.0
        self.done = max(self.done, float(trained))
        if self.plain:
            frac = (trained - self.start) / max(total - self.start, 1)
            decile = int(frac * 10 + 1e-9)
            if decile > self.last_decile:
                self.last_decile = decile
                self.console.print(f"{self.label}: training {10 * decile}% of this phase's {total - self.start:g} "
                                   f"runs' steps ({duration(time.perf_counter() - self.t0)}; eta {self._eta(total)})",
                                   markup=False)
        else:
            self.bar.update(self.t_train, completed=trained, total=total)

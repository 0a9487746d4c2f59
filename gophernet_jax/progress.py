"""A progress line for long runs: epochs done and seed-epochs per second, on a terminal only.

The compiled program reports through `jax.debug.callback` after each block of epochs of
each chunk; the callback is baked into the compiled program, so it forwards to whichever
`Progress` is active at run time (none: it does nothing).
"""

import sys
import time
from typing import TextIO

_active: "Progress | None" = None


def report(seed_epochs: int, *_: object) -> None:
    """Called from inside the compiled program: `seed_epochs` more are done."""
    if _active is not None:
        _active.advance(seed_epochs)


def expect(reported: int) -> None:
    """The program about to run reports `reported` seed-epochs in all: its chunks' padding
    seeds included, epochs past the last whole block not. The active progress counts them
    in proportion, so that it ends at its total."""
    if _active is not None and reported > 0:
        _active.scale = _active.total / reported


class Progress:
    """Draws `[#####.....]  45%  2.2e+06 of 5.0e+06 seed-epochs  1.1e+06/s` on one line."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        # sys.stderr when drawn, not at import: the command may have replaced it since
        self.total, self.stream, self.width = total, stream or sys.stderr, width
        self.done, self.start, self.drawn = 0, time.perf_counter(), 0.0
        self.scale, self.full = 1.0, False  # see `expect`

    def __enter__(self) -> "Progress":
        global _active
        _active, self.start = self, time.perf_counter()
        return self

    def advance(self, seed_epochs: int) -> None:
        self.done = min(self.done + seed_epochs * self.scale, self.total)
        now = time.perf_counter()
        full = self.done >= self.total * (1 - 1e-9)  # the scale's rounding
        if now - self.drawn > 0.2 or (full and not self.full):  # at most 5 redraws a second, and the end
            self.drawn, self.full = now, full
            share = self.done / self.total
            bar = "#" * round(self.width * share) + "." * (self.width - round(self.width * share))
            rate = self.done / max(now - self.start, 1e-9)
            line = f"\r[{bar}] {share:4.0%}  {self.done:.1e} of {self.total:.1e} seed-epochs  {rate:.2e}/s"
            self.stream.write(line)
            self.stream.flush()

    def __exit__(self, *exc: object) -> None:
        global _active
        _active = None
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def end_line() -> None:
    """Ends the line the active progress drew on, so that a message can follow it."""
    if _active is not None and _active.drawn:
        _active.stream.write("\n")
        _active.stream.flush()


def wanted(setting: str | bool, stream: TextIO | None = None) -> bool:
    """`runtime.progress`: true, false, or "auto" (only when the stream, stderr by default,
    is a terminal)."""
    return (stream or sys.stderr).isatty() if setting == "auto" else bool(setting)

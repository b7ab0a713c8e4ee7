"""What every benchmark in ``bench/`` shares: the ``--quick`` flag, timing, the RESULT lines.

A benchmark is a list of *figure* functions.  Each one takes the parsed options, measures
ours against a limit or against the naive way in the same run, prints a line or two for
people, and returns a :class:`Figure`.  :func:`run` calls them in turn, then prints the
verdicts and, last, one ``RESULT <figure-name> <value> target <op> <number>`` line per figure
(DESIGN §9).  A missed target is reported, never turned into a failing exit code.

Adding a figure to a benchmark is writing one more function and listing it::

    def slots_over_parse(options: argparse.Namespace) -> Figure: ...

    if __name__ == "__main__":
        raise SystemExit(run(__doc__, [slots_over_parse, requests_per_idle_sync]))
"""

from __future__ import annotations

import argparse
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure and the target it is held to, e.g. ``value <= 0.25``."""

    name: str
    value: float
    op: str
    target: float

    def __post_init__(self) -> None:
        if self.op not in _COMPARE:
            raise ValueError(f"unknown comparison {self.op!r}; use one of {' '.join(_COMPARE)}")

    @property
    def met(self) -> bool:
        return _COMPARE[self.op](self.value, self.target)

    def verdict(self) -> str:
        outcome = "target met" if self.met else "TARGET MISSED"
        return f"{self.name} = {self.value:.4g} (target {self.op} {self.target:g}): {outcome}"

    def result_line(self) -> str:
        return f"RESULT {self.name} {self.value:.4g} target {self.op} {self.target:g}"


FigureFunction = Callable[[argparse.Namespace], Figure]


def parser(description: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes; a benchmark may add its own before :func:`run`."""
    found = argparse.ArgumentParser(description=(description or "").strip().splitlines()[0])
    found.add_argument(
        "--quick", action="store_true", help="a smaller run that finishes well under a minute"
    )
    found.add_argument(
        "--repeat", type=int, default=None, help="best of how many timed runs (default: per figure)"
    )
    return found


def best_of(repeat: int, action: Callable[[], Any]) -> float:
    """The shortest of ``repeat`` wall-clock timings of ``action()``, in seconds.

    The minimum is the run least disturbed by the rest of the machine; it is the usual
    choice (``timeit`` documents the same) when comparing two pieces of code.
    """
    best = float("inf")
    for _ in range(max(1, repeat)):
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return best


def say(text: str) -> None:
    """A line for people, flushed at once so a long run shows its progress."""
    print(text, flush=True)


def run(
    description: str | None,
    figures: Sequence[FigureFunction],
    argv: Sequence[str] | None = None,
    options_parser: argparse.ArgumentParser | None = None,
) -> int:
    """Parse the options, measure every figure, print verdicts then RESULT lines; return 0."""
    options = (options_parser or parser(description)).parse_args(argv)
    measured = [figure(options) for figure in figures]
    say("")
    for figure in measured:
        say(figure.verdict())
    for figure in measured:
        say(figure.result_line())
    return 0


if __name__ == "__main__":
    # `make bench` runs every bench/*.py, this one included.
    say("shared helpers of the benchmarks: nothing to measure here")

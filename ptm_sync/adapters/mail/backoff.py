"""How long to wait between attempts to reach a mail server again: :class:`Backoff`.

Exponential, capped and jittered ("equal jitter": half of each delay fixed, half random),
so that many clients cut off by one server restart do not all come back in the same second.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """A reconnect policy: the first attempt at once, then growing pauses.

    Args:
        first: seconds before the second attempt (the first one is immediate: a dropped
            connection is usually just an idle timeout or one server process restarting).
        cap: the longest pause, in seconds.
        factor: how much each pause grows over the one before.
        attempts: reconnect attempts before giving up; ``None``: until stopped.

    Raises:
        ValueError: for a negative or non-growing setting.
    """

    first: float = 1.0
    cap: float = 300.0
    factor: float = 2.0
    attempts: int | None = 3

    def __post_init__(self) -> None:
        if self.first < 0 or self.cap < self.first or self.factor < 1:
            raise ValueError("backoff needs 0 <= first <= cap and factor >= 1")
        if self.attempts is not None and self.attempts < 0:
            raise ValueError("backoff attempts cannot be negative")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The pause before each attempt, in seconds: 0.0, then jittered exponential ones.

        Ends after :attr:`attempts` pauses; never ends when ``attempts`` is ``None``.
        """
        draw = (rng or random).uniform
        pause = self.first
        count = 0
        while self.attempts is None or count < self.attempts:
            if count == 0:
                yield 0.0
            else:
                yield pause / 2 + draw(0.0, pause / 2)
                pause = min(self.cap, pause * self.factor)
            count += 1

"""Transient overload: how long a refused caller should wait before it tries again (gRPC's pushback), from
how long the server's places (call slots, conversion turns, model passes) have lately been held."""

from __future__ import annotations

import contextlib
import random
import statistics
import time
from collections import deque
from collections.abc import Iterator

from audiogan_server.errors import overloaded

# The pushback's bounds. Below 10 ms a retry would come back before anything could have changed. Above 5 s
# the estimate says little: one long stream among short calls holds its slot for minutes, and a caller told
# to stay away that long would often find a slot freed long before.
PUSHBACK_MIN_S = 0.01
PUSHBACK_MAX_S = 5.0
RECENT = 32  # holds remembered: the median of this many follows a change in load within a few dozen calls


class Durations:
    """How long a place is typically held: the median of the last ``RECENT`` holds (a median, so that a
    rare long stream does not move it), or ``initial_s`` before any hold has ended."""

    def __init__(self, initial_s: float) -> None:
        self.initial_s = initial_s
        self.recent: deque[float] = deque(maxlen=RECENT)

    def observe(self, seconds: float) -> None:
        self.recent.append(seconds)

    def typical(self) -> float:
        return statistics.median(self.recent) if self.recent else self.initial_s

    def pushback(self, holders: int) -> float:
        """Seconds until one of ``holders`` places, each held for a typical time and found part-way
        through it, is expected to come free: the typical hold over the number of holders (the first of n
        memoryless holds ends after 1/n of one on average). Spread at random over half to one and a half
        times that: callers refused together, told the same time, would all come back together and all
        but one be refused again."""
        seconds = self.typical() / max(1, holders) * random.uniform(0.5, 1.5)
        return min(PUSHBACK_MAX_S, max(PUSHBACK_MIN_S, seconds))


class Slots:
    """At most ``limit`` holders at once. One more is refused as a transient overload (``overloaded``) that
    says ``"{held} {what}, the limit is {limit}"`` and carries its pushback."""

    def __init__(self, limit: int, what: str, initial_s: float) -> None:
        self.limit = limit
        self.what = what
        self.held = 0
        self.durations = Durations(initial_s)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self.held >= self.limit:
            raise overloaded(f"{self.held} {self.what}, the limit is {self.limit}; retry later",
                             self.durations.pushback(self.held))
        self.held += 1
        start = time.perf_counter()
        try:
            yield
        finally:
            self.held -= 1
            self.durations.observe(time.perf_counter() - start)

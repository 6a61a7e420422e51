"""Transient overload: how long a refused caller should wait before it tries again (gRPC's pushback), from
how long the server's places (call slots, conversion turns, model passes) have lately been held."""

from __future__ import annotations

import contextlib
import random
import time
from collections import deque
from collections.abc import Iterator

from audiogan_server.errors import overloaded

# The pushback's bounds. Below 10 ms a retry would come back before anything could have changed. Above 5 s
# the estimate says little: one long stream among short calls holds its slot for minutes, and a caller told
# to stay away that long would often find a slot freed long before.
PUSHBACK_MIN_S = 0.01
PUSHBACK_MAX_S = 5.0
RECENT = 32  # holds remembered: an estimate from this many follows a change in load within a few dozen calls


class Durations:
    """How long a place (a call slot, a conversion turn, a model pass) is held, from the last ``RECENT``
    holds, or ``initial_s`` as if it were the one hold seen before any has ended."""

    def __init__(self, initial_s: float) -> None:
        self.initial_s = initial_s
        self.recent: deque[float] = deque(maxlen=RECENT)

    def observe(self, seconds: float) -> None:
        self.recent.append(seconds)

    def remaining(self, age: float) -> float:
        """The time still to come of a hold that has lasted ``age``. Guesses: what each recent hold that
        lasted longer had left at that age (short and long calls mix, and a call already past the short
        ones' length is one of the long ones), and the hold's own age (as long again as it has run), so
        that one long outlier alone does not set it. Their lower quartile, as a caller who comes back early
        costs the server a refusal (about a millisecond) while one told to come back late waits for nothing."""
        guesses = sorted([held - age for held in self.recent or [self.initial_s] if held > age]
                         + ([age] if age > 0 else []))
        return guesses[len(guesses) // 4]

    def pushback(self, ages: list[float]) -> float:
        """Seconds until the first of the current holds, aged ``ages``, is expected to end (with none under
        way, a typical hold's length), spread at random over one to one and a half times that: callers
        refused together, told the same time, would all come back together and all but one be refused
        again, and one that came back before a place is expected to be free would only be refused again."""
        return spread(min(self.remaining(age) for age in ages) if ages else self.remaining(0.0))


def spread(seconds: float) -> float:
    """A pushback from an estimate of ``seconds``: within the bounds, and spread at random over one to one
    and a half times it (see ``Durations.pushback``)."""
    return min(PUSHBACK_MAX_S, max(PUSHBACK_MIN_S, seconds * random.uniform(1.0, 1.5)))


class Slots:
    """At most ``limit`` holders at once. One more is refused as a transient overload (``overloaded``) that
    says ``"{held} {what}, the limit is {limit}"`` and carries its pushback."""

    def __init__(self, limit: int, what: str, initial_s: float) -> None:
        self.limit = limit
        self.what = what
        self.started: list[float] = []  # when each current holder took its place
        self.durations = Durations(initial_s)

    @property
    def held(self) -> int:
        return len(self.started)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        now = time.perf_counter()
        if self.held >= self.limit:
            raise overloaded(f"{self.held} {self.what}, the limit is {self.limit}; retry later",
                             self.durations.pushback([now - start for start in self.started]))
        self.started.append(now)
        try:
            yield
        finally:
            self.started.remove(now)
            self.durations.observe(time.perf_counter() - now)

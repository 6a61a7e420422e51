"""While the models load: how long until the server is ready, the pushback on the UNAVAILABLE it answers
meanwhile, from how fast the load has gone so far."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from audiogan_server.overload import spread

# Seconds per MB of weights before any step has ended: the bundled models loaded at 0.11-0.24 s/MB on 2 CPU
# cores (2026-12-07). A first guess only; the steps' own times replace it as soon as one has ended.
INITIAL_S_PER_MB = 0.2


class LoadProgress:
    """A load made of steps (reading a model's weights, a warm-up pass), each sized in bytes, run one after
    another. What is left is estimated at the rate the finished steps went (seconds per byte), and the
    step under way, once past its estimate, is expected to run over it as long again as it has so far:
    "as long again as it has run" jumped from nothing left to seconds as a step passed its estimate, and
    callers told so came back seconds after the load had ended.

    The load runs on the model thread while the event loop reads the estimate: each update is one
    assignment, and a read between two of them is off by at most one step, for a guess."""

    def __init__(self) -> None:
        self.total = 0             # bytes of every step planned
        self.done = (0, 0.0)       # bytes and seconds of the steps ended
        self.current: tuple[int, float] | None = None  # the step under way: its size, when it began

    def plan(self, total: int) -> None:
        self.total = total

    @contextlib.contextmanager
    def step(self, size: int) -> Iterator[None]:
        began = time.perf_counter()
        self.current = (size, began)
        try:
            yield
        finally:
            self.done = (self.done[0] + size, self.done[1] + time.perf_counter() - began)
            self.current = None

    def remaining(self) -> float:
        """Seconds until the last step ends."""
        done_bytes, done_seconds = self.done
        rate = done_seconds / done_bytes if done_bytes else INITIAL_S_PER_MB / 1e6
        size, age = 0, 0.0
        if self.current is not None:
            size, age = self.current[0], time.perf_counter() - self.current[1]
        expected = rate * size
        current = abs(expected - age)
        return current + rate * max(0, self.total - done_bytes - size)

    def pushback(self) -> float:
        return spread(self.remaining())

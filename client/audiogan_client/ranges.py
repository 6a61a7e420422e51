"""The numbers a request may carry, checked before any call, for the library and the CLI alike.

On the wire 0 means "unset" for speed, velocity and seconds: ``synthesize(text, speed=0)`` was once said at
speed 1 and ``velocity=0`` played at 100, and protobuf refused a seed of -1 as "Value out of range: -1",
naming no argument. The ranges are the proto's comments and the server's limits.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class Range(NamedTuple):
    least: float
    most: float = math.inf
    whole: bool = False
    above: bool = False  # least itself is out: a number > least
    span: str = ""  # how the bounds are written where the figures would not say it plainly (2**64-1)
    zero: str = ""  # 0 is taken too, meaning this (the model's own rate): what the default sends

    def __str__(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        if self.above:
            text = f"{kind} > {self.least:g}" + (f", at most {self.most:g}" if self.most < math.inf else "")
        else:
            text = f"{kind} in {self.span or f'{self.least:g}..{self.most:g}'}"
        return f"0 ({self.zero}) or {text}" if self.zero else text

    def holds(self, value: object) -> bool:
        numeric = (int, np.integer) if self.whole else (int, float, np.integer, np.floating)
        if isinstance(value, bool) or not isinstance(value, numeric):
            return False
        if self.zero and value == 0:
            return True
        if isinstance(value, (float, np.floating)) and not math.isfinite(value):  # `--seconds inf` was sent
            return False
        return (self.least < value if self.above else self.least <= value) and value <= self.most

    def check(self, name: str, value: object) -> None:
        """ValueError naming the argument ``name`` unless ``value`` is in range."""
        if not self.holds(value):
            raise ValueError(f"{name} {value!r} is not {self}")


# The same range and words as the audiogan library's seeds (audiogan.timbre.choices.SEED_RANGE).
SEEDS = Range(0, 2**64 - 1, whole=True, span="0..2**64-1")
SPEED = Range(0.25, 4.0)
PITCH_SHIFT = Range(-12.0, 12.0)
PITCH = Range(0, 127, whole=True)
VELOCITY = Range(1, 127, whole=True)
SECONDS = Range(0.0, above=True)  # a note's length; the server says how long its model's notes may be
ALPHA = Range(0.0, 1.0)
SAMPLE_RATE = Range(8000, 96000, whole=True, zero="the model's rate")
# The proto's int32: -1 went to the server, and 2**40 failed in protobuf as "Value out of range", unnamed.
SPEAKER = Range(0, 2**31 - 1, whole=True, span="0..2**31-1")
# gRPC fails a call at once as DEADLINE_EXCEEDED for a deadline past its clock's range (1e10 s did here).
TIMEOUT = Range(0.0, 1e9, above=True)
RANGES = {"seed": SEEDS, "speed": SPEED, "pitch_shift": PITCH_SHIFT, "pitch": PITCH, "velocity": VELOCITY,
          "seconds": SECONDS, "alpha": ALPHA, "sample_rate": SAMPLE_RATE, "speaker": SPEAKER}


def check(**values: object) -> None:
    """Each argument, by its name, within its range; None is the server's default and goes as the wire's 0."""
    for name, value in values.items():
        if value is not None:
            RANGES[name].check(name, value)

"""What the timbre model takes, apart from the model: command lines and manifests check these without
importing torch."""

from __future__ import annotations

from audiogan.config import is_int

MODES = ("slerp", "lerp")  # ways of mixing two timbres: spherical or straight-line interpolation
# Every seed, everywhere (library, `audiogan --seed`, render manifests, audiogan-client): what the wire's uint64
# holds. Each seed draws noise of its own (seed_noise).
SEED_MAX = 2**64 - 1
SEED_RANGE = "a whole number in 0..2**64-1"


def seed_problem(seed: object) -> str | None:
    """Why ``seed`` is not a seed, or None: 1.5 once ran as 1, so two different seeds gave the same note."""
    if is_int(seed) and 0 <= seed <= SEED_MAX:  # type: ignore[operator]
        return None
    return f"{seed!r} is not {SEED_RANGE}"

"""pYIN f0 tracking (Mauch & Dixon, "pYIN: a fundamental frequency estimator using probabilistic threshold
distributions", ICASSP 2014): librosa.pyin's model, decoded a piece of the recording at a time with a
banded Viterbi. Conversion's analysis and the trainers' pitch targets use it.

The model is librosa.pyin's, with its defaults: each frame's pitch candidates are the troughs of YIN's
cumulative mean normalised difference (de Cheveigné & Kawahara 2002), weighted by a Beta(2, 18) prior over
100 thresholds and a Boltzmann prior (parameter 2) over the troughs below each, with 1 % of a threshold's
mass on the deepest trough when none is below it. The hidden Markov model has a voiced and an unvoiced
copy of every pitch bin; within a copy the pitch moves at most 35.92 octaves per second (a triangular
window), and it changes copy with probability 0.01.

librosa decodes that model with a dense Viterbi over all states (740 at conversion's settings): 63 % of a
conversion's analysis time. Outside the window a transition has probability zero, so here each state
looks only at the states it can come from (72 of 740): the same decoding, except where the dense decoder
takes a transition of probability ~1e-308 (its log floor), a jump the model rules out. Frames are
observed and decoded a piece at a time, so a caller can report progress or stop between pieces; only
the way back through the pointers waits for the last piece. It needs numpy, scipy and numba, not
librosa: the GPU machine, which has no librosa, can run it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

N_THRESHOLDS = 100
BETA = (2.0, 18.0)
BOLTZMANN = 2.0
MAX_TRANSITION_RATE = 35.92  # octaves per second
SWITCH_PROBABILITY = 0.01
NO_TROUGH_PROBABILITY = 0.01
TINY = np.finfo(np.float64).tiny  # the log floor: log(0) is never taken
PIECE_FRAMES = 512  # 8 s of 16 kHz audio at hop 256: ~0.05 s of work on one CPU core (benchmarks/RESULTS.md)


class PitchTracker:
    """pYIN over one recording. ``step()`` observes and decodes the next piece of frames; ``result()``
    (once ``step()`` has returned True) gives f0 in Hz (NaN where unvoiced), the voicing flags and each
    frame's voicing probability, as ``librosa.pyin`` returns them (``center``: frames centred on t * hop,
    the recording zero-padded by half a frame at each end; else frame t starts at t * hop)."""

    def __init__(self, wave: np.ndarray, rate: int, fmin: float, fmax: float, frame_length: int = 2048,
                 hop: int = 512, resolution: float = 0.1, center: bool = True, piece: int = PIECE_FRAMES) -> None:
        self.framing = _Framing(wave, rate, fmin, fmax, frame_length, hop, center)
        self.rate, self.fmin, self.piece = rate, fmin, piece
        self.per_semitone = int(np.ceil(1 / resolution))
        self.bins = int(np.floor(12 * self.per_semitone * np.log2(fmax / fmin))) + 1
        self.frames = self.framing.frames
        width = round(MAX_TRANSITION_RATE * 12 * hop / rate) * self.per_semitone + 1
        self.lows, self.band = _band(self.bins, width)
        self.value = np.full(2 * self.bins, np.log(1 / (2 * self.bins) + TINY))
        self.pointers = np.zeros((self.frames, 2 * self.bins), dtype=np.uint16)
        self.probability = np.zeros(self.frames)
        self.done = 0

    @property
    def share(self) -> float:
        """The share of the frames tracked so far."""
        return self.done / self.frames

    def step(self) -> bool:
        """Track the next piece of frames; True once all are tracked."""
        start, end = self.done, min(self.done + self.piece, self.frames)
        if start < end:
            cmnd, shifts = self.framing.difference(start, end)
            observed, self.probability[start:end] = _kernels()[0](
                cmnd, _troughs(cmnd), shifts, self.rate, self.framing.min_period, self.fmin, self.bins,
                self.per_semitone, _thresholds(), _beta_weights(), BOLTZMANN, NO_TROUGH_PROBABILITY)
            log_observed = np.log(observed + TINY)
            if start == 0:  # the first frame has no predecessor: the uniform prior instead
                self.value = self.value + log_observed[0]
                log_observed, first = log_observed[1:], 1
            else:
                first = 0
            self.value = _kernels()[1](log_observed, self.value, self.lows, self.band,
                                       self.pointers[start + first:end])
            self.done = end
        return self.done == self.frames

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.done < self.frames:
            raise RuntimeError(f"{self.frames - self.done} frames are not tracked yet: step() until it returns True")
        states = np.empty(self.frames, dtype=np.int64)
        states[-1] = int(np.argmax(self.value))
        for t in range(self.frames - 1, 0, -1):
            states[t - 1] = self.pointers[t, states[t]]
        freqs = self.fmin * 2 ** (np.arange(self.bins) / (12 * self.per_semitone))
        voiced = states < self.bins
        f0 = np.where(voiced, freqs[states % self.bins], np.nan)
        return f0, voiced, self.probability.copy()


class _Framing:
    """A recording cut into frames for YIN: its cumulative mean normalised difference, frames at a time."""

    def __init__(self, wave: np.ndarray, rate: int, fmin: float, fmax: float, frame_length: int, hop: int,
                 center: bool) -> None:
        if not 0 < fmin < fmax <= rate / 2:
            raise ValueError(f"need 0 < fmin < fmax <= {rate / 2} Hz, got fmin={fmin}, fmax={fmax}")
        if rate / fmin >= frame_length - 1:
            raise ValueError(f"a {frame_length}-sample frame holds no period of fmin={fmin} Hz")
        self.length, self.hop = frame_length, hop
        self.min_period = int(np.floor(rate / fmax))
        self.max_period = min(int(np.ceil(rate / fmin)), frame_length - 1)
        wave = np.asarray(wave, np.float32)  # float32, as librosa
        self.padded = np.pad(wave, frame_length // 2) if center else wave
        if len(self.padded) < frame_length:
            raise ValueError(f"{len(wave)} samples hold no {frame_length}-sample frame (pad, or center=True)")
        self.frames = 1 + (len(self.padded) - frame_length) // hop

    def difference(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames [start, end) -> YIN's cumulative mean normalised difference over periods
        min_period..max_period [frames, periods] and each period's parabolic refinement (in periods)."""
        import scipy.fft

        length, hop = self.length, self.hop
        span = self.padded[start * hop:(end - 1) * hop + length]
        frames = np.lib.stride_tricks.sliding_window_view(span, length)[::hop]
        size = scipy.fft.next_fast_len(2 * length - 1, real=True)
        spectrum = scipy.fft.rfft(frames, n=size, axis=1)
        acf = scipy.fft.irfft(spectrum.real ** 2 + spectrum.imag ** 2, n=size, axis=1)[:, :self.max_period + 1]
        energy = np.cumsum(frames ** 2, axis=1)
        energy[:, 0] = 0
        # The difference function as librosa.yin takes it: 2 (r(0) - r(k)) less the energy of the first k
        # samples (the frame's tail, which the lag moves out of the window, is not subtracted), and nothing
        # at lag 1, where librosa zeroes the first sample's energy.
        diff = np.zeros_like(acf)
        diff[:, 1:] = 2 * (acf[:, :1] - acf[:, 1:]) - energy[:, :self.max_period]
        mean = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, self.max_period + 1)
        denominator = mean[:, self.min_period - 1:self.max_period]
        cmnd = diff[:, self.min_period:] / (denominator + np.finfo(denominator.dtype).tiny)
        return np.ascontiguousarray(cmnd, dtype=np.float64), _parabolic_shifts(cmnd)


def yin(wave: np.ndarray, rate: int, fmin: float, fmax: float, frame_length: int = 2048, hop: int = 512,
        threshold: float = 0.1, center: bool = True) -> np.ndarray:
    """YIN's f0 (Hz) per frame, as ``librosa.yin`` gives it: the shortest period whose normalised
    difference is a trough below ``threshold``, else the deepest, refined by a parabola. Frames as in
    ``PitchTracker``."""
    framing = _Framing(wave, rate, fmin, fmax, frame_length, hop, center)
    cmnd, shifts = framing.difference(0, framing.frames)
    deep = _troughs(cmnd) & (cmnd < threshold)
    period = np.where(deep.any(axis=1), deep.argmax(axis=1), cmnd.argmin(axis=1))
    return rate / (framing.min_period + period + shifts[np.arange(len(period)), period])


def pyin(wave: np.ndarray, rate: int, fmin: float, fmax: float, frame_length: int = 2048, hop: int = 512,
         resolution: float = 0.1, center: bool = True, progress: Callable[[float], None] | None = None
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """f0 (Hz, NaN where unvoiced), voicing flags and voicing probabilities of ``wave``, a frame per
    ``hop`` samples (see ``PitchTracker``). ``progress``: called with the share tracked after each piece."""
    tracker = PitchTracker(wave, rate, fmin, fmax, frame_length, hop, resolution, center)
    while not tracker.step():
        if progress is not None:
            progress(tracker.share)
    return tracker.result()


def _troughs(cmnd: np.ndarray) -> np.ndarray:
    """Each frame's local minima over the periods (below the left neighbour, not above the right one; at
    the ends, below the one neighbour): YIN's and pYIN's period candidates, as librosa marks them."""
    troughs = np.zeros(cmnd.shape, dtype=bool)
    troughs[:, 0] = cmnd[:, 0] < cmnd[:, 1]
    troughs[:, 1:-1] = (cmnd[:, 1:-1] < cmnd[:, :-2]) & (cmnd[:, 1:-1] <= cmnd[:, 2:])
    troughs[:, -1] = cmnd[:, -1] < cmnd[:, -2]
    return troughs


def _parabolic_shifts(cmnd: np.ndarray) -> np.ndarray:
    """Where a parabola through each point and its two neighbours has its vertex, relative to the point
    (0 at the ends and where the vertex is more than one period away)."""
    shifts = np.zeros(cmnd.shape, dtype=np.float64)
    left, mid, right = cmnd[:, :-2], cmnd[:, 1:-1], cmnd[:, 2:]
    # Sums of neighbours in the input's precision, the rest in float64, the shift kept in the input's
    # precision: librosa's rounding, step for step, so that both give the same periods.
    curvature = (right + left).astype(np.float64) - 2 * mid.astype(np.float64)
    slope = (right - left).astype(np.float64) / 2
    inside = np.abs(slope) < np.abs(curvature)
    shifts[:, 1:-1] = np.where(inside, -slope / np.where(inside, curvature, 1), 0).astype(cmnd.dtype)
    return shifts


@cache
def _thresholds() -> np.ndarray:
    return np.linspace(0, 1, N_THRESHOLDS + 1)[1:]


@cache
def _beta_weights() -> np.ndarray:
    """The prior mass of each threshold interval."""
    import scipy.stats

    return np.diff(scipy.stats.beta.cdf(np.linspace(0, 1, N_THRESHOLDS + 1), *BETA))


def _local(bins: int, width: int) -> np.ndarray:
    """P(bin j | bin i) within a copy: a symmetric triangular window of ``width`` bins placed at bin i as
    librosa's ``transition_local(bins, width, window="triangle", wrap=False)`` places it (an even window
    reaches one bin further up than down), cut at the ends of the range, each row summing to 1."""
    import scipy.signal

    window = scipy.signal.windows.triang(width, sym=True)
    start = (bins - width) // 2 + bins // 2 + 1  # where the window's first value lands for bin 0, mod bins
    local = np.zeros((bins, bins))
    for i in range(bins):
        columns = (start + i + np.arange(width)) % bins
        keep = (columns >= i - width // 2) & (columns <= i + width // 2)
        local[i, columns[keep]] = window[keep]
    return local / local.sum(axis=1, keepdims=True)


@cache
def _band(bins: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's log transition probabilities into each state from the states that can reach it.

    Returns ``lows`` [bins]: the lowest pitch bin that reaches bin j, and ``band`` [2 bins, 2, span]:
    log P(state J <- copy c's bin lows[J % bins] + k), -inf past the window. They are librosa's numbers
    (the window times the voicing switch, with its log floor), so that the two decoders compare the same
    scores.
    """
    local = _local(bins, width)
    stay = 1 - SWITCH_PROBABILITY
    switch = np.array([[stay, 1 - stay], [1 - stay, stay]])  # 1 - stay, as librosa rounds it: 0.010000000000000009
    log_transition = np.log(np.kron(switch, local) + TINY)
    reach = local > 0  # reach[i, j]: bin i can move to bin j
    lows = reach.argmax(axis=0)
    highs = bins - 1 - reach[::-1].argmax(axis=0)
    span = int((highs - lows).max()) + 1
    band = np.full((2 * bins, 2, span), -np.inf)
    for target in range(2 * bins):
        j = target % bins
        for copy in range(2):
            sources = copy * bins + np.arange(lows[j], highs[j] + 1)
            band[target, copy, :len(sources)] = log_transition[sources, target]
    return lows.astype(np.int64), band


@cache
def _kernels() -> tuple[Callable[..., tuple[np.ndarray, np.ndarray]], Callable[..., np.ndarray]]:
    """The per-frame loops compiled on first use (numba's import and compile stay off ``import audiogan``)."""
    import numba

    compile_ = numba.njit(cache=True, nogil=True)
    return compile_(_observe), compile_(_forward)


def _observe(cmnd: np.ndarray, is_trough: np.ndarray, shifts: np.ndarray, rate: int, min_period: int, fmin: float,
             bins: int, per_semitone: int, thresholds: np.ndarray, weights: np.ndarray, boltzmann: float,
             no_trough: float) -> tuple[np.ndarray, np.ndarray]:
    """Frames' normalised differences and their troughs -> P(observation | state) [frames, 2 bins] and
    voicing probability."""
    frames, periods = cmnd.shape
    observed = np.zeros((frames, 2 * bins))
    voicing = np.zeros(frames)
    troughs = np.empty(periods, dtype=np.int64)
    probs = np.empty(periods)
    decay = 1.0 - np.exp(-boltzmann)
    for t in range(frames):
        y = cmnd[t]
        count = 0
        for m in range(periods):
            if is_trough[t, m]:
                troughs[count] = m
                count += 1
        if count == 0:
            observed[t, bins:] = 1.0 / bins
            continue
        deepest = 0
        for k in range(count):
            probs[k] = 0.0
            if y[troughs[k]] < y[troughs[deepest]]:
                deepest = k
        # Each threshold's mass goes to the troughs below it, the earlier (shorter period) the more;
        # a threshold with no trough below it gives a little of its mass to the deepest trough.
        unclaimed = 0.0
        for h in range(len(thresholds)):
            below = 0
            for k in range(count):
                below += y[troughs[k]] < thresholds[h]
            if below == 0:
                unclaimed += weights[h]
                continue
            norm = decay / (1.0 - np.exp(-boltzmann * below))
            position = 0
            for k in range(count):
                if y[troughs[k]] < thresholds[h]:
                    probs[k] += norm * np.exp(-boltzmann * position) * weights[h]
                    position += 1
        probs[deepest] += no_trough * unclaimed
        # Later candidates overwrite earlier ones in a shared bin, as in librosa, whose voicing
        # probabilities the conversion's polyphony threshold was measured on.
        for k in range(count):
            if probs[k] > 0:
                period = min_period + troughs[k] + shifts[t, troughs[k]]
                # A candidate just below fmin (the longest period, refined) counts as the lowest bin.
                index = max(0, int(np.round(12 * per_semitone * np.log2(rate / period / fmin))))
                if index < bins:
                    observed[t, index] = probs[k]
        voiced = min(1.0, max(0.0, observed[t, :bins].sum()))
        voicing[t] = voiced
        observed[t, bins:] = (1.0 - voiced) / bins
    return observed, voicing


def _forward(log_observed: np.ndarray, value: np.ndarray, lows: np.ndarray, band: np.ndarray,
             pointers: np.ndarray) -> np.ndarray:
    """Viterbi's forward pass over ``log_observed`` [frames, states] from ``value`` (the log probability of
    the best path into each state at the frame before); writes each state's best predecessor into
    ``pointers`` and returns the values at the last frame. Ties go to the lowest state, as a dense argmax."""
    frames, states = log_observed.shape
    bins = states // 2
    span = band.shape[2]
    current = np.empty(states)
    for t in range(frames):
        for target in range(states):
            low = lows[target % bins]
            best, arg = -np.inf, 0
            for copy in range(2):
                for k in range(span):
                    source = copy * bins + low + k
                    if source >= (copy + 1) * bins:
                        break
                    score = value[source] + band[target, copy, k]
                    if score > best:
                        best, arg = score, source
            current[target] = best + log_observed[t, target]
            pointers[t, target] = arg
        value, current = current, value
    return value.copy()

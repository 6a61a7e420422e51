"""Phase from a magnitude alone: phase-gradient heap integration (PGHI; Průša, Balazs & Søndergaard,
"A noniterative method for reconstruction of phase from STFT magnitude", IEEE/ACM TASLP 2017) in its
frame-by-frame form (RTPGHI; Průša & Søndergaard, "Real-time spectrogram inversion using phase gradient
heap integration", DAFx 2016).

For a Gaussian window the phase's derivatives follow from the log-magnitude's: along time from its
slope across frequency, along frequency from its slope across time. Integrating them frame by frame,
strongest bins first (so that each partial's phase spreads outward from its peak), gives a phase that
needs no training and no iteration. From the bundled vocoder's own magnitude it scores higher PESQ-wb
and STOI than the network's phase head, with a more smeared spectrum (benchmarks/RESULTS.md, 2026-12-05).

Each frame needs only the previous frame's phase and the next frame's magnitude, so a stream keeps a
:class:`PhaseTrack` and gets the whole utterance's phase (up to float rounding of the magnitudes).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from functools import cache

import numpy as np

# The Gaussian whose time-frequency spread matches a Hann window of length L has lambda = 0.25645 L^2
# (Průša et al. 2017).
HANN_GAMMA = 0.25645
# Bins more than this far below the strongest of their two frames (natural log, 100 dB) do not seed the
# integration; they take the time-integrated phase, which is as good as any for what cannot be heard.
TOLERANCE = math.log(1e5)


@cache
def _compiled() -> Callable[..., np.ndarray]:
    """The integration loop compiled on first use (numba's import and compile stay off ``import audiogan``)."""
    import numba

    return numba.njit(cache=True, nogil=True)(_integrate)


def _integrate(slog: np.ndarray, tgrad: np.ndarray, fgrad: np.ndarray, previous: np.ndarray,
               first: int, tol: float) -> np.ndarray:
    """Phases of frames [first, T) of ``slog`` [bins, T]; frame first - 1 has phase ``previous``
    (ignored when first == 0: the first frame starts from zero at its strongest bin)."""
    bins, frames = slog.shape
    out = np.zeros((bins, frames - first))
    last = previous.copy()
    for n in range(first, frames):
        phase = np.zeros(bins)
        done = np.zeros(bins, dtype=np.bool_)
        floor = slog[:, n].max()
        if n > 0:
            floor = max(floor, slog[:, n - 1].max())
        floor -= tol
        heap = [(0.0, 0, 0)]
        heap.pop()
        todo = 0
        for m in range(bins):
            if n > 0 and slog[m, n - 1] >= floor:
                heap.append((-slog[m, n - 1], m, 0))
            if slog[m, n] >= floor:
                todo += 1
            else:
                done[m] = True
                phase[m] = last[m] + 0.5 * (tgrad[m, n - 1] + tgrad[m, n]) if n > 0 else 0.0
        heapq.heapify(heap)
        while todo > 0:
            if len(heap) == 0:  # a new partial with nothing before it in time: start it from its peak
                best = -1
                for m in range(bins):
                    if not done[m] and (best < 0 or slog[m, n] > slog[best, n]):
                        best = m
                phase[best] = last[best] + 0.5 * (tgrad[best, n - 1] + tgrad[best, n]) if n > 0 else 0.0
                done[best] = True
                todo -= 1
                heapq.heappush(heap, (-slog[best, n], best, 1))
                continue
            _, m, current = heapq.heappop(heap)
            if current == 0:
                if not done[m]:
                    phase[m] = last[m] + 0.5 * (tgrad[m, n - 1] + tgrad[m, n])
                    done[m] = True
                    todo -= 1
                    heapq.heappush(heap, (-slog[m, n], m, 1))
                continue
            if m + 1 < bins and not done[m + 1]:
                phase[m + 1] = phase[m] + 0.5 * (fgrad[m, n] + fgrad[m + 1, n])
                done[m + 1] = True
                todo -= 1
                heapq.heappush(heap, (-slog[m + 1, n], m + 1, 1))
            if m > 0 and not done[m - 1]:
                phase[m - 1] = phase[m] - 0.5 * (fgrad[m, n] + fgrad[m - 1, n])
                done[m - 1] = True
                todo -= 1
                heapq.heappush(heap, (-slog[m - 1, n], m - 1, 1))
        # Wrapped as it goes, so long utterances keep float precision.
        last = np.remainder(phase + np.pi, 2 * np.pi) - np.pi
        out[:, n - first] = last
    return out


def gradients(log_mag: np.ndarray, n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """The phase's derivatives per frame (``tgrad``) and per bin (``fgrad``) from a natural-log
    magnitude [bins, T], with each frame's phase referred to its window's centre."""
    gamma = HANN_GAMMA * n_fft * n_fft
    bins = log_mag.shape[0]
    slope_f = np.gradient(log_mag, axis=0) if bins > 1 else np.zeros_like(log_mag)
    slope_t = np.gradient(log_mag, axis=1) if log_mag.shape[1] > 1 else np.zeros_like(log_mag)
    tgrad = hop * n_fft / gamma * slope_f + 2 * np.pi * hop * np.arange(bins)[:, None] / n_fft
    fgrad = -gamma / (hop * n_fft) * slope_t
    return tgrad, fgrad


class PhaseTrack:
    """The phase of one utterance's frames, integrated in order and kept between calls.

    :meth:`extend` takes the log-magnitude of a window of frames (any window that starts at or before the
    first frame not yet integrated) and returns the phase of every frame in it; frames up to ``keep``
    are stored, so a later window continues from them. A window's last frame is integrated with a
    one-sided slope, which is exact only at the utterance's real end: store no further than the
    second-to-last frame of a window that stops short of it. Windows move forward, so what lies before
    the latest window's start is dropped: a stream of any length holds only about a window of phase.
    """

    def __init__(self, n_fft: int, hop: int) -> None:
        self.n_fft, self.hop = n_fft, hop
        self.bins = n_fft // 2 + 1
        self.start = 0  # the frame that the first stored column holds
        # From the integration's reference (each window's centre) to torch.stft's (its first sample):
        # n_fft / 2 samples later is pi per bin.
        self.shift = np.pi * np.arange(self.bins)
        self.phase = np.zeros((self.bins, 0))

    @property
    def frames(self) -> int:
        """Frames integrated so far (stored or already dropped)."""
        return self.start + self.phase.shape[1]

    def extend(self, log_mag: np.ndarray, first_frame: int, keep: int) -> np.ndarray:
        """``log_mag`` [bins, T] for frames [first_frame, first_frame + T) -> their phase [bins, T]
        (torch.stft's convention: each frame's origin at its first sample)."""
        bins, width = log_mag.shape
        if bins != self.bins:
            raise ValueError(f"log-magnitude has {bins} bins, the track expects {self.bins}")
        if first_frame > 0 and not first_frame < self.frames:
            # The frame before the first new one must be in the window: its magnitude sets the step.
            raise ValueError(f"a window starting at frame {first_frame} must overlap the {self.frames} "
                             "frames integrated so far")
        if first_frame < self.start:
            raise ValueError(f"a window starting at frame {first_frame} goes back before frame {self.start}, "
                             "where an earlier window started")
        slog = np.ascontiguousarray(log_mag, dtype=np.float64)
        tgrad, fgrad = gradients(slog, self.n_fft, self.hop)
        known = min(self.frames - first_frame, width)
        stored = self.phase[:, first_frame - self.start: first_frame - self.start + known]
        previous = stored[:, -1] - self.shift if known else np.zeros(bins)
        fresh = _compiled()(slog, tgrad, fgrad, np.ascontiguousarray(previous), known, TOLERANCE)
        phase = np.concatenate([stored, fresh + self.shift[:, None]], axis=1)
        keep = min(keep, first_frame + width)
        if keep > self.frames:
            self.phase = np.concatenate([self.phase, phase[:, self.frames - first_frame: keep - first_frame]], axis=1)
        self.phase = self.phase[:, first_frame - self.start:]
        self.start = first_frame
        return phase

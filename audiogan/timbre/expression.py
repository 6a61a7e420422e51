"""Expression on generated notes: vibrato, bends, glides, intonation and dynamics within a note.

The note model plays steady notes on the semitone grid at one level, while a performance's pitch and
loudness move. Each rendered note is therefore read at a time-varying speed, 2**(cents / 1200), which
moves its pitch by ``cents`` at every instant while its waveform stays continuous (shifts of a few
semitones at most leave the timbre's formants almost where they were), and then made quieter wherever
the performance is quieter than the note's own envelope.

Contours hold one value per ``BEND_HOP`` samples at the rendering rate, from the note's onset: cents for
pitch, frame RMS (``LEVEL_WINDOW`` samples, centred) for loudness. ``harmonic_comb`` is the clean-up every
generated note gets before any of this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torchaudio

BEND_HOP = 256
LEVEL_WINDOW = 512
# Linear interpolation on an 8x band-limited copy. Measured on a sine bent by +100 cents at 16 kHz: the
# largest spur is -72 dB at 2 kHz and -45 dB at 6 kHz; plain linear interpolation gives -8 dB at 6 kHz.
OVERSAMPLE = 8
MAX_CENTS = 1200.0


@dataclass
class CombConfig:
    """How ``harmonic_comb`` cleans one instrument's notes (a model card's ``combs``, by instrument name).

    ``depth``: how far the half-harmonics are cut, 1 to silence, 0 not at all. ``sharpness``: the comb's
    gain is |cos(pi f / f0)| to this power, so above 1 its lobes narrow onto the harmonics and cut what lies
    between them too. ``below``: what is kept under f0 / 2, where the plain comb rises back to 1 at 0 Hz (1
    all of it, 0 nothing). ``partials``: tones the instrument has off its harmonics, each (frequency / f0,
    level in dB relative to the fundamental), made from the note's own fundamental after the cut."""

    depth: float = 1.0
    sharpness: float = 1.0
    below: float = 1.0
    partials: list[tuple[float, float]] = field(default_factory=list)

    SCALARS = ("depth", "sharpness", "below")  # the settings harmonic_comb takes one value of per note

    def __post_init__(self) -> None:
        for name in ("depth", "below"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"comb {name} {getattr(self, name)} is out of range 0..1")
        if not 1.0 <= self.sharpness <= 64.0:  # at 64 the lobes at MIDI 24 are already +-1 Hz wide at -3 dB
            raise ValueError(f"comb sharpness {self.sharpness} is out of range 1..64")
        for ratio, db in self.partials:
            if not (ratio > 0.0 and math.isfinite(ratio) and math.isfinite(db)):
                raise ValueError(f"comb partial ({ratio}, {db}): needs a frequency / f0 above 0 and a finite dB")


def apply_bend(note: np.ndarray, cents: np.ndarray | None, hop: int = BEND_HOP,
               length: int | None = None) -> np.ndarray:
    """The first ``length`` samples (default: all) of ``note`` with its pitch moved by ``cents`` over time;
    silence where a note bent upwards runs out of samples. Contour values are interpolated linearly
    between their frames and held after the last."""
    n = len(note) if length is None else min(length, len(note))
    if cents is None or not np.any(cents):
        return note[:n]
    cents = np.asarray(cents, dtype=np.float64)
    if cents.ndim != 1 or not np.isfinite(cents).all():
        raise ValueError("a pitch contour is a 1-D array of finite cents")
    cents = np.clip(cents, -MAX_CENTS, MAX_CENTS)
    speed = 2.0 ** (np.interp(np.arange(n), np.arange(len(cents)) * hop, cents) / 1200)
    position = np.concatenate([[0.0], np.cumsum(speed[:-1])])
    read = min(len(note), int(position[-1]) + 16)  # only the part of the note this reads, plus filter room
    up = torchaudio.functional.resample(torch.as_tensor(note[:read], dtype=torch.float32), 1, OVERSAMPLE)
    return np.interp(position * OVERSAMPLE, np.arange(len(up)), up.numpy(), right=0.0).astype(np.float32)


def frame_rms(wave: np.ndarray, hop: int = BEND_HOP, window: int = LEVEL_WINDOW) -> np.ndarray:
    """RMS of ``window``-sample frames centred every ``hop`` samples (zero-padded at the ends)."""
    padded = np.pad(np.asarray(wave, dtype=np.float64), window // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, window)[::hop][: 1 + len(wave) // hop]
    return np.sqrt(np.mean(frames**2, axis=1))


def sound_onset(wave: np.ndarray, floor_db: float = -35.0) -> int:
    """The sample where a recording's sound begins: the start of the first frame within ``floor_db`` of its
    loudest (conversion's test for a loud frame); 0 for silence."""
    rms = frame_rms(wave)
    loud = np.flatnonzero(rms > float(rms.max(initial=0.0)) * 10 ** (floor_db / 20))
    return max(0, int(loud[0]) * BEND_HOP - LEVEL_WINDOW // 2) if len(loud) else 0


def sustain_start(note: np.ndarray, rate: int, within: float = 0.3) -> int:
    """Where a note's attack is over: the start of its first frame within 3 dB of its loudest in its first
    ``within`` seconds. A legato note is read from there, entering without its instrument's attack (a bow's
    or breath's onset, a swell from silence); a struck note peaks at once and loses nothing."""
    head = frame_rms(note[: int(within * rate)])
    if not len(head) or head.max() <= 0:
        return 0
    return int(np.flatnonzero(head >= head.max() * 10 ** (-3 / 20))[0]) * BEND_HOP


def coherent_lag(note: np.ndarray, before: np.ndarray, period: int) -> tuple[int, float]:
    """(lag, correlation): the lag under one ``period`` at which ``note`` best matches ``before`` (the sound
    it is crossfaded into), and their normalised correlation there. A glide's two notes meet at one pitch,
    where a chance phase could cancel them to -14 dB midway through the crossfade."""
    if not np.any(before) or len(note) < len(before) + period:
        return 0, 0.0
    scores = np.correlate(note[: len(before) + period], before, mode="valid")
    lag = int(np.argmax(scores))
    norm = float(np.linalg.norm(note[lag:lag + len(before)]) * np.linalg.norm(before))
    return lag, float(np.clip(scores[lag] / norm, 0.0, 1.0)) if norm > 0 else 0.0


def crossfade_in(length: int, correlation: float) -> np.ndarray:
    """A fade-in over ``length`` samples that keeps the sum's power steady under a linear fade-out of the
    same length, for two signals of that ``correlation``: linear for one signal continuing in phase, the
    equal-power sqrt(1 - (1 - x)^2) for unrelated ones, which a linear fade would dip by 3 dB midway."""
    x = np.linspace(0.0, 1.0, length)
    out = 1.0 - x
    return (-correlation * out + np.sqrt(1.0 - (1.0 - correlation**2) * out**2)).astype(np.float32)


def follow_level(note: np.ndarray, level: np.ndarray | None, hop: int = BEND_HOP) -> np.ndarray:
    """``note`` made quieter wherever the performance's ``level`` (relative to its peak) is below the note's
    own envelope (relative to its peak): gain min(1, level / own). A sustained instrument swells, fades and
    trembles with the player; a decaying one (piano, marimba) keeps its decay, which no gain could undo."""
    if level is None or not len(note):
        return note
    level = np.asarray(level, dtype=np.float64)
    if level.ndim != 1 or not np.isfinite(level).all() or (level < 0).any():
        raise ValueError("a level contour is a 1-D array of finite, non-negative RMS values")
    own = frame_rms(note, hop)
    own /= max(float(own.max()), 1e-9)
    wanted = np.interp(np.arange(len(own)), np.arange(len(level)), level / max(float(level.max()), 1e-9))
    gain = np.minimum(1.0, wanted / np.maximum(own, 1e-4))
    return (note * np.interp(np.arange(len(note)), np.arange(len(gain)) * hop, gain)).astype(np.float32)


def harmonic_comb(audio: torch.Tensor, f0: torch.Tensor, rate: int, harmonics: float = 10.0,
                  depth: torch.Tensor | None = None, sharpness: torch.Tensor | None = None,
                  below: torch.Tensor | None = None, ratios: torch.Tensor | None = None,
                  gains: torch.Tensor | None = None) -> torch.Tensor:
    """[B, samples] notes with f0 [B] (Hz) -> the same with the energy between the first ``harmonics``
    harmonics removed: gain |cos(pi f / f0)|, 1 at every harmonic and 0 at every half-harmonic (f0 / 2,
    1.5 f0, ...), fading to 1 between 0.8 and 1.2 times the ``harmonics``-th, zero-phase. A CombConfig's
    settings, one per note, change that: ``depth``, ``sharpness`` and ``below`` [B] (default 1 each), and
    partials at ``ratios`` [K] times f0, of amplitude ``gains`` [B, K] times the fundamental's, added last.

    Why: the note model's low notes carry period-doubling energy at the half-harmonics, as strong as the
    harmonics at MIDI 36 (real notes: about -60 dB), which is heard, and tracked, an octave down. Above the
    first harmonics a comb would start to cut stretched (piano) and inharmonic (mallet) partials.
    """
    n = audio.shape[-1]
    # Zero-padded so the filter's ringing lands in the pad, not on the note's start: the comb's impulse
    # response has taps every period falling as 1/k^2, -60 dB by 8192 samples even at MIDI 24.
    size = n + 8192
    spectrum = torch.fft.rfft(audio, n=size)
    freqs = torch.fft.rfftfreq(size, 1 / rate, device=audio.device)
    ratio = freqs[None, :] / f0[:, None]  # frequency in harmonics
    comb = torch.cos(torch.pi * ratio).abs()
    # Each setting at its default leaves a note's gain bit for bit as the plain comb's.
    if sharpness is not None:  # where(), as a power of 1 need not return its base exactly
        comb = torch.where(sharpness[:, None] == 1, comb, comb ** sharpness[:, None].to(comb))
    if depth is not None:  # lerp returns its end exactly at weight 1
        comb = torch.lerp(torch.ones_like(comb), comb, depth[:, None].to(comb))
    if below is not None:
        comb = torch.where(ratio < 0.5, comb * below[:, None].to(comb), comb)
    fade = ((ratio - 0.8 * harmonics) / (0.4 * harmonics)).clamp(0, 1)
    gain = comb + (1 - comb) * fade
    out = torch.fft.irfft(spectrum * gain, n=size)[..., :n]
    if ratios is None or gains is None or not bool(gains.any()):
        return out
    rows = gains.any(dim=1).nonzero()[:, 0]  # only the notes that get partials: the others stay as they are
    # The fundamental's analytic signal (its band, one-sided, doubled), moved to each partial's frequency:
    # the partials start, swell and fade with the note's fundamental and stay phase-locked to it. The band
    # is f0 +- f0 / 4: a wider one carried the generator's blur at 0.75 f0 along, to 0.25 f0 at -36 dB.
    band = ((ratio[rows] - 1).abs() < 0.25) * torch.cos(2 * torch.pi * (ratio[rows] - 1)) ** 2
    analytic = torch.fft.ifft(2 * spectrum[rows] * gain[rows] * band, n=size)[..., :n]
    # Cycles in float64: at 4 s a float32 phase of thousands of radians would be off by a few thousandths.
    t = torch.arange(n, device=audio.device, dtype=torch.float64) / rate
    cycles = (ratios.to(t)[None, :, None] - 1) * f0[rows].to(t)[:, None, None] * t  # [rows, K, n]
    shift = torch.exp(2j * torch.pi * cycles.remainder(1).float())
    added = (gains[rows].to(audio)[..., None] * (analytic[:, None] * shift).real).sum(dim=1)
    return out.index_add(0, rows, added)

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

import numpy as np
import torch
import torchaudio

BEND_HOP = 256
LEVEL_WINDOW = 512
# Linear interpolation on an 8x band-limited copy. Measured on a sine bent by +100 cents at 16 kHz: the
# largest spur is -72 dB at 2 kHz and -45 dB at 6 kHz; plain linear interpolation gives -8 dB at 6 kHz.
OVERSAMPLE = 8
MAX_CENTS = 1200.0


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


def harmonic_comb(audio: torch.Tensor, f0: torch.Tensor, rate: int, harmonics: float = 10.0) -> torch.Tensor:
    """[B, samples] notes with f0 [B] (Hz) -> the same with the energy between the first ``harmonics``
    harmonics removed: gain |cos(pi f / f0)|, 1 at every harmonic and 0 at every half-harmonic (f0 / 2,
    1.5 f0, ...), fading to 1 between 0.8 and 1.2 times the ``harmonics``-th, zero-phase.

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
    fade = ((ratio - 0.8 * harmonics) / (0.4 * harmonics)).clamp(0, 1)
    gain = comb + (1 - comb) * fade
    return torch.fft.irfft(spectrum * gain, n=size)[..., :n]

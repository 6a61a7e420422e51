"""GANSynth's note representation: log-magnitude and instantaneous frequency (IF) of an STFT.

IF is the frame-to-frame phase advance, wrapped to (-pi, pi] and scaled to (-1, 1]: smooth for harmonic
sounds, where raw phase looks like noise. Integrating IF back along time recovers the phase exactly
(mod 2 pi), so encode -> decode is lossless up to the magnitude floor. ``frequency_scale: mel`` gives
GANSynth's best variant, IF-Mel: the same number of rows, spaced evenly in mel (``MelWarp``).

A generated spectrogram's IF is not exact: the bins of one partial's main lobe disagree a little, and
integrated separately they drift apart and beat. ``decode(..., lock_phase=True)`` locks every bin to the
spectral peak it belongs to (identity phase locking, Laroche & Dolson 1999), as a phase vocoder does.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def midi_to_hz(pitch: Any) -> Any:
    """Equal-tempered frequency of a MIDI pitch (A4 = 69 = 440 Hz); floats, arrays and tensors alike."""
    return 440.0 * 2 ** ((pitch - 69) / 12)


@dataclass(frozen=True)
class SpectralConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    frames: int = 256  # 256 x 256 samples = 4.096 s: a power of two for the conv stacks
    log_floor: float = 1e-6
    # log-magnitude -> about [-1, 1]: log(1e-6) = -13.8 maps to -1, log(100) = 4.6 to +1
    log_offset: float = 4.6
    log_scale: float = 9.2
    # "linear": one row per STFT bin (IF). "mel": as many rows spaced evenly in mel (IF-Mel). The STFT's
    # resolution is the same; what changes is where the generator's rows go: below 2.5 kHz, where a note's
    # pitch and most of its energy are, each bin gets several rows, and above, rows average a few bins.
    frequency_scale: str = "linear"

    def __post_init__(self) -> None:
        if self.frequency_scale not in ("linear", "mel"):
            raise ValueError(f"spectral.frequency_scale must be 'linear' or 'mel', not {self.frequency_scale!r}")

    @property
    def samples(self) -> int:
        return self.frames * self.hop_length

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    @property
    def frame_seconds(self) -> float:
        """The shortest note: below one frame a note has no samples."""
        return self.hop_length / self.sample_rate

    @property
    def bins(self) -> int:
        return self.n_fft // 2  # the Nyquist bin is dropped: a power of two suits the conv stacks


class NoteSpectrogram(torch.nn.Module):
    def __init__(self, cfg: SpectralConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or SpectralConfig()
        self.register_buffer("window", torch.hann_window(self.cfg.n_fft), persistent=False)
        self.warp = MelWarp(self.cfg) if self.cfg.frequency_scale == "mel" else None

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, samples] -> [B, 2, bins, frames]: channel 0 scaled log-magnitude, channel 1 IF."""
        c = self.cfg
        wave = fit_length(wave, c.samples)
        spec = torch.stft(wave, c.n_fft, c.hop_length, window=self.window, center=True, return_complex=True)
        spec = spec[:, : c.bins, : c.frames]
        phase = torch.angle(spec)
        advance = wrap(torch.diff(phase, dim=-1, prepend=torch.zeros_like(phase[..., :1])))
        mag = spec.abs()
        if self.warp is not None:
            mag, advance = self.warp.to_mel(mag, advance)
        log_mag = (torch.log(mag + c.log_floor) + c.log_offset) / c.log_scale
        return torch.stack([log_mag, advance / math.pi], dim=1)

    def decode(self, features: torch.Tensor, lock_phase: bool = False) -> torch.Tensor:
        """[B, 2, bins, frames] -> [B, samples]. lock_phase: phase-locked to the peaks (for generated
        spectrograms; an encoded recording decodes exactly without it)."""
        c = self.cfg
        mag = (torch.exp(features[:, 0] * c.log_scale - c.log_offset) - c.log_floor).clamp(min=0)
        advance, log_mag = features[:, 1] * math.pi, features[:, 0]
        if self.warp is not None:
            mag, advance = self.warp.to_linear(mag, advance)
            log_mag = torch.log(mag + c.log_floor)  # only its peaks matter to locked_phase
        phase = locked_phase(log_mag, advance) if lock_phase else torch.cumsum(advance, dim=-1)
        spec = torch.polar(mag, phase)
        spec = F.pad(spec, (0, 1, 0, 1))  # restore the Nyquist bin and the last frame
        return torch.istft(spec, c.n_fft, c.hop_length, window=self.window, center=True, length=c.samples)


def fit_length(wave: torch.Tensor, samples: int) -> torch.Tensor:
    """Cut or zero-pad the last axis to ``samples``: every note is one fixed length."""
    return F.pad(wave, (0, max(0, samples - wave.shape[-1])))[..., :samples]


def wrap(angle: torch.Tensor) -> torch.Tensor:
    """Radians -> [-pi, pi)."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def mel_warp_matrix(cfg: SpectralConfig) -> torch.Tensor:
    """[rows, bins]: row j is a triangle over the linear bins centred on the j-th of ``bins`` frequencies
    spaced evenly in (HTK) mel from 0 Hz to the top bin, each side as wide as the gap to the neighbouring
    centre or one linear bin, whichever is wider, and normalised to sum to 1. Where the mel gap is narrower
    than a bin (below about 2.5 kHz at 1024 points and 16 kHz) a row is a linear interpolation between two
    bins, which the pseudo-inverse undoes; above, rows average several bins, and that detail is lost."""
    bin_hz = cfg.sample_rate / cfg.n_fft
    top = 2595 * math.log10(1 + (cfg.bins - 1) * bin_hz / 700)
    centres = 700 * (10 ** (torch.linspace(0, top, cfg.bins, dtype=torch.float64) / 2595) - 1) / bin_hz  # in bins
    gaps = torch.diff(centres).clamp(min=1.0)
    left = torch.cat([gaps[:1], gaps])
    right = torch.cat([gaps, gaps[-1:]])
    offset = torch.arange(cfg.bins, dtype=torch.float64)[None] - centres[:, None]
    rows = torch.where(offset < 0, 1 + offset / left[:, None], 1 - offset / right[:, None]).clamp(min=0)
    return (rows / rows.sum(1, keepdim=True)).float()


@functools.cache
def mel_warp_matrices(cfg: SpectralConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The warp and its pseudo-inverse, computed once per configuration: a generator's harmonic prior and
    its decoder both hold them (never modified in place)."""
    matrix = mel_warp_matrix(cfg)
    return matrix, torch.linalg.pinv(matrix.double()).float()


class MelWarp(nn.Module):
    """Linear STFT rows <-> mel-spaced rows (IF-Mel). Power is warped as it adds (so a row holds the power
    of the band it covers) and phase advances as unit phasors, so that two bins at +pi and -pi (the same
    advance) meet at pi, not at 0 as a plain average of the angles would put them."""

    def __init__(self, cfg: SpectralConfig) -> None:
        super().__init__()
        forward, inverse = mel_warp_matrices(cfg)
        self.register_buffer("forward_matrix", forward, persistent=False)
        self.register_buffer("inverse_matrix", inverse, persistent=False)

    @staticmethod
    def _warp(matrix: torch.Tensor, mag: torch.Tensor, advance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = mag.shape[-1]
        # One real matrix product for power, cosine and sine together: a complex one costs four.
        warped = matrix @ torch.cat([mag.square(), torch.cos(advance), torch.sin(advance)], dim=-1)
        power, cos, sin = warped.split(frames, dim=-1)
        return power.clamp(min=0).sqrt(), torch.atan2(sin, cos)

    def to_mel(self, mag: torch.Tensor, advance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, bins, frames] linear magnitude and phase advance (radians) -> the same on mel rows."""
        return self._warp(self.forward_matrix, mag, advance)

    def to_linear(self, mag: torch.Tensor, advance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._warp(self.inverse_matrix, mag, advance)


def peak_of_each_bin(log_mag: torch.Tensor) -> torch.Tensor:
    """[B, frames, bins] -> the index of the local maximum each bin reaches by climbing its neighbours,
    i.e. the partial whose main lobe (or region of influence) it lies in."""
    bins = log_mag.shape[-1]
    left = F.pad(log_mag[..., :-1], (1, 0), value=-math.inf)
    right = F.pad(log_mag[..., 1:], (0, 1), value=-math.inf)
    up = torch.where((left > log_mag) & (left >= right), -1, torch.where(right > log_mag, 1, 0))
    peak = torch.arange(bins, device=log_mag.device) + up
    # Pointer doubling: after n rounds every bin has climbed up to 2^n bins, so log2(bins) rounds reach
    # every top; generated notes' slopes are short, and the climb stops as soon as nothing moves.
    for _ in range(max(1, math.ceil(math.log2(bins)))):
        higher = torch.gather(peak, -1, peak)
        if torch.equal(higher, peak):
            break
        peak = higher
    return peak


def locked_phase(log_mag: torch.Tensor, advance: torch.Tensor) -> torch.Tensor:
    """[B, bins, frames] log-magnitude and phase advance (radians) -> phase, frame by frame: a peak advances
    by its own IF from where it was, and the bins around it keep the phase a windowed sinusoid gives them.
    With torch.stft's frame-start time origin that is the peak's phase + pi per bin of distance (the
    Hann main lobe is real and positive), whatever the partial's exact frequency."""
    peak = peak_of_each_bin(log_mag.transpose(1, 2).contiguous())  # [B, frames, bins]
    advance = advance.transpose(1, 2)
    bins = torch.arange(log_mag.shape[1], device=log_mag.device)
    step = torch.gather(advance, 2, peak) + math.pi * (bins - peak)
    # phase[t] = phase[t - 1][peak[t]] + step[t] is a chain of gathers; composing them pairwise
    # (Hillis-Steele scan) takes log2(frames) whole-tensor steps instead of one small step per frame.
    span = 1
    while span < peak.shape[1]:
        later = peak[:, span:]
        step[:, span:] += torch.gather(step[:, :-span], 2, later)
        peak[:, span:] = torch.gather(peak[:, :-span], 2, later)
        span *= 2
    start = (math.pi * bins).to(advance.dtype).expand_as(step)  # a note starts with phase 0 at its first sample
    phase = torch.gather(start, 2, peak) + step
    return phase.transpose(1, 2)


def spectral_convergence(reference: torch.Tensor, estimate: torch.Tensor, cfg: SpectralConfig) -> float:
    """|| |S_ref| - |S_est| ||_F / || |S_ref| ||_F over the STFT of both waveforms."""
    window = torch.hann_window(cfg.n_fft)
    ref = torch.stft(reference, cfg.n_fft, cfg.hop_length, window=window, return_complex=True).abs()
    est = torch.stft(estimate, cfg.n_fft, cfg.hop_length, window=window, return_complex=True).abs()
    return float(torch.linalg.norm(ref - est) / torch.linalg.norm(ref))

"""GANSynth's note representation: log-magnitude and instantaneous frequency (IF) of an STFT.

IF is the frame-to-frame phase advance, wrapped to (-pi, pi] and scaled to (-1, 1]: smooth for harmonic
sounds, where raw phase looks like noise. Integrating IF back along time recovers the phase exactly
(mod 2 pi), so encode -> decode is lossless up to the magnitude floor. This is the linear-frequency IF
variant; GANSynth's best (IF-Mel) additionally warps frequency to a mel scale.

A generated spectrogram's IF is not exact: the bins of one partial's main lobe disagree a little, and
integrated separately they drift apart and beat. ``decode(..., lock_phase=True)`` locks every bin to the
spectral peak it belongs to (identity phase locking, Laroche & Dolson 1999), as a phase vocoder does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


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

    @property
    def samples(self) -> int:
        return self.frames * self.hop_length

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    @property
    def bins(self) -> int:
        return self.n_fft // 2  # the Nyquist bin is dropped: a power of two suits the conv stacks


class NoteSpectrogram(torch.nn.Module):
    def __init__(self, cfg: SpectralConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or SpectralConfig()
        self.register_buffer("window", torch.hann_window(self.cfg.n_fft), persistent=False)

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, samples] -> [B, 2, bins, frames]: channel 0 scaled log-magnitude, channel 1 IF."""
        c = self.cfg
        wave = F.pad(wave, (0, max(0, c.samples - wave.shape[-1])))[..., : c.samples]
        spec = torch.stft(wave, c.n_fft, c.hop_length, window=self.window, center=True, return_complex=True)
        spec = spec[:, : c.bins, : c.frames]
        log_mag = (torch.log(spec.abs() + c.log_floor) + c.log_offset) / c.log_scale
        phase = torch.angle(spec)
        advance = torch.diff(phase, dim=-1, prepend=torch.zeros_like(phase[..., :1]))
        inst_freq = torch.remainder(advance + math.pi, 2 * math.pi) - math.pi
        return torch.stack([log_mag, inst_freq / math.pi], dim=1)

    def decode(self, features: torch.Tensor, lock_phase: bool = False) -> torch.Tensor:
        """[B, 2, bins, frames] -> [B, samples]. lock_phase: phase-locked to the peaks (for generated
        spectrograms; an encoded recording decodes exactly without it)."""
        c = self.cfg
        mag = (torch.exp(features[:, 0] * c.log_scale - c.log_offset) - c.log_floor).clamp(min=0)
        if lock_phase:
            phase = locked_phase(features[:, 0], features[:, 1] * math.pi)
        else:
            phase = torch.cumsum(features[:, 1] * math.pi, dim=-1)
        spec = torch.polar(mag, phase)
        spec = F.pad(spec, (0, 1, 0, 1))  # restore the Nyquist bin and the last frame
        return torch.istft(spec, c.n_fft, c.hop_length, window=self.window, center=True, length=c.samples)


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

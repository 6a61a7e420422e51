"""Spectral heads of the iSTFT generator: a mel magnitude prior and projection, a pitch tracker and
harmonic phase.

Why harmonic phase: a convolutional backbone is translation-invariant, so on a steady vowel it predicts
the same value every frame, yet the STFT phase of a partial must advance by 2*pi*f*hop/sr per frame.
Predicting phase per frame (Vocos) leaves that advance to be learned from tiny input variations; here
a small pitch tracker gives f0, its running phase theta is integrated once over the whole utterance,
and every harmonic h gets h * theta. Partials stay phase-locked to each other and advance correctly
from the first training step; the backbone only learns where the harmonic phase applies (a per-bin
gate) and a free phase for the rest (noise, transients).

Measured on the bundled model after training (benchmarks/RESULTS.md): the gate gives the harmonic phase
only ~3 % of the energy. The tracker's f0 error (about 60 cents mean absolute against pYIN at the end of
training) becomes h times that in instantaneous frequency, too much for all but the lowest harmonics, so
the free phase won; the harmonic phase's value was in the early steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from audiogan.audio.mel import MelConfig, MelSpectrogram

F0_MIN, F0_MAX = 40.0, 700.0  # Hz: the pitch tracker's output range
F0_CENTRE = 150.0  # Hz: a zero pre-activation means this pitch


def bin_shares(mel: MelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The mel front end's filterbank [bins, n_mels] and each bin's share of every band (rows summing to 1,
    or 0 for bins that no band covers), so that the heads use exactly the mel the vocoder is given."""
    fb = MelSpectrogram(mel).filterbank.clone()
    return fb, fb / fb.sum(1, keepdim=True).clamp(min=1e-8)


class MelMagnitudePrior(nn.Module):
    """Log-mel [B, n_mels, T] -> log-magnitude [B, n_fft/2+1, T] by spreading each band over its bins.

    Each bin takes the bands that cover it, weighted by the filterbank (a partition of unity), after
    dividing out each band's area, so a flat spectrum comes back flat. Starting from this, the
    backbone learns a correction instead of the whole magnitude (the idea of FreeV, Lv et al. 2024).
    """

    def __init__(self, mel: MelConfig) -> None:
        super().__init__()
        fb, share = bin_shares(mel)
        # Bins outside every band (none for 0 .. sr/2) would get nothing; give them the nearest band.
        empty = fb.sum(1) <= 0
        if empty.any():
            nearest = fb.argmax(1)
            share[empty] = nn.functional.one_hot(nearest[empty], mel.n_mels).float()
        self.register_buffer("spread", share.T.contiguous(), persistent=False)  # [n_mels, bins]
        self.register_buffer("log_area", torch.log(fb.sum(0).clamp(min=1e-8)), persistent=False)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bmt,mf->bft", mel - self.log_area[None, :, None], self.spread)


class MelProjection(nn.Module):
    """Rescale a predicted magnitude so that its own mel equals the input mel.

    Why: trained by log-domain regression, each bin is predicted at the geometric mean of what the mel
    allows, which for noise-like and finely structured bins is ~3 dB under the recording's energy
    (Jensen's inequality). The mel states each band's magnitude sum exactly, so multiplicative updates
    (those of KL non-negative matrix factorisation, whose fixed point is that equality) restore the
    level while keeping the predicted shape within each band. Per frame, so streaming stays exact.
    """

    MAX_LOG_GAIN = 5.0  # per update; keeps a nearly empty predicted band from being blown up

    def __init__(self, mel: MelConfig, iterations: int) -> None:
        super().__init__()
        fb, share = bin_shares(mel)
        self.iterations, self.floor = iterations, mel.log_floor
        self.register_buffer("fb", fb, persistent=False)
        self.register_buffer("spread", share, persistent=False)
        # Bins no band covers (DC, Nyquist) are left as predicted.
        self.register_buffer("covered", (fb.sum(1) > 0)[None, :, None], persistent=False)

    @torch.autocast("cuda", enabled=False)
    @torch.autocast("cpu", enabled=False)
    def forward(self, log_mag: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """log-magnitude [B, bins, T], log-mel [B, n_mels, T] -> corrected log-magnitude."""
        log_mag, mel = log_mag.float(), mel.float()
        for _ in range(self.iterations):
            own = torch.einsum("fm,bft->bmt", self.fb, torch.exp(log_mag)).clamp(min=self.floor)
            ratio = torch.exp(mel - torch.log(own))
            gain = torch.log(torch.einsum("fm,bmt->bft", self.spread, ratio).clamp(min=1e-8))
            gain = gain.clamp(-self.MAX_LOG_GAIN, self.MAX_LOG_GAIN)
            log_mag = log_mag + torch.where(self.covered, gain, torch.zeros_like(gain))
        return log_mag


class PitchTracker(nn.Module):
    """Log-mel -> f0 in Hz per frame. Small on purpose: it runs over a whole utterance before any
    chunk is vocoded, so that the harmonic phase can be integrated once and sliced by every chunk."""

    def __init__(self, n_mels: int, channels: int = 256, kernel_size: int = 5, layers: int = 3) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        width = n_mels
        for _ in range(layers):
            convs += [nn.Conv1d(width, channels, kernel_size, padding=kernel_size // 2), nn.GELU()]
            width = channels
        convs.append(nn.Conv1d(width, 1, 1))
        self.net = nn.Sequential(*convs)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, T] -> [B, T] Hz."""
        return torch.exp(self.net(mel)[:, 0].float() + math.log(F0_CENTRE)).clamp(F0_MIN, F0_MAX)


def fundamental_phase(f0: torch.Tensor, hop: int, sample_rate: int) -> torch.Tensor:
    """f0 [B, T] Hz -> phase of the fundamental at each frame centre, wrapped to [0, 2*pi) (float64).

    Trapezoidal integration between frame centres, accumulated in float64 so that hours of audio keep
    sub-microradian precision. Wrapping is exact for the harmonics: h * (theta mod 2*pi) = h * theta mod 2*pi.
    """
    f = f0.double()
    step = torch.nn.functional.pad((f[:, 1:] + f[:, :-1]) * (math.pi * hop / sample_rate), (1, 0))
    return torch.remainder(torch.cumsum(step, dim=1), 2 * math.pi)


def harmonic_phase(theta: torch.Tensor, f0: torch.Tensor, n_fft: int, sample_rate: int) -> torch.Tensor:
    """STFT phase [B, n_fft/2+1, T] of a harmonic series with fundamental phase ``theta`` [B, T].

    Bin k belongs to harmonic h = round(f_k / f0). For a partial of phase theta_h at the frame centre,
    an STFT whose window is symmetric about its centre and whose phase is referenced to the frame's
    first sample (torch.stft, and the iSTFT head) gives phase theta_h - pi * k at bin k.
    """
    bins = n_fft // 2 + 1
    k = torch.arange(bins, device=theta.device, dtype=torch.float32)
    # f0 is clamped because padded frames of a batch carry 0 there.
    f0 = f0.float().clamp(min=F0_MIN)
    h = torch.round(k[None, :, None] * (sample_rate / n_fft) / f0[:, None, :]).clamp(min=1)
    # pi * k is pi * (k mod 2) modulo 2*pi; theta < 2*pi and h < 200 keep float32 within ~1e-4 rad.
    return torch.remainder(h * theta.float()[:, None, :] - math.pi * (k % 2)[None, :, None], 2 * math.pi)

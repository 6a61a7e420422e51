"""Regression losses on the STFT, for training without (or before) a discriminator.

The phase terms follow Ai & Ling's anti-wrapping losses (neural speech phase prediction, 2023): errors of
the group delay (phase difference across frequency) and of the instantaneous angular frequency (across
time) through |x - 2*pi*round(x / 2*pi)|. The absolute phase is left out: it depends on where the signal
started, which no mel says. Both are weighted by the recording's magnitude, so that the phase of silent
bins, which is noise, does not outweigh the partials one hears.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Real and imaginary parts weigh 2.25x the consistency term, as in APNet (Ai & Ling 2023).
REAL_IMAG_RATIO = 2.25


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    return torch.abs(x - 2 * math.pi * torch.round(x / (2 * math.pi)))


def spectral_losses(log_mag: torch.Tensor, phase: torch.Tensor, produced: torch.Tensor,
                    target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Losses of a predicted spectrum (log-magnitude, phase) against the recording's STFT ``target``.

    ``produced`` is the STFT of the waveform synthesised from the prediction: the consistency term pulls
    the prediction towards spectra that an actual signal can have, and the real/imaginary term compares
    what is heard with the recording. All [B, bins, T]; frames beyond the shortest are ignored.
    """
    t = min(log_mag.shape[-1], produced.shape[-1], target.shape[-1])
    log_mag, phase, produced, target = log_mag[..., :t], phase[..., :t], produced[..., :t], target[..., :t]
    mag = target.abs()
    weight = mag / mag.mean().clamp(min=1e-8)
    true_phase = torch.angle(target)
    group_delay = anti_wrap(torch.diff(phase, dim=1) - torch.diff(true_phase, dim=1))
    inst_freq = anti_wrap(torch.diff(phase, dim=2) - torch.diff(true_phase, dim=2))
    predicted = torch.polar(torch.exp(log_mag).clamp(max=1e2), phase)
    return {
        "magnitude": F.mse_loss(log_mag, torch.log(mag.clamp(min=1e-5))),
        "phase": (weight[:, 1:] * group_delay).mean() + (weight[..., 1:] * inst_freq).mean(),
        "consistency": (produced - predicted).abs().square().mean()
        + REAL_IMAG_RATIO * (F.l1_loss(produced.real, target.real) + F.l1_loss(produced.imag, target.imag)),
    }


def pitch_loss(f0: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 of log f0 on frames the target calls voiced; ``target`` is [B, 2, T] (Hz, voiced flag)."""
    t = min(f0.shape[-1], target.shape[-1])
    hz, voiced = target[:, 0, :t], (target[:, 1, :t] > 0.5).float()
    err = (torch.log(f0[:, :t]) - torch.log(hz.clamp(min=1.0))).abs()
    return (voiced * err).sum() / voiced.sum().clamp(min=1.0)

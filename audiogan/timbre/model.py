"""The note GAN: a conditional generator of IF spectrograms and a discriminator with a pitch classifier.

Conditioning (GANSynth, Engel et al. 2019, plus a learned instrument embedding): the generator sees a noise
vector z, a one-hot pitch and a timbre vector. The timbre vector is a learned instrument embedding, or any
point of that space (interpolations, inverted recordings). The discriminator scores realism and classifies
pitch (AC-GAN), which keeps generated notes on the asked pitch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from audiogan.timbre.spectral import SpectralConfig


@dataclass
class NoteGANConfig:
    latent_dim: int = 256
    timbre_dim: int = 128
    pitch_min: int = 24
    pitch_max: int = 84
    instruments: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)  # instrument family of each instrument (NSynth's)
    channels: list[int] = field(default_factory=lambda: [256, 256, 256, 128, 128, 64, 32])
    spectral: SpectralConfig = field(default_factory=SpectralConfig)

    @property
    def pitches(self) -> int:
        return self.pitch_max - self.pitch_min + 1


class Generator(nn.Module):
    """[z, pitch one-hot, timbre] -> [B, 2, bins, frames] in (-1, 1), by doubling a small seed map once per
    entry of ``channels``."""

    def __init__(self, cfg: NoteGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.instrument = nn.Embedding(max(1, len(cfg.instruments)), cfg.timbre_dim)
        c0 = cfg.channels[0]
        self.seed_h = cfg.spectral.bins // 2 ** len(cfg.channels)
        self.seed_w = cfg.spectral.frames // 2 ** len(cfg.channels)
        self.project = nn.Linear(cfg.latent_dim + cfg.pitches + cfg.timbre_dim, c0 * self.seed_h * self.seed_w)
        blocks = []
        for c_in, c_out in zip(cfg.channels[:-1], cfg.channels[1:], strict=True):
            blocks.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                        nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2),
                                        nn.Conv2d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.2)))
        self.blocks = nn.Sequential(*blocks)
        # The last doubling is a sub-pixel convolution: convolutions at the full 512 x 256 resolution took
        # half of the CPU time per note (benchmarks/timbre_speed.py).
        self.out = nn.Sequential(nn.Conv2d(cfg.channels[-1], 2 * 4, 3, padding=1), nn.PixelShuffle(2))

    def pitch_onehot(self, pitch: torch.Tensor) -> torch.Tensor:
        return F.one_hot(pitch - self.cfg.pitch_min, self.cfg.pitches).float()

    def forward(self, z: torch.Tensor, pitch: torch.Tensor, timbre: torch.Tensor) -> torch.Tensor:
        x = self.project(torch.cat([z, self.pitch_onehot(pitch), timbre], dim=1))
        x = F.leaky_relu(x, 0.2).view(-1, self.cfg.channels[0], self.seed_h, self.seed_w)
        return torch.tanh(self.out(self.blocks(x)))


class Discriminator(nn.Module):
    """[B, 2, bins, frames] -> (realism score [B], pitch logits [B, pitches])."""

    def __init__(self, cfg: NoteGANConfig) -> None:
        super().__init__()
        chans = list(reversed(cfg.channels))
        layers: list[nn.Module] = [nn.Conv2d(2, chans[0], 1), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(chans, [*chans[1:], chans[-1]], strict=True):
            layers += [nn.Conv2d(c_in, c_in, 3, padding=1), nn.LeakyReLU(0.2),
                       nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2)]
        self.features = nn.Sequential(*layers)
        size = chans[-1] * (cfg.spectral.bins // 2 ** len(chans)) * (cfg.spectral.frames // 2 ** len(chans))
        self.real = nn.Linear(size, 1)
        self.pitch = nn.Linear(size, cfg.pitches)

    def forward(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(spec).flatten(1)
        return self.real(h).squeeze(1), self.pitch(h)


def slerp(a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of vectors (rows), falling back to linear when they are parallel."""
    alpha = alpha.reshape(-1, 1)
    na, nb = a / a.norm(dim=-1, keepdim=True).clamp(min=1e-8), b / b.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    omega = torch.acos((na * nb).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    spherical = (torch.sin((1 - alpha) * omega) / so) * a + (torch.sin(alpha * omega) / so) * b
    linear = (1 - alpha) * a + alpha * b
    return torch.where(so.abs() < 1e-4, linear, spherical)

"""The note GAN: a conditional generator of IF spectrograms and a discriminator with a pitch classifier.

Conditioning (GANSynth, Engel et al. 2019, plus a learned instrument embedding): the generator sees a noise
vector z, a one-hot pitch and a timbre vector. The timbre vector is a learned instrument embedding, or any
point of that space (interpolations, inverted recordings). The discriminator scores realism and classifies
pitch (AC-GAN), which keeps generated notes on the asked pitch.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from audiogan.timbre.spectral import MelWarp, SpectralConfig, midi_to_hz


@dataclass
class NoteGANConfig:
    latent_dim: int = 256
    timbre_dim: int = 128
    pitch_min: int = 24
    pitch_max: int = 84
    instruments: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)  # instrument family of each instrument (NSynth's)
    channels: list[int] = field(default_factory=lambda: [256, 256, 256, 128, 128, 64, 32])
    # Hand the output layer the asked pitch's harmonic comb and the phase advance of each harmonic, so the
    # network learns how loud each partial is rather than where the partials are (see HarmonicTemplate).
    harmonic_prior: bool = False
    # Condition on velocity too: a soundfont's velocity layers differ in brightness and attack, not only in
    # level, and without it the generator can only learn their average. The trainer sets velocity_range to
    # the training notes' lowest and highest; asked velocities outside it take the nearest end's timbre, and
    # the level follows the asked velocity either way (TimbreModel.generate).
    velocity_conditioning: bool = False
    velocity_range: list[int] = field(default_factory=lambda: [0, 0])
    spectral: SpectralConfig = field(default_factory=SpectralConfig)

    @property
    def pitches(self) -> int:
        return self.pitch_max - self.pitch_min + 1

    @property
    def velocity_conditioned(self) -> bool:
        return self.velocity_conditioning and self.velocity_range[1] > self.velocity_range[0]


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
        # Velocity enters as one more input of the projection, kept as its own layer so that a generator
        # trained without it gains it at zero (same notes as before) and learns it from there.
        self.velocity = nn.Linear(1, c0 * self.seed_h * self.seed_w, bias=False) if cfg.velocity_conditioned else None
        if self.velocity is not None:
            nn.init.zeros_(self.velocity.weight)
        blocks = []
        for c_in, c_out in zip(cfg.channels[:-1], cfg.channels[1:], strict=True):
            blocks.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                        nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2),
                                        nn.Conv2d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.2)))
        self.blocks = nn.Sequential(*blocks)
        # The last doubling is a sub-pixel convolution: convolutions at the full 512 x 256 resolution took
        # half of the CPU time per note (benchmarks/timbre_speed.py).
        outputs = 4 if cfg.harmonic_prior else 2
        self.out = nn.Sequential(nn.Conv2d(cfg.channels[-1], outputs * 4, 3, padding=1), nn.PixelShuffle(2))
        self.template = HarmonicTemplate(cfg.spectral) if cfg.harmonic_prior else None

    def pitch_onehot(self, pitch: torch.Tensor) -> torch.Tensor:
        return F.one_hot(pitch - self.cfg.pitch_min, self.cfg.pitches).float()

    def velocity_input(self, velocity: torch.Tensor) -> torch.Tensor:
        """MIDI velocities [B] -> [B, 1] in [-1, 1] over the trained range (clamped to it)."""
        lo, hi = self.cfg.velocity_range
        return (2 * (velocity.float().clamp(lo, hi) - lo) / (hi - lo) - 1)[:, None]

    def forward(self, z: torch.Tensor, pitch: torch.Tensor, timbre: torch.Tensor,
                velocity: torch.Tensor | None = None) -> torch.Tensor:
        """velocity [B] (MIDI): used by a velocity-conditioned generator, which takes the middle of its
        range when none is given; ignored by one without."""
        x = self.project(torch.cat([z, self.pitch_onehot(pitch), timbre], dim=1))
        if self.velocity is not None:
            if velocity is None:
                velocity = torch.full((len(z),), sum(self.cfg.velocity_range) / 2, device=z.device)
            x = x + self.velocity(self.velocity_input(velocity))
        x = F.leaky_relu(x, 0.2).view(-1, self.cfg.channels[0], self.seed_h, self.seed_w)
        y = self.out(self.blocks(x)).contiguous()  # channels-last weights (CPU) must not leak a layout out
        if self.template is None:
            return torch.tanh(y)
        comb, advance = self.template(pitch)
        log_mag = torch.tanh(y[:, 0] + y[:, 2] * comb)  # channel 2: how loud the partials are, per pixel
        mix = torch.sigmoid(y[:, 3])  # channel 3: where the partials' own phase advance applies
        return torch.stack([log_mag, mix * advance + (1 - mix) * torch.tanh(y[:, 1])], dim=1)


class HarmonicTemplate(nn.Module):
    """For MIDI pitches: [B] -> (comb, advance), each [B, bins, 1]. comb is 1 on the bins of the harmonics
    of the pitch and falls off as a Gaussian of one bin; advance is the IF a steady partial at the nearest
    harmonic gives every bin (its phase advance per hop, scaled like the IF channel); for IF-Mel both are
    warped to the mel rows as the features are, so they blur exactly as the data does. Learning partials
    bin by bin from a pitch one-hot took a CPU budget's worth of steps and still came out blurred."""

    def __init__(self, cfg: SpectralConfig, width_bins: float = 1.0) -> None:
        super().__init__()
        self.cfg, self.width = cfg, width_bins
        hz = torch.arange(cfg.bins, dtype=torch.float32) * cfg.sample_rate / cfg.n_fft
        self.register_buffer("hz", hz, persistent=False)
        self.warp = MelWarp(cfg) if cfg.frequency_scale == "mel" else None

    def forward(self, pitch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cfg
        f0 = midi_to_hz(pitch.float()[:, None])
        harmonic = torch.round(self.hz / f0).clamp(min=1)
        distance = (self.hz - harmonic * f0) * c.n_fft / c.sample_rate
        comb = torch.exp(-0.5 * (distance / self.width) ** 2)
        advance = torch.remainder(2 * math.pi * harmonic * f0 * c.hop_length / c.sample_rate + math.pi,
                                  2 * math.pi) - math.pi
        comb, advance = comb[..., None], advance[..., None]
        if self.warp is not None:  # IF-Mel: the linear template warped as the features are
            _, advance = self.warp.to_mel(comb, advance)
            comb = self.warp.forward_matrix @ comb
        return comb, advance / math.pi


class Discriminator(nn.Module):
    """[B, 2, bins, frames] -> (realism score [B], pitch logits [B, pitches])."""

    def __init__(self, cfg: NoteGANConfig) -> None:
        super().__init__()
        chans = list(reversed(cfg.channels))
        # Reading the input through a space-to-depth step mirrors the generator's sub-pixel output and
        # skips convolutions at full resolution, which took most of a CPU training step.
        layers: list[nn.Module] = [nn.PixelUnshuffle(2), nn.Conv2d(2 * 4, chans[0], 1), nn.LeakyReLU(0.2)]
        for c_in, c_out in itertools.pairwise(chans):
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

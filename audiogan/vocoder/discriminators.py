"""Discriminators: multi-period (HiFi-GAN), multi-scale (MelGAN) and multi-resolution STFT (UnivNet/Vocos).

Each returns, per sub-discriminator, a score map and the list of intermediate feature maps used for
feature matching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

LRELU_SLOPE = 0.1
Outputs = tuple[list[torch.Tensor], list[list[torch.Tensor]]]


def _wn(m: nn.Module) -> nn.Module:
    return parametrizations.weight_norm(m)


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv stack + output conv; every activation is kept for feature matching."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int) -> None:
        super().__init__()
        self.period = period
        chans = [1, 32, 128, 512, 1024]
        self.convs = nn.ModuleList(
            _wn(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3, 1), padding=(2, 0))) for i in range(4)
        )
        self.convs.append(_wn(nn.Conv2d(1024, 1024, (5, 1), 1, padding=(2, 0))))
        self.post = _wn(nn.Conv2d(1024, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), mode="reflect")
        x = x.view(b, 1, -1, self.period)
        return _conv_stack(self.convs, self.post, x)


class ScaleDiscriminator(nn.Module):
    def __init__(self, spectral: bool = False) -> None:
        super().__init__()
        norm = parametrizations.spectral_norm if spectral else parametrizations.weight_norm
        specs = [(1, 128, 15, 1, 1, 7), (128, 128, 41, 2, 4, 20), (128, 256, 41, 2, 16, 20),
                 (256, 512, 41, 4, 16, 20), (512, 1024, 41, 4, 16, 20), (1024, 1024, 41, 1, 16, 20),
                 (1024, 1024, 5, 1, 1, 2)]
        self.convs = nn.ModuleList(norm(nn.Conv1d(i, o, k, s, groups=g, padding=p)) for i, o, k, s, g, p in specs)
        self.post = norm(nn.Conv1d(1024, 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = x.unsqueeze(1)
        return _conv_stack(self.convs, self.post, x)


class ResolutionDiscriminator(nn.Module):
    """2-D convs over one STFT magnitude (UnivNet's MRD sub-discriminator)."""

    def __init__(self, n_fft: int, hop: int, channels: int = 32) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.convs = nn.ModuleList([
            _wn(nn.Conv2d(1, channels, (3, 9), padding=(1, 4))),
            _wn(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
            _wn(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
            _wn(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))),
            _wn(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
        ])
        self.post = _wn(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with torch.autocast(x.device.type, enabled=False):
            spec = torch.stft(x.float(), self.n_fft, self.hop, window=self.window, return_complex=True)
            mag = spec.abs().transpose(1, 2).unsqueeze(1)  # [B, 1, T, F]
        x = mag.to(torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype)
        return _conv_stack(self.convs, self.post, x)


class DiscriminatorGroup(nn.Module):
    """Runs a list of sub-discriminators on real and generated audio in one batch."""

    def __init__(self, discs: list[nn.Module], pools: list[int] | None = None) -> None:
        super().__init__()
        self.discs = nn.ModuleList(discs)
        self.pools = pools or [1] * len(discs)

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[Outputs, Outputs]:
        # One pass over the concatenation halves the kernel launches of two separate passes.
        both = torch.cat([real, fake], dim=0)
        n = real.shape[0]
        scores_r, scores_f, feats_r, feats_f = [], [], [], []
        for disc, pool in zip(self.discs, self.pools, strict=True):
            x = both
            if pool > 1:
                x = F.avg_pool1d(x.unsqueeze(1), pool * 2, pool, padding=pool).squeeze(1)
            score, feats = disc(x)
            scores_r.append(score[:n])
            scores_f.append(score[n:])
            feats_r.append([f[:n] for f in feats])
            feats_f.append([f[n:] for f in feats])
        return (scores_r, feats_r), (scores_f, feats_f)


def build_discriminators(names: list[str]) -> DiscriminatorGroup:
    """One group of sub-discriminators: 'mpd' (periods 2,3,5,7,11), 'msd' (3 scales), 'mrd' (3 STFT sizes)."""
    table = {
        "mpd": lambda: ([PeriodDiscriminator(p) for p in (2, 3, 5, 7, 11)], [1] * 5),
        "msd": lambda: ([ScaleDiscriminator(spectral=True), ScaleDiscriminator(), ScaleDiscriminator()], [1, 2, 4]),
        "mrd": lambda: ([ResolutionDiscriminator(n, h) for n, h in ((512, 128), (1024, 256), (2048, 512))], [1] * 3),
    }
    unknown = [n for n in names if n not in table]
    if unknown or not names:
        raise ValueError(f"unknown or no discriminators {names}; choose from {sorted(table)}")
    discs: list[nn.Module] = []
    pools: list[int] = []
    for name in names:
        d, p = table[name]()
        discs += d
        pools += p
    return DiscriminatorGroup(discs, pools)

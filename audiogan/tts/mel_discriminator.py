"""A patch discriminator on log-mel windows: the optional adversarial loss of the acoustic model.

An L1-trained acoustic model predicts the mean of what a phoneme could sound like, which smooths away
the detail (formant edges, harmonics, noise texture) that both listeners and recognisers use. A small 2-D
critic over windows of the mel (the idea of GANSpeech and Multi-SpectroGAN for FastSpeech 2) rewards it back.
Its outputs have the vocoder discriminators' shape, so the same least-squares and feature-matching losses
apply.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

from audiogan.vocoder.discriminators import Outputs, _conv_stack


class MelDiscriminator(nn.Module):
    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        wn = parametrizations.weight_norm
        c = channels
        self.convs = nn.ModuleList([
            wn(nn.Conv2d(1, c, (3, 3), padding=1)),
            wn(nn.Conv2d(c, 2 * c, (3, 3), stride=(2, 1), padding=1)),
            wn(nn.Conv2d(2 * c, 4 * c, (3, 3), stride=(2, 2), padding=1)),
            wn(nn.Conv2d(4 * c, 4 * c, (3, 3), stride=(2, 2), padding=1)),
        ])
        self.post = wn(nn.Conv2d(4 * c, 1, (3, 3), padding=1))

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[Outputs, Outputs]:
        """real, fake [B, n_mels, frames] -> ((scores, features) of real, (scores, features) of fake)."""
        n = real.shape[0]
        score, feats = _conv_stack(self.convs, self.post, torch.cat([real, fake])[:, None])
        return ([score[:n]], [[f[:n] for f in feats]]), ([score[n:]], [[f[n:] for f in feats]])


def mel_windows(real: torch.Tensor, fake: torch.Tensor, lengths: torch.Tensor, frames: int,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random window of ``frames`` valid frames from each real and predicted mel [B, n_mels, T].

    Items shorter than the window are padded with their own floor, so the critic never sees the zeros of
    batch padding, which no real mel has.
    """
    b, n_mels, t = real.shape
    floor = real.amin(dim=(1, 2), keepdim=True)
    if t < frames:  # what pads here lies past every length, so the floor replaces it below
        real, fake = F.pad(real, (0, frames - t)), F.pad(fake, (0, frames - t))
    spare = (lengths - frames).clamp(min=0).cpu()
    starts = (torch.rand(b, generator=generator) * (spare + 1).float()).long().to(real.device)
    index = (starts[:, None] + torch.arange(frames, device=real.device))[:, None, :].expand(b, n_mels, frames)
    valid = index < lengths.to(real.device)[:, None, None]
    pick = lambda x: torch.where(valid, x.gather(2, index), floor)  # noqa: E731
    return pick(real), pick(fake)

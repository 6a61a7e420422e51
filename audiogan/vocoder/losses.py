"""Least-squares GAN, feature-matching and mel losses (HiFi-GAN weights: fm x2, mel x45)."""

from __future__ import annotations

import torch


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(torch.mean((1 - r.float()) ** 2) + torch.mean(f.float() ** 2) for r, f in zip(real, fake, strict=True))


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(torch.mean((1 - f.float()) ** 2) for f in fake)


def feature_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    return sum(
        torch.mean(torch.abs(r.float() - f.float()))
        for rs, fs in zip(real, fake, strict=True)
        for r, f in zip(rs, fs, strict=True)
    )


def discriminator_accuracy(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Share of score cells on the right side of 0.5; pinned at 1.0 or 0.5 means the GAN stopped learning."""
    hits = [torch.cat([(r > 0.5).flatten(), (f < 0.5).flatten()]).float().mean()
            for r, f in zip(real, fake, strict=True)]
    return torch.stack(hits).mean()

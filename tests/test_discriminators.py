"""Discriminators and the GAN losses."""

from __future__ import annotations

import pytest
import torch

from audiogan.vocoder.discriminators import build_discriminators
from audiogan.vocoder.losses import discriminator_accuracy, discriminator_loss, feature_loss, generator_loss


@pytest.fixture(scope="module")
def crops(demo_wave: torch.Tensor) -> torch.Tensor:
    return torch.stack([demo_wave[16000:20096], demo_wave[40000:44096]])


@pytest.mark.parametrize(("names", "count"), [(["mrd"], 3), (["mpd", "mrd"], 8), (["mpd", "msd", "mrd"], 11)])
def test_group_scores_real_and_fake_separately(crops, names, count):
    group = build_discriminators(names).eval()  # eval: spectral norm stops its power iteration
    assert len(group.discs) == count
    fake = crops.flip(-1) * 0.5
    with torch.no_grad():
        (scores_r, feats_r), (scores_f, feats_f) = group(crops, fake)
    assert len(scores_r) == len(scores_f) == len(feats_r) == len(feats_f) == count
    for sr, sf, fr, ff in zip(scores_r, scores_f, feats_r, feats_f, strict=True):
        assert sr.shape == sf.shape and sr.shape[0] == 2
        assert len(fr) == len(ff) > 1
        assert all(a.shape == b.shape for a, b in zip(fr, ff, strict=True))
        assert torch.isfinite(sr).all() and torch.isfinite(sf).all()
    # Real and generated audio go through the same weights but are not mixed up: the real half of the
    # joint pass equals a pass with the real audio alone.
    with torch.no_grad():
        (alone, _), _ = group(crops, crops)
    for a, b in zip(scores_r, alone, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert any((a - b).abs().max() > 1e-6 for a, b in zip(scores_r, scores_f, strict=True))


def test_discriminators_get_gradients(crops):
    group = build_discriminators(["mrd"])
    (scores_r, _), (scores_f, _) = group(crops, crops * 0.1)
    discriminator_loss(scores_r, scores_f).backward()
    grads = [p.grad for p in group.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("names", [["mpd", "bogus"], []])
def test_unknown_or_no_discriminators_are_rejected(names):
    with pytest.raises(ValueError, match=r"unknown or no discriminators .*choose from \['mpd', 'mrd', 'msd'\]") as info:
        build_discriminators(names)
    if names:
        assert "bogus" in str(info.value)


def test_lsgan_losses_are_zero_at_their_optimum():
    ones, zeros = [torch.ones(2, 5), torch.ones(2, 3)], [torch.zeros(2, 5), torch.zeros(2, 3)]
    assert discriminator_loss(ones, zeros).item() == 0.0
    assert generator_loss(ones).item() == 0.0
    # Confused discriminator (both 0.5): each sub-discriminator contributes 0.25 + 0.25.
    halves = [torch.full((2, 5), 0.5), torch.full((2, 3), 0.5)]
    assert discriminator_loss(halves, halves).item() == pytest.approx(1.0)
    assert generator_loss(zeros).item() == pytest.approx(2.0)


def test_feature_loss_is_mean_absolute_difference():
    real = [[torch.zeros(2, 4), torch.ones(3)], [torch.full((5,), 2.0)]]
    same = [[t.clone() for t in group] for group in real]
    assert feature_loss(real, same).item() == 0.0
    shifted = [[t + 0.5 for t in group] for group in real]
    assert feature_loss(real, shifted).item() == pytest.approx(1.5)  # 3 feature maps, 0.5 each


def test_discriminator_accuracy():
    real, fake = [torch.tensor([0.9, 0.8])], [torch.tensor([0.1, 0.2])]
    assert discriminator_accuracy(real, fake).item() == 1.0
    assert discriminator_accuracy(fake, real).item() == 0.0
    assert discriminator_accuracy([torch.tensor([0.9, 0.1])], [torch.tensor([0.1, 0.9])]).item() == 0.5

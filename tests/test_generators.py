"""Generators: HiFi-GAN V1/V2/V3 sizes and shapes, the iSTFT generator and its inverse-STFT head, the factory."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from audiogan.audio import MelConfig, MelSpectrogram
from audiogan.config import load_yaml
from audiogan.train.vocoder_trainer import VocoderTrainingConfig
from audiogan.vocoder import GeneratorConfig, VocoderConfig, build_generator
from audiogan.vocoder.hifigan import HiFiGANConfig, HiFiGANGenerator
from audiogan.vocoder.istft import ISTFT, ISTFTNetGenerator

# Kong et al. 2020, Table 1.
PAPER_PARAMS = {"hifigan_v1": 13.93e6, "hifigan_v2": 0.93e6, "hifigan_v3": 1.46e6}
HOP = 256


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def demo_mel(demo_wave: torch.Tensor) -> torch.Tensor:
    return MelSpectrogram(MelConfig())(demo_wave)


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_hifigan_size_and_shape_match_the_paper(name, configs_dir, demo_mel):
    model_cfg = load_yaml(VocoderTrainingConfig, configs_dir / f"{name}.yaml").model
    assert model_cfg.generator.kind == "hifigan"
    generator = build_generator(model_cfg).eval()
    assert isinstance(generator, HiFiGANGenerator)
    assert generator.hop == HOP
    expected = PAPER_PARAMS[name]
    assert n_params(generator) == pytest.approx(expected, rel=0.005)

    frames = 9
    mel = demo_mel[None, :, 100:100 + frames]
    with torch.no_grad():
        with_wn = generator(mel)
    assert with_wn.shape == (1, frames * HOP)
    assert torch.isfinite(with_wn).all()
    assert with_wn.abs().max() <= 1.0  # tanh output

    generator.remove_weight_norm()
    assert not any("parametrizations" in key for key in generator.state_dict())
    assert n_params(generator) == pytest.approx(expected, rel=0.005)
    with torch.no_grad():
        without_wn = generator(mel)
    # Folding the weight norm into plain weights must not change the function.
    torch.testing.assert_close(without_wn, with_wn, atol=1e-6, rtol=1e-4)


def test_hifigan_maps_a_single_frame_and_a_batch(demo_mel):
    config = VocoderConfig(generator=GeneratorConfig(kind="hifigan", hifigan=HiFiGANConfig(
        upsample_initial_channel=32, resblock=2, upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8],
        resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 2], [2, 6]])))
    generator = build_generator(config).eval()
    with torch.no_grad():
        assert generator(demo_mel[None, :, :1]).shape == (1, HOP)
        batch = torch.stack([demo_mel[:, :20], demo_mel[:, 50:70]])
        out = generator(batch)
        assert out.shape == (2, 20 * HOP)
        # Items in a batch are independent: the second row equals vocoding it alone.
        torch.testing.assert_close(out[1], generator(batch[1:])[0], atol=1e-6, rtol=1e-5)


def test_istft_generator_shapes(tiny_model_config, demo_mel):
    generator = build_generator(tiny_model_config).eval()
    assert isinstance(generator, ISTFTNetGenerator)
    assert generator.context_frames > 0
    with torch.no_grad():
        out = generator(torch.stack([demo_mel[:, :33], demo_mel[:, 200:233]]))
    assert out.shape == (2, 33 * HOP)
    assert torch.isfinite(out).all()
    # Different mels give different audio (the generator actually reads its input).
    assert (out[0] - out[1]).abs().max() > 1e-4


def test_istft_head_inverts_the_analysis_framing(demo_wave):
    """STFT framed exactly as MelSpectrogram frames (reflect pad (n_fft-hop)/2, no centring) -> ISTFT gives the
    audio back sample-exactly, so frame t of a mel and frame t of the generator's output sit on the same samples."""
    n_fft, hop = 1024, HOP
    pad = (n_fft - hop) // 2
    wave = demo_wave[8000:8000 + 40 * hop]
    padded = torch.nn.functional.pad(wave[None, None], (pad, pad), mode="reflect")[0]
    spec = torch.stft(padded, n_fft, hop, window=torch.hann_window(n_fft), center=False, return_complex=True)
    assert spec.shape[-1] == 40
    out = ISTFT(n_fft, hop)(spec)
    assert out.shape == (1, 40 * hop)
    torch.testing.assert_close(out[0], wave, atol=1e-5, rtol=0)


def test_unknown_generator_kind_is_rejected():
    config = VocoderConfig(generator=GeneratorConfig(kind="wavenet"))
    with pytest.raises(ValueError, match="unknown generator kind 'wavenet'"):
        build_generator(config)


def test_hifigan_upsampling_must_match_the_mel_hop():
    config = VocoderConfig(generator=GeneratorConfig(kind="hifigan", hifigan=HiFiGANConfig(
        upsample_rates=[8, 8, 2], upsample_kernel_sizes=[16, 16, 4], upsample_initial_channel=16)))
    with pytest.raises(ValueError, match=r"gives hop 128, mel hop is 256"):
        build_generator(config)


def test_hifigan_rates_and_kernels_must_pair_up():
    hifigan = dataclasses.replace(HiFiGANConfig(), upsample_kernel_sizes=[16, 16, 4], upsample_initial_channel=16)
    with pytest.raises(ValueError, match="equal length"):
        build_generator(VocoderConfig(generator=GeneratorConfig(kind="hifigan", hifigan=hifigan)))

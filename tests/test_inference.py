"""The inference front door: streaming and batching equal whole-utterance vocoding, inputs are checked,
and the bundled vocoder reconstructs real speech."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from audiogan import Vocoder
from audiogan.config import load_yaml
from audiogan.train.vocoder_trainer import VocoderTrainingConfig
from audiogan.vocoder import build_generator

HOP = 256
TOL = 1e-4


def active_hifigan_v2(configs_dir) -> Vocoder:
    """HiFi-GAN V2 with weights scaled to about unit gain per layer, so every frame of context moves the output.

    (Its own init, N(0, 0.01), leaves a random network nearly deaf to distant frames, which would let a
    too-small streaming overlap pass unnoticed.)
    """
    config = load_yaml(VocoderTrainingConfig, configs_dir / "hifigan_v2.yaml").model
    generator = build_generator(config)
    generator.remove_weight_norm()
    with torch.no_grad():
        for m in generator.modules():
            if isinstance(m, nn.ConvTranspose1d):
                nn.init.normal_(m.weight, 0.0, 0.8 / math.sqrt(m.in_channels * m.kernel_size[0] / m.stride[0]))
            elif isinstance(m, nn.Conv1d):
                nn.init.normal_(m.weight, 0.0, 0.8 / math.sqrt(m.in_channels * m.kernel_size[0]))
    return Vocoder(generator, config, device="cpu")


@pytest.fixture(scope="module")
def tiny_vocoder(tiny_model_config) -> Vocoder:
    torch.manual_seed(1)
    return Vocoder(build_generator(tiny_model_config), tiny_model_config, device="cpu")


@pytest.fixture(scope="module")
def v2_vocoder(configs_dir) -> Vocoder:
    torch.manual_seed(2)
    return active_hifigan_v2(configs_dir)


@pytest.fixture(scope="module")
def demo_mel(default_vocoder, demo_wave) -> torch.Tensor:
    return default_vocoder.mel(demo_wave)


def stream_all(vocoder: Vocoder, mel: torch.Tensor, k: int) -> torch.Tensor:
    chunks = list(vocoder.stream(mel, chunk_frames=k))
    assert len(chunks) == math.ceil(mel.shape[-1] / k)
    assert all(c.numel() == min(k, mel.shape[-1] - i * k) * HOP for i, c in enumerate(chunks))
    return torch.cat(chunks)


@pytest.mark.parametrize("k", [1, 7, 64])
def test_stream_equals_whole_tiny_istft(tiny_vocoder, demo_mel, k):
    mel = demo_mel[:, 60:190]
    whole = tiny_vocoder(mel)
    assert whole.shape == (130 * HOP,)
    streamed = stream_all(tiny_vocoder, mel, k)
    assert streamed.shape == whole.shape
    assert (streamed - whole).abs().max() < TOL


@pytest.mark.parametrize("k", [1, 7, 64])
def test_stream_equals_whole_hifigan_v2(v2_vocoder, demo_mel, k):
    mel = demo_mel[:, 100:145]
    whole = v2_vocoder(mel)
    assert whole.std() > 0.05  # the network is awake: the comparison below means something
    streamed = stream_all(v2_vocoder, mel, k)
    assert (streamed - whole).abs().max() < TOL


def test_too_little_stream_overlap_would_be_caught(v2_vocoder, demo_mel):
    """Negative control for the test above: with an overlap of one frame, chunks visibly disagree."""
    mel = demo_mel[:, 100:145]
    whole = v2_vocoder(mel)
    saved = v2_vocoder.context_frames
    try:
        v2_vocoder.context_frames = 1
        streamed = torch.cat(list(v2_vocoder.stream(mel, chunk_frames=7)))
    finally:
        v2_vocoder.context_frames = saved
    assert (streamed - whole).abs().max() > 100 * TOL


@pytest.mark.parametrize("k", [1, 7, 64])
def test_stream_equals_whole_default_vocoder(default_vocoder, demo_mel, k):
    whole = default_vocoder(demo_mel)
    streamed = stream_all(default_vocoder, demo_mel, k)
    assert (streamed - whole).abs().max() < TOL


@pytest.mark.parametrize("which", ["tiny", "v2", "default"])
def test_batch_equals_one_by_one(which, tiny_vocoder, v2_vocoder, default_vocoder, demo_mel):
    vocoder = {"tiny": tiny_vocoder, "v2": v2_vocoder, "default": default_vocoder}[which]
    mels = [demo_mel[:, 30:80], demo_mel[:, 100:161], demo_mel[:, 10:41], demo_mel[:, 200:203], demo_mel[:, 0:1]]
    outs = vocoder.batch(mels)
    assert len(outs) == len(mels)
    for mel, out in zip(mels, outs, strict=True):
        assert out.shape == (mel.shape[-1] * HOP,)
        assert (out - vocoder(mel)).abs().max() < TOL
    assert vocoder.batch([]) == []


def test_batched_tensor_equals_items(tiny_vocoder, demo_mel):
    mels = torch.stack([demo_mel[:, :40], demo_mel[:, 100:140]])
    out = tiny_vocoder(mels)
    assert out.shape == (2, 40 * HOP)
    for i in range(2):
        assert (out[i] - tiny_vocoder(mels[i])).abs().max() < TOL


def test_numpy_mel_equals_tensor_mel(tiny_vocoder, demo_mel):
    mel = demo_mel[:, :20]
    assert torch.equal(tiny_vocoder(mel.numpy()), tiny_vocoder(mel))
    assert torch.equal(tiny_vocoder(mel.numpy().astype(np.float64)), tiny_vocoder(mel))


@pytest.mark.parametrize(("make_bad", "message"), [
    (lambda m: m.index_fill(1, torch.tensor([5]), float("nan")), "NaN or Inf"),
    (lambda m: m.index_fill(1, torch.tensor([5]), float("inf")), "NaN or Inf"),
    (lambda m: m[:64], "64 mel bins, this vocoder expects 80"),
    (lambda m: m[:, :0], "0 frames"),
    (lambda m: m[0], r"mel must be \[n_mels, frames\].*got shape \(20,\)"),
    (lambda m: m[None, None], r"got shape \(1, 1, 80, 20\)"),
])
def test_bad_mels_are_clear_errors(tiny_vocoder, demo_mel, make_bad, message):
    bad = make_bad(demo_mel[:, :20].clone())
    with pytest.raises(ValueError, match=message):
        tiny_vocoder(bad)
    if bad.dim() == 2:
        with pytest.raises(ValueError, match=message):
            list(tiny_vocoder.stream(bad))
        with pytest.raises(ValueError, match=message):
            tiny_vocoder.batch([demo_mel[:, :10], bad])


def test_stream_and_batch_argument_errors(tiny_vocoder, demo_mel):
    with pytest.raises(ValueError, match="chunk_frames must be >= 1"):
        list(tiny_vocoder.stream(demo_mel[:, :10], chunk_frames=0))
    with pytest.raises(ValueError, match="stream"):
        list(tiny_vocoder.stream(demo_mel[None, :, :10]))
    with pytest.raises(ValueError, match="batch"):
        tiny_vocoder.batch([demo_mel[None, :, :10]])


def test_empty_audio_is_a_clear_error(tiny_vocoder):
    with pytest.raises(ValueError, match="empty"):
        tiny_vocoder.mel(torch.zeros(0))


def test_missing_weights_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no vocoder weights at .*absent.*bundled: \['vocoder-16k-vector'\]"):
        Vocoder.load(tmp_path / "absent.safetensors", device="cpu")


def test_weights_of_another_kind_are_refused_by_their_card():
    from audiogan.timbre import TimbreModel

    with pytest.raises(ValueError, match=r"tts-lj-16k\.safetensors is a tts model, not a vocoder model"):
        Vocoder.load("tts-lj-16k", device="cpu")
    with pytest.raises(ValueError, match=r"vocoder-16k-vector\.safetensors is a vocoder model, not a timbre model"):
        TimbreModel.load("vocoder-16k-vector", device="cpu")
    from audiogan.tts import TTS

    with pytest.raises(ValueError, match=r"timbre-gm-16k\.safetensors is a timbre model, not a tts model"):
        TTS.load("timbre-gm-16k", device="cpu")


@pytest.mark.parametrize("kind", ["vocoder", "tts", "timbre"])
def test_weights_that_do_not_fit_their_card_are_named_in_a_line(kind, tmp_path):
    """Another model's weights beside a card (or a card copied beside the wrong file): a short account of
    what differs, not every key of the model."""
    import shutil

    from safetensors.torch import save_file

    from audiogan import weights
    from audiogan.timbre import TimbreModel
    from audiogan.tts import TTS

    load = {"vocoder": lambda p: Vocoder.load(p, device="cpu"), "tts": lambda p: TTS.load(p, device="cpu"),
            "timbre": lambda p: TimbreModel.load(p, device="cpu")}[kind]
    source = weights.resolve("default", kind)
    state = weights.read_weights(source)
    first = next(iter(state))
    for name, tensors, message in [
        ("stranger", {"x": torch.zeros(3)},
         r"tensors: \d+ missing \(.*, \.\.\. \d+ more\), 1 unknown to the model \(x\)$"),
        ("reshaped", {**state, first: torch.zeros(2, 2)},
         rf"tensors: 1 of another shape \({re.escape(first)} \(2, 2\) where"),
    ]:
        path = tmp_path / f"{name}.safetensors"
        save_file(tensors, str(path))
        shutil.copy(source.with_suffix(".json"), path.with_suffix(".json"))
        with pytest.raises(ValueError, match=rf"{name}\.safetensors does not fit the model its card describes; "
                                             rf"{message}") as caught:
            load(path)
        assert len(str(caught.value)) < 400, str(caught.value)


def test_default_vocoder_card(default_vocoder):
    assert default_vocoder.sample_rate == 16000
    assert default_vocoder.hop_length == HOP
    assert default_vocoder.card["name"] == "vocoder-16k-vector"
    params = sum(p.numel() for p in default_vocoder.generator.parameters())
    assert params == default_vocoder.card["parameters"]
    assert not default_vocoder.generator.training


def envelope(wave: torch.Tensor) -> np.ndarray:
    n = wave.numel() // HOP
    return wave[: n * HOP].reshape(n, HOP).pow(2).mean(1).sqrt().numpy()


def test_default_vocoder_copy_synthesizes_the_demo_clip(default_vocoder, demo_wave):
    """Speaker 1688 was held out of the bundled vocoder's training data."""
    out = default_vocoder.copy_synthesize(demo_wave)
    assert out.shape == ((demo_wave.numel() // HOP) * HOP,)
    assert out.abs().max() <= 1.0
    mel_in = default_vocoder.mel(demo_wave)
    mel_out = default_vocoder.mel(out)
    mel_l1 = (mel_out - mel_in).abs().mean().item()
    assert mel_l1 < 1.0

    env_ref, env_out = envelope(demo_wave[: out.numel()]), envelope(out)
    env_corr = np.corrcoef(env_ref, env_out)[0, 1]
    assert env_corr > 0.8
    # Chance levels for comparison: noise of the same level, and the output shifted by a second.
    noise = torch.randn_like(out) * out.std()
    shifted = torch.roll(out, 16000)
    for other in (noise, shifted):
        assert (default_vocoder.mel(other) - mel_in).abs().mean().item() > 2 * mel_l1
        assert np.corrcoef(env_ref, envelope(other))[0, 1] < 0.3
    # Level is kept: output RMS within 3 dB of the input's.
    ratio_db = 20 * np.log10(out.pow(2).mean().sqrt().item() / demo_wave.pow(2).mean().sqrt().item())
    assert abs(ratio_db) < 3.0

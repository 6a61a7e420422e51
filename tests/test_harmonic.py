"""Harmonic-phase iSTFT generator: its phase formula against a real STFT, the magnitude prior and mel
projection, the regression losses, pitch targets, chunked vocoding, and training without a discriminator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from audiogan import Vocoder, weights
from audiogan.audio import MelConfig, MelSpectrogram
from audiogan.config import load_yaml
from audiogan.train import pitch_targets as pitch_module
from audiogan.train.vocoder_trainer import METRIC_NAMES, VocoderTrainer, VocoderTrainingConfig
from audiogan.vocoder import build_generator
from audiogan.vocoder.heads import MelMagnitudePrior, MelProjection, fundamental_phase, harmonic_phase
from audiogan.vocoder.inference import with_phase_iterations
from audiogan.vocoder.istft import ISTFT, FramedSTFT, fast_griffin_lim
from audiogan.vocoder.spectral_losses import anti_wrap, pitch_loss, spectral_losses

REPO = Path(__file__).resolve().parents[1]
HARMONIC = REPO / "configs" / "vocoder" / "tiny_harmonic_test.yaml"
MEL = MelConfig()
SR, HOP, N_FFT = MEL.sample_rate, MEL.hop_length, MEL.n_fft


def harmonic_tone(f0: float, seconds: float = 1.0, harmonics: int = 6) -> torch.Tensor:
    n = torch.arange(int(seconds * SR), dtype=torch.float64)
    wave = sum(torch.cos(2 * math.pi * h * f0 * n / SR) / h for h in range(1, harmonics + 1))
    return (0.2 * wave).float()


def harmonic_config(tmp_path: Path, **train: object) -> VocoderTrainingConfig:
    cfg = load_yaml(VocoderTrainingConfig, HARMONIC)
    cfg.data.cache_dir = str(tmp_path / "cache")
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def step(trainer: VocoderTrainer) -> dict[str, float]:
    stats = trainer.train_step(*trainer.bank.sample(trainer.cfg.train.batch_size, trainer.gen))
    return dict(zip(METRIC_NAMES, stats.tolist(), strict=True))


# ----- the phase formula and the prior ---------------------------------------------------------------------------
def test_fundamental_phase_integrates_a_steady_pitch():
    f0 = torch.full((1, 50), 180.0)
    theta = fundamental_phase(f0, HOP, SR)
    expected = torch.remainder(2 * math.pi * 180.0 * HOP / SR * torch.arange(50, dtype=torch.float64), 2 * math.pi)
    assert theta.dtype == torch.float64
    assert anti_wrap(theta - expected).max() < 1e-9


def test_harmonic_phase_matches_the_stft_of_a_harmonic_tone():
    """Bins at each partial's peak carry h * theta - pi * k, theta being the fundamental's phase at the
    frame centre: the convention of the iSTFT head's framing, checked against torch.stft."""
    f0 = 203.125  # 13 bins of 15.625 Hz: every partial sits on a bin
    wave = harmonic_tone(f0)
    spec = FramedSTFT(N_FFT, HOP)(wave[None])
    frames = spec.shape[-1]
    centres = torch.arange(frames, dtype=torch.float64) * HOP + HOP / 2
    theta = torch.remainder(2 * math.pi * f0 * centres / SR, 2 * math.pi)[None]
    predicted = harmonic_phase(theta, torch.full((1, frames), f0), N_FFT, SR)
    peaks = [round(h * f0 / (SR / N_FFT)) for h in range(1, 7)]
    inner = slice(4, frames - 4)  # away from the reflect-padded ends
    err = anti_wrap(predicted[0, peaks, inner] - torch.angle(spec[0, peaks, inner]))
    assert err.max() < 1e-3


def test_magnitude_prior_returns_a_flat_spectrum_flat():
    prior = MelMagnitudePrior(MEL)
    fb = MelSpectrogram(MEL).filterbank  # [bins, n_mels]
    flat = torch.full((1, N_FFT // 2 + 1, 3), 0.5)
    mel = torch.log(torch.einsum("bft,fm->bmt", flat, fb))
    back = prior(mel)
    assert torch.allclose(back[:, 1:-1], torch.log(flat[:, 1:-1]), atol=1e-4)


def own_mel(log_mag: torch.Tensor) -> torch.Tensor:
    fb = MelSpectrogram(MEL).filterbank
    return torch.log(torch.einsum("bft,fm->bmt", torch.exp(log_mag), fb).clamp(min=MEL.log_floor))


def test_mel_projection_restores_the_mel_of_a_recording_from_a_level_short_guess(demo_wave):
    """A guess 3 dB short with a blurred shape (what log-domain regression gives) gets the recording's
    mel back; a spectrum that already has its mel is a fixed point; uncovered bins are left alone."""
    stft = FramedSTFT(N_FFT, HOP)
    true_log = torch.log(stft(demo_wave[None, : 40 * HOP]).abs().clamp(min=1e-5))
    mel = own_mel(true_log)
    blurred = torch.nn.functional.avg_pool1d(true_log.transpose(1, 2), 5, 1, 2, count_include_pad=False)
    guess = blurred.transpose(1, 2) - math.log(10 ** (3 / 20))
    errors = [(own_mel(MelProjection(MEL, n)(guess, mel)) - mel).abs().mean().item() for n in (0, 1, 2, 8)]
    assert errors[0] > 0.3
    assert errors[1] < errors[0] / 3 and errors[2] < errors[1] and errors[3] < 0.02
    projected = MelProjection(MEL, 2)(guess, mel)
    assert torch.equal(projected[:, 0], guess[:, 0])  # DC: no band covers it
    assert torch.allclose(MelProjection(MEL, 2)(true_log, mel), true_log, atol=1e-3)


# ----- losses ----------------------------------------------------------------------------------------------------
def test_spectral_losses_vanish_for_the_recording_itself_and_grow_with_phase_error():
    stft = FramedSTFT(N_FFT, HOP)
    wave = harmonic_tone(160.0)[None]
    target = stft(wave)
    log_mag, phase = torch.log(target.abs().clamp(min=1e-5)), torch.angle(target)
    exact = spectral_losses(log_mag, phase, target, target)
    assert all(v.item() < 1e-6 for v in exact.values())
    shifted = spectral_losses(log_mag, phase + 3.0, target, target)  # a constant offset is not an error
    assert shifted["phase"].item() < 1e-4
    noisy = spectral_losses(log_mag, phase + torch.randn_like(phase), target, target)
    assert noisy["phase"].item() > 0.5


def test_pitch_loss_counts_voiced_frames_only():
    target = torch.tensor([[[100.0, 200.0, 0.0], [1.0, 1.0, 0.0]]])
    f0 = torch.tensor([[100.0, 100.0, 400.0]])
    assert pitch_loss(f0, target).item() == pytest.approx(math.log(2) / 2, rel=1e-5)


# ----- pitch targets ---------------------------------------------------------------------------------------------
def test_pitch_targets_follow_a_tone_and_are_cached(tmp_path, monkeypatch):
    wave = harmonic_tone(220.0, seconds=1.5).numpy()
    clip = tmp_path / "tone.wav"
    clip.write_bytes(b"stand-in: the cache key reads the name and size")
    [track] = pitch_module.pitch_targets([clip], [wave], MEL, tmp_path / "cache", workers=1)
    assert track.shape == (2, len(wave) // HOP)
    voiced = track[1] > 0.5
    assert voiced[5:-5].all()
    assert np.abs(1200 * np.log2(track[0, voiced] / 220.0)).max() < 30  # cents

    def no_recompute(*_: object) -> None:
        raise AssertionError("a cached pitch track was computed again")

    monkeypatch.setattr(pitch_module, "pitch_track", no_recompute)
    [again] = pitch_module.pitch_targets([clip], [wave], MEL, tmp_path / "cache", workers=1)
    assert np.array_equal(again, track)


# ----- inference -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def harmonic_vocoder() -> Vocoder:
    cfg = load_yaml(VocoderTrainingConfig, HARMONIC).model
    torch.manual_seed(3)
    generator = build_generator(cfg)
    with torch.no_grad():  # an open gate and a lively pitch tracker, so phase and pitch both matter
        generator.out.bias[3 * generator.bins:] = 2.0
        generator.pitch.net[-1].weight.normal_(0.0, 0.05)
    return Vocoder(generator, cfg, device="cpu")


@pytest.mark.parametrize("k", [1, 7, 64])
def test_harmonic_stream_and_batch_equal_the_whole(harmonic_vocoder, demo_wave, k):
    mel = harmonic_vocoder.mel(demo_wave)
    whole = harmonic_vocoder(mel)
    assert whole.shape == (mel.shape[-1] * HOP,)
    streamed = torch.cat(list(harmonic_vocoder.stream(mel, chunk_frames=k)))
    assert (streamed - whole).abs().max() < 1e-4
    short, full = harmonic_vocoder.batch([mel[:, :90], mel])
    assert (full - whole).abs().max() < 1e-4
    assert (short - harmonic_vocoder(mel[:, :90])).abs().max() < 1e-4


def test_phase_parts_are_what_the_spectrum_mixes(harmonic_vocoder, demo_wave):
    g = harmonic_vocoder.generator
    with torch.inference_mode():
        x = g.condition(harmonic_vocoder.mel(demo_wave)[None])
        log_mag, phase = g.spectrum(x)
        same_mag, harm, free, gate = g.phase_parts(x)
    assert torch.equal(log_mag, same_mag) and gate.min() >= 0 and gate.max() <= 1
    mixed = torch.polar(gate, harm) + torch.polar(1 - gate, free)
    assert (torch.polar(torch.ones_like(phase), phase) - mixed / mixed.abs()).abs().max() < 1e-4
    # the open gate of this fixture: the harmonic phase carries most of the mix here
    assert float(gate.mean()) > 0.8
    direct = build_generator(load_yaml(VocoderTrainingConfig, REPO / "configs" / "vocoder" / "tiny_test.yaml").model)
    with pytest.raises(ValueError, match="harmonic-phase generator"):
        direct.phase_parts(torch.zeros(1, MEL.n_mels, 8))


def test_chunks_need_the_whole_utterance_phase(harmonic_vocoder, demo_wave):
    """Vocoding a chunk's mel on its own restarts the fundamental's phase: the reason chunks slice
    ``condition(mel)`` instead."""
    mel = harmonic_vocoder.mel(demo_wave)
    whole = harmonic_vocoder(mel)
    alone = harmonic_vocoder(mel[:, 100:200])
    assert (alone[40 * HOP:60 * HOP] - whole[140 * HOP:160 * HOP]).abs().max() > 1e-3
    cond = harmonic_vocoder.condition(mel)
    assert harmonic_vocoder.needs_conditioning and cond.shape == (MEL.n_mels + 2, mel.shape[-1])
    [sliced] = harmonic_vocoder.generate([cond[:, 100 - 40:200 + 40]])
    assert (sliced[80 * HOP:100 * HOP] - whole[140 * HOP:160 * HOP]).abs().max() < 1e-4


def test_fast_griffin_lim_restores_a_scrambled_phase_and_zero_iterations_change_nothing(demo_wave):
    stft, istft = FramedSTFT(N_FFT, HOP), ISTFT(N_FFT, HOP)
    wave = demo_wave[None, : 60 * HOP]
    spec = stft(wave)
    mag, phase = spec.abs(), torch.angle(spec)
    torch.manual_seed(0)
    noisy = phase + 0.8 * torch.randn_like(phase)

    def inconsistency(out: torch.Tensor) -> float:  # how far the result's magnitude is from the one asked for
        return ((stft(out).abs() - mag).norm() / mag.norm()).item()

    assert torch.allclose(fast_griffin_lim(mag, noisy, stft, istft, 0), istft(torch.polar(mag, noisy)))
    errors = [inconsistency(fast_griffin_lim(mag, noisy, stft, istft, n)) for n in (0, 2, 8)]
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < errors[0] / 2


@pytest.fixture(scope="module")
def refined_vocoder(harmonic_vocoder) -> Vocoder:
    cfg = with_phase_iterations(harmonic_vocoder.config, 3)
    generator = build_generator(cfg)
    generator.load_state_dict(harmonic_vocoder.generator.state_dict())
    return Vocoder(generator, cfg, device="cpu")


def test_phase_refinement_changes_the_output_streams_exactly_and_is_skipped_in_training(
        refined_vocoder, harmonic_vocoder, demo_wave):
    mel = refined_vocoder.mel(demo_wave)
    whole = refined_vocoder(mel)
    assert refined_vocoder.context_frames == harmonic_vocoder.context_frames + 3 * N_FFT // HOP
    assert (whole - harmonic_vocoder(mel)).abs().max() > 1e-3
    for k in (1, 7):
        streamed = torch.cat(list(refined_vocoder.stream(mel, chunk_frames=k)))
        assert (streamed - whole).abs().max() < 1e-4
    short, full = refined_vocoder.batch([mel[:, :90], mel])
    assert (full - whole).abs().max() < 1e-4
    assert (short - refined_vocoder(mel[:, :90])).abs().max() < 1e-4
    generator = refined_vocoder.generator
    with torch.no_grad():
        generator.train()
        try:
            trained = generator(mel[None])
        finally:
            generator.eval()
        assert torch.allclose(trained, harmonic_vocoder.generator(mel[None]), atol=1e-5)


def test_phase_iterations_override_at_load_and_its_bad_values():
    refined = Vocoder.load("default", device="cpu", phase_iterations=2)
    assert refined.config.generator.istft.phase_iterations == 2
    assert refined.context_frames == Vocoder.load("default", device="cpu").context_frames + 2 * N_FFT // HOP
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match="phase_iterations must be a whole number >= 0"):
            Vocoder.load("default", device="cpu", phase_iterations=bad)
    hifigan = load_yaml(VocoderTrainingConfig, REPO / "configs" / "vocoder" / "hifigan_v3.yaml").model
    with pytest.raises(ValueError, match="needs an iSTFT generator"):
        with_phase_iterations(hifigan, 4)
    assert with_phase_iterations(hifigan, 0) is hifigan


# ----- training --------------------------------------------------------------------------------------------------
def test_regression_phase_trains_the_generator_only_then_the_discriminator_joins(tmp_path, demo_data_dir):
    cfg = harmonic_config(tmp_path, adversarial_start=12, disc_head_start_steps=2, gen_ramp_steps=2)
    torch.manual_seed(0)
    trainer = VocoderTrainer(cfg, [str(demo_data_dir)], tmp_path / "run", device="cpu")
    assert trainer.head_start_until == 14
    d0 = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    g0 = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    rows = [step(trainer) for _ in range(12)]
    assert all(r["d_loss"] == r["g_adv"] == 0.0 for r in rows)
    assert all(torch.equal(d0[k], v) for k, v in trainer.D.state_dict().items())
    assert any(not torch.equal(g0[k], v) for k, v in trainer.G.state_dict().items() if k.startswith("pitch."))
    first, last = rows[0], rows[-1]
    assert last["pitch"] < first["pitch"]
    assert last["mel_l1"] + last["phase"] < first["mel_l1"] + first["phase"]
    joined = [step(trainer) for _ in range(4)]
    assert all(r["d_loss"] > 0 for r in joined)
    assert joined[0]["g_adv"] == 0.0 and joined[-1]["g_adv"] > 0  # head start, then the generator too


def test_harmonic_generator_without_pitch_weight_is_refused(tmp_path, demo_data_dir):
    cfg = harmonic_config(tmp_path, pitch_weight=0.0)
    with pytest.raises(ValueError, match="pitch_weight"):
        VocoderTrainer(cfg, [str(demo_data_dir)], tmp_path / "run", device="cpu")


def test_warm_start_copies_the_shared_backbone_and_the_card_says_so(trained_tiny, tmp_path, demo_data_dir):
    exported = trained_tiny.trainer.export(tmp_path / "direct" / "tiny.safetensors")
    cfg = harmonic_config(tmp_path, max_steps=3, log_every=3)
    trainer = VocoderTrainer(cfg, [str(demo_data_dir)], tmp_path / "run", device="cpu", warm_start=str(exported))
    assert trainer.step == 0
    source = weights.read_weights(exported)
    own = trainer.G.state_dict()
    assert torch.equal(own["blocks.0.dwconv.weight"], source["blocks.0.dwconv.weight"].float())
    assert own["out.weight"].shape != source["out.weight"].shape  # the new heads start fresh
    assert "out.weight" in trainer.lineage["warm_start"]["fresh_tensors"]
    trainer.fit()
    card = json.loads((tmp_path / "run" / "tiny-harmonic.json").read_text())
    assert card["training"]["warm_start"]["from"] == "tiny"
    assert card["training"]["warm_start"]["steps"] == trained_tiny.trainer.step
    loaded = Vocoder.load(tmp_path / "run" / "tiny-harmonic.safetensors", device="cpu")
    assert torch.isfinite(loaded(torch.full((80, 20), -5.0))).all()


def test_warm_start_from_an_unrelated_model_is_refused(tmp_path, demo_data_dir, trained_tiny):
    exported = trained_tiny.trainer.export(tmp_path / "tiny.safetensors")
    cfg = harmonic_config(tmp_path)
    cfg.model.generator.istft.dim = 48
    cfg.model.generator.istft.intermediate_dim = 96
    with pytest.raises(ValueError, match="shares no tensor"):
        VocoderTrainer(cfg, [str(demo_data_dir)], tmp_path / "run", device="cpu", warm_start=str(exported))


# ----- the vector head: the harmonic head's free phase alone -----------------------------------------------------
def vector_config(tmp_path: Path, **train: object) -> VocoderTrainingConfig:
    cfg = harmonic_config(tmp_path, pitch_weight=0.0, **train)
    cfg.model.generator.istft.phase = "vector"
    cfg.name = "tiny-vector"
    return cfg


def test_vector_head_needs_no_conditioning_pass_and_streams_exactly(tmp_path, demo_wave):
    cfg = vector_config(tmp_path).model
    torch.manual_seed(5)
    vocoder = Vocoder(build_generator(cfg), cfg, device="cpu")
    assert vocoder.generator.pitch is None and not vocoder.needs_conditioning
    mel = vocoder.mel(demo_wave)
    assert torch.equal(vocoder.condition(mel), mel)
    whole = vocoder(mel)
    for k in (1, 64):
        streamed = torch.cat(list(vocoder.stream(mel, chunk_frames=k)))
        assert (streamed - whole).abs().max() < 1e-4
    # a chunk's mel vocoded on its own matches the whole away from its edges: no phase integrated from frame 0
    alone = vocoder(mel[:, 100:200])
    assert (alone[40 * HOP:60 * HOP] - whole[140 * HOP:160 * HOP]).abs().max() < 1e-4


def test_vector_head_warm_started_from_a_harmonic_export_keeps_its_free_phase(tmp_path, demo_data_dir, demo_wave):
    harmonic = VocoderTrainer(harmonic_config(tmp_path, max_steps=2, log_every=2), [str(demo_data_dir)],
                              tmp_path / "harmonic", device="cpu")
    harmonic.fit()
    exported = harmonic.export(tmp_path / "harmonic" / "tiny-harmonic.safetensors")
    vector = VocoderTrainer(vector_config(tmp_path), [str(demo_data_dir)], tmp_path / "vector", device="cpu",
                            warm_start=str(exported))
    assert vector.lineage["warm_start"]["fresh_tensors"] == []  # the gate and pitch tracker are dropped, nothing is new
    source = Vocoder.load(exported, device="cpu").generator.eval()
    target = vector.G.eval()
    mel = MelSpectrogram(MEL)(demo_wave[None, : 80 * HOP])
    with torch.inference_mode():
        log_mag, _, free, _ = source.phase_parts(source.condition(mel))
        same_mag, phase = target.spectrum(target.condition(mel))
    assert (same_mag - log_mag).abs().max() < 1e-5
    assert (torch.polar(torch.ones_like(phase), phase) - torch.polar(torch.ones_like(free), free)).abs().max() < 1e-4


def test_an_unknown_phase_head_is_refused(tmp_path):
    cfg = vector_config(tmp_path).model
    cfg.generator.istft.phase = "complex"
    with pytest.raises(ValueError, match="unknown phase head 'complex'"):
        build_generator(cfg)

"""Timbre: soundfont note data, the IF representation, a tiny note GAN trained on CPU, interpolation."""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiogan.timbre.spectral import NoteSpectrogram, SpectralConfig, spectral_convergence

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = (0, 40, 73)  # piano, violin, flute


def test_rendered_notes_are_at_the_right_pitch(notes_dir):
    import librosa

    examples = json.loads((notes_dir / "examples.json").read_text())
    assert len(examples) == 3 * 5 * 2
    row = examples["string_synthetic_040-060-127"]
    assert (row["instrument_str"], row["instrument_family_str"], row["pitch"]) == ("violin", "string", 60)
    for program in PROGRAMS:
        name = next(k for k, v in examples.items() if v["instrument"] == program and v["pitch"] == 60
                    and v["velocity"] == 127)
        audio, rate = sf.read(notes_dir / "audio" / f"{name}.wav", dtype="float32")
        assert rate == 16000 and len(audio) == 16000 and 0.5 < np.abs(audio).max() <= 0.9 + 1e-3
        f0, voiced, _ = librosa.pyin(audio[:8000], fmin=60, fmax=2000, sr=16000, frame_length=1024)
        cents = 1200 * np.log2(np.nanmedian(f0[voiced]) / 261.63)
        assert abs(cents) < 50, (program, cents)


def test_note_folders_may_hold_flac(notes_dir, tmp_path):
    from audiogan.timbre.notes_data import load_examples

    shutil.copytree(notes_dir, tmp_path / "notes")
    wav = next((tmp_path / "notes" / "audio").glob("*.wav"))
    audio, rate = sf.read(wav, dtype="int16")
    sf.write(wav.with_suffix(".flac"), audio, rate)
    wav.unlink()
    records = load_examples(tmp_path / "notes")
    assert len(records) == 3 * 5 * 2 and wav.with_suffix(".flac") in {r.path for r in records}


def test_note_listings_that_do_not_fit_are_named(notes_dir, tmp_path, caplog):
    from audiogan.timbre.notes_data import load_examples

    shutil.copytree(notes_dir, tmp_path / "notes")
    listing = tmp_path / "notes" / "examples.json"
    notes = json.loads(listing.read_text())
    first, second = sorted(notes)[:2]
    (tmp_path / "notes" / "audio" / f"{first}.wav").unlink()
    with caplog.at_level(logging.WARNING, "audiogan.timbre.notes_data"):
        assert len(load_examples(tmp_path / "notes")) == len(notes) - 1
    assert f"1 listed note(s) have no audio in {tmp_path / 'notes' / 'audio'}, skipped: {first}" in caplog.text
    for change, message in (({"pitch": "C4"}, rf"note '{second}': 'C4' is not a MIDI number"),
                            ({"velocity": 60.5}, rf"note '{second}': 60.5 is not a MIDI number"),
                            ({"instrument_str": None}, rf"note '{second}' has no 'instrument_str'")):
        edited = dict(notes[second], **change)
        if change.get("instrument_str", "") is None:
            del edited["instrument_str"]
        listing.write_text(json.dumps({**notes, second: edited}))
        with pytest.raises(ValueError, match=r"examples\.json: " + message):
            load_examples(tmp_path / "notes")
    listing.write_text(json.dumps(notes)[:-20])
    with pytest.raises(ValueError, match=r"examples\.json is not valid JSON"):
        load_examples(tmp_path / "notes")


def test_silent_and_unreadable_notes_are_left_out_of_training(notes_dir, tmp_path, caplog):
    from audiogan.config import load_yaml
    from audiogan.train.timbre_trainer import TimbreTrainer, TimbreTrainingConfig

    shutil.copytree(notes_dir, tmp_path / "notes")
    silent, broken = sorted((tmp_path / "notes" / "audio").glob("*.wav"))[:2]
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    broken.write_bytes(b"RIFF not really")
    cfg = load_yaml(TimbreTrainingConfig, REPO / "configs" / "timbre" / "tiny_test.yaml")
    with caplog.at_level(logging.WARNING):
        trainer = TimbreTrainer(cfg, [str(tmp_path / "notes")], tmp_path / "run", device="cpu")
    assert len(trainer.records) == len(trainer.specs) == len(trainer.velocity) == 3 * 5 * 2 - 2
    assert {silent, broken}.isdisjoint(r.path for r in trainer.records)
    assert f"skipping 1 silent file(s) (peak below -60 dBFS): {silent}" in caplog.text
    assert f"skipping {broken}: cannot read audio" in caplog.text


def test_velocity_layers_share_one_gain_per_instrument(notes_dir):
    loud = [np.abs(sf.read(p)[0]).max() for p in sorted((notes_dir / "audio").glob("string_*-127.wav"))]
    assert max(loud) == pytest.approx(0.9, abs=1e-3)  # the layer's loudest note reaches the peak, not each note
    assert min(loud) < 0.89


def violin_note(notes_dir: Path, cfg: SpectralConfig) -> torch.Tensor:
    """The fixture's violin at MIDI 60, velocity 127, padded to cfg's length: [1, samples]."""
    audio, _ = sf.read(next((notes_dir / "audio").glob("string_*-060-127.wav")), dtype="float32")
    return torch.nn.functional.pad(torch.from_numpy(audio), (0, cfg.samples - len(audio)))[None]


def a3_tone(cfg: SpectralConfig) -> torch.Tensor:
    """Five harmonics of MIDI 57 (A3, 220 Hz) at 1/h: [1, samples]."""
    t = torch.arange(cfg.samples) / cfg.sample_rate
    return sum(torch.sin(2 * torch.pi * h * 220.0 * t) / h for h in range(1, 6))[None]


def check_harmonic_generator(cfg: SpectralConfig) -> None:
    from audiogan.timbre.model import Generator, NoteGANConfig

    G = Generator(NoteGANConfig(channels=[32, 16, 8], harmonic_prior=True, instruments=["a"], spectral=cfg))
    out = G(torch.randn(2, 256), torch.tensor([30, 80]), G.instrument(torch.tensor([0, 0])))
    assert out.shape == (2, 2, 512, 128) and out.abs().max() <= 1


@pytest.mark.parametrize("cfg", [SpectralConfig(), SpectralConfig(hop_length=512, frames=128)],
                         ids=["4x overlap", "2x overlap"])
def test_if_round_trip_reconstructs_a_real_note(notes_dir, cfg):
    wave = violin_note(notes_dir, cfg)
    spec = NoteSpectrogram(cfg)
    features = spec.encode(wave)
    assert features.shape == (1, 2, 512, cfg.frames) and features[:, 1].abs().max() <= 1.0
    assert spectral_convergence(wave[0], spec.decode(features)[0], cfg) < 0.05


def test_if_mel_rows_undo_exactly_where_they_interpolate():
    """Below about 2.5 kHz IF-Mel rows interpolate between linear bins and the pseudo-inverse gives the
    bins back; a phase advance shared by neighbouring bins (one partial's) comes back wherever it is."""
    from audiogan.timbre.spectral import MelWarp

    cfg = SpectralConfig(hop_length=512, frames=128, frequency_scale="mel")
    warp = MelWarp(cfg)
    mag = torch.rand(2, cfg.bins, 4, generator=torch.Generator().manual_seed(0))
    mag[:, 150:] = 0  # bin 150 = 2.3 kHz
    advance = torch.full_like(mag, 3.1)
    mel_mag, mel_advance = warp.to_mel(mag, advance)
    assert mel_mag.shape == mag.shape
    assert (mel_mag[:, : cfg.bins // 2] > 0).float().mean() > 0.99  # more than half the rows lie below 2.3 kHz
    back_mag, back_advance = warp.to_linear(mel_mag, mel_advance)
    assert torch.allclose(back_mag, mag, atol=1e-3)
    assert torch.allclose(back_advance, advance, atol=1e-4)


def test_if_mel_round_trip_keeps_a_real_note(notes_dir):
    cfg = SpectralConfig(hop_length=512, frames=128, frequency_scale="mel")
    wave = violin_note(notes_dir, cfg)
    spec = NoteSpectrogram(cfg)
    features = spec.encode(wave)
    assert features.shape == (1, 2, 512, 128) and features[:, 1].abs().max() <= 1.0
    # Lossy only above 2.5 kHz, where rows average bins (measured: 0.069 bin by bin, 0.075 locked)
    for lock in (False, True):
        assert spectral_convergence(wave[0], spec.decode(features, lock_phase=lock)[0], cfg) < 0.1
    with pytest.raises(ValueError, match="frequency_scale"):
        SpectralConfig(frequency_scale="bark")


def test_peaks_are_found_by_climbing():
    from audiogan.timbre.spectral import peak_of_each_bin

    log_mag = torch.tensor([[[0.0, 1, 3, 2, 0, 5, 4]]])
    assert peak_of_each_bin(log_mag).tolist() == [[[2, 2, 2, 2, 5, 5, 5]]]


def test_phase_locking_makes_a_partials_bins_agree():
    """A slightly detuned harmonic tone whose IF is right at each partial's peak and scrambled on the bins
    around it, as a generator's is: integrated bin by bin it beats; locked to the peaks it is the tone."""
    cfg = SpectralConfig(hop_length=512, frames=128)
    t = torch.arange(cfg.samples) / cfg.sample_rate
    envelope = torch.clamp(t / 0.05, max=1) * torch.clamp((3.5 - t) / 0.3, 0, 1)
    wave = (sum(torch.sin(2 * torch.pi * 221.3 * k * t + k) / k for k in range(1, 9)) * envelope)[None] * 0.2
    spec = NoteSpectrogram(cfg)
    features = spec.encode(wave)
    peaks = (features[:, 0] >= features[:, 0].roll(1, 1)) & (features[:, 0] > features[:, 0].roll(-1, 1))
    noise = torch.rand(features[:, 1].shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scrambled = features.clone()
    scrambled[:, 1] = torch.where(peaks, features[:, 1], noise)
    # measured: 0.027 locked from the true IF or the scrambled one; 0.47 scrambled and integrated bin by bin
    assert spectral_convergence(wave[0], spec.decode(features, lock_phase=True)[0], cfg) < 0.05
    assert spectral_convergence(wave[0], spec.decode(scrambled)[0], cfg) > 0.3
    assert spectral_convergence(wave[0], spec.decode(scrambled, lock_phase=True)[0], cfg) < 0.05


def test_harmonic_template_matches_a_synthetic_note():
    from audiogan.timbre.model import HarmonicTemplate

    cfg = SpectralConfig(hop_length=512, frames=128)
    features = NoteSpectrogram(cfg).encode(a3_tone(cfg))[0]
    comb, advance = HarmonicTemplate(cfg)(torch.tensor([57]))
    near = [round(h * 220.0 * cfg.n_fft / cfg.sample_rate) for h in range(1, 6)]
    loudest = torch.tensor([k - 2 + int(features[0, k - 2:k + 3, 64].argmax()) for k in near])  # each partial's peak
    assert (comb[0, loudest, 0] > 0.6).all()
    error = (features[1, loudest, 20:100] - advance[0, loudest]).abs()
    assert torch.minimum(error, 2 - error).max() < 0.02  # IF is in units of pi and wraps at +-1
    check_harmonic_generator(cfg)


def test_harmonic_template_follows_an_if_mel_note():
    from audiogan.timbre.model import Generator, HarmonicTemplate, NoteGANConfig

    cfg = SpectralConfig(hop_length=512, frames=128, frequency_scale="mel")
    features = NoteSpectrogram(cfg).encode(a3_tone(cfg))[0]
    comb, advance = HarmonicTemplate(cfg)(torch.tensor([57]))
    loud = features[0, :, 64] > features[0, :, 64].max() - 0.15  # rows within 14 dB of the loudest
    assert loud.sum() >= 10  # a partial spans several mel rows
    assert (comb[0, loud, 0] > 0.25).all()
    error = (features[1, loud, 20:100] - advance[0, loud]).abs()
    assert torch.minimum(error, 2 - error).max() < 0.02
    check_harmonic_generator(cfg)
    G = Generator(NoteGANConfig(channels=[32, 16, 8], harmonic_prior=True, instruments=["a"], spectral=cfg))
    assert not any("warp" in k for k in G.state_dict())  # derived from the config, not stored in weights


def test_tiny_gan_trains_with_finite_losses(tiny_timbre):
    path, rows, before, after = tiny_timbre
    assert len(rows) == 6 and all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
    assert (after - before).abs().mean() > 1e-3, "training must change the generator's output"
    assert "diversity_ratio" in rows[-1] and rows[-1]["step"] == 30
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["config"]["instruments"] == ["acoustic_grand_piano", "flute", "violin"]
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = event_accumulator.EventAccumulator(str(path.parent / "tensorboard"),
                                                size_guidance={"audio": 0, "images": 0}).Reload()
    heard = [t for t in events.Tags()["audio"] if t.startswith("notes/")]
    seen = [t for t in events.Tags()["images"] if t.startswith("notes/")]
    assert len(heard) == 4 and len(seen) == 4, events.Tags()
    clip = events.Audio(heard[0])[-1]
    assert clip.sample_rate == 16000 and clip.length_frames == 64 * 128  # the tiny recipe: 64 frames of 128


def test_reconstruction_warm_up_trains_the_generator_alone(notes_dir, tmp_path):
    from audiogan.config import load_yaml
    from audiogan.train.timbre_trainer import TimbreTrainer, TimbreTrainingConfig

    cfg = load_yaml(TimbreTrainingConfig, REPO / "configs" / "timbre" / "tiny_test.yaml")
    cfg.train.reconstruction_weight, cfg.train.adversarial_start = 10.0, 5
    trainer = TimbreTrainer(cfg, [str(notes_dir)], tmp_path, device="cpu")
    d_start = [p.detach().clone() for p in trainer.D.parameters()]
    g_start = [p.detach().clone() for p in trainer.G.parameters()]
    warm = [trainer.train_step() for _ in range(5)]
    # stats: d_loss, g_loss, d accuracies, pitch accuracies, grad norms, reconstruction
    assert all(torch.isnan(r[0]) and torch.isfinite(r[1]) and torch.isfinite(r[-1]) for r in warm)
    assert all(torch.equal(a, b) for a, b in zip(d_start, trainer.D.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(g_start, trainer.G.parameters(), strict=True))
    joined = trainer.train_step()
    assert torch.isfinite(joined).all()
    assert not all(torch.equal(a, b) for a, b in zip(d_start, trainer.D.parameters(), strict=True))
    cfg.train.reconstruction_weight = 0.0
    with pytest.raises(ValueError, match="adversarial_start needs"):
        TimbreTrainer(cfg, [str(notes_dir)], tmp_path, device="cpu")


def test_resume_reproduces_an_uninterrupted_run(notes_dir, tmp_path):
    """Split at a step where only the first half ends (and runs its end-of-run checks), then resumed: the
    same losses and the same weights as one run; a resume takes the recipe's learning rate."""
    from audiogan.config import load_yaml
    from audiogan.train.timbre_trainer import STATS, TimbreTrainer, TimbreTrainingConfig

    def run(max_steps: int, name: str, resume: str | None = None, lr: float = 1e-3) -> TimbreTrainer:
        cfg = load_yaml(TimbreTrainingConfig, REPO / "configs" / "timbre" / "tiny_test.yaml")
        cfg.train.reconstruction_weight, cfg.train.adversarial_start = 10.0, 8
        cfg.train.max_steps, cfg.train.learning_rate = max_steps, lr
        trainer = TimbreTrainer(cfg, [str(notes_dir)], tmp_path / name, device="cpu", resume=resume)
        trainer.fit()
        return trainer

    def losses(name: str) -> dict[int, list[float]]:
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: [r.get(k) for k in STATS] for r in rows}  # NaN figures are left out of a row

    whole = run(20, "whole")
    run(15, "first")
    second = run(20, "second", resume=str(tmp_path / "first" / "checkpoint.pt"))
    split, expected = {**losses("first"), **losses("second")}, losses("whole")
    assert sorted(split) == sorted(expected) == [5, 10, 15, 20]
    assert split == expected
    for a, b in [(whole.G, second.G), (whole.D, second.D)]:
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    slower = run(16, "slower", resume=str(tmp_path / "first" / "checkpoint.pt"), lr=1e-4)
    assert {g["lr"] for g in [*slower.opt_g.param_groups, *slower.opt_d.param_groups]} == {1e-4}


def test_an_if_mel_generator_trains_and_decodes(notes_dir, tmp_path):
    from audiogan.config import load_yaml, override_recipe
    from audiogan.timbre import TimbreModel
    from audiogan.train.timbre_trainer import TimbreTrainer, TimbreTrainingConfig

    cfg = load_yaml(TimbreTrainingConfig, REPO / "configs" / "timbre" / "tiny_test.yaml")
    cfg = override_recipe(cfg, "model.spectral.frequency_scale=mel")
    cfg = override_recipe(cfg, "reconstruction_weight=10")
    cfg.train.max_steps, cfg.train.adversarial_start = 6, 1_000_000
    trainer = TimbreTrainer(cfg, [str(notes_dir)], tmp_path, device="cpu")
    first = float(trainer.train_step()[-1])
    trainer.fit()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["reconstruction"]) for r in rows) and rows[-1]["reconstruction"] != first
    model = TimbreModel.load(tmp_path / "timbre-tiny.safetensors", device="cpu")
    assert model.cfg.spectral.frequency_scale == "mel"
    audio = model.note(60, instrument="violin")
    assert audio.shape == (cfg.model.spectral.samples,) and np.isfinite(audio).all() and np.abs(audio).max() > 0.1
    cfg = override_recipe(cfg, "mel_weight=1.0")
    with pytest.raises(ValueError, match="mel_weight is for linear"):
        TimbreTrainer(cfg, [str(notes_dir)], tmp_path, device="cpu")


def test_a_linear_export_continues_on_the_mel_axis(tiny_timbre, notes_dir, tmp_path):
    from audiogan.config import load_yaml, override_recipe
    from audiogan.timbre import TimbreModel
    from audiogan.train.timbre_trainer import TimbreTrainer, TimbreTrainingConfig, load_generator

    cfg = load_yaml(TimbreTrainingConfig, REPO / "configs" / "timbre" / "tiny_test.yaml")
    cfg = override_recipe(cfg, "model.spectral.frequency_scale=mel")
    cfg.train.max_steps, cfg.train.adversarial_start, cfg.train.reconstruction_weight = 33, 1_000_000, 10.0
    trainer = TimbreTrainer(cfg, [str(notes_dir)], tmp_path, device="cpu", init_generator=str(tiny_timbre[0]))
    G, card = load_generator(tiny_timbre[0])
    assert card["config"]["spectral"].get("frequency_scale", "linear") == "linear"
    assert all(torch.equal(a, b.float()) for a, b in zip(trainer.G.state_dict().values(), G.state_dict().values(),
                                                         strict=True))
    trainer.fit()
    model = TimbreModel.load(tmp_path / "timbre-tiny.safetensors", device="cpu")
    assert model.cfg.spectral.frequency_scale == "mel"
    lineage = json.loads((tmp_path / "timbre-tiny.json").read_text())["training"]["continued_from"]
    assert lineage["frequency_scale"] == "linear" and lineage["steps"] == 30
    assert np.isfinite(model.note(60, instrument="violin")).all()


def test_reconstruction_target_weighs_if_and_mel_as_configured():
    from audiogan.train.timbre_trainer import note_mel_filters, reconstruction_loss

    cfg = SpectralConfig(hop_length=512, frames=128)
    real = torch.rand(2, 2, cfg.bins, cfg.frames) * 2 - 1
    quieter, detuned = real.clone(), real.clone()
    quieter[:, 0, :40] -= 0.1  # the lowest 40 bins (0-625 Hz) 8 dB down: few bins, many mel bands
    detuned[:, 1] = torch.remainder(detuned[:, 1] + 1.5, 2) - 1
    fb = note_mel_filters(cfg)
    assert fb.shape == (cfg.bins, 64)
    assert float(reconstruction_loss(real, real, cfg.log_scale, mel_filters=fb, mel_weight=1.0)) == 0.0
    plain = float(reconstruction_loss(quieter, real, cfg.log_scale))
    assert float(reconstruction_loss(quieter, real, cfg.log_scale, mel_filters=fb, mel_weight=1.0)) > 2 * plain
    assert float(reconstruction_loss(detuned, real, cfg.log_scale, if_weight=0.25)) == pytest.approx(
        0.25 * float(reconstruction_loss(detuned, real, cfg.log_scale)))


def test_init_generator_continues_an_export_with_a_fresh_discriminator(tiny_timbre, notes_dir, tmp_path):
    from audiogan.config import load_yaml
    from audiogan.train.timbre_trainer import TimbreTrainer, TimbreTrainingConfig, load_generator

    exported = tiny_timbre[0]
    cfg = load_yaml(TimbreTrainingConfig, REPO / "configs" / "timbre" / "tiny_test.yaml")
    cfg.train.disc_head_start_steps, cfg.train.max_steps = 3, 36
    trainer = TimbreTrainer(cfg, [str(notes_dir)], tmp_path, device="cpu", init_generator=str(exported))
    G, card = load_generator(exported)
    assert trainer.step == card["training"]["steps"] == 30
    assert all(torch.equal(a, b.float()) for a, b in zip(trainer.G.state_dict().values(), G.state_dict().values(),
                                                         strict=True))
    g_start = [p.detach().clone() for p in trainer.G.parameters()]
    d_start = [p.detach().clone() for p in trainer.D.parameters()]
    head_start = [trainer.train_step() for _ in range(3)]
    # the discriminator learns, the generator waits: its gradient norm is not even computed
    assert all(torch.isfinite(r[0]) and torch.isnan(r[6]) for r in head_start)
    assert all(torch.equal(a, b) for a, b in zip(g_start, trainer.G.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(d_start, trainer.D.parameters(), strict=True))
    joined = trainer.train_step()
    assert torch.isfinite(joined).all()
    assert not all(torch.equal(a, b) for a, b in zip(g_start, trainer.G.parameters(), strict=True))
    trainer.fit()
    again = json.loads((tmp_path / "timbre-tiny.json").read_text())
    assert again["training"]["steps"] == 36
    # carried on, not restarted (the card rounds to 0.01 minute, and this tiny run takes about that)
    assert again["training"]["device_minutes"] >= card["training"]["device_minutes"] > 0
    assert again["training"]["continued_from"]["steps"] == 30
    assert again["training"]["continued_from"]["recipe"] == card["training"]["recipe"]
    cfg.model.channels = [16, 8, 8]
    with pytest.raises(ValueError, match="different model config"):
        TimbreTrainer(cfg, [str(notes_dir)], tmp_path / "other", device="cpu", init_generator=str(exported))


def test_velocity_input_is_added_to_an_export_at_zero_and_learned(tiny_timbre, notes_dir, tmp_path):
    from audiogan.config import load_yaml
    from audiogan.timbre import TimbreModel
    from audiogan.train.timbre_trainer import TimbreTrainer, TimbreTrainingConfig

    cfg = load_yaml(TimbreTrainingConfig, REPO / "configs" / "timbre" / "tiny_test.yaml")
    cfg.model.velocity_conditioning = True
    cfg.train.reconstruction_weight, cfg.train.adversarial_start, cfg.train.max_steps = 10.0, 10**9, 50
    trainer = TimbreTrainer(cfg, [str(notes_dir)], tmp_path, device="cpu", init_generator=str(tiny_timbre[0]))
    assert trainer.cfg.model.velocity_range == [80, 127]
    before = TimbreModel.load(tiny_timbre[0], device="cpu")
    z = torch.randn(2, cfg.model.latent_dim)
    pitch, timbre = torch.tensor([60, 66]), trainer.G.instrument(torch.tensor([0, 1]))
    with torch.no_grad():
        old = before.G(z, pitch, timbre)
        # the new input starts at zero: every velocity makes the export's notes
        for v in (1, 80, 127):
            assert torch.equal(trainer.G(z, pitch, timbre, torch.tensor([v, v])), old)
    trainer.fit()
    model = TimbreModel.load(tmp_path / "timbre-tiny.safetensors", device="cpu")
    assert model.cfg.velocity_range == [80, 127]
    soft, loud, below = (model.generate([60], [model.instruments[0]], [v]) for v in (80, 127, 20))
    shape = [a[0] / np.abs(a[0]).max() for a in (soft, loud, below)]
    assert np.abs(shape[0] - shape[1]).max() > 1e-3  # the timbre follows velocity ...
    np.testing.assert_allclose(shape[2], shape[0], atol=1e-5)  # ... and below the trained range is the softest
    assert np.abs(below).max() < np.abs(soft).max()  # while the level still follows the asked velocity
    cfg.data.validation = ["*-127.wav"]  # only one velocity left to learn from
    with pytest.raises(ValueError, match="more than one velocity"):
        TimbreTrainer(cfg, [str(notes_dir)], tmp_path / "one", device="cpu")


@pytest.fixture(scope="module")
def timbre_model(tiny_timbre):
    from audiogan.timbre import TimbreModel

    model = TimbreModel.load(tiny_timbre[0], device="cpu")
    model.card_path = tiny_timbre[0]
    return model


def test_notes_and_batching(timbre_model):
    one = timbre_model.note(60, instrument="violin", seed=3)
    assert one.shape == (timbre_model.cfg.spectral.samples,) and np.isfinite(one).all()
    np.testing.assert_array_equal(one, timbre_model.note(60, instrument="violin", seed=3))
    batch = timbre_model.generate([60, 66, 60], ["violin", "flute", "violin"], [100, 100, 100], [3, 1, 3])
    np.testing.assert_allclose(batch[0], one, atol=1e-5)
    np.testing.assert_allclose(batch[2], one, atol=1e-5)
    quiet = timbre_model.note(60, instrument="violin", seed=3, velocity=40)
    assert np.abs(quiet).max() < np.abs(one).max()
    short = timbre_model.note(60, instrument="violin", seconds=0.25)
    assert len(short) == 4000


def test_interpolation_end_points_are_the_pure_instruments(timbre_model):
    notes, alphas = timbre_model.interpolate("flute", "violin", pitch=60, steps=5, seed=7)
    assert alphas == [0.0, 0.25, 0.5, 0.75, 1.0] and notes.shape[0] == 5
    np.testing.assert_allclose(notes[0], timbre_model.note(60, instrument="flute", seed=7), atol=1e-5)
    np.testing.assert_allclose(notes[-1], timbre_model.note(60, instrument="violin", seed=7), atol=1e-5)
    assert np.abs(notes[2] - notes[0]).mean() > 0
    latent = timbre_model.timbre("violin").numpy()
    np.testing.assert_allclose(timbre_model.note(60, latent=latent, seed=7), notes[-1], atol=1e-5)


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: m.note(60, instrument="tuba"), "unknown instrument"),
    (lambda m: m.note(20, instrument="violin"), "outside this model's range"),
    (lambda m: m.note(60, instrument="violin", velocity=0), "velocity"),
    (lambda m: m.interpolate("flute", "violin", pitch=60, alpha=1.5), "alpha"),
    (lambda m: m.interpolate("flute", "violin", pitch=60, steps=1), "steps"),
    (lambda m: m.note(60, latent=[0.0, 1.0]), "latent has"),
    (lambda m: m.note(60, instrument="violin", seconds=10), "seconds"),
    (lambda m: m.mix("flute", "violin", [0.5], mode="linear"), "mode 'linear' is not slerp or lerp"),
    (lambda m: m.interpolate("flute", "violin", pitch=60, steps=3, mode="slurp"), "mode 'slurp'"),
    # Wrong types are named, not a torch overflow or "'<' not supported" from deep inside.
    (lambda m: m.note(60, instrument="violin", seed=1.5), r"seed 1\.5 is not a whole number"),
    (lambda m: m.note(60, instrument="violin", seed=2**64), "seed 18446744073709551616 is not a whole number"),
    (lambda m: m.note(60, instrument="violin", seconds="2"), "seconds '2' is not a finite number"),
    (lambda m: m.note(60, instrument="violin", seconds=float("nan")), "seconds nan is not a finite number"),
    (lambda m: m.interpolate("flute", "violin", pitch=60, steps="8"), "steps must be a whole number"),
    (lambda m: m.interpolate("flute", "violin", pitch=60, steps=2.5), "steps must be a whole number"),
    (lambda m: m.generate([60] * 6, "violin"), r"one string \('violin'\); give one timbre per pitch"),
    # A timbre of the wrong type names its argument and what it takes, not a latent's length.
    (lambda m: m.note(60, instrument=3), r"^instrument takes an instrument name \(a str, one of \.instruments\), "
                                         r"not int 3$"),
    (lambda m: m.note(60, instrument=m.timbre("violin")), "instrument takes an instrument name .*, not Tensor"),
    (lambda m: m.generate([60, 62], ["violin", None]), r"timbres\[1\] takes an instrument name .* or a timbre "
                                                       r"latent \(\d+ numbers\), not NoneType None"),
    (lambda m: m.interpolate("flute", 7, pitch=60, steps=3), r"^b takes an instrument name .*, not int 7$"),
    (lambda m: m.interpolate(["flute"], "violin", pitch=60, steps=3), r"^a takes .*, not list \['flute'\]"),
])
def test_bad_requests_are_clear_errors(timbre_model, call, message):
    with pytest.raises(ValueError, match=message):
        call(timbre_model)


def test_seeds_are_whole_numbers_up_to_64_bits_each_its_own_note(timbre_model):
    top = timbre_model.note(60, instrument="violin", seed=2**64 - 1)
    assert np.isfinite(top).all() and np.abs(top - timbre_model.note(60, instrument="violin", seed=0)).max() > 1e-3
    np.testing.assert_array_equal(timbre_model.note(60, instrument="violin", seed=np.int64(5)),
                                  timbre_model.note(60, instrument="violin", seed=5))
    # torch's generator reads a seed's low 32 bits: these seeds once shared one note.
    for low in (5, 2**32 - 1):
        seeds = [low, low + 2**32, low + 2**63, low + 2**64 - 2**32]
        notes = [timbre_model.note(60, instrument="violin", seed=s) for s in seeds]
        for (a, one), (b, other) in itertools.combinations(zip(seeds, notes, strict=True), 2):
            assert np.abs(one - other).max() > 1e-3, (a, b)
        batch = timbre_model.generate([60] * 4, ["violin"] * 4, seeds=seeds)
        np.testing.assert_allclose(batch, np.stack(notes), atol=1e-5)  # a batch seeds each note as alone


def test_seeds_below_2_32_keep_torchs_noise_bit_for_bit(timbre_model):
    """Notes made before seeds reached past 32 bits come out the same: the generator is handed exactly the
    noise torch's generator draws for the seed, in a batch, alone, and when inverting."""
    from audiogan.timbre.inference import seed_noise

    dim = timbre_model.cfg.latent_dim
    seeds = [0, 1, 5, 123456789, 2**31 + 7, 2**32 - 1]
    torch_noise = torch.stack([torch.randn(dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    assert torch.equal(seed_noise(seeds, dim), torch_noise)
    heard: list[torch.Tensor] = []
    hook = timbre_model.G.register_forward_pre_hook(lambda _, args: heard.append(args[0].detach().cpu().clone()))
    try:
        timbre_model.generate([60] * len(seeds), ["violin"] * len(seeds), seeds=seeds)
        timbre_model.note(60, instrument="flute", seed=seeds[3])
        timbre_model.invert(melody()[:16000], 16000, pitch=60, steps=1, seed=seeds[4])
    finally:
        hook.remove()
    assert torch.equal(heard[0], torch_noise)
    assert torch.equal(heard[1], torch_noise[3:4]) and torch.equal(heard[2], torch_noise[4:5])


def test_seeds_past_32_bits_draw_standard_normal_noise_of_their_own():
    from audiogan.timbre.inference import SEED_MAX, seed_noise

    seeds = [2**32 + i for i in range(500)] + [SEED_MAX - i for i in range(500)]
    noise = seed_noise(seeds, 256)
    assert noise.dtype == torch.float32 and noise.shape == (1000, 256)
    assert torch.equal(seed_noise(seeds[::-1], 256), noise.flip(0))  # each seed's own, whatever its company
    values = noise.double().flatten().numpy()
    n = len(values)
    assert abs(values.mean()) < 5 / n**0.5 and abs(values.var() - 1) < 5 * (2 / n) ** 0.5
    from scipy import stats

    assert stats.kstest(values, "norm").pvalue > 1e-3
    # No two seeds share noise, nor do neighbouring seeds move together.
    assert len({row.numpy().tobytes() for row in noise}) == len(seeds)
    correlation = np.corrcoef(noise[:500].numpy())[np.triu_indices(500, 1)]
    assert np.abs(correlation).max() < 6 / 256**0.5
    assert seed_noise([2**40], 3).shape == (1, 3) and seed_noise([], 3).shape == (0, 3)
    for bad in (-1, 2**64, 1.5):
        with pytest.raises(ValueError, match=r"is not a whole number in 0\.\.2\*\*64-1$"):
            seed_noise([bad], 3)


def test_a_missing_midi_file_is_named_as_missing(tmp_path):
    from audiogan.timbre.midi import read_notes

    with pytest.raises(FileNotFoundError, match=r"MIDI file not found: .*nope\.mid$"):
        read_notes(tmp_path / "nope.mid")
    with pytest.raises(FileNotFoundError, match="is a folder, not a file"):
        read_notes(tmp_path)


def test_instrument_names_as_a_person_types_them():
    from audiogan.timbre.inference import resolve_instrument

    known = ["acoustic_grand_piano", "violin", "viola_da_gamba"]
    assert resolve_instrument("Acoustic Grand Piano", known) == "acoustic_grand_piano"
    assert resolve_instrument("acoustic-grand-piano", known) == "acoustic_grand_piano"
    with pytest.raises(ValueError, match=r"unknown instrument 'violn' \(did you mean 'violin'\?\)"):
        resolve_instrument("violn", known)
    with pytest.raises(ValueError, match=r"unknown instrument 'tuba'; this model knows: acoustic_grand_piano"):
        resolve_instrument("tuba", known)


def data_notes(out: Path, programs: str, *options: str, pitches: str = "60,72") -> int:
    """`audiogan data notes` in-process, tiny: one velocity, half-second notes."""
    from audiogan.cli import main

    return main(["data", "notes", "--programs", programs, "--pitches", pitches, "--velocities", "100",
                 "--seconds", "0.5", "--hold", "0.3", "--workers", "1", "--out", str(out), *options])


def listed(out: Path) -> list[str]:
    return sorted(json.loads((out / "examples.json").read_text()))


def test_a_second_data_notes_run_adds_to_the_data_set(soundfont, tmp_path):
    """Rendering programs in two runs into one folder listed only the second run's notes; now both."""
    from audiogan.timbre.notes_data import load_examples

    assert data_notes(tmp_path, "0") == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "audio").iterdir()}
    assert data_notes(tmp_path, "40") == 0
    assert [n.split("_")[0] for n in listed(tmp_path)] == ["keyboard"] * 2 + ["string"] * 2
    assert {p.name: p.read_bytes() for p in (tmp_path / "audio").glob("keyboard_*")} == first
    records = load_examples(tmp_path)  # the NSynth loader reads the merged folder as it is
    assert sorted((r.instrument, r.pitch) for r in records) == [
        ("acoustic_grand_piano", 60), ("acoustic_grand_piano", 72), ("violin", 60), ("violin", 72)]


def test_a_data_notes_rerun_renders_only_what_it_lacks(soundfont, tmp_path):
    """An interrupted run leaves its finished layers recorded and nothing listed; run again, it renders only
    the rest. A layer given a new pitch is rendered again whole, so that it keeps one gain."""
    assert data_notes(tmp_path, "0") == 0
    (tmp_path / "examples.json").unlink()  # as a run of programs 0 and 40 leaves it, stopped after program 0
    piano = sorted((tmp_path / "audio").glob("keyboard_*"))
    for wav in piano:
        os.utime(wav, ns=(10**18, 10**18))
    assert data_notes(tmp_path, "0,40") == 0
    assert len(listed(tmp_path)) == 4
    assert [wav.stat().st_mtime_ns for wav in piano] == [10**18] * 2  # not rendered again
    assert data_notes(tmp_path, "0,40") == 0  # all there: nothing rendered
    assert [wav.stat().st_mtime_ns for wav in piano] == [10**18] * 2
    assert data_notes(tmp_path, "0", pitches="66") == 0
    assert len(listed(tmp_path)) == 5
    layer = sorted((tmp_path / "audio").glob("keyboard_*"))
    assert len(layer) == 3 and all(wav.stat().st_mtime_ns != 10**18 for wav in layer)
    assert max(np.abs(sf.read(wav)[0]).max() for wav in layer) == pytest.approx(0.9, abs=1e-3)


def test_data_notes_with_other_settings_is_refused_unless_replace(soundfont, tmp_path, capsys):
    assert data_notes(tmp_path, "0") == 0
    before = (tmp_path / "examples.json").read_bytes()
    capsys.readouterr()
    for option, message in ((["--seconds", "0.6"], "--seconds 0.5 (now 0.6)"),
                            (["--sample-rate", "22050"], "--sample-rate 16000 (now 22050)")):
        assert data_notes(tmp_path, "40", *option) == 2
        err = capsys.readouterr().err
        assert err == (f"audiogan: error: {tmp_path} holds notes rendered with {message}: pass --replace to start "
                       f"the data set over, or choose another --out\n")
    assert (tmp_path / "examples.json").read_bytes() == before and not list((tmp_path / "audio").glob("string_*"))
    assert data_notes(tmp_path, "40", "--seconds", "0.6", "--replace") == 0
    assert [n.split("_")[0] for n in listed(tmp_path)] == ["string"] * 2
    assert {sf.info(tmp_path / "audio" / f"{n}.wav").frames for n in listed(tmp_path)} == {9600}
    assert json.loads((tmp_path / "render.json").read_text())["settings"]["seconds"] == 0.6
    assert data_notes(tmp_path, "0", "--seconds", "0.6") == 0  # adds to the data set started over
    assert len(listed(tmp_path)) == 4


def test_data_notes_refuses_to_add_to_a_data_set_of_unknown_settings(soundfont, tmp_path, capsys):
    """A folder rendered before render.json was written (or real NSynth) cannot be told apart from other
    settings: it is refused, not mixed into."""
    assert data_notes(tmp_path, "0") == 0
    (tmp_path / "render.json").unlink()
    capsys.readouterr()
    assert data_notes(tmp_path, "40") == 2
    assert "holds a data set with no render.json" in capsys.readouterr().err
    (tmp_path / "render.json").write_text('{"settings": {}, "layers": {"0": [60]}}')
    assert data_notes(tmp_path, "40") == 2
    assert f"{tmp_path / 'render.json'} is not a record of `data notes` settings" in capsys.readouterr().err
    assert data_notes(tmp_path, "40", "--replace") == 0
    assert [n.split("_")[0] for n in listed(tmp_path)] == ["string"] * 2


def test_missing_soundfont_is_a_clear_error(tmp_path):
    if shutil.which("fluidsynth") is None:
        pytest.skip("needs fluidsynth")
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "data", "notes", "--soundfont", "/no.sf2",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "soundfont not found" in done.stderr


def test_export_from_checkpoint(tiny_timbre, tmp_path):
    from audiogan.timbre import TimbreModel

    checkpoint = tiny_timbre[0].parent / "checkpoint.pt"
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "export", "timbre", str(checkpoint), "-o",
                           str(tmp_path / "again.safetensors")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    again = TimbreModel.load(tmp_path / "again.safetensors", device="cpu")
    first = TimbreModel.load(tiny_timbre[0], device="cpu")
    np.testing.assert_allclose(again.note(60, instrument="violin"), first.note(60, instrument="violin"), atol=1e-6)
    assert json.loads((tmp_path / "again.json").read_text())["data"]["notes"] == 30


def test_export_writes_the_instrument_tables_combs_into_the_card(tiny_timbre, tmp_path, monkeypatch):
    from audiogan.timbre import TimbreModel
    from audiogan.train import timbre_trainer

    violin = {"below": 0.0, "partials": [[0.5, -20.0]]}
    monkeypatch.setattr(timbre_trainer, "GM_COMBS", {"violin": violin, "tuba": {"depth": 0.5}})
    path = timbre_trainer.export_timbre_checkpoint(tiny_timbre[0].parent / "checkpoint.pt", tmp_path / "c.safetensors")
    assert json.loads(path.with_suffix(".json").read_text())["combs"] == {"violin": violin}  # its instruments only
    combed, plain = TimbreModel.load(path, device="cpu"), TimbreModel.load(tiny_timbre[0], device="cpu")
    np.testing.assert_array_equal(combed.note(60, instrument="flute"), plain.note(60, instrument="flute"))
    f0 = 440 * 2 ** ((60 - 69) / 12)
    assert partial_db(combed.note(60, instrument="violin"), f0, 0.5) == pytest.approx(-20.0, abs=3)


MELODY = [(60, 0.0, 0.4), (64, 0.5, 0.9), (67, 1.0, 1.4), (67, 1.45, 1.9), (72, 2.0, 2.6)]


VIBRATO_HZ = 5.5


def melody(rate: int = 16000, vibrato_cents: float = 0.0) -> np.ndarray:
    """A synthetic monophonic melody with known onsets and pitches (harmonic tones, decaying), optionally
    with a vibrato of +-``vibrato_cents`` starting at each onset."""
    wave = np.zeros(int(2.8 * rate), np.float32)
    for pitch, start, end in MELODY:
        t = np.arange(int((end - start) * rate)) / rate
        f = 440 * 2 ** ((pitch - 69 + vibrato_cents / 100 * np.sin(2 * np.pi * VIBRATO_HZ * t)) / 12)
        phase = 2 * np.pi * np.cumsum(f) / rate
        tone = sum(np.sin(k * phase) / k for k in range(1, 5)) * np.minimum(1, t / 0.01) * np.exp(-1.5 * t)
        wave[int(start * rate):int(start * rate) + len(t)] += 0.3 * tone
    return wave


def pyin_cents(wave: np.ndarray, pitch: int) -> np.ndarray:
    """pYIN f0 (1024-sample frames, 256 hop) in cents from ``pitch``, NaN where unvoiced."""
    import librosa

    f0, voiced, _ = librosa.pyin(wave, fmin=60, fmax=1000, sr=16000, frame_length=1024, hop_length=256)
    return np.where(voiced, 1200 * np.log2(np.nan_to_num(f0, nan=1.0) / (440 * 2 ** ((pitch - 69) / 12))), np.nan)


def test_bend_moves_the_pitch_continuously():
    from audiogan.timbre.expression import BEND_HOP, apply_bend

    rate = 16000
    t = np.arange(2 * rate) / rate
    tone = (sum(np.sin(2 * np.pi * 293.66 * k * t) / k for k in range(1, 5)) * 0.3).astype(np.float32)
    assert np.array_equal(apply_bend(tone, None), tone) and apply_bend(tone, np.zeros(10), length=100).shape == (100,)
    up = apply_bend(tone, np.full(4, 100.0))  # held after the last value: the whole note a semitone up
    assert up.shape == tone.shape and np.abs(up[-20:]).max() == 0  # read past the note's end: silence
    spectrum = np.abs(np.fft.rfft(up[:rate] * np.hanning(rate)))
    assert abs(np.argmax(spectrum) - 293.66 * 2 ** (1 / 12)) <= 1.0
    frames = np.arange(len(tone) // BEND_HOP + 1) * BEND_HOP / rate
    vibrato = 35 * np.sin(2 * np.pi * VIBRATO_HZ * frames)
    heard = pyin_cents(apply_bend(tone, vibrato), 62)
    ok = np.isfinite(heard)
    ok[:8] = ok[-8:] = False
    assert np.corrcoef(heard[ok], vibrato[: len(heard)][ok])[0, 1] > 0.95
    assert np.abs(np.diff(apply_bend(tone, vibrato))).max() < 0.2  # continuous: no clicks
    with pytest.raises(ValueError, match="finite cents"):
        apply_bend(tone, np.array([0.0, np.nan]))


def test_a_conversion_made_in_passes_is_the_conversion_made_at_once(timbre_model):
    """convert() makes its notes a pass at a time (for its progress bar; the server, to stop between them):
    each note keeps its seed, so the audio is the same as all notes in one call."""
    from audiogan.timbre.convert import Conversion, convert

    name = timbre_model.instruments[0]
    wave = np.tile(melody(), 3)
    plan = Conversion.plan(timbre_model, wave, 16000, name)
    assert len(plan.events) > timbre_model.pass_size
    mix = plan.mixdown(timbre_model.sample_rate)
    mix.add(plan.events, plan.notes(timbre_model, 7))  # every note in one call
    whole = plan.level(mix)
    np.testing.assert_array_equal(convert(timbre_model, wave, 16000, name, seed=7, progress=True), whole)


def test_pieces_seeded_2_32_apart_are_other_takes(timbre_model):
    """A piece's note i takes seed + i. Seeds 2**32 - 1 and 2**64 - 1 once gave the same conversion (their
    notes' seeds agree in their low 32 bits), as did 5 and 5 + 2**32."""
    from audiogan.timbre.convert import convert
    from audiogan.timbre.inference import note_seeds

    assert note_seeds(2**64 - 1, 0, 3) == [2**64 - 1, 0, 1] and note_seeds(2**32 - 1, 1, 2) == [2**32, 2**32 + 1]
    wave = melody()
    takes = {seed: convert(timbre_model, wave, 16000, "violin", seed=seed)
             for seed in (5, 5 + 2**32, 2**32 - 1, 2**64 - 1)}
    assert all(np.isfinite(t).all() and len(t) == len(wave) for t in takes.values())
    assert np.abs(takes[5] - takes[5 + 2**32]).max() > 1e-3
    assert np.abs(takes[2**32 - 1] - takes[2**64 - 1]).max() > 1e-3


def test_analysis_finds_the_melody():
    from audiogan.timbre.analysis import analyse

    events = analyse(melody(), 16000)
    assert [e.pitch for e in events] == [p for p, _, _ in MELODY]
    for event, (_, start, _) in zip(events, MELODY, strict=True):
        assert abs(event.onset - start) <= 0.03
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="polyphonic or unpitched"):
        analyse(rng.normal(0, 0.3, 32000).astype(np.float32), 16000)
    with pytest.raises(ValueError, match=r"at least 0\.1 s"):
        analyse(np.zeros(100, np.float32), 16000)


def test_analysis_marks_glides_and_slurs_legato():
    """A note reached without a break or a dip (a glide's next semitone, a slur) continues the one before:
    re-attacking each made a 7-semitone glide a run of 13 struck notes."""
    from audiogan.timbre.analysis import analyse
    from benchmarks.timbre_expression import glide_tone

    glide = analyse(glide_tone([(0.6, 60, 60), (0.5, 60, 67), (0.6, 67, 67), (0.3, 67, 62), (0.5, 62, 62)]), 16000)
    assert [e.pitch for e in glide] == [*range(60, 68), *range(66, 61, -1)]
    assert [e.legato for e in glide] == [False] + [True] * (len(glide) - 1)
    assert all(b.onset == a.offset for a, b in itertools.pairwise(glide))
    slur = analyse(glide_tone([(0.5, 60, 60), (0.5, 64, 64), (0.5, 67, 67)]), 16000)
    assert [(e.pitch, e.legato) for e in slur] == [(60, False), (64, True), (67, True)]
    # Rests between notes, and a note repeated after a dip (MELODY's 67, 67), are attacked afresh.
    assert not any(e.legato for e in analyse(melody(), 16000))
    fast = analyse(glide_tone([(0.4, 60, 60), (0.1, 60, 66), (0.4, 66, 66)]), 16000)  # 17 ms a semitone
    assert fast[0].pitch == 60 and fast[-1].pitch == 66 and all(e.legato for e in fast[1:])
    assert all(b.onset == a.offset for a, b in itertools.pairwise(fast))  # no semitone left silent


def test_low_notes_are_analysed_and_chords_tracked_low_are_still_refused():
    """pYIN is less sure of low notes (few periods in its frame): a plain mean of its voicing probability
    refused a bass's E1 (0.46) and a cello's C2 (0.56) as polyphonic. A chord is often tracked at the pitch
    its notes are harmonics of (C3-E3-G3 at C1), and must not pass for a low note."""
    from audiogan.timbre.analysis import analyse
    from benchmarks.timbre_expression import glide_tone

    for pitch in (24, 28, 33, 36):  # C1, E1, A1, C2
        assert [e.pitch for e in analyse(glide_tone([(1.0, pitch, pitch)]), 16000)] == [pitch]
    bass_line = glide_tone([(0.5, 28, 28), (0.5, 31, 31), (0.5, 33, 33), (0.5, 35, 35)])
    assert [e.pitch for e in analyse(bass_line, 16000)] == [28, 31, 33, 35]
    for root in (36, 48, 60):
        for chord in ((0, 4, 7), (0, 3, 7), (0, 4)):
            wave = sum(glide_tone([(1.0, root + i, root + i)]) for i in chord)
            with pytest.raises(ValueError, match="polyphonic or unpitched"):
                analyse(wave, 16000)


def test_a_legato_note_enters_in_phase_with_the_note_before():
    """Two notes of a glide meet at one pitch: at a chance phase their crossfade would cancel."""
    from audiogan.timbre.analysis import NoteEvent
    from audiogan.timbre.convert import Mixdown
    from audiogan.timbre.expression import coherent_lag, frame_rms

    rate = 16000
    t = np.arange(rate) / rate
    period = rate / 220
    lag, correlation = coherent_lag(np.sin(2 * np.pi * 220 * t + np.pi), np.sin(2 * np.pi * 220 * t[:1280]),
                                    int(np.ceil(period)))
    assert lag == pytest.approx(period / 2, abs=1) and correlation > 0.99
    note = np.sin(2 * np.pi * 220 * t).astype(np.float32)
    # The second note in every phase relative to the first, and at another pitch (a slur: unrelated signals).
    seconds = [np.sin(2 * np.pi * 220 * t + shift) for shift in np.linspace(0, 2 * np.pi, 7)[:-1]]
    for second in [*seconds, np.sin(2 * np.pi * 277.2 * t)]:
        mix = Mixdown(rate, rate)
        mix.add([NoteEvent(0.0, 0.5, 57, 100), NoteEvent(0.5, 0.9, 57, 100, legato=True)],
                np.stack([note, second.astype(np.float32)]))
        level = frame_rms(mix.result())[4:52]  # 0.06 to 0.8 s: across the crossfade, clear of the edges
        assert level.min() > 0.89 * level.max(), level.min() / level.max()  # within 1 dB


def test_level_following_shapes_a_sustained_note_and_keeps_a_decay():
    from audiogan.timbre.expression import BEND_HOP, follow_level, frame_rms

    rate = 16000
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    frames = np.arange(len(tone) // BEND_HOP + 1) * BEND_HOP / rate
    crescendo = 10 ** ((-18 + 18 * frames) / 20)
    assert np.array_equal(follow_level(tone, None), tone)
    shaped = frame_rms(follow_level(tone, crescendo))
    inner = slice(4, -4)  # clear of the zero-padded edge frames
    np.testing.assert_allclose(20 * np.log10(shaped[inner] / shaped.max()),
                               20 * np.log10(crescendo[inner] / crescendo.max()), atol=0.5)
    decaying = (tone * np.exp(-4 * t)).astype(np.float32)  # a piano-like note under a steady performance
    np.testing.assert_allclose(follow_level(decaying, np.ones(10)), decaying, atol=1e-6)
    with pytest.raises(ValueError, match="non-negative"):
        follow_level(tone, np.array([1.0, -1.0]))


def test_harmonic_comb_removes_half_harmonics_and_keeps_harmonics():
    from audiogan.timbre.expression import harmonic_comb

    rate, f0 = 16000, 65.41
    t = np.arange(2 * rate) / rate
    harmonics = sum(np.sin(2 * np.pi * k * f0 * t + k) for k in range(1, 9))
    doubled = sum(np.sin(2 * np.pi * (k + 0.5) * f0 * t) for k in range(8))  # period doubling
    high = np.sin(2 * np.pi * 2500.0 * t)  # far above the 10th harmonic: left alone
    wave = torch.tensor(harmonics + doubled + high, dtype=torch.float32)[None]
    out = harmonic_comb(wave, torch.tensor([f0]), rate)[0].numpy()
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out)))) / np.abs(np.fft.rfft(wave[0].numpy()
                                                                                     * np.hanning(len(out))))
    bin_of = lambda f: round(f * len(out) / rate)  # noqa: E731
    for k in range(1, 9):
        assert 20 * np.log10(spectrum[bin_of(k * f0)]) == pytest.approx(0, abs=0.2)
        assert 20 * np.log10(spectrum[bin_of((k - 0.5) * f0)]) < -30
    assert 20 * np.log10(spectrum[bin_of(2500.0)]) == pytest.approx(0, abs=0.1)


def partial_db(wave: np.ndarray, f0: float, ratio: float, rate: int = 16000) -> float:
    """The level of the peak near ``ratio`` * f0 relative to the one near f0, dB, over a note's held part."""
    held = wave[int(0.3 * rate):int(2.5 * rate)]
    spectrum = np.abs(np.fft.rfft(held * np.hanning(len(held)), n=8 * len(held)))
    freqs = np.fft.rfftfreq(8 * len(held), 1 / rate)
    peak = lambda f: spectrum[(freqs > 0.99 * f) & (freqs < 1.01 * f)].max()  # noqa: E731
    return float(20 * np.log10(peak(ratio * f0) / peak(f0) + 1e-12))


def test_comb_settings_sharpen_cut_below_and_add_partials():
    from audiogan.timbre.expression import CombConfig, harmonic_comb

    rate, f0 = 16000, 130.81
    t = np.arange(3 * rate) / rate
    harmonics = sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, 6))
    between = sum(0.5 * np.sin(2 * np.pi * r * f0 * t) for r in (0.1, 0.25, 0.75, 1.3))  # a generator's blur
    wave = torch.tensor(harmonics + between, dtype=torch.float32)[None]
    one = torch.ones(1)
    np.testing.assert_array_equal(harmonic_comb(wave, torch.tensor([f0]), rate, depth=one, sharpness=one, below=one,
                                                ratios=torch.tensor([0.5]), gains=torch.zeros(1, 1)),
                                  harmonic_comb(wave, torch.tensor([f0]), rate))  # the defaults are the plain comb
    plain = harmonic_comb(wave, torch.tensor([f0]), rate)[0].numpy()
    organ = CombConfig(sharpness=4.0, below=0.0, partials=[(0.5, -12.0), (1.5, -20.0)])
    out = harmonic_comb(wave, torch.tensor([f0]), rate, sharpness=torch.tensor([organ.sharpness]),
                        below=torch.tensor([organ.below]), ratios=torch.tensor([r for r, _ in organ.partials]),
                        gains=torch.tensor([[10 ** (db / 20) for _, db in organ.partials]]))[0].numpy()
    source = wave[0].numpy()
    for ratio in (0.1, 0.25):  # under f0 / 2: gone
        assert partial_db(out, f0, ratio) < partial_db(source, f0, ratio) - 60, ratio
    for ratio in (0.75, 1.3):  # between harmonics: the plain comb's cut in dB, times the sharpness
        cut = [partial_db(x, f0, ratio) - partial_db(source, f0, ratio) for x in (plain, out)]
        assert cut[1] == pytest.approx(organ.sharpness * cut[0], abs=1.0), (ratio, cut)
    for k in range(2, 6):
        assert partial_db(out, f0, k) == pytest.approx(partial_db(source, f0, k), abs=0.3)
    for ratio, db in organ.partials:
        assert partial_db(out, f0, ratio) == pytest.approx(db, abs=0.5)
    kept = harmonic_comb(wave, torch.tensor([f0]), rate, depth=torch.zeros(1))[0].numpy()
    assert partial_db(kept, f0, 0.75) == pytest.approx(partial_db(source, f0, 0.75), abs=0.3)
    for bad in ({"depth": 1.5}, {"below": -0.1}, {"sharpness": 0.5}, {"partials": [(0.0, -10.0)]}):
        with pytest.raises(ValueError, match="comb"):
            CombConfig(**bad)


def test_analysis_keeps_each_notes_pitch_and_level_contours():
    from audiogan.timbre.analysis import HOP, analyse

    plain = analyse(melody(), 16000)
    for event in plain:  # steady tones: contours within the tracker's resolution of zero
        assert event.bend is not None and np.abs(event.bend[3:-3]).max() < 10
    events = analyse(melody(vibrato_cents=35), 16000)
    assert [e.pitch for e in events] == [p for p, _, _ in MELODY]
    for event in events:  # the tones decay: so does each note's level contour
        assert event.level is not None and len(event.level) == round((event.offset - event.onset) * 16000 / HOP)
        assert len(event.bend) == len(event.level) + 5  # on through the 80 ms release
        assert event.level[-3] < 0.8 * event.level[2]
    for event, (_, start, _) in zip(events, MELODY, strict=True):
        since = event.onset - start + np.arange(len(event.level)) * HOP / 16000
        truth = 35 * np.sin(2 * np.pi * VIBRATO_HZ * since)
        inner = slice(3, len(event.level) - 3)  # the note itself: silence follows it
        assert np.corrcoef(event.bend[inner], truth[inner])[0, 1] > 0.9
        assert 0.7 < event.bend[inner].std() / truth[inner].std() < 1.3


@pytest.mark.parametrize("pitch", [28, 40, 60, 84])
def test_a_vibrato_keeps_its_depth_in_the_contour(pitch):
    """YIN reads the mean f0 over its frame: a 6 Hz vibrato came out at 0.80 of its depth at MIDI 60, 0.38
    at MIDI 40 (a 2048-sample frame) and inverted at MIDI 28 (4096)."""
    from audiogan.timbre.analysis import HOP, analyse

    rate, hz, depth = 16000, 6.0, 30.0
    t = np.arange(int(2.5 * rate)) / rate
    phase = 2 * np.pi * np.cumsum(440 * 2 ** ((pitch - 69 + depth / 100 * np.sin(2 * np.pi * hz * t)) / 12)) / rate
    wave = (0.3 * np.minimum(1, t / 0.02) * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)
    (event,) = analyse(wave, rate)
    frames = slice(8, len(event.level) - 8)
    since = event.onset + np.arange(len(event.level))[frames] * HOP / rate
    fit, *_ = np.linalg.lstsq(np.stack([np.sin(2 * np.pi * hz * since), np.cos(2 * np.pi * hz * since)], 1),
                              event.bend[frames] - event.bend[frames].mean(), rcond=None)
    assert np.hypot(*fit) / depth == pytest.approx(1.0, abs=0.05)  # measured: 0.985-1.03
    assert abs(np.degrees(np.arctan2(fit[1], fit[0]))) < 5  # in time with the performance


def test_conversion_follows_the_contour_unless_flat(timbre_model):
    from audiogan.timbre.convert import convert

    wave = melody(vibrato_cents=35)
    flat, bent = convert(timbre_model, wave, 16000, "violin", flat=True), convert(timbre_model, wave, 16000, "violin")
    assert flat.shape == bent.shape == wave.shape and np.isfinite(bent).all()
    assert np.abs(flat - bent).max() > 1e-2


def test_conversion_morphs_from_the_first_note_to_the_last(timbre_model):
    from audiogan.timbre.convert import convert, morph_timbres

    mixed = morph_timbres(timbre_model, "flute", "violin", [0.3, 0.8, 1.3])  # alphas 0, 0.5, 1
    torch.testing.assert_close(torch.stack(mixed), timbre_model.mix("flute", "violin", [0.0, 0.5, 1.0]))
    (lone,) = morph_timbres(timbre_model, "flute", "violin", [0.3])
    torch.testing.assert_close(lone, timbre_model.timbre("flute"))
    wave = melody()
    morph = convert(timbre_model, wave, 16000, "flute", to_b="violin")
    flute, violin = (convert(timbre_model, wave, 16000, name) for name in ("flute", "violin"))
    first, last = slice(0, int(0.4 * 16000)), slice(int(2.05 * 16000), None)  # MELODY's first and last notes

    def same(a: np.ndarray, b: np.ndarray) -> bool:  # up to each output's own normalisation
        return np.abs(a / np.abs(a).max() - b / np.abs(b).max()).max() < 1e-4

    assert same(morph[first], flute[first]) and not same(morph[first], violin[first])
    assert same(morph[last], violin[last]) and not same(morph[last], flute[last])
    lerp = convert(timbre_model, wave, 16000, "flute", to_b="violin", mode="lerp")
    assert same(lerp[first], flute[first]) and not same(lerp, morph)


def test_notes_longer_than_the_model_plays_are_shortened_with_a_warning(caplog):
    from audiogan.timbre.analysis import NoteEvent
    from audiogan.timbre.convert import Mixdown

    notes = np.ones((2, 16000), np.float32)  # 1 s notes
    events = [NoteEvent(0.0, 0.5, 60, 100), NoteEvent(1.0, 4.0, 62, 100)]
    with caplog.at_level("WARNING", logger="audiogan.timbre"):
        mix = Mixdown(5 * 16000, 16000)
        for event, note in zip(events, notes, strict=True):  # a pass at a time: one warning for all
            mix.add([event], note[None])
        out = mix.result()
    assert out[16000:2 * 16000].any() and not out[2 * 16000:].any()  # the second note sounds 1 s, not 3 s
    (record,) = caplog.records
    assert "1 of 2 notes last longer than the model's notes: shortened to 1.00 s" in record.getMessage()


def test_conversion_keeps_length_and_accepts_stereo_48k(timbre_model, tmp_path):
    from audiogan.timbre.convert import convert

    out = convert(timbre_model, melody(), 16000, "violin")
    assert out.shape == (len(melody()),) and np.isfinite(out).all() and np.abs(out).max() > 0.01
    import librosa

    stereo = np.stack([librosa.resample(melody(), orig_sr=16000, target_sr=48000)] * 2, axis=1)
    sf.write(tmp_path / "stereo48k.wav", stereo, 48000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF" + bytes(100))
    base = [sys.executable, "-m", "audiogan.cli", "convert", "--to", "violin", "--model",
            str(timbre_model.card_path), "--device", "cpu"]
    done = subprocess.run([*base, str(tmp_path / "stereo48k.wav"), "-o", str(tmp_path / "out.wav")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "analyse: 100%" in done.stderr and "convert: 100%" in done.stderr  # the bars: analysis, then notes
    audio, rate = sf.read(tmp_path / "out.wav")
    assert rate == 16000 and abs(len(audio) - len(melody())) <= 2
    done = subprocess.run([*base, "--flat", str(tmp_path / "stereo48k.wav"), "-o", str(tmp_path / "flat.wav")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sf.read(tmp_path / "flat.wav")[0].shape == audio.shape
    done = subprocess.run([*base, "--to-b", "flute", "--morph", str(tmp_path / "stereo48k.wav"), "-o",
                           str(tmp_path / "morph.wav")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "morphing from violin to flute" in done.stdout, done.stderr
    assert sf.read(tmp_path / "morph.wav")[0].shape == audio.shape
    done = subprocess.run([*base, "--morph", str(tmp_path / "stereo48k.wav"), "-o", str(tmp_path / "x.wav")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--morph needs --to-b" in done.stderr
    done = subprocess.run([*base, str(tmp_path / "corrupt.wav"), "-o", str(tmp_path / "x.wav")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "cannot read audio" in done.stderr


def test_conversion_inversion_and_midi_need_no_librosa(timbre_model, tmp_path):
    """librosa is a training and benchmark extra (the judges' pYIN), not a dependency: a plain install
    converts, inverts and renders MIDI without it."""
    import pretty_midi

    score = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes += [pretty_midi.Note(100, p, 0.5 * i, 0.5 * i + 0.4) for i, p in enumerate((60, 64, 67))]
    score.instruments.append(piano)
    score.write(str(tmp_path / "tune.mid"))
    code = f"""
import sys
sys.modules["librosa"] = None  # any import of it now fails
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_timbre import melody
from audiogan.timbre import TimbreModel
from audiogan.timbre.convert import convert
from audiogan.timbre.midi import render_midi
model = TimbreModel.load({str(timbre_model.card_path)!r}, device="cpu")
print(len(convert(model, melody(), 16000, "violin")), len(model.invert(melody(), 16000, steps=3)[1]),
      len(render_midi(model, {str(tmp_path / "tune.mid")!r}, "flute")) > 16000)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # The last line only: under CI=1, pyfluidsynth (imported by pretty_midi) prints where it found its library.
    assert done.stdout.splitlines()[-1].split() == [str(len(melody())), "3", "True"]


def test_note_cli_plays_morphs_and_lists(timbre_model, tmp_path):
    base = [sys.executable, "-m", "audiogan.cli", "note", "--model", str(timbre_model.card_path), "--device", "cpu"]
    run = lambda *a: subprocess.run([*base, *a], capture_output=True, text=True, timeout=300)  # noqa: E731
    listed = run("--list")
    assert listed.returncode == 0 and listed.stdout.split() == ["acoustic_grand_piano", "flute", "violin"]
    done = run("--pitch", "60", "--instrument", "violin", "--seconds", "0.25", "-o", str(tmp_path / "one.wav"))
    assert done.returncode == 0, done.stderr
    one, rate = sf.read(tmp_path / "one.wav")
    assert rate == 16000 and len(one) == 4000
    np.save(tmp_path / "latent.npy", timbre_model.timbre("flute").numpy())
    done = run("--instrument", "violin", "--to", str(tmp_path / "latent.npy"), "--steps", "3", "--seconds", "0.25",
               "-o", str(tmp_path / "morph.wav"))
    assert done.returncode == 0, done.stderr
    assert len(sf.read(tmp_path / "morph.wav")[0]) == 3 * (4000 + 4000)  # three notes, each with a 0.25 s gap
    for bad, message in ((["--pitch", "60"], "--instrument is required"),
                         (["--instrument", "tuba"], "unknown instrument 'tuba'"),
                         (["--instrument", "violin", "--pitch", "20"], "outside this model's range")):
        done = run(*bad, "-o", str(tmp_path / "bad.wav"))
        assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "bad.wav").exists()


def test_chords_are_refused_clearly():
    from audiogan.timbre.analysis import analyse

    t = np.arange(32000) / 16000
    chord = sum(sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 5)) for f in (261.6, 329.6, 392.0))
    with pytest.raises(ValueError, match="polyphonic"):
        analyse((0.1 * chord).astype(np.float32), 16000)


def write_midi(path: Path, notes: list[tuple[int, float, float]], drums: bool = False) -> Path:
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    track = pretty_midi.Instrument(program=0, is_drum=drums)
    track.notes = [pretty_midi.Note(velocity=100, pitch=p, start=a, end=b) for p, a, b in notes]
    midi.instruments.append(track)
    midi.write(str(path))
    return path


def test_midi_rendering(timbre_model, tmp_path):
    from audiogan.timbre.midi import fold_into_range, read_notes, render_midi

    song = write_midi(tmp_path / "song.mid", [(60, 0.0, 0.5), (64, 0.5, 1.0), (96, 1.0, 2.0)])
    events, end = read_notes(song)
    assert [e.pitch for e in events] == [60, 64, 96] and end == pytest.approx(2.0)
    assert fold_into_range(96, 48, 72) == 72 and fold_into_range(30, 48, 72) == 54
    plain = render_midi(timbre_model, song, "flute")
    morph = render_midi(timbre_model, song, "flute", to="violin")
    assert len(plain) == len(morph) == int(2.5 * 16000) and np.isfinite(morph).all()
    # The first note is at alpha 0: pure flute in both renderings, up to each rendering's own peak scaling,
    # which the later notes may set (they differ), hence compared at the note's own peak.
    head = slice(0, 4000)
    np.testing.assert_allclose(morph[head] / np.abs(morph[head]).max(), plain[head] / np.abs(plain[head]).max(),
                               atol=1e-4)
    # The last note is at alpha 1: pure violin, as a violin rendering plays it (after the second's release).
    violin = render_midi(timbre_model, song, "violin")
    last = slice(int(1.1 * 16000), 24000)
    np.testing.assert_allclose(morph[last] / np.abs(morph[last]).max(), violin[last] / np.abs(violin[last]).max(),
                               atol=1e-4)
    assert np.abs(morph[last] / np.abs(morph[last]).max() - plain[last] / np.abs(plain[last]).max()).max() > 1e-3
    with pytest.raises(ValueError, match="no \\(non-drum\\) notes"):
        render_midi(timbre_model, write_midi(tmp_path / "drums.mid", [(36, 0, 1)], drums=True), "flute")
    (tmp_path / "broken.mid").write_bytes(b"MThd" + bytes(10))
    with pytest.raises(ValueError, match="cannot read MIDI"):
        render_midi(timbre_model, tmp_path / "broken.mid", "flute")
    (tmp_path / "cut.mid").write_bytes(b"MThd garbage")  # mido's EOFError has no message: its type is the reason
    with pytest.raises(ValueError, match=r"cannot read MIDI .*cut\.mid: EOFError \(not a Standard MIDI File\?\)"):
        render_midi(timbre_model, tmp_path / "cut.mid", "flute")


def test_midi_pitch_bends_and_modulation_wheel(tmp_path):
    import pretty_midi

    from audiogan.timbre.expression import BEND_HOP
    from audiogan.timbre.midi import VIBRATO_CENTS, VIBRATO_HZ, read_notes

    def song(bends, controls=()):
        midi = pretty_midi.PrettyMIDI()
        track = pretty_midi.Instrument(program=0)
        track.notes = [pretty_midi.Note(velocity=100, pitch=60, start=0.5, end=1.5),
                       pretty_midi.Note(velocity=100, pitch=64, start=2.0, end=3.0)]
        track.pitch_bends = [pretty_midi.PitchBend(v, t) for v, t in bends]
        track.control_changes = [pretty_midi.ControlChange(n, v, t) for n, v, t in controls]
        midi.instruments.append(track)
        midi.write(str(tmp_path / "song.mid"))
        return read_notes(tmp_path / "song.mid")[0]

    assert [e.bend for e in song([])] == [None, None]
    frame = BEND_HOP / 16000
    first, second = song([(4096, 0.0), (0, 1.0), (-8192, 2.5)])  # bent before the note: it starts bent
    assert first.bend[0] == pytest.approx(100) and first.bend[int(0.6 / frame)] == 0  # GM default: 2 semitones
    assert second.bend[0] == 0 and second.bend[int(0.55 / frame)] == pytest.approx(-200)
    rpn = [(101, 0, 0.0), (100, 0, 0.0), (6, 12, 0.0)]  # RPN 0: bend range 12 semitones
    assert song([(4096, 0.0)], rpn)[0].bend[0] == pytest.approx(600)
    wheel = song([], [(1, 127, 1.9)])
    assert wheel[0].bend is None or np.abs(wheel[0].bend).max() == 0
    since = np.arange(len(wheel[1].bend)) * frame
    np.testing.assert_allclose(wheel[1].bend, VIBRATO_CENTS * np.sin(2 * np.pi * VIBRATO_HZ * since), atol=1e-9)


def test_midi_notes_that_cannot_be_played_as_written_are_reported(tmp_path, caplog):
    import mido
    import pretty_midi

    from audiogan.timbre.midi import read_notes

    song = mido.MidiFile()
    track = mido.MidiTrack()
    track += [mido.Message("note_on", note=60, velocity=100, time=0),   # never released
              mido.Message("note_on", note=64, velocity=100, time=0),
              mido.Message("note_on", note=67, velocity=100, time=240),  # released on the tick it starts
              mido.Message("note_off", note=67, velocity=0, time=0),
              mido.Message("note_off", note=64, velocity=0, time=240)]
    song.tracks.append(track)
    song.save(tmp_path / "dropped.mid")
    with caplog.at_level(logging.WARNING, "audiogan.timbre.midi"):
        events, _ = read_notes(tmp_path / "dropped.mid")
    assert [e.pitch for e in events] == [64]
    assert "2 of 3 notes struck in" in caplog.text and "a note-on without a note-off, or a note of zero length" \
        in caplog.text

    bent = pretty_midi.PrettyMIDI()
    lead = pretty_midi.Instrument(program=80)
    lead.notes = [pretty_midi.Note(velocity=100, pitch=60, start=0.0, end=1.0)]
    lead.control_changes = [pretty_midi.ControlChange(n, v, 0.0) for n, v in ((101, 0), (100, 0), (6, 24))]
    lead.pitch_bends = [pretty_midi.PitchBend(8191, 0.5)]  # a bend range of 24 semitones, bent all the way
    bent.instruments.append(lead)
    bent.write(str(tmp_path / "bent.mid"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, "audiogan.timbre.midi"):
        read_notes(tmp_path / "bent.mid")
    assert "1 note(s) bend further than the 12 semitones a note can move: held there" in caplog.text


def test_midi_volume_expression_and_sustain_pedal(timbre_model, tmp_path):
    import pretty_midi

    from audiogan.timbre.midi import read_notes, render_midi

    def song(notes, controls=()):
        midi = pretty_midi.PrettyMIDI()
        track = pretty_midi.Instrument(program=0)
        track.notes = [pretty_midi.Note(velocity=100, pitch=p, start=a, end=b) for p, a, b in notes]
        track.control_changes = [pretty_midi.ControlChange(n, v, t) for n, v, t in controls]
        midi.instruments.append(track)
        midi.write(str(tmp_path / "song.mid"))
        return tmp_path / "song.mid"

    two = [(60, 0.0, 0.6), (60, 1.0, 1.6)]
    assert [e.gain for e in read_notes(song(two))[0]] == [None, None]
    first, second = read_notes(song(two, [(7, 64, 0.8), (11, 127, 0.0)]))[0]
    # Relative to the GM defaults: sending them is sending nothing (a track with CC7=100 used to come out
    # 4.2 dB quieter than one without CCs).
    np.testing.assert_allclose(first.gain, 1.0)  # the GM default volume until the change
    np.testing.assert_allclose(second.gain, (64 / 100) ** 2)  # 40 log10(64/100) = -7.8 dB from the default

    def second_over_first_db(controls) -> float:
        loud, quiet = (np.abs(part).max() for part in np.split(render_midi(timbre_model, song(two, controls),
                                                                          "flute")[:32000], 2))
        return 20 * np.log10(quiet / loud)

    # Against the same song without the change: each note draws its own latent, so even equal notes of a
    # tiny test model differ in level (by 2.5 dB on one machine's build of it).
    assert second_over_first_db([(7, 64, 0.8)]) - second_over_first_db([]) == pytest.approx(
        20 * np.log10((64 / 100) ** 2), abs=0.5)

    pedal = [(64, 127, 0.1), (64, 0, 2.5)]
    notes = [(60, 0.0, 0.5), (64, 0.0, 0.5), (60, 1.2, 1.5), (67, 2.6, 3.0)]
    ends = [(e.pitch, e.onset, e.offset) for e in read_notes(song(notes, pedal))[0]]
    # held by the pedal until its key is struck again (60), until the pedal lifts (64, the second 60);
    # a note after the pedal lifts is as written
    assert ends == [(60, 0.0, 1.2), (64, 0.0, 2.5), (60, 1.2, 2.5), (67, 2.6, 3.0)]


def test_inversion_finds_a_closer_timbre(timbre_model):
    target = timbre_model.note(60, instrument="violin", seed=0)
    latent, losses = timbre_model.invert(target, 16000, pitch=60, steps=60)
    assert latent.shape == (timbre_model.cfg.timbre_dim,) and torch.isfinite(latent).all()
    # A few dozen steps of training leave the tiny model's timbre space flat: only the direction is tested
    # here; the bundled model's inversion of a real note is tested for how close it gets.
    assert losses[-1] < losses[0], losses[::10]
    assert timbre_model.note(60, latent=latent.numpy()).shape == target.shape  # usable as a timbre


# -- the bundled note model ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundled():
    from audiogan.timbre import TimbreModel

    return TimbreModel.load(device="cpu")


def test_bundled_model_plays_the_asked_pitch(bundled):
    from benchmarks.timbre_quality import cents_off

    assert bundled.card["name"] == "timbre-gm-16k" and len(bundled.instruments) == 34
    names = ["acoustic_grand_piano", "violin", "flute", "trumpet", "marimba", "clarinet"]
    pitches = [43, 55, 67, 79]
    audio = bundled.generate(pitches * len(names), [n for n in names for _ in pitches])
    cents = [cents_off(a, p) for a, p in zip(audio, pitches * len(names), strict=True)]
    on_pitch = np.mean([abs(c) <= 50 for c in cents])
    assert on_pitch >= 0.9, np.round(cents).tolist()  # measured: 24 / 24


def test_bundled_model_plays_low_notes_in_their_octave(bundled):
    from benchmarks.timbre_quality import cents_off

    names = ["acoustic_grand_piano", "violin", "flute", "trumpet", "clarinet", "saw_lead"]
    pitches = [36, 40]
    audio = bundled.generate(pitches * len(names), [n for n in names for _ in pitches])
    cents = [cents_off(a, p) for a, p in zip(audio, pitches * len(names), strict=True)]
    # measured: 12 / 12 (without the half-harmonic comb, 6 of the 12 are heard an octave down)
    assert sum(abs(c) <= 50 for c in cents) >= 11, np.round(cents).tolist()


def test_bundled_drawbar_organ_sounds_its_sub_octave_and_keeps_its_pitch(bundled):
    """The card gives the drawbar organ its 16' sub-octave (f0 / 2) and 5 1/3' quint (1.5 f0); the flute, no
    such stop, keeps the plain comb's note bit for bit, and pitch trackers still hear the organ at its f0."""
    from audiogan.timbre import TimbreModel
    from benchmarks.timbre_quality import cents_off

    asked = dict(bundled.card["combs"]["drawbar_organ"]["partials"])
    pitches = [40, 57, 69]
    names = ["drawbar_organ"] * 3 + ["flute"] * 3
    both = bundled.generate(pitches * 2, names)  # one pass, as a server batches them
    organ, flute = both[:3], both[3:]
    for p, o, f in zip(pitches, organ, flute, strict=True):
        f0 = 440 * 2 ** ((p - 69) / 12)
        assert partial_db(o, f0, 0.5) == pytest.approx(asked[0.5], abs=3), p
        assert partial_db(o, f0, 1.5) == pytest.approx(asked[1.5], abs=3), p
        assert partial_db(f, f0, 0.5) < asked[0.5] - 30, p
        assert abs(cents_off(o, p)) <= 50, p
        assert bundled.note_pitch(o, bundled.sample_rate) == p  # conversion's and inversion's own analysis
    plain = TimbreModel(bundled.G, {k: v for k, v in bundled.card.items() if k != "combs"}, "cpu")
    np.testing.assert_array_equal(plain.generate(pitches * 2, names)[3:], flute)  # the same pass, plain combs
    # A morph takes the organ's comb in part, less with every step away from it, none at the flute.
    gains = bundled.comb_settings(bundled.mix("drawbar_organ", "flute", [0.0, 0.25, 0.5, 1.0]))["gains"][:, 0]
    assert gains[0] == pytest.approx(10 ** (asked[0.5] / 20)) and (gains.diff() <= 0).all() and gains[-1] == 0
    with pytest.raises(ValueError, match="does not know: tuba"):
        TimbreModel(bundled.G, {**bundled.card, "combs": {"tuba": {}}}, "cpu")


def test_bundled_model_decodes_what_it_generates(bundled):
    """The phase-locked note's own spectrogram is closer to the one the generator asked for."""
    names = ["acoustic_grand_piano", "violin", "flute", "trumpet"]
    c = bundled.cfg.spectral
    with torch.inference_mode():
        z = torch.stack([torch.randn(bundled.cfg.latent_dim, generator=torch.Generator().manual_seed(0))] * 4)
        asked = bundled.G(z, torch.tensor([40, 60, 72, 52]), torch.stack([bundled.timbre(n) for n in names])).float()

        def mismatch(lock: bool) -> float:
            heard = bundled.spectral.encode(bundled.spectral.decode(asked, lock_phase=lock))
            magnitude = [torch.exp(x[:, 0] * c.log_scale - c.log_offset) for x in (asked, heard)]
            return float(torch.linalg.norm(magnitude[0] - magnitude[1]) / torch.linalg.norm(magnitude[0]))

        assert mismatch(True) < 0.5 * mismatch(False), (mismatch(True), mismatch(False))  # measured: 0.14, 0.70


@pytest.fixture(scope="module")
def held_out_violin(tmp_path_factory) -> Path:
    """A real violin note of the velocity the bundled model never saw (50), rendered like its data."""
    pytest.importorskip("fluidsynth", reason="needs pyfluidsynth and the fluidsynth library")
    out = tmp_path_factory.mktemp("violin")
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "data", "notes", "--programs", "40", "--pitches",
                           "60", "--velocities", "50", "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return next((out / "audio").glob("*.wav"))


@pytest.mark.parametrize("lead_in", [0.0, 0.3])
def test_bundled_model_inverts_a_real_note(bundled, held_out_violin, lead_in):
    wave, rate = sf.read(held_out_violin, dtype="float32")
    # Recordings start with some silence; before inversion aligned to the note's onset, 0.3 s of it gave a flute.
    wave = np.concatenate([np.zeros(round(lead_in * rate), np.float32), wave])
    assert bundled.note_pitch(wave, rate) == 60  # what invert uses when no pitch is given
    latent, losses = bundled.invert(wave, rate, pitch=60, steps=60)
    assert losses[-1] < 0.75 * losses[0], losses[::10]  # measured: 0.59 with and without the lead-in
    # The recovered timbre lands among the strings: measured, its nearest instruments are cello, string
    # ensemble, accordion, saw lead, violin (5th of 34; the margin allows for other CPUs' rounding).
    distance = (bundled.G.instrument.weight.detach() - latent).norm(dim=1)
    nearest = distance.argsort()[:8].tolist()
    assert bundled.cfg.families[nearest[0]] == "string"
    assert bundled.instruments.index("violin") in nearest, [bundled.instruments[i] for i in nearest]


def test_a_note_that_starts_late_is_found(bundled, held_out_violin):
    wave, rate = sf.read(held_out_violin, dtype="float32")
    late = np.concatenate([np.zeros(3 * rate, np.float32), wave])  # used to be "no pitched note found"
    assert bundled.note_pitch(late, rate) == 60


def test_a_dc_offset_changes_nothing_in_a_conversion(timbre_model):
    """An offset of -34 dBFS made the rests between notes loud unpitched frames: the melody was refused as
    polyphonic, and a legato one came out at the peak of the offset signal."""
    from audiogan.timbre.convert import convert

    plain = convert(timbre_model, melody(), 16000, "violin")
    offset = convert(timbre_model, melody() + 0.02, 16000, "violin")
    np.testing.assert_allclose(offset, plain, atol=1e-4)  # measured: 3.4e-5 at most, float32 rounding


def test_bundled_model_plays_a_performances_vibrato(bundled):
    from audiogan.timbre.convert import convert

    wave = melody(vibrato_cents=35)
    heard = {flat: convert(bundled, wave, 16000, "flute", flat=flat) for flat in (False, True)}
    for flat, expected in ((False, (0.8, 1.01)), (True, (-0.5, 0.5))):
        scores = []
        for pitch, start, end in MELODY:
            span = slice(int((start + 0.06) * 16000), int((end - 0.06) * 16000))
            ref, out = pyin_cents(wave[span], pitch), pyin_cents(heard[flat][span], pitch)
            ok = np.isfinite(ref) & np.isfinite(out)
            scores.append(np.corrcoef(ref[ok], out[ok])[0, 1] if out[ok].std() > 0 else 0.0)
        # measured: 0.94-0.99 per note with the contour; -0.10 to 0.26 flat
        assert all(expected[0] < c < expected[1] for c in scores), (flat, np.round(scores, 2))


def test_bundled_model_follows_a_performances_dynamics(bundled):
    from audiogan.timbre.convert import convert
    from benchmarks.timbre_expression import level_score, synthetic_dynamics

    wave = synthetic_dynamics()  # crescendo, tremolo, diminuendo, swell
    _, followed, _ = level_score(wave, convert(bundled, wave, 16000, "flute"))
    _, flat, _ = level_score(wave, convert(bundled, wave, 16000, "flute", flat=True))
    assert followed > 0.9 and flat < 0.5, (followed, flat)  # measured: 0.97 and 0.10


def test_bundled_model_glides_without_re_attacks(bundled):
    from dataclasses import replace

    from audiogan.timbre.convert import Conversion
    from benchmarks.timbre_expression import glide_tone, level_dips

    wave = glide_tone([(0.6, 60, 60), (0.5, 60, 67), (0.6, 67, 67), (0.3, 67, 62), (0.5, 62, 62)])

    def dips(legato: bool) -> list[float]:
        conversion = Conversion.plan(bundled, wave, 16000, "violin")
        conversion.events = [replace(e, legato=e.legato and legato) for e in conversion.events]
        mix = conversion.mixdown(16000)
        for start, end in conversion.passes(bundled):
            conversion.play(bundled, 0, start, end, mix)
        return level_dips(conversion.level(mix), len(wave))

    # measured: none crossfaded; 5 dips of up to 7.6 dB with each semitone re-attacked
    assert dips(True) == [] and len(dips(False)) >= 3


def test_bundled_model_converts_a_melody_at_its_pitches(bundled):
    import librosa

    from audiogan.timbre.convert import convert

    out = convert(bundled, melody(), 16000, "violin")
    assert out.shape == melody().shape
    for pitch, start, end in MELODY:
        segment = out[int((start + 0.05) * 16000):int((end - 0.05) * 16000)]
        f0, voiced, _ = librosa.pyin(segment, fmin=60, fmax=1000, sr=16000, frame_length=1024)
        cents = 1200 * np.log2(np.nanmedian(f0[voiced]) / (440 * 2 ** ((pitch - 69) / 12)))
        assert abs(cents) < 50, (pitch, cents)  # measured: within 1 cent for all five notes


def test_inversion_refuses_noise_and_silence_instead_of_fitting_them(timbre_model):
    """Without these checks white noise got a timbre at a pitch pYIN guessed (35 Hz), and so did silence."""
    noise = 0.3 * np.random.default_rng(0).standard_normal(32000).astype(np.float32)
    with pytest.raises(ValueError, match="polyphonic or unpitched"):
        timbre_model.invert(noise, 16000, steps=1)
    with pytest.raises(ValueError, match="the recording is silent"):
        timbre_model.invert(np.zeros(32000, np.float32), 16000, pitch=60, steps=1)
    quiet = np.zeros(32000, np.float32)
    quiet[2000] = 1e-3  # a click alone: nothing pYIN can call a note
    with pytest.raises(ValueError, match="no pitched note found in the input"):
        timbre_model.invert(quiet, 16000, steps=1)


def test_generate_takes_numpy_velocities_and_seeds(timbre_model):
    name = timbre_model.instruments[0]
    as_lists = timbre_model.generate([60, 64], [name, name], [80, 100], [1, 2])
    as_arrays = timbre_model.generate([60, 64], [name, name], np.array([80, 100]), np.array([1, 2]))
    np.testing.assert_array_equal(as_lists, as_arrays)


def test_values_a_note_cannot_take_are_refused_not_rounded(timbre_model):
    name = timbre_model.instruments[0]
    for call, message in [(lambda: timbre_model.note(60.5, instrument=name), "pitch 60.5 is not a whole number"),
                          (lambda: timbre_model.note(60, instrument=name, velocity=100.7), "velocity 100.7"),
                          (lambda: timbre_model.note(60, instrument=name, velocity=float("nan")),
                           "velocity nan is not a whole number"),  # was "cannot convert float NaN to integer"
                          (lambda: timbre_model.note(60, instrument=name, seconds=1e-6), r"seconds 1e-06 is out"),
                          (lambda: timbre_model.mix(name, name, [2.0]), "alphas must lie in 0..1"),
                          (lambda: timbre_model.invert(np.full(4000, np.nan), 16000, 60), "NaN or Inf"),
                          (lambda: timbre_model.invert(np.zeros(4000), 0, 60), "rate 0 must be a positive")]:
        with pytest.raises(ValueError, match=message):
            call()
    assert timbre_model.note(60.0, instrument=name).shape == timbre_model.note(60, instrument=name).shape

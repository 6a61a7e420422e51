"""The adversarial training loop: it learns, resumes exactly, starts from an export, and guards against NaN."""

from __future__ import annotations

import json
import logging
import math
import shutil
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from audiogan import save_audio, weights
from audiogan.train import checkpoint as checkpoint_module
from audiogan.train import vocoder_trainer
from audiogan.train.checkpoint import load_checkpoint
from audiogan.train.vocoder_trainer import METRIC_NAMES, VocoderTrainer

CPU = torch.device("cpu")
TIMING = {"steps_per_s", "device_minutes"}


def metric_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def training_rows(run_dir: Path) -> list[dict]:
    """Per-step rows without the final summary row and without wall-clock fields."""
    return [{k: v for k, v in row.items() if k not in TIMING} for row in metric_rows(run_dir) if not row.get("final")]


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def unchanged(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    now = module.state_dict()
    return before.keys() == now.keys() and all(
        torch.equal(before[k].nan_to_num(7.0), now[k].nan_to_num(7.0)) for k in before)


def step(trainer: VocoderTrainer) -> dict[str, float]:
    stats = trainer.train_step(*trainer.bank.sample(trainer.cfg.train.batch_size, trainer.gen))
    return dict(zip(METRIC_NAMES, stats.tolist(), strict=True))


def leftovers(folder: Path) -> list[str]:
    """Temp files of the write-then-rename pattern (".NAME.tmp", ".NAME.123.tmp.npy")."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name)


# ----- learning --------------------------------------------------------------------------------------------------
def test_training_lowers_the_mel_loss(trained_tiny):
    """40 steps of the tiny recipe on one real clip: its copy-synthesis mel L1 drops (it is ~2.2 at init).

    Measured on the whole clip in eval mode, because the per-batch training mel L1 swings with the random
    crop and gain far more than it moves in 40 steps."""
    assert trained_tiny.after < 0.95 * trained_tiny.before
    rows = metric_rows(trained_tiny.run_dir)
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 40]
    assert rows[-1]["final"] is True and not any(r.get("final") for r in rows[:-1])
    for row in rows:
        assert set(METRIC_NAMES) <= set(row)
        assert all(math.isfinite(row[k]) for k in METRIC_NAMES)
        assert row["skipped"] == 0
        assert row["lr"] == pytest.approx(trained_tiny.cfg.train.learning_rate)
        assert 0.0 <= row["d_acc"] <= 1.0
    assert trained_tiny.trainer.step == 40
    run = trained_tiny.run_dir
    assert {"checkpoint.pt", "metrics.jsonl", "tiny.safetensors", "tiny.json"} <= {p.name for p in run.iterdir()}
    assert leftovers(run) == []
    assert load_checkpoint(run / "checkpoint.pt", CPU)["step"] == 40


def test_generator_weights_move_and_stay_finite(trained_tiny, tiny_model_config):
    from audiogan.vocoder import build_generator

    torch.manual_seed(trained_tiny.cfg.train.seed)  # the trainer seeds like this before building G
    fresh = build_generator(tiny_model_config).state_dict()
    trained = trained_tiny.trainer.G.state_dict()
    assert all(torch.isfinite(v).all() for v in trained.values())
    assert any(not torch.equal(fresh[k], trained[k]) for k in fresh)


# ----- exact resume ----------------------------------------------------------------------------------------------
def test_resume_reproduces_an_uninterrupted_run(tmp_path, demo_data_dir, tiny_config):
    def run(max_steps: int, name: str, resume: str | None = None) -> VocoderTrainer:
        cfg = tiny_config(max_steps=max_steps, log_every=1, lr_decay_every=2)
        trainer = VocoderTrainer(cfg, [str(demo_data_dir)], tmp_path / name, device="cpu", resume=resume)
        trainer.fit()
        return trainer

    whole = run(6, "whole")
    first = run(3, "first")
    ck = tmp_path / "first" / "checkpoint.pt"
    assert load_checkpoint(ck, CPU)["step"] == 3
    second = run(6, "second", resume=str(ck))

    expected = training_rows(tmp_path / "whole")
    assert [r["step"] for r in expected] == [1, 2, 3, 4, 5, 6]
    assert len({r["lr"] for r in expected}) == 3  # decays every 2 steps (lr of steps 0-5), across the resume
    assert training_rows(tmp_path / "first") + training_rows(tmp_path / "second") == expected
    assert second.step == whole.step == 6
    for a, b in [(whole.G, second.G), (whole.D, second.D)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # Device time carries over from the checkpoint.
    assert metric_rows(tmp_path / "second")[0]["device_minutes"] >= load_checkpoint(ck, CPU)["device_minutes"]
    assert first.step == 3


def test_checkpoint_is_written_atomically(tmp_path, demo_data_dir, tiny_config, monkeypatch):
    trainer = VocoderTrainer(tiny_config(max_steps=2, log_every=1), [str(demo_data_dir)], tmp_path / "run",
                             device="cpu")
    trainer.fit()
    path = trainer.checkpoint()
    assert path == tmp_path / "run" / "checkpoint.pt"
    assert leftovers(tmp_path / "run") == []
    good = path.read_bytes()

    def crash(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        trainer.checkpoint()
    monkeypatch.undo()
    assert path.read_bytes() == good  # the previous checkpoint is untouched
    assert leftovers(tmp_path / "run") == []  # nor the failed one's temp file
    assert load_checkpoint(path, CPU)["step"] == 2


def test_checkpoint_and_export_work_without_fit(tmp_path, demo_data_dir, tiny_config):
    """A trainer driven by train_step() (not fit()) can still be checkpointed, resumed and exported."""
    cfg = tiny_config(max_steps=10)
    trainer = VocoderTrainer(cfg, [str(demo_data_dir)], tmp_path / "run", device="cpu")
    step(trainer)
    step(trainer)
    path = trainer.checkpoint()
    assert load_checkpoint(path, CPU)["step"] == 2
    exported = trainer.export(tmp_path / "g.safetensors")
    assert weights.read_card(exported)["training"]["steps"] == 2
    resumed = VocoderTrainer(cfg, [str(demo_data_dir)], tmp_path / "run2", device="cpu", resume=str(path))
    assert resumed.step == 2
    assert unchanged(snapshot(trainer.G), resumed.G)


# ----- starting from an exported generator -----------------------------------------------------------------------
def test_init_from_exported_generator_gives_discriminators_a_head_start(trained_tiny, tmp_path, tiny_config):
    exported = trained_tiny.trainer.export(tmp_path / "export" / "tiny.safetensors")
    card = weights.read_card(exported)
    cfg = tiny_config(max_steps=100, disc_head_start_steps=2, lr_decay_every=7, gen_ramp_steps=4)
    trainer = VocoderTrainer(cfg, [str(trained_tiny.data_dir)], tmp_path / "run", device="cpu",
                             init_generator=str(exported))
    assert trainer.step == card["training"]["steps"] == 40
    assert trainer.head_start_until == 40 + 2
    assert trainer.prior_minutes == pytest.approx(card["training"]["device_minutes"])
    stored = weights.read_weights(exported)
    assert all(torch.equal(v, stored[k].float()) for k, v in trainer.G.state_dict().items())

    lr0, decay = cfg.train.learning_rate, cfg.train.lr_decay
    g0, d0 = snapshot(trainer.G), snapshot(trainer.D)
    for _ in range(2):
        stats = step(trainer)
        assert stats["g_adv"] == stats["g_fm"] == stats["skipped"] == 0.0
        assert math.isfinite(stats["mel_l1"]) and stats["d_loss"] > 0
        assert unchanged(g0, trainer.G)
        # The schedule continues as if it had run from step 0 (40 // 7 = 5 decays so far).
        assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(lr0 * decay**5, rel=1e-9)
    assert not unchanged(d0, trainer.D)
    assert trainer.step == 42
    # Head start over: the generator trains again, its learning rate ramping up over gen_ramp_steps.
    g_lrs = []
    for _ in range(5):
        stats = step(trainer)
        assert stats["g_adv"] > 0
        g_lrs.append(trainer.opt_g.param_groups[0]["lr"] / trainer.opt_d.param_groups[0]["lr"])
    assert g_lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert not unchanged(g0, trainer.G)
    assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(lr0 * decay**6, rel=1e-9)  # step 46 // 7 = 6


def test_init_generator_with_a_different_model_config_is_refused(trained_tiny, tmp_path, tiny_config):
    exported = trained_tiny.trainer.export(tmp_path / "tiny.safetensors")
    cfg = tiny_config()
    cfg.model.generator.istft.dim = 32
    with pytest.raises(ValueError, match="different model config"):
        VocoderTrainer(cfg, [str(trained_tiny.data_dir)], tmp_path / "run", device="cpu",
                       init_generator=str(exported))


def test_unknown_compile_mode_is_refused_before_any_work(tmp_path, demo_data_dir, tiny_config):
    with pytest.raises(ValueError, match="compile_mode 'fast': choose one of default, reduce-overhead"):
        VocoderTrainer(tiny_config(compile_mode="fast"), [str(demo_data_dir)], tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()


# ----- NaN guard -------------------------------------------------------------------------------------------------
def nan_mel_loss(monkeypatch, when=lambda: True):
    """Make the trainer's mel loss non-finite (on the steps where ``when()`` is true)."""
    real = F.l1_loss
    fake_f = types.SimpleNamespace(l1_loss=lambda a, b: real(a, b) * (float("nan") if when() else 1.0))
    monkeypatch.setattr(vocoder_trainer, "F", fake_f)


def test_non_finite_mel_loss_skips_the_generator_update(tmp_path, demo_data_dir, tiny_config, monkeypatch):
    trainer = VocoderTrainer(tiny_config(max_steps=10), [str(demo_data_dir)], tmp_path / "run", device="cpu")
    g0, d0 = snapshot(trainer.G), snapshot(trainer.D)
    nan_mel_loss(monkeypatch)
    stats = step(trainer)
    assert stats["skipped"] == 1.0
    assert math.isnan(stats["mel_l1"])
    assert unchanged(g0, trainer.G)
    assert not unchanged(d0, trainer.D)  # the discriminator's loss was finite, so it did learn
    # The skipped step left no NaN behind in the optimizer, so training recovers.
    for state in trainer.opt_g.state.values():
        assert all(torch.isfinite(v).all() for v in state.values() if isinstance(v, torch.Tensor))
    monkeypatch.undo()
    stats = step(trainer)
    assert stats["skipped"] == 0.0
    assert not unchanged(g0, trainer.G)
    assert all(torch.isfinite(v).all() for v in trainer.G.state_dict().values())


def test_nan_in_generator_weights_skips_both_updates(tmp_path, demo_data_dir, tiny_config):
    trainer = VocoderTrainer(tiny_config(max_steps=10), [str(demo_data_dir)], tmp_path / "run", device="cpu")
    with torch.no_grad():
        trainer.G.embed.weight[0, 0, 0] = float("nan")
    g0, d0 = snapshot(trainer.G), snapshot(trainer.D)
    stats = step(trainer)
    assert stats["skipped"] == 1.0
    assert math.isnan(stats["d_loss"])
    assert unchanged(g0, trainer.G)
    assert unchanged(d0, trainer.D)
    assert all(torch.isfinite(v).all() for v in trainer.D.state_dict().values())


def test_fit_stops_after_nan_patience_bad_steps_in_a_row(tmp_path, demo_data_dir, tiny_config):
    cfg = tiny_config(max_steps=20, log_every=1, nan_patience=3)
    trainer = VocoderTrainer(cfg, [str(demo_data_dir)], tmp_path / "run", device="cpu")
    with torch.no_grad():
        trainer.G.embed.weight[0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"3 non-finite steps in a row at step 3; stopping"):
        trainer.fit()
    assert trainer.step == 3


def test_isolated_bad_steps_are_counted_but_do_not_stop_training(tmp_path, demo_data_dir, tiny_config, monkeypatch):
    cfg = tiny_config(max_steps=6, log_every=1, nan_patience=2)
    trainer = VocoderTrainer(cfg, [str(demo_data_dir)], tmp_path / "run", device="cpu")
    nan_mel_loss(monkeypatch, when=lambda: trainer.step % 2 == 0)
    trainer.fit()
    assert trainer.step == 6
    rows = training_rows(tmp_path / "run")
    assert [r["skipped"] for r in rows] == [1, 0, 1, 0, 1, 0]
    assert all(torch.isfinite(v).all() for v in trainer.G.state_dict().values())


# ----- validation ------------------------------------------------------------------------------------------------
def test_held_out_clips_are_validated(tmp_path, demo_path, demo_wave, tiny_config, caplog):
    corpus = tmp_path / "corpus"
    (corpus / "spk_a").mkdir(parents=True)
    shutil.copy(demo_path, corpus / "spk_a" / "demo.flac")
    save_audio(corpus / "spk_b" / "part1.flac", demo_wave[:48000], 16000)
    save_audio(corpus / "spk_b" / "part2.flac", demo_wave[32000:], 16000)
    cfg = tiny_config(max_steps=2, log_every=1)
    cfg.data.validation = ["*/spk_b/*", "*/spk_z/*"]
    cfg.data.validation_per_pattern = 1
    cfg.sources = {"corpus": "test corpus, CC BY 4.0"}
    with caplog.at_level(logging.WARNING, logger="audiogan.train.vocoder_trainer"):
        trainer = VocoderTrainer(cfg, [str(corpus)], tmp_path / "run", device="cpu")
    assert "'*/spk_z/*' matches no file" in caplog.text
    assert trainer.train_files == [corpus / "spk_a" / "demo.flac"]
    assert trainer.valid_files == [corpus / "spk_b" / "part1.flac"]
    assert trainer.data_files == {"corpus": {"train_clips": 1, "validation_clips": 1,
                                             "source": "test corpus, CC BY 4.0"}}
    result = trainer.fit()
    assert math.isfinite(result["valid_mel_l1"]) and result["valid_mel_l1"] > 0
    assert 0.0 <= result["valid_stoi"] <= 1.0
    if "valid_pesq_wb" in result:
        assert -0.5 <= result["valid_pesq_wb"] <= 4.7
    assert trainer.G.training  # validation switches the generator back to training mode
    card = weights.read_card(tmp_path / "run" / "tiny.safetensors")
    assert card["validation"]["valid_mel_l1"] == pytest.approx(result["valid_mel_l1"])
    assert card["data"]["corpus"]["source"] == "test corpus, CC BY 4.0"

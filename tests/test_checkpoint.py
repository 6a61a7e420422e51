"""What the three trainers share about checkpoints: Ctrl-C leaves one to resume from, and a resume or a
continued export is refused when the recipe's model config no longer matches it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from audiogan.config import load_yaml, override_recipe
from audiogan.train.timbre_trainer import TimbreTrainer, TimbreTrainingConfig
from audiogan.train.tts_trainer import TTSTrainer, TTSTrainingConfig
from audiogan.train.vocoder_trainer import VocoderTrainer

REPO = Path(__file__).resolve().parents[1]


def interrupt_at(monkeypatch: pytest.MonkeyPatch, trainer_type: type, step: int) -> None:
    """Ctrl-C as ``trainer_type``'s training step ``step`` begins."""
    real = trainer_type.train_step

    def train_step(trainer, *args):
        if trainer.step == step:
            raise KeyboardInterrupt
        return real(trainer, *args)

    monkeypatch.setattr(trainer_type, "train_step", train_step)


def test_vocoder_resume_with_another_model_config_is_refused_before_reading_data(tmp_path, demo_data_dir,
                                                                                 tiny_config):
    checkpoint = VocoderTrainer(tiny_config(), [str(demo_data_dir)], tmp_path / "run", device="cpu").checkpoint()
    changed = override_recipe(tiny_config(), "model.mel.sample_rate=22050")
    with pytest.raises(ValueError, match=r"checkpoint\.pt was trained with a different model config than this "
                                         r"recipe \(model\.mel\.sample_rate: 16000 there, 22050 here\)"):
        VocoderTrainer(changed, [str(tmp_path / "no-data")], tmp_path / "run2", device="cpu", resume=str(checkpoint))


def test_vocoder_init_from_another_kind_of_model_is_refused(tmp_path, demo_data_dir, tiny_config):
    with pytest.raises(ValueError, match=r"tts-lj-16k\.safetensors is a tts model, not a vocoder model"):
        VocoderTrainer(tiny_config(), [str(demo_data_dir)], tmp_path / "run", device="cpu", init_generator="tts-lj-16k")


def tts_config(tmp_path: Path) -> TTSTrainingConfig:
    cfg = load_yaml(TTSTrainingConfig, REPO / "configs" / "tts" / "tiny_test.yaml")
    cfg.data.cache_dir = str(tmp_path / "cache")
    return cfg


def timbre_config() -> TimbreTrainingConfig:
    return load_yaml(TimbreTrainingConfig, REPO / "configs" / "timbre" / "tiny_test.yaml")


@pytest.mark.parametrize(("trainer_type", "data", "config", "change", "message"), [
    (TTSTrainer, "espeak_corpus", "tts", ("dim", 48), r"\(model\.dim: 32 there, 48 here\)"),
    (TimbreTrainer, "notes_dir", "timbre", ("latent_dim", 8), r"\(model\.latent_dim: 16 there, 8 here\)"),
])
def test_ctrl_c_checkpoint_resumes_and_a_changed_model_is_refused(trainer_type, data, config, change, message,
                                                                  request, tmp_path, monkeypatch, caplog):
    folder = str(request.getfixturevalue(data))

    def recipe():
        return tts_config(tmp_path) if config == "tts" else timbre_config()

    trainer = trainer_type(recipe(), [folder], tmp_path / "run", device="cpu")
    interrupt_at(monkeypatch, trainer_type, 2)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    assert f"interrupted at step 2: wrote {checkpoint}" in caplog.text
    monkeypatch.undo()
    assert trainer_type(recipe(), [folder], tmp_path / "run2", device="cpu", resume=str(checkpoint)).step == 2
    changed = recipe()
    setattr(changed.model, *change)
    with pytest.raises(ValueError, match="different model config .*" + message):
        trainer_type(changed, [folder], tmp_path / "run3", device="cpu", resume=str(checkpoint))


def test_a_run_folder_holds_one_run(tmp_path, demo_data_dir, tiny_config):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from audiogan.train.rundir import claim_run_dir; "
         "claim_run_dir(Path(sys.argv[1]), None); print('held', flush=True); sys.stdin.read()", str(run)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=rf"run is in use by another training run \(pid {holder.pid}\); give "
                                             r"each run its own --run-dir"):
            VocoderTrainer(tiny_config(), [str(tmp_path / "no-data")], run, device="cpu")  # before any data
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    checkpoint = VocoderTrainer(tiny_config(), [str(demo_data_dir)], run, device="cpu").checkpoint()  # free now
    written = checkpoint.read_bytes()
    # Rerunning the same command used to restart at step 0 over the checkpoint.
    for trainer_type, recipe in ((VocoderTrainer, tiny_config()), (TTSTrainer, tts_config(tmp_path)),
                                 (TimbreTrainer, timbre_config())):
        with pytest.raises(ValueError, match=rf"run holds a run's checkpoint already: continue it with --resume "
                                             rf"{checkpoint}, or start afresh with another --run-dir"):
            trainer_type(recipe, [str(tmp_path / "no-data")], run, device="cpu")
    assert checkpoint.read_bytes() == written
    assert VocoderTrainer(tiny_config(), [str(demo_data_dir)], run, device="cpu", resume=str(checkpoint)).step == 0


def test_changed_discriminators_are_named_on_resume(tmp_path, demo_data_dir, tiny_config):
    checkpoint = VocoderTrainer(tiny_config(), [str(demo_data_dir)], tmp_path / "run", device="cpu").checkpoint()
    changed = override_recipe(tiny_config(), "discriminators=[mrd, msd]")
    with pytest.raises(ValueError, match=r"trained with discriminators \['mrd'\], this recipe has \['mrd', 'msd'\] "
                                         r"\(train.discriminators\)"):
        VocoderTrainer(changed, [str(demo_data_dir)], tmp_path / "run2", device="cpu", resume=str(checkpoint))


def test_a_resumed_run_logs_each_step_once(tmp_path, demo_data_dir, tiny_config, caplog):
    """A run killed after logging past its last checkpoint repeats those steps; the log keeps them once."""
    run = tmp_path / "run"
    VocoderTrainer(tiny_config(max_steps=2, log_every=1), [str(demo_data_dir)], run, device="cpu").fit()
    metrics = run / "metrics.jsonl"
    with metrics.open("a") as fh:  # what a SIGKILL after two more logged steps, mid-write, leaves
        fh.writelines(json.dumps({"step": s, "mel_l1": 9.9}) + "\n" for s in (3, 4))
        fh.write('{"step": 5, "mel_')
    with caplog.at_level(logging.INFO, "audiogan.train.runlog"):
        resumed = VocoderTrainer(tiny_config(max_steps=4, log_every=1), [str(demo_data_dir)], run, device="cpu",
                                 resume=str(run / "checkpoint.pt"))
    assert "dropped 3 rows logged after step 2, the checkpoint's" in caplog.text
    resumed.fit()
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in rows if not r.get("final")] == [1, 2, 3, 4]
    assert all(r["mel_l1"] != 9.9 for r in rows)

"""Training as a user on their own CPU meets it: a diverging run, a killed or interrupted one, a full disk,
and a resume on data that changed since the checkpoint."""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audiogan import save_audio, weights
from audiogan.cli import main
from audiogan.config import load_yaml
from audiogan.train.checkpoint import load_checkpoint, save_checkpoint
from audiogan.train.rundir import claim_run_dir
from audiogan.train.runlog import RunLog
from audiogan.train.timbre_trainer import TimbreTrainer, TimbreTrainingConfig
from audiogan.train.tts_data import statistics
from audiogan.train.tts_trainer import TTSTrainer, TTSTrainingConfig
from audiogan.train.vocoder_trainer import VocoderTrainer

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tone_notes(tmp_path_factory) -> Path:
    """An NSynth-format folder of decaying harmonic tones, two instruments by their overtones, made in
    milliseconds (the soundfont fixture renders for a minute)."""
    root = tmp_path_factory.mktemp("tones")
    (root / "audio").mkdir()
    t = np.arange(8000) / 16000
    listing = {}
    for name, rolloff in (("bright", 0.9), ("dull", 0.3)):
        for pitch in (48, 54, 60, 66, 72):
            f0 = 440.0 * 2 ** ((pitch - 69) / 12)
            wave = sum(rolloff ** h * np.sin(2 * np.pi * f0 * (h + 1) * t) for h in range(6)) * np.exp(-3 * t)
            key = f"{name}_synthetic_000-{pitch:03d}-100"
            save_audio(root / "audio" / f"{key}.wav", (0.5 * wave / np.abs(wave).max()).astype(np.float32), 16000)
            listing[key] = {"pitch": pitch, "velocity": 100, "instrument_str": name,
                            "instrument_family_str": "synth_lead"}
    (root / "examples.json").write_text(json.dumps(listing))
    return root


def timbre_recipe(**train: object) -> TimbreTrainingConfig:
    cfg = load_yaml(TimbreTrainingConfig, REPO / "configs" / "timbre" / "tiny_test.yaml")
    for key, value in train.items():
        assert hasattr(cfg.train, key), key
        setattr(cfg.train, key, value)
    return cfg


def tts_recipe(tmp_path: Path, held_out: int) -> TTSTrainingConfig:
    cfg = load_yaml(TTSTrainingConfig, REPO / "configs" / "tts" / "tiny_test.yaml")
    cfg.data.cache_dir, cfg.data.validation_count = str(tmp_path / "cache"), held_out
    return cfg


def strict_rows(path: Path) -> list[dict]:
    """metrics.jsonl as a strict JSON reader takes it (no NaN, no Infinity)."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{path} holds {constant}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


# ----- a diverging run -------------------------------------------------------------------------------------------
def test_a_diverging_note_gan_stops_and_says_at_which_step(tone_notes, tmp_path):
    """An absurd learning rate: every update after the first is non-finite. The note trainer used to skip
    them without a word and run to the end (exit 0, an export); now it counts them and stops, as the others."""
    trainer = TimbreTrainer(timbre_recipe(learning_rate=1e30, nan_patience=3, log_every=1, max_steps=20),
                            [str(tone_notes)], tmp_path / "run", device="cpu")
    with pytest.raises(FloatingPointError, match=r"3 non-finite steps in a row at step \d+; stopping"):
        trainer.fit()
    assert trainer.step < 20
    rows = strict_rows(tmp_path / "run" / "metrics.jsonl")
    assert rows and rows[-1]["skipped"] >= 1
    assert not list((tmp_path / "run").glob("*.safetensors"))


def test_weights_that_outgrew_float16_are_not_exported(tone_notes, tmp_path):
    """A learning rate that drives the generator's weights past float16's range (65504) in a few steps: the
    float16 export held infinities (every note NaN) while the run said "done". Now the export is refused,
    naming a tensor; the checkpoint stays, and the float32 export of it is the user's call."""
    recipe = timbre_recipe(learning_rate=1e5, reconstruction_weight=1.0, adversarial_start=6, nan_patience=100,
                           max_steps=6, log_every=3)
    trainer = TimbreTrainer(recipe, [str(tone_notes)], tmp_path / "run", device="cpu")
    with pytest.raises(ValueError, match=r"timbre-tiny\.safetensors not written: \S+ .*exceed float16's range"):
        trainer.fit()
    assert not list((tmp_path / "run").glob("timbre-tiny.*"))
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt", CPU, "timbre")["step"] == 6
    strict_rows(tmp_path / "run" / "metrics.jsonl")  # diverged losses (inf) are left out, as NaN was


def test_a_diverging_voice_stops_on_its_guard_not_in_validation(espeak_corpus, tmp_path):
    """A diverged acoustic model predicts no frames: drawing that empty mel for TensorBoard raised "min():
    Expected reduction dim to be specified for input.numel() == 0" at the first validation, before the
    non-finite guard could say what had happened."""
    cfg = tts_recipe(tmp_path, 1)
    cfg.train.learning_rate, cfg.train.nan_patience, cfg.train.log_every = 1e30, 3, 1
    trainer = TTSTrainer(cfg, [str(espeak_corpus)], tmp_path / "run", device="cpu")
    with pytest.raises(FloatingPointError, match=r"3 non-finite steps in a row at step \d+; stopping"):
        trainer.fit()
    assert trainer.step < cfg.train.max_steps
    assert any("valid_length_ratio" in row for row in strict_rows(tmp_path / "run" / "metrics.jsonl"))


# ----- a killed run, a full disk ---------------------------------------------------------------------------------
WRITER = """
import sys, time
from audiogan.audio.io import write_atomic
def half(f):
    f.write(b"half a checkpoint")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
write_atomic(sys.argv[1], half)
"""


def test_a_checkpoint_write_cut_by_sigkill_leaves_the_last_whole_one_and_its_temp_file_goes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"the last whole checkpoint")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run / "checkpoint.pt")], stdout=subprocess.PIPE,
                              text=True)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    torn = [p.name for p in run.iterdir() if p.name.startswith(".checkpoint.pt.")]
    assert len(torn) == 1  # what each kill mid-save used to leave for good: a checkpoint-sized temp file
    claim_run_dir(run, resume=str(run / "checkpoint.pt"))  # the resumed run
    assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoint.pt"]
    assert (run / "checkpoint.pt").read_bytes() == b"the last whole checkpoint"


class InterruptedWrites:
    """A checkpoint file whose third write is cut into by Ctrl-C, as a signal arriving in the middle of
    torch's zip writer (3 in 12 signals sent at random moments of a 200 MB save) is. Files other than
    torch's (a zip: "PK" first) are left alone."""

    def __init__(self, file):
        self.file, self.writes, self.zip = file, 0, False

    def write(self, data):
        self.writes += 1
        self.zip = self.zip or bytes(data[:2]) == b"PK"
        if self.zip and self.writes == 3:
            print("Ctrl-C during a checkpoint write", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGINT)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.file.__exit__(*exc)


def test_ctrl_c_during_a_checkpoint_write_lets_it_finish_then_interrupts(tmp_path, monkeypatch):
    """torch's zip writer turned the KeyboardInterrupt into "RuntimeError: unexpected pos": the run ended on
    an error, and without the checkpoint Ctrl-C promises."""
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: InterruptedWrites(real(*args, **kwargs)))
    path = tmp_path / "run" / "checkpoint.pt"
    # Ctrl-C as an interactive run has it: a test runner started in the background (bash's & without job
    # control) ignores SIGINT, and the deferred interrupt was then, rightly, ignored too.
    started = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(path, {"step": 7, "weights": torch.ones(1000)})
        restored = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, started)
    monkeypatch.undo()
    assert load_checkpoint(path, CPU)["step"] == 7
    assert restored is signal.default_int_handler


def test_a_full_disk_names_the_checkpoint_and_the_export_it_could_not_write(tmp_path, demo_data_dir, tiny_config):
    trainer = VocoderTrainer(tiny_config(), [str(demo_data_dir)], tmp_path / "run", device="cpu")
    whole = trainer.checkpoint().read_bytes()
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(whole) // 2, limits[1]))  # what a full disk does to a write
    try:
        # torch's own words were "[enforce fail at inline_container.cc:672] . unexpected pos 2957504 vs ..."
        with pytest.raises(OSError, match=rf"could not write the checkpoint of step 0 to {tmp_path}/run/checkpoint"
                                          r"\.pt \(.+\): is the disk full\? A checkpoint written there before is"):
            trainer.checkpoint()
        with pytest.raises(OSError) as failed:  # weights larger than the limit
            weights.write_weights(tmp_path / "run" / "big.safetensors", {"w": torch.ones(len(whole))}, {},
                                  torch.float32)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    assert failed.value.filename == str(tmp_path / "run" / "big.safetensors")  # it named no file
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == whole
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")) == [".lock"]


def test_a_full_disk_names_the_metrics_log(tmp_path):
    runlog = RunLog(tmp_path / "run")
    runlog.writer = None  # TensorBoard's own thread writes its events file
    runlog.row(1, {"step": 1, "loss": 0.5})
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (runlog.path.stat().st_size, limits[1]))
    try:
        with pytest.raises(OSError) as failed:
            runlog.row(2, {"step": 2, "loss": 0.4})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    assert failed.value.filename == str(runlog.path)  # "[Errno 27] File too large", which file unsaid


# ----- a resume on changed data ----------------------------------------------------------------------------------
def test_a_resumed_voice_keeps_the_statistics_it_was_trained_with(espeak_corpus, tmp_path):
    """Pitch and energy are z-scored with the training clips' statistics, which the card carries to inference.
    A resume recomputed them from the data as it is now (here: one clip more held out), so the model went on
    learning, and was exported, with other constants than its predictors had learned."""
    data = [str(espeak_corpus)]
    checkpoint = TTSTrainer(tts_recipe(tmp_path, 1), data, tmp_path / "run", device="cpu").checkpoint()
    trained = load_checkpoint(checkpoint, CPU, "tts")["stats"]
    resumed = TTSTrainer(tts_recipe(tmp_path, 2), data, tmp_path / "run2", device="cpu", resume=str(checkpoint))
    assert statistics(resumed.train_set) != trained  # the data did change
    assert resumed.stats == trained
    card = weights.read_card(resumed.export(tmp_path / "voice.safetensors"))
    assert card["stats"] == trained
    assert all(math.isfinite(v) for v in card["stats"].values())


def test_a_resume_on_another_batch_size_says_so_and_a_longer_run_does_not(tmp_path, demo_data_dir, tiny_config,
                                                                          caplog):
    """"continue exactly" held only on the checkpoint's recipe; another batch size went on without a word."""
    checkpoint = VocoderTrainer(tiny_config(), [str(demo_data_dir)], tmp_path / "run", device="cpu").checkpoint()
    with caplog.at_level(logging.WARNING, "audiogan.train.checkpoint"):
        longer = VocoderTrainer(tiny_config(max_steps=10**6, log_every=1), [str(demo_data_dir)], tmp_path / "run2",
                                device="cpu", resume=str(checkpoint))
        assert "changed recipe" not in caplog.text
        VocoderTrainer(tiny_config(batch_size=3), [str(demo_data_dir)], tmp_path / "run3", device="cpu",
                       resume=str(checkpoint))
    assert (f"{checkpoint}: resuming with a changed recipe (train.batch_size: 2 there, 3 here): the run goes on "
            "from the checkpoint, but not as it would have on its own recipe") in caplog.text
    assert longer.step == 0


# ----- what the model card says ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tts_features(tmp_path_factory) -> Path:
    """One feature cache for the tests below: pYIN over the corpus took most of each test's time."""
    return tmp_path_factory.mktemp("tts_features")


def test_exported_voice_cards_carry_the_validation_of_their_checkpoints_step(espeak_corpus, tts_features, tmp_path):
    """`audiogan export tts` wrote an empty validation, where the vocoder's export reads the run's log."""
    cfg = tts_recipe(tts_features, 1)
    cfg.train.max_steps, cfg.train.log_every = 5, 5
    trainer = TTSTrainer(cfg, [str(espeak_corpus)], tmp_path / "run", device="cpu")
    trainer.fit()
    final = strict_rows(tmp_path / "run" / "metrics.jsonl")[-1]
    assert main(["export", "tts", str(tmp_path / "run" / "checkpoint.pt"), "-o", str(tmp_path / "v.safetensors")]) == 0
    validation = weights.read_card(tmp_path / "v.safetensors")["validation"]
    assert validation == {"step": 5, **{k: v for k, v in final.items() if k.startswith("valid_")}}
    assert "valid_mel_l1" in validation


def test_exported_note_cards_carry_their_last_collapse_check_and_its_step(tone_notes, tmp_path):
    """The note GAN's in-loop check stands in for a validation; `audiogan export timbre` wrote none."""
    recipe = timbre_recipe(max_steps=4, log_every=2, diversity_every=4)
    TimbreTrainer(recipe, [str(tone_notes)], tmp_path / "run", device="cpu").fit()
    checked = [row for row in strict_rows(tmp_path / "run" / "metrics.jsonl") if "diversity" in row]
    assert main(["export", "timbre", str(tmp_path / "run" / "checkpoint.pt"), "-o",
                 str(tmp_path / "n.safetensors")]) == 0
    validation = weights.read_card(tmp_path / "n.safetensors")["validation"]
    assert validation == {"step": checked[-1]["step"], "diversity": checked[-1]["diversity"],
                          "diversity_ratio": checked[-1]["diversity_ratio"]}


def test_a_run_killed_after_its_checkpoint_keeps_the_minutes_its_log_shows(tone_notes, tmp_path, caplog):
    """Killed between checkpoints, a run lost from its card the device time since the last one; the rows it
    logged past the checkpoint say how long it had run."""
    run = tmp_path / "run"
    recipe = timbre_recipe(max_steps=2, log_every=2, diversity_every=1000)
    TimbreTrainer(recipe, [str(tone_notes)], run, device="cpu").fit()
    at_two = (run / "checkpoint.pt").read_bytes()
    recipe.train.max_steps = 6
    TimbreTrainer(recipe, [str(tone_notes)], run, device="cpu", resume=str(run / "checkpoint.pt")).fit()
    logged = strict_rows(run / "metrics.jsonl")[-1]
    (run / "checkpoint.pt").write_bytes(at_two)  # as if killed at step 6 with its last checkpoint at step 2
    spent = load_checkpoint(run / "checkpoint.pt", CPU, "timbre")["device_minutes"]
    assert logged["step"] == 6 and logged["device_minutes"] > spent
    with caplog.at_level(logging.INFO, "audiogan.train.runlog"):
        resumed = TimbreTrainer(recipe, [str(tone_notes)], run, device="cpu", resume=str(run / "checkpoint.pt"))
    assert resumed.step == 2 and resumed.prior_minutes == pytest.approx(logged["device_minutes"])
    assert "device minutes to the run's cost: it ran them after its checkpoint, up to the step 6" in caplog.text
    # A checkpoint copied elsewhere is not this folder's: the rows past it may be a run that went on.
    (run / "copy.pt").write_bytes(at_two)
    (run / "metrics.jsonl").write_text(json.dumps(logged) + "\n")
    other = TimbreTrainer(recipe, [str(tone_notes)], run, device="cpu", resume=str(run / "copy.pt"))
    assert other.prior_minutes == spent


def test_a_diverging_mel_critic_is_not_updated_and_its_steps_count_as_skipped(espeak_corpus, tts_features,
                                                                              tmp_path):
    """The TTS trainer's mel discriminator stepped on whatever its gradients were: NaN weights, checkpointed."""
    cfg = tts_recipe(tts_features, 1)
    cfg.train.adversarial_weight, cfg.train.disc_learning_rate = 0.1, 1e30
    trainer = TTSTrainer(cfg, [str(espeak_corpus)], tmp_path / "run", device="cpu")
    skipped = [float(trainer.train_step()[trainer.loss_names.index("skipped")]) for _ in range(3)]
    critic = load_checkpoint(trainer.checkpoint(), CPU, "tts")["discriminator"]
    assert all(torch.isfinite(w).all() for w in critic.values())
    assert skipped[0] == 0 and skipped[-1] == 1  # its first step is finite and blows its weights up


# `audiogan` whose checkpoint writes get a Ctrl-C of their own: the test sends the first, mid-training, and the
# checkpoint that one writes gets the second.
SECOND_CTRL_C = """
import os, sys
sys.path.insert(0, sys.argv.pop(1))
from test_train_robust import InterruptedWrites
from audiogan import cli

real = os.fdopen
os.fdopen = lambda *args, **kwargs: InterruptedWrites(real(*args, **kwargs))
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_second_ctrl_c_during_the_interrupts_checkpoint_still_says_how_to_resume(tone_notes, tmp_path):
    """The checkpoint was written whole, but the deferred second Ctrl-C cut the line naming it."""
    proc = subprocess.Popen([sys.executable, "-c", SECOND_CTRL_C, str(Path(__file__).parent), "train", "timbre",
                             "--config", str(REPO / "configs" / "timbre" / "tiny_test.yaml"), "--data", str(tone_notes),
                             "--run-dir", "run", "--device", "cpu", "--set", "log_every=1", "--set",
                             "max_steps=1000000"],
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                            # a runner started in the background ignores SIGINT, and so would its children
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    shown = []
    while not any("runlog: step " in line for line in shown) and proc.poll() is None:
        shown.append(proc.stderr.readline())
    proc.send_signal(signal.SIGINT)
    err = "".join(shown) + proc.communicate(timeout=120)[1]
    run = tmp_path / "run"
    assert proc.returncode == 130 and "Ctrl-C during a checkpoint write" in err, err
    assert "wrote run/checkpoint.pt (continue with --resume run/checkpoint.pt)" in err
    assert "audiogan: interrupted" in err.splitlines() and "Traceback" not in err
    assert load_checkpoint(run / "checkpoint.pt", CPU, "timbre")["step"] >= 1

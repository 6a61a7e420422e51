"""Training as a user on their own CPU meets it: a diverging run, a killed or interrupted one, a full disk,
and a resume on data that changed since the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audiogan import save_audio
from audiogan.config import load_yaml
from audiogan.train.checkpoint import load_checkpoint
from audiogan.train.timbre_trainer import TimbreTrainer, TimbreTrainingConfig

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

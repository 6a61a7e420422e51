"""Note-GAN training throughput: seconds per step of a recipe, with the reconstruction target alone and
with the discriminator.

    python -m benchmarks.timbre_train_speed                                   # the bundled CPU recipe
    python -m benchmarks.timbre_train_speed --config configs/timbre/gm_notes.yaml --device cuda

The notes are synthetic (harmonic tones written to a temporary NSynth-format folder): a step costs the
same whatever the audio holds, so no data set is needed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiogan.config import load_yaml
from audiogan.train.timbre_trainer import TimbreTrainer, TimbreTrainingConfig
from benchmarks.common import seconds_per_step


def synthetic_notes(folder: Path, notes: int, cfg: TimbreTrainingConfig) -> None:
    (folder / "audio").mkdir()
    rate = cfg.model.spectral.sample_rate
    t = np.arange(cfg.model.spectral.samples) / rate
    examples = {}
    for i in range(notes):
        pitch = cfg.data.pitch_min + i % (cfg.data.pitch_max - cfg.data.pitch_min + 1)
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        tone = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 6) if h * f0 < rate / 2)
        key = f"synthetic_{i % 4:03d}-{pitch:03d}-100"
        sf.write(folder / "audio" / f"{key}.wav", (0.3 * tone * np.exp(-t)).astype(np.float32), rate)
        examples[key] = {"pitch": pitch, "velocity": 100, "instrument_str": f"tone{i % 4}",
                         "instrument_family_str": "synth_lead"}
    (folder / "examples.json").write_text(json.dumps(examples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/timbre/gm_notes_cpu.yaml")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_yaml(TimbreTrainingConfig, args.config)
    cfg.data.validation = []
    print(f"{args.config}: batch {cfg.train.batch_size}, {cfg.model.spectral.bins} x {cfg.model.spectral.frames} "
          f"spectrograms, device {args.device}, {args.threads} CPU threads")
    print("| phase | s/step | steps/s |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_notes(Path(tmp), 64, cfg)
        phases = [("generator alone (reconstruction target)", 10**9), ("with the discriminator", 0)]
        for name, start in phases:
            cfg.train.adversarial_start = start
            cfg.train.reconstruction_weight = cfg.train.reconstruction_weight or (1.0 if start else 0.0)
            trainer = TimbreTrainer(cfg, [tmp], Path(tmp) / "run", device=args.device)
            s = seconds_per_step(trainer.train_step, args.steps, args.device)
            print(f"| {name} | {s:.3f} | {1 / s:.2f} |", flush=True)


if __name__ == "__main__":
    main()

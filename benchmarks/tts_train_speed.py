"""Acoustic-model training throughput (seconds per step) with and without the CPU speed-ups.

    python -m benchmarks.tts_train_speed --data ../shared/data/speech/dctts_lj_prompts [--device cpu]

Variants of one recipe (default configs/tts/lj_prompts_cpu.yaml): attention dropout on/off (non-zero
attention dropout sends PyTorch's CPU attention to its unfused math path) and length-bucketed batches
(``train.length_buckets``) against plain random batches. Each variant warms up, then times --steps steps.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import torch

from audiogan.config import load_yaml
from audiogan.train.tts_trainer import TTSTrainer, TTSTrainingConfig
from benchmarks.common import seconds_per_step

ROOT = Path(__file__).resolve().parents[1]
# name: (attention dropout, length buckets)
VARIANTS = {
    "attention dropout 0.1, random batches": (0.1, 1),
    "no attention dropout, random batches": (0.0, 1),
    "no attention dropout, length-bucketed batches": (0.0, 4),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", required=True, help="LJSpeech-format folders")
    parser.add_argument("--config", default=str(ROOT / "configs" / "tts" / "lj_prompts_cpu.yaml"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    print(f"recipe {Path(args.config).name}, device {args.device}, {args.threads} threads, "
          f"{args.steps} timed steps after {args.warmup} warm-up steps")
    print("| variant | s/step | steps/s |")
    print("|---|---|---|")
    for name, (attention_dropout, buckets) in VARIANTS.items():
        cfg = load_yaml(TTSTrainingConfig, args.config)
        cfg.model.attention_dropout, cfg.train.length_buckets = attention_dropout, buckets
        with tempfile.TemporaryDirectory() as run:
            trainer = TTSTrainer(cfg, args.data, run, args.device)
            per_step = seconds_per_step(trainer.train_step, args.steps, trainer.device, args.warmup)
        print(f"| {name} | {per_step:.3f} | {1 / per_step:.2f} |")


if __name__ == "__main__":
    main()

"""Training throughput (steps/s) of vocoder recipes at batch 16 x 8192 samples.

    python benchmarks/train_speed.py --data DIR [DIR ...] [--variants v1-fp32-eager v1-bf16-compile ...]

Each variant warms up (compilation, cudnn autotuning) and is then timed over --steps steps between
two device synchronisations. Prints a table; --json writes the rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

from audiogan.config import load_yaml
from audiogan.train.vocoder_trainer import VocoderTrainer, VocoderTrainingConfig

ROOT = Path(__file__).resolve().parents[1]
# The bundled vocoder's recipe with its discriminators on from the first step (its CPU run left them off).
VECTOR_GAN = {"adversarial_start": 0}
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    # name: (config, train overrides)
    "v1-fp32-eager": ("hifigan_v1.yaml", {"bf16": False, "compile": False}),  # TF32 convolutions
    "v1-fp32-strict-eager": ("hifigan_v1.yaml", {"bf16": False, "compile": False, "tf32": False}),
    "v1-bf16-compile": ("hifigan_v1.yaml", {"bf16": True, "compile": True}),
    "istft-fp32-eager": ("istft_16k.yaml", {"bf16": False, "compile": False}),
    "istft-bf16-compile": ("istft_16k.yaml", {"bf16": True, "compile": True}),
    "vector-fp32-eager": ("vector_16k_cpu.yaml", {**VECTOR_GAN, "bf16": False, "compile": False}),
    "vector-bf16-compile": ("vector_16k_cpu.yaml", {**VECTOR_GAN, "bf16": True, "compile": True}),
    "vector-bf16-graphs": ("vector_16k_cpu.yaml", {**VECTOR_GAN, "bf16": True, "compile": True,
                                                   "compile_mode": "reduce-overhead"}),
    "vector-mrd-bf16-compile": ("vector_16k_cpu.yaml", {**VECTOR_GAN, "bf16": True, "compile": True,
                                                        "discriminators": ["mrd"]}),
    "vector-mrd-bf16-graphs": ("vector_16k_cpu.yaml", {**VECTOR_GAN, "bf16": True, "compile": True,
                                                       "compile_mode": "reduce-overhead", "discriminators": ["mrd"]}),
}


def measure(name: str, data: list[str], steps: int, warmup: int, device: str) -> dict[str, float | str]:
    config_file, overrides = VARIANTS[name]
    cfg = load_yaml(VocoderTrainingConfig, ROOT / "configs" / "vocoder" / config_file)
    for key, value in overrides.items():
        setattr(cfg.train, key, value)
    with tempfile.TemporaryDirectory() as run:
        trainer = VocoderTrainer(cfg, data, run, device)
        if trainer.cuda:  # each variant's own peak, not the largest so far
            torch.cuda.reset_peak_memory_stats()
        batch = cfg.train.batch_size
        t0 = time.perf_counter()
        for _ in range(warmup):
            trainer.train_step(*trainer.bank.sample(batch, trainer.gen))
        sync = torch.cuda.synchronize if trainer.cuda else (lambda: None)
        sync()
        warm_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(steps):
            stats = trainer.train_step(*trainer.bank.sample(batch, trainer.gen))
        sync()
        dt = time.perf_counter() - t0
        mem = torch.cuda.max_memory_allocated() / 2**30 if trainer.cuda else 0.0
        return {"variant": name, "steps_per_s": steps / dt, "warmup_s": warm_s, "peak_mem_gib": mem,
                "mel_l1_last": float(stats[3]), "batch": f"{batch}x{cfg.train.segment_size}",
                "discriminators": "+".join(cfg.train.discriminators)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=15)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="write rows to this file")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for name in args.variants:
        rows.append(measure(name, args.data, args.steps, args.warmup, args.device))
        r = rows[-1]
        print(f"{r['variant']:<20} {r['steps_per_s']:8.2f} steps/s  warm-up {r['warmup_s']:6.1f} s  "
              f"peak {r['peak_mem_gib']:.1f} GiB", flush=True)
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"\n| variant | discriminators | steps/s | warm-up s | peak GiB | batch |"
          f"   ({dev}, torch {torch.__version__})")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['discriminators']} | {r['steps_per_s']:.2f} | {r['warmup_s']:.0f} "
              f"| {r['peak_mem_gib']:.1f} | {r['batch']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

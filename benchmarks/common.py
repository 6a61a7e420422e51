"""Shared helpers for the benchmark scripts: the held-out clip list, a few generators to compare, a step timer."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from audiogan import Vocoder
from audiogan.config import load_yaml
from audiogan.train.data import find_audio, split_files
from audiogan.train.vocoder_trainer import VocoderTrainingConfig
from audiogan.vocoder.inference import with_inference_phase, with_phase_iterations
from audiogan.vocoder.model import build_generator

ROOT = Path(__file__).resolve().parents[1]
SHARED_SPEECH = ROOT.parent / "shared" / "data" / "speech"
DEFAULT_RECIPE = ROOT / "configs" / "vocoder" / "istft_16k.yaml"


def held_out_clips(data_dirs: list[Path], recipe: Path = DEFAULT_RECIPE) -> list[Path]:
    """The validation clips of a recipe: never seen in training (5 LibriSpeech speakers entirely)."""
    cfg = load_yaml(VocoderTrainingConfig, recipe)
    clips: list[Path] = []
    for d in data_dirs:
        clips += split_files(find_audio(d), cfg.data)[1]
    return clips


def untrained_vocoder(config_name: str, phase_iterations: int | None = None, phase: str | None = None) -> Vocoder:
    """A randomly initialised generator of a recipe: enough for speed, meaningless for quality."""
    cfg = load_yaml(VocoderTrainingConfig, ROOT / "configs" / "vocoder" / f"{config_name}.yaml")
    model = cfg.model if phase_iterations is None else with_phase_iterations(cfg.model, phase_iterations)
    model = model if phase is None else with_inference_phase(model, phase)
    torch.manual_seed(0)
    return Vocoder(build_generator(model), model, {"name": f"{config_name} (untrained)"}, "cpu")


def phase_label(name: str, iterations: int | None, source: str | None = None) -> str:
    label = name if source is None else f"{name}, {source} phase"
    return label if iterations is None else f"{label}, {iterations} GL iterations"


def seconds_per_step(step: Callable[[], object], steps: int, device: torch.device | str, warmup: int = 1) -> float:
    """Mean wall time of ``step`` after ``warmup`` calls, synchronising CUDA so queued work is counted."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - start) / steps

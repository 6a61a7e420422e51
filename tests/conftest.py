"""Shared fixtures: the bundled demo clip, the shared speech folders, tiny configs and one short training run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from audiogan.audio import load_audio, normalize_peak
from audiogan.config import load_yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "vocoder"
DEMO_CLIP = REPO / "audiogan" / "samples" / "demo.flac"
SHARED_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def configs_dir() -> Path:
    return CONFIGS


@pytest.fixture(scope="session")
def demo_path() -> Path:
    assert DEMO_CLIP.is_file(), f"bundled demo clip missing at {DEMO_CLIP}"
    return DEMO_CLIP


@pytest.fixture(scope="session")
def demo_wave(demo_path: Path) -> torch.Tensor:
    """The bundled 5 s LibriSpeech clip as float32 mono at 16 kHz."""
    wave, sr = load_audio(demo_path)
    assert sr == 16000
    return wave


@pytest.fixture
def speech_dir() -> Path:
    """The shared speech data folder; tests that need it skip when it is absent."""
    if not SHARED_SPEECH.is_dir():
        pytest.skip(f"shared speech data not found at {SHARED_SPEECH}")
    return SHARED_SPEECH


@pytest.fixture
def demo_data_dir(tmp_path: Path, demo_path: Path) -> Path:
    """A plain training folder holding one real clip (the demo)."""
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(demo_path, folder / "demo.flac")
    return folder


def _tiny_config(cache_dir: Path, **train: object):
    from audiogan.train.vocoder_trainer import VocoderTrainingConfig

    cfg = load_yaml(VocoderTrainingConfig, CONFIGS / "tiny_test.yaml")
    cfg.data.cache_dir = str(cache_dir)
    for key, value in train.items():
        assert hasattr(cfg.train, key), key
        setattr(cfg.train, key, value)
    return cfg


@pytest.fixture
def tiny_config(tmp_path: Path) -> Callable[..., object]:
    """Factory: the CPU test recipe (configs/vocoder/tiny_test.yaml) with train: overrides, caching under tmp."""

    def make(**train: object):
        return _tiny_config(tmp_path / "cache", **train)

    return make


@pytest.fixture(scope="session")
def tiny_model_config():
    from audiogan.train.vocoder_trainer import VocoderTrainingConfig

    return load_yaml(VocoderTrainingConfig, CONFIGS / "tiny_test.yaml").model


@pytest.fixture(scope="session")
def default_vocoder():
    from audiogan import Vocoder

    return Vocoder.load("default", device="cpu")


@torch.no_grad()
def copy_synthesis_mel_l1(generator: torch.nn.Module, mel_transform: torch.nn.Module, wave: torch.Tensor) -> float:
    """Mel L1 between a clip's mel and the mel of the generator's reconstruction of it (eval mode)."""
    was_training = generator.training
    generator.eval()
    mel = mel_transform(wave[None])
    fake = generator(mel).clamp(-1, 1)
    generator.train(was_training)
    return F.l1_loss(mel_transform(fake), mel).item()


TRAIN_STEPS = 40


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory: pytest.TempPathFactory, demo_path: Path) -> SimpleNamespace:
    """The tiny recipe trained TRAIN_STEPS steps on the demo clip with fit(), plus its mel L1 before and after."""
    from audiogan.train.vocoder_trainer import VocoderTrainer

    root = tmp_path_factory.mktemp("trained_tiny")
    data = root / "data"
    data.mkdir()
    shutil.copy(demo_path, data / "demo.flac")
    cfg = _tiny_config(root / "cache", max_steps=TRAIN_STEPS, log_every=10)
    torch.manual_seed(0)
    trainer = VocoderTrainer(cfg, [str(data)], root / "run", device="cpu")
    wave, _ = load_audio(data / "demo.flac", cfg.model.mel.sample_rate)
    wave = normalize_peak(wave, cfg.data.peak)
    before = copy_synthesis_mel_l1(trainer.G, trainer.mel, wave)
    result = trainer.fit()
    after = copy_synthesis_mel_l1(trainer.G, trainer.mel, wave)
    return SimpleNamespace(trainer=trainer, cfg=cfg, data_dir=data, run_dir=root / "run", wave=wave,
                           before=before, after=after, result=result)


ESPEAK_SENTENCES = ["The quick brown fox jumps over the lazy dog.", "Printing is the art of making books.",
                    "She sells sea shells by the sea shore.", "A stitch in time saves nine.",
                    "Four score and seven years ago.", "How much wood would a woodchuck chuck?"]


@pytest.fixture(scope="session")
def espeak_corpus(tmp_path_factory) -> Path:
    """A real LJSpeech-format folder whose audio espeak-ng speaks: known text, real speech signal."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    root = tmp_path_factory.mktemp("espeak_lj")
    (root / "wavs").mkdir()
    lines = []
    for i, text in enumerate(ESPEAK_SENTENCES):
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(root / "wavs" / f"E{i:03d}.wav"), text], check=True)
        lines.append(f"E{i:03d}|{text}|{text}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_voice(espeak_corpus, tmp_path_factory) -> tuple[Path, list[dict]]:
    from audiogan.train.tts_trainer import TTSTrainer, TTSTrainingConfig

    cfg = load_yaml(TTSTrainingConfig, REPO / "configs" / "tts" / "tiny_test.yaml")
    run = tmp_path_factory.mktemp("tts_run")
    cfg.data.cache_dir = str(run / "cache")
    torch.manual_seed(0)
    trainer = TTSTrainer(cfg, [str(espeak_corpus)], run, device="cpu")
    trainer.fit()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return run / "tts-tiny.safetensors", rows


SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


@pytest.fixture(scope="session")
def soundfont() -> Path:
    pytest.importorskip("fluidsynth", reason="needs pyfluidsynth and the fluidsynth library")
    if not SOUNDFONT.is_file():
        pytest.skip("needs the fluid-soundfont-gm package")
    return SOUNDFONT


@pytest.fixture(scope="session")
def notes_dir(soundfont, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("notes")
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "data", "notes", "--programs", "0,40,73",
                           "--pitches", "48-72:6", "--velocities", "80,127", "--seconds", "1", "--hold", "0.7",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def tiny_timbre(notes_dir, tmp_path_factory):
    from audiogan.train.timbre_trainer import TimbreTrainer, TimbreTrainingConfig

    cfg = load_yaml(TimbreTrainingConfig, REPO / "configs" / "timbre" / "tiny_test.yaml")
    run = tmp_path_factory.mktemp("timbre_run")
    torch.manual_seed(0)
    trainer = TimbreTrainer(cfg, [str(notes_dir)], run, device="cpu")
    z = torch.randn(2, cfg.model.latent_dim)
    pitch = torch.tensor([60, 66])
    timbre = trainer.G.instrument(torch.tensor([0, 1]))
    before = trainer.G(z, pitch, timbre).detach()
    trainer.fit()
    after = trainer.G(z, pitch, trainer.G.instrument(torch.tensor([0, 1]))).detach()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return run / "timbre-tiny.safetensors", rows, before, after

"""Export -> load round trips: safetensors + JSON model card, fp16 and fp32, from a trainer and from a checkpoint."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest
import torch

from audiogan import Vocoder, weights
from audiogan.cli import main
from audiogan.config import to_dict
from audiogan.train.checkpoint import load_checkpoint
from audiogan.train.vocoder_trainer import VocoderTrainer, export_checkpoint, export_generator
from audiogan.vocoder import build_generator

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

MAX_BYTES = 16 * 2**20


def strict_json(path: Path) -> dict:
    def reject(token: str) -> None:
        raise ValueError(f"{path.name} is not strict JSON: contains {token}")

    return json.loads(path.read_text(), parse_constant=reject)


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out - ref).norm() / ref.norm()).item()


@pytest.fixture(scope="module")
def reference(trained_tiny) -> tuple[torch.Tensor, torch.Tensor]:
    """(mel of the training clip, the trained generator's audio for it)."""
    trainer = trained_tiny.trainer
    mel = trainer.mel(trained_tiny.wave[None])[0]
    trainer.G.eval()
    with torch.no_grad():
        audio = trainer.G(mel[None])[0].clamp(-1, 1)
    trainer.G.train()
    assert audio.abs().max() > 1e-3
    return mel, audio


def test_trainer_export_writes_weights_and_card(trained_tiny, tmp_path):
    trainer = trained_tiny.trainer
    path = trainer.export(tmp_path / "out" / "tiny-export.safetensors")
    assert path == tmp_path / "out" / "tiny-export.safetensors"
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny-export.json", "tiny-export.safetensors"]
    assert 0 < path.stat().st_size < MAX_BYTES

    card = strict_json(path.with_suffix(".json"))
    assert card["name"] == "tiny-export"
    assert card["kind"] == "vocoder"
    assert card["dtype"] == "float16"
    assert card["config"] == to_dict(trainer.cfg.model)
    assert card["parameters"] == sum(p.numel() for p in trainer.G.parameters())
    training = card["training"]
    assert training["steps"] == 40
    assert isinstance(training["device_minutes"], float) and training["device_minutes"] >= 0
    assert training["device"] == "cpu"
    assert training["recipe"] == to_dict(trainer.cfg.train)
    assert card["data"] == {"data": {"train_clips": 1, "validation_clips": 0, "source": "unspecified"}}

    tensors = weights.read_weights(path)
    assert tensors.keys() == trainer.G.state_dict().keys()
    assert all(t.dtype == torch.float16 for t in tensors.values())


def test_fit_exports_a_strict_json_card(trained_tiny):
    card = strict_json(trained_tiny.run_dir / "tiny.json")
    assert card["training"]["steps"] == 40
    assert (trained_tiny.run_dir / "tiny.safetensors").stat().st_size < MAX_BYTES


def test_loaded_fp16_export_reproduces_the_trained_generator(trained_tiny, reference, tmp_path):
    mel, audio = reference
    vocoder = Vocoder.load(trained_tiny.trainer.export(tmp_path / "fp16.safetensors"), device="cpu")
    out = vocoder(mel)
    assert out.shape == audio.shape
    assert relative_error(out, audio) < 1e-2
    # A path without the suffix resolves to the same weights.
    assert torch.equal(Vocoder.load(tmp_path / "fp16", device="cpu")(mel), out)


def test_loaded_fp32_export_is_exact(trained_tiny, reference, tmp_path):
    mel, audio = reference
    trainer = trained_tiny.trainer
    fp32 = export_generator(trainer.G, trainer.cfg, tmp_path / "fp32.safetensors", trainer.step, 0.5, "cpu", {}, {},
                            dtype=torch.float32)
    fp16 = trainer.export(tmp_path / "fp16.safetensors")
    assert weights.read_card(fp32)["dtype"] == "float32"
    assert 1.8 < fp32.stat().st_size / fp16.stat().st_size < 2.2
    out = Vocoder.load(fp32, device="cpu")(mel)
    assert (out - audio).abs().max() < 1e-5


def test_cli_exports_a_checkpoint(trained_tiny, tmp_path, capsys):
    checkpoint = trained_tiny.run_dir / "checkpoint.pt"
    state = load_checkpoint(checkpoint, torch.device("cpu"))
    generator = build_generator(trained_tiny.cfg.model)
    generator.load_state_dict(state["generator"])
    generator.eval()
    mel = trained_tiny.trainer.mel(trained_tiny.wave[None])[0]
    with torch.no_grad():
        audio = generator(mel[None])[0].clamp(-1, 1)

    out16 = tmp_path / "cli" / "exported.safetensors"
    assert main(["export", "vocoder", str(checkpoint), "-o", str(out16)]) == 0
    assert f"wrote {out16}" in capsys.readouterr().out
    card = strict_json(out16.with_suffix(".json"))
    assert card["dtype"] == "float16"
    assert card["training"]["steps"] == 40
    assert card["config"] == to_dict(trained_tiny.cfg.model)
    # Provenance travels through the checkpoint: the data folders and the device that trained it.
    assert card["data"] == trained_tiny.trainer.data_files and card["data"]
    assert card["training"]["device"] == "cpu"
    assert 0 < out16.stat().st_size < MAX_BYTES
    assert relative_error(Vocoder.load(out16, device="cpu")(mel), audio) < 1e-2

    out32 = tmp_path / "cli" / "exported32.safetensors"
    assert main(["export", "vocoder", str(checkpoint), "-o", str(out32), "--fp32"]) == 0
    assert (Vocoder.load(out32, device="cpu")(mel) - audio).abs().max() < 1e-5


def test_cli_export_of_a_missing_checkpoint_fails_clearly(tmp_path, capsys):
    rc = main(["export", "vocoder", str(tmp_path / "none.pt"), "-o", str(tmp_path / "x.safetensors")])
    assert rc == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_export_takes_the_validation_of_the_checkpoints_step(tmp_path, demo_data_dir, tiny_config):
    """The run folder's log goes on past an older checkpoint: its later, better figures are not this model's."""
    trainer = VocoderTrainer(tiny_config(), [str(demo_data_dir)], tmp_path / "run", device="cpu")
    trainer.step = 20
    checkpoint = trainer.checkpoint()
    rows = [{"step": 10, "mel_l1": 0.9, "valid_mel_l1": 0.8}, {"step": 20, "mel_l1": 0.7},
            {"step": 20, "valid_mel_l1": 0.6, "valid_stoi": 0.5, "final": True},
            {"step": 30, "valid_mel_l1": 0.4, "valid_pesq_wb": 2.0}]
    (tmp_path / "run" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    card = weights.read_card(export_checkpoint(checkpoint, tmp_path / "out.safetensors"))
    assert card["validation"] == {"step": 20, "valid_mel_l1": 0.6, "valid_stoi": 0.5}
    trainer.step = 15
    card = weights.read_card(export_checkpoint(trainer.checkpoint(), tmp_path / "out.safetensors"))
    assert card["validation"] == {"step": 10, "valid_mel_l1": 0.8}


@pytest.mark.parametrize(("content", "message"), [
    (b"", r"zero\.pt is not a training checkpoint \(corrupt or partial\?\): Ran out of input"),
    ("half", r"half\.pt is not a training checkpoint \(corrupt or partial\?\): PytorchStreamReader failed"),
    ("export", r"is not a training checkpoint \(it is an export; training continues from one with --init-generator"),
    ({"model": {}, "opt": {}, "step": 3, "config": {}, "stats": {}, "symbols": {}},
     r"tts\.pt is not a vocoder training checkpoint: it lacks generator, .*; it looks like a tts checkpoint"),
])
def test_cli_export_of_something_else_than_a_vocoder_checkpoint_fails_clearly(tmp_path, capsys, content, message):
    if content == "export":
        path = tmp_path / "export.safetensors"
        shutil.copy(weights.resolve("default", "vocoder"), path)
    elif content == "half":
        path = tmp_path / "half.pt"
        torch.save({"generator": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif isinstance(content, bytes):
        path = tmp_path / "zero.pt"
        path.write_bytes(content)
    else:
        path = tmp_path / "tts.pt"
        torch.save(content, path)
    assert main(["export", "vocoder", str(path), "-o", str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and err.count("\n") == 1
    assert not (tmp_path / "out.safetensors").exists()


def test_weights_without_a_card_are_refused(trained_tiny, tmp_path):
    path = trained_tiny.trainer.export(tmp_path / "nocard.safetensors")
    path.with_suffix(".json").unlink()
    with pytest.raises(FileNotFoundError, match=r"model card .*nocard\.json missing"):
        Vocoder.load(path, device="cpu")


@pytest.mark.skipif(resource is None, reason="no RLIMIT_FSIZE (Windows)")
def test_an_export_is_durable_and_one_that_fails_mid_write_leaves_the_previous_one_whole(
        trained_tiny, reference, tmp_path, monkeypatch):
    """Both files and their folder are synced (a power cut after the export keeps it). Then a real short
    write: a file-size limit between the fp16 export's size and the fp32 one's makes the kernel stop the
    fp32 weights part-way (EFBIG, as a full disk would stop them)."""
    mel, _ = reference
    trainer = trained_tiny.trainer
    synced: list[os.stat_result] = []
    fsync = os.fsync

    def recorded(fd: int) -> None:
        fsync(fd)
        synced.append(os.fstat(fd))

    monkeypatch.setattr(os, "fsync", recorded)
    path = trainer.export(tmp_path / "model.safetensors")
    monkeypatch.undo()
    for written in (path, path.with_suffix(".json"), tmp_path):
        assert any(os.path.samestat(info, os.stat(written)) for info in synced), f"{written.name} never synced"
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    previous_audio = Vocoder.load(path, device="cpu")(mel)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    no_signal = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of the process dying
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before["model.safetensors"]) + 4096, limits[1]))
    try:
        with pytest.raises(OSError) as failed:
            export_generator(trainer.G, trainer.cfg, path, trainer.step + 1, 0.5, "cpu", {}, {}, dtype=torch.float32)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, no_signal)
    assert failed.value.errno == errno.EFBIG
    # Both files as they were, nothing else beside them (no temp file left behind), and the model still loads.
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert torch.equal(Vocoder.load(path, device="cpu")(mel), previous_audio)


def test_bundled_weights_match_their_card():
    path = weights.resolve("default", "vocoder")
    assert path.name == "vocoder-16k-vector.safetensors"
    assert 0 < path.stat().st_size < MAX_BYTES
    card = strict_json(path.with_suffix(".json"))
    tensors = weights.read_weights(path)
    assert sum(t.numel() for t in tensors.values()) == card["parameters"]
    assert {str(t.dtype).removeprefix("torch.") for t in tensors.values()} == {card["dtype"]}


def test_a_continued_export_keeps_what_each_device_spent(trained_tiny, tmp_path, tiny_config):
    first = trained_tiny.trainer.export(tmp_path / "tiny.safetensors")
    before = weights.read_card(first)["training"]
    trainer = VocoderTrainer(tiny_config(disc_head_start_steps=1), [str(trained_tiny.data_dir)], tmp_path / "run",
                             device="cpu", init_generator=str(first))
    trainer.train_step(*trainer.bank.sample(2, trainer.gen))
    card = weights.read_card(trainer.export(tmp_path / "continued.safetensors"))
    training = card["training"]
    assert training["steps"] == before["steps"] + 1
    assert training["continued_from"]["steps"] == before["steps"]
    assert training["continued_from"]["device"] == "cpu"
    assert training["continued_from"]["recipe"] == before["recipe"]
    # Both runs were on the CPU: one segment holding every step.
    assert [(s["device"], s["steps"]) for s in weights.segments(training)] == [("cpu", before["steps"] + 1)]
    # A checkpoint of the continued run exports the same lineage.
    exported = trainer.checkpoint()
    again = weights.read_card(export_checkpoint(exported, tmp_path / "from_checkpoint.safetensors"))
    assert again["training"]["continued_from"] == training["continued_from"]


def test_segments_split_a_models_cost_by_device():
    training = {"steps": 21000, "device_minutes": 51.85, "device": "NVIDIA H200",
                "continued_from": {"steps": 9400, "device_minutes": 40.61, "device": "cpu",
                                   # cards before the device was recorded: counted with the next link
                                   "earlier": {"steps": 100, "device_minutes": 1.0}}}
    got = weights.segments(training)
    assert [(s["device"], s["steps"]) for s in got] == [("cpu", 9400), ("NVIDIA H200", 11600)]
    assert [s["minutes"] for s in got] == pytest.approx([40.61, 11.24])
    assert weights.segments({"steps": 5, "device_minutes": 2.0, "device": "cpu"}) == [
        {"device": "cpu", "steps": 5, "minutes": 2.0}]

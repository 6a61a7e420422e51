"""The trainer runs unchanged under torchrun: two CPU processes on gloo, only rank 0 writes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed beside this python")
@pytest.mark.parametrize("kind", ["vocoder", "tts", "timbre"])
def test_torchrun_two_cpu_ranks(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if kind == "vocoder":
        data = tmp_path / "data"
        data.mkdir()
        shutil.copy(ROOT / "audiogan" / "samples" / "demo.flac", data / "a.flac")
    else:  # the espeak-spoken LJSpeech-format corpus, or the FluidSynth-rendered notes
        data = request.getfixturevalue("espeak_corpus" if kind == "tts" else "notes_dir")
    config = tmp_path / "tiny.yaml"
    config.write_text((ROOT / "configs" / kind / "tiny_test.yaml").read_text().replace(
        ".cache/audiogan-test", str(tmp_path / "cache")))
    name = {"vocoder": "tiny", "tts": "tts-tiny", "timbre": "timbre-tiny"}[kind]
    run = tmp_path / "run"
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "audiogan.cli", "train", kind,
           "--config", str(config), "--data", str(data), "--device", "cpu", "--run-dir", str(run),
           "--set", "max_steps=6", "--set", "log_every=3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Own process group, so a hang kills the launcher and both workers (which hold the pipes open).
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                          start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            pytest.fail(f"torchrun hung; stderr tail:\n{stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-3000:]
    # Both ranks stepped to the end (DDP's gradient all-reduce would hang if one stopped early).
    assert "rank 0 of 2 finished at step 6" in stderr, stderr[-3000:]
    assert "rank 1 of 2 finished at step 6" in stderr, stderr[-3000:]
    # Rank 0 alone writes: one metrics row per log step (plus a final row), one checkpoint, one export.
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows][:2] == [3, 6] and len(rows) <= 3
    assert (run / "checkpoint.pt").is_file() and (run / f"{name}.safetensors").is_file()
    assert stdout.count("done at step 6") == 1

"""The `audiogan` command line, called in-process through audiogan.cli.main."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiogan import Vocoder, load_audio, weights
from audiogan.audio import resample
from audiogan.cli import main
from audiogan.train import vocoder_trainer
from audiogan.train.checkpoint import load_checkpoint

HOP = 256
DEMO_FLAC = os.path.join(os.path.dirname(__file__), "..", "audiogan", "samples", "demo.flac")


def test_vocode_the_demo_clip(tmp_path, capsys, demo_wave):
    out = tmp_path / "out.wav"
    assert main(["vocode", "-o", str(out)]) == 0
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.format) == (16000, 1, "WAV")
    assert abs(info.frames - demo_wave.numel()) < HOP
    assert f"wrote {out}" in capsys.readouterr().out
    audio, _ = load_audio(out)
    assert audio.pow(2).mean().sqrt() > 0.01  # speech, not silence


def test_vocode_names_its_vocoder_as_say_and_the_client_do(tmp_path, capsys):
    # --vocoder, as on `say` and `audiogan-client vocode`; --model, its first name, gives the same audio.
    named, old = tmp_path / "named.wav", tmp_path / "old.wav"
    assert main(["vocode", "--vocoder", "vocoder-16k-vector", "-o", str(named)]) == 0
    assert main(["vocode", "--model", "vocoder-16k-vector", "-o", str(old)]) == 0
    np.testing.assert_array_equal(sf.read(named)[0], sf.read(old)[0])
    assert "with vocoder-16k-vector" in capsys.readouterr().out
    assert main(["vocode", "--vocoder", "no-such-vocoder", "-o", str(named)]) == 2
    assert "no vocoder weights at 'no-such-vocoder'" in capsys.readouterr().err


def test_vocode_with_phase_refinement_is_closer_to_the_recording(tmp_path, capsys, demo_wave, default_vocoder):
    plain, refined = tmp_path / "plain.wav", tmp_path / "refined.wav"
    assert main(["vocode", "-o", str(plain)]) == 0
    assert main(["vocode", "-o", str(refined), "--phase-iterations", "4"]) == 0
    target = default_vocoder.mel(demo_wave)

    def mel_l1(path) -> float:
        mel = default_vocoder.mel(load_audio(path)[0])
        return (mel - target[:, : mel.shape[-1]]).abs().mean().item()

    assert mel_l1(refined) < 0.9 * mel_l1(plain)


def test_vocode_with_the_integrated_phase(tmp_path, capsys, demo_wave):
    out = tmp_path / "rtpghi.wav"
    assert main(["vocode", "-o", str(out), "--phase", "rtpghi"]) == 0
    audio = load_audio(out)[0]
    expected = Vocoder.load(device="cpu", phase="rtpghi").copy_synthesize(demo_wave)
    assert audio.shape == expected.shape and (audio - expected).abs().max() < 2e-3
    with pytest.raises(SystemExit):
        main(["vocode", "-o", str(out), "--phase", "griffin"])
    assert "invalid choice" in capsys.readouterr().err


def test_vocode_with_a_spectrogram_plot(tmp_path, capsys):
    png = tmp_path / "mels.png"
    assert main(["vocode", "-o", str(tmp_path / "out.wav"), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in capsys.readouterr().out


def test_vocode_a_file_at_another_rate(tmp_path, demo_wave):
    source = tmp_path / "in22k.wav"
    sf.write(source, resample(demo_wave, 16000, 22050).numpy(), 22050, subtype="FLOAT")
    out = tmp_path / "out.flac"
    assert main(["vocode", str(source), "-o", str(out), "--device", "cpu"]) == 0
    info = sf.info(out)
    assert (info.samplerate, info.format) == (16000, "FLAC")
    assert abs(info.frames - demo_wave.numel()) < HOP


def test_vocode_a_mel_file(tmp_path, default_vocoder, demo_wave):
    mel = default_vocoder.mel(demo_wave).numpy()
    mel_path = tmp_path / "m.npy"
    np.save(mel_path, mel)
    out = tmp_path / "out.wav"
    assert main(["vocode", "--mel", str(mel_path), "-o", str(out)]) == 0
    audio, sr = load_audio(out)
    assert sr == 16000
    assert audio.numel() == mel.shape[-1] * HOP
    expected = default_vocoder(mel).numpy()
    np.testing.assert_allclose(audio.numpy(), expected, atol=1 / 32768 + 1e-6)


@pytest.mark.parametrize(("argv", "expected"), [
    (["--help"], ["vocode", "train", "export", "models", "replace a file of the same name", "130 interrupted"]),
    (["say", "--help"], ["--lexicon", "--raw", "--file", "streams a WAV to stdout as each sentence"]),
    (["vocode", "--help"], ["--mel", "--output", "--model"]),
    (["train", "vocoder", "--help"], ["--config", "--data", "--resume", "--init-generator", "--set"]),
    (["train", "timbre", "--help"], ["--config", "--data", "--resume", "--init-generator", "--set"]),
    (["train", "tts", "--help"], ["--config", "--data", "--resume", "--init-generator", "aligner", "--set"]),
    (["export", "vocoder", "--help"], ["checkpoint", "--fp32"]),
])
def test_help_exits_zero(capsys, argv, expected):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # as it reads, whatever the width it was wrapped to
    assert all(word in text for word in expected)


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_missing_input_file_exits_2(tmp_path, capsys):
    out = tmp_path / "out.wav"
    assert main(["vocode", str(tmp_path / "missing.wav"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("audiogan: error:")
    assert "not found" in err and "missing.wav" in err
    assert not out.exists()


def test_missing_mel_file_exits_2(tmp_path, capsys):
    assert main(["vocode", "--mel", str(tmp_path / "nothing.npy"), "-o", str(tmp_path / "o.wav")]) == 2
    assert "nothing.npy" in capsys.readouterr().err


def test_mel_with_wrong_bins_exits_2(tmp_path, capsys):
    np.save(tmp_path / "m.npy", np.zeros((64, 10), np.float32))
    assert main(["vocode", "--mel", str(tmp_path / "m.npy"), "-o", str(tmp_path / "o.wav")]) == 2
    assert "64 mel bins" in capsys.readouterr().err


def flat_mel(frames: int = 5) -> np.ndarray:
    return np.full((80, frames), -5.0, np.float32)


@pytest.mark.parametrize(("array", "message"), [
    (np.stack([flat_mel()] * 3), "holds a batch of 3 mels; vocode one"),
    (flat_mel().T.copy(), r"has shape \[5, 80\], the vocoder takes \[80, frames\]: stored as \[frames, n_mels\]\? "
                          "transpose it"),
    (flat_mel().astype(np.complex64), "holds complex64 values"),
    (flat_mel().astype(np.int16), "holds int16 values"),
])
def test_a_mel_file_that_is_not_one_mel_exits_2(tmp_path, capsys, array, message):
    np.save(tmp_path / "m.npy", array)
    out = tmp_path / "o.wav"
    assert main(["vocode", "--mel", str(tmp_path / "m.npy"), "-o", str(out)]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_an_unreadable_mel_file_exits_2(tmp_path, capsys):
    np.savez(tmp_path / "m.npz", mel=flat_mel())
    (tmp_path / "text.npy").write_text("hello")
    assert main(["vocode", "--mel", str(tmp_path / "m.npz"), "-o", str(tmp_path / "o.wav")]) == 2
    assert "m.npz is an .npz archive (mel); save a mel alone with np.save" in capsys.readouterr().err
    assert main(["vocode", "--mel", str(tmp_path / "text.npy"), "-o", str(tmp_path / "o.wav")]) == 2
    assert re.search(r"error: cannot read .*text\.npy as a mel: not a \.npy array written by np\.save",
                     capsys.readouterr().err)


def test_a_batch_of_one_mel_is_vocoded_and_a_db_mel_is_warned_about(tmp_path, capsys):
    np.save(tmp_path / "one.npy", flat_mel(7)[None])
    assert main(["vocode", "--mel", str(tmp_path / "one.npy"), "-o", str(tmp_path / "one.wav")]) == 0
    assert sf.info(tmp_path / "one.wav").frames == 7 * HOP
    assert "warning" not in capsys.readouterr().err
    np.save(tmp_path / "db.npy", flat_mel() * 20 / np.log(10) - 60)  # a dB mel: -103 dB, far under ln(1e-5)
    assert main(["vocode", "--mel", str(tmp_path / "db.npy"), "-o", str(tmp_path / "db.wav")]) == 0
    assert "goes down to -103.4, below the vocoder's floor ln(1e-05) = -11.5: a dB or power mel?" in \
        capsys.readouterr().err


def test_weights_of_another_kind_or_corrupt_exit_2(tmp_path, capsys):
    out = tmp_path / "o.wav"
    assert main(["vocode", "--model", "tts-lj-16k", "-o", str(out)]) == 2
    assert "tts-lj-16k.safetensors is a tts model, not a vocoder model" in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    shutil.copy(weights.resolve("default", "vocoder").with_suffix(".json"), bad.with_suffix(".json"))
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    assert main(["vocode", "--model", str(bad), "-o", str(out)]) == 2
    assert f"error: {bad}: unreadable .safetensors weights (corrupt or partial?)" in capsys.readouterr().err
    assert not out.exists()


def test_unsupported_output_format_exits_2(tmp_path, capsys):
    assert main(["vocode", "-o", str(tmp_path / "o.mp3")]) == 2
    assert "o.mp3: name a .wav or .flac file" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["vocode", "-o", "{tmp}"], "is a folder; name a file in it"),
    (["vocode", "-o", "{tmp}/file.txt/o.wav"], "file.txt is a file, not a folder"),
    (["vocode", "-o", "{tmp}/o.wav", "--plot", "{tmp}/p.txt"], "--plot {tmp}/p.txt: name a .png or"),
    (["say", "Hello.", "-o", "{tmp}/o.wav", "--timings", "{tmp}/file.txt/t.vtt"], "file.txt is a file"),
    (["note", "--instrument", "violin", "-o", "{tmp}/o.ogg"], "name a .wav or .flac file"),
    (["convert", "{tmp}/o.wav", "--to", "violin", "-o", "{tmp}/file.txt"], "name a .wav or .flac file"),
    (["invert", "{tmp}/o.wav", "-o", "{tmp}/latent.wav"], "latent.wav: name a .npy file"),
    (["export", "vocoder", "{tmp}/c.pt", "-o", "{tmp}/e.wav"], "e.wav: name a .safetensors file"),
    (["vocode", "{tmp}/o.wav", "--mel", "{tmp}/m.npy"], "INPUT recording or --mel, not both"),
    (["say", "Hello.", "--file", "{tmp}/file.txt"], "TEXT or --file, not both"),
    (["say", "--file", "{tmp}/missing.txt", "-o", "{tmp}/o.wav"], "--file {tmp}/missing.txt: no such file"),
    (["say", "Hello.", "--raw", "-o", "{tmp}/o.wav"], "--raw streams PCM to standard output; drop -o"),
    # A folder or a file where the other is wanted, named as the option and what it is (was "Is a directory:
    # d", "Not a directory: OUT/audio", "soundfont not found", "not a .npy array written by np.save").
    (["say", "--file", "{tmp}", "-o", "{tmp}/o.wav"], "--file {tmp} is a folder; name a text file"),
    (["say", "Hello.", "--lexicon", "{tmp}", "-o", "{tmp}/o.wav"], "lexicon {tmp} is a folder; name a text file"),
    (["vocode", "--mel", "{tmp}", "-o", "{tmp}/o.wav"], "{tmp} is a folder, not a .npy file of a mel"),
    (["data", "notes", "--out", "{tmp}/file.txt"], "--out {tmp}/file.txt is a file; name a folder"),
    (["data", "notes", "--out", "{tmp}/n", "--soundfont", "{tmp}"], "soundfont {tmp} is a folder; name an .sf2"),
    (["train", "vocoder", "--config", "{tmp}", "--data", "{tmp}", "--run-dir", "{tmp}/run"],
     "config {tmp} is a folder; name a .yaml file"),
])
def test_outputs_and_inputs_that_cannot_work_are_refused_before_the_work(tmp_path, capsys, argv, message):
    (tmp_path / "file.txt").write_text("not a folder")
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # nothing written, no folder made


@pytest.mark.parametrize("argv", [
    ["render", "m.jsonl", "--out", "o", "--batch-size", "-1"],  # once rendered nothing and exited 0
    ["render", "m.jsonl", "--out", "o", "--workers", "0"],
    ["render", "m.jsonl", "--out", "o", "--cpus-per-actor", "0"],  # once divided by zero
    ["render", "m.jsonl", "--out", "o", "--cpus-per-actor", "-1"],  # once refused only after Ray started
    ["render", "m.jsonl", "--out", "o", "--cpus-per-actor", "nan"],
    ["vocode", "--phase-iterations", "-1"],
    ["vocode", "--threads", "100000"],  # once stalled for minutes
    ["invert", "x.wav", "--steps", "0"],
    ["note", "--velocity", "0"],
    ["note", "--steps", "65"],  # 1000000 set out to hold 262 GB of notes
    ["data", "notes", "--out", "o", "--sample-rate", "0"],
    ["say", "Hi.", "--speed", "0"],
    ["say", "Hi.", "--pitch-shift", "nan"],
])
def test_numbers_out_of_range_are_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "out of range" in capsys.readouterr().err


@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_every_seed_takes_the_same_range_in_the_same_words(tmp_path, capsys, seed):
    from audiogan_client.cli import main as client_main

    from audiogan.render import read_manifest
    from audiogan.timbre import TimbreModel

    expected = f"{seed} is not a whole number in 0..2**64-1"
    for command in (["note"], ["convert", "x.wav", "--to", "violin"], ["render-midi", "x.mid", "--instrument", "a"]):
        with pytest.raises(SystemExit):
            main([*command, "--seed", seed])
        assert f"argument --seed: {expected}" in capsys.readouterr().err
    for command in (["notes", "--instrument", "violin"], ["convert", "x.wav", "--to", "violin"]):  # the client
        with pytest.raises(SystemExit):
            client_main([*command, "--seed", seed])
        assert f"argument --seed: {expected}" in capsys.readouterr().err
    with pytest.raises(ValueError, match=f"^seed {re.escape(expected)}$"):
        TimbreModel.check_seed(int(seed))
    jobs = tmp_path / "jobs.jsonl"
    for value in (seed, str(2**64 - 1)):  # the largest is a seed everywhere; render once stopped at 2**63-1
        jobs.write_text(f'{{"kind": "notes", "pitch": 60, "instrument": "violin", "output": "x.wav", "seed": {value}}}')
        manifest = read_manifest(jobs)
        if value == seed:
            assert [e.reason for e in manifest.errors] == [f"seed: {expected}"]
        else:
            assert [j.seed for j in manifest.jobs] == [2**64 - 1]


def test_data_notes_ranges_are_checked_before_fluidsynth_starts(tmp_path, capsys):
    for args, message in [(["--programs", "200"], "--programs '200': '200' leaves 0..127"),
                          (["--pitches", "70-60"], "'70-60' is empty"),
                          (["--pitches", "abc"], "'abc' is not N, N-M or N-M:STEP"),
                          (["--velocities", "0,50"], "leaves 1..127"),
                          (["--hold", "3", "--seconds", "2"], "hold 3.0 s: must be above 0 and at most"),
                          (["--seconds", "inf"], "note length inf s: must be above 0 and at most 60 s")]:
        assert main(["data", "notes", "--out", str(tmp_path / "notes"), *args]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "notes").exists()


def test_a_missing_optional_package_names_the_extra_that_installs_it(tmp_path):
    """A plain install lacks the train extra's pyfluidsynth: rendering notes says what to install, in a
    line, also when the import fails in the renderer's worker processes."""
    import subprocess
    import sys

    hidden = tmp_path / "hidden" / "fluidsynth"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'fluidsynth'\", "
                                        "name='fluidsynth')\n")
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "data", "notes", "--programs", "0", "--pitches",
                           "60-61", "--velocities", "100", "--out", str(tmp_path / "notes")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(hidden.parent)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "audiogan: error: this command needs the Python package 'fluidsynth', which is not installed: "
        "pip install 'audiogan[train]'")
    assert "Traceback" not in done.stderr


def test_a_folder_or_a_broken_card_is_named_as_what_it_is(tmp_path, capsys):
    assert main(["vocode", str(tmp_path), "-o", str(tmp_path / "o.wav")]) == 2
    assert f"{tmp_path} is a folder, not an audio file" in capsys.readouterr().err
    model = tmp_path / "v.safetensors"
    shutil.copy(weights.resolve("default", "vocoder"), model)
    model.with_suffix(".json").write_text("{'kind': 'vocoder'}")
    assert main(["models", str(model)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"model card {model.with_suffix('.json')} is not valid JSON" in err
    np.save(tmp_path / "m.npy", np.full((80, 20), 100.0, np.float32))  # a linear mel: would vocode to NaN
    assert main(["vocode", "--mel", str(tmp_path / "m.npy"), "-o", str(tmp_path / "o.wav")]) == 2
    assert "mel values reach 100; the vocoder takes natural-log magnitudes" in capsys.readouterr().err
    (tmp_path / "fake.npy").write_text("not an array")
    assert main(["note", "--instrument", str(tmp_path / "fake.npy"), "-o", str(tmp_path / "n.wav")]) == 2
    err = capsys.readouterr().err
    assert "as a timbre latent: not a .npy array" in err and "allow_pickle" not in err
    np.save(tmp_path / "words.npy", np.array(["violin"] * 16))  # used to end in a TypeError traceback
    assert main(["note", "--instrument", str(tmp_path / "words.npy"), "-o", str(tmp_path / "n.wav")]) == 2
    assert "words.npy holds <U6 values; a timbre latent is an array of real numbers" in capsys.readouterr().err


@pytest.mark.parametrize(("device", "message"), [("gpu", "unknown device 'gpu': use auto, cpu, cuda or cuda:N"),
                                                 ("meta", "unknown device 'meta'"),
                                                 ("cuda", "no CUDA GPU is available here")])
def test_a_device_that_cannot_run_is_named(tmp_path, capsys, device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["vocode", "-o", str(tmp_path / "o.wav"), "--device", device]) == 2
    assert message in capsys.readouterr().err


def test_a_closed_pipe_ends_say_quietly(tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "audiogan.cli", "say", "This sentence is long enough to "
                             "stream more than a few bytes of audio. " * 4, "-o", "-", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and len(proc.stdout.read(100)) == 100
    proc.stdout.close()  # as `| head -c 100` does
    err = proc.communicate(timeout=300)[1].decode()
    assert proc.returncode == 1 and "Traceback" not in err and "Broken pipe" not in err


@pytest.mark.parametrize("output", ["file", "raw"])
def test_ctrl_c_in_say_says_one_line_and_leaves_no_file(tmp_path, output):
    import subprocess
    import sys

    (tmp_path / "long.txt").write_text(" ".join(f"This is sentence number {i}, spoken slowly." for i in range(40)))
    out = ["-o", str(tmp_path / "out.wav")] if output == "file" else ["--raw"]
    proc = subprocess.Popen([sys.executable, "-m", "audiogan.cli", "say", "--file", str(tmp_path / "long.txt"),
                             *out, "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            # a runner started in the background ignores SIGINT, and so would its children
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None and proc.stderr is not None
    if output == "raw":
        assert len(proc.stdout.read(4096)) == 4096  # audio is coming
    else:
        shown = b""
        while b"sentence" not in shown and proc.poll() is None:  # the progress bar: synthesis has begun
            shown += os.read(proc.stderr.fileno(), 100)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "audiogan: interrupted", err
    assert "Traceback" not in err
    assert sorted(f.name for f in tmp_path.iterdir()) == ["long.txt"]


def test_train_and_resume_from_the_command_line(tmp_path, monkeypatch, demo_data_dir, configs_dir, capsys):
    monkeypatch.chdir(tmp_path)  # the recipe's relative cache folder lands in tmp_path
    base = ["train", "vocoder", "--config", str(configs_dir / "tiny_test.yaml"), "--data", str(demo_data_dir),
            "--run-dir", "run", "--device", "cpu", "--set", "log_every=1"]
    assert main([*base, "--set", "max_steps=3"]) == 0
    assert "done at step 3" in capsys.readouterr().out
    run = tmp_path / "run"
    assert {"checkpoint.pt", "tiny.safetensors", "tiny.json", "metrics.jsonl"} <= {p.name for p in run.iterdir()}
    assert list((tmp_path / ".cache" / "audiogan-test").glob("*.npy"))

    assert main([*base, "--set", "max_steps=5", "--resume", "run/checkpoint.pt"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if not r.get("final")] == [1, 2, 3, 4, 5]
    assert json.loads((run / "tiny.json").read_text())["training"]["steps"] == 5


def test_training_on_folders_without_usable_audio_says_what_it_looked_for(tmp_path, monkeypatch, configs_dir,
                                                                         capsys, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    (tmp_path / "empty" / "notes" / "readme.txt").write_text("no audio here")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.wav").write_bytes(b"RIFF" + bytes(40))
    base = ["train", "vocoder", "--config", str(configs_dir / "tiny_test.yaml"), "--run-dir", "run", "--device",
            "cpu", "--data"]
    assert main([*base, "empty"]) == 2
    assert "error: no audio in empty: a folder takes an LJSpeech metadata.csv with wavs/, or audio files (.wav, " \
        in capsys.readouterr().err
    assert main([*base, "broken"]) == 2
    assert "skipping broken/a.wav: cannot read audio" in caplog.text
    assert "error: no training audio could be read (the log names each file skipped, and why)" in \
        capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    (tmp_path / "a.flac").write_bytes(b"")
    for data, message in ((["a.flac"], "--data a.flac: a file; --data takes folders"),
                          (["nowhere"], "--data nowhere: no such folder"),
                          (["broken", "broken/"], "--data names broken twice (also as broken/)")):
        assert main([*base, *data]) == 2
        assert message in capsys.readouterr().err
    assert main([*base, "broken", "--set", "segment_size=4000"]) == 2  # the mel loss compares whole frames
    assert "train.segment_size 4000 must be a multiple of the hop length (256)" in capsys.readouterr().err


def test_ctrl_c_in_training_writes_a_checkpoint_to_resume_from(tmp_path, monkeypatch, demo_data_dir, configs_dir,
                                                               capsys, caplog):
    monkeypatch.chdir(tmp_path)
    base = ["train", "vocoder", "--config", str(configs_dir / "tiny_test.yaml"), "--data", str(demo_data_dir),
            "--run-dir", "run", "--device", "cpu", "--set", "log_every=1"]
    step = vocoder_trainer.VocoderTrainer.train_step

    def interrupted_at_2(trainer, *args):
        if trainer.step == 2:
            raise KeyboardInterrupt
        return step(trainer, *args)

    monkeypatch.setattr(vocoder_trainer.VocoderTrainer, "train_step", interrupted_at_2)
    assert main([*base, "--set", "max_steps=5"]) == 130
    assert "audiogan: interrupted" in capsys.readouterr().err
    assert "interrupted at step 2: wrote run/checkpoint.pt (continue with --resume run/checkpoint.pt)" in caplog.text
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt", torch.device("cpu"))["step"] == 2
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert main([*base, "--set", "max_steps=3", "--resume", "run/checkpoint.pt"]) == 0
    assert "done at step 3" in capsys.readouterr().out


def test_sigterm_in_training_checkpoints_and_a_rerun_does_not_overwrite_it(tmp_path, monkeypatch, demo_data_dir,
                                                                         configs_dir, capsys, caplog):
    """docker stop, Slurm preemption and a lease's end send SIGTERM; rerunning the same line afterwards used to
    start again at step 0 over the checkpoint."""
    monkeypatch.chdir(tmp_path)
    base = ["train", "vocoder", "--config", str(configs_dir / "tiny_test.yaml"), "--data", str(demo_data_dir),
            "--run-dir", "run", "--device", "cpu", "--set", "log_every=1", "--set", "max_steps=5"]
    step = vocoder_trainer.VocoderTrainer.train_step

    def terminated_at_2(trainer, *args):
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(trainer, *args)

    monkeypatch.setattr(vocoder_trainer.VocoderTrainer, "train_step", terminated_at_2)
    before = signal.getsignal(signal.SIGTERM)
    assert main(base) == 130
    assert "interrupted at step 2: wrote run/checkpoint.pt (continue with --resume run/checkpoint.pt)" in caplog.text
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    assert load_checkpoint(checkpoint, torch.device("cpu"))["step"] == 2
    assert signal.getsignal(signal.SIGTERM) is before  # the trainer's handler lasts as long as fit
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(base) == 2
    assert ("error: run holds a run's checkpoint already: continue it with --resume run/checkpoint.pt"
            in capsys.readouterr().err)
    assert load_checkpoint(checkpoint, torch.device("cpu"))["step"] == 2


def test_training_stopped_by_the_nan_guard_exits_2(tmp_path, monkeypatch, demo_data_dir, configs_dir, capsys):
    monkeypatch.chdir(tmp_path)
    l1 = torch.nn.functional.l1_loss  # a NaN mel loss on every step: every generator update is skipped
    monkeypatch.setattr(vocoder_trainer, "F", types.SimpleNamespace(l1_loss=lambda a, b: l1(a, b) * float("nan")))
    argv = ["train", "vocoder", "--config", str(configs_dir / "tiny_test.yaml"), "--data", str(demo_data_dir),
            "--run-dir", "run", "--device", "cpu", "--set", "log_every=1", "--set", "nan_patience=2"]
    assert main(argv) == 2
    assert "audiogan: error: 2 non-finite steps in a row at step 2; stopping" in capsys.readouterr().err


def test_train_with_a_mistyped_override_exits_2(tmp_path, monkeypatch, demo_data_dir, configs_dir, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "vocoder", "--config", str(configs_dir / "tiny_test.yaml"), "--data", str(demo_data_dir),
            "--run-dir", "run", "--device", "cpu", "--set", "max_step=3"]
    assert main(argv) == 2
    assert "max_step" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_refuses_numbers_no_run_can_use(tmp_path, monkeypatch, demo_data_dir, configs_dir, capsys):
    monkeypatch.chdir(tmp_path)
    base = ["train", "vocoder", "--config", str(configs_dir / "tiny_test.yaml"), "--data", str(demo_data_dir),
            "--run-dir", "run", "--device", "cpu"]
    for override, message in [("max_steps=-1", "TrainConfig.max_steps = -1: must be above 0"),
                              ("batch_size=0", "TrainConfig.batch_size = 0: must be above 0"),
                              ("max_minutes=-2", "TrainConfig.max_minutes = -2.0: must be 0 or more")]:
        assert main([*base, "--set", override]) == 2
        assert message in capsys.readouterr().err
    assert main([*base[:3], str(weights.WEIGHTS_DIR / "tts-lj-16k.json"), *base[4:]]) == 2
    assert "unknown keys" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("just some words")
    assert main([*base[:3], "notes.txt", *base[4:]]) == 2
    assert "notes.txt holds a str, not a YAML mapping of settings" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_with_missing_config_or_data_exits_2(tmp_path, monkeypatch, demo_data_dir, configs_dir, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "vocoder", "--config", "nope.yaml", "--data", str(demo_data_dir)]) == 2
    assert "config file not found" in capsys.readouterr().err
    argv = ["train", "vocoder", "--config", str(configs_dir / "tiny_test.yaml"), "--data", "no_such_folder",
            "--device", "cpu"]
    assert main(argv) == 2
    assert "--data no_such_folder: no such folder" in capsys.readouterr().err


def test_models_lists_the_bundled_models_with_their_measured_quality(capsys):
    from audiogan import weights

    assert main(["models"]) == 0
    table = capsys.readouterr().out
    for kind, name in weights.DEFAULTS.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} (default) | {kind} |"))
        card = weights.read_card(weights.resolve(name, kind))
        assert f"{card['parameters']:,}" in row and weights.headline(card) in row
    vocoder = weights.read_card(weights.resolve("default", "vocoder"))
    assert f"PESQ-wb {vocoder['validation']['pesq_wb']:.3f}" in table
    assert main(["models", "tts-lj-16k", "--card"]) == 0
    (card,) = json.loads(capsys.readouterr().out).values()
    assert card["kind"] == "tts" and "symbols" in card
    assert main(["models", "no-such-model"]) == 2
    assert "no model at 'no-such-model'; bundled: " in capsys.readouterr().err


def test_invert_says_the_pitch_it_found_and_refuses_noise(tmp_path, capsys):
    from audiogan.timbre import TimbreModel

    model = TimbreModel.load(device="cpu")
    sf.write(tmp_path / "cello.wav", model.note(48, instrument="cello"), model.sample_rate)
    out = tmp_path / "cello.npy"
    assert main(["invert", str(tmp_path / "cello.wav"), "--steps", "3", "-o", str(out), "--device", "cpu"]) == 0
    assert "at pitch 48 (found in it)" in capsys.readouterr().out
    assert np.load(out).shape == (model.cfg.timbre_dim,)
    noise = 0.3 * np.random.default_rng(0).standard_normal(32000)
    sf.write(tmp_path / "noise.wav", noise, 16000)
    assert main(["invert", str(tmp_path / "noise.wav"), "-o", str(tmp_path / "noise.npy")]) == 2
    assert "the input looks polyphonic or unpitched" in capsys.readouterr().err
    assert not (tmp_path / "noise.npy").exists()


def test_models_names_weights_that_cannot_load(tmp_path, capsys):
    """A card reads well beside weights cut short in a copy: the table must not pass them as fine."""
    source = weights.resolve("default", "vocoder")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(source.read_bytes()[:100_000])
    shutil.copy(source.with_suffix(".json"), cut.with_suffix(".json"))
    assert main(["models", str(source), str(cut)]) == 1
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if line.startswith("| vocoder-16k-vector")]
    assert len(rows) == 2 and "cannot load" not in rows[0] and "**cannot load: see below**" in rows[1]
    assert f"audiogan: error: {cut}: unreadable .safetensors weights (corrupt or partial?): " in captured.err
    assert str(source) not in captured.err


@pytest.mark.parametrize("command", [["vocode", "{input}"], ["convert", "{input}", "--to", "violin"],
                                     ["render-midi", "{input}", "--instrument", "violin"]])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(tmp_path, capsys, command):
    """`convert take.wav -o take.wav` replaced the recording with its conversion, without a word."""
    take = tmp_path / "take.flac"
    shutil.copy(DEMO_FLAC, take)
    before = take.read_bytes()
    link = tmp_path / "link.flac"
    link.symlink_to(take)  # the same file under another name is the same file
    for output in (take, link):
        assert main([*(a.format(input=take) for a in command), "-o", str(output)]) == 2
        assert f"-o {output} is the input {take}; name another file, or it would be replaced" in \
            capsys.readouterr().err
    assert take.read_bytes() == before


def test_an_empty_mel_file_is_named_as_empty(tmp_path, capsys):
    (tmp_path / "m.npy").write_bytes(b"")
    assert main(["vocode", "--mel", str(tmp_path / "m.npy"), "-o", str(tmp_path / "o.wav")]) == 2
    assert f"{tmp_path / 'm.npy'} is empty (0 bytes), not a mel" in capsys.readouterr().err


def test_a_plot_into_a_missing_folder_is_written_as_the_audio_is(tmp_path, capsys):
    """-o makes its missing folders; --plot failed on one with a bare "[Errno 2]" after the audio was written."""
    np.save(tmp_path / "m.npy", flat_mel(20))
    plot = tmp_path / "new" / "deeper" / "mel.png"
    assert main(["vocode", "--mel", str(tmp_path / "m.npy"), "-o", str(tmp_path / "new" / "o.wav"),
                 "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in plot.parent.iterdir() if p != plot]  # no temp file left beside it


LINUX_PROC = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")


@LINUX_PROC
def test_an_output_that_cannot_be_made_names_it_not_a_temp_file(tmp_path, capsys):
    np.save(tmp_path / "m.npy", flat_mel())
    assert main(["vocode", "--mel", str(tmp_path / "m.npy"), "-o", "/proc/o.wav"]) == 2
    err = capsys.readouterr().err
    assert "/proc/o.wav" in err and "audiogan.tmp" not in err and "Traceback" not in err


@pytest.mark.parametrize(("argv", "message"), [
    (["--threads", "100000"], "threads 100000 is out of range 0.."),  # started 100,000 threads, ignored SIGTERM
    (["--threads", "-3"], "threads -3 is out of range 0.."),  # taken for 0 without a word
    (["--set", "threads=100000"], "threads 100000 is out of range 0.."),
    (["--phase-iterations", "-7"], "phase_iterations -7 is out of range: 0 or more"),
])
def test_server_flags_no_server_can_use_are_refused_before_it_starts(argv, message):
    # load_config, not main: a regression would start the server (and its 100,000 threads) rather than fail.
    # A ConfigError is said by main in one line, exit 2.
    from audiogan_server.main import build_parser, load_config

    from audiogan.config import ConfigError

    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        load_config(build_parser().parse_args([*argv, "--port", "0"]))


@LINUX_PROC
def test_ctrl_c_in_data_notes_says_one_line_and_leaves_whole_files(tmp_path):
    """Ctrl-C reaches the render workers too: pressed while they start (seconds: each imports torch), each
    printed a KeyboardInterrupt traceback, and the pool's thread an InvalidStateError, under "interrupted";
    now they finish the layer under way, whole, and stop."""
    import subprocess
    import sys
    import time

    pytest.importorskip("fluidsynth", reason="needs pyfluidsynth and the fluidsynth library")
    if not os.path.isfile("/usr/share/sounds/sf2/FluidR3_GM.sf2"):
        pytest.skip("needs the fluid-soundfont-gm package")
    out = tmp_path / "notes"
    proc = subprocess.Popen([sys.executable, "-m", "audiogan.cli", "data", "notes", "--programs", "0-40",
                             "--pitches", "24-84", "--velocities", "100", "--seconds", "1", "--hold", "0.5",
                             "--out", str(out)], stderr=subprocess.PIPE,
                            # its own process group, sent SIGINT as a terminal sends it: to every process
                            preexec_fn=lambda: (os.setpgrp(), signal.signal(signal.SIGINT, signal.SIG_DFL)))
    assert proc.stderr is not None
    shown = b""
    while b"render notes" not in shown and proc.poll() is None:  # the workers are about to start
        shown += os.read(proc.stderr.fileno(), 200)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    while len(children.read_text().split()) < 3 and proc.poll() is None:  # 2 workers + multiprocessing's tracker
        time.sleep(0.05)
    time.sleep(0.5)  # they are importing their modules
    os.killpg(proc.pid, signal.SIGINT)
    err = (shown + proc.communicate(timeout=120)[1]).decode()
    assert proc.returncode == 130 and "audiogan: interrupted\n" in err, err
    assert "Traceback" not in err and "Error" not in err, err  # each worker's, and the pool's InvalidStateError
    assert not (out / "examples.json").exists()
    for wav in (out / "audio").iterdir():
        assert sf.info(wav).frames == 16000, wav


def test_help_and_usage_errors_do_not_import_torch():
    """Every subcommand's --help and a usage error come from the parser alone: torch, imported by the
    handlers that need it, took them 1.8-2.0 s (audiogan --help), now 0.1-0.2 s. Checked in a fresh process,
    as this one has torch already."""
    import subprocess
    import sys

    script = """
import argparse, contextlib, io, json, sys
import audiogan.config
from audiogan.cli import build_parser, main

def commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from commands(sub, (*prefix, name))

statuses = {}
for argv in [["--help"], *([*c, "--help"] for c in commands(build_parser())), ["say", "--speed", "fast"],
             ["note", "--seed", "1.5"], ["render", "m.jsonl", "--out", "o", "--engine", "spark"], ["nonsense"]]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv)
        except SystemExit as exit:
            statuses[" ".join(argv)] = exit.code
print(json.dumps({"statuses": statuses, "torch": "torch" in sys.modules}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    statuses = result["statuses"]
    assert {"say --help", "data notes --help", "render --help", "train --help"} <= set(statuses), statuses
    assert {statuses[k] for k in statuses if k.endswith("--help")} == {0}, statuses
    assert {statuses[k] for k in statuses if not k.endswith("--help")} == {2}, statuses
    assert result["torch"] is False, "the parser imported torch"


@pytest.mark.parametrize("name", ["a.b", ".vocoder", "vocoder.nothing"])
def test_a_package_attribute_that_is_no_name_is_an_attribute_error(name):
    """The lazy exports look submodules up by name: a dotted name (as getattr with a default, hasattr or a
    tool probing a module may ask) raised ModuleNotFoundError, which getattr's default does not catch."""
    import audiogan
    import audiogan.audio

    assert getattr(audiogan, name, "none") == "none" and not hasattr(audiogan.audio, name)


@pytest.mark.parametrize(("module", "name"), [
    ("audiogan.timbre.inference", "MODES"), ("audiogan.timbre.inference", "SEED_MAX"),
    ("audiogan.timbre.inference", "SEED_RANGE"), ("audiogan.timbre.inference", "seed_problem"),
    ("audiogan.vocoder.istft", "INFERENCE_PHASES"), ("audiogan.render.engine", "ENGINES"),
    ("audiogan.audio.io", "AudioError"),
])
def test_constants_moved_out_of_the_models_modules_are_still_found_where_they_were(module, name):
    """The command lines take these from torch-free modules now; a library user's import from the old place
    must still work (SEED_RANGE was left behind: ImportError)."""
    import importlib

    assert getattr(importlib.import_module(module), name) is not None

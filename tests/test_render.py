"""`audiogan render`: manifest checks, real vocoding into files, resume, kills, errors, Ray parity."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiogan import Vocoder
from audiogan.render import ManifestError, json_schema, read_manifest, record_invalid, run
from audiogan.render.engine import Outcome, Progress, Summary
from audiogan.render.output import STATE_FILE, OutputBusyError, OutputDir
from audiogan.tts import ssml

REPO = Path(__file__).resolve().parents[1]
DEMO_MEL = REPO / "audiogan" / "samples" / "demo_mel.npy"


def write_jsonl(path: Path, lines: list[dict | str]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


@pytest.fixture
def mels(tmp_path: Path) -> list[str]:
    """Eight real mel files of different lengths, cut from the demo clip's mel."""
    mel = np.load(DEMO_MEL)
    names = []
    for i in range(8):
        name = f"m{i}.npy"
        np.save(tmp_path / name, mel[:, i * 10: i * 10 + 40 + 13 * i])
        names.append(name)
    return names


def vocode_jobs(mels: list[str], prefix: str = "out") -> list[dict]:
    return [{"kind": "vocode", "mel": m, "output": f"{prefix}/{i}.wav"} for i, m in enumerate(mels)]


def render_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audiogan.cli", "render", *args, "--quiet"],
                          capture_output=True, text=True, timeout=timeout)


def test_every_bad_line_is_reported_with_its_number(tmp_path, mels):
    np.save(tmp_path / "ok.npy", np.zeros((80, 10), np.float32))
    lines = [
        {"kind": "vocode", "mel": "ok.npy", "output": "fine.wav"},                    # 1 fine
        "{not json",                                                                 # 2
        "[1, 2]",                                                                    # 3
        {"kind": "sing", "output": "x.wav"},                                         # 4
        {"kind": "vocode", "mel": "ok.npy"},                                         # 5
        {"kind": "vocode", "mel": "ok.npy", "output": "/etc/x.wav"},                 # 6
        {"kind": "vocode", "mel": "ok.npy", "output": "../x.wav"},                   # 7
        {"kind": "vocode", "mel": "ok.npy", "output": "a/../../x.wav"},              # 8
        {"kind": "vocode", "mel": "ok.npy", "output": "x.mp3"},                      # 9
        {"kind": "vocode", "mel": "ok.npy", "output": "y.wav", "volume": 3},         # 10
        {"kind": "vocode", "mel": "ok.npy", "output": "z.wav", "sample_rate": "fast"},  # 11
        {"kind": "vocode", "mel": "ok.npy", "output": "z.wav", "sample_rate": 10},   # 12
        {"kind": "vocode", "output": "w.wav"},                                       # 13
        {"kind": "vocode", "mel": "ok.npy", "audio": "ok.npy", "output": "v.wav"},   # 14
        {"kind": "vocode", "mel": "missing.npy", "output": "u.wav"},                 # 15
        {"kind": "vocode", "mel": "ok.npy", "output": "fine.wav"},                   # 16
        {"kind": "tts", "text": "Hello.", "voice": "nobody", "output": "t.wav"},     # 17
        {"kind": "notes", "output": "n.wav"},                                        # 18
        {"kind": "vocode", "mel": "ok.npy", "output": "s.wav", "seed": True},        # 19
    ]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert [j.line for j in manifest.jobs] == [1]
    reasons = {e.line: e.reason for e in manifest.errors}
    expected = {2: "not valid JSON", 3: "JSON object", 4: "'sing' is not one of", 5: "output: missing",
                6: "is absolute", 7: "leaves the output folder", 8: "leaves the output folder", 9: "must end in",
                10: "unknown field", 11: "expected int", 12: "out of range", 13: "exactly one of",
                14: "exactly one of", 15: "file not found", 16: "also written by line 1",
                17: "no tts weights at 'nobody'", 18: "missing required field(s) ['pitch', 'instrument']",
                19: "expected int"}
    assert set(reasons) == set(expected), reasons
    for line, fragment in expected.items():
        assert fragment in reasons[line], (line, reasons[line])


def test_csv_manifests(tmp_path, mels):
    (tmp_path / "jobs.csv").write_text("kind,mel,output,sample_rate\n"
                                       f"vocode,{mels[0]},a.wav,22050\n"
                                       f"vocode,{mels[1]},b.flac,\n"
                                       f"vocode,{mels[2]},c.wav,lots\n"
                                       f"vocode,{mels[3]},d.wav,8000,extra\n")
    manifest = read_manifest(tmp_path / "jobs.csv")
    assert [(j.output, j.params.get("sample_rate")) for j in manifest.jobs] == [("a.wav", 22050), ("b.flac", None)]
    assert [e.line for e in manifest.errors] == [4, 5]
    assert "is not an int" in manifest.errors[0].reason and "more values" in manifest.errors[1].reason


def test_excel_csv_with_a_byte_order_mark_and_a_cell_over_two_lines(tmp_path):
    # Excel's "CSV UTF-8": a BOM, CRLF rows, a bare LF inside a quoted cell.
    (tmp_path / "jobs.csv").write_bytes("\ufeffkind,text,output\r\n"
                                        'tts,"Hello.\nThere.",a.wav\r\n'
                                        "tts,Hi.,b.mp3\r\n".encode())
    manifest = read_manifest(tmp_path / "jobs.csv")
    assert [(j.line, j.params["text"]) for j in manifest.jobs] == [(2, "Hello.\nThere.")]
    assert [e.line for e in manifest.errors] == [4] and "must end in" in manifest.errors[0].reason


def test_jsonl_lines_end_only_at_newlines(tmp_path):
    # U+2028, U+2029 and U+0085 are legal raw inside JSON strings; str.splitlines() would cut there.
    text = "One\u2028two\u2029three\x85four."
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"kind": "tts", "text": text, "output": "a.wav"}, ensure_ascii=False) + "\r\n"
                    + json.dumps({"kind": "sing", "output": "b.wav"}) + "\n", encoding="utf-8")
    manifest = read_manifest(path)
    assert [(j.line, j.params["text"]) for j in manifest.jobs] == [(1, text)]
    assert [e.line for e in manifest.errors] == [2]


def test_non_finite_numbers_are_refused(tmp_path):
    lines = ['{"kind": "notes", "pitch": 60, "instrument": "cello", "seconds": Infinity, "output": "a.wav"}',
             '{"kind": "tts", "text": "Hi.", "speed": NaN, "output": "b.wav"}',
             '{"kind": "notes", "pitch": 60, "instrument": "cello", "seconds": -Infinity, "output": "c.wav"}']
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert not manifest.jobs
    assert [e.reason for e in manifest.errors] == ["seconds: inf is not a finite number",
                                                   "speed: nan is not a finite number",
                                                   "seconds: -inf is not a finite number"]
    (tmp_path / "jobs.csv").write_text("kind,pitch,instrument,seconds,output\nnotes,60,cello,inf,a.wav\n")
    assert "not a finite number" in read_manifest(tmp_path / "jobs.csv").errors[0].reason


def test_lines_their_model_cannot_render_are_refused_up_front(tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((80, 10), np.float32))
    lines = [
        {"kind": "vocode", "mel": "m.npy", "vocoder": "no-such-vocoder", "output": "v1.wav"},             # 1
        {"kind": "vocode", "mel": "m.npy", "vocoder": "timbre-gm-16k", "output": "v2.wav"},               # 2
        {"kind": "notes", "pitch": 60, "instrument": "cello", "model": "tts-lj-16k", "output": "n1.wav"},  # 3
        {"kind": "tts", "text": "Hi.", "voice": "vocoder-16k-vector", "output": "t1.wav"},                 # 4
        {"kind": "notes", "pitch": 100, "instrument": "cello", "output": "n2.wav"},                        # 5
        {"kind": "notes", "pitch": 60, "instrument": "cello", "seconds": 5.0, "output": "n3.wav"},         # 6
        {"kind": "notes", "pitch": 84, "instrument": "cello", "seconds": 4.0, "output": "n4.wav"},         # 7 fine
        {"kind": "vocode", "mel": "m.npy", "vocoder": "vocoder-16k-vector", "output": "v3.wav"},          # 8 fine
        {"kind": "tts", "text": "Hi.", "speaker": 3, "output": "t2.wav"},                                 # 9
        {"kind": "tts", "text": "Hi.", "speaker": 0, "output": "t3.wav"},                                 # 10 fine
        {"kind": "vocode", "mel": "m.npy", "vocoder": "cut.safetensors", "output": "v4.wav"},             # 11
    ]
    cut = copy_weights("vocoder", tmp_path / "cut.safetensors")
    cut.write_bytes(cut.read_bytes()[:100_000])  # a copy that stopped short: its card still reads well
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert [j.line for j in manifest.jobs] == [7, 8, 10]
    reasons = {e.line: e.reason for e in manifest.errors}
    # The limits are the bundled note model's card's: pitches 24..84, notes of 128 x 512 / 16000 s.
    expected = {1: "no vocoder weights at 'no-such-vocoder'", 2: "timbre-gm-16k.safetensors is a timbre model, not a "
                "vocoder model", 3: "tts-lj-16k.safetensors is a tts model, not a timbre model",
                4: "vocoder-16k-vector.safetensors is a vocoder model, not a tts model",
                5: "pitch 100 is outside this model's range 24..84", 6: "seconds 5.0 is out of range 0.032..4.096",
                9: "speaker 3 is out of range: tts-lj-16k knows speakers 0..0",
                11: f"{cut}: unreadable .safetensors weights (corrupt or partial?)"}
    assert set(reasons) == set(expected), reasons
    for line, fragment in expected.items():
        assert fragment in reasons[line], (line, reasons[line])


def test_resume_keys_follow_input_content_not_the_manifests_spelling(tmp_path, mels, monkeypatch):
    path = write_jsonl(tmp_path / "jobs.jsonl", vocode_jobs(mels[:1]))
    monkeypatch.chdir(tmp_path.parent)
    relative = read_manifest(Path(tmp_path.name) / "jobs.jsonl").jobs
    absolute = read_manifest(path).jobs
    # Inputs resolve to absolute paths (a Ray actor's working directory is not the driver's)
    assert relative[0].params["mel"] == absolute[0].params["mel"] == str(tmp_path / mels[0])
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / mels[0]).write_bytes((tmp_path / mels[0]).read_bytes())
    elsewhere = read_manifest(write_jsonl(moved / "jobs.jsonl", vocode_jobs(mels[:1]))).jobs
    assert elsewhere[0].params["mel"] != absolute[0].params["mel"] and elsewhere[0].key == absolute[0].key
    out = str(tmp_path / "render")
    assert run(elsewhere, out, progress=False).rendered == 1
    assert run(absolute, out, progress=False).skipped == 1
    np.save(tmp_path / mels[0], np.load(tmp_path / mels[1]))  # the same name, another mel
    replaced = read_manifest(path).jobs
    assert replaced[0].key != absolute[0].key
    assert run(replaced, out, progress=False).rendered == 1
    assert sf.info(tmp_path / "render" / "out/0.wav").frames == np.load(tmp_path / mels[1]).shape[1] * 256


def test_invalid_manifest_renders_nothing_unless_told(tmp_path, mels):
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [*vocode_jobs(mels[:2]), {"kind": "vocode", "output": "../evil.wav"}])
    out = tmp_path / "render"
    done = render_cli(str(jobs), "--out", str(out))
    assert done.returncode == 2
    assert "line 3: output: '../evil.wav' leaves the output folder" in done.stderr
    assert not list(out.rglob("*.wav"))
    invalid = [{"line": 3, "output": None, "kind": None,
                "error": "invalid: output: '../evil.wav' leaves the output folder ('..' is refused)"}]
    # The refused run's errors.jsonl says why, rather than what an older run left there.
    assert [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()] == invalid
    done = render_cli(str(jobs), "--out", str(out), "--skip-invalid")
    assert done.returncode == 1, done.stderr  # a skipped line is a job not done: scripts must see it
    assert "2 rendered" in done.stdout and "invalid lines skipped: 1" in done.stdout
    assert sorted(p.name for p in out.rglob("*.wav")) == ["0.wav", "1.wav"]
    assert not (tmp_path / "evil.wav").exists()
    assert [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()] == invalid


def test_rendered_files_are_the_vocoders_audio(tmp_path, mels):
    lines = vocode_jobs(mels)
    lines[3]["sample_rate"] = 22050
    lines[5]["output"] = "out/5.flac"
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    summary = run(manifest.jobs, str(tmp_path / "render"), batch_size=3, progress=False)
    assert (summary.rendered, summary.failed, summary.skipped) == (8, 0, 0)
    vocoder = Vocoder.load(device="cpu")
    for i, line in enumerate(lines):
        audio, rate = sf.read(tmp_path / "render" / line["output"], dtype="float32")
        mel = np.load(tmp_path / mels[i])
        if i == 3:
            assert rate == 22050 and abs(len(audio) - mel.shape[1] * 256 * 22050 / 16000) < 2
            continue
        assert rate == 16000 and len(audio) == mel.shape[1] * 256
        np.testing.assert_allclose(audio, vocoder(mel).numpy(), atol=2 / 32768)
    assert summary.audio_seconds == pytest.approx(sum(np.load(tmp_path / m).shape[1] for m in mels) * 256 / 16000,
                                                  rel=1e-3)


def test_phase_iterations_refine_the_render_and_a_change_of_them_rerenders(tmp_path, mels):
    jobs = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", vocode_jobs(mels[:3]))).jobs
    out = Path(tmp_path / "render")
    assert run(jobs, str(out), phase_iterations=2, progress=False).rendered == 3
    refined_vocoder = Vocoder.load(device="cpu", phase_iterations=2)
    refined = [sf.read(out / f"out/{i}.wav", dtype="float32")[0] for i in range(3)]
    for audio, name in zip(refined, mels[:3], strict=True):
        np.testing.assert_allclose(audio, refined_vocoder(np.load(tmp_path / name)).numpy(), atol=2 / 32768)
    assert run(jobs, str(out), phase_iterations=2, progress=False).skipped == 3
    again = run(jobs, str(out), progress=False)  # the card's setting (0) is another rendering
    assert (again.rendered, again.skipped) == (3, 0)
    plain = sf.read(out / "out/0.wav", dtype="float32")[0]
    assert np.abs(plain - refined[0]).max() > 1e-3
    assert run(jobs, str(out), phase_iterations=0, progress=False).skipped == 3  # the card's own, named


def test_the_integrated_phase_renders_as_the_library_and_a_change_of_source_rerenders(tmp_path, mels):
    jobs = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", vocode_jobs(mels[:2]))).jobs
    out = Path(tmp_path / "render")
    assert run(jobs, str(out), phase="rtpghi", progress=False).rendered == 2
    integrated = Vocoder.load(device="cpu", phase="rtpghi")
    for i, name in enumerate(mels[:2]):
        audio = sf.read(out / f"out/{i}.wav", dtype="float32")[0]
        np.testing.assert_allclose(audio, integrated(np.load(tmp_path / name)).numpy(), atol=2 / 32768)
    assert run(jobs, str(out), phase="rtpghi", progress=False).skipped == 2
    assert run(jobs, str(out), phase="network", progress=False).rendered == 2
    assert run(jobs, str(out), progress=False).skipped == 2  # the card's own source, named or not, is one rendering


def test_resume_skips_done_jobs_and_rerenders_changed_ones(tmp_path, mels):
    lines = vocode_jobs(mels)
    out = str(tmp_path / "render")
    run(read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines)).jobs, out, progress=False)
    stamp = {p: p.stat().st_mtime_ns for p in Path(out).rglob("*.wav")}
    lines[2]["sample_rate"] = 24000                     # changed parameters
    (Path(out) / "out/5.wav").unlink()                  # lost output
    summary = run(read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines)).jobs, out, progress=False)
    assert (summary.rendered, summary.skipped) == (2, 6)
    assert sf.info(Path(out) / "out/2.wav").samplerate == 24000
    for path, mtime in stamp.items():
        if path.name not in ("2.wav", "5.wav"):
            assert path.stat().st_mtime_ns == mtime, f"{path} was rewritten"


def test_a_killed_run_loses_only_jobs_in_flight(tmp_path):
    mel = np.load(DEMO_MEL)
    np.save(tmp_path / "long.npy", np.tile(mel, (1, 2)))
    total = 150
    lines = [{"kind": "vocode", "mel": "long.npy", "output": f"o/{i:03d}.wav", "seed": i} for i in range(total)]
    jobs = write_jsonl(tmp_path / "jobs.jsonl", lines)
    out = tmp_path / "render"
    proc = subprocess.Popen([sys.executable, "-m", "audiogan.cli", "render", str(jobs), "--out", str(out),
                             "--quiet", "--batch-size", "2", "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / STATE_FILE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not state.exists() or len(state.read_text().splitlines()) < 10):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    def complete(line: str) -> bool:
        try:
            return "key" in json.loads(line)
        except json.JSONDecodeError:  # the kill may cut the last line short
            return False
    logged = sum(map(complete, state.read_text().splitlines()))
    assert 10 <= logged < total, "the kill should land mid-run"
    done = render_cli(str(jobs), "--out", str(out))
    assert done.returncode == 0, done.stderr
    rendered, skipped = map(int, re.search(r"(\d+) rendered .*?, (\d+) already done", done.stdout).groups())
    assert skipped == logged, "every output logged before the kill is reused, nothing unlogged is trusted"
    assert rendered + skipped == total
    for path in sorted(out.rglob("*.wav")):
        assert sf.info(path).frames == mel.shape[1] * 2 * 256, f"{path} is incomplete"
    assert len(list(out.rglob("*.wav"))) == total and not list(out.rglob(".*.tmp"))


def test_failures_go_to_errors_jsonl_and_the_rest_render(tmp_path, mels):
    np.save(tmp_path / "nan.npy", np.full((80, 30), np.nan, np.float32))
    np.save(tmp_path / "bins.npy", np.zeros((64, 30), np.float32))
    lines = [*vocode_jobs(mels[:3]), {"kind": "vocode", "mel": "nan.npy", "output": "bad/nan.wav"},
             {"kind": "vocode", "mel": "bins.npy", "output": "bad/bins.wav"}]
    done = render_cli(str(write_jsonl(tmp_path / "jobs.jsonl", lines)), "--out", str(tmp_path / "render"),
                      "--batch-size", "8")
    assert done.returncode == 1
    errors = [json.loads(x) for x in (tmp_path / "render" / "errors.jsonl").read_text().splitlines()]
    assert {(e["line"], e["output"]) for e in errors} == {(4, "bad/nan.wav"), (5, "bad/bins.wav")}
    assert any("NaN" in e["error"] for e in errors) and any("[80, frames]" in e["error"] for e in errors)
    assert len(list((tmp_path / "render" / "out").glob("*.wav"))) == 3


def test_errors_jsonl_lists_only_the_last_runs_failures(tmp_path, mels):
    np.save(tmp_path / "nan.npy", np.full((80, 30), np.nan, np.float32))
    path = write_jsonl(tmp_path / "jobs.jsonl", [{"kind": "vocode", "mel": "nan.npy", "output": "a.wav"}])
    out = tmp_path / "render"
    assert run(read_manifest(path).jobs, str(out), progress=False).failed == 1
    first = (out / "errors.jsonl").read_text()
    assert "NaN" in first
    np.save(tmp_path / "nan.npy", np.load(tmp_path / mels[0]))  # mended
    summary = run(read_manifest(path).jobs, str(out), progress=False,
                  invalid=[ManifestError(2, "kind: 'sing' is not one of ...")])
    assert (summary.rendered, summary.failed) == (1, 0)
    assert [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()] == [
        {"line": 2, "output": None, "kind": None, "error": "invalid: kind: 'sing' is not one of ..."}]
    assert (out / "errors.prev.jsonl").read_text() == first
    second = (out / "errors.jsonl").read_text()
    record_invalid(out, [ManifestError(3, "output: missing")])  # a run refused before rendering rotates too
    assert json.loads((out / "errors.jsonl").read_text())["error"] == "invalid: output: missing"
    assert (out / "errors.prev.jsonl").read_text() == second


def test_every_rename_a_run_makes_is_followed_by_a_sync_of_its_folder(tmp_path, mels, monkeypatch):
    """A file's own fsync leaves its new name to the filesystem's next commit: a power cut right after could
    lose a logged output's rename, or bring the last run's errors.jsonl back as this run's."""
    events: list[tuple[str, os.stat_result]] = []  # in order: the folder of each rename, each synced folder
    replace, fsync = os.replace, os.fsync

    def renamed(src: str, dst: str) -> None:
        replace(src, dst)
        events.append(("renamed in", os.stat(os.path.dirname(os.path.abspath(dst)))))

    def synced(fd: int) -> None:
        fsync(fd)
        if stat.S_ISDIR((info := os.fstat(fd)).st_mode):
            events.append(("synced", info))

    out = tmp_path / "render"
    out.mkdir()
    (out / "errors.jsonl").write_text("a failure of the last run\n")
    lines = [{"kind": "vocode", "mel": mel, "output": output}
             for mel, output in zip(mels, ("0.wav", "a/1.wav", "a/b/2.flac"), strict=False)]
    monkeypatch.setattr(os, "replace", renamed)
    monkeypatch.setattr(os, "fsync", synced)
    summary = run(read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines)).jobs, str(out), progress=False)
    monkeypatch.undo()
    assert summary.rendered == 3 and (out / "errors.prev.jsonl").read_text() == "a failure of the last run\n"
    renames = [i for i, (what, _) in enumerate(events) if what == "renamed in"]
    # errors.jsonl's rotation into --out, then each output into its own folder.
    assert sorted(events[i][1].st_ino for i in renames) == sorted(
        os.stat(folder).st_ino for folder in (out, out, out / "a", out / "a" / "b"))
    for i in renames:
        folder = events[i][1]
        assert any(what == "synced" and os.path.samestat(info, folder) for what, info in events[i + 1:]), \
            f"rename {renames.index(i)} was never made durable"


def test_a_job_whose_weights_cannot_load_fails_alone(tmp_path, mels):
    cut = copy_weights("vocoder", tmp_path / "cut.safetensors")
    cut.write_bytes(cut.read_bytes()[:100_000])
    lines = [*vocode_jobs(mels[:1]), {"kind": "vocode", "mel": mels[1], "vocoder": "no-such-vocoder",
                                      "output": "out/bad.wav"},
             {"kind": "vocode", "mel": mels[1], "vocoder": str(cut), "output": "out/cut.wav"}]
    # Past the up-front check (as weights deleted or damaged after it would be): the run itself must cope.
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines), unavailable=lambda kind, params: None)
    assert len(manifest.jobs) == 3
    summary = run(manifest.jobs, str(tmp_path / "render"), progress=False)
    assert (summary.rendered, summary.failed) == (1, 2)
    errors = {json.loads(x)["line"]: json.loads(x) for x in
              (tmp_path / "render" / "errors.jsonl").read_text().splitlines()}
    assert {line: e["output"] for line, e in errors.items()} == {2: "out/bad.wav", 3: "out/cut.wav"}
    assert errors[2]["error"].startswith("FileNotFoundError: no vocoder weights at 'no-such-vocoder'")
    # The key is made from the file's bytes; the load fails where the batch's sample rate is asked for.
    assert errors[3]["error"].startswith(f"ValueError: {cut}: unreadable .safetensors weights")


def test_resume_keys_name_the_weights_without_loading_them(tmp_path):
    """A Ray driver keys every job; it must not hold every model the actors load."""
    import shutil

    from audiogan import weights
    from audiogan.render.kinds import make_renderers

    def keyed(renderers, timbre="default"):
        return [renderers["vocode"].model_id("default"), renderers["tts"].model_id(json.dumps(["default", None])),
                renderers["notes"].model_id(json.dumps([timbre, None]))]

    renderers = make_renderers()
    ids = keyed(renderers)
    assert not renderers["vocode"].vocoders and not renderers["tts"].voices and not renderers["notes"].models
    assert ids[0].startswith("vocoder-16k-vector.safetensors:") and ids[1].endswith("+" + ids[0])
    assert keyed(make_renderers(phase="rtpghi"))[0] == ids[0] + "+phase=rtpghi"
    # The card's own refinement (0 for the bundled vocoder), named or not, is one rendering; another is not.
    assert keyed(make_renderers(phase_iterations=0))[:2] == ids[:2]
    assert keyed(make_renderers(phase_iterations=2))[0] == ids[0] + "+phase_iterations=2"
    copy = tmp_path / "timbre.safetensors"
    shutil.copy(weights.resolve("default", "timbre"), copy)
    shutil.copy(weights.resolve("default", "timbre").with_suffix(".json"), copy.with_suffix(".json"))
    first = keyed(make_renderers(), str(copy))[2]
    with copy.open("r+b") as f:  # retrained weights under the same name are another rendering
        f.seek(-4, os.SEEK_END)
        f.write(b"\x01\x02\x03\x04")
    assert keyed(make_renderers(), str(copy))[2] != first and first.startswith("timbre.safetensors:")
    # Weights alone: how notes are seeded is marked per job (test_resume_keys_mark_how_the_notes_were_seeded).
    renderers = make_renderers()
    group = json.dumps(["default", None])
    assert renderers["convert"].model_id(group) == renderers["midi"].model_id(group) == ids[2]


def test_resume_keys_mark_how_the_notes_were_seeded(tmp_path):
    """Conversion and MIDI notes once took seed % 2**31, and every note seeded 2**32 or more the noise of its
    seed's low 32 bits: what those runs rendered is re-rendered on resume. A job whose every note is seeded
    below 2**32 drew the same noise then, and keeps the key it had."""
    from test_timbre import melody, write_midi

    from audiogan import weights
    from audiogan.render.engine import job_key
    from audiogan.render.kinds import make_renderers

    sf.write(tmp_path / "tune.wav", melody(), 16000)  # 5 notes; 2.8 s: 176 analysis frames at the model's 16 kHz
    sf.write(tmp_path / "tune8k.wav", melody(8000), 8000)  # as many frames: they are the model's
    write_midi(tmp_path / "song.mid", [(60, 0.0, 0.5), (67, 0.5, 1.0)])
    notes = {"kind": "notes", "pitch": 60, "instrument": "violin"}
    convert = {"kind": "convert", "input": "tune.wav", "to": "violin"}
    midi = {"kind": "midi", "input": "song.mid", "instrument": "violin"}
    size = (tmp_path / "song.mid").stat().st_size
    lines = {  # output -> (line, marked: a note of it may be seeded 2**32 or more)
        "n0.wav": ({**notes, "seed": 0}, False), "n1.wav": ({**notes, "seed": 2**32 - 1}, False),
        "n2.wav": ({**notes, "seed": 2**32}, True), "n3.wav": ({**notes, "seed": 2**64 - 1}, True),
        "c0.wav": ({**convert, "seed": 3}, False), "c1.wav": ({**convert, "seed": 2**32 - 200}, False),
        "c2.wav": ({**convert, "seed": 2**32 - 4}, True), "c3.wav": ({**convert, "seed": 2**32 + 3}, True),
        "c4.wav": ({**convert, "input": "tune8k.wav", "seed": 2**32 - 150}, True),
        "m0.wav": ({**midi, "seed": 3}, False), "m1.wav": ({**midi, "seed": 2**32 - size}, False),
        "m2.wav": ({**midi, "seed": 2**32 - 1}, True), "m3.wav": ({**midi, "seed": 2**63}, True),
        "derived.wav": (notes, None),  # seeded from its path
    }
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", [{**line, "output": name}
                                                                   for name, (line, _) in lines.items()]))
    assert not manifest.errors and len(manifest.jobs) == len(lines)
    renderers = make_renderers()
    timbre = weights.identity(weights.resolve("default", "timbre"))
    for job in manifest.jobs:
        marked = lines[job.output][1]
        if marked is None:
            marked = job.seed >= 2**32
        before = f"{job.key}:{timbre}" + ("+seeds=library" if job.kind != "notes" else "")
        assert job_key(job, renderers[job.kind]) == before + "+seeds=64bit" * marked, job.output
    assert not renderers["notes"].models and not renderers["convert"].models  # keyed from cards alone


def test_resume_rerenders_notes_an_old_release_seeded_by_32_bits(tmp_path, tiny_timbre):
    """A render made before seeds reached past 32 bits: its note seeded 2**32 + 5 is the take of seed 5, and
    is re-rendered as its own; the note seeded 5 is the same note and is kept."""
    from audiogan.timbre import TimbreModel

    model = str(tiny_timbre[0])
    lines = [{"kind": "notes", "pitch": 60, "instrument": "violin", "model": model, "seconds": 0.25,
              "output": name, "seed": seed} for name, seed in (("small.wav", 5), ("large.wav", 2**32 + 5))]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    out = tmp_path / "render"
    assert run(manifest.jobs, str(out), device="cpu", progress=False).rendered == 2
    new_take, _ = sf.read(out / "large.wav", dtype="float32")
    # As the old release left it: the seed-5 take under both names, logged with the keys it made.
    (out / "large.wav").write_bytes((out / "small.wav").read_bytes())
    state = out / STATE_FILE
    entries = [json.loads(line) for line in state.read_text().splitlines()]
    assert {e["output"]: e["key"].endswith("+seeds=64bit") for e in entries} == {"small.wav": False, "large.wav": True}
    state.write_text("".join(json.dumps({**e, "key": e["key"].removesuffix("+seeds=64bit")}) + "\n"
                             for e in entries))
    summary = run(manifest.jobs, str(out), device="cpu", progress=False)
    assert (summary.rendered, summary.skipped) == (1, 1)
    large, _ = sf.read(out / "large.wav", dtype="float32")
    small, _ = sf.read(out / "small.wav", dtype="float32")
    # Rendered in a batch of its own now: the same take up to a PCM16 step (docs/render.md, Reproducibility).
    assert np.abs(large - new_take).max() <= 1 / 32768 and np.abs(large - small).max() > 1e-2
    note = TimbreModel.load(model, device="cpu").note(60, instrument="violin", seconds=0.25, seed=2**32 + 5)
    np.testing.assert_allclose(large, note, atol=5e-4)  # PCM16
    assert run(manifest.jobs, str(out), device="cpu", progress=False).skipped == 2


def test_an_output_a_symlink_takes_outside_fails_before_rendering(tmp_path, mels):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "render").mkdir()
    (tmp_path / "render" / "link").symlink_to(tmp_path / "elsewhere")
    lines = [{"kind": "vocode", "mel": mels[0], "output": "ok.wav"},
             {"kind": "vocode", "mel": mels[1], "output": "link/escape.wav"}]
    summary = run(read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines)).jobs, str(tmp_path / "render"),
                  progress=False)
    assert (summary.rendered, summary.failed) == (1, 1)
    errors = [json.loads(x) for x in (tmp_path / "render" / "errors.jsonl").read_text().splitlines()]
    assert [e["output"] for e in errors] == ["link/escape.wav"] and "outside" in errors[0]["error"]
    assert not list((tmp_path / "elsewhere").iterdir())


def test_a_write_refused_as_outside_is_recorded_not_raised(tmp_path):
    # A symlink made while the run goes on: the write's ValueError is a failed job, not a crash.
    out = OutputDir(tmp_path / "render")
    try:
        (tmp_path / "render" / "link").symlink_to(tmp_path)
        job = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", [{"kind": "notes", "pitch": 60,
                                                                   "instrument": "cello",
                                                                   "output": "link/x.wav"}])).jobs[0]
        summary = Summary(jobs=1)
        progress = Progress(out, summary, 1, {job.output: "key"}, show=False)
        progress.record(Outcome(job, b"RIFF", 1.0))
        progress.close()
    finally:
        out.close()
    assert summary.failed == 1 and not (tmp_path / "x.wav").exists()
    assert "outside" in json.loads((tmp_path / "render" / "errors.jsonl").read_text())["error"]


def test_outputs_cannot_escape_through_a_symlink(tmp_path):
    out = OutputDir(tmp_path / "render")
    try:
        (tmp_path / "render" / "link").symlink_to(tmp_path)
        with pytest.raises(ValueError, match="outside"):
            out.path("link/escape.wav")
    finally:
        out.close()


def test_one_render_per_output_folder(tmp_path):
    first = OutputDir(tmp_path / "render")
    try:
        with pytest.raises(OutputBusyError):
            OutputDir(tmp_path / "render")
    finally:
        first.close()


def test_seeds_are_deterministic_per_job(tmp_path, mels):
    path = write_jsonl(tmp_path / "jobs.jsonl", vocode_jobs(mels[:3]))
    a = {j.output: j.seed for j in read_manifest(path).jobs}
    reordered = write_jsonl(tmp_path / "again.jsonl", list(reversed(vocode_jobs(mels[:3]))))
    assert a == {j.output: j.seed for j in read_manifest(reordered).jobs}
    assert len(set(a.values())) == 3


def test_schema_file_is_current():
    assert json.loads((REPO / "docs" / "render-manifest.schema.json").read_text()) == json_schema(), \
        "regenerate with: audiogan render --schema > docs/render-manifest.schema.json"


def test_the_schema_and_the_manifest_check_agree(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    np.save(tmp_path / "m.npy", np.zeros((80, 10), np.float32))
    vocode = '{"kind": "vocode", "mel": "m.npy", '
    notes = '{"kind": "notes", "pitch": 60, "instrument": "cello", '
    tts = '{"kind": "tts", "text": "Hi.", '
    outputs = ["x.wav", "x.WAV", "d/x.Flac", "a\\b.wav", "a..b.wav", "..wav", "/x.wav", "\\x.wav", "C:x.wav",
               "c:/x.wav", "../x.wav", "a/../x.wav", "..\\x.wav", "a\\..\\x.wav", "a/..", "x.mp3", ".wav",
               "d/.wav", "x.wav/", "x.wav.txt", "", " ", "x.wav\n", "x\u0000.wav", "a\tb.wav", "x\u2028.wav",
               "x\u0085.wav", "caf\u00e9.wav"]
    lines = [vocode + f'"output": {json.dumps(o)}}}' for o in outputs] + [
        vocode + '"output": "x.wav", "sample_rate": 22050}', vocode + '"output": "x.wav", "sample_rate": 22050.0}',
        vocode + '"output": "x.wav", "sample_rate": 22050.5}', vocode + '"output": "x.wav", "sample_rate": 7999}',
        vocode + '"output": "x.wav", "sample_rate": 96001}', vocode + '"output": "x.wav", "sample_rate": true}',
        vocode + '"output": "x.wav", "sample_rate": "fast"}', vocode + '"output": "x.wav", "seed": -1}',
        vocode + f'"output": "x.wav", "seed": {2**64}}}', vocode + f'"output": "x.wav", "seed": {2**64 - 1}}}',
        vocode + '"output": "x.wav", "vocoder": ""}', vocode + '"output": "x.wav", "audio": "m.npy"}',
        vocode + '"output": "x.wav", "volume": 3}', '{"kind": "vocode", "output": "x.wav"}',
        '{"kind": "vocode", "mel": "m.npy\\n", "output": "x.wav"}',
        vocode + '"output": "x.wav", "vocoder": "a\\u0000"}',
        notes + '"output": "x.wav"}', notes + '"output": "x.wav", "seconds": 0}',
        notes + '"output": "x.wav", "seconds": -1}', notes + '"output": "x.wav", "seconds": 0.5}',
        notes + '"output": "x.wav", "seconds": Infinity}', notes + '"output": "x.wav", "velocity": 0}',
        notes + '"output": "x.wav", "velocity": 127}', notes + '"output": "x.wav", "model": " "}',
        '{"kind": "notes", "pitch": 60, "instrument": "", "output": "x.wav"}',
        '{"kind": "notes", "pitch": 60, "output": "x.wav"}',
        tts + '"output": "x.wav"}', '{"kind": "tts", "text": "  ", "output": "x.wav"}',
        tts + '"output": "x.wav", "speed": 0.2}', tts + '"output": "x.wav", "speed": 4}',
        tts + '"output": "x.wav", "speed": NaN}', tts + '"output": "x.wav", "pitch_shift": -12.5}',
        tts + '"output": "x.wav", "speaker": -1}', tts + '"output": "x.wav", "timings": "vtt"}',
        tts + '"output": "x.wav", "timings": "txt"}', tts + '"output": "x.wav", "timings": "VTT"}',
        '{"kind": "sing", "output": "x.wav"}', '{"output": "x.wav"}',
    ]
    validator = jsonschema.Draft202012Validator(json_schema())

    def schema_accepts(line: str) -> bool:
        def strict(constant: str) -> float:  # JSON itself has no NaN or Infinity
            raise ValueError(constant)
        try:
            return validator.is_valid(json.loads(line, parse_constant=strict))
        except ValueError:
            return False

    disagree = []
    for i, line in enumerate(lines):
        manifest = read_manifest(write_jsonl(tmp_path / f"{i}.jsonl", [line]))
        if bool(manifest.jobs) != schema_accepts(line):
            disagree.append((line, [e.reason for e in manifest.errors]))
    assert not disagree
    assert sum(schema_accepts(line) for line in lines) >= 15  # both sides see valid lines too


def test_ray_engine_renders_what_the_local_engine_does(tmp_path, mels):
    pytest.importorskip("ray")
    lines = vocode_jobs(mels)
    lines.append({"kind": "vocode", "audio": str(REPO / "audiogan" / "samples" / "demo.flac"), "output": "c.flac",
                  "sample_rate": 22050})
    jobs = write_jsonl(tmp_path / "jobs.jsonl", lines)
    # One thread on both sides: the same float sums, so the same bytes.
    local = render_cli(str(jobs), "--out", str(tmp_path / "local"), "--batch-size", "3", "--threads", "1")
    assert local.returncode == 0, local.stderr
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    ray = subprocess.run([sys.executable, "-m", "audiogan.cli", "render", str(jobs), "--out", str(tmp_path / "ray"),
                          "--engine", "ray", "--batch-size", "3", "--quiet", "--threads", "1"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert ray.returncode == 0, ray.stderr[-3000:]
    assert "9 rendered" in ray.stdout
    for line in lines:
        assert (tmp_path / "local" / line["output"]).read_bytes() == (tmp_path / "ray" / line["output"]).read_bytes(), \
            line["output"]


def test_ray_actors_render_files_their_node_cannot_see(tmp_path, mels):
    """A cluster without a shared filesystem: the driver's input and weights paths are not on the actors'
    machines, so the driver sends the files, and an actor renders from copies of its own, the same bytes."""
    import shutil

    from test_timbre import write_midi

    from audiogan.render.engine import plan_batches, render_batch
    from audiogan.render.kinds import make_renderers
    from audiogan.render.shipping import NodeFiles, Shipper

    src = tmp_path / "src"
    copy_weights("vocoder", src / "voc.safetensors")
    for i, mel in enumerate(mels[:3]):
        shutil.copy(tmp_path / mel, src / f"{i}.npy")
    write_midi(src / "song.mid", [(60, 0.0, 0.3), (64, 0.3, 0.6)])
    lines = [{"kind": "vocode", "mel": f"{i}.npy", "vocoder": "voc.safetensors", "output": f"{i}.wav"}
             for i in range(3)]
    lines.append({"kind": "midi", "input": "song.mid", "instrument": "flute", "output": "song.wav"})
    renderers = make_renderers("cpu")
    batches = plan_batches(read_manifest(write_jsonl(src / "jobs.jsonl", lines)).jobs, renderers,
                           dict.fromkeys(renderers, 2))
    assert len(batches) == 3  # the vocoder's weights serve two batches
    expected = {o.job.output: o.data for b in batches for o in render_batch(renderers[b.kind], b)}

    store: list[bytes] = []
    shipper = Shipper(lambda data: store.append(data) or len(store) - 1)
    sent = [(batch, shipper.units(batch)) for batch in batches]
    assert len(store) == 2 + 4  # the weights and their card once, each input once

    fetched: list[int] = []
    shared = NodeFiles(lambda ref: fetched.append(ref) or store[ref])
    for batch, units in sent:  # a node that sees the driver's files reads them there
        assert shared.localise(batch, units, renderers[batch.kind].group) == batch
    assert not fetched

    (src).rename(tmp_path / "gone")  # a node without them
    node = NodeFiles(lambda ref: fetched.append(ref) or store[ref])
    got = {}
    for batch, units in sent:
        local = node.localise(batch, units, renderers[batch.kind].group)
        assert str(src) not in json.dumps([local.group, *[job.params for job in local.jobs]])
        got.update((o.job.output, o.data) for o in render_batch(renderers[local.kind], local))
        node.drop_inputs()
    assert got == expected
    assert sorted(fetched) == list(range(len(store)))  # each file once: the weights stay between batches
    node.close()
    assert not node.root.exists()


def can_hide_a_folder() -> bool:
    """Whether this machine lets a process mount an empty tmpfs over a folder in a namespace of its own."""
    import shutil
    import tempfile

    if shutil.which("unshare") is None:
        return False
    folder = tempfile.mkdtemp()
    try:
        return subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {folder}"],
                              capture_output=True).returncode == 0
    finally:
        os.rmdir(folder)


@pytest.mark.skipif(not can_hide_a_folder(),
                    reason="hiding a folder from a node needs unshare -m and mount (root, outside a container)")
def test_a_ray_cluster_node_that_cannot_see_the_inputs_renders_them(tmp_path, mels):
    """`--address` to a running two-node cluster whose only worker node has the manifest's folder hidden
    under an empty tmpfs (its own mount namespace): every job renders, byte for byte the local engine's."""
    import shutil
    import socket
    import tempfile

    pytest.importorskip("ray")
    src = tmp_path / "src"
    copy_weights("vocoder", src / "voc.safetensors")
    for i, mel in enumerate(mels[:2]):
        shutil.copy(tmp_path / mel, src / f"{i}.npy")
    lines = [{"kind": "vocode", "mel": "0.npy", "output": "a.wav"},
             {"kind": "vocode", "mel": "1.npy", "vocoder": "voc.safetensors", "output": "b.wav"}]
    jobs = write_jsonl(src / "jobs.jsonl", lines)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ray = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--disable-usage-stats"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    # A folder of its own (short: Ray's socket paths must fit), so that a killed head leaves no address
    # file behind in /tmp/ray for a later ray.init() on this machine to wait on.
    own = tempfile.mkdtemp(prefix="ag-ray-", dir="/tmp")
    with open(tmp_path / "head.log", "w") as log:
        nodes = [subprocess.Popen([*ray, "--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false",
                                   f"--temp-dir={own}"], env=env, start_new_session=True, stdout=log,
                                  stderr=subprocess.STDOUT)]
    def cluster_cpus() -> float | None:
        """The cluster's CPUs once its head answers (None before). Without both nodes the render would wait
        for a CPU until its timeout: a node that died is said at once instead."""
        assert all(node.poll() is None for node in nodes), \
            "".join(log.read_text()[-2000:] for log in sorted(tmp_path.glob("*.log")))
        status = subprocess.run([ray[0], "status", f"--address=127.0.0.1:{port}"], capture_output=True, text=True,
                                env=env, timeout=120)
        if status.returncode:
            return None
        found = re.search(r"/(\d+(?:\.\d+)?) CPU", status.stdout)  # no line at all while there are none
        return float(found[1]) if found else 0.0

    def wait_for(ready: Callable[[float | None], bool], what: str) -> None:
        # Polled, not slept for: on a loaded machine a node took over the 3 s once allowed.
        deadline = time.monotonic() + 120
        while not ready(cluster_cpus()):
            assert time.monotonic() < deadline, f"{what} within 120 s"
            time.sleep(1)

    try:
        wait_for(lambda cpus: cpus is not None, "the head answered")
        hide = f"mount -t tmpfs none {src} && exec {' '.join(ray)} --address=127.0.0.1:{port} --num-cpus=1"
        with open(tmp_path / "worker.log", "w") as log:
            nodes.append(subprocess.Popen(["unshare", "-m", "sh", "-c", hide], env=env, start_new_session=True,
                                          stdout=log, stderr=subprocess.STDOUT))
        wait_for(lambda cpus: cpus == 1, "the worker node joined")
        done = subprocess.run([sys.executable, "-m", "audiogan.cli", "render", str(jobs), "--out",
                               str(tmp_path / "ray"), "--engine", "ray", "--address", f"127.0.0.1:{port}",
                               "--threads", "1", "--quiet"], capture_output=True, text=True, timeout=300, env=env)
    finally:
        for node in reversed(nodes):
            os.killpg(node.pid, signal.SIGTERM)
        time.sleep(2)
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):  # `ray start --block` may outlive a SIGTERM
                os.killpg(node.pid, signal.SIGKILL)
            node.wait()
        shutil.rmtree(own, ignore_errors=True)
    assert done.returncode == 0 and "2 rendered" in done.stdout, done.stdout + done.stderr[-3000:]
    local = render_cli(str(jobs), "--out", str(tmp_path / "local"), "--threads", "1", "--device", "cpu")
    assert local.returncode == 0, local.stderr
    for line in lines:
        assert (tmp_path / "ray" / line["output"]).read_bytes() == (tmp_path / "local" / line["output"]).read_bytes()


def test_tts_jobs_with_a_voice(tmp_path, tiny_voice):
    from audiogan.tts import TTS

    voice = str(tiny_voice[0])
    lines = [{"kind": "tts", "text": "Hello there.", "voice": voice, "output": "t/0.wav"},
             {"kind": "tts", "text": "A longer line. It has two sentences.", "voice": voice, "output": "t/1.wav"},
             {"kind": "tts", "text": "Faster now.", "voice": voice, "speed": 2.0, "output": "t/2.flac"},
             {"kind": "tts", "text": "... ?", "voice": voice, "output": "t/bad.wav"},
             {"kind": "tts", "text": "Hello there.", "voice": voice, "speaker": 1, "output": "t/nobody.wav"}]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    # The voice's card says how many speakers it knows: a line for another fails up front, not mid-run.
    assert [(e.line, e.reason) for e in manifest.errors] == [
        (5, "kind 'tts' cannot run here: speaker 1 is out of range: "
            f"{TTS.load(voice, device='cpu').name} knows speakers 0..0")]
    summary = run(manifest.jobs, str(tmp_path / "render"), batch_size=8, device="cpu", progress=False)
    assert (summary.rendered, summary.failed) == (3, 1)
    tts = TTS.load(voice, device="cpu")
    for line in lines[:3]:
        audio, rate = sf.read(tmp_path / "render" / line["output"], dtype="float32")
        expected, _ = tts(line["text"], speed=line.get("speed", 1.0))
        assert rate == 16000 and audio.shape == expected.shape
        # The untrained tiny voice's mels drive the vocoder's last blocks where batch-size-dependent
        # rounding (1e-6) grows to ~5e-5 relative: a few PCM16 steps, far below any real mistake.
        np.testing.assert_allclose(audio, expected, atol=16 / 32768)
    errors = {e["output"]: e["error"] for e in map(json.loads, (tmp_path / "render" / "errors.jsonl").read_text()
                                                    .splitlines())}
    assert "pronounceable" in errors["t/bad.wav"] and "t/nobody.wav" not in errors


def test_tts_jobs_with_a_lexicon(tmp_path, tiny_voice):
    from audiogan.tts import TTS

    voice = str(tiny_voice[0])
    (tmp_path / "names.txt").write_text("Nguyen win\n", encoding="utf-8")
    (tmp_path / "bad.txt").write_text("Nguyen /wɪʁ/\n", encoding="utf-8")
    lines = [{"kind": "tts", "text": "Nguyen is here.", "voice": voice, "lexicon": "names.txt", "output": "a.wav"},
             {"kind": "tts", "text": "Nguyen is here.", "voice": voice, "output": "b.wav"},
             {"kind": "tts", "text": "Nguyen is here.", "voice": voice, "lexicon": "bad.txt", "output": "c.wav"},
             {"kind": "tts", "text": "Hi.", "voice": voice, "lexicon": "none.txt", "output": "d.wav"}]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    reasons = {e.line: e.reason for e in manifest.errors}
    assert sorted(reasons) == [3, 4] and "'ʁ' is no phoneme of this voice" in reasons[3]
    assert "none.txt" in reasons[4]
    summary = run(manifest.jobs, str(tmp_path / "render"), device="cpu", progress=False)
    assert summary.rendered == 2
    said, _ = TTS.load(voice, device="cpu", lexicon=tmp_path / "names.txt")("Nguyen is here.")
    audio, _ = sf.read(tmp_path / "render" / "a.wav", dtype="float32")
    np.testing.assert_allclose(audio, said, atol=16 / 32768)
    assert audio.shape != sf.read(tmp_path / "render" / "b.wav")[0].shape  # "win" is not "Nguyen"
    # An edited lexicon is another rendering: the job that names it is rendered again, the other skipped.
    (tmp_path / "names.txt").write_text("Nguyen nuh when\n", encoding="utf-8")
    summary = run(manifest.jobs, str(tmp_path / "render"), device="cpu", progress=False)
    assert (summary.rendered, summary.skipped) == (1, 1)


def test_tts_jobs_in_ssml(tmp_path, tiny_voice):
    from audiogan.tts import TTS

    voice = str(tiny_voice[0])
    text = '<speak>One.<break time="400ms"/><prosody pitch="+3st">Two.</prosody></speak>'
    lines = [{"kind": "tts", "text": text, "voice": voice, "output": "a.wav"},
             {"kind": "tts", "text": "<speak>One. <b>Two.</b></speak>", "voice": voice, "output": "b.wav"}]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert [(e.line, e.reason) for e in manifest.errors] == [
        (2, "text: SSML element <b> is not supported; the voices understand " + ", ".join(
            f"<{e}>" for e in ssml.ELEMENTS))]
    assert run(manifest.jobs, str(tmp_path / "render"), device="cpu", progress=False).rendered == 1
    said, _ = TTS.load(voice, device="cpu")(text)
    audio, _ = sf.read(tmp_path / "render" / "a.wav", dtype="float32")
    np.testing.assert_allclose(audio, said, atol=16 / 32768)


def test_tts_jobs_write_timings_beside_the_audio(tmp_path, tiny_voice):
    from audiogan.tts import TTS

    voice = str(tiny_voice[0])
    text = "Hello there. It is late."
    lines = [{"kind": "tts", "text": text, "voice": voice, "timings": "vtt", "output": "book/a.wav"},
             {"kind": "tts", "text": text, "voice": voice, "timings": "json", "output": "book/b.flac"},
             {"kind": "tts", "text": text, "voice": voice, "output": "book/c.wav"},
             {"kind": "tts", "text": text, "voice": voice, "timings": "vtt", "output": "book/a.flac"},
             {"kind": "tts", "text": text, "voice": voice, "timings": "txt", "output": "book/d.wav"}]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert [(e.line, e.reason) for e in manifest.errors] == [
        (4, "output: 'book/a.vtt' is also written by line 1"), (5, "timings: 'txt' is not json, vtt or srt")]
    out = tmp_path / "render"
    assert run(manifest.jobs, str(out), device="cpu", progress=False).rendered == 3
    expected = TTS.load(voice, device="cpu").synthesize(text).timings
    assert (out / "book" / "a.vtt").read_text() == expected.to_vtt()
    assert json.loads((out / "book" / "b.json").read_text())["words"][0]["text"] == "Hello"
    assert sorted(p.name for p in (out / "book").iterdir()) == ["a.vtt", "a.wav", "b.flac", "b.json", "c.wav"]
    # Resume: a lost caption file is written again with its audio; the others are skipped.
    (out / "book" / "a.vtt").unlink()
    summary = run(manifest.jobs, str(out), device="cpu", progress=False)
    assert (summary.rendered, summary.skipped) == (1, 2) and (out / "book" / "a.vtt").is_file()


def test_tts_jobs_need_a_voice(tmp_path):
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", [
        {"kind": "tts", "text": "Hi.", "voice": "/no/voice.safetensors", "output": "x.wav"}]))
    assert "no tts weights" in manifest.errors[0].reason


def test_note_jobs_with_a_model(tmp_path, tiny_timbre):
    from audiogan.timbre import TimbreModel

    model = str(tiny_timbre[0])
    lines = [{"kind": "notes", "pitch": 60, "instrument": "violin", "model": model, "output": "n/v60.wav", "seed": 4},
             {"kind": "notes", "pitch": 66, "instrument": "flute", "model": model, "output": "n/f66.flac"},
             {"kind": "notes", "pitch": 60, "instrument": "tuba", "model": model, "output": "n/t.wav"}]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert [e.line for e in manifest.errors] == [3] and "unknown instrument 'tuba'" in manifest.errors[0].reason
    summary = run(manifest.jobs, str(tmp_path / "render"), device="cpu", progress=False)
    assert summary.rendered == 2
    local = TimbreModel.load(model, device="cpu")
    audio, rate = sf.read(tmp_path / "render" / "n/v60.wav", dtype="float32")
    assert rate == local.sample_rate
    np.testing.assert_allclose(audio, local.note(60, instrument="violin", seed=4), atol=2 / 32768)


def test_on_cpu_note_jobs_share_batches_and_speech_jobs_do_not(tmp_path, mels):
    from audiogan.render.engine import plan_batches
    from audiogan.render.kinds import make_renderers

    notes = [{"kind": "notes", "pitch": 40 + i % 40, "instrument": "cello", "output": f"n/{i}.wav"} for i in range(70)]
    jobs = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", vocode_jobs(mels)[:3] + notes)).jobs
    renderers = make_renderers("cpu")
    batches = plan_batches(jobs, renderers, {kind: r.cpu_batch_size for kind, r in renderers.items()})
    assert sorted((b.kind, len(b.jobs)) for b in batches) == [("notes", 6), ("notes", 64)] + [("vocode", 1)] * 3
    assert {r.cpu_batch_size for k, r in renderers.items() if k in ("convert", "midi", "tts")} == {1}


def test_note_jobs_default_to_the_bundled_model(tmp_path):
    lines = [{"kind": "notes", "pitch": 48, "instrument": "cello", "seconds": 1.0, "output": "c48.wav"},
             {"kind": "notes", "pitch": 72, "instrument": "harp", "output": "h.wav"}]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert [e.line for e in manifest.errors] == [2] and "unknown instrument 'harp'" in manifest.errors[0].reason
    summary = run(manifest.jobs, str(tmp_path / "render"), device="cpu", progress=False)
    audio, rate = sf.read(tmp_path / "render" / "c48.wav", dtype="float32")
    assert summary.rendered == 1 and rate == 16000 and len(audio) == 16000 and np.abs(audio).max() > 0.1


def test_convert_jobs_with_a_model(tmp_path, tiny_timbre):
    from test_timbre import melody

    sf.write(tmp_path / "tune.wav", melody(), 16000)
    lines = [{"kind": "convert", "input": "tune.wav", "to": "flute", "model": str(tiny_timbre[0]),
              "output": "c/tune.wav"},
             {"kind": "convert", "input": "tune.wav", "to": "flute", "to_b": "violin", "model": str(tiny_timbre[0]),
              "output": "c/morph.wav"},
             {"kind": "convert", "input": "tune.wav", "to": "flute", "to_b": "kazoo", "model": str(tiny_timbre[0]),
              "output": "c/bad.wav"},
             {"kind": "convert", "input": "tune.wav", "to": "flute", "model": str(tiny_timbre[0]),
              "output": "c/seeded.wav", "seed": 2**31 + 3}]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert [e.line for e in manifest.errors] == [3] and "'kazoo'" in manifest.errors[0].reason
    summary = run(manifest.jobs, str(tmp_path / "render"), device="cpu", progress=False)
    assert summary.rendered == 3
    audio, rate = sf.read(tmp_path / "render" / "c/tune.wav")
    assert rate == 16000 and len(audio) == len(melody())
    morph, _ = sf.read(tmp_path / "render" / "c/morph.wav")
    assert len(morph) == len(audio) and np.abs(morph - audio).max() > 1e-2  # the last notes are violin's
    # A job's seed means what it means to the library (and so to a client's convert): it was taken mod 2**31.
    from audiogan.timbre import TimbreModel
    from audiogan.timbre.convert import convert

    seeded, _ = sf.read(tmp_path / "render" / "c/seeded.wav", dtype="float32")
    model = TimbreModel.load(tiny_timbre[0], device="cpu")
    # PCM16, and render's worker threads round the generator a little differently (as the server's do).
    np.testing.assert_allclose(seeded, convert(model, melody(), 16000, "flute", seed=2**31 + 3), atol=5e-4)
    assert np.abs(seeded - convert(model, melody(), 16000, "flute", seed=3)).max() > 1e-2


def test_midi_jobs_with_a_model(tmp_path, tiny_timbre):
    from test_timbre import write_midi

    write_midi(tmp_path / "song.mid", [(60, 0.0, 0.5), (67, 0.5, 1.0)])
    lines = [{"kind": "midi", "input": "song.mid", "instrument": "flute", "to": "violin",
              "model": str(tiny_timbre[0]), "output": "m/song.wav"},
             {"kind": "midi", "input": "song.mid", "instrument": "flute", "to": "kazoo",
              "model": str(tiny_timbre[0]), "output": "m/bad.wav"}]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert [e.line for e in manifest.errors] == [2] and "'kazoo'" in manifest.errors[0].reason
    summary = run(manifest.jobs, str(tmp_path / "render"), device="cpu", progress=False)
    assert summary.rendered == 1
    audio, rate = sf.read(tmp_path / "render" / "m/song.wav")
    assert rate == 16000 and len(audio) == int(1.5 * 16000)


def test_a_batch_size_below_zero_or_no_workers_is_refused_not_an_empty_run(tmp_path, mels):
    from audiogan.render.engine import plan_batches
    from audiogan.render.kinds import make_renderers

    jobs = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", vocode_jobs(mels[:2]))).jobs
    out = tmp_path / "render"
    with pytest.raises(ValueError, match="batch size"):
        run(jobs, str(out), batch_size=-1, progress=False)
    with pytest.raises(ValueError, match="workers"):
        run(jobs, str(out), workers=0, progress=False)
    assert not out.exists()  # refused before the output folder is touched
    renderers = make_renderers("cpu")
    with pytest.raises(ValueError, match="'vocode'"):
        plan_batches(jobs, renderers, {kind: 0 for kind in renderers})
    assert run(jobs, str(out), batch_size=0, progress=False).rendered == 2  # 0: each kind's default


def test_csv_int_cells_take_whole_numbers_written_as_floats_like_json(tmp_path):
    header = "kind,output,pitch,instrument,seconds,sample_rate\n"
    (tmp_path / "jobs.csv").write_text(header + "notes,a.wav,60.0,flute,1.0,22050.0\n"
                                       "notes,b.wav,60.5,flute,,\n"
                                       "notes,c.wav,sixty,flute,,\n")
    manifest = read_manifest(tmp_path / "jobs.csv")
    assert [(j.output, j.params["pitch"], j.params["sample_rate"]) for j in manifest.jobs] == [("a.wav", 60, 22050)]
    assert isinstance(manifest.jobs[0].params["pitch"], int)
    as_json = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", [
        {"kind": "notes", "output": "a.wav", "pitch": 60.0, "instrument": "flute", "seconds": 1.0,
         "sample_rate": 22050.0}])).jobs
    assert as_json[0].key == manifest.jobs[0].key  # the same job, whichever format said it
    assert [(e.line, e.reason) for e in manifest.errors] == [(3, "pitch: expected int, got 60.5"),
                                                             (4, "pitch: 'sixty' is not an int")]


def copy_weights(kind: str, to: Path) -> Path:
    import shutil

    from audiogan import weights

    source = weights.resolve("default", kind)
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, to)
    shutil.copy(source.with_suffix(".json"), to.with_suffix(".json"))
    return to


def test_weights_paths_are_relative_to_the_manifest_not_the_working_directory(tmp_path, mels, monkeypatch):
    copy_weights("timbre", tmp_path / "models" / "mine.safetensors")
    copy_weights("vocoder", tmp_path / "models" / "voc.safetensors")
    copy_weights("tts", tmp_path / "models" / "voice.safetensors")
    (tmp_path / "lex.txt").write_text("Nguyen win\n", encoding="utf-8")
    lines = [{"kind": "notes", "pitch": 60, "instrument": "cello", "model": "models/mine.safetensors",
              "output": "n.wav"},
             {"kind": "vocode", "mel": mels[0], "vocoder": "models/voc", "output": "v.wav"},
             {"kind": "notes", "pitch": 62, "instrument": "cello", "model": "timbre-gm-16k", "output": "b.wav"},
             {"kind": "notes", "pitch": 62, "instrument": "cello", "model": "models/none.safetensors",
              "output": "x.wav"},
             {"kind": "tts", "text": "Nguyen.", "voice": "models/voice.safetensors", "lexicon": "lex.txt",
              "output": "t.wav"},
             {"kind": "notes", "pitch": 62, "instrument": "cello", "model": "m" * 300, "output": "y.wav"},
             {"kind": "vocode", "mel": "m" * 300, "output": "z.wav"}]
    path = write_jsonl(tmp_path / "jobs.jsonl", lines)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # where the relative weights paths do not exist
    manifest = read_manifest(path)
    assert [j.line for j in manifest.jobs] == [1, 2, 3, 5]
    assert [e.line for e in manifest.errors] == [4, 6, 7]
    assert str(tmp_path / "models" / "none") in manifest.errors[0].reason
    assert "File name too long" in manifest.errors[1].reason  # a reason, not a crash
    assert "mel: file not found" in manifest.errors[2].reason
    assert manifest.jobs[0].params["model"] == str(tmp_path / "models" / "mine.safetensors")
    assert manifest.jobs[2].params["model"] == "timbre-gm-16k"  # a bundled name stays a name
    summary = run(manifest.jobs, "render", device="cpu", progress=False)
    assert (summary.rendered, summary.failed) == (4, 0)
    # Resume keys do not follow the spelling of the manifest's path either.
    monkeypatch.chdir(tmp_path.parent)
    again = read_manifest(Path(tmp_path.name) / "jobs.jsonl")
    assert [j.key for j in again.jobs] == [j.key for j in manifest.jobs]
    assert run(again.jobs, str(elsewhere / "render"), device="cpu", progress=False).skipped == 4


def test_rewriting_an_output_removes_the_captions_of_its_earlier_rendering(tmp_path):
    out = OutputDir(tmp_path / "render")
    try:
        out.write("book/a.wav", "k1", b"RIFF1", {"book/a.vtt": b"WEBVTT old", "book/a.srt": b"1 old"})
        out.write("book/b.wav", "k1", b"RIFF1", {"book/b.vtt": b"WEBVTT b"})
        (tmp_path / "render" / "book" / "b.json").write_text("{}")  # the user's (no render logged writing it)
        out.write("book/b.flac", "k1", b"fLaC", {})  # another output; b.wav's logged captions stay
        out.write("book/a.wav", "k2", b"RIFF2", {"book/a.json": b"{}"})  # re-rendered with json timings
        out.write("book/b.wav", "k2", b"RIFF2")  # re-rendered without timings
    finally:
        out.close()
    assert sorted(p.name for p in (tmp_path / "render" / "book").iterdir()) == [
        "a.json", "a.wav", "b.flac", "b.json", "b.wav"]
    reopened = OutputDir(tmp_path / "render")
    try:
        assert reopened.is_done("book/a.wav", "k2") and reopened.is_done("book/b.wav", "k2")
    finally:
        reopened.close()


def test_a_tts_job_rerendered_with_other_timings_leaves_no_old_captions(tmp_path, tiny_voice):
    line = {"kind": "tts", "text": "Hello there.", "voice": str(tiny_voice[0]), "output": "a.wav"}
    out = tmp_path / "render"
    for timings, expected in (("vtt", ["a.vtt", "a.wav"]), ("json", ["a.json", "a.wav"]), (None, ["a.wav"])):
        lines = [{**line, "timings": timings} if timings else line]
        summary = run(read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines)).jobs, str(out), device="cpu",
                      progress=False)
        assert summary.rendered == 1
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == expected


def test_startup_removes_only_the_temp_files_of_the_renderers_own_writes(tmp_path, monkeypatch):
    from audiogan.audio import io

    root = tmp_path / "render"
    (root / "book").mkdir(parents=True)
    ours = []

    def killed(src: str, dst: str) -> None:  # the run dies between writing the temp file and renaming it
        ours.append(Path(src))
        raise KeyboardInterrupt

    for name in ("a.wav", "a.FLAC", "a.vtt", "a.srt", "a.json"):
        with contextlib.suppress(KeyboardInterrupt), monkeypatch.context() as m:
            m.setattr(io.os, "replace", killed)
            m.setattr(io.os.path, "exists", lambda _: False)  # so write_atomic's own cleanup leaves it
            io.write_atomic(root / "book" / name, b"half")
    assert len(ours) == 5 and all(p.is_file() for p in ours)
    # A user's own temp files, named as write_atomic named its own before (found deleted by an audit).
    theirs = [root / ".session.tmp", root / "book" / ".notes.txt.x1y2z3ab.tmp", root / ".wav.tmp",
              root / ".take.wav.old.tmp", root / "book" / ".a.wav.x1y2z3ab.tmp",
              root / "unrelated" / "deep" / ".settings.json.20240101.tmp"]
    for path in theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine")
    OutputDir(root).close()
    assert not any(p.exists() for p in ours)
    assert all(p.read_text() == "mine" for p in theirs)


# A writer stopped between writing its temp file and renaming it: the file stays written and locked.
HELD_WRITER = """
import sys, time
from audiogan.audio import io

def held(src, dst):
    print(src, flush=True)
    time.sleep(600)

io.os.replace = held
io.write_atomic(sys.argv[1], b"half a file")
"""


def test_a_run_removes_the_temp_files_of_killed_writers_not_of_live_ones_nor_the_users(tmp_path, mels, caplog):
    out = tmp_path / "render"
    lines = vocode_jobs(mels[:4])
    writers = {name: subprocess.Popen([sys.executable, "-c", HELD_WRITER, str(out / name)], stdout=subprocess.PIPE,
                                      text=True)
               for name in ("out/0.wav", "out/1.wav", "elsewhere/live.wav")}
    try:
        temps = {name: Path(writer.stdout.readline().strip()) for name, writer in writers.items()}  # type: ignore[union-attr]
        for name in ("out/0.wav", "out/1.wav"):  # as a run SIGKILLed mid-write leaves them
            writers[name].kill()
            writers[name].wait()
        assert all(temp.read_bytes() == b"half a file" for temp in temps.values())
        mine = tmp_path / "mine.txt"
        mine.write_text("mine")
        # Like write_atomic's names, but not: another suffix, no leading dot, capitals, an older naming; a symlink.
        theirs = [out / "out" / ".0.wav.x1y2z3ab.tmp", out / "out" / ".1.wav.abcdefgh.audiogan.tmp.bak",
                  out / "out" / "0.wav.abcdefgh.audiogan.tmp", out / ".0.wav.ABCDEFGH.audiogan.tmp"]
        for path in theirs:
            path.write_text("mine")
        link = out / "out" / ".2.wav.abcdefgh.audiogan.tmp"
        link.symlink_to(mine)
        with caplog.at_level(logging.INFO, logger="audiogan.render"):
            summary = run(read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines)).jobs, str(out), progress=False)
        assert (summary.rendered, summary.failed) == (4, 0)
        assert f"removed 2 temp files that a killed run left in {out}" in caplog.messages
        assert not temps["out/0.wav"].exists() and not temps["out/1.wav"].exists()
        assert temps["elsewhere/live.wav"].read_bytes() == b"half a file", "a live writer's temp file was taken"
        assert all(path.read_text() == "mine" for path in theirs) and link.is_symlink() and mine.read_text() == "mine"
        vocoder = Vocoder.load(device="cpu")
        for line, mel in zip(lines, mels[:4], strict=True):
            audio, _ = sf.read(out / line["output"], dtype="float32")
            np.testing.assert_allclose(audio, vocoder(np.load(tmp_path / mel)).numpy(), atol=2 / 32768)
        writers["elsewhere/live.wav"].kill()  # now it too is a killed writer's
        writers["elsewhere/live.wav"].wait()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="audiogan.render"):
            OutputDir(out).close()
        assert caplog.messages == [f"removed 1 temp file that a killed run left in {out}"]
        assert not temps["elsewhere/live.wav"].exists()
    finally:
        for writer in writers.values():
            writer.kill()
            writer.wait()


def test_files_beside_an_output_that_no_render_wrote_are_left_alone(tmp_path, tiny_voice):
    """Once every .json/.vtt/.srt with an output's stem was removed, the user's included (a notes job writes
    no captions at all); only captions a render logged writing are replaced."""
    out = tmp_path / "render"
    (out / "n").mkdir(parents=True)
    (tmp_path / "elsewhere.json").write_text("target")
    mine = {"n/a.json": "notes on a", "n/a.vtt": "WEBVTT mine", "n/a.srt": "1 mine", "t.json": "mine"}
    for name, text in mine.items():
        (out / name).write_text(text)
    (out / "n" / "b.json").symlink_to(tmp_path / "elsewhere.json")
    lines = [{"kind": "notes", "pitch": 60, "instrument": "cello", "seconds": 0.25, "output": "n/a.wav"},
             {"kind": "notes", "pitch": 62, "instrument": "cello", "seconds": 0.25, "output": "n/b.wav"},
             {"kind": "tts", "text": "Hello.", "voice": str(tiny_voice[0]), "timings": "vtt", "output": "t.wav"}]
    summary = run(read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines)).jobs, str(out), device="cpu",
                  progress=False)
    assert summary.rendered == 3
    assert {name: (out / name).read_text() for name in mine} == mine
    assert (out / "n" / "b.json").is_symlink() and (tmp_path / "elsewhere.json").read_text() == "target"
    assert (out / "t.vtt").read_text().startswith("WEBVTT")
    lines[2]["timings"] = "srt"  # re-rendered: the captions this render wrote go, the user's t.json stays
    assert run(read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines)).jobs, str(out), device="cpu",
               progress=False).rendered == 1
    assert not (out / "t.vtt").exists() and (out / "t.srt").is_file() and (out / "t.json").read_text() == "mine"


def test_names_with_control_characters_are_refused_when_the_manifest_is_read(tmp_path):
    (tmp_path / "m.npy\n").write_bytes(b"")  # a file by that name exists: the name itself is refused
    lines = ['{"kind": "notes", "pitch": 60, "instrument": "cello", "output": "nl.wav\\n"}',
             '{"kind": "notes", "pitch": 61, "instrument": "cello", "output": "nul\\u0000.wav"}',
             '{"kind": "vocode", "mel": "m.npy\\n", "output": "v.wav"}',
             '{"kind": "notes", "pitch": 62, "instrument": "cello", "model": "x\\u0000", "output": "n.wav"}',
             '{"kind": "notes", "pitch": 60, "instrument": "cello", "output": "nl.wav"}']
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert [j.output for j in manifest.jobs] == ["nl.wav"]
    assert [(e.line, e.reason) for e in manifest.errors] == [
        (1, "output: 'nl.wav\\n' contains a control character or line break"),
        (2, "output: 'nul\\x00.wav' contains a control character or line break"),
        (3, "mel: 'm.npy\\n' contains a control character or line break"),
        (4, "model: 'x\\x00' contains a control character or line break")]


def test_the_summary_reads_well_for_short_and_all_skipped_runs():
    short = Summary(jobs=2, rendered=2, audio_seconds=3.2, wall_seconds=1.6)
    short.by_kind["notes"] = 2
    assert str(short) == ("2 jobs: 2 rendered (notes 2), 0 already done, 0 failed; 3.2 s of audio in 1.6 s "
                          "= 2.0x real time")
    assert str(Summary(jobs=3, skipped=3, wall_seconds=0.4)) == (
        "3 jobs: 0 rendered (none), 3 already done, 0 failed; 0.0 s of audio in 0.4 s")
    assert "12.5 min of audio" in str(Summary(jobs=1, rendered=1, audio_seconds=750, wall_seconds=10))
    assert "2.50 h of audio in 100.0 s = 90.0x real time" in str(Summary(jobs=1, rendered=1, audio_seconds=9000,
                                                                          wall_seconds=100))


def test_a_ray_rerun_with_nothing_to_do_joins_no_cluster(tmp_path, mels, monkeypatch):
    from audiogan.render import ray_engine

    class Joined(Exception):
        pass

    def connect(address, device):
        raise Joined

    monkeypatch.setattr(ray_engine, "connect", connect)
    lines = vocode_jobs(mels[:2])
    out = str(tmp_path / "render")
    assert run(read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines)).jobs, out, progress=False).rendered == 2
    summary = run(read_manifest(tmp_path / "jobs.jsonl").jobs, out, engine="ray", progress=False)
    assert (summary.skipped, summary.rendered) == (2, 0)
    with pytest.raises(SystemExit, match="--device auto, cpu or cuda"):  # still checked up front
        run(read_manifest(tmp_path / "jobs.jsonl").jobs, out, engine="ray", device="cuda:1", progress=False)
    with pytest.raises(Joined):  # work to do: the cluster is joined
        run(read_manifest(write_jsonl(tmp_path / "jobs.jsonl", vocode_jobs(mels[:3]))).jobs, out, engine="ray",
            progress=False)


def test_without_an_address_ray_starts_its_own_not_a_cluster_left_on_the_machine(monkeypatch):
    """ray.init() alone joins the cluster a `ray start` last began here, and waits on it if it died: the
    engine asks for $RAY_ADDRESS, else a Ray of its own, as --help says."""
    ray = pytest.importorskip("ray")
    from audiogan.render import ray_engine

    asked = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda address=None, **_: asked.append(address))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 2.0}}])
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_engine.connect(None, "auto")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.7:6379")
    ray_engine.connect(None, "auto")
    ray_engine.connect("auto", "cpu")
    assert asked == ["local", "10.0.0.7:6379", "auto"]


def test_log_lines_go_above_the_progress_bar_not_into_it(tmp_path, capsys):
    import logging

    handler = logging.StreamHandler(sys.stderr)  # as the CLI's logging.basicConfig sets up (stderr captured)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    logging.root.addHandler(handler)
    out = OutputDir(tmp_path / "render")
    try:
        progress = Progress(out, Summary(jobs=2), 2, {}, show=True)
        progress.bar.update(1)
        progress.bar.refresh()
        logging.getLogger("audiogan.render").warning("mid-run news")
        progress.close()
        assert logging.root.handlers.count(handler) == 1  # logging is as it was
        logging.getLogger("audiogan.render").warning("after the bar")
    finally:
        out.close()
        logging.root.removeHandler(handler)
    err = capsys.readouterr().err
    before = err[:err.index("LOG mid-run news")]
    assert before.endswith(("\r", "\n")), repr(err)  # the bar's line was cleared, not written after
    assert "1/2" in err[err.index("LOG mid-run news"):]  # and drawn again below the message
    assert "LOG after the bar" in err


def test_an_unknown_engine_is_refused(tmp_path, mels):
    jobs = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", vocode_jobs(mels[:1]))).jobs
    with pytest.raises(ValueError, match="unknown engine 'bogus': local or ray"):
        run(jobs, str(tmp_path / "render"), engine="bogus", progress=False)
    assert not (tmp_path / "render").exists()


def test_a_csv_cell_longer_than_the_csv_modules_cap_is_read(tmp_path, monkeypatch, capsys):
    """A 150,000-character tts text once crashed the check with `_csv.Error: field larger than field limit`."""
    from audiogan.cli import main
    from audiogan.render import manifest

    text = "word " * 30_000
    (tmp_path / "jobs.csv").write_text(f'kind,text,output\ntts,"{text}",a.wav\ntts,Hi.,b.mp3\n')
    found = read_manifest(tmp_path / "jobs.csv", unavailable=lambda kind, params: None)
    assert [(j.line, len(j.params["text"])) for j in found.jobs] == [(2, len(text))]
    assert [e.line for e in found.errors] == [3]  # and the rows after it are read as before
    # Whatever else the csv module refuses is a one-line manifest error naming the line (exit 2), not a traceback.
    manifest.csv.field_size_limit(131_072)  # the module's default, which the read above raised
    monkeypatch.setattr(manifest.csv, "field_size_limit", lambda *limit: 131_072)
    assert main(["render", str(tmp_path / "jobs.csv"), "--out", str(tmp_path / "render"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"manifest {tmp_path / 'jobs.csv'} line 2: not valid CSV: field larger than field limit" in err
    assert "Traceback" not in err and not (tmp_path / "render").exists()


def test_ray_actors_are_sized_to_fit_a_node():
    """Actors live on one node: one larger than every node waited for ever (a run hung at 0/N), and
    counting the cluster's CPUs together started actors that fit nowhere."""
    from audiogan.render.ray_engine import Cluster

    cpu = Cluster("cpu", 0, 6.0, False, nodes=[(3.0, 0.0), (3.0, 0.0)])
    assert [cpu.slots(n) for n in (1, 2, 3, 0.1)] == [6, 2, 2, 60]  # not 6 // 2 = 3 actors of 2 CPUs
    assert cpu.check_fits(2, threads=3) == 2
    with pytest.raises(ValueError, match=r"--cpus-per-actor 4: no node of the Ray cluster can hold an actor "
                                         r"\(the largest has 3 CPUs\)"):
        cpu.check_fits(4, threads=0)
    with pytest.raises(ValueError, match="--threads 16: no node of the Ray cluster has more than 3 CPUs"):
        cpu.check_fits(1, threads=16)
    with pytest.raises(ValueError, match="above 0"):
        cpu.slots(0)
    gpu = Cluster("cuda", 3, 40.0, False, nodes=[(8.0, 2.0), (32.0, 0.0), (8.0, 1.0)])
    assert gpu.slots(1) == 3 and gpu.slots(8) == 2  # one GPU each, on a node with the CPUs too
    with pytest.raises(ValueError, match="the largest with a GPU has 8 CPUs"):
        gpu.check_fits(16, threads=0)


def test_a_ray_actor_no_node_can_hold_is_refused_not_waited_for(tmp_path, mels):
    pytest.importorskip("ray")
    jobs = write_jsonl(tmp_path / "jobs.jsonl", vocode_jobs(mels[:2]))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-m", "audiogan.cli", "render", str(jobs), "--out", str(tmp_path / "ray"),
                           "--engine", "ray", "--quiet", "--cpus-per-actor", "1000"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "--cpus-per-actor 1000: no node of the Ray cluster can hold an actor" in done.stderr
    assert "Traceback" not in done.stderr and not list((tmp_path / "ray").rglob("*.wav"))


def test_local_threads_are_capped_at_this_machines_cpus_and_ray_threads_are_not(tmp_path, mels, capsys):
    from audiogan.cli import main

    jobs = str(write_jsonl(tmp_path / "jobs.jsonl", vocode_jobs(mels[:1])))
    many = str((os.cpu_count() or 1) + 1)
    assert main(["render", jobs, "--out", str(tmp_path / "local"), "--threads", many, "--quiet"]) == 2
    assert f"--threads {many}: this machine has {os.cpu_count()} CPUs" in capsys.readouterr().err
    assert not (tmp_path / "local").exists()
    args = build_render_args(jobs, "--engine", "ray", "--threads", "256", "--out", str(tmp_path / "ray"))
    assert args.threads == 256  # for actors on nodes larger than this one; checked against the cluster's nodes


def build_render_args(*argv: str):
    from audiogan.cli import build_parser

    return build_parser().parse_args(["render", *argv])


def test_names_too_long_for_the_filesystem_are_refused_when_read_and_the_longest_allowed_render(tmp_path):
    """A name of 242-255 bytes failed as 'File name too long' at its write (the temp name added 14 bytes);
    one over 255 passed the check and failed after its rendering."""
    def note(output: str, **more) -> dict:
        return {"kind": "notes", "pitch": 60, "instrument": "cello", "seconds": 0.25, "output": output, **more}

    longest = "é" * 125 + "a.wav"  # 255 bytes in UTF-8
    lines = [note(longest), note("d/" + "b" * 251 + ".wav"), note("c" * 252 + ".flac"),
             note("e" * 240 + "/x.wav"),
             {"kind": "tts", "text": "Hi.", "timings": "json", "output": "f" * 251 + ".wav"}]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert [j.line for j in manifest.jobs] == [1, 2, 4]
    assert [(e.line, e.reason) for e in manifest.errors] == [
        (3, f"output: {'c' * 20 + '...' + 'c' * 5 + '.flac'!r} is 257 bytes long; a file name may have at most 255"),
        (5, f"output: {'f' * 20 + '...' + 'f' * 5 + '.json'!r} (the timings file beside the output) is 256 bytes "
            "long; a file name may have at most 255")]
    summary = run(manifest.jobs, str(tmp_path / "render"), device="cpu", progress=False)
    assert (summary.rendered, summary.failed) == (3, 0)
    assert sf.info(tmp_path / "render" / longest).frames > 0


def test_outputs_that_clash_as_file_and_folder_are_refused_when_read(tmp_path):
    def note(output: str) -> dict:
        return {"kind": "notes", "pitch": 60, "instrument": "cello", "output": output}

    lines = [note("a.wav"), note("a.wav/b.wav"), note("c/d.wav/e.flac"), note("c/d.wav"), note("c/d.flac"),
             {"kind": "tts", "text": "Hi.", "timings": "json", "output": "f.wav"}, note("f.json/g.wav")]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert [j.output for j in manifest.jobs] == ["a.wav", "c/d.wav/e.flac", "c/d.flac", "f.wav"]
    assert [(e.line, e.reason) for e in manifest.errors] == [
        (2, "output: 'a.wav/b.wav' would be inside 'a.wav', a file written by line 1"),
        (4, "output: 'c/d.wav' is a folder of the output of line 3"),
        (7, "output: 'f.json/g.wav' would be inside 'f.json', a file written by line 6")]


def full_disk_after(writes: int):
    """A write_atomic that finds the disk full after ``writes`` files, as a real full disk fails."""
    import errno

    from audiogan.audio.io import write_atomic

    done = []

    def write(path, data):
        if len(done) >= writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        done.append(path)
        return write_atomic(path, data)
    return write


def test_a_full_disk_stops_the_run_at_once_and_a_rerun_resumes(tmp_path, monkeypatch, capsys):
    """A full disk once failed every remaining job after computing it (hours on a big manifest), and a disk
    full from the start exited 2, 'invalid manifest', with a bare '[Errno 28]'."""
    from audiogan.cli import EXIT_DISK_FULL, main
    from audiogan.render import kinds, output

    rendered = []
    real = kinds.NotesRenderer.render
    monkeypatch.setattr(kinds.NotesRenderer, "render", lambda self, group, items: rendered.append(len(items))
                        or real(self, group, items))
    lines = [{"kind": "notes", "pitch": 40 + i, "instrument": "cello", "seconds": 0.1, "output": f"n/{i:02d}.wav"}
             for i in range(40)]
    jobs = str(write_jsonl(tmp_path / "jobs.jsonl", lines))
    out = tmp_path / "render"
    monkeypatch.setattr(output, "write_atomic", full_disk_after(5))
    argv = ["render", jobs, "--out", str(out), "--quiet", "--device", "cpu"]
    assert main([*argv, "--batch-size", "2"]) == EXIT_DISK_FULL
    std = capsys.readouterr()
    assert "40 jobs: 5 rendered" in std.out
    assert re.search(r"No space left on device writing .*/render/n/\d\d\.wav: the run stopped; make room and run the "
                     "same command again, it resumes where this one stopped", std.err), std.err
    assert sum(rendered) <= 16, "rendering went on after the disk was full"  # 3 batches, and those in flight
    monkeypatch.setattr(output, "write_atomic", full_disk_after(0))  # full from the start
    assert main(argv) == EXIT_DISK_FULL
    assert "No space left on device writing" in capsys.readouterr().err
    monkeypatch.setattr(output, "write_atomic", full_disk_after(1000))  # room again
    assert main(argv) == 0
    assert "40 jobs: 35 rendered (notes 35), 5 already done, 0 failed" in capsys.readouterr().out


def test_a_folder_with_no_room_for_its_logs_is_a_full_disk_not_an_invalid_manifest(tmp_path, monkeypatch, capsys):
    import errno

    from audiogan.cli import EXIT_DISK_FULL, main
    from audiogan.render import output

    def no_room(file, mode="r", *args, **kwargs):  # a disk so full that no file can be made
        if "r" not in mode:
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return open(file, mode, *args, **kwargs)

    jobs = write_jsonl(tmp_path / "jobs.jsonl", [{"kind": "notes", "pitch": 60, "instrument": "cello",
                                                  "output": "a.wav"}])
    monkeypatch.setattr(output, "open", no_room, raising=False)
    assert main(["render", str(jobs), "--out", str(tmp_path / "render"), "--quiet"]) == EXIT_DISK_FULL
    std = capsys.readouterr()
    assert "1 jobs: 0 rendered (none), 0 already done, 0 failed" in std.out
    assert f"No space left on device writing {tmp_path / 'render'}: the run stopped" in std.err


def test_a_manifest_check_reads_each_model_once(tmp_path, monkeypatch):
    """Each line re-read its model's card and re-parsed its config: 10,000 note lines took 14-21 s to check."""
    from audiogan.render import kinds

    cards, configs = [], []
    read_card, from_dict = kinds.weights.read_card, kinds.from_dict
    monkeypatch.setattr(kinds.weights, "read_card", lambda path, kind=None: cards.append(path) or read_card(path, kind))
    monkeypatch.setattr(kinds, "from_dict", lambda cls, data: configs.append(cls) or from_dict(cls, data))
    copy = copy_weights("timbre", tmp_path / "mine.safetensors")
    lines = [{"kind": "notes", "pitch": 40 + i % 40, "instrument": "cello", "output": f"a/{i}.wav",
              **({"model": "mine.safetensors"} if i % 2 else {})} for i in range(200)]
    lines += [{"kind": "notes", "pitch": 1, "instrument": "cello", "output": "low.wav"},
              {"kind": "notes", "pitch": 60, "instrument": "kazoo", "model": "mine.safetensors", "output": "k.wav"},
              {"kind": "notes", "pitch": 60, "instrument": "cello", "model": "none.safetensors", "output": "n.wav"},
              {"kind": "notes", "pitch": 60, "instrument": "cello", "model": "none.safetensors", "output": "m.wav"}]
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert len(manifest.jobs) == 200
    reasons = {e.line: e.reason for e in manifest.errors}
    assert "pitch 1 is outside this model's range" in reasons[201] and "kazoo" in reasons[202]
    assert "no timbre weights" in reasons[203] and reasons[204] == reasons[203]  # a missing model, said each time
    assert sorted(map(str, cards)) == sorted([str(kinds.weights.resolve("default", "timbre")), str(copy)])
    assert len(configs) == 2
    # Another check reads them again: a model replaced between two runs is seen.
    read_manifest(tmp_path / "jobs.jsonl")
    assert len(cards) == 4


def test_an_output_emptied_or_cut_short_since_it_was_logged_is_rendered_again(tmp_path, mels):
    """Resume trusted any file by its name: a 0-byte or truncated output (a power cut before the data reached
    the disk) was never rendered again."""
    path = write_jsonl(tmp_path / "jobs.jsonl", vocode_jobs(mels[:4]))
    out = tmp_path / "render"
    assert run(read_manifest(path).jobs, str(out), progress=False).rendered == 4
    whole = (out / "out/1.wav").read_bytes()
    (out / "out/0.wav").write_bytes(b"")
    (out / "out/1.wav").write_bytes(whole[: len(whole) // 2])
    summary = run(read_manifest(path).jobs, str(out), progress=False)
    assert (summary.rendered, summary.skipped) == (2, 2)
    assert (out / "out/1.wav").read_bytes() == whole
    # A resume log written before sizes were logged is still read: there, a file's presence is all it checks.
    state = out / STATE_FILE
    old = [{k: v for k, v in json.loads(line).items() if k != "sizes"} for line in state.read_text().splitlines()]
    state.write_text("".join(json.dumps(entry) + "\n" for entry in old))
    (out / "out/2.wav").write_bytes(b"")
    assert run(read_manifest(path).jobs, str(out), progress=False).skipped == 4


def test_warnings_while_a_job_renders_name_the_job(tmp_path, caplog):
    """'notes moved by octaves' or 'dropped characters the voice cannot say' did not say which line it was."""
    from test_timbre import write_midi

    write_midi(tmp_path / "low.mid", [(12, 0.0, 0.2), (60, 0.2, 0.4)])  # C0: below the model's range
    write_midi(tmp_path / "ok.mid", [(60, 0.0, 0.2)])
    lines = [{"kind": "midi", "input": "ok.mid", "instrument": "flute", "output": "ok.wav"},
             {"kind": "midi", "input": "low.mid", "instrument": "flute", "output": "100%/low.wav"},
             {"kind": "tts", "text": "Hi \u2764 there.", "output": "t.wav"}]
    jobs = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines)).jobs
    with caplog.at_level("WARNING"):
        assert run(jobs, str(tmp_path / "render"), device="cpu", batch_size=2, progress=False).rendered == 3
        logging.getLogger("audiogan.timbre").warning("after the run")
    moved = [r.getMessage() for r in caplog.records if "moved by octaves" in r.getMessage()]
    assert len(moved) == 1 and moved[0].startswith("line 2 (100%/low.wav): 1 of 2 notes moved by octaves"), moved
    assert "line 3 (t.wav): dropped characters the voice cannot say: '\u2764' (U+2764)" in caplog.text
    assert "after the run" in [r.getMessage() for r in caplog.records]  # outside a job: as it was


def test_a_csv_without_a_header_naming_kind_and_output_is_refused(tmp_path, capsys):
    """A headerless one-row CSV rendered nothing and exited 0 ('0 jobs'); with more rows each said 'kind: None'."""
    from audiogan.cli import main

    for text, reason in [("notes,60,violin,a.wav\n", "the header has no `kind` column (it names 'notes', '60', "),
                         ("kind,pitch,instrument,out\nnotes,60,violin,a.wav\n", "the header has no `output` column"),
                         ("kind,pitch,instrument,output,pitch\nnotes,60,violin,a.wav,61\n",
                          "the header names the column 'pitch' twice")]:
        (tmp_path / "jobs.csv").write_text(text)
        assert main(["render", str(tmp_path / "jobs.csv"), "--out", str(tmp_path / "render"), "--quiet"]) == 2
        assert f"audiogan: error: manifest {tmp_path / 'jobs.csv'} line 1: {reason}" in capsys.readouterr().err
    assert not (tmp_path / "render").exists()


def test_json_lines_naming_a_field_twice_or_a_non_string_output_are_refused(tmp_path):
    lines = ['{"kind": "notes", "pitch": 60, "pitch": 72, "instrument": "cello", "output": "a.wav"}',
             '{"kind": "notes", "pitch": 60, "instrument": "cello", "output": 123}',
             '{"kind": "notes", "pitch": 60, "instrument": "cello", "output": ["a.wav"]}']
    manifest = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines))
    assert [(e.line, e.reason) for e in manifest.errors] == [
        (1, "field 'pitch' is given twice"),
        (2, "output: must be a string, a relative path such as 'speech/line1.wav', not 123"),
        (3, "output: must be a string, a relative path such as 'speech/line1.wav', not [\"a.wav\"]")]


def test_a_piped_manifest_is_read_with_paths_from_the_working_directory(tmp_path, mels, monkeypatch):
    """`audiogan render <(make-jobs)` and /dev/stdin were refused as 'manifest not found'."""
    monkeypatch.chdir(tmp_path)
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as pipe:
        pipe.write("".join(json.dumps(line) + "\n" for line in vocode_jobs(mels[:2])))
    try:
        manifest = read_manifest(f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
    assert not manifest.errors and [j.params["mel"] for j in manifest.jobs] == [str(tmp_path / m) for m in mels[:2]]


def test_a_mistyped_device_is_refused_before_out_is_touched(tmp_path, mels, capsys):
    from audiogan.cli import main

    jobs = str(write_jsonl(tmp_path / "jobs.jsonl", vocode_jobs(mels[:1])))
    assert main(["render", jobs, "--out", str(tmp_path / "new"), "--device", "cdua", "--quiet"]) == 2
    assert "unknown device 'cdua'" in capsys.readouterr().err and not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "errors.jsonl").write_text("{}\n")
    assert main(["render", jobs, "--out", str(tmp_path / "old"), "--device", "cdua", "--quiet"]) == 2
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["errors.jsonl"]  # not moved aside


def test_a_batch_of_one_that_fails_is_not_rendered_again(tmp_path, monkeypatch):
    """A failed batch is retried job by job, so one bad job cannot sink the others; a batch of one was
    rendered twice, failing twice."""
    from audiogan.render import kinds

    calls = []

    def fails(self, group, items):
        calls.append(len(items))
        raise RuntimeError("the model failed")

    monkeypatch.setattr(kinds.NotesRenderer, "render", fails)
    lines = [{"kind": "notes", "pitch": 60 + i, "instrument": "cello", "output": f"{i}.wav"} for i in range(3)]
    jobs = read_manifest(write_jsonl(tmp_path / "jobs.jsonl", lines)).jobs
    assert run(jobs, str(tmp_path / "one"), device="cpu", batch_size=1, progress=False).failed == 3
    assert calls == [1, 1, 1]
    calls.clear()
    assert run(jobs, str(tmp_path / "three"), device="cpu", batch_size=3, progress=False).failed == 3
    assert calls == [3, 1, 1, 1]  # a batch of three: then each alone

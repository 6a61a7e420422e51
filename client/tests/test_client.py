"""The client in an environment without torch, against a live server (AUDIOGAN_TARGET=host:port).

``make test`` runs these from a fresh ``.venv-client`` holding only this package; see scripts/test_client.sh.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import io
import json
import os
import pty
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from audiogan_client import AudioGanClient, CallFailed, ServerBusy, StreamBroken, write_wav
from audiogan_client._proto import audiogan_pb2 as pb
from audiogan_client._proto import audiogan_pb2_grpc as pb_grpc

# The bundled demo clip's mel (LibriSpeech 1688-142285-0003, CC BY 4.0), saved by audiogan with numpy.
DEMO_MEL = Path(__file__).resolve().parents[2] / "audiogan" / "samples" / "demo_mel.npy"
TARGET = os.environ.get("AUDIOGAN_TARGET", "")
needs_server = pytest.mark.skipif(not TARGET, reason="set AUDIOGAN_TARGET to a running audiogan-server")


@pytest.fixture
def mel() -> np.ndarray:
    return np.load(DEMO_MEL)


@pytest.fixture
def client():
    with AudioGanClient(TARGET, timeout=60) as c:
        yield c


def test_importing_the_client_loads_no_torch():
    code = "import sys, audiogan_client.cli; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
    if os.environ.get("AUDIOGAN_CLIENT_ONLY"):  # the CI venv holds this package and nothing heavier
        assert importlib.util.find_spec("torch") is None


@needs_server
def test_vocode_gives_speech_length_audio(client, mel):
    audio, rate = client.vocode(mel)
    assert rate == 16000 and audio.dtype == np.float32
    assert audio.shape == (mel.shape[1] * 256,)
    assert np.isfinite(audio).all() and 0.01 < np.abs(audio).max() <= 1.0


@needs_server
def test_stream_concatenates_to_vocode(client, mel):
    whole, _ = client.vocode(mel, sample_rate=24000)
    chunks = list(client.stream(mel=mel, sample_rate=24000))
    assert len(chunks) > 1
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=1e-4)


@needs_server
@pytest.mark.parametrize("encoding", ["pcm16", "wav"])
def test_encodings_decode_without_soundfile(client, mel, encoding):
    reference, _ = client.vocode(mel)
    audio, _ = client.vocode(mel, encoding=encoding)
    np.testing.assert_allclose(audio, reference, atol=1.5 / 32768)


@needs_server
def test_errors_surface_with_code_and_message(client, mel):
    with pytest.raises(grpc.RpcError) as info:
        client.vocode(mel[:40])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "n_mels" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        client.synthesize("Hello.", voice="nobody")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "tts-lj-16k" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        client.synthesize("Hello.", speaker=1)  # the bundled voice has one speaker
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "speakers 0..0" in info.value.details()


@needs_server
def test_listing(client):
    listing = client.list_voices()
    assert [v["name"] for v in listing["vocoders"]] == ["vocoder-16k-vector"]
    assert [v["name"] for v in listing["voices"]] == ["tts-lj-16k"]
    assert [v["speakers"] for v in listing["voices"]] == [1]


@needs_server
def test_bundled_voice_speaks_and_streams(client):
    text = "The morning train left the station ten minutes late. Nobody minded."
    whole, rate = client.synthesize(text)
    assert rate == 16000 and 2.0 < len(whole) / rate < 10.0
    assert np.isfinite(whole).all() and np.abs(whole).max() > 0.05
    chunks = list(client.stream(text))
    assert len(chunks) > 1
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=1e-4)


@needs_server
def test_ssml_and_timings_from_the_bundled_voice(client, tmp_path):
    text = '<speak>Call <say-as interpret-as="characters">XK7</say-as>.<break time="700ms"/>Now.</speak>'
    timed = client.synthesize_timed(text)
    assert [s["text"] for s in timed.sentences] == ["Call XK7.", "Now."]
    assert [w["text"] for w in timed.words] == ["Call", "XK7", "Now"]
    assert timed.sentences[1]["start"] - timed.sentences[0]["end"] == pytest.approx(0.7)
    gap = timed.samples[round(timed.sentences[0]["end"] * 16000):round(timed.sentences[1]["start"] * 16000)]
    assert len(gap) == round(0.7 * 16000) and not gap.any()
    base = [sys.executable, "-m", "audiogan_client.cli", "--target", TARGET]
    done = subprocess.run([*base, "say", text, "-o", str(tmp_path / "x.wav"), "--timings", str(tmp_path / "x.json")],
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "x.json").read_text())["words"][1]["text"] == "XK7"


@needs_server
def test_bundled_note_model_plays_morphs_and_converts(client, tmp_path):
    listed = client.list_instruments()
    assert len(listed) >= 30 and {"violin", "flute", "acoustic_grand_piano"} <= {i["name"] for i in listed}
    violin, flute = client.notes([{"pitch": 60, "timbre": "violin", "seconds": 2.0},
                                  {"pitch": 72, "timbre": "flute", "seconds": 2.0}])
    for note in (violin, flute):
        assert note.sample_rate == 16000 and len(note.samples) == 32000
        assert np.isfinite(note.samples).all() and np.abs(note.samples).max() > 0.1
    steps, alphas = client.interpolate("violin", "flute", pitch=60, steps=3, seconds=2.0)
    assert alphas == [0.0, 0.5, 1.0]
    np.testing.assert_allclose(steps[0].samples, violin.samples, atol=1e-4)  # alpha 0 is the pure violin
    melody = two_notes()
    converted = client.convert(write_wav(tmp_path / "melody.wav", melody, 16000), to="violin")
    assert converted.sample_rate == 16000 and abs(len(converted.samples) - len(melody)) < 1600
    assert np.abs(converted.samples).max() > 0.05


def two_notes() -> np.ndarray:
    """One second of melody at 16 kHz: A3 then E4, half a second each."""
    t = np.arange(8000) / 16000
    return np.concatenate([0.4 * np.sin(2 * np.pi * f * t) for f in (220.0, 330.0)]).astype(np.float32)


@needs_server
def test_convert_takes_a_seed_as_notes_do(client, tmp_path):
    # A convert render job's seed, or another take of the same conversion, reaches the server.
    path = write_wav(tmp_path / "melody.wav", two_notes(), 16000)
    default = client.convert(path, to="violin").samples
    np.testing.assert_array_equal(client.convert(path, to="violin", seed=0).samples, default)
    seven = client.convert(path, to="violin", seed=7).samples
    np.testing.assert_array_equal(client.convert(path, to="violin", seed=7).samples, seven)
    assert np.abs(seven - default).max() > 0.01
    done = subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--target", TARGET, "convert", str(path),
                           "--to", "violin", "--seed", "7", "-o", str(tmp_path / "seven.wav")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(read_wav(tmp_path / "seven.wav"), seven, atol=2e-4)  # PCM16


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32767.0


@needs_server
def test_cli_sends_pitch_shift_seed_and_velocity_as_the_library_does(client, tmp_path):
    base = [sys.executable, "-m", "audiogan_client.cli", "--target", TARGET]
    done = subprocess.run([*base, "say", "Hello there.", "--pitch-shift", "3", "-o", str(tmp_path / "up.wav")],
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    up, plain = (client.synthesize("Hello there.", pitch_shift=shift).samples for shift in (3.0, 0.0))
    said = read_wav(tmp_path / "up.wav")
    np.testing.assert_allclose(said, up, atol=2e-3)  # PCM16, and the server may batch with padding
    assert len(said) != len(plain) or np.abs(said - plain).max() > 0.05
    # `audiogan note --instrument A --to B`'s names work here too, and seed and velocity reach the notes.
    done = subprocess.run([*base, "interpolate", "--instrument", "flute", "--to", "violin", "--steps", "2",
                           "--seconds", "1", "--seed", "5", "--velocity", "60", "-o", str(tmp_path / "m.wav")],
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    steps, _ = client.interpolate("flute", "violin", pitch=60, steps=2, seconds=1.0, seed=5, velocity=60)
    other, _ = client.interpolate("flute", "violin", pitch=60, steps=2, seconds=1.0, seed=0, velocity=100)
    morph = read_wav(tmp_path / "m.wav")
    np.testing.assert_allclose(morph[:16000], steps[0].samples, atol=2e-4)
    assert np.abs(morph[:16000] - other[0].samples).max() > 0.05


@needs_server
def test_cli_say_raw_stream_is_pcm16(tmp_path):
    base = [sys.executable, "-m", "audiogan_client.cli", "--target", TARGET]
    done = subprocess.run([*base, "say", "Hello there.", "--stream", "--raw"], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    pcm = np.frombuffer(done.stdout, "<i2")
    assert 0.5 < len(pcm) / 16000 < 5.0 and np.abs(pcm).max() > 1000


def test_unavailable_is_retried_with_backoff_then_raised():
    port = free_port()  # nobody listening
    with AudioGanClient(f"127.0.0.1:{port}", timeout=5, retries=2, backoff=0.2) as c:
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            c.list_voices()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - start >= 0.2 + 0.4  # two backoffs were waited


@pytest.mark.parametrize("keepalive", [0, -1.0, float("nan")])
def test_a_keepalive_that_is_not_positive_is_refused(keepalive):
    with pytest.raises(ValueError, match=rf"keepalive={keepalive}: give seconds > 0, or None for no pings"):
        AudioGanClient("127.0.0.1:1", keepalive=keepalive)


def test_write_wav(tmp_path):
    path = write_wav(tmp_path / "a" / "x.wav", np.linspace(-1, 1, 1000, dtype=np.float32), 22050)
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnframes(), w.getsampwidth()) == (22050, 1000, 2)


@needs_server
def test_cli_vocode_and_raw_stream(tmp_path, mel):
    np.save(tmp_path / "mel.npy", mel)
    base = [sys.executable, "-m", "audiogan_client.cli", "--target", TARGET]
    done = subprocess.run([*base, "vocode", str(tmp_path / "mel.npy"), "-o", str(tmp_path / "out.wav")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert w.getnframes() == mel.shape[1] * 256
    done = subprocess.run([*base, "--help"], capture_output=True, text=True, timeout=60)
    assert "say" in done.stdout and "convert" in done.stdout


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "soon"])
def test_cli_refuses_a_deadline_that_is_not_positive(timeout):
    done = subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--timeout", timeout, "voices"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    # The same helper and wording as every other ranged option.
    shown = repr(timeout) if timeout == "soon" else timeout
    assert f"argument --timeout: {shown} is not a number > 0" in done.stderr, done.stderr


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: c.notes([{"pitch": 60, "timbre": "violin", "velocty": 90}]),
     r"notes\[0\]: unknown key\(s\) velocty; a note takes pitch, velocity"),
    (lambda c: c.notes([{"pitch": 60, "timbre": "violin"}, {"pitch": 60, "timbre": "violin", "seed": -1}]),
     r"^notes\[1\]: seed -1 is not a whole number in 0\.\.2\*\*64-1$"),
    (lambda c: c.notes([{"pitch": 60.5, "timbre": "violin"}]),
     r"^notes\[0\]: pitch 60\.5 is not a whole number in 0\.\.127$"),
    (lambda c: c.notes([{"pitch": 60, "timbre": "violin", "instrument": "flute"}]), "timbre, instrument, not both"),
    (lambda c: c.interpolate("flute", "violin", pitch=60, steps=3, seed=-1),
     r"^seed -1 is not a whole number in 0\.\.2\*\*64-1$"),
    (lambda c: c.convert(b"", to="violin", seed=2**64), r"^seed 18446744073709551616 is not a whole number in "),
    (lambda c: c.convert(b"", to="violin", seed=1.5), r"^seed 1\.5 is not a whole number in 0\.\.2\*\*64-1$"),
])
def test_note_requests_that_protobuf_would_refuse_name_the_note_and_field(call, message):
    # No server listens on port 1: each is refused before any call.
    with AudioGanClient("127.0.0.1:1", retries=0) as c, pytest.raises(ValueError, match=message):
        call(c)


@pytest.mark.parametrize(("call", "message"), [
    # 0 on the wire is "the default": these were once said at speed 1 and played at velocity 100.
    (lambda c: c.synthesize("Hi.", speed=0), "speed 0 is not a number in 0.25..4"),
    (lambda c: list(c.stream("Hi.", speed=4.5)), "speed 4.5 is not a number in 0.25..4"),
    (lambda c: c.synthesize_timed("Hi.", speed=float("nan")), "speed nan is not a number in 0.25..4"),
    (lambda c: c.synthesize("Hi.", pitch_shift=13), "pitch_shift 13 is not a number in -12..12"),
    (lambda c: c.notes([{"pitch": 60, "timbre": "violin", "velocity": 0}]),
     "notes[0]: velocity 0 is not a whole number in 1..127"),
    (lambda c: c.notes([{"pitch": 60, "timbre": "violin", "seconds": 0}]), "notes[0]: seconds 0 is not a number > 0"),
    (lambda c: c.interpolate("flute", "violin", pitch=60, steps=3, velocity=0),
     "velocity 0 is not a whole number in 1..127"),
    (lambda c: c.interpolate("flute", "violin", pitch=60, steps=3, seconds=-1.0), "seconds -1.0 is not a number > 0"),
    (lambda c: c.interpolate("flute", "violin", pitch=60, alpha=1.5), "alpha 1.5 is not a number in 0..1"),
    (lambda c: c.interpolate("flute", "violin", pitch=128, steps=3), "pitch 128 is not a whole number in 0..127"),
    (lambda c: c.vocode(np.zeros((80, 10), np.float32), sample_rate=100),
     "sample_rate 100 is not 0 (the model's rate) or a whole number in 8000..96000"),
    (lambda c: c.convert(b"", to="violin", sample_rate=44100.0), "sample_rate 44100.0 is not 0"),
    # The proto's int32: -1 reached the server, and protobuf refused 2**31 as "Value out of range", unnamed.
    (lambda c: c.synthesize("Hi.", speaker=-1), "speaker -1 is not a whole number in 0..2**31-1"),
    (lambda c: list(c.stream("Hi.", speaker=2**31)), "speaker 2147483648 is not a whole number in 0..2**31-1"),
    (lambda c: c.notes([{"pitch": 60, "timbre": "violin", "seconds": float("inf")}]),
     "notes[0]: seconds inf is not a number > 0"),
])
def test_numbers_the_wire_would_misread_are_refused_by_name_before_calling(call, message):
    with AudioGanClient("127.0.0.1:1", retries=0) as c, pytest.raises(ValueError) as info:
        call(c)
    assert str(info.value).startswith(message), info.value


@needs_server
def test_none_and_the_defaults_leave_numbers_to_the_server(client):
    # Defaults still send the proto's 0 ("the default") or its documented value, as before.
    plain, = client.notes([{"pitch": 60, "timbre": "violin", "seconds": 1.0}])
    unset, = client.notes([{"pitch": 60, "timbre": "violin", "seconds": 1.0, "velocity": None, "seed": None}])
    loud, = client.notes([{"pitch": 60, "timbre": "violin", "seconds": 1.0, "velocity": 100, "seed": 0}])
    np.testing.assert_array_equal(unset.samples, plain.samples)
    np.testing.assert_allclose(loud.samples, plain.samples, atol=1e-6)
    steps, _ = client.interpolate("flute", "violin", pitch=60, steps=2, seconds=1.0, velocity=None)
    np.testing.assert_allclose(steps[1].samples, plain.samples, atol=1e-4)  # velocity 100, violin, seed 0
    said = client.synthesize("Hi.", speed=None, pitch_shift=None, sample_rate=None)
    np.testing.assert_allclose(said.samples, client.synthesize("Hi.").samples, atol=2e-3)  # batched with padding
    assert said.sample_rate == 16000


@needs_server
def test_notes_take_the_timbre_as_the_library_names_it(client):
    # "instrument" as TimbreModel.note(instrument=) and render jobs name it; "latent" for a point.
    by_wire, by_name = client.notes([{"pitch": 60, "timbre": "violin", "seconds": 1.0, "seed": 2},
                                     {"pitch": 60, "instrument": "violin", "seconds": 1.0, "seed": 2}])
    np.testing.assert_allclose(by_name.samples, by_wire.samples, atol=1e-4)  # one batch: float rounding
    flute, = client.notes([{"pitch": 60, "instrument": "flute", "seconds": 1.0, "seed": 2}])
    assert np.abs(flute.samples - by_wire.samples).max() > 0.05



@needs_server
def test_cli_picks_the_timbre_model_as_audiogan_note_does(tmp_path):
    base = [sys.executable, "-m", "audiogan_client.cli", "--target", TARGET]
    done = subprocess.run([*base, "instruments", "--model", "timbre-gm-16k"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and {i["model"] for i in json.loads(done.stdout)} == {"timbre-gm-16k"}
    for args in (["notes", "--instrument", "violin", "-o", str(tmp_path)],
                 ["interpolate", "--from", "flute", "--to", "violin", "-o", str(tmp_path / "m.wav")],
                 ["instruments"]):
        done = subprocess.run([*base, *args, "--model", "no-such-model"], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode != 0 and "no-such-model" in done.stderr, done.stderr
    assert not list(tmp_path.iterdir())


def test_interpolate_refuses_zero_steps_before_calling():
    with AudioGanClient("127.0.0.1:1", retries=0) as c, pytest.raises(ValueError, match="steps=0"):
        c.interpolate("violin", "flute", pitch=60, steps=0)


def test_cli_help_says_what_output_dash_writes():
    done = subprocess.run([sys.executable, "-m", "audiogan_client.cli", "say", "--help"], capture_output=True,
                          text=True, timeout=60)
    said = " ".join(done.stdout.split())
    assert "with --stream a streamed WAV as the audio arrives" in said and "no WAV header" in said


@needs_server
def test_cli_say_stream_to_stdout_is_a_streamed_wav_at_the_rate_that_came(tmp_path):
    """`say --stream -o - | aplay`: a WAV header with the rate of the first chunk (22050 here, asked for;
    not the voice's 16 kHz) and the sizes of a length not yet known, then the samples `-o file.wav` gets;
    `--raw` the same samples bare. Before, `-o -` with --stream wrote them raw, as --raw does."""
    args = ("say", "Hello there. Piped out.", "--stream", "--sample-rate", "22050")
    filed = piped(TARGET, *args, "-o", "said.wav", stdin=b"", cwd=tmp_path)
    assert filed.returncode == 0, filed.stderr
    done = piped(TARGET, *args, "-o", "-", stdin=b"", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with wave.open(io.BytesIO(done.stdout)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (22050, 1, 2)
        assert w.getnframes() == 0x7FFFF000 // 2  # "unknown": readers go on to the pipe's end
        streamed = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    with wave.open(str(tmp_path / "said.wav")) as w:
        assert w.getframerate() == 22050
        expected = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert len(streamed) == len(expected) > 22050 // 2
    assert np.abs(streamed.astype(int) - expected).max() <= 1  # the file's went through float and back
    raw = piped(TARGET, "say", "Hello there. Piped out.", "--raw", "--sample-rate", "22050", stdin=b"", cwd=tmp_path)
    assert raw.returncode == 0 and raw.stdout == done.stdout[44:]


def test_cli_say_stream_redirected_to_a_file_is_an_exact_wav_even_cut_short(tmp_path):
    """`say --stream -o - > said.wav`: standard output is a file, so the header is rewritten at the end, the
    file then a WAV like any other; a stream cut short leaves the chunks that came, as an exact WAV too."""
    redirected = tmp_path / "said.wav"
    for faults, status in [(Faults(chunks=3), 0), (Faults(chunks=3, cut=True), 1)]:
        with stand_in(faults) as target, redirected.open("wb") as out:
            done = subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--target", target, "say",
                                   "Hello.", "--stream", "-o", "-"], stdout=out, stderr=subprocess.PIPE, timeout=60)
        assert done.returncode == status, done.stderr
        data = redirected.read_bytes()
        assert len(data) == 44 + 3 * 1600 * 2
        with wave.open(str(redirected)) as w:
            assert (w.getframerate(), w.getnframes()) == (16000, 3 * 1600)


@pytest.mark.parametrize(("args", "message"), [
    (["say", "Hi.", "-o", "x.mp3"], "writes .wav or .flac files, not .mp3"),
    (["say", "Hi.", "--raw", "-o", "x.wav"], "--raw streams PCM to standard output"),
    (["say", "Hi.", "--speed", "0"], "argument --speed: 0 is not a number in 0.25..4"),
    (["say", "Hi.", "--timings", "t.txt"], "--timings writes JSON: name a .json file, not 't.txt'"),
    (["say", "Hi.", "--raw", "--timings", "t.json"], "--timings comes with the whole-audio call"),
    (["vocode", "mel.npy", "-o", "x.ogg"], "writes .wav or .flac files, not .ogg"),
    # Numbers the server would misread (0 on the wire is "the default": velocity 100) or protobuf would
    # refuse without naming the option ("Value out of range: -1"), refused by name before any call.
    (["say", "Hi.", "--pitch-shift", "13"], "argument --pitch-shift: 13 is not a number in -12..12"),
    (["notes", "--instrument", "violin", "--velocity", "0"], "argument --velocity: 0 is not a whole number in 1..127"),
    # Seeds in the audiogan library's range and words.
    (["notes", "--instrument", "violin", "--seed", "-1"], "argument --seed: -1 is not a whole number in 0..2**64-1"),
    (["convert", "x.wav", "--to", "violin", "--seed", str(2**64)], f"argument --seed: {2**64} is not a whole number"),
    (["notes", "--instrument", "violin", "--pitches", "60", "61.5"],
     "argument --pitches: '61.5' is not a whole number in 0..127"),
    (["interpolate", "--from", "flute", "--to", "violin", "--steps", "1"], "1 is not a whole number in 2..64"),
    (["interpolate", "--from", "flute", "--to", "violin", "--seconds", "0"],
     "argument --seconds: 0 is not a number > 0"),
    (["vocode", "mel.npy", "--sample-rate", "100"],
     "argument --sample-rate: 100 is not 0 (the model's rate) or a whole number in 8000..96000"),
    (["--tls-ca", "missing.pem", "voices"], "--tls-ca missing.pem: No such file or directory"),
    # gRPC took any bytes, then failed each try as UNAVAILABLE, "Failed to create security handshaker".
    (["--tls-ca", "junk.pem", "voices"], "--tls-ca junk.pem: holds no PEM certificate"),
])
def test_cli_refuses_what_it_would_ignore_or_get_wrong_before_calling(args, message, tmp_path):
    # No server listens on port 1: each is refused before any call.
    (tmp_path / "junk.pem").write_text("not a certificate")
    done = subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--target", "127.0.0.1:1", *args],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert [f.name for f in tmp_path.iterdir()] == ["junk.pem"]


@pytest.mark.parametrize(("args", "message"), [
    # Found after parsing, these exited 1, as a failed call does, and some named no option
    # ("[Errno 2] No such file or directory: 'x.txt'").
    (["say", "--file", "x.txt"], "error: --file x.txt: No such file or directory"),
    (["say", "--file", "folder"], "error: --file folder: Is a directory"),
    (["vocode", "folder"], "error: folder is a folder, not a .npy file of a mel"),
    (["convert", "x.wav", "--to", "violin"], "error: input x.wav: No such file or directory"),
    (["interpolate", "--from", "flute", "--to", "0.1,x"], "error: --to 0.1,x: a latent is a comma list of numbers"),
    # Numbers that went to the server unchecked: a speaker of -1 (or 2**31, which protobuf refused as "Value
    # out of range"), infinite seconds, and a deadline past gRPC's range, which failed at once.
    (["say", "Hi.", "--speaker", "-1"], "argument --speaker: -1 is not a whole number in 0..2**31-1"),
    (["say", "Hi.", "--speaker", str(2**31)], f"argument --speaker: {2**31} is not a whole number in 0..2**31-1"),
    (["notes", "--instrument", "violin", "--seconds", "inf"], "argument --seconds: inf is not a number > 0"),
    (["--timeout", "inf", "voices"], "argument --timeout: inf is not a number > 0, at most 1e+09"),
    (["--timeout", "1e10", "voices"], "argument --timeout: 1e10 is not a number > 0, at most 1e+09"),
    # Outputs that could not be written, found only once the server had made the audio.
    (["notes", "--instrument", "violin", "-o", "file"], "error: -o file is a file; name a folder"),
    (["notes", "--instrument", "violin", "-o", "file/notes"], "error: -o file/notes: file is a file, not a folder"),
    (["say", "Hi.", "-o", "folder.wav"], "error: -o folder.wav is a folder; name a file in it"),
    (["vocode", "mel.npy", "-o", "file/x.wav"], "error: -o file/x.wav: file is a file, not a folder"),
    (["say", "Hi.", "--timings", "file/t.json"], "error: --timings file/t.json: file is a file, not a folder"),
])
def test_cli_usage_errors_exit_2_naming_the_option_before_any_call(args, message, tmp_path):
    # No server listens on port 1: a call would have failed as UNAVAILABLE, exit 1.
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.wav").mkdir()
    (tmp_path / "file").write_text("not a folder")
    before = sorted(tmp_path.rglob("*"))
    done = cli("127.0.0.1:1", *args, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_cli_convert_refuses_to_write_over_its_input_before_the_upload(tmp_path):
    """`convert take.wav -o take.wav` replaced the recording with its conversion."""
    take = write_wav(tmp_path / "take.wav", two_notes(), 16000)
    recording = take.read_bytes()
    (tmp_path / "link.wav").symlink_to(take)
    faults = Faults()
    with stand_in(faults) as target:
        for out in ("take.wav", "link.wav", str(take)):
            done = cli(target, "convert", "take.wav", "--to", "violin", "-o", out, cwd=tmp_path)
            assert done.returncode == 2, done.stderr
            assert one_line(done.stderr) == (f"audiogan-client: error: -o {out} is the input take.wav; name another "
                                             f"file, or it would be replaced")
        assert not faults.uploaded and take.read_bytes() == recording
        done = cli(target, "convert", "take.wav", "--to", "violin", "-o", "other.wav", cwd=tmp_path)
    assert done.returncode == 0 and faults.uploaded == [len(recording)], done.stderr
    assert take.read_bytes() == recording and (tmp_path / "other.wav").exists()


def test_cli_names_a_file_that_is_not_a_npy_array_without_advising_to_unpickle_it(tmp_path):
    (tmp_path / "mel.npy").write_text("not an array")
    for args, what in ((["vocode", "mel.npy"], "a mel"),
                       (["notes", "--instrument", "mel.npy"], "a timbre latent"),
                       (["vocode", "missing.npy"], None)):
        done = subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--target", "127.0.0.1:1", *args],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert done.returncode != 0 and "Traceback" not in done.stderr and "pickle" not in done.stderr
        expected = f"cannot read mel.npy as {what}: not a .npy array" if what else "a mel file not found: missing.npy"
        assert expected in done.stderr, done.stderr


def test_cli_help_says_what_every_option_is():
    import argparse

    from audiogan_client.cli import build_parser

    def options(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from options(sub, [*path, name])
            else:
                yield " ".join(path), action
    undocumented = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in options(build_parser(), [])
                    if not a.help]
    assert not undocumented


def test_cli_says_which_file_is_not_utf8(tmp_path):
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9")
    done = subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--target", "127.0.0.1:1", "say", "--file",
                           str(tmp_path / "latin.txt")], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "latin.txt is not UTF-8 text (byte 3)" in done.stderr


def test_write_audio_writes_the_format_its_suffix_names(tmp_path):
    from audiogan_client import write_audio

    samples = np.sin(np.arange(1600) / 10).astype(np.float32) * 0.5
    assert write_audio(tmp_path / "a.wav", samples, 16000).read_bytes()[:4] == b"RIFF"
    if importlib.util.find_spec("soundfile") is not None:
        flac = write_audio(tmp_path / "a.flac", samples, 16000)
        assert flac.read_bytes()[:4] == b"fLaC"
    with pytest.raises(ValueError, match=r"not \.mp3"):
        write_audio(tmp_path / "a.mp3", samples, 16000)


def test_a_stream_cut_off_keeps_the_audio_that_came(tmp_path):
    from types import SimpleNamespace

    from audiogan_client import cli

    class Cut(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.INVALID_ARGUMENT

        def details(self):
            return "text: the audio would last over 600 s"

    class Client:
        def stream_chunks(self, text, **kwargs):
            for _ in range(3):
                yield SimpleNamespace(sample_rate_hz=16000, audio=np.full(1600, 1000, "<i2").tobytes(), encoding=0)
            raise Cut()

    out = tmp_path / "long.wav"
    args = cli.build_parser().parse_args(["say", "Long text.", "--stream", "-o", str(out)])
    with pytest.raises(SystemExit, match=r"INVALID_ARGUMENT: text: the audio would last over 600 s \(the audio "
                                         r"received before it is in .*long\.wav\)"):
        cli.cmd_say(args)(Client())
    with wave.open(str(out)) as w:
        assert w.getnframes() == 4800


# -- a misbehaving server: real gRPC over loopback, answered by a stand-in whose faults the tests choose ------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def stand_in(servicer: pb_grpc.AudioGanServicer, port: int = 0, after: float = 0.0):
    """A gRPC server answering with ``servicer`` on ``port``, started ``after`` seconds from now (a server
    not up yet); yields its target."""
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
    pb_grpc.add_AudioGanServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    starting = threading.Timer(after, server.start)
    starting.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        starting.cancel()
        starting.join()
        server.stop(0)


def pcm_chunk(sequence: int, samples: int = 1600, final: bool = False) -> pb.AudioChunk:
    return pb.AudioChunk(sequence=sequence, sample_offset=sequence * samples, audio=np.full(samples, 1000, "<i2")
                         .tobytes(), encoding=pb.PCM16, sample_rate_hz=16000, final=final)


class Faults(pb_grpc.AudioGanServicer):
    """Each call counted; ListVoices UNAVAILABLE after ``slow`` seconds; a stream of ``chunks`` chunks, one
    each ``slow`` seconds, that then fails with ``refusal`` (``cut``) or ends without its final chunk; the
    first ``refusals`` calls (streams before any chunk, Vocode, ConvertTimbre) refused with ``refusal``;
    ConvertTimbre reads the whole upload, counting its bytes. Refusals carry ``pushback`` as gRPC's
    grpc-retry-pushback-ms where it is given. The x-request-id each call came with is kept in
    ``request_ids``."""

    def __init__(self, slow: float = 0.0, chunks: int = 3, cut: bool = False, final: bool = True,
                 refusals: int = 0, refusal: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
                 pushback: str | None = None) -> None:
        self.slow, self.chunks, self.cut, self.final, self.refusals = slow, chunks, cut, final, refusals
        self.refusal, self.pushback = refusal, pushback
        self.calls = 0
        self.times: list[float] = []  # when each call came
        self.uploaded: list[int] = []
        self.request_ids: list[str] = []

    def _refuse(self, context: grpc.ServicerContext, message: str) -> None:
        if self.pushback is not None:
            context.set_trailing_metadata((("grpc-retry-pushback-ms", self.pushback),))
        context.abort(self.refusal, message)

    def _refuse_first(self, context: grpc.ServicerContext) -> None:
        self.calls += 1
        self.times.append(time.monotonic())
        self.request_ids += [value for key, value in context.invocation_metadata() if key == "x-request-id"]
        if self.calls <= self.refusals:
            self._refuse(context, "restarting" if self.refusal == grpc.StatusCode.UNAVAILABLE else
                         "1 calls in flight, the limit is 1; retry later")

    def Vocode(self, request, context):
        self._refuse_first(context)
        return pb.Audio(audio=np.zeros(1600, "<f4").tobytes(), encoding=pb.FLOAT32, sample_rate_hz=16000)

    def ListVoices(self, request, context):
        self.calls += 1
        time.sleep(self.slow)
        context.abort(grpc.StatusCode.UNAVAILABLE, "the server is loading its models; retry shortly")

    def SynthesizeStream(self, request, context):
        self._refuse_first(context)
        for i in range(self.chunks):
            yield pcm_chunk(i, final=self.final and not self.cut and i == self.chunks - 1)
            time.sleep(self.slow)
        if self.cut:
            self._refuse(context, "Socket closed")

    def ConvertTimbre(self, request_iterator, context):
        self.uploaded.append(sum(len(r.audio_chunk) for r in request_iterator))
        self._refuse_first(context)
        yield pcm_chunk(0, final=True)


def test_retries_share_the_callers_deadline():
    """Each try used to get the whole timeout: 2 s given, 6 tries of 0.8 s each waited over 5 s."""
    faults = Faults(slow=0.8)
    with stand_in(faults) as target, AudioGanClient(target, timeout=2.0, retries=5, backoff=0.05) as c:
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            c.list_voices()
        took = time.monotonic() - start
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert took < 2.0 + 0.5, f"{took:.2f} s for a 2 s deadline"
    assert 2 <= faults.calls <= 3  # retried while the deadline allowed, no more


def test_a_server_that_comes_up_during_the_retries_answers():
    class Up(pb_grpc.AudioGanServicer):
        def ListVoices(self, request, context):
            return pb.ListVoicesResponse(vocoders=[pb.ModelInfo(name="late")])

    port = free_port()
    with stand_in(Up(), port, after=1.0), AudioGanClient(f"127.0.0.1:{port}", timeout=10, retries=5,
                                                         backoff=0.2) as c:
        assert [v["name"] for v in c.list_voices()["vocoders"]] == ["late"]


def test_a_stream_refused_before_its_first_chunk_is_retried_whole():
    faults = Faults(refusals=1, chunks=3)
    with stand_in(faults) as target, AudioGanClient(target, timeout=10, retries=2, backoff=0.05) as c:
        chunks = list(c.stream_chunks(mel=np.zeros((80, 10), np.float32)))
    assert faults.calls == 2 and [x.sequence for x in chunks] == [0, 1, 2] and chunks[-1].final


@pytest.mark.parametrize(("cut", "final", "code"), [(True, True, grpc.StatusCode.UNAVAILABLE),
                                                    (False, False, grpc.StatusCode.DATA_LOSS)])
def test_a_stream_cut_short_raises_and_is_not_retried(cut, final, code):
    """After chunks were handed out a retry would hand them out again; a stream that ended without its final
    chunk was taken for a whole one."""
    faults = Faults(chunks=3, cut=cut, final=final)
    with stand_in(faults) as target, AudioGanClient(target, timeout=10, retries=3, backoff=0.05) as c:
        got = []
        with pytest.raises(StreamBroken) as info:
            for audio in c.stream(mel=np.zeros((80, 10), np.float32)):
                got.append(audio)
    assert len(got) == 3 and faults.calls == 1
    assert info.value.code() == code
    assert "the stream stopped after 3 chunk(s), 0.30 s of audio, short of its end" in info.value.details()


def test_a_retried_upload_is_sent_again_from_its_start():
    data = bytes(range(256)) * 1000  # 256 kB: four upload chunks
    faults = Faults(refusals=1)
    with stand_in(faults) as target, AudioGanClient(target, timeout=10, retries=2, backoff=0.05) as c:
        result = c.convert(data, to="violin")
    assert faults.uploaded == [len(data), len(data)] and len(result.samples) == 1600


# -- a busy server: RESOURCE_EXHAUSTED with gRPC's pushback (grpc-retry-pushback-ms) -------------------------

BUSY = grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_busy_server_is_retried_after_its_pushback():
    faults = Faults(refusals=2, refusal=BUSY, pushback="300")
    with stand_in(faults) as target, AudioGanClient(target, timeout=10, retries=3, backoff=0.01) as c:
        start = time.monotonic()
        audio = c.vocode(np.zeros((80, 10), np.float32)).samples
        took = time.monotonic() - start
    assert faults.calls == 3 and audio.size == 1600
    assert took >= 2 * 0.3, f"{took:.2f} s: the server's pushback, longer than the backoff, was not waited"


@pytest.mark.parametrize("pushback", ["-1", "-250", "soon", "1.5", "", "2147483648"])
def test_a_pushback_that_is_negative_or_garbled_means_no_retry(pushback):
    """gRFC A6: a value that is negative or does not parse as a signed 32-bit integer asks not to retry, even
    a status that is retried without one."""
    for code in (grpc.StatusCode.UNAVAILABLE, BUSY):
        faults = Faults(refusals=5, refusal=code, pushback=pushback)
        with stand_in(faults) as target, AudioGanClient(target, timeout=10, retries=3, backoff=0.01) as c, \
                pytest.raises(grpc.RpcError) as info:
            c.vocode(np.zeros((80, 10), np.float32))
        assert info.value.code() == code and faults.calls == 1, f"{code.name} with pushback {pushback!r}"


def test_resource_exhausted_without_a_pushback_is_not_retried():
    """A request too big for the server comes back as RESOURCE_EXHAUSTED with no pushback: it would fail
    again. The same refusal with a pushback, from a busy server, is retried."""
    calls = []
    for pushback in (None, "10"):
        faults = Faults(refusals=1, refusal=BUSY, pushback=pushback)
        with stand_in(faults) as target, AudioGanClient(target, timeout=10, retries=3, backoff=0.01) as c, \
                contextlib.suppress(grpc.RpcError):
            c.vocode(np.zeros((80, 10), np.float32))
        calls.append(faults.calls)
    assert calls == [1, 2]


def test_retries_of_a_busy_server_stop_before_the_deadline_with_its_error():
    """Pushbacks of 0.4 s within a 1 s deadline: tries at 0, 0.4 and 0.8 s; the next wait would pass the
    deadline, so the server's refusal is raised then, not DEADLINE_EXCEEDED after a useless sleep."""
    faults = Faults(refusals=100, refusal=BUSY, pushback="400")
    with stand_in(faults) as target, AudioGanClient(target, timeout=1.0, retries=10, backoff=0.01) as c:
        start = time.monotonic()
        with pytest.raises(ServerBusy) as info:
            c.vocode(np.zeros((80, 10), np.float32))
        took = time.monotonic() - start
    assert info.value.code() == BUSY and "the limit is 1" in info.value.details()
    assert faults.calls == 3 and info.value.retries == 2 and info.value.pushback == 0.4
    assert 0.8 <= took < 1.0, f"{took:.2f} s"


@pytest.mark.parametrize(("refusal", "refusals"), [(BUSY, 1),
                                                  (grpc.StatusCode.UNAVAILABLE, 3)])  # loading: past the count
def test_a_stream_refused_with_a_pushback_before_its_first_chunk_is_retried_but_not_after(refusal, refusals):
    faults = Faults(refusals=refusals, refusal=refusal, pushback="10")
    with stand_in(faults) as target, AudioGanClient(target, timeout=10, retries=2, backoff=0.01) as c:
        chunks = list(c.stream_chunks(mel=np.zeros((80, 10), np.float32)))
    assert faults.calls == refusals + 1 and [x.sequence for x in chunks] == [0, 1, 2] and chunks[-1].final
    faults = Faults(chunks=3, cut=True, refusal=refusal, pushback="10")
    with stand_in(faults) as target, AudioGanClient(target, timeout=10, retries=2, backoff=0.01) as c, \
            pytest.raises(StreamBroken) as info:
        list(c.stream_chunks(mel=np.zeros((80, 10), np.float32)))
    assert faults.calls == 1 and info.value.code() == refusal


# -- a server loading its models: UNAVAILABLE with a pushback, when it expects to be ready ------------------

LOADING = grpc.StatusCode.UNAVAILABLE


def test_a_loading_server_is_waited_for_past_the_retry_count_at_its_pushback():
    """Four refusals, each asking for 0.3 s, for a client allowed one retry: the load ends on its own, so its
    retries count against the deadline alone; each wait is the pushback (longer than the backoff, which
    does not grow as it would for blind retries: 0.2, 0.4, 0.8 s after the first)."""
    faults = Faults(refusals=4, refusal=LOADING, pushback="300")
    with stand_in(faults) as target, AudioGanClient(target, timeout=10, retries=1, backoff=0.1) as c:
        audio = c.vocode(np.zeros((80, 10), np.float32)).samples
    waits = np.diff(faults.times)
    assert faults.calls == 5 and audio.size == 1600
    assert waits.min() >= 0.3, f"{waits}: a wait shorter than the server's pushback"
    assert waits.max() < 0.8, f"{waits}: the backoff grew past the pushback"


def test_a_loading_servers_retries_stop_before_the_deadline_and_retries_0_means_none():
    """Pushbacks of 0.4 s within a 1 s deadline: tries at 0, 0.4 and 0.8 s, then the server's UNAVAILABLE at
    once, not after a wait past the deadline. ``retries=0`` still asks for no retry at all."""
    faults = Faults(refusals=100, refusal=LOADING, pushback="400")
    with stand_in(faults) as target, AudioGanClient(target, timeout=1.0, retries=1, backoff=0.01) as c:
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            c.vocode(np.zeros((80, 10), np.float32))
        took = time.monotonic() - start
    assert info.value.code() == LOADING and not isinstance(info.value, ServerBusy)
    assert faults.calls == 3 and 0.8 <= took < 1.0, f"{faults.calls} calls in {took:.2f} s"
    faults = Faults(refusals=100, refusal=LOADING, pushback="10")
    with stand_in(faults) as target, AudioGanClient(target, timeout=10, retries=0) as c, \
            pytest.raises(grpc.RpcError):
        c.vocode(np.zeros((80, 10), np.float32))
    assert faults.calls == 1


def test_cli_says_the_server_is_busy_and_how_often_it_was_retried(tmp_path):
    np.save(tmp_path / "mel.npy", np.zeros((80, 10), np.float32))
    with stand_in(Faults(refusals=100, refusal=BUSY, pushback="10")) as target:
        done = cli(target, "--timeout", "30", "vocode", str(tmp_path / "mel.npy"), "-o", str(tmp_path / "x.wav"))
    assert done.returncode == 1 and not (tmp_path / "x.wav").exists()
    line = one_line(done.stderr)
    assert line == ("audiogan-client: RESOURCE_EXHAUSTED: 1 calls in flight, the limit is 1; retry later (the server "
                    f"is busy: retried 3 times, within --timeout 30 s) (request id {made_request_id(line)})")


# -- request ids: one per call, the same on each of its tries, on every error it raises ----------------------

MADE_ID = re.compile(r"[0-9a-f]{16}")  # an id the client makes: 16 hex digits


def made_request_id(line: str) -> str:
    """The id a failed command's line ends with, one the client made."""
    match = re.search(r" \(request id ([^ ]+)\)$", line)
    assert match and MADE_ID.fullmatch(match.group(1)), line
    return match.group(1)


def test_the_tries_of_one_call_share_its_request_id_and_each_call_has_its_own():
    """The server logs the retries of one call under one id, so that its log shows them as one call's."""
    mel = np.zeros((80, 10), np.float32)
    for refusal in (grpc.StatusCode.UNAVAILABLE, BUSY):
        faults = Faults(refusals=2, refusal=refusal, pushback="10")
        with stand_in(faults) as target, AudioGanClient(target, timeout=10, retries=3, backoff=0.01) as c:
            c.vocode(mel)
            c.vocode(mel)
        first, second = faults.request_ids[:3], faults.request_ids[3:]
        assert len(set(first)) == 1 and MADE_ID.fullmatch(first[0]), faults.request_ids
        assert len(second) == 1 and second[0] != first[0], faults.request_ids
    faults = Faults(refusals=1)
    with stand_in(faults) as target, AudioGanClient(target, timeout=10, retries=2, backoff=0.01) as c:
        list(c.stream_chunks(mel=mel, request_id="stream-1"))
        c.convert(b"RIFF", to="violin", request_id="upload-1")
    assert faults.request_ids == ["stream-1", "stream-1", "upload-1"]


def test_every_error_a_call_raises_carries_its_request_id():
    mel = np.zeros((80, 10), np.float32)
    with stand_in(Faults(refusals=5, refusal=grpc.StatusCode.INVALID_ARGUMENT)) as target, \
            AudioGanClient(target, timeout=10, retries=3, backoff=0.01) as c:
        with pytest.raises(CallFailed) as refused:
            c.vocode(mel, request_id="ticket-9")
        with pytest.raises(grpc.RpcError) as made:  # what callers catch, as before
            c.vocode(mel)
    said = "1 calls in flight, the limit is 1; retry later"  # what Faults says for any refusal but UNAVAILABLE
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and refused.value.details() == said
    assert refused.value.request_id == "ticket-9"
    assert str(refused.value) == f"INVALID_ARGUMENT: {said} (request id ticket-9)"
    assert isinstance(made.value, CallFailed) and MADE_ID.fullmatch(made.value.request_id)
    assert str(made.value).endswith(f" (request id {made.value.request_id})")
    with stand_in(Faults(refusals=5, refusal=BUSY, pushback="10")) as target, \
            AudioGanClient(target, timeout=10, retries=1, backoff=0.01) as c, pytest.raises(ServerBusy) as busy:
        c.vocode(mel, request_id="ticket-10")
    assert busy.value.request_id == "ticket-10" and str(busy.value).endswith("(request id ticket-10)")
    assert ("grpc-retry-pushback-ms", "10") in busy.value.trailing_metadata()  # gRPC's error's, as before
    with stand_in(Faults(chunks=3, cut=True)) as target, AudioGanClient(target, timeout=10) as c, \
            pytest.raises(StreamBroken) as broken:
        list(c.stream_chunks(mel=mel, request_id="ticket-11"))
    assert broken.value.request_id == "ticket-11" and str(broken.value).endswith("(request id ticket-11)")
    with AudioGanClient(f"127.0.0.1:{free_port()}", timeout=2, retries=0) as c, \
            pytest.raises(CallFailed) as unreached:  # no server: the id the call was sent with
        c.list_voices(request_id="ticket-12")
    assert unreached.value.code() == grpc.StatusCode.UNAVAILABLE and unreached.value.request_id == "ticket-12"


def test_an_error_carries_the_request_id_its_server_sent_back():
    """Where the server logged the call under an id of its own (it did not take the caller's), the error
    names that id, the one in the server's log."""
    class Renames(pb_grpc.AudioGanServicer):
        def ListVoices(self, request, context):
            context.set_trailing_metadata((("x-request-id", "server-7"),))
            context.abort(grpc.StatusCode.INTERNAL, "internal error: RuntimeError")

    with stand_in(Renames()) as target, AudioGanClient(target, timeout=10) as c, pytest.raises(CallFailed) as info:
        c.list_voices(request_id="mine")
    assert info.value.request_id == "server-7"


@pytest.mark.parametrize(("given", "said"), [("", "0 characters; give 1..128"), ("x" * 129, "129 characters"),
                                             ("two words", "holds a space"), ("caf\u00e9", "not visible ASCII")])
def test_a_request_id_no_server_would_take_is_refused_before_any_call(given, said):
    faults = Faults()
    with stand_in(faults) as target, AudioGanClient(target, timeout=10) as c, pytest.raises(ValueError, match=said):
        c.vocode(np.zeros((80, 10), np.float32), request_id=given)
    assert faults.calls == 0
    done = cli("127.0.0.1:1", "--request-id", given, "voices")
    assert done.returncode == 2 and "argument --request-id: " in done.stderr and said in done.stderr


def test_cli_says_the_request_id_of_a_failed_call(tmp_path):
    np.save(tmp_path / "mel.npy", np.zeros((80, 10), np.float32))
    faults = Faults(refusals=1, refusal=grpc.StatusCode.INVALID_ARGUMENT)
    with stand_in(faults) as target:
        done = cli(target, "--request-id", "ticket-13", "vocode", str(tmp_path / "mel.npy"), "-o",
                   str(tmp_path / "x.wav"))
    assert done.returncode == 1 and faults.request_ids == ["ticket-13"]
    assert one_line(done.stderr) == ("audiogan-client: INVALID_ARGUMENT: 1 calls in flight, the limit is 1; retry "
                                     "later (request id ticket-13)")


def cli(target: str, *args: str, **run: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--target", target, *args],
                          capture_output=True, text=True, timeout=60, **run)


def one_line(stderr: str) -> str:
    """What the command said: one line, no traceback, no lines of gRPC's own logging."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiogan-client: "), stderr
    return lines[0]


def test_cli_says_a_stream_cut_short_in_one_line_and_keeps_what_came(tmp_path):
    with stand_in(Faults(chunks=3, cut=True)) as target:
        done = cli(target, "say", "Hello.", "--stream", "-o", str(tmp_path / "cut.wav"))
        assert done.returncode == 1
        line = one_line(done.stderr)
        assert line == (f"audiogan-client: UNAVAILABLE: Socket closed (the stream stopped after 3 chunk(s), 0.30 s "
                        f"of audio, short of its end) (the audio received before it is in {tmp_path / 'cut.wav'}) "
                        f"(request id {made_request_id(line)})")
        with wave.open(str(tmp_path / "cut.wav")) as w:  # whole as a file, and said to be short
            assert w.getnframes() == 3 * 1600
        raw = subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--target", target, "say", "Hello.",
                              "--raw"], capture_output=True, timeout=60)
        assert raw.returncode == 1 and len(raw.stdout) == 3 * 1600 * 2
        assert "stopped after 3 chunk(s)" in one_line(raw.stderr.decode())


def test_cli_says_which_deadline_passed(tmp_path):
    hint = "(the deadline: --timeout 0.5 s, retries included)"
    with stand_in(Faults(slow=3.0)) as target:
        done = cli(target, "--timeout", "0.5", "voices")
        assert done.returncode == 1
        line = one_line(done.stderr)
        assert line == f"audiogan-client: DEADLINE_EXCEEDED: Deadline Exceeded {hint} " \
                       f"(request id {made_request_id(line)})"
        done = cli(target, "--timeout", "0.5", "say", "Hello.", "--stream", "-o", str(tmp_path / "x.wav"))
        assert done.returncode == 1
        line = one_line(done.stderr)
        # gRPC's own words vary here: "Deadline Exceeded", or "Stream removed (Deadline Exceeded)"
        assert line.startswith("audiogan-client: DEADLINE_EXCEEDED: ") and "(the stream stopped after 1 " in line
        assert f"short of its end) {hint} (the audio received before it is in" in line, line


def test_cli_leaves_no_cut_short_file_when_its_write_fails(tmp_path):
    """A write cut short (here: a file-size limit standing in for a full disk) left a WAV whose header
    promised audio that was not there, over the good file of an earlier run."""
    class Long(pb_grpc.AudioGanServicer):
        def Vocode(self, request, context):
            return pb.Audio(audio=np.zeros(160_000, "<f4").tobytes(), encoding=pb.FLOAT32, sample_rate_hz=16000)

    # The limit is set by a small launcher that then execs the command, not by a preexec_fn: that forks this
    # process, whose gRPC threads (the stand-in server's) made the child abort now and then ("epoll_wait
    # error: Bad file descriptor", exit -6) before the command ran. A write past the limit fails (EFBIG)
    # rather than killing the process: SIGXFSZ is ignored, which exec keeps.
    small_files = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                   "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000)); os.execv(sys.argv[1], sys.argv[1:])")
    np.save(tmp_path / "mel.npy", np.zeros((80, 10), np.float32))
    before = write_wav(tmp_path / "out.wav", np.zeros(1000, np.float32), 16000).read_bytes()
    with stand_in(Long()) as target:
        done = subprocess.run([sys.executable, "-c", small_files, sys.executable, "-m", "audiogan_client.cli",
                               "--target", target, "vocode", str(tmp_path / "mel.npy"), "-o",
                               str(tmp_path / "out.wav")], capture_output=True, text=True, timeout=60)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last == "audiogan-client: [Errno 27] File too large", done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "out.wav").read_bytes() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["mel.npy", "out.wav"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make test certificates")
def test_cli_says_a_certificate_the_server_does_not_match_in_one_line(tmp_path):
    """gRPC's core logged each failed handshake to stderr itself, above the command's own line."""
    for name in ("server", "other"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                        str(tmp_path / f"{name}.key"), "-out", str(tmp_path / f"{name}.pem")],
                       check=True, capture_output=True)

    class Up(pb_grpc.AudioGanServicer):
        def ListVoices(self, request, context):
            return pb.ListVoicesResponse()

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    pb_grpc.add_AudioGanServicer_to_server(Up(), server)
    creds = grpc.ssl_server_credentials([((tmp_path / "server.key").read_bytes(),
                                          (tmp_path / "server.pem").read_bytes())])
    target = f"127.0.0.1:{server.add_secure_port('127.0.0.1:0', creds)}"
    server.start()
    try:
        assert cli(target, "--tls-ca", str(tmp_path / "server.pem"), "voices").returncode == 0
        done = cli(target, "--tls-ca", str(tmp_path / "other.pem"), "voices", env={
            k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"})
        assert done.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in one_line(done.stderr)
    finally:
        server.stop(0)


def piped(target: str, *args: str, stdin: bytes | int, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """The CLI with ``stdin`` piped in (bytes) or as that descriptor (a terminal's)."""
    given = {"input": stdin} if isinstance(stdin, bytes) else {"stdin": stdin}
    return subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--target", target, *args],
                          capture_output=True, timeout=120, cwd=cwd, **given)


@contextlib.contextmanager
def a_terminal() -> Iterator[int]:
    """A real terminal's descriptor (a pty's far end), for a command's standard input or output."""
    main_end, terminal = pty.openpty()
    try:
        yield terminal
    finally:
        os.close(main_end)
        os.close(terminal)


def npy_bytes(array: np.ndarray) -> bytes:
    saved = io.BytesIO()
    np.save(saved, array)
    return saved.getvalue()


def wav_samples(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32767.0


@needs_server
def test_cli_reads_an_input_given_as_dash_from_standard_input(client, mel, tmp_path):
    """`vocode -`, `say --file -`, `convert -` and a timbre `-` read a file of that name, and found none."""
    latent = np.random.default_rng(3).normal(size=128).astype(np.float32)
    recording = write_wav(tmp_path / "melody.wav", two_notes(), 16000).read_bytes()
    cases = [  # the command, what is piped in, and what the library makes of the same input
        (["vocode", "-", "-o", "out.wav"], npy_bytes(mel), client.vocode(mel)[0]),
        (["say", "--file", "-", "-o", "out.wav"], b"Hello there.", client.synthesize("Hello there.").samples),
        (["notes", "--instrument", "-", "--seconds", "1", "-o", "."], npy_bytes(latent),
         client.notes([{"pitch": 60, "timbre": latent.tolist(), "seconds": 1.0}])[0].samples),
    ]
    for args, stdin, expected in cases:
        done = piped(TARGET, *args, stdin=stdin, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        written = tmp_path / ("latent-060.wav" if args[0] == "notes" else "out.wav")  # no "--060.wav"
        np.testing.assert_allclose(read_wav(written), expected, atol=2e-3)  # PCM16; speech batched with padding
        written.unlink()
    # A whole pipe: a recording in, a WAV out.
    done = piped(TARGET, "convert", "-", "--to", "violin", "-o", "-", stdin=recording, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(wav_samples(done.stdout), client.convert(recording, to="violin").samples, atol=2e-4)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["melody.wav"]


STDIN_READERS = [  # a command with one input given as -, and what it reads there
    (["vocode", "-"], "a mel"),
    (["say", "--file", "-"], "text"),
    (["convert", "-", "--to", "violin"], "audio"),
    (["convert", "take.wav", "--to", "-"], "a timbre latent"),
    (["notes", "--instrument", "-"], "a timbre latent"),
    (["interpolate", "--from", "flute", "--to", "-"], "a timbre latent"),
]


@pytest.mark.parametrize(("args", "what"), STDIN_READERS)
def test_cli_refuses_an_empty_pipe_or_a_terminal_on_stdin_before_any_call(args, what, tmp_path):
    """A terminal would wait for typing; an empty pipe is a producer that failed. Both are usage errors said
    in one line, exit 2: no server listens on port 1, where a call would have failed with exit 1."""
    write_wav(tmp_path / "take.wav", two_notes(), 16000)
    done = piped("127.0.0.1:1", *args, "-o", "out.wav", stdin=b"", cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done.stderr.decode()) == (f"audiogan-client: error: standard input is empty: - reads {what} "
                                              f"from it, and none was piped in")
    with a_terminal() as terminal:
        done = piped("127.0.0.1:1", *args, "-o", "out.wav", stdin=terminal, cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done.stderr.decode()) == (f"audiogan-client: error: - reads {what} from standard input, which "
                                              f"is a terminal: pipe it in (... | audiogan-client ... -) or name "
                                              f"a file")
    assert [f.name for f in tmp_path.iterdir()] == ["take.wav"]


@pytest.mark.parametrize(("args", "option"), [
    (["vocode", "mel.npy", "-o", "-"], "-o -"),
    (["say", "Hello.", "--stream", "-o", "-"], "-o -"),
    (["say", "Hello.", "--raw"], "--raw"),
])
def test_cli_refuses_audio_onto_a_terminal_before_any_call(args, option, tmp_path):
    """A WAV's or raw PCM's bytes on a terminal are noise (and can upset it); the audiogan CLI refuses them
    too. No server listens on port 1: exit 2, not 1, shows the refusal came before any call."""
    np.save(tmp_path / "mel.npy", np.zeros((80, 10), np.float32))
    with a_terminal() as terminal:
        done = subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--target", "127.0.0.1:1", *args],
                              stdout=terminal, stderr=subprocess.PIPE, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done.stderr.decode()) == (f"audiogan-client: error: {option}: standard output is a terminal, "
                                              f"not a place for audio's bytes; pipe it on (| aplay) or redirect it "
                                              f"(> out.wav)")


@pytest.mark.parametrize(("args", "readers"), [
    (["convert", "-", "--to", "-"], "input and --to"),
    (["convert", "-", "--to", "violin", "--to-b", "-"], "input and --to-b"),
    (["convert", "take.wav", "--to", "-", "--to-b", "-"], "--to and --to-b"),
    (["interpolate", "--from", "-", "--to", "-"], "--from and --to"),
])
def test_cli_refuses_two_inputs_given_as_dash(args, readers, tmp_path):
    """Standard input can be read once: the first input would take it all and leave the second nothing."""
    write_wav(tmp_path / "take.wav", two_notes(), 16000)
    done = piped("127.0.0.1:1", *args, stdin=npy_bytes(np.zeros(128, np.float32)), cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done.stderr.decode()) == (f"audiogan-client: error: {readers} are both -, and standard input "
                                              f"can be read once: pipe in one of them and name a file for the other")


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["vocode", "-"], b"not an array", "cannot read (standard input) as a mel: not a .npy array written by np.save"),
    (["vocode", "-"], npy_bytes(np.zeros(3)), "(standard input) holds an array of shape (3,); a mel is [n_mels, "),
    (["notes", "--instrument", "-"], npy_bytes(np.array(["a"])), "(standard input) does not hold a timbre latent"),
    (["say", "--file", "-"], b"caf\xe9", "say: standard input is not UTF-8 text (byte 3); convert it first"),
])
def test_cli_names_standard_input_when_what_it_holds_is_no_use(args, stdin, message, tmp_path):
    done = piped("127.0.0.1:1", *args, stdin=stdin, cwd=tmp_path)
    assert done.returncode == 2 and message in one_line(done.stderr.decode()), done.stderr
    assert not list(tmp_path.iterdir())


def test_cli_help_says_which_inputs_read_standard_input():
    for args, said in ((["vocode"], "- reads the .npy from standard input"),
                       (["convert"], "- reads it from standard input"),
                       (["say"], "--file FILE read the text from this UTF-8 file; - reads it from standard input"),
                       (["notes"], "- for a .npy on standard input"),
                       (["interpolate"], "- for a .npy on standard input"),
                       ([], "An input given as - is read whole from standard input")):
        done = subprocess.run([sys.executable, "-m", "audiogan_client.cli", *args, "--help"], capture_output=True,
                              text=True, timeout=60)
        assert said in " ".join(done.stdout.split()), done.stdout


@pytest.mark.parametrize(("args", "option"), [
    (["vocode", "mel.npy", "-o", "-"], "-o -"),
    (["say", "Hello.", "--raw"], "--raw"),
])
def test_cli_refuses_audio_for_a_closed_stdout_before_any_call(args, option, tmp_path):
    """`>&-`: Python's sys.stdout is None, and the audio's write after the call ended in an AttributeError's
    traceback. No server listens on port 1: exit 2, not 1, shows the refusal came before any call."""
    np.save(tmp_path / "mel.npy", np.zeros((80, 10), np.float32))
    done = subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--target", "127.0.0.1:1", *args],
                          stderr=subprocess.PIPE, timeout=120, cwd=tmp_path, preexec_fn=lambda: os.close(1))
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr.decode()) == (f"audiogan-client: error: {option}: standard output is closed: pipe "
                                              f"it on (| aplay) or redirect it (> out.wav)")


def test_a_calls_error_survives_pickling_as_multiprocessing_and_concurrent_futures_send_it():
    """Every failed call now raises CallFailed (or a subclass): pickling one raised TypeError on loading
    (Exception's pickle calls __init__ with the message alone), so a worker process's failed call broke the
    pool's result instead of reporting it. gRPC's own error, the cause, holds a channel and is left out."""
    import pickle

    from audiogan_client.client import CallFailed, ServerBusy, StreamBroken

    cause = CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, "full", "cause-1")
    for err in (CallFailed(grpc.StatusCode.INTERNAL, "boom", "ticket-1", cause),
                StreamBroken(grpc.StatusCode.DATA_LOSS, "cut", "ticket-2"),
                ServerBusy(cause, retries=3, pushback=0.5, request_id="ticket-3")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
        assert (back.code(), back.details(), back.request_id) == (err.code(), err.details(), err.request_id)
        assert back.trailing_metadata() == () and isinstance(back, grpc.RpcError)
    assert (back.retries, back.pushback) == (3, 0.5)


def test_cli_refuses_a_stream_without_end_on_stdin_at_the_bound(tmp_path):
    """`cat /dev/zero | audiogan-client convert -`, the bound lowered to 1000 bytes for the test: one line,
    exit 2, nothing sent (no server listens on port 1), where before it read until memory ran out."""
    # The assert: code without the bound (another copy of the package on the path) fails, not eats memory.
    run = ("import sys; import audiogan_client.stdio as stdio; assert stdio.MAX_STDIN_BYTES; "
           "stdio.MAX_STDIN_BYTES = 1000; "
           "from audiogan_client.cli import main; sys.argv[0] = 'audiogan-client'; sys.exit(main())")
    with open("/dev/zero", "rb") as zeros:
        done = subprocess.run([sys.executable, "-c", run, "--target", "127.0.0.1:1", "convert", "-", "--to",
                               "violin", "-o", "out.wav"], stdin=zeros, capture_output=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done.stderr.decode()) == ("audiogan-client: error: standard input brought more than 1000 bytes, "
                                              "the most - takes: was it audio? Save it to a file and name that")


def test_read_stdin_asks_for_a_piece_at_a_time(monkeypatch):
    from audiogan_client import stdio

    asked: list[int] = []

    class Counting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            asked.append(-1 if size is None else size)
            return super().read(size)

    stream = Counting(b"\0" * 5000)
    monkeypatch.setattr(stdio, "MAX_STDIN_BYTES", 4000)
    monkeypatch.setattr(stdio, "STDIN_CHUNK_BYTES", 1024)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stream))
    with pytest.raises(ValueError, match="more than 4000 bytes"):
        stdio.read_stdin("audio")
    assert all(0 < size <= 1024 for size in asked) and stream.tell() == 4001


def read_slowly(fd: int) -> tuple[threading.Thread, bytearray]:
    """A reader that takes a pipe's bytes a little at a time, so that its writer finds the pipe full."""
    got = bytearray()

    def drain() -> None:
        while chunk := os.read(fd, 4096):
            got.extend(chunk)
            time.sleep(0.001)

    reader = threading.Thread(target=drain)
    reader.start()
    return reader, got


def test_a_streamed_wav_reaches_a_non_blocking_pipe_whole():
    """A standard output its parent made non-blocking (node's child pipes), read slowly: every byte arrives,
    where the buffered writer before raised BlockingIOError once the pipe was full."""
    from audiogan_client.stdio import WavStream, wav_header

    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    reader, got = read_slowly(read_end)
    pcm = np.arange(200_000, dtype="<i2").tobytes()
    stream = WavStream(write_end)
    for start in range(0, len(pcm), 100_000):
        stream.write(pcm[start:start + 100_000], 16000)
    stream.close()
    os.close(write_end)
    reader.join()
    os.close(read_end)
    assert bytes(got) == wav_header(16000) + pcm


@needs_server
def test_cli_writes_a_whole_wav_to_a_non_blocking_stdout(tmp_path):
    """`say -o -` (one WAV) and `say --stream -o -` into a non-blocking pipe read slowly: the bytes a blocking
    pipe gets."""
    for stream in ((), ("--stream",)):
        args = (sys.executable, "-m", "audiogan_client.cli", "--target", TARGET, "say", "Hello there. Piped out.",
                *stream, "-o", "-")
        blocking = subprocess.run(args, capture_output=True, timeout=120, cwd=tmp_path)
        assert blocking.returncode == 0 and len(blocking.stdout) > 1 << 16, blocking.stderr  # more than a pipe holds
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        reader, got = read_slowly(read_end)
        done = subprocess.run(args, stdout=write_end, stderr=subprocess.PIPE, timeout=120, cwd=tmp_path)
        os.close(write_end)
        reader.join()
        os.close(read_end)
        assert done.returncode == 0, done.stderr
        assert bytes(got) == blocking.stdout

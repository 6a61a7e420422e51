"""The gRPC service end to end: a real server process on a loopback port, the bundled vocoder, the client."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import itertools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import wave as wavemod
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import soundfile as sf
import torch
from audiogan_client import AudioGanClient, ServerBusy, StreamBroken
from audiogan_client._proto import audiogan_pb2 as pb
from audiogan_client._proto import audiogan_pb2_grpc as pb_grpc
from audiogan_client.client import KEEPALIVE_SECONDS, server_pushback
from audiogan_server import loading
from audiogan_server.batching import DynamicBatcher
from audiogan_server.config import ServerConfig
from audiogan_server.errors import rpc
from audiogan_server.loading import INITIAL_S_PER_MB, LoadProgress
from audiogan_server.main import build_parser, load_config
from audiogan_server.metrics import Metrics
from audiogan_server.models import ModelRegistry, Ramp, VocoderEngine
from audiogan_server.overload import PUSHBACK_MAX_S, PUSHBACK_MIN_S, Durations
from audiogan_server.process import launch
from audiogan_server.service import AudioGanService
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from audiogan import Vocoder, weights

REPO = Path(__file__).resolve().parents[1]
REPO_DEMO = REPO / "audiogan" / "samples" / "demo.flac"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vocoder() -> Vocoder:
    return Vocoder.load(device="cpu")


@pytest.fixture(scope="module")
def mel(vocoder: Vocoder, demo_wave: torch.Tensor) -> np.ndarray:
    return vocoder.mel(demo_wave).numpy()


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def server(metrics_port: int):
    # A long batching window so that concurrent calls in the batching test surely share passes.
    # No voice or note model, bundled or not: the calls that need one are tested for their clear refusal.
    with launch("--voice", "none", "--timbre", "none", "--metrics-port", str(metrics_port), "--threads", "2",
                "--set", "batching.max_wait_ms=30",
                "--set", "limits.max_text_chars=1000", "--set", "limits.max_audio_seconds=120") as proc:
        yield proc


@pytest.fixture
def client(server):
    with AudioGanClient(server.target, timeout=60) as c:
        yield c


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.details(), "every error carries a message"
    return info.value.code()


def metric(port: int, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}}") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- results ------------------------------------------------------------------------------------------------

def test_vocode_equals_the_library(client, vocoder, mel):
    audio, rate = client.vocode(mel)
    assert rate == vocoder.sample_rate
    # Not bit-exact: the server's thread count may differ from this process's (OMP_NUM_THREADS), which
    # changes the order of float sums.
    np.testing.assert_allclose(audio, vocoder(mel).numpy(), rtol=0, atol=1e-5)


def test_a_long_mel_vocoded_in_pieces_equals_the_library(client, vocoder, mel):
    long_mel = np.tile(mel, (1, 3))
    assert long_mel.shape[1] > 8 * 64, "longer than one piece"
    audio, _ = client.vocode(long_mel)
    np.testing.assert_allclose(audio, vocoder(long_mel).numpy(), rtol=0, atol=1e-4)


def test_synthesize_with_mel_equals_vocode(client, mel):
    a, _ = client.synthesize(mel=mel)
    b, _ = client.vocode(mel)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rate", [0, 22050, 8000])
def test_stream_chunks_concatenate_to_the_unary_result(client, mel, rate):
    unary, unary_rate = client.synthesize(mel=mel, sample_rate=rate)
    chunks = list(client.stream_chunks(mel=mel, sample_rate=rate))
    assert [c.sequence for c in chunks] == list(range(len(chunks)))
    assert [c.final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert len(chunks) > 5, "a 5 s mel arrives in several chunks"
    audio = [np.frombuffer(c.audio, "<f4") for c in chunks]
    offsets = np.cumsum([0] + [len(a) for a in audio[:-1]])
    assert [c.sample_offset for c in chunks] == offsets.tolist()
    assert {c.sample_rate_hz for c in chunks} == {unary_rate}
    if rate == 0:  # at the model's rate, chunk lengths are whole frames: 8, 16, 32 and then 64 at most
        frames = [len(a) // 256 for a in audio]
        assert frames[:4] == [8, 16, 32, 64] and max(frames) == 64 and sum(frames) == mel.shape[-1]
    joined = np.concatenate(audio)
    assert joined.shape == unary.shape
    np.testing.assert_allclose(joined, unary, atol=1e-4)


@pytest.mark.parametrize("encoding", ["pcm16", "wav", "flac"])
def test_encodings_decode_to_the_same_audio(client, mel, encoding):
    reference, _ = client.vocode(mel, sample_rate=44100)
    audio, rate = client.vocode(mel, sample_rate=44100, encoding=encoding)
    assert rate == 44100 and audio.shape == reference.shape
    np.testing.assert_allclose(audio, reference, atol=1.5 / 32768)


def test_wav_bytes_are_a_wav_file(client, mel, tmp_path):
    response = client.stub.Vocode(pb.VocodeRequest(mel=pb.Mel(n_mels=80, data=mel.astype("<f4").tobytes()),
                                                   format=pb.AudioFormat(encoding=pb.WAV)))
    path = tmp_path / "out.wav"
    path.write_bytes(response.audio)
    with wavemod.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.getnframes() == response.num_samples == mel.shape[1] * 256


def test_concurrent_calls_are_batched_and_each_gets_its_own_result(client, vocoder, mel, metrics_port):
    before_count = metric(metrics_port, "audiogan_batch_size_count", batcher="vocode:vocoder-16k-vector")
    before_sum = metric(metrics_port, "audiogan_batch_size_sum", batcher="vocode:vocoder-16k-vector")
    mels = [mel[:, i * 20: i * 20 + 60 + 7 * i] for i in range(8)]  # different content and lengths
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda m: client.vocode(m).samples, mels))
    for m, audio in zip(mels, results, strict=True):
        np.testing.assert_allclose(audio, vocoder(m).numpy(), atol=1e-5)
    passes = metric(metrics_port, "audiogan_batch_size_count", batcher="vocode:vocoder-16k-vector") - before_count
    items = metric(metrics_port, "audiogan_batch_size_sum", batcher="vocode:vocoder-16k-vector") - before_sum
    assert items == 8
    assert passes < 8, f"8 concurrent calls ran in {passes:g} forward passes: no batching"


def test_concurrent_streams_interleave_and_match(client, mel):
    unary, _ = client.vocode(mel)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        streams = list(pool.map(lambda _: np.concatenate(list(client.stream(mel=mel))), range(4)))
    for s in streams:
        np.testing.assert_allclose(s, unary, atol=1e-4)


def test_integrated_phase_streams_concurrently_and_matches_the_library(mel):
    """--phase rtpghi: each stream carries its own phase track through shared batched passes."""
    local = Vocoder.load(device="cpu", phase="rtpghi")
    with launch("--voice", "none", "--timbre", "none", "--phase", "rtpghi", "--threads", "2",
                "--set", "batching.max_wait_ms=30") as proc, AudioGanClient(proc.target, timeout=60) as client:
        unary, _ = client.vocode(mel)
        np.testing.assert_allclose(unary, local(mel).numpy(), atol=1e-3)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            streams = list(pool.map(lambda _: np.concatenate(list(client.stream(mel=mel))), range(3)))
    for s in streams:
        assert s.shape == unary.shape
        # Up to float rounding, which can reorder the integration at a near-tie (tests/test_pghi.py).
        assert np.mean(np.abs(s - unary) > 1e-4) < 0.01 and np.abs(s - unary).max() < 5e-3


def test_listings(client):
    listing = client.list_voices()
    assert listing["voices"] == []  # started with --voice none
    (vocoder,) = listing["vocoders"]
    assert vocoder["name"] == "vocoder-16k-vector" and vocoder["sample_rate"] == 16000
    assert vocoder["card"]["config"]["mel"]["n_mels"] == 80
    assert client.list_instruments() == []


def test_health_and_reflection(server):
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "audiogan.v1.AudioGan"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (answer,) = list(reflection.ServerReflectionInfo(iter([request]), timeout=10))
        names = {s.name for s in answer.list_services_response.service}
        assert {"audiogan.v1.AudioGan", "grpc.health.v1.Health"} <= names
    # The image's HEALTHCHECK: no argument, the port from the environment the server's command line uses too.
    done = healthcheck(AUDIOGAN_PORT=str(server.port))
    assert done.returncode == 0 and "SERVING" in done.stdout, done.stderr


def healthcheck(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audiogan_server.healthcheck"], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


# -- calls whose model is not loaded ------------------------------------------------------------------------

def test_text_and_timbre_calls_say_their_model_is_missing(client, demo_path):
    calls = {
        "text": lambda: client.synthesize("Hello there."),
        "stream text": lambda: list(client.stream("Hello there.")),
        "notes": lambda: client.notes([{"pitch": 60, "timbre": "violin"}]),
        "interpolate": lambda: client.interpolate("flute", "violin", pitch=60, steps=4),
        "convert": lambda: client.convert(demo_path, to="violin"),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED, name
        assert "--voice" in info.value.details() or "--timbre" in info.value.details(), name


# -- bad input -------------------------------------------------------------------------------------------

def _wav_bytes(rate: int) -> bytes:
    buffer = io.BytesIO()
    with wavemod.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(1600, "<i2").tobytes())
    data = bytearray(buffer.getvalue())
    data[24:28] = rate.to_bytes(4, "little")  # the header's sample-rate field
    return bytes(data)


def bad_calls(client: AudioGanClient, mel: np.ndarray, demo_path: Path) -> dict[str, tuple]:
    invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    mel_msg = pb.Mel(n_mels=80, data=mel.astype("<f4").tobytes())
    nan_mel = mel.copy()
    nan_mel[3, 7] = np.nan
    flac = demo_path.read_bytes()
    return {
        "empty text": (lambda: client.synthesize(""), invalid, "text"),
        "whitespace text": (lambda: client.synthesize(" \n\t "), invalid, "text"),
        "1 MB text": (lambda: client.synthesize("a" * 1_000_000), invalid, "text"),
        # Out of range for the client library too, which refuses it itself: sent as the message.
        "speed 10": (lambda: client.stub.Synthesize(pb.SynthesizeRequest(text="hi", speed=10)), invalid, "speed"),
        "no input": (lambda: client.stub.Synthesize(pb.SynthesizeRequest()), invalid, "input"),
        "NaN mel": (lambda: client.vocode(nan_mel), invalid, "mel.data"),
        "mel of 100s": (lambda: client.vocode(np.full((80, 20), 100.0, np.float32)), invalid, "mel.data: values span"),
        "mel of 1e30": (lambda: client.vocode(np.full((80, 20), 1e30, np.float32)), invalid, "natural-log magnitudes"),
        "mel of -1e30": (lambda: client.vocode(np.full((80, 20), -1e30, np.float32)), invalid, "mel.data"),
        "wrong mel bins": (lambda: client.vocode(mel[:64]), invalid, "mel.n_mels"),
        "ragged mel bytes": (lambda: client.stub.Vocode(pb.VocodeRequest(mel=pb.Mel(n_mels=80, data=b"\0" * 100))),
                             invalid, "mel.data"),
        "empty mel": (lambda: client.stub.Vocode(pb.VocodeRequest(mel=pb.Mel(n_mels=80))), invalid, "mel.data"),
        "1-frame mel": (lambda: client.vocode(mel[:, :1]), invalid, "mel.data"),
        "mel too long": (lambda: client.vocode(np.zeros((80, 130 * 16000 // 256), np.float32)), invalid, "mel"),
        "speed with mel": (lambda: client.synthesize(mel=mel, speed=2.0), invalid, "speed"),
        "unknown vocoder": (lambda: client.vocode(mel, vocoder="nope"), not_found, "vocoder"),
        "sample rate 10 MHz": (lambda: client.stub.Vocode(pb.VocodeRequest(
            mel=mel_msg, format=pb.AudioFormat(sample_rate_hz=10_000_000))), invalid, "sample_rate_hz"),
        "sample rate -1": (lambda: client.stub.Vocode(pb.VocodeRequest(
            mel=mel_msg, format=pb.AudioFormat(sample_rate_hz=-1))), invalid, "sample_rate_hz"),
        "unknown encoding": (lambda: client.stub.Vocode(pb.VocodeRequest(mel=mel_msg,
                                                                         format=pb.AudioFormat(encoding=9))),
                             invalid, "encoding"),
        "WAV in a stream": (lambda: list(client.stream(mel=mel, encoding="wav")), invalid, "encoding"),
        "alpha 1.5": (lambda: client.stub.InterpolateTimbre(pb.InterpolateTimbreRequest(
            a=client.timbre("flute"), b=client.timbre("violin"), pitch=60, alpha=1.5)), invalid, "alpha"),
        "steps 1": (lambda: client.interpolate("flute", "violin", pitch=60, steps=1), invalid, "steps"),
        "mode cubic": (lambda: client.interpolate("a", "b", pitch=60, steps=3, mode="cubic"), invalid, "mode"),
        "no notes": (lambda: client.notes([]), invalid, "notes"),
        "pitch 200": (lambda: client.stub.GenerateNotes(pb.GenerateNotesRequest(
            notes=[pb.NoteSpec(pitch=200, timbre=client.timbre("violin"))])), invalid, "pitch"),
        "NaN latent": (lambda: client.notes([{"pitch": 60, "timbre": [0.1, float("nan")]}]), invalid, "latent"),
        "no timbre": (lambda: client.notes([{"pitch": 60}]), invalid, "timbre"),
        "options missing": (lambda: list(client.stub.ConvertTimbre(
            iter([pb.ConvertTimbreRequest(audio_chunk=flac)]))), invalid, "options"),
    }


def test_bad_input_gets_the_right_code_and_the_server_goes_on(client, mel, demo_path):
    for name, (call, code, field) in bad_calls(client, mel, demo_path).items():
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == code, f"{name}: {info.value.code()} {info.value.details()}"
        assert field in info.value.details(), f"{name}: message {info.value.details()!r} names no {field!r}"
        assert client.vocode(mel[:, :10]).samples.size == 2560, f"server unhealthy after {name}"


def test_deadline_exceeded_then_the_server_still_answers(server, mel):
    long_mel = np.tile(mel, (1, 20))  # 100 s of audio: far more than 50 ms of CPU
    with AudioGanClient(server.target, timeout=0.05, retries=0) as hasty:
        assert code_of(lambda: hasty.vocode(long_mel)) == grpc.StatusCode.DEADLINE_EXCEEDED
    with AudioGanClient(server.target) as patient:
        assert patient.vocode(mel[:, :10]).samples.size == 2560


def test_a_stream_past_its_deadline_is_counted_as_deadline_exceeded(server, mel, metrics_port):
    labels = {"code": "DEADLINE_EXCEEDED", "method": "SynthesizeStream"}  # in the order Prometheus writes them
    before = metric(metrics_port, "audiogan_requests_total", **labels)
    long_mel = np.tile(mel, (1, 20))
    with AudioGanClient(server.target, timeout=1.0, retries=0) as hasty:
        chunks = hasty.stream_chunks(mel=long_mel)
        next(chunks)  # then read no more: flow control holds the server in its yield until the deadline
        time.sleep(1.5)
        with pytest.raises(grpc.RpcError):
            list(chunks)
    for _ in range(50):  # the server records the call as it notices its end
        if metric(metrics_port, "audiogan_requests_total", **labels) == before + 1:
            break
        time.sleep(0.1)
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    assert metric(metrics_port, "audiogan_requests_total", **labels) == before + 1, text


def test_every_finished_call_gets_one_log_line(server, mel):
    with AudioGanClient(server.target, retries=0) as client:
        client.vocode(mel[:, :10])  # 10 frames x 256 / 16 kHz = 0.16 s
        list(client.stream_chunks(mel=mel[:, :20], encoding="pcm16"))
        code_of(lambda: client.vocode(mel[:40]))
        call = client.stub.SynthesizeStream(pb.SynthesizeRequest(
            mel=pb.Mel(n_mels=80, data=np.tile(mel, (1, 20)).astype("<f4").tobytes())))
        next(call)
        call.cancel()
    with AudioGanClient(server.target, timeout=0.05, retries=0) as hasty:
        code_of(lambda: hasty.vocode(np.tile(mel, (1, 20))))
    # Which caller (several may share a method and a moment), and the call's id: each call its own.
    peer = r" from ipv4:127\.0\.0\.1:\d+, request id [0-9a-f]{16}"
    patterns = [rf"INFO .*Vocode OK in \d+ ms{peer}, 0\.16 s of audio$",
                rf"INFO .*SynthesizeStream OK in \d+ ms{peer}, 0\.32 s of audio$",
                rf"INFO .*Vocode INVALID_ARGUMENT in \d+ ms{peer}: mel\.n_mels",
                rf"INFO .*SynthesizeStream CANCELLED in \d+ ms{peer}",
                rf"INFO .*Vocode DEADLINE_EXCEEDED in \d+ ms{peer}$"]
    for _ in range(50):  # the server logs an abandoned call as it notices its end
        if all(re.search(p, server.log_text(), re.MULTILINE) for p in patterns):
            break
        time.sleep(0.1)
    for pattern in patterns:
        assert re.search(pattern, server.log_text(), re.MULTILINE), pattern


def request_ids_of(metadata: Any) -> list[str]:
    return [value for key, value in metadata or () if key == "x-request-id"]


def logged_line(proc: Any, pattern: str) -> str:
    """The server's log line matching ``pattern``, once it is there: a call is logged as it ends, after its
    reply is on its way."""
    for _ in range(50):
        if match := re.search(pattern, proc.log_text(), re.MULTILINE):
            return match.group(0)
        time.sleep(0.1)
    raise AssertionError(f"no log line matches {pattern!r}:\n{proc.log_text()[-3000:]}")


def test_each_call_has_a_request_id_sent_back_and_logged(server, mel):
    """A caller's x-request-id, or one the server makes, comes back in the trailers (and a stream's headers,
    before its first chunk) and is on the call's log line: a user's "my call failed" matches a line."""
    mel_request = pb.SynthesizeRequest(mel=pb.Mel(n_mels=80, data=mel[:, :20].astype("<f4").tobytes()))
    with grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.AudioGanStub(channel)
        _, call = stub.ListVoices.with_call(pb.ListVoicesRequest(), metadata=(("x-request-id", "ticket-4711/a"),))
        assert request_ids_of(call.trailing_metadata()) == ["ticket-4711/a"]
        logged_line(server, r"ListVoices OK in \d+ ms from ipv4:127\.0\.0\.1:\d+, request id ticket-4711/a$")

        stream = stub.SynthesizeStream(mel_request)
        made = request_ids_of(stream.initial_metadata())  # the headers: before any chunk is read
        assert len(made) == 1 and re.fullmatch(r"[0-9a-f]{16}", made[0]), made
        assert len(list(stream)) > 1 and request_ids_of(stream.trailing_metadata()) == made
        logged_line(server, rf"SynthesizeStream OK in \d+ ms from ipv4:[\d.:]+, request id {made[0]}, 0\.32 s")

        with pytest.raises(grpc.RpcError) as failed:
            stub.Vocode(pb.VocodeRequest(mel=pb.Mel(n_mels=40)), metadata=(("x-request-id", "ticket-4712"),))
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert request_ids_of(failed.value.trailing_metadata()) == ["ticket-4712"]
        logged_line(server, r"Vocode INVALID_ARGUMENT in \d+ ms from ipv4:[\d.:]+, request id ticket-4712: mel\.n_mels")

        # Too long, empty, with a space (gRPC's own client sends no control characters): each replaced by an
        # id of the server's own, and never logged.
        for junk in ("x" * 129, "", "two words"):
            _, call = stub.ListVoices.with_call(pb.ListVoicesRequest(), metadata=(("x-request-id", junk),))
            (given,) = request_ids_of(call.trailing_metadata())
            assert re.fullmatch(r"[0-9a-f]{16}", given), (junk, given)
            logged_line(server, rf"ListVoices OK in \d+ ms from ipv4:[\d.:]+, request id {given}$")
        assert "x" * 129 not in server.log_text() and "two words" not in server.log_text()
        # The longest taken: 128 visible ASCII characters.
        longest = "".join(chr(33 + i % 94) for i in range(128))
        _, call = stub.ListVoices.with_call(pb.ListVoicesRequest(), metadata=(("x-request-id", longest),))
        assert request_ids_of(call.trailing_metadata()) == [longest]


def test_json_logs_give_each_calls_fields_apart(mel):
    """--log-format json: a call's line carries its method, code, peer, duration, audio and error as fields of
    their own, so that a log collector can select failed calls without parsing the message."""
    with launch("--voice", "none", "--timbre", "none", "--log-format", "json") as proc, \
            AudioGanClient(proc.target, retries=0) as client:
        client.vocode(mel[:, :10], request_id="job-7:ok")
        code_of(lambda: client.vocode(mel[:40], request_id="job-7:bad"))
        for _ in range(50):  # the server logs a call as it ends, after its reply is on its way
            entries = [json.loads(line) for line in proc.log_text().splitlines() if line.startswith("{")]
            calls = {entry.get("code"): entry for entry in entries if entry.get("method") == "Vocode"}
            if len(calls) == 2:
                break
            time.sleep(0.1)
    assert set(calls) == {"OK", "INVALID_ARGUMENT"}, entries
    for entry in calls.values():
        assert entry["level"] == "INFO" and "exception" not in entry, entry
        assert entry["peer"].startswith("ipv4:127.0.0.1:") and entry["duration_ms"] >= 0, entry
    assert calls["OK"]["request_id"] == "job-7:ok" and calls["INVALID_ARGUMENT"]["request_id"] == "job-7:bad"
    assert calls["OK"]["audio_seconds"] == pytest.approx(10 * 256 / 16000) and "error" not in calls["OK"]
    assert calls["INVALID_ARGUMENT"]["error"].startswith("mel.n_mels: 40 mel bins")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_lines_a_call_causes_carry_its_request_id(log_format):
    """A conversion's warning, logged from the conversions thread, names the call it comes from, in both log
    formats; a line logged outside any call names none. The bundled note model, whose notes last 4.1 s: a
    tone held 4.6 s is shortened."""
    rate = 16000
    t = np.arange(int(4.6 * rate)) / rate
    held = 0.3 * sum(np.sin(2 * np.pi * k * 261.63 * t) / k for k in range(1, 5)) * np.minimum(1, t / 0.01)
    buffer = io.BytesIO()
    sf.write(buffer, held.astype(np.float32), rate, format="WAV")
    with launch("--voice", "none", "--log-format", log_format) as proc, \
            AudioGanClient(proc.target, retries=0) as client:
        client.convert(buffer.getvalue(), to="violin", request_id="held-note-1")
        for _ in range(50):  # the server logs a call as it ends, after its reply is on its way
            lines = proc.log_text().splitlines()
            if any("ConvertTimbre OK" in line for line in lines):
                break
            time.sleep(0.1)
    (warning,) = [line for line in lines if "notes last longer than the model's notes" in line]
    (serving,) = [line for line in lines if "serving:" in line]
    if log_format == "json":
        assert json.loads(warning)["request_id"] == "held-note-1", warning
        assert "request_id" not in json.loads(serving), serving
    else:
        assert warning.endswith("shortened to 4.10 s [request id held-note-1]"), warning
        assert "request id" not in serving, serving
        (call,) = [line for line in lines if "ConvertTimbre OK" in line]  # its id once, in its message
        assert call.count("held-note-1") == 1, call


def test_metrics_span_the_calls_the_server_takes_and_show_the_process(server, metrics_port, client):
    """Latency buckets from a listing's millisecond to the longest call the default limits allow (a stream
    of max_audio_seconds played as it comes); beyond the last bucket a histogram says only "more". And
    what the process holds, which a registry of the server's own did not show."""
    client.list_voices()
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    bounds = sorted({float(b) for b in re.findall(r'audiogan_request_seconds_bucket\{le="([^"+]+)"', text)})
    assert bounds[0] <= 0.001 and bounds[-1] >= ServerConfig().limits.max_audio_seconds, bounds
    assert metric(metrics_port, "process_resident_memory_bytes") > 0
    assert metric(metrics_port, "process_open_fds") > 0
    assert metric(metrics_port, "audiogan_serving") == 1


# -- limits, cancellation, shutdown ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tight_metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def tight_server(tight_metrics_port: int):
    with launch("--set", "limits.max_concurrent=1", "--set", "limits.max_upload_bytes=20000",
                "--set", "batching.max_batch=1", "--metrics-port", str(tight_metrics_port)) as proc:
        yield proc


@pytest.mark.parametrize("leave", ["cancel", "close"])
def test_concurrency_limit_and_cancellation_frees_the_slot(tight_server, mel, leave):
    """A stream cancelled, or the client's stream left after its first chunk, gives its slot back."""
    with AudioGanClient(tight_server.target, retries=0) as client:
        long_mel = np.tile(mel, (1, 60))  # ~300 s of float32: flow control holds the stream open
        if leave == "cancel":
            call = client.stub.SynthesizeStream(pb.SynthesizeRequest(
                mel=pb.Mel(n_mels=80, data=long_mel.astype("<f4").tobytes()),
                format=pb.AudioFormat(encoding=pb.FLOAT32)))
            next(call)
        else:
            stream = client.stream(mel=long_mel)
            next(stream)
        assert code_of(lambda: client.vocode(mel)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        if leave == "cancel":
            call.cancel()
        else:
            stream.close()
        assert_slot_freed(client, mel)


def assert_slot_freed(client: AudioGanClient, mel: np.ndarray) -> None:
    """A call of a one-slot server (tight_server) goes through within seconds: the call before gave its
    slot back."""
    for _ in range(50):  # the server notices a cancellation asynchronously
        try:
            assert client.vocode(mel[:, :10]).samples.size == 2560
            return
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            time.sleep(0.1)
    pytest.fail("the cancelled call never gave its slot back")


@pytest.mark.parametrize("stream", [True, False])
def test_ctrl_c_in_the_client_cli_says_one_line_leaves_no_file_and_frees_the_slot(tight_server, tight_metrics_port,
                                                                                 mel, tmp_path, stream):
    text = " ".join(f"This is sentence number {i}, spoken slowly for the test." for i in range(30))
    cli = subprocess.Popen([sys.executable, "-m", "audiogan_client.cli", "--target", tight_server.target, "say",
                            text, *(["--stream"] if stream else []), "-o", str(tmp_path / "out.wav")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           # a runner started in the background ignores SIGINT, and so would its children
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    with AudioGanClient(tight_server.target, retries=0) as client:
        deadline = time.monotonic() + 60
        while metric(tight_metrics_port, "audiogan_in_flight") < 1 and cli.poll() is None:  # its call is made
            assert time.monotonic() < deadline, "the command's call never reached the server"
            time.sleep(0.1)
        cli.send_signal(signal.SIGINT)
        _, stderr = cli.communicate(timeout=60)
        assert cli.returncode == 130 and stderr.strip().splitlines() == ["audiogan-client: interrupted"], stderr
        assert list(tmp_path.iterdir()) == []
        assert_slot_freed(client, mel)


# -- a busy server: transient refusals carry gRPC's pushback and are retried, permanent ones neither --------

@pytest.fixture(scope="module")
def busy_metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def busy_server(busy_metrics_port: int):
    """One call at a time, and replies of at most 5 MB: 10 s at 96 kHz (13 MB) is too big ever to take."""
    with launch("--voice", "none", "--timbre", "none", "--metrics-port", str(busy_metrics_port),
                "--set", "limits.max_concurrent=1", "--set", "limits.max_reply_mb=5") as proc:
        yield proc


@contextlib.contextmanager
def slot_held(target: str, mel: np.ndarray) -> Iterator[grpc.Future]:
    """A one-slot server's slot held by a stream its caller does not read (flow control keeps it open);
    yields the stream, which the caller may cancel to free the slot, and cancels it at the end."""
    with AudioGanClient(target, retries=0) as client:
        call = client.stub.SynthesizeStream(pb.SynthesizeRequest(
            mel=pb.Mel(n_mels=80, data=np.tile(mel, (1, 60)).astype("<f4").tobytes()),
            format=pb.AudioFormat(encoding=pb.FLOAT32)))
        next(call)  # admitted: its first chunk came
        try:
            yield call
        finally:
            call.cancel()


def refusals(port: int, method: str, at_least: float = 0.0) -> float:
    """The server's count of ``method`` calls it refused with RESOURCE_EXHAUSTED, once at least ``at_least``
    (or after 2 s): it counts a call as it ends, which may come just after its caller heard the refusal."""
    for _ in range(20):
        count = metric(port, "audiogan_requests_total", code="RESOURCE_EXHAUSTED", method=method)
        if count >= at_least:
            break
        time.sleep(0.1)
    return count


def test_a_call_refused_while_the_server_is_busy_is_retried_once_its_slot_frees(busy_server, busy_metrics_port,
                                                                                mel):
    """While the one slot is held, a call without retries is refused with a pushback in the server's
    bounds; one with retries waits, and goes through once the call holding the slot ends."""
    small = mel[:, :10]
    with slot_held(busy_server.target, mel) as held, AudioGanClient(busy_server.target, retries=0) as once, \
            AudioGanClient(busy_server.target, timeout=60, retries=10, backoff=0.05) as patient:
        before = refusals(busy_metrics_port, "Synthesize")
        with pytest.raises(ServerBusy) as info:
            once.synthesize(mel=small)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and info.value.retries == 0
        assert "1 calls in flight, the limit is 1" in info.value.details()
        assert PUSHBACK_MIN_S <= info.value.pushback <= PUSHBACK_MAX_S
        release = threading.Timer(1.0, held.cancel)
        release.start()
        start = time.monotonic()
        audio = patient.synthesize(mel=small, request_id="patient-1").samples
        took = time.monotonic() - start
        release.join()
    assert audio.size == 10 * 256
    assert took >= 0.9, f"went through after {took:.2f} s, before the slot was freed"
    # Its tries, refused and then answered, are logged under the one id the client gave them all.
    logged_line(busy_server, r"Synthesize RESOURCE_EXHAUSTED in \d+ ms from [^,]+, request id patient-1: 1 calls")
    logged_line(busy_server, r"Synthesize OK in \d+ ms from [^,]+, request id patient-1, 0\.16 s of audio$")
    # The call without retries, then the patient one at least once: refused, then retried.
    assert refusals(busy_metrics_port, "Synthesize", before + 2) - before >= 2


def test_a_request_too_big_for_the_server_is_refused_without_pushback_and_not_retried(busy_server,
                                                                                     busy_metrics_port, mel):
    ten_seconds = np.tile(mel, (1, 1 + 625 // mel.shape[1]))[:, :625]  # 625 frames x 256 / 16 kHz = 10 s
    raw = pb.VocodeRequest(mel=pb.Mel(n_mels=80, data=ten_seconds.astype("<f4").tobytes()),
                           format=pb.AudioFormat(sample_rate_hz=96000))
    with AudioGanClient(busy_server.target, timeout=60, retries=5, backoff=0.2) as client:
        before = refusals(busy_metrics_port, "Vocode")
        with pytest.raises(grpc.RpcError) as info:
            client.stub.Vocode(raw)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limits.max_reply_mb (5)" in \
            info.value.details()
        assert server_pushback(info.value) is None, "a refusal that would come again carries no pushback"
        with pytest.raises(grpc.RpcError) as info:
            client.vocode(ten_seconds, sample_rate=96000)
        assert not isinstance(info.value, ServerBusy)
        time.sleep(0.5)  # a retry, had there been one, would have come by now
        # The raw call, then the client's: asked once, not retried.
        assert refusals(busy_metrics_port, "Vocode", before + 2) - before == 2
        # The same client retries the same code where it is a busy server's.
        with slot_held(busy_server.target, mel) as held:
            release = threading.Timer(0.5, held.cancel)
            release.start()
            assert client.vocode(mel[:, :10]).samples.size == 10 * 256
            release.join()


def test_retries_of_a_busy_server_end_within_the_callers_deadline(busy_server, busy_metrics_port, mel):
    with slot_held(busy_server.target, mel), \
            AudioGanClient(busy_server.target, timeout=1.5, retries=50, backoff=0.05) as client:
        before = refusals(busy_metrics_port, "Vocode")
        start = time.monotonic()
        with pytest.raises(ServerBusy) as info:
            client.vocode(mel[:, :10])
        took = time.monotonic() - start
    assert took < 1.5, f"{took:.2f} s for a 1.5 s deadline"
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and info.value.retries < 50
    assert refusals(busy_metrics_port, "Vocode", before + info.value.retries + 1) - before == info.value.retries + 1


def test_the_pushback_is_when_the_first_hold_under_way_is_expected_to_end():
    """Short and long calls mixed: a call half a second in is one of the long ones, and the refused caller is
    told to come back when that one, or the first of several, is expected to end (times 1 to 1.5)."""
    durations = Durations(initial_s=0.5)
    for _ in range(10):
        durations.observe(0.01)
        durations.observe(2.0)
    assert 1.5 <= durations.pushback([0.5]) <= 1.5 * 1.5
    assert 1.0 <= durations.pushback([0.5, 1.0]) <= 1.0 * 1.5
    assert 3.0 <= durations.pushback([3.0]) <= PUSHBACK_MAX_S  # older than all: as long again as it has run
    assert durations.pushback([60.0]) == PUSHBACK_MAX_S
    durations.observe(30.0)  # one long outlier does not make a call just past the others wait for it
    assert 2.5 <= durations.pushback([2.5]) <= 2.5 * 1.5
    assert 0.4 <= Durations(initial_s=0.5).pushback([]) <= 0.5 * 1.5  # nothing under way, no hold ended yet
    assert Durations(initial_s=0.001).pushback([]) == PUSHBACK_MIN_S  # never sooner than anything could change


def test_the_loading_estimate_is_the_steps_left_at_the_rate_of_those_done(monkeypatch):
    """Four steps of 1 MB: before any ends, at the first guess's rate; then at the rate the ended ones went;
    a step past its estimate is expected to run over it as long again as it has so far."""
    clock = [0.0]
    monkeypatch.setattr(loading.time, "perf_counter", lambda: clock[0])
    progress = LoadProgress()
    progress.plan(4_000_000)
    assert progress.remaining() == pytest.approx(4 * INITIAL_S_PER_MB)
    with progress.step(1_000_000):
        clock[0] = 2.0  # the first step takes 2 s, far over the guess: its overrun again, then 3 at the guess
        assert progress.remaining() == pytest.approx(2.0 - INITIAL_S_PER_MB + 3 * INITIAL_S_PER_MB)
    assert progress.remaining() == pytest.approx(3 * 2.0)  # 2 s per MB, as the first went
    with progress.step(1_000_000):
        clock[0] = 3.0
        assert progress.remaining() == pytest.approx(1.0 + 2 * 2.0)  # 1 s of its 2 to go
        clock[0] = 5.0
        assert progress.remaining() == pytest.approx(1.0 + 2 * 2.0)  # 3 s in, 1 s past its 2: 1 s more
    assert PUSHBACK_MIN_S <= progress.pushback() <= PUSHBACK_MAX_S


def test_reply_budget_takes_calls_in_turn_and_refuses_what_never_fits():
    from audiogan_server.budget import ReplyBudget
    from audiogan_server.errors import RequestError

    mb = 2**20
    reports: list[tuple[int, int]] = []

    async def scenario() -> list[str]:
        budget, order = ReplyBudget(10, lambda held, waiting: reports.append((held, waiting))), []
        first_done = asyncio.Event()

        async def call(name: str, size: int, until: asyncio.Event | None = None) -> None:
            async with budget.hold(size * mb, name):
                order.append(name)
                if until is not None:
                    await until.wait()

        first = asyncio.create_task(call("first", 6, first_done))
        await asyncio.sleep(0)
        large = asyncio.create_task(call("large", 6))
        await asyncio.sleep(0)
        small = asyncio.create_task(call("small", 1))  # fits now, but waits behind the large one
        gone = asyncio.create_task(call("gone", 1))
        await asyncio.sleep(0.01)
        assert order == ["first"] and budget.used == 6 * mb and len(budget.waiting) == 3
        gone.cancel()  # a caller that leaves while waiting leaves the queue
        await asyncio.sleep(0.01)
        assert len(budget.waiting) == 2
        first_done.set()
        await asyncio.gather(first, large, small)
        with pytest.raises(RequestError, match=r"about 11 MB to make, more than this server's limits.max_reply_mb"):
            async with budget.hold(11 * mb, "this call"):
                pass
        assert budget.used == 0 and not budget.waiting
        return order

    assert asyncio.run(scenario()) == ["first", "large", "small"]
    assert reports[-1] == (0, 0) and max(waiting for _, waiting in reports) == 3


def test_replies_wait_for_memory_and_one_too_large_is_refused(mel):
    """A unary reply holds its audio resampled and encoded at once: 64 calls of 600 s at 96 kHz (the
    default limits) would have taken about 50 GB. limits.max_reply_mb bounds what replies hold together."""
    port = free_port()
    ten_seconds = np.tile(mel, (1, 1 + 625 // mel.shape[1]))[:, :625]  # 625 frames x 256 / 16 kHz = 10 s
    with launch("--voice", "none", "--timbre", "none", "--metrics-port", str(port),
                "--set", "limits.max_reply_mb=5") as proc, AudioGanClient(proc.target, retries=0) as client:
        # 12 bytes x 10 s x (16 + 96 kHz) = 13 MB: never fits
        with pytest.raises(grpc.RpcError) as info:
            client.vocode(ten_seconds, sample_rate=96000)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limits.max_reply_mb (5)" in info.value.details()
        alone = client.vocode(ten_seconds).samples  # 3.7 MB at 16 kHz: fits, but not two at once
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda _: client.vocode(ten_seconds).samples, range(3)))
        for result in results:  # each waited its turn, none was refused
            np.testing.assert_array_equal(result, alone)
        assert metric(port, "audiogan_reply_bytes") == 0 and metric(port, "audiogan_reply_waiting") == 0


def test_a_reply_over_grpcs_message_limit_is_refused_before_it_is_made(mel):
    """With limits raised, 723 s at 96 kHz as float32 (278 MB) was vocoded for 87 s, then failed as "SERVER:
    Sent message larger than max" while the server logged the call OK."""
    long_mel = np.tile(mel, (1, -(-720 * 16000 // 256 // mel.shape[1])))
    with launch("--voice", "none", "--timbre", "none", "--set", "limits.max_audio_seconds=3600") as proc, \
            AudioGanClient(proc.target, retries=0, timeout=60) as client:
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            client.vocode(long_mel, sample_rate=96000, encoding="float32")
        assert time.monotonic() - start < 10, "refused before any vocoding"
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "over gRPC's 256 MB message limit" in info.value.details(), info.value.details()
        assert "SynthesizeStream" in info.value.details()
        assert client.vocode(long_mel[:, :100], sample_rate=96000, encoding="float32").samples.size == 100 * 256 * 6


def test_upload_limit(tight_server, demo_path):
    with AudioGanClient(tight_server.target, retries=0) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.convert(demo_path, to="violin")  # 60 KB > 20000 bytes
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "20000 bytes" in info.value.details()


def _flac_declaring(seconds: float) -> bytes:
    """One second of silence as FLAC whose header declares ``seconds``: STREAMINFO's 36-bit sample count,
    the low bits of the 5 bytes after "fLaC", its block header and 13 bytes of STREAMINFO."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(16000, np.float32), 16000, format="FLAC")
    data, at = bytearray(buffer.getvalue()), 4 + 4 + 13
    fields = int.from_bytes(data[at:at + 5], "big") & ~(2**36 - 1)
    data[at:at + 5] = (fields | round(seconds * 16000)).to_bytes(5, "big")
    return bytes(data)


def _encoded(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt)
    return buffer.getvalue()


def test_bad_uploads(tight_server, demo_path):
    """On a server with a note model: ConvertTimbre looks it up before it takes the upload."""
    flac = demo_path.read_bytes()
    uploads = {"corrupt": (b"RIFF" + bytes(range(200)), "audio"), "truncated": (flac[:30], "audio"),
               "0 Hz": (_wav_bytes(0), "audio"), "empty": (b"", "audio_chunk"),
               # Decoded, it would take 230 MB; the header alone is enough to refuse it.
               "an hour by its header": (_flac_declaring(3600), "audio_chunk: its header declares 3600.0 s"),
               # Compressed silence is tiny at any rate and channel count; decoded, it was not.
               "655 kHz": (_encoded(np.zeros(65535, np.float32), 655350, "FLAC"),
                           "audio_chunk: its header declares 655350 Hz; uploads may be at most 192000 Hz"),
               "3 channels": (_encoded(np.zeros((1600, 3), np.float32), 16000, "WAV"),
                              "audio_chunk: its header declares 3 channels; uploads may have at most 2")}
    with AudioGanClient(tight_server.target, retries=0) as client:
        for name, (data, message) in uploads.items():
            with pytest.raises(grpc.RpcError) as info:
                client.convert(data, to="violin")
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{name}: {info.value.details()}"
            assert message in info.value.details(), f"{name}: {info.value.details()!r}"
        # Over max_upload_bytes too, but the unknown instrument is said first: before the upload is taken.
        assert code_of(lambda: client.convert(demo_path, to="tuba")) == grpc.StatusCode.NOT_FOUND


def test_conversion_limit_and_a_cancelled_upload_frees_its_turn():
    """An empty upload answers at once: INVALID_ARGUMENT while a turn is free, RESOURCE_EXHAUSTED while the
    one conversion allowed is holding it."""
    with launch("--set", "limits.max_conversions=1") as proc, AudioGanClient(proc.target, retries=0) as client:
        release = threading.Event()

        def held() -> Iterator[pb.ConvertTimbreRequest]:
            yield pb.ConvertTimbreRequest(options=pb.ConvertOptions(target=pb.Timbre(instrument="violin")))
            release.wait(60)

        def empty_upload() -> grpc.StatusCode:
            return code_of(lambda: client.convert(b"", to="violin"))

        assert empty_upload() == grpc.StatusCode.INVALID_ARGUMENT
        call = client.stub.ConvertTimbre(held())
        for _ in range(100):  # until the server has read the first call's options
            if (code := empty_upload()) == grpc.StatusCode.RESOURCE_EXHAUSTED:
                break
            time.sleep(0.05)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(ServerBusy, match="1 conversions under way, the limit is 1") as info:  # transient
            client.convert(b"", to="violin")
        assert PUSHBACK_MIN_S <= info.value.pushback <= PUSHBACK_MAX_S
        call.cancel()
        release.set()
        for _ in range(100):
            if (code := empty_upload()) == grpc.StatusCode.INVALID_ARGUMENT:
                break
            time.sleep(0.05)
        assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_stalled_upload_is_cut_off_and_its_slot_freed():
    """Idle uploads used to hold their call's slot for as long as they stayed connected: 64 of them shut every
    caller out while health said SERVING."""
    with launch("--set", "limits.upload_idle_seconds=1", "--set", "limits.max_concurrent=2") as proc, \
            AudioGanClient(proc.target, retries=0) as client:
        options = pb.ConvertTimbreRequest(options=pb.ConvertOptions(target=pb.Timbre(instrument="violin")))

        def stalled(after_options: bool) -> Iterator[pb.ConvertTimbreRequest]:
            if after_options:
                yield options
            time.sleep(30)

        for after_options in (False, True):
            start = time.monotonic()
            with pytest.raises(grpc.RpcError) as info:
                list(client.stub.ConvertTimbre(stalled(after_options), timeout=60))
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "the upload stalled: nothing arrived for 1 s (limits.upload_idle_seconds)" in info.value.details()
            assert time.monotonic() - start < 15
        assert client.vocode(np.full((80, 10), -4.0, np.float32)).samples.size == 2560  # the slots are free


def test_queue_limit():
    """A full queue is a transient refusal: it carries a pushback, and a client that retries gets through."""
    with launch("--set", "limits.max_queue=1", "--set", "batching.max_batch=1") as proc, \
            AudioGanClient(proc.target, retries=0) as client:
        big = np.full((80, 2000), -4.0, np.float32)
        pushbacks = []

        def call(_: int) -> str:
            try:
                client.vocode(big)
                return "OK"
            except grpc.RpcError as err:
                if isinstance(err, ServerBusy):
                    pushbacks.append(err.pushback)
                return err.code().name
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(call, range(8)))
        assert "RESOURCE_EXHAUSTED" in codes and "OK" in codes, codes
        assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}
        assert len(pushbacks) == codes.count("RESOURCE_EXHAUSTED"), "each refusal said when to come back"
        assert all(PUSHBACK_MIN_S <= p <= PUSHBACK_MAX_S for p in pushbacks), pushbacks
        assert client.vocode(big[:, :10]).samples.size == 2560


def test_the_queue_before_each_model_shows_in_the_metrics():
    """audiogan_queued_items: what waits for a model pass, read at each scrape, so that a long queue and a
    slow pass, which look alike in the latency, can be told apart; empty again once the calls are done."""
    port = free_port()
    batcher = "vocode:vocoder-16k-vector"
    with launch("--voice", "none", "--timbre", "none", "--metrics-port", str(port),
                "--set", "batching.max_batch=1") as proc, AudioGanClient(proc.target, retries=0) as client:
        assert metric(port, "audiogan_queued_items", batcher=batcher) == 0
        big = np.full((80, 2000), -4.0, np.float32)  # seconds of vocoding each, one pass at a time
        seen = []
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            calls = [pool.submit(client.vocode, big) for _ in range(4)]
            while not all(c.done() for c in calls):
                seen.append(metric(port, "audiogan_queued_items", batcher=batcher))
                time.sleep(0.02)
            assert all(c.result().samples.size == 2000 * 256 for c in calls)
        assert max(seen) >= 1, seen
        assert metric(port, "audiogan_queued_items", batcher=batcher) == 0


def test_sigterm_finishes_the_stream_in_flight(mel):
    # A generous grace period and deadline: on a loaded 2-core machine the stream's remaining 8-frame chunks
    # took over the default 10 s (the server then rightly cancels it), and once over the client's 60 s.
    with launch("--set", "batching.stream_chunk_frames=8", "--set", "grace_seconds=240") as proc, \
            AudioGanClient(proc.target, timeout=300) as client:
        long_mel = np.tile(mel, (1, 4))
        chunks = client.stream_chunks(mel=long_mel, encoding="pcm16")
        first = next(chunks)
        proc.process.send_signal(signal.SIGTERM)
        rest = list(chunks)
        assert rest[-1].final
        total = sum(len(c.audio) for c in [first, *rest]) // 2
        assert total == long_mel.shape[1] * 256
        assert proc.process.wait(90) == 0
        assert "draining" in proc.log_text()


def test_sigterm_cuts_off_a_call_past_its_grace_as_unavailable_and_says_what_it_waited_for(mel):
    """The drain's log says which calls it waits for and how that ended; a call the shutdown cuts off is
    logged (WARNING) and counted as UNAVAILABLE, what its caller gets, not as CANCELLED by its caller; the
    metrics say the server no longer takes calls."""
    port = free_port()
    with launch("--voice", "none", "--timbre", "none", "--metrics-port", str(port),
                "--set", "grace_seconds=2") as proc:
        assert metric(port, "audiogan_serving") == 1
        with slot_held(proc.target, mel):  # a stream its caller does not read: it outlasts the grace period
            proc.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert metric(port, "audiogan_serving") == 0  # /metrics answers through the drain
            assert proc.process.wait(30) == 0
        for _ in range(50):  # the child's last lines are read after it ends
            if "grace period" in proc.log_text():
                break
            time.sleep(0.1)
    log = proc.log_text()
    assert "shutting down: draining 1 call in flight (SynthesizeStream 1) for up to 2 s" in log, log
    assert re.search(r"WARNING .*SynthesizeStream UNAVAILABLE in \d+ ms from ipv4:127\.0\.0\.1:\d+, request id "
                     r"[0-9a-f]{16}, [\d.]+ s of audio: cut off: the server is shutting down", log), log
    assert "WARNING audiogan.server: grace period of 2 s over: cut off 1 call in flight (SynthesizeStream 1)" in log
    assert "CANCELLED" not in log


# -- the server dying or stopping under a caller --------------------------------------------------------------

@pytest.mark.parametrize(("sig", "grace"), [(signal.SIGKILL, "10"), (signal.SIGTERM, "0.5")])
def test_a_stream_cut_short_by_the_server_raises_and_is_not_retried(mel, sig, grace):
    """Killed, or stopped past its grace period, mid-stream: the caller gets StreamBroken after the chunks that
    came, not a retried stream (the same audio twice) nor a stream ended as if whole."""
    long_mel = np.tile(mel, (1, 20))
    with launch("--voice", "none", "--timbre", "none", "--set", "batching.stream_chunk_frames=8",
                "--set", f"grace_seconds={grace}") as proc, AudioGanClient(proc.target, timeout=60) as client:
        got = []
        with pytest.raises(StreamBroken) as info:
            for chunk in client.stream_chunks(mel=long_mel, encoding="pcm16"):
                got.append(chunk)
                if len(got) == 4:
                    proc.process.send_signal(sig)
        assert proc.process.wait(30) is not None
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"the stream stopped after {len(got)} chunk(s)" in info.value.details()
    assert [c.sequence for c in got] == list(range(len(got))), "no chunk came twice"
    assert sum(len(c.audio) for c in got) // 2 < long_mel.shape[1] * 256 and not got[-1].final


def test_a_call_whose_server_is_killed_is_retried_once_it_is_back(mel):
    """A server killed mid-call and restarted on its port: the call's retries (UNAVAILABLE: refused, then
    loading) reach the new server within the caller's one deadline."""
    long_mel = np.tile(mel, (1, 12))  # about 60 s of audio: seconds of vocoding on 2 cores
    back, finished = threading.Event(), threading.Event()

    def kill_and_restart(proc) -> None:
        time.sleep(1.0)  # the call is under way
        proc.process.kill()
        proc.process.wait()
        with launch("--voice", "none", "--timbre", "none", "--port", str(proc.port)):
            back.set()
            finished.wait(120)

    with launch("--voice", "none", "--timbre", "none") as proc, \
            AudioGanClient(proc.target, timeout=120, retries=8, backoff=0.2) as client:
        restarter = threading.Thread(target=kill_and_restart, args=(proc,))
        restarter.start()
        try:
            audio = client.vocode(long_mel).samples
        finally:
            finished.set()
            restarter.join(60)
    assert back.is_set() and audio.shape == (long_mel.shape[1] * 256,)


# The server with its vocoder's loading slowed by the seconds given first on its command line.
SLOW_LOAD = """
import sys, time
from audiogan import Vocoder
load, delay = Vocoder.load.__func__, float(sys.argv.pop(1))
Vocoder.load = classmethod(lambda cls, *args, **kwargs: (time.sleep(delay), load(cls, *args, **kwargs))[1])
from audiogan_server.main import main
main()
"""


def test_a_call_while_the_models_load_is_told_when_they_will_be_in_and_answered_after(mel):
    """A server whose loading takes seconds longer than usual (3 s more, in its vocoder's): a call then is
    refused UNAVAILABLE with a pushback of the same order as the load's time still to come, and a client
    with the default retries, started as the server begins to listen, gets its answer once the models are in,
    where three blind retries (0.2 + 0.4 + 0.8 s) gave up before."""
    port = free_port()
    with launch("--voice", "none", "--timbre", "none", "--metrics-port", str(port), until="listening on",
                entry=("-c", SLOW_LOAD, "3")) as proc, concurrent.futures.ThreadPoolExecutor(1) as pool, \
            AudioGanClient(proc.target) as patient, AudioGanClient(proc.target, retries=0) as once:
        start = time.monotonic()
        answer = pool.submit(patient.vocode, mel[:, :10])
        while True:  # past the imports (test_server_start.py), into the load
            with pytest.raises(grpc.RpcError) as info:
                once.list_voices()
            if "the server is starting" not in info.value.details():
                break
            time.sleep(0.05)
        asked = time.monotonic()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "loading its models" in info.value.details()
        pushback = server_pushback(info.value)
        assert pushback is not None, "the refusal says when to come back"
        while "serving:" not in proc.log_text():
            assert proc.process.poll() is None, proc.log_text()
            time.sleep(0.05)
        left = time.monotonic() - asked  # the load's time still to come when the server was asked
        # Of the same order as what was left: within a factor of 3 either way (spread up to 1.5x, within bounds).
        assert min(left, PUSHBACK_MAX_S) / 3 <= pushback <= min(3 * 1.5 * left, PUSHBACK_MAX_S), (pushback, left)
        assert answer.result(timeout=60).samples.size == 10 * 256
        took = time.monotonic() - start
        assert once.list_voices()["vocoders"], "once loaded, the same call is answered"
        refused = metric(port, "audiogan_requests_total", code="UNAVAILABLE", method="Vocode")
    assert took >= left, "answered only once loaded"
    assert refused >= 1, "the patient client was refused while the models loaded, and retried"


def test_sigterm_while_the_models_load_stops_the_server_at_once():
    """A load that would take a minute more (a slow disk, a stuck device): SIGTERM then ends the server in
    seconds, with exit status 0 and a line that says so, where it waited for the whole load before."""
    with launch("--voice", "none", "--timbre", "none", until="listening on",
                entry=("-c", SLOW_LOAD, "60")) as proc:
        asked = time.monotonic()
        proc.process.send_signal(signal.SIGTERM)
        status = proc.process.wait(30)
        took = time.monotonic() - asked
    assert status == 0, proc.log_text()
    assert took < 15, f"stopped {took:.1f} s after SIGTERM"
    assert "stopped while loading the models" in proc.log_text()


@pytest.fixture(scope="module")
def pinged_server():
    """A server that allows a client's pings every 0.25 s, for clients that ping every 0.5 s: a test's
    frozen server is found in about a second, not the 40 s of the defaults."""
    with launch("--voice", "none", "--timbre", "none", "--set", "min_ping_seconds=0.25",
                "--set", "batching.stream_chunk_frames=8") as proc:
        yield proc


@contextlib.contextmanager
def freezer(proc, after: float | None = None) -> Iterator[Callable[[], None]]:
    """Yields a function that stops the server (SIGSTOP: its connections open, nothing answered), called
    ``after`` seconds from now if given; the server runs again after."""
    def freeze() -> None:
        proc.process.send_signal(signal.SIGSTOP)

    timer = threading.Timer(after or 0.0, freeze)
    if after is not None:
        timer.start()
    try:
        yield freeze
    finally:
        timer.cancel()
        proc.process.send_signal(signal.SIGCONT)


def test_pings_as_often_as_the_server_allows_leave_a_long_call_alone(pinged_server, mel):
    # The defaults agree: the client pings no more often than the server allows.
    assert ServerConfig().min_ping_seconds <= KEEPALIVE_SECONDS
    long_mel = np.tile(mel, (1, 12))  # seconds of vocoding on 2 cores, every half second a ping
    with AudioGanClient(pinged_server.target, timeout=None, retries=0, keepalive=0.5) as client:
        assert client.vocode(long_mel).samples.shape == (long_mel.shape[1] * 256,)


def test_a_long_call_whose_server_freezes_fails_within_its_keepalive(pinged_server, mel):
    """gRPC sends two pings at most while the caller sends nothing: a server frozen after them went
    unnoticed."""
    with AudioGanClient(pinged_server.target, timeout=None, retries=0, keepalive=0.5) as client, \
            freezer(pinged_server, after=2.5):
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            client.vocode(np.tile(mel, (1, 40)))  # tens of seconds of vocoding
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - start < 2.5 + 10 * 0.5, "found within a few keepalives of the freeze"


def test_a_stream_whose_server_freezes_fails_within_its_keepalive(pinged_server, mel):
    """A caller without a deadline waited forever on a server frozen mid-stream."""
    long_mel = np.tile(mel, (1, 20))
    got = []
    with AudioGanClient(pinged_server.target, timeout=None, keepalive=0.5) as client, \
            freezer(pinged_server) as freeze:
        with pytest.raises(StreamBroken) as info:
            for chunk in client.stream_chunks(mel=long_mel, encoding="pcm16"):
                got.append(chunk)
                if len(got) == 2:
                    freeze()
                    frozen = time.monotonic()
        waited = time.monotonic() - frozen
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"the stream stopped after {len(got)} chunk(s)" in info.value.details()
    assert waited < 10 * 0.5, f"{waited:.1f} s after the server froze"


def test_cli_say_stream_cut_short_by_the_server_says_so_in_one_line():
    text = " ".join(f"This is sentence number {i}, spoken slowly for the test." for i in range(30))
    with launch("--timbre", "none", "--set", "batching.stream_chunk_frames=8") as proc:
        cli = subprocess.Popen([sys.executable, "-m", "audiogan_client.cli", "--target", proc.target, "say", text,
                                "--raw"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = cli.stdout.read(4096)  # audio is arriving
        proc.process.kill()
        _, stderr = cli.communicate(timeout=60)
    lines = stderr.decode().strip().splitlines()
    assert cli.returncode == 1 and len(first) == 4096 and len(lines) == 1, stderr
    assert lines[0].startswith("audiogan-client: UNAVAILABLE: ") and "short of its end" in lines[0]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test certificate")
def test_tls(tmp_path, mel):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    with launch("--tls-cert", str(cert), "--tls-key", str(key)) as proc:
        with AudioGanClient(f"localhost:{proc.port}", root_certificates=cert.read_bytes()) as client:
            assert client.vocode(mel[:, :10]).samples.size == 2560
        with AudioGanClient(proc.target, retries=0, timeout=5) as plain, pytest.raises(grpc.RpcError):
            plain.vocode(mel[:, :10])
        done = healthcheck(AUDIOGAN_PORT=str(proc.port), AUDIOGAN_TLS_CA=str(cert))
        assert done.returncode == 0 and "SERVING" in done.stdout, done.stderr
        assert healthcheck(AUDIOGAN_PORT=str(proc.port)).returncode != 0, "plaintext to a TLS server"


def test_server_help_says_what_every_option_is():
    undocumented = [a.option_strings for a in build_parser()._actions if not a.help]
    assert not undocumented  # --log-format had none


# -- failures inside the server: in this process, to patch its insides -------------------------------------

@contextlib.contextmanager
def in_process_server(*args: str, metrics: Metrics | None = None) -> Iterator[str]:
    """A vocoding server on an event loop thread of this process; patch before entering (the engines bind
    their methods as they load). Yields its target; ``metrics``, when given, are the ones it counts in."""
    config = load_config(build_parser().parse_args(["--voice", "none", "--timbre", "none", "--threads", "2", *args]))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    compute = concurrent.futures.ThreadPoolExecutor(1)
    registry = ModelRegistry()

    async def start() -> tuple[grpc.aio.Server, int]:
        service = AudioGanService(config, registry, metrics or Metrics())
        server = grpc.aio.server()
        pb_grpc.add_AudioGanServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        registry.load(config, compute, service.metrics)
        registry.start()
        service.ready = True
        await server.start()
        return server, port

    def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(120)

    server, port = run(start())
    try:
        yield f"127.0.0.1:{port}"
    finally:
        run(server.stop(0))
        run(registry.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
        compute.shutdown()


def test_a_batcher_that_dies_fails_its_calls_instead_of_hanging(monkeypatch, mel, caplog):
    async def dies(self: DynamicBatcher) -> None:
        await self.arrived.wait()  # a call is waiting when the loop dies
        raise RuntimeError("a bug in the batching loop")

    monkeypatch.setattr(DynamicBatcher, "_loop", dies)
    with in_process_server() as target, AudioGanClient(target, timeout=20, retries=0) as client:
        for when in ("waiting as it died", "after it died"):
            with pytest.raises(grpc.RpcError) as info:
                client.vocode(mel[:, :10])
            assert info.value.code() == grpc.StatusCode.INTERNAL, f"{when}: {info.value.details()}"
            assert "vocode:vocoder-16k-vector stopped (RuntimeError)" in info.value.details(), when
    assert "batcher vocode:vocoder-16k-vector died" in caplog.text


def test_a_bug_is_one_error_line_naming_its_call_with_the_traceback(monkeypatch, mel, caplog):
    """A bug's traceback goes with the line of the call it failed (RPC, peer, request id), at ERROR; a caller's
    mistake is INFO, with no traceback."""
    def broken(self: VocoderEngine, spans: list) -> list:
        raise RuntimeError("a bug in the vocoder")

    monkeypatch.setattr(VocoderEngine, "_run", broken)
    caplog.set_level(logging.INFO, logger="audiogan.server")
    metrics = Metrics()
    with in_process_server(metrics=metrics) as target, AudioGanClient(target, retries=0) as client:
        assert code_of(lambda: client.vocode(mel[:, :10], request_id="bug-1")) == grpc.StatusCode.INTERNAL
        assert code_of(lambda: client.vocode(mel[:40])) == grpc.StatusCode.INVALID_ARGUMENT
        assert metrics.registry.get_sample_value("audiogan_in_flight") == 0
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelno for r in loud] == [logging.ERROR], [r.getMessage() for r in loud]
    assert re.match(r"Vocode INTERNAL in \d+ ms from ipv4:127\.0\.0\.1:\d+, request id bug-1: internal error: "
                    r"RuntimeError$", loud[0].getMessage()), loud[0].getMessage()
    assert loud[0].exc_info and str(loud[0].exc_info[1]) == "a bug in the vocoder"
    assert any(r.getMessage().startswith("Vocode INVALID_ARGUMENT") and not r.exc_info for r in caplog.records)


def test_a_bad_item_fails_alone_not_the_calls_batched_with_it(monkeypatch, mel):
    poison = 7.0  # a mel of this value stands for an input the model fails on only inside a batch
    shared: list[int] = []  # the sizes of the passes the bad item was in
    run = VocoderEngine._run

    def flaky(self: VocoderEngine, spans: list) -> list:
        if any(bool((span.cond == poison).all()) for span in spans):
            shared.append(len(spans))
            raise RuntimeError("a bad item")
        return run(self, spans)

    monkeypatch.setattr(VocoderEngine, "_run", flaky)
    # With phase refinement a mel needs 2 frames (its STFT's reflect padding), 1 is refused up front.
    good = [mel[:, :2], mel[:, 20:50], mel[:, 60:97]]
    local = Vocoder.load(device="cpu", phase_iterations=2)
    with in_process_server("--phase-iterations", "2", "--set", "batching.max_wait_ms=300") as target, \
            AudioGanClient(target, retries=0) as client:
        def call(m: np.ndarray) -> np.ndarray | grpc.StatusCode:
            try:
                return client.vocode(m).samples
            except grpc.RpcError as err:
                return err.code()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            *results, bad = pool.map(call, [*good, np.full((80, 20), poison, np.float32)])
        assert code_of(lambda: client.vocode(mel[:, :1])) == grpc.StatusCode.INVALID_ARGUMENT
    assert bad == grpc.StatusCode.INTERNAL
    assert shared[0] > 1 and shared[-1] == 1, f"passes with the bad item: {shared}"
    for m, audio in zip(good, results, strict=True):
        np.testing.assert_allclose(audio, local(m).numpy(), atol=1e-4)


def _passes(items: list[tuple[str, float]], max_batch: int, **order: Any) -> list[list[str]]:
    """The passes a batcher makes of ``items`` (name, due) queued while a first pass runs."""
    passes: list[list[str]] = []
    running = threading.Event()

    def run(batch: list[tuple[str, float]]) -> list[str]:
        running.wait(10)
        passes.append([name for name, _ in batch])
        return [name for name, _ in batch]

    async def main() -> None:
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            batcher: DynamicBatcher[tuple[str, float], str] = DynamicBatcher(
                "test", run, executor, max_batch=max_batch, max_wait_s=0, max_queue=100, **order)
            batcher.start()
            first = asyncio.ensure_future(batcher.submit(("running", 0.0)))
            await asyncio.sleep(0.1)  # its pass has begun: the others queue behind it
            rest = [asyncio.ensure_future(batcher.submit(item)) for item in items]
            await asyncio.sleep(0.1)
            running.set()
            assert await asyncio.gather(first, *rest) == ["running", *[name for name, _ in items]]
            await batcher.stop()

    asyncio.run(main())
    return passes


def test_stream_chunks_go_most_urgent_first():
    items = [("later", 5.0), ("new", 1.0), ("latest", 9.0), ("now", 0.1), ("behind", 0.5), ("new too", 1.0)]
    # Without an order: arrival order, as many as max_batch.
    assert _passes(items, max_batch=4) == [["running"], ["later", "new", "latest", "now"], ["behind", "new too"]]
    # Earliest due first, ties in arrival order; the rest wait for the next pass.
    assert _passes(items, max_batch=4, due=lambda i: i[1]) == [
        ["running"], ["now", "behind", "new", "new too"], ["later", "latest"]]


def test_a_stream_is_due_on_its_listeners_clock(monkeypatch, mel):
    ramp = Ramp(8)
    assert ramp.due(3.0) == 3.0  # no audio yet: needed now
    ramp.handed_out(0.25, 10.0)  # the listener starts playing at 10.0
    ramp.handed_out(0.5, 10.1)
    assert ramp.due(10.2) == 10.75

    spans: list[tuple[float, float, int]] = []  # due, time the pass ran, samples kept
    run = VocoderEngine._run

    def recorded(self: VocoderEngine, batch: list) -> list:
        spans.extend((s.due, time.monotonic(), s.keep_to - s.keep_from) for s in batch)  # asyncio's clock
        return run(self, batch)

    monkeypatch.setattr(VocoderEngine, "_run", recorded)
    with in_process_server() as target, AudioGanClient(target, retries=0) as client:
        chunks = list(client.stream(mel=mel))
    rate = 16000
    assert [n for _, _, n in spans] == [c.size for c in chunks if c.size]
    due = np.array([d for d, _, _ in spans])
    seconds = np.array([n for _, _, n in spans]) / rate
    assert spans[0][0] <= spans[0][1]  # the first chunk is due at once
    # Every later chunk is due when the audio before it has played out, counted from the first audio.
    np.testing.assert_allclose(np.diff(due[1:]), seconds[1:-1], atol=1e-9)
    # Vocoding beats real time here, so the listener is ahead: later chunks are needed after their pass.
    assert all(d > ran for d, ran, _ in spans[2:])


def test_a_long_vocode_goes_in_pieces_that_stop_when_its_caller_goes(monkeypatch, mel):
    frames_run: list[int] = []  # the mel frames of each pass, context included
    run = VocoderEngine._run

    def slow(self: VocoderEngine, spans: list) -> list:
        frames_run.append(sum(span.cond.shape[-1] for span in spans))
        time.sleep(0.2)  # every pass takes a while: the deadline falls within the first pieces
        return run(self, spans)

    monkeypatch.setattr(VocoderEngine, "_run", slow)
    long_mel = np.tile(mel, (1, 20))  # about 100 s: 13 pieces of 512 frames
    with in_process_server() as target, AudioGanClient(target, retries=0) as client:
        with AudioGanClient(target, timeout=0.3, retries=0) as hasty:
            assert code_of(lambda: hasty.vocode(long_mel)) == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(1.0)  # time for pieces that would still run, were the abandoned call not stopped
        assert sum(frames_run) < long_mel.shape[1] / 2, f"passes of {frames_run} frames for a call gone"
        # A short call waits for one piece, not for all of a long one.
        finished: list[str] = []
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            done = pool.submit(lambda: finished.append("long") if client.vocode(long_mel) else None)
            time.sleep(0.1)
            assert client.vocode(mel[:, :10]).samples.size == 2560
            finished.append("short")
            done.result()
        assert finished == ["short", "long"]


def test_a_stream_closed_early_counts_as_cancelled_after_its_clean_up():
    events: list[str] = []

    class Recorded(Metrics):
        def observe_request(self, method: str, code: str, seconds: float) -> None:
            events.append(f"{method} {code}")

    class Servicer:
        metrics = Recorded()

        @contextlib.asynccontextmanager
        async def admit(self, method: str) -> AsyncIterator[None]:
            yield

        def cut_off(self) -> bool:
            return False

        @rpc
        async def Stream(self, request: None, context: None) -> AsyncIterator[int]:
            try:
                yield 1
                yield 2
            finally:
                events.append("clean-up")

    async def consume_one() -> None:
        stream = Servicer().Stream(None, None)
        assert await anext(stream) == 1
        # What the event loop's finalizer does to a stream gRPC left unfinished (a server stop, an abort).
        await stream.aclose()

    asyncio.run(consume_one())
    assert events == ["clean-up", "Stream CANCELLED"]


# -- command lines -------------------------------------------------------------------------------------------

def test_client_cli(server, mel, tmp_path):
    np.save(tmp_path / "mel.npy", mel)
    run = lambda *a: subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--target", server.target, *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    done = run("vocode", str(tmp_path / "mel.npy"), "-o", str(tmp_path / "out.wav"), "--sample-rate", "22050")
    assert done.returncode == 0, done.stderr
    with wavemod.open(str(tmp_path / "out.wav")) as w:
        assert w.getframerate() == 22050 and w.getnframes() > 100_000
    voices = run("voices")
    assert json.loads(voices.stdout)["vocoders"][0]["name"] == "vocoder-16k-vector"
    said = run("say", "hello", "-o", str(tmp_path / "say.wav"))
    assert said.returncode != 0 and "UNIMPLEMENTED" in said.stderr


def test_server_cli_rejects_bad_settings():
    def server_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "audiogan_server.main", *args],
                              capture_output=True, text=True, timeout=120)

    done = server_cli("--set", "limits.max_queue=lots")
    assert done.returncode != 0 and "max_queue" in done.stderr
    done = server_cli("--set", "batching.first_chunk_frames=128")
    assert done.returncode != 0 and "first_chunk_frames (128) <= stream_chunk_frames (64)" in done.stderr
    done = server_cli("--set", "batching.chunk_growth=1")
    assert done.returncode != 0 and "chunk_growth must be > 1" in done.stderr
    # Each of these used to start and say SERVING, then refuse every call (or, max_batch=0, answer none).
    for setting, message in (("batching.max_batch=0", "batching.max_batch must be 1 or more, got 0"),
                             ("limits.max_concurrent=0", "limits.max_concurrent must be above 0, got 0"),
                             ("limits.max_queue=-5", "limits.max_queue must be above 0, got -5"),
                             ("limits.min_sample_rate=100000", "min_sample_rate (100000) is above max_sample_rate"),
                             ("grace_seconds=-1", "grace_seconds must be 0 or more, got -1")):
        done = server_cli("--set", setting)
        assert done.returncode != 0 and message in done.stderr, (setting, done.stderr[-500:])
    done = server_cli("--port", "0", "--vocoder", "/no/such.safetensors")
    assert done.returncode == 2 and "no vocoder weights" in done.stderr
    done = server_cli("--port", "0", "--timbre", "none", "--voice", "default", "--voice", "tts-lj-16k")
    assert done.returncode == 2 and "'tts-lj-16k' is already loaded" in done.stderr
    done = server_cli("--port", "0", "--timbre", "none", "--lexicon", str(REPO / "README.md"))
    assert done.returncode == 2 and "lexicon README.md line" in done.stderr


def test_client_cli_stops_quietly_when_its_reader_goes(server, mel, tmp_path):
    np.save(tmp_path / "mel.npy", mel)
    for args in (["voices"], ["vocode", str(tmp_path / "mel.npy"), "-o", "-"]):
        cli = subprocess.Popen([sys.executable, "-m", "audiogan_client.cli", "--target", server.target, *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert cli.stdout is not None and cli.stderr is not None
        cli.stdout.close()  # a reader that stops at once (`| head -0`): every write finds the pipe broken
        assert cli.wait(120) == 1, args
        assert cli.stderr.read() == b"", f"{args}: no traceback, no message: the reader chose to stop"


def test_the_client_takes_responses_over_grpcs_4_mb_default(client, mel):
    audio, _ = client.vocode(np.tile(mel, (1, 20)), encoding="float32")  # about 100 s: 6.4 MB
    assert audio.nbytes > 4 * 1024 * 1024


def test_server_start_up_failures_are_one_line_errors(server, metrics_port, tmp_path):
    """A taken port (even by another audiogan-server: no SO_REUSEPORT sharing), a taken metrics port, weights
    cut short, an unknown device, missing TLS files, a foreign host, ports out of range: one line, exit 2, no
    traceback."""
    cut = tmp_path / "cut.safetensors"  # a copy that stopped short
    cut.write_bytes(weights.resolve("default", "vocoder").read_bytes()[:100_000])
    shutil.copy(weights.resolve("default", "vocoder").with_suffix(".json"), cut.with_suffix(".json"))
    cases = {
        ("--port", str(server.port)): f"cannot listen on 127.0.0.1:{server.port}",
        ("--port", "0", "--vocoder", str(cut)): f"cannot load models: {cut}: unreadable .safetensors weights",
        ("--port", "0", "--metrics-port", str(metrics_port)): f"cannot serve metrics on 127.0.0.1:{metrics_port}",
        ("--port", "0", "--device", "tpu"): "unknown device 'tpu': use auto, cpu, cuda or cuda:N",
        ("--port", "0", "--device", "cuda:99"): "device 'cuda:99': ",  # no GPU here, or not 99 of them
        ("--port", "0", "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem")):
            "cannot read TLS file",
        ("--port", "0", "--host", "192.0.2.1"): "cannot listen on 192.0.2.1:0",
        ("--port", "70000"): "port 70000 is out of range 0..65535",
        ("--metrics-port", "-1"): "metrics_port -1 is out of range 0..65535",
    }
    for args, message in cases.items():
        done = subprocess.run([sys.executable, "-m", "audiogan_server.main", "--voice", "none", "--timbre", "none",
                               *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        assert f"audiogan-server: error: {message}" in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and "never awaited" not in done.stderr, (args, done.stderr)
    with AudioGanClient(server.target) as client:  # the first server kept its port
        assert client.list_voices()["vocoders"]
    hidden = tmp_path / "hidden" / "grpc"  # a plain `pip install audiogan`: the command, not its extra
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'grpc'\", name='grpc')\n")
    done = subprocess.run([sys.executable, "-m", "audiogan_server.main", "--port", "0"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(hidden.parent)})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "'grpc' is not installed; the server needs its extra and the client's stubs: pip install " \
           "'audiogan[server]' ./client" in done.stderr


def test_generated_stubs_are_up_to_date():
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(repo / "scripts" / "gen_proto.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# -- text to speech, with a real (tiny, espeak-trained) voice ------------------------------------------------

@pytest.fixture(scope="module")
def voice_server(tiny_voice):
    with launch("--voice", str(tiny_voice[0]), "--set", "limits.max_text_chars=5000") as proc:
        yield proc


def test_text_synthesis_with_a_voice(voice_server, tiny_voice):
    from audiogan.tts import TTS

    local = TTS.load(tiny_voice[0], device="cpu")
    text = "Hello there. It is 10:30 and this is a test."
    with AudioGanClient(voice_server.target) as client:
        (voice,) = client.list_voices()["voices"]
        assert voice["name"] == "tts-tiny" and voice["language_code"] == "en-US"
        audio, rate = client.synthesize(text)
        expected, _ = local(text)
        assert rate == 16000 and audio.shape == expected.shape
        # The server batches sentences as they come, the stream vocodes them one by one. With the untrained
        # tiny voice's mels the vocoder's last blocks grow batch-size-dependent rounding to ~8e-4 (measured;
        # the bundled voice stays within 1e-4, client/tests): far below a misplaced or missing sample.
        np.testing.assert_allclose(audio, expected, atol=1e-3)
        streamed = np.concatenate(list(client.stream(text)))
        np.testing.assert_allclose(streamed, audio, atol=1e-3)
        slow, _ = client.synthesize(text, speed=0.5)
        assert len(slow) > 1.5 * len(audio)
        resampled, rate = client.synthesize(text, sample_rate=24000)
        assert rate == 24000 and abs(len(resampled) - len(audio) * 1.5) <= 2


def test_a_streams_chunks_grow_across_its_sentences(voice_server):
    """Only the first audio needs a small chunk: each sentence used to start again at 8 frames, and every
    chunk is vocoded with its context, so a paragraph cost up to half again its compute."""
    text = " ".join(["This sentence is long enough to be spoken in several chunks of audio."] * 3)
    with AudioGanClient(voice_server.target) as client:
        chunks = [len(chunk) for chunk in client.stream(text)]
        whole, _ = client.synthesize(text)
    sizes = [n // 256 for n in chunks]  # in mel frames
    # Measured: 8, 16, 32, 64, 64, 17, then a pause, 64, 64, 64, 9, a pause, 64, 64, 64, 9 (before: 8, 16,
    # 32, 64, 64, 17 for each sentence).
    assert sizes[0] == 8 and sizes.count(8) == 1 and sizes.count(16) == 1, sizes
    assert max(sizes) <= 64 and sum(chunks) == len(whole)


def test_ssml_with_a_voice(voice_server, tiny_voice):
    from audiogan.tts import TTS

    local = TTS.load(tiny_voice[0], device="cpu")
    text = ('<speak><break time="250ms"/>Hello <prosody rate="slow" volume="-6dB">there</prosody>.'
            '<break time="500ms"/>Code <say-as interpret-as="characters">AB</say-as>.</speak>')
    with AudioGanClient(voice_server.target, retries=0) as client:
        audio, _ = client.synthesize(text)
        expected, rate = local(text)
        assert audio.shape == expected.shape and not audio[: round(0.25 * rate)].any()
        np.testing.assert_allclose(audio, expected, atol=5e-4)
        np.testing.assert_allclose(np.concatenate(list(client.stream(text))), audio, atol=5e-4)
        deep = "<speak>" + "<s>" * 600 + "Hi." + "</s>" * 600 + "</speak>"  # was INTERNAL, a RecursionError
        for bad, field_and_reason in [("<speak>Hi <audio/></speak>", "text: SSML element <audio>"),
                                      ("<speak>Hi", "text: SSML is not well-formed"),
                                      (deep, "text: SSML nests elements more than 100 deep")]:
            for call in (client.synthesize, lambda text: list(client.stream(text))):
                with pytest.raises(grpc.RpcError) as caught:
                    call(bad)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert field_and_reason in caught.value.details()


def test_timings_with_a_voice(voice_server, tiny_voice):
    from audiogan.tts import TTS

    text = ('<speak>Hello there.<break time="300ms"/><mark name="second"/>It is 10:30 now, said '
            '<sub alias="doctor">Dr.</sub> Lee.</speak>')
    expected = TTS.load(tiny_voice[0], device="cpu").synthesize(text).timings
    with AudioGanClient(voice_server.target, retries=0) as client:
        timed = client.synthesize_timed(text)
        assert [s["text"] for s in timed.sentences] == ["Hello there.", "It is 10:30 now, said Dr. Lee."]
        assert [(w["text"], w["start"], w["end"]) for w in timed.words] == [
            (w.text, pytest.approx(w.start), pytest.approx(w.end)) for w in expected.words]
        assert timed.sentences[-1]["end"] == pytest.approx(len(timed.samples) / timed.sample_rate)
        assert [(m["text"], m["start"]) for m in timed.marks] == [("second", pytest.approx(expected.marks[0].start))]
        assert timed.marks[0]["start"] == pytest.approx(timed.words[2]["start"])  # "It"
        # Streamed: each sentence's timings come on the chunk where its audio begins, none before.
        chunks = list(client.stream_chunks(text, timings=True))
        assert [w.text for c in chunks for w in c.words] == [w["text"] for w in timed.words]
        assert [m.text for c in chunks for m in c.marks] == ["second"]
        for chunk in chunks:
            for sentence in chunk.sentences:
                start = round(sentence.start_seconds * chunk.sample_rate_hz)
                assert chunk.sample_offset <= start < chunk.sample_offset + len(chunk.audio) // 4
        assert not any(c.words for c in client.stream_chunks(text))  # only when asked
        request = pb.SynthesizeRequest(mel=pb.Mel(data=np.zeros((80, 4), "<f4").tobytes(), n_mels=80), timings=True)
        with pytest.raises(grpc.RpcError) as caught:
            client.stub.Synthesize(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "timings" in caught.value.details()


def test_text_errors_with_a_voice(voice_server):
    with AudioGanClient(voice_server.target, retries=0) as client:
        checks = {"unknown voice": (lambda: client.synthesize("Hi.", voice="nobody"), grpc.StatusCode.NOT_FOUND),
                  "too long": (lambda: client.synthesize("a " * 3000), grpc.StatusCode.INVALID_ARGUMENT),
                  "unpronounceable": (lambda: client.synthesize("... ?!"), grpc.StatusCode.INVALID_ARGUMENT),
                  "pitch": (lambda: client.stub.Synthesize(pb.SynthesizeRequest(text="Hi.", pitch_shift=40)),
                            grpc.StatusCode.INVALID_ARGUMENT)}
        for name, (call, code) in checks.items():
            assert code_of(call) == code, name
        assert client.synthesize("Still here.").samples.size > 0
        # A Turkish capital I in an abbreviation was a KeyError, answered INTERNAL.
        assert client.synthesize("Koç Holding İNC. reported profits.").samples.size > 0


def test_language_code_must_be_the_voices(voice_server):
    with AudioGanClient(voice_server.target, retries=0) as client:
        def say(code: str) -> pb.Audio:
            return client.stub.Synthesize(pb.SynthesizeRequest(text="Hi there.", language_code=code), timeout=60)

        for code in ("", "en-US", "en_us", "EN", "en"):
            assert say(code).num_samples > 0, code
        for code in ("de-DE", "en-GB", "e"):
            with pytest.raises(grpc.RpcError) as caught:
                say(code)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, code
            assert f"language_code: {code!r}: voice 'tts-tiny' speaks en-US" in caught.value.details()


def test_text_over_the_audio_limit_is_refused_before_all_of_it_is_spoken(tiny_voice):
    port = free_port()
    # Any sentence is longer than 10 ms: the first wave of 2 sentences is already over.
    with launch("--voice", str(tiny_voice[0]), "--timbre", "none", "--metrics-port", str(port),
                "--set", "batching.max_batch=2", "--set", "limits.max_audio_seconds=0.01") as proc, \
            AudioGanClient(proc.target, retries=0) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.synthesize(" ".join(f"This is sentence {i}." for i in range(20)))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "text: " in caught.value.details()
        passes = metric(port, "audiogan_batch_size_count", batcher="tts:tts-tiny")
        # 0 passes: the gaps between the sentences alone are over 10 ms, and they count too.
        assert passes <= 2, f"{passes:g} acoustic passes over 20 sentences: the limit was checked late"


def test_pauses_count_toward_the_audio_limit_before_any_audio_is_sent(tiny_voice):
    port = free_port()
    # 3 x 10 s of breaks around two short sentences: over a 25 s limit on pauses alone.
    text = '<speak>Hi.<break time="10s"/>Hi.<break time="10s"/><break time="10s"/>Hi.</speak>'
    with launch("--voice", str(tiny_voice[0]), "--timbre", "none", "--metrics-port", str(port),
                "--set", "limits.max_audio_seconds=25") as proc, AudioGanClient(proc.target, retries=0) as client:
        for call in (lambda: client.synthesize(text), lambda: next(client.stream_chunks(text))):
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert re.search(r"text: 30\.\d s of speech and pauses exceeds this server's limit of 25 s",
                             caught.value.details()), caught.value.details()
        assert metric(port, "audiogan_batch_size_count", batcher="tts:tts-tiny") == 0, "refused before speaking"
        # Just under: the stream stops before the sentence that crosses, never after delivering it.
        streamed = client.stream_chunks('<speak>Hi.<break time="10s"/>Hi.<break time="10s"/>'
                                        '<break time="4.5s"/>Hi there, all of you, once more.</speak>')
        received = 0.0
        with pytest.raises(grpc.RpcError) as caught:
            for chunk in streamed:
                received += len(chunk.audio) / 2 / chunk.sample_rate_hz
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert received <= 25.0


@pytest.fixture(scope="module")
def three_speaker_voice(espeak_corpus, tmp_path_factory) -> Path:
    """The tiny voice with room for three speakers, trained two steps on one: enough to tell speakers apart."""
    from audiogan.config import load_yaml
    from audiogan.train.tts_trainer import TTSTrainer, TTSTrainingConfig

    cfg = load_yaml(TTSTrainingConfig, REPO / "configs" / "tts" / "tiny_test.yaml")
    run = tmp_path_factory.mktemp("three_speakers")
    cfg.data.cache_dir = str(run / "cache")
    cfg.model.n_speakers, cfg.train.max_steps = 3, 2
    torch.manual_seed(0)
    TTSTrainer(cfg, [str(espeak_corpus)], run, device="cpu").fit()
    return run / "tts-tiny.safetensors"


def test_a_multi_speaker_voice_speaks_as_the_asked_speaker(three_speaker_voice):
    from audiogan.tts import TTS

    local = TTS.load(three_speaker_voice, device="cpu")
    with launch("--voice", str(three_speaker_voice), "--timbre", "none") as proc, \
            AudioGanClient(proc.target, retries=0) as client:
        (voice,) = client.list_voices()["voices"]
        assert voice["speakers"] == 3
        first, _ = client.synthesize("Hello there.")
        second, _ = client.synthesize("Hello there.", speaker=2)
        streamed = np.concatenate(list(client.stream("Hello there.", speaker=2)))
        np.testing.assert_allclose(second, local("Hello there.", speaker=2)[0], atol=5e-4)
        np.testing.assert_allclose(streamed, second, atol=5e-4)
        assert first.shape != second.shape or np.abs(first - second).max() > 1e-2
        # -1 on the raw stub: the client refuses it before any call.
        for call in (lambda: client.synthesize("Hello.", speaker=3),
                     lambda: client.stub.Synthesize(pb.SynthesizeRequest(text="Hello.", speaker=-1))):
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "speaker" in caught.value.details() and "0..2" in caught.value.details()
        with pytest.raises(ValueError, match="speaker -1"):
            client.synthesize("Hello.", speaker=-1)
        assert client.synthesize("Still here.", speaker=1).samples.size > 0


# -- instrument notes, with a real (tiny, CPU-trained) note GAN ---------------------------------------------

@pytest.fixture(scope="module")
def timbre_server(tiny_timbre):
    with launch("--timbre", str(tiny_timbre[0]), "--voice", "none", "--set", "batching.max_wait_ms=20") as proc:
        yield proc


def test_notes_and_interpolation_over_grpc(timbre_server, tiny_timbre):
    from audiogan.timbre import TimbreModel

    local = TimbreModel.load(tiny_timbre[0], device="cpu")
    with AudioGanClient(timbre_server.target) as client:
        listed = client.list_instruments()
        assert {i["name"] for i in listed} == {"acoustic_grand_piano", "flute", "violin"}
        assert {i["family"] for i in listed} == {"keyboard", "flute", "string"}
        notes = client.notes([{"pitch": 60, "timbre": "violin", "seed": 3, "velocity": 100},
                              {"pitch": 66, "timbre": "flute", "seed": 1, "velocity": 100}])
        expected = local.generate([60, 66], ["violin", "flute"], [100, 100], [3, 1])
        for got, want in zip(notes, expected, strict=True):
            assert got.sample_rate == 16000
            np.testing.assert_allclose(got.samples, want, atol=1e-5)
        results, alphas = client.interpolate("flute", "violin", pitch=60, steps=3, seed=7)
        assert alphas == [0.0, 0.5, 1.0]
        want, _ = local.interpolate("flute", "violin", pitch=60, steps=3, seed=7)
        for got, w in zip(results, want, strict=True):
            np.testing.assert_allclose(got.samples, w, atol=1e-5)
        latent = local.timbre("violin").numpy()
        (by_latent,) = client.notes([{"pitch": 60, "timbre": latent, "seed": 3, "velocity": 100}])
        np.testing.assert_allclose(by_latent.samples, expected[0], atol=1e-5)


def test_every_uint64_seed_is_its_own_take_over_grpc(timbre_server, tiny_timbre):
    """The wire's seeds reach the library's noise: seeds 2**32 apart (torch's generator once read only the
    low 32 bits of a seed) give other notes, morphs and conversions, each the library's own."""
    from test_timbre import melody

    from audiogan.timbre import TimbreModel
    from audiogan.timbre.convert import convert

    local = TimbreModel.load(tiny_timbre[0], device="cpu")
    seeds = [3, 3 + 2**32, 3 + 2**63, 2**32 - 1, 2**64 - 1]
    buffer = io.BytesIO()
    sf.write(buffer, melody(), 16000, format="WAV")
    with AudioGanClient(timbre_server.target) as client:
        notes = [n.samples for n in client.notes([{"pitch": 60, "timbre": "violin", "seed": s} for s in seeds])]
        morphs = [client.interpolate("flute", "violin", pitch=60, steps=3, seed=s)[0] for s in seeds[:2]]
        takes = [client.convert(buffer.getvalue(), to="violin", seed=s).samples for s in seeds[3:]]
    np.testing.assert_allclose(np.stack(notes), local.generate([60] * 5, ["violin"] * 5, seeds=seeds), atol=1e-5)
    for one, other in itertools.combinations(notes, 2):
        assert np.abs(one - other).max() > 1e-3
    for got, seed in zip(morphs, seeds, strict=False):
        want, _ = local.interpolate("flute", "violin", pitch=60, steps=3, seed=seed)
        np.testing.assert_allclose(np.stack([m.samples for m in got]), want, atol=1e-5)
    assert np.abs(morphs[0][1].samples - morphs[1][1].samples).max() > 1e-3
    for got, seed in zip(takes, seeds[3:], strict=True):
        # The server's thread count rounds the generator differently (test_conversion_over_grpc).
        np.testing.assert_allclose(got, convert(local, melody(), 16000, "violin", seed=seed), atol=5e-4)
    assert np.abs(takes[0] - takes[1]).max() > 1e-2


def client_cli(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audiogan_client.cli", "--target", target, *args],
                          capture_output=True, text=True, timeout=120)


def test_client_cli_interpolate_keeps_the_server_address(timbre_server, tmp_path):
    out = tmp_path / "morph.wav"
    done = client_cli(timbre_server.target, "interpolate", "--from", "violin", "--to", "flute", "--steps", "3",
                      "--seconds", "0.5", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "alphas: 0.000 0.500 1.000" in done.stderr
    with wavemod.open(str(out)) as w:  # three half-second notes, each followed by a quarter-second gap
        assert w.getnframes() == 3 * (8000 + 4000)


def test_client_cli_names_note_files_inside_the_output_folder(timbre_server, tiny_timbre, tmp_path):
    from audiogan.timbre import TimbreModel

    latent = TimbreModel.load(tiny_timbre[0], device="cpu").timbre("violin").numpy()
    (tmp_path / "elsewhere").mkdir()
    np.save(tmp_path / "elsewhere" / "lat.npy", latent)
    out = tmp_path / "out"
    for spec in (str(tmp_path / "elsewhere" / "lat.npy"), ",".join(f"{v:.6f}" for v in latent), "violin"):
        done = client_cli(timbre_server.target, "notes", f"--instrument={spec}", "--seconds", "0.5", "-o", str(out))
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["lat-060.wav", "latent-060.wav", "violin-060.wav"]
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == ["lat.npy"]


def test_note_errors_with_a_model(timbre_server):
    with AudioGanClient(timbre_server.target, retries=0) as client:
        checks = {
            "unknown instrument": (lambda: client.notes([{"pitch": 60, "timbre": "tuba"}]), grpc.StatusCode.NOT_FOUND),
            "pitch outside the model": (lambda: client.notes([{"pitch": 30, "timbre": "violin"}]),
                                        grpc.StatusCode.INVALID_ARGUMENT),
            "latent size": (lambda: client.notes([{"pitch": 60, "timbre": [0.1, 0.2]}]),
                            grpc.StatusCode.INVALID_ARGUMENT),
            "too long": (lambda: client.notes([{"pitch": 60, "timbre": "violin", "seconds": 5}]),
                         grpc.StatusCode.INVALID_ARGUMENT),
            "unknown model": (lambda: client.notes([{"pitch": 60, "timbre": "violin"}], model="x"),
                              grpc.StatusCode.NOT_FOUND),
            "speech is no melody": (lambda: client.convert(REPO_DEMO.read_bytes(), to="tuba"),
                                    grpc.StatusCode.NOT_FOUND),
        }
        for name, (call, code) in checks.items():
            assert code_of(call) == code, name
        with pytest.raises(grpc.RpcError) as caught:
            client.notes([{"pitch": 30, "timbre": "violin"}])
        assert "notes[0].pitch: 30 is outside the range 48..72 of model 'timbre-tiny'" in caught.value.details()
        assert len(client.notes([{"pitch": 60, "timbre": "violin"}])) == 1
        # Names as a person types them are found; a near miss is answered with the nearest name.
        np.testing.assert_array_equal(client.notes([{"pitch": 60, "timbre": "Violin", "seed": 2}])[0].samples,
                                      client.notes([{"pitch": 60, "timbre": "violin", "seed": 2}])[0].samples)
        with pytest.raises(grpc.RpcError) as caught:
            client.notes([{"pitch": 60, "timbre": "violn"}])
        message = caught.value.details()
        assert "notes[0].timbre.instrument: unknown instrument 'violn' (did you mean 'violin'?)" in message


def test_ambiguous_interpolation_and_vanishing_notes_are_refused(timbre_server):
    with AudioGanClient(timbre_server.target, retries=0) as client:
        both = pb.InterpolateTimbreRequest(a=client.timbre("violin"), b=client.timbre("flute"), pitch=60,
                                           alpha=0.5, steps=3)
        with pytest.raises(grpc.RpcError) as caught:
            client.stub.InterpolateTimbre(both, timeout=60)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "alpha" in caught.value.details() and "steps" in caught.value.details()
        with pytest.raises(ValueError, match="steps=0"):
            client.interpolate("violin", "flute", pitch=60, steps=0)
        with pytest.raises(grpc.RpcError) as caught:
            client.notes([{"pitch": 60, "timbre": "violin", "seconds": 1e-9}])
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "notes[0].seconds: 1e-09 is shorter than one frame" in caught.value.details()
        (shortest,) = client.notes([{"pitch": 60, "timbre": "violin", "seconds": 0.016}])
        assert len(shortest.samples) == 256


def test_conversion_over_grpc(timbre_server, tiny_timbre):
    from test_timbre import melody

    buffer = io.BytesIO()
    sf.write(buffer, melody(), 16000, format="WAV")
    with AudioGanClient(timbre_server.target) as client:
        audio, rate = client.convert(buffer.getvalue(), to="violin", sample_rate=22050)
        assert rate == 22050 and abs(len(audio) - len(melody()) * 22050 / 16000) <= 2
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0.01
        buffer = io.BytesIO()
        sf.write(buffer, melody(vibrato_cents=35), 16000, format="WAV")
        bent, _ = client.convert(buffer.getvalue(), to="violin")
        flat, _ = client.convert(buffer.getvalue(), to="violin", flat=True)
        morph, _ = client.convert(buffer.getvalue(), to="flute", to_b="violin", mode="lerp")
        seeded, _ = client.convert(buffer.getvalue(), to="violin", seed=2**64 - 1)  # the wire's largest
        with pytest.raises(grpc.RpcError) as caught:
            client.convert(buffer.getvalue(), to="flute", to_b="violin", mode="slrep")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "options.mode" in caught.value.details()
        assert code_of(lambda: client.convert(buffer.getvalue(), to="flute", to_b="tuba")) == grpc.StatusCode.NOT_FOUND
        # An upload's headers, with its request id, go out once it has ended: here before its refusal.
        upload = [pb.ConvertTimbreRequest(options=pb.ConvertOptions(target=pb.Timbre(instrument="violin"))),
                  pb.ConvertTimbreRequest(audio_chunk=b"not audio")]
        with pytest.raises(grpc.RpcError) as junk:
            list(client.stub.ConvertTimbre(iter(upload), metadata=(("x-request-id", "upload-1"),)))
        assert junk.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert request_ids_of(junk.value.initial_metadata()) == ["upload-1"]
        assert request_ids_of(junk.value.trailing_metadata()) == ["upload-1"]
    from audiogan.timbre import TimbreModel
    from audiogan.timbre.convert import convert

    local = TimbreModel.load(tiny_timbre[0], device="cpu")
    wave = melody(vibrato_cents=35)
    for got, expected in ((bent, convert(local, wave, 16000, "violin")),
                          (flat, convert(local, wave, 16000, "violin", flat=True)),
                          (morph, convert(local, wave, 16000, "flute", to_b="violin", mode="lerp")),
                          (seeded, convert(local, wave, 16000, "violin", seed=2**64 - 1))):
        # The server's thread count rounds the generator differently: measured up to 1.0e-4 on one machine,
        # 5.1e-4 on another (CPU kernels differ); a changed option moves samples by more than 1e-2 (below).
        np.testing.assert_allclose(got, expected, atol=2e-3)
    assert np.abs(bent - flat).max() > 1e-2
    assert np.abs(seeded - bent).max() > 1e-2  # the seed reached the notes
    assert np.abs(morph - convert(local, wave, 16000, "flute", mode="lerp")).max() > 1e-2  # the morph moved


def test_every_rpc_counts_its_audio_and_every_stream_its_first_audio(mel):
    """audiogan_audio_seconds_total by the RPC that sent the audio (note calls were one "notes" label;
    conversions were not counted), and the time to first audio of both streaming RPCs (only
    SynthesizeStream's was observed). The bundled note model."""
    from test_timbre import melody

    buffer = io.BytesIO()
    sf.write(buffer, melody(), 16000, format="WAV")
    port = free_port()
    with launch("--voice", "none", "--metrics-port", str(port)) as proc, \
            AudioGanClient(proc.target, retries=0) as client:
        (note,) = client.notes([{"pitch": 60, "timbre": "violin", "seconds": 0.5}])
        steps, _ = client.interpolate("violin", "flute", pitch=60, steps=2, seconds=0.25)
        converted = client.convert(buffer.getvalue(), to="flute")
        streamed = np.concatenate(list(client.stream(mel=mel[:, :20])))
        sent = {"GenerateNotes": note.samples.size / note.sample_rate,
                "InterpolateTimbre": sum(s.samples.size / s.sample_rate for s in steps),
                "ConvertTimbre": converted.samples.size / converted.sample_rate,
                "SynthesizeStream": streamed.size / 16000}
        for method, seconds in sent.items():
            assert seconds > 0 and metric(port, "audiogan_audio_seconds_total", method=method) == pytest.approx(
                seconds, abs=1e-3), method
        assert "audiogan_audio_seconds_total{method=\"notes\"}" not in urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        for method in ("ConvertTimbre", "SynthesizeStream"):
            assert metric(port, "audiogan_time_to_first_audio_seconds_count", method=method) == 1, method


def test_a_conversion_goes_a_pass_at_a_time_and_stops_when_its_caller_goes(monkeypatch, tiny_timbre):
    from test_timbre import melody

    from audiogan.timbre import TimbreModel

    passes: list[int] = []  # the notes of each generator pass
    generate = TimbreModel.generate

    def slow(self: TimbreModel, pitches: list, *args: Any, **kwargs: Any) -> np.ndarray:
        passes.append(len(pitches))
        time.sleep(0.3)  # every pass takes a while: the deadline falls within the first ones
        return generate(self, pitches, *args, **kwargs)

    monkeypatch.setattr(TimbreModel, "generate", slow)
    buffer = io.BytesIO()
    sf.write(buffer, np.tile(melody(), 8), 16000, format="WAV")  # 8 x the melody's notes: several passes
    with in_process_server("--timbre", str(tiny_timbre[0])) as target:
        with AudioGanClient(target, timeout=60, retries=0) as client:
            client.convert(buffer.getvalue(), to="violin")  # the first pays for pYIN's compilation
            passes.clear()
            started = time.perf_counter()
            whole = client.convert(buffer.getvalue(), to="violin")
            elapsed = time.perf_counter() - started
        assert len(passes) >= 4 and max(passes) == 8, passes
        total, passes[:] = len(passes), []
        # A deadline about halfway through the passes, which come after the recording's analysis.
        with AudioGanClient(target, timeout=elapsed - 0.3 * total / 2, retries=0) as hasty:
            assert code_of(lambda: hasty.convert(buffer.getvalue(), to="violin")) == \
                grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(1.5)  # time for passes that would still run, were the abandoned call not stopped
        assert len(passes) < total, f"{len(passes)} of {total} passes ran for a call gone"
        with AudioGanClient(target, timeout=60, retries=0) as client:  # and the next one is as before
            np.testing.assert_array_equal(client.convert(buffer.getvalue(), to="violin").samples, whole.samples)


def test_a_conversion_analyses_a_piece_at_a_time_and_stops_when_its_caller_goes(monkeypatch, tiny_timbre):
    from test_timbre import melody

    from audiogan.audio.pitch import PitchTracker

    pieces: list[int] = []  # the first frame of each piece tracked
    step = PitchTracker.step

    def slow(self: PitchTracker) -> bool:
        pieces.append(self.done)
        time.sleep(0.3)  # every piece takes a while: the deadline falls within the first ones
        return step(self)

    monkeypatch.setattr(PitchTracker, "step", slow)
    buffer = io.BytesIO()
    sf.write(buffer, np.tile(melody(), 24), 16000, format="WAV")  # 67 s: 9 pieces of 512 frames
    with in_process_server("--timbre", str(tiny_timbre[0])) as target:
        with AudioGanClient(target, timeout=60, retries=0) as client:
            whole = client.convert(buffer.getvalue(), to="violin")
        total, pieces[:] = len(pieces), []
        assert total >= 8
        with AudioGanClient(target, timeout=0.3 * total / 2, retries=0) as hasty:  # about halfway through
            assert code_of(lambda: hasty.convert(buffer.getvalue(), to="violin")) == \
                grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(1.5)  # time for pieces that would still run, were the abandoned call not stopped
        assert 0 < len(pieces) < total, f"{len(pieces)} of {total} pieces ran for a call gone"
        with AudioGanClient(target, timeout=60, retries=0) as client:  # and the next one is as before
            np.testing.assert_array_equal(client.convert(buffer.getvalue(), to="violin").samples, whole.samples)


def test_a_cancelled_upload_counts_as_cancelled_and_converts_nothing(monkeypatch, caplog):
    """gRPC ends a client stream that its caller cancels as if the caller had finished it: the server took
    a cut-short upload for the whole one, logged and counted INVALID_ARGUMENT ("no audio was uploaded", a
    FLAC that "lost sync"), or converted whatever had arrived for a caller that was gone."""
    from test_timbre import melody

    from audiogan.timbre.convert import Conversion

    analysed: list[int] = []  # the samples of each recording a conversion began on
    analysis = Conversion.analysis.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Conversion], model: Any, wave: np.ndarray, rate: int) -> Any:
        analysed.append(len(wave))
        return analysis(cls, model, wave, rate)

    monkeypatch.setattr(Conversion, "analysis", classmethod(counted))
    buffer = io.BytesIO()
    sf.write(buffer, melody(), 16000, format="FLAC")
    recording = buffer.getvalue()
    options = pb.ConvertTimbreRequest(options=pb.ConvertOptions(target=pb.Timbre(instrument="violin")))
    uploads = {"nothing sent": [], "the options only": [options],
               "half of the file": [options, pb.ConvertTimbreRequest(audio_chunk=recording[:len(recording) // 2])],
               "all of the file, never ended": [options, pb.ConvertTimbreRequest(audio_chunk=recording)]}
    metrics = Metrics()

    def count(code: str) -> float:
        return metrics.registry.get_sample_value("audiogan_requests_total",
                                                 {"method": "ConvertTimbre", "code": code}) or 0.0

    def settle(until: Callable[[], bool]) -> None:
        for _ in range(200):
            if until():
                return
            time.sleep(0.025)

    release = threading.Event()
    caplog.set_level(logging.INFO, logger="audiogan.server")
    with in_process_server("--timbre", "default", metrics=metrics) as target, \
            AudioGanClient(target, retries=0) as client:
        try:
            for done, (name, messages) in enumerate(uploads.items(), 1):
                def upload(messages: list[pb.ConvertTimbreRequest] = messages) -> Iterator[pb.ConvertTimbreRequest]:
                    yield from messages
                    release.wait(60)  # the caller neither sends more nor ends its upload

                call = client.stub.ConvertTimbre(upload())
                settle(lambda: metrics.registry.get_sample_value("audiogan_in_flight") == 1)
                time.sleep(0.2)  # for what was sent to arrive: the call is then reading what comes next
                call.cancel()
                settle(lambda done=done: count("CANCELLED") == done)  # recorded as the server notices the end
                assert count("CANCELLED") == done, name
        finally:
            release.set()
        assert analysed == [], "a conversion ran for a caller gone"
        converted = client.convert(recording, to="violin")  # an upload its caller ends is taken as before
    assert converted.samples.size > 0 and analysed == [len(melody())]
    for code in ("OK", "CANCELLED", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "INTERNAL"):
        assert count(code) == {"OK": 1, "CANCELLED": len(uploads)}.get(code, 0), code
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ConvertTimbre")]
    cancelled = r"ConvertTimbre CANCELLED in \d+ ms from ipv4:[\d.:]+, request id [0-9a-f]{16}$"
    assert len(lines) == len(uploads) + 1 and all(re.match(cancelled, line) for line in lines[:-1]), lines
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_the_shipped_server_config_is_the_defaults():
    from audiogan.config import load_yaml, to_dict

    shipped = load_yaml(ServerConfig, Path(__file__).resolve().parents[1] / "configs" / "server" / "default.yaml")
    assert to_dict(shipped) == to_dict(ServerConfig())

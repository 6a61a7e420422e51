"""``AudioGanClient``: one object per server, methods named for what they synthesize."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import grpc
import numpy as np

from audiogan_client._proto import audiogan_pb2 as pb
from audiogan_client._proto import audiogan_pb2_grpc as pb_grpc
from audiogan_client.audio import decode, encoding_value, mel_message

T = TypeVar("T")
TimbreLike = str | Sequence[float] | np.ndarray
UPLOAD_CHUNK_BYTES = 64 * 1024
NOTE_FIELDS = ("pitch", "velocity", "seconds", "seed")
NOTE_TIMBRE_KEYS = ("timbre", "instrument", "latent")  # the wire's name, then the library's and render's


class AudioResult(NamedTuple):
    samples: np.ndarray  # float32 in [-1, 1]
    sample_rate: int


class TimedAudio(NamedTuple):
    samples: np.ndarray
    sample_rate: int
    sentences: list[dict[str, Any]]  # {"text", "start", "end"} in seconds: each sentence as written
    words: list[dict[str, Any]]      # the same for each word as said ("three dollars" for "$3")
    marks: list[dict[str, Any]]      # SSML <mark name="..."> (text) at "start" seconds


def timed(spans: Iterable[pb.TimedText]) -> list[dict[str, Any]]:
    return [{"text": s.text, "start": s.start_seconds, "end": s.end_seconds} for s in spans]


class AudioGanClient:
    """Client for an ``audiogan-server``.

    >>> with AudioGanClient("127.0.0.1:50051") as client:
    ...     audio, sr = client.vocode(mel)

    Calls that fail with UNAVAILABLE (server starting or restarting) are retried ``retries`` times with
    exponential backoff; every other error surfaces at once as ``grpc.RpcError`` with the server's message.
    """

    def __init__(self, target: str = "127.0.0.1:50051", timeout: float | None = 60.0, retries: int = 3,
                 backoff: float = 0.2, root_certificates: bytes | None = None, tls: bool = False) -> None:
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        options = [("grpc.max_receive_message_length", 256 * 1024 * 1024),
                   ("grpc.max_send_message_length", 64 * 1024 * 1024)]
        if tls or root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.secure_channel(target, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        self.stub = pb_grpc.AudioGanStub(self.channel)

    def __enter__(self) -> AudioGanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _retry(self, call: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return call()
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _format(sample_rate: int, encoding: str | int) -> pb.AudioFormat:
        return pb.AudioFormat(encoding=encoding_value(encoding), sample_rate_hz=sample_rate)

    @staticmethod
    def _result(audio: pb.Audio) -> AudioResult:
        return AudioResult(decode(audio.audio, audio.encoding), audio.sample_rate_hz)

    @staticmethod
    def timbre(spec: TimbreLike) -> pb.Timbre:
        """An instrument name, or a latent vector."""
        if isinstance(spec, str):
            return pb.Timbre(instrument=spec)
        return pb.Timbre(latent=pb.Latent(values=[float(v) for v in np.asarray(spec).ravel()]))

    def _synthesize_request(self, text: str | None, mel: np.ndarray | None, voice: str, vocoder: str,
                            sample_rate: int, encoding: str | int, speed: float, pitch_shift: float,
                            speaker: int, timings: bool = False) -> pb.SynthesizeRequest:
        if (text is None) == (mel is None):
            raise ValueError("give exactly one of text= or mel=")
        request = pb.SynthesizeRequest(voice_name=voice, vocoder=vocoder, speed=speed, pitch_shift=pitch_shift,
                                       speaker=speaker, format=self._format(sample_rate, encoding), timings=timings)
        if text is not None:
            request.text = text
        else:
            request.mel.CopyFrom(mel_message(mel))
        return request

    def synthesize(self, text: str | None = None, *, mel: np.ndarray | None = None, voice: str = "",
                   vocoder: str = "", sample_rate: int = 0, encoding: str | int = "float32", speed: float = 1.0,
                   pitch_shift: float = 0.0, speaker: int = 0) -> AudioResult:
        """Text (through a voice, as one of its speakers) or a log-mel (through a vocoder) -> the whole audio."""
        request = self._synthesize_request(text, mel, voice, vocoder, sample_rate, encoding, speed, pitch_shift,
                                           speaker)
        return self._result(self._retry(lambda: self.stub.Synthesize(request, timeout=self.timeout)))

    def synthesize_timed(self, text: str, *, voice: str = "", sample_rate: int = 0, encoding: str | int = "float32",
                         speed: float = 1.0, pitch_shift: float = 0.0, speaker: int = 0) -> TimedAudio:
        """As :meth:`synthesize`, with when each sentence and word is said (captions, highlighting, lip sync)."""
        request = self._synthesize_request(text, None, voice, "", sample_rate, encoding, speed, pitch_shift,
                                           speaker, timings=True)
        audio = self._retry(lambda: self.stub.Synthesize(request, timeout=self.timeout))
        return TimedAudio(*self._result(audio), timed(audio.sentences), timed(audio.words), timed(audio.marks))

    def stream_chunks(self, text: str | None = None, *, mel: np.ndarray | None = None, voice: str = "",
                      vocoder: str = "", sample_rate: int = 0, encoding: str | int = "float32", speed: float = 1.0,
                      pitch_shift: float = 0.0, speaker: int = 0, timings: bool = False) -> Iterator[pb.AudioChunk]:
        """The raw ``AudioChunk`` messages of ``SynthesizeStream`` (sequence, sample offset, final flag; with
        ``timings``, each sentence's timings on the chunk where its audio begins)."""
        request = self._synthesize_request(text, mel, voice, vocoder, sample_rate, encoding, speed, pitch_shift,
                                           speaker, timings)
        yield from self._retry(
            lambda: self._first_then_rest(self.stub.SynthesizeStream(request, timeout=self.timeout)))

    @staticmethod
    def _first_then_rest(call: Iterator[pb.AudioChunk]) -> Iterator[pb.AudioChunk]:
        # Pull the first chunk inside the retry so an UNAVAILABLE at start is retried; later errors surface.
        first = next(call)

        def chain() -> Iterator[pb.AudioChunk]:
            yield first
            yield from call
        return chain()

    def stream(self, text: str | None = None, **kwargs: Any) -> Iterator[np.ndarray]:
        """Audio as float32 numpy chunks, each yielded as soon as the server sends it."""
        for chunk in self.stream_chunks(text, **kwargs):
            if chunk.audio:
                yield decode(chunk.audio, chunk.encoding)

    def vocode(self, mel: np.ndarray, *, vocoder: str = "", sample_rate: int = 0,
               encoding: str | int = "float32") -> AudioResult:
        request = pb.VocodeRequest(mel=mel_message(mel), vocoder=vocoder, format=self._format(sample_rate, encoding))
        return self._result(self._retry(lambda: self.stub.Vocode(request, timeout=self.timeout)))

    def notes(self, notes: Iterable[dict[str, Any]], *, model: str = "", sample_rate: int = 0,
              encoding: str | int = "float32") -> list[AudioResult]:
        """Notes given as dicts: ``{"pitch": 60, "timbre": "violin" | [latent...], "velocity": 100,
        "seconds": 4.0, "seed": 0}``; "instrument" or "latent" may name the timbre instead, as
        ``TimbreModel.note`` and render jobs name it."""
        specs = []
        for i, note in enumerate(notes):
            note = dict(note)
            given = [k for k in NOTE_TIMBRE_KEYS if k in note]
            if len(given) > 1:
                raise ValueError(f"notes[{i}]: give one of {', '.join(given)}, not both")
            timbre = note.pop(given[0]) if given else None
            if unknown := sorted(set(note) - set(NOTE_FIELDS)):  # protobuf's message names no note
                raise ValueError(f"notes[{i}]: unknown key(s) {', '.join(unknown)}; a note takes "
                                 f"{', '.join(NOTE_FIELDS + NOTE_TIMBRE_KEYS)}")
            try:
                spec = pb.NoteSpec(**note)
            except (TypeError, ValueError) as exc:  # a seed of -1, a pitch of 60.5: say which note and field
                raise ValueError(f"notes[{i}]: {exc} (pitch, velocity and seed are whole numbers >= 0)") from None
            if timbre is not None:
                spec.timbre.CopyFrom(self.timbre(timbre))
            specs.append(spec)
        request = pb.GenerateNotesRequest(notes=specs, model=model, format=self._format(sample_rate, encoding))
        response = self._retry(lambda: self.stub.GenerateNotes(request, timeout=self.timeout))
        return [self._result(a) for a in response.notes]

    def interpolate(self, a: TimbreLike, b: TimbreLike, *, pitch: int, alpha: float | None = None,
                    steps: int | None = None, velocity: int = 100, seconds: float = 0.0, mode: str = "slerp",
                    seed: int = 0, model: str = "", sample_rate: int = 0,
                    encoding: str | int = "float32") -> tuple[list[AudioResult], list[float]]:
        """Notes along the way from timbre a to b: one at ``alpha`` or ``steps`` evenly spaced ones."""
        if (alpha is None) == (steps is None):
            raise ValueError("give exactly one of alpha= or steps=")
        if steps is not None and steps <= 0:  # 0 on the wire means "use alpha": it would ask for one note
            raise ValueError(f"steps={steps}: give 2 or more (or alpha= for one note)")
        try:
            request = pb.InterpolateTimbreRequest(
                a=self.timbre(a), b=self.timbre(b), alpha=alpha or 0.0, steps=steps or 0, pitch=pitch,
                velocity=velocity, seconds=seconds, mode=mode, seed=seed, model=model,
                format=self._format(sample_rate, encoding))
        except TypeError as exc:  # protobuf's message names no argument
            raise ValueError(f"interpolate: {exc} (pitch, steps, velocity and seed are whole numbers)") from None
        except ValueError as exc:
            raise ValueError(f"interpolate: {exc} (seed is a whole number 0..2**64-1)") from None
        response = self._retry(lambda: self.stub.InterpolateTimbre(request, timeout=self.timeout))
        return [self._result(n) for n in response.notes], list(response.alphas)

    def convert(self, audio: str | Path | bytes, *, to: TimbreLike, model: str = "", sample_rate: int = 0,
                encoding: str | int = "float32", flat: bool = False, to_b: TimbreLike | None = None,
                mode: str = "slerp") -> AudioResult:
        """Upload a WAV/FLAC/OGG (path or file bytes) in chunks; return it re-rendered with timbre ``to``,
        following the recording's vibrato, bends and dynamics within each note (or, if ``flat``, each note as
        the model plays it). With ``to_b`` the timbre morphs from ``to`` at the first note to ``to_b`` at the
        last (``mode``: "slerp" or "lerp")."""
        data = audio if isinstance(audio, bytes) else Path(audio).read_bytes()
        options = pb.ConvertOptions(target=self.timbre(to), model=model, format=self._format(sample_rate, encoding),
                                    flat=flat, mode=mode)
        if to_b is not None:
            options.target_b.CopyFrom(self.timbre(to_b))

        def upload() -> Iterator[pb.ConvertTimbreRequest]:
            yield pb.ConvertTimbreRequest(options=options)
            for start in range(0, len(data), UPLOAD_CHUNK_BYTES):
                yield pb.ConvertTimbreRequest(audio_chunk=data[start:start + UPLOAD_CHUNK_BYTES])

        def call() -> AudioResult:
            chunks = list(self.stub.ConvertTimbre(upload(), timeout=self.timeout))
            samples = [decode(c.audio, c.encoding) for c in chunks if c.audio]
            rate = chunks[-1].sample_rate_hz if chunks else sample_rate
            return AudioResult(np.concatenate(samples) if samples else np.zeros(0, np.float32), rate)
        return self._retry(call)

    def list_voices(self) -> dict[str, list[dict[str, Any]]]:
        response = self._retry(lambda: self.stub.ListVoices(pb.ListVoicesRequest(), timeout=self.timeout))
        return {"voices": [_info(m) for m in response.voices], "vocoders": [_info(m) for m in response.vocoders]}

    def list_instruments(self, model: str = "") -> list[dict[str, str]]:
        request = pb.ListInstrumentsRequest(model=model)
        response = self._retry(lambda: self.stub.ListInstruments(request, timeout=self.timeout))
        return [{"name": i.name, "family": i.family, "model": i.model} for i in response.instruments]


def _info(model: pb.ModelInfo) -> dict[str, Any]:
    return {"name": model.name, "sample_rate": model.sample_rate_hz, "language_code": model.language_code,
            "speakers": model.speakers, "card": json.loads(model.card_json) if model.card_json else {}}

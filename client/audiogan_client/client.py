"""``AudioGanClient``: one object per server, methods named for what they synthesize."""

from __future__ import annotations

import itertools
import json
import math
import re
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import grpc
import numpy as np

from audiogan_client._proto import audiogan_pb2 as pb
from audiogan_client._proto import audiogan_pb2_grpc as pb_grpc
from audiogan_client.audio import decode, encoding_value, mel_message, sample_width
from audiogan_client.ranges import check
from audiogan_client.request_ids import REQUEST_ID_KEY, check_request_id, is_sane, new_request_id

T = TypeVar("T")
Metadata = tuple[tuple[str, str], ...]
TimbreLike = str | Sequence[float] | np.ndarray
UPLOAD_CHUNK_BYTES = 64 * 1024
# Seconds of a server's silence during a call before the client pings it (see AudioGanClient): above the
# server's default min_ping_seconds, so that its pings are never too many.
KEEPALIVE_SECONDS = 20.0
NOTE_FIELDS = ("pitch", "velocity", "seconds", "seed")
NOTE_TIMBRE_KEYS = ("timbre", "instrument", "latent")  # the wire's name, then the library's and render's
# gRPC's trailing metadata for a server's pushback (gRFC A6): ASCII digits of a signed 32-bit integer, the
# milliseconds a caller should wait before it tries again. audiogan-server sends it under this name.
PUSHBACK_KEY = "grpc-retry-pushback-ms"
RECONNECT_MAX_SECONDS = 1.0  # the longest a channel waits before it tries to connect again (reconnect_options)


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


class CallFailed(grpc.RpcError):
    """A call's failure as the client reports it, with the ``code()`` and ``details()`` of gRPC's errors (and,
    where gRPC's error is its ``cause``, that error's metadata and debug string). ``request_id`` is the
    call's: the id the server logged it under, which its message ends with."""

    def __init__(self, code: grpc.StatusCode, details: str, request_id: str = "",
                 cause: grpc.RpcError | None = None) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details
        self.request_id = request_id
        self._cause = cause

    def __str__(self) -> str:
        said = f"{self._code.name}: {self._details}"
        return f"{said} (request id {self.request_id})" if self.request_id else said

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    # What gRPC's own errors also answer, where one was the cause.
    def initial_metadata(self) -> Any:
        return self._from_cause("initial_metadata", ())

    def trailing_metadata(self) -> Any:
        return self._from_cause("trailing_metadata", ())

    def debug_error_string(self) -> str:
        return self._from_cause("debug_error_string", "")

    def _from_cause(self, name: str, default: Any) -> Any:
        method = getattr(self._cause, name, None)
        return method() if callable(method) else default

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own pickling calls __init__ with the message alone, which raised TypeError on loading
        # (a worker process's failed call broke its pool's result); gRPC's error, the cause, holds a channel.
        return _unpickled, (type(self), *self.args), {**self.__dict__, "_cause": None}


def _unpickled(cls: type[CallFailed], *args: Any) -> CallFailed:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    return err


class StreamBroken(CallFailed):
    """A streamed reply that stopped short of its final chunk: the audio received is incomplete. Never
    retried, since the chunks already handed out would come again. ``code()`` is the cause's status
    (DATA_LOSS where the stream ended without an error but without its final chunk) and ``details()``
    says how much audio came before it stopped."""


class ServerBusy(CallFailed):
    """The server's RESOURCE_EXHAUSTED for a transient overload (it sent a pushback: too many calls in flight,
    a full queue), still refused once the call's retries or its deadline ran out. ``code()`` and
    ``details()`` are the server's last refusal's; ``retries`` is how many times the call was retried, and
    ``pushback`` the seconds that refusal asked the caller to wait."""

    def __init__(self, refusal: grpc.RpcError, retries: int, pushback: float, request_id: str = "") -> None:
        super().__init__(refusal.code(), refusal.details() or "", request_id, refusal)
        self.retries = retries
        self.pushback = pushback


def check_root_certificates(pem: bytes) -> None:
    """Raises ValueError unless ``pem`` holds PEM certificates: gRPC takes anything, then fails every call as
    UNAVAILABLE ("Failed to create security handshaker"), retried, naming neither the file nor its fault."""
    text = pem.decode("ascii", "replace")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context(cadata=text)
    except ssl.SSLError as exc:
        raise ValueError(f"a certificate in it does not parse ({exc.reason or exc})") from None


def keepalive_options(seconds: float | None) -> list[tuple[str, int]]:
    """gRPC channel options that ping a server silent for ``seconds`` during a call, and give up on it after
    as long again without an answer."""
    if seconds is None:
        return []
    if not seconds > 0:
        raise ValueError(f"keepalive={seconds}: give seconds > 0, or None for no pings")
    millis = max(1, round(seconds * 1000))
    return [("grpc.keepalive_time_ms", millis), ("grpc.keepalive_timeout_ms", millis),
            # How long gRPC waits for any ping's answer (a minute by default): with the keepalive timeout
            # alone, a stream from a frozen server failed after 61 s, not 2 s (keepalive=1).
            ("grpc.http2.ping_timeout_ms", millis),
            # An idle channel is not pinged: its next call's pings find a dead server, and idle clients
            # cost the server nothing.
            ("grpc.keepalive_permit_without_calls", 0),
            # A unary call sends nothing after its request, and by default gRPC stops pinging after two
            # pings with no data sent: a server that froze later in a long call went unnoticed.
            ("grpc.http2.max_pings_without_data", 0)]


def reconnect_options(backoff: float) -> list[tuple[str, int]]:
    """gRPC channel options that try to connect again at most ``RECONNECT_MAX_SECONDS`` after a failed try.
    Between its tries a channel fails every call at once without trying, and by default it waits 1 s, then
    1.6 times longer each time, up to 2 minutes: a server that began to listen at 5 s was first tried again
    at about 8 s, and the client's retries in between (its own backoff) each failed at once, spent."""
    initial = max(1, round(min(backoff, RECONNECT_MAX_SECONDS) * 1000))
    return [("grpc.initial_reconnect_backoff_ms", initial),
            ("grpc.max_reconnect_backoff_ms", round(RECONNECT_MAX_SECONDS * 1000))]


def server_pushback(err: grpc.RpcError) -> float | None:
    """The seconds a failed call's server asked its caller to wait before a retry (gRFC A6's trailing
    metadata ``grpc-retry-pushback-ms``); None where it sent none. A value that is negative or not a signed
    32-bit integer in ASCII digits is, as A6 reads it, the server asking not to retry at all: math.inf."""
    trailers = getattr(err, "trailing_metadata", None)  # not on errors the client makes itself
    for key, value in (trailers() if callable(trailers) else None) or ():
        if key != PUSHBACK_KEY:
            continue
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        if not re.fullmatch(r"-?[0-9]+", text) or not 0 <= int(text) < 2**31:
            return math.inf
        return int(text) / 1000
    return None


def _chosen(request_id: str | None) -> str:
    """A call's request id: the caller's, checked before the call, or a new one."""
    return new_request_id() if request_id is None else check_request_id(request_id)


def _request_id(ended: Any, sent: str) -> str:
    """The id under which the server logged a call that has ``ended`` (gRPC's error, or a finished stream),
    as it sent the id back in its trailers, else the id the call ``sent``: a server never reached sends
    nothing back."""
    trailers = getattr(ended, "trailing_metadata", None)
    for key, value in (trailers() if callable(trailers) else None) or ():
        if key == REQUEST_ID_KEY and is_sane(value):
            return value
    return sent


def _paced(code: grpc.StatusCode, pushback: float | None) -> bool:
    """Whether a refusal with ``code`` and the server's ``pushback`` is a server that is up and loading, saying
    when it expects to be ready (UNAVAILABLE with a pushback, as ``audiogan-server`` answers until its models
    are in). A load ends on its own, at a time the server estimates: a caller waits for it as long as its
    deadline allows, however many times it is told to come back, where a count of retries would give up on a
    slow load, or blind backoff hammer it. A busy server's pushback (RESOURCE_EXHAUSTED) still counts: an
    overload ends only when other callers' do, and a caller refused ``retries`` times hears so, as
    :class:`ServerBusy`."""
    return code == grpc.StatusCode.UNAVAILABLE and pushback is not None and pushback != math.inf


def _received(chunks: int, samples: int, rate: int) -> str:
    seconds = f", {samples / rate:.2f} s of audio" if rate else ""
    return f"the stream stopped after {chunks} chunk(s){seconds}, short of its end"


class AudioGanClient:
    """Client for an ``audiogan-server``.

    >>> with AudioGanClient("127.0.0.1:50051") as client:
    ...     audio, sr = client.vocode(mel)

    Calls that fail with UNAVAILABLE (server starting or restarting) are retried ``retries`` times with
    exponential backoff from ``backoff`` seconds. So is RESOURCE_EXHAUSTED where the server sent a pushback
    (gRPC's ``grpc-retry-pushback-ms``), which ``audiogan-server`` sends only for a transient overload (too
    many calls in flight, a full work queue, too many conversions), after the pushback or the backoff,
    whichever is longer; the last such refusal raises :class:`ServerBusy`. An UNAVAILABLE with a pushback
    (``audiogan-server`` loading its models, saying when it expects to be ready) is retried after the
    pushback or ``backoff``, whichever is longer, until the deadline (with ``timeout=None``, for as long as
    the server says it is loading): those retries do not count against ``retries``, though ``retries=0``
    still means none. RESOURCE_EXHAUSTED without a pushback (a request too big for the server ever to take:
    a reply over gRPC's message limit or over ``limits.max_reply_mb``) is not retried, nor is any error
    whose pushback is negative or garbled (the server asking for no retry, for UNAVAILABLE too, as gRPC's
    own retry policy reads it); every other error surfaces at once as :class:`CallFailed`, a
    ``grpc.RpcError`` with the server's code and message. ``timeout`` is each call's deadline in seconds,
    retries and their waits included, as a gRPC deadline is for the whole call: a caller who gives 10 s
    waits 10 s at most, not 10 s for every try, and a retry that could not be answered before the deadline
    is not begun (the server's error is raised at once). A stream is retried only until its first chunk has
    arrived; one that breaks off after that, or ends without its final chunk, raises :class:`StreamBroken`.
    Numbers out of range (``speed=0``, ``velocity=0``, a seed of -1: see ``audiogan_client.ranges``) raise
    ValueError naming the argument before any call, where the wire would read 0 as "the default"; None, or
    the documented default, leaves it to the server.

    ``keepalive``: during a call, after this many seconds in which the server sent nothing the client pings
    it, and a ping unanswered for as long again ends the connection, failing its calls as UNAVAILABLE (a
    stream with :class:`StreamBroken`): a server frozen or cut off mid-call is found within about twice
    this, where a call with ``timeout=None`` waited forever. The server must allow pings this often
    (``audiogan-server``'s ``min_ping_seconds``, 10 s by default) or it closes the connection as
    "too_many_pings". None: no pings.

    ``request_id`` (every method takes one): the call's id, sent as its ``x-request-id`` metadata; by
    default a new one per call. Its retries send the same id, so the server logs them under one, and the
    error a failed call raises carries it (``CallFailed.request_id``, and the end of its message): the id
    that finds the server's log line for it. An id that is empty, over 128 characters or not visible ASCII
    raises ValueError before any call (a server would log another in its place).
    """

    def __init__(self, target: str = "127.0.0.1:50051", timeout: float | None = 60.0, retries: int = 3,
                 backoff: float = 0.2, root_certificates: bytes | None = None, tls: bool = False,
                 keepalive: float | None = KEEPALIVE_SECONDS) -> None:
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        options = [("grpc.max_receive_message_length", 256 * 1024 * 1024),
                   ("grpc.max_send_message_length", 64 * 1024 * 1024), *keepalive_options(keepalive),
                   *reconnect_options(backoff)]
        if root_certificates is not None:
            check_root_certificates(root_certificates)
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

    def _retry(self, call: Callable[[float | None, Metadata], T], request_id: str | None) -> T:
        """``call(timeout, metadata)`` until it fails with nothing worth retrying (``_pause``), each try given
        what is left of the deadline, and every try the same ``request_id`` (a new one where None): the
        server logs the tries of one call under one id, and every error raised is a :class:`CallFailed`
        carrying it. A retry whose wait, and then an answer as slow as the last try's, would reach the
        deadline is not begun: the server's error, which says why (connection refused, a TLS handshake that
        failed, the server busy), is raised instead of a bare DEADLINE_EXCEEDED. A busy server's last refusal
        is raised as :class:`ServerBusy`. A server loading its models (UNAVAILABLE with a pushback) says
        when it expects to be ready: its retries count against the deadline alone, not ``retries``, and do
        not grow the backoff (``_paced``)."""
        sent = _chosen(request_id)
        metadata = ((REQUEST_ID_KEY, sent),)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        counted = 0  # retries that count against self.retries; they also set the backoff
        for attempt in itertools.count():
            started = time.monotonic()
            try:
                return call(None if deadline is None else max(deadline - started, 0.0), metadata)
            except grpc.RpcError as err:
                code, pushback = err.code(), server_pushback(err)
                pause = self._pause(code, pushback, counted)
                now = time.monotonic()
                paced = _paced(code, pushback) and self.retries > 0  # retries=0 asks for none, paced or not
                if pause is None or (counted == self.retries and not paced) or \
                        (deadline is not None and now + pause + (now - started) >= deadline):
                    request_id = _request_id(err, sent)
                    if pause is not None and code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # retried: a pushback
                        raise ServerBusy(err, attempt, pushback or 0.0, request_id) from err
                    if isinstance(err, CallFailed):  # the client's own (an upload's reply without its end)
                        err.request_id = err.request_id or request_id
                        raise
                    raise CallFailed(code, err.details() or "", request_id, err) from err
                counted += not paced
                time.sleep(pause)
        raise AssertionError("unreachable")

    def _pause(self, code: grpc.StatusCode, pushback: float | None, counted: int) -> float | None:
        """How long to wait before retrying after a refusal with ``code`` and the server's ``pushback``,
        ``counted`` retries in (``_retry``), or None: not retried. UNAVAILABLE is retried, and
        RESOURCE_EXHAUSTED only with a server's pushback, which marks an overload that passes (a request too
        big for the server comes without one, and would fail again). The wait is the backoff or the pushback,
        whichever is longer; a pushback asking for no retry is obeyed."""
        if pushback == math.inf:
            return None
        if _paced(code, pushback):  # the server's estimate replaces a backoff grown while no server answered
            return max(pushback or 0.0, self.backoff)
        if code == grpc.StatusCode.UNAVAILABLE or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and pushback is not None):
            return max(pushback or 0.0, self.backoff * 2**counted)
        return None

    def _unary(self, method: Callable[..., T], request: Any, request_id: str | None) -> T:
        return self._retry(lambda timeout, metadata: method(request, timeout=timeout, metadata=metadata), request_id)

    @staticmethod
    def _format(sample_rate: int | None, encoding: str | int) -> pb.AudioFormat:
        check(sample_rate=sample_rate)
        return pb.AudioFormat(encoding=encoding_value(encoding), sample_rate_hz=sample_rate or 0)

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
                            sample_rate: int | None, encoding: str | int, speed: float | None,
                            pitch_shift: float | None, speaker: int, timings: bool = False) -> pb.SynthesizeRequest:
        if (text is None) == (mel is None):
            raise ValueError("give exactly one of text= or mel=")
        check(speed=speed, pitch_shift=pitch_shift, speaker=speaker)
        request = pb.SynthesizeRequest(voice_name=voice, vocoder=vocoder, speed=speed or 0.0,
                                       pitch_shift=pitch_shift or 0.0,
                                       speaker=speaker, format=self._format(sample_rate, encoding), timings=timings)
        if text is not None:
            request.text = text
        else:
            request.mel.CopyFrom(mel_message(mel))
        return request

    def synthesize(self, text: str | None = None, *, mel: np.ndarray | None = None, voice: str = "",
                   vocoder: str = "", sample_rate: int | None = 0, encoding: str | int = "float32",
                   speed: float | None = 1.0, pitch_shift: float | None = 0.0, speaker: int = 0,
                   request_id: str | None = None) -> AudioResult:
        """Text (through a voice, as one of its speakers) or a log-mel (through a vocoder) -> the whole audio."""
        request = self._synthesize_request(text, mel, voice, vocoder, sample_rate, encoding, speed, pitch_shift,
                                           speaker)
        return self._result(self._unary(self.stub.Synthesize, request, request_id))

    def synthesize_timed(self, text: str, *, voice: str = "", sample_rate: int | None = 0,
                         encoding: str | int = "float32", speed: float | None = 1.0, pitch_shift: float | None = 0.0,
                         speaker: int = 0, request_id: str | None = None) -> TimedAudio:
        """As :meth:`synthesize`, with when each sentence and word is said (captions, highlighting, lip sync)."""
        request = self._synthesize_request(text, None, voice, "", sample_rate, encoding, speed, pitch_shift,
                                           speaker, timings=True)
        audio = self._unary(self.stub.Synthesize, request, request_id)
        return TimedAudio(*self._result(audio), timed(audio.sentences), timed(audio.words), timed(audio.marks))

    def stream_chunks(self, text: str | None = None, *, mel: np.ndarray | None = None, voice: str = "",
                      vocoder: str = "", sample_rate: int | None = 0, encoding: str | int = "float32",
                      speed: float | None = 1.0, pitch_shift: float | None = 0.0, speaker: int = 0,
                      timings: bool = False, request_id: str | None = None) -> Iterator[pb.AudioChunk]:
        """The raw ``AudioChunk`` messages of ``SynthesizeStream`` (sequence, sample offset, final flag; with
        ``timings``, each sentence's timings on the chunk where its audio begins)."""
        request = self._synthesize_request(text, mel, voice, vocoder, sample_rate, encoding, speed, pitch_shift,
                                           speaker, timings)
        yield from self._checked_stream(
            lambda timeout, metadata: self.stub.SynthesizeStream(request, timeout=timeout, metadata=metadata),
            request_id)

    @staticmethod
    def _opened(call: Any) -> tuple[Any, pb.AudioChunk | None]:
        # The first chunk is awaited inside the retry: an UNAVAILABLE before any audio is retried, none after.
        return call, next(call, None)

    def _checked_stream(self, start: Callable[[float | None, Metadata], Any],
                        request_id: str | None) -> Iterator[pb.AudioChunk]:
        """The chunks of the streaming call ``start(timeout, metadata)`` as they come, raising
        :class:`StreamBroken` where the stream stops short of its final chunk."""
        sent = _chosen(request_id)
        call, first = self._retry(lambda timeout, metadata: self._opened(start(timeout, metadata)), sent)
        count = samples = rate = 0
        final = False
        try:
            for chunk in itertools.chain([first] if first is not None else [], call):
                yield chunk
                count, final, rate = count + 1, chunk.final, chunk.sample_rate_hz or rate
                samples = chunk.sample_offset + len(chunk.audio) // sample_width(chunk.encoding)
        except grpc.RpcError as err:
            raise StreamBroken(err.code(), f"{err.details()} ({_received(count, samples, rate)})",
                               _request_id(err, sent), err) from err
        finally:
            call.cancel()  # a caller that stops reading frees the server's slot now, not at garbage collection
        if not final:
            raise StreamBroken(grpc.StatusCode.DATA_LOSS, f"the stream ended without its final chunk "
                               f"({_received(count, samples, rate)})", _request_id(call, sent))

    def stream(self, text: str | None = None, **kwargs: Any) -> Iterator[np.ndarray]:
        """Audio as float32 numpy chunks, each yielded as soon as the server sends it."""
        for chunk in self.stream_chunks(text, **kwargs):
            if chunk.audio:
                yield decode(chunk.audio, chunk.encoding)

    def vocode(self, mel: np.ndarray, *, vocoder: str = "", sample_rate: int | None = 0,
               encoding: str | int = "float32", request_id: str | None = None) -> AudioResult:
        request = pb.VocodeRequest(mel=mel_message(mel), vocoder=vocoder, format=self._format(sample_rate, encoding))
        return self._result(self._unary(self.stub.Vocode, request, request_id))

    def notes(self, notes: Iterable[dict[str, Any]], *, model: str = "", sample_rate: int | None = 0,
              encoding: str | int = "float32", request_id: str | None = None) -> list[AudioResult]:
        """Notes given as dicts: ``{"pitch": 60, "timbre": "violin" | [latent...], "velocity": 100,
        "seconds": 4.0, "seed": 0}``; "instrument" or "latent" may name the timbre instead, as
        ``TimbreModel.note`` and render jobs name it."""
        specs = []
        for i, note in enumerate(notes):
            note = {k: v for k, v in note.items() if v is not None}  # None: the server's default, as if left out
            given = [k for k in NOTE_TIMBRE_KEYS if k in note]
            if len(given) > 1:
                raise ValueError(f"notes[{i}]: give one of {', '.join(given)}, not both")
            timbre = note.pop(given[0]) if given else None
            if unknown := sorted(set(note) - set(NOTE_FIELDS)):  # protobuf's message names no note
                raise ValueError(f"notes[{i}]: unknown key(s) {', '.join(unknown)}; a note takes "
                                 f"{', '.join(NOTE_FIELDS + NOTE_TIMBRE_KEYS)}")
            try:  # a seed of -1, a pitch of 60.5, velocity 0 (which the wire reads as 100): which note and field
                check(**note)
            except ValueError as exc:
                raise ValueError(f"notes[{i}]: {exc}") from None
            spec = pb.NoteSpec(**note)
            if timbre is not None:
                spec.timbre.CopyFrom(self.timbre(timbre))
            specs.append(spec)
        request = pb.GenerateNotesRequest(notes=specs, model=model, format=self._format(sample_rate, encoding))
        response = self._unary(self.stub.GenerateNotes, request, request_id)
        return [self._result(a) for a in response.notes]

    def interpolate(self, a: TimbreLike, b: TimbreLike, *, pitch: int, alpha: float | None = None,
                    steps: int | None = None, velocity: int | None = 100, seconds: float | None = None,
                    mode: str = "slerp", seed: int = 0, model: str = "", sample_rate: int | None = 0,
                    encoding: str | int = "float32", request_id: str | None = None,
                    ) -> tuple[list[AudioResult], list[float]]:
        """Notes along the way from timbre a to b: one at ``alpha`` or ``steps`` evenly spaced ones."""
        if (alpha is None) == (steps is None):
            raise ValueError("give exactly one of alpha= or steps=")
        if steps is not None and steps <= 0:  # 0 on the wire means "use alpha": it would ask for one note
            raise ValueError(f"steps={steps}: give 2 or more (or alpha= for one note)")
        check(pitch=pitch, alpha=alpha, velocity=velocity, seconds=seconds, seed=seed)
        try:
            request = pb.InterpolateTimbreRequest(
                a=self.timbre(a), b=self.timbre(b), alpha=alpha or 0.0, steps=steps or 0, pitch=pitch,
                velocity=velocity or 0, seconds=seconds or 0.0, mode=mode, seed=seed, model=model,
                format=self._format(sample_rate, encoding))
        except TypeError as exc:  # protobuf's message names no argument
            raise ValueError(f"interpolate: {exc} (steps is a whole number)") from None
        response = self._unary(self.stub.InterpolateTimbre, request, request_id)
        return [self._result(n) for n in response.notes], list(response.alphas)

    def convert(self, audio: str | Path | bytes, *, to: TimbreLike, model: str = "", sample_rate: int | None = 0,
                encoding: str | int = "float32", flat: bool = False, to_b: TimbreLike | None = None,
                mode: str = "slerp", seed: int = 0, request_id: str | None = None) -> AudioResult:
        """Upload a WAV/FLAC/OGG (path or file bytes) in chunks; return it re-rendered with timbre ``to``,
        following the recording's vibrato, bends and dynamics within each note (or, if ``flat``, each note as
        the model plays it). With ``to_b`` the timbre morphs from ``to`` at the first note to ``to_b`` at the
        last (``mode``: "slerp" or "lerp"). Note i of the recording takes noise seed ``seed`` + i, as the
        library's ``convert`` and render jobs seed them: same seed, same result."""
        check(seed=seed)
        data = audio if isinstance(audio, bytes) else Path(audio).read_bytes()
        options = pb.ConvertOptions(target=self.timbre(to), model=model, format=self._format(sample_rate, encoding),
                                    flat=flat, mode=mode, seed=seed)
        if to_b is not None:
            options.target_b.CopyFrom(self.timbre(to_b))

        def upload() -> Iterator[pb.ConvertTimbreRequest]:
            yield pb.ConvertTimbreRequest(options=options)
            for start in range(0, len(data), UPLOAD_CHUNK_BYTES):
                yield pb.ConvertTimbreRequest(audio_chunk=data[start:start + UPLOAD_CHUNK_BYTES])

        def call(timeout: float | None, metadata: Metadata) -> AudioResult:
            # upload() anew on each try: a generator spent by a failed try would send nothing.
            chunks = list(self.stub.ConvertTimbre(upload(), timeout=timeout, metadata=metadata))
            if not chunks or not chunks[-1].final:  # nothing was handed out yet: all or nothing
                raise StreamBroken(grpc.StatusCode.DATA_LOSS, f"the converted audio ended without its final "
                                                              f"chunk, after {len(chunks)} chunk(s)")
            samples = [decode(c.audio, c.encoding) for c in chunks if c.audio]
            rate = chunks[-1].sample_rate_hz if chunks else sample_rate
            return AudioResult(np.concatenate(samples) if samples else np.zeros(0, np.float32), rate)
        return self._retry(call, request_id)

    def list_voices(self, *, request_id: str | None = None) -> dict[str, list[dict[str, Any]]]:
        response = self._unary(self.stub.ListVoices, pb.ListVoicesRequest(), request_id)
        return {"voices": [_info(m) for m in response.voices], "vocoders": [_info(m) for m in response.vocoders]}

    def list_instruments(self, model: str = "", *, request_id: str | None = None) -> list[dict[str, str]]:
        request = pb.ListInstrumentsRequest(model=model)
        response = self._unary(self.stub.ListInstruments, request, request_id)
        return [{"name": i.name, "family": i.family, "model": i.model} for i in response.instruments]


def _info(model: pb.ModelInfo) -> dict[str, Any]:
    return {"name": model.name, "sample_rate": model.sample_rate_hz, "language_code": model.language_code,
            "speakers": model.speakers, "card": json.loads(model.card_json) if model.card_json else {}}

"""The AudioGan servicer: validate, admit, batch, encode. Calls whose model is not loaded say so."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import soundfile as sf
import torch
from audiogan_client._proto import audiogan_pb2 as pb
from audiogan_client._proto import audiogan_pb2_grpc as pb_grpc

from audiogan.audio.io import AudioError, load_audio
from audiogan.audio.stream import StreamResampler
from audiogan.timbre import TimbreModel
from audiogan.timbre.choices import MODES
from audiogan.timbre.convert import Conversion
from audiogan.tts.lines import Line
from audiogan.tts.timing import Timings
from audiogan.vocoder.inference import MEL_CEILING
from audiogan_server.budget import ReplyBudget, check_message_size, reply_bytes
from audiogan_server.config import ServerConfig
from audiogan_server.encoding import check_format, encode, encode_raw, output_rate
from audiogan_server.errors import RequestError, ended_by_its_caller, invalid, rpc
from audiogan_server.metrics import Metrics
from audiogan_server.models import ModelRegistry, NoteItem, Ramp, TimbreEngine, VocoderEngine, VoiceEngine
from audiogan_server.overload import Slots
from audiogan_server.request_ids import run_in_call

# The lowest mel value taken, far below any log floor (ln(1e-5) = -11.5); the ceiling is the Vocoder's own,
# checked here first to name the request's field.
MEL_FLOOR = -100.0
# Uploads decode to at most max_audio_seconds x 192 kHz x 2 channels: compressed silence is tiny, and a header
# may declare any rate and channel count (0.24 MB of FLAC at 655 kHz took 928 MB to decode).
MAX_UPLOAD_RATE = 192_000
MAX_UPLOAD_CHANNELS = 2


class AudioGanService(pb_grpc.AudioGanServicer):
    def __init__(self, config: ServerConfig, registry: ModelRegistry, metrics: Metrics) -> None:
        self.config = config
        self.limits = config.limits
        self.registry = registry
        self.metrics = metrics
        self.ready = False
        # Until calls have ended the server has no measure of how long they take: half a second is about a
        # sentence's synthesis on 2 CPU cores, and a conversion of a few notes takes seconds.
        self.calls = Slots(self.limits.max_concurrent, "calls in flight", initial_s=0.5)
        # Conversions take their turns on a thread of their own: a long recording neither holds the default
        # pool that encodes every other call's audio, nor runs once its caller has gone while it waited.
        self.conversions = ThreadPoolExecutor(max_workers=1, thread_name_prefix="convert")
        self.converting = Slots(self.limits.max_conversions, "conversions under way", initial_s=2.0)
        self.replies = ReplyBudget(self.limits.max_reply_mb, metrics.observe_replies)
        self.active: collections.Counter[str] = collections.Counter()  # calls in flight by RPC: the drain's log
        self.cut_off_at: float | None = None

    @contextlib.asynccontextmanager
    async def admit(self, method: str) -> AsyncIterator[None]:
        if not self.ready:  # with when the load is expected to end: clients need not guess how long to wait
            raise RequestError(grpc.StatusCode.UNAVAILABLE, "the server is loading its models; retry shortly",
                               self.registry.progress.pushback())
        with self.calls.hold():
            self.metrics.in_flight.inc()
            self.active[method] += 1
            try:
                yield
            finally:
                self.metrics.in_flight.dec()
                self.active[method] -= 1

    def drain(self, grace_s: float) -> None:
        """Shutting down: gRPC cuts off the calls still running ``grace_s`` from now, which their callers get
        as UNAVAILABLE; ``cut_off`` says so, so that they are not taken for calls their callers cancelled."""
        self.cut_off_at = time.monotonic() + grace_s
        self.metrics.serving.set(0)

    def cut_off(self) -> bool:
        return self.cut_off_at is not None and time.monotonic() >= self.cut_off_at

    # -- input checks ---------------------------------------------------------------------------------

    def _mel(self, message: pb.Mel, engine: VocoderEngine, field: str = "mel") -> torch.Tensor:
        expected = engine.vocoder.config.mel.n_mels
        if message.n_mels != expected:
            raise invalid(f"{field}.n_mels", f"{message.n_mels} mel bins; vocoder {engine.name!r} expects {expected}")
        size = len(message.data)
        if size == 0 or size % (4 * expected):
            raise invalid(f"{field}.data", f"{size} bytes is not n_mels x frames little-endian float32 values "
                                           f"(a positive multiple of {4 * expected} bytes)")
        mel = np.frombuffer(message.data, dtype="<f4").reshape(expected, -1)
        shortest = _min_frames(engine)
        if mel.shape[1] < shortest:
            raise invalid(f"{field}.data", f"{mel.shape[1]} frame(s) is too short: vocoder {engine.name!r} "
                                           f"needs at least {shortest}")
        if not np.isfinite(mel).all():
            raise invalid(f"{field}.data", "contains NaN or Inf values")
        self._mel_range(mel, engine, field)
        seconds = mel.shape[1] * engine.vocoder.hop_length / engine.sample_rate
        if seconds > self.limits.max_audio_seconds:
            raise invalid(field, f"{seconds:.1f} s of audio exceeds this server's limit of "
                                 f"{self.limits.max_audio_seconds:g} s per call")
        return torch.from_numpy(mel.astype(np.float32))

    @staticmethod
    def _mel_range(mel: np.ndarray, engine: VocoderEngine, field: str) -> None:
        """Finite but absurd values (a linear or power mel, garbage) would come back as NaN audio, blamed
        on the output; natural-log magnitudes lie between the mel's log floor and a few units."""
        low, high = float(mel.min()), float(mel.max())
        if low >= MEL_FLOOR and high <= MEL_CEILING:
            return
        floor = engine.vocoder.config.mel.log_floor
        raise invalid(f"{field}.data", f"values span {low:.4g}..{high:.4g}, outside {MEL_FLOOR:g}..{MEL_CEILING:g}: "
                                       f"vocoder {engine.name!r} takes natural-log magnitudes, from "
                                       f"ln({floor:g}) = {np.log(floor):.1f} to a few units (a linear or power mel?)")

    def _voice(self, request: pb.SynthesizeRequest) -> VoiceEngine:
        """Check a text request's fields, then find its voice."""
        if not request.text.strip():
            raise invalid("text", "is empty")
        if len(request.text) > self.limits.max_text_chars:
            raise invalid("text", f"{len(request.text)} characters exceeds this server's limit of "
                                  f"{self.limits.max_text_chars}; split it over several calls")
        if request.speed and not 0.25 <= request.speed <= 4.0:
            raise invalid("speed", f"{request.speed:g} is out of range 0.25..4")
        if not -12.0 <= request.pitch_shift <= 12.0:
            raise invalid("pitch_shift", f"{request.pitch_shift:g} semitones is out of range -12..12")
        voice = self.registry.voice(request.voice_name)
        if request.language_code and not _speaks(voice, request.language_code):
            raise invalid("language_code", f"{request.language_code!r}: voice {voice.name!r} speaks "
                                           f"{_language_code(voice)}")
        if request.vocoder and request.vocoder != voice.vocoder.name:
            raise invalid("vocoder", f"voice {voice.name!r} speaks through vocoder {voice.vocoder.name!r}")
        if not 0 <= request.speaker < voice.tts.speakers:
            raise invalid("speaker", f"{request.speaker} is out of range: voice {voice.name!r} has speakers "
                                     f"0..{voice.tts.speakers - 1}")
        return voice

    async def _lines(self, voice: VoiceEngine, text: str) -> list[Line]:
        try:
            return await voice.lines(text)
        except ValueError as exc:
            raise invalid("text", str(exc)) from None

    def _check_length(self, frames: int, voice: VoiceEngine, silence: float) -> None:
        """``frames`` of speech so far plus the text's pauses, all known from its lines: a lower bound on the
        call's audio, so a text is refused as soon as it is sure to cross the limit, not after."""
        seconds = frames * voice.vocoder.vocoder.hop_length / voice.vocoder.sample_rate + silence
        if seconds > self.limits.max_audio_seconds:
            raise invalid("text", f"{seconds:.1f} s of speech and pauses exceeds this server's limit of "
                                  f"{self.limits.max_audio_seconds:g} s per call")

    async def _speak(self, voice: VoiceEngine, request: pb.SynthesizeRequest) -> pb.Audio:
        """Whole text -> audio: all sentences through the acoustic batcher, then (once the reply's memory
        is free, see ``ReplyBudget``) the vocoder batcher, in waves of ``max_batch`` so that a long text
        cannot flood the queues."""
        lines = await self._lines(voice, request.text)
        silence = _silence_seconds(lines)
        self._check_length(0, voice, silence)
        size = self.config.batching.max_batch
        acoustic: list[tuple[torch.Tensor, list[int]]] = []
        frames = 0
        for start in range(0, len(lines), size):
            group = await asyncio.gather(*(voice.mel(x, request.speed or 1.0, request.pitch_shift,
                                                     request.speaker) for x in lines[start:start + size]))
            acoustic += group
            frames += sum(mel.shape[-1] for mel, _ in group)
            self._check_length(frames, voice, silence)  # after each wave: a text far over the limit stops early
        mels = [mel for mel, _ in acoustic]
        rate = voice.vocoder.sample_rate
        seconds = frames * voice.vocoder.vocoder.hop_length / rate + silence
        async with self._reply_room(seconds, rate, request.format, "this text's audio"):
            waves: list[torch.Tensor] = []
            for start in range(0, len(mels), size):
                waves += await asyncio.gather(*(voice.vocoder.vocode(m) for m in mels[start:start + size]))
            audio = await self._encode(voice.tts.join(waves, lines), rate, request.format)
        if request.timings:
            _add_timings(audio, voice.timings(lines, [d for _, d in acoustic]))
        return audio

    async def _spoken(self, voice: VoiceEngine, lines: list[Line], speed: float, pitch_shift: float,
                      speaker: int, timed: list[Timings] | None = None) -> AsyncIterator[torch.Tensor]:
        """Sentence by sentence, vocoded in chunks; the next sentence's mel is computed meanwhile. With
        ``timed``, each sentence's timings are put there as its audio is about to be yielded."""
        silence = _silence_seconds(lines)
        self._check_length(0, voice, silence)  # pauses alone over the limit: refused before any audio
        pending = asyncio.ensure_future(voice.mel(lines[0], speed, pitch_shift, speaker))
        frames = position = 0
        ramp = Ramp(self.config.batching.first_chunk_frames)  # chunk sizes grow across the call's sentences
        try:
            if lines[0].lead:
                yield self._pause(voice, ramp, lines[0].lead)
            for i, line in enumerate(lines):
                mel, durations = await pending
                frames += mel.shape[-1]
                self._check_length(frames, voice, silence)  # before this sentence's audio is sent
                if timed is not None:
                    timed.append(voice.timings([line], [durations], position))
                    position = timed[-1].next_start
                if i + 1 < len(lines):
                    pending = asyncio.ensure_future(voice.mel(lines[i + 1], speed, pitch_shift, speaker))
                async for chunk in voice.vocoder.stream(mel, ramp):
                    yield chunk
                if line.pause:
                    yield self._pause(voice, ramp, line.pause)
        finally:
            pending.cancel()

    @staticmethod
    def _pause(voice: VoiceEngine, ramp: Ramp, seconds: float) -> torch.Tensor:
        """Silence plays on the listener's clock like speech: it puts off when the next chunk is due."""
        ramp.handed_out(seconds, asyncio.get_running_loop().time())
        return voice.silence(seconds)

    def _mel_input(self, request: pb.SynthesizeRequest) -> tuple[VocoderEngine, torch.Tensor]:
        if request.WhichOneof("input") is None:
            raise invalid("input", "set text or mel")
        if request.speed not in (0.0, 1.0) or request.pitch_shift:
            raise invalid("speed", "speed and pitch_shift apply to text input only")
        if request.speaker:
            raise invalid("speaker", "applies to text input only")
        if request.timings:
            raise invalid("timings", "apply to text input only")
        engine = self.registry.vocoder(request.vocoder)
        return engine, self._mel(request.mel, engine)

    def _timbre(self, timbre: pb.Timbre, field: str) -> None:
        source = timbre.WhichOneof("source")
        if source is None:
            raise invalid(field, "set instrument or latent")
        if source == "instrument" and not timbre.instrument.strip():
            raise invalid(f"{field}.instrument", "is empty")
        if source == "latent" and not all(np.isfinite(timbre.latent.values)):
            raise invalid(f"{field}.latent", "contains NaN or Inf values")

    def _mode(self, mode: str, field: str) -> None:
        if mode and mode not in MODES:
            raise invalid(field, f"{mode!r} is not {' or '.join(MODES)}")

    def _note(self, pitch: int, velocity: int, seconds: float, field: str) -> None:
        if not 0 <= pitch <= 127:
            raise invalid(f"{field}pitch", f"{pitch} is not a MIDI note number (0..127)")
        if not 0 <= velocity <= 127:
            raise invalid(f"{field}velocity", f"{velocity} is out of range 1..127 (0 = default)")
        if not 0.0 <= seconds <= self.limits.max_audio_seconds:
            raise invalid(f"{field}seconds", f"{seconds:g} is out of range 0..{self.limits.max_audio_seconds:g}")

    def _upload(self, data: bytes) -> tuple[torch.Tensor, int]:
        """An uploaded file, decoded only once its header shows it within the limit: a small file of silence
        can decode to gigabytes. soundfile never decodes more frames than the header declares."""
        try:
            info = sf.info(io.BytesIO(data))
        except (RuntimeError, TypeError):  # unreadable: load_audio below says why
            info = None
        if info is not None:
            if info.samplerate > MAX_UPLOAD_RATE:
                raise invalid("audio_chunk", f"its header declares {info.samplerate} Hz; uploads may be at most "
                                             f"{MAX_UPLOAD_RATE} Hz")
            if info.channels > MAX_UPLOAD_CHANNELS:
                raise invalid("audio_chunk", f"its header declares {info.channels} channels; uploads may have at "
                                             f"most {MAX_UPLOAD_CHANNELS} (mono or stereo)")
            if info.samplerate > 0:
                self._check_upload_length(info.frames / info.samplerate, "its header declares ")
        try:
            wave, rate = load_audio(data)
        except AudioError as exc:
            raise invalid("audio_chunk", str(exc)) from None
        self._check_upload_length(wave.numel() / rate)
        return wave, rate

    def _check_upload_length(self, seconds: float, source: str = "") -> None:
        if seconds > self.limits.max_audio_seconds:
            raise invalid("audio_chunk", f"{source}{seconds:.1f} s of audio, over this server's limit of "
                                         f"{self.limits.max_audio_seconds:g} s")

    # -- speech and vocoding -----------------------------------------------------------------------------

    async def _encode(self, wave: torch.Tensor, rate: int, fmt: pb.AudioFormat) -> pb.Audio:
        # Resampling and FLAC encoding run off the event loop, beside the model thread.
        return await asyncio.to_thread(encode, wave, rate, fmt)

    def _reply_room(self, seconds: float, rate: int, fmt: pb.AudioFormat,
                    what: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Memory for a whole reply of ``seconds`` at the model's ``rate``, sent as ``fmt`` (``ReplyBudget``),
        once it is known to fit in one message."""
        check_message_size(seconds, output_rate(fmt, rate), fmt.encoding or pb.PCM16, what)
        return self.replies.hold(reply_bytes(seconds, rate, output_rate(fmt, rate)), what)

    async def _vocoded(self, engine: VocoderEngine, mel: torch.Tensor, fmt: pb.AudioFormat) -> pb.Audio:
        """A whole mel -> an ``Audio`` reply, once the reply's memory is free (``ReplyBudget``)."""
        seconds = mel.shape[-1] * engine.vocoder.hop_length / engine.sample_rate
        rate = engine.sample_rate
        async with self._reply_room(seconds, rate, fmt, "this mel's audio"):
            return await self._encode(await engine.vocode(mel), rate, fmt)

    @rpc
    async def Synthesize(self, request: pb.SynthesizeRequest, context: grpc.aio.ServicerContext) -> pb.Audio:
        check_format(request.format, self.limits)
        if request.WhichOneof("input") == "text":
            return await self._speak(self._voice(request), request)
        engine, mel = self._mel_input(request)
        return await self._vocoded(engine, mel, request.format)

    @rpc
    async def Vocode(self, request: pb.VocodeRequest, context: grpc.aio.ServicerContext) -> pb.Audio:
        check_format(request.format, self.limits)
        engine = self.registry.vocoder(request.vocoder)
        return await self._vocoded(engine, self._mel(request.mel, engine), request.format)

    @rpc
    async def SynthesizeStream(self, request: pb.SynthesizeRequest,
                               context: grpc.aio.ServicerContext) -> AsyncIterator[pb.AudioChunk]:
        check_format(request.format, self.limits, stream=True)
        pieces: AsyncIterator[torch.Tensor]
        timed: list[Timings] | None = [] if request.timings else None
        if request.WhichOneof("input") == "text":
            voice = self._voice(request)
            lines = await self._lines(voice, request.text)
            pieces = self._spoken(voice, lines, request.speed or 1.0, request.pitch_shift, request.speaker, timed)
            native = voice.vocoder.sample_rate
        else:
            engine, mel = self._mel_input(request)
            pieces, native = engine.stream(mel), engine.sample_rate
        encoding = request.format.encoding or pb.PCM16
        rate = output_rate(request.format, native)
        resampler = StreamResampler(native, rate)
        sequence = offset = 0
        async for wave in pieces:
            audio = resampler.push(wave)
            chunk = pb.AudioChunk(sequence=sequence, sample_offset=offset, audio=encode_raw(audio, encoding),
                                  encoding=encoding, sample_rate_hz=rate)
            for timings in timed or []:
                _add_timings(chunk, timings)
            if timed:
                timed.clear()
            yield chunk
            sequence, offset = sequence + 1, offset + audio.numel()
        tail = resampler.flush()
        yield pb.AudioChunk(sequence=sequence, sample_offset=offset, audio=encode_raw(tail, encoding),
                            encoding=encoding, sample_rate_hz=rate, final=True)

    # -- instrument notes --------------------------------------------------------------------------------

    def _timbre_vector(self, engine: TimbreEngine, timbre: pb.Timbre, field: str) -> torch.Tensor:
        model = engine.model
        if timbre.WhichOneof("source") == "instrument":
            try:
                name = model.instrument_name(timbre.instrument)
            except ValueError as exc:
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"{field}.instrument: {exc} (model {engine.name!r})"
                                   ) from None
            return model.timbre(name)
        if len(timbre.latent.values) != model.cfg.timbre_dim:
            raise invalid(f"{field}.latent", f"{len(timbre.latent.values)} values; model {engine.name!r} "
                                              f"takes {model.cfg.timbre_dim}")
        return model.timbre(list(timbre.latent.values))

    def _note_item(self, engine: TimbreEngine, pitch: int, timbre: torch.Tensor, velocity: int, seconds: float,
                   seed: int, field: str) -> NoteItem:
        cfg = engine.model.cfg
        if not cfg.pitch_min <= pitch <= cfg.pitch_max:
            raise invalid(f"{field}pitch", f"{pitch} is outside the range {cfg.pitch_min}..{cfg.pitch_max} of "
                                           f"model {engine.name!r}")
        if seconds > cfg.spectral.seconds:
            raise invalid(f"{field}seconds", f"{seconds:g} exceeds the model's note length {cfg.spectral.seconds:g}")
        if 0 < seconds < cfg.spectral.frame_seconds:  # else a note of 0 samples comes back as if all were well
            raise invalid(f"{field}seconds", f"{seconds:g} is shorter than one frame of model {engine.name!r} "
                                             f"({cfg.spectral.frame_seconds:.3f} s); 0 = the model's full note length")
        return NoteItem(pitch, timbre, velocity or 100, seed, seconds or None)

    async def _notes(self, engine: TimbreEngine, items: list[NoteItem], fmt: pb.AudioFormat) -> list[pb.Audio]:
        rate = engine.model.sample_rate
        seconds = sum(item.seconds or engine.model.cfg.spectral.seconds for item in items)
        async with self._reply_room(seconds, rate, fmt, "these notes"):
            waves = await asyncio.gather(*(engine.note(item) for item in items))
            return list(await asyncio.gather(*(self._encode(w, rate, fmt) for w in waves)))

    @rpc
    async def GenerateNotes(self, request: pb.GenerateNotesRequest,
                            context: grpc.aio.ServicerContext) -> pb.GenerateNotesResponse:
        check_format(request.format, self.limits)
        if not request.notes:
            raise invalid("notes", "is empty")
        if len(request.notes) > self.limits.max_notes:
            raise invalid("notes", f"{len(request.notes)} notes exceeds this server's limit of {self.limits.max_notes}")
        for i, note in enumerate(request.notes):
            self._note(note.pitch, note.velocity, note.seconds, f"notes[{i}].")
            self._timbre(note.timbre, f"notes[{i}].timbre")
        engine = self.registry.timbre(request.model)
        items = [self._note_item(engine, n.pitch, self._timbre_vector(engine, n.timbre, f"notes[{i}].timbre"),
                                 n.velocity, n.seconds, n.seed, f"notes[{i}].") for i, n in enumerate(request.notes)]
        return pb.GenerateNotesResponse(notes=await self._notes(engine, items, request.format))

    @rpc
    async def InterpolateTimbre(self, request: pb.InterpolateTimbreRequest,
                                context: grpc.aio.ServicerContext) -> pb.InterpolateTimbreResponse:
        check_format(request.format, self.limits)
        self._timbre(request.a, "a")
        self._timbre(request.b, "b")
        if not 0.0 <= request.alpha <= 1.0:
            raise invalid("alpha", f"{request.alpha:g} is out of range 0..1")
        if request.steps and request.alpha:
            raise invalid("alpha", "and steps are both set: set alpha for one note or steps for several, not both")
        if request.steps and not 2 <= request.steps <= self.limits.max_notes:
            raise invalid("steps", f"{request.steps} is out of range 2..{self.limits.max_notes} (0 = use alpha)")
        self._mode(request.mode, "mode")
        self._note(request.pitch, request.velocity, request.seconds, "")
        engine = self.registry.timbre(request.model)
        a, b = self._timbre_vector(engine, request.a, "a"), self._timbre_vector(engine, request.b, "b")
        alphas = [i / (request.steps - 1) for i in range(request.steps)] if request.steps else [request.alpha]
        mixed = engine.model.mix(a, b, alphas, request.mode or "slerp")
        # One seed for every step: the noise stays, only the timbre moves.
        items = [self._note_item(engine, request.pitch, t, request.velocity, request.seconds, request.seed, "")
                 for t in mixed]
        return pb.InterpolateTimbreResponse(notes=await self._notes(engine, items, request.format), alphas=alphas)

    @rpc
    async def ConvertTimbre(self, requests: AsyncIterator[pb.ConvertTimbreRequest],
                            context: grpc.aio.ServicerContext) -> AsyncIterator[pb.AudioChunk]:
        requests = aiter(requests)
        first = await self._upload_part(requests, context)
        if first is None or first.WhichOneof("part") != "options":
            raise invalid("options", "the first message must carry the options")
        with self.converting.hold():
            async with contextlib.aclosing(self._convert(first.options, requests, context)) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def _upload_part(self, requests: AsyncIterator[pb.ConvertTimbreRequest],
                           context: grpc.aio.ServicerContext) -> pb.ConvertTimbreRequest | None:
        """The upload's next message, None at its end. A caller that sends nothing for
        ``limits.upload_idle_seconds`` is cut off: an idle upload held a call slot and a conversion slot for
        as long as it stayed connected, and enough of them shut every caller out."""
        try:
            part = await asyncio.wait_for(anext(requests, None), self.limits.upload_idle_seconds)
        except (TimeoutError, asyncio.TimeoutError):  # distinct classes before Python 3.11
            raise RequestError(grpc.StatusCode.DEADLINE_EXCEEDED,
                               f"the upload stalled: nothing arrived for {self.limits.upload_idle_seconds:g} s "
                               f"(limits.upload_idle_seconds)") from None
        if part is None:
            await ended_by_its_caller(context)
        return part

    async def _convert(self, options: pb.ConvertOptions, requests: AsyncIterator[pb.ConvertTimbreRequest],
                       context: grpc.aio.ServicerContext) -> AsyncIterator[pb.AudioChunk]:
        check_format(options.format, self.limits, "options.format", stream=True)
        self._timbre(options.target, "options.target")
        morph = options.HasField("target_b")
        if morph:
            self._timbre(options.target_b, "options.target_b")
        self._mode(options.mode, "options.mode")
        # Before the upload: a missing model or instrument is said at once, not after megabytes.
        engine = self.registry.timbre(options.model)
        target = self._timbre_vector(engine, options.target, "options.target")
        target_b = self._timbre_vector(engine, options.target_b, "options.target_b") if morph else None
        upload = bytearray()
        while (part := await self._upload_part(requests, context)) is not None:
            if part.WhichOneof("part") != "audio_chunk":
                raise invalid("options", "only the first message may carry options")
            upload += part.audio_chunk
            if len(upload) > self.limits.max_upload_bytes:
                raise invalid("audio_chunk", f"the upload exceeds this server's limit of "
                                             f"{self.limits.max_upload_bytes} bytes")
        if not upload:
            raise invalid("audio_chunk", "no audio was uploaded")
        wave, rate = await asyncio.to_thread(self._upload, bytes(upload))
        try:
            converted = await self._converted(engine.model, wave.numpy(), rate, target, options.flat, target_b,
                                              options.mode or "slerp", options.seed)
        except ValueError as exc:  # nothing pitched, or a polyphonic recording
            raise invalid("audio_chunk", str(exc)) from None
        encoding = options.format.encoding or pb.PCM16
        out_rate = output_rate(options.format, engine.model.sample_rate)
        resampler = StreamResampler(engine.model.sample_rate, out_rate)
        step = engine.model.sample_rate // 2
        sequence = offset = 0
        for start in range(0, len(converted), step):
            audio = resampler.push(torch.from_numpy(converted[start:start + step]))
            yield pb.AudioChunk(sequence=sequence, sample_offset=offset, audio=encode_raw(audio, encoding),
                                encoding=encoding, sample_rate_hz=out_rate)
            sequence, offset = sequence + 1, offset + audio.numel()
        tail = resampler.flush()
        yield pb.AudioChunk(sequence=sequence, sample_offset=offset, audio=encode_raw(tail, encoding),
                            encoding=encoding, sample_rate_hz=out_rate, final=True)

    async def _converted(self, model: TimbreModel, wave: np.ndarray, rate: int, to: torch.Tensor, flat: bool,
                         to_b: torch.Tensor | None, mode: str, seed: int) -> np.ndarray:
        """``audiogan.timbre.convert.convert`` on the conversions thread, its analysis a piece of the recording
        at a time and its notes a pass at a time: a caller gone (deadline, cancel) stops at the next piece or
        pass instead of holding the thread to the end, and other conversions take turns in between. Same
        seeds, same result. Each piece runs in this call's context: its warnings carry the call's id."""
        pool = self.conversions
        analysis = await run_in_call(pool, Conversion.analysis, model, wave, rate)
        while not await run_in_call(pool, analysis.step):
            pass
        plan = await run_in_call(pool, Conversion.of, model, analysis, to, flat, to_b, mode)
        mix = plan.mixdown(model.sample_rate)
        for start, end in plan.passes(model):
            await run_in_call(pool, plan.play, model, seed, start, end, mix)
        return await run_in_call(pool, plan.level, mix)

    # -- listings ------------------------------------------------------------------------------------------

    @rpc
    async def ListVoices(self, request: pb.ListVoicesRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListVoicesResponse:
        vocoders = [pb.ModelInfo(name=e.name, sample_rate_hz=e.sample_rate, card_json=e.card_json)
                    for e in self.registry.vocoders.values()]
        voices = [pb.ModelInfo(name=v.name, sample_rate_hz=v.vocoder.sample_rate, card_json=v.card_json,
                               language_code=_language_code(v), speakers=v.tts.speakers)
                  for v in self.registry.voices.values()]
        return pb.ListVoicesResponse(voices=voices, vocoders=vocoders)

    @rpc
    async def ListInstruments(self, request: pb.ListInstrumentsRequest,
                              context: grpc.aio.ServicerContext) -> pb.ListInstrumentsResponse:
        engines = [self.registry.timbre(request.model)] if request.model else list(self.registry.timbres.values())
        instruments = [pb.Instrument(name=name, family=family, model=e.name)
                       for e in engines for name, family in zip(e.model.instruments, e.model.cfg.families or
                                                                [""] * len(e.model.instruments), strict=True)]
        models = [pb.ModelInfo(name=e.name, sample_rate_hz=e.model.sample_rate, card_json=e.card_json) for e in engines]
        return pb.ListInstrumentsResponse(instruments=instruments, models=models)


def _min_frames(engine: VocoderEngine) -> int:
    """The shortest mel a vocoder takes: with phase refinement, its STFT reflect-pads (n_fft - hop) / 2
    samples on each side, which needs more samples than that (audiogan/vocoder/istft.py: FramedSTFT).
    Required whether or not this server refines, so that what a call accepts does not hang on a flag."""
    mel = engine.vocoder.config.mel
    return (mel.n_fft - mel.hop_length) // 2 // mel.hop_length + 1


def _silence_seconds(lines: list[Line]) -> float:
    """The pauses ``TTS.join`` puts around a text's lines."""
    return (lines[0].lead if lines else 0.0) + sum(line.pause for line in lines)


def _language_code(voice: VoiceEngine) -> str:
    return voice.tts.language.replace("en-us", "en-US")


def _speaks(voice: VoiceEngine, code: str) -> bool:
    """Whether a request's BCP-47 language (any case, '-' or '_') is the voice's, or its bare prefix
    ('en' for an en-US voice)."""
    def norm(tag: str) -> str:
        return tag.strip().lower().replace("_", "-")
    asked, spoken = norm(code), norm(voice.tts.language)
    return spoken == asked or spoken.startswith(f"{asked}-")


def _add_timings(message: pb.Audio | pb.AudioChunk, timings: Timings) -> None:
    for field, spans in (("sentences", timings.sentences), ("words", timings.words), ("marks", timings.marks)):
        getattr(message, field).extend(pb.TimedText(text=s.text, start_seconds=s.start, end_seconds=s.end)
                                       for s in spans)

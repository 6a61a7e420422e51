"""The models a server holds, each behind dynamic batchers that run on one compute thread."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import grpc
import numpy as np
import torch

from audiogan import Vocoder, weights
from audiogan.timbre import TimbreModel
from audiogan.tts import TTS
from audiogan.tts.lines import Line
from audiogan.tts.timing import Timings
from audiogan.vocoder.inference import Window
from audiogan.vocoder.pghi import PhaseTrack
from audiogan_server.batching import DynamicBatcher, run_grouped
from audiogan_server.config import ServerConfig
from audiogan_server.errors import RequestError
from audiogan_server.loading import LoadProgress
from audiogan_server.metrics import Metrics
from audiogan_server.request_ids import run_in_call

log = logging.getLogger("audiogan.server")
T = TypeVar("T")
# A unary mel longer than this many stream chunks (8 x 64 frames: about 8 s at 16 kHz) is vocoded in pieces
# of that size. Each piece recomputes the receptive field's context on both sides: a few % more work.
PIECE_CHUNKS = 8
# The warm-up of conversion's pitch analysis (its numba kernels, loaded from the cache or compiled) as loading
# progress: it took 3.6-4.8 s on 2 CPU cores, as long as 20-25 MB of weights took to load then, where the
# note model's own weights (5.4 MB) had it expected at a sixth of that (2026-12-07).
ANALYSIS_BYTES = 24_000_000


@dataclass
class MelSpan:
    """Frames [lo, hi) of a conditioned mel (``Vocoder.condition``, context included); the caller keeps
    samples [keep_from, keep_to). ``window`` places a stream's slice for a vocoder that integrates phase;
    ``due`` is when a stream's listener needs it (event-loop time)."""

    cond: torch.Tensor
    keep_from: int
    keep_to: int
    window: Window | None = None
    due: float = 0.0


def make_batcher(name: str, run: Callable[[list[Any]], Sequence[Any]], executor: Executor, config: ServerConfig,
                 metrics: Metrics, due: Callable[[Any], float] | None = None) -> DynamicBatcher[Any, Any]:
    b = config.batching
    batcher: DynamicBatcher[Any, Any] = DynamicBatcher(name, run, executor, b.max_batch, b.max_wait_ms / 1000,
                                                       config.limits.max_queue, metrics.observe_batch, due)
    metrics.watch_queue(name, lambda: len(batcher.queue))
    return batcher


class VocoderEngine:
    """One vocoder: whole mels and stream chunks each have a batcher; results equal ``Vocoder`` exactly."""

    def __init__(self, name: str, vocoder: Vocoder, executor: Executor, config: ServerConfig,
                 metrics: Metrics) -> None:
        self.name = name
        self.vocoder = vocoder
        self.executor = executor
        self.batching = config.batching
        self.whole = make_batcher(f"vocode:{name}", self._run, executor, config, metrics)
        # Streams' chunks go most urgent first: a new call's first chunk before audio that a listener
        # already playing will only need in a second.
        self.chunks = make_batcher(f"stream:{name}", self._run, executor, config, metrics, lambda s: s.due)

    @property
    def sample_rate(self) -> int:
        return self.vocoder.sample_rate

    @property
    def card_json(self) -> str:
        return json.dumps(self.vocoder.card)

    def _run(self, spans: list[MelSpan]) -> Sequence[torch.Tensor]:
        waves = self.vocoder.generate([s.cond for s in spans], [s.window for s in spans])
        return [w[s.keep_from:s.keep_to].cpu() for w, s in zip(waves, spans, strict=True)]

    async def _condition(self, mel: torch.Tensor) -> torch.Tensor:
        if not self.vocoder.needs_conditioning:
            return mel  # no trip through the busy model thread for a mel that stays as it is
        # On the compute thread: a harmonic-phase vocoder runs its pitch tracker over the whole mel here.
        return await run_in_call(self.executor, self.vocoder.condition, mel)

    async def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        cond = await self._condition(mel)
        frames, piece = cond.shape[-1], self.batching.stream_chunk_frames * PIECE_CHUNKS
        if frames <= piece:
            return await self.whole.submit(MelSpan(cond, 0, frames * self.vocoder.hop_length))
        # A long mel goes through the one model thread in pieces, each with its context like a stream's
        # chunks (so the result is the same): other calls' work runs between pieces instead of waiting for
        # the whole, and a caller that has gone (deadline, cancel) stops at the next piece, which the
        # batcher drops, instead of holding the thread for all of it.
        track = self.vocoder.phase_track()
        waves = []
        for start in range(0, frames, piece):
            waves.append(await self.whole.submit(self._span(cond, start, min(frames, start + piece), track)))
        return torch.cat(waves)

    def _span(self, cond: torch.Tensor, start: int, end: int, track: PhaseTrack | None) -> MelSpan:
        lo, hi, keep = self.vocoder.span(cond.shape[-1], start, end)
        hop = self.vocoder.hop_length
        window = None if track is None else Window(track, lo, keep)
        return MelSpan(cond[:, lo:hi], (start - lo) * hop, (end - lo) * hop, window)

    async def stream(self, mel: torch.Tensor, ramp: Ramp | None = None) -> AsyncIterator[torch.Tensor]:
        """Chunks whose concatenation equals ``vocode(mel)``: each is a slice of the whole conditioned mel
        with the receptive field's context on both sides, so the joins are seamless. Their sizes grow from
        ``batching.first_chunk_frames``, or from ``ramp``'s, which is left at the next chunk's size: a
        call's later sentences go on from where its first left off instead of starting small again (only
        the first audio needs to come soon, and a small chunk costs its context several times over)."""
        cond = await self._condition(mel)
        frames = cond.shape[-1]
        ramp = ramp or Ramp(self.batching.first_chunk_frames)
        start = 0
        track = self.vocoder.phase_track()  # chunks go in order, so the phase carries from one to the next
        clock = asyncio.get_running_loop().time
        while start < frames:
            end = min(frames, start + ramp.frames)
            span = self._span(cond, start, end, track)
            span.due = ramp.due(clock())
            wave = await self.chunks.submit(span)
            ramp.handed_out(wave.numel() / self.sample_rate, clock())
            yield wave
            start, ramp.frames = end, self.batching.next_chunk(ramp.frames)

    def start(self) -> None:
        self.whole.start()
        self.chunks.start()

    async def stop(self) -> None:
        await self.whole.stop()
        await self.chunks.stop()


@dataclass
class Sentence:
    line: Line
    speed: float
    pitch_shift: float
    speaker: int


class VoiceEngine:
    """A TTS voice: text is split and phonemized off the model thread, then sentences from all concurrent
    calls share acoustic-model passes; their mels go through the voice's vocoder engine."""

    def __init__(self, tts: TTS, vocoder: VocoderEngine, executor: Executor, config: ServerConfig,
                 metrics: Metrics) -> None:
        self.tts = tts
        self.vocoder = vocoder
        self.name = tts.name
        self.acoustic = make_batcher(f"tts:{self.name}", self._run, executor, config, metrics)

    @property
    def card_json(self) -> str:
        return json.dumps(self.tts.card)

    def _run(self, sentences: list[Sentence]) -> Sequence[tuple[torch.Tensor, list[int]]]:
        # One acoustic pass takes one speed, one pitch shift and one speaker.
        return run_grouped(sentences, lambda s: (s.speed, s.pitch_shift, s.speaker),
                           lambda k, group: [(m.cpu(), d) for m, d in self.tts.acoustic([s.line for s in group], *k)])

    async def lines(self, text: str) -> list[Line]:
        import asyncio

        return await asyncio.to_thread(self.tts.lines, text)

    async def mel(self, line: Line, speed: float, pitch_shift: float,
                  speaker: int = 0) -> tuple[torch.Tensor, list[int]]:
        """A line's mel, with its phonemes' lengths in frames."""
        return await self.acoustic.submit(Sentence(line, speed, pitch_shift, speaker))

    def timings(self, lines: Sequence[Line], durations: Sequence[list[int]], start: int = 0) -> Timings:
        return Timings.of(lines, durations, self.vocoder.vocoder.hop_length, self.vocoder.sample_rate, start)

    def silence(self, seconds: float) -> torch.Tensor:
        return self.tts.silence(seconds)

    def start(self) -> None:
        self.acoustic.start()

    async def stop(self) -> None:
        await self.acoustic.stop()


@dataclass
class Ramp:
    """A stream's next chunk size in mel frames, carried from one of its sentences to the next, and its
    listener's clock: played from its first audio on, the audio handed out so far lasts until ``due``."""

    frames: int
    started: float | None = None  # event-loop time of the first audio handed out
    seconds: float = 0.0          # audio handed out so far

    def due(self, now: float) -> float:
        """When the listener runs out of audio; a call with none yet needs it now."""
        return now if self.started is None else self.started + self.seconds

    def handed_out(self, seconds: float, now: float) -> None:
        if self.started is None:
            self.started = now
        self.seconds += seconds


@dataclass
class NoteItem:
    pitch: int
    timbre: torch.Tensor
    velocity: int
    seed: int
    seconds: float | None


class TimbreEngine:
    """A note GAN: notes from all concurrent calls share generator passes (grouped by note length)."""

    def __init__(self, name: str, model: TimbreModel, executor: Executor, config: ServerConfig,
                 metrics: Metrics) -> None:
        self.name = name
        self.model = model
        self.notes = make_batcher(f"notes:{name}", self._run, executor, config, metrics)

    @property
    def card_json(self) -> str:
        return json.dumps(self.model.card)

    def _run(self, items: list[NoteItem]) -> Sequence[torch.Tensor]:
        def generate(seconds: float | None, group: list[NoteItem]) -> list[torch.Tensor]:
            audio = self.model.generate([n.pitch for n in group], [n.timbre for n in group],
                                        [n.velocity for n in group], [n.seed for n in group], seconds)
            return [torch.from_numpy(a) for a in audio]
        return run_grouped(items, lambda n: n.seconds, generate)

    async def note(self, item: NoteItem) -> torch.Tensor:
        return await self.notes.submit(item)

    def start(self) -> None:
        self.notes.start()

    async def stop(self) -> None:
        await self.notes.stop()


def _optional_models(specs: list[str], kind: str) -> list[Path]:
    """Weights for ``specs``; "default" may be absent (nothing bundled yet), an explicit path may not, and
    "none" loads nothing (a vocode-only server keeps its memory for vocoding)."""
    paths = []
    for spec in specs:
        if spec == "none":
            continue
        try:
            paths.append(weights.resolve(spec, kind))
        except FileNotFoundError:
            if spec != "default":
                raise
            log.info("no %s model is bundled: its calls will answer UNIMPLEMENTED", kind)
    return paths


def _unique(name: str, loaded: dict[str, Any], path: Path) -> str:
    """Callers choose models by name, so a second model of the same name would silently hide the first."""
    if name in loaded:
        raise ValueError(f"{path}: a model named {name!r} is already loaded (names come from the model cards)")
    return name


def _lookup(loaded: dict[str, T], name: str, field: str, what: str, none_loaded: str) -> T:
    """The engine called ``name``: UNIMPLEMENTED when none of its kind is loaded, NOT_FOUND naming the field."""
    if not loaded:
        raise RequestError(grpc.StatusCode.UNIMPLEMENTED, none_loaded)
    engine = loaded.get(name)
    if engine is None:
        raise RequestError(grpc.StatusCode.NOT_FOUND,
                           f"{field}: unknown {what} {name!r}; loaded: {', '.join(sorted(loaded))}")
    return engine


class LoadPlan(NamedTuple):
    """The weights ``ModelRegistry.load`` reads, their sizes, and the sizes given to its warm-up steps."""

    vocoders: list[Path]
    voices: list[Path]
    timbres: list[Path]
    size: dict[Path, int]
    warm_up: list[int]


class ModelRegistry:
    """Everything a server can synthesize with. Timbre models join when that model lands."""

    def __init__(self) -> None:
        self.vocoders: dict[str, VocoderEngine] = {}
        self.default_vocoder = ""
        self.voices: dict[str, VoiceEngine] = {}
        self.default_voice = ""
        self.timbres: dict[str, TimbreEngine] = {}
        self.default_timbre = ""
        self.progress = LoadProgress()  # how far ``load`` has come: the pushback while it runs
        self.planned: LoadPlan | None = None

    def plan(self, config: ServerConfig) -> LoadPlan:
        """Find every model's weights and size the load's steps in bytes of weights: a vocoder's first pass
        as its weights (it took about half as long as loading them, 1.3 against 2.3 s), and conversion's
        pitch analysis as ``ANALYSIS_BYTES``. Done before the service takes calls, so that the first call
        refused while loading hears how long the whole load will take, not "at once"."""
        vocoders = [weights.resolve(spec, "vocoder") for spec in config.vocoders]
        voices = _optional_models(config.voices, "tts")
        timbres = _optional_models(config.timbres, "timbre")
        size = {path: path.stat().st_size for path in [*vocoders, *voices, *timbres]}
        warm_up = [size[path] for path in vocoders] + ([ANALYSIS_BYTES] if timbres else [])
        self.progress.plan(sum(size.values()) + sum(warm_up))
        self.planned = LoadPlan(vocoders, voices, timbres, size, warm_up)
        return self.planned

    def load(self, config: ServerConfig, executor: Executor, metrics: Metrics) -> None:
        """Every model, then their warm-up, each a step of ``progress`` (planned first, if ``plan`` was not
        called)."""
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        vocoders, voices, timbres, size, warm_up = self.planned or self.plan(config)
        iterations = None if config.phase_iterations < 0 else config.phase_iterations
        for path in vocoders:
            with self.progress.step(size[path]):
                vocoder = Vocoder.load(path, device=config.device, phase_iterations=iterations,
                                       phase=config.phase or None)
            name = _unique(str(vocoder.card.get("name") or path.stem), self.vocoders, path)
            self.vocoders[name] = VocoderEngine(name, vocoder, executor, config, metrics)
            self.default_vocoder = self.default_vocoder or name
        for path in voices:
            engine = self.vocoders[self.default_vocoder]
            with self.progress.step(size[path]):
                tts = TTS.load(path, vocoder=engine.vocoder, lexicon=config.lexicon or None)
            self.voices[_unique(tts.name, self.voices, path)] = VoiceEngine(tts, engine, executor, config, metrics)
            self.default_voice = self.default_voice or tts.name
        for path in timbres:
            with self.progress.step(size[path]):
                model = TimbreModel.load(path, device=config.device)
            name = _unique(str(model.card.get("name") or path.stem), self.timbres, path)
            self.timbres[name] = TimbreEngine(name, model, executor, config, metrics)
            self.default_timbre = self.default_timbre or name
        self._warm_up(warm_up)

    def _warm_up(self, sizes: list[int]) -> None:
        """``sizes``: each step's, in order (as ``load`` planned them)."""
        steps = iter(sizes)
        # The first pass pays for allocator and kernel set-up; do it before reporting SERVING.
        for engine in self.vocoders.values():
            n_mels = engine.vocoder.config.mel.n_mels
            with self.progress.step(next(steps)):
                engine.vocoder(np.full((n_mels, 16), -5.0, dtype=np.float32))
        if self.timbres:  # conversion's pitch analysis compiles (or loads) its numba kernels on first use
            from audiogan.timbre.analysis import analyse

            rate = 16000
            with self.progress.step(next(steps)):
                analyse((0.3 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)).astype(np.float32), rate)

    def vocoder(self, name: str) -> VocoderEngine:
        return _lookup(self.vocoders, name or self.default_vocoder, "vocoder", "vocoder",
                       "no vocoder is loaded on this server")

    def voice(self, name: str) -> VoiceEngine:
        return _lookup(self.voices, name or self.default_voice, "voice_name", "voice",
                       "text input needs a TTS voice and none is loaded on this server (start it with "
                       "--voice NAME_OR_PATH); send a mel instead, or use Vocode")

    def timbre(self, name: str) -> TimbreEngine:
        return _lookup(self.timbres, name or self.default_timbre, "model", "timbre model",
                       "no timbre model is loaded on this server (start it with --timbre default, the "
                       "bundled note model, or --timbre NAME_OR_PATH)")

    def engines(self) -> list[VocoderEngine | VoiceEngine | TimbreEngine]:
        return [*self.vocoders.values(), *self.voices.values(), *self.timbres.values()]

    def start(self) -> None:
        for engine in self.engines():
            engine.start()

    async def stop(self) -> None:
        for engine in self.engines():
            await engine.stop()

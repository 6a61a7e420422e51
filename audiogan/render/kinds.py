"""What each job kind does: cheap length for sorting, CPU preparation, and one batched forward pass."""

from __future__ import annotations

import functools
import json
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from audiogan import weights
from audiogan.audio.io import load_audio
from audiogan.config import from_dict
from audiogan.render.joblog import working_on
from audiogan.render.manifest import Job
from audiogan.timbre import TimbreModel
from audiogan.timbre.analysis import HOP
from audiogan.timbre.inference import TORCH_SEEDS, note_problem, resolve_instrument
from audiogan.timbre.model import NoteGANConfig
from audiogan.tts import TTS
from audiogan.tts.lexicon import Lexicon
from audiogan.tts.lines import Line
from audiogan.tts.phonemes import SymbolTable
from audiogan.tts.timing import Timings
from audiogan.vocoder.inference import Vocoder, integrates_phase
from audiogan.vocoder.model import VocoderConfig

Card = tuple[Path, dict[str, Any]]


@dataclass
class ModelCache:
    """What one manifest check learns of its models, each read once: re-reading a card and parsing its config
    for every line made checking 10,000 note lines take 14-21 s."""
    cards: dict[tuple[str, str], Card | str] = field(default_factory=dict)  # (kind, name) -> card, or why not
    configs: dict[Path, NoteGANConfig | str] = field(default_factory=dict)
    lexicons: dict[tuple[str, Path], str | None] = field(default_factory=dict)  # (lexicon, voice) -> problem


def _card(params: dict[str, Any], field: str, kind: str, cache: ModelCache) -> Card | str:
    """The weights a job names in ``field`` (a name or a path) and their card, or why they cannot serve
    as a ``kind`` model."""
    name = params.get(field, "default")
    if (kind, name) not in cache.cards:
        cache.cards[kind, name] = _read_card(name, field, kind)
    return cache.cards[kind, name]


def _read_card(name: str, field: str, kind: str) -> Card | str:
    try:
        path = weights.resolve(name, kind)
        # resolve() finds any bundled name or file; only the card says what the weights are.
        card = weights.read_card(path, kind)
    except (OSError, ValueError) as exc:  # missing, unreadable, another kind, or a card that is not JSON
        return f"{exc} (\"{field}\" takes a bundled name or a .safetensors path)"
    if problem := weights.weights_problem(path):  # a good card beside a file cut short
        return f"{path}: {problem}"
    return path, card


def _timbre_config(found: Card, cache: ModelCache) -> NoteGANConfig | str:
    path, card = found
    if path not in cache.configs:
        try:
            cache.configs[path] = from_dict(NoteGANConfig, card["config"])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # ConfigError is a ValueError
            cache.configs[path] = f"the card of {path.name} is unreadable: {exc}"
    return cache.configs[path]


def _lexicon_problem(lexicon: str, found: Card, cache: ModelCache) -> str | None:
    key = (lexicon, found[0])
    if key not in cache.lexicons:
        try:
            Lexicon.read(lexicon, SymbolTable.from_dict(found[1]["symbols"]))
            cache.lexicons[key] = None
        except (OSError, KeyError, ValueError) as exc:
            cache.lexicons[key] = str(exc)
    return cache.lexicons[key]


def unavailable_reason(kind: str, params: dict[str, Any], cache: ModelCache | None = None) -> str | None:
    """Why a job of this kind cannot run on this installation, or None: everything the renderer would
    refuse later that its model's card can tell now, so that a run never fails on a line that passed.
    Lines checked with one ``cache`` read each model once (read_manifest makes one per manifest)."""
    cache = cache or ModelCache()
    if kind == "vocode":
        found = _card(params, "vocoder", "vocoder", cache)
        return found if isinstance(found, str) else None
    if kind == "tts":
        found = _card(params, "voice", "tts", cache)
        if isinstance(found, str):
            return found
        if reason := _speaker_problem(*found, params.get("speaker", 0)):
            return reason
        if "lexicon" in params:
            return _lexicon_problem(params["lexicon"], found, cache)
    if kind in ("notes", "convert", "midi"):
        found = _card(params, "model", "timbre", cache)
        if isinstance(found, str):
            return found
        cfg = _timbre_config(found, cache)
        if isinstance(cfg, str):
            return cfg
        for wanted in (params[k] for k in ("instrument", "to", "to_b") if k in params):
            try:
                resolve_instrument(wanted, cfg.instruments)
            except ValueError as exc:
                return str(exc)
        if kind == "notes":
            return note_problem(cfg, params["pitch"], params.get("seconds"))  # velocity: the manifest's bounds
    return None


def manifest_checker() -> Callable[[str, dict[str, Any]], str | None]:
    """unavailable_reason for the lines of one manifest, sharing one ModelCache."""
    return functools.partial(unavailable_reason, cache=ModelCache())


def _speaker_problem(path: Path, card: dict[str, Any], speaker: int) -> str | None:
    """The speaker check TTS.acoustic makes when it renders, from the voice's card."""
    try:
        speakers = int(card["config"].get("n_speakers", 1))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return f"the card of {path.name} is unreadable: {exc}"
    if not 0 <= speaker < speakers:
        name = card.get("name", path.stem)
        return f"speaker {speaker} is out of range: {name} knows speakers 0..{speakers - 1}"
    return None


@dataclass
class Rendered:
    """A job's audio, and files to write beside it, by suffix (".vtt": captions of a tts job)."""
    wave: torch.Tensor
    sidecars: dict[str, bytes] = field(default_factory=dict)


class Renderer(ABC):
    """One job kind. Jobs in the same ``group`` (same model) may share a forward pass."""

    # Jobs per batch on a CPU unless the user sets one: batching the vocoder (and so speech) gained nothing
    # on 2 cores (benchmarks/RESULTS.md, "Offline rendering, batched vs one by one").
    cpu_batch_size = 1

    @abstractmethod
    def group(self, job: Job) -> str: ...

    @abstractmethod
    def length(self, job: Job) -> int:
        """A cheap size estimate (frames), for sorting a batch to limit padding."""

    @abstractmethod
    def prepare(self, job: Job) -> Any:
        """CPU work before the model (decode, features); runs in worker threads."""

    @abstractmethod
    def render(self, group: str, items: list[Any]) -> list[torch.Tensor] | list[Rendered]:
        """One batched forward pass; audio at ``sample_rate(group)``, one result per item."""

    @abstractmethod
    def sample_rate(self, group: str) -> int: ...

    @abstractmethod
    def model_id(self, group: str) -> str:
        """Identifies the weights: outputs rendered by other weights are re-rendered on resume."""

    def seeding(self, job: Job) -> str:
        """Marks, in the resume key, a job whose noise this code draws otherwise than an earlier release did, so
        that resume re-renders what that release made instead of keeping the other take."""
        return ""


def _refinement(config: VocoderConfig) -> int | None:
    """The phase refinement a vocoder runs with (None: a generator without one)."""
    g = config.generator
    return g.istft.phase_iterations if g.kind == "istft" else None


class VocodeRenderer(Renderer):
    def __init__(self, device: str = "cpu", phase_iterations: int | None = None, phase: str | None = None) -> None:
        self.device = device
        self.phase_iterations = phase_iterations
        self.phase = phase
        self.vocoders: dict[str, Vocoder] = {}
        self.ids: dict[str, str] = {}
        self.lock = threading.Lock()

    def vocoder(self, name: str) -> Vocoder:
        with self.lock:
            if name not in self.vocoders:
                self.vocoders[name] = Vocoder.load(name, device=self.device, phase_iterations=self.phase_iterations,
                                                   phase=self.phase)
            return self.vocoders[name]

    def group(self, job: Job) -> str:
        return job.params.get("vocoder", "default")

    def length(self, job: Job) -> int:
        if "mel" in job.params:
            return int(np.load(job.params["mel"], mmap_mode="r").shape[-1])
        info = sf.info(job.params["audio"])
        return int(info.frames / info.samplerate * 16000 / 256)

    def prepare(self, job: Job) -> torch.Tensor:
        vocoder = self.vocoder(self.group(job))
        if "audio" in job.params:
            wave, _ = load_audio(job.params["audio"], vocoder.sample_rate)
            return vocoder.mel(wave).cpu()
        mel = np.load(job.params["mel"])
        n_mels = vocoder.config.mel.n_mels
        if mel.ndim != 2 or mel.shape[0] != n_mels or mel.shape[1] == 0:
            raise ValueError(f"mel {job.params['mel']} has shape {mel.shape}; expected [{n_mels}, frames]")
        if not np.isfinite(mel).all():
            raise ValueError(f"mel {job.params['mel']} contains NaN or Inf")
        return torch.from_numpy(mel.astype(np.float32))

    def render(self, group: str, items: list[Any]) -> list[torch.Tensor]:
        return [w.cpu() for w in self.vocoder(group).batch(items)]

    def sample_rate(self, group: str) -> int:
        return self.vocoder(group).sample_rate

    def model_id(self, group: str) -> str:
        # From the card and file, not a loaded model: a Ray driver keys jobs without loading any.
        with self.lock:
            if group not in self.ids:
                path, _, config = Vocoder.settings(group, self.phase_iterations, self.phase)
                _, _, own = Vocoder.settings(group)
                self.ids[group] = weights.identity(path)
                # Another refinement is another rendering; the card's own, named or not, is the same one.
                if _refinement(config) != _refinement(own):
                    self.ids[group] += f"+phase_iterations={self.phase_iterations}"
                if integrates_phase(config):  # the card's own phase head needs no mark
                    self.ids[group] += "+phase=rtpghi"
            return self.ids[group]


class TTSRenderer(Renderer):
    """Text jobs: every sentence of every job in a batch shares the acoustic and vocoder passes."""

    def __init__(self, vocode: VocodeRenderer) -> None:
        self.vocode = vocode
        self.voices: dict[str, TTS] = {}
        self.ids: dict[str, str] = {}
        self.lock = threading.Lock()

    def voice(self, name: str, lexicon: str | None = None) -> TTS:
        """A voice, with a lexicon if one is named; each pair is loaded once."""
        key = self._key(name, lexicon)
        with self.lock:
            if key not in self.voices:
                self.voices[key] = TTS.load(weights.resolve(name, "tts"), vocoder=self.vocode.vocoder("default"),
                                            lexicon=lexicon)
            return self.voices[key]

    @staticmethod
    def _key(name: str, lexicon: str | None) -> str:
        return json.dumps([name, lexicon])

    def group(self, job: Job) -> str:
        # One pass takes one speed, pitch shift and speaker, so they are part of the group.
        return json.dumps([job.params.get("voice", "default"), job.params.get("speed", 1.0),
                           job.params.get("pitch_shift", 0.0), job.params.get("speaker", 0),
                           job.params.get("lexicon")])

    def length(self, job: Job) -> int:
        return len(job.params["text"])

    def _voice_of(self, group: str) -> TTS:
        name, *_, lexicon = json.loads(group)
        return self.voice(name, lexicon)

    def prepare(self, job: Job) -> tuple[list[Line], str | None]:
        return self._voice_of(self.group(job)).lines(job.params["text"]), job.params.get("timings")

    def render(self, group: str, items: list[Any]) -> list[Rendered]:
        _, speed, shift, speaker, _ = json.loads(group)
        tts = self._voice_of(group)
        flat = [line for lines, _ in items for line in lines]
        mels, durations = zip(*tts.acoustic(flat, speed, shift, speaker), strict=True)
        waves = tts.vocoder.batch(list(mels))
        out, start = [], 0
        for lines, timings_format in items:
            end = start + len(lines)
            rendered = Rendered(tts.join(waves[start:end], lines).cpu())
            if timings_format:
                timings = Timings.of(lines, durations[start:end], tts.vocoder.hop_length, tts.sample_rate)
                rendered.sidecars["." + timings_format] = timings.text(timings_format).encode("utf-8")
            out.append(rendered)
            start = end
        return out

    def sample_rate(self, group: str) -> int:
        return self._voice_of(group).sample_rate

    def model_id(self, group: str) -> str:
        name, *_, lexicon = json.loads(group)
        key = self._key(name, lexicon)
        with self.lock:
            if key not in self.ids:
                # Its content, not its name: an edited lexicon is another rendering.
                files = [weights.resolve(name, "tts"), *([Path(lexicon)] if lexicon else [])]
                self.ids[key] = "+".join(weights.identity(f) for f in files)
        return f"{self.ids[key]}+{self.vocode.model_id('default')}"


class NotesRenderer(Renderer):
    """Note jobs: one generator pass per batch; notes of one length share a group."""

    # TimbreModel runs a batch in passes of a cache-sized number of notes: batches of 64 jobs rendered
    # 1.13-1.44x the jobs/s of single jobs on 2 cores (benchmarks/RESULTS.md, "notes in passes").
    cpu_batch_size = 64

    def __init__(self, device: str) -> None:
        self.device = device
        self.models: dict[str, TimbreModel] = {}
        self.ids: dict[str, str] = {}
        self.rates: dict[str, int] = {}
        self.lock = threading.Lock()

    def model(self, name: str) -> TimbreModel:
        with self.lock:
            if name not in self.models:
                self.models[name] = TimbreModel.load(weights.resolve(name, "timbre"), device=self.device)
            return self.models[name]

    def group(self, job: Job) -> str:
        return json.dumps([job.params.get("model", "default"), job.params.get("seconds")])

    def length(self, job: Job) -> int:
        return job.params["pitch"]

    def prepare(self, job: Job) -> Job:
        return job

    def render(self, group: str, items: list[Any]) -> list[torch.Tensor]:
        name, seconds = json.loads(group)
        audio = self.model(name).generate([j.params["pitch"] for j in items], [j.params["instrument"] for j in items],
                                          [j.params.get("velocity", 100) for j in items],
                                          [j.seed for j in items], seconds)
        return [torch.from_numpy(a) for a in audio]

    def sample_rate(self, group: str) -> int:
        return self.model(json.loads(group)[0]).sample_rate

    def model_id(self, group: str) -> str:
        name = json.loads(group)[0]
        with self.lock:
            if name not in self.ids:
                self.ids[name] = weights.identity(weights.resolve(name, "timbre"))
            return self.ids[name]

    def card_rate(self, name: str) -> int:
        """The sample rate of a model, from its card: keying jobs loads no model."""
        with self.lock:
            if name not in self.rates:
                card = weights.read_card(weights.resolve(name, "timbre"), "timbre")
                self.rates[name] = from_dict(NoteGANConfig, card["config"]).spectral.sample_rate
            return self.rates[name]

    reseeded = ""  # how this kind's notes were seeded otherwise before, for seeding()

    def most_notes(self, job: Job) -> int:
        """At least as many notes as the job plays: its notes take seeds job.seed and up."""
        return 1

    def seeding(self, job: Job) -> str:
        # Until 2026-12 a note seeded 2**32 or more drew the noise of the seed's low 32 bits.
        try:
            wide = job.seed >= TORCH_SEEDS or job.seed + self.most_notes(job) > TORCH_SEEDS
        except (OSError, RuntimeError, ValueError):  # an unreadable input or card: the job fails with its reason
            wide = False                              # where it is prepared
        return self.reseeded + "+seeds=64bit" * wide


class ConvertRenderer(NotesRenderer):
    """Recording conversion: analysis in the worker threads, note generation batched per recording."""

    reseeded = "+seeds=library"  # until 2026-12 their notes took seed % 2**31, not the library's seed

    cpu_batch_size = 1  # each recording is rendered on its own: a batch only groups them

    def group(self, job: Job) -> str:
        return json.dumps([job.params.get("model", "default"), None])

    def length(self, job: Job) -> int:
        return int(sf.info(job.params["input"]).frames)

    def most_notes(self, job: Job) -> int:
        # Each note starts on an analysis frame of its own, HOP samples apart in the recording resampled to
        # the model's rate; the last frame may hang past its end.
        info = sf.info(job.params["input"])
        return math.ceil(info.frames * self.card_rate(job.params.get("model", "default")) / info.samplerate / HOP) + 2

    def prepare(self, job: Job) -> tuple[np.ndarray, int, Job]:
        wave, rate = load_audio(job.params["input"])
        return wave.numpy(), rate, job

    def render(self, group: str, items: list[Any]) -> list[torch.Tensor]:
        from audiogan.timbre.convert import convert

        model = self.model(json.loads(group)[0])
        out = []
        for wave, rate, j in items:
            with working_on([j]):  # a batch's warnings are each one job's
                out.append(torch.from_numpy(convert(model, wave, rate, j.params["to"], j.seed,
                                                    j.params.get("flat", False), j.params.get("to_b"),
                                                    j.params.get("mode", "slerp"))))
        return out


class MidiRenderer(NotesRenderer):
    """MIDI files: each rendered whole (its notes batched), optionally morphing from one timbre to another."""

    reseeded = "+seeds=library"  # until 2026-12 their notes took seed % 2**31, not the library's seed

    cpu_batch_size = 1  # each file is rendered on its own: a batch only groups them

    def group(self, job: Job) -> str:
        return json.dumps([job.params.get("model", "default"), None])

    def length(self, job: Job) -> int:
        return Path(job.params["input"]).stat().st_size

    def most_notes(self, job: Job) -> int:
        return self.length(job)  # each note's note-on takes 3 bytes of the file or more

    def prepare(self, job: Job) -> Job:
        return job

    def render(self, group: str, items: list[Any]) -> list[torch.Tensor]:
        from audiogan.timbre.midi import render_midi

        model = self.model(json.loads(group)[0])
        out = []
        for j in items:
            with working_on([j]):  # a batch's warnings are each one job's
                out.append(torch.from_numpy(render_midi(model, j.params["input"], j.params["instrument"],
                                                        j.params.get("to"), seed=j.seed)))
        return out


def make_renderers(device: str = "cpu", phase_iterations: int | None = None,
                   phase: str | None = None) -> dict[str, Renderer]:
    """``phase`` and ``phase_iterations`` (None: each card's) set where every iSTFT vocoder's phase comes
    from and its refinement, for vocode and tts jobs."""
    vocode = VocodeRenderer(device, phase_iterations, phase)
    return {"vocode": vocode, "tts": TTSRenderer(vocode), "notes": NotesRenderer(device),
            "convert": ConvertRenderer(device), "midi": MidiRenderer(device)}

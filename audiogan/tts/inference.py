"""Inference front door: ``TTS.load()`` then ``tts(text)`` -> (waveform, sample_rate)."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from audiogan import weights
from audiogan.config import from_dict, is_int, is_real
from audiogan.tts import ssml
from audiogan.tts.lexicon import Lexicon, phoneme_tokens
from audiogan.tts.lines import Line, to_lines
from audiogan.tts.model import AcousticConfig, AcousticModel
from audiogan.tts.normalize import one_drop_warning
from audiogan.tts.phonemes import SymbolTable
from audiogan.tts.script import Sentence, plain
from audiogan.tts.timing import Timings
from audiogan.vocoder.inference import Vocoder, pick_device

MAX_BATCH_TOKENS = 4096  # per acoustic-model pass: long texts go through in several batches
SENTENCES_PER_PASS = 64  # bounds memory on book-length input, and a stream's wait between two passes


class Speech(NamedTuple):
    wave: np.ndarray  # float32
    sample_rate: int
    timings: Timings


class TTS:
    """An acoustic model plus the vocoder it was matched to (same mel config, checked at load)."""

    def __init__(self, model: AcousticModel, symbols: SymbolTable, card: dict[str, Any], vocoder: Vocoder,
                 lexicon: Lexicon | None = None) -> None:
        if model.cfg.mel != vocoder.config.mel:
            raise ValueError(f"TTS model {card.get('name')!r} predicts a different mel than vocoder "
                             f"{vocoder.card.get('name')!r}: {model.cfg.mel} vs {vocoder.config.mel}")
        self.model = model.eval().to(vocoder.device)
        self.symbols = symbols
        self.card = card
        self.vocoder = vocoder
        self.language = str(card.get("language", "en-us"))
        self.stats = card["stats"]
        self.lexicon = lexicon

    @classmethod
    def load(cls, name_or_path: str | Path = "default", vocoder: str | Path | Vocoder = "default",
             device: str | torch.device = "auto", lexicon: str | Path | None = None) -> TTS:
        """A voice by bundled name or path; ``lexicon``: a file of the user's pronunciations
        (:mod:`audiogan.tts.lexicon`)."""
        path = weights.resolve(name_or_path, "tts")
        card = weights.read_card(path, "tts")
        symbols = SymbolTable.from_dict(card["symbols"])
        model = AcousticModel(from_dict(AcousticConfig, card["config"]), len(symbols))
        state = {k: v.float() for k, v in weights.read_weights(path).items()}
        model.load_export(state, str(path))
        voc = vocoder if isinstance(vocoder, Vocoder) else Vocoder.load(vocoder, device=pick_device(device))
        return cls(model, symbols, card, voc, Lexicon.read(lexicon, symbols) if lexicon else None)

    @property
    def sample_rate(self) -> int:
        return self.vocoder.sample_rate

    @property
    def name(self) -> str:
        return str(self.card.get("name", "tts"))

    def lines(self, text: str | bytes) -> list[Line]:
        """Text or SSML -> one :class:`Line` per sentence; nothing dropped except unpronounceable symbols."""
        lines = to_lines(self.script(text), self.symbols, self.language, self.lexicon)
        if not lines:
            raise ValueError("text has nothing pronounceable")
        return lines

    def script(self, text: str | bytes) -> list[Sentence]:
        """Text or SSML -> its sentences, normalised (what :meth:`lines` phonemizes)."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"text is not valid UTF-8 (byte {exc.start})") from None
        if not isinstance(text, str):  # a list of sentences: join them, the splitter finds them again
            raise TypeError(f"text must be a str (or UTF-8 bytes), not {type(text).__name__}")
        text = text.removeprefix("\ufeff")  # a byte-order mark would open the first caption
        if not text.strip():
            raise ValueError("text is empty")
        with one_drop_warning():
            if ssml.is_ssml(text):
                return ssml.parse(text, lambda ipa, where: phoneme_tokens(ipa, self.symbols, where))
            return plain(text)

    def show(self, text: str | bytes) -> Iterator[tuple[str, str, str]]:
        """What each sentence becomes before any audio: (as written, as said, its phonemes), the phonemes
        as the voice's symbols; given phonemes (a lexicon's, SSML's) are said between slashes."""
        for sentence in self.script(text):
            said = " ".join(p.said if isinstance(p.said, str) else f"/{''.join(p.said)}/" for p in sentence.pieces)
            said = re.sub(r"\s+(?=[,.;:!?])", "", said)
            lines = to_lines([sentence], self.symbols, self.language, self.lexicon)
            phonemes = "".join(self.symbols.decode(lines[0].ids[1:])) if lines else ""
            yield sentence.text, said, phonemes

    @property
    def speakers(self) -> int:
        """How many speakers the model knows: one per training folder (then any pseudo-speakers of
        augmentation); 0 is the first folder's."""
        return self.model.cfg.n_speakers

    def mels(self, lines: Sequence[Line | list[int]], speed: float = 1.0, pitch_shift: float = 0.0,
             speaker: int = 0) -> list[torch.Tensor]:
        """Lines (or bare phoneme ids) -> one mel per line; lines share passes of up to MAX_BATCH_TOKENS.
        A line's styles scale ``speed``, add to ``pitch_shift`` and set each word's loudness."""
        return [mel for mel, _ in self.acoustic(lines, speed, pitch_shift, speaker)]

    @torch.inference_mode()
    def acoustic(self, lines: Sequence[Line | list[int]], speed: float = 1.0, pitch_shift: float = 0.0,
                 speaker: int = 0) -> list[tuple[torch.Tensor, list[int]]]:
        """As :meth:`mels`, each mel with its phonemes' lengths in frames (for :class:`Timings`)."""
        if not is_int(speaker) or not 0 <= speaker < self.speakers:
            raise ValueError(f"speaker {speaker} is out of range: {self.name} knows speakers 0..{self.speakers - 1}")
        for name, value in (("speed", speed), ("pitch_shift", pitch_shift)):
            if not is_real(value):
                raise TypeError(f"{name} must be a number, not {value!r} ({type(value).__name__})")
        if not 0.25 <= speed <= 4.0:
            raise ValueError(f"speed {speed} is out of range 0.25..4")
        if not -12.0 <= pitch_shift <= 12.0:
            raise ValueError(f"pitch_shift {pitch_shift} is out of range -12..12 semitones")
        lines = [x if isinstance(x, Line) else Line.of(x) for x in lines]
        order = sorted(range(len(lines)), key=lambda i: len(lines[i].ids))
        out: list[tuple[torch.Tensor, list[int]] | None] = [None] * len(lines)
        device = self.vocoder.device
        start = 0
        while start < len(order):
            longest = len(lines[order[start]].ids)
            end = start + 1
            while end < len(order) and len(lines[order[end]].ids) * (end - start + 1) <= MAX_BATCH_TOKENS:
                longest = len(lines[order[end]].ids)
                end += 1
            group = [lines[i] for i in order[start:end]]
            tokens = torch.zeros(len(group), longest, dtype=torch.long)
            rates = torch.full((len(group), longest), speed)
            shifts = torch.full((len(group), longest), pitch_shift)
            for row, line in enumerate(group):
                n = len(line.ids)
                tokens[row, :n] = torch.tensor(line.ids)
                rates[row, :n] = torch.tensor([speed * s.rate for s in line.styles]).clamp(0.25, 4.0)
                shifts[row, :n] = torch.tensor([pitch_shift + s.pitch for s in line.styles]).clamp(-12.0, 12.0)
            speakers = torch.full((len(group),), speaker, dtype=torch.long, device=device)
            mel, frames, durations = self.model.infer(tokens.to(device), rates.to(device),
                                                      shifts.to(device) / self.stats["pitch_std"], speakers)
            for row, (i, line) in enumerate(zip(order[start:end], group, strict=True)):
                out[i] = (self._loudness(mel[row, :, : int(frames[row])].float(), line, durations[row]),
                          durations[row, : len(line.ids)].tolist())
            start = end
        return [m for m in out if m is not None]

    @staticmethod
    def _loudness(mel: torch.Tensor, line: Line, durations: torch.Tensor) -> torch.Tensor:
        """Each word at its style's volume: a gain in dB is an offset of the log-magnitude mel, and the
        vocoder follows it (within 0.2 dB from -12 to +6 dB, until its output clips)."""
        if all(s.volume == 0.0 for s in line.styles):
            return mel
        decibels = torch.tensor([s.volume for s in line.styles], device=mel.device)
        per_frame = decibels.repeat_interleave(durations[: len(line.ids)].to(mel.device))
        return mel + per_frame[None, : mel.shape[-1]] * (math.log(10.0) / 20.0)

    def silence(self, seconds: float, device: str | torch.device = "cpu") -> torch.Tensor:
        return torch.zeros(round(seconds * self.sample_rate), device=device)

    def join(self, waves: list[torch.Tensor], lines: Sequence[Line]) -> torch.Tensor:
        """Line waveforms -> one, with each line's silences (on the waveforms' device)."""
        device = waves[0].device if waves else "cpu"
        parts = [self.silence(lines[0].lead, device)] if lines else []
        for wave, line in zip(waves, lines, strict=True):
            parts += [wave, self.silence(line.pause, device)]
        return torch.cat(parts) if parts else torch.zeros(0)

    # The options after ``text`` are keyword-only here, in ``synthesize`` and in ``stream``: their fourth
    # parameters differed (progress, chunk_frames), so one positional call meant different things.
    def __call__(self, text: str | bytes, *, speed: float = 1.0, pitch_shift: float = 0.0,
                 progress: bool = False, speaker: int = 0) -> tuple[np.ndarray, int]:
        """The whole text (plain or SSML) as one waveform (float32 numpy) at ``sample_rate``; sentences in
        batched passes."""
        speech = self.synthesize(text, speed=speed, pitch_shift=pitch_shift, progress=progress, speaker=speaker)
        return speech.wave, speech.sample_rate

    @torch.inference_mode()
    def synthesize(self, text: str | bytes, *, speed: float = 1.0, pitch_shift: float = 0.0,
                   progress: bool = False, speaker: int = 0) -> Speech:
        """As ``tts(text)``, with when each sentence and word is said."""
        from tqdm import tqdm

        lines = self.lines(text)
        waves: list[torch.Tensor] = []
        durations: list[list[int]] = []
        with tqdm(total=len(lines), unit="sentence", disable=not progress) as bar:
            for start in range(0, len(lines), SENTENCES_PER_PASS):
                batch = lines[start:start + SENTENCES_PER_PASS]
                mels, lengths = zip(*self.acoustic(batch, speed, pitch_shift, speaker), strict=True)
                waves += self.vocoder.batch(list(mels))
                durations += lengths
                bar.update(len(batch))
        timings = Timings.of(lines, durations, self.vocoder.hop_length, self.sample_rate)
        return Speech(self.join(waves, lines).cpu().numpy(), self.sample_rate, timings)

    @torch.inference_mode()
    def stream(self, text: str | bytes, *, speed: float = 1.0, pitch_shift: float = 0.0,
               chunk_frames: int = 32, speaker: int = 0) -> Iterator[np.ndarray]:
        """Audio chunks as soon as each is ready: the first sentence alone (fast first audio), the rest in
        batched passes made only as the stream reaches them; each sentence vocoded chunk by chunk with
        exact joins. Concatenated, equal to ``tts(text)`` up to float rounding."""
        lines = self.lines(text)
        mels = self._mels_in_passes(lines, speed, pitch_shift, speaker)
        first = next(mels)  # before any audio, so that a bad speed or speaker fails before the lead-in
        if lines[0].lead:
            yield self.silence(lines[0].lead).numpy()
        for line, mel in zip(lines, itertools.chain([first], mels), strict=True):
            for chunk in self.vocoder.stream(mel, chunk_frames):
                yield chunk.cpu().numpy()
            if line.pause:
                yield self.silence(line.pause).numpy()

    def _mels_in_passes(self, lines: Sequence[Line], speed: float, pitch_shift: float,
                        speaker: int) -> Iterator[torch.Tensor]:
        """Each line's mel, a pass at a time as they are asked for: one line, then passes that double up to
        SENTENCES_PER_PASS lines. A book's second sentence then waits for a pass of two, not of the whole
        book, and the batching pays off from there on."""
        start, size = 0, 1
        while start < len(lines):
            yield from self.mels(lines[start:start + size], speed, pitch_shift, speaker)
            start += size
            size = min(2 * size, SENTENCES_PER_PASS)

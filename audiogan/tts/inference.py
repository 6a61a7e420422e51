"""Inference front door: ``TTS.load()`` then ``tts(text)`` -> (waveform, sample_rate)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiogan import weights
from audiogan.config import from_dict
from audiogan.tts.lexicon import Lexicon
from audiogan.tts.model import AcousticConfig, AcousticModel
from audiogan.tts.normalize import normalize, split_sentences
from audiogan.tts.phonemes import SymbolTable, phonemize
from audiogan.vocoder.inference import Vocoder, pick_device

SENTENCE_GAP_SECONDS = 0.12
MAX_BATCH_TOKENS = 4096  # per acoustic-model pass: long texts go through in several batches


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
        card = weights.read_card(path)
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

    def sentences(self, text: str | bytes) -> list[tuple[str, list[int]]]:
        """Text -> (sentence, phoneme ids) per sentence; nothing dropped except unpronounceable symbols."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"text is not valid UTF-8 (byte {exc.start})") from None
        if not text.strip():
            raise ValueError("text is empty")
        sentences = [normalize(s) for s in split_sentences(text)]
        sentences = [s for s in sentences if s]
        phones = (self.lexicon.phonemize if self.lexicon else phonemize)(sentences, self.language)
        pairs = [(s, self.symbols.encode(p)) for s, p in zip(sentences, phones, strict=True)]
        pairs = [(s, ids) for s, ids in pairs if any(self.symbols.symbols[i] not in " ,.!?;:\"()-'" for i in ids)]
        if not pairs:
            raise ValueError("text has nothing pronounceable")
        return pairs

    @property
    def speakers(self) -> int:
        """How many speakers the model knows: one per training folder (then any pseudo-speakers of
        augmentation); 0 is the first folder's."""
        return self.model.cfg.n_speakers

    @torch.inference_mode()
    def mels(self, token_lists: list[list[int]], speed: float = 1.0, pitch_shift: float = 0.0,
             speaker: int = 0) -> list[torch.Tensor]:
        """Phoneme ids -> one mel per sentence; sentences share passes of up to MAX_BATCH_TOKENS."""
        if not 0 <= speaker < self.speakers:
            raise ValueError(f"speaker {speaker} is out of range: {self.name} knows speakers 0..{self.speakers - 1}")
        if not 0.25 <= speed <= 4.0:
            raise ValueError(f"speed {speed} is out of range 0.25..4")
        if not -12.0 <= pitch_shift <= 12.0:
            raise ValueError(f"pitch_shift {pitch_shift} is out of range -12..12 semitones")
        order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
        out: list[torch.Tensor | None] = [None] * len(token_lists)
        shift = pitch_shift / self.stats["pitch_std"]
        start = 0
        while start < len(order):
            longest = len(token_lists[order[start]])
            end = start + 1
            while end < len(order) and len(token_lists[order[end]]) * (end - start + 1) <= MAX_BATCH_TOKENS:
                longest = len(token_lists[order[end]])
                end += 1
            group = order[start:end]
            tokens = torch.zeros(len(group), longest, dtype=torch.long)
            for row, i in enumerate(group):
                tokens[row, : len(token_lists[i])] = torch.tensor(token_lists[i])
            speakers = torch.full((len(group),), speaker, dtype=torch.long, device=self.vocoder.device)
            mel, frames = self.model.infer(tokens.to(self.vocoder.device), speed, shift, speakers)
            for row, i in enumerate(group):
                out[i] = mel[row, :, : int(frames[row])].float()
            start = end
        return [m for m in out if m is not None]

    def gap(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """The silence between two sentences."""
        return torch.zeros(int(SENTENCE_GAP_SECONDS * self.sample_rate), device=device)

    def join(self, waves: list[torch.Tensor]) -> torch.Tensor:
        """Sentence waveforms -> one, with a short pause between sentences (on the waveforms' device)."""
        gap = self.gap(waves[0].device if waves else "cpu")
        return torch.cat([x for w in waves for x in (w, gap)][:-1])

    @torch.inference_mode()
    def __call__(self, text: str | bytes, speed: float = 1.0, pitch_shift: float = 0.0,
                 progress: bool = False, speaker: int = 0) -> tuple[np.ndarray, int]:
        """The whole text as one waveform (float32 numpy) at ``sample_rate``; sentences in batched passes."""
        from tqdm import tqdm

        pairs = self.sentences(text)
        waves: list[torch.Tensor] = []
        group = 64  # sentences per pass: bounds memory on book-length input
        with tqdm(total=len(pairs), unit="sentence", disable=not progress) as bar:
            for start in range(0, len(pairs), group):
                ids = [p[1] for p in pairs[start:start + group]]
                waves += self.vocoder.batch(self.mels(ids, speed, pitch_shift, speaker))
                bar.update(len(ids))
        return self.join(waves).cpu().numpy(), self.sample_rate

    @torch.inference_mode()
    def stream(self, text: str | bytes, speed: float = 1.0, pitch_shift: float = 0.0,
               chunk_frames: int = 32, speaker: int = 0) -> Iterator[np.ndarray]:
        """Audio chunks as soon as each is ready: the first sentence alone (fast first audio), the rest in
        batched passes; each sentence vocoded chunk by chunk with exact joins. Concatenated, equal to
        ``tts(text)`` up to float rounding."""
        pairs = self.sentences(text)
        gap = self.gap().numpy()
        first = self.mels([pairs[0][1]], speed, pitch_shift, speaker)
        rest_ids = [ids for _, ids in pairs[1:]]
        for index, mel in enumerate(first):
            if index:
                yield gap
            for chunk in self.vocoder.stream(mel, chunk_frames):
                yield chunk.cpu().numpy()
        for mel in self.mels(rest_ids, speed, pitch_shift, speaker) if rest_ids else []:
            yield gap
            for chunk in self.vocoder.stream(mel, chunk_frames):
                yield chunk.cpu().numpy()

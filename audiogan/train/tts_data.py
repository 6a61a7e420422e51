"""TTS training features: LJSpeech-format folders -> phoneme ids, mels, pitch, energy; computed once, cached.

The cache is one file that a GPU machine can use without espeak-ng (it runs here, once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from audiogan.audio.io import AudioError, load_audio, normalize_peak
from audiogan.audio.mel import MelConfig, MelSpectrogram
from audiogan.train.data import is_silent, metadata_rows, warn_silent
from audiogan.tts.normalize import normalize
from audiogan.tts.phonemes import PHONES, SymbolTable, phonemize
from audiogan.weights import file_digest

log = logging.getLogger(__name__)


@dataclass
class TTSDataConfig:
    validation: list[str] = field(default_factory=list)  # clip ids held out (fnmatch patterns)
    validation_count: int = 10                           # else: the last N clips (sorted) are held out
    language: str = "en-us"
    max_seconds: float = 15.0
    cache_dir: str = ".cache/audiogan"
    fmin: float = 60.0                                   # pitch search range (Hz)
    fmax: float = 500.0
    # Speed perturbation (resampling: tempo and pitch move together, as in Kaldi's ASR recipes). Each factor
    # adds a copy of every clip as a pseudo-speaker, so the model learns what is shared across them without
    # averaging the voices; the recorded speakers keep numbers 0 .. n-1, and inference speaks as them.
    augment_speeds: list[float] = field(default_factory=list)
    # Folder name -> an LJSpeech-format metadata file for a folder of recordings that ships none (a relative
    # path is looked up from the working directory, then from the project root).
    transcripts: dict[str, str] = field(default_factory=dict)
    # Folder name -> speaker number, for one voice recorded into several folders; a folder not named here is
    # its own speaker. Numbers must run 0 .. speakers-1; speaker 0 is the one inference speaks as by default.
    speakers: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [f for f in self.augment_speeds if not 0.5 <= f <= 2.0 or f == 1.0]
        if bad:
            raise ValueError(f"data.augment_speeds: {bad} must lie in [0.5, 2.0] and differ from 1.0")

    def speaker_numbers(self, roots: list[str | Path]) -> list[int]:
        """The speaker of each data folder: ``speakers`` where it names the folder, else a number of its own."""
        names = [Path(r).name for r in roots]
        unknown = sorted(set(self.speakers) - set(names))
        if unknown:
            raise ValueError(f"data.speakers names {unknown}, which are not among the data folders {names}")
        numbers: list[int] = []
        for name in names:
            used = set(self.speakers.values()) | set(numbers)
            numbers.append(self.speakers[name] if name in self.speakers else min(set(range(len(used) + 1)) - used))
        if sorted(set(numbers)) != list(range(len(set(numbers)))):
            raise ValueError(f"data.speakers: the folders' speaker numbers {numbers} must run 0 .. "
                             f"{len(set(numbers)) - 1} without a gap")
        return numbers


@dataclass
class Utterance:
    id: str
    text: str
    tokens: torch.Tensor   # [N] int64
    mel: torch.Tensor      # [n_mels, T] float32
    pitch: torch.Tensor    # [T] semitones above 55 Hz, 0 where unvoiced
    voiced: torch.Tensor   # [T] float 0/1
    energy: torch.Tensor   # [T] mean log-mel
    speaker: int = 0
    speed: float = 1.0     # speed-perturbation factor; 1.0 is the recording itself


def speed_perturb(wave: torch.Tensor, sample_rate: int, factor: float) -> torch.Tensor:
    """The clip played ``factor`` times faster: duration / factor, every frequency x factor."""
    import torchaudio.functional as AF

    return AF.resample(wave, round(sample_rate * factor), sample_rate)


def transcript_file(path: str) -> Path:
    """A ``data.transcripts`` entry: as given, else under the project root (where the repo's files are)."""
    given = Path(path)
    for candidate in (given, Path(__file__).resolve().parents[2] / given):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"data.transcripts: {path} is not a file (looked in the working directory and the "
                            f"project root)")


def read_metadata(root: Path, meta: Path | None = None) -> list[tuple[str, str, Path]]:
    """(id, text, audio path) from an LJSpeech-format folder (the normalised column when present), or from
    the metadata file ``meta`` for the recordings in ``root``."""
    meta = meta or root / "metadata.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"{root} is not an LJSpeech-format folder (no metadata.csv); for recordings "
                                f"without one, name a transcript file in data.transcripts")
    rows = []
    for line, row in metadata_rows(meta):
        if len(row) not in (2, 3):
            log.warning("%s line %d: skipped: expected id|text or id|text|normalized text, got %d field(s)%s",
                        meta, line, len(row), " (a '|' inside the text?)" if len(row) > 3 else "")
            continue
        path = next((root / "wavs" / f"{row[0]}{s}" for s in (".wav", ".flac")
                     if (root / "wavs" / f"{row[0]}{s}").is_file()), None)
        if path is None:
            log.warning("%s: no audio for %s", root, row[0])
            continue
        rows.append((row[0], row[2] if len(row) == 3 and row[2].strip() else row[1], path))
    return rows


def pitch_track(wave: np.ndarray, mel: MelConfig, frames: int, fmin: float, fmax: float) -> tuple[np.ndarray, ...]:
    """Per-frame F0 with pYIN, aligned to the mel frames: (semitones above 55 Hz, voiced 0/1). It decodes
    as librosa.pyin did (tests/test_pitch.py), so feature caches made with librosa stay valid."""
    from audiogan.audio.pitch import pyin

    f0, voiced, _ = pyin(wave, mel.sample_rate, fmin, fmax, mel.n_fft, mel.hop_length)
    f0, voiced = f0[:frames], voiced[:frames].astype(np.float32)
    pad = frames - len(f0)
    if pad > 0:
        f0, voiced = np.pad(f0, (0, pad)), np.pad(voiced, (0, pad))
    semitones = np.where(voiced > 0, 12 * np.log2(np.nan_to_num(f0, nan=55.0) / 55.0), 0.0)
    return semitones.astype(np.float32), voiced


def _cache_path(rows: list[tuple[tuple[str, str, Path], int]], cfg: TTSDataConfig, mel: MelConfig,
                table: SymbolTable) -> Path:
    # File names and contents, not full paths or times: the cache stays valid where the corpus is copied
    # elsewhere (a GPU machine that has no espeak-ng gets the corpus under /tmp and this file beside it), and
    # goes stale when a recording is edited in place at the same size (a gain change, a click repaired).
    # Hashing took 0.14 s for the voice's 22 MB corpus on the 2-core machine; building its features, minutes.
    h = hashlib.sha256(json.dumps([[r[0], r[1], r[2].name, file_digest(r[2])] for r, _ in rows]).encode())
    if any(s for _, s in rows):  # speakers other than 0 (one-speaker caches keep their earlier names)
        h.update(json.dumps([s for _, s in rows]).encode())
    h.update(json.dumps([mel.__dict__, table.version, cfg.language, cfg.fmin, cfg.fmax]
                        + ([cfg.augment_speeds] if cfg.augment_speeds else []), default=str).encode())
    return Path(cfg.cache_dir) / f"tts-features-{h.hexdigest()[:16]}.pt"


def build_features(roots: list[str | Path], cfg: TTSDataConfig, mel_cfg: MelConfig,
                   table: SymbolTable) -> list[Utterance]:
    """All utterances of the folders (speakers: :meth:`TTSDataConfig.speaker_numbers`), from the cache when it
    exists."""
    numbers = cfg.speaker_numbers(roots)
    real = len(set(numbers))
    unknown = sorted(set(cfg.transcripts) - {Path(r).name for r in roots})
    if unknown:
        raise ValueError(f"data.transcripts names {unknown}, which are not among the data folders")
    metas = [transcript_file(cfg.transcripts[Path(r).name]) if Path(r).name in cfg.transcripts else None
             for r in roots]
    rows = [(r, s) for s, root, meta in zip(numbers, roots, metas, strict=True)
            for r in read_metadata(Path(root), meta)]
    cache = _cache_path(rows, cfg, mel_cfg, table)
    if cache.is_file():
        log.info("TTS features from cache %s", cache)
        return [Utterance(**u) for u in torch.load(cache, weights_only=False)]
    transform = MelSpectrogram(mel_cfg)
    phones = phonemize([normalize(text) for (_, text, _), _ in rows], cfg.language)
    sayable = [any(t in PHONES for t in tokens) for tokens in phones]
    if not all(sayable):
        dropped = [uid for ((uid, _, _), _), ok in zip(rows, sayable, strict=True) if not ok]
        log.warning("skipping %d clip(s) whose text has nothing to say (empty, or only characters the voice "
                    "cannot say): %s", len(dropped), ", ".join(dropped))
        rows = [r for r, ok in zip(rows, sayable, strict=True) if ok]
        phones = [p for p, ok in zip(phones, sayable, strict=True) if ok]
    speeds = [1.0, *cfg.augment_speeds]
    utterances, silent = [], []
    for ((uid, text, path), speaker), tokens in tqdm(list(zip(rows, phones, strict=True)), desc="TTS features",
                                                     unit="clip"):
        try:
            recording, _ = load_audio(path, mel_cfg.sample_rate)
        except AudioError as exc:  # as the vocoder's data: one bad file costs its clip, not the run
            log.warning("skipping %s: %s", path, exc)
            continue
        if is_silent(recording):
            silent.append(path)
            continue
        ids = torch.tensor(table.encode(tokens), dtype=torch.long)
        for k, factor in enumerate(speeds):
            wave = recording if factor == 1.0 else speed_perturb(recording, mel_cfg.sample_rate, factor)
            if wave.numel() / mel_cfg.sample_rate > cfg.max_seconds:
                log.info("skipping %s at speed %g: longer than %.0f s", uid, factor, cfg.max_seconds)
                continue
            wave = normalize_peak(wave)
            with torch.no_grad():
                mel = transform(wave)
            pitch, voiced = pitch_track(wave.numpy(), mel_cfg, mel.shape[-1], cfg.fmin, cfg.fmax)
            utterances.append(Utterance(uid, text, ids, mel, torch.from_numpy(pitch), torch.from_numpy(voiced),
                                        mel.mean(0), speaker + real * k, factor))
    warn_silent(silent)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")  # ranks of a torchrun job may build it side by side
    torch.save([u.__dict__ for u in utterances], tmp)
    tmp.replace(cache)
    log.info("cached %d utterances in %s", len(utterances), cache)
    return utterances


def held_out(ids: list[str], cfg: TTSDataConfig) -> set[str]:
    """The clip ids the recipe holds out: its patterns, else the last ``validation_count`` ids."""
    import fnmatch

    ids = sorted(set(ids))
    if cfg.validation:
        return {i for i in ids if any(fnmatch.fnmatch(i, p) for p in cfg.validation)}
    return set(ids[-cfg.validation_count:]) if cfg.validation_count > 0 else set()


def split(utterances: list[Utterance], cfg: TTSDataConfig) -> tuple[list[Utterance], list[Utterance]]:
    """(training, validation). A held-out clip's speed-perturbed copies are in neither: validation is the
    recordings themselves, and the model must not have heard their sentences."""
    held = held_out([u.id for u in utterances], cfg)
    return ([u for u in utterances if u.id not in held],
            [u for u in utterances if u.id in held and u.speed == 1.0])


def statistics(utterances: list[Utterance]) -> dict[str, float]:
    """Speaker-level normalisation constants, stored in the model card: the recordings', not the
    perturbed copies' (inference speaks as the recordings)."""
    utterances = [u for u in utterances if u.speed == 1.0] or utterances
    voiced = torch.cat([u.pitch[u.voiced > 0] for u in utterances])
    energy = torch.cat([u.energy for u in utterances])
    if voiced.numel() < 2:  # NaN: the trainer refuses such a corpus, naming the pitch search range
        voiced = torch.full((2,), float("nan"))
    return {"pitch_mean": float(voiced.mean()), "pitch_std": float(voiced.std().clamp(min=1e-3)),
            "energy_mean": float(energy.mean()), "energy_std": float(energy.std().clamp(min=1e-3))}


def collate(batch: list[Utterance], stats: dict[str, float], device: torch.device) -> dict[str, Any]:
    """Pad a batch; pitch and energy are z-scored with the speaker statistics (pitch 0 where unvoiced)."""
    n = max(len(u.tokens) for u in batch)
    t = max(u.mel.shape[-1] for u in batch)
    b = len(batch)
    floor = float(np.log(1e-5))
    out = {"tokens": torch.zeros(b, n, dtype=torch.long), "mel": torch.full((b, batch[0].mel.shape[0], t), floor),
           "mel_lens": torch.tensor([u.mel.shape[-1] for u in batch]), "pitch": torch.zeros(b, t),
           "voiced": torch.zeros(b, t), "energy": torch.zeros(b, t),
           "speakers": torch.tensor([u.speaker for u in batch])}
    for i, u in enumerate(batch):
        k, m = len(u.tokens), u.mel.shape[-1]
        out["tokens"][i, :k] = u.tokens
        out["mel"][i, :, :m] = u.mel
        out["pitch"][i, :m] = (u.pitch - stats["pitch_mean"]) / stats["pitch_std"] * u.voiced
        out["voiced"][i, :m] = u.voiced
        out["energy"][i, :m] = (u.energy - stats["energy_mean"]) / stats["energy_std"]
    return {k: v.to(device) for k, v in out.items()}


"""Training audio: find files, decode and resample once (cached), keep them resident and crop on device."""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from audiogan.audio.io import AudioError, load_audio, normalize_peak

log = logging.getLogger(__name__)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
SILENT_DBFS = -60
SILENT_PEAK = 10 ** (SILENT_DBFS / 20)


@dataclass
class DataConfig:
    # fnmatch patterns on file paths: matching files never reach training; the first
    # ``validation_per_pattern`` (sorted) of each pattern form the validation set.
    validation: list[str] = field(default_factory=list)
    validation_per_pattern: int = 2
    cache_dir: str = ".cache/audiogan"
    peak: float = 0.95
    # A folder of <clip id>.npy mels from `audiogan data tts-mels`: train the vocoder on a TTS model's
    # teacher-forced mels of those clips (only clips with a mel are used) instead of the clips' own mels.
    # Their level is that of the clip peak-normalised to 0.95 (the TTS features'), so keep ``peak`` there.
    predicted_mels: str = ""


def find_audio(root: str | Path) -> list[Path]:
    """Files of an LJSpeech-format folder (metadata.csv + wavs/) or, otherwise, every audio file under root."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    meta = root / "metadata.csv"
    if meta.is_file() and (root / "wavs").is_dir():
        files = []
        for _, row in metadata_rows(meta):
            hits = [root / "wavs" / f"{row[0]}{s}" for s in AUDIO_SUFFIXES]
            found = next((h for h in hits if h.is_file()), None)
            if found is None:
                log.warning("metadata.csv names %s but no audio file exists for it", row[0])
            else:
                files.append(found)
        return files
    return sorted(_walk_audio(root))


def _walk_audio(root: Path) -> list[Path]:
    """Audio files under ``root``, through linked folders too (a folder of links to corpora is a common
    way to assemble a training set), each real folder once."""
    found, seen = [], set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree, or two links to one corpus
            subfolders.clear()
            continue
        seen.add(real)
        for name in names:
            path = Path(folder) / name
            if path.suffix.lower() in AUDIO_SUFFIXES:
                if path.is_file():
                    found.append(path)
                elif path.is_symlink():
                    log.warning("skipping %s: a broken link", path)
    return found


def metadata_rows(meta: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each non-empty line of an LJSpeech-format metadata.csv. A byte-order mark
    is ignored (Windows editors write one, and it became part of the first clip's id)."""
    raw = meta.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(f"{meta} line {line}: not UTF-8 text (byte {raw[exc.start]:#x}); save it as UTF-8") from None
    rows = csv.reader(io.StringIO(text, newline=""), delimiter="|", quoting=csv.QUOTE_NONE)
    return [(n, row) for n, row in enumerate(rows, 1) if row and row[0].strip()]


def split_files(files: list[Path], config: DataConfig) -> tuple[list[Path], list[Path]]:
    """(training files, validation files)."""
    held: set[Path] = set()
    validation: list[Path] = []
    for pattern in config.validation:
        matched = sorted(f for f in files if fnmatch.fnmatch(f.as_posix(), pattern))
        held.update(matched)
        validation.extend(m for m in matched[: config.validation_per_pattern] if m not in validation)
    return [f for f in files if f not in held], validation


def _cache_key(path: Path, sample_rate: int) -> str:
    st = path.stat()
    raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{sample_rate}"
    return hashlib.sha1(raw.encode()).hexdigest()


def load_cached(path: Path, sample_rate: int, cache_dir: Path) -> np.ndarray:
    """Decode + resample once; later runs read the cached float32 .npy."""
    cache = cache_dir / f"{_cache_key(path, sample_rate)}.npy"
    if cache.is_file():
        return np.load(cache)
    wave, _ = load_audio(path, sample_rate)
    arr = wave.numpy().astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{np.random.randint(1 << 30)}.tmp.npy")
    np.save(tmp, arr)
    tmp.replace(cache)
    return arr


def load_many(files: list[Path], sample_rate: int, cache_dir: str | Path,
              workers: int = 8) -> tuple[list[Path], list[np.ndarray]]:
    """(the files read, their audio): unreadable and silent files are left out, each named in the log."""
    cache = Path(cache_dir)

    def one(p: Path) -> np.ndarray | None:
        try:
            return load_cached(p, sample_rate, cache)
        except AudioError as exc:
            log.warning("skipping %s: %s", p, exc)
            return None

    with ThreadPoolExecutor(workers) as pool:
        waves = list(pool.map(one, files))
    read = [(p, w, is_silent(w)) for p, w in zip(files, waves, strict=True) if w is not None]
    warn_silent([p for p, _, silent in read if silent])
    kept = [(p, w) for p, w, silent in read if not silent]
    return [p for p, _ in kept], [w for _, w in kept]


def is_silent(wave: np.ndarray | torch.Tensor) -> bool:
    """Nothing to learn from: peak normalisation would blow dither or a stereo file's cancelled residue up
    to full-scale noise."""
    return len(wave) == 0 or float(abs(wave).max()) < SILENT_PEAK


def warn_silent(paths: list[Path]) -> None:
    if paths:
        shown = ", ".join(str(p) for p in paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        log.warning("skipping %d silent file(s) (peak below %d dBFS): %s", len(paths), SILENT_DBFS, shown)


class ClipBank:
    """All training clips in one device tensor; random crops with no host synchronisation.

    With ``mels`` (one [n_mels, frames] array per clip, frame t covering samples t*hop onwards, as the TTS
    teacher-forced mels are), crops start on frame boundaries and ``sample`` also returns the matching
    mel crop: the vocoder then trains on those mels instead of the crop's own.
    """

    def __init__(self, waves: list[np.ndarray], segment: int, device: torch.device, peak: float = 0.95,
                 mels: list[np.ndarray] | None = None, hop: int = 256) -> None:
        if not waves:
            raise ValueError("no training audio could be read (the log names each file skipped, and why)")
        if mels is not None and len(mels) != len(waves):
            raise ValueError(f"{len(mels)} mels for {len(waves)} clips")
        if mels is not None and segment % hop:
            raise ValueError(f"segment_size {segment} must be a multiple of the hop ({hop}) to pair with mels")
        self.hop = hop if mels is not None else 1  # the crop grid: frames when paired, else samples
        self.segment = segment
        padded, spans, mel_parts = [], [], []
        for i, w in enumerate(waves):
            t = normalize_peak(torch.from_numpy(w), peak)
            if t.numel() < segment:
                t = torch.nn.functional.pad(t, (0, segment - t.numel()))
            padded.append(t)
            if mels is None:
                spans.append(t.numel() - segment + 1)
                continue
            # Only frames whose samples all exist, and at least one crop per clip.
            frames = min(mels[i].shape[-1], t.numel() // hop)
            mel = torch.from_numpy(mels[i][:, :frames]).float()
            if frames < segment // hop:
                mel = torch.nn.functional.pad(mel, (0, segment // hop - frames), value=float(mel.min()))
            mel_parts.append(mel)
            spans.append(mel.shape[-1] - segment // hop + 1)
        lengths = torch.tensor([p.numel() for p in padded], dtype=torch.long)
        self.audio = torch.cat(padded).to(device)
        self.starts = (torch.cumsum(lengths, 0) - lengths).to(device)
        self.spans = torch.tensor(spans, dtype=torch.long).to(device)
        # Pick clips in proportion to their number of distinct crops, so every crop is equally likely.
        self.cdf = torch.cumsum(self.spans.double(), 0).to(device)
        self.offsets = torch.arange(segment, device=device)
        self.mel = None
        if mel_parts:
            frame_lengths = torch.tensor([m.shape[-1] for m in mel_parts], dtype=torch.long)
            self.mel = torch.cat(mel_parts, dim=-1).to(device)
            self.mel_starts = (torch.cumsum(frame_lengths, 0) - frame_lengths).to(device)
            self.frame_offsets = torch.arange(segment // hop, device=device)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(audio crops [batch, segment], their mels [batch, n_mels, segment / hop] or None)."""
        u = torch.rand(batch, device=self.cdf.device, dtype=torch.float64, generator=generator) * self.cdf[-1]
        clip = torch.searchsorted(self.cdf, u, right=True).clamp(max=self.cdf.numel() - 1)
        pos = (torch.rand(batch, device=self.cdf.device, generator=generator) * self.spans[clip]).long()
        audio = self.audio[(self.starts[clip] + pos * self.hop)[:, None] + self.offsets]
        if self.mel is None:
            return audio, None
        frames = (self.mel_starts[clip] + pos)[:, None] + self.frame_offsets
        return audio, self.mel[:, frames].permute(1, 0, 2)

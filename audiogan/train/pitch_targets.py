"""pYIN pitch targets for a harmonic-phase vocoder's pitch tracker, framed exactly like the mel, cached per clip."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audiogan.audio.mel import MelConfig
from audiogan.workers import children_ignore_ctrl_c

log = logging.getLogger(__name__)
FMIN, FMAX = 50.0, 600.0  # Hz: speech, male bass to child
# librosa.pyin made v1; audiogan's decoder tracks as it did (tests/test_pitch.py), so v1 caches stay valid.
VERSION = "pyin-v1"


def pitch_track(wave: np.ndarray, mel: MelConfig) -> np.ndarray:
    """[2, samples // hop]: f0 in Hz (0 where unvoiced) and the voiced flag, frame t centred on t*hop + hop/2."""
    from audiogan.audio.pitch import pyin

    pad = (mel.n_fft - mel.hop_length) // 2
    mode = "reflect" if len(wave) > pad else "constant"
    padded = np.pad(np.asarray(wave, np.float32), (pad, pad), mode=mode)
    if len(padded) < mel.n_fft:
        padded = np.pad(padded, (0, mel.n_fft - len(padded)))
    f0, voiced, _ = pyin(padded, mel.sample_rate, FMIN, FMAX, mel.n_fft, mel.hop_length, center=False)
    frames = len(wave) // mel.hop_length
    out = np.zeros((2, frames), np.float32)
    n = min(frames, len(f0))
    out[0, :n] = np.nan_to_num(f0[:n], nan=0.0)
    out[1, :n] = voiced[:n]
    return out


def _key(path: Path, mel: MelConfig) -> str:
    st = path.stat()
    raw = f"{path.name}|{st.st_size}|{mel}|{FMIN}|{FMAX}|{VERSION}"
    return hashlib.sha1(raw.encode()).hexdigest()


def _work(job: tuple[np.ndarray, MelConfig]) -> np.ndarray:
    return pitch_track(*job)


def pitch_targets(files: list[Path], waves: list[np.ndarray], mel: MelConfig, cache_dir: str | Path,
                  workers: int = 2) -> list[np.ndarray]:
    """One [2, frames] track per clip; missing ones are computed in ``workers`` processes and cached.

    The cache is keyed on file names and sizes, so a GPU machine can reuse it when the corpus sits in
    another folder there.
    """
    cache = Path(cache_dir)
    paths = [cache / f"{_key(f, mel)}.f0.npy" for f in files]
    todo = [i for i, p in enumerate(paths) if not p.is_file()]
    if todo:
        log.info("pitch targets: pYIN on %d clips (cached in %s for later runs)", len(todo), cache)
        cache.mkdir(parents=True, exist_ok=True)
        # Compile the numba kernels here first: fresh processes compiling librosa's side by side
        # corrupted its cache in an earlier session.
        pitch_track(np.zeros(mel.n_fft * 2, np.float32), mel)
        jobs = [(waves[i], mel) for i in todo]
        if workers > 1 and len(todo) > 1:
            with children_ignore_ctrl_c():  # Pool starts its processes here
                pool = multiprocessing.get_context("spawn").Pool(workers)
            with pool:
                tracks = list(tqdm(pool.imap(_work, jobs, chunksize=4), total=len(jobs), desc="pitch targets",
                                   unit="clip"))
        else:
            tracks = [_work(j) for j in tqdm(jobs, desc="pitch targets", unit="clip")]
        for i, track in zip(todo, tracks, strict=True):
            tmp = paths[i].with_name(f".{paths[i].name}.{np.random.randint(1 << 30)}.tmp.npy")
            np.save(tmp, track)
            tmp.replace(paths[i])
    return [np.load(p) for p in paths]

"""Speech quality metrics for validation and benchmarks. PESQ/STOI/pYIN are optional imports."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def _align(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(ref), len(deg))
    return np.asarray(ref[:n], np.float64), np.asarray(deg[:n], np.float64)


def pesq_wb(ref: np.ndarray, deg: np.ndarray, sample_rate: int = 16000) -> float | None:
    """Wide-band PESQ (ITU-T P.862.2), 16 kHz only; None when the pesq package is missing."""
    try:
        from pesq import pesq
    except ImportError:
        return None
    if sample_rate != 16000:
        raise ValueError("PESQ-wb needs 16 kHz audio")
    r, d = _align(ref, deg)
    try:
        return float(pesq(16000, r, d, "wb"))
    except Exception as exc:  # the C library raises on silent or too-short input
        log.warning("PESQ failed: %s", exc)
        return None


def stoi(ref: np.ndarray, deg: np.ndarray, sample_rate: int = 16000) -> float | None:
    try:
        from pystoi import stoi as _stoi
    except ImportError:
        return None
    r, d = _align(ref, deg)
    return float(_stoi(r, d, sample_rate, extended=False))


DNSMOS_KEYS = ("ovrl_mos", "sig_mos", "bak_mos", "p808_mos")


def dnsmos(wave: np.ndarray, sample_rate: int = 16000) -> dict[str, float] | None:
    """DNSMOS (Reddy et al. 2022): a non-intrusive predictor of listeners' P.835 scores (overall, signal,
    background; 1-5) and P.808 MOS, from the models the speechmos wheel ships; no reference needed, so it
    also judges synthetic speech. None when speechmos is not installed."""
    try:
        from speechmos import dnsmos as _dnsmos
    except ImportError:
        return None
    if sample_rate != 16000:
        raise ValueError("DNSMOS needs 16 kHz audio")
    scores = _dnsmos.run(np.clip(np.asarray(wave, np.float32), -1.0, 1.0), 16000, return_df=False)
    return {k: float(scores[k]) for k in DNSMOS_KEYS}


def voicing(wave: np.ndarray, sample_rate: int, hop: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pYIN f0 (Hz, NaN when unvoiced), voiced flag and voiced probability per frame."""
    import librosa

    f0, flag, prob = librosa.pyin(np.asarray(wave, np.float32), fmin=50, fmax=600, sr=sample_rate,
                                  frame_length=1024, hop_length=hop)
    return f0, flag.astype(bool), prob


def pitch_metrics(ref: np.ndarray, deg: np.ndarray, sample_rate: int) -> dict[str, float]:
    """V/UV F1, periodicity RMSE and pitch RMSE in cents on frames voiced in both (CARGAN/Vocos style)."""
    r, d = _align(ref, deg)
    f0_r, v_r, p_r = voicing(r, sample_rate)
    f0_d, v_d, p_d = voicing(d, sample_rate)
    tp = float(np.sum(v_r & v_d))
    precision = tp / max(float(np.sum(v_d)), 1.0)
    recall = tp / max(float(np.sum(v_r)), 1.0)
    f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
    both = v_r & v_d
    cents = 1200 * np.log2(f0_d[both] / f0_r[both]) if both.any() else np.array([0.0])
    return {
        "vuv_f1": f1,
        "periodicity_rmse": float(np.sqrt(np.mean((p_r - p_d) ** 2))),
        "pitch_rmse_cents": float(np.sqrt(np.mean(cents**2))),
    }

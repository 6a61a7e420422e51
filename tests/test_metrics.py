"""The independent quality judges the benchmarks use, on real audio."""

from __future__ import annotations

import numpy as np
import pytest

from audiogan import metrics


def test_dnsmos_prefers_speech_to_noise_and_needs_16_khz(demo_wave):
    pytest.importorskip("speechmos")
    speech = metrics.dnsmos(demo_wave.numpy())
    noise = metrics.dnsmos(np.random.default_rng(0).normal(0, 0.1, 16000 * 5).astype(np.float32))
    assert set(speech) == set(metrics.DNSMOS_KEYS)
    assert all(1.0 <= v <= 5.0 for v in speech.values())
    assert speech["ovrl_mos"] > noise["ovrl_mos"] + 1 and speech["bak_mos"] > noise["bak_mos"] + 1
    with pytest.raises(ValueError, match="16 kHz"):
        metrics.dnsmos(demo_wave.numpy(), 22050)


def test_pesq_and_stoi_rank_a_degraded_copy_below_the_original(demo_wave):
    pytest.importorskip("pesq")
    clean = demo_wave.numpy()
    noisy = clean + np.random.default_rng(1).normal(0, 0.05, clean.shape).astype(np.float32)
    assert metrics.pesq_wb(clean, clean) > 4.0 > metrics.pesq_wb(clean, noisy)
    assert metrics.stoi(clean, clean) > 0.99 > metrics.stoi(clean, noisy)

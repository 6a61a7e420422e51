"""The mel front end: parity with librosa, frame counts, config validation."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from audiogan.audio import MelConfig, MelSpectrogram

N_FFT, HOP, N_MELS, SR = 1024, 256, 80, 16000


def librosa_log_mel(wave: np.ndarray) -> np.ndarray:
    """Independent reference: HiFi-GAN framing done with numpy padding and librosa's STFT and filterbank."""
    pad = (N_FFT - HOP) // 2
    padded = np.pad(wave.astype(np.float64), (pad, pad), mode="reflect")
    magnitude = np.abs(librosa.stft(padded, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, window="hann",
                                    center=False))
    fb = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=0, fmax=SR / 2, htk=False, norm="slaney")
    return np.log(np.maximum(fb.astype(np.float64) @ magnitude, 1e-5))


def test_filterbank_equals_librosa_slaney():
    fb = MelSpectrogram(MelConfig()).filterbank.numpy()
    ref = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=0, fmax=8000, htk=False, norm="slaney").T
    assert fb.shape == ref.shape == (N_FFT // 2 + 1, N_MELS)
    np.testing.assert_allclose(fb, ref, atol=1e-6, rtol=0)


def test_log_mel_of_demo_clip_equals_librosa_reference(demo_wave):
    mel = MelSpectrogram(MelConfig())(demo_wave).numpy()
    ref = librosa_log_mel(demo_wave.numpy())
    assert mel.shape == ref.shape == (N_MELS, demo_wave.numel() // HOP)
    diff = np.abs(mel - ref)
    # float32 FFT round-off only matters for bins within a few dB of the 1e-5 floor; everywhere the
    # magnitude is above 1e-4 (most of the clip) the two agree to 1e-3 in the log domain.
    audible = ref > np.log(1e-4)
    assert audible.mean() > 0.8
    assert diff[audible].max() < 1e-3
    assert diff.max() < 5e-3
    assert diff.mean() < 1e-4
    # In the linear domain the whole spectrogram matches to a tiny fraction of its peak.
    np.testing.assert_allclose(np.exp(mel), np.exp(ref), atol=1e-5 * np.exp(ref).max(), rtol=0)


@pytest.mark.parametrize("samples", [256, 257, 511, 1000, 4096, 16383])
def test_frame_count_is_samples_floor_hop(demo_wave, samples):
    mel = MelSpectrogram(MelConfig())(demo_wave[:samples])
    assert mel.shape == (N_MELS, samples // HOP)
    assert torch.isfinite(mel).all()


def test_leading_batch_dims_are_kept(demo_wave):
    transform = MelSpectrogram(MelConfig())
    batch = torch.stack([demo_wave[:8192], demo_wave[8192:16384], demo_wave[-8192:]]).reshape(3, 1, 8192)
    mel = transform(batch)
    assert mel.shape == (3, 1, N_MELS, 32)
    torch.testing.assert_close(mel[1, 0], transform(demo_wave[8192:16384]))


def test_silence_sits_on_the_log_floor():
    mel = MelSpectrogram(MelConfig())(torch.zeros(2048))
    torch.testing.assert_close(mel, torch.full((N_MELS, 8), float(np.log(1e-5))))


def test_audio_shorter_than_one_hop_is_rejected(demo_wave):
    with pytest.raises(ValueError, match="shorter than one hop"):
        MelSpectrogram(MelConfig())(demo_wave[:255])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"f_max": 9000.0}, "f_max <= sample_rate/2"),
    ({"sample_rate": 8000}, "f_max <= sample_rate/2"),
    ({"f_min": 8000.0}, "f_min < f_max"),
    ({"f_min": -1.0}, "0 <= f_min"),
    ({"win_length": 2048}, "win_length 2048 > n_fft 1024"),
    ({"hop_length": 255}, "must be even"),
])
def test_mel_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MelConfig(**kwargs)


def test_mel_config_frames():
    assert MelConfig().frames(80960) == 316
    assert MelConfig(hop_length=128, n_fft=512, win_length=512).frames(1000) == 7

"""Audio front end: file I/O, resampling, normalisation and the one mel transform."""

from audiogan.audio.io import AudioError, load_audio, normalize_loudness, normalize_peak, resample, save_audio
from audiogan.audio.mel import MelConfig, MelSpectrogram

__all__ = [
    "AudioError",
    "MelConfig",
    "MelSpectrogram",
    "load_audio",
    "normalize_loudness",
    "normalize_peak",
    "resample",
    "save_audio",
]

"""Audio front end: file I/O, resampling, normalisation and the one mel transform (imported on first use)."""

from typing import TYPE_CHECKING

from audiogan._lazy import lazy_exports

if TYPE_CHECKING:
    from audiogan.audio.errors import AudioError
    from audiogan.audio.io import load_audio, normalize_loudness, normalize_peak, resample, save_audio
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
__getattr__, __dir__ = lazy_exports(__name__, {
    "errors": ("AudioError",),
    "io": ("load_audio", "normalize_loudness", "normalize_peak", "resample", "save_audio"),
    "mel": ("MelConfig", "MelSpectrogram"),
})

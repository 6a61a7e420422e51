"""audiogan: GAN audio synthesis — vocoders, text-to-speech and instrument timbre.

The names below are imported on first use: ``import audiogan.config`` (as the command lines do to parse
their arguments) does not import torch."""

from typing import TYPE_CHECKING

from audiogan._lazy import lazy_exports

if TYPE_CHECKING:
    from audiogan.audio import MelConfig, MelSpectrogram, load_audio, save_audio
    from audiogan.tts import TTS
    from audiogan.vocoder import Vocoder

__version__ = "0.1.0"
__all__ = ["TTS", "MelConfig", "MelSpectrogram", "Vocoder", "load_audio", "save_audio"]
__getattr__, __dir__ = lazy_exports(__name__, {"audio": ("MelConfig", "MelSpectrogram", "load_audio", "save_audio"),
                                               "tts": ("TTS",), "vocoder": ("Vocoder",)})

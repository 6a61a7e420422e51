"""audiogan: GAN audio synthesis — vocoders, and (soon) text-to-speech and instrument timbre."""

from audiogan.audio import MelConfig, MelSpectrogram, load_audio, save_audio
from audiogan.vocoder import Vocoder

__version__ = "0.1.0"
__all__ = ["MelConfig", "MelSpectrogram", "Vocoder", "load_audio", "save_audio"]

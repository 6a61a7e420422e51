"""audiogan: GAN audio synthesis — vocoders, text-to-speech and instrument timbre."""

from audiogan.audio import MelConfig, MelSpectrogram, load_audio, save_audio
from audiogan.tts import TTS
from audiogan.vocoder import Vocoder

__version__ = "0.1.0"
__all__ = ["TTS", "MelConfig", "MelSpectrogram", "Vocoder", "load_audio", "save_audio"]

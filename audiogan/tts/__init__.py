"""Text-to-speech: normalisation, phonemes, a parallel acoustic model with learned alignment."""

from audiogan.tts.inference import TTS

__all__ = ["TTS"]

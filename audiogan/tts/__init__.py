"""Text-to-speech: normalisation, phonemes, a parallel acoustic model with learned alignment (imported on first
use)."""

from typing import TYPE_CHECKING

from audiogan._lazy import lazy_exports

if TYPE_CHECKING:
    from audiogan.tts.inference import TTS

__all__ = ["TTS"]
__getattr__, __dir__ = lazy_exports(__name__, {"inference": ("TTS",)})

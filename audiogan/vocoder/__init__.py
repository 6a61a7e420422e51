"""Mel-to-waveform GAN vocoders (imported on first use)."""

from typing import TYPE_CHECKING

from audiogan._lazy import lazy_exports

if TYPE_CHECKING:
    from audiogan.vocoder.inference import Vocoder
    from audiogan.vocoder.model import GeneratorConfig, VocoderConfig, build_generator

__all__ = ["GeneratorConfig", "Vocoder", "VocoderConfig", "build_generator"]
__getattr__, __dir__ = lazy_exports(__name__, {"inference": ("Vocoder",),
                                               "model": ("GeneratorConfig", "VocoderConfig", "build_generator")})

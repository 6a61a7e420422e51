"""Mel-to-waveform GAN vocoders."""

from audiogan.vocoder.inference import Vocoder
from audiogan.vocoder.model import GeneratorConfig, VocoderConfig, build_generator

__all__ = ["GeneratorConfig", "Vocoder", "VocoderConfig", "build_generator"]

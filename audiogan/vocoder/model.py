"""Vocoder model config and the generator factory."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from audiogan.audio.mel import MelConfig
from audiogan.vocoder.hifigan import HiFiGANConfig, HiFiGANGenerator
from audiogan.vocoder.istft import ISTFTNetConfig, ISTFTNetGenerator

GENERATOR_KINDS = ("hifigan", "istft")


@dataclass
class GeneratorConfig:
    kind: str = "istft"
    hifigan: HiFiGANConfig = field(default_factory=HiFiGANConfig)
    istft: ISTFTNetConfig = field(default_factory=ISTFTNetConfig)


@dataclass
class VocoderConfig:
    mel: MelConfig = field(default_factory=MelConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)


def build_generator(config: VocoderConfig) -> nn.Module:
    """Every generator maps mel [B, n_mels, T] to audio [B, T * hop] and exposes ``context_frames``,
    ``condition(mel)``, the whole-utterance input that chunked vocoding slices (the mel, for most), and
    ``conditions``, whether that input is more than the mel."""
    g, mel = config.generator, config.mel
    if g.kind == "hifigan":
        model = HiFiGANGenerator(mel.n_mels, g.hifigan)
        if model.hop != mel.hop_length:
            raise ValueError(f"HiFi-GAN upsampling {g.hifigan.upsample_rates} gives hop {model.hop}, "
                             f"mel hop is {mel.hop_length}")
        return model
    if g.kind == "istft":
        return ISTFTNetGenerator(mel, g.istft)
    raise ValueError(f"unknown generator kind {g.kind!r}; choose from {GENERATOR_KINDS}")

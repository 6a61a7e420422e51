"""GANSynth-style instrument timbre: note data, IF spectrograms, the note GAN, interpolation."""

from audiogan.timbre.inference import TimbreModel

__all__ = ["TimbreModel"]

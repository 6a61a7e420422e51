"""GANSynth-style instrument timbre: note data, IF spectrograms, the note GAN, interpolation (imported on first
use)."""

from typing import TYPE_CHECKING

from audiogan._lazy import lazy_exports

if TYPE_CHECKING:
    from audiogan.timbre.inference import TimbreModel

__all__ = ["TimbreModel"]
__getattr__, __dir__ = lazy_exports(__name__, {"inference": ("TimbreModel",)})

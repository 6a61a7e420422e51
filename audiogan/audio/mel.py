"""The one mel front end that the vocoder trains on and every acoustic model predicts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} > n_fft {self.n_fft}")
        if (self.n_fft - self.hop_length) % 2:
            raise ValueError("n_fft - hop_length must be even so frames sit symmetrically on hops")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got {self.f_min}, {self.f_max}")

    def frames(self, samples: int) -> int:
        return samples // self.hop_length


class MelSpectrogram(nn.Module):
    """Log-magnitude mel (natural log, floor-clamped), HiFi-GAN convention.

    Audio is reflect-padded by (n_fft - hop) / 2 on both sides and framed without centring, so
    ``samples`` of audio give exactly ``samples // hop`` frames and frame t is centred on
    ``t * hop + hop / 2``: generators map T frames back to T * hop samples.
    """

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        self.config = config
        self.pad = (config.n_fft - config.hop_length) // 2
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            f_min=config.f_min,
            f_max=config.f_max,
            n_mels=config.n_mels,
            power=1.0,
            center=False,
            norm="slaney",
            mel_scale="slaney",
        )

    @property
    def filterbank(self) -> torch.Tensor:
        """[n_fft/2+1, n_mels]: the weights of each linear bin in each band (what heads invert or match)."""
        return self.mel.mel_scale.fb

    @torch.autocast("cuda", enabled=False)
    @torch.autocast("cpu", enabled=False)
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """[..., samples] -> [..., n_mels, samples // hop]."""
        if wave.shape[-1] < self.config.hop_length:
            raise ValueError(f"audio of {wave.shape[-1]} samples is shorter than one hop ({self.config.hop_length})")
        shape = wave.shape
        flat = wave.reshape(-1, shape[-1]).float()
        mode = "reflect" if shape[-1] > self.pad else "constant"
        flat = F.pad(flat.unsqueeze(1), (self.pad, self.pad), mode=mode).squeeze(1)
        spec = self.mel(flat)
        spec = torch.log(torch.clamp(spec, min=self.config.log_floor))
        return spec.reshape(*shape[:-1], *spec.shape[-2:])
